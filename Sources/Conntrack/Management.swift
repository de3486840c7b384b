import Packet

/// flush-conntrack's tuple filter (OVS 3.1 ofp_ct_tuple_parse / ct_dpif_entry_cmp):
/// fields left zero match anything.
public struct CTTupleFilter: Sendable, Equatable {
    public struct Side: Sendable, Equatable {
        public var src: UInt128 = 0, dst: UInt128 = 0
        public var srcPort: UInt16 = 0, dstPort: UInt16 = 0
        public var icmpID: UInt16 = 0, icmpType: UInt8 = 0, icmpCode: UInt8 = 0
        public init() {}
        var isZero: Bool { self == Side() }
    }
    public var original = Side()
    public var reply = Side()
    public var proto: UInt8 = 0
    /// nil: either family.
    public var isIPv6: Bool?
    public init() {}

    public struct ParseError: Error, Sendable, Equatable, CustomStringConvertible {
        /// Character offset in the text of the field in error.
        public var position: Int
        public var message: String
        public var description: String { "at position \(position): \(message)" }
    }

    /// Parses the original tuple and, optionally, the reply tuple, each in OVS's syntax
    /// `ct_nw_src=…,ct_nw_dst=…,ct_ipv6_src=…,ct_ipv6_dst=…,ct_nw_proto=…,ct_tp_src=…,
    /// ct_tp_dst=…,icmp_id=…,icmp_type=…,icmp_code=…`.
    public static func parse(original: String, reply: String? = nil) throws(ParseError) -> CTTupleFilter {
        var f = CTTupleFilter()
        try parseSide(original, into: &f, reply: false)
        if let reply { try parseSide(reply, into: &f, reply: true) }
        return f
    }

    static func parseSide(_ text: String, into f: inout CTTupleFilter, reply: Bool) throws(ParseError) {
        var side = Side()
        var position = 0
        for field in text.split(separator: ",", omittingEmptySubsequences: false) {
            defer { position += field.count + 1 }
            if field.isEmpty { continue }
            let parts = field.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let key = String(parts[0])
            let value = parts.count > 1 ? String(parts[1]) : ""
            guard !value.isEmpty else { throw ParseError(position: position, message: "field \(key) missing value") }
            func fail() -> ParseError { ParseError(position: position, message: "failed to parse field \(key)") }
            switch key {
            case "ct_nw_src", "ct_nw_dst":
                if f.isIPv6 == true { throw ParseError(position: position, message: "the L3 protocol does not match \(value)") }
                guard let a = parseIPv4(value) else { throw fail() }
                if key == "ct_nw_src" { side.src = UInt128(a) } else { side.dst = UInt128(a) }
                f.isIPv6 = false
            case "ct_ipv6_src", "ct_ipv6_dst":
                if f.isIPv6 == false { throw ParseError(position: position, message: "the L3 protocol does not match \(value)") }
                guard let a = parseIPv6(value) else { throw fail() }
                if key == "ct_ipv6_src" { side.src = a } else { side.dst = a }
                f.isIPv6 = true
            case "ct_nw_proto":
                guard let p = UInt8(value) else { throw fail() }
                f.proto = p
            case "ct_tp_src", "ct_tp_dst":
                guard let p = UInt16(value) else { throw fail() }
                if key == "ct_tp_src" { side.srcPort = p } else { side.dstPort = p }
            case "icmp_type", "icmp_code", "icmp_id":
                guard f.proto == IPProto.icmp || f.proto == 58 else {
                    throw ParseError(position: position, message: "invalid L4 fields")
                }
                if key == "icmp_id" {
                    guard let v = UInt16(value) else { throw fail() }
                    side.icmpID = v
                } else {
                    guard let v = UInt8(value) else { throw fail() }
                    if key == "icmp_type" { side.icmpType = v } else { side.icmpCode = v }
                }
            default:
                throw ParseError(position: position, message: "invalid conntrack tuple field: \(key)")
            }
        }
        if f.proto == 0 && (side.srcPort != 0 || side.dstPort != 0) {
            throw ParseError(position: 0, message: "port is set without protocol")
        }
        if reply { f.reply = side } else { f.original = side }
    }

    static func parseIPv4(_ s: String) -> UInt32? {
        let parts = s.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var v: UInt32 = 0
        for p in parts {
            guard let b = UInt8(p) else { return nil }
            v = v << 8 | UInt32(b)
        }
        return v
    }

