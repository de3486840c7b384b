@testable import Conntrack
import Packet
import Testing

/// TCP through the tracker: OVS's conntrack-tcp.c states, windows and timeouts. The
/// ct_state sequences, dump lines and timeouts of the handshake, window-scale, window,
/// RST, FIN, flag and mid-stream cases were checked against OVS 3.1's userspace datapath
/// fed the same frames (netdev-dummy/receive).
struct TCPTests {
    static let client = "198.18.0.1", server = "198.18.0.2"

    static func fromClient(seq: UInt32, ack: UInt32 = 0, flags: UInt16, payload: Int = 0, options: [UInt8] = []) -> [UInt8] {
        Frames.ipv4(src: client, dst: server, proto: 6,
                    l4: Frames.tcp(sport: 40000, dport: 80, seq: seq, ack: ack, flags: flags, payload: payload, options: options))
    }

    static func fromServer(seq: UInt32, ack: UInt32 = 0, flags: UInt16, payload: Int = 0, options: [UInt8] = []) -> [UInt8] {
        Frames.ipv4(src: server, dst: client, proto: 6,
                    l4: Frames.tcp(sport: 80, dport: 40000, seq: seq, ack: ack, flags: flags, payload: payload, options: options))
    }

    static let syn: UInt16 = 0x02, ack: UInt16 = 0x10, fin: UInt16 = 0x01, rst: UInt16 = 0x04, psh: UInt16 = 0x08

    /// SYN, SYN+ACK, ACK: client seq 1000, server seq 5000.
    static func handshake(_ h: Harness, zone: UInt16 = 0, nat: NATSpec? = nil) -> [CTState] {
        [h.run(fromClient(seq: 1000, flags: syn), zone: zone, nat: nat).state,
         h.run(fromServer(seq: 5000, ack: 1001, flags: syn | ack), zone: zone, nat: nat.map { _ in NATSpec(kind: .none) }).state,
         h.run(fromClient(seq: 1001, ack: 5001, flags: ack), zone: zone, nat: nat.map { _ in NATSpec(kind: .none) }).state]
    }

    static func tcpState(_ h: Harness) -> (TCPState, TCPState)? {
        h.ct.entries(zone: nil, now: h.now).first.flatMap { $0.tcpState.map { ($0.orig, $0.reply) } }
    }

    @Test func handshakeStates() {
        let h = Harness()
        #expect(Self.handshake(h) == [trkNew, trkEstRpl, trkEst])
        let s = Self.tcpState(h)
        #expect(s?.0 == .established && s?.1 == .established)
        #expect(h.ct.entries(zone: nil, now: h.now).first?.timeout == 86_400)
        // Data both ways stays established.
        #expect(h.run(Self.fromClient(seq: 1001, ack: 5001, flags: Self.ack | Self.psh, payload: 100)).state == trkEst)
        #expect(h.run(Self.fromServer(seq: 5001, ack: 1101, flags: Self.ack, payload: 10)).state == trkEstRpl)
    }

    @Test func uncommittedSynIsNotRemembered() {
        let h = Harness()
        #expect(h.run(Self.fromClient(seq: 1000, flags: Self.syn), commit: false).state == trkNew)
        #expect(h.run(Self.fromClient(seq: 1000, flags: Self.syn), commit: false).state == trkNew)
        #expect(h.ct.connectionCount == 0)
        // A SYN+ACK cannot start a connection: invalid.
        #expect(h.run(Self.fromServer(seq: 5000, ack: 1001, flags: Self.syn | Self.ack)).state == trkInv)
    }

    @Test func invalidFlagCombinations() {
        let h = Harness()
        _ = Self.handshake(h)
        #expect(h.run(Self.fromClient(seq: 1001, ack: 5001, flags: Self.syn | Self.fin)).state == trkInv)
        #expect(h.run(Self.fromClient(seq: 1001, flags: 0)).state == trkInv)
        #expect(h.run(Self.fromClient(seq: 1001, flags: Self.fin)).state == trkInv)
    }

