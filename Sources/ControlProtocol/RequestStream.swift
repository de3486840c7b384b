import CNetLinux
import NetLinux
import Netlink

#if canImport(Glibc)
import Glibc
#endif

/// Requests sent as the caller makes them, with at most `window` unanswered, their
/// answers read as they come: the daemon works on the first requests of a big batch
/// while the caller is still making (parsing) the next ones. Never blocks on a send
/// while answers wait to be read (the daemon stops reading a client whose answers it
/// cannot send, so a client blocked on send would wait forever).
public final class RequestStream {
    private let client: ControlClient
    private let window: Int
    private var firstSequence: UInt32 = 0
    /// The requests not sent yet: `pendingCount` bytes at `pending`, raw memory that
    /// grows and is never emptied (an array's append was a hundred instructions whatever
    /// it appended, its emptying eighty, a flow file's request two appends and more).
    private var pending: UnsafeMutableRawPointer
    private var pendingCapacity = 64 << 10
    private var pendingCount = 0
    /// Requests submitted and answered so far; a request's index is its submit order.
    public private(set) var submitted = 0
    public private(set) var answered = 0
    /// The first failures (index, error) and how many there were.
    public private(set) var failures: [(index: Int, error: ControlError)] = []
    public private(set) var failureCount = 0
    /// Failures kept with their error (the rest are counted).
    public static let failuresKept = 10
    /// Past `bulk` requests the stream keeps to its CPU until it is finished: the daemon
    /// puts its helper threads beside it and its control thread on the other CPUs
    /// (HelperPlacement), and the scheduler would otherwise move this thread onto the
    /// control thread's CPU, which then looks the less busy.
    private var pin: CPUPin?
    static let bulk = 64

    /// The default window is larger than the replies the daemon sends at once (its
    /// `RequestRun.chunkBytes`, 256 KB: about 7,300 ACKs of 36 bytes). The daemon keeps
    /// serving what a streaming client sends meanwhile and answers a chunk at a time:
    /// with a smaller window the client stopped sending, the daemon ran out of requests
    /// before its chunk was full, and each took its turn to wait (a 50k add 5 % slower).
    public static let defaultWindow = 16384

    public init(_ client: ControlClient, window: Int = RequestStream.defaultWindow) {
        self.client = client
        self.window = window
        pending = UnsafeMutableRawPointer.allocate(byteCount: pendingCapacity, alignment: 16)
    }

    deinit { pending.deallocate() }

    /// Queues a request (sent in datagrams of about 48 KB), waiting for answers while
    /// `window` are unanswered.
    public func submit(_ request: GenericMessage) throws(ControlError) {
        try submit(family: request.header.type, command: request.command, version: request.version, flags: request.header.flags,
                   familyHeader: request.familyHeader, portID: request.header.portID, attributesLength: request.attributes.count) { p in
            request.attributes.withUnsafeBytes { if let a = $0.baseAddress { p.copyMemory(from: a, byteCount: $0.count) } }
        }
    }

    /// Queues a request whose attributes, `attributesLength` bytes, `writeAttributes` writes
    /// where they go in the send buffer (every byte of them: the memory is not cleared). A
    /// flow file's request is written there once, not made as a message and copied.
    public func submit(family: UInt16, command: UInt8, version: UInt8 = 1, flags: UInt16, familyHeader: Int32 = 0,
                       portID: UInt32 = 0, attributesLength: Int, _ writeAttributes: (UnsafeMutableRawPointer) -> Void) throws(ControlError) {
        let length = GenericMessage.fixedSize + attributesLength
        if pendingCount + length > pendingCapacity { grow(to: pendingCount + length) }
        let sequence = client.nextSequence()
        if submitted == 0 { firstSequence = sequence }
        // nlmsghdr, genlmsghdr and the family header as one store (the tuple has no padding).
        let header = (UInt32(length).littleEndian, family.littleEndian, (flags | NetlinkFlags.request | NetlinkFlags.ack).littleEndian,
                      sequence.littleEndian, portID.littleEndian, command, version, UInt16(0), familyHeader.littleEndian)
        let at = pending + pendingCount
        at.storeBytes(of: header, as: type(of: header))
        writeAttributes(at + GenericMessage.fixedSize)
        pendingCount += length
        submitted += 1
        if submitted == Self.bulk { pin = CPUPin() }
        if pendingCount >= 48_000 { try sendPending() }
        while submitted - answered > window { try readAnswers(waiting: true) }
    }

