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

    /// `dp` may be "esw@NAME" (connects to NAME's socket) or nil (the default).
    init(_ options: ConnectionOptions, dp: String?) throws {
        var name: String?
        if let dp, let at = dp.firstIndex(of: "@") { name = String(dp[dp.index(after: at)...]) }
        control = try ControlSession(control: options.control, switchName: name)
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
