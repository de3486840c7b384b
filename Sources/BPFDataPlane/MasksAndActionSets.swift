import ESwitch
import NetLinux
import Packet

/// The masks and action sets rules share: ids taken on first use and written into the
/// silicon's lists, counted by their rules, given back when the last one goes.
extension BPFDataPlane {
    func publishLists() throws(DataPlaneError) {
        try update(maps.maskLists, Self.u32(0), Layout.maskLists(exact: lists[.exact] ?? [], masked: lists[.masked] ?? []),
                   "mask lists")
    }

    /// The id of a mask, written into the silicon on first use.
    func acquireMask(_ words: inout MaskWords) throws(DataPlaneError) -> UInt32 {
        if let id = heldMaskID(&words) { return id }
        guard let id = maskIDs.allocate(now: Sys.monotonicNanoseconds()) else { throw .noSpace("masks") }
        // A reused id starts ranking from what its previous mask left in the counter.
        hitsAtLastRank[id] = perCPU(maps.maskHits, index: id, fields: 1)[0]
        do {
            try update(maps.masks, Self.u32(id), words.bytes, "mask")
        } catch {
            maskIDs.release(id, now: Sys.monotonicNanoseconds())
            throw error
        }
        masksByWords[words] = MaskUse(id: id)
        maskWordsByID[Int(id)] = words
        return id
    }

    /// The mask's place in the table's published list, which the programs walk in order.
    public func maskOrder(_ mask: FlowKey, table: HardwareTable) -> Int? {
        guard table != .chain, let use = masksByWords[MaskWords(mask)] else { return nil }
        return lists[table]?.firstIndex(of: use.id)
    }

    /// The id of a mask the tables hold already. Bulks of rules mostly share one mask:
    /// compared with the last before hashing (forgotten whenever a mask goes).
    func heldMaskID(_ words: inout MaskWords) -> UInt32? {
        // (Compared in place: a binding of the last mask, or a comparison of values,
        // copied both masks' words.)
        if let id = lastMaskID, MaskWords.same(&lastMaskWords, &words) { return id }
        guard let u = masksByWords[words] else { return nil }
        lastMaskWords = words
        lastMaskID = u.id
        return u.id
    }

    /// Counts a rule on a mask: true when it is the table's first, so the mask must
    /// join the table's list (added to `lists` here, published by the caller).
    func countMaskUser(_ id: UInt32, table: HardwareTable, rules: Int = 1) -> Bool {
        guard let words = maskWordsByID[Int(id)], let i = masksByWords.index(forKey: words) else { return false }
        let n = masksByWords.values[i][table]
        masksByWords.values[i][table] = n + rules
        guard n == 0 else { return false }
        lists[table, default: []].append(masksByWords.values[i].id)
        return true
    }

    /// A rule of `table` left a mask: true when the mask left the table's list (the
    /// caller publishes). A mask no rule uses gives back its id.
    @discardableResult
    func uncountMaskUser(_ id: UInt32, table: HardwareTable, rules: Int = 1) -> Bool {
        guard let words = maskWordsByID[Int(id)], var use = masksByWords[words] else { return false }
        let n = use[table] - rules
        use[table] = max(0, n)
        if n <= 0 { lists[table]?.removeAll { $0 == use.id } }
        if use.isUnused {
            forgetMask(words, id: use.id)
        } else {
            masksByWords[words] = use
        }
        return n <= 0
    }

    /// Gives back a mask that no rule ended up using (a refused or unwritten rule).
    func releaseMaskIfUnused(_ id: UInt32) {
        guard let words = maskWordsByID[Int(id)], let use = masksByWords[words], use.isUnused else { return }
        forgetMask(words, id: id)
    }

    /// A mask no rule uses: its id goes back (reused after a grace period).
    func forgetMask(_ words: MaskWords, id: UInt32) {
        masksByWords[words] = nil
        maskWordsByID[Int(id)] = nil
        lastMaskID = nil
        prefetchedTable = nil
        maskIDs.release(id, now: Sys.monotonicNanoseconds())
    }

    func acquireActionSet(_ set: ActionSetBytes) throws(DataPlaneError) -> UInt32 {
        if let id = actionSets[set] {
            actionSetUsers[Int(id)] += 1
            return id
        }
        guard let id = actionSetIDs.allocate(now: Sys.monotonicNanoseconds()) else { throw .noSpace("action") }
        do {
            try update(maps.actionSets, Self.u32(id), set.bytes, "action set")
        } catch {
            actionSetIDs.release(id, now: Sys.monotonicNanoseconds())
            throw error
        }
        actionSets[set] = id
        actionSetsByID[id] = set
        actionSetUsers[Int(id)] = 1
        return id
    }

    func releaseActionSet(_ id: UInt32) {
        guard let set = actionSetsByID[id] else { return }
        actionSetUsers[Int(id)] -= 1
        guard actionSetUsers[Int(id)] == 0 else { return }
        actionSets[set] = nil
        actionSetsByID[id] = nil
        actionSetIDs.release(id, now: Sys.monotonicNanoseconds())
        if lastActionSet?.id == id { lastActionSet = nil }
    }
}