    static func parseIPv6(_ s: String) -> UInt128? {
        let halves = s.split(separator: "::", omittingEmptySubsequences: false).map(String.init)
        guard halves.count <= 2 else { return nil }
        func groups(_ h: String) -> [UInt16]? {
            if h.isEmpty { return [] }
            var out: [UInt16] = []
            for g in h.split(separator: ":", omittingEmptySubsequences: false) {
                guard g.count <= 4, let v = UInt16(g, radix: 16) else { return nil }
                out.append(v)
            }
            return out
        }
        guard let head = groups(halves[0]) else { return nil }
        var all = head
        if halves.count == 2 {
            guard let tail = groups(halves[1]), head.count + tail.count < 8 else { return nil }
            all += Array(repeating: 0, count: 8 - head.count - tail.count) + tail
        }
        guard all.count == 8 else { return nil }
        return all.reduce(UInt128(0)) { $0 << 16 | UInt128($1) }
    }

    var isZero: Bool { original.isZero && reply.isZero && proto == 0 && isIPv6 == nil }

    /// The whole original 5-tuple given and no reply side: OVS then flushes that one
    /// connection directly (in zone 0 when no zone is given).
    public var isFiveTuple: Bool {
        guard reply.isZero, isIPv6 != nil, proto != 0, original.src != 0, original.dst != 0 else { return false }
        if proto == IPProto.icmp || proto == 58 { return true }
        return original.srcPort != 0 && original.dstPort != 0
    }

    func matches(_ c: Connection) -> Bool {
        if let v6 = isIPv6, v6 != c.original.isIPv6 { return false }
        if proto != 0 && proto != c.original.proto { return false }
        return Self.side(original, matches: c.original, proto: proto) && Self.side(reply, matches: c.reply, proto: proto)
    }

    /// The exact original-direction tuple a five-tuple filter names (conntrack_flush_tuple's
    /// tuple_to_conn_key); nil if no connection can have it.
    func exactTuple(zone: UInt16) -> CTTuple? {
        guard let v6 = isIPv6 else { return nil }
        var t = CTTuple(src: v6 ? CTAddress(ipv6: original.src) : CTAddress(ipv4: UInt32(truncatingIfNeeded: original.src)),
                        dst: v6 ? CTAddress(ipv6: original.dst) : CTAddress(ipv4: UInt32(truncatingIfNeeded: original.dst)),
                        proto: proto, zone: zone)
        if proto == IPProto.icmp || proto == 58 {
            guard original.icmpCode == 0,
                  let reverse = v6 ? ICMPv6.reverse(original.icmpType) : ICMPv4.reverse(original.icmpType) else { return nil }
            PacketParser.setICMPQuery(&t, id: original.icmpID, type: original.icmpType, reply: reverse)
        } else {
            t.srcPort = original.srcPort
            t.dstPort = original.dstPort
        }
        return t
    }

    /// `proto` is the filter's protocol: OVS compares the ICMP fields (exactly, zero
    /// included) only when the filter names ICMP, and ports otherwise.
    static func side(_ s: Side, matches t: CTTuple, proto: UInt8) -> Bool {
        if s.src != 0 && s.src != t.src.value { return false }
        if s.dst != 0 && s.dst != t.dst.value { return false }
        if proto == IPProto.icmp || proto == 58 {
            return s.icmpID == t.srcPort && s.icmpType == t.srcICMPType && s.icmpCode == 0
        }
        if s.srcPort != 0 && s.srcPort != t.srcPort { return false }
        if s.dstPort != 0 && s.dstPort != t.dstPort { return false }
        return true
    }
}

/// dpctl/ct-stats-show counts.
public struct CTStatistics: Sendable, Equatable {
    public var total = 0
    public var byProtocol: [UInt8: Int] = [:]
    public var tcpStates: [TCPState: Int] = [:]
    /// Commits refused by a limit, and by NAT tuple exhaustion (not printed by OVS).
    public var refusedCommits: UInt64 = 0
    public var natExhausted: UInt64 = 0
    /// Connections whose packets the hardware handles (entries in its CT table).
    public var offloaded = 0
    public init() {}
}

