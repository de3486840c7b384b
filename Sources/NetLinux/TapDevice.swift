import CNetLinux

/// One TAP device queue: the NIC side of a netdev. A write is the netdev receiving a
/// frame; a read is a frame the netdev transmitted. With `vnetHeader` every frame is
/// preceded by a 12-byte virtio_net_hdr_mrg_rxbuf, so checksum and GSO state (64 KB
/// superpackets) cross without being resolved.
///
/// The device exists while this queue is open (not persistent): closing it, or the
/// process dying, removes the netdev, wherever it has been moved.
public struct TapDevice: ~Copyable {
    public static let vnetHeaderSize = 12

    public let fd: FileDescriptor
    public let name: String
    public let vnetHeader: Bool

    public init(name: String, vnetHeader: Bool = true, multiQueue: Bool = false) throws(SystemError) {
        var flags = CNL_IFF_TAP | CNL_IFF_NO_PI
        if vnetHeader { flags |= CNL_IFF_VNET_HDR }
        if multiQueue { flags |= CNL_IFF_MULTI_QUEUE }
        var out = [CChar](repeating: 0, count: Int(IFNAMSIZ))
        let raw = try syscall("TUNSETIFF \(name)") { cnl_tun_open(name, flags, &out) }
        let owned = FileDescriptor(adopting: raw)
        if vnetHeader {
            try syscall("TUNSETVNETHDRSZ") { cnl_tun_set_vnet_header_size(raw, Int32(TapDevice.vnetHeaderSize)) }
            // The netdev may hand us partial checksums and TSO superpackets, and accepts them.
            let offloads = CNL_TUN_F_CSUM | CNL_TUN_F_TSO4 | CNL_TUN_F_TSO6 | CNL_TUN_F_TSO_ECN
            try syscall("TUNSETOFFLOAD") { cnl_tun_set_offload(raw, offloads) }
        }
        fd = owned
        self.name = cString(out)
        self.vnetHeader = vnetHeader
    }

    /// The device's current name (it may be renamed by the user).
    public func currentName() -> String {
        var out = [CChar](repeating: 0, count: Int(IFNAMSIZ))
        guard cnl_tun_name(fd.raw, &out) == 0 else { return name }
        return cString(out)
    }

    /// The network namespace the device lives in now, as an fd (TUNGETDEVNETNS).
    public func namespace() throws(SystemError) -> FileDescriptor {
        FileDescriptor(adopting: try syscall("TUNGETDEVNETNS") { cnl_tun_device_netns(fd.raw) })
    }

    /// Sets the MAC through the TAP fd, which works in whatever namespace the device is.
    public func setHardwareAddress(_ mac: MACAddress) throws(SystemError) {
        let b = mac.bytes
        try syscall("SIOCSIFHWADDR(tap)") { cnl_tun_set_hwaddr(fd.raw, b) }
    }

    /// Sets the netdev's carrier (TUNSETCARRIER, Linux 5.0), as a NIC driver does when
    /// its physical link comes and goes.
    public func setCarrier(_ on: Bool) throws(SystemError) {
        try syscall("TUNSETCARRIER") { cnl_tun_set_carrier(fd.raw, on ? 1 : 0) }
    }

    public func hardwareAddress() throws(SystemError) -> MACAddress {
        var mac = [UInt8](repeating: 0, count: 6)
        try syscall("SIOCGIFHWADDR(tap)") { cnl_tun_get_hwaddr(fd.raw, &mac) }
        return MACAddress(bytes: (mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]))
    }
}

/// A NUL-terminated C buffer as a String.
func cString(_ buf: [CChar]) -> String {
    let bytes = buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
    return String(decoding: bytes, as: UTF8.self)
}
