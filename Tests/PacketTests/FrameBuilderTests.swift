import Testing
@testable import Packet

/// FrameBuilder: the frame built from a key extracts back to the same packet fields,
/// with checksums a receiver accepts.
@Suite struct FrameBuilderTests {
    /// A key and a mask saying every packet field was given (no defaults apply).
    func given(_ fill: (inout FlowKey) -> Void) -> (FlowKey, FlowKey) {
        var k = FlowKey()
        k[.ethSrc] = 0x0200_0000_0001
        k[.ethDst] = 0x0200_0000_0002
        fill(&k)
        return (k, FlowKey.allOnes)
    }

    /// Builds, extracts, and compares every packet word (13 and up).
    func roundTrip(_ k: FlowKey, _ m: FlowKey, sourceLocation: SourceLocation = #_sourceLocation) throws -> [UInt8] {
        let frame = try FrameBuilder.build(key: k, mask: m)
        #expect(frame.count >= FrameBuilder.minimumFrame, sourceLocation: sourceLocation)
        let (back, offsets) = extract(frame)
        #expect(offsets != nil, sourceLocation: sourceLocation)
        for w in 13..<FlowKey.wordCount {
            #expect(back.words[w] == k.words[w], "word \(w)", sourceLocation: sourceLocation)
        }
        return frame
    }

    @Test func ipv4Transports() throws {
        for (proto, sport, dport): (UInt8, UInt64, UInt64) in [(6, 1000, 80), (17, 5353, 53), (132, 7, 9)] {
            let (k, m) = given {
                $0[.ethType] = 0x0800
                $0[.ipv4Src] = 0xC613_0001
                $0[.ipv4Dst] = 0xC613_0002
                $0[.ipProto] = UInt64(proto)
                $0[.ipTOS] = 0x10
                $0[.ipTTL] = 33
                $0[.tpSrc] = sport
                $0[.tpDst] = dport
                if proto == 6 { $0[.tcpFlags] = 0x012 }
            }
            let f = try roundTrip(k, m)
            #expect(verifyIPv4HeaderChecksum(f))
            if proto != 132 { #expect(verifyL4ChecksumIPv4(Array(f.prefix(14 + 20 + (proto == 6 ? 20 : 8))))) }
        }
    }

    @Test func icmpEchoChecksum() throws {
        let (k, m) = given {
            $0[.ethType] = 0x0800
            $0[.ipv4Src] = 0xC613_0001
            $0[.ipv4Dst] = 0xC613_0002
            $0[.ipProto] = 1
            $0[.ipTTL] = 64
            $0[.tpSrc] = 8
        }
        let f = try roundTrip(k, m)
        let icmpSum = f.withUnsafeBytes { Checksum.fold(Checksum.partialSum($0.baseAddress! + 34, count: 8)) }
        #expect(icmpSum == 0xffff)
    }

    @Test func fragmentsAndVLANs() throws {
        for frag in [FragmentType.first, .later] {
            let (k, m) = given {
                $0[.vlanTCI] = UInt64(0x2064 | VLAN.present)
                $0[.vlanTPID] = 0x88a8
                $0[.cvlanTCI] = UInt64(0x0005 | VLAN.present)
                $0[.cvlanTPID] = 0x8100
                $0[.ethType] = 0x0800
                $0[.ipv4Src] = 1
                $0[.ipv4Dst] = 2
                $0[.ipProto] = 17
                $0[.ipTTL] = 64
                $0[.ipFrag] = UInt64(frag.rawValue)
                if frag == .first { $0[.tpSrc] = 1; $0[.tpDst] = 2 }
            }
            _ = try roundTrip(k, m)
        }
    }

    @Test func ipv6AndNeighbourDiscovery() throws {
        let src: UInt128 = 0x2001_0db8 << 96 | 1, dst: UInt128 = 0x2001_0db8 << 96 | 2
        let (udp, m) = given {
            $0[.ethType] = 0x86dd
            $0[.ipv6Src] = src
            $0[.ipv6Dst] = dst
            $0[.ipv6Label] = 0x12345
            $0[.ipTOS] = 0x20
            $0[.ipTTL] = 255
            $0[.ipProto] = 17
            $0[.tpSrc] = 546
            $0[.tpDst] = 547
        }
        let f = try roundTrip(udp, m)
        #expect(verifyL4ChecksumIPv6(f, l3: 14, l4: 54, proto: 17))
        let (ns, _) = given {
            $0[.ethType] = 0x86dd
            $0[.ipv6Src] = src
            $0[.ipv6Dst] = dst
            $0[.ipTTL] = 255
            $0[.ipProto] = 58
            $0[.tpSrc] = 135
            $0[.ndTarget] = dst
            $0[.ndSLL] = 0x0200_0000_0001
        }
        let nsFrame = try roundTrip(ns, m)
        #expect(verifyL4ChecksumIPv6(nsFrame, l3: 14, l4: 54, proto: 58))
        let (later, _) = given {
            $0[.ethType] = 0x86dd
            $0[.ipv6Src] = src
            $0[.ipv6Dst] = dst
            $0[.ipTTL] = 64
            $0[.ipProto] = 44
            $0[.ipFrag] = UInt64(FragmentType.later.rawValue)
        }
        _ = try roundTrip(later, m)
    }

    @Test func arpAndOtherTypes() throws {
        let (arp, m) = given {
            $0[.ethType] = 0x0806
            $0[.ipProto] = 2
            $0[.arpSHA] = 0x0200_0000_0001
            $0[.arpTHA] = 0x0200_0000_0002
            $0[.ipv4Src] = 0xC613_0001
            $0[.ipv4Dst] = 0xC613_0002
        }
        _ = try roundTrip(arp, m)
        let (lldp, _) = given { $0[.ethType] = 0x88cc }
        _ = try roundTrip(lldp, m)
        let (llc, _) = given { $0[.ethType] = UInt64(EtherType.ieee8022) }
        _ = try roundTrip(llc, m)
    }

    @Test func defaultsForWhatWasNotGiven() throws {
        var k = FlowKey()
        k[.ethType] = 0x0800
        k[.ipProto] = 6
        var m = FlowKey()
        m[.ethType] = 0xffff
        m[.ipProto] = 0xff
        let (back, _) = extract(try FrameBuilder.build(key: k, mask: m))
        #expect(back[.ipTTL] == 64)
        var arp = FlowKey()
        arp[.ethType] = 0x0806
        var arpMask = FlowKey()
        arpMask[.ethType] = 0xffff
        let (a, _) = extract(try FrameBuilder.build(key: arp, mask: arpMask))
        #expect(a[.ipProto] == 1)   // a request
    }

    @Test func refusals() {
        #expect(throws: FrameBuilder.Failure.self) { try FrameBuilder.build(key: FlowKey(), mask: FlowKey()) }
        var k = FlowKey()
        k[.ethType] = 0x0100
        #expect(throws: FrameBuilder.Failure.self) { try FrameBuilder.build(key: k, mask: FlowKey.allOnes) }
    }
}
