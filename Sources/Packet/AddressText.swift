#if canImport(Glibc)
import Glibc
#endif

/// Address text as the kernel and OVS tools print it.
public enum AddressText {
    /// Dotted quad.
    public static func ipv4(_ v: UInt32) -> String {
        // Digits written into 15 bytes: a dump prints one or two of these per flow, and
        // string interpolation of four numbers costs several times as much.
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: ipv4Length) { buf in
            String(decoding: UnsafeBufferPointer(rebasing: buf[..<write(ipv4: v, to: buf.baseAddress!)]), as: UTF8.self)
        }
    }

    /// The longest dotted quad, and the longest MAC and IPv6 texts (without a NUL).
    public static let ipv4Length = 15, macLength = 17, ipv6Length = 45

    /// Writes the dotted quad at `p` (at most `ipv4Length` bytes) and returns its length:
    /// the one implementation, for a String and for a text built as bytes (a dump's line).
    public static func write(ipv4 v: UInt32, to p: UnsafeMutablePointer<UInt8>) -> Int {
        var n = 0
        for i in 0..<4 {
            let b = UInt8(truncatingIfNeeded: v >> UInt32(24 - 8 * i))
            if i > 0 { p[n] = UInt8(ascii: "."); n += 1 }
            if b >= 100 { p[n] = 48 + b / 100; n += 1 }
            if b >= 10 { p[n] = 48 + b / 10 % 10; n += 1 }
            p[n] = 48 + b % 10
            n += 1
        }
        return n
    }

    /// inet_ntop(AF_INET6, …): glibc's compressed form (what OVS prints).
    public static func ipv6(_ v: UInt128) -> String {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: ipv6Length) { buf in
            String(decoding: UnsafeBufferPointer(rebasing: buf[..<write(ipv6: v, to: buf.baseAddress!)]), as: UTF8.self)
        }
    }

    /// Writes the IPv6 text at `p` (at most `ipv6Length` bytes) and returns its length.
    public static func write(ipv6 v: UInt128, to p: UnsafeMutablePointer<UInt8>) -> Int {
        var addr = in6_addr()
        withUnsafeMutableBytes(of: &addr) { raw in
            for i in 0..<16 { raw[i] = UInt8(truncatingIfNeeded: v >> UInt128(120 - 8 * i)) }
        }
        // inet_ntop writes a NUL after the text: a buffer of its own, one byte longer.
        return withUnsafeTemporaryAllocation(of: CChar.self, capacity: ipv6Length + 1) { buf in
            guard inet_ntop(AF_INET6, &addr, buf.baseAddress!, socklen_t(ipv6Length + 1)) != nil else {
                p[0] = UInt8(ascii: ":")
                p[1] = UInt8(ascii: ":")
                return 2
            }
            let n = strlen(buf.baseAddress!)
            UnsafeMutableRawPointer(p).copyMemory(from: buf.baseAddress!, byteCount: n)
            return n
        }
    }

    /// aa:bb:cc:dd:ee:ff
    public static func mac(_ v: UInt64) -> String {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: macLength) { buf in
            String(decoding: UnsafeBufferPointer(rebasing: buf[..<write(mac: v, to: buf.baseAddress!)]), as: UTF8.self)
        }
    }

    /// Writes the MAC text at `p` (`macLength` bytes) and returns its length.
    public static func write(mac v: UInt64, to p: UnsafeMutablePointer<UInt8>) -> Int {
        for i in 0..<6 {
            let b = UInt8(truncatingIfNeeded: v >> UInt64(40 - 8 * i))
            if i > 0 { p[3 * i - 1] = UInt8(ascii: ":") }
            p[3 * i] = hexDigit(b >> 4)
            p[3 * i + 1] = hexDigit(b & 0xf)
        }
        return macLength
    }

    /// The lowercase hex digit of `d` (0...15).
    @inlinable
    public static func hexDigit(_ d: UInt8) -> UInt8 { d < 10 ? 48 + d : 87 + d }
}
