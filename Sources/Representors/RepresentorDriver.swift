import ESwitch
import Logging
import NetLinux

/// The driver side of the netdevs: creates the VF netdevs (veth pairs) and the uplink
/// binding, creates and destroys representors on mode changes, publishes each
/// representor's switch id and phys_port_name (alias and altname), removes stale
/// netdevs, reflects a representor's MTU to its VF, and reaches VF netdevs in whatever
/// namespace the user moved them to.
public final class RepresentorDriver: RepresentorProvider, VFLinkOperations, @unchecked Sendable {
    public let naming: NetdevNaming
    /// The switch id (as /sys/class/net/<rep>/phys_switch_id shows on mlx5).
    public let switchID: String
    private let logger: Logger
    private var lastMTU: [PortIndex: Int] = [:]
    /// Captures on representors and the mirror of what is sent on them.
    public let capture: RepresentorCapture
    /// The uplink's NOARP flag and IPv6 setting before we changed them.
    private var uplinkRestore: (name: String, noARP: Bool, ipv6: String?)?

    public init(naming: NetdevNaming, logger: Logger) {
        self.naming = naming
        self.logger = logger
        capture = RepresentorCapture(logger: logger)
        let h = NetdevNaming.mac(for: "switch:" + naming.switchName)
        switchID = String(format6: h)
    }

    /// Who owns a netdev while it is alive ("eswd eswp (pid 1234)"), nil when no live
    /// process does: set by the daemon (the data plane knows how to tell).
    public var liveOwner: (String) -> String? = { _ in nil }

    /// Before anything is created: the uplink must exist and no live eswd may be driving
    /// it (as its uplink or as one of its own ports).
    public func checkUplink(_ name: String) throws {
        guard try InterfaceControl().exists(name) else { throw DriverError("uplink \(name) does not exist") }
        if let owner = liveOwner(name) { throw DriverError("uplink \(name) is in use by \(owner)") }
    }

    /// Removes netdevs a previous instance left behind, whatever its number of VFs: the
    /// switch-side ends of VF veth pairs (deleting one removes its VF end wherever it
    /// is), persistent TAPs with our names. Non-persistent TAPs go with the process that
    /// held them. Refuses to start next to a live instance or over a netdev of another
    /// kind with a name this run needs; one of our pattern that this run does not need
    /// and that is not ours is left alone.
    public func removeStale(vfs: Int, extra: [String] = []) throws {
        var rt = try RouteLink()
        let c = try InterfaceControl()
        let present = c.allNames()
        // Representors first: a live instance holds them, and then nothing may be touched.
        let needed = (0..<vfs).map { naming.representor(vf: $0) } + [naming.representor(vf: nil)] + extra
        let leftOver = present.filter { name in naming.vfIndex(ofRepresentor: name).map { $0 >= vfs } ?? false }
        for name in needed + leftOver.sorted() {
            let isNeeded = needed.contains(name)
            guard let link = try rt.link(named: name) else { continue }
            guard link.kind == "tun" else {
                if !isNeeded { continue }
                throw DriverError("netdev \(name) exists and is not ours (kind \(link.kind.isEmpty ? "unknown" : link.kind))")
            }
            // A non-persistent TAP exists only while a file holds it: another live eswd.
            if !link.persistent {
                if !isNeeded { continue }
                if c.awaitRemoval(of: [name]) { continue }
                throw DriverError("netdev \(name) is in use by a running process (another eswd named \(naming.switchName)?)")
            }
            try rt.delete(name: name)
            logger.notice("removed stale netdev", metadata: ["netdev": "\(name)"])
        }
        // VF veth pairs: ours when the pair is <name>v<N> <-> <name>sw<N>, for every N
        // present (a killed run may have had more VFs than this one).
        let leftOverVFs = Set(present.compactMap { naming.vfIndex(ofVFOrSwitchSide: $0) }).filter { $0 >= vfs }
        for n in Array(0..<vfs) + leftOverVFs.sorted() {
            let vf = naming.vf(n), sw = naming.vfSwitchSide(n)
            for (name, partner) in [(sw, vf), (vf, sw)] {
                guard let link = try rt.link(named: name) else { continue }
                let peer = link.kind == "veth" ? try? rt.vethPeer(of: try c.index(of: name)) : nil
                let peerName = peer.flatMap { $0.netnsID == nil ? c.name(of: $0.index) : nil }
                // The switch side's VF end may have been moved away: its name is then unknown.
                let ours = link.kind == "veth" && (peerName == partner || (name == sw && peer?.netnsID != nil))
                guard ours else {
                    if n >= vfs { break }
                    throw DriverError("netdev \(name) exists and is not ours (kind \(link.kind.isEmpty ? "unknown" : link.kind)\(peerName.map { ", peer \($0)" } ?? ""))")
                }
                // A live eswd with our name (and other representor names) still drives it.
                if let owner = liveOwner(sw) { throw DriverError("netdev \(sw) is in use by \(owner)") }
                try rt.delete(name: name)
                logger.notice("removed stale netdev", metadata: ["netdev": "\(name)"])
            }
        }
    }

