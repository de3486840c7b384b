import CNetLinux
import Glibc
import Synchronization

/// Faults in the pages the heap grows into before the allocator hands them out, on a
/// thread of its own, not the one that allocates. A first touch of a fresh page is a
/// page fault and a zeroed page: a million-flow add-flows put a fifth of the control
/// thread's time there (`clear_page` under `malloc`), while the other CPU had time to
/// spare.
///
/// The allocator is told to grow the heap `topPad` past what it needs at a time (2 to
/// 32 MiB made no difference to a million-flow add; an idle daemon keeps it populated).
/// The allocating thread calls `noteGrowth` now and then (a read of the program break);
/// when the break moved up, the prefault thread populates the new part a step at a time
/// (`madvise(MADV_POPULATE_WRITE)`: page tables filled as a write would fill them, no
/// byte written, so racing the allocator's own writes is harmless). A range that went
/// away meanwhile (the heap trimmed) is an error the kernel reports, and nothing else.
///
/// Free pages `malloc_trim` gives back inside the heap (the break stays where a live
/// block holds it) fault in again when they are reused: after a million flows were
/// deleted, the next million-flow add took 125-133k of them on the control thread. So
/// after a trim (`noteTrim`) the allocating thread also tells where the allocator hands
/// memory out (`noteAllocation`, the address of a block it just got), and this thread
/// populates the heap from there up to `refillWindow` ahead (the allocator splits the big
/// free chunk upward), again as the allocations near the end of what it asked for, until
/// the heap grows (the allocator found no room left inside). At most a window's worth is
/// populated ahead of use. Not without a trim: blocks reused from the allocator's bins
/// jump about the heap, and each ask would walk a window of resident pages (a 50k add
/// after a 50k del-flows, which keeps its free heap, ran about a tenth slower).
///
/// Other mappings are faulted in on request (`touch`): the big tables map their next
/// size ahead of their growth, and this thread touches it in meanwhile (the heap first).
/// Those are touched, a page at a time (`cnl_touch_page`), not populated with `madvise`:
/// that holds the address space's lock for reading the whole call, and the control
/// thread's `brk`, `mmap` and `munmap`, which take it for writing, waited behind it (in
/// this VM a first touch of a guest page costs the host's fault too: tens of ms a step).
/// A touch request's owner stops it when it starts writing the range, and waits for it to
/// stop before it unmaps the range.
public final class HeapPrefault: @unchecked Sendable {
    public static let topPad = 4 << 20
    /// Per `madvise` of the heap: it holds the address space's lock for reading, and the
    /// control thread's `brk` and `mmap` wait for it (a fresh guest page costs this VM's
    /// host a fault too: 256 KiB is 1-2 ms then, 2 MiB was 10 ms). The thread then looks
    /// at the break again.
    static let heapStep = 256 << 10
    /// Per locked step of a touch request (the thread then looks at the heap again).
    static let touchStep = 2 << 20
    /// How far ahead of an allocation's address the heap's given-back pages are populated.
    public static let refillWindow = 8 << 20
    private static let pageMask = UInt(sysconf(Int32(_SC_PAGESIZE)) - 1)

    /// Where the heap ends now.
    private let heapEnd: @Sendable () -> UInt
    /// The prefault thread's: populated up to here.
    private var populatedTo: UInt
    private var unsupported = false
    /// The allocating thread's: the break it last reported.
    private var lastSeen: UInt
    /// The lowest break it saw since the prefault thread last looked (a trim between two
    /// growths makes pages below the populated mark fresh again). Signed: `Atomic<UInt>`'s
    /// `min` compares as signed here (Swift 6.3), so `UInt.max` never gave way.
    private let lowWater = Atomic<Int>(.max)
    private let wake = UnsafeMutablePointer<sem_t>.allocate(capacity: 1)
    /// The part of the address space that is the heap, from here to its end.
    private let heapStart: UInt
    /// The allocating thread's: a trim gave pages back inside the heap, and the heap has
    /// not grown since.
    private var refillArmed = false
    /// The allocating thread's: the range it last asked to be populated (`noteAllocation`).
    private var refillAskedFrom: UInt = 0
    private var refillAskedTo: UInt = 0
    /// The start of a range asked for and not yet taken by the prefault thread (0: none).
    private let refillAsked = Atomic<UInt>(0)
    /// The prefault thread's: where populating the range asked for has got to, and its end.
    private var refillNext: UInt = 0
    private var refillEnd: UInt = 0
    /// Set by `stop` (another thread), read between steps.
    private let stopping = Atomic<Bool>(false)
    /// Mappings to touch in (`touch`), oldest first.
    private let requests = Mutex<[TouchRequest]>([])
    private var thread: PacketThread?

    /// For the process's heap (glibc's main arena: the main thread's allocations).
    public convenience init(threadName: String) throws(SystemError) {
        _ = mallopt(M_TOP_PAD, Int32(Self.topPad))
        try self.init(threadName: threadName, heapEnd: { UInt(bitPattern: sbrk(0)) })
    }

    /// For a region whose end `heapEnd` tells (tests give their own mapping).
    public init(threadName: String, heapEnd: @escaping @Sendable () -> UInt) throws(SystemError) {
        self.heapEnd = heapEnd
        populatedTo = heapEnd()
        lastSeen = populatedTo
        heapStart = populatedTo
        sem_init(wake, 0, 0)
        thread = try PacketThread.spawn(name: threadName) { [self] in run() }
    }

    deinit {
        sem_destroy(wake)
        wake.deallocate()
    }

    /// Ends the thread (which holds this object until then).
    public func stop() {
        guard let t = thread else { return }
        stopping.store(true, ordering: .relaxed)
        sem_post(wake)
        t.join()
        thread = nil
    }

