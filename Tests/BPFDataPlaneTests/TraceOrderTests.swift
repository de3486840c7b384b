@testable import BPFDataPlane
import ESwitch
import Glibc
import Logging
import Packet
import Testing

/// The driver's look-up for `trace` takes the rule the silicon hits when rules of two
/// masks match a frame: the one whose mask the programs try first, in the list order
/// the data plane publishes (ranked by hits), not the driver's own. Needs root.
@Suite(.enabled(if: getuid() == 0, "loading BPF programs needs root"))
struct TraceOrderTests {
    typealias P = PipelineTests

    @Test func theLookupTakesTheMaskTheSiliconTriesFirst() throws {
        let dp = try P.dataPlane()
        let vfs = (0..<2).map { VFNetdev(name: "t\($0)", switchSide: "ts\($0)", switchIfindex: Int32(100 + $0)) }
        let sw = try ESwitch(name: "t", vfs: vfs, uplink: UplinkNetdev(name: "up", ifindex: 99), mode: .switchdev,
                             profile: HardwareProfile(), dataPlane: dp, logger: Logger(label: "test"))
        let frame = P.udpFrame(src: 0xC613_0001, dst: 0xC613_0002)
        let key = P.key(of: frame, inPort: .vf(0))
        func spec(_ field: FlowField, _ actions: [HardwareAction]) -> HardwareRuleSpec {
            var mask = FlowKey()
            for f in [FlowField.inPort, .ethType, field] { mask[f] = f.valueMask }
            return HardwareRuleSpec(key: key.masked(by: mask), mask: mask, actions: actions)
        }
        _ = try sw.addRule(spec(.ipv4Src, [.drop])).get()
        _ = try sw.addRule(spec(.ipv4Dst, [.forward(.vf(1))])).get()
        // Source mask first (first used first): the frame is dropped, and the look-up says so.
        #expect(try dp.testRun(frame: frame, ifindex: P.lo).verdict == P.shot)
        let first = try #require(sw.tables.lookup(key))
        #expect(first.rule.actions == [.drop] && first.alsoMatching == 1)
        // The destination mask ranked first (as busier): the frame is forwarded, and the
        // look-up follows the silicon.
        dp.lists[.masked]!.reverse()
        try dp.publishLists()
        #expect(try dp.testRun(frame: frame, ifindex: P.lo).verdict == P.redirect)
        let then = try #require(sw.tables.lookup(key))
        #expect(then.rule.actions == [.forward(.vf(1))] && then.alsoMatching == 1)
    }
}