    private func grow(to needed: Int) {
        var capacity = pendingCapacity
        while capacity < needed { capacity *= 2 }
        let bigger = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 16)
        bigger.copyMemory(from: pending, byteCount: pendingCount)
        pending.deallocate()
        pending = bigger
        pendingCapacity = capacity
    }

    /// Sends what is queued and waits for every answer.
    public func finish() throws(ControlError) {
        defer {
            pin?.release()
            pin = nil
        }
        try sendPending()
        while answered < submitted { try readAnswers(waiting: true) }
    }

    private func sendPending() throws(ControlError) {
        while pendingCount > 0 {
            let n = Glibc.send(client.fd, pending, pendingCount, Int32(MSG_NOSIGNAL | MSG_DONTWAIT))
            if n >= 0 {
                pendingCount = 0
                break
            }
            let e = errno
            if e == EINTR { continue }
            guard e == EAGAIN || e == EWOULDBLOCK else {
                if e == EPIPE || e == ECONNRESET { throw client.connectionLost(e, "send") }
                throw ControlError(errno: e, message: "send")
            }
            // No room: read answers (that is what frees the daemon) until there is.
            var p = pollfd(fd: client.fd, events: Int16(POLLIN | POLLOUT), revents: 0)
            if poll(&p, 1, -1) < 0 && errno != EINTR { throw ControlError(errno: errno, message: "poll") }
            if p.revents & Int16(POLLIN | POLLHUP | POLLERR) != 0 { try readAnswers(waiting: false) }
        }
    }

    static let pollBeforeSleeping: UInt64 = 2_000_000

    private func readAnswers(waiting: Bool) throws(ControlError) {
        if waiting && pendingCount > 0 { try sendPending() }
        var got = try client.receiveDatagram(waiting: false)
        if got == nil && waiting {
            // Polled a while before sleeping: woken by the daemon's answer, this process
            // would be put on the daemon's CPU, and the two would take turns on it
            // (CPUPlacement). The daemon answers within a run's time (a millisecond).
            let until = Sys.monotonicNanoseconds() &+ Self.pollBeforeSleeping
            while got == nil && Sys.monotonicNanoseconds() < until { got = try client.receiveDatagram(waiting: false) }
            if got == nil { got = try client.receiveDatagram(waiting: true) }
        }
        guard let n = got else { return }
        // A plain ACK (errno 0, no text) is counted where it lies: one per request, so
        // most of what a big batch reads. Anything else is parsed as a message.
        let plainAck = NetlinkHeader.size + 4 + NetlinkHeader.size
        let parsedUpTo = client.withDatagram(n) { d in
            var at = 0
            while d.count - at >= plainAck {
                let length = Int(d.loadUnaligned(fromByteOffset: at, as: UInt32.self))
                let type = d.loadUnaligned(fromByteOffset: at + 4, as: UInt16.self)
                guard length == plainAck, type == NetlinkMessageType.error,
                      d.loadUnaligned(fromByteOffset: at + NetlinkHeader.size, as: Int32.self) == 0 else { break }
                countAnswer(sequence: d.loadUnaligned(fromByteOffset: at + 8, as: UInt32.self))
                at += plainAck
            }
            return at
        }
        let others = parsedUpTo < n ? try client.messages(from: parsedUpTo, to: n) : []
        for m in others where m.header.type == NetlinkMessageType.error {
            guard let index = countAnswer(sequence: m.header.sequence) else { continue }
            if let e = try? ErrorMessage(header: m.header, body: m.body), e.errno != 0 {
                failureCount += 1
                if failures.count < Self.failuresKept {
                    failures.append((index, ControlError(errno: e.errno, message: e.message ?? "")))
                }
            }
        }
    }

    /// Counts the answer to the request of `sequence`; its index, or nil for a
    /// sequence that is not one of this stream's requests.
    @discardableResult
    private func countAnswer(sequence: UInt32) -> Int? {
        let index = Int(sequence &- firstSequence)
        guard index >= 0 && index < submitted else { return nil }
        answered += 1
        return index
    }
}
