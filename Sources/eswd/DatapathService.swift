import ControlProtocol
import ESwitch
import Logging
import NetLinux
import Netlink
import ODP
import OVSDatapath
import Packet

/// The ovs_datapath, ovs_vport, ovs_flow and ovs_packet families.
final class DatapathService {
    var datapath: Datapath?
    let makeDatapath: (String) throws -> Datapath
    let logger: Logger
    /// Open add-flows transactions.
    var batches = OpenBatches()
    /// The last put's decoded mask (MaskMemo): the flows of an add-flows share theirs.
    let maskMemo = MaskMemo()
    /// Told where each new flow was allocated (HeapPrefault.noteAllocation).
    var heap: HeapPrefault?

    final class OpenBatch {
        /// The connection that opened it: a batch its client leaves open is undone.
        let client: Int32
        /// What it changed so far, oldest first (for rollback).
        var changes: [FlowChange] = []
        /// One of its requests failed under skip_sw (it was undone; the rest are refused).
        var failed = false

        init(client: Int32) { self.client = client }
    }

    /// Open batches by id. A batch's requests come one after another, so the last one
    /// looked up is kept at hand: a put looked its batch up three times, each a hash.
    struct OpenBatches {
        private var byID: [UInt32: OpenBatch] = [:]
        /// The last one looked up (nil: none), and its id. Two fields, not an optional
        /// tuple: binding the tuple retained the batch once more per look-up.
        private var lastID: UInt32 = 0
        private var lastBatch: OpenBatch?

        subscript(id: UInt32) -> OpenBatch? {
            mutating get {
                if lastBatch != nil && lastID == id { return lastBatch }
                let b = byID[id]
                if b != nil { (lastID, lastBatch) = (id, b) }
                return b
            }
        }

        var count: Int { byID.count }
        var all: [(id: UInt32, batch: OpenBatch)] { byID.map { ($0.key, $0.value) } }

        mutating func insert(_ b: OpenBatch, id: UInt32) {
            byID[id] = b
            (lastID, lastBatch) = (id, b)
        }

        mutating func remove(_ id: UInt32) {
            byID[id] = nil
            if lastID == id { lastBatch = nil }
        }
    }

    /// Runs a change that removes many rules with the data plane's removals written in
    /// batches (the daemon's BPF data plane; as is without one).
    var coalescingRemovals: (() -> Void) -> Void = { $0() }

    init(datapath: Datapath?, logger: Logger, makeDatapath: @escaping (String) throws -> Datapath) {
        self.datapath = datapath
        self.logger = logger
        self.makeDatapath = makeDatapath
    }

    func dp(_ h: Int32) throws(RequestError) -> Datapath {
        guard let d = datapath else { throw RequestError(19, "no datapath (add one with add-dp)") }
        if h != 0 && h != 1 { throw RequestError(19, "no datapath with index \(h)") }
        return d
    }

    // MARK: ovs_datapath

