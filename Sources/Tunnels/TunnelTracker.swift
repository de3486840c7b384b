import CMnl
import ESwitch
import Logging
import NetLinux
import OVSDatapath
import Packet

/// A neighbour as the kernel keys it: the device and the next hop's address.
public struct NeighbourKey: Hashable, Sendable {
    public var ifindex: Int32
    public var address: IPAddress
}

/// Follows the kernel's routes, neighbours, links and addresses in the daemon's
/// namespace and keeps tunnel offload true to them, the way mlx5's tc tunnel code
/// does: encap entries are built from the route and neighbour the kernel would use,
/// rewritten in place when the neighbour's MAC changes, withdrawn when it becomes
/// invalid, and every tunnel flow is re-evaluated when routing changes. All of it
/// runs on the control thread.
public final class TunnelTracker: TunnelOffloadResolver {
    let sw: ESwitch
    /// The datapath whose tunnel flows it keeps true (its `link`: not a weak reference).
    public var datapathLink: BackReference<Datapath>?
    var datapath: Datapath? { datapathLink?.object }
    let logger: Logger
    private var events: RouteSocket
    var kernel: KernelTables

    // Mirrors of the kernel's tables (links and neighbours; routes are asked for).
    private(set) var links: [Int32: LinkEntry] = [:]
    private(set) var neighbours: [NeighbourKey: NeighbourEntry] = [:]

    // What offload decisions depended on.
    private struct RouteQuery: Hashable { var destination: IPAddress; var source: IPAddress? }
    private var routeCache: [RouteQuery: Result<RouteEntry, OffloadFailure>] = [:]
    private(set) var encapNeighbour: [EncapKey: NeighbourKey] = [:]
    private var remoteNeighbour: [IPAddress: NeighbourKey] = [:]
    private var lastSolicited: [NeighbourKey: UInt64] = [:]
    private var lastKeepalive: UInt64 = 0
    private var keepaliveInterval: UInt64 = 500_000_000
    private var keepaliveIntervalRead: UInt64 = 0
    /// Packets each encap rule had counted at the previous keepalive round.
    private var packetsSeen: [UInt64: UInt64] = [:]

    public struct Statistics: Sendable {
        public var events: UInt64 = 0
        public var malformed: UInt64 = 0
        public var resyncs: UInt64 = 0
        public var encapRewrites: UInt64 = 0
        public var reevaluations: UInt64 = 0
        public var keepalives: UInt64 = 0
        public var solicitations: UInt64 = 0
        /// The latest neighbour change that rewrote encap entries: how many, and how
        /// long from reading the event to the last entry rewritten.
        public var lastRewriteEntries: UInt64 = 0
        public var lastRewriteNanoseconds: UInt64 = 0
    }
    public private(set) var statistics = Statistics()

    public init(eswitch: ESwitch, logger: Logger) throws(SystemError) {
        sw = eswitch
        self.logger = logger
        let groups = [RTNLGRP_LINK, RTNLGRP_NEIGH, RTNLGRP_IPV4_IFADDR, RTNLGRP_IPV4_ROUTE, RTNLGRP_IPV6_IFADDR,
                      RTNLGRP_IPV6_ROUTE].map { UInt32($0.rawValue) }
        events = try RouteSocket(groups: groups, nonBlocking: true)
        kernel = try KernelTables()
        resync()
    }

    public var eventFD: Int32 { events.fd }

    // MARK: TunnelOffloadResolver

