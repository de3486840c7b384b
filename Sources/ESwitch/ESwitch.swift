import Classifier
import Glibc
import Logging
import NetLinux
import Packet

public enum ESwitchMode: String, Sendable, CaseIterable {
    case legacy
    case switchdev
}

/// Creates and destroys representor netdevs when the eSwitch enters or leaves
/// switchdev mode (the Representors module provides it, as a driver registers netdevs).
public protocol RepresentorProvider: AnyObject {
    func createRepresentor(for port: ESwitchPort) throws -> TapQueue
    func destroyRepresentor(_ queue: TapQueue, of port: ESwitchPort)
}

/// What the driver does to a VF netdev wherever the user has moved it (the VF driver's
/// side of devlink port function and MTU reflection).
public protocol VFLinkOperations: AnyObject {
    func setMAC(_ vf: VFNetdev, _ mac: UInt64) throws
    func mac(of vf: VFNetdev) throws -> UInt64
    func setMTU(_ vf: VFNetdev, _ mtu: Int) throws
    /// Whether the VF's end is in another namespace than the switch side.
    func isInOtherNamespace(_ vf: VFNetdev) -> Bool
    /// Carrier of the VF netdev (port function state): the switch side of its pair
    /// goes down or up, which takes the VF end's carrier with it.
    func setCarrier(_ vf: VFNetdev, _ up: Bool) throws
    /// Whether the VF's pair still exists (a veth pair dies with the namespace its VF
    /// end is in, where a real VF goes back to the host's namespace).
    func exists(_ vf: VFNetdev) -> Bool
    /// Makes a VF whose pair is gone again, in the daemon's namespace.
    func remake(_ vf: VFNetdev) throws -> VFNetdev
    /// Deletes a VF's pair (one `remake` made that could not be set up).
    func discard(_ vf: VFNetdev)
}

/// An opaque handle to an installed hardware rule.
public struct HardwareRuleHandle: Sendable, Hashable {
    public let id: UInt64
    public let table: HardwareTable
    /// The rule itself, so that looking a handle up hashes nothing (a dump or a counter
    /// poll looks up every flow's); valid while `rule.handedOut`.
    let rule: HardwareRule

    init(_ r: HardwareRule) {
        id = r.id
        table = r.table
        rule = r
        r.handedOut = true
    }

    public static func == (a: Self, b: Self) -> Bool { a.id == b.id }
    public func hash(into h: inout Hasher) { h.combine(id) }
}

/// The emulated NIC: ports (uplink and VFs), an embedded switch in legacy or
/// switchdev mode, hardware tables with finite resources, and the offload API a
/// representor's driver exposes. The packets themselves never come here: they run
/// through the data plane (eBPF programs in the kernel, see BPFDataPlane).
///
/// Control thread only.
public final class ESwitch: @unchecked Sendable {
    public let name: String
    public let tables: HardwareTables
    /// The CT table (connection-tracking offload).
    public let connections: ConnectionTable
    public let ports: [ESwitchPort]
    public private(set) var mode: ESwitchMode
    public let dataPlane: DataPlane
    let legacy: LegacyMACTable
    let engine: OffloadEngine
    let logger: Logger
    weak var provider: RepresentorProvider?
    weak var vfLinks: VFLinkOperations?
    var vxlanPortUsers: [UInt16: Int] = [:]
    /// What the data plane was last told of the uplink representor (UplinkRepresentor.swift).
    /// p0's MAC as the pipeline has it: the outer destination of the VXLAN frames the
    /// hardware decaps (UplinkRepresentor.swift).
    public internal(set) var publishedVTEPMAC: UInt64 = 0
    var reflectedCarrier: Bool?
    /// The last refusal of the legacy MAC table per VF, so it is logged once per change.
    private var legacyRefusals: [PortIndex: LegacyMACRefusal] = [:]
    /// VFs whose pair could not be made again, so the failure is logged once, not every 200 ms.
    private var vfReturnFailures: Set<PortIndex> = []

