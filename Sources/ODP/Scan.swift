import Packet
#if canImport(Glibc)
import Glibc
#endif

/// Lexical scanning with the exact semantics of OVS's ovs_scan() (lib/util.c), which
/// the ODP text grammar is defined by: whitespace skipped before numeric conversions
/// only, `%i` with 0x/0 base prefixes, out-of-range values truncated to the field
/// width rather than rejected.
struct Scan {
    /// The text: the first `count` bytes of `bytes` (a flow file's lines are scanned in
    /// one array kept from line to line, as long as the longest line so far: never
    /// emptied nor cut, which cost more than a line's copy).
    private(set) var bytes: [UInt8]
    private(set) var count: Int

    init(_ text: String) { self.init(utf8: Array(text.utf8)) }
    init(utf8: [UInt8]) {
        bytes = utf8
        count = utf8.count
    }

    /// Makes `line` the text, its first `kept` bytes being there already (KeyLines: the
    /// part a flow file's line shares with the line before). The array only grows.
    mutating func replaceText(with line: UnsafeBufferPointer<UInt8>, keeping kept: Int) {
        let n = line.count
        if bytes.count < n { bytes.append(contentsOf: repeatElement(0, count: n - bytes.count)) }
        if n > kept {
            bytes.withUnsafeMutableBufferPointer { t in (t.baseAddress! + kept).update(from: line.baseAddress! + kept, count: n - kept) }
        }
        count = n
    }

    /// The text as a slice (error messages and the rarer forms).
    var s: ArraySlice<UInt8> { bytes[..<count] }

    /// The byte at `i`, 0 past the end (or before the start). Read without the array's
    /// bounds check: `count` is within it.
    @inline(__always) subscript(i: Int) -> UInt8 {
        UInt(bitPattern: i) < UInt(bitPattern: count) ? bytes.withUnsafeBufferPointer { $0[i] } : 0
    }

    /// Whether the text at `i` starts with the literal `p`. A literal's bytes are read
    /// where the binary holds them: no String storage retained and released per try
    /// (the parser tries a few prefixes per attribute of every line of a flow file).
    @inline(__always)
    func hasPrefix(_ p: StaticString, at i: Int) -> Bool {
        hasPrefix(UnsafeBufferPointer(start: p.utf8Start, count: p.utf8CodeUnitCount), at: i)
    }

    /// The same for a name that is not a literal (a table's field names: `FieldSpec`).
    func hasPrefix(name p: [UInt8], at i: Int) -> Bool {
        p.withUnsafeBufferPointer { hasPrefix($0, at: i) }
    }

    /// The same for a String (names built at run time; rare).
    func hasPrefix(string p: String, at i: Int) -> Bool {
        hasPrefix(name: Array(p.utf8), at: i)
    }

    @inline(__always)
    private func hasPrefix(_ pb: UnsafeBufferPointer<UInt8>, at i: Int) -> Bool {
        guard pb.count > 0 else { return true }
        // The first byte decides most tries; then one memcmp.
        guard i >= 0, i + pb.count <= count, self[i] == pb[0] else { return false }
        return bytes.withUnsafeBufferPointer { memcmp($0.baseAddress! + i, pb.baseAddress!, pb.count) == 0 }
    }

    static func isSpace(_ c: UInt8) -> Bool { c == 32 || (c >= 9 && c <= 13) }
    static func isDelimiter(_ c: UInt8) -> Bool { c == 32 || c == 44 || c == 9 || c == 13 || c == 10 }

    func skipSpaces(_ i: Int) -> Int {
        var j = i
        while j < count && Scan.isSpace(self[j]) { j += 1 }
        return j
    }

    func skipDelimiters(_ i: Int) -> Int {
        var j = i
        while j < count && Scan.isDelimiter(self[j]) { j += 1 }
        return j
    }

    static func hexit(_ c: UInt8) -> Int {
        switch c {
        case 48...57: Int(c - 48)
        case 97...102: Int(c - 87)
        case 65...70: Int(c - 55)
        default: -1
        }
    }

