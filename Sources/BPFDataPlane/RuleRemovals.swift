import CLibBPF
import ESwitch

/// Rules out of the tables: one at a time, queued and written a batch at a time inside
/// `coalescingRemovals` (a flush of every flow), or as a batch (BPF_MAP_DELETE_BATCH).
/// A rule is removed only by the rule that owns its slot (its counter).
extension BPFDataPlane {
    public func remove(_ rule: DataPlaneRule) throws(DataPlaneError) {
        writeQueuedRules()
        if queuedRemovals != nil {
            queuedRemovals!.append(rule)
            if queuedRemovals!.count >= Self.queuedWriteBulk { try writeQueuedRemovals() }
            return
        }
        let r = remove(batch: [rule])
        if let e = r.error { throw e }
    }

    /// Runs `body` with single removals queued and written a batch at a time (a flush
    /// of every flow costs a few dozen syscalls, not one per rule). Any other rule write
    /// writes the queue first, so rules still change in order; all are out of the
    /// tables when this returns.
    public func coalescingRemovals(_ body: () -> Void) {
        guard queuedRemovals == nil else { return body() }
        queuedRemovals = []
        body()
        try? writeQueuedRemovals()
        queuedRemovals = nil
    }

    /// Writes the queued removals. What the kernel refused is kept and retried by
    /// `maintain` (the driver was told they were removed: they must not stay).
    func writeQueuedRemovals() throws(DataPlaneError) {
        guard let q = queuedRemovals, !q.isEmpty else { return }
        queuedRemovals = []
        let r = remove(batch: q)
        if let e = r.error {
            removalsToRetry += q[min(r.removed, q.count)...]
            throw e
        }
    }

    /// Retries removals a coalesced write could not make (housekeeping).
    func retryRemovals() {
        guard !removalsToRetry.isEmpty else { return }
        let r = remove(batch: removalsToRetry)
        removalsToRetry.removeFirst(min(r.removed, removalsToRetry.count))
    }

    /// Removes rules in order (a rule whose slot is not held, or is held by another
    /// rule, is skipped): how many of `rules` were dealt with before a failure.
    public func remove(batch rules: [DataPlaneRule]) -> (removed: Int, error: DataPlaneError?) {
        writeQueuedRules()
        if rules.contains(where: { $0.table == .chain }) { return oneByOne(rules, chain: removeChain, other: { remove(batch: $0) }) }
        var done = 0
        while done < rules.count {
            var taken: [(index: Int, table: HardwareTable, key: TableKey, slot: Slot, mask: UInt32)] = []
            var i = done
            // Rules of a bulk mostly share their mask: look it up once per run.
            var lastUse: (mask: MaskWords, id: UInt32)?
            while i < rules.count && taken.count < Self.batchLimit {
                let rule = rules[i]
                i += 1
                let mask = MaskWords(rule.mask)
                let maskID: UInt32
                if let last = lastUse, last.mask == mask { maskID = last.id } else {
                    guard let use = masksByWords[mask] else { continue }
                    maskID = use.id
                    lastUse = (mask, use.id)
                }
                let key = TableKey(maskID: maskID, key: rule.key, mask: mask)
                let t = Self.slotIndex(rule.table)
                // Only the rule that owns the slot (its counter) takes it out.
                let shadow = slots(t)
                guard let at = shadow.find(key.fingerprint), shadow[at].state == .written,
                      shadow[at].counter == rule.counter else { continue }
                let slot = shadow[at].slot
                shadow.remove(at: at)
                releaseSlotStorageIfEmpty(t)
                taken.append((i - 1, rule.table, key, slot, maskID))
            }
            var deleted = 0
            var error: DataPlaneError?
            var runStart = 0
            while runStart < taken.count {
                let table = taken[runStart].table
                var runEnd = runStart + 1
                while runEnd < taken.count && taken[runEnd].table == table { runEnd += 1 }
                let (n, errno) = deleteBatch(mapFD(table), keys: taken[runStart..<runEnd].map(\.key))
                deleted += n
                if errno != 0 {
                    error = .system("delete rules", errno: errno)
                    break
                }
                runStart = runEnd
            }
            var unlisted = false
            var run = 0
            for (n, r) in taken[..<deleted].enumerated() {
                releaseActionSet(r.slot.actionSet)
                // The mask counts once per run of rules on it.
                run += 1
                let next = n + 1 < deleted ? taken[n + 1] : nil
                if next == nil || next!.mask != r.mask || next!.table != r.table {
                    unlisted = uncountMaskUser(r.mask, table: r.table, rules: run) || unlisted
                    run = 0
                }
            }
            if unlisted { try? publishLists() }
            shrinkSlotsIfSparse()
            if let error {
                // Still in the table: still ours.
                for r in taken[deleted...] { slots(Self.slotIndex(r.table)).setWritten(r.key.fingerprint, r.slot) }
                return (taken[deleted].index, error)
            }
            done = i
        }
        return (rules.count, nil)
    }

    /// Dictionaries keep their capacity when emptied: after most rules went, the slots
    /// move into tables their size (memory goes back, not only gets reused).
    func shrinkSlotsIfSparse() {
        for t in 0..<2 { slots(t).shrinkIfSparse(minimum: 4096) }
    }

    /// BPF_MAP_DELETE_BATCH: how many were deleted, and the errno of the first that was
    /// not. A key already gone (ENOENT) counts as deleted.
    func deleteBatch(_ fd: Int32, keys: [TableKey]) -> (Int, Int32) {
        var done = 0
        while done < keys.count {
            var count = UInt32(keys.count - done)
            let r = keys.withUnsafeBytes { k in
                clbpf_delete_batch(fd, k.baseAddress! + done * MemoryLayout<TableKey>.stride, &count)
            }
            if r == 0 { return (keys.count, 0) }
            done += Int(min(count, UInt32(keys.count - done)))
            if -r != ENOENT { return (done, -r) }
            done += 1
        }
        return (keys.count, 0)
    }
}
