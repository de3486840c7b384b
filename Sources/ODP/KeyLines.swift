#if canImport(Glibc)
import Glibc
#endif
import Netlink

/// Keys parsed line after line (a flow file): the top-level attributes a line repeats
/// from the line before, at its start and as the same text, are copied from that line's
/// key and mask instead of parsed again. The lines of a flow file mostly differ in one
/// field: `in_port(1),eth(),eth_type(0x0800),` repeat, `ipv4(src=…)` changes.
///
/// Sound because a top-level attribute's key and mask depend on its text alone (and on
/// the port names, the same for every line): the parser writes one attribute after the
/// other, reading nothing outside it. Lines equal up to an attribute's start have the
/// same attributes before it; the rest is parsed as usual (errors included).
public struct KeyLines {
    /// Where a top-level attribute starts: in the text, the key and the mask.
    struct Boundary {
        let text: Int
        let key: Int
        let mask: Int
    }

    /// The parser, whose text is the line parsed last (`Scan.replaceText`): a line is
    /// compared with the one before where each lies (the file's buffer and the parser's),
    /// and only the bytes from where it differs copied in.
    private var parser: KeyParser
    /// The last line's key and mask, kept for the next line: cut back to the attributes
    /// it shares, not emptied and copied.
    public private(set) var key = AttributeWriter(), mask = AttributeWriter()
    /// Where the last line's attributes start; none after a line that failed (which is
    /// no line to copy from). Never nil: optional for the parser, which records them
    /// only when asked.
    private var bounds: [Boundary]? = []

    public init(portNames: [String: UInt32]) { parser = KeyParser(scan: Scan(utf8: []), portNames: portNames) }

    /// Parses a line's key text into `key` and `mask`; the ufid written first, if any.
    public mutating func parse(_ line: ArraySlice<UInt8>) throws(ODPError) -> UInt128? {
        try line.withUnsafeBufferPointer { l throws(ODPError) in try parse(l) }
    }

    /// The same for text where it lies (a flow file's read buffer: no slice to count
    /// references to).
    public mutating func parse(_ line: UnsafeBufferPointer<UInt8>) throws(ODPError) -> UInt128? {
        let from = resumePoint(line)
        var start = 0
        if from > 0 {
            let b = bounds.unsafelyUnwrapped[from]
            key.truncate(to: b.key)
            mask.truncate(to: b.mask)
            // Mostly the last attribute goes: one removeLast, no range replaced.
            while bounds.unsafelyUnwrapped.count > from { bounds!.removeLast() }
            start = b.text
        } else {
            key.reset()
            mask.reset()
            bounds!.removeAll(keepingCapacity: true)
        }
        parser.sc.replaceText(with: line, keeping: start)
        parser.failure = nil
        do {
            let ufid = try parser.parseKey(key: &key, mask: &mask, from: start, bounds: &bounds)
            try ODPText.checkFits(key, "the flow key is")
            try ODPText.checkFits(mask, "the flow mask is")
            return ufid
        } catch {
            bounds!.removeAll(keepingCapacity: true)
            throw error
        }
    }

    /// The index (in the last line's boundaries) of the first attribute `line` may not
    /// share with it: every attribute before it, and the delimiters after it, are the
    /// same text. Tried from the last (a flow file's lines mostly differ in their last
    /// attribute): one comparison of the common part, usually. 0: nothing shared.
    private func resumePoint(_ line: UnsafeBufferPointer<UInt8>) -> Int {
        guard let bounds, bounds.count > 1, let l = line.baseAddress else { return 0 }
        // A ufid first is the line's own: never copied.
        let ufid: StaticString = "ufid:"
        if line.count >= ufid.utf8CodeUnitCount && memcmp(l, ufid.utf8Start, ufid.utf8CodeUnitCount) == 0 { return 0 }
        return parser.sc.bytes.withUnsafeBufferPointer { t in
            bounds.withUnsafeBufferPointer { b in
                var j = b.count - 1
                while j > 0 && (b[j].text > line.count || memcmp(l, t.baseAddress!, b[j].text) != 0) { j -= 1 }
                return j
            }
        }
    }
}
