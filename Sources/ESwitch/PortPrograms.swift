import Glibc
import Logging

/// A user program offloaded to a port, as the NIC runs it (`ip link set dev X
/// xdpoffload obj FILE sec NAME` on a Netronome card).
public struct PortProgram: Sendable, Equatable {
    public var objectPath: String
    public var section: String
    /// The function's name in the object.
    public var name: String
    /// The kernel's program id (0 in memory).
    public var id: UInt32

    public init(objectPath: String, section: String, name: String, id: UInt32) {
        self.objectPath = objectPath
        self.section = section
        self.name = name
        self.id = id
    }
}

/// How often a port's program ran and what it decided (counted by the pipeline).
public struct PortProgramCounters: Sendable, Equatable {
    public var runs: UInt64 = 0
    public var pass: UInt64 = 0
    public var drop: UInt64 = 0
    public var tx: UInt64 = 0
    public var redirect: UInt64 = 0
    /// Verdicts the NIC does not know, or a redirect to no port: dropped.
    public var invalid: UInt64 = 0
    /// Frames dropped before the program ran: the NIC engine's queue was full.
    public var overflow: UInt64 = 0
    /// Frames held until the engine was done with them, and their waits summed.
    public var held: UInt64 = 0
    public var heldNanoseconds: UInt64 = 0
    /// Held frames that left 100 µs or more after their time: the delay line (user space)
    /// could not keep up with the engine it stands in for.
    public var late: UInt64 = 0

    public init() {}

    /// Runs that handed back no verdict (the program returned a tc verdict itself).
    public var unreported: UInt64 { runs &- pass &- drop &- tx &- redirect &- invalid }

    public static let names = ["runs", "pass", "drop", "tx", "redirect", "invalid", "overflow", "held", "held_ns", "late"]
    public var values: [UInt64] { [runs, pass, drop, tx, redirect, invalid, overflow, held, heldNanoseconds, late] }

    /// The counters in `names` order (an older daemon's shorter list leaves the rest 0).
    public init(values v: [UInt64]) {
        guard v.count >= 6 else { return }
        (runs, pass, drop, tx, redirect, invalid) = (v[0], v[1], v[2], v[3], v[4], v[5])
        if v.count >= 9 { (overflow, held, heldNanoseconds) = (v[6], v[7], v[8]) }
        if v.count >= 10 { late = v[9] }
    }
}

extension ESwitch {
    /// Offloads a program to a port (replacing the one it has). The port must exist;
    /// the data plane loads and verifies the program.
    public func attachProgram(_ port: PortIndex, objectPath: String, section: String?) throws(DataPlaneError) -> PortProgram {
        guard self.port(port) != nil else { throw .unsupported("no port \(port)") }
        return try dataPlane.attachProgram(port, objectPath: objectPath, section: section)
    }

    public func detachProgram(_ port: PortIndex) { dataPlane.detachProgram(port) }
    public func attachedProgram(_ port: PortIndex) -> PortProgram? { dataPlane.attachedProgram(port) }
    public func programCounters(_ port: PortIndex) -> PortProgramCounters { dataPlane.programCounters(port) }

    /// Writes the `nic_speed` and `nic_queue_us` parameters into the data plane.
    func applyNICEngine() {
        do {
            try dataPlane.setNICSpeed(params.nicSpeedPercent)
            try dataPlane.setNICQueue(microseconds: params.nicQueueMicroseconds)
        } catch {
            logger.error("nic_speed/nic_queue_us not written to the data plane", metadata: ["error": "\(error)"])
        }
    }
}

extension InMemoryDataPlane {
    /// Records the program; the file must exist (nothing is verified in memory).
    public func attachProgram(_ port: PortIndex, objectPath: String, section: String?) throws(DataPlaneError) -> PortProgram {
        guard access(objectPath, R_OK) == 0 else { throw .system("open \(objectPath)", errno: errno) }
        let p = PortProgram(objectPath: objectPath, section: section ?? "", name: section ?? "", id: 0)
        portPrograms[port] = p
        programStats[port] = PortProgramCounters()
        return p
    }

    public func detachProgram(_ port: PortIndex) {
        portPrograms[port] = nil
        programStats[port] = nil
    }

    public func attachedProgram(_ port: PortIndex) -> PortProgram? { portPrograms[port] }
    public func programCounters(_ port: PortIndex) -> PortProgramCounters { programStats[port] ?? PortProgramCounters() }

    public func setNICSpeed(_ percent: Int) throws(DataPlaneError) {
        guard (1...100).contains(percent) else { throw .unsupported("nic_speed \(percent)") }
        nicSpeed = percent
    }

    public func setNICQueue(microseconds: Int) throws(DataPlaneError) {
        guard (0...1_000_000).contains(microseconds) else { throw .unsupported("nic_queue_us \(microseconds)") }
        nicQueueMicroseconds = microseconds
    }
}
