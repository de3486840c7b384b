import Testing
import Packet
@testable import ODP

/// What the datapath refuses when a flow is put (odp_flow_key_to_flow/_to_mask,
/// the rules of the kernel's flow_netlink.c): every case here is a key that parses
/// but that Open vSwitch 3.1 rejects with "updating flow table (Invalid argument)".
@Suite struct KeyValidationTests {
    /// (key, what the refusal must say)
    static let refused: [(String, String)] = [
        // L3/L4 masks need an exact EtherType / IP protocol.
        ("in_port(1),eth(),eth_type(0x0800/0),ipv4(frag=no)", "flow mask: unexpected L3 matching with masked Ethertype 0x800/0"),
        ("in_port(1),eth(),eth_type(0x86dd/0xff00),ipv6(frag=no)", "unexpected L3 matching with masked Ethertype 0x86dd/0xff00"),
        ("in_port(1),eth(),eth_type(0x0806/0xfff0),arp(op=1)", "unexpected L3 matching with masked Ethertype 0x806/0xfff0"),
        ("in_port(1),eth(),eth_type(0x0800),ipv4(proto=6/0xf0,frag=no),tcp(dst=80)",
         "flow mask: flow matches on L4 ports but does not define an L4 protocol"),
        ("in_port(1),eth(),eth_type(0x86dd),ipv6(proto=17/0,frag=no),udp(src=53)", "does not define an L4 protocol"),
        ("in_port(1),eth(),eth_type(0x0800),ipv4(proto=1/0xfe,frag=no),icmp(type=8)", "does not define an L4 protocol"),
        ("in_port(1),eth(),eth_type(0x86dd),ipv6(proto=58,frag=no),icmpv6(type=135/0xfe,code=0),nd(target=::1)",
         "ICMP (src,dst) masks should be (0xff,0xff) but are actually (0xfe,0xff)"),
        // The attributes an EtherType or protocol calls for must be there...
        ("in_port(1),eth(),eth_type(0x0806)", "flow key: expected but not present: arp"),
        ("in_port(1),eth(),eth_type(0x8035)", "expected but not present: arp"),
        ("in_port(1),eth(),eth_type(0x0800)", "expected but not present: ipv4"),
        ("in_port(1),eth(),eth_type(0x86dd)", "expected but not present: ipv6"),
        ("in_port(1),eth(),eth_type(0x8847)", "expected but not present: mpls"),
        ("in_port(1),eth(),eth_type(0x0800),ipv4(proto=6,frag=no)", "expected but not present: tcp"),
        ("in_port(1),eth(),eth_type(0x0800),ipv4(proto=132,frag=first)", "expected but not present: sctp"),
        ("in_port(1),eth(),eth_type(0x0800),ipv4(proto=1,frag=no)", "expected but not present: icmp"),
        ("in_port(1),eth(),eth_type(0x86dd),ipv6(proto=58,frag=no),icmpv6(type=136,code=0)", "expected but not present: nd"),
        ("in_port(1),eth(),eth_type(0x8100),vlan(vid=1)", "flow key: expected but not present: encap"),
        // ...and nothing else.
        ("in_port(1),eth(),eth_type(0x0806),arp(),ipv4(frag=no)", "flow key: present but not expected: ipv4"),
        ("in_port(1),eth(),eth_type(0x0800),ipv4(frag=no),tcp()", "present but not expected: tcp"),
        ("in_port(1),eth(),eth_type(0x0800),ipv4(proto=6,frag=later),tcp()", "present but not expected: tcp"),
        ("in_port(1),eth(),eth_type(0x0800),ipv4(proto=17,frag=no),udp(),tcp_flags(syn)", "present but not expected: tcp_flags"),
        ("in_port(1),eth(),eth_type(0x86dd),ipv6(proto=58,frag=no),icmpv6(type=128,code=0),nd(target=::1)", "present but not expected: nd"),
        ("in_port(1),eth(),eth_type(0x1234),encap(eth_type(0x0800))", "present but not expected: encap"),
        ("in_port(1),eth(),eth_type(0x9100),vlan(vid=1),encap(eth_type(0x0800),ipv4(frag=no))", "present but not expected"),
        ("in_port(1),eth(),eth_type(0x88a8),vlan(vid=1),encap(eth_type(0x8100),vlan(vid=2),encap(eth_type(0x0800),ipv4(frag=no)))",
         "present but not expected"),
        // Values the datapath cannot hold.
        ("in_port(1),eth(),eth_type(0x05ff)", "flow key: invalid Ethertype 1535 in flow key"),
        ("in_port(1),eth(),eth_type(0x0806),arp(op=256)", "unsupported ARP opcode 256 in flow key"),
        ("in_port(1),eth(),eth_type(0x8100),vlan(vid=5,cfi=0),encap(eth_type(0x0800),ipv4(frag=no))",
         "OVS_KEY_ATTR_VLAN 0x0005 is nonzero but CFI bit is not set"),
        ("in_port(1),eth(),eth_type(0x8847),mpls(label=1,bos=1,label=2,bos=1)", "MPLS BOS set in non-innermost label"),
        ("in_port(1),eth(),eth_type(0x8847),mpls(label=1,bos=0)", "expected but not present: mpls bottom of stack"),
        ("tunnel(dst=192.0.2.1),in_port(1),eth(),eth_type(0x1234)", "tunnel options missing TTL"),
        ("tunnel(),in_port(1),eth(),eth_type(0x1234)", "tunnel options missing TTL"),
        // Ethernet flows need an EtherType mask; in_port must be exact; no duplicates.
        ("in_port(1),eth()", "flow mask: mask expected for non-Ethernet II frame"),
        ("in_port(1/0xff),eth(),eth_type(0x1234)", "in_port is not an exact match"),
        ("eth(),eth_type(0x1234)", "in_port is not an exact match"),
        ("in_port(1),in_port(2),eth(),eth_type(0x1234)", "duplicate in_port attribute in flow key"),
        ("in_port(1),eth(),eth_type(0x8100),vlan(vid=1),encap(eth_type(0x0800),ipv4(frag=no),ipv4(frag=no))",
         "duplicate ipv4 attribute in flow key"),
    ]

