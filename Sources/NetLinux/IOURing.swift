import CNetLinux

/// One io_uring instance with its provided-buffer rings, owned by one packet thread.
/// The thread prepares SQEs as it goes and submits them all with one `submit(wait:)`
/// per pass; completions are read in batches from an array allocated once.
/// Provided-buffer groups are numbered 0..<bufferGroups, each `buffersPerGroup` deep.
public struct IOURing: ~Copyable, @unchecked Sendable {
    @usableFromInline let ring: UnsafeMutablePointer<io_uring>
    @usableFromInline let completions: UnsafeMutablePointer<UnsafeMutablePointer<io_uring_cqe>?>
    @usableFromInline static let completionBatch = 128
    @usableFromInline let bufferRings: UnsafeMutablePointer<UnsafeMutablePointer<io_uring_buf_ring>>
    @usableFromInline let pendingAdds: UnsafeMutablePointer<Int32>
    @usableFromInline let bufferMask: Int32
    public let bufferGroups: Int
    public let buffersPerGroup: Int
    private let bufferRingBytes: Int

    public init(entries: UInt32, bufferGroups: Int, buffersPerGroup: Int) throws(SystemError) {
        precondition(buffersPerGroup > 0 && buffersPerGroup & (buffersPerGroup - 1) == 0 && buffersPerGroup <= 32768)
        // Everything fallible happens on locals first: a noncopyable value is either
        // fully built or not at all.
        let ring = UnsafeMutablePointer<io_uring>.allocate(capacity: 1)
        var params = io_uring_params()
        let r = io_uring_queue_init_params(entries, ring, &params)
        guard r == 0 else {
            ring.deallocate()
            throw SystemError("io_uring_setup", errno: -r)
        }
        let ringBytes = (buffersPerGroup * MemoryLayout<io_uring_buf>.stride + 4095) & ~4095
        let rings = UnsafeMutablePointer<UnsafeMutablePointer<io_uring_buf_ring>>.allocate(capacity: max(1, bufferGroups))
        func fail(_ call: String, _ e: Int32, mapped: Int) -> SystemError {
            for k in 0..<mapped { munmap(rings[k], ringBytes) }
            rings.deallocate()
            io_uring_queue_exit(ring)
            ring.deallocate()
            return SystemError(call, errno: e)
        }
        guard cnl_uring_supports(ring, CNL_OP_READ_MULTISHOT) != 0 else {
            throw fail("io_uring READ_MULTISHOT (Linux 6.7 or later)", EOPNOTSUPP, mapped: 0)
        }
        for g in 0..<bufferGroups {
            // The kernel reads the ring from this memory: page-aligned, one per group.
            guard let m = mmap(nil, ringBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
                  m != MAP_FAILED else { throw fail("mmap(buffer ring)", errno, mapped: g) }
            let br = m.assumingMemoryBound(to: io_uring_buf_ring.self)
            io_uring_buf_ring_init(br)
            var reg = io_uring_buf_reg()
            reg.ring_addr = UInt64(UInt(bitPattern: m))
            reg.ring_entries = UInt32(buffersPerGroup)
            reg.bgid = UInt16(g)
            let rr = io_uring_register_buf_ring(ring, &reg, 0)
            rings[g] = br
            guard rr == 0 else { throw fail("io_uring_register_buf_ring", -rr, mapped: g + 1) }
        }
        self.ring = ring
        bufferRings = rings
        bufferRingBytes = ringBytes
        completions = .allocate(capacity: IOURing.completionBatch)
        self.bufferGroups = bufferGroups
        self.buffersPerGroup = buffersPerGroup
        bufferMask = io_uring_buf_ring_mask(UInt32(buffersPerGroup))
        pendingAdds = .allocate(capacity: max(1, bufferGroups))
        pendingAdds.initialize(repeating: 0, count: max(1, bufferGroups))
    }

    deinit {
        // Drop every file reference the ring holds before it goes (the teardown of the
        // ring itself is asynchronous in the kernel).
        cancelAll()
        io_uring_queue_exit(ring)
        for g in 0..<bufferGroups { munmap(bufferRings[g], bufferRingBytes) }
        bufferRings.deallocate()
        pendingAdds.deallocate()
        completions.deallocate()
        ring.deallocate()
    }

    // MARK: Submission

    /// A free SQE; when the queue is full, what is queued is submitted first.
    @inlinable
    func sqe() -> UnsafeMutablePointer<io_uring_sqe> {
        while true {
            if let s = io_uring_get_sqe(ring) { return s }
            _ = io_uring_submit(ring)
        }
    }

    /// Arms a read that stays armed: each frame of `fd` completes with a buffer of `group`.
    @inlinable
    public func readMultishot(fd: Int32, group: Int, userData: UInt64) {
        cnl_uring_prep_read_multishot(sqe(), fd, UInt16(group), userData)
    }

    @inlinable
    public func write(fd: Int32, _ buffer: UnsafeRawPointer, length: Int, userData: UInt64) {
        cnl_uring_prep_write(sqe(), fd, buffer, UInt32(length), userData)
    }

    /// Arms a poll that stays armed: a completion each time `fd` becomes readable.
    @inlinable
    public func pollMultishot(fd: Int32, userData: UInt64) {
        cnl_uring_prep_poll_multishot(sqe(), fd, UInt32(POLLIN), userData)
    }

    /// Submits what is queued and, when `wait`, sleeps until a completion arrives or the
    /// timeout passes.
    @inlinable
    public func submit(wait: Bool, timeoutNanoseconds: Int) {
        if wait {
            var ts = __kernel_timespec(tv_sec: Int64(timeoutNanoseconds / 1_000_000_000),
                                       tv_nsec: Int64(timeoutNanoseconds % 1_000_000_000))
            var cqe: UnsafeMutablePointer<io_uring_cqe>?
            _ = io_uring_submit_and_wait_timeout(ring, &cqe, 1, &ts, nil)
        } else {
            _ = io_uring_submit(ring)
        }
    }

    // MARK: Completion

    /// Hands up to `limit` completions to `body` as (user data, result, flags); returns
    /// how many there were.
    @inlinable
    public func completions(limit: Int, _ body: (UInt64, Int32, UInt32) -> Void) -> Int {
        var total = 0
        while total < limit {
            let n = Int(io_uring_peek_batch_cqe(ring, completions, UInt32(min(IOURing.completionBatch, limit - total))))
            if n == 0 { break }
            for i in 0..<n {
                let c = completions[i].unsafelyUnwrapped
                body(c.pointee.user_data, c.pointee.res, c.pointee.flags)
            }
            io_uring_cq_advance(ring, UInt32(n))
            total += n
        }
        return total
    }

    // MARK: Provided buffers

    /// Queues buffer `id` of `group` for the kernel; it sees it after `publish`.
    @inlinable
    public func provide(group: Int, _ buffer: UnsafeMutableRawPointer, length: Int, id: Int) {
        io_uring_buf_ring_add(bufferRings[group], buffer, UInt32(length), UInt16(id), bufferMask, pendingAdds[group])
        pendingAdds[group] += 1
    }

    @inlinable
    public func publish(group: Int) {
        guard pendingAdds[group] > 0 else { return }
        io_uring_buf_ring_advance(bufferRings[group], pendingAdds[group])
        pendingAdds[group] = 0
    }

    // MARK: Cancellation (any thread, while the owner is parked)

    /// Cancels every outstanding request (before the memory they point into goes away).
    public func cancelAll() { _ = cnl_uring_cancel_all(ring) }

    /// Cancels every request on `fd` and returns once the ring holds no reference to it.
    public func cancel(fd: Int32) throws(SystemError) {
        let r = cnl_uring_cancel_fd(ring, fd)
        // ENOENT: nothing was outstanding.
        if r < 0 && r != -ENOENT { throw SystemError("io_uring_register(SYNC_CANCEL)", errno: -r) }
    }
}

/// Bits of a completion's flags word.
public enum IOURingCompletion {
    public static let hasBuffer = UInt32(IORING_CQE_F_BUFFER)
    public static let more = UInt32(IORING_CQE_F_MORE)
    public static let bufferShift = UInt32(IORING_CQE_BUFFER_SHIFT)
}
