import Packet

/// NAT as OVS's userspace conntrack does it (nat_get_unique_tuple, nat_packet): the
/// address is picked from the range by a hash of the tuple, ports are searched for a
/// reply tuple no other connection uses, and packets are rewritten in place with every
/// checksum updated.
enum NAT {
    static let ephemeralPorts: ClosedRange<UInt16> = 1024...65535

    /// Chooses the reply tuple of a connection committed with `spec`; nil when the
    /// tuple space is exhausted. `inUse` says whether a tuple belongs to a connection.
    static func uniqueReply(for original: CTTuple, spec: NATSpec, basis: UInt32,
                            random: () -> UInt32, inUse: (CTTuple) -> Bool) -> CTTuple? {
        var reply = original.reversed()
        let source = spec.kind == .source
        let hash = spec.random ? random() : rangeHash(original, spec: spec, basis: basis)

        // Address: from the range by hash; without a range the address stays.
        if let range = spec.addresses {
            let span = range.upperBound.value &- range.lowerBound.value
            let offset = span >= UInt128(UInt32.max) ? UInt128(hash) : UInt128(hash) % (span + 1)
            let chosen = CTAddress(value: range.lowerBound.value + offset, isIPv6: original.isIPv6)
            if source { reply.dst = chosen } else { reply.src = chosen }
        }
        guard original.hasPorts else { return inUse(reply) ? nil : reply }

        // Source port search range: SNAT with a port range searches it from a hashed
        // start; otherwise the original port first, then its class (as Linux/OVS: low
        // ports stay low, privileged ports stay privileged).
        var sourcePorts: ClosedRange<UInt16>
        var sourceStart: UInt16
        if source, let ports = spec.ports {
            sourcePorts = ports
            sourceStart = ports.lowerBound &+ UInt16(truncatingIfNeeded: hash % (UInt32(ports.upperBound - ports.lowerBound) + 1))
        } else {
            sourceStart = original.srcPort
            sourcePorts = sourceStart < 512 ? 1...511 : sourceStart < 1024 ? 600...1023 : ephemeralPorts
        }
        reply.dstPort = sourceStart
        if !source, let ports = spec.ports {
            let start = ports.lowerBound &+ UInt16(truncatingIfNeeded: hash % (UInt32(ports.upperBound - ports.lowerBound) + 1))
            reply.srcPort = start
            if let found = searchPort(reply, \.srcPort, start: start, range: ports, random: random, inUse: inUse) {
                return found
            }
            reply.srcPort = start
        }
        return searchPort(reply, \.dstPort, start: sourceStart, range: sourcePorts, random: random, inUse: inUse)
    }

    /// nat_get_unique_l4: up to 128 ports from `start` (wrapping in the range), then
    /// rounds of half as many from random starts while at least 16.
    static func searchPort(_ candidate: CTTuple, _ port: WritableKeyPath<CTTuple, UInt16>, start: UInt16,
                           range: ClosedRange<UInt16>, random: () -> UInt32, inUse: (CTTuple) -> Bool) -> CTTuple? {
        var t = candidate
        let size = Int(range.upperBound) - Int(range.lowerBound) + 1
        var attempts = min(size, 128)
        var current = Int(start)
        while true {
            for i in 0..<attempts {
                var p = current + i
                if p > Int(range.upperBound) { p = Int(range.lowerBound) + (p - Int(range.upperBound) - 1) % size }
                t[keyPath: port] = UInt16(p)
                if !inUse(t) { return t }
            }
            guard attempts < size, attempts >= 16 else { return nil }
            attempts /= 2
            current = Int(range.lowerBound) + Int(random() % UInt32(size))
        }
    }

