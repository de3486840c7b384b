import Conntrack
import ESwitch
import Foundation
import NetLinux
import ODP
@testable import OVSDatapath
import Packet
import Testing

/// How a connection leaves the hardware CT table and comes back, against the in-memory
/// data plane: the zone's last rule going, what the hardware counted since the last poll,
/// expiry while the hardware carries it, and offload retried once there is room.
struct ConntrackLifecycleTests {
    typealias P = OffloadPathTests
    typealias C = ConntrackOffloadTests

    static let second: UInt64 = 1_000_000_000
    static let preUDP = "recirc_id(0),in_port(1),ct_state(-trk),eth(),eth_type(0x0800),ipv4(proto=17,frag=no),udp()"

    /// Ethernet + IPv4 + UDP between 198.18.0.1:5000 and 198.18.0.2:53 (8 bytes of payload).
    static func udp(reply: Bool = false) -> [UInt8] {
        let (sp, dpt): (UInt16, UInt16) = reply ? (53, 5000) : (5000, 53)
        return TestFrames.ipv4(proto: IPProto.udp, l4Length: 16, reply: reply) { p, _, _ in
            p.setBE16(34, sp)
            p.setBE16(36, dpt)
            p.setBE16(38, 16)
            // Checksum 0: none (IPv4 UDP).
        }
    }

    static func entry(_ d: Datapath, sport: UInt16 = 40000, now: UInt64) -> CTEntry? {
        d.conntrack.entries(zone: nil, now: now).first { $0.original.srcPort == sport || $0.original.dstPort == 53 }
    }

    // MARK: Bug 1: the zone's last rule takes its connections out of the hardware

    @Test func theLastRuleOfAZoneTakesItsConnectionsOutOfTheHardwareAtOnce() throws {
        var profile = HardwareProfile()
        profile.ctEntries = 2
        let (d, sw, dp) = try P.datapath(profile: profile)
        let pre = try C.put(d, C.preCT, "ct(zone=1),recirc(5)")
        let now = Sys.monotonicNanoseconds()
        C.handshake(d, now: now)
        d.tick(now: now)
        let c = try #require(dp.connections.values.first)
        #expect(sw.tables.ctPool.occupancy == 2)
        // Counted by the hardware, never polled: carried into the tracker as it leaves.
        dp.counters[c.originalCounter] = RuleCounters(packets: 700, bytes: 70_000, lastUsedNanoseconds: now)
        dp.counters[c.replyCounter] = RuleCounters(packets: 300, bytes: 30_000, lastUsedNanoseconds: now)
        d.deleteFlow(pre)
        sw.drainHardware()
        // No tick in between: no rule looks zone 1 up any more, so nothing may hold its entries.
        #expect(dp.connections.isEmpty)
        #expect(sw.tables.ctPool.occupancy == 0)
        let e = try #require(Self.entry(d, now: now))
        #expect(!e.offloaded)
        #expect(e.packets.orig >= 700 && e.packets.reply >= 300)
        #expect(e.bytes.orig >= 70_000 && e.bytes.reply >= 30_000)
        // Room for a connection of another zone.
        _ = try C.put(d, C.preCT.replacingOccurrences(of: "in_port(1)", with: "in_port(2)"), "ct(zone=5),recirc(6)")
        for f in [C.tcp(sport: 41000, flags: 0x02, seq: 100, ack: 0), C.tcp(reply: true, sport: 41000, flags: 0x12, seq: 500, ack: 101),
                       C.tcp(sport: 41000, flags: 0x10, seq: 101, ack: 501)] {
            Self.track(d, f, zone: 5, commit: true, now: now)
        }
        d.tick(now: now)
        #expect(sw.connections.refusals.full == 0)
        #expect(dp.connections.values.map(\.spec.original.tuple.zone) == [5])
    }

    @Test func aRuleOfTheZoneThatStaysKeepsItsConnections() throws {
        let (d, _, dp) = try P.datapath()
        let pre = try C.put(d, C.preCT, "ct(zone=1),recirc(5)")
        _ = try C.put(d, C.preCT.replacingOccurrences(of: "in_port(1)", with: "in_port(2)"), "ct(zone=1),recirc(6)")
        let now = Sys.monotonicNanoseconds()
        C.handshake(d, now: now)
        d.tick(now: now)
        #expect(dp.connections.count == 1)
        d.deleteFlow(pre)
        d.tick(now: now)
        #expect(dp.connections.count == 1)
        #expect(Self.entry(d, now: now)?.offloaded == true)
    }

    // MARK: Bug 2: what the hardware counted since the last poll is kept