    func handleDatapath(_ m: GenericMessage, _ r: inout ControlServer.Reply) throws(RequestError) {
        let a = try RequestAttributes(m.attributes)
        switch m.command {
        case DatapathCmd.get:
            guard let d = datapath else {
                if m.header.flags & NetlinkFlags.dump == NetlinkFlags.dump { return }
                throw RequestError(19, "no datapath")
            }
            if let n = try a.string(DatapathAttr.name), n != d.name, n != d.localPortName {
                throw RequestError(19, "no datapath \(n)")
            }
            r.message(.reply(family: Family.datapath, command: DatapathCmd.new, sequence: r.sequence,
                             multi: m.header.flags & NetlinkFlags.dump != 0, attributes: describe(d)))
        case DatapathCmd.new:
            let name = try a.string(DatapathAttr.name) ?? ""
            if let d = datapath { throw RequestError(17, "datapath \(d.name) exists (one datapath per daemon)") }
            guard !name.isEmpty else { throw RequestError(22, "datapath name required") }
            do { datapath = try makeDatapath(name) } catch { throw RequestError(22, "\(error)") }
            r.message(.reply(family: Family.datapath, command: DatapathCmd.new, sequence: r.sequence, attributes: describe(datapath!)))
        case DatapathCmd.del:
            let d = try dp(m.familyHeader)
            if let n = try a.string(DatapathAttr.name), n != d.name, n != d.localPortName { throw RequestError(19, "no datapath \(n)") }
            d.flushFlows()
            d.stop()
            datapath = nil
            logger.info("datapath deleted", metadata: ["name": "\(d.name)"])
        case DatapathCmd.set:
            let d = try dp(m.familyHeader)
            if let p = try a.string(DatapathAttr.policy) {
                guard let pol = OffloadPolicy(rawValue: p) else { throw RequestError(22, "policy must be none, skip_sw or skip_hw") }
                d.policy = pol
                logger.info("offload policy set", metadata: ["policy": "\(p)"])
            }
            if let mm = try a.string(DatapathAttr.missMode) {
                guard let mode = MissMode(rawValue: mm) else { throw RequestError(22, "miss mode must be drop, normal or controller") }
                d.missMode = mode
            }
            if let idle = try a.u32(DatapathAttr.maxIdle) { d.maxIdleMilliseconds = Int(idle) }
            if let on = try a.u8(DatapathAttr.partialOffload) {
                d.setPartialOffload(on != 0)
                logger.info("partial offload set", metadata: ["on": "\(on != 0)"])
            }
            r.message(.reply(family: Family.datapath, command: DatapathCmd.new, sequence: r.sequence, attributes: describe(d)))
        default:
            throw RequestError(95, "unknown datapath command \(m.command)")
        }
    }

    func describe(_ d: Datapath) -> [UInt8] {
        var w = AttributeWriter()
        w.putString(DatapathAttr.name, d.name)
        let s = d.stats
        w.putU64Array(DatapathAttr.stats, [s.hit, s.missed, s.lost, s.flows])
        var mf: [UInt8] = []
        withUnsafeBytes(of: s.maskHit.littleEndian) { mf += $0 }
        withUnsafeBytes(of: UInt32(s.masks).littleEndian) { mf += $0 }
        mf += [0, 0, 0, 0]
        mf += [UInt8](repeating: 0, count: 16)
        w.put(DatapathAttr.megaflowStats, mf)
        w.putString(DatapathAttr.policy, d.policy.rawValue)
        w.putString(DatapathAttr.missMode, d.missMode.rawValue)
        w.putU64(DatapathAttr.offloadedFlows, s.offloadedFlows)
        w.putU64(DatapathAttr.pendingFlows, s.pendingFlows)
        w.putU64(DatapathAttr.failedFlows, s.failedFlows)
        w.putU64(DatapathAttr.blackholedFlows, s.blackholedFlows)
        w.putU64(DatapathAttr.hardwareOnlyDrops, s.hardwareOnlyDrops)
        w.putU8(DatapathAttr.partialOffload, d.partialOffload ? 1 : 0)
        w.putU64(DatapathAttr.partialFlows, s.partialFlows)
        w.putU64(DatapathAttr.staleMarks, s.staleMarks)
        w.putU32(DatapathAttr.maxIdle, UInt32(d.maxIdleMilliseconds))
        if let e = d.eswitch { w.putString(DatapathAttr.eswitch, e.name) }
        return w.bytes
    }

    // MARK: ovs_vport

