import CNetLinux

/// The receive side of AF_PACKET for software-path vports: recvmmsg() with
/// PACKET_VNET_HDR straight into caller-provided buffers. Unlike a TPACKET_V3 ring it
/// hands over every frame at once (no block-retire delay), which is what a software
/// switch port wants for latency.
public struct PacketReceiver: ~Copyable {
    public let fd: FileDescriptor
    public let ifindex: Int32
    private let messages: UnsafeMutablePointer<cnl_mmsghdr>
    private let vectors: UnsafeMutablePointer<iovec>
    private let controls: UnsafeMutableRawPointer
    private let controlSpace: Int
    public let batchCapacity: Int

    public init(interface: String, batch: Int = 32) throws(SystemError) {
        let control = try InterfaceControl()
        let ifindex = try control.index(of: interface)
        let protoAll = UInt16(ETH_P_ALL).bigEndian
        let r = try Sys.socket(AF_PACKET, Int32(SOCK_RAW.rawValue), Int32(protoAll))
        try packetSocketOptions(r.raw)
        // The kernel takes VLAN tags off into metadata; PACKET_AUXDATA gives them back.
        try Sys.setsockopt(r.raw, SOL_PACKET, PACKET_AUXDATA, Int32(1), "PACKET_AUXDATA")
        try syscall("bind(AF_PACKET \(interface))") { cnl_packet_bind(r.raw, ifindex, protoAll) }
        try r.setNonBlocking()
        fd = r
        self.ifindex = ifindex
        batchCapacity = batch
        messages = .allocate(capacity: batch)
        messages.initialize(repeating: cnl_mmsghdr(), count: batch)
        vectors = .allocate(capacity: batch)
        vectors.initialize(repeating: iovec(), count: batch)
        controlSpace = Int(CNL_PACKET_CMSG_SPACE)
        controls = .allocate(byteCount: controlSpace * batch, alignment: 8)
    }

    deinit {
        messages.deallocate()
        vectors.deallocate()
        controls.deallocate()
    }

    /// Whether each frame comes with its skb->mark (SO_RCVMARK, Linux 5.19): what a tc
    /// program set reaches the socket, since a redirect within one namespace keeps it.
    /// Off by default: the control message costs the kernel a little per frame.
    public func receiveMarks(_ on: Bool) {
        _ = try? Sys.setsockopt(fd.raw, SOL_SOCKET, SO_RCVMARK, Int32(on ? 1 : 0), "SO_RCVMARK")
    }

    /// Receives up to `count` frames; frame i lands at `buffer(i)` (vnet header first,
    /// `capacity` bytes available). Reports each through `body(i, length, vlan, mark)`,
    /// where `vlan` is the tag the kernel stripped, to be put back, and `mark` the
    /// frame's skb->mark while `receiveMarks` is on (else 0).
    @inline(__always)
    public func receive(count: Int, capacity: Int, buffer: (Int) -> UnsafeMutableRawPointer,
                        _ body: (Int, Int, VLANTag?, UInt32) -> Void) -> Int {
        let n = min(count, batchCapacity)
        for i in 0..<n {
            vectors[i] = iovec(iov_base: buffer(i), iov_len: capacity)
            messages[i].msg_hdr = msghdr()
            messages[i].msg_hdr.msg_iov = vectors + i
            messages[i].msg_hdr.msg_iovlen = 1
            messages[i].msg_hdr.msg_control = controls + i * controlSpace
            messages[i].msg_hdr.msg_controllen = controlSpace
        }
        var got: Int32
        repeat {
            got = cnl_recvmmsg(fd.raw, messages, UInt32(n), Int32(MSG_DONTWAIT))
        } while got < 0 && errno == EINTR
        guard got > 0 else { return 0 }
        for i in 0..<Int(got) {
            var tci: UInt16 = 0, tpid: UInt16 = 0
            var mark: UInt32 = 0
            let tagged = withUnsafePointer(to: &messages[i].msg_hdr) { cnl_packet_cmsgs($0, &tci, &tpid, &mark) } == 1
            body(i, Int(messages[i].msg_len), tagged ? VLANTag(tpid: tpid, tci: tci) : nil, mark)
        }
        return Int(got)
    }
}
