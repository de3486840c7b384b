@testable import Conntrack
import Packet
import Testing

/// NAT: tuple choice, packet rewrite both ways with checksums checked from scratch,
/// port clashes, related ICMP errors, partial checksums.
struct NATTests {
    static func addr(_ s: String) -> CTAddress { CTAddress(ipv4: Frames.v4(s)) }
    static func snat(_ a: String, _ b: String? = nil, ports: ClosedRange<UInt16>? = nil) -> NATSpec {
        NATSpec(kind: .source, addresses: addr(a)...addr(b ?? a), ports: ports)
    }
    static let bare = NATSpec(kind: .none)

    static func ipv4Fields(_ f: [UInt8]) -> (src: UInt32, dst: UInt32, sport: UInt16, dport: UInt16) {
        f.withUnsafeBytes { p in (p.baseAddress!.be32(26), p.baseAddress!.be32(30), p.baseAddress!.be16(34), p.baseAddress!.be16(36)) }
    }

    @Test func snatTCPBothDirections() {
        let h = Harness()
        let nat = Self.snat("198.18.0.100")
        let syn = TCPTests.fromClient(seq: 1000, flags: TCPTests.syn, payload: 3)
        let r = h.run(syn, nat: nat)
        #expect(r.state == [.tracked, .new, .sourceNAT])
        let out = Self.ipv4Fields(r.frame)
        #expect(out.src == Frames.v4("198.18.0.100") && out.dst == Frames.v4("198.18.0.2") && out.sport == 40000 && out.dport == 80)
        #expect(Frames.checksumsValid(r.frame))
        #expect(r.key[.ipv4Src] == UInt64(Frames.v4("198.18.0.100")) && r.key[.tpSrc] == 40000)

        // The reply arrives addressed to the NAT address and is rewritten back.
        let synAck = Frames.ipv4(src: "198.18.0.2", dst: "198.18.0.100", proto: 6,
                                 l4: Frames.tcp(sport: 80, dport: 40000, seq: 5000, ack: 1004, flags: TCPTests.syn | TCPTests.ack))
        let back = h.run(synAck, nat: Self.bare)
        #expect(back.state == [.tracked, .established, .replyDirection, .destinationNAT])
        let b = Self.ipv4Fields(back.frame)
        #expect(b.src == Frames.v4("198.18.0.2") && b.dst == Frames.v4("198.18.0.1") && b.dport == 40000)
        #expect(Frames.checksumsValid(back.frame))
        #expect(back.key[.ipv4Dst] == UInt64(Frames.v4("198.18.0.1")))

        // Without nat in the action, the reply is tracked but not rewritten.
        let plain = h.run(synAck, commit: false)
        #expect(Self.ipv4Fields(plain.frame).dst == Frames.v4("198.18.0.100") && !plain.state.contains(.destinationNAT))

        #expect(ConnectionTracker.format(h.ct.entries(zone: nil, now: h.now)[0], verbose: false, statistics: false)
                == "tcp,orig=(src=198.18.0.1,dst=198.18.0.2,sport=40000,dport=80),reply=(src=198.18.0.2,dst=198.18.0.100,sport=80,dport=40000),protoinfo=(state=ESTABLISHED)")
        // (client ESTABLISHED, server SYN_SENT: OVS prints the greater state)
    }

    @Test func dnatWithPortRangeUDP() {
        let h = Harness()
        let nat = NATSpec(kind: .destination, addresses: Self.addr("198.18.5.1")...Self.addr("198.18.5.4"), ports: 8000...8010)
        let r = h.run(UDPICMPTests.udp("198.18.0.1", "198.18.1.1", 5000, 53), nat: nat)
        #expect(r.state == [.tracked, .new, .destinationNAT])
        let f = Self.ipv4Fields(r.frame)
        #expect((Frames.v4("198.18.5.1")...Frames.v4("198.18.5.4")).contains(f.dst) && (8000...8010).contains(f.dport))
        #expect(f.src == Frames.v4("198.18.0.1") && f.sport == 5000)
        #expect(Frames.checksumsValid(r.frame))
        #expect(r.key[.ipv4Dst] == UInt64(f.dst) && r.key[.tpDst] == UInt64(f.dport))
        // The backend's reply leaves as if from the original destination.
        let reply = h.run(Frames.ipv4(src: AddressText.ipv4(f.dst), dst: "198.18.0.1", proto: 17, l4: Frames.udp(sport: f.dport, dport: 5000)),
                          nat: Self.bare)
        #expect(reply.state == [.tracked, .established, .replyDirection, .sourceNAT])
        let g = Self.ipv4Fields(reply.frame)
        #expect(g.src == Frames.v4("198.18.1.1") && g.sport == 53 && g.dst == Frames.v4("198.18.0.1"))
        #expect(Frames.checksumsValid(reply.frame))
    }

    @Test func snatIPv6() {
        let h = Harness()
        let nat = NATSpec(kind: .source, addresses: CTAddress(ipv6: Frames.v6("2001:db8::99"))...CTAddress(ipv6: Frames.v6("2001:db8::99")))
        let r = h.run(Frames.ipv6(src: "2001:db8::1", dst: "2001:db8::2", proto: 17, l4: Frames.udp(sport: 4000, dport: 53)), nat: nat)
        #expect(r.frame.withUnsafeBytes { $0.baseAddress!.be128(22) } == Frames.v6("2001:db8::99"))
        #expect(r.key[.ipv6Src] == Frames.v6("2001:db8::99"))
        #expect(Frames.checksumsValid(r.frame))
        let back = h.run(Frames.ipv6(src: "2001:db8::2", dst: "2001:db8::99", proto: 17, l4: Frames.udp(sport: 53, dport: 4000)), nat: Self.bare)
        #expect(back.frame.withUnsafeBytes { $0.baseAddress!.be128(38) } == Frames.v6("2001:db8::1"))
        #expect(Frames.checksumsValid(back.frame))
    }

    @Test func portClashPicksAnotherPort() {
        let h = Harness()
        let nat = Self.snat("198.18.0.100")
        // Two clients, same source port, same server: one NAT address.
        let a = h.run(UDPICMPTests.udp("198.18.0.1", "198.18.1.1", 5000, 53), nat: nat)
        let b = h.run(UDPICMPTests.udp("198.18.0.2", "198.18.1.1", 5000, 53), nat: nat)
        let pa = Self.ipv4Fields(a.frame).sport, pb = Self.ipv4Fields(b.frame).sport
        #expect(pa == 5000)
        // OVS 3.1 searches upwards from the original port: 5001 (checked against it).
        #expect(pb == 5001)
        #expect(Frames.checksumsValid(b.frame))
        // Each reply goes back to its own client.
        let ra = h.run(UDPICMPTests.udp("198.18.1.1", "198.18.0.100", 53, pa), nat: Self.bare)
        let rb = h.run(UDPICMPTests.udp("198.18.1.1", "198.18.0.100", 53, pb), nat: Self.bare)
        #expect(Self.ipv4Fields(ra.frame).dst == Frames.v4("198.18.0.1") && Self.ipv4Fields(rb.frame).dst == Frames.v4("198.18.0.2"))
        #expect(Self.ipv4Fields(rb.frame).dport == 5000)
        // Privileged source ports stay in 600-1023.
        let c = h.run(UDPICMPTests.udp("198.18.0.1", "198.18.1.1", 700, 53), nat: nat)
        let d = h.run(UDPICMPTests.udp("198.18.0.2", "198.18.1.1", 700, 53), nat: nat)
        #expect(Self.ipv4Fields(c.frame).sport == 700)
        #expect(Self.ipv4Fields(d.frame).sport == 701)
    }

    @Test func exhaustedPortRangeRefusesTheCommit() {
        let h = Harness()
        let nat = Self.snat("198.18.0.100", ports: 2000...2001)
        for i in 1...2 { _ = h.run(UDPICMPTests.udp("198.18.0.\(i)", "198.18.1.1", 5000, 53), nat: nat) }
        let third = h.run(UDPICMPTests.udp("198.18.0.3", "198.18.1.1", 5000, 53), nat: nat)
        #expect(third.state == trkNew)
        #expect(Self.ipv4Fields(third.frame).src == Frames.v4("198.18.0.3"))
        #expect(h.ct.connectionCount == 2)
        #expect(h.ct.statistics(zone: nil, now: h.now).natExhausted == 1)
    }

    @Test func relatedErrorIsNATedInside() {
        let h = Harness()
        let nat = Self.snat("198.18.0.100")
        let sent = h.run(UDPICMPTests.udp("198.18.0.1", "198.18.1.1", 5000, 53), nat: nat)
        // The server's port unreachable quotes the datagram as it saw it (after SNAT).
        let quoted = Array(sent.frame[14..<(14 + 28)])
        let error = Frames.ipv4(src: "198.18.1.1", dst: "198.18.0.100", proto: 1, l4: Frames.icmp(type: 3, code: 3, body: quoted))
        let r = h.run(error, nat: Self.bare)
        #expect(r.state == [.tracked, .related, .replyDirection, .destinationNAT])
        let outer = Self.ipv4Fields(r.frame)
        #expect(outer.src == Frames.v4("198.18.1.1") && outer.dst == Frames.v4("198.18.0.1"))
        // Inner header: back to what the client sent, header checksum valid.
        let inner = Array(r.frame[42...])
        #expect(inner.withUnsafeBytes { $0.baseAddress!.be32(12) } == Frames.v4("198.18.0.1"))
        #expect(inner.withUnsafeBytes { Checksum.compute($0.baseAddress!, count: 20) } == 0)
        #expect(Frames.checksumsValid(r.frame))
        #expect(r.key[.ipv4Dst] == UInt64(Frames.v4("198.18.0.1")))
        // The quoted UDP checksum is still right for the original datagram.
        let original = Frames.ipv4Datagram(src: "198.18.0.1", dst: "198.18.1.1", proto: 17, l4: Frames.udp(sport: 5000, dport: 53))
        #expect(Array(inner.prefix(28)) == Array(original.prefix(28)).enumerated().map { $0.offset == 8 ? inner[8] : $0.element })
    }

    @Test func natAppliesOncePerZone() {
        let h = Harness()
        let nat = Self.snat("198.18.0.100")
        let first = h.run(UDPICMPTests.udp("198.18.0.1", "198.18.1.1", 5000, 53), nat: nat)
        // The same packet through ct(nat) again (after recirculation) is not rewritten twice
        // and still finds its connection.
        let again = h.run(first.frame, nat: Self.bare, prior: first.key)
        #expect(again.frame == first.frame)
        #expect(again.state.contains(.sourceNAT) && again.state.contains(.tracked))
        #expect(h.ct.connectionCount == 1)
    }

    /// A virtio-net frame with CHECKSUM_PARTIAL: the TCP checksum field holds the
    /// pseudo-header sum. Address NAT must keep it the pseudo-header sum of the new
    /// addresses (the kernel's inet_proto_csum_replace4 with pseudohdr).
    @Test func partialChecksumFollowsAddresses() {
        let h = Harness()
        var syn = TCPTests.fromClient(seq: 1000, flags: TCPTests.syn, payload: 10)
        let len = syn.count - 34
        let pseudo = Checksum.fold(Checksum.pseudoHeaderIPv4(src: Frames.v4("198.18.0.1"), dst: Frames.v4("198.18.0.2"), proto: 6, length: len))
        syn[50] = UInt8(pseudo >> 8); syn[51] = UInt8(pseudo & 0xff)
        let r = h.run(syn, nat: Self.snat("198.18.0.100"), partial: true)
        let expected = Checksum.fold(Checksum.pseudoHeaderIPv4(src: Frames.v4("198.18.0.100"), dst: Frames.v4("198.18.0.2"), proto: 6, length: len))
        #expect(r.frame.withUnsafeBytes { $0.baseAddress!.be16(50) } == expected)
        #expect(r.frame.withUnsafeBytes { Checksum.compute($0.baseAddress! + 14, count: 20) } == 0)
        // And a full checksum stays valid through the same NAT.
        let other = Frames.ipv4(src: "198.18.0.1", dst: "198.18.0.2", proto: 6,
                                l4: Frames.tcp(sport: 40009, dport: 80, seq: 1000, flags: TCPTests.syn, payload: 10))
        let full = h.run(other, nat: Self.snat("198.18.0.100"))
        #expect(full.frame != other)
        #expect(Frames.checksumsValid(full.frame))
    }
}

