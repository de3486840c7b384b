import Classifier
import Glibc
import Logging
import NetLinux
import Packet

/// The offload API: rules added, replaced, deleted and read by the datapath, tunnel
/// ports and encaps. Control thread only.
extension ESwitch {
    /// Whether `prefetchRule` is worth its hashing: once the tables hold
    /// `prefetchFromRules`. Below that their entries mostly come from the cache, and the
    /// hint costs as much as it hides (at 200k and 500k rules no difference; a 1M add
    /// took 6 % less of the control thread's time with it, seven interleaved pairs).
    public var prefetchesRules: Bool { mode == .switchdev && tables.rules.count >= prefetchFromRules }

    /// A hint that a rule with this key and mask is about to be added (`addRule`): its
    /// look-ups start loading now. Changes nothing.
    /// Returns whether it did (an `addRule` of this key and mask may then say so).
    @discardableResult
    public func prefetchRule(key: FlowKey, mask: FlowKey) -> Bool {
        guard mode == .switchdev else { return false }
        tables.prefetch(key: key, mask: mask)
        return true
    }

    /// Rules from which the probed tables (the driver's classifier and the data plane's
    /// slots, with the datapath's classifier and ufid index beside them: about 128 bytes
    /// a rule at their loads) outgrow the last-level cache a core uses: 256k rules for
    /// 32 MiB. (Until session 19 this took glibc's L3 size, which on AMD is the whole
    /// package's: 384 MiB there, so the prefetch never started.) At most 32 MiB is taken:
    /// a VM is shown its host's whole L3 (260 MiB for an Intel VM of two vCPUs), which
    /// other guests share; there a 1M add took 5 % less with the prefetch from 256k.
    static let cacheOutgrowingRules = min(CPUCache.lastLevelBytes ?? 32 << 20, 32 << 20) / 128

    /// `prefetched`: `prefetchRule` was last called, and returned true, with this spec's
    /// key and mask (what it computed is used; debug builds check it).
    /// `mask`: an object of the spec's mask bits the caller holds (a classifier's), for
    /// the rule to share rather than make its own.
    public func addRule(_ spec: HardwareRuleSpec, prefetched: Bool = false,
                        mask: FlowMask? = nil) -> Result<HardwareRuleHandle, OffloadFailure> {
        guard mode == .switchdev else { return .failure(.legacyMode) }
        if let f = checkPorts(spec) {
            releaseUnusedEncaps(of: spec)
            return .failure(f)
        }
        switch engine.add(spec, prefetched: prefetched, mask: mask) {
        case .success(let r):
            return .success(HardwareRuleHandle(r))
        case .failure(let f):
            releaseUnusedEncaps(of: spec)
            return .failure(f)
        }
    }

    /// A refused rule leaves no encap entry behind that only it would have used.
    private func releaseUnusedEncaps(of spec: HardwareRuleSpec) {
        for a in spec.actions {
            if case .encap(let e) = a { tables.releaseEncap(e) }
            if case .hint(let m) = a { tables.releaseMark(m) }
        }
    }

    /// A flow mark for a partial-offload rule (`HardwareAction.hint`): taken from the
    /// `marks` resource; it goes back when no rule uses it (a refused add gives it back).
    public func allocateMark() -> Result<FlowMark, OffloadFailure> {
        guard mode == .switchdev else { return .failure(.legacyMode) }
        return tables.allocateMark()
    }

    /// Gives back a mark no rule took (the caller did not add the rule after all).
    public func releaseUnusedMark(_ m: FlowMark) { tables.releaseMark(m) }

    public func replaceRule(_ h: HardwareRuleHandle, with spec: HardwareRuleSpec) -> Result<HardwareRuleHandle, OffloadFailure> {
        guard mode == .switchdev else { return .failure(.legacyMode) }
        guard let old = rule(h) else { return .failure(.notFound) }
        if let f = checkPorts(spec) {
            releaseUnusedEncaps(of: spec)
            return .failure(f)
        }
        switch engine.replace(old, with: spec) {
        case .success(let r):
            old.handedOut = false
            return .success(HardwareRuleHandle(r))
        case .failure(let f):
            releaseUnusedEncaps(of: spec)
            return .failure(f)
        }
    }

    @discardableResult
    public func deleteRule(_ h: HardwareRuleHandle) -> Bool {
        guard let r = rule(h) else { return false }
        r.handedOut = false
        return engine.remove(r)
    }

    /// Deletes a rule whose packets are counted as its flow's. True when its removal
    /// waits in the firmware's queue (models other than lockstep): the rule forwards and
    /// counts until the firmware takes it out, and `retiringRuleCounters` reads it until
    /// then, and its last count once after.
    public func deleteRuleKeepingCount(_ h: HardwareRuleHandle) -> Bool {
        guard let r = rule(h) else { return false }
        r.handedOut = false
        guard engine.remove(r), tables.rules.holds(r), r.countsPackets else { return false }
        r.wantsLastCount = true
        return true
    }

    /// A rule deleted with `deleteRuleKeepingCount`: what it counts while its removal
    /// waits, then (`removed`) its last count, read as the firmware took it out; nil
    /// once that was given, or when no count will come (the rule went in a flush).
    public func retiringRuleCounters(_ h: HardwareRuleHandle) -> (counters: RuleCounters, removed: Bool)? {
        let r = h.rule
        if tables.rules.holds(r) { return r.countsPackets ? (dataPlane.ruleCounters(r.counter), false) : nil }
        return engine.takeLastCount(of: r.id).map { ($0, true) }
    }

