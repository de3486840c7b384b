import CNetLinux
import NetLinux
import Packet

#if canImport(Glibc)
import Glibc
#endif

/// The software data path of a vxlan vport, as the kernel's vport-vxlan does it with
/// a flow-based tunnel key: transmit builds IP/UDP/VXLAN in front of the frame and
/// lets the kernel route it and resolve the neighbour (a raw IPv4 socket); receive
/// takes the VXLAN payloads the kernel's UDP stack delivers to the vport's port.
enum VXLANSockets {
    static func open(udpPort: UInt16) throws(SystemError) -> TunnelSockets {
        let rx = try syscall("socket(udp \(udpPort))") { cnl_udp_tunnel_socket(udpPort) }
        let tx = try syscall("socket(raw ipv4)") { cnl_raw_ipv4_socket() }
        return TunnelSockets(rx: FileDescriptor(adopting: rx), tx: FileDescriptor(adopting: tx), tx6: nil)
    }
}

/// Per-engine receive vectors for the tunnel socket, allocated once.
final class TunnelReceiveVectors: @unchecked Sendable {
    static let batch = 32
    let messages: UnsafeMutablePointer<cnl_mmsghdr>
    let vectors: UnsafeMutablePointer<iovec>
    let names: UnsafeMutablePointer<sockaddr_in>
    let control: UnsafeMutableRawPointer
    static let controlSize = 128

    init() {
        let n = TunnelReceiveVectors.batch
        messages = .allocate(capacity: n)
        messages.initialize(repeating: cnl_mmsghdr(), count: n)
        vectors = .allocate(capacity: n)
        vectors.initialize(repeating: iovec(), count: n)
        names = .allocate(capacity: n)
        names.initialize(repeating: sockaddr_in(), count: n)
        control = .allocate(byteCount: n * TunnelReceiveVectors.controlSize, alignment: 8)
    }

    deinit {
        messages.deallocate()
        vectors.deallocate()
        names.deallocate()
        control.deallocate()
    }
}

extension PacketEngine {
    /// Outer headers: IPv4 + UDP + VXLAN (the kernel adds Ethernet when it routes).
    static let tunnelHeaderLength = 20 + 8 + 8
    /// What the tunnel costs an inner frame on the wire (inner Ethernet counted, as the kernel's VXLAN_HEADROOM).
    static let tunnelOverhead = 50

    // MARK: Receive

