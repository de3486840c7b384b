import NetLinux
import Packet
import Synchronization

/// A TAP queue owned by the eSwitch: a VF netdev or a representor.
public final class TapQueue: @unchecked Sendable {
    public let tap: TapDevice
    public init(_ tap: consuming TapDevice) { self.tap = tap }
    public var fd: Int32 { tap.fd.raw }
    public var name: String { tap.name }
}

/// The uplink's receive ring (one packet thread owns it) and its ifindex for senders.
public final class UplinkIO: @unchecked Sendable {
    public var ring: PacketRing
    public let ifindex: Int32
    public let name: String
    public init(_ ring: consuming PacketRing) {
        ifindex = ring.ifindex
        name = ring.name
        self.ring = ring
    }
    public var fd: Int32 { ring.fd.raw }
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

/// Counters of one port as one packet thread saw them. Each thread has its own set,
/// so nothing is shared on the packet path; readers sum them.
struct PortCounterSet {
    static let rxPackets = 0, rxBytes = 1, txPackets = 2, txBytes = 3, rxDropped = 4, txDropped = 5
    static let toRepresentor = 6, fromRepresentor = 7
    static let count = 8
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

/// Per-thread counter storage for every port: [thread][port][counter], each thread's
/// block on its own cache lines.
final class CounterBlock: @unchecked Sendable {
    let ports: Int
    let threads: Int
    let stride: Int
    let storage: UnsafeMutablePointer<Atomic<UInt64>>

    init(ports: Int, threads: Int) {
        self.ports = ports
        self.threads = threads
        stride = (ports * PortCounterSet.count + 7) / 8 * 8 + 8
        storage = .allocate(capacity: stride * threads)
        for i in 0..<(stride * threads) { (storage + i).initialize(to: Atomic(0)) }
    }

    deinit {
        storage.deinitialize(count: stride * threads)
        storage.deallocate()
    }

    @inline(__always)
    func add(thread: Int, port: Int, _ counter: Int, _ v: UInt64) {
        guard port < ports else { return }
        let c = storage + thread * stride + port * PortCounterSet.count + counter
        c.pointee.store(c.pointee.load(ordering: .relaxed) &+ v, ordering: .relaxed)
    }

    func read(port: Int) -> PortCounters {
        var r = PortCounters()
        guard port < ports else { return r }
        for t in 0..<threads {
            let b = storage + t * stride + port * PortCounterSet.count
            r.rxPackets &+= b[PortCounterSet.rxPackets].load(ordering: .relaxed)
            r.rxBytes &+= b[PortCounterSet.rxBytes].load(ordering: .relaxed)
            r.txPackets &+= b[PortCounterSet.txPackets].load(ordering: .relaxed)
            r.txBytes &+= b[PortCounterSet.txBytes].load(ordering: .relaxed)
            r.rxDropped &+= b[PortCounterSet.rxDropped].load(ordering: .relaxed)
            r.txDropped &+= b[PortCounterSet.txDropped].load(ordering: .relaxed)
            r.toRepresentor &+= b[PortCounterSet.toRepresentor].load(ordering: .relaxed)
            r.fromRepresentor &+= b[PortCounterSet.fromRepresentor].load(ordering: .relaxed)
        }
        return r
    }
}

/// One eSwitch port and the netdevs bound to it. Packet threads read the I/O fields
/// only while running; the control thread changes them only while the packet threads
/// are paused.
public final class ESwitchPort: @unchecked Sendable {
    public let index: PortIndex
    public let flavour: PortFlavour
    /// VF number, nil for the uplink.
    public let vf: Int?
    public var config = VFConfig()

    /// VF netdev (TAP), for VF ports.
    public internal(set) var vfQueue: TapQueue?
    /// Uplink netdev, for the uplink port.
    public internal(set) var uplink: UplinkIO?
    /// The representor netdev (switchdev mode only).
    public internal(set) var representor: TapQueue?
    /// Current MTU of the port's netdev (the VF follows its representor's).
    public internal(set) var mtu = 1500
    /// Which packet thread receives this port's frames.
    var worker = 0
    /// The VF's MAC as the legacy MAC table knows it (0: none yet).
    var learnedMAC: UInt64 = 0

    init(index: PortIndex, flavour: PortFlavour, vf: Int?) {
        self.index = index
        self.flavour = flavour
        self.vf = vf
    }

    /// The netdev name users know the port by (VF netdev or uplink).
    public var netdevName: String {
        vfQueue?.name ?? uplink?.name ?? ""
    }

    /// The kernel's phys_port_name for the representor: p0, pf0vf<N>.
    public var physPortName: String {
        if let vf { return "pf0vf\(vf)" }
        return "p0"
    }
}
