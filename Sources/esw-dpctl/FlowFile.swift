import ControlProtocol
import Netlink
import ODP

#if canImport(Glibc)
import Glibc
#endif

/// Calls `body` with each line of FILE (or stdin for "-") and its number, reading 1 MiB
/// at a time: the first lines are parsed (and their requests sent) before the rest of
/// the file is read. A line is lent where it lies (a slice of the buffer was a reference
/// counted per line).
func forEachLine(_ path: String, _ body: (Int, UnsafeBufferPointer<UInt8>) throws -> Void) throws {
    let file: UnsafeMutablePointer<FILE>
    if path == "-" {
        guard let f = fdopen(dup(0), "r") else { throw CLIError("stdin: \(String(cString: strerror(errno)))") }
        file = f
    } else {
        guard let f = fopen(path, "r") else { throw CLIError("\(path): \(String(cString: strerror(errno)))") }
        file = f
    }
    defer { fclose(file) }
    let size = 1 << 20
    let buf = UnsafeMutablePointer<UInt8>.allocate(capacity: size)
    defer { buf.deallocate() }
    var carry: [UInt8] = []
    var number = 0
    while true {
        let n = fread(buf, 1, size, file)
        if n <= 0 { break }
        var start = 0
        while start < n {
            // memchr: a byte loop in Swift costs more than the parse of a short line.
            guard let nl = memchr(buf + start, Int32(UInt8(ascii: "\n")), n - start) else { break }
            let end = UnsafeMutableRawPointer(buf).distance(to: nl)
            number += 1
            if carry.isEmpty {
                try body(number, UnsafeBufferPointer(start: buf + start, count: end - start))
            } else {
                carry += UnsafeBufferPointer(start: buf + start, count: end - start)
                try carry.withUnsafeBufferPointer { try body(number, $0) }
                carry.removeAll(keepingCapacity: true)
            }
            start = end + 1
        }
        if start < n { carry += UnsafeBufferPointer(start: buf + start, count: n - start) }
    }
    if !carry.isEmpty { try carry.withUnsafeBufferPointer { try body(number + 1, $0) } }
}

/// What a flow file holds, for the commands' help (`FlowFileRequests.split` reads it).
enum FlowFile {
    static let syntax = """
        Each line is [add|modify|delete] FLOW [ACTIONS], as ovs-dpctl reads a flow file: the word, the \
        flow and the actions are separated by spaces, tabs or a carriage return; without a word the \
        line does what the command does. A '#' starts a comment to the end of the line; blank lines \
        are skipped. The file is one transaction: a line that does not parse is reported with its \
        number and column, and nothing of the file is applied (what was sent before it is undone).
        """
}

/// A flow file's lines as requests (add-flows, mod-flows, del-flows FILE): each line's
/// request is written into the stream's send buffer, from the key and mask (whose storage
/// is kept from line to line) and the actions parsed. A method of its own, not a closure
/// over the caller's variables: those were captured by address, not exclusively, and
/// every use of one of their arrays took and gave back a reference (about forty a line,
/// a quarter of the CLI's time).
struct FlowFileRequests {
    enum Op { case add, modify, delete }

    let path: String
    let defaultOp: Op
    let batchID: UInt32
    /// Each line's key and mask, the attributes it repeats from the line before copied.
    private var keys: KeyLines
    /// The last action text and what it parsed to: the lines of a flow file mostly share
    /// their actions. (No line's text is empty: a line without actions is refused first.)
    private var lastActionText: [UInt8] = []
    private var lastActions: [UInt8] = []

    init(path: String, defaultCommand: String, batchID: UInt32, portNames: [String: UInt32]) {
        self.path = path
        defaultOp = defaultCommand == "add" ? .add : defaultCommand == "modify" ? .modify : .delete
        self.batchID = batchID
        keys = KeyLines(portNames: portNames)
    }