    func receiveTunnel(on port: Vport) {
        guard let socks = port.tunnel else { return }
        let v = tunnelVectors
        let n = TunnelReceiveVectors.batch
        for i in 0..<n {
            // The VXLAN header lands just before the slot's headroom mark, so the inner frame starts at `head`.
            v.vectors[i] = iovec(iov_base: pool.slot(i) + SlotPool.headroom - VXLAN.headerLength,
                                 iov_len: SlotPool.frameCapacity + VXLAN.headerLength)
            v.messages[i].msg_hdr = msghdr()
            v.messages[i].msg_hdr.msg_iov = v.vectors + i
            v.messages[i].msg_hdr.msg_iovlen = 1
            v.messages[i].msg_hdr.msg_name = UnsafeMutableRawPointer(v.names + i)
            v.messages[i].msg_hdr.msg_namelen = socklen_t(MemoryLayout<sockaddr_in>.size)
            v.messages[i].msg_hdr.msg_control = v.control + i * TunnelReceiveVectors.controlSize
            v.messages[i].msg_hdr.msg_controllen = TunnelReceiveVectors.controlSize
        }
        let got = cnl_recvmmsg(socks.rx.raw, v.messages, UInt32(n), Int32(MSG_DONTWAIT))
        guard got > 0 else { return }
        for i in 0..<Int(got) {
            let len = Int(v.messages[i].msg_len)
            let payload = pool.slot(i) + SlotPool.headroom - VXLAN.headerLength
            // VXLAN: flags (I bit) and a 24-bit VNI.
            guard len >= VXLAN.headerLength + 14, payload.u8(0) & 0x08 != 0 else {
                port.rxErrors.wrappingAdd(1, ordering: .relaxed)
                continue
            }
            var t = TunnelMetadata()
            var dst: UInt32 = 0, tos: UInt8 = 0, ttl: UInt8 = 0
            withUnsafePointer(to: &v.messages[i].msg_hdr) { cnl_udp_tunnel_info($0, &dst, &tos, &ttl) }
            t.ipv4Src = cnl_sockaddr_in_addr(v.names + i)
            t.tpSrc = cnl_sockaddr_in_port(v.names + i)
            t.ipv4Dst = dst
            t.tpDst = port.udpPort
            t.tos = tos
            t.ttl = ttl
            t.id = UInt64(payload.be32(4) >> 8)
            t.flags = .key
            // The socket sees neither the outer DF bit nor the UDP checksum, which the
            // kernel's vxlan puts in the key (df, csum) as the hardware's parser does:
            // the pipeline noted them in the VXLAN header's reserved last byte
            // (ESW_VXLAN_NOTE, bpf/esw_shared.h) when it sent the frame up p0.
            let note = payload.u8(7)
            if note & VXLAN.pipelineNote != 0 {
                t.flags.formUnion(TunnelFlags(rawValue: UInt64(note & VXLAN.pipelineNoteFlags)))
            }
            var b = PacketBuffer(storage: pool.slot(i), capacity: SlotPool.slotSize, head: SlotPool.headroom,
                                 length: len - VXLAN.headerLength)
            // RFC 6040: a CE mark on the outer header reaches the inner one; CE on not-ECT drops.
            if !Self.applyECNDecap(&b, outerTOS: tos) {
                port.rxDropped.wrappingAdd(1, ordering: .relaxed)
                continue
            }
            Self.markSuperframe(&b)
            receive(&b, on: port, tunnel: t)
        }
        flush()
    }

    /// A datagram bigger than any wire frame is a TCP superframe the sender's stack
    /// handed over whole (the host's UDP socket keeps UDP-tunnel GSO packets whole).
    /// It leaves as one again, with the offload the kernel needs to send it on: TCP
    /// GSO and a partial checksum seeded with the pseudo-header, whatever the sender
    /// left in the field.
    static func markSuperframe(_ b: inout PacketBuffer, largestFrame: Int = 1518, segment: UInt16 = 1400) {
        guard b.length > largestFrame, b.length <= 65535 + 14 else { return }
        let p = b.data
        let l4: Int, gso: UInt8, pseudo: UInt64
        switch p.be16(12) {
        case EtherType.ipv4:
            let ihl = Int(p.u8(14) & 0x0f) * 4
            guard ihl >= 20, p.u8(23) == IPProto.tcp, p.be16(20) & 0x3fff == 0 else { return }
            l4 = 14 + ihl
            gso = OffloadInfo.gsoTCPv4
            pseudo = Checksum.pseudoHeaderIPv4(src: p.be32(26), dst: p.be32(30), proto: IPProto.tcp, length: b.length - l4)
        case EtherType.ipv6:
            guard p.u8(20) == IPProto.tcp else { return }
            l4 = 54
            gso = OffloadInfo.gsoTCPv6
            pseudo = Checksum.pseudoHeaderIPv6(src: p.be128(22), dst: p.be128(38), proto: IPProto.tcp, length: b.length - l4)
        default:
            return
        }
        guard b.length >= l4 + 20 else { return }
        let headers = l4 + Int(p.u8(l4 + 12) >> 4) * 4
        p.setBE16(l4 + 16, Checksum.fold(pseudo))
        b.offload = OffloadInfo(flags: OffloadInfo.needsChecksum, gsoType: gso, headerLength: UInt16(headers),
                                gsoSize: segment, checksumStart: UInt16(l4), checksumOffset: 16)
    }

