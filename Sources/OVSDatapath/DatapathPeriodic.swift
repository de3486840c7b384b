import NetLinux
import ODP

/// The datapath's timer work, from the control loop: counter polls, aging, the
/// conntrack sweep and its offload, the classifier's reranking, RCU reclamation.
extension Datapath {
    /// Called by the control loop: hardware counters, idle aging, mask ranking, RCU.
    /// Brings the hardware's connection table in line with the tracker now (every tick,
    /// and right after a flush: a flushed connection must not go on passing in hardware
    /// until the next tick).
    public func settleConntrackOffload() {
        conntrackOffload?.processEvents(offload: policy != .skipHW)
    }

    /// How long the counter poll may wait past its time while a client streams requests.
    static let pollDeferralLimit: UInt64 = 5_000_000_000

    /// `streaming`: a client is streaming a bulk of requests (an add-flows). The counter
    /// poll then waits until the stream ends, at most `pollDeferralLimit` past its time: it
    /// reads every flow's counters (at 500k flows tens of ms), 3-5 % of the control thread
    /// during a million-flow add, for counts of flows that were just installed. Aging reads
    /// the counters of the flows it would expire itself (`ageFlows`).
    public func tick(now: UInt64, streaming: Bool = false) {
        let statsInterval = UInt64(max(10, eswitch?.params.statsIntervalMilliseconds ?? 1000)) * 1_000_000
        let pollDue = max(statsInterval, statsPollSpacing)
        if now &- lastStatsPoll >= pollDue, !streaming || now &- lastStatsPoll >= pollDue &+ Self.pollDeferralLimit {
            lastStatsPoll = now
            let start = Sys.monotonicNanoseconds()
            pollHardwareCounters()
            // A poll of a million flows takes most of a second of the control thread:
            // spaced so that polling takes at most a tenth of it, the rest serves clients.
            // (Timed on its own: `now` is the caller's clock, a test's may run ahead.)
            statsPollSpacing = 10 * (Sys.monotonicNanoseconds() &- start)
        }
        if now &- lastAging >= 1_000_000_000 {
            lastAging = now
            ageFlows(now: now)
            normal.expire(now: now)
        }
        if now &- lastConntrackSweep >= 1_000_000_000 {
            lastConntrackSweep = now
            // What the hardware carried since the last poll keeps a connection alive:
            // read those it holds that would expire before the next sweep or so.
            conntrackOffload?.refreshExpiring(by: now &+ 2_000_000_000, now: now)
            _ = conntrack.sweep(now: now)
        }
        // The tracker queues offload events when there is an eSwitch, whatever the policy:
        // drained every tick (after the sweep: what expired leaves the hardware now).
        settleConntrackOffload()
        if now &- lastRerank >= 1_000_000_000 {
            lastRerank = now
            table.classifier.rerank()
        }
        rcu.reclaim()
    }

    /// Reads every offloaded flow's hardware counters (the driver's periodic poll). Each
    /// is read where it lies (the data plane's counters are mapped memory): a snapshot of
    /// all of them was an array of a million, faulted in again every poll.
    public func pollHardwareCounters() {
        guard let sw = eswitch else { return }
        let previousPoll = lastCounterRead
        lastCounterRead = Sys.monotonicNanoseconds()
        for f in table.flows {
            guard f.hintMark == 0, case .hardware(let h) = f.offload, var c = sw.ruleCounters(h) else { continue }
            // A rule that counted packets since the previous read was used after it: the
            // rule's own last-used time is the kernel's coarse clock, which can lag ours
            // (by minutes, seen on this VM), and must not make a busy flow look idle.
            if c.packets > f.hardwareLatest.packets { c.lastUsedNanoseconds = max(c.lastUsedNanoseconds, previousPoll) }
            f.hardwareLatest = c
        }
        pollRetiringRules(sw, previousPoll: previousPoll)
        conntrackOffload?.poll(now: lastCounterRead)
    }

    private func ageFlows(now: UInt64) {
        // Only learned flows age: a table of a million user flows is not walked for none.
        guard table.learnedCount > 0 else { return }
        let idle = UInt64(maxIdleMilliseconds) * 1_000_000
        // Only the expired flows are collected: copying the whole table every second
        // costs as much as the check when flows are many.
        var expired: [DatapathFlow] = []
        func isIdle(_ f: DatapathFlow) -> Bool { now &- max(f.stats.usedNanoseconds, f.createdNanoseconds) > idle }
        for f in table.flows where f.origin == .normal && isIdle(f) {
            // The periodic counter poll may be older than max-idle (stats_interval_ms
            // can be longer): a busy offloaded flow looks idle until its rule is read.
            readHardwareCounters(f)
            if isIdle(f) { expired.append(f) }
        }
        for f in expired {
            deleteFlow(f)
            logger.debug("flow aged out", metadata: ["ufid": "\(formatUFID(f.ufid))"])
        }
    }
}
