import ArgumentParser
import ControlProtocol

struct DPCtl: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "esw-dpctl",
        abstract: "Administer the esw datapath (ovs-dpctl's commands).",
        discussion: "Options may come before the command too, as ovs-dpctl takes them: esw-dpctl -m dump-flows.",
        subcommands: [ParseFlow.self, AddDP.self, DelDP.self, DumpDPs.self, Show.self, AddIf.self, SetIf.self, DelIf.self,
                      AddFlow.self, ModFlow.self, GetFlow.self, DelFlow.self, DelFlows.self, AddFlows.self, ModFlows.self,
                      DumpFlows.self, DumpTunnels.self, SetPolicy.self, SetPartialOffload.self, SetMiss.self, Monitor.self, Execute.self, Trace.self,
                      DumpConntrack.self, FlushConntrack.self, ConntrackStatsShow.self, ConntrackSetMaxConnections.self,
                      ConntrackGetMaxConnections.self, ConntrackSetLimits.self, ConntrackDelLimits.self, ConntrackGetLimits.self])
}

Console.program = "esw-dpctl"
DPCtl.main(ArgumentOrder.optionsAfterSubcommands(Array(CommandLine.arguments.dropFirst()), root: DPCtl.self,
                                                 optionsTakingValue: ["--control", "--count", "--hex"]))
