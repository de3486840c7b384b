// libFuzzer target: the connection tracker (Sources/Conntrack) on arbitrary frames.
//
// Input: one selector byte, then an Ethernet frame. The selector picks the ct() action
// (zone, commit, force_commit, nat: none / bare / SNAT / DNAT with address and port
// ranges) and whether the frame is then sent back with addresses and ports swapped
// (so replies, related errors and NAT in both directions are reached). One tracker
// lives across inputs, with a clock that moves forward, so connections accumulate,
// expire and get swept.
//
// Checked on every input: no trap or memory error; and when the tracker rewrote a frame
// whose checksums were valid, they are still valid (IPv4 header, TCP/UDP/ICMP/ICMPv6
// computed from scratch).
import Conntrack
import Packet

#if canImport(Glibc)
import Glibc
#endif

let tracker: ConnectionTracker = {
    let t = ConnectionTracker(seed: 42)
    t.maxConnections = 20_000
    t.setZoneLimit(zone: 3, limit: 16)
    return t
}()
nonisolated(unsafe) var clock: UInt64 = 1_000_000_000
nonisolated(unsafe) var runs = 0

func action(_ selector: UInt8) -> CTAction {
    var a = CTAction()
    a.zone = UInt16(selector & 0x03)
    a.commit = selector & 0x04 != 0
    a.forceCommit = a.commit && selector & 0x80 != 0
    a.markValue = UInt32(selector); a.markMask = 0xff
    let natRange = CTAddress(ipv4: 0xc612_0064)...CTAddress(ipv4: 0xc612_0067)  // 198.18.0.100-103
    let natRange6 = CTAddress(ipv6: 0x2001_0db8 << 96 | 0x64)...CTAddress(ipv6: 0x2001_0db8 << 96 | 0x67)
    switch (selector >> 3) & 0x07 {
    case 1: a.nat = NATSpec(kind: .none)
    case 2: a.nat = NATSpec(kind: .source, addresses: natRange)
    case 3: a.nat = NATSpec(kind: .destination, addresses: natRange, ports: 8000...8003)
    case 4: a.nat = NATSpec(kind: .source, ports: 2000...2001)
    case 5: a.nat = NATSpec(kind: .source, addresses: natRange6, random: true)
    case 6: a.nat = NATSpec(kind: .destination, addresses: natRange6, persistent: true)
    default: break
    }
    return a
}

/// Whether the frame's IP checksums verify; nil when the frame is not one this check
/// understands (not IP, fragments, IPv6 extension headers, truncated).
func checksumsValid(_ p: UnsafeRawPointer, _ length: Int, l3: Int) -> Bool? {
    guard l3 >= 14, length >= l3 + 20 else { return nil }
    let type = p.be16(l3 - 2)
    var l4 = 0, len = 0, proto: UInt8 = 0, pseudo: UInt64 = 0
    if type == EtherType.ipv4 {
        let ihl = Int(p.u8(l3) & 0x0f) * 4
        let total = Int(p.be16(l3 + 2))
        guard p.u8(l3) >> 4 == 4, ihl >= 20, total >= ihl, l3 + total <= length, p.be16(l3 + 6) & 0x3fff == 0 else { return nil }
        if Checksum.compute(p + l3, count: ihl) != 0 { return false }
        proto = p.u8(l3 + 9)
        l4 = l3 + ihl
        len = total - ihl
        pseudo = Checksum.pseudoHeaderIPv4(src: p.be32(l3 + 12), dst: p.be32(l3 + 16), proto: proto, length: len)
        if proto == IPProto.icmp { return Checksum.compute(p + l4, count: len) == 0 }
        if proto == IPProto.udp && len >= 8 && p.be16(l4 + 6) == 0 { return true }
    } else if type == EtherType.ipv6 {
        guard length >= l3 + 40 else { return nil }
        len = Int(p.be16(l3 + 4))
        proto = p.u8(l3 + 6)
        l4 = l3 + 40
        guard len > 0, l4 + len <= length else { return nil }
        pseudo = Checksum.pseudoHeaderIPv6(src: p.be128(l3 + 8), dst: p.be128(l3 + 24), proto: proto, length: len)
        guard proto == 58 || proto == IPProto.tcp || proto == IPProto.udp else { return nil }
    } else {
        return nil
    }
    switch proto {
    case IPProto.tcp: guard len >= 20 else { return nil }
    case IPProto.udp, 58: guard len >= 8 else { return nil }
    default: return nil
    }
    return Checksum.compute(p + l4, count: len, initial: pseudo) == 0
}

