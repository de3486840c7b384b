import Netlink
import Packet

/// A `set`/`set_masked` action's target: one key attribute with its value and, for a
/// masked set, its mask.
public struct SetField: Sendable, Equatable {
    public var attribute: UInt16
    public var value: [UInt8]
    public var mask: [UInt8]?

    public init(attribute: UInt16, value: [UInt8], mask: [UInt8]? = nil) {
        self.attribute = attribute
        self.value = value
        self.mask = mask
    }
}

/// Datapath actions as Swift values (decoded from, and encodable to, OVS_ACTION_ATTR_*).
public indirect enum ODPAction: Sendable, Equatable {
    case output(UInt32)
    case userspace(pid: UInt32, userdata: [UInt8]?, egressTunnelPort: UInt32?, includeActions: Bool)
    case set(SetField)
    case pushVLAN(tpid: UInt16, tci: UInt16)
    case popVLAN
    case sample(probability: UInt32, actions: [ODPAction])
    case recirc(UInt32)
    case hash(algorithm: UInt32, basis: UInt32)
    case pushMPLS(lse: UInt32, ethType: UInt16)
    case popMPLS(ethType: UInt16)
    case conntrack([UInt8])
    case trunc(UInt32)
    case pushEth(src: UInt64, dst: UInt64)
    case popEth
    case ctClear
    case meter(UInt32)
    case clone([ODPAction])
    case checkPacketLength(size: UInt16, greater: [ODPAction], lessEqual: [ODPAction])
    case addMPLS(lse: UInt32, ethType: UInt16)
    case drop(reason: UInt32)
    case tunnelPop(UInt32)
    case lbOutput(UInt32)
    case other(type: UInt16, payload: [UInt8])

    /// The name used in refusals.
    public var name: String {
        switch self {
        case .output: "output"
        case .userspace: "userspace"
        case .set(let f): (f.mask == nil ? "set(" : "set_masked(") + KeyAttr.name(f.attribute) + ")"
        case .pushVLAN: "push_vlan"
        case .popVLAN: "pop_vlan"
        case .sample: "sample"
        case .recirc: "recirc"
        case .hash: "hash"
        case .pushMPLS: "push_mpls"
        case .popMPLS: "pop_mpls"
        case .conntrack: "ct"
        case .trunc: "trunc"
        case .pushEth: "push_eth"
        case .popEth: "pop_eth"
        case .ctClear: "ct_clear"
        case .meter: "meter"
        case .clone: "clone"
        case .checkPacketLength: "check_pkt_len"
        case .addMPLS: "add_mpls"
        case .drop: "drop"
        case .tunnelPop: "tnl_pop"
        case .lbOutput: "lb_output"
        case .other(let t, _): "action\(t)"
        }
    }
}

extension ODPAction {
    /// How deep action lists may nest (inside clone, sample, check_pkt_len; the top list
    /// is depth 0), as the kernel's OVS_COPY_ACTIONS_MAX_DEPTH: deeper input is refused
    /// before its recursion can exhaust the stack (12,000 nested clones did).
    public static let maxNestingDepth = 16

    /// Decodes an action list, checking every length and the nesting depth.
    public static func decode(_ bytes: [UInt8]) throws(ODPError) -> [ODPAction] {
        try decode(bytes, depth: 0)
    }

    static func decode(_ bytes: [UInt8], depth: Int) throws(ODPError) -> [ODPAction] {
        let list: [Attribute]
        do { list = try AttributeParser.parse(bytes) } catch { throw ODPError(position: nil, "actions: \(error)") }
        var out: [ODPAction] = []
        out.reserveCapacity(list.count)
        for a in list { out.append(try decodeOne(a, depth: depth)) }
        return out
    }

