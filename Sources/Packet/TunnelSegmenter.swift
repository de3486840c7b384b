/// Segmentation of a UDP-encapsulated (VXLAN) TCP superframe into the packets a wire
/// would have carried: one outer packet per inner TCP segment, with every checksum
/// complete. A veth "wire" passes the sender's GSO frames and partial checksums
/// through; the host stack behind an emulated NIC must see what a real wire delivers.
public enum TunnelSegmenter {
    /// The inner frame's start when `b` is Ethernet/IP/UDP carrying a VXLAN-sized
    /// encapsulation header in front of a TCP superframe, else nil.
    @inlinable
    public static func innerStart(_ b: PacketBuffer, outer: HeaderOffsets) -> Int? {
        guard b.offload.isGSO, outer.hasL4 else { return nil }
        let gso = b.offload.gsoType & 0x7f
        guard gso == OffloadInfo.gsoTCPv4 || gso == OffloadInfo.gsoTCPv6 else { return nil }
        let p = b.data
        let isIPv4 = p.u8(outer.l3) >> 4 == 4
        let proto = isIPv4 ? p.u8(outer.l3 + 9) : p.u8(outer.l3 + 6)
        let inner = outer.l4 + 8 + VXLAN.headerLength
        guard proto == IPProto.udp, b.length > inner + 14 else { return nil }
        return inner
    }

    /// Writes outer packet `index` into `out` (which needs `inner` bytes of headroom).
    /// `innerOffsets` are relative to the inner frame.
    @inlinable
    public static func segment(_ b: PacketBuffer, outer: HeaderOffsets, inner: Int, innerOffsets: HeaderOffsets,
                               index: Int, into out: inout PacketBuffer) -> Bool {
        var innerFrame = b
        guard innerFrame.pull(inner) else { return false }
        innerFrame.offload.shift(by: -inner)
        guard TCPSegmenter.segment(innerFrame, offsets: innerOffsets, index: index, into: &out) else { return false }
        VXLAN.finishPartialChecksum(&out)
        guard out.push(inner) else { return false }
        let p = out.data
        p.copyMemory(from: b.data, byteCount: inner)
        let l3 = outer.l3, l4 = outer.l4
        let udpLength = out.length - l4
        if p.u8(l3) >> 4 == 4 {
            let ihl = Int(p.u8(l3) & 0x0f) * 4
            p.setBE16(l3 + 2, UInt16(truncatingIfNeeded: out.length - l3))
            p.setBE16(l3 + 4, p.be16(l3 + 4) &+ UInt16(truncatingIfNeeded: index))
            p.setBE16(l3 + 10, 0)
            p.setBE16(l3 + 10, Checksum.compute(p + l3, count: ihl))
        } else {
            p.setBE16(l3 + 4, UInt16(truncatingIfNeeded: out.length - l3 - 40))
        }
        p.setBE16(l4 + 4, UInt16(truncatingIfNeeded: udpLength))
        if p.be16(l4 + 6) != 0 || p.u8(l3) >> 4 == 6 {
            p.setBE16(l4 + 6, 0)
            let pseudo = p.u8(l3) >> 4 == 4
                ? Checksum.pseudoHeaderIPv4(src: p.be32(l3 + 12), dst: p.be32(l3 + 16), proto: IPProto.udp, length: udpLength)
                : Checksum.pseudoHeaderIPv6(src: p.be128(l3 + 8), dst: p.be128(l3 + 24), proto: IPProto.udp, length: udpLength)
            let c = Checksum.compute(p + l4, count: udpLength, initial: pseudo)
            p.setBE16(l4 + 6, c == 0 ? 0xffff : c)
        }
        out.offload = OffloadInfo(flags: OffloadInfo.dataValid)
        return true
    }
}
