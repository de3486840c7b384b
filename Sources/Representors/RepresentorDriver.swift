import ESwitch
import Logging
import NetLinux

/// The driver side of the netdevs: creates the VF netdevs and the uplink binding,
/// creates and destroys representors on mode changes, publishes each representor's
/// switch id and phys_port_name (alias and altname), removes stale netdevs, and
/// reflects a representor's MTU to its VF.
public final class RepresentorDriver: RepresentorProvider, @unchecked Sendable {
    public let naming: NetdevNaming
    /// The switch id (as /sys/class/net/<rep>/phys_switch_id shows on mlx5).
    public let switchID: String
    private let logger: Logger
    private var lastMTU: [PortIndex: Int] = [:]
    /// The uplink's NOARP flag and IPv6 setting before we changed them.
    private var uplinkRestore: (name: String, noARP: Bool, ipv6: String?)?

    public init(naming: NetdevNaming, logger: Logger) {
        self.naming = naming
        self.logger = logger
        let h = NetdevNaming.mac(for: "switch:" + naming.switchName)
        switchID = String(format6: h)
    }

    /// Removes netdevs a previous instance left behind (persistent TAPs with our names;
    /// ours are not persistent, so after a SIGKILL the kernel has already removed them).
    /// Refuses to start next to a live instance or over a netdev of another kind.
    public func removeStale(vfs: Int, extra: [String] = []) throws {
        var rt = try RouteLink()
        for name in naming.allNames(vfs: vfs) + extra {
            guard let link = try rt.link(named: name) else { continue }
            guard link.kind == "tun" else {
                throw DriverError("netdev \(name) exists and is not ours (kind \(link.kind.isEmpty ? "unknown" : link.kind))")
            }
            // A non-persistent TAP exists only while a file holds it: another live eswd,
            // or one just killed whose io_uring the kernel is still tearing down (that
            // happens in the background, shortly after the process is gone).
            if !link.persistent {
                if try InterfaceControl().awaitRemoval(of: [name]) { continue }
                throw DriverError("netdev \(name) is in use by a running process (another eswd named \(naming.switchName)?)")
            }
            try rt.delete(name: name)
            logger.notice("removed stale netdev", metadata: ["netdev": "\(name)"])
        }
    }

    /// Creates the VF netdevs: TAPs with vnet headers and TSO, stable MACs, down.
    public func createVFs(count: Int) throws -> [TapQueue] {
        var out: [TapQueue] = []
        for n in 0..<count {
            let tap = try TapDevice(name: naming.vf(n))
            try tap.setHardwareAddress(MACAddress(NetdevNaming.mac(for: naming.vf(n))))
            out.append(TapQueue(tap))
        }
        return out
    }

    /// Attaches to the uplink netdev. It stands for the physical port: the host's IP
    /// stack reaches the wire through the uplink representor, so the netdev itself is
    /// kept out of ARP and IPv6 (else it would answer for the representor's addresses
    /// with its own MAC). `releaseUplink` puts both back.
    public func bindUplink(_ name: String) throws -> UplinkIO {
        let c = try InterfaceControl()
        uplinkRestore = (name, (try c.flags(of: name)) & Int32(IFF_NOARP) != 0, (try? ProcFile.read(ipv6Disable(name)))?.filter { !$0.isWhitespace })
        try c.setFlag(name, Int32(IFF_NOARP), true)
        try? ProcFile.write(ipv6Disable(name), "1")
        try c.setUp(name, true)
        return UplinkIO(try PacketRing(interface: name))
    }

    public func releaseUplink() {
        guard let (name, noARP, ipv6) = uplinkRestore, let c = try? InterfaceControl() else { return }
        try? c.setFlag(name, Int32(IFF_NOARP), noARP)
        if let ipv6 { try? ProcFile.write(ipv6Disable(name), ipv6) }
        uplinkRestore = nil
    }

    private func ipv6Disable(_ name: String) -> String { "/proc/sys/net/ipv6/conf/\(name)/disable_ipv6" }

    // MARK: RepresentorProvider

    public func createRepresentor(for port: ESwitchPort) throws -> TapQueue {
        let name = naming.representor(for: port)
        let tap = try TapDevice(name: name)
        try tap.setHardwareAddress(MACAddress(NetdevNaming.mac(for: name)))
        let q = TapQueue(tap)
        let c = try InterfaceControl()
        let index = try c.index(of: name)
        var rt = try RouteLink()
        // Where a user looks for the switch id and port name: the alias and an altname.
        try? rt.setAlias(index: index, "\(naming.switchName) switch_id \(switchID) port \(port.index) phys_port_name \(port.physPortName)")
        try? rt.addAlternativeName(index: index, "\(naming.switchName)-\(port.physPortName)")
        try? c.setMTU(name, port.mtu)
        try c.setUp(name, true)
        lastMTU[port.index] = try c.mtu(of: name)
        logger.info("representor created", metadata: ["netdev": "\(name)", "port": "\(port.index)"])
        return q
    }

    public func destroyRepresentor(_ queue: TapQueue, of port: ESwitchPort) {
        // Closing the last reference to the TAP queue removes the netdev.
        lastMTU[port.index] = nil
        logger.info("representor removed", metadata: ["netdev": "\(queue.name)"])
    }

    /// Reflects representor MTU changes to the VFs. Cheap; call on link events and
    /// periodically.
    public func syncMTU(_ sw: ESwitch) {
        guard let c = try? InterfaceControl() else { return }
        for p in sw.ports {
            guard let r = p.representor, let mtu = try? c.mtu(of: r.name) else { continue }
            if lastMTU[p.index] != mtu {
                lastMTU[p.index] = mtu
                do {
                    try sw.reflectMTU(p.index, mtu: mtu)
                    logger.info("representor MTU reflected", metadata: ["port": "\(p.physPortName)", "mtu": "\(mtu)"])
                } catch {
                    logger.warning("MTU reflection failed", metadata: ["port": "\(p.physPortName)", "error": "\(error)"])
                }
            }
        }
    }
}

public struct DriverError: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}

extension String {
    init(format6 v: UInt64) {
        self = String(v & 0xffff_ffff_ffff, radix: 16).leftPad(12)
    }

    func leftPad(_ n: Int) -> String { String(repeating: "0", count: max(0, n - count)) + self }
}
