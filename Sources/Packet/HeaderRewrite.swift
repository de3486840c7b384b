/// In-place header rewriting for the datapath's `set`/`set_masked` actions, keeping every
/// checksum right (IPv4 header, TCP/UDP/ICMPv6 pseudo-header, SCTP CRC32c), as the
/// kernel's net/openvswitch/actions.c does. Each function also updates `key`, so later
/// actions (and recirculation) see the rewritten values.
///
/// Masked semantics everywhere: `new = (old & ~mask) | (value & mask)`.
public enum HeaderRewrite {
    @inlinable @inline(__always)
    static func apply<T: FixedWidthInteger>(_ old: T, _ value: T, _ mask: T) -> T {
        (old & ~mask) | (value & mask)
    }

    // MARK: Ethernet

    @inlinable
    public static func setEthernet(_ b: inout PacketBuffer, key: inout FlowKey,
                                   src: UInt64, srcMask: UInt64, dst: UInt64, dstMask: UInt64) {
        guard b.length >= 14 else { return }
        let p = b.data
        let newDst = apply(p.be48(0), dst, dstMask)
        let newSrc = apply(p.be48(6), src, srcMask)
        p.setBE48(0, newDst)
        p.setBE48(6, newSrc)
        key[.ethDst] = newDst
        key[.ethSrc] = newSrc
    }

    // MARK: IPv4

    public struct IPv4Fields: Sendable, Equatable {
        public var src: UInt32 = 0, dst: UInt32 = 0, tos: UInt8 = 0, ttl: UInt8 = 0
        public init(src: UInt32 = 0, dst: UInt32 = 0, tos: UInt8 = 0, ttl: UInt8 = 0) {
            self.src = src
            self.dst = dst
            self.tos = tos
            self.ttl = ttl
        }
    }

    @inlinable
    public static func setIPv4(_ b: inout PacketBuffer, offsets: HeaderOffsets, key: inout FlowKey,
                               value: IPv4Fields, mask: IPv4Fields) {
        let nh = offsets.l3
        guard key[.ethType] == UInt64(EtherType.ipv4), b.length >= nh + 20 else { return }
        let p = b.data
        var ipCsum = p.be16(nh + 10)
        let partial = b.offload.checksumPartial
        let later = p.be16(nh + 6) & 0x1fff != 0
        let proto = p.u8(nh + 9)

        func updateL4(old: UInt32, new: UInt32) {
            guard !later, offsets.hasL4 else { return }
            let th = offsets.l4
            if proto == IPProto.tcp, b.length >= th + 18 {
                p.setBE16(th + 16, Checksum.replace32(p.be16(th + 16), old: old, new: new, partial: partial))
            } else if proto == IPProto.udp, b.length >= th + 8 {
                let c = p.be16(th + 6)
                if c != 0 || partial {
                    var n = Checksum.replace32(c, old: old, new: new, partial: partial)
                    if n == 0 && !partial { n = 0xffff }
                    p.setBE16(th + 6, n)
                }
            }
        }

        if mask.src != 0 {
            let old = p.be32(nh + 12), new = apply(old, value.src, mask.src)
            if old != new {
                updateL4(old: old, new: new)
                ipCsum = Checksum.replace32(ipCsum, old: old, new: new)
                p.setBE32(nh + 12, new)
                key[.ipv4Src] = UInt64(new)
            }
        }
        if mask.dst != 0 {
            let old = p.be32(nh + 16), new = apply(old, value.dst, mask.dst)
            if old != new {
                updateL4(old: old, new: new)
                ipCsum = Checksum.replace32(ipCsum, old: old, new: new)
                p.setBE32(nh + 16, new)
                key[.ipv4Dst] = UInt64(new)
            }
        }
        if mask.tos != 0 {
            let oldWord = p.be16(nh)
            let newTOS = apply(UInt8(truncatingIfNeeded: oldWord), value.tos, mask.tos)
            let newWord = (oldWord & 0xff00) | UInt16(newTOS)
            ipCsum = Checksum.replace16(ipCsum, old: oldWord, new: newWord)
            p.setBE16(nh, newWord)
            key[.ipTOS] = UInt64(newTOS)
        }
        if mask.ttl != 0 {
            let oldWord = p.be16(nh + 8)
            let newTTL = apply(UInt8(truncatingIfNeeded: oldWord >> 8), value.ttl, mask.ttl)
            let newWord = (oldWord & 0x00ff) | UInt16(newTTL) << 8
            ipCsum = Checksum.replace16(ipCsum, old: oldWord, new: newWord)
            p.setBE16(nh + 8, newWord)
            key[.ipTTL] = UInt64(newTTL)
        }
        p.setBE16(nh + 10, ipCsum)
    }

