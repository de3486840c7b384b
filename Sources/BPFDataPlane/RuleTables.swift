import CLibBPF
import ESwitch
import Glibc
import NetLinux

/// One of the two rule tables (exact-match, masked): a hash map the driver creates at
/// the size the resources give and publishes in the pipeline's `esw_rule_tables`. The
/// map is closed when this goes; the kernel frees it once the outer map no longer holds
/// it and no packet still reads it.
final class RuleTableMap {
    let fd: Int32

    init(capacity: Int) throws(SystemError) {
        var opts = bpf_map_create_opts()
        opts.sz = MemoryLayout<bpf_map_create_opts>.size
        // As the template in bpf/maps.h: a replaced or deleted rule is freed after a grace period.
        opts.map_flags = UInt32(BPF_F_NO_PREALLOC)
        let fd = bpf_map_create(BPF_MAP_TYPE_HASH, "esw_rules", UInt32(Layout.tableKeySize), UInt32(Layout.ruleSize),
                                UInt32(capacity), &opts)
        if fd < 0 { throw SystemError("bpf_map_create(rule table of \(capacity))", errno: -fd) }
        self.fd = fd
    }

    deinit { close(fd) }
}

extension BPFDataPlane {
    /// The exact-match and the masked table, created at `capacity` and published in the
    /// maps' `esw_rule_tables` (one write each: a packet sees the old table or the new).
    /// If the second write fails, the first slot gets `previous`'s table back (a flush
    /// that fails changes nothing).
    static func publishRuleTables(capacity: Int, in m: Maps, replacing previous: RuleTables? = nil) throws(SystemError)
        -> RuleTables {
        let t = RuleTables(exact: try RuleTableMap(capacity: capacity), masked: try RuleTableMap(capacity: capacity))
        try publish(t.exact, at: Layout.tableExact, in: m)
        do { try publish(t.masked, at: Layout.tableMasked, in: m) } catch {
            if let previous { try? publish(previous.exact, at: Layout.tableExact, in: m) }
            throw error
        }
        return t
    }

    private static func publish(_ table: RuleTableMap, at index: UInt32, in m: Maps) throws(SystemError) {
        let r = withUnsafeBytes(of: index.littleEndian) { k in
            withUnsafeBytes(of: UInt32(bitPattern: table.fd).littleEndian) { v in
                BPFMap.updateResult(m.ruleTables, key: k.baseAddress!, value: v.baseAddress!)
            }
        }
        if r < 0 { throw SystemError("bpf_map_update_elem(esw_rule_tables)", errno: -r) }
    }

    /// Every rule out of the data plane at once (a flush): empty tables replace the
    /// exact-match and masked ones, the chain table is emptied, and every mask and
    /// action set the rules held goes back (their ids are reused after a grace period,
    /// as one by one). Counter slots are the driver's to give back. It fails (changing
    /// nothing) only if the empty tables cannot be put in place; once they are, the
    /// flush has happened and everything after it is done whatever fails: a mask or
    /// chain list that could not be rewritten only names ids no rule uses (a lookup
    /// under them misses), and `maintain` writes it again.
    public func removeAllRules() throws(DataPlaneError) {
        // The bulk in flight settles first (into the tables that are about to go).
        finishWriteInFlight()
        do {
            ruleTables = try Self.publishRuleTables(capacity: capacity.rules, in: maps, replacing: ruleTables)
        } catch {
            throw .system("empty rule tables (\(error.call))", errno: error.errno)
        }
        // Writes still queued were of rules that are gone now; removals too.
        queuedWrites?.removeAll(keepingCapacity: true)
        if queuedRemovals != nil { queuedRemovals = [] }
        removalsToRetry = []
        slots = [SlotShadow(), SlotShadow()]
        let now = Sys.monotonicNanoseconds()
        lists = [.exact: [], .masked: []]
        chainList = []
        listsUnpublished = (try? publishLists()) == nil
        listsUnpublished = (try? publishChainList()) == nil || listsUnpublished
        for use in masksByWords.values { maskIDs.release(use.id, now: now) }
        masksByWords = [:]
        maskWordsByID = maskWordsByID.map { _ in nil }
        lastMask = nil
        for key in chainSlots.keys { delete(maps.chain, key) }
        chainSlots = [:]
        for use in chainMasks.values { chainMaskIDs.release(use.id, now: now) }
        chainMasks = [:]
        for id in actionSetsByID.keys {
            actionSetIDs.release(id, now: now)
            actionSetUsers[Int(id)] = 0
        }
        actionSets = [:]
        actionSetsByID = [:]
        lastActionSet = nil
    }
}

/// The two rule tables the pipeline reads through `esw_rule_tables`.
struct RuleTables {
    let exact: RuleTableMap
    let masked: RuleTableMap
}
