import ArgumentParser
import ControlProtocol
import Netlink

#if canImport(Glibc)
import Glibc
#endif

/// Options every daemon command shares.
struct ConnectionOptions: ParsableArguments {
    @Option(name: .customLong("control"),
            help: "Control socket (default: /run/esw/<name>.sock, from the DP name or $ESW_CONTROL).")
    var control: String?
}

typealias Out = Console

/// A connection plus what most commands need: the datapath and its port names.
struct Session {
    let control: ControlSession
    var client: ControlClient { control.client }

    /// How a command names a datapath that does not exist: OVS's dpctl has three texts
    /// (lib/dpctl.c), by how the command opens its datapath.
    enum UnknownDatapath {
        /// opt_dpif_open (an optional DP: flow, conntrack and most commands):
        /// "datapath not found (Invalid argument)".
        case notFound
        /// dpctl_show: "opening datapath DP failed (No such device)".
        case openingNamed
        /// parsed_dpif_open (a required DP: del-dp, add-if, set-if, del-if):
        /// "opening datapath (No such device)".
        case opening
        /// add-dp: the datapath is to be made, not checked.
        case unchecked
    }

    /// `dp` may be "esw@NAME" (connects to NAME's socket) or nil (the default). A DP
    /// given is checked against the daemon's datapath (its name or its local port's),
    /// so that a wrong name fails as in OVS instead of acting on the one there is.
    init(_ options: ConnectionOptions, dp: String?, unknown: UnknownDatapath = .notFound) throws {
        var name: String?
        if let dp, let at = dp.firstIndex(of: "@") { name = String(dp[dp.index(after: at)...]) }
        control = try ControlSession(control: options.control, switchName: name)
        if let dp, unknown != .unchecked { try checkDatapath(dp, unknown) }
    }

    private func checkDatapath(_ dp: String, _ unknown: UnknownDatapath) throws {
        var w = AttributeWriter()
        w.putString(DatapathAttr.name, dp)
        let request = GenericMessage(family: Family.datapath, command: DatapathCmd.get, flags: 0, sequence: 0,
                                     attributes: try w.finished())
        var failure: ControlError?
        do { _ = try client.transact(request) } catch { failure = error }
        guard let failure else { return }
        guard failure.errno == ENODEV else { throw CLIError(failure.description) }
        switch unknown {
        case .notFound: throw CLIError("datapath not found (\(String(cString: strerror(EINVAL))))")
        case .openingNamed: throw CLIError("opening datapath \(dp) failed (\(String(cString: strerror(ENODEV))))")
        case .opening, .unchecked: throw CLIError("opening datapath (\(String(cString: strerror(ENODEV))))")
        }
    }

    func request(_ family: UInt16, _ command: UInt8, dump: Bool = false, echo: Bool = false,
                 flags extra: UInt16 = 0, _ build: (inout AttributeWriter) -> Void = { _ in }) throws -> [GenericMessage] {
        try control.request(family, command, dump: dump, echo: echo, flags: extra, build)
    }

    func datapath() throws -> DatapathInfo {
        guard let m = try request(Family.datapath, DatapathCmd.get, dump: true).first else {
            throw CLIError("no datapath (add one with add-dp)")
        }
        return DatapathInfo(m)
    }

    func ports() throws -> [VportInfo] {
        try request(Family.vport, VportCmd.get, dump: true).map(VportInfo.init)
    }

    func portNames() throws -> [UInt32: String] {
        var names: [UInt32: String] = [:]
        for p in try ports() { names[p.number] = p.name }
        return names
    }
}

/// Runs `body`, turning errors into `esw-dpctl: …` and exit status 1.
func cli(_ body: () throws -> Void) throws {
    do { try body() } catch let e as ExitCode { throw e } catch {
        Out.error("\(error)")
        throw ExitCode(1)
    }
}

/// Splits `[DP] REST...` where DP is optional: DP is present when there are more
/// arguments than the command needs without it.
func splitDP(_ args: [String], needed: Int) -> (dp: String?, rest: [String]) {
    if args.count > needed, let first = args.first { return (first, Array(args.dropFirst())) }
    return (nil, args)
}
