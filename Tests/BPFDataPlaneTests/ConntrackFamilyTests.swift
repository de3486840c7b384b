import BPFDataPlane
import ESwitch
import Glibc
import Packet
import Testing

/// The CT stage (bpf/ct.h) for what ConntrackPipelineTests leaves out: IPv6 connections
/// (port NAT; address NAT stays in software) and UDP with source NAT.
@Suite(.enabled(if: getuid() == 0, "loading BPF programs needs root"))
struct ConntrackFamilyTests {
    typealias T = ConntrackPipelineTests
    static let client6: UInt128 = 0x2001_0db8 << 96 | 1, server6: UInt128 = 0x2001_0db8 << 96 | 2

    /// Ethernet + IPv6 + TCP (20-byte header) with 8 payload bytes, checksum right.
    static func tcp6Frame(sport: UInt16 = 40000, dport: UInt16 = 80, flags: UInt8 = 0x10) -> [UInt8] {
        var f = [UInt8](repeating: 0, count: 14 + 40 + 20 + 8)
        f.withUnsafeMutableBytes { r in
            let p = r.baseAddress!
            p.setBE48(0, 0x02_00_00_00_00_02)
            p.setBE48(6, 0x02_00_00_00_00_01)
            p.setBE16(12, EtherType.ipv6)
            p.setU8(14, 0x60)
            p.setBE16(18, 28)
            p.setU8(20, IPProto.tcp)
            p.setU8(21, 64)
            p.setBE128(22, client6)
            p.setBE128(38, server6)
            p.setBE16(54, sport)
            p.setBE16(56, dport)
            p.setU8(66, 5 << 4)
            p.setU8(67, flags)
            p.setBE16(68, 1024)
            let pseudo = Checksum.pseudoHeaderIPv6(src: client6, dst: server6, proto: IPProto.tcp, length: 28)
            p.setBE16(70, Checksum.compute(p + 54, count: 28, initial: pseudo))
        }
        return f
    }

    static func tcp6ChecksumOK(_ f: [UInt8]) -> Bool {
        f.withUnsafeBytes { r in
            let p = r.baseAddress!
            let pseudo = Checksum.pseudoHeaderIPv6(src: p.be128(22), dst: p.be128(38), proto: IPProto.tcp, length: 28)
            return Checksum.compute(p + 54, count: 28, initial: pseudo) == 0
        }
    }

    /// Pre-ct rule for `ethType`/`proto` on VF0 and a post-ct rule of chain 5 (+trk+est, in_port) out of VF1.
    static func rules(ethType: UInt16, proto: UInt8) -> [DataPlaneRule] {
        var key = FlowKey(), mask = FlowKey()
        for (f, v) in [(FlowField.inPort, UInt64(PortIndex.vf(0))), (.ethType, UInt64(ethType)), (.ipProto, UInt64(proto))] {
            key[f] = v
            mask[f] = f.valueMask
        }
        let pre = DataPlaneRule(table: .masked, key: key, mask: mask, actions: [.conntrack(zone: 1, nat: true), .recirculate(5)],
                                counter: 7)
        key[.recircID] = 5
        mask[.recircID] = FlowField.recircID.valueMask
        key[.ctState] = 0x22
        mask[.ctState] = 0x22
        return [pre, DataPlaneRule(table: .chain, key: key, mask: mask, actions: [.forward(.vf(1))], counter: 11)]
    }

    @Test func anIPv6ConnectionHitsAndItsPortsAreNATed() throws {
        let dp = try PipelineTests.dataPlane()
        for r in Self.rules(ethType: EtherType.ipv6, proto: IPProto.tcp) { try dp.program(r) }
        let orig = ConnectionTuple(zone: 1, proto: IPProto.tcp, isIPv6: true, src: Self.client6, dst: Self.server6,
                                   srcPort: 40000, dstPort: 80)
        let reply = ConnectionTuple(zone: 1, proto: IPProto.tcp, isIPv6: true, src: Self.server6, dst: Self.client6,
                                    srcPort: 80, dstPort: 50000)
        let spec = HardwareConnectionSpec(
            id: 1, original: ConnectionDirection(tuple: orig, state: 0x62, rewrite: ConnectionRewrite(srcPort: 50000)),
            reply: ConnectionDirection(tuple: reply, state: 0x6a, rewrite: ConnectionRewrite(dstPort: 40000)))
        try dp.programConnection(DataPlaneConnection(spec: spec, originalCounter: 20, replyCounter: 21))
        for c: UInt32 in [7, 11, 20, 21] { dp.resetCounter(c) }
        let r = try dp.testRun(frame: Self.tcp6Frame(), ifindex: PipelineTests.lo)
        #expect(r.verdict == PipelineTests.redirect)
        #expect(dp.portCounters(.vf(1)).txPackets == 1)
        r.frame.withUnsafeBytes { b in
            #expect(b.baseAddress!.be16(54) == 50000)
            #expect(b.baseAddress!.be128(22) == Self.client6)
        }
        #expect(Self.tcp6ChecksumOK(r.frame))
        #expect(dp.ruleCounters(20).packets == 1 && dp.ruleCounters(11).packets == 1)
        // Another IPv6 tuple misses, unmodified.
        let other = Self.tcp6Frame(sport: 40001)
        #expect(try dp.testRun(frame: other, ifindex: PipelineTests.lo).frame == other)
        #expect(dp.conntrackStatistics()[.miss] == 1)
    }

