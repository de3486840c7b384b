import Classifier
import NetLinux
import Packet
import Synchronization

/// The driver's path from an offload request to the hardware tables. The tables are
/// the truth (a rule is in them or not, and the answer is immediate); what the offload
/// model, latency and intake rate change is how long the caller waits, which is what
/// they cost a real driver.
final class OffloadEngine: @unchecked Sendable {
    let tables: HardwareTables
    var params: DeviceParams {
        didSet { if params.offloadModel != oldValue.offloadModel || params.prefetchBatch != oldValue.prefetchBatch { resetModel() } }
    }

    // prefetch: entries reserved by the last hardware access.
    private var prefetched = 0
    // credit: a bucket refilled by the "firmware" thread.
    private let credits = Mutex<Int>(0)
    private let refillWakeup: Wakeup?
    private let stopRefill = Atomic<Bool>(false)
    private var refillThread: PacketThread?
    // intake: token bucket.
    private var intakeTokens: Double = 0
    private var intakeStamp: UInt64 = Sys.monotonicNanoseconds()

    /// Statistics: hardware accesses made on the caller's path and time spent waiting.
    private(set) var hardwareAccesses: UInt64 = 0
    private(set) var waitedNanoseconds: UInt64 = 0
    private(set) var operations: UInt64 = 0

    init(tables: HardwareTables, params: DeviceParams) {
        self.tables = tables
        self.params = params
        refillWakeup = try? Wakeup()
        startRefillThread()
    }

    deinit {
        stopRefill.store(true, ordering: .relaxed)
        refillWakeup?.signal()
        refillThread?.join()
    }

    private func resetModel() {
        prefetched = 0
        credits.withLock { $0 = 0 }
        refillWakeup?.signal()
    }

    private func startRefillThread() {
        guard let w = refillWakeup else { return }
        let fd = w.fd.raw
        refillThread = try? PacketThread.spawn(name: "esw-credits") { [self] in
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            while !stopRefill.load(ordering: .relaxed) {
                let p = params
                if p.offloadModel == .credit {
                    let low = credits.withLock { $0 } < max(1, p.prefetchBatch / 4)
                    if low {
                        // One hardware access reserves a bucket's worth of entries.
                        spin(microseconds: p.hardwareLatencyMicroseconds)
                        credits.withLock { $0 = p.prefetchBatch }
                        continue
                    }
                }
                _ = poll(&pfd, 1, 5)
                w.drain()
            }
        }
    }

    /// Waits what the current model says one operation costs on the caller's path.
    private func payForOperation() {
        let start = Sys.monotonicNanoseconds()
        operations += 1
        let latency = params.hardwareLatencyMicroseconds
        switch params.offloadModel {
        case .lockstep:
            hardwareAccesses += 1
            spin(microseconds: latency)
        case .prefetch:
            if prefetched == 0 {
                hardwareAccesses += 1
                spin(microseconds: latency)
                prefetched = params.prefetchBatch
            }
            prefetched -= 1
        case .credit:
            while true {
                let got = credits.withLock { c -> Bool in
                    if c > 0 { c -= 1; return true }
                    return false
                }
                if got { break }
                refillWakeup?.signal()
                sched_yield()
            }
            refillWakeup?.signal()
        case .predictive:
            break
        }
        throttleIntake()
        waitedNanoseconds += Sys.monotonicNanoseconds() - start
    }

    /// Blocks until the intake rate admits one more operation.
    private func throttleIntake() {
        let rate = params.intakeRate
        guard rate > 0 else { return }
        while true {
            let now = Sys.monotonicNanoseconds()
            intakeTokens = min(Double(rate) / 100 + 1, intakeTokens + Double(now - intakeStamp) * Double(rate) / 1e9)
            intakeStamp = now
            if intakeTokens >= 1 {
                intakeTokens -= 1
                return
            }
            let waitNs = UInt64((1 - intakeTokens) / Double(rate) * 1e9)
            spin(microseconds: Int(max(1, waitNs / 1000)))
        }
    }

    func add(_ spec: HardwareRuleSpec) -> Result<HardwareRule, OffloadFailure> {
        if params.failNextOffloads > 0 {
            params.failNextOffloads -= 1
            return .failure(.injectedFault)
        }
        payForOperation()
        return tables.insert(spec)
    }

    func remove(_ rule: HardwareRule) -> Bool {
        payForOperation()
        return tables.remove(rule)
    }

    func rewriteEncap(_ e: EncapEntry, header: VXLAN.EncapTemplate) {
        payForOperation()
        tables.rewriteEncap(e, header: header)
    }

    /// Make-before-break: the new rule is in place before the old one goes.
    func replace(_ old: HardwareRule, with spec: HardwareRuleSpec) -> Result<HardwareRule, OffloadFailure> {
        if params.failNextOffloads > 0 {
            params.failNextOffloads -= 1
            return .failure(.injectedFault)
        }
        payForOperation()
        return tables.replace(old, with: spec)
    }
}

/// Waits `microseconds`: spins for short waits (sleep granularity is too coarse), sleeps for long ones.
func spin(microseconds: Int) {
    guard microseconds > 0 else { return }
    if microseconds >= 500 {
        usleep(UInt32(microseconds))
        return
    }
    let end = Sys.monotonicNanoseconds() + UInt64(microseconds) * 1000
    while Sys.monotonicNanoseconds() < end {}
}
