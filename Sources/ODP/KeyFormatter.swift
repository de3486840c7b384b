import Glibc
import Netlink
import Packet

/// Key and mask attributes → text, exactly as Open vSwitch 3.1's odp_flow_format()
/// prints them (`verbose` is `dump-flows -m`).
public struct KeyFormatter: Sendable {
    public var verbose: Bool
    public var portNames: [UInt32: String]
    /// encap() levels above this one: bounded (as the text parser bounds them) so that
    /// a key nested thousands deep cannot exhaust the stack.
    private var depth = 0
    /// Texts of attributes already formatted (a dump formats the same in_port(), eth()
    /// and eth_type() for every flow): nil formats each one anew.
    public var memo: FormatMemo?

    public init(verbose: Bool = false, portNames: [UInt32: String] = [:], memo: FormatMemo? = nil) {
        self.verbose = verbose
        self.portNames = portNames
        self.memo = memo
    }

    public func format(key: [UInt8], mask: [UInt8]?) -> String {
        guard !key.isEmpty else { return "<empty>" }
        guard depth < KeyParser.maxNesting else { return "<nested too deeply>" }
        // Spans, not attributes: a dump formats a million keys, and an array of
        // attributes costs reference counting for every one of them.
        guard let keys = try? AttributeParser.spans(key[...]) else { return "<malformed key>" }
        let maskBytes = mask ?? []
        let masks = mask.flatMap { try? AttributeParser.spans($0[...]) }
        var out = ""
        out.reserveCapacity(160)
        var first = true
        var hasEthType = false
        var hasPacketType = false
        for (position, k) in keys.enumerated() {
            let m = masks?.first { $0.type == k.type }
            if let expected = KeyAttr.length(k.type), expected >= 0, k.count != expected || m.map({ $0.count != expected }) ?? false {
                _ = checkLength(k.attribute(in: key), m?.attribute(in: maskBytes), into: &out, first: &first)
                continue
            }
            if k.type == KeyAttr.ethertype { hasEthType = true }
            if k.type == KeyAttr.packetType { hasPacketType = true }
            let nested = KeyAttr.length(k.type) == -2
            var wildcard = false
            if let masks, !masks.isEmpty {
                wildcard = m.map { Self.maskIsConstant(k.type, maskBytes[$0.payload], 0) } ?? true
            }
            if verbose || !wildcard || nested {
                if !first { out += "," }
                first = false
                let memo = depth == 0 ? memo : nil
                // The previous flow's attribute at this place, compared where both lie.
                if let memo, !(wildcard && m == nil),
                   let text = memo.previousText(at: position, type: k.type, key: key, k.payload, mask: maskBytes, m?.payload) {
                    out += text
                    continue
                }
                let a = k.attribute(in: key)
                var ma = m?.attribute(in: maskBytes)
                if wildcard && ma == nil {
                    ma = Attribute(type: a.type, isNested: false, payload: Self.wildcardMask(a)[...], offset: 0)
                }
                if let memo, !memo.formatsAnew(a.type) {
                    out += memo.text(a, ma, position: position) { formatAttribute(a, ma) }
                } else {
                    formatAttribute(a, ma, into: &out)
                }
            } else if k.type == KeyAttr.ethernet && !hasPacketType {
                if !first { out += "," }
                out += "eth()"
                first = false
            } else if k.type == KeyAttr.packetType && wildcard {
                hasPacketType = false
            }
        }
        if !hasEthType, let masks, let m = masks.first(where: { $0.type == KeyAttr.ethertype }), m.count == 2 {
            out += ",eth_type(0/\(hex0x4(Array(maskBytes[m.payload]).be16(0))))"
        }
        return out
    }

