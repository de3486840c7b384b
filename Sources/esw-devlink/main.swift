import ArgumentParser
import ControlProtocol

struct Devlink: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "esw-devlink",
        abstract: "Show and configure the emulated NIC the way devlink does for a real one.",
        discussion: "Options may also come first, as devlink takes them: esw-devlink -j -p dev show.",
        subcommands: [Dev.self, Port.self, Resource.self])
}

struct Dev: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dev", abstract: "The device: its eswitch mode, reload, parameters.",
        subcommands: [DevShow.self, DevESwitch.self, DevReload.self, DevParam.self])
}

struct DevESwitch: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eswitch", abstract: "Show or set the eswitch mode.",
        subcommands: [ESwitchShow.self, ESwitchSet.self])
}

struct DevParam: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "param", abstract: "Device parameters (latency, intake rate, fault injection, stats interval).",
        subcommands: [ParamShow.self, ParamSet.self])
}

struct Port: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "port", abstract: "eSwitch ports: the uplink and one per VF.",
        subcommands: [PortShow.self, PortFunction.self, PortProgram.self])
}

struct PortProgram: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prog", abstract: "A program the NIC runs on a port's frames before its tables (as ip link xdpoffload).",
        subcommands: [PortProgramSet.self])
}

struct PortFunction: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "function", abstract: "Configure the function (VF) behind a port.",
        subcommands: [PortFunctionSet.self])
}

struct Resource: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "resource", abstract: "Hardware table sizes and occupancy.",
        subcommands: [ResourceShow.self, ResourceSet.self])
}

Console.program = "esw-devlink"
Devlink.main(ArgumentOrder.optionsAfterSubcommands(Array(CommandLine.arguments.dropFirst()), root: Devlink.self,
                                                   optionsTakingValue: ["--control"]))
