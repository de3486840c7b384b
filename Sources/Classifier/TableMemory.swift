#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// Storage for the big open-addressing tables (a subtable's slots, the data plane's slot
/// shadow, the datapath's ufid index): zeroed, and from 2 MiB up in transparent huge pages where the kernel has
/// them (`madvise` mode). At a million entries each probe of such a table is a cache miss
/// anyway; with 4 KiB pages it was a TLB miss too (a walk of the page tables, in a VM of
/// both levels of them).
public enum TableMemory {
    public static let hugePage = 2 << 20

    /// Stops the touching of a range: at once (`wait` false: the table writes the range
    /// from now on, and a touch keeps every byte as it is), or waiting for the page under
    /// way (`wait` true: the range is about to be unmapped).
    public typealias StopTouching = @Sendable (_ wait: Bool) -> Void

    /// Starts the touching of `length` bytes at a mapping's start; returns how to stop it.
    public typealias TouchAhead = @Sendable (UnsafeMutableRawPointer, Int) -> StopTouching

    /// Starts faulting a mapping's pages in on another thread. The daemon sets it to its
    /// prefault thread's `touch`; nil, `allocateAhead` gives nothing. (Behind a lock: a
    /// closure is two words, and tests set it while other tests' tables grow.)
    public static var touchAhead: TouchAhead? {
        get { touchHook.withLock { $0 } }
        set { touchHook.withLock { $0 = newValue } }
    }
    private static let touchHook = Mutex<TouchAhead?>(nil)

    /// The mappings being touched in, by start: `deallocate` waits for their touching to
    /// stop before it unmaps them.
    private static let touched = Mutex<[UInt: StopTouching]>([:])

    /// A big table's next storage (`count` zeroed elements), mapped before its growth and
    /// faulted in meanwhile on the other thread; nil for a small table, or without
    /// `touchAhead`. In this VM a first touch of a page the guest never used costs the
    /// host's fault as well (160-250 MB/s, against 3 GB/s for a page used before), and a
    /// growth faulted its new table in on the control thread: up to a third of a
    /// million-flow add there.
    public static func allocateAhead<T: ~Copyable>(_: T.Type, count: Int) -> UnsafeMutablePointer<T>? {
        let bytes = count * MemoryLayout<T>.stride
        guard bytes >= hugePage, let touchAhead else { return nil }
        let p = allocate(T.self, count: count)
        let stop = touchAhead(UnsafeMutableRawPointer(p), mappedLength(bytes))
        touched.withLock { $0[UInt(bitPattern: p)] = stop }
        return p
    }

    /// The table starts writing storage mapped ahead: its touching stops, without waiting.
    public static func stopTouching<T: ~Copyable>(_ p: UnsafeMutablePointer<T>) {
        touched.withLock { $0[UInt(bitPattern: p)] }?(false)
    }

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
        if bytes >= hugePage, let stop = touched.withLock({ $0.removeValue(forKey: UInt(bitPattern: p)) }) {
            stop(true)
        }
        if bytes >= hugePage { munmap(UnsafeMutableRawPointer(p), mappedLength(bytes)) } else { p.deallocate() }
    }

    private static func mappedLength(_ bytes: Int) -> Int { (bytes + hugePage - 1) & ~(hugePage - 1) }
}

/// A table's next storage, mapped ahead of its growth (`TableMemory.allocateAhead`): the
/// table calls `prepare` after each insert and takes its new storage from `take`. Past
/// 5/8 of its slots (its growth comes at 3/4), so that a table that stops growing short
/// of that holds no second storage.
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
        guard preparedAt != capacity, entries * 8 > capacity * 5 else { return }
        drop()
        preparedAt = capacity
        pointer = TableMemory.allocateAhead(T.self, count: next)
        count = next
    }

    /// Zeroed storage for `n` elements: the one mapped ahead if it has that size.
    public mutating func take(count n: Int) -> UnsafeMutablePointer<T> {
        guard let p = pointer, count == n else {
            drop()
            return TableMemory.allocate(T.self, count: n)
        }
        TableMemory.stopTouching(p)
        pointer = nil
        preparedAt = 0
        return p
    }

    /// Gives the storage mapped ahead back (a table emptied keeps no second storage).
    public mutating func drop() {
        if let p = pointer { TableMemory.deallocate(p, count: count) }
        pointer = nil
        preparedAt = 0
    }
}
