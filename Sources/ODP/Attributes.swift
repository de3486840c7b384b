/// Attribute numbers, exactly as include/uapi/linux/openvswitch.h numbers them.
public enum KeyAttr {
    public static let encap: UInt16 = 1
    public static let priority: UInt16 = 2
    public static let inPort: UInt16 = 3
    public static let ethernet: UInt16 = 4
    public static let vlan: UInt16 = 5
    public static let ethertype: UInt16 = 6
    public static let ipv4: UInt16 = 7
    public static let ipv6: UInt16 = 8
    public static let tcp: UInt16 = 9
    public static let udp: UInt16 = 10
    public static let icmp: UInt16 = 11
    public static let icmpv6: UInt16 = 12
    public static let arp: UInt16 = 13
    public static let nd: UInt16 = 14
    public static let skbMark: UInt16 = 15
    public static let tunnel: UInt16 = 16
    public static let sctp: UInt16 = 17
    public static let tcpFlags: UInt16 = 18
    public static let dpHash: UInt16 = 19
    public static let recircID: UInt16 = 20
    public static let mpls: UInt16 = 21
    public static let ctState: UInt16 = 22
    public static let ctZone: UInt16 = 23
    public static let ctMark: UInt16 = 24
    public static let ctLabels: UInt16 = 25
    public static let ctOrigTupleIPv4: UInt16 = 26
    public static let ctOrigTupleIPv6: UInt16 = 27
    public static let nsh: UInt16 = 28
    public static let packetType: UInt16 = 29
    public static let ndExtensions: UInt16 = 30
    public static let tunnelInfo: UInt16 = 31
    public static let ipv6ExtHeaders: UInt16 = 32
    public static let max: UInt16 = 32

    /// Payload length of each fixed-size attribute; -1 variable, -2 nested.
    public static func length(_ type: UInt16) -> Int? {
        switch type {
        case encap, tunnel, nsh: -2
        case priority, inPort, skbMark, dpHash, recircID, ctState, ctMark, packetType: 4
        case ethernet: 12
        case vlan, ethertype, tcpFlags, ctZone: 2
        case ipv4: 12
        case ipv6: 40
        case tcp, udp, sctp: 4
        case icmp, icmpv6: 2
        case arp: 24
        case nd: 28
        case mpls: -1
        case ctLabels: 16
        case ctOrigTupleIPv4: 16
        case ctOrigTupleIPv6: 40
        case ndExtensions: 8
        case ipv6ExtHeaders: 2
        default: nil
        }
    }

    public static func name(_ type: UInt16) -> String {
        switch type {
        case encap: "encap"
        case priority: "skb_priority"
        case inPort: "in_port"
        case ethernet: "eth"
        case vlan: "vlan"
        case ethertype: "eth_type"
        case ipv4: "ipv4"
        case ipv6: "ipv6"
        case tcp: "tcp"
        case udp: "udp"
        case icmp: "icmp"
        case icmpv6: "icmpv6"
        case arp: "arp"
        case nd: "nd"
        case skbMark: "skb_mark"
        case tunnel: "tunnel"
        case sctp: "sctp"
        case tcpFlags: "tcp_flags"
        case dpHash: "dp_hash"
        case recircID: "recirc_id"
        case mpls: "mpls"
        case ctState: "ct_state"
        case ctZone: "ct_zone"
        case ctMark: "ct_mark"
        case ctLabels: "ct_label"
        case ctOrigTupleIPv4: "ct_tuple4"
        case ctOrigTupleIPv6: "ct_tuple6"
        case nsh: "nsh"
        case packetType: "packet_type"
        case ndExtensions: "nd_ext"
        default: "key\(type)"
        }
    }
}