extension NATTests {
    static func bytes(_ hex: String) -> [UInt8] {
        var out: [UInt8] = []
        var i = hex.startIndex
        while i < hex.endIndex {
            let j = hex.index(i, offsetBy: 2)
            out.append(UInt8(hex[i..<j], radix: 16)!)
            i = j
        }
        return out
    }

    /// Byte for byte what OVS 3.1's userspace datapath sent (captured with netdev-dummy
    /// tx_pcap, flows ct(commit,zone=6,nat(src=198.18.0.100)) / ct(zone=6,nat)) for a
    /// port unreachable answering a SNATed UDP datagram.
    @Test func relatedErrorMatchesOVS() {
        let h = Harness()
        _ = h.run(UDPICMPTests.udp("198.18.0.1", "198.18.1.1", 5000, 53), zone: 6, nat: Self.snat("198.18.0.100"))
        let error = Self.bytes("020000000002020000000001080045000038000140004001ad3ac6120101c612006403031c3e0000000045000024000140004011ad3ec6120064c6120101138800350010ccf1")
        let r = h.run(error, zone: 6, commit: false, nat: Self.bare)
        #expect(r.state == [.tracked, .related, .replyDirection, .destinationNAT])
        #expect(r.frame == Self.bytes("020000000002020000000001080045000038000140004001ad9dc6120101c612000103031bdb0000000045000024000140004011ada1c6120001c6120101138800350010cd54"))
    }
}

