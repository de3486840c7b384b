import Packet
import Synchronization

/// The ordered list of subtables that readers walk; replaced as a whole when a mask
/// appears or disappears or when subtables are re-ranked by hits.
final class SubtableList: @unchecked Sendable {
    let items: UnsafeMutablePointer<Unmanaged<Subtable>>
    let count: Int

    init(_ subtables: [Subtable]) {
        count = subtables.count
        items = .allocate(capacity: max(1, count))
        for (i, s) in subtables.enumerated() { (items + i).initialize(to: Unmanaged.passRetained(s)) }
    }

    deinit {
        for i in 0..<count { items[i].release() }
        items.deinitialize(count: count)
        items.deallocate()
    }
}

/// Tuple-space search over masked entries (the kernel's flow_table / OVS's dpcls):
/// one hash table per distinct mask, walked in order of recent hits. Lookups are
/// lock-free and allocation-free; all changes come from one writer thread and are
/// published RCU-style through `QuiescentState`.
///
/// Overlapping entries follow the kernel: the first subtable in walk order that
/// matches wins.
public final class Classifier: @unchecked Sendable {
    private let list: Atomic<Unmanaged<SubtableList>>
    public let rcu: QuiescentState

    // Writer side.
    private var subtables: [Subtable] = []
    private var byMask: [FlowKey: Subtable] = [:]
    /// The subtable last looked up by mask: batches of flows mostly share one mask, and
    /// comparing 28 words is much cheaper than hashing them for the dictionary. Not
    /// counted (`byMask` and `subtables` hold it; it is forgotten when it goes): the
    /// writer's look-ups borrow their subtable, without an atomic retain and release each.
    private var lastSubtable: Unmanaged<Subtable>?
    /// Subtables emptied (and dropped from `subtables`) since the readers' list was last
    /// published, and that list's length.
    private var emptiedSincePublish = 0
    private var publishedCount = 0
    public private(set) var count = 0

    public init(rcu: QuiescentState = .shared) {
        self.rcu = rcu
        list = Atomic(Unmanaged.passRetained(SubtableList([])))
    }

    deinit {
        list.load(ordering: .relaxed).release()
    }

    // MARK: Reader side

    /// Looks up `key`. `probed` is increased by the number of subtables examined
    /// (the datapath's "masks hit" statistic).
    @inlinable
    public func lookup(_ key: FlowKey, reader: QuiescentState.Reader, probed: inout UInt64) -> Unmanaged<ClassifierEntry>? {
        lookupSlow(key, reader: reader.index, probed: &probed)
    }

    @usableFromInline
    func lookupSlow(_ key: FlowKey, reader: Int, probed: inout UInt64) -> Unmanaged<ClassifierEntry>? {
        list.load(ordering: .acquiring)._withUnsafeGuaranteedRef { l -> Unmanaged<ClassifierEntry>? in
            for i in 0..<l.count {
                probed &+= 1
                let hit = l.items[i]._withUnsafeGuaranteedRef { st -> Unmanaged<ClassifierEntry>? in
                    if let e = st.find(key) {
                        st.countHit(reader: reader)
                        return e
                    }
                    return nil
                }
                if let hit { return hit }
            }
            return nil
        }
    }

    /// Every entry matching `key`, in walk order (the first is what `lookup` returns).
    /// Writer side, and read-only: no hit is counted, so a trace leaves the ranking as
    /// it was.
    public func entries(matching key: FlowKey) -> [ClassifierEntry] {
        subtables.compactMap { $0.find(key)?.takeUnretainedValue() }
    }

    /// Number of distinct masks readers walk.
    public var maskCount: Int { subtables.count }

    // MARK: Writer side

    private func subtable(for bits: FlowKey) -> Unmanaged<Subtable>? {
        if let s = lastSubtable, s._withUnsafeGuaranteedRef({ $0.mask.bits == bits }) { return s }
        guard let s = byMask[bits] else { return nil }
        let u = Unmanaged.passUnretained(s)
        lastSubtable = u
        return u
    }

    /// The same for an entry's mask object: the subtable's own (`mask(for:)` hands it
    /// out) is known by identity, without comparing 28 words.
    private func subtable(for mask: FlowMask) -> Unmanaged<Subtable>? {
        if let s = lastSubtable, s._withUnsafeGuaranteedRef({ $0.mask === mask }) { return s }
        return subtable(for: mask.bits)
    }

    /// The mask object for `bits`, shared with an existing subtable when there is one.
    public func mask(for bits: FlowKey) -> FlowMask {
        subtable(for: bits)?._withUnsafeGuaranteedRef { $0.mask } ?? FlowMask(bits)
    }

    /// A key about to be looked up exactly and, if absent, inserted: its mask object
    /// (the subtable's, found once by the mask's 28 words) and its hash under it
    /// (computed once, for the look-up and the new entry). Making one starts loading the
    /// slot where the look-up will probe: at a million entries that is a cache miss,
    /// which then overlaps the caller's work in between.
    public struct Probe {
        public let mask: FlowMask
        public let hash: UInt32
    }

    public func probe(key: FlowKey, mask bits: FlowKey) -> Probe {
        guard let s = subtable(for: bits) else {
            let m = FlowMask(bits)
            return Probe(mask: m, hash: m.hash(key))
        }
        return s._withUnsafeGuaranteedRef { st in
            let h = st.mask.hash(key)
            st.prefetch(hash: h)
            return Probe(mask: st.mask, hash: h)
        }
    }

