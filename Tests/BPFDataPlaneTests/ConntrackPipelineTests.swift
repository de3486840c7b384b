import BPFDataPlane
import ESwitch
import Glibc
import Packet
import Testing

/// Connection tracking in the eBPF pipeline (bpf/ct.h) under BPF_PROG_TEST_RUN: a
/// pre-ct rule `ct(zone=1,nat),recirc(5)` on VF0, the post-ct rule in chain 5, and a
/// source-NATed TCP connection 198.18.0.1:40000 → 198.18.0.2:80 (as 198.19.0.1:50000).
@Suite(.enabled(if: getuid() == 0, "loading BPF programs needs root"))
struct ConntrackPipelineTests {
    static let lo = PipelineTests.lo, redirect = PipelineTests.redirect
    static let client: UInt32 = 0xC612_0001, server: UInt32 = 0xC612_0002, natAddress: UInt32 = 0xC613_0001
    static let preCounter: UInt32 = 7, postCounter: UInt32 = 11, replyCounter: UInt32 = 12
    static let connectionCounter: UInt32 = 20, connectionReplyCounter: UInt32 = 21
    static let trackedEstablished: UInt64 = 0x22, reply: UInt8 = 0x08, snat: UInt8 = 0x40

    /// Ethernet + IPv4 + TCP (20-byte header) with `payload` bytes, checksums right.
    static func tcpFrame(src: UInt32 = client, dst: UInt32 = server, sport: UInt16 = 40000, dport: UInt16 = 80,
                         flags: UInt8 = 0x10, payload: Int = 10) -> [UInt8] {
        var f = [UInt8](repeating: 0, count: 14 + 20 + 20 + payload)
        f.withUnsafeMutableBytes { r in
            let p = r.baseAddress!
            p.setBE48(0, 0x02_00_00_00_00_02)
            p.setBE48(6, 0x02_00_00_00_00_01)
            p.setBE16(12, EtherType.ipv4)
            p.setU8(14, 0x45)
            p.setBE16(16, UInt16(20 + 20 + payload))
            p.setU8(22, 64)
            p.setU8(23, IPProto.tcp)
            p.setBE32(26, src)
            p.setBE32(30, dst)
            p.setBE16(24, Checksum.compute(p + 14, count: 20))
            p.setBE16(34, sport)
            p.setBE16(36, dport)
            p.setBE32(38, 1000)
            p.setU8(46, 5 << 4)
            p.setU8(47, flags)
            p.setBE16(48, 1024)
            for i in 0..<payload { p.setU8(54 + i, UInt8(truncatingIfNeeded: i)) }
            let pseudo = Checksum.pseudoHeaderIPv4(src: src, dst: dst, proto: IPProto.tcp, length: 20 + payload)
            p.setBE16(50, Checksum.compute(p + 34, count: 20 + payload, initial: pseudo))
        }
        return f
    }

    static func tcpChecksumOK(_ f: [UInt8]) -> Bool {
        f.withUnsafeBytes { r in
            let p = r.baseAddress!
            let len = Int(p.be16(16)) - 20
            let pseudo = Checksum.pseudoHeaderIPv4(src: p.be32(26), dst: p.be32(30), proto: IPProto.tcp, length: len)
            return Checksum.compute(p + 34, count: len, initial: pseudo) == 0
        }
    }

    /// The pre-ct rule of a port: in_port, eth_type, ip_proto exact.
    static func preCT(inPort: PortIndex, zone: UInt16 = 1, recirc: UInt32 = 5, counter: UInt32) -> DataPlaneRule {
        var key = FlowKey(), mask = FlowKey()
        for (f, v) in [(FlowField.inPort, UInt64(inPort)), (.ethType, UInt64(EtherType.ipv4)), (.ipProto, UInt64(IPProto.tcp))] {
            key[f] = v
            mask[f] = f.valueMask
        }
        return DataPlaneRule(table: .masked, key: key, mask: mask, actions: [.conntrack(zone: zone, nat: true), .recirculate(recirc)],
                             counter: counter)
    }

