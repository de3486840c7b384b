/// Internet checksum arithmetic (RFC 1071) and incremental update (RFC 1624).
public enum Checksum {
    /// One's-complement sum of `count` bytes at `p`, added to `initial`, not folded.
    @inlinable
    public static func partialSum(_ p: UnsafeRawPointer, count: Int, initial: UInt64 = 0) -> UInt64 {
        var sum = initial
        var i = 0
        // 4 bytes at a time into a 64-bit accumulator: no carry handling needed until folding.
        while i + 4 <= count {
            sum &+= UInt64(p.be32(i))
            i += 4
        }
        if i + 2 <= count {
            sum &+= UInt64(p.be16(i))
            i += 2
        }
        if i < count {
            sum &+= UInt64(p.u8(i)) << 8
        }
        return sum
    }

    /// Folds a wide sum into 16 bits (not complemented).
    @inlinable
    public static func fold(_ s: UInt64) -> UInt16 {
        var sum = s
        while sum >> 16 != 0 { sum = (sum & 0xffff) &+ (sum >> 16) }
        return UInt16(truncatingIfNeeded: sum)
    }

    /// The checksum field value for `count` bytes (complemented fold).
    @inlinable
    public static func compute(_ p: UnsafeRawPointer, count: Int, initial: UInt64 = 0) -> UInt16 {
        ~fold(partialSum(p, count: count, initial: initial))
    }

    /// Pseudo-header sum for IPv4 TCP/UDP.
    @inlinable
    public static func pseudoHeaderIPv4(src: UInt32, dst: UInt32, proto: UInt8, length: Int) -> UInt64 {
        UInt64(src >> 16) &+ UInt64(src & 0xffff) &+ UInt64(dst >> 16) &+ UInt64(dst & 0xffff)
            &+ UInt64(proto) &+ UInt64(length)
    }

    /// Pseudo-header sum for IPv6 upper layers.
    @inlinable
    public static func pseudoHeaderIPv6(src: UInt128, dst: UInt128, proto: UInt8, length: Int) -> UInt64 {
        var s: UInt64 = UInt64(proto) &+ UInt64(length)
        for shift in stride(from: 0, to: 128, by: 16) {
            s &+= UInt64(UInt16(truncatingIfNeeded: src >> UInt128(shift)))
            s &+= UInt64(UInt16(truncatingIfNeeded: dst >> UInt128(shift)))
        }
        return s
    }

    /// Updates a checksum field for a 16-bit word that changes from `old` to `new`.
    /// `partial` is the CHECKSUM_PARTIAL convention: the field holds the uncomplemented
    /// pseudo-header sum and only pseudo-header words may be folded into it.
    @inlinable
    public static func replace16(_ field: UInt16, old: UInt16, new: UInt16, partial: Bool = false) -> UInt16 {
        if partial {
            // field = fold(field + ~old + new)
            return fold(UInt64(field) &+ UInt64(~old) &+ UInt64(new))
        }
        // RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m')
        return ~fold(UInt64(~field) &+ UInt64(~old) &+ UInt64(new))
    }

    @inlinable
    public static func replace32(_ field: UInt16, old: UInt32, new: UInt32, partial: Bool = false) -> UInt16 {
        let oldSum = UInt64(~(old >> 16) & 0xffff) &+ UInt64(~old & 0xffff)
        let newSum = UInt64(new >> 16) &+ UInt64(new & 0xffff)
        if partial { return fold(UInt64(field) &+ oldSum &+ newSum) }
        return ~fold(UInt64(~field) &+ oldSum &+ newSum)
    }

    @inlinable
    public static func replace128(_ field: UInt16, old: UInt128, new: UInt128, partial: Bool = false) -> UInt16 {
        var acc: UInt64 = 0
        for shift in stride(from: 0, to: 128, by: 16) {
            acc &+= UInt64(~UInt16(truncatingIfNeeded: old >> UInt128(shift)))
            acc &+= UInt64(UInt16(truncatingIfNeeded: new >> UInt128(shift)))
        }
        if partial { return fold(UInt64(field) &+ acc) }
        return ~fold(UInt64(~field) &+ acc)
    }
}

/// CRC-32C (Castagnoli), as SCTP uses for its checksum.
public enum CRC32C {
    @usableFromInline
    static let table: [UInt32] = (0..<256).map { i -> UInt32 in
        var c = UInt32(i)
        for _ in 0..<8 { c = (c & 1) != 0 ? (c >> 1) ^ 0x82F6_3B78 : c >> 1 }
        return c
    }

    @inlinable
    public static func checksum(_ p: UnsafeRawPointer, count: Int) -> UInt32 {
        var crc: UInt32 = 0xffff_ffff
        table.withUnsafeBufferPointer { t in
            for i in 0..<count {
                crc = t[Int((crc ^ UInt32(p.u8(i))) & 0xff)] ^ (crc >> 8)
            }
        }
        return ~crc
    }
}
