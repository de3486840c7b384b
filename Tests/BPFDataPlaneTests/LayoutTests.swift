@testable import BPFDataPlane
import Classifier
import Foundation
import ESwitch
import Packet
import Testing

/// The Swift side of bpf/esw_shared.h: the sizes the C side asserts with
/// _Static_assert, and the placement of fields the programs read.
struct LayoutTests {
    @Test func sizesMatchTheCHeader() throws {
        #expect(Layout.tableKey(maskID: 1, masked: [UInt64](repeating: 0, count: 18)).count == 152)
        #expect(Layout.key([UInt64](repeating: 0, count: 18)).count == 144)
        #expect(Layout.maskLists(exact: [1], masked: [2, 3]).count == Layout.maskListsSize)
        #expect(Layout.rule(actionSet: 1, counter: 2, encap: false).count == 16)
        #expect(try Layout.actionSet([.drop]).get().count == 648)
        #expect(Layout.port(nil).count == 24)
        #expect(Layout.config(mode: .switchdev, ports: 3, vxlan: [], counterSlots: 1).count == 28)
        #expect(Layout.encap(VXLAN.EncapTemplate(bytes: [UInt8](repeating: 0, count: 50), isIPv6: false, checksum: false)).count == 80)
    }

    /// The compiler's view of bpf/esw_shared.h (the object's maps) against Layout's.
    @Test func theObjectsMapsHaveTheLayoutsSwiftWrites() {
        let sizes = bpfMapSizes(elf: BPFObjectBytes.elf)
        func expect(_ map: String, key: Int, value: Int) {
            #expect(sizes[map]?.key == key, "key of \(map)")
            #expect(sizes[map]?.value == value, "value of \(map)")
        }
        expect("esw_rule_tables", key: 4, value: 4)
        expect("esw_rule_tables.inner", key: Layout.tableKeySize, value: Layout.ruleSize)
        expect("esw_masks", key: 4, value: Layout.keySize)
        expect("esw_mask_lists", key: 4, value: Layout.maskListsSize)
        expect("esw_action_sets", key: 4, value: Layout.actionSetSize)
        expect("esw_rule_counters", key: 4, value: Layout.ruleCounterSize)
        expect("esw_encaps", key: 4, value: Layout.encapSize)
        expect("esw_ports", key: 4, value: Layout.portSize)
        expect("esw_config", key: 4, value: Layout.configSize)
        expect("esw_port_stats", key: 4, value: Layout.portCountersSize)
        expect("esw_macs", key: 8, value: 4)
        // The programmable stage (UserPrograms.swift writes these as raw u64s).
        expect("esw_prog_stats", key: 4, value: 8 * (PortProgramCounters.names.count - 1))  // `late` is the delay line's
        expect("esw_prog_config", key: 4, value: 24)
        expect("esw_engine", key: 4, value: 8)
        expect("esw_user_progs", key: 4, value: 4)
        expect("esw_pipeline", key: 4, value: 4)
        // Connection tracking (ConntrackLayout.swift).
        expect("esw_chain", key: Layout.chainKeySize, value: Layout.ruleSize)
        expect("esw_chain_masks", key: 4, value: Layout.chainMaskSize)
        expect("esw_chain_list", key: 4, value: Layout.chainListSize)
        expect("esw_ct", key: Layout.ctKeySize, value: Layout.ctEntrySize)
        expect("esw_ct_stats", key: 4, value: 8)
    }

    /// The port flags Layout.port writes are the header's ESW_PORT_* (the compiled
    /// object keeps no macros: they are read from the source).
    @Test func portFlagsAreTheHeaders() throws {
        let header = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../bpf/esw_shared.h").standardized
        let text = try String(contentsOf: header, encoding: .utf8)
        func define(_ name: String) -> UInt32? {
            for line in text.split(separator: "\n") {
                let f = line.split(separator: " ", omittingEmptySubsequences: true)
                if f.count >= 3, f[0] == "#define", f[1] == name { return UInt32(f[2].filter(\.isNumber)) }
            }
            return nil
        }
        #expect(define("ESW_PORT_VALID") == Layout.portValid)
        #expect(define("ESW_PORT_LINK_UP") == Layout.portLinkUp)
        #expect(define("ESW_PORT_UPLINK") == Layout.portUplink)
        #expect(define("ESW_PORT_PEER_NS") == Layout.portPeerNS)
        #expect(define("ESW_PORT_MIRROR_TX") == Layout.portMirrorTransmit)
        let mirrored = Layout.port(DataPlanePort(ifindex: 5, representorIfindex: 6, mirrorsTransmit: true))
        #expect(mirrored[8] == UInt8(Layout.portValid | Layout.portLinkUp | Layout.portMirrorTransmit))
        #expect(Layout.port(DataPlanePort(ifindex: 5, representorIfindex: 6))[8] == UInt8(Layout.portValid | Layout.portLinkUp))
    }

