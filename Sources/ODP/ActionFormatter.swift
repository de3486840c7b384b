#if canImport(Glibc)
import Glibc
#endif
import Netlink

/// Action attributes → text, as format_odp_actions() prints them.
public struct ActionFormatter: Sendable {
    public var portNames: [UInt32: String]

    public init(portNames: [UInt32: String] = [:]) { self.portNames = portNames }

    public func format(_ bytes: [UInt8]) -> String { format(bytes, depth: 0) }

    /// `depth` bounds the recursion at what the text parser accepts (KeyParser.maxNesting,
    /// OVS's MAX_ODP_NESTED); the netlink decoder stops deeper, at the kernel's 16.
    func format(_ bytes: [UInt8], depth: Int) -> String {
        guard !bytes.isEmpty else { return "drop" }
        guard depth <= KeyParser.maxNesting else { return "<actions nested too deeply>" }
        guard let list = try? AttributeParser.parse(bytes) else { return "<malformed actions>" }
        return list.map { formatAction($0, depth: depth) }.joined(separator: ",")
    }

    private func port(_ p: UInt32) -> String { portNames[p] ?? String(p) }

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

    func formatAction(_ a: Attribute, depth: Int) -> String {
        let p = Array(a.payload)
        if let len = Self.expectedLength(a.type), p.count != len {
            return "bad length \(p.count), expected \(len) for: " + generic(a)
        }
        switch a.type {
        case ActionAttr.meter: return "meter(\(p.le32(0)))"
        case ActionAttr.output: return port(p.le32(0))
        case ActionAttr.lbOutput: return "lb_output(\(p.le32(0)))"
        case ActionAttr.trunc: return "trunc(\(p.le32(0)))"
        case ActionAttr.tunnelPop: return "tnl_pop(\(port(p.le32(0))))"
        case ActionAttr.userspace: return formatUserspace(a)
        case ActionAttr.recirc: return "recirc(\(hexAlt(p.le32(0))))"
        case ActionAttr.hash:
            let alg = p.le32(0), basis = p.le32(4)
            switch alg {
            case HashAlgorithm.l4: return "hash(l4(\(basis)))"
            case HashAlgorithm.symL4: return "hash(sym_l4(\(basis)))"
            default: return "hash(Unknown hash algorithm(\(alg)))"
            }
        case ActionAttr.setMasked:
            guard let inner = try? a.nestedAttributes().first else { return generic(a) }
            let size = inner.count / 2
            var o = "set("
            if size <= 40 {
                let k = Attribute(type: inner.type, payload: inner.payload.prefix(size))
                let m = Attribute(type: inner.type, payload: inner.payload.dropFirst(size))
                o += formatKeyAttribute(k, m, verbose: false)
            } else {
                o += formatKeyAttribute(inner, nil, verbose: false)
            }
            return o + ")"
        case ActionAttr.set:
            guard let inner = try? a.nestedAttributes().first else { return "set()" }
            return "set(" + formatKeyAttribute(inner, nil, verbose: true) + ")"
        case ActionAttr.pushEth:
            return "push_eth(src=\(formatMAC(p.be48(0))),dst=\(formatMAC(p.be48(6))))"
        case ActionAttr.popEth: return "pop_eth"
        case ActionAttr.pushVLAN:
            var o = "push_vlan("
            let tpid = p.be16(0)
            if tpid != 0x8100 { o += "tpid=\(hex0x4(tpid))," }
            o += formatVLANTCI(p.be16(2), mask: 0xffff, verbose: false)
            return o + ")"
        case ActionAttr.popVLAN: return "pop_vlan"
        case ActionAttr.pushMPLS:
            return "push_mpls(\(KeyFormatter.mplsLSE(p.be32(0))),eth_type=0x\(String(p.be16(4), radix: 16)))"
        case ActionAttr.popMPLS: return "pop_mpls(eth_type=0x\(String(p.be16(0), radix: 16)))"
        case ActionAttr.addMPLS:
            return "add_mpls(\(KeyFormatter.mplsLSE(p.be32(0))),eth_type=0x\(String(p.be16(4), radix: 16)))"
        case ActionAttr.sample:
            guard let subs = try? a.nestedAttributes(),
                  let prob = subs.first(where: { $0.type == SampleAttr.probability }), prob.count == 4,
                  let acts = subs.first(where: { $0.type == SampleAttr.actions }) else { return "sample(error)" }
            let pct = 100.0 * Double(Array(prob.payload).le32(0)) / Double(UInt32.max)
            return "sample(sample=\(formatPercent(pct))%,actions(\(format(Array(acts.payload), depth: depth + 1))))"
        case ActionAttr.ct: return formatCT(a)
        case ActionAttr.ctClear: return "ct_clear"
        case ActionAttr.clone: return "clone(\(format(p, depth: depth + 1)))"
        case ActionAttr.popNSH: return "pop_nsh()"
        case ActionAttr.checkPktLen:
            guard let subs = try? a.nestedAttributes(),
                  let len = subs.first(where: { $0.type == CheckPktLenAttr.pktLen }), len.count == 2,
                  let gt = subs.first(where: { $0.type == CheckPktLenAttr.actionsIfGreater }),
                  let le = subs.first(where: { $0.type == CheckPktLenAttr.actionsIfLessEqual }) else { return "check_pkt_len(error)" }
            return "check_pkt_len(size=\(Array(len.payload).le16(0)),gt(\(format(Array(gt.payload), depth: depth + 1))),le(\(format(Array(le.payload), depth: depth + 1))))"
        case ActionAttr.drop: return "drop"
        default: return generic(a)
        }
    }

