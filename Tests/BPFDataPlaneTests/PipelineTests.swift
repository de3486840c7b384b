import BPFDataPlane
import ESwitch
import Glibc
import Packet
import Testing

/// The eBPF pipeline run with BPF_PROG_TEST_RUN on crafted frames: verdicts, rewrites,
/// encap/decap and counters, with no namespace and no traffic. Needs root (BPF).
/// The frame "arrives" on `lo` (the only netdev every namespace has); the ports it is
/// sent to need not exist, since a test run only records the redirect.
@Suite(.enabled(if: getuid() == 0, "loading BPF programs needs root"))
struct PipelineTests {
    static let lo: Int32 = 1
    static let redirect: Int32 = 7, shot: Int32 = 2

    /// A data plane where `lo` is the ingress of `port` and other ports are fake ifindexes.
    static func dataPlane(ingress port: PortIndex = .vf(0), mode: ESwitchMode = .switchdev) throws -> BPFDataPlane {
        let dp = try BPFDataPlane(profile: HardwareProfile())
        try dp.setMode(mode, portCount: 3)
        for p: PortIndex in [.uplink, .vf(0), .vf(1)] {
            let ifindex = p == port ? lo : Int32(1000 + p)
            try dp.setPort(p, DataPlanePort(ifindex: ifindex, representorIfindex: Int32(2000 + p), isUplink: p == .uplink,
                                            mtu: 1500))
        }
        return dp
    }

    /// Ethernet + IPv4 + UDP with `payload` bytes, checksums right.
    static func udpFrame(src: UInt32 = 0xC613_0001, dst: UInt32 = 0xC613_0002, sport: UInt16 = 1234, dport: UInt16 = 53,
                         payload: Int = 26) -> [UInt8] {
        var f = [UInt8](repeating: 0, count: 14 + 20 + 8 + payload)
        f.withUnsafeMutableBytes { r in
            let p = r.baseAddress!
            p.setBE48(0, 0x02_00_00_00_00_02)
            p.setBE48(6, 0x02_00_00_00_00_01)
            p.setBE16(12, EtherType.ipv4)
            p.setU8(14, 0x45)
            p.setBE16(16, UInt16(20 + 8 + payload))
            p.setU8(22, 64)
            p.setU8(23, IPProto.udp)
            p.setBE32(26, src)
            p.setBE32(30, dst)
            p.setBE16(24, Checksum.compute(p + 14, count: 20))
            p.setBE16(34, sport)
            p.setBE16(36, dport)
            p.setBE16(38, UInt16(8 + payload))
            for i in 0..<payload { p.setU8(42 + i, UInt8(truncatingIfNeeded: i)) }
            let pseudo = Checksum.pseudoHeaderIPv4(src: src, dst: dst, proto: IPProto.udp, length: 8 + payload)
            p.setBE16(40, Checksum.compute(p + 34, count: 8 + payload, initial: pseudo))
        }
        return f
    }

    static func key(of frame: [UInt8], inPort: PortIndex) -> FlowKey {
        var k = FlowKey()
        k[.inPort] = UInt64(inPort)
        frame.withUnsafeBytes { _ = FlowExtractor.extract($0.baseAddress!, length: $0.count, into: &k) }
        return k
    }

    /// A rule matching in_port, eth_type and ipv4_dst of `frame`.
    static func rule(_ frame: [UInt8], inPort: PortIndex, actions: [HardwareAction], counter: UInt32 = 7) -> DataPlaneRule {
        var mask = FlowKey()
        mask[.inPort] = FlowField.inPort.valueMask
        mask[.ethType] = FlowField.ethType.valueMask
        mask[.ipv4Dst] = 0xffff_ffff
        let k = key(of: frame, inPort: inPort).masked(by: mask)
        return DataPlaneRule(table: .masked, key: k, mask: mask, actions: actions, counter: counter)
    }