    static func decodeOne(_ a: Attribute, depth: Int) throws(ODPError) -> ODPAction {
        // Read in place: most actions are a few integers, not worth an array each.
        let p = PayloadBytes(a.payload)
        func need(_ n: Int) throws(ODPError) {
            guard p.count == n else {
                throw ODPError(position: nil, "action \(a.type) has length \(p.count), expected \(n)")
            }
        }
        // The list inside a clone, sample or check_pkt_len (the kernel's depth check).
        func innerList(_ bytes: ArraySlice<UInt8>) throws(ODPError) -> [ODPAction] {
            guard depth < ODPAction.maxNestingDepth else {
                throw ODPError(position: nil, "actions nested more than \(ODPAction.maxNestingDepth) deep")
            }
            return try decode(Array(bytes), depth: depth + 1)
        }
        func nested() throws(ODPError) -> [Attribute] {
            do { return try a.nestedAttributes() } catch { throw ODPError(position: nil, "action \(a.type): \(error)") }
        }
        switch a.type {
        case ActionAttr.output: try need(4); return .output(p.le32(0))
        case ActionAttr.userspace:
            let subs = try nested()
            guard let pid = subs.first(where: { $0.type == UserspaceAttr.pid }), pid.count == 4 else {
                throw ODPError(position: nil, "userspace action without pid")
            }
            let ud = subs.first { $0.type == UserspaceAttr.userdata }.map { Array($0.payload) }
            let tun = subs.first { $0.type == UserspaceAttr.egressTunnelPort }.flatMap { $0.count == 4 ? Array($0.payload).le32(0) : nil }
            return .userspace(pid: Array(pid.payload).le32(0), userdata: ud, egressTunnelPort: tun,
                              includeActions: subs.contains { $0.type == UserspaceAttr.actions })
        case ActionAttr.set, ActionAttr.setMasked:
            let subs = try nested()
            guard subs.count == 1, let k = subs.first else { throw ODPError(position: nil, "set needs exactly one key attribute") }
            if a.type == ActionAttr.set { return .set(SetField(attribute: k.type, value: Array(k.payload))) }
            guard k.count % 2 == 0 else { throw ODPError(position: nil, "set_masked: odd payload length") }
            let half = k.count / 2
            return .set(SetField(attribute: k.type, value: Array(k.payload.prefix(half)), mask: Array(k.payload.suffix(half))))
        case ActionAttr.pushVLAN: try need(4); return .pushVLAN(tpid: p.be16(0), tci: p.be16(2))
        case ActionAttr.popVLAN: try need(0); return .popVLAN
        case ActionAttr.sample:
            let subs = try nested()
            guard let pr = subs.first(where: { $0.type == SampleAttr.probability }), pr.count == 4,
                  let acts = subs.first(where: { $0.type == SampleAttr.actions }) else {
                throw ODPError(position: nil, "sample needs probability and actions")
            }
            return .sample(probability: Array(pr.payload).le32(0), actions: try innerList(acts.payload))
        case ActionAttr.recirc: try need(4); return .recirc(p.le32(0))
        case ActionAttr.hash: try need(8); return .hash(algorithm: p.le32(0), basis: p.le32(4))
        case ActionAttr.pushMPLS: try need(6); return .pushMPLS(lse: p.be32(0), ethType: p.be16(4))
        case ActionAttr.popMPLS: try need(2); return .popMPLS(ethType: p.be16(0))
        case ActionAttr.ct: return .conntrack(Array(a.payload))
        case ActionAttr.trunc: try need(4); return .trunc(p.le32(0))
        case ActionAttr.pushEth: try need(12); return .pushEth(src: p.be48(0), dst: p.be48(6))
        case ActionAttr.popEth: try need(0); return .popEth
        case ActionAttr.ctClear: try need(0); return .ctClear
        case ActionAttr.meter: try need(4); return .meter(p.le32(0))
        case ActionAttr.clone: return .clone(try innerList(a.payload))
        case ActionAttr.checkPktLen:
            let subs = try nested()
            guard let l = subs.first(where: { $0.type == CheckPktLenAttr.pktLen }), l.count == 2,
                  let g = subs.first(where: { $0.type == CheckPktLenAttr.actionsIfGreater }),
                  let le = subs.first(where: { $0.type == CheckPktLenAttr.actionsIfLessEqual }) else {
                throw ODPError(position: nil, "check_pkt_len needs size, gt and le")
            }
            return .checkPacketLength(size: Array(l.payload).le16(0), greater: try innerList(g.payload),
                                      lessEqual: try innerList(le.payload))
        case ActionAttr.addMPLS: try need(8); return .addMPLS(lse: p.be32(0), ethType: p.be16(4))
        case ActionAttr.drop: try need(4); return .drop(reason: p.le32(0))
        case ActionAttr.tunnelPop: try need(4); return .tunnelPop(p.le32(0))
        case ActionAttr.lbOutput: try need(4); return .lbOutput(p.le32(0))
        default: return .other(type: a.type, payload: Array(a.payload))
        }
    }

