import ControlProtocol
import ESwitch
import NetLinux
import Netlink
import ODP
import OVSDatapath
import Packet

extension DatapathService {
    // MARK: ovs_flow

    /// `m` is consumed: its attributes move into the request's index (no copy of them).
    func handleFlow(_ m: consuming GenericMessage, _ r: inout ControlServer.Reply, client: Int32) throws(RequestError) {
        let command = m.command
        let flags = m.header.flags
        let d = try dp(m.familyHeader)
        let a = try RequestAttributes((consume m).attributes)
        let ufid = a.ufid(FlowAttr.ufid)
        let batchID = try a.u32(FlowAttr.batch)
        // The request's batch, looked up once and held for the request (checkNotAborted,
        // journal): one retain, where a look-up per use was one each.
        var batch: OpenBatch?
        if let batchID {
            // The batch's own requests (a GET with no flow): commit, or abort.
            if command == FlowCmd.get && ufid == nil && !a.has(FlowAttr.key) {
                let aborted = batches[batchID]?.failed == true
                if a.has(FlowAttr.batchAbort) { undo(batchID, d) }
                closeBatch(batchID)
                // A commit after a skip_sw refusal commits nothing: the batch was undone.
                // Said here too, since the refused request may have been the last one
                // (no ECANCELED after it would tell the client).
                if aborted && !a.has(FlowAttr.batchAbort) {
                    throw RequestError(125, "batch aborted by an earlier failure: nothing of it was applied")
                }
                return
            }
            batch = openBatch(batchID, client: client)
        }
        switch command {
        case FlowCmd.new, FlowCmd.set:
            try put(d, command: command, flags: flags, a, ufid: ufid, batchID: batchID, batch: batch, &r)
        case FlowCmd.del:
            if ufid == nil && !a.has(FlowAttr.key) {
                coalescingRemovals { d.flushFlows() }
                return
            }
            let batchEnd = a.has(FlowAttr.batchEnd)
            defer { if batchEnd, let batchID { closeBatch(batchID) } }
            try checkNotAborted(batch)
            let f: DatapathFlow
            do { f = try find(d, a, ufid: ufid) } catch {
                abort(batchID, d)
                throw error
            }
            // The flow's final counts, as the kernel's reply has them: the rule's counters
            // now, not as of the last poll.
            d.readHardwareCounters(f)
            let reply = try describe(f, d)
            journal(d.deleteFlowReportingChange(f), batch)
            if flags & NetlinkFlags.echo != 0 {
                r.message(.reply(family: Family.flow, command: FlowCmd.del, sequence: r.sequence, attributes: reply))
            }
        case FlowCmd.get:
            if flags & NetlinkFlags.dump == NetlinkFlags.dump {
                let typeList = try a.string(FlowAttr.dumpType) ?? "all"
                let types: FlowDumpTypes
                do throws(FlowDumpTypes.UnknownType) { types = try FlowDumpTypes(parsing: typeList) } catch {
                    throw RequestError(22, error.description)
                }
                r.stream = FlowDump(service: self, datapath: d, types: types, sequence: r.sequence)
            } else {
                let f = try find(d, a, ufid: ufid)
                r.message(.reply(family: Family.flow, command: FlowCmd.new, sequence: r.sequence, attributes: try describe(f, d)))
            }
        default:
            throw RequestError(95, "unknown flow command \(command)")
        }
    }

    static func matches(_ types: FlowDumpTypes, _ f: DatapathFlow, _ d: Datapath) -> Bool {
        let (offloaded, dpLayer) = FlowDumpTypes.attributes(offloadState: offloadState(d.offloadStatus(of: f)))
        return types.passes(offloaded: offloaded, dpLayer: dpLayer)
    }

    /// FlowAttr.offloaded's value for a status.
    static func offloadState(_ status: FlowOffloadStatus) -> UInt8 {
        switch status {
        case .software: 0
        case .offloaded: 1
        case .pending: 2
        case .failed: 3
        case .partial: 4
        }
    }

