import CMnl
import NetLinux

/// A neighbour table entry (RTM_NEWNEIGH / RTM_DELNEIGH).
public struct NeighbourEntry: Sendable, Equatable {
    public var ifindex: Int32
    public var address: IPAddress
    /// Link-layer address, nil while unresolved.
    public var mac: UInt64?
    /// NUD_* state bits.
    public var state: UInt16
    public var deleted = false

    /// The kernel's NUD_VALID: an address the kernel would transmit to.
    public var isValid: Bool {
        !deleted && mac != nil && Int32(state) & (NUD_PERMANENT | NUD_NOARP | NUD_REACHABLE | NUD_PROBE | NUD_STALE | NUD_DELAY) != 0
    }

    public var stateName: String {
        if deleted { return "DELETED" }
        let names: [(Int32, String)] = [(NUD_INCOMPLETE, "INCOMPLETE"), (NUD_REACHABLE, "REACHABLE"), (NUD_STALE, "STALE"),
                                        (NUD_DELAY, "DELAY"), (NUD_PROBE, "PROBE"), (NUD_FAILED, "FAILED"),
                                        (NUD_NOARP, "NOARP"), (NUD_PERMANENT, "PERMANENT")]
        let set = names.filter { Int32(state) & $0.0 != 0 }.map(\.1)
        return set.isEmpty ? "NONE" : set.joined(separator: ",")
    }
}

/// A route (RTM_NEWROUTE / RTM_DELROUTE, or the answer to RTM_GETROUTE).
public struct RouteEntry: Sendable, Equatable {
    public var family: UInt8
    public var type: UInt8
    public var table: UInt32
    public var destination: IPAddress?
    public var prefixLength: UInt8
    public var outputInterface: Int32?
    public var gateway: IPAddress?
    public var preferredSource: IPAddress?
}

/// A link (RTM_NEWLINK / RTM_DELLINK).
public struct LinkEntry: Sendable, Equatable {
    public var ifindex: Int32
    public var name: String
    public var mac: UInt64
    public var mtu: UInt32
    public var isUp: Bool
    public var deleted = false
    /// IFF_LOWER_UP: the link has carrier (p0 follows the wire's).
    public var hasCarrier = true
}

/// What an rtnetlink message says, decoded.
public enum RouteEvent: Sendable {
    case neighbour(NeighbourEntry)
    case route(RouteEntry, deleted: Bool)
    case link(LinkEntry)
    case address(ifindex: Int32, IPAddress, deleted: Bool)
    case other(type: UInt16)
}

