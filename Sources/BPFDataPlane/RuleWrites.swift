import CLibBPF
import Classifier
import ESwitch
import Glibc
import NetLinux
import Packet

/// Rules into the tables, one or many at a time. Many rules of one table go in with one
/// BPF_MAP_UPDATE_BATCH (or DELETE_BATCH) per `batchLimit` rules: a bulk of rules costs
/// a handful of syscalls instead of one or more per rule.
///
/// Make-before-break as for single rules: a rule's slot is written (or replaced) in one
/// map update; a mask enters a table's list only after the rules that first use it are
/// in the table, and the list is published once per batch; rules written in a batch
/// whose later part fails stay (in order: what was installed is a prefix of the batch).
extension BPFDataPlane {
    /// Rules per batch syscall: bounds the arrays handed to the kernel.
    static let batchLimit = 16384
    /// Queued new rules (or removals) per write: a syscall per 256 rules costs little.
    static let queuedWriteBulk = 256
    /// What the queue may grow to while the writer thread still writes the previous
    /// bulk (then the control thread waits). Its storage (0.5 to 1 KB a rule) is
    /// reserved at once and kept (`spareQueues`: the queue being filled and the one in
    /// flight take turns), as the bulk's scratch and `TableRuns` are: grown by doubling and dropped, a queue's fresh pages were a fifth of a
    /// million-flow add's page faults.
    static let queueGrowthLimit = 2048

    static func slotIndex(_ t: HardwareTable) -> Int { t == .exact ? 0 : 1 }

    /// A rule ready to be written: its slot, value, and what it holds (mask, action set).
    struct PendingRule {
        let index: Int
        let table: HardwareTable
        let key: TableKey
        /// `key.fingerprint`, computed once.
        let fingerprint: Fingerprint
        let value: RuleValue
        /// Its mask's id (held, as the rule is pending; `maskWordsByID` has its words).
        let maskID: UInt32
        /// The slot's current content when the rule replaces one (same match, same counter).
        let previous: Slot?
        /// A queued rule (queued or in flight) will take the slot.
        let slotQueued: Bool
        /// Where this rule's slot was marked queued (settling it then needs no look-up).
        var queuedAt: SlotShadow.Place?
        /// The rule's actions: with the key and mask, the rule again (`rule`).
        let actions: [HardwareAction]

        /// The rule it was prepared from (`mask`: its mask's words), for a queued write the
        /// kernel refused, which is retried from it (prepared again: what the failed write
        /// took went back). The table key holds every matched bit (`prepare` checked that
        /// the rule fits it); mask bits outside it, on zero key bits, are not kept and
        /// would change nothing.
        func rule(mask: MaskWords) -> DataPlaneRule {
            var k = FlowKey(), m = FlowKey()
            let kw = key.words.span, mw = mask.words.span
            for i in 0..<18 {
                k.words[Layout.hardwareWordSource[i]] = kw[i + 1]
                m.words[Layout.hardwareWordSource[i]] = mw[i]
            }
            return DataPlaneRule(table: table, key: k, mask: m, actions: actions, counter: value.counter)
        }
    }

    /// One rule, as `program(batch:)` with one rule; inside `coalescingWrites` without
    /// the batch's array (an add-flows programs its rules one at a time).
    public func program(_ rule: DataPlaneRule) throws(DataPlaneError) {
        try programOne(rule, prefetched: false)
    }

    /// The driver's rule as its entry (`EntryRule`): queued without its full key.
    /// `prefetched`: the rule the last `prefetch` was for, whose table key, fingerprint
    /// and mask id are the prefetch's (most rules of a big add-flows, from 256k rules on).
    public func program(table: HardwareTable, match: ClassifierEntry, actions: [HardwareAction], counter: UInt32,
                        prefetched: Bool) throws(DataPlaneError) {
        try programOne(EntryRule(table: table, match: match, actions: actions, counter: counter), prefetched: prefetched)
    }

