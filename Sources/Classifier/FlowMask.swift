import Packet

/// A mask shared by every entry of one subtable, with the list of key words it touches
/// so that hashing and comparing skip the words it wildcards entirely.
public final class FlowMask: @unchecked Sendable {
    public let bits: FlowKey
    /// `bits`' words, out of line: what hashing and matching read (a span of the stored
    /// key, or one of its words read through the InlineArray, copies all 224 bytes).
    @usableFromInline let bitWords: UnsafeMutablePointer<UInt64>
    @usableFromInline let wordIndex: InlineArray<28, UInt8>
    @usableFromInline let wordCount: Int
    /// A hash of `bits`, computed once: dictionaries keyed by a mask (`Key`) hash this
    /// instead of the 224-byte key each time.
    let bitsHash: UInt32

    public init(_ bits: FlowKey) {
        self.bits = bits
        let out = UnsafeMutablePointer<UInt64>.allocate(capacity: FlowKey.wordCount)
        let b = bits.words.span
        for i in 0..<FlowKey.wordCount { (out + i).initialize(to: b[i]) }
        bitWords = out
        var idx = InlineArray<28, UInt8>(repeating: 0)
        var n = 0
        for i in 0..<FlowKey.wordCount where b[i] != 0 {
            idx[n] = UInt8(i)
            n += 1
        }
        wordIndex = idx
        wordCount = n
        var h: UInt64 = 0x9E37_79B9_7F4A_7C15
        for i in 0..<FlowKey.wordCount { h = FlowHash.mix(h, b[i]) }
        bitsHash = FlowHash.finish(h)
    }

    /// A mask as a dictionary key: hashed by its precomputed hash, equal when its bits
    /// are (whatever the object), one comparison when it is the same object.
    public struct Key: Hashable, @unchecked Sendable {
        public let mask: FlowMask
        public init(_ mask: FlowMask) { self.mask = mask }
        public func hash(into h: inout Hasher) { h.combine(mask.bitsHash) }
        // The bits' hash, computed once, is the hash value: SipHash over it at every
        // look-up was most of the masks pool's cost (four look-ups a rule). The masks are
        // few (the parser's tuple space), so a crafted collision costs little.
        public func _rawHashValue(seed: Int) -> Int {
            Int(truncatingIfNeeded: UInt64(mask.bitsHash) &* 0x9E37_79B9_7F4A_7C15) ^ seed
        }
        public static func == (a: Key, b: Key) -> Bool { a.mask === b.mask || a.mask.bits == b.mask.bits }
    }

    /// Hash of `key & bits` over the significant words only.
    @inlinable
    public func hash(_ key: borrowing FlowKey) -> UInt32 {
        // Through the key's address: one copy of the borrowed key (its span cost two).
        withUnsafePointer(to: key) { p in
            let k = UnsafeRawPointer(p).assumingMemoryBound(to: UInt64.self)
            var h: UInt64 = 0x9E37_79B9_7F4A_7C15
            for j in 0..<wordCount {
                let i = Int(wordIndex[j])
                h = FlowHash.mix(h, k[i] & bitWords[i])
            }
            return FlowHash.finish(h)
        }
    }

    /// Whether `key` under this mask equals an entry's masked key (its significant
    /// words, inline then out of line).
    @inlinable
    public func matches(_ key: borrowing FlowKey, entry e: ClassifierEntry) -> Bool {
        let k = key.words.span, index = wordIndex.span, head = e.head.span
        var diff: UInt64 = 0
        let inline = Swift.min(wordCount, ClassifierEntry.inlineWords)
        for j in 0..<inline {
            let i = Int(index[j])
            diff |= (k[i] & bitWords[i]) ^ head[j]
        }
        if wordCount > inline, let t = e.tail {
            for j in inline..<wordCount {
                let i = Int(index[j])
                diff |= (k[i] & bitWords[i]) ^ t[j - inline]
            }
        }
        return diff == 0
    }

    /// `(key & bits) == masked`, over the significant words only.
    @inlinable
    public func matches(_ key: borrowing FlowKey, _ masked: borrowing FlowKey) -> Bool {
        let k = key.words.span, e = masked.words.span, index = wordIndex.span
        var diff: UInt64 = 0
        for j in 0..<wordCount {
            let i = Int(index[j])
            diff |= (k[i] & bitWords[i]) ^ e[i]
        }
        return diff == 0
    }

    /// `(key & bits) == entry.key` for an entry under this mask, reading every word in
    /// place: the span-based `matches` gets its arguments as copies (three 224-byte
    /// memcpys a call, reading all of the mask's and the entry's key lines however few
    /// words the mask examines); here `key` is inout and the entry's key is read through
    /// the entry, so a check loads only the significant words. The mark path (partial
    /// offload) checks each packet's flow this way: its cost then does not depend on how
    /// cold the flow and its mask are beyond those words.
    /// The entry's words are its compact ones (significant words in mask order, inline
    /// then out of line), as `matches(_:entry:)` for a borrowed key reads them.
    public func matches(_ key: inout FlowKey, entry e: ClassifierEntry) -> Bool {
        var diff: UInt64 = 0
        let inline = Swift.min(wordCount, ClassifierEntry.inlineWords)
        for j in 0..<inline {
            let i = Int(wordIndex[j])
            diff |= (key.words[i] & bits.words[i]) ^ e.head[j]
        }
        if wordCount > inline, let t = e.tail {
            for j in inline..<wordCount {
                let i = Int(wordIndex[j])
                diff |= (key.words[i] & bits.words[i]) ^ t[j - inline]
            }
        }
        return diff == 0
    }

