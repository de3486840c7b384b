import Netlink

/// Text → key and mask attribute lists, as odp_flow_from_string() builds them:
/// every written attribute yields one key attribute and one mask attribute; a field
/// written without `/mask` gets an all-ones mask, an unwritten field a zero mask.
struct KeyParser {
    static let maxNesting = 32

    /// The text; replaced line after line by KeyLines, which keeps one parser (a parser
    /// made per line copied the port names' dictionary, a hundred instructions).
    var sc: Scan
    let portNames: [String: UInt32]
    var depth = 0
    /// The deepest position and reason seen, for error messages.
    var failure: (Int, String)?

    init(_ text: String, portNames: [String: UInt32] = [:]) {
        self.init(scan: Scan(text), portNames: portNames)
    }

    init(scan: Scan, portNames: [String: UInt32]) {
        sc = scan
        self.portNames = portNames
    }

    mutating func fail(_ i: Int, _ why: String) -> Int? {
        if failure == nil || failure!.0 <= i { failure = (i, why) }
        return nil
    }

    /// Parses a whole key: `[ufid:UUID] attr…`. Returns the ufid if one was given.
    ///
    /// Like dpctl's add-flow and odp_flow_from_string() together: odp_ufid_from_string()
    /// takes one `ufid:` at the very start (no blank before it) and that is the flow's
    /// ufid. Then, where an attribute may start, odp_flow_from_string() skips a ufid
    /// (and at most one blank after it) that must be followed directly by an attribute;
    /// such a ufid is not used.
    mutating func parseKey(key: inout AttributeWriter, mask: inout AttributeWriter) throws(ODPError) -> UInt128? {
        var bounds: [KeyLines.Boundary]? = nil
        return try parseKey(key: &key, mask: &mask, from: 0, bounds: &bounds)
    }

    /// `parseKey` from index `from` (the start of a top-level attribute, or 0), the writers
    /// holding what the text before it wrote; each attribute's start (in the text and the
    /// writers) appended to `bounds` when given.
    mutating func parseKey(key: inout AttributeWriter, mask: inout AttributeWriter, from: Int,
                           bounds: inout [KeyLines.Boundary]?) throws(ODPError) -> UInt128? {
        var i = from
        var ufid: UInt128?
        if from == 0, sc.hasPrefix("ufid:", at: 0) {
            guard let (u, e) = parseUFID(sc, at: 5) else {
                throw ODPError(position: 0, "malformed ufid (expected ufid:xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)")
            }
            ufid = u
            i = e
        }
        while true {
            i = sc.skipDelimiters(i)
            if i >= sc.count { return ufid }
            let start = i
            bounds?.append(KeyLines.Boundary(text: start, key: key.bytes.count, mask: mask.bytes.count))
            if sc.hasPrefix("ufid:", at: i) {
                guard let (_, e) = parseUFID(sc, at: i + 5) else {
                    throw ODPError(position: i, "malformed ufid (expected ufid:xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)")
                }
                i = e + (sc[e] == 32 ? 1 : 0)
                if i >= sc.count || Scan.isDelimiter(sc[i]) {
                    throw ODPError(position: i, "a ufid here must be followed directly by a key attribute (one blank at most)",
                                   context: String(decoding: sc.s[start...], as: UTF8.self))
                }
            }
            guard let end = parseAttribute(at: i, key: &key, mask: &mask) else {
                let (pos, why) = failure ?? (start, "syntax error")
                throw ODPError(position: pos, why, context: String(decoding: sc.s[start...], as: UTF8.self))
            }
            i = end
        }
    }

    /// One key attribute; returns the index after it.
    mutating func parseAttribute(at i: Int, key: inout AttributeWriter, mask: inout AttributeWriter) -> Int? {
        depth += 1
        defer { depth -= 1 }
        if depth == KeyParser.maxNesting { return fail(i, "attributes nested too deeply") }
        return parseAttribute__(at: i, key: &key, mask: &mask)
    }

