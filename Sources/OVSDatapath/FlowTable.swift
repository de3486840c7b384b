import Classifier
import ODP
import Packet

/// The datapath's masked flow table (megaflows): the classifier for packet threads,
/// plus the control thread's indexes by UFID and by exact match.
final class FlowTable: @unchecked Sendable {
    let classifier: Classifier
    private var byUFID = UFIDIndex()
    /// Every flow in the order it entered the table, nil where one left (a replacement
    /// takes its predecessor's place). A dump copies this array, not sorting a million
    /// flows before its first reply; the copy is shared until the table next changes.
    private(set) var inOrder: [DatapathFlow?] = []
    private var holes = 0
    /// While set, holes stay where flows left (no compaction, no reset when the table
    /// empties), so that a flow put back (`insert(_:at:)`) takes its old place: an open
    /// transaction's undo restores the order it found.
    var keepsPlaces = false {
        didSet { if oldValue && !keepsPlaces { closeHolesIfMany() } }
    }
    /// Flows the `normal` handler learned (the only ones that age): none, no walk.
    private(set) var learnedCount = 0

    init(rcu: QuiescentState) { classifier = Classifier(rcu: rcu) }

    var count: Int { byUFID.count }
    /// Every flow, oldest first: walked in the order flows, rules and counter slots were
    /// allocated, a million-flow walk (the counter poll) reads memory mostly in sequence
    /// where the dictionary's order jumped at random.
    var flows: some Sequence<DatapathFlow> { inOrder.lazy.compactMap { $0 } }

    /// The flow with exactly this match (same masked key and mask).
    func lookup(match: FlowMatch) -> DatapathFlow? {
        classifier.lookupExact(key: match.key, mask: match.mask).map { unsafeDowncast($0, to: DatapathFlow.self) }
    }

    func lookup(ufid: UInt128) -> DatapathFlow? { byUFID.lookup(ufid) }

    /// Adds a flow whose match and ufid are both new; false (nothing changed) otherwise.
    /// `matchCheckedAbsent`: the caller looked the match up (`lookup(match:probe:)`) and found
    /// nothing, so the classifier is not probed again.
    func insert(_ f: DatapathFlow, matchCheckedAbsent: Bool = false) -> Bool {
        guard claimUFID(f) else { return false }
        return insertClaimed(f, matchCheckedAbsent: matchCheckedAbsent)
    }

    /// `insert`, at `position` of the order if that is a hole (where the flow stood
    /// before it was deleted: see `keepsPlaces`), else last.
    func insert(_ f: DatapathFlow, at position: Int) -> Bool {
        guard claimUFID(f) else { return false }
        return insertClaimed(f, inHole: position < inOrder.count && inOrder[position] == nil ? position : nil)
    }

    /// Takes `f`'s ufid for it, before the rest of the table (a put claims it before
    /// offloading: one probe of the index, where a look-up and then the insert made two,
    /// each a cache miss at a million flows). False, and nothing changed, if another
    /// flow has it.
    func claimUFID(_ f: DatapathFlow) -> Bool { byUFID.claim(f) }

    /// A put's match probed (`Classifier.Probe`: its mask object and hash, for the
    /// look-up and the new flow), and the loads of the classifier's slot and the ufid
    /// index's entry started: two cache misses at a million flows, overlapped with each
    /// other and with the put's work before `lookup(match:probe:)` and `claimUFID`.
    func probe(match: FlowMatch, ufid: UInt128?) -> Classifier.Probe {
        if let ufid { byUFID.prefetch(ufid) }
        return classifier.probe(key: match.key, mask: match.mask)
    }

    func lookup(match: FlowMatch, probe: Classifier.Probe) -> DatapathFlow? {
        classifier.lookupExact(key: match.key, probe: probe).map { unsafeDowncast($0, to: DatapathFlow.self) }
    }

    /// Gives back a claimed ufid whose flow does not go in.
    func releaseUFID(_ f: DatapathFlow) {
        byUFID.remove(f)
    }

    /// The rest of `insert` for a flow whose ufid it claimed; false (the claim given
    /// back) if the match is taken.
    /// (`inHole`: a hole of the order the flow takes, instead of the end.)
    func insertClaimed(_ f: DatapathFlow, matchCheckedAbsent: Bool = false, inHole: Int? = nil) -> Bool {
        guard classifier.insert(f, checkedAbsent: matchCheckedAbsent) else {
            releaseUFID(f)
            return false
        }
        if let hole = inHole {
            f.tablePosition = hole
            inOrder[hole] = f
            holes -= 1
        } else {
            f.tablePosition = inOrder.count
            inOrder.append(f)
        }
        if f.origin == .normal { learnedCount += 1 }
        return true
    }

    func remove(_ f: DatapathFlow) {
        guard byUFID.remove(f) else { return }
        classifier.remove(f)
        if f.origin == .normal { learnedCount -= 1 }
        inOrder[f.tablePosition] = nil
        holes += 1
        if !keepsPlaces { closeHolesIfMany() }
    }

    /// Drops the order's holes when the table is empty, or they are many and more than half.
    private func closeHolesIfMany() {
        if byUFID.isEmpty {
            inOrder = []
            holes = 0
        } else if holes > 1024 && holes > inOrder.count / 2 {
            compact()
        }
    }

    /// Closes the holes, keeping the order.
    private func compact() {
        var kept: [DatapathFlow?] = []
        kept.reserveCapacity(byUFID.count)
        for case let f? in inOrder {
            f.tablePosition = kept.count
            kept.append(f)
        }
        inOrder = kept
        holes = 0
    }

    /// Removes every flow (one classifier publication for all of them).
    func removeAll() {
        byUFID.removeAll()
        inOrder = []
        holes = 0
        learnedCount = 0
        classifier.removeAll()
    }

    /// Swaps in a flow with the same match (new actions), atomically for packet threads.
    func replace(_ old: DatapathFlow, with new: DatapathFlow) {
        precondition(old.ufid == new.ufid)
        if classifier.replace(old, with: new) {
            byUFID.replace(with: new)
            new.tablePosition = old.tablePosition
            inOrder[new.tablePosition] = new
        }
    }
}