    /// A post-ct rule of chain `recirc`: +trk+est (and `rpl` as given), the NATed
    /// source or destination, out of `to`.
    static func postCT(inPort: PortIndex, recirc: UInt32 = 5, reply: Bool, field: FlowField, address: UInt32,
                       to: PortIndex, counter: UInt32) -> DataPlaneRule {
        var key = FlowKey(), mask = FlowKey()
        for (f, v) in [(FlowField.inPort, UInt64(inPort)), (.ethType, UInt64(EtherType.ipv4)), (field, UInt64(address)),
                       (.recircID, UInt64(recirc))] {
            key[f] = v
            mask[f] = f.valueMask
        }
        key[.ctState] = trackedEstablished | (reply ? UInt64(Self.reply) : 0)
        mask[.ctState] = 0x2a   // +trk+est, ±rpl
        key[.ctZone] = 1
        mask[.ctZone] = FlowField.ctZone.valueMask
        return DataPlaneRule(table: .chain, key: key, mask: mask, actions: [.forward(to)], counter: counter)
    }

    static func connection() -> DataPlaneConnection {
        let orig = ConnectionTuple(zone: 1, proto: IPProto.tcp, isIPv6: false, src: UInt128(client), dst: UInt128(server),
                                   srcPort: 40000, dstPort: 80)
        let rep = ConnectionTuple(zone: 1, proto: IPProto.tcp, isIPv6: false, src: UInt128(server), dst: UInt128(natAddress),
                                  srcPort: 80, dstPort: 50000)
        let spec = HardwareConnectionSpec(
            id: 1,
            original: ConnectionDirection(tuple: orig, state: UInt8(trackedEstablished) | snat,
                                          rewrite: ConnectionRewrite(src: UInt128(natAddress), srcPort: 50000)),
            reply: ConnectionDirection(tuple: rep, state: UInt8(trackedEstablished) | reply | snat,
                                       rewrite: ConnectionRewrite(dst: UInt128(client), dstPort: 40000)),
            mark: 3, label: 0)
        return DataPlaneConnection(spec: spec, originalCounter: connectionCounter, replyCounter: connectionReplyCounter)
    }

    /// VF0 is `lo` (the client's side); VF1 (the server's side) is a fake ifindex.
    static func dataPlane(ingress: PortIndex = .vf(0), withConnection: Bool = true) throws -> BPFDataPlane {
        let dp = try PipelineTests.dataPlane(ingress: ingress)
        try dp.program(Self.preCT(inPort: .vf(0), counter: preCounter))
        try dp.program(Self.preCT(inPort: .vf(1), counter: preCounter + 1))
        try dp.program(Self.postCT(inPort: .vf(0), reply: false, field: .ipv4Src, address: natAddress, to: .vf(1), counter: postCounter))
        try dp.program(Self.postCT(inPort: .vf(1), reply: true, field: .ipv4Dst, address: client, to: .vf(0), counter: replyCounter))
        for c in [preCounter, preCounter + 1, postCounter, replyCounter, connectionCounter, connectionReplyCounter] { dp.resetCounter(c) }
        if withConnection { try dp.programConnection(Self.connection()) }
        return dp
    }

    @Test func anEstablishedPacketIsNATedAndForwardedByThePostCTRule() throws {
        let dp = try Self.dataPlane()
        let frame = Self.tcpFrame()
        let r = try dp.testRun(frame: frame, ifindex: Self.lo)
        #expect(r.verdict == Self.redirect)
        #expect(dp.portCounters(.vf(1)).txPackets == 1)
        #expect(dp.portCounters(.vf(0)).toRepresentor == 0)
        r.frame.withUnsafeBytes { b in
            let p = b.baseAddress!
            #expect(p.be32(26) == Self.natAddress)
            #expect(p.be16(34) == 50000)
            #expect(p.be32(30) == Self.server && p.be16(36) == 80)
        }
        #expect(PipelineTests.ipChecksumOK(r.frame, at: 14))
        #expect(Self.tcpChecksumOK(r.frame))
        // The pre-ct rule, the post-ct rule and the connection each count the packet: the
        // rules the frame, as flows count; the connection from the IP header on, as the
        // kernel's conntrack and esw's software tracker count (dump-conntrack -s adds the
        // two up).
        for c in [Self.preCounter, Self.postCounter, Self.connectionCounter] {
            #expect(dp.ruleCounters(c).packets == 1, "counter \(c)")
        }
        #expect(dp.ruleCounters(Self.preCounter).bytes == UInt64(frame.count))
        #expect(dp.ruleCounters(Self.postCounter).bytes == UInt64(frame.count))
        #expect(dp.ruleCounters(Self.connectionCounter).bytes == UInt64(frame.count - 14))
        #expect(dp.ruleCounters(Self.connectionCounter).lastUsedNanoseconds > 0)
        #expect(dp.conntrackStatistics()[.hit] == 1)
        #expect(!dp.connectionHandedBack(Self.connection()))
    }

