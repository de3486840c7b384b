import Classifier
import Conntrack
import ESwitch
import Logging
import NetLinux
import ODP
import Packet

/// A kernel-style Open vSwitch datapath: vports, a megaflow table, action execution in
/// software, upcalls on misses, and offload of flows whose in_port is a representor
/// into the eSwitch behind it.
///
/// Control methods run on the daemon's control thread; the packet thread only reads.
public final class Datapath: @unchecked Sendable {
    public let name: String
    public let rcu: QuiescentState
    let table: FlowTable
    let counters = DatapathCounters()
    let upcalls: UpcallQueue
    private var ports: [UInt32: Vport] = [:]
    /// Ports by number for packet threads; replaced only while they are paused.
    private var portArray: ContiguousArray<Vport?> = []
    private var worker: DatapathWorker?
    private var controlEngine: PacketEngine?
    public var policy: OffloadPolicy
    /// Partial offload (hinting) of flows whose actions only software can run; change
    /// it with setPartialOffload.
    public internal(set) var partialOffload = true
    /// Flow marks of partially offloaded flows, for packet threads.
    let marks: FlowMarkTable
    /// Whether representor sockets deliver marks now (control thread).
    var receivingMarks = false
    public var missMode: MissMode
    public var maxIdleMilliseconds: Int
    public let eswitch: ESwitch?
    public weak var tunnelResolver: TunnelOffloadResolver?
    let normal = NormalSwitch()
    /// The connection tracker ct() actions run (OVS userspace semantics, one per datapath).
    public let conntrack = ConnectionTracker()
    /// Established connections into the eSwitch's CT table (nil without an eSwitch).
    private(set) var conntrackOffload: ConntrackOffload?
    var lastConntrackSweep: UInt64 = 0
    /// Receives upcalls for `controller` mode and userspace actions (the daemon sends
    /// them to subscribed clients).
    public var upcallListener: ((Upcall) -> Void)?
    let logger: Logger
    private let ufidSeed = UInt64.random(in: 0...UInt64.max)
    var lastRerank: UInt64 = 0
    var lastAging: UInt64 = 0
    var lastStatsPoll: UInt64 = 0
    var statsPollSpacing: UInt64 = 0
    /// When pollHardwareCounters last read the rules.
    var lastCounterRead: UInt64 = 0
    /// Full rules deleted while their removal waits in the firmware's queue: they still
    /// forward and count, for the flow they were deleted from (or the flow that replaced
    /// it), and the poll adds what they count until the firmware has taken them out.
    struct RetiringRule {
        var flow: DatapathFlow
        let rule: HardwareRuleHandle
        var counted: RuleCounters
    }
    var retiringRules: [RetiringRule] = []
    /// The last actions `changeFlow` decoded and compiled (the next flow with the same
    /// bytes and `FlowState` shares them).
    private var lastActions: CompiledActions?
    /// The last offloaded flow's hardware actions: the next rule with equal ones shares
    /// the array (an add-flows' rules mostly have the same actions; 40 bytes and an
    /// allocation kept per rule otherwise). Control thread only.
    var lastHardwareActions: [HardwareAction] = []
    /// The last translation of a representor's flow whose actions depend on nothing but
    /// the ports (`OffloadTranslator.translate`): the flows of an add-flows share one
    /// actions array, and translating it again cost a tenth of a put. Forgotten when
    /// ports change. Control thread only.
    var lastTranslation: OffloadTranslator.Memo?

    public init(name: String, eswitch: ESwitch?, policy: OffloadPolicy = .none, missMode: MissMode = .drop,
                maxIdleMilliseconds: Int = 10_000, rcu: QuiescentState = .shared, logger: Logger) throws {
        self.name = name
        self.eswitch = eswitch
        self.policy = policy
        self.missMode = missMode
        self.maxIdleMilliseconds = maxIdleMilliseconds
        self.rcu = rcu
        self.logger = logger
        table = FlowTable(rcu: rcu)
        marks = FlowMarkTable(rcu: rcu)
        upcalls = try UpcallQueue()
        conntrackOffload = eswitch.map { ConntrackOffload(tracker: conntrack, eswitch: $0, logger: logger) }
        // Without an eSwitch no CT table takes the tracker's offload events: keep none.
        conntrack.reportsOffloadEvents = eswitch != nil
        link.target = Unmanaged.passUnretained(self)
    }

