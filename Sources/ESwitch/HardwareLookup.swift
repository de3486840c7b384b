import Classifier
import Packet

/// Read-only questions to the driver's shadow of the hardware tables (what the data
/// plane's maps hold), for tracing a packet without touching any counter or state of
/// the hardware. The first builds the shadow (`keepShadow`).
extension HardwareTables {
    /// The rule a packet with hardware key `key` hits, as the silicon looks it up: the
    /// exact-match table first, then the masked table, each in the order the data plane
    /// tries its masks (ranked by hits: `maskOrder`).
    public struct Lookup: Sendable {
        public let rule: HardwareRule
        /// Other rules of the same table that match too, under masks tried later.
        public let alsoMatching: Int
    }

    /// The hit for `key` (`in_port` an eSwitch port, tunnel words as the parser fills
    /// them), or nil on a miss. Counts nothing.
    public func lookup(_ key: FlowKey, tunnel: Bool = false) -> Lookup? {
        keepShadow()
        for table in [exact, masked] {
            // A frame parsed outer and inner is a candidate only for rules matching
            // tunnel fields, as in the pipeline.
            var hits = table.entries(matching: key).filter { !tunnel || Self.matchesTunnel($0.mask.bits) }
            if hits.count > 1 {
                let ranked = hits.map { (dataPlane.maskOrder($0.mask.bits, table: unsafeDowncast($0, to: HardwareRule.self).table) ?? .max, $0) }
                hits = ranked.enumerated().sorted { ($0.element.0, $0.offset) < ($1.element.0, $1.offset) }.map(\.element.1)
            }
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

    /// Rules in each table of the silicon now (chain rules share the masked table's
    /// shadow, not its map).
    public var ruleCounts: (exact: Int, masked: Int, chain: Int) {
        var n = (exact: 0, masked: 0, chain: 0)
        forEachProgrammed { r in
            switch r.table {
            case .exact: n.exact += 1
            case .masked: n.masked += 1
            case .chain: n.chain += 1
            }
        }
        return n
    }

    /// A rule's hardware counters, read from the data plane now.
    public func counters(of rule: HardwareRule) -> RuleCounters { dataPlane.ruleCounters(rule.counter) }
}
