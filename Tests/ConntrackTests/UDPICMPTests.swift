@testable import Conntrack
import Packet
import Testing

/// UDP, ICMP and other protocols, and malformed packets.
struct UDPICMPTests {
    static func udp(_ src: String, _ dst: String, _ sport: UInt16, _ dport: UInt16) -> [UInt8] {
        Frames.ipv4(src: src, dst: dst, proto: 17, l4: Frames.udp(sport: sport, dport: dport))
    }

    @Test func udpRequestReply() {
        let h = Harness()
        #expect(h.run(Self.udp("198.18.0.1", "198.18.1.1", 5000, 53)).state == trkNew)
        #expect(h.ct.entries(zone: nil, now: h.now)[0].timeout == 60)
        // A second packet one way: still new (OTHERS_MULTIPLE).
        #expect(h.run(Self.udp("198.18.0.1", "198.18.1.1", 5000, 53)).state == trkNew)
        #expect(h.run(Self.udp("198.18.1.1", "198.18.0.1", 53, 5000)).state == trkEstRpl)
        #expect(h.run(Self.udp("198.18.0.1", "198.18.1.1", 5000, 53)).state == trkEst)
        #expect(h.ct.entries(zone: nil, now: h.now)[0].timeout == 30)
        h.advance(seconds: 31)
        #expect(h.run(Self.udp("198.18.1.1", "198.18.0.1", 53, 5000), commit: false).state == trkNew)
    }

    @Test func icmpEcho() {
        let h = Harness()
        let req = Frames.ipv4(src: "198.18.0.1", dst: "198.18.0.2", proto: 1, l4: Frames.icmp(type: 8, id: 7, seq: 1))
        let rep = Frames.ipv4(src: "198.18.0.2", dst: "198.18.0.1", proto: 1, l4: Frames.icmp(type: 0, id: 7, seq: 1))
        // A reply alone cannot start a connection.
        #expect(h.run(rep).state == trkInv)
        #expect(h.run(req).state == trkNew)
        #expect(h.run(req).state == trkNew)
        #expect(h.run(rep).state == trkEstRpl)
        #expect(h.run(req).state == trkEst)
        // Another id is another connection.
        let other = Frames.ipv4(src: "198.18.0.1", dst: "198.18.0.2", proto: 1, l4: Frames.icmp(type: 8, id: 8, seq: 1))
        #expect(h.run(other, commit: false).state == trkNew)
        #expect(ConnectionTracker.format(h.ct.entries(zone: nil, now: h.now)[0], verbose: false, statistics: false)
                == "icmp,orig=(src=198.18.0.1,dst=198.18.0.2,id=7,type=8,code=0),reply=(src=198.18.0.2,dst=198.18.0.1,id=7,type=0,code=0)")
    }

    @Test func icmpv6Echo() {
        let h = Harness()
        let req = Frames.ipv6(src: "2001:db8::1", dst: "2001:db8::2", proto: 58, l4: Frames.icmp(type: 128, id: 9))
        let rep = Frames.ipv6(src: "2001:db8::2", dst: "2001:db8::1", proto: 58, l4: Frames.icmp(type: 129, id: 9))
        #expect(h.run(req).state == trkNew)
        #expect(h.run(rep).state == trkEstRpl)
        #expect(ConnectionTracker.format(h.ct.entries(zone: nil, now: h.now)[0], verbose: false, statistics: false)
                == "icmpv6,orig=(src=2001:db8::1,dst=2001:db8::2,id=9,type=128,code=0),reply=(src=2001:db8::2,dst=2001:db8::1,id=9,type=129,code=0)")
    }

    @Test func otherProtocol() {
        let h = Harness()
        let gre = Frames.ipv4(src: "198.18.0.1", dst: "198.18.0.2", proto: 47, l4: [0, 0, 0x08, 0])
        let back = Frames.ipv4(src: "198.18.0.2", dst: "198.18.0.1", proto: 47, l4: [0, 0, 0x08, 0])
        #expect(h.run(gre).state == trkNew)
        #expect(h.run(back).state == trkEstRpl)
        #expect(ConnectionTracker.format(h.ct.entries(zone: nil, now: h.now)[0], verbose: false, statistics: true)
                == "47,orig=(src=198.18.0.1,dst=198.18.0.2,sport=0,dport=0,packets=1,bytes=24),reply=(src=198.18.0.2,dst=198.18.0.1,sport=0,dport=0,packets=1,bytes=24),timeout=30")
    }

    @Test func unreachableForUDPIsRelated() {
        let h = Harness()
        let request = Frames.ipv4Datagram(src: "198.18.0.1", dst: "198.18.1.1", proto: 17, l4: Frames.udp(sport: 5000, dport: 53))
        _ = h.run(Frames.ethernet(EtherType.ipv4) + request)
        // The server answers with port unreachable quoting the request.
        let error = Frames.ipv4(src: "198.18.1.1", dst: "198.18.0.1", proto: 1, l4: Frames.icmp(type: 3, code: 3, body: Array(request.prefix(28))))
        #expect(h.run(error).state == [.tracked, .related, .replyDirection])
        // An error about an unknown connection, or quoting a packet the error's target
        // did not send, is invalid.
        let stray = Frames.ipv4Datagram(src: "198.18.0.1", dst: "198.18.1.1", proto: 17, l4: Frames.udp(sport: 5001, dport: 53))
        #expect(h.run(Frames.ipv4(src: "198.18.1.1", dst: "198.18.0.1", proto: 1, l4: Frames.icmp(type: 3, code: 3, body: Array(stray.prefix(28))))).state == trkInv)
        #expect(h.run(Frames.ipv4(src: "198.18.1.1", dst: "198.18.0.9", proto: 1, l4: Frames.icmp(type: 3, code: 3, body: Array(request.prefix(28))))).state == trkInv)
    }

    @Test func malformedPacketsAreInvalid() {
        let h = Harness()
        var fragment = Self.udp("198.18.0.1", "198.18.1.1", 5000, 53)
        fragment[20] = 0x20  // MF
        fragment[24] = 0; fragment[25] = 0
        let hc = fragment.withUnsafeBytes { Checksum.compute($0.baseAddress! + 14, count: 20) }
        fragment[24] = UInt8(hc >> 8); fragment[25] = UInt8(hc & 0xff)
        #expect(h.run(fragment).state == trkInv)
        var badHeaderChecksum = Self.udp("198.18.0.1", "198.18.1.1", 5000, 53)
        badHeaderChecksum[24] ^= 0xff
        #expect(h.run(badHeaderChecksum).state == trkInv)
        #expect(h.run(Self.udp("198.18.0.1", "198.18.1.1", 0, 53)).state == trkInv)
        let short = Array(Self.udp("198.18.0.1", "198.18.1.1", 5000, 53).prefix(30))
        #expect(h.run(short).state == trkInv)
        let arp = Frames.ethernet(EtherType.arp) + [UInt8](repeating: 0, count: 28)
        #expect(h.run(arp).state == trkInv)
        let shortTCP = Frames.ipv4(src: "198.18.0.1", dst: "198.18.0.2", proto: 6, l4: [0, 1, 0, 2, 0, 0])
        #expect(h.run(shortTCP).state == trkInv)
        #expect(h.ct.connectionCount == 0)
    }

    @Test func zonesAreSeparate() {
        let h = Harness()
        #expect(h.run(Self.udp("198.18.0.1", "198.18.1.1", 5000, 53), zone: 1).state == trkNew)
        // The reply in another zone finds nothing.
        let r2 = h.run(Self.udp("198.18.1.1", "198.18.0.1", 53, 5000), zone: 2, commit: false)
        #expect(r2.state == trkNew && r2.key[.ctZone] == 2)
        let r1 = h.run(Self.udp("198.18.1.1", "198.18.0.1", 53, 5000), zone: 1)
        #expect(r1.state == trkEstRpl && r1.key[.ctZone] == 1)
    }

    @Test func markAndLabel() {
        let h = Harness()
        let r = h.run(Self.udp("198.18.0.1", "198.18.1.1", 5000, 53), mark: (0x13, 0xff), label: (0x1234, 0xffff))
        #expect(r.key[.ctMark] == 0x13 && r.key[.ctLabel] == 0x1234)
        // Without commit the packet reads the connection's mark.
        let reply = h.run(Self.udp("198.18.1.1", "198.18.0.1", 53, 5000), commit: false)
        #expect(reply.key[.ctMark] == 0x13 && reply.key[.ctLabel] == 0x1234)
        // Masked update keeps the other bits.
        let again = h.run(Self.udp("198.18.0.1", "198.18.1.1", 5000, 53), mark: (0x100, 0xf00))
        #expect(again.key[.ctMark] == 0x113)
        #expect(ConnectionTracker.format(h.ct.entries(zone: nil, now: h.now)[0], verbose: false, statistics: false)
                == "udp,orig=(src=198.18.0.1,dst=198.18.1.1,sport=5000,dport=53),reply=(src=198.18.1.1,dst=198.18.0.1,sport=53,dport=5000),mark=275,labels=0x1234")
    }
}

