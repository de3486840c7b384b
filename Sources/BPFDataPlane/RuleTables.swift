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
    /// maps' `esw_rule_tables` (a packet sees each slot's old table or its new one). Both
    /// slots in one BPF_MAP_UPDATE_BATCH: the kernel waits for an RCU grace period after
    /// each write of a map of maps, once for a batch (a flush took two, 8 ms each here).
    /// If the second slot's write fails, the first gets `previous`'s table back (a flush
    /// that fails changes nothing).
    static func publishRuleTables(capacity: Int, in m: Maps, replacing previous: RuleTables? = nil) throws(SystemError)
        -> RuleTables {
        let t = RuleTables(exact: try RuleTableMap(capacity: capacity), masked: try RuleTableMap(capacity: capacity))
        let (written, r) = publish([t.exact, t.masked], at: [Layout.tableExact, Layout.tableMasked], in: m)
        if r < 0 {
            if written == 1, let previous { _ = publish([previous.exact], at: [Layout.tableExact], in: m) }
            throw SystemError("bpf_map_update_batch(esw_rule_tables)", errno: -r)
        }
        return t
    }

    /// Writes tables into slots of `esw_rule_tables`, in order: how many were written,
    /// and the call's result (negative errno).
    private static func publish(_ tables: [RuleTableMap], at slots: [UInt32], in m: Maps) -> (Int, Int32) {
        let keys = slots.map(\.littleEndian), values = tables.map { UInt32(bitPattern: $0.fd).littleEndian }
        var count = UInt32(keys.count)
        let r = keys.withUnsafeBytes { k in values.withUnsafeBytes { v in clbpf_update_batch(m.ruleTables, k.baseAddress, v.baseAddress, &count) } }
        return (r == 0 ? keys.count : Int(min(count, UInt32(keys.count))), r)
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
        exactSlots.reset()
        maskedSlots.reset()
        let now = Sys.monotonicNanoseconds()
        lists = [.exact: [], .masked: []]
        chainList = []
        listsUnpublished = (try? publishLists()) == nil
        listsUnpublished = (try? publishChainList()) == nil || listsUnpublished
        for use in masksByWords.values { maskIDs.release(use.id, now: now) }
        masksByWords = [:]
        maskWordsByID = maskWordsByID.map { _ in nil }
        lastMaskID = nil
        prefetchedTable = nil
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
