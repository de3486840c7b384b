import Classifier
import Packet

/// A port of the eSwitch by its devlink index: 0 is the uplink, VF n is n + 1.
public typealias PortIndex = UInt32

extension PortIndex {
    public static let uplink: PortIndex = 0
    public static func vf(_ n: Int) -> PortIndex { PortIndex(n + 1) }
}

/// What a hardware rule does, in the hardware's own vocabulary (a driver translates
/// datapath actions into these). The header rewrites are boxed: inline, the IPv6 one
/// made every action 96 bytes (every rule's action array paid it).
public enum HardwareAction: Sendable {
    case forward(PortIndex)
    case drop
    case pushVLAN(tpid: UInt16, tci: UInt16)
    case popVLAN
    indirect case setEthernet(src: UInt64, srcMask: UInt64, dst: UInt64, dstMask: UInt64)
    indirect case setIPv4(value: HeaderRewrite.IPv4Fields, mask: HeaderRewrite.IPv4Fields)
    indirect case setIPv6(value: HeaderRewrite.IPv6Fields, mask: HeaderRewrite.IPv6Fields)
    indirect case setTransport(proto: UInt8, src: UInt16, srcMask: UInt16, dst: UInt16, dstMask: UInt16)
    /// Prepend the outer headers of a shared encap entry.
    case encap(EncapEntry)
    /// Strip the outer VXLAN headers (the rule matched them as tunnel fields).
    case decap
    /// Partial offload: write the mark into the packet's metadata (skb->mark) and send
    /// it up its port's representor, where software runs the flow the mark names. A
    /// rule with this action has no other.
    case hint(FlowMark)
    /// Connection tracking (mlx5's ct action): look the frame's 5-tuple up in the CT
    /// table of `zone`; a hit gives the frame its ct_state, mark and label and, with
    /// `nat`, the connection's address/port rewrite. A miss sends the frame up its
    /// representor unmodified. Only as a rule's first action (HardwareCapabilities.checkConntrack).
    case conntrack(zone: UInt16, nat: Bool)
    /// Look the frame up again in the chain of this recirculation id (the rules whose
    /// match has this `recirc_id`), with the ct fields a `conntrack` before it set. The
    /// rule's last action.
    case recirculate(UInt32)

    public var name: String {
        switch self {
        case .forward: "forward"
        case .drop: "drop"
        case .pushVLAN: "vlan_push"
        case .popVLAN: "vlan_pop"
        case .setEthernet, .setIPv4, .setIPv6, .setTransport: "modify_header"
        case .encap: "tunnel_encap"
        case .decap: "tunnel_decap"
        case .hint: "mark"
        case .conntrack: "ct"
        case .recirculate: "goto_chain"
        }
    }
}

extension HardwareAction: Equatable {
    /// Encap actions are equal when they use the same shared entry.
    public static func == (a: HardwareAction, b: HardwareAction) -> Bool {
        switch (a, b) {
        case (.forward(let x), .forward(let y)): x == y
        case (.drop, .drop), (.popVLAN, .popVLAN), (.decap, .decap): true
        case (.pushVLAN(let t1, let c1), .pushVLAN(let t2, let c2)): t1 == t2 && c1 == c2
        case (.setEthernet(let s1, let sm1, let d1, let dm1), .setEthernet(let s2, let sm2, let d2, let dm2)):
            s1 == s2 && sm1 == sm2 && d1 == d2 && dm1 == dm2
        case (.setIPv4(let v1, let m1), .setIPv4(let v2, let m2)): v1 == v2 && m1 == m2
        case (.setIPv6(let v1, let m1), .setIPv6(let v2, let m2)): v1 == v2 && m1 == m2
        case (.setTransport(let p1, let s1, let sm1, let d1, let dm1), .setTransport(let p2, let s2, let sm2, let d2, let dm2)):
            p1 == p2 && s1 == s2 && sm1 == sm2 && d1 == d2 && dm1 == dm2
        case (.encap(let e1), .encap(let e2)): e1 === e2
        case (.hint(let m1), .hint(let m2)): m1 === m2
        case (.conntrack(let z1, let n1), .conntrack(let z2, let n2)): z1 == z2 && n1 == n2
        case (.recirculate(let r1), .recirculate(let r2)): r1 == r2
        default: false
        }
    }
}

/// What the driver asks the hardware to hold.
public struct HardwareRuleSpec: Sendable, Equatable {
    /// Match key (masked by `mask`); `in_port` is a PortIndex. Tunnel fields match the
    /// outer headers of packets on the uplink.
    public var key: FlowKey
    public var mask: FlowKey
    public var actions: [HardwareAction]
    /// The caller's identifier for the rule (the datapath's flow), shown in dumps.
    public var cookie: UInt64

