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

    /// `count` zeroed elements; give them back with `deallocate(_:count:)`.
    public static func allocate<T: ~Copyable>(_: T.Type, count: Int) -> UnsafeMutablePointer<T> {
        let bytes = count * MemoryLayout<T>.stride
        guard bytes >= hugePage else {
            let p = UnsafeMutablePointer<T>.allocate(capacity: count)
            UnsafeMutableRawPointer(p).initializeMemory(as: UInt8.self, repeating: 0, count: bytes)
            return p
        }
        var raw: UnsafeMutableRawPointer?
        guard posix_memalign(&raw, hugePage, bytes) == 0, let raw else { fatalError("out of memory (\(bytes) bytes of table)") }
        // Advice only: without huge pages the table is as before.
        _ = madvise(raw, bytes, MADV_HUGEPAGE)
        raw.initializeMemory(as: UInt8.self, repeating: 0, count: bytes)
        return raw.bindMemory(to: T.self, capacity: count)
    }

    public static func deallocate<T: ~Copyable>(_ p: UnsafeMutablePointer<T>, count: Int) {
        if count * MemoryLayout<T>.stride >= hugePage { free(UnsafeMutableRawPointer(p)) } else { p.deallocate() }
    }
}
