import CLibBPF
import ESwitch
import Glibc
import NetLinux

/// The NIC's programmable stage (bpf/prog_stage.h): a user program per port in the
/// esw_user_progs prog array, the pipeline in esw_pipeline[0] for their verdicts, the
/// per-port counters, and the engine (speed, queue, delay line) with the attached ports
/// in esw_prog_config.
extension BPFDataPlane {
    /// Fills esw_pipeline and the stage's config: at load, and after a reload.
    func startProgramStage() throws(SystemError) {
        var zero: UInt32 = 0
        var rx = UInt32(bitPattern: portRX)
        try BPFMap.update(try object.mapFD("esw_pipeline"), key: &zero, value: &rx)
        if let line = delayLine {
            var key = UInt32(bitPattern: line.ifindex), value = Layout.ifindexEngine
            try BPFMap.update(maps.portByIfindex, key: &key, value: &value)
        }
        try writeProgramConfig()
    }

    /// After a reload (new maps): the user programs are loaded again against the new
    /// pipeline. Between the swap and this, frames of those ports skip their programs.
    /// A program that no longer loads is detached. Counters start again from zero.
    func restartProgramStage() {
        try? startProgramStage()
        let programs = userPrograms
        userPrograms = [:]
        for (port, u) in programs {
            _ = try? attachProgram(port, objectPath: u.program.objectPath, section: u.program.section)
        }
    }

    /// struct esw_prog_config: nic_speed, queue_ns, attached, hold_ifindex.
    private func writeProgramConfig() throws(SystemError) {
        let attached = userPrograms.keys.reduce(UInt64(0)) { $0 | 1 << UInt64($1) }
        var value = [UInt64](repeating: 0, count: 3)
        value[0] = UInt64(UInt32(nicSpeed)) | UInt64(UInt32(nicQueueMicroseconds * 1000)) << 32
        value[1] = attached
        value[2] = UInt64(UInt32(bitPattern: delayLine?.ifindex ?? holdIfindexWithoutDelayLine))
        var zero: UInt32 = 0
        let fd = try object.mapFD("esw_prog_config")
        let r = value.withUnsafeBytes { BPFMap.updateResult(fd, key: &zero, value: $0.baseAddress!) }
        if r < 0 { throw SystemError("bpf_map_update_elem(esw_prog_config)", errno: -r) }
    }

    /// The u64s of struct esw_prog_counters (PortProgramCounters' list but `late`,
    /// which the delay line counts).
    private static let counterFields = 9

    public func attachProgram(_ port: PortIndex, objectPath: String, section: String?) throws(DataPlaneError) -> PortProgram {
        guard Int(port) < Layout.maxPorts else { throw .unsupported("port \(port)") }
        do {
            let u = try UserProgramObject(path: objectPath, section: section, pipelineMapFD: try object.mapFD("esw_pipeline"))
            // Counters from zero, then the program, then the port's bit: the pipeline
            // never tail-calls an empty slot for an attached port.
            var key = UInt32(port)
            let zeros = [UInt64](repeating: 0, count: BPFMap.possibleCPUs * Self.counterFields)
            let statsFD = try object.mapFD("esw_prog_stats")
            let r = zeros.withUnsafeBytes { BPFMap.updateResult(statsFD, key: &key, value: $0.baseAddress!) }
            if r < 0 { throw SystemError("bpf_map_update_elem(esw_prog_stats)", errno: -r) }
            lateFrames.reset(port)   // counted by the delay line, from zero with the others
            var progFD = UInt32(bitPattern: u.fd)
            try startDelayLine()
            try BPFMap.update(try object.mapFD("esw_user_progs"), key: &key, value: &progFD)
            userPrograms[port] = u
            try writeProgramConfig()
            return u.program
        } catch let e as DataPlaneError {
            if userPrograms.isEmpty { stopDelayLine() }
            throw e
        } catch let e as SystemError {
            if userPrograms.isEmpty { stopDelayLine() }
            throw .system(e.call, errno: e.errno)
        } catch {
            if userPrograms.isEmpty { stopDelayLine() }
            throw .system("\(error)", errno: EIO)
        }
    }

