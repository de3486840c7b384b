/// Netlink attributes (struct nlattr): a 4-byte header (length including the header,
/// type with the NLA_F_NESTED / NLA_F_NET_BYTEORDER flags) and a payload padded to 4 bytes.
/// Host byte order for integers, as on the kernel's netlink sockets.

import Synchronization
#if canImport(Glibc)
import Glibc
#endif

public enum NetlinkAttributeFlag {
    public static let nested: UInt16 = 0x8000
    public static let netByteOrder: UInt16 = 0x4000
    public static let typeMask: UInt16 = 0x3fff
}

@inlinable
public func netlinkAlign(_ n: Int) -> Int { (n + 3) & ~3 }

/// Appends attributes to a byte buffer.
///
/// An attribute's length is 16 bits: one longer than `maxLength` cannot be written. The
/// writer then records it in `overflow` (the first one) and writes its length as 0, which
/// every reader refuses: a length is never wrapped into a smaller valid one. Whoever sends
/// the bytes takes them with `finished()`, which throws for an overflow.
public struct AttributeWriter: Sendable {
    public var bytes: [UInt8]
    /// The first attribute that did not fit, if any.
    public private(set) var overflow: AttributeOverflow?

    /// The longest attribute, header included (nla_len is 16 bits).
    public static let maxLength = 0xffff
    /// The longest payload an attribute can carry.
    public static let maxPayload = maxLength - 4

    public init(capacity: Int = 256) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    public init(bytes: [UInt8]) { self.bytes = bytes }

    /// Empties the writer for reuse, keeping its storage.
    public mutating func reset() {
        bytes.removeAll(keepingCapacity: true)
        overflow = nil
    }

    /// Cuts the writer back to its first `count` bytes (the end of an attribute), keeping
    /// its storage. (An overflow recorded stays recorded.)
    public mutating func truncate(to count: Int) {
        bytes.removeSubrange(count...)
    }

    // Inlinable so that callers in other modules get a version specialized for their
    // payload type rather than the generic one (metadata lookups per attribute).
    @inlinable
    public mutating func put(_ type: UInt16, _ payload: some Collection<UInt8>) {
        let len = 4 + payload.count
        appendHeader(length: len, type: type)
        bytes.append(contentsOf: payload)
        pad()
    }

    public mutating func putFlag(_ type: UInt16) { put(type, EmptyCollection<UInt8>()) }
    public mutating func putU8(_ type: UInt16, _ v: UInt8) { putInteger(type, v) }
    public mutating func putU16(_ type: UInt16, _ v: UInt16) { putInteger(type, v.littleEndian) }
    public mutating func putU32(_ type: UInt16, _ v: UInt32) { putInteger(type, v.littleEndian) }
    public mutating func putU64(_ type: UInt16, _ v: UInt64) { putInteger(type, v.littleEndian) }
    /// A big-endian (network order) integer payload, as OVS uses for be16/be32/be64 fields.
    public mutating func putBE16(_ type: UInt16, _ v: UInt16) { putInteger(type, v.bigEndian) }
    public mutating func putBE32(_ type: UInt16, _ v: UInt32) { putInteger(type, v.bigEndian) }
    public mutating func putBE64(_ type: UInt16, _ v: UInt64) { putInteger(type, v.bigEndian) }
    public mutating func putBE128(_ type: UInt16, _ v: UInt128) { putInteger(type, v.bigEndian) }

    /// An integer's in-memory bytes (already in the wanted byte order), without an
    /// intermediate array.
    @inlinable
    mutating func putInteger<T: FixedWidthInteger>(_ type: UInt16, _ v: T) {
        // `v` is in the wanted byte order already; header, value and padding are one
        // append (`appendAttribute`).
        let size = MemoryLayout<T>.size
        var a: (UInt64, UInt64, UInt64) = (0, 0, 0)
        Swift.withUnsafeMutableBytes(of: &a) { b in
            Swift.withUnsafeBytes(of: v) { b.baseAddress!.advanced(by: 4).copyMemory(from: $0.baseAddress!, byteCount: size) }
            appendAttribute(b, type: type, payload: size)
        }
    }

