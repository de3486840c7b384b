#if canImport(Glibc)
import Glibc
#endif
import Packet

/// Text built as UTF-8 bytes in memory of its own: a dump writes its lines here, a
/// number or an address digit by digit. A String append costs hundreds of instructions
/// (and interpolation more); an Array's append a uniqueness and a capacity check per
/// byte. Here a piece reserves its room once and stores its bytes.
///
/// Not copyable: it owns its memory, freed when it goes (no object, no reference count).
public struct TextBuffer: ~Copyable {
    @usableFromInline var base: UnsafeMutablePointer<UInt8>
    @usableFromInline var used = 0
    @usableFromInline var capacity: Int

    public var count: Int { used }

    public init(capacity: Int = 256) {
        self.capacity = max(capacity, 16)
        base = .allocate(capacity: self.capacity)
    }

    deinit { base.deallocate() }

    /// Room for `n` more bytes; the write that follows stores them at `end`.
    @inlinable @inline(__always)
    mutating func reserve(_ n: Int) {
        if used + n > capacity { grow(to: used + n) }
    }

    @usableFromInline
    mutating func grow(to needed: Int) {
        var c = capacity * 2
        while c < needed { c *= 2 }
        let new = UnsafeMutablePointer<UInt8>.allocate(capacity: c)
        new.moveInitialize(from: base, count: used)
        base.deallocate()
        base = new
        capacity = c
    }

    @inlinable var end: UnsafeMutablePointer<UInt8> { base + used }

    /// Empties the text, keeping its memory.
    public mutating func removeAll() { used = 0 }

