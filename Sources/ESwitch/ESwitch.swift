import Classifier
import Logging
import NetLinux
import Packet
import Synchronization

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

/// An opaque handle to an installed hardware rule.
public struct HardwareRuleHandle: Sendable, Hashable {
    public let id: UInt64
    public let table: HardwareTable
}

/// The emulated NIC: ports (uplink and VFs), an embedded switch in legacy or
/// switchdev mode, hardware tables with finite resources, packet threads, and the
/// offload API a representor's driver exposes.
///
/// Every method here runs on the control thread; packet threads only read.
public final class ESwitch: @unchecked Sendable {
    public let name: String
    public let tables: HardwareTables
    public let ports: [ESwitchPort]
    public private(set) var mode: ESwitchMode
    let counters: CounterBlock
    let legacy: LegacyMACTable
    private let engine: OffloadEngine
    private var workers: [FastPathWorker] = []
    private let logger: Logger
    weak var provider: RepresentorProvider?
    /// Read by packet threads; changed only while they are paused.
    private(set) var modeIsLegacy: Bool
    /// Up to four VXLAN UDP ports the hardware parser recognises, 16 bits each.
    private let vxlanPorts = Atomic<UInt64>(0)
    private var vxlanPortUsers: [UInt16: Int] = [:]
    private var rulesByHandle: [UInt64: HardwareRule] = [:]

    public init(name: String, vfs: [TapQueue], uplink: UplinkIO, mode: ESwitchMode, profile: HardwareProfile,
                params: DeviceParams = DeviceParams(), workers workerCount: Int = 2, logger: Logger) throws {
        self.name = name
        self.mode = mode
        self.modeIsLegacy = mode == .legacy
        self.logger = logger
        tables = HardwareTables(profile: profile, name: name)
        engine = OffloadEngine(tables: tables, params: params)
        var ports: [ESwitchPort] = []
        let up = ESwitchPort(index: .uplink, flavour: .physical, vf: nil)
        up.uplink = uplink
        if let c = try? InterfaceControl(), let m = try? c.mtu(of: uplink.name) { up.mtu = m }
        ports.append(up)
        for (n, q) in vfs.enumerated() {
            let p = ESwitchPort(index: .vf(n), flavour: .pcivf, vf: n)
            p.vfQueue = q
            ports.append(p)
        }
        self.ports = ports
        counters = CounterBlock(ports: ports.count, threads: max(1, workerCount))
        legacy = LegacyMACTable(tables: tables)
        for i in 0..<max(1, workerCount) { workers.append(try FastPathWorker(id: i, device: self, uplinkIfindex: uplink.ifindex,
                                                                                  nice: Int32(params.fastPathNice))) }
        for p in ports {
            p.worker = Int(p.index) % workers.count
            workers[p.worker].watch(port: p)
        }
    }

    /// Starts packet processing. Representors are created by `attach(provider:)` first.
    public func start() throws {
        for w in workers { try w.start() }
    }

    public func stop() {
        for w in workers { w.stop() }
    }

    /// Binds the representor provider and, in switchdev mode, creates the representors.
    public func attach(provider: RepresentorProvider) throws {
        self.provider = provider
        if mode == .switchdev { try createRepresentors() }
        refreshLegacyTable()
    }

    // MARK: Mode

    /// Switches the eSwitch mode, creating or destroying representors, keeping the VF
    /// netdevs and their configuration. Hardware flow rules do not survive (as on mlx5).
    public func setMode(_ newMode: ESwitchMode) throws {
        guard newMode != mode else { return }
        pauseWorkers()
        defer { resumeWorkers() }
        if newMode == .legacy {
            for r in Array(rulesByHandle.values) { _ = tables.remove(r) }
            rulesByHandle.removeAll()
            destroyRepresentors()
        } else {
            try createRepresentors()
        }
        mode = newMode
        modeIsLegacy = newMode == .legacy
        refreshLegacyTable()
        logger.info("eswitch mode set", metadata: ["mode": "\(newMode.rawValue)"])
    }

    private func createRepresentors() throws {
        guard let provider else { return }
        for p in ports where p.representor == nil {
            p.representor = try provider.createRepresentor(for: p)
            workers[p.worker].watchRepresentor(p)
        }
    }

    private func destroyRepresentors() {
        var names: [String] = []
        for p in ports {
            guard let r = p.representor else { continue }
            workers[p.worker].unwatch(fd: r.fd)
            p.representor = nil
            names.append(r.name)
            provider?.destroyRepresentor(r, of: p)
        }
        // The mode change is done when the netdevs are gone, not when the fds are closed.
        if let c = try? InterfaceControl(), !c.awaitRemoval(of: names) {
            logger.warning("representor netdevs still present after the mode change", metadata: ["netdevs": "\(names)"])
        }
    }

