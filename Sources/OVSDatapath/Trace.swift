import ESwitch
import ODP
import Packet

/// A trace as a tree of named values: the daemon sends it as nested attributes, the
/// CLI prints it as text or JSON (the same tree either way).
public indirect enum TraceNode: Sendable {
    case text(String)
    case number(UInt64)
    case flag(Bool)
    case record([(String, TraceNode)])
    case list([TraceNode])
}

/// Builds a record field by field.
struct TraceRecord {
    var fields: [(String, TraceNode)] = []
    mutating func add(_ name: String, _ text: String) { fields.append((name, .text(text))) }
    mutating func add(_ name: String, _ n: Int) { fields.append((name, .number(UInt64(max(0, n))))) }
    mutating func add(_ name: String, _ n: UInt64) { fields.append((name, .number(n))) }
    mutating func add(_ name: String, _ b: Bool) { fields.append((name, .flag(b))) }
    mutating func add(_ name: String, _ node: TraceNode) { fields.append((name, node)) }
    var node: TraceNode { .record(fields) }
}

/// Where a traced packet enters: a datapath port, or an eSwitch port whose
/// representor is not in the datapath (the uplink's `p0` usually is not).
public enum TraceIngress: Sendable {
    case vport(Vport)
    case eswitchPort(PortIndex)
}

/// `esw-dpctl trace`: what the hardware and then the software datapath would do with
/// a packet, computed from the tables without sending anything. Nothing is counted,
/// no flow is added, no upcall is raised: lookups are the read-only ones
/// (`HardwareTables.lookup`, `Classifier.entries(matching:)`) and actions run on a
/// private copy of the frame. Control thread only (it reads the writer-side tables).
final class PacketTracer {
    unowned let dp: Datapath
    let eswitch: ESwitch?
    /// Private buffers with headroom (VLAN push, encap); a trace uses a handful.
    let pool = SlotPool(count: 16)
    var nextSlot = 0
    var outputs: [TraceNode] = []
    var verdicts: [String] = []
    /// The ingress port's offloaded program, which decides before the tables.
    var portProgram: String?
    let dpNames: [UInt32: String]
    let hardwareNames: [UInt32: String]

    init(dp: Datapath) {
        self.dp = dp
        eswitch = dp.eswitch
        var names: [UInt32: String] = [:]
        for p in dp.allPorts { names[p.portNumber] = p.name }
        dpNames = names
        var hw: [UInt32: String] = [:]
        for p in dp.eswitch?.ports ?? [] { hw[p.index] = p.representor?.name ?? p.physPortName }
        hardwareNames = hw
    }

    // MARK: Buffers

    func buffer(_ bytes: [UInt8]) -> PacketBuffer? {
        guard nextSlot < pool.count, bytes.count <= SlotPool.frameCapacity else { return nil }
        var b = pool.buffer(nextSlot)
        nextSlot += 1
        b.length = bytes.count
        bytes.withUnsafeBytes { b.data.copyMemory(from: $0.baseAddress!, byteCount: bytes.count) }
        return b
    }

    // MARK: Describing