    public func encapEntry(for tunnel: TunnelMetadata, vport: Vport) -> Result<EncapEntry, OffloadFailure> {
        let (remote, local) = IPAddress.endpoints(of: tunnel)
        guard !remote.isZero else { return .failure(.tunnel("set(tunnel) has no destination")) }
        guard let uplink = uplinkRepresentor() else {
            return .failure(.tunnel("no uplink representor (eswitch not in switchdev mode)"))
        }
        let route: RouteEntry
        switch lookupRoute(to: remote, from: local.isZero ? nil : local) {
        case .success(let r): route = r
        case .failure(let f): return .failure(f)
        }
        guard route.outputInterface == uplink.ifindex else { return .failure(notOnSwitch(remote, route)) }
        // The wire is down (p0 follows the uplink's carrier): nothing to resolve or send.
        guard uplink.hasCarrier else { return .failure(.tunnel("\(uplink.name) has no carrier")) }
        let nk = NeighbourKey(ifindex: uplink.ifindex, address: route.gateway ?? remote)
        remoteNeighbour[remote] = nk
        guard let n = neighbours[nk], n.isValid, let mac = n.mac else {
            solicit(nk)
            // Transient: the kernel is resolving it (EAGAIN under skip_sw, not EOPNOTSUPP).
            return .failure(.tunnel("neighbour \(nk.address) not resolved", errno: EAGAIN))
        }
        let source = local.isZero ? route.preferredSource : local
        guard let source, source.family == remote.family else {
            return .failure(.tunnel("no source address towards \(remote)"))
        }
        let udpPort = tunnel.tpDst != 0 ? tunnel.tpDst : vport.udpPort
        let header = Self.header(tunnel: tunnel, source: source, ethSrc: uplink.mac, ethDst: mac, udpPort: udpPort)
        let key = EncapKey(tunnel: tunnel, udpPort: udpPort, egress: .uplink)
        switch sw.encapEntry(for: key, header: header) {
        case .success(let e):
            // A shared entry built from older routing or neighbour state is brought up to date.
            if e.template != header {
                sw.rewriteEncap(e, header: header)
                statistics.encapRewrites += 1
            }
            encapNeighbour[key] = nk
            return .success(e)
        case .failure(let f):
            return .failure(f)
        }
    }

    public func decapIngress(for remote: TunnelMetadata, vport: Vport) -> Result<PortIndex, OffloadFailure> {
        // The flow's tunnel source is the far end; its packets come in where the route to it goes out.
        let (local, far) = IPAddress.endpoints(of: remote)
        guard !far.isZero else { return .failure(.unsupportedMatch(field: "tunnel without a remote endpoint")) }
        guard let uplink = uplinkRepresentor() else {
            return .failure(.tunnel("no uplink representor (eswitch not in switchdev mode)"))
        }
        switch lookupRoute(to: far, from: local.isZero ? nil : local) {
        case .success(let r):
            guard r.outputInterface == uplink.ifindex else { return .failure(notOnSwitch(far, r)) }
            return .success(.uplink)
        case .failure(let f):
            return .failure(f)
        }
    }

    static func header(tunnel: TunnelMetadata, source: IPAddress, ethSrc: UInt64, ethDst: UInt64,
                       udpPort: UInt16) -> VXLAN.EncapTemplate {
        switch source {
        case .v4(let a): VXLAN.template(ethSrc: ethSrc, ethDst: ethDst, tunnel: tunnel, srcIPv4: a, udpDst: udpPort)
        case .v6(let a): VXLAN.template(ethSrc: ethSrc, ethDst: ethDst, tunnel: tunnel, srcIPv6: a, udpDst: udpPort)
        }
    }

    private func notOnSwitch(_ remote: IPAddress, _ r: RouteEntry) -> OffloadFailure {
        let dev = r.outputInterface.flatMap { links[$0]?.name } ?? "no device"
        return .tunnel("route to \(remote) via \(dev) is not on this switch")
    }

    /// The uplink representor's link (p0), if the switch is in switchdev mode.
    func uplinkRepresentor() -> LinkEntry? {
        guard let name = sw.port(.uplink)?.representor?.name else { return nil }
        if let l = links.values.first(where: { $0.name == name && !$0.deleted }) { return l }
        // Created after our last link dump (a mode switch): read the links again.
        if let fresh = try? kernel.links() {
            for l in fresh { links[l.ifindex] = l }
        }
        return links.values.first { $0.name == name }
    }

    private func lookupRoute(to destination: IPAddress, from source: IPAddress?) -> Result<RouteEntry, OffloadFailure> {
        let q = RouteQuery(destination: destination, source: source)
        if let cached = routeCache[q] { return cached }
        let result: Result<RouteEntry, OffloadFailure>
        do {
            let r = try kernel.route(to: destination, from: source)
            if r.type != UInt8(RTN_UNICAST) {
                result = .failure(.tunnel("route to \(destination) is not unicast (type \(r.type))"))
            } else {
                result = .success(r)
            }
        } catch {
            // The kernel answers ENETUNREACH as well for a source that is not a local
            // address (ip_route_output_key_hash_rcu): the source is named with the route.
            let noRoute = source.map { "no route to \(destination) from \($0)" } ?? "no route to \(destination)"
            switch error.errno {
            // The lookup's own errno (ENETUNREACH, as mlx5 returns it; ENOENT: no table).
            case ENETUNREACH, EHOSTUNREACH: result = .failure(.tunnel(noRoute, errno: error.errno))
            case ENOENT: result = .failure(.tunnel(noRoute, errno: ENETUNREACH))
            case EINVAL: result = .failure(.tunnel("\(source.map { "\($0)" } ?? "source") is not a local address"))
            default: result = .failure(.tunnel("route lookup for \(destination): \(error)"))
            }
        }
        routeCache[q] = result
        return result
    }

