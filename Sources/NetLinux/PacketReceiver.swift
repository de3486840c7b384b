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
    public let batchCapacity: Int

    public init(interface: String, batch: Int = 32) throws(SystemError) {
        let control = try InterfaceControl()
        let ifindex = try control.index(of: interface)
        let protoAll = UInt16(ETH_P_ALL).bigEndian
        let r = try Sys.socket(AF_PACKET, Int32(SOCK_RAW.rawValue), Int32(protoAll))
        try packetSocketOptions(r.raw)
        try syscall("bind(AF_PACKET \(interface))") { cnl_packet_bind(r.raw, ifindex, protoAll) }
        try r.setNonBlocking()
        fd = r
        self.ifindex = ifindex
        batchCapacity = batch
        messages = .allocate(capacity: batch)
        messages.initialize(repeating: cnl_mmsghdr(), count: batch)
        vectors = .allocate(capacity: batch)
        vectors.initialize(repeating: iovec(), count: batch)
    }

    deinit {
        messages.deallocate()
        vectors.deallocate()
    }

    /// Receives up to `count` frames; frame i lands at `buffer(i)` (vnet header first,
    /// `capacity` bytes available). Returns the lengths through `body(i, length)`.
    @inline(__always)
    public func receive(count: Int, capacity: Int, buffer: (Int) -> UnsafeMutableRawPointer,
                        _ body: (Int, Int) -> Void) -> Int {
        let n = min(count, batchCapacity)
        for i in 0..<n {
            vectors[i] = iovec(iov_base: buffer(i), iov_len: capacity)
            messages[i].msg_hdr = msghdr()
            messages[i].msg_hdr.msg_iov = vectors + i
            messages[i].msg_hdr.msg_iovlen = 1
        }
        var got: Int32
        repeat {
            got = cnl_recvmmsg(fd.raw, messages, UInt32(n), Int32(MSG_DONTWAIT))
        } while got < 0 && errno == EINTR
        guard got > 0 else { return 0 }
        for i in 0..<Int(got) { body(i, Int(messages[i].msg_len)) }
        return Int(got)
    }
}
