#if canImport(Glibc)
import Glibc
#endif

/// What KeyFormatter did for the last key it formatted with a memo: the text it wrote
/// and the attributes it formatted, in order, and that key's bytes and text. Every one
/// of its choices (which mask attribute goes with which key attribute, what is
/// wildcarded, what is printed, a bad length) follows from the mask's bytes and the
/// key's attribute headers alone: the next key with the same headers at the same places
/// and the same mask bytes, a dump's next flow mostly, is formatted by doing the same
/// again, without walking and checking its attributes; and an attribute whose bytes are
/// the last key's has the last text's (consecutive flows mostly differ in one).
final class KeyPlan {
    /// An attribute's text: the payload's place in the key, the mask's in the mask (or,
    /// a wildcard with no mask attribute, `zeros` bytes of zeros), its place among the
    /// key's attributes, and whether a comma goes before it.
    struct AttributeStep {
        let type: UInt16
        let key: Range<Int>
        let mask: Range<Int>?
        let zeros: Int?
        let position: Int
        let comma: Bool
    }

    enum Step {
        /// Text that depends on nothing but the plan (`,eth()`, a bad length).
        case text
        case attribute(AttributeStep)
    }

    private var steps: [Step] = []
    /// How long each step's text is in `lastText`.
    private var lengths: [Int] = []
    private var lastKey = TextBuffer(), lastText = TextBuffer()
    private var mask = TextBuffer()
    private var hasMask = false
    private var verbose = false
    /// Each key attribute's header: offset << 32 | the header's four bytes.
    private var headers: [UInt64] = []
    private var complete = false

    /// Whether `key` and `mask` are formatted as the plan says.
    func fits(key: UnsafeRawBufferPointer, mask: UnsafeRawBufferPointer?, verbose: Bool) -> Bool {
        guard complete, verbose == self.verbose, key.count == lastKey.count, (mask != nil) == hasMask else { return false }
        if let mask {
            // A hundred bytes or so: one memcmp.
            let same = self.mask.count == mask.count
                && self.mask.withUnsafeBytes { mask.isEmpty || memcmp($0.baseAddress!, mask.baseAddress!, mask.count) == 0 }
            guard same else { return false }
        }
        // Same headers at the same places, and the same length: the same attributes,
        // framed as well as the planned key's.
        return headers.withUnsafeBufferPointer { hs in
            for h in hs where key.loadUnaligned(fromByteOffset: Int(h >> 32), as: UInt32.self) != UInt32(truncatingIfNeeded: h) {
                return false
            }
            return true
        }
    }

    /// Formats `key` (which `fits`) into `out`: the steps' texts copied from the last
    /// key's text, but for attributes whose bytes differ, which `format` writes.
    func replay(key: UnsafeRawBufferPointer, into out: inout TextBuffer, _ format: (AttributeStep, inout TextBuffer) -> Void) {
        let lineStart = out.count
        var changed = false
        lastKey.withUnsafeBytes { old in
            lastText.withUnsafeBytes { text in
                steps.withUnsafeBufferPointer { steps in
                    lengths.withUnsafeMutableBufferPointer { lengths in
                        // The run of the last text to copy: from..<at.
                        var from = 0, at = 0
                        for i in 0..<steps.count {
                            let length = lengths[i]
                            if case .attribute(let a) = steps[i], !same(key, old, a.key) {
                                out.append(UnsafeRawBufferPointer(rebasing: text[from..<at]))
                                let start = out.count
                                format(a, &out)
                                lengths[i] = out.count - start
                                changed = true
                                from = at + length
                            }
                            at += length
                        }
                        out.append(UnsafeRawBufferPointer(rebasing: text[from..<at]))
                    }
                }
            }
        }
        guard changed else { return }
        lastKey.removeAll()
        lastKey.append(key)
        lastText.removeAll()
        out.withUnsafeBytes { lastText.append(UnsafeRawBufferPointer(rebasing: $0[lineStart...])) }
    }

    /// Starts a plan for a key about to be formatted (incomplete until `finish`).
    func begin(mask: UnsafeRawBufferPointer?, verbose: Bool) {
        complete = false
        steps.removeAll(keepingCapacity: true)
        lengths.removeAll(keepingCapacity: true)
        headers.removeAll(keepingCapacity: true)
        self.mask.removeAll()
        if let mask { self.mask.append(mask) }
        hasMask = mask != nil
        self.verbose = verbose
    }

    /// A key attribute walked (its header at `payload.lowerBound - 4`).
    func walked(_ payload: Range<Int>, in key: UnsafeRawBufferPointer) {
        let at = payload.lowerBound - 4
        headers.append(UInt64(at) << 32 | UInt64(key.loadUnaligned(fromByteOffset: at, as: UInt32.self)))
    }

    /// Text of the plan's own the formatter wrote, `length` bytes.
    func wrote(length: Int) {
        steps.append(.text)
        lengths.append(length)
    }

    /// An attribute the formatter formatted, its text `length` bytes.
    func formatted(_ a: AttributeStep, length: Int) {
        steps.append(.attribute(a))
        lengths.append(length)
    }

    /// The key is done: `key`'s text is what the formatter wrote to `out` from `start` on.
    func finish(key: UnsafeRawBufferPointer, _ out: borrowing TextBuffer, from start: Int) {
        lastKey.removeAll()
        lastKey.append(key)
        lastText.removeAll()
        out.withUnsafeBytes { lastText.append(UnsafeRawBufferPointer(rebasing: $0[start...])) }
        complete = true
    }
}

/// Whether `a` and `b` hold the same bytes in `range`: compared a word at a time here
/// (payloads are a few bytes; a call to memcmp costs more than comparing them).
private func same(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer, _ range: Range<Int>) -> Bool {
    var i = range.lowerBound
    while i + 8 <= range.upperBound {
        if a.loadUnaligned(fromByteOffset: i, as: UInt64.self) != b.loadUnaligned(fromByteOffset: i, as: UInt64.self) { return false }
        i += 8
    }
    while i < range.upperBound {
        if a[i] != b[i] { return false }
        i += 1
    }
    return true
}
