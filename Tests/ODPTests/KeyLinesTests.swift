import Testing
import Netlink
import Packet
@testable import ODP

/// A flow file's keys parsed line after line (`KeyLines`, the attributes a line repeats
/// copied from the line before) give what each line parsed alone gives: the same key
/// and mask bytes, the same ufid, the same error.
@Suite struct KeyLinesTests {
    enum Outcome: Equatable {
        case parsed(key: [UInt8], mask: [UInt8], ufid: UInt128?)
        case failed(String)
    }

    static let ports: [String: UInt32] = ["p0": 2, "vf0rep": 7]

    func alone(_ text: String) -> Outcome {
        var k = AttributeWriter(), m = AttributeWriter()
        do {
            let u = try ODPText.parseKey(utf8: Array(text.utf8), portNames: Self.ports, key: &k, mask: &m)
            return .parsed(key: k.bytes, mask: m.bytes, ufid: u)
        } catch { return .failed("\(error)") }
    }

    func inTurn(_ lines: [String]) -> [Outcome] {
        var keys = KeyLines(portNames: Self.ports)
        return lines.map { text in
            do {
                let u = try keys.parse(Array(text.utf8)[...])
                return .parsed(key: keys.key.bytes, mask: keys.mask.bytes, ufid: u)
            } catch { return .failed("\(error)") }
        }
    }

    func check(_ lines: [String], sourceLocation: SourceLocation = #_sourceLocation) {
        let got = inTurn(lines)
        for (i, line) in lines.enumerated() {
            #expect(got[i] == alone(line), "line \(i + 1): \(line)", sourceLocation: sourceLocation)
        }
    }

    @Test func aFlowFileOfOneChangingFieldParsesAsEachLineAlone() {
        let lines = (0..<300).map { k in
            "in_port(1),eth(),eth_type(0x0800),ipv4(src=198.18.\(k / 256).\(k % 256),frag=no)"
        }
        check(lines)
        // The lines really differ (the test would pass for a parser that copied everything).
        #expect(alone(lines[0]) != alone(lines[1]))
    }

    @Test func linesThatDifferAnywhere() {
        check([
            "in_port(1),eth(),eth_type(0x0800),ipv4(src=198.18.0.1,frag=no)",
            // The first attribute differs.
            "in_port(2),eth(),eth_type(0x0800),ipv4(src=198.18.0.1,frag=no)",
            // A middle one, the same length.
            "in_port(2),eth(),eth_type(0x0806),ipv4(src=198.18.0.1,frag=no)",
            // One whose text starts as the previous one's and goes on.
            "in_port(2),eth(),eth_type(0x08060),ipv4(src=198.18.0.1,frag=no)",
            "in_port(22),eth(),eth_type(0x0800),ipv4(src=198.18.0.1,frag=no)",
            // Fewer attributes, then more, then the same line twice.
            "in_port(22),eth()",
            "in_port(22),eth(),eth_type(0x0800),ipv4(src=198.18.0.1,frag=no),tcp(dst=80)",
            "in_port(22),eth(),eth_type(0x0800),ipv4(src=198.18.0.1,frag=no),tcp(dst=80)",
            "in_port(22),eth(),eth_type(0x0800),ipv4(src=198.18.0.1,frag=no),tcp(dst=81)",
            // Other delimiters between the same attributes.
            "in_port(22), eth(),eth_type(0x0800),ipv4(src=198.18.0.1,frag=no),tcp(dst=81)",
            "in_port(22),eth() eth_type(0x0800),ipv4(src=198.18.0.1,frag=no),tcp(dst=81)",
            // Port names, nesting, masks.
            "in_port(p0),eth(src=00:00:00:00:00:01/ff:ff:ff:00:00:00),eth_type(0x8100),vlan(vid=5),encap(eth_type(0x0800),ipv4(frag=no))",
            "in_port(p0),eth(src=00:00:00:00:00:01/ff:ff:ff:00:00:00),eth_type(0x8100),vlan(vid=5),encap(eth_type(0x0800),ipv4(frag=first))",
            "in_port(vf0rep),eth(src=00:00:00:00:00:01/ff:ff:ff:00:00:00),eth_type(0x8100),vlan(vid=5),encap(eth_type(0x0800),ipv4(frag=first))",
        ])
    }

    @Test func ufidsAndErrorsBetweenGoodLines() {
        check([
            "in_port(1),eth(),eth_type(0x0800),ipv4(src=198.18.0.1,frag=no)",
            // A ufid first is the flow's: never taken from the line before.
            "ufid:11111111-2222-3333-4444-555555555555,in_port(1),eth(),eth_type(0x0800),ipv4(src=198.18.0.1,frag=no)",
            "ufid:11111111-2222-3333-4444-555555555556,in_port(1),eth(),eth_type(0x0800),ipv4(src=198.18.0.1,frag=no)",
            "in_port(1),eth(),eth_type(0x0800),ipv4(src=198.18.0.1,frag=no)",
            // An error in a later attribute, after attributes the line before had.
            "in_port(1),eth(),eth_type(0x0800),ipv4(src=198.18.0.300,frag=no)",
            "in_port(1),eth(),eth_type(0x0800),ipv4(src=198.18.0.2,frag=no)",
            // An error in an attribute the line before had right.
            "in_port(1),eth(),eth_type(0x08g0),ipv4(src=198.18.0.2,frag=no)",
            "in_port(1),eth(),eth_type(0x0800),ipv4(src=198.18.0.2,frag=no)",
            "in_port(1),eth(),eth_type(0x0800),ipv4(src=198.18.0.2,frag=no",
            "",
            "in_port(1),eth(),eth_type(0x0800),ipv4(src=198.18.0.3,frag=no)",
        ])
    }

