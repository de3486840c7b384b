import Netlink
import Testing

/// A flow file's requests are written in place by an AttributeCursor (into the request
/// stream's send buffer, memory not cleared): the bytes are those AttributeWriter makes.
@Suite struct AttributeCursorTests {
    @Test func theBytesAreAttributeWritersAtEverySize() {
        for size in 0..<13 {
            let payload = (0..<size).map { UInt8($0 + 1) }
            var w = AttributeWriter()
            w.put(1, payload)
            w.putBE128(3, 0x0102_0304_0506_0708_090a_0b0c_0d0e_0f10)
            w.put(2, payload)
            w.putU32(5, 0xdead_beef)
            let length = 2 * AttributeCursor.size(payload: size) + AttributeCursor.size(payload: 16) + AttributeCursor.size(payload: 4)
            // Dirty memory: the padding must be written as zeros.
            var out = [UInt8](repeating: 0xaa, count: length + 4)
            out.withUnsafeMutableBytes { p in
                payload.withUnsafeBytes { b in
                    var c = AttributeCursor(p.baseAddress!)
                    c.put(1, b)
                    c.putBE128(3, 0x0102_0304_0506_0708_090a_0b0c_0d0e_0f10)
                    c.put(2, b)
                    c.putU32(5, 0xdead_beef)
                }
            }
            #expect(Array(out[..<length]) == w.bytes, "payload of \(size)")
            #expect(out[length...].allSatisfy { $0 == 0xaa }, "nothing written past the attributes, payload of \(size)")
        }
    }
}
