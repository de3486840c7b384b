import Netlink
import Packet

/// `FlowMatch` → key and mask attributes in the one order Open vSwitch's userspace
/// datapath dumps them (odp_flow_key_from_flow / odp_flow_key_from_mask with every
/// datapath feature supported).
public struct KeyEncoder: Sendable {
    public var vlanLimit: Int

    public init(vlanLimit: Int = ODPConstants.vlanLimit) { self.vlanLimit = vlanLimit }

    public func encode(_ m: FlowMatch) -> (key: [UInt8], mask: [UInt8]) {
        var k = AttributeWriter(), w = AttributeWriter()
        encode(flow: m.key, mask: m.mask, exportMask: false, into: &k)
        encode(flow: m.key, mask: m.mask, exportMask: true, into: &w)
        return (k.bytes, w.bytes)
    }

    /// The key (or, with `exportMask`, the mask) attributes of a flow, written where `b` ends.
    public func encode(flow: FlowKey, mask: FlowKey, exportMask: Bool, into b: inout AttributeWriter) {
        let data = exportMask ? mask : flow
        // Payloads are written in place: an array per attribute was most of a dump's cost.
        b.putU32(KeyAttr.priority, UInt32(truncatingIfNeeded: data[.priority]))
        if flow.tunnelDestinationSet || flow.tunnelSourceSet || exportMask {
            b.nested(KeyAttr.tunnel) { Self.putTunnel(&$0, data) }
        }
        b.putU32(KeyAttr.skbMark, UInt32(truncatingIfNeeded: data[.skbMark]))
        b.putU32(KeyAttr.ctState, UInt32(truncatingIfNeeded: data[.ctState]))
        b.putU16(KeyAttr.ctZone, UInt16(truncatingIfNeeded: data[.ctZone]))
        b.putU32(KeyAttr.ctMark, UInt32(truncatingIfNeeded: data[.ctMark]))
        let label = b.putZeroed(KeyAttr.ctLabels, count: 16)
        b.bytes.setLE128(label, data[.ctLabel])
        if flow[.ctOrigProto] != 0 { Self.putCTTuple(&b, flow: flow, data: data) }
        b.putU32(KeyAttr.recircID, UInt32(truncatingIfNeeded: data[.recircID]))
        b.putU32(KeyAttr.dpHash, UInt32(truncatingIfNeeded: data[.dpHash]))
        if exportMask || flow[.inPort] != UInt64(ODPConstants.noPort) {
            b.putU32(KeyAttr.inPort, UInt32(truncatingIfNeeded: data[.inPort]))
        }
        b.putBE32(KeyAttr.packetType, UInt32(truncatingIfNeeded: data[.packetType]))

        // Everything after the Ethernet header, possibly inside VLAN encap levels.
        var levels = InlineArray<2, (tpid: UInt16, tci: UInt16)>(repeating: (0, 0))
        var levelCount = 0
        var truncated = false
        let isEthernet = flow[.packetType] == UInt64(ODPConstants.packetTypeEthernet)
        if isEthernet {
            let e = b.putZeroed(KeyAttr.ethernet, count: 12)
            b.bytes.setBE48(e, data[.ethSrc])
            b.bytes.setBE48(e + 6, data[.ethDst])
            let tciFields: InlineArray<2, FlowField> = [.vlanTCI, .cvlanTCI]
            let tpidFields: InlineArray<2, FlowField> = [.vlanTPID, .cvlanTPID]
            for level in 0..<min(vlanLimit, 2) {
                var tpid = UInt16(truncatingIfNeeded: flow[tpidFields[level]])
                if flow[tciFields[level]] == 0 {
                    if EtherType.isVLAN(UInt16(truncatingIfNeeded: flow[.ethType])) {
                        tpid = UInt16(truncatingIfNeeded: flow[.ethType])
                    } else {
                        break
                    }
                }
                levels[levelCount] = (exportMask ? 0xffff : tpid, UInt16(truncatingIfNeeded: data[tciFields[level]]))
                levelCount += 1
                if flow[tciFields[level]] == 0 {
                    truncated = true
                    break
                }
            }
        }
        guard levelCount > 0 else {
            if !truncated { encodeL3(flow: flow, mask: mask, data: data, exportMask: exportMask, into: &b) }
            return
        }
        var body = AttributeWriter()
        if !truncated { encodeL3(flow: flow, mask: mask, data: data, exportMask: exportMask, into: &body) }

        // Wrap the body in the VLAN levels, innermost first.
        var inner = body.bytes
        for i in stride(from: levelCount - 1, through: 0, by: -1) {
            var w = AttributeWriter()
            w.putBE16(KeyAttr.ethertype, levels[i].tpid)
            w.putBE16(KeyAttr.vlan, levels[i].tci)
            w.put(KeyAttr.encap, inner)
            inner = w.bytes
        }
        b.append(raw: inner)
    }

