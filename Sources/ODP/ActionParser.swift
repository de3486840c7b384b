import Netlink

#if canImport(Glibc)
import Glibc
#endif

/// Text → action attributes, as odp_actions_from_string() parses them.
///
/// Beyond Open vSwitch 3.1's parser, the forms OVS prints but cannot read back are
/// accepted too (`push_mpls(…)`, `pop_mpls(…)`, `hash(l4(N))`, `push_eth(…)`,
/// `pop_eth`), so that every printed action parses.
struct ActionParser {
    let sc: Scan
    var depth = 0
    var failure: (Int, String)?

    init(_ text: String) { sc = Scan(text) }
    init(scan: Scan) { sc = scan }

    mutating func fail(_ i: Int, _ why: String) -> Int? {
        if failure == nil || failure!.0 <= i { failure = (i, why) }
        return nil
    }

    /// A whole action list. `drop` alone (any case) is the explicit drop action.
    mutating func parseAll(into out: inout AttributeWriter) throws(ODPError) {
        let text = String(decoding: sc.s, as: UTF8.self)
        if text.lowercased() == "drop" {
            out.putU32(ActionAttr.drop, 0)
            return
        }
        var i = 0
        while true {
            i = sc.skipDelimiters(i)
            if i >= sc.count { return }
            let start = i
            guard let e = parseAction(at: i, into: &out) else {
                let (pos, why) = failure ?? (start, "syntax error")
                throw ODPError(position: pos, why, context: String(decoding: sc.s[start...], as: UTF8.self))
            }
            if e < sc.count && !Scan.isDelimiter(sc[e]) {
                throw ODPError(position: e, "unexpected \"\(Character(UnicodeScalar(sc[e])))\" after an action",
                               context: String(decoding: sc.s[start...], as: UTF8.self))
            }
            i = e
        }
    }

    mutating func parseList(at start: Int, into out: inout AttributeWriter) -> Int? {
        var n = start
        while true {
            n = sc.skipDelimiters(n)
            if sc[n] == 41 { return n }
            if n >= sc.count { return fail(n, "missing \")\"") }
            guard let e = parseAction(at: n, into: &out) else { return nil }
            n = e
        }
    }

    mutating func parseAction(at i: Int, into out: inout AttributeWriter) -> Int? {
        depth += 1
        defer { depth -= 1 }
        if depth == KeyParser.maxNesting { return fail(i, "actions nested too deeply") }
        return parseAction__(at: i, into: &out)
    }

    /// `NAME(%<conv>)` helper: returns (value, index after ")").
    func call(_ name: String, at i: Int, base: Int) -> (UInt64, Int)? {
        guard sc.hasPrefix(string: name, at: i), let (v, e) = sc.integer(i + name.utf8.count, base: base), sc[e] == 41 else { return nil }
        return (v, e + 1)
    }

