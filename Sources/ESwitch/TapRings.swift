import NetLinux
import Packet

/// A packet thread's TAP I/O over io_uring. Every TAP fd the thread owns (VF netdev or
/// representor) has one multishot read armed, filling buffers of a provided-buffer
/// group of its own; writes are queued as SQEs and submitted with the next wait, once
/// per pass. A receive buffer goes back to its group when nothing uses it any more:
/// neither the pass that received it (which may have queued it on the uplink sender)
/// nor a write still in flight.
///
/// Group `g` belongs to port `g / 2`: even groups read the VF netdev, odd groups the
/// port's representor. Buffer `b` of group `g` is slot `g * depth + b` of one arena;
/// slots have the pool's layout (headroom, then the virtio header and the frame).
final class TapRings {
    static let depth = 128
    /// A completion's user data: operation in the top byte, port in the next two bytes,
    /// then the group and arm generation of a read, or the slot of a write.
    enum Op: UInt64 {
        case read = 1
        case writeToPort = 2
        case writeToRepresentor = 3
        case pollUplink = 4
        case pollWakeup = 5
    }

    let ring: IOURing
    let groups: Int
    private let arena: UnsafeMutableRawPointer
    private let arenaBytes: Int
    private let refs: UnsafeMutablePointer<UInt16>
    private let fds: UnsafeMutablePointer<Int32>
    private let generation: UnsafeMutablePointer<UInt16>
    /// Monotonic time before which a group is not re-armed (after an error); 0: armed.
    private let armAt: UnsafeMutablePointer<UInt64>
    private let dirty: UnsafeMutablePointer<Bool>
    private let held: UnsafeMutablePointer<Int32>
    private var heldCount = 0
    private let heldCapacity: Int
    private var armsPending = false

    static let bufferLength = VirtioNetHeader.size + SlotPool.frameCapacity

    init(ports: Int, maxCompletionsPerPass: Int) throws(SystemError) {
        groups = ports * 2
        ring = try IOURing(entries: 1024, bufferGroups: groups, buffersPerGroup: TapRings.depth)
        let slots = groups * TapRings.depth
        arenaBytes = slots * SlotPool.slotSize
        // Reserved, not committed: pages are touched only by ports this thread owns.
        guard let m = mmap(nil, arenaBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0),
              m != MAP_FAILED else { throw SystemError("mmap(receive arena)", errno: errno) }
        arena = m
        refs = .allocate(capacity: slots)
        refs.initialize(repeating: 0, count: slots)
        fds = .allocate(capacity: groups)
        fds.initialize(repeating: -1, count: groups)
        generation = .allocate(capacity: groups)
        generation.initialize(repeating: 0, count: groups)
        armAt = .allocate(capacity: groups)
        armAt.initialize(repeating: 0, count: groups)
        dirty = .allocate(capacity: groups)
        dirty.initialize(repeating: false, count: groups)
        heldCapacity = maxCompletionsPerPass
        held = .allocate(capacity: heldCapacity)
        for g in 0..<groups {
            for b in 0..<TapRings.depth { ring.provide(group: g, buffer(slot: g * TapRings.depth + b), length: TapRings.bufferLength, id: b) }
            ring.publish(group: g)
        }
    }

    deinit {
        // No read may still be armed on the arena when it is unmapped.
        ring.cancelAll()
        munmap(arena, arenaBytes)
        refs.deallocate()
        fds.deallocate()
        generation.deallocate()
        armAt.deallocate()
        dirty.deallocate()
        held.deallocate()
    }

    @inline(__always)
    static func userData(_ op: Op, port: Int, value: UInt32) -> UInt64 {
        op.rawValue << 56 | UInt64(UInt16(truncatingIfNeeded: port)) << 40 | UInt64(value)
    }

    @inline(__always)
    private func buffer(slot: Int) -> UnsafeMutableRawPointer {
        arena + slot * SlotPool.slotSize + SlotPool.headroom - VirtioNetHeader.size
    }

    // MARK: Watching (control thread, while the packet thread is parked or not started)

    /// Reads `fd` into group `group` from the packet thread's next pass on.
    func watch(group: Int, fd: Int32) {
        fds[group] = fd
        armAt[group] = 1
        armsPending = true
    }

