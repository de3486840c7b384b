import Testing
@testable import Packet

@Suite struct HeaderRewriteTests {
    @Test func setIPv4AddressesKeepsChecksumsValid() {
        let slot = TestSlot()
        var b = slot.buffer(Frame.ipv4TCP().bytes)
        var (key, o) = extract(b.bytes)
        HeaderRewrite.setIPv4(&b, offsets: o!, key: &key,
                              value: .init(src: 0xC613_0005, dst: 0x0a00_0001, tos: 0x10, ttl: 9),
                              mask: .init(src: ~0, dst: 0xffff_ff00, tos: 0xfc, ttl: 0xff))
        let out = b.bytes
        #expect(verifyIPv4HeaderChecksum(out))
        #expect(verifyL4ChecksumIPv4(out))
        let (k2, _) = extract(out)
        #expect(k2[.ipv4Src] == 0xC613_0005)
        #expect(k2[.ipv4Dst] == 0x0a00_0002)  // low byte kept by the mask
        #expect(k2[.ipTTL] == 9)
        #expect(k2[.ipTOS] == 0x10)
        #expect(k2 == key)
        _ = o
    }

    @Test func setUDPPortsAndZeroChecksumStaysZero() {
        let slot = TestSlot()
        var f = Frame.ipv4UDP()
        var b = slot.buffer(f.bytes)
        var (key, o) = extract(b.bytes)
        HeaderRewrite.setPorts(&b, offsets: o!, key: &key, proto: 17, src: 9999, srcMask: ~0, dst: 0, dstMask: 0)
        #expect(verifyL4ChecksumIPv4(b.bytes))
        #expect(extract(b.bytes).0[.tpSrc] == 9999)

        f.bytes[14 + 20 + 6] = 0; f.bytes[14 + 20 + 7] = 0
        var b2 = slot.buffer(f.bytes)
        (key, o) = extract(b2.bytes)
        HeaderRewrite.setIPv4(&b2, offsets: o!, key: &key, value: .init(src: 77), mask: .init(src: ~0))
        #expect(b2.bytes[14 + 20 + 6] == 0 && b2.bytes[14 + 20 + 7] == 0)
    }

    @Test func setIPv6AndTCPPortsKeepChecksumValid() {
        var f = Frame(); f.ethernet(type: 0x86dd)
        f.ipv6(src: 1, dst: 2, next: 6, payloadLength: 24)
        f.tcp(src: 10, dst: 20, payload: [1, 2, 3, 4])
        f.fixL4ChecksumIPv6(l3: 14, l4: 54, proto: 6, csumOffset: 16)
        #expect(verifyL4ChecksumIPv6(f.bytes, l3: 14, l4: 54, proto: 6))
        let slot = TestSlot()
        var b = slot.buffer(f.bytes)
        var (key, o) = extract(b.bytes)
        HeaderRewrite.setIPv6(&b, offsets: o!, key: &key,
                              value: .init(src: UInt128(0x2001) << 112 | 5, dst: UInt128(0xfe80) << 112, label: 7, tclass: 0x20, hlimit: 3),
                              mask: .init(src: ~0, dst: ~0, label: 0xfffff, tclass: 0xff, hlimit: 0xff))
        HeaderRewrite.setPorts(&b, offsets: o!, key: &key, proto: 6, src: 443, srcMask: ~0, dst: 0, dstMask: 0)
        #expect(verifyL4ChecksumIPv6(b.bytes, l3: 14, l4: 54, proto: 6))
        let (k2, _) = extract(b.bytes)
        #expect(k2 == key)
        #expect(k2[.ipv6Label] == 7)
        #expect(k2[.tpSrc] == 443)
    }

