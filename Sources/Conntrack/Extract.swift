import Packet

/// What the tracker needs from one packet: its tuple (for an ICMP error, the tuple of
/// the connection it is about, reversed as OVS's extract_l4_icmp does) and where its
/// headers are. Parsed from the frame itself, as OVS's conn_key_extract parses again.
struct ParsedPacket {
    var tuple: CTTuple
    /// An ICMP error whose embedded header gave the tuple.
    var related = false
    var l3: Int
    var l4: Int
    /// One past the last byte of the IP datagram (Ethernet padding excluded).
    var end: Int
    /// For `related`: the embedded IP header and its transport header.
    var innerL3 = 0, innerL4 = 0
}

/// A TCP header's fields the window tracker reads.
struct TCPSegment {
    var flags: UInt16
    var seq: UInt32
    var ack: UInt32
    var window: UInt16
    var payloadLength: UInt32
    var headerLength: Int
}

enum TCPFlag {
    static let fin: UInt16 = 0x01, syn: UInt16 = 0x02, rst: UInt16 = 0x04
    static let psh: UInt16 = 0x08, ack: UInt16 = 0x10, urg: UInt16 = 0x20
}

enum PacketParser {
    /// Returns nil for anything OVS marks invalid before lookup: not IP, short or
    /// malformed headers, fragments, a bad IPv4 header checksum, port 0, unsupported ICMP
    /// types, ICMP errors about packets that did not come from the error's destination.
    /// With `verifyL4Checksum`, a bad TCP, UDP (IPv4: unless zero), ICMP or ICMPv6 checksum
    /// of the packet itself (not of a header an ICMP error quotes) makes it invalid, as
    /// OVS's check_l4_*; the caller turns it off when the checksum is partial (still to be
    /// filled in) or was vouched for (the kernel's CHECKSUM_UNNECESSARY), as OVS skips it
    /// when the NIC offloads checksums.
    static func parse(_ p: UnsafeRawPointer, length: Int, offsets: HeaderOffsets, zone: UInt16,
                      verifyL4Checksum: Bool = true) -> ParsedPacket? {
        let l3 = offsets.l3
        guard l3 >= 14, l3 <= length else { return nil }
        let ethType = p.be16(l3 - 2)
        var packet: ParsedPacket
        if ethType == EtherType.ipv4 {
            guard let ip = ipv4(p, at: l3, limit: length, validateChecksum: true) else { return nil }
            packet = ParsedPacket(tuple: CTTuple(src: CTAddress(ipv4: UInt32(truncatingIfNeeded: ip.src)), dst: CTAddress(ipv4: UInt32(truncatingIfNeeded: ip.dst)), proto: ip.proto, zone: zone),
                                  l3: l3, l4: ip.l4, end: ip.end)
        } else if ethType == EtherType.ipv6 {
            guard let ip = ipv6(p, at: l3, limit: length) else { return nil }
            packet = ParsedPacket(tuple: CTTuple(src: CTAddress(ipv6: ip.src), dst: CTAddress(ipv6: ip.dst), proto: ip.proto, zone: zone),
                                  l3: l3, l4: ip.l4, end: ip.end)
        } else {
            return nil
        }
        guard transport(p, packet: &packet, outer: true) else { return nil }
        if verifyL4Checksum && !l4ChecksumValid(p, packet: packet) { return nil }
        return packet
    }

    /// The packet's own transport protocol (a related packet's tuple is the quoted one's).
    static func proto(_ packet: ParsedPacket) -> UInt8 {
        packet.related ? (packet.tuple.isIPv6 ? ICMPv6.proto : IPProto.icmp) : packet.tuple.proto
    }

