import Classifier
import ESwitch
import ODP
import Packet
import Synchronization

/// Who installed a flow.
public enum FlowOrigin: Sendable {
    /// add-flow from a client: never ages (as in the kernel datapath).
    case user
    /// The built-in `normal` handler: ages after max-idle.
    case normal
}

/// Where a flow's packets are handled.
public enum OffloadState: Sendable, Equatable {
    /// Software only, with the reason it is not in hardware.
    case software(reason: String)
    /// In a hardware table.
    case hardware(HardwareRuleHandle)

    /// Whether the flow has a hardware rule (in any state: pending, programmed, failed).
    public var isOffloaded: Bool { if case .hardware = self { true } else { false } }

    /// The reason a flow has once its rule is taken away (deleted, flushed): it had one.
    public static let ruleRemoved = "hardware rule removed"

    /// The reason a flow was left to software when it was added or changed (not because
    /// its rule was taken away since), nil for one that has or had a rule.
    var reasonLeftInSoftware: String? {
        if case .software(let reason) = self, reason != Self.ruleRemoved { reason } else { nil }
    }
}

/// A datapath flow: an immutable match and actions (a new flow object replaces it on
/// modification), its software counters (packet threads add to them), and its
/// hardware state (control thread).
public final class DatapathFlow: ClassifierEntry, @unchecked Sendable {
    // Stored properties in an order that leaves no padding (8-byte fields, then the
    // small ones; the first fills the 4 bytes after the entry's hash): the object is
    // 264 bytes as malloc gives it (976 with two keys inline).
    /// The flow mark of its partial-offload rule (0: none). Its hardware counter is
    /// not added to the flow's: software counts those packets when it runs them.
    public internal(set) var hintMark: UInt32 = 0
    private let unmaskedKey: KeyBox?
    /// The ufid in halves: a UInt128 field aligns the object to 16 bytes, which the
    /// runtime allocates through posix_memalign (half as fast again as malloc).
    private let ufidLow: UInt64, ufidHigh: UInt64
    public var ufid: UInt128 { UInt128(ufidHigh) << 64 | UInt128(ufidLow) }
    /// The match as given: the classifier entry's masked key and shared mask, plus the
    /// given key only where it had bits outside the mask (rare: storing both 28-word
    /// keys here cost 448 bytes a flow, about half the object).
    public var match: FlowMatch { FlowMatch(key: unmaskedKey?.key ?? key, mask: mask.bits) }
    /// Its actions as bytes, decoded and compiled: one object shared with the flows of
    /// the same actions (an add-flows' flows mostly have them).
    let program: CompiledActions
    public var actionBytes: [UInt8] { program.bytes }
    public var actions: [ODPAction] { program.actions }
    /// `program.compiled`, held here too: packet threads run it in place, where read
    /// through `program` it was a retain and a release per packet.
    let compiled: ContiguousArray<CompiledAction>
    public let createdNanoseconds: UInt64

    let packetCount = Atomic<UInt64>(0)
    let byteCount = Atomic<UInt64>(0)
    let usedNanoseconds = Atomic<UInt64>(0)

    // Control-thread state.
    /// This flow's place in its table's entry order (`FlowTable.inOrder`).
    var tablePosition = -1
    /// The latest read of the current hardware rule's counters.
    var hardwareLatest = RuleCounters()
    /// Counts of hardware rules this flow had before (a rule replaced or removed keeps its traffic here).
    var hardwareCarried: RuleCounters {
        get { history?.carried ?? RuleCounters() }
        set { setHistory(carried: newValue, baseline: hardwareBaseline) }
    }
    /// Carried plus latest at the last clear: the hardware counts before it, subtracted
    /// when reporting (hardware counters cannot be reset, only read).
    var hardwareBaseline: RuleCounters {
        get { history?.baseline ?? RuleCounters() }
        set { setHistory(carried: hardwareCarried, baseline: newValue) }
    }
    /// Carried and baseline counts, out of line: zero for most flows (never replaced nor
    /// cleared), and inline they took 48 bytes of every flow.
    private var history: HardwareHistory?
    /// Tunnel-dependent offload: which encap/decap the flow's hardware rule relies on.
    public internal(set) var tunnelDependency: TunnelDependency? {
        get { tunnelBox?.dependency }
        set { tunnelBox = newValue.map(TunnelDependencyBox.init) }
    }
    /// Out of line: most flows have none, and inline it took 80 bytes of every flow.
    private var tunnelBox: TunnelDependencyBox?
    public internal(set) var offload: OffloadState = .software(reason: "not attempted")
    let tcpFlagsSeen = Atomic<UInt16>(0)
    public let origin: FlowOrigin
    /// Installed under skip_sw: software never runs it (set before the flow is published).
    public internal(set) var hardwareOnly = false

    private func setHistory(carried: RuleCounters, baseline: RuleCounters) {
        let zero = RuleCounters()
        if carried == zero && baseline == zero {
            history = nil
        } else if let h = history {
            h.carried = carried
            h.baseline = baseline
        } else {
            history = HardwareHistory(carried: carried, baseline: baseline)
        }
    }

    /// When the hardware rule last matched, as of the latest counter poll (0: never).
    public var hardwareLastUsedNanoseconds: UInt64 { hardwareLatest.lastUsedNanoseconds }

    /// Why the flow is in software, nil when it is in hardware.
    public var softwareReason: String? {
        if case .software(let why) = offload { return why }
        return nil
    }

