import Conntrack
import ODP
import Packet

/// Actions ready to run on packets: every field pre-decoded, so the per-packet work
/// is a switch over this enum.
public indirect enum CompiledAction: Sendable {
    case output(UInt32)
    case userspace(pid: UInt32, userdata: [UInt8]?, egressTunnelPort: UInt32?)
    case setEthernet(src: UInt64, srcMask: UInt64, dst: UInt64, dstMask: UInt64)
    case setIPv4(value: HeaderRewrite.IPv4Fields, mask: HeaderRewrite.IPv4Fields)
    case setIPv6(value: HeaderRewrite.IPv6Fields, mask: HeaderRewrite.IPv6Fields)
    case setPorts(proto: UInt8, src: UInt16, srcMask: UInt16, dst: UInt16, dstMask: UInt16)
    case setICMP(v6: Bool, type: UInt8, typeMask: UInt8, code: UInt8, codeMask: UInt8)
    case setARP(sip: UInt32, sipMask: UInt32, tip: UInt32, tipMask: UInt32, op: UInt16, opMask: UInt16,
                sha: UInt64, shaMask: UInt64, tha: UInt64, thaMask: UInt64)
    case setMPLS(lse: UInt32, mask: UInt32)
    case setPriority(value: UInt32, mask: UInt32)
    case setMark(value: UInt32, mask: UInt32)
    case setTunnel(TunnelMetadata)
    case pushVLAN(tpid: UInt16, tci: UInt16)
    case popVLAN
    case pushMPLS(lse: UInt32, ethType: UInt16)
    case popMPLS(ethType: UInt16)
    case pushEth(src: UInt64, dst: UInt64)
    case popEth
    case sample(probability: UInt32, actions: [CompiledAction])
    case clone([CompiledAction])
    case recirc(UInt32)
    case hash(algorithm: UInt32, basis: UInt32)
    case trunc(UInt32)
    case checkPacketLength(size: UInt16, greater: [CompiledAction], lessEqual: [CompiledAction])
    case drop
    case ctClear
    case conntrack(CTAction)
}

/// Why a flow's actions were refused: EINVAL (malformed or not valid for the flow, as
/// the kernel's flow_netlink.c refuses them) or EOPNOTSUPP (valid, but esw cannot run it).
public struct ActionError: Error, Sendable, Equatable, CustomStringConvertible {
    public let errno: Int32
    public let message: String
    public var description: String { message }

    static func invalid(_ m: String) -> ActionError { ActionError(errno: 22, message: m) }
    static func unsupported(_ m: String) -> ActionError { ActionError(errno: 95, message: m) }
}

/// Validation and compilation of a flow's actions against its match.
public enum ActionCompiler {
    /// Ports a datapath may have (the kernel's DP_MAX_PORTS).
    public static let maxPorts: UInt32 = 65535
    /// Nested action lists, as deep as the decoder lets them be (the kernel's limit).
    static let maxDepth = ODPAction.maxNestingDepth

    /// The longest action list a flow or an execute may carry: the kernel's
    /// MAX_ACTIONS_BUFSIZE (32 KiB, net/openvswitch/flow_netlink.c), past which it answers
    /// EMSGSIZE. The kernel counts its own copy of the actions (a header, and each action
    /// as it converts it: a set() becomes set_masked with its mask, twice as long), so it
    /// refuses some shorter lists too. esw counts the actions attribute's payload as sent:
    /// what the user can see and check, with no copy to build first. It is checked once
    /// the list has decoded: a malformed list is EINVAL whatever its length, as the
    /// kernel refuses clone() nested 17 deep before its copy has grown past 32 KiB.
    public static let maxActionsLength = 32 * 1024

    /// Refuses an action list longer than `maxActionsLength`, as the kernel does.
    public static func checkLength(_ actionBytes: [UInt8]) throws(ActionError) {
        guard actionBytes.count <= maxActionsLength else {
            throw ActionError(errno: 90, message: "the actions are too long: \(actionBytes.count) bytes, at most \(maxActionsLength)")
        }
    }

