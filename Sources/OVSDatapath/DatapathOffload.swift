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
    /// Partially offloaded: the hardware matches and marks, software runs the actions
    /// (the flow found by its mark, without classifying).
    case partial
    /// The add succeeded, then the hardware refused the rule (async, a wrong
    /// prediction): under `none` software handles the packets, under skip_sw nothing does.
    case failed(reason: String)

    /// What `dump-flows -m` says after `offloaded:` (and trace), "no" for software.
    public var word: String {
        switch self {
        case .software: "no"
        case .pending: "pending"
        case .offloaded: "yes"
        case .partial: "partial"
        case .failed: "failed"
        }
    }
}

extension Datapath {
    public func offloadStatus(of f: DatapathFlow) -> FlowOffloadStatus {
        switch f.offload {
        case .software(let why):
            return .software(reason: why)
        case .hardware(let h):
            switch eswitch?.ruleState(h) {
            case .programmed: return f.hintMark != 0 ? .partial : .offloaded
            // A replacement the firmware has not written yet: the rule it replaces is in
            // the silicon and packets meet it (with the previous actions until the write),
            // as dpif-netdev shows a flow whose change its offload thread has not made yet.
            case .pending where eswitch!.rule(h)?.replacing?.isProgrammed == true: return f.hintMark != 0 ? .partial : .offloaded
            case .pending: return .pending
            case .failed(let why): return .failed(reason: why.description)
            case nil: return .software(reason: "hardware rule gone")
            }
        }
    }

    // MARK: Offload

    fileprivate var translator: OffloadTranslator? {
        eswitch.map { OffloadTranslator(dp: self, eswitch: $0) }
    }

    /// Attempts to put a new flow into hardware, per policy.
    func offload(_ flow: DatapathFlow) throws(DatapathError) {
        guard prepareOffload(flow) else { return }
        try place(flow, hardwareRule(for: flow))
    }

    /// `offload` of a flow just made from `match` (a put: `flow.match` would rebuild it).
    /// `prefetchedPort`: what `prefetchHardwareRule(match)` returned (nothing was offloaded since).
    func offload(_ flow: DatapathFlow, match: borrowing FlowMatch, prefetchedPort: PortIndex? = nil) throws(DatapathError) {
        guard prepareOffload(flow) else { return }
        // The last translation's memo (`OffloadTranslator.memoizedSpec`) read in place, without a
        // translator: a binding of it, and the translator's of the eswitch, were a retain
        // and release each. The rule is built from it before anything can change it.
        if eswitch != nil,
           lastTranslation?.holds(inPort: UInt32(truncatingIfNeeded: match.key[.inPort]), flow.actions) == true {
            // (The memo's rule is the match with its switch port as in_port: the prefetch's
            // when that is the port the prefetch put there.)
            let prefetched = prefetchedPort != nil && prefetchedPort == lastTranslation.unsafelyUnwrapped.eswitchPort
            try place(flow, lastTranslation.unsafelyUnwrapped.spec(for: match, cookie: UInt64(truncatingIfNeeded: flow.ufid)),
                      dependency: nil, vxlanPort: nil, prefetched: prefetched, flowsMask: true)
            return
        }
        try place(flow, hardwareRule(for: flow, match: copy match))
    }

    /// Sets what the policy says of a flow about to be offloaded; false under skip_hw.
    private func prepareOffload(_ flow: DatapathFlow) -> Bool {
        flow.hardwareOnly = policy == .skipSW
        guard policy != .skipHW else {
            flow.offload = .software(reason: "offload policy is skip_hw")
            return false
        }
        return true
    }

    /// Adds the flow's translated rule to the hardware, or records (or, under skip_sw,
    /// throws) why it is not there.
    fileprivate func place(_ flow: DatapathFlow, _ translated: consuming Result<OffloadTranslator.Translation, OffloadFailure>)
        throws(DatapathError) {
        switch consume translated {
        case .success(let t):
            try place(flow, t.spec, dependency: t.dependency, vxlanPort: t.vxlanPort, flowsMask: t.spec.mask == flow.mask.bits)
        case .failure(let f):
            if try offloadPartially(flow, after: f) { return }
            try refuse(flow, f, dependency: nil)
        }
    }

