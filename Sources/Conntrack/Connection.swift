/// Per-protocol state of a connection (OVS keeps one struct per l4 protocol class).
enum ProtocolState: Sendable {
    case tcp(TCPConnection)
    /// ICMP echo/timestamp/info: whether a reply was seen.
    case icmp(replied: Bool)
    /// UDP and other protocols: first, multiple (one direction), bidirectional.
    case other(OtherState)

    enum OtherState: Sendable { case first, multiple, bidirectional }

    /// Seen established both ways: the condition for hardware offload (mlx5 offloads
    /// established/assured connections only).
    var isEstablished: Bool {
        switch self {
        case .tcp(let t): t.isEstablished
        case .icmp(let replied): replied
        case .other(let s): s == .bidirectional
        }
    }
}

/// The NAT a connection was committed with (OVS's nat_action, address part).
enum NATDirection: Sendable { case none, source, destination
    var reversed: NATDirection {
        switch self {
        case .none: .none
        case .source: .destination
        case .destination: .source
        }
    }
    var ctState: CTState {
        switch self {
        case .none: []
        case .source: .sourceNAT
        case .destination: .destinationNAT
        }
    }
}

struct Connection: Sendable {
    let id: UInt32
    /// The original direction's tuple, as the first packet carried it.
    var original: CTTuple
    /// What reply packets carry: the original reversed, with NAT applied.
    var reply: CTTuple
    var nat: NATDirection = .none
    var mark: UInt32 = 0
    var label: UInt128 = 0
    var proto: ProtocolState
    /// Monotonic nanoseconds after which the connection is gone.
    var expiration: UInt64
    /// The zone-limit bucket it was admitted under (a zone with its own limit, or the default).
    var limitBucket: LimitBucket
    var packets: (orig: UInt64, reply: UInt64) = (0, 0)
    var bytes: (orig: UInt64, reply: UInt64) = (0, 0)
    /// Counters reported by hardware since the connection was offloaded (cumulative).
    var hardwarePackets: (orig: UInt64, reply: UInt64) = (0, 0)
    var hardwareBytes: (orig: UInt64, reply: UInt64) = (0, 0)
    var offloaded = false
    /// An .established event was sent (a .removed is owed when it goes).
    var reportedEstablished = false
    /// The current .established event stands (not handed back since).
    var announced = false
    /// Handed back by hardware: no new .established until it was seen not established.
    var heldBack = false
    /// Established, announced and not in hardware (refused, or dropped by the eSwitch):
    /// its first packet from this time (tracker clock) reports it again, as act_ct
    /// retries offload; nil: not retried (in hardware, a report outstanding, or the
    /// hardware can never hold it).
    var offloadRetryAt: UInt64?

    var timeoutPolicy: CTTimeout

    func timeoutLeft(now: UInt64) -> UInt32 {
        expiration > now ? UInt32(clamping: (expiration - now) / 1_000_000_000) : 0
    }
}

enum LimitBucket: Hashable, Sendable { case zone(UInt16), defaultLimit, none }
