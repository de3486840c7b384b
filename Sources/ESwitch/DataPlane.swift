import Classifier
import Glibc
import Packet

/// A rule as the silicon holds it: the table, the match, what to do, and which
/// counter it counts into. The driver owns the accounting; the data plane only holds.
public struct DataPlaneRule: Sendable, Equatable {
    public var table: HardwareTable
    /// The key, already masked.
    public var key: FlowKey
    public var mask: FlowKey
    public var actions: [HardwareAction]
    public var counter: UInt32

    public init(table: HardwareTable, key: FlowKey, mask: FlowKey, actions: [HardwareAction], counter: UInt32) {
        self.table = table
        self.key = key
        self.mask = mask
        self.actions = actions
        self.counter = counter
    }

    /// Whether two rules occupy the same slot (same table, key and mask).
    public func sameMatch(as other: DataPlaneRule) -> Bool {
        table == other.table && key == other.key && mask == other.mask
    }
}

/// One port of the silicon: where its packets come from and go to.
public struct DataPlanePort: Sendable, Equatable {
    /// The port's netdev on the switch side: a VF's veth end, or the uplink.
    public var ifindex: Int32
    /// The representor netdev (0: none, as in legacy mode).
    public var representorIfindex: Int32
    public var isUplink: Bool
    public var linkUp: Bool
    /// The VF's end of the veth pair is in another namespace (a faster redirect works).
    public var peerInOtherNamespace: Bool
    /// The VF's MTU (the wire's for the uplink).
    public var mtu: Int
    /// Legacy mode VST.
    public var vlan: UInt16
    public var qos: UInt8
    /// Someone captures on the representor: what the host sends on it goes to the port
    /// and through the representor's own transmit, where packet sockets see it.
    public var mirrorsTransmit: Bool

    public init(ifindex: Int32, representorIfindex: Int32 = 0, isUplink: Bool = false, linkUp: Bool = true,
                peerInOtherNamespace: Bool = false, mtu: Int = 1500, vlan: UInt16 = 0, qos: UInt8 = 0,
                mirrorsTransmit: Bool = false) {
        self.ifindex = ifindex
        self.representorIfindex = representorIfindex
        self.isUplink = isUplink
        self.linkUp = linkUp
        self.peerInOtherNamespace = peerInOtherNamespace
        self.mtu = mtu
        self.vlan = vlan
        self.qos = qos
        self.mirrorsTransmit = mirrorsTransmit
    }
}

/// Why the silicon refused a write.
public enum DataPlaneError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A table of the silicon itself is full (masks, action sets, ...).
    case noSpace(String)
    case unsupported(String)
    /// The write failed (errno, and what was written).
    case system(String, errno: Int32)
    /// The NIC would not run a user program: the verifier's (or the NIC's) message.
    case programRefused(String)
    /// Another rule (another counter) holds the slot of this rule's hardware match: a slot
    /// is rewritten only by its own rule.
    case duplicateMatch

    public var description: String {
        switch self {
        case .noSpace(let t): "no space in \(t) table"
        case .duplicateMatch: "a rule with the same hardware match is installed"
        case .unsupported(let w): "unsupported: \(w)"
        case .system(let w, let e): "\(w): errno \(e)"
        case .programRefused(let m): "program refused: \(m)"
        }
    }

    /// The errno a control request reports for it.
    public var errno: Int32 {
        switch self {
        case .noSpace: ENOSPC
        case .duplicateMatch: EEXIST
        case .unsupported: EOPNOTSUPP
        case .system(_, let e): e
        case .programRefused: EINVAL
        }
    }

    public var offloadFailure: OffloadFailure {
        switch self {
        case .noSpace(let t): .noSpace(table: t)
        case .duplicateMatch: .duplicateMatch
        case .unsupported(let w): .unsupportedAction(w)
        case .system(let w, let e): .unsupportedAction("\(w) failed (errno \(e))")
        case .programRefused(let m): .unsupportedAction(m)
        }
    }
}

