/// Netlink message framing: struct nlmsghdr, the generic netlink header, and
/// NLMSG_ERROR with extended ack (the error text travels as NLMSGERR_ATTR_MSG).

public struct NetlinkHeader: Sendable, Equatable {
    public static let size = 16
    public var length: UInt32
    public var type: UInt16
    public var flags: UInt16
    public var sequence: UInt32
    public var portID: UInt32

    public init(length: UInt32 = 0, type: UInt16, flags: UInt16, sequence: UInt32, portID: UInt32 = 0) {
        self.length = length
        self.type = type
        self.flags = flags
        self.sequence = sequence
        self.portID = portID
    }
}

public enum NetlinkMessageType {
    public static let noop: UInt16 = 1
    public static let error: UInt16 = 2
    public static let done: UInt16 = 3
    /// Types below this are reserved for control messages.
    public static let minimumFamily: UInt16 = 0x10
}

public enum NetlinkFlags {
    public static let request: UInt16 = 0x1
    public static let multi: UInt16 = 0x2
    public static let ack: UInt16 = 0x4
    public static let echo: UInt16 = 0x8
    public static let dump: UInt16 = 0x300
    public static let replace: UInt16 = 0x100
    public static let exclusive: UInt16 = 0x200
    public static let create: UInt16 = 0x400
    // On NLMSG_ERROR:
    public static let capped: UInt16 = 0x100
    public static let ackTLVs: UInt16 = 0x200
}

public enum NetlinkErrorAttribute {
    public static let message: UInt16 = 1
    public static let offset: UInt16 = 2
}

/// A generic netlink message: nlmsghdr, genlmsghdr, a fixed family header
/// (4 bytes for the OVS families: struct ovs_header), then attributes.
public struct GenericMessage: Sendable {
    public var header: NetlinkHeader
    public var command: UInt8
    public var version: UInt8
    /// struct ovs_header's dp_ifindex (or 0 for families without one).
    public var familyHeader: Int32
    /// The attributes; a decoded message's lie where they arrived (no copy per request).
    public var attributes: ArraySlice<UInt8>

    public init(family: UInt16, command: UInt8, version: UInt8 = 1, flags: UInt16, sequence: UInt32,
                familyHeader: Int32 = 0, attributes: [UInt8] = []) {
        self.header = NetlinkHeader(type: family, flags: flags, sequence: sequence)
        self.command = command
        self.version = version
        self.familyHeader = familyHeader
        self.attributes = attributes[...]
    }

    public static let fixedSize = NetlinkHeader.size + 4 + 4

    /// The wire form.
    public func encoded() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(GenericMessage.fixedSize + attributes.count)
        append(to: &out)
        return out
    }

    /// Appends the wire form to `out` (a stream of requests: no array of its own).
    public func append(to out: inout [UInt8]) {
        let length = UInt32(GenericMessage.fixedSize + attributes.count)
        appendHeader(&out, NetlinkHeader(length: length, type: header.type, flags: header.flags,
                                         sequence: header.sequence, portID: header.portID))
        out.append(command)
        out.append(version)
        out.append(0)
        out.append(0)
        out.appendBytes(of: familyHeader.littleEndian)
        out += attributes
    }

    /// Appends this message to `out` with attributes `body` writes in place (a dump's
    /// replies: no attribute array, no message array, nothing copied twice). The
    /// message's own `attributes` are not used. An attribute too long for netlink throws,
    /// and `out` is left as it was.
    public func append(to out: inout [UInt8], attributes body: (inout AttributeWriter) -> Void) throws(NetlinkError) {
        let start = out.count
        appendHeader(&out, NetlinkHeader(length: 0, type: header.type, flags: header.flags,
                                         sequence: header.sequence, portID: header.portID))
        out.append(command)
        out.append(version)
        out.append(0)
        out.append(0)
        out.appendBytes(of: familyHeader.littleEndian)
        var w = AttributeWriter(bytes: [])
        swap(&w.bytes, &out)
        body(&w)
        swap(&w.bytes, &out)
        if let overflow = w.overflow {
            out.removeSubrange(start...)
            throw .attributeTooLong(type: overflow.type, length: overflow.length)
        }
        withUnsafeBytes(of: UInt32(out.count - start).littleEndian) { length in
            for i in 0..<4 { out[start + i] = length[i] }
        }
    }

    /// Decodes one message body whose nlmsghdr is already parsed.
    public init(header: NetlinkHeader, body: ArraySlice<UInt8>) throws(NetlinkError) {
        guard body.count >= 8 else {
            throw NetlinkError.malformed(offset: NetlinkHeader.size, "generic netlink message shorter than its headers")
        }
        self.header = header
        // Read in place (byte by byte, each read was a bounds check: a request's headers
        // cost more than the rest of their decoding).
        (command, version, familyHeader) = body.withUnsafeBytes { raw in
            (raw[0], raw[1], Int32(littleEndian: raw.loadUnaligned(fromByteOffset: 4, as: Int32.self)))
        }
        self.attributes = body[(body.startIndex + 8)...]
    }
}

