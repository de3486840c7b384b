import Classifier
import Packet

/// Read-only questions to the driver's shadow of the hardware tables (what the data
/// plane's maps hold), for tracing a packet without touching any counter or state of
/// the hardware. The first builds the shadow (`keepShadow`).
extension HardwareTables {
    /// The rule a packet with hardware key `key` hits, as the silicon looks it up: the
    /// exact-match table first, then the masked table.
    public struct Lookup: Sendable {
        public let rule: HardwareRule
        /// Other rules of the same table that match too (the silicon takes the first in
        /// its own ranked mask order, which may differ from the driver's).
        public let alsoMatching: Int
    }

    /// The hit for `key` (`in_port` an eSwitch port, tunnel words as the parser fills
    /// them), or nil on a miss. Counts nothing.
    public func lookup(_ key: FlowKey, tunnel: Bool = false) -> Lookup? {
        keepShadow()
        for table in [exact, masked] {
            // A frame parsed outer and inner is a candidate only for rules matching
            // tunnel fields, as in the pipeline.
            let hits = table.entries(matching: key).filter { !tunnel || Self.matchesTunnel($0.mask.bits) }
            if let first = hits.first {
                return Lookup(rule: unsafeDowncast(first, to: HardwareRule.self), alsoMatching: hits.count - 1)
            }
        }
        return nil
    }

    /// The chain rule a recirculated packet hits: `key` with its recirc_id and the ct
    /// fields the ct action set (bpf/ct.h probes only the chain table).
    public func lookupChain(_ key: FlowKey) -> Lookup? {
        keepShadow()
        let hits = masked.entries(matching: key).filter { unsafeDowncast($0, to: HardwareRule.self).table == .chain }
        return hits.first.map { Lookup(rule: unsafeDowncast($0, to: HardwareRule.self), alsoMatching: hits.count - 1) }
    }

    static func matchesTunnel(_ mask: FlowKey) -> Bool {
        let m = mask.words.span
        return (0...6).contains { m[$0] != 0 }
    }

    /// Rules installed in each table now.
    public var ruleCounts: (exact: Int, masked: Int) {
        keepShadow()
        return (exact.count, masked.count)
    }

    /// A rule's hardware counters, read from the data plane now.
    public func counters(of rule: HardwareRule) -> RuleCounters { dataPlane.ruleCounters(rule.counter) }
}
