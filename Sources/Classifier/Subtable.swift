import CNetLinux
import Packet
import Synchronization

/// Open-addressing slots, each an atomic word: 0 empty, 1 deleted, otherwise an
/// unmanaged entry pointer with 16 bits of the entry's hash in its unused top bits.
/// Readers probe without locks; the single writer stores with release ordering. Load
/// (live + deleted) stays under 3/4 so probes always end.
///
/// The tag lets a probe pass over other entries without reading them: in a big table
/// each entry read is a cache miss, and a miss (an insert's "is it there?") would
/// otherwise read every entry of its probe run.
final class SlotArray: @unchecked Sendable {
    let capacity: Int
    let slots: UnsafeMutablePointer<Atomic<UInt>>

    /// `slots`: zeroed storage for `capacity` slots (all empty: an atomic word is its
    /// value's bits), owned from now on.
    init(capacity: Int, slots: UnsafeMutablePointer<Atomic<UInt>>) {
        self.capacity = capacity
        self.slots = slots
    }

    convenience init(capacity: Int) {
        self.init(capacity: capacity, slots: TableMemory.allocate(Atomic<UInt>.self, count: capacity))
    }

    deinit {
        TableMemory.deallocate(slots, count: capacity)
    }

    static let empty: UInt = 0
    static let deleted: UInt = 1

    private static let tagShift: UInt = 48
    private static let pointerBits: UInt = (1 << tagShift) - 1

    /// The tag bits a slot holding an entry with hash `h` carries (the hash's high half:
    /// the low bits already chose the slot).
    @inline(__always)
    static func tag(_ h: UInt32) -> UInt { UInt(h >> 16) << tagShift }

    @inline(__always)
    static func hasTag(_ v: UInt, _ tag: UInt) -> Bool { v & ~pointerBits == tag }

    static func word(_ e: Unmanaged<ClassifierEntry>, hash: UInt32) -> UInt {
        let p = UInt(bitPattern: e.toOpaque())
        // User-space pointers on the 64-bit platforms we run on fit in 48 bits.
        precondition(p & ~pointerBits == 0, "entry pointer does not leave room for a hash tag")
        return p | tag(hash)
    }

    @inline(__always)
    static func entry(_ v: UInt) -> Unmanaged<ClassifierEntry> {
        Unmanaged<ClassifierEntry>.fromOpaque(UnsafeRawPointer(bitPattern: v & pointerBits)!)
    }
}

/// All entries that share one mask: one hash table of the tuple-space search.
public final class Subtable: @unchecked Sendable {
    public let mask: FlowMask
    private let current: Atomic<Unmanaged<SlotArray>>
    /// Per-reader hit counters, one cache line apart.
    private let hitCounters: UnsafeMutablePointer<Atomic<UInt64>>

    // Writer-side state (control thread only). The slot array is the only index: the
    // writer finds entries by probing it, as readers do.
    public private(set) var count = 0
    private var deletedSlots = 0
    /// The next slot array's storage, mapped ahead of the growth.
    private var ahead = AheadStorage<Atomic<UInt>>()
    private var lastHits: UInt64 = 0
    /// Hits since the previous ranking, used to order subtables.
    var recentHits: UInt64 = 0

    init(mask: FlowMask) {
        self.mask = mask
        current = Atomic(Unmanaged.passRetained(SlotArray(capacity: 8)))
        hitCounters = .allocate(capacity: QuiescentState.maximumReaders * 8)
        for i in 0..<(QuiescentState.maximumReaders * 8) { (hitCounters + i).initialize(to: Atomic(0)) }
    }

    deinit {
        // The live slot array holds one reference per entry.
        let arr = current.load(ordering: .relaxed)
        arr._withUnsafeGuaranteedRef { a in
            for i in 0..<a.capacity {
                let v = a.slots[i].load(ordering: .relaxed)
                if v > SlotArray.deleted { SlotArray.entry(v).release() }
            }
        }
        arr.release()
        hitCounters.deinitialize(count: QuiescentState.maximumReaders * 8)
        hitCounters.deallocate()
    }