    private func find(_ d: Datapath, _ a: borrowing RequestAttributes, ufid: UInt128?) throws(RequestError) -> DatapathFlow {
        if let ufid {
            guard let f = d.flow(ufid: ufid) else { throw RequestError(2, "no flow with ufid \(formatUFID(ufid))") }
            return f
        }
        guard let key = a.bytes(FlowAttr.key) else { throw RequestError(22, "a ufid or a key is required") }
        if let mask = a.bytes(FlowAttr.mask) {
            let match: FlowMatch
            switch FlowMatch.fromAttributes(key: key, mask: mask, vlanLimit: ODPConstants.datapathVLANLimit) {
            case .success(let mm): match = mm
            case .failure(let e): throw RequestError(22, e.message)
            }
            guard let f = d.flow(match: match) else { throw RequestError(2, "flow not found") }
            return f
        }
        // A key without a mask: the flow that would handle such a packet.
        let k: FlowKey
        switch KeyDecoder(vlanLimit: ODPConstants.datapathVLANLimit).decodeKey(key) {
        case .success(let kk): k = kk
        case .failure(let e): throw RequestError(22, e.message)
        }
        guard let f = d.allFlows.first(where: { k.matches($0.key, under: $0.mask.bits) }) else {
            throw RequestError(2, "flow not found")
        }
        return f
    }

    private func put(_ d: Datapath, command: UInt8, flags: UInt16, _ a: borrowing RequestAttributes, ufid: UInt128?,
                     batchID: UInt32?, batch: OpenBatch?, _ r: inout ControlServer.Reply) throws(RequestError) {
        let batchEnd = a.has(FlowAttr.batchEnd)
        defer { if batchEnd, let batchID { closeBatch(batchID) } }
        try checkNotAborted(batch)
        var options = Datapath.PutOptions()
        if command == FlowCmd.set {
            options.create = a.has(FlowAttr.mayCreate)
            options.modify = true
        } else {
            options.create = true
            options.modify = flags & NetlinkFlags.exclusive == 0 && flags & NetlinkFlags.replace != 0
        }
        options.clearStats = a.has(FlowAttr.clear)
        let echo = flags & NetlinkFlags.echo != 0
        // The actions of the previous put when they are the same (no copy of their own).
        let actions = a.payloadRange(FlowAttr.actions).map { d.actionBytes(sharing: a.bytes[$0]) }
        do throws(RequestError) {
            if let keyRange = a.payloadRange(FlowAttr.key) {
                let maskRange = a.payloadRange(FlowAttr.mask) ?? keyRange.lowerBound..<keyRange.lowerBound
                // Decoded into memory of its own and passed on from there: a FlowMatch
                // variable was zeroed first and copied again for changeFlow (448 bytes each).
                try withUnsafeTemporaryAllocation(of: FlowMatch.self, capacity: 1) { (space) throws(RequestError) in
                    let match = space.baseAddress!
                    if let e = KeyDecoder(vlanLimit: ODPConstants.datapathVLANLimit)
                        .decodeMatch(key: a.bytes[keyRange], mask: a.bytes[maskRange], into: match, memo: maskMemo) {
                        throw RequestError(22, e.message)
                    }
                    if command == FlowCmd.set && actions == nil {
                        // set without actions: only clear stats.
                        try clearOnly(try find(d, a, ufid: ufid), d, clearStats: options.clearStats, echo: echo, &r)
                    } else {
                        guard let actions else { throw RequestError(22, "actions required") }
                        let change: FlowChange
                        do throws(DatapathError) {
                            change = try d.changeFlow(match: match.pointee, ufid: ufid, actions: actions, options: options)
                        } catch {
                            throw RequestError(error.errno, error.message)
                        }
                        try record(consume change, in: batch, d, clearStats: options.clearStats, echo: echo, &r)
                    }
                }
            } else if let ufid, command == FlowCmd.set {
                guard let f = d.flow(ufid: ufid) else { throw RequestError(2, "no flow with ufid \(formatUFID(ufid))") }
                if let actions {
                    let change: FlowChange
                    do { change = try d.changeFlow(match: f.match, ufid: ufid, actions: actions, options: options) } catch {
                        throw RequestError(error.errno, error.message)
                    }
                    try record(consume change, in: batch, d, clearStats: options.clearStats, echo: echo, &r)
                } else {
                    try clearOnly(f, d, clearStats: options.clearStats, echo: echo, &r)
                }
            } else {
                throw RequestError(22, "flow key required")
            }
        } catch {
            abort(batchID, d)
            throw error
        }
    }

