/// How the driver reserves hardware resources for an offload and when it programs
/// them ("Hardware resource management for network function offload"). Every model
/// but `async` answers synchronously whether the hardware will hold the rule; they
/// differ in how much hardware latency the caller waits for.
public enum OffloadModel: String, Sendable, CaseIterable {
    /// Reserve and program each rule synchronously: every offload waits one access.
    case lockstep
    /// Reserve `prefetch_batch` entries per synchronous access (every Nth offload
    /// waits); program asynchronously.
    case prefetch
    /// A bucket of reserved credits refilled asynchronously below a low-water mark,
    /// large while the table has room and smaller as it fills; offloads wait only when
    /// it is empty; program asynchronously.
    case credit
    /// An occupancy model answers (`predictive_model`); no access on the offload path;
    /// program asynchronously. A refusal at programming time is a wrong prediction.
    case predictive
    /// Success at once, program later; a refusal then reaches no caller (the kernel's
    /// FIB offload before synchronous feedback).
    case async

    /// Whether an add returns before the rule is in the data plane.
    public var programsAsynchronously: Bool { self != .lockstep }
}

/// The occupancy model of `predictive`.
public enum PredictiveModel: String, Sendable, CaseIterable {
    /// Hard limits per object type, like a driver resource profile: never wrong, never
    /// fills the table.
    case flat
    /// Each rule mapped to what it really takes (table, width, shared memory, counters,
    /// masks), overestimating when unsure.
    case complex
}

/// Driver parameters, shown and set the devlink way (`dev param show|set`).
public struct DeviceParams: Sendable, Equatable {
    /// Cost of one hardware access, in microseconds.
    public var hardwareLatencyMicroseconds: Int = 0
    /// Hardware operations accepted per second (0: unlimited).
    public var intakeRate: Int = 0
    /// Fail this many upcoming rule additions with an injected fault.
    public var failNextOffloads: Int = 0
    /// How often the driver reads rule counters, in milliseconds.
    public var statsIntervalMilliseconds: Int = 1000
    public var offloadModel: OffloadModel = .lockstep
    /// Entries reserved per hardware access under `prefetch`.
    public var prefetchBatch: Int = 64
    /// The largest credit bucket under `credit` (per pool; smaller as the pool fills).
    public var creditBucket: Int = 1024
    /// Cost of a hardware access that reads or reserves occupancy (prefetch, credit
    /// refills), in microseconds.
    public var queryLatencyMicroseconds: Int = 0
    /// Rules the firmware programs per hardware access (queued/bulk rule commands).
    public var programBatch: Int = 64
    public var predictiveModel: PredictiveModel = .complex
    /// Whether the tunnel tracker keeps neighbours of busy offloaded encap flows alive
    /// (NTF_USE), as mlx5 does from its flow counters.
    public var neighbourKeepalive = true
    /// Whether a packet socket of another process bound to a representor (a capture)
    /// has the hardware mirror what is sent on it (RepresentorCapture). Off for a
    /// program that binds packet sockets to representors to forward, not to watch (a
    /// userspace switch over them): the mirror would cost it a clone a frame.
    public var representorCaptureMirror = true
    /// The speed of the NIC's engine that runs offloaded programs (one for all ports),
    /// in percent of a host CPU's: a program run costs the engine 100/nic_speed times
    /// its run time on the host.
    public var nicSpeedPercent = 100
    /// The engine's input queue, in microseconds of engine work: a frame that finds
    /// more than this ahead of it is dropped (0: only an idle engine takes a frame).
    public var nicQueueMicroseconds = 1000

    public init() {}

    public static let names = ["hw_latency_us", "intake_rate", "fail_next_offloads", "stats_interval_ms",
                               "offload_model", "prefetch_batch", "credit_bucket", "hw_query_latency_us", "program_batch",
                               "predictive_model", "neigh_keepalive", "nic_speed", "nic_queue_us", "rep_capture_mirror"]

    public func value(of name: String) -> String? {
        switch name {
        case "hw_latency_us": String(hardwareLatencyMicroseconds)
        case "intake_rate": String(intakeRate)
        case "fail_next_offloads": String(failNextOffloads)
        case "stats_interval_ms": String(statsIntervalMilliseconds)
        case "offload_model": offloadModel.rawValue
        case "prefetch_batch": String(prefetchBatch)
        case "credit_bucket": String(creditBucket)
        case "hw_query_latency_us": String(queryLatencyMicroseconds)
        case "program_batch": String(programBatch)
        case "predictive_model": predictiveModel.rawValue
        case "neigh_keepalive": neighbourKeepalive ? "true" : "false"
        case "nic_speed": String(nicSpeedPercent)
        case "nic_queue_us": String(nicQueueMicroseconds)
        case "rep_capture_mirror": representorCaptureMirror ? "true" : "false"
        default: nil
        }
    }