public enum TunnelAttr {
    public static let id: UInt16 = 0
    public static let ipv4Src: UInt16 = 1
    public static let ipv4Dst: UInt16 = 2
    public static let tos: UInt16 = 3
    public static let ttl: UInt16 = 4
    public static let dontFragment: UInt16 = 5
    public static let csum: UInt16 = 6
    public static let oam: UInt16 = 7
    public static let geneveOpts: UInt16 = 8
    public static let tpSrc: UInt16 = 9
    public static let tpDst: UInt16 = 10
    public static let vxlanOpts: UInt16 = 11
    public static let ipv6Src: UInt16 = 12
    public static let ipv6Dst: UInt16 = 13
    public static let pad: UInt16 = 14
    public static let erspanOpts: UInt16 = 15
    public static let ipv4InfoBridge: UInt16 = 16

    public static func length(_ type: UInt16) -> Int? {
        switch type {
        case id: 8
        case ipv4Src, ipv4Dst: 4
        case tos, ttl: 1
        case dontFragment, csum, oam: 0
        case tpSrc, tpDst: 2
        case ipv6Src, ipv6Dst: 16
        case geneveOpts, erspanOpts: -1
        case vxlanOpts: -2
        default: nil
        }
    }
}

public enum ActionAttr {
    public static let output: UInt16 = 1
    public static let userspace: UInt16 = 2
    public static let set: UInt16 = 3
    public static let pushVLAN: UInt16 = 4
    public static let popVLAN: UInt16 = 5
    public static let sample: UInt16 = 6
    public static let recirc: UInt16 = 7
    public static let hash: UInt16 = 8
    public static let pushMPLS: UInt16 = 9
    public static let popMPLS: UInt16 = 10
    public static let setMasked: UInt16 = 11
    public static let ct: UInt16 = 12
    public static let trunc: UInt16 = 13
    public static let pushEth: UInt16 = 14
    public static let popEth: UInt16 = 15
    public static let ctClear: UInt16 = 16
    public static let pushNSH: UInt16 = 17
    public static let popNSH: UInt16 = 18
    public static let meter: UInt16 = 19
    public static let clone: UInt16 = 20
    public static let checkPktLen: UInt16 = 21
    public static let addMPLS: UInt16 = 22
    public static let decTTL: UInt16 = 23
    public static let drop: UInt16 = 24
    // Userspace-datapath-only actions numbered after the kernel's, as OVS does.
    public static let tunnelPush: UInt16 = 25
    public static let tunnelPop: UInt16 = 26
    public static let lbOutput: UInt16 = 27
}

public enum SampleAttr {
    public static let probability: UInt16 = 1
    public static let actions: UInt16 = 2
}

public enum UserspaceAttr {
    public static let pid: UInt16 = 1
    public static let userdata: UInt16 = 2
    public static let egressTunnelPort: UInt16 = 3
    public static let actions: UInt16 = 4
}

public enum CTAttr {
    public static let commit: UInt16 = 1
    public static let zone: UInt16 = 2
    public static let mark: UInt16 = 3
    public static let labels: UInt16 = 4
    public static let helper: UInt16 = 5
    public static let nat: UInt16 = 6
    public static let forceCommit: UInt16 = 7
    public static let eventMask: UInt16 = 8
    public static let timeout: UInt16 = 9
}

public enum NATAttr {
    public static let src: UInt16 = 1
    public static let dst: UInt16 = 2
    public static let ipMin: UInt16 = 3
    public static let ipMax: UInt16 = 4
    public static let protoMin: UInt16 = 5
    public static let protoMax: UInt16 = 6
    public static let persistent: UInt16 = 7
    public static let protoHash: UInt16 = 8
    public static let protoRandom: UInt16 = 9
}

public enum CheckPktLenAttr {
    public static let pktLen: UInt16 = 1
    public static let actionsIfGreater: UInt16 = 2
    public static let actionsIfLessEqual: UInt16 = 3
}

public enum HashAlgorithm {
    public static let l4: UInt32 = 0
    public static let symL4: UInt32 = 1
}