extension Array where Element == UInt8 {
    /// Appends a value's in-memory bytes: up to 8 one `append` each (the generic
    /// `append(contentsOf:)` costs about a hundred instructions whatever it appends, a
    /// byte's `append` about fifteen), more as typed bytes in one copy (a raw buffer
    /// would be appended byte by byte through the generic path).
    @inlinable
    public mutating func appendBytes<T>(of v: T) {
        Swift.withUnsafeBytes(of: v) { raw in
            if raw.count <= 8 {
                for b in raw { self.append(b) }
            } else {
                raw.withMemoryRebound(to: UInt8.self) { self.append(contentsOf: $0) }
            }
        }
    }
}

func appendHeader(_ out: inout [UInt8], _ h: NetlinkHeader) {
    // struct nlmsghdr as one 16-byte append (the tuple has no padding).
    let wire = (h.length.littleEndian, h.type.littleEndian, h.flags.littleEndian, h.sequence.littleEndian, h.portID.littleEndian)
    out.appendBytes(of: wire)
}

/// One raw message off the wire.
public struct RawMessage: Sendable {
    public var header: NetlinkHeader
    public var body: ArraySlice<UInt8>
}

/// Splits a buffer that holds one or more netlink messages.
public enum MessageParser {
    public static func split(_ bytes: [UInt8]) throws(NetlinkError) -> [RawMessage] {
        var out: [RawMessage] = []
        try split(bytes) { out.append($0) }
        return out
    }

    /// Each message of `bytes` in turn, handed over (a caller that keeps them in its own
    /// form takes them without an array of them in between).
    public static func split(_ bytes: [UInt8], _ each: (consuming RawMessage) -> Void) throws(NetlinkError) {
        var i = 0
        while i < bytes.count {
            guard bytes.count - i >= NetlinkHeader.size else {
                throw NetlinkError.malformed(offset: i, "truncated netlink header")
            }
            let h = readHeader(bytes, at: i)
            let len = Int(h.length)
            guard len >= NetlinkHeader.size, len <= bytes.count - i else {
                throw NetlinkError.malformed(offset: i, "message length \(len) outside \(NetlinkHeader.size)...\(bytes.count - i)")
            }
            each(RawMessage(header: h, body: bytes[(i + NetlinkHeader.size)..<(i + len)]))
            i += netlinkAlign(len)
        }
    }

    public static func readHeader(_ b: [UInt8], at i: Int) -> NetlinkHeader {
        // Read in place, each field one load (byte by byte, with a bounds check each, it
        // was a fifth of splitting a datagram of flow requests).
        precondition(i >= 0 && i + NetlinkHeader.size <= b.count, "netlink header outside the buffer")
        return b.withUnsafeBytes { p in
            NetlinkHeader(length: UInt32(littleEndian: p.loadUnaligned(fromByteOffset: i, as: UInt32.self)),
                          type: UInt16(littleEndian: p.loadUnaligned(fromByteOffset: i + 4, as: UInt16.self)),
                          flags: UInt16(littleEndian: p.loadUnaligned(fromByteOffset: i + 6, as: UInt16.self)),
                          sequence: UInt32(littleEndian: p.loadUnaligned(fromByteOffset: i + 8, as: UInt32.self)),
                          portID: UInt32(littleEndian: p.loadUnaligned(fromByteOffset: i + 12, as: UInt32.self)))
        }
    }
}

