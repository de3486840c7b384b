/// Builds a frame from a flow key, as `ofproto/trace` does for a flow description: the
/// smallest valid Ethernet frame (padded to 60 bytes) that `FlowExtractor` turns back
/// into the same packet fields, with every checksum right. Fields the description left
/// out are zero, except TTL / hop limit (64) and the ARP opcode (request): a frame with
/// TTL 0 would not be forwarded anywhere, which is not what anyone traces.
public enum FrameBuilder {
    public struct Failure: Error, Sendable, Equatable, CustomStringConvertible {
        public let description: String
        init(_ d: String) { description = d }
    }

    /// Frames shorter than this are padded, as a NIC pads them on the wire.
    public static let minimumFrame = 60
    /// Offset of a later fragment (bytes), where a first fragment of 1480 would end.
    static let laterFragmentOffset = 1480

    /// `mask` says which fields the description gave (a zero mask: use the default).
    public static func build(key: FlowKey, mask: FlowKey) throws(Failure) -> [UInt8] {
        guard key[.packetType] == 0 else { throw Failure("only Ethernet packets can be built (packet_type is not ethernet)") }
        var f = ByteWriter()
        f.mac(key[.ethDst])
        f.mac(key[.ethSrc])
        let tci = UInt16(truncatingIfNeeded: key[.vlanTCI])
        if tci & VLAN.present != 0 {
            f.be16(key[.vlanTPID] == 0 ? EtherType.vlan : UInt16(truncatingIfNeeded: key[.vlanTPID]))
            f.be16(tci & ~VLAN.present)
            let inner = UInt16(truncatingIfNeeded: key[.cvlanTCI])
            if inner & VLAN.present != 0 {
                f.be16(key[.cvlanTPID] == 0 ? EtherType.vlan : UInt16(truncatingIfNeeded: key[.cvlanTPID]))
                f.be16(inner & ~VLAN.present)
            }
        }
        let ethType = UInt16(truncatingIfNeeded: key[.ethType])
        let ttl = mask[.ipTTL] == 0 ? 64 : UInt8(truncatingIfNeeded: key[.ipTTL])
        switch ethType {
        case EtherType.ipv4:
            f.be16(ethType)
            ipv4(&f, key: key, ttl: ttl)
        case EtherType.ipv6:
            f.be16(ethType)
            try ipv6(&f, key: key, hopLimit: ttl)
        case EtherType.arp, EtherType.rarp:
            f.be16(ethType)
            f.be16(1)
            f.be16(EtherType.ipv4)
            f.u8(6)
            f.u8(4)
            f.be16(mask[.ipProto] == 0 ? 1 : UInt16(truncatingIfNeeded: key[.ipProto]))
            f.mac(key[.arpSHA])
            f.be32(UInt32(truncatingIfNeeded: key[.ipv4Src]))
            f.mac(key[.arpTHA])
            f.be32(UInt32(truncatingIfNeeded: key[.ipv4Dst]))
        case EtherType.mplsUnicast, EtherType.mplsMulticast:
            f.be16(ethType)
            // Labels down to the bottom of the stack, as far as the key knows them.
            for field in [FlowField.mplsLSE, .mplsLSE1, .mplsLSE2] {
                let lse = UInt32(truncatingIfNeeded: key[field])
                f.be32(lse)
                if lse & 0x100 != 0 { break }
            }
        case EtherType.ieee8022:
            // An 802.3 length and an LLC header that is not SNAP: what the key calls 802.2.
            f.be16(UInt16(minimumFrame - 14))
            f.bytes += [0x42, 0x42, 0x03]
        case 0:
            throw Failure("the packet needs an eth_type")
        default:
            guard ethType >= 0x600 else { throw Failure("eth_type \(ethType) is an 802.3 length, not a type") }
            f.be16(ethType)
        }
        if f.bytes.count < minimumFrame { f.bytes += [UInt8](repeating: 0, count: minimumFrame - f.bytes.count) }
        return f.bytes
    }

    static func ipv4(_ f: inout ByteWriter, key: FlowKey, ttl: UInt8) {
        let proto = UInt8(truncatingIfNeeded: key[.ipProto])
        let frag = UInt8(truncatingIfNeeded: key[.ipFrag])
        let src = UInt32(truncatingIfNeeded: key[.ipv4Src]), dst = UInt32(truncatingIfNeeded: key[.ipv4Dst])
        let later = frag == FragmentType.later.rawValue
        let l4 = later ? [UInt8](repeating: 0, count: 8)
            : transport(proto: proto, icmp: IPProto.icmp, key: key,
                        pseudo: { Checksum.pseudoHeaderIPv4(src: src, dst: dst, proto: proto, length: $0) })
        let start = f.bytes.count
        f.u8(0x45)
        f.u8(UInt8(truncatingIfNeeded: key[.ipTOS]))
        f.be16(UInt16(20 + l4.count))
        f.be16(0)
        let fragField: UInt16 = later ? UInt16(laterFragmentOffset / 8) : frag == FragmentType.first.rawValue ? 0x2000 : 0
        f.be16(fragField)
        f.u8(ttl)
        f.u8(proto)
        f.be16(0)
        f.be32(src)
        f.be32(dst)
        let sum = f.bytes[start...].withUnsafeBytes { Checksum.compute($0.baseAddress!, count: 20) }
        f.setBE16(start + 10, sum)
        f.bytes += l4
    }