    private func programOne<R: RuleSource>(_ rule: R, prefetched: Bool) throws(DataPlaneError) {
        guard queuedWrites != nil, rule.table != .chain else {
            if let e = program(batch: [rule.rule]).error { throw e }
            return
        }
        try? writeQueuedRemovals()
        switch queue(rule, index: 0, prefetched: prefetched) {
        case .done: return
        case .failed(let e): throw e
        case .tableNearlyFull:
            writeQueuedRules()
            if let e = programNow([rule.rule]).error { throw e }
        }
    }


    /// Runs `body` with the writes of new rules queued and written a bulk at a time (an
    /// add-flows of many flows costs a syscall per bulk, not one per flow). A queued rule
    /// has been checked and holds its mask and action set, as a written one: only the
    /// kernel's write waits. Replacements, and anything else that touches the tables,
    /// write the queue first, so rules still change in order; every rule is in the
    /// tables when this returns (the daemon answers its client after that).
    public func coalescingWrites<T>(_ body: () throws -> T) rethrows -> T {
        guard queuedWrites == nil else { return try body() }
        queuedWrites = spareQueues.popLast() ?? []
        queuedWrites!.reserveCapacity(Self.queuedWriteBulk)
        defer {
            // (Written until nothing is left: a lost write's handler could queue again,
            // even a whole bulk that goes to the writer thread.)
            while inFlight != nil || queuedWrites?.isEmpty == false { writeQueuedRules() }
            if let q = queuedWrites { keepSpare(q) }
            queuedWrites = nil
        }
        return try body()
    }

    /// Writes the queued new rules. The kernel refusing one now should not happen (the
    /// table's room was checked when it was queued); if it does, the refused rules are
    /// written again one by one, and those still refused are reported lost, so that the
    /// driver stops counting them as programmed.
    public func writeQueuedRules() {
        finishWriteInFlight()
        guard let bulk = takeQueue() else { return }
        let (written, _) = write(bulk)
        settleQueued(consume bulk, written: written)
    }

    /// At a full bulk: the queue goes to the writer thread, and the control thread goes
    /// on (the previous bulk's write is finished first: one in flight at a time). Until
    /// it is finished its rules' slots stay marked queued (`queue` sends a rule for one
    /// of them, or a table near full, through a synchronous write).
    private func handOffQueuedRules() {
        guard let writer = bulkWriter else { return writeQueuedRules() }
        if inFlight != nil {
            // Still writing: the queue grows meanwhile (up to `queueGrowthLimit`) rather
            // than the control thread waiting for a thread the scheduler has not run yet.
            if let outcome = writer.collectIfDone() {
                settleInFlight(outcome)
            } else if queuedWrites!.count < Self.queueGrowthLimit {
                if queuedWrites!.capacity < Self.queueGrowthLimit { queuedWrites!.reserveCapacity(Self.queueGrowthLimit) }
                return
            } else {
                finishWriteInFlight()
            }
        }
        guard let bulk = takeQueue() else { return }
        inFlight = bulk
        // The rules' keys and values are gathered for the kernel on the writer thread
        // too (130 instructions a rule off the control thread): the control thread
        // keeps the bulk unchanged, and `runScratch` untouched, until it collects the write.
        let runs = runScratch, exact = mapFD(.exact), masked = mapFD(.masked)
        writer.start {
            runs.fill(bulk) { $0 == .exact ? exact : masked }
            return runs.write()
        }
    }

    /// Waits for the bulk the writer thread is writing, then settles it as a synchronous
    /// write would have. Everything that reads or changes the tables (all of it goes
    /// through `writeQueuedRules`, or calls this) does so only after.
    func finishWriteInFlight() {
        guard inFlight != nil else { return }
        settleInFlight(bulkWriter?.collect() ?? (0, EIO))
    }

    private func settleInFlight(_ outcome: BulkWriter.Outcome) {
        guard let bulk = inFlight else { return }
        inFlight = nil
        let (written, _) = settle(bulk, outcome)
        settleQueued(consume bulk, written: written)
    }