    public init(name: String, vfs: [VFNetdev], uplink: UplinkNetdev, mode: ESwitchMode, profile: HardwareProfile,
                params: DeviceParams = DeviceParams(), dataPlane: DataPlane, clock: HardwareClock = SystemHardwareClock(),
                logger: Logger) throws {
        self.name = name
        self.mode = mode
        self.logger = logger
        self.dataPlane = dataPlane
        tables = HardwareTables(profile: profile, name: name, dataPlane: dataPlane)
        connections = ConnectionTable(tables: tables)
        engine = OffloadEngine(tables: tables, params: params, clock: clock)
        var ports: [ESwitchPort] = []
        let up = ESwitchPort(index: .uplink, flavour: .physical, vf: nil)
        up.uplink = uplink
        if let c = try? InterfaceControl(), let m = try? c.mtu(of: uplink.name) { up.mtu = m }
        ports.append(up)
        for (n, v) in vfs.enumerated() {
            let p = ESwitchPort(index: .vf(n), flavour: .pcivf, vf: n)
            p.vfNetdev = v
            ports.append(p)
        }
        self.ports = ports
        legacy = LegacyMACTable(tables: tables)
        try dataPlaneCall { () throws(DataPlaneError) in try dataPlane.setMode(mode, portCount: ports.count) }
        engine.onLateFailure = { [logger] rule, why in
            logger.warning("hardware refused a rule after its add returned",
                           metadata: ["rule": "\(rule.id)", "cookie": "\(rule.cookie)", "reason": "\(why)"])
        }
    }

    /// Attaches the pipeline to every port's netdev. Representors come with `attach(provider:)`.
    public func start() throws {
        for p in ports { try publish(p) }
        for p in ports {
            let ifindex = p.vfNetdev?.switchIfindex ?? p.uplink?.ifindex ?? 0
            try dataPlaneCall { () throws(DataPlaneError) in try dataPlane.attachPort(ifindex: ifindex) }
        }
    }

    /// Takes the pipeline off every netdev (shutdown).
    public func stop() {
        for p in ports {
            if let r = p.representor, let i = try? InterfaceControl().index(of: r.name) { dataPlane.detach(ifindex: i) }
            dataPlane.detach(ifindex: p.vfNetdev?.switchIfindex ?? p.uplink?.ifindex ?? 0)
        }
    }

    /// Binds the representor provider and, in switchdev mode, creates the representors.
    public func attach(provider: RepresentorProvider, vfLinks: VFLinkOperations? = nil) throws {
        self.provider = provider
        self.vfLinks = vfLinks
        if mode == .switchdev { try createRepresentors() }
        refreshLegacyTable()
    }

    private func dataPlaneCall(_ body: () throws(DataPlaneError) -> Void) throws {
        do { try body() } catch { throw DriverFailure("data plane: \(error)") }
    }

    /// Writes a port's state into the data plane's port table.
    func publish(_ p: ESwitchPort) throws {
        var repIndex: Int32 = 0
        if let r = p.representor { repIndex = (try? InterfaceControl().index(of: r.name)) ?? 0 }
        let config = DataPlanePort(
            ifindex: p.vfNetdev?.switchIfindex ?? p.uplink?.ifindex ?? 0, representorIfindex: repIndex,
            isUplink: p.uplink != nil, linkUp: p.config.linkUp, peerInOtherNamespace: p.vfInOtherNamespace,
            mtu: p.mtu, vlan: p.config.vlan, qos: p.config.qos, mirrorsTransmit: p.mirrorsTransmit && p.representor != nil)
        try dataPlaneCall { () throws(DataPlaneError) in try dataPlane.setPort(p.index, config) }
    }

    // MARK: Mode

    /// Switches the eSwitch mode, creating or destroying representors, keeping the VF
    /// netdevs and their configuration. Hardware flow rules do not survive (as on mlx5).
    public func setMode(_ newMode: ESwitchMode) throws {
        guard newMode != mode else { return }
        if newMode == .legacy {
            engine.drain()
            for r in Array(tables.rules.values) { tables.discard(r) }
            connections.removeAll()
            engine.forgetReservations()
            try dataPlaneCall { () throws(DataPlaneError) in try dataPlane.setMode(.legacy, portCount: ports.count) }
            destroyRepresentors()
        } else {
            try createRepresentors()
            try dataPlaneCall { () throws(DataPlaneError) in try dataPlane.setMode(.switchdev, portCount: ports.count) }
        }
        mode = newMode
        refreshLegacyTable()
        logger.info("eswitch mode set", metadata: ["mode": "\(newMode.rawValue)"])
    }