    static func ipChecksumOK(_ f: [UInt8], at l3: Int) -> Bool {
        f.withUnsafeBytes { Checksum.compute($0.baseAddress! + l3, count: 20) == 0 }
    }

    static func udpChecksumOK(_ f: [UInt8], l3: Int) -> Bool {
        f.withUnsafeBytes { r in
            let p = r.baseAddress!
            let len = Int(p.be16(l3 + 2)) - 20
            let pseudo = Checksum.pseudoHeaderIPv4(src: p.be32(l3 + 12), dst: p.be32(l3 + 16), proto: IPProto.udp, length: len)
            return Checksum.compute(p + l3 + 20, count: len, initial: pseudo) == 0
        }
    }

    /// (From a probe with real frames.) The hardware parser gives a transport header cut
    /// short no ports, type or code, as the kernel's key_extract and the software
    /// extractor do (ICMP 8 bytes, SCTP 12): a rule for the kernel's key of such a frame
    /// (its protocol, zero ports) takes it; a whole header's type still counts.
    @Test func aTransportHeaderCutShortMatchesZeroPortsAsInTheKernel() throws {
        func frame(_ proto: UInt8, _ l4: [UInt8]) -> [UInt8] {
            var f: [UInt8] = [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00]
            let total = 20 + l4.count
            var ip: [UInt8] = [0x45, 0, UInt8(total >> 8), UInt8(total & 0xff), 0, 1, 0, 0, 64, proto, 0, 0,
                               0xc6, 0x13, 0, 1, 0xc6, 0x13, 0, 2]
            let c = ip.withUnsafeBytes { Checksum.compute($0.baseAddress!, count: 20) }
            ip[10] = UInt8(c >> 8); ip[11] = UInt8(c & 0xff)
            f += ip + l4
            return f
        }
        let echo: [UInt8] = [8, 0, 0xf7, 0xff, 0, 1, 0, 1]
        let sctp: [UInt8] = [0x03, 0xe8, 0x07, 0xd0, 0, 0, 0, 1, 0, 0, 0, 0]
        for (proto, whole) in [(UInt8(1), echo), (UInt8(132), sctp)] {
            let dp = try Self.dataPlane()
            var mask = FlowKey(), key = FlowKey()
            for f in [FlowField.inPort, .ethType, .ipProto, .tpSrc, .tpDst] { mask[f] = f.valueMask }
            key[.inPort] = UInt64(PortIndex.vf(0)); key[.ethType] = 0x0800; key[.ipProto] = UInt64(proto)
            try dp.program(DataPlaneRule(table: .masked, key: key, mask: mask, actions: [.forward(.vf(1))], counter: 7))
            let short = frame(proto, Array(whole.prefix(proto == 1 ? 4 : 8)))
            #expect(Self.key(of: short, inPort: .vf(0))[.tpSrc] == 0, "the software extractor agrees")
            _ = try dp.testRun(frame: short, ifindex: Self.lo)
            #expect(dp.portCounters(.vf(1)).txPackets == 1, "proto \(proto): the short header hit the zero-port rule")
            _ = try dp.testRun(frame: frame(proto, whole), ifindex: Self.lo)
            #expect(dp.portCounters(.vf(1)).txPackets == 1, "proto \(proto): a whole header has its ports or type")
            #expect(dp.portCounters(.vf(0)).toRepresentor == 1)
        }
    }

    @Test func aMissGoesToTheRepresentor() throws {
        let dp = try Self.dataPlane()
        let r = try dp.testRun(frame: Self.udpFrame(), ifindex: Self.lo)
        #expect(r.verdict == Self.redirect)
        let c = dp.portCounters(.vf(0))
        #expect(c.rxPackets == 1)
        #expect(c.toRepresentor == 1)
        #expect(dp.portCounters(.vf(1)).txPackets == 0)
    }