    /// The queue's rules, as a bulk; the queue goes on in the spare storage.
    private func takeQueue() -> [PendingRule]? {
        guard let q = queuedWrites, !q.isEmpty else { return nil }
        queuedWrites = spareQueues.popLast() ?? []
        queuedWrites!.reserveCapacity(Self.queuedWriteBulk)
        return q
    }

    /// After a queue's write: its storage becomes the spare, and the rules the kernel
    /// refused are written again one by one (those still refused are reported lost).
    /// Keeps an empty queue's storage for the next one (two at most: the queue being
    /// filled and the one in flight take turns).
    private func keepSpare(_ queue: [PendingRule]) {
        guard queue.capacity > 0 else { return }
        if spareQueues.count < 2 {
            spareQueues.append(queue)
        } else if let i = spareQueues.indices.min(by: { spareQueues[$0].capacity < spareQueues[$1].capacity }),
                  spareQueues[i].capacity < queue.capacity {
            spareQueues[i] = queue
        }
    }

    /// The storage is taken (`consuming`): emptied while it is the only reference, it
    /// keeps its pages (a second reference would make the emptying allocate afresh).
    private func settleQueued(_ bulk: consuming [PendingRule], written: Int) {
        defer {
            bulk.removeAll(keepingCapacity: true)
            keepSpare(bulk)
        }
        guard written < bulk.count else { return }
        var lost: [UInt32] = []
        var why: DataPlaneError?
        for p in bulk[written...] {
            let r = programNow([p.rule(mask: maskWordsByID[Int(p.maskID)]!)])
            if r.installed == 0 {
                lost.append(p.value.counter)
                why = why ?? r.error
            }
        }
        if !lost.isEmpty { lostWrites?(lost, why ?? .system("write rules", errno: EIO)) }
    }

    /// Checks rules and queues their writes (inside `coalescingWrites`); what cannot be
    /// queued is written at once, as without a queue.
    private func queue(_ rules: [DataPlaneRule]) -> (installed: Int, error: DataPlaneError?) {
        for i in rules.indices {
            switch queue(rules[i], index: i) {
            case .done: continue
            case .failed(let e): return (i, e)
            case .tableNearlyFull:
                writeQueuedRules()
                let r = programNow(Array(rules[i...]))
                return (i + r.installed, r.error)
            }
        }
        return (rules.count, nil)
    }

    private enum QueueStep {
        /// Queued, or (a replacement, a second rule for a queued slot) written.
        case done
        case failed(DataPlaneError)
        /// Near a full table the kernel's answer decides, as without a queue: the caller
        /// writes the queue, then this rule.
        case tableNearlyFull
    }

    private func queue<R: RuleSource>(_ rule: R, index i: Int, prefetched: Bool = false) -> QueueStep {
        let t = Self.slotIndex(rule.table)
        if slots(t).written + queuedWrites!.count + (inFlight?.count ?? 0) + (queuedRemovals?.count ?? 0) + 1
            >= capacity.rules {
            return .tableNearlyFull
        }
        let p: PendingRule
        do { p = try prepare(rule, index: i, prefetched: prefetched) } catch {
            // The queued rules may use the refused rule's new mask: they count on it first.
            writeQueuedRules()
            if let m = error.maskID { releaseMaskIfUnused(m) }
            return .failed(error.error)
        }
        if p.previous != nil || p.slotQueued {
            // A replacement, or a second rule for a queued (or in-flight) slot: written after the queue.
            writeQueuedRules()
            releaseActionSet(p.value.actionSet)
            releaseMaskIfUnused(p.maskID)
            if let e = programNow([rule.rule]).error { return .failed(e) }
        } else {
            let slot = Slot(actionSet: p.value.actionSet, counter: p.value.counter, flags: p.value.flags)
            let fingerprint = p.fingerprint
            // Queued first, and where its slot is marked set in the queue's copy: set in
            // `p` first, the rule (232 bytes) was copied once more.
            queuedWrites!.append(consume p)
            let n = queuedWrites!.count
            queuedWrites![n - 1].queuedAt = withSlots(t) { $0.markQueued(fingerprint, slot) }
            // A full bulk goes to the writer; while the previous one is still in flight,
            // its end is looked for every 16 rules, not at each one (and at the limit).
            if n >= Self.queuedWriteBulk && (inFlight == nil || n & 15 == 0 || n >= Self.queueGrowthLimit) { handOffQueuedRules() }
        }
        return .done
    }