    /// Appends an attribute laid out in `staged` from its fifth byte on (its header is
    /// written here), padded, as one `append(contentsOf:)` of a raw buffer: a hundred
    /// instructions or so whatever it appends, where a byte's `append` is about fifteen
    /// (a uniqueness check and a capacity check each) and an attribute was 8–20 of them.
    /// (No reserveCapacity: it grows to the size asked, not geometrically, and a writer
    /// of many attributes — a dump's chunk — would copy itself at each one.)
    @inlinable
    mutating func appendAttribute(_ staged: UnsafeMutableRawBufferPointer, type: UInt16, payload: Int) {
        let length = fitting(4 + payload, type: type)
        staged.storeBytes(of: UInt16(truncatingIfNeeded: length).littleEndian, toByteOffset: 0, as: UInt16.self)
        staged.storeBytes(of: type.littleEndian, toByteOffset: 2, as: UInt16.self)
        bytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: staged[0..<(4 + netlinkAlign(payload))]))
    }
    /// A NUL-terminated string.
    public mutating func putString(_ type: UInt16, _ s: String) { put(type, Array(s.utf8) + [0]) }

    /// Writes a nested attribute whose payload is what `body` appends.
    public mutating func nested(_ type: UInt16, flag: Bool = false, _ body: (inout AttributeWriter) throws -> Void) rethrows {
        // The inner attributes are written in place, after the header (no buffer of
        // their own, no copy); the length is filled in when they are done.
        let start = bytes.count
        appendHeader(length: 0, type: flag ? type | NetlinkAttributeFlag.nested : type)
        defer {
            let len = fitting(bytes.count - start, type: type)
            bytes[start] = UInt8(len & 0xff)
            bytes[start + 1] = UInt8(len >> 8)
        }
        try body(&self)
    }

    /// The bytes to send, or the error for an attribute that did not fit.
    public func finished() throws(NetlinkError) -> [UInt8] {
        if let overflow { throw .attributeTooLong(type: overflow.type, length: overflow.length) }
        return bytes
    }

    /// Appends an attribute of `count` zero bytes and returns where its payload starts
    /// in `bytes`, for the caller to fill in place (no payload array of its own).
    public mutating func putZeroed(_ type: UInt16, count: Int) -> Int {
        let at = bytes.count + 4
        if count <= 60 {
            // Header and zeros as one append (`appendAttribute`).
            var a: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0, 0)
            Swift.withUnsafeMutableBytes(of: &a) { appendAttribute($0, type: type, payload: count) }
        } else {
            appendHeader(length: 4 + count, type: type)
            bytes.append(contentsOf: repeatElement(0, count: netlinkAlign(count)))
        }
        return at
    }

    /// Appends already-encoded attributes.
    public mutating func append(raw: some Collection<UInt8>) { bytes.append(contentsOf: raw) }

    @inlinable
    mutating func appendHeader(length: Int, type: UInt16) {
        let length = fitting(length, type: type)
        bytes.append(UInt8(length & 0xff))
        bytes.append(UInt8((length >> 8) & 0xff))
        bytes.append(UInt8(type & 0xff))
        bytes.append(UInt8(type >> 8))
    }

    /// `length`, or 0 (recorded in `overflow`) when it does not fit in 16 bits.
    @inlinable
    mutating func fitting(_ length: Int, type: UInt16) -> Int {
        length <= Self.maxLength ? length : overflowed(length, type: type)
    }

    @usableFromInline
    mutating func overflowed(_ length: Int, type: UInt16) -> Int {
        if overflow == nil {
            overflow = AttributeOverflow(type: type & NetlinkAttributeFlag.typeMask, length: length)
        }
        return 0
    }

    @inlinable
    mutating func pad() {
        while bytes.count % 4 != 0 { bytes.append(0) }
    }
}

/// Attributes written into memory already sized for them (a request in a stream's send
/// buffer: `RequestStream.submit(…attributesLength:)`), each with one store for its header
/// and one copy for its payload. The caller sizes the memory with `size(payload:)` and
/// checks that each attribute fits (`AttributeWriter.maxLength`): nothing is checked here.
public struct AttributeCursor {
    @usableFromInline
    var at: UnsafeMutableRawPointer

