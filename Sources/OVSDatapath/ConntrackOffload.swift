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
/// a FIN or RST, and sent that packet up the representor unmodified).
final class ConntrackOffload {
    let tracker: ConnectionTracker
    let eswitch: ESwitch
    let logger: Logger

    struct Statistics: Sendable, Equatable {
        var offloaded: UInt64 = 0
        var refused: UInt64 = 0
        var handedBack: UInt64 = 0
        var removed: UInt64 = 0
    }
    private(set) var statistics = Statistics()
    /// Connections in the hardware, by tracker id, with the packets last read (a rule's
    /// last-used time is the kernel's coarse clock: more packets than last time is the
    /// better sign of use).
    private(set) var held: [UInt32: UInt64] = [:]
    /// The reason the last refused connection stayed in software.
    private(set) var lastRefusal: OffloadFailure?

    init(tracker: ConnectionTracker, eswitch: ESwitch, logger: Logger) {
        self.tracker = tracker
        self.eswitch = eswitch
        self.logger = logger
    }

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
            case .removed(let id): remove(id)
            }
        }
    }

    private func offload(_ s: CTConnectionSnapshot) {
        // A connection reported again while held replaces its entry (the tracker's
        // state stays as it is: this is no hand-back).
        if held.removeValue(forKey: s.id) != nil { eswitch.removeConnection(id: UInt64(s.id)) }
        switch eswitch.addConnection(Self.spec(s)) {
        case .success:
            held[s.id] = 0
            tracker.setOffloaded(id: s.id, true)
            statistics.offloaded += 1
        case .failure(let why):
            statistics.refused += 1
            lastRefusal = why
            logger.debug("connection stays in software", metadata: ["id": "\(s.id)", "reason": "\(why)"])
        }
    }

    /// The tracker dropped the connection, or it is closing in software: out of the
    /// hardware. A connection still in the tracker gets the hand-back treatment (its
    /// windows are stale after packets only the hardware saw).
    private func remove(_ id: UInt32) {
        guard held.removeValue(forKey: id) != nil else { return }
        eswitch.removeConnection(id: UInt64(id))
        tracker.handBack(id: id)
        statistics.removed += 1
    }

    /// After a counter poll: hardware activity into the tracker, hand-backs to software.
    /// `previousPoll` is when the counters were read before (monotonic ns).
    func poll(previousPoll: UInt64) {
        guard !held.isEmpty else { return }
        var seen = Set<UInt32>()
        for a in eswitch.connections.activity() {
            let id = UInt32(truncatingIfNeeded: a.id)
            guard let before = held[id] else { continue }
            seen.insert(id)
            if a.handedBack {
                eswitch.removeConnection(id: a.id)
                held[id] = nil
                tracker.handBack(id: id)
                statistics.handedBack += 1
                continue
            }
            let packets = a.original.packets &+ a.reply.packets
            guard packets > 0 else { continue }
            let lastUsed = packets > before ? max(a.lastUsedNanoseconds, previousPoll) : a.lastUsedNanoseconds
            held[id] = packets
            tracker.hardwareActivity(id: id, packets: (a.original.packets, a.reply.packets),
                                     bytes: (a.original.bytes, a.reply.bytes), lastUsed: lastUsed)
        }
        // Connections the eSwitch dropped on its own (leaving switchdev mode).
        for id in held.keys where !seen.contains(id) {
            held[id] = nil
            tracker.setOffloaded(id: id, false)
        }
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
