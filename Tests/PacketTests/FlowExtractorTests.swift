import Testing
@testable import Packet

@Suite struct FlowExtractorTests {
    @Test func ipv4TCP() {
        let f = Frame.ipv4TCP()
        let (k, o) = extract(f.bytes)
        #expect(o == HeaderOffsets(l3: 14, l4: 34, vlanBytes: 0))
        #expect(k[.ethSrc] == Frame.srcMAC)
        #expect(k[.ethDst] == Frame.dstMAC)
        #expect(k[.ethType] == 0x0800)
        #expect(k[.ipv4Src] == 0xC612_0001)
        #expect(k[.ipv4Dst] == 0xC612_0002)
        #expect(k[.ipProto] == 6)
        #expect(k[.ipTTL] == 64)
        #expect(k[.ipFrag] == 0)
        #expect(k[.tpSrc] == 1000)
        #expect(k[.tpDst] == 80)
        #expect(k[.tcpFlags] == 0x002)
        #expect(k[.vlanTCI] == 0)
    }

    @Test func singleAndDoubleVLAN() {
        let one = Frame.ipv4TCP(vlans: [(0x8100, 0x6064)])
        let (k1, o1) = extract(one.bytes)
        #expect(k1[.vlanTCI] == 0x7064)  // CFI marks presence
        #expect(k1[.vlanTPID] == 0x8100)
        #expect(k1[.cvlanTCI] == 0)
        #expect(o1?.l3 == 18)
        #expect(k1[.tpDst] == 80)

        let two = Frame.ipv4TCP(vlans: [(0x88a8, 0x0010), (0x8100, 0x0020)])
        let (k2, o2) = extract(two.bytes)
        #expect(k2[.vlanTPID] == 0x88a8)
        #expect(k2[.vlanTCI] == 0x1010)
        #expect(k2[.cvlanTPID] == 0x8100)
        #expect(k2[.cvlanTCI] == 0x1020)
        #expect(o2?.l3 == 22)
        #expect(k2[.ethType] == 0x0800)
    }

    @Test func ipv4Fragments() {
        var first = Frame(); first.ethernet(type: 0x0800)
        first.ipv4(src: 1, dst: 2, proto: 17, payloadLength: 8, fragment: 0x2000)
        first.udp(src: 5, dst: 6)
        let (k1, _) = extract(first.bytes)
        #expect(k1[.ipFrag] == 1)
        #expect(k1[.tpSrc] == 5)

        var later = Frame(); later.ethernet(type: 0x0800)
        later.ipv4(src: 1, dst: 2, proto: 17, payloadLength: 8, fragment: 0x0010)
        later.udp(src: 5, dst: 6)
        let (k2, _) = extract(later.bytes)
        #expect(k2[.ipFrag] == 2)
        #expect(k2[.tpSrc] == 0)  // no L4 in later fragments

        let (k3, _) = extract(Frame.ipv4UDP().bytes, udpGSO: true)
        #expect(k3[.ipFrag] == 1)
    }

    @Test func ipv4OptionsMoveTransportHeader() {
        var f = Frame(); f.ethernet(type: 0x0800)
        f.ipv4(src: 1, dst: 2, proto: 6, payloadLength: 20, options: [1, 1, 1, 0])
        f.tcp(src: 7, dst: 8)
        let (k, o) = extract(f.bytes)
        #expect(o?.l4 == 38)
        #expect(k[.tpSrc] == 7)
    }

    @Test func ipv6WithExtensionHeaders() {
        var f = Frame(); f.ethernet(type: 0x86dd)
        f.ipv6(src: UInt128(0x2001_0db8) << 96 | 1, dst: UInt128(0x2001_0db8) << 96 | 2, next: 0, payloadLength: 8 + 8 + 8,
               tclass: 0xb8, label: 0x12345, hlimit: 9)
        // hop-by-hop (8 bytes) -> destination options (8 bytes) -> UDP
        f.u8(60); f.u8(0); f.zeros(6)
        f.u8(17); f.u8(0); f.zeros(6)
        f.udp(src: 546, dst: 547)
        let (k, o) = extract(f.bytes)
        #expect(k[.ipProto] == 17)
        #expect(k[.ipTOS] == 0xb8)
        #expect(k[.ipTTL] == 9)
        #expect(k[.ipv6Label] == 0x12345)
        #expect(k[.ipv6Src] == UInt128(0x2001_0db8) << 96 | 1)
        #expect(o?.l4 == 14 + 40 + 16)
        #expect(k[.tpSrc] == 546)
        #expect(k[.ipFrag] == 0)
    }

