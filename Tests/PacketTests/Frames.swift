import Packet

/// Builds test frames byte by byte.
struct Frame {
    var bytes: [UInt8] = []

    mutating func u8(_ v: UInt8) { bytes.append(v) }
    mutating func be16(_ v: UInt16) { bytes += [UInt8(v >> 8), UInt8(v & 0xff)] }
    mutating func be32(_ v: UInt32) { be16(UInt16(v >> 16)); be16(UInt16(v & 0xffff)) }
    mutating func mac(_ v: UInt64) { be16(UInt16(v >> 32)); be32(UInt32(v & 0xffff_ffff)) }
    mutating func ipv6(_ v: UInt128) { be32(UInt32(v >> 96)); be32(UInt32((v >> 64) & 0xffff_ffff)); be32(UInt32((v >> 32) & 0xffff_ffff)); be32(UInt32(v & 0xffff_ffff)) }
    mutating func zeros(_ n: Int) { bytes += [UInt8](repeating: 0, count: n) }

    static let srcMAC: UInt64 = 0x0200_0000_0001
    static let dstMAC: UInt64 = 0x0200_0000_0002

    mutating func ethernet(type: UInt16, vlans: [(UInt16, UInt16)] = []) {
        mac(Frame.dstMAC); mac(Frame.srcMAC)
        for (tpid, tci) in vlans { be16(tpid); be16(tci) }
        be16(type)
    }

    /// IPv4 header with a correct checksum; `payload` bytes follow.
    mutating func ipv4(src: UInt32, dst: UInt32, proto: UInt8, payloadLength: Int, tos: UInt8 = 0, ttl: UInt8 = 64,
                       fragment: UInt16 = 0, options: [UInt8] = []) {
        let start = bytes.count
        let ihl = 5 + options.count / 4
        u8(UInt8(0x40 | ihl)); u8(tos); be16(UInt16(ihl * 4 + payloadLength))
        be16(0x1234); be16(fragment); u8(ttl); u8(proto); be16(0)
        be32(src); be32(dst)
        bytes += options
        let c = bytes.withUnsafeBytes { Checksum.compute($0.baseAddress! + start, count: ihl * 4) }
        bytes[start + 10] = UInt8(c >> 8); bytes[start + 11] = UInt8(c & 0xff)
    }

    mutating func ipv6(src: UInt128, dst: UInt128, next: UInt8, payloadLength: Int, tclass: UInt8 = 0, label: UInt32 = 0, hlimit: UInt8 = 64) {
        be32(0x6000_0000 | UInt32(tclass) << 20 | label); be16(UInt16(payloadLength)); u8(next); u8(hlimit)
        ipv6(src); ipv6(dst)
    }

    mutating func tcp(src: UInt16, dst: UInt16, flags: UInt16 = 0x002, payload: [UInt8] = []) {
        be16(src); be16(dst); be32(1); be32(0); be16(0x5000 | flags); be16(8192); be16(0); be16(0)
        bytes += payload
    }

    mutating func udp(src: UInt16, dst: UInt16, payload: [UInt8] = []) {
        be16(src); be16(dst); be16(UInt16(8 + payload.count)); be16(0)
        bytes += payload
    }

    /// Fills the TCP/UDP checksum of an IPv4 packet whose IP header starts at `l3`.
    mutating func fixL4ChecksumIPv4(l3: Int) {
        let ihl = Int(bytes[l3] & 0x0f) * 4
        let total = Int(bytes[l3 + 2]) << 8 | Int(bytes[l3 + 3])
        let proto = bytes[l3 + 9]
        let th = l3 + ihl
        let off = proto == 6 ? 16 : 6
        bytes[th + off] = 0; bytes[th + off + 1] = 0
        let c = bytes.withUnsafeBytes { raw -> UInt16 in
            let p = raw.baseAddress!
            let pseudo = Checksum.pseudoHeaderIPv4(src: p.be32(l3 + 12), dst: p.be32(l3 + 16), proto: proto, length: total - ihl)
            return Checksum.compute(p + th, count: total - ihl, initial: pseudo)
        }
        bytes[th + off] = UInt8(c >> 8); bytes[th + off + 1] = UInt8(c & 0xff)
    }

