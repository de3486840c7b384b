// Writes the seed corpora of the fuzz targets (run by scripts/fuzz.sh --seeds):
//   seeds KEYS.tsv ACTIONS.tsv OUTDIR
// odp-text: "KEY<TAB>ACTIONS" pairs from the two TSV files (first column of each line);
// netlink:  OVS_FLOW_CMD_NEW messages built from the pairs that parse, plus bare key and
//           action attribute streams;
// packet:   typical and odd frames (TCP/UDP/ICMP over IPv4/IPv6, VLAN, QinQ, ARP, ND,
//           fragments, extension headers, MPLS, LLC/SNAP, VXLAN-encapsulated).
import Foundation
import Netlink
import ODP
import Packet

let args = CommandLine.arguments
guard args.count == 4 else {
    FileHandle.standardError.write("usage: seeds KEYS.tsv ACTIONS.tsv OUTDIR\n".data(using: .utf8)!)
    exit(2)
}
func firstColumn(_ path: String) -> [String] {
    let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
    return text.split(separator: "\n", omittingEmptySubsequences: true).map {
        String($0.split(separator: "\t", maxSplits: 1, omittingEmptySubsequences: false)[0])
    }
}
let keys = firstColumn(args[1]), actions = firstColumn(args[2])
let out = URL(fileURLWithPath: args[3])

func write(_ dir: String, _ name: String, _ bytes: [UInt8]) {
    let d = out.appendingPathComponent(dir)
    try! FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
    try! Data(bytes).write(to: d.appendingPathComponent(name))
}

// MARK: odp-text: every 8th key with an action line, cycling through the actions.
var pairs: [(String, String)] = []
for (i, k) in keys.enumerated() where i % 8 == 0 {
    pairs.append((k, actions.isEmpty ? "drop" : actions[(i / 8 * 7) % actions.count]))
}
for (i, p) in pairs.enumerated() {
    write("odp-text", String(format: "seed-%03d", i), Array((p.0 + "\t" + p.1).utf8))
}

// MARK: netlink
var n = 0
for (k, a) in pairs {
    guard let key = try? ODPText.parseKey(k), let acts = try? ODPText.parseActions(a) else { continue }
    var w = AttributeWriter()
    w.put(1, key.key)       // OVS_FLOW_ATTR_KEY
    w.put(7, key.mask)      // OVS_FLOW_ATTR_MASK
    w.put(2, acts)          // OVS_FLOW_ATTR_ACTIONS
    if let u = key.ufid { w.put(10, (0..<16).map { UInt8(truncatingIfNeeded: u >> UInt128(120 - 8 * $0)) }) }
    let m = GenericMessage(family: 0x20, command: 1, flags: NetlinkFlags.request | NetlinkFlags.create | NetlinkFlags.ack,
                           sequence: UInt32(n + 1), familyHeader: 1, attributes: w.bytes)
    write("netlink", String(format: "flow-new-%03d", n), m.encoded())
    n += 1
    if n % 6 == 0 {
        write("netlink", String(format: "key-%03d", n), key.key)
        write("netlink", String(format: "actions-%03d", n), acts)
    }
}