    /// scan_int(): optional sign, base detection when `base` is 0 (or 16 with 0x),
    /// digits; value wraps modulo 2^64 (callers truncate). No leading space skip.
    func integerRaw(_ i: Int, base: Int) -> (UInt64, Int)? {
        var j = i
        let negative = self[j] == 45
        if self[j] == 45 || self[j] == 43 { j += 1 }
        var b = base
        if (b == 0 || b == 16) && self[j] == 48 && (self[j + 1] == 120 || self[j + 1] == 88) {
            b = 16
            j += 2
        } else if b == 0 {
            b = self[j] == 48 ? 8 : 10
        }
        var v: UInt64 = 0
        var digits = 0
        while true {
            let d = Scan.hexit(self[j])
            if d < 0 || d >= b { break }
            v = v &* UInt64(b) &+ UInt64(d)
            digits += 1
            j += 1
        }
        if digits == 0 { return nil }
        return (negative ? 0 &- v : v, j)
    }

    /// `%i`/`%u`/`%x` with the usual leading whitespace skip.
    func integer(_ i: Int, base: Int = 0) -> (UInt64, Int)? {
        integerRaw(skipSpaces(i), base: base)
    }

    /// "%hhu.%hhu.%hhu.%hhu" (each component decimal, truncated to 8 bits).
    func ipv4(_ i: Int) -> (UInt32, Int)? {
        var j = i
        var v: UInt32 = 0
        for k in 0..<4 {
            if k > 0 {
                guard self[j] == 46 else { return nil }
                j += 1
            }
            // One to three digits, as an address mostly has, read here; anything else
            // (blanks, a sign, more digits) as sscanf's %hhu reads it.
            var n = 0, d = 0
            while d < 3, case let c = self[j + d], c >= 48, c <= 57 {
                n = n * 10 + Int(c - 48)
                d += 1
            }
            if d > 0, !(self[j + d] >= 48 && self[j + d] <= 57) {
                v = v << 8 | UInt32(UInt8(truncatingIfNeeded: n))
                j += d
                continue
            }
            guard let (c, e) = integer(j, base: 10) else { return nil }
            v = v << 8 | UInt32(UInt8(truncatingIfNeeded: c))
            j = e
        }
        return (v, j)
    }

    /// "%hhx:%hhx:..." six hex components, truncated to 8 bits each.
    func mac(_ i: Int) -> (UInt64, Int)? {
        var j = i
        var v: UInt64 = 0
        for k in 0..<6 {
            if k > 0 {
                guard self[j] == 58 else { return nil }
                j += 1
            }
            guard let (c, e) = integer(j, base: 16) else { return nil }
            v = v << 8 | UInt64(UInt8(truncatingIfNeeded: c))
            j = e
        }
        return (v, j)
    }

    /// "%46[0123456789abcdefABCDEF:.]" then inet_pton().
    func ipv6(_ i: Int) -> (UInt128, Int)? {
        var j = i
        while j - i < 46 {
            let c = self[j]
            if Scan.hexit(c) >= 0 || c == 58 || c == 46 { j += 1 } else { break }
        }
        guard j > i else { return nil }
        guard let v = parseIPv6(String(decoding: bytes[i..<j], as: UTF8.self)) else { return nil }
        return (v, j)
    }

    /// OVS parse_int_string() into a 16-byte field. After `0x`/`0X`: hex digits with
    /// any blanks (" \t\r\n") before, among and after them (the tail is past the
    /// trailing blanks), leading zeros dropped, at most 32 significant digits, none at
    /// all reading as 0. Anything else goes to strtoull(…, 0).
    func u128(_ i: Int) -> (UInt128, Int)? {
        if self[i] == 48 && (self[i + 1] == 120 || self[i + 1] == 88) {
            var j = i + 2
            var v: UInt128 = 0
            var len = 0
            while true {
                while self[j] == 32 || self[j] == 9 || self[j] == 13 || self[j] == 10 { j += 1 }
                let d = Scan.hexit(self[j])
                if d < 0 { break }
                if d != 0 || len > 0 {
                    if (len + 2) / 2 > 16 { return nil }  // DIV_ROUND_UP(len + 1, 2) > field_width: ERANGE
                    v = v << 4 | UInt128(d)
                    len += 1
                }
                j += 1
            }
            return (v, j)
        }
        guard let (v, e) = strtoull(i) else { return nil }
        return (UInt128(v), e)
    }