    @Test func refusedKeys() throws {
        for (key, why) in Self.refused {
            let e = try matchError(key)
            #expect(e != nil, "accepted: \(key)")
            guard let e else { continue }
            #expect(e.message.contains(why), "\(key): \(e.message)")
            #expect(e.position == nil, "semantic errors have no position: \(key)")
        }
    }

    /// Near misses of the refusals above: these are fine (OVS 3.1 accepts each).
    @Test func acceptedNearMisses() throws {
        for key in [
            "in_port(1),eth(),eth_type(0x1234/0xff00)",                                  // masked type, no L3
            "in_port(1),eth(),eth_type(0x0800),ipv4(proto=6/0xf0,frag=no),tcp()",          // zero L4 mask
            "in_port(1),eth(),eth_type(0x0800),ipv4(proto=6,frag=later)",                 // later fragment: no L4
            "in_port(1),eth(),eth_type(0x86dd),ipv6(proto=58,frag=no),icmpv6(type=135,code=1)",  // not ND: code 1
            "in_port(1),eth(),eth_type(0x86dd),ipv6(proto=58,frag=no),icmpv6(type=135/0,code=0),nd()",  // zero nd mask
            "in_port(1),eth(),eth_type(0x0600)",                                         // lowest Ethernet II type
            "in_port(1),eth(),eth_type(0x0806),arp(op=255)",
            "in_port(1),eth(),eth_type(0x8100),vlan(vid=0,pcp=0),encap(eth_type(0x0800),ipv4(frag=no))",  // CFI set
            "in_port(1),eth(),eth_type(0x8847),mpls(label=1,bos=0,label=2,bos=0,label=3,bos=0)",          // 3 LSEs, no BOS
            "tunnel(dst=192.0.2.1,ttl=0),in_port(1),eth(),eth_type(0x1234)",
            "in_port(19/0xffffffff),eth(),eth_type(0x1234)",
            "",                                                                          // empty: exact everything
        ] {
            #expect(try matchError(key) == nil, "refused: \(key)")
        }
    }

    // Netlink-level checks that text cannot reach.

    static let inPort = nla(KeyAttr.inPort, le32(1))
    static let inPortMask = nla(KeyAttr.inPort, le32(0xffff_ffff))
    static let eth = nla(KeyAttr.ethernet, [UInt8](repeating: 0, count: 12))

    static func ipv4(frag: UInt8) -> [UInt8] {
        nla(KeyAttr.ipv4, [10, 0, 0, 1, 10, 0, 0, 2, 47, 0, 64, frag])  // GRE: no L4 attribute
    }

    static func put(_ key: [UInt8], _ mask: [UInt8]) -> Result<FlowMatch, ODPError> {
        FlowMatch.fromAttributes(key: key, mask: mask)
    }

