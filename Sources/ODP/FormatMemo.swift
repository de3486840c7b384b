#if canImport(Glibc)
import Glibc
#endif

/// Formatted texts (as bytes) by what they were formatted from (attribute type,
/// payload, mask), for a formatter that sees the same attributes over and over (a
/// dump). Bounded: it starts over when full.
public final class FormatMemo: @unchecked Sendable {
    private var texts: [Bytes: [UInt8]] = [:]
    public static let limit = 4096

    /// Bytes hashed as a block ([UInt8] hashes one byte at a time).
    struct Bytes: Hashable {
        let b: [UInt8]
        func hash(into h: inout Hasher) { b.withUnsafeBytes { h.combine(bytes: $0) } }
    }

    public init() {}

    /// What the formatter did for the last key: the next one like it is formatted the same.
    let plan = KeyPlan()

    /// Whether attributes of this type are formatted each time (their texts keep changing).
    func formatsAnew(_ type: UInt16) -> Bool { Int(type) < Self.watchedTypes && unique[Int(type)] }

    /// Appends the text of the attribute (`type`, `key` payload, `mask` payload) to `out`:
    /// the one remembered, or the one `make` appends, then remembered. `position`: the
    /// attribute's place in its key; the text is remembered there for `appendPrevious`,
    /// which the formatter asks first.
    func append(type: UInt16, key: UnsafeRawBufferPointer, mask: UnsafeRawBufferPointer?, position: Int,
                to out: inout TextBuffer, _ make: (inout TextBuffer) -> Void) {
        // The caller formats each time the types whose texts keep changing (an address
        // per flow, `formatsAnew`): remembering them would cost more than it saves.
        let t = Int(type)
        if t < Self.watchedTypes {
            tries[t] += 1
            if tries[t] == Self.probation, tries[t] - hitsByType[t] > Self.probation * 3 / 4 {
                unique[t] = true
            }
        }
        // The id is built in a buffer kept for it: a lookup that hits allocates nothing.
        scratch.removeAll(keepingCapacity: true)
        let n = key.count
        scratch.append(UInt8(truncatingIfNeeded: type))
        scratch.append(UInt8(truncatingIfNeeded: type >> 8))
        scratch.append(mask == nil ? 0 : 1)
        scratch.append(UInt8(truncatingIfNeeded: n))
        scratch.append(UInt8(truncatingIfNeeded: n >> 8))
        scratch.append(UInt8(truncatingIfNeeded: n >> 16))
        scratch.append(contentsOf: key)
        if let mask { scratch.append(contentsOf: mask) }
        let id = Bytes(b: scratch)
        let text: [UInt8]
        if let known = texts[id] {
            if t < Self.watchedTypes { hitsByType[t] += 1 }
            text = known
            out.append(known)
        } else {
            let start = out.count
            make(&out)
            text = out.bytes(from: start)
            remember(id, text)
        }
        if position < Self.positions {
            previousIDs[position].removeAll()
            scratch.withUnsafeBytes { previousIDs[position].append($0) }
            previousTexts[position].removeAll()
            previousTexts[position].append(text)
        }
    }
    private var scratch: [UInt8] = []

    /// Appends the text of the attribute at `position` if it is the one the previous
    /// key had there (same type, payload and mask bytes), compared where the bytes lie:
    /// a dump's consecutive flows mostly repeat it, which a comparison finds (no
    /// hashing). False if it is not.
    func appendPrevious(at position: Int, type: UInt16, key: UnsafeRawBufferPointer, mask: UnsafeRawBufferPointer?,
                        to out: inout TextBuffer) -> Bool {
        guard position < Self.positions else { return false }
        // (An empty id, a place not filled yet, is never the same.)
        let same = previousIDs[position].withUnsafeBytes { id in
            let n = key.count, masked = mask?.count ?? 0
            guard id.count == 6 + n + masked, id[0] == UInt8(truncatingIfNeeded: type), id[1] == UInt8(truncatingIfNeeded: type >> 8),
                  id[2] == (mask == nil ? 0 : 1), id[3] == UInt8(truncatingIfNeeded: n), id[4] == UInt8(truncatingIfNeeded: n >> 8),
                  id[5] == UInt8(truncatingIfNeeded: n >> 16) else { return false }
            return (n == 0 || memcmp(id.baseAddress! + 6, key.baseAddress!, n) == 0)
                && (masked == 0 || memcmp(id.baseAddress! + 6 + n, mask!.baseAddress!, masked) == 0)
        }
        guard same else { return false }
        let t = Int(type)
        if t < Self.watchedTypes {
            tries[t] += 1
            hitsByType[t] += 1
        }
        previousTexts[position].withUnsafeBytes { out.append($0) }
        return true
    }

    /// The last attribute seen at each position of a key (its id, as `append` builds
    /// it) and its text. Buffers of their own: arrays here were a retain and a release
    /// at each look, two for each attribute of each line.
    private let previousIDs = FormatMemo.buffers(positions)
    private let previousTexts = FormatMemo.buffers(positions)
    private static let positions = 32

    private static func buffers(_ n: Int) -> UnsafeMutablePointer<TextBuffer> {
        let b = UnsafeMutablePointer<TextBuffer>.allocate(capacity: n)
        for i in 0..<n { (b + i).initialize(to: TextBuffer(capacity: 64)) }
        return b
    }

    deinit {
        for b in [previousIDs, previousTexts] {
            b.deinitialize(count: Self.positions)
            b.deallocate()
        }
    }

    /// Lookups and hits by attribute type, over its first `probation` lookups.
    private static let watchedTypes = 64, probation = 256
    private var tries = [Int](repeating: 0, count: watchedTypes)
    private var hitsByType = [Int](repeating: 0, count: watchedTypes)
    private var unique = [Bool](repeating: false, count: watchedTypes)

    /// Appends the text of a whole byte string (an action list), formatted once by
    /// `make`; the last one asked for is compared first (flows of one table mostly share
    /// their actions).
    public func append(textOf bytes: UnsafeRawBufferPointer, to out: inout TextBuffer, _ make: (inout TextBuffer) -> Void) {
        let same = hasLast && lastBytes.withUnsafeBytes { last in
            last.count == bytes.count && (bytes.isEmpty || memcmp(last.baseAddress!, bytes.baseAddress!, bytes.count) == 0)
        }
        if same { return lastText.withUnsafeBytes { out.append($0) } }
        let id = Bytes(b: Array(bytes))
        let start = out.count
        if let known = texts[id] {
            out.append(known)
        } else {
            make(&out)
            remember(id, out.bytes(from: start))
        }
        lastBytes.removeAll()
        lastBytes.append(bytes)
        lastText.removeAll()
        out.withUnsafeBytes { lastText.append(UnsafeRawBufferPointer(rebasing: $0[start...])) }
        hasLast = true
    }
    /// The last byte string asked for and its text.
    private var lastBytes = TextBuffer(), lastText = TextBuffer()
    private var hasLast = false

    private func remember(_ id: Bytes, _ text: [UInt8]) {
        if texts.count >= Self.limit { texts.removeAll(keepingCapacity: true) }
        texts[id] = text
    }
}
