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
        var walk = Iterator(bytes)
        while walk.next() != nil {}
        guard !walk.malformed else { return nil }
        self.bytes = bytes
    }

    public struct Element {
        public let type: UInt16
        public let payload: UnsafeRawBufferPointer
        /// Where the payload lies in the walked bytes.
        public let range: Range<Int>
        public var count: Int { payload.count }
        /// The payload read with bounds checks.
        var reader: RawPayload { RawPayload(payload) }

        @usableFromInline
        init(type: UInt16, payload: UnsafeRawBufferPointer, range: Range<Int>) {
            self.type = type
            self.payload = payload
            self.range = range
        }
    }

    /// A walk that checks the framing as it goes (Netlink's AttributeWalk): it stops at
    /// an attribute that does not fit, and says so (`malformed`). A reader that can drop
    /// what it read so far walks the bytes once, without RawAttributes' check.
    /// (Inlinable: a reply's reader in another module walks a dozen attributes a flow.)
    public struct Iterator: IteratorProtocol {
        @usableFromInline var walk: AttributeWalk
        public var malformed: Bool { walk.error != nil }

        @inlinable
        public init(_ bytes: UnsafeRawBufferPointer) { walk = AttributeWalk(bytes) }

        @inlinable @inline(__always)
        public mutating func next() -> Element? {
            guard let h = walk.next() else { return nil }
            let payload = h.payload
            return Element(type: h.type, payload: UnsafeRawBufferPointer(rebasing: walk.bytes[payload]), range: payload)
        }
    }

    public func makeIterator() -> Iterator { Iterator(bytes) }

    public var isEmpty: Bool { bytes.isEmpty }

    /// The first attribute of `type`.
    public func first(_ type: UInt16) -> Element? {
        for a in self where a.type == type { return a }
        return nil
    }
}
