import CNetLinux
import Logging
import NetLinux
import Netlink

/// The control socket: a root-only (0600) SOCK_SEQPACKET UNIX socket carrying netlink
/// messages. Every request gets an answer; a malformed one gets an errno and a
/// message, and the connection (and the daemon) go on.
///
/// One thread serves every client, so no send may wait for a client: what a socket
/// does not take goes to the client's backlog, sent when it has room again. A client
/// with a backlog is not read from (its requests wait, as its replies do). Upcall
/// notifications beyond a small backlog are dropped and counted (as the kernel's
/// `lost`); a client that leaves its replies unread for `stallTimeout` is disconnected.
final class ControlServer {
    let path: String
    let listener: FileDescriptor
    private(set) var clients: [Int32: Client] = [:]
    /// The buffer chunks of streamed replies are produced into (`pump`).
    private var chunkBuffer: [UInt8] = []
    let logger: Logger

    /// Notifications are dropped once this much waits for the client.
    static let notificationBacklogLimit = 256 << 10
    /// Replies beyond this (a dump far larger than any table) disconnect the client.
    static let replyBacklogLimit = 512 << 20
    /// A backlog holding replies that has not moved for this long disconnects the client.
    static let stallTimeoutNanoseconds: UInt64 = 5_000_000_000

    /// A client's backlog appeared (true: wait for room, stop reading its requests) or
    /// drained (false). The daemon changes its epoll interest.
    var onBacklogChange: ((Int32, Bool) -> Void)?
    /// A client is about to be disconnected by the server (its fd closes right after).
    var onDisconnect: ((Int32) -> Void)?
    /// Clients disconnected for not reading (since start).
    private(set) var laggardsDisconnected: UInt64 = 0

    final class Client {
        let fd: FileDescriptor
        var subscribed = false
        /// Datagrams the socket did not take yet, oldest first from `backlogHead`.
        fileprivate var backlog: [(bytes: [UInt8], isReply: Bool)] = []
        fileprivate var backlogHead = 0
        fileprivate(set) var backlogBytes = 0
        fileprivate var repliesWaiting = 0
        /// When the backlog last moved (or appeared).
        fileprivate var lastProgress: UInt64 = 0
        /// Upcall notifications dropped because the client did not read them.
        fileprivate(set) var droppedNotifications: UInt64 = 0
        /// Produces the rest of the replies to the requests being served (nil: no more):
        /// asked for more only when the socket took everything before.
        fileprivate var producer: ((inout [UInt8]) -> Bool)?
        /// The client process (SO_PEERCRED), and when the daemon last looked at which
        /// CPU it runs on (`CPUPlacement`).
        let pid: Int32
        var lastPlacementCheck: UInt64 = 0
        init(_ fd: consuming FileDescriptor, pid: Int32) {
            self.fd = fd
            self.pid = pid
        }

        fileprivate var hasBacklog: Bool { backlogHead < backlog.count }
        /// Replies wait for the socket to take them: the client's further requests wait too.
        var isWaitingForRoom: Bool { hasBacklog || producer != nil }
    }

    /// A reply being built for one request.
    struct Reply {
        var bytes: [UInt8] = []
        /// Replies too many to build at once (a dump of a big table), produced as the
        /// client's socket takes them; the dump's DONE follows them.
        var stream: ReplyStream?
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
        // The file may be a killed daemon's (no one answers, replace it), never a live
        // one's: that one would be left unreachable, and our stop would remove its file.
        if Self.isAnswered(path) { throw SystemError("control socket \(path) is in use by a live eswd", errno: EADDRINUSE) }
        unlink(path)
        let fd = try Sys.socket(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue), 0)
        var addr = try Self.address(path)
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

    static func address(_ path: String) throws(SystemError) -> sockaddr_un {
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else { throw SystemError("bind \(path)", errno: ENAMETOOLONG) }
        withUnsafeMutableBytes(of: &addr.sun_path) { p in for (i, b) in bytes.enumerated() { p[i] = b } }
        return addr
    }

    /// Whether a process accepts connections on the socket at `path` (a live eswd: two
    /// daemons of one --name share /run/esw/NAME.sock from different namespaces). A
    /// file no one listens on (ECONNREFUSED) is a dead daemon's.
    static func isAnswered(_ path: String) -> Bool {
        guard var addr = try? address(path) else { return false }
        let fd = socket(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        let r = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        return r == 0
    }

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
        clients[c] = Client(FileDescriptor(adopting: c), pid: cnl_peer_pid(c))
        return c
    }

