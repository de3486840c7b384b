import ArgumentParser
import ControlProtocol
import Netlink
import ODP

#if canImport(Glibc)
import Glibc
#endif

/// A parsed flow for a request: key/mask attributes and optional ufid.
func parseFlowText(_ text: String, session: Session) throws -> ODPText.ParsedKey {
    var names: [String: UInt32] = [:]
    for (n, name) in (try? session.portNames()) ?? [:] { names[name] = n }
    do { return try ODPText.parseKey(text, portNames: names) } catch { throw CLIError("flow key: \(error)") }
}

func parseActionsText(_ text: String) throws -> [UInt8] {
    do { return try ODPText.parseActions(text) } catch { throw CLIError("actions: \(error)") }
}

/// Seeds the ufids this process generates for flows added without one.
let ufidSeed = UInt64.random(in: 0...UInt64.max)

/// The ufid a new flow goes in with: the one written, or, as ovs-dpctl does, a hash of
/// its key attributes (the daemon then need not re-encode the key to make one).
func ufidForNewFlow(_ k: ODPText.ParsedKey) -> UInt128? {
    ufidForNewFlow(written: k.ufid, key: k.key)
}

func ufidForNewFlow(written: UInt128?, key: [UInt8]) -> UInt128? {
    if let written { return written }
    return key.isEmpty ? nil : FlowUFID.hash(keyAttributes: key, seed: ufidSeed)
}

/// One dump line, as ovs-dpctl/ovs-appctl dpctl/dump-flows print it.
func formatFlow(_ f: FlowInfo, verbose: Bool, names: [UInt32: String]) -> String {
    FlowLineFormatter(verbose: verbose, names: names).format(f)
}

/// Dump lines for many flows: one set of formatters, and the texts of attributes and
/// action lists seen before reused (flows of one table share most of them).
struct FlowLineFormatter {
    let verbose: Bool
    let keys: KeyFormatter
    let actions: ActionFormatter
    let memo = FormatMemo()

    init(verbose: Bool, names: [UInt32: String]) {
        self.verbose = verbose
        keys = KeyFormatter(verbose: verbose, portNames: names, memo: memo)
        actions = ActionFormatter(portNames: names)
    }

    func format(_ f: FlowInfo) -> String { TextBuffer.string { format(f, into: &$0) } }

    /// Appends the line's bytes to `out` (a dump's output buffer: no line String).
    func format(_ f: FlowInfo, into out: inout TextBuffer) {
        if verbose {
            out.append("ufid:")
            out.appendUFID(f.ufid)
            out.append(", ")
        }
        keys.format(key: f.key, mask: f.mask, into: &out)
        out.append(", packets:")
        out.appendDecimal(f.packets)
        out.append(", bytes:")
        out.appendDecimal(f.bytes)
        out.append(", used:")
        f.appendUsed(to: &out)
        if f.tcpFlags != 0 {
            out.append(", flags:")
            out.append(string: f.tcpFlagsText)
        }
        // Only a rule in hardware is dp:esw; partial, pending and failed flows' packets
        // run in software: dp:ovs, as OVS prints it.
        if verbose {
            if let word = f.offloadWord {
                out.append(", offloaded:")
                out.append(string: word)
                out.append(", dp:")
                out.append(string: FlowDumpTypes.attributes(offloadState: f.offloadState).dpLayer)
            } else {
                out.append(", dp:ovs")
            }
        }
        out.append(", actions:")
        f.actions.withUnsafeBytes { bytes in
            memo.append(textOf: bytes, to: &out) { actions.format(bytes, into: &$0) }
        }
        if verbose, !f.offloaded, let r = f.offloadReason {
            out.append(f.offloadState == 3 ? ", dp-extra-info:hardware refused it after the add: " : ", dp-extra-info:not offloaded: ")
            out.append(string: r)
        }
    }
}

func flowJSON(_ f: FlowInfo, names: [UInt32: String]) -> JSON {
    var fields: [(String, JSON)] = [
        ("ufid", .string(formatUFID(f.ufid))),
        ("match", .string(TextBuffer.string { KeyFormatter(portNames: names).format(key: f.key, mask: f.mask, into: &$0) })),
        ("actions", .string(TextBuffer.string { ActionFormatter(portNames: names).format(f.actions, into: &$0) })),
        ("packets", .uint(f.packets)), ("bytes", .uint(f.bytes)), ("used", .string(f.usedText)),
        ("offloaded", .bool(f.offloaded)), ("dp", .string(FlowDumpTypes.attributes(offloadState: f.offloadState).dpLayer)),
    ]
    if let w = f.offloadWord, w != "yes" { fields.append(("offload", .string(w))) }
    if f.tcpFlags != 0 { fields.append(("tcp_flags", .string(f.tcpFlagsText))) }
    if let r = f.offloadReason, !f.offloaded { fields.append(("offload_reason", .string(r))) }
    if f.learned { fields.append(("learned", .bool(true))) }
    return .object(fields)
}