    /// OVS's checksum_valid / check_l4_icmp(6) over the transport header and payload, with
    /// the outer header's addresses (a related packet's tuple is the quoted one's).
    static func l4ChecksumValid(_ p: UnsafeRawPointer, packet: ParsedPacket) -> Bool {
        let v6 = packet.tuple.isIPv6, l3 = packet.l3, l4 = packet.l4
        // UDP sums its own length (transport() checked it fits), as check_l4_udp.
        let size = proto(packet) == IPProto.udp ? Int(p.be16(l4 + 4)) : packet.end - packet.l4
        let proto = proto(packet)
        func pseudo() -> UInt64 {
            v6 ? Checksum.pseudoHeaderIPv6(src: p.be128(l3 + 8), dst: p.be128(l3 + 24), proto: proto, length: size)
                : Checksum.pseudoHeaderIPv4(src: p.be32(l3 + 12), dst: p.be32(l3 + 16), proto: proto, length: size)
        }
        switch proto {
        case IPProto.tcp:
            return Checksum.compute(p + l4, count: size, initial: pseudo()) == 0
        case IPProto.udp:
            if !v6 && p.be16(l4 + 6) == 0 { return true }   // no checksum (IPv4 only)
            return Checksum.compute(p + l4, count: size, initial: pseudo()) == 0
        case IPProto.icmp where !v6:
            return Checksum.compute(p + l4, count: size) == 0
        case ICMPv6.proto where v6:
            return Checksum.compute(p + l4, count: size, initial: pseudo()) == 0
        default:
            return true
        }
    }

    struct IPHeader { var src: UInt128; var dst: UInt128; var proto: UInt8; var l4: Int; var end: Int }

    /// An IPv4 header at `at`, not past `limit`; a datagram shorter than its total length
    /// claims is cut at `limit` (ICMP errors quote only the start of a datagram).
    static func ipv4(_ p: UnsafeRawPointer, at: Int, limit: Int, validateChecksum: Bool) -> IPHeader? {
        guard limit - at >= 20 else { return nil }
        let ihl = Int(p.u8(at) & 0x0f) * 4
        guard p.u8(at) >> 4 == 4, ihl >= 20, limit - at >= ihl else { return nil }
        // MF set or a fragment offset: OVS's IP_IS_FRAGMENT.
        guard p.be16(at + 6) & 0x3fff == 0 else { return nil }
        if validateChecksum && Checksum.compute(p + at, count: ihl) != 0 { return nil }
        var end = limit
        if validateChecksum {
            let total = Int(p.be16(at + 2))
            guard total >= ihl, at + total <= limit else { return nil }
            end = at + total
        }
        return IPHeader(src: UInt128(p.be32(at + 12)), dst: UInt128(p.be32(at + 16)), proto: p.u8(at + 9),
                        l4: at + ihl, end: end)
    }

    /// An IPv6 header and its extension headers; any fragment header makes it unusable.
    /// A `quoted` header (in an ICMPv6 error) may claim more payload than was quoted.
    static func ipv6(_ p: UnsafeRawPointer, at: Int, limit: Int, quoted: Bool = false) -> IPHeader? {
        guard limit - at >= 40, p.u8(at) >> 4 == 6 else { return nil }
        var end = limit
        let payload = Int(p.be16(at + 4))
        if payload != 0 && !quoted {
            guard at + 40 + payload <= limit else { return nil }
            end = at + 40 + payload
        }
        var next = p.u8(at + 6)
        var off = at + 40
        while true {
            switch next {
            case 0, 43, 60:  // hop-by-hop, routing, destination options
                guard end - off >= 8 else { return nil }
                let len = (Int(p.u8(off + 1)) + 1) * 8
                guard end - off >= len else { return nil }
                next = p.u8(off)
                off += len
            case 51:  // authentication header: length in 4-byte units minus 2
                guard end - off >= 8 else { return nil }
                let len = (Int(p.u8(off + 1)) + 2) * 4
                guard end - off >= len else { return nil }
                next = p.u8(off)
                off += len
            case IPProto.ipv6Fragment:
                return nil
            default:
                return IPHeader(src: p.be128(at + 8), dst: p.be128(at + 24), proto: next, l4: off, end: end)
            }
        }
    }