    /// Hash of the range and the tuple (OVS's nat_range_hash); `persistent` leaves the
    /// ports out so a client keeps its address across connections.
    static func rangeHash(_ t: CTTuple, spec: NATSpec, basis: UInt32) -> UInt32 {
        var h = UInt64(basis)
        func mix(_ v: UInt64) { h = (h ^ v) &* 0x100_0000_01b3 &+ 0x9e37_79b9_7f4a_7c15; h ^= h >> 29 }
        if let a = spec.addresses {
            mix(UInt64(truncatingIfNeeded: a.lowerBound.value)); mix(UInt64(truncatingIfNeeded: a.lowerBound.value >> 64))
            mix(UInt64(truncatingIfNeeded: a.upperBound.value)); mix(UInt64(truncatingIfNeeded: a.upperBound.value >> 64))
        }
        if let p = spec.ports { mix(UInt64(p.lowerBound) << 16 | UInt64(p.upperBound)) }
        mix(UInt64(truncatingIfNeeded: t.src.value)); mix(UInt64(truncatingIfNeeded: t.src.value >> 64))
        mix(UInt64(truncatingIfNeeded: t.dst.value)); mix(UInt64(truncatingIfNeeded: t.dst.value >> 64))
        if !spec.persistent { mix(UInt64(t.srcPort) << 16 | UInt64(t.dstPort)) }
        mix(UInt64(t.proto) << 16 | UInt64(t.zone))
        return UInt32(truncatingIfNeeded: h ^ (h >> 32))
    }
}

extension CTAddress {
    init(value: UInt128, isIPv6: Bool) {
        if isIPv6 { self.init(ipv6: value) } else { self.init(ipv4: UInt32(truncatingIfNeeded: value)) }
    }
}

/// In-place rewrites with incremental checksum updates (RFC 1624).
enum Rewrite {
    /// Where a transport checksum is and whether the pseudo-header covers it.
    static func l4ChecksumOffset(proto: UInt8, v6: Bool) -> Int? {
        switch proto {
        case IPProto.tcp: 16
        case IPProto.udp: 6
        case ICMPv6.proto where v6: 2
        default: nil
        }
    }

    /// Sets the IP source or destination address of the header at `l3` and fixes the
    /// IPv4 header checksum and the transport checksum at `l4` (if `l4End` covers it).
    /// `partial`: the transport checksum holds a pseudo-header sum (CHECKSUM_PARTIAL).
    static func setAddress(_ p: UnsafeMutableRawPointer, l3: Int, l4: Int, l4End: Int, proto: UInt8,
                           source: Bool, to address: CTAddress, partial: Bool) {
        let csumAt = l4ChecksumOffset(proto: proto, v6: address.isIPv6).map { l4 + $0 }
        if !address.isIPv6 {
            let at = l3 + (source ? 12 : 16)
            let old = p.be32(at)
            let new = UInt32(truncatingIfNeeded: address.value)
            guard old != new else { return }
            p.setBE32(at, new)
            p.setBE16(l3 + 10, Checksum.replace32(p.be16(l3 + 10), old: old, new: new))
            if let c = csumAt, c + 2 <= l4End {
                // UDP over IPv4 may carry no checksum (0): leave it so.
                if proto == IPProto.udp && p.be16(c) == 0 { return }
                var v = Checksum.replace32(p.be16(c), old: old, new: new, partial: partial)
                if proto == IPProto.udp && v == 0 && !partial { v = 0xffff }
                p.setBE16(c, v)
            }
        } else {
            let at = l3 + (source ? 8 : 24)
            let old = p.be128(at)
            guard old != address.value else { return }
            p.setBE128(at, address.value)
            if let c = csumAt, c + 2 <= l4End {
                var v = Checksum.replace128(p.be16(c), old: old, new: address.value, partial: partial)
                if proto == IPProto.udp && v == 0 && !partial { v = 0xffff }
                p.setBE16(c, v)
            }
        }
    }

    /// Sets TCP/UDP ports (what fits before `l4End`), fixing the transport checksum.
    static func setPorts(_ p: UnsafeMutableRawPointer, l4: Int, l4End: Int, proto: UInt8, v6: Bool,
                         src: UInt16, dst: UInt16, partial: Bool) {
        guard proto == IPProto.tcp || proto == IPProto.udp, l4 + 4 <= l4End else { return }
        let csumAt = l4 + (l4ChecksumOffset(proto: proto, v6: v6) ?? 0)
        // Ports are not in the pseudo-header: a partial checksum does not cover them.
        let hasChecksum = !partial && csumAt + 2 <= l4End && !(proto == IPProto.udp && !v6 && p.be16(csumAt) == 0)
        for (at, new) in [(l4, src), (l4 + 2, dst)] {
            let old = p.be16(at)
            guard old != new else { continue }
            p.setBE16(at, new)
            if hasChecksum {
                var v = Checksum.replace16(p.be16(csumAt), old: old, new: new)
                if proto == IPProto.udp && v == 0 { v = 0xffff }
                p.setBE16(csumAt, v)
            }
        }
    }
}
