import Glibc
import Testing
import NetLinux

/// The prefault over a mapping of the test's own, whose "heap end" the test moves: the
/// process's real program break moves under every other test's allocations.
@Suite struct HeapPrefaultTests {
    static let page = sysconf(Int32(_SC_PAGESIZE))
    static let regionBytes = 8 << 20

    /// A fresh private anonymous mapping (no page resident) and its size.
    final class Region {
        let base: UnsafeMutableRawPointer
        let bytes: Int
        init(bytes: Int) throws {
            let p = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
            guard let p, p != MAP_FAILED else { throw SystemError("mmap", errno: errno) }
            base = p
            self.bytes = bytes
        }
        deinit { munmap(base, bytes) }
        var start: UInt { UInt(bitPattern: base) }

        /// How many pages of [offset, offset + length) are resident.
        func resident(from offset: Int, length: Int) -> Int {
            let pages = length / HeapPrefaultTests.page
            var vec = [UInt8](repeating: 0, count: pages)
            let rc = mincore(base + offset, length, &vec)
            precondition(rc == 0, "mincore: \(errno)")
            return vec.reduce(0) { $0 + Int($1 & 1) }
        }
    }

    @Test func populatesTheGrownEndAStepAtATimeWithoutWriting() throws {
        let r = try Region(bytes: Self.regionBytes)
        var end = r.start + UInt(Self.page)
        r.base.storeBytes(of: 0xA5, as: UInt8.self)  // the "used" part, written
        let prefault = HeapPrefault(heapEnd: { end })
        prefault.advance()
        #expect(r.resident(from: Self.page, length: Self.regionBytes - Self.page) == 0, "nothing grew yet")

        end = r.start + UInt(Self.regionBytes)  // the heap grew by almost 8 MiB
        prefault.advance()
        let step = 2 << 20
        let used = Self.page
        #expect(r.resident(from: used, length: step) == step / Self.page, "the first step is resident")
        #expect(r.resident(from: used + step, length: Self.regionBytes - used - step) == 0, "one step per call")
        #expect(r.base.load(as: UInt8.self) == 0xA5, "the used part keeps its bytes")
        prefault.advance()
        prefault.advance()
        prefault.advance()
        #expect(r.resident(from: 0, length: Self.regionBytes) == Self.regionBytes / Self.page)
    }

    @Test func aTrimmedEndIsPopulatedAgainWhenItGrowsBack() throws {
        let r = try Region(bytes: Self.regionBytes)
        var end = r.start
        let prefault = HeapPrefault(heapEnd: { end })
        end = r.start + UInt(1 << 20)
        prefault.advance()
        #expect(r.resident(from: 0, length: 1 << 20) == (1 << 20) / Self.page)
        // Trimmed: the pages go back (as malloc_trim gives them back), the end moves down.
        end = r.start + UInt(Self.page)
        madvise(r.base + Self.page, (1 << 20) - Self.page, MADV_DONTNEED)
        prefault.advance()
        #expect(r.resident(from: Self.page, length: (1 << 20) - Self.page) == 0)
        // Grown again: the range above the trimmed end is populated again.
        end = r.start + UInt(1 << 20)
        prefault.advance()
        #expect(r.resident(from: Self.page, length: (1 << 20) - Self.page) == (1 << 20) / Self.page - 1)
    }
}
