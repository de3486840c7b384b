import Packet

/// dump-flows `filter=`, as OVS 3.1's dpctl_dump_flows() reads and applies it.
///
/// The text is an OpenFlow-style exact flow (lib/ofp-flow.c parse_ofp_exact_flow()):
/// `key=value` pairs and protocol shorthands, every value exact, prerequisites checked
/// against what precedes. A dumped flow passes when, wherever both the filter and the
/// flow's own mask cover a bit, the flow's key has the filter's value there (dpctl's
/// match_init() of the filter under the flow's wildcards, then minimatch_matches_flow()):
/// a field the flow wildcards never excludes it.
public struct DumpFilter: Sendable {
    /// The filter's flow (OVS's flow_filter) in esw's key layout.
    public private(set) var value = FlowKey()
    /// Its wildcards (wc_filter): the bits it sets.
    public private(set) var mask = FlowKey()

    /// OVS's reason, which dpctl prints as "Failed to parse filter (<reason>)".
    public struct ParseError: Error, Sendable, Equatable, CustomStringConvertible {
        public let reason: String
        public var description: String { "Failed to parse filter (\(reason))" }
    }

    /// Parses `text`; `portNames` maps the datapath's port names to their numbers (for
    /// `in_port=NAME`, as dpctl fills its port map from the datapath).
    public init(parsing text: String, portNames: [String: UInt32] = [:]) throws(ParseError) {
        let s = Array(text.utf8)
        var i = 0
        func fail(_ why: String) -> ParseError { ParseError(reason: "\(text): \(why)") }
        while let (key, valueText, next) = Self.nextKeyValue(s, from: i) {
            i = next
            if let (type, proto) = FilterField.protocols[key] {
                guard value[.ethType] == 0 else { throw fail("Ethernet type set multiple times") }
                value[.ethType] = UInt64(type)
                mask[.ethType] = 0xffff
                if proto != 0 {
                    guard value[.ipProto] == 0 else { throw fail("network protocol set multiple times") }
                    value[.ipProto] = UInt64(proto)
                    mask[.ipProto] = 0xff
                }
                continue
            }
            guard let field = FilterField.byName[key] else {
                throw fail(FilterField.unsupported(key) ?? "unknown field \(key)")
            }
            guard field.prereqsMet(value) else { throw fail("prerequisites not met for setting \(key)") }
            // As OVS's mf_is_set(): a field already set to zero may be set again.
            guard !field.isSet(value) else { throw fail("field \(key) set multiple times") }
            let v: UInt128
            do { v = try Self.parseValue(valueText, field: field, portNames: portNames) } catch {
                throw fail("bad value for \(key) (\(error.reason))")
            }
            field.set(v, value: &value, mask: &mask)
        }
        // parse_ofp_exact_flow(): an in_port of 0 (none given, or 0 given) becomes
        // OFPP_NONE; with in_port=0 written, it is compared as 0xffff.
        if value[.inPort] & 0xffff == 0 { value[.inPort] |= 0xffff }
    }

    /// Whether a dumped flow passes: ((key ^ filter) & flow mask & filter mask) == 0.
    public func passes(_ m: FlowMatch) -> Bool {
        var diff: UInt64 = 0
        let k = m.key.words.span, fm = m.mask.words.span, v = value.words.span, f = mask.words.span
        for w in 0..<FlowKey.wordCount {
            diff |= (k[w] ^ v[w]) & fm[w] & f[w]
        }
        return diff == 0
    }

    /// The same for a dump reply's key and mask attributes. A flow whose attributes do
    /// not decode is not shown (nothing of it can be said to match).
    public func passes(key: ArraySlice<UInt8>, mask: ArraySlice<UInt8>) -> Bool {
        switch FlowMatch.fromAttributes(key: key, mask: mask, vlanLimit: ODPConstants.datapathVLANLimit) {
        case .success(let m): return passes(m)
        case .failure: return false
        }
    }

    // MARK: - Text