    private func createRepresentors() throws {
        guard let provider else { return }
        for p in ports where p.representor == nil {
            let r = try provider.createRepresentor(for: p)
            p.representor = r
            let ifindex = try InterfaceControl().index(of: r.name)
            try dataPlaneCall { () throws(DataPlaneError) in try dataPlane.attachRepresentor(ifindex: ifindex) }
            try publish(p)
        }
        syncUplinkRepresentor()
    }

    private func destroyRepresentors() {
        var names: [String] = []
        for p in ports {
            guard let r = p.representor else { continue }
            if let i = try? InterfaceControl().index(of: r.name) { dataPlane.detach(ifindex: i) }
            p.representor = nil
            p.mirrorsTransmit = false
            try? publish(p)
            names.append(r.name)
            provider?.destroyRepresentor(r, of: p)
        }
        syncUplinkRepresentor()
        // The mode change is done when the netdevs are gone, not when the fds are closed.
        if let c = try? InterfaceControl(), !c.awaitRemoval(of: names) {
            logger.warning("representor netdevs still present after the mode change", metadata: ["netdevs": "\(names)"])
        }
    }

    // MARK: Ports

    public func port(_ index: PortIndex) -> ESwitchPort? {
        Int(index) < ports.count ? ports[Int(index)] : nil
    }

    /// The port whose representor netdev is called `name`.
    public func port(representor name: String) -> ESwitchPort? {
        ports.first { $0.representor?.name == name }
    }

    public func portCounters(_ index: PortIndex) -> PortCounters { dataPlane.portCounters(index) }

    /// The MAC the VF netdev has now.
    public func vfMAC(_ index: PortIndex) -> UInt64? {
        guard let v = port(index)?.vfNetdev else { return nil }
        return try? vfLinks?.mac(of: v)
    }

    /// Sets a VF's admin MAC (devlink port function hw_addr): the VF netdev takes it. In
    /// legacy mode the MAC table must be able to take it first (a MAC another VF has on
    /// the same VLAN is refused, as mlx5's L2 table refuses it), so a refusal changes nothing.
    public func setVFMAC(_ index: PortIndex, mac: UInt64) throws {
        guard let p = port(index), let v = p.vfNetdev else { throw OffloadFailure.noSuchPort(index) }
        if let r = Self.invalidVFMAC(mac) { throw r }
        if mode == .legacy, let r = legacy.refusal(port: index, vlan: p.config.vlan, mac: mac) { throw r }
        try vfLinks?.setMAC(v, mac)
        p.config.mac = mac
        refreshLegacyTable()
    }

    /// A netdev cannot take these; say so instead of passing on rtnetlink's EADDRNOTAVAIL.
    static func invalidVFMAC(_ mac: UInt64) -> PortFunctionRefusal? {
        guard mac == 0 || (mac >> 40) & 1 != 0 else { return nil }
        return PortFunctionRefusal(EINVAL, "hw_addr \(AddressText.mac(mac)) is not a valid VF address: "
                                   + "it must be unicast and not all zeros")
    }

    /// What one port function request setting `mac` and/or `vlan` would be refused with,
    /// checked whole before any of it is applied, as devlink validates a request before
    /// setting its attributes: a VLAN refused after the MAC was set left the VF with the
    /// new MAC and the caller with an error.
    public func portFunctionRefusal(_ index: PortIndex, mac: UInt64?, vlan: UInt16?) -> Error? {
        guard let p = port(index), p.vf != nil else { return OffloadFailure.noSuchPort(index) }
        if let mac, let r = Self.invalidVFMAC(mac) { return r }
        if let vlan, vlan != 0, mode != .legacy {
            return PortFunctionRefusal(EOPNOTSUPP, "vlan \(vlan): VST is a legacy-mode setting; "
                                       + "in switchdev mode VLANs are flow actions (push_vlan/pop_vlan)")
        }
        if mode == .legacy, mac != nil || vlan != nil {
            return legacy.refusal(port: index, vlan: vlan ?? p.config.vlan, mac: mac ?? currentMAC(of: p))
        }
        return nil
    }

