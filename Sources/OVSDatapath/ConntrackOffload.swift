import Conntrack
import ESwitch
import Logging
import NetLinux

/// Connection-tracking offload as OVS and mlx5 do it: a connection the tracker reports
/// established (both directions seen; TCP ESTABLISHED) goes into the eSwitch's CT table,
/// and its packets then run ct → recirc → post-ct rule in hardware. Control thread only,
/// from the datapath's tick: the tracker's events program and remove connections; each
/// counter poll feeds the hardware counters back (they keep the connection alive in the
/// tracker) and gives back to software the connections the pipeline handed back (it saw
/// a FIN or RST, and sent that packet up the representor unmodified). Whatever takes a
/// connection out (hand-back, the tracker, the eSwitch flushing a zone without rules)
/// carries its last counts into the tracker; refused or evicted connections are offered
/// again by their packets (bounded), and expiry reads the hardware first.
final class ConntrackOffload {
    let tracker: ConnectionTracker
    let eswitch: ESwitch
    let logger: Logger

    struct Statistics: Sendable, Equatable {
        var offloaded: UInt64 = 0
        var refused: UInt64 = 0
        var handedBack: UInt64 = 0
        var removed: UInt64 = 0
        /// Taken out by the eSwitch (the zone's last ct rule left, or switchdev mode ended).
        var evicted: UInt64 = 0
    }
    private(set) var statistics = Statistics()

    /// What was last read of a held connection: its packets (a rule's last-used time is
    /// the kernel's coarse clock: more packets than last time is the better sign of use)
    /// and when (monotonic ns).
    struct LastRead: Equatable {
        var packets: UInt64
        var at: UInt64
    }
    /// Connections in the hardware, by tracker id.
    private(set) var held: [UInt32: LastRead] = [:]
    /// Connections refused for want of room: offered again as soon as some leaves.
    private(set) var waitingForRoom: Set<UInt32> = []
    /// The reason the last refused connection stayed in software.
    private(set) var lastRefusal: OffloadFailure?

    init(tracker: ConnectionTracker, eswitch: ESwitch, logger: Logger) {
        self.tracker = tracker
        self.eswitch = eswitch
        self.logger = logger
        eswitch.connections.onEvicted = { [weak self] gone in self?.evicted(gone) }
    }

    /// How long a refused connection's packets wait before offering it again: at most
    /// one attempt per connection per counter poll (not one per packet while the table
    /// stays full), and not under a second.
    var retryInterval: UInt64 { UInt64(max(1000, eswitch.params.statsIntervalMilliseconds)) * 1_000_000 }

    /// The tracker's events since the last call: programs and removes connections
    /// (`offload` false, under skip_hw: only removals).
    func processEvents(offload enabled: Bool = true) {
        let events = tracker.takeOffloadEvents()
        // A connection that closed before this tick (short connections do) is not worth
        // two writes: an .established followed by its .removed programs nothing.
        var lastRemoval: [UInt32: Int] = [:]
        for (i, e) in events.enumerated() { if case .removed(let id) = e { lastRemoval[id] = i } }
        for (i, e) in events.enumerated() {
            switch e {
            case .established(let s):
                if !enabled { continue }
                if let r = lastRemoval[s.id], r > i { continue }
                offload(s)
            case .removed(let id):
                waitingForRoom.remove(id)
                remove(id)
            }
        }
        offerRoom()
    }

    private func offload(_ s: CTConnectionSnapshot) {
        // A connection reported again while held replaces its entry, its counts carried
        // (the tracker's state stays as it is: this is no hand-back).
        _ = takeOut(s.id, closing: false)
        let spec = Self.spec(s)
        switch eswitch.addConnection(spec) {
        case .success:
            held[s.id] = LastRead(packets: 0, at: Sys.monotonicNanoseconds())
            waitingForRoom.remove(s.id)
            tracker.setOffloaded(id: s.id, true)
            statistics.offloaded += 1
        case .failure(let why):
            statistics.refused += 1
            lastRefusal = why
            // What the silicon can never track is not offered again; anything else (no
            // room, no ct rule of the zone yet, legacy mode, a failed write) may pass later.
            let never = ConnectionTable.check(spec) != nil
            tracker.offloadRefused(id: s.id, retryAfter: never ? nil : retryInterval)
            // Only a full CT table waits for its room (offerRoom measures that table);
            // no counter free waits for the retry time, as other refusals do.
            if case .noSpace(let table) = why, table == "ct" { waitingForRoom.insert(s.id) }
            logger.debug("connection stays in software", metadata: ["id": "\(s.id)", "reason": "\(why)"])
        }
    }

    /// Refused connections are offered again on their next packet, as many as there is
    /// room for now (the rest wait for their retry time or the next room).
    private func offerRoom() {
        guard !waitingForRoom.isEmpty else { return }
        let room = eswitch.connections.pool.available / ConnectionTable.entriesPerConnection
        guard room > 0 else { return }
        let ids = Array(waitingForRoom.prefix(room))
        waitingForRoom.subtract(ids)
        tracker.allowOffloadRetry(ids)
    }

