import Packet

/// Ethernet + IPv4 test frames between 198.18.0.1 (02:00:00:00:00:01) and 198.18.0.2
/// (02:00:00:00:00:02), one direction or the reply, for the conntrack tests.
enum TestFrames {
    static let client: UInt32 = 0xC612_0001, server: UInt32 = 0xC612_0002

    /// A frame of `l4Length` bytes after the IPv4 header; `l4` writes them at offset 34,
    /// given the frame and the packet's source and destination addresses.
    static func ipv4(proto: UInt8, l4Length: Int, reply: Bool,
                     l4: (UnsafeMutableRawPointer, _ src: UInt32, _ dst: UInt32) -> Void) -> [UInt8] {
        var f = [UInt8](repeating: 0, count: 34 + l4Length)
        let (src, dst) = reply ? (server, client) : (client, server)
        f.withUnsafeMutableBytes { r in
            let p = r.baseAddress!
            p.setBE48(0, 0x02_00_00_00_00_02)
            p.setBE48(6, 0x02_00_00_00_00_01)
            p.setBE16(12, EtherType.ipv4)
            p.setU8(14, 0x45)
            p.setBE16(16, UInt16(20 + l4Length))
            p.setU8(22, 64)
            p.setU8(23, proto)
            p.setBE32(26, src)
            p.setBE32(30, dst)
            p.setBE16(24, Checksum.compute(p + 14, count: 20))
            l4(p, src, dst)
        }
        return f
    }
}