    /// Attribute payload length check; prints the generic form on a mismatch.
    private func checkLength(_ a: Attribute, _ ma: Attribute?, into out: inout String, first: inout Bool) -> Bool {
        guard let expected = KeyAttr.length(a.type), expected >= 0 else { return true }
        let badKey = a.count != expected
        let badMask = ma.map { $0.count != expected } ?? false
        guard badKey || badMask else { return true }
        if !first { out += "," }
        out += KeyAttr.name(a.type) + "(bad length \(a.count), expected \(expected))"
        first = false
        return false
    }

    /// An all-zero mask of the same shape as `a` (generate_all_wildcard_mask).
    static func wildcardMask(_ a: Attribute) -> [UInt8] {
        if a.type == KeyAttr.tunnel || a.type == KeyAttr.encap { return [] }
        return [UInt8](repeating: 0, count: a.count)
    }

    /// odp_mask_is_constant__(): all bits equal to `constant` (0 or all ones).
    /// The same for a mask where it lies: most types need no array of their own.
    static func maskIsConstant(_ type: UInt16, _ m: ArraySlice<UInt8>, _ constant: Int) -> Bool {
        switch type {
        case KeyAttr.tcpFlags, KeyAttr.ipv6: return maskIsConstant(type, Array(m), constant)
        case KeyAttr.encap, KeyAttr.tunnelInfo: return false
        default:
            let byte: UInt8 = constant == 0 ? 0 : 0xff
            return m.allSatisfy { $0 == byte }
        }
    }

    static func maskIsConstant(_ type: UInt16, _ m: [UInt8], _ constant: Int) -> Bool {
        let byte: UInt8 = constant == 0 ? 0 : 0xff
        switch type {
        case KeyAttr.tcpFlags:
            guard m.count == 2 else { return false }
            return m.be16(0) & 0x0fff == (constant == 0 ? 0 : 0x0fff)
        case KeyAttr.ipv6:
            guard m.count == 40 else { return false }
            let label = m.be32(32) & 0xfffff
            return label == (constant == 0 ? 0 : 0xfffff) && m[36] == byte && m[37] == byte && m[38] == byte
                && m[39] == byte && m[0..<32].allSatisfy { $0 == byte }
        case KeyAttr.encap, KeyAttr.tunnelInfo:
            return false
        default:
            return m.allSatisfy { $0 == byte }
        }
    }

    // MARK: field helpers (format_eth, format_ipv4, …): empty mask → nothing

    /// `value` and `mask` are made only if printed (most fields of a dump are wildcarded
    /// or exact).
    private func field(_ out: inout String, _ name: String, value: @autoclosure () -> String, maskEmpty: Bool, maskFull: Bool,
                       mask: @autoclosure () -> String) {
        if verbose || !maskEmpty {
            out += name
            out += "="
            out += value()
            if !maskFull {
                out += "/"
                out += mask()
            }
            out += ","
        }
    }

    private func mac(_ o: inout String, _ n: String, _ k: UInt64, _ m: UInt64?) {
        field(&o, n, value: formatMAC(k), maskEmpty: m == 0, maskFull: m == nil || m == 0xffff_ffff_ffff, mask: formatMAC(m ?? 0))
    }
    private func ipv4(_ o: inout String, _ n: String, _ k: UInt32, _ m: UInt32?) {
        field(&o, n, value: formatIPv4(k), maskEmpty: m == 0, maskFull: m == nil || m == ~0, mask: formatIPv4(m ?? 0))
    }
    private func ipv6(_ o: inout String, _ n: String, _ k: UInt128, _ m: UInt128?) {
        field(&o, n, value: formatIPv6(k), maskEmpty: m == 0, maskFull: m == nil || m == ~0, mask: formatIPv6(m ?? 0))
    }
    private func u8u(_ o: inout String, _ n: String, _ k: UInt8, _ m: UInt8?) {
        field(&o, n, value: String(k), maskEmpty: m == 0, maskFull: m == nil || m == 0xff, mask: hexAlt(m ?? 0))
    }
    private func u8x(_ o: inout String, _ n: String, _ k: UInt8, _ m: UInt8?) {
        field(&o, n, value: hexAlt(k), maskEmpty: m == 0, maskFull: m == nil || m == 0xff, mask: hexAlt(m ?? 0))
    }
    private func be16(_ o: inout String, _ n: String, _ k: UInt16, _ m: UInt16?) {
        field(&o, n, value: String(k), maskEmpty: m == 0, maskFull: m == nil || m == 0xffff, mask: hexAlt(m ?? 0))
    }
    private func be16x(_ o: inout String, _ n: String, _ k: UInt16, _ m: UInt16?) {
        field(&o, n, value: hexAlt(k), maskEmpty: m == 0, maskFull: m == nil || m == 0xffff, mask: hexAlt(m ?? 0))
    }
    private func frag(_ o: inout String, _ n: String, _ k: UInt8, _ m: UInt8?) {
        let empty = m == 0, full = m == nil || m == 0xff
        if !empty && !full {
            o += "error: partial mask not supported for frag (\(hexAlt(m!))),"
        } else if !empty {
            o += n + "=" + (k == 0 ? "no" : k == 1 ? "first" : k == 2 ? "later" : "<error>") + ","
        }
    }

