import Netlink

/// A request's attributes by type (first occurrence), with typed accessors that turn
/// malformed input into a RequestError. Not copyable, as its index is not: handlers
/// borrow it. The accessors a flow put uses are always inlined: a call copied the whole
/// index to pass it borrowed, more than the look-up itself.
struct RequestAttributes: ~Copyable {
    /// The attributes as received, framing checked, with where the first of each type
    /// lies (one walk; a walk per look-up cost more than decoding the flow key).
    private let index: AttributeIndex
    var bytes: ArraySlice<UInt8> { index.bytes }

    /// `bytes` is kept: a caller that gives its attributes up (`consume`) moves them in.
    init(_ bytes: consuming ArraySlice<UInt8>) throws(RequestError) {
        do { index = try AttributeIndex(bytes) } catch { throw RequestError(22, "malformed attributes: \(error)") }
    }

    subscript(_ t: UInt16) -> Attribute? { index[t] }
    @inline(__always)
    func has(_ t: UInt16) -> Bool { index.contains(t) }

    @inline(__always)
    func u32(_ t: UInt16) throws(RequestError) -> UInt32? {
        // Read where it lies: an Attribute holds a slice (a retain and a release).
        guard let r = index.payloadRange(t) else { return nil }
        guard r.count == 4 else { throw RequestError(22, "attribute \(t): expected 4 bytes, got \(r.count)") }
        // One load in place (byte by byte, each read was a bounds check).
        return index.bytes.withUnsafeBytes { raw in
            UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: r.lowerBound - index.bytes.startIndex, as: UInt32.self))
        }
    }
    func u8(_ t: UInt16) throws(RequestError) -> UInt8? {
        guard let a = self[t] else { return nil }
        do { return try a.u8() } catch { throw RequestError(22, error.description) }
    }
    func u16(_ t: UInt16) throws(RequestError) -> UInt16? {
        guard let a = self[t] else { return nil }
        do { return try a.u16() } catch { throw RequestError(22, error.description) }
    }
    func string(_ t: UInt16) throws(RequestError) -> String? {
        guard let a = self[t] else { return nil }
        do { return try a.string() } catch { throw RequestError(22, error.description) }
    }
    func bytes(_ t: UInt16) -> [UInt8]? { self[t].map { Array($0.payload) } }
    /// The payload where it lies in the request (no copy).
    func payload(_ t: UInt16) -> ArraySlice<UInt8>? { self[t]?.payload }
    /// Where the payload lies in `bytes`: `payload` without an optional slice to destroy.
    @inline(__always)
    func payloadRange(_ t: UInt16) -> Range<Int>? { index.payloadRange(t) }
    /// A 16-byte payload as a ufid (big-endian), nil when absent or of another length.
    @inline(__always)
    func ufid(_ t: UInt16) -> UInt128? {
        guard let r = index.payloadRange(t), r.count == 16 else { return nil }
        // Two big-endian words read in place (byte by byte, each read checked, it was a
        // hundred instructions a put).
        return index.bytes.withUnsafeBytes { raw in
            let at = r.lowerBound - index.bytes.startIndex
            let high = UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: at, as: UInt64.self))
            let low = UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: at + 8, as: UInt64.self))
            return UInt128(high) << 64 | UInt128(low)
        }
    }
}

/// An errno and a message for the client.
struct RequestError: Error {
    let errno: Int32
    let message: String
    init(_ errno: Int32, _ message: String) {
        self.errno = errno
        self.message = message
    }
}

extension AttributeWriter {
    /// The bytes of a reply, or EMSGSIZE naming the attribute that does not fit in netlink.
    func replyAttributes() throws(RequestError) -> [UInt8] {
        do { return try finished() } catch { throw RequestError(90, "the reply cannot be sent: \(error)") }
    }

    mutating func putU64Array(_ type: UInt16, _ values: [UInt64]) {
        var b: [UInt8] = []
        for v in values { withUnsafeBytes(of: v.littleEndian) { b += $0 } }
        put(type, b)
    }
}
