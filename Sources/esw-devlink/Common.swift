import ArgumentParser
import ControlProtocol
import Netlink

#if canImport(Glibc)
import Glibc
#endif

/// Options every command shares: which socket, and JSON output.
struct DevlinkOptions: ParsableArguments {
    @Option(name: .customLong("control"),
            help: "Control socket (default: /run/esw/<DEV>.sock, or $ESW_CONTROL).")
    var control: String?

    @Flag(name: [.customShort("j"), .customLong("json")], help: "JSON output.")
    var json = false

    @Flag(name: [.customShort("p"), .customLong("pretty")], help: "Pretty JSON.")
    var pretty = false

    /// The socket of `dev`; without a device, the default socket (whatever device it
    /// serves answers).
    func session(_ dev: String?) throws -> ControlSession {
        try ControlSession(control: control, switchName: dev)
    }

    /// The socket for a word that names a device or a port netdev: the device's own
    /// socket when one by that name exists, else the default socket.
    func session(deviceOrPort word: String) throws -> ControlSession {
        try session(access(defaultControlPath(word), F_OK) == 0 ? word : nil)
    }

    func emit(_ value: JSON) { Console.line(value.serialized(pretty: pretty)) }
}

extension AttributeWriter {
    /// The device a request is for; without one the daemon answers for the device it
    /// serves (devlink's "all devices", one per socket).
    mutating func putDevice(_ dev: String?) {
        if let dev { putString(DevlinkAttr.devName, dev) }
    }
}

/// Runs `body`, turning errors into `esw-devlink: …` and exit status 1.
func cli(_ body: () throws -> Void) throws {
    do { try body() } catch let e as ExitCode { throw e } catch {
        Console.error("\(error)")
        throw ExitCode(1)
    }
}

/// devlink's `DEV/PORT_INDEX` handle, or a netdev name resolved later.
enum PortHandle {
    case index(dev: String, port: UInt32)
    case netdev(String)

    init(_ text: String) throws {
        if let slash = text.lastIndex(of: "/") {
            let dev = String(text[..<slash])
            guard !dev.isEmpty, let n = UInt32(text[text.index(after: slash)...]) else {
                throw CLIError("\(text): expected DEV/PORT_INDEX (e.g. esw0/1) or a port netdev name")
            }
            self = .index(dev: dev, port: n)
        } else {
            self = .netdev(text)
        }
    }
}

extension [UInt8] {
    var macText: String {
        map { b in
            let h = String(b, radix: 16)
            return b < 16 ? "0" + h : h
        }.joined(separator: ":")
    }
}

/// Parses aa:bb:cc:dd:ee:ff.
func parseMAC(_ s: String) throws -> [UInt8] {
    let parts = s.split(separator: ":", omittingEmptySubsequences: false)
    guard parts.count == 6 else { throw CLIError("\(s): a MAC address has six colon-separated bytes") }
    return try parts.map { p in
        guard p.count >= 1, p.count <= 2, let b = UInt8(p, radix: 16) else { throw CLIError("\(s): bad byte '\(p)'") }
        return b
    }
}

/// Keyword arguments as devlink takes them: `name X value Y cmode Z`.
func keywordArguments(_ words: [String], allowed: Set<String>) throws -> [String: String] {
    guard words.count % 2 == 0 else { throw CLIError("\(words.last ?? ""): missing value") }
    var out: [String: String] = [:]
    var i = 0
    while i < words.count {
        guard allowed.contains(words[i]) else {
            throw CLIError("unknown keyword '\(words[i])' (expected one of: \(allowed.sorted().joined(separator: ", ")))")
        }
        out[words[i]] = words[i + 1]
        i += 2
    }
    return out
}
