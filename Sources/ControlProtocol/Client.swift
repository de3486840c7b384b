import Netlink

#if canImport(Glibc)
import Glibc
#endif

/// An error a request came back with: errno and the daemon's message.
public struct ControlError: Error, Sendable, CustomStringConvertible {
    public let errno: Int32
    public let message: String

    public init(errno: Int32, message: String) {
        self.errno = errno
        self.message = message
    }

    public var description: String {
        let text = String(cString: strerror(errno))
        return message.isEmpty ? text : "\(message) (\(text))"
    }
}

/// A connection to eswd's control socket (SOCK_SEQPACKET: one datagram may carry
/// several netlink messages, and message boundaries survive).
public final class ControlClient {
    let fd: Int32
    private var sequence: UInt32 = 0
    public let path: String

    public init(path: String) throws(ControlError) {
        self.path = path
        fd = socket(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw ControlError(errno: errno, message: "socket") }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else {
            close(fd)
            throw ControlError(errno: ENAMETOOLONG, message: path)
        }
        withUnsafeMutableBytes(of: &addr.sun_path) { p in
            for (i, b) in bytes.enumerated() { p[i] = b }
        }
        let r = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        if r != 0 {
            let e = errno
            close(fd)
            if e == EACCES || e == EPERM { throw Self.rootOnly(path, errno: e) }
            throw ControlError(errno: e, message: "cannot connect to \(path) (is eswd running?)")
        }
    }

    /// What a client that is not root is told: the socket file (mode 0600, in a 0700
    /// directory) refuses its connect, or eswd, checking the peer's credentials, closes
    /// the connection it accepted.
    static func rootOnly(_ path: String, errno: Int32) -> ControlError {
        ControlError(errno: errno, message: "the control socket \(path) is root-only (eswd answers uid 0 alone; "
                     + "this is uid \(geteuid())): run as root")
    }

    /// A connection that fails after connect: refused credentials if we are not root,
    /// else the daemon went away.
    func connectionLost(_ e: Int32, _ what: String) -> ControlError {
        if geteuid() != 0 { return Self.rootOnly(path, errno: e) }
        return ControlError(errno: e, message: "\(what) on \(path): eswd closed the connection")
    }

    deinit { close(fd) }

    public func nextSequence() -> UInt32 {
        sequence &+= 1
        return sequence
    }

    public func send(_ bytes: [UInt8]) throws(ControlError) {
        let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        if n < 0 {
            let e = errno
            if e == EPIPE || e == ECONNRESET { throw connectionLost(e, "send") }
            throw ControlError(errno: e, message: "send")
        }
    }

    private var buffer = [UInt8](untouchedCount: 1 << 20)

    /// Receives one datagram and splits it into messages.
    public func receive() throws(ControlError) -> [RawMessage] {
        try receive(waiting: true) ?? []
    }

    /// Receives one datagram; without `waiting`, nil when none is there.
    func receive(waiting: Bool) throws(ControlError) -> [RawMessage]? {
        guard let n = try receiveDatagram(waiting: waiting) else { return nil }
        return try messages(from: 0, to: n)
    }