    @Test func outOfWindowSegmentIsInvalid() {
        let h = Harness()
        _ = Self.handshake(h)
        // The server allowed 65535 bytes past 1001.
        #expect(h.run(Self.fromClient(seq: 1001 + 200_000, ack: 5001, flags: Self.ack, payload: 100)).state == trkInv)
        // An ack far ahead of anything the server sent.
        #expect(h.run(Self.fromClient(seq: 1001, ack: 5001 + 500_000, flags: Self.ack, payload: 10)).state == trkInv)
        // In-window still passes, and with the check off anything goes.
        #expect(h.run(Self.fromClient(seq: 1001, ack: 5001, flags: Self.ack, payload: 100)).state == trkEst)
        h.ct.tcpSequenceCheck = false
        #expect(h.run(Self.fromClient(seq: 1001 + 200_000, ack: 5001, flags: Self.ack, payload: 100)).state == trkEst)
    }

    @Test func windowScaleIsHonoured() {
        let h = Harness()
        let wscale7: [UInt8] = [1, 3, 3, 7]
        _ = h.run(Self.fromClient(seq: 1000, flags: Self.syn, options: wscale7))
        _ = h.run(Self.fromServer(seq: 5000, ack: 1001, flags: Self.syn | Self.ack, options: wscale7), nat: nil)
        #expect(h.run(Self.fromClient(seq: 1001, ack: 5001, flags: Self.ack)).state == trkEst)
        // Server's window 65535 << 7: 1 MB ahead is inside, 10 MB is not.
        #expect(h.run(Self.fromServer(seq: 5001, ack: 1001, flags: Self.ack)).state == trkEstRpl)
        #expect(h.run(Self.fromClient(seq: 1001 + 1_000_000, ack: 5001, flags: Self.ack, payload: 100)).state == trkEst)
        #expect(h.run(Self.fromClient(seq: 1001 + 10_000_000, ack: 5001, flags: Self.ack, payload: 100)).state == trkInv)
        let e = h.ct.entries(zone: nil, now: h.now)[0]
        #expect(ConnectionTracker.format(e, verbose: true, statistics: false).hasSuffix(
            "protoinfo=(state_orig=ESTABLISHED,state_reply=ESTABLISHED,wscale_orig=7,wscale_reply=7,flags_orig=WINDOW_SCALE,flags_reply=WINDOW_SCALE)"))
    }

    @Test func resetTearsDown() {
        let h = Harness()
        _ = Self.handshake(h)
        // A reset must carry the expected sequence number.
        #expect(h.run(Self.fromClient(seq: 3000, ack: 5001, flags: Self.rst | Self.ack)).state == trkInv)
        #expect(h.run(Self.fromClient(seq: 1001, ack: 5001, flags: Self.rst | Self.ack)).state == trkEst)
        let s = Self.tcpState(h)
        #expect(s?.0 == .timeWait && s?.1 == .timeWait)
        // TCP_CLOSED timeout: 30 s.
        #expect(h.ct.entries(zone: nil, now: h.now)[0].timeout == 30)
        h.advance(seconds: 29)
        #expect(h.ct.sweep(now: h.now) == 0)
        h.advance(seconds: 2)
        #expect(h.ct.sweep(now: h.now) == 1)
        #expect(h.ct.connectionCount == 0)
    }

    @Test func finClose() {
        let h = Harness()
        _ = Self.handshake(h)
        #expect(h.run(Self.fromClient(seq: 1001, ack: 5001, flags: Self.fin | Self.ack)).state == trkEst)
        #expect(Self.tcpState(h)?.0 == .closing)
        let closing = h.ct.entries(zone: nil, now: h.now)[0]
        #expect(closing.timeout == 900)  // TCP_FIN_WAIT policy: one end closing
        #expect(ConnectionTracker.format(closing, verbose: false, statistics: false).hasSuffix("protoinfo=(state=CLOSING)"))
        #expect(h.run(Self.fromServer(seq: 5001, ack: 1002, flags: Self.ack)).state == trkEstRpl)
        #expect(Self.tcpState(h)?.0 == .finWait2)
        #expect(h.run(Self.fromServer(seq: 5001, ack: 1002, flags: Self.fin | Self.ack)).state == trkEstRpl)
        #expect(h.run(Self.fromClient(seq: 1002, ack: 5002, flags: Self.ack)).state == trkEst)
        let s = Self.tcpState(h)
        #expect(s?.0 == .finWait2 && s?.1 == .finWait2)
        let closed = h.ct.entries(zone: nil, now: h.now)[0]
        #expect(closed.timeout == 30)
        // FIN_WAIT_2 prints as the kernel's TIME_WAIT.
        #expect(ConnectionTracker.format(closed, verbose: false, statistics: false).hasSuffix("protoinfo=(state=TIME_WAIT)"))
        // A new SYN on the closed tuple replaces the connection.
        let oldID = closed.id
        #expect(h.run(Self.fromClient(seq: 90000, flags: Self.syn)).state == trkNew)
        let now = h.ct.entries(zone: nil, now: h.now)
        #expect(now.count == 1 && now[0].id != oldID && now[0].tcpState?.orig == .synSent)
    }

    @Test func timeoutsFollowTheManualClock() {
        let h = Harness()
        _ = h.run(Self.fromClient(seq: 1000, flags: Self.syn))
        #expect(h.ct.entries(zone: nil, now: h.now)[0].timeout == 30)
        h.advance(seconds: 31)
        // Expired but not swept: a lookup treats it as absent, so the SYN+ACK is invalid.
        #expect(h.ct.connectionCount == 1)
        #expect(h.run(Self.fromServer(seq: 5000, ack: 1001, flags: Self.syn | Self.ack)).state == trkInv)
        #expect(h.ct.entries(zone: nil, now: h.now).isEmpty)
        #expect(h.ct.sweep(now: h.now) == 1)
    }

    @Test func midStreamPickupIsLiberal() {
        let h = Harness()
        // An ACK without SYN may create a connection (OVS picks up established flows).
        #expect(h.run(Self.fromClient(seq: 777_777, ack: 123_456, flags: Self.ack, payload: 50)).state == trkNew)
        #expect(h.run(Self.fromServer(seq: 123_456, ack: 777_827, flags: Self.ack, payload: 50)).state == trkEstRpl)
        let e = h.ct.entries(zone: nil, now: h.now)[0]
        #expect(ConnectionTracker.format(e, verbose: true, statistics: false).contains("flags_orig=BE_LIBERAL,flags_reply=BE_LIBERAL"))
    }

    @Test func forceCommitReplacesAReplyDirectionConnection() {
        let h = Harness()
        _ = Self.handshake(h)
        let first = h.ct.entries(zone: nil, now: h.now)[0].id
        // force_commit on a reply-direction packet: the old connection goes; the packet
        // (an ACK, valid as new for OVS) starts a connection in its own direction.
        #expect(h.run(Self.fromServer(seq: 5001, ack: 1001, flags: Self.ack), force: true).state == trkNew)
        let e = h.ct.entries(zone: nil, now: h.now)
        #expect(e.count == 1 && e[0].id != first && e[0].original.srcPort == 80)
    }

    @Test func ipv6Handshake() {
        let h = Harness()
        let a = "2001:db8::1", b = "2001:db8::2"
        func pkt(_ fromA: Bool, seq: UInt32, ack: UInt32, flags: UInt16) -> [UInt8] {
            Frames.ipv6(src: fromA ? a : b, dst: fromA ? b : a, proto: 6,
                        l4: Frames.tcp(sport: fromA ? 40000 : 443, dport: fromA ? 443 : 40000, seq: seq, ack: ack, flags: flags))
        }
        #expect(h.run(pkt(true, seq: 1, ack: 0, flags: Self.syn)).state == trkNew)
        #expect(h.run(pkt(false, seq: 100, ack: 2, flags: Self.syn | Self.ack)).state == trkEstRpl)
        #expect(h.run(pkt(true, seq: 2, ack: 101, flags: Self.ack)).state == trkEst)
        #expect(ConnectionTracker.format(h.ct.entries(zone: nil, now: h.now)[0], verbose: false, statistics: false)
                == "tcp,orig=(src=2001:db8::1,dst=2001:db8::2,sport=40000,dport=443),reply=(src=2001:db8::2,dst=2001:db8::1,sport=443,dport=40000),protoinfo=(state=ESTABLISHED)")
    }
}

