import Packet
import Synchronization

/// The software connection tracker: OVS 3.1's userspace conntrack (lib/conntrack.c) for
/// one datapath. Called from the packet thread (`execute`) and the control thread (dump,
/// flush, limits, sweeps, offload hooks); all state is behind one mutex.
public final class ConnectionTracker: Sendable {
    struct State: Sendable {
        /// Both tuples of every connection → (id, the tuple is the reply direction's).
        var byTuple: [CTTuple: (id: UInt32, reply: Bool)] = [:]
        var connections: [UInt32: Connection] = [:]
        var nextID: UInt32 = 1
        var limits = Limits()
        var sequenceCheck = true
        /// Whether an offload engine takes the events; without one none are kept.
        var reportsOffloadEvents = true
        var events: [CTOffloadEvent] = []
        var refusedCommits: UInt64 = 0
        var natExhausted: UInt64 = 0
        var randomState: UInt64
        /// The latest clock value seen (execute, sweep), for queries that take none.
        var lastNow: UInt64 = 0

        mutating func random() -> UInt32 {
            randomState = randomState &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return UInt32(truncatingIfNeeded: randomState >> 33)
        }

        /// A live connection holding `tuple` in either direction.
        func lookup(_ tuple: CTTuple, now: UInt64) -> (id: UInt32, reply: Bool)? {
            guard let hit = byTuple[tuple], let c = connections[hit.id], c.expiration > now else { return nil }
            return hit
        }

        mutating func remove(_ id: UInt32) {
            guard let c = connections.removeValue(forKey: id) else { return }
            // A tuple may meanwhile belong to a newer connection (this one had expired).
            for t in [c.original, c.reply] where byTuple[t]?.id == id { byTuple.removeValue(forKey: t) }
            limits.remove(c.limitBucket)
            if c.reportedEstablished { events.append(.removed(id)) }
        }
    }

    let state: Mutex<State>
    let hashBasis: UInt32

    public init(seed: UInt64 = 0x5eed_c0de) {
        state = Mutex(State(randomState: seed))
        hashBasis = UInt32(truncatingIfNeeded: seed >> 7)
    }

    /// OVS's ct_maxconns.
    public var maxConnections: UInt32 {
        get { state.withLock { $0.limits.maxConnections } }
        set { state.withLock { $0.limits.maxConnections = newValue } }
    }

    /// OVS's tcp_seq_chk (dpctl/ct-enable-tcp-seq-chk): on by default.
    public var tcpSequenceCheck: Bool {
        get { state.withLock { $0.sequenceCheck } }
        set { state.withLock { $0.sequenceCheck = newValue } }
    }

    /// Whether `.established`/`.removed` events are queued for `takeOffloadEvents`: only
    /// when something takes them, else the queue grows by one per connection for good.
    public var reportsOffloadEvents: Bool {
        get { state.withLock { $0.reportsOffloadEvents } }
        set { state.withLock { s in
            s.reportsOffloadEvents = newValue
            if !newValue { s.events.removeAll() }
        } }
    }

    /// Live and not yet swept connections.
    public var connectionCount: Int { state.withLock { $0.connections.count } }

    /// Runs one packet through a ct() action: conntrack_execute for one packet. Results
    /// go to `key`'s ct_state/zone/mark/label and, when NAT applies, to the frame and to
    /// `key`'s addresses and ports.
    /// - Parameter l4ChecksumPartial: the frame's transport checksum is CHECKSUM_PARTIAL
    ///   (virtio-net NEEDS_CSUM): it holds the pseudo-header sum, which address changes
    ///   update the kernel's way and port changes leave alone.
    /// - Parameter l4ChecksumVerified: the transport checksum was checked before (the
    ///   kernel's CHECKSUM_UNNECESSARY, virtio-net DATA_VALID): the tracker need not.
    ///   Otherwise a complete checksum is verified and a bad one makes the packet `inv`.
    /// - Parameter dryRun: decide on a copy of the tracker's state, which is then
    ///   discarded (`trace`: the frame and key change, the tracker does not).
    public func execute(_ action: CTAction, frame: UnsafeMutableRawPointer, length: Int, offsets: HeaderOffsets,
                        key: inout FlowKey, now: UInt64, l4ChecksumPartial: Bool = false, l4ChecksumVerified: Bool = false,
                        dryRun: Bool = false) {
        // Entering another zone forgets the state of the previous ct(); within a zone a
        // packet already NATed is looked up by its pre-NAT tuple and not NATed twice.
        var prior = CTState(rawValue: UInt8(truncatingIfNeeded: key[.ctState]))
        if !prior.isEmpty && key[.ctZone] != UInt64(action.zone) { prior = [] }
        let priorNAT = prior.intersection([.sourceNAT, .destinationNAT])

        guard let packet = PacketParser.parse(frame, length: length, offsets: offsets, zone: action.zone,
                                              verifyL4Checksum: !l4ChecksumPartial && !l4ChecksumVerified) else {
            writeMetadata(&key, state: [.tracked, .invalid], zone: action.zone, mark: 0, label: 0, origin: nil)
            return
        }
        let result = state.withLock { s in
            if dryRun {
                var copy = s
                return process(&copy, packet: packet, frame: frame, action: action, priorNAT: priorNAT, now: now,
                               partial: l4ChecksumPartial)
            }
            return process(&s, packet: packet, frame: frame, action: action, priorNAT: priorNAT, now: now,
                           partial: l4ChecksumPartial)
        }
        writeMetadata(&key, state: result.state, zone: action.zone, mark: result.mark, label: result.label,
                      origin: result.origin)
        if let t = result.rewritten { store(t, packet: packet, into: &key) }
    }

