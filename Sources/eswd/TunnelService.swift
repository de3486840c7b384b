import ControlProtocol
import ESwitch
import Logging
import Netlink
import OVSDatapath
import Packet
import Tunnels

/// The esw_tunnel family: the tunnel tracker's encap table and statistics.
final class TunnelService {
    let tracker: TunnelTracker

    init(eswitch: ESwitch, logger: Logger) throws {
        tracker = try TunnelTracker(eswitch: eswitch, logger: logger)
    }

    var eventFD: Int32 { tracker.eventFD }
    func processEvents() { tracker.processEvents() }
    func tick(now: UInt64) { tracker.tick(now: now) }

    func handle(_ m: GenericMessage, _ r: inout ControlServer.Reply) throws(RequestError) {
        let dump = m.header.flags & NetlinkFlags.dump == NetlinkFlags.dump
        switch m.command {
        case TunnelCmd.encapDump:
            for e in tracker.report() {
                var w = AttributeWriter()
                if let id = e.entryID { w.putU32(TunnelAttr.entryID, id) }
                w.putU64(TunnelAttr.vni, e.vni)
                w.putString(TunnelAttr.endpoint, "\(e.endpoint)")
                if let s = e.source { w.putString(TunnelAttr.source, "\(s)") }
                w.putU16(TunnelAttr.udpPort, e.udpPort)
                w.putString(TunnelAttr.egress, e.egress)
                if let n = e.neighbour { w.putString(TunnelAttr.neighbour, "\(n)") }
                if let mac = e.neighbourMAC { w.putString(TunnelAttr.neighbourMAC, AddressText.mac(mac)) }
                w.putString(TunnelAttr.neighbourState, e.neighbourState)
                w.putU32(TunnelAttr.flows, UInt32(e.flows))
                w.putU8(TunnelAttr.valid, e.valid ? 1 : 0)
                if let why = e.reason { w.putString(TunnelAttr.reason, why) }
                r.message(.reply(family: Family.tunnel, command: TunnelCmd.encapDump, sequence: r.sequence, multi: dump,
                                 attributes: try w.replyAttributes()))
            }
        case TunnelCmd.statsGet:
            let s = tracker.statistics
            var w = AttributeWriter()
            w.putU64Array(TunnelAttr.statistics, [s.events, s.malformed, s.resyncs, s.encapRewrites, s.reevaluations,
                                                  s.keepalives, s.solicitations, s.lastRewriteEntries, s.lastRewriteNanoseconds])
            r.message(.reply(family: Family.tunnel, command: TunnelCmd.statsGet, sequence: r.sequence, multi: false,
                             attributes: try w.replyAttributes()))
        default:
            throw RequestError(95, "unknown tunnel command \(m.command)")
        }
    }
}
