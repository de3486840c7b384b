/// Named bit sets of the ODP text (ct_state, tcp_flags, tunnel flags, slow_path), with
/// OVS's parse_flags()/format_flags()/format_flags_masked() semantics.
struct FlagNames: Sendable {
    let names: [(UInt32, String)]
    /// Each name's bytes, made once (tried at each flag of each line of a flow file).
    let nameBytes: [(UInt32, [UInt8])]

    init(names: [(UInt32, String)]) {
        self.names = names
        nameBytes = names.map { ($0.0, Array($0.1.utf8)) }
    }

    func name(_ bit: UInt32) -> String? { names.first { $0.0 == bit }?.1 }

    static let ctState = FlagNames(names: [(0x01, "new"), (0x02, "est"), (0x04, "rel"), (0x08, "rpl"),
                                           (0x10, "inv"), (0x20, "trk"), (0x40, "snat"), (0x80, "dnat")])
    static let tcp = FlagNames(names: [(0x001, "fin"), (0x002, "syn"), (0x004, "rst"), (0x008, "psh"), (0x010, "ack"),
                                       (0x020, "urg"), (0x040, "ece"), (0x080, "cwr"), (0x100, "ns"),
                                       (0x200, "[200]"), (0x400, "[400]"), (0x800, "[800]")])
    static let tunnel = FlagNames(names: [(0x1, "oam"), (0x2, "df"), (0x4, "csum"), (0x8, "key")])
    static let slowPath = FlagNames(names: [(0x01, "cfm"), (0x02, "bfd"), (0x04, "lacp"), (0x08, "stp"),
                                            (0x10, "lldp"), (0x20, "action"), (0x40, "match")])

    /// format_flags(): names in bit order joined by `delimiter`; unknown bits as one hex
    /// number; `0` when empty.
    func format(_ flags: UInt32, delimiter: Character = "|") -> String {
        if flags == 0 { return "0" }
        var parts: [String] = []
        var bad: UInt32 = 0
        var f = flags
        while f != 0 {
            let bit = f & (0 &- f)
            if let n = name(bit) { parts.append(n) } else { bad |= bit }
            f &= ~bit
        }
        if bad != 0 { parts.append("0x" + String(bad, radix: 16)) }
        return parts.joined(separator: String(delimiter))
    }

    /// format_flags_masked() without a field name.
    func formatMasked(_ flags: UInt32, mask: UInt32, maxMask: UInt32) -> String {
        if mask == maxMask { return format(flags) }
        if mask == 0 { return "0/0" }
        var out = ""
        var m = mask
        while m != 0 {
            let bit = m & (0 &- m)
            out += (flags & bit != 0 ? "+" : "-") + (name(bit) ?? "[Unknown]")
            m &= ~bit
        }
        return out
    }

    /// parse_flags(): `NUM/NUM`, `+a-b…` (masked) or `a|b|NUM` (unmasked), ending at
    /// `end` (not consumed). Returns (flags, mask, end index).
    func parse(_ sc: Scan, at i: Int, end: UInt8, allowed: UInt32, masked: Bool) -> (UInt32, UInt32, Int)? {
        if masked, let (v, j) = sc.integer(i), sc[j] == 47, let (m, k) = sc.integer(j + 1) {
            let fv = UInt32(truncatingIfNeeded: v), fm = UInt32(truncatingIfNeeded: m)
            guard fv & ~allowed == 0, fm & ~allowed == 0 else { return nil }
            return (fv, fm, k)
        }
        var j = i
        if masked && (sc[j] == 43 || sc[j] == 45) {
            var flags: UInt32 = 0, mask: UInt32 = 0
            while sc[j] != end {
                guard sc[j] == 43 || sc[j] == 45 else { return nil }
                let set = sc[j] == 43
                j += 1
                var matched: (UInt32, Int)?
                for (bit, n) in nameBytes where sc.hasPrefix(name: n, at: j) {
                    let after = sc[j + n.count]
                    if after == 43 || after == 45 || after == end {
                        matched = (bit, n.count)
                        break
                    }
                }
                guard let (bit, len) = matched, mask & bit == 0, bit & allowed != 0 else { return nil }
                if set { flags |= bit }
                mask |= bit
                j += len
                if j >= sc.count { return nil }
            }
            return (flags, mask, j)
        }
        var result: UInt32 = 0
        while sc[j] != end {
            if j >= sc.count { return nil }
            if let (v, e) = sc.integer(j) {
                guard v & ~UInt64(allowed) == 0 else { return nil }
                result |= UInt32(truncatingIfNeeded: v)
                j = e + (sc[e] == 124 ? 1 : 0)
                continue
            }
            var matched = false
            for (bit, n) in nameBytes where sc.hasPrefix(name: n, at: j) {
                let after = sc[j + n.count]
                if after == 124 || after == end {
                    guard bit & allowed != 0 else { return nil }
                    result |= bit
                    j += n.count + (after == 124 ? 1 : 0)
                    matched = true
                    break
                }
            }
            if !matched { return nil }
        }
        return (result, UInt32.max, j)
    }
}

/// ct_state bits as OVS names them ("trk|est|rpl"), for traces and messages.
public func formatCTState(_ bits: UInt8) -> String { FlagNames.ctState.format(UInt32(bits)) }