    /// Installs rules in order, stopping at the first refusal; what was installed is
    /// always a prefix of `rules`.
    public func program(batch rules: [DataPlaneRule]) -> (installed: Int, error: DataPlaneError?) {
        if rules.contains(where: { $0.table == .chain }) {
            writeQueuedRules()
            return oneByOne(rules, chain: programChain, other: { program(batch: $0) })
        }
        // A removal the kernel refused is retried later; the rules go on (one with the
        // same slot is refused by prepare).
        try? writeQueuedRemovals()
        if queuedWrites != nil { return queue(rules) }
        return programNow(rules)
    }

    /// Writes rules now, a batch at a time.
    private func programNow(_ rules: [DataPlaneRule]) -> (installed: Int, error: DataPlaneError?) {
        finishWriteInFlight()
        var done = 0
        while done < rules.count {
            var pending: [PendingRule] = []
            pending.reserveCapacity(min(rules.count - done, Self.batchLimit))
            // Slots already in this write: a second rule for one waits for the next write,
            // so that the rules still take effect in order.
            var inWrite: [Set<Fingerprint>] = [[], []]
            var refusal: DataPlaneError?
            var refusedMask: UInt32?
            var i = done
            while i < rules.count && pending.count < Self.batchLimit {
                let p: PendingRule
                do { p = try prepare(rules[i], index: i) } catch {
                    refusal = error.error
                    refusedMask = error.maskID
                    break
                }
                let t = Self.slotIndex(p.table)
                if rules.count > 1 {
                    guard inWrite[t].insert(p.fingerprint).inserted else {
                        releaseActionSet(p.value.actionSet)
                        break
                    }
                }
                pending.append(p)
                i += 1
            }
            let (written, writeError) = write(pending)
            if let m = refusedMask { releaseMaskIfUnused(m) }
            done += written
            if let e = writeError { return (done, e) }
            if let e = refusal { return (done, e) }
        }
        return (done, nil)
    }

