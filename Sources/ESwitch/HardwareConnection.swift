import Packet

// The hardware CT table (mlx5's CT offload): an established connection the tracker
// hands to the driver becomes two entries, one per direction, each keyed by the zone
// and the 5-tuple its packets carry at the ct action, giving them the ct_state, mark
// and label software would, and the direction's NAT rewrite. Each entry counts into its
// own hardware counter (the tracker keeps counts per direction).

/// The zone and 5-tuple a packet of one direction carries when it meets `ct`.
public struct ConnectionTuple: Sendable, Hashable {
    public var zone: UInt16
    public var proto: UInt8
    public var isIPv6: Bool
    /// IPv4 in the low 32 bits.
    public var src: UInt128
    public var dst: UInt128
    public var srcPort: UInt16
    public var dstPort: UInt16

    public init(zone: UInt16, proto: UInt8, isIPv6: Bool, src: UInt128, dst: UInt128, srcPort: UInt16, dstPort: UInt16) {
        self.zone = zone
        self.proto = proto
        self.isIPv6 = isIPv6
        self.src = src
        self.dst = dst
        self.srcPort = srcPort
        self.dstPort = dstPort
    }
}

/// What NAT does to one direction's packets: the fields it sets (nil: unchanged).
public struct ConnectionRewrite: Sendable, Equatable {
    public var src: UInt128?
    public var dst: UInt128?
    public var srcPort: UInt16?
    public var dstPort: UInt16?

    public init(src: UInt128? = nil, dst: UInt128? = nil, srcPort: UInt16? = nil, dstPort: UInt16? = nil) {
        self.src = src
        self.dst = dst
        self.srcPort = srcPort
        self.dstPort = dstPort
    }

    public var isEmpty: Bool { src == nil && dst == nil && srcPort == nil && dstPort == nil }
}

/// One direction of a connection as the silicon holds it.
public struct ConnectionDirection: Sendable, Equatable {
    public var tuple: ConnectionTuple
    /// The ct_state bits (OVS_CS_F_*) its packets get: +trk+est, +rpl for replies, +snat/+dnat.
    public var state: UInt8
    public var rewrite: ConnectionRewrite

    public init(tuple: ConnectionTuple, state: UInt8, rewrite: ConnectionRewrite = ConnectionRewrite()) {
        self.tuple = tuple
        self.state = state
        self.rewrite = rewrite
    }

    /// OVS_CS_F_SRC_NAT | OVS_CS_F_DST_NAT (bpf/esw_shared.h ESW_CS_NAT).
    public static let natState: UInt8 = 0xc0

    /// The ct_state a lookup gives: a ct() without nat neither rewrites the packet nor
    /// sets +snat/+dnat, as in OVS and the kernel (bpf/ct.h ct_lookup).
    public func state(withNAT: Bool) -> UInt8 { withNAT ? state : state & ~Self.natState }
}

/// What the driver asks the hardware to track: a connection of the software tracker.
public struct HardwareConnectionSpec: Sendable, Equatable {
    /// The tracker's id for the connection.
    public var id: UInt64
    public var original: ConnectionDirection
    public var reply: ConnectionDirection
    public var mark: UInt32
    public var label: UInt128

    public init(id: UInt64, original: ConnectionDirection, reply: ConnectionDirection, mark: UInt32 = 0, label: UInt128 = 0) {
        self.id = id
        self.original = original
        self.reply = reply
        self.mark = mark
        self.label = label
    }
}

/// A connection as the data plane holds it: both directions and their counters.
public struct DataPlaneConnection: Sendable, Equatable {
    public var spec: HardwareConnectionSpec
    public var originalCounter: UInt32
    public var replyCounter: UInt32

    public init(spec: HardwareConnectionSpec, originalCounter: UInt32, replyCounter: UInt32) {
        self.spec = spec
        self.originalCounter = originalCounter
        self.replyCounter = replyCounter
    }
}

/// A connection in the hardware CT table.
public final class HardwareConnection: @unchecked Sendable {
    public let spec: HardwareConnectionSpec
    public let originalCounter: UInt32
    public let replyCounter: UInt32
    public var id: UInt64 { spec.id }

    init(spec: HardwareConnectionSpec, originalCounter: UInt32, replyCounter: UInt32) {
        self.spec = spec
        self.originalCounter = originalCounter
        self.replyCounter = replyCounter
    }

    var programmed: DataPlaneConnection {
        DataPlaneConnection(spec: spec, originalCounter: originalCounter, replyCounter: replyCounter)
    }
}

/// What the driver's poll reads of an offloaded connection.
public struct ConnectionActivity: Sendable, Equatable {
    public var id: UInt64
    public var original: RuleCounters
    public var reply: RuleCounters
    /// The pipeline saw a TCP FIN or RST of it and sent that packet (and will send all
    /// its packets) up the representor: software must tear it down.
    public var handedBack: Bool

    public init(id: UInt64, original: RuleCounters, reply: RuleCounters, handedBack: Bool) {
        self.id = id
        self.original = original
        self.reply = reply
        self.handedBack = handedBack
    }

    /// The last packet of either direction (CLOCK_MONOTONIC ns, 0: none yet).
    public var lastUsedNanoseconds: UInt64 { max(original.lastUsedNanoseconds, reply.lastUsedNanoseconds) }
}

/// What the pipeline's CT stage did with frames (bpf/ct.h), summed over CPUs.
public struct ConntrackPipelineCounters: Sendable, Equatable {
    /// Frames whose tuple had a CT entry.
    public var hits: UInt64 = 0
    /// No CT entry: up the representor unmodified.
    public var misses: UInt64 = 0
    /// A TCP FIN or RST (or a packet of a connection handed back): up unmodified.
    public var handBacks: UInt64 = 0
    /// No rule in the chain: up unmodified.
    public var chainMisses: UInt64 = 0
    /// More recirculations than the hardware does: up unmodified.
    public var tooDeep: UInt64 = 0

    public init(hits: UInt64 = 0, misses: UInt64 = 0, handBacks: UInt64 = 0, chainMisses: UInt64 = 0, tooDeep: UInt64 = 0) {
        self.hits = hits
        self.misses = misses
        self.handBacks = handBacks
        self.chainMisses = chainMisses
        self.tooDeep = tooDeep
    }
}

/// Why connections stayed in software, by reason (the `ct` resource's refusals).
public struct ConnectionRefusals: Sendable, Equatable {
    /// The CT table (or the counters) had no room.
    public var full: UInt64 = 0
    /// The hardware cannot track it (protocol, IPv6 NAT, a duplicate tuple).
    public var unsupported: UInt64 = 0
    /// The data plane refused the write.
    public var writeFailed: UInt64 = 0
    /// No hardware rule looks connections of its zone up (its flows are in software).
    public var noRule: UInt64 = 0

    public init() {}
}
