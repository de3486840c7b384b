import Classifier
import Packet

/// The driver's path from an offload request to the hardware, after "Hardware resource
/// management for network function offload" (its Figure 4): the caller's request
/// (Loop 1), the synchronous reservation that answers it (Loop 2) and the hardware
/// accesses (Loop 3), scheduled by the offload model. What is asynchronous goes
/// through the firmware's work queue (`Firmware`): rules are written in order, in bulks,
/// one access per bulk.
///
/// Control thread only. Time is the `HardwareClock`'s: real in the daemon, manual in
/// unit tests.
final class OffloadEngine {
    let tables: HardwareTables
    let clock: HardwareClock
    private(set) var firmware: Firmware
    var params: DeviceParams {
        didSet {
            firmware.params = params
            if params.offloadModel != oldValue.offloadModel || params.predictiveModel != oldValue.predictiveModel {
                modelChanged()
            }
        }
    }

    /// prefetch and credit: units reserved ahead of the rules.
    let stock = ReservedStock()
    private var predictor = OccupancyPredictor()
    /// Rules admitted by a prediction (a later refusal is a wrong prediction).
    private var predicted: Set<UInt64> = []
    /// Told of every refusal that comes after the add returned (the driver logs it).
    var onLateFailure: ((HardwareRule, OffloadFailure) -> Void)?

    private(set) var statistics = OffloadStatistics()
    /// What rules deleted with `wantsLastCount` counted, read as the firmware took them
    /// out (by rule id), until their deleter takes it (`takeLastCount`).
    private var lastCounts: [UInt64: RuleCounters] = [:]
    // intake: token bucket for the caller's synchronous accesses.
    private var intakeTokens: Double = 0
    private var intakeStamp: UInt64

    init(tables: HardwareTables, params: DeviceParams, clock: HardwareClock) {
        self.tables = tables
        self.params = params
        self.clock = clock
        intakeStamp = clock.now()
        firmware = Firmware(params: params)
        let back = backReference
        tables.dataPlane.onLostWrites { counters, error in
            back.target?._withUnsafeGuaranteedRef { $0.writesLost(counters, error) }
        }
        back.target = Unmanaged.passUnretained(self)
    }

    deinit { backReference.target = nil }

    /// The data plane's way back to this engine (its lost-write handler).
    private let backReference = BackReference<OffloadEngine>()

    /// Queued writes the silicon refused (BPFDataPlane.coalescingWrites): the rules
    /// already programmed fail late; the rest are refused by the call writing them.
    private func writesLost(_ counters: [UInt32], _ error: DataPlaneError) {
        for r in tables.writesLost(counters, error.offloadFailure) { countLateFailure(r, error.offloadFailure) }
    }

    // MARK: Offload API

    /// `prefetched`: the spec's key and mask are those of the last `HardwareTables.prefetch`.
    /// `mask`: an object of the spec's mask bits for the rule to share.
    func add(_ spec: HardwareRuleSpec, prefetched: Bool = false, mask: FlowMask? = nil) -> Result<HardwareRule, OffloadFailure> {
        beginOperation()
        defer { endOperation() }
        let rule: HardwareRule
        switch tables.accept(spec, writtenNow: params.offloadModel == .lockstep, prefetched: prefetched, mask: mask) {
        case .success(let r): rule = r
        case .failure(let f): return .failure(f)
        }
        if let f = admit(rule, prefetched: prefetched) {
            tables.discard(rule)
            return .failure(f)
        }
        return .success(rule)
    }

    /// Loop 2 (and, for lockstep, Loop 3) for one rule.
    private func admit(_ rule: HardwareRule, prefetched: Bool = false) -> OffloadFailure? {
        switch params.offloadModel {
        case .lockstep:
            callerAccess(microseconds: params.hardwareLatencyMicroseconds)
            if injectFault() { return .injectedFault }
            if let f = tables.reserve(rule) { return f }
            // (Written now, before any other prefetch: the data plane's is still this rule's.)
            if let refused = tables.programOne(rule, prefetched: prefetched) { return refused }
            statistics.programmedRules += 1
            return nil
        case .prefetch, .credit:
            if let f = reserveFromStock(rule) { return f }
        case .predictive:
            if let f = predictor.admit(rule, tables: tables, model: params.predictiveModel) { return f }
            predicted.insert(rule.id)
        case .async:
            break
        }
        enqueue(.program(rule))
        return nil
    }