    /// Adds a translated rule (`spec`, with what the translation found beside it).
    /// (`flowsMask`: the rule's mask is the flow's, whose object the rule then shares.)
    fileprivate func place(_ flow: DatapathFlow, _ spec: borrowing HardwareRuleSpec, dependency: TunnelDependency?,
                           vxlanPort: UInt16?, prefetched: Bool = false, flowsMask: Bool = false) throws(DatapathError) {
        switch eswitch!.addRule(spec, prefetched: prefetched, mask: flowsMask ? flow.mask : nil) {
        case .success(let h):
            installed(flow, h, dependency: dependency, vxlanPort: vxlanPort)
        case .failure(let f):
            if refusedForActions(spec), try offloadPartially(flow, after: f) { return }
            try refuse(flow, f, dependency: dependency)
        }
    }

    // MARK: Partial offload (hinting)

    /// Whether a refusal is about actions only software can run (the match itself fits
    /// the hardware): such a flow can be offloaded partially.
    static func isSoftwareOnlyActions(_ f: OffloadFailure) -> Bool {
        switch f {
        case .unsupportedAction: true
        // An output to a netdev outside the switch (the translator's wording).
        case .tunnel(let why, _): why.hasPrefix("output to ") && why.contains(" leaves ")
        default: false
        }
    }

    /// Whether a software flow's reason says its actions kept it there (the flows
    /// partial offload may take when it is turned on).
    static func keptInSoftwareForActions(_ reason: String) -> Bool {
        reason == "partial offload is off" || reason.hasPrefix("unsupported action")
            || (reason.hasPrefix("output to ") && reason.contains(" leaves "))
    }

    /// Whether the driver's capabilities refuse these actions (too many outputs, ...),
    /// as opposed to a write that failed or a table that is full.
    fileprivate func refusedForActions(_ spec: HardwareRuleSpec) -> Bool {
        eswitch?.tables.capabilities.check(actions: spec.actions) != nil
    }

    /// The partial rule for a flow: its match, and the mark as the only action.
    fileprivate func hintSpec(for flow: DatapathFlow, mark: FlowMark) -> HardwareRuleSpec? {
        guard let tr = translator, case .success(let t) = tr.translate(flow.match, actions: [], cookie: 0),
              t.vxlanPort == nil else { return nil }
        return HardwareRuleSpec(key: t.spec.key, mask: t.spec.mask, actions: [.hint(mark)],
                                cookie: UInt64(truncatingIfNeeded: flow.ufid))
    }

    /// Tries partial offload after the hardware refused `flow`'s actions: the hardware
    /// matches, marks and sends up the representor; software runs the actions. True if
    /// the flow has a partial rule now. When the partial rule itself is refused (no mark
    /// free, no room), the flow goes to software saying both why (the actions' reason
    /// alone would hide that resizing `marks` or a table would make it partial).
    fileprivate func offloadPartially(_ flow: DatapathFlow, after f: OffloadFailure) throws(DatapathError) -> Bool {
        guard partialOffload, policy == .none, Datapath.isSoftwareOnlyActions(f), let sw = eswitch,
              let inPort = vport(UInt32(truncatingIfNeeded: flow.match.key[.inPort])), inPort.eswitchPort != nil else { return false }
        let mark: FlowMark
        switch sw.allocateMark() {
        case .success(let m): mark = m
        case .failure(let why):
            try refuse(flow, f, dependency: nil, partial: why)
            return true
        }
        guard let spec = hintSpec(for: flow, mark: mark) else {
            sw.releaseUnusedMark(mark)
            return false
        }
        switch sw.addRule(spec) {
        case .success(let h):
            flow.offload = .hardware(h)
            flow.tunnelDependency = nil
            publishMark(mark.value, for: flow)
        case .failure(let why):
            // A refused add gave the mark back.
            try refuse(flow, f, dependency: nil, partial: why)
        }
        return true
    }

    /// Packets marked `mark` go straight to `flow`.
    fileprivate func publishMark(_ mark: UInt32, for flow: DatapathFlow) {
        flow.hintMark = mark
        marks.publish(mark: mark, port: UInt32(truncatingIfNeeded: flow.match.key[.inPort]), flow: flow)
        receiveMarksIfNeeded()
    }

    /// The flow's mark names it no more (its packets, if any, are classified).
    func withdrawMark(of flow: DatapathFlow) {
        guard flow.hintMark != 0 else { return }
        marks.withdraw(mark: flow.hintMark, flow: flow)
        flow.hintMark = 0
        receiveMarksIfNeeded()
    }

    /// Representors' sockets deliver skb->mark (SO_RCVMARK) only while some flow has a
    /// mark: traffic of datapaths without partial flows pays nothing for it.
    func receiveMarksIfNeeded() {
        let want = marks.count > 0
        guard want != receivingMarks else { return }
        receivingMarks = want
        for p in allPorts where p.eswitchPort != nil { p.netdevRX?.receiver.receiveMarks(want) }
    }