    @Test func conntrackLayoutsPlaceFieldsWhereTheCHeaderHasThem() throws {
        var k = FlowKey(), m = FlowKey()
        k[.recircID] = 5; m[.recircID] = FlowField.recircID.valueMask
        k[.ctState] = 0x22; m[.ctState] = 0x2a
        k[.ctZone] = 1; m[.ctZone] = FlowField.ctZone.valueMask
        k[.ctLabel] = 1 << 64 | 2; m[.ctLabel] = ~0
        k[.inPort] = 3; m[.inPort] = FlowField.inPort.valueMask
        let key = Layout.chainKey(maskID: 9, key: k, mask: m)
        #expect(key.count == Layout.chainKeySize)
        #expect(key[0] == 9 && key[4] == 5)                            // mask id, recirc id
        #expect(key[8] == 0x22 && key[10] == 1)                        // ct_state, ct_zone << 16
        #expect(key[16] == 1 && key[24] == 2)                          // ct_label high, low
        #expect(key[32 + 8 * 7] == 3)                                  // key word 7: in_port
        #expect(Layout.chainMask(m).count == Layout.chainMaskSize)
        #expect(Layout.chainList([1, 2]).count == Layout.chainListSize)
        #expect(Layout.fitsChainKey(key: k, mask: m))
        m[.recircID] = 0xff
        #expect(!Layout.fitsChainKey(key: k, mask: m))

        let t = ConnectionTuple(zone: 7, proto: IPProto.udp, isIPv6: false, src: 0xC612_0001, dst: 0xC612_0002, srcPort: 53, dstPort: 1000)
        let ck = Layout.ctKey(t)
        #expect(ck.count == Layout.ctKeySize)
        #expect(ck[0] == 7 && ck[2] == IPProto.udp && ck[3] == 0 && ck[4] == 53 && ck[6] == 0xe8)
        #expect(Array(ck[16..<20]) == [0x01, 0x00, 0x12, 0xC6])        // src[1]: the IPv4 address, host order
        let d = ConnectionDirection(tuple: t, state: 0x62, rewrite: ConnectionRewrite(src: 0xC613_0001, dstPort: 99))
        let e = Layout.ctEntry(d, mark: 0x55, label: 3, counter: 12)
        #expect(e.count == Layout.ctEntrySize)
        #expect(e[0] == 12 && e[8] == 0x62)
        #expect(e[9] == Layout.ctNATSource | Layout.ctNATDestinationPort)
        #expect(e[12] == 99 && e[16] == 0x55 && e[20] == 0x01 && e[23] == 0xC6 && e[40] == 3)
        let set = try Layout.actionSet([.conntrack(zone: 2, nat: true), .recirculate(5)]).get()
        #expect(set[8] == 14 && set[12] == 2 && set[14] == 1)          // ESW_ACT_CT, zone | ESW_CT_ACT_NAT
        #expect(set[48] == 15 && set[52] == 5)                         // ESW_ACT_RECIRC
    }

    @Test func keyWordsFollowTheFlowKeyLayout() {
        var k = FlowKey()
        k[.inPort] = 3
        k[.ipv4Dst] = 0xC613_0002
        k[.tunnelID] = 42
        let w = Layout.words(k)
        #expect(w.count == 18)
        #expect(w[7] == 3)
        #expect(w[12] >> 32 == 0xC613_0002)
        #expect(w[0] == 42)
    }

