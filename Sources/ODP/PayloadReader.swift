/// Big- and little-endian readers over bytes indexed from 0 (an attribute's payload).
protocol PayloadReader {
    var count: Int { get }
    subscript(_ o: Int) -> UInt8 { get }
}

extension PayloadReader {
    var isEmpty: Bool { count == 0 }
    func contains(where p: (UInt8) -> Bool) -> Bool {
        for i in 0..<count where p(self[i]) { return true }
        return false
    }

    func be16(_ o: Int) -> UInt16 { UInt16(self[o]) << 8 | UInt16(self[o + 1]) }
    func be32(_ o: Int) -> UInt32 { UInt32(be16(o)) << 16 | UInt32(be16(o + 2)) }
    func be64(_ o: Int) -> UInt64 { UInt64(be32(o)) << 32 | UInt64(be32(o + 4)) }
    func be48(_ o: Int) -> UInt64 { UInt64(be16(o)) << 32 | UInt64(be32(o + 2)) }
    func be128(_ o: Int) -> UInt128 { UInt128(be64(o)) << 64 | UInt128(be64(o + 8)) }
    func le16(_ o: Int) -> UInt16 { UInt16(self[o]) | UInt16(self[o + 1]) << 8 }
    func le32(_ o: Int) -> UInt32 { UInt32(le16(o)) | UInt32(le16(o + 2)) << 16 }
    func le128(_ o: Int) -> UInt128 {
        var v: UInt128 = 0
        for i in (0..<16).reversed() { v = v << 8 | UInt128(self[o + i]) }
        return v
    }
}

/// An attribute payload read in place (decoding a key copies nothing).
struct PayloadBytes: PayloadReader {
    let s: ArraySlice<UInt8>
    init(_ s: ArraySlice<UInt8>) { self.s = s }

    var count: Int { s.count }
    subscript(_ o: Int) -> UInt8 { s[s.startIndex + o] }
}

/// A payload inside bytes the decoder holds (KeyDecoder.Present): no reference to
/// count. Reads are bounds-checked as an array's are.
struct RawPayload: PayloadReader {
    let bytes: UnsafeRawBufferPointer
    init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    var count: Int { bytes.count }
    subscript(_ o: Int) -> UInt8 {
        precondition(o >= 0 && o < bytes.count, "payload read out of bounds")
        return bytes[o]
    }
}