    /// A TCP connection offloaded (its handshake tracked in software), its counts then.
    static func offloadedTCP() throws -> (d: Datapath, dp: InMemoryDataPlane, c: DataPlaneConnection, before: CTEntry, now: UInt64) {
        let (d, _, dp) = try P.datapath()
        _ = try C.put(d, C.preCT, "ct(zone=1),recirc(5)")
        let now = Sys.monotonicNanoseconds()
        C.handshake(d, now: now)
        d.tick(now: now)
        let c = try #require(dp.connections.values.first)
        return (d, dp, c, try #require(entry(d, now: now)), now)
    }

    /// Exact: the software's counts plus what the entries counted, once.
    @Test func aHandBackCarriesTheCountsSinceTheLastPoll() throws {
        let (d, dp, c, before, now) = try Self.offloadedTCP()
        dp.counters[c.originalCounter] = RuleCounters(packets: 10, bytes: 1000, lastUsedNanoseconds: now)
        d.pollHardwareCounters()
        // The FIN hit the entry after a lot more data.
        dp.counters[c.originalCounter] = RuleCounters(packets: 2_500_000, bytes: 3_770_000_000, lastUsedNanoseconds: now)
        dp.counters[c.replyCounter] = RuleCounters(packets: 1_200_000, bytes: 62_000_000, lastUsedNanoseconds: now)
        dp.handedBack.insert(c.spec.id)
        d.pollHardwareCounters()
        #expect(dp.connections.isEmpty)
        let e = try #require(Self.entry(d, now: now))
        #expect(!e.offloaded)
        #expect(e.bytes.orig == before.bytes.orig + 3_770_000_000 && e.bytes.reply == before.bytes.reply + 62_000_000, "\(e.bytes)")
        #expect(e.packets.orig == before.packets.orig + 2_500_000 && e.packets.reply == before.packets.reply + 1_200_000)
    }

    /// The FIN reaches software (which reports the connection closing) before the poll
    /// reads the hand-back: the removal must read the counters too.
    @Test func aConnectionClosingInSoftwareCarriesTheCountsSinceTheLastPoll() throws {
        let (d, dp, c, before, now) = try Self.offloadedTCP()
        dp.counters[c.originalCounter] = RuleCounters(packets: 40_000, bytes: 60_000_000, lastUsedNanoseconds: now)
        dp.counters[c.replyCounter] = RuleCounters(packets: 20_000, bytes: 1_000_000, lastUsedNanoseconds: now)
        let fin = C.tcp(flags: 0x11, seq: 101 + 60_000_000, ack: 501 + 1_000_000)
        C.track(d, fin, commit: true, now: now)
        d.settleConntrackOffload()
        #expect(dp.connections.isEmpty)
        let e = try #require(Self.entry(d, now: now))
        // The FIN itself counted in software, on top (its IP length, as conntrack counts).
        #expect(e.packets.orig == before.packets.orig + 40_000 + 1 && e.packets.reply == before.packets.reply + 20_000)
        #expect(e.bytes.orig == before.bytes.orig + 60_000_000 + UInt64(fin.count - 14) && e.bytes.reply == before.bytes.reply + 1_000_000,
                "\(e.bytes)")
    }

    // MARK: Bug 3: expiry reads the hardware first

    /// A UDP stream the hardware carries (server to client, after one request), with a
    /// counter poll longer than the UDP timeout: the hardware's activity keeps it.
    @Test func anOffloadedConnectionActiveInHardwareDoesNotExpire() throws {
        let (d, sw, dp) = try P.datapath()
        sw.params.statsIntervalMilliseconds = 60_000
        _ = try C.put(d, Self.preUDP, "ct(zone=1),recirc(5)")
        let t0 = Sys.monotonicNanoseconds()
        Self.track(d, Self.udp(), commit: true, now: t0)
        Self.track(d, Self.udp(reply: true), commit: true, now: t0)
        d.tick(now: t0)
        let c = try #require(dp.connections.values.first)
        #expect(Self.entry(d, now: t0)?.offloaded == true)
        // 4 packets a second from the server, every second, for 45 s: only the hardware sees them.
        for s in 1...45 {
            let now = t0 + UInt64(s) * Self.second
            dp.counters[c.replyCounter] = RuleCounters(packets: UInt64(4 * s), bytes: UInt64(4 * s * 36),
                                                       lastUsedNanoseconds: now)
            d.tick(now: now)
            #expect(!dp.connections.isEmpty, "cut after \(s) s")
            if dp.connections.isEmpty { return }
        }
        let e = try #require(Self.entry(d, now: t0 + 45 * Self.second))
        #expect(e.offloaded)
        // Idle from then on: it expires a UDP timeout (30 s) later, and leaves the hardware.
        d.tick(now: t0 + 70 * Self.second)
        #expect(!dp.connections.isEmpty)
        d.tick(now: t0 + 77 * Self.second)
        #expect(dp.connections.isEmpty)
        #expect(Self.entry(d, now: t0 + 77 * Self.second) == nil)
    }

