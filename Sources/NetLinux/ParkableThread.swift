import Synchronization

/// A packet thread the control thread can park (to change what it polls while it is
/// not looking), resume and stop. The thread's loop calls `checkpoint` once a round;
/// `wakeup` belongs in the loop's poll set so that requests are seen at once.
public final class ParkableThread: @unchecked Sendable {
    public let wakeup: Wakeup
    /// 0 run, 1 park requested, 2 parked, 3 stop.
    private let state = Atomic<Int>(0)
    private var thread: PacketThread?

    public init() throws(SystemError) {
        wakeup = try Wakeup()
    }

    public func start(name: String, _ body: @escaping @Sendable () -> Void) throws(SystemError) {
        thread = try PacketThread.spawn(name: name) { body() }
    }

    public func stop() {
        state.store(3, ordering: .sequentiallyConsistent)
        wakeup.signal()
        thread?.join()
        thread = nil
    }

    /// Asks the thread to park and waits until it has.
    public func pause() {
        guard thread != nil else { return }
        state.store(1, ordering: .sequentiallyConsistent)
        wakeup.signal()
        while state.load(ordering: .sequentiallyConsistent) != 2 { sched_yield() }
    }

    public func resume() {
        guard thread != nil else { return }
        state.store(0, ordering: .sequentiallyConsistent)
        wakeup.signal()
    }

    /// On the thread: false when it must exit. When parking is requested, runs
    /// `parking` (e.g. leave an RCU read side) and blocks until resumed or stopped.
    @inline(__always)
    public func checkpoint(parking: () -> Void) -> Bool {
        let s = state.load(ordering: .acquiring)
        if s == 0 { return true }
        if s == 3 { return false }
        parking()
        state.store(2, ordering: .sequentiallyConsistent)
        while state.load(ordering: .acquiring) == 2 {
            var pfd = pollfd(fd: wakeup.fd.raw, events: Int16(POLLIN), revents: 0)
            _ = poll(&pfd, 1, 100)
            wakeup.drain()
        }
        return state.load(ordering: .acquiring) != 3
    }
}
