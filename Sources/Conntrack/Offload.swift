/// Hooks for hardware connection offload. The offload engine polls `takeOffloadEvents`,
/// installs the connections reported established, reports their hardware counters, and
/// hands a connection back when the hardware sees it closing.

/// What hardware needs to handle both directions of a connection on its own.
public struct CTConnectionSnapshot: Sendable, Equatable {
    public var id: UInt32
    public var zone: UInt16
    public var proto: UInt8
    /// The tuples as packets arrive: original direction, reply direction (post-NAT).
    public var original: CTTuple
    public var reply: CTTuple
    public var mark: UInt32
    public var label: UInt128
    /// How each direction's packets look after ct(nat): equal to the arriving tuple
    /// when the connection has no NAT.
    public var originalRewrite: CTTuple
    public var replyRewrite: CTTuple
    /// ct_state each direction's packets get: trk|est(+snat/dnat), trk|est|rpl(+flag).
    public var originalState: CTState
    public var replyState: CTState

    public init(id: UInt32, zone: UInt16, proto: UInt8, original: CTTuple, reply: CTTuple, mark: UInt32, label: UInt128,
                originalRewrite: CTTuple, replyRewrite: CTTuple, originalState: CTState, replyState: CTState) {
        self.id = id
        self.zone = zone
        self.proto = proto
        self.original = original
        self.reply = reply
        self.mark = mark
        self.label = label
        self.originalRewrite = originalRewrite
        self.replyRewrite = replyRewrite
        self.originalState = originalState
        self.replyState = replyState
    }
}

public enum CTOffloadEvent: Sendable, Equatable {
    /// Committed and established both ways: an offload candidate.
    case established(CTConnectionSnapshot)
    /// A connection reported established is gone (expired, flushed, closed, replaced).
    case removed(UInt32)
}

extension ConnectionTracker {
    /// Events since the last call, oldest first.
    public func takeOffloadEvents() -> [CTOffloadEvent] {
        state.withLock { s in
            defer { s.events.removeAll(keepingCapacity: true) }
            return s.events
        }
    }

    /// Marks a connection as offloaded (shown in verbose dumps) or no longer.
    public func setOffloaded(id: UInt32, _ on: Bool) {
        state.withLock { s in s.connections[id]?.offloaded = on }
    }

    /// Hardware counters of an offloaded connection: cumulative since it was offloaded,
    /// per direction; `lastUsed` in the tracker's clock (monotonic ns). Packets the
    /// hardware handled never reach `execute`, so they keep the connection alive here.
    public func hardwareActivity(id: UInt32, packets: (orig: UInt64, reply: UInt64), bytes: (orig: UInt64, reply: UInt64),
                                 lastUsed: UInt64) {
        state.withLock { s in
            guard var c = s.connections[id], c.offloaded else { return }
            c.hardwarePackets = packets
            c.hardwareBytes = bytes
            let refreshed = lastUsed + c.timeoutPolicy.seconds * 1_000_000_000
            if refreshed > c.expiration { c.expiration = refreshed }
            s.connections[id] = c
        }
    }

    /// The hardware saw FIN or RST and gives the connection back: software follows the
    /// teardown. Its TCP windows are stale (hardware moved the sequence numbers), so the
    /// next packets skip the window check and resynchronise it.
    public func handBack(id: UInt32) {
        leftHardware(id: id, packets: (0, 0), bytes: (0, 0), lastUsed: 0, closing: true)
    }

    /// The connection's entries left the hardware. `packets`/`bytes` are what they
    /// counted since the offload, read as they went: added to the software counts, since
    /// the hardware's counters go with the entries (a poll may not have read them for a
    /// while). TCP windows are stale either way. `closing` (a hand-back, or closed in
    /// software): not offered to the hardware again until it is established anew; else
    /// (the eSwitch dropped it: its zone lost its last ct rule, a mode change) its next
    /// packet offers it again.
    public func leftHardware(id: UInt32, packets: (orig: UInt64, reply: UInt64), bytes: (orig: UInt64, reply: UInt64),
                             lastUsed: UInt64, closing: Bool) {
        state.withLock { s in
            guard var c = s.connections[id] else { return }
            // Cumulative since the offload: never less than the last poll reported.
            c.packets.orig += max(packets.orig, c.hardwarePackets.orig)
            c.packets.reply += max(packets.reply, c.hardwarePackets.reply)
            c.bytes.orig += max(bytes.orig, c.hardwareBytes.orig)
            c.bytes.reply += max(bytes.reply, c.hardwareBytes.reply)
            c.hardwarePackets = (0, 0)
            c.hardwareBytes = (0, 0)
            if lastUsed > 0 {
                let refreshed = lastUsed + c.timeoutPolicy.seconds * 1_000_000_000
                if refreshed > c.expiration { c.expiration = refreshed }
            }
            c.offloaded = false
            if closing {
                c.heldBack = true
                c.offloadRetryAt = nil
            } else {
                c.offloadRetryAt = 0
            }
            if case .tcp(var tcp) = c.proto {
                tcp.relaxedPackets = 8
                c.proto = .tcp(tcp)
            }
            s.connections[id] = c
        }
    }

