import ArgumentParser
import ControlProtocol
import Netlink

#if canImport(Glibc)
import Glibc
#endif

/// A port's offloaded program as `port show` reports it.
struct ProgramInfo {
    var object = "", section = "", name = "", id: UInt32 = 0
    var stats: [UInt64] = []

    /// As PortProgramCounters.names: verdicts, then the NIC engine's (overflow: dropped
    /// with its queue full; held: frames that waited for it, held_ns their waits; late:
    /// held frames the delay line let go 100 µs or more after their time).
    static let statNames = ["runs", "pass", "drop", "tx", "redirect", "invalid", "overflow", "held", "held_ns", "late"]

    init?(_ a: [Attribute]) {
        guard let object = a.string(DevlinkAttr.portProgramObject) else { return nil }
        self.object = object
        section = a.string(DevlinkAttr.portProgramSection) ?? ""
        name = a.string(DevlinkAttr.portProgramName) ?? ""
        id = a.u32(DevlinkAttr.portProgramID) ?? 0
        stats = a.bytes(DevlinkAttr.portProgramStats).map(u64Array) ?? []
    }

    /// ip-link's way: `prog/xdp id 42`, here with where it came from.
    var line: String { "offload id \(id) name \(name) sec \(section) obj \(object)" }
    var statsLine: String { zip(Self.statNames, stats).map { "\($0.0) \($0.1)" }.joined(separator: " ") }

    func json(statistics: Bool) -> JSON {
        var f: [(String, JSON)] = [("id", .uint(UInt64(id))), ("name", .string(name)), ("sec", .string(section)),
                                   ("obj", .string(object))]
        if statistics { f.append(("stats", .object(zip(Self.statNames, stats).map { ($0.0, .uint($0.1)) }))) }
        return .object(f)
    }
}

/// Little-endian u64s of an attribute.
func u64Array(_ s: [UInt8]) -> [UInt64] {
    stride(from: 0, to: s.count - 7, by: 8).map { o in
        (0..<8).reduce(UInt64(0)) { $0 | UInt64(s[o + $1]) << (8 * UInt64($1)) }
    }
}

/// `ip link set dev X xdpoffload obj FILE sec NAME` for an eSwitch port: the NIC runs
/// the program on every frame the port receives, before its flow tables.
struct PortProgramSet: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "set",
        abstract: "Offload a program to a port, or remove it: `set PORT obj FILE [sec NAME]` | `set PORT off`.",
        discussion: """
            The program is a tc (SCHED_CLS) program that ends with one of the verdicts of \
            bpf/examples/esw_prog.h (pass, drop, tx, redirect). sec NAME is a section holding one \
            program, or a program's function name (a section holding several is refused as \
            ambiguous); without it, the object's first program. What the verifier refuses is reported with its message. Counters: port show -s.
            """)
    @OptionGroup var options: DevlinkOptions
    @Argument(help: "PORT (DEV/INDEX or port netdev), then obj FILE [sec NAME], or off") var words: [String] = []

    func run() throws {
        try cli {
            guard let first = words.first, words.count >= 2 else {
                throw CLIError("usage: port prog set PORT obj FILE [sec NAME] | port prog set PORT off")
            }
            let rest = Array(words.dropFirst())
            var object: String?, section: String?
            if rest != ["off"] {
                let kw = try keywordArguments(rest, allowed: ["obj", "sec"])
                guard let file = kw["obj"] else { throw CLIError("obj FILE required (or off)") }
                // The daemon opens the file: give it a path that does not depend on our directory.
                object = file.hasPrefix("/") ? file : currentDirectory() + "/" + file
                guard access(object!, R_OK) == 0 else { throw CLIError("\(file): \(String(cString: strerror(errno)))") }
                section = kw["sec"]
            }
            let (session, dev, index) = try resolvePort(first, options)
            _ = try session.request(Family.devlink, DevlinkCmd.portProgramSet) {
                $0.putString(DevlinkAttr.devName, dev)
                $0.putU32(DevlinkAttr.portIndex, index)
                if let object { $0.putString(DevlinkAttr.portProgramObject, object) }
                if let section { $0.putString(DevlinkAttr.portProgramSection, section) }
            }
        }
    }
}

private func currentDirectory() -> String {
    var buf = [CChar](repeating: 0, count: 4096)
    guard getcwd(&buf, buf.count) != nil else { return "." }
    return String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// The session, device and index of a port given as DEV/INDEX or as its netdev.
func resolvePort(_ word: String, _ options: DevlinkOptions) throws -> (ControlSession, String, UInt32) {
    switch try PortHandle(word) {
    case .index(let d, let n):
        return (try options.session(d), d, n)
    case .netdev(let n):
        let session = try options.session(nil)
        guard let p = try fetchPorts(session, dev: nil).first(where: { $0.netdev == n }) else {
            throw CLIError("\(n): no such port (or give it as DEV/INDEX)")
        }
        return (session, p.dev, p.index)
    }
}