    /// Every entry, in slot order (writer side).
    public var entries: [ClassifierEntry] {
        var out: [ClassifierEntry] = []
        out.reserveCapacity(count)
        current.load(ordering: .relaxed)._withUnsafeGuaranteedRef { arr in
            for i in 0..<arr.capacity {
                let v = arr.slots[i].load(ordering: .relaxed)
                if v > SlotArray.deleted { out.append(SlotArray.entry(v).takeUnretainedValue()) }
            }
        }
        return out
    }

    // MARK: Reader side

    /// Finds the entry matching `key` under this subtable's mask.
    @inlinable @inline(__always)
    func find(_ key: FlowKey) -> Unmanaged<ClassifierEntry>? {
        findSlow(key)
    }

    @usableFromInline
    func findSlow(_ key: FlowKey) -> Unmanaged<ClassifierEntry>? {
        find(key, hash: mask.hash(key))
    }

    /// `findSlow` of a key whose hash under this mask is `h`.
    func find(_ key: FlowKey, hash h: UInt32) -> Unmanaged<ClassifierEntry>? {
        let tag = SlotArray.tag(h)
        return current.load(ordering: .acquiring)._withUnsafeGuaranteedRef { arr -> Unmanaged<ClassifierEntry>? in
            let m = arr.capacity - 1
            var i = Int(h) & m
            while true {
                let v = arr.slots[i].load(ordering: .acquiring)
                if v == SlotArray.empty { return nil }
                if v != SlotArray.deleted && SlotArray.hasTag(v, tag) {
                    let e = SlotArray.entry(v)
                    let hit = e._withUnsafeGuaranteedRef { $0.hash == h && mask.matches(key, entry: $0) }
                    if hit { return e }
                }
                i = (i + 1) & m
            }
        }
    }

    @inline(__always)
    func countHit(reader: Int) {
        let c = hitCounters + reader * 8
        c.pointee.store(c.pointee.load(ordering: .relaxed) &+ 1, ordering: .relaxed)
    }

    func totalHits() -> UInt64 {
        var t: UInt64 = 0
        for r in 0..<QuiescentState.maximumReaders { t &+= hitCounters[r * 8].load(ordering: .relaxed) }
        return t
    }

    /// Hits since the last call (for ranking).
    func takeHitDelta() -> UInt64 {
        let t = totalHits()
        let d = t &- lastHits
        lastHits = t
        return d
    }

    /// Starts loading the slot where a probe for a key of hash `h` begins.
    func prefetch(hash h: UInt32) {
        current.load(ordering: .acquiring)._withUnsafeGuaranteedRef { arr in
            cnl_prefetch(arr.slots + (Int(h) & (arr.capacity - 1)))
        }
    }

    // MARK: Writer side

    /// The entry whose (masked) key is exactly `maskedKey`.
    func lookupExact(_ maskedKey: FlowKey) -> ClassifierEntry? {
        findSlow(maskedKey)?.takeUnretainedValue()
    }

    /// Inserts an entry whose key is not here yet (the caller has looked).
    func insert(_ e: ClassifierEntry, rcu: QuiescentState) {
        assert(lookupExact(e.key) == nil, "duplicate classifier entry")
        count += 1
        // The array is borrowed, not retained: only a rebuild (below, not meanwhile)
        // retires it.
        let full = current.load(ordering: .relaxed)._withUnsafeGuaranteedRef { arr in
            if (count + deletedSlots) * 4 > arr.capacity * 3 { return true }
            place(e, in: arr)
            ahead.prepare(entries: count + deletedSlots, capacity: arr.capacity, next: arr.capacity * 2)
            return false
        }
        if full { rebuild(rcu: rcu, adding: e) }
    }

    /// The slot holding `e` itself (not merely an entry with its key), if any.
    private func slot(of e: ClassifierEntry, in arr: SlotArray) -> Int? {
        let target = SlotArray.word(Unmanaged.passUnretained(e), hash: e.hash)
        let m = arr.capacity - 1
        var i = Int(e.hash) & m
        while true {
            let v = arr.slots[i].load(ordering: .relaxed)
            if v == target { return i }
            if v == SlotArray.empty { return nil }
            i = (i + 1) & m
        }
    }

