@testable import Conntrack
import Packet

/// Builds Ethernet frames with valid checksums for the tracker, and checks checksums
/// from scratch after rewrites.
enum Frames {
    static func v4(_ s: String) -> UInt32 { CTTupleFilter.parseIPv4(s)! }
    static func v6(_ s: String) -> UInt128 { CTTupleFilter.parseIPv6(s)! }

    static func tcp(sport: UInt16, dport: UInt16, seq: UInt32, ack: UInt32 = 0, flags: UInt16, window: UInt16 = 65535,
                    payload: Int = 0, options: [UInt8] = []) -> [UInt8] {
        var h: [UInt8] = be16(sport) + be16(dport) + be32(seq) + be32(ack)
        let doff = (20 + options.count) / 4
        h += [UInt8(doff << 4), UInt8(flags & 0xff)] + be16(window) + [0, 0, 0, 0] + options
        return h + [UInt8](repeating: 0x61, count: payload)
    }

    static func udp(sport: UInt16, dport: UInt16, payload: Int = 8) -> [UInt8] {
        be16(sport) + be16(dport) + be16(UInt16(8 + payload)) + [0, 0] + [UInt8](repeating: 0x62, count: payload)
    }

    static func icmp(type: UInt8, code: UInt8 = 0, id: UInt16 = 0, seq: UInt16 = 0, body: [UInt8] = []) -> [UInt8] {
        [type, code, 0, 0] + be16(id) + be16(seq) + body
    }

    /// An IPv4 datagram (header + `l4`) with all checksums computed.
    static func ipv4Datagram(src: String, dst: String, proto: UInt8, l4: [UInt8]) -> [UInt8] {
        let s = v4(src), d = v4(dst)
        var ip: [UInt8] = [0x45, 0] + be16(UInt16(20 + l4.count)) + [0, 1, 0x40, 0, 64, proto, 0, 0] + be32(s) + be32(d)
        let hc = ip.withUnsafeBytes { Checksum.compute($0.baseAddress!, count: 20) }
        ip[10] = UInt8(hc >> 8); ip[11] = UInt8(hc & 0xff)
        var t = l4
        fillL4Checksum(&t, proto: proto, pseudo: Checksum.pseudoHeaderIPv4(src: s, dst: d, proto: proto, length: t.count))
        return ip + t
    }

    static func ipv4(src: String, dst: String, proto: UInt8, l4: [UInt8]) -> [UInt8] {
        ethernet(EtherType.ipv4) + ipv4Datagram(src: src, dst: dst, proto: proto, l4: l4)
    }

    static func ipv6(src: String, dst: String, proto: UInt8, l4: [UInt8]) -> [UInt8] {
        let s = v6(src), d = v6(dst)
        var t = l4
        fillL4Checksum(&t, proto: proto, pseudo: Checksum.pseudoHeaderIPv6(src: s, dst: d, proto: proto, length: t.count))
        return ethernet(EtherType.ipv6) + [0x60, 0, 0, 0] + be16(UInt16(t.count)) + [proto, 64] + be128(s) + be128(d) + t
    }

    static func fillL4Checksum(_ t: inout [UInt8], proto: UInt8, pseudo: UInt64) {
        let at: Int
        var initial = pseudo
        switch proto {
        case 6: at = 16
        case 17: at = 6
        case 58: at = 2
        case 1: at = 2; initial = 0
        default: return
        }
        guard t.count >= at + 2 else { return }
        t[at] = 0; t[at + 1] = 0
        let c = t.withUnsafeBytes { Checksum.compute($0.baseAddress!, count: t.count, initial: initial) }
        t[at] = UInt8(c >> 8); t[at + 1] = UInt8(c & 0xff)
    }

    static func ethernet(_ type: UInt16) -> [UInt8] {
        [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1] + be16(type)
    }

    static func be16(_ v: UInt16) -> [UInt8] { [UInt8(v >> 8), UInt8(v & 0xff)] }
    static func be32(_ v: UInt32) -> [UInt8] { be16(UInt16(v >> 16)) + be16(UInt16(v & 0xffff)) }
    static func be128(_ v: UInt128) -> [UInt8] { (0..<16).map { UInt8(truncatingIfNeeded: v >> UInt128(8 * (15 - $0))) } }

    /// Whether every checksum of the frame verifies when computed from scratch: IPv4
    /// header, TCP/UDP/ICMPv6 with pseudo-header, ICMP.
    static func checksumsValid(_ f: [UInt8]) -> Bool {
        f.withUnsafeBytes { raw in
            let p = raw.baseAddress!
            let type = p.be16(12)
            if type == EtherType.ipv4 {
                let ihl = Int(p.u8(14) & 0xf) * 4
                guard Checksum.compute(p + 14, count: ihl) == 0 else { return false }
                let total = Int(p.be16(16))
                let proto = p.u8(23)
                let l4 = 14 + ihl, len = total - ihl
                if proto == 1 { return Checksum.compute(p + l4, count: len) == 0 }
                if proto == 17 && p.be16(l4 + 6) == 0 { return true }
                let ph = Checksum.pseudoHeaderIPv4(src: p.be32(26), dst: p.be32(30), proto: proto, length: len)
                return Checksum.compute(p + l4, count: len, initial: ph) == 0
            }
            let len = Int(p.be16(18))
            let proto = p.u8(20)
            let ph = Checksum.pseudoHeaderIPv6(src: p.be128(22), dst: p.be128(38), proto: proto, length: len)
            return Checksum.compute(p + 54, count: len, initial: ph) == 0
        }
    }
}

/// A tracker with a manual clock and a helper running frames through ct().
final class Harness {
    let ct = ConnectionTracker()
    var now: UInt64 = 1_000_000_000

    struct Result {
        var state: CTState
        var key: FlowKey
        var frame: [UInt8]
    }

    @discardableResult
    func run(_ frame: [UInt8], zone: UInt16 = 0, commit: Bool = true, nat: NATSpec? = nil, force: Bool = false,
             mark: (UInt32, UInt32) = (0, 0), label: (UInt128, UInt128) = (0, 0), prior: FlowKey? = nil,
             partial: Bool = false, verified: Bool = false) -> Result {
        var f = frame
        var key = prior ?? FlowKey()
        var action = CTAction()
        action.zone = zone
        action.commit = commit
        action.forceCommit = force
        action.nat = nat
        action.markValue = mark.0; action.markMask = mark.1
        action.labelValue = label.0; action.labelMask = label.1
        f.withUnsafeMutableBytes { raw in
            var scratch = FlowKey()
            let offsets = (try? FlowExtractor.extract(raw.baseAddress!, length: raw.count, into: &scratch).get()) ?? HeaderOffsets()
            if prior == nil { key = scratch } else {
                // Keep the earlier ct() results, as the datapath does across recirculation.
                scratch[.ctState] = key[.ctState]; scratch[.ctZone] = key[.ctZone]
                key = scratch
            }
            ct.execute(action, frame: raw.baseAddress!, length: raw.count, offsets: offsets, key: &key, now: now,
                       l4ChecksumPartial: partial, l4ChecksumVerified: verified)
        }
        return Result(state: CTState(rawValue: UInt8(key[.ctState])), key: key, frame: f)
    }

    func advance(seconds: UInt64) { now += seconds * 1_000_000_000 }
}

let trk: CTState = .tracked
let trkNew: CTState = [.tracked, .new]
let trkEst: CTState = [.tracked, .established]
let trkEstRpl: CTState = [.tracked, .established, .replyDirection]
let trkInv: CTState = [.tracked, .invalid]
