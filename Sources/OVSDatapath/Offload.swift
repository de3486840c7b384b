import Conntrack
import ESwitch
import ODP
import Packet

/// What the tunnel side of offload provides (the tunnel tracker): encap entries built
/// from routes and neighbours, and the real ingress of decap flows. Called only when
/// flows are installed or re-evaluated, never per packet.
public protocol TunnelOffloadResolver: AnyObject {
    /// The shared encap entry for sending with `tunnel` through `vport`, or why not.
    func encapEntry(for tunnel: TunnelMetadata, vport: Vport) -> Result<EncapEntry, OffloadFailure>
    /// The eSwitch port a decap flow's packets arrive on (route lookup of the remote
    /// endpoint), or why not.
    func decapIngress(for remote: TunnelMetadata, vport: Vport) -> Result<PortIndex, OffloadFailure>
}

/// Turns a datapath flow into the hardware's rule, as a representor's driver does for
/// a flow whose in_port is its netdev. Anything the switch cannot do is a reason.
struct OffloadTranslator {
    /// Not counted: the datapath makes a translator for each flow it offloads and
    /// outlives it. (Checked unowned, each one took and gave back a reference in the
    /// datapath's side table, which its weak references gave it.)
    unowned(unsafe) let dp: Datapath
    /// Not counted either: the datapath holds its eSwitch for life (a `let`).
    unowned(unsafe) let eswitch: ESwitch
    /// Read when a tunnel is met: a weak reference's load is a slow retain, and most
    /// flows have no tunnel.
    var tunnels: TunnelOffloadResolver? { dp.tunnelResolver }

    struct Translation {
        var spec: HardwareRuleSpec
        var dependency: TunnelDependency?
        var vxlanPort: UInt16?
    }

    /// A translation that holds for any flow of `inPort` with these very actions (the
    /// same array: its storage is the key, and the memo holds it so that it cannot be
    /// reused). Only for actions without a tunnel or a ct(), whose translation reads the
    /// key or the tunnel tracker.
    /// A class: binding a struct of two arrays took two references, this takes one.
    final class Memo {
        let inPort: UInt32
        let eswitchPort: PortIndex
        let actions: [ODPAction]
        let hardware: [HardwareAction]

        init(inPort: UInt32, eswitchPort: PortIndex, actions: [ODPAction], hardware: [HardwareAction]) {
            self.inPort = inPort
            self.eswitchPort = eswitchPort
            self.actions = actions
            self.hardware = hardware
        }

        func holds(inPort n: UInt32, _ a: [ODPAction]) -> Bool {
            n == inPort && actions.withUnsafeBufferPointer { m in
                a.withUnsafeBufferPointer { $0.baseAddress == m.baseAddress && $0.count == m.count }
            }
        }

        /// The rule of a flow of `match`, whose in_port and actions this memo holds.
        func spec(for match: borrowing FlowMatch, cookie: UInt64) -> HardwareRuleSpec {
            var key = match.key
            key[.inPort] = UInt64(eswitchPort)
            return HardwareRuleSpec(key: key, mask: match.mask, actions: hardware, cookie: cookie)
        }
    }

    /// The rule for a flow whose actions the last translation had (`Memo`: no tunnel, no
    /// dependency, no VXLAN port), or nil. An add-flows repeats its actions: this is the
    /// rule of most flows, built with no `Translation` or `Result` around it (each a copy
    /// of the rule's two flow keys on its way to the driver).
    /// (A put's offload builds it from the memo where it passes it on: returned in an
    /// optional, it was copied out of it, two flow keys.)
    func memoizedSpec(_ match: borrowing FlowMatch, actions: [ODPAction], cookie: UInt64) -> HardwareRuleSpec? {
        let inNumber = UInt32(truncatingIfNeeded: match.key[.inPort])
        guard let m = dp.lastTranslation, m.holds(inPort: inNumber, actions) else { return nil }
        return m.spec(for: match, cookie: cookie)
    }

