import CMnl
import NetLinux

/// Questions to the kernel's routing and neighbour tables in the daemon's namespace,
/// over one blocking rtnetlink socket. Each answer is what the kernel itself would
/// use to send (RTM_GETROUTE resolves policy rules, gateways and source selection).
public struct KernelTables: ~Copyable {
    private var socket: RouteSocket
    /// Messages the decoder could not read.
    public private(set) var malformed = 0

    public init() throws(SystemError) {
        socket = try RouteSocket()
    }

    /// The route the kernel would use from `source` (nil: let it choose) to `destination`.
    public mutating func route(to destination: IPAddress, from source: IPAddress?) throws(SystemError) -> RouteEntry {
        var found: RouteEntry?
        var bad = 0
        try socket.transact(type: Int32(RTM_GETROUTE), flags: Int32(NLM_F_ACK), { nlh in
            let rt = mnl_nlmsg_put_extra_header(nlh, MemoryLayout<rtmsg>.size)!.assumingMemoryBound(to: rtmsg.self)
            rt.pointee.rtm_family = destination.family
            rt.pointee.rtm_dst_len = UInt8(destination.byteCount * 8)
            Self.put(nlh, UInt16(RTA_DST.rawValue), destination)
            if let source, !source.isZero {
                rt.pointee.rtm_src_len = UInt8(source.byteCount * 8)
                Self.put(nlh, UInt16(RTA_SRC.rawValue), source)
            }
        }, each: { nlh in
            if case .route(let r, _)? = RouteMessageDecoder.decode(nlh) { found = r } else { bad += 1 }
        })
        malformed += bad
        guard let found else { throw SystemError("RTM_GETROUTE \(destination)", errno: ENOENT) }
        return found
    }

    /// Every neighbour entry of both families.
    public mutating func neighbours() throws(SystemError) -> [NeighbourEntry] {
        var out: [NeighbourEntry] = []
        try dump(Int32(RTM_GETNEIGH), header: MemoryLayout<ndmsg>.size) { if case .neighbour(let n) = $0 { out.append(n) } }
        return out
    }

    /// Every link.
    public mutating func links() throws(SystemError) -> [LinkEntry] {
        var out: [LinkEntry] = []
        try dump(Int32(RTM_GETLINK), header: MemoryLayout<ifinfomsg>.size) { if case .link(let l) = $0 { out.append(l) } }
        return out
    }

    /// Marks a neighbour used (NTF_USE), creating it if needed: the kernel starts or
    /// refreshes resolution as it does for a neighbour its own traffic uses.
    public mutating func useNeighbour(ifindex: Int32, address: IPAddress) throws(SystemError) {
        try socket.transact(type: Int32(RTM_NEWNEIGH), flags: Int32(NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE), { nlh in
            let nd = mnl_nlmsg_put_extra_header(nlh, MemoryLayout<ndmsg>.size)!.assumingMemoryBound(to: ndmsg.self)
            nd.pointee.ndm_family = address.family
            nd.pointee.ndm_ifindex = ifindex
            nd.pointee.ndm_state = UInt16(NUD_NONE)
            nd.pointee.ndm_flags = UInt8(NTF_USE)
            Self.put(nlh, UInt16(NDA_DST), address)
        }, each: { _ in })
    }

    private mutating func dump(_ type: Int32, header: Int, _ each: (RouteEvent) -> Void) throws(SystemError) {
        var bad = 0
        try socket.transact(type: type, flags: Int32(NLM_F_DUMP), { nlh in
            // AF_UNSPEC in the family header's first byte: both families.
            _ = mnl_nlmsg_put_extra_header(nlh, header)
        }, each: { nlh in
            if let e = RouteMessageDecoder.decode(nlh) { each(e) } else { bad += 1 }
        })
        malformed += bad
    }

    private static func put(_ nlh: UnsafeMutablePointer<nlmsghdr>, _ type: UInt16, _ a: IPAddress) {
        let bytes = a.bytes
        bytes.withUnsafeBytes { mnl_attr_put(nlh, type, bytes.count, $0.baseAddress) }
    }
}
