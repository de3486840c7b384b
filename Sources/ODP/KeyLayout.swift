/// Byte layouts of the fixed-size key attribute payloads (struct ovs_key_* in
/// openvswitch.h) and the field types the text grammar scans them as.
enum FieldType {
    case u8            // %hhi
    case be16          // %hi, network order
    case be32          // %i, network order
    case be64          // %lli, network order
    case u16           // %hi, host order
    case u32           // %i, host order
    case ipv4, ipv6, mac
    case frag          // no|first|later
    case ipv6Label     // %i, value and mask < 2^20, be32
    case vid, pcp, cfi // bit fields of a be16 TCI
    case mplsLabel, mplsTC, mplsTTL, mplsBOS  // bit fields of a be32 LSE
}

struct FieldSpec {
    let name: String
    let offset: Int
    let type: FieldType
    /// The name's bytes, made once (compared at every field of every line).
    let nameBytes: [UInt8]
    /// The name's first byte: a field list is tried against it before the name.
    let first: UInt8

    init(name: String, offset: Int, type: FieldType) {
        self.name = name
        self.offset = offset
        self.type = type
        nameBytes = Array(name.utf8)
        first = name.utf8.first ?? 0
    }
}

struct StructSpec {
    let prefix: String
    let attr: UInt16
    let size: Int
    let fields: [FieldSpec]
}

enum KeyLayout {
    static let ethernet = StructSpec(prefix: "eth(", attr: KeyAttr.ethernet, size: 12, fields: [
        FieldSpec(name: "src=", offset: 0, type: .mac), FieldSpec(name: "dst=", offset: 6, type: .mac)])
    static let ipv4 = StructSpec(prefix: "ipv4(", attr: KeyAttr.ipv4, size: 12, fields: [
        FieldSpec(name: "src=", offset: 0, type: .ipv4), FieldSpec(name: "dst=", offset: 4, type: .ipv4),
        FieldSpec(name: "proto=", offset: 8, type: .u8), FieldSpec(name: "tos=", offset: 9, type: .u8),
        FieldSpec(name: "ttl=", offset: 10, type: .u8), FieldSpec(name: "frag=", offset: 11, type: .frag)])
    static let ipv6 = StructSpec(prefix: "ipv6(", attr: KeyAttr.ipv6, size: 40, fields: [
        FieldSpec(name: "src=", offset: 0, type: .ipv6), FieldSpec(name: "dst=", offset: 16, type: .ipv6),
        FieldSpec(name: "label=", offset: 32, type: .ipv6Label), FieldSpec(name: "proto=", offset: 36, type: .u8),
        FieldSpec(name: "tclass=", offset: 37, type: .u8), FieldSpec(name: "hlimit=", offset: 38, type: .u8),
        FieldSpec(name: "frag=", offset: 39, type: .frag)])
    static let tcp = ports("tcp(", KeyAttr.tcp)
    static let udp = ports("udp(", KeyAttr.udp)
    static let sctp = ports("sctp(", KeyAttr.sctp)
    static let icmp = StructSpec(prefix: "icmp(", attr: KeyAttr.icmp, size: 2, fields: [
        FieldSpec(name: "type=", offset: 0, type: .u8), FieldSpec(name: "code=", offset: 1, type: .u8)])
    static let icmpv6 = StructSpec(prefix: "icmpv6(", attr: KeyAttr.icmpv6, size: 2, fields: [
        FieldSpec(name: "type=", offset: 0, type: .u8), FieldSpec(name: "code=", offset: 1, type: .u8)])
    static let arp = StructSpec(prefix: "arp(", attr: KeyAttr.arp, size: 24, fields: [
        FieldSpec(name: "sip=", offset: 0, type: .ipv4), FieldSpec(name: "tip=", offset: 4, type: .ipv4),
        FieldSpec(name: "op=", offset: 8, type: .be16), FieldSpec(name: "sha=", offset: 10, type: .mac),
        FieldSpec(name: "tha=", offset: 16, type: .mac)])
    static let nd = StructSpec(prefix: "nd(", attr: KeyAttr.nd, size: 28, fields: [
        FieldSpec(name: "target=", offset: 0, type: .ipv6), FieldSpec(name: "sll=", offset: 16, type: .mac),
        FieldSpec(name: "tll=", offset: 22, type: .mac)])
    static let packetType = StructSpec(prefix: "packet_type(", attr: KeyAttr.packetType, size: 4, fields: [
        FieldSpec(name: "ns=", offset: 0, type: .be16), FieldSpec(name: "id=", offset: 2, type: .be16)])
    static let vlan = StructSpec(prefix: "vlan(", attr: KeyAttr.vlan, size: 2, fields: [
        FieldSpec(name: "vid=", offset: 0, type: .vid), FieldSpec(name: "pcp=", offset: 0, type: .pcp),
        FieldSpec(name: "cfi=", offset: 0, type: .cfi)])
    static let mpls: [FieldSpec] = [
        FieldSpec(name: "label=", offset: 0, type: .mplsLabel), FieldSpec(name: "tc=", offset: 0, type: .mplsTC),
        FieldSpec(name: "ttl=", offset: 0, type: .mplsTTL), FieldSpec(name: "bos=", offset: 0, type: .mplsBOS)]