    @Test func aHitForwardsAndCounts() throws {
        let dp = try Self.dataPlane()
        let frame = Self.udpFrame()
        try dp.program(Self.rule(frame, inPort: .vf(0), actions: [.forward(.vf(1))]))
        let r = try dp.testRun(frame: frame, ifindex: Self.lo)
        #expect(r.verdict == Self.redirect)
        #expect(r.frame == frame)
        #expect(dp.portCounters(.vf(1)).txPackets == 1)
        #expect(dp.portCounters(.vf(0)).toRepresentor == 0)
        let rc = dp.ruleCounters(7)
        #expect(rc.packets == 1)
        #expect(rc.bytes == UInt64(frame.count))
        #expect(rc.lastUsedNanoseconds > 0)
        // Another destination misses.
        _ = try dp.testRun(frame: Self.udpFrame(dst: 0xC613_0009), ifindex: Self.lo)
        #expect(dp.portCounters(.vf(0)).toRepresentor == 1)
    }

    @Test func aResizeKeepsRulesCountersAndEncaps() throws {
        let dp = try Self.dataPlane()
        let frame = Self.udpFrame()
        try dp.program(Self.rule(frame, inPort: .vf(0), actions: [.forward(.vf(1))]))
        _ = try dp.testRun(frame: frame, ifindex: Self.lo)
        let before = dp.capacity
        try dp.resize(rules: before.rules * 2, counters: before.counters * 2, encaps: before.encaps * 2, connections: before.connections * 2)
        #expect(dp.capacity.counters == before.counters * 2)
        #expect(try dp.testRun(frame: frame, ifindex: Self.lo).verdict == Self.redirect)
        #expect(dp.ruleCounters(7).packets == 2)
        #expect(dp.portCounters(.vf(1)).txPackets == 2)
        // Rules written after the resize land in the new tables.
        let other = Self.udpFrame(dst: 0xC613_0044)
        try dp.program(Self.rule(other, inPort: .vf(0), actions: [.drop], counter: 9))
        #expect(try dp.testRun(frame: other, ifindex: Self.lo).verdict == Self.shot)
    }

    @Test func dropAndRemove() throws {
        let dp = try Self.dataPlane()
        let frame = Self.udpFrame()
        let rule = Self.rule(frame, inPort: .vf(0), actions: [.drop])
        try dp.program(rule)
        #expect(try dp.testRun(frame: frame, ifindex: Self.lo).verdict == Self.shot)
        try dp.remove(rule)
        #expect(try dp.testRun(frame: frame, ifindex: Self.lo).verdict == Self.redirect)
        #expect(dp.portCounters(.vf(0)).toRepresentor == 1)
    }

    @Test func replacingActionsTakesEffectAtOnce() throws {
        let dp = try Self.dataPlane()
        let frame = Self.udpFrame()
        try dp.program(Self.rule(frame, inPort: .vf(0), actions: [.drop]))
        try dp.program(Self.rule(frame, inPort: .vf(0), actions: [.forward(.vf(1))]))
        #expect(try dp.testRun(frame: frame, ifindex: Self.lo).verdict == Self.redirect)
        #expect(dp.portCounters(.vf(1)).txPackets == 1)
    }

    @Test func rewritesKeepChecksumsRight() throws {
        let dp = try Self.dataPlane()
        let frame = Self.udpFrame()
        try dp.program(Self.rule(frame, inPort: .vf(0), actions: [
            .setEthernet(src: 0x02_aa_00_00_00_01, srcMask: 0xffff_ffff_ffff, dst: 0, dstMask: 0),
            .setIPv4(value: .init(dst: 0xC613_0063, ttl: 9), mask: .init(dst: 0xffff_ffff, ttl: 0xff)),
            .setTransport(proto: IPProto.udp, src: 0, srcMask: 0, dst: 5353, dstMask: 0xffff),
            .forward(.vf(1)),
        ]))
        let out = try dp.testRun(frame: frame, ifindex: Self.lo).frame
        out.withUnsafeBytes { r in
            let p = r.baseAddress!
            #expect(p.be48(6) == 0x02_aa_00_00_00_01)
            #expect(p.be48(0) == 0x02_00_00_00_00_02)
            #expect(p.be32(30) == 0xC613_0063)
            #expect(p.u8(22) == 9)
            #expect(p.be16(36) == 5353)
        }
        #expect(Self.ipChecksumOK(out, at: 14))
        #expect(Self.udpChecksumOK(out, l3: 14))
    }