    /// The hardware did not take the connection: its packets offer it again from
    /// `retryAfter` nanoseconds on (nil: never, the hardware cannot hold it).
    public func offloadRefused(id: UInt32, retryAfter: UInt64?) {
        state.withLock { s in
            guard var c = s.connections[id], !c.offloaded else { return }
            c.offloadRetryAt = retryAfter.map { s.lastNow &+ $0 }
            s.connections[id] = c
        }
    }

    /// Room appeared in the hardware: these refused connections are offered again on
    /// their next packet rather than when their retry time comes.
    public func allowOffloadRetry(_ ids: [UInt32]) {
        state.withLock { s in
            for id in ids {
                guard var c = s.connections[id], !c.offloaded, c.offloadRetryAt != nil else { continue }
                c.offloadRetryAt = 0
                s.connections[id] = c
            }
        }
    }

    /// Offloaded connections that expire by `deadline`: the driver reads their hardware
    /// counters first (a poll may be older than their timeout), as nf_flowtable keeps an
    /// offloaded connection alive from the hardware's activity.
    public func offloadedConnections(expiringBy deadline: UInt64) -> [UInt32] {
        state.withLock { s in s.connections.values.filter { $0.offloaded && $0.expiration <= deadline }.map(\.id) }
    }

    /// After a packet of connection `id`: report it once it is established both ways.
    func noteOffloadCandidate(_ s: inout State, id: UInt32) {
        guard s.reportsOffloadEvents, var c = s.connections[id] else { return }
        let established = c.proto.isEstablished
        if c.heldBack {
            // A handed-back connection is reported again only after leaving established.
            if !established {
                c.heldBack = false
                c.announced = false
            }
            s.connections[id] = c
            return
        }
        if !established && c.announced {
            // Closing in software (a FIN or RST before the hardware took it, or one the
            // hardware never saw): the hardware must let go of it, or a packet reusing
            // its tuple would pass there as established.
            c.announced = false
            c.offloadRetryAt = nil
            if c.reportedEstablished {
                c.reportedEstablished = false
                s.events.append(.removed(id))
            }
            s.connections[id] = c
            return
        }
        if established && c.announced {
            // Reported but not in hardware (refused, or dropped by the eSwitch): its
            // packets reach software, which offers it again once its retry time comes
            // (act_ct retries on packets of an established connection not offloaded).
            guard !c.offloaded, let at = c.offloadRetryAt, s.lastNow >= at else { return }
            c.offloadRetryAt = nil
            s.connections[id] = c
            s.events.append(.established(Self.snapshot(c)))
            return
        }
        guard established else { return }
        c.announced = true
        c.reportedEstablished = true
        s.connections[id] = c
        s.events.append(.established(Self.snapshot(c)))
    }

    static func snapshot(_ c: Connection) -> CTConnectionSnapshot {
        let est: CTState = [.tracked, .established]
        return CTConnectionSnapshot(
            id: c.id, zone: c.original.zone, proto: c.original.proto, original: c.original, reply: c.reply,
            mark: c.mark, label: c.label,
            originalRewrite: c.reply.reversed(), replyRewrite: c.original.reversed(),
            originalState: est.union(c.nat.ctState),
            replyState: est.union(.replyDirection).union(c.nat.reversed.ctState))
    }

    /// Removes expired connections; returns how many. Called from a timer.
    public func sweep(now: UInt64) -> Int {
        state.withLock { s in
            s.lastNow = max(s.lastNow, now)
            let expired = s.connections.values.filter { $0.expiration <= now }.map(\.id)
            for id in expired { s.remove(id) }
            return expired.count
        }
    }
}
