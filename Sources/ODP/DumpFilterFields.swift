import Packet

/// One field a dump-flows filter may name: OVS's mf_field (include/openvswitch/
/// meta-flow.h: name, width, syntax, maskability, prerequisites) and where the value
/// lies in esw's FlowKey, with mf_set_flow_value()'s and mf_is_set()'s effects.
struct FilterField: Sendable {
    enum Syntax: Sendable { case integer, mac, ipv4, ipv6, port, frag, ctState, tcpFlags }

    enum Prereq: Sendable { case none, arp, ipv4, ipv6, ipAny, vlanVID, mpls, tcp, udp, sctp, icmpv4, icmpv6, nd, ndSolicit, ndAdvert }

    /// How mf_set_flow_value() writes the field into struct flow, in esw's layout.
    enum Storage: Sendable {
        case plain(FlowField)
        case wide(WideField)
        /// ofp_port (16 bits) sharing the odp_port union: the low 16 bits of in_port.
        case inPort
        case dlVLAN, vlanVID, vlanPCP
        case dscp, dscpShifted, ecn
        /// OVS's nw_frag bits (any=1, later=2) over esw's OVS_FRAG_TYPE value.
        case frag
        case ipv6Label
        /// The ARP opcode in nw_proto, truncated to 8 bits (as struct flow keeps it).
        case arpOp
        /// ICMP type/code: a u8 in the 16-bit tp_src/tp_dst.
        case icmp(FlowField)
        /// A bit range of the top MPLS label stack entry.
        case mpls(shift: Int, bits: Int)
    }

    /// mf->name: the name OVS's value errors use.
    let name: String
    /// mf->n_bytes.
    let bytes: Int
    let syntax: Syntax
    /// MFM_FULLY (else MFM_NONE: a mask other than all-0 or all-1 is invalid).
    let maskable: Bool
    let prereq: Prereq
    let storage: Storage

    init(_ name: String, _ bytes: Int, _ syntax: Syntax, maskable: Bool, _ prereq: Prereq, _ storage: Storage) {
        self.name = name
        self.bytes = bytes
        self.syntax = syntax
        self.maskable = maskable
        self.prereq = prereq
        self.storage = storage
    }

    /// mf_are_prereqs_ok() against the filter read so far (so `tp_dst=53,udp` fails:
    /// the order matters, as in OVS).
    func prereqsMet(_ f: FlowKey) -> Bool {
        let type = UInt16(truncatingIfNeeded: f[.ethType])
        let proto = f[.ipProto]
        let ipAny = type == EtherType.ipv4 || type == EtherType.ipv6
        // MFP_TCP/UDP/SCTP also need "not a later fragment" (nw_frag & FLOW_NW_FRAG_LATER).
        let notLater = f[.ipFrag] != UInt64(FragmentType.later.rawValue)
        let icmpv6 = type == EtherType.ipv6 && proto == UInt64(IPProto.icmpv6)
        let nd = icmpv6 && f[.tpDst] == 0 && (f[.tpSrc] == 135 || f[.tpSrc] == 136)
        switch prereq {
        case .none: return true
        case .arp: return type == EtherType.arp || type == EtherType.rarp
        case .ipv4: return type == EtherType.ipv4
        case .ipv6: return type == EtherType.ipv6
        case .ipAny: return ipAny
        case .vlanVID: return UInt16(truncatingIfNeeded: f[.vlanTCI]) & VLAN.present != 0
        case .mpls: return EtherType.isMPLS(type)
        case .tcp: return ipAny && proto == UInt64(IPProto.tcp) && notLater
        case .udp: return ipAny && proto == UInt64(IPProto.udp) && notLater
        case .sctp: return ipAny && proto == UInt64(IPProto.sctp) && notLater
        case .icmpv4: return type == EtherType.ipv4 && proto == UInt64(IPProto.icmp)
        case .icmpv6: return icmpv6
        case .nd: return nd
        case .ndSolicit: return nd && f[.tpSrc] == 135
        case .ndAdvert: return nd && f[.tpSrc] == 136
        }
    }