    /// As the kernel's INET_ECN_decapsulate, by the inner Ethernet type (IPv4 or IPv6;
    /// a VLAN-tagged inner frame is left alone, as the kernel's skb->protocol is then
    /// the tag's). Returns false when the packet must be dropped.
    static func applyECNDecap(_ b: inout PacketBuffer, outerTOS: UInt8) -> Bool {
        guard outerTOS & ECN.mask == ECN.ce, b.length >= 14 + 20 else { return true }
        let p = b.data
        if p.be16(12) == EtherType.ipv6 {
            guard b.length >= 14 + 40, p.u8(14) >> 4 == 6 else { return true }
            let first = p.be32(14)
            let tc = UInt8(truncatingIfNeeded: first >> 20)
            guard let newECN = ECN.decapsulate(outer: outerTOS, inner: tc) else { return false }
            let newTC = (tc & ~ECN.mask) | newECN
            if newTC != tc { p.setBE32(14, (first & 0xf00f_ffff) | UInt32(newTC) << 20) }
            return true
        }
        guard p.be16(12) == EtherType.ipv4 else { return true }
        let tos = p.u8(15)
        guard let newECN = ECN.decapsulate(outer: outerTOS, inner: tos) else { return false }
        let newTOS = (tos & ~ECN.mask) | newECN
        if newTOS != tos {
            let oldWord = p.be16(14), newWord = (oldWord & 0xff00) | UInt16(newTOS)
            p.setBE16(14, newWord)
            p.setBE16(24, Checksum.replace16(p.be16(24), old: oldWord, new: newWord))
        }
        return true
    }

    // MARK: Transmit

    func sendTunnel(_ b: inout PacketBuffer, port: Vport, key: FlowKey, offsets: HeaderOffsets, tunnel: TunnelMetadata?) {
        guard let t = tunnel, t.ipv4Dst != 0, let socks = port.tunnel else {
            port.txDropped.wrappingAdd(1, ordering: .relaxed)
            return
        }
        let gsoType = b.offload.gsoType & 0x7f
        if b.offload.isGSO && (gsoType == OffloadInfo.gsoTCPv4 || gsoType == OffloadInfo.gsoTCPv6) {
            let n = TCPSegmenter.segmentCount(b, offsets: offsets)
            for s in 0..<n {
                var seg = spareBuffer()
                guard TCPSegmenter.segment(b, offsets: offsets, index: s, into: &seg) else { break }
                VXLAN.finishPartialChecksum(&seg)
                sendTunnelFrame(&seg, port: port, socks: socks, key: key, tunnel: t)
            }
            return
        }
        VXLAN.finishPartialChecksum(&b)
        sendTunnelFrame(&b, port: port, socks: socks, key: key, tunnel: t)
    }

    private func sendTunnelFrame(_ b: inout PacketBuffer, port: Vport, socks: TunnelSockets, key: FlowKey, tunnel t: TunnelMetadata) {
        let innerLength = b.length
        let innerTOS = UInt8(truncatingIfNeeded: key[.ipTOS])
        guard b.push(PacketEngine.tunnelHeaderLength) else {
            port.txErrors.wrappingAdd(1, ordering: .relaxed)
            return
        }
        let p = b.data
        let df = t.flags.contains(.dontFragment)
        p.setU8(0, 0x45)
        p.setU8(1, ECN.encapsulate(outer: t.tos, inner: innerTOS))
        p.setBE16(2, UInt16(truncatingIfNeeded: innerLength + PacketEngine.tunnelHeaderLength))
        p.setBE16(4, 0)                      // the kernel picks the identification
        p.setBE16(6, df ? 0x4000 : 0)
        p.setU8(8, t.ttl == 0 ? 64 : t.ttl)
        p.setU8(9, IPProto.udp)
        p.setBE16(10, 0)                     // the kernel computes the header checksum
        p.setBE32(12, t.ipv4Src)             // 0: the kernel picks the route's source
        p.setBE32(16, t.ipv4Dst)
        p.setBE16(20, VXLAN.sourcePort(hash: key.hashValue32))
        p.setBE16(22, t.tpDst != 0 ? t.tpDst : port.udpPort)
        p.setBE16(24, UInt16(truncatingIfNeeded: innerLength + 16))
        p.setBE16(26, 0)
        p.setBE32(28, 0x0800_0000)
        p.setBE32(32, UInt32(truncatingIfNeeded: t.id & 0xff_ffff) << 8)
        if t.flags.contains(.checksum) { setUDPChecksum(ip: p, udpLength: innerLength + 16, tunnel: t) }
        let r = cnl_sendto_ipv4(socks.tx.raw, p, b.length, t.ipv4Dst)
        if r >= 0 {
            port.countTX(innerLength)
            return
        }
        if errno == EMSGSIZE {
            _ = b.pull(PacketEngine.tunnelHeaderLength)
            tunnelTooBig(&b, port: port, socks: socks, key: key, tunnel: t)
        } else {
            port.txErrors.wrappingAdd(1, ordering: .relaxed)
        }
    }