    /// A put's change: kept for its batch's rollback, and echoed when asked. Consumed:
    /// the batch's journal takes it as it is (copying it retained each flow it holds).
    private func record(_ change: consuming FlowChange, in batch: OpenBatch?, _ d: Datapath, clearStats: Bool, echo: Bool,
                        _ r: inout ControlServer.Reply) throws(RequestError) {
        guard echo else {
            journal(consume change, batch)
            return
        }
        // The kernel's reply to a set with OVS_FLOW_ATTR_CLEAR has the counts from
        // before the clear (ovs-dpctl mod-flow --clear -s: read and reset).
        var statsBeforeClear: FlowStats?
        if clearStats, case .replaced(let old, _) = change { statsBeforeClear = old.stats }
        let flow = change.flow
        journal(consume change, batch)
        r.message(.reply(family: Family.flow, command: FlowCmd.new, sequence: r.sequence,
                         attributes: try describe(flow, d, stats: statsBeforeClear)))
    }

    /// A set without actions: the flow's statistics cleared if asked, echoed when asked.
    private func clearOnly(_ f: DatapathFlow, _ d: Datapath, clearStats: Bool, echo: Bool,
                           _ r: inout ControlServer.Reply) throws(RequestError) {
        let statsBeforeClear = clearStats ? Self.clearStats(f, d) : nil
        if echo {
            r.message(.reply(family: Family.flow, command: FlowCmd.new, sequence: r.sequence,
                             attributes: try describe(f, d, stats: statsBeforeClear)))
        }
    }

    /// Open batches kept at most: a client that never ends its batches (or a fuzzer)
    /// must not make the daemon keep their flows forever.
    static let maxOpenBatches = 256

    /// Clears a flow's statistics, returning them as they were (the rule's counters now).
    private static func clearStats(_ f: DatapathFlow, _ d: Datapath) -> FlowStats {
        d.readHardwareCounters(f)
        let before = f.stats
        d.clearStats(f)
        return before
    }

    /// Keeps a change for the batch's rollback: a skip_sw batch rolls back when one of
    /// its requests fails; any batch rolls back when its client aborts it (a parse error
    /// in its file) or goes away before committing it.
    /// (`batch`: the request's, open until the request ends.)
    /// Not inlined: inlined into the put, the change was copied into the journal and
    /// then destroyed (a retain and a release) instead of moved.
    @inline(never)
    private func journal(_ change: consuming FlowChange, _ batch: OpenBatch?) {
        // The heap's given-back pages ahead of a new flow are populated off this thread
        // (a deleted flow's place says nothing of where the allocator hands memory out).
        heap?.noteAllocation(at: change.madeFlow.map { UnsafeRawPointer(Unmanaged.passUnretained($0).toOpaque()) })
        batch?.changes.append(change)
    }

    /// A batch's first request opens it (owned by the client that sent it). The batch.
    private func openBatch(_ id: UInt32, client: Int32) -> OpenBatch {
        if let open = batches[id] { return open }
        makeRoom(for: id)
        let opened = OpenBatch(client: client)
        batches.insert(opened, id: id)
        datapath?.keepsFlowPlaces = true
        return opened
    }

