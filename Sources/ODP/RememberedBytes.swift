#if canImport(Glibc)
import Glibc
#endif

/// A copy of some bytes in memory of its own, for the memos (KeyMemo, MaskMemo) that
/// compare each put's attributes with the last ones. An array property of theirs was
/// retained and released at every comparison; this holds no reference.
struct RememberedBytes: ~Copyable {
    private var storage = UnsafeMutableRawBufferPointer.allocate(byteCount: 256, alignment: 8)
    private(set) var count = 0

    init() {}
    deinit { storage.deallocate() }

    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: storage.baseAddress, count: count) }

    mutating func set(_ new: ArraySlice<UInt8>) {
        if new.count > storage.count {
            storage.deallocate()
            storage = .allocate(byteCount: max(new.count, 2 * storage.count), alignment: 8)
        }
        count = new.count
        new.withUnsafeBytes { if let p = $0.baseAddress { storage.baseAddress!.copyMemory(from: p, byteCount: $0.count) } }
    }

    /// Whether `other` holds the same bytes (one memcmp).
    func same(as other: ArraySlice<UInt8>) -> Bool {
        guard other.count == count else { return false }
        if count == 0 { return true }
        return other.withUnsafeBytes { memcmp($0.baseAddress!, storage.baseAddress!, count) == 0 }
    }
}
