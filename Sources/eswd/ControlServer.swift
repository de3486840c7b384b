import CNetLinux
import Logging
import NetLinux
import Netlink

/// The control socket: a root-only (0600) SOCK_SEQPACKET UNIX socket carrying netlink
/// messages. Every request gets an answer; a malformed one gets an errno and a
/// message, and the connection (and the daemon) go on.
final class ControlServer {
    let path: String
    let listener: FileDescriptor
    private(set) var clients: [Int32: Client] = [:]
    let logger: Logger

    final class Client {
        let fd: FileDescriptor
        var subscribed = false
        init(_ fd: consuming FileDescriptor) { self.fd = fd }
    }

    /// A reply being built for one request.
    struct Reply {
        var bytes: [UInt8] = []
        let sequence: UInt32
        let requestType: UInt16

        mutating func message(_ m: GenericMessage) {
            var mm = m
            mm.header.sequence = sequence
            bytes += mm.encoded()
        }
    }

    init(path: String, logger: Logger) throws {
        self.path = path
        self.logger = logger
        let dir = path.split(separator: "/").dropLast().joined(separator: "/")
        if !dir.isEmpty { _ = mkdir("/" + dir, 0o700) }
        unlink(path)
        let fd = try Sys.socket(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue), 0)
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else { throw SystemError("bind \(path)", errno: ENAMETOOLONG) }
        withUnsafeMutableBytes(of: &addr.sun_path) { p in for (i, b) in bytes.enumerated() { p[i] = b } }
        let old = umask(0o177)
        let r = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd.raw, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        umask(old)
        guard r == 0 else { throw SystemError("bind \(path)", errno: errno) }
        chmod(path, 0o600)
        guard listen(fd.raw, 64) == 0 else { throw SystemError("listen", errno: errno) }
        try fd.setNonBlocking()
        listener = fd
    }

    deinit { unlink(path) }

    func accept() -> Int32? {
        var uid: UInt32 = 0
        let c = cnl_accept_peer(listener.raw, &uid)
        guard c >= 0 else { return nil }
        // Root only: the socket file is 0600, and the peer must be uid 0 as well.
        if uid != 0 {
            logger.warning("refused control connection from uid \(uid)")
            close(c)
            return nil
        }
        clients[c] = Client(FileDescriptor(adopting: c))
        return c
    }

    func drop(_ fd: Int32) { clients[fd] = nil }

    private var buffer = [UInt8](repeating: 0, count: 1 << 20)

    /// Reads one datagram: nil on EOF (drop the client), [] when nothing is there.
    func read(_ fd: Int32) -> [UInt8]? {
        let n = buffer.withUnsafeMutableBytes { Glibc.recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
        if n == 0 { return nil }
        if n < 0 { return errno == EAGAIN || errno == EINTR ? [] : nil }
        return Array(buffer[0..<n])
    }

    /// Sends `bytes` to a client, in datagrams of whole messages no larger than 64 KB.
    func send(_ fd: Int32, _ bytes: [UInt8]) {
        var i = 0
        while i < bytes.count {
            var end = i
            while end < bytes.count {
                let len = Int(bytes[end]) | Int(bytes[end + 1]) << 8 | Int(bytes[end + 2]) << 16 | Int(bytes[end + 3]) << 24
                if end > i && end + len - i > 65536 { break }
                end += netlinkAlign(len)
            }
            let chunk = bytes[i..<min(end, bytes.count)]
            var sent = -1
            while sent < 0 {
                sent = chunk.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                if sent < 0 && errno == EAGAIN {
                    // The client reads slowly: wait for room rather than lose replies.
                    var pfd = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                    _ = poll(&pfd, 1, 1000)
                    continue
                }
                if sent < 0 { return }
            }
            i = min(end, bytes.count)
        }
    }
}

extension GenericMessage {
    /// A reply message of `family` with the request's sequence.
    static func reply(family: UInt16, command: UInt8, sequence: UInt32, multi: Bool = false, attributes: [UInt8]) -> GenericMessage {
        GenericMessage(family: family, command: command, flags: multi ? NetlinkFlags.multi : 0, sequence: sequence,
                       attributes: attributes)
    }
}
