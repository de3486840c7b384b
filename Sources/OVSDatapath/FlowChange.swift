import Logging
import ODP

/// One change a flow put or delete made to the table, kept by a transaction (a batch
/// of add-flows under skip_sw) so that a failure can put the table back as it was.
public enum FlowChange: Sendable {
    /// A new flow.
    case added(DatapathFlow)
    /// A flow's actions changed: `old` was replaced by `new` (same ufid and match).
    case replaced(DatapathFlow, by: DatapathFlow)
    /// A flow was deleted.
    case deleted(DatapathFlow)

    /// The flow in the table after the change (the deleted one for a delete).
    public var flow: DatapathFlow {
        switch self {
        case .added(let f), .replaced(_, by: let f), .deleted(let f): f
        }
    }

    /// The flow the change made (nil for a delete, which made none).
    public var madeFlow: DatapathFlow? {
        switch self {
        case .added(let f), .replaced(_, by: let f): f
        case .deleted: nil
        }
    }
}

extension Datapath {
    /// Set while a transaction is open: a deleted flow leaves its place in the table's
    /// order (`FlowTable.keepsPlaces`), for the transaction's undo to put it back there.
    public var keepsFlowPlaces: Bool {
        get { table.keepsPlaces }
        set { table.keepsPlaces = newValue }
    }

    /// Deletes a flow, saying so for a transaction.
    public func deleteFlowReportingChange(_ f: DatapathFlow) -> FlowChange {
        deleteFlow(f)
        return .deleted(f)
    }

    /// Undoes a transaction's changes, newest first. A flow another client changed or
    /// deleted since (it is no longer the one the transaction left) stays as that client
    /// made it, as the later request would leave it in the kernel's datapath: undoing over
    /// it brought back flows a flush had deleted, or put old actions over newer ones.
    public func undo(_ changes: [FlowChange]) {
        // What each undo left per ufid (nil: no flow). An older change of the same flow
        // expects that, not the flow it recorded: restore puts a copy in the table.
        var left: [UInt128: DatapathFlow?] = [:]
        // Flows another client changed since, by ufid and by match: every older change of
        // them stays undone too (a batch that deleted a flow and added its match again,
        // flushed by another client, must not bring the deleted one back).
        var divergedUFIDs: Set<UInt128> = []
        var divergedMatches: Set<FlowMatch> = []
        for change in changes.reversed() {
            let ufid = change.flow.ufid
            let m = change.flow.match
            let match = FlowMatch(key: m.key.masked(by: m.mask), mask: m.mask)
            let expected: DatapathFlow?
            if let l = left[ufid] {
                expected = l
            } else if case .deleted = change {
                expected = nil
            } else {
                expected = change.flow
            }
            guard !divergedUFIDs.contains(ufid), !divergedMatches.contains(match),
                  table.lookup(ufid: ufid) === expected else {
                divergedUFIDs.insert(ufid)
                divergedMatches.insert(match)
                continue
            }
            undo(change)
            left[ufid] = .some(table.lookup(ufid: ufid))
        }
    }

    /// Undoes one change; a transaction undoes its changes newest first, so the flow
    /// with the change's ufid is, each time, the one the change left (looked up by ufid:
    /// an earlier undo may have put a copy in its place). The flow comes back as it was,
    /// with its actions, counters and, if the hardware takes it again, its rule.
    public func undo(_ change: FlowChange) {
        switch change {
        case .added(let f):
            if let current = table.lookup(ufid: f.ufid) { deleteFlow(current) }
        case .replaced(let old, by: _), .deleted(let old):
            restore(old, replacing: table.lookup(ufid: old.ufid))
        }
    }

    /// Puts `previous` back in the table in place of `current` (or, deleted, where it
    /// stood in the table's order). Its hardware rule went with the change: it gets a new
    /// one. Should the hardware refuse it now, it stays in software with the reason (never
    /// lost). A flow that was in software stays there with its reason: the hardware's room
    /// is given back to the flows that held it (tried again, a software flow restored
    /// first took the room a deleted one restored after it had). One waiting on its
    /// tunnel's neighbour is offloaded as it was, to wait again.
    private func restore(_ previous: DatapathFlow, replacing current: DatapathFlow?) {
        let back = DatapathFlow(ufid: previous.ufid, match: previous.match, program: previous.program,
                                origin: previous.origin, mask: previous.mask, now: previous.createdNanoseconds)
        back.inherit(from: previous)
        if let reason = previous.offload.reasonLeftInSoftware, previous.tunnelDependency == nil {
            if let current { removeHardware(current) }
            back.offload = .software(reason: reason)
        } else {
            do throws(DatapathError) {
                if let current { try reoffload(back, replacing: current) } else { try offload(back) }
            } catch {
                if let current { removeHardware(current) }
                back.offload = .software(reason: "restored after a failed transaction; hardware refused it: \(error)")
                logger.warning("restored flow left in software", metadata: ["ufid": "\(formatUFID(back.ufid))", "reason": "\(error)"])
            }
        }
        if let current {
            table.replace(current, with: back)
        } else if !table.insert(back, at: previous.tablePosition) {
            removeHardware(back)
        }
    }
}
