import Classifier
import ESwitch
import Packet

/// The byte layouts of bpf/esw_shared.h, written from Swift. Sizes and offsets are
/// checked against the C side's _Static_asserts by Tests/BPFDataPlaneTests.
public enum Layout {
    public static let keyWords = 18
    public static let maxMasks = 64
    public static let maxActions = 16
    public static let maxPorts = 64
    public static let portStats = 8
    public static let maxIfindex = 65536
    /// Indexes of esw_rule_tables (ESW_TABLE_*).
    public static let tableExact: UInt32 = 0
    public static let tableMasked: UInt32 = 1

    public static let keySize = 144
    public static let tableKeySize = 152
    public static let maskListsSize = 520
    public static let portCountersSize = 64
    public static let ruleSize = 16
    public static let ruleCounterSize = 24
    public static let actionSize = 40
    public static let actionSetSize = 8 + 40 * 16
    public static let encapSize = 80
    public static let portSize = 24
    public static let configSize = 28

    /// FlowKey word of each hardware key word (bpf/esw_shared.h, struct esw_key).
    public static let keyWordSource: [Int] = [0, 1, 2, 3, 4, 5, 6, 9, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22]
    /// The same, inline (no array bounds check or retain on the per-rule path).
    static let hardwareWordSource: InlineArray<18, Int> = [0, 1, 2, 3, 4, 5, 6, 9, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22]

    public static let ruleEncap: UInt32 = 1, ruleRecirc: UInt32 = 2
    public static let portValid: UInt32 = 1, portLinkUp: UInt32 = 2, portUplink: UInt32 = 4, portPeerNS: UInt32 = 8
    public static let portMirrorTransmit: UInt32 = 16
    public static let modeSwitchdev: UInt32 = 0, modeLegacy: UInt32 = 1
    public static let ifindexRepresentor: UInt32 = 0x8000_0000
    /// esw_port_by_ifindex's value for the engine's delay line TAP (ESW_IFINDEX_ENGINE).
    public static let ifindexEngine: UInt32 = 0x4000_0000
    public static let vxlanIPv4Overhead = 50

    enum Kind: UInt8 {
        case forward = 1, drop, pushVLAN, popVLAN, setEth, setIPv4, setIPv6Src, setIPv6Dst, setIPv6Misc, setL4, encap, decap, hint
        case conntrack, recirculate
    }
    /// ESW_CT_ACT_NAT: the ct action's arg is the zone, with this bit for nat.
    static let conntrackNAT: UInt32 = 0x10000

    /// The 18 hardware key words of a datapath key (or mask).
    public static func words(_ k: FlowKey) -> [UInt64] {
        let w = k.words.span
        return keyWordSource.map { w[$0] }
    }

    /// FlowKey words the hardware key leaves out.
    static let wordsOutsideHardwareKey: [Int] = (0..<FlowKey.wordCount).filter { !keyWordSource.contains($0) }

    /// Whether a match fits the hardware key: outside its words the match may only ask
    /// for zero (recirc_id(0) and the like: the silicon sees only such packets).
    public static func fitsHardwareKey(key: FlowKey, mask: FlowKey) -> Bool {
        // Spans: subscripting a borrowed InlineArray copies it whole first.
        let k = key.words.span, m = mask.words.span
        for w in wordsOutsideHardwareKey where k[w] & m[w] != 0 { return false }
        return true
    }

    /// A rule's table key (its mask id left 0) and its mask's words, in one pass over
    /// key and mask, and whether the match fits the hardware key (`fitsHardwareKey`;
    /// when it does not, `table` and `mask` are not all filled). In-out throughout: a
    /// span of a key passed by value is a copy of its 224 bytes first, and a rule's write
    /// made four.
    static func fill(_ table: inout TableKey, _ maskWords: inout MaskWords, key: inout FlowKey, mask: inout FlowKey) -> Bool {
        let k = key.words.span, m = mask.words.span
        for w in wordsOutsideHardwareKey where k[w] & m[w] != 0 { return false }
        var o = table.words.mutableSpan, mw = maskWords.words.mutableSpan
        for i in 0..<18 {
            let source = hardwareWordSource[i]
            mw[i] = m[source]
            o[i + 1] = k[source] & m[source]
        }
        return true
    }