    /// A line is scanned in the buffer the line before was, which keeps that line's
    /// bytes past the end of a shorter one: they are never read.
    @Test func aLineShorterThanTheOneBefore() {
        check([
            "in_port(1),eth(),eth_type(0x0800),ipv4(src=198.18.0.100,frag=no)",
            "in_port(1),eth(),eth_type(0x0800),ipv4(src=198.18.0.1,frag=no)",
            "in_port(1),eth(),eth_type(0x0800),ipv4(src=198.18.0.1,frag=no",
            "in_port(1),eth(),eth_type(0x0800),ipv4(src=198.18.0.1,frag=no)",
            "in_port(1),eth(),eth_type(0x0800),ipv4(src=198.18.0.1",
            "in_port(1),eth(),eth_type(0x0800),ipv4(src=198.18.0.1,frag=no)",
            "in_port(1),eth(),eth_type(0x0800),ipv4(",
            "in_port(1),eth(),eth_type(0x0800),ipv4(src=198.18.0.1,frag=no),tcp(dst=80)",
            "in_port(1),eth(),eth_type(0x0800),ipv4(src=198.18.0.1,frag=no),",
            "in_port(1),eth(),eth_type(0x0800),ipv4(src=198.18.0.1,frag=no),tcp(dst=80)",
            "in_port(1),eth(),eth_type(0x0800),ipv4(src=198.18.0.1,frag=no),tcp(dst=8",
            "in_port(1)",
            "in_port(1),eth(),eth_type(0x0800),ipv4(src=198.18.0.1,frag=no),tcp(dst=80)",
            "in_port(1",
        ])
    }

    /// Every key of the OVS corpus after every other one (and after itself).
    @Test func theCorpusInPairs() {
        let texts = OVSCorpus.keys.flatMap { [$0.input, $0.output] }
        for a in texts {
            for b in texts.prefix(12) { check([a, b, a]) }
        }
        check(texts)
    }
}

/// The CLI's quick reads of an IPv4 address and a frag word read what the general
/// forms read (sscanf's %hhu for each component; the three words).
@Suite struct QuickFieldReadTests {
    /// The components read as %hhu each, the way before the quick path.
    func reference(_ sc: Scan, _ i: Int) -> (UInt32, Int)? {
        var j = i, v: UInt32 = 0
        for k in 0..<4 {
            if k > 0 {
                guard sc[j] == 46 else { return nil }
                j += 1
            }
            guard let (c, e) = sc.integer(j, base: 10) else { return nil }
            v = v << 8 | UInt32(UInt8(truncatingIfNeeded: c))
            j = e
        }
        return (v, j)
    }

    @Test func ipv4AsPercentHHU() {
        let texts = ["198.18.0.1", "198.18.0.1,frag=no)", "0.0.0.0", "255.255.255.255", "001.002.003.004",
                     "1234.5.6.7", "256.1.1.1", "1.2.3", "1.2.3.", "1..2.3", "1.2.3.4.5", " 1.2.3.4", "1. 2.3.4",
                     "+1.2.3.4", "1.2.3.4/255.255.0.0", "9999.9.9.9)", "", "a.b.c.d", "10.0.0.10)"]
        for t in texts {
            let sc = Scan(utf8: Array(t.utf8))
            let got = sc.ipv4(0), want = reference(sc, 0)
            #expect(got?.0 == want?.0 && got?.1 == want?.1, "\(t)")
        }
        #expect(Scan(utf8: Array("198.18.0.1".utf8)).ipv4(0)?.0 == 0xC612_0001)
    }

    @Test func fragWords() throws {
        for (word, value) in [("no", 0), ("first", 1), ("later", 2)] as [(String, UInt8)] {
            let p = try ODPText.parseKey("in_port(1),eth(),eth_type(0x0800),ipv4(frag=\(word))")
            let m = try #require(try? FlowMatch.fromAttributes(key: p.key, mask: p.mask, vlanLimit: 1).get())
            #expect(m.key[.ipFrag] == UInt64(value), "\(word)")
        }
        for bad in ["n", "noo", "firs", "First", "laterx", "yes"] {
            #expect(throws: ODPError.self, "\(bad)") { try ODPText.parseKey("in_port(1),eth(),eth_type(0x0800),ipv4(frag=\(bad))") }
        }
    }
}