    /// Asks the kernel to resolve a neighbour (at most once a second per neighbour).
    private func solicit(_ nk: NeighbourKey) {
        let now = Sys.monotonicNanoseconds()
        if let t = lastSolicited[nk], now &- t < 1_000_000_000 { return }
        lastSolicited[nk] = now
        statistics.solicitations += 1
        do { try kernel.useNeighbour(ifindex: nk.ifindex, address: nk.address) } catch {
            logger.warning("neighbour resolution request failed", metadata: ["neighbour": "\(nk.address)", "error": "\(error)"])
        }
    }

    func remoteNeighbourKey(_ remote: IPAddress) -> NeighbourKey? { remoteNeighbour[remote] }

    // MARK: Events

    /// Reads every pending rtnetlink notification and brings offload in line with it.
    public func processEvents() {
        let started = Sys.monotonicNanoseconds()
        var changedNeighbours: [NeighbourKey: NeighbourEntry?] = [:]
        var routingChanged = false
        var lost = false
        var batch: [RouteEvent] = []
        var bad = 0
        while true {
            do {
                let status = try events.receive { nlh in
                    if let e = RouteMessageDecoder.decode(nlh) { batch.append(e) } else { bad += 1 }
                }
                if status == .empty { break }
            } catch {
                // ENOBUFS: notifications were lost; the mirrors cannot be trusted.
                logger.warning("rtnetlink notifications lost, resynchronising", metadata: ["error": "\(error)"])
                lost = true
                break
            }
        }
        statistics.malformed += UInt64(bad)
        statistics.events += UInt64(batch.count)
        for e in batch {
            switch e {
            case .neighbour(let n):
                let k = NeighbourKey(ifindex: n.ifindex, address: n.address)
                let old = neighbours[k]
                if n.deleted { neighbours[k] = nil } else { neighbours[k] = n }
                if old?.mac != n.mac || old?.isValid != n.isValid {
                    if changedNeighbours[k] == nil { changedNeighbours[k] = .some(old) }
                }
            case .route:
                routingChanged = true
            case .address:
                routingChanged = true
            case .link(let l):
                let old = links[l.ifindex]
                if l.deleted { links[l.ifindex] = nil } else { links[l.ifindex] = l }
                if old?.mac != l.mac || old?.isUp != l.isUp || old?.hasCarrier != l.hasCarrier || old?.name != l.name || l.deleted { routingChanged = true }
                if l.deleted { neighbours = neighbours.filter { $0.key.ifindex != l.ifindex } }
            case .other:
                break
            }
        }
        if lost {
            resync()
            routingChanged = true
        }
        if routingChanged {
            reevaluateAll()
            return
        }
        for (k, old) in changedNeighbours {
            neighbourChanged(k, before: old ?? nil, started: started)
        }
    }

    /// Re-reads links and neighbours and forgets every cached route.
    func resync() {
        statistics.resyncs += 1
        routeCache.removeAll()
        if let l = try? kernel.links() { links = Dictionary(l.map { ($0.ifindex, $0) }, uniquingKeysWith: { $1 }) }
        if let n = try? kernel.neighbours() {
            neighbours = Dictionary(n.map { (NeighbourKey(ifindex: $0.ifindex, address: $0.address), $0) }, uniquingKeysWith: { $1 })
        }
    }

    /// Routing changed somewhere: every tunnel flow is decided again (cheap when
    /// nothing it depends on moved: unchanged rules are left alone).
    func reevaluateAll() {
        routeCache.removeAll()
        remoteNeighbour.removeAll()
        statistics.reevaluations += 1
        guard let dp = datapath else { return }
        let r = dp.reevaluateTunnelFlows()
        if r.offloaded + r.software > 0 {
            logger.info("routing changed", metadata: ["re-offloaded": "\(r.offloaded)", "to software": "\(r.software)"])
        }
    }