    static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(bytes.count * 2)
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 15)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// A packet's key as ODP text: the fields a packet has, not the metadata it does
    /// not (zero priority, mark, conntrack; tunnel only when there is one).
    func keyText(_ key: FlowKey, names: [UInt32: String]) -> String {
        var mask = FlowKey.allOnes
        for w in [7, 8, 10, 11, 12] { mask.words[w] = 0 }
        mask[.packetType] = 0
        if !key.tunnelDestinationSet && !key.tunnelSourceSet { for w in 0...6 { mask.words[w] = 0 } }
        return ODPText.formatKey(FlowMatch(key: key.masked(by: mask), mask: mask), portNames: names,
                                 vlanLimit: ODPConstants.datapathVLANLimit)
    }

    func matchText(key: FlowKey, mask: FlowKey, names: [UInt32: String]) -> String {
        ODPText.formatKey(FlowMatch(key: key, mask: mask), portNames: names, vlanLimit: ODPConstants.datapathVLANLimit)
    }

    /// A frame as it leaves: length, hex and key. An encapsulated frame is decoded as
    /// its tunnel metadata and `inner` frame (as the receiving VTEP's datapath sees it).
    func frameNode(_ bytes: [UInt8], inner: [UInt8]? = nil, tunnel: TunnelMetadata? = nil, inPort: UInt32? = nil,
                   names: [UInt32: String]) -> TraceRecord {
        var r = TraceRecord()
        r.add("length", bytes.count)
        r.add("hex", Self.hex(bytes))
        let bytes = inner ?? bytes
        var key = FlowKey()
        key[.inPort] = UInt64(inPort ?? ODPConstants.noPort)
        tunnel?.store(into: &key)
        let ok = bytes.withUnsafeBytes { raw -> Bool in
            guard let base = raw.baseAddress else { return false }
            if case .success = FlowExtractor.extract(base, length: bytes.count, into: &key) { return true }
            return false
        }
        r.add("key", ok ? keyText(key, names: names) : "(shorter than an Ethernet header)")
        return r
    }

    // MARK: The trace

    func trace(frame: [UInt8], ingress: TraceIngress, tunnel: TunnelMetadata?) throws(DatapathError) -> TraceNode {
        guard frame.count >= 14 else { throw .invalid("packet length \(frame.count): shorter than an Ethernet header") }
        guard frame.count <= SlotPool.frameCapacity else { throw .invalid("packet length \(frame.count) out of range") }
        if let eswitch, eswitch.mode == .legacy {
            throw DatapathError(95, "trace follows switchdev mode: \(eswitch.name) is in legacy mode (MAC-table switching)")
        }
        var top = TraceRecord()
        var packet = TraceRecord()
        switch ingress {
        case .vport(let v):
            packet.add("in_port", v.name)
            packet.fields += frameNode(frame, tunnel: tunnel, inPort: v.portNumber, names: dpNames).fields
            top.add("packet", packet.node)
            if v.type == .vxlan {
                guard let tunnel, tunnel.ipv4Dst != 0, tunnel.ipv4Src != 0 else {
                    throw .invalid("a packet on \(v.name) needs tunnel(src=…,dst=…) metadata (IPv4)")
                }
                if eswitch != nil {
                    // It reaches the eSwitch as a VXLAN frame on the uplink.
                    let outer = wireFrame(inner: frame, tunnel: tunnel, vport: v)
                    top.add("wire", frameNode(outer, names: hardwareNames).node)
                    hardwareStage(outer, port: .uplink, into: &top)
                } else {
                    top.add("software", softwareStage(frame, vport: v, tunnel: tunnel, depth: 0))
                }
            } else if let e = v.eswitchPort {
                hardwareStage(frame, port: e, into: &top)
            } else {
                top.add("software", softwareStage(frame, vport: v, tunnel: nil, depth: 0))
            }
        case .eswitchPort(let p):
            packet.add("in_port", hardwareNames[p] ?? "\(p)")
            packet.fields += frameNode(frame, names: dpNames).fields
            top.add("packet", packet.node)
            hardwareStage(frame, port: p, into: &top)
        }
        top.add("outputs", .list(outputs))
        let tables = verdicts.isEmpty ? "dropped" : verdicts.joined(separator: "; ")
        top.add("verdict", portProgram.map { "\($0); if it passes: \(tables)" } ?? tables)
        return top.node
    }

    /// The inner frame with the outer headers the remote VTEP would put on the wire.
    func wireFrame(inner: [UInt8], tunnel t: TunnelMetadata, vport: Vport) -> [UInt8] {
        let udpDst = t.tpDst != 0 ? t.tpDst : vport.udpPort
        // The remote VTEP resolved the host's VTEP address to p0's MAC.
        let template = VXLAN.template(ethSrc: 0, ethDst: eswitch?.publishedVTEPMAC ?? 0, tunnel: t, udpDst: udpDst)
        guard var b = buffer(inner) else { return inner }
        let ok = template.bytes.withUnsafeBytes { tb in
            VXLAN.encapsulate(&b, template: tb, isIPv6: false, udpChecksum: t.flags.contains(.checksum),
                              sourcePort: t.tpSrc != 0 ? t.tpSrc : VXLAN.sourcePort(hash: 0), innerTOS: 0, ipID: 0)
        }
        return ok ? b.bytes : inner
    }
}

extension Datapath {
    /// Traces `frame` entering at `ingress` (see `PacketTracer`). `tunnel` is the
    /// metadata of a packet received on a vxlan vport.
    public func trace(frame: [UInt8], ingress: TraceIngress, tunnel: TunnelMetadata?) throws(DatapathError) -> TraceNode {
        try PacketTracer(dp: self).trace(frame: frame, ingress: ingress, tunnel: tunnel)
    }
}