    @Test func partialChecksumOnlyTracksPseudoHeader() {
        // CHECKSUM_PARTIAL: the field holds the pseudo-header sum; ports must not touch it.
        let slot = TestSlot()
        var f = Frame.ipv4TCP()
        let pseudo = Checksum.fold(Checksum.pseudoHeaderIPv4(src: 0xC612_0001, dst: 0xC612_0002, proto: 6, length: 25))
        f.bytes[50] = UInt8(pseudo >> 8); f.bytes[51] = UInt8(pseudo & 0xff)
        var b = slot.buffer(f.bytes)
        b.offload = OffloadInfo(flags: OffloadInfo.needsChecksum, checksumStart: 34, checksumOffset: 16)
        var (key, o) = extract(b.bytes)
        HeaderRewrite.setIPv4(&b, offsets: o!, key: &key, value: .init(src: 0x0102_0304), mask: .init(src: ~0))
        HeaderRewrite.setPorts(&b, offsets: o!, key: &key, proto: 6, src: 1, srcMask: ~0, dst: 2, dstMask: ~0)
        VXLAN.finishPartialChecksum(&b)
        #expect(verifyL4ChecksumIPv4(b.bytes))
    }

    @Test func sctpCRCIsRecomputed() {
        var f = Frame(); f.ethernet(type: 0x0800)
        f.ipv4(src: 1, dst: 2, proto: 132, payloadLength: 16)
        f.be16(5000); f.be16(6000); f.be32(0xdeadbeef); f.be32(0); f.be32(0x01020304)
        let crc = f.bytes.withUnsafeBytes { CRC32C.checksum($0.baseAddress! + 34, count: 16) }
        withUnsafeBytes(of: crc.littleEndian) { for i in 0..<4 { f.bytes[42 + i] = $0[i] } }
        let slot = TestSlot()
        var b = slot.buffer(f.bytes)
        var (key, o) = extract(b.bytes)
        HeaderRewrite.setPorts(&b, offsets: o!, key: &key, proto: 132, src: 1, srcMask: ~0, dst: 2, dstMask: ~0)
        var out = b.bytes
        let stored = UInt32(out[42]) | UInt32(out[43]) << 8 | UInt32(out[44]) << 16 | UInt32(out[45]) << 24
        for i in 42..<46 { out[i] = 0 }
        let expected = out.withUnsafeBytes { CRC32C.checksum($0.baseAddress! + 34, count: 16) }
        #expect(stored == expected)
        #expect(key[.tpSrc] == 1)
    }

    @Test func vlanPushPopRoundTrip() {
        let slot = TestSlot()
        let original = Frame.ipv4TCP().bytes
        var b = slot.buffer(original)
        var (key, o) = extract(b.bytes)
        var offsets = o!
        #expect(HeaderRewrite.pushVLAN(&b, offsets: &offsets, key: &key, tpid: 0x8100, tci: 0x1000 | 10 | 3 << 13))
        #expect(HeaderRewrite.pushVLAN(&b, offsets: &offsets, key: &key, tpid: 0x88a8, tci: 0x1000 | 20))
        let (k2, o2) = extract(b.bytes)
        #expect(k2 == key)
        #expect(o2 == offsets)
        #expect(b.bytes[12] == 0x88 && b.bytes[13] == 0xa8)
        #expect(b.bytes[14] == 0x00 && b.bytes[15] == 20)   // CFI not written to the wire
        #expect(b.bytes[18] == 0x60 && b.bytes[19] == 10)
        HeaderRewrite.popVLAN(&b, offsets: &offsets, key: &key)
        HeaderRewrite.popVLAN(&b, offsets: &offsets, key: &key)
        #expect(b.bytes == original)
        #expect(key == extract(original).0)
        HeaderRewrite.popVLAN(&b, offsets: &offsets, key: &key)  // no tag: no change
        #expect(b.bytes == original)
    }