    private func generic(_ a: Attribute) -> String {
        var o = "action\(a.type)"
        if a.count > 0 { o += "(" + a.payload.map { String(format2: $0) }.joined(separator: " ") + ")" }
        return o
    }

    /// A key attribute inside set(): length-checked, then formatted.
    private func formatKeyAttribute(_ a: Attribute, _ m: Attribute?, verbose: Bool) -> String {
        if let len = KeyAttr.length(a.type), len >= 0, a.count != len || (m.map { $0.count != len } ?? false) {
            return KeyAttr.name(a.type) + "(bad length \(a.count), expected \(len))"
        }
        return KeyFormatter(verbose: verbose, portNames: portNames).formatAttribute(a, m)
    }

    /// C's `%.1f`, exactly (same rounding of the binary value).
    private func formatPercent(_ v: Double) -> String {
        var buf = [CChar](repeating: 0, count: 64)
        _ = withVaList([v]) { vsnprintf(&buf, 64, "%.1f", $0) }
        return String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    private func formatUserspace(_ a: Attribute) -> String {
        guard let subs = try? a.nestedAttributes(), let pidA = subs.first(where: { $0.type == UserspaceAttr.pid }), pidA.count == 4 else {
            return "userspace(error)"
        }
        var o = "userspace(pid=\(Array(pidA.payload).le32(0))"
        if let ud = subs.first(where: { $0.type == UserspaceAttr.userdata }) {
            let d = Array(ud.payload)
            var plain = true
            if d.count == 48 {
                plain = false
                let type = d.le16(0)
                switch type {
                case 1:
                    let tci = d.be16(24)
                    o += ",sFlow(vid=\(tci & 0xfff),pcp=\(tci >> 13),output=\(d.le32(28)))"
                case 2:
                    o += ",slow_path(" + FlagNames.slowPath.format(d.le32(28), delimiter: ",") + ")"
                case 3:
                    o += ",flow_sample(probability=\(d.le16(24)),collector_set_id=\(d.le32(28)),obs_domain_id=\(d.le32(32)),obs_point_id=\(d.le32(36)),output_port=\(port(d.le32(40)))"
                    let dir = d.le32(44)
                    if dir == 1 { o += ",ingress" } else if dir == 2 { o += ",egress" }
                    o += ")"
                case 4:
                    o += ",ipfix(output_port=\(port(d.le32(24))))"
                case 5:
                    o += ",controller(reason=\(d.le16(26)),dont_send=\(d[24] != 0 ? 1 : 0),continuation=\(d[25] != 0 ? 1 : 0),recirc_id=\(d.le32(28)),rule_cookie=\(hexAlt(d.be64(32))),controller_id=\(d.le16(40)),max_len=\(d.le16(42)))"
                default:
                    plain = true
                }
            }
            if plain { o += ",userdata(" + d.map { String(format2: $0) }.joined() + ")" }
        }
        if subs.contains(where: { $0.type == UserspaceAttr.actions }) { o += ",actions" }
        if let t = subs.first(where: { $0.type == UserspaceAttr.egressTunnelPort }), t.count == 4 {
            o += ",tunnel_out_port=\(port(Array(t.payload).le32(0)))"
        }
        return o + ")"
    }

    private func formatCT(_ a: Attribute) -> String {
        guard let subs = try? a.nestedAttributes() else { return "ct(error)" }
        func find(_ t: UInt16) -> [UInt8]? { subs.first { $0.type == t }.map { Array($0.payload) } }
        let commit = find(CTAttr.commit) != nil, force = find(CTAttr.forceCommit) != nil
        let zone = find(CTAttr.zone).map { $0.count == 2 ? $0.le16(0) : 0 } ?? 0
        let mark = find(CTAttr.mark), label = find(CTAttr.labels)
        let helper = find(CTAttr.helper).map { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        let timeout = find(CTAttr.timeout).map { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        let nat = subs.first { $0.type == CTAttr.nat }
        var o = "ct"
        guard commit || force || zone != 0 || mark != nil || label != nil || helper != nil || timeout != nil || nat != nil else { return o }
        var parts: [String] = []
        if commit { parts.append("commit") }
        if force { parts.append("force_commit") }
        if zone != 0 { parts.append("zone=\(zone)") }
        if let mark, mark.count >= 8 { parts.append("mark=\(hexAlt(mark.le32(0)))/\(hexAlt(mark.le32(4)))") }
        if let label, label.count >= 32 {
            parts.append("label=" + KeyFormatter(verbose: true).formatU128(label.le128(0), label.le128(16)))
        }
        if let helper { parts.append("helper=\(helper)") }
        if let timeout { parts.append("timeout=\(timeout)") }
        if let nat { parts.append(formatNAT(nat)) }
        o += "(" + parts.joined(separator: ",") + ")"
        return o
    }

    private func formatNAT(_ a: Attribute) -> String {
        guard let subs = try? a.nestedAttributes() else { return "nat(error)" }
        func find(_ t: UInt16) -> [UInt8]? { subs.first { $0.type == t }.map { Array($0.payload) } }
        let src = find(NATAttr.src) != nil, dst = find(NATAttr.dst) != nil
        guard src || dst else { return "nat" }
        var o = "nat(" + (src ? "src" : "dst")
        let ipMin = find(NATAttr.ipMin), ipMax = find(NATAttr.ipMax)
        // Lengths are not validated on this path (a reply, or bytes from a file): check them.
        let pMin = find(NATAttr.protoMin).flatMap { $0.count >= 2 ? $0.le16(0) : nil } ?? 0
        let pMax = find(NATAttr.protoMax).flatMap { $0.count >= 2 ? $0.le16(0) : nil } ?? 0
        if let ipMin {
            o += "="
            if ipMin.count == 4 {
                o += formatIPv4(ipMin.be32(0))
                if let ipMax, ipMax.count == 4, ipMax.be32(0) != 0, ipMax.be32(0) != ipMin.be32(0) { o += "-" + formatIPv4(ipMax.be32(0)) }
            } else if ipMin.count == 16 {
                let bracket = pMin != 0
                func v6(_ x: UInt128) -> String { bracket ? "[" + formatIPv6(x) + "]" : formatIPv6(x) }
                o += v6(ipMin.be128(0))
                if let ipMax, ipMax.count == 16, ipMax.be128(0) != 0, ipMax.be128(0) != ipMin.be128(0) { o += "-" + v6(ipMax.be128(0)) }
            }
            if pMin != 0 {
                o += ":\(pMin)"
                if pMax != 0 && pMax != pMin { o += "-\(pMax)" }
            }
        }
        if find(NATAttr.persistent) != nil { o += ",persistent" }
        if find(NATAttr.protoHash) != nil { o += ",hash" }
        if find(NATAttr.protoRandom) != nil { o += ",random" }
        return o + ")"
    }
}