    /// Takes every rule out of the hardware at once (the datapath's flush): every
    /// handle is void after it. False, with nothing changed, if the data plane could not
    /// empty its tables (the caller removes rule by rule).
    public func deleteAllRules() -> Bool { engine.removeAll() }

    /// Where a rule is: pending (accepted, not yet written), programmed, or failed
    /// (refused by the hardware after its add returned). Nil for an unknown handle.
    public func ruleState(_ h: HardwareRuleHandle) -> HardwareRuleState? { rule(h)?.state }

    /// Runs the firmware's due work; `idle` rings its doorbell (the driver has nothing
    /// else to do, so a partial bulk starts). The daemon calls it after every round of
    /// requests and when `nextHardwareDeadline` passes.
    public func serviceHardware(idle: Bool = true) {
        engine.service(now: engine.clock.now(), doorbell: idle)
    }

    /// When the firmware's current access completes (nil: it is not busy).
    public var nextHardwareDeadline: UInt64? { engine.nextDeadline }

    /// Finishes every queued hardware write now, waiting as long as they take.
    public func drainHardware() { engine.drain() }

    /// Writes and removals the firmware has not done yet, of rules still there.
    public var pendingHardwareWrites: Int { engine.pendingWrites }
    /// Whether the firmware has commands queued or under way (cheap: for the event loop).
    public var hasHardwareWork: Bool { engine.hasFirmwareWork }
    /// Rule commands waiting for an access (not the one in flight).
    var queuedHardwareWrites: Int { engine.firmware.queuedCount }

    /// A rule's hardware counters, read from the data plane now.
    public func ruleCounters(_ h: HardwareRuleHandle) -> RuleCounters? {
        guard let r = rule(h), r.countsPackets else { return nil }
        return dataPlane.ruleCounters(r.counter)
    }

    /// Puts an established connection into the hardware CT table (synchronously): its
    /// packets then run ct → recirc → post-ct rule in the silicon.
    public func addConnection(_ spec: HardwareConnectionSpec) -> Result<HardwareConnection, OffloadFailure> {
        guard mode == .switchdev else { return .failure(.legacyMode) }
        return connections.add(spec)
    }

    @discardableResult
    public func removeConnection(id: UInt64) -> Bool { connections.remove(id: id) }

    public func rule(_ h: HardwareRuleHandle) -> HardwareRule? { h.rule.handedOut ? h.rule : nil }
    public var installedRules: [HardwareRule] { tables.rules.values.filter(\.handedOut) }

    private func checkPorts(_ spec: HardwareRuleSpec) -> OffloadFailure? {
        let inPort = spec.key[.inPort]
        if inPort >= UInt64(ports.count) { return .noSuchPort(PortIndex(truncatingIfNeeded: inPort)) }
        for a in spec.actions {
            if case .forward(let p) = a, Int(p) >= ports.count { return .noSuchPort(p) }
        }
        return nil
    }

    /// The shared encap entry for a tunnel key, created on first use.
    public func encapEntry(for key: EncapKey, header: VXLAN.EncapTemplate) -> Result<EncapEntry, OffloadFailure> {
        tables.encapEntry(for: key, header: header)
    }

    /// Rewrites an encap entry's outer header in place (neighbour change): one hardware
    /// operation, whatever the number of rules sharing the entry.
    public func rewriteEncap(_ e: EncapEntry, header: VXLAN.EncapTemplate) {
        engine.rewriteEncap(e, header: header)
    }

    /// Encap entries currently in the table.
    public var encapEntries: [EncapEntry] { Array(tables.encaps.values) }

    /// Releases an encap entry that no rule uses (e.g. one created for a failed add).
    public func releaseEncapIfUnused(_ e: EncapEntry) { tables.releaseEncap(e) }

    /// Makes the hardware parser recognise VXLAN on a UDP port (reference counted).
    public func registerVXLANPort(_ port: UInt16) -> Bool {
        if let n = vxlanPortUsers[port] {
            vxlanPortUsers[port] = n + 1
            return true
        }
        guard vxlanPortUsers.count < 4 else { return false }
        vxlanPortUsers[port] = 1
        publishVXLANPorts()
        return true
    }

    /// Whether `registerVXLANPort` would succeed (the parser knows at most four ports).
    public func canRegisterVXLANPort(_ port: UInt16) -> Bool {
        vxlanPortUsers[port] != nil || vxlanPortUsers.count < 4
    }

    /// The UDP ports the hardware parser recognises VXLAN on now.
    public var registeredVXLANPorts: [UInt16] { vxlanPortUsers.keys.sorted() }

    public func unregisterVXLANPort(_ port: UInt16) {
        guard let n = vxlanPortUsers[port] else { return }
        if n > 1 { vxlanPortUsers[port] = n - 1 } else {
            vxlanPortUsers[port] = nil
            publishVXLANPorts()
        }
    }

    private func publishVXLANPorts() {
        do {
            try dataPlane.setVXLANPorts(vxlanPortUsers.keys.sorted())
        } catch {
            logger.error("vxlan ports not written to the data plane", metadata: ["error": "\(error)"])
        }
    }
}
