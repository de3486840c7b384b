import Netlink
import Testing

/// A generic netlink message decodes to what was encoded (its command, version, family
/// header, in a body that does not start at 0 of its buffer), and a body too short for
/// its headers is refused.
@Suite struct GenericMessageTests {
    @Test func aMessageDecodesToWhatWasEncoded() throws {
        let sent = GenericMessage(family: 0x21, command: 7, version: 3, flags: NetlinkFlags.ack, sequence: 0x0102_0304,
                                  familyHeader: -2, attributes: [8, 0, 1, 0, 9, 8, 7, 6])
        let bytes = GenericMessage(family: 0x22, command: 1, flags: 0, sequence: 1).encoded() + sent.encoded()
        let raw = try MessageParser.split(bytes)
        #expect(raw.count == 2)
        let m = try GenericMessage(header: raw[1].header, body: raw[1].body)
        #expect(m.header.type == 0x21 && m.header.sequence == 0x0102_0304 && m.header.flags == NetlinkFlags.ack)
        #expect(m.command == 7 && m.version == 3 && m.familyHeader == -2)
        #expect(Array(m.attributes) == [8, 0, 1, 0, 9, 8, 7, 6])
        #expect(m.attributes.startIndex == GenericMessage.fixedSize * 2)
    }

    @Test func aBodyShorterThanItsHeadersIsRefused() {
        let header = NetlinkHeader(length: 23, type: 0x21, flags: 0, sequence: 1)
        let body: [UInt8] = [1, 1, 0, 0, 0, 0, 0]
        #expect(throws: NetlinkError.malformed(offset: NetlinkHeader.size, "generic netlink message shorter than its headers")) {
            try GenericMessage(header: header, body: body[...])
        }
        #expect(throws: Never.self) { try GenericMessage(header: header, body: (body + [0])[...]) }
    }
}