    private mutating func parseAction__(at i: Int, into out: inout AttributeWriter) -> Int? {
        // Output port: a bare number.
        if let (v, e) = sc.integer(i) {
            out.putU32(ActionAttr.output, UInt32(truncatingIfNeeded: v))
            return e
        }
        if let (v, e) = call("lb_output(", at: i, base: 10) {
            out.putU32(ActionAttr.lbOutput, UInt32(truncatingIfNeeded: v))
            return e
        }
        if let (v, e) = call("trunc(", at: i, base: 0) {
            out.putU32(ActionAttr.trunc, UInt32(truncatingIfNeeded: v))
            return e
        }
        if let (v, e) = call("recirc(", at: i, base: 10) {
            out.putU32(ActionAttr.recirc, UInt32(truncatingIfNeeded: v))
            return e
        }
        if sc.hasPrefix("userspace(", at: i) { return parseUserspace(at: i, into: &out) }
        if sc.hasPrefix("set(", at: i) { return parseSet(at: i, into: &out) }
        if sc.hasPrefix("push_vlan(", at: i) { return parsePushVLAN(at: i, into: &out) }
        if sc.hasPrefix("pop_vlan", at: i) {
            out.putFlag(ActionAttr.popVLAN)
            return i + 8
        }
        if sc.hasPrefix("meter(", at: i), let (v, e) = sc.integer(i + 6), sc[e] == 41 {
            out.putU32(ActionAttr.meter, UInt32(truncatingIfNeeded: v))
            return e + 1
        }
        if sc.hasPrefix("sample(sample=", at: i) { return parseSample(at: i, into: &out) }
        if sc.hasPrefix("clone(", at: i) {
            var inner = AttributeWriter()
            guard let e = parseList(at: i + 6, into: &inner) else { return nil }
            out.put(ActionAttr.clone, inner.bytes)
            return e + 1
        }
        if sc.hasPrefix("push_nsh(", at: i) || sc.hasPrefix("pop_nsh()", at: i) {
            return fail(i, "NSH actions are not supported by esw")
        }
        if let (v, e) = call("tnl_pop(", at: i, base: 0) {
            out.putU32(ActionAttr.tunnelPop, UInt32(truncatingIfNeeded: v))
            return e
        }
        if sc.hasPrefix("ct_clear", at: i) {
            out.putFlag(ActionAttr.ctClear)
            return i + 8
        }
        if sc.hasPrefix("check_pkt_len(size=", at: i) { return parseCheckPktLen(at: i, into: &out) }
        if sc.hasPrefix("ct", at: i) { return parseCT(at: i, into: &out) }
        if sc.hasPrefix("add_mpls(", at: i) { return parseMPLSPush(at: i, prefix: "add_mpls(", attr: ActionAttr.addMPLS, into: &out) }
        if sc.hasPrefix("tnl_push(", at: i) { return fail(i, "tnl_push is a userspace-datapath action; esw uses a vxlan vport") }
        // Forms Open vSwitch prints but its parser rejects.
        if sc.hasPrefix("push_mpls(", at: i) { return parseMPLSPush(at: i, prefix: "push_mpls(", attr: ActionAttr.pushMPLS, into: &out) }
        if sc.hasPrefix("pop_mpls(eth_type=", at: i), let (v, e) = sc.integer(i + 18, base: 16), sc[e] == 41 {
            out.putBE16(ActionAttr.popMPLS, UInt16(truncatingIfNeeded: v))
            return e + 1
        }
        if sc.hasPrefix("hash(", at: i) {
            for (name, alg) in [("l4(", HashAlgorithm.l4), ("sym_l4(", HashAlgorithm.symL4)] where sc.hasPrefix(string: name, at: i + 5) {
                let j = i + 5 + name.utf8.count
                guard let (v, e) = sc.integer(j, base: 10), sc[e] == 41, sc[e + 1] == 41 else { return fail(j, "expected hash(l4(N))") }
                var p = [UInt8](repeating: 0, count: 8)
                p.setLE32(0, alg)
                p.setLE32(4, UInt32(truncatingIfNeeded: v))
                out.put(ActionAttr.hash, p)
                return e + 2
            }
            return fail(i + 5, "expected l4(N) or sym_l4(N)")
        }
        if sc.hasPrefix("push_eth(src=", at: i) {
            guard let (src, e1) = sc.mac(i + 13), sc.hasPrefix(",dst=", at: e1), let (dst, e2) = sc.mac(e1 + 5) else {
                return fail(i, "expected push_eth(src=MAC,dst=MAC)")
            }
            var e = e2
            if sc.hasPrefix(",type=", at: e) {
                guard let (_, te) = sc.integer(e + 6) else { return fail(e + 6, "expected a number") }
                e = te
            }
            guard sc[e] == 41 else { return fail(e, "expected \")\"") }
            var p = [UInt8](repeating: 0, count: 12)
            p.setBE48(0, src)
            p.setBE48(6, dst)
            out.put(ActionAttr.pushEth, p)
            return e + 1
        }
        if sc.hasPrefix("pop_eth", at: i) {
            out.putFlag(ActionAttr.popEth)
            return i + 7
        }
        return fail(i, "unknown action")
    }

