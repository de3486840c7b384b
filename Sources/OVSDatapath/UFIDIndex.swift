import CNetLinux
import Classifier

/// The flow table's index by UFID (control thread only): open addressing over one array
/// of 32-byte entries, the ufid, a strong reference to its flow and the ufid's hash side
/// by side.
///
/// With a million flows each probe is a cache miss; a dictionary keeps keys and values
/// in separate arrays (and a bitmap), so a put's "is this ufid taken? take it" touched
/// two or three lines where this touches one. Positions come from a keyed hash
/// (SipHash), as a dictionary's do: ufids are the client's, and must not be able to pile
/// up in one run.
struct UFIDIndex: ~Copyable {
    private struct Entry {
        var low: UInt64
        var high: UInt64
        /// 0: empty; 1: deleted; otherwise the flow, retained by the index.
        var flow: UInt
        /// The ufid's keyed hash: a growth places the entries again without hashing
        /// them again (then 190 instructions each through Hasher, every entry once or
        /// twice over a table's growths: 527 instructions a put at 50k). Two entries to a
        /// cache line, too, where 24 bytes made every third one straddle two.
        var hash: Int
    }

    private static let empty: UInt = 0, deleted: UInt = 1
    private static let minimumCapacity = 16

    private var entries: UnsafeMutablePointer<Entry>
    private var capacity: Int
    private(set) var count = 0
    private var deletedCount = 0
    /// The next size's storage, mapped ahead of the growth.
    private var ahead = AheadStorage<Entry>()
    /// The ufid `prefetch` hashed, and its hash: the put's `claim` follows (the keyed
    /// hash of a ufid is about 130 instructions).
    private var prefetched: (ufid: UInt128, hash: Int)?

    init() {
        capacity = Self.minimumCapacity
        entries = TableMemory.allocate(Entry.self, count: capacity)
    }

    deinit {
        releaseAll()
        TableMemory.deallocate(entries, count: capacity)
    }

    var isEmpty: Bool { count == 0 }

    func lookup(_ ufid: UInt128) -> DatapathFlow? {
        guard let i = find(ufid) else { return nil }
        return Self.flow(entries[i].flow)
    }

    /// Starts loading the entry where a look-up of `ufid` begins.
    mutating func prefetch(_ ufid: UInt128) {
        let h = Self.hash(ufid)
        prefetched = (ufid, h)
        cnl_prefetch(entries + (h & (capacity - 1)))
    }

    /// Adds `f` under its ufid; false (nothing changed) if another flow has it.
    mutating func claim(_ f: DatapathFlow) -> Bool {
        let h = prefetched.flatMap { $0.ufid == f.ufid ? $0.hash : nil } ?? Self.hash(f.ufid)
        let (low, high) = Self.halves(f.ufid)
        let m = capacity - 1
        var i = h & m
        var free: Int?
        while true {
            let e = entries[i]
            if e.flow == Self.empty { break }
            if e.flow == Self.deleted {
                if free == nil { free = i }
            } else if e.low == low && e.high == high {
                return false
            }
            i = (i + 1) & m
        }
        let at = free ?? i
        if entries[at].flow == Self.deleted { deletedCount -= 1 }
        entries[at] = Entry(low: low, high: high, flow: UInt(bitPattern: Unmanaged.passRetained(f).toOpaque()), hash: h)
        count += 1
        if (count + deletedCount) * 4 > capacity * 3 {
            rebuild(capacity: capacity * 2)
        } else {
            ahead.prepare(entries: count + deletedCount, capacity: capacity, next: capacity * 2)
        }
        return true
    }

    /// Takes out `f` if it is the flow under its ufid (false: it is not).
    @discardableResult
    mutating func remove(_ f: DatapathFlow) -> Bool {
        guard let i = find(f.ufid), Self.flow(entries[i].flow) === f else { return false }
        Unmanaged<DatapathFlow>.fromOpaque(UnsafeRawPointer(bitPattern: entries[i].flow)!).release()
        entries[i].flow = Self.deleted
        count -= 1
        deletedCount += 1
        // An index mostly emptied keeps no storage of its size (tens of MiB after a
        // million flows).
        if capacity > 4096 && count * 16 < capacity {
            var c = Self.minimumCapacity
            while c < count * 4 { c <<= 1 }
            rebuild(capacity: c)
        } else if deletedCount > capacity / 4 {
            rebuild(capacity: capacity)
        }
        return true
    }

    /// `new` takes the place of the flow under its ufid (a replacement: same ufid).
    mutating func replace(with new: DatapathFlow) {
        guard let i = find(new.ufid) else { return }
        let old = entries[i].flow
        entries[i].flow = UInt(bitPattern: Unmanaged.passRetained(new).toOpaque())
        Unmanaged<DatapathFlow>.fromOpaque(UnsafeRawPointer(bitPattern: old)!).release()
    }

    mutating func removeAll() {
        releaseAll()
        ahead.drop()
        TableMemory.deallocate(entries, count: capacity)
        capacity = Self.minimumCapacity
        entries = TableMemory.allocate(Entry.self, count: capacity)
        count = 0
        deletedCount = 0
    }

    private func find(_ ufid: UInt128) -> Int? {
        let (low, high) = Self.halves(ufid)
        let m = capacity - 1
        var i = Self.hash(ufid) & m
        while true {
            let e = entries[i]
            if e.flow == Self.empty { return nil }
            if e.flow != Self.deleted && e.low == low && e.high == high { return i }
            i = (i + 1) & m
        }
    }

    private func releaseAll() {
        for i in 0..<capacity where entries[i].flow > Self.deleted {
            Unmanaged<DatapathFlow>.fromOpaque(UnsafeRawPointer(bitPattern: entries[i].flow)!).release()
        }
    }

    /// Moves the entries (and the references they own) into a table of `newCapacity`.
    private mutating func rebuild(capacity newCapacity: Int) {
        let old = entries, oldCapacity = capacity
        capacity = newCapacity
        entries = ahead.take(count: newCapacity)
        deletedCount = 0
        let m = newCapacity - 1
        for j in 0..<oldCapacity where old[j].flow > Self.deleted {
            var i = old[j].hash & m
            while entries[i].flow != Self.empty { i = (i + 1) & m }
            entries[i] = old[j]
        }
        TableMemory.deallocate(old, count: oldCapacity)
    }

    private static func flow(_ word: UInt) -> DatapathFlow {
        Unmanaged<DatapathFlow>.fromOpaque(UnsafeRawPointer(bitPattern: word)!).takeUnretainedValue()
    }

    private static func halves(_ u: UInt128) -> (UInt64, UInt64) {
        (UInt64(truncatingIfNeeded: u), UInt64(truncatingIfNeeded: u >> 64))
    }

    private static func hash(_ u: UInt128) -> Int {
        let (low, high) = halves(u)
        return Int(truncatingIfNeeded: KeyedHash.hash(low, high))
    }
}