    /// Creates the VF netdevs: veth pairs, the VF end `<name>v<N>` with a stable MAC,
    /// the switch-side end up with the largest MTU (the VF end's MTU is what limits).
    /// On failure, the pairs already made are deleted again.
    public func createVFs(count: Int) throws -> [VFNetdev] {
        var rt = try RouteLink()
        let c = try InterfaceControl()
        var made: [String] = []
        do {
            var out: [VFNetdev] = []
            for n in 0..<count {
                let vf = naming.vf(n), sw = naming.vfSwitchSide(n)
                try rt.addVethPair(name: vf, peer: sw)
                made.append(sw)
                try c.setHardwareAddress(vf, MACAddress(NetdevNaming.mac(for: vf)))
                try? c.setMTU(sw, 65535)
                try c.setUp(sw, true)
                out.append(VFNetdev(name: vf, switchSide: sw, switchIfindex: try c.index(of: sw)))
            }
            return out
        } catch {
            for sw in made { try? rt.delete(name: sw) }
            throw error
        }
    }

    /// Deletes the VF veth pairs (at shutdown; the VF ends go wherever they are).
    public func destroyVFs(_ vfs: [VFNetdev]) {
        guard var rt = try? RouteLink() else { return }
        for v in vfs { try? rt.delete(name: v.switchSide) }
    }

    /// Attaches to the uplink netdev. It stands for the physical port: the host's IP
    /// stack reaches the wire through the uplink representor, so the netdev itself is
    /// kept out of ARP and IPv6 (else it would answer for the representor's addresses
    /// with its own MAC). `releaseUplink` puts both back.
    public func bindUplink(_ name: String) throws -> UplinkNetdev {
        let c = try InterfaceControl()
        uplinkRestore = (name, (try c.flags(of: name)) & Int32(IFF_NOARP) != 0, (try? ProcFile.read(ipv6Disable(name)))?.filter { !$0.isWhitespace })
        try c.setFlag(name, Int32(IFF_NOARP), true)
        try? ProcFile.write(ipv6Disable(name), "1")
        try c.setUp(name, true)
        return UplinkNetdev(name: name, ifindex: try c.index(of: name))
    }

    public func releaseUplink() {
        guard let (name, noARP, ipv6) = uplinkRestore, let c = try? InterfaceControl() else { return }
        try? c.setFlag(name, Int32(IFF_NOARP), noARP)
        if let ipv6 { try? ProcFile.write(ipv6Disable(name), ipv6) }
        uplinkRestore = nil
    }

    private func ipv6Disable(_ name: String) -> String { "/proc/sys/net/ipv6/conf/\(name)/disable_ipv6" }