    /// A batch ends (committed, undone, or dropped); the table's order closes its holes
    /// again once no batch is open.
    private func closeBatch(_ id: UInt32) {
        batches.remove(id)
        if batches.count == 0 { datapath?.keepsFlowPlaces = false }
    }

    /// A client went away: the batches it left open are undone (it never committed them).
    func clientGone(_ client: Int32) {
        guard let d = datapath else { return }
        for (id, b) in batches.all where b.client == client {
            if !b.failed { undo(id, d) }
            closeBatch(id)
        }
    }

    /// Undoes a batch's changes, newest first, so that the table is as it was before the
    /// batch (modified flows get their actions back, deleted ones come back).
    private func undo(_ batch: UInt32, _ d: Datapath) {
        guard let b = batches[batch] else { return }
        d.undo(b.changes)
        if !b.changes.isEmpty { logger.info("flow batch undone", metadata: ["batch": "\(batch)"]) }
        b.changes = []
    }

    private func makeRoom(for batch: UInt32) {
        guard batches[batch] == nil && batches.count >= Self.maxOpenBatches else { return }
        // The failed ones first (kept only to refuse their remaining requests), then any.
        let all = batches.all
        let victim = all.first { $0.batch.failed }?.id ?? all[0].id
        closeBatch(victim)
        logger.warning("too many open flow batches: one dropped", metadata: ["batch": "\(victim)"])
    }

    private func checkNotAborted(_ batch: OpenBatch?) throws(RequestError) {
        if batch?.failed == true {
            throw RequestError(125, "batch aborted by an earlier failure")
        }
    }

    /// A request of `batch` failed. Under skip_sw a batch is all or nothing: its changes
    /// are undone, and its remaining requests refused.
    private func abort(_ batch: UInt32?, _ d: Datapath) {
        guard let batch, d.policy == .skipSW else { return }
        undo(batch, d)
        batches[batch]?.failed = true
    }

    func describe(_ f: DatapathFlow, _ d: Datapath, now: UInt64 = Sys.monotonicMilliseconds(),
                  stats: FlowStats? = nil) throws(RequestError) -> [UInt8] {
        var w = AttributeWriter()
        describe(f, d, now: now, stats: stats, into: &w)
        return try w.replyAttributes()
    }

    /// The flow's attributes, written where `w` ends (a dump writes them straight into
    /// its reply buffer).
    /// (`memo`: a dump's, whose flows mostly share a mask.)
    func describe(_ f: DatapathFlow, _ d: Datapath, now: UInt64, stats: FlowStats? = nil, into w: inout AttributeWriter,
                  memo: EncodingMemo? = nil) {
        let encoder = KeyEncoder(vlanLimit: ODPConstants.datapathVLANLimit)
        let m = f.match   // rebuilt from the classifier entry: once, not per use
        if let memo {
            encoder.encode(flow: m.key, mask: m.mask, keyType: FlowAttr.key, maskType: FlowAttr.mask, into: &w, memo: memo)
        } else {
            w.nested(FlowAttr.key) { encoder.encode(flow: m.key, mask: m.mask, exportMask: false, into: &$0) }
            w.nested(FlowAttr.mask) { encoder.encode(flow: m.key, mask: m.mask, exportMask: true, into: &$0) }
        }
        w.put(FlowAttr.actions, f.actionBytes)
        let ufid = w.putZeroed(FlowAttr.ufid, count: 16)
        w.bytes.setBE128(ufid, f.ufid)
        let s = stats ?? f.stats
        let stats = w.putZeroed(FlowAttr.stats, count: 16)
        w.bytes.setLE64(stats, s.packets)
        w.bytes.setLE64(stats + 8, s.bytes)
        if s.usedNanoseconds != 0 { w.putU64(FlowAttr.used, s.usedNanoseconds / 1_000_000) }
        if s.tcpFlags != 0 { w.putU16(FlowAttr.tcpFlags, s.tcpFlags) }
        w.putU64(FlowAttr.now, now)
        let status = d.offloadStatus(of: f)
        w.putU8(FlowAttr.offloaded, Self.offloadState(status))
        switch status {
        case .failed(let reason), .software(let reason): w.putString(FlowAttr.offloadReason, reason)
        case .offloaded, .partial, .pending: break
        }
        w.putU8(FlowAttr.origin, f.origin == .normal ? 1 : 0)
    }