    @inlinable
    public init(_ at: UnsafeMutableRawPointer) { self.at = at }

    /// The bytes an attribute of `payload` bytes takes, header and padding included.
    @inlinable
    public static func size(payload: Int) -> Int { 4 + netlinkAlign(payload) }

    @inlinable
    public mutating func put(_ type: UInt16, _ payload: UnsafeRawBufferPointer) {
        let n = payload.count
        at.storeBytes(of: (UInt16(truncatingIfNeeded: 4 + n).littleEndian, type.littleEndian), as: (UInt16, UInt16).self)
        if let p = payload.baseAddress { (at + 4).copyMemory(from: p, byteCount: n) }
        // The padding is zeros, as AttributeWriter's (the memory is not cleared).
        for i in 4 + n..<Self.size(payload: n) { at.storeBytes(of: 0, toByteOffset: i, as: UInt8.self) }
        at += Self.size(payload: n)
    }

    @inlinable
    public mutating func putU32(_ type: UInt16, _ v: UInt32) { putInteger(type, v.littleEndian) }
    @inlinable
    public mutating func putBE128(_ type: UInt16, _ v: UInt128) { putInteger(type, v.bigEndian) }

    /// An integer's in-memory bytes (already in the wanted byte order; its size a
    /// multiple of 4: no padding), stored after the header.
    @inlinable
    mutating func putInteger<T: FixedWidthInteger>(_ type: UInt16, _ v: T) {
        let n = MemoryLayout<T>.size
        at.storeBytes(of: (UInt16(truncatingIfNeeded: 4 + n).littleEndian, type.littleEndian), as: (UInt16, UInt16).self)
        at.storeBytes(of: v, toByteOffset: 4, as: T.self)
        at += 4 + n
    }
}

/// An attribute too long for its 16-bit length: its type and the length it needed.
public struct AttributeOverflow: Sendable, Equatable {
    public let type: UInt16
    public let length: Int

    init(type: UInt16, length: Int) {
        self.type = type
        self.length = length
    }
}

/// One decoded attribute: its type (flags stripped) and its payload bytes.
public struct Attribute: Sendable {
    public let type: UInt16
    public let isNested: Bool
    public let payload: ArraySlice<UInt8>
    /// Byte offset of the attribute header within the buffer it came from.
    public let offset: Int

    public var count: Int { payload.count }

    public init(type: UInt16, isNested: Bool = false, payload: ArraySlice<UInt8>, offset: Int = 0) {
        self.type = type
        self.isNested = isNested
        self.payload = payload
        self.offset = offset
    }

    public func u8() throws(NetlinkError) -> UInt8 {
        try expectLength(1)
        return payload[payload.startIndex]
    }
    public func u16() throws(NetlinkError) -> UInt16 { try integer(UInt16.self, bigEndian: false) }
    public func u32() throws(NetlinkError) -> UInt32 { try integer(UInt32.self, bigEndian: false) }
    public func u64() throws(NetlinkError) -> UInt64 { try integer(UInt64.self, bigEndian: false) }
    public func be16() throws(NetlinkError) -> UInt16 { try integer(UInt16.self, bigEndian: true) }
    public func be32() throws(NetlinkError) -> UInt32 { try integer(UInt32.self, bigEndian: true) }
    public func be64() throws(NetlinkError) -> UInt64 { try integer(UInt64.self, bigEndian: true) }

    public func string() throws(NetlinkError) -> String {
        var bytes = Array(payload)
        if let nul = bytes.firstIndex(of: 0) { bytes = Array(bytes[..<nul]) }
        guard let s = String(validating: bytes, as: UTF8.self) else {
            throw NetlinkError.malformed(offset: offset, "attribute \(type): string is not UTF-8")
        }
        return s
    }

    public func nestedAttributes() throws(NetlinkError) -> [Attribute] {
        try AttributeParser.parse(payload)
    }

    public func expectLength(_ n: Int) throws(NetlinkError) {
        guard payload.count == n else {
            throw NetlinkError.malformed(offset: offset, "attribute \(type) has length \(payload.count), expected \(n)")
        }
    }