    /// The outer UDP checksum a tunnel key with `csum` asks for, as the kernel's vxlan
    /// computes it (udp_set_csum; zero goes on the wire as 0xffff). It covers the
    /// pseudo-header, so a source left to the kernel (zero: IPPROTO_RAW fills it in) is
    /// taken from the route here and written into the header at `ip`, where the UDP
    /// header follows a 20-byte IPv4 header. Returns the source.
    @discardableResult
    private func setUDPChecksum(ip p: UnsafeMutableRawPointer, udpLength: Int, tunnel t: TunnelMetadata) -> UInt32 {
        let source = t.ipv4Src != 0 ? t.ipv4Src : route(to: t.ipv4Dst).source
        p.setBE32(12, source)
        p.setBE16(26, 0)
        let pseudo = Checksum.pseudoHeaderIPv4(src: source, dst: t.ipv4Dst, proto: IPProto.udp, length: udpLength)
        let c = Checksum.compute(p + 20, count: udpLength, initial: pseudo)
        p.setBE16(26, c == 0 ? 0xffff : c)
        return source
    }

    /// The encapsulated frame exceeds the path MTU: handled as the kernel's vxlan does.
    private func tunnelTooBig(_ b: inout PacketBuffer, port: Vport, socks: TunnelSockets, key: FlowKey, tunnel t: TunnelMetadata) {
        let (mtu, source) = route(to: t.ipv4Dst)
        let innerDF = key[.ethType] == UInt64(EtherType.ipv4) && b.length >= 34 && b.data.be16(20) & 0x4000 != 0
        // As skb_tunnel_check_pmtu: an inner packet that may not be fragmented gets
        // "fragmentation needed"; otherwise the outer packet is fragmented, unless the
        // tunnel key sets DF, when the kernel's IP output drops it.
        if innerDF {
            port.txDropped.wrappingAdd(1, ordering: .relaxed)
            replyFragmentationNeeded(b, port: port, tunnel: t, source: source, mtu: max(68, mtu - PacketEngine.tunnelOverhead))
            return
        }
        // IPv6 is never fragmented on the way: the sender gets Packet Too Big (when the
        // kernel would send one; else the outer packet goes on as below).
        if key[.ethType] == UInt64(EtherType.ipv6),
           replyPacketTooBig(b, key: key, port: port, tunnel: t, source: source, mtu: mtu - PacketEngine.tunnelOverhead) {
            port.txDropped.wrappingAdd(1, ordering: .relaxed)
            return
        }
        if t.flags.contains(.dontFragment) {
            port.txDropped.wrappingAdd(1, ordering: .relaxed)
            return
        }
        sendFragmented(&b, port: port, socks: socks, key: key, tunnel: t, mtu: mtu)
    }