    private static func chomp(_ s: inout String) { if s.last == "," { s.removeLast() } }

    // MARK: attributes (format_odp_key_attr__)

    func formatAttribute(_ a: Attribute, _ ma: Attribute?) -> String {
        var o = ""
        formatAttribute(a, ma, into: &o)
        return o
    }

    /// Appends the attribute's text to `o` (a dump writes most of them straight into its
    /// line: no string of their own).
    func formatAttribute(_ a: Attribute, _ ma: Attribute?, into o: inout String) {
        let k = Array(a.payload)
        let m = ma.map { Array($0.payload) }
        let exact = m.map { Self.maskIsConstant(a.type, $0, -1) } ?? true
        o += KeyAttr.name(a.type)
        o += "("
        func mb(_ f: ([UInt8]) -> UInt64) -> UInt64? { m.map(f) }
        switch a.type {
        case KeyAttr.encap:
            var inner = self
            inner.depth += 1
            if let m, !m.isEmpty, !k.isEmpty {
                o += inner.format(key: k, mask: m)
            } else if !k.isEmpty {
                o += inner.format(key: k, mask: nil)
            }
        case KeyAttr.priority, KeyAttr.skbMark, KeyAttr.dpHash, KeyAttr.recircID:
            o += hexAlt(k.le32(0))
            if !exact { o += "/" + hexAlt(m!.le32(0)) }
        case KeyAttr.ctMark:
            if verbose || !Self.empty(m) {
                o += hexAlt(k.le32(0))
                if !exact { o += "/" + hexAlt(m!.le32(0)) }
            }
        case KeyAttr.ctState:
            if verbose {
                o += hexAlt(k.le32(0))
                if !exact { o += "/" + hexAlt(Self.empty(m) ? 0 : m!.le32(0)) }
            } else if !exact {
                o += FlagNames.ctState.formatMasked(k.le32(0), mask: Self.empty(m) ? 0 : m!.le32(0), maxMask: UInt32.max)
            } else {
                o += FlagNames.ctState.format(k.le32(0))
            }
        case KeyAttr.ctZone:
            if verbose || !Self.empty(m) {
                o += hexAlt(k.le16(0))
                if !exact { o += "/" + hexAlt(m!.le16(0)) }
            }
        case KeyAttr.ctLabels:
            o += formatU128(k.le128(0), m.map { $0.le128(0) })
        case KeyAttr.tunnel:
            o += formatTunnel(a, ma)
        case KeyAttr.inPort:
            if exact {
                let p = k.le32(0)
                o += portNames[p] ?? String(p)
            } else {
                o += String(k.le32(0)) + "/" + hexAlt(m!.le32(0))
            }
        case KeyAttr.packetType:
            let v = k.be32(0), mv = m?.be32(0) ?? UInt32.max
            be16(&o, "ns", UInt16(v >> 16), UInt16(mv >> 16))
            be16x(&o, "id", UInt16(v & 0xffff), UInt16(mv & 0xffff))
            Self.chomp(&o)
        case KeyAttr.ethernet:
            mac(&o, "src", k.be48(0), m?.be48(0))
            mac(&o, "dst", k.be48(6), m?.be48(6))
            Self.chomp(&o)
        case KeyAttr.vlan:
            o += formatVLANTCI(k.be16(0), mask: m?.be16(0) ?? 0xffff, verbose: verbose)
        case KeyAttr.mpls:
            guard !k.isEmpty, k.count % 4 == 0 else {
                o += "(bad key length \(k.count))"
                return
            }
            var parts: [String] = []
            for i in 0..<(k.count / 4) {
                let l = k.be32(4 * i)
                if exact || m == nil {
                    parts.append(Self.mplsLSE(l))
                } else {
                    guard m!.count == k.count else {
                        o += "(key length \(k.count) != mask length \(m!.count))"
                        return
                    }
                    let mm = m!.be32(4 * i)
                    parts.append("label=\(l >> 12)/0x\(String(mm >> 12, radix: 16)),tc=\((l >> 9) & 7)/\(String((mm >> 9) & 7, radix: 16)),ttl=\(l & 0xff)/0x\(String(mm & 0xff, radix: 16)),bos=\((l >> 8) & 1)/\(String((mm >> 8) & 1, radix: 16))")
                }
            }
            o += parts.joined(separator: ",")
        case KeyAttr.ethertype:
            o += hex0x4(k.be16(0))
            if !exact { o += "/" + hex0x4(m!.be16(0)) }
        case KeyAttr.ipv4:
            ipv4(&o, "src", k.be32(0), m?.be32(0))
            ipv4(&o, "dst", k.be32(4), m?.be32(4))
            u8u(&o, "proto", k[8], m?[8])
            u8x(&o, "tos", k[9], m?[9])
            u8u(&o, "ttl", k[10], m?[10])
            frag(&o, "frag", k[11], m?[11])
            Self.chomp(&o)
        case KeyAttr.ipv6:
            ipv6(&o, "src", k.be128(0), m?.be128(0))
            ipv6(&o, "dst", k.be128(16), m?.be128(16))
            let lm = m?.be32(32)
            if verbose || lm != 0 {
                o += "label=" + hexAlt(k.be32(32))
                if let lm, lm & 0xfffff != 0xfffff { o += "/" + hexAlt(lm) }
                o += ","
            }
            u8u(&o, "proto", k[36], m?[36])
            u8x(&o, "tclass", k[37], m?[37])
            u8u(&o, "hlimit", k[38], m?[38])
            frag(&o, "frag", k[39], m?[39])
            Self.chomp(&o)
        case KeyAttr.tcp, KeyAttr.udp, KeyAttr.sctp:
            be16(&o, "src", k.be16(0), m?.be16(0))
            be16(&o, "dst", k.be16(2), m?.be16(2))
            Self.chomp(&o)
        case KeyAttr.tcpFlags:
            if !exact {
                o += FlagNames.tcp.formatMasked(UInt32(k.be16(0)), mask: UInt32(m!.be16(0) & 0x0fff), maxMask: 0x0fff)
            } else {
                o += FlagNames.tcp.format(UInt32(k.be16(0)))
            }
        case KeyAttr.icmp, KeyAttr.icmpv6:
            u8u(&o, "type", k[0], m?[0])
            u8u(&o, "code", k[1], m?[1])
            Self.chomp(&o)
        case KeyAttr.arp:
            ipv4(&o, "sip", k.be32(0), m?.be32(0))
            ipv4(&o, "tip", k.be32(4), m?.be32(4))
            be16(&o, "op", k.be16(8), m?.be16(8))
            mac(&o, "sha", k.be48(10), m?.be48(10))
            mac(&o, "tha", k.be48(16), m?.be48(16))
            Self.chomp(&o)
        case KeyAttr.ctOrigTupleIPv4:
            ipv4(&o, "src", k.be32(0), m?.be32(0))
            ipv4(&o, "dst", k.be32(4), m?.be32(4))
            u8u(&o, "proto", k[12], m?[12])
            be16(&o, "tp_src", k.be16(8), m?.be16(8))
            be16(&o, "tp_dst", k.be16(10), m?.be16(10))
            Self.chomp(&o)
        case KeyAttr.ctOrigTupleIPv6:
            ipv6(&o, "src", k.be128(0), m?.be128(0))
            ipv6(&o, "dst", k.be128(16), m?.be128(16))
            u8u(&o, "proto", k[36], m?[36])
            be16(&o, "src_port", k.be16(32), m?.be16(32))
            be16(&o, "dst_port", k.be16(34), m?.be16(34))
            Self.chomp(&o)
        case KeyAttr.nd:
            ipv6(&o, "target", k.be128(0), m?.be128(0))
            mac(&o, "sll", k.be48(16), m?.be48(16))
            mac(&o, "tll", k.be48(22), m?.be48(22))
            Self.chomp(&o)
        default:
            o += k.map { String(format2: $0) }.joined()
            if !exact, let m { o += "/" + m.map { String(format2: $0) }.joined() }
        }
        o += ")"
    }

