import Synchronization

/// Datapath-wide lookup statistics (struct ovs_dp_stats and ovs_dp_megaflow_stats).
final class DatapathCounters: @unchecked Sendable {
    private let hits = Atomic<UInt64>(0)
    private let misses = Atomic<UInt64>(0)
    private let losts = Atomic<UInt64>(0)
    private let maskHitCount = Atomic<UInt64>(0)
    private let hardwareOnlyDrops = Atomic<UInt64>(0)

    @inline(__always) func hit() { hits.wrappingAdd(1, ordering: .relaxed) }
    @inline(__always) func miss() { misses.wrappingAdd(1, ordering: .relaxed) }
    @inline(__always) func lost() { losts.wrappingAdd(1, ordering: .relaxed) }
    @inline(__always) func maskHits(_ n: UInt64) { maskHitCount.wrappingAdd(n, ordering: .relaxed) }
    @inline(__always) func hardwareOnlyDrop() { hardwareOnlyDrops.wrappingAdd(1, ordering: .relaxed) }
    var hardwareOnlyDropCount: UInt64 { hardwareOnlyDrops.load(ordering: .relaxed) }

    var snapshot: (hit: UInt64, missed: UInt64, lost: UInt64, maskHit: UInt64) {
        (hits.load(ordering: .relaxed), misses.load(ordering: .relaxed), losts.load(ordering: .relaxed),
         maskHitCount.load(ordering: .relaxed))
    }
}

/// Offload policy per datapath, as OVS's tc-policy.
public enum OffloadPolicy: String, Sendable, CaseIterable {
    /// Try hardware, fall back to software.
    case none
    /// Software only.
    case skipHW = "skip_hw"
    /// Hardware only: a flow the hardware cannot take is refused.
    case skipSW = "skip_sw"
}

/// What the datapath does with a packet no flow matches.
public enum MissMode: String, Sendable, CaseIterable {
    case drop
    case normal
    case controller
}

/// A refused datapath request: errno and message (sent back as a netlink error).
public struct DatapathError: Error, Sendable, Equatable, CustomStringConvertible {
    public let errno: Int32
    public let message: String

    public init(_ errno: Int32, _ message: String) {
        self.errno = errno
        self.message = message
    }

    public var description: String { message }

    static func invalid(_ m: String) -> DatapathError { DatapathError(22, m) }
    static func exists(_ m: String) -> DatapathError { DatapathError(17, m) }
    static func notFound(_ m: String) -> DatapathError { DatapathError(2, m) }
    static func noDevice(_ m: String) -> DatapathError { DatapathError(19, m) }
    static func busy(_ m: String) -> DatapathError { DatapathError(16, m) }
}