    func remove(_ rule: HardwareRule) -> Bool {
        guard tables.rules.holds(rule) else { return false }
        beginOperation()
        defer { endOperation() }
        if !params.offloadModel.programsAsynchronously {
            callerAccess(microseconds: params.hardwareLatencyMicroseconds)
            return tables.discard(rule)
        }
        if !rule.isProgrammed && rule.replaces == nil {
            // Nothing of it reached the data plane: its queued write is cancelled.
            forgetPrediction(rule.id)
            return tables.discard(rule)
        }
        tables.releaseMatch(of: rule)
        enqueue(.remove(rule))
        return true
    }

    /// The last count of a rule deleted with `wantsLastCount`, once the firmware took it
    /// out; given once.
    func takeLastCount(of id: UInt64) -> RuleCounters? { lastCounts.removeValue(forKey: id) }

    /// Every rule out at once (a flush): one access, as a NIC destroys a flow table,
    /// instead of one per rule. Queued writes of the rules gone are skipped when the
    /// firmware reaches them. False, with nothing changed, if the data plane refused.
    func removeAll() -> Bool {
        beginOperation()
        defer { endOperation() }
        callerAccess(microseconds: params.hardwareLatencyMicroseconds)
        guard tables.discardAll() else { return false }
        firmware.discardQueued()
        lastCounts.removeAll()
        predicted.removeAll()
        predictor = OccupancyPredictor()
        return true
    }

    /// Make-before-break: with the same match the new actions are written over the old
    /// ones (the counter carries on); otherwise the new rule is placed before the old
    /// one is removed.
    func replace(_ old: HardwareRule, with spec: HardwareRuleSpec) -> Result<HardwareRule, OffloadFailure> {
        guard tables.rules.holds(old) else { return .failure(.notFound) }
        let sameMatch = old.mask.bits == spec.mask && old.key == spec.key.masked(by: spec.mask)
        guard sameMatch else {
            let r = add(spec)
            if case .success = r { _ = remove(old) }
            return r
        }
        beginOperation()
        defer { endOperation() }
        let rule: HardwareRule
        switch tables.acceptReplacement(of: old, spec) {
        case .success(let r): rule = r
        case .failure(let f): return .failure(f)
        }
        if predicted.remove(old.id) != nil {
            predicted.insert(rule.id)
            predictor.transfer(from: old.id, to: rule.id)
        }
        // A predecessor that held nothing (the hardware refused it late) leaves the new
        // rule to be admitted as a new one would be.
        let inherited = rule.holdsUnits || predicted.contains(rule.id)
        guard params.offloadModel.programsAsynchronously else {
            callerAccess(microseconds: params.hardwareLatencyMicroseconds)
            var failure: OffloadFailure? = injectFault() ? .injectedFault : nil
            if failure == nil, !rule.holdsUnits { failure = tables.reserve(rule) }
            if failure == nil { failure = tables.program([rule]).first?.failure }
            if let failure {
                if !inherited { tables.releaseUnits(of: rule) }
                tables.undoReplacement(rule, restoring: old)
                return .failure(failure)
            }
            tables.finishReplacement(rule)
            statistics.programmedRules += 1
            return .success(rule)
        }
        if !inherited {
            var failure: OffloadFailure?
            switch params.offloadModel {
            case .prefetch, .credit: failure = reserveFromStock(rule)
            case .predictive:
                failure = predictor.admit(rule, tables: tables, model: params.predictiveModel)
                if failure == nil { predicted.insert(rule.id) }
            case .lockstep, .async: break
            }
            if let failure {
                tables.undoReplacement(rule, restoring: old)
                return .failure(failure)
            }
        }
        tables.finishReplacement(rule)
        enqueue(.program(rule))
        return .success(rule)
    }

    /// Rewrites a shared encap entry in place: one synchronous access.
    func rewriteEncap(_ e: EncapEntry, header: VXLAN.EncapTemplate) {
        callerAccess(microseconds: params.hardwareLatencyMicroseconds)
        tables.rewriteEncap(e, header: header)
    }

    // MARK: Reservation from the stock (prefetch, credit)