    /// A little-endian writer into a fixed-size buffer.
    struct Bytes {
        var b: [UInt8]
        init(_ size: Int) { b = [UInt8](repeating: 0, count: size) }
        mutating func u8(_ at: Int, _ v: UInt8) { b[at] = v }
        mutating func u16(_ at: Int, _ v: UInt16) { for i in 0..<2 { b[at + i] = UInt8(truncatingIfNeeded: v >> (8 * i)) } }
        mutating func u32(_ at: Int, _ v: UInt32) { for i in 0..<4 { b[at + i] = UInt8(truncatingIfNeeded: v >> (8 * i)) } }
        mutating func u64(_ at: Int, _ v: UInt64) { for i in 0..<8 { b[at + i] = UInt8(truncatingIfNeeded: v >> (8 * i)) } }
        /// Network byte order, as the value sits in the packet.
        mutating func be16(_ at: Int, _ v: UInt16) { b[at] = UInt8(v >> 8); b[at + 1] = UInt8(truncatingIfNeeded: v) }
        mutating func be32(_ at: Int, _ v: UInt32) { for i in 0..<4 { b[at + i] = UInt8(truncatingIfNeeded: v >> (24 - 8 * i)) } }
        mutating func be48(_ at: Int, _ v: UInt64) { for i in 0..<6 { b[at + i] = UInt8(truncatingIfNeeded: v >> (40 - 8 * i)) } }
        mutating func be128(_ at: Int, _ v: UInt128) { for i in 0..<16 { b[at + i] = UInt8(truncatingIfNeeded: v >> (120 - 8 * i)) } }
        mutating func words(_ at: Int, _ w: [UInt64]) { for (i, x) in w.enumerated() { u64(at + 8 * i, x) } }
    }

    static func key(_ words: [UInt64]) -> [UInt8] {
        var b = Bytes(keySize)
        b.words(0, words)
        return b.b
    }

    static func tableKey(maskID: UInt32, masked: [UInt64]) -> [UInt8] {
        var b = Bytes(tableKeySize)
        b.u32(0, maskID)
        b.words(8, masked)
        return b.b
    }

    /// Both tables' mask lists, in lookup order.
    static func maskLists(exact: [UInt32], masked: [UInt32]) -> [UInt8] {
        var b = Bytes(maskListsSize)
        b.u32(0, UInt32(min(exact.count, maxMasks)))
        b.u32(4, UInt32(min(masked.count, maxMasks)))
        for (i, id) in exact.prefix(maxMasks).enumerated() { b.u32(8 + 4 * i, id) }
        for (i, id) in masked.prefix(maxMasks).enumerated() { b.u32(8 + 4 * maxMasks + 4 * i, id) }
        return b.b
    }

    static func rule(actionSet: UInt32, counter: UInt32, encap: Bool) -> [UInt8] {
        var v = RuleValue(actionSet: actionSet, counter: counter, encap: encap)
        return withUnsafeBytes(of: &v) { Array($0) }
    }

    /// The action set of a rule; nil (with the reason) when the silicon cannot do it.
    static func actionSet(_ actions: [HardwareAction]) -> Result<[UInt8], DataPlaneError> {
        var b = Bytes(actionSetSize)
        var n = 0
        func slot(_ kind: Kind, arg: UInt32 = 0, _ fill: (inout Bytes, Int) -> Void = { _, _ in }) -> Bool {
            guard n < maxActions else { return false }
            let at = 8 + n * actionSize
            b.u8(at, kind.rawValue)
            b.u32(at + 4, arg)
            fill(&b, at + 8)
            n += 1
            return true
        }
        for a in actions {
            var ok = true
            switch a {
            case .forward(let p): ok = slot(.forward, arg: p)
            case .drop: ok = slot(.drop)
            case .pushVLAN(let tpid, let tci): ok = slot(.pushVLAN) { b, u in b.be16(u, tpid); b.be16(u + 2, tci) }
            case .popVLAN: ok = slot(.popVLAN)
            case .setEthernet(let s, let sm, let d, let dm):
                ok = slot(.setEth) { b, u in b.be48(u, s); b.be48(u + 6, sm); b.be48(u + 12, d); b.be48(u + 18, dm) }
            case .setIPv4(let v, let m):
                ok = slot(.setIPv4) { b, u in
                    b.be32(u, v.src); b.be32(u + 4, m.src); b.be32(u + 8, v.dst); b.be32(u + 12, m.dst)
                    b.u8(u + 16, v.tos); b.u8(u + 17, m.tos); b.u8(u + 18, v.ttl); b.u8(u + 19, m.ttl)
                }
            case .setIPv6(let v, let m):
                if m.src != 0 { ok = ok && slot(.setIPv6Src) { b, u in b.be128(u, v.src); b.be128(u + 16, m.src) } }
                if m.dst != 0 { ok = ok && slot(.setIPv6Dst) { b, u in b.be128(u, v.dst); b.be128(u + 16, m.dst) } }
                if m.label != 0 || m.tclass != 0 || m.hlimit != 0 {
                    ok = ok && slot(.setIPv6Misc) { b, u in
                        b.u32(u, v.label); b.u32(u + 4, m.label)
                        b.u8(u + 8, v.tclass); b.u8(u + 9, m.tclass); b.u8(u + 10, v.hlimit); b.u8(u + 11, m.hlimit)
                    }
                }
            case .setTransport(let proto, let s, let sm, let d, let dm):
                ok = slot(.setL4, arg: UInt32(proto)) { b, u in b.be16(u, s); b.be16(u + 2, sm); b.be16(u + 4, d); b.be16(u + 6, dm) }
            case .encap(let e):
                if e.template.isIPv6 || e.template.checksum || e.template.length != vxlanIPv4Overhead {
                    return .failure(.unsupported("VXLAN encap with IPv6 outer headers or a UDP checksum"))
                }
                ok = slot(.encap, arg: e.id)
            case .decap: ok = slot(.decap)
            case .hint(let m): ok = slot(.hint, arg: m.value)
            case .conntrack(let zone, let nat): ok = slot(.conntrack, arg: UInt32(zone) | (nat ? conntrackNAT : 0))
            case .recirculate(let id): ok = slot(.recirculate, arg: id)
            }
            if !ok { return .failure(.unsupported("more than \(maxActions) hardware actions")) }
        }
        b.u32(0, UInt32(n))
        return .success(b.b)
    }