    public static func compile(_ actions: [ODPAction], for match: FlowMatch) throws(ActionError) -> [CompiledAction] {
        var state = FlowState(match: match)
        return try compileList(actions, state: &state, depth: 0)
    }


    /// What the flow's packets look like as actions run (push/pop change it).
    struct FlowState: Equatable {
        var ethType: UInt16
        var ethTypeExact: Bool
        var ipProto: UInt8?
        var frag: UInt8?
        var isEthernet: Bool
        var tpSrc: UInt16

        init(match m: FlowMatch) {
            ethType = UInt16(truncatingIfNeeded: m.key[.ethType])
            ethTypeExact = m.mask[.ethType] == 0xffff
            ipProto = m.mask[.ipProto] == 0xff ? UInt8(truncatingIfNeeded: m.key[.ipProto]) : nil
            frag = m.mask[.ipFrag] != 0 ? UInt8(truncatingIfNeeded: m.key[.ipFrag]) : nil
            isEthernet = m.key[.packetType] == 0
            tpSrc = UInt16(truncatingIfNeeded: m.key[.tpSrc])
        }

        func requireType(_ t: UInt16, _ what: String) throws(ActionError) {
            guard ethTypeExact && ethType == t else {
                throw .invalid("\(what) needs a flow matching eth_type(\(hex4(t))) exactly")
            }
        }

        func requireProto(_ p: UInt8, _ what: String) throws(ActionError) {
            guard let ipProto, ipProto == p else { throw .invalid("\(what) needs a flow matching ip proto \(p) exactly") }
        }
    }

    static func hex4(_ v: UInt16) -> String {
        let h = String(v, radix: 16)
        return "0x" + String(repeating: "0", count: max(0, 4 - h.count)) + h
    }

    static func compileList(_ actions: [ODPAction], state: inout FlowState, depth: Int) throws(ActionError) -> [CompiledAction] {
        guard depth <= maxDepth else { throw .invalid("actions nested more than \(maxDepth) deep") }
        var out: [CompiledAction] = []
        for a in actions {
            switch a {
            case .output(let p):
                guard p < maxPorts else { throw .invalid("output port \(p) out of range (0...\(maxPorts - 1))") }
                out.append(.output(p))
            case .userspace(let pid, let ud, let tun, _):
                out.append(.userspace(pid: pid, userdata: ud, egressTunnelPort: tun))
            case .set(let f):
                out.append(try compileSet(f, state: state))
            case .pushVLAN(let tpid, let tci):
                guard EtherType.isVLAN(tpid) else { throw .invalid("push_vlan: TPID \(hex4(tpid)) is not 0x8100 or 0x88a8") }
                guard tci & VLAN.present != 0 else { throw .invalid("push_vlan: TCI \(hex4(tci)) lacks the CFI (tag present) bit") }
                guard state.isEthernet else { throw .invalid("push_vlan on a non-Ethernet packet") }
                out.append(.pushVLAN(tpid: tpid, tci: tci))
            case .popVLAN:
                guard state.isEthernet else { throw .invalid("pop_vlan on a non-Ethernet packet") }
                out.append(.popVLAN)
            case .sample(let p, let acts):
                var s = state
                out.append(.sample(probability: p, actions: try compileList(acts, state: &s, depth: depth + 1)))
            case .clone(let acts):
                var s = state
                out.append(.clone(try compileList(acts, state: &s, depth: depth + 1)))
            case .checkPacketLength(let size, let g, let l):
                var sg = state, sl = state
                out.append(.checkPacketLength(size: size, greater: try compileList(g, state: &sg, depth: depth + 1),
                                              lessEqual: try compileList(l, state: &sl, depth: depth + 1)))
            case .recirc(let r): out.append(.recirc(r))
            case .hash(let alg, let basis):
                guard alg == HashAlgorithm.l4 || alg == HashAlgorithm.symL4 else { throw .invalid("hash: unknown algorithm \(alg)") }
                out.append(.hash(algorithm: alg, basis: basis))
            case .trunc(let n):
                guard n >= 14 else { throw .invalid("trunc(\(n)) shorter than an Ethernet header") }
                out.append(.trunc(n))
            case .pushMPLS(let lse, let t):
                guard EtherType.isMPLS(t) else { throw .invalid("push_mpls: eth_type \(hex4(t)) is not MPLS") }
                out.append(.pushMPLS(lse: lse, ethType: t))
                state.ethType = t
                state.ipProto = nil
            case .popMPLS(let t):
                try state.requireType(state.ethType, "pop_mpls")
                guard EtherType.isMPLS(state.ethType) else { throw .invalid("pop_mpls needs an MPLS flow") }
                out.append(.popMPLS(ethType: t))
                state.ethType = t
            case .pushEth(let s, let d):
                guard !state.isEthernet else { throw .invalid("push_eth on a packet that already has an Ethernet header") }
                out.append(.pushEth(src: s, dst: d))
                state.isEthernet = true
            case .popEth:
                guard state.isEthernet else { throw .invalid("pop_eth on a packet without an Ethernet header") }
                out.append(.popEth)
                state.isEthernet = false
            case .drop:
                out.append(.drop)
            case .ctClear:
                out.append(.ctClear)
            case .conntrack(let payload):
                out.append(.conntrack(try ConntrackActionDecoder.decode(payload, ethType: state.ethTypeExact ? state.ethType : nil)))
            case .meter:
                throw .unsupported("meter: esw has no meters")
            case .addMPLS:
                throw .unsupported("add_mpls is not supported")
            case .tunnelPop, .lbOutput:
                throw .unsupported("\(a.name) is an Open vSwitch userspace-datapath action, not a kernel one")
            case .other(let t, _):
                throw .unsupported("action type \(t) is not supported")
            }
        }
        return out
    }

