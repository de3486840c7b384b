import NetLinux
import Packet

/// What rules share or draw on besides their table units: flow marks, encap entries,
/// counter slots, the legacy MAC table's share of exact-match memory, and the data
/// plane's sizes.
extension HardwareTables {
    /// A fresh flow mark for a partial-offload rule (counted in `marks`); unused until
    /// a rule names it, and given back by `releaseMark` if none does.
    func allocateMark() -> Result<FlowMark, OffloadFailure> {
        guard markPool.reserve(1) else { return .failure(.noSpace(table: "marks")) }
        guard let m = markSlots.allocate(now: Sys.monotonicNanoseconds()) else {
            markPool.release(1)
            return .failure(.noSpace(table: "marks"))
        }
        // Marks are written with the rule's actions; the pool counts them as in use.
        markPool.markProgrammed(1)
        return .success(m)
    }

    /// Gives a mark nobody uses back, for reuse after the grace period (packets may
    /// still carry it; its next holder gets another generation anyway).
    func releaseMark(_ m: FlowMark) {
        guard m.users == 0 else { return }
        m.users = -1   // released: a second release is a no-op
        markSlots.release(m, now: Sys.monotonicNanoseconds())
        markPool.markProgrammed(-1)
        markPool.release(1)
    }

    /// The shared encap entry for `key`, created (and counted) on first use.
    func encapEntry(for key: EncapKey, header: VXLAN.EncapTemplate) -> Result<EncapEntry, OffloadFailure> {
        if let e = encaps[key] {
            if e.template != header { rewriteEncap(e, header: header) }
            return .success(e)
        }
        let now = Sys.monotonicNanoseconds()
        guard encapPool.reserve(1) else { return .failure(.noSpace(table: "encap")) }
        guard let id = encapSlots.allocate(now: now) else {
            encapPool.release(1)
            return .failure(.noSpace(table: "encap"))
        }
        do {
            try dataPlane.writeEncap(id: id, header: header)
        } catch {
            encapSlots.release(id, now: now)
            encapPool.release(1)
            return .failure(error.offloadFailure)
        }
        encapPool.markProgrammed(1)
        let e = EncapEntry(id: id, key: key, header: header)
        encaps[key] = e
        return .success(e)
    }

    /// Drops an encap entry nobody uses.
    func releaseEncap(_ e: EncapEntry) {
        guard e.users == 0, encaps[e.key] === e else { return }
        encaps[e.key] = nil
        try? dataPlane.removeEncap(id: e.id)
        encapSlots.release(e.id, now: Sys.monotonicNanoseconds())
        encapPool.markProgrammed(-1)
        encapPool.release(1)
    }

    func rewriteEncap(_ e: EncapEntry, header: VXLAN.EncapTemplate) {
        do {
            try dataPlane.writeEncap(id: e.id, header: header)
            e.template = header
        } catch {
            // The old header stays in the silicon; the tracker sees the entry unchanged.
        }
    }

    /// Makes the data plane's tables as big as the resources will be after a reload.
    func resizeDataPlane() throws(DataPlaneError) {
        let rules = max(maskedPool.sizeAfterReload, exactPool.sizeAfterReload)
        let counters = counterPool.sizeAfterReload, encaps = encapPool.sizeAfterReload
        var p = HardwareProfile()
        p.maskedEntries = rules
        p.exactEntries = rules
        p.counters = counters
        p.encapEntries = encaps
        p.ctEntries = ctPool.sizeAfterReload
        try dataPlane.resize(rules: DataPlaneCapacity.rules(p), counters: DataPlaneCapacity.counters(p),
                             encaps: DataPlaneCapacity.encaps(p), connections: DataPlaneCapacity.connections(p))
        counterSlots.grow(to: UInt32(clamping: DataPlaneCapacity.counters(p)))
        encapSlots.grow(to: UInt32(clamping: DataPlaneCapacity.encaps(p)))
    }

    /// A counter slot that reads zero: one never used is (the array starts zeroed), one
    /// used before was zeroed when its grace period ended, with every other slot freed
    /// then, in one write. So a new rule costs no write of its own for its counter.
    func allocateCounterSlot() -> UInt32? {
        // The clock is read only when a slot waits for its grace period (a read per rule
        // was 1 % of an add-flows).
        let now = counterSlots.hasRetired ? Sys.monotonicNanoseconds() : 0
        // (Nothing to reclaim without retired slots: not even the empty array's release.)
        if counterSlots.hasRetired {
            let freed = counterSlots.reclaim(now: now)
            if !freed.isEmpty { dataPlane.resetCounters(freed) }
        }
        return counterSlots.allocate(now: now)
    }

    /// A counter outside any rule (a CT connection's), counted in `counters`.
    func allocateCounter() -> UInt32? {
        guard counterPool.reserve(1) else { return nil }
        guard let c = allocateCounterSlot() else {
            counterPool.release(1)
            return nil
        }
        counterPool.markProgrammed(1)
        return c
    }

    func releaseCounter(_ c: UInt32) {
        counterSlots.release(c, now: Sys.monotonicNanoseconds())
        counterPool.markProgrammed(-1)
        counterPool.release(1)
    }

    /// Legacy MAC entries occupy exact-match memory.
    /// (They are written at once: reserved and programmed together.)
    func reserveMACEntry() -> Bool {
        guard exactMAC.reserve(1) else { return false }
        exactMAC.markProgrammed(1)
        return true
    }

    func releaseMACEntry() {
        exactMAC.markProgrammed(-1)
        exactMAC.release(1)
    }
}