    /// Stops reading group `group`: its requests are cancelled before this returns. The
    /// kernel drops their file references a moment later, in the packet thread's task
    /// work, so a caller that closes the fd waits for the netdev to go (ESwitch does).
    func unwatch(group: Int) {
        let fd = fds[group]
        guard fd >= 0 else { return }
        fds[group] = -1
        armAt[group] = 0
        generation[group] &+= 1
        try? ring.cancel(fd: fd)
    }

    func group(ofFD fd: Int32) -> Int? {
        for g in 0..<groups where fds[g] == fd { return g }
        return nil
    }

    // MARK: Packet thread

    /// Arms the reads that are due (new fds, ended multishots, retries after errors).
    @inline(__always)
    func armDue(now: UInt64) {
        guard armsPending else { return }
        armsPending = false
        for g in 0..<groups where armAt[g] != 0 {
            guard armAt[g] <= now else {
                armsPending = true
                continue
            }
            armAt[g] = 0
            generation[g] &+= 1
            let ud = TapRings.userData(.read, port: g / 2, value: UInt32(generation[g]) << 16 | UInt32(g))
            ring.readMultishot(fd: fds[g], group: g, userData: ud)
        }
    }

    /// Whether a read completion's group reads a representor (odd groups) rather than a VF.
    @inline(__always)
    static func readsRepresentor(_ userData: UInt64) -> Bool { userData & 1 != 0 }

    /// A read completion: the frame as a buffer the pass holds, or nil when the
    /// completion carried none (or belongs to an fd no longer watched).
    @inline(__always)
    func received(userData: UInt64, result: Int32, flags: UInt32, now: UInt64) -> PacketBuffer? {
        let g = Int(userData & 0xffff)
        let current = UInt16(truncatingIfNeeded: userData >> 16) == generation[g] && fds[g] >= 0
        if flags & IOURingCompletion.more == 0 && current {
            // The multishot ended: ENOBUFS (every buffer in use) is re-armed at once,
            // anything else after a pause so that a dead fd cannot spin the thread.
            armAt[g] = result == -ENOBUFS || result >= 0 ? 1 : now + 100_000_000
            armsPending = true
        }
        guard flags & IOURingCompletion.hasBuffer != 0 else { return nil }
        let slot = g * TapRings.depth + Int(flags >> IOURingCompletion.bufferShift)
        guard current, result > Int32(VirtioNetHeader.size), heldCount < heldCapacity else {
            recycle(slot)
            return nil
        }
        refs[slot] = 1
        held[heldCount] = Int32(slot)
        heldCount += 1
        let storage = arena + slot * SlotPool.slotSize
        return PacketBuffer(storage: storage, capacity: SlotPool.slotSize, head: SlotPool.headroom,
                            length: Int(result) - VirtioNetHeader.size,
                            offload: OffloadInfo(virtioHeader: buffer(slot: slot)))
    }

    /// The arena slot of a buffer, nil for buffers from elsewhere (the worker's pool).
    @inline(__always)
    func slot(of b: PacketBuffer) -> Int? {
        let offset = b.storage - arena
        return offset >= 0 && offset < arenaBytes ? offset / SlotPool.slotSize : nil
    }

    /// Queues a write of an arena buffer (virtio header included) to `fd`.
    @inline(__always)
    func write(fd: Int32, slot: Int, _ frame: UnsafeRawPointer, length: Int, op: Op, port: Int) {
        refs[slot] += 1
        ring.write(fd: fd, frame, length: length, userData: TapRings.userData(op, port: port, value: UInt32(slot)))
    }

    @inline(__always)
    func writeCompleted(userData: UInt64) {
        release(Int(userData & 0xffff_ffff))
    }

    /// Ends a pass: the pass's own references go, buffers nothing uses return to the kernel.
    @inline(__always)
    func endPass() {
        for i in 0..<heldCount { release(Int(held[i])) }
        heldCount = 0
        for g in 0..<groups where dirty[g] {
            dirty[g] = false
            ring.publish(group: g)
        }
    }

    @inline(__always)
    private func release(_ slot: Int) {
        refs[slot] -= 1
        if refs[slot] == 0 { recycle(slot) }
    }

    @inline(__always)
    private func recycle(_ slot: Int) {
        let g = slot / TapRings.depth
        ring.provide(group: g, buffer(slot: slot), length: TapRings.bufferLength, id: slot % TapRings.depth)
        dirty[g] = true
    }
}