    /// The batch's commit or abort request.
    func batchControl(abort: Bool) -> GenericMessage {
        var w = AttributeWriter()
        w.putU32(FlowAttr.batch, batchID)
        w.putFlag(abort ? FlowAttr.batchAbort : FlowAttr.batchEnd)
        return GenericMessage(family: Family.flow, command: FlowCmd.get, flags: 0, sequence: 0, attributes: w.bytes)
    }

    /// What separates a line's parts, as ovs-dpctl's flow files have it (dpctl_parse_flow_line):
    /// spaces, tabs and carriage returns.
    private static func isBlank(_ c: UInt8) -> Bool {
        c == UInt8(ascii: " ") || c == UInt8(ascii: "\t") || c == UInt8(ascii: "\r")
    }

    /// Where a line's parts lie: its command word if written, its flow and its actions
    /// (indices of the line); nil for a blank line or a comment.
    struct LineParts {
        var op: Op?
        var flow: Range<Int>
        var actions: Range<Int>
    }

    /// Found by index over the line's bytes (ASCII): an ArraySlice's removeFirst per
    /// blank, and an array of the command words made per line, cost more than the rest
    /// of the line's encoding besides the key.
    static func split(_ b: UnsafeBufferPointer<UInt8>) -> LineParts? {
        guard let start = b.baseAddress else { return nil }
        var s = 0, e = b.count
        // A comment runs from any '#' to the line's end, as OVS reads flow files
        // (ds_get_preprocessed_line); no flow or action text has one.
        if let hash = memchr(start, Int32(UInt8(ascii: "#")), e) { e = UnsafeRawPointer(start).distance(to: hash) }
        while s < e, isBlank(b[s]) { s += 1 }
        while e > s, isBlank(b[e - 1]) { e -= 1 }
        if s == e { return nil }
        // A command word ends where a blank or a comma does.
        func starts(with word: StaticString) -> Bool {
            let n = word.utf8CodeUnitCount
            return e - s > n && memcmp(start + s, word.utf8Start, n) == 0
                && (isBlank(b[s + n]) || b[s + n] == UInt8(ascii: ","))
        }
        var op: Op?
        switch b[s] {
        case UInt8(ascii: "a") where starts(with: "add"): op = .add; s += 3
        case UInt8(ascii: "m") where starts(with: "modify"): op = .modify; s += 6
        case UInt8(ascii: "d") where starts(with: "delete"): op = .delete; s += 6
        default: break
        }
        while s < e, isBlank(b[s]) { s += 1 }
        let f = firstBlank(b, from: s, to: e)
        var a = f
        while a < e, isBlank(b[a]) { a += 1 }
        return LineParts(op: op, flow: s..<f, actions: a..<e)
    }

    /// The index of the first blank in `b[from..<to]` (`to` if none), eight bytes a step:
    /// a flow's text is some 60 bytes, which a byte loop took 500 instructions to cross.
    static func firstBlank(_ b: UnsafeBufferPointer<UInt8>, from: Int, to: Int) -> Int {
        var i = from
        while i + 8 <= to {
            let w = UnsafeRawPointer(b.baseAddress! + i).loadUnaligned(as: UInt64.self)
            // The lowest flagged byte is the first one below 0x21 (later flags may be
            // borrows); a blank ends the search, another control byte does not.
            let below = (w &- 0x2121_2121_2121_2121) & ~w & 0x8080_8080_8080_8080
            if below == 0 {
                i += 8
                continue
            }
            let j = i + below.trailingZeroBitCount / 8
            if isBlank(b[j]) { return j }
            i = j + 1
        }
        while i < to, !isBlank(b[i]) { i += 1 }
        return i
    }