    /// Sets a VF's VST VLAN and priority. VST is a legacy-mode setting: in switchdev mode
    /// a VLAN is refused with EOPNOTSUPP and VLAN 0 is accepted and changes nothing, as
    /// mlx5 does (mlx5_eswitch_set_vport_vlan, "compatibility with libvirt"). A VST set
    /// in legacy mode stays through a switch to switchdev and applies again in legacy.
    public func setVFVLAN(_ index: PortIndex, vlan: UInt16, qos: UInt8 = 0) throws {
        guard let p = port(index), p.vf != nil else { throw OffloadFailure.noSuchPort(index) }
        guard mode == .legacy else {
            if vlan == 0 { return }
            throw portFunctionRefusal(index, mac: nil, vlan: vlan)!
        }
        if let r = legacy.refusal(port: index, vlan: vlan, mac: currentMAC(of: p)) { throw r }
        p.config.vlan = vlan
        p.config.qos = qos
        try publish(p)
        refreshLegacyTable()
    }

    /// devlink port function state: an inactive function's link is down. The VF netdev
    /// loses carrier (its pair's switch side goes down), the pipeline drops what comes
    /// from the port and what would go to it.
    public func setVFLinkState(_ index: PortIndex, up: Bool) throws {
        guard let p = port(index), let v = p.vfNetdev else { throw OffloadFailure.noSuchPort(index) }
        try vfLinks?.setCarrier(v, up)
        p.config.linkUp = up
        try publish(p)
    }

    /// The representor's MTU is reflected to the VF netdev (in whatever namespace it is).
    public func reflectMTU(_ index: PortIndex, mtu: Int) throws {
        guard let p = port(index) else { throw OffloadFailure.noSuchPort(index) }
        if let v = p.vfNetdev {
            try vfLinks?.setMTU(v, mtu)
        } else if let u = p.uplink {
            // The uplink representor stands for the physical port: its MTU is the wire's.
            try InterfaceControl().setMTU(u.name, mtu)
        }
        p.mtu = mtu
        try publish(p)
    }

    /// Notices VFs moved to or from another namespace (the data plane then redirects
    /// into them the faster way). Cheap; the control loop calls it periodically.
    public func refreshVFNamespaces() {
        guard let vfLinks else { return }
        for p in ports {
            guard var v = p.vfNetdev else { continue }
            if !vfLinks.exists(v) {
                guard let back = returnVF(of: p, vfLinks) else { continue }
                v = back
            }
            let elsewhere = vfLinks.isInOtherNamespace(v)
            if elsewhere != p.vfInOtherNamespace {
                p.vfInOtherNamespace = elsewhere
                try? publish(p)
            }
        }
    }

    /// A VF netdev deleted with its namespace comes back in the daemon's namespace, as
    /// a real VF (a PCI function, not a virtual link) goes back to the host's namespace
    /// when the namespace it was in is deleted: the pair is made again with the port's
    /// MAC and MTU, the pipeline attached to its switch side and the port table pointed
    /// at it. Rules name the port, not the netdev: they stay and forward to the new one.
    private func returnVF(of p: ESwitchPort, _ vfLinks: VFLinkOperations) -> VFNetdev? {
        guard let old = p.vfNetdev else { return nil }
        let v: VFNetdev
        do { v = try vfLinks.remake(old) } catch {
            vfReturnFailed(p, old.name, error)
            return nil
        }
        // The port takes the new pair only once it is whole; otherwise the pair goes and
        // the next tick tries again (a half-made VF would pass for a present one).
        do {
            if p.config.mac != 0 { try vfLinks.setMAC(v, p.config.mac) }
            if p.mtu != ESwitchPort.defaultMTU { try vfLinks.setMTU(v, p.mtu) }
            if !p.config.linkUp { try vfLinks.setCarrier(v, false) }
            try dataPlaneCall { () throws(DataPlaneError) in try dataPlane.attachPort(ifindex: v.switchIfindex) }
            p.vfNetdev = v
            p.vfInOtherNamespace = false
            do { try publish(p) } catch {
                p.vfNetdev = old
                throw error
            }
        } catch {
            dataPlane.detach(ifindex: v.switchIfindex)
            vfLinks.discard(v)
            vfReturnFailed(p, old.name, error)
            return nil
        }
        dataPlane.detach(ifindex: old.switchIfindex)
        vfReturnFailures.remove(p.index)
        logger.warning("VF netdev gone with its namespace: made again in the daemon's namespace",
                       metadata: ["port": "\(p.index)", "vf": "\(v.name)"])
        return v
    }

