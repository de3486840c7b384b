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

    let portNames: [String: UInt32]
    /// The line parsed last and the one before (their storage takes turns).
    private var text: [UInt8] = [], previousText: [UInt8] = []
    public private(set) var key = AttributeWriter(), mask = AttributeWriter()
    private var previousKey = AttributeWriter(), previousMask = AttributeWriter()
    private var bounds: [Boundary]? = [], previousBounds: [Boundary]? = []

    public init(portNames: [String: UInt32]) { self.portNames = portNames }

    /// Parses a line's key text into `key` and `mask`; the ufid written first, if any.
    public mutating func parse(_ line: ArraySlice<UInt8>) throws(ODPError) -> UInt128? {
        swap(&text, &previousText)
        swap(&key, &previousKey)
        swap(&mask, &previousMask)
        swap(&bounds, &previousBounds)
        text.removeAll(keepingCapacity: true)
        text.append(contentsOf: line)
        key.reset()
        mask.reset()
        bounds!.removeAll(keepingCapacity: true)
        let from = resumePoint()
        var start = 0
        if from > 0 {
            let b = previousBounds.unsafelyUnwrapped[from]
            key.bytes.append(contentsOf: previousKey.bytes[..<b.key])
            mask.bytes.append(contentsOf: previousMask.bytes[..<b.mask])
            bounds!.append(contentsOf: previousBounds.unsafelyUnwrapped[..<from])
            start = b.text
        }
        var p = KeyParser(scan: Scan(utf8: text), portNames: portNames)
        do {
            let ufid = try p.parseKey(key: &key, mask: &mask, from: start, bounds: &bounds)
            try ODPText.checkFits(key, "the flow key is")
            try ODPText.checkFits(mask, "the flow mask is")
            return ufid
        } catch {
            // A failed line is no line to copy from.
            bounds!.removeAll(keepingCapacity: true)
            text.removeAll(keepingCapacity: true)
            throw error
        }
    }

    /// The index (in the previous line's boundaries) of the first attribute this line may
    /// not share with the previous one: every attribute before it, and the delimiters after
    /// it, are the same text. Tried from the last (a flow file's lines mostly differ in
    /// their last attribute): one comparison of the common part, usually.
    private func resumePoint() -> Int {
        guard let prev = previousBounds, prev.count > 1, !text.starts(with: "ufid:".utf8) else { return 0 }
        return text.withUnsafeBufferPointer { a in
            previousText.withUnsafeBufferPointer { b in
                var j = prev.count - 1
                while j > 0 && (prev[j].text > a.count || memcmp(a.baseAddress!, b.baseAddress!, prev[j].text) != 0) { j -= 1 }
                return j
            }
        }
    }
}
