/// Tunnel metadata of a packet: what the datapath's `tunnel(...)` key and
/// `set(tunnel(...))` action carry.
public struct TunnelMetadata: Sendable, Equatable, Hashable {
    public var id: UInt64 = 0
    public var ipv4Src: UInt32 = 0
    public var ipv4Dst: UInt32 = 0
    public var ipv6Src: UInt128 = 0
    public var ipv6Dst: UInt128 = 0
    public var tos: UInt8 = 0
    public var ttl: UInt8 = 0
    public var tpSrc: UInt16 = 0
    public var tpDst: UInt16 = 0
    public var flags: TunnelFlags = []

    public init() {}

    public var isIPv6: Bool { ipv6Dst != 0 || ipv6Src != 0 }
    public var isSet: Bool { ipv4Dst != 0 || ipv4Src != 0 || isIPv6 }

    /// Copies the metadata into the tunnel words of a flow key.
    @inlinable
    public func store(into key: inout FlowKey) {
        key[.tunnelID] = id
        key[.tunnelIPv4Src] = UInt64(ipv4Src)
        key[.tunnelIPv4Dst] = UInt64(ipv4Dst)
        key[.tunnelIPv6Src] = ipv6Src
        key[.tunnelIPv6Dst] = ipv6Dst
        key[.tunnelTOS] = UInt64(tos)
        key[.tunnelTTL] = UInt64(ttl)
        key[.tunnelTPSrc] = UInt64(tpSrc)
        key[.tunnelTPDst] = UInt64(tpDst)
        key[.tunnelFlags] = flags.rawValue
    }

    @inlinable
    public init(from key: borrowing FlowKey) {
        id = key[.tunnelID]
        ipv4Src = UInt32(truncatingIfNeeded: key[.tunnelIPv4Src])
        ipv4Dst = UInt32(truncatingIfNeeded: key[.tunnelIPv4Dst])
        ipv6Src = key[.tunnelIPv6Src]
        ipv6Dst = key[.tunnelIPv6Dst]
        tos = UInt8(truncatingIfNeeded: key[.tunnelTOS])
        ttl = UInt8(truncatingIfNeeded: key[.tunnelTTL])
        tpSrc = UInt16(truncatingIfNeeded: key[.tunnelTPSrc])
        tpDst = UInt16(truncatingIfNeeded: key[.tunnelTPDst])
        flags = TunnelFlags(rawValue: key[.tunnelFlags])
    }
}

/// ECN handling across an IP tunnel (RFC 6040), as the kernel's INET_ECN_* helpers.
public enum ECN {
    public static let mask: UInt8 = 0x03
    public static let notECT: UInt8 = 0
    public static let ect0: UInt8 = 2
    public static let ce: UInt8 = 3

    /// Outer TOS for encapsulation: the configured DSCP with the inner ECN copied
    /// (CE becomes ECT(0)).
    @inlinable
    public static func encapsulate(outer: UInt8, inner: UInt8) -> UInt8 {
        let innerECN = inner & mask
        return (outer & ~mask) | (innerECN == ce ? ect0 : innerECN)
    }

    /// What to do with the inner header on decapsulation: nil means drop
    /// (outer CE on a not-ECT inner packet), otherwise the inner ECN bits to write.
    @inlinable
    public static func decapsulate(outer: UInt8, inner: UInt8) -> UInt8? {
        if outer & mask == ce {
            if inner & mask == notECT { return nil }
            return ce
        }
        return inner & mask
    }
}

/// VXLAN (RFC 7348) building blocks: an outer header template built once per tunnel
/// endpoint and stamped onto each packet, and the receive-side parser.
public enum VXLAN {
    public static let defaultPort: UInt16 = 4789
    public static let headerLength = 8
    /// The eSwitch pipeline's note in the reserved last byte of the VXLAN header of a
    /// frame it sends up p0: this bit, and the tunnel flags it parsed (ESW_VXLAN_NOTE and
    /// ESW_VXLAN_NOTE_FLAGS in bpf/esw_shared.h).
    public static let pipelineNote: UInt8 = 0x80
    public static let pipelineNoteFlags: UInt8 = UInt8(TunnelFlags.dontFragment.rawValue | TunnelFlags.checksum.rawValue)
    /// Ethernet + IPv4 + UDP + VXLAN.
    public static let overheadIPv4 = 14 + 20 + 8 + 8
    /// Ethernet + IPv6 + UDP + VXLAN.
    public static let overheadIPv6 = 14 + 40 + 8 + 8

