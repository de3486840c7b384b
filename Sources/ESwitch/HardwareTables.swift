import Classifier
import NetLinux
import Packet

/// The hardware's flow tables and what they draw on: a masked (TCAM-like) table, an
/// exact-match hash table whose memory the legacy MAC table shares, encap entries and
/// counters. A rule goes through three steps, which the offload models (OffloadEngine)
/// schedule differently: `accept` (the driver's checks; nothing taken), `reserve` (its
/// table units, counter and mask taken from the pools, or from a stock the driver
/// reserved before) and `program` (written into the data plane; only then does the
/// shadow classifier that tracing reads hold it, once tracing asked for it:
/// `shadowKept`). `discard` undoes whatever was done. Runs on the control thread.
public final class HardwareTables: @unchecked Sendable {
    public let rcu: QuiescentState
    let dataPlane: DataPlane
    let masked: Classifier
    let exact: Classifier
    public let capabilities: HardwareCapabilities
    /// The action list `checkActions` passed last (held: see there), and what the
    /// checks after it and the rule need to know of it, found once per list.
    private var lastPassedActions: [HardwareAction] = []
    private var lastPassedFacts = HardwareRule.ActionFacts(of: [])

    public let root: HardwareResource
    public let maskedPool: HardwareResource
    public let exactPool: HardwareResource
    public let exactFlows: HardwareResource
    public let exactMAC: HardwareResource
    public let encapPool: HardwareResource
    public let counterPool: HardwareResource
    /// Distinct masks the parser's tuple space holds, both tables together.
    public let maskPool: HardwareResource
    /// Flow marks of partial-offload rules (FlowMarks.swift).
    public let markPool: HardwareResource
    /// The CT table: two entries per offloaded connection (ConnectionTable.swift).
    public let ctPool: HardwareResource
    var markSlots = FlowMarkAllocator()

    /// Every rule the driver accepted and has not discarded, whatever its state.
    public internal(set) var rules = HeldRules()
    public internal(set) var encaps: [EncapKey: EncapEntry] = [:]
    private var nextRuleID: UInt64 = 1
    /// Accepted rules not in the data plane (pending or failed), by match: with the
    /// shadow classifiers (the programmed ones) they make sure two rules with one match
    /// are never both held. Kept apart because a match is large (two flow keys) and the
    /// programmed rules are already indexed by the classifiers.
    var pendingByMatch: [RuleMatch: HardwareRule] = [:]
    /// Programmed rules with a ct action, per zone: a connection is worth offloading
    /// only into a zone some hardware rule looks connections up in (as mlx5 keeps a CT
    /// table per zone that a tc ct rule uses).
    public internal(set) var conntrackRuleZones: [UInt16: Int] = [:]
    /// Called when a zone's last programmed ct rule leaves (ConnectionTable flushes the
    /// zone's connections).
    var conntrackZoneEmptied: ((UInt16) -> Void)?

    private func countConntrackZone(of r: HardwareRule, _ delta: Int) {
        guard r.facts.conntrack else { return }
        for case .conntrack(let zone, _) in r.actions {
            let n = conntrackRuleZones[zone, default: 0] + delta
            conntrackRuleZones[zone] = n > 0 ? n : nil
            if n <= 0 { conntrackZoneEmptied?(zone) }
        }
    }

    /// Rules holding units, per mask (a mask is taken while one rule uses it).
    var maskUsers: [FlowMask.Key: Int] = [:]
    /// Programmed rules per mask (for the masks pool's programmed count).
    var programmedMaskUsers: [FlowMask.Key: Int] = [:]
    var counterSlots: SlotAllocator
    var encapSlots: SlotAllocator