struct AddFlow: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "add-flow", abstract: "Add a flow: [DP] FLOW ACTIONS.")
    @OptionGroup var connection: ConnectionOptions
    @Flag(name: .short, help: "Say whether the flow went into hardware, and why not.") var verbose = false
    @Flag(name: [.customShort("s"), .customLong("statistics")], help: "Print the flow's statistics (zero for a new flow), as ovs-dpctl -s does.")
    var statistics = false
    @Argument(help: "[DP] FLOW ACTIONS") var args: [String]

    func run() throws {
        try cli {
            let (dp, rest) = splitDP(args, needed: 2)
            guard rest.count == 2 else { throw CLIError("usage: add-flow [DP] FLOW ACTIONS") }
            let s = try Session(connection, dp: dp)
            try putFlow(s, flow: rest[0], actions: rest[1], command: FlowCmd.new,
                        flags: NetlinkFlags.create | NetlinkFlags.exclusive, statistics: statistics, verbose: verbose)
        }
    }
}

func putFlow(_ s: Session, flow: String, actions: String, command: UInt8, flags: UInt16, clear: Bool = false,
             mayCreate: Bool = false, statistics: Bool = false, verbose: Bool) throws {
    let k = try parseFlowText(flow, session: s)
    let a = try parseActionsText(actions)
    let replies = try s.request(Family.flow, command, echo: true, flags: flags) { w in
        w.put(FlowAttr.key, k.key)
        w.put(FlowAttr.mask, k.mask)
        w.put(FlowAttr.actions, a)
        if let u = command == FlowCmd.new ? ufidForNewFlow(k) : k.ufid { w.putBE128(FlowAttr.ufid, u) }
        if clear { w.putFlag(FlowAttr.clear) }
        if mayCreate { w.putFlag(FlowAttr.mayCreate) }
    }
    if statistics, let m = replies.first { Out.line(FlowInfo(m).statisticsText) }
    if verbose, let m = replies.first {
        let f = FlowInfo(m)
        switch f.offloadState {
        case 1: Out.line("offloaded")
        case 2: Out.line("offload pending (the firmware has not written the rule yet)")
        case 4: Out.line("offloaded partially (the hardware marks, software runs the actions)")
        default: Out.line("not offloaded: \(f.offloadReason ?? "unknown reason")")
        }
    }
}

struct ModFlow: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "mod-flow", abstract: "Change a flow's actions: [DP] FLOW ACTIONS.")
    @OptionGroup var connection: ConnectionOptions
    @Flag(help: "Reset the flow's statistics.") var clear = false
    @Flag(name: .customLong("may-create"), help: "Create the flow if it does not exist.") var mayCreate = false
    @Flag(name: .short, help: "Say whether the flow went into hardware.") var verbose = false
    @Flag(name: [.customShort("s"), .customLong("statistics")],
          help: "Print the flow's statistics from before the change (before --clear resets them), as ovs-dpctl -s does.")
    var statistics = false
    @Argument(help: "[DP] FLOW ACTIONS") var args: [String]

    func run() throws {
        try cli {
            let (dp, rest) = splitDP(args, needed: 2)
            guard rest.count == 2 else { throw CLIError("usage: mod-flow [DP] FLOW ACTIONS") }
            let s = try Session(connection, dp: dp)
            try putFlow(s, flow: rest[0], actions: rest[1], command: FlowCmd.set, flags: 0, clear: clear,
                        mayCreate: mayCreate, statistics: statistics, verbose: verbose)
        }
    }
}

/// A flow reference: `ufid:UUID` or a key.
func flowReference(_ text: String, session: Session, into w: inout AttributeWriter) throws {
    let k = try parseFlowText(text, session: session)
    if let u = k.ufid { w.putBE128(FlowAttr.ufid, u) }
    if !k.key.isEmpty {
        w.put(FlowAttr.key, k.key)
        w.put(FlowAttr.mask, k.mask)
    }
    if k.ufid == nil && k.key.isEmpty { throw CLIError("a flow key or ufid:UUID is required") }
}

struct GetFlow: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "get-flow", abstract: "Show one flow: [DP] ufid:UUID|FLOW.")
    @OptionGroup var connection: ConnectionOptions
    @Flag(name: [.customShort("m"), .customLong("more")], help: "Verbose (ufid, offload state).") var more = false
    @Argument(help: "[DP] ufid:UUID|FLOW") var args: [String]

    func run() throws {
        try cli {
            let (dp, rest) = splitDP(args, needed: 1)
            guard rest.count == 1 else { throw CLIError("usage: get-flow [DP] ufid:UUID|FLOW") }
            let s = try Session(connection, dp: dp)
            var w = AttributeWriter()
            try flowReference(rest[0], session: s, into: &w)
            let bytes = try w.finished()
            let names = more ? try s.portNames() : [:]
            for m in try s.request(Family.flow, FlowCmd.get, { $0.append(raw: bytes) }) {
                Out.line(formatFlow(FlowInfo(m), verbose: more, names: names))
            }
        }
    }
}