    func translate(_ match: FlowMatch, actions: [ODPAction], cookie: UInt64) -> Result<Translation, OffloadFailure> {
        if let spec = memoizedSpec(match, actions: actions, cookie: cookie) {
            return .success(Translation(spec: spec, dependency: nil, vxlanPort: nil))
        }
        let inNumber = UInt32(truncatingIfNeeded: match.key[.inPort])
        guard let inPort = dp.vport(inNumber) else { return .failure(.tunnel("in_port \(inNumber) does not exist")) }
        var key = match.key
        var mask = match.mask
        var hw: [HardwareAction] = []
        var dependency: TunnelDependency?
        var vxlanPort: UInt16?
        // Whether the translation depends on the actions and ports alone (`Memo`).
        var memoizable = true

        if inPort.type == .vxlan {
            guard let tunnels else { return .failure(.unsupportedMatch(field: "tunnel (no tunnel tracker)")) }
            guard key.tunnelDestinationSet, mask[.tunnelIPv4Src] == 0xffff_ffff || mask[.tunnelIPv6Src] != 0 else {
                return .failure(.unsupportedMatch(field: "tunnel without an exact remote endpoint"))
            }
            let remote = TunnelMetadata(from: key)
            switch tunnels.decapIngress(for: remote, vport: inPort) {
            case .success(let ingress):
                key[.inPort] = UInt64(ingress)
            case .failure(let f):
                return .failure(f)
            }
            // The hardware parser sees the vport's UDP port as tp_dst.
            key[.tunnelTPDst] = UInt64(inPort.udpPort)
            mask[.tunnelTPDst] = 0xffff
            dependency = TunnelDependency(kind: .decap, remote: remote)
            vxlanPort = inPort.udpPort
            hw.append(.decap)
        } else {
            guard let e = inPort.eswitchPort else {
                return .failure(.tunnel("in_port \(inPort.name) is not a representor of \(eswitch.name)"))
            }
            key[.inPort] = UInt64(e)
        }

        // The actions in hardware terms; the refusal of the first one the hardware cannot do.
        func translateActions() -> OffloadFailure? {
            var pendingTunnel: TunnelMetadata?
            for a in actions {
                switch a {
                case .output(let n):
                    guard let out = dp.vport(n) else { return .tunnel("output to port \(n), which does not exist") }
                    if out.type == .vxlan {
                        guard let t = pendingTunnel else { return .unsupportedAction("output to \(out.name) without set(tunnel)") }
                        guard let tunnels else { return .unsupportedAction("tunnel encap (no tunnel tracker)") }
                        switch tunnels.encapEntry(for: t, vport: out) {
                        case .success(let entry):
                            hw.append(.encap(entry))
                            hw.append(.forward(entry.key.egress))
                            dependency = TunnelDependency(kind: .encap, remote: t)
                        case .failure(let f):
                            return f
                        }
                    } else if let ep = out.eswitchPort {
                        hw.append(.forward(ep))
                    } else {
                        return .tunnel("output to \(out.name) leaves \(eswitch.name)")
                    }
                case .set(let f):
                    switch f.attribute {
                    case KeyAttr.tunnel:
                        guard case .success(let t) = Result(catching: { () throws(ActionError) in try ActionCompiler.decodeTunnelSet(f.value) }) else {
                            return .unsupportedAction("set(tunnel)")
                        }
                        pendingTunnel = t
                        memoizable = false
                    default:
                        guard let act = Self.modifyHeader(f) else { return .unsupportedAction(a.name) }
                        hw.append(act)
                    }
                case .pushVLAN(let tpid, let tci): hw.append(.pushVLAN(tpid: tpid, tci: tci))
                case .popVLAN: hw.append(.popVLAN)
                case .drop: hw.append(.drop)
                case .recirc(let id): hw.append(.recirculate(id))
                case .conntrack(let raw):
                    memoizable = false
                    // The hardware looks connections up; it commits nothing (new connections
                    // miss and software commits them).
                    let ethType = mask[.ethType] == FlowField.ethType.valueMask ? UInt16(truncatingIfNeeded: key[.ethType]) : nil
                    guard case .success(let ct) = Result(catching: { () throws(ActionError) in
                        try ConntrackActionDecoder.decode(raw, ethType: ethType)
                    }) else { return .unsupportedAction("ct") }
                    if let f = Self.conntrackRefusal(ct) { return f }
                    hw.append(.conntrack(zone: ct.zone, nat: ct.nat != nil))
                default:
                    return .unsupportedAction(a.name)
                }
            }
            return nil
        }
        if let refusal = translateActions() {
            // A driver checks the match before the actions (HardwareTables.accept): when
            // both are refused, the match is the reason, whatever partial offload could
            // have done for the actions (its rule has the same match).
            return .failure(eswitch.tables.capabilities.check(key: key, mask: mask) ?? refusal)
        }
        if hw.isEmpty || hw == [.decap] { hw.append(.drop) }
        if hw == dp.lastHardwareActions { hw = dp.lastHardwareActions } else { dp.lastHardwareActions = hw }
        if let p = vxlanPort, !eswitch.canRegisterVXLANPort(p) {
            return .failure(.unsupportedMatch(field: "more than 4 VXLAN UDP ports"))
        }
        if memoizable, dependency == nil, vxlanPort == nil, let e = inPort.eswitchPort {
            dp.lastTranslation = Memo(inPort: inNumber, eswitchPort: e, actions: actions, hardware: hw)
        }
        return .success(Translation(spec: HardwareRuleSpec(key: key, mask: mask, actions: hw, cookie: cookie),
                                    dependency: dependency, vxlanPort: vxlanPort))
    }