    // MARK: IPv6

    public struct IPv6Fields: Sendable, Equatable {
        public var src: UInt128 = 0, dst: UInt128 = 0, label: UInt32 = 0, tclass: UInt8 = 0, hlimit: UInt8 = 0
        public init(src: UInt128 = 0, dst: UInt128 = 0, label: UInt32 = 0, tclass: UInt8 = 0, hlimit: UInt8 = 0) {
            self.src = src
            self.dst = dst
            self.label = label
            self.tclass = tclass
            self.hlimit = hlimit
        }
    }

    @inlinable
    public static func setIPv6(_ b: inout PacketBuffer, offsets: HeaderOffsets, key: inout FlowKey,
                               value: IPv6Fields, mask: IPv6Fields) {
        let nh = offsets.l3
        guard key[.ethType] == UInt64(EtherType.ipv6), b.length >= nh + 40 else { return }
        let p = b.data
        let partial = b.offload.checksumPartial
        let proto = UInt8(truncatingIfNeeded: key[.ipProto])
        let later = key[.ipFrag] == UInt64(FragmentType.later.rawValue)

        func updateL4(old: UInt128, new: UInt128) {
            guard !later, offsets.hasL4 else { return }
            let th = offsets.l4
            switch proto {
            case IPProto.tcp where b.length >= th + 18:
                p.setBE16(th + 16, Checksum.replace128(p.be16(th + 16), old: old, new: new, partial: partial))
            case IPProto.udp where b.length >= th + 8:
                let c = p.be16(th + 6)
                if c != 0 || partial {
                    var n = Checksum.replace128(c, old: old, new: new, partial: partial)
                    if n == 0 && !partial { n = 0xffff }
                    p.setBE16(th + 6, n)
                }
            case IPProto.icmpv6 where b.length >= th + 4:
                p.setBE16(th + 2, Checksum.replace128(p.be16(th + 2), old: old, new: new, partial: partial))
            default:
                break
            }
        }

        if mask.src != 0 {
            let old = p.be128(nh + 8), new = apply(old, value.src, mask.src)
            if old != new {
                updateL4(old: old, new: new)
                p.setBE128(nh + 8, new)
                key[.ipv6Src] = new
            }
        }
        if mask.dst != 0 {
            let old = p.be128(nh + 24), new = apply(old, value.dst, mask.dst)
            if old != new {
                // With a routing header the final destination is not this address: the
                // kernel leaves the L4 checksum alone then.
                if !hasRoutingHeader(p, length: b.length, nh: nh) { updateL4(old: old, new: new) }
                p.setBE128(nh + 24, new)
                key[.ipv6Dst] = new
            }
        }
        if mask.tclass != 0 || mask.label != 0 {
            var first = p.be32(nh)
            if mask.tclass != 0 {
                let tc = apply(UInt8(truncatingIfNeeded: first >> 20), value.tclass, mask.tclass)
                first = (first & 0xf00f_ffff) | UInt32(tc) << 20
                key[.ipTOS] = UInt64(tc)
            }
            if mask.label != 0 {
                let label = apply(first & 0x000f_ffff, value.label, mask.label & 0x000f_ffff)
                first = (first & 0xfff0_0000) | label
                key[.ipv6Label] = UInt64(label)
            }
            p.setBE32(nh, first)
        }
        if mask.hlimit != 0 {
            let h = apply(p.u8(nh + 7), value.hlimit, mask.hlimit)
            p.setU8(nh + 7, h)
            key[.ipTTL] = UInt64(h)
        }
    }

    @inlinable
    static func hasRoutingHeader(_ p: UnsafeMutableRawPointer, length: Int, nh: Int) -> Bool {
        var next = p.u8(nh + 6)
        var off = nh + 40
        while FlowExtractor.isIPv6ExtensionHeader(next) && next != IPProto.ipv6None {
            if next == IPProto.ipv6Routing { return true }
            guard length >= off + 2 else { return false }
            let len = next == IPProto.ipv6Fragment ? 8
                : next == IPProto.ipv6Auth ? (Int(p.u8(off + 1)) + 2) << 2 : (Int(p.u8(off + 1)) + 1) << 3
            next = p.u8(off)
            off += len
        }
        return false
    }

    // MARK: Transport