    private func sendFragmented(_ b: inout PacketBuffer, port: Vport, socks: TunnelSockets, key: FlowKey, tunnel t: TunnelMetadata, mtu: Int) {
        // Build the whole outer packet once in a spare buffer, then cut it into fragments.
        var whole = spareBuffer()
        let payloadLength = b.length + 16
        let chunk = ((mtu - 20) / 8) * 8
        guard chunk >= 8 else { return }
        let id = UInt16(truncatingIfNeeded: now >> 8) | 1
        whole.length = 20 + payloadLength
        let w = whole.data
        w.setBE16(20, VXLAN.sourcePort(hash: key.hashValue32))
        w.setBE16(22, t.tpDst != 0 ? t.tpDst : port.udpPort)
        w.setBE16(24, UInt16(truncatingIfNeeded: payloadLength))
        w.setBE16(26, 0)
        w.setBE32(28, 0x0800_0000)
        w.setBE32(32, UInt32(truncatingIfNeeded: t.id & 0xff_ffff) << 8)
        (w + 36).copyMemory(from: b.data, byteCount: b.length)
        var source = t.ipv4Src
        if t.flags.contains(.checksum) {
            w.setBE32(12, t.ipv4Src)
            w.setBE32(16, t.ipv4Dst)
            source = setUDPChecksum(ip: w, udpLength: payloadLength, tunnel: t)
        }
        var offset = 0
        let frag = spareBuffer()
        while offset < payloadLength {
            let n = min(chunk, payloadLength - offset)
            let more = offset + n < payloadLength
            let f = frag.data
            f.setU8(0, 0x45)
            f.setU8(1, ECN.encapsulate(outer: t.tos, inner: UInt8(truncatingIfNeeded: key[.ipTOS])))
            f.setBE16(2, UInt16(20 + n))
            f.setBE16(4, id)
            f.setBE16(6, (more ? 0x2000 : 0) | UInt16(offset / 8))
            f.setU8(8, t.ttl == 0 ? 64 : t.ttl)
            f.setU8(9, IPProto.udp)
            f.setBE16(10, 0)
            f.setBE32(12, source)
            f.setBE32(16, t.ipv4Dst)
            (f + 20).copyMemory(from: w + 20 + offset, byteCount: n)
            if cnl_sendto_ipv4(socks.tx.raw, f, 20 + n, t.ipv4Dst) < 0 {
                port.txErrors.wrappingAdd(1, ordering: .relaxed)
                return
            }
            offset += n
        }
        port.countTX(b.length)
    }

    /// iptunnel_pmtud_build_icmp(): an ICMP "fragmentation needed" from the inner
    /// destination to the inner source, received back on the tunnel port with the
    /// tunnel endpoints swapped, so the decap flows carry it to the sender.
    /// What the kernel's vxlan does for a bridged port (skb_tunnel_check_pmtu): the
    /// ICMP goes back in through the tunnel port, as if the far end had sent it, with
    /// the transmit tunnel key's addresses swapped (the source as routing chose it).
    private func replyFragmentationNeeded(_ original: PacketBuffer, port: Vport, tunnel t: TunnelMetadata, source: UInt32, mtu: Int) {
        let o = original.data
        guard original.length >= 34 else { return }
        let ihl = Int(o.u8(14) & 0x0f) * 4
        let quoted = min(original.length - 14, ihl + 8)
        var r = spareBuffer()
        r.length = 14 + 20 + 8 + quoted
        let p = r.data
        p.setBE48(0, o.be48(6))
        p.setBE48(6, o.be48(0))
        p.setBE16(12, EtherType.ipv4)
        p.setU8(14, 0x45)
        p.setU8(15, 0)
        p.setBE16(16, UInt16(20 + 8 + quoted))
        p.setBE16(18, 0)
        p.setBE16(20, 0)
        p.setU8(22, 64)
        p.setU8(23, IPProto.icmp)
        p.setBE16(24, 0)
        p.setBE32(26, o.be32(30))   // from the original destination
        p.setBE32(30, o.be32(26))   // to the original source
        p.setBE16(24, Checksum.compute(p + 14, count: 20))
        p.setU8(34, 3)              // destination unreachable
        p.setU8(35, 4)              // fragmentation needed
        p.setBE16(36, 0)
        p.setBE16(38, 0)
        p.setBE16(40, UInt16(truncatingIfNeeded: mtu))
        (p + 42).copyMemory(from: o + 14, byteCount: quoted)
        p.setBE16(36, Checksum.compute(p + 34, count: 8 + quoted))
        receiveBack(&r, on: port, tunnel: t, source: source)
    }