    private mutating func parseAttribute__(at i: Int, key: inout AttributeWriter, mask: inout AttributeWriter) -> Int? {
        // Dispatched on the first letter: every name ends in "(", so no name is a prefix
        // of another and the order of the tests is free. (Tried one after another, the
        // prefixes, their tables and the strings' reference counting were half of
        // add-flows' parsing.)
        switch sc[i] {
        case UInt8(ascii: "s"):
            if sc.hasPrefix("skb_priority(", at: i) {
                return scanSingle(at: i + 13, attr: KeyAttr.priority, type: .u32, size: 4, masked: true, key: &key, mask: &mask)
            }
            if sc.hasPrefix("skb_mark(", at: i) {
                return scanSingle(at: i + 9, attr: KeyAttr.skbMark, type: .u32, size: 4, masked: true, key: &key, mask: &mask)
            }
            if sc.hasPrefix("sctp(", at: i) { return scanStruct(KeyLayout.sctp, at: i, key: &key, mask: &mask) }
        case UInt8(ascii: "r"):
            if sc.hasPrefix("recirc_id(", at: i) {
                return scanSingle(at: i + 10, attr: KeyAttr.recircID, type: .u32, size: 4, masked: false, key: &key, mask: &mask)
            }
        case UInt8(ascii: "d"):
            if sc.hasPrefix("dp_hash(", at: i) {
                return scanSingle(at: i + 8, attr: KeyAttr.dpHash, type: .u32, size: 4, masked: true, key: &key, mask: &mask)
            }
        case UInt8(ascii: "c"):
            return parseConntrackAttribute(at: i, key: &key, mask: &mask)
        case UInt8(ascii: "t"):
            if sc.hasPrefix("tunnel(", at: i) { return parseTunnel(at: i + 7, key: &key, mask: &mask) }
            if sc.hasPrefix("tcp(", at: i) { return scanStruct(KeyLayout.tcp, at: i, key: &key, mask: &mask) }
            if sc.hasPrefix("tcp_flags(", at: i) {
                return scanFlags(FlagNames.tcp, at: i + 10, allowed: 0x0fff, attr: KeyAttr.tcpFlags, name: "tcp_flags",
                                 known: "fin syn rst psh ack urg ece cwr ns", key: &key, mask: &mask) {
                    [UInt8].be16(UInt16(truncatingIfNeeded: $0))
                }
            }
        case UInt8(ascii: "i"):
            if sc.hasPrefix("in_port(", at: i) { return parseInPort(at: i + 8, key: &key, mask: &mask) }
            if sc.hasPrefix("ipv4(", at: i) { return scanStruct(KeyLayout.ipv4, at: i, key: &key, mask: &mask) }
            if sc.hasPrefix("ipv6(", at: i) { return scanStruct(KeyLayout.ipv6, at: i, key: &key, mask: &mask) }
            if sc.hasPrefix("icmp(", at: i) { return scanStruct(KeyLayout.icmp, at: i, key: &key, mask: &mask) }
            if sc.hasPrefix("icmpv6(", at: i) { return scanStruct(KeyLayout.icmpv6, at: i, key: &key, mask: &mask) }
        case UInt8(ascii: "e"):
            if sc.hasPrefix("eth(", at: i) { return scanStruct(KeyLayout.ethernet, at: i, key: &key, mask: &mask) }
            if sc.hasPrefix("eth_type(", at: i) {
                return scanSingle(at: i + 9, attr: KeyAttr.ethertype, type: .be16, size: 2, masked: true, key: &key, mask: &mask)
            }
            if sc.hasPrefix("encap(", at: i) { return parseEncap(at: i + 6, key: &key, mask: &mask) }
        case UInt8(ascii: "v"):
            if sc.hasPrefix("vlan(", at: i) { return scanStruct(KeyLayout.vlan, at: i, key: &key, mask: &mask, initial: 0x10) }
        case UInt8(ascii: "m"):
            if sc.hasPrefix("mpls(", at: i) { return parseMPLS(at: i + 5, key: &key, mask: &mask) }
        case UInt8(ascii: "u"):
            if sc.hasPrefix("udp(", at: i) { return scanStruct(KeyLayout.udp, at: i, key: &key, mask: &mask) }
        case UInt8(ascii: "a"):
            if sc.hasPrefix("arp(", at: i) { return scanStruct(KeyLayout.arp, at: i, key: &key, mask: &mask) }
        case UInt8(ascii: "n"):
            if sc.hasPrefix("nd(", at: i) { return scanStruct(KeyLayout.nd, at: i, key: &key, mask: &mask) }
            if sc.hasPrefix("nd_ext(", at: i) { return fail(i, "nd_ext is not supported by esw") }
            if sc.hasPrefix("nsh(", at: i) { return fail(i, "nsh keys are not accepted (Open vSwitch 3.1 rejects them too)") }
        case UInt8(ascii: "p"):
            if sc.hasPrefix("packet_type(", at: i) { return scanStruct(KeyLayout.packetType, at: i, key: &key, mask: &mask) }
        default:
            break
        }
        return fail(i, "unknown or malformed key attribute")
    }

