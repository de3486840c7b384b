import Packet

/// Which matches and actions the emulated hardware can do. Anything else is refused
/// with a reason and stays in software.
public struct HardwareCapabilities: Sendable {
    /// Most outputs one rule may have (mirroring).
    public var maximumOutputs = 4
    /// Most VLAN tags pushed by one rule.
    public var maximumVLANPushes = 2

    public init() {}

    /// Fields a rule may match, and what to call them in a refusal.
    static let matchable: [FlowField] = [
        .inPort, .ethSrc, .ethDst, .ethType, .vlanTCI, .vlanTPID, .cvlanTCI, .cvlanTPID,
        .ipProto, .ipFrag, .ipTOS, .ipTTL, .tpSrc, .tpDst, .tcpFlags, .ipv4Src, .ipv4Dst, .ipv6Label,
        .tunnelID, .tunnelIPv4Src, .tunnelIPv4Dst, .tunnelTOS, .tunnelTTL, .tunnelFlags, .tunnelTPSrc, .tunnelTPDst,
        .recircID, .ctState, .ctZone, .ctMark,
    ]
    static let matchableWide: [WideField] = [.ipv6Src, .ipv6Dst, .ctLabel]

    /// Fields the hardware cannot match, by the name a user knows them by.
    static let unmatchable: [(FlowField, String)] = [
        (.dpHash, "dp_hash"), (.priority, "skb_priority"), (.skbMark, "skb_mark"),
        (.mplsLSE, "mpls"), (.mplsLSE1, "mpls"), (.mplsLSE2, "mpls"), (.arpSHA, "arp/nd link-layer address"),
        (.arpTHA, "arp/nd link-layer address"),
    ]
    /// The tunnel's IPv6 endpoints among them: the pipeline decaps VXLAN over IPv4 only
    /// (bpf/parse.h parse_vxlan), so a decap rule for IPv6 outer headers would never be hit
    /// while its flow claimed to be in hardware.
    static let unmatchableWide: [(WideField, String)] = [
        (.ndTarget, "nd target"),
        (.tunnelIPv6Src, "tunnel ipv6_src (VXLAN decap of IPv6 outer headers)"),
        (.tunnelIPv6Dst, "tunnel ipv6_dst (VXLAN decap of IPv6 outer headers)"),
    ]
    /// Connection-tracking fields: what a `conntrack` action set before a recirculation.
    /// A frame at recirc_id 0 has not been tracked: there they may only ask for zero.
    static let conntrackFields: [(FlowField, String)] = [(.ctState, "ct_state"), (.ctZone, "ct_zone"), (.ctMark, "ct_mark")]

    /// The bits of all the fields above, each set as one key: a rule's match is checked
    /// against them in one pass over its words, and the lists are walked (for the
    /// field's name) only when one is hit. Walking them for every rule retained the
    /// arrays and each name.
    static let unmatchableBits: FlowKey = {
        var k = FlowKey()
        for (f, _) in unmatchable { k[f] = f.valueMask }
        for (f, _) in unmatchableWide { k[f] = ~0 }
        return k
    }()
    static let conntrackBits: FlowKey = {
        var k = FlowKey()
        for (f, _) in conntrackFields { k[f] = f.valueMask }
        k[.ctLabel] = ~0
        return k
    }()

    /// Whether `a & b` has a bit set in `bits`.
    private static func overlaps(_ a: borrowing FlowKey, _ b: borrowing FlowKey, within bits: borrowing FlowKey) -> Bool {
        let x = a.words.span, y = b.words.span, z = bits.words.span
        var any: UInt64 = 0
        for i in 0..<FlowKey.wordCount { any |= x[i] & y[i] & z[i] }
        return any != 0
    }

    /// Checks a rule's match; returns the refusal, or nil when the hardware can hold it.
    public func check(key: FlowKey, mask: FlowKey) -> OffloadFailure? {
        // The original-direction tuple shares its words with MPLS and ARP/ND fields
        // (FlowField.ctOrigIPv4Src): a flow with a tuple matches the tuple, named so.
        let type = UInt16(truncatingIfNeeded: key[.ethType])
        if key[.ctOrigProto] & mask[.ctOrigProto] != 0, !EtherType.isMPLS(type), type != EtherType.arp, type != EtherType.rarp {
            return .unsupportedMatch(field: UInt16(truncatingIfNeeded: key[.ethType]) == EtherType.ipv6 ? "ct_tuple6" : "ct_tuple4")
        }
        if Self.overlaps(mask, Self.unmatchableBits, within: Self.unmatchableBits) {
            for (f, name) in HardwareCapabilities.unmatchable where mask[f] != 0 {
                return .unsupportedMatch(field: name)
            }
            for (f, name) in HardwareCapabilities.unmatchableWide where mask[f] != 0 {
                return .unsupportedMatch(field: name)
            }
        }
        if key[.recircID] != 0 {
            // A chain is entered by its id: the id is exact (mlx5's goto chain).
            if mask[.recircID] != FlowField.recircID.valueMask { return .unsupportedMatch(field: "recirc_id (must be exact)") }
        } else if Self.overlaps(key, mask, within: Self.conntrackBits) {
            for (f, name) in HardwareCapabilities.conntrackFields where key[f] & mask[f] != 0 {
                return .unsupportedMatch(field: "\(name) of a tracked frame at recirc_id 0")
            }
            if key[.ctLabel] & mask[.ctLabel] != 0 { return .unsupportedMatch(field: "ct_label of a tracked frame at recirc_id 0") }
        }
        if mask[.packetType] != 0 && key[.packetType] != 0 { return .unsupportedMatch(field: "packet_type") }
        if mask[.inPort] != FlowField.inPort.valueMask { return .unsupportedMatch(field: "in_port (must be exact)") }
        let t = UInt16(truncatingIfNeeded: key[.ethType])
        if (t == EtherType.arp || t == EtherType.rarp) && (mask[.ipv4Src] != 0 || mask[.ipv4Dst] != 0 || mask[.ipProto] != 0) {
            return .unsupportedMatch(field: "arp")
        }
        return nil
    }