    // MARK: Bug 4: offload is retried

    @Test func aConnectionRefusedAsFullIsOffloadedOnceThereIsRoom() throws {
        var profile = HardwareProfile()
        profile.ctEntries = 2
        let (d, sw, dp) = try P.datapath(profile: profile)
        _ = try C.put(d, C.preCT, "ct(zone=1),recirc(5)")
        let now = Sys.monotonicNanoseconds()
        C.handshake(d, now: now)                 // A
        C.handshake(d, sport: 40001, now: now)   // B: refused
        d.tick(now: now)
        #expect(dp.connections.count == 1 && sw.connections.refusals.full == 1)
        // B's packets while the table stays full: not one retry a packet.
        for i in 0..<20 {
            C.track(d, C.tcp(sport: 40001, flags: 0x10, seq: 101 + UInt32(i), ack: 501), commit: true, now: now)
            d.tick(now: now)
        }
        #expect(sw.connections.refusals.full == 1)
        // A closes (in software, before the hand-back is polled).
        C.track(d, C.tcp(flags: 0x11, seq: 101, ack: 501), commit: true, now: now)
        d.tick(now: now)
        #expect(sw.tables.ctPool.occupancy == 0)
        // B sends on: it goes to the hardware.
        let later = now + 2 * Self.second
        C.track(d, C.tcp(sport: 40001, flags: 0x10, seq: 200, ack: 501), commit: true, now: later)
        d.tick(now: later)
        #expect(dp.connections.count == 1)
        #expect(d.conntrack.entries(zone: nil, now: later).first { $0.original.srcPort == 40001 }?.offloaded == true)
    }

    /// Refused for want of counters while the CT table has room: it waits for its retry
    /// time, not offered again on every packet (room is measured in the CT table).
    @Test func aConnectionRefusedForCountersIsNotRetriedEveryPacket() throws {
        var profile = HardwareProfile()
        profile.counters = 2   // the pre-ct rule takes one; a connection needs two
        let (d, sw, dp) = try P.datapath(profile: profile)
        _ = try C.put(d, C.preCT, "ct(zone=1),recirc(5)")
        let now = Sys.monotonicNanoseconds()
        C.handshake(d, now: now)
        d.tick(now: now)
        #expect(dp.connections.isEmpty && sw.connections.refusals.full == 1)
        #expect(sw.tables.ctPool.available > 0)
        for i in 0..<20 {
            C.track(d, C.tcp(flags: 0x10, seq: 101 + UInt32(i), ack: 501), commit: true, now: now)
            d.tick(now: now)
        }
        #expect(sw.connections.refusals.full == 1)
    }

    @Test func aConnectionComesBackToTheHardwareAfterALegacyRoundTrip() throws {
        let (d, sw, dp) = try P.datapath()
        _ = try C.put(d, Self.preUDP, "ct(zone=1),recirc(5)")
        let now = Sys.monotonicNanoseconds()
        Self.track(d, Self.udp(), commit: true, now: now)
        Self.track(d, Self.udp(reply: true), commit: true, now: now)
        d.tick(now: now)
        #expect(dp.connections.count == 1)
        try sw.setMode(.legacy)
        d.tick(now: now)
        #expect(Self.entry(d, now: now)?.offloaded == false)
        try sw.setMode(.switchdev)
        _ = try C.put(d, Self.preUDP.replacingOccurrences(of: "in_port(1)", with: "in_port(2)"), "ct(zone=1),recirc(6)")
        // Its packets come up the representors again: offered to the hardware again.
        let later = now + 2 * Self.second
        Self.track(d, Self.udp(), commit: true, now: later)
        d.tick(now: later)
        #expect(dp.connections.count == 1)
        #expect(Self.entry(d, now: later)?.offloaded == true)
    }

    static func track(_ d: Datapath, _ frame: [UInt8], zone: UInt16 = 1, commit: Bool, now: UInt64) {
        var f = frame
        var key = FlowKey()
        f.withUnsafeMutableBytes { r in
            guard case .success(let o) = FlowExtractor.extract(r.baseAddress!, length: r.count, into: &key) else { return }
            var ct = CTAction()
            ct.zone = zone
            ct.commit = commit
            d.conntrack.execute(ct, frame: r.baseAddress!, length: r.count, offsets: o, key: &key, now: now)
        }
    }
}
