import ESwitch
import Packet

/// The ct and recirc passes of the hardware (bpf/ct.h) in a trace: a pre-ct rule's CT
/// lookup on the driver's shadow of the CT table, the chain lookups with the ct fields
/// in the key, and then either the last rule's actions on the NATed frame or the reason
/// the frame goes up its representor unmodified.
extension PacketTracer {
    /// bpf/ct.h ESW_MAX_RECIRC: lookups after the first.
    static let hardwareRecirculations = 4

    /// Whether the pipeline runs `rule` through bpf/ct.h: ct first, or recirc last.
    static func usesConntrack(_ rule: HardwareRule) -> Bool {
        if case .recirculate = rule.actions.last { return true }
        if case .conntrack = rule.actions.first { return true }
        return false
    }

    /// Runs the passes of `first` (a rule `usesConntrack`): the steps,
    /// and the last rule with the NAT applied before its actions, or nil when the frame
    /// goes up the representor (the last step says why).
    func conntrackPasses(_ first: HardwareRule, frame: [UInt8], port: PortIndex)
        -> (steps: [TraceNode], last: (rule: HardwareRule, nat: [HardwareAction])?) {
        guard let sw = eswitch else { return ([], nil) }
        var key = Self.hardwareKey(frame, port: port, tunnel: nil)
        var rule = first
        var steps: [TraceNode] = []
        var nat: (src: UInt32?, dst: UInt32?, sport: UInt16?, dport: UInt16?) = (nil, nil, nil, nil)
        func up(_ why: String) -> (steps: [TraceNode], last: (rule: HardwareRule, nat: [HardwareAction])?) {
            steps.append(.text(why + ": up the representor unmodified (software starts over at recirc_id 0)"))
            return (steps, nil)
        }
        for pass in 0...Self.hardwareRecirculations {
            guard Self.usesConntrack(rule) else { break }
            if pass == Self.hardwareRecirculations { return up("more than \(Self.hardwareRecirculations) recirculations") }
            if case .conntrack(let zone, let withNAT) = rule.actions.first {
                let proto = UInt8(truncatingIfNeeded: key[.ipProto])
                let ipv6 = key[.ethType] == UInt64(EtherType.ipv6)
                guard proto == IPProto.tcp || proto == IPProto.udp, key[.ipFrag] == 0,
                      ipv6 || key[.ethType] == UInt64(EtherType.ipv4) else {
                    return up("ct(zone=\(zone)): the hardware tracks unfragmented TCP and UDP only")
                }
                let tuple = ConnectionTuple(
                    zone: zone, proto: proto, isIPv6: ipv6,
                    src: ipv6 ? key[.ipv6Src] : UInt128(key[.ipv4Src]), dst: ipv6 ? key[.ipv6Dst] : UInt128(key[.ipv4Dst]),
                    srcPort: UInt16(truncatingIfNeeded: key[.tpSrc]), dstPort: UInt16(truncatingIfNeeded: key[.tpDst]))
                guard let (c, reply) = sw.connections.lookup(tuple) else {
                    return up("ct(zone=\(zone)): no CT entry (a new connection, or one the hardware does not hold)")
                }
                if proto == IPProto.tcp && key[.tcpFlags] & 0x05 != 0 {
                    return up("ct(zone=\(zone)): connection \(c.id) hit by a FIN or RST: the hardware hands it back to software")
                }
                if sw.connections.isHandedBack(c) { return up("ct(zone=\(zone)): connection \(c.id) was handed back to software") }
                let d = reply ? c.spec.reply : c.spec.original
                let state = d.state(withNAT: withNAT)
                key[.ctState] = UInt64(state)
                key[.ctZone] = UInt64(zone)
                key[.ctMark] = UInt64(c.spec.mark)
                key[.ctLabel] = c.spec.label
                var text = "ct(zone=\(zone)\(withNAT ? ",nat" : "")): connection \(c.id) (\(reply ? "reply" : "original") direction)"
                    + ", ct_state=0x\(String(state, radix: 16)), ct_mark=\(c.spec.mark)"
                if withNAT, !d.rewrite.isEmpty {
                    if !ipv6, let a = d.rewrite.src { key[.ipv4Src] = UInt64(a); nat.src = UInt32(truncatingIfNeeded: a) }
                    if !ipv6, let a = d.rewrite.dst { key[.ipv4Dst] = UInt64(a); nat.dst = UInt32(truncatingIfNeeded: a) }
                    if let p = d.rewrite.srcPort { key[.tpSrc] = UInt64(p); nat.sport = p }
                    if let p = d.rewrite.dstPort { key[.tpDst] = UInt64(p); nat.dport = p }
                    text += ", NAT to \(keyText(key, names: hardwareNames)) (applied once the last rule is known)"
                }
                steps.append(.text(text))
            }
            // ct and the rule's own actions: this rule is the last.
            guard case .recirculate(let chain) = rule.actions.last else { break }
            key[.recircID] = UInt64(chain)
            let l = sw.tables.lookupChain(key)
            steps.append(lookupNode("chain 0x\(String(chain, radix: 16))", key: key, l))
            guard let l else { return up("no rule in chain 0x\(String(chain, radix: 16))") }
            rule = l.rule
        }
        var rewrite: [HardwareAction] = []
        if nat.src != nil || nat.dst != nil {
            rewrite.append(.setIPv4(value: .init(src: nat.src ?? 0, dst: nat.dst ?? 0),
                                    mask: .init(src: nat.src == nil ? 0 : ~0, dst: nat.dst == nil ? 0 : ~0)))
        }
        if nat.sport != nil || nat.dport != nil {
            rewrite.append(.setTransport(proto: UInt8(truncatingIfNeeded: key[.ipProto]), src: nat.sport ?? 0,
                                         srcMask: nat.sport == nil ? 0 : 0xffff, dst: nat.dport ?? 0,
                                         dstMask: nat.dport == nil ? 0 : 0xffff))
        }
        return (steps, (rule, rewrite))
    }
}