    func pauseWorkers() { for w in workers { w.pause() } }
    func resumeWorkers() { for w in workers { w.resume() } }

    // MARK: Ports

    public func port(_ index: PortIndex) -> ESwitchPort? {
        Int(index) < ports.count ? ports[Int(index)] : nil
    }

    /// The port whose representor netdev is called `name`.
    public func port(representor name: String) -> ESwitchPort? {
        ports.first { $0.representor?.name == name }
    }

    public func portCounters(_ index: PortIndex) -> PortCounters { counters.read(port: Int(index)) }

    /// Sets a VF's admin MAC (devlink port function hw_addr): the VF netdev takes it.
    public func setVFMAC(_ index: PortIndex, mac: UInt64) throws {
        guard let p = port(index), let q = p.vfQueue else { throw OffloadFailure.noSuchPort(index) }
        try q.tap.setHardwareAddress(MACAddress(mac))
        p.config.mac = mac
        refreshLegacyTable()
    }

    public func setVFVLAN(_ index: PortIndex, vlan: UInt16, qos: UInt8 = 0) throws {
        guard let p = port(index), p.vf != nil else { throw OffloadFailure.noSuchPort(index) }
        pauseWorkers()
        p.config.vlan = vlan
        p.config.qos = qos
        resumeWorkers()
        refreshLegacyTable()
    }

    public func setVFLinkState(_ index: PortIndex, up: Bool) throws {
        guard let p = port(index), p.vf != nil else { throw OffloadFailure.noSuchPort(index) }
        p.config.linkUp = up
    }

    /// The representor's MTU is reflected to the VF netdev (in whatever namespace it is).
    public func reflectMTU(_ index: PortIndex, mtu: Int) throws {
        guard let p = port(index) else { throw OffloadFailure.noSuchPort(index) }
        if let q = p.vfQueue {
            let ns = try q.tap.namespace()
            let name = q.tap.currentName()
            try NetworkNamespace.run(in: ns.raw) {
                let c = try InterfaceControl()
                try c.setMTU(name, mtu)
            }
        } else if let u = p.uplink {
            // The uplink representor stands for the physical port: its MTU is the wire's.
            try InterfaceControl().setMTU(u.name, mtu)
        }
        p.mtu = mtu
    }

    /// Re-reads VF netdev MACs into the legacy MAC table (the VF driver registering
    /// its address with the PF). Cheap; the control loop calls it periodically.
    public func refreshLegacyTable() {
        guard mode == .legacy else {
            legacy.removeAll()
            return
        }
        for p in ports where p.vf != nil {
            var mac = p.config.mac
            if mac == 0, let m = try? p.vfQueue?.tap.hardwareAddress() { mac = m.value }
            if !legacy.set(port: p.index, vlan: p.config.vlan, mac: mac) {
                logger.warning("legacy MAC table: no room", metadata: ["port": "\(p.index)"])
            }
        }
    }

    // MARK: Offload API

    public func addRule(_ spec: HardwareRuleSpec) -> Result<HardwareRuleHandle, OffloadFailure> {
        guard mode == .switchdev else { return .failure(.legacyMode) }
        if let f = checkPorts(spec) { return .failure(f) }
        switch engine.add(spec) {
        case .success(let r):
            rulesByHandle[r.id] = r
            return .success(HardwareRuleHandle(id: r.id, table: r.table))
        case .failure(let f):
            releaseUnusedEncaps(of: spec)
            return .failure(f)
        }
    }

    /// A refused rule leaves no encap entry behind that only it would have used.
    private func releaseUnusedEncaps(of spec: HardwareRuleSpec) {
        for a in spec.actions { if case .encap(let e) = a { tables.releaseEncap(e) } }
    }

    public func replaceRule(_ h: HardwareRuleHandle, with spec: HardwareRuleSpec) -> Result<HardwareRuleHandle, OffloadFailure> {
        guard mode == .switchdev else { return .failure(.legacyMode) }
        guard let old = rulesByHandle[h.id] else { return .failure(.notFound) }
        if let f = checkPorts(spec) { return .failure(f) }
        switch engine.replace(old, with: spec) {
        case .success(let r):
            rulesByHandle[h.id] = nil
            rulesByHandle[r.id] = r
            return .success(HardwareRuleHandle(id: r.id, table: r.table))
        case .failure(let f):
            releaseUnusedEncaps(of: spec)
            return .failure(f)
        }
    }

    @discardableResult
    public func deleteRule(_ h: HardwareRuleHandle) -> Bool {
        guard let r = rulesByHandle.removeValue(forKey: h.id) else { return false }
        return engine.remove(r)
    }

