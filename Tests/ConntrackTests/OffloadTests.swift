@testable import Conntrack
import Packet
import Testing

/// The hooks the hardware offload consumes.
struct OffloadTests {
    @Test func establishedThenRemoved() {
        let h = Harness()
        _ = h.run(TCPTests.fromClient(seq: 1000, flags: TCPTests.syn))
        _ = h.run(TCPTests.fromServer(seq: 5000, ack: 1001, flags: TCPTests.syn | TCPTests.ack))
        // Half-open: nothing yet.
        #expect(h.ct.takeOffloadEvents().isEmpty)
        _ = h.run(TCPTests.fromClient(seq: 1001, ack: 5001, flags: TCPTests.ack))
        let events = h.ct.takeOffloadEvents()
        guard events.count == 1, case .established(let snap) = events[0] else {
            Issue.record("expected one .established, got \(events)")
            return
        }
        #expect(snap.proto == 6 && snap.original.srcPort == 40000 && snap.reply.srcPort == 80)
        #expect(snap.originalState == trkEst && snap.replyState == trkEstRpl)
        #expect(snap.originalRewrite == snap.original && snap.replyRewrite == snap.reply)
        // Reported once.
        _ = h.run(TCPTests.fromClient(seq: 1001, ack: 5001, flags: TCPTests.ack, payload: 10))
        #expect(h.ct.takeOffloadEvents().isEmpty)
        _ = h.ct.flush(zone: nil, tuple: nil)
        #expect(h.ct.takeOffloadEvents() == [.removed(snap.id)])
    }

    @Test func snapshotCarriesNAT() {
        let h = Harness()
        let nat = NATTests.snat("198.18.0.100")
        _ = h.run(UDPICMPTests.udp("198.18.0.1", "198.18.1.1", 5000, 53), zone: 4, nat: nat, mark: (7, 0xff))
        #expect(h.ct.takeOffloadEvents().isEmpty)  // one direction only
        _ = h.run(UDPICMPTests.udp("198.18.1.1", "198.18.0.100", 53, 5000), zone: 4, nat: NATTests.bare)
        guard case .established(let s)? = h.ct.takeOffloadEvents().first else {
            Issue.record("no .established")
            return
        }
        #expect(s.zone == 4 && s.mark == 7)
        #expect(s.originalRewrite.src == NATTests.addr("198.18.0.100") && s.originalRewrite.dst == NATTests.addr("198.18.1.1"))
        #expect(s.reply.dst == NATTests.addr("198.18.0.100"))
        #expect(s.replyRewrite.dst == NATTests.addr("198.18.0.1") && s.replyRewrite.dstPort == 5000)
        #expect(s.originalState == [.tracked, .established, .sourceNAT])
        #expect(s.replyState == [.tracked, .established, .replyDirection, .destinationNAT])
    }

