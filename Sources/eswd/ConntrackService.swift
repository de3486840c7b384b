import Conntrack
import ControlProtocol
import Glibc
import Netlink
import NetLinux
import OVSDatapath

/// The esw_conntrack family: the datapath's connection tracker for ovs-dpctl's
/// dump-conntrack, flush-conntrack and ct-* commands. Entries and reports travel as
/// the text OVS prints, formatted where the tracker keeps them.
enum ConntrackService {
    static func handle(_ m: GenericMessage, datapath: Datapath?, _ r: inout ControlServer.Reply) throws(RequestError) {
        guard let dp = datapath else { throw RequestError(ENODEV, "no datapath (add one with add-dp)") }
        let tracker = dp.conntrack
        let a = try RequestAttributes(m.attributes)
        let zones = try zonesGiven(m.attributes)
        func reply(_ build: (inout AttributeWriter) -> Void) throws(RequestError) {
            var w = AttributeWriter()
            build(&w)
            r.message(.reply(family: Family.conntrack, command: m.command, sequence: r.sequence, multi: false, attributes: try w.replyAttributes()))
        }
        switch m.command {
        case ConntrackCmd.dump:
            let verbose = a.has(ConntrackAttr.verbose), statistics = a.has(ConntrackAttr.statistics)
            let now = Sys.monotonicNanoseconds()
            for e in tracker.entries(zone: zones.first, now: now) {
                var w = AttributeWriter()
                w.putString(ConntrackAttr.line, ConnectionTracker.format(e, verbose: verbose, statistics: statistics))
                r.message(.reply(family: Family.conntrack, command: m.command, sequence: r.sequence, multi: true, attributes: try w.replyAttributes()))
            }
        case ConntrackCmd.flush:
            var filter: CTTupleFilter?
            let originalText = try a.string(ConntrackAttr.tuple), replyText = try a.string(ConntrackAttr.replyTuple)
            if originalText != nil || replyText != nil {
                do { filter = try CTTupleFilter.parse(original: originalText ?? "", reply: replyText) } catch {
                    throw RequestError(EINVAL, "flush-conntrack: \(error)")
                }
            }
            let n = tracker.flush(zone: zones.first, tuple: filter)
            dp.settleConntrackOffload()
            if n == 0, let f = filter, f.isFiveTuple {
                // conntrack_flush_tuple: a full 5-tuple that names no connection is ENOENT.
                throw RequestError(ENOENT, "flush-conntrack: no connection has this tuple (it must be the original, pre-NAT one)")
            }
            try reply { $0.putU32(ConntrackAttr.count, UInt32(clamping: n)) }
        case ConntrackCmd.statsGet:
            let st = tracker.statistics(zone: zones.first, now: Sys.monotonicNanoseconds())
            let text = ConnectionTracker.formatStatistics(st, verbose: a.has(ConntrackAttr.verbose))
            try reply { $0.putString(ConntrackAttr.text, text) }
        case ConntrackCmd.maxConnectionsSet:
            guard let n = try a.u32(ConntrackAttr.count) else { throw RequestError(EINVAL, "ct-set-maxconns: no maximum given") }
            tracker.maxConnections = n
        case ConntrackCmd.maxConnectionsGet:
            try reply { $0.putU32(ConntrackAttr.count, tracker.maxConnections) }
        case ConntrackCmd.limitsSet:
            for l in try limitsGiven(m.attributes) { tracker.setZoneLimit(zone: l.zone, limit: l.limit) }
        case ConntrackCmd.limitsDel:
            guard !zones.isEmpty else { throw RequestError(EINVAL, "ct-del-limits: no zone given") }
            for z in zones { tracker.removeZoneLimit(zone: z) }
        case ConntrackCmd.limitsGet:
            let l = tracker.zoneLimits(zones: zones.isEmpty ? nil : zones)
            let text = ConnectionTracker.formatZoneLimits(defaultLimit: l.defaultLimit, zones: l.zones)
            try reply { $0.putString(ConntrackAttr.text, text) }
        default:
            throw RequestError(EOPNOTSUPP, "unknown conntrack command \(m.command)")
        }
    }

    /// Every `zone` attribute, in order. A malformed one is EINVAL: dropping it would
    /// widen the request to every zone (a flush of all connections).
    static func zonesGiven(_ bytes: ArraySlice<UInt8>) throws(RequestError) -> [UInt16] {
        do {
            return try AttributeParser.parse(bytes).filter { $0.type == ConntrackAttr.zone }.map { try $0.u16() }
        } catch {
            throw RequestError(EINVAL, "conntrack: malformed zone attribute: \(error)")
        }
    }

    static func limitsGiven(_ bytes: ArraySlice<UInt8>) throws(RequestError) -> [(zone: UInt16?, limit: UInt32)] {
        var out: [(zone: UInt16?, limit: UInt32)] = []
        do {
            for a in try AttributeParser.parse(bytes) where a.type == ConntrackAttr.limit {
                let subs = try a.nestedAttributes()
                guard let l = subs.first(where: { $0.type == ConntrackAttr.limitValue }) else {
                    throw RequestError(EINVAL, "ct-set-limits: a limit without a value")
                }
                out.append((try subs.first(where: { $0.type == ConntrackAttr.zone })?.u16(), try l.u32()))
            }
        } catch let e as RequestError {
            throw e
        } catch {
            throw RequestError(EINVAL, "ct-set-limits: \(error)")
        }
        guard !out.isEmpty else { throw RequestError(EINVAL, "ct-set-limits: no limit given") }
        return out
    }
}
