@testable import ESwitch
import Testing

/// Bugs a review found, each with the scenario that showed it.
struct ReviewRegressionTests {
    @Test func replacingARuleTheHardwareRefusedLateUnderLockstepWritesTheNewOne() throws {
        let (sw, dp, _) = try OffloadModelTests.device(.async)
        sw.params.failNextOffloads = 1
        let h = try sw.addRule(OffloadModelTests.ipv4(1)).get()
        sw.drainHardware()
        guard case .failed = sw.ruleState(h) else { Issue.record("the injected fault did not fail the rule"); return }
        sw.params.offloadModel = .lockstep
        var spec = OffloadModelTests.ipv4(1)
        spec.actions = [.drop]
        let h2 = try sw.replaceRule(h, with: spec).get()
        #expect(sw.ruleState(h2) == .programmed)
        #expect(dp.rules.count == 1 && dp.rules[0].actions == [.drop])
        #expect(sw.tables.maskedPool.programmed == 1 && sw.tables.maskedPool.occupancy == 1)
    }

    @Test func replacingALateFailureUnderPredictiveIsCharged() throws {
        let (sw, _, _) = try OffloadModelTests.device(.predictive, masked: 1, predictive: .complex)
        sw.params.failNextOffloads = 1
        let h = try sw.addRule(OffloadModelTests.ipv4(1)).get()
        sw.drainHardware()
        var spec = OffloadModelTests.ipv4(1)
        spec.actions = [.drop]
        _ = try sw.replaceRule(h, with: spec).get()
        // The table's one entry is now predicted taken: another rule is refused at once.
        #expect(sw.addRule(OffloadModelTests.ipv4(2)) == .failure(.noSpace(table: "masked (predicted)")))
        sw.drainHardware()
        #expect(sw.offloadStatistics.wrongPredictions == 0, "an injected fault is no wrong prediction")
        #expect(sw.offloadStatistics.lateFailures == 1, "only the injected fault")
    }

    @Test func aRemovalTheDataPlaneRefusesIsRetriedAndHoldsItsUnitsMeanwhile() throws {
        let (sw, dp, clock) = try OffloadModelTests.device(.lockstep)
        let h = try sw.addRule(OffloadModelTests.ipv4(1)).get()
        dp.failNextWrites = 1
        #expect(sw.deleteRule(h))
        #expect(dp.rules.count == 1, "still in the silicon")
        #expect(sw.tables.stuckRemovals.count == 1)
        #expect(sw.tables.maskedPool.occupancy == 1 && sw.tables.counterPool.occupancy == 1)
        sw.tick(now: clock.now())
        #expect(dp.rules.isEmpty)
        #expect(sw.tables.stuckRemovals.isEmpty)
        #expect(sw.tables.maskedPool.occupancy == 0 && sw.tables.counterPool.occupancy == 0)
    }
}
