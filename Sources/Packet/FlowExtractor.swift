/// Extracts a `FlowKey` from an Ethernet frame with the kernel datapath's semantics
/// (net/openvswitch/flow.c, key_extract): outer and inner VLAN, LLC/SNAP, IPv4 with
/// fragments, IPv6 with extension headers, TCP/UDP/SCTP/ICMP/ICMPv6+ND, ARP, MPLS top label.
/// Truncated headers leave their attributes zero, as the kernel does; nothing reads
/// past `length`.
public enum FlowExtractor {
    /// Why a frame yields no key at all. Everything else parses, possibly to zeros.
    public enum Failure: Error, Sendable, Equatable {
        /// Shorter than an Ethernet header: the kernel drops such frames.
        case truncatedEthernet
    }

    /// Fills the packet fields of `key` (L2 and up) from `frame`. Metadata fields
    /// (in_port, tunnel, recirc_id, mark, priority) are left as the caller set them.
    /// - Parameter udpFragmentOffload: the frame is a UDP GSO superpacket (SKB_GSO_UDP),
    ///   which the kernel reports as `frag=first`.
    @inlinable
    public static func extract(
        _ p: UnsafeRawPointer, length: Int, into key: inout FlowKey,
        udpFragmentOffload: Bool = false
    ) -> Result<HeaderOffsets, Failure> {
        clearPacketFields(&key)
        guard length >= 14 else { return .failure(.truncatedEthernet) }
        key[.ethDst] = p.be48(0)
        key[.ethSrc] = p.be48(6)

        var off = 12
        var offsets = HeaderOffsets()
        // Outer tag, then one inner tag; a tag needs 4 bytes plus the next EtherType.
        if EtherType.isVLAN(p.be16(off)) && length >= off + 6 {
            key[.vlanTPID] = UInt64(p.be16(off))
            key[.vlanTCI] = UInt64(p.be16(off + 2) | VLAN.present)
            off += 4
            if EtherType.isVLAN(p.be16(off)) && length >= off + 6 {
                key[.cvlanTPID] = UInt64(p.be16(off))
                key[.cvlanTCI] = UInt64(p.be16(off + 2) | VLAN.present)
                off += 4
            }
        }
        offsets.vlanBytes = off - 12

        // EtherType, or 802.2 LLC with an optional SNAP header.
        var ethType = p.be16(off)
        off += 2
        if ethType < 0x600 {
            if length - off < 8 {
                ethType = EtherType.ieee8022
            } else if p.u8(off) == 0xAA, p.u8(off + 1) == 0xAA,
                      (p.u8(off + 3) | p.u8(off + 4) | p.u8(off + 5)) == 0 {
                let snapType = p.be16(off + 6)
                if snapType >= 0x600 {
                    ethType = snapType
                    off += 8
                } else {
                    ethType = EtherType.ieee8022
                }
            } else {
                ethType = EtherType.ieee8022
            }
        }
        key[.ethType] = UInt64(ethType)
        offsets.l3 = off

        switch ethType {
        case EtherType.ipv4:
            extractIPv4(p, length: length, at: off, into: &key, offsets: &offsets,
                        udpFragmentOffload: udpFragmentOffload)
        case EtherType.ipv6:
            extractIPv6(p, length: length, at: off, into: &key, offsets: &offsets,
                        udpFragmentOffload: udpFragmentOffload)
        case EtherType.arp, EtherType.rarp:
            extractARP(p, length: length, at: off, into: &key)
        case EtherType.mplsUnicast, EtherType.mplsMulticast:
            // Up to three labels, stopping after bottom of stack.
            guard length >= off + 4 else { break }
            let l0 = p.be32(off)
            key[.mplsLSE] = UInt64(l0)
            guard l0 & 0x100 == 0, length >= off + 8 else { break }
            let l1 = p.be32(off + 4)
            key[.mplsLSE1] = UInt64(l1)
            guard l1 & 0x100 == 0, length >= off + 12 else { break }
            key[.mplsLSE2] = UInt64(p.be32(off + 8))
        default:
            break
        }
        return .success(offsets)
    }

