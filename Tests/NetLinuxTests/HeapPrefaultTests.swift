import Glibc
import Testing
import Synchronization
import NetLinux

/// The prefault over a mapping of the test's own, whose "heap end" the test moves: the
/// process's real program break moves under every other test's allocations.
@Suite struct HeapPrefaultTests {
    static let page = sysconf(Int32(_SC_PAGESIZE))
    static let regionBytes = 8 << 20

    /// A fresh private anonymous mapping (no page resident) and the end the test gives it.
    final class Region: @unchecked Sendable {
        let base: UnsafeMutableRawPointer
        let bytes: Int
        let end = Atomic<UInt>(0)
        init(bytes: Int) throws {
            let p = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
            guard let p, p != MAP_FAILED else { throw SystemError("mmap", errno: errno) }
            base = p
            self.bytes = bytes
            end.store(UInt(bitPattern: p), ordering: .relaxed)
        }
        deinit { munmap(base, bytes) }

        func setEnd(_ offset: Int) { end.store(UInt(bitPattern: base) + UInt(offset), ordering: .relaxed) }

        /// How many pages of [offset, offset + length) are resident.
        func resident(from offset: Int, length: Int) -> Int {
            var vec = [UInt8](repeating: 0, count: length / HeapPrefaultTests.page)
            precondition(mincore(base + offset, length, &vec) == 0, "mincore: \(errno)")
            return vec.reduce(0) { $0 + Int($1 & 1) }
        }

        /// Waits (up to 5 s) until `pages` pages of the range are resident.
        func waitResident(from offset: Int, length: Int, pages: Int) -> Int {
            var n = resident(from: offset, length: length)
            for _ in 0..<500 where n < pages {
                usleep(10_000)
                n = resident(from: offset, length: length)
            }
            return n
        }
    }

    @Test func theGrownEndIsPopulatedByItsThreadAndKeepsWhatIsWritten() throws {
        let r = try Region(bytes: Self.regionBytes)
        r.setEnd(Self.page)
        r.base.storeBytes(of: 0xA5, as: UInt8.self)  // the part in use, written
        let prefault = try HeapPrefault(threadName: "test-prefault", heapEnd: { r.end.load(ordering: .relaxed) })
        defer { prefault.stop() }
        prefault.noteGrowth()
        usleep(20_000)
        #expect(r.resident(from: Self.page, length: Self.regionBytes - Self.page) == 0, "nothing grew yet")

        r.setEnd(Self.regionBytes)  // the heap grew by 8 MiB less a page
        #expect(r.resident(from: Self.page, length: Self.regionBytes - Self.page) == 0, "not before it is told")
        // The allocator already wrote into the grown part (it races the prefault).
        let written = 3 * Self.page + 7
        r.base.storeBytes(of: 0x5A, toByteOffset: written, as: UInt8.self)
        prefault.noteGrowth()
        let fresh = Self.regionBytes / Self.page - 1
        #expect(r.waitResident(from: Self.page, length: Self.regionBytes - Self.page, pages: fresh) == fresh)
        #expect(r.base.load(as: UInt8.self) == 0xA5, "the part in use keeps its bytes")
        #expect(r.base.load(fromByteOffset: written, as: UInt8.self) == 0x5A, "a page written in the grown part keeps its bytes")
        #expect((r.base + 5 * Self.page).load(as: UInt64.self) == 0, "a populated page reads zero")
    }

    @Test func aTrimmedEndIsPopulatedAgainWhenItGrowsBack() throws {
        let r = try Region(bytes: Self.regionBytes)
        let prefault = try HeapPrefault(threadName: "test-prefault", heapEnd: { r.end.load(ordering: .relaxed) })
        defer { prefault.stop() }
        let mib = 1 << 20
        r.setEnd(mib)
        prefault.noteGrowth()
        #expect(r.waitResident(from: 0, length: mib, pages: mib / Self.page) == mib / Self.page)
        // Trimmed (the pages given back as malloc_trim gives them), then grown back
        // before the prefault thread looked again.
        r.setEnd(Self.page)
        prefault.noteGrowth()
        madvise(r.base + Self.page, mib - Self.page, MADV_DONTNEED)
        #expect(r.resident(from: Self.page, length: mib - Self.page) == 0)
        r.setEnd(mib)
        prefault.noteGrowth()
        let pages = mib / Self.page - 1
        #expect(r.waitResident(from: Self.page, length: mib - Self.page, pages: pages) == pages)
    }

