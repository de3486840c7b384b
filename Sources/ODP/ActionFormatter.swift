#if canImport(Glibc)
import Glibc
#endif
import Netlink

/// Action attributes → text, as format_odp_actions() prints them: written as bytes
/// into a TextBuffer, as KeyFormatter writes keys (the String form wraps it).
public struct ActionFormatter: Sendable {
    public var portNames: [UInt32: String]

    public init(portNames: [UInt32: String] = [:]) { self.portNames = portNames }

    public func format(_ bytes: [UInt8]) -> String { TextBuffer.string { format(bytes[...], into: &$0) } }

    /// Appends the actions' text to `out`.
    public func format(_ bytes: ArraySlice<UInt8>, into out: inout TextBuffer) {
        bytes.withUnsafeBytes { format($0, into: &out) }
    }

    /// The same for actions read where they lie.
    public func format(_ bytes: UnsafeRawBufferPointer, into out: inout TextBuffer) { format(bytes, depth: 0, into: &out) }

    /// `depth` bounds the recursion at what the text parser accepts (KeyParser.maxNesting,
    /// OVS's MAX_ODP_NESTED); the netlink decoder stops deeper, at the kernel's 16.
    func format(_ bytes: UnsafeRawBufferPointer, depth: Int, into o: inout TextBuffer) {
        guard !bytes.isEmpty else { return o.append("drop") }
        guard depth <= KeyParser.maxNesting else { return o.append("<actions nested too deeply>") }
        guard let list = RawAttributes(bytes) else { return o.append("<malformed actions>") }
        for (i, a) in list.enumerated() {
            if i > 0 { o.append(UInt8(ascii: ",")) }
            formatAction(a, depth: depth, into: &o)
        }
    }

    private func port(_ p: UInt32, into o: inout TextBuffer) {
        if let name = portNames[p] { o.append(string: name) } else { o.appendDecimal(p) }
    }

    static func expectedLength(_ type: UInt16) -> Int? {
        switch type {
        case ActionAttr.output, ActionAttr.recirc, ActionAttr.trunc, ActionAttr.meter, ActionAttr.tunnelPop,
             ActionAttr.lbOutput, ActionAttr.drop: 4
        case ActionAttr.pushVLAN: 4
        case ActionAttr.popVLAN, ActionAttr.popEth, ActionAttr.ctClear, ActionAttr.popNSH: 0
        case ActionAttr.hash: 8
        case ActionAttr.pushMPLS: 6
        case ActionAttr.popMPLS: 2
        case ActionAttr.pushEth: 12
        case ActionAttr.addMPLS: 8
        default: nil
        }
    }

