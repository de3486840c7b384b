import Packet

/// An IPv4 or IPv6 address as the routing tables key it.
public enum IPAddress: Hashable, Sendable, CustomStringConvertible {
    case v4(UInt32)
    case v6(UInt128)

    public var family: UInt8 { if case .v4 = self { 2 } else { 10 } }   // AF_INET, AF_INET6
    public var byteCount: Int { if case .v4 = self { 4 } else { 16 } }

    /// Network byte order.
    public var bytes: [UInt8] {
        switch self {
        case .v4(let a): (0..<4).map { UInt8(truncatingIfNeeded: a >> UInt32(24 - 8 * $0)) }
        case .v6(let a): (0..<16).map { UInt8(truncatingIfNeeded: a >> UInt128(120 - 8 * $0)) }
        }
    }

    /// From network-byte-order bytes (4 or 16).
    public init?(bytes p: UnsafeRawPointer, count: Int) {
        switch count {
        case 4: self = .v4((0..<4).reduce(UInt32(0)) { $0 << 8 | UInt32(p.load(fromByteOffset: $1, as: UInt8.self)) })
        case 16: self = .v6((0..<16).reduce(UInt128(0)) { $0 << 8 | UInt128(p.load(fromByteOffset: $1, as: UInt8.self)) })
        default: return nil
        }
    }

    public var isZero: Bool {
        switch self {
        case .v4(let a): a == 0
        case .v6(let a): a == 0
        }
    }

    public var description: String {
        switch self {
        case .v4(let a): AddressText.ipv4(a)
        case .v6(let a): AddressText.ipv6(a)
        }
    }

    /// The remote and local endpoints of a tunnel key.
    public static func endpoints(of t: TunnelMetadata) -> (remote: IPAddress, local: IPAddress) {
        t.isIPv6 ? (.v6(t.ipv6Dst), .v6(t.ipv6Src)) : (.v4(t.ipv4Dst), .v4(t.ipv4Src))
    }
}
