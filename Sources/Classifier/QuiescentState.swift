import Synchronization

/// Quiescent-state-based reclamation, the userspace form of RCU: packet threads never
/// lock; the single control-plane writer publishes new versions and retires old ones,
/// which are released only after every packet thread has passed a quiescent state.
///
/// A reader records the global epoch when it starts a batch (`enter`) and clears its
/// slot before it blocks (`leave`). An object retired at epoch E is released once every
/// reader slot is either 0 (offline) or at least E.
public final class QuiescentState: @unchecked Sendable {
    public static let maximumReaders = 16

    private let epoch = Atomic<UInt64>(1)
    private let slots: UnsafeMutablePointer<Atomic<UInt64>>
    private let registered = Mutex<[Bool]>(Array(repeating: false, count: QuiescentState.maximumReaders))
    private let retired = Mutex<[(epoch: UInt64, release: @Sendable () -> Void)]>([])

    /// The process-wide domain shared by the datapath and the eSwitch.
    public static let shared = QuiescentState()

    public init() {
        // One cache line per reader so that readers do not share lines.
        slots = .allocate(capacity: QuiescentState.maximumReaders * 8)
        for i in 0..<(QuiescentState.maximumReaders * 8) { (slots + i).initialize(to: Atomic(0)) }
    }

    deinit {
        slots.deinitialize(count: QuiescentState.maximumReaders * 8)
        slots.deallocate()
    }

    /// A reader's identity. Packet threads register once and keep their token.
    public struct Reader: Sendable, Hashable {
        public let index: Int
    }

    public func registerReader() -> Reader {
        registered.withLock { used in
            guard let i = used.firstIndex(of: false) else {
                fatalError("more than \(QuiescentState.maximumReaders) packet threads")
            }
            used[i] = true
            return Reader(index: i)
        }
    }

    public func unregister(_ r: Reader) {
        leave(r)
        registered.withLock { $0[r.index] = false }
    }

    /// Marks the start of a read-side section (a packet batch). Cheap: one load, one store.
    @inlinable @inline(__always)
    public func enter(_ r: Reader) {
        enterSlow(r)
    }

    @usableFromInline
    func enterSlow(_ r: Reader) {
        let e = epoch.load(ordering: .sequentiallyConsistent)
        slots[r.index * 8].store(e, ordering: .sequentiallyConsistent)
    }

    /// Marks the reader offline (before it sleeps in epoll_wait).
    public func leave(_ r: Reader) {
        slots[r.index * 8].store(0, ordering: .releasing)
    }

    /// Defers `release` until no reader can still hold what was just unpublished.
    /// Call after the new version is published.
    public func retire(_ release: @escaping @Sendable () -> Void) {
        let e = epoch.add(1, ordering: .sequentiallyConsistent).newValue
        retired.withLock { $0.append((e, release)) }
    }

    /// Releases what every reader has moved past. Called from the control loop.
    @discardableResult
    public func reclaim() -> Int {
        var oldest = UInt64.max
        for i in 0..<QuiescentState.maximumReaders {
            let v = slots[i * 8].load(ordering: .sequentiallyConsistent)
            if v != 0 { oldest = min(oldest, v) }
        }
        let ready = retired.withLock { list -> [@Sendable () -> Void] in
            var ready: [@Sendable () -> Void] = []
            list.removeAll { item in
                if item.epoch <= oldest {
                    ready.append(item.release)
                    return true
                }
                return false
            }
            return ready
        }
        for r in ready { r() }
        return ready.count
    }

    /// Number of objects waiting for a grace period.
    public var pending: Int { retired.withLock { $0.count } }

    /// Waits for a grace period and releases everything retired so far.
    public func synchronize() {
        let target = epoch.add(1, ordering: .sequentiallyConsistent).newValue
        while true {
            var done = true
            for i in 0..<QuiescentState.maximumReaders {
                let v = slots[i * 8].load(ordering: .sequentiallyConsistent)
                if v != 0 && v < target { done = false }
            }
            if done { break }
            sched_yield_portable()
        }
        reclaim()
    }
}

#if canImport(Glibc)
import Glibc
@inline(__always) func sched_yield_portable() { _ = sched_yield() }
#else
@inline(__always) func sched_yield_portable() {}
#endif
