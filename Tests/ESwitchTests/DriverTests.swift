@testable import ESwitch
import Foundation
import Logging
import Packet
import Testing

/// The driver (accounting, capability checks, what reaches the silicon) against the
/// in-memory data plane: no root, no netdevs.
struct DriverTests {
    static func device(profile: HardwareProfile = HardwareProfile(), vfs: Int = 2) throws -> (ESwitch, InMemoryDataPlane) {
        let dp = InMemoryDataPlane()
        let vfNetdevs = (0..<vfs).map { VFNetdev(name: "t\($0)", switchSide: "ts\($0)", switchIfindex: Int32(100 + $0)) }
        let sw = try ESwitch(name: "t", vfs: vfNetdevs, uplink: UplinkNetdev(name: "up", ifindex: 99), mode: .switchdev,
                             profile: profile, dataPlane: dp, logger: Logger(label: "test"))
        try sw.start()
        return (sw, dp)
    }

    static func spec(inPort: PortIndex, dst: UInt32, actions: [HardwareAction], exactDst: Bool = true) -> HardwareRuleSpec {
        var key = FlowKey(), mask = FlowKey()
        key[.inPort] = UInt64(inPort)
        mask[.inPort] = FlowField.inPort.valueMask
        key[.ethType] = UInt64(EtherType.ipv4)
        mask[.ethType] = FlowField.ethType.valueMask
        key[.ipv4Dst] = UInt64(dst)
        mask[.ipv4Dst] = exactDst ? 0xffff_ffff : 0xffff_ff00
        return HardwareRuleSpec(key: key, mask: mask, actions: actions)
    }

    @Test func aRuleReachesTheDataPlaneAndCountsAgainstItsTable() throws {
        let (sw, dp) = try Self.device()
        let h = try sw.addRule(Self.spec(inPort: .vf(0), dst: 0xC613_0002, actions: [.forward(.vf(1))])).get()
        #expect(dp.rules.count == 1)
        #expect(sw.tables.maskedPool.occupancy == 1)
        #expect(sw.tables.counterPool.occupancy == 1)
        var k = FlowKey()
        k[.inPort] = UInt64(PortIndex.vf(0))
        k[.ethType] = UInt64(EtherType.ipv4)
        k[.ipv4Dst] = 0xC613_0002
        #expect(dp.lookup(k)?.actions == [.forward(.vf(1))])
        #expect(sw.deleteRule(h))
        #expect(dp.rules.isEmpty)
        #expect(sw.tables.maskedPool.occupancy == 0)
        #expect(sw.tables.counterPool.occupancy == 0)
    }

    /// The driver passes the very action array that passed last without checking it
    /// again (an add-flows hands it one array for every rule): any other array is
    /// still checked, right after one that passed and with the same elements too.
    @Test func actionsAreCheckedUnlessTheyAreTheArrayThatPassedLast() throws {
        let (sw, _) = try Self.device()
        let forward: [HardwareAction] = [.forward(.vf(1))]
        _ = try sw.addRule(Self.spec(inPort: .vf(0), dst: 0xC613_0002, actions: forward)).get()
        _ = try sw.addRule(Self.spec(inPort: .vf(0), dst: 0xC613_0003, actions: forward)).get()
        let tooMany = [HardwareAction](repeating: .forward(.vf(1)), count: sw.tables.capabilities.maximumOutputs + 1)
        guard case .failure(.unsupportedAction(let why)) = sw.addRule(Self.spec(inPort: .vf(0), dst: 0xC613_0004, actions: tooMany)) else {
            Issue.record("an action list over the outputs limit was taken after one that passed")
            return
        }
        #expect(why.contains("outputs"))
        // Refused again (a refusal is not remembered as a pass), and the passing one passes.
        guard case .failure = sw.addRule(Self.spec(inPort: .vf(0), dst: 0xC613_0005, actions: tooMany)) else {
            Issue.record("a refused action list passed on its second try")
            return
        }
        _ = try sw.addRule(Self.spec(inPort: .vf(0), dst: 0xC613_0006, actions: forward)).get()
        #expect(sw.installedRules.count == 3)
    }