/// The eSwitch's data plane as its driver reaches it: the one way rules, encap entries,
/// ports and the legacy MAC table get into the silicon, and counters come back. The
/// eBPF data plane (BPFDataPlane) implements it in the kernel; `InMemoryDataPlane`
/// implements it in memory for tests that need no root and no netdevs.
///
/// Called on the control thread only.
public protocol DataPlane: AnyObject {
    func setMode(_ mode: ESwitchMode, portCount: Int) throws(DataPlaneError)
    func setPort(_ port: PortIndex, _ config: DataPlanePort?) throws(DataPlaneError)
    /// The UDP ports on which the parser recognises VXLAN (at most four).
    func setVXLANPorts(_ ports: [UInt16]) throws(DataPlaneError)
    /// The MAC of the netdev that holds the host's VTEP (the uplink representor): the
    /// only outer destination MAC of VXLAN frames the hardware decaps (0: none).
    func setVTEPMAC(_ mac: UInt64) throws(DataPlaneError)
    /// Installs a rule, or replaces the one with the same match atomically for packets.
    func program(_ rule: DataPlaneRule) throws(DataPlaneError)
    /// `program` of a rule whose match the driver keeps as a classifier entry (the masked
    /// key's significant words and the mask object). `prefetched`: of the very key, mask
    /// and table the last `prefetch` was given (the caller knows it), so what the hint
    /// computed need not be computed again.
    func program(table: HardwareTable, match: ClassifierEntry, actions: [HardwareAction], counter: UInt32,
                 prefetched: Bool) throws(DataPlaneError)
    func remove(_ rule: DataPlaneRule) throws(DataPlaneError)
    /// Installs rules in order, in as few writes as the silicon allows, stopping at the
    /// first refusal: how many were installed, and the refusal.
    func program(batch rules: [DataPlaneRule]) -> (installed: Int, error: DataPlaneError?)
    /// Removes rules in as few writes as the silicon allows (a rule not held is skipped).
    func remove(batch rules: [DataPlaneRule]) -> (removed: Int, error: DataPlaneError?)
    /// Takes every rule out at once (a flush), whatever its table. On an error nothing
    /// changed.
    func removeAllRules() throws(DataPlaneError)
    /// Writes (or rewrites, atomically for packets) a shared encap entry.
    func writeEncap(id: UInt32, header: VXLAN.EncapTemplate) throws(DataPlaneError)
    func removeEncap(id: UInt32) throws(DataPlaneError)
    /// Legacy MAC table: `port` nil removes the entry.
    func setMAC(vlan: UInt16, mac: UInt64, port: PortIndex?) throws(DataPlaneError)
    /// Zeroes a counter before a new rule uses it.
    func resetCounter(_ counter: UInt32)
    /// Zeroes counters before new rules use them, in as few writes as the silicon allows.
    func resetCounters(_ counters: [UInt32])
    func ruleCounters(_ counter: UInt32) -> RuleCounters
    func portCounters(_ port: PortIndex) -> PortCounters
    /// Periodic housekeeping (mask ranking, releasing retired slots).
    func maintain(now: UInt64)
    /// Runs the pipeline on frames arriving at a port's netdev (a VF's switch-side end,
    /// the uplink).
    func attachPort(ifindex: Int32) throws(DataPlaneError)
    /// Makes frames sent on a representor leave through its port.
    func attachRepresentor(ifindex: Int32) throws(DataPlaneError)
    /// Stops processing a netdev's frames (before the netdev goes, or at shutdown).
    func detach(ifindex: Int32)
    /// Makes the tables hold at least this many rules, counters, encap entries and CT
    /// entries (devlink reload after a resource grew), keeping everything they hold.
    func resize(rules: Int, counters: Int, encaps: Int, connections: Int) throws(DataPlaneError)

    // The CT table (ConnectionTable.swift): a connection is two entries, one per direction.
    /// Installs both directions of a connection (all or nothing).
    func programConnection(_ c: DataPlaneConnection) throws(DataPlaneError)
    func removeConnection(_ c: DataPlaneConnection) throws(DataPlaneError)
    /// Whether the pipeline marked the connection for software (a FIN or RST hit it).
    func connectionHandedBack(_ c: DataPlaneConnection) -> Bool
    /// The counters of entries the pipeline marked since the last call (one per
    /// hand-back, either direction's), and whether that is all of them (false: some
    /// were not queued, the caller asks `connectionHandedBack` of every connection).
    func takeHandBacks() -> (counters: [UInt32], complete: Bool)
    /// What the CT stage of the pipeline did.
    func conntrackCounters() -> ConntrackPipelineCounters