    private func neighbourChanged(_ k: NeighbourKey, before old: NeighbourEntry?, started: UInt64) {
        let now = neighbours[k]
        let wasValid = old?.isValid ?? false
        let isValid = now?.isValid ?? false
        if isValid, let mac = now?.mac {
            // Same validity, new address: rewrite the shared entries in place; no flow changes.
            var rewritten: UInt64 = 0
            for e in sw.encapEntries where encapNeighbour[e.key] == k {
                var t = e.template
                guard t.bytes.count >= 6, t.bytes.be48(0) != mac else { continue }
                for i in 0..<6 { t.bytes[i] = UInt8(truncatingIfNeeded: mac >> UInt64(40 - 8 * i)) }
                sw.rewriteEncap(e, header: t)
                rewritten += 1
            }
            if rewritten > 0 {
                statistics.encapRewrites += rewritten
                statistics.lastRewriteEntries = rewritten
                statistics.lastRewriteNanoseconds = Sys.monotonicNanoseconds() &- started
                logger.info("neighbour changed: encap entries rewritten",
                            metadata: ["neighbour": "\(k.address)", "lladdr": "\(AddressText.mac(mac))", "entries": "\(rewritten)"])
            }
        }
        if wasValid != isValid {
            // Flows waiting for this neighbour come to hardware; flows using it leave.
            guard let dp = datapath else { return }
            let r = dp.reevaluateTunnelFlows { f in
                guard let d = f.tunnelDependency, d.kind == .encap else { return false }
                return self.remoteNeighbour[IPAddress.endpoints(of: d.remote).remote] == k
            }
            logger.info("neighbour \(isValid ? "valid" : "invalid")",
                        metadata: ["neighbour": "\(k.address)", "re-offloaded": "\(r.offloaded)", "to software": "\(r.software)"])
        }
    }

    // MARK: Keepalive

    /// While offloaded encap flows carry traffic the kernel never sees, tell it their
    /// neighbours are in use, often enough that a REACHABLE entry is re-confirmed
    /// (DELAY → PROBE) instead of going STALE.
    public func tick(now: UInt64) {
        guard sw.params.neighbourKeepalive else { return }
        if now &- keepaliveIntervalRead > 10_000_000_000 {
            keepaliveIntervalRead = now
            keepaliveInterval = readKeepaliveInterval()
        }
        guard now &- lastKeepalive >= keepaliveInterval, let dp = datapath else { return }
        // No encap entry in the hardware, no offloaded encap flow: nothing to walk (a
        // table of a million flows without tunnels cost a full walk twice a second).
        guard !sw.tables.encaps.isEmpty else {
            lastKeepalive = now
            packetsSeen = [:]
            return
        }
        let since = lastKeepalive
        lastKeepalive = now
        var busy = Set<NeighbourKey>()
        var seen: [UInt64: UInt64] = [:]
        dp.forEachFlow { f in
            guard let d = f.tunnelDependency, d.kind == .encap, case .hardware(let h) = f.offload,
                  let c = sw.ruleCounters(h) else { return }
            seen[h.id] = c.packets
            // Busy: it counted packets since the last round. (The rule's last-used time is
            // the kernel's coarse clock, which can lag this one's; counts cannot.) A rule
            // met for the first time is judged by its last-used time.
            let counted = packetsSeen[h.id].map { c.packets > $0 } ?? (c.lastUsedNanoseconds > since)
            guard counted, let nk = remoteNeighbour[IPAddress.endpoints(of: d.remote).remote] else { return }
            busy.insert(nk)
        }
        packetsSeen = seen
        for nk in busy {
            do {
                try kernel.useNeighbour(ifindex: nk.ifindex, address: nk.address)
                statistics.keepalives += 1
            } catch {
                logger.debug("keepalive failed", metadata: ["neighbour": "\(nk.address)", "error": "\(error)"])
            }
        }
    }

    /// Half the uplink representor's delay_first_probe_time, between 100 ms and 1 s.
    private func readKeepaliveInterval() -> UInt64 {
        guard let name = sw.port(.uplink)?.representor?.name,
              let text = try? ProcFile.read("/proc/sys/net/ipv4/neigh/\(name)/delay_first_probe_time"),
              let seconds = UInt64(text.filter { $0.isNumber }) else { return 500_000_000 }
        return min(1_000_000_000, max(100_000_000, seconds * 500_000_000))
    }
}

extension [UInt8] {
    func be48(_ o: Int) -> UInt64 { (0..<6).reduce(UInt64(0)) { $0 << 8 | UInt64(self[o + $1]) } }
}