    /// A reply to the sender comes in through the tunnel port as if the far end had sent
    /// it: the transmit key's addresses swapped (the source as routing chose it).
    private func receiveBack(_ r: inout PacketBuffer, on port: Vport, tunnel t: TunnelMetadata, source: UInt32) {
        var back = t
        back.ipv4Src = t.ipv4Dst
        back.ipv4Dst = t.ipv4Src != 0 ? t.ipv4Src : source
        receive(&r, on: port, tunnel: back)
    }

    /// iptunnel_pmtud_check_icmpv6() and iptunnel_pmtud_build_icmpv6(): an ICMPv6 Packet
    /// Too Big carrying the tunnel's MTU, from the inner destination to the inner source,
    /// quoting as much of the packet as fits in the IPv6 minimum MTU, received back on the
    /// tunnel port as `replyFragmentationNeeded` is. None (false) for a tunnel MTU below
    /// 1280, an unspecified, multicast or loopback source, a non-first fragment, or an
    /// ICMPv6 error or redirect, as in the kernel.
    /// The packet's flow key already has what the kernel walks the extension headers for
    /// (a later fragment; the ICMPv6 type in tp_src).
    private func replyPacketTooBig(_ original: PacketBuffer, key: FlowKey, port: Vport, tunnel t: TunnelMetadata,
                                   source: UInt32, mtu: Int) -> Bool {
        let o = original.data
        guard mtu >= 1280, original.length >= 14 + 40, o.be16(12) == EtherType.ipv6 else { return false }
        let innerSource = o.be128(22)
        if innerSource == 0 || innerSource == 1 || innerSource >> 120 == 0xff { return false }
        if key[.ipFrag] == UInt64(FragmentType.later.rawValue) { return false }
        if key[.ipProto] == UInt64(IPProto.icmpv6), key[.tpSrc] < 128 || key[.tpSrc] == 137 {
            return false   // an error, or a redirect
        }
        let quoted = min(original.length - 14, 1280 - 40 - 8)
        var r = spareBuffer()
        r.length = 14 + 40 + 8 + quoted
        let p = r.data
        p.setBE48(0, o.be48(6))
        p.setBE48(6, o.be48(0))
        p.setBE16(12, EtherType.ipv6)
        p.setBE32(14, 0x6000_0000)
        p.setBE16(18, UInt16(8 + quoted))
        p.setU8(20, IPProto.icmpv6)
        p.setU8(21, o.u8(21))             // the original hop limit
        p.setBE128(22, o.be128(38))       // from the original destination
        p.setBE128(38, innerSource)       // to the original source
        p.setU8(54, 2)                    // packet too big
        p.setU8(55, 0)
        p.setBE16(56, 0)
        p.setBE32(58, UInt32(mtu))
        (p + 62).copyMemory(from: o + 14, byteCount: quoted)
        let pseudo = Checksum.pseudoHeaderIPv6(src: p.be128(22), dst: innerSource, proto: IPProto.icmpv6, length: 8 + quoted)
        p.setBE16(56, Checksum.compute(p + 54, count: 8 + quoted, initial: pseudo))
        receiveBack(&r, on: port, tunnel: t, source: source)
        return true
    }

    /// The MTU of the route to `dst` (what the kernel would fragment or refuse at) and
    /// the source address the kernel picks for it.
    func route(to dst: UInt32) -> (mtu: Int, source: UInt32) {
        var sin = sockaddr_in()
        sin.sin_family = sa_family_t(AF_INET)
        sin.sin_addr.s_addr = dst.bigEndian
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { return (1500, 0) }
        defer { close(fd) }
        let ok = withUnsafePointer(to: &sin) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard ok == 0 else { return (1500, 0) }
        var mtu: Int32 = 0
        var len = socklen_t(4)
        if getsockopt(fd, Int32(IPPROTO_IP), IP_MTU, &mtu, &len) != 0 || mtu <= 0 { mtu = 1500 }
        var local = sockaddr_in()
        var localLength = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &local) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &localLength) }
        }
        return (Int(mtu), UInt32(bigEndian: local.sin_addr.s_addr))
    }
}