    static func empty(_ m: [UInt8]?) -> Bool { m.map { $0.allSatisfy { $0 == 0 } } ?? true }

    static func mplsLSE(_ l: UInt32) -> String {
        "label=\(l >> 12),tc=\((l >> 9) & 7),ttl=\(l & 0xff),bos=\((l >> 8) & 1)"
    }

    /// format_u128(): hex without leading zeros; the mask when not all ones.
    func formatU128(_ v: UInt128, _ m: UInt128?) -> String {
        func hex(_ x: UInt128) -> String { x == 0 ? "0" : "0x" + String(x, radix: 16) }
        guard verbose || (m != nil && m != 0) else { return "" }
        var s = hex(v)
        if let m, m != UInt128.max { s += "/" + hex(m) }
        return s
    }

    private func formatTunnel(_ a: Attribute, _ ma: Attribute?) -> String {
        guard let subs = try? a.nestedAttributes() else { return "error" }
        let masks = ma.flatMap { try? $0.nestedAttributes() }
        var o = ""
        var flags: UInt32 = 0
        var maskFlags: UInt32 = 0
        for s in subs {
            var m = masks?.first { $0.type == s.type }
            if ma != nil && m == nil {
                m = Attribute(type: s.type, isNested: false, payload: [UInt8](repeating: 0, count: s.count)[...], offset: 0)
            }
            if let len = TunnelAttr.length(s.type), len >= 0, s.count != len || (m.map { $0.count != len } ?? false) {
                o += "key\(s.type)(bad length),"
                continue
            }
            let k = Array(s.payload), mv = m.map { Array($0.payload) }
            switch s.type {
            case TunnelAttr.id:
                // format_be64(): a missing mask counts as zero here (unlike other fields).
                let mask = mv?.be64(0) ?? 0
                if verbose || mask != 0 {
                    o += "tun_id=" + hex0x(k.be64(0))
                    if mv != nil && mask != UInt64.max { o += "/" + hexAlt(mask) }
                    o += ","
                }
                flags |= 0x8
                if m != nil { maskFlags |= 0x8 }
            case TunnelAttr.ipv4Src: ipv4(&o, "src", k.be32(0), mv?.be32(0))
            case TunnelAttr.ipv4Dst: ipv4(&o, "dst", k.be32(0), mv?.be32(0))
            case TunnelAttr.ipv6Src: ipv6(&o, "ipv6_src", k.be128(0), mv?.be128(0))
            case TunnelAttr.ipv6Dst: ipv6(&o, "ipv6_dst", k.be128(0), mv?.be128(0))
            case TunnelAttr.tos: u8x(&o, "tos", k[0], mv?[0])
            case TunnelAttr.ttl: u8u(&o, "ttl", k[0], mv?[0])
            case TunnelAttr.dontFragment: flags |= 0x2
            case TunnelAttr.csum: flags |= 0x4
            case TunnelAttr.oam: flags |= 0x1
            case TunnelAttr.tpSrc: be16(&o, "tp_src", k.be16(0), mv?.be16(0))
            case TunnelAttr.tpDst: be16(&o, "tp_dst", k.be16(0), mv?.be16(0))
            case TunnelAttr.pad: break
            default: o += "key\(s.type)(" + k.map { String(format2: $0) }.joined() + "),"
            }
        }
        if let masks {
            for m in masks {
                switch m.type {
                case TunnelAttr.dontFragment: maskFlags |= 0x2
                case TunnelAttr.csum: maskFlags |= 0x4
                case TunnelAttr.oam: maskFlags |= 0x1
                default: break
                }
            }
        }
        // format_tun_flags()
        let maskEmpty = ma != nil && maskFlags == 0
        if verbose || !maskEmpty {
            o += "flags("
            if ma != nil {
                o += FlagNames.tunnel.formatMasked(flags, mask: maskFlags & 0xf, maxMask: 0xf)
            } else {
                o += FlagNames.tunnel.format(flags)
            }
            o += "),"
        }
        Self.chomp(&o)
        return o
    }
}