    /// Checks an action list.
    public func check(actions: [HardwareAction]) -> OffloadFailure? {
        var outputs = 0, pushes = 0, encaps = 0
        if actions.contains(where: { if case .hint = $0 { true } else { false } }) {
            // Mark-and-send-up is the whole rule: software runs the flow's actions.
            return actions.count == 1 ? nil : .unsupportedAction("mark with other actions")
        }
        for a in actions {
            switch a {
            case .forward: outputs += 1
            case .pushVLAN: pushes += 1
            case .encap: encaps += 1
            default: break
            }
        }
        if let f = checkConntrack(actions) { return f }
        if encaps > 1 { return .unsupportedAction("output to several tunnels at once") }
        // The silicon encapsulates the frame itself, not a copy: after a tunnel output
        // nothing may follow (OVS's other outputs and rewrites act on the inner frame).
        if let e = actions.firstIndex(where: { if case .encap = $0 { true } else { false } }),
           actions.count > e + 2 || (actions.count == e + 2 && { if case .forward = actions[e + 1] { false } else { true } }()) {
            return .unsupportedAction("actions after a tunnel output (the hardware encapsulates in place)")
        }
        if outputs > maximumOutputs { return .unsupportedAction("more than \(maximumOutputs) outputs") }
        if pushes > maximumVLANPushes { return .unsupportedAction("more than \(maximumVLANPushes) vlan pushes") }
        return nil
    }

    /// ct and recirc as the pipeline runs them (bpf/ct.h): `[recirc]` and `[ct, recirc]`
    /// (mlx5's pre-ct rule), or `[ct, actions...]` (a ct whose connection's NAT the rule's
    /// own actions follow, as OVS's `ct(commit,nat),output`). The frame is left
    /// unmodified until the pipeline knows its last rule: a CT or chain miss sends it up
    /// the representor as it arrived, for software to start over at recirc_id 0.
    func checkConntrack(_ actions: [HardwareAction]) -> OffloadFailure? {
        func isCT(_ a: HardwareAction) -> Bool { if case .conntrack = a { true } else { false } }
        func isRecirc(_ a: HardwareAction) -> Bool { if case .recirculate = a { true } else { false } }
        let cts = actions.filter(isCT).count, recircs = actions.filter(isRecirc).count
        if cts == 0 && recircs == 0 { return nil }
        if cts > 1 || recircs > 1 { return .unsupportedAction("more than one ct or recirc in a rule") }
        if cts == 1 && !isCT(actions[0]) {
            return .unsupportedAction("actions before ct (the hardware looks the frame up unmodified)")
        }
        if let r = actions.firstIndex(where: isRecirc) {
            if r != actions.count - 1 { return .unsupportedAction("actions after recirc") }
            if r > cts { return .unsupportedAction("actions before recirc (the hardware recirculates the frame unmodified)") }
        }
        return nil
    }

    /// True when `mask` is the exact-match profile: every 5-tuple field of the key's
    /// family exact, nothing else. Such rules go to the hash (exact-match) table.
    static func isExactMatchProfile(key: FlowKey, mask: FlowKey) -> Bool {
        // The protocol first: most masked rules are not TCP or UDP 5-tuples, and the
        // profile is built only for those that may be.
        let proto = UInt8(truncatingIfNeeded: key[.ipProto])
        guard proto == IPProto.tcp || proto == IPProto.udp else { return false }
        var profile = FlowKey()
        for f in [FlowField.inPort, .ethSrc, .ethDst, .ethType, .ipProto, .tpSrc, .tpDst] { profile[f] = f.valueMask }
        let t = UInt16(truncatingIfNeeded: key[.ethType])
        if t == EtherType.ipv4 {
            profile[.ipv4Src] = ~0
            profile[.ipv4Dst] = ~0
        } else if t == EtherType.ipv6 {
            profile[.ipv6Src] = ~0
            profile[.ipv6Dst] = ~0
        } else {
            return false
        }
        // Frag and VLAN may be matched exactly as part of the profile, and so may
        // recirc_id 0: every datapath flow of the first pass matches it exactly (a flow
        // at another recirc_id goes to the chain table before this is asked).
        var relaxed = mask
        relaxed[.ipFrag] = 0
        relaxed[.vlanTCI] = 0
        relaxed[.vlanTPID] = 0
        if key[.recircID] == 0 { relaxed[.recircID] = 0 }
        return relaxed == profile
    }

    /// IPv6 matches take a double-width entry.
    static func units(for mask: FlowKey) -> Int {
        mask[.ipv6Src] != 0 || mask[.ipv6Dst] != 0 || mask[.tunnelIPv6Src] != 0 || mask[.tunnelIPv6Dst] != 0 ? 2 : 1
    }
}
