import CNetLinux

/// A 48-bit Ethernet address held in the low bits of a UInt64.
public struct MACAddress: Sendable, Hashable, CustomStringConvertible {
    public var value: UInt64

    public init(_ value: UInt64) { self.value = value & 0xffff_ffff_ffff }

    public init(bytes b: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8)) {
        value = UInt64(b.0) << 40 | UInt64(b.1) << 32 | UInt64(b.2) << 24 | UInt64(b.3) << 16 | UInt64(b.4) << 8 | UInt64(b.5)
    }

    public init?(_ text: String) {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 6 else { return nil }
        var v: UInt64 = 0
        for p in parts {
            guard p.count >= 1, p.count <= 2, let b = UInt8(p, radix: 16) else { return nil }
            v = v << 8 | UInt64(b)
        }
        value = v
    }

    public var bytes: [UInt8] { (0..<6).map { UInt8(truncatingIfNeeded: value >> UInt64(40 - 8 * $0)) } }

    public var description: String {
        bytes.map { let s = String($0, radix: 16); return s.count == 1 ? "0" + s : s }.joined(separator: ":")
    }

    public var isMulticast: Bool { (value >> 40) & 1 == 1 }
    public var isBroadcast: Bool { value == 0xffff_ffff_ffff }

    /// A locally administered unicast address derived from `seed`.
    public static func local(_ seed: UInt64) -> MACAddress {
        MACAddress(0x0200_0000_0000 | (seed & 0x00ff_ffff_ffff))
    }
}

/// Netdev settings through ioctls on a datagram socket of the current namespace.
public struct InterfaceControl: ~Copyable {
    private let sock: FileDescriptor

    public init() throws(SystemError) {
        sock = try Sys.socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
    }

    public func index(of name: String) throws(SystemError) -> Int32 {
        try syscall("SIOCGIFINDEX \(name)") { cnl_if_index(sock.raw, name) }
    }

    public func exists(_ name: String) -> Bool { cnl_if_index(sock.raw, name) > 0 }

    /// The name of link `index` in this namespace, nil if there is none.
    public func name(of index: Int32) -> String? {
        var buf = [CChar](repeating: 0, count: Int(IF_NAMESIZE) + 1)
        guard if_indextoname(UInt32(bitPattern: index), &buf) != nil else { return nil }
        return String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Waits until none of `names` exists; false if one still does after `milliseconds`.
    /// A TAP netdev goes with the last reference to its file, which the kernel may drop
    /// a moment after the close (a killed process's files are closed asynchronously).
    public func awaitRemoval(of names: [String], milliseconds: Int = 2000) -> Bool {
        var rounds = max(1, milliseconds / 10)
        while true {
            var present = false
            for n in names where exists(n) { present = true }
            if !present { return true }
            rounds -= 1
            if rounds == 0 { return false }
            usleep(10_000)
        }
    }

    public func mtu(of name: String) throws(SystemError) -> Int {
        Int(try syscall("SIOCGIFMTU \(name)") { cnl_if_get_mtu(sock.raw, name) })
    }

    public func setMTU(_ name: String, _ mtu: Int) throws(SystemError) {
        try syscall("SIOCSIFMTU \(name)") { cnl_if_set_mtu(sock.raw, name, Int32(mtu)) }
    }

    public func flags(of name: String) throws(SystemError) -> Int32 {
        try syscall("SIOCGIFFLAGS \(name)") { cnl_if_get_flags(sock.raw, name) }
    }

    public func isUp(_ name: String) -> Bool {
        let f = cnl_if_get_flags(sock.raw, name)
        return f >= 0 && f & Int32(IFF_UP) != 0
    }

    /// Whether the link has carrier and is up (IFF_RUNNING).
    public func isRunning(_ name: String) -> Bool {
        let f = cnl_if_get_flags(sock.raw, name)
        return f >= 0 && f & Int32(IFF_RUNNING) != 0
    }

    public func setUp(_ name: String, _ up: Bool) throws(SystemError) {
        try setFlag(name, Int32(IFF_UP), up)
    }

    /// Sets or clears one IFF_* flag.
    public func setFlag(_ name: String, _ flag: Int32, _ on: Bool) throws(SystemError) {
        let f = try flags(of: name)
        let nf = on ? f | flag : f & ~flag
        if nf != f { try syscall("SIOCSIFFLAGS \(name)") { cnl_if_set_flags(sock.raw, name, nf) } }
    }

    public func hardwareAddress(of name: String) throws(SystemError) -> MACAddress {
        var mac = [UInt8](repeating: 0, count: 6)
        try syscall("SIOCGIFHWADDR \(name)") { cnl_if_get_hwaddr(sock.raw, name, &mac) }
        return MACAddress(bytes: (mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]))
    }

    public func setHardwareAddress(_ name: String, _ mac: MACAddress) throws(SystemError) {
        let b = mac.bytes
        try syscall("SIOCSIFHWADDR \(name)") { cnl_if_set_hwaddr(sock.raw, name, b) }
    }
}