    /// mf_is_set(): the field's value (as mf_get_value() reads it) is not zero.
    func isSet(_ f: FlowKey) -> Bool {
        let tci = f[.vlanTCI], tos = f[.ipTOS]
        switch storage {
        case .plain(let field): return f[field] != 0
        case .wide(let field): return f[field] != 0
        case .inPort: return f[.inPort] & 0xffff != 0
        case .dlVLAN: return tci & UInt64(VLAN.vidMask) != 0
        case .vlanVID: return tci & UInt64(VLAN.vidMask | VLAN.present) != 0
        case .vlanPCP: return tci >> 13 != 0
        case .dscp: return tos & 0xfc != 0
        case .dscpShifted: return tos >> 2 != 0
        case .ecn: return tos & 3 != 0
        case .frag: return f[.ipFrag] != 0
        case .ipv6Label: return f[.ipv6Label] != 0
        case .arpOp: return f[.ipProto] != 0
        case .icmp(let field): return f[field] & 0xff != 0
        case .mpls(let shift, let bits): return (f[.mplsLSE] >> UInt64(shift)) & ((1 << UInt64(bits)) - 1) != 0
        }
    }

    /// mf_set_flow_value() on the filter's flow and mf_mask_field() on its wildcards.
    func set(_ v: UInt128, value f: inout FlowKey, mask m: inout FlowKey) {
        let low = UInt64(truncatingIfNeeded: v)
        switch storage {
        case .plain(let field):
            f[field] = low
            m[field] = field.valueMask
        case .wide(let field):
            f[field] = v
            m[field] = .max
        case .inPort:
            f[.inPort] = (f[.inPort] & ~0xffff) | (low & 0xffff)
            m[.inPort] |= 0xffff
        case .dlVLAN:
            // flow_set_dl_vlan(): OFP10_VLAN_NONE (0xffff) means "no tag"; any other
            // value sets the VID and the tag-present bit.
            if low == 0xffff {
                f[.vlanTCI] = 0
            } else {
                f[.vlanTCI] = (f[.vlanTCI] & ~UInt64(VLAN.vidMask)) | (low & UInt64(VLAN.vidMask)) | UInt64(VLAN.present)
            }
            m[.vlanTCI] |= UInt64(VLAN.vidMask | VLAN.present)
        case .vlanVID:
            // flow_set_vlan_vid(): the OpenFlow 1.2 value, tag-present bit included.
            let vid = UInt64(VLAN.vidMask | VLAN.present)
            f[.vlanTCI] = (f[.vlanTCI] & ~vid) | (low & vid)
            m[.vlanTCI] |= vid
        case .vlanPCP:
            f[.vlanTCI] = (f[.vlanTCI] & ~0xe000) | ((low & 7) << 13) | UInt64(VLAN.present)
            m[.vlanTCI] |= 0xe000 | UInt64(VLAN.present)
        case .dscp:
            f[.ipTOS] = (f[.ipTOS] & 3) | (low & 0xfc)
            m[.ipTOS] |= 0xfc
        case .dscpShifted:
            f[.ipTOS] = (f[.ipTOS] & 3) | ((low << 2) & 0xfc)
            m[.ipTOS] |= 0xfc
        case .ecn:
            f[.ipTOS] = (f[.ipTOS] & 0xfc) | (low & 3)
            m[.ipTOS] |= 3
        case .frag:
            // nw_frag 0 (no), 1 (first), 3 (later) is OVS_FRAG_TYPE 0, 1, 2; a dumped
            // flow's frag mask is all or nothing, so the whole byte compares.
            f[.ipFrag] = low == 0 ? 0 : low == 1 ? 1 : 2
            m[.ipFrag] = 0xff
        case .ipv6Label:
            f[.ipv6Label] = low & 0xfffff
            m[.ipv6Label] |= 0xfffff
        case .arpOp:
            f[.ipProto] = low & 0xff
            m[.ipProto] = 0xff
        case .icmp(let field):
            f[field] = low & 0xff
            m[field] |= 0xff
        case .mpls(let shift, let bits):
            let r = ((UInt64(1) << UInt64(bits)) - 1) << UInt64(shift)
            f[.mplsLSE] = (f[.mplsLSE] & ~r) | ((low << UInt64(shift)) & r)
            m[.mplsLSE] |= r
        }
    }
}