    deinit { link.target = nil }

    /// A way back to this datapath for what must not keep it alive (the tunnel tracker).
    public let link = BackReference<Datapath>()

    /// The netdev of port 0, the datapath's internal port.
    public var localPortName: String { name.split(separator: "@").last.map(String.init) ?? name }

    public func start() throws {
        let w = try DatapathWorker(datapath: self)
        worker = w
        controlEngine = PacketEngine(datapath: self)
        _ = try addPort(name: localPortName, type: .internal, number: 0)
        try w.start()
    }

    /// Starts only what control requests need (flow puts, execute), with no packet
    /// thread and no netdev (not even the internal port): outputs go nowhere. For the
    /// request-path fuzz target (Fuzz/Targets/request.swift), which must not create
    /// netdevs.
    public func startWithoutPorts() {
        controlEngine = PacketEngine(datapath: self)
    }

    public func stop() {
        worker?.stop()
        worker = nil
    }

    /// The eventfd that signals pending upcalls (the control loop polls it).
    public var upcallFD: Int32 { upcalls.wakeup.fd.raw }

    @inline(__always)
    func vport(_ n: UInt32) -> Vport? { Int(n) < portArray.count ? portArray[Int(n)] : nil }

    // MARK: Ports

    public var allPorts: [Vport] { ports.values.sorted { $0.portNumber < $1.portNumber } }
    public func port(number: UInt32) -> Vport? { ports[number] }
    public func port(named n: String) -> Vport? { ports.values.first { $0.name == n } }

    public func addPort(name: String, type: VportType, number: UInt32? = nil, udpPort: UInt16? = nil) throws(DatapathError) -> Vport {
        guard port(named: name) == nil else { throw .exists("port \(name) already exists in \(self.name)") }
        let n: UInt32
        if let number {
            guard number < ActionCompiler.maxPorts else { throw .invalid("port number \(number) out of range") }
            guard ports[number] == nil else { throw .busy("port number \(number) is in use by \(ports[number]!.name)") }
            n = number
        } else {
            var i: UInt32 = 1
            while ports[i] != nil { i += 1 }
            n = i
        }
        let vp: Vport
        do {
            switch type {
            case .netdev:
                let c = try InterfaceControl()
                guard c.exists(name) else { throw DatapathError.noDevice("no network device \(name)") }
                let ifindex = try c.index(of: name)
                let rx = VportReceiver(try PacketReceiver(interface: name))
                let rep = eswitch?.port(representor: name)?.index
                // Partial flows exist: this representor's packets may carry marks too.
                if rep != nil && receivingMarks { rx.receiver.receiveMarks(true) }
                vp = Vport(portNumber: n, name: name, type: .netdev, eswitchPort: rep, ifindex: ifindex, netdevRX: rx,
                           tap: nil, tunnel: nil)
            case .internal:
                let tap = TapQueue(try TapDevice(name: name))
                let c = try InterfaceControl()
                vp = Vport(portNumber: n, name: name, type: .internal, eswitchPort: nil, ifindex: try c.index(of: name),
                           netdevRX: nil, tap: tap, tunnel: nil)
            case .vxlan:
                let p = udpPort ?? VXLAN.defaultPort
                vp = Vport(portNumber: n, name: name, type: .vxlan, eswitchPort: nil, ifindex: 0, netdevRX: nil, tap: nil,
                           tunnel: try VXLANSockets.open(udpPort: p), udpPort: p)
            default:
                throw DatapathError(95, "vport type \(type.name) is not supported (netdev, internal, vxlan)")
            }
        } catch let e as DatapathError {
            throw e
        } catch let e as SystemError {
            throw DatapathError(e.errno, "\(name): \(e)")
        } catch {
            throw DatapathError(22, "\(name): \(error)")
        }
        retranslateFlows(namingPort: n) { changePorts { $0[n] = vp } }
        logger.info("vport added", metadata: ["port": "\(n)", "name": "\(name)", "type": "\(type.name)"])
        return vp
    }