    /// What of a ct() the hardware's lookup-only CT action cannot do. A commit of an
    /// established connection changes nothing, so `commit` alone passes; setting mark
    /// or label, and force_commit (which may start the connection over), do not.
    static func conntrackRefusal(_ ct: CTAction) -> OffloadFailure? {
        if ct.markMask != 0 || ct.labelMask != 0 { return .unsupportedAction("ct setting ct_mark or ct_label") }
        if ct.forceCommit { return .unsupportedAction("ct(force_commit)") }
        return nil
    }

    /// set/set_masked of packet headers → the hardware's modify-header actions.
    static func modifyHeader(_ f: SetField) -> HardwareAction? {
        let v = f.value
        let m = f.mask ?? [UInt8](repeating: 0xff, count: v.count)
        switch f.attribute {
        case KeyAttr.ethernet where v.count == 12:
            return .setEthernet(src: v.be48(0), srcMask: m.be48(0), dst: v.be48(6), dstMask: m.be48(6))
        case KeyAttr.ipv4 where v.count == 12:
            return .setIPv4(value: .init(src: v.be32(0), dst: v.be32(4), tos: v[9], ttl: v[10]),
                            mask: .init(src: m.be32(0), dst: m.be32(4), tos: m[9], ttl: m[10]))
        case KeyAttr.ipv6 where v.count == 40:
            return .setIPv6(value: .init(src: v.be128(0), dst: v.be128(16), label: v.be32(32), tclass: v[37], hlimit: v[38]),
                            mask: .init(src: m.be128(0), dst: m.be128(16), label: m.be32(32) & 0xfffff, tclass: m[37], hlimit: m[38]))
        case KeyAttr.tcp where v.count == 4, KeyAttr.udp where v.count == 4:
            let proto = f.attribute == KeyAttr.tcp ? IPProto.tcp : IPProto.udp
            return .setTransport(proto: proto, src: v.be16(0), srcMask: m.be16(0), dst: v.be16(2), dstMask: m.be16(2))
        default:
            return nil
        }
    }
}

extension Result where Failure == ActionError {
    init(catching body: () throws(ActionError) -> Success) {
        do { self = .success(try body()) } catch { self = .failure(error) }
    }
}
