import Netlink

/// Attributes read in place, in bytes the caller holds: nothing built, no reference
/// counted (a dump walks a reply, its key and its mask a million times; a list of spans
/// was an allocation each, and an ArraySlice payload a retain and a release).
///
/// Made only for bytes whose framing is whole (the checks of AttributeParser.parse):
/// a reader takes all the attributes or none, as its `try? parse` did.
public struct RawAttributes: Sequence {
    public let bytes: UnsafeRawBufferPointer

    /// nil when an attribute's header or length does not fit (what parse() refuses).
    public init?(_ bytes: UnsafeRawBufferPointer) {
        var i = 0
        while i < bytes.count {
            guard bytes.count - i >= 4 else { return nil }
            let len = Int(bytes[i]) | Int(bytes[i + 1]) << 8
            guard len >= 4, len <= bytes.count - i else { return nil }
            i += Swift.min(netlinkAlign(len), bytes.count - i)
        }
        self.bytes = bytes
    }

    public struct Element {
        public let type: UInt16
        public let isNested: Bool
        public let payload: UnsafeRawBufferPointer
        /// Where the payload lies in the walked bytes.
        public let range: Range<Int>
        public var count: Int { payload.count }
        /// The payload read with bounds checks.
        var reader: RawPayload { RawPayload(payload) }
    }

    public struct Iterator: IteratorProtocol {
        let bytes: UnsafeRawBufferPointer
        var at = 0

        public mutating func next() -> Element? {
            guard at < bytes.count else { return nil }
            let len = Int(bytes[at]) | Int(bytes[at + 1]) << 8
            let rawType = UInt16(bytes[at + 2]) | UInt16(bytes[at + 3]) << 8
            let e = Element(type: rawType & NetlinkAttributeFlag.typeMask, isNested: rawType & NetlinkAttributeFlag.nested != 0,
                            payload: UnsafeRawBufferPointer(rebasing: bytes[(at + 4)..<(at + len)]), range: (at + 4)..<(at + len))
            at += Swift.min(netlinkAlign(len), bytes.count - at)
            return e
        }
    }

    public func makeIterator() -> Iterator { Iterator(bytes: bytes) }

    public var isEmpty: Bool { bytes.isEmpty }

    /// The first attribute of `type`.
    public func first(_ type: UInt16) -> Element? {
        for a in self where a.type == type { return a }
        return nil
    }
}
