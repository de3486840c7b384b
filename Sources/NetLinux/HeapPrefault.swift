import CNetLinux
import Glibc

/// Faults in the pages the heap grows into before the allocator hands them out, on the
/// thread that calls `advance` (not the one that allocates). A first touch of a fresh
/// page is a page fault and a zeroed page; a million-flow add-flows put a fifth of the
/// control thread's time there (`clear_page` under `malloc`), while the other CPU had
/// time to spare.
///
/// The allocator is told to grow the heap `topPad` past what it needs at a time, and
/// `advance` populates, a step per call, the part between what it populated last and
/// the program break (`madvise(MADV_POPULATE_WRITE)`: page tables filled as a write
/// would fill them, no byte written, so racing the allocator's own writes is harmless).
/// A range that went away meanwhile (the heap trimmed) is an error the kernel reports
/// and nothing else.
public final class HeapPrefault: @unchecked Sendable {
    public static let topPad = 32 << 20
    /// At most this much per call (about half a millisecond of page faults here).
    static let step = 2 << 20
    private static let pageMask = UInt(sysconf(Int32(_SC_PAGESIZE)) - 1)
    /// Only the calling thread's (one thread calls `advance`).
    private var populatedTo: UInt
    private var unsupported = false
    /// Where the heap ends now.
    private let heapEnd: () -> UInt

    /// For the process's heap (glibc's main arena: the main thread's allocations).
    public convenience init() {
        _ = mallopt(M_TOP_PAD, Int32(Self.topPad))
        self.init(heapEnd: { UInt(bitPattern: sbrk(0)) })
    }

    /// For a region whose end `heapEnd` tells (tests give their own mapping).
    public init(heapEnd: @escaping () -> UInt) {
        self.heapEnd = heapEnd
        populatedTo = heapEnd()
    }

    /// Populates the next step of the heap's fresh end, if it has one.
    public func advance() {
        guard !unsupported else { return }
        let top = heapEnd()
        guard top > populatedTo else {
            populatedTo = top  // trimmed (or unchanged): pages above are fresh again
            return
        }
        let start = populatedTo & ~Self.pageMask
        let end = min(top, start + UInt(Self.step))
        if madvise(UnsafeMutableRawPointer(bitPattern: start), Int(end - start), MADV_POPULATE_WRITE) != 0,
           errno == EINVAL {
            unsupported = true  // before Linux 5.14
        }
        populatedTo = end
    }
}
