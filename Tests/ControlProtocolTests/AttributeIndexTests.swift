import Netlink
import Testing

/// AttributeIndex finds what AttributeParser.first finds, for every type: indexed or
/// walked, present or not, repeated (the first counts), nested, in a slice that does
/// not start at 0; and it refuses what parse() refuses.
@Suite struct AttributeIndexTests {
    @Test func everyTypeAnswersAsAWalkDoes() throws {
        var w = AttributeWriter()
        w.putU32(0, 1)
        w.putU32(5, 2)
        w.putU32(5, 3)                    // a repeat: the first counts
        w.putU8(31, 4)
        w.putU16(32, 5)                   // between the indexed ranges: walked
        w.nested(100) { $0.putU32(1, 6) }
        w.putU32(131, 7)
        w.put(132, [1, 2, 3])             // past the indexed ranges: walked
        w.putU32(0x3fff, 8)
        let body = try w.finished()
        let framed = [0xaa, 0xbb, 0xcc, 0xdd] + body
        let bytes = framed[4...]
        let index = try AttributeIndex(bytes)
        for t in UInt16(0)...0x3fff {
            let walked = try AttributeParser.first(t, in: bytes)
            let found = index[t]
            #expect(found?.type == walked?.type && found?.isNested == walked?.isNested
                    && found.map { Array($0.payload) } == walked.map { Array($0.payload) }, "type \(t)")
        }
        #expect(try index[5]?.u32() == 2)
        // Where each payload lies, as the walk has it.
        for t: UInt16 in [0, 5, 31, 32, 100, 131, 132, 0x3fff, 7, 200] {
            let walked = try AttributeParser.first(t, in: bytes)
            #expect(index.payloadRange(t).map { Array(bytes[$0]) } == walked.map { Array($0.payload) }, "type \(t)")
        }
    }

    /// Indexes of two requests are independent: one made after another carries nothing
    /// of it over, and the first still answers for its own bytes.
    @Test func anIndexCarriesNothingOfAnother() throws {
        var first = AttributeWriter()
        first.putU32(5, 1)
        first.putU32(6, 2)
        var second = AttributeWriter()
        second.putU32(6, 3)
        let a = try AttributeIndex(first.bytes[...])
        let b = try AttributeIndex(second.bytes[...])
        #expect(try a[5]?.u32() == 1 && a.contains(5))
        #expect(b[5] == nil && b.payloadRange(5) == nil && !b.contains(5))
        #expect(try a[6]?.u32() == 2 && b[6]?.u32() == 3)
    }

    /// An index made after another was dropped (its memory reused, not cleared) finds
    /// only its own attributes. Many times: the one spare buffer may go to an index of a
    /// test running beside this one.
    @Test func anIndexAfterADroppedOneFindsOnlyItsOwn() throws {
        var first = AttributeWriter()
        for t: UInt16 in [1, 5, 31, 100, 131] { first.putU32(t, UInt32(t)) }
        var second = AttributeWriter()
        second.putU16(5, 9)
        for _ in 0..<100 {
            do { _ = try AttributeIndex(first.bytes[...]) }
            let b = try AttributeIndex(second.bytes[...])
            for t: UInt16 in [1, 31, 100, 131] {
                #expect(!b.contains(t) && b.payloadRange(t) == nil && b[t] == nil, "type \(t)")
            }
            #expect(try b.contains(5) && b.payloadRange(5) == 4..<6 && b[5]?.u16() == 9)
        }
    }

    @Test func badFramingIsRefusedAsParseRefusesIt() {
        var w = AttributeWriter()
        w.putU32(1, 1)
        var bytes = w.bytes
        bytes[0] = 3                      // a length below the header's
        #expect(throws: NetlinkError.self) { try AttributeIndex(bytes[...]) }
        #expect(throws: NetlinkError.self) { try AttributeIndex(w.bytes.dropLast(1)) }
    }
}