    /// ct_state(), ct_zone(), ct_mark(), ct_label() and the original-direction tuples.
    private mutating func parseConntrackAttribute(at i: Int, key: inout AttributeWriter, mask: inout AttributeWriter) -> Int? {
        if sc.hasPrefix("ct_state(", at: i) {
            return scanFlags(FlagNames.ctState, at: i + 9, allowed: 0xff, attr: KeyAttr.ctState, name: "ct_state",
                             known: "new est rel rpl inv trk snat dnat", what: "flags", key: &key, mask: &mask) { [UInt8].le32($0) }
        }
        if sc.hasPrefix("ct_zone(", at: i) {
            return scanSingle(at: i + 8, attr: KeyAttr.ctZone, type: .u16, size: 2, masked: true, key: &key, mask: &mask)
        }
        if sc.hasPrefix("ct_mark(", at: i) {
            return scanSingle(at: i + 8, attr: KeyAttr.ctMark, type: .u32, size: 4, masked: true, key: &key, mask: &mask)
        }
        if sc.hasPrefix("ct_label(", at: i) {
            let j = i + 9
            guard let (v, m, k) = sc.u128Masked(j) else { return fail(j, "invalid 128-bit ct_label value or mask") }
            guard sc[k] == 41 else { return fail(k, "expected \")\"") }
            var kb = [UInt8](repeating: 0, count: 16), mb = kb
            kb.setLE128(0, v)
            mb.setLE128(0, m)
            key.put(KeyAttr.ctLabels, kb)
            mask.put(KeyAttr.ctLabels, mb)
            return k + 1
        }
        if sc.hasPrefix("ct_tuple4(", at: i) { return scanStruct(KeyLayout.ctTuple4, at: i, key: &key, mask: &mask) }
        if sc.hasPrefix("ct_tuple6(", at: i) { return scanStruct(KeyLayout.ctTuple6, at: i, key: &key, mask: &mask) }
        return fail(i, "unknown or malformed key attribute")
    }

    // MARK: Attribute shapes

    /// `NAME(flags[/mask])` (scan_tcp_flags(), scan_ct_state()): flag names or a number,
    /// `encode` writing the attribute's bytes. An empty list is EINVAL, as SCAN_TYPE takes
    /// a zero length.
    private mutating func scanFlags(_ names: FlagNames, at j: Int, allowed: UInt32, attr: UInt16, name: String,
                                    known: String, what: String = "", key: inout AttributeWriter, mask: inout AttributeWriter,
                                    encode: (UInt32) -> [UInt8]) -> Int? {
        guard let (f, m, e) = names.parse(sc, at: j, end: 41, allowed: allowed, masked: true) else {
            return fail(j, "invalid \(name)\(what.isEmpty ? "" : " " + what) (known: \(known))")
        }
        guard e > j else { return fail(j, "empty \(name)() (write 0 for no flags)") }
        guard sc[e] == 41 else { return fail(e, "expected \")\"") }
        key.put(attr, encode(f))
        mask.put(attr, encode(m))
        return e + 1
    }

