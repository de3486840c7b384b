import ArgumentParser
import ControlProtocol
import Netlink

// ovs-dpctl's connection-tracking commands, with its argument shapes: an optional
// datapath first, then `zone=N`, tuples and limits as KEY=VALUE words.

/// Splits the arguments into the datapath (a first word without "="), `zone=` values
/// (comma lists allowed) and the rest.
struct ConntrackArguments {
    var dp: String?
    var zones: [UInt16] = []
    var rest: [String] = []

    init(_ args: [String], zoneLists: Bool = false) throws {
        var words = args[...]
        if let first = words.first, !first.contains("=") && first != "verbose" {
            dp = first
            words = words.dropFirst()
        }
        for w in words {
            if w.hasPrefix("zone=") && (zoneLists || !w.contains(",")) {
                for z in w.dropFirst(5).split(separator: ",", omittingEmptySubsequences: false) {
                    guard let n = UInt16(z) else { throw CLIError("invalid zone \"\(z)\" in \(w) (0-65535)") }
                    zones.append(n)
                }
            } else {
                rest.append(w)
            }
        }
    }
}

struct DumpConntrack: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dump-conntrack", abstract: "Print the connection tracker's entries (all, or one zone's).")
    @OptionGroup var connection: ConnectionOptions
    @Flag(name: [.customShort("m"), .customLong("more")], help: "Verbose: ids and status.") var more = false
    @Flag(name: [.short, .long], help: "Counters, timestamps and timeouts.") var statistics = false
    @Argument(help: "[DP] [zone=N]") var args: [String] = []

    func run() throws {
        try cli {
            let a = try ConntrackArguments(args)
            guard a.rest.isEmpty, a.zones.count <= 1 else { throw CLIError("usage: dump-conntrack [-m] [-s] [DP] [zone=N]") }
            let s = try Session(connection, dp: a.dp)
            let replies = try s.request(Family.conntrack, ConntrackCmd.dump, dump: true) { w in
                for z in a.zones { w.putU16(ConntrackAttr.zone, z) }
                if more { w.putFlag(ConntrackAttr.verbose) }
                if statistics { w.putFlag(ConntrackAttr.statistics) }
            }
            for m in replies {
                if let line = try AttributeParser.parse(m.attributes).string(ConntrackAttr.line) { Out.bufferedLine(line) }
            }
            Out.flush()
        }
    }
}

struct FlushConntrack: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "flush-conntrack",
        abstract: "Remove connections: all, a zone's, or those matching an original-direction tuple (ct_nw_src=…,ct_nw_dst=…,ct_nw_proto=…,ct_tp_src=…,ct_tp_dst=…) and a reply-direction one.")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "[DP] [zone=N] [CT-ORIG-TUPLE [CT-REPLY-TUPLE]]") var args: [String] = []

    func run() throws {
        try cli {
            let a = try ConntrackArguments(args)
            guard a.rest.count <= 2, a.zones.count <= 1 else {
                throw CLIError("usage: flush-conntrack [DP] [zone=N] [CT-ORIG-TUPLE [CT-REPLY-TUPLE]]")
            }
            let s = try Session(connection, dp: a.dp)
            _ = try s.request(Family.conntrack, ConntrackCmd.flush) { w in
                for z in a.zones { w.putU16(ConntrackAttr.zone, z) }
                if let t = a.rest.first { w.putString(ConntrackAttr.tuple, t) }
                if a.rest.count == 2 { w.putString(ConntrackAttr.replyTuple, a.rest[1]) }
            }
        }
    }
}

struct ConntrackStatsShow: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ct-stats-show", abstract: "Count the connections, per protocol (and per TCP state with -m or verbose).")
    @OptionGroup var connection: ConnectionOptions
    @Flag(name: [.customShort("m"), .customLong("more")], help: "Per TCP state.") var more = false
    @Argument(help: "[DP] [zone=N] [verbose]") var args: [String] = []

    func run() throws {
        try cli {
            let a = try ConntrackArguments(args)
            let verbose = more || a.rest.contains("verbose")
            guard a.rest.allSatisfy({ $0 == "verbose" }), a.zones.count <= 1 else {
                throw CLIError("usage: ct-stats-show [DP] [zone=N] [verbose]")
            }
            let s = try Session(connection, dp: a.dp)
            let m = try s.request(Family.conntrack, ConntrackCmd.statsGet) { w in
                for z in a.zones { w.putU16(ConntrackAttr.zone, z) }
                if verbose { w.putFlag(ConntrackAttr.verbose) }
            }
            if let t = try m.first.flatMap({ try AttributeParser.parse($0.attributes).string(ConntrackAttr.text) }) { Out.write(t) }
        }
    }
}