/// format_vlan_tci().
func formatVLANTCI(_ tci: UInt16, mask: UInt16, verbose: Bool) -> String {
    var s = ""
    let vid = tci & 0xfff, vidMask = mask & 0xfff
    let pcp = tci >> 13, pcpMask = mask >> 13
    if verbose || vid != 0 || vidMask != 0 {
        s += "vid=\(vid)"
        if vidMask != 0xfff { s += "/0x" + String(vidMask, radix: 16) }
        s += ","
    }
    if verbose || pcp != 0 || pcpMask != 0 {
        s += "pcp=\(pcp)"
        if pcpMask != 7 { s += "/0x" + String(pcpMask, radix: 16) }
        s += ","
    }
    if tci & 0x1000 == 0 { s += "cfi=0," }
    if s.last == "," { s.removeLast() }
    return s
}

extension String {
    /// `%02x`.
    init(format2 b: UInt8) {
        self = b < 16 ? "0" + String(b, radix: 16) : String(b, radix: 16)
    }
}

/// Formatted texts by what they were formatted from (attribute type, payload, mask),
/// for a formatter that sees the same attributes over and over (a dump). Bounded: it
/// starts over when full.
public final class FormatMemo: @unchecked Sendable {
    private var texts: [Bytes: String] = [:]
    public static let limit = 4096

