import CLibBPF
import ESwitch
import Glibc
import NetLinux
import Packet

/// The eSwitch's data plane in the kernel: the eBPF programs of bpf/ attached with tc
/// to every port's netdev and representor, and their maps as the hardware tables.
/// Implements the driver's DataPlane protocol; nothing here is on a packet's path.
public final class BPFDataPlane: DataPlane, @unchecked Sendable {
    var object: BPFObject
    private(set) var portRX: Int32
    private(set) var representorTX: Int32
    var maps: Maps
    /// The exact-match and masked tables the maps' esw_rule_tables holds (RuleTables.swift).
    var ruleTables: RuleTables
    private var filters: [Int32: TCFilter] = [:]
    /// What the maps were sized for (tables grow as rules come; arrays are allocated whole).
    public private(set) var capacity: Capacity
    /// esw_rule_counters as memory (mapped while in use).
    private var counters: CounterMemory
    private var lastCounterLook: UInt64 = 0

    struct Maps {
        let config, ports, portByIfindex, portStats, masks, maskLists, maskHits: Int32
        let ruleTables, actionSets, ruleCounters, encaps, macs: Int32
        let chain, chainMasks, chainList, ct, ctStats, ctHandBacks: Int32

        init(_ o: borrowing BPFObject) throws(SystemError) {
            config = try o.mapFD("esw_config"); ports = try o.mapFD("esw_ports")
            portByIfindex = try o.mapFD("esw_port_by_ifindex"); portStats = try o.mapFD("esw_port_stats")
            masks = try o.mapFD("esw_masks"); maskLists = try o.mapFD("esw_mask_lists"); maskHits = try o.mapFD("esw_mask_hits")
            ruleTables = try o.mapFD("esw_rule_tables")
            actionSets = try o.mapFD("esw_action_sets"); ruleCounters = try o.mapFD("esw_rule_counters")
            encaps = try o.mapFD("esw_encaps"); macs = try o.mapFD("esw_macs")
            chain = try o.mapFD("esw_chain"); chainMasks = try o.mapFD("esw_chain_masks")
            chainList = try o.mapFD("esw_chain_list"); ct = try o.mapFD("esw_ct"); ctStats = try o.mapFD("esw_ct_stats")
            ctHandBacks = try o.mapFD("esw_ct_handbacks")
        }
    }

    public struct Capacity: Sendable, Equatable {
        public var rules: Int, counters: Int, encaps: Int, connections: Int
        public init(_ p: HardwareProfile) {
            rules = DataPlaneCapacity.rules(p)
            counters = DataPlaneCapacity.counters(p)
            encaps = DataPlaneCapacity.encaps(p)
            connections = DataPlaneCapacity.connections(p)
        }
    }

    private static func load(_ c: Capacity) throws(SystemError) -> BPFObject {
        try BPFObject(elf: BPFObjectBytes.elf, name: "esw", maxEntries: [
            "esw_chain": UInt32(c.rules),
            "esw_ct": UInt32(c.connections),
            // One block of counters per CPU (CounterMemory).
            "esw_rule_counters": UInt32(c.counters * BPFMap.possibleCPUs), "esw_encaps": UInt32(c.encaps),
            "esw_action_sets": UInt32(BPFDataPlane.actionSetCapacity),
        ])
    }

    /// A mask of the silicon: one id, used by rules of one or both tables.
    struct MaskUse {
        var id: UInt32
        /// Rules on it in the exact (0) and masked (1) table (no dictionary: one was
        /// copied on every rule written).
        var rules: (Int, Int) = (0, 0)
        var isUnused: Bool { rules.0 == 0 && rules.1 == 0 }
        subscript(_ t: HardwareTable) -> Int {
            get { t == .exact ? rules.0 : rules.1 }
            set { if t == .exact { rules.0 = newValue } else { rules.1 = newValue } }
        }
    }