    /// How many 64-bit key words this mask examines.
    public var significantWords: Int { wordCount }

    deinit { bitWords.deallocate() }
}

/// An entry of the classifier: a masked key and the mask it was installed with.
/// Datapath flows and hardware rules subclass it. Entries are immutable once inserted;
/// only their own counters change.
///
/// The masked key is kept compact: only the words the mask touches (every other word of
/// a masked key is zero), the first `inlineWords` of them in the entry and the rest, for
/// wide masks, in a small out-of-line block freed with the entry. A full 28-word key
/// cost 224 bytes an entry; a typical IPv4 megaflow's mask touches 4–7 words.
open class ClassifierEntry: @unchecked Sendable {
    /// Significant words kept in the entry itself.
    public static let inlineWords = 8

    public let mask: FlowMask
    /// The masked key's significant words `0..<min(wordCount, inlineWords)`.
    @usableFromInline let head: InlineArray<8, UInt64>
    /// Significant words from `inlineWords` on (nil when the mask has no more).
    @usableFromInline let tail: UnsafeMutablePointer<UInt64>?
    /// Last: a subclass's first 4-byte field takes the 4 bytes after it.
    /// 0 for an entry made without it until `rehash` (one no classifier holds yet).
    public private(set) var hash: UInt32

    /// Where `hash` lies from the object's start (after the runtime's 16-byte header, the
    /// mask, head and tail), for a prefetch of the line it is in. `init` checks it in
    /// debug builds.
    static let hashOffset = 16 + 8 + 64 + 8

    /// The key, already masked (rebuilt from the significant words).
    public var key: FlowKey {
        var k = FlowKey()
        let n = mask.wordCount
        let index = mask.wordIndex.span, h = head.span
        var out = k.words.mutableSpan
        for j in 0..<n {
            out[Int(index[j])] = j < Self.inlineWords ? h[j] : tail![j - Self.inlineWords]
        }
        return k
    }

    /// An entry of `key` under `mask`; `hash` is the key's under the mask
    /// (`mask.hash(key)`, or a `Classifier.Probe`'s), or 0 for an entry that a
    /// classifier may take only later, if ever: it is hashed then (`rehash`).
    public init(key: FlowKey, mask: FlowMask, hash: UInt32) {
        // Spans: subscripting a borrowed InlineArray copies it whole first.
        let k = key.words.span, m = mask.bitWords, index = mask.wordIndex.span
        let n = mask.wordCount
        // The inline words, then the rest: one loop choosing between them per word was
        // twice the instructions a word. Unchecked: the mask's word indices are below
        // `FlowKey.wordCount` (FlowMask.init) and `j` below `inlineWords`.
        var head = InlineArray<8, UInt64>(repeating: 0)
        var out = head.mutableSpan
        for j in 0..<Swift.min(n, Self.inlineWords) {
            let i = Int(index[unchecked: j])
            out[unchecked: j] = k[unchecked: i] & m[i]
        }
        var tail: UnsafeMutablePointer<UInt64>?
        if n > Self.inlineWords {
            let t = UnsafeMutablePointer<UInt64>.allocate(capacity: n - Self.inlineWords)
            for j in Self.inlineWords..<n {
                let i = Int(index[unchecked: j])
                (t + (j - Self.inlineWords)).initialize(to: k[unchecked: i] & m[i])
            }
            tail = t
        }
        self.head = head
        self.tail = tail
        self.mask = mask
        assert(hash == 0 || hash == mask.hash(key), "an entry's hash is its key's under its mask")
        self.hash = hash
        assert(UnsafeRawPointer(Unmanaged.passUnretained(self).toOpaque()).load(fromByteOffset: Self.hashOffset, as: UInt32.self)
               == hash, "ClassifierEntry.hashOffset is not where the hash lies")
    }

    deinit { tail?.deallocate() }

    /// Sets the hash from the entry's words (an entry made without it, before a
    /// classifier takes it; for one made with it, the same value).
    public final func rehash() { hash = mask.hash(key) }

    /// How many words the mask touches (`significantWord`).
    @inlinable public final var significantWordCount: Int { mask.wordCount }

    /// The `j`th word the mask touches (`j < significantWordCount`, unchecked), in mask
    /// order: its index in the key, the mask's word and the masked key's (for a caller
    /// that needs them, not the full key).
    @inlinable @inline(__always)
    public final func significantWord(_ j: Int) -> (index: Int, mask: UInt64, masked: UInt64) {
        let i = Int(mask.wordIndex[j])
        return (i, mask.bitWords[i], j < Self.inlineWords ? head[j] : tail.unsafelyUnwrapped[j - Self.inlineWords])
    }

    /// Whether `other` has the same masked key under the same mask words.
    public func hasSameKey(as other: ClassifierEntry) -> Bool {
        guard mask === other.mask || mask.bits == other.mask.bits else { return false }
        if hash != other.hash { return false }
        let n = mask.wordCount
        let h = head.span, oh = other.head.span
        for j in 0..<n {
            let a = j < Self.inlineWords ? h[j] : tail![j - Self.inlineWords]
            let b = j < Self.inlineWords ? oh[j] : other.tail![j - Self.inlineWords]
            if a != b { return false }
        }
        return true
    }
}