    // Offloaded programs (PortPrograms.swift): one user program per port, run before
    // the tables.
    /// Loads `section` (nil: the object's first program) of the BPF object file at
    /// `objectPath` and runs it on the port's frames, replacing any program it had.
    func attachProgram(_ port: PortIndex, objectPath: String, section: String?) throws(DataPlaneError) -> PortProgram
    func detachProgram(_ port: PortIndex)
    func attachedProgram(_ port: PortIndex) -> PortProgram?
    func programCounters(_ port: PortIndex) -> PortProgramCounters
    /// The NIC engine's speed, in percent of a host CPU's (100: as fast).
    func setNICSpeed(_ percent: Int) throws(DataPlaneError)
    /// The NIC engine's input queue, in microseconds of engine work (0...1_000_000).
    func setNICQueue(microseconds: Int) throws(DataPlaneError)

    /// Tells `handler` the counters of rules that `program` accepted but the silicon
    /// refused when their queued write was made, and why (a data plane that queues writes).
    func onLostWrites(_ handler: @escaping ([UInt32], DataPlaneError) -> Void)

    /// A hint: a rule with this key and mask is about to be programmed in `table`.
    /// A data plane that keeps a big index of its rules starts loading the entry the
    /// rule's check will read; nothing changes.
    func prefetch(key: FlowKey, mask: FlowKey, table: HardwareTable)

    /// Where a mask is in the order the silicon tries `table`'s masks (0 first), nil if
    /// it has no order for it: of two rules a frame matches, the one whose mask comes
    /// first is hit.
    func maskOrder(_ mask: FlowKey, table: HardwareTable) -> Int?
}

extension DataPlane {
    /// One write per rule: for data planes with no cheaper bulk write (the in-memory one).
    public func program(batch rules: [DataPlaneRule]) -> (installed: Int, error: DataPlaneError?) {
        for (i, r) in rules.enumerated() {
            do { try program(r) } catch { return (i, error) }
        }
        return (rules.count, nil)
    }

    /// One write per counter.
    public func resetCounters(_ counters: [UInt32]) { for c in counters { resetCounter(c) } }

    /// Writes made at once lose nothing later.
    public func onLostWrites(_ handler: @escaping ([UInt32], DataPlaneError) -> Void) {}

    /// Nothing to load ahead.
    public func prefetch(key: FlowKey, mask: FlowKey, table: HardwareTable) {}

    /// The rule with its full key and mask (nothing was computed ahead).
    public func program(table: HardwareTable, match: ClassifierEntry, actions: [HardwareAction], counter: UInt32,
                        prefetched: Bool) throws(DataPlaneError) {
        try program(DataPlaneRule(table: table, key: match.key, mask: match.mask.bits, actions: actions, counter: counter))
    }

    /// No order of its own (the driver's shadow decides).
    public func maskOrder(_ mask: FlowKey, table: HardwareTable) -> Int? { nil }

    /// One write per rule; stops at the first write that fails.
    public func remove(batch rules: [DataPlaneRule]) -> (removed: Int, error: DataPlaneError?) {
        for (i, r) in rules.enumerated() {
            do { try remove(r) } catch { return (i, error) }
        }
        return (rules.count, nil)
    }
}

/// The data plane in memory: holds what the driver programs, counts nothing unless a
/// test says so, and looks packets up the way the silicon would (exact table, then
/// masks). For unit tests of the driver and of the datapath's offload path.
public final class InMemoryDataPlane: DataPlane, @unchecked Sendable {
    public private(set) var mode: ESwitchMode = .switchdev
    public private(set) var ports: [PortIndex: DataPlanePort] = [:]
    public private(set) var vxlanPorts: [UInt16] = []
    public private(set) var vtepMAC: UInt64 = 0
    public private(set) var rules: [DataPlaneRule] = []
    public private(set) var encaps: [UInt32: VXLAN.EncapTemplate] = [:]
    public private(set) var macs: [UInt64: PortIndex] = [:]
    public var counters: [UInt32: RuleCounters] = [:]
    public var portStats: [PortIndex: PortCounters] = [:]
    /// Every write, in order ("program", "remove", "encap", ...), for tests of ordering.
    public private(set) var log: [String] = []
    /// Makes the next writes fail (a test of the driver's rollback).
    public var failNextWrites = 0
    /// Distinct masks the silicon holds at most.
    public var maskLimit = 64
    /// Offloaded programs by port, and the NIC's speed (PortPrograms.swift).
    public var portPrograms: [PortIndex: PortProgram] = [:]
    public var programStats: [PortIndex: PortProgramCounters] = [:]
    public internal(set) var nicSpeed = 100
    public internal(set) var nicQueueMicroseconds = 1000