    func formatAction(_ a: RawAttributes.Element, depth: Int, into o: inout TextBuffer) {
        let p = a.reader
        if let len = Self.expectedLength(a.type), p.count != len {
            o.append("bad length ")
            o.appendDecimal(UInt(p.count))
            o.append(", expected ")
            o.appendDecimal(UInt(len))
            o.append(" for: ")
            return generic(a, into: &o)
        }
        switch a.type {
        case ActionAttr.meter: number("meter(", p.le32(0), into: &o)
        case ActionAttr.output: port(p.le32(0), into: &o)
        case ActionAttr.lbOutput: number("lb_output(", p.le32(0), into: &o)
        case ActionAttr.trunc: number("trunc(", p.le32(0), into: &o)
        case ActionAttr.tunnelPop:
            o.append("tnl_pop(")
            port(p.le32(0), into: &o)
            o.append(UInt8(ascii: ")"))
        case ActionAttr.userspace: formatUserspace(a, into: &o)
        case ActionAttr.recirc:
            o.append("recirc(")
            o.appendHexAlt(p.le32(0))
            o.append(UInt8(ascii: ")"))
        case ActionAttr.hash:
            let alg = p.le32(0), basis = p.le32(4)
            switch alg {
            case HashAlgorithm.l4: number("hash(l4(", basis, into: &o)
            case HashAlgorithm.symL4: number("hash(sym_l4(", basis, into: &o)
            default: number("hash(Unknown hash algorithm(", alg, into: &o)
            }
            o.append(UInt8(ascii: ")"))
        case ActionAttr.setMasked:
            guard let inner = Self.firstNested(a) else { return generic(a, into: &o) }
            let size = inner.count / 2
            o.append("set(")
            if size <= 40 {
                let k = RawPayload(UnsafeRawBufferPointer(rebasing: inner.payload.prefix(size)))
                let m = RawPayload(UnsafeRawBufferPointer(rebasing: inner.payload.dropFirst(size)))
                formatKeyAttribute(inner.type, k, m, verbose: false, into: &o)
            } else {
                formatKeyAttribute(inner.type, inner.reader, nil, verbose: false, into: &o)
            }
            o.append(UInt8(ascii: ")"))
        case ActionAttr.set:
            guard let inner = Self.firstNested(a) else { return o.append("set()") }
            o.append("set(")
            formatKeyAttribute(inner.type, inner.reader, nil, verbose: true, into: &o)
            o.append(UInt8(ascii: ")"))
        case ActionAttr.pushEth:
            o.append("push_eth(src=")
            o.appendMAC(p.be48(0))
            o.append(",dst=")
            o.appendMAC(p.be48(6))
            o.append(UInt8(ascii: ")"))
        case ActionAttr.popEth: o.append("pop_eth")
        case ActionAttr.pushVLAN:
            o.append("push_vlan(")
            let tpid = p.be16(0)
            if tpid != 0x8100 {
                o.append("tpid=")
                o.appendHex0x4(tpid)
                o.append(UInt8(ascii: ","))
            }
            appendVLANTCI(p.be16(2), mask: 0xffff, verbose: false, into: &o)
            o.append(UInt8(ascii: ")"))
        case ActionAttr.popVLAN: o.append("pop_vlan")
        case ActionAttr.pushMPLS, ActionAttr.addMPLS:
            o.append(a.type == ActionAttr.pushMPLS ? "push_mpls(" : "add_mpls(")
            appendMPLSLSE(p.be32(0), into: &o)
            o.append(",eth_type=0x")
            o.appendHex(p.be16(4))
            o.append(UInt8(ascii: ")"))
        case ActionAttr.popMPLS:
            o.append("pop_mpls(eth_type=0x")
            o.appendHex(p.be16(0))
            o.append(UInt8(ascii: ")"))
        case ActionAttr.sample:
            guard let subs = RawAttributes(p.bytes),
                  let prob = subs.first(SampleAttr.probability), prob.count == 4,
                  let acts = subs.first(SampleAttr.actions) else { return o.append("sample(error)") }
            let pct = 100.0 * Double(prob.reader.le32(0)) / Double(UInt32.max)
            o.append("sample(sample=")
            appendPercent(pct, into: &o)
            o.append("%,actions(")
            format(acts.payload, depth: depth + 1, into: &o)
            o.append("))")
        case ActionAttr.ct: formatCT(a, into: &o)
        case ActionAttr.ctClear: o.append("ct_clear")
        case ActionAttr.clone:
            o.append("clone(")
            format(p.bytes, depth: depth + 1, into: &o)
            o.append(UInt8(ascii: ")"))
        case ActionAttr.popNSH: o.append("pop_nsh()")
        case ActionAttr.checkPktLen:
            guard let subs = RawAttributes(p.bytes),
                  let len = subs.first(CheckPktLenAttr.pktLen), len.count == 2,
                  let gt = subs.first(CheckPktLenAttr.actionsIfGreater),
                  let le = subs.first(CheckPktLenAttr.actionsIfLessEqual) else { return o.append("check_pkt_len(error)") }
            o.append("check_pkt_len(size=")
            o.appendDecimal(len.reader.le16(0))
            o.append(",gt(")
            format(gt.payload, depth: depth + 1, into: &o)
            o.append("),le(")
            format(le.payload, depth: depth + 1, into: &o)
            o.append("))")
        case ActionAttr.drop: o.append("drop")
        default: generic(a, into: &o)
        }
    }

    /// `prefix`, the number, and `)`.
    private func number(_ prefix: StaticString, _ v: UInt32, into o: inout TextBuffer) {
        o.append(prefix)
        o.appendDecimal(v)
        o.append(UInt8(ascii: ")"))
    }

    /// The first attribute nested in `a`; nil if there is none or they do not parse.
    private static func firstNested(_ a: RawAttributes.Element) -> RawAttributes.Element? {
        RawAttributes(a.payload)?.first { _ in true }
    }

    private func generic(_ a: RawAttributes.Element, into o: inout TextBuffer) {
        o.append("action")
        o.appendDecimal(a.type)
        guard a.count > 0 else { return }
        o.append(UInt8(ascii: "("))
        o.appendHexBytes(a.payload, separator: UInt8(ascii: " "))
        o.append(UInt8(ascii: ")"))
    }