    @Test func aReplyIsDeNATedByTheReplyDirection() throws {
        let dp = try Self.dataPlane(ingress: .vf(1))
        let frame = Self.tcpFrame(src: Self.server, dst: Self.natAddress, sport: 80, dport: 50000)
        let r = try dp.testRun(frame: frame, ifindex: Self.lo)
        #expect(r.verdict == Self.redirect)
        #expect(dp.portCounters(.vf(0)).txPackets == 1)
        r.frame.withUnsafeBytes { b in
            #expect(b.baseAddress!.be32(30) == Self.client)
            #expect(b.baseAddress!.be16(36) == 40000)
        }
        #expect(PipelineTests.ipChecksumOK(r.frame, at: 14) && Self.tcpChecksumOK(r.frame))
        #expect(dp.ruleCounters(Self.replyCounter).packets == 1)
        #expect(dp.ruleCounters(Self.connectionReplyCounter).packets == 1)
        #expect(dp.ruleCounters(Self.connectionCounter).packets == 0)
    }

    /// A ct() without nat on a NATed connection: no rewrite and no +snat, as OVS and the
    /// kernel (the post-ct rule matches -snat and the original source; with the NAT
    /// bits the chain missed and the frame went up the representor).
    @Test func aLookupWithoutNATNeitherRewritesNorSetsTheNATBits() throws {
        let dp = try PipelineTests.dataPlane()
        try dp.program(Self.preCT(inPort: .vf(0), counter: Self.preCounter)
            .with(actions: [.conntrack(zone: 1, nat: false), .recirculate(5)]))
        var post = Self.postCT(inPort: .vf(0), reply: false, field: .ipv4Src, address: Self.client, to: .vf(1),
                               counter: Self.postCounter)
        post.mask[.ctState] |= UInt64(Self.snat)
        try dp.program(post)
        for c in [Self.preCounter, Self.postCounter, Self.connectionCounter] { dp.resetCounter(c) }
        try dp.programConnection(Self.connection())
        let frame = Self.tcpFrame()
        let r = try dp.testRun(frame: frame, ifindex: Self.lo)
        #expect(dp.conntrackStatistics()[.chainMiss] == 0)
        #expect(dp.portCounters(.vf(1)).txPackets == 1)
        #expect(r.frame == frame)
        #expect(dp.ruleCounters(Self.postCounter).packets == 1)
    }

    @Test func aCTMissGoesUpTheRepresentorUnmodified() throws {
        let dp = try Self.dataPlane(withConnection: false)
        let frame = Self.tcpFrame(flags: 0x02)
        let r = try dp.testRun(frame: frame, ifindex: Self.lo)
        #expect(r.verdict == Self.redirect)
        #expect(r.frame == frame)
        #expect(dp.portCounters(.vf(0)).toRepresentor == 1)
        #expect(dp.portCounters(.vf(1)).txPackets == 0)
        #expect(dp.conntrackStatistics()[.miss] == 1)
        // Nothing counted: software handles (and counts) the packet.
        #expect(dp.ruleCounters(Self.preCounter).packets == 0)
    }

    @Test func aChainMissGoesUpUnmodifiedEvenAfterAHit() throws {
        let dp = try Self.dataPlane()
        // Chain 5 has no rule for this connection after NAT: a different server port.
        try dp.removeConnection(Self.connection())
        var c = Self.connection()
        c.spec.original.rewrite = ConnectionRewrite(src: 0xC613_0099)
        try dp.programConnection(c)
        let frame = Self.tcpFrame()
        let r = try dp.testRun(frame: frame, ifindex: Self.lo)
        #expect(r.verdict == Self.redirect)
        #expect(r.frame == frame)
        #expect(dp.portCounters(.vf(0)).toRepresentor == 1)
        #expect(dp.conntrackStatistics()[.chainMiss] == 1)
        #expect(dp.ruleCounters(Self.connectionCounter).packets == 0)
    }

