@testable import BPFDataPlane
import ESwitch
import Glibc
import Logging
import Packet
import Testing

/// A queued rule write (coalescingWrites) the kernel refuses when the queue is written:
/// the driver must not count the rule as programmed. The refusal is provoked by filling
/// the masked table's map from outside the driver, standing in for the kernel's ENOMEM
/// or E2BIG, which the driver's room check cannot foresee. Needs root.
@Suite(.enabled(if: getuid() == 0, "loading BPF programs needs root"), .serialized)
struct LostWriteTests {
    typealias P = PipelineTests
    typealias B = BatchTests

    static var profile: HardwareProfile {
        var p = HardwareProfile()
        p.maskedEntries = 512
        p.exactEntries = 512
        return p
    }

    static func dataPlane() throws -> BPFDataPlane {
        let dp = try BPFDataPlane(profile: profile)
        try dp.setMode(.switchdev, portCount: 3)
        for p: PortIndex in [.uplink, .vf(0), .vf(1)] {
            let ifindex = p == .vf(0) ? P.lo : Int32(1000 + p)
            try dp.setPort(p, DataPlanePort(ifindex: ifindex, representorIfindex: Int32(2000 + p), isUplink: p == .uplink,
                                            mtu: 1500))
        }
        return dp
    }

    /// `n` entries in the masked map that no rule owns (mask id 63, never listed).
    static func fillMaskedMap(_ dp: BPFDataPlane, _ n: Int) -> [TableKey] {
        let keys = (0..<n).map { i in
            var k = TableKey()
            k.words[0] = 63
            k.words[1] = UInt64(i + 1)
            return k
        }
        let (written, e) = BPFDataPlane.updateBatch(dp.mapFD(.masked), keys: keys,
                                          values: Array(repeating: RuleValue(actionSet: 0, counter: 0, flags: 0), count: n))
        #expect(written == n && e == 0)
        return keys
    }

    static func spec(_ i: Int) -> HardwareRuleSpec {
        var key = FlowKey(), mask = FlowKey()
        key[.inPort] = UInt64(PortIndex.vf(0))
        mask[.inPort] = FlowField.inPort.valueMask
        key[.ethType] = UInt64(EtherType.ipv4)
        mask[.ethType] = FlowField.ethType.valueMask
        key[.ipv4Dst] = UInt64(B.base + UInt32(i))
        mask[.ipv4Dst] = 0xffff_ffff
        return HardwareRuleSpec(key: key, mask: mask, actions: [.drop])
    }

    /// The data plane tells of a lost write during the call that caused it, so that
    /// the caller can refuse the rule it was writing.
    @Test func theCallThatWritesTheQueueHearsOfItsOwnRuleLost() throws {
        let dp = try Self.dataPlane()
        _ = Self.fillMaskedMap(dp, dp.capacity.rules - 100)
        var lost: [UInt32] = []
        dp.onLostWrites { counters, _ in lost += counters }
        let rules = B.rules(256, actions: [.drop])
        var lostBeforeLastCall = 0
        dp.coalescingWrites {
            for (i, r) in rules.enumerated() {
                if i == rules.count - 1 { lostBeforeLastCall = lost.count }
                _ = dp.program(batch: [r])
            }
        }
        #expect(lostBeforeLastCall == 0)
        #expect(lost.contains(rules.last!.counter))
        #expect(try B.verdict(dp, dst: B.base + 255) == P.redirect)
    }

    /// Through the driver (lockstep): exactly the rules the kernel holds are programmed,
    /// the accounting agrees, and a lost rule keeps its match (the same match is not
    /// accepted twice). The add that filled the bulk is not refused: the bulk goes to
    /// the writer thread, and its losses come after the add returned (late failures).
    @Test func theDriverCountsOnlyWhatTheKernelHolds() throws {
        let dp = try Self.dataPlane()
        let vfs = (0..<2).map { VFNetdev(name: "t\($0)", switchSide: "ts\($0)", switchIfindex: Int32(100 + $0)) }
        let sw = try ESwitch(name: "t", vfs: vfs, uplink: UplinkNetdev(name: "up", ifindex: 99), mode: .switchdev,
                             profile: Self.profile, dataPlane: dp, logger: Logger(label: "test"))
        let foreign = Self.fillMaskedMap(dp, dp.capacity.rules - 100)
        var handles: [Int: HardwareRuleHandle] = [:]
        var refused: [Int] = []
        dp.coalescingWrites {
            for i in 0..<256 {
                switch sw.addRule(Self.spec(i)) {
                case .success(let h): handles[i] = h
                case .failure: refused.append(i)
                }
            }
        }
        #expect(refused == [], "the bulk's losses come after the adds returned")
        let programmed = handles.keys.filter { sw.ruleState(handles[$0]!) == .programmed }.sorted()
        let inKernel = try (0..<256).filter { try B.verdict(dp, dst: B.base + UInt32($0)) == P.shot }
        #expect(programmed == inKernel)
        #expect(sw.tables.maskedPool.programmed == inKernel.count)
        let failed = handles.keys.filter { if case .failed = sw.ruleState(handles[$0]!) { true } else { false } }
        #expect(failed.count + inKernel.count + refused.count == 256)
        #expect(failed.contains(255), "the last rule of the bulk is lost, as a late failure")
        #expect(sw.offloadStatistics.lateFailures == UInt64(failed.count))
        // A lost rule still holds its match.
        let f = try #require(failed.min())
        _ = dp.deleteBatch(dp.mapFD(.masked), keys: foreign)
        if case .success = sw.addRule(Self.spec(f)) { Issue.record("a second rule with a failed rule's match was accepted") }
    }
}