    @Test func netlinkBaselineIsAccepted() throws {
        let key = Self.inPort + Self.eth + nla(KeyAttr.ethertype, be16(0x0800)) + Self.ipv4(frag: 0)
        let mask = Self.inPortMask + Self.eth + nla(KeyAttr.ethertype, be16(0xffff)) + nla(KeyAttr.ipv4, [UInt8](repeating: 0, count: 12))
        let m = try Self.put(key, mask).get()
        #expect(m.key[.ipv4Src] == 0x0a00_0001 && m.key[.ipProto] == 47 && m.key[.ipTTL] == 64)
        // An all-zero ipv4 mask: the attribute disappears, as in OVS's dump.
        #expect(ODPText.formatKey(m) == "recirc_id(0),in_port(1),eth(),eth_type(0x0800)")
    }

    @Test func badFragmentTypeInKey() {
        let key = Self.inPort + Self.eth + nla(KeyAttr.ethertype, be16(0x0800)) + Self.ipv4(frag: 3)
        let mask = Self.inPortMask + Self.eth + nla(KeyAttr.ethertype, be16(0xffff))
        guard case .failure(let e) = Self.put(key, mask) else { Issue.record("accepted nw_frag 3"); return }
        #expect(e.message.contains("OVS_KEY_ATTR_IPV4 has invalid nw_frag 0x3"))
    }

    @Test func wrongAttributeLength() {
        let shortEth = nla(KeyAttr.ethernet, [UInt8](repeating: 0, count: 11))
        let key = Self.inPort + shortEth + nla(KeyAttr.ethertype, be16(0x1234))
        guard case .failure(let e) = Self.put(key, Self.inPortMask) else { Issue.record("accepted an 11-byte eth"); return }
        #expect(e.message.contains("attribute eth has length 11 but should have length 12"))
        let badMask = Self.inPortMask + nla(KeyAttr.ethertype, [0xff])
        guard case .failure(let m) = Self.put(Self.inPort + Self.eth + nla(KeyAttr.ethertype, be16(0x1234)), badMask) else {
            Issue.record("accepted a 1-byte eth_type mask"); return
        }
        #expect(m.message.contains("eth_type has length 1 but should have length 2"))
    }

    @Test func truncatedVLANHeaderMayNotCarryAnEncapsulation() {
        // TCI 0 is a truncated 802.1Q header: whatever is inside encap() is too much.
        let key = Self.inPort + Self.eth + nla(KeyAttr.ethertype, be16(0x8100)) + nla(KeyAttr.vlan, be16(0))
            + nla(KeyAttr.encap, nla(KeyAttr.ethertype, be16(0x0800)))
        guard case .failure(let e) = Self.put(key, Self.inPortMask) else { Issue.record("accepted"); return }
        #expect(e.message.contains("present but not expected: encap"))
    }

    @Test func noMaskForANonEthernetIIFrame() {
        // No eth_type: an 802.2 frame. Its EtherType can only be matched exactly.
        let key = Self.inPort + Self.eth
        let mask = Self.inPortMask + Self.eth + nla(KeyAttr.ethertype, be16(0xff00))
        guard case .failure(let e) = Self.put(key, mask) else { Issue.record("accepted"); return }
        #expect(e.message.contains("can't bitwise match non-Ethernet II \"Ethertype\""))
        #expect(e.message.hasSuffix("\"Ethertype\" 0x5ff (with mask 0xff00)"))
        #expect((try? Self.put(key, Self.inPortMask + Self.eth + nla(KeyAttr.ethertype, be16(0xffff))).get()) != nil)
    }

    @Test func trailingGarbageIsRefused() {
        let key = Self.inPort + Self.eth + nla(KeyAttr.ethertype, be16(0x1234)) + [0x08, 0x00]
        #expect((try? Self.put(key, Self.inPortMask).get()) == nil)
    }

    @Test func outOfRangeKeyAttributeIsRefused() {
        // parse_flow_nlattrs() notes a type above OVS_KEY_ATTR_MAX and the key then
        // fits "too much" (the kernel: "Key type 40 is out of range"); either way the
        // flow is refused.
        let key = Self.inPort + Self.eth + nla(KeyAttr.ethertype, be16(0x1234)) + nla(40, le32(7))
        guard case .failure(let e) = Self.put(key, Self.inPortMask) else { Issue.record("accepted"); return }
        #expect(e.message.contains("key type 40 is out of range max \(KeyAttr.max)"))
        // Inside encap() too.
        func vlanKey(_ extra: [UInt8]) -> [UInt8] {
            Self.inPort + Self.eth + nla(KeyAttr.ethertype, be16(0x8100)) + nla(KeyAttr.vlan, be16(0x1001))
                + nla(KeyAttr.encap, nla(KeyAttr.ethertype, be16(0x1234)) + extra)
        }
        #expect((try? Self.put(vlanKey([]), Self.inPortMask).get()) != nil)
        #expect((try? Self.put(vlanKey(nla(40, le32(7))), Self.inPortMask).get()) == nil)
    }
}
