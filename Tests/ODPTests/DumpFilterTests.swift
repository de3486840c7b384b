import Testing
import Packet
@testable import ODP

/// dump-flows filter=: OVS 3.1's parse_ofp_exact_flow() (what is accepted, with its
/// messages) and dpctl_dump_flows()'s test (filter bits under the flow's own mask).
@Suite struct DumpFilterTests {
    static let ports: [String: UInt32] = ["p0": 2, "vf0rep": 7]

    func filter(_ text: String) throws -> DumpFilter { try DumpFilter(parsing: text, portNames: Self.ports) }

    func reason(_ text: String) -> String? {
        do { _ = try DumpFilter(parsing: text, portNames: Self.ports); return nil } catch { return error.reason }
    }

    /// A flow as the daemon dumps it: ODP text → attributes → decoded match.
    func flow(_ text: String) throws -> FlowMatch { try match(text, vlanLimit: ODPConstants.datapathVLANLimit) }

    @Test func parsesFieldsIntoKeyAndMask() throws {
        var f = try filter("in_port=2,udp,udp_dst=53")
        #expect(f.value[.inPort] == 2 && f.mask[.inPort] == 0xffff)
        #expect(f.value[.ethType] == 0x0800 && f.mask[.ethType] == 0xffff)
        #expect(f.value[.ipProto] == 17 && f.mask[.ipProto] == 0xff)
        #expect(f.value[.tpDst] == 53 && f.mask[.tpDst] == 0xffff && f.mask[.tpSrc] == 0)
        // Port names through the datapath's ports, the key(value) form, spaces as separators.
        f = try filter("in_port(p0) tcp")
        #expect(f.value[.inPort] == 2 && f.value[.ipProto] == 6)
        f = try filter("in_port=\"vf0rep\",ip,nw_src=10.0.0.1/32,nw_dst=10.0.0.2/255.255.255.255")
        #expect(f.value[.inPort] == 7 && f.value[.ipv4Src] == 0x0a00_0001 && f.value[.ipv4Dst] == 0x0a00_0002)
        #expect(try filter("in_port=LOCAL").value[.inPort] == 0xfffe)
        // dl_vlan sets the tag-present bit; the mask covers VID and that bit.
        f = try filter("dl_vlan=5,dl_vlan_pcp=3")
        #expect(f.value[.vlanTCI] == 0x7005 && f.mask[.vlanTCI] == 0xffff)
        #expect(try filter("vlan_vid=0x1005").mask[.vlanTCI] == 0x1fff)
        f = try filter("ip,nw_tos=0x20,nw_ecn=1")
        #expect(f.value[.ipTOS] == 0x21 && f.mask[.ipTOS] == 0xff)
        #expect(try filter("ip,ip_dscp=8").value[.ipTOS] == 0x20)
        f = try filter("icmp,icmp_type=8,icmp_code=0")
        #expect(f.value[.tpSrc] == 8 && f.mask[.tpSrc] == 0xff && f.mask[.tpDst] == 0xff)
        f = try filter("arp,arp_op=2,arp_spa=1.2.3.4,arp_sha=00:11:22:33:44:55")
        #expect(f.value[.ipProto] == 2 && f.value[.ipv4Src] == 0x0102_0304 && f.value[.arpSHA] == 0x0011_2233_4455)
        #expect(try filter("ipv6,ipv6_src=2001:db8::1").value[.ipv6Src] == (UInt128(0x2001_0db8) << 96 | 1))
        #expect(try filter("ip,ip_frag=later").value[.ipFrag] == UInt64(FragmentType.later.rawValue))
        f = try filter("tun_id=0x2a,tun_dst=198.18.0.2,recirc_id=3,dp_hash=0x10,pkt_mark=9,skb_priority=1")
        #expect(f.value[.tunnelID] == 42 && f.value[.tunnelIPv4Dst] == 0xc612_0002 && f.value[.recircID] == 3)
        f = try filter("ct_state=trk|est,ct_zone=5,ct_mark=0x1")
        #expect(f.value[.ctState] == 0x22 && f.mask[.ctState] == 0xff && f.value[.ctZone] == 5)
        #expect(try filter("tcp,tcp_flags=syn|ack").value[.tcpFlags] == 0x12)
        // A field set to 0 is not "set" (mf_is_set), so it may be given again.
        #expect(try filter("tcp,tp_dst=0,tp_dst=80").value[.tpDst] == 80)
    }

