import ESwitch
import Packet
import Testing

/// The hardware CT table and the ct/recirc capabilities, against the in-memory data plane.
struct ConnectionTableTests {
    static let est: UInt8 = 0x22, rpl: UInt8 = 0x08, snat: UInt8 = 0x40

    /// A TCP connection 198.18.0.1:40000 → 198.18.0.2:80 in `zone`, source-NATed to
    /// 198.19.0.1:50000 when `nat`.
    static func spec(id: UInt64, sport: UInt16 = 40000, zone: UInt16 = 1, nat: Bool = false, proto: UInt8 = IPProto.tcp)
        -> HardwareConnectionSpec {
        let orig = ConnectionTuple(zone: zone, proto: proto, isIPv6: false, src: 0xC612_0001, dst: 0xC612_0002,
                                   srcPort: sport, dstPort: 80)
        let natSrc: UInt128 = nat ? 0xC613_0001 : 0xC612_0001
        let natPort: UInt16 = nat ? 50000 : sport
        let reply = ConnectionTuple(zone: zone, proto: proto, isIPv6: false, src: 0xC612_0002, dst: natSrc,
                                    srcPort: 80, dstPort: natPort)
        return HardwareConnectionSpec(
            id: id,
            original: ConnectionDirection(tuple: orig, state: est | (nat ? snat : 0),
                                          rewrite: nat ? ConnectionRewrite(src: natSrc, srcPort: natPort) : ConnectionRewrite()),
            reply: ConnectionDirection(tuple: reply, state: est | rpl | (nat ? snat : 0),
                                       rewrite: nat ? ConnectionRewrite(dst: 0xC612_0001, dstPort: sport) : ConnectionRewrite()),
            mark: 7, label: 1 << 100)
    }

    /// A device with a pre-ct rule of zone 1 (connections of other zones are not worth the hardware).
    static func device(profile: HardwareProfile = HardwareProfile()) throws -> (ESwitch, InMemoryDataPlane) {
        let (sw, dp) = try DriverTests.device(profile: profile)
        _ = try sw.addRule(DriverTests.spec(inPort: .vf(1), dst: 0xC612_0001, actions: [.conntrack(zone: 1, nat: true), .recirculate(9)])).get()
        return (sw, dp)
    }