    /// Bytes hashed as a block ([UInt8] hashes one byte at a time).
    struct Bytes: Hashable {
        let b: [UInt8]
        func hash(into h: inout Hasher) { b.withUnsafeBytes { h.combine(bytes: $0) } }
    }

    public init() {}

    /// Whether attributes of this type are formatted each time (their texts keep changing).
    func formatsAnew(_ type: UInt16) -> Bool { Int(type) < Self.watchedTypes && unique[Int(type)] }

    /// `position`: the attribute's place in its key; the text is remembered there for
    /// `previousText`, which the formatter asks first.
    func text(_ a: Attribute, _ ma: Attribute?, position: Int, _ make: () -> String) -> String {
        // The caller formats each time the types whose texts keep changing (an address
        // per flow, `formatsAnew`): remembering them would cost more than it saves.
        let t = Int(a.type)
        if t < Self.watchedTypes {
            tries[t] += 1
            if tries[t] == Self.probation, tries[t] - hitsByType[t] > Self.probation * 3 / 4 {
                unique[t] = true
            }
        }
        // The id is built in a buffer kept for it: a lookup that hits allocates nothing.
        scratch.removeAll(keepingCapacity: true)
        let n = a.payload.count
        scratch.append(UInt8(truncatingIfNeeded: a.type))
        scratch.append(UInt8(truncatingIfNeeded: a.type >> 8))
        scratch.append(ma == nil ? 0 : 1)
        scratch.append(UInt8(truncatingIfNeeded: n))
        scratch.append(UInt8(truncatingIfNeeded: n >> 8))
        scratch.append(UInt8(truncatingIfNeeded: n >> 16))
        scratch += a.payload
        if let ma { scratch += ma.payload }
        let key = Bytes(b: scratch)
        let text: String
        if let known = texts[key] {
            if t < Self.watchedTypes { hitsByType[t] += 1 }
            text = known
        } else {
            text = remember(key, make())
        }
        if position < Self.positions {
            while previous.count <= position { previous.append(([], "")) }
            previous[position] = (scratch, text)
        }
        return text
    }
    private var scratch: [UInt8] = []