    /// Checks a rule and takes what it needs (its mask id, its action set) without
    /// writing the rule. A failure hands back the mask to release once the write of the
    /// rules before it is done (they may use it too). Thrown, not a `Result`: the prepared
    /// rule (230 bytes) is built where the caller keeps it.
    /// `prefetched`: the rule is the last `prefetch`'s (which checked that it fits the
    /// hardware key and found its mask held), so its table key is that one.
    private func prepare<R: RuleSource>(_ rule: R, index: Int, prefetched: Bool = false) throws(PrepareFailure) -> PendingRule {
        let ahead = prefetched && takesPrefetch(rule)
        // The table key and mask words made in place (or the prefetch's).
        var tableKey: TableKey, maskWords = MaskWords()
        if ahead {
            tableKey = prefetchedKey
        } else {
            tableKey = TableKey()
            guard rule.fill(&tableKey, &maskWords) else {
                throw PrepareFailure(error: .unsupported("match outside the hardware key"), maskID: nil)
            }
        }
        let lastSet = lastActionSet.flatMap { $0.actions == rule.actions ? $0.id : nil }
        var setBytes: [UInt8] = []
        if lastSet == nil {
            switch Layout.actionSet(rule.actions) {
            case .success(let b): setBytes = b
            case .failure(let e): throw PrepareFailure(error: e, maskID: nil)
            }
        }
        let maskID: UInt32
        let fingerprint: Fingerprint
        if ahead {
            maskID = prefetchedMaskID
            fingerprint = prefetchedFingerprint
        } else {
            do { maskID = try acquireMask(&maskWords) } catch {
                throw PrepareFailure(error: error, maskID: nil)
            }
            tableKey.setMaskID(maskID)
            // A prefetch of another rule's key (not said to be this one's) still spares the hash.
            fingerprint = prefetchedTable != nil && TableKey.same(&prefetchedKey, &tableKey) ? prefetchedFingerprint
                : TableKey.fingerprint(of: &tableKey)
        }
        prefetchedTable = nil
        let held = withSlots(Self.slotIndex(rule.table)) { shadow in shadow.find(fingerprint).map { shadow[$0] } }
        let previous = held.flatMap { $0.state == .written ? $0.slot : nil }
        // Two driver rules that differ only outside the hardware key would share a slot:
        // the second is refused rather than overwriting the first.
        if let previous, previous.counter != rule.counter {
            throw PrepareFailure(error: .duplicateMatch, maskID: maskID)
        }
        let setID: UInt32
        if let id = lastSet {
            actionSetUsers[Int(id)] += 1
            setID = id
        } else {
            do { setID = try acquireActionSet(ActionSetBytes(setBytes)) } catch {
                throw PrepareFailure(error: error, maskID: maskID)
            }
            lastActionSet = (rule.actions, setID)
        }
        let encap = rule.actions.contains { if case .encap = $0 { true } else { false } }
        // The rule's actions as `lastActionSet` holds them (both branches above leave it an
        // equal array): taken out of the borrowed rule, they cost a copy of the whole rule.
        let actions = lastActionSet.unsafelyUnwrapped.actions
        return PendingRule(index: index, table: rule.table, key: tableKey, fingerprint: fingerprint,
                           value: RuleValue(actionSet: setID, counter: rule.counter, encap: encap,
                                            recirc: RuleValue.recirculates(rule.actions)),
                           maskID: maskID, previous: previous, slotQueued: held?.state == .queued,
                           actions: actions)
    }

    /// The slot a rule of this key and mask would take starts loading. Only for a mask
    /// the tables hold already (a new mask's id is taken by the write itself).
    public func prefetch(key: FlowKey, mask: FlowKey, table: HardwareTable) {
        prefetchedTable = nil
        guard table != .chain else { return }
        var maskWords = MaskWords(), k = key, m = mask
        guard Layout.fill(&prefetchedKey, &maskWords, key: &k, mask: &m), let id = heldMaskID(&maskWords) else { return }
        prefetchedKey.setMaskID(id)
        prefetchedFingerprint = TableKey.fingerprint(of: &prefetchedKey)
        prefetchedMaskID = id
        prefetchedTable = table
        slots(Self.slotIndex(table)).prefetch(prefetchedFingerprint)
    }

    /// Whether what the last `prefetch` computed is for `rule`, which the caller says it
    /// was for (debug builds check it): not if it made nothing (a new mask) or its mask
    /// went since.
    private func takesPrefetch<R: RuleSource>(_ rule: R) -> Bool {
        guard prefetchedTable == rule.table else { return false }
        assert({
            var t = TableKey(), w = MaskWords()
            guard rule.fill(&t, &w) else { return false }
            t.setMaskID(prefetchedMaskID)
            return TableKey.same(&t, &prefetchedKey)
        }(), "a rule said to be prefetched is not the prefetch's")
        return true
    }

    struct PrepareFailure: Error {
        let error: DataPlaneError
        let maskID: UInt32?
    }

    /// Writes prepared rules, one batch per run of one table, and makes them count:
    /// how many were written (a prefix), and the write error if any. Rules not
    /// written give back what they took.
    private func write(_ pending: [PendingRule]) -> (Int, DataPlaneError?) {
        runScratch.fill(pending, mapFD: mapFD)
        let outcome = runScratch.write()
        // A big synchronous write (a firmware bulk) leaves no buffer of its size behind.
        if pending.count > Self.queueGrowthLimit { runScratch.release() }
        return settle(pending, outcome)
    }