/// L4 checksums as OVS's check_l4_*: a complete but wrong checksum makes the packet
/// invalid (nothing committed); a partial one (still to be filled in) or one the kernel
/// vouched for is not checked. Found by the differential test against OVS 3.1.
struct ChecksumTests {
    static func corrupt(_ f: [UInt8], at offset: Int) -> [UInt8] {
        var g = f
        g[offset] ^= 0x5a
        return g
    }

    @Test func aBadTCPChecksumIsInvalidAndCommitsNothing() {
        let h = Harness()
        let syn = Self.corrupt(TCPTests.fromClient(seq: 1000, flags: TCPTests.syn), at: 14 + 20 + 16)
        #expect(h.run(syn).state == [.tracked, .invalid])
        #expect(h.ct.connectionCount == 0)
        #expect(h.run(syn, verified: true).state == trkNew)
        #expect(h.ct.connectionCount == 1)
    }

    @Test func aPartialChecksumIsNotChecked() {
        let h = Harness()
        // A CHECKSUM_PARTIAL field holds the pseudo-header sum: wrong as a full checksum.
        let syn = Self.corrupt(TCPTests.fromClient(seq: 1000, flags: TCPTests.syn), at: 14 + 20 + 16)
        #expect(h.run(syn, partial: true).state == trkNew)
    }

    @Test func udpAndICMPChecksums() {
        let h = Harness()
        let udp = UDPICMPTests.udp("198.18.0.1", "198.18.1.1", 5000, 53)
        #expect(h.run(Self.corrupt(udp, at: 14 + 20 + 6)).state == [.tracked, .invalid])
        var zero = udp
        zero[14 + 20 + 6] = 0
        zero[14 + 20 + 7] = 0
        #expect(h.run(zero).state == trkNew)   // IPv4 UDP without a checksum is fine
        let echo = Frames.ipv4(src: "198.18.0.1", dst: "198.18.1.1", proto: 1, l4: Frames.icmp(type: 8, id: 7, seq: 1))
        #expect(h.run(Self.corrupt(echo, at: 14 + 20 + 2)).state == [.tracked, .invalid])
        #expect(h.run(echo).state == trkNew)
    }
}