extension ConnectionTracker {
    /// dpctl/flush-conntrack: all connections, one zone's, or those matching `tuple`
    /// (in `zone`, or in every zone; a full 5-tuple without zone means zone 0, as OVS).
    /// Returns how many were removed.
    public func flush(zone: UInt16?, tuple: CTTupleFilter?) -> Int {
        state.withLock { s in
            if let t = tuple, !t.isZero, t.isFiveTuple {
                // OVS flushes a full 5-tuple directly (conntrack_flush_tuple): the
                // connection holding it in `zone` (0 if none), by either direction's
                // tuple, but not by the NATed reply tuple (OVS's un-NAT entry).
                guard let exact = t.exactTuple(zone: zone ?? 0), let hit = s.lookup(exact, now: s.lastNow),
                      let c = s.connections[hit.id], !(hit.reply && c.nat != .none) else { return 0 }
                s.remove(hit.id)
                return 1
            }
            let zoneFilter = zone
            let ids = s.connections.values.filter { c in
                if let z = zoneFilter, c.original.zone != z { return false }
                if let t = tuple, !t.isZero { return t.matches(c) }
                return true
            }.map(\.id)
            for id in ids { s.remove(id) }
            return ids.count
        }
    }

    /// Statistics as of the latest clock value the tracker saw (execute or sweep).
    public func statistics(zone: UInt16?) -> CTStatistics {
        statistics(zone: zone, now: state.withLock { $0.lastNow })
    }

    public func statistics(zone: UInt16?, now: UInt64) -> CTStatistics {
        state.withLock { s in
            var st = CTStatistics()
            st.refusedCommits = s.refusedCommits
            st.natExhausted = s.natExhausted
            for c in s.connections.values where c.expiration > now && (zone == nil || c.original.zone == zone) {
                st.total += 1
                st.byProtocol[c.original.proto, default: 0] += 1
                if c.offloaded { st.offloaded += 1 }
                if case .tcp(let t) = c.proto { st.tcpStates[max(t.peers.0.state, t.peers.1.state).coalesced, default: 0] += 1 }
            }
            return st
        }
    }

    /// The text of dpctl/ct-stats-show (`verbose`: -m, TCP connections per state).
    /// ICMPv6 connections count in the total but, as in OVS 3.1, get no line.
    public static func formatStatistics(_ st: CTStatistics, verbose: Bool) -> String {
        var s = "Connections Stats:\n    Total: \(st.total)\n"
        if let n = st.byProtocol[6] {
            s += "  TCP: \(n)\n"
            if verbose {
                s += "    Conn per TCP states:\n"
                for state in TCPState.allCases { if let k = st.tcpStates[state] { s += "\t  [\(state.name)]=\(k)\n" } }
            }
        }
        let named: [(UInt8, String)] = [(17, "UDP"), (136, "UDPLITE"), (132, "SCTP"), (1, "ICMP"), (33, "DCCP"), (2, "IGMP")]
        for (p, name) in named { if let n = st.byProtocol[p] { s += "  \(name): \(n)\n" } }
        let known: Set<UInt8> = [6, 17, 136, 132, 1, 58, 33, 2]
        let other = st.byProtocol.filter { !known.contains($0.key) }.values.reduce(0, +)
        if other > 0 { s += "  Other: \(other)\n" }
        // esw's line (OVS has no offload): printed only when there is something to count,
        // so that the report is OVS's own otherwise.
        if st.offloaded > 0 { s += "  Offloaded to hardware: \(st.offloaded)\n" }
        return s
    }

    /// dpctl/ct-set-limits: `zone` nil sets the default limit (0: none).
    public func setZoneLimit(zone: UInt16?, limit: UInt32) {
        state.withLock { s in
            if let zone { s.limits.zoneLimits[zone] = limit } else { s.limits.defaultLimit = limit }
        }
    }

    /// dpctl/ct-del-limits for one zone.
    public func removeZoneLimit(zone: UInt16) {
        state.withLock { s in _ = s.limits.zoneLimits.removeValue(forKey: zone) }
    }

    /// The default limit and, per zone with its own limit (or each of `zones`, which
    /// report the default and its shared count when they have none), limit and count.
    public func zoneLimits(zones: [UInt16]? = nil) -> (defaultLimit: UInt32, zones: [CTZoneLimit]) {
        state.withLock { s in
            let l = s.limits
            let list = (zones ?? l.zoneLimits.keys.sorted()).map { z in
                let b: LimitBucket = l.zoneLimits[z] != nil ? .zone(z) : .defaultLimit
                return CTZoneLimit(zone: z, limit: l.limit(of: b), count: l.counts[b, default: 0])
            }
            return (l.defaultLimit, list)
        }
    }

    /// The text of dpctl/ct-get-limits (ct_dpif_format_zone_limits).
    public static func formatZoneLimits(defaultLimit: UInt32, zones: [CTZoneLimit]) -> String {
        var s = "default limit=\(defaultLimit)"
        for z in zones { s += "\nzone=\(z.zone),limit=\(z.limit),count=\(z.count)" }
        return s
    }
}