    /// SCAN_SINGLE: `NAME(value[/mask])`; `masked: false` means the mask is not parsed
    /// and is all ones (recirc_id).
    private mutating func scanSingle(at j: Int, attr: UInt16, type: FieldType, size: Int, masked: Bool,
                                     key: inout AttributeWriter, mask: inout AttributeWriter) -> Int? {
        // Scanned into the attributes in place: an array of its own per value and per
        // mask (and its generic metadata looked up at run time) was a fifth of a line's
        // parse. On an error the writers hold half an attribute; the key is refused.
        let k = key.putZeroed(attr, count: size), m = mask.putZeroed(attr, count: size)
        if !masked { for o in m..<m + size { mask.bytes[o] = 0xff } }
        guard let e = scanField(type, offset: 0, at: j, key: &key.bytes, mask: &mask.bytes, base: (k, m), withMask: masked)
        else { return nil }
        guard sc[e] == 41 else { return fail(e, "expected \")\"") }
        return e + 1
    }

    /// SCAN_BEGIN/SCAN_FIELD/SCAN_END over a fixed struct.
    private mutating func scanStruct(_ spec: StructSpec, at i: Int, key: inout AttributeWriter, mask: inout AttributeWriter,
                                     initial: UInt16 = 0) -> Int? {
        let k = key.putZeroed(spec.attr, count: spec.size), m = mask.putZeroed(spec.attr, count: spec.size)
        if initial != 0 {  // vlan: key and mask start with the CFI bit set
            key.bytes.setBE16(k, 0x1000)
            mask.bytes.setBE16(m, 0x1000)
        }
        return scanFieldList(spec.fields, at: i + spec.prefix.utf8.count, key: &key.bytes, mask: &mask.bytes, base: (k, m))
    }

    /// The do { field… } while (*s++ == ',' && len) loop; returns the index after `)`.
    /// `base`: where the struct starts in `key` and in `mask`.
    private mutating func scanFieldList(_ fields: [FieldSpec], at start: Int, key: inout [UInt8], mask: inout [UInt8],
                                        base: (key: Int, mask: Int) = (0, 0)) -> Int? {
        var s = start
        while true {
            var matched = false
            let c0 = sc[s]
            for k in fields.indices where fields[k].first == c0 && sc.hasPrefix(name: fields[k].nameBytes, at: s) {
                let f = fields[k]
                guard let e = scanField(f.type, offset: f.offset, at: s + f.nameBytes.count, key: &key, mask: &mask, base: base,
                                        withMask: true)
                else { return nil }
                s = e
                matched = true
                break
            }
            let c = sc[s]
            s += 1
            if c == 44 && matched { continue }
            if c == 41 { return s }
            return fail(s - 1, matched ? "expected \",\" or \")\"" : "unknown field or malformed value")
        }
    }