    public init() {}

    private func write(_ what: String) throws(DataPlaneError) {
        if failNextWrites > 0 {
            failNextWrites -= 1
            throw .system(what, errno: 5)
        }
        log.append(what)
    }

    public func setMode(_ mode: ESwitchMode, portCount: Int) throws(DataPlaneError) {
        try write("mode \(mode.rawValue)")
        self.mode = mode
    }

    public func setPort(_ port: PortIndex, _ config: DataPlanePort?) throws(DataPlaneError) {
        try write("port \(port)")
        ports[port] = config
    }

    public func setVXLANPorts(_ ports: [UInt16]) throws(DataPlaneError) {
        guard ports.count <= 4 else { throw .noSpace("vxlan port") }
        try write("vxlan \(ports)")
        vxlanPorts = ports
    }

    public func setVTEPMAC(_ mac: UInt64) throws(DataPlaneError) {
        try write("vtep mac")
        vtepMAC = mac
    }

    /// Rules per mask, and where each match is in `rules` (tests fill tables of thousands).
    private var maskUsers: [FlowKey: Int] = [:]
    private var indexByMatch: [MatchKey: Int] = [:]
    private struct MatchKey: Hashable {
        var table: HardwareTable, key: FlowKey, mask: FlowKey
        init(_ r: DataPlaneRule) { (table, key, mask) = (r.table, r.key, r.mask) }
    }

    public func program(_ rule: DataPlaneRule) throws(DataPlaneError) {
        let m = MatchKey(rule)
        if indexByMatch[m] == nil && maskUsers[rule.mask] == nil && maskUsers.count >= maskLimit { throw .noSpace("masks") }
        // As the eBPF data plane: a slot is rewritten only by the rule that owns it (the
        // same counter); another rule with the same match is refused.
        if let i = indexByMatch[m], rules[i].counter != rule.counter {
            throw .duplicateMatch
        }
        try write("program \(rule.counter)")
        if let i = indexByMatch[m] {
            rules[i] = rule
        } else {
            indexByMatch[m] = rules.count
            rules.append(rule)
            maskUsers[rule.mask, default: 0] += 1
        }
    }

    public func remove(_ rule: DataPlaneRule) throws(DataPlaneError) {
        try write("remove \(rule.counter)")
        // Only the rule that owns the slot takes it out (a late retry must not remove its successor).
        guard let i = indexByMatch[MatchKey(rule)], rules[i].counter == rule.counter else { return }
        indexByMatch[MatchKey(rule)] = nil
        // Swap-remove: the last rule takes the freed place.
        let last = rules.removeLast()
        if i < rules.count {
            rules[i] = last
            indexByMatch[MatchKey(last)] = i
        }
        if let n = maskUsers[rule.mask] { maskUsers[rule.mask] = n > 1 ? n - 1 : nil }
    }

    public func removeAllRules() throws(DataPlaneError) {
        try write("remove all")
        rules = []
        indexByMatch = [:]
        maskUsers = [:]
    }

    public func writeEncap(id: UInt32, header: VXLAN.EncapTemplate) throws(DataPlaneError) {
        try write("encap \(id)")
        encaps[id] = header
    }

    public func removeEncap(id: UInt32) throws(DataPlaneError) {
        try write("remove encap \(id)")
        encaps[id] = nil
    }

    public func setMAC(vlan: UInt16, mac: UInt64, port: PortIndex?) throws(DataPlaneError) {
        try write("mac \(vlan) \(mac)")
        macs[UInt64(vlan) << 48 | mac] = port
    }

    public func resetCounter(_ counter: UInt32) { counters[counter] = nil }
    public func ruleCounters(_ counter: UInt32) -> RuleCounters { counters[counter] ?? RuleCounters() }
    public func portCounters(_ port: PortIndex) -> PortCounters { portStats[port] ?? PortCounters() }
    public func maintain(now: UInt64) {}
    public private(set) var attachedPorts: Set<Int32> = []
    public private(set) var attachedRepresentors: Set<Int32> = []
    public func attachPort(ifindex: Int32) throws(DataPlaneError) { attachedPorts.insert(ifindex) }
    public func attachRepresentor(ifindex: Int32) throws(DataPlaneError) { attachedRepresentors.insert(ifindex) }
    public func detach(ifindex: Int32) {
        attachedPorts.remove(ifindex)
        attachedRepresentors.remove(ifindex)
    }
    public private(set) var capacity = (rules: 0, counters: 0, encaps: 0, connections: 0)
    public func resize(rules: Int, counters: Int, encaps: Int, connections: Int) throws(DataPlaneError) {
        try write("resize")
        capacity = (rules, counters, encaps, connections)
    }

