import NetLinux
import Packet

/// A TAP queue owned by the eSwitch: a VF netdev or a representor.
public final class TapQueue: @unchecked Sendable {
    public let tap: TapDevice
    public init(_ tap: consuming TapDevice) { self.tap = tap }
    public var fd: Int32 { tap.fd.raw }
    public var name: String { tap.name }
}

/// A VF netdev: one end of a veth pair (the user moves it into the namespace that plays
/// the VM); the other end stays on the switch side and carries the eSwitch's program.
public final class VFNetdev: @unchecked Sendable {
    /// What the user knows the VF by (`<switch>v<N>`).
    public let name: String
    /// The switch-side end, in the daemon's namespace.
    public let switchSide: String
    public let switchIfindex: Int32
    public init(name: String, switchSide: String, switchIfindex: Int32) {
        self.name = name
        self.switchSide = switchSide
        self.switchIfindex = switchIfindex
    }
}

/// The uplink netdev: it stands for the wire.
public final class UplinkNetdev: @unchecked Sendable {
    public let name: String
    public let ifindex: Int32
    public init(name: String, ifindex: Int32) {
        self.name = name
        self.ifindex = ifindex
    }
}

public enum PortFlavour: String, Sendable {
    case physical
    case pcivf
}

/// Administrative state of a VF, the devlink port function way.
public struct VFConfig: Sendable, Equatable {
    /// Admin MAC (0: none; the VF keeps what it has).
    public var mac: UInt64 = 0
    /// VST VLAN in legacy mode (0: none).
    public var vlan: UInt16 = 0
    public var qos: UInt8 = 0
    public var linkUp = true
    public init() {}
}

public struct PortCounters: Sendable, Equatable {
    public var rxPackets: UInt64 = 0
    public var rxBytes: UInt64 = 0
    public var txPackets: UInt64 = 0
    public var txBytes: UInt64 = 0
    public var rxDropped: UInt64 = 0
    public var txDropped: UInt64 = 0
    /// Frames that missed the hardware and went to the representor.
    public var toRepresentor: UInt64 = 0
    /// Frames the representor sent into the port.
    public var fromRepresentor: UInt64 = 0
    public init() {}
}

/// One eSwitch port and the netdevs bound to it (control thread only).
public final class ESwitchPort: @unchecked Sendable {
    public let index: PortIndex
    public let flavour: PortFlavour
    /// VF number, nil for the uplink.
    public let vf: Int?
    public var config = VFConfig()

    /// VF netdev (veth pair), for VF ports.
    public internal(set) var vfNetdev: VFNetdev?
    /// Uplink netdev, for the uplink port.
    public internal(set) var uplink: UplinkNetdev?
    /// Whether the VF's end of the veth pair was in another namespace when last looked at.
    public internal(set) var vfInOtherNamespace = false
    /// The representor netdev (switchdev mode only).
    public internal(set) var representor: TapQueue?
    /// Someone captures on the representor: the hardware mirrors what is sent on it
    /// through its transmit (mirrorRepresentorTransmit).
    public internal(set) var mirrorsTransmit = false
    /// Current MTU of the port's netdev (the VF follows its representor's).
    public static let defaultMTU = 1500
    public internal(set) var mtu = ESwitchPort.defaultMTU
    /// The VF's MAC as the legacy MAC table knows it (0: none yet).
    var learnedMAC: UInt64 = 0

    init(index: PortIndex, flavour: PortFlavour, vf: Int?) {
        self.index = index
        self.flavour = flavour
        self.vf = vf
    }

    /// The netdev name users know the port by (VF netdev or uplink).
    public var netdevName: String {
        vfNetdev?.name ?? uplink?.name ?? ""
    }

    /// The kernel's phys_port_name for the representor: p0, pf0vf<N>.
    public var physPortName: String {
        if let vf { return "pf0vf\(vf)" }
        return "p0"
    }
}

/// A port function setting the device refuses, with the errno devlink would return.
public struct PortFunctionRefusal: Error, Equatable, CustomStringConvertible {
    public let errno: Int32
    public let description: String
    public init(_ errno: Int32, _ description: String) {
        self.errno = errno
        self.description = description
    }
}