    private func encodeL3(flow: FlowKey, mask: FlowKey, data: FlowKey, exportMask: Bool, into b: inout AttributeWriter) {
        let type = UInt16(truncatingIfNeeded: flow[.ethType])
        if type < 0x600 {
            if exportMask { b.putBE16(KeyAttr.ethertype, 0xffff) }
            return
        }
        b.putBE16(KeyAttr.ethertype, UInt16(truncatingIfNeeded: data[.ethType]))
        if EtherType.isVLAN(type) { return }
        let fragByte: UInt8 = exportMask ? (data[.ipFrag] != 0 ? 0xff : 0) : UInt8(truncatingIfNeeded: data[.ipFrag])
        if type == EtherType.ipv4 {
            let p = b.putZeroed(KeyAttr.ipv4, count: 12)
            b.bytes.setBE32(p, UInt32(truncatingIfNeeded: data[.ipv4Src]))
            b.bytes.setBE32(p + 4, UInt32(truncatingIfNeeded: data[.ipv4Dst]))
            b.bytes[p + 8] = UInt8(truncatingIfNeeded: data[.ipProto])
            b.bytes[p + 9] = UInt8(truncatingIfNeeded: data[.ipTOS])
            b.bytes[p + 10] = UInt8(truncatingIfNeeded: data[.ipTTL])
            b.bytes[p + 11] = fragByte
        } else if type == EtherType.ipv6 {
            let p = b.putZeroed(KeyAttr.ipv6, count: 40)
            b.bytes.setBE128(p, data[.ipv6Src])
            b.bytes.setBE128(p + 16, data[.ipv6Dst])
            b.bytes.setBE32(p + 32, UInt32(truncatingIfNeeded: data[.ipv6Label]))
            b.bytes[p + 36] = UInt8(truncatingIfNeeded: data[.ipProto])
            b.bytes[p + 37] = UInt8(truncatingIfNeeded: data[.ipTOS])
            b.bytes[p + 38] = UInt8(truncatingIfNeeded: data[.ipTTL])
            b.bytes[p + 39] = fragByte
        } else if type == EtherType.arp || type == EtherType.rarp {
            var p = [UInt8](repeating: 0, count: 24)
            p.setBE32(0, UInt32(truncatingIfNeeded: data[.ipv4Src]))
            p.setBE32(4, UInt32(truncatingIfNeeded: data[.ipv4Dst]))
            let proto = UInt8(truncatingIfNeeded: data[.ipProto])
            p.setBE16(8, proto == 0xff ? 0xffff : UInt16(proto))
            p.setBE48(10, data[.arpSHA])
            p.setBE48(16, data[.arpTHA])
            b.put(KeyAttr.arp, p)
        } else if EtherType.isMPLS(type) {
            let n = Self.mplsLabelCount(flow)
            var p = [UInt8](repeating: 0, count: 4 * n)
            let fields: [FlowField] = [.mplsLSE, .mplsLSE1, .mplsLSE2]
            for i in 0..<n { p.setBE32(4 * i, UInt32(truncatingIfNeeded: data[fields[i]])) }
            b.put(KeyAttr.mpls, p)
        }
        guard flow.isIP, flow[.ipFrag] != UInt64(FragmentType.later.rawValue) else { return }
        let proto = UInt8(truncatingIfNeeded: flow[.ipProto])
        func ports(_ attr: UInt16) {
            let p = b.putZeroed(attr, count: 4)
            b.bytes.setBE16(p, UInt16(truncatingIfNeeded: data[.tpSrc]))
            b.bytes.setBE16(p + 2, UInt16(truncatingIfNeeded: data[.tpDst]))
        }
        switch proto {
        case IPProto.tcp:
            ports(KeyAttr.tcp)
            if data[.tcpFlags] != 0 || mask[.tcpFlags] != 0 {
                b.putBE16(KeyAttr.tcpFlags, UInt16(truncatingIfNeeded: data[.tcpFlags]))
            }
        case IPProto.udp:
            ports(KeyAttr.udp)
        case IPProto.sctp:
            ports(KeyAttr.sctp)
        case IPProto.icmp where type == EtherType.ipv4:
            b.put(KeyAttr.icmp, [UInt8(truncatingIfNeeded: data[.tpSrc]), UInt8(truncatingIfNeeded: data[.tpDst])])
        case IPProto.icmpv6 where type == EtherType.ipv6:
            b.put(KeyAttr.icmpv6, [UInt8(truncatingIfNeeded: data[.tpSrc]), UInt8(truncatingIfNeeded: data[.tpDst])])
            if flow.isND && (!exportMask || (data[.tpSrc] == 0xff && data[.tpDst] == 0xff)) {
                var p = [UInt8](repeating: 0, count: 28)
                p.setBE128(0, data[.ndTarget])
                p.setBE48(16, data[.ndSLL])
                p.setBE48(22, data[.ndTLL])
                b.put(KeyAttr.nd, p)
            }
        default:
            break
        }
    }