    /// TCP, UDP or SCTP ports (by `proto`).
    @inlinable
    public static func setPorts(_ b: inout PacketBuffer, offsets: HeaderOffsets, key: inout FlowKey, proto: UInt8,
                                src: UInt16, srcMask: UInt16, dst: UInt16, dstMask: UInt16) {
        guard offsets.hasL4, UInt8(truncatingIfNeeded: key[.ipProto]) == proto,
              key[.ipFrag] != UInt64(FragmentType.later.rawValue) else { return }
        let th = offsets.l4
        let p = b.data
        let partial = b.offload.checksumPartial
        switch proto {
        case IPProto.tcp:
            guard b.length >= th + 20 else { return }
            var c = p.be16(th + 16)
            let os = p.be16(th), od = p.be16(th + 2)
            let ns = apply(os, src, srcMask), nd = apply(od, dst, dstMask)
            if !partial {
                c = Checksum.replace16(c, old: os, new: ns)
                c = Checksum.replace16(c, old: od, new: nd)
            }
            p.setBE16(th, ns)
            p.setBE16(th + 2, nd)
            p.setBE16(th + 16, c)
            key[.tpSrc] = UInt64(ns)
            key[.tpDst] = UInt64(nd)
        case IPProto.udp:
            guard b.length >= th + 8 else { return }
            var c = p.be16(th + 6)
            let os = p.be16(th), od = p.be16(th + 2)
            let ns = apply(os, src, srcMask), nd = apply(od, dst, dstMask)
            if c != 0 && !partial {
                c = Checksum.replace16(c, old: os, new: ns)
                c = Checksum.replace16(c, old: od, new: nd)
                if c == 0 { c = 0xffff }
                p.setBE16(th + 6, c)
            }
            p.setBE16(th, ns)
            p.setBE16(th + 2, nd)
            key[.tpSrc] = UInt64(ns)
            key[.tpDst] = UInt64(nd)
        case IPProto.sctp:
            guard b.length >= th + 12 else { return }
            let ns = apply(p.be16(th), src, srcMask), nd = apply(p.be16(th + 2), dst, dstMask)
            // SCTP's CRC32c covers the whole packet: verify the old one, then recompute,
            // keeping a corrupt checksum corrupt (as the kernel does).
            let stored = UInt32(littleEndian: p.loadUnaligned(fromByteOffset: th + 8, as: UInt32.self))
            p.storeBytes(of: UInt32(0), toByteOffset: th + 8, as: UInt32.self)
            let oldCRC = CRC32C.checksum(p + th, count: b.length - th)
            p.setBE16(th, ns)
            p.setBE16(th + 2, nd)
            let newCRC = CRC32C.checksum(p + th, count: b.length - th)
            let fixed = newCRC ^ (stored ^ oldCRC)
            p.storeBytes(of: fixed.littleEndian, toByteOffset: th + 8, as: UInt32.self)
            key[.tpSrc] = UInt64(ns)
            key[.tpDst] = UInt64(nd)
        default:
            return
        }
    }

    /// ICMP/ICMPv6 type and code (OVS's userspace datapath supports this; the kernel does not).
    @inlinable
    public static func setICMP(_ b: inout PacketBuffer, offsets: HeaderOffsets, key: inout FlowKey, v6: Bool,
                               type: UInt8, typeMask: UInt8, code: UInt8, codeMask: UInt8) {
        let wanted = v6 ? IPProto.icmpv6 : IPProto.icmp
        guard offsets.hasL4, UInt8(truncatingIfNeeded: key[.ipProto]) == wanted,
              b.length >= offsets.l4 + 4 else { return }
        let th = offsets.l4, p = b.data
        let old = p.be16(th)
        let t = apply(UInt8(old >> 8), type, typeMask), c = apply(UInt8(old & 0xff), code, codeMask)
        let new = UInt16(t) << 8 | UInt16(c)
        if !b.offload.checksumPartial {
            p.setBE16(th + 2, Checksum.replace16(p.be16(th + 2), old: old, new: new))
        }
        p.setBE16(th, new)
        key[.tpSrc] = UInt64(t)
        key[.tpDst] = UInt64(c)
    }