    /// The text of the attribute at `position` if it is the one the previous key had
    /// there (same type, payload and mask bytes), read where the bytes lie: a dump's
    /// consecutive flows mostly repeat it, which a comparison finds (no hashing).
    func previousText(at position: Int, type: UInt16, key: [UInt8], _ k: Range<Int>, mask: [UInt8],
                      _ m: Range<Int>?) -> String? {
        guard position < previous.count else { return nil }
        let id = previous[position].id
        let n = k.count, masked = m?.count ?? 0
        guard id.count == 6 + n + masked, id[0] == UInt8(truncatingIfNeeded: type), id[1] == UInt8(truncatingIfNeeded: type >> 8),
              id[2] == (m == nil ? 0 : 1), id[3] == UInt8(truncatingIfNeeded: n), id[4] == UInt8(truncatingIfNeeded: n >> 8),
              id[5] == UInt8(truncatingIfNeeded: n >> 16) else { return nil }
        let same = id.withUnsafeBytes { i in
            key.withUnsafeBytes { kb in
                mask.withUnsafeBytes { mb in
                    (n == 0 || memcmp(i.baseAddress! + 6, kb.baseAddress! + k.lowerBound, n) == 0)
                        && (masked == 0 || memcmp(i.baseAddress! + 6 + n, mb.baseAddress! + m!.lowerBound, masked) == 0)
                }
            }
        }
        guard same else { return nil }
        let t = Int(type)
        if t < Self.watchedTypes {
            tries[t] += 1
            hitsByType[t] += 1
        }
        return previous[position].text
    }

    /// The last attribute seen at each position of a key, and its text.
    private var previous: [(id: [UInt8], text: String)] = []
    private static let positions = 32
    /// Lookups and hits by attribute type, over its first `probation` lookups.
    private static let watchedTypes = 64, probation = 256
    private var tries = [Int](repeating: 0, count: watchedTypes)
    private var hitsByType = [Int](repeating: 0, count: watchedTypes)
    private var unique = [Bool](repeating: false, count: watchedTypes)

    /// The text of a whole byte string (an action list), formatted once; the last one
    /// asked for is compared first (flows of one table mostly share their actions).
    public func text(of bytes: [UInt8], _ make: () -> String) -> String {
        if let last = lastBytes, last.bytes == bytes { return last.text }
        let key = Bytes(b: bytes)
        let text = texts[key] ?? remember(key, make())
        lastBytes = (bytes, text)
        return text
    }
    private var lastBytes: (bytes: [UInt8], text: String)?

    private func remember(_ key: Bytes, _ text: String) -> String {
        if texts.count >= Self.limit { texts.removeAll(keepingCapacity: true) }
        texts[key] = text
        return text
    }
}
