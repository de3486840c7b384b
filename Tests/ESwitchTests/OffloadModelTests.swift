@testable import ESwitch
import Classifier
import Logging
import Packet
import Testing

/// The offload models of "Hardware resource management for network function offload"
/// against the in-memory data plane, on a manual clock: waiting only advances time, so
/// the costs each model puts on the caller's path are exact.
struct OffloadModelTests {
    static func device(_ model: OffloadModel, masked: Int = 4096, exact: Int = 32768, latency: Int = 55, query: Int = 35,
                       batch: Int = 64, bucket: Int = 64, credit: Int = 64, predictive: PredictiveModel = .complex) throws
        -> (ESwitch, InMemoryDataPlane, ManualHardwareClock) {
        var profile = HardwareProfile()
        profile.maskedEntries = masked
        profile.exactEntries = exact
        var params = DeviceParams()
        params.offloadModel = model
        params.hardwareLatencyMicroseconds = latency
        params.queryLatencyMicroseconds = query
        params.programBatch = batch
        params.prefetchBatch = bucket
        params.creditBucket = credit
        params.predictiveModel = predictive
        let dp = InMemoryDataPlane()
        let clock = ManualHardwareClock()
        let vfs = (0..<2).map { VFNetdev(name: "t\($0)", switchSide: "ts\($0)", switchIfindex: Int32(100 + $0)) }
        let sw = try ESwitch(name: "t", vfs: vfs, uplink: UplinkNetdev(name: "up", ifindex: 99), mode: .switchdev,
                             profile: profile, params: params, dataPlane: dp, clock: clock, logger: Logger(label: "test"))
        try sw.start()
        return (sw, dp, clock)
    }

    /// A masked IPv4 rule (one unit), distinct per `n`.
    static func ipv4(_ n: Int) -> HardwareRuleSpec {
        DriverTests.spec(inPort: .vf(0), dst: 0xC612_0000 + UInt32(n), actions: [.forward(.vf(1))])
    }

    /// A masked IPv6 rule: a double-width entry.
    static func ipv6(_ n: Int) -> HardwareRuleSpec {
        var key = FlowKey(), mask = FlowKey()
        key[.inPort] = UInt64(PortIndex.vf(0))
        mask[.inPort] = FlowField.inPort.valueMask
        key[.ethType] = UInt64(EtherType.ipv6)
        mask[.ethType] = FlowField.ethType.valueMask
        key[.ipv6Dst] = UInt128(n + 1)
        mask[.ipv6Dst] = ~0
        return HardwareRuleSpec(key: key, mask: mask, actions: [.forward(.vf(1))])
    }

    /// An exact-match 5-tuple rule.
    static func fiveTuple(_ n: Int) -> HardwareRuleSpec {
        var key = FlowKey(), mask = FlowKey()
        for f in [FlowField.inPort, .ethSrc, .ethDst, .ethType, .ipProto, .tpSrc, .tpDst, .ipv4Src, .ipv4Dst] { mask[f] = f.valueMask }
        key[.inPort] = UInt64(PortIndex.vf(0))
        key[.ethType] = UInt64(EtherType.ipv4)
        key[.ipProto] = UInt64(IPProto.udp)
        key[.ipv4Src] = 0xC612_0001
        key[.ipv4Dst] = 0xC613_0000 + UInt64(n >> 16)
        key[.tpSrc] = UInt64(n & 0xffff)
        key[.tpDst] = 4789
        return HardwareRuleSpec(key: key, mask: mask, actions: [.forward(.vf(1))])
    }

    @Test func lockstepWaitsOneHardwareAccessPerRuleAndProgramsAtOnce() throws {
        let (sw, dp, _) = try Self.device(.lockstep)
        for n in 0..<100 {
            let h = try sw.addRule(Self.ipv4(n)).get()
            #expect(sw.ruleState(h) == .programmed)
        }
        let s = sw.offloadStatistics
        #expect(s.callerAccesses == 100)
        #expect(s.callerWaitNanoseconds == 100 * 55_000)
        #expect(s.firmwareAccesses == 0)
        #expect(dp.rules.count == 100)
    }