    struct Outcome {
        var state: CTState
        var mark: UInt32 = 0
        var label: UInt128 = 0
        var rewritten: CTTuple?
        /// The original-direction tuple for the key: the connection's, or the packet's
        /// own when it has none (OVS's write_ct_md).
        var origin: CTTuple?
    }

    private func process(_ s: inout State, packet: ParsedPacket, frame: UnsafeMutableRawPointer, action: CTAction,
                         priorNAT: CTState, now: UInt64, partial: Bool) -> Outcome {
        s.lastNow = max(s.lastNow, now)
        var packet = packet
        var found: (id: UInt32, reply: Bool)?
        if priorNAT.isEmpty {
            found = s.lookup(packet.tuple, now: now)
        } else if let hit = s.lookup(packet.tuple.reversed(), now: now), let c = s.connections[hit.id] {
            // Already NATed by an earlier ct() in this zone: found by the reverse of the
            // rewritten tuple; continue with the tuple of the direction it belongs to
            // (OVS's initial_conn_lookup), which a re-created connection would start from.
            found = (hit.id, !hit.reply)
            packet.tuple = hit.reply ? c.original : c.reply
        }

        if action.forceCommit, let hit = found, hit.reply {
            s.remove(hit.id)
            found = nil
        }

        var outcome = Outcome(state: priorNAT)
        var create = false
        if let hit = found, var c = s.connections[hit.id] {
            if packet.related {
                outcome.state.formUnion(hit.reply ? [.related, .replyDirection] : .related)
            } else {
                // A packet of a connection in hardware reached software: the hardware sent
                // it up (a FIN or RST it hands back, before the driver's poll calls
                // handBack): its windows are stale here, as after a hand-back.
                if c.offloaded, case .tcp(var tcp) = c.proto {
                    tcp.relaxedPackets = max(tcp.relaxedPackets, 1)
                    c.proto = .tcp(tcp)
                }
                switch update(&c, packet: packet, frame: frame, reply: hit.reply, now: now, sequenceCheck: s.sequenceCheck) {
                case .valid:
                    outcome.state.insert(.established)
                    if hit.reply { outcome.state.insert(.replyDirection) }
                case .invalid:
                    outcome.state = .invalid
                case .validNew:
                    outcome.state.insert(.new)
                case .recreate:
                    create = true
                }
                count(&c, packet: packet, reply: hit.reply)
            }
            s.connections[hit.id] = c
            if create {
                s.remove(hit.id)
            } else {
                if action.nat != nil, priorNAT.isEmpty, c.nat != .none {
                    outcome.rewritten = applyNAT(c, reply: hit.reply, packet: packet, frame: frame, partial: partial,
                                                 state: &outcome.state)
                }
                outcome.mark = c.mark
                outcome.label = c.label
                outcome.origin = c.original
                if action.commits { setMarkAndLabel(&s, id: hit.id, action: action, outcome: &outcome) }
                noteOffloadCandidate(&s, id: hit.id)
            }
        } else if packet.related {
            // An ICMP error about no known connection never creates one.
            outcome.state = .invalid
        } else {
            create = true
        }

        if create {
            outcome = commitNew(&s, packet: packet, frame: frame, action: action, now: now, partial: partial)
        }
        outcome.state.insert(.tracked)
        if outcome.origin == nil { outcome.origin = packet.tuple }
        return outcome
    }

