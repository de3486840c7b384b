/// The NIC's firmware as its driver sees it: a work queue of rule commands and one
/// hardware access at a time. A bulk of up to `program_batch` commands costs one access
/// of `hw_latency_us` (longer if `intake_rate` admits fewer rules per second); a credit
/// refill costs one occupancy query of `hw_query_latency_us` and goes before waiting
/// bulks. An access starts when a bulk is full, or, once the driver rings the doorbell
/// (it has nothing else to do), with whatever is queued.
///
/// It only keeps time: the engine executes an access's commands when it completes, on
/// the control thread, which is what makes their effect (data plane writes, accounting)
/// need no lock.
struct Firmware {
    enum Command {
        case program(HardwareRule)
        case remove(HardwareRule)
    }

    struct Access {
        var commands: [Command]
        var refill: Bool
        var completion: UInt64
    }

    var params: DeviceParams
    private var queue: [Command] = []
    private var queueHead = 0
    private var current: Access?
    /// When the previous access completed: the next one cannot start before.
    private var freeAt: UInt64 = 0
    private var doorbell = false
    /// The driver wants its credit buckets refilled.
    var refillWanted = false

    init(params: DeviceParams) { self.params = params }

    var queuedCount: Int { queue.count - queueHead }
    /// The commands not done yet: the access under way, then the queue.
    var outstanding: [Command] { (current?.commands ?? []) + queue[queueHead...] }
    var inFlightCount: Int { current?.commands.count ?? 0 }
    var refillInFlight: Bool { current?.refill ?? false }
    var isIdle: Bool { current == nil && queuedCount == 0 && !refillWanted }
    var nextCompletion: UInt64? { current?.completion }

    /// Removals queued or under way: the units they free are the driver's to hand out
    /// (the firmware does them before any write queued later).
    private(set) var removals = 0

    mutating func enqueue(_ c: Command) {
        if case .remove = c { removals += 1 }
        queue.append(c)
    }

    private static func removalCount(_ commands: some Sequence<Command>) -> Int {
        commands.reduce(0) { n, c in if case .remove = c { n + 1 } else { n } }
    }

    /// Drops every queued command: the rules they were for are gone (a flush, as a NIC
    /// destroying a flow table cancels what was queued for it). The access in flight
    /// completes; its commands for gone rules are skipped.
    mutating func discardQueued() {
        removals -= Self.removalCount(queue[queueHead...])
        queue.removeAll()
        queueHead = 0
        doorbell = false
    }

    /// Lets the next access start with a partial bulk (until the queue runs dry).
    mutating func ringDoorbell() { if queuedCount > 0 { doorbell = true } }

    /// Starts an access if none is running and there is work that may start.
    mutating func start(now: UInt64, partial: Bool) {
        guard current == nil else { return }
        let begin = max(now, freeAt)
        if refillWanted {
            refillWanted = false
            current = Access(commands: [], refill: true, completion: begin + nanoseconds(params.queryLatencyMicroseconds))
            return
        }
        let batch = max(1, params.programBatch)
        let n = min(batch, queuedCount)
        guard n > 0, n == batch || partial || doorbell else { return }
        let commands = Array(queue[queueHead..<queueHead + n])
        queueHead += n
        if queueHead == queue.count {
            queue.removeAll(keepingCapacity: queue.count < 1 << 16)
            queueHead = 0
            doorbell = false
        } else if queueHead > 4096 && queueHead * 2 > queue.count {
            queue.removeFirst(queueHead)
            queueHead = 0
        }
        var duration = nanoseconds(params.hardwareLatencyMicroseconds)
        if params.intakeRate > 0 { duration = max(duration, UInt64(n) * 1_000_000_000 / UInt64(params.intakeRate)) }
        current = Access(commands: commands, refill: false, completion: begin + duration)
    }

    /// The current access, now completed.
    mutating func complete() -> Access {
        let a = current!
        current = nil
        freeAt = a.completion
        removals -= Self.removalCount(a.commands)
        return a
    }

    private func nanoseconds(_ us: Int) -> UInt64 { UInt64(max(0, us)) * 1000 }
}