    /// The driver's part of a write, once the kernel's is done: the written rules take
    /// their slots and count on their masks (new masks are published), the others give
    /// back what prepare took.
    private func settle(_ pending: [PendingRule], _ outcome: BulkWriter.Outcome) -> (Int, DataPlaneError?) {
        var written = outcome.written
        var error: DataPlaneError? = outcome.errno == 0 ? nil : .system("write rules", errno: outcome.errno)
        // The written rules count on their masks; masks new to a table join its list.
        var listed: [(mask: UInt32, table: HardwareTable)] = []
        // New rules are counted on their mask a run at a time (a bulk's rules mostly
        // share one mask: one look-up of the mask per run, not per rule).
        var run: (mask: UInt32, table: HardwareTable, rules: Int)?
        func countRun() {
            guard let r = run else { return }
            if countMaskUser(r.mask, table: r.table, rules: r.rules) { listed.append((r.mask, r.table)) }
            run = nil
        }
        // By index: a rule bound by `for p in` is a copy (its actions array retained).
        for i in 0..<written {
            let table = pending[i].table
            // Lent, not retained: the retain's locked add waited for the store that marks
            // the entry (a cache miss at a million rules), 1.9 % of a 1M add's control thread.
            withSlots(Self.slotIndex(table)) { shadow in
                if let at = pending[i].queuedAt, shadow.markWritten(at) {
                    // (The entry holds the rule's slot since it was queued.)
                } else {
                    shadow.setWritten(pending[i].fingerprint, Slot(actionSet: pending[i].value.actionSet,
                                                                   counter: pending[i].value.counter,
                                                                   flags: pending[i].value.flags))
                }
            }
            guard pending[i].previous == nil else { continue }
            if let r = run, r.table == table, r.mask == pending[i].maskID {
                run!.rules += 1
            } else {
                countRun()
                run = (pending[i].maskID, table, 1)
            }
        }
        countRun()
        // Rules never written give back what prepare took; rules taken back below have
        // given back their action set already (takeBack), only their mask is left. A
        // replacement's previous action set is released after this, by the rules that stay.
        let neverWritten = written
        if !listed.isEmpty {
            do { try publishLists() } catch let e {
                // The rules on the new masks never became visible: take them out, and
                // (to keep a prefix) every rule written after the first of them.
                let first = pending[..<written].firstIndex { p in
                    p.previous == nil && listed.contains { $0.mask == p.maskID && $0.table == p.table }
                } ?? written
                for p in pending[first..<written].reversed() {
                    takeBack(p)
                    releaseMaskIfUnused(p.maskID)
                }
                written = first
                error = error ?? e
            }
        }
        for p in pending[neverWritten...].reversed() {
            // A queued rule's slot was marked: it is free again.
            if p.previous == nil { slots(Self.slotIndex(p.table)).removeQueued(p.fingerprint) }
            releaseActionSet(p.value.actionSet)
            releaseMaskIfUnused(p.maskID)
        }
        // Replaced in one write: the old action set goes once no rule uses it. Only now,
        // for the rules that stay written: one taken back above runs its previous value
        // again, whose set (were it freed, its id could go to another set) it still holds.
        for p in pending[..<written] {
            if let previous = p.previous { releaseActionSet(previous.actionSet) }
        }
        return (written, error)
    }

    /// An emptied slot index keeps its storage (tens of MiB after a million rules): give it back.
    func releaseSlotStorageIfEmpty(_ t: Int) {
        if slots(t).isEmpty && slots(t).capacity > 4096 { slots(t).reset() }
    }

