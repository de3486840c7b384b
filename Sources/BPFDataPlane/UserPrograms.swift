import CLibBPF
import ESwitch
import Glibc
import NetLinux

/// The NIC's programmable stage (bpf/prog_stage.h): a user program per port in the
/// esw_user_progs prog array, the pipeline in esw_pipeline[0] for their verdicts, the
/// per-port counters, and the processor speed with the attached ports in esw_prog_config.
extension BPFDataPlane {
    /// Fills esw_pipeline and the stage's config: at load, and after a reload.
    func startProgramStage() throws(SystemError) {
        var zero: UInt32 = 0
        var rx = UInt32(bitPattern: portRX)
        try BPFMap.update(try object.mapFD("esw_pipeline"), key: &zero, value: &rx)
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

    private func writeProgramConfig() throws(SystemError) {
        let attached = userPrograms.keys.reduce(UInt64(0)) { $0 | 1 << UInt64($1) }
        var value = [UInt64](repeating: 0, count: 2)
        value[0] = UInt64(UInt32(nicSpeed))
        value[1] = attached
        var zero: UInt32 = 0
        let fd = try object.mapFD("esw_prog_config")
        let r = value.withUnsafeBytes { BPFMap.updateResult(fd, key: &zero, value: $0.baseAddress!) }
        if r < 0 { throw SystemError("bpf_map_update_elem(esw_prog_config)", errno: -r) }
    }

    private static let counterFields = 6

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
            var progFD = UInt32(bitPattern: u.fd)
            try BPFMap.update(try object.mapFD("esw_user_progs"), key: &key, value: &progFD)
            userPrograms[port] = u
            try writeProgramConfig()
            return u.program
        } catch let e as DataPlaneError {
            throw e
        } catch let e as SystemError {
            throw .system(e.call, errno: e.errno)
        } catch {
            throw .system("\(error)", errno: EIO)
        }
    }

    public func detachProgram(_ port: PortIndex) {
        guard userPrograms[port] != nil else { return }
        userPrograms[port] = nil
        try? writeProgramConfig()
        var key = UInt32(port)
        if let fd = try? object.mapFD("esw_user_progs") { BPFMap.delete(fd, key: &key) }
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
        return PortProgramCounters(values: sum)
    }

    public func setNICSpeed(_ percent: Int) throws(DataPlaneError) {
        guard (1...100).contains(percent) else { throw .unsupported("nic_speed \(percent) (1...100)") }
        nicSpeed = percent
        do { try writeProgramConfig() } catch { throw .system(error.call, errno: error.errno) }
    }
}
