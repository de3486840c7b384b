import Packet

/// A datapath flow's match: the key as written (not masked, as OVS's userspace
/// datapath keeps it for dumps) and the mask.
public struct FlowMatch: Sendable, Equatable, Hashable {
    public var key: FlowKey
    public var mask: FlowKey

    public init(key: FlowKey, mask: FlowKey) {
        self.key = key
        self.mask = mask
    }

    /// The key with wildcarded bits cleared (what the classifier stores).
    public var maskedKey: FlowKey { key.masked(by: mask) }
}

/// Special values of the OVS flow representation.
public enum ODPConstants {
    /// in_port value meaning "none" (ODPP_NONE).
    public static let noPort: UInt32 = 0xffff_ffff
    /// packet_type of an Ethernet frame (PT_ETH).
    public static let packetTypeEthernet: UInt32 = 0
    /// packet_type namespace of "an L3 packet whose type is an EtherType" (OFPHTN_ETHERTYPE).
    public static let namespaceEtherType: UInt32 = 1
    /// How many VLAN headers a flow may match (Open vSwitch's default vlan-limit):
    /// what `parse-flow` normalises to, as ovs-vswitchd would.
    public static let vlanLimit = 1
    /// How many the datapath itself parses and matches (the kernel datapath: two).
    public static let datapathVLANLimit = 2
}

extension FlowKey {
    @inlinable public var isIP: Bool {
        let t = UInt16(truncatingIfNeeded: self[.ethType])
        return t == EtherType.ipv4 || t == EtherType.ipv6
    }

    @inlinable public var isICMPv6: Bool {
        UInt16(truncatingIfNeeded: self[.ethType]) == EtherType.ipv6 && self[.ipProto] == UInt64(IPProto.icmpv6)
    }

    /// OVS is_nd(): ICMPv6 neighbour solicitation or advertisement with code 0.
    @inlinable public var isND: Bool {
        isICMPv6 && self[.tpDst] == 0 && (self[.tpSrc] == 135 || self[.tpSrc] == 136)
    }

    @inlinable public var tunnelDestinationSet: Bool { self[.tunnelIPv4Dst] != 0 || self[.tunnelIPv6Dst] != 0 }
    @inlinable public var tunnelSourceSet: Bool { self[.tunnelIPv4Src] != 0 || self[.tunnelIPv6Src] != 0 }
}
