/// Checksum and segmentation state carried with a frame, as a virtio_net_hdr carries it
/// between a TAP/AF_PACKET socket and the kernel.
public struct OffloadInfo: Sendable, Equatable {
    public var flags: UInt8
    public var gsoType: UInt8
    public var headerLength: UInt16
    public var gsoSize: UInt16
    public var checksumStart: UInt16
    public var checksumOffset: UInt16

    public static let needsChecksum: UInt8 = 1
    public static let dataValid: UInt8 = 2
    public static let gsoNone: UInt8 = 0
    public static let gsoTCPv4: UInt8 = 1
    public static let gsoUDP: UInt8 = 3
    public static let gsoTCPv6: UInt8 = 4
    public static let gsoUDPL4: UInt8 = 5
    public static let gsoECN: UInt8 = 0x80

    @inlinable
    public init(flags: UInt8 = 0, gsoType: UInt8 = 0, headerLength: UInt16 = 0, gsoSize: UInt16 = 0,
                checksumStart: UInt16 = 0, checksumOffset: UInt16 = 0) {
        self.flags = flags
        self.gsoType = gsoType
        self.headerLength = headerLength
        self.gsoSize = gsoSize
        self.checksumStart = checksumStart
        self.checksumOffset = checksumOffset
    }

    @inlinable public var isGSO: Bool { gsoType & 0x7f != OffloadInfo.gsoNone }
    /// The L4 checksum is incomplete: the field holds the pseudo-header sum
    /// (the kernel's CHECKSUM_PARTIAL).
    @inlinable public var checksumPartial: Bool { flags & OffloadInfo.needsChecksum != 0 }

    /// The first `outer` bytes (tunnel headers) were removed. A partial checksum
    /// inside them belonged to the outer UDP header: the inner frame's own checksums
    /// are complete, which the kernel reports as CHECKSUM_UNNECESSARY.
    @inlinable
    public mutating func stripOuter(_ outer: Int) {
        if checksumPartial && Int(checksumStart) < outer {
            flags = OffloadInfo.dataValid
            checksumStart = 0
            checksumOffset = 0
        }
        shift(by: -outer)
    }

    /// Headers grew or shrank by `delta` bytes in front of the checksummed region.
    @inlinable
    public mutating func shift(by delta: Int) {
        if checksumPartial { checksumStart = UInt16(truncatingIfNeeded: Int(checksumStart) + delta) }
        if headerLength != 0 { headerLength = UInt16(truncatingIfNeeded: Int(headerLength) + delta) }
    }
}

/// A frame inside memory it does not own: `storage` is one slot of a buffer pool, with
/// headroom before `head` so that VLAN tags and tunnel headers can be pushed in place.
public struct PacketBuffer {
    public let storage: UnsafeMutableRawPointer
    public let capacity: Int
    public var head: Int
    public var length: Int
    public var offload: OffloadInfo

    @inlinable
    public init(storage: UnsafeMutableRawPointer, capacity: Int, head: Int, length: Int,
                offload: OffloadInfo = OffloadInfo()) {
        self.storage = storage
        self.capacity = capacity
        self.head = head
        self.length = length
        self.offload = offload
    }

    @inlinable public var data: UnsafeMutableRawPointer { storage + head }
    @inlinable public var headroom: Int { head }
    @inlinable public var tailroom: Int { capacity - head - length }

    /// Grows the frame at the front by `count` bytes (uninitialised).
    @inlinable
    public mutating func push(_ count: Int) -> Bool {
        guard count <= head else { return false }
        head -= count
        length += count
        return true
    }

    /// Removes `count` bytes from the front.
    @inlinable
    public mutating func pull(_ count: Int) -> Bool {
        guard count <= length else { return false }
        head += count
        length -= count
        return true
    }

    /// Opens a gap of `count` bytes at `offset` by moving the first `offset` bytes forward
    /// into the headroom (how a VLAN tag is inserted after the MAC addresses).
    @inlinable
    public mutating func insertGap(_ count: Int, at offset: Int) -> Bool {
        guard count <= head, offset <= length else { return false }
        let old = data
        head -= count
        length += count
        data.copyMemory(from: old, byteCount: offset)
        return true
    }