    func handleVport(_ m: GenericMessage, _ r: inout ControlServer.Reply) throws(RequestError) {
        let d = try dp(m.familyHeader)
        let a = try RequestAttributes(m.attributes)
        func find() throws(RequestError) -> Vport {
            if let n = try a.string(VportAttr.name) {
                guard let p = d.port(named: n) else { throw RequestError(19, "no port \(n) in \(d.name)") }
                return p
            }
            if let n = try a.u32(VportAttr.portNumber) {
                guard let p = d.port(number: n) else { throw RequestError(19, "no port \(n) in \(d.name)") }
                return p
            }
            throw RequestError(22, "port name or number required")
        }
        switch m.command {
        case VportCmd.new:
            guard let name = try a.string(VportAttr.name), !name.isEmpty else { throw RequestError(22, "port name required") }
            let typeRaw = try a.u32(VportAttr.type) ?? VportType.netdev.rawValue
            guard let type = VportType(rawValue: typeRaw) else { throw RequestError(22, "unknown vport type \(typeRaw)") }
            var udpPort: UInt16?
            if let opts = a[VportAttr.options] {
                let o: [Attribute]
                do { o = try opts.nestedAttributes() } catch { throw RequestError(22, "malformed vport options") }
                if let p = o.first(where: { $0.type == TunnelOptionAttr.dstPort }) {
                    do { udpPort = try p.u16() } catch { throw RequestError(22, "dst_port: \(error)") }
                }
            }
            let number = try a.u32(VportAttr.portNumber)
            let v: Vport
            do { v = try d.addPort(name: name, type: type, number: number, udpPort: udpPort) } catch {
                throw RequestError(error.errno, error.message)
            }
            if let pid = try a.u32(VportAttr.upcallPID) { v.upcallPID = pid }
            r.message(.reply(family: Family.vport, command: VportCmd.new, sequence: r.sequence, attributes: describe(v)))
        case VportCmd.del:
            let v = try find()
            do { try d.deletePort(v.portNumber) } catch { throw RequestError(error.errno, error.message) }
        case VportCmd.get:
            if m.header.flags & NetlinkFlags.dump == NetlinkFlags.dump {
                for v in d.allPorts {
                    r.message(.reply(family: Family.vport, command: VportCmd.new, sequence: r.sequence, multi: true, attributes: describe(v)))
                }
            } else {
                r.message(.reply(family: Family.vport, command: VportCmd.new, sequence: r.sequence, attributes: describe(try find())))
            }
        case VportCmd.set:
            let v = try find()
            if let t = try a.u32(VportAttr.type), t != v.type.rawValue { throw RequestError(22, "port type cannot be changed") }
            if a.has(VportAttr.options) && v.type != .vxlan { throw RequestError(22, "\(v.name) has no options") }
            if a.has(VportAttr.options) { throw RequestError(95, "changing tunnel options needs del-if and add-if") }
            if let pid = try a.u32(VportAttr.upcallPID) { v.upcallPID = pid }
            r.message(.reply(family: Family.vport, command: VportCmd.new, sequence: r.sequence, attributes: describe(v)))
        default:
            throw RequestError(95, "unknown vport command \(m.command)")
        }
    }

    func describe(_ v: Vport) -> [UInt8] {
        var w = AttributeWriter()
        w.putU32(VportAttr.portNumber, v.portNumber)
        w.putU32(VportAttr.type, v.type.rawValue)
        w.putString(VportAttr.name, v.name)
        if v.type == .vxlan { w.nested(VportAttr.options) { $0.putU16(TunnelOptionAttr.dstPort, v.udpPort) } }
        w.putU32(VportAttr.upcallPID, v.upcallPID)
        let s = v.stats
        w.putU64Array(VportAttr.stats, [s.rxPackets, s.txPackets, s.rxBytes, s.txBytes, s.rxErrors, s.txErrors, s.rxDropped, s.txDropped])
        w.putU32(VportAttr.ifindex, UInt32(bitPattern: v.ifindex))
        if let e = v.eswitchPort {
            w.putU32(VportAttr.eswitchPort, e)
            if let sw = datapath?.eswitch {
                // What the hardware ran itself: received, less what went up the
                // representor (misses and marked packets) and what it dropped on parse.
                let c = sw.portCounters(e)
                let full = c.rxPackets &- min(c.rxPackets, c.toRepresentor &+ c.rxDropped)
                let partial = v.hintedPackets
                w.putU64Array(VportAttr.offloadCounters, [full, partial, s.rxPackets &- min(s.rxPackets, partial)])
            }
        }
        return w.bytes
    }
}