    /// Scans one value (and `/mask` when `withMask`) of `type` into the struct bytes.
    private mutating func scanField(_ type: FieldType, offset: Int, at j: Int, key: inout [UInt8], mask: inout [UInt8],
                                    base: (key: Int, mask: Int) = (0, 0), withMask: Bool) -> Int? {
        let ko = base.key + offset, mo = base.mask + offset
        func number(_ i: Int) -> (UInt64, Int)? { sc.integer(i) }
        func maskNumber(_ e: Int) -> (UInt64, Int)? {
            guard withMask, sc[e] == 47, let r = sc.integer(e + 1) else { return nil }
            return r
        }
        switch type {
        case .u8:
            guard let (v, e) = number(j) else { return fail(j, "expected a number") }
            key[ko] = UInt8(truncatingIfNeeded: v)
            if let (m, me) = maskNumber(e) { mask[mo] = UInt8(truncatingIfNeeded: m); return me }
            if withMask { mask[mo] = 0xff }
            return e
        case .be16, .u16:
            guard let (v, e) = number(j) else { return fail(j, "expected a number") }
            let store: (inout [UInt8], Int, UInt16) -> Void = type == .be16 ? { $0.setBE16($1, $2) } : { $0.setLE16($1, $2) }
            store(&key, ko, UInt16(truncatingIfNeeded: v))
            if let (m, me) = maskNumber(e) { store(&mask, mo, UInt16(truncatingIfNeeded: m)); return me }
            if withMask { store(&mask, mo, 0xffff) }
            return e
        case .be32, .u32:
            guard let (v, e) = number(j) else { return fail(j, "expected a number") }
            let store: (inout [UInt8], Int, UInt32) -> Void = type == .be32 ? { $0.setBE32($1, $2) } : { $0.setLE32($1, $2) }
            store(&key, ko, UInt32(truncatingIfNeeded: v))
            if let (m, me) = maskNumber(e) { store(&mask, mo, UInt32(truncatingIfNeeded: m)); return me }
            if withMask { store(&mask, mo, 0xffff_ffff) }
            return e
        case .be64:
            guard let (v, e) = number(j) else { return fail(j, "expected a number") }
            key.setBE64(ko, v)
            if let (m, me) = maskNumber(e) { mask.setBE64(mo, m); return me }
            if withMask { mask.setBE64(mo, ~0) }
            return e
        case .ipv4:
            guard let (v, e) = sc.ipv4(j) else { return fail(j, "expected an IPv4 address a.b.c.d") }
            key.setBE32(ko, v)
            if withMask, sc[e] == 47, let (m, me) = sc.ipv4(e + 1) { mask.setBE32(mo, m); return me }
            if withMask { mask.setBE32(mo, ~0) }
            return e
        case .ipv6:
            guard let (v, e) = sc.ipv6(j) else { return fail(j, "expected an IPv6 address") }
            key.setBE128(ko, v)
            if withMask, sc[e] == 47, let (m, me) = sc.ipv6(e + 1) { mask.setBE128(mo, m); return me }
            if withMask { mask.setBE128(mo, ~0) }
            return e
        case .mac:
            guard let (v, e) = sc.mac(j) else { return fail(j, "expected an Ethernet address xx:xx:xx:xx:xx:xx") }
            key.setBE48(ko, v)
            if withMask, sc[e] == 47, let (m, me) = sc.mac(e + 1) { mask.setBE48(mo, m); return me }
            if withMask { mask.setBE48(mo, 0xffff_ffff_ffff) }
            return e
        case .frag:
            var e = j
            while e - j < 7, sc[e] >= 97, sc[e] <= 122 { e += 1 }
            // The word's bytes compared where they lie (no String made per flow).
            let value: UInt8
            if e - j == 2 && sc.hasPrefix("no", at: j) {
                value = 0
            } else if e - j == 5 && sc.hasPrefix("first", at: j) {
                value = 1
            } else if e - j == 5 && sc.hasPrefix("later", at: j) {
                value = 2
            } else {
                return fail(j, "frag must be no, first or later")
            }
            key[ko] = value
            if withMask { mask[mo] = 0xff }
            return e
        case .ipv6Label:
            guard let (v, e) = number(j), UInt32(truncatingIfNeeded: v) & ~0xfffff == 0 else {
                return fail(j, "ipv6 label must be below 0x100000")
            }
            key.setBE32(ko, UInt32(truncatingIfNeeded: v))
            if withMask, sc[e] == 47, let (m, me) = sc.integer(e + 1), UInt32(truncatingIfNeeded: m) & ~0xfffff == 0 {
                mask.setBE32(mo, UInt32(truncatingIfNeeded: m))
                return me
            }
            if withMask { mask.setBE32(mo, 0xfffff) }
            return e
        case .vid, .pcp, .cfi:
            let (bits, shift): (UInt32, UInt32) = type == .vid ? (12, 0) : type == .pcp ? (3, 13) : (1, 12)
            return scanBitField(at: j, offsets: (ko, mo), width: 2, bits: bits, shift: shift, key: &key, mask: &mask, withMask: withMask)
        case .mplsLabel, .mplsTC, .mplsTTL, .mplsBOS:
            let (bits, shift): (UInt32, UInt32) = switch type {
            case .mplsLabel: (20, 12)
            case .mplsTC: (3, 9)
            case .mplsTTL: (8, 0)
            default: (1, 8)
            }
            return scanBitField(at: j, offsets: (ko, mo), width: 4, bits: bits, shift: shift, key: &key, mask: &mask, withMask: withMask)
        }
    }

