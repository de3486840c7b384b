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
    }

    private let entries: [Entry]
    private var next = 0
    private var stream: (replies: ReplyStream, sequence: UInt32)?
    private let handle: (RawMessage, inout [UInt8]) -> ReplyStream?

    init(_ entries: [Entry], handle: @escaping (RawMessage, inout [UInt8]) -> ReplyStream?) {
        self.entries = entries
        self.handle = handle
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
            guard next < entries.count else { break }
            next += 1
            // The entry where it lies (a copy of it took a reference to its datagram).
            switch entries[next - 1] {
            case .request(let raw):
                if let s = handle(raw, &out) { stream = (s, raw.header.sequence) }
            case .answer(let bytes):
                out += bytes
            }
        }
        return !out.isEmpty
    }
}