struct DelFlow: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "del-flow", abstract: "Delete one flow: [DP] ufid:UUID|FLOW.")
    @OptionGroup var connection: ConnectionOptions
    @Flag(name: [.customShort("s"), .customLong("statistics")], help: "Print the deleted flow's statistics, as ovs-dpctl -s does.")
    var statistics = false
    @Argument(help: "[DP] ufid:UUID|FLOW") var args: [String]

    func run() throws {
        try cli {
            let (dp, rest) = splitDP(args, needed: 1)
            guard rest.count == 1 else { throw CLIError("usage: del-flow [DP] ufid:UUID|FLOW") }
            let s = try Session(connection, dp: dp)
            var w = AttributeWriter()
            try flowReference(rest[0], session: s, into: &w)
            let bytes = try w.finished()
            let replies = try s.request(Family.flow, FlowCmd.del, echo: statistics) { $0.append(raw: bytes) }
            if statistics, let m = replies.first { Out.line(FlowInfo(m).statisticsText) }
        }
    }
}

/// add-flows / mod-flows / del-flows FILE: one transaction over one connection. Each
/// line's request is sent as soon as it is parsed (the daemon installs while the rest
/// is parsed); the transaction is committed after the last line, or aborted (the daemon
/// undoes everything it did, whatever the policy) at a line that does not parse.
func processFlowFile(_ s: Session, path: String, defaultCommand: String) throws {
    var names: [String: UInt32] = [:]
    for (n, name) in (try? s.portNames()) ?? [:] { names[name] = n }
    var requests = FlowFileRequests(path: path, defaultCommand: defaultCommand,
                                    batchID: UInt32.random(in: 1...UInt32.max), portNames: names)
    let stream = RequestStream(s.client)
    // The file line of each request, for the daemon's answers.
    var lineOf: [Int32] = []
    do {
        try forEachLine(path) { number, raw in
            if try requests.submit(number, raw, to: stream) { lineOf.append(Int32(number)) }
        }
    } catch let failure as ParseFailure {
        // Nothing of the file may stay: the daemon undoes what it already did.
        if stream.submitted > 0 {
            do {
                try stream.submit(requests.batchControl(abort: true))
                try stream.finish()
            } catch { throw CLIError("\(failure.message); aborting the transaction: \(error.description)") }
        }
        throw CLIError("\(failure.message) (nothing was changed)")
    } catch let e as ControlError {
        throw CLIError(e.description)
    }
    guard stream.submitted > 0 else { return }
    do {
        try stream.submit(requests.batchControl(abort: false))
        try stream.finish()
    } catch { throw CLIError(error.description) }
    for f in stream.failures where f.index < lineOf.count && FlowFileSummary.isReported(f.error) {
        Out.error("\(path):\(lineOf[f.index]): \(f.error)")
    }
    guard stream.failureCount > 0 else { return }
    // A refusal by the daemon is per flow, as ovs-dpctl reports them, except under
    // skip_sw, where the daemon undid the batch and refused the rest (ECANCELED).
    // The commit's own answer (index lineOf.count) is kept when it is ECANCELED: the
    // daemon undid the batch (the refused line may have been the last).
    throw CLIError(FlowFileSummary.message(total: lineOf.count, failureCount: stream.failureCount,
                                           failures: stream.failures.filter { $0.index < lineOf.count || $0.error.errno == ECANCELED },
                                           line: { lineOf[$0] }))
}

/// A line of a flow file that does not parse.
struct ParseFailure: Error {
    let message: String
    init(_ m: String) { message = m }
}

struct AddFlows: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "add-flows",
                                                    abstract: "Add flows from FILE (or - for stdin), one \"FLOW ACTIONS\" per line.",
                                                    discussion: FlowFile.syntax)
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "[DP] FILE") var args: [String]

    func run() throws {
        try cli {
            let (dp, rest) = splitDP(args, needed: 1)
            guard rest.count == 1 else { throw CLIError("usage: add-flows [DP] FILE|-") }
            try processFlowFile(try Session(connection, dp: dp), path: rest[0], defaultCommand: "add")
        }
    }
}

