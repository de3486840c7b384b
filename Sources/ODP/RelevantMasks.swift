import Packet

/// The masks a flow's kind makes relevant (OVS's flow_wc_map()): what the datapath keeps
/// of a given mask, and the mask of a flow put without one.
extension KeyDecoder {
    /// flow_wildcards_init_for_packet(): the mask used when none is given.
    static func exactMask(for key: FlowKey) -> FlowKey {
        var m = relevantMask(for: key)
        m[.inPort] = FlowField.inPort.valueMask
        return m
    }

    /// flow_wc_map(): which mask bits mean something for this flow; the datapath
    /// keeps only those.
    public static func relevantMask(for flow: FlowKey) -> FlowKey {
        let m = RelevantMasks.shared.combinations[RelevantMasks.index(for: flow)]
        // The original-direction tuple counts when the flow has one (its ct_nw_proto).
        guard flow[.ctOrigProto] != 0 else { return m }
        let t = UInt16(truncatingIfNeeded: flow[.ethType])
        if t == EtherType.ipv4 { return m.union(RelevantMasks.shared.ctTuple4) }
        if t == EtherType.ipv6 && !flow.isND { return m.union(RelevantMasks.shared.ctTuple6) }
        return m
    }
}

/// Every mask relevantMask() can give, built once (it runs for every flow put): the
/// bits always relevant, those of a tunnel, and those of the flow's L3/L4 kind.
struct RelevantMasks: Sendable {
    /// By index(for:): with a tunnel destination or not × the L3 kinds below.
    let combinations: [FlowKey]
    /// ct_tuple4 / ct_tuple6 fields, for flows that have an original-direction tuple.
    let ctTuple4: FlowKey
    let ctTuple6: FlowKey

    static let shared = RelevantMasks()

    private static let l3KindCount = 7

    static func index(for flow: borrowing FlowKey) -> Int {
        let t = UInt16(truncatingIfNeeded: flow[.ethType])
        let l3Kind: Int
        if t == EtherType.ipv4 {
            l3Kind = flow[.ipProto] != 2 ? 2 : 1
        } else if t == EtherType.ipv6 {
            l3Kind = flow.isND ? 4 : 3
        } else if EtherType.isMPLS(t) {
            l3Kind = 5
        } else if t == EtherType.arp || t == EtherType.rarp {
            l3Kind = 6
        } else {
            l3Kind = 0
        }
        return (flow.tunnelDestinationSet ? l3KindCount : 0) + l3Kind
    }

    private static func bits(_ fs: [FlowField], wide: [WideField] = []) -> FlowKey {
        var m = FlowKey()
        for f in fs { m[f] = f.valueMask }
        for f in wide { m[f] = ~0 }
        return m
    }

    private init() {
        let tunnel = Self.bits([.tunnelID, .tunnelIPv4Src, .tunnelIPv4Dst, .tunnelTOS, .tunnelTTL, .tunnelFlags, .tunnelTPSrc, .tunnelTPDst],
                               wide: [.tunnelIPv6Src, .tunnelIPv6Dst])
        let always = Self.bits([.priority, .skbMark, .recircID, .dpHash, .inPort, .ethDst, .ethSrc, .ethType, .vlanTCI, .vlanTPID,
                                .cvlanTCI, .cvlanTPID, .ctState, .ctZone, .ctMark, .packetType], wide: [.ctLabel])
        let ipv4 = Self.bits([.ipv4Src, .ipv4Dst, .ipProto, .ipFrag, .ipTOS, .ipTTL, .tpSrc, .tpDst])
        let ipv6 = Self.bits([.ipv6Label, .ipProto, .ipFrag, .ipTOS, .ipTTL, .tpSrc, .tpDst, .tcpFlags], wide: [.ipv6Src, .ipv6Dst])
        let nd = Self.bits([.arpSHA, .arpTHA], wide: [.ndTarget])
        // In index(for:)'s order: other, IPv4 (IGMP), IPv4 with TCP flags, IPv6, IPv6 ND, MPLS, ARP.
        let l3: [FlowKey] = [
            FlowKey(),
            ipv4,
            ipv4.union(Self.bits([.tcpFlags])),
            ipv6,
            ipv6.union(nd),
            Self.bits([.mplsLSE, .mplsLSE1, .mplsLSE2]),
            Self.bits([.ipv4Src, .ipv4Dst, .ipProto, .arpSHA, .arpTHA]),
        ]
        precondition(l3.count == Self.l3KindCount)
        combinations = l3.map { always.union($0) } + l3.map { always.union(tunnel).union($0) }
        let ports = Self.bits([.ctOrigTPSrc, .ctOrigTPDst, .ctOrigProto])
        ctTuple4 = ports.union(Self.bits([.ctOrigIPv4Src, .ctOrigIPv4Dst]))
        ctTuple6 = ports.union(Self.bits([], wide: [.ctOrigIPv6Src, .ctOrigIPv6Dst]))
    }
}