    /// Source port from the inner flow hash, in the kernel's default local port range.
    @inlinable
    public static func sourcePort(hash: UInt32, min: UInt16 = 32768, max: UInt16 = 61000) -> UInt16 {
        UInt16(truncatingIfNeeded: (UInt64(hash) &* UInt64(max - min)) >> 32) &+ min
    }

    /// A prebuilt outer header. Length, checksum, identification and source port are
    /// filled per packet.
    public struct EncapTemplate: Sendable, Equatable {
        public var bytes: [UInt8]
        public var isIPv6: Bool
        public var checksum: Bool

        public init(bytes: [UInt8], isIPv6: Bool, checksum: Bool) {
            self.bytes = bytes
            self.isIPv6 = isIPv6
            self.checksum = checksum
        }

        public var length: Int { bytes.count }
    }

    /// Builds the outer Ethernet/IP/UDP/VXLAN header for `tunnel` (TOS and TTL already
    /// resolved; TTL 0 means 64, the kernel's default hop limit).
    public static func template(ethSrc: UInt64, ethDst: UInt64, tunnel: TunnelMetadata, srcIPv4: UInt32? = nil,
                                srcIPv6: UInt128? = nil, udpDst: UInt16) -> EncapTemplate {
        let v6 = tunnel.isIPv6
        var h = [UInt8](repeating: 0, count: v6 ? overheadIPv6 : overheadIPv4)
        h.withUnsafeMutableBytes { raw in
            let p = raw.baseAddress!
            p.setBE48(0, ethDst)
            p.setBE48(6, ethSrc)
            let ttl = tunnel.ttl == 0 ? 64 : tunnel.ttl
            var l4 = 34
            if v6 {
                p.setBE16(12, EtherType.ipv6)
                p.setBE32(14, 0x6000_0000 | UInt32(tunnel.tos) << 20)
                p.setU8(20, IPProto.udp)
                p.setU8(21, ttl)
                p.setBE128(22, srcIPv6 ?? tunnel.ipv6Src)
                p.setBE128(38, tunnel.ipv6Dst)
                l4 = 54
            } else {
                p.setBE16(12, EtherType.ipv4)
                p.setU8(14, 0x45)
                p.setU8(15, tunnel.tos)
                p.setBE16(20, tunnel.flags.contains(.dontFragment) ? 0x4000 : 0)
                p.setU8(22, ttl)
                p.setU8(23, IPProto.udp)
                p.setBE32(26, srcIPv4 ?? tunnel.ipv4Src)
                p.setBE32(30, tunnel.ipv4Dst)
            }
            p.setBE16(l4 + 2, udpDst)
            p.setU8(l4 + 8, 0x08)  // I flag: VNI valid
            p.setBE32(l4 + 12, UInt32(truncatingIfNeeded: tunnel.id & 0xff_ffff) << 8)
        }
        return EncapTemplate(bytes: h, isIPv6: v6, checksum: tunnel.flags.contains(.checksum))
    }