    @Test func mplsPushSetPop() {
        let slot = TestSlot()
        let original = Frame.ipv4UDP().bytes
        var b = slot.buffer(original)
        var (key, o) = extract(b.bytes)
        var offsets = o!
        #expect(HeaderRewrite.pushMPLS(&b, offsets: &offsets, key: &key, lse: 100 << 12 | 1 << 8 | 64, ethType: 0x8847))
        var (k2, _) = extract(b.bytes)
        #expect(k2[.mplsLSE] == UInt64(100 << 12 | 1 << 8 | 64))
        HeaderRewrite.setMPLS(&b, offsets: offsets, key: &key, lse: 5, mask: 0xff)
        (k2, _) = extract(b.bytes)
        #expect(k2[.mplsLSE] == UInt64(100 << 12 | 1 << 8 | 5))
        HeaderRewrite.popMPLS(&b, offsets: &offsets, key: &key, ethType: 0x0800)
        #expect(b.bytes == original)
    }

    @Test func vxlanEncapDecapRoundTrip() {
        let slot = TestSlot()
        let inner = Frame.ipv4TCP().bytes
        var t = TunnelMetadata()
        t.id = 42; t.ipv4Src = 0xC612_0001; t.ipv4Dst = 0xC612_0002; t.tos = 0x20; t.flags = [.dontFragment, .key]
        let tpl = VXLAN.template(ethSrc: 0x0200_0000_00aa, ethDst: 0x0200_0000_00bb, tunnel: t, udpDst: 4789)
        var b = slot.buffer(inner)
        let ok = tpl.bytes.withUnsafeBytes {
            VXLAN.encapsulate(&b, template: $0, isIPv6: false, udpChecksum: false, sourcePort: 50000, innerTOS: 0x03, ipID: 1)
        }
        #expect(ok)
        let outer = b.bytes
        #expect(outer.count == inner.count + 50)
        #expect(verifyIPv4HeaderChecksum(outer))
        let (ok2, _) = extract(outer)
        #expect(ok2[.ipProto] == 17)
        #expect(ok2[.tpDst] == 4789)
        #expect(ok2[.tpSrc] == 50000)
        #expect(ok2[.ipTOS] == 0x22)  // DSCP from tunnel, CE inner becomes ECT(0)
        #expect(outer[20] == 0x40)    // DF
        #expect(Array(outer.suffix(inner.count)) == inner)

        var d = slot.buffer(outer)
        let meta = VXLAN.decapsulate(&d, port: 4789)
        #expect(meta?.id == 42)
        #expect(meta?.ipv4Src == 0xC612_0001)
        #expect(meta?.tpSrc == 50000)
        #expect(meta?.ttl == 64)
        #expect(meta?.flags == .key)
        #expect(d.bytes == inner)

        var wrongPort = slot.buffer(outer)
        #expect(VXLAN.decapsulate(&wrongPort, port: 4790) == nil)
        #expect(wrongPort.bytes == outer)
    }

    @Test func ecnRules() {
        #expect(ECN.encapsulate(outer: 0xb8, inner: 0x01) == 0xb9)
        #expect(ECN.encapsulate(outer: 0x00, inner: 0x03) == 0x02)
        #expect(ECN.decapsulate(outer: 0x03, inner: 0x00) == nil)
        #expect(ECN.decapsulate(outer: 0x03, inner: 0x02) == 0x03)
        #expect(ECN.decapsulate(outer: 0x00, inner: 0x01) == 0x01)
    }

    @Test func incrementalEqualsFullRecompute() {
        // Exhaustive-ish: random header words, random replacements.
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<2000 {
            var words = (0..<10).map { _ in UInt16.random(in: 0...0xffff, using: &rng) }
            words[5] = 0
            let full = { (w: [UInt16]) -> UInt16 in ~Checksum.fold(w.reduce(UInt64(0)) { $0 + UInt64($1) }) }
            words[5] = full(words)
            let i = Int.random(in: 0..<10, using: &rng)
            if i == 5 { continue }
            let new = UInt16.random(in: 0...0xffff, using: &rng)
            let inc = Checksum.replace16(words[5], old: words[i], new: new)
            words[i] = new
            var check = words; check[5] = 0
            let expect = full(check)
            // 0x0000 and 0xffff are the same in one's complement.
            #expect(inc == expect || (inc ^ expect) == 0xffff && (inc == 0 || inc == 0xffff))
        }
    }
}