    @Test func aRefusedWriteLeavesNothingBehind() throws {
        let (sw, dp) = try Self.device()
        dp.failNextWrites = 1
        let r = sw.addRule(Self.spec(inPort: .vf(0), dst: 0xC613_0002, actions: [.forward(.vf(1))]))
        guard case .failure = r else { Issue.record("a failed data-plane write was reported installed"); return }
        #expect(dp.rules.isEmpty)
        #expect(sw.tables.maskedPool.occupancy == 0)
        #expect(sw.tables.counterPool.occupancy == 0)
        #expect(sw.installedRules.isEmpty)
    }

    @Test func aFullTableRefusesWithNoSpace() throws {
        var profile = HardwareProfile()
        profile.maskedEntries = 2
        let (sw, dp) = try Self.device(profile: profile)
        for d in 0..<2 { _ = try sw.addRule(Self.spec(inPort: .vf(0), dst: 0xC613_0000 + UInt32(d), actions: [.drop])).get() }
        let r = sw.addRule(Self.spec(inPort: .vf(0), dst: 0xC613_0009, actions: [.drop]))
        #expect(r == .failure(.noSpace(table: "masked")))
        #expect(dp.rules.count == 2)
    }

    @Test func tooManyMasksIsARefusalWithAReason() throws {
        let (sw, dp) = try Self.device()
        dp.maskLimit = 1
        _ = try sw.addRule(Self.spec(inPort: .vf(0), dst: 0xC613_0001, actions: [.drop])).get()
        let r = sw.addRule(Self.spec(inPort: .vf(0), dst: 0xC613_0100, actions: [.drop], exactDst: false))
        #expect(r == .failure(.noSpace(table: "masks")))
        #expect(sw.tables.maskedPool.occupancy == 1)
    }

    @Test func masksAreAResourceAndRunOutWithAReason() throws {
        let (sw, _) = try Self.device()
        // 64 distinct masks: ipv4_dst prefixes /1 to /32, each with and without an exact ipv4_src.
        var handles: [HardwareRuleHandle] = []
        for bits in 1...32 {
            var s = Self.spec(inPort: .vf(0), dst: 0xC613_0000, actions: [.drop])
            s.mask[.ipv4Dst] = UInt64(UInt32.max << (32 - bits))
            s.key = s.key.masked(by: s.mask)
            handles.append(try sw.addRule(s).get())
            var t = s
            t.mask[.ipv4Src] = 0xffff_ffff
            handles.append(try sw.addRule(t).get())
        }
        #expect(sw.tables.maskPool.occupancy == 64)
        var extra = Self.spec(inPort: .vf(0), dst: 0xC613_0000, actions: [.drop])
        extra.mask[.ipTTL] = 0xff
        #expect(sw.addRule(extra) == .failure(.noSpace(table: "masks")))
        // A rule with a mask already in use still fits.
        #expect((try? sw.addRule(Self.spec(inPort: .vf(0), dst: 0xC613_0001, actions: [.drop])).get()) != nil)
        sw.deleteRule(handles[0])
        #expect(sw.tables.maskPool.occupancy == 63)
        #expect((try? sw.addRule(extra).get()) != nil)
    }

    @Test func aReloadGrowsTheDataPlaneAndCountersBeyondTheOldCapacity() throws {
        var profile = HardwareProfile()
        profile.counters = 1024
        profile.maskedEntries = 4000
        let (sw, dp) = try Self.device(profile: profile)
        try sw.tables.counterPool.setPending(3000)
        try sw.reload()
        #expect(dp.capacity.counters >= 3000)
        #expect(sw.tables.counterPool.size == 3000)
        // More than 1024 rules now get counters.
        for d in 0..<1500 { _ = try sw.addRule(Self.spec(inPort: .vf(0), dst: UInt32(0xC613_0000 + d), actions: [.drop])).get() }
        #expect(dp.rules.count == 1500)
    }

