import CNetLinux
import Synchronization

/// Where the daemon's threads run while a client streams a bulk of requests (a flow
/// file): the helper thread (the BPF writer) on the client's CPU, beside it, and the
/// control thread on the others. The client keeps to its CPU while it streams (`CPUPin`):
/// otherwise the scheduler moves it onto the control thread's, whose CPU now looks the
/// less busy. (The heap prefault is left to the scheduler: pinned beside the client it ran
/// two to three times longer.)
///
/// The control thread is the bound of a bulk add. Left to the scheduler, the helpers woke
/// on its CPU as often as not, and it waited for its CPU 0.1 to 0.3 s of a 2.4 s
/// million-flow add (`schedstat`); the client, parsing ahead of the daemon, has time to
/// spare beside them. The control thread names the CPU when a stream starts (`prefer`)
/// and gives it up when the stream is over; each thread applies a change to itself
/// (`Follower`) before its next piece of work, so that no thread sets another's affinity.
public final class HelperPlacement: Sendable {
    public static let shared = HelperPlacement()

    /// The helpers' CPU; -1: every thread wherever its affinity allowed before.
    private let preferred = Atomic<Int32>(-1)

    public init() {}

    public func prefer(_ cpu: Int32) { preferred.store(cpu, ordering: .relaxed) }
    public var current: Int32 { preferred.load(ordering: .relaxed) }

    /// One thread's side: the CPU it applied, and its affinity from before.
    public final class Follower {
        /// On the helpers' CPU (a helper), or off it (the control thread).
        private let off: Bool
        private var applied: Int32 = -1
        private let saved = UnsafeMutableRawPointer.allocate(byteCount: 128, alignment: 8)
        private var hasSaved: Int32 = 0

        public init(off: Bool = false) { self.off = off }
        deinit { saved.deallocate() }

        /// Applies a change of the helpers' CPU to the calling thread (cheap otherwise: an
        /// atomic load). A CPU its affinity does not allow is not taken.
        public func follow(_ placement: HelperPlacement = .shared) {
            let want = placement.current
            guard want != applied else { return }
            applied = want
            _ = cnl_pin_self(want, off ? 1 : 0, saved, &hasSaved)
        }
    }
}

/// The calling thread kept to the CPU it runs on until `release` (or deinit): its
/// affinity before is given back then.
public final class CPUPin {
    private let saved = UnsafeMutableRawPointer.allocate(byteCount: 128, alignment: 8)
    private var hasSaved: Int32 = 0

    public init() { _ = cnl_pin_self(cnl_current_cpu(), 0, saved, &hasSaved) }

    public func release() {
        _ = cnl_pin_self(-1, 0, saved, &hasSaved)
        hasSaved = 0
    }

    deinit {
        release()
        saved.deallocate()
    }
}
