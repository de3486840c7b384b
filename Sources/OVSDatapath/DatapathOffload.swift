import Classifier
import ESwitch
import ODP
import Packet

/// Where a flow's packets are handled, as dumps and `show` report it.
public enum FlowOffloadStatus: Sendable, Equatable {
    case software(reason: String)
    /// Accepted by the driver; the firmware has not written the rule yet.
    case pending
    case offloaded
    /// The add succeeded, then the hardware refused the rule (async, a wrong
    /// prediction): under `none` software handles the packets, under skip_sw nothing does.
    case failed(reason: String)
}

extension Datapath {
    public func offloadStatus(of f: DatapathFlow) -> FlowOffloadStatus {
        switch f.offload {
        case .software(let why):
            return .software(reason: why)
        case .hardware(let h):
            switch eswitch?.ruleState(h) {
            case .programmed: return .offloaded
            case .pending: return .pending
            case .failed(let why): return .failed(reason: why.description)
            case nil: return .software(reason: "hardware rule gone")
            }
        }
    }

    // MARK: Offload

    fileprivate var translator: OffloadTranslator? {
        eswitch.map { OffloadTranslator(dp: self, eswitch: $0, tunnels: tunnelResolver) }
    }

    /// Attempts to put a new flow into hardware, per policy.
    func offload(_ flow: DatapathFlow) throws(DatapathError) {
        flow.hardwareOnly = policy == .skipSW
        guard policy != .skipHW else {
            flow.offload = .software(reason: "offload policy is skip_hw")
            return
        }
        try place(flow, hardwareRule(for: flow))
    }

    /// Adds the flow's translated rule to the hardware, or records (or, under skip_sw,
    /// throws) why it is not there.
    fileprivate func place(_ flow: DatapathFlow, _ translated: Result<OffloadTranslator.Translation, OffloadFailure>)
        throws(DatapathError) {
        switch translated {
        case .success(let t):
            switch eswitch!.addRule(t.spec) {
            case .success(let h):
                installed(flow, h, t)
            case .failure(let f):
                try refuse(flow, f, dependency: t.dependency)
            }
        case .failure(let f):
            try refuse(flow, f, dependency: nil)
        }
    }

    /// A rule is in hardware: record it, and let the hardware parser see VXLAN on a
    /// decap rule's UDP port.
    fileprivate func installed(_ flow: DatapathFlow, _ h: HardwareRuleHandle, _ t: OffloadTranslator.Translation) {
        flow.offload = .hardware(h)
        flow.tunnelDependency = t.dependency
        if let p = t.vxlanPort { _ = eswitch!.registerVXLANPort(p) }
    }

    fileprivate func refuse(_ flow: DatapathFlow, _ f: OffloadFailure, dependency: TunnelDependency?) throws(DatapathError) {
        if policy == .skipSW { throw DatapathError(f.errno, "hardware refused the flow (skip_sw): \(f)") }
        flow.offload = .software(reason: f.description)
        flow.tunnelDependency = dependency ?? tunnelDependency(of: flow)
    }

    /// The hardware rule for a flow, or why it cannot have one.
    fileprivate func hardwareRule(for flow: DatapathFlow) -> Result<OffloadTranslator.Translation, OffloadFailure> {
        guard let tr = translator else { return .failure(.tunnel("no eSwitch behind this datapath")) }
        switch tr.translate(flow.match, actions: flow.actions, cookie: UInt64(truncatingIfNeeded: flow.ufid)) {
        case .success(let t):
            if let p = t.vxlanPort, !eswitch!.canRegisterVXLANPort(p) {
                return .failure(.unsupportedMatch(field: "more than 4 VXLAN UDP ports"))
            }
            return .success(t)
        case .failure(let f):
            return .failure(f)
        }
    }

    /// For flows that stay in software: which tunnel the flow would need, so the tracker
    /// retries it when routes or neighbours change.
    fileprivate func tunnelDependency(of flow: DatapathFlow) -> TunnelDependency? {
        let inNumber = UInt32(truncatingIfNeeded: flow.match.key[.inPort])
        if vport(inNumber)?.type == .vxlan { return TunnelDependency(kind: .decap, remote: TunnelMetadata(from: flow.match.key)) }
        var pending: TunnelMetadata?
        for a in flow.actions {
            if case .set(let f) = a, f.attribute == KeyAttr.tunnel,
               let t = try? ActionCompiler.decodeTunnelSet(f.value) { pending = t }
            if case .output(let n) = a, vport(n)?.type == .vxlan, let t = pending { return TunnelDependency(kind: .encap, remote: t) }
        }
        return nil
    }

