import Conntrack
import ESwitch
import Foundation
import NetLinux
import ODP
@testable import OVSDatapath
import Packet
import Testing

/// CT offload in the datapath against the in-memory data plane: which ct/recirc flows
/// become pre-ct and post-ct rules, and the wiring from the tracker's events to the
/// eSwitch's CT table and back (counters, hand-back, removal).
struct ConntrackOffloadTests {
    typealias P = OffloadPathTests

    /// P.put with the decoder's own message when the key does not decode.
    static func put(_ d: Datapath, _ key: String, _ actions: String) throws -> DatapathFlow {
        let k = try ODPText.parseKey(key)
        let m = try FlowMatch.fromAttributes(key: k.key, mask: k.mask, vlanLimit: ODPConstants.datapathVLANLimit).get()
        return try d.putFlow(match: m, ufid: nil, actions: try ODPText.parseActions(actions), options: Datapath.PutOptions())
    }

    static let preCT = "recirc_id(0),in_port(1),ct_state(-trk),eth(),eth_type(0x0800),ipv4(proto=6,frag=no),tcp()"
    static let postCT = "recirc_id(0x5),in_port(1),ct_state(+est+trk),ct_zone(0x1),eth(),eth_type(0x0800),ipv4(frag=no)"

    @Test func preCTAndPostCTFlowsBecomeRulesInTheirTables() throws {
        let (d, sw, dp) = try P.datapath()
        let pre = try Self.put(d, Self.preCT, "ct(zone=1,nat),recirc(5)")
        #expect(d.offloadStatus(of: pre) == .offloaded)
        let preRule = try #require(dp.rules.first { $0.table == .masked })
        #expect(preRule.actions == [.conntrack(zone: 1, nat: true), .recirculate(5)])
        let post = try Self.put(d, Self.postCT, "2")
        #expect(d.offloadStatus(of: post) == .offloaded)
        let postRule = try #require(dp.rules.first { $0.table == .chain })
        #expect(postRule.key[.recircID] == 5 && postRule.mask[.ctState] == 0x22 && postRule.key[.ctZone] == 1)
        #expect(postRule.actions == [.forward(.vf(1))])
        // A commit of an established connection changes nothing: still a lookup.
        let commit = try Self.put(d, "recirc_id(0),in_port(2),ct_state(-trk),eth(),eth_type(0x0800),ipv4(proto=6,frag=no),tcp()",
                               "ct(commit,zone=1),recirc(6)")
        #expect(d.offloadStatus(of: commit) == .offloaded)
        #expect(sw.tables.maskedPool.occupancy == 3)
    }

    @Test func whatTheHardwareCannotRunStaysInSoftwareWithAReason() throws {
        let (d, _, dp) = try P.datapath()
        d.setPartialOffload(false)
        let cases: [(String, String, String)] = [
            ("recirc_id(0x5),in_port(1),ct_state(+new+trk),eth(),eth_type(0x0800),ipv4(frag=no)", "2,recirc(6)",
             "actions before recirc"),
            (Self.preCT, "ct(commit,zone=1,mark=0x1/0xff),recirc(5)", "ct setting ct_mark or ct_label"),
            (Self.preCT.replacingOccurrences(of: "in_port(1)", with: "in_port(2)"), "set(ipv4(ttl=9)),ct(zone=1),recirc(5)",
             "actions before ct (the hardware looks the frame up unmodified)"),
            ("recirc_id(0),in_port(1),ct_state(+trk),eth(),eth_type(0x0800),ipv4(frag=no)", "2",
             "ct_state of a tracked frame at recirc_id 0"),
        ]
        for (key, actions, why) in cases {
            let f = try Self.put(d, key, actions)
            guard case .software(let reason) = f.offload else { Issue.record("\(actions) offloaded"); continue }
            #expect(reason.contains(why), "\(reason)")
        }
        #expect(dp.rules.isEmpty)
    }

    // MARK: The tracker and the CT table