    /// Prepends `template` to the frame in `b`, filling lengths, IP identification and
    /// header checksum, UDP source port, and the ECN bits from the inner packet.
    /// Returns false when there is no headroom.
    @inlinable
    public static func encapsulate(_ b: inout PacketBuffer, template: UnsafeRawBufferPointer, isIPv6: Bool,
                                   udpChecksum: Bool, sourcePort: UInt16, innerTOS: UInt8, ipID: UInt16) -> Bool {
        let innerLength = b.length
        guard b.push(template.count) else { return false }
        let p = b.data
        p.copyMemory(from: template.baseAddress!, byteCount: template.count)
        let l4: Int
        if isIPv6 {
            l4 = 54
            var first = p.be32(14)
            let tc = ECN.encapsulate(outer: UInt8(truncatingIfNeeded: first >> 20), inner: innerTOS)
            first = (first & 0xf00f_ffff) | UInt32(tc) << 20
            p.setBE32(14, first)
            p.setBE16(18, UInt16(truncatingIfNeeded: innerLength + 16))
        } else {
            l4 = 34
            p.setU8(15, ECN.encapsulate(outer: p.u8(15), inner: innerTOS))
            p.setBE16(16, UInt16(truncatingIfNeeded: innerLength + 36))
            p.setBE16(18, ipID)
            p.setBE16(24, 0)
            p.setBE16(24, Checksum.compute(p + 14, count: 20))
        }
        p.setBE16(l4, sourcePort)
        p.setBE16(l4 + 4, UInt16(truncatingIfNeeded: innerLength + 16))
        p.setBE16(l4 + 6, 0)
        // Inner checksum offload state moves with the inner headers.
        b.offload.shift(by: template.count)
        if udpChecksum || isIPv6 {
            let len = innerLength + 16
            let pseudo = isIPv6
                ? Checksum.pseudoHeaderIPv6(src: p.be128(22), dst: p.be128(38), proto: IPProto.udp, length: len)
                : Checksum.pseudoHeaderIPv4(src: p.be32(26), dst: p.be32(30), proto: IPProto.udp, length: len)
            if b.offload.checksumPartial {
                // One partial checksum per packet: finish the inner one first.
                finishPartialChecksum(&b)
            }
            var c = Checksum.compute(p + l4, count: len, initial: pseudo)
            if c == 0 { c = 0xffff }
            p.setBE16(l4 + 6, c)
        }
        return true
    }

    /// Completes a CHECKSUM_PARTIAL checksum in software (for frames leaving through a
    /// path that cannot carry the offload request).
    @inlinable
    public static func finishPartialChecksum(_ b: inout PacketBuffer) {
        guard b.offload.checksumPartial else { return }
        let start = Int(b.offload.checksumStart), field = start + Int(b.offload.checksumOffset)
        guard field + 2 <= b.length, start <= b.length else { return }
        let p = b.data
        let c = Checksum.compute(p + start, count: b.length - start)
        p.setBE16(field, c == 0 ? 0xffff : c)
        b.offload.flags &= ~OffloadInfo.needsChecksum
        b.offload.flags |= OffloadInfo.dataValid
    }

    /// Parses the outer headers of a frame received on a VXLAN UDP port. On success the
    /// outer headers are removed from `b` and the tunnel metadata is returned.
    @inlinable
    public static func decapsulate(_ b: inout PacketBuffer, port: UInt16) -> TunnelMetadata? {
        let p = b.data
        guard b.length >= overheadIPv4 + 14 else { return nil }
        var t = TunnelMetadata()
        var l4: Int
        let ethType = p.be16(12)
        let outerTOS: UInt8
        if ethType == EtherType.ipv4 {
            let ihl = Int(p.u8(14) & 0x0f) * 4
            guard p.u8(14) >> 4 == 4, ihl >= 20, p.u8(23) == IPProto.udp,
                  p.be16(20) & 0x3fff == 0 else { return nil }
            t.ipv4Src = p.be32(26)
            t.ipv4Dst = p.be32(30)
            outerTOS = p.u8(15)
            t.ttl = p.u8(22)
            l4 = 14 + ihl
        } else if ethType == EtherType.ipv6 {
            guard b.length >= overheadIPv6 + 14, p.u8(20) == IPProto.udp else { return nil }
            t.ipv6Src = p.be128(22)
            t.ipv6Dst = p.be128(38)
            outerTOS = UInt8(truncatingIfNeeded: p.be32(14) >> 20)
            t.ttl = p.u8(21)
            l4 = 54
        } else {
            return nil
        }
        t.tos = outerTOS
        guard b.length >= l4 + 16 + 14, p.be16(l4 + 2) == port, p.u8(l4 + 8) & 0x08 != 0 else { return nil }
        t.tpSrc = p.be16(l4)
        t.tpDst = p.be16(l4 + 2)
        t.id = UInt64(p.be32(l4 + 12) >> 8)
        t.flags = .key
        if p.be16(l4 + 6) != 0 { t.flags.insert(.checksum) }
        let outer = l4 + 16
        _ = b.pull(outer)
        b.offload.stripOuter(outer)
        return t
    }
}
