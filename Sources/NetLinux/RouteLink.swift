import CNetLinux
import Netlink

/// A few rtnetlink link requests the driver side needs (delete, alias, altname,
/// lookup), made over a NETLINK_ROUTE socket of the current namespace.
public struct RouteLink: ~Copyable {
    private let sock: FileDescriptor
    private var sequence: UInt32 = 1

    public static let newLink: UInt16 = 16
    public static let delLink: UInt16 = 17
    public static let getLink: UInt16 = 18
    public static let newLinkProp: UInt16 = 108

    // IFLA_* attributes used here.
    static let ifName: UInt16 = 3
    static let mtu: UInt16 = 4
    static let txQueueLength: UInt16 = 13
    static let linkInfo: UInt16 = 18
    static let infoKind: UInt16 = 1
    static let infoData: UInt16 = 2
    /// IFLA_TUN_PERSIST inside IFLA_INFO_DATA.
    static let tunPersist: UInt16 = 6
    static let ifAlias: UInt16 = 20
    static let propList: UInt16 = 52
    static let altIfName: UInt16 = 53

    public init() throws(SystemError) {
        sock = try Sys.socket(AF_NETLINK, Int32(SOCK_RAW.rawValue), 0 /* NETLINK_ROUTE */)
    }

    /// struct ifinfomsg with an index.
    static func ifinfo(index: Int32) -> [UInt8] {
        var b = [UInt8](repeating: 0, count: 16)
        withUnsafeBytes(of: index.littleEndian) { for i in 0..<4 { b[4 + i] = $0[i] } }
        return b
    }

    mutating func request(type: UInt16, flags: UInt16, body: [UInt8]) throws(SystemError) -> [RawMessage] {
        sequence &+= 1
        var msg: [UInt8] = []
        let len = UInt32(16 + body.count)
        withUnsafeBytes(of: len.littleEndian) { msg += $0 }
        withUnsafeBytes(of: type.littleEndian) { msg += $0 }
        withUnsafeBytes(of: (flags | NetlinkFlags.request | NetlinkFlags.ack).littleEndian) { msg += $0 }
        withUnsafeBytes(of: sequence.littleEndian) { msg += $0 }
        msg += [0, 0, 0, 0]
        msg += body
        let fd = sock.raw
        let sent = msg.withUnsafeBytes { p in Glibc.send(fd, p.baseAddress, p.count, 0) }
        if sent < 0 { throw SystemError("send(rtnetlink)", errno: errno) }
        var replies: [RawMessage] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buf.withUnsafeMutableBytes { p in Glibc.recv(fd, p.baseAddress, p.count, 0) }
            if n < 0 {
                if errno == EINTR { continue }
                throw SystemError("recv(rtnetlink)", errno: errno)
            }
            guard let msgs = try? MessageParser.split(Array(buf[0..<n])) else {
                throw SystemError("rtnetlink reply", errno: EPROTO)
            }
            for m in msgs where m.header.sequence == sequence {
                if m.header.type == NetlinkMessageType.error {
                    let e = try? ErrorMessage(header: m.header, body: m.body)
                    if let e, e.errno != 0 { throw SystemError("rtnetlink request \(type)", errno: e.errno) }
                    return replies
                }
                if m.header.type == NetlinkMessageType.done { return replies }
                replies.append(m)
            }
        }
    }

    /// Deletes a link by name.
    public mutating func delete(name: String) throws(SystemError) {
        var a = AttributeWriter()
        a.putString(RouteLink.ifName, name)
        _ = try request(type: RouteLink.delLink, flags: 0, body: RouteLink.ifinfo(index: 0) + a.bytes)
    }

    /// What kind of link `name` is ("tun", "veth", ...), and for a TUN/TAP device
    /// whether it is persistent (else it exists only while a process holds it open);
    /// nil when it does not exist.
    public mutating func link(named name: String) throws(SystemError) -> (kind: String, persistent: Bool)? {
        var a = AttributeWriter()
        a.putString(RouteLink.ifName, name)
        let replies: [RawMessage]
        do {
            replies = try request(type: RouteLink.getLink, flags: 0, body: RouteLink.ifinfo(index: 0) + a.bytes)
        } catch where error.errno == ENODEV {
            return nil
        }
        for r in replies where r.body.count >= 16 {
            guard let attrs = try? AttributeParser.parse(r.body.dropFirst(16)) else { continue }
            var kind = "", persistent = false
            for li in attrs where li.type == RouteLink.linkInfo {
                for k in (try? li.nestedAttributes()) ?? [] {
                    if k.type == RouteLink.infoKind { kind = (try? k.string()) ?? "" }
                    if k.type == RouteLink.infoData {
                        for d in (try? k.nestedAttributes()) ?? [] where d.type == RouteLink.tunPersist {
                            persistent = ((try? d.u8()) ?? 0) != 0
                        }
                    }
                }
            }
            return (kind, persistent)
        }
        return nil
    }

    public mutating func setAlias(index: Int32, _ alias: String) throws(SystemError) {
        var a = AttributeWriter()
        a.putString(RouteLink.ifAlias, alias)
        _ = try request(type: RouteLink.newLink, flags: 0, body: RouteLink.ifinfo(index: index) + a.bytes)
    }

    /// The transmit queue's length in frames (IFLA_TXQLEN; a TAP resizes its ring to it).
    public mutating func setTransmitQueueLength(index: Int32, _ frames: UInt32) throws(SystemError) {
        var a = AttributeWriter()
        a.putU32(RouteLink.txQueueLength, frames)
        _ = try request(type: RouteLink.newLink, flags: 0, body: RouteLink.ifinfo(index: index) + a.bytes)
    }

    public mutating func addAlternativeName(index: Int32, _ altName: String) throws(SystemError) {
        var a = AttributeWriter()
        a.nested(RouteLink.propList, flag: true) { $0.putString(RouteLink.altIfName, altName) }
        _ = try request(type: RouteLink.newLinkProp, flags: NetlinkFlags.exclusive | NetlinkFlags.create,
                        body: RouteLink.ifinfo(index: index) + a.bytes)
    }
}