    func drop(_ fd: Int32) {
        guard let c = clients[fd] else { return }
        forget(c)
    }

    /// The client leaves the server, and its socket closes. Its producer is dropped
    /// first: the run it serves holds the client (its request handler does), and the
    /// two held each other, the socket open, after a disconnect.
    private func forget(_ c: Client) {
        c.producer = nil
        clients[c.fd.raw] = nil
    }

    private var buffer = [UInt8](repeating: 0, count: 1 << 20)

    /// Reads one datagram: nil on EOF (drop the client), [] when nothing is there.
    func read(_ fd: Int32) -> [UInt8]? {
        let n = buffer.withUnsafeMutableBytes { Glibc.recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
        if n == 0 { return nil }
        if n < 0 { return errno == EAGAIN || errno == EINTR ? [] : nil }
        return Array(buffer[0..<n])
    }

    /// At most this much is read at once (`readAvailable`).
    static let readAvailableBytes = 1 << 20
    /// At most about this much of a client's requests is served in one run (RequestRun's
    /// refill) before other clients are looked at.
    static let runBytes = 4 << 20

    /// Reads the datagrams a client has queued now, up to about `readAvailableBytes`:
    /// nil on EOF before any, [] when nothing is there. A stream of requests (an
    /// add-flows) is then answered as one run, so the kernel's writes of its rules
    /// overlap the decoding of the next ones across datagrams (BPFDataPlane's writer).
    func readAvailable(_ fd: Int32) -> [[UInt8]]? {
        var out: [[UInt8]] = []
        var bytes = 0
        while bytes < Self.readAvailableBytes {
            guard let d = read(fd) else { return out.isEmpty ? nil : out }
            if d.isEmpty { break }
            bytes += d.count
            out.append(d)
        }
        return out
    }

    /// Sends replies to a client, in datagrams of whole messages no larger than 64 KB;
    /// what the socket does not take now waits in the client's backlog.
    func send(_ fd: Int32, _ bytes: [UInt8]) {
        guard let c = clients[fd] else { return }
        enqueue(c, bytes, isReply: true)
        if c.backlogBytes > Self.replyBacklogLimit { disconnect(c, "more than \(Self.replyBacklogLimit >> 20) MiB of replies unread") }
    }

    /// Sends the replies `producer` makes, a chunk at a time while the client's socket
    /// takes them; the rest (and the client's next requests) wait for room.
    func stream(_ fd: Int32, _ producer: @escaping (inout [UInt8]) -> Bool) {
        guard let c = clients[fd] else { return }
        let wasWaiting = c.isWaitingForRoom
        c.producer = producer
        pump(c)
        guard clients[fd] === c else { return }
        if !wasWaiting && c.isWaitingForRoom {
            c.lastProgress = Sys.monotonicNanoseconds()
            onBacklogChange?(fd, true)
        }
    }

    /// Asks the producer for more while the socket takes everything.
    private func pump(_ c: Client) {
        while let p = c.producer, !c.hasBacklog, clients[c.fd.raw] === c {
            // One buffer for every chunk: a fresh 256 KB array a chunk faulted its pages
            // in again each time (a fifth of a million-flow dump).
            var chunk = chunkBuffer
            chunkBuffer = []
            chunk.removeAll(keepingCapacity: true)
            // Kept only at chunk size: a reply that is not streamed comes whole (a big
            // conntrack dump), and its buffer must not stay for the daemon's life.
            defer { chunkBuffer = chunk.capacity <= 2 * RequestRun.chunkBytes ? chunk : [] }
            guard p(&chunk) else {
                c.producer = nil
                return
            }
            enqueue(c, chunk, isReply: true)
        }
    }

    /// Sends an upcall notification, unless the client already has a backlog of them:
    /// false when it was dropped.
    func notify(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        guard let c = clients[fd] else { return false }
        guard c.backlogBytes + bytes.count <= Self.notificationBacklogLimit else {
            c.droppedNotifications += 1
            // The first of a run, then every 10,000th: a stuck monitor is visible, not noisy.
            if c.droppedNotifications % 10_000 == 1 {
                logger.warning("control client does not read its upcalls: dropping them",
                               metadata: ["fd": "\(fd)", "dropped": "\(c.droppedNotifications)"])
            }
            return false
        }
        enqueue(c, bytes, isReply: false)
        return true
    }

    /// The socket has room again: sends what waits.
    func flush(_ fd: Int32) {
        guard let c = clients[fd] else { return }
        flush(c)
    }

    /// Disconnects clients whose replies have waited without moving for the stall timeout.
    func disconnectStalled(now: UInt64) {
        for c in clients.values where c.repliesWaiting > 0 && now &- c.lastProgress > Self.stallTimeoutNanoseconds {
            disconnect(c, "replies unread for \(Self.stallTimeoutNanoseconds / 1_000_000_000) s")
        }
    }

    private func enqueue(_ c: Client, _ bytes: [UInt8], isReply: Bool) {
        let wasWaiting = c.isWaitingForRoom
        var i = 0
        while i < bytes.count {
            let end = Self.datagramEnd(bytes, from: i)
            // In order: nothing goes straight out while older datagrams wait.
            if c.hasBacklog || !sendNow(c, bytes[i..<end]) {
                guard clients[c.fd.raw] === c else { return }
                c.backlog.append((Array(bytes[i..<end]), isReply))
                c.backlogBytes += end - i
                if isReply { c.repliesWaiting += 1 }
            }
            i = end
        }
        if !wasWaiting && c.isWaitingForRoom {
            c.lastProgress = Sys.monotonicNanoseconds()
            onBacklogChange?(c.fd.raw, true)
        }
    }

    private func flush(_ c: Client) {
        let wasWaiting = c.isWaitingForRoom
        while c.hasBacklog {
            let (bytes, isReply) = c.backlog[c.backlogHead]
            guard sendNow(c, bytes[...]) else { break }
            c.backlog[c.backlogHead] = ([], isReply)
            c.backlogHead += 1
            c.backlogBytes -= bytes.count
            if isReply { c.repliesWaiting -= 1 }
            c.lastProgress = Sys.monotonicNanoseconds()
        }
        guard clients[c.fd.raw] === c else { return }
        if !c.hasBacklog && !c.backlog.isEmpty {
            c.backlog.removeAll()
            c.backlogHead = 0
        }
        pump(c)
        guard clients[c.fd.raw] === c else { return }
        if wasWaiting && !c.isWaitingForRoom { onBacklogChange?(c.fd.raw, false) }
    }

    /// One non-blocking send: false when the socket has no room (or the client went,
    /// in which case it is disconnected).
    private func sendNow(_ c: Client, _ datagram: ArraySlice<UInt8>) -> Bool {
        while true {
            let sent = datagram.withUnsafeBytes { Glibc.send(c.fd.raw, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
            if sent >= 0 { return true }
            switch errno {
            case EINTR: continue
            case EAGAIN: return false
            default:
                disconnect(c, "send: \(String(cString: strerror(errno)))")
                return false
            }
        }
    }

    private func disconnect(_ c: Client, _ why: String) {
        let fd = c.fd.raw
        guard clients[fd] === c else { return }
        laggardsDisconnected += 1
        logger.warning("control client disconnected: \(why)",
                       metadata: ["fd": "\(fd)", "backlog_bytes": "\(c.backlogBytes)",
                                  "dropped_upcalls": "\(c.droppedNotifications)", "total": "\(laggardsDisconnected)"])
        onDisconnect?(fd)
        forget(c)
    }

    /// Where the datagram that starts at `start` ends: whole messages, at most 64 KB
    /// unless one message alone is larger.
    static func datagramEnd(_ bytes: [UInt8], from start: Int) -> Int {
        var end = start
        while end + 4 <= bytes.count {
            let len = Int(bytes[end]) | Int(bytes[end + 1]) << 8 | Int(bytes[end + 2]) << 16 | Int(bytes[end + 3]) << 24
            if end > start && end + len - start > 65536 { break }
            end += max(16, netlinkAlign(len))
        }
        return min(max(end, start + 1), bytes.count)
    }
}

/// Replies produced a bit at a time (see ControlServer.Reply.stream).
protocol ReplyStream: AnyObject {
    /// Appends the next replies, about `limit` bytes: false once there are no more.
    func next(into out: inout [UInt8], limit: Int) -> Bool
}

extension GenericMessage {
    /// A reply message of `family` with the request's sequence.
    static func reply(family: UInt16, command: UInt8, sequence: UInt32, multi: Bool = false, attributes: [UInt8]) -> GenericMessage {
        GenericMessage(family: family, command: command, flags: multi ? NetlinkFlags.multi : 0, sequence: sequence,
                       attributes: attributes)
    }
}