    @Test func encapPrependsTheSharedHeader() throws {
        let dp = try Self.dataPlane()
        var tunnel = TunnelMetadata()
        tunnel.ipv4Dst = 0xC612_0002
        tunnel.id = 42
        tunnel.flags = [.key, .dontFragment]
        let header = VXLAN.template(ethSrc: 0x02_00_00_00_0a_01, ethDst: 0x02_00_00_00_0a_02, tunnel: tunnel,
                                    srcIPv4: 0xC612_0001, udpDst: 4789)
        try dp.writeEncap(id: 3, header: header)
        let entry = EncapEntry(id: 3, key: EncapKey(tunnel: tunnel, udpPort: 4789, egress: .uplink), header: header)
        let frame = Self.udpFrame()
        try dp.program(Self.rule(frame, inPort: .vf(0), actions: [.encap(entry), .forward(.uplink)]))
        let r = try dp.testRun(frame: frame, ifindex: Self.lo)
        #expect(r.verdict == Self.redirect)
        let out = r.frame
        #expect(out.count == frame.count + 50)
        #expect(Array(out[50...]) == frame)
        out.withUnsafeBytes { x in
            let p = x.baseAddress!
            #expect(p.be48(0) == 0x02_00_00_00_0a_02)
            #expect(p.be16(12) == EtherType.ipv4)
            #expect(Int(p.be16(16)) == frame.count + 36)
            #expect(p.be16(20) & 0x4000 != 0)
            #expect(p.be32(26) == 0xC612_0001 && p.be32(30) == 0xC612_0002)
            #expect(p.be16(36) == 4789)
            #expect(p.be16(34) >= 32768)
            #expect(Int(p.be16(38)) == frame.count + 16)
            #expect(p.be32(46) >> 8 == 42)
        }
        #expect(Self.ipChecksumOK(out, at: 14))
        #expect(dp.portCounters(.uplink).txPackets == 1)
    }

    /// `inner` in VXLAN (VNI 42) from 198.18.0.2 to 198.18.0.1, outer TOS `tos`.
    static func vxlanFrame(_ inner: [UInt8], tos: UInt8 = 0) -> [UInt8] {
        var tunnel = TunnelMetadata()
        tunnel.ipv4Src = 0xC612_0002
        tunnel.ipv4Dst = 0xC612_0001
        tunnel.id = 42
        tunnel.ttl = 64
        tunnel.tos = tos
        tunnel.flags = [.key]
        var outer = VXLAN.template(ethSrc: 0x02_00_00_00_0a_02, ethDst: 0x02_00_00_00_0a_01, tunnel: tunnel,
                                   srcIPv4: 0xC612_0002, udpDst: 4789).bytes
        outer.withUnsafeMutableBytes { r in
            let p = r.baseAddress!
            p.setBE16(16, UInt16(inner.count + 36))
            p.setBE16(24, 0)
            p.setBE16(24, Checksum.compute(p + 14, count: 20))
            p.setBE16(34, 40000)
            p.setBE16(38, UInt16(inner.count + 16))
        }
        return outer + inner
    }

    /// A decap rule: the tunnel fields and the inner destination, as a decap flow matches.
    static func decapRule(_ inner: [UInt8], actions: [HardwareAction], counter: UInt32 = 1) -> DataPlaneRule {
        var mask = FlowKey(), key = FlowKey()
        key[.inPort] = UInt64(PortIndex.uplink)
        mask[.inPort] = FlowField.inPort.valueMask
        key[.tunnelID] = 42
        mask[.tunnelID] = ~0
        key[.tunnelIPv4Src] = 0xC612_0002
        mask[.tunnelIPv4Src] = 0xffff_ffff
        key[.ethType] = UInt64(EtherType.ipv4)
        mask[.ethType] = FlowField.ethType.valueMask
        key[.ipv4Dst] = 0xC613_0002
        mask[.ipv4Dst] = 0xffff_ffff
        return DataPlaneRule(table: .masked, key: key, mask: mask, actions: actions, counter: counter)
    }