    @Test func aFINHandsTheConnectionBackAndGoesUpUnmodified() throws {
        let dp = try Self.dataPlane()
        let fin = Self.tcpFrame(flags: 0x11)
        let r = try dp.testRun(frame: fin, ifindex: Self.lo)
        #expect(r.verdict == Self.redirect)
        #expect(r.frame == fin)
        #expect(dp.portCounters(.vf(0)).toRepresentor == 1)
        #expect(dp.connectionHandedBack(Self.connection()))
        #expect(dp.conntrackStatistics()[.handBack] == 1)
        // The driver hears of it once, by the entry's counter.
        let q = dp.takeHandBacks()
        #expect(q.counters == [Self.connectionCounter] && q.complete)
        _ = try dp.testRun(frame: fin, ifindex: Self.lo)
        #expect(dp.takeHandBacks().counters.isEmpty)
        // Later packets of the connection go to software too, until the driver removes it.
        let data = Self.tcpFrame()
        #expect(try dp.testRun(frame: data, ifindex: Self.lo).frame == data)
        #expect(dp.portCounters(.vf(0)).toRepresentor == 3)
        try dp.removeConnection(Self.connection())
        #expect(!dp.connectionHandedBack(Self.connection()))
    }

    @Test func recirculationStopsAfterTheLimit() throws {
        let dp = try PipelineTests.dataPlane()
        // Chain n recirculates to chain n + 1, forever.
        try dp.program(Self.preCT(inPort: .vf(0), counter: 7).with(actions: [.recirculate(1)]))
        for n: UInt32 in 1...8 {
            var key = FlowKey(), mask = FlowKey()
            key[.inPort] = UInt64(PortIndex.vf(0))
            mask[.inPort] = FlowField.inPort.valueMask
            key[.recircID] = UInt64(n)
            mask[.recircID] = FlowField.recircID.valueMask
            try dp.program(DataPlaneRule(table: .chain, key: key, mask: mask, actions: [.recirculate(n + 1)], counter: 30 + n))
        }
        let frame = Self.tcpFrame()
        let r = try dp.testRun(frame: frame, ifindex: Self.lo)
        #expect(r.frame == frame)
        #expect(dp.portCounters(.vf(0)).toRepresentor == 1)
        #expect(dp.conntrackStatistics()[.tooDeep] == 1)
    }

    @Test func aResizeKeepsChainsAndConnections() throws {
        let dp = try Self.dataPlane()
        let fin = Self.tcpFrame(flags: 0x01)
        _ = try dp.testRun(frame: fin, ifindex: Self.lo)
        let c = dp.capacity
        try dp.resize(rules: c.rules * 2, counters: c.counters, encaps: c.encaps, connections: c.connections * 2)
        #expect(dp.capacity.connections == c.connections * 2)
        #expect(dp.connectionHandedBack(Self.connection()))
        // The queue of hand-backs did not move to the new maps: the driver scans once.
        #expect(!dp.takeHandBacks().complete)
        #expect(dp.takeHandBacks().complete)
        #expect(dp.conntrackStatistics()[.handBack] == 1)
        try dp.removeConnection(Self.connection())
        try dp.programConnection(Self.connection())
        let r = try dp.testRun(frame: Self.tcpFrame(), ifindex: Self.lo)
        #expect(r.verdict == Self.redirect)
        #expect(dp.portCounters(.vf(1)).txPackets == 1)
    }

    @Test func removingAChainRuleTakesItOutOfTheSilicon() throws {
        let dp = try Self.dataPlane()
        try dp.remove(Self.postCT(inPort: .vf(0), reply: false, field: .ipv4Src, address: Self.natAddress, to: .vf(1),
                                  counter: Self.postCounter))
        let frame = Self.tcpFrame()
        #expect(try dp.testRun(frame: frame, ifindex: Self.lo).frame == frame)
        #expect(dp.conntrackStatistics()[.chainMiss] == 1)
    }
}

extension DataPlaneRule {
    func with(actions: [HardwareAction]) -> DataPlaneRule {
        var r = self
        r.actions = actions
        return r
    }
}