    @Test func matchesOutsideTheHardwareKeyDoNotFit() {
        var m = FlowKey(), k = FlowKey()
        m[.ipv4Src] = ~0
        m[.recircID] = FlowField.recircID.valueMask
        #expect(Layout.fitsHardwareKey(key: k, mask: m))
        k[.recircID] = 3
        #expect(!Layout.fitsHardwareKey(key: k, mask: m))
    }

    @Test func hardwareSlotsInvertTheHardwareWordSources() {
        for i in 0..<FlowKey.wordCount {
            let slot = Layout.hardwareSlot(ofKeyWord: i)
            if let s = Layout.keyWordSource.firstIndex(of: i) { #expect(slot == s, "word \(i)") } else { #expect(slot == -1, "word \(i)") }
        }
    }

    /// A driver rule handed over as its classifier entry fills the table key and mask
    /// words as its full key and mask do, and fits the hardware key as they do.
    @Test func aRulesEntryFillsTheTableKeyAsItsKeys() {
        func fills(_ key: FlowKey, _ mask: FlowKey) -> (Bool, TableKey, MaskWords, Bool, TableKey, MaskWords) {
            let m = FlowMask(mask)
            let entry = ClassifierEntry(key: key, mask: m, hash: m.hash(key))
            let full = DataPlaneRule(table: .masked, key: key.masked(by: mask), mask: mask, actions: [.drop], counter: 1)
            let compact = EntryRule(table: .masked, match: entry, actions: [.drop], counter: 1)
            var t1 = TableKey(), w1 = MaskWords(), t2 = TableKey(), w2 = MaskWords()
            let a = full.fill(&t1, &w1), b = compact.fill(&t2, &w2)
            return (a, t1, w1, b, t2, w2)
        }
        var k = FlowKey(), m = FlowKey()
        k[.inPort] = 3; m[.inPort] = ~0
        k[.ipv4Src] = 0xC612_0001; m[.ipv4Src] = 0xFFFF_FF00
        k[.ethType] = 0x0800; m[.ethType] = ~0
        var r = fills(k, m)
        #expect(r.0 && r.3 && r.1 == r.4 && r.2 == r.5)
        // Every word matched: the entry keeps words out of line past its eighth.
        r = fills(FlowKey.allOnes, FlowKey.allOnes)
        #expect(!r.0 && !r.3, "the whole key asks for bits outside the hardware key")
        var wide = FlowKey()
        for i in Layout.keyWordSource { wide.words[i] = ~0 }
        r = fills(FlowKey.allOnes, wide)
        #expect(r.0 && r.3 && r.1 == r.4 && r.2 == r.5)
        // Outside the hardware key a zero may be asked for, nothing else.
        m[.recircID] = FlowField.recircID.valueMask
        r = fills(k, m)
        #expect(r.0 && r.3 && r.1 == r.4 && r.2 == r.5)
        k[.recircID] = 3
        r = fills(k, m)
        #expect(!r.0 && !r.3)
    }

    @Test func actionsAreEncodedInNetworkOrderWhereThePacketHasThem() throws {
        let set = try Layout.actionSet([
            .forward(3),
            .setIPv4(value: .init(src: 0xC612_0001), mask: .init(src: 0xffff_ffff)),
            .pushVLAN(tpid: 0x8100, tci: 0x1005),
        ]).get()
        #expect(set[0] == 3)                               // count
        #expect(set[8] == 1 && set[12] == 3)               // forward, port 3
        #expect(set[48] == 6)                              // set_ipv4
        #expect(Array(set[56..<60]) == [0xC6, 0x12, 0x00, 0x01])
        #expect(set[88] == 3)                              // push_vlan
        #expect(Array(set[96..<100]) == [0x81, 0x00, 0x10, 0x05])
    }

    @Test func moreActionsThanTheSiliconHoldsAreRefused() {
        let many = [HardwareAction](repeating: .popVLAN, count: 17)
        guard case .failure = Layout.actionSet(many) else { Issue.record("17 actions accepted"); return }
    }

    @Test func theEmbeddedObjectIsAnELFForBPF() {
        let elf = BPFObjectBytes.elf
        #expect(elf.count > 1000)
        #expect(Array(elf.prefix(4)) == [0x7f, 0x45, 0x4c, 0x46])
        // e_machine 247: EM_BPF.
        #expect(elf[18] == 247)
    }

    /// A slot's fingerprint is its identity in the driver's shadow: keys built to cancel
    /// in the cheap fold (bit 63 of one word, bits 63 and 31 of the next: here the two
    /// halves of an IPv6 source, 2001:db8::1 and a001:db8:0:0:8000:0:8000:1) collide
    /// there, and must not in the fingerprint.
    @Test func fingerprintsOfKeysThatCancelInTheFoldDiffer() {
        var a = TableKey(), b = TableKey()
        a.words[14] = 0x2001_0DB8_0000_0000
        a.words[15] = 1
        b.words[14] = a.words[14] ^ (1 << 63)
        b.words[15] = a.words[15] ^ (1 << 63 | 1 << 31)
        #expect(Layout.fold(a.words.span) == Layout.fold(b.words.span))
        #expect(a.fingerprint != b.fingerprint)
        #expect(a != b)
    }

    /// The fingerprint hashes the non-zero words and where they were: the same values in
    /// other words (or a zero moved) make another fingerprint; the same key the same one.
    @Test func fingerprintsTellWhereTheNonZeroWordsAre() {
        var a = TableKey(), b = TableKey(), c = TableKey()
        a.words[0] = 7; a.words[3] = 0x0800; a.words[9] = 0xC612_0001
        b.words[0] = 7; b.words[4] = 0x0800; b.words[9] = 0xC612_0001
        c.words[0] = 7; c.words[3] = 0x0800; c.words[10] = 0xC612_0001
        #expect(Set([a.fingerprint, b.fingerprint, c.fingerprint]).count == 3)
        var d = TableKey()
        d.words[0] = 7; d.words[3] = 0x0800; d.words[9] = 0xC612_0001
        #expect(a.fingerprint == d.fingerprint)
        // A key of zero words and the empty key (mask id 0) differ from any set key.
        #expect(TableKey().fingerprint != a.fingerprint)
    }

    /// A queued write the kernel refused is retried from its prepared form: the rule
    /// rebuilt from the table key, mask words and actions is the rule it came from (a
    /// tunnel rule's words, an IPv6 rule's, a plain one's).
    @Test func aPreparedRuleGivesBackTheRuleItCameFrom() {
        var tunnel = FlowKey(), tunnelMask = FlowKey()
        tunnel[.inPort] = UInt64(PortIndex.uplink); tunnelMask[.inPort] = FlowField.inPort.valueMask
        tunnel[.tunnelIPv4Src] = 0xC612_0002; tunnelMask[.tunnelIPv4Src] = 0xffff_ffff
        tunnel[.tunnelID] = 42; tunnelMask[.tunnelID] = ~0
        tunnel[.ethType] = 0x0800; tunnelMask[.ethType] = 0xffff
        var v6 = FlowKey(), v6Mask = FlowKey()
        v6[.ethType] = 0x86dd; v6Mask[.ethType] = 0xffff
        v6[.ipv6Dst] = 0x2001_0db8 << 96 | 7; v6Mask[.ipv6Dst] = ~0
        v6[.tpDst] = 443; v6Mask[.tpDst] = 0xffff
        let rules = [
            PipelineTests.rule(PipelineTests.udpFrame(dst: 0xC612_0009), inPort: .vf(0), actions: [.forward(.vf(1))], counter: 9),
            DataPlaneRule(table: .masked, key: tunnel.masked(by: tunnelMask), mask: tunnelMask, actions: [.decap, .forward(.vf(0))], counter: 10),
            DataPlaneRule(table: .exact, key: v6.masked(by: v6Mask), mask: v6Mask, actions: [.drop], counter: 11),
        ]
        for r in rules {
            #expect(Layout.fitsHardwareKey(key: r.key, mask: r.mask))
            let mask = MaskWords(r.mask)
            let key = TableKey(maskID: 3, key: r.key, mask: mask)
            let p = BPFDataPlane.PendingRule(index: 0, table: r.table, key: key, fingerprint: key.fingerprint,
                                             value: RuleValue(actionSet: 1, counter: r.counter, encap: false),
                                             maskID: 3, previous: nil, slotQueued: false, actions: r.actions)
            #expect(p.rule(mask: mask) == r)
        }
    }
}
