/// Software TCP segmentation of a GSO superpacket (what a NIC without tunnel TSO must
/// do before it can encapsulate): each segment gets the headers, its slice of payload,
/// fixed IP lengths/IDs/checksum, the right sequence number and flags, and a partial
/// TCP checksum (pseudo-header) left for the output device to complete.
public enum TCPSegmenter {
    /// Number of segments `b` splits into (1 when it is not a TCP GSO packet).
    @inlinable
    public static func segmentCount(_ b: PacketBuffer, offsets: HeaderOffsets) -> Int {
        guard b.offload.isGSO, b.offload.gsoSize > 0, offsets.hasL4, b.length >= offsets.l4 + 20 else { return 1 }
        let hdr = offsets.l4 + Int(b.data.u8(offsets.l4 + 12) >> 4) * 4
        let payload = b.length - hdr
        return max(1, (payload + Int(b.offload.gsoSize) - 1) / Int(b.offload.gsoSize))
    }

    /// Writes segment `index` of `b` into `out` (which must have room for headers plus
    /// gso_size bytes at `out.head`). Returns false if `b` is not segmentable.
    @inlinable
    public static func segment(_ b: PacketBuffer, offsets: HeaderOffsets, index: Int, into out: inout PacketBuffer) -> Bool {
        let th = offsets.l4, nh = offsets.l3
        guard offsets.hasL4, b.length >= th + 20 else { return false }
        let p = b.data
        let tcpLen = Int(p.u8(th + 12) >> 4) * 4
        let hdr = th + tcpLen
        let mss = Int(b.offload.gsoSize)
        guard mss > 0, hdr <= b.length else { return false }
        let payloadTotal = b.length - hdr
        let start = index * mss
        guard start < max(payloadTotal, 1) else { return false }
        let chunk = min(mss, payloadTotal - start)
        let total = hdr + chunk
        guard total <= out.capacity - out.head else { return false }
        let q = out.data
        q.copyMemory(from: p, byteCount: hdr)
        (q + hdr).copyMemory(from: p + hdr + start, byteCount: chunk)
        out.length = total
        let last = start + chunk >= payloadTotal

        let isV4 = q.u8(nh) >> 4 == 4
        let l4Length = tcpLen + chunk
        if isV4 {
            q.setBE16(nh + 2, UInt16(total - nh))
            q.setBE16(nh + 4, p.be16(nh + 4) &+ UInt16(truncatingIfNeeded: index))
            q.setBE16(nh + 10, 0)
            let ihl = Int(q.u8(nh) & 0x0f) * 4
            q.setBE16(nh + 10, Checksum.compute(q + nh, count: ihl))
        } else {
            q.setBE16(nh + 4, UInt16(total - nh - 40))
        }
        q.setBE32(th + 4, p.be32(th + 4) &+ UInt32(truncatingIfNeeded: start))
        var flags = p.be16(th + 12)
        if !last { flags &= ~UInt16(0x09) }       // FIN, PSH only on the last segment
        if index > 0 { flags &= ~UInt16(0x80) }   // CWR only on the first
        q.setBE16(th + 12, flags)
        let pseudo = isV4
            ? Checksum.pseudoHeaderIPv4(src: q.be32(nh + 12), dst: q.be32(nh + 16), proto: IPProto.tcp, length: l4Length)
            : Checksum.pseudoHeaderIPv6(src: q.be128(nh + 8), dst: q.be128(nh + 24), proto: IPProto.tcp, length: l4Length)
        q.setBE16(th + 16, Checksum.fold(pseudo))
        out.offload = OffloadInfo(flags: OffloadInfo.needsChecksum, checksumStart: UInt16(th), checksumOffset: 16)
        return true
    }
}