    // MARK: ovs_packet

    func handlePacket(_ m: GenericMessage, _ r: inout ControlServer.Reply, client: ControlServer.Client) throws(RequestError) {
        switch m.command {
        case PacketCmd.subscribe:
            client.subscribed = true
        case PacketCmd.trace:
            try handleTrace(m, &r)
        case PacketCmd.execute:
            let d = try dp(m.familyHeader)
            let a = try RequestAttributes(m.attributes)
            guard let packet = a.bytes(PacketAttr.packet) else { throw RequestError(22, "packet required") }
            guard let actions = a.bytes(PacketAttr.actions) else { throw RequestError(22, "actions required") }
            var key = FlowKey()
            if let k = a.bytes(PacketAttr.key) {
                switch KeyDecoder(vlanLimit: ODPConstants.datapathVLANLimit).decodeKey(k) {
                case .success(let kk): key = kk
                case .failure(let e): throw RequestError(22, "packet key: \(e.message)")
                }
            }
            do { try d.execute(packet: packet, key: key, actions: actions) } catch {
                throw RequestError(error.errno, error.message)
            }
        default:
            throw RequestError(95, "unknown packet command \(m.command)")
        }
    }

    /// An upcall as OVS_PACKET_CMD_MISS / OVS_PACKET_CMD_ACTION for subscribers.
    static func upcallMessage(_ u: Upcall) throws(NetlinkError) -> GenericMessage {
        var w = AttributeWriter()
        w.put(PacketAttr.packet, u.packet)
        var mask = FlowKey.allOnes
        mask[.inPort] = FlowField.inPort.valueMask
        let (key, _) = KeyEncoder(vlanLimit: ODPConstants.datapathVLANLimit).encode(FlowMatch(key: u.key, mask: mask))
        w.put(PacketAttr.key, key)
        if let ud = u.userdata { w.put(PacketAttr.userdata, ud) }
        return GenericMessage(family: Family.packet, command: u.command == .miss ? PacketCmd.miss : PacketCmd.action,
                              flags: 0, sequence: 0, attributes: try w.finished())
    }
}

/// A flow dump produced as the client reads it (ControlServer.stream): the flows as they
/// were when it was asked for, oldest first, described a chunk at a time. Only the
/// references are copied (and only once the table changes); a flow deleted meanwhile is
/// still described, as it was.
final class FlowDump: ReplyStream {
    private unowned let service: DatapathService
    private let datapath: Datapath
    private let types: FlowDumpTypes
    private let sequence: UInt32
    private var flows: [DatapathFlow?]
    private var next = 0
    private let encodings = EncodingMemo()

    init(service: DatapathService, datapath: Datapath, types: FlowDumpTypes, sequence: UInt32) {
        self.service = service
        self.datapath = datapath
        self.types = types
        self.sequence = sequence
        flows = datapath.flowsInEntryOrder
    }

    func next(into out: inout [UInt8], limit: Int) -> Bool {
        let now = Sys.monotonicMilliseconds()
        while next < flows.count && out.count < limit {
            let entry = flows[next]
            next += 1
            guard let f = entry, DatapathService.matches(types, f, datapath) else { continue }
            let m = GenericMessage.reply(family: Family.flow, command: FlowCmd.new, sequence: sequence, multi: true, attributes: [])
            // Cannot fail: a flow's actions are at most 32 KiB (ActionCompiler.maxActionsLength),
            // its key and mask far less. Were it to, the flow is left out, never sent broken.
            try? m.append(to: &out) { service.describe(f, datapath, now: now, into: &$0, memo: encodings) }
        }
        if next < flows.count { return true }
        flows = []
        return false
    }
}