    mutating func fixL4ChecksumIPv6(l3: Int, l4: Int, proto: UInt8, csumOffset: Int) {
        let len = bytes.count - l4
        bytes[l4 + csumOffset] = 0; bytes[l4 + csumOffset + 1] = 0
        let c = bytes.withUnsafeBytes { raw -> UInt16 in
            let p = raw.baseAddress!
            let pseudo = Checksum.pseudoHeaderIPv6(src: p.be128(l3 + 8), dst: p.be128(l3 + 24), proto: proto, length: len)
            return Checksum.compute(p + l4, count: len, initial: pseudo)
        }
        bytes[l4 + csumOffset] = UInt8(c >> 8); bytes[l4 + csumOffset + 1] = UInt8(c & 0xff)
    }

    static func ipv4TCP(src: UInt32 = 0xC612_0001, dst: UInt32 = 0xC612_0002, sport: UInt16 = 1000, dport: UInt16 = 80,
                        payload: [UInt8] = Array("hello".utf8), vlans: [(UInt16, UInt16)] = []) -> Frame {
        var f = Frame()
        f.ethernet(type: 0x0800, vlans: vlans)
        let l3 = f.bytes.count
        f.ipv4(src: src, dst: dst, proto: 6, payloadLength: 20 + payload.count)
        f.tcp(src: sport, dst: dport, payload: payload)
        f.fixL4ChecksumIPv4(l3: l3)
        return f
    }

    static func ipv4UDP(src: UInt32 = 0xC612_0001, dst: UInt32 = 0xC612_0002, sport: UInt16 = 1000, dport: UInt16 = 53,
                        payload: [UInt8] = Array("hello".utf8)) -> Frame {
        var f = Frame()
        f.ethernet(type: 0x0800)
        f.ipv4(src: src, dst: dst, proto: 17, payloadLength: 8 + payload.count)
        f.udp(src: sport, dst: dport, payload: payload)
        f.fixL4ChecksumIPv4(l3: 14)
        return f
    }
}

/// Owns a buffer with headroom and hands out a PacketBuffer over it.
final class TestSlot {
    let capacity = 4096
    let headroom = 256
    let storage: UnsafeMutableRawPointer
    init() { storage = .allocate(byteCount: 4096, alignment: 64) }
    deinit { storage.deallocate() }

    func buffer(_ bytes: [UInt8]) -> PacketBuffer {
        bytes.withUnsafeBytes { (storage + headroom).copyMemory(from: $0.baseAddress!, byteCount: bytes.count) }
        return PacketBuffer(storage: storage, capacity: capacity, head: headroom, length: bytes.count)
    }
}

func extract(_ bytes: [UInt8], udpGSO: Bool = false) -> (FlowKey, HeaderOffsets?) {
    var key = FlowKey()
    let r = bytes.withUnsafeBytes { FlowExtractor.extract($0.baseAddress!, length: bytes.count, into: &key, udpFragmentOffload: udpGSO) }
    switch r {
    case .success(let o): return (key, o)
    case .failure: return (key, nil)
    }
}

func verifyIPv4HeaderChecksum(_ bytes: [UInt8], l3: Int = 14) -> Bool {
    let ihl = Int(bytes[l3] & 0x0f) * 4
    return bytes.withUnsafeBytes { Checksum.fold(Checksum.partialSum($0.baseAddress! + l3, count: ihl)) == 0xffff }
}

func verifyL4ChecksumIPv4(_ bytes: [UInt8], l3: Int = 14) -> Bool {
    bytes.withUnsafeBytes { raw -> Bool in
        let p = raw.baseAddress!
        let ihl = Int(p.u8(l3) & 0x0f) * 4
        let total = Int(p.be16(l3 + 2))
        let pseudo = Checksum.pseudoHeaderIPv4(src: p.be32(l3 + 12), dst: p.be32(l3 + 16), proto: p.u8(l3 + 9), length: total - ihl)
        return Checksum.fold(Checksum.partialSum(p + l3 + ihl, count: total - ihl, initial: pseudo)) == 0xffff
    }
}

func verifyL4ChecksumIPv6(_ bytes: [UInt8], l3: Int, l4: Int, proto: UInt8) -> Bool {
    bytes.withUnsafeBytes { raw -> Bool in
        let p = raw.baseAddress!
        let len = bytes.count - l4
        let pseudo = Checksum.pseudoHeaderIPv6(src: p.be128(l3 + 8), dst: p.be128(l3 + 24), proto: proto, length: len)
        return Checksum.fold(Checksum.partialSum(p + l4, count: len, initial: pseudo)) == 0xffff
    }
}
