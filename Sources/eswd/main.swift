import ArgumentParser
import BPFDataPlane
import CNetLinux
import ControlProtocol
import ESwitch
import Logging
import NetLinux
import OVSDatapath

struct DaemonOptions {
    var name: String
    var vfs: Int
    var uplink: String
    var mode: ESwitchMode
    var controlPath: String
    var profile: String?
    var representorPrefix: String
    var policy: OffloadPolicy
    var miss: MissMode
    var maxIdle: Int
    var noDatapath: Bool
}

extension ESwitchMode: ExpressibleByArgument {}
extension OffloadPolicy: ExpressibleByArgument {}
extension MissMode: ExpressibleByArgument {}

struct Eswd: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eswd",
        abstract: "Emulated SR-IOV NIC in switchdev mode: VF netdevs, representors, an OVS datapath and hardware offload.")

    @Option(help: "Device name (VF netdevs are <name>v<N>).") var name = "esw0"
    @Option(help: "Number of VFs (0...63).") var vfs = 2
    @Option(help: "The netdev that stands for the wire (a veth end).") var uplink: String
    @Option(help: "legacy or switchdev.") var mode: ESwitchMode = .switchdev
    @Option(help: "Control socket path (default /run/esw/<name>.sock).") var control: String?
    @Option(help: "Hardware profile file (table sizes).") var profile: String?
    @Option(name: .customLong("rep-prefix"), help: "Prefix for representor names (two eSwitches in one namespace).")
    var repPrefix = ""
    @Option(help: "Offload policy: none, skip_sw or skip_hw.") var policy: OffloadPolicy = .none
    @Option(help: "Datapath misses: drop, normal or controller.") var miss: MissMode = .drop
    @Option(name: .customLong("max-idle"), help: "Idle time in ms before flows installed by 'normal' expire.")
    var maxIdle = 10_000
    @Flag(name: .customLong("no-datapath"), help: "Start without a datapath (add one with esw-dpctl add-dp).")
    var noDatapath = false
    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel = "info"

    func validate() throws {
        // The port table holds the uplink (port 0) and the VFs.
        let maxVFs = Layout.maxPorts - 1
        guard vfs >= 0 && vfs <= maxVFs else {
            throw ValidationError("--vfs must be 0...\(maxVFs) (the port table has \(Layout.maxPorts) ports, one is the uplink)")
        }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("unknown --log-level \(logLevel)") }
        guard maxIdle > 0 else { throw ValidationError("--max-idle must be positive") }
    }

    func run() throws {
        // Block termination signals before any thread starts, so only the signalfd sees them
        // (SIGINT, SIGTERM, SIGHUP and SIGQUIT: each stops the daemon cleanly).
        let sigfd = try syscall("signalfd") { cnl_termination_signalfd() }
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var h = StreamLogHandler.standardError(label: label)
            h.logLevel = level
            return h
        }
        let logger = Logger(label: "eswd.\(name)")
        let options = DaemonOptions(name: name, vfs: vfs, uplink: uplink, mode: mode,
                                    controlPath: control ?? defaultControlPath(name), profile: profile,
                                    representorPrefix: repPrefix, policy: policy, miss: miss, maxIdle: maxIdle,
                                    noDatapath: noDatapath)
        do {
            MemoryReturn.configureAllocator()
            let d = try Daemon(options: options, logger: logger, signals: FileDescriptor(adopting: sigfd))
            d.run()
        } catch {
            logger.critical("eswd: \(error)")
            throw ExitCode(1)
        }
    }
}

Eswd.main()