    /// Zeroes everything a frame determines, keeping metadata words (tunnel, recirc,
    /// priority/mark, in_port, conntrack).
    @inlinable
    public static func clearPacketFields(_ key: inout FlowKey) {
        var s = key.words.mutableSpan
        for i in 13..<FlowKey.wordCount { s[i] = 0 }
    }

    @inlinable
    static func extractIPv4(
        _ p: UnsafeRawPointer, length: Int, at nh: Int, into key: inout FlowKey,
        offsets: inout HeaderOffsets, udpFragmentOffload: Bool
    ) {
        guard length >= nh + 20 else { return }
        let ihl = Int(p.u8(nh) & 0x0f) * 4
        guard ihl >= 20, length >= nh + ihl else { return }
        key[.ipv4Src] = UInt64(p.be32(nh + 12))
        key[.ipv4Dst] = UInt64(p.be32(nh + 16))
        let proto = p.u8(nh + 9)
        key[.ipProto] = UInt64(proto)
        key[.ipTOS] = UInt64(p.u8(nh + 1))
        key[.ipTTL] = UInt64(p.u8(nh + 8))
        let th = nh + ihl
        offsets.l4 = th
        let fragOff = p.be16(nh + 6)
        if fragOff & 0x1fff != 0 {
            key[.ipFrag] = UInt64(FragmentType.later.rawValue)
            return
        }
        let first = fragOff & 0x2000 != 0 || udpFragmentOffload
        key[.ipFrag] = UInt64((first ? FragmentType.first : FragmentType.none).rawValue)
        extractTransport(p, length: length, at: th, proto: proto, icmp: IPProto.icmp, into: &key)
    }

    @inlinable
    static func extractTransport(
        _ p: UnsafeRawPointer, length: Int, at th: Int, proto: UInt8, icmp: UInt8,
        into key: inout FlowKey
    ) {
        switch proto {
        case IPProto.tcp:
            guard length >= th + 20 else { return }
            let doff = Int(p.u8(th + 12) >> 4) * 4
            guard doff >= 20, length >= th + doff else { return }
            key[.tpSrc] = UInt64(p.be16(th))
            key[.tpDst] = UInt64(p.be16(th + 2))
            key[.tcpFlags] = UInt64(p.be16(th + 12) & 0x0fff)
        // Only a whole header gives ports or type and code, as the kernel's key_extract
        // has it (udphdr_ok 8 bytes, sctphdr_ok 12, icmphdr_ok 8).
        case IPProto.udp, IPProto.sctp:
            guard length >= th + (proto == IPProto.sctp ? 12 : 8) else { return }
            key[.tpSrc] = UInt64(p.be16(th))
            key[.tpDst] = UInt64(p.be16(th + 2))
        case icmp:
            guard length >= th + 8 else { return }
            key[.tpSrc] = UInt64(p.u8(th))
            key[.tpDst] = UInt64(p.u8(th + 1))
        default:
            break
        }
    }

    @inlinable
    static func isIPv6ExtensionHeader(_ h: UInt8) -> Bool {
        h == IPProto.ipv6Hop || h == IPProto.ipv6Routing || h == IPProto.ipv6Fragment
            || h == IPProto.ipv6Auth || h == IPProto.ipv6None || h == IPProto.ipv6Dest
    }

