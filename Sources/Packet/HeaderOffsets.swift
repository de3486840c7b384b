/// Where the headers of a parsed frame start, relative to the first byte of the frame,
/// as the kernel keeps skb->network_header and skb->transport_header.
public struct HeaderOffsets: Sendable, Equatable {
    /// Start of the L3 header (after Ethernet and any VLAN tags); nil for frames that
    /// are too short for an Ethernet header.
    public var l3: Int
    /// Start of the L4 header when the L3 header was complete; -1 otherwise.
    public var l4: Int
    /// Bytes of VLAN tags between the MAC addresses and the EtherType.
    public var vlanBytes: Int

    @inlinable
    public init(l3: Int = 14, l4: Int = -1, vlanBytes: Int = 0) {
        self.l3 = l3
        self.l4 = l4
        self.vlanBytes = vlanBytes
    }

    @inlinable public var hasL4: Bool { l4 >= 0 }
}
