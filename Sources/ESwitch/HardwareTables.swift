import Classifier
import Packet

/// The hardware's flow tables and what they draw on: a masked (TCAM-like) table, an
/// exact-match hash table whose memory the legacy MAC table shares, encap entries and
/// counters. Writer side runs on the control thread; packet threads only look up.
public final class HardwareTables: @unchecked Sendable {
    public let rcu: QuiescentState
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

    public private(set) var rules: [UInt64: HardwareRule] = [:]
    public private(set) var encaps: [EncapKey: EncapEntry] = [:]
    private var nextRuleID: UInt64 = 1
    private var nextEncapID: UInt32 = 1

    public init(profile: HardwareProfile, name: String, rcu: QuiescentState = .shared,
                capabilities: HardwareCapabilities = HardwareCapabilities()) {
        self.rcu = rcu
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
        counterPool = root.addChild(HardwareResource(name: "counters", size: profile.counters, sizeMax: 1 << 24))
    }

    /// The top-level pools, as devlink lists them.
    public var resources: [HardwareResource] { root.children }

    public func resource(at path: String) -> HardwareResource? {
        root.find(path: root.name + (path.hasPrefix("/") ? path : "/" + path))
    }

    // MARK: Packet threads

    /// Exact-match table first (one hash probe), then the masked table.
    @inline(__always)
    func lookup(_ key: FlowKey, reader: QuiescentState.Reader) -> HardwareRule? {
        var probed: UInt64 = 0
        if exact.count > 0, let e = exact.lookup(key, reader: reader, probed: &probed) {
            return unsafeDowncast(e.takeUnretainedValue(), to: HardwareRule.self)
        }
        if let e = masked.lookup(key, reader: reader, probed: &probed) {
            return unsafeDowncast(e.takeUnretainedValue(), to: HardwareRule.self)
        }
        return nil
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
        guard pool.reserve(units) else { return .failure(.noSpace(table: pool.exhaustedPool(for: units).path.dropFirstComponent())) }
        guard counterPool.reserve(1) else {
            pool.release(units)
            return .failure(.noSpace(table: "counters"))
        }
        let rule = HardwareRule(id: nextRuleID, spec: spec, mask: classifier.mask(for: spec.mask), table: table, units: units)
        nextRuleID += 1
        classifier.insert(rule)
        rules[rule.id] = rule
        for e in rule.encapEntries { e.users += 1 }
        return .success(rule)
    }

    func remove(_ rule: HardwareRule) -> Bool {
        guard rules.removeValue(forKey: rule.id) != nil else { return false }
        (rule.table == .exact ? exact : masked).remove(rule)
        (rule.table == .exact ? exactFlows : maskedPool).release(rule.units)
        counterPool.release(1)
        for e in rule.encapEntries {
            e.users -= 1
            if e.users == 0 { releaseEncap(e) }
        }
        return true
    }

    /// Replaces a rule. With the same match the swap is atomic for packet threads;
    /// otherwise the new rule is placed before the old one is removed.
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
        let rule = HardwareRule(id: nextRuleID, spec: spec, mask: old.mask, table: old.table, units: old.units)
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
            if e.template != header { e.replaceHeader(header, rcu: rcu) }
            return .success(e)
        }
        guard encapPool.reserve(1) else { return .failure(.noSpace(table: "encap")) }
        let e = EncapEntry(id: nextEncapID, key: key, header: header)
        nextEncapID += 1
        encaps[key] = e
        return .success(e)
    }

    /// Drops an encap entry nobody uses.
    func releaseEncap(_ e: EncapEntry) {
        guard e.users == 0, encaps[e.key] === e else { return }
        encaps[e.key] = nil
        encapPool.release(1)
    }

    func rewriteEncap(_ e: EncapEntry, header: VXLAN.EncapTemplate) {
        e.replaceHeader(header, rcu: rcu)
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