    /// Out of the hardware with what its entries counted since the last poll.
    private func takeOut(_ id: UInt32, closing: Bool) -> Bool {
        guard held.removeValue(forKey: id) != nil else { return false }
        let counts = eswitch.connections.take(id: UInt64(id))
        tracker.leftHardware(id: id, packets: (counts?.original.packets ?? 0, counts?.reply.packets ?? 0),
                             bytes: (counts?.original.bytes ?? 0, counts?.reply.bytes ?? 0),
                             lastUsed: counts?.lastUsedNanoseconds ?? 0, closing: closing)
        return true
    }

    /// The tracker dropped the connection, or it is closing in software: out of the
    /// hardware. A connection still in the tracker gets the hand-back treatment (its
    /// windows are stale after packets only the hardware saw).
    private func remove(_ id: UInt32) {
        if takeOut(id, closing: true) { statistics.removed += 1 }
    }

    /// The eSwitch took connections out on its own: software carries them on (counts
    /// included) and offers them again when their packets come.
    private func evicted(_ gone: [ConnectionActivity]) {
        for a in gone {
            let id = UInt32(truncatingIfNeeded: a.id)
            guard held.removeValue(forKey: id) != nil else { continue }
            tracker.leftHardware(id: id, packets: (a.original.packets, a.reply.packets),
                                 bytes: (a.original.bytes, a.reply.bytes), lastUsed: a.lastUsedNanoseconds, closing: false)
            statistics.evicted += 1
        }
        offerRoom()
    }

    /// Hardware activity of a held connection into the tracker: a count grown since the
    /// last read means used since then, whatever the coarse clock says. False when it
    /// was handed back (taken out of the hardware here).
    private func feed(_ a: ConnectionActivity, now: UInt64) -> Bool {
        let id = UInt32(truncatingIfNeeded: a.id)
        guard let before = held[id] else { return true }
        if a.handedBack {
            _ = takeOut(id, closing: true)
            statistics.handedBack += 1
            return false
        }
        let packets = a.original.packets &+ a.reply.packets
        held[id] = LastRead(packets: packets, at: now)
        guard packets > 0 else { return true }
        let lastUsed = packets > before.packets ? max(a.lastUsedNanoseconds, before.at) : a.lastUsedNanoseconds
        tracker.hardwareActivity(id: id, packets: (a.original.packets, a.reply.packets),
                                 bytes: (a.original.bytes, a.reply.bytes), lastUsed: lastUsed)
        return true
    }

    /// After a counter poll at `now` (monotonic ns): hardware activity into the tracker,
    /// hand-backs to software.
    func poll(now: UInt64) {
        guard !held.isEmpty else { return }
        var seen = Set<UInt32>()
        for a in eswitch.connections.activity() {
            seen.insert(UInt32(truncatingIfNeeded: a.id))
            _ = feed(a, now: now)
        }
        // Held connections the eSwitch no longer has (it tells of those it drops; this
        // is the backstop): software carries them on.
        for id in held.keys where !seen.contains(id) {
            held[id] = nil
            tracker.leftHardware(id: id, packets: (0, 0), bytes: (0, 0), lastUsed: 0, closing: false)
        }
        offerRoom()
    }

    /// Before the tracker's sweep at `now`: offloaded connections that would expire by
    /// `deadline` are read from the hardware first (the counter poll may be older than
    /// their timeout), so one the hardware still carries is kept.
    func refreshExpiring(by deadline: UInt64, now: UInt64) {
        guard !held.isEmpty else { return }
        var handedBack = false
        for id in tracker.offloadedConnections(expiringBy: deadline) {
            guard held[id] != nil, let a = eswitch.connections.activity(id: UInt64(id)) else { continue }
            if !feed(a, now: now) { handedBack = true }
        }
        if handedBack { offerRoom() }
    }

    /// The hardware's view of a tracker connection: each direction keyed by the tuple its
    /// packets arrive with, rewritten to the tuple they leave with.
    static func spec(_ s: CTConnectionSnapshot) -> HardwareConnectionSpec {
        func tuple(_ t: CTTuple) -> ConnectionTuple {
            ConnectionTuple(zone: s.zone, proto: s.proto, isIPv6: t.isIPv6, src: t.src.value, dst: t.dst.value,
                            srcPort: t.srcPort, dstPort: t.dstPort)
        }
        func rewrite(_ from: CTTuple, _ to: CTTuple) -> ConnectionRewrite {
            ConnectionRewrite(src: from.src == to.src ? nil : to.src.value, dst: from.dst == to.dst ? nil : to.dst.value,
                              srcPort: from.srcPort == to.srcPort ? nil : to.srcPort,
                              dstPort: from.dstPort == to.dstPort ? nil : to.dstPort)
        }
        return HardwareConnectionSpec(
            id: UInt64(s.id),
            original: ConnectionDirection(tuple: tuple(s.original), state: s.originalState.rawValue,
                                          rewrite: rewrite(s.original, s.originalRewrite)),
            reply: ConnectionDirection(tuple: tuple(s.reply), state: s.replyState.rawValue,
                                       rewrite: rewrite(s.reply, s.replyRewrite)),
            mark: s.mark, label: s.label)
    }
}