extension TCPTests {
    /// A connection committed over an expired, unswept one keeps its tuples when the
    /// old one is swept.
    @Test func recommitOverExpiredConnection() {
        let h = Harness()
        _ = h.run(UDPICMPTests.udp("198.18.0.1", "198.18.1.1", 5000, 53))
        h.advance(seconds: 61)
        #expect(h.run(UDPICMPTests.udp("198.18.0.1", "198.18.1.1", 5000, 53)).state == trkNew)
        #expect(h.ct.sweep(now: h.now) == 0)
        #expect(h.run(UDPICMPTests.udp("198.18.1.1", "198.18.0.1", 53, 5000)).state == trkEstRpl)
        #expect(h.ct.connectionCount == 1)
    }
}

/// The original-direction tuple a ct() leaves in the key (ct_tuple4/6, OVS's
/// write_ct_md): the connection's pre-NAT original tuple in both directions, the
/// packet's own when no connection exists, ICMP type and code as the ports, none for a
/// packet the tracker cannot parse.
struct OriginalTupleTests {
    static func tuple4(_ k: FlowKey) -> [UInt64] {
        [k[.ctOrigIPv4Src], k[.ctOrigIPv4Dst], k[.ctOrigTPSrc], k[.ctOrigTPDst], k[.ctOrigProto]]
    }

