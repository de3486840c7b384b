#if canImport(Glibc)
import Glibc
#endif

/// What KeyFormatter did for the last key it formatted with a memo: the text it wrote
/// and the attributes it formatted, in order. Every one of its choices (which mask
/// attribute goes with which key attribute, what is wildcarded, what is printed, a
/// bad length) follows from the mask's bytes and the key's attribute headers alone:
/// the next key with the same headers at the same places and the same mask bytes, a
/// dump's next flow mostly, is formatted by doing the same again (the attributes'
/// texts through the memo, as ever), without walking and checking its attributes.
struct KeyPlan {
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
        /// Text that depends on nothing but the plan (`,eth()`, a bad length): where it
        /// lies in `texts`.
        case text(Range<Int>)
        case attribute(AttributeStep)
    }

    private(set) var steps: [Step] = []
    private(set) var texts: [UInt8] = []
    private var mask: [UInt8] = []
    private var hasMask = false
    private var keyCount = 0
    private var verbose = false
    /// Each key attribute's header: offset << 32 | the header's four bytes.
    private var headers: [UInt64] = []
    private var complete = false

    /// Whether `key` and `mask` are formatted as the plan says.
    func fits(key: UnsafeRawBufferPointer, mask: UnsafeRawBufferPointer?, verbose: Bool) -> Bool {
        guard complete, verbose == self.verbose, key.count == keyCount, (mask != nil) == hasMask else { return false }
        if let mask {
            let same = self.mask.withUnsafeBytes { m in
                m.count == mask.count && (m.isEmpty || memcmp(m.baseAddress!, mask.baseAddress!, m.count) == 0)
            }
            guard same else { return false }
        }
        // Same headers at the same places, and the same length: the same attributes,
        // framed as well as the planned key's.
        for h in headers where key.loadUnaligned(fromByteOffset: Int(h >> 32), as: UInt32.self) != UInt32(truncatingIfNeeded: h) {
            return false
        }
        return true
    }

    /// Starts a plan for a key about to be formatted (incomplete until `finish`).
    mutating func begin(key: UnsafeRawBufferPointer, mask: UnsafeRawBufferPointer?, verbose: Bool) {
        complete = false
        steps.removeAll(keepingCapacity: true)
        texts.removeAll(keepingCapacity: true)
        headers.removeAll(keepingCapacity: true)
        self.mask.removeAll(keepingCapacity: true)
        if let mask { self.mask.append(contentsOf: mask) }
        hasMask = mask != nil
        keyCount = key.count
        self.verbose = verbose
    }

    /// A key attribute walked (its header at `payload.lowerBound - 4`).
    mutating func walked(_ payload: Range<Int>, in key: UnsafeRawBufferPointer) {
        let at = payload.lowerBound - 4
        headers.append(UInt64(at) << 32 | UInt64(key.loadUnaligned(fromByteOffset: at, as: UInt32.self)))
    }

    /// Text the formatter wrote to `out` from `start` on.
    mutating func wrote(_ out: borrowing TextBuffer, from start: Int) {
        let at = texts.count
        out.withUnsafeBytes { texts.append(contentsOf: $0[start...]) }
        steps.append(.text(at..<texts.count))
    }

    mutating func formatted(_ a: AttributeStep) { steps.append(.attribute(a)) }

    mutating func finish() { complete = true }
}
