import CNetLinux
import Netlink

/// veth pairs for VF netdevs, and the few requests on a link in another namespace that
/// the driver makes (MTU, MAC) through the netns id the kernel reports for the peer.
extension RouteLink {
    static let address: UInt16 = 1
    static let link: UInt16 = 5
    static let linkNetnsID: UInt16 = 37
    /// VETH_INFO_PEER inside IFLA_INFO_DATA.
    static let vethPeer: UInt16 = 1
    static let setLinkType: UInt16 = 19

    /// Creates a veth pair `name` <-> `peer` in this namespace.
    public mutating func addVethPair(name: String, peer: String) throws(SystemError) {
        var a = AttributeWriter()
        a.putString(RouteLink.ifName, name)
        a.nested(RouteLink.linkInfo) { li in
            li.putString(RouteLink.infoKind, "veth")
            li.nested(RouteLink.infoData) { d in
                var p = AttributeWriter()
                p.putString(RouteLink.ifName, peer)
                d.put(RouteLink.vethPeer, RouteLink.ifinfo(index: 0) + p.bytes)
            }
        }
        _ = try request(type: RouteLink.newLink, flags: NetlinkFlags.create | NetlinkFlags.exclusive,
                        body: RouteLink.ifinfo(index: 0) + a.bytes)
    }

    /// The peer of a veth end: its ifindex (in its own namespace) and the netns id of
    /// that namespace, nil when the peer is in this one.
    public mutating func vethPeer(of index: Int32) throws(SystemError) -> (index: Int32, netnsID: Int32?) {
        let replies = try request(type: RouteLink.getLink, flags: 0, body: RouteLink.ifinfo(index: index))
        for r in replies where r.body.count >= 16 {
            guard let attrs = try? AttributeParser.parse(r.body.dropFirst(16)) else { continue }
            var peer: Int32 = 0
            var nsid: Int32?
            for a in attrs {
                if a.type == RouteLink.link, let v = try? a.u32() { peer = Int32(bitPattern: v) }
                if a.type == RouteLink.linkNetnsID, let v = try? a.u32() { nsid = Int32(bitPattern: v) }
            }
            return (peer, nsid)
        }
        throw SystemError("RTM_GETLINK \(index)", errno: ENODEV)
    }

    /// The netns id this namespace gives the namespace `fd` (RTM_GETNSID), nil if none.
    public mutating func netnsID(ofNamespace fd: Int32) -> Int32? {
        var a = AttributeWriter()
        a.putU32(3 /* NETNSA_FD */, UInt32(bitPattern: fd))
        guard let replies = try? request(type: 90 /* RTM_GETNSID */, flags: 0, body: [0, 0, 0, 0] + a.bytes) else { return nil }
        for r in replies where r.body.count >= 4 {
            guard let attrs = try? AttributeParser.parse(r.body.dropFirst(4)) else { continue }
            for x in attrs where x.type == 1 /* NETNSA_NSID */ {
                if let v = try? x.u32(), Int32(bitPattern: v) >= 0 { return Int32(bitPattern: v) }
            }
        }
        return nil
    }
}

/// Finds the namespace behind a netns id: the kernel reports a veth peer's namespace
/// only as an id, and no call turns an id back into a namespace. Named namespaces
/// (/run/netns) and those of running processes are looked at.
public enum NamespaceLookup {
    /// Paths that held each id when last looked up (ids are stable while both namespaces live).
    nonisolated(unsafe) private static var knownPaths: [Int32: String] = [:]

    public static func open(netnsID: Int32) -> FileDescriptor? {
        guard var rt = try? RouteLink() else { return nil }
        if let path = knownPaths[netnsID] {
            let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
            if fd >= 0 {
                if rt.netnsID(ofNamespace: fd) == netnsID { return FileDescriptor(adopting: fd) }
                close(fd)
            }
            knownPaths[netnsID] = nil
        }
        var candidates: [String] = []
        if let d = opendir("/run/netns") {
            while let e = readdir(d) {
                let name = withUnsafeBytes(of: e.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
                if name != "." && name != ".." { candidates.append("/run/netns/" + name) }
            }
            closedir(d)
        }
        if let d = opendir("/proc") {
            while let e = readdir(d) {
                let name = withUnsafeBytes(of: e.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
                if let f = name.utf8.first, f >= 0x30 && f <= 0x39 { candidates.append("/proc/\(name)/ns/net") }
            }
            closedir(d)
        }
        for path in candidates {
            let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
            if fd < 0 { continue }
            if rt.netnsID(ofNamespace: fd) == netnsID {
                knownPaths[netnsID] = path
                return FileDescriptor(adopting: fd)
            }
            close(fd)
        }
        return nil
    }
}

/// Link changes on a link in this or another namespace.
extension RouteLink {
    /// Runs `body` with a RouteLink in the namespace `netnsID` (nil: this one).
    public static func inNamespace<T: Sendable>(_ netnsID: Int32?, _ body: @escaping @Sendable (inout RouteLink) throws -> T) throws -> T {
        guard let netnsID else {
            var rt = try RouteLink()
            return try body(&rt)
        }
        guard let ns = NamespaceLookup.open(netnsID: netnsID) else {
            throw SystemError("namespace of netns id \(netnsID) not found", errno: ENOENT)
        }
        return try NetworkNamespace.run(in: ns.raw) {
            var rt = try RouteLink()
            return try body(&rt)
        }
    }

    /// Sets the MTU and/or MAC of link `index` of this namespace.
    public mutating func setLink(index: Int32, mtu: Int? = nil, address: UInt64? = nil) throws(SystemError) {
        var a = AttributeWriter()
        if let mtu { a.putU32(RouteLink.mtu, UInt32(clamping: mtu)) }
        if let address {
            a.put(RouteLink.address, (0..<6).map { UInt8(truncatingIfNeeded: address >> UInt64(40 - 8 * $0)) })
        }
        _ = try request(type: RouteLink.setLinkType, flags: 0, body: RouteLink.ifinfo(index: index) + a.bytes)
    }

    /// The MAC of link `index` of this namespace.
    public mutating func address(index: Int32) throws(SystemError) -> UInt64 {
        let replies = try request(type: RouteLink.getLink, flags: 0, body: RouteLink.ifinfo(index: index))
        for r in replies where r.body.count >= 16 {
            guard let attrs = try? AttributeParser.parse(r.body.dropFirst(16)) else { continue }
            for x in attrs where x.type == RouteLink.address {
                let b = Array(x.payload)
                guard b.count == 6 else { continue }
                return b.reduce(0) { $0 << 8 | UInt64($1) }
            }
        }
        throw SystemError("RTM_GETLINK \(index)", errno: ENODEV)
    }
}