    // MARK: set(…)

    private mutating func parseSet(at i: Int, into out: inout AttributeWriter) -> Int? {
        var kp = KeyParser(String(decoding: sc.s, as: UTF8.self))
        kp.depth = depth
        var key = AttributeWriter(), mask = AttributeWriter()
        guard let e = kp.parseAttribute(at: i + 4, key: &key, mask: &mask) else {
            let (pos, why) = kp.failure ?? (i + 4, "malformed key attribute")
            return fail(pos, why)
        }
        guard sc[e] == 41 else { return fail(e, "expected \")\" after set(…)") }
        guard let k = try? AttributeParser.parse(key.bytes).first, let m = try? AttributeParser.parse(mask.bytes).first else {
            return fail(i, "malformed set")
        }
        // Change to a masked set unless the mask is all ones (byte for byte, as OVS does).
        if m.count == k.count && !m.payload.allSatisfy({ $0 == 0xff }) {
            out.nested(ActionAttr.setMasked) { w in w.put(k.type, Array(k.payload) + Array(m.payload)) }
        } else {
            out.nested(ActionAttr.set) { w in w.append(raw: key.bytes) }
        }
        return e + 1
    }

    // MARK: push_vlan

    private mutating func parsePushVLAN(at i: Int, into out: inout AttributeWriter) -> Int? {
        // Exactly the four field orders OVS accepts.
        let forms: [[String]] = [["vid=", "pcp="], ["vid=", "pcp=", "cfi="], ["tpid=", "vid=", "pcp="], ["tpid=", "vid=", "pcp=", "cfi="]]
        for form in forms {
            var j = i + 10
            var values: [String: UInt64] = [:]
            var ok = true
            for (n, f) in form.enumerated() {
                if n > 0 {
                    guard sc[j] == 44 else { ok = false; break }
                    j += 1
                }
                guard sc.hasPrefix(string: f, at: j), let (v, e) = sc.integer(j + f.utf8.count) else { ok = false; break }
                values[f] = v
                j = e
            }
            guard ok, sc[j] == 41 else { continue }
            let vid = Int64(bitPattern: values["vid="]!), pcp = Int64(bitPattern: values["pcp="]!)
            let vid32 = Int32(truncatingIfNeeded: vid), pcp32 = Int32(truncatingIfNeeded: pcp)
            guard vid32 & ~0xfff == 0, pcp32 & ~7 == 0 else { return fail(i, "push_vlan: vid must be < 4096 and pcp < 8") }
            let tpid = UInt16(truncatingIfNeeded: values["tpid="] ?? 0x8100)
            let cfi = Int32(truncatingIfNeeded: values["cfi="] ?? 1) != 0
            var p = [UInt8](repeating: 0, count: 4)
            p.setBE16(0, tpid)
            p.setBE16(2, UInt16(vid32) | UInt16(pcp32) << 13 | (cfi ? 0x1000 : 0))
            out.put(ActionAttr.pushVLAN, p)
            return j + 1
        }
        return fail(i, "expected push_vlan([tpid=T,]vid=V,pcp=P[,cfi=C])")
    }

    // MARK: sample, check_pkt_len

    private mutating func parseSample(at i: Int, into out: inout AttributeWriter) -> Int? {
        let j = i + 14
        guard let (pct, e) = sc.double(j), sc.hasPrefix("%,actions(", at: e), pct >= 0, pct <= 100 else {
            return fail(j, "expected sample(sample=P%,actions(…)) with 0 <= P <= 100")
        }
        let prob = (Double(UInt32.max) * (pct / 100.0) + 0.5).rounded(.down)
        let p: UInt32 = prob <= 0 ? 0 : prob >= Double(UInt32.max) ? UInt32.max : UInt32(prob)
        var inner = AttributeWriter()
        guard let le = parseList(at: e + 10, into: &inner) else { return nil }
        guard sc[le + 1] == 41 else { return fail(le + 1, "expected \"))\" to close sample") }
        out.nested(ActionAttr.sample) { w in
            w.putU32(SampleAttr.probability, p)
            w.put(SampleAttr.actions, inner.bytes)
        }
        return le + 2
    }