    @Test func hardwareActivityKeepsItAliveAndCounts() {
        let h = Harness()
        _ = h.run(UDPICMPTests.udp("198.18.0.1", "198.18.1.1", 5000, 53))
        _ = h.run(UDPICMPTests.udp("198.18.1.1", "198.18.0.1", 53, 5000))
        guard case .established(let s)? = h.ct.takeOffloadEvents().first else {
            Issue.record("no .established")
            return
        }
        h.ct.setOffloaded(id: s.id, true)
        let e = h.ct.entries(zone: nil, now: h.now)[0]
        #expect(ConnectionTracker.format(e, verbose: true, statistics: false).contains(",id=\(s.id),status=0x8000"))
        #expect(!ConnectionTracker.format(e, verbose: false, statistics: false).contains("status"))
        #expect(ConnectionTracker.formatStatistics(h.ct.statistics(zone: nil, now: h.now), verbose: false)
                    .hasSuffix("  UDP: 1\n  Offloaded to hardware: 1\n"))
        h.ct.setOffloaded(id: s.id, false)
        #expect(!ConnectionTracker.formatStatistics(h.ct.statistics(zone: nil, now: h.now), verbose: false).contains("Offloaded"))
        h.ct.setOffloaded(id: s.id, true)
        // UDP bidirectional: 30 s. Hardware traffic at 25 s refreshes it.
        h.advance(seconds: 25)
        h.ct.hardwareActivity(id: s.id, packets: (100, 50), bytes: (10_000, 5_000), lastUsed: h.now)
        h.advance(seconds: 25)
        #expect(h.ct.sweep(now: h.now) == 0)
        let after = h.ct.entries(zone: nil, now: h.now)[0]
        #expect(after.packets.orig == 101 && after.packets.reply == 51 && after.bytes.orig == 10_036)
        h.advance(seconds: 6)
        #expect(h.ct.sweep(now: h.now) == 1)
        #expect(h.ct.takeOffloadEvents() == [.removed(s.id)])
    }

    @Test func handBackFollowsTeardownWithStaleWindows() {
        let h = Harness()
        _ = TCPTests.handshake(h)
        guard case .established(let s)? = h.ct.takeOffloadEvents().first else {
            Issue.record("no .established")
            return
        }
        h.ct.setOffloaded(id: s.id, true)
        // Hardware carried 50 MB each way; software never saw those sequence numbers.
        let c = UInt32(1001 + 50_000_000), v = UInt32(5001 + 50_000_000)
        h.ct.handBack(id: s.id)
        #expect(h.run(TCPTests.fromClient(seq: c, ack: v, flags: TCPTests.fin | TCPTests.ack)).state == trkEst)
        #expect(h.run(TCPTests.fromServer(seq: v, ack: c + 1, flags: TCPTests.ack)).state == trkEstRpl)
        #expect(h.run(TCPTests.fromServer(seq: v, ack: c + 1, flags: TCPTests.fin | TCPTests.ack)).state == trkEstRpl)
        #expect(h.run(TCPTests.fromClient(seq: c + 1, ack: v + 1, flags: TCPTests.ack)).state == trkEst)
        let e = h.ct.entries(zone: nil, now: h.now)[0]
        #expect(e.tcpState?.orig == .finWait2 && e.tcpState?.reply == .finWait2 && !e.offloaded)
        // No new .established for it; its removal is still reported.
        #expect(h.ct.takeOffloadEvents().isEmpty)
        h.advance(seconds: 31)
        _ = h.ct.sweep(now: h.now)
        #expect(h.ct.takeOffloadEvents() == [.removed(s.id)])
    }

    /// What the hardware counted up to its leaving is added to the software counts, and
    /// a later offload starts its hardware counts from zero without losing them.
    @Test func leavingTheHardwareKeepsItsCounts() {
        let h = Harness()
        _ = h.run(UDPICMPTests.udp("198.18.0.1", "198.18.1.1", 5000, 53))
        _ = h.run(UDPICMPTests.udp("198.18.1.1", "198.18.0.1", 53, 5000))
        guard case .established(let s)? = h.ct.takeOffloadEvents().first else {
            Issue.record("no .established")
            return
        }
        h.ct.setOffloaded(id: s.id, true)
        h.ct.hardwareActivity(id: s.id, packets: (10, 5), bytes: (1000, 500), lastUsed: h.now)
        h.ct.leftHardware(id: s.id, packets: (100, 50), bytes: (10_000, 5_000), lastUsed: h.now, closing: false)
        var e = h.ct.entries(zone: nil, now: h.now)[0]
        #expect(e.packets == (101, 51) && e.bytes.orig == 10_036 && !e.offloaded)
        // Dropped by the eSwitch, not closing: its next packet offers it again.
        _ = h.run(UDPICMPTests.udp("198.18.0.1", "198.18.1.1", 5000, 53))
        guard case .established(let again)? = h.ct.takeOffloadEvents().first, again.id == s.id else {
            Issue.record("not offered again")
            return
        }
        h.ct.setOffloaded(id: s.id, true)
        h.ct.hardwareActivity(id: s.id, packets: (7, 0), bytes: (700, 0), lastUsed: h.now)
        e = h.ct.entries(zone: nil, now: h.now)[0]
        #expect(e.packets == (109, 51) && e.offloaded)
    }

    /// A refused connection is offered again by its packets, at most once per retry
    /// interval, or at once when room appears; never when the hardware cannot hold it.
    @Test func aRefusedConnectionIsOfferedAgainByItsPacketsBounded() {
        let h = Harness()
        let out = UDPICMPTests.udp("198.18.0.1", "198.18.1.1", 5000, 53)
        _ = h.run(out)
        _ = h.run(UDPICMPTests.udp("198.18.1.1", "198.18.0.1", 53, 5000))
        guard case .established(let s)? = h.ct.takeOffloadEvents().first else {
            Issue.record("no .established")
            return
        }
        // Before any refusal is noted the report stands: no repeats.
        _ = h.run(out)
        #expect(h.ct.takeOffloadEvents().isEmpty)
        h.ct.offloadRefused(id: s.id, retryAfter: 5_000_000_000)
        for _ in 0..<10 { _ = h.run(out) }
        #expect(h.ct.takeOffloadEvents().isEmpty)
        h.advance(seconds: 5)
        _ = h.run(out)
        _ = h.run(out)
        #expect(h.ct.takeOffloadEvents().count == 1)
        h.ct.offloadRefused(id: s.id, retryAfter: 5_000_000_000)
        h.ct.allowOffloadRetry([s.id])
        _ = h.run(out)
        #expect(h.ct.takeOffloadEvents().count == 1)
        h.ct.offloadRefused(id: s.id, retryAfter: nil)
        h.ct.allowOffloadRetry([s.id])
        h.advance(seconds: 20)
        _ = h.run(out)
        #expect(h.ct.takeOffloadEvents().isEmpty)
    }

    /// Offloaded connections about to expire are listed for the driver to read first.
    @Test func offloadedConnectionsAboutToExpireAreListed() {
        let h = Harness()
        _ = h.run(UDPICMPTests.udp("198.18.0.1", "198.18.1.1", 5000, 53))
        _ = h.run(UDPICMPTests.udp("198.18.1.1", "198.18.0.1", 53, 5000))
        guard case .established(let s)? = h.ct.takeOffloadEvents().first else {
            Issue.record("no .established")
            return
        }
        #expect(h.ct.offloadedConnections(expiringBy: h.now + 31_000_000_000).isEmpty)
        h.ct.setOffloaded(id: s.id, true)
        #expect(h.ct.offloadedConnections(expiringBy: h.now + 29_000_000_000).isEmpty)
        #expect(h.ct.offloadedConnections(expiringBy: h.now + 31_000_000_000) == [s.id])
    }

    @Test func withoutHandBackStaleSegmentsAreInvalid() {
        let h = Harness()
        _ = TCPTests.handshake(h)
        let c = UInt32(1001 + 50_000_000), v = UInt32(5001 + 50_000_000)
        #expect(h.run(TCPTests.fromClient(seq: c, ack: v, flags: TCPTests.fin | TCPTests.ack)).state == trkInv)
    }
}