extension FilterField {
    /// The fields esw's key holds, by every name OVS's mf_from_name() knows them by
    /// (name and extra_name). `tp_src`/`tp_dst` are tcp_src/tcp_dst's other names in
    /// OVS, so they need `tcp`: `udp,tp_dst=53` fails there as here.
    static let byName: [String: FilterField] = {
        let all: [([String], FilterField)] = [
            (["dp_hash"], .init("dp_hash", 4, .integer, maskable: true, .none, .plain(.dpHash))),
            (["recirc_id"], .init("recirc_id", 4, .integer, maskable: false, .none, .plain(.recircID))),
            (["tun_id", "tunnel_id"], .init("tun_id", 8, .integer, maskable: true, .none, .plain(.tunnelID))),
            (["tun_src"], .init("tun_src", 4, .ipv4, maskable: true, .none, .plain(.tunnelIPv4Src))),
            (["tun_dst"], .init("tun_dst", 4, .ipv4, maskable: true, .none, .plain(.tunnelIPv4Dst))),
            (["tun_ipv6_src"], .init("tun_ipv6_src", 16, .ipv6, maskable: true, .none, .wide(.tunnelIPv6Src))),
            (["tun_ipv6_dst"], .init("tun_ipv6_dst", 16, .ipv6, maskable: true, .none, .wide(.tunnelIPv6Dst))),
            (["tun_ttl"], .init("tun_ttl", 1, .integer, maskable: false, .none, .plain(.tunnelTTL))),
            (["tun_tos"], .init("tun_tos", 1, .integer, maskable: false, .none, .plain(.tunnelTOS))),
            (["in_port"], .init("in_port", 2, .port, maskable: false, .none, .inPort)),
            (["skb_priority"], .init("skb_priority", 4, .integer, maskable: false, .none, .plain(.priority))),
            (["pkt_mark"], .init("pkt_mark", 4, .integer, maskable: true, .none, .plain(.skbMark))),
            (["ct_state"], .init("ct_state", 4, .ctState, maskable: true, .none, .plain(.ctState))),
            (["ct_zone"], .init("ct_zone", 2, .integer, maskable: false, .none, .plain(.ctZone))),
            (["ct_mark"], .init("ct_mark", 4, .integer, maskable: true, .none, .plain(.ctMark))),
            (["ct_label"], .init("ct_label", 16, .integer, maskable: true, .none, .wide(.ctLabel))),
            (["eth_src", "dl_src"], .init("eth_src", 6, .mac, maskable: true, .none, .plain(.ethSrc))),
            (["eth_dst", "dl_dst"], .init("eth_dst", 6, .mac, maskable: true, .none, .plain(.ethDst))),
            (["eth_type", "dl_type"], .init("eth_type", 2, .integer, maskable: false, .none, .plain(.ethType))),
            (["vlan_tci"], .init("vlan_tci", 2, .integer, maskable: true, .none, .plain(.vlanTCI))),
            (["dl_vlan"], .init("dl_vlan", 2, .integer, maskable: false, .none, .dlVLAN)),
            (["vlan_vid"], .init("vlan_vid", 2, .integer, maskable: true, .none, .vlanVID)),
            (["dl_vlan_pcp"], .init("dl_vlan_pcp", 1, .integer, maskable: false, .none, .vlanPCP)),
            (["vlan_pcp"], .init("vlan_pcp", 1, .integer, maskable: false, .vlanVID, .vlanPCP)),
            (["mpls_label"], .init("mpls_label", 4, .integer, maskable: false, .mpls, .mpls(shift: 12, bits: 20))),
            (["mpls_tc"], .init("mpls_tc", 1, .integer, maskable: false, .mpls, .mpls(shift: 9, bits: 3))),
            (["mpls_bos"], .init("mpls_bos", 1, .integer, maskable: false, .mpls, .mpls(shift: 8, bits: 1))),
            (["mpls_ttl"], .init("mpls_ttl", 1, .integer, maskable: false, .mpls, .mpls(shift: 0, bits: 8))),
            (["ip_src", "nw_src"], .init("ip_src", 4, .ipv4, maskable: true, .ipv4, .plain(.ipv4Src))),
            (["ip_dst", "nw_dst"], .init("ip_dst", 4, .ipv4, maskable: true, .ipv4, .plain(.ipv4Dst))),
            (["ipv6_src"], .init("ipv6_src", 16, .ipv6, maskable: true, .ipv6, .wide(.ipv6Src))),
            (["ipv6_dst"], .init("ipv6_dst", 16, .ipv6, maskable: true, .ipv6, .wide(.ipv6Dst))),
            (["ipv6_label"], .init("ipv6_label", 4, .integer, maskable: true, .ipv6, .ipv6Label)),
            (["nw_proto", "ip_proto"], .init("nw_proto", 1, .integer, maskable: false, .ipAny, .plain(.ipProto))),
            (["nw_tos"], .init("nw_tos", 1, .integer, maskable: false, .ipAny, .dscp)),
            (["ip_dscp"], .init("ip_dscp", 1, .integer, maskable: false, .ipAny, .dscpShifted)),
            (["nw_ecn", "ip_ecn"], .init("nw_ecn", 1, .integer, maskable: false, .ipAny, .ecn)),
            (["nw_ttl"], .init("nw_ttl", 1, .integer, maskable: false, .ipAny, .plain(.ipTTL))),
            (["ip_frag", "nw_frag"], .init("ip_frag", 1, .frag, maskable: true, .ipAny, .frag)),
            (["arp_op"], .init("arp_op", 2, .integer, maskable: false, .arp, .arpOp)),
            (["arp_spa"], .init("arp_spa", 4, .ipv4, maskable: true, .arp, .plain(.ipv4Src))),
            (["arp_tpa"], .init("arp_tpa", 4, .ipv4, maskable: true, .arp, .plain(.ipv4Dst))),
            (["arp_sha"], .init("arp_sha", 6, .mac, maskable: true, .arp, .plain(.arpSHA))),
            (["arp_tha"], .init("arp_tha", 6, .mac, maskable: true, .arp, .plain(.arpTHA))),
            (["tcp_src", "tp_src"], .init("tcp_src", 2, .integer, maskable: true, .tcp, .plain(.tpSrc))),
            (["tcp_dst", "tp_dst"], .init("tcp_dst", 2, .integer, maskable: true, .tcp, .plain(.tpDst))),
            (["tcp_flags"], .init("tcp_flags", 2, .tcpFlags, maskable: true, .tcp, .plain(.tcpFlags))),
            (["udp_src"], .init("udp_src", 2, .integer, maskable: true, .udp, .plain(.tpSrc))),
            (["udp_dst"], .init("udp_dst", 2, .integer, maskable: true, .udp, .plain(.tpDst))),
            (["sctp_src"], .init("sctp_src", 2, .integer, maskable: true, .sctp, .plain(.tpSrc))),
            (["sctp_dst"], .init("sctp_dst", 2, .integer, maskable: true, .sctp, .plain(.tpDst))),
            (["icmp_type"], .init("icmp_type", 1, .integer, maskable: false, .icmpv4, .icmp(.tpSrc))),
            (["icmp_code"], .init("icmp_code", 1, .integer, maskable: false, .icmpv4, .icmp(.tpDst))),
            (["icmpv6_type"], .init("icmpv6_type", 1, .integer, maskable: false, .icmpv6, .icmp(.tpSrc))),
            (["icmpv6_code"], .init("icmpv6_code", 1, .integer, maskable: false, .icmpv6, .icmp(.tpDst))),
            (["nd_target"], .init("nd_target", 16, .ipv6, maskable: true, .nd, .wide(.ndTarget))),
            (["nd_sll"], .init("nd_sll", 6, .mac, maskable: true, .ndSolicit, .plain(.ndSLL))),
            (["nd_tll"], .init("nd_tll", 6, .mac, maskable: true, .ndAdvert, .plain(.ndTLL))),
        ]
        var d: [String: FilterField] = [:]
        for (names, f) in all { for n in names { d[n] = f } }
        return d
    }()