    public func detachProgram(_ port: PortIndex) {
        guard userPrograms[port] != nil else { return }
        userPrograms[port] = nil
        try? writeProgramConfig()
        var key = UInt32(port)
        if let fd = try? object.mapFD("esw_user_progs") { BPFMap.delete(fd, key: &key) }
        if userPrograms.isEmpty { stopDelayLine() }
    }

    /// With the first program: the engine's delay line (when eswd named one; tests
    /// that run the pipeline with BPF_PROG_TEST_RUN have none, and hold nothing), the
    /// pipeline on its TAP, the TAP in the port table. The engine's clock starts idle.
    private func startDelayLine() throws(SystemError) {
        guard delayLine == nil, let name = delayLineName else { return }
        var zero: UInt32 = 0, idle: UInt64 = 0
        try BPFMap.update(try object.mapFD("esw_engine"), key: &zero, value: &idle)
        let line = try EngineDelayLine(name: name, lateFrames: lateFrames)
        var key = UInt32(bitPattern: line.ifindex), value = Layout.ifindexEngine
        do {
            try attachPort(ifindex: line.ifindex)
            try BPFMap.update(maps.portByIfindex, key: &key, value: &value)
        } catch {
            detach(ifindex: line.ifindex)
            line.stop()
            throw SystemError("the NIC engine's delay line \(line.name): \(error)", errno: EIO)
        }
        delayLine = line
    }

    /// With the last program gone (and at shutdown): no new frame is held, the held
    /// ones leave at once, then the TAP goes.
    func stopDelayLine() {
        guard let line = delayLine else { return }
        delayLine = nil
        try? writeProgramConfig()
        line.stop()
        detach(ifindex: line.ifindex)
        var key = UInt32(bitPattern: line.ifindex), none: UInt32 = 0
        _ = BPFMap.updateResult(maps.portByIfindex, key: &key, value: &none)
    }

    public func attachedProgram(_ port: PortIndex) -> PortProgram? { userPrograms[port]?.program }

    public func programCounters(_ port: PortIndex) -> PortProgramCounters {
        guard userPrograms[port] != nil, let fd = try? object.mapFD("esw_prog_stats") else { return PortProgramCounters() }
        let cpus = BPFMap.possibleCPUs, n = Self.counterFields
        var values = [UInt64](repeating: 0, count: cpus * n)
        var key = UInt32(port)
        guard values.withUnsafeMutableBytes({ BPFMap.lookup(fd, key: &key, value: $0.baseAddress!) }) else {
            return PortProgramCounters()
        }
        var sum = [UInt64](repeating: 0, count: n)
        for c in 0..<cpus { for f in 0..<n { sum[f] &+= values[c * n + f] } }
        var counters = PortProgramCounters(values: sum)
        counters.late = lateFrames.value(port)
        return counters
    }

    public func setNICSpeed(_ percent: Int) throws(DataPlaneError) {
        guard (1...100).contains(percent) else { throw .unsupported("nic_speed \(percent) (1...100)") }
        nicSpeed = percent
        do { try writeProgramConfig() } catch { throw .system(error.call, errno: error.errno) }
    }

    public func setNICQueue(microseconds: Int) throws(DataPlaneError) {
        guard (0...1_000_000).contains(microseconds) else { throw .unsupported("nic_queue_us \(microseconds) (0...1000000)") }
        nicQueueMicroseconds = microseconds
        do { try writeProgramConfig() } catch { throw .system(error.call, errno: error.errno) }
    }

    /// When the engine will have done the work it has accepted (bpf_ktime_get_ns time;
    /// in the past when it is idle).
    public func engineBusyUntil() -> UInt64 {
        var zero: UInt32 = 0, busy: UInt64 = 0
        guard let fd = try? object.mapFD("esw_engine"), BPFMap.lookup(fd, key: &zero, value: &busy) else { return 0 }
        return busy
    }

    /// The delay line's TAP (nil while no program is attached, or when eswd named none).
    public var delayLineInterface: String? { delayLine?.name }
}
