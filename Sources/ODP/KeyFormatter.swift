import Packet

/// Key and mask attributes → text, exactly as Open vSwitch 3.1's odp_flow_format()
/// prints them (`verbose` is `dump-flows -m`).
///
/// Written as bytes into a TextBuffer, the attributes read where they lie: a dump
/// formats a million keys (a String append or an attribute's array cost hundreds of
/// instructions each). The String form wraps the same writer.
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
        TextBuffer.string { format(key: key[...], mask: mask?[...], into: &$0) }
    }

    /// Appends the key's text to `out`.
    public func format(key: ArraySlice<UInt8>, mask: ArraySlice<UInt8>?, into out: inout TextBuffer) {
        key.withUnsafeBytes { k in
            guard let mask else { return format(key: k, mask: nil, into: &out) }
            mask.withUnsafeBytes { format(key: k, mask: $0, into: &out) }
        }
    }

    func format(key: UnsafeRawBufferPointer, mask: UnsafeRawBufferPointer?, into out: inout TextBuffer) {
        guard !key.isEmpty else { return out.append("<empty>") }
        guard depth < KeyParser.maxNesting else { return out.append("<nested too deeply>") }
        // Only the top level's attributes are remembered (an encap's are formatted anew).
        let memo = depth == 0 ? memo : nil
        if let memo, memo.plan.fits(key: key, mask: mask, verbose: verbose) {
            return memo.plan.replay(key: key, into: &out) { formatAttribute($0, key: key, mask: mask, memo: memo, into: &$1) }
        }
        guard let keys = RawAttributes(key) else { return out.append("<malformed key>") }
        let lineStart = out.count
        memo?.plan.begin(mask: mask, verbose: verbose)
        // A mask that does not parse counts as none.
        let masks = mask.flatMap(RawAttributes.init)
        var first = true
        var hasEthType = false
        var hasPacketType = false
        var maskOf = masks.map(MaskCursor.init)
        for (position, k) in keys.enumerated() {
            memo?.plan.walked(k.range, in: key)
            let m = maskOf?.mask(for: k.type)
            if let expected = KeyAttr.length(k.type), expected >= 0, k.count != expected || m.map({ $0.count != expected }) ?? false {
                let start = out.count
                if !first { out.append(UInt8(ascii: ",")) }
                first = false
                out.append(string: KeyAttr.name(k.type))
                out.append("(bad length ")
                out.appendDecimal(UInt(k.count))
                out.append(", expected ")
                out.appendDecimal(UInt(expected))
                out.append(UInt8(ascii: ")"))
                memo?.plan.wrote(length: out.count - start)
                continue
            }
            if k.type == KeyAttr.ethertype { hasEthType = true }
            if k.type == KeyAttr.packetType { hasPacketType = true }
            let nested = KeyAttr.length(k.type) == -2
            var wildcard = false
            if let masks, !masks.isEmpty {
                wildcard = m.map { Self.maskIsConstant(k.type, $0.reader, 0) } ?? true
            }
            if verbose || !wildcard || nested {
                // A wildcard without a mask attribute: generate_all_wildcard_mask(), zeros
                // of the key's shape.
                let zeros = wildcard && m == nil ? (k.type == KeyAttr.tunnel || k.type == KeyAttr.encap ? 0 : k.count) : nil
                let step = KeyPlan.AttributeStep(type: k.type, key: k.range, mask: m?.range, zeros: zeros, position: position, comma: !first)
                first = false
                let start = out.count
                formatAttribute(step, key: key, mask: mask, memo: memo, into: &out)
                memo?.plan.formatted(step, length: out.count - start)
            } else if k.type == KeyAttr.ethernet && !hasPacketType {
                let start = out.count
                if !first { out.append(UInt8(ascii: ",")) }
                out.append("eth()")
                first = false
                memo?.plan.wrote(length: out.count - start)
            } else if k.type == KeyAttr.packetType && wildcard {
                hasPacketType = false
            }
        }
        if !hasEthType, let masks, let m = masks.first(KeyAttr.ethertype), m.count == 2 {
            let start = out.count
            out.append(",eth_type(0/")
            out.appendHex0x4(m.reader.be16(0))
            out.append(UInt8(ascii: ")"))
            memo?.plan.wrote(length: out.count - start)
        }
        memo?.plan.finish(key: key, out, from: lineStart)
    }

    /// A key attribute's text, as the plan's step says (after a comma if it says so).
    private func formatAttribute(_ s: KeyPlan.AttributeStep, key: UnsafeRawBufferPointer, mask: UnsafeRawBufferPointer?,
                                 memo: FormatMemo?, into out: inout TextBuffer) {
        if s.comma { out.append(UInt8(ascii: ",")) }
        let k = RawPayload(UnsafeRawBufferPointer(rebasing: key[s.key]))
        if let zeros = s.zeros {
            return withZeros(zeros) { appendAttribute(s.type, k, RawPayload($0), position: s.position, memo: memo, into: &out) }
        }
        let m = s.mask.map { RawPayload(UnsafeRawBufferPointer(rebasing: mask![$0])) }
        // The previous flow's attribute at this place, compared where both lie.
        if let memo, memo.appendPrevious(at: s.position, type: s.type, key: k.bytes, mask: m?.bytes, to: &out) { return }
        appendAttribute(s.type, k, m, position: s.position, memo: memo, into: &out)
    }

    /// The attribute's text, through the memo when there is one; types whose texts
    /// keep changing (an address per flow) are formatted each time.
    private func appendAttribute(_ type: UInt16, _ k: RawPayload, _ m: RawPayload?, position: Int, memo: FormatMemo?,
                                 into out: inout TextBuffer) {
        if let memo, !memo.formatsAnew(type) {
            memo.append(type: type, key: k.bytes, mask: m?.bytes, position: position, to: &out) {
                formatAttribute(type, k, m, into: &$0)
            }
        } else {
            formatAttribute(type, k, m, into: &out)
        }
    }

    /// odp_mask_is_constant__(): all bits equal to `constant` (0 or all ones).
    static func maskIsConstant(_ type: UInt16, _ m: RawPayload, _ constant: Int) -> Bool {
        let byte: UInt8 = constant == 0 ? 0 : 0xff
        switch type {
        case KeyAttr.tcpFlags:
            guard m.count == 2 else { return false }
            return m.be16(0) & 0x0fff == (constant == 0 ? 0 : 0x0fff)
        case KeyAttr.ipv6:
            guard m.count == 40 else { return false }
            let label = m.be32(32) & 0xfffff
            guard label == (constant == 0 ? 0 : 0xfffff), m[36] == byte, m[37] == byte, m[38] == byte, m[39] == byte else { return false }
            return !m.bytes[0..<32].contains { $0 != byte }
        case KeyAttr.encap, KeyAttr.tunnelInfo:
            return false
        default:
            return !m.bytes.contains { $0 != byte }
        }
    }

    static func empty(_ m: RawPayload?) -> Bool { m.map { !$0.bytes.contains { $0 != 0 } } ?? true }

    // MARK: field helpers (format_eth, format_ipv4, …): empty mask → nothing

    /// `name` (with its `=`), the value, and the mask when it is not all ones; the value
    /// and mask are written only if printed (most fields of a dump are wildcarded or exact).
    private func field(_ out: inout TextBuffer, _ name: StaticString, maskEmpty: Bool, maskFull: Bool,
                       value: (inout TextBuffer) -> Void, mask: (inout TextBuffer) -> Void) {
        guard verbose || !maskEmpty else { return }
        out.append(name)
        value(&out)
        if !maskFull {
            out.append(UInt8(ascii: "/"))
            mask(&out)
        }
        out.append(UInt8(ascii: ","))
    }

    private func mac(_ o: inout TextBuffer, _ n: StaticString, _ k: UInt64, _ m: UInt64?) {
        field(&o, n, maskEmpty: m == 0, maskFull: m == nil || m == 0xffff_ffff_ffff,
              value: { $0.appendMAC(k) }, mask: { $0.appendMAC(m ?? 0) })
    }
    private func ipv4(_ o: inout TextBuffer, _ n: StaticString, _ k: UInt32, _ m: UInt32?) {
        field(&o, n, maskEmpty: m == 0, maskFull: m == nil || m == ~0, value: { $0.appendIPv4(k) }, mask: { $0.appendIPv4(m ?? 0) })
    }
    private func ipv6(_ o: inout TextBuffer, _ n: StaticString, _ k: UInt128, _ m: UInt128?) {
        field(&o, n, maskEmpty: m == 0, maskFull: m == nil || m == ~0, value: { $0.appendIPv6(k) }, mask: { $0.appendIPv6(m ?? 0) })
    }
    private func u8u(_ o: inout TextBuffer, _ n: StaticString, _ k: UInt8, _ m: UInt8?) {
        field(&o, n, maskEmpty: m == 0, maskFull: m == nil || m == 0xff, value: { $0.appendDecimal(k) }, mask: { $0.appendHexAlt(m ?? 0) })
    }
    private func u8x(_ o: inout TextBuffer, _ n: StaticString, _ k: UInt8, _ m: UInt8?) {
        field(&o, n, maskEmpty: m == 0, maskFull: m == nil || m == 0xff, value: { $0.appendHexAlt(k) }, mask: { $0.appendHexAlt(m ?? 0) })
    }
    private func be16(_ o: inout TextBuffer, _ n: StaticString, _ k: UInt16, _ m: UInt16?) {
        field(&o, n, maskEmpty: m == 0, maskFull: m == nil || m == 0xffff, value: { $0.appendDecimal(k) }, mask: { $0.appendHexAlt(m ?? 0) })
    }
    private func be16x(_ o: inout TextBuffer, _ n: StaticString, _ k: UInt16, _ m: UInt16?) {
        field(&o, n, maskEmpty: m == 0, maskFull: m == nil || m == 0xffff, value: { $0.appendHexAlt(k) }, mask: { $0.appendHexAlt(m ?? 0) })
    }
    private func frag(_ o: inout TextBuffer, _ k: UInt8, _ m: UInt8?) {
        let empty = m == 0, full = m == nil || m == 0xff
        if !empty && !full {
            o.append("error: partial mask not supported for frag (")
            o.appendHexAlt(m!)
            o.append("),")
        } else if !empty {
            o.append(k == 0 ? "frag=no," : k == 1 ? "frag=first," : k == 2 ? "frag=later," : "frag=<error>,")
        }
    }

    // MARK: attributes (format_odp_key_attr__)

    /// Appends the attribute's text (`type(…)`) to `o`.
    func formatAttribute(_ type: UInt16, _ k: RawPayload, _ m: RawPayload?, into o: inout TextBuffer) {
        let exact = m.map { Self.maskIsConstant(type, $0, -1) } ?? true
        o.append(string: KeyAttr.name(type))
        o.append(UInt8(ascii: "("))
        // Where the fields start: the structs' last comma is dropped (chomp).
        let start = o.count
        switch type {
        case KeyAttr.encap:
            var inner = self
            inner.depth += 1
            if let m, !m.isEmpty, !k.isEmpty {
                inner.format(key: k.bytes, mask: m.bytes, into: &o)
            } else if !k.isEmpty {
                inner.format(key: k.bytes, mask: nil, into: &o)
            }
        case KeyAttr.priority, KeyAttr.skbMark, KeyAttr.dpHash, KeyAttr.recircID:
            o.appendHexAlt(k.le32(0))
            if !exact { o.append(UInt8(ascii: "/")); o.appendHexAlt(m!.le32(0)) }
        case KeyAttr.ctMark:
            if verbose || !Self.empty(m) {
                o.appendHexAlt(k.le32(0))
                if !exact { o.append(UInt8(ascii: "/")); o.appendHexAlt(m!.le32(0)) }
            }
        case KeyAttr.ctState:
            if verbose {
                o.appendHexAlt(k.le32(0))
                if !exact { o.append(UInt8(ascii: "/")); o.appendHexAlt(Self.empty(m) ? 0 : m!.le32(0)) }
            } else if !exact {
                o.append(string: FlagNames.ctState.formatMasked(k.le32(0), mask: Self.empty(m) ? 0 : m!.le32(0), maxMask: UInt32.max))
            } else {
                o.append(string: FlagNames.ctState.format(k.le32(0)))
            }
        case KeyAttr.ctZone:
            if verbose || !Self.empty(m) {
                o.appendHexAlt(k.le16(0))
                if !exact { o.append(UInt8(ascii: "/")); o.appendHexAlt(m!.le16(0)) }
            }
        case KeyAttr.ctLabels:
            appendU128(k.le128(0), m.map { $0.le128(0) }, into: &o)
        case KeyAttr.tunnel:
            formatTunnel(k, m, into: &o)
        case KeyAttr.inPort:
            if exact {
                let p = k.le32(0)
                if let name = portNames[p] { o.append(string: name) } else { o.appendDecimal(p) }
            } else {
                o.appendDecimal(k.le32(0))
                o.append(UInt8(ascii: "/"))
                o.appendHexAlt(m!.le32(0))
            }
        case KeyAttr.packetType:
            let v = k.be32(0), mv = m?.be32(0) ?? UInt32.max
            be16(&o, "ns=", UInt16(v >> 16), UInt16(mv >> 16))
            be16x(&o, "id=", UInt16(v & 0xffff), UInt16(mv & 0xffff))
            o.chomp(after: start)
        case KeyAttr.ethernet:
            mac(&o, "src=", k.be48(0), m?.be48(0))
            mac(&o, "dst=", k.be48(6), m?.be48(6))
            o.chomp(after: start)
        case KeyAttr.vlan:
            appendVLANTCI(k.be16(0), mask: m?.be16(0) ?? 0xffff, verbose: verbose, into: &o)
        case KeyAttr.mpls:
            guard !k.isEmpty, k.count % 4 == 0 else {
                o.append("(bad key length ")
                o.appendDecimal(UInt(k.count))
                return o.append(UInt8(ascii: ")"))
            }
            for i in 0..<(k.count / 4) {
                let l = k.be32(4 * i)
                if exact || m == nil {
                    if i > 0 { o.append(UInt8(ascii: ",")) }
                    appendMPLSLSE(l, into: &o)
                } else {
                    // The same for every label: it fails at the first, before any is written.
                    guard m!.count == k.count else {
                        o.append("(key length ")
                        o.appendDecimal(UInt(k.count))
                        o.append(" != mask length ")
                        o.appendDecimal(UInt(m!.count))
                        return o.append(UInt8(ascii: ")"))
                    }
                    if i > 0 { o.append(UInt8(ascii: ",")) }
                    let mm = m!.be32(4 * i)
                    o.append("label=")
                    o.appendDecimal(l >> 12)
                    o.append("/0x")
                    o.appendHex(mm >> 12)
                    o.append(",tc=")
                    o.appendDecimal((l >> 9) & 7)
                    o.append(UInt8(ascii: "/"))
                    o.appendHex((mm >> 9) & 7)
                    o.append(",ttl=")
                    o.appendDecimal(l & 0xff)
                    o.append("/0x")
                    o.appendHex(mm & 0xff)
                    o.append(",bos=")
                    o.appendDecimal((l >> 8) & 1)
                    o.append(UInt8(ascii: "/"))
                    o.appendHex((mm >> 8) & 1)
                }
            }
        case KeyAttr.ethertype:
            o.appendHex0x4(k.be16(0))
            if !exact { o.append(UInt8(ascii: "/")); o.appendHex0x4(m!.be16(0)) }
        case KeyAttr.ipv4:
            ipv4(&o, "src=", k.be32(0), m?.be32(0))
            ipv4(&o, "dst=", k.be32(4), m?.be32(4))
            u8u(&o, "proto=", k[8], m?[8])
            u8x(&o, "tos=", k[9], m?[9])
            u8u(&o, "ttl=", k[10], m?[10])
            frag(&o, k[11], m?[11])
            o.chomp(after: start)
        case KeyAttr.ipv6:
            ipv6(&o, "src=", k.be128(0), m?.be128(0))
            ipv6(&o, "dst=", k.be128(16), m?.be128(16))
            let lm = m?.be32(32)
            if verbose || lm != 0 {
                o.append("label=")
                o.appendHexAlt(k.be32(32))
                if let lm, lm & 0xfffff != 0xfffff { o.append(UInt8(ascii: "/")); o.appendHexAlt(lm) }
                o.append(UInt8(ascii: ","))
            }
            u8u(&o, "proto=", k[36], m?[36])
            u8x(&o, "tclass=", k[37], m?[37])
            u8u(&o, "hlimit=", k[38], m?[38])
            frag(&o, k[39], m?[39])
            o.chomp(after: start)
        case KeyAttr.tcp, KeyAttr.udp, KeyAttr.sctp:
            be16(&o, "src=", k.be16(0), m?.be16(0))
            be16(&o, "dst=", k.be16(2), m?.be16(2))
            o.chomp(after: start)
        case KeyAttr.tcpFlags:
            if !exact {
                o.append(string: FlagNames.tcp.formatMasked(UInt32(k.be16(0)), mask: UInt32(m!.be16(0) & 0x0fff), maxMask: 0x0fff))
            } else {
                o.append(string: FlagNames.tcp.format(UInt32(k.be16(0))))
            }
        case KeyAttr.icmp, KeyAttr.icmpv6:
            u8u(&o, "type=", k[0], m?[0])
            u8u(&o, "code=", k[1], m?[1])
            o.chomp(after: start)
        case KeyAttr.arp:
            ipv4(&o, "sip=", k.be32(0), m?.be32(0))
            ipv4(&o, "tip=", k.be32(4), m?.be32(4))
            be16(&o, "op=", k.be16(8), m?.be16(8))
            mac(&o, "sha=", k.be48(10), m?.be48(10))
            mac(&o, "tha=", k.be48(16), m?.be48(16))
            o.chomp(after: start)
        case KeyAttr.ctOrigTupleIPv4:
            ipv4(&o, "src=", k.be32(0), m?.be32(0))
            ipv4(&o, "dst=", k.be32(4), m?.be32(4))
            u8u(&o, "proto=", k[12], m?[12])
            be16(&o, "tp_src=", k.be16(8), m?.be16(8))
            be16(&o, "tp_dst=", k.be16(10), m?.be16(10))
            o.chomp(after: start)
        case KeyAttr.ctOrigTupleIPv6:
            ipv6(&o, "src=", k.be128(0), m?.be128(0))
            ipv6(&o, "dst=", k.be128(16), m?.be128(16))
            u8u(&o, "proto=", k[36], m?[36])
            be16(&o, "src_port=", k.be16(32), m?.be16(32))
            be16(&o, "dst_port=", k.be16(34), m?.be16(34))
            o.chomp(after: start)
        case KeyAttr.nd:
            ipv6(&o, "target=", k.be128(0), m?.be128(0))
            mac(&o, "sll=", k.be48(16), m?.be48(16))
            mac(&o, "tll=", k.be48(22), m?.be48(22))
            o.chomp(after: start)
        default:
            o.appendHexBytes(k.bytes)
            if !exact, let m {
                o.append(UInt8(ascii: "/"))
                o.appendHexBytes(m.bytes)
            }
        }
        o.append(UInt8(ascii: ")"))
    }

    /// format_u128(): hex without leading zeros; the mask when not all ones.
    func appendU128(_ v: UInt128, _ m: UInt128?, into o: inout TextBuffer) {
        guard verbose || (m != nil && m != 0) else { return }
        o.appendHexAlt(v)
        if let m, m != UInt128.max {
            o.append(UInt8(ascii: "/"))
            o.appendHexAlt(m)
        }
    }

    private func formatTunnel(_ k: RawPayload, _ ma: RawPayload?, into o: inout TextBuffer) {
        guard let subs = RawAttributes(k.bytes) else { return o.append("error") }
        let start = o.count
        let masks = ma.flatMap { RawAttributes($0.bytes) }
        var flags: UInt32 = 0
        var maskFlags: UInt32 = 0
        for s in subs {
            if ma != nil, masks?.first(s.type) == nil {
                // Not in the mask: wildcarded (zeros of its shape).
                withZeros(s.count) { tunnelAttribute(s, RawPayload($0), flags: &flags, maskFlags: &maskFlags, into: &o) }
            } else {
                tunnelAttribute(s, masks?.first(s.type)?.reader, flags: &flags, maskFlags: &maskFlags, into: &o)
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
            o.append("flags(")
            if ma != nil {
                o.append(string: FlagNames.tunnel.formatMasked(flags, mask: maskFlags & 0xf, maxMask: 0xf))
            } else {
                o.append(string: FlagNames.tunnel.format(flags))
            }
            o.append("),")
        }
        o.chomp(after: start)
    }

    /// One attribute of a tunnel() key; the flags it stands for are gathered.
    private func tunnelAttribute(_ s: RawAttributes.Element, _ mv: RawPayload?, flags: inout UInt32, maskFlags: inout UInt32,
                                 into o: inout TextBuffer) {
        if let len = TunnelAttr.length(s.type), len >= 0, s.count != len || (mv.map { $0.count != len } ?? false) {
            o.append("key")
            o.appendDecimal(s.type)
            return o.append("(bad length),")
        }
        let k = s.reader
        switch s.type {
        case TunnelAttr.id:
            // format_be64(): a missing mask counts as zero here (unlike other fields).
            let mask = mv?.be64(0) ?? 0
            if verbose || mask != 0 {
                o.append("tun_id=")
                o.appendHex0x(k.be64(0))
                if mv != nil && mask != UInt64.max { o.append(UInt8(ascii: "/")); o.appendHexAlt(mask) }
                o.append(UInt8(ascii: ","))
            }
            flags |= 0x8
            if mv != nil { maskFlags |= 0x8 }
        case TunnelAttr.ipv4Src: ipv4(&o, "src=", k.be32(0), mv?.be32(0))
        case TunnelAttr.ipv4Dst: ipv4(&o, "dst=", k.be32(0), mv?.be32(0))
        case TunnelAttr.ipv6Src: ipv6(&o, "ipv6_src=", k.be128(0), mv?.be128(0))
        case TunnelAttr.ipv6Dst: ipv6(&o, "ipv6_dst=", k.be128(0), mv?.be128(0))
        case TunnelAttr.tos: u8x(&o, "tos=", k[0], mv?[0])
        case TunnelAttr.ttl: u8u(&o, "ttl=", k[0], mv?[0])
        case TunnelAttr.dontFragment: flags |= 0x2
        case TunnelAttr.csum: flags |= 0x4
        case TunnelAttr.oam: flags |= 0x1
        case TunnelAttr.tpSrc: be16(&o, "tp_src=", k.be16(0), mv?.be16(0))
        case TunnelAttr.tpDst: be16(&o, "tp_dst=", k.be16(0), mv?.be16(0))
        case TunnelAttr.pad: break
        default:
            o.append("key")
            o.appendDecimal(s.type)
            o.append(UInt8(ascii: "("))
            o.appendHexBytes(k.bytes)
            o.append("),")
        }
    }
}

