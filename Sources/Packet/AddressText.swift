#if canImport(Glibc)
import Glibc
#endif

/// Address text as the kernel and OVS tools print it.
public enum AddressText {
    /// Dotted quad.
    public static func ipv4(_ v: UInt32) -> String {
        // Digits written into 15 bytes: a dump prints one or two of these per flow, and
        // string interpolation of four numbers costs several times as much.
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 15) { buf in
            var n = 0
            for shift in stride(from: UInt32(24), through: 0, by: -8) {
                let b = UInt8(truncatingIfNeeded: v >> shift)
                if shift != 24 { buf[n] = UInt8(ascii: "."); n += 1 }
                if b >= 100 { buf[n] = 48 + b / 100; n += 1 }
                if b >= 10 { buf[n] = 48 + b / 10 % 10; n += 1 }
                buf[n] = 48 + b % 10
                n += 1
            }
            return String(decoding: UnsafeBufferPointer(rebasing: buf[..<n]), as: UTF8.self)
        }
    }

    /// inet_ntop(AF_INET6, …): glibc's compressed form (what OVS prints).
    public static func ipv6(_ v: UInt128) -> String {
        var addr = in6_addr()
        withUnsafeMutableBytes(of: &addr) { raw in
            for i in 0..<16 { raw[i] = UInt8(truncatingIfNeeded: v >> UInt128(120 - 8 * i)) }
        }
        var buf = [CChar](repeating: 0, count: 64)
        guard inet_ntop(AF_INET6, &addr, &buf, 64) != nil else { return "::" }
        return String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// aa:bb:cc:dd:ee:ff
    public static func mac(_ v: UInt64) -> String {
        (0..<6).map { i -> String in
            let b = UInt8(truncatingIfNeeded: v >> UInt64(40 - 8 * i))
            return b < 16 ? "0" + String(b, radix: 16) : String(b, radix: 16)
        }.joined(separator: ":")
    }
}