    /// After a trim, pages given back inside the heap (its end held by a live block) are
    /// populated from where the allocator hands memory out to a window ahead, and no
    /// further; the next window once the allocations near the end of the last; nothing
    /// once the heap grew, nor without a trim.
    @Test func givenBackPagesArePopulatedAheadOfTheAllocationsOnly() throws {
        let mib = 1 << 20, bytes = 32 * mib, window = HeapPrefault.refillWindow
        let r = try Region(bytes: bytes + 4 * mib)
        let prefault = try HeapPrefault(threadName: "test-prefault", heapEnd: { r.end.load(ordering: .relaxed) })
        defer { prefault.stop() }
        r.setEnd(bytes)
        prefault.noteGrowth()
        #expect(r.waitResident(from: 0, length: bytes, pages: bytes / Self.page) == bytes / Self.page)
        // Trimmed inside: every page above the first MiB given back, the end kept.
        madvise(r.base + mib, bytes - mib, MADV_DONTNEED)
        r.base.storeBytes(of: 0x3C, toByteOffset: 4 * mib + 8, as: UInt8.self)  // the block just allocated
        prefault.noteAllocation(at: r.base + 4 * mib)
        usleep(50_000)
        #expect(r.resident(from: 2 * mib, length: bytes - 2 * mib) == 1, "not before the trim is told: only the block's page")
        prefault.noteTrim()
        prefault.noteAllocation(at: nil)
        usleep(50_000)
        #expect(r.resident(from: 2 * mib, length: bytes - 2 * mib) == 1, "nothing allocated: nothing asked")
        prefault.noteAllocation(at: r.base + 4 * mib)
        let pages = window / Self.page
        #expect(r.waitResident(from: 4 * mib, length: window, pages: pages) == pages)
        usleep(50_000)
        #expect(r.resident(from: mib, length: 3 * mib) == 0, "nothing below the allocation")
        #expect(r.resident(from: 4 * mib + window, length: bytes - 4 * mib - window) == 0, "nothing past the window")
        #expect(r.base.load(fromByteOffset: 4 * mib + 8, as: UInt8.self) == 0x3C, "the block keeps its bytes")
        // Further up within the first half of the window: nothing more asked.
        prefault.noteAllocation(at: r.base + 4 * mib + window / 2 - Self.page)
        usleep(50_000)
        #expect(r.resident(from: 4 * mib + window, length: bytes - 4 * mib - window) == 0)
        // Past it: the next window.
        let next = 4 * mib + window / 2 + Self.page
        prefault.noteAllocation(at: r.base + next)
        let more = (next + window - (4 * mib + window)) / Self.page
        #expect(r.waitResident(from: 4 * mib + window, length: next - 4 * mib, pages: more) == more)
        #expect(r.resident(from: next + window, length: bytes - next - window) == 0, "nothing past the new window")
        // The heap grew (no room left inside): nothing more, wherever the allocations are.
        r.setEnd(bytes + 4 * mib)
        prefault.noteGrowth()
        #expect(r.waitResident(from: bytes, length: 4 * mib, pages: 4 * mib / Self.page) == 4 * mib / Self.page)
        prefault.noteAllocation(at: r.base + next + window)
        prefault.noteAllocation(at: r.base + 2 * mib)
        usleep(50_000)
        #expect(r.resident(from: next + window, length: bytes - next - window) == 0, "nothing asked")
        #expect(r.resident(from: 2 * mib, length: 2 * mib) == 0)
        prefault.noteTrim()
        // An address above the heap's end (a mapped block, not the heap's) asks for nothing.
        r.setEnd(24 * mib)
        prefault.noteGrowth()
        madvise(r.base + 24 * mib, 8 * mib, MADV_DONTNEED)
        prefault.noteAllocation(at: r.base + 26 * mib)
        usleep(50_000)
        #expect(r.resident(from: 24 * mib, length: 8 * mib) == 0)
    }

    @Test func aTouchRequestFaultsItsRangeInAndKeepsWhatIsWritten() throws {
        let r = try Region(bytes: Self.regionBytes)
        let prefault = try HeapPrefault(threadName: "test-prefault", heapEnd: { r.end.load(ordering: .relaxed) })
        defer { prefault.stop() }
        let half = Self.regionBytes / 2
        // The table's owner writes into the range while it is touched in.
        r.base.storeBytes(of: 0x77, toByteOffset: 5 * Self.page + 3, as: UInt8.self)
        let request = prefault.touch(r.base, length: half)
        defer { request.stopAndWait() }
        #expect(r.waitResident(from: 0, length: half, pages: half / Self.page) == half / Self.page)
        #expect(r.resident(from: half, length: half) == 0, "only the range asked for")
        #expect(r.base.load(fromByteOffset: 5 * Self.page + 3, as: UInt8.self) == 0x77, "a written page keeps its bytes")
        #expect(r.base.load(fromByteOffset: 9 * Self.page, as: UInt64.self) == 0, "a touched page reads zero")
    }

    /// A 1 GiB request whose touching is under way (its first page in) when `body` runs:
    /// big enough that it is not done before the body stops it.
    func whileTouching(_ body: (Region, HeapPrefault.TouchRequest) throws -> Void) throws {
        let r = try Region(bytes: 1 << 30)
        let prefault = try HeapPrefault(threadName: "test-prefault", heapEnd: { r.end.load(ordering: .relaxed) })
        defer { prefault.stop() }
        let request = prefault.touch(r.base, length: r.bytes)
        _ = r.waitResident(from: 0, length: r.bytes, pages: 1)
        try body(r, request)
    }

    @Test func aStoppedRequestIsTouchedNoMoreAndItsRangeMayGo() throws {
        try whileTouching { r, request in
            request.stopAndWait()
            let afterStop = r.resident(from: 0, length: r.bytes)
            usleep(50_000)
            #expect(r.resident(from: 0, length: r.bytes) == afterStop, "no page touched after stopAndWait returned")
            // Unmapped at once (as a table drops its storage): the thread must not touch it.
            munmap(r.base, r.bytes)
            _ = mmap(r.base, r.bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0)
            usleep(50_000)
            #expect(r.resident(from: 0, length: r.bytes) == 0, "the range mapped again is not touched")
        }
    }

    @Test func aStopThatDoesNotWaitEndsTheTouchingSoonAfter() throws {
        try whileTouching { r, request in
            request.stop()  // returns at once (the table writes the range from now on)
            usleep(20_000)  // the page under way, and no further one
            let settled = r.resident(from: 0, length: r.bytes)
            usleep(50_000)
            #expect(r.resident(from: 0, length: r.bytes) == settled)
            #expect(settled < r.bytes / Self.page, "stopped before the end")
            request.stopAndWait()
        }
    }
}
