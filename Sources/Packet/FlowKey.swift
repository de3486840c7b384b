/// The flow key: every header field the datapath and the hardware can match on, in a fixed
/// layout of 64-bit words so that masking, hashing and comparing are plain word loops.
///
/// A mask uses the same type: a set bit means "this bit of the key is significant".
/// Multi-byte network fields are stored as host-order integers (198.18.0.1 is 0xC612_0001).
/// 128-bit fields (IPv6 addresses, ct_label, ND target) take two consecutive words, high first.
public struct FlowKey: Sendable {
    @inlinable public static var wordCount: Int { 28 }
    public var words: InlineArray<28, UInt64>

    @inlinable
    public init() { words = .init(repeating: 0) }

    /// A key with every bit set: the mask of an exact match.
    @inlinable
    public static var allOnes: FlowKey {
        var k = FlowKey()
        k.words = .init(repeating: ~0)
        return k
    }

    @inlinable @inline(__always)
    public subscript(field: FlowField) -> UInt64 {
        // Through the span: subscripting the InlineArray of a borrowed key copied all
        // 224 bytes first (a hundred copies per installed flow).
        get { (words.span[field.word] >> UInt64(field.shift)) & field.valueMask }
        set {
            let m = field.valueMask << UInt64(field.shift)
            words[field.word] = (words[field.word] & ~m) | ((newValue << UInt64(field.shift)) & m)
        }
    }

    @inlinable @inline(__always)
    public subscript(field: WideField) -> UInt128 {
        get {
            let s = words.span
            return UInt128(s[field.word]) << 64 | UInt128(s[field.word + 1])
        }
        set {
            words[field.word] = UInt64(truncatingIfNeeded: newValue >> 64)
            words[field.word + 1] = UInt64(truncatingIfNeeded: newValue)
        }
    }

    /// True when no bit is set (an all-wildcard mask, or an empty key).
    @inlinable
    public var isZero: Bool {
        let s = words.span
        var acc: UInt64 = 0
        for i in 0..<FlowKey.wordCount { acc |= s[i] }
        return acc == 0
    }

    /// `self & mask`, word by word.
    @inlinable
    public func masked(by mask: borrowing FlowKey) -> FlowKey {
        var out = FlowKey()
        let a = words.span, m = mask.words.span
        var o = out.words.mutableSpan
        for i in 0..<FlowKey.wordCount { o[i] = a[i] & m[i] }
        return out
    }

    /// `self &= mask`, word by word, in place.
    @inlinable
    public mutating func formMasked(by mask: borrowing FlowKey) {
        let m = mask.words.span
        var o = words.mutableSpan
        for i in 0..<FlowKey.wordCount { o[i] &= m[i] }
    }

    /// `(self & mask) == other` where `other` is already masked.
    @inlinable
    public func matches(_ other: borrowing FlowKey, under mask: borrowing FlowKey) -> Bool {
        let a = words.span, m = mask.words.span, b = other.words.span
        var diff: UInt64 = 0
        for i in 0..<FlowKey.wordCount { diff |= (a[i] & m[i]) ^ b[i] }
        return diff == 0
    }

    /// Bitwise OR with another key (used to union masks).
    @inlinable
    public func union(_ other: borrowing FlowKey) -> FlowKey {
        var out = FlowKey()
        let a = words.span, b = other.words.span
        var o = out.words.mutableSpan
        for i in 0..<FlowKey.wordCount { o[i] = a[i] | b[i] }
        return out
    }

    /// True when every bit set in `self` is also set in `other`.
    @inlinable
    public func isSubset(of other: borrowing FlowKey) -> Bool {
        let a = words.span, b = other.words.span
        var extra: UInt64 = 0
        for i in 0..<FlowKey.wordCount { extra |= a[i] & ~b[i] }
        return extra == 0
    }

    /// A 32-bit hash of the whole key (all words).
    @inlinable
    public var hashValue32: UInt32 {
        let s = words.span
        var h: UInt64 = 0x9E37_79B9_7F4A_7C15
        for i in 0..<FlowKey.wordCount { h = FlowHash.mix(h, s[i]) }
        return FlowHash.finish(h)
    }
}

extension FlowKey: Equatable {
    @inlinable
    public static func == (lhs: FlowKey, rhs: FlowKey) -> Bool {
        let a = lhs.words.span, b = rhs.words.span
        var diff: UInt64 = 0
        for i in 0..<FlowKey.wordCount { diff |= a[i] ^ b[i] }
        return diff == 0
    }
}