    @Test func aPaddedInnerFrameForTheHostKeepsItsChecksum() throws {
        let dp = try Self.dataPlane(ingress: .uplink)
        // An inner UDP frame with Ethernet padding after the IP packet: the checksum the
        // pipeline completes for p0 covers the IP payload only.
        let inner = Self.udpFrame(payload: 2) + [UInt8](repeating: 0, count: 12)
        let frame = Self.vxlanFrame(inner)
        let r = try dp.testRun(frame: frame, ifindex: Self.lo)
        #expect(r.verdict == Self.redirect)
        #expect(r.frame == frame)
        #expect(dp.portCounters(.uplink).toRepresentor == 1)
    }

    @Test func twoRulesWithOneHardwareMatchAreRefusedNotMerged() throws {
        let dp = try Self.dataPlane()
        let frame = Self.udpFrame()
        let first = Self.rule(frame, inPort: .vf(0), actions: [.forward(.vf(1))], counter: 1)
        try dp.program(first)
        // The same hardware match (it differs from the first only in words the silicon
        // does not hold) under another counter: refused, the first left alone.
        var second = first
        second.counter = 2
        second.mask[.recircID] = FlowField.recircID.valueMask
        second.actions = [.drop]
        #expect(throws: DataPlaneError.self) { try dp.program(second) }
        try dp.remove(second)
        #expect(try dp.testRun(frame: frame, ifindex: Self.lo).verdict == Self.redirect)
        #expect(dp.ruleCounters(1).packets == 1)
    }

    @Test func decapOnTheUplinkStripsTheOuterHeaders() throws {
        let dp = try Self.dataPlane(ingress: .uplink)
        try dp.setVXLANPorts([4789])
        try dp.setVTEPMAC(0x02_00_00_00_0a_01)   // the outer destination of vxlanFrame
        let inner = Self.udpFrame()
        let frame = Self.vxlanFrame(inner)
        try dp.program(Self.decapRule(inner, actions: [.decap, .forward(.vf(0))]))
        let r = try dp.testRun(frame: frame, ifindex: Self.lo)
        #expect(r.verdict == Self.redirect)
        #expect(r.frame == inner)
        #expect(dp.portCounters(.vf(0)).txPackets == 1)
        #expect(dp.ruleCounters(1).packets == 1)
        // The flow counts what the datapath receives from a tunnel port: the inner frame.
        #expect(dp.ruleCounters(1).bytes == UInt64(inner.count))
        // Another VNI misses: the whole frame goes up the uplink's representor, the tunnel
        // flags the parser found (none here) noted in the VXLAN header's last byte.
        var other = frame
        other[48] = 43
        var noted = other
        noted[49] = VXLAN.pipelineNote
        #expect(try dp.testRun(frame: other, ifindex: Self.lo).frame == noted)
        #expect(dp.portCounters(.uplink).toRepresentor == 1)
    }