    func integer<T: FixedWidthInteger>(_: T.Type, bigEndian: Bool) throws(NetlinkError) -> T {
        try expectLength(MemoryLayout<T>.size)
        var v: T = 0
        if bigEndian {
            for b in payload { v = v << 8 | T(b) }
        } else {
            for b in payload.reversed() { v = v << 8 | T(b) }
        }
        return v
    }
}

/// Where the first attribute of each type lies, found in one walk that checks every
/// attribute's framing as parse() does. A request handler looks up a handful of types:
/// walking the attributes from the start for each cost more than decoding the flow key
/// (eight walks a flow put). Indexed: types below 32 (the kernel families') and from
/// 100 to 131 (esw's extensions); others are found by walking.
///
/// Not copyable: it owns its payloads' memory, freed when it goes. So no object and no
/// reference counting (a heap object reused through a scratch cost a request three
/// retains and three releases), and no copy per look-up (offsets inline in the index,
/// an InlineArray, were copied whole, 288 bytes, by every look-up to read one).
public struct AttributeIndex: ~Copyable {
    public let bytes: ArraySlice<UInt8>
    /// Which slots hold a type that is there (bit `slot`): only those of `payloads` are
    /// written, so the memory is never cleared (64 slots zeroed were a twentieth of the index).
    @usableFromInline let present: UInt64
    /// Where the payload of each present slot's first attribute lies, as offsets from
    /// `bytes.startIndex`: start in the low 32 bits, end in the high ones (a look-up reads
    /// no byte of the attribute). Allocated by the index alone, never handed out.
    @usableFromInline let payloads: UnsafeMutablePointer<UInt64>
    @usableFromInline static var slots: Int { 64 }

    @inlinable
    static func slot(_ type: UInt16) -> Int? {
        switch type {
        case 0..<32: Int(type)
        case 100..<132: Int(type) - 68
        default: nil
        }
    }

    /// The payloads of the index dropped last, kept for the next one (0: none): a request
    /// makes and drops one, and malloc and free were 2–3 % of an offloaded add's control
    /// thread. One slot, taken and given back with one atomic operation each (any thread).
    private static let spare = Atomic<UInt>(0)

    /// `bytes` is kept (moved in when the caller gives it up: no retain).
    public init(_ bytes: consuming ArraySlice<UInt8>) throws(NetlinkError) {
        // malloc, not allocate(capacity:): the standard library asks the runtime for
        // "default" alignment, which it serves through posix_memalign, slower than malloc.
        let found = UnsafeMutablePointer<UInt64>(bitPattern: Self.spare.exchange(0, ordering: .acquiring))
            ?? malloc(Self.slots * MemoryLayout<UInt64>.stride)!.assumingMemoryBound(to: UInt64.self)
        // `present` local to the walk, returned (captured, it was stored at each attribute).
        let (present, failure) = bytes.withUnsafeBytes { raw -> (UInt64, NetlinkError?) in
            // Offsets in 32 bits (a request is at most a datagram, a MiB).
            precondition(raw.count <= Int(UInt32.max), "attributes beyond 4 GiB")
            var present: UInt64 = 0
            var walk = AttributeWalk(raw)
            while let h = walk.next() {
                if let s = Self.slot(h.type), present & (1 << UInt64(s)) == 0 {
                    present |= 1 << UInt64(s)
                    found[s] = UInt64(truncatingIfNeeded: h.offset &+ 4) | UInt64(truncatingIfNeeded: h.offset &+ h.length) << 32
                }
            }
            return (present, walk.error)
        }
        if let failure {
            free(found)
            throw failure
        }
        payloads = found
        self.present = present
        self.bytes = bytes
    }

    deinit {
        let given = Self.spare.compareExchange(expected: 0, desired: UInt(bitPattern: payloads), ordering: .releasing).exchanged
        if !given { free(payloads) }
    }

    /// Whether an attribute of `type` is there (no Attribute made: its payload slice
    /// is a reference to count).
    @inlinable @inline(__always)
    public func contains(_ type: UInt16) -> Bool {
        guard let s = Self.slot(type) else { return self[type] != nil }
        return present & (1 << UInt64(s)) != 0
    }