    /// Ethernet + IPv4 + TCP from 198.18.0.1:40000 to 198.18.0.2:80 (or back).
    static func tcp(reply: Bool = false, sport: UInt16 = 40000, flags: UInt8, seq: UInt32, ack: UInt32) -> [UInt8] {
        let (sp, dpt): (UInt16, UInt16) = reply ? (80, sport) : (sport, 80)
        return TestFrames.ipv4(proto: IPProto.tcp, l4Length: 20, reply: reply) { p, src, dst in
            p.setBE16(34, sp)
            p.setBE16(36, dpt)
            p.setBE32(38, seq)
            p.setBE32(42, ack)
            p.setU8(46, 5 << 4)
            p.setU8(47, flags)
            p.setBE16(48, 65535)
            let pseudo = Checksum.pseudoHeaderIPv4(src: src, dst: dst, proto: IPProto.tcp, length: 20)
            p.setBE16(50, Checksum.compute(p + 34, count: 20, initial: pseudo))
        }
    }

    static func track(_ d: Datapath, _ frame: [UInt8], commit: Bool, now: UInt64) {
        var f = frame
        var key = FlowKey()
        f.withUnsafeMutableBytes { r in
            guard case .success(let o) = FlowExtractor.extract(r.baseAddress!, length: r.count, into: &key) else { return }
            var ct = CTAction()
            ct.zone = 1
            ct.commit = commit
            d.conntrack.execute(ct, frame: r.baseAddress!, length: r.count, offsets: o, key: &key, now: now)
        }
    }

    /// A handshake through the tracker: the connection is reported established.
    static func handshake(_ d: Datapath, sport: UInt16 = 40000, now: UInt64) {
        track(d, tcp(sport: sport, flags: 0x02, seq: 100, ack: 0), commit: true, now: now)
        track(d, tcp(reply: true, sport: sport, flags: 0x12, seq: 500, ack: 101), commit: true, now: now)
        track(d, tcp(sport: sport, flags: 0x10, seq: 101, ack: 501), commit: true, now: now)
    }