    /// Turns partial offload on or off: partial flows go to software, or software flows
    /// whose actions kept them there get partial rules.
    public func setPartialOffload(_ on: Bool) {
        guard on != partialOffload else { return }
        partialOffload = on
        for f in Array(table.flows) {
            if !on, f.hintMark != 0 {
                removeHardware(f)
                f.offload = .software(reason: "partial offload is off")
            } else if on, policy == .none, case .software(let why) = f.offload, Datapath.keptInSoftwareForActions(why) {
                try? offload(f)
            }
        }
    }

    /// A rule is in hardware: record it, and let the hardware parser see VXLAN on a
    /// decap rule's UDP port.
    fileprivate func installed(_ flow: DatapathFlow, _ h: HardwareRuleHandle, _ t: OffloadTranslator.Translation) {
        installed(flow, h, dependency: t.dependency, vxlanPort: t.vxlanPort)
    }

    fileprivate func installed(_ flow: DatapathFlow, _ h: HardwareRuleHandle, dependency: TunnelDependency?, vxlanPort: UInt16?) {
        flow.offload = .hardware(h)
        flow.tunnelDependency = dependency
        if let p = vxlanPort { _ = eswitch!.registerVXLANPort(p) }
    }

    /// `partial`: why the partial rule tried after `f` was refused too.
    fileprivate func refuse(_ flow: DatapathFlow, _ f: OffloadFailure, dependency: TunnelDependency?,
                            partial: OffloadFailure? = nil) throws(DatapathError) {
        if policy == .skipSW { throw DatapathError(f.errno, "hardware refused the flow (skip_sw): \(f)") }
        flow.offload = .software(reason: partial.map { "\(f); partial offload refused: \($0)" } ?? f.description)
        flow.tunnelDependency = dependency ?? tunnelDependency(of: flow)
    }

    /// Starts loading the hardware tables' entries that the offload of a flow with this
    /// match will look up (the driver's duplicate check, the data plane's slot): at a
    /// million rules each is a cache miss, and the flow's own checks, translation and
    /// objects come first. Only for a representor's flow, whose rule key is the match
    /// with the switch port (`OffloadTranslator.translate`).
    /// Returns the switch port it put in the key, if it did: a rule of the match with that
    /// in_port (a memoized translation's, `OffloadTranslator.Memo`) is the one prefetched.
    func prefetchHardwareRule(_ match: FlowMatch) -> PortIndex? {
        // (The eSwitch read in place: bound to a local, it is a reference taken and given back.)
        guard policy != .skipHW, eswitch?.prefetchesRules == true,
              let port = vport(UInt32(truncatingIfNeeded: match.key[.inPort]))?.eswitchPort else { return nil }
        var key = match.key
        key[.inPort] = UInt64(port)
        return eswitch.unsafelyUnwrapped.prefetchRule(key: key, mask: match.mask) ? port : nil
    }