    @Test func aUDPConnectionIsSourceNATed() throws {
        let dp = try PipelineTests.dataPlane()
        for r in Self.rules(ethType: EtherType.ipv4, proto: IPProto.udp) { try dp.program(r) }
        let orig = ConnectionTuple(zone: 1, proto: IPProto.udp, isIPv6: false, src: 0xC613_0001, dst: 0xC613_0002,
                                   srcPort: 1234, dstPort: 53)
        let reply = ConnectionTuple(zone: 1, proto: IPProto.udp, isIPv6: false, src: 0xC613_0002, dst: 0xC612_0009,
                                    srcPort: 53, dstPort: 1234)
        let spec = HardwareConnectionSpec(
            id: 2, original: ConnectionDirection(tuple: orig, state: 0x62, rewrite: ConnectionRewrite(src: 0xC612_0009)),
            reply: ConnectionDirection(tuple: reply, state: 0x6a, rewrite: ConnectionRewrite(dst: 0xC613_0001)))
        try dp.programConnection(DataPlaneConnection(spec: spec, originalCounter: 20, replyCounter: 21))
        let r = try dp.testRun(frame: PipelineTests.udpFrame(), ifindex: PipelineTests.lo)
        #expect(r.verdict == PipelineTests.redirect)
        #expect(dp.portCounters(.vf(1)).txPackets == 1)
        r.frame.withUnsafeBytes { b in #expect(b.baseAddress!.be32(26) == 0xC612_0009) }
        #expect(PipelineTests.ipChecksumOK(r.frame, at: 14))
        #expect(PipelineTests.udpChecksumOK(r.frame, l3: 14))
    }

    /// `ct(zone=1,nat),set(eth),output` in one rule (OVS's SNAT egress flow): the
    /// connection's NAT, then the rule's own actions; a new connection goes up unmodified.
    @Test func aCTRuleRunsItsOwnActionsAfterTheHit() throws {
        let dp = try PipelineTests.dataPlane()
        var r = Self.rules(ethType: EtherType.ipv4, proto: IPProto.udp)[0]
        r.actions = [.conntrack(zone: 1, nat: true), .setEthernet(src: 0, srcMask: 0, dst: 0x02_00_00_00_00_99, dstMask: 0xffff_ffff_ffff),
                     .forward(.uplink)]
        try dp.program(r)
        let orig = ConnectionTuple(zone: 1, proto: IPProto.udp, isIPv6: false, src: 0xC613_0001, dst: 0xC613_0002,
                                   srcPort: 1234, dstPort: 53)
        let reply = ConnectionTuple(zone: 1, proto: IPProto.udp, isIPv6: false, src: 0xC613_0002, dst: 0xC612_0009,
                                    srcPort: 53, dstPort: 1234)
        let spec = HardwareConnectionSpec(
            id: 3, original: ConnectionDirection(tuple: orig, state: 0x62, rewrite: ConnectionRewrite(src: 0xC612_0009)),
            reply: ConnectionDirection(tuple: reply, state: 0x6a, rewrite: ConnectionRewrite(dst: 0xC613_0001)))
        let fresh = PipelineTests.udpFrame(sport: 999)
        #expect(try dp.testRun(frame: fresh, ifindex: PipelineTests.lo).frame == fresh)
        try dp.programConnection(DataPlaneConnection(spec: spec, originalCounter: 20, replyCounter: 21))
        dp.resetCounter(7)
        dp.resetCounter(20)
        let out = try dp.testRun(frame: PipelineTests.udpFrame(), ifindex: PipelineTests.lo)
        #expect(out.verdict == PipelineTests.redirect)
        #expect(dp.portCounters(.uplink).txPackets == 1)
        out.frame.withUnsafeBytes { b in
            #expect(b.baseAddress!.be32(26) == 0xC612_0009)
            #expect(b.baseAddress!.be48(0) == 0x02_00_00_00_00_99)
        }
        #expect(PipelineTests.ipChecksumOK(out.frame, at: 14) && PipelineTests.udpChecksumOK(out.frame, l3: 14))
        #expect(dp.ruleCounters(7).packets == 1 && dp.ruleCounters(20).packets == 1)
    }
}