    /// A netdev vport with no I/O standing for eSwitch port `eswitchPort` (its
    /// representor): for tests of the offload path that need no netdev.
    func addDetachedRepresentorPort(name: String, number: UInt32, eswitchPort: PortIndex) -> Vport {
        let vp = Vport(portNumber: number, name: name, type: .netdev, eswitchPort: eswitchPort, ifindex: 0, netdevRX: nil,
                       tap: nil, tunnel: nil)
        retranslateFlows(namingPort: number) { changePorts { $0[number] = vp } }
        return vp
    }

    public func deletePort(_ number: UInt32) throws(DatapathError) {
        guard let p = ports[number] else { throw .notFound("no port \(number) in \(name)") }
        guard number != 0 else { throw .invalid("port 0 is the datapath's internal port") }
        retranslateFlows(namingPort: number) { changePorts { $0[number] = nil } }
        normal.forget(port: number)
        logger.info("vport deleted", metadata: ["port": "\(number)", "name": "\(p.name)"])
    }

    /// Netdev vports whose netdev is gone, or whose name now belongs to another netdev
    /// (a representor destroyed by a switch to legacy mode and made again, a netdev
    /// deleted by hand), are deleted, as the kernel detaches a vport when its netdev
    /// unregisters. Their flows are translated again (to software: the port is gone);
    /// adding the new netdev as a port brings them back. Returns the names detached.
    @discardableResult
    public func detachVanishedPorts() -> [String] {
        guard let c = try? InterfaceControl() else { return [] }
        let gone = ports.values.filter { p in
            p.type == .netdev && p.ifindex != 0 && (try? c.index(of: p.name)) != p.ifindex
        }
        for p in gone.sorted(by: { $0.portNumber < $1.portNumber }) {
            logger.warning("vport detached: its netdev is gone", metadata: ["port": "\(p.portNumber)", "name": "\(p.name)"])
            try? deletePort(p.portNumber)
        }
        return gone.map(\.name)
    }

    /// Whether a vxlan vport exists (no flow depends on a tunnel without one).
    var hasVXLANPort: Bool { ports.values.contains { $0.type == .vxlan } }

    private func changePorts(_ body: (inout [UInt32: Vport]) -> Void) {
        lastTranslation = nil
        worker?.pause()
        body(&ports)
        var arr = ContiguousArray<Vport?>(repeating: nil, count: Int(ports.keys.max() ?? 0) + 1)
        for (n, p) in ports { arr[Int(n)] = p }
        portArray = arr
        worker?.rewatch(Array(ports.values))
        controlEngine?.forgetSenders()
        worker?.resume()
    }

    // MARK: Flows

    public var flowCount: Int { table.count }
    public var allFlows: [DatapathFlow] { Array(table.flows) }
    /// Every flow, oldest first, nil where one was deleted since (a flow restored by a
    /// rolled-back batch counts as new). O(1): shared with the table until it changes.
    public var flowsInEntryOrder: [DatapathFlow?] { table.inOrder }
    /// Visits every flow without copying the list (for periodic work over many flows);
    /// `body` must not add or delete flows.
    public func forEachFlow(_ body: (DatapathFlow) -> Void) { for f in table.flows { body(f) } }
    /// Flows whose rule is in the hardware now.
    public var offloadedFlowCount: Int { table.flows.reduce(0) { $0 + (offloadStatus(of: $1) == .offloaded ? 1 : 0) } }
    public func flow(ufid: UInt128) -> DatapathFlow? { table.lookup(ufid: ufid) }
    public func flow(match: FlowMatch) -> DatapathFlow? { table.lookup(match: match) }

    /// A ufid for a flow that came without one (clients that do not generate their own,
    /// and flows of the `normal` handler): a keyed hash of its key attributes, so the
    /// same key gets the same ufid in one run.
    public func generateUFID(for keyBytes: [UInt8]) -> UInt128 {
        FlowUFID.hash(keyAttributes: keyBytes, seed: ufidSeed)
    }

    public struct PutOptions: Sendable {
        public var create = true
        public var modify = false
        public var clearStats = false
        public var origin: FlowOrigin = .user
        public init(create: Bool = true, modify: Bool = false, clearStats: Bool = false, origin: FlowOrigin = .user) {
            self.create = create
            self.modify = modify
            self.clearStats = clearStats
            self.origin = origin
        }
    }