    /// The same rule with its key masked (as a held rule's `spec` is).
    public var normalized: HardwareRuleSpec {
        var s = self
        s.key = key.masked(by: mask)
        return s
    }

    public init(key: FlowKey, mask: FlowKey, actions: [HardwareAction], cookie: UInt64 = 0) {
        self.key = key
        self.mask = mask
        self.actions = actions
        self.cookie = cookie
    }
}

/// Why the hardware did not take a rule. A synchronous refusal leaves nothing
/// behind; a late one (asynchronous models) leaves the rule `failed`.
public enum OffloadFailure: Error, Sendable, Equatable, CustomStringConvertible {
    case noSpace(table: String)
    case unsupportedMatch(field: String)
    case unsupportedAction(String)
    case injectedFault
    case legacyMode
    case noSuchPort(PortIndex)
    case notFound
    /// Another rule is installed with the same hardware match (the two flows differ only
    /// where the hardware key does not look): EEXIST, as mlx5 answers a duplicate entry.
    case duplicateMatch
    /// Tunnel preconditions (set by the driver that translates tunnel flows), with the
    /// errno a skip_sw refusal carries: EOPNOTSUPP for what cannot be offloaded, the
    /// route lookup's error for no route (ENETUNREACH, as mlx5 returns it), EAGAIN for
    /// a neighbour still being resolved (transient: mlx5 would even take the rule and
    /// point it at the slow path until the neighbour is valid).
    case tunnel(String, errno: Int32 = 95)

    public var description: String {
        switch self {
        case .noSpace(let t): "no space in \(t) table"
        case .unsupportedMatch(let f): "unsupported match \(f)"
        case .unsupportedAction(let a): "unsupported action \(a)"
        case .injectedFault: "injected fault"
        case .legacyMode: "eswitch is in legacy mode"
        case .noSuchPort(let p): "no eswitch port \(p)"
        case .notFound: "no such hardware rule"
        case .duplicateMatch: "unsupported match: another rule has the same hardware match"
        case .tunnel(let why, _): why
        }
    }

    /// The errno a datapath returns for this failure under skip_sw.
    public var errno: Int32 {
        switch self {
        case .noSpace: 28          // ENOSPC
        case .injectedFault: 5     // EIO
        case .notFound: 2          // ENOENT
        case .duplicateMatch: 17   // EEXIST
        case .tunnel(_, let e): e
        default: 95                // EOPNOTSUPP
        }
    }
}

/// Which physical table a rule lives in.
public enum HardwareTable: String, Sendable {
    case masked
    case exact
    /// Rules matching a recirculation id other than 0 (mlx5's chains): looked up only by
    /// frames a `recirculate` action sent back, with the recirculation id and ct fields
    /// in their key. They draw on the masked table's memory.
    case chain
}

/// Where a rule accepted by the driver is.
public enum HardwareRuleState: Sendable, Equatable {
    /// Accepted (and, under a synchronous model, reserved), waiting for the firmware to
    /// write it: its packets are not handled by the hardware yet.
    case pending
    /// In the data plane.
    case programmed
    /// The hardware refused it after the add had returned (the `async` model, or a
    /// wrong prediction): the flow is installed, the hardware lacks it.
    case failed(OffloadFailure)
}

/// A rule the driver accepted: an immutable match and actions, and what it holds of the
/// hardware (table units, a counter) once reserved. Control thread only.
public final class HardwareRule: ClassifierEntry, @unchecked Sendable {
    public let id: UInt64
    public let cookie: UInt64
    public let actions: [HardwareAction]
    public let table: HardwareTable
    /// Table units taken (IPv6 matches take a double-width masked entry).
    public let units: Int
    /// Encap entries referenced by the actions.
    public let encapEntries: [EncapEntry]
    /// The flow mark of a partial-offload rule; nil once a late refusal let go of it
    /// (a failed rule holds no mark: `marks` counts marks of rules that are written or
    /// on their way).
    public internal(set) var mark: FlowMark?
    /// What the rule holds, rebuilt from the classifier entry (its masked key and the
    /// subtable's shared mask): a stored copy cost two flow keys (448 bytes) a rule.
    public var spec: HardwareRuleSpec { HardwareRuleSpec(key: key, mask: mask.bits, actions: actions, cookie: cookie) }
    /// The hardware counter this rule counts into (valid once `holdsUnits`).
    public internal(set) var counter: UInt32
    public internal(set) var state: HardwareRuleState = .pending
    /// Whether the rule's table units, counter and mask are taken from the hardware.
    var holdsUnits = false
    /// A rule with the same match whose place this one takes when written (mod-flow).
    var replaces: HardwareRule?
    /// The same, read-only: while it is programmed, packets meet it rather than this rule.
    public var replacing: HardwareRule? { replaces }
    /// The rule this one replaced that never reached the data plane: its shared entries
    /// (encaps, mark) are let go once the replacement stands.
    var supersededUnwritten: HardwareRule?
    /// Left the driver's tables (deleted, or superseded by a replacement).
    var retired = false
    /// Deleted, its removal queued behind other writes (it still holds its place).
    var removing = false
    /// Its deleter wants what it counted until the firmware takes it out
    /// (`ESwitch.deleteRuleKeepingCount`).
    var wantsLastCount = false
    /// The driver's caller holds a handle to it (ESwitch: added, not yet deleted or
    /// replaced; a discarded rule has none).
    var handedOut = false
    /// Its place in `HardwareTables.rules` (-1: not held).
    var heldIndex = -1

