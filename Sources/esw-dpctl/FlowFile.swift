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

    private static func isBlank(_ c: UInt8) -> Bool { c == UInt8(ascii: " ") || c == UInt8(ascii: "\t") }

    /// Encodes line `number` into `request`: its command and flags, or nil for a blank
    /// line or a comment.
    mutating func encode(_ number: Int, _ raw: ArraySlice<UInt8>) throws(ParseFailure) -> (command: UInt8, flags: UInt16)? {
        // The line's bytes (ASCII), never a String: far cheaper than Character steps.
        var line = raw
        while let c = line.first, Self.isBlank(c) || c == UInt8(ascii: "\r") { line.removeFirst() }
        while let c = line.last, c == UInt8(ascii: "\r") { line.removeLast() }
        if line.isEmpty || line.first == UInt8(ascii: "#") { return nil }
        var op = defaultOp
        if line.first == UInt8(ascii: "a") || line.first == UInt8(ascii: "m") || line.first == UInt8(ascii: "d") {
            for (word, o) in [("add ", Op.add), ("modify ", .modify), ("delete ", .delete)] as [(StaticString, Op)]
            where line.count >= word.utf8CodeUnitCount
                && line.prefix(word.utf8CodeUnitCount).elementsEqual(UnsafeBufferPointer(start: word.utf8Start, count: word.utf8CodeUnitCount)) {
                op = o
                line = line.dropFirst(word.utf8CodeUnitCount)
                break
            }
        }
        while let c = line.first, Self.isBlank(c) { line.removeFirst() }
        let flowEnd = line.firstIndex(where: Self.isBlank) ?? line.endIndex
        let actionText = line[flowEnd...].drop(while: Self.isBlank)
        let writtenUFID: UInt128?
        do { writtenUFID = try keys.parse(line[..<flowEnd]) } catch {
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
