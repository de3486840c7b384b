import CLibBPF
import ESwitch
import NetLinux
import Packet

/// The chain table (rules matching recirc_id != 0) and the CT table. Chain rules are
/// written one at a time (one per post-ct flow, few next to the megaflows of the other
/// tables); their masks have their own ids and list, which the first lookup of a frame
/// never walks (bpf/ct.h). Make-before-break as for the other tables: a mask joins the
/// chain list after the first rule that uses it is in the table.
extension BPFDataPlane {
    /// A chain mask in the silicon, and the chain rules using it.
    struct ChainMaskUse {
        var id: UInt32
        var users: Int
    }

    func programChain(_ rule: DataPlaneRule) throws(DataPlaneError) {
        guard Layout.fitsChainKey(key: rule.key, mask: rule.mask) else { throw .unsupported("match outside the chain key") }
        let setBytes: [UInt8]
        switch Layout.actionSet(rule.actions) {
        case .success(let b): setBytes = b
        case .failure(let e): throw e
        }
        let mask = Layout.chainMask(rule.mask)
        let maskID = try acquireChainMask(mask)
        let key = Layout.chainKey(maskID: maskID, key: rule.key, mask: rule.mask)
        let previous = chainSlots[key]
        if let previous, previous.counter != rule.counter {
            releaseChainMaskIfUnused(mask)
            throw .duplicateMatch
        }
        let setID: UInt32
        do { setID = try acquireActionSet(ActionSetBytes(setBytes)) } catch {
            releaseChainMaskIfUnused(mask)
            throw error
        }
        var value = RuleValue(actionSet: setID, counter: rule.counter, encap: false, recirc: RuleValue.recirculates(rule.actions))
        let valueBytes = withUnsafeBytes(of: &value) { Array($0) }
        do { try update(maps.chain, key, valueBytes, "chain rule") } catch {
            releaseActionSet(setID)
            releaseChainMaskIfUnused(mask)
            throw error
        }
        chainSlots[key] = Slot(actionSet: setID, counter: rule.counter, flags: value.flags)
        if let previous {
            releaseActionSet(previous.actionSet)
            return
        }
        chainMasks[mask]!.users += 1
        if chainMasks[mask]!.users == 1 {
            chainList.append(maskID)
            try publishChainList()
        }
    }

    func removeChain(_ rule: DataPlaneRule) {
        let mask = Layout.chainMask(rule.mask)
        guard let use = chainMasks[mask] else { return }
        let key = Layout.chainKey(maskID: use.id, key: rule.key, mask: rule.mask)
        guard let slot = chainSlots[key], slot.counter == rule.counter else { return }
        delete(maps.chain, key)
        chainSlots[key] = nil
        releaseActionSet(slot.actionSet)
        chainMasks[mask]!.users -= 1
        if chainMasks[mask]!.users == 0 {
            chainList.removeAll { $0 == use.id }
            try? publishChainList()
            releaseChainMaskIfUnused(mask)
        }
    }

    func publishChainList() throws(DataPlaneError) {
        try update(maps.chainList, Self.u32(0), Layout.chainList(chainList), "chain mask list")
    }

    private func acquireChainMask(_ mask: [UInt8]) throws(DataPlaneError) -> UInt32 {
        if let u = chainMasks[mask] { return u.id }
        guard let id = chainMaskIDs.allocate(now: Sys.monotonicNanoseconds()) else { throw .noSpace("chain masks") }
        do { try update(maps.chainMasks, Self.u32(id), mask, "chain mask") } catch {
            chainMaskIDs.release(id, now: Sys.monotonicNanoseconds())
            throw error
        }
        chainMasks[mask] = ChainMaskUse(id: id, users: 0)
        return id
    }

    private func releaseChainMaskIfUnused(_ mask: [UInt8]) {
        guard let u = chainMasks[mask], u.users == 0 else { return }
        chainMasks[mask] = nil
        chainMaskIDs.release(u.id, now: Sys.monotonicNanoseconds())
    }