    @Test func replacingActionsKeepsTheSlotAndTheCounter() throws {
        let (sw, dp) = try Self.device()
        let h = try sw.addRule(Self.spec(inPort: .vf(0), dst: 0xC613_0002, actions: [.forward(.vf(1))])).get()
        let counter = dp.rules[0].counter
        dp.counters[counter] = RuleCounters(packets: 5, bytes: 500, lastUsedNanoseconds: 1)
        let h2 = try sw.replaceRule(h, with: Self.spec(inPort: .vf(0), dst: 0xC613_0002, actions: [.drop])).get()
        #expect(dp.rules.count == 1)
        #expect(dp.rules[0].actions == [.drop])
        #expect(sw.ruleCounters(h2)?.packets == 5)
        // One write replaced the rule: no remove, so packets never miss in between.
        #expect(!dp.log.contains { $0.hasPrefix("remove") })
    }

    /// A new rule writes nothing for its counter; a slot used before reads zero when a
    /// new rule gets it, because it was zeroed when its grace period ended.
    @Test func aReusedCounterStartsAtZero() throws {
        let (sw, dp) = try Self.device()
        let h = try sw.addRule(Self.spec(inPort: .vf(0), dst: 0xC613_0002, actions: [.drop])).get()
        let counter = dp.rules[0].counter
        dp.counters[counter] = RuleCounters(packets: 7, bytes: 700, lastUsedNanoseconds: 1)
        #expect(sw.deleteRule(h))
        // Packets still running with the old rule may count into the slot during the grace.
        dp.counters[counter] = RuleCounters(packets: 9, bytes: 900, lastUsedNanoseconds: 2)
        Thread.sleep(forTimeInterval: Double(SlotAllocator.graceNanoseconds) / 1e9 + 0.02)
        var reused: HardwareRuleHandle?
        for d in 3..<40 where reused == nil {
            let h2 = try sw.addRule(Self.spec(inPort: .vf(0), dst: UInt32(0xC613_0000 + d), actions: [.drop])).get()
            if dp.rules.last?.counter == counter { reused = h2 }
        }
        let h2 = try #require(reused, "the freed counter slot was never handed out again")
        #expect(sw.ruleCounters(h2)?.packets == 0)
        #expect(dp.counters[counter] == nil)
    }

    @Test func aNewMatchIsPlacedBeforeTheOldOneGoes() throws {
        let (sw, dp) = try Self.device()
        let h = try sw.addRule(Self.spec(inPort: .vf(0), dst: 0xC613_0002, actions: [.drop])).get()
        _ = try sw.replaceRule(h, with: Self.spec(inPort: .vf(0), dst: 0xC613_0003, actions: [.drop])).get()
        let program = dp.log.lastIndex { $0.hasPrefix("program") }!
        let remove = dp.log.lastIndex { $0.hasPrefix("remove") }!
        #expect(program < remove)
        #expect(dp.rules.count == 1)
    }

    @Test func legacyModeRemovesRulesAndProgramsTheMACTable() throws {
        let (sw, dp) = try Self.device()
        _ = try sw.addRule(Self.spec(inPort: .vf(0), dst: 0xC613_0002, actions: [.drop])).get()
        try sw.setMode(.legacy)
        #expect(dp.mode == .legacy)
        #expect(dp.rules.isEmpty)
        #expect(sw.tables.counterPool.occupancy == 0)
        try sw.setVFMAC(.vf(1), mac: 0x02_00_00_00_00_01)
        #expect(dp.macs[0x02_00_00_00_00_01] == .vf(1))
        #expect(sw.tables.exactMAC.occupancy == 1)
        try sw.setVFVLAN(.vf(1), vlan: 7)
        #expect(dp.macs[UInt64(7) << 48 | 0x02_00_00_00_00_01] == .vf(1))
        #expect(dp.ports[.vf(1)]?.vlan == 7)
    }

