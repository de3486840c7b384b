#if canImport(Glibc)
import Glibc
#endif

/// Storage for the big open-addressing tables (a subtable's slots, the data plane's slot
/// shadow): zeroed, and from 2 MiB up in transparent huge pages where the kernel has
/// them (`madvise` mode). At a million entries each probe of such a table is a cache miss
/// anyway; with 4 KiB pages it was a TLB miss too (a walk of the page tables, in a VM of
/// both levels of them).
public enum TableMemory {
    public static let hugePage = 2 << 20

    /// Faults a mapping's pages in on another thread (the daemon sets it to its heap
    /// prefault thread's `populate`); nil, `allocateAhead` gives nothing.
    nonisolated(unsafe) public static var populate: (@Sendable (UnsafeMutableRawPointer, Int) -> Void)?

    /// A big table's next storage (`count` zeroed elements), mapped before its growth and
    /// populated meanwhile on the other thread: a table's growth faulted in and zeroed
    /// tens of MiB of fresh pages on the control thread (5 % of a million-flow add). Nil
    /// for a small table, or without `populate`. Given back with `deallocate` as any.
    public static func allocateAhead<T: ~Copyable>(_: T.Type, count: Int) -> UnsafeMutablePointer<T>? {
        let bytes = count * MemoryLayout<T>.stride
        guard let populate, bytes >= hugePage else { return nil }
        let p = allocate(T.self, count: count)
        populate(UnsafeMutableRawPointer(p), mappedLength(bytes))
        return p
    }

    /// Whether a table of `count` entries, `capacity` slots, should map its next size
    /// ahead: past 5/8 of its slots (its growth comes at 3/4), so that a table that stops
    /// growing short of that holds no second storage.
    public static func growthIsNear(count: Int, capacity: Int) -> Bool { count * 8 > capacity * 5 }

    /// `count` zeroed elements; give them back with `deallocate(_:count:)`.
    public static func allocate<T: ~Copyable>(_: T.Type, count: Int) -> UnsafeMutablePointer<T> {
        let bytes = count * MemoryLayout<T>.stride
        guard bytes >= hugePage else {
            let p = UnsafeMutablePointer<T>.allocate(capacity: count)
            UnsafeMutableRawPointer(p).initializeMemory(as: UInt8.self, repeating: 0, count: bytes)
            return p
        }
        // Mapped, not from malloc: the kernel's pages are zeroed already (a memset would
        // touch every page a second time), and the mapping is aligned to a huge page.
        let length = mappedLength(bytes)
        guard let m = mmap(nil, length + hugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
              m != MAP_FAILED else { fatalError("out of memory (\(bytes) bytes of table)") }
        let start = (UInt(bitPattern: m) + UInt(hugePage - 1)) & ~UInt(hugePage - 1)
        let head = Int(start - UInt(bitPattern: m))
        if head > 0 { munmap(m, head) }
        munmap(UnsafeMutableRawPointer(bitPattern: start + UInt(length)), hugePage - head)
        let raw = UnsafeMutableRawPointer(bitPattern: start)!
        // Advice only: without huge pages the table is as before.
        _ = madvise(raw, length, MADV_HUGEPAGE)
        return raw.bindMemory(to: T.self, capacity: count)
    }

    public static func deallocate<T: ~Copyable>(_ p: UnsafeMutablePointer<T>, count: Int) {
        let bytes = count * MemoryLayout<T>.stride
        if bytes >= hugePage { munmap(UnsafeMutableRawPointer(p), mappedLength(bytes)) } else { p.deallocate() }
    }

    private static func mappedLength(_ bytes: Int) -> Int { (bytes + hugePage - 1) & ~(hugePage - 1) }
}

/// A table's next storage, mapped ahead of its growth (`TableMemory.allocateAhead`): the
/// table calls `prepare` after each insert and takes its new storage from `take`.
public struct AheadStorage<T: ~Copyable>: ~Copyable {
    private var pointer: UnsafeMutablePointer<T>?
    private var count = 0
    /// The table's capacity when the next storage was last asked for (once a size).
    private var preparedAt = 0

    public init() {}

    deinit {
        if let p = pointer { TableMemory.deallocate(p, count: count) }
    }

    /// Maps `next` elements ahead once a table of `entries` in `capacity` slots nears its growth.
    @inline(__always)
    public mutating func prepare(entries: Int, capacity: Int, next: Int) {
        guard preparedAt != capacity, TableMemory.growthIsNear(count: entries, capacity: capacity) else { return }
        preparedAt = capacity
        if let p = pointer { TableMemory.deallocate(p, count: count) }
        pointer = TableMemory.allocateAhead(T.self, count: next)
        count = next
    }

    /// Zeroed storage for `n` elements: the one mapped ahead if it has that size.
    public mutating func take(count n: Int) -> UnsafeMutablePointer<T> {
        defer { pointer = nil }
        guard let p = pointer else { return TableMemory.allocate(T.self, count: n) }
        if count == n { return p }
        TableMemory.deallocate(p, count: count)
        return TableMemory.allocate(T.self, count: n)
    }
}