    init(ufid: UInt128, match: FlowMatch, program: CompiledActions,
         origin: FlowOrigin, mask: FlowMask, hash: UInt32? = nil, now: UInt64) {
        ufidLow = UInt64(truncatingIfNeeded: ufid)
        ufidHigh = UInt64(truncatingIfNeeded: ufid >> 64)
        // (No bit outside the mask: the key is its masked copy, without making that copy.)
        unmaskedKey = match.key.isSubset(of: match.mask) ? nil : KeyBox(match.key)
        compiled = program.compiled
        self.program = program
        self.origin = origin
        self.createdNanoseconds = now
        // `hash`: the key's under `mask`, when the caller has it (a probe, the flow it replaces).
        super.init(key: match.key, mask: mask, hash: hash ?? mask.hash(match.key))
    }

    @inline(__always)
    func count(bytes: Int, tcpFlags: UInt16, now: UInt64) {
        packetCount.wrappingAdd(1, ordering: .relaxed)
        byteCount.wrappingAdd(UInt64(bytes), ordering: .relaxed)
        usedNanoseconds.store(now, ordering: .relaxed)
        if tcpFlags != 0 { tcpFlagsSeen.bitwiseOr(tcpFlags, ordering: .relaxed) }
    }

    /// Software plus hardware counters, from the last clear on.
    public var stats: FlowStats {
        let hwPackets = hardwareCarried.packets &+ hardwareLatest.packets &- hardwareBaseline.packets
        let hwBytes = hardwareCarried.bytes &+ hardwareLatest.bytes &- hardwareBaseline.bytes
        let hwHit = max(hardwareCarried.lastUsedNanoseconds, hardwareLatest.lastUsedNanoseconds)
        // A hit the clear already saw is no use after it.
        let hwUsed = hwHit > hardwareBaseline.lastUsedNanoseconds ? hwHit : 0
        return FlowStats(packets: packetCount.load(ordering: .relaxed) &+ hwPackets,
                         bytes: byteCount.load(ordering: .relaxed) &+ hwBytes,
                         usedNanoseconds: max(usedNanoseconds.load(ordering: .relaxed), hwUsed),
                         tcpFlags: tcpFlagsSeen.load(ordering: .relaxed))
    }

    /// Carries counters over from the flow this one replaces.
    func inherit(from old: DatapathFlow) {
        packetCount.store(old.packetCount.load(ordering: .relaxed), ordering: .relaxed)
        byteCount.store(old.byteCount.load(ordering: .relaxed), ordering: .relaxed)
        usedNanoseconds.store(old.usedNanoseconds.load(ordering: .relaxed), ordering: .relaxed)
        tcpFlagsSeen.store(old.tcpFlagsSeen.load(ordering: .relaxed), ordering: .relaxed)
        hardwareCarried = RuleCounters(packets: old.hardwareCarried.packets &+ old.hardwareLatest.packets,
                                       bytes: old.hardwareCarried.bytes &+ old.hardwareLatest.bytes,
                                       lastUsedNanoseconds: max(old.hardwareCarried.lastUsedNanoseconds,
                                                                old.hardwareLatest.lastUsedNanoseconds))
        hardwareBaseline = old.hardwareBaseline
    }

    /// Zeroes the software counters and baselines the hardware ones at what they count
    /// now (`hardwareLatest` must be fresh: the caller reads the rule first).
    func clearStats() {
        packetCount.store(0, ordering: .relaxed)
        byteCount.store(0, ordering: .relaxed)
        usedNanoseconds.store(0, ordering: .relaxed)
        tcpFlagsSeen.store(0, ordering: .relaxed)
        hardwareBaseline = RuleCounters(packets: hardwareCarried.packets &+ hardwareLatest.packets,
                                        bytes: hardwareCarried.bytes &+ hardwareLatest.bytes,
                                        lastUsedNanoseconds: max(hardwareCarried.lastUsedNanoseconds,
                                                                 hardwareLatest.lastUsedNanoseconds))
    }

    /// The hardware rule stopped existing: keep what it counted.
    func retireHardwareCounters() {
        hardwareCarried.packets &+= hardwareLatest.packets
        hardwareCarried.bytes &+= hardwareLatest.bytes
        hardwareCarried.lastUsedNanoseconds = max(hardwareCarried.lastUsedNanoseconds, hardwareLatest.lastUsedNanoseconds)
        hardwareLatest = RuleCounters()
    }
}

/// A key kept out of line (DatapathFlow's rarely needed unmasked key).
final class KeyBox: Sendable {
    let key: FlowKey
    init(_ key: FlowKey) { self.key = key }
}

/// A flow's carried and baseline hardware counts (one object per flow, never shared).
private final class HardwareHistory {
    var carried: RuleCounters
    var baseline: RuleCounters
    init(carried: RuleCounters, baseline: RuleCounters) {
        self.carried = carried
        self.baseline = baseline
    }
}

/// A flow's tunnel dependency, kept out of line.
private final class TunnelDependencyBox: Sendable {
    let dependency: TunnelDependency
    init(_ d: TunnelDependency) { dependency = d }
}

/// Flow statistics as the datapath reports them.
public struct FlowStats: Sendable, Equatable {
    public var packets: UInt64
    public var bytes: UInt64
    /// CLOCK_MONOTONIC nanoseconds of the last packet, 0 if never.
    public var usedNanoseconds: UInt64
    public var tcpFlags: UInt16
}

/// What a tunnelled flow's hardware rule depends on, so that the tunnel tracker can
/// re-evaluate it when routes or neighbours change.
public struct TunnelDependency: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        case encap
        case decap
    }
    public var kind: Kind
    /// The tunnel endpoint: remote for encap, the packet's source for decap.
    public var remote: TunnelMetadata

    public init(kind: Kind, remote: TunnelMetadata) {
        self.kind = kind
        self.remote = remote
    }
}