    private mutating func parseCheckPktLen(at i: Int, into out: inout AttributeWriter) -> Int? {
        let j = i + 19
        guard let (size, e0) = sc.integer(j), sc.hasPrefix(",gt(", at: e0) else {
            return fail(j, "expected check_pkt_len(size=N,gt(…),le(…))")
        }
        var n = e0 + 4
        var gt = AttributeWriter(), le = AttributeWriter()
        if sc.hasPrefixCaseInsensitive("drop", at: n) {
            n += 4
        } else {
            guard let e = parseList(at: n, into: &gt) else { return nil }
            n = e
        }
        guard sc.hasPrefix("),le(", at: n) else { return fail(n, "expected \"),le(\"") }
        n += 5
        if sc.hasPrefixCaseInsensitive("drop", at: n) {
            n += 4
        } else {
            guard let e = parseList(at: n, into: &le) else { return nil }
            n = e
        }
        guard sc[n + 1] == 41 else { return fail(n + 1, "expected \"))\" to close check_pkt_len") }
        out.nested(ActionAttr.checkPktLen) { w in
            w.putU16(CheckPktLenAttr.pktLen, UInt16(truncatingIfNeeded: size))
            w.put(CheckPktLenAttr.actionsIfGreater, gt.bytes)
            w.put(CheckPktLenAttr.actionsIfLessEqual, le.bytes)
        }
        return n + 2
    }

    private mutating func parseMPLSPush(at i: Int, prefix: String, attr: UInt16, into out: inout AttributeWriter) -> Int? {
        var j = i + prefix.utf8.count
        var lse: UInt32 = 0
        for (name, base, shift) in [("label=", 0, 12), ("tc=", 10, 9), ("ttl=", 10, 0), ("bos=", 10, 8)] {
            if name != "label=" {
                guard sc[j] == 44 else { return fail(j, "expected \",\"") }
                j += 1
            }
            guard sc.hasPrefix(string: name, at: j), let (v, e) = sc.integer(j + name.utf8.count, base: base) else {
                return fail(j, "expected \(name)")
            }
            let width: UInt32 = name == "label=" ? 32 : 8
            lse |= (UInt32(truncatingIfNeeded: v) & (width == 32 ? ~0 : 0xff)) << UInt32(shift)
            j = e
        }
        guard sc.hasPrefix(",eth_type=0x", at: j), let (t, e) = sc.integerRaw(j + 12, base: 16), sc[e] == 41 else {
            return fail(j, "expected \",eth_type=0x…)\"")
        }
        var p = [UInt8](repeating: 0, count: attr == ActionAttr.addMPLS ? 8 : 6)
        p.setBE32(0, lse)
        p.setBE16(4, UInt16(truncatingIfNeeded: t))
        out.put(attr, p)
        return e + 1
    }

    // MARK: userspace(…)

