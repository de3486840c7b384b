import Netlink

/// ct(…) and its nat(…): the conntrack action's text, as odp_actions_from_string() reads it.
extension ActionParser {
    mutating func parseCT(at i: Int, into out: inout AttributeWriter) -> Int? {
        var s = i + 2
        var commit = false, force = false
        var zone: UInt16 = 0
        var mark: (UInt32, UInt32) = (0, 0)
        var label: (UInt128, UInt128) = (0, 0)
        var helper: String?, timeout: String?
        var nat: NATParams?
        if sc[s] == 40 {
            s += 1
            var end = sc.s[s...].firstIndex(of: 41) ?? -1
            guard end >= 0 else { return fail(s, "missing \")\" in ct(…)") }
            while s != end {
                s = sc.skipDelimiters(s)
                if sc.hasPrefix("commit", at: s) {
                    commit = true
                    s += 6
                    continue
                }
                if sc.hasPrefix("force_commit", at: s) {
                    force = true
                    s += 12
                    continue
                }
                if sc.hasPrefix("zone=", at: s), let (v, e) = sc.integer(s + 5, base: 10) {
                    zone = UInt16(truncatingIfNeeded: v)
                    s = e
                    continue
                }
                if sc.hasPrefix("mark=", at: s), let (v, e) = sc.integer(s + 5, base: 16) {
                    mark = (UInt32(truncatingIfNeeded: v), UInt32.max)
                    s = e
                    if sc[s] == 47, let (m, me) = sc.integer(s + 1, base: 16) {
                        mark.1 = UInt32(truncatingIfNeeded: m)
                        s = me
                    }
                    continue
                }
                if sc.hasPrefix("label=", at: s) {
                    guard let (v, m, e) = sc.u128Masked(s + 6) else { return fail(s + 6, "bad ct label or label mask") }
                    label = (v, m)
                    s = e
                    continue
                }
                if sc.hasPrefix("helper=", at: s) || sc.hasPrefix("timeout=", at: s) {
                    let isHelper = sc.hasPrefix("helper=", at: s)
                    let j = s + (isHelper ? 7 : 8)
                    var e = j
                    while e < sc.count && !Scan.isDelimiter(sc[e]) && sc[e] != 41 { e += 1 }
                    let len = e - j
                    guard len > 0, len <= (isHelper ? 15 : 31) else { return fail(j, "ct helper/timeout name too long or empty") }
                    let name = String(decoding: sc.s[j..<e], as: UTF8.self)
                    if isHelper { helper = name } else { timeout = name }
                    s = e
                    continue
                }
                if sc.hasPrefix("nat", at: s) {
                    guard let (p, e) = parseNAT(at: s) else { return nil }
                    nat = p
                    s = e
                    // The nat(…) parentheses hid the real end: find it again.
                    end = sc.s[s...].firstIndex(of: 41) ?? -1
                    guard end >= 0 else { return fail(s, "missing \")\" in ct(…)") }
                    continue
                }
                return fail(s, "unknown ct option")
            }
            s += 1
        }
        if commit && force { return fail(i, "ct: commit and force_commit exclude each other") }
        out.nested(ActionAttr.ct) { w in
            if commit { w.putFlag(CTAttr.commit) } else if force { w.putFlag(CTAttr.forceCommit) }
            if zone != 0 { w.putU16(CTAttr.zone, zone) }
            if mark.1 != 0 { w.put(CTAttr.mark, [UInt8].le32(mark.0) + [UInt8].le32(mark.1)) }
            if label.1 != 0 {
                var b = [UInt8](repeating: 0, count: 32)
                b.setLE128(0, label.0)
                b.setLE128(16, label.1)
                w.put(CTAttr.labels, b)
            }
            if let helper { w.put(CTAttr.helper, Array(helper.utf8) + [0]) }
            if let timeout { w.put(CTAttr.timeout, Array(timeout.utf8) + [0]) }
            if let nat { nat.write(&w) }
        }
        return s
    }

    struct NATParams {
        var snat = false, dnat = false
        var addressLength = 0
        var minV4: UInt32 = 0, maxV4: UInt32 = 0
        var minV6: UInt128 = 0, maxV6: UInt128 = 0
        var protoMin: UInt16 = 0, protoMax: UInt16 = 0
        var persistent = false, hash = false, random = false