    /// Puts back a VLAN tag the receiving kernel moved into metadata, where it was:
    /// right after the MAC addresses.
    @inlinable
    public mutating func restoreVLANTag(tpid: UInt16, tci: UInt16) -> Bool {
        guard length >= 12, insertGap(4, at: 12) else { return false }
        data.setBE16(12, tpid)
        data.setBE16(14, tci)
        offload.shift(by: 4)
        return true
    }

    /// Closes `count` bytes at `offset` by moving the first `offset` bytes back.
    @inlinable
    public mutating func removeGap(_ count: Int, at offset: Int) -> Bool {
        guard offset + count <= length else { return false }
        let src = data
        // Overlapping move towards higher addresses: memmove semantics.
        (src + count).copyMemory(from: src, byteCount: offset)
        head += count
        length -= count
        return true
    }

    /// Truncates to `newLength` bytes if longer.
    @inlinable
    public mutating func truncate(to newLength: Int) {
        if newLength < length { length = newLength }
    }

    /// Copies the frame into a Swift array (for tests and control-plane paths, not the hot path).
    public var bytes: [UInt8] { Array(UnsafeRawBufferPointer(start: data, count: length)) }
}

extension OffloadInfo {
    /// Reads a virtio_net_hdr (host byte order, as TAP and AF_PACKET use on x86).
    @inlinable
    public init(virtioHeader p: UnsafeRawPointer) {
        self.init(flags: p.load(fromByteOffset: 0, as: UInt8.self),
                  gsoType: p.load(fromByteOffset: 1, as: UInt8.self),
                  headerLength: UInt16(littleEndian: p.loadUnaligned(fromByteOffset: 2, as: UInt16.self)),
                  gsoSize: UInt16(littleEndian: p.loadUnaligned(fromByteOffset: 4, as: UInt16.self)),
                  checksumStart: UInt16(littleEndian: p.loadUnaligned(fromByteOffset: 6, as: UInt16.self)),
                  checksumOffset: UInt16(littleEndian: p.loadUnaligned(fromByteOffset: 8, as: UInt16.self)))
    }

    /// Writes the 12-byte virtio_net_hdr_mrg_rxbuf (num_buffers = 0).
    @inlinable
    public func write(virtioHeader p: UnsafeMutableRawPointer) {
        p.storeBytes(of: flags, toByteOffset: 0, as: UInt8.self)
        p.storeBytes(of: gsoType, toByteOffset: 1, as: UInt8.self)
        p.storeBytes(of: headerLength.littleEndian, toByteOffset: 2, as: UInt16.self)
        p.storeBytes(of: gsoSize.littleEndian, toByteOffset: 4, as: UInt16.self)
        p.storeBytes(of: checksumStart.littleEndian, toByteOffset: 6, as: UInt16.self)
        p.storeBytes(of: checksumOffset.littleEndian, toByteOffset: 8, as: UInt16.self)
        p.storeBytes(of: UInt16(0), toByteOffset: 10, as: UInt16.self)
    }
}

/// Fixed-size packet slots with headroom, allocated once and reused for every batch.
public final class SlotPool: @unchecked Sendable {
    /// Room in front of a frame for a virtio header, VLAN tags and tunnel headers.
    public static let headroom = 192
    /// Largest frame: a 64 KB GSO superpacket plus pushed headers.
    public static let frameCapacity = 65536 + 256
    public static let slotSize = (headroom + frameCapacity + 63) & ~63

    public let count: Int
    public let base: UnsafeMutableRawPointer

    public init(count: Int) {
        self.count = count
        base = .allocate(byteCount: count * SlotPool.slotSize, alignment: 4096)
    }

    deinit { base.deallocate() }

    @inline(__always)
    public func slot(_ i: Int) -> UnsafeMutableRawPointer { base + i * SlotPool.slotSize }

    /// An empty buffer over slot `i`, with the standard headroom.
    @inline(__always)
    public func buffer(_ i: Int, length: Int = 0) -> PacketBuffer {
        PacketBuffer(storage: slot(i), capacity: SlotPool.slotSize, head: SlotPool.headroom, length: length)
    }
}
