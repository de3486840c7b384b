import ESwitch
import Packet
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Flow marks (partial offload): the `marks` resource, what reaches the silicon, and
/// recycling only after the grace period and with another generation.
struct FlowMarkTests {
    static func hintSpec(_ m: FlowMark, dst: UInt32 = 0xC613_0002) -> HardwareRuleSpec {
        DriverTests.spec(inPort: .vf(0), dst: dst, actions: [.hint(m)])
    }

    @Test func aMarkIsAResourceAndReachesTheSiliconAsTheRulesOnlyAction() throws {
        let (sw, dp) = try DriverTests.device()
        let m = try sw.allocateMark().get()
        #expect(m.value != 0)
        #expect(sw.tables.markPool.occupancy == 1)
        let h = try sw.addRule(Self.hintSpec(m)).get()
        #expect(dp.rules.first?.actions == [.hint(m)])
        #expect(sw.rule(h)?.mark === m)
        #expect(sw.rule(h)?.isHint == true)
        #expect(sw.deleteRule(h))
        #expect(sw.tables.markPool.occupancy == 0)
        #expect(dp.rules.isEmpty)
    }

    @Test func aMarkWithOtherActionsIsRefusedAndGivenBack() throws {
        let (sw, dp) = try DriverTests.device()
        let m = try sw.allocateMark().get()
        let r = sw.addRule(DriverTests.spec(inPort: .vf(0), dst: 1, actions: [.hint(m), .forward(.vf(1))]))
        guard case .failure(.unsupportedAction) = r else { Issue.record("accepted \(r)"); return }
        #expect(sw.tables.markPool.occupancy == 0)
        #expect(dp.rules.isEmpty)
    }

    @Test func aRefusedWriteGivesTheMarkBack() throws {
        let (sw, dp) = try DriverTests.device()
        dp.failNextWrites = 1
        let m = try sw.allocateMark().get()
        #expect(throws: OffloadFailure.self) { try sw.addRule(Self.hintSpec(m)).get() }
        #expect(sw.tables.markPool.occupancy == 0)
    }

    @Test func theMarksPoolRunsOut() throws {
        var profile = HardwareProfile()
        profile.marks = 2
        let (sw, _) = try DriverTests.device(profile: profile)
        let a = try sw.allocateMark().get(), b = try sw.allocateMark().get()
        #expect(a.value != b.value)
        #expect(throws: OffloadFailure.noSpace(table: "marks")) { try sw.allocateMark().get() }
        sw.releaseUnusedMark(a)
        #expect(sw.tables.markPool.occupancy == 1)
    }

    @Test func aReleasedMarkSlotIsReusedOnlyAfterTheGracePeriodWithAnotherGeneration() throws {
        let (sw, _) = try DriverTests.device()
        let first = try sw.allocateMark().get()
        sw.releaseUnusedMark(first)
        sw.releaseUnusedMark(first)   // twice is once
        #expect(sw.tables.markPool.occupancy == 0)
        let soon = try sw.allocateMark().get()
        #expect(FlowMark.slot(of: soon.value) != FlowMark.slot(of: first.value))
        usleep(60_000)
        let later = try sw.allocateMark().get()
        #expect(FlowMark.slot(of: later.value) == FlowMark.slot(of: first.value))
        #expect(later.value != first.value)
    }

    @Test func aReplacementTakesOverItsPredecessorsMark() throws {
        let (sw, dp) = try DriverTests.device()
        let m = try sw.allocateMark().get()
        let h = try sw.addRule(Self.hintSpec(m)).get()
        let h2 = try sw.replaceRule(h, with: Self.hintSpec(m)).get()
        #expect(sw.rule(h2)?.mark === m)
        #expect(sw.tables.markPool.occupancy == 1)
        // Hint to a full rule: the mark goes with the rule it leaves.
        let h3 = try sw.replaceRule(h2, with: DriverTests.spec(inPort: .vf(0), dst: 0xC613_0002, actions: [.forward(.vf(1))])).get()
        #expect(sw.rule(h3)?.mark == nil)
        #expect(sw.tables.markPool.occupancy == 0)
        #expect(dp.rules.first?.actions == [.forward(.vf(1))])
    }
}