    /// Undoes a written rule: the slot gets its previous content back (or goes).
    private func takeBack(_ p: PendingRule) {
        let t = Self.slotIndex(p.table)
        if let previous = p.previous {
            // Its action set is still held: write() releases it only for rules that stay.
            _ = Self.updateBatch(mapFD(p.table), keys: [p.key], values: [previous.value])
            slots(t).setWritten(p.fingerprint, previous)
        } else {
            delete(mapFD(p.table), p.key.bytes)
            if let i = slots(t).find(p.fingerprint) { slots(t).remove(at: i) }
            releaseSlotStorageIfEmpty(t)
            uncountMaskUser(p.maskID, table: p.table)
        }
        releaseActionSet(p.value.actionSet)
    }

    /// A batch with chain rules, in order: chain rules one at a time (ConntrackWrites.swift),
    /// the others as batches of one. Stops at the first refusal.
    func oneByOne(_ rules: [DataPlaneRule], chain: (DataPlaneRule) throws(DataPlaneError) -> Void,
                          other: ([DataPlaneRule]) -> (Int, DataPlaneError?)) -> (Int, DataPlaneError?) {
        for (i, r) in rules.enumerated() {
            if r.table == .chain {
                do { try chain(r) } catch { return (i, error) }
            } else if let e = other([r]).1 {
                return (i, e)
            }
        }
        return (rules.count, nil)
    }


    /// Copies every rule of a table into another map (a resize), a batch at a time: the
    /// kernel's map is the only place the full keys are kept (`slots` holds fingerprints).
    func copyRules(from old: Int32, to new: Int32) throws(DataPlaneError) {
        let chunk = 4096
        var keys = [TableKey](repeating: TableKey(), count: chunk)
        var values = [RuleValue](repeating: RuleValue(actionSet: 0, counter: 0, encap: false), count: chunk)
        var inBatch: UInt32 = 0, outBatch: UInt32 = 0
        var first = true
        while true {
            var n = UInt32(chunk)
            let r = withUnsafeMutablePointer(to: &inBatch) { inp in
                withUnsafeMutablePointer(to: &outBatch) { outp in
                    keys.withUnsafeMutableBytes { k in
                        values.withUnsafeMutableBytes { v in
                            clbpf_lookup_batch(old, first ? nil : UnsafeMutableRawPointer(inp), UnsafeMutableRawPointer(outp),
                                               k.baseAddress, v.baseAddress, &n)
                        }
                    }
                }
            }
            if r < 0 && r != -ENOENT { throw .system("read rules", errno: -r) }
            let got = Int(min(n, UInt32(chunk)))
            if got > 0 {
                let (_, e) = Self.updateBatch(new, keys: Array(keys[..<got]), values: Array(values[..<got]))
                if e != 0 { throw .system("write rules", errno: e) }
            }
            if r == -ENOENT || got == 0 { return }
            inBatch = outBatch
            first = false
        }
    }

    // MARK: Batch syscalls

    /// BPF_MAP_UPDATE_BATCH (one update for a single rule): how many were written, and
    /// the errno of the first that was not (0: all).
    static func updateBatch(_ fd: Int32, keys: [TableKey], values: [RuleValue]) -> (Int, Int32) {
        keys.withUnsafeBufferPointer { k in values.withUnsafeBufferPointer { v in updateBatch(fd, keys: k, values: v) } }
    }

    static func updateBatch(_ fd: Int32, keys: UnsafeBufferPointer<TableKey>, values: UnsafeBufferPointer<RuleValue>) -> (Int, Int32) {
        guard let k = keys.baseAddress, let v = values.baseAddress, !keys.isEmpty else { return (0, 0) }
        var count = UInt32(keys.count)
        let r = keys.count == 1 ? bpf_map_update_elem(fd, k, v, UInt64(BPF_ANY)) : clbpf_update_batch(fd, k, v, &count)
        if r == 0 { return (keys.count, 0) }
        return (keys.count == 1 ? 0 : Int(min(count, UInt32(keys.count))), -r)
    }
}
