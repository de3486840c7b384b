import Testing
import Packet
@testable import ODP

/// Flow keys: text → key/mask netlink attributes → decoded match → attributes
/// again → text, against what Open vSwitch 3.1 prints for the same input.
@Suite struct KeyRoundTripTests {
    @Test func keysPrintAsOVSDumpsThem() throws {
        #expect(OVSCorpus.keys.count >= 50)
        for c in OVSCorpus.keys {
            let m = try match(c.input)
            #expect(ODPText.formatKey(m) == c.output, "key \(c.input)")
            #expect(try ODPText.normalize(key: c.input, actions: "1") == c.output + ", actions:1", "key \(c.input)")
        }
    }

    @Test func netlinkRoundTripKeepsTheMatch() throws {
        for c in OVSCorpus.keys {
            let m = try match(c.input)
            // The attributes the datapath would dump decode to the same match (the
            // empty key, which has no mask at all, also matches the inner VLAN
            // exactly, which no dump can show)...
            let (k, mk) = KeyEncoder().encode(m)
            let again = try FlowMatch.fromAttributes(key: k, mask: mk).get()
            if !c.input.isEmpty { #expect(again == m, "key \(c.input)") }
            // ...and print as OVS prints them.
            #expect(KeyFormatter().format(key: k, mask: mk) == c.output, "key \(c.input)")
        }
    }

    /// A dump's formatter remembers texts (by position, then by bytes): every key, in any
    /// order and after any other, must print exactly as a formatter without memory prints
    /// it, in both the short and the verbose form.
    @Test func aRememberingFormatterPrintsWhatAFreshOnePrints() throws {
        var keys: [(key: [UInt8], mask: [UInt8])] = []
        for c in OVSCorpus.keys where !c.input.isEmpty { keys.append(KeyEncoder().encode(try match(c.input))) }
        for i in 0..<600 {
            // Runs of keys that differ in one field (a dump's usual order), then jumps.
            let src = "198.18.\(i / 256 % 4).\(i % 256)"
            let macByte = (i % 200 < 16 ? "0" : "") + String(i % 200, radix: 16)
            let l4 = i % 7 == 0 ? "proto=17,frag=no),udp(dst=\(i))" : "proto=6,frag=no),tcp(src=\(i % 3))"
            let text = i % 5 == 0
                ? "in_port(\(1 + i % 3)),eth(),eth_type(0x0800),ipv4(src=\(src),\(l4)"
                : "in_port(1),eth(src=00:00:00:00:00:\(macByte)),eth_type(0x0800),ipv4(src=\(src)/255.255.255.0,frag=no)"
            keys.append(KeyEncoder().encode(try match(text)))
        }
        var rng = SystemRandomNumberGenerator()
        let shuffled = keys.shuffled(using: &rng)
        for verbose in [false, true] {
            let remembering = KeyFormatter(verbose: verbose, memo: FormatMemo())
            for order in [keys, shuffled, keys + keys] {
                for (k, m) in order {
                    #expect(remembering.format(key: k, mask: m) == KeyFormatter(verbose: verbose).format(key: k, mask: m))
                }
            }
            // The key without its mask, and a mask attribute missing: other shapes at the same places.
            for (k, _) in keys.prefix(50) {
                #expect(remembering.format(key: k, mask: nil) == KeyFormatter(verbose: verbose).format(key: k, mask: nil))
            }
        }
    }

    /// The formatter replays its last key's plan for a key with the same attribute
    /// headers and mask, copying the texts of attributes with the same bytes: keys that
    /// differ from the one before in a byte anywhere (a payload, a header, a length, the
    /// mask) must still print as a fresh formatter prints them.
    @Test func aRememberingFormatterPrintsKeysDifferingInAnyByteAsAFreshOne() throws {
        var generator = SplitMix(seed: 0x5eed)
        for verbose in [false, true] {
            let remembering = KeyFormatter(verbose: verbose, memo: FormatMemo())
            for c in OVSCorpus.keys where !c.input.isEmpty {
                let (key, mask) = KeyEncoder().encode(try match(c.input))
                for variant in 0..<12 {
                    var k = key, m = mask
                    if variant % 3 != 2, !k.isEmpty { k[Int(generator.next() % UInt64(k.count))] ^= UInt8(truncatingIfNeeded: generator.next() | 1) }
                    if variant % 3 == 1, !m.isEmpty { m[Int(generator.next() % UInt64(m.count))] ^= 0xff }
                    #expect(remembering.format(key: k, mask: m) == KeyFormatter(verbose: verbose).format(key: k, mask: m), "key \(c.input)")
                }
            }
        }
    }

    /// A seeded generator: the same keys on every run.
    struct SplitMix: RandomNumberGenerator {
        var state: UInt64
        init(seed: UInt64) { state = seed }
        mutating func next() -> UInt64 {
            state &+= 0x9e37_79b9_7f4a_7c15
            var z = state
            z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
            z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
            return z ^ (z >> 31)
        }
    }

    @Test func printedKeysParseBackAsOVSParsesThem() throws {
        // OVS cannot always read its own dump (no eth_type for an eth() with a
        // wildcarded type, a dropped udp() after a masked proto, …): esw must agree.
        var rejected = 0
        for c in OVSCorpus.keys {
            if let want = c.reparsed {
                #expect(try ODPText.normalize(key: c.output, actions: "1") == want + ", actions:1", "key \(c.output)")
            } else {
                rejected += 1
                #expect(throws: ODPError.self, "key \(c.output)") { try ODPText.normalize(key: c.output, actions: "1") }
            }
        }
        #expect(rejected >= 5)
    }

    @Test func verboseKeysPrintAsDumpFlowsM() throws {
        #expect(OVSCorpus.verboseKeys.count >= 15)
        for (input, output) in OVSCorpus.verboseKeys {
            #expect(try ODPText.normalize(key: input, actions: "1", verbose: true) == output + ", actions:1", "key \(input)")
        }
    }

    @Test func decodedFieldsLandInTheFlowKey() throws {
        let v = try match("in_port(7),eth(src=02:00:00:00:00:01,dst=02:00:00:00:00:02/ff:ff:ff:00:00:00),eth_type(0x8100),"
            + "vlan(vid=100,pcp=5),encap(eth_type(0x0800),ipv4(src=10.1.2.3/255.255.255.0,proto=6,ttl=64,frag=no),tcp(dst=4096/0xf000))")
        #expect(v.key[.inPort] == 7 && v.mask[.inPort] == 0xffff_ffff)
        #expect(v.key[.ethSrc] == 0x0200_0000_0001 && v.mask[.ethSrc] == 0xffff_ffff_ffff)
        #expect(v.key[.ethDst] == 0x0200_0000_0002 && v.mask[.ethDst] == 0xffff_ff00_0000)
        #expect(v.key[.vlanTPID] == 0x8100)
        #expect(v.key[.vlanTCI] == 0x1000 | 100 | 5 << 13)
        #expect(v.key[.ethType] == 0x0800 && v.mask[.ethType] == 0xffff)
        // Stored unmasked, as the userspace datapath keeps it for dumps.
        #expect(v.key[.ipv4Src] == 0x0a01_0203 && v.mask[.ipv4Src] == 0xffff_ff00)
        #expect(v.key[.ipProto] == 6 && v.key[.ipTTL] == 64 && v.mask[.ipv4Dst] == 0)
        #expect(v.key[.tpDst] == 4096 && v.mask[.tpDst] == 0xf000 && v.mask[.tpSrc] == 0)

        let t = try match("tunnel(tun_id=0x1234,src=192.0.2.1,dst=192.0.2.2,ttl=64,tp_dst=4789,flags(-df+csum)),"
            + "in_port(1),eth(),eth_type(0x86dd),ipv6(src=2001:db8::1,label=0x12345,frag=first)")
        #expect(t.key[.tunnelID] == 0x1234 && t.key[.tunnelIPv4Src] == 0xc000_0201 && t.key[.tunnelIPv4Dst] == 0xc000_0202)
        #expect(t.key[.tunnelTTL] == 64 && t.key[.tunnelTPDst] == 4789 && t.mask[.tunnelTPSrc] == 0)
        #expect(t.key[.ipv6Src] == 0x2001_0db8_0000_0000_0000_0000_0000_0001 && t.mask[.ipv6Dst] == 0)
        #expect(t.key[.ipv6Label] == 0x12345 && t.mask[.ipv6Label] == 0xfffff)
        #expect(t.key[.ipFrag] == 1)

        // Out-of-range numbers are truncated to the field width, as ovs_scan() does.
        let n = try match("skb_mark(4294967297),ct_zone(65537),in_port(0x20),eth(),eth_type(0x0800),ipv4(ttl=-1,frag=no)")
        #expect(n.key[.skbMark] == 1 && n.key[.ctZone] == 1 && n.key[.inPort] == 32 && n.key[.ipTTL] == 255)
    }

    @Test func packetTypeFollowsEthAndEthType() throws {
        // eth() makes an Ethernet flow; eth_type(X) without it makes (ns=1,id=X),
        // overriding any packet_type() written.
        #expect(try match("packet_type(ns=2,id=5),in_port(1),eth_type(0x1234)").key[.packetType] == 0x0001_1234)
        #expect(try match("packet_type(ns=1,id=0x800),in_port(1),eth(),eth_type(0x0800),ipv4(frag=no)").key[.packetType] == 0)
    }

    @Test func emptyMaskMeansExactOnEveryRelevantField() throws {
        let p = try ODPText.parseKey("in_port(3),eth(),eth_type(0x0800),ipv4(src=10.0.0.1,proto=6,frag=no),tcp(dst=80)")
        let m = try FlowMatch.fromAttributes(key: p.key, mask: []).get()
        #expect(m.mask[.inPort] == 0xffff_ffff && m.mask[.ethSrc] == 0xffff_ffff_ffff)
        #expect(m.mask[.ipv4Src] == 0xffff_ffff && m.mask[.ipv4Dst] == 0xffff_ffff && m.mask[.ipTTL] == 0xff)
        #expect(m.mask[.tpSrc] == 0xffff && m.mask[.tpDst] == 0xffff)
        // Fields that mean nothing for an IPv4 flow stay wildcarded.
        #expect(m.mask[.ipv6Src] == 0 && m.mask[.arpSHA] == 0 && m.mask[.mplsLSE] == 0 && m.mask[.tunnelIPv4Dst] == 0)
    }

    @Test func qinqNeedsAVLANLimitOfTwo() throws {
        // Recorded with other_config:vlan-limit=2 (and 1, the default, for the rejections).
        let key = "in_port(2),eth(),eth_type(0x88a8),vlan(vid=10,pcp=3),encap(eth_type(0x8100),vlan(vid=20/0xff0),"
            + "encap(eth_type(0x86dd),ipv6(proto=17,frag=no),udp(dst=53)))"
        #expect(throws: ODPError.self) { try ODPText.normalize(key: key, actions: "1") }
        #expect(try ODPText.normalize(key: key, actions: "1", vlanLimit: 2)
            == "recirc_id(0),in_port(2),eth(),eth_type(0x88a8),vlan(vid=10,pcp=3),encap(eth_type(0x8100),vlan(vid=20/0xff0),"
            + "encap(eth_type(0x86dd),ipv6(proto=17,frag=no),udp(dst=53))), actions:1")
        let inner = try match(key, vlanLimit: 2)
        #expect(inner.key[.vlanTPID] == 0x88a8 && inner.key[.cvlanTPID] == 0x8100)
        #expect(inner.key[.vlanTCI] == 0x1000 | 10 | 3 << 13 && inner.key[.cvlanTCI] == 0x1000 | 20)
        #expect(inner.mask[.cvlanTCI] & 0xfff == 0xff0)
        // Three VLAN headers are too many even then.
        let three = "in_port(3),eth(),eth_type(0x8100),vlan(vid=1),encap(eth_type(0x8100),vlan(vid=2),"
            + "encap(eth_type(0x8100),vlan(vid=3),encap(eth_type(0x0800),ipv4(frag=no))))"
        #expect(throws: ODPError.self) { try ODPText.normalize(key: three, actions: "1", vlanLimit: 2) }
    }
}
