import ESwitch
import NetLinux
import Packet
import Synchronization

/// Vport types, numbered as OVS_VPORT_TYPE_*.
public enum VportType: UInt32, Sendable {
    case netdev = 1
    case `internal` = 2
    case gre = 3
    case vxlan = 4
    case geneve = 5

    public var name: String {
        switch self {
        case .netdev: "netdev"
        case .internal: "internal"
        case .gre: "gre"
        case .vxlan: "vxlan"
        case .geneve: "geneve"
        }
    }

    public init?(name: String) {
        switch name {
        case "netdev", "system": self = .netdev
        case "internal": self = .internal
        case "vxlan": self = .vxlan
        case "gre": self = .gre
        case "geneve": self = .geneve
        default: return nil
        }
    }
}

/// struct ovs_vport_stats.
public struct VportStats: Sendable, Equatable {
    public var rxPackets: UInt64 = 0, txPackets: UInt64 = 0
    public var rxBytes: UInt64 = 0, txBytes: UInt64 = 0
    public var rxErrors: UInt64 = 0, txErrors: UInt64 = 0
    public var rxDropped: UInt64 = 0, txDropped: UInt64 = 0
    public init() {}
}

/// The receive side of a vport's netdev.
final class VportReceiver: @unchecked Sendable {
    let receiver: PacketReceiver
    init(_ r: consuming PacketReceiver) { receiver = r }
}

/// A datapath port. Its I/O objects change only while packet threads are paused.
public final class Vport: @unchecked Sendable {
    public let portNumber: UInt32
    public let name: String
    public let type: VportType
    /// The eSwitch port this netdev represents, if it is one of our representors.
    public let eswitchPort: PortIndex?
    public let ifindex: Int32
    /// UDP destination port of a vxlan vport.
    public let udpPort: UInt16
    public var upcallPID: UInt32 = 0

    let netdevRX: VportReceiver?
    let tap: TapQueue?
    let tunnel: TunnelSockets?

    let rxPackets = Atomic<UInt64>(0), rxBytes = Atomic<UInt64>(0)
    let txPackets = Atomic<UInt64>(0), txBytes = Atomic<UInt64>(0)
    let rxDropped = Atomic<UInt64>(0), txDropped = Atomic<UInt64>(0)
    let rxErrors = Atomic<UInt64>(0), txErrors = Atomic<UInt64>(0)
    /// Packets received with a mark that named their flow (partial offload hits).
    let rxHinted = Atomic<UInt64>(0)

    /// Received packets software found by mark: the `partial` of rx_offload counts.
    public var hintedPackets: UInt64 { rxHinted.load(ordering: .relaxed) }

    init(portNumber: UInt32, name: String, type: VportType, eswitchPort: PortIndex?, ifindex: Int32,
         netdevRX: VportReceiver?, tap: TapQueue?, tunnel: TunnelSockets?, udpPort: UInt16 = 0) {
        self.portNumber = portNumber
        self.name = name
        self.type = type
        self.eswitchPort = eswitchPort
        self.ifindex = ifindex
        self.netdevRX = netdevRX
        self.tap = tap
        self.tunnel = tunnel
        self.udpPort = udpPort
    }

    /// The fd packet threads poll for this port's receive side.
    var receiveFD: Int32? {
        if let r = netdevRX { return r.receiver.fd.raw }
        if let t = tap { return t.fd }
        if let u = tunnel { return u.rx.raw }
        return nil
    }

    public var stats: VportStats {
        var s = VportStats()
        s.rxPackets = rxPackets.load(ordering: .relaxed)
        s.txPackets = txPackets.load(ordering: .relaxed)
        s.rxBytes = rxBytes.load(ordering: .relaxed)
        s.txBytes = txBytes.load(ordering: .relaxed)
        s.rxErrors = rxErrors.load(ordering: .relaxed)
        s.txErrors = txErrors.load(ordering: .relaxed)
        s.rxDropped = rxDropped.load(ordering: .relaxed)
        s.txDropped = txDropped.load(ordering: .relaxed)
        return s
    }

    @inline(__always) func countRX(_ bytes: Int) {
        rxPackets.wrappingAdd(1, ordering: .relaxed)
        rxBytes.wrappingAdd(UInt64(bytes), ordering: .relaxed)
    }

    @inline(__always) func countTX(_ bytes: Int) {
        txPackets.wrappingAdd(1, ordering: .relaxed)
        txBytes.wrappingAdd(UInt64(bytes), ordering: .relaxed)
    }
}

/// Sockets of a vxlan vport's software path: a UDP socket receiving the VXLAN
/// payloads the kernel delivers, and a raw IP socket sending our encapsulated frames
/// (the kernel routes them and resolves neighbours in the daemon's namespace).
public final class TunnelSockets: @unchecked Sendable {
    public let rx: FileDescriptor
    public let tx: FileDescriptor
    public let tx6: FileDescriptor?

    public init(rx: consuming FileDescriptor, tx: consuming FileDescriptor, tx6: consuming FileDescriptor?) {
        self.rx = rx
        self.tx = tx
        self.tx6 = tx6
    }
}
