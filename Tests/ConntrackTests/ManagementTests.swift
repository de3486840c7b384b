@testable import Conntrack
import Packet
import Testing

/// Limits, flush, dump text, statistics.
struct ManagementTests {
    static func udp(_ i: Int, zone: UInt16 = 0, _ h: Harness, commit: Bool = true) -> CTState {
        h.run(UDPICMPTests.udp("198.18.0.\(i)", "198.18.1.1", 5000, 53), zone: zone, commit: commit).state
    }

    @Test func maxConnections() {
        let h = Harness()
        #expect(h.ct.maxConnections == 3_000_000)
        h.ct.maxConnections = 2
        #expect(Self.udp(1, h) == trkNew && Self.udp(2, h) == trkNew)
        // Over the limit the commit fails: trk|new, no connection, counted.
        #expect(Self.udp(3, h) == trkNew)
        #expect(h.ct.connectionCount == 2)
        #expect(h.ct.statistics(zone: nil, now: h.now).refusedCommits == 1)
        _ = h.ct.flush(zone: nil, tuple: nil)
        #expect(Self.udp(3, h) == trkNew && h.ct.connectionCount == 1)
    }

    @Test func zoneLimits() {
        let h = Harness()
        h.ct.setZoneLimit(zone: 5, limit: 1)
        #expect(Self.udp(1, zone: 5, h) == trkNew)
        #expect(Self.udp(2, zone: 5, h) == trkNew)
        #expect(Self.udp(2, zone: 6, h) == trkNew)
        #expect(h.ct.entries(zone: 5, now: h.now).count == 1 && h.ct.entries(zone: 6, now: h.now).count == 1)
        let l = h.ct.zoneLimits()
        #expect(ConnectionTracker.formatZoneLimits(defaultLimit: l.defaultLimit, zones: l.zones) == "default limit=0\nzone=5,limit=1,count=1")
        // A default limit covers zones without their own, with one shared count.
        h.ct.setZoneLimit(zone: nil, limit: 2)
        #expect(Self.udp(3, zone: 7, h) == trkNew)
        #expect(Self.udp(4, zone: 8, h) == trkNew)
        #expect(Self.udp(5, zone: 9, h) == trkNew)
        #expect(h.ct.connectionCount == 4)
        let q = h.ct.zoneLimits(zones: [5, 7])
        #expect(ConnectionTracker.formatZoneLimits(defaultLimit: q.defaultLimit, zones: q.zones)
                == "default limit=2\nzone=5,limit=1,count=1\nzone=7,limit=2,count=2")  // the default's count: zones 7 and 8
        // Removing connections frees their slots.
        #expect(h.ct.flush(zone: 5, tuple: nil) == 1)
        #expect(Self.udp(9, zone: 5, h) == trkNew && h.ct.entries(zone: 5, now: h.now).count == 1)
    }

    @Test func flushByZoneAndTuple() throws {
        let h = Harness()
        for i in 1...3 { _ = Self.udp(i, zone: 1, h) }
        for i in 1...2 { _ = Self.udp(i, zone: 2, h) }
        _ = h.run(TCPTests.fromClient(seq: 1, flags: TCPTests.syn), zone: 2)
        #expect(h.ct.flush(zone: 1, tuple: nil) == 3)
        #expect(h.ct.connectionCount == 3)
        let byProto = try CTTupleFilter.parse(original: "ct_nw_proto=17")
        #expect(h.ct.flush(zone: nil, tuple: byProto) == 2)
        #expect(h.ct.connectionCount == 1)
        // A full 5-tuple without a zone means zone 0, as in OVS: nothing there.
        let five = try CTTupleFilter.parse(original: "ct_nw_src=198.18.0.1,ct_nw_dst=198.18.0.2,ct_nw_proto=6,ct_tp_src=40000,ct_tp_dst=80")
        #expect(h.ct.flush(zone: nil, tuple: five) == 0)
        #expect(h.ct.flush(zone: 2, tuple: five) == 1)
        // Reply-side match.
        _ = Self.udp(4, zone: 3, h)
        let reply = try CTTupleFilter.parse(original: "", reply: "ct_nw_src=198.18.1.1,ct_nw_dst=198.18.0.4")
        #expect(h.ct.flush(zone: nil, tuple: reply) == 1)
        #expect(h.ct.flush(zone: nil, tuple: nil) == 0)
    }

    /// OVS compares ICMP id/type/code only when the filter's protocol is ICMP; a filter
    /// without protocol matches ICMP connections by address, and a full ICMP 5-tuple
    /// (no reply side) names its connection directly.
    @Test func flushICMPConnections() throws {
        let h = Harness()
        func ping(_ src: String, id: UInt16) {
            h.run(Frames.ipv4(src: src, dst: "198.18.1.1", proto: 1, l4: Frames.icmp(type: 8, id: id)))
        }
        ping("198.18.0.1", id: 7)
        ping("198.18.0.2", id: 9)
        #expect(h.ct.connectionCount == 2)
        let bySource = try CTTupleFilter.parse(original: "ct_nw_src=198.18.0.1")
        #expect(h.ct.flush(zone: nil, tuple: bySource) == 1)
        let five = try CTTupleFilter.parse(
            original: "ct_nw_src=198.18.0.2,ct_nw_dst=198.18.1.1,ct_nw_proto=1,icmp_id=9,icmp_type=8,icmp_code=0")
        #expect(h.ct.flush(zone: nil, tuple: five) == 1)
        #expect(h.ct.connectionCount == 0)
        // conntrack_flush_tuple looks the 5-tuple up in either direction.
        _ = Self.udp(4, h)
        let replyFive = try CTTupleFilter.parse(
            original: "ct_nw_src=198.18.1.1,ct_nw_dst=198.18.0.4,ct_nw_proto=17,ct_tp_src=53,ct_tp_dst=5000")
        #expect(h.ct.flush(zone: nil, tuple: replyFive) == 1)
    }

    @Test func tupleParseErrors() {
        func error(_ s: String) -> CTTupleFilter.ParseError? {
            do { _ = try CTTupleFilter.parse(original: s); return nil } catch { return error }
        }
        #expect(error("ct_nw_src=198.18.0.1,ct_tp_src=80") == .init(position: 0, message: "port is set without protocol"))
        #expect(error("ct_nw_src=198.18.0") == .init(position: 0, message: "failed to parse field ct_nw_src"))
        #expect(error("ct_nw_src=198.18.0.1,bogus=1") == .init(position: 21, message: "invalid conntrack tuple field: bogus"))
        #expect(error("ct_nw_proto=6,ct_tp_dst=") == .init(position: 14, message: "field ct_tp_dst missing value"))
        #expect(error("ct_nw_src=198.18.0.1,ct_ipv6_dst=2001:db8::1") == .init(position: 21, message: "the L3 protocol does not match 2001:db8::1"))
        #expect(error("ct_nw_proto=6,icmp_type=8") == .init(position: 14, message: "invalid L4 fields"))
        let ok = try? CTTupleFilter.parse(original: "ct_ipv6_src=2001:db8::1,ct_nw_proto=58,icmp_type=128,icmp_id=3")
        #expect(ok?.original.src == Frames.v6("2001:db8::1") && ok?.original.icmpID == 3 && ok?.isIPv6 == true)
    }

    @Test func dumpText() {
        let h = Harness()
        _ = TCPTests.handshake(h, zone: 5)
        _ = h.run(TCPTests.fromClient(seq: 1001, ack: 5001, flags: TCPTests.ack), zone: 5, mark: (3, 0xffff_ffff))
        _ = h.run(UDPICMPTests.udp("198.18.0.1", "198.18.1.1", 5000, 53), label: (0xab00, UInt128.max))
        h.advance(seconds: 10)
        let e = h.ct.entries(zone: nil, now: h.now)
        #expect(e.count == 2)
        let tcp = e[0], udp = e[1]
        #expect(ConnectionTracker.format(tcp, verbose: false, statistics: false)
                == "tcp,orig=(src=198.18.0.1,dst=198.18.0.2,sport=40000,dport=80),reply=(src=198.18.0.2,dst=198.18.0.1,sport=80,dport=40000),zone=5,mark=3,protoinfo=(state=ESTABLISHED)")
        #expect(ConnectionTracker.format(tcp, verbose: true, statistics: false)
                == "tcp,orig=(src=198.18.0.1,dst=198.18.0.2,sport=40000,dport=80),reply=(src=198.18.0.2,dst=198.18.0.1,sport=80,dport=40000),id=\(tcp.id),zone=5,status=0,mark=3,protoinfo=(state_orig=ESTABLISHED,state_reply=ESTABLISHED,flags_orig=0,flags_reply=0)")
        #expect(ConnectionTracker.format(tcp, verbose: false, statistics: true)
                == "tcp,orig=(src=198.18.0.1,dst=198.18.0.2,sport=40000,dport=80,packets=3,bytes=120),reply=(src=198.18.0.2,dst=198.18.0.1,sport=80,dport=40000,packets=1,bytes=40),zone=5,timeout=86390,mark=3,protoinfo=(state=ESTABLISHED)")
        #expect(ConnectionTracker.format(udp, verbose: false, statistics: true)
                == "udp,orig=(src=198.18.0.1,dst=198.18.1.1,sport=5000,dport=53,packets=1,bytes=36),reply=(src=198.18.1.1,dst=198.18.0.1,sport=53,dport=5000),timeout=50,labels=0xab00")
        // Zone filter.
        #expect(h.ct.entries(zone: 5, now: h.now).map(\.id) == [tcp.id])
    }

    @Test func statisticsText() {
        let h = Harness()
        _ = TCPTests.handshake(h)
        _ = h.run(TCPTests.fromClient(seq: 1, flags: TCPTests.syn), zone: 1)
        _ = h.run(UDPICMPTests.udp("198.18.0.1", "198.18.1.1", 5000, 53))
        _ = h.run(Frames.ipv4(src: "198.18.0.1", dst: "198.18.0.2", proto: 1, l4: Frames.icmp(type: 8, id: 1)))
        _ = h.run(Frames.ipv6(src: "2001:db8::1", dst: "2001:db8::2", proto: 58, l4: Frames.icmp(type: 128, id: 1)))
        _ = h.run(Frames.ipv4(src: "198.18.0.1", dst: "198.18.0.2", proto: 47, l4: [0, 0, 8, 0]))
        let st = h.ct.statistics(zone: nil, now: h.now)
        #expect(ConnectionTracker.formatStatistics(st, verbose: false)
                == "Connections Stats:\n    Total: 6\n  TCP: 2\n  UDP: 1\n  ICMP: 1\n  Other: 1\n")
        #expect(ConnectionTracker.formatStatistics(st, verbose: true)
                == "Connections Stats:\n    Total: 6\n  TCP: 2\n    Conn per TCP states:\n\t  [SYN_SENT]=1\n\t  [ESTABLISHED]=1\n  UDP: 1\n  ICMP: 1\n  Other: 1\n")
        #expect(h.ct.statistics(zone: 1, now: h.now).total == 1)
    }
}