    convenience init(id: UInt64, spec: HardwareRuleSpec, mask: FlowMask, hash: UInt32? = nil, table: HardwareTable,
                     units: Int, counter: UInt32 = 0) {
        self.init(id: id, key: spec.key, actions: spec.actions, cookie: spec.cookie, mask: mask, hash: hash, table: table,
                  units: units, counter: counter)
    }

    /// The spec's parts, not the spec: a caller that borrows a spec had the compiler copy
    /// it whole (two flow keys) to take the actions out of it; `accept` has them apart.
    /// `facts`: the actions' (`ActionFacts(of: actions)`), when the caller has them.
    init(id: UInt64, key: borrowing FlowKey, actions: [HardwareAction], facts: ActionFacts? = nil, cookie: UInt64,
         mask: FlowMask, hash: UInt32? = nil, table: HardwareTable, units: Int, counter: UInt32 = 0) {
        let facts = facts ?? ActionFacts(of: actions)
        self.facts = facts
        if facts.sharesEntries { (encapEntries, mark) = Self.sharedEntries(of: actions) } else { (encapEntries, mark) = ([], nil) }
        self.id = id
        self.cookie = cookie
        self.actions = actions
        self.table = table
        self.units = units
        self.counter = counter
        // `hash`: the key's under `mask`, when the caller has it (a probe, the rule it replaces).
        // (Not `??`: its autoclosure cannot capture the borrowed key.)
        let keyHash: UInt32
        if let hash { keyHash = hash } else { keyHash = mask.hash(key) }
        super.init(key: copy key, mask: mask, hash: keyHash)
    }

    /// What the driver looks for in a rule's actions besides checking them, found in one
    /// pass (an add-flows hands it the same array for rule after rule: found once for it).
    struct ActionFacts {
        /// A `conntrack` action: the rule counts in its zone's rules.
        var conntrack = false
        /// A `conntrack` or `recirculate` action (what `HardwareTables.checkChain` refuses
        /// on a tunnel match).
        var recirculates = false
        /// An `encap` or `hint` action: the rule holds shared entries.
        var sharesEntries = false

        init(of actions: [HardwareAction]) {
            for i in actions.indices {
                switch actions[i] {
                case .conntrack:
                    conntrack = true
                    recirculates = true
                case .recirculate: recirculates = true
                case .encap, .hint: sharesEntries = true
                default: break
                }
            }
        }
    }

    /// What its actions hold (`ActionFacts`).
    let facts: ActionFacts

    /// The encap entries and the mark `actions` use. (Apart, with the actions borrowed:
    /// iterated in the initializer, which owns them, they were retained twice.)
    private static func sharedEntries(of actions: [HardwareAction]) -> ([EncapEntry], FlowMark?) {
        var encaps: [EncapEntry] = []
        var mark: FlowMark?
        for i in actions.indices {
            if case .encap(let e) = actions[i] { encaps.append(e) }
            if case .hint(let m) = actions[i] { mark = m }
        }
        return (encaps, mark)
    }

    public var isProgrammed: Bool { state == .programmed }

    /// A partial-offload rule: it classifies and marks, software executes.
    public var isHint: Bool { actions.contains { if case .hint = $0 { true } else { false } } }

    /// Whether its counter is the one the data plane counts this match into: once
    /// written, or while it waits to overwrite a rule whose counter it carries on.
    var countsPackets: Bool { isProgrammed || replaces != nil }

    /// The rule as the data plane holds it.
    var programmed: DataPlaneRule {
        DataPlaneRule(table: table, key: key, mask: mask.bits, actions: actions, counter: counter)
    }
}

/// A hardware rule's counters as the driver reads them.
public struct RuleCounters: Sendable, Equatable {
    public var packets: UInt64
    public var bytes: UInt64
    /// CLOCK_MONOTONIC of the last hit, 0 if never.
    public var lastUsedNanoseconds: UInt64

    public init(packets: UInt64 = 0, bytes: UInt64 = 0, lastUsedNanoseconds: UInt64 = 0) {
        self.packets = packets
        self.bytes = bytes
        self.lastUsedNanoseconds = lastUsedNanoseconds
    }
}
