import ESwitch
import Logging
import ODP
@testable import OVSDatapath
import Packet
import Testing

/// What the datapath shows of the offload models: a flow whose rule waits for the
/// firmware is pending (never "offloaded"), an `async` refusal is visible per flow,
/// and a failed batch leaves nothing reserved.
struct OffloadModelPathTests {
    static func datapath(_ model: OffloadModel, policy: OffloadPolicy, masked: Int = 4096)
        throws -> (Datapath, ESwitch, InMemoryDataPlane, ManualHardwareClock) {
        var profile = HardwareProfile()
        profile.maskedEntries = masked
        var params = DeviceParams()
        params.offloadModel = model
        params.hardwareLatencyMicroseconds = 55
        params.queryLatencyMicroseconds = 35
        let dp = InMemoryDataPlane()
        let clock = ManualHardwareClock()
        let vfs = (0..<2).map { VFNetdev(name: "t\($0)", switchSide: "ts\($0)", switchIfindex: Int32(100 + $0)) }
        let sw = try ESwitch(name: "t", vfs: vfs, uplink: UplinkNetdev(name: "up", ifindex: 99), mode: .switchdev,
                             profile: profile, params: params, dataPlane: dp, clock: clock, logger: Logger(label: "test"))
        let d = try Datapath(name: "t@t", eswitch: sw, policy: policy, logger: Logger(label: "test"))
        d.startWithoutPorts()
        _ = d.addDetachedRepresentorPort(name: "pf0vf0", number: 1, eswitchPort: .vf(0))
        _ = d.addDetachedRepresentorPort(name: "pf0vf1", number: 2, eswitchPort: .vf(1))
        return (d, sw, dp, clock)
    }

    static func change(_ d: Datapath, _ n: Int) throws(DatapathError) -> FlowChange {
        let k = try! ODPText.parseKey("in_port(1),eth(),eth_type(0x0800),ipv4(dst=198.19.1.\(n),frag=no)")
        guard case .success(let m) = FlowMatch.fromAttributes(key: k.key, mask: k.mask, vlanLimit: ODPConstants.datapathVLANLimit) else {
            fatalError("bad key")
        }
        return try d.changeFlow(match: m, ufid: nil, actions: try! ODPText.parseActions("2"))
    }

    @Test func aFlowWaitingForTheFirmwareIsPendingThenOffloaded() throws {
        let (d, sw, _, _) = try Self.datapath(.credit, policy: .none)
        let f = try Self.change(d, 1).flow
        #expect(d.offloadStatus(of: f) == .pending)
        #expect(d.stats.pendingFlows == 1 && d.stats.offloadedFlows == 0)
        sw.drainHardware()
        #expect(d.offloadStatus(of: f) == .offloaded)
        #expect(d.stats.pendingFlows == 0 && d.stats.offloadedFlows == 1)
    }

    /// A change of actions waiting for the firmware leaves the flow in hardware: the
    /// previous rule stays in the silicon until the new one is written over it.
    @Test func aReplacementWaitingForTheFirmwareLeavesTheFlowInHardware() throws {
        for model in [OffloadModel.async, .credit] {
            let (d, sw, dp, _) = try Self.datapath(model, policy: .none)
            let f = try Self.change(d, 1).flow
            sw.drainHardware()
            #expect(dp.rules.map(\.actions) == [[.forward(.vf(1))]])
            let k = try! ODPText.parseKey("in_port(1),eth(),eth_type(0x0800),ipv4(dst=198.19.1.1,frag=no)")
            guard case .success(let m) = FlowMatch.fromAttributes(key: k.key, mask: k.mask,
                                                                  vlanLimit: ODPConstants.datapathVLANLimit) else { fatalError("bad key") }
            let changed = try d.changeFlow(match: m, ufid: f.ufid, actions: try! ODPText.parseActions("drop"),
                                           options: Datapath.PutOptions(create: false, modify: true)).flow
            #expect(dp.rules.map(\.actions) == [[.forward(.vf(1))]], "\(model): the previous rule is still written")
            #expect(d.offloadStatus(of: changed) == .offloaded, "\(model)")
            #expect(d.stats.offloadedFlows == 1 && d.stats.pendingFlows == 0, "\(model)")
            sw.drainHardware()
            #expect(dp.rules.map(\.actions) == [[.drop]], "\(model)")
            #expect(d.offloadStatus(of: changed) == .offloaded, "\(model)")
        }
    }