// MARK: packet
struct F {
    var b: [UInt8] = []
    mutating func u8(_ v: UInt8) { b.append(v) }
    mutating func be16(_ v: UInt16) { b += [UInt8(v >> 8), UInt8(v & 0xff)] }
    mutating func be32(_ v: UInt32) { be16(UInt16(v >> 16)); be16(UInt16(v & 0xffff)) }
    mutating func mac(_ v: UInt64) { be16(UInt16(v >> 32)); be32(UInt32(v & 0xffff_ffff)) }
    mutating func ip6(_ hi: UInt32, _ lo: UInt32) { be32(hi); be32(0); be32(0); be32(lo) }
    mutating func eth(_ type: UInt16, tags: [(UInt16, UInt16)] = []) {
        mac(0x0200_0000_0002); mac(0x0200_0000_0001)
        for (tpid, tci) in tags { be16(tpid); be16(tci) }
        be16(type)
    }
    mutating func ipv4(_ proto: UInt8, payload: Int, frag: UInt16 = 0x4000, ihl: UInt8 = 5) {
        u8(0x40 | ihl); u8(0); be16(UInt16(Int(ihl) * 4 + payload)); be16(1); be16(frag); u8(64); u8(proto); be16(0)
        be32(0xC612_0001); be32(0xC612_0002)
        for _ in 0..<(Int(ihl) - 5) { be32(0x0101_0101) }
    }
    mutating func ipv6(_ next: UInt8, payload: Int) {
        be32(0x6000_0000 | 0x12345); be16(UInt16(payload)); u8(next); u8(64); ip6(0x2001_0db8, 1); ip6(0x2001_0db8, 2)
    }
    mutating func tcp(flags: UInt16 = 0x18) { be16(40000); be16(80); be32(1); be32(0); be16(0x5000 | flags); be16(8192); be32(0) }
    mutating func udp(dst: UInt16 = 53, length: Int = 8) { be16(5353); be16(dst); be16(UInt16(length)); be16(0) }
}
var frames: [(String, [UInt8])] = []
do { var f = F(); f.eth(0x0800); f.ipv4(6, payload: 20); f.tcp(); frames.append(("tcp4", f.b)) }
do { var f = F(); f.eth(0x0800); f.ipv4(17, payload: 8); f.udp(); frames.append(("udp4", f.b)) }
do { var f = F(); f.eth(0x0800); f.ipv4(1, payload: 8); f.u8(8); f.u8(0); f.be16(0); f.be32(1); frames.append(("icmp4", f.b)) }
do { var f = F(); f.eth(0x0800); f.ipv4(132, payload: 12); f.be16(1); f.be16(2); f.be32(0); f.be32(0); frames.append(("sctp4", f.b)) }
do { var f = F(); f.eth(0x0800); f.ipv4(6, payload: 20, ihl: 7); f.tcp(); frames.append(("tcp4-options", f.b)) }
do { var f = F(); f.eth(0x0800); f.ipv4(17, payload: 8, frag: 0x2000); f.udp(); frames.append(("udp4-frag-first", f.b)) }
do { var f = F(); f.eth(0x0800); f.ipv4(17, payload: 8, frag: 0x0010); f.udp(); frames.append(("udp4-frag-later", f.b)) }
do { var f = F(); f.eth(0x86dd); f.ipv6(17, payload: 8); f.udp(); frames.append(("udp6", f.b)) }
do { var f = F(); f.eth(0x86dd); f.ipv6(6, payload: 20); f.tcp(); frames.append(("tcp6", f.b)) }
do {
    var f = F(); f.eth(0x86dd); f.ipv6(0, payload: 8 + 8 + 8)
    f.u8(44); f.u8(0); f.be16(0); f.be32(0)           // hop-by-hop → fragment
    f.u8(17); f.u8(0); f.be16(0); f.be32(7)           // fragment, offset 0 → udp
    f.udp(); frames.append(("udp6-exthdrs", f.b))
}
do { var f = F(); f.eth(0x86dd); f.ipv6(44, payload: 16); f.u8(17); f.u8(0); f.be16(0x0100); f.be32(7); f.udp(); frames.append(("udp6-frag-later", f.b)) }
do {
    var f = F(); f.eth(0x86dd); f.ipv6(58, payload: 32)
    f.u8(135); f.u8(0); f.be16(0); f.be32(0); f.ip6(0x2001_0db8, 2); f.u8(1); f.u8(1); f.mac(0x0200_0000_0001)
    frames.append(("nd-ns", f.b))
}
do {
    var f = F(); f.eth(0x86dd); f.ipv6(58, payload: 32)
    f.u8(136); f.u8(0); f.be16(0); f.be32(0); f.ip6(0x2001_0db8, 2); f.u8(2); f.u8(1); f.mac(0x0200_0000_0002)
    frames.append(("nd-na", f.b))
}
do { var f = F(); f.eth(0x86dd); f.ipv6(58, payload: 8); f.u8(128); f.u8(0); f.be16(0); f.be32(1); frames.append(("icmp6-echo", f.b)) }
do { var f = F(); f.eth(0x0800, tags: [(0x8100, 0x2064)]); f.ipv4(6, payload: 20); f.tcp(); frames.append(("vlan-tcp4", f.b)) }
do { var f = F(); f.eth(0x86dd, tags: [(0x88a8, 0x0010), (0x8100, 0x0020)]); f.ipv6(17, payload: 8); f.udp(); frames.append(("qinq-udp6", f.b)) }
do {
    var f = F(); f.mac(0xffff_ffff_ffff); f.mac(0x0200_0000_0001); f.be16(0x0806)
    f.be16(1); f.be16(0x0800); f.u8(6); f.u8(4); f.be16(1); f.mac(0x0200_0000_0001); f.be32(0xC612_0001); f.mac(0); f.be32(0xC612_0002)
    frames.append(("arp-request", f.b))
}
do { var f = F(); f.eth(0x8847); f.be32(0x0006_4040); f.be32(0x0007_4140); f.ipv4(17, payload: 8); f.udp(); frames.append(("mpls2", f.b)) }
do { var f = F(); f.eth(40); f.u8(0xaa); f.u8(0xaa); f.u8(3); f.u8(0); f.u8(0); f.u8(0); f.be16(0x0800); f.ipv4(17, payload: 8); f.udp(); frames.append(("llc-snap", f.b)) }
do { var f = F(); f.eth(30); f.u8(0x42); f.u8(0x42); f.u8(3); f.b += [UInt8](repeating: 0, count: 30); frames.append(("llc-stp", f.b)) }
do {
    // VXLAN over IPv4 carrying a TCP/IPv4 frame.
    var inner = F(); inner.eth(0x0800); inner.ipv4(6, payload: 20); inner.tcp()
    var f = F(); f.eth(0x0800); f.ipv4(17, payload: 8 + 8 + inner.b.count, frag: 0x4000)
    f.udp(dst: 4789, length: 16 + inner.b.count); f.be32(0x0800_0000); f.be32(0x0000_6400); f.b += inner.b
    frames.append(("vxlan4", f.b))
}
do {
    var inner = F(); inner.eth(0x0806); inner.be16(1); inner.be16(0x0800); inner.u8(6); inner.u8(4); inner.be16(2)
    inner.mac(1); inner.be32(1); inner.mac(2); inner.be32(2)
    var f = F(); f.eth(0x86dd); f.ipv6(17, payload: 16 + inner.b.count)
    f.udp(dst: 4789, length: 16 + inner.b.count); f.be32(0x0800_0000); f.be32(0x0000_0500); f.b += inner.b
    frames.append(("vxlan6-arp", f.b))
}
for (name, b) in frames {
    write("packet", name, b)
    // And truncated two thirds in.
    write("packet", "\(name)-cut", Array(b[..<(b.count * 2 / 3)]))
}
print("odp-text: \(pairs.count), netlink: \(n + 2 * (n / 6)), packet: \(frames.count) frames")
