import NetLinux
import Packet

/// The driver's side of the hardware CT table: which connections the silicon tracks,
/// the `ct` resource (two entries a connection, one per direction) and a hardware
/// counter per direction. Programming is synchronous (not through the offload engine's models):
/// `add` returns once both entries are in the data plane, or with the reason they are
/// not; a connection is offloaded only while its entries are in the silicon.
/// Control thread only.
public final class ConnectionTable: @unchecked Sendable {
    let tables: HardwareTables
    var dataPlane: DataPlane { tables.dataPlane }
    public var pool: HardwareResource { tables.ctPool }
    public private(set) var connections: [UInt64: HardwareConnection] = [:]
    /// Tuples held, by direction: one entry of the silicon each.
    private var tupleOwners: [ConnectionTuple: UInt64] = [:]
    /// Connections by either direction's counter (what the pipeline's hand-backs name).
    private var counterOwners: [UInt32: UInt64] = [:]
    public private(set) var refusals = ConnectionRefusals()
    /// Entries each connection takes in `pool`.
    public static let entriesPerConnection = 2

    /// Told of the connections the eSwitch took out on its own (their zone's last ct
    /// rule left the silicon, or switchdev mode ended), with what their entries counted:
    /// software must take them over and carry the counts.
    public var onEvicted: (([ConnectionActivity]) -> Void)?

    init(tables: HardwareTables) {
        self.tables = tables
        // mlx5 refcounts a zone's CT table by its tc ct rules and flushes the table's
        // entries with the last one (mlx5_tc_ct_del_ft_cb): no rule looks them up any more,
        // and they would hold the table's room until they expire.
        tables.conntrackZoneEmptied = { [weak self] zone in self?.evict { $0.spec.original.tuple.zone == zone } }
    }

    public var count: Int { connections.count }

    /// What the silicon can never track, or nil.
    public static func check(_ spec: HardwareConnectionSpec) -> OffloadFailure? {
        for d in [spec.original, spec.reply] {
            let t = d.tuple
            guard t.proto == IPProto.tcp || t.proto == IPProto.udp else {
                return .unsupportedMatch(field: "ct of ip proto \(t.proto) (the hardware tracks TCP and UDP)")
            }
            if t.isIPv6 && (d.rewrite.src != nil || d.rewrite.dst != nil) {
                return .unsupportedAction("NAT of IPv6 addresses")
            }
            if !t.isIPv6 && (t.src >> 32 != 0 || t.dst >> 32 != 0 || (d.rewrite.src ?? 0) >> 32 != 0 || (d.rewrite.dst ?? 0) >> 32 != 0) {
                return .unsupportedMatch(field: "IPv4 connection with a wider address")
            }
        }
        if spec.original.tuple == spec.reply.tuple { return .unsupportedMatch(field: "ct tuple equal in both directions") }
        return nil
    }

    /// Puts a connection into the CT table: both directions, or nothing and the reason
    /// (counted in `refusals`).
    public func add(_ spec: HardwareConnectionSpec) -> Result<HardwareConnection, OffloadFailure> {
        if connections[spec.id] != nil || tupleOwners[spec.original.tuple] != nil || tupleOwners[spec.reply.tuple] != nil {
            refusals.unsupported += 1
            return .failure(.unsupportedMatch(field: "ct tuple already in the hardware"))
        }
        if let f = Self.check(spec) {
            refusals.unsupported += 1
            return .failure(f)
        }
        // No rule in hardware would look it up: its packets all go through software.
        guard tables.conntrackRuleZones[spec.original.tuple.zone] != nil else {
            refusals.noRule += 1
            return .failure(.unsupportedAction("no ct rule of zone \(spec.original.tuple.zone) in hardware"))
        }
        guard pool.reserve(Self.entriesPerConnection) else {
            refusals.full += 1
            return .failure(.noSpace(table: "ct"))
        }
        guard let original = tables.allocateCounter() else {
            pool.release(Self.entriesPerConnection)
            refusals.full += 1
            return .failure(.noSpace(table: "counters"))
        }
        guard let reply = tables.allocateCounter() else {
            tables.releaseCounter(original)
            pool.release(Self.entriesPerConnection)
            refusals.full += 1
            return .failure(.noSpace(table: "counters"))
        }
        let c = HardwareConnection(spec: spec, originalCounter: original, replyCounter: reply)
        do {
            try dataPlane.programConnection(c.programmed)
        } catch {
            tables.releaseCounter(original)
            tables.releaseCounter(reply)
            pool.release(Self.entriesPerConnection)
            refusals.writeFailed += 1
            return .failure(error.offloadFailure)
        }
        pool.markProgrammed(Self.entriesPerConnection)
        connections[spec.id] = c
        tupleOwners[spec.original.tuple] = spec.id
        tupleOwners[spec.reply.tuple] = spec.id
        counterOwners[original] = spec.id
        counterOwners[reply] = spec.id
        return .success(c)
    }