    /// Installs or modifies a flow. Under `skip_sw` a flow the hardware refuses is not
    /// installed and the refusal is the error.
    @discardableResult
    public func putFlow(match: FlowMatch, ufid givenUFID: UInt128?, actions actionBytes: [UInt8],
                        options: PutOptions = PutOptions()) throws(DatapathError) -> DatapathFlow {
        try changeFlow(match: match, ufid: givenUFID, actions: actionBytes, options: options).flow
    }

    /// putFlow, saying what changed (for a transaction to undo it: see undo(_:)).
    public func changeFlow(match: FlowMatch, ufid givenUFID: UInt128?, actions actionBytes: [UInt8],
                           options: PutOptions = PutOptions()) throws(DatapathError) -> FlowChange {
        let probe = table.probe(match: match, ufid: givenUFID)
        let prefetchedPort = prefetchHardwareRule(match)
        let program = try decodeAndCompile(actionBytes, for: match)
        // The fine clock, not the coarse one: the creation time ages learned flows, and
        // the kernel's coarse clock has lagged ours by minutes on a VM (pollHardwareCounters).
        let now = Sys.monotonicNanoseconds()

        // A put that may modify finds its flow by its ufid first, as the kernel's does; one
        // that only creates claims its ufid below, before anything is offloaded.
        var existing: DatapathFlow?
        var keyIsTheFlows = true
        if options.modify, let u = givenUFID {
            existing = table.lookup(ufid: u)
            if let byID = existing {
                keyIsTheFlows = Self.isOwnMatch(match, of: byID)
                // A NEW whose ufid names a flow with another key is refused (the kernel's
                // "UFID matches but key is different"); a SET changes the flow its ufid
                // names, whatever key came with it.
                if !keyIsTheFlows && options.create {
                    throw .notFound("the flow with ufid \(formatUFID(u)) has another key")
                }
            } else if !options.create {
                throw .notFound("no flow with ufid \(formatUFID(u))")
            }
        }
        if existing == nil { existing = table.lookup(match: match, probe: probe) }
        if let old = existing {
            guard options.modify else { throw .exists("flow already exists (ufid \(formatUFID(old.ufid)))") }
            // The actions were checked against the request's key, as the kernel checks them;
            // they go to a flow with another key only if they suit that key too (compiled for
            // it: a set(ipv4) must not reach an ARP flow, in software or in hardware).
            let program = keyIsTheFlows ? program : try decodeAndCompile(actionBytes, for: old.match)
            let fresh = DatapathFlow(ufid: old.ufid, match: old.match, program: program, origin: old.origin,
                                     mask: old.mask, hash: old.hash, now: old.createdNanoseconds)
            readHardwareCounters(old)
            fresh.inherit(from: old)
            fresh.hardwareLatest = old.hardwareLatest
            try reoffload(fresh, replacing: old)
            for i in retiringRules.indices where retiringRules[i].flow === old { retiringRules[i].flow = fresh }
            table.replace(old, with: fresh)
            // After the rule is replaced: the counts carried over are then final.
            if options.clearStats { clearStats(fresh) }
            return .replaced(old, by: fresh)
        }
        guard options.create else { throw .notFound("flow does not exist") }
        let ufid = givenUFID ?? generateUFID(for: KeyEncoder(vlanLimit: ODPConstants.datapathVLANLimit).encode(match).key)
        let flow = DatapathFlow(ufid: ufid, match: match, program: consume program,
                                origin: options.origin, mask: probe.mask, hash: probe.hash, now: now)
        // Before anything is offloaded: a flow refused for its ufid must never have been
        // in hardware, not even for the moment between its rule's write and removal.
        guard table.claimUFID(flow) else { throw .exists("ufid \(formatUFID(ufid)) is in use by another flow") }
        // (The request's match is the flow's: `DatapathFlow.match` would rebuild it.)
        do { try offload(flow, match: match, prefetchedPort: prefetchedPort) } catch {
            table.releaseUFID(flow)
            throw error
        }
        guard table.insertClaimed(flow, matchCheckedAbsent: true) else {
            removeHardware(flow)
            throw .exists("flow already exists")
        }
        return .added(flow)
    }

    /// Whether `match` is `f`'s own: the same mask, and the same key under it.
    static func isOwnMatch(_ match: FlowMatch, of f: DatapathFlow) -> Bool {
        let own = f.match
        return own.mask == match.mask && own.key.masked(by: own.mask) == match.key.masked(by: match.mask)
    }

