#if canImport(Glibc)
import Glibc
#endif

/// Storage for the big open-addressing tables (a subtable's slots, the data plane's slot
/// shadow, the datapath's ufid index): zeroed, and from 2 MiB up in transparent huge pages where the kernel has
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