    public func ruleCounters(_ h: HardwareRuleHandle) -> RuleCounters? {
        rulesByHandle[h.id]?.counters
    }

    public func rule(_ h: HardwareRuleHandle) -> HardwareRule? { rulesByHandle[h.id] }
    public var installedRules: [HardwareRule] { Array(rulesByHandle.values) }

    private func checkPorts(_ spec: HardwareRuleSpec) -> OffloadFailure? {
        let inPort = spec.key[.inPort]
        if inPort >= UInt64(ports.count) { return .noSuchPort(PortIndex(truncatingIfNeeded: inPort)) }
        for a in spec.actions {
            if case .forward(let p) = a, Int(p) >= ports.count { return .noSuchPort(p) }
        }
        return nil
    }

    /// The shared encap entry for a tunnel key, created on first use.
    public func encapEntry(for key: EncapKey, header: VXLAN.EncapTemplate) -> Result<EncapEntry, OffloadFailure> {
        tables.encapEntry(for: key, header: header)
    }

    /// Rewrites an encap entry's outer header in place (neighbour change): one hardware
    /// operation, whatever the number of rules sharing the entry.
    public func rewriteEncap(_ e: EncapEntry, header: VXLAN.EncapTemplate) {
        engine.rewriteEncap(e, header: header)
    }

    /// Encap entries currently in the table.
    public var encapEntries: [EncapEntry] { Array(tables.encaps.values) }

    /// Releases an encap entry that no rule uses (e.g. one created for a failed add).
    public func releaseEncapIfUnused(_ e: EncapEntry) { tables.releaseEncap(e) }

    /// Makes the hardware parser recognise VXLAN on a UDP port (reference counted).
    public func registerVXLANPort(_ port: UInt16) -> Bool {
        if let n = vxlanPortUsers[port] {
            vxlanPortUsers[port] = n + 1
            return true
        }
        guard vxlanPortUsers.count < 4 else { return false }
        vxlanPortUsers[port] = 1
        publishVXLANPorts()
        return true
    }

    /// Whether `registerVXLANPort` would succeed (the parser knows at most four ports).
    public func canRegisterVXLANPort(_ port: UInt16) -> Bool {
        vxlanPortUsers[port] != nil || vxlanPortUsers.count < 4
    }

    public func unregisterVXLANPort(_ port: UInt16) {
        guard let n = vxlanPortUsers[port] else { return }
        if n > 1 { vxlanPortUsers[port] = n - 1 } else {
            vxlanPortUsers[port] = nil
            publishVXLANPorts()
        }
    }

    private func publishVXLANPorts() {
        var packed: UInt64 = 0
        for (i, p) in vxlanPortUsers.keys.sorted().enumerated() { packed |= UInt64(p) << UInt64(16 * i) }
        vxlanPorts.store(packed, ordering: .releasing)
    }

    @inline(__always)
    var vxlanPortCount: Int { vxlanPorts.load(ordering: .relaxed) == 0 ? 0 : 1 }

    @inline(__always)
    func isVXLANPort(_ p: UInt16) -> Bool {
        guard p != 0 else { return false }
        let v = vxlanPorts.load(ordering: .relaxed)
        return UInt16(truncatingIfNeeded: v) == p || UInt16(truncatingIfNeeded: v >> 16) == p
            || UInt16(truncatingIfNeeded: v >> 32) == p || UInt16(truncatingIfNeeded: v >> 48) == p
    }

    // MARK: Params and resources

    public var params: DeviceParams {
        get { engine.params }
        set {
            let niceChanged = newValue.fastPathNice != engine.params.fastPathNice
            engine.params = newValue
            guard niceChanged else { return }
            let nice = Int32(newValue.fastPathNice)
            for w in workers { w.setNice(nice) }
            for t in adoptedThreads { t.setNice(nice) }
        }
    }

    /// Packet threads outside the eSwitch (the software datapath's) that follow fastpath_nice.
    private var adoptedThreads: [ParkableThread] = []

    public func adopt(packetThread t: ParkableThread) {
        adoptedThreads.append(t)
        t.setNice(Int32(params.fastPathNice))
    }

    public func release(packetThread t: ParkableThread) {
        adoptedThreads.removeAll { $0 === t }
    }

    public var offloadStatistics: (operations: UInt64, hardwareAccesses: UInt64, waitedNanoseconds: UInt64) {
        (engine.operations, engine.hardwareAccesses, engine.waitedNanoseconds)
    }

    /// devlink dev reload: applies pending resource sizes, refused if what is in use
    /// does not fit.
    public func reload() throws(HardwareResource.SizeError) {
        for r in tables.resources { try r.validatePending() }
        for r in tables.resources { r.applyPending() }
    }
}