    /// scan_u128(): `VALUE[/MASK]`, each as parse_int_string() reads it; the `/` must
    /// follow the value directly. No mask means all ones.
    func u128Masked(_ i: Int) -> (UInt128, UInt128, Int)? {
        guard let (v, e) = u128(i) else { return nil }
        guard self[e] == 47 else { return (v, UInt128.max, e) }
        guard let (m, me) = u128(e + 1) else { return nil }
        return (v, m, me)
    }

    /// glibc strtoull(s, &tail, 0): leading isspace() skipped, one sign (a minus
    /// negates modulo 2^64), `0x` (hex) or `0` (octal) prefix. nil where
    /// parse_int_string() fails: no conversion (tail == s) or ERANGE. A `0x` without
    /// hex digits after it converts the `0` alone (the tail is at the `x`).
    func strtoull(_ i: Int) -> (UInt64, Int)? {
        var j = skipSpaces(i)
        let negative = self[j] == 45
        if self[j] == 45 || self[j] == 43 { j += 1 }
        var base: UInt64 = 10
        var hexPrefix = false
        if self[j] == 48 {
            if self[j + 1] == 120 || self[j + 1] == 88 {
                base = 16
                j += 2
                hexPrefix = true
            } else {
                base = 8
            }
        }
        var v: UInt64 = 0
        var digits = 0
        var overflow = false
        while true {
            let d = Scan.hexit(self[j])
            if d < 0 || UInt64(d) >= base { break }
            let (m, o1) = v.multipliedReportingOverflow(by: base)
            let (a, o2) = m.addingReportingOverflow(UInt64(d))
            overflow = overflow || o1 || o2
            v = a
            digits += 1
            j += 1
        }
        if digits == 0 {
            guard hexPrefix else { return nil }
            return (0, j - 1)
        }
        guard !overflow else { return nil }
        return (negative ? 0 &- v : v, j)
    }

    /// strtod on the longest numeric prefix (OVS scan_float).
    func double(_ i: Int) -> (Double, Int)? {
        let j0 = skipSpaces(i)
        var j = j0
        while j < count {
            let c = self[j]
            if (c >= 48 && c <= 57) || c == 46 || c == 101 || c == 69 || c == 43 || c == 45 { j += 1 } else { break }
        }
        guard j > j0 else { return nil }
        let text = String(decoding: bytes[j0..<j], as: UTF8.self)
        var end: UnsafeMutablePointer<CChar>?
        let v = text.withCString { p -> (Double, Int) in
            let d = strtod(p, &end)
            return (d, end.map { $0 - UnsafeMutablePointer(mutating: p) } ?? 0)
        }
        guard v.1 > 0 else { return nil }
        return (v.0, j0 + v.1)
    }
}

/// inet_pton(AF_INET6, …) as a UInt128 (network order: first group in the top bits).
func parseIPv6(_ text: String) -> UInt128? {
    var addr = in6_addr()
    guard inet_pton(AF_INET6, text, &addr) == 1 else { return nil }
    return withUnsafeBytes(of: &addr) { raw -> UInt128 in
        var v: UInt128 = 0
        for b in raw { v = v << 8 | UInt128(b) }
        return v
    }
}

/// C's `%#x`: `0` for zero, `0x…` otherwise.
func hexAlt<T: BinaryInteger>(_ v: T) -> String { v == 0 ? "0" : "0x" + String(v, radix: 16) }
/// C's `0x%04x`.
func hex0x4<T: BinaryInteger>(_ v: T) -> String {
    let h = String(v, radix: 16)
    return "0x" + String(repeating: "0", count: max(0, 4 - h.count)) + h
}