    private mutating func parseUserspace(at i: Int, into out: inout AttributeWriter) -> Int? {
        guard sc.hasPrefix("userspace(pid=", at: i), let (pid, e0) = sc.integer(i + 14) else {
            return fail(i, "expected userspace(pid=N…)")
        }
        var n = e0
        var userdata = [UInt8](repeating: 0, count: 48)  // an all-zero cookie when none is given
        func int(_ at: Int, _ base: Int = 0) -> (UInt64, Int)? { sc.integer(at, base: base) }
        func expect(_ text: String, _ at: inout Int) -> Bool {
            guard sc.hasPrefix(string: text, at: at) else { return false }
            at += text.utf8.count
            return true
        }
        if sc.hasPrefix(",sFlow(vid=", at: n) {
            var j = n + 11
            guard let (vid, a) = int(j) else { return fail(j, "bad sFlow vid") }
            j = a
            guard expect(",pcp=", &j), let (pcp, b) = int(j) else { return fail(j, "bad sFlow pcp") }
            j = b
            guard expect(",output=", &j), let (outp, c) = int(j), sc[c] == 41 else { return fail(j, "bad sFlow output") }
            var tci = UInt16(truncatingIfNeeded: Int64(bitPattern: vid) | Int64(bitPattern: pcp) << 13)
            if tci != 0 { tci |= 0x1000 }
            userdata = Cookie.sflow(tci: tci, output: UInt32(truncatingIfNeeded: outp))
            n = c + 1
        } else if sc.hasPrefix(",slow_path(", at: n) {
            let j = n + 11
            guard let (f, _, e) = FlagNames.slowPath.parse(sc, at: j, end: 41, allowed: 0x7f, masked: false), sc[e] == 41 else {
                return fail(j, "bad slow_path reasons")
            }
            userdata = Cookie.slowPath(reason: f)
            n = e + 1
        } else if sc.hasPrefix(",flow_sample(probability=", at: n) {
            var j = n + 25
            var vals: [UInt64] = []
            for (k, name) in ["", ",collector_set_id=", ",obs_domain_id=", ",obs_point_id=", ",output_port="].enumerated() {
                if k > 0 { guard expect(name, &j) else { return fail(j, "expected \(name)") } }
                guard let (v, e) = int(j) else { return fail(j, "expected a number") }
                vals.append(v)
                j = e
            }
            var direction: UInt32 = 0
            if expect(",ingress", &j) { direction = 1 } else if expect(",egress", &j) { direction = 2 }
            guard sc[j] == 41 else { return fail(j, "expected \")\"") }
            userdata = Cookie.flowSample(probability: UInt16(truncatingIfNeeded: vals[0]), collectorSet: UInt32(truncatingIfNeeded: vals[1]),
                                         domain: UInt32(truncatingIfNeeded: vals[2]), point: UInt32(truncatingIfNeeded: vals[3]),
                                         output: UInt32(truncatingIfNeeded: vals[4]), direction: direction)
            n = j + 1
        } else if sc.hasPrefix(",ipfix(output_port=", at: n) {
            let j = n + 19
            guard let (v, e) = int(j), sc[e] == 41 else { return fail(j, "bad ipfix output_port") }
            userdata = Cookie.ipfix(output: UInt32(truncatingIfNeeded: v))
            n = e + 1
        } else if sc.hasPrefix(",controller(reason=", at: n) {
            var j = n + 19
            var vals: [UInt64] = []
            let fields: [(String, Int)] = [("", 10), (",dont_send=", 10), (",continuation=", 10), (",recirc_id=", 10),
                                           (",rule_cookie=", 16), (",controller_id=", 10), (",max_len=", 10)]
            for (name, base) in fields {
                if !name.isEmpty { guard expect(name, &j) else { return fail(j, "expected \(name)") } }
                guard let (v, e) = int(j, base) else { return fail(j, "expected a number") }
                vals.append(v)
                j = e
            }
            guard sc[j] == 41 else { return fail(j, "expected \")\"") }
            userdata = Cookie.controller(reason: UInt16(truncatingIfNeeded: vals[0]), dontSend: vals[1] & 0xff != 0,
                                         continuation: vals[2] & 0xff != 0, recircID: UInt32(truncatingIfNeeded: vals[3]),
                                         ruleCookie: vals[4], controllerID: UInt16(truncatingIfNeeded: vals[5]),
                                         maxLength: UInt16(truncatingIfNeeded: vals[6]))
            n = j + 1
        } else if sc.hasPrefix(",userdata(", at: n) {
            var j = n + 10
            var bytes: [UInt8] = []
            // ofpbuf_put_hex(): pairs of hex digits, blanks and dots allowed between pairs.
            while true {
                while sc[j] == 32 || sc[j] == 46 { j += 1 }
                let h = Scan.hexit(sc[j]), l = Scan.hexit(sc[j + 1])
                if h < 0 { break }
                guard l >= 0 else { return fail(j, "userdata needs an even number of hex digits") }
                bytes.append(UInt8(h << 4 | l))
                j += 2
            }
            guard sc[j] == 41 else { return fail(j, "expected \")\" after userdata") }
            while bytes.count < 8 { bytes.append(0) }
            userdata = bytes
            n = j + 1
        }
        var includeActions = false
        if sc.hasPrefix(",actions", at: n) {
            includeActions = true
            n += 8
        }
        var tunnelPort: UInt32?
        if sc.hasPrefix(",tunnel_out_port=", at: n) {
            guard let (v, e) = sc.integer(n + 17), sc[e] == 41 else { return fail(n + 17, "bad tunnel_out_port") }
            tunnelPort = UInt32(truncatingIfNeeded: v)
            n = e
        }
        guard sc[n] == 41 else { return fail(n, "malformed userspace action") }
        out.nested(ActionAttr.userspace) { w in
            w.putU32(UserspaceAttr.pid, UInt32(truncatingIfNeeded: pid))
            w.put(UserspaceAttr.userdata, userdata)
            if let tunnelPort { w.putU32(UserspaceAttr.egressTunnelPort, tunnelPort) }
            if includeActions { w.putFlag(UserspaceAttr.actions) }
        }
        return n + 1
    }
}