    private func vfReturnFailed(_ p: ESwitchPort, _ name: String, _ error: any Error) {
        guard vfReturnFailures.insert(p.index).inserted else { return }
        logger.error("VF netdev gone and not made again (retried every 200 ms, logged once)",
                     metadata: ["vf": "\(name)", "error": "\(error)"])
    }

    /// The MAC a VF has: its admin MAC, else what its netdev has now.
    private func currentMAC(of p: ESwitchPort) -> UInt64 {
        if p.config.mac != 0 { return p.config.mac }
        guard let v = p.vfNetdev, let m = try? vfLinks?.mac(of: v) else { return 0 }
        return m
    }

    /// Re-reads VF netdev MACs into the legacy MAC table (the VF driver registering
    /// its address with the PF). Cheap; the control loop calls it periodically. A VF
    /// whose address the table cannot take (its own MAC changed to another VF's, a full
    /// table) keeps no entry, and the refusal is logged once, not at every refresh.
    public func refreshLegacyTable() {
        guard mode == .legacy else {
            legacy.removeAll()
            legacyRefusals.removeAll()
            return
        }
        for p in ports where p.vf != nil {
            do {
                try legacy.set(port: p.index, vlan: p.config.vlan, mac: currentMAC(of: p))
                legacyRefusals[p.index] = nil
            } catch {
                guard legacyRefusals[p.index] != error else { continue }
                legacyRefusals[p.index] = error
                logger.warning("\(error)", metadata: ["port": "\(p.index)"])
            }
        }
    }

    /// Why the legacy MAC table holds no entry for a VF (nil: it holds its address).
    public func legacyRefusal(_ index: PortIndex) -> LegacyMACRefusal? { legacyRefusals[index] }

    /// When `prefetchesRules` starts to hold (ESwitch+Offload.swift); tests lower it, to
    /// take the path with few rules.
    public var prefetchFromRules = ESwitch.cacheOutgrowingRules

    // MARK: Params and resources

    public var params: DeviceParams {
        get { engine.params }
        set {
            let nicChanged = newValue.nicSpeedPercent != engine.params.nicSpeedPercent
                || newValue.nicQueueMicroseconds != engine.params.nicQueueMicroseconds
            engine.params = newValue
            if nicChanged { applyNICEngine() }
        }
    }

    public var offloadStatistics: OffloadStatistics {
        engine.settleBatchEnd()
        return engine.statistics
    }

    /// The last burst of offload operations (a batch): how many, the caller's latency
    /// (first operation to the last one's return) and the coherent one (to the moment
    /// every rule was in the data plane; nil while some wait).
    public var lastOffloadBurst: (operations: UInt64, callerNanoseconds: UInt64, coherentNanoseconds: UInt64?) {
        engine.settleBatchEnd()
        return engine.lastBurst
    }

    /// Runs `body`, a run of requests served back to back, as one batch of offload
    /// operations (`OffloadEngine.batchingOperations`: the burst's clock read at its
    /// first operation and its end).
    public func batchingOperations<T>(_ body: () throws -> T) rethrows -> T {
        try engine.batchingOperations(body)
    }

    /// Units the driver holds in reserve (prefetch/credit stock) per top-level pool.
    public func stockedUnits(_ pool: HardwareResource) -> Int { engine.stock.count(pool) }

    /// Periodic work of the driver: the data plane's housekeeping.
    public func tick(now: UInt64) {
        dataPlane.maintain(now: now)
        tables.retryStuckRemovals()
    }

    /// devlink dev reload: applies pending resource sizes, refused if what is in use
    /// does not fit.
    public func reload() throws(HardwareResource.SizeError) {
        engine.drain()
        engine.returnStock()
        for r in tables.resources { try r.validatePending() }
        do {
            try tables.resizeDataPlane()
        } catch {
            throw .dataPlane(error.description, errno: error.errno)
        }
        for r in tables.resources { r.applyPending() }
    }
}

/// A driver-level failure with a message (data plane writes at setup).
public struct DriverFailure: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}
