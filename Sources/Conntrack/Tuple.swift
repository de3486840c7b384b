import Packet

/// One direction of a connection, as OVS's `struct conn_key`: addresses, ports (the
/// echo id for ICMP, on both sides), the ICMP type on each side (the reply side holds
/// the reversed type, so a reply packet's key reversed equals the request's key), the
/// protocol and the zone.
public struct CTTuple: Sendable, Hashable {
    public var src: CTAddress
    public var dst: CTAddress
    public var srcPort: UInt16
    public var dstPort: UInt16
    public var srcICMPType: UInt8 = 0
    public var dstICMPType: UInt8 = 0
    public var proto: UInt8
    public var zone: UInt16

    public init(src: CTAddress, dst: CTAddress, srcPort: UInt16 = 0, dstPort: UInt16 = 0,
                srcICMPType: UInt8 = 0, dstICMPType: UInt8 = 0, proto: UInt8, zone: UInt16 = 0) {
        self.src = src
        self.dst = dst
        self.srcPort = srcPort
        self.dstPort = dstPort
        self.srcICMPType = srcICMPType
        self.dstICMPType = dstICMPType
        self.proto = proto
        self.zone = zone
    }

    public var isIPv6: Bool { src.isIPv6 }
    public var isICMP: Bool { proto == IPProto.icmp || proto == ICMPv6.proto }
    /// TCP and UDP: the protocols whose ports NAT may change (OVS's pat_proto).
    var hasPorts: Bool { proto == IPProto.tcp || proto == IPProto.udp }

    /// The same connection seen from the other end.
    public func reversed() -> CTTuple {
        CTTuple(src: dst, dst: src, srcPort: dstPort, dstPort: srcPort,
                srcICMPType: dstICMPType, dstICMPType: srcICMPType, proto: proto, zone: zone)
    }
}

enum ICMPv6 {
    static let proto: UInt8 = 58
    static let echoRequest: UInt8 = 128
    static let echoReply: UInt8 = 129
    static let destinationUnreachable: UInt8 = 1
    static let packetTooBig: UInt8 = 2
    static let timeExceeded: UInt8 = 3
    static let parameterProblem: UInt8 = 4
}

enum ICMPv4 {
    static let echoReply: UInt8 = 0
    static let destinationUnreachable: UInt8 = 3
    static let sourceQuench: UInt8 = 4
    static let redirect: UInt8 = 5
    static let echoRequest: UInt8 = 8
    static let timeExceeded: UInt8 = 11
    static let parameterProblem: UInt8 = 12
    static let timestamp: UInt8 = 13
    static let timestampReply: UInt8 = 14
    static let infoRequest: UInt8 = 15
    static let infoReply: UInt8 = 16

    /// The type the other end answers with (OVS's reverse_icmp_type), for query types.
    static func reverse(_ t: UInt8) -> UInt8? {
        switch t {
        case echoRequest: echoReply
        case echoReply: echoRequest
        case timestamp: timestampReply
        case timestampReply: timestamp
        case infoRequest: infoReply
        case infoReply: infoRequest
        default: nil
        }
    }
}

extension ICMPv6 {
    static func reverse(_ t: UInt8) -> UInt8? {
        switch t {
        case echoRequest: echoReply
        case echoReply: echoRequest
        default: nil
        }
    }
}
