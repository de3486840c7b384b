import Testing
@testable import ODP

/// Disagreements with Open vSwitch 3.1 found by tests/test-odp-conformance.sh, now
/// fixed (the same inputs are in tests/odp/keys.txt and actions.txt). Each
/// expectation is what the live OVS does.
@Suite struct ReportedBugTests {
    static let tail = ",recirc_id(0),in_port(1),eth(),eth_type(0x0800),ipv4(frag=no), actions:1"

    static func normalized(_ key: String, _ actions: String = "1") -> String? {
        try? ODPText.normalize(key: key, actions: actions)
    }

    @Test func ctLabelIsScannedLikeParseIntString() {
        // parse_int_string(): after "0x", blanks may sit among the hex digits and none
        // at all means 0; otherwise strtoull(…, 0), which skips blanks and takes a sign
        // and its own 0x prefix.
        let k = "in_port(1),eth(),eth_type(0x0800),ipv4(frag=no)"
        #expect(Self.normalized("ct_label(0x)," + k) == "ct_label(0)" + Self.tail)
        #expect(Self.normalized("ct_label(0x12 34)," + k) == "ct_label(0x1234)" + Self.tail)
        #expect(Self.normalized("ct_label(0x5 )," + k) == "ct_label(0x5)" + Self.tail)
        #expect(Self.normalized("ct_label( 0x12)," + k) == "ct_label(0x12)" + Self.tail)
        #expect(Self.normalized("ct_label(-0x1)," + k) == "ct_label(0xffffffffffffffff)" + Self.tail)
        #expect(Self.normalized("ct_label(0x5/ 0xf)," + k) == "ct_label(0x5/0xf)" + Self.tail)
        #expect(Self.normalized("ct_label(0x1/0x)," + k) == "recirc_id(0),in_port(1),eth(),eth_type(0x0800),ipv4(frag=no), actions:1")
        let key = "in_port(1),eth(),eth_type(0x1234)"
        #expect(Self.normalized(key, "ct(label=0x)") == "recirc_id(0),in_port(1),eth(),eth_type(0x1234), actions:ct(label=0)")
        #expect(Self.normalized(key, "ct(label=0x1 2)") == "recirc_id(0),in_port(1),eth(),eth_type(0x1234), actions:ct(label=0x12)")
        #expect(Self.normalized(key, "ct(label= 0x12)") == "recirc_id(0),in_port(1),eth(),eth_type(0x1234), actions:ct(label=0x12)")
        #expect(Self.normalized(key, "set(ct_label(0x))")
            == "recirc_id(0),in_port(1),eth(),eth_type(0x1234), actions:set(ct_label(0))")
        // Leading zeros do not count towards the 32 digits; a 33rd significant one is ERANGE.
        #expect(Self.normalized("ct_label(0x 00 0000000000000000000000000000000000000001)," + k) == "ct_label(0x1)" + Self.tail)
        #expect(keyParseError("ct_label(0x1" + String(repeating: "0", count: 32) + ")," + k) != nil)
        // strtoull: "0x" without hex digits converts the "0" and stops at the "x";
        // out of range is ERANGE; nothing to convert is EINVAL.
        #expect(keyParseError("ct_label( 0x)," + k) != nil)
        #expect(keyParseError("ct_label(18446744073709551616)," + k) != nil)
        #expect(keyParseError("ct_label(-)," + k) != nil)
        #expect(Self.normalized("ct_label(+010)," + k) == "ct_label(0x8)" + Self.tail)
        // The "/" must follow the value directly.
        #expect(keyParseError("ct_label(0x5 / 0xf)," + k) == nil)
        #expect(keyParseError("ct_label(5 /0xf)," + k) != nil)
    }

    @Test func emptyFlagSetsAreSyntaxErrors() {
        // scan_ct_state()/scan_tcp_flags() consume nothing for "()" and SCAN_TYPE
        // turns a zero length into EINVAL (tunnel flags() is fine: it counts the ")").
        #expect(keyParseError("ct_state(),in_port(1),eth(),eth_type(0x0800),ipv4(frag=no)") != nil)
        #expect(keyParseError("in_port(1),eth(),eth_type(0x0800),ipv4(proto=6,frag=no),tcp(),tcp_flags()") != nil)
        #expect(actionParseError("set(ct_state())") != nil)
        #expect(actionParseError("set(tcp_flags())") != nil)
        #expect(Self.normalized("tunnel(dst=192.0.2.1,ttl=64,flags()),in_port(1),eth(),eth_type(0x0800),ipv4(frag=no)")
            == "tunnel(dst=192.0.2.1,ttl=64,flags(-oam-df-csum)),recirc_id(0),in_port(1),eth(),eth_type(0x0800),ipv4(frag=no), actions:1")
    }

    @Test func ufidOnlyWhereOVSTakesIt() {
        // dpctl strips one "ufid:" at the very start; odp_flow_from_string() also skips a
        // ufid where an attribute may start, but wants the attribute right after it (at
        // most one blank between them, no ',').
        let u = "ufid:0a0b0c0d-1111-4222-8333-000000000001"
        let rest = "in_port(1),eth(),eth_type(0x0800),ipv4(frag=no)"
        let plain = "recirc_id(0),in_port(1),eth(),eth_type(0x0800),ipv4(frag=no), actions:1"
        #expect(Self.normalized(u + "," + rest) == plain)
        #expect(Self.normalized(u + " " + rest) == plain)
        #expect(Self.normalized("in_port(1)," + u + " eth(),eth_type(0x0800),ipv4(frag=no)") == plain)
        #expect(Self.normalized("in_port(1)," + u + "eth(),eth_type(0x0800),ipv4(frag=no)") == plain)
        #expect(keyParseError("in_port(1)," + u + ",eth(),eth_type(0x0800),ipv4(frag=no)") != nil)
        #expect(keyParseError(u + "," + u + "," + rest) != nil)
        #expect(keyParseError(" " + u + "," + rest) != nil)
        #expect(keyParseError(rest + "," + u) != nil)
        #expect(keyParseError("in_port(1)," + u + "  eth(),eth_type(0x0800),ipv4(frag=no)") != nil)
        // Only the leading ufid is the flow's.
        let v = "ufid:0a0b0c0d-1111-4222-8333-000000000002"
        #expect((try? ODPText.parseKey(u + "," + rest))?.ufid == 0x0a0b0c0d_1111_4222_8333_000000000001)
        #expect((try? ODPText.parseKey(u + " " + v + " " + rest))?.ufid == 0x0a0b0c0d_1111_4222_8333_000000000001)
        #expect((try? ODPText.parseKey(v + " " + rest)) != nil)
        #expect(keyParseError(" " + v + " " + rest) == nil)
        #expect((try? ODPText.parseKey(" " + v + " " + rest))?.ufid == nil)
    }
}

