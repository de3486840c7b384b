import Conntrack
import Logging
import Netlink
import ODP
@testable import OVSDatapath
import Packet
import Testing

/// ct() actions as the datapath takes them: decoded, validated as the kernel does,
/// refused with the errno a user of the kernel datapath would get.
struct ConntrackActionTests {
    static func compile(_ key: String, _ actions: String) throws -> [CompiledAction] {
        let k = try ODPText.parseKey(key)
        guard case .success(let m) = FlowMatch.fromAttributes(key: k.key, mask: k.mask, vlanLimit: ODPConstants.datapathVLANLimit) else {
            throw ODPError(position: nil, "bad key")
        }
        return try ActionCompiler.compile(try ODPAction.decode(try ODPText.parseActions(actions)), for: m)
    }

    static func ct(_ key: String, _ actions: String) throws -> CTAction {
        guard case .conntrack(let a)? = try compile(key, actions).first else { throw ActionError(errno: 0, message: "no ct") }
        return a
    }

    static func refusal(_ key: String, _ actions: String) -> ActionError? {
        do { _ = try compile(key, actions) } catch let e as ActionError { return e } catch {
            Issue.record("not an ActionError: \(error)")
            return nil
        }
        return nil
    }

    let ip4 = "in_port(1),eth(),eth_type(0x0800),ipv4(frag=no)"
    let ip6 = "in_port(1),eth(),eth_type(0x86dd),ipv6(frag=no)"

    @Test func everyOptionReachesTheTracker() throws {
        let a = try Self.ct(ip4, "ct(commit,zone=5,mark=0x3/0xff,label=0x10/0xf0,nat(src=198.19.0.1-198.19.0.9:1000-2000,random)),recirc(1)")
        #expect(a.commit && !a.forceCommit)
        #expect(a.zone == 5)
        #expect(a.markValue == 3 && a.markMask == 0xff)
        #expect(a.labelValue == 0x10 && a.labelMask == 0xf0)
        let nat = try #require(a.nat)
        #expect(nat.kind == .source && nat.random && !nat.hash && !nat.persistent)
        #expect(nat.addresses == CTAddress(ipv4: 0xc613_0001)...CTAddress(ipv4: 0xc613_0009))
        #expect(nat.ports == 1000...2000)
    }

    @Test func aBareCtAndABareNatAreDefaults() throws {
        let a = try Self.ct(ip4, "ct")
        #expect(a == CTAction())
        let b = try Self.ct(ip4, "ct(zone=2,nat)")
        #expect(b.nat == NATSpec(kind: .none))
        #expect(b.zone == 2 && !b.commit)
    }

    @Test func aSingleAddressAndIPv6() throws {
        let a = try Self.ct(ip4, "ct(commit,nat(dst=198.18.0.7))")
        #expect(a.nat?.kind == .destination)
        #expect(a.nat?.addresses == CTAddress(ipv4: 0xc612_0007)...CTAddress(ipv4: 0xc612_0007))
        #expect(a.nat?.ports == nil)
        let b = try Self.ct(ip6, "ct(commit,nat(src=[2001:db8::1]:80))")
        #expect(b.nat?.addresses?.lowerBound == CTAddress(ipv6: 0x2001_0db8_0000_0000_0000_0000_0000_0001))
        #expect(b.nat?.ports == 80...80)
    }

    @Test func refusalsNameTheProblem() {
        let nonIP = Self.refusal("in_port(1),eth(),eth_type(0x0806),arp()", "ct")
        #expect(nonIP?.errno == 22)
        #expect(nonIP?.message.contains("eth_type") == true)
        let helper = Self.refusal(ip4, "ct(commit,helper=ftp)")
        #expect(helper?.errno == 95)
        #expect(helper?.message.contains("helper=ftp") == true)
        #expect(Self.refusal(ip4, "ct(commit,timeout=tp1)")?.errno == 95)
        // An IPv6 NAT address on an IPv4 flow.
        let family = Self.refusal(ip4, "ct(commit,nat(src=2001:db8::1))")
        #expect(family?.errno == 22)
        #expect(family?.message.contains("IPv4 flow") == true)
    }

    /// The kernel's parse_ct/parse_nat: setting ct_mark or ct_labels, and setting up NAT
    /// (src or dst), need commit (force_commit implies it); a bare nat does not.
    @Test func markLabelsAndNATSetupNeedCommit() throws {
        let mark = Self.refusal(ip4, "ct(mark=0x1/0xff)")
        #expect(mark?.errno == 22)
        #expect(mark?.message.contains("commit") == true)
        #expect(Self.refusal(ip4, "ct(zone=3,label=0x1/0xff)")?.errno == 22)
        let nat = Self.refusal(ip4, "ct(nat(src=198.19.0.1))")
        #expect(nat?.errno == 22)
        #expect(nat?.message.contains("commit") == true)
        #expect(Self.refusal(ip4, "ct(nat(dst=198.19.0.1:80))")?.errno == 22)
        #expect(try Self.ct(ip4, "ct(force_commit,mark=0x1/0xff,nat(src=198.19.0.1))").forceCommit)
        #expect(try Self.ct(ip4, "ct(zone=1,nat)").nat == NATSpec(kind: .none))
    }