extension FlowKey: Hashable {
    @inlinable
    public func hash(into hasher: inout Hasher) {
        // The words are folded with the cheap mix first and the hasher sees one word:
        // 28 rounds of the hasher per key were a tenth of a flow install's CPU.
        let s = words.span
        var h: UInt64 = 0x9E37_79B9_7F4A_7C15
        for i in 0..<FlowKey.wordCount { h = FlowHash.mix(h, s[i]) }
        hasher.combine(h)
    }
}

/// Word mixing for flow hashing: cheap, good avalanche, no allocation.
public enum FlowHash {
    @inlinable @inline(__always)
    public static func mix(_ h: UInt64, _ w: UInt64) -> UInt64 {
        var x = (h ^ w) &* 0xFF51_AFD7_ED55_8CCD
        x ^= x >> 32
        return x
    }

    @inlinable @inline(__always)
    public static func finish(_ h: UInt64) -> UInt32 {
        var x = h
        x ^= x >> 33
        x &*= 0xC4CE_B9FE_1A85_EC53
        x ^= x >> 29
        return UInt32(truncatingIfNeeded: x ^ (x >> 32))
    }
}

/// A field of at most 64 bits inside one key word.
///
/// The name is a StaticString so that a field is plain data: using one (every key
/// access) never retains or releases anything.
public struct FlowField: Sendable, Hashable, CustomStringConvertible {
    public let staticName: StaticString
    public let word: Int
    public let shift: Int
    public let bits: Int

    @inlinable
    public var valueMask: UInt64 { bits == 64 ? ~0 : (UInt64(1) << UInt64(bits)) - 1 }

    @inlinable
    public init(_ name: StaticString, word: Int, shift: Int, bits: Int) {
        self.staticName = name
        self.word = word
        self.shift = shift
        self.bits = bits
    }

    public var name: String { staticName.description }
    public var description: String { name }

    // A field is its position in the key; the name only labels it.
    public static func == (a: FlowField, b: FlowField) -> Bool { a.word == b.word && a.shift == b.shift && a.bits == b.bits }
    public func hash(into h: inout Hasher) {
        h.combine(word)
        h.combine(shift)
        h.combine(bits)
    }
}

/// A 128-bit field spanning two words (high word first).
public struct WideField: Sendable, Hashable, CustomStringConvertible {
    public let staticName: StaticString
    public let word: Int
    @inlinable
    public init(_ name: StaticString, word: Int) {
        self.staticName = name
        self.word = word
    }
    public var name: String { staticName.description }
    public var description: String { name }

    public static func == (a: WideField, b: WideField) -> Bool { a.word == b.word }
    public func hash(into h: inout Hasher) { h.combine(word) }
}

// The layout. Words 0-6 tunnel metadata, 7-12 datapath metadata and conntrack,
// 13-16 L2 and common L3/L4, 17-26 address families and ARP/ND.
//
// Fields are inlinable computed constants rather than stored statics: other modules
// then see a field's position at compile time, and a key access is a shift and a
// mask instead of a lazy-global check and a call.
extension FlowField {
    @inlinable public static var tunnelID: FlowField { FlowField("tun_id", word: 0, shift: 0, bits: 64) }
    @inlinable public static var tunnelIPv4Src: FlowField { FlowField("tun_src", word: 1, shift: 0, bits: 32) }
    @inlinable public static var tunnelIPv4Dst: FlowField { FlowField("tun_dst", word: 1, shift: 32, bits: 32) }
    @inlinable public static var tunnelTOS: FlowField { FlowField("tun_tos", word: 6, shift: 0, bits: 8) }
    @inlinable public static var tunnelTTL: FlowField { FlowField("tun_ttl", word: 6, shift: 8, bits: 8) }
    /// Tunnel flags as `TunnelFlags` bits.
    @inlinable public static var tunnelFlags: FlowField { FlowField("tun_flags", word: 6, shift: 16, bits: 16) }
    @inlinable public static var tunnelTPSrc: FlowField { FlowField("tun_tp_src", word: 6, shift: 32, bits: 16) }
    @inlinable public static var tunnelTPDst: FlowField { FlowField("tun_tp_dst", word: 6, shift: 48, bits: 16) }

    @inlinable public static var recircID: FlowField { FlowField("recirc_id", word: 7, shift: 0, bits: 32) }
    @inlinable public static var dpHash: FlowField { FlowField("dp_hash", word: 7, shift: 32, bits: 32) }
    @inlinable public static var priority: FlowField { FlowField("skb_priority", word: 8, shift: 0, bits: 32) }
    @inlinable public static var skbMark: FlowField { FlowField("skb_mark", word: 8, shift: 32, bits: 32) }
    @inlinable public static var inPort: FlowField { FlowField("in_port", word: 9, shift: 0, bits: 32) }
    @inlinable public static var packetType: FlowField { FlowField("packet_type", word: 9, shift: 32, bits: 32) }
    @inlinable public static var ctState: FlowField { FlowField("ct_state", word: 10, shift: 0, bits: 8) }
    @inlinable public static var ctZone: FlowField { FlowField("ct_zone", word: 10, shift: 16, bits: 16) }
    @inlinable public static var ctMark: FlowField { FlowField("ct_mark", word: 10, shift: 32, bits: 32) }