    @Test func aConnectionIsProgrammedBothWaysAndCounted() throws {
        let (sw, dp) = try Self.device()
        let c = try sw.addConnection(Self.spec(id: 1, nat: true)).get()
        #expect(sw.connections.count == 1)
        #expect(sw.tables.ctPool.occupancy == 2 && sw.tables.ctPool.programmed == 2)
        #expect(sw.tables.counterPool.occupancy == 3)
        let hit = dp.lookupConnection(Self.spec(id: 1, nat: true).reply.tuple)
        #expect(hit?.connection.replyCounter == c.replyCounter)
        #expect(hit?.direction.rewrite.dst == 0xC612_0001)
        #expect(hit?.direction.state == Self.est | Self.rpl | Self.snat)
        dp.counters[c.replyCounter] = RuleCounters(packets: 5, bytes: 500, lastUsedNanoseconds: 42)
        let a = sw.connections.activity()
        #expect(a == [ConnectionActivity(id: 1, original: RuleCounters(),
                                         reply: RuleCounters(packets: 5, bytes: 500, lastUsedNanoseconds: 42), handedBack: false)])
        #expect(a.first?.lastUsedNanoseconds == 42)
        #expect(sw.removeConnection(id: 1))
        #expect(dp.connections.isEmpty)
        #expect(sw.tables.ctPool.occupancy == 0 && sw.tables.counterPool.occupancy == 1)
        #expect(!sw.removeConnection(id: 1))
    }

    /// As mlx5 flushes a zone's CT table with its last ct rule: the connections go, and
    /// the driver hears of them with what they counted.
    @Test func theLastCTRuleOfAZoneTakesItsConnectionsWithIt() throws {
        let (sw, dp) = try DriverTests.device()
        let first = try sw.addRule(DriverTests.spec(inPort: .vf(1), dst: 0xC612_0001,
                                                    actions: [.conntrack(zone: 1, nat: true), .recirculate(9)])).get()
        let second = try sw.addRule(DriverTests.spec(inPort: .vf(0), dst: 0xC612_0002,
                                                     actions: [.conntrack(zone: 1, nat: false), .recirculate(8)])).get()
        let zone2 = try sw.addRule(DriverTests.spec(inPort: .vf(0), dst: 0xC612_0003,
                                                    actions: [.conntrack(zone: 2, nat: false), .recirculate(7)])).get()
        var evicted: [ConnectionActivity] = []
        sw.connections.onEvicted = { evicted += $0 }
        let c = try sw.addConnection(Self.spec(id: 1)).get()
        _ = try sw.addConnection(Self.spec(id: 2, zone: 2)).get()
        dp.counters[c.originalCounter] = RuleCounters(packets: 9, bytes: 900, lastUsedNanoseconds: 5)
        // One rule of zone 1 is left: nothing goes.
        #expect(sw.deleteRule(first))
        sw.drainHardware()
        #expect(sw.connections.count == 2 && evicted.isEmpty)
        #expect(sw.deleteRule(second))
        sw.drainHardware()
        #expect(evicted.map(\.id) == [1] && evicted.first?.original.packets == 9 && evicted.first?.original.bytes == 900)
        #expect(dp.connections.keys.sorted() == [2] && sw.tables.ctPool.occupancy == 2)
        // Leaving switchdev mode takes the rest.
        _ = zone2
        try sw.setMode(.legacy)
        #expect(evicted.map(\.id) == [1, 2] && sw.connections.count == 0 && sw.tables.ctPool.occupancy == 0)
    }

    @Test func aFullCTTableRefusesAndCounts() throws {
        var profile = HardwareProfile()
        profile.ctEntries = 4
        let (sw, dp) = try Self.device(profile: profile)
        _ = try sw.addConnection(Self.spec(id: 1, sport: 1)).get()
        _ = try sw.addConnection(Self.spec(id: 2, sport: 2)).get()
        let r = sw.addConnection(Self.spec(id: 3, sport: 3))
        #expect(r.failure == .noSpace(table: "ct"))
        #expect(sw.connections.refusals.full == 1)
        #expect(dp.connections.count == 2 && sw.connections.count == 2)
        // Room again once one goes.
        #expect(sw.removeConnection(id: 1))
        #expect((try? sw.addConnection(Self.spec(id: 3, sport: 3)).get()) != nil)
    }

    @Test func whatTheSiliconCannotTrackIsRefusedWithAReason() throws {
        let (sw, dp) = try Self.device()
        #expect(sw.addConnection(Self.spec(id: 1, proto: 1)).failure == .unsupportedMatch(field: "ct of ip proto 1 (the hardware tracks TCP and UDP)"))
        _ = try sw.addConnection(Self.spec(id: 2)).get()
        #expect(sw.addConnection(Self.spec(id: 3)).failure == .unsupportedMatch(field: "ct tuple already in the hardware"))
        #expect(sw.connections.refusals.unsupported == 2)
        dp.failNextWrites = 1
        #expect(sw.addConnection(Self.spec(id: 4, sport: 9)).failure != nil)
        #expect(sw.connections.refusals.writeFailed == 1)
        // A refusal leaves nothing behind.
        #expect(sw.tables.ctPool.occupancy == 2 && sw.tables.counterPool.occupancy == 3 && dp.connections.count == 1)
        // A zone no hardware rule looks up.
        #expect(sw.addConnection(Self.spec(id: 5, sport: 5, zone: 2)).failure == .unsupportedAction("no ct rule of zone 2 in hardware"))
        #expect(sw.connections.refusals.noRule == 1)
    }

    @Test func connectionsAreWorthTheHardwareOnlyWhileARuleLooksThemUp() throws {
        let (sw, _) = try DriverTests.device()
        #expect(sw.addConnection(Self.spec(id: 1)).failure == .unsupportedAction("no ct rule of zone 1 in hardware"))
        let h = try sw.addRule(DriverTests.spec(inPort: .vf(0), dst: 0xC612_0002, actions: [.conntrack(zone: 1, nat: false), .recirculate(3)])).get()
        #expect(sw.tables.conntrackRuleZones == [1: 1])
        #expect((try? sw.addConnection(Self.spec(id: 1)).get()) != nil)
        #expect(sw.deleteRule(h))
        #expect(sw.tables.conntrackRuleZones.isEmpty)
    }

    @Test func aHandBackIsReportedOnceFromTheQueueOrFoundByAScan() throws {
        let (sw, dp) = try Self.device()
        _ = try sw.addConnection(Self.spec(id: 1)).get()
        dp.handedBack.insert(1)
        #expect(sw.connections.activity().first?.handedBack == true)
        #expect(sw.connections.activity().first?.handedBack == false)
        // The queue overflowed: every entry is read.
        dp.loseHandBacks = true
        #expect(sw.connections.activity().first?.handedBack == true)
        #expect(sw.removeConnection(id: 1))
        #expect(sw.connections.activity().isEmpty)
        #expect(dp.handedBack.isEmpty)
    }

    @Test func leavingSwitchdevEmptiesTheCTTable() throws {
        let (sw, dp) = try Self.device()
        _ = try sw.addConnection(Self.spec(id: 1)).get()
        try sw.setMode(.legacy)
        #expect(dp.connections.isEmpty && sw.tables.ctPool.occupancy == 0)
        #expect(sw.addConnection(Self.spec(id: 2)).failure == .legacyMode)
    }

    @Test func theCTResourceIsResizedOnReload() throws {
        let (sw, dp) = try Self.device()
        try sw.tables.ctPool.setPending(200_000)
        try sw.reload()
        #expect(sw.tables.ctPool.size == 200_000)
        #expect(dp.capacity.connections == 200_000)
        #expect(throws: HardwareResource.SizeError.self) { try sw.tables.ctPool.setPending(3) }
    }

    @Test func theProfileSizesTheCTTable() throws {
        let p = try HardwareProfile(text: "ct = 1024\nmasked = 8")
        #expect(p.ctEntries == 1024)
        let (sw, _) = try DriverTests.device(profile: p)
        #expect(sw.tables.ctPool.size == 1024)
        #expect(sw.tables.resources.contains { $0 === sw.tables.ctPool })
        #expect(throws: HardwareProfile.ProfileError.self) { try HardwareProfile(text: "conntrack = 3") }
    }

    // MARK: Chains and the ct/recirc actions

    static func chainSpec(recirc: UInt32, ctState: UInt8, ctMask: UInt8, actions: [HardwareAction]) -> HardwareRuleSpec {
        var s = DriverTests.spec(inPort: .vf(0), dst: 0xC612_0002, actions: actions)
        s.key[.recircID] = UInt64(recirc)
        s.mask[.recircID] = FlowField.recircID.valueMask
        s.key[.ctState] = UInt64(ctState)
        s.mask[.ctState] = UInt64(ctMask)
        return s
    }

    @Test func preCTAndPostCTRulesAreAcceptedIntoTheirTables() throws {
        let (sw, dp) = try DriverTests.device()
        var pre = DriverTests.spec(inPort: .vf(0), dst: 0xC612_0002, actions: [.conntrack(zone: 1, nat: true), .recirculate(5)])
        pre.mask[.ctState] = 0x20   // ct_state(-trk): what an untracked frame has
        let h1 = try sw.addRule(pre).get()
        #expect(h1.table == .masked)
        let h2 = try sw.addRule(Self.chainSpec(recirc: 5, ctState: 0x22, ctMask: 0x23, actions: [.forward(.vf(1))])).get()
        #expect(h2.table == .chain)
        var k = FlowKey()
        k[.inPort] = UInt64(PortIndex.vf(0))
        k[.ethType] = UInt64(EtherType.ipv4)
        k[.ipv4Dst] = 0xC612_0002
        #expect(dp.lookup(k)?.actions == [.conntrack(zone: 1, nat: true), .recirculate(5)])
        k[.recircID] = 5
        k[.ctState] = 0x22
        #expect(dp.lookup(k)?.actions == [.forward(.vf(1))])
        k[.ctState] = 0x21
        #expect(dp.lookup(k) == nil)
    }

    @Test func ctRulesTheHardwareCannotRunAreRefused() throws {
        let (sw, _) = try DriverTests.device()
        let setDst = HardwareAction.setEthernet(src: 0, srcMask: 0, dst: 1, dstMask: ~0)
        let bad: [([HardwareAction], String)] = [
            ([.recirculate(2), .forward(.vf(1))], "actions after recirc"),
            ([setDst, .conntrack(zone: 1, nat: false), .recirculate(2)],
             "actions before ct (the hardware looks the frame up unmodified)"),
            ([setDst, .recirculate(2)], "actions before recirc (the hardware recirculates the frame unmodified)"),
            ([.conntrack(zone: 1, nat: false), .forward(.vf(1)), .recirculate(2)],
             "actions before recirc (the hardware recirculates the frame unmodified)"),
            ([.conntrack(zone: 1, nat: false), .conntrack(zone: 2, nat: false), .recirculate(2)], "more than one ct or recirc in a rule"),
        ]
        for (actions, why) in bad {
            #expect(sw.addRule(DriverTests.spec(inPort: .vf(0), dst: 0xC612_0002, actions: actions)).failure == .unsupportedAction(why))
        }
        // ct followed by the rule's own actions (OVS's ct(commit,nat),output).
        #expect((try? sw.addRule(DriverTests.spec(inPort: .vf(1), dst: 0xC612_0002,
                                                  actions: [.conntrack(zone: 1, nat: true), setDst, .forward(.vf(0))])).get()) != nil)
        // Tracked state at recirc_id 0 cannot be: the frame has met no ct yet.
        var s = DriverTests.spec(inPort: .vf(0), dst: 0xC612_0002, actions: [.forward(.vf(1))])
        s.key[.ctState] = 0x22
        s.mask[.ctState] = 0x22
        #expect(sw.addRule(s).failure == .unsupportedMatch(field: "ct_state of a tracked frame at recirc_id 0"))
        // A chain is entered by its exact id.
        var c = Self.chainSpec(recirc: 4, ctState: 0x22, ctMask: 0x22, actions: [.forward(.vf(1))])
        c.mask[.recircID] = 0xff
        #expect(sw.addRule(c).failure == .unsupportedMatch(field: "recirc_id (must be exact)"))
    }
}

extension Result {
    var failure: Failure? { if case .failure(let f) = self { f } else { nil } }
}