    static func compileSet(_ f: SetField, state: FlowState) throws(ActionError) -> CompiledAction {
        let v = f.value
        let m = f.mask ?? [UInt8](repeating: 0xff, count: v.count)
        let masked = f.mask != nil
        func need(_ n: Int) throws(ActionError) {
            guard v.count == n && m.count == n else { throw .invalid("set(\(KeyAttr.name(f.attribute))): length \(v.count), expected \(n)") }
        }
        switch f.attribute {
        case KeyAttr.priority:
            try need(4)
            return .setPriority(value: v.le32(0), mask: m.le32(0))
        case KeyAttr.skbMark:
            try need(4)
            return .setMark(value: v.le32(0), mask: m.le32(0))
        case KeyAttr.ethernet:
            try need(12)
            guard state.isEthernet else { throw .invalid("set(eth) on a non-Ethernet packet") }
            return .setEthernet(src: v.be48(0), srcMask: m.be48(0), dst: v.be48(6), dstMask: m.be48(6))
        case KeyAttr.ipv4:
            try need(12)
            try state.requireType(EtherType.ipv4, "set(ipv4)")
            if masked {
                guard m[8] == 0, m[11] == 0 else { throw .invalid("set(ipv4): proto and frag cannot be changed") }
            } else {
                if let p = state.ipProto, p != v[8] { throw .invalid("set(ipv4): proto cannot be changed") }
                if let fr = state.frag, fr != v[11] { throw .invalid("set(ipv4): frag cannot be changed") }
            }
            return .setIPv4(value: .init(src: v.be32(0), dst: v.be32(4), tos: v[9], ttl: v[10]),
                            mask: .init(src: m.be32(0), dst: m.be32(4), tos: m[9], ttl: m[10]))
        case KeyAttr.ipv6:
            try need(40)
            try state.requireType(EtherType.ipv6, "set(ipv6)")
            if masked {
                guard m[36] == 0, m[39] == 0 else { throw .invalid("set(ipv6): proto and frag cannot be changed") }
                guard m.be32(32) & ~0xfffff == 0 else { throw .invalid("set(ipv6): label mask wider than 20 bits") }
            } else {
                if let p = state.ipProto, p != v[36] { throw .invalid("set(ipv6): proto cannot be changed") }
                if let fr = state.frag, fr != v[39] { throw .invalid("set(ipv6): frag cannot be changed") }
                guard v.be32(32) & ~0xfffff == 0 else { throw .invalid("set(ipv6): label wider than 20 bits") }
            }
            return .setIPv6(value: .init(src: v.be128(0), dst: v.be128(16), label: v.be32(32), tclass: v[37], hlimit: v[38]),
                            mask: .init(src: m.be128(0), dst: m.be128(16), label: m.be32(32) & 0xfffff, tclass: m[37], hlimit: m[38]))
        case KeyAttr.tcp, KeyAttr.udp, KeyAttr.sctp:
            try need(4)
            let proto = f.attribute == KeyAttr.tcp ? IPProto.tcp : f.attribute == KeyAttr.udp ? IPProto.udp : IPProto.sctp
            try state.requireProto(proto, "set(\(KeyAttr.name(f.attribute)))")
            return .setPorts(proto: proto, src: v.be16(0), srcMask: m.be16(0), dst: v.be16(2), dstMask: m.be16(2))
        case KeyAttr.icmp, KeyAttr.icmpv6:
            try need(2)
            let v6 = f.attribute == KeyAttr.icmpv6
            try state.requireProto(v6 ? IPProto.icmpv6 : IPProto.icmp, "set(\(KeyAttr.name(f.attribute)))")
            return .setICMP(v6: v6, type: v[0], typeMask: m[0], code: v[1], codeMask: m[1])
        case KeyAttr.arp:
            try need(24)
            guard state.ethTypeExact, state.ethType == EtherType.arp || state.ethType == EtherType.rarp else {
                throw .invalid("set(arp) needs a flow matching an ARP eth_type exactly")
            }
            return .setARP(sip: v.be32(0), sipMask: m.be32(0), tip: v.be32(4), tipMask: m.be32(4), op: v.be16(8), opMask: m.be16(8),
                           sha: v.be48(10), shaMask: m.be48(10), tha: v.be48(16), thaMask: m.be48(16))
        case KeyAttr.mpls:
            guard v.count >= 4, v.count == m.count else { throw .invalid("set(mpls): bad length") }
            guard EtherType.isMPLS(state.ethType) && state.ethTypeExact else { throw .invalid("set(mpls) needs an MPLS flow") }
            return .setMPLS(lse: v.be32(0), mask: m.be32(0))
        case KeyAttr.tunnel:
            guard !masked else { throw .invalid("set(tunnel) cannot be masked") }
            return .setTunnel(try decodeTunnelSet(v))
        case KeyAttr.ctMark, KeyAttr.ctLabels:
            throw .unsupported("set(\(KeyAttr.name(f.attribute))) is not supported by esw: set it with ct(commit,mark=…/label=…)")
        case KeyAttr.nd:
            throw .unsupported("set(nd) is not supported")
        default:
            throw .invalid("set(\(KeyAttr.name(f.attribute))): field cannot be set")
        }
    }

