import CNetLinux

/// The 12-byte header in front of every frame on a vnet-header TAP or AF_PACKET socket
/// (virtio_net_hdr plus num_buffers), host byte order.
public enum VirtioNetHeader {
    public static let size = 12
    /// struct virtio_net_hdr without num_buffers.
    public static let legacySize = 10
    // struct virtio_net_hdr: flags u8, gso_type u8, hdr_len u16, gso_size u16,
    // csum_start u16, csum_offset u16, num_buffers u16 (mrg_rxbuf).
}

/// A VLAN tag the kernel moved from the frame into packet metadata on receive
/// (hardware VLAN acceleration, which veth and most NICs do).
public struct VLANTag: Sendable, Equatable {
    public var tpid: UInt16
    public var tci: UInt16
    public init(tpid: UInt16, tci: UInt16) {
        self.tpid = tpid
        self.tci = tci
    }
}

/// The transmit side: an AF_PACKET socket that receives nothing (protocol 0), sending
/// batches with sendmmsg. One per thread. `bypassQdisc` (PACKET_QDISC_BYPASS) skips the
/// qdisc and the taps; the software datapath never sets it (representors' egress
/// programs and tcpdump must see what it sends).
public struct PacketSender: ~Copyable {
    public let fd: FileDescriptor
    private let messages: UnsafeMutablePointer<cnl_mmsghdr>
    private let vectors: UnsafeMutablePointer<iovec>
    public let batchCapacity: Int
    public private(set) var pending = 0
    public private(set) var dropped: UInt64 = 0
    /// Frames the kernel refused one by one (EMSGSIZE: longer than the device's MTU, as
    /// the kernel datapath's ovs_vport_send drops them) and their queued bytes (vnet
    /// header included), since the last `takeRefused`.
    private var refused: (packets: UInt64, bytes: UInt64) = (0, 0)

    public init(ifindex: Int32, batch: Int = 64, bypassQdisc: Bool) throws(SystemError) {
        let t = try Sys.socket(AF_PACKET, Int32(SOCK_RAW.rawValue), 0)
        try packetSocketOptions(t.raw)
        if bypassQdisc { try Sys.setsockopt(t.raw, SOL_PACKET, PACKET_QDISC_BYPASS, Int32(1), "PACKET_QDISC_BYPASS") }
        try syscall("bind(AF_PACKET tx)") { cnl_packet_bind(t.raw, ifindex, 0) }
        fd = t
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

    /// Queues a frame (vnet header included); the memory must stay valid until `flush`.
    /// Flushes when the batch is full.
    @inline(__always)
    public mutating func enqueue(_ frame: UnsafeRawPointer, length: Int) {
        vectors[pending] = iovec(iov_base: UnsafeMutableRawPointer(mutating: frame), iov_len: length)
        messages[pending].msg_hdr.msg_iov = vectors + pending
        messages[pending].msg_hdr.msg_iovlen = 1
        pending += 1
        if pending == batchCapacity { flush() }
    }

    /// Sends every queued frame with as few sendmmsg calls as the kernel allows.
    public mutating func flush() {
        var done = 0
        while done < pending {
            let r = cnl_sendmmsg(fd.raw, messages + done, UInt32(pending - done), Int32(MSG_DONTWAIT))
            if r <= 0 {
                let e = errno
                if r < 0 && e == EINTR { continue }
                if r < 0 && e != EAGAIN && e != EWOULDBLOCK && e != ENOBUFS {
                    // sendmmsg stops at the first frame the kernel refuses: that frame
                    // alone is lost, the ones queued after it still go.
                    refused.packets &+= 1
                    refused.bytes &+= UInt64(vectors[done].iov_len)
                    done += 1
                    continue
                }
                // ENOBUFS/EAGAIN: the device queue is full; the frames are lost, as on a NIC.
                dropped &+= UInt64(pending - done)
                break
            }
            done += Int(r)
        }
        pending = 0
    }

    /// The frames refused since the last call, and their queued bytes (vnet header included).
    public mutating func takeRefused() -> (packets: UInt64, bytes: UInt64) {
        defer { refused = (0, 0) }
        return refused
    }
}

func packetSocketOptions(_ fd: Int32) throws(SystemError) {
    // The 12-byte (mergeable-rxbuf) vnet header, as on the TAPs, so frames move between
    // them without reshuffling. PACKET_VNET_HDR_SZ (24) needs Linux 6.2.
    do {
        try Sys.setsockopt(fd, SOL_PACKET, 24, Int32(VirtioNetHeader.size), "PACKET_VNET_HDR_SZ")
    } catch {
        throw SystemError("setsockopt(PACKET_VNET_HDR_SZ=\(VirtioNetHeader.size)) (needs Linux 6.2 or later)", errno: error.errno)
    }
    try Sys.setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, Int32(1), "PACKET_IGNORE_OUTGOING")
    // Best effort: bigger socket buffers absorb bursts.
    _ = try? Sys.setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, Int32(8 << 20), "SO_RCVBUFFORCE")
    _ = try? Sys.setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, Int32(8 << 20), "SO_SNDBUFFORCE")
}

@inline(__always)
func atomicLoadAcquire(_ p: UnsafeMutablePointer<UInt32>) -> UInt32 {
    // Aligned 32-bit loads are atomic on x86-64; the fence orders the block's contents after it.
    let v = UnsafeMutableRawPointer(p).load(as: UInt32.self)
    atomicThreadFenceAcquire()
    return v
}

@inline(__always)
func atomicStoreRelease(_ p: UnsafeMutablePointer<UInt32>, _ v: UInt32) {
    atomicThreadFenceRelease()
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: UInt32.self)
}