    /// Connections by their tracker id, and the direction each held tuple belongs to.
    public private(set) var connections: [UInt64: DataPlaneConnection] = [:]
    private var connectionByTuple: [ConnectionTuple: (id: UInt64, reply: Bool)] = [:]
    /// Connections the "pipeline" handed back (a test sets them, as a FIN in the eBPF one would).
    public var handedBack: Set<UInt64> = []

    public func programConnection(_ c: DataPlaneConnection) throws(DataPlaneError) {
        for t in [c.spec.original.tuple, c.spec.reply.tuple] where connectionByTuple[t].map({ $0.id != c.spec.id }) ?? false {
            throw .unsupported("a connection with the same tuple is installed")
        }
        try write("ct \(c.spec.id)")
        connections[c.spec.id] = c
        connectionByTuple[c.spec.original.tuple] = (c.spec.id, false)
        connectionByTuple[c.spec.reply.tuple] = (c.spec.id, true)
    }

    public func removeConnection(_ c: DataPlaneConnection) throws(DataPlaneError) {
        try write("remove ct \(c.spec.id)")
        guard connections[c.spec.id]?.originalCounter == c.originalCounter else { return }
        connections[c.spec.id] = nil
        connectionByTuple[c.spec.original.tuple] = nil
        connectionByTuple[c.spec.reply.tuple] = nil
        handedBack.remove(c.spec.id)
        takenHandBacks.remove(c.spec.id)
    }

    public func connectionHandedBack(_ c: DataPlaneConnection) -> Bool { handedBack.contains(c.spec.id) }

    /// Hand-backs already taken (each is reported once, as the eBPF queue does).
    private var takenHandBacks: Set<UInt64> = []
    /// Makes the next `takeHandBacks` incomplete (a test of the scan).
    public var loseHandBacks = false
    public func takeHandBacks() -> (counters: [UInt32], complete: Bool) {
        let new = handedBack.subtracting(takenHandBacks)
        takenHandBacks.formUnion(new)
        defer { loseHandBacks = false }
        if loseHandBacks { return ([], false) }
        return (new.compactMap { connections[$0]?.originalCounter }, true)
    }

    /// What a test says the CT stage did.
    public var pipelineCounters = ConntrackPipelineCounters()
    public func conntrackCounters() -> ConntrackPipelineCounters { pipelineCounters }

    /// The CT entry a packet with this tuple hits: the connection, and which direction.
    public func lookupConnection(_ t: ConnectionTuple) -> (connection: DataPlaneConnection, direction: ConnectionDirection)? {
        guard let (id, reply) = connectionByTuple[t], let c = connections[id] else { return nil }
        return (c, reply ? c.spec.reply : c.spec.original)
    }

    /// The rule a packet with `key` would hit: the exact table first, then masks.
    public func lookup(_ key: FlowKey) -> DataPlaneRule? {
        for table in [HardwareTable.exact, .masked, .chain] {
            if let r = rules.first(where: { $0.table == table && key.matches($0.key, under: $0.mask) }) { return r }
        }
        return nil
    }
}

/// How big the data plane's arrays are made for a profile. Hash tables grow as rules
/// come (their limits are the driver's resources); the counter array is allocated
/// whole, so it follows the profile, with room for resizing within 4x.
public enum DataPlaneCapacity {
    /// Distinct masks (tuple-space subtables) the parser walks, both tables together.
    public static let masks = 64
    public static func counters(_ p: HardwareProfile) -> Int { min(1 << 22, max(1024, p.counters)) }
    public static func encaps(_ p: HardwareProfile) -> Int { min(1 << 20, max(64, p.encapEntries * 4)) }
    public static func rules(_ p: HardwareProfile) -> Int { min(1 << 22, max(1024, 2 * max(p.maskedEntries, p.exactEntries))) }
    /// The CT map's entries (a hash map not preallocated: its size is a limit only).
    public static func connections(_ p: HardwareProfile) -> Int { min(1 << 22, max(1024, p.ctEntries)) }
}
