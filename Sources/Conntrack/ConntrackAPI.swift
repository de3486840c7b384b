import Packet

// The connection tracker's public face: what the datapath hands it (one decoded ct()
// action), what it reports (entries for dump-conntrack, statistics), and what the
// hardware offload reads and feeds back (established connections, their counters).
// The semantics are Open vSwitch's userspace conntrack (lib/conntrack*.c) — docs/ARCHITECTURE.md §9.

/// ct_state bits, numbered as OVS_CS_F_*.
public struct CTState: OptionSet, Sendable, Hashable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    public static let new = CTState(rawValue: 0x01)
    public static let established = CTState(rawValue: 0x02)
    public static let related = CTState(rawValue: 0x04)
    public static let replyDirection = CTState(rawValue: 0x08)
    public static let invalid = CTState(rawValue: 0x10)
    public static let tracked = CTState(rawValue: 0x20)
    public static let sourceNAT = CTState(rawValue: 0x40)
    public static let destinationNAT = CTState(rawValue: 0x80)
}

/// An address of either family: IPv4 in the low 32 bits with `isIPv6` false.
public struct CTAddress: Sendable, Hashable, Comparable {
    public var value: UInt128
    public var isIPv6: Bool
    public init(ipv4: UInt32) { value = UInt128(ipv4); isIPv6 = false }
    public init(ipv6: UInt128) { value = ipv6; isIPv6 = true }
    public static func < (a: CTAddress, b: CTAddress) -> Bool { a.value < b.value }
}

/// nat(...) of a ct() action. `kind == .none` is a bare `nat`: apply the NAT the
/// connection was committed with, set up nothing new.
public struct NATSpec: Sendable, Equatable {
    public enum Kind: Sendable, Equatable { case none, source, destination }
    public var kind: Kind
    /// Address range (inclusive); nil: keep the address (port-only NAT).
    public var addresses: ClosedRange<CTAddress>?
    /// Port range (inclusive); nil: keep the port unless a clash forces a change.
    public var ports: ClosedRange<UInt16>?
    public var persistent = false, hash = false, random = false
    public init(kind: Kind, addresses: ClosedRange<CTAddress>? = nil, ports: ClosedRange<UInt16>? = nil,
                persistent: Bool = false, hash: Bool = false, random: Bool = false) {
        self.kind = kind
        self.addresses = addresses
        self.ports = ports
        self.persistent = persistent
        self.hash = hash
        self.random = random
    }
}

/// One ct() action, decoded and validated by the datapath.
public struct CTAction: Sendable, Equatable {
    public var zone: UInt16 = 0
    public var commit = false
    /// force_commit: a connection seen in the reply direction is torn down and committed anew.
    public var forceCommit = false
    public var markValue: UInt32 = 0, markMask: UInt32 = 0
    public var labelValue: UInt128 = 0, labelMask: UInt128 = 0
    public var nat: NATSpec?
    public init() {}

    /// force_commit implies commit, as the kernel's parse_ct sets both.
    var commits: Bool { commit || forceCommit }
}