        func write(_ w: inout AttributeWriter) {
            w.nested(CTAttr.nat) { n in
                if snat { n.putFlag(NATAttr.src) } else if dnat { n.putFlag(NATAttr.dst) } else { return }
                guard addressLength != 0 else { return }
                if addressLength == 4 {
                    n.put(NATAttr.ipMin, [UInt8].be32(minV4))
                    if maxV4 > minV4 { n.put(NATAttr.ipMax, [UInt8].be32(maxV4)) }
                } else {
                    n.put(NATAttr.ipMin, [UInt8].be128(minV6))
                    if maxV6 > minV6 { n.put(NATAttr.ipMax, [UInt8].be128(maxV6)) }
                }
                if protoMin != 0 {
                    n.putU16(NATAttr.protoMin, protoMin)
                    if protoMax > protoMin { n.putU16(NATAttr.protoMax, protoMax) }
                }
                if persistent { n.putFlag(NATAttr.persistent) }
                if hash { n.putFlag(NATAttr.protoHash) }
                if random { n.putFlag(NATAttr.protoRandom) }
            }
        }
    }

    private mutating func parseNAT(at i: Int) -> (NATParams, Int)? {
        var p = NATParams()
        var n = i + 3
        guard sc[n] == 40 else { return (p, n) }
        n += 1
        guard let end = sc.s[n...].firstIndex(of: 41) else { _ = fail(n, "missing \")\" in nat(…)"); return nil }
        while n < end {
            n = sc.skipDelimiters(n)
            if n >= end { break }
            if sc.hasPrefix("src", at: n) || sc.hasPrefix("dst", at: n) {
                let isSrc = sc.hasPrefix("src", at: n)
                n += 3
                if sc[n] == 61 {
                    n += 1
                    guard let e = scanNATRange(at: n, &p) else { _ = fail(n, "bad nat address range"); return nil }
                    n = e
                }
                if isSrc { p.snat = true } else { p.dnat = true }
                continue
            }
            if sc.hasPrefix("persistent", at: n) { p.persistent = true; n += 10; continue }
            if sc.hasPrefix("hash", at: n) { p.hash = true; n += 4; continue }
            if sc.hasPrefix("random", at: n) { p.random = true; n += 6; continue }
            _ = fail(n, "unknown nat option")
            return nil
        }
        if p.snat && p.dnat { _ = fail(i, "nat: only one of src and dst"); return nil }
        let badAddr = p.addressLength == 4 ? (p.maxV4 != 0 && p.maxV4 < p.minV4) : (p.addressLength == 16 && p.maxV6 != 0 && p.maxV6 < p.minV6)
        if badAddr || (p.protoMax != 0 && p.protoMax < p.protoMin) { _ = fail(i, "nat: range maximum below minimum"); return nil }
        if p.hash && p.random { _ = fail(i, "nat: hash and random exclude each other"); return nil }
        return (p, end + 1)
    }

    private func scanNATRange(at i: Int, _ p: inout NATParams) -> Int? {
        var n = i
        if let (a, e) = sc.ipv4(n) {
            p.addressLength = 4
            p.minV4 = a
            n = e
            if sc[n] == 45 {
                guard let (b, e2) = sc.ipv4(n + 1) else { return nil }
                p.maxV4 = b
                n = e2
            }
        } else {
            func v6(_ at: Int) -> (UInt128, Int)? {
                if let r = sc.ipv6(at) { return r }
                if sc[at] == 91, let (a, e) = sc.ipv6(at + 1), sc[e] == 93 { return (a, e + 1) }
                return nil
            }
            guard let (a, e) = v6(n) else { return nil }
            p.addressLength = 16
            p.minV6 = a
            n = e
            if sc[n] == 45 {
                guard let (b, e2) = v6(n + 1) else { return nil }
                p.maxV6 = b
                n = e2
            }
        }
        if sc[n] == 58, let (pm, e) = sc.integer(n + 1, base: 10) {
            p.protoMin = UInt16(truncatingIfNeeded: pm)
            n = e
            if sc[n] == 45 {
                guard let (px, e2) = sc.integer(n + 1, base: 10) else { return nil }
                p.protoMax = UInt16(truncatingIfNeeded: px)
                n = e2
            }
        }
        return n
    }
}