    static func encap(_ t: VXLAN.EncapTemplate) -> [UInt8] {
        var b = Bytes(encapSize)
        for (i, x) in t.bytes.prefix(72).enumerated() { b.u8(i, x) }
        b.u16(72, UInt16(t.length))
        b.u8(74, t.isIPv6 ? 1 : 0)
        return b.b
    }

    static func port(_ p: DataPlanePort?) -> [UInt8] {
        var b = Bytes(portSize)
        guard let p else { return b.b }
        b.u32(0, UInt32(bitPattern: p.ifindex))
        b.u32(4, UInt32(bitPattern: p.representorIfindex))
        var flags = portValid
        if p.linkUp { flags |= portLinkUp }
        if p.isUplink { flags |= portUplink }
        if p.peerInOtherNamespace { flags |= portPeerNS }
        if p.mirrorsTransmit { flags |= portMirrorTransmit }
        b.u32(8, flags)
        b.u32(12, UInt32(clamping: p.mtu))
        b.u16(16, p.vlan)
        b.u8(18, p.qos)
        return b.b
    }

    /// `counterSlots`: counters per CPU in esw_rule_counters (0: nothing is counted);
    /// `vtepMAC`: the only outer destination MAC the parser decaps VXLAN for (0: none).
    static func config(mode: ESwitchMode, ports: Int, vxlan: [UInt16], counterSlots: Int, vtepMAC: UInt64 = 0) -> [UInt8] {
        var b = Bytes(configSize)
        b.u32(0, mode == .legacy ? modeLegacy : modeSwitchdev)
        b.u32(4, UInt32(ports))
        for (i, p) in vxlan.prefix(4).enumerated() { b.u16(8 + 2 * i, p) }
        b.u32(16, UInt32(counterSlots))
        b.be48(20, vtepMAC)
        return b.b
    }
}

extension Layout {
    /// This process's seed for `fold`.
    static let foldSeed = UInt64.random(in: .min ... .max)

    /// A 64-bit hash of key words for dictionaries (which compare whole keys on a hit):
    /// each word mixed in (a bijection of the running hash, so keys differing in one
    /// word never collide), then avalanched. Not an identity: keys differing in two
    /// words can be made to collide.
    @inline(__always)
    static func fold(_ words: Span<UInt64>) -> UInt64 {
        var h = foldSeed
        for i in 0..<words.count { h = FlowHash.mix(h, words[i]) }
        h ^= h >> 33
        h &*= 0xC4CE_B9FE_1A85_EC53
        return h ^ (h >> 29)
    }
}

/// The 18 hardware words of a mask (struct esw_key), as stored in `esw_masks`: a value
/// whose bytes are the map's (a [UInt64] key, allocated per rule, cost more than the
/// map write).
struct MaskWords: Hashable {
    var words: InlineArray<18, UInt64>

    init() { words = .init(repeating: 0) }

    init(_ mask: FlowKey) {
        words = .init(repeating: 0)
        let m = mask.words.span
        var o = words.mutableSpan
        for i in 0..<18 { o[i] = m[Layout.hardwareWordSource[i]] }
    }

    static func == (a: MaskWords, b: MaskWords) -> Bool {
        var a = a, b = b
        return same(&a, &b)
    }

    /// `==` in place (in-out: masks passed by value are copied first, 144 bytes each).
    static func same(_ a: inout MaskWords, _ b: inout MaskWords) -> Bool {
        // Through spans: subscripting the InlineArray of a parameter copied it whole.
        let x = a.words.span, y = b.words.span
        var diff: UInt64 = 0
        for i in 0..<18 { diff |= x[i] ^ y[i] }
        return diff == 0
    }

    func hash(into h: inout Hasher) { h.combine(Layout.fold(words.span)) }

    var bytes: [UInt8] { withUnsafeBytes(of: words) { Array($0) } }
}