    /// struct ovs_key_ct_tuple_ipv4 / _ipv6, fields in the order OVS prints them. OVS 3.1
    /// parses the IPv6 ports as tp_src/tp_dst but prints them as src_port/dst_port
    /// (KeyFormatter): esw does the same, so its output matches.
    static let ctTuple4 = StructSpec(prefix: "ct_tuple4(", attr: KeyAttr.ctOrigTupleIPv4, size: 16, fields: [
        FieldSpec(name: "src=", offset: 0, type: .ipv4), FieldSpec(name: "dst=", offset: 4, type: .ipv4),
        FieldSpec(name: "proto=", offset: 12, type: .u8), FieldSpec(name: "tp_src=", offset: 8, type: .be16),
        FieldSpec(name: "tp_dst=", offset: 10, type: .be16)])
    static let ctTuple6 = StructSpec(prefix: "ct_tuple6(", attr: KeyAttr.ctOrigTupleIPv6, size: 40, fields: [
        FieldSpec(name: "src=", offset: 0, type: .ipv6), FieldSpec(name: "dst=", offset: 16, type: .ipv6),
        FieldSpec(name: "proto=", offset: 36, type: .u8), FieldSpec(name: "tp_src=", offset: 32, type: .be16),
        FieldSpec(name: "tp_dst=", offset: 34, type: .be16)])

    static func ports(_ prefix: String, _ attr: UInt16) -> StructSpec {
        StructSpec(prefix: prefix, attr: attr, size: 4, fields: [
            FieldSpec(name: "src=", offset: 0, type: .be16), FieldSpec(name: "dst=", offset: 2, type: .be16)])
    }

    /// Structs scanned with SCAN_BEGIN/SCAN_FIELD, in parse order.
    static let structs: [StructSpec] = [ethernet, ipv4, ipv6, tcp, udp, sctp, icmp, icmpv6, arp, nd]
}

/// Big-endian helpers over byte arrays.
extension Array where Element == UInt8 {
    public func be16(_ o: Int) -> UInt16 { UInt16(self[o]) << 8 | UInt16(self[o + 1]) }
    public func be32(_ o: Int) -> UInt32 { UInt32(be16(o)) << 16 | UInt32(be16(o + 2)) }
    public func be64(_ o: Int) -> UInt64 { UInt64(be32(o)) << 32 | UInt64(be32(o + 4)) }
    public func be48(_ o: Int) -> UInt64 { UInt64(be16(o)) << 32 | UInt64(be32(o + 2)) }
    public func be128(_ o: Int) -> UInt128 { UInt128(be64(o)) << 64 | UInt128(be64(o + 8)) }
    public func le16(_ o: Int) -> UInt16 { UInt16(self[o]) | UInt16(self[o + 1]) << 8 }
    public func le32(_ o: Int) -> UInt32 { UInt32(le16(o)) | UInt32(le16(o + 2)) << 16 }
    public func le128(_ o: Int) -> UInt128 {
        var v: UInt128 = 0
        for i in (0..<16).reversed() { v = v << 8 | UInt128(self[o + i]) }
        return v
    }

    // One store each, not a subscript (a uniqueness and a bounds check) per byte; the
    // range is checked once. `storeBytes` takes unaligned offsets.
    public mutating func setBE16(_ o: Int, _ v: UInt16) { store(v.bigEndian, at: o) }
    public mutating func setBE32(_ o: Int, _ v: UInt32) { store(v.bigEndian, at: o) }
    public mutating func setBE64(_ o: Int, _ v: UInt64) { store(v.bigEndian, at: o) }

    private mutating func store<T: FixedWidthInteger>(_ v: T, at o: Int) {
        precondition(o >= 0 && o + MemoryLayout<T>.size <= count, "store of \(MemoryLayout<T>.size) bytes at \(o) of \(count)")
        withUnsafeMutableBytes { $0.storeBytes(of: v, toByteOffset: o, as: T.self) }
    }
    public mutating func setBE48(_ o: Int, _ v: UInt64) { setBE16(o, UInt16(truncatingIfNeeded: v >> 32)); setBE32(o + 2, UInt32(truncatingIfNeeded: v)) }
    public mutating func setBE128(_ o: Int, _ v: UInt128) { setBE64(o, UInt64(truncatingIfNeeded: v >> 64)); setBE64(o + 8, UInt64(truncatingIfNeeded: v)) }
    public mutating func setLE16(_ o: Int, _ v: UInt16) { self[o] = UInt8(v & 0xff); self[o + 1] = UInt8(v >> 8) }
    public mutating func setLE32(_ o: Int, _ v: UInt32) { setLE16(o, UInt16(v & 0xffff)); setLE16(o + 2, UInt16(v >> 16)) }
    public mutating func setLE64(_ o: Int, _ v: UInt64) { setLE32(o, UInt32(v & 0xffff_ffff)); setLE32(o + 4, UInt32(v >> 32)) }
    public mutating func setLE128(_ o: Int, _ v: UInt128) {
        for i in 0..<16 { self[o + i] = UInt8(truncatingIfNeeded: v >> UInt128(8 * i)) }
    }

    public static func le32(_ v: UInt32) -> [UInt8] { var a = [UInt8](repeating: 0, count: 4); a.setLE32(0, v); return a }
    public static func le16(_ v: UInt16) -> [UInt8] { var a = [UInt8](repeating: 0, count: 2); a.setLE16(0, v); return a }
    public static func be16(_ v: UInt16) -> [UInt8] { var a = [UInt8](repeating: 0, count: 2); a.setBE16(0, v); return a }
    public static func be32(_ v: UInt32) -> [UInt8] { var a = [UInt8](repeating: 0, count: 4); a.setBE32(0, v); return a }
    public static func be64(_ v: UInt64) -> [UInt8] { var a = [UInt8](repeating: 0, count: 8); a.setBE64(0, v); return a }
    public static func be128(_ v: UInt128) -> [UInt8] { var a = [UInt8](repeating: 0, count: 16); a.setBE128(0, v); return a }
}