func run(_ frame: UnsafeMutableRawPointer, _ size: Int, _ a: CTAction) {
    var key = FlowKey()
    guard case .success(let offsets) = FlowExtractor.extract(frame, length: size, into: &key) else { return }
    let before = checksumsValid(frame, size, l3: offsets.l3)
    let copy = [UInt8](UnsafeRawBufferPointer(start: frame, count: size))
    tracker.execute(a, frame: frame, length: size, offsets: offsets, key: &key, now: clock)
    let state = key[.ctState]
    if state & 0x20 == 0 { fatalError("ct_state without trk: \(state)") }
    if before == true, !copy.elementsEqual(UnsafeRawBufferPointer(start: frame, count: size)),
       checksumsValid(frame, size, l3: offsets.l3) != true {
        fatalError("checksums broken by the rewrite: before \(copy) after \([UInt8](UnsafeRawBufferPointer(start: frame, count: size)))")
    }
}

/// Swaps IP addresses and TCP/UDP ports (checksums stay valid: both are sums of the same words).
func reverse(_ p: UnsafeMutableRawPointer, _ size: Int) {
    var key = FlowKey()
    guard case .success(let o) = FlowExtractor.extract(p, length: size, into: &key) else { return }
    let type = p.be16(o.l3 - 2)
    if type == EtherType.ipv4, size >= o.l3 + 20 {
        let s = p.be32(o.l3 + 12); p.setBE32(o.l3 + 12, p.be32(o.l3 + 16)); p.setBE32(o.l3 + 16, s)
    } else if type == EtherType.ipv6, size >= o.l3 + 40 {
        let s = p.be128(o.l3 + 8); p.setBE128(o.l3 + 8, p.be128(o.l3 + 24)); p.setBE128(o.l3 + 24, s)
    } else {
        return
    }
    let proto = key[.ipProto]
    if (proto == 6 || proto == 17), o.hasL4, size >= o.l4 + 4 {
        let s = p.be16(o.l4); p.setBE16(o.l4, p.be16(o.l4 + 2)); p.setBE16(o.l4 + 2, s)
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzConntrack(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size >= 1 else { return 0 }
    let selector = data[0]
    let length = size - 1
    let frame = UnsafeMutableRawPointer.allocate(byteCount: max(length, 1), alignment: 1)
    defer { frame.deallocate() }
    frame.copyMemory(from: data + 1, byteCount: length)

    run(frame, length, action(selector))
    if selector & 0x40 != 0 {
        reverse(frame, length)
        run(frame, length, action(selector ^ 0x38))
    }

    clock += 50_000_000 + UInt64(selector) * 10_000_000
    runs += 1
    if runs % 512 == 0 {
        _ = tracker.sweep(now: clock)
        _ = tracker.takeOffloadEvents()
        for e in tracker.entries(zone: nil, now: clock).prefix(8) {
            _ = ConnectionTracker.format(e, verbose: true, statistics: true)
            tracker.setOffloaded(id: e.id, true)
            tracker.hardwareActivity(id: e.id, packets: (1, 1), bytes: (64, 64), lastUsed: clock)
            tracker.handBack(id: e.id)
        }
    }
    if runs % 4096 == 0 { _ = tracker.flush(zone: UInt16(selector & 3), tuple: nil) }
    return 0
}