    /// Where the payload of the first attribute of `type` lies in `bytes`. A range is a
    /// plain value: an optional slice is destroyed through the runtime's generic value
    /// witnesses (about a hundred instructions each, six a flow put). Inlinable: a
    /// handler's look-ups are a few instructions each, not a call each.
    @inlinable @inline(__always)
    public func payloadRange(_ type: UInt16) -> Range<Int>? {
        guard let s = Self.slot(type) else { return walkedPayloadRange(type) }
        guard present & (1 << UInt64(s)) != 0 else { return nil }
        let p = payloads[s]
        let base = bytes.startIndex
        return Range(uncheckedBounds: (base + Int(truncatingIfNeeded: UInt32(truncatingIfNeeded: p)),
                                       base + Int(truncatingIfNeeded: p >> 32)))
    }

    /// `payloadRange` of a type that is not indexed.
    @usableFromInline
    func walkedPayloadRange(_ type: UInt16) -> Range<Int>? {
        self[type].map { a in bytes.startIndex + a.offset + 4..<bytes.startIndex + a.offset + 4 + a.payload.count }
    }

    /// The first attribute of `type` (the framing was checked: no error).
    public subscript(_ type: UInt16) -> Attribute? {
        guard let s = Self.slot(type) else { return (try? AttributeParser.first(type, in: bytes)) ?? nil }
        guard present & (1 << UInt64(s)) != 0 else { return nil }
        let p = payloads[s]
        let i = bytes.startIndex + Int(truncatingIfNeeded: UInt32(truncatingIfNeeded: p)) - 4
        let len = Int(truncatingIfNeeded: p >> 32) - Int(truncatingIfNeeded: UInt32(truncatingIfNeeded: p)) + 4
        let rawType = UInt16(bytes[i + 2]) | UInt16(bytes[i + 3]) << 8
        return AttributeParser.attribute(bytes, rawType, i, len)
    }
}

/// Splits a byte range into attributes, checking every length.
public enum AttributeParser {
    public static func parse(_ bytes: ArraySlice<UInt8>) throws(NetlinkError) -> [Attribute] {
        var out: [Attribute] = []
        // Most attributes of a flow are 8 to 16 bytes: one allocation instead of growing.
        out.reserveCapacity(bytes.count / 12 + 1)
        try scan(bytes) { rawType, i, len in
            out.append(attribute(bytes, rawType, i, len))
            return true
        }
        return out
    }

    /// The first attribute of `type`, checking the framing only as far as it looks.
    /// Builds nothing for the attributes it passes over.
    public static func first(_ type: UInt16, in bytes: ArraySlice<UInt8>) throws(NetlinkError) -> Attribute? {
        var found: Attribute?
        try scan(bytes) { rawType, i, len in
            guard rawType & NetlinkAttributeFlag.typeMask == type else { return true }
            found = attribute(bytes, rawType, i, len)
            return false
        }
        return found
    }

    /// Checks every attribute's framing, as parse() does, without building anything.
    public static func validate(_ bytes: ArraySlice<UInt8>) throws(NetlinkError) {
        try scan(bytes) { _, _, _ in true }
    }

    static func attribute(_ bytes: ArraySlice<UInt8>, _ rawType: UInt16, _ i: Int, _ len: Int) -> Attribute {
        Attribute(type: rawType & NetlinkAttributeFlag.typeMask, isNested: rawType & NetlinkAttributeFlag.nested != 0,
                  payload: bytes[(i + 4)..<(i + len)], offset: i - bytes.startIndex)
    }

    /// Visits each attribute header in order (raw type, index of the header, length),
    /// with parse()'s checks, until `visit` returns false.
    static func scan(_ bytes: ArraySlice<UInt8>, _ visit: (UInt16, Int, Int) -> Bool) throws(NetlinkError) {
        let failure = bytes.withUnsafeBytes { raw -> NetlinkError? in
            var walk = AttributeWalk(raw)
            while let h = walk.next() {
                if !visit(h.rawType, bytes.startIndex + h.offset, h.length) { return nil }
            }
            return walk.error
        }
        if let failure { throw failure }
    }

    public static func parse(_ bytes: [UInt8]) throws(NetlinkError) -> [Attribute] {
        try parse(bytes[...])
    }

