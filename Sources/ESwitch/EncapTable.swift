import Packet

/// What identifies a shared encap entry: every flow with the same tunnel key and
/// egress shares one (as mlx5 shares encap entries).
public struct EncapKey: Sendable, Hashable, CustomStringConvertible {
    public var tunnel: TunnelMetadata
    public var udpPort: UInt16
    public var egress: PortIndex

    public init(tunnel: TunnelMetadata, udpPort: UInt16, egress: PortIndex) {
        self.tunnel = tunnel
        self.udpPort = udpPort
        self.egress = egress
    }

    public var description: String {
        let dst = tunnel.isIPv6 ? AddressText.ipv6(tunnel.ipv6Dst) : AddressText.ipv4(tunnel.ipv4Dst)
        return "vxlan vni \(tunnel.id) dst \(dst):\(udpPort)"
    }
}

/// A shared outer header in the encap table. The tunnel tracker rewrites the header
/// when the neighbour changes; the data plane replaces it whole, so packets always
/// see a complete header.
public final class EncapEntry: @unchecked Sendable {
    public let id: UInt32
    public let key: EncapKey
    public internal(set) var template: VXLAN.EncapTemplate
    /// Rules that use this entry (writer side).
    public internal(set) var users = 0

    /// Public for tests of a data plane on its own; the driver creates entries through
    /// `ESwitch.encapEntry(for:header:)`, which accounts for them.
    public init(id: UInt32, key: EncapKey, header: VXLAN.EncapTemplate) {
        self.id = id
        self.key = key
        self.template = header
    }
}