    /// The vxlan vport's socket sees neither the outer DF bit nor the UDP checksum: a
    /// VXLAN frame no rule takes goes up with them noted (df and csum, as the parser put
    /// them in the key) in the VXLAN header's reserved last byte, its UDP checksum kept
    /// right, so that the software path's tunnel key is the hardware's.
    @Test func aVXLANMissGoesUpWithItsTunnelFlagsNoted() throws {
        let dp = try Self.dataPlane(ingress: .uplink)
        try dp.setVXLANPorts([4789])
        try dp.setVTEPMAC(0x02_00_00_00_0a_01)   // the outer destination of vxlanFrame
        var frame = Self.vxlanFrame(Self.udpFrame())
        frame.withUnsafeMutableBytes { r in
            let p = r.baseAddress!
            p.setBE16(20, 0x4000)   // DF
            p.setBE16(24, 0)
            p.setBE16(24, Checksum.compute(p + 14, count: 20))
            let udpLength = Int(p.be16(38))
            let pseudo = Checksum.pseudoHeaderIPv4(src: p.be32(26), dst: p.be32(30), proto: IPProto.udp, length: udpLength)
            let c = Checksum.compute(p + 34, count: udpLength, initial: pseudo)
            p.setBE16(40, c == 0 ? 0xffff : c)
        }
        #expect(Self.udpChecksumOK(frame, l3: 14))
        let r = try dp.testRun(frame: frame, ifindex: Self.lo)
        #expect(dp.portCounters(.uplink).toRepresentor == 1)
        #expect(r.frame.count == frame.count)
        #expect(r.frame.count > 49 && r.frame[49] == VXLAN.pipelineNote | VXLAN.pipelineNoteFlags)
        #expect(Self.udpChecksumOK(r.frame, l3: 14))
        var rest = r.frame
        if rest.count > 49 { rest[49] = frame[49]; rest[40] = frame[40]; rest[41] = frame[41] }
        #expect(rest == frame)
    }

    /// RFC 6040, as the kernel's vxlan receive path: an outer CE reaches an ECN-capable
    /// inner packet (IPv4 checksum updated); over a not-ECT one the packet is dropped
    /// before the flow counts it.
    @Test func decapCopiesAnOuterCEMark() throws {
        let dp = try Self.dataPlane(ingress: .uplink)
        try dp.setVXLANPorts([4789])
        try dp.setVTEPMAC(0x02_00_00_00_0a_01)   // the outer destination of vxlanFrame
        var inner = Self.udpFrame()
        inner.withUnsafeMutableBytes { r in
            let p = r.baseAddress!
            p.setU8(15, 0x02)   // ECT(0)
            p.setBE16(24, 0)
            p.setBE16(24, Checksum.compute(p + 14, count: 20))
        }
        try dp.program(Self.decapRule(inner, actions: [.decap, .forward(.vf(0))]))
        let r = try dp.testRun(frame: Self.vxlanFrame(inner, tos: 0x03), ifindex: Self.lo)
        #expect(r.verdict == Self.redirect)
        #expect(r.frame.count == inner.count)
        #expect(r.frame.count > 15 && r.frame[15] == 0x03)
        #expect(Self.ipChecksumOK(r.frame, at: 14))
        let notECT = Self.udpFrame()
        #expect(try dp.testRun(frame: Self.vxlanFrame(notECT, tos: 0x03), ifindex: Self.lo).verdict == Self.shot)
        #expect(dp.ruleCounters(1).packets == 1)
        // Without CE outside, the inner packet is left as it is.
        #expect(try dp.testRun(frame: Self.vxlanFrame(notECT, tos: 0x02), ifindex: Self.lo).frame == notECT)
    }

    /// A VXLAN frame is looked up outer and inner only against rules that match tunnel
    /// fields: a plain uplink rule that its inner headers would fit must not take it.
    @Test func aVXLANFrameDoesNotHitAPlainRuleByItsInnerHeaders() throws {
        let dp = try Self.dataPlane(ingress: .uplink)
        try dp.setVXLANPorts([4789])
        try dp.setVTEPMAC(0x02_00_00_00_0a_01)   // the outer destination of vxlanFrame
        let inner = Self.udpFrame()
        try dp.program(Self.rule(inner, inPort: .uplink, actions: [.forward(.vf(1))], counter: 3))
        let frame = Self.vxlanFrame(inner)
        let r = try dp.testRun(frame: frame, ifindex: Self.lo)
        var noted = frame
        noted[49] = VXLAN.pipelineNote   // the tunnel flags noted for the vport (none here)
        #expect(r.frame == noted)
        #expect(dp.portCounters(.uplink).toRepresentor == 1)
        #expect(dp.ruleCounters(3).packets == 0)
        // The inner frame on its own still hits it.
        _ = try dp.testRun(frame: inner, ifindex: Self.lo)
        #expect(dp.ruleCounters(3).packets == 1)
    }