    private func reserveFromStock(_ rule: HardwareRule) -> OffloadFailure? {
        let needs = tables.needs(rule)
        var refilled = false, waitedForRemovals = false
        while true {
            if needs.allSatisfy({ stock.count($0.pool) >= $0.units }) {
                let f = tables.reserve(rule, from: stock)
                if params.offloadModel == .credit { requestRefillIfLow() }
                return f
            }
            if refilled, params.offloadModel == .prefetch, !waitedForRemovals, firmware.removals > 0 {
                // Removals queued ahead of this rule free units that are the driver's:
                // wait for them and query again (credit's caller, whose refill the
                // firmware runs after them, gets them the same way).
                waitedForRemovals = true
                run(until: { self.firmware.removals == 0 })
                refilled = false
                continue
            }
            if refilled {
                // The hardware had no more room to give.
                let short = needs.first { stock.count($0.pool) < $0.units }!
                return .noSpace(table: short.pool.exhaustedPool(for: short.units).path.dropFirstComponent())
            }
            if params.offloadModel == .prefetch {
                // One synchronous access reserves the next batch.
                callerAccess(microseconds: params.queryLatencyMicroseconds)
                for n in needs where stock.count(n.pool) < n.units {
                    stock.refill(n.pool, by: max(params.prefetchBatch, n.units) - stock.count(n.pool))
                }
            } else {
                // The bucket is empty: wait for the firmware's refill.
                firmware.refillWanted = true
                run(until: { !self.firmware.refillWanted && !self.firmware.refillInFlight })
                for n in needs where stock.count(n.pool) < n.units {
                    // The refill raced with other demand: top up what this rule needs.
                    stock.refill(n.pool, by: n.units - stock.count(n.pool))
                }
            }
            refilled = true
        }
    }

    /// The credit bucket's size for a pool now: large while the pool has room, smaller
    /// as it fills (so that near full the driver does not sit on entries others need).
    func bucketSize(_ pool: HardwareResource) -> Int {
        max(1, min(params.creditBucket, (pool.available + stock.count(pool)) / 8))
    }

    /// A refill is asked for at half a bucket: the other half covers the caller while
    /// the refill's query is under way.
    private func requestRefillIfLow() {
        for pool in [tables.maskedPool, tables.exactFlows, tables.counterPool] {
            if stock.count(pool) <= bucketSize(pool) / 2 && pool.available > 0 { firmware.refillWanted = true }
        }
        if firmware.refillWanted { firmware.start(now: clock.now(), partial: true) }
    }

    /// The firmware's refill access completed: every bucket back to its size.
    private func refillBuckets() {
        for pool in [tables.maskedPool, tables.exactFlows, tables.counterPool] {
            let want = bucketSize(pool) - stock.count(pool)
            if want > 0 { stock.refill(pool, by: want) }
        }
        statistics.refills += 1
    }

    // MARK: The firmware

    private func enqueue(_ c: Firmware.Command) {
        firmware.enqueue(c)
        service(now: clock.now())
    }

    /// Runs firmware work that is due. With `doorbell` a partial bulk starts too (the
    /// driver has nothing else to do); otherwise only full bulks start.
    func service(now: UInt64, doorbell: Bool = false) {
        if doorbell { firmware.ringDoorbell() }
        firmware.start(now: now, partial: false)
        while let done = firmware.nextCompletion, done <= now {
            let access = firmware.complete()
            execute(access)
            firmware.start(now: done, partial: false)
        }
    }

    /// When the firmware's current access completes (the daemon wakes then).
    var nextDeadline: UInt64? { firmware.nextCompletion }

    /// Waits (on the caller's path) until `done` holds or the firmware has nothing left.
    private func run(until done: () -> Bool) {
        firmware.ringDoorbell()
        while !done() {
            service(now: clock.now(), doorbell: true)
            if done() { break }
            guard let next = firmware.nextCompletion else { break }
            let now = clock.now()
            if next > now { waitOnCallersPath(nanoseconds: next - now) }
        }
    }

    /// Finishes every queued write now (model change, reload, mode change, tests).
    func drain() { run(until: { self.firmware.isIdle }) }