    /// ARP fields (userspace datapath semantics).
    @inlinable
    public static func setARP(_ b: inout PacketBuffer, offsets: HeaderOffsets, key: inout FlowKey,
                              sip: UInt32, sipMask: UInt32, tip: UInt32, tipMask: UInt32, op: UInt16, opMask: UInt16,
                              sha: UInt64, shaMask: UInt64, tha: UInt64, thaMask: UInt64) {
        let nh = offsets.l3
        let t = UInt16(truncatingIfNeeded: key[.ethType])
        guard t == EtherType.arp || t == EtherType.rarp, b.length >= nh + 28 else { return }
        let p = b.data
        let nop = apply(p.be16(nh + 6), op, opMask)
        let nsha = apply(p.be48(nh + 8), sha, shaMask), nsip = apply(p.be32(nh + 14), sip, sipMask)
        let ntha = apply(p.be48(nh + 18), tha, thaMask), ntip = apply(p.be32(nh + 24), tip, tipMask)
        p.setBE16(nh + 6, nop)
        p.setBE48(nh + 8, nsha)
        p.setBE32(nh + 14, nsip)
        p.setBE48(nh + 18, ntha)
        p.setBE32(nh + 24, ntip)
        key[.ipProto] = nop <= 0xff ? UInt64(nop) : 0
        key[.arpSHA] = nsha
        key[.ipv4Src] = UInt64(nsip)
        key[.arpTHA] = ntha
        key[.ipv4Dst] = UInt64(ntip)
    }

    // MARK: VLAN

    /// Inserts an 802.1Q/802.1ad tag as the outermost tag. `tci` carries VLAN.present,
    /// which is not written to the wire (the kernel clears VLAN_CFI_MASK likewise).
    @inlinable
    public static func pushVLAN(_ b: inout PacketBuffer, offsets: inout HeaderOffsets, key: inout FlowKey,
                                tpid: UInt16, tci: UInt16) -> Bool {
        guard b.length >= 14, b.insertGap(4, at: 12) else { return false }
        let p = b.data
        p.setBE16(12, tpid)
        p.setBE16(14, tci & ~VLAN.present)
        offsets.l3 += 4
        if offsets.hasL4 { offsets.l4 += 4 }
        offsets.vlanBytes += 4
        b.offload.shift(by: 4)
        // The old outer tag becomes the inner one.
        key[.cvlanTCI] = key[.vlanTCI]
        key[.cvlanTPID] = key[.vlanTPID]
        key[.vlanTCI] = UInt64(tci | VLAN.present)
        key[.vlanTPID] = UInt64(tpid)
        return true
    }

    /// Removes the outermost VLAN tag, if there is one.
    @inlinable
    public static func popVLAN(_ b: inout PacketBuffer, offsets: inout HeaderOffsets, key: inout FlowKey) {
        guard b.length >= 18, EtherType.isVLAN(b.data.be16(12)) else { return }
        _ = b.removeGap(4, at: 12)
        offsets.l3 -= 4
        if offsets.hasL4 { offsets.l4 -= 4 }
        offsets.vlanBytes -= 4
        b.offload.shift(by: -4)
        key[.vlanTCI] = key[.cvlanTCI]
        key[.vlanTPID] = key[.cvlanTPID]
        key[.cvlanTCI] = 0
        key[.cvlanTPID] = 0
    }

    // MARK: MPLS

    @inlinable
    public static func pushMPLS(_ b: inout PacketBuffer, offsets: inout HeaderOffsets, key: inout FlowKey,
                                lse: UInt32, ethType: UInt16) -> Bool {
        let at = offsets.l3
        guard b.length >= at, b.insertGap(4, at: at) else { return false }
        let p = b.data
        p.setBE32(at, lse)
        p.setBE16(at - 2, ethType)
        offsets.l4 = -1
        b.offload.shift(by: 4)
        key[.ethType] = UInt64(ethType)
        key[.mplsLSE] = UInt64(lse)
        return true
    }

    @inlinable
    public static func popMPLS(_ b: inout PacketBuffer, offsets: inout HeaderOffsets, key: inout FlowKey,
                               ethType: UInt16) {
        let at = offsets.l3
        guard EtherType.isMPLS(UInt16(truncatingIfNeeded: key[.ethType])), b.length >= at + 4 else { return }
        _ = b.removeGap(4, at: at)
        b.data.setBE16(at - 2, ethType)
        b.offload.shift(by: -4)
        key[.ethType] = UInt64(ethType)
        key[.mplsLSE] = 0
    }

    @inlinable
    public static func setMPLS(_ b: inout PacketBuffer, offsets: HeaderOffsets, key: inout FlowKey,
                               lse: UInt32, mask: UInt32) {
        let at = offsets.l3
        guard EtherType.isMPLS(UInt16(truncatingIfNeeded: key[.ethType])), b.length >= at + 4 else { return }
        let new = apply(b.data.be32(at), lse, mask)
        b.data.setBE32(at, new)
        key[.mplsLSE] = UInt64(new)
    }
}