struct ModFlows: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "mod-flows", abstract: "Modify flows from FILE (or -).",
                                                    discussion: FlowFile.syntax)
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "[DP] FILE") var args: [String]

    func run() throws {
        try cli {
            let (dp, rest) = splitDP(args, needed: 1)
            guard rest.count == 1 else { throw CLIError("usage: mod-flows [DP] FILE|-") }
            try processFlowFile(try Session(connection, dp: dp), path: rest[0], defaultCommand: "modify")
        }
    }
}

struct DelFlows: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "del-flows",
                                                    abstract: "Delete all flows, or the flows listed in FILE (or -).",
                                                    discussion: FlowFile.syntax)
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "[DP] [FILE]") var args: [String] = []

    func run() throws {
        try cli {
            var dp: String?
            var rest = args
            if let f = rest.first, f.contains("@") { dp = f; rest.removeFirst() }
            let s = try Session(connection, dp: dp)
            if let file = rest.first {
                try processFlowFile(s, path: file, defaultCommand: "delete")
            } else {
                _ = try s.request(Family.flow, FlowCmd.del)
            }
        }
    }
}

struct DumpFlows: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "dump-flows", abstract: "Print the datapath's flows.")
    @OptionGroup var connection: ConnectionOptions
    @Flag(name: [.customShort("m"), .customLong("more")], help: "Verbose: ufid, every field, offload state.") var more = false
    @Flag(help: "Port names instead of numbers.") var names = false
    @Flag(name: .customLong("no-names"), help: "Port numbers even with -m.") var noNames = false
    @Flag(name: .short, help: "JSON.") var json = false
    @Argument(help: """
        [DP] [filter=FLOW] [type=TYPE[,TYPE...]]: FLOW is an OpenFlow-style exact match \
        (e.g. filter=in_port=p0,udp,udp_dst=53); a flow passes when it has the filter's value \
        in every field both match on. TYPE is \(FlowDumpTypes.names.joined(separator: ", ")).
        """)
    var args: [String] = []

    /// The arguments as OVS 3.1's dpctl_dump_flows reads them: `filter=`, `type=` and
    /// `pmd=` taken from the end (each of filter= and type= once), then at most one
    /// word, the datapath. Nothing is ignored: what esw cannot do is refused.
    static func split(_ args: [String]) throws -> (dp: String?, type: String, filter: String?) {
        var words = args
        var type: String?
        var filter: String?
        while let last = words.last {
            if last.hasPrefix("filter="), filter == nil {
                filter = String(last.dropFirst(7))
            } else if last.hasPrefix("pmd=") {
                throw CLIError("pmd= is not supported: esw's datapath has no PMD threads (Operation not supported)")
            } else if last.hasPrefix("type="), type == nil {
                type = String(last.dropFirst(5))
            } else {
                break
            }
            words.removeLast()
        }
        guard words.count <= 1 else { throw CLIError("usage: dump-flows [DP] [filter=FLOW] [type=TYPE[,TYPE...]]") }
        return (words.first, type ?? "all", filter)
    }

    func run() throws {
        try cli {
            let (dp, type, filterText) = try Self.split(args)
            let s = try Session(connection, dp: dp)
            let useNames = names || (more && !noNames) || json
            let ports = useNames || filterText != nil ? try s.portNames() : [:]
            let portNames = useNames ? ports : [:]
            // Parsed here, by the client, after the datapath is opened and before type=
            // is read, as dpctl does; in_port may name a port of this datapath.
            let filter = try filterText.map { text in
                var byName: [String: UInt32] = [:]
                for (n, name) in ports { byName[name] = n }
                do { return try DumpFilter(parsing: text, portNames: byName) } catch { throw CLIError("\(error)") }
            }
            do { _ = try FlowDumpTypes(parsing: type) } catch { throw CLIError("\(error) (Invalid argument)") }
            var w = AttributeWriter()
            w.putString(FlowAttr.dumpType, type)
            let request = GenericMessage(family: Family.flow, command: FlowCmd.get, flags: 0, sequence: 0, attributes: try w.finished())
            if json {
                var flows: [JSON] = []
                do {
                    try s.client.dump(request) { m in
                        let flow = FlowInfo(m)
                        if let filter, !filter.passes(key: flow.key, mask: flow.mask) { return }
                        flows.append(flowJSON(flow, names: portNames))
                    }
                } catch let e as ControlError {
                    throw CLIError(e.description)
                }
                Out.line(JSON.array(flows).serialized(pretty: true))
                return
            }
            // Printed as the replies come: a dump of a million flows is never held whole.
            defer { Console.flush() }
            do {
                let lines = FlowLineFormatter(verbose: more, names: portNames)
                try s.client.dump(request) { m in
                    let flow = FlowInfo(m)
                    if let filter, !filter.passes(key: flow.key, mask: flow.mask) { return }
                    Console.bufferedLine { lines.format(flow, into: &$0) }
                }
            } catch let e as ControlError {
                throw CLIError(e.description)
            }
        }
    }
}