    /// A bit field of a big-endian 16- or 32-bit word (`width` bytes): value, and
    /// under `withMask` an optional `/mask`, both limited to `bits` bits.
    private mutating func scanBitField(at j: Int, offsets: (key: Int, mask: Int), width: Int, bits: UInt32, shift: UInt32,
                                       key: inout [UInt8], mask: inout [UInt8], withMask: Bool) -> Int? {
        func read(_ b: [UInt8], _ o: Int) -> UInt32 { width == 2 ? UInt32(b.be16(o)) : b.be32(o) }
        func write(_ b: inout [UInt8], _ o: Int, _ v: UInt32) {
            if width == 2 { b.setBE16(o, UInt16(truncatingIfNeeded: v)) } else { b.setBE32(o, v) }
        }
        let word: UInt32 = width == 2 ? 0xffff : 0xffff_ffff
        guard let (v, e) = sc.integer(j) else { return fail(j, "expected a number") }
        let value = UInt32(truncatingIfNeeded: v) & word
        let field: UInt32 = ((1 << bits) - 1) << shift
        guard value >> bits == 0 else { return fail(j, "value \(value) does not fit in \(bits) bits") }
        write(&key, offsets.key, (read(key, offsets.key) & ~field) | value << shift)
        if withMask {
            if sc[e] == 47, let (m, me) = sc.integer(e + 1) {
                let mv = UInt32(truncatingIfNeeded: m) & word
                guard mv >> bits == 0 else { return fail(e + 1, "mask \(mv) does not fit in \(bits) bits") }
                write(&mask, offsets.mask, (read(mask, offsets.mask) & ~field) | mv << shift)
                return me
            }
            write(&mask, offsets.mask, read(mask, offsets.mask) | field)
        }
        return e
    }

    private mutating func parseInPort(at j: Int, key: inout AttributeWriter, mask: inout AttributeWriter) -> Int? {
        var kv: UInt32, mv: UInt32 = 0xffff_ffff
        var e: Int
        if let (v, ve) = sc.integer(j) {
            kv = UInt32(truncatingIfNeeded: v)
            e = ve
            if sc[e] == 47, let (m, me) = sc.integer(e + 1) {
                mv = UInt32(truncatingIfNeeded: m)
                e = me
            }
        } else {
            var k = j
            while k < sc.count && sc[k] != 41 { k += 1 }
            let name = String(decoding: sc.s[j..<k], as: UTF8.self)
            guard let port = portNames[name] else { return fail(j, "unknown port \"\(name)\"") }
            kv = port
            e = k
        }
        guard sc[e] == 41 else { return fail(e, "expected \")\"") }
        key.putU32(KeyAttr.inPort, kv)
        mask.putU32(KeyAttr.inPort, mv)
        return e + 1
    }

    private mutating func parseMPLS(at start: Int, key: inout AttributeWriter, mask: inout AttributeWriter) -> Int? {
        var kb = [UInt8](repeating: 0, count: 12), mb = kb
        var idx = 0
        var seen: UInt8 = 0
        var s = start
        loop: while true {
            var matched = false
            for (bit, f) in KeyLayout.mpls.enumerated() where sc.hasPrefix(name: f.nameBytes, at: s) {
                if seen & (1 << bit) != 0 {
                    seen = 0
                    idx += 1
                    if idx == 3 { break loop }
                }
                guard let e = scanField(f.type, offset: idx * 4, at: s + f.name.utf8.count, key: &kb, mask: &mb, withMask: true)
                else { return nil }
                seen |= 1 << bit
                s = e
                matched = true
                break
            }
            let c = sc[s]
            s += 1
            if c == 44 && matched { continue }
            if c == 41 {
                key.put(KeyAttr.mpls, Array(kb[0..<(idx + 1) * 4]))
                mask.put(KeyAttr.mpls, Array(mb[0..<(idx + 1) * 4]))
                return s
            }
            return fail(s - 1, "unknown field or malformed value")
        }
        return fail(s, "at most 3 MPLS label stack entries")
    }

    private mutating func parseEncap(at start: Int, key: inout AttributeWriter, mask: inout AttributeWriter) -> Int? {
        var s = start
        var innerKey = AttributeWriter(), innerMask = AttributeWriter()
        while true {
            s = sc.skipDelimiters(s)
            if s >= sc.count { return fail(s, "unterminated encap(") }
            if sc[s] == 41 { break }
            guard let e = parseAttribute(at: s, key: &innerKey, mask: &innerMask) else { return nil }
            s = e
        }
        key.put(KeyAttr.encap, innerKey.bytes)
        mask.put(KeyAttr.encap, innerMask.bytes)
        return s + 1
    }

