import Netlink
import Testing

/// A netlink attribute's length is 16 bits: one that does not fit is an error, never a
/// length wrapped into a smaller one.
@Suite struct AttributeLengthTests {
    @Test func theLongestPayloadFits() throws {
        var w = AttributeWriter()
        w.put(1, [UInt8](repeating: 7, count: AttributeWriter.maxPayload))
        #expect(w.overflow == nil)
        let bytes = try w.finished()
        let a = try AttributeParser.parse(bytes)
        #expect(a.count == 1 && a[0].count == AttributeWriter.maxPayload)
    }

    @Test func aPayloadTooLongIsRecordedAndNeverWrapped() {
        var w = AttributeWriter()
        w.putU32(2, 5)
        w.put(3, [UInt8](repeating: 7, count: 65536))
        #expect(w.overflow?.type == 3 && w.overflow?.length == 65540)
        // The length field says 0, which every reader refuses (65540 would wrap to 4).
        #expect(w.bytes[8] == 0 && w.bytes[9] == 0)
        #expect(throws: NetlinkError.attributeTooLong(type: 3, length: 65540)) { try w.finished() }
        #expect(throws: NetlinkError.self) { try AttributeParser.parse(w.bytes) }
        #expect(NetlinkError.attributeTooLong(type: 3, length: 65540).description
            == "attribute 3 is too long: 65540 bytes, at most 65535")
    }

    @Test func aNestedAttributeTooLongIsRecorded() {
        var w = AttributeWriter()
        w.nested(4) { n in
            for _ in 0..<9000 { n.putU32(1, 0) }  // 72,000 bytes inside
        }
        #expect(w.overflow?.type == 4 && w.overflow?.length == 72004)
        #expect(w.bytes[0] == 0 && w.bytes[1] == 0)
        #expect(throws: NetlinkError.self) { try w.finished() }
    }

    /// Integers and zeroed attributes are written as one staged append: the bytes are
    /// exactly those of a header, the payload and its padding, at every size around the
    /// staging buffer's (60 bytes of zeros, then byte by byte).
    @Test func integersAndZeroedAttributesAreByteExact() throws {
        var w = AttributeWriter()
        w.putU8(1, 0xAB)
        w.putBE16(2, 0x0102)
        w.putU32(3, 0x0A0B_0C0D)
        w.putBE128(4, 1)
        // (A length counts the header and the payload, not the padding.)
        #expect(w.bytes == [5, 0, 1, 0, 0xAB, 0, 0, 0,
                            6, 0, 2, 0, 1, 2, 0, 0,
                            8, 0, 3, 0, 0x0D, 0x0C, 0x0B, 0x0A,
                            20, 0, 4, 0] + [UInt8](repeating: 0, count: 15) + [1])
        for count in [0, 1, 3, 4, 59, 60, 61, 64, 200] {
            var z = AttributeWriter()
            z.putU32(9, 7)
            let at = z.putZeroed(5, count: count)
            #expect(at == 12)
            let header = [UInt8(truncatingIfNeeded: 4 + count), UInt8((4 + count) >> 8), 5, 0]
            #expect(z.bytes == [8, 0, 9, 0, 7, 0, 0, 0] + header + [UInt8](repeating: 0, count: (count + 3) & ~3), "count \(count)")
            let a = try AttributeParser.parse(try z.finished())
            #expect(a.count == 2 && a[1].type == 5 && a[1].count == count)
        }
        var big = AttributeWriter()
        _ = big.putZeroed(6, count: AttributeWriter.maxPayload + 1)
        #expect(big.overflow?.type == 6 && big.overflow?.length == AttributeWriter.maxLength + 1)
        #expect(big.bytes[0] == 0 && big.bytes[1] == 0)
    }

    @Test func aMessageWithAnAttributeTooLongIsNotAppended() {
        let m = GenericMessage(family: 0x20, command: 1, flags: 0, sequence: 1)
        var out: [UInt8] = [1, 2, 3]
        #expect(throws: NetlinkError.attributeTooLong(type: 1, length: 70004)) {
            try m.append(to: &out) { $0.put(1, [UInt8](repeating: 0, count: 70000)) }
        }
        #expect(out == [1, 2, 3])
    }

    @Test func anErrorMessageTooLongIsCutToFit() throws {
        let text = String(repeating: "x", count: 100_000)
        let bytes = ErrorMessage(errno: 22, message: text, sequence: 9, requestType: 0x20).encoded()
        let raw = try MessageParser.split(bytes)
        let e = try ErrorMessage(header: raw[0].header, body: raw[0].body)
        #expect(e.errno == 22)
        #expect(e.message?.count == ErrorMessage.maxMessageLength)
    }
}
