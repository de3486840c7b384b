import Glibc
import NetLinux

/// One kernel write at a time on a thread of its own. The kernel's insert of a bulk of
/// rules (BPF_MAP_UPDATE_BATCH, about a microsecond a rule into a large table) is the
/// largest single cost of an add-flows; on this thread it overlaps the control thread's
/// work on the next bulk (decode, classify, account, prepare). The control thread
/// starts a write and later collects its outcome; nothing else runs here.
final class BulkWriter: @unchecked Sendable {
    typealias Outcome = (written: Int, errno: Int32)
    /// A write: the syscalls only, on data nobody else touches until it is collected.
    typealias Write = @Sendable () -> Outcome

    // Handed over through the semaphores (sem_post/sem_wait order the memory).
    private var pending: Write?
    private var outcome: Outcome = (0, 0)
    private var stopping = false
    private let posted = UnsafeMutablePointer<sem_t>.allocate(capacity: 1)
    private let done = UnsafeMutablePointer<sem_t>.allocate(capacity: 1)
    private var thread: PacketThread?
    /// A write was started and its outcome not collected yet (control thread only).
    private(set) var busy = false
    /// This thread's niceness (eswd runs as root; a process that may not raise its
    /// priority keeps 0).
    static let nice: Int32 = -5

    init() throws(SystemError) {
        sem_init(posted, 0, 0)
        sem_init(done, 0, 0)
        thread = try PacketThread.spawn(name: "esw-bpf-write") { [self] in run() }
    }

    deinit {
        sem_destroy(posted)
        sem_destroy(done)
        posted.deallocate()
        done.deallocate()
    }

    /// Collects a write in flight, then ends the thread (which holds this object until then).
    func stop() {
        guard let t = thread else { return }
        _ = collect()
        stopping = true
        sem_post(posted)
        t.join()
        thread = nil
    }

    /// Starts `write` on the thread; the previous one must have been collected.
    func start(_ write: @escaping Write) {
        precondition(!busy && thread != nil, "BulkWriter: a write is already in flight")
        pending = write
        busy = true
        sem_post(posted)
    }

    /// Waits for the write in flight and returns its outcome; nil when none is.
    func collect() -> Outcome? {
        guard busy else { return nil }
        while sem_wait(done) != 0 {}
        busy = false
        return outcome
    }

    /// The outcome of the write in flight if it is done, without waiting; nil when it is
    /// still running (or none is in flight).
    func collectIfDone() -> Outcome? {
        guard busy, sem_trywait(done) == 0 else { return nil }
        busy = false
        return outcome
    }

    private func run() {
        // The control thread waits for this one at the end of each run of requests (its
        // replies go once its rules are in the tables): ahead of the client and the
        // prefault thread on their CPU. 1M add: this thread's wait for a CPU 440-500 ms
        // at nice 0, 320-370 ms at -5 (the control thread's 107-201 against 59-122 ms).
        _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), id_t(Sys.threadID()), Self.nice)
        let placement = HelperPlacement.Follower()
        while true {
            while sem_wait(posted) != 0 {}
            if stopping { return }
            placement.follow()
            outcome = pending!()
            pending = nil
            sem_post(done)
        }
    }
}