    public enum ParamError: Error, Equatable, CustomStringConvertible {
        case unknown(String)
        case invalid(name: String, value: String, expected: String)

        public var description: String {
            switch self {
            case .unknown(let n): "unknown parameter \"\(n)\" (known: \(DeviceParams.names.joined(separator: ", ")))"
            case .invalid(let n, let v, let e): "parameter \(n): invalid value \"\(v)\", expected \(e)"
            }
        }
    }

    public mutating func set(_ name: String, _ value: String) throws(ParamError) {
        func int(_ lo: Int, _ hi: Int) throws(ParamError) -> Int {
            guard let v = Int(value), v >= lo, v <= hi else {
                throw .invalid(name: name, value: value, expected: "an integer in \(lo)...\(hi)")
            }
            return v
        }
        switch name {
        case "hw_latency_us": hardwareLatencyMicroseconds = try int(0, 10_000_000)
        case "intake_rate": intakeRate = try int(0, 100_000_000)
        case "fail_next_offloads": failNextOffloads = try int(0, 1_000_000_000)
        case "stats_interval_ms": statsIntervalMilliseconds = try int(10, 3_600_000)
        case "prefetch_batch": prefetchBatch = try int(1, 1_000_000)
        case "credit_bucket": creditBucket = try int(1, 1_000_000)
        case "hw_query_latency_us": queryLatencyMicroseconds = try int(0, 1_000_000)
        case "program_batch": programBatch = try int(1, 65_536)
        case "nic_speed": nicSpeedPercent = try int(1, 100)
        // Below the engine clock's 32-bit nanoseconds, and well below what holding frames
        // that long in user space should cost.
        case "nic_queue_us": nicQueueMicroseconds = try int(0, 1_000_000)
        case "predictive_model":
            guard let m = PredictiveModel(rawValue: value) else {
                throw .invalid(name: name, value: value,
                               expected: PredictiveModel.allCases.map(\.rawValue).joined(separator: "|"))
            }
            predictiveModel = m
        case "offload_model":
            guard let m = OffloadModel(rawValue: value) else {
                throw .invalid(name: name, value: value,
                               expected: OffloadModel.allCases.map(\.rawValue).joined(separator: "|"))
            }
            offloadModel = m
        case "neigh_keepalive":
            guard value == "true" || value == "false" else { throw .invalid(name: name, value: value, expected: "true|false") }
            neighbourKeepalive = value == "true"
        case "rep_capture_mirror":
            guard value == "true" || value == "false" else { throw .invalid(name: name, value: value, expected: "true|false") }
            representorCaptureMirror = value == "true"
        default:
            throw .unknown(name)
        }
    }
}

/// Table sizes, from a profile file or defaults.
public struct HardwareProfile: Sendable, Equatable {
    public var maskedEntries = 4096
    public var exactEntries = 32768
    public var encapEntries = 1024
    public var counters = 65536
    /// Flow marks for partial offload (at most 65535: 16 bits of the mark).
    public var marks = 8192
    /// CT table entries: two per offloaded connection (one per direction).
    public var ctEntries = 65536

    public init() {}

    /// Parses `key = value` lines (`masked`, `exact`, `encap`, `counters`); `#` starts a comment.
    public init(text: String) throws(ProfileError) {
        for (n, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = rawLine.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            let trimmed = line.trimmingCharacters(in: " \t\r")
            if trimmed.isEmpty { continue }
            let kv = trimmed.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: " \t") }
            guard kv.count == 2, let v = Int(kv[1]), v >= 0 else {
                throw ProfileError(line: n + 1, message: "expected \"name = number\", got \"\(trimmed)\"")
            }
            switch kv[0] {
            case "masked": maskedEntries = v
            case "exact": exactEntries = v
            case "encap": encapEntries = v
            case "counters": counters = v
            case "marks": marks = v
            case "ct": ctEntries = v
            default: throw ProfileError(line: n + 1, message: "unknown table \"\(kv[0])\" (masked, exact, encap, counters, marks, ct)")
            }
        }
    }

    public struct ProfileError: Error, Equatable, CustomStringConvertible {
        public let line: Int
        public let message: String
        public var description: String { "profile line \(line): \(message)" }
    }
}

extension StringProtocol {
    func trimmingCharacters(in set: String) -> String {
        var s = Substring(self)
        while let f = s.first, set.contains(f) { s.removeFirst() }
        while let l = s.last, set.contains(l) { s.removeLast() }
        return String(s)
    }
}