    @Test func anEstablishedConnectionIsOffloadedAndComesBackOnAFIN() throws {
        let (d, sw, dp) = try P.datapath()
        _ = try Self.put(d, Self.preCT, "ct(zone=1),recirc(5)")
        let now = Sys.monotonicNanoseconds()
        Self.handshake(d, now: now)
        d.tick(now: now)
        let c = try #require(dp.connections.values.first)
        #expect(c.spec.original.tuple == ConnectionTuple(zone: 1, proto: IPProto.tcp, isIPv6: false, src: 0xC612_0001,
                                                          dst: 0xC612_0002, srcPort: 40000, dstPort: 80))
        #expect(c.spec.original.state == 0x22 && c.spec.reply.state == 0x2a)
        #expect(c.spec.original.rewrite.isEmpty)
        #expect(d.conntrack.entries(zone: nil, now: now).first?.offloaded == true)
        // Hardware packets keep it alive in the tracker.
        dp.counters[c.originalCounter] = RuleCounters(packets: 10, bytes: 1000, lastUsedNanoseconds: now)
        d.pollHardwareCounters()
        #expect((d.conntrack.entries(zone: nil, now: now).first?.packets.orig ?? 0) >= 10)
        // A FIN hit the entry: the connection leaves the hardware and software tracks it.
        dp.handedBack.insert(c.spec.id)
        d.pollHardwareCounters()
        #expect(dp.connections.isEmpty && sw.tables.ctPool.occupancy == 0)
        #expect(d.conntrack.entries(zone: nil, now: now).first?.offloaded == false)
        #expect(d.conntrackOffload?.statistics.handedBack == 1)
    }

    @Test func aFullCTTableKeepsTheConnectionInSoftwareAndAFlushEmptiesIt() throws {
        var profile = HardwareProfile()
        profile.ctEntries = 2
        let (d, sw, dp) = try P.datapath(profile: profile)
        _ = try Self.put(d, Self.preCT, "ct(zone=1),recirc(5)")
        let now = Sys.monotonicNanoseconds()
        Self.handshake(d, now: now)
        Self.handshake(d, sport: 40001, now: now)
        d.tick(now: now)
        #expect(dp.connections.count == 1)
        #expect(d.conntrackOffload?.statistics == .init(offloaded: 1, refused: 1))
        #expect(d.conntrackOffload?.lastRefusal == .noSpace(table: "ct"))
        #expect(sw.connections.refusals.full == 1)
        #expect(d.conntrack.entries(zone: nil, now: now).filter(\.offloaded).count == 1)
        _ = d.conntrack.flush(zone: nil, tuple: nil)
        d.tick(now: now)
        #expect(dp.connections.isEmpty && sw.tables.ctPool.occupancy == 0 && sw.tables.counterPool.occupancy == 1)
        #expect(d.conntrackOffload?.statistics.removed == 1)
    }

    static func text(_ n: TraceNode) -> String {
        switch n {
        case .text(let t): t
        case .number(let v): "\(v)"
        case .flag(let b): "\(b)"
        case .record(let fields): fields.map { "\($0.0)=\(text($0.1))" }.joined(separator: " ")
        case .list(let l): l.map(text).joined(separator: " | ")
        }
    }

    @Test func aTraceShowsTheCTAndChainStepsOrWhyTheFrameGoesUp() throws {
        let (d, _, _) = try P.datapath()
        let now = Sys.monotonicNanoseconds()
        _ = try Self.put(d, Self.preCT, "ct(zone=1),recirc(5)")
        _ = try Self.put(d, Self.postCT, "2")
        Self.handshake(d, now: now)
        d.tick(now: now)
        let port = try #require(d.port(named: "pf0vf0"))
        let hit = Self.text(try d.trace(frame: Self.tcp(flags: 0x10, seq: 101, ack: 501), ingress: .vport(port), tunnel: nil))
        #expect(hit.contains("ct(zone=1): connection"), "\(hit)")
        #expect(hit.contains("parser=chain 0x5") && hit.contains("table=chain"))
        #expect(hit.contains("forward to eSwitch port 2"))
        let fresh = Self.text(try d.trace(frame: Self.tcp(sport: 41000, flags: 0x02, seq: 1, ack: 0), ingress: .vport(port), tunnel: nil))
        #expect(fresh.contains("no CT entry (a new connection, or one the hardware does not hold): up the representor unmodified"))
        let fin = Self.text(try d.trace(frame: Self.tcp(flags: 0x11, seq: 101, ack: 501), ingress: .vport(port), tunnel: nil))
        #expect(fin.contains("hit by a FIN or RST"))
    }

    /// A ct() without nat on a source-NATed connection: as bpf/ct.h (and OVS), the trace
    /// neither rewrites nor sets +snat, so a post-ct rule matching -snat is hit.
    @Test func aTraceOfALookupWithoutNATLeavesOutTheNATBits() throws {
        let (d, sw, _) = try P.datapath()
        _ = try Self.put(d, Self.preCT, "ct(zone=1),recirc(5)")
        _ = try Self.put(d, Self.postCT.replacingOccurrences(of: "+est+trk", with: "+est+trk-snat"), "2")
        let orig = ConnectionTuple(zone: 1, proto: IPProto.tcp, isIPv6: false, src: 0xC612_0001, dst: 0xC612_0002,
                                   srcPort: 40000, dstPort: 80)
        let rep = ConnectionTuple(zone: 1, proto: IPProto.tcp, isIPv6: false, src: 0xC612_0002, dst: 0xC612_0063,
                                  srcPort: 80, dstPort: 40000)
        _ = try sw.connections.add(HardwareConnectionSpec(
            id: 1, original: ConnectionDirection(tuple: orig, state: 0x62, rewrite: ConnectionRewrite(src: 0xC612_0063)),
            reply: ConnectionDirection(tuple: rep, state: 0xaa, rewrite: ConnectionRewrite(dst: 0xC612_0001)))).get()
        let port = try #require(d.port(named: "pf0vf0"))
        let t = Self.text(try d.trace(frame: Self.tcp(flags: 0x10, seq: 101, ack: 501), ingress: .vport(port), tunnel: nil))
        #expect(t.contains("ct(zone=1): connection 1 (original direction), ct_state=0x22"), "\(t)")
        #expect(!t.contains("NAT to"))
        #expect(t.contains("forward to eSwitch port 2"), "\(t)")
    }

    /// The FIN the hardware sends up reaches the tracker before the driver's poll has
    /// read the hand-back flag: the sequence numbers moved on in hardware meanwhile.
    @Test func aFINTheHardwareSentUpIsNotInvalidBeforeTheHandBackIsRead() throws {
        let (d, _, dp) = try P.datapath()
        _ = try Self.put(d, Self.preCT, "ct(zone=1),recirc(5)")
        let now = Sys.monotonicNanoseconds()
        Self.handshake(d, now: now)
        d.tick(now: now)
        #expect(dp.connections.count == 1)
        var f = Self.tcp(flags: 0x11, seq: 101 + 5_000_000, ack: 501 + 3_000_000)
        var key = FlowKey()
        f.withUnsafeMutableBytes { r in
            guard case .success(let o) = FlowExtractor.extract(r.baseAddress!, length: r.count, into: &key) else { return }
            var ct = CTAction()
            ct.zone = 1
            d.conntrack.execute(ct, frame: r.baseAddress!, length: r.count, offsets: o, key: &key, now: now)
        }
        #expect(CTState(rawValue: UInt8(truncatingIfNeeded: key[.ctState])) == [.tracked, .established])
    }

    /// A short connection closes in software before the tick that would offload it: it
    /// never reaches the hardware, where a packet reusing its tuple would pass as established.
    @Test func aConnectionClosedBeforeTheTickIsNotOffloadedAndOneClosedAfterIsRemoved() throws {
        let (d, _, dp) = try P.datapath()
        _ = try Self.put(d, Self.preCT, "ct(zone=1),recirc(5)")
        let now = Sys.monotonicNanoseconds()
        Self.handshake(d, now: now)
        Self.track(d, Self.tcp(flags: 0x11, seq: 101, ack: 501), commit: true, now: now)
        d.tick(now: now)
        #expect(dp.connections.isEmpty)
        #expect(d.conntrackOffload?.statistics.offloaded == 0)
        // Established, offloaded, then a FIN software sees (its post-ct rule is not in hardware).
        Self.handshake(d, sport: 40002, now: now)
        d.tick(now: now)
        #expect(dp.connections.count == 1)
        Self.track(d, Self.tcp(sport: 40002, flags: 0x11, seq: 101, ack: 501), commit: true, now: now)
        d.tick(now: now)
        #expect(dp.connections.isEmpty)
        #expect(d.conntrackOffload?.statistics.removed == 1)
        #expect(d.conntrack.entries(zone: nil, now: now).allSatisfy { !$0.offloaded })
    }

    /// Without a ct rule of its zone in hardware a connection's packets all go through
    /// software: it stays there (and keeps its window checks).
    @Test func aConnectionOfAZoneNoHardwareRuleUsesStaysInSoftware() throws {
        let (d, sw, dp) = try P.datapath()
        let now = Sys.monotonicNanoseconds()
        Self.handshake(d, now: now)
        d.tick(now: now)
        #expect(dp.connections.isEmpty)
        #expect(d.conntrackOffload?.lastRefusal == .unsupportedAction("no ct rule of zone 1 in hardware"))
        #expect(sw.connections.refusals.noRule == 1)
        #expect(d.conntrack.entries(zone: nil, now: now).allSatisfy { !$0.offloaded })
    }

    @Test func underSkipHWNothingIsOffloadedAndTheEventsDoNotPileUp() throws {
        let (d, _, dp) = try P.datapath(policy: .skipHW)
        let now = Sys.monotonicNanoseconds()
        Self.handshake(d, now: now)
        d.tick(now: now)
        #expect(dp.connections.isEmpty)
        #expect(d.conntrack.takeOffloadEvents().isEmpty)
    }

    /// `ct(zone=1,nat),2` in one rule: the hardware looks the connection up and runs the
    /// rule's own output; trace shows both.
    @Test func aCTRuleWithItsOwnActionsIsOffloadedAndTraced() throws {
        let (d, _, dp) = try P.datapath()
        let f = try Self.put(d, Self.preCT, "ct(zone=1,nat),2")
        #expect(d.offloadStatus(of: f) == .offloaded)
        #expect(dp.rules.first?.actions == [.conntrack(zone: 1, nat: true), .forward(.vf(1))])
        let now = Sys.monotonicNanoseconds()
        Self.handshake(d, now: now)
        d.tick(now: now)
        #expect(dp.connections.count == 1)
        let port = try #require(d.port(named: "pf0vf0"))
        let t = Self.text(try d.trace(frame: Self.tcp(flags: 0x10, seq: 101, ack: 501), ingress: .vport(port), tunnel: nil))
        #expect(t.contains("ct(zone=1,nat): connection"), "\(t)")
        #expect(t.contains("forward to eSwitch port 2"))
        #expect(!t.contains("chain 0x"))
    }
}