    /// flow_count_mpls_labels().
    static func mplsLabelCount(_ flow: FlowKey) -> Int {
        var cnt = 0
        for (i, f) in [FlowField.mplsLSE, .mplsLSE1, .mplsLSE2].enumerated() {
            if flow[f] & 0x100 != 0 { return i + 1 }
            if flow[f] != 0 { cnt += 1 }
        }
        return cnt
    }

    /// tun_key_to_attr().
    static func putTunnel(_ b: inout AttributeWriter, _ t: FlowKey) {
        let flags = TunnelFlags(rawValue: t[.tunnelFlags])
        if t[.tunnelID] != 0 || flags.contains(.key) { b.putBE64(TunnelAttr.id, t[.tunnelID]) }
        if t[.tunnelIPv4Src] != 0 { b.putBE32(TunnelAttr.ipv4Src, UInt32(truncatingIfNeeded: t[.tunnelIPv4Src])) }
        if t[.tunnelIPv4Dst] != 0 { b.putBE32(TunnelAttr.ipv4Dst, UInt32(truncatingIfNeeded: t[.tunnelIPv4Dst])) }
        if t[.tunnelIPv6Src] != 0 { b.put(TunnelAttr.ipv6Src, [UInt8].be128(t[.tunnelIPv6Src])) }
        if t[.tunnelIPv6Dst] != 0 { b.put(TunnelAttr.ipv6Dst, [UInt8].be128(t[.tunnelIPv6Dst])) }
        if t[.tunnelTOS] != 0 { b.putU8(TunnelAttr.tos, UInt8(truncatingIfNeeded: t[.tunnelTOS])) }
        b.putU8(TunnelAttr.ttl, UInt8(truncatingIfNeeded: t[.tunnelTTL]))
        if flags.contains(.dontFragment) { b.putFlag(TunnelAttr.dontFragment) }
        if flags.contains(.checksum) { b.putFlag(TunnelAttr.csum) }
        if t[.tunnelTPSrc] != 0 { b.putBE16(TunnelAttr.tpSrc, UInt16(truncatingIfNeeded: t[.tunnelTPSrc])) }
        if t[.tunnelTPDst] != 0 { b.putBE16(TunnelAttr.tpDst, UInt16(truncatingIfNeeded: t[.tunnelTPDst])) }
        if flags.contains(.oam) { b.putFlag(TunnelAttr.oam) }
    }
}

extension FlowMatch {
    /// What Open vSwitch's userspace datapath does with a flow_put: decode key and mask,
    /// require an exact in_port, wildcard the presence of a VLAN only as "no VLAN",
    /// and keep only the mask bits meaningful for the flow.
    public static func fromAttributes(key: [UInt8], mask: [UInt8], vlanLimit: Int = ODPConstants.vlanLimit) -> Result<FlowMatch, ODPError> {
        fromAttributes(key: key[...], mask: mask[...], vlanLimit: vlanLimit)
    }

    /// The same, reading the attributes where they are (a request's payload).
    public static func fromAttributes(key: ArraySlice<UInt8>, mask: ArraySlice<UInt8>,
                                      vlanLimit: Int = ODPConstants.vlanLimit) -> Result<FlowMatch, ODPError> {
        var match = FlowMatch(key: FlowKey(), mask: FlowKey())
        if let e = KeyDecoder(vlanLimit: vlanLimit).decodeMatch(key: key, mask: mask, into: &match) { return .failure(e) }
        return .success(match)
    }
}

extension KeyEncoder {
    /// OVS_KEY_ATTR_CT_ORIG_TUPLE_IPV4/IPV6 (odp_flow_key_from_flow__: by the key's
    /// eth_type, from `data`, the key or its mask).
    static func putCTTuple(_ b: inout AttributeWriter, flow: FlowKey, data: FlowKey) {
        let type = UInt16(truncatingIfNeeded: flow[.ethType])
        if type == EtherType.ipv4 {
            var t = [UInt8](repeating: 0, count: 16)
            t.setBE32(0, UInt32(truncatingIfNeeded: data[.ctOrigIPv4Src]))
            t.setBE32(4, UInt32(truncatingIfNeeded: data[.ctOrigIPv4Dst]))
            t.setBE16(8, UInt16(truncatingIfNeeded: data[.ctOrigTPSrc]))
            t.setBE16(10, UInt16(truncatingIfNeeded: data[.ctOrigTPDst]))
            t[12] = UInt8(truncatingIfNeeded: data[.ctOrigProto])
            b.put(KeyAttr.ctOrigTupleIPv4, t)
        } else if type == EtherType.ipv6 {
            var t = [UInt8](repeating: 0, count: 40)
            t.setBE128(0, data[.ctOrigIPv6Src])
            t.setBE128(16, data[.ctOrigIPv6Dst])
            t.setBE16(32, UInt16(truncatingIfNeeded: data[.ctOrigTPSrc]))
            t.setBE16(34, UInt16(truncatingIfNeeded: data[.ctOrigTPDst]))
            t[36] = UInt8(truncatingIfNeeded: data[.ctOrigProto])
            b.put(KeyAttr.ctOrigTupleIPv6, t)
        }
    }
}
