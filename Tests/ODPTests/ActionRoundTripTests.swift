import Testing
@testable import ODP

/// Actions: text → OVS_ACTION_ATTR_* netlink → decoded `ODPAction`s → netlink →
/// text, against what Open vSwitch 3.1 prints for the same input.
@Suite struct ActionRoundTripTests {
    @Test func actionsPrintAsOVSDumpsThem() throws {
        #expect(OVSCorpus.actions.count >= 50)
        for c in OVSCorpus.actions {
            let bytes = try ODPText.parseActions(c.input)
            #expect(ActionFormatter().format(bytes) == c.output, "actions \(c.input)")
        }
    }

    @Test func netlinkRoundTripKeepsTheBytes() throws {
        for c in OVSCorpus.actions {
            let bytes = try ODPText.parseActions(c.input)
            let decoded = try ODPAction.decode(bytes)
            #expect(!decoded.isEmpty, "actions \(c.input)")
            let encoded = ODPAction.encode(decoded)
            #expect(encoded == bytes, "actions \(c.input)")
            #expect(ActionFormatter().format(encoded) == c.output, "actions \(c.input)")
        }
    }

    @Test func printedActionsParseBackAsOVSParsesThem() throws {
        // recirc() prints hex but reads decimal, slow_path() prints ',' but reads '|',
        // and an empty nested list prints "drop", which is not an action inside a list.
        var rejected = 0
        for c in OVSCorpus.actions {
            if let want = c.reparsed {
                #expect(ActionFormatter().format(try ODPText.parseActions(c.output)) == want, "actions \(c.output)")
            } else {
                rejected += 1
                #expect(actionParseError(c.output) != nil, "actions \(c.output)")
            }
        }
        #expect(rejected >= 4)
    }

    @Test func decodedActionValues() throws {
        func decode(_ s: String) throws -> [ODPAction] { try ODPAction.decode(try ODPText.parseActions(s)) }
        #expect(try decode("1,0x10,010,-1") == [.output(1), .output(16), .output(8), .output(0xffff_ffff)])
        #expect(try decode("drop") == [.drop(reason: 0)])
        #expect(try decode("recirc(5),trunc(100),meter(7)") == [.recirc(5), .trunc(100), .meter(7)])
        #expect(try decode("push_vlan(tpid=0x88a8,vid=100,pcp=3),pop_vlan")
            == [.pushVLAN(tpid: 0x88a8, tci: 0x1000 | 100 | 3 << 13), .popVLAN])
        #expect(try decode("push_vlan(vid=5,pcp=0,cfi=0)") == [.pushVLAN(tpid: 0x8100, tci: 5)])
        // set() with a full mask stays a plain set; anything else becomes set_masked.
        #expect(try decode("set(tcp(src=80,dst=443))") == [.set(SetField(attribute: KeyAttr.tcp, value: [0, 80, 1, 187]))])
        #expect(try decode("set(tcp(dst=443))")
            == [.set(SetField(attribute: KeyAttr.tcp, value: [0, 0, 1, 187], mask: [0, 0, 0xff, 0xff]))])
        #expect(try decode("set(skb_mark(0x10/0xf0))")
            == [.set(SetField(attribute: KeyAttr.skbMark, value: le32(0x10), mask: le32(0xf0)))])
        // Probability = floor(UINT32_MAX * P / 100 + 0.5).
        #expect(try decode("sample(sample=50%,actions(1,2))") == [.sample(probability: 0x8000_0000, actions: [.output(1), .output(2)])])
        #expect(try decode("clone(clone(2),3)") == [.clone([.clone([.output(2)]), .output(3)])])
        #expect(try decode("check_pkt_len(size=70000,gt(1),le())")
            == [.checkPacketLength(size: 4464, greater: [.output(1)], lessEqual: [])])
        #expect(try decode("userspace(pid=9,userdata(0a0b),actions,tunnel_out_port=4)")
            == [.userspace(pid: 9, userdata: [0x0a, 0x0b, 0, 0, 0, 0, 0, 0], egressTunnelPort: 4, includeActions: true)])
        #expect(try decode("add_mpls(label=100,tc=1,ttl=64,bos=1,eth_type=0x8847)")
            == [.addMPLS(lse: 100 << 12 | 1 << 9 | 1 << 8 | 64, ethType: 0x8847)])
        #expect(try decode("ct_clear,tnl_pop(4),lb_output(2)") == [.ctClear, .tunnelPop(4), .lbOutput(2)])
        // ct() keeps its nested attributes: commit flag, zone u16, mark value+mask.
        guard case .conntrack(let raw) = try decode("ct(commit,zone=5,mark=0x1/0xff)").first else {
            Issue.record("ct did not decode as conntrack")
            return
        }
        #expect(raw == nla(CTAttr.commit, []) + nla(CTAttr.zone, [5, 0]) + nla(CTAttr.mark, le32(1) + le32(0xff)))
    }

    @Test func emptyActionsPrintAsDrop() throws {
        #expect(try ODPText.parseActions("").isEmpty)
        #expect(ActionFormatter().format([]) == "drop")
        #expect(try ODPText.normalize(key: "in_port(1),eth(),eth_type(0x1234)", actions: "")
            == "recirc_id(0),in_port(1),eth(),eth_type(0x1234), actions:drop")
    }

    /// Actions of the deviations (OVS 3.1 cannot read them back, so the corpus has no
    /// case for them) print as OVS prints them.
    @Test func actionsOnlyEswReadsBackPrintAsOVSPrintsThem() throws {
        for text in ["push_eth(src=02:00:00:00:00:01,dst=02:00:00:00:00:02)", "pop_eth", "hash(l4(5))", "hash(sym_l4(0))",
                     "push_mpls(label=10,tc=0,ttl=64,bos=1,eth_type=0x8847)", "pop_mpls(eth_type=0x800)"] {
            #expect(ActionFormatter().format(try ODPText.parseActions(text)) == text)
        }
    }

    @Test func malformedActionNetlinkIsRefusedOnDecode() {
        // output needs a 4-byte port; push_vlan 4 bytes; pop_vlan none.
        #expect(throws: ODPError.self) { try ODPAction.decode(nla(ActionAttr.output, [1, 0])) }
        #expect(throws: ODPError.self) { try ODPAction.decode(nla(ActionAttr.pushVLAN, [0x81, 0])) }
        #expect(throws: ODPError.self) { try ODPAction.decode(nla(ActionAttr.popVLAN, [0, 0, 0, 0])) }
        #expect(throws: ODPError.self) { try ODPAction.decode(nla(ActionAttr.sample, nla(SampleAttr.probability, le32(1)))) }
        // …and printed the way OVS prints a bad length.
        #expect(ActionFormatter().format(nla(ActionAttr.output, [1, 0])) == "bad length 2, expected 4 for: action1(01 00)")
    }
}
