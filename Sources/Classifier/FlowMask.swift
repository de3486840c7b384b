import Packet

/// A mask shared by every entry of one subtable, with the list of key words it touches
/// so that hashing and comparing skip the words it wildcards entirely.
public final class FlowMask: @unchecked Sendable {
    public let bits: FlowKey
    @usableFromInline let wordIndex: InlineArray<28, UInt8>
    @usableFromInline let wordCount: Int

    public init(_ bits: FlowKey) {
        self.bits = bits
        var idx = InlineArray<28, UInt8>(repeating: 0)
        var n = 0
        for i in 0..<FlowKey.wordCount where bits.words[i] != 0 {
            idx[n] = UInt8(i)
            n += 1
        }
        wordIndex = idx
        wordCount = n
    }

    /// Hash of `key & bits` over the significant words only.
    @inlinable
    public func hash(_ key: borrowing FlowKey) -> UInt32 {
        let k = key.words.span, m = bits.words.span
        var h: UInt64 = 0x9E37_79B9_7F4A_7C15
        for j in 0..<wordCount {
            let i = Int(wordIndex[j])
            h = FlowHash.mix(h, k[i] & m[i])
        }
        return FlowHash.finish(h)
    }

    /// `(key & bits) == masked`, over the significant words only.
    @inlinable
    public func matches(_ key: borrowing FlowKey, _ masked: borrowing FlowKey) -> Bool {
        let k = key.words.span, m = bits.words.span, e = masked.words.span
        var diff: UInt64 = 0
        for j in 0..<wordCount {
            let i = Int(wordIndex[j])
            diff |= (k[i] & m[i]) ^ e[i]
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
    public func matches(_ key: inout FlowKey, entry: ClassifierEntry) -> Bool {
        var diff: UInt64 = 0
        for j in 0..<wordCount {
            let i = Int(wordIndex[j])
            diff |= (key.words[i] & bits.words[i]) ^ entry.key.words[i]
        }
        return diff == 0
    }

    /// How many 64-bit key words this mask examines.
    public var significantWords: Int { wordCount }
}

/// An entry of the classifier: a masked key and the mask it was installed with.
/// Datapath flows and hardware rules subclass it. Entries are immutable once inserted;
/// only their own counters change.
open class ClassifierEntry: @unchecked Sendable {
    /// The key, already masked.
    public let key: FlowKey
    public let mask: FlowMask
    public let hash: UInt32

    public init(key: FlowKey, mask: FlowMask) {
        let masked = key.masked(by: mask.bits)
        self.key = masked
        self.mask = mask
        self.hash = mask.hash(masked)
    }
}
