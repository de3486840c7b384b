@testable import Representors
import Testing

/// Which representors eswd mirrors, from /proc/net/packet as the kernel prints it.
struct PacketSocketTests {
    // eswd's own: a receiver on pf0vf0 (ifindex 7, ETH_P_ALL) and a transmit socket
    // (protocol 0). Then tcpdump on pf0vf1 (8), a socket on another netdev (3), one
    // bound but not running, one with no protocol.
    static let table = """
        sk               RefCnt Type Proto  Iface R Rmem   User   Inode
        ffff8880049a0000 3      3    0003   7     1 0      0      1001
        ffff8880049a1000 3      3    0000   7     0 0      0      1002
        ffff8880049a2000 3      3    0003   8     1 0      0      2001
        ffff8880049a3000 3      3    0003   3     1 0      0      2002
        ffff8880049a4000 3      3    0003   9     0 0      0      2003
        ffff8880049a5000 3      3    0000   9     1 0      0      2004

        """
    static let representors: Set<Int32> = [7, 8, 9]

    @Test func theTableParses() {
        let rows = PacketSockets.parse(Self.table)
        #expect(rows.count == 6)
        #expect(rows[0] == PacketSockets.Socket(ifindex: 7, proto: 3, running: true, inode: 1001))
        #expect(rows[1].proto == 0 && !rows[1].running)
    }

    @Test func aCaptureOnARepresentorMirrorsItAlone() {
        #expect(PacketSockets.capturedRepresentors(table: Self.table, ownSockets: [1001, 1002],
                                                   representors: Self.representors) == [8])
    }

    @Test func eswdsOwnSocketsAreNoCapture() {
        let table = Self.table.split(separator: "\n").prefix(3).joined(separator: "\n")
        #expect(PacketSockets.capturedRepresentors(table: table, ownSockets: [1001, 1002], representors: Self.representors).isEmpty)
        // Not known as ours, the receiver on pf0vf0 would be one.
        #expect(PacketSockets.capturedRepresentors(table: table, ownSockets: [], representors: Self.representors) == [7])
    }

    @Test func aSocketOnEveryInterfaceMirrorsEveryRepresentor() {
        let any = Self.table + "ffff8880049a6000 3      2    0003   0     1 0      0      3001\n"
        #expect(PacketSockets.capturedRepresentors(table: any, ownSockets: [1001, 1002],
                                                   representors: Self.representors) == Self.representors)
    }

    @Test func noSocketsNoRepresentorsOrGarbage() {
        let header = "sk               RefCnt Type Proto  Iface R Rmem   User   Inode\n"
        #expect(PacketSockets.capturedRepresentors(table: header, ownSockets: [], representors: Self.representors).isEmpty)
        #expect(PacketSockets.capturedRepresentors(table: Self.table, ownSockets: [], representors: []).isEmpty)
        #expect(PacketSockets.parse(header + "not a row\nffff 3 3 zz 8 1 0 0 5\n").isEmpty)
    }
}