    /// The tunnel metadata of a set(tunnel(…)) action.
    static func decodeTunnelSet(_ bytes: [UInt8]) throws(ActionError) -> TunnelMetadata {
        var key = FlowKey()
        switch KeyDecoderBridge.decodeTunnel(bytes, into: &key) {
        case .success: break
        case .failure(let e): throw .invalid("set(tunnel): \(e.message)")
        }
        let t = TunnelMetadata(from: key)
        guard t.isSet else { throw .invalid("set(tunnel): a tunnel destination is required") }
        return t
    }
}

/// A flow's actions: their bytes, decoded and compiled. What a list compiles to depends
/// only on its bytes and the few match fields of its `FlowState`, so the flows of an
/// add-flows, which mostly share their actions, share one of these (`Datapath.changeFlow`
/// keeps the last one): each flow holds one reference, not three arrays (a reference
/// counted per array at every put, 16 bytes a flow). Immutable.
final class CompiledActions: @unchecked Sendable {
    let bytes: [UInt8]
    let state: ActionCompiler.FlowState
    let actions: [ODPAction]
    let compiled: ContiguousArray<CompiledAction>

    init(bytes: [UInt8], state: ActionCompiler.FlowState, actions: [ODPAction], compiled: ContiguousArray<CompiledAction>) {
        self.bytes = bytes
        self.state = state
        self.actions = actions
        self.compiled = compiled
    }
}
