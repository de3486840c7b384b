import CNetLinux
import Classifier

/// The driver's shadow of one rule table: what each slot holds (action set, counter,
/// flags) by the fingerprint of its key (the kernel's map holds the keys), and the slots
/// queued rules are about to take.
///
/// Open addressing over one array of 16-byte entries (linear probing, at most 3/4 full
/// with deleted entries counted): with a million rules each look-up is a cache miss, and a
/// dictionary's separate key and value storage made two or three. A queued rule marks its
/// slot in the same entry, so the queue needs no set of fingerprints beside it, and
/// settling the write finds the entry where the queueing left it.
final class SlotShadow {
    enum State: UInt8 { case empty = 0, deleted, written, queued }

    struct Entry {
        var fingerprint: UInt64
        var counter: UInt32
        var actionSet: UInt16
        var flags: UInt8
        var state: State

        var slot: BPFDataPlane.Slot {
            BPFDataPlane.Slot(actionSet: UInt32(actionSet), counter: counter, flags: UInt32(flags))
        }
    }

    private var entries: UnsafeMutablePointer<Entry>
    private(set) var capacity: Int
    /// Slots holding a written rule.
    private(set) var written = 0
    /// Slots a queued rule will take.
    private(set) var queued = 0
    private var deleted = 0
    /// The next size's storage, mapped ahead of the growth.
    private var ahead = AheadStorage<Entry>()

    static let minimumCapacity = 16

    init(capacity: Int = SlotShadow.minimumCapacity) {
        self.capacity = capacity
        entries = TableMemory.allocate(Entry.self, count: capacity)
    }

    deinit { TableMemory.deallocate(entries, count: capacity) }

    /// Empty again, at the smallest size (a flush, which drops the queued rules with
    /// their marks, or an emptied table's storage given back): a `Place` from before is
    /// stale after it.
    func reset() {
        TableMemory.deallocate(entries, count: capacity)
        capacity = Self.minimumCapacity
        entries = TableMemory.allocate(Entry.self, count: capacity)
        written = 0
        queued = 0
        deleted = 0
        generation &+= 1
        ahead.drop()
    }

    var isEmpty: Bool { written == 0 && queued == 0 }

    /// The entry holding `fingerprint` (written or queued), or nil.
    func find(_ fingerprint: Fingerprint) -> Int? {
        let m = capacity - 1
        var i = Int(truncatingIfNeeded: fingerprint.value) & m
        while true {
            let e = entries[i]
            if e.state == .empty { return nil }
            if e.fingerprint == fingerprint.value && e.state != .deleted { return i }
            i = (i + 1) & m
        }
    }

    subscript(_ i: Int) -> Entry { entries[i] }

    /// Starts loading the line where `find(fingerprint)` begins (at a million rules it
    /// is a cache miss, the biggest single wait of a rule's install).
    func prefetch(_ fingerprint: Fingerprint) {
        cnl_prefetch(entries + (Int(truncatingIfNeeded: fingerprint.value) & (capacity - 1)))
    }

    /// An entry's position, valid until the table is rebuilt or reset (`generation`).
    struct Place {
        let index: Int32
        let generation: UInt32
    }

    /// Rebuilds and resets so far: a `Place` from an earlier one is stale.
    private var generation: UInt32 = 0

    /// Marks the slot of a rule queued for writing (none holds `fingerprint`); where.
    func markQueued(_ fingerprint: Fingerprint, _ slot: BPFDataPlane.Slot) -> Place {
        let i = place(Self.entry(fingerprint, slot, .queued))
        queued += 1
        let at = Place(index: Int32(i), generation: generation)
        growIfFull()
        return at
    }

    /// The queued entry at `at` (its content set when it was queued) is written: false if
    /// the table was rebuilt since (the caller looks the entry up). Only a store: at a
    /// million rules the entry's line has left the cache since, and a look-up would wait
    /// for it.
    func markWritten(_ at: Place) -> Bool {
        guard at.generation == generation else { return false }
        assert(entries[Int(at.index)].state == .queued, "a queued entry moved without a rebuild")
        entries[Int(at.index)].state = .written
        queued -= 1
        written += 1
        return true
    }

    /// The slot holds `slot`, written: a queued entry becomes written, a written one
    /// takes the new content, or a new entry is made.
    func setWritten(_ fingerprint: Fingerprint, _ slot: BPFDataPlane.Slot) {
        if let i = find(fingerprint) {
            if entries[i].state == .queued {
                queued -= 1
                written += 1
            }
            entries[i] = Self.entry(fingerprint, slot, .written)
            return
        }
        place(Self.entry(fingerprint, slot, .written))
        written += 1
        growIfFull()
    }

    /// Takes out the entry at `i` (written or queued).
    func remove(at i: Int) {
        if entries[i].state == .queued { queued -= 1 } else { written -= 1 }
        entries[i].state = .deleted
        deleted += 1
        if deleted > capacity / 4 { rebuild(capacity: capacity) }
    }

    /// Takes out the entry of a queued rule that was not written.
    func removeQueued(_ fingerprint: Fingerprint) {
        if let i = find(fingerprint), entries[i].state == .queued { remove(at: i) }
    }

    /// Memory back after most entries went: a table its size (a fresh small one when
    /// empty). Only when it is at least `minimum` entries and under an eighth full.
    func shrinkIfSparse(minimum: Int) {
        let live = written + queued
        guard capacity > minimum, live * 8 < capacity else { return }
        var c = Self.minimumCapacity
        while live * 2 > c { c <<= 1 }
        rebuild(capacity: c)
    }

    private static func entry(_ f: Fingerprint, _ s: BPFDataPlane.Slot, _ state: State) -> Entry {
        // Action set ids are under actionSetCapacity (65536); flags are ESW_RULE_* bits.
        Entry(fingerprint: f.value, counter: s.counter, actionSet: UInt16(truncatingIfNeeded: s.actionSet),
              flags: UInt8(truncatingIfNeeded: s.flags), state: state)
    }

    @discardableResult
    private func place(_ e: Entry) -> Int {
        let m = capacity - 1
        var i = Int(truncatingIfNeeded: e.fingerprint) & m
        while entries[i].state == .written || entries[i].state == .queued { i = (i + 1) & m }
        if entries[i].state == .deleted { deleted -= 1 }
        entries[i] = e
        return i
    }

    private func growIfFull() {
        if (written + queued + deleted) * 4 > capacity * 3 {
            rebuild(capacity: capacity * 2)
        } else {
            ahead.prepare(entries: written + queued + deleted, capacity: capacity, next: capacity * 2)
        }
    }

    private func rebuild(capacity newCapacity: Int) {
        let old = entries, oldCapacity = capacity
        capacity = newCapacity
        entries = ahead.take(count: newCapacity)
        deleted = 0
        generation &+= 1
        for i in 0..<oldCapacity where old[i].state == .written || old[i].state == .queued { place(old[i]) }
        TableMemory.deallocate(old, count: oldCapacity)
    }
}