    private func execute(_ access: Firmware.Access) {
        statistics.firmwareAccesses += 1
        if access.refill { refillBuckets() }
        var batch: [HardwareRule] = []
        func flush() {
            guard !batch.isEmpty else { return }
            for (r, f) in tables.program(batch) { lateFailure(r, f) }
            statistics.programmedRules += UInt64(batch.filter(\.isProgrammed).count)
            batch.removeAll()
        }
        for c in access.commands {
            switch c {
            case .program(let r):
                guard tables.rules.holds(r), !r.isProgrammed else { continue }
                if injectFault() {
                    lateFailure(r, .injectedFault)
                    continue
                }
                // async and predictive reserve only now, at the hardware.
                if let f = tables.reserve(r) {
                    lateFailure(r, f)
                    continue
                }
                batch.append(r)
            case .remove(let r):
                flush()
                forgetPrediction(r.id)
                // The rule forwarded and counted until now: its last count is its flow's.
                if r.wantsLastCount, r.countsPackets, tables.rules.holds(r) {
                    lastCounts[r.id] = tables.dataPlane.ruleCounters(r.counter)
                }
                tables.discard(r)
            }
        }
        flush()
        if firmware.isIdle { statistics.lastCoherentNanoseconds = access.completion }
    }

    /// The hardware refused a rule after the add returned: the rule stays (failed) for
    /// the flow to show; what it held goes back.
    private func lateFailure(_ r: HardwareRule, _ f: OffloadFailure) {
        tables.dropReplaced(by: r)
        tables.failLate(r, f)
        countLateFailure(r, f)
    }

    private func countLateFailure(_ r: HardwareRule, _ f: OffloadFailure) {
        statistics.lateFailures += 1
        // A prediction is about room: an injected fault or a refused write proves it
        // neither right nor wrong.
        if predicted.contains(r.id), case .noSpace = f { statistics.wrongPredictions += 1 }
        forgetPrediction(r.id)
        onLateFailure?(r, f)
    }

    private func forgetPrediction(_ id: UInt64) {
        if predicted.remove(id) != nil { predictor.forget(id) }
    }

    // MARK: Bursts: the caller's latency and the coherent one

    /// Operations closer together than this belong to one burst (a batch; generous, as a loaded machine can pause the daemon for tens of ms).
    static let burstGapNanoseconds: UInt64 = 100_000_000
    private var lastOperationEnd: UInt64 = 0

    /// Open `batchingOperations` scopes.
    private var batchDepth = 0
    /// An operation of the open batch has begun: the later ones are of its burst.
    private var batchBegun = false
    /// An operation of the open batch has ended since the burst's end was last read:
    /// the batch's end is the burst's (read when the batch ends, or when the statistics
    /// are read before).
    private var batchEndPending = false

    /// Runs `body` (a run of requests, back to back) reading the clock for the burst at
    /// its first operation and at its end, not twice at every operation (a fifth of a
    /// microsecond an operation on this VM, 2-3 % of a million-flow add). Within the
    /// batch no gap can end the burst.
    func batchingOperations<T>(_ body: () throws -> T) rethrows -> T {
        batchDepth += 1
        defer {
            batchDepth -= 1
            if batchDepth == 0 {
                settleBatchEnd()
                batchBegun = false
            }
        }
        return try body()
    }

    /// The open batch's operations have all returned by now.
    func settleBatchEnd() {
        guard batchEndPending else { return }
        batchEndPending = false
        lastOperationEnd = clock.now()
        statistics.burst.callerEnd = lastOperationEnd
    }

    private func beginOperation() {
        statistics.operations += 1
        // A later operation of the batch: the same burst.
        if batchBegun {
            statistics.burst.operations += 1
            return
        }
        let now = clock.now()
        if statistics.burst.start == 0 || now &- lastOperationEnd > Self.burstGapNanoseconds {
            statistics.burst = OffloadStatistics.Burst(start: now)
        }
        statistics.burst.operations += 1
        if batchDepth > 0 { batchBegun = true }
    }

    private func endOperation() {
        // (Only when writes were lost: the empty array returned otherwise was a release.)
        if tables.hasLostWrites {
            for (r, f) in tables.settleLost() { countLateFailure(r, f) }
        }
        if batchDepth > 0 {
            batchEndPending = true
            return
        }
        lastOperationEnd = clock.now()
        statistics.burst.callerEnd = lastOperationEnd
    }

    /// The last burst's latencies: until its last operation returned, and until every
    /// rule it asked for was in the data plane (nil while some still wait).
    var lastBurst: (operations: UInt64, callerNanoseconds: UInt64, coherentNanoseconds: UInt64?) {
        let b = statistics.burst
        guard b.start != 0 else { return (0, 0, 0) }
        let caller = b.callerEnd &- b.start
        guard firmware.isIdle else { return (b.operations, caller, nil) }
        return (b.operations, caller, max(b.callerEnd, statistics.lastCoherentNanoseconds) &- b.start)
    }

