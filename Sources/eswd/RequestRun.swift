import Netlink

/// The requests of the datagrams read at once, answered in order as the client's socket
/// takes the answers (ControlServer.stream): a dump streams its replies a chunk at a
/// time, and the requests after it wait for its DONE. Nothing is answered ahead of the socket, so
/// a dump of a million flows never exists whole in memory.
final class RequestRun {
    /// About this much is produced per call (the server cuts it into datagrams).
    static let chunkBytes = 256 << 10

    enum Entry {
        case request(RawMessage)
        /// An answer made already (a datagram that was not even framed).
        case answer([UInt8])
        /// Handed over already (`take`).
        case taken
    }

    private var entries: [Entry]
    private var next = 0
    /// More requests of the client, read once these are answered (empty: none there now).
    private let refill: (() -> [Entry])?
    private var stream: (replies: ReplyStream, sequence: UInt32)?
    /// Takes the request (its reference to its datagram moves to the handler).
    private let handle: (consuming RawMessage, inout [UInt8]) -> ReplyStream?

    /// `refill`: the requests that came meanwhile, answered in the same chunk. A chunk is
    /// one batch of writes whose replies leave once its rules are in the tables; its end
    /// waits for the kernel's last writes. A client streaming a flow file fills the
    /// socket's buffer while the run before is served, so its next requests are there
    /// (at 50k flows the daemon read ~1,700 requests at a time, and waited at each run's end).
    init(_ entries: [Entry], handle: @escaping (consuming RawMessage, inout [UInt8]) -> ReplyStream?,
         refill: (() -> [Entry])? = nil) {
        self.entries = entries
        self.handle = handle
        self.refill = refill
    }

    /// Appends the next replies to `out` (empty): false once every request is answered.
    func produce(into out: inout [UInt8]) -> Bool {
        out.reserveCapacity(Self.chunkBytes + (16 << 10))
        while out.count < Self.chunkBytes {
            if let (replies, sequence) = stream {
                if !replies.next(into: &out, limit: Self.chunkBytes) {
                    out += encodeDone(sequence: sequence)
                    stream = nil
                }
                continue
            }
            if next == entries.count, let more = refill?(), !more.isEmpty {
                entries = more
                next = 0
            }
            guard next < entries.count else { break }
            next += 1
            switch take(next - 1) {
            case .request(let raw):
                let sequence = raw.header.sequence
                if let s = handle(raw, &out) { stream = (s, sequence) }
            case .answer(let bytes):
                out += bytes
            case .taken:
                break
            }
        }
        return !out.isEmpty
    }

    /// The entry at `i`, moved out (nothing reads it again): a copy of it took a reference
    /// to its datagram, and the entries' release of it was one more.
    private func take(_ i: Int) -> Entry {
        var taken = Entry.taken
        swap(&taken, &entries[i])
        return taken
    }
}