    @inlinable
    static func extractIPv6(
        _ p: UnsafeRawPointer, length: Int, at nh: Int, into key: inout FlowKey,
        offsets: inout HeaderOffsets, udpFragmentOffload: Bool
    ) {
        guard length >= nh + 40 else { return }
        let first32 = p.be32(nh)
        key[.ipProto] = UInt64(IPProto.ipv6None)
        key[.ipTOS] = UInt64((first32 >> 20) & 0xff)
        key[.ipTTL] = UInt64(p.u8(nh + 7))
        key[.ipv6Label] = UInt64(first32 & 0x000f_ffff)
        key[.ipv6Src] = p.be128(nh + 8)
        key[.ipv6Dst] = p.be128(nh + 24)

        // ipv6_find_hdr(target = -1): walk extension headers to the first upper layer.
        var next = p.u8(nh + 6)
        var start = nh + 40
        var sawFragment = false
        var fragmentOffset: UInt16 = 0
        var failed = false
        while isIPv6ExtensionHeader(next) && next != IPProto.ipv6None {
            guard length >= start + 2 else { failed = true; break }
            let hdrNext = p.u8(start)
            let hdrLen: Int
            if next == IPProto.ipv6Fragment {
                sawFragment = true
                guard length >= start + 4 else { failed = true; break }
                let fo = p.be16(start + 2) & ~0x7
                if fo != 0 {
                    if !isIPv6ExtensionHeader(hdrNext) || hdrNext == IPProto.ipv6None {
                        fragmentOffset = fo
                        next = hdrNext
                        break
                    }
                    failed = true
                    break
                }
                hdrLen = 8
            } else if next == IPProto.ipv6Auth {
                hdrLen = (Int(p.u8(start + 1)) + 2) << 2
            } else {
                hdrLen = (Int(p.u8(start + 1)) + 1) << 3
            }
            next = hdrNext
            start += hdrLen
        }
        if sawFragment {
            if fragmentOffset != 0 {
                key[.ipFrag] = UInt64(FragmentType.later.rawValue)
                key[.ipProto] = UInt64(IPProto.ipv6Fragment)
                return
            }
            key[.ipFrag] = UInt64(FragmentType.first.rawValue)
        } else {
            key[.ipFrag] = UInt64(FragmentType.none.rawValue)
        }
        if failed { return }
        key[.ipProto] = UInt64(next)
        offsets.l4 = start
        if udpFragmentOffload { key[.ipFrag] = UInt64(FragmentType.first.rawValue) }

        if next == IPProto.icmpv6 {
            extractICMPv6(p, length: length, at: start, into: &key)
        } else {
            extractTransport(p, length: length, at: start, proto: next, icmp: IPProto.icmpv6, into: &key)
        }
    }

    @inlinable
    static func extractICMPv6(_ p: UnsafeRawPointer, length: Int, at th: Int, into key: inout FlowKey) {
        // (icmp6hdr_ok: the kernel takes type and code from a whole 8-byte header only.)
        guard length >= th + 8 else { return }
        let type = p.u8(th), code = p.u8(th + 1)
        key[.tpSrc] = UInt64(type)
        key[.tpDst] = UInt64(code)
        // Neighbour solicitation (135) and advertisement (136) carry a target and options.
        guard code == 0, type == 135 || type == 136 else { return }
        let ndLength = 24
        guard length - th >= ndLength else { return }
        key[.ndTarget] = p.be128(th + 8)
        var remaining = length - th - ndLength
        var opt = th + ndLength
        var sll: UInt64 = 0, tll: UInt64 = 0
        while remaining >= 8 {
            let optLen = Int(p.u8(opt + 1)) * 8
            if optLen == 0 || optLen > remaining { break }
            let optType = p.u8(opt)
            if optType == 1 && optLen == 8 {
                if sll != 0 { key[.ndTarget] = 0; key[.ndSLL] = 0; key[.ndTLL] = 0; return }
                sll = p.be48(opt + 2)
                key[.ndSLL] = sll
            } else if optType == 2 && optLen == 8 {
                if tll != 0 { key[.ndTarget] = 0; key[.ndSLL] = 0; key[.ndTLL] = 0; return }
                tll = p.be48(opt + 2)
                key[.ndTLL] = tll
            }
            remaining -= optLen
            opt += optLen
        }
    }

    @inlinable
    static func extractARP(_ p: UnsafeRawPointer, length: Int, at nh: Int, into key: inout FlowKey) {
        guard length >= nh + 28 else { return }
        guard p.be16(nh) == 1, p.be16(nh + 2) == EtherType.ipv4, p.u8(nh + 4) == 6, p.u8(nh + 5) == 4 else {
            return
        }
        let op = p.be16(nh + 6)
        key[.ipProto] = op <= 0xff ? UInt64(op) : 0
        key[.arpSHA] = p.be48(nh + 8)
        key[.ipv4Src] = UInt64(p.be32(nh + 14))
        key[.arpTHA] = p.be48(nh + 18)
        key[.ipv4Dst] = UInt64(p.be32(nh + 24))
    }
}