    // MARK: Costs on the caller's path

    /// One synchronous hardware access: the caller waits its latency (and the intake
    /// rate); the firmware goes on meanwhile.
    private func callerAccess(microseconds: Int) {
        statistics.callerAccesses += 1
        if microseconds > 0 { waitOnCallersPath(nanoseconds: UInt64(microseconds) * 1000) }
        throttleIntake()
        // An idle firmware has nothing to start or complete (and reading the clock is a
        // tenth of a microsecond on this VM, for every lockstep rule).
        if !firmware.isIdle { service(now: clock.now()) }
    }

    /// Time the caller spends waiting for the hardware (what the statistics report).
    private func waitOnCallersPath(nanoseconds: UInt64) {
        let start = clock.now()
        clock.wait(nanoseconds: nanoseconds)
        statistics.callerWaitNanoseconds += clock.now() - start
    }

    /// Blocks until the intake rate admits one more operation.
    private func throttleIntake() {
        let rate = params.intakeRate
        guard rate > 0 else { return }
        while true {
            let now = clock.now()
            intakeTokens = min(Double(rate) / 100 + 1, intakeTokens + Double(now - intakeStamp) * Double(rate) / 1e9)
            intakeStamp = now
            if intakeTokens >= 1 {
                intakeTokens -= 1
                return
            }
            waitOnCallersPath(nanoseconds: max(1000, UInt64((1 - intakeTokens) / Double(rate) * 1e9)))
        }
    }

    private func injectFault() -> Bool {
        guard params.failNextOffloads > 0 else { return false }
        params.failNextOffloads -= 1
        return true
    }

    private func modelChanged() {
        drain()
        stock.returnAll()
        predicted.removeAll()
        predictor = OccupancyPredictor()
        if params.offloadModel == .predictive {
            let held = tables.rules.values.filter { r in if case .failed = r.state { false } else { true } }
            predictor.rebuild(from: held, tables: tables)
            predicted = Set(held.map(\.id))
        }
    }

    /// Gives the stock back (before a reload checks what is in use).
    func returnStock() { stock.returnAll() }

    /// Every rule is gone (leaving switchdev): the stock and the predictions too.
    func forgetReservations() {
        stock.returnAll()
        predicted.removeAll()
        predictor = OccupancyPredictor()
    }

    /// Rules accepted and not yet programmed, and removals not yet done, of rules the
    /// driver still has: an access under way after a flush carries writes for rules
    /// that are gone, which it skips (they are not pending). A walk of the queue: for
    /// reports, not for the event loop (`hasFirmwareWork`).
    var pendingWrites: Int {
        firmware.outstanding.reduce(0) { n, c in
            switch c {
            case .program(let r): tables.rules.holds(r) && r.state == .pending ? n + 1 : n
            case .remove(let r): tables.rules.holds(r) ? n + 1 : n
            }
        }
    }

    /// Whether the firmware has commands queued or under way (live or not).
    var hasFirmwareWork: Bool { firmware.queuedCount + firmware.inFlightCount > 0 }
}

/// What the offload path did, as `esw-devlink dev show -s` reports it.
public struct OffloadStatistics: Sendable, Equatable {
    public var operations: UInt64 = 0
    /// Hardware accesses made on the caller's path, and the time the caller waited.
    public var callerAccesses: UInt64 = 0
    public var callerWaitNanoseconds: UInt64 = 0
    /// Accesses made by the firmware's work queue (bulk writes, credit refills).
    public var firmwareAccesses: UInt64 = 0
    public var refills: UInt64 = 0
    public var programmedRules: UInt64 = 0
    /// Refusals after the add had returned (async, wrong predictions, faults).
    public var lateFailures: UInt64 = 0
    /// Of those, rules a prediction had admitted.
    public var wrongPredictions: UInt64 = 0
    /// When the firmware last ran out of work: every accepted rule was then programmed
    /// (the end of the coherent latency).
    public var lastCoherentNanoseconds: UInt64 = 0

    /// Operations closer together than 100 ms: one batch, as a caller sees it.
    public struct Burst: Sendable, Equatable {
        public var start: UInt64 = 0
        public var callerEnd: UInt64 = 0
        public var operations: UInt64 = 0
    }
    public var burst = Burst()
}