    /// conn_not_found: a packet with no connection. New if its protocol allows it to
    /// start one, committed only with `commit` and within the limits.
    private func commitNew(_ s: inout State, packet: ParsedPacket, frame: UnsafeMutableRawPointer, action: CTAction,
                           now: UInt64, partial: Bool) -> Outcome {
        guard let proto = newProtocolState(packet: packet, frame: frame) else { return Outcome(state: .invalid) }
        var outcome = Outcome(state: .new)
        guard action.commits else { return outcome }
        let bucket = s.limits.bucket(for: packet.tuple.zone)
        guard s.limits.admits(bucket), s.connections.count < Int(s.limits.maxConnections) else {
            s.refusedCommits += 1
            return outcome
        }
        let id = s.nextID
        s.nextID = s.nextID == UInt32.max ? 1 : s.nextID + 1
        var c = Connection(id: id, original: packet.tuple, reply: packet.tuple.reversed(), proto: proto.state,
                           expiration: now + proto.timeout.seconds * 1_000_000_000, limitBucket: bucket,
                           timeoutPolicy: proto.timeout)
        if let spec = action.nat, spec.kind != .none {
            let snapshot = s
            var rng = s.randomState
            let reply = NAT.uniqueReply(for: packet.tuple, spec: spec, basis: hashBasis, random: {
                rng = rng &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                return UInt32(truncatingIfNeeded: rng >> 33)
            }, inUse: { snapshot.lookup($0, now: now) != nil })
            s.randomState = rng
            guard let reply else {
                // Tuple space exhausted: OVS drops the new connection and the packet
                // leaves as trk|new without NAT.
                s.natExhausted += 1
                return outcome
            }
            c.reply = reply
            c.nat = spec.kind == .source ? .source : .destination
            outcome.rewritten = applyNAT(c, reply: false, packet: packet, frame: frame, partial: partial,
                                         state: &outcome.state)
        }
        count(&c, packet: packet, reply: false)
        // Expired connections not yet swept may still hold these tuples: they go now.
        for t in [c.original, c.reply] {
            if let stale = s.byTuple[t]?.id { s.remove(stale) }
        }
        s.connections[id] = c
        s.byTuple[c.original] = (id, false)
        s.byTuple[c.reply] = (id, true)
        s.limits.add(bucket)
        setMarkAndLabel(&s, id: id, action: action, outcome: &outcome)
        return outcome
    }

    private func setMarkAndLabel(_ s: inout State, id: UInt32, action: CTAction, outcome: inout Outcome) {
        guard var c = s.connections[id] else { return }
        c.mark = (action.markValue & action.markMask) | (c.mark & ~action.markMask)
        c.label = (action.labelValue & action.labelMask) | (c.label & ~action.labelMask)
        s.connections[id] = c
        outcome.mark = c.mark
        outcome.label = c.label
    }

    private func count(_ c: inout Connection, packet: ParsedPacket, reply: Bool) {
        let bytes = UInt64(packet.end - packet.l3)
        if reply {
            c.packets.reply += 1
            c.bytes.reply += bytes
        } else {
            c.packets.orig += 1
            c.bytes.orig += bytes
        }
    }

    private func writeMetadata(_ key: inout FlowKey, state: CTState, zone: UInt16, mark: UInt32, label: UInt128,
                               origin: CTTuple?) {
        key[.ctState] = UInt64(state.rawValue)
        key[.ctZone] = UInt64(zone)
        key[.ctMark] = UInt64(mark)
        key[.ctLabel] = label
        if let t = origin {
            Self.storeOriginalTuple(t, into: &key)
        } else {
            Self.clearOriginalTuple(&key)
        }
    }

    /// ct_tuple4/6: ICMP queries give their type and code (0) as the ports, as OVS does.
    static func storeOriginalTuple(_ t: CTTuple, into key: inout FlowKey) {
        if t.isIPv6 {
            key[.ctOrigIPv6Src] = t.src.value
            key[.ctOrigIPv6Dst] = t.dst.value
        } else {
            key[.ctOrigIPv4Src] = UInt64(t.src.value)
            key[.ctOrigIPv4Dst] = UInt64(t.dst.value)
        }
        if t.isICMP {
            key[.ctOrigTPSrc] = UInt64(t.srcICMPType)
            key[.ctOrigTPDst] = 0
        } else {
            key[.ctOrigTPSrc] = UInt64(t.srcPort)
            key[.ctOrigTPDst] = UInt64(t.dstPort)
        }
        key[.ctOrigProto] = UInt64(t.proto)
    }

    /// Clears a tuple the key holds; the words are left alone when it holds none (they
    /// may carry ND or ARP fields: FlowField.ctOrigIPv4Src).
    public static func clearOriginalTuple(_ key: inout FlowKey) {
        guard key[.ctOrigProto] != 0 else { return }
        if key[.ethType] == UInt64(EtherType.ipv6) {
            key[.ctOrigIPv6Src] = 0
            key[.ctOrigIPv6Dst] = 0
        } else {
            key[.ctOrigIPv4Src] = 0
            key[.ctOrigIPv4Dst] = 0
        }
        key[.ctOrigTPSrc] = 0
        key[.ctOrigTPDst] = 0
        key[.ctOrigProto] = 0
    }

    /// The key follows the rewritten outer header.
    private func store(_ t: CTTuple, packet: ParsedPacket, into key: inout FlowKey) {
        if t.isIPv6 {
            key[.ipv6Src] = t.src.value
            key[.ipv6Dst] = t.dst.value
        } else {
            key[.ipv4Src] = UInt64(t.src.value)
            key[.ipv4Dst] = UInt64(t.dst.value)
        }
        if !packet.related && t.hasPorts {
            key[.tpSrc] = UInt64(t.srcPort)
            key[.tpDst] = UInt64(t.dstPort)
        }
    }
}