    public static func encode(_ actions: [ODPAction]) -> [UInt8] {
        var w = AttributeWriter()
        for a in actions { a.encode(into: &w) }
        return w.bytes
    }

    public func encode(into w: inout AttributeWriter) {
        switch self {
        case .output(let p): w.putU32(ActionAttr.output, p)
        case .userspace(let pid, let ud, let tun, let inc):
            w.nested(ActionAttr.userspace) { n in
                n.putU32(UserspaceAttr.pid, pid)
                if let ud { n.put(UserspaceAttr.userdata, ud) }
                if let tun { n.putU32(UserspaceAttr.egressTunnelPort, tun) }
                if inc { n.putFlag(UserspaceAttr.actions) }
            }
        case .set(let f):
            w.nested(f.mask == nil ? ActionAttr.set : ActionAttr.setMasked) { n in n.put(f.attribute, f.value + (f.mask ?? [])) }
        case .pushVLAN(let tpid, let tci): w.put(ActionAttr.pushVLAN, [UInt8].be16(tpid) + [UInt8].be16(tci))
        case .popVLAN: w.putFlag(ActionAttr.popVLAN)
        case .sample(let p, let acts):
            w.nested(ActionAttr.sample) { n in
                n.putU32(SampleAttr.probability, p)
                n.put(SampleAttr.actions, ODPAction.encode(acts))
            }
        case .recirc(let r): w.putU32(ActionAttr.recirc, r)
        case .hash(let alg, let basis): w.put(ActionAttr.hash, [UInt8].le32(alg) + [UInt8].le32(basis))
        case .pushMPLS(let lse, let t): w.put(ActionAttr.pushMPLS, [UInt8].be32(lse) + [UInt8].be16(t))
        case .popMPLS(let t): w.putBE16(ActionAttr.popMPLS, t)
        case .conntrack(let raw): w.put(ActionAttr.ct, raw)
        case .trunc(let n): w.putU32(ActionAttr.trunc, n)
        case .pushEth(let s, let d):
            var p = [UInt8](repeating: 0, count: 12)
            p.setBE48(0, s)
            p.setBE48(6, d)
            w.put(ActionAttr.pushEth, p)
        case .popEth: w.putFlag(ActionAttr.popEth)
        case .ctClear: w.putFlag(ActionAttr.ctClear)
        case .meter(let m): w.putU32(ActionAttr.meter, m)
        case .clone(let acts): w.put(ActionAttr.clone, ODPAction.encode(acts))
        case .checkPacketLength(let size, let g, let le):
            w.nested(ActionAttr.checkPktLen) { n in
                n.putU16(CheckPktLenAttr.pktLen, size)
                n.put(CheckPktLenAttr.actionsIfGreater, ODPAction.encode(g))
                n.put(CheckPktLenAttr.actionsIfLessEqual, ODPAction.encode(le))
            }
        case .addMPLS(let lse, let t): w.put(ActionAttr.addMPLS, [UInt8].be32(lse) + [UInt8].be16(t) + [0, 0])
        case .drop(let r): w.putU32(ActionAttr.drop, r)
        case .tunnelPop(let p): w.putU32(ActionAttr.tunnelPop, p)
        case .lbOutput(let b): w.putU32(ActionAttr.lbOutput, b)
        case .other(let t, let p): w.put(t, p)
        }
    }

    /// Every output port the actions use, nested lists included.
    public var outputPorts: [UInt32] {
        switch self {
        case .output(let p): [p]
        case .sample(_, let a), .clone(let a): a.flatMap(\.outputPorts)
        case .checkPacketLength(_, let g, let l): (g + l).flatMap(\.outputPorts)
        default: []
        }
    }
}