    /// A key attribute inside set(): length-checked, then formatted.
    private func formatKeyAttribute(_ type: UInt16, _ k: RawPayload, _ m: RawPayload?, verbose: Bool, into o: inout TextBuffer) {
        if let len = KeyAttr.length(type), len >= 0, k.count != len || (m.map { $0.count != len } ?? false) {
            o.append(string: KeyAttr.name(type))
            o.append("(bad length ")
            o.appendDecimal(UInt(k.count))
            o.append(", expected ")
            o.appendDecimal(UInt(len))
            return o.append(UInt8(ascii: ")"))
        }
        KeyFormatter(verbose: verbose, portNames: portNames).formatAttribute(type, k, m, into: &o)
    }

    /// C's `%.1f`, exactly (same rounding of the binary value).
    private func appendPercent(_ v: Double, into o: inout TextBuffer) {
        withUnsafeTemporaryAllocation(of: CChar.self, capacity: 64) { buf in
            let n = withVaList([v]) { vsnprintf(buf.baseAddress!, 64, "%.1f", $0) }
            o.append(UnsafeRawBufferPointer(start: buf.baseAddress!, count: min(Int(n), 63)))
        }
    }

    private func formatUserspace(_ a: RawAttributes.Element, into o: inout TextBuffer) {
        guard let subs = RawAttributes(a.payload), let pidA = subs.first(UserspaceAttr.pid), pidA.count == 4 else {
            return o.append("userspace(error)")
        }
        o.append("userspace(pid=")
        o.appendDecimal(pidA.reader.le32(0))
        if let ud = subs.first(UserspaceAttr.userdata) {
            let d = ud.reader
            var plain = true
            if d.count == 48 {
                plain = false
                switch d.le16(0) {
                case 1:
                    let tci = d.be16(24)
                    o.append(",sFlow(vid=")
                    o.appendDecimal(tci & 0xfff)
                    o.append(",pcp=")
                    o.appendDecimal(tci >> 13)
                    o.append(",output=")
                    o.appendDecimal(d.le32(28))
                    o.append(UInt8(ascii: ")"))
                case 2:
                    o.append(",slow_path(")
                    o.append(string: FlagNames.slowPath.format(d.le32(28), delimiter: ","))
                    o.append(UInt8(ascii: ")"))
                case 3:
                    o.append(",flow_sample(probability=")
                    o.appendDecimal(d.le16(24))
                    o.append(",collector_set_id=")
                    o.appendDecimal(d.le32(28))
                    o.append(",obs_domain_id=")
                    o.appendDecimal(d.le32(32))
                    o.append(",obs_point_id=")
                    o.appendDecimal(d.le32(36))
                    o.append(",output_port=")
                    port(d.le32(40), into: &o)
                    let dir = d.le32(44)
                    if dir == 1 { o.append(",ingress") } else if dir == 2 { o.append(",egress") }
                    o.append(UInt8(ascii: ")"))
                case 4:
                    o.append(",ipfix(output_port=")
                    port(d.le32(24), into: &o)
                    o.append(UInt8(ascii: ")"))
                case 5:
                    o.append(",controller(reason=")
                    o.appendDecimal(d.le16(26))
                    o.append(d[24] != 0 ? ",dont_send=1" : ",dont_send=0")
                    o.append(d[25] != 0 ? ",continuation=1" : ",continuation=0")
                    o.append(",recirc_id=")
                    o.appendDecimal(d.le32(28))
                    o.append(",rule_cookie=")
                    o.appendHexAlt(d.be64(32))
                    o.append(",controller_id=")
                    o.appendDecimal(d.le16(40))
                    o.append(",max_len=")
                    o.appendDecimal(d.le16(42))
                    o.append(UInt8(ascii: ")"))
                default:
                    plain = true
                }
            }
            if plain {
                o.append(",userdata(")
                o.appendHexBytes(d.bytes)
                o.append(UInt8(ascii: ")"))
            }
        }
        if subs.first(UserspaceAttr.actions) != nil { o.append(",actions") }
        if let t = subs.first(UserspaceAttr.egressTunnelPort), t.count == 4 {
            o.append(",tunnel_out_port=")
            port(t.reader.le32(0), into: &o)
        }
        o.append(UInt8(ascii: ")"))
    }

    /// A ct() or nat() argument: a comma before all but the first.
    private static func separate(_ o: inout TextBuffer, _ first: inout Bool) {
        if !first { o.append(UInt8(ascii: ",")) }
        first = false
    }

    /// A NUL-terminated name (a helper's, a timeout policy's) as a String decodes it.
    private static func name(_ p: RawPayload) -> String {
        String(decoding: p.bytes.prefix { $0 != 0 }, as: UTF8.self)
    }