    /// Encodes line `number` and queues its request on `stream`; false for a blank line
    /// or a comment. Throws a ParseFailure for a line that does not parse (nothing of it
    /// queued), a ControlError from the stream.
    mutating func submit(_ number: Int, _ raw: UnsafeBufferPointer<UInt8>, to stream: RequestStream) throws -> Bool {
        // The line's bytes (ASCII), never a String: far cheaper than Character steps.
        guard let parts = Self.split(raw) else { return false }
        let op = parts.op ?? defaultOp
        let writtenUFID: UInt128?
        do { writtenUFID = try keys.parse(UnsafeBufferPointer(rebasing: raw[parts.flow])) } catch {
            throw ParseFailure("\(path):\(number): flow key: \(error)")
        }
        let ufid = op == .add ? ufidForNewFlow(written: writtenUFID, key: keys.key.bytes) : writtenUFID
        if op != .delete {
            let actionText = UnsafeBufferPointer(rebasing: raw[parts.actions])
            // A forgotten action list is an error, as ovs-dpctl's add-flows refuses the
            // line: taken as `drop`, a typo quietly installed a flow that drops.
            if actionText.isEmpty {
                throw ParseFailure("\(path):\(number): no actions after the flow (write drop for a flow that drops)")
            }
            if !(lastActionText.count == actionText.count
                 && lastActionText.withUnsafeBufferPointer { memcmp($0.baseAddress!, actionText.baseAddress!, actionText.count) == 0 }) {
                let text = Array(actionText)
                do { lastActions = try ODPText.parseActions(utf8: text) } catch {
                    throw ParseFailure("\(path):\(number): actions: \(error)")
                }
                lastActionText = text
            }
        }
        // The request's attributes, in this order: key and mask (when the key has
        // attributes), ufid, actions (but for a delete), batch; sized first, then written
        // where they are sent from (`queue`).
        let withActions = op != .delete
        let keyLength = keys.key.bytes.count, maskLength = keys.mask.bytes.count
        let actionsLength = withActions ? lastActions.count : 0
        // Never too long (KeyLines and parseActions refuse what would not fit), but
        // checked, as AttributeWriter checks what it writes: the first that does not fit.
        if 4 + max(keyLength, maskLength, actionsLength) > AttributeWriter.maxLength {
            let (type, payload) = 4 + keyLength > AttributeWriter.maxLength ? (FlowAttr.key, keyLength)
                : 4 + maskLength > AttributeWriter.maxLength ? (FlowAttr.mask, maskLength) : (FlowAttr.actions, actionsLength)
            throw ParseFailure("\(path):\(number): \(NetlinkError.attributeTooLong(type: type, length: 4 + payload))")
        }
        var length = AttributeCursor.size(payload: 4)
        if keyLength > 0 { length += AttributeCursor.size(payload: keyLength) + AttributeCursor.size(payload: maskLength) }
        if ufid != nil { length += AttributeCursor.size(payload: 16) }
        if withActions { length += AttributeCursor.size(payload: actionsLength) }
        let command: UInt8 = op == .add ? FlowCmd.new : op == .modify ? FlowCmd.set : FlowCmd.del
        let flags = op == .add ? NetlinkFlags.create | NetlinkFlags.exclusive : 0
        try Self.queue(on: stream, command: command, flags: flags, length: length, key: keys.key.bytes, mask: keys.mask.bytes,
                       ufid: ufid, actions: lastActions, withActions: withActions, batchID: batchID)
        return true
    }

    /// Writes the request's attributes, `length` bytes, into the stream's send buffer
    /// (one copy of each). The arrays borrowed: passed from the caller's fields without a
    /// reference taken for each.
    private static func queue(on stream: RequestStream, command: UInt8, flags: UInt16, length: Int, key: borrowing [UInt8],
                              mask: borrowing [UInt8], ufid: UInt128?, actions: borrowing [UInt8], withActions: Bool,
                              batchID: UInt32) throws {
        try key.withUnsafeBytes { key in
            try mask.withUnsafeBytes { mask in
                try actions.withUnsafeBytes { actions in
                    try stream.submit(family: Family.flow, command: command, flags: flags, attributesLength: length) { p in
                        var w = AttributeCursor(p)
                        if !key.isEmpty {
                            w.put(FlowAttr.key, key)
                            w.put(FlowAttr.mask, mask)
                        }
                        if let ufid { w.putBE128(FlowAttr.ufid, ufid) }
                        if withActions { w.put(FlowAttr.actions, actions) }
                        w.putU32(FlowAttr.batch, batchID)
                    }
                }
            }
        }
    }
}