    /// Ports or ICMP identity into `packet.tuple`; `outer` false for a header quoted in
    /// an ICMP error (no nested error allowed, shorter minimum lengths as OVS).
    static func transport(_ p: UnsafeRawPointer, packet: inout ParsedPacket, outer: Bool) -> Bool {
        let l4 = packet.l4
        let size = packet.end - l4
        guard size >= 0 else { return false }
        let v6 = packet.tuple.isIPv6
        switch packet.tuple.proto {
        case IPProto.tcp:
            if outer {
                guard size >= 20 else { return false }
                let doff = Int(p.u8(l4 + 12) >> 4) * 4
                guard doff >= 20, doff <= size else { return false }
            } else {
                // ICMP errors quote at least 8 bytes of the datagram (ICMP_ERROR_DATA_L4_LEN);
                // ICMPv6 errors carry more and OVS wants the whole fixed header.
                guard size >= (v6 ? 20 : 8) else { return false }
            }
            packet.tuple.srcPort = p.be16(l4)
            packet.tuple.dstPort = p.be16(l4 + 2)
            return packet.tuple.srcPort != 0 && packet.tuple.dstPort != 0
        case IPProto.udp:
            guard size >= 8 else { return false }
            if outer {
                let udpLength = Int(p.be16(l4 + 4))
                guard udpLength >= 8, udpLength <= size else { return false }
            }
            packet.tuple.srcPort = p.be16(l4)
            packet.tuple.dstPort = p.be16(l4 + 2)
            return packet.tuple.srcPort != 0 && packet.tuple.dstPort != 0
        case IPProto.icmp where !v6:
            guard size >= 8 else { return false }
            let type = p.u8(l4)
            if let reply = ICMPv4.reverse(type) {
                guard p.u8(l4 + 1) == 0 else { return false }
                setICMPQuery(&packet.tuple, id: p.be16(l4 + 4), type: type, reply: reply)
                return true
            }
            switch type {
            case ICMPv4.destinationUnreachable, ICMPv4.timeExceeded, ICMPv4.parameterProblem,
                 ICMPv4.sourceQuench, ICMPv4.redirect:
                guard outer, let inner = ipv4(p, at: l4 + 8, limit: packet.end, validateChecksum: false) else { return false }
                return relate(p, packet: &packet, inner: inner, innerL3: l4 + 8)
            default:
                return false
            }
        case ICMPv6.proto where v6:
            guard size >= 8 else { return false }
            let type = p.u8(l4)
            if let reply = ICMPv6.reverse(type) {
                guard p.u8(l4 + 1) == 0 else { return false }
                setICMPQuery(&packet.tuple, id: p.be16(l4 + 4), type: type, reply: reply)
                return true
            }
            switch type {
            case ICMPv6.destinationUnreachable, ICMPv6.packetTooBig, ICMPv6.timeExceeded, ICMPv6.parameterProblem:
                guard outer, let inner = ipv6(p, at: l4 + 8, limit: packet.end, quoted: true) else { return false }
                return relate(p, packet: &packet, inner: inner, innerL3: l4 + 8)
            default:
                return false
            }
        default:
            // Other protocols have no L4 identity: ports stay zero.
            return true
        }
    }

    static func setICMPQuery(_ t: inout CTTuple, id: UInt16, type: UInt8, reply: UInt8) {
        t.srcPort = id
        t.dstPort = id
        t.srcICMPType = type
        t.dstICMPType = reply
    }

    /// An ICMP error: the tuple becomes the quoted datagram's, reversed (the quoted
    /// packet went the other way). pf does not check it, OVS does: the quoted packet
    /// must have come from the error's destination.
    static func relate(_ p: UnsafeRawPointer, packet: inout ParsedPacket, inner: IPHeader, innerL3: Int) -> Bool {
        let v6 = packet.tuple.isIPv6
        let innerSrc = v6 ? CTAddress(ipv6: inner.src) : CTAddress(ipv4: UInt32(truncatingIfNeeded: inner.src))
        guard innerSrc == packet.tuple.dst else { return false }
        var quoted = ParsedPacket(
            tuple: CTTuple(src: innerSrc, dst: v6 ? CTAddress(ipv6: inner.dst) : CTAddress(ipv4: UInt32(truncatingIfNeeded: inner.dst)),
                           proto: inner.proto, zone: packet.tuple.zone),
            l3: innerL3, l4: inner.l4, end: packet.end)
        guard transport(p, packet: &quoted, outer: false) else { return false }
        packet.tuple = quoted.tuple.reversed()
        packet.related = true
        packet.innerL3 = innerL3
        packet.innerL4 = inner.l4
        return true
    }

    static func tcpSegment(_ p: UnsafeRawPointer, _ packet: ParsedPacket) -> TCPSegment {
        let l4 = packet.l4
        let doff = Int(p.u8(l4 + 12) >> 4) * 4
        return TCPSegment(flags: p.be16(l4 + 12) & 0x0fff, seq: p.be32(l4 + 4), ack: p.be32(l4 + 8),
                          window: p.be16(l4 + 14), payloadLength: UInt32(max(0, packet.end - l4 - doff)),
                          headerLength: doff)
    }
}
