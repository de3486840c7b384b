import ESwitch
import Logging
import ODP
@testable import OVSDatapath
import Packet
import Testing

/// The datapath's offload path (translation, policies, counters) against the in-memory
/// data plane: no root, no netdev. Ports 1 and 2 stand for the representors of VF0 and VF1.
struct OffloadPathTests {
    static func datapath(policy: OffloadPolicy = .none, profile: HardwareProfile = HardwareProfile()) throws
        -> (Datapath, ESwitch, InMemoryDataPlane) {
        let dp = InMemoryDataPlane()
        let vfs = (0..<2).map { VFNetdev(name: "t\($0)", switchSide: "ts\($0)", switchIfindex: Int32(100 + $0)) }
        let sw = try ESwitch(name: "t", vfs: vfs, uplink: UplinkNetdev(name: "up", ifindex: 99), mode: .switchdev,
                             profile: profile, dataPlane: dp, logger: Logger(label: "test"))
        let d = try Datapath(name: "t@t", eswitch: sw, policy: policy, logger: Logger(label: "test"))
        d.startWithoutPorts()
        _ = d.addDetachedRepresentorPort(name: "pf0vf0", number: 1, eswitchPort: .vf(0))
        _ = d.addDetachedRepresentorPort(name: "pf0vf1", number: 2, eswitchPort: .vf(1))
        return (d, sw, dp)
    }

    static func put(_ d: Datapath, _ key: String, _ actions: String) throws -> DatapathFlow {
        let k = try ODPText.parseKey(key)
        guard case .success(let m) = FlowMatch.fromAttributes(key: k.key, mask: k.mask, vlanLimit: ODPConstants.datapathVLANLimit) else {
            throw ODPError(position: nil, "bad key")
        }
        return try d.putFlow(match: m, ufid: nil, actions: try ODPText.parseActions(actions), options: Datapath.PutOptions())
    }

    @Test func aFlowBetweenRepresentorsIsTranslatedToPortsAndOffloaded() throws {
        let (d, _, dp) = try Self.datapath()
        let f = try Self.put(d, "in_port(1),eth(),eth_type(0x0800),ipv4(dst=198.19.0.2,frag=no)", "set(ipv4(ttl=9)),2")
        #expect(f.offload.isOffloaded)
        #expect(dp.rules.count == 1)
        let r = dp.rules[0]
        #expect(r.key[.inPort] == UInt64(PortIndex.vf(0)))
        #expect(r.actions.last == .forward(.vf(1)))
        #expect(r.actions.count == 2)
        d.deleteFlow(f)
        #expect(dp.rules.isEmpty)
    }

    @Test func aFlushEmptiesTheHardwareInOneWriteAndARefusedOneGoesRuleByRule() throws {
        let (d, sw, dp) = try Self.datapath()
        d.setPartialOffload(false)
        for i in 0..<20 { _ = try Self.put(d, "in_port(1),eth(),eth_type(0x0800),ipv4(dst=198.19.1.\(i),frag=no)", "2") }
        let software = try Self.put(d, "in_port(1),eth(),eth_type(0x0800),ipv4(frag=no)", "userspace(pid=7)")
        #expect(dp.rules.count == 20)
        let before = dp.log.count
        d.flushFlows()
        #expect(Array(dp.log[before...]) == ["remove all"], "one write, no rule by rule")
        #expect(dp.rules.isEmpty && sw.tables.rules.isEmpty && sw.installedRules.isEmpty)
        #expect(sw.tables.maskedPool.occupancy == 0 && sw.tables.counterPool.occupancy == 0 && sw.tables.maskPool.occupancy == 0)
        #expect(d.allFlows.isEmpty && !software.offload.isOffloaded)

        // The data plane refuses the flush: the rules go one by one instead.
        for i in 0..<5 { _ = try Self.put(d, "in_port(1),eth(),eth_type(0x0800),ipv4(dst=198.19.2.\(i),frag=no)", "2") }
        dp.failNextWrites = 1
        d.flushFlows()
        #expect(dp.rules.isEmpty && sw.tables.rules.isEmpty)
        #expect(dp.log.suffix(5).allSatisfy { $0.hasPrefix("remove ") }, "\(dp.log.suffix(6))")
        #expect(sw.tables.maskedPool.occupancy == 0)
    }

    @Test func aSoftwareOnlyActionStaysInSoftwareWithAReasonWhenPartialOffloadIsOff() throws {
        let (d, _, dp) = try Self.datapath()
        d.setPartialOffload(false)
        let f = try Self.put(d, "in_port(1),eth(),eth_type(0x0800),ipv4(frag=no)", "userspace(pid=7)")
        guard case .software(let reason) = f.offload else { Issue.record("offloaded a userspace action"); return }
        #expect(reason.contains("userspace"))
        #expect(dp.rules.isEmpty)
    }

    @Test func skipSWRefusesWhatTheHardwareCannotTakeAndInstallsNothing() throws {
        let (d, _, dp) = try Self.datapath(policy: .skipSW)
        #expect(throws: DatapathError.self) {
            _ = try Self.put(d, "in_port(1),eth(),eth_type(0x0800),ipv4(frag=no)", "userspace(pid=7)")
        }
        dp.failNextWrites = 1
        #expect(throws: DatapathError.self) {
            _ = try Self.put(d, "in_port(1),eth(),eth_type(0x0800),ipv4(frag=no)", "2")
        }
        #expect(d.stats.flows == 0)
        #expect(dp.rules.isEmpty)
    }

    @Test func aFailedHardwareWriteLeavesTheFlowInSoftwareNotOffloaded() throws {
        let (d, sw, dp) = try Self.datapath()
        dp.failNextWrites = 1
        let f = try Self.put(d, "in_port(1),eth(),eth_type(0x0800),ipv4(frag=no)", "2")
        #expect(!f.offload.isOffloaded)
        #expect(dp.rules.isEmpty)
        #expect(sw.tables.maskedPool.occupancy == 0)
        #expect(d.stats.offloadedFlows == 0)
    }

    @Test func skipHWNeverTouchesTheHardware() throws {
        let (d, _, dp) = try Self.datapath(policy: .skipHW)
        let f = try Self.put(d, "in_port(1),eth(),eth_type(0x0800),ipv4(frag=no)", "2")
        #expect(!f.offload.isOffloaded)
        #expect(dp.rules.isEmpty)
    }

    @Test func hardwareCountersReachTheFlowsStatistics() throws {
        let (d, _, dp) = try Self.datapath()
        let f = try Self.put(d, "in_port(1),eth(),eth_type(0x0800),ipv4(frag=no)", "2")
        dp.counters[dp.rules[0].counter] = RuleCounters(packets: 42, bytes: 4200, lastUsedNanoseconds: 1)
        d.pollHardwareCounters()
        let flow = try #require(d.flow(ufid: f.ufid))
        #expect(flow.stats.packets == 42)
        #expect(flow.stats.bytes == 4200)
    }
}