    @Test func ipv6Fragments() {
        var first = Frame(); first.ethernet(type: 0x86dd)
        first.ipv6(src: 1, dst: 2, next: 44, payloadLength: 16)
        first.u8(17); first.u8(0); first.be16(0x0001); first.be32(7)  // offset 0, M=1
        first.udp(src: 1, dst: 2)
        let (k1, _) = extract(first.bytes)
        #expect(k1[.ipFrag] == 1)
        #expect(k1[.ipProto] == 17)
        #expect(k1[.tpDst] == 2)

        var later = Frame(); later.ethernet(type: 0x86dd)
        later.ipv6(src: 1, dst: 2, next: 44, payloadLength: 16)
        later.u8(17); later.u8(0); later.be16(0x0100); later.be32(7)
        later.udp(src: 1, dst: 2)
        let (k2, _) = extract(later.bytes)
        #expect(k2[.ipFrag] == 2)
        #expect(k2[.ipProto] == 44)
        #expect(k2[.tpDst] == 0)
    }

    @Test func neighbourDiscovery() {
        var f = Frame(); f.ethernet(type: 0x86dd)
        f.ipv6(src: 1, dst: 2, next: 58, payloadLength: 32, hlimit: 255)
        f.u8(135); f.u8(0); f.be16(0); f.be32(0)
        f.ipv6(UInt128(0xfe80) << 112 | 0x42)
        f.u8(1); f.u8(1); f.mac(0x0a0b_0c0d_0e0f)
        let (k, _) = extract(f.bytes)
        #expect(k[.tpSrc] == 135)
        #expect(k[.ndTarget] == UInt128(0xfe80) << 112 | 0x42)
        #expect(k[.ndSLL] == 0x0a0b_0c0d_0e0f)
        #expect(k[.ndTLL] == 0)

        // A duplicated source link-layer option invalidates the ND fields.
        var dup = f
        dup.u8(1); dup.u8(1); dup.mac(0x0102_0304_0506)
        dup.bytes[14 + 4] = 0; dup.bytes[14 + 5] = 40
        let (kd, _) = extract(dup.bytes)
        #expect(kd[.ndTarget] == 0)
        #expect(kd[.ndSLL] == 0)
    }

    @Test func arp() {
        var f = Frame(); f.ethernet(type: 0x0806)
        f.be16(1); f.be16(0x0800); f.u8(6); f.u8(4); f.be16(2)
        f.mac(0x0200_0000_0001); f.be32(0xC612_0001); f.mac(0x0200_0000_0002); f.be32(0xC612_0002)
        let (k, _) = extract(f.bytes)
        #expect(k[.ipProto] == 2)
        #expect(k[.ipv4Src] == 0xC612_0001)
        #expect(k[.ipv4Dst] == 0xC612_0002)
        #expect(k[.arpSHA] == 0x0200_0000_0001)
        #expect(k[.arpTHA] == 0x0200_0000_0002)
    }

    @Test func mplsTopLabel() {
        var f = Frame(); f.ethernet(type: 0x8847)
        f.be32(100 << 12 | 0x3 << 9 | 0 << 8 | 64)
        f.be32(200 << 12 | 1 << 8 | 64)
        let (k, _) = extract(f.bytes)
        #expect(k[.mplsLSE] == UInt64(100 << 12 | 0x3 << 9 | 64))
    }

    @Test func llcAndSnap() {
        var llc = Frame(); llc.mac(1); llc.mac(2); llc.be16(46); llc.u8(0x42); llc.u8(0x42); llc.u8(3); llc.zeros(43)
        #expect(extract(llc.bytes).0[.ethType] == 0x0005)
        var snap = Frame(); snap.mac(1); snap.mac(2); snap.be16(46)
        snap.u8(0xaa); snap.u8(0xaa); snap.u8(3); snap.zeros(3); snap.be16(0x0800); snap.zeros(38)
        #expect(extract(snap.bytes).0[.ethType] == 0x0800)
    }

