import ControlProtocol
import ESwitch
import Netlink
import ODP
import OVSDatapath
import Packet

extension DatapathService {
    /// Largest packet a trace takes: the reply carries it (and its copies) as hex in
    /// one attribute tree, whose lengths are 16 bits.
    static let largestTracedPacket = 4096

    /// PacketCmd.trace: IN_PORT (name or number) and a packet (bytes, or key and mask
    /// attributes built into a frame); the reply is the trace as `TraceAttr` values.
    func handleTrace(_ m: GenericMessage, _ r: inout ControlServer.Reply) throws(RequestError) {
        let d = try dp(m.familyHeader)
        let a = try RequestAttributes(m.attributes)
        guard let portText = try a.string(PacketAttr.inPortName) else { throw RequestError(22, "an input port is required") }
        let ingress = try Self.ingress(portText, in: d)
        var frame: [UInt8]
        var tunnel: TunnelMetadata?
        if let packet = a.bytes(PacketAttr.packet) {
            frame = packet
        } else if let keyBytes = a.bytes(PacketAttr.key), !keyBytes.isEmpty {
            let decoder = KeyDecoder(vlanLimit: ODPConstants.datapathVLANLimit)
            let key: FlowKey
            switch decoder.decodeKey(keyBytes) {
            case .success(let k): key = k
            case .failure(let e): throw RequestError(22, "packet: \(e.message)")
            }
            let mask: FlowKey
            switch decoder.decodeMask(a.bytes(PacketAttr.mask) ?? [], for: key) {
            case .success(let mm): mask = mm
            case .failure(let e): throw RequestError(22, "packet mask: \(e.message)")
            }
            if mask[.inPort] != 0, case .vport(let v) = ingress, key[.inPort] != UInt64(v.portNumber) {
                throw RequestError(22, "in_port(\(key[.inPort])) in the packet is not \(v.name) (port \(v.portNumber))")
            }
            do { frame = try FrameBuilder.build(key: key, mask: mask) } catch { throw RequestError(22, "packet: \(error)") }
            let t = TunnelMetadata(from: key)
            if t.isSet { tunnel = t }
        } else {
            throw RequestError(22, "a packet (hex bytes or a flow description) is required")
        }
        guard frame.count <= Self.largestTracedPacket else {
            throw RequestError(22, "packet length \(frame.count): trace takes at most \(Self.largestTracedPacket) bytes")
        }
        let trace: TraceNode
        do { trace = try d.trace(frame: frame, ingress: ingress, tunnel: tunnel) } catch {
            throw RequestError(error.errno, error.message)
        }
        var w = AttributeWriter()
        w.nested(PacketAttr.trace) { Self.put(trace, into: &$0) }
        guard w.overflow == nil else { throw RequestError(90, "the trace is too long for one message") }
        r.message(.reply(family: Family.packet, command: PacketCmd.trace, sequence: r.sequence, attributes: w.bytes))
    }

    /// A datapath port by number or name, else a representor of the eSwitch (p0 is
    /// usually not in the datapath), else a VF netdev's name; ENODEV otherwise.
    static func ingress(_ text: String, in d: Datapath) throws(RequestError) -> TraceIngress {
        if let n = UInt32(text) {
            guard let v = d.port(number: n) else { throw RequestError(19, "no port \(n) in \(d.name)") }
            return .vport(v)
        }
        if let v = d.port(named: text) { return .vport(v) }
        if let sw = d.eswitch {
            if let p = sw.port(representor: text) { return .eswitchPort(p.index) }
            if let p = sw.ports.first(where: { $0.netdevName == text || $0.physPortName == text }) {
                if let rep = p.representor, let v = d.port(named: rep.name) { return .vport(v) }
                return .eswitchPort(p.index)
            }
        }
        throw RequestError(19, "no port \(text) in \(d.name) or its eSwitch")
    }

    static func put(_ node: TraceNode, into w: inout AttributeWriter) {
        switch node {
        case .text(let s): w.putString(TraceAttr.text, s)
        case .number(let n): w.putU64(TraceAttr.number, n)
        case .flag(let b): w.putU8(TraceAttr.flag, b ? 1 : 0)
        case .list(let items): w.nested(TraceAttr.list) { for i in items { put(i, into: &$0) } }
        case .record(let fields):
            w.nested(TraceAttr.record) { rw in
                for (name, v) in fields {
                    rw.nested(TraceAttr.field) { fw in
                        fw.putString(TraceAttr.name, name)
                        put(v, into: &fw)
                    }
                }
            }
        }
    }
}