    /// Replaces the hardware side of a modified flow, make-before-break.
    func reoffload(_ fresh: DatapathFlow, replacing old: DatapathFlow) throws(DatapathError) {
        fresh.hardwareOnly = policy == .skipSW
        guard policy != .skipHW else {
            removeHardware(old)
            fresh.hardwareCarried = old.hardwareCarried
            fresh.hardwareLatest = RuleCounters()
            fresh.offload = .software(reason: "offload policy is skip_hw")
            return
        }
        let translated = hardwareRule(for: fresh)
        if case .hardware(let h) = old.offload {
            if case .success(let t) = translated, case .success(let nh) = eswitch!.replaceRule(h, with: t.spec) {
                old.retireHardwareCounters()
                fresh.hardwareCarried = old.hardwareCarried
                fresh.hardwareLatest = RuleCounters()
                installed(fresh, nh, t)
                unregisterVXLAN(of: old)
                return
            }
            if policy == .skipSW, case .failure(let f) = translated {
                throw DatapathError(f.errno, "hardware refused the modified flow (skip_sw): \(f)")
            }
            removeHardware(old)
            fresh.hardwareCarried = old.hardwareCarried
            fresh.hardwareLatest = RuleCounters()
        }
        try place(fresh, translated)
    }

    func removeHardware(_ f: DatapathFlow) {
        guard case .hardware(let h) = f.offload, let sw = eswitch else { return }
        if let c = sw.ruleCounters(h) { f.hardwareLatest = c }
        f.retireHardwareCounters()
        sw.deleteRule(h)
        unregisterVXLAN(of: f)
        f.offload = .software(reason: "hardware rule removed")
    }

    func unregisterVXLAN(of f: DatapathFlow) {
        guard f.tunnelDependency?.kind == .decap, let p = vport(UInt32(truncatingIfNeeded: f.match.key[.inPort])) else { return }
        eswitch?.unregisterVXLANPort(p.udpPort)
    }

    /// Re-evaluates flows that depend on tunnel state (routes, neighbours): re-offloads
    /// what can now be offloaded, moves to software what no longer can.
    @discardableResult
    public func reevaluateTunnelFlows(where pick: (DatapathFlow) -> Bool = { _ in true }) -> (offloaded: Int, software: Int) {
        // Under skip_hw nothing is offloaded; don't visit (or copy the list of) every flow
        // for each route or neighbour event.
        guard policy != .skipHW else { return (0, 0) }
        var up = 0, down = 0
        for f in table.flows.filter({ $0.tunnelDependency != nil && pick($0) }) {
            let wasHW = f.offload.isOffloaded
            switch hardwareRule(for: f) {
            case .success(let t):
                if case .hardware(let h) = f.offload {
                    // Unchanged rules (the usual case: an encap entry rewritten in place) stay.
                    if eswitch!.rule(h)?.spec != t.spec, case .success(let nh) = eswitch!.replaceRule(h, with: t.spec) {
                        f.retireHardwareCounters()
                        f.offload = .hardware(nh)
                    }
                    f.tunnelDependency = t.dependency
                } else {
                    switch eswitch!.addRule(t.spec) {
                    case .success(let h):
                        installed(f, h, t)
                        up += 1
                        logger.info("flow re-offloaded", metadata: ["ufid": "\(formatUFID(f.ufid))"])
                    case .failure(let why):
                        f.offload = .software(reason: why.description)
                        f.tunnelDependency = t.dependency
                    }
                }
            case .failure(let why):
                if wasHW {
                    removeHardware(f)
                    down += 1
                    logger.info("flow moved to software", metadata: ["ufid": "\(formatUFID(f.ufid))", "reason": "\(why)"])
                }
                f.offload = .software(reason: why.description)
            }
        }
        return (up, down)
    }

}