    /// Action bytes as a request carries them: the last flow's array when they are the
    /// same (an add-flows repeats them), a copy otherwise.
    public func actionBytes(sharing payload: ArraySlice<UInt8>) -> [UInt8] {
        // One load of the array: read twice from the property, it was retained for the
        // comparison, released, and retained again to return it.
        if let bytes = lastActions?.bytes, bytes.sameBytes(as: payload) { return bytes }
        return Array(payload)
    }

    /// A flow's actions decoded, checked and compiled, or the last flow's when they are
    /// the same bytes under the same `FlowState` (then shared).
    private func decodeAndCompile(_ actionBytes: [UInt8], for match: FlowMatch) throws(DatapathError) -> CompiledActions {
        let state = ActionCompiler.FlowState(match: match)
        if let last = lastActions, last.state == state, last.bytes == actionBytes { return last }
        let actions: [ODPAction]
        do { actions = try ODPAction.decode(actionBytes) } catch { throw .invalid(error.message) }
        do { try ActionCompiler.checkLength(actionBytes) } catch { throw DatapathError(error.errno, error.message) }
        let compiled: [CompiledAction]
        do { compiled = try ActionCompiler.compile(actions, for: match) } catch { throw DatapathError(error.errno, error.message) }
        let program = CompiledActions(bytes: actionBytes, state: state, actions: actions, compiled: ContiguousArray(compiled))
        lastActions = program
        return program
    }

    public func deleteFlow(_ f: DatapathFlow) {
        removeHardware(f)
        table.remove(f)
    }

    public func flushFlows() {
        // Every flow goes, and its counters with it: no rule is read before its delete
        // (removeHardware reads each one, a syscall per flow).
        if let sw = eswitch {
            // The eswitch holds no rule but this datapath's: its tables empty in one go.
            let flows = table.flows
            let offloaded = flows.contains { if case .hardware = $0.offload { true } else { false } }
            let allAtOnce = offloaded && sw.deleteAllRules()
            for f in flows {
                guard case .hardware(let h) = f.offload else { continue }
                if !allAtOnce { sw.deleteRule(h) }
                unregisterVXLAN(of: f)
                f.offload = .software(reason: OffloadState.ruleRemoved)
            }
        }
        table.removeAll()
    }

    /// Clears the flow's statistics: software counters to zero, hardware counters
    /// baselined at what the rule counts right now (not as of the last poll).
    public func clearStats(_ f: DatapathFlow) {
        readHardwareCounters(f)
        f.clearStats()
    }

    /// Reads the flow's hardware rule counters now (the periodic poll may be a while ago).
    public func readHardwareCounters(_ f: DatapathFlow) {
        if f.hintMark == 0, case .hardware(let h) = f.offload, let c = eswitch?.ruleCounters(h) { f.hardwareLatest = c }
    }

    // MARK: Upcalls and execution

    /// A miss on a packet thread.
    func handleMiss(_ b: PacketBuffer, key: FlowKey) {
        switch missMode {
        case .drop:
            return
        case .normal, .controller:
            raiseUpcall(.miss, b, key: key, userdata: nil, pid: vport(UInt32(truncatingIfNeeded: key[.inPort]))?.upcallPID ?? 0)
        }
    }

    func raiseUpcall(_ command: Upcall.Command, _ b: PacketBuffer, key: FlowKey, userdata: [UInt8]?, pid: UInt32) {
        let u = Upcall(command: command, inPort: UInt32(truncatingIfNeeded: key[.inPort]), key: key, packet: b.bytes,
                       userdata: userdata, pid: pid, offload: b.offload)
        if !upcalls.push(u) { counters.lost() }
    }

    /// An upcall that no listener took (its subscriber does not read): the `lost` count.
    public func countLostUpcall() { counters.lost() }

    /// Handles queued upcalls (control thread).
    public func processUpcalls() {
        for u in upcalls.drain() {
            if u.command == .miss && missMode == .normal {
                handleNormal(u)
            } else {
                upcallListener?(u)
            }
        }
    }