/// NLMSG_ERROR: errno 0 is an ACK. A non-zero errno may carry a message.
public struct ErrorMessage: Sendable, Equatable {
    /// Positive errno (0 = success).
    public var errno: Int32
    public var message: String?
    public var sequence: UInt32
    public var requestType: UInt16

    public init(errno: Int32, message: String? = nil, sequence: UInt32, requestType: UInt16) {
        self.errno = errno
        self.message = message
        self.sequence = sequence
        self.requestType = requestType
    }

    /// The longest error text sent (bytes): more than any message needs, well within an attribute.
    public static let maxMessageLength = 4096

    public func encoded() -> [UInt8] {
        var out: [UInt8] = []
        append(to: &out)
        return out
    }

    /// Appends the wire form to `out` (a reply buffer): an ACK costs no allocation, and
    /// makes no attribute writer (whose empty array was a release per request).
    public func append(to out: inout [UInt8]) {
        guard message != nil else {
            appendHeaders(to: &out, attributesLength: 0)
            return
        }
        var attrs = AttributeWriter(capacity: 0)
        // The text is cut to fit one attribute (a length that does not fit would be 0).
        if let message { attrs.putString(NetlinkErrorAttribute.message, String(decoding: message.utf8.prefix(Self.maxMessageLength), as: UTF8.self)) }
        appendHeaders(to: &out, attributesLength: attrs.bytes.count)
        if !attrs.bytes.isEmpty { out += attrs.bytes }
    }

    private func appendHeaders(to out: inout [UInt8], attributesLength: Int) {
        let length = UInt32(NetlinkHeader.size + 4 + NetlinkHeader.size + attributesLength)
        let flags = NetlinkFlags.capped | (message == nil ? 0 : NetlinkFlags.ackTLVs)
        // Header, errno and the request's header, capped (no payload, as the kernel sends
        // with NETLINK_CAP_ACK): one append (an ACK per request of a batch).
        let wire = (length.littleEndian, NetlinkMessageType.error.littleEndian, flags.littleEndian, sequence.littleEndian,
                    UInt32(0), (-errno).littleEndian,
                    UInt32(NetlinkHeader.size).littleEndian, requestType.littleEndian, UInt16(0), sequence.littleEndian, UInt32(0))
        out.appendBytes(of: wire)
    }

    public init(header: NetlinkHeader, body: ArraySlice<UInt8>) throws(NetlinkError) {
        guard body.count >= 4 + NetlinkHeader.size else {
            throw NetlinkError.malformed(offset: NetlinkHeader.size, "short NLMSG_ERROR")
        }
        let b = body.startIndex
        let raw = UInt32(body[b]) | UInt32(body[b + 1]) << 8 | UInt32(body[b + 2]) << 16 | UInt32(body[b + 3]) << 24
        errno = 0 &- Int32(bitPattern: raw)
        sequence = header.sequence
        let inner = MessageParser.readHeader(Array(body[(b + 4)..<(b + 4 + NetlinkHeader.size)]), at: 0)
        requestType = inner.type
        message = nil
        var attrStart = b + 4 + NetlinkHeader.size
        if header.flags & NetlinkFlags.capped == 0 {
            attrStart = b + 4 + Int(inner.length)
        }
        if header.flags & NetlinkFlags.ackTLVs != 0, attrStart <= body.endIndex {
            for a in try AttributeParser.parse(body[attrStart...]) where a.type == NetlinkErrorAttribute.message {
                message = try a.string()
            }
        }
    }
}

/// NLMSG_DONE, the end of a dump.
public func encodeDone(sequence: UInt32) -> [UInt8] {
    var out: [UInt8] = []
    appendHeader(&out, NetlinkHeader(length: UInt32(NetlinkHeader.size + 4), type: NetlinkMessageType.done,
                                     flags: NetlinkFlags.multi, sequence: sequence))
    out += [0, 0, 0, 0]
    return out
}