    /// Writes the chain table, its masks and list into another set of maps (a resize).
    func replayChains(into m: Maps) throws(DataPlaneError) {
        for (mask, use) in chainMasks { try update(m.chainMasks, Self.u32(use.id), mask, "chain mask") }
        for (key, slot) in chainSlots {
            var v = slot.value
            try update(m.chain, key, withUnsafeBytes(of: &v) { Array($0) }, "chain rule")
        }
        try update(m.chainList, Self.u32(0), Layout.chainList(chainList), "chain mask list")
    }

    // MARK: Connections

    public func programConnection(_ c: DataPlaneConnection) throws(DataPlaneError) {
        writeQueuedRules()
        try writeConnection(c, into: maps, handedBack: false)
        connectionsHeld[c.spec.id] = c
    }

    /// Both directions, or neither.
    private func writeConnection(_ c: DataPlaneConnection, into m: Maps, handedBack: Bool) throws(DataPlaneError) {
        let s = c.spec
        var written: [[UInt8]] = []
        for (d, counter) in [(s.original, c.originalCounter), (s.reply, c.replyCounter)] {
            let key = Layout.ctKey(d.tuple)
            var entry = Layout.ctEntry(d, mark: s.mark, label: s.label, counter: counter)
            if handedBack { entry[4] = UInt8(Layout.ctHandedBack) }
            do { try update(m.ct, key, entry, "ct entry") } catch {
                for k in written { delete(m.ct, k) }
                throw error
            }
            written.append(key)
        }
    }

    public func removeConnection(_ c: DataPlaneConnection) throws(DataPlaneError) {
        guard connectionsHeld[c.spec.id]?.originalCounter == c.originalCounter else { return }
        delete(maps.ct, Layout.ctKey(c.spec.original.tuple))
        delete(maps.ct, Layout.ctKey(c.spec.reply.tuple))
        connectionsHeld[c.spec.id] = nil
    }

    public func connectionHandedBack(_ c: DataPlaneConnection) -> Bool {
        for t in [c.spec.original.tuple, c.spec.reply.tuple] {
            var entry = [UInt8](repeating: 0, count: Layout.ctEntrySize)
            let key = Layout.ctKey(t)
            let found = key.withUnsafeBytes { k in entry.withUnsafeMutableBytes { BPFMap.lookup(maps.ct, key: k.baseAddress!, value: $0.baseAddress!) } }
            if found && UInt32(entry[4]) & Layout.ctHandedBack != 0 { return true }
        }
        return false
    }

    /// Writes every connection into another set of maps (a resize), keeping hand-backs.
    func replayConnections(into m: Maps) throws(DataPlaneError) {
        for c in connectionsHeld.values { try writeConnection(c, into: m, handedBack: connectionHandedBack(c)) }
    }

    /// Pops the hand-back queue (BPF_MAP_LOOKUP_AND_DELETE on a queue map).
    public func takeHandBacks() -> (counters: [UInt32], complete: Bool) {
        var out: [UInt32] = []
        var v: UInt32 = 0
        while out.count < 1 << 20, bpf_map_lookup_and_delete_elem(maps.ctHandBacks, nil, &v) == 0 { out.append(v) }
        let lost = perCPU(maps.ctStats, index: UInt32(Layout.CTStat.handBackLost.rawValue), fields: 1)[0]
        let complete = lost == handBacksLostSeen && !handBackQueueReplaced
        handBacksLostSeen = lost
        handBackQueueReplaced = false
        return (out, complete)
    }

    public func conntrackCounters() -> ConntrackPipelineCounters {
        let s = conntrackStatistics()
        return ConntrackPipelineCounters(hits: s[.hit] ?? 0, misses: s[.miss] ?? 0, handBacks: s[.handBack] ?? 0,
                                         chainMisses: s[.chainMiss] ?? 0, tooDeep: s[.tooDeep] ?? 0)
    }

    /// What the CT stage of the pipeline did, summed over CPUs.
    public func conntrackStatistics() -> [Layout.CTStat: UInt64] {
        var out: [Layout.CTStat: UInt64] = [:]
        for s in Layout.CTStat.allCases { out[s] = perCPU(maps.ctStats, index: UInt32(s.rawValue), fields: 1)[0] }
        return out
    }
}