    /// The hardware rule for a flow, or why it cannot have one.
    fileprivate func hardwareRule(for flow: DatapathFlow, match: FlowMatch? = nil) -> Result<OffloadTranslator.Translation, OffloadFailure> {
        guard let tr = translator else { return .failure(.tunnel("no eSwitch behind this datapath")) }
        // Returned as translated (a rule is ~500 bytes: no unwrapping and wrapping again).
        return tr.translate(match ?? flow.match, actions: flow.actions, cookie: UInt64(truncatingIfNeeded: flow.ufid))
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
            let slot = eswitch!.rule(h)?.counter
            // A refused replacement is the answer (OVS's tc modify deletes the old filter
            // and adds the new one; a refused add leaves the flow to software, or under
            // skip_sw is the error): never retried as a fresh add, which would hide an
            // injected or real refusal.
            var refusal: (failure: OffloadFailure, dependency: TunnelDependency?)?
            // A partial rule's counter counted what software counted too; a full rule
            // in its slot (a replacement keeps it) would count those packets again. So
            // the partial rule goes first and the full rule is placed afresh with a new
            // counter, as OVS's tc modify deletes the filter and adds one; meanwhile
            // software runs the flow. (Under skip_sw the flow must stay as it was if the
            // hardware refuses: make-before-break there, and what the partial rule counted
            // so far is baselined instead.)
            let partialToFull = old.hintMark != 0 && policy == .none
            if case .success(let t) = translated, !partialToFull {
                let markedReading = old.hintMark != 0 ? eswitch!.ruleCounters(h) : nil
                switch eswitch!.replaceRule(h, with: t.spec) {
                case .success(let nh):
                    carryCounters(from: old, to: fresh, oldSlot: slot, replacement: nh)
                    if let r = markedReading, eswitch!.rule(nh)?.counter == slot { baselineMarked(r, in: fresh) }
                    withdrawMark(of: old)
                    installed(fresh, nh, t)
                    unregisterVXLAN(of: old)
                    return
                case .failure(let f):
                    refusal = (f, t.dependency)
                }
            }
            // Partial to partial: the same match keeps its mark, which names the new
            // flow from now on (make-before-break, as for full rules).
            if case .failure(let f) = translated, partialOffload, policy == .none, Datapath.isSoftwareOnlyActions(f),
               let mark = eswitch!.rule(h)?.mark, let spec = hintSpec(for: fresh, mark: mark) {
                switch eswitch!.replaceRule(h, with: spec) {
                case .success(let nh):
                    carryCounters(from: old, to: fresh, oldSlot: slot, replacement: nh)
                    fresh.offload = .hardware(nh)
                    old.hintMark = 0
                    publishMark(mark.value, for: fresh)
                    return
                case .failure(let why):
                    refusal = (why, nil)
                }
            }
            if policy == .skipSW {
                // The old flow stays as it was (the driver put its rule back).
                if let r = refusal { throw DatapathError(r.failure.errno, "hardware refused the modified flow (skip_sw): \(r.failure)") }
                if case .failure(let f) = translated {
                    throw DatapathError(f.errno, "hardware refused the modified flow (skip_sw): \(f)")
                }
            }
            removeHardware(old)
            fresh.hardwareCarried = old.hardwareCarried
            fresh.hardwareLatest = RuleCounters()
            if let r = refusal {
                // Refused for its actions (the driver's check, before anything was
                // written): place() tries a partial rule, a first try and not a retry.
                var forActions = false
                if case .success(let t) = translated { forActions = refusedForActions(t.spec) }
                if !forActions {
                    try refuse(fresh, r.failure, dependency: r.dependency)
                    return
                }
            }
        }
        try place(fresh, translated)
    }

    /// The counter a replacement counts in: its predecessor's slot when the match is the
    /// same (the count goes on: the flow's last reading stays its latest; moving it into
    /// carried as well counted it twice from the next poll on), else a new one (what the
    /// old rule counted is carried).
    private func carryCounters(from old: DatapathFlow, to fresh: DatapathFlow, oldSlot: UInt32?,
                               replacement nh: HardwareRuleHandle) {
        if let oldSlot, eswitch?.rule(nh)?.counter == oldSlot {
            fresh.hardwareCarried = old.hardwareCarried
            fresh.hardwareLatest = old.hardwareLatest
        } else {
            old.retireHardwareCounters()
            fresh.hardwareCarried = old.hardwareCarried
            fresh.hardwareLatest = RuleCounters()
        }
    }

    /// A full rule that keeps a partial rule's counter: the slot's count so far
    /// (`reading`) beyond the flow's latest full reading was the marked packets, which
    /// software counted; the flow's baseline takes them so they are not counted twice.
    private func baselineMarked(_ reading: RuleCounters, in fresh: DatapathFlow) {
        var b = fresh.hardwareBaseline
        b.packets &+= reading.packets &- fresh.hardwareLatest.packets
        b.bytes &+= reading.bytes &- fresh.hardwareLatest.bytes
        b.lastUsedNanoseconds = max(b.lastUsedNanoseconds, reading.lastUsedNanoseconds)
        fresh.hardwareBaseline = b
    }

    func removeHardware(_ f: DatapathFlow) {
        guard case .hardware(let h) = f.offload, let sw = eswitch else { return }
        // A partial rule's counter counts what software counts again: not added.
        let reading = f.hintMark == 0 ? sw.ruleCounters(h) : nil
        if let c = reading { f.hardwareLatest = c }
        withdrawMark(of: f)
        f.retireHardwareCounters()
        if let c = reading {
            // Under a model that removes through the firmware's queue the rule goes on
            // counting until the firmware takes it out: the poll adds that.
            if sw.deleteRuleKeepingCount(h) { retiringRules.append(RetiringRule(flow: f, rule: h, counted: c)) }
        } else {
            sw.deleteRule(h)
        }
        unregisterVXLAN(of: f)
        f.offload = .software(reason: OffloadState.ruleRemoved)
    }

    /// Adds to their flows what rules deleted while their removal waits counted since
    /// the last read, and their last count once the firmware took them out. A flow
    /// deleted meanwhile gets nothing (the count goes with it).
    func pollRetiringRules(_ sw: ESwitch, previousPoll: UInt64) {
        guard !retiringRules.isEmpty else { return }
        var waiting: [RetiringRule] = []
        for var e in retiringRules {
            guard let (c, removed) = sw.retiringRuleCounters(e.rule) else { continue }
            if table.lookup(ufid: e.flow.ufid) === e.flow, c.packets > e.counted.packets {
                var carried = e.flow.hardwareCarried
                carried.packets &+= c.packets &- e.counted.packets
                carried.bytes &+= c.bytes &- e.counted.bytes
                // As for a live rule: the kernel's coarse clock can lag ours.
                carried.lastUsedNanoseconds = max(carried.lastUsedNanoseconds, c.lastUsedNanoseconds, previousPoll)
                e.flow.hardwareCarried = carried
            }
            e.counted = c
            if !removed { waiting.append(e) }
        }
        retiringRules = waiting
    }

    /// Gives back the UDP port a rule of a flow from a vxlan vport registered
    /// (`installed`). By the in_port, not the tunnel dependency: a flow that decaps and
    /// encaps again depends on its encap, and its port was registered all the same.
    func unregisterVXLAN(of f: DatapathFlow) {
        guard let p = vport(UInt32(truncatingIfNeeded: f.match.key[.inPort])), p.type == .vxlan else { return }
        eswitch?.unregisterVXLANPort(p.udpPort)
    }

    /// Re-evaluates flows that depend on tunnel state (routes, neighbours): re-offloads
    /// what can now be offloaded, moves to software what no longer can.
    @discardableResult
    public func reevaluateTunnelFlows(where pick: (DatapathFlow) -> Bool = { _ in true }) -> (offloaded: Int, software: Int) {
        // Under skip_hw nothing is offloaded; don't visit (or copy the list of) every flow
        // for each route or neighbour event.
        guard policy != .skipHW else { return (0, 0) }
        // Nor without a vxlan vport: only a flow from or to one depends on a tunnel (an
        // address or link event in the daemon's namespace walked a million flows).
        guard hasVXLANPort else { return (0, 0) }
        var up = 0, down = 0
        for f in table.flows.filter({ $0.tunnelDependency != nil && pick($0) }) {
            let wasHW = f.offload.isOffloaded
            switch hardwareRule(for: f) {
            case .success(let t):
                if case .hardware(let h) = f.offload {
                    // Unchanged rules (the usual case: an encap entry rewritten in place) stay.
                    // A replacement of the same match counts on in the same counter (the
                    // reading stays latest); another match has a new one (carried).
                    let slot = eswitch!.rule(h)?.counter
                    if eswitch!.rule(h)?.spec != t.spec.normalized, case .success(let nh) = eswitch!.replaceRule(h, with: t.spec) {
                        if slot == nil || eswitch!.rule(nh)?.counter != slot { f.retireHardwareCounters() }
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

    /// A port came or went. Flows name ports by number (in_port, output) as the
    /// kernel's do; their hardware rules name the eSwitch ports those numbers had when
    /// they were translated. The flows naming `number` are translated again: into
    /// hardware for the port that has the number now, or to software with the reason
    /// (no rule may go on forwarding for a port the datapath no longer has).
    func retranslateFlows(namingPort number: UInt32, changingPorts change: () -> Void) {
        guard policy != .skipHW, eswitch != nil else { return change() }
        let affected = table.flows.filter { $0.names(port: number) }
        // Out of the hardware while the ports are as the rules were made for (a decap
        // rule's VXLAN UDP port is given back through its vport), in again after.
        for f in affected { removeHardware(f) }
        change()
        for f in affected {
            do { try place(f, hardwareRule(for: f)) } catch {
                // skip_sw: nothing runs the flow until the port is back (as its rule could not be written).
                f.offload = .software(reason: "\(error)")
            }
        }
        if !affected.isEmpty {
            logger.info("flows translated again for a port change", metadata: ["port": "\(number)", "flows": "\(affected.count)"])
        }
    }
}

extension DatapathFlow {
    /// Whether the flow names datapath port `number`: as its in_port, or as an output at
    /// any depth of its actions (nesting is bounded by the action decoder).
    func names(port number: UInt32) -> Bool {
        UInt32(truncatingIfNeeded: match.key[.inPort]) == number || Self.outputs(to: number, in: actions)
    }

    private static func outputs(to n: UInt32, in list: [ODPAction]) -> Bool {
        list.contains { a in
            switch a {
            case .output(let p): p == n
            case .clone(let l): outputs(to: n, in: l)
            case .sample(_, let l): outputs(to: n, in: l)
            case .checkPacketLength(_, let greater, let lessEqual): outputs(to: n, in: greater) || outputs(to: n, in: lessEqual)
            default: false
            }
        }
    }
}
