import ESwitch

/// The kernel's part of a write of prepared rules: their keys and values in the order
/// of the bulk, one BPF_MAP_UPDATE_BATCH per run of rules of one table. One instance is
/// kept and refilled (its arrays keep their pages); a bulk fills it, then it is written
/// on the control thread or the writer thread, and it is not filled again before that
/// write is settled.
final class TableRuns: @unchecked Sendable {
    private var keys: [TableKey] = []
    private var values: [RuleValue] = []
    /// (map, first rule, rules) of each run.
    private var runs: [(fd: Int32, start: Int, count: Int)] = []

    func fill(_ pending: [BPFDataPlane.PendingRule], mapFD: (HardwareTable) -> Int32) {
        keys.removeAll(keepingCapacity: true)
        values.removeAll(keepingCapacity: true)
        runs.removeAll(keepingCapacity: true)
        keys.reserveCapacity(pending.count)
        values.reserveCapacity(pending.count)
        var runStart = 0
        while runStart < pending.count {
            let table = pending[runStart].table
            var runEnd = runStart
            while runEnd < pending.count && pending[runEnd].table == table {
                keys.append(pending[runEnd].key)
                values.append(pending[runEnd].value)
                runEnd += 1
            }
            runs.append((mapFD(table), runStart, runEnd - runStart))
            runStart = runEnd
        }
    }

    /// Gives the buffers back (after a write far bigger than a queued bulk).
    func release() {
        keys = []
        values = []
        runs = []
    }

    /// Writes the runs in order, stopping at the first refusal: how many rules were
    /// written (a prefix), and the errno of the refusal (0: none). Touches only the
    /// kernel's maps, so it can run on the writer thread.
    func write() -> BulkWriter.Outcome {
        var written = 0
        for run in runs {
            let (n, errno) = keys.withUnsafeBufferPointer { k in
                values.withUnsafeBufferPointer { v in
                    BPFDataPlane.updateBatch(run.fd, keys: UnsafeBufferPointer(rebasing: k[run.start..<run.start + run.count]),
                                             values: UnsafeBufferPointer(rebasing: v[run.start..<run.start + run.count]))
                }
            }
            written += n
            if errno != 0 { return (written, errno) }
        }
        return (written, 0)
    }
}