    @Test func bothDirectionsCarryTheOriginalTuple() {
        let h = Harness()
        let client: UInt64 = 0xc612_0001, server: UInt64 = 0xc612_0002
        let syn = h.run(TCPTests.fromClient(seq: 1000, flags: TCPTests.syn))
        #expect(Self.tuple4(syn.key) == [client, server, 40000, 80, 6])
        let synAck = h.run(TCPTests.fromServer(seq: 5000, ack: 1001, flags: TCPTests.syn | TCPTests.ack), commit: false)
        #expect(synAck.state == trkEstRpl)
        #expect(Self.tuple4(synAck.key) == [client, server, 40000, 80, 6])
    }

    @Test func theTupleIsThePreNATOne() {
        let h = Harness()
        let nat = NATSpec(kind: .source, addresses: CTAddress(ipv4: 0xc613_0064)...CTAddress(ipv4: 0xc613_0064))
        let r = h.run(TCPTests.fromClient(seq: 1000, flags: TCPTests.syn), nat: nat)
        #expect(r.key[.ipv4Src] == 0xc613_0064)          // the packet was NATed
        #expect(r.key[.ctOrigIPv4Src] == 0xc612_0001)    // the tuple was not
    }

    @Test func anUncommittedPacketCarriesItsOwnTupleAndICMPGivesTypeAndCode() {
        let h = Harness()
        let echo = Frames.ipv4(src: "198.18.0.1", dst: "198.18.1.1", proto: 1, l4: Frames.icmp(type: 8, id: 7, seq: 1))
        let r = h.run(echo, commit: false)
        #expect(Self.tuple4(r.key) == [0xc612_0001, 0xc612_0101, 8, 0, 1])
    }

    @Test func anUnparsablePacketClearsATupleButLeavesOtherWordsAlone() {
        let h = Harness()
        var prior = h.run(TCPTests.fromClient(seq: 1000, flags: TCPTests.syn)).key
        #expect(prior[.ctOrigProto] == 6)
        // A truncated TCP header: invalid, no tuple.
        var short = TCPTests.fromClient(seq: 1000, flags: TCPTests.syn)
        short.removeLast(10)
        short[14 + 2] = 0
        short[14 + 3] = UInt8(short.count - 14)
        prior[.ctState] = 0
        let r = h.run(short, prior: prior)
        #expect(r.state == [.tracked, .invalid])
        #expect(Self.tuple4(r.key) == [0, 0, 0, 0, 0])
        // An ND packet's words are not touched when it has no tuple (its nd fields live there).
        var nd = FlowKey()
        nd[.ethType] = UInt64(EtherType.ipv6)
        nd[.ndTarget] = 0x2001_0db8 << 96
        ConnectionTracker.clearOriginalTuple(&nd)
        #expect(nd[.ndTarget] == 0x2001_0db8 << 96)
    }
}