extension Scan {
    func hasPrefixCaseInsensitive(_ p: String, at i: Int) -> Bool {
        var j = i
        for c in p.utf8 {
            let x = self[j]
            let lower = x >= 65 && x <= 90 ? x + 32 : x
            if lower != c { return false }
            j += 1
        }
        return true
    }
}

/// struct user_action_cookie (48 bytes, host order) builders.
enum Cookie {
    static func make(type: UInt16, _ body: (inout [UInt8]) -> Void) -> [UInt8] {
        var c = [UInt8](repeating: 0, count: 48)
        c.setLE16(0, type)
        // ofp_in_port = OFPP_NONE
        c.setLE32(4, 0xffff)
        body(&c)
        return c
    }

    static func sflow(tci: UInt16, output: UInt32) -> [UInt8] {
        make(type: 1) { c in
            c.setBE16(24, tci)
            c.setLE32(28, output)
        }
    }
    static func slowPath(reason: UInt32) -> [UInt8] { make(type: 2) { $0.setLE32(28, reason) } }
    static func flowSample(probability: UInt16, collectorSet: UInt32, domain: UInt32, point: UInt32, output: UInt32,
                           direction: UInt32) -> [UInt8] {
        make(type: 3) { c in
            c.setLE16(24, probability)
            c.setLE32(28, collectorSet)
            c.setLE32(32, domain)
            c.setLE32(36, point)
            c.setLE32(40, output)
            c.setLE32(44, direction)
        }
    }
    static func ipfix(output: UInt32) -> [UInt8] { make(type: 4) { $0.setLE32(24, output) } }
    static func controller(reason: UInt16, dontSend: Bool, continuation: Bool, recircID: UInt32, ruleCookie: UInt64,
                           controllerID: UInt16, maxLength: UInt16) -> [UInt8] {
        make(type: 5) { c in
            c[24] = dontSend ? 1 : 0
            c[25] = continuation ? 1 : 0
            c.setLE16(26, reason)
            c.setLE32(28, recircID)
            c.setBE64(32, ruleCookie)
            c.setLE16(40, controllerID)
            c.setLE16(42, maxLength)
        }
    }
}