    private func formatCT(_ a: RawAttributes.Element, into o: inout TextBuffer) {
        guard let subs = RawAttributes(a.payload) else { return o.append("ct(error)") }
        func find(_ t: UInt16) -> RawPayload? { subs.first(t)?.reader }
        let commit = find(CTAttr.commit) != nil, force = find(CTAttr.forceCommit) != nil
        let zone = find(CTAttr.zone).map { $0.count == 2 ? $0.le16(0) : 0 } ?? 0
        let mark = find(CTAttr.mark), label = find(CTAttr.labels)
        let helper = find(CTAttr.helper).map(Self.name)
        let timeout = find(CTAttr.timeout).map(Self.name)
        let nat = subs.first(CTAttr.nat)
        o.append("ct")
        guard commit || force || zone != 0 || mark != nil || label != nil || helper != nil || timeout != nil || nat != nil else { return }
        o.append(UInt8(ascii: "("))
        var first = true
        if commit { Self.separate(&o, &first); o.append("commit") }
        if force { Self.separate(&o, &first); o.append("force_commit") }
        if zone != 0 {
            Self.separate(&o, &first)
            o.append("zone=")
            o.appendDecimal(zone)
        }
        if let mark, mark.count >= 8 {
            Self.separate(&o, &first)
            o.append("mark=")
            o.appendHexAlt(mark.le32(0))
            o.append(UInt8(ascii: "/"))
            o.appendHexAlt(mark.le32(4))
        }
        if let label, label.count >= 32 {
            Self.separate(&o, &first)
            o.append("label=")
            KeyFormatter(verbose: true).appendU128(label.le128(0), label.le128(16), into: &o)
        }
        if let helper {
            Self.separate(&o, &first)
            o.append("helper=")
            o.append(string: helper)
        }
        if let timeout {
            Self.separate(&o, &first)
            o.append("timeout=")
            o.append(string: timeout)
        }
        if let nat {
            Self.separate(&o, &first)
            formatNAT(nat, into: &o)
        }
        o.append(UInt8(ascii: ")"))
    }

    private func formatNAT(_ a: RawAttributes.Element, into o: inout TextBuffer) {
        guard let subs = RawAttributes(a.payload) else { return o.append("nat(error)") }
        func find(_ t: UInt16) -> RawPayload? { subs.first(t)?.reader }
        let src = find(NATAttr.src) != nil, dst = find(NATAttr.dst) != nil
        guard src || dst else { return o.append("nat") }
        o.append(src ? "nat(src" : "nat(dst")
        let ipMin = find(NATAttr.ipMin), ipMax = find(NATAttr.ipMax)
        // Lengths are not validated on this path (a reply, or bytes from a file): check them.
        let pMin = find(NATAttr.protoMin).flatMap { $0.count >= 2 ? $0.le16(0) : nil } ?? 0
        let pMax = find(NATAttr.protoMax).flatMap { $0.count >= 2 ? $0.le16(0) : nil } ?? 0
        if let ipMin {
            o.append(UInt8(ascii: "="))
            if ipMin.count == 4 {
                o.appendIPv4(ipMin.be32(0))
                if let ipMax, ipMax.count == 4, ipMax.be32(0) != 0, ipMax.be32(0) != ipMin.be32(0) {
                    o.append(UInt8(ascii: "-"))
                    o.appendIPv4(ipMax.be32(0))
                }
            } else if ipMin.count == 16 {
                // In brackets when a port follows.
                let bracket = pMin != 0
                func v6(_ x: UInt128, _ o: inout TextBuffer) {
                    if bracket { o.append(UInt8(ascii: "[")) }
                    o.appendIPv6(x)
                    if bracket { o.append(UInt8(ascii: "]")) }
                }
                v6(ipMin.be128(0), &o)
                if let ipMax, ipMax.count == 16, ipMax.be128(0) != 0, ipMax.be128(0) != ipMin.be128(0) {
                    o.append(UInt8(ascii: "-"))
                    v6(ipMax.be128(0), &o)
                }
            }
            if pMin != 0 {
                o.append(UInt8(ascii: ":"))
                o.appendDecimal(pMin)
                if pMax != 0 && pMax != pMin {
                    o.append(UInt8(ascii: "-"))
                    o.appendDecimal(pMax)
                }
            }
        }
        if find(NATAttr.persistent) != nil { o.append(",persistent") }
        if find(NATAttr.protoHash) != nil { o.append(",hash") }
        if find(NATAttr.protoRandom) != nil { o.append(",random") }
        o.append(UInt8(ascii: ")"))
    }
}
