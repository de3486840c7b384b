@testable import ESwitch
import Testing

/// What the driver counts and reports: units a queued removal frees, wrong
/// predictions, pending writes.
struct OffloadAccountingTests {
    typealias M = OffloadModelTests

    /// A delete then an add of the same rule into a full table, while the firmware is
    /// slow: the removal is queued ahead of the add's write, so its units are the
    /// driver's to use, under prefetch as under credit.
    @Test(arguments: [OffloadModel.prefetch, .credit])
    func anAddAfterADeleteUsesTheUnitsOfTheQueuedRemoval(model: OffloadModel) throws {
        let (sw, dp, _) = try M.device(model, masked: 3, latency: 100_000)
        let hs = try (1...3).map { try sw.addRule(M.ipv4($0)).get() }
        sw.drainHardware()
        #expect(dp.rules.count == 3)
        #expect(sw.deleteRule(hs[0]))
        sw.serviceHardware()   // the removal's access is under way (100 ms)
        let h = sw.addRule(M.ipv4(1))
        #expect((try? h.get()) != nil, "\(model): \(h)")
        sw.drainHardware()
        #expect(dp.rules.count == 3)
        #expect(sw.tables.maskedPool.programmed == 3)
    }

    /// An injected fault is not a wrong prediction (the prediction was about room).
    @Test func anInjectedFaultIsNoWrongPrediction() throws {
        let (sw, _, _) = try M.device(.predictive, masked: 8)
        sw.params.failNextOffloads = 1
        _ = try sw.addRule(M.ipv4(1)).get()
        sw.drainHardware()
        #expect(sw.offloadStatistics.lateFailures == 1)
        #expect(sw.offloadStatistics.wrongPredictions == 0)
    }

    /// After a flush during a long access, the access's writes for the rules gone are
    /// thrown away: nothing is pending.
    @Test func writesOfFlushedRulesAreNotPending() throws {
        let (sw, _, _) = try M.device(.async, latency: 100_000, batch: 1)
        for n in 1...3 { _ = try sw.addRule(M.ipv4(n)).get() }
        sw.serviceHardware()
        #expect(sw.pendingHardwareWrites == 3)
        #expect(sw.deleteAllRules())
        #expect(sw.tables.rules.isEmpty)
        #expect(sw.pendingHardwareWrites == 0, "an access still carries writes of rules that are gone")
        sw.drainHardware()
        #expect(sw.pendingHardwareWrites == 0)
    }
}