    @Test func prefetchWaitsOnceAPrefetchBatchAndProgramsLaterInBulks() throws {
        // Bulk writes slower than the whole run of adds: none completes meanwhile.
        let (sw, dp, clock) = try Self.device(.prefetch, latency: 500, batch: 16, bucket: 16)
        var handles: [HardwareRuleHandle] = []
        for n in 0..<64 { handles.append(try sw.addRule(Self.ipv4(n)).get()) }
        let s = sw.offloadStatistics
        // Four reservations of 16 masked entries (and counters) on the caller's path.
        #expect(s.callerAccesses == 4)
        #expect(s.callerWaitNanoseconds == 4 * 35_000)
        // Full bulks started as they filled; none has completed yet.
        #expect(dp.rules.isEmpty)
        #expect(handles.allSatisfy { sw.ruleState($0) == .pending })
        #expect(sw.tables.maskedPool.reserved == 64 && sw.tables.maskedPool.programmed == 0)
        // The first bulk started when 16 were queued (at 35 µs) and takes 500 µs.
        clock.advance(nanoseconds: 500_000)
        sw.serviceHardware(idle: false)
        #expect(dp.rules.count == 16)
        sw.drainHardware()
        #expect(dp.rules.count == 64)
        #expect(handles.allSatisfy { sw.ruleState($0) == .programmed })
        #expect(sw.offloadStatistics.firmwareAccesses == 4)
        #expect(sw.tables.maskedPool.programmed == 64)
    }

    @Test func creditWaitsOnlyForTheFirstBucketAndRefillsBelowTheLowWaterMark() throws {
        let (sw, dp, clock) = try Self.device(.credit)
        for n in 0..<1000 {
            _ = try sw.addRule(Self.ipv4(n)).get()
            // The caller's own work between two adds (parse, decode, classifier).
            clock.advance(nanoseconds: 5_000)
            sw.serviceHardware(idle: false)
        }
        let s = sw.offloadStatistics
        // Only the empty bucket at the start made the caller wait (one query).
        #expect(s.callerWaitNanoseconds == 35_000)
        #expect(s.refills > 1000 / 64)
        sw.drainHardware()
        #expect(dp.rules.count == 1000)
        let lockstepWait: UInt64 = 1000 * 55_000
        #expect(s.callerWaitNanoseconds * 10 < lockstepWait)
    }

    @Test func theCreditBucketShrinksAsTheTableFills() throws {
        let (sw, _, _) = try Self.device(.credit, masked: 512, query: 0)
        _ = try sw.addRule(Self.ipv4(0)).get()
        sw.drainHardware()
        let early = sw.stockedUnits(sw.tables.maskedPool)
        #expect(early > 48)
        for n in 1..<480 { _ = try sw.addRule(Self.ipv4(n)).get() }
        sw.drainHardware()
        let late = sw.stockedUnits(sw.tables.maskedPool)
        #expect(late < early / 4, "stock \(late) with 32 entries left")
        // The table still fills to the last entry: the stock is the driver's to use.
        for n in 480..<512 { _ = try sw.addRule(Self.ipv4(n)).get() }
        #expect(sw.addRule(Self.ipv4(600)) == .failure(.noSpace(table: "masked")))
        sw.drainHardware()
        #expect(sw.tables.maskedPool.programmed == 512)
    }

    @Test func aPendingRuleIsNeverReportedOffloadedNorSeenByTheHardwareLookup() throws {
        let (sw, dp, clock) = try Self.device(.credit)
        let h = try sw.addRule(Self.ipv4(7)).get()
        #expect(sw.ruleState(h) == .pending)
        #expect(dp.rules.isEmpty)
        var k = FlowKey()
        k[.inPort] = UInt64(PortIndex.vf(0))
        k[.ethType] = UInt64(EtherType.ipv4)
        k[.ipv4Dst] = 0xC612_0007
        #expect(sw.tables.lookup(k) == nil)
        #expect(sw.ruleCounters(h) == nil)
        // Alone in the queue, it waits for the doorbell (the driver idle), then one access.
        clock.advance(nanoseconds: 1_000_000)
        sw.serviceHardware(idle: false)
        #expect(sw.ruleState(h) == .pending)
        sw.serviceHardware(idle: true)
        clock.advance(nanoseconds: 55_000)
        sw.serviceHardware(idle: false)
        #expect(sw.ruleState(h) == .programmed)
        #expect(sw.tables.lookup(k)?.rule.id == h.id)
    }