    /// An action set (struct esw_action_set) up to its last action, hashed as bytes: the
    /// unused slots are zeros, and hashing and comparing all 648 bytes for every rule
    /// cost more than its map write.
    struct ActionSetBytes: Hashable {
        let used: [UInt8]
        init(_ full: [UInt8]) {
            let n = Int(full[0]) | Int(full[1]) << 8
            used = Array(full.prefix(8 + n * Layout.actionSize))
        }
        func hash(into h: inout Hasher) { used.withUnsafeBytes { h.combine(bytes: $0) } }
        /// The map value: the used part, zeros after.
        var bytes: [UInt8] { used + [UInt8](repeating: 0, count: Layout.actionSetSize - used.count) }
    }

    /// What a programmed slot holds (its key is the map's key).
    struct Slot {
        var actionSet: UInt32
        var counter: UInt32
        /// ESW_RULE_* of the rule's value.
        var flags: UInt32
        var value: RuleValue { RuleValue(actionSet: actionSet, counter: counter, flags: flags) }
    }

    var masksByWords: [MaskWords: MaskUse] = [:]
    /// The words of each mask id in use (a pending rule keeps the id, not 144 bytes).
    var maskWordsByID = [MaskWords?](repeating: nil, count: Layout.maxMasks + 1)
    /// The mask last looked up, and its id (nil: none, or its mask went since).
    var lastMaskWords = MaskWords()
    var lastMaskID: UInt32?
    var maskIDs: SlotAllocator
    var lists: [HardwareTable: [UInt32]] = [.exact: [], .masked: []]
    /// Action sets shared by identical action lists, with the rules using each.
    var actionSets: [ActionSetBytes: UInt32] = [:]
    var actionSetsByID: [UInt32: ActionSetBytes] = [:]
    /// Rules using each action set, by id (not in `actionSets`: a rule reusing the last
    /// set counts itself without hashing its bytes).
    var actionSetUsers = [Int](repeating: 0, count: BPFDataPlane.actionSetCapacity)
    /// The actions of the last set acquired: a bulk of rules mostly shares one, and
    /// encoding and hashing it again cost more than the rule's map write. Forgotten when
    /// that set goes.
    var lastActionSet: (actions: [HardwareAction], id: UInt32)?
    var actionSetIDs: SlotAllocator
    /// What each slot of the exact (0) and masked (1) table holds, and the slots queued
    /// rules will take, by the fingerprint (64-bit hash) of its key: 16 bytes an entry
    /// instead of the 152-byte key (the kernel's map holds the keys). Two keys with one
    /// fingerprint would look like one slot: the second rule is refused (its counter
    /// differs), never merged, and a removal needs the counter to match too.
    /// For the life of the data plane (a flush empties them in place).
    let exactSlots = SlotShadow(), maskedSlots = SlotShadow()
    @inline(__always) func slots(_ t: Int) -> SlotShadow { t == 0 ? exactSlots : maskedSlots }
    /// `slots(t)` lent to `body` without a retain and release (a put's two uses took a
    /// pair each): the objects live as long as this one.
    @inline(__always) func withSlots<R>(_ t: Int, _ body: (SlotShadow) -> R) -> R {
        Unmanaged.passUnretained(t == 0 ? exactSlots : maskedSlots)._withUnsafeGuaranteedRef(body)
    }
    /// What `prefetch` computed last for a rule of `prefetchedTable` (nil: nothing): its
    /// table key, fingerprint and mask id, for the rule's `prepare` that follows. Apart,
    /// not an optional tuple: clearing and reading those 165 bytes were copies each.
    var prefetchedTable: HardwareTable?
    var prefetchedKey = TableKey()
    var prefetchedFingerprint = Fingerprint(0)
    var prefetchedMaskID: UInt32 = 0
    /// The chain table (ConntrackWrites.swift): masks by their bytes, their lookup order,
    /// each slot by its key's bytes; the connections in the CT table.
    var chainMasks: [[UInt8]: ChainMaskUse] = [:]
    var chainMaskIDs = SlotAllocator(capacity: UInt32(Layout.maxMasks))
    var chainList: [UInt32] = []
    var chainSlots: [[UInt8]: Slot] = [:]
    var connectionsHeld: [UInt64: DataPlaneConnection] = [:]
    /// Hand-backs lost so far (ESW_CT_STAT_HANDBACK_LOST), and whether the queue's
    /// content is unknown (a resize replaced it): either makes takeHandBacks incomplete.
    var handBacksLostSeen: UInt64 = 0
    var handBackQueueReplaced = false
    /// Removals waiting to be written together (inside `coalescingRemovals`).
    var queuedRemovals: [DataPlaneRule]?
    /// Removals the kernel refused in a coalesced write, retried by `maintain`.
    var removalsToRetry: [DataPlaneRule] = []
    /// New rules checked and waiting to be written together (inside `coalescingWrites`);
    /// their slots are marked queued in `slots`.
    var queuedWrites: [PendingRule]?
    /// The queues' storage between bulks (the one being filled and the one in flight take
    /// turns): kept, not freed (a bulk is 100 KB to 800 KB; freed, every bulk faulted
    /// fresh pages in again, a third of a million-flow add-flows spent zeroing them).
    var spareQueues: [[PendingRule]] = []
    /// The bulk the writer thread is writing (`handOffQueuedRules`); its slots stay
    /// marked queued until it is settled.
    var inFlight: [PendingRule]?
    /// The writer thread (none if it could not start: bulks are then written in place).
    let bulkWriter = try? BulkWriter()
    /// The kernel's view of the bulk being written (one at a time).
    let runScratch = TableRuns()
    /// Told the counters of queued rules the kernel refused after all (RuleWrites.swift).
    var lostWrites: (([UInt32], DataPlaneError) -> Void)?
    public func onLostWrites(_ handler: @escaping ([UInt32], DataPlaneError) -> Void) { lostWrites = handler }
    // What else the maps hold, kept to write it into bigger maps on a resize.
    private var portConfigs: [PortIndex: DataPlanePort] = [:]
    private var encapBytes: [UInt32: [UInt8]] = [:]
    private var macEntries: [UInt64: PortIndex] = [:]
    private var mode: ESwitchMode = .switchdev
    private var portCount = 0
    private var vxlanPorts: [UInt16] = []
    private var vtepMAC: UInt64 = 0
    private var portIfindexes: [PortIndex: (Int32, Int32)] = [:]
    private var lastRank: UInt64 = 0
    /// A flush could not rewrite the mask or chain lists (RuleTables.swift): `maintain` does.
    var listsUnpublished = false
    /// Each mask's hit total at the last ranking (ranking is by hits since then).
    var hitsAtLastRank: [UInt32: UInt64] = [:]
    /// Offloaded user programs by port, and the NIC processor's speed (UserPrograms.swift).
    var userPrograms: [PortIndex: UserProgramObject] = [:]
    var nicSpeed = 100
    var nicQueueMicroseconds = 1000
    /// The name of the TAP that holds the engine's waiting frames (EngineDelayLine.swift),
    /// created with the first offloaded program; nil: no delay line (nothing is held).
    public var delayLineName: String?
    var delayLine: EngineDelayLine?
    let lateFrames = LateFrames()
    /// Where frames that must wait go when there is no delay line: 0, they go on at once.
    /// Unit tests (BPF_PROG_TEST_RUN, which sends nothing) set it to see frames marked.
    var holdIfindexWithoutDelayLine: Int32 = 0