    /// The text's bytes, valid during `body`.
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(start: base, count: count))
    }

    /// Drops a last comma written after `start` (the comma after a struct's last field).
    mutating func chomp(after start: Int) {
        if used > start && base[used - 1] == UInt8(ascii: ",") { used -= 1 }
    }

    /// The bytes from `start` on (what a formatter appended since).
    func bytes(from start: Int) -> [UInt8] { Array(UnsafeBufferPointer(start: base + start, count: count - start)) }

    public var string: String { String(decoding: UnsafeBufferPointer(start: base, count: count), as: UTF8.self) }

    /// The text `write` appends, as a String.
    public static func string(_ write: (inout TextBuffer) -> Void) -> String {
        var t = TextBuffer()
        write(&t)
        return t.string
    }

    // MARK: appending

    @inlinable
    public mutating func append(_ byte: UInt8) {
        reserve(1)
        base[used] = byte
        used += 1
    }

    /// A literal's bytes.
    @inlinable @inline(__always)
    public mutating func append(_ s: StaticString) {
        append(UnsafeRawBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount))
    }

    @inlinable @inline(__always)
    public mutating func append(_ bytes: UnsafeRawBufferPointer) {
        let n = bytes.count
        guard n > 0 else { return }
        reserve(n)
        let to = UnsafeMutableRawPointer(end), from = bytes.baseAddress!
        // Most pieces are a few bytes (a literal, a run of a remembered text): copied
        // as two words that may overlap, not through a call to memcpy. (Inlinable: a
        // literal's length is known where it is appended, and the copy is a few stores.)
        switch n {
        case 1...3:
            for i in 0..<n { to.storeBytes(of: from.load(fromByteOffset: i, as: UInt8.self), toByteOffset: i, as: UInt8.self) }
        case 4...8:
            let head = from.loadUnaligned(as: UInt32.self), tail = from.loadUnaligned(fromByteOffset: n - 4, as: UInt32.self)
            to.storeBytes(of: head, as: UInt32.self)
            to.storeBytes(of: tail, toByteOffset: n - 4, as: UInt32.self)
        case 9...16:
            let head = from.loadUnaligned(as: UInt64.self), tail = from.loadUnaligned(fromByteOffset: n - 8, as: UInt64.self)
            to.storeBytes(of: head, as: UInt64.self)
            to.storeBytes(of: tail, toByteOffset: n - 8, as: UInt64.self)
        default:
            to.copyMemory(from: from, byteCount: n)
        }
        used += n
    }

    public mutating func append(_ bytes: [UInt8]) { bytes.withUnsafeBytes { append($0) } }

    public mutating func append(string s: String) {
        var s = s
        s.withUTF8 { append(UnsafeRawBufferPointer($0)) }
    }

    /// Appends what `write` stores at the pointer it is given (at most `maxLength`
    /// bytes), which returns how many it stored.
    @inlinable
    mutating func append(maxLength: Int, _ write: (UnsafeMutablePointer<UInt8>) -> Int) {
        reserve(maxLength)
        used += write(end)
    }

    // MARK: numbers

    /// `%llu`.
    @inlinable
    public mutating func appendDecimal(_ v: some UnsignedInteger & FixedWidthInteger) { appendDigits(v, radix: 10) }

    /// `%x`.
    @inlinable
    public mutating func appendHex(_ v: some UnsignedInteger & FixedWidthInteger) { appendDigits(v, radix: 16) }

    /// `v`'s digits in `radix` (10 or 16: a constant where inlined, so the division is a
    /// multiplication or a shift).
    @inlinable @inline(__always)
    mutating func appendDigits(_ v: some UnsignedInteger & FixedWidthInteger, radix: UInt8) {
        // Written backwards into the room of the longest, then moved to the front.
        append(maxLength: 39) { p in
            var n = 0
            var rest = v
            repeat {
                p[n] = AddressText.hexDigit(UInt8(truncatingIfNeeded: rest % numericCast(radix)))
                rest /= numericCast(radix)
                n += 1
            } while rest != 0
            reverse(p, n)
            return n
        }
    }

    /// `%#x`: `0` for zero, `0x…` otherwise.
    @inlinable
    public mutating func appendHexAlt(_ v: some UnsignedInteger & FixedWidthInteger) {
        if v == 0 {
            append(UInt8(ascii: "0"))
        } else {
            append("0x")
            appendHex(v)
        }
    }

    /// `0x%x`.
    @inlinable
    public mutating func appendHex0x(_ v: some UnsignedInteger & FixedWidthInteger) {
        append("0x")
        appendHex(v)
    }

    /// `0x%04x`.
    @inlinable
    public mutating func appendHex0x4(_ v: UInt16) {
        append(maxLength: 6) { p in
            p[0] = UInt8(ascii: "0")
            p[1] = UInt8(ascii: "x")
            for i in 0..<4 { p[2 + i] = AddressText.hexDigit(UInt8(truncatingIfNeeded: v >> UInt16(12 - 4 * i)) & 0xf) }
            return 6
        }
    }

    /// `%02x`.
    @inlinable
    public mutating func appendHexByte(_ b: UInt8) {
        append(maxLength: 2) { p in
            p[0] = AddressText.hexDigit(b >> 4)
            p[1] = AddressText.hexDigit(b & 0xf)
            return 2
        }
    }

    /// Every byte as `%02x`, with `separator` between them if given.
    public mutating func appendHexBytes(_ bytes: UnsafeRawBufferPointer, separator: UInt8? = nil) {
        for (i, b) in bytes.enumerated() {
            if i > 0, let separator { append(separator) }
            appendHexByte(b)
        }
    }

    // MARK: addresses

    public mutating func appendIPv4(_ v: UInt32) {
        append(maxLength: AddressText.ipv4Length) { AddressText.write(ipv4: v, to: $0) }
    }

    public mutating func appendIPv6(_ v: UInt128) {
        append(maxLength: AddressText.ipv6Length) { AddressText.write(ipv6: v, to: $0) }
    }

    public mutating func appendMAC(_ v: UInt64) {
        append(maxLength: AddressText.macLength) { AddressText.write(mac: v, to: $0) }
    }

    /// The UUID text form of a 128-bit ufid.
    public mutating func appendUFID(_ u: UInt128) {
        append(maxLength: 36) { p in
            // 8-4-4-4-12 digits, eight at a time (a digit at a time, a verbose line's
            // ufid cost more than the rest of its prefix).
            let raw = UnsafeMutableRawPointer(p)
            raw.storeBytes(of: hexDigits(UInt32(truncatingIfNeeded: u >> 96)), as: UInt64.self)
            let second = hexDigits(UInt32(truncatingIfNeeded: u >> 64))
            raw.storeBytes(of: UInt8(ascii: "-"), toByteOffset: 8, as: UInt8.self)
            raw.storeBytes(of: UInt32(truncatingIfNeeded: second), toByteOffset: 9, as: UInt32.self)
            raw.storeBytes(of: UInt8(ascii: "-"), toByteOffset: 13, as: UInt8.self)
            raw.storeBytes(of: UInt32(truncatingIfNeeded: second >> 32), toByteOffset: 14, as: UInt32.self)
            let third = hexDigits(UInt32(truncatingIfNeeded: u >> 32))
            raw.storeBytes(of: UInt8(ascii: "-"), toByteOffset: 18, as: UInt8.self)
            raw.storeBytes(of: UInt32(truncatingIfNeeded: third), toByteOffset: 19, as: UInt32.self)
            raw.storeBytes(of: UInt8(ascii: "-"), toByteOffset: 23, as: UInt8.self)
            raw.storeBytes(of: UInt32(truncatingIfNeeded: third >> 32), toByteOffset: 24, as: UInt32.self)
            raw.storeBytes(of: hexDigits(UInt32(truncatingIfNeeded: u)), toByteOffset: 28, as: UInt64.self)
            return 36
        }
    }
}

/// `%08x` of `v` as eight ASCII bytes in a word, the first digit in its lowest byte:
/// stored as is on a little-endian machine (x86-64, AArch64), the digits in order, the
/// first four in its low half. Each nibble spread into a byte, then '0' added, and
/// 'a' - '0' - 10 more to those of 10 and up.
func hexDigits(_ v: UInt32) -> UInt64 {
    var x = UInt64(v)
    x = (x | x << 16) & 0x0000_ffff_0000_ffff
    x = (x | x << 8) & 0x00ff_00ff_00ff_00ff
    x = (x | x << 4) & 0x0f0f_0f0f_0f0f_0f0f
    let letters = ((x &+ 0x0606_0606_0606_0606) >> 4) & 0x0101_0101_0101_0101
    x = x &+ 0x3030_3030_3030_3030 &+ letters &* 0x27
    return x.byteSwapped
}

/// Reverses the `n` bytes at `p` (digits written from the least significant).
@usableFromInline
func reverse(_ p: UnsafeMutablePointer<UInt8>, _ n: Int) {
    var i = 0, j = n - 1
    while i < j {
        let t = p[i]
        p[i] = p[j]
        p[j] = t
        i += 1
        j -= 1
    }
}