    @Test func theExactTableWinsAndMasksAreRanked() throws {
        let dp = try Self.dataPlane()
        let frame = Self.udpFrame()
        var wide = Self.rule(frame, inPort: .vf(0), actions: [.drop], counter: 1)
        wide.mask[.ipv4Dst] = 0xffff_ff00
        wide.key = wide.key.masked(by: wide.mask)
        try dp.program(wide)
        var exact = Self.rule(frame, inPort: .vf(0), actions: [.forward(.vf(1))], counter: 2)
        exact.table = .exact
        try dp.program(exact)
        #expect(try dp.testRun(frame: frame, ifindex: Self.lo).verdict == Self.redirect)
        #expect(dp.ruleCounters(2).packets == 1)
        #expect(try dp.testRun(frame: Self.udpFrame(dst: 0xC613_0005), ifindex: Self.lo).verdict == Self.shot)
        #expect(dp.ruleCounters(1).packets == 1)
        let counts = dp.allRuleCounters(count: 3)
        #expect(counts.map(\.packets) == [0, 1, 1])
    }

    @Test func aFrameSentOnARepresentorLeavesThroughItsPort() throws {
        let dp = try BPFDataPlane(profile: HardwareProfile())
        try dp.setMode(.switchdev, portCount: 2)
        try dp.setPort(.uplink, DataPlanePort(ifindex: 1000, representorIfindex: 2000, isUplink: true))
        try dp.setPort(.vf(0), DataPlanePort(ifindex: 1001, representorIfindex: Self.lo))
        let r = try dp.testRun(frame: Self.udpFrame(), ifindex: Self.lo, representor: true)
        #expect(r.verdict == Self.redirect)
        #expect(dp.portCounters(.vf(0)).fromRepresentor == 1)
        #expect(dp.portCounters(.vf(0)).txPackets == 1)
    }

    /// While someone captures on the representor, the port gets a clone and the frame
    /// goes on through the representor's transmit (TC_ACT_OK), where taps see it; it is
    /// counted once.
    @Test func aMirroredRepresentorsFrameAlsoGoesThroughItsTransmit() throws {
        let dp = try BPFDataPlane(profile: HardwareProfile())
        try dp.setMode(.switchdev, portCount: 2)
        try dp.setPort(.uplink, DataPlanePort(ifindex: 1000, representorIfindex: 2000, isUplink: true))
        try dp.setPort(.vf(0), DataPlanePort(ifindex: 1001, representorIfindex: Self.lo, mirrorsTransmit: true))
        let r = try dp.testRun(frame: Self.udpFrame(), ifindex: Self.lo, representor: true)
        #expect(r.verdict == 0)
        #expect(dp.portCounters(.vf(0)).fromRepresentor == 1)
        #expect(dp.portCounters(.vf(0)).txPackets == 1)
        // The capture ends: the redirect alone again.
        try dp.setPort(.vf(0), DataPlanePort(ifindex: 1001, representorIfindex: Self.lo))
        #expect(try dp.testRun(frame: Self.udpFrame(), ifindex: Self.lo, representor: true).verdict == Self.redirect)
        #expect(dp.portCounters(.vf(0)).txPackets == 2)
    }