    public static let actionSetCapacity = 65536

    /// Loads the programs and sizes the tables for `profile`.
    public init(profile: HardwareProfile) throws(SystemError) {
        capacity = Capacity(profile)
        object = try Self.load(capacity)
        portRX = try object.programFD("esw_port_rx")
        representorTX = try object.programFD("esw_rep_tx")
        maps = try Maps(object)
        counters = try CounterMemory(fd: maps.ruleCounters, slots: capacity.counters, cpus: BPFMap.possibleCPUs)
        ruleTables = try Self.publishRuleTables(capacity: capacity.rules, in: maps)
        maskIDs = SlotAllocator(capacity: UInt32(Layout.maxMasks))
        actionSetIDs = SlotAllocator(capacity: UInt32(BPFDataPlane.actionSetCapacity))
        try? publishLists()
        try? writeConfig()
        try? startProgramStage()
    }

    deinit {
        bulkWriter?.stop()
        delayLine?.stop()
        filters.removeAll()
    }

    // MARK: Writes

    func update(_ fd: Int32, _ key: [UInt8], _ value: [UInt8], _ what: String) throws(DataPlaneError) {
        let r = key.withUnsafeBytes { k in
            value.withUnsafeBytes { v in BPFMap.updateResult(fd, key: k.baseAddress!, value: v.baseAddress!) }
        }
        if r < 0 { throw .system("write \(what)", errno: -r) }
    }