/// A key of `esw_exact`/`esw_masked` (struct esw_table_key) with the map's bytes: the
/// mask id in the first word (its upper half is the C struct's padding, zero), then
/// the 18 key words masked. Arrays of it are what batch writes hand the kernel.
struct TableKey: Hashable {
    var words: InlineArray<19, UInt64>

    init() { words = .init(repeating: 0) }

    /// The key's 64-bit fingerprint: what the driver's shadow keeps as the slot's
    /// identity (the full key lives only in the kernel's map), so it is keyed SipHash
    /// (this process's key), whose collisions nobody can construct; `fold`'s could be
    /// (two words with chosen bits flipped cancel). Computed once a rule.
    ///
    /// Only the key's non-zero words are hashed, then a bitmap of where they were: the
    /// same identity (equal keys give equal words and bitmaps, and the bitmap tells which
    /// of the zero words a value moved from), and a rule's key is mostly zero words (four
    /// to six of nineteen set: a third of the hashing).
    var fingerprint: Fingerprint {
        var copy = self
        return Self.fingerprint(of: &copy)
    }

    /// `fingerprint` of a key in place (in-out: a key passed by value is copied first).
    static func fingerprint(of key: inout TableKey) -> Fingerprint {
        var h = KeyedHash()
        let w = key.words.span
        var present: UInt64 = 0
        for i in 0..<19 where w[i] != 0 {
            h.combine(w[i])
            present |= 1 << UInt64(i)
        }
        h.combine(present)
        return Fingerprint(h.finalize())
    }

    init(maskID: UInt32, key: FlowKey, mask: MaskWords) {
        words = .init(repeating: 0)
        let k = key.words.span, m = mask.words.span
        var o = words.mutableSpan
        o[0] = UInt64(maskID)
        for i in 0..<18 { o[i + 1] = k[Layout.hardwareWordSource[i]] & m[i] }
    }

    static func == (a: TableKey, b: TableKey) -> Bool {
        var a = a, b = b
        return same(&a, &b)
    }

    /// `==` of keys in place (in-out: keys passed by value are copied first).
    static func same(_ a: inout TableKey, _ b: inout TableKey) -> Bool {
        let x = a.words.span, y = b.words.span
        var diff: UInt64 = 0
        for i in 0..<19 { diff |= x[i] ^ y[i] }
        return diff == 0
    }

    /// Sets the mask id word (`Layout.fill` leaves it 0).
    mutating func setMaskID(_ id: UInt32) {
        var o = words.mutableSpan
        o[0] = UInt64(id)
    }

    /// For dictionaries, which compare whole keys: the cheap fold will do.
    func hash(into h: inout Hasher) { h.combine(Layout.fold(words.span)) }

    var bytes: [UInt8] { withUnsafeBytes(of: words) { Array($0) } }
}

/// A rule of the tables (struct esw_rule): four 32-bit fields, no padding.
struct RuleValue {
    var actionSet: UInt32
    var counter: UInt32
    var flags: UInt32
    /// Bytes the rule's encap adds (checked against the uplink MTU).
    var overhead: UInt32

    init(actionSet: UInt32, counter: UInt32, encap: Bool, recirc: Bool = false) {
        self.init(actionSet: actionSet, counter: counter,
                  flags: (encap ? Layout.ruleEncap : 0) | (recirc ? Layout.ruleRecirc : 0))
    }

    init(actionSet: UInt32, counter: UInt32, flags: UInt32) {
        self.actionSet = actionSet
        self.counter = counter
        self.flags = flags
        overhead = flags & Layout.ruleEncap != 0 ? UInt32(Layout.vxlanIPv4Overhead) : 0
    }

    /// Whether bpf/ct.h runs the rule: its actions end with a recirculation (a pre-ct
    /// rule) or start with ct (ESW_RULE_RECIRC).
    static func recirculates(_ actions: [HardwareAction]) -> Bool {
        if case .recirculate = actions.last { return true }
        if case .conntrack = actions.first { return true }
        return false
    }

    var isEncap: Bool { flags & Layout.ruleEncap != 0 }
}

/// A table key's fingerprint (`TableKey.fingerprint`) as a dictionary or set key. It is
/// already a keyed hash (SipHash), so it is its own hash value: the standard one ran
/// it through SipHash again at every look-up (six a rule, a tenth of the data plane's
/// work for a rule).
struct Fingerprint: Hashable {
    let value: UInt64

    init(_ value: UInt64) { self.value = value }

    static func == (a: Fingerprint, b: Fingerprint) -> Bool { a.value == b.value }
    func hash(into h: inout Hasher) { h.combine(value) }
    // The seed still varies where the value lands among dictionaries of one size.
    func _rawHashValue(seed: Int) -> Int { Int(truncatingIfNeeded: value) ^ seed }
}
