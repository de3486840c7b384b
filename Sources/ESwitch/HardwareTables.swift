import Classifier
import NetLinux
import Packet

/// The hardware's flow tables and what they draw on: a masked (TCAM-like) table, an
/// exact-match hash table whose memory the legacy MAC table shares, encap entries and
/// counters. The driver's accounting lives here; every rule placed here is written to
/// the data plane before the call returns, and a write the data plane refuses leaves
/// nothing behind. Runs on the control thread.
public final class HardwareTables: @unchecked Sendable {
    public let rcu: QuiescentState
    let dataPlane: DataPlane
    let masked: Classifier
    let exact: Classifier
    public let capabilities: HardwareCapabilities

    public let root: HardwareResource
    public let maskedPool: HardwareResource
    public let exactPool: HardwareResource
    public let exactFlows: HardwareResource
    public let exactMAC: HardwareResource
    public let encapPool: HardwareResource
    public let counterPool: HardwareResource
    /// Distinct masks the parser's tuple space holds, both tables together.
    public let maskPool: HardwareResource

    public private(set) var rules: [UInt64: HardwareRule] = [:]
    public private(set) var encaps: [EncapKey: EncapEntry] = [:]
    private var nextRuleID: UInt64 = 1
    private var maskUsers: [FlowKey: Int] = [:]
    private var counterSlots: SlotAllocator
    private var encapSlots: SlotAllocator

    public init(profile: HardwareProfile, name: String, dataPlane: DataPlane, rcu: QuiescentState = .shared,
                capabilities: HardwareCapabilities = HardwareCapabilities()) {
        self.rcu = rcu
        self.dataPlane = dataPlane
        counterSlots = SlotAllocator(capacity: UInt32(clamping: DataPlaneCapacity.counters(profile)))
        encapSlots = SlotAllocator(capacity: UInt32(clamping: DataPlaneCapacity.encaps(profile)))
        self.capabilities = capabilities
        masked = Classifier(rcu: rcu)
        exact = Classifier(rcu: rcu)
        root = HardwareResource(name: name, size: Int.max >> 1, sizeMax: Int.max >> 1)
        maskedPool = root.addChild(HardwareResource(name: "masked", size: profile.maskedEntries, sizeMax: 1 << 20))
        exactPool = root.addChild(HardwareResource(name: "exact", size: profile.exactEntries, sizeMax: 1 << 22, granularity: 1))
        // Both children may use all of the shared memory; together they cannot exceed it.
        exactFlows = exactPool.addChild(HardwareResource(name: "flows", size: nil, sizeMax: 1 << 22))
        exactMAC = exactPool.addChild(HardwareResource(name: "mac", size: nil, sizeMax: 1 << 22))
        encapPool = root.addChild(HardwareResource(name: "encap", size: profile.encapEntries, sizeMax: 1 << 20))
        counterPool = root.addChild(HardwareResource(name: "counters", size: profile.counters, sizeMax: 1 << 22))
        maskPool = root.addChild(HardwareResource(name: "masks", size: DataPlaneCapacity.masks,
                                                  sizeMax: DataPlaneCapacity.masks))
    }

    /// The top-level pools, as devlink lists them.
    public var resources: [HardwareResource] { root.children }

    public func resource(at path: String) -> HardwareResource? {
        root.find(path: root.name + (path.hasPrefix("/") ? path : "/" + path))
    }

    // MARK: Control thread

    /// Places a rule, all or nothing. Latency and intake are the caller's business.
    func insert(_ spec: HardwareRuleSpec) -> Result<HardwareRule, OffloadFailure> {
        if let f = capabilities.check(key: spec.key, mask: spec.mask) { return .failure(f) }
        if let f = capabilities.check(actions: spec.actions) { return .failure(f) }
        let isExact = HardwareCapabilities.isExactMatchProfile(key: spec.key, mask: spec.mask)
        let table: HardwareTable = isExact ? .exact : .masked
        let units = HardwareCapabilities.units(for: spec.mask)
        let classifier = isExact ? exact : masked
        let pool = isExact ? exactFlows : maskedPool

        if classifier.lookupExact(key: spec.key, mask: spec.mask) != nil {
            return .failure(.unsupportedMatch(field: "duplicate of an installed rule"))
        }
        let newMask = maskUsers[spec.mask] == nil
        if newMask && !maskPool.reserve(1) { return .failure(.noSpace(table: "masks")) }
        guard pool.reserve(units) else {
            if newMask { maskPool.release(1) }
            return .failure(.noSpace(table: pool.exhaustedPool(for: units).path.dropFirstComponent()))
        }
        let now = Sys.monotonicNanoseconds()
        guard counterPool.reserve(1) else {
            pool.release(units)
            if newMask { maskPool.release(1) }
            return .failure(.noSpace(table: "counters"))
        }
        guard let counter = counterSlots.allocate(now: now) else {
            counterPool.release(1)
            pool.release(units)
            if newMask { maskPool.release(1) }
            return .failure(.noSpace(table: "counters"))
        }
        let rule = HardwareRule(id: nextRuleID, spec: spec, mask: classifier.mask(for: spec.mask), table: table, units: units,
                                counter: counter)
        dataPlane.resetCounter(counter)
        do {
            try dataPlane.program(rule.programmed)
        } catch {
            counterSlots.release(counter, now: now)
            counterPool.release(1)
            pool.release(units)
            if newMask { maskPool.release(1) }
            return .failure(error.offloadFailure)
        }
        maskUsers[spec.mask, default: 0] += 1
        nextRuleID += 1
        classifier.insert(rule)
        rules[rule.id] = rule
        for e in rule.encapEntries { e.users += 1 }
        return .success(rule)
    }

