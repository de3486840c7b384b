import Conntrack
import Netlink
import ODP
import Packet

/// Decodes and validates a ct() action's nested attributes (OVS_CT_ATTR_*) as the
/// kernel's conntrack.c parse_ct/parse_nat do: lengths, masks, one NAT type, the
/// address family of the flow. What esw cannot run (helpers, timeout policies) is
/// EOPNOTSUPP; what is malformed is EINVAL.
enum ConntrackActionDecoder {
    static func decode(_ payload: [UInt8], ethType: UInt16?) throws(ActionError) -> CTAction {
        guard let ethType, ethType == EtherType.ipv4 || ethType == EtherType.ipv6 else {
            throw .invalid("ct needs a flow matching eth_type(0x0800) or eth_type(0x86dd) exactly (ct family unspecified)")
        }
        let attributes: [Attribute]
        do { attributes = try AttributeParser.parse(payload[...]) } catch { throw .invalid("ct: \(error)") }
        var ct = CTAction()
        var seen = Set<UInt16>()
        for a in attributes {
            guard seen.insert(a.type).inserted else { throw .invalid("ct: attribute \(a.type) given twice") }
            let p = Array(a.payload)
            func need(_ n: Int, _ name: String) throws(ActionError) {
                guard p.count == n else { throw .invalid("ct: \(name) has length \(p.count), expected \(n)") }
            }
            switch a.type {
            case CTAttr.commit:
                try need(0, "commit")
                ct.commit = true
            case CTAttr.forceCommit:
                try need(0, "force_commit")
                ct.forceCommit = true
            case CTAttr.zone:
                try need(2, "zone")
                ct.zone = p.le16(0)
            case CTAttr.mark:
                try need(8, "mark")
                ct.markValue = p.le32(0)
                ct.markMask = p.le32(4)
                guard ct.markMask != 0 else { throw .invalid("ct: ct_mark mask cannot be 0") }
            case CTAttr.labels:
                try need(32, "labels")
                ct.labelValue = p.le128(0)
                ct.labelMask = p.le128(16)
                guard ct.labelMask != 0 else { throw .invalid("ct: ct_labels mask cannot be 0") }
            case CTAttr.eventMask:
                try need(4, "eventmask")  // which conntrack events to report: esw reports none
            case CTAttr.helper:
                let name = String(decoding: p.prefix { $0 != 0 }, as: UTF8.self)
                throw .unsupported("ct(helper=\(name)): esw's connection tracker has no application-layer helpers")
            case CTAttr.timeout:
                let name = String(decoding: p.prefix { $0 != 0 }, as: UTF8.self)
                throw .unsupported("ct(timeout=\(name)): esw has no timeout policies (its timeouts are OVS's defaults)")
            case CTAttr.nat:
                ct.nat = try decodeNAT(a, ipv6: ethType == EtherType.ipv6)
            default:
                throw .invalid("ct: unknown attribute \(a.type)")
            }
        }
        if ct.commit && ct.forceCommit { throw .invalid("ct: commit and force_commit exclude each other") }
        // parse_ct/parse_nat: only a committing ct() may set the mark or labels or set up
        // NAT (force_commit implies commit); a bare nat applies a committed connection's.
        let commits = ct.commit || ct.forceCommit
        if !commits && ct.markMask != 0 { throw .invalid("ct: setting conntrack mark requires 'commit' flag") }
        if !commits && ct.labelMask != 0 { throw .invalid("ct: setting conntrack labels requires 'commit' flag") }
        if !commits, let nat = ct.nat, nat.kind != .none {
            throw .invalid("ct: NAT attributes may be specified only when the ct commit flag is also specified")
        }
        return ct
    }

    static func decodeNAT(_ a: Attribute, ipv6: Bool) throws(ActionError) -> NATSpec {
        let subs: [Attribute]
        do { subs = try a.nestedAttributes() } catch { throw .invalid("ct nat: \(error)") }
        var kind = NATSpec.Kind.none
        var minAddress: CTAddress?, maxAddress: CTAddress?
        var minPort: UInt16?, maxPort: UInt16?
        var spec = NATSpec(kind: .none)
        var seen = Set<UInt16>()
        for s in subs {
            guard seen.insert(s.type).inserted else { throw .invalid("ct nat: attribute \(s.type) given twice") }
            let p = Array(s.payload)
            func flag(_ name: String) throws(ActionError) {
                guard p.isEmpty else { throw .invalid("ct nat: \(name) has length \(p.count), expected 0") }
            }
            func address(_ name: String) throws(ActionError) -> CTAddress {
                switch (p.count, ipv6) {
                case (4, false): return CTAddress(ipv4: p.be32(0))
                case (16, true): return CTAddress(ipv6: p.be128(0))
                default:
                    throw .invalid("ct nat: \(name) of \(p.count) bytes for an \(ipv6 ? "IPv6" : "IPv4") flow")
                }
            }
            func port(_ name: String) throws(ActionError) -> UInt16 {
                guard p.count == 2 else { throw .invalid("ct nat: \(name) has length \(p.count), expected 2") }
                return p.le16(0)
            }
            switch s.type {
            case NATAttr.src, NATAttr.dst:
                try flag(s.type == NATAttr.src ? "src" : "dst")
                guard kind == .none else { throw .invalid("ct nat: only one type of NAT (src or dst) may be given") }
                kind = s.type == NATAttr.src ? .source : .destination
            case NATAttr.ipMin: minAddress = try address("min address")
            case NATAttr.ipMax: maxAddress = try address("max address")
            case NATAttr.protoMin: minPort = try port("min port")
            case NATAttr.protoMax: maxPort = try port("max port")
            case NATAttr.persistent: try flag("persistent"); spec.persistent = true
            case NATAttr.protoHash: try flag("hash"); spec.hash = true
            case NATAttr.protoRandom: try flag("random"); spec.random = true
            default: throw .invalid("ct nat: unknown attribute \(s.type)")
            }
        }
        if spec.hash && spec.random { throw .invalid("ct nat: hash and random exclude each other") }
        let hasRange = minAddress != nil || maxAddress != nil || minPort != nil || maxPort != nil
        if kind == .none {
            guard !hasRange && !spec.persistent && !spec.hash && !spec.random else {
                throw .invalid("ct nat: a range or flags given without a NAT type (src or dst)")
            }
            return spec
        }
        spec.kind = kind
        if let lo = minAddress {
            let hi = maxAddress.flatMap { $0.value == 0 ? nil : $0 } ?? lo
            guard lo <= hi else { throw .invalid("ct nat: address range ends below its start") }
            spec.addresses = lo...hi
        } else if maxAddress != nil {
            throw .invalid("ct nat: max address without min address")
        }
        if let lo = minPort, lo != 0 {
            let hi = maxPort.flatMap { $0 == 0 ? nil : $0 } ?? lo
            guard lo <= hi else { throw .invalid("ct nat: port range ends below its start") }
            spec.ports = lo...hi
        } else if let hi = maxPort, hi != 0 {
            throw .invalid("ct nat: max port without min port")
        }
        return spec
    }
}
