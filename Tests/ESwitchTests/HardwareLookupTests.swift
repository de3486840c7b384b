import ESwitch
import Glibc
import Packet
import Testing

/// The read-only lookup a trace uses: the rule the silicon would hit (exact table
/// first), misses, overlaps, and no counter or ranking touched.
struct HardwareLookupTests {
    static func packet(inPort: PortIndex, dst: UInt32) -> FlowKey {
        var k = FlowKey()
        k[.inPort] = UInt64(inPort)
        k[.ethType] = UInt64(EtherType.ipv4)
        k[.ipv4Dst] = UInt64(dst)
        return k
    }

    @Test func hitMissAndOverlap() throws {
        let (sw, dp) = try DriverTests.device()
        _ = try sw.addRule(DriverTests.spec(inPort: .vf(0), dst: 0xC613_0002, actions: [.forward(.vf(1))])).get()
        #expect(sw.tables.lookup(Self.packet(inPort: .vf(0), dst: 0xC613_0002))?.rule.actions == [.forward(.vf(1))])
        #expect(sw.tables.lookup(Self.packet(inPort: .vf(1), dst: 0xC613_0002)) == nil)
        #expect(sw.tables.lookup(Self.packet(inPort: .vf(0), dst: 0xC613_0003)) == nil)
        // A /24 rule overlapping the /32 one: both match, one is reported, the other counted.
        _ = try sw.addRule(DriverTests.spec(inPort: .vf(0), dst: 0xC613_0000, actions: [.drop], exactDst: false)).get()
        let both = try #require(sw.tables.lookup(Self.packet(inPort: .vf(0), dst: 0xC613_0002)))
        #expect(both.alsoMatching == 1)
        #expect(sw.tables.lookup(Self.packet(inPort: .vf(0), dst: 0xC613_0009))?.rule.actions == [.drop])
        #expect(dp.counters.isEmpty)
    }

    @Test func theExactTableComesFirst() throws {
        let (sw, _) = try DriverTests.device()
        var key = FlowKey(), mask = FlowKey()
        for f in [FlowField.inPort, .ethSrc, .ethDst, .ethType, .ipProto, .tpSrc, .tpDst] { mask[f] = f.valueMask }
        mask[.ipv4Src] = 0xffff_ffff
        mask[.ipv4Dst] = 0xffff_ffff
        key[.inPort] = UInt64(PortIndex.vf(0))
        key[.ethType] = UInt64(EtherType.ipv4)
        key[.ipProto] = UInt64(IPProto.udp)
        key[.ipv4Dst] = 0xC613_0002
        key[.tpDst] = 53
        _ = try sw.addRule(HardwareRuleSpec(key: key, mask: mask, actions: [.forward(.uplink)])).get()
        _ = try sw.addRule(DriverTests.spec(inPort: .vf(0), dst: 0xC613_0002, actions: [.forward(.vf(1))])).get()
        let hit = try #require(sw.tables.lookup(key))
        #expect(hit.rule.table == .exact)
        #expect(hit.rule.actions == [.forward(.uplink)])
        #expect(sw.tables.ruleCounts.exact == 1 && sw.tables.ruleCounts.masked == 1)
    }

    /// The driver indexes its rules in a shadow classifier only once a trace asked for
    /// it: before, a second rule with a programmed rule's match is still refused (by the
    /// data plane) and the first stays; the first look-up builds the shadow from what is
    /// programmed, later adds and removals keep it, and a flush drops it.
    @Test func theShadowIsBuiltForTheFirstLookupAndKept() throws {
        let (sw, _) = try DriverTests.device()
        #expect(!sw.tables.shadowKept)
        let first = try sw.addRule(DriverTests.spec(inPort: .vf(0), dst: 0xC613_0002, actions: [.forward(.vf(1))])).get()
        #expect(throws: OffloadFailure.duplicateMatch) {
            try sw.addRule(DriverTests.spec(inPort: .vf(0), dst: 0xC613_0002, actions: [.drop])).get()
        }
        #expect(OffloadFailure.duplicateMatch.errno == EEXIST)
        #expect(sw.rule(first)?.isProgrammed == true)
        #expect(sw.tables.rules.count == 1, "the refused rule is not held")
        #expect(!sw.tables.shadowKept)

        #expect(sw.tables.lookup(Self.packet(inPort: .vf(0), dst: 0xC613_0002))?.rule.actions == [.forward(.vf(1))])
        #expect(sw.tables.shadowKept)
        let second = try sw.addRule(DriverTests.spec(inPort: .vf(0), dst: 0xC613_0003, actions: [.drop])).get()
        #expect(sw.tables.lookup(Self.packet(inPort: .vf(0), dst: 0xC613_0003))?.rule.actions == [.drop])
        #expect(throws: OffloadFailure.duplicateMatch) {
            try sw.addRule(DriverTests.spec(inPort: .vf(0), dst: 0xC613_0003, actions: [.forward(.vf(1))])).get()
        }
        #expect(sw.deleteRule(second))
        #expect(sw.tables.lookup(Self.packet(inPort: .vf(0), dst: 0xC613_0003)) == nil)
        #expect(sw.tables.ruleCounts.masked == 1)

        #expect(sw.deleteAllRules())
        #expect(!sw.tables.shadowKept)
        _ = try sw.addRule(DriverTests.spec(inPort: .vf(0), dst: 0xC613_0004, actions: [.drop])).get()
        #expect(sw.tables.lookup(Self.packet(inPort: .vf(0), dst: 0xC613_0002)) == nil)
        #expect(sw.tables.lookup(Self.packet(inPort: .vf(0), dst: 0xC613_0004))?.rule.actions == [.drop])
    }

    /// `ruleCounts` counts the rules each table of the silicon holds: chain rules apart
    /// from the masked table's (they share its shadow, not its map).
    @Test func chainRulesAreCountedApart() throws {
        let (sw, _) = try DriverTests.device()
        _ = try sw.addRule(DriverTests.spec(inPort: .vf(0), dst: 0xC613_0002, actions: [.drop])).get()
        var chain = DriverTests.spec(inPort: .vf(0), dst: 0xC613_0002, actions: [.drop])
        chain.key[.recircID] = 7
        chain.mask[.recircID] = FlowField.recircID.valueMask
        _ = try sw.addRule(chain).get()
        let n = sw.tables.ruleCounts
        #expect(n.exact == 0 && n.masked == 1 && n.chain == 1)
    }
}
