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