    func delete(_ fd: Int32, _ key: [UInt8]) {
        key.withUnsafeBytes { BPFMap.delete(fd, key: $0.baseAddress!) }
    }

    static func u32(_ v: UInt32) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }
    private static func u64(_ v: UInt64) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }

    private func writeConfig() throws(DataPlaneError) {
        try update(maps.config, Self.u32(0), Layout.config(mode: mode, ports: portCount, vxlan: vxlanPorts,
                                                           counterSlots: capacity.counters, vtepMAC: vtepMAC), "config")
    }

    public func setMode(_ mode: ESwitchMode, portCount: Int) throws(DataPlaneError) {
        guard portCount <= Layout.maxPorts else { throw .noSpace("port") }
        writeQueuedRules()
        self.mode = mode
        self.portCount = portCount
        try writeConfig()
    }

    public func setVXLANPorts(_ ports: [UInt16]) throws(DataPlaneError) {
        guard ports.count <= 4 else { throw .noSpace("vxlan port") }
        vxlanPorts = ports
        try writeConfig()
    }

    public func setVTEPMAC(_ mac: UInt64) throws(DataPlaneError) {
        guard mac != vtepMAC else { return }
        vtepMAC = mac
        try writeConfig()
    }

    public func setPort(_ port: PortIndex, _ config: DataPlanePort?) throws(DataPlaneError) {
        guard Int(port) < Layout.maxPorts else { throw .noSpace("port") }
        for i in [config?.ifindex ?? 0, config?.representorIfindex ?? 0] where i >= Int32(Layout.maxIfindex) {
            throw .unsupported("netdev ifindex \(i) (the port table is indexed up to \(Layout.maxIfindex))")
        }
        if let (old, oldRep) = portIfindexes[port] {
            if old > 0 && old != config?.ifindex { try update(maps.portByIfindex, Self.u32(UInt32(bitPattern: old)), Self.u32(0), "port ifindex") }
            if oldRep > 0 && oldRep != config?.representorIfindex {
                try update(maps.portByIfindex, Self.u32(UInt32(bitPattern: oldRep)), Self.u32(0), "representor ifindex")
            }
        }
        try update(maps.ports, Self.u32(port), Layout.port(config), "port \(port)")
        portConfigs[port] = config
        guard let config else {
            portIfindexes[port] = nil
            return
        }
        portIfindexes[port] = (config.ifindex, config.representorIfindex)
        try writeIfindexes(port, config, into: maps)
    }

    /// The ifindex -> port entries of one port (values are port + 1: 0 means none).
    private func writeIfindexes(_ port: PortIndex, _ config: DataPlanePort, into m: Maps) throws(DataPlaneError) {
        if config.ifindex > 0 {
            try update(m.portByIfindex, Self.u32(UInt32(bitPattern: config.ifindex)), Self.u32(port + 1), "port ifindex")
        }
        if config.representorIfindex > 0 {
            try update(m.portByIfindex, Self.u32(UInt32(bitPattern: config.representorIfindex)),
                       Self.u32((port + 1) | Layout.ifindexRepresentor), "representor ifindex")
        }
    }

    func mapFD(_ table: HardwareTable) -> Int32 { table == .exact ? ruleTables.exact.fd : ruleTables.masked.fd }

    public func writeEncap(id: UInt32, header: VXLAN.EncapTemplate) throws(DataPlaneError) {
        let bytes = Layout.encap(header)
        try update(maps.encaps, Self.u32(id), bytes, "encap entry")
        encapBytes[id] = bytes
    }

    public func removeEncap(id: UInt32) throws(DataPlaneError) {
        // Rules still queued for removal may use the entry: they go first.
        writeQueuedRules()
        try writeQueuedRemovals()
        delete(maps.encaps, Self.u32(id))
        encapBytes[id] = nil
    }

    public func setMAC(vlan: UInt16, mac: UInt64, port: PortIndex?) throws(DataPlaneError) {
        let key = Self.u64(UInt64(vlan) << 48 | mac)
        if let port { try update(maps.macs, key, Self.u32(port), "mac entry") } else { delete(maps.macs, key) }
        macEntries[UInt64(vlan) << 48 | mac] = port
    }

    // MARK: Resize

    /// Makes the tables hold at least this much (devlink reload after a resource grew):
    /// loads the programs again with bigger maps, writes everything the old maps held
    /// (counters carried over), then swaps the programs on every netdev in one tc
    /// replace each, so traffic never meets an empty table.
    public func resize(rules: Int, counters: Int, encaps: Int, connections: Int) throws(DataPlaneError) {
        var want = capacity
        want.connections = max(want.connections, min(1 << 22, connections))
        want.rules = max(want.rules, min(1 << 22, rules))
        want.counters = max(want.counters, min(1 << 22, counters))
        want.encaps = max(want.encaps, min(1 << 20, encaps))
        guard want != capacity else { return }
        writeQueuedRules()
        try writeQueuedRemovals()
        let newObject: BPFObject
        do { newObject = try Self.load(want) } catch {
            throw .system("loading the data plane with bigger tables (\(error))", errno: error.errno)
        }
        let m: Maps, rx: Int32, tx: Int32, tables: RuleTables
        do {
            m = try Maps(newObject)
            tables = try Self.publishRuleTables(capacity: want.rules, in: m)
            rx = try newObject.programFD("esw_port_rx")
            tx = try newObject.programFD("esw_rep_tx")
        } catch {
            throw .system("the reloaded data plane (\(error))", errno: error.errno)
        }
        var newCounters = try Self.mapCounters(m, slots: want.counters)
        try replay(into: m, tables: tables, counters: &newCounters)
        var newFilters: [Int32: TCFilter] = [:]
        for (ifindex, f) in filters {
            do {
                newFilters[ifindex] = try TCFilter(ifindex: ifindex, egress: f.egress, programFD: f.egress ? tx : rx)
            } catch {
                // Put the current programs back where the new ones went; the old filter
                // objects still own their handle and priority.
                for (i, n) in newFilters {
                    n.disown()
                    if let old = filters[i] { old.reattach(programFD: old.egress ? representorTX : portRX) }
                }
                throw .system(error.call, errno: error.errno)
            }
        }
        // Every netdev runs the new programs: the old filter objects must not detach them.
        for f in filters.values { f.disown() }
        filters = newFilters
        object = newObject
        maps = m
        self.counters = newCounters
        ruleTables = tables
        portRX = rx
        representorTX = tx
        capacity = want
        restartProgramStage()
    }

    private static func mapCounters(_ m: Maps, slots: Int) throws(DataPlaneError) -> CounterMemory {
        do { return try CounterMemory(fd: m.ruleCounters, slots: slots, cpus: BPFMap.possibleCPUs) } catch {
            throw .system(error.call, errno: error.errno)
        }
    }

    /// Writes everything the data plane holds into another set of maps.
    private func replay(into m: Maps, tables: RuleTables, counters newCounters: inout CounterMemory) throws(DataPlaneError) {
        try update(m.config, Self.u32(0), Layout.config(mode: mode, ports: portCount, vxlan: vxlanPorts,
                                                        counterSlots: newCounters.slots, vtepMAC: vtepMAC), "config")
        for (port, config) in portConfigs {
            try update(m.ports, Self.u32(port), Layout.port(config), "port")
            try writeIfindexes(port, config, into: m)
        }
        for (words, use) in masksByWords { try update(m.masks, Self.u32(use.id), words.bytes, "mask") }
        for (set, id) in actionSets { try update(m.actionSets, Self.u32(id), set.bytes, "action set") }
        for (id, bytes) in encapBytes { try update(m.encaps, Self.u32(id), bytes, "encap entry") }
        for (key, port) in macEntries { try update(m.macs, Self.u64(key), Self.u32(port), "mac entry") }
        try copyRules(from: ruleTables.exact.fd, to: tables.exact.fd)
        try copyRules(from: ruleTables.masked.fd, to: tables.masked.fd)
        try replayChains(into: m)
        try replayConnections(into: m)
        handBackQueueReplaced = true
        let cpus = BPFMap.possibleCPUs
        for (i, c) in allRuleCounters(count: capacity.counters).enumerated() where c.packets > 0 || c.lastUsedNanoseconds > 0 {
            newCounters.set(i, to: c)
        }
        for port in 0..<UInt32(Layout.maxPorts) {
            let old = perCPU(maps.portStats, index: port, fields: Layout.portStats)
            guard old.contains(where: { $0 != 0 }) else { continue }
            var v = [UInt64](repeating: 0, count: cpus * Layout.portStats)
            for i in 0..<Layout.portStats { v[i] = old[i] }
            try update(m.portStats, Self.u32(port), v.withUnsafeBytes { Array($0) }, "port counters")
        }
        try update(m.maskLists, Self.u32(0), Layout.maskLists(exact: lists[.exact] ?? [], masked: lists[.masked] ?? []),
                   "mask lists")
        for stat in Layout.CTStat.allCases {
            var v = [UInt64](repeating: 0, count: cpus)
            v[0] = perCPU(maps.ctStats, index: UInt32(stat.rawValue), fields: 1)[0]
            try update(m.ctStats, Self.u32(UInt32(stat.rawValue)), v.withUnsafeBytes { Array($0) }, "ct statistics")
        }
    }

    // MARK: Counters

    /// Reads a per-CPU value and sums it, `fields` 64-bit words per CPU.
    func perCPU(_ fd: Int32, index: UInt32, fields: Int) -> [UInt64] {
        let cpus = BPFMap.possibleCPUs
        var values = [UInt64](repeating: 0, count: cpus * fields)
        var key = index
        let ok = values.withUnsafeMutableBytes { BPFMap.lookup(fd, key: &key, value: $0.baseAddress!) }
        var sum = [UInt64](repeating: 0, count: fields)
        guard ok else { return sum }
        for c in 0..<cpus {
            for f in 0..<fields { sum[f] &+= values[c * fields + f] }
        }
        return sum
    }

    public func resetCounter(_ counter: UInt32) { counters.reset(Int(counter)) }

    /// Zeroes counters in the mapped memory (a flush frees a million at once).
    public func resetCounters(_ list: [UInt32]) { for c in list { counters.reset(Int(c)) } }

    public func ruleCounters(_ counter: UInt32) -> RuleCounters { counters.read(Int(counter)) }

    /// Whether the counters are mapped into the daemon now (CounterMemory).
    public var countersMapped: Bool { counters.isMapped }

    /// Counters 0..<count in one walk (a resize carries them over).
    public func allRuleCounters(count: Int) -> [RuleCounters] {
        guard count > 0 else { return [] }
        return counters.readAll(count: count)
    }

    public func portCounters(_ port: PortIndex) -> PortCounters {
        var c = PortCounters()
        let v = perCPU(maps.portStats, index: port, fields: Layout.portStats)
        c.rxPackets = v[0]; c.rxBytes = v[1]; c.txPackets = v[2]; c.txBytes = v[3]
        c.rxDropped = v[4]; c.txDropped = v[5]; c.toRepresentor = v[6]; c.fromRepresentor = v[7]
        return c
    }

    // MARK: Housekeeping

    /// Ranks each table's masks by hits since the last ranking (busiest first), as OVS
    /// ranks its subtables, and frees retired ids.
    public func maintain(now: UInt64) {
        writeQueuedRules()
        retryRemovals()
        if listsUnpublished {
            listsUnpublished = (try? publishLists()) == nil
            listsUnpublished = (try? publishChainList()) == nil || listsUnpublished
        }
        maskIDs.reclaim(now: now)
        chainMaskIDs.reclaim(now: now)
        actionSetIDs.reclaim(now: now)
        if now &- lastCounterLook >= 1_000_000_000 {
            lastCounterLook = now
            counters.releaseIfIdle(now: now, idle: 3_000_000_000)
        }
        guard now &- lastRank >= 1_000_000_000 else { return }
        lastRank = now
        var recent: [UInt32: UInt64] = [:]
        for (_, use) in masksByWords {
            let total = perCPU(maps.maskHits, index: use.id, fields: 1)[0]
            recent[use.id] = total &- (hitsAtLastRank[use.id] ?? 0)
            hitsAtLastRank[use.id] = total
        }
        for table in [HardwareTable.exact, .masked] {
            guard let l = lists[table], l.count > 1 else { continue }
            let ranked = l.sorted { (recent[$0] ?? 0) > (recent[$1] ?? 0) }
            if ranked != l {
                lists[table] = ranked
                try? publishLists()
            }
        }
    }

    // MARK: Attachments

    public func attachPort(ifindex: Int32) throws(DataPlaneError) {
        try attach(ifindex: ifindex, egress: false, program: portRX)
    }

    public func attachRepresentor(ifindex: Int32) throws(DataPlaneError) {
        try attach(ifindex: ifindex, egress: true, program: representorTX)
    }

    private func attach(ifindex: Int32, egress: Bool, program: Int32) throws(DataPlaneError) {
        do {
            filters[ifindex] = try TCFilter(ifindex: ifindex, egress: egress, programFD: program)
        } catch {
            throw .system(error.call, errno: error.errno)
        }
    }

    public func detach(ifindex: Int32) { filters[ifindex] = nil }

    /// Runs the port pipeline once on a frame (BPF_PROG_TEST_RUN), as if it arrived on
    /// the netdev `ifindex`: the verdict (TC_ACT_*), the frame as the program left it,
    /// and the redirect target if any. Counts like real traffic. Queued new rules (of
    /// the run of requests being answered) stay queued: the frame meets what the kernel
    /// holds now.
    /// `gsoSize`: the frame as a GSO superframe (gso_size and gso_segs set; the kernel's
    /// test run cannot set gso_type); the gso_segs the pipeline left comes back (the test
    /// run reports no gso_size; 0 when the GSO state was reset).
    public func testRun(frame: [UInt8], ifindex: Int32, representor: Bool = false,
                        gsoSize: UInt32 = 0) throws(SystemError) -> (verdict: Int32, frame: [UInt8], gsoSegs: UInt32) {
        try? writeQueuedRemovals()
        var out = [UInt8](repeating: 0, count: frame.count + 256)
        var outLen = UInt32(out.count)
        var ret: UInt32 = 0
        var ctx = __sk_buff()
        ctx.ifindex = UInt32(bitPattern: ifindex)
        if gsoSize > 0 {
            ctx.gso_size = gsoSize
            ctx.gso_segs = UInt32((frame.count + Int(gsoSize) - 1) / Int(gsoSize))
        }
        let prog = representor ? representorTX : portRX
        let r = withUnsafeMutableBytes(of: &ctx) { c in
            frame.withUnsafeBytes { f in
                out.withUnsafeMutableBytes { o in
                    clbpf_test_run(prog, f.baseAddress, UInt32(f.count), o.baseAddress, &outLen, &ret, c.baseAddress,
                                   UInt32(c.count))
                }
            }
        }
        if r < 0 { throw SystemError("bpf_prog_test_run", errno: -r) }
        return (Int32(bitPattern: ret), Array(out.prefix(Int(outLen))), ctx.gso_segs)
    }
}
