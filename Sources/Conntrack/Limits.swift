/// Connection limits: the global maximum (OVS's ct_maxconns, default 3,000,000) and
/// per-zone limits with a default for zones without their own (dpctl/ct-set-limits).
/// A commit over a limit fails: the packet stays trk|new with no connection, as OVS's
/// conn_not_found returns without one.
struct Limits: Sendable {
    var maxConnections: UInt32 = 3_000_000
    /// The limit for zones without their own; 0: none.
    var defaultLimit: UInt32 = 0
    var zoneLimits: [UInt16: UInt32] = [:]
    var counts: [LimitBucket: UInt32] = [:]

    /// The bucket a commit in `zone` counts against.
    func bucket(for zone: UInt16) -> LimitBucket {
        if zoneLimits[zone] != nil { return .zone(zone) }
        return defaultLimit != 0 ? .defaultLimit : .none
    }

    func limit(of bucket: LimitBucket) -> UInt32 {
        switch bucket {
        case .zone(let z): zoneLimits[z] ?? 0
        case .defaultLimit: defaultLimit
        case .none: 0
        }
    }

    /// Whether one more connection fits in `bucket`; a limit of 0 means none.
    func admits(_ bucket: LimitBucket) -> Bool {
        let l = limit(of: bucket)
        return l == 0 || counts[bucket, default: 0] < l
    }

    mutating func add(_ bucket: LimitBucket) { if bucket != .none { counts[bucket, default: 0] += 1 } }
    mutating func remove(_ bucket: LimitBucket) {
        if bucket != .none, let c = counts[bucket], c > 0 { counts[bucket] = c - 1 }
    }
}

/// One line of ct-get-limits.
public struct CTZoneLimit: Sendable, Equatable {
    public var zone: UInt16
    public var limit: UInt32
    public var count: UInt32
    public init(zone: UInt16, limit: UInt32, count: UInt32) {
        self.zone = zone
        self.limit = limit
        self.count = count
    }
}