    // MARK: tunnel(…)

    private mutating func parseTunnel(at start: Int, key: inout AttributeWriter, mask: inout AttributeWriter) -> Int? {
        var kw = AttributeWriter(), mw = AttributeWriter()
        let fields: [(String, UInt16, FieldType, Int)] = [
            ("tun_id=", TunnelAttr.id, .be64, 8), ("src=", TunnelAttr.ipv4Src, .ipv4, 4), ("dst=", TunnelAttr.ipv4Dst, .ipv4, 4),
            ("ipv6_src=", TunnelAttr.ipv6Src, .ipv6, 16), ("ipv6_dst=", TunnelAttr.ipv6Dst, .ipv6, 16),
            ("tos=", TunnelAttr.tos, .u8, 1), ("ttl=", TunnelAttr.ttl, .u8, 1),
            ("tp_src=", TunnelAttr.tpSrc, .be16, 2), ("tp_dst=", TunnelAttr.tpDst, .be16, 2),
        ]
        var s = start
        while true {
            var matched = false
            for (name, attr, type, size) in fields where sc.hasPrefix(string: name, at: s) {
                var kb = [UInt8](repeating: 0, count: size), mb = [UInt8](repeating: 0xff, count: size)
                guard let e = scanField(type, offset: 0, at: s + name.utf8.count, key: &kb, mask: &mb, withMask: true)
                else { return nil }
                kw.put(attr, kb)
                mw.put(attr, mb)
                s = e
                matched = true
                break
            }
            if !matched && sc.hasPrefix("flags(", at: s) {
                let j = s + 6
                guard let (f, m, e) = FlagNames.tunnel.parse(sc, at: j, end: 41, allowed: 0xf, masked: true), sc[e] == 41 else {
                    return fail(j, "invalid tunnel flags (known: oam df csum key)")
                }
                Self.putTunnelFlags(&kw, UInt16(truncatingIfNeeded: f))
                Self.putTunnelFlags(&mw, UInt16(truncatingIfNeeded: m))
                s = e + 1
                matched = true
            }
            if !matched {
                for opt in ["vxlan(", "geneve(", "erspan(", "gtpu("] where sc.hasPrefix(string: opt, at: s) {
                    return fail(s, "tunnel option \(opt.dropLast()) is not supported by esw")
                }
            }
            let c = sc[s]
            s += 1
            if c == 44 && matched { continue }
            if c == 41 {
                key.put(KeyAttr.tunnel, kw.bytes)
                mask.put(KeyAttr.tunnel, mw.bytes)
                return s
            }
            return fail(s - 1, matched ? "expected \",\" or \")\"" : "unknown tunnel field or malformed value")
        }
    }

    /// tun_flags_to_attr(): df, csum, oam as flag attributes (the key flag is implied by tun_id).
    static func putTunnelFlags(_ w: inout AttributeWriter, _ flags: UInt16) {
        if flags & 0x2 != 0 { w.putFlag(TunnelAttr.dontFragment) }
        if flags & 0x4 != 0 { w.putFlag(TunnelAttr.csum) }
        if flags & 0x1 != 0 { w.putFlag(TunnelAttr.oam) }
    }
}

/// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` (uuid_from_string_prefix).
func parseUFID(_ sc: Scan, at i: Int) -> (UInt128, Int)? {
    var v: UInt128 = 0
    var j = i
    for (n, group) in [8, 4, 4, 4, 12].enumerated() {
        if n > 0 {
            guard sc[j] == 45 else { return nil }
            j += 1
        }
        for _ in 0..<group {
            let d = Scan.hexit(sc[j])
            guard d >= 0 else { return nil }
            v = v << 4 | UInt128(d)
            j += 1
        }
    }
    return (v, j)
}

/// The UUID text form of a 128-bit ufid.
public func formatUFID(_ u: UInt128) -> String {
    TextBuffer.string { $0.appendUFID(u) }
}