    @discardableResult
    func remove(_ e: ClassifierEntry, rcu: QuiescentState) -> Bool {
        let arr = current.load(ordering: .relaxed).takeUnretainedValue()
        guard let i = slot(of: e, in: arr) else { return false }
        arr.slots[i].store(SlotArray.deleted, ordering: .releasing)
        deletedSlots += 1
        count -= 1
        // The slot array held one reference; drop it after readers are done.
        let u = Unmanaged.passUnretained(e)
        rcu.retire { u.release() }
        if deletedSlots > arr.capacity / 4 { rebuild(rcu: rcu, adding: nil) }
        return true
    }

    /// Swaps `old` for `new` (same masked key) in one atomic slot store: readers see
    /// one or the other, never neither.
    func replace(_ old: ClassifierEntry, with new: ClassifierEntry, rcu: QuiescentState) -> Bool {
        guard new.hasSameKey(as: old) else { return false }
        let arr = current.load(ordering: .relaxed).takeUnretainedValue()
        guard let i = slot(of: old, in: arr) else { return false }
        arr.slots[i].store(SlotArray.word(Unmanaged.passRetained(new), hash: new.hash), ordering: .releasing)
        let u = Unmanaged.passUnretained(old)
        rcu.retire { u.release() }
        return true
    }

    /// Stores a new reference to `e` in a free slot.
    private func place(_ e: ClassifierEntry, in arr: SlotArray) {
        place(SlotArray.word(Unmanaged.passRetained(e), hash: e.hash), hash: e.hash, in: arr)
    }

    /// Stores a slot word (which owns its entry reference) in a free slot.
    private func place(_ word: UInt, hash: UInt32, in arr: SlotArray) {
        let m = arr.capacity - 1
        var i = Int(hash) & m
        while true {
            let v = arr.slots[i].load(ordering: .relaxed)
            if v == SlotArray.empty || v == SlotArray.deleted {
                if v == SlotArray.deleted { deletedSlots -= 1 }
                arr.slots[i].store(word, ordering: .releasing)
                return
            }
            i = (i + 1) & m
        }
    }

    /// Builds a fresh slot array sized for the live entries (plus `adding`, already
    /// counted), publishes it and retires the old one.
    ///
    /// The entry references move from the old array to the fresh one: the old array is
    /// freed without releasing them (entries leave only through remove/replace, which
    /// retire their reference after readers of either array are done).
    private func rebuild(rcu: QuiescentState, adding extra: ClassifierEntry?) {
        var cap = 8
        while count * 2 > cap { cap <<= 1 }
        let fresh = SlotArray(capacity: cap, slots: ahead.take(count: cap))
        let old = current.load(ordering: .relaxed)
        let oldArr = old.takeUnretainedValue()
        deletedSlots = 0
        // Each entry is read for its hash: in a big table each read is a cache miss, so
        // the entry `lookahead` slots on starts loading while this one is placed (in a
        // small one, whose entries are in the cache, that costs more than it saves).
        let lookahead = oldArr.capacity >= 1 << 16 ? 16 : 0
        for i in 0..<oldArr.capacity {
            if lookahead > 0 && i + lookahead < oldArr.capacity {
                let w = oldArr.slots[i + lookahead].load(ordering: .relaxed)
                if w > SlotArray.deleted { cnl_prefetch(SlotArray.entry(w).toOpaque() + ClassifierEntry.hashOffset) }
            }
            let v = oldArr.slots[i].load(ordering: .relaxed)
            if v > SlotArray.deleted {
                place(v, hash: SlotArray.entry(v)._withUnsafeGuaranteedRef { $0.hash }, in: fresh)
            }
        }
        if let extra { place(extra, in: fresh) }
        current.store(Unmanaged.passRetained(fresh), ordering: .releasing)
        rcu.retire { old.release() }
    }
}