extension NATTests {
    /// ICMPv6 packet too big for a SNATed IPv6 UDP flow: related, the quoted header and
    /// the outer destination go back to the client, the ICMPv6 checksum (pseudo-header
    /// over the new addresses) verifies.
    @Test func relatedICMPv6IsNATedInside() {
        let h = Harness()
        let nat = NATSpec(kind: .source, addresses: CTAddress(ipv6: Frames.v6("2001:db8::99"))...CTAddress(ipv6: Frames.v6("2001:db8::99")))
        let sent = h.run(Frames.ipv6(src: "2001:db8::1", dst: "2001:db8:1::1", proto: 17, l4: Frames.udp(sport: 4000, dport: 53)), nat: nat)
        let quoted = Array(sent.frame[14..<(14 + 48)])
        let error = Frames.ipv6(src: "2001:db8:2::1", dst: "2001:db8::99", proto: 58,
                                l4: [2, 0, 0, 0, 0, 0, 0x05, 0x00] + quoted)
        #expect(Frames.checksumsValid(error))
        let r = h.run(error, commit: false, nat: Self.bare)
        #expect(r.state == [.tracked, .related, .replyDirection, .destinationNAT])
        let p = r.frame
        #expect(p.withUnsafeBytes { $0.baseAddress!.be128(22) } == Frames.v6("2001:db8:2::1"))  // the router stays
        #expect(p.withUnsafeBytes { $0.baseAddress!.be128(38) } == Frames.v6("2001:db8::1"))
        #expect(p.withUnsafeBytes { $0.baseAddress!.be128(62 + 8) } == Frames.v6("2001:db8::1"))  // quoted source
        #expect(Frames.checksumsValid(p))
        #expect(r.key[.ipv6Dst] == Frames.v6("2001:db8::1"))
    }
}