    /// ofputil_parse_key_value(): delimiters ", \t\r\n"; the key ends at one of
    /// ":=(" or a delimiter; after ':' or '=' the value runs to a delimiter, after '('
    /// to the matching ')' (parentheses nest in both).
    static func nextKeyValue(_ s: [UInt8], from start: Int) -> (String, [UInt8], Int)? {
        func isDelim(_ c: UInt8) -> Bool { c == 44 || c == 32 || c == 9 || c == 13 || c == 10 }
        var i = start
        while i < s.count && isDelim(s[i]) { i += 1 }
        guard i < s.count else { return nil }
        let keyStart = i
        while i < s.count && !isDelim(s[i]) && s[i] != 58 && s[i] != 61 && s[i] != 40 { i += 1 }
        let key = String(decoding: s[keyStart..<i], as: UTF8.self)
        guard i < s.count, !isDelim(s[i]) else { return (key, [], i) }
        let opener = s[i]
        i += 1
        let valueStart = i
        var depth = 0
        while i < s.count {
            let c = s[i]
            if depth == 0 && (opener == 40 ? c == 41 : isDelim(c)) { break }
            if c == 40 { depth += 1 } else if c == 41 && depth > 0 { depth -= 1 }
            i += 1
        }
        return (key, Array(s[valueStart..<i]), min(i + 1, s.count))
    }

    struct ValueError: Error {
        let reason: String
        init(_ r: String) { reason = r }
    }

    /// mf_parse_value(): mf_parse() by the field's syntax, then the mask must be exact.
    static func parseValue(_ bytes: [UInt8], field: FilterField, portNames: [String: UInt32]) throws(ValueError) -> UInt128 {
        let text = String(decoding: bytes, as: UTF8.self)
        let ones: UInt128 = field.bytes == 16 ? .max : (1 << UInt128(8 * field.bytes)) - 1
        var v: UInt128 = 0, m: UInt128 = ones
        if text == "*" {
            m = 0
        } else {
            switch field.syntax {
            case .integer: (v, m) = try integer(bytes, field: field)
            case .mac: (v, m) = try address(bytes, text, field: field)
            case .ipv4: (v, m) = try address(bytes, text, field: field)
            case .ipv6: (v, m) = try address(bytes, text, field: field)
            case .port: v = UInt128(try port(text, portNames: portNames))
            case .frag: (v, m) = try frag(text)
            case .ctState: (v, m) = try flags(bytes, text, names: FlagNames.ctState, allowed: 0xff, fieldName: "ct_state", bytes: 4)
            case .tcpFlags: (v, m) = try flags(bytes, text, names: FlagNames.tcp, allowed: 0x0fff, fieldName: "TCP", bytes: 2)
            }
        }
        m &= ones
        if !field.maskable && m != 0 && m != ones { throw ValueError("\(text): invalid mask for field \(field.name)") }
        guard m == ones else { throw ValueError("\(text): wildcards not allowed here") }
        return v
    }

    /// parse_int_string() into a field of `width` bytes: `0x` hex (blanks allowed
    /// among the digits, at most the field's digits), else strtoull(…, 0).
    static func intString(_ s: [UInt8], at i: Int, width: Int) -> (UInt128, Int, tooLarge: Bool)? {
        let sc = Scan(utf8: s)
        if sc[i] == 48 && (sc[i + 1] == 120 || sc[i + 1] == 88) {
            var j = i + 2, v: UInt128 = 0, len = 0
            while true {
                while sc[j] == 32 || sc[j] == 9 || sc[j] == 13 || sc[j] == 10 { j += 1 }
                let d = Scan.hexit(sc[j])
                if d < 0 { break }
                if d != 0 || len > 0 {
                    if (len + 2) / 2 > width { return (0, j, true) }
                    v = v << 4 | UInt128(d)
                    len += 1
                }
                j += 1
            }
            return (v, j, false)
        }
        guard let (n, e) = sc.strtoull(i) else { return nil }
        let v = UInt128(n)
        return (v, e, width < 16 && v >> UInt128(8 * width) != 0)
    }

