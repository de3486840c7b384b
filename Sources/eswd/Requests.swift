import Netlink

/// A request's attributes by type (first occurrence), with typed accessors that turn
/// malformed input into a RequestError.
struct RequestAttributes {
    /// The attributes as received, framing checked, with where the first of each type
    /// lies (one walk; a walk per look-up cost more than decoding the flow key).
    private let index: AttributeIndex
    var bytes: ArraySlice<UInt8> { index.bytes }

    init(_ bytes: ArraySlice<UInt8>) throws(RequestError) {
        do { index = try AttributeIndex(bytes) } catch { throw RequestError(22, "malformed attributes: \(error)") }
    }

    subscript(_ t: UInt16) -> Attribute? { index[t] }
    func has(_ t: UInt16) -> Bool { index.contains(t) }

    func u32(_ t: UInt16) throws(RequestError) -> UInt32? {
        guard let a = self[t] else { return nil }
        do { return try a.u32() } catch { throw RequestError(22, error.description) }
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
