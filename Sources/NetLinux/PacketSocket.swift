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

/// The receive side of AF_PACKET on an existing netdev (the uplink, or a vport of the
/// software datapath): a TPACKET_V3 ring with PACKET_VNET_HDR, so GSO superpackets
/// arrive whole. PACKET_IGNORE_OUTGOING keeps our own transmissions out of it.
public struct PacketRing: ~Copyable {
    public let fd: FileDescriptor
    public let ifindex: Int32
    public let name: String
    private let ring: UnsafeMutableRawPointer
    private let blockSize: Int
    private let blockCount: Int
    private var nextBlock = 0

    public init(interface: String, blockSize: Int = 1 << 20, blockCount: Int = 16,
                retireTimeoutMilliseconds: UInt32 = 1) throws(SystemError) {
        let control = try InterfaceControl()
        let ifindex = try control.index(of: interface)
        let protoAll = UInt16(ETH_P_ALL).bigEndian
        let r = try Sys.socket(AF_PACKET, Int32(SOCK_RAW.rawValue), Int32(protoAll))
        try packetSocketOptions(r.raw)
        try Sys.setsockopt(r.raw, SOL_PACKET, PACKET_VERSION, Int32(TPACKET_V3.rawValue), "PACKET_VERSION")
        var req = tpacket_req3()
        req.tp_block_size = UInt32(blockSize)
        req.tp_block_nr = UInt32(blockCount)
        req.tp_frame_size = 2048
        req.tp_frame_nr = UInt32(blockSize / 2048 * blockCount)
        req.tp_retire_blk_tov = retireTimeoutMilliseconds
        try Sys.setsockopt(r.raw, SOL_PACKET, PACKET_RX_RING, req, "PACKET_RX_RING")
        guard let map = mmap(nil, blockSize * blockCount, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, r.raw, 0),
              map != MAP_FAILED else {
            throw SystemError("mmap(rx ring)", errno: errno)
        }
        do {
            try syscall("bind(AF_PACKET \(interface))") { cnl_packet_bind(r.raw, ifindex, protoAll) }
        } catch {
            munmap(map, blockSize * blockCount)
            throw error
        }
        self.fd = r
        self.ifindex = ifindex
        self.name = interface
        self.ring = map
        self.blockSize = blockSize
        self.blockCount = blockCount
    }

    deinit { munmap(ring, blockSize * blockCount) }

    /// Whether the next block is ready for userspace. A poll on the socket fires when a
    /// block is retired, not again for blocks that were already ready.
    public var hasReadyBlock: Bool {
        let status = (ring + nextBlock * blockSize + 8).assumingMemoryBound(to: UInt32.self)
        return atomicLoadAcquire(status) & UInt32(TP_STATUS_USER) != 0
    }

    /// Hands every frame of up to `maxBlocks` ready blocks to `body` as (virtio_net_hdr,
    /// frame, frame length), then returns the blocks to the kernel. Frames are valid
    /// only inside `body`. In the ring the kernel writes the 10-byte virtio_net_hdr
    /// right before the frame whatever PACKET_VNET_HDR_SZ says; the two bytes before it
    /// are padding, not num_buffers.
    public mutating func receive(maxBlocks: Int = 4,
                                 _ body: (_ vnetHeader: UnsafeMutableRawPointer, _ frame: UnsafeMutableRawPointer, _ length: Int,
                                          _ vlan: VLANTag?) -> Void) -> Int {
        var frames = 0
        for _ in 0..<maxBlocks {
            let block = ring + nextBlock * blockSize
            let desc = block.assumingMemoryBound(to: tpacket_block_desc.self)
            // struct tpacket_block_desc: version, offset_to_priv, then hdr.bh1.block_status.
            let status = (block + 8).assumingMemoryBound(to: UInt32.self)
            guard atomicLoadAcquire(status) & UInt32(TP_STATUS_USER) != 0 else { break }
            let count = Int(desc.pointee.hdr.bh1.num_pkts)
            var hdr = block + Int(desc.pointee.hdr.bh1.offset_to_first_pkt)
            for _ in 0..<count {
                let h = hdr.assumingMemoryBound(to: tpacket3_hdr.self)
                let mac = Int(h.pointee.tp_mac)
                let snap = Int(h.pointee.tp_snaplen)
                if snap == Int(h.pointee.tp_len) {
                    let status = h.pointee.tp_status
                    var vlan: VLANTag?
                    if status & UInt32(TP_STATUS_VLAN_VALID) != 0 {
                        let tpid = status & UInt32(TP_STATUS_VLAN_TPID_VALID) != 0 ? h.pointee.hv1.tp_vlan_tpid : 0x8100
                        vlan = VLANTag(tpid: tpid, tci: UInt16(truncatingIfNeeded: h.pointee.hv1.tp_vlan_tci))
                    }
                    body(hdr + mac - VirtioNetHeader.legacySize, hdr + mac, snap, vlan)
                    frames += 1
                }
                hdr += Int(h.pointee.tp_next_offset)
            }
            atomicStoreRelease(status, UInt32(TP_STATUS_KERNEL))
            nextBlock = (nextBlock + 1) % blockCount
        }
        return frames
    }
}

/// The transmit side: an AF_PACKET socket that receives nothing (protocol 0), sending
/// batches with sendmmsg. One per thread. `bypassQdisc` (PACKET_QDISC_BYPASS) is for
/// the wire: it skips the qdisc and also the taps, so tcpdump on the netdev does not
/// see what is sent, as it would not see a NIC's hardware path.
public struct PacketSender: ~Copyable {
    public let fd: FileDescriptor
    private let messages: UnsafeMutablePointer<cnl_mmsghdr>
    private let vectors: UnsafeMutablePointer<iovec>
    public let batchCapacity: Int
    public private(set) var pending = 0
    public private(set) var dropped: UInt64 = 0

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
                if r < 0 && errno == EINTR { continue }
                // ENOBUFS/EAGAIN: the device queue is full; the frames are lost, as on a NIC.
                dropped &+= UInt64(pending - done)
                break
            }
            done += Int(r)
        }
        pending = 0
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