    struct RuleMatch: Hashable {
        var table: HardwareTable
        var key: FlowKey
        var mask: FlowKey
    }

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
        markPool = root.addChild(HardwareResource(name: "marks", size: profile.marks, sizeMax: FlowMarkAllocator.capacity))
        ctPool = root.addChild(HardwareResource(name: "ct", size: profile.ctEntries, sizeMax: 1 << 22,
                                                granularity: ConnectionTable.entriesPerConnection))
    }

    /// The top-level pools, as devlink lists them.
    public var resources: [HardwareResource] { root.children }

    /// A pool by its devlink path (`/masked`, `/exact/flows`); the device itself is not
    /// one (devlink has no resource at `/`).
    public func resource(at path: String) -> HardwareResource? {
        let relative = path.hasPrefix("/") ? String(path.dropFirst()) : path
        guard !relative.isEmpty else { return nil }
        return root.find(path: root.name + "/" + relative)
    }

    // MARK: The three steps

    /// The shadow of a table: chain rules share the masked table's (their key has the
    /// recirculation id, which no frame at recirc_id 0 matches).
    func classifier(of table: HardwareTable) -> Classifier { table == .exact ? exact : masked }

    /// Whether the shadow classifiers hold the programmed rules. Only a trace reads them
    /// (`lookup`): they are built then (`keepShadow`), kept up to date from then on, and
    /// dropped with a flush. Until then a rule is not indexed by the driver at all (at a
    /// million rules a third index of every rule, a tenth of an add's work): a rule whose
    /// match another programmed rule holds is refused by the data plane (a slot is
    /// rewritten only by its own rule), and pending ones are in `pendingByMatch`.
    public internal(set) var shadowKept = false

    /// Builds the shadow classifiers from the programmed rules (those replaced and not
    /// yet overwritten, and those stuck in the silicon, included) and keeps them.
    func keepShadow() {
        guard !shadowKept else { return }
        shadowKept = true
        forEachProgrammed { r in
            // (0: accepted while no shadow was kept; one accepted since has its probe's hash.)
            if r.hash == 0 { r.rehash() }
            withClassifier(of: r.table) { _ = $0.insert(r) }
        }
    }

    /// Every rule in the silicon: the programmed held ones, those a pending replacement
    /// has not overwritten yet, and those stuck there.
    func forEachProgrammed(_ body: (HardwareRule) -> Void) {
        for r in rules.values {
            if let old = r.replaces, old.isProgrammed { body(old) }
            if r.isProgrammed { body(r) }
        }
        for r in stuckRemovals where r.isProgrammed { body(r) }
    }

    /// The pool a rule's table units come from.
    func pool(of rule: HardwareRule) -> HardwareResource { rule.table == .exact ? exactFlows : maskedPool }

    // The same, lent to `body`: on a rule's path, where a returned reference is an
    // atomic retain and release at every call.
    @inline(__always)
    private func withClassifier<R>(of table: HardwareTable, _ body: (Classifier) -> R) -> R {
        table == .exact ? body(exact) : body(masked)
    }

    @inline(__always)
    private func withPool<R>(of rule: HardwareRule, _ body: (HardwareResource) -> R) -> R {
        rule.table == .exact ? body(exactFlows) : body(maskedPool)
    }

    /// The table a rule goes to. A rule of a recirculation chain is looked up only by
    /// recirculated frames.
    static func table(key: FlowKey, mask: FlowKey) -> HardwareTable {
        key[.recircID] != 0 ? .chain : HardwareCapabilities.isExactMatchProfile(key: key, mask: mask) ? .exact : .masked
    }

    /// Starts loading what `accept` and the data plane's write of a rule with this key
    /// and mask will look at first (at a million rules each is a cache miss): called
    /// while the caller still has the rule's other work to do. Changes nothing.
    func prefetch(key: FlowKey, mask: FlowKey) {
        let table = Self.table(key: key, mask: mask)
        if shadowKept { prefetchedProbe = withClassifier(of: table) { $0.probe(key: key, mask: mask) } }
        dataPlane.prefetch(key: key, mask: mask, table: table)
    }

    /// The last `prefetch`'s probe, for an `accept` of the very key and mask (the
    /// caller says so: the probe is then not computed again). Any accept clears it.
    private var prefetchedProbe: Classifier.Probe?

    /// The mask object the last rule given none took (the rules of a bulk mostly share one).
    private var lastMask: FlowMask?

    /// A mask object for `bits` that rules share: the last one's, the shadow's, or a new one.
    private func sharedMask(_ bits: FlowKey, table: HardwareTable) -> FlowMask {
        if let m = lastMask, m.bits == bits { return m }
        let m = withClassifier(of: table) { $0.mask(for: bits) }
        lastMask = m
        return m
    }

    /// Step 1: the driver's checks (capabilities, duplicates). Takes nothing of the
    /// hardware; the rule is pending.
    /// `writtenNow`: the caller programs the rule before anything else is accepted
    /// (lockstep), so no other rule can ask for its match meanwhile and it is not listed
    /// as pending (two hash-table writes a rule saved).
    /// `prefetched`: `prefetch` was last called with this spec's key and mask.
    /// `mask`: an object of the spec's mask bits the caller has (the datapath's flow's),
    /// for the rule to share.
    func accept(_ spec: HardwareRuleSpec, writtenNow: Bool = false, prefetched: Bool = false,
                mask given: FlowMask? = nil) -> Result<HardwareRule, OffloadFailure> {
        let table = Self.table(key: spec.key, mask: spec.mask)
        // The rule's mask object and hash. With the shadow kept, from its probe, which
        // the duplicate check below uses (a cache miss at a million rules: started now,
        // or by the prefetch, it overlaps the capability checks).
        // (The mask and hash as two values, not a probe: moved into the rule, the mask
        // object is retained once, not for the probe and again for the rule.)
        let mask: FlowMask, hash: UInt32
        var probe: Classifier.Probe?
        if !shadowKept {
            assert(given.map { $0.bits == spec.mask } ?? true, "a mask object given with other bits")
            if let given { mask = given } else { mask = sharedMask(spec.mask, table: table) }
            // No shadow to probe: the rule is hashed only if a shadow takes it (`rehash`).
            hash = 0
        } else {
            if prefetched, let p = prefetchedProbe {
                assert({ let q = classifier(of: table).probe(key: spec.key, mask: spec.mask)
                         return q.hash == p.hash && q.mask.bits == p.mask.bits }(), "a spec said to be prefetched is not the prefetch's")
                probe = p
            } else {
                probe = withClassifier(of: table) { $0.probe(key: spec.key, mask: spec.mask) }
            }
            mask = probe.unsafelyUnwrapped.mask
            hash = probe.unsafelyUnwrapped.hash
        }
        if prefetchedProbe != nil { prefetchedProbe = nil }
        if let f = capabilities.check(key: spec.key, mask: spec.mask) { return .failure(f) }
        if let f = checkActions(spec.actions) { return .failure(f) }
        if let f = Self.checkChain(spec, table: table, recirculates: lastPassedFacts.recirculates) { return .failure(f) }
        // The match as a key of `pendingByMatch` (450 bytes) is made only when that holds
        // any (an add-flows in lockstep leaves none). Not as an optional made beforehand: a
        // nil one of that size was zeroed at every put.
        if !pendingByMatch.isEmpty && pendingByMatch[RuleMatch(table: table, key: spec.key.masked(by: spec.mask), mask: spec.mask)] != nil
            || probe.map({ isProgrammed(table: table, key: spec.key, probe: $0) }) == true {
            return .failure(.duplicateMatch)
        }
        // `checkActions` passed them: they are the array it keeps (read from there, not
        // out of the borrowed spec, whose field the compiler copied with the whole spec).
        let actions = lastPassedActions
        let rule = HardwareRule(id: nextRuleID, key: spec.key, actions: actions, facts: lastPassedFacts, cookie: spec.cookie,
                                mask: consume mask, hash: hash, table: table, units: HardwareCapabilities.units(for: spec.mask))
        nextRuleID += 1
        rules.add(rule)
        if !writtenNow { pendingByMatch[match(of: rule)] = rule }
        for e in rule.encapEntries { e.users += 1 }
        rule.mark?.users += 1
        return .success(rule)
    }

    /// `capabilities.check(actions:)`, passed at once for the very array that passed
    /// last: an add-flows hands the driver the same hardware actions for rule after rule
    /// (`OffloadTranslator.Memo`). The memo holds the array, so its storage, the key,
    /// cannot be reused for other actions; the capabilities never change.
    private func checkActions(_ actions: [HardwareAction]) -> OffloadFailure? {
        if !actions.isEmpty, actions.withUnsafeBufferPointer({ a in
            lastPassedActions.withUnsafeBufferPointer { $0.baseAddress == a.baseAddress && $0.count == a.count }
        }) { return nil }
        if let f = capabilities.check(actions: actions) { return f }
        lastPassedActions = actions
        lastPassedFacts = HardwareRule.ActionFacts(of: actions)
        return nil
    }

    /// What the ct/recirc passes of the pipeline (bpf/ct.h) cannot do: a frame parsed
    /// outer and inner is never recirculated, and a chain rule runs after the frame's NAT
    /// is decided, so it cannot hand the frame to software with a mark.
    static func checkChain(_ spec: HardwareRuleSpec, table: HardwareTable, recirculates: Bool) -> OffloadFailure? {
        // (`recirculates`: the actions' `ActionFacts`, found once per action list. Neither
        // case holds for most rules, which then need no look at their actions or mask.)
        guard recirculates || table == .chain else { return nil }
        if recirculates && matchesTunnel(spec.mask) { return .unsupportedAction("ct or recirc of a tunnel frame") }
        guard table == .chain else { return nil }
        if matchesTunnel(spec.mask) { return .unsupportedMatch(field: "tunnel in a recirculation chain") }
        if spec.actions.contains(where: { if case .hint = $0 { true } else { false } }) {
            return .unsupportedAction("mark in a recirculation chain")
        }
        return nil
    }

    /// Whether a programmed rule (other than one being removed or replaced) holds the
    /// match `probe` was made for (pending rules hold theirs in `pendingByMatch`).
    private func isProgrammed(table: HardwareTable, key: FlowKey, probe: Classifier.Probe) -> Bool {
        guard let e = withClassifier(of: table, { $0.lookupExact(key: key, probe: probe) }) else { return false }
        let r = unsafeDowncast(e, to: HardwareRule.self)
        return !r.retired && !r.removing
    }

    func forgetPending(_ r: HardwareRule) {
        guard !pendingByMatch.isEmpty else { return }
        let m = match(of: r)
        if pendingByMatch[m] === r { pendingByMatch[m] = nil }
        // A dictionary keeps its storage when emptied: give it back after a big batch.
        if pendingByMatch.isEmpty && pendingByMatch.capacity > 4096 { pendingByMatch = [:] }
    }

    /// Step 1 of a change of actions with the same match: the new rule takes the old
    /// one's place, units and counter (the count carries on); the old one stays in the
    /// data plane until the new one is written over it.
    func acceptReplacement(of old: HardwareRule, _ spec: HardwareRuleSpec) -> Result<HardwareRule, OffloadFailure> {
        guard rules.holds(old) else { return .failure(.notFound) }
        if let f = checkActions(spec.actions) { return .failure(f) }
        let rule = HardwareRule(id: nextRuleID, key: spec.key, actions: spec.actions, cookie: spec.cookie, mask: old.mask,
                                hash: old.hash, table: old.table, units: old.units, counter: old.counter)
        nextRuleID += 1
        rule.holdsUnits = old.holdsUnits
        old.holdsUnits = false
        // A replaced rule that never reached the data plane has nothing to overwrite.
        rule.replaces = old.isProgrammed ? old : old.replaces
        old.replaces = nil
        old.retired = true
        rules.swap(out: old, in: rule)
        pendingByMatch[match(of: rule)] = rule
        for e in rule.encapEntries { e.users += 1 }
        rule.mark?.users += 1
        if !old.isProgrammed { rule.supersededUnwritten = old }
        return .success(rule)
    }

    /// The replacement stands (written, or queued): a predecessor that never reached the
    /// data plane lets go of its shared entries now (one that did, when the new rule is
    /// written over it).
    func finishReplacement(_ rule: HardwareRule) {
        guard let old = rule.supersededUnwritten else { return }
        rule.supersededUnwritten = nil
        dropEncaps(of: old)
    }

    /// Undoes `acceptReplacement` (a synchronous write failed): `old` is back as it was.
    func undoReplacement(_ rule: HardwareRule, restoring old: HardwareRule) {
        guard !rule.isProgrammed, rules.holds(rule) else { return }
        old.retired = false
        old.holdsUnits = rule.holdsUnits
        if !old.isProgrammed { old.replaces = rule.replaces }
        rule.holdsUnits = false
        rule.replaces = nil
        rule.supersededUnwritten = nil
        rule.retired = true
        rules.swap(out: rule, in: old)
        if old.isProgrammed { forgetPending(rule) } else { pendingByMatch[match(of: old)] = old }
        dropEncaps(of: rule)
    }

    /// A rule whose removal is queued behind other writes: its match is free for a new
    /// rule at once (the firmware removes the old one before it writes the new one).
    func releaseMatch(of r: HardwareRule) {
        r.removing = true
        forgetPending(r)
    }

    private func match(of r: HardwareRule) -> RuleMatch {
        RuleMatch(table: r.table, key: r.key, mask: r.mask.bits)
    }

    /// What a rule takes from the pools a driver may stock (its mask comes on top).
    func needs(_ rule: HardwareRule) -> [(pool: HardwareResource, units: Int)] {
        [(pool(of: rule), rule.units), (counterPool, 1)]
    }

    /// Step 2: takes the rule's mask, table units and counter, from `stock` when given
    /// (units the driver reserved earlier) or else from the pools.
    func reserve(_ rule: HardwareRule, from stock: ReservedStock? = nil) -> OffloadFailure? {
        guard !rule.holdsUnits else { return nil }
        return withPool(of: rule) { reserve(rule, from: stock, pool: $0) }
    }

    private func reserve(_ rule: HardwareRule, from stock: ReservedStock?, pool: HardwareResource) -> OffloadFailure? {
        // The mask's count taken first, in one look-up (a failure below gives it back).
        let maskKey = FlowMask.Key(rule.mask)
        let newMask = Self.countOne(&maskUsers[maskKey, default: 0])
        func undoMask() {
            if newMask { maskUsers[maskKey] = nil } else { maskUsers[maskKey]! -= 1 }
        }
        if newMask && !maskPool.reserve(1) {
            undoMask()
            return .noSpace(table: "masks")
        }
        func undoMaskAndPool() {
            undoMask()
            if newMask { maskPool.release(1) }
        }
        let tookUnits = stock.map { $0.take(pool, rule.units) } ?? pool.reserve(rule.units)
        guard tookUnits else {
            undoMaskAndPool()
            return .noSpace(table: pool.exhaustedPool(for: rule.units).path.dropFirstComponent())
        }
        let tookCounter = stock.map { $0.take(counterPool, 1) } ?? counterPool.reserve(1)
        guard tookCounter, let counter = allocateCounterSlot() else {
            if tookCounter { counterPool.release(1) }
            pool.release(rule.units)
            undoMaskAndPool()
            return .noSpace(table: "counters")
        }
        rule.counter = counter
        rule.holdsUnits = true
        return nil
    }

    /// Step 3: writes reserved rules into the data plane, in order. Returns the rules
    /// the data plane refused (they keep their units; the caller decides).
    func program(_ batch: [HardwareRule]) -> [(rule: HardwareRule, failure: OffloadFailure)] {
        if batch.count == 1 { return programOne(batch[0]).map { [(batch[0], $0)] } ?? [] }
        var refused: [(HardwareRule, OffloadFailure)] = []
        let writable = batch.filter { $0.holdsUnits && !$0.retired }
        // A new rule's counter is zero (allocateCounterSlot); a replacement carries its
        // predecessor's counter on.
        var start = 0
        while start < writable.count {
            let rest = writable[start...]
            let (written, error) = dataPlane.program(batch: rest.map(\.programmed))
            for r in rest.prefix(written) {
                if let f = settleWritten(r) { refused.append((r, f)) }
            }
            guard let error else { break }
            // The one refused is right after what was written; the rest is tried again.
            refused.append((writable[start + written], error.offloadFailure))
            start += written + 1
        }
        return refused
    }

    /// `program` for one rule (lockstep: every rule of an add-flows), without the
    /// batch's arrays: why the data plane refused it, if it did.
    /// `prefetched`: the rule is of the last `prefetch`'s key and mask.
    func programOne(_ r: HardwareRule, prefetched: Bool = false) -> OffloadFailure? {
        guard r.holdsUnits && !r.retired else { return nil }
        // The rule's own entry, not `programmed`: its full key rebuilt, and that and its
        // mask copied on the way, were a twentieth of a put.
        do { try dataPlane.program(table: r.table, match: r, actions: r.actions, counter: r.counter, prefetched: prefetched) } catch {
            return error.offloadFailure
        }
        return settleWritten(r)
    }

    /// A rule the data plane took: committed, unless it went into a queue whose write
    /// the silicon then refused (that refusal is its answer).
    private func settleWritten(_ r: HardwareRule) -> OffloadFailure? {
        if !lostUnprogrammed.isEmpty, let f = lostUnprogrammed.removeValue(forKey: r.counter), r.replaces == nil {
            return f
        }
        committed(r)
        return nil
    }

    /// Adds one to a count in place (one dictionary look-up); true if it was zero.
    private static func countOne(_ n: inout Int) -> Bool {
        n += 1
        return n == 1
    }

    private func committed(_ r: HardwareRule) {
        r.state = .programmed
        forgetPending(r)
        countConntrackZone(of: r, 1)
        if let old = r.replaces {
            countConntrackZone(of: old, -1)
            if shadowKept {
                if r.hash == 0 { r.rehash() }
                withClassifier(of: r.table) { _ = $0.replace(old, with: r) }
            }
            old.state = .pending
            dropEncaps(of: old)
            r.replaces = nil
        } else {
            // No second probe of the shadow classifier (a cache miss at a million rules):
            // the match was free when the rule was accepted (`accept`), pending rules hold
            // theirs (`pendingByMatch`), and a rule `accept` let past while a retired or
            // removing one with its match is still in the classifier gets here only if
            // that one left the data plane: the data plane refuses a write to a slot
            // another rule (another counter) holds. Debug builds, which the tests run,
            // assert it (Classifier.insert).
            if shadowKept {
                if r.hash == 0 { r.rehash() }
                withClassifier(of: r.table) { _ = $0.insert(r, checkedAbsent: true) }
            }
            withPool(of: r) { $0.markProgrammed(r.units) }
            counterPool.markProgrammed(1)
            if Self.countOne(&programmedMaskUsers[FlowMask.Key(r.mask), default: 0]) { maskPool.markProgrammed(1) }
        }
    }

    /// Takes a programmed rule (or the one a replacement would overwrite) out of the
    /// data plane and the shadow classifier; its units stay with whoever holds them.
    /// False if the data plane could not remove it (it is still in the silicon).
    @discardableResult
    func unprogram(_ r: HardwareRule) -> Bool {
        guard r.isProgrammed else { return true }
        do { try dataPlane.remove(r.programmed) } catch { return false }
        forgetProgrammed(r)
        return true
    }

    /// The silicon refused rules it had accepted (their queued write failed). A rule
    /// already programmed is taken back and fails as a late refusal does (it keeps its
    /// match, so no duplicate gets in); the others belong to the `program` call under
    /// way, which refuses them (or, for a replacement whose predecessor's write was
    /// lost, `settleLost` finds the predecessor if it is put back). Returns the rules
    /// taken back.
    func writesLost(_ counters: [UInt32], _ failure: OffloadFailure) -> [HardwareRule] {
        var lost = Set(counters)
        var taken: [HardwareRule] = []
        for r in rules.values where r.isProgrammed && lost.contains(r.counter) {
            lost.remove(r.counter)
            takeBack(r, failure)
            taken.append(r)
        }
        for c in lost { lostUnprogrammed[c] = failure }
        return taken
    }

    /// Whether lost writes wait for `settleLost`.
    var hasLostWrites: Bool { !lostUnprogrammed.isEmpty }

    /// Lost writes no call claimed: a programmed rule with such a counter (a predecessor
    /// put back when its replacement failed) is not in the silicon either. Returns the
    /// rules taken back.
    func settleLost() -> [(rule: HardwareRule, failure: OffloadFailure)] {
        guard !lostUnprogrammed.isEmpty else { return [] }
        var taken: [(HardwareRule, OffloadFailure)] = []
        for r in rules.values where r.isProgrammed {
            guard let f = lostUnprogrammed[r.counter] else { continue }
            takeBack(r, f)
            taken.append((r, f))
        }
        lostUnprogrammed.removeAll()
        return taken
    }

    /// Counters of queued writes the silicon refused whose rules were not programmed
    /// when it did.
    var lostUnprogrammed: [UInt32: OffloadFailure] = [:]

    private func takeBack(_ r: HardwareRule, _ failure: OffloadFailure) {
        forgetProgrammed(r)
        failLate(r, failure)
        pendingByMatch[match(of: r)] = r
    }

    /// The shadow classifier and the accounting forget a rule that was programmed.
    private func forgetProgrammed(_ r: HardwareRule) {
        if shadowKept { classifier(of: r.table).remove(r) }
        countConntrackZone(of: r, -1)
        r.state = .pending
        pool(of: r).markProgrammed(-r.units)
        counterPool.markProgrammed(-1)
        if let n = programmedMaskUsers[FlowMask.Key(r.mask)] {
            if n > 1 { programmedMaskUsers[FlowMask.Key(r.mask)] = n - 1 } else {
                programmedMaskUsers[FlowMask.Key(r.mask)] = nil
                maskPool.markProgrammed(-1)
            }
        }
    }

    /// Rules the data plane failed to take out: still in the silicon (and the shadow
    /// classifier), holding their units, counter and shared entries until they are out.
    /// The driver's tick retries them (`retryStuckRemovals`).
    public internal(set) var stuckRemovals: [HardwareRule] = []
}


extension String {
    /// "/esw0/exact" -> "exact": resource paths as devlink prints them, without the device.
    func dropFirstComponent() -> String {
        let parts = split(separator: "/")
        return parts.dropFirst().joined(separator: "/")
    }
}
