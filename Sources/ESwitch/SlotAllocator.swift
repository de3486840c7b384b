/// Indexes into a data-plane array (counters, encap entries, masks, action sets): a
/// freed index is reused only after a grace period, so that a packet still running with
/// the old rule in the kernel never counts into, or reads, its successor's slot.
public struct SlotAllocator: Sendable {
    private var next: UInt32 = 0
    private var free: [UInt32] = []
    private var retired: [(slot: UInt32, at: UInt64)] = []
    private var retiredHead = 0
    private(set) var capacity: UInt32
    /// Long enough for any packet in flight (a tc program runs for microseconds).
    public static let graceNanoseconds: UInt64 = 50_000_000

    public init(capacity: UInt32) { self.capacity = capacity }

    public mutating func allocate(now: UInt64) -> UInt32? {
        freeDue(now: now)
        if let s = free.popLast() { return s }
        guard next < capacity else { return nil }
        defer { next += 1 }
        return next
    }

    public mutating func release(_ slot: UInt32, now: UInt64) {
        retired.append((slot, now))
    }

    /// Frees the slots whose grace period is over; returns them (the ones freed by this
    /// call) as an array of their own: a slice would share `free`'s storage, and the next
    /// allocation would copy the whole free list.
    @discardableResult
    public mutating func reclaim(now: UInt64) -> [UInt32] {
        let before = free.count
        freeDue(now: now)
        return free.count > before ? Array(free[before...]) : []
    }

    /// `reclaim` without the array of the slots freed (its release, even of an empty
    /// one, was a call at every allocation).
    private mutating func freeDue(now: UInt64) {
        while retiredHead < retired.count, now &- retired[retiredHead].at >= SlotAllocator.graceNanoseconds {
            free.append(retired[retiredHead].slot)
            retiredHead += 1
        }
        if retiredHead > 1024 && retiredHead * 2 > retired.count {
            retired.removeFirst(retiredHead)
            retiredHead = 0
        }
    }

    /// Whether slots wait for their grace period (only then does reclaiming need the time).
    public var hasRetired: Bool { retiredHead < retired.count }

    /// The data plane's array grew.
    public mutating func grow(to n: UInt32) { capacity = max(capacity, n) }

    /// Highest index ever handed out, plus one.
    public var highWater: UInt32 { next }
}
