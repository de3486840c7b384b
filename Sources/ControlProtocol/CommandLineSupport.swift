import Netlink
import ODP

#if canImport(Glibc)
import Glibc
#endif

/// Output for the command-line tools: unbuffered writes, errors prefixed with the
/// program's name as the OVS and iproute2 tools do.
public enum Console {
    nonisolated(unsafe) public static var program = "esw"

    public static func write(_ s: String, fd: Int32 = 1) {
        let bytes = Array(s.utf8)
        var off = 0
        while off < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + off, $0.count - off) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return }
            off += n
        }
    }

    public static func line(_ s: String) { write(s + "\n") }

    /// Lines not yet written: 64 KiB go in a write (and room for the line that passes it).
    nonisolated(unsafe) private static var pending = TextBuffer(capacity: 80 << 10)

    /// A line among many (a dump): written with others in 64 KiB writes; `flush()`
    /// writes the rest.
    public static func bufferedLine(_ s: String) {
        bufferedLine { $0.append(string: s) }
    }

    /// The same, the line appended to the buffer by `write` (no String of its own).
    public static func bufferedLine(_ write: (inout TextBuffer) -> Void) {
        write(&pending)
        pending.append(UInt8(ascii: "\n"))
        if pending.count >= 64 << 10 { flush() }
    }

    public static func flush() {
        pending.withUnsafeBytes { bytes in
            var off = 0
            while off < bytes.count {
                let n = Glibc.write(1, bytes.baseAddress! + off, bytes.count - off)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }
                off += n
            }
        }
        pending.removeAll()
    }
    public static func error(_ s: String) { write(program + ": " + s + "\n", fd: 2) }
}

/// A failure a command reports to its user in one sentence.
public struct CLIError: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}

/// A connection to one daemon, with the request shape every command uses.
public struct ControlSession {
    public let client: ControlClient

    /// Socket path: explicit, else $ESW_CONTROL, else the named switch's default.
    public init(control: String?, switchName: String?) throws(CLIError) {
        var path = control
        if path == nil, let env = getenv("ESW_CONTROL") { path = String(cString: env) }
        let target = path ?? defaultControlPath(switchName ?? "esw0")
        do { client = try ControlClient(path: target) } catch { throw CLIError(error.description) }
    }

    public func request(_ family: UInt16, _ command: UInt8, dump: Bool = false, echo: Bool = false,
                        flags extra: UInt16 = 0,
                        _ build: (inout AttributeWriter) -> Void = { _ in }) throws(CLIError) -> [GenericMessage] {
        var w = AttributeWriter()
        build(&w)
        var flags = extra
        if dump { flags |= NetlinkFlags.dump }
        if echo { flags |= NetlinkFlags.echo }
        let attributes: [UInt8]
        do { attributes = try w.finished() } catch { throw CLIError("the request cannot be sent: \(error)") }
        let m = GenericMessage(family: family, command: command, flags: flags, sequence: 0, attributes: attributes)
        do { return try client.transact(m) } catch { throw CLIError(error.description) }
    }
}

/// Lenient readers for reply attributes: a reply the CLI cannot read shows as empty,
/// it does not abort the listing.
extension [Attribute] {
    public func first(_ type: UInt16) -> Attribute? { first(where: { $0.type == type }) }
    public func string(_ type: UInt16) -> String? { first(type).flatMap { try? $0.string() } }
    public func u64(_ type: UInt16) -> UInt64 { first(type).flatMap { try? $0.u64() } ?? 0 }
    public func u32(_ type: UInt16) -> UInt32? { first(type).flatMap { try? $0.u32() } }
    public func u16(_ type: UInt16) -> UInt16? { first(type).flatMap { try? $0.u16() } }
    public func u8(_ type: UInt16) -> UInt8? { first(type).flatMap { try? $0.u8() } }
    public func bytes(_ type: UInt16) -> [UInt8]? { first(type).map { [UInt8]($0.payload) } }
}
