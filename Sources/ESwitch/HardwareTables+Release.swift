import Classifier
import NetLinux
import Packet

/// Rules let go: removals retried, replaced rules dropped, late failures, units and
/// encaps released, a rule or every rule discarded.
extension HardwareTables {
    func retryStuckRemovals() {
        guard !stuckRemovals.isEmpty else { return }
        stuckRemovals.removeAll { r in
            guard unprogram(r) else { return false }
            releaseUnits(of: r)
            dropEncaps(of: r)
            return true
        }
    }

    /// A replacement that will not be written: the rule it was to overwrite leaves the
    /// data plane too (its actions are no longer what the flow wants).
    func dropReplaced(by r: HardwareRule) {
        guard let old = r.replaces else { return }
        r.replaces = nil
        if unprogram(old) { dropEncaps(of: old); return }
        // Still in the silicon: it takes back the units it handed to `r` until it is out.
        old.holdsUnits = r.holdsUnits
        r.holdsUnits = false
        stuckRemovals.append(old)
    }

    /// A rule the hardware refused after its add returned: what it held goes back,
    /// its flow mark too (the flow still names the failed rule; a mark kept with it
    /// would count in `marks` until the flow is deleted). Its encap entries stay: the
    /// tunnel tracker keeps the flow's tunnel state through them.
    func failLate(_ r: HardwareRule, _ f: OffloadFailure) {
        r.state = .failed(f)
        releaseUnits(of: r)
        if let m = r.mark {
            r.mark = nil
            m.users -= 1
            if m.users == 0 { releaseMark(m) }
        }
    }

    /// Returns a rule's units (it stays accepted: a failed rule the flow still names).
    func releaseUnits(of r: HardwareRule) {
        guard r.holdsUnits else { return }
        r.holdsUnits = false
        pool(of: r).release(r.units)
        counterPool.release(1)
        counterSlots.release(r.counter, now: Sys.monotonicNanoseconds())
        if let n = maskUsers[FlowMask.Key(r.mask)] {
            if n > 1 { maskUsers[FlowMask.Key(r.mask)] = n - 1 } else {
                maskUsers[FlowMask.Key(r.mask)] = nil
                maskPool.release(1)
            }
        }
    }

    /// Undoes every step a rule went through. False if it was not held.
    @discardableResult
    func discard(_ r: HardwareRule) -> Bool {
        guard rules.holds(r) else { return false }
        dropReplaced(by: r)
        rules.remove(r)
        forgetPending(r)
        r.retired = true
        r.handedOut = false   // a discarded rule's handle names nothing
        guard unprogram(r) else {
            stuckRemovals.append(r)
            return true
        }
        releaseUnits(of: r)
        dropEncaps(of: r)
        return true
    }

    /// The rule no longer uses its shared entries: encap entries and its flow mark go
    /// when nobody else does.
    func dropEncaps(of r: HardwareRule) {
        for e in r.encapEntries {
            e.users -= 1
            if e.users == 0 { releaseEncap(e) }
        }
        if let m = r.mark {
            m.users -= 1
            if m.users == 0 { releaseMark(m) }
        }
    }

    /// Every rule goes at once (a flush of the datapath): the data plane empties its
    /// tables in one step, and the shadow classifiers, pools and indexes are reset in
    /// bulk instead of rule by rule. Rules waiting to be written, replaced or stuck in
    /// the silicon go too. False, with nothing changed, if the data plane could not
    /// empty its tables.
    func discardAll() -> Bool {
        do { try dataPlane.removeAllRules() } catch { return false }
        let now = Sys.monotonicNanoseconds()
        // Exact-match table (0), masked and chain tables (1).
        var heldUnits = (0, 0), programmedUnits = (0, 0)
        var heldCounters = 0, programmedCounters = 0
        func leftSilicon(_ r: HardwareRule) {
            guard r.isProgrammed else { return }
            r.state = .pending
            if r.table == .exact { programmedUnits.0 += r.units } else { programmedUnits.1 += r.units }
            programmedCounters += 1
        }
        func gaveBackUnits(_ r: HardwareRule) {
            guard r.holdsUnits else { return }
            r.holdsUnits = false
            if r.table == .exact { heldUnits.0 += r.units } else { heldUnits.1 += r.units }
            heldCounters += 1
            counterSlots.release(r.counter, now: now)
        }
        for r in rules.values {
            r.retired = true
            r.handedOut = false
            if let old = r.replaces {
                // Still in the silicon under its successor, which holds the units.
                r.replaces = nil
                leftSilicon(old)
                dropEncaps(of: old)
            }
            leftSilicon(r)
            gaveBackUnits(r)
            dropEncaps(of: r)
        }
        for r in stuckRemovals {
            leftSilicon(r)
            gaveBackUnits(r)
            dropEncaps(of: r)
        }
        exactFlows.markProgrammed(-programmedUnits.0)
        maskedPool.markProgrammed(-programmedUnits.1)
        counterPool.markProgrammed(-programmedCounters)
        maskPool.markProgrammed(-programmedMaskUsers.count)
        exactFlows.release(heldUnits.0)
        maskedPool.release(heldUnits.1)
        counterPool.release(heldCounters)
        maskPool.release(maskUsers.count)
        exact.removeAll()
        masked.removeAll()
        shadowKept = false
        rules.removeAll()
        pendingByMatch = [:]
        maskUsers = [:]
        programmedMaskUsers = [:]
        let emptied = Array(conntrackRuleZones.keys)
        conntrackRuleZones = [:]
        stuckRemovals = []
        lostUnprogrammed = [:]
        for zone in emptied { conntrackZoneEmptied?(zone) }
        return true
    }
}