    @inlinable public static var ethSrc: FlowField { FlowField("eth_src", word: 13, shift: 0, bits: 48) }
    /// Outer VLAN TCI with VLAN_CFI (0x1000) set when a tag is present.
    @inlinable public static var vlanTCI: FlowField { FlowField("vlan_tci", word: 13, shift: 48, bits: 16) }
    @inlinable public static var ethDst: FlowField { FlowField("eth_dst", word: 14, shift: 0, bits: 48) }
    @inlinable public static var ethType: FlowField { FlowField("eth_type", word: 14, shift: 48, bits: 16) }
    @inlinable public static var cvlanTCI: FlowField { FlowField("cvlan_tci", word: 15, shift: 0, bits: 16) }
    @inlinable public static var vlanTPID: FlowField { FlowField("vlan_tpid", word: 15, shift: 16, bits: 16) }
    @inlinable public static var cvlanTPID: FlowField { FlowField("cvlan_tpid", word: 15, shift: 32, bits: 16) }
    /// IP protocol; for ARP the low 8 bits of the opcode.
    @inlinable public static var ipProto: FlowField { FlowField("ip_proto", word: 15, shift: 48, bits: 8) }
    /// One of `FragmentType`.
    @inlinable public static var ipFrag: FlowField { FlowField("ip_frag", word: 15, shift: 56, bits: 8) }
    @inlinable public static var ipTOS: FlowField { FlowField("ip_tos", word: 16, shift: 0, bits: 8) }
    @inlinable public static var ipTTL: FlowField { FlowField("ip_ttl", word: 16, shift: 8, bits: 8) }
    /// TCP/UDP/SCTP source port; ICMP type.
    @inlinable public static var tpSrc: FlowField { FlowField("tp_src", word: 16, shift: 16, bits: 16) }
    /// TCP/UDP/SCTP destination port; ICMP code.
    @inlinable public static var tpDst: FlowField { FlowField("tp_dst", word: 16, shift: 32, bits: 16) }
    /// The 12 TCP flag bits.
    @inlinable public static var tcpFlags: FlowField { FlowField("tcp_flags", word: 16, shift: 48, bits: 16) }
    /// IPv4 source; ARP sender protocol address.
    @inlinable public static var ipv4Src: FlowField { FlowField("ipv4_src", word: 17, shift: 0, bits: 32) }
    /// IPv4 destination; ARP target protocol address.
    @inlinable public static var ipv4Dst: FlowField { FlowField("ipv4_dst", word: 17, shift: 32, bits: 32) }
    @inlinable public static var ipv6Label: FlowField { FlowField("ipv6_label", word: 22, shift: 0, bits: 32) }
    /// Top MPLS label stack entry (label:20 tc:3 bos:1 ttl:8).
    @inlinable public static var mplsLSE: FlowField { FlowField("mpls_lse", word: 22, shift: 32, bits: 32) }
    /// Second and third MPLS label stack entries (the kernel keeps three).
    @inlinable public static var mplsLSE1: FlowField { FlowField("mpls_lse1", word: 27, shift: 0, bits: 32) }
    @inlinable public static var mplsLSE2: FlowField { FlowField("mpls_lse2", word: 27, shift: 32, bits: 32) }
    /// ARP sender hardware address; ND source link-layer address.
    @inlinable public static var arpSHA: FlowField { FlowField("arp_sha", word: 25, shift: 0, bits: 48) }
    /// ARP target hardware address; ND target link-layer address.
    @inlinable public static var arpTHA: FlowField { FlowField("arp_tha", word: 26, shift: 0, bits: 48) }
    @inlinable public static var ndSLL: FlowField { arpSHA }
    @inlinable public static var ndTLL: FlowField { arpTHA }