    /// Wakes the prefault thread if the heap grew since the last call (cheap otherwise:
    /// a read of the break).
    public func noteGrowth() {
        let end = heapEnd()
        guard end != lastSeen else { return }
        let grew = end > lastSeen
        if !grew { lowWater.min(Int(end), ordering: .relaxed) }
        // The room a trim left inside is used up: the rest is the growth's.
        if grew { refillArmed = false }
        lastSeen = end
        if grew { sem_post(wake) }
    }

    /// The allocating thread trimmed the heap (`malloc_trim`): pages inside it were given
    /// back, and `noteAllocation` has them populated again ahead of the allocations.
    public func noteTrim() {
        refillArmed = true
        refillAskedFrom = 0
        refillAskedTo = 0
    }

    /// The allocating thread just got the block at `address` (a flow): after a trim, the
    /// heap's pages from there to `refillWindow` ahead are populated on the prefault
    /// thread. A compare unless the allocations near the end of what was asked last (then
    /// a semaphore post). An address outside the heap (a mapped block), or none (nothing
    /// was allocated), is ignored. The address is not even worked out without a trim.
    @inline(__always)
    public func noteAllocation(at address: @autoclosure () -> UnsafeRawPointer?) {
        guard refillArmed, let address = address() else { return }
        let a = UInt(bitPattern: address)
        guard a >= heapStart, a < lastSeen,
              a < refillAskedFrom || a &+ UInt(Self.refillWindow / 2) > refillAskedTo else { return }
        refillAskedFrom = a
        refillAskedTo = a + UInt(Self.refillWindow)
        refillAsked.store(a, ordering: .relaxed)
        sem_post(wake)
    }

    /// A range being touched in on the prefault thread (`touch`), until done or stopped.
    public final class TouchRequest: Sendable {
        fileprivate let end: UInt
        /// The next page to touch. Held while a step is touched.
        fileprivate let next: Mutex<UInt>
        /// Set by `stop`: the thread touches no further page of the range.
        fileprivate let stopped = Atomic<Bool>(false)

        fileprivate init(start: UInt, end: UInt) {
            self.end = end
            next = Mutex(start)
        }

        /// Stops the touching after the page under way, without waiting for it: for a
        /// range its owner writes from now on (a touch keeps every byte as it is).
        public func stop() { stopped.store(true, ordering: .relaxed) }

        /// Stops the touching and waits for the page under way: once it returns, no byte
        /// of the range is touched again, and it may be unmapped.
        public func stopAndWait() {
            stop()
            next.withLock { _ in }
        }
    }

    /// Touches `length` bytes at `start` (a mapping of the caller's, page-aligned) in on
    /// the prefault thread, after the heap's fresh end. The caller calls `stopAndWait`
    /// before it unmaps the range; writing into it meanwhile is harmless.
    public func touch(_ start: UnsafeMutableRawPointer, length: Int) -> TouchRequest {
        let s = UInt(bitPattern: start)
        let r = TouchRequest(start: s, end: s + UInt(length))
        requests.withLock { $0.append(r) }
        sem_post(wake)
        return r
    }

    private func run() {
        while true {
            while sem_wait(wake) != 0 {}
            if stopping.load(ordering: .relaxed) { return }
            populatedTo = min(populatedTo, UInt(lowWater.exchange(.max, ordering: .relaxed)))
            // The heap's fresh end first: the allocator hands it out soonest.
            while !stopping.load(ordering: .relaxed) && (advance() || refill() || advanceRequest()) {}
        }
    }

    /// Touches the next step of the oldest request; false when none is left.
    private func advanceRequest() -> Bool {
        guard let r = requests.withLock({ $0.first }) else { return false }
        let page = Self.pageMask + 1
        let more = r.next.withLock { next -> Bool in
            let stepEnd = min(r.end, next + UInt(Self.touchStep))
            while next < stepEnd && !r.stopped.load(ordering: .relaxed) {
                cnl_touch_page(UnsafeMutableRawPointer(bitPattern: next))
                next += page
            }
            return next < r.end && !r.stopped.load(ordering: .relaxed)
        }
        if !more { requests.withLock { q in q.removeAll { $0 === r } } }
        return true
    }

    /// Populates the next step of the range `noteAllocation` asked for last (what the
    /// previous range already covered is not walked again); false when it is done.
    private func refill() -> Bool {
        guard !unsupported else { return false }
        let asked = refillAsked.exchange(0, ordering: .relaxed)
        if asked != 0 {
            let start = asked & ~Self.pageMask
            if !(refillNext > start && refillNext < refillEnd) { refillNext = start }
            refillEnd = asked + UInt(Self.refillWindow)
        }
        // Above the heap's end is `advance`'s; a trim may have moved the end below.
        let end = min(refillEnd, heapEnd())
        guard refillNext < end else { return false }
        let stepEnd = min(end, refillNext + UInt(Self.heapStep))
        _ = madvise(UnsafeMutableRawPointer(bitPattern: refillNext), Int(stepEnd - refillNext), MADV_POPULATE_WRITE)
        refillNext = stepEnd
        return true
    }

    /// Populates the next step of the heap's fresh end; false when there is none.
    private func advance() -> Bool {
        guard !unsupported else { return false }
        let top = heapEnd()
        guard top > populatedTo else {
            populatedTo = top  // trimmed (or unchanged): pages above are fresh again
            return false
        }
        let start = populatedTo & ~Self.pageMask
        let end = min(top, start + UInt(Self.heapStep))
        if madvise(UnsafeMutableRawPointer(bitPattern: start), Int(end - start), MADV_POPULATE_WRITE) != 0,
           errno == EINVAL {
            unsupported = true  // before Linux 5.14
        }
        populatedTo = end
        return true
    }
}