    /// Receives one datagram into the receive buffer and returns its length; without
    /// `waiting`, nil when none is there. `withDatagram` reads it in place.
    func receiveDatagram(waiting: Bool) throws(ControlError) -> Int? {
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.recv(fd, $0.baseAddress, $0.count, waiting ? 0 : Int32(MSG_DONTWAIT)) }
            if n < 0 {
                let e = errno
                if e == EINTR { continue }
                if !waiting && (e == EAGAIN || e == EWOULDBLOCK) { return nil }
                if e == ECONNRESET || e == EPIPE { throw connectionLost(e, "receive") }
                throw ControlError(errno: e, message: "receive")
            }
            if n == 0 { throw connectionLost(ECONNRESET, "receive") }
            return n
        }
    }

    /// Reads the first `count` bytes of the receive buffer (the last datagram) in place.
    func withDatagram<R>(_ count: Int, _ body: (UnsafeRawBufferPointer) -> R) -> R {
        buffer.withUnsafeBytes { body(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
    }

    /// The messages of the last datagram from byte `start` to `end`.
    func messages(from start: Int, to end: Int) throws(ControlError) -> [RawMessage] {
        do { return try MessageParser.split(Array(buffer[start..<end])) } catch {
            throw ControlError(errno: EPROTO, message: "malformed reply: \(error)")
        }
    }

    /// Sends one request and collects its replies until the ACK, the end of a dump, or
    /// an error.
    public func transact(_ request: GenericMessage) throws(ControlError) -> [GenericMessage] {
        var out: [GenericMessage] = []
        try exchange(request, flags: NetlinkFlags.request | NetlinkFlags.ack) { out.append($0) }
        return out
    }

    /// Sends a dump request and hands each reply to `body` as it arrives (a big dump is
    /// never held whole).
    public func dump(_ request: GenericMessage, _ body: (GenericMessage) throws -> Void) throws {
        var failure: Error?
        try exchange(request, flags: NetlinkFlags.request | NetlinkFlags.ack | NetlinkFlags.dump) { m in
            guard failure == nil else { return }
            do { try body(m) } catch { failure = error }
        }
        if let failure { throw failure }
    }

    /// Sends `request` with `flags` and hands each reply to `body` until the ACK, DONE or
    /// an error (thrown as such).
    private func exchange(_ request: GenericMessage, flags: UInt16,
                          _ body: (GenericMessage) -> Void) throws(ControlError) {
        var req = request
        req.header.sequence = nextSequence()
        req.header.flags |= flags
        try send(req.encoded())
        while true {
            for m in try receive() where m.header.sequence == req.header.sequence {
                switch m.header.type {
                case NetlinkMessageType.error:
                    let e: ErrorMessage
                    do { e = try ErrorMessage(header: m.header, body: m.body) } catch {
                        throw ControlError(errno: EPROTO, message: "\(error)")
                    }
                    if e.errno != 0 { throw ControlError(errno: e.errno, message: e.message ?? "") }
                    return
                case NetlinkMessageType.done:
                    return
                default:
                    let g: GenericMessage
                    do { g = try GenericMessage(header: m.header, body: m.body) } catch {
                        throw ControlError(errno: EPROTO, message: "\(error)")
                    }
                    body(g)
                }
            }
        }
    }

    /// Sends many requests, keeping at most `window` unanswered, and returns each
    /// request's outcome in order (nil on success). Used for batches of flows.
    public func pipeline(_ requests: [GenericMessage], window: Int = 256,
                         progress: ((Int) -> Void)? = nil) throws(ControlError) -> [ControlError?] {
        var results = [ControlError?](repeating: nil, count: requests.count)
        var seqIndex: [UInt32: Int] = [:]
        var next = 0, done = 0
        var pendingBytes: [UInt8] = []
        while done < requests.count {
            // Fill the window, several messages per datagram.
            while next < requests.count && next - done < window {
                var r = requests[next]
                r.header.sequence = nextSequence()
                r.header.flags |= NetlinkFlags.request | NetlinkFlags.ack
                seqIndex[r.header.sequence] = next
                pendingBytes += r.encoded()
                next += 1
                if pendingBytes.count > 48_000 {
                    try send(pendingBytes)
                    pendingBytes.removeAll(keepingCapacity: true)
                }
            }
            if !pendingBytes.isEmpty {
                try send(pendingBytes)
                pendingBytes.removeAll(keepingCapacity: true)
            }
            for m in try receive() where m.header.type == NetlinkMessageType.error {
                guard let idx = seqIndex.removeValue(forKey: m.header.sequence) else { continue }
                if let e = try? ErrorMessage(header: m.header, body: m.body), e.errno != 0 {
                    results[idx] = ControlError(errno: e.errno, message: e.message ?? "")
                }
                done += 1
                progress?(done)
            }
        }
        return results
    }
}

extension Array where Element == UInt8 {
    /// `count` bytes for reads to land in, not written here: only the bytes a read
    /// wrote are ever looked at. An array this big is mostly a fresh mapping, faulted in
    /// only where a read lands; zeroing it first faulted every page (the CLI's two
    /// 1 MiB buffers: 512 of a command's 940 page faults, half a millisecond each).
    public init(untouchedCount count: Int) {
        self.init(unsafeUninitializedCapacity: count) { _, initialized in initialized = count }
    }
}