    @Test func legacyModeForwardsByMACAndFloodsTheRest() throws {
        let dp = try Self.dataPlane(mode: .legacy)
        try dp.setMAC(vlan: 0, mac: 0x02_00_00_00_00_02, port: .vf(1))
        #expect(try dp.testRun(frame: Self.udpFrame(), ifindex: Self.lo).verdict == Self.redirect)
        #expect(dp.portCounters(.vf(1)).txPackets == 1)
        // Unknown unicast: a copy to VF1 and the frame to the uplink.
        var unknown = Self.udpFrame()
        unknown[5] = 0x77
        #expect(try dp.testRun(frame: unknown, ifindex: Self.lo).verdict == Self.redirect)
        #expect(dp.portCounters(.vf(1)).txPackets == 2)
        #expect(dp.portCounters(.uplink).txPackets == 1)
    }

    /// Port function state inactive: the port's link is down, so nothing it sends enters
    /// the switch (counted as rx_dropped), rule or miss, and nothing is sent to it.
    @Test func anInactivePortsFramesAreDroppedAndCounted() throws {
        let dp = try Self.dataPlane()
        let frame = Self.udpFrame()
        try dp.program(Self.rule(frame, inPort: .vf(0), actions: [.forward(.vf(1))]))
        try dp.setPort(.vf(0), DataPlanePort(ifindex: Self.lo, representorIfindex: 2001, linkUp: false, mtu: 1500))
        #expect(try dp.testRun(frame: frame, ifindex: Self.lo).verdict == Self.shot)
        #expect(try dp.testRun(frame: Self.udpFrame(dst: 0xC613_0009), ifindex: Self.lo).verdict == Self.shot)
        let c = dp.portCounters(.vf(0))
        #expect(c.rxDropped == 2)
        #expect(c.toRepresentor == 0)
        #expect(dp.portCounters(.vf(1)).txPackets == 0)
        #expect(dp.ruleCounters(7).packets == 0)
        // Active again: the rule forwards.
        try dp.setPort(.vf(0), DataPlanePort(ifindex: Self.lo, representorIfindex: 2001, mtu: 1500))
        #expect(try dp.testRun(frame: frame, ifindex: Self.lo).verdict == Self.redirect)
        #expect(dp.portCounters(.vf(1)).txPackets == 1)
    }

    /// VST is 802.1Q: an 802.1ad (S-tag) frame from the wire is on no VF's VLAN, whatever
    /// its VID (here the VST VF's 100); it reaches no VF and is counted as dropped.
    @Test func anSTaggedFrameFromTheWireReachesNoVF() throws {
        let dp = try Self.dataPlane(ingress: .uplink, mode: .legacy)
        try dp.setPort(.vf(1), DataPlanePort(ifindex: 1002, mtu: 1500, vlan: 100))
        try dp.setMAC(vlan: 100, mac: 0x02_00_00_00_00_02, port: .vf(1))
        let plain = Self.udpFrame()
        func tagged(_ tpid: UInt16) -> [UInt8] {
            Array(plain[0..<12]) + [UInt8(tpid >> 8), UInt8(tpid & 0xff), 0x00, 100] + Array(plain[12...])
        }
        #expect(try dp.testRun(frame: tagged(0x88a8), ifindex: Self.lo).verdict == Self.shot)
        #expect(dp.portCounters(.vf(0)).txPackets == 0)
        #expect(dp.portCounters(.vf(1)).txPackets == 0)
        #expect(dp.portCounters(.uplink).rxDropped == 1)
        // The same VID as 802.1Q reaches the VST VF, untagged.
        let r = try dp.testRun(frame: tagged(0x8100), ifindex: Self.lo)
        #expect(r.verdict == Self.redirect)
        #expect(dp.portCounters(.vf(1)).txPackets == 1)
        #expect(Array(r.frame.prefix(plain.count)) == plain)
    }

    @Test func aBareEthernetHeaderMissesToTheRepresentor() throws {
        let dp = try Self.dataPlane()
        #expect(try dp.testRun(frame: [UInt8](repeating: 0xff, count: 14), ifindex: Self.lo).verdict == Self.redirect)
        let c = dp.portCounters(.vf(0))
        #expect(c.rxPackets == 1)
        #expect(c.toRepresentor == 1)
    }
}