    /// A UDP/IPv4 frame (IPv4 header checksum set, UDP checksum 0).
    static func udpFrame(src: UInt32, dst: UInt32, sport: UInt16, dport: UInt16) -> [UInt8] {
        func be16(_ v: UInt16) -> [UInt8] { [UInt8(v >> 8), UInt8(v & 0xff)] }
        func be32(_ v: UInt32) -> [UInt8] { be16(UInt16(v >> 16)) + be16(UInt16(v & 0xffff)) }
        var ip: [UInt8] = [0x45, 0, 0, 36, 0, 0, 0, 0, 64, 17, 0, 0] + be32(src) + be32(dst)
        let sum = ip.withUnsafeBytes { Checksum.compute($0.baseAddress!, count: 20) }
        ip[10] = UInt8(sum >> 8); ip[11] = UInt8(sum & 0xff)
        let udp = be16(sport) + be16(dport) + be16(16) + [0, 0] + [UInt8](repeating: 0x61, count: 8)
        return [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00] + ip + udp
    }

    /// Nothing consumes the tracker's offload events in the datapath (no hardware CT
    /// table takes them): they must not pile up, one per connection, for eswd's lifetime.
    @Test func theDatapathKeepsNoOffloadEventsNobodyTakes() throws {
        let d = try Datapath(name: "t@t", eswitch: nil, logger: Logger(label: "test"))
        var commit = CTAction()
        commit.commit = true
        let now: UInt64 = 1_000_000_000
        for i in 0..<50 {
            for (src, dst, sp, dp) in [(0xc612_0001 as UInt32, 0xc612_0102 as UInt32, UInt16(5000 + i), UInt16(53)),
                                       (0xc612_0102, 0xc612_0001, 53, UInt16(5000 + i))] {
                var f = Self.udpFrame(src: src, dst: dst, sport: sp, dport: dp)
                f.withUnsafeMutableBytes { raw in
                    var key = FlowKey()
                    guard case .success(let offsets) = FlowExtractor.extract(raw.baseAddress!, length: raw.count, into: &key) else {
                        Issue.record("frame does not parse")
                        return
                    }
                    d.conntrack.execute(commit, frame: raw.baseAddress!, length: raw.count, offsets: offsets, key: &key, now: now)
                }
            }
        }
        #expect(d.conntrack.connectionCount == 50)
        d.tick(now: now)
        #expect(d.conntrack.takeOffloadEvents().count == 0)
    }

    /// force_commit implies commit (the kernel's parse_ct falls through to commit): a
    /// ct(force_commit) flow commits connections and sets their mark.
    @Test func forceCommitCommits() throws {
        let a = try Self.ct(ip4, "ct(force_commit,mark=0x7/0xff)")
        let tracker = ConnectionTracker()
        var f = Self.udpFrame(src: 0xc612_0001, dst: 0xc612_0102, sport: 5000, dport: 53)
        var key = FlowKey()
        f.withUnsafeMutableBytes { raw in
            guard case .success(let offsets) = FlowExtractor.extract(raw.baseAddress!, length: raw.count, into: &key) else {
                Issue.record("frame does not parse")
                return
            }
            tracker.execute(a, frame: raw.baseAddress!, length: raw.count, offsets: offsets, key: &key, now: 1_000_000_000)
        }
        #expect(tracker.connectionCount == 1)
        #expect(key[.ctMark] == 7)
    }

    /// The text parser refuses reversed ranges itself; netlink input reaches the decoder.
    @Test func rangesThatEndBelowTheirStartAreRefused() throws {
        func nat(_ build: (inout AttributeWriter) -> Void) -> ActionError? {
            var w = AttributeWriter()
            w.nested(ActionAttr.ct) { ct in
                ct.putFlag(CTAttr.commit)
                ct.nested(CTAttr.nat) { n in
                    n.putFlag(NATAttr.src)
                    build(&n)
                }
            }
            let k = try? ODPText.parseKey(ip4)
            guard let k, case .success(let m) = FlowMatch.fromAttributes(key: k.key, mask: k.mask, vlanLimit: 2),
                  let acts = try? ODPAction.decode(w.bytes) else { return nil }
            do { _ = try ActionCompiler.compile(acts, for: m) } catch { return error }
            return nil
        }
        let addresses = nat { n in
            n.put(NATAttr.ipMin, [198, 19, 0, 9])
            n.put(NATAttr.ipMax, [198, 19, 0, 1])
        }
        #expect(addresses?.message.contains("address range") == true)
        let ports = nat { n in
            n.putU16(NATAttr.protoMin, 2000)
            n.putU16(NATAttr.protoMax, 1000)
        }
        #expect(ports?.message.contains("port range") == true)
        let both = nat { n in n.putFlag(NATAttr.dst) }
        #expect(both?.message.contains("only one type") == true)
        #expect(nat { n in n.put(NATAttr.ipMin, [198, 19, 0]) }?.errno == 22)
    }
}