struct ConntrackSetMaxConnections: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ct-set-maxconns",
                                                    abstract: "Set the maximum number of connections.")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "[DP] MAXCONNS") var args: [String] = []

    func run() throws {
        try cli {
            let (dp, rest) = splitDP(args, needed: 1)
            guard rest.count == 1, let n = UInt32(rest[0]) else { throw CLIError("usage: ct-set-maxconns [DP] MAXCONNS (0-4294967295)") }
            let s = try Session(connection, dp: dp)
            _ = try s.request(Family.conntrack, ConntrackCmd.maxConnectionsSet) { $0.putU32(ConntrackAttr.count, n) }
            Out.line("setting maxconns successful")
        }
    }
}

struct ConntrackGetMaxConnections: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ct-get-maxconns",
                                                    abstract: "Print the maximum number of connections.")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "[DP]") var dp: String?

    func run() throws {
        try cli {
            let s = try Session(connection, dp: dp)
            let m = try s.request(Family.conntrack, ConntrackCmd.maxConnectionsGet)
            guard let n = try m.first.flatMap({ try AttributeParser.parse($0.attributes).u32(ConntrackAttr.count) }) else {
                throw CLIError("no answer from the daemon")
            }
            Out.line(String(n))
        }
    }
}

struct ConntrackSetLimits: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ct-set-limits", abstract: "Set the default and per-zone connection limits (0: unlimited).")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "[DP] [default=LIMIT] [zone=N,limit=LIMIT]...") var args: [String] = []

    func run() throws {
        try cli {
            let a = try ConntrackArguments(args)
            guard a.zones.isEmpty else { throw CLIError("zone=N needs its limit: zone=N,limit=LIMIT") }
            var limits: [(zone: UInt16?, limit: UInt32)] = []
            for w in a.rest { limits.append(try Self.limit(w)) }
            guard !limits.isEmpty else { throw CLIError("usage: ct-set-limits [DP] [default=LIMIT] [zone=N,limit=LIMIT]...") }
            let s = try Session(connection, dp: a.dp)
            _ = try s.request(Family.conntrack, ConntrackCmd.limitsSet) { w in
                for l in limits {
                    w.nested(ConntrackAttr.limit) { n in
                        if let z = l.zone { n.putU16(ConntrackAttr.zone, z) }
                        n.putU32(ConntrackAttr.limitValue, l.limit)
                    }
                }
            }
        }
    }
}

extension ConntrackSetLimits {
    /// `default=LIMIT` or `zone=N,limit=LIMIT`.
    static func limit(_ w: String) throws -> (zone: UInt16?, limit: UInt32) {
        if w.hasPrefix("default=") {
            guard let l = UInt32(w.dropFirst(8)) else { throw CLIError("invalid limit in \(w) (0-4294967295)") }
            return (nil, l)
        }
        let parts = w.split(separator: ",")
        guard parts.count == 2, parts[0].hasPrefix("zone="), parts[1].hasPrefix("limit=") else {
            throw CLIError("invalid argument \"\(w)\" (expected default=LIMIT or zone=N,limit=LIMIT)")
        }
        guard let z = UInt16(parts[0].dropFirst(5)) else { throw CLIError("invalid zone in \(w) (0-65535)") }
        guard let l = UInt32(parts[1].dropFirst(6)) else { throw CLIError("invalid limit in \(w) (0-4294967295)") }
        return (z, l)
    }
}

struct ConntrackDelLimits: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ct-del-limits",
                                                    abstract: "Remove the connection limits of zones.")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "[DP] zone=N1[,N2]...") var args: [String] = []

    func run() throws {
        try cli {
            let a = try ConntrackArguments(args, zoneLists: true)
            guard a.rest.isEmpty, !a.zones.isEmpty else { throw CLIError("usage: ct-del-limits [DP] zone=N1[,N2]...") }
            let s = try Session(connection, dp: a.dp)
            _ = try s.request(Family.conntrack, ConntrackCmd.limitsDel) { w in
                for z in a.zones { w.putU16(ConntrackAttr.zone, z) }
            }
        }
    }
}

struct ConntrackGetLimits: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ct-get-limits",
                                                    abstract: "Print the default and per-zone connection limits and counts.")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "[DP] [zone=N1[,N2]...]") var args: [String] = []

    func run() throws {
        try cli {
            let a = try ConntrackArguments(args, zoneLists: true)
            guard a.rest.isEmpty else { throw CLIError("usage: ct-get-limits [DP] [zone=N1[,N2]...]") }
            let s = try Session(connection, dp: a.dp)
            let m = try s.request(Family.conntrack, ConntrackCmd.limitsGet) { w in
                for z in a.zones { w.putU16(ConntrackAttr.zone, z) }
            }
            // ct_dpif_format_zone_limits ends without a newline; dpctl prints "%s\n".
            if let t = try m.first.flatMap({ try AttributeParser.parse($0.attributes).string(ConntrackAttr.text) }) { Out.line(t) }
        }
    }
}