    /// `lookupExact(key:mask:)` of a probed key.
    public func lookupExact(key: FlowKey, probe: Probe) -> ClassifierEntry? {
        subtable(for: probe.mask)?._withUnsafeGuaranteedRef { $0.find(key, hash: probe.hash)?.takeUnretainedValue() }
    }

    /// The entry installed with exactly this key and mask, if any.
    public func lookupExact(key: FlowKey, mask: FlowKey) -> ClassifierEntry? {
        subtable(for: mask)?._withUnsafeGuaranteedRef { $0.lookupExact(key.masked(by: mask)) }
    }

    /// Inserts an entry. Returns false (and changes nothing) if an entry with the same
    /// masked key and mask exists.
    /// `checkedAbsent`: the caller looked the entry's key and mask up and nothing was
    /// there (nor inserted since), so the subtable is not probed a second time (at a
    /// million entries each probe is a cache miss).
    @discardableResult
    public func insert(_ e: ClassifierEntry, checkedAbsent: Bool = false) -> Bool {
        assert(e.hash == e.mask.hash(e.key), "an entry goes into a classifier hashed (ClassifierEntry.rehash)")
        guard let s = subtable(for: e.mask) else {
            let st = Subtable(mask: e.mask)
            byMask[e.mask.bits] = st
            subtables.append(st)
            st.insert(e, rcu: rcu)
            count += 1
            publish()
            return true
        }
        let inserted = s._withUnsafeGuaranteedRef { st in
            if checkedAbsent {
                assert(st.lookupExact(e.key) == nil, "an entry said to be absent is there")
            } else if st.lookupExact(e.key) != nil {
                return false
            }
            st.insert(e, rcu: rcu)
            return true
        }
        if inserted { count += 1 }
        return inserted
    }

    @discardableResult
    public func remove(_ e: ClassifierEntry) -> Bool {
        guard let u = subtable(for: e.mask), u._withUnsafeGuaranteedRef({ $0.remove(e, rcu: rcu) }) else { return false }
        count -= 1
        let st = u.takeUnretainedValue()
        if st.count == 0 {
            byMask[e.mask.bits] = nil
            if lastSubtable?.toOpaque() == u.toOpaque() { lastSubtable = nil }
            subtables.removeAll { $0 === st }
            // An empty subtable may stay in the readers' list a while (it matches
            // nothing): republishing at each one made deleting n masks leave n lists of
            // up to n pointers for the grace period. Republish once a quarter of the
            // published list (at least 16) has emptied: O(n) garbage for n removals.
            emptiedSincePublish += 1
            if emptiedSincePublish > max(16, publishedCount / 4) { publish() }
        }
        return true
    }

    /// Removes every entry with one publication. Removing entries one by one publishes a
    /// new subtable list each time a mask goes: with n masks that is n lists of up to n
    /// pointers waiting for the grace period at once (5,000 masks: 100 MB).
    public func removeAll() {
        guard count > 0 || !subtables.isEmpty else { return }
        // The old list holds the subtables (and they their entries) until readers move on.
        subtables.removeAll()
        byMask.removeAll()
        lastSubtable = nil
        count = 0
        publish()
    }

    /// Replaces an entry by one with the same masked key and mask, atomically for readers.
    @discardableResult
    public func replace(_ old: ClassifierEntry, with new: ClassifierEntry) -> Bool {
        assert(new.hash == new.mask.hash(new.key), "an entry goes into a classifier hashed (ClassifierEntry.rehash)")
        guard old.mask.bits == new.mask.bits, let st = subtable(for: old.mask.bits) else { return false }
        return st._withUnsafeGuaranteedRef { $0.replace(old, with: new, rcu: rcu) }
    }

    /// Every entry (writer side; for dumps).
    public var allEntries: [ClassifierEntry] {
        var out: [ClassifierEntry] = []
        out.reserveCapacity(count)
        for s in subtables { out.append(contentsOf: s.entries) }
        return out
    }

    /// Orders subtables by hits since the last ranking, busiest first, as the kernel
    /// re-sorts its mask array. Returns true if the order changed.
    @discardableResult
    public func rerank() -> Bool {
        for s in subtables { s.recentHits = s.takeHitDelta() }
        let sorted = subtables.enumerated().sorted {
            $0.element.recentHits != $1.element.recentHits
                ? $0.element.recentHits > $1.element.recentHits : $0.offset < $1.offset
        }.map(\.element)
        if zip(sorted, subtables).allSatisfy({ $0 === $1 }) {
            // Nothing to reorder, but emptied subtables leave the readers' list here.
            if emptiedSincePublish > 0 { publish() }
            return false
        }
        subtables = sorted
        publish()
        return true
    }

    /// Total hits per mask, in walk order (for statistics).
    public var maskHits: [(mask: FlowMask, hits: UInt64, entries: Int)] {
        subtables.map { ($0.mask, $0.totalHits(), $0.count) }
    }

    private func publish() {
        emptiedSincePublish = 0
        publishedCount = subtables.count
        let fresh = Unmanaged.passRetained(SubtableList(subtables))
        let old = list.exchange(fresh, ordering: .acquiringAndReleasing)
        rcu.retire { old.release() }
    }
}