/// The mask attribute of each key attribute: the first of its type, as a search from
/// the mask's start finds it, but found in one walk when the mask's attributes come in
/// the key's order, as an encoder writes them (a dump's key has a dozen attributes; a
/// search for each cost more than the rest of the line).
struct MaskCursor {
    let masks: RawAttributes
    /// Where the walk goes on: after the last attribute found.
    private var next: RawAttributes.Iterator
    /// Types (below 64) of the attributes before `next`.
    private var passed: UInt64 = 0

    init(_ masks: RawAttributes) {
        self.masks = masks
        next = masks.makeIterator()
    }

    mutating func mask(for type: UInt16) -> RawAttributes.Element? {
        let bit: UInt64 = type < 64 ? 1 << UInt64(type) : 0
        // One of its type before the walk's place: that one is the first.
        guard bit != 0, passed & bit == 0 else { return masks.first(type) }
        var walk = next
        var seen = passed
        while let m = walk.next() {
            if m.type == type {
                next = walk
                passed = seen | bit
                return m
            }
            if m.type < 64 { seen |= 1 << UInt64(m.type) }
        }
        // None after the place, none before it.
        return nil
    }
}

/// An MPLS label stack entry, unmasked.
func appendMPLSLSE(_ l: UInt32, into o: inout TextBuffer) {
    o.append("label=")
    o.appendDecimal(l >> 12)
    o.append(",tc=")
    o.appendDecimal((l >> 9) & 7)
    o.append(",ttl=")
    o.appendDecimal(l & 0xff)
    o.append(",bos=")
    o.appendDecimal((l >> 8) & 1)
}