    @Test func aLegacyMACChangeThatCannotBeMadeKeepsTheOldEntry() throws {
        let (sw, dp) = try Self.device()
        try sw.setMode(.legacy)
        try sw.setVFMAC(.vf(0), mac: 0x02_00_00_00_00_01)
        try sw.setVFMAC(.vf(1), mac: 0x02_00_00_00_00_02)
        // VF1 asks for VF0's address: refused (EEXIST, naming VF0's port), VF1 keeps its own.
        #expect(throws: LegacyMACRefusal.inUse(mac: 0x02_00_00_00_00_01, vlan: 0, owner: .vf(0))) {
            try sw.setVFMAC(.vf(1), mac: 0x02_00_00_00_00_01)
        }
        #expect(sw.port(.vf(1))?.config.mac == 0x02_00_00_00_00_02)
        #expect(dp.macs[0x02_00_00_00_00_02] == .vf(1))
        #expect(dp.macs[0x02_00_00_00_00_01] == .vf(0))
        #expect(sw.tables.exactMAC.occupancy == 2)
        // A change that can be made moves the entry, in one unit of memory.
        try sw.setVFMAC(.vf(1), mac: 0x02_00_00_00_00_03)
        #expect(dp.macs[0x02_00_00_00_00_03] == .vf(1))
        #expect(dp.macs[0x02_00_00_00_00_02] == nil)
        #expect(sw.tables.exactMAC.occupancy == 2)
    }

    @Test func portsAreAttachedAndPublished() throws {
        let (sw, dp) = try Self.device()
        #expect(dp.attachedPorts == [99, 100, 101])
        #expect(dp.ports[.uplink]?.isUplink == true)
        #expect(dp.ports[.vf(1)]?.ifindex == 101)
        try sw.setVFLinkState(.vf(0), up: false)
        #expect(dp.ports[.vf(0)]?.linkUp == false)
        sw.stop()
        #expect(dp.attachedPorts.isEmpty)
    }

    @Test func encapEntriesAreWrittenSharedAndReleased() throws {
        let (sw, dp) = try Self.device()
        var tunnel = TunnelMetadata()
        tunnel.ipv4Dst = 0xC612_0002
        tunnel.id = 42
        let key = EncapKey(tunnel: tunnel, udpPort: 4789, egress: .uplink)
        let header = VXLAN.template(ethSrc: 1, ethDst: 2, tunnel: tunnel, srcIPv4: 0xC612_0001, udpDst: 4789)
        let e = try sw.encapEntry(for: key, header: header).get()
        #expect(dp.encaps[e.id] == header)
        let h1 = try sw.addRule(Self.spec(inPort: .vf(0), dst: 1, actions: [.encap(e), .forward(.uplink)])).get()
        let h2 = try sw.addRule(Self.spec(inPort: .vf(1), dst: 1, actions: [.encap(e), .forward(.uplink)])).get()
        #expect(e.users == 2)
        var moved = header
        moved.bytes[0] = 0x0a
        sw.rewriteEncap(e, header: moved)
        #expect(dp.encaps[e.id] == moved)
        sw.deleteRule(h1)
        #expect(dp.encaps[e.id] != nil)
        sw.deleteRule(h2)
        #expect(dp.encaps[e.id] == nil)
        #expect(sw.tables.encapPool.occupancy == 0)
    }

    @Test func nothingMayFollowATunnelOutputInHardware() throws {
        var tunnel = TunnelMetadata()
        tunnel.ipv4Dst = 0xC612_0002
        let header = VXLAN.template(ethSrc: 1, ethDst: 2, tunnel: tunnel, srcIPv4: 0xC612_0001, udpDst: 4789)
        let e = EncapEntry(id: 1, key: EncapKey(tunnel: tunnel, udpPort: 4789, egress: .uplink), header: header)
        let caps = HardwareCapabilities()
        #expect(caps.check(actions: [.forward(.vf(1)), .encap(e), .forward(.uplink)]) == nil)
        #expect(caps.check(actions: [.encap(e), .forward(.uplink), .forward(.vf(1))]) != nil)
        #expect(caps.check(actions: [.encap(e), .forward(.uplink), .popVLAN]) != nil)
        #expect(caps.check(actions: [.encap(e), .popVLAN, .forward(.uplink)]) != nil)
    }

    /// Every field the hardware cannot match is refused by its name, each alone; the
    /// conntrack fields only when a frame at recirc_id 0 would have to match them set.
    @Test func eachUnmatchableFieldIsRefusedByName() {
        let caps = HardwareCapabilities()
        var key = FlowKey(), mask = FlowKey()
        key[.inPort] = 1
        mask[.inPort] = FlowField.inPort.valueMask
        key[.ethType] = 0x0800
        mask[.ethType] = 0xffff
        #expect(caps.check(key: key, mask: mask) == nil)
        for (f, name) in HardwareCapabilities.unmatchable {
            var m = mask
            m[f] = 1
            #expect(caps.check(key: key, mask: m) == .unsupportedMatch(field: name), "\(f)")
        }
        for (f, name) in HardwareCapabilities.unmatchableWide {
            var m = mask
            m[f] = 1 << 100
            #expect(caps.check(key: key, mask: m) == .unsupportedMatch(field: name), "\(f)")
        }
        for (f, name) in HardwareCapabilities.conntrackFields {
            var k = key, m = mask
            m[f] = f.valueMask
            #expect(caps.check(key: k, mask: m) == nil, "\(name) asked to be zero")
            k[f] = 1
            #expect(caps.check(key: k, mask: m) == .unsupportedMatch(field: "\(name) of a tracked frame at recirc_id 0"))
            k[.recircID] = 5
            m[.recircID] = FlowField.recircID.valueMask
            #expect(caps.check(key: k, mask: m) == nil, "\(name) after a recirculation")
        }
        var k = key, m = mask
        k[.ctLabel] = 1 << 90
        m[.ctLabel] = ~0
        #expect(caps.check(key: k, mask: m) == .unsupportedMatch(field: "ct_label of a tracked frame at recirc_id 0"))
    }

    /// The pipeline decaps VXLAN over IPv4 only: a decap rule for IPv6 outer headers
    /// is refused with a reason (it was accepted and its flow shown in hardware,
    /// while every such frame went to software).
    @Test func aDecapRuleForIPv6OuterHeadersIsRefused() throws {
        let (sw, dp) = try Self.device()
        func decap(ipv6: Bool) -> HardwareRuleSpec {
            var key = FlowKey(), mask = FlowKey()
            key[.inPort] = UInt64(PortIndex.uplink)
            mask[.inPort] = FlowField.inPort.valueMask
            key[.tunnelID] = 42
            mask[.tunnelID] = ~0
            if ipv6 {
                key[.tunnelIPv6Src] = 0x2001_0db8_0018_0000_0000_0000_0000_0002
                mask[.tunnelIPv6Src] = ~0
                key[.tunnelIPv6Dst] = 0x2001_0db8_0018_0000_0000_0000_0000_0001
                mask[.tunnelIPv6Dst] = ~0
            } else {
                key[.tunnelIPv4Src] = 0xC612_0002
                mask[.tunnelIPv4Src] = 0xffff_ffff
                key[.tunnelIPv4Dst] = 0xC612_0001
                mask[.tunnelIPv4Dst] = 0xffff_ffff
            }
            key[.ethType] = UInt64(EtherType.ipv4)
            mask[.ethType] = FlowField.ethType.valueMask
            return HardwareRuleSpec(key: key, mask: mask, actions: [.decap, .forward(.vf(0))])
        }
        let r = sw.addRule(decap(ipv6: true))
        guard case .failure(.unsupportedMatch(let field)) = r else {
            Issue.record("an IPv6 decap rule was not refused: \(r)")
            return
        }
        #expect(field.contains("IPv6 outer headers"))
        #expect(dp.rules.isEmpty)
        #expect(throws: Never.self) { try sw.addRule(decap(ipv6: false)).get() }
        #expect(dp.rules.count == 1)
    }

    @Test func vxlanPortsAreReferenceCountedAndLimitedToFour() throws {
        let (sw, dp) = try Self.device()
        #expect(sw.registerVXLANPort(4789))
        #expect(sw.registerVXLANPort(4789))
        #expect(dp.vxlanPorts == [4789])
        for p: UInt16 in [1, 2, 3] { #expect(sw.registerVXLANPort(p)) }
        #expect(!sw.registerVXLANPort(5))
        sw.unregisterVXLANPort(4789)
        #expect(dp.vxlanPorts.contains(4789))
        sw.unregisterVXLANPort(4789)
        #expect(!dp.vxlanPorts.contains(4789))
    }
}