    @Test func refusesWithOVSMessages() {
        let cases: [(String, String)] = [
            // tp_src/tp_dst are tcp_src/tcp_dst's aliases in OVS: they need tcp.
            ("udp,tp_dst=53", "udp,tp_dst=53: prerequisites not met for setting tp_dst"),
            ("tp_dst=53", "tp_dst=53: prerequisites not met for setting tp_dst"),
            ("udp_dst=53,udp", "udp_dst=53,udp: prerequisites not met for setting udp_dst"),
            ("ip,icmp_type=8", "ip,icmp_type=8: prerequisites not met for setting icmp_type"),
            ("vlan_pcp=3", "vlan_pcp=3: prerequisites not met for setting vlan_pcp"),
            ("tcp,ip_frag=later,tcp_dst=80", "tcp,ip_frag=later,tcp_dst=80: prerequisites not met for setting tcp_dst"),
            ("foo=1", "foo=1: unknown field foo"),
            ("ip,tcp", "ip,tcp: Ethernet type set multiple times"),
            ("dl_type=0x0800,udp", "dl_type=0x0800,udp: Ethernet type set multiple times"),
            ("ip,nw_src=1.1.1.1,ip_src=1.1.1.2", "ip,nw_src=1.1.1.1,ip_src=1.1.1.2: field ip_src set multiple times"),
            ("in_port=1,in_port=2", "in_port=1,in_port=2: field in_port set multiple times"),
            ("ip,nw_src=1.2.3", "ip,nw_src=1.2.3: bad value for nw_src (1.2.3: invalid IP address)"),
            ("ip,nw_src=10.0.0.0/24", "ip,nw_src=10.0.0.0/24: bad value for nw_src (10.0.0.0/24: wildcards not allowed here)"),
            ("ip,nw_src=10.0.0.0/33",
             "ip,nw_src=10.0.0.0/33: bad value for nw_src (10.0.0.0/33: IPv4 network prefix bits not between 0 and 32, inclusive)"),
            ("in_port=nosuch", "in_port=nosuch: bad value for in_port (nosuch: invalid or unknown port for in_port)"),
            ("tcp,tp_dst=70000", "tcp,tp_dst=70000: bad value for tp_dst (70000: value too large for 2-byte field tcp_dst)"),
            ("tcp,tp_dst=http", "tcp,tp_dst=http: bad value for tp_dst (http: bad syntax for tcp_dst value)"),
            ("tcp,tp_dst=*", "tcp,tp_dst=*: bad value for tp_dst (*: wildcards not allowed here)"),
            ("dl_type=0x0800/0xff00", "dl_type=0x0800/0xff00: bad value for dl_type (0x0800/0xff00: invalid mask for field eth_type)"),
            ("dl_src=00:11:22:33:44", "dl_src=00:11:22:33:44: bad value for dl_src (00:11:22:33:44: invalid Ethernet address)"),
            ("ct_state=+trk", "ct_state=+trk: bad value for ct_state (+trk: wildcards not allowed here)"),
            ("ct_state=trk|bogus", "ct_state=trk|bogus: bad value for ct_state (trk|bogus: unknown ct_state flag(s))"),
            ("ip,ip_frag=yes", "ip,ip_frag=yes: bad value for ip_frag (yes: wildcards not allowed here)"),
            ("reg0=1", "reg0=1: field reg0 is not in esw's datapath flow key"),
            ("tun_flags=oam", "tun_flags=oam: field tun_flags is not supported by esw's dump-flows filter"),
        ]
        for (text, expected) in cases {
            #expect(reason(text) == expected, "\(text)")
        }
        do { _ = try DumpFilter(parsing: "foo=1"); Issue.record("parsed") } catch {
            #expect(error.description == "Failed to parse filter (foo=1: unknown field foo)")
        }
    }

