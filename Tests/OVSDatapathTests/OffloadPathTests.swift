import ESwitch
import Logging
import NetLinux
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

    static func modify(_ d: Datapath, _ key: String, _ actions: String, clear: Bool = false) throws {
        let k = try ODPText.parseKey(key)
        guard case .success(let m) = FlowMatch.fromAttributes(key: k.key, mask: k.mask, vlanLimit: ODPConstants.datapathVLANLimit) else {
            throw ODPError(position: nil, "bad key")
        }
        _ = try d.putFlow(match: m, ufid: nil, actions: try ODPText.parseActions(actions),
                          options: Datapath.PutOptions(create: false, modify: true, clearStats: clear))
    }

    /// A modification replaces the rule in place and the new rule counts on in the same
    /// counter: what it counted before is in the flow's statistics once.
    @Test func modifyingAnOffloadedFlowCountsItsHardwarePacketsOnce() throws {
        let (d, _, dp) = try Self.datapath()
        let key = "in_port(1),eth(),eth_type(0x0800),ipv4(frag=no)"
        let f = try Self.put(d, key, "2")
        let slot = dp.rules[0].counter
        dp.counters[slot] = RuleCounters(packets: 3, bytes: 300, lastUsedNanoseconds: 1)
        d.pollHardwareCounters()
        for actions in ["set(ipv4(ttl=9)),2", "2", "set(ipv4(ttl=8)),2"] {
            try Self.modify(d, key, actions)
            #expect(dp.rules.count == 1 && dp.rules[0].counter == slot, "replaced in place")
            d.pollHardwareCounters()
            #expect(d.flow(ufid: f.ufid)?.stats.packets == 3, "after mod-flow to \(actions)")
        }
        dp.counters[slot] = RuleCounters(packets: 5, bytes: 500, lastUsedNanoseconds: 2)
        d.pollHardwareCounters()
        #expect(d.flow(ufid: f.ufid)?.stats.packets == 5)
        try Self.modify(d, key, "2", clear: true)
        d.pollHardwareCounters()
        #expect(d.flow(ufid: f.ufid)?.stats.packets == 0, "a clear baselines the shared counter")
        dp.counters[slot] = RuleCounters(packets: 7, bytes: 700, lastUsedNanoseconds: 3)
        d.pollHardwareCounters()
        #expect(d.flow(ufid: f.ufid)?.stats.packets == 2)
    }

    /// Flows name ports by number; their rules name the eSwitch ports the numbers had.
    /// A deleted port takes the flows naming it out of hardware; a port added under the
    /// number translates them for itself.
    @Test func aPortThatGoesTakesItsFlowsOutOfHardwareAndOneThatComesTranslatesThemAgain() throws {
        let (d, _, dp) = try Self.datapath()
        let fromVF0 = try Self.put(d, "in_port(1),eth(),eth_type(0x0800),ipv4(frag=no)", "2")
        let fromVF1 = try Self.put(d, "in_port(2),eth(),eth_type(0x0800),ipv4(frag=no)", "1")
        let arp = try Self.put(d, "in_port(1),eth(),eth_type(0x0806),arp()", "clone(2),1")
        #expect(arp.names(port: 2) && arp.names(port: 1) && !arp.names(port: 7), "outputs inside clone() count")
        try d.deletePort(2)
        for f in [fromVF0, fromVF1] {
            #expect(!f.offload.isOffloaded, "no rule forwards for a port that is gone")
            #expect(f.softwareReason?.contains("2") == true, "the reason names the port: \(f.softwareReason ?? "")")
        }
        #expect(!dp.rules.contains { $0.key[.inPort] == UInt64(PortIndex.vf(1)) || $0.actions.contains(.forward(.vf(1))) })
        // Number 2 now stands for the uplink's representor: both flows go back to hardware, for it.
        _ = d.addDetachedRepresentorPort(name: "p0", number: 2, eswitchPort: .uplink)
        #expect(fromVF0.offload.isOffloaded && fromVF1.offload.isOffloaded)
        #expect(dp.rules.contains { $0.key[.inPort] == UInt64(PortIndex.vf(0)) && $0.actions == [.forward(.uplink)] })
        #expect(dp.rules.contains { $0.key[.inPort] == UInt64(PortIndex.uplink) && $0.actions == [.forward(.vf(0))] })
        // A port nobody names changes nothing.
        let before = dp.rules.count
        _ = d.addDetachedRepresentorPort(name: "pf0vf1", number: 7, eswitchPort: .vf(1))
        #expect(dp.rules.count == before)
    }

    /// A datapath flow matches recirc_id 0 exactly (every flow of the first pass does):
    /// with the 5-tuple exact too it is the exact-match profile, and goes to that table.
    @Test func aFiveTupleDatapathFlowGoesToTheExactMatchTable() throws {
        let (d, sw, dp) = try Self.datapath()
        let f = try Self.put(d, "in_port(1),eth(src=02:00:00:00:00:01,dst=02:00:00:00:00:02),eth_type(0x0800),"
                             + "ipv4(src=198.19.0.1,dst=198.19.0.2,proto=17,frag=no),udp(src=1000,dst=53)", "2")
        #expect(f.match.mask[.recircID] == FlowField.recircID.valueMask, "the datapath matches recirc_id exactly")
        #expect(f.offload.isOffloaded)
        #expect(dp.rules.count == 1 && dp.rules[0].table == .exact)
        #expect(sw.tables.exactFlows.occupancy == 1 && sw.tables.maskedPool.occupancy == 0)
        // One wildcarded field and it is a masked rule.
        let g = try Self.put(d, "in_port(1),eth(src=02:00:00:00:00:01,dst=02:00:00:00:00:02),eth_type(0x0800),"
                             + "ipv4(src=198.19.0.1,dst=198.19.0.2,proto=17,frag=no),udp(dst=53)", "2")
        #expect(g.offload.isOffloaded && dp.rules.last?.table == .masked)
    }

    /// Decap needs a tunnel tracker's answer; this one says every remote is behind the uplink.
    final class UplinkTunnels: TunnelOffloadResolver {
        func encapEntry(for tunnel: TunnelMetadata, vport: Vport) -> Result<EncapEntry, OffloadFailure> {
            .failure(.tunnel("no encap in this test"))
        }
        func decapIngress(for remote: TunnelMetadata, vport: Vport) -> Result<PortIndex, OffloadFailure> { .success(.uplink) }
    }

    /// Every remote behind the uplink, with an encap entry from the eSwitch's table.
    final class EncapTunnels: TunnelOffloadResolver {
        let sw: ESwitch
        init(_ sw: ESwitch) { self.sw = sw }
        func encapEntry(for tunnel: TunnelMetadata, vport: Vport) -> Result<EncapEntry, OffloadFailure> {
            sw.encapEntry(for: EncapKey(tunnel: tunnel, udpPort: vport.udpPort, egress: .uplink),
                          header: VXLAN.EncapTemplate(bytes: [UInt8](repeating: 0, count: 50), isIPv6: false, checksum: false))
        }
        func decapIngress(for remote: TunnelMetadata, vport: Vport) -> Result<PortIndex, OffloadFailure> { .success(.uplink) }
    }

    /// A flow that decaps and encaps again registers its in_port's UDP port as a decap
    /// flow does, and gives it back when it goes (its tunnel dependency is its encap).
    @Test func aDecapThenEncapFlowGivesItsUDPPortBack() throws {
        let (d, sw, _) = try Self.datapath()
        let tunnels = EncapTunnels(sw)
        d.tunnelResolver = tunnels
        _ = try d.addPort(name: "vx-test", type: .vxlan, number: 3, udpPort: 54790)
        let f = try Self.put(d, "tunnel(tun_id=0x2a,src=198.18.0.2,dst=198.18.0.1,ttl=64,flags(+key)),in_port(3),eth(),"
                             + "eth_type(0x0800),ipv4(frag=no)",
                             "set(tunnel(tun_id=0x2b,src=198.18.0.1,dst=198.18.0.9,ttl=64,flags(key))),3")
        #expect(f.offload.isOffloaded, "\(f.softwareReason ?? "")")
        #expect(f.tunnelDependency?.kind == .encap)
        #expect(sw.registeredVXLANPorts == [54790])
        d.deleteFlow(f)
        #expect(sw.registeredVXLANPorts.isEmpty, "the UDP port went with the flow")
    }

    /// A decap rule registers its vxlan vport's UDP port with the hardware parser; a vport
    /// deleted takes its flows out of hardware while it is still there, so the UDP port is
    /// given back (it was kept for good: four such and no decap flow could be offloaded).
    @Test func deletingAVXLANPortGivesItsUDPPortBack() throws {
        let (d, sw, _) = try Self.datapath()
        let tunnels = UplinkTunnels()
        d.tunnelResolver = tunnels
        _ = try d.addPort(name: "vx-test", type: .vxlan, number: 3, udpPort: 54790)
        let f = try Self.put(d, "tunnel(tun_id=0x2a,src=198.18.0.2,dst=198.18.0.1,ttl=64,flags(+key)),in_port(3),eth(),"
                             + "eth_type(0x0800),ipv4(frag=no)", "1")
        #expect(f.offload.isOffloaded, "\(f.softwareReason ?? "")")
        #expect(sw.registeredVXLANPorts == [54790])
        try d.deletePort(3)
        #expect(!f.offload.isOffloaded)
        #expect(sw.registeredVXLANPorts.isEmpty, "the UDP port went with the port's flows")
        _ = try d.addPort(name: "vx-test", type: .vxlan, number: 3, udpPort: 54790)
        #expect(f.offload.isOffloaded && sw.registeredVXLANPorts == [54790], "back with the port, registered once")
        d.deleteFlow(f)
        #expect(sw.registeredVXLANPorts.isEmpty)
    }

    /// With the rule prefetch on from the first rule (it waits for a million otherwise),
    /// the same puts leave the same rules and states: the hint changes nothing.
    @Test func theRulePrefetchChangesNothing() throws {
        var outcomes: [[String]] = []
        for prefetching in [false, true] {
            let (d, sw, dp) = try Self.datapath()
            if prefetching { sw.prefetchFromRules = 0 }
            #expect(sw.prefetchesRules == prefetching)
            var states: [String] = []
            for i in 0..<40 {
                let f = try Self.put(d, "in_port(\(1 + i % 2)),eth(),eth_type(0x0800),ipv4(dst=198.19.0.\(i),frag=no)",
                                     i % 3 == 0 ? "2" : "set(ipv4(ttl=9)),1")
                states.append(d.offloadStatus(of: f).word)
            }
            outcomes.append(states + dp.rules.map { "\($0.key[.inPort]) \($0.key[.ipv4Dst]) \($0.actions)" })
        }
        #expect(outcomes[0] == outcomes[1])
        #expect(outcomes[0].filter { $0 == "yes" }.count == 40)
    }

    /// The counter poll waits while a client streams requests, and not past
    /// `pollDeferralLimit`.
    @Test func theCounterPollWaitsForAStreamButNotForever() throws {
        let (d, _, dp) = try Self.datapath()
        let f = try Self.put(d, "in_port(1),eth(),eth_type(0x0800),ipv4(dst=198.19.0.2,frag=no)", "2")
        let counter = try #require(dp.rules.first?.counter)
        let second: UInt64 = 1_000_000_000
        let t0 = Sys.monotonicNanoseconds()
        d.tick(now: t0)
        dp.counters[counter] = RuleCounters(packets: 5, bytes: 500, lastUsedNanoseconds: t0)
        d.tick(now: t0 + 2 * second, streaming: true)
        #expect(f.stats.packets == 0, "no poll during the stream")
        d.tick(now: t0 + 2 * second)
        #expect(f.stats.packets == 5, "polled once the stream ended")
        dp.counters[counter] = RuleCounters(packets: 9, bytes: 900, lastUsedNanoseconds: t0)
        d.tick(now: t0 + 4 * second + Datapath.pollDeferralLimit / 2, streaming: true)
        #expect(f.stats.packets == 5)
        d.tick(now: t0 + 4 * second + Datapath.pollDeferralLimit, streaming: true)
        #expect(f.stats.packets == 9, "polled during a stream that went on too long")
    }
}