    static func ipv6(_ f: inout ByteWriter, key: FlowKey, hopLimit: UInt8) throws(Failure) {
        let proto = UInt8(truncatingIfNeeded: key[.ipProto])
        let frag = UInt8(truncatingIfNeeded: key[.ipFrag])
        let src = key[.ipv6Src], dst = key[.ipv6Dst]
        var payload: [UInt8] = []
        var next = proto
        if frag == FragmentType.later.rawValue {
            // The key of a later fragment says "fragment" as its protocol: what follows is unknown.
            next = IPProto.ipv6Fragment
            payload = [IPProto.ipv6None, 0] + be16(UInt16(laterFragmentOffset)) + [0, 0, 0, 1]
        } else {
            if frag == FragmentType.first.rawValue {
                next = IPProto.ipv6Fragment
                payload = [proto, 0, 0, 1, 0, 0, 0, 1]   // offset 0, more fragments
            }
            if FlowExtractor.isIPv6ExtensionHeader(proto) && proto != IPProto.ipv6None {
                throw Failure("ipv6 proto \(proto) is an extension header: give the upper-layer protocol")
            }
            payload += transport(proto: proto, icmp: IPProto.icmpv6, key: key,
                                 pseudo: { Checksum.pseudoHeaderIPv6(src: src, dst: dst, proto: proto, length: $0) })
        }
        f.be32(6 << 28 | UInt32(truncatingIfNeeded: key[.ipTOS]) << 20 | UInt32(truncatingIfNeeded: key[.ipv6Label] & 0xf_ffff))
        f.be16(UInt16(payload.count))
        f.u8(next)
        f.u8(hopLimit)
        f.be128(src)
        f.be128(dst)
        f.bytes += payload
    }

    /// The L4 header (and ND body) with its checksum; `pseudo(length)` is the
    /// pseudo-header sum of the network layer.
    static func transport(proto: UInt8, icmp: UInt8, key: FlowKey, pseudo: (Int) -> UInt64) -> [UInt8] {
        let sport = UInt16(truncatingIfNeeded: key[.tpSrc]), dport = UInt16(truncatingIfNeeded: key[.tpDst])
        var h = ByteWriter()
        var checksumAt: Int?
        switch proto {
        case IPProto.tcp:
            h.be16(sport)
            h.be16(dport)
            h.be32(0)
            h.be32(0)
            h.be16(5 << 12 | UInt16(truncatingIfNeeded: key[.tcpFlags] & 0x0fff))
            h.be16(0xffff)
            h.be16(0)
            h.be16(0)
            checksumAt = 16
        case IPProto.udp:
            h.be16(sport)
            h.be16(dport)
            h.be16(8)
            h.be16(0)
            checksumAt = 6
        case IPProto.sctp:
            h.be16(sport)
            h.be16(dport)
            h.be32(0)
            h.be32(0)
            let crc = h.bytes.withUnsafeBytes { CRC32C.checksum($0.baseAddress!, count: 12) }
            // Stored as HeaderRewrite stores it (the CRC's little-endian bytes).
            withUnsafeBytes(of: crc.littleEndian) { for i in 0..<4 { h.bytes[8 + i] = $0[i] } }
        case icmp:
            let type = UInt8(truncatingIfNeeded: sport), code = UInt8(truncatingIfNeeded: dport)
            h.u8(type)
            h.u8(code)
            h.be16(0)
            h.be32(0)
            checksumAt = 2
            if icmp == IPProto.icmpv6 && code == 0 && (type == 135 || type == 136) {
                h.be128(key[.ndTarget])
                let sll = key[.ndSLL], tll = key[.ndTLL]
                if sll != 0 { h.u8(1); h.u8(1); h.mac(sll) }
                if tll != 0 { h.u8(2); h.u8(1); h.mac(tll) }
            }
        default:
            return []
        }
        if let at = checksumAt {
            if proto == IPProto.udp { h.setBE16(4, UInt16(h.bytes.count)) }
            // ICMPv4 has no pseudo-header; TCP, UDP and ICMPv6 do.
            let initial = proto == IPProto.icmp && icmp == IPProto.icmp ? 0 : pseudo(h.bytes.count)
            var sum = h.bytes.withUnsafeBytes { Checksum.compute($0.baseAddress!, count: $0.count, initial: initial) }
            if proto == IPProto.udp && sum == 0 { sum = 0xffff }
            h.setBE16(at, sum)
        }
        return h.bytes
    }

    static func be16(_ v: UInt16) -> [UInt8] { [UInt8(v >> 8), UInt8(truncatingIfNeeded: v)] }
}

/// Big-endian appends into a byte array.
struct ByteWriter {
    var bytes: [UInt8] = []
    mutating func u8(_ v: UInt8) { bytes.append(v) }
    mutating func be16(_ v: UInt16) { bytes += [UInt8(v >> 8), UInt8(truncatingIfNeeded: v)] }
    mutating func be32(_ v: UInt32) { for s in stride(from: 24, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: v >> UInt32(s))) } }
    mutating func mac(_ v: UInt64) { for s in stride(from: 40, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: v >> UInt64(s))) } }
    mutating func be128(_ v: UInt128) { for s in stride(from: 120, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: v >> UInt128(s))) } }
    mutating func setBE16(_ at: Int, _ v: UInt16) {
        bytes[at] = UInt8(v >> 8)
        bytes[at + 1] = UInt8(truncatingIfNeeded: v)
    }
}
