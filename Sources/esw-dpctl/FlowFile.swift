import ControlProtocol
import Netlink
import ODP

#if canImport(Glibc)
import Glibc
#endif

/// Calls `body` with each line of FILE (or stdin for "-") and its number, reading 1 MiB
/// at a time: the first lines are parsed (and their requests sent) before the rest of
/// the file is read.
func forEachLine(_ path: String, _ body: (Int, ArraySlice<UInt8>) throws -> Void) throws {
    let file: UnsafeMutablePointer<FILE>
    if path == "-" {
        guard let f = fdopen(dup(0), "r") else { throw CLIError("stdin: \(String(cString: strerror(errno)))") }
        file = f
    } else {
        guard let f = fopen(path, "r") else { throw CLIError("\(path): \(String(cString: strerror(errno)))") }
        file = f
    }
    defer { fclose(file) }
    var buf = [UInt8](untouchedCount: 1 << 20)
    var carry: [UInt8] = []
    var number = 0
    while true {
        let n = fread(&buf, 1, buf.count, file)
        if n <= 0 { break }
        var start = 0
        while start < n {
            // memchr: a byte loop in Swift costs more than the parse of a short line.
            let end = buf.withUnsafeBytes { p in
                memchr(p.baseAddress! + start, Int32(UInt8(ascii: "\n")), n - start).map { UnsafeRawPointer($0) - p.baseAddress! }
            }
            guard let end else { break }
            number += 1
            if carry.isEmpty {
                try body(number, buf[start..<end])
            } else {
                carry += buf[start..<end]
                try body(number, carry[...])
                carry.removeAll(keepingCapacity: true)
            }
            start = end + 1
        }
        if start < n { carry += buf[start..<n] }
    }
    if !carry.isEmpty { try body(number + 1, carry[...]) }
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
/// request is encoded into `request`, whose storage, with the key's and mask's, is kept
/// from line to line. A method of its own, not a closure over the caller's variables:
/// those were captured by address, not exclusively, and every use of one of their arrays
/// took and gave back a reference (about forty a line, a quarter of the CLI's time).
struct FlowFileRequests {
    enum Op { case add, modify, delete }

    let path: String
    let defaultOp: Op
    let batchID: UInt32
    private(set) var request = AttributeWriter(capacity: 512)
    /// Each line's key and mask, the attributes it repeats from the line before copied.
    private var keys: KeyLines
    /// The last action text and what it parsed to: the lines of a flow file mostly share
    /// their actions.
    private var lastActions: (text: [UInt8], parsed: [UInt8])?

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
    /// (indices of `raw`); nil for a blank line or a comment.
    struct LineParts {
        var op: Op?
        var flow: Range<Int>
        var actions: Range<Int>
    }

    /// Found by index over the line's bytes (ASCII): an ArraySlice's removeFirst per
    /// blank, and an array of the command words made per line, cost more than the rest
    /// of the line's encoding besides the key.
    static func split(_ raw: ArraySlice<UInt8>) -> LineParts? {
        raw.withUnsafeBufferPointer { b -> LineParts? in
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
            let base = raw.startIndex
            return LineParts(op: op, flow: base + s..<base + f, actions: base + a..<base + e)
        }
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

    /// Encodes line `number` into `request`: its command and flags, or nil for a blank
    /// line or a comment.
    mutating func encode(_ number: Int, _ raw: ArraySlice<UInt8>) throws(ParseFailure) -> (command: UInt8, flags: UInt16)? {
        // The line's bytes (ASCII), never a String: far cheaper than Character steps.
        guard let parts = Self.split(raw) else { return nil }
        let op = parts.op ?? defaultOp
        let actionText = raw[parts.actions]
        let writtenUFID: UInt128?
        do { writtenUFID = try keys.parse(raw[parts.flow]) } catch {
            throw ParseFailure("\(path):\(number): flow key: \(error)")
        }
        request.reset()
        if !keys.key.bytes.isEmpty {
            request.put(FlowAttr.key, keys.key.bytes)
            request.put(FlowAttr.mask, keys.mask.bytes)
        }
        if let u = op == .add ? ufidForNewFlow(written: writtenUFID, key: keys.key.bytes) : writtenUFID { request.putBE128(FlowAttr.ufid, u) }
        if op != .delete {
            // A forgotten action list is an error, as ovs-dpctl's add-flows refuses the
            // line: taken as `drop`, a typo quietly installed a flow that drops.
            if actionText.isEmpty {
                throw ParseFailure("\(path):\(number): no actions after the flow (write drop for a flow that drops)")
            }
            if !(lastActions?.text.sameBytes(as: actionText) ?? false) {
                let text = Array(actionText)
                do { lastActions = (text, try ODPText.parseActions(utf8: text)) } catch {
                    throw ParseFailure("\(path):\(number): actions: \(error)")
                }
            }
            request.put(FlowAttr.actions, lastActions!.parsed)
        }
        request.putU32(FlowAttr.batch, batchID)
        if let overflow = request.overflow {
            throw ParseFailure("\(path):\(number): \(NetlinkError.attributeTooLong(type: overflow.type, length: overflow.length))")
        }
        let command: UInt8 = op == .add ? FlowCmd.new : op == .modify ? FlowCmd.set : FlowCmd.del
        return (command, op == .add ? NetlinkFlags.create | NetlinkFlags.exclusive : 0)
    }
}