    @Test func matchesUnderTheFlowsMask() throws {
        let udp53 = try flow("in_port(2),eth(src=00:00:00:00:00:01,dst=00:00:00:00:00:02),eth_type(0x0800),ipv4(src=10.0.0.1,dst=10.0.0.2,proto=17,tos=0,ttl=64,frag=no),udp(src=1000,dst=53)")
        #expect(try filter("udp,udp_dst=53").passes(udp53))
        #expect(try filter("in_port=p0,udp,udp_dst=53").passes(udp53))
        #expect(try !filter("udp,udp_dst=54").passes(udp53))
        #expect(try !filter("tcp").passes(udp53))
        #expect(try !filter("in_port=vf0rep").passes(udp53))
        #expect(try !filter("ipv6").passes(udp53))
        #expect(try filter("").passes(udp53))
        // A field the flow wildcards never excludes it.
        let anyPort = try flow("in_port(2),eth(),eth_type(0x0800),ipv4(proto=17,frag=no),udp(src=0/0,dst=0/0)")
        #expect(try filter("udp,udp_dst=53").passes(anyPort))
        #expect(try filter("udp,udp_dst=54,nw_src=9.9.9.9").passes(anyPort))
        #expect(try !filter("tcp,tp_dst=53").passes(anyPort))
        let wildIP = try flow("in_port(2),eth(),eth_type(0x0800),ipv4(src=10.0.0.0/255.0.0.0,proto=17,frag=no),udp(src=0/0,dst=0/0)")
        #expect(try filter("ip,nw_src=10.9.9.9").passes(wildIP))
        #expect(try !filter("ip,nw_src=11.0.0.1").passes(wildIP))
        // in_port=0 is OFPP_NONE to parse_ofp_exact_flow: it does not select port 0.
        let port0 = try flow("in_port(0),eth(),eth_type(0x0800),ipv4(proto=17,frag=no),udp(src=0/0,dst=0/0)")
        #expect(try !filter("in_port=0").passes(port0))
        #expect(try filter("in_port=65535").passes(port0) == false)
    }

    @Test func vlanFragAndICMP() throws {
        let tagged = try flow("in_port(2),eth(),eth_type(0x8100),vlan(vid=5,pcp=0),encap(eth_type(0x0800),ipv4(proto=1,frag=no),icmp(type=8,code=0))")
        let untagged = try flow("in_port(2),eth(),eth_type(0x0800),ipv4(proto=1,frag=no),icmp(type=8,code=0)")
        #expect(try filter("dl_vlan=5").passes(tagged))
        #expect(try !filter("dl_vlan=6").passes(tagged))
        #expect(try !filter("dl_vlan=5").passes(untagged))
        #expect(try filter("icmp,icmp_type=8,icmp_code=0").passes(untagged))
        #expect(try !filter("icmp,icmp_type=0").passes(untagged))
        let later = try flow("in_port(2),eth(),eth_type(0x0800),ipv4(proto=17,frag=later)")
        #expect(try filter("ip,ip_frag=later").passes(later))
        #expect(try !filter("ip,ip_frag=first").passes(later))
        #expect(try !filter("ip,ip_frag=no").passes(later))
    }

    @Test func attributesThatDoNotDecodeDoNotPass() throws {
        let p = try ODPText.parseKey("in_port(2),eth(),eth_type(0x0800),ipv4(proto=17,frag=no),udp(dst=53)")
        #expect(try filter("udp,udp_dst=53").passes(key: p.key[...], mask: p.mask[...]))
        #expect(try !filter("udp,udp_dst=53").passes(key: [1, 2, 3], mask: []))
    }
}