extension ManagementTests {
    @Test func statisticsWithoutClockUseTheLatestSeen() {
        let h = Harness()
        _ = Self.udp(1, h)
        #expect(h.ct.statistics(zone: nil).total == 1)
        h.advance(seconds: 61)
        _ = h.ct.sweep(now: h.now - 30_000_000_000)  // a sweep that removes nothing moves the clock
        #expect(h.ct.statistics(zone: nil).total == 1)
        _ = Self.udp(2, h, commit: false)
        #expect(h.ct.statistics(zone: nil).total == 0)
    }

    /// The packet thread and the control thread at once: no lost connections, no races
    /// (the state is behind one mutex).
    @Test func concurrentPacketsAndControl() async {
        let ct = ConnectionTracker()
        let frames = (1...200).map { i in
            UDPICMPTests.udp("198.18.\(i / 100).\(i % 100 + 1)", "198.18.1.1", 5000, 53)
        }
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                for f in frames {
                    var frame = f
                    var key = FlowKey()
                    var a = CTAction()
                    a.commit = true
                    frame.withUnsafeMutableBytes { raw in
                        let o = (try? FlowExtractor.extract(raw.baseAddress!, length: raw.count, into: &key).get()) ?? HeaderOffsets()
                        ct.execute(a, frame: raw.baseAddress!, length: raw.count, offsets: o, key: &key, now: 1_000)
                    }
                }
            }
            group.addTask {
                for _ in 0..<200 {
                    _ = ct.entries(zone: nil, now: 1_000)
                    _ = ct.statistics(zone: nil, now: 1_000)
                    _ = ct.sweep(now: 1_000)
                    _ = ct.takeOffloadEvents()
                }
            }
        }
        #expect(ct.connectionCount == 200)
    }
}
