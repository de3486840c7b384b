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

enum Out {
    static func write(_ s: String, fd: Int32 = 1) {
        var bytes = Array(s.utf8)
        var off = 0
        while off < bytes.count {
            let n = bytes.withUnsafeMutableBytes { Glibc.write(fd, $0.baseAddress! + off, $0.count - off) }
            if n <= 0 { return }
            off += n
        }
    }
    static func line(_ s: String) { write(s + "\n") }
    static func error(_ s: String) { write("esw-dpctl: " + s + "\n", fd: 2) }
}

/// A connection plus what most commands need: the datapath and its port names.
struct Session {
    let client: ControlClient

    /// `dp` may be "esw@NAME" (connects to NAME's socket) or nil (the default).
    init(_ options: ConnectionOptions, dp: String?) throws {
        var path = options.control
        if path == nil, let env = getenv("ESW_CONTROL") { path = String(cString: env) }
        if path == nil, let dp, let at = dp.firstIndex(of: "@") { path = defaultControlPath(String(dp[dp.index(after: at)...])) }
        do { client = try ControlClient(path: path ?? defaultControlPath("esw0")) } catch {
            throw CLIError(error.description)
        }
    }

    func request(_ family: UInt16, _ command: UInt8, dump: Bool = false, echo: Bool = false,
                 flags extra: UInt16 = 0, _ build: (inout AttributeWriter) -> Void = { _ in }) throws -> [GenericMessage] {
        var w = AttributeWriter()
        build(&w)
        var flags = extra
        if dump { flags |= NetlinkFlags.dump }
        if echo { flags |= NetlinkFlags.echo }
        let m = GenericMessage(family: family, command: command, flags: flags, sequence: 0, attributes: w.bytes)
        do { return try client.transact(m) } catch { throw CLIError(error.description) }
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

struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
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