    func remove(_ rule: HardwareRule) -> Bool {
        guard rules.removeValue(forKey: rule.id) != nil else { return false }
        try? dataPlane.remove(rule.programmed)
        (rule.table == .exact ? exact : masked).remove(rule)
        (rule.table == .exact ? exactFlows : maskedPool).release(rule.units)
        counterPool.release(1)
        counterSlots.release(rule.counter, now: Sys.monotonicNanoseconds())
        if let n = maskUsers[rule.spec.mask] {
            if n > 1 { maskUsers[rule.spec.mask] = n - 1 } else {
                maskUsers[rule.spec.mask] = nil
                maskPool.release(1)
            }
        }
        for e in rule.encapEntries {
            e.users -= 1
            if e.users == 0 { releaseEncap(e) }
        }
        return true
    }

    /// Replaces a rule. With the same match the data plane swaps the actions in one
    /// write (the counter carries on); otherwise the new rule is placed before the old
    /// one is removed (make-before-break).
    func replace(_ old: HardwareRule, with spec: HardwareRuleSpec) -> Result<HardwareRule, OffloadFailure> {
        guard rules[old.id] === old else { return .failure(.notFound) }
        let sameMatch = old.spec.mask == spec.mask && old.key == spec.key.masked(by: spec.mask)
        guard sameMatch else {
            let r = insert(spec)
            if case .success = r { _ = remove(old) }
            return r
        }
        if let f = capabilities.check(actions: spec.actions) { return .failure(f) }
        let classifier = old.table == .exact ? exact : masked
        let rule = HardwareRule(id: nextRuleID, spec: spec, mask: old.mask, table: old.table, units: old.units,
                                counter: old.counter)
        do {
            try dataPlane.program(rule.programmed)
        } catch {
            return .failure(error.offloadFailure)
        }
        nextRuleID += 1
        for e in rule.encapEntries { e.users += 1 }
        classifier.replace(old, with: rule)
        rules[old.id] = nil
        rules[rule.id] = rule
        for e in old.encapEntries {
            e.users -= 1
            if e.users == 0 { releaseEncap(e) }
        }
        return .success(rule)
    }

    /// The shared encap entry for `key`, created (and counted) on first use.
    func encapEntry(for key: EncapKey, header: VXLAN.EncapTemplate) -> Result<EncapEntry, OffloadFailure> {
        if let e = encaps[key] {
            if e.template != header { rewriteEncap(e, header: header) }
            return .success(e)
        }
        let now = Sys.monotonicNanoseconds()
        guard encapPool.reserve(1) else { return .failure(.noSpace(table: "encap")) }
        guard let id = encapSlots.allocate(now: now) else {
            encapPool.release(1)
            return .failure(.noSpace(table: "encap"))
        }
        do {
            try dataPlane.writeEncap(id: id, header: header)
        } catch {
            encapSlots.release(id, now: now)
            encapPool.release(1)
            return .failure(error.offloadFailure)
        }
        let e = EncapEntry(id: id, key: key, header: header)
        encaps[key] = e
        return .success(e)
    }

    /// Drops an encap entry nobody uses.
    func releaseEncap(_ e: EncapEntry) {
        guard e.users == 0, encaps[e.key] === e else { return }
        encaps[e.key] = nil
        try? dataPlane.removeEncap(id: e.id)
        encapSlots.release(e.id, now: Sys.monotonicNanoseconds())
        encapPool.release(1)
    }

    func rewriteEncap(_ e: EncapEntry, header: VXLAN.EncapTemplate) {
        do {
            try dataPlane.writeEncap(id: e.id, header: header)
            e.template = header
        } catch {
            // The old header stays in the silicon; the tracker sees the entry unchanged.
        }
    }

    /// Makes the data plane's tables as big as the resources will be after a reload.
    func resizeDataPlane() throws(DataPlaneError) {
        let rules = max(maskedPool.sizeAfterReload, exactPool.sizeAfterReload)
        let counters = counterPool.sizeAfterReload, encaps = encapPool.sizeAfterReload
        var p = HardwareProfile()
        p.maskedEntries = rules
        p.exactEntries = rules
        p.counters = counters
        p.encapEntries = encaps
        try dataPlane.resize(rules: DataPlaneCapacity.rules(p), counters: DataPlaneCapacity.counters(p),
                             encaps: DataPlaneCapacity.encaps(p))
        counterSlots.grow(to: UInt32(clamping: DataPlaneCapacity.counters(p)))
        encapSlots.grow(to: UInt32(clamping: DataPlaneCapacity.encaps(p)))
    }

    /// Every rule's counters, read from the data plane in one go.
    func allCounters() -> [RuleCounters] {
        dataPlane.allRuleCounters(count: Int(counterSlots.highWater))
    }

    /// Legacy MAC entries occupy exact-match memory.
    func reserveMACEntry() -> Bool { exactMAC.reserve(1) }
    func releaseMACEntry() { exactMAC.release(1) }
}

extension String {
    /// "/esw0/exact" -> "exact": resource paths as devlink prints them, without the device.
    func dropFirstComponent() -> String {
        let parts = split(separator: "/")
        return parts.dropFirst().joined(separator: "/")
    }
}