    @Test func underSkipSWAFlowIsHardwareOnlyUnderNoneSoftwareRunsIt() throws {
        let (d, _, _, _) = try Self.datapath(.credit, policy: .skipSW)
        #expect(try Self.change(d, 1).flow.hardwareOnly)
        let (d2, _, _, _) = try Self.datapath(.credit, policy: .none)
        #expect(!(try Self.change(d2, 1).flow.hardwareOnly))
    }

    @Test func anAsyncRefusalIsVisiblePerFlowAndCounted() throws {
        let (d, sw, _, _) = try Self.datapath(.async, policy: .skipSW, masked: 2)
        let flows = try (0..<3).map { try Self.change(d, $0).flow }
        sw.drainHardware()
        let failed = flows.filter { if case .failed = d.offloadStatus(of: $0) { true } else { false } }
        #expect(failed.count == 1)
        #expect(d.stats.failedFlows == 1 && d.stats.offloadedFlows == 2)
        #expect(d.stats.flows == 3, "the add succeeded: the flow stays installed")
    }

    @Test func aBatchThatFailsUnderCreditRollsBackWhatItReserved() throws {
        let (d, sw, dp, _) = try Self.datapath(.credit, policy: .skipSW, masked: 4)
        var changes: [FlowChange] = []
        var failure: DatapathError?
        for n in 0..<6 {
            do { changes.append(try Self.change(d, n)) } catch {
                failure = error
                break
            }
        }
        #expect(failure?.errno == 28)
        #expect(changes.count == 4)
        for c in changes.reversed() { d.undo(c) }
        sw.drainHardware()
        #expect(d.stats.flows == 0)
        #expect(dp.rules.isEmpty)
        #expect(sw.tables.maskedPool.programmed == 0)
        #expect(sw.tables.maskedPool.occupancy == sw.stockedUnits(sw.tables.maskedPool))
        #expect(sw.tables.rules.isEmpty)
    }

    /// A flow whose full rule gives way to a partial one (or to software) under a model
    /// that removes through the firmware's queue: the old rule forwards and counts until
    /// the firmware takes it out, and those packets are the flow's. They used to be
    /// lost: the rule was read once, when its removal was queued.
    @Test(arguments: [OffloadModel.async, .credit, .prefetch, .predictive])
    func packetsTheOldRuleCountsWhileItsRemovalWaitsAreTheFlows(model: OffloadModel) throws {
        let (d, sw, dp, _) = try Self.datapath(model, policy: .none)
        let k = try ODPText.parseKey("in_port(1),eth(),eth_type(0x0800),ipv4(frag=no)")
        guard case .success(let m) = FlowMatch.fromAttributes(key: k.key, mask: k.mask, vlanLimit: ODPConstants.datapathVLANLimit) else {
            fatalError("bad key")
        }
        let f = try d.changeFlow(match: m, ufid: nil, actions: try ODPText.parseActions("2")).flow
        sw.drainHardware()
        guard case .hardware(let h) = f.offload, let counter = sw.rule(h)?.counter else {
            Issue.record("not in hardware")
            return
        }
        dp.counters[counter] = RuleCounters(packets: 5, bytes: 500, lastUsedNanoseconds: 1)
        d.pollHardwareCounters()
        #expect(f.stats.packets == 5)

        let modify = Datapath.PutOptions(create: false, modify: true)
        let fresh = try d.changeFlow(match: m, ufid: nil, actions: try ODPText.parseActions("trunc(100),2"), options: modify).flow
        #expect(fresh.stats.packets == 5)
        // The old rule is still in the silicon (its removal is queued) and counts 4 more.
        dp.counters[counter] = RuleCounters(packets: 9, bytes: 900, lastUsedNanoseconds: 2)
        d.pollHardwareCounters()
        #expect(fresh.stats.packets == 9, "counted while the removal waits")
        dp.counters[counter] = RuleCounters(packets: 11, bytes: 1100, lastUsedNanoseconds: 3)
        sw.drainHardware()
        // The slot is free now: whatever a next rule counts there is not this flow's.
        dp.counters[counter] = RuleCounters(packets: 100, bytes: 10_000, lastUsedNanoseconds: 4)
        d.pollHardwareCounters()
        d.pollHardwareCounters()
        #expect(fresh.stats.packets == 11, "the last count, read as the firmware took the rule out, once")
        #expect(fresh.stats.bytes == 1100)
    }
}