    /// OVS field names esw's filter refuses, with why. OVS accepts them; where no
    /// datapath flow has the field (registers, metadata, ...) every flow would pass,
    /// and esw refuses rather than ignore part of a filter.
    static func unsupported(_ name: String) -> String? {
        let notInKey = ["conj_id", "metadata", "actset_output", "tun_gbp_id", "tun_gbp_flags", "tun_erspan_idx",
                        "tun_erspan_ver", "tun_erspan_dir", "tun_erspan_hwid", "tun_gtpu_flags", "tun_gtpu_msgtype",
                        "nd_reserved", "nd_options_type", "nsh_flags", "nsh_mdtype", "nsh_np", "nsh_spi", "nsp",
                        "nsh_si", "nsi", "nsh_ttl"]
        let notFiltered = ["packet_type", "tun_flags", "in_port_oxm", "ct_nw_proto", "ct_nw_src", "ct_nw_dst",
                           "ct_ipv6_src", "ct_ipv6_dst", "ct_tp_src", "ct_tp_dst"]
        func numbered(_ prefix: String, below n: Int) -> Bool {
            guard name.hasPrefix(prefix), let i = Int(name.dropFirst(prefix.count)), String(i) == name.dropFirst(prefix.count) else {
                return false
            }
            return i < n
        }
        if notInKey.contains(name) || numbered("reg", below: 16) || numbered("xreg", below: 8) || numbered("xxreg", below: 4)
            || numbered("tun_metadata", below: 64) || numbered("nsh_c", below: 5) && name != "nsh_c0"
            || numbered("nshc", below: 5) && name != "nshc0" {
            return "field \(name) is not in esw's datapath flow key"
        }
        if notFiltered.contains(name) { return "field \(name) is not supported by esw's dump-flows filter" }
        return nil
    }

    /// ofp_parse_protocol(): the shorthands, as (dl_type, nw_proto).
    static let protocols: [String: (UInt16, UInt8)] = [
        "ip": (EtherType.ipv4, 0), "ipv4": (EtherType.ipv4, 0), "ip4": (EtherType.ipv4, 0), "arp": (EtherType.arp, 0),
        "icmp": (EtherType.ipv4, IPProto.icmp), "tcp": (EtherType.ipv4, IPProto.tcp), "udp": (EtherType.ipv4, IPProto.udp),
        "sctp": (EtherType.ipv4, IPProto.sctp), "ipv6": (EtherType.ipv6, 0), "ip6": (EtherType.ipv6, 0),
        "icmp6": (EtherType.ipv6, IPProto.icmpv6), "tcp6": (EtherType.ipv6, IPProto.tcp), "udp6": (EtherType.ipv6, IPProto.udp),
        "sctp6": (EtherType.ipv6, IPProto.sctp), "rarp": (EtherType.rarp, 0), "mpls": (EtherType.mplsUnicast, 0),
        "mplsm": (EtherType.mplsMulticast, 0),
    ]
}
