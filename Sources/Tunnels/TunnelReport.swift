import ESwitch
import OVSDatapath
import Packet

/// One line of `dump-tunnels`: an encap entry in hardware, or a tunnel that encap
/// flows want but that is not in hardware (with the reason).
public struct EncapReport: Sendable {
    public var entryID: UInt32?
    public var vni: UInt64
    public var endpoint: IPAddress
    public var source: IPAddress?
    public var udpPort: UInt16
    public var egress: String
    public var neighbour: IPAddress?
    /// The MAC in the hardware header (entries) or the neighbour table (pending).
    public var neighbourMAC: UInt64?
    public var neighbourState: String
    public var flows: Int
    public var valid: Bool
    public var reason: String?
}

extension TunnelTracker {
    public func report() -> [EncapReport] {
        var out: [EncapReport] = []
        let uplinkName = sw.port(.uplink)?.representor?.name ?? "-"
        for e in sw.encapEntries.sorted(by: { $0.id < $1.id }) {
            let t = e.template
            let nk = encapNeighbour[e.key]
            let n = nk.flatMap { neighbours[$0] }
            let headerMAC = t.bytes.count >= 6 ? t.bytes.be48(0) : 0
            let source: IPAddress? = t.isIPv6
                ? IPAddress(bytes: t.bytes, at: 22, count: 16) : IPAddress(bytes: t.bytes, at: 26, count: 4)
            let valid = n?.isValid == true && n?.mac == headerMAC
            out.append(EncapReport(entryID: e.id, vni: e.key.tunnel.id, endpoint: IPAddress.endpoints(of: e.key.tunnel).remote,
                                   source: source, udpPort: e.key.udpPort, egress: uplinkName, neighbour: nk?.address,
                                   neighbourMAC: headerMAC, neighbourState: n?.stateName ?? "NONE", flows: e.users,
                                   valid: valid, reason: valid ? nil : "neighbour entry does not match the header"))
        }
        // Encap flows kept in software, grouped by tunnel.
        struct Pending { var flows = 0; var reason = "" }
        var pending: [TunnelMetadata: Pending] = [:]
        var order: [TunnelMetadata] = []
        for f in datapath?.allFlows ?? [] {
            guard let d = f.tunnelDependency, d.kind == .encap, let why = f.softwareReason else { continue }
            if pending[d.remote] == nil { order.append(d.remote) }
            pending[d.remote, default: Pending()].flows += 1
            pending[d.remote]?.reason = why
        }
        for t in order {
            let remote = IPAddress.endpoints(of: t).remote
            let nk = remoteNeighbourKey(remote)
            let n = nk.flatMap { neighbours[$0] }
            out.append(EncapReport(entryID: nil, vni: t.id, endpoint: remote, source: nil, udpPort: t.tpDst,
                                   egress: nk.flatMap { links[$0.ifindex]?.name } ?? "-", neighbour: nk?.address,
                                   neighbourMAC: n?.mac, neighbourState: n?.stateName ?? "NONE", flows: pending[t]!.flows,
                                   valid: false, reason: pending[t]!.reason))
        }
        return out
    }
}

extension IPAddress {
    init?(bytes: [UInt8], at offset: Int, count: Int) {
        guard offset + count <= bytes.count else { return nil }
        let r: IPAddress? = bytes.withUnsafeBytes { IPAddress(bytes: $0.baseAddress! + offset, count: count) }
        guard let r else { return nil }
        self = r
    }
}