    /// Where each attribute lies, checked as parse() checks them: plain values (no
    /// slice, so no reference counting), for a caller that reads most attributes'
    /// bytes in place and builds an `Attribute` for few of them.
    public static func spans(_ bytes: ArraySlice<UInt8>) throws(NetlinkError) -> [AttributeSpan] {
        var out: [AttributeSpan] = []
        // An attribute takes 4 bytes at least: a key's or a reply's spans never grow
        // (bounded: a big body grows as usual rather than reserving far more than it holds).
        out.reserveCapacity(min(bytes.count / 4 + 1, 64))
        try scan(bytes) { rawType, i, len in
            out.append(AttributeSpan(type: rawType & NetlinkAttributeFlag.typeMask,
                                     isNested: rawType & NetlinkAttributeFlag.nested != 0,
                                     payload: (i + 4)..<(i + len), offset: i - bytes.startIndex))
            return true
        }
        return out
    }
}

/// Attributes walked in bytes the caller holds, each one's framing checked as it comes
/// (parse()'s checks: a whole header, a length from 4 to what is left): the one framing
/// walk of the attribute readers (AttributeParser, the key decoder, the dump's readers).
/// It stops at an attribute that does not fit, and says why (`error`).
public struct AttributeWalk {
    public let bytes: UnsafeRawBufferPointer
    @usableFromInline var at = 0
    /// Why the walk stopped before the end (nil: it did not).
    public private(set) var error: NetlinkError?

    /// An attribute's header: its type with the flags, where it starts and its length
    /// (header included, padding not).
    public struct Header {
        public let rawType: UInt16
        public let offset: Int
        public let length: Int
        public var type: UInt16 { rawType & NetlinkAttributeFlag.typeMask }
        public var payload: Range<Int> { (offset + 4)..<(offset + length) }

        @usableFromInline
        init(rawType: UInt16, offset: Int, length: Int) {
            self.rawType = rawType
            self.offset = offset
            self.length = length
        }
    }

    @inlinable
    public init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    @inlinable @inline(__always)
    public mutating func next() -> Header? {
        guard at < bytes.count else { return nil }
        // Wrapping arithmetic: `at` is within the buffer and a length 16 bits, so nothing
        // overflows (the checks were a fifth of a walk).
        let rest = bytes.count &- at
        guard rest >= 4 else {
            stop(length: 0, rest: rest)
            return nil
        }
        let length = Int(UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt16.self)))
        guard length >= 4, length <= rest else {
            stop(length: length, rest: rest)
            return nil
        }
        let h = Header(rawType: UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: at &+ 2, as: UInt16.self)),
                       offset: at, length: length)
        at &+= Swift.min((length &+ 3) & ~3, rest)
        return h
    }

    /// The walk's end at an attribute that does not fit (out of line: the messages).
    @usableFromInline
    mutating func stop(length: Int, rest: Int) {
        error = rest < 4 ? .malformed(offset: at, "truncated attribute header")
            : .malformed(offset: at, "attribute length \(length) outside 4...\(rest)")
        at = bytes.count
    }
}

/// An attribute's place in its buffer (AttributeParser.spans).
public struct AttributeSpan: Sendable {
    public let type: UInt16
    public let isNested: Bool
    /// The payload's indices in the buffer.
    public let payload: Range<Int>
    public let offset: Int
    public var count: Int { payload.count }

    /// The attribute itself, from the buffer the span was found in.
    public func attribute(in bytes: [UInt8]) -> Attribute {
        Attribute(type: type, isNested: isNested, payload: bytes[payload], offset: offset)
    }
}

public enum NetlinkError: Error, Sendable, Equatable, CustomStringConvertible {
    case malformed(offset: Int, String)
    /// An attribute to be written is longer than a netlink attribute can be.
    case attributeTooLong(type: UInt16, length: Int)

    public var description: String {
        switch self {
        case .malformed(let offset, let message): "malformed netlink at byte \(offset): \(message)"
        case .attributeTooLong(let type, let length):
            "attribute \(type) is too long: \(length) bytes, at most \(AttributeWriter.maxLength)"
        }
    }
}