    /// Takes a connection out of the silicon. False if it was not held, or the data
    /// plane refused (it stays held: its packets are still tracked in hardware).
    @discardableResult
    public func remove(id: UInt64) -> Bool { take(id: id) != nil }

    /// Takes a connection out of the silicon and returns what its entries counted since
    /// it went in (`handedBack` is not read); nil as `remove` is false. The counters are
    /// read after the entries are gone, so nothing counts into them any more; their
    /// slots are zeroed only before they are handed out again.
    public func take(id: UInt64) -> ConnectionActivity? {
        guard let c = connections[id] else { return nil }
        do { try dataPlane.removeConnection(c.programmed) } catch { return nil }
        let counts = ConnectionActivity(id: id, original: dataPlane.ruleCounters(c.originalCounter),
                                        reply: dataPlane.ruleCounters(c.replyCounter), handedBack: false)
        connections[id] = nil
        tupleOwners[c.spec.original.tuple] = nil
        tupleOwners[c.spec.reply.tuple] = nil
        counterOwners[c.originalCounter] = nil
        counterOwners[c.replyCounter] = nil
        tables.releaseCounter(c.originalCounter)
        tables.releaseCounter(c.replyCounter)
        pool.markProgrammed(-Self.entriesPerConnection)
        pool.release(Self.entriesPerConnection)
        return counts
    }

    /// One connection's counters and hand-back flag, read now (nil: not held).
    public func activity(id: UInt64) -> ConnectionActivity? {
        guard let c = connections[id] else { return nil }
        return ConnectionActivity(id: id, original: dataPlane.ruleCounters(c.originalCounter),
                                  reply: dataPlane.ruleCounters(c.replyCounter),
                                  handedBack: dataPlane.connectionHandedBack(c.programmed))
    }

    /// Takes out the connections `which` picks and tells `onEvicted`.
    private func evict(_ which: (HardwareConnection) -> Bool) {
        let ids = connections.values.filter(which).map(\.id)
        guard !ids.isEmpty else { return }
        let gone = ids.compactMap { take(id: $0) }
        if !gone.isEmpty { onEvicted?(gone) }
    }

    /// The connection whose entry a packet with tuple `t` hits, and whether it is the
    /// reply direction's (for traces: the shadow of the silicon's CT table).
    public func lookup(_ t: ConnectionTuple) -> (connection: HardwareConnection, reply: Bool)? {
        guard let id = tupleOwners[t], let c = connections[id] else { return nil }
        return (c, c.spec.reply.tuple == t)
    }

    /// Whether the pipeline marked the connection for software (read from the silicon).
    public func isHandedBack(_ c: HardwareConnection) -> Bool { dataPlane.connectionHandedBack(c.programmed) }

    /// Removes every connection (leaving switchdev mode).
    func removeAll() { evict { _ in true } }

    /// Every connection's counters (each read where it lies) and whether the pipeline
    /// handed it back to software since the last call: the pipeline's queue of
    /// hand-backs, each confirmed on the entry (a queued counter may have a new owner by
    /// now); every entry read only when the queue overflowed.
    public func activity() -> [ConnectionActivity] {
        func read(_ n: UInt32) -> RuleCounters { dataPlane.ruleCounters(n) }
        let (queued, complete) = dataPlane.takeHandBacks()
        var handedBack = Set<UInt64>()
        for n in queued {
            if let id = counterOwners[n], let c = connections[id], dataPlane.connectionHandedBack(c.programmed) { handedBack.insert(id) }
        }
        return connections.values.map { c in
            ConnectionActivity(id: c.id, original: read(c.originalCounter), reply: read(c.replyCounter),
                               handedBack: handedBack.contains(c.id) || (!complete && dataPlane.connectionHandedBack(c.programmed)))
        }
    }
}