    /// mf_from_integer_string(): VALUE[/MASK].
    static func integer(_ s: [UInt8], field: FilterField) throws(ValueError) -> (UInt128, UInt128) {
        let text = String(decoding: s, as: UTF8.self)
        func syntax(_ what: String, tooLarge: Bool) -> ValueError {
            tooLarge ? ValueError("\(text): \(what) too large for \(field.bytes)-byte field \(field.name)")
                : ValueError("\(text): bad syntax for \(field.name) \(what)")
        }
        guard let (v, e, big) = intString(s, at: 0, width: field.bytes), !big, e == s.count || s[e] == 47 else {
            throw syntax("value", tooLarge: intString(s, at: 0, width: field.bytes)?.tooLarge ?? false)
        }
        guard e < s.count else { return (v, .max) }
        guard let (m, me, mbig) = intString(s, at: e + 1, width: field.bytes), !mbig, me == s.count else {
            throw syntax("mask", tooLarge: intString(s, at: e + 1, width: field.bytes)?.tooLarge ?? false)
        }
        return (v, m)
    }

    /// Ethernet (mf_from_ethernet_string), IPv4 (ip_parse_masked) and IPv6
    /// (ipv6_parse_masked) values, each with an optional mask (or prefix length).
    static func address(_ s: [UInt8], _ text: String, field: FilterField) throws(ValueError) -> (UInt128, UInt128) {
        let sc = Scan(utf8: s)
        switch field.syntax {
        case .mac:
            if let (v, e) = sc.mac(0) {
                if e == s.count { return (UInt128(v), .max) }
                if sc[e] == 47, let (m, me) = sc.mac(e + 1), me == s.count { return (UInt128(v), UInt128(m)) }
            }
            throw ValueError("\(text): invalid Ethernet address")
        case .ipv4:
            guard let (v, e) = sc.ipv4(0) else { throw ValueError("\(text): invalid IP address") }
            var m: UInt128 = .max, end = e
            if sc[e] == 47 {
                if let (mm, me) = sc.ipv4(e + 1) {
                    (m, end) = (UInt128(mm), me)
                } else if let (p, pe) = sc.integer(e + 1, base: 10) {
                    let prefix = Int64(bitPattern: p)
                    guard prefix >= 0 && prefix <= 32 else {
                        throw ValueError("\(text): IPv4 network prefix bits not between 0 and 32, inclusive")
                    }
                    (m, end) = (UInt128(prefix == 0 ? 0 : UInt32.max << (32 - UInt32(prefix))), pe)
                }
            }
            guard end == s.count else { throw ValueError("\(text): invalid IP address") }
            return (UInt128(v), m)
        default:
            let j = sc.skipSpaces(0)
            guard let (v, e) = sc.ipv6(j) else { throw ValueError("\(text): invalid IPv6 address") }
            var m: UInt128 = .max, end = e
            if sc[e] == 47 {
                if let (p, pe) = sc.integer(e + 1, base: 10) {
                    let prefix = Int64(bitPattern: p)
                    guard prefix >= 0 && prefix <= 128 else {
                        throw ValueError("\(text): IPv6 network prefix bits not between 0 and 128, inclusive")
                    }
                    (m, end) = (prefix == 0 ? 0 : UInt128.max << (128 - UInt128(prefix)), pe)
                } else if let (mm, me) = sc.ipv6(e + 1) {
                    (m, end) = (mm, me)
                } else {
                    let k = e + 1
                    var n = k
                    while Scan.hexit(sc[n]) >= 0 || sc[n] == 58 || sc[n] == 46 { n += 1 }
                    if n > k { throw ValueError("\(text): Invalid IPv6 mask") }
                }
            }
            guard end == s.count else { throw ValueError("\(text): invalid IPv6 address") }
            return (v, m)
        }
    }