/// Action lists and keys too long for one netlink attribute are refused by the parser
/// (the client sends nothing), never encoded with a wrapped length.
@Suite struct TooLongForNetlinkTests {
    @Test func anActionListLongerThanAnAttributeIsRefused() {
        let text = (0..<2100).map { "set(ipv4(ttl=\($0 % 256)))" }.joined(separator: ",")
        do {
            let bytes = try ODPText.parseActions(text)
            Issue.record("\(bytes.count) bytes of actions parsed")
        } catch {
            #expect(error.message.hasPrefix("the actions are too long: "), "\(error.message)")
            #expect(error.message.hasSuffix(" bytes, at most 65531"), "\(error.message)")
        }
    }

    @Test func aNestedActionLongerThanAnAttributeIsRefused() {
        let inner = Array(repeating: "2", count: 9000).joined(separator: ",")
        do {
            _ = try ODPText.parseActions("clone(\(inner))")
            Issue.record("a 72 KB clone parsed")
        } catch {
            #expect(error.message == "the actions are too long: an attribute of 72004 bytes, at most 65535", "\(error.message)")
        }
    }

    @Test func anActionListThatFitsParses() throws {
        let bytes = try ODPText.parseActions(Array(repeating: "2", count: 8000).joined(separator: ","))
        #expect(bytes.count == 64000)
    }
}