    private func handleNormal(_ u: Upcall) {
        let now = Sys.monotonicNanoseconds()
        let portNumbers = ports.keys.filter { $0 != 0 && ports[$0]?.type != .vxlan }.sorted()
        let decision = normal.decide(u.key, ports: portNumbers, now: now) { moved in
            // A MAC moved: flows towards it are stale.
            for f in Array(table.flows) where f.origin == .normal && f.match.key[.ethDst] == moved.mac {
                deleteFlow(f)
            }
        }
        var actions: [ODPAction]
        switch decision {
        case .drop:
            return
        case .flood(let ports):
            actions = ports.map { .output($0) }
        case .forward(let port, let match):
            actions = [.output(port)]
            let bytes = ODPAction.encode(actions)
            do {
                try putFlow(match: match, ufid: nil, actions: bytes, options: PutOptions(create: true, modify: true, origin: .normal))
            } catch {
                logger.debug("normal: flow not installed", metadata: ["error": "\(error)"])
            }
        }
        try? execute(packet: u.packet, offload: u.offload, key: u.key, actions: ODPAction.encode(actions))
    }

    /// OVS_PACKET_CMD_EXECUTE: runs actions on a packet given by userspace. `key`
    /// supplies metadata (in_port, priority, mark, tunnel, recirc_id).
    public func execute(packet: [UInt8], offload: OffloadInfo = OffloadInfo(), key meta: FlowKey, actions actionBytes: [UInt8]) throws(DatapathError) {
        guard let engine = controlEngine else { throw DatapathError(19, "datapath not started") }
        guard packet.count >= 14, packet.count <= SlotPool.frameCapacity else { throw .invalid("packet length \(packet.count) out of range") }
        let actions: [ODPAction]
        do { actions = try ODPAction.decode(actionBytes) } catch { throw .invalid(error.message) }
        do { try ActionCompiler.checkLength(actionBytes) } catch { throw DatapathError(error.errno, error.message) }
        var b = engine.spareBuffer()
        b.length = packet.count
        b.offload = offload
        packet.withUnsafeBytes { b.data.copyMemory(from: $0.baseAddress!, byteCount: packet.count) }
        var key = meta
        guard case .success(let offsets) = FlowExtractor.extract(b.data, length: b.length, into: &key) else {
            throw .invalid("packet too short for an Ethernet header")
        }
        let compiled: [CompiledAction]
        do { compiled = try ActionCompiler.compile(actions, for: FlowMatch(key: key, mask: .allOnes)) } catch {
            throw DatapathError(error.errno, error.message)
        }
        engine.now = Sys.monotonicNanoseconds()
        var o = offsets
        var state = PacketEngine.ExecState()
        compiled.withUnsafeBufferPointer { acts in
            engine.execute(acts, &b, key: &key, offsets: &o, state: &state, depth: 0, last: true)
        }
        engine.flush()
    }

    // MARK: Statistics

    public struct Stats: Sendable {
        public var hit: UInt64, missed: UInt64, lost: UInt64, flows: UInt64
        public var maskHit: UInt64, masks: UInt64
        public var offloadedFlows: UInt64
        public var partialFlows: UInt64
        /// Packets whose mark named no flow any more (they were classified).
        public var staleMarks: UInt64
        public var pendingFlows: UInt64
        public var failedFlows: UInt64
        /// Of the failed flows, those installed under skip_sw: nothing handles their packets.
        public var blackholedFlows: UInt64
        public var hardwareOnlyDrops: UInt64
    }

    public var stats: Stats {
        let c = counters.snapshot
        var byStatus = (offloaded: UInt64(0), partial: UInt64(0), pending: UInt64(0), failed: UInt64(0), blackholed: UInt64(0))
        for f in table.flows {
            switch offloadStatus(of: f) {
            case .offloaded: byStatus.offloaded += 1
            case .partial: byStatus.partial += 1
            case .pending: byStatus.pending += 1
            case .failed:
                byStatus.failed += 1
                if f.hardwareOnly { byStatus.blackholed += 1 }
            case .software: break
            }
        }
        return Stats(hit: c.hit, missed: c.missed, lost: c.lost, flows: UInt64(table.count), maskHit: c.maskHit,
                     masks: UInt64(table.classifier.maskCount), offloadedFlows: byStatus.offloaded,
                     partialFlows: byStatus.partial, staleMarks: counters.staleMarkCount,
                     pendingFlows: byStatus.pending, failedFlows: byStatus.failed, blackholedFlows: byStatus.blackholed,
                     hardwareOnlyDrops: counters.hardwareOnlyDropCount)
    }
}