/// format_vlan_tci().
func appendVLANTCI(_ tci: UInt16, mask: UInt16, verbose: Bool, into o: inout TextBuffer) {
    let start = o.count
    let vid = tci & 0xfff, vidMask = mask & 0xfff
    let pcp = tci >> 13, pcpMask = mask >> 13
    if verbose || vid != 0 || vidMask != 0 {
        o.append("vid=")
        o.appendDecimal(vid)
        if vidMask != 0xfff { o.append("/0x"); o.appendHex(vidMask) }
        o.append(UInt8(ascii: ","))
    }
    if verbose || pcp != 0 || pcpMask != 0 {
        o.append("pcp=")
        o.appendDecimal(pcp)
        if pcpMask != 7 { o.append("/0x"); o.appendHex(pcpMask) }
        o.append(UInt8(ascii: ","))
    }
    if tci & 0x1000 == 0 { o.append("cfi=0,") }
    o.chomp(after: start)
}

/// An all-zero payload of `count` bytes for `body` (a wildcard mask): a shared one
/// when it is small, as masks are.
func withZeros<R>(_ count: Int, _ body: (UnsafeRawBufferPointer) -> R) -> R {
    if count <= zeroBytes.count { return body(UnsafeRawBufferPointer(rebasing: zeroBytes[..<count])) }
    return withUnsafeTemporaryAllocation(byteCount: count, alignment: 1) { b in
        b.initializeMemory(as: UInt8.self, repeating: 0)
        return body(UnsafeRawBufferPointer(b))
    }
}

nonisolated(unsafe) private let zeroBytes: UnsafeRawBufferPointer = {
    let b = UnsafeMutableRawBufferPointer.allocate(byteCount: 64, alignment: 8)
    b.initializeMemory(as: UInt8.self, repeating: 0)
    return UnsafeRawBufferPointer(b)
}()