    @Test func deletingAPendingRuleCancelsItsWrite() throws {
        let (sw, dp, _) = try Self.device(.credit)
        let h = try sw.addRule(Self.ipv4(1)).get()
        #expect(sw.deleteRule(h))
        sw.drainHardware()
        #expect(!dp.log.contains { $0.hasPrefix("program") || $0.hasPrefix("remove ") })
        #expect(sw.tables.maskedPool.occupancy == sw.stockedUnits(sw.tables.maskedPool))
    }

    @Test func aDeleteAfterProgrammingIsQueuedBehindTheWrite() throws {
        let (sw, dp, _) = try Self.device(.prefetch, batch: 4)
        let h = try sw.addRule(Self.ipv4(1)).get()
        sw.drainHardware()
        #expect(sw.deleteRule(h))
        #expect(dp.rules.count == 1, "the removal waits for the firmware")
        sw.drainHardware()
        #expect(dp.rules.isEmpty)
        #expect(dp.log.filter { $0.hasPrefix("program") || $0.hasPrefix("remove ") }.count == 2)
    }

    @Test func asyncSucceedsAtOnceAndAFailureAtProgrammingIsToldToNobody() throws {
        let (sw, dp, _) = try Self.device(.async, masked: 3)
        var handles: [HardwareRuleHandle] = []
        for n in 0..<5 { handles.append(try sw.addRule(Self.ipv4(n)).get()) }
        #expect(sw.offloadStatistics.callerWaitNanoseconds == 0)
        sw.drainHardware()
        #expect(dp.rules.count == 3)
        let failed = handles.filter { if case .failed(.noSpace) = sw.ruleState($0) { true } else { false } }
        #expect(failed.count == 2)
        #expect(sw.offloadStatistics.lateFailures == 2)
        #expect(sw.offloadStatistics.wrongPredictions == 0)
        // The failed rules hold nothing; deleting them writes nothing.
        #expect(sw.tables.maskedPool.occupancy == 3)
        for h in failed { #expect(sw.deleteRule(h)) }
        #expect(dp.rules.count == 3)
    }

    @Test func predictiveComplexCountsDoubleWidthAndSharedMemoryAndIsNeverWrong() throws {
        let (sw, _, _) = try Self.device(.predictive, masked: 10, exact: 8)
        for n in 0..<5 { _ = try sw.addRule(Self.ipv6(n)).get() }
        #expect(sw.addRule(Self.ipv6(9)) == .failure(.noSpace(table: "masked (predicted)")))
        // Legacy MAC entries hold 3 of the 8 exact entries: 5 flows fit, not 6.
        for _ in 0..<3 { #expect(sw.tables.reserveMACEntry()) }
        for n in 0..<5 { _ = try sw.addRule(Self.fiveTuple(n)).get() }
        #expect(sw.addRule(Self.fiveTuple(9)) == .failure(.noSpace(table: "exact (predicted)")))
        #expect(sw.offloadStatistics.callerAccesses == 0)
        sw.drainHardware()
        #expect(sw.offloadStatistics.wrongPredictions == 0)
        #expect(sw.tables.maskedPool.programmed == 10)
        #expect(sw.tables.exactFlows.programmed == 5)
    }

    @Test func predictiveFlatStopsAtItsPartitionsBeforeTheTableIsFull() throws {
        let (sw, _, _) = try Self.device(.predictive, masked: 16, predictive: .flat)
        var admitted = 0
        for n in 0..<16 where (try? sw.addRule(Self.ipv4(n)).get()) != nil { admitted += 1 }
        // Half the table for single-width rules: the other half stays for IPv6.
        #expect(admitted == 8)
        sw.drainHardware()
        #expect(sw.tables.maskedPool.available == 8)
    }

    @Test func aPredictionTheHardwareThenRefusesIsCountedAsWrong() throws {
        let (sw, _, _) = try Self.device(.predictive, masked: 1)
        let h = try sw.addRule(Self.ipv4(1)).get()
        // The entry the model counted on goes to someone else before the write.
        #expect(sw.tables.maskedPool.reserve(1))
        sw.drainHardware()
        #expect(sw.ruleState(h) == .failed(.noSpace(table: "masked")))
        #expect(sw.offloadStatistics.wrongPredictions == 1)
        sw.tables.maskedPool.release(1)
        // The prediction no longer counts it.
        #expect(sw.tables.maskedPool.occupancy == 0)
    }

    /// An injected fault refuses a predicted rule late, but the prediction (about
    /// room) was not wrong.
    @Test func anInjectedFaultUnderPredictiveIsALateFailureNotAWrongPrediction() throws {
        let (sw, _, _) = try Self.device(.predictive)
        sw.params.failNextOffloads = 1
        let h = try sw.addRule(Self.ipv4(1)).get()
        sw.drainHardware()
        #expect(sw.ruleState(h) == .failed(.injectedFault))
        #expect(sw.offloadStatistics.lateFailures == 1 && sw.offloadStatistics.wrongPredictions == 0)
        #expect(sw.tables.maskedPool.occupancy == 0)
    }

    @Test func replacingAPendingRuleWritesOnlyTheNewActions() throws {
        let (sw, dp, _) = try Self.device(.credit)
        let h = try sw.addRule(Self.ipv4(1)).get()
        var spec = Self.ipv4(1)
        spec.actions = [.drop]
        let h2 = try sw.replaceRule(h, with: spec).get()
        sw.drainHardware()
        #expect(dp.rules.count == 1 && dp.rules[0].actions == [.drop])
        #expect(sw.ruleState(h2) == .programmed)
        #expect(dp.log.filter { $0.hasPrefix("program") }.count == 1)
        // And replacing a programmed rule overwrites it in place, keeping its counter.
        let counter = sw.rule(h2)!.counter
        var spec3 = spec
        spec3.actions = [.forward(.vf(0))]
        let h3 = try sw.replaceRule(h2, with: spec3).get()
        #expect(dp.rules[0].actions == [.drop], "old actions until the firmware writes")
        sw.drainHardware()
        #expect(dp.rules.count == 1 && dp.rules[0].actions == [.forward(.vf(0))])
        #expect(sw.rule(h3)!.counter == counter)
        #expect(sw.tables.maskedPool.programmed == 1)
    }

    @Test func switchingModelsFinishesQueuedWritesAndReturnsTheStock() throws {
        let (sw, dp, _) = try Self.device(.credit)
        for n in 0..<10 { _ = try sw.addRule(Self.ipv4(n)).get() }
        sw.params.offloadModel = .lockstep
        #expect(dp.rules.count == 10)
        #expect(sw.stockedUnits(sw.tables.maskedPool) == 0)
        #expect(sw.tables.maskedPool.occupancy == 10)
    }

    @Test func theIntakeRateBoundsTheFirmwaresBulks() throws {
        var params = DeviceParams()
        params.hardwareLatencyMicroseconds = 10
        params.intakeRate = 1000
        params.programBatch = 64
        var fw = Firmware(params: params)
        let rule = HardwareRule(id: 1, spec: Self.ipv4(0), mask: FlowMask(FlowKey()), table: .masked, units: 1)
        for _ in 0..<64 { fw.enqueue(.program(rule)) }
        fw.start(now: 0, partial: false)
        // 64 rules at 1000/s take 64 ms, not 10 µs.
        #expect(fw.nextCompletion == 64_000_000)
    }
}

/// The credit bucket's low-water mark, exactly.
struct CreditThresholdTests {
    @Test func aRefillStartsWhenTheBucketFallsToHalf() throws {
        let (sw, _, clock) = try OffloadModelTests.device(.credit, query: 1000, credit: 64)
        let pool = sw.tables.maskedPool
        _ = try sw.addRule(OffloadModelTests.ipv4(0)).get()   // waits for the first bucket
        #expect(sw.offloadStatistics.refills == 1)
        for n in 1..<31 { _ = try sw.addRule(OffloadModelTests.ipv4(n)).get() }
        #expect(sw.stockedUnits(pool) == 33)
        #expect(sw.nextHardwareDeadline == nil, "above half: no refill yet")
        _ = try sw.addRule(OffloadModelTests.ipv4(31)).get()
        #expect(sw.stockedUnits(pool) == 32)
        #expect(sw.nextHardwareDeadline != nil, "at half: the refill's query is under way")
        clock.advance(nanoseconds: 1_000_000)
        sw.serviceHardware(idle: false)
        #expect(sw.offloadStatistics.refills == 2)
        #expect(sw.stockedUnits(pool) == 64)
        #expect(sw.offloadStatistics.callerWaitNanoseconds == 1_000_000, "only the first bucket was waited for")
    }
}

/// The two latencies of a batch, as `esw-devlink -s dev show` reports them.
struct BurstLatencyTests {
    @Test func aBatchHasACallerLatencyAndALaterCoherentOne() throws {
        let (sw, _, clock) = try OffloadModelTests.device(.credit, latency: 500, query: 35, credit: 64)
        for n in 0..<10 {
            _ = try sw.addRule(OffloadModelTests.ipv4(n)).get()
            clock.advance(nanoseconds: 5_000)
        }
        let during = sw.lastOffloadBurst
        #expect(during.operations == 10)
        #expect(during.callerNanoseconds == 35_000 + 9 * 5_000, "the first bucket's query, then the caller's own work")
        #expect(during.coherentNanoseconds == nil, "rules still wait for the firmware")
        sw.drainHardware()
        let after = sw.lastOffloadBurst
        #expect(after.coherentNanoseconds! >= after.callerNanoseconds + 500_000)
        // A later operation, after a pause, starts a new burst.
        clock.advance(nanoseconds: 200_000_000)
        _ = try sw.addRule(OffloadModelTests.ipv4(99)).get()
        #expect(sw.lastOffloadBurst.operations == 1)
    }

    /// A batch (a run of requests) reads the clock at its first operation and its end:
    /// the burst is the same, ending when the batch does or when it is read inside it.
    @Test func aBatchEndsItsBurstWhenItEndsOrIsRead() throws {
        let (sw, _, clock) = try OffloadModelTests.device(.lockstep, latency: 10)
        clock.advance(nanoseconds: 500_000_000)
        var inside: (operations: UInt64, callerNanoseconds: UInt64, coherentNanoseconds: UInt64?) = (0, 0, nil)
        sw.batchingOperations {
            for n in 0..<10 {
                _ = try? sw.addRule(OffloadModelTests.ipv4(n)).get()
                clock.advance(nanoseconds: 1_000)
            }
            inside = sw.lastOffloadBurst
            clock.advance(nanoseconds: 200_000_000)
            _ = try? sw.addRule(OffloadModelTests.ipv4(10)).get()
            clock.advance(nanoseconds: 3_000)
        }
        // Each lockstep add waits its 10 µs on the caller's path.
        #expect(inside.operations == 10)
        #expect(inside.callerNanoseconds == 10 * 10_000 + 10 * 1_000, "read inside the batch: up to now")
        let after = sw.lastOffloadBurst
        #expect(after.operations == 11, "no gap inside a batch, however long the pause")
        #expect(after.callerNanoseconds == 11 * 10_000 + 10 * 1_000 + 200_000_000 + 3_000, "up to the batch's end")
        #expect(sw.offloadStatistics.operations == 11)
    }
}

/// A deleted rule whose removal still waits for the firmware does not block its match.
struct QueuedRemovalTests {
    @Test func theSameMatchCanComeBackWhileTheRemovalIsQueued() throws {
        let (sw, dp, _) = try OffloadModelTests.device(.credit, latency: 1000)
        let h = try sw.addRule(OffloadModelTests.ipv4(1)).get()
        sw.drainHardware()
        #expect(sw.deleteRule(h))
        var spec = OffloadModelTests.ipv4(1)
        spec.actions = [.drop]
        let h2 = try sw.addRule(spec).get()
        sw.drainHardware()
        #expect(dp.rules.count == 1 && dp.rules[0].actions == [.drop], "removed first, then written")
        #expect(sw.ruleState(h2) == .programmed)
        #expect(sw.tables.maskedPool.programmed == 1)
    }
}
