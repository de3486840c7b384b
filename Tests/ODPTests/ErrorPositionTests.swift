import Testing
@testable import ODP

/// A malformed flow or action string must say where (0-based UTF-8 offset into the
/// input) and what: the position of the offending value, not just of the attribute.
@Suite struct ErrorPositionTests {
    /// (input, the text the error must point at, what the message must say)
    static let keys: [(String, String, String)] = [
        ("in_port(1),eth(),eth_type(0x0800),ipv4(src=10.0.0.1/24,frag=no)", "/24", "expected \",\" or \")\""),
        ("in_port(1),foo(2)", "foo(2)", "unknown or malformed key attribute"),
        ("in_port(1),eth(),eth_type(0x8100),vlan(vid=4096),encap()", "4096", "value 4096 does not fit in 12 bits"),
        ("in_port(1),eth(),eth_type(0x8100),vlan(pcp=1/0x8),encap()", "0x8)", "mask 8 does not fit in 3 bits"),
        ("in_port(1),eth(src=02:00:00:00:00),eth_type(0x1234)", "02:00", "expected an Ethernet address"),
        ("in_port(1),eth(),eth_type(0x0800),ipv4(frag=maybe)", "maybe", "frag must be no, first or later"),
        ("in_port(1),eth(),eth_type(0x0800),ipv4(dst=10.0.0)", "10.0.0)", "expected an IPv4 address"),
        ("in_port(1),eth(),eth_type(0x86dd),ipv6(src=2001:db8::g)", "g)", "expected \",\" or \")\""),
        ("in_port(1),eth(),eth_type(0x86dd),ipv6(label=0x100000)", "0x100000", "ipv6 label must be below 0x100000"),
        ("in_port(1),eth(),eth_type(0x0800),ipv4(proto=6,frag=no),tcp(port=1)", "port=1", "unknown field or malformed value"),
        ("ct_state(+trk+bogus),in_port(1)", "+trk+bogus", "invalid ct_state flags"),
        ("in_port(1),eth(),eth_type(0x0800),ipv4(proto=6,frag=no),tcp(),tcp_flags(syn+ack)", "syn+ack", "invalid tcp_flags"),
        ("tunnel(dst=192.0.2.1,ttl=64,flags(+xyz)),in_port(1)", "+xyz", "invalid tunnel flags"),
        ("tunnel(dst=192.0.2.1,ttl=64,bogus=1),in_port(1)", "bogus=1", "unknown tunnel field"),
        ("recirc_id(1/0xff),in_port(1)", "/0xff", "expected \")\""),
        ("in_port(1),eth(),eth_type(0x8847),mpls(label=1,bos=0,label=2,bos=0,label=3,bos=0,label=4,bos=1)",
         "label=4", "at most 3 MPLS label stack entries"),
        ("in_port(1),eth(),eth_type(0x8100),vlan(vid=5),encap(eth_type(0x0800),ipv4(ttl=x))", "x))", "expected a number"),
        ("in_port(no-such-port),eth()", "no-such-port", "unknown port \"no-such-port\""),
    ]

    @Test func keyErrorsPointAtTheProblem() {
        for (text, at, why) in Self.keys {
            guard let e = keyParseError(text) else { Issue.record("parsed: \(text)"); continue }
            #expect(e.position == offset(of: at, in: text), "\(text): \(e)")
            #expect(e.message.contains(why), "\(text): \(e.message)")
        }
    }

    @Test func unterminatedKeyPointsAtTheEnd() {
        let text = "in_port(1),eth(),eth_type(0x0800),ipv4(frag=no"
        let e = keyParseError(text)
        #expect(e?.position == text.utf8.count)
        #expect(e?.message.contains("expected \",\" or \")\"") == true)
    }

    @Test func contextStartsAtTheFailingTopLevelAttribute() {
        // As OVS's "syntax error at …": the failure is deep inside encap(), the quoted
        // text starts at encap(.
        let text = "in_port(1),eth(),eth_type(0x8100),vlan(vid=5),encap(eth_type(0x0800),ipv4(ttl=x))"
        let e = keyParseError(text)
        #expect(e?.context == "encap(eth_type(0x0800),ipv4(ttl=x))")
        #expect(e?.position == offset(of: "x))", in: text))
    }

    @Test func malformedUFID() {
        let e = keyParseError("ufid:1234,in_port(1)")
        #expect(e?.position == 0)
        #expect(e?.message.contains("malformed ufid") == true)
    }

    static let actions: [(String, String, String)] = [
        ("1,2,set(ipv4(ttl=x))", "x)", "expected a number"),
        ("1,foo", "foo", "unknown action"),
        ("ct(commit)x", "x", "unexpected \"x\" after an action"),
        ("push_vlan(vid=1)", "push_vlan", "expected push_vlan("),
        ("2,sample(sample=150%,actions(1))", "150%", "0 <= P <= 100"),
        ("userspace(pid=1,userdata(012))", "2))", "even number of hex digits"),
        ("ct(commit,bogus)", "bogus", "unknown ct option"),
        ("check_pkt_len(size=100,le(1),gt(2))", "100,", "expected check_pkt_len("),
        ("clone(1,set(tcp(src=1,dst=2,x=3)))", "x=3", "unknown field or malformed value"),
    ]

    @Test func actionErrorsPointAtTheProblem() {
        for (text, at, why) in Self.actions {
            guard let e = actionParseError(text) else { Issue.record("parsed: \(text)"); continue }
            #expect(e.position == offset(of: at, in: text), "\(text): \(e)")
            #expect(e.message.contains(why), "\(text): \(e.message)")
        }
        let open = "clone(1,2"
        #expect(actionParseError(open)?.position == open.utf8.count)
    }

    @Test func normalizeNamesThePartAndColumn() {
        do {
            _ = try ODPText.normalize(key: "in_port(1),eth(),eth_type(0x0800),ipv4(frag=maybe)", actions: "1")
            Issue.record("accepted")
        } catch {
            #expect(error.position == 44)
            #expect(error.message == "flow key: frag must be no, first or later")
            #expect(error.description.hasPrefix("at column 45: flow key: frag must be no, first or later"))
        }
        do {
            _ = try ODPText.normalize(key: "in_port(1),eth(),eth_type(0x1234)", actions: "1,foo")
            Issue.record("accepted")
        } catch {
            #expect(error.position == 2)
            #expect(error.message == "actions: unknown action")
        }
        // A key that parses but that the datapath refuses has no position.
        do {
            _ = try ODPText.normalize(key: "in_port(1),eth(),eth_type(0x0806)", actions: "1")
            Issue.record("accepted")
        } catch {
            #expect(error.position == nil)
            #expect(error.description == "flow key: expected but not present: arp")
        }
    }
}