    @Test func shortFramesNeverCrashAndDegradeToZero() {
        #expect(extract([1, 2, 3]).1 == nil)
        var v6 = Frame(); v6.ethernet(type: 0x86dd)
        v6.ipv6(src: 1, dst: 2, next: 58, payloadLength: 32)
        v6.u8(135); v6.u8(0); v6.be16(0); v6.be32(0); v6.ipv6(5); v6.u8(1); v6.u8(1); v6.mac(9)
        let frames = [Frame.ipv4TCP(vlans: [(0x88a8, 1), (0x8100, 2)]).bytes, v6.bytes, Frame.ipv4UDP().bytes]
        for full in frames {
            for n in 0...full.count {
                let (k, o) = extract(Array(full.prefix(n)))
                if n < 14 { #expect(o == nil) } else { #expect(o != nil) }
                if n < full.count - 5 { #expect(k[.tpDst] == 0 || n >= 38) }
            }
        }
    }

    @Test func truncatedTCPHeaderZeroesPorts() {
        let f = Frame.ipv4TCP(payload: [])
        let (k, _) = extract(Array(f.bytes.prefix(14 + 20 + 19)))
        #expect(k[.ipProto] == 6)
        #expect(k[.tpSrc] == 0)
        #expect(k[.tcpFlags] == 0)
    }

    /// (From a probe with real frames.) A transport header cut short gives no ports, type
    /// or code, as the kernel's key_extract decides: ICMP and ICMPv6 need their 8 bytes
    /// (icmphdr_ok, icmp6hdr_ok), SCTP its 12 (sctphdr_ok), UDP 8; the protocol stays.
    @Test func aTransportHeaderCutShortGivesNoPortsTypeOrCode() {
        func v4(_ proto: UInt8, _ l4: [UInt8]) -> [UInt8] {
            var f = Frame(); f.ethernet(type: 0x0800)
            f.ipv4(src: 0xC612_0001, dst: 0xC612_0002, proto: proto, payloadLength: l4.count)
            f.bytes += l4
            return f.bytes
        }
        func v6(_ l4: [UInt8]) -> [UInt8] {
            var f = Frame(); f.ethernet(type: 0x86dd)
            f.ipv6(src: 1, dst: 2, next: 58, payloadLength: l4.count)
            f.bytes += l4
            return f.bytes
        }
        let echo: [UInt8] = [8, 0, 0xf7, 0xff, 0, 1, 0, 1], echo6: [UInt8] = [128, 0, 0, 0, 0, 1, 0, 1]
        let sctp: [UInt8] = [0x03, 0xe8, 0x07, 0xd0, 0, 0, 0, 1, 0, 0, 0, 0]
        for (frame, proto, whole) in [(v4(1, echo), 1, true), (v4(1, Array(echo.prefix(4))), 1, false),
                                      (v4(132, sctp), 132, true), (v4(132, Array(sctp.prefix(8))), 132, false),
                                      (v6(echo6), 58, true), (v6(Array(echo6.prefix(4))), 58, false)] {
            let (k, _) = extract(frame)
            #expect(k[.ipProto] == UInt64(proto))
            #expect((k[.tpSrc] != 0) == whole, "proto \(proto), \(whole ? "whole" : "cut short")")
        }
    }

    @Test func metadataIsPreserved() {
        var key = FlowKey()
        key[.inPort] = 7
        key[.recircID] = 3
        key[.tunnelID] = 42
        key[.ethType] = 0xffff
        let bytes = Frame.ipv4UDP().bytes
        _ = bytes.withUnsafeBytes { FlowExtractor.extract($0.baseAddress!, length: bytes.count, into: &key) }
        #expect(key[.inPort] == 7)
        #expect(key[.recircID] == 3)
        #expect(key[.tunnelID] == 42)
        #expect(key[.ethType] == 0x0800)
    }
}

@Suite struct MPLSStackTests {
    @Test func threeLabelsAreKept() {
        var f = Frame(); f.ethernet(type: 0x8847)
        f.be32(1 << 12 | 64); f.be32(2 << 12 | 64); f.be32(3 << 12 | 1 << 8 | 64); f.be32(4 << 12 | 1 << 8)
        let (k, _) = extract(f.bytes)
        #expect(k[.mplsLSE] == UInt64(1 << 12 | 64))
        #expect(k[.mplsLSE1] == UInt64(2 << 12 | 64))
        #expect(k[.mplsLSE2] == UInt64(3 << 12 | 1 << 8 | 64))
    }
}