    // MARK: VFLinkOperations

    /// The VF end of a veth pair, seen from the switch side: its ifindex and namespace.
    private func vfEnd(_ vf: VFNetdev) throws -> (index: Int32, netnsID: Int32?) {
        var rt = try RouteLink()
        return try rt.vethPeer(of: vf.switchIfindex)
    }

    public func setMAC(_ vf: VFNetdev, _ mac: UInt64) throws {
        let end = try vfEnd(vf)
        try RouteLink.inNamespace(end.netnsID) { try $0.setLink(index: end.index, address: mac) }
    }

    public func mac(of vf: VFNetdev) throws -> UInt64 {
        let end = try vfEnd(vf)
        return try RouteLink.inNamespace(end.netnsID) { try $0.address(index: end.index) }
    }

    public func setMTU(_ vf: VFNetdev, _ mtu: Int) throws {
        let end = try vfEnd(vf)
        try RouteLink.inNamespace(end.netnsID) { try $0.setLink(index: end.index, mtu: mtu) }
    }

    /// A veth end has carrier only while its peer is up: the switch side, in our
    /// namespace, going down is the VF end losing its link, wherever it is.
    public func setCarrier(_ vf: VFNetdev, _ up: Bool) throws {
        try InterfaceControl().setUp(vf.switchSide, up)
    }

    public func isInOtherNamespace(_ vf: VFNetdev) -> Bool {
        (try? vfEnd(vf))?.netnsID != nil
    }

    public func exists(_ vf: VFNetdev) -> Bool {
        guard let c = try? InterfaceControl() else { return true }
        return (try? c.index(of: vf.switchSide)) == vf.switchIfindex
    }

    public func discard(_ vf: VFNetdev) { destroyVFs([vf]) }

    public func remake(_ vf: VFNetdev) throws -> VFNetdev {
        var rt = try RouteLink()
        let c = try InterfaceControl()
        try rt.addVethPair(name: vf.name, peer: vf.switchSide)
        do {
            try c.setHardwareAddress(vf.name, MACAddress(NetdevNaming.mac(for: vf.name)))
            try? c.setMTU(vf.switchSide, 65535)
            try c.setUp(vf.switchSide, true)
            return VFNetdev(name: vf.name, switchSide: vf.switchSide, switchIfindex: try c.index(of: vf.switchSide))
        } catch {
            try? rt.delete(name: vf.switchSide)
            throw error
        }
    }

    // MARK: RepresentorProvider

    /// The representors' transmit queue (frames), what a capture's mirror may hold unread.
    static let captureQueueFrames: UInt32 = 4096

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
        // Under a capture the TAP queues the mirror of what is sent on the representor
        // until the drain thread reads it; a TAP's 500 frames overflowed (tx_dropped) on
        // a loaded machine for a burst the drain reads in a few milliseconds when it runs.
        try? rt.setTransmitQueueLength(index: index, RepresentorDriver.captureQueueFrames)
        try? c.setMTU(name, port.mtu)
        try c.setUp(name, true)
        lastMTU[port.index] = try c.mtu(of: name)
        logger.info("representor created", metadata: ["netdev": "\(name)", "port": "\(port.index)"])
        return q
    }

    public func destroyRepresentor(_ queue: TapQueue, of port: ESwitchPort) {
        // Closing the last reference to the TAP queue removes the netdev.
        capture.forget(queue)
        lastMTU[port.index] = nil
        logger.info("representor removed", metadata: ["netdev": "\(queue.name)"])
    }

    /// Reflects representor MTU changes to the VFs. Cheap; call on link events and
    /// periodically.
    public func syncMTU(_ sw: ESwitch) {
        guard let c = try? InterfaceControl() else { return }
        // The uplink's own MTU changed: p0 follows it (and is then not reflected back).
        if let mtu = sw.followUplinkMTU() { lastMTU[.uplink] = mtu }
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