    // The original-direction tuple a ct() action leaves (ct_tuple4/ct_tuple6). It shares
    // words with fields no tracked IP packet has: MPLS's second and third label (word 27)
    // and ARP's hardware addresses (word 25); IPv6 addresses also take ND's words 23-26,
    // which only ND packets fill, and ct() finds those invalid (no tuple). A tuple is
    // present exactly when ct_nw_proto is not zero.
    /// ct_nw_src / ct_nw_dst (IPv4).
    @inlinable public static var ctOrigIPv4Src: FlowField { FlowField("ct_nw_src", word: 25, shift: 0, bits: 32) }
    @inlinable public static var ctOrigIPv4Dst: FlowField { FlowField("ct_nw_dst", word: 25, shift: 32, bits: 32) }
    /// ct_tp_src / ct_tp_dst: ports, or ICMP type and code.
    @inlinable public static var ctOrigTPSrc: FlowField { FlowField("ct_tp_src", word: 27, shift: 0, bits: 16) }
    @inlinable public static var ctOrigTPDst: FlowField { FlowField("ct_tp_dst", word: 27, shift: 16, bits: 16) }
    @inlinable public static var ctOrigProto: FlowField { FlowField("ct_nw_proto", word: 27, shift: 32, bits: 8) }
}

extension WideField {
    @inlinable public static var tunnelIPv6Src: WideField { WideField("tun_ipv6_src", word: 2) }
    @inlinable public static var tunnelIPv6Dst: WideField { WideField("tun_ipv6_dst", word: 4) }
    @inlinable public static var ctLabel: WideField { WideField("ct_label", word: 11) }
    @inlinable public static var ipv6Src: WideField { WideField("ipv6_src", word: 18) }
    @inlinable public static var ipv6Dst: WideField { WideField("ipv6_dst", word: 20) }
    @inlinable public static var ndTarget: WideField { WideField("nd_target", word: 23) }
    /// ct_ipv6_src / ct_ipv6_dst (see FlowField.ctOrigIPv4Src for the words they share).
    @inlinable public static var ctOrigIPv6Src: WideField { WideField("ct_ipv6_src", word: 23) }
    @inlinable public static var ctOrigIPv6Dst: WideField { WideField("ct_ipv6_dst", word: 25) }
}

/// `ip_frag` values, numbered as OVS_FRAG_TYPE_*.
public enum FragmentType: UInt8, Sendable {
    case none = 0
    case first = 1
    case later = 2
}

/// Tunnel key flags as stored in `FlowField.tunnelFlags` (OVS's FLOW_TNL_F_* bits, so
/// that they print in OVS's order: oam, df, csum, key).
public struct TunnelFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
    public static let oam = TunnelFlags(rawValue: 1 << 0)
    public static let dontFragment = TunnelFlags(rawValue: 1 << 1)
    public static let checksum = TunnelFlags(rawValue: 1 << 2)
    public static let key = TunnelFlags(rawValue: 1 << 3)
    public static let all: TunnelFlags = [.oam, .dontFragment, .checksum, .key]
}

/// EtherType constants.
public enum EtherType {
    public static let ipv4: UInt16 = 0x0800
    public static let arp: UInt16 = 0x0806
    public static let rarp: UInt16 = 0x8035
    public static let vlan: UInt16 = 0x8100
    public static let qinq: UInt16 = 0x88a8
    public static let ipv6: UInt16 = 0x86dd
    public static let mplsUnicast: UInt16 = 0x8847
    public static let mplsMulticast: UInt16 = 0x8848
    public static let ethernetBridging: UInt16 = 0x6558
    /// What the kernel reports for 802.2 frames without a SNAP ethertype.
    public static let ieee8022: UInt16 = 0x0005
    public static let nsh: UInt16 = 0x894f

    @inlinable
    public static func isVLAN(_ t: UInt16) -> Bool { t == vlan || t == qinq }
    @inlinable
    public static func isMPLS(_ t: UInt16) -> Bool { t == mplsUnicast || t == mplsMulticast }
}

/// IP protocol numbers.
public enum IPProto {
    public static let icmp: UInt8 = 1
    public static let tcp: UInt8 = 6
    public static let udp: UInt8 = 17
    public static let ipv6Hop: UInt8 = 0
    public static let ipv6Routing: UInt8 = 43
    public static let ipv6Fragment: UInt8 = 44
    public static let gre: UInt8 = 47
    public static let esp: UInt8 = 50
    public static let ipv6Auth: UInt8 = 51
    public static let icmpv6: UInt8 = 58
    public static let ipv6None: UInt8 = 59
    public static let ipv6Dest: UInt8 = 60
    public static let sctp: UInt8 = 132
}

public enum VLAN {
    /// Set in a key's TCI when a tag is present (the kernel's VLAN_CFI_MASK / VLAN_TAG_PRESENT).
    public static let present: UInt16 = 0x1000
    public static let vidMask: UInt16 = 0x0fff
    public static let pcpShift: UInt16 = 13
}