enum RouteMessageDecoder {
    /// Decodes one message; nil when it is malformed (counted by the caller).
    static func decode(_ nlh: UnsafePointer<nlmsghdr>) -> RouteEvent? {
        let type = Int32(nlh.pointee.nlmsg_type)
        let payload = UnsafeRawPointer(mnl_nlmsg_get_payload(nlh)!)
        let payloadLength = Int(mnl_nlmsg_get_payload_len(nlh))
        switch type {
        case Int32(RTM_NEWNEIGH), Int32(RTM_DELNEIGH):
            guard payloadLength >= MemoryLayout<ndmsg>.size else { return nil }
            let nd = payload.loadUnaligned(as: ndmsg.self)
            return withTable(nlh, MemoryLayout<ndmsg>.size, Int(__NDA_MAX)) { tb in
                guard let dst = address(tb[Int(NDA_DST)]) else { return nil }
                var mac: UInt64?
                if let a = tb[Int(NDA_LLADDR)], mnl_attr_get_payload_len(a) == 6 {
                    let p = UnsafeRawPointer(mnl_attr_get_payload(a)!)
                    mac = (0..<6).reduce(UInt64(0)) { $0 << 8 | UInt64(p.load(fromByteOffset: $1, as: UInt8.self)) }
                }
                return .neighbour(NeighbourEntry(ifindex: nd.ndm_ifindex, address: dst, mac: mac, state: nd.ndm_state,
                                                 deleted: type == Int32(RTM_DELNEIGH)))
            }
        case Int32(RTM_NEWROUTE), Int32(RTM_DELROUTE):
            guard payloadLength >= MemoryLayout<rtmsg>.size else { return nil }
            let rt = payload.loadUnaligned(as: rtmsg.self)
            return withTable(nlh, MemoryLayout<rtmsg>.size, Int(__RTA_MAX.rawValue)) { tb in
                var r = RouteEntry(family: rt.rtm_family, type: rt.rtm_type, table: UInt32(rt.rtm_table),
                                   destination: address(tb[Int(RTA_DST.rawValue)]), prefixLength: rt.rtm_dst_len,
                                   outputInterface: nil, gateway: address(tb[Int(RTA_GATEWAY.rawValue)]),
                                   preferredSource: address(tb[Int(RTA_PREFSRC.rawValue)]))
                if let a = tb[Int(RTA_OIF.rawValue)], mnl_attr_get_payload_len(a) == 4 { r.outputInterface = Int32(bitPattern: mnl_attr_get_u32(a)) }
                if let a = tb[Int(RTA_TABLE.rawValue)], mnl_attr_get_payload_len(a) == 4 { r.table = mnl_attr_get_u32(a) }
                if r.gateway == nil, let a = tb[Int(RTA_VIA.rawValue)] { r.gateway = via(a) }
                return .route(r, deleted: type == Int32(RTM_DELROUTE))
            }
        case Int32(RTM_NEWLINK), Int32(RTM_DELLINK):
            guard payloadLength >= MemoryLayout<ifinfomsg>.size else { return nil }
            let ifi = payload.loadUnaligned(as: ifinfomsg.self)
            return withTable(nlh, MemoryLayout<ifinfomsg>.size, Int(__IFLA_MAX)) { tb in
                var l = LinkEntry(ifindex: ifi.ifi_index, name: "", mac: 0, mtu: 0,
                                  isUp: ifi.ifi_flags & UInt32(IFF_UP) != 0, deleted: type == Int32(RTM_DELLINK))
                l.hasCarrier = ifi.ifi_flags & 0x10000 != 0   // IFF_LOWER_UP
                if let a = tb[Int(IFLA_IFNAME)] { l.name = String(cString: mnl_attr_get_str(a)) }
                if let a = tb[Int(IFLA_MTU)], mnl_attr_get_payload_len(a) == 4 { l.mtu = mnl_attr_get_u32(a) }
                if let a = tb[Int(IFLA_ADDRESS)], mnl_attr_get_payload_len(a) == 6 {
                    let p = UnsafeRawPointer(mnl_attr_get_payload(a)!)
                    l.mac = (0..<6).reduce(UInt64(0)) { $0 << 8 | UInt64(p.load(fromByteOffset: $1, as: UInt8.self)) }
                }
                return .link(l)
            }
        case Int32(RTM_NEWADDR), Int32(RTM_DELADDR):
            guard payloadLength >= MemoryLayout<ifaddrmsg>.size else { return nil }
            let ifa = payload.loadUnaligned(as: ifaddrmsg.self)
            return withTable(nlh, MemoryLayout<ifaddrmsg>.size, Int(__IFA_MAX)) { tb in
                guard let a = address(tb[Int(IFA_LOCAL)]) ?? address(tb[Int(IFA_ADDRESS)]) else { return nil }
                return .address(ifindex: Int32(ifa.ifa_index), a, deleted: type == Int32(RTM_DELADDR))
            }
        default:
            return .other(type: UInt16(type))
        }
    }

    private static func withTable(_ nlh: UnsafePointer<nlmsghdr>, _ offset: Int, _ count: Int,
                                  _ body: (UnsafeMutableBufferPointer<UnsafePointer<nlattr>?>) -> RouteEvent?) -> RouteEvent? {
        withUnsafeTemporaryAllocation(of: UnsafePointer<nlattr>?.self, capacity: count) { tb in
            guard cmnl_parse_table(nlh, UInt32(offset), tb.baseAddress, UInt32(count)) >= 0 else { return nil }
            return body(tb)
        }
    }

    static func address(_ a: UnsafePointer<nlattr>?) -> IPAddress? {
        guard let a else { return nil }
        return IPAddress(bytes: UnsafeRawPointer(mnl_attr_get_payload(a)!), count: Int(mnl_attr_get_payload_len(a)))
    }

    /// RTA_VIA: struct rtvia { family; address }.
    private static func via(_ a: UnsafePointer<nlattr>) -> IPAddress? {
        let len = Int(mnl_attr_get_payload_len(a))
        guard len >= 2 else { return nil }
        let p = UnsafeRawPointer(mnl_attr_get_payload(a)!)
        return IPAddress(bytes: p + 2, count: len - 2)
    }
}