    /// ofputil_port_from_string(): a number (OpenFlow 1.0, or 1.1+ reserved numbers
    /// mapped down), a reserved port name, or a datapath port's name (quoted or not).
    static func port(_ text: String, portNames: [String: UInt32]) throws(ValueError) -> UInt16 {
        let bad = ValueError("\(text): invalid or unknown port for in_port")
        if text.hasPrefix("-") { throw bad }
        if !text.isEmpty, text.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }) {
            guard let n = UInt32(text) else { throw bad }
            if n <= 0xffff { return UInt16(n) }
            // OFPP11_MAX (0xffffff00) and up map to 0xff00 and up; between is refused.
            if n >= 0xffff_ff00 { return UInt16(truncatingIfNeeded: n - 0xffff_0000) }
            throw bad
        }
        let reserved: [String: UInt16] = ["in_port": 0xfff8, "table": 0xfff9, "normal": 0xfffa, "flood": 0xfffb,
                                          "all": 0xfffc, "controller": 0xfffd, "local": 0xfffe, "any": 0xffff,
                                          "unset": 0xfff7, "none": 0xffff]
        if let r = reserved[text.lowercased()] { return r }
        var name = text
        if name.count >= 2, name.hasPrefix("\""), name.hasSuffix("\"") { name = String(name.dropFirst().dropLast()) }
        // ofputil_port_map_get_number(): OVS_NONE (not found) is no port.
        if let n = portNames[name], UInt16(truncatingIfNeeded: n) != 0xffff { return UInt16(truncatingIfNeeded: n) }
        throw bad
    }

    /// mf_from_frag_string(): the first name that matches; only no, first and later
    /// are exact (yes and not_later leave a bit wildcarded). Values are nw_frag bits.
    static func frag(_ text: String) throws(ValueError) -> (UInt128, UInt128) {
        switch text.lowercased() {
        case "no": return (0, 0xff)
        case "first": return (1, 0xff)
        case "later": return (3, 0xff)
        case "yes": return (1, 0xfd)
        case "not_later": return (0, 0xfe)
        default:
            throw ValueError("\(text): unknown fragment type (valid types are \"no\", \"yes\", \"first\", \"later\", \"not_later\"")
        }
    }

    /// parse_flags() with a mask wanted (ct_state, tcp_flags): `N/M` numbers, `+a-b`
    /// (always a partial mask here), or names and numbers joined by `|` (exact).
    static func flags(_ s: [UInt8], _ text: String, names: FlagNames, allowed: UInt32, fieldName: String,
                      bytes: Int) throws(ValueError) -> (UInt128, UInt128) {
        let sc = Scan(utf8: s)
        let unknown = ValueError("\(text): unknown \(fieldName) flag(s)")
        let ones: UInt128 = (1 << UInt128(8 * bytes)) - 1
        if let (f, e) = sc.integer(0), sc[e] == 47, let (m, _) = sc.integer(e + 1) {
            let f32 = UInt32(truncatingIfNeeded: f), m32 = UInt32(truncatingIfNeeded: m)
            if f32 & ~allowed != 0 || m32 & ~allowed != 0 { throw unknown }
            return (UInt128(f32), UInt128(m32))
        }
        if sc[0] == 43 || sc[0] == 45 {
            var flags: UInt32 = 0, mask: UInt32 = 0, i = 0
            while i < s.count {
                guard s[i] == 43 || s[i] == 45 else {
                    let rest = String(decoding: s[i...], as: UTF8.self)
                    throw ValueError("\(rest): \(fieldName) must be preceded by '+' (for SET) or '-' (NOT SET)")
                }
                let set = s[i] == 43
                i += 1
                guard let (bit, name) = names.names.first(where: {
                    sc.hasPrefix(string: $0.1, at: i) && [0, 43, 45].contains(sc[i + $0.1.utf8.count])
                }) else { throw unknown }
                if mask & bit != 0 {
                    throw ValueError("\(String(decoding: s[i...], as: UTF8.self)): Each \(fieldName) flag can be specified only once")
                }
                if bit & allowed == 0 { throw unknown }
                if set { flags |= bit }
                mask |= bit
                i += name.utf8.count
            }
            return (UInt128(flags), UInt128(mask))
        }
        var result: UInt32 = 0, i = 0
        while i < s.count {
            if let (f, e) = sc.integer(i) {
                if UInt32(truncatingIfNeeded: f) & ~allowed != 0 || f > UInt64(UInt32.max) { throw unknown }
                result |= UInt32(f)
                i = e + (sc[e] == 124 ? 1 : 0)
                continue
            }
            guard let (bit, name) = names.names.first(where: {
                sc.hasPrefix(string: $0.1, at: i) && (sc[i + $0.1.utf8.count] == 124 || i + $0.1.utf8.count == s.count)
            }) else { throw unknown }
            if bit & allowed == 0 { throw unknown }
            result |= bit
            i += name.utf8.count + (sc[i + name.utf8.count] == 124 ? 1 : 0)
        }
        return (UInt128(result), ones)
    }
}
