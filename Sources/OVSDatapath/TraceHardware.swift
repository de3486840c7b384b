import ESwitch
import NetLinux
import ODP
import Packet

/// The hardware half of a trace: the parser (bpf/parse.h), the lookup (exact table,
/// then masked) and the rule's actions (bpf/actions.h), modelled on the driver's
/// shadow tables, which hold exactly what the BPF maps hold.
extension PacketTracer {
    /// FlowKey words the hardware key carries (Layout.keyWordSource, bpf/esw_shared.h).
    static let hardwareWords: Set<Int> = [0, 1, 2, 3, 4, 5, 6, 9, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22]

    /// What the hardware parser makes of a frame: the datapath's key restricted to the
    /// hardware key's words (no MPLS, ARP/ND link-layer addresses or ND target).
    static func hardwareKey(_ frame: [UInt8], port: PortIndex, tunnel: TunnelMetadata?) -> FlowKey {
        var key = FlowKey()
        frame.withUnsafeBytes { _ = FlowExtractor.extract($0.baseAddress!, length: frame.count, into: &key) }
        for w in 0..<FlowKey.wordCount where !hardwareWords.contains(w) { key.words[w] = 0 }
        key[.mplsLSE] = 0
        key[.inPort] = UInt64(port)
        tunnel?.store(into: &key)
        return key
    }

    /// bpf/parse.h parse_vxlan: an IPv4 (IHL 5, not fragmented) UDP frame to a
    /// registered port with the VNI flag set, addressed to p0's MAC (`vtepMAC`), its IPv4
    /// header checksum right and its lengths consistent; returns the tunnel fields and
    /// the inner frame. With no `vtepMAC` (a frame the trace built, shown decoded) the
    /// MAC, checksum and lengths are not checked.
    static func parseVXLAN(_ f: [UInt8], ports: [UInt16], vtepMAC: UInt64?) -> (TunnelMetadata, [UInt8])? {
        guard f.count >= 50 + 14, f[12] == 0x08, f[13] == 0x00, f[14] == 0x45, f[23] == IPProto.udp,
              (UInt16(f[20]) << 8 | UInt16(f[21])) & 0x3fff == 0 else { return nil }
        let dport = UInt16(f[36]) << 8 | UInt16(f[37])
        guard dport != 0, ports.contains(dport), f[42] & 0x08 != 0 else { return nil }
        func be16(_ o: Int) -> UInt32 { UInt32(f[o]) << 8 | UInt32(f[o + 1]) }
        func be32(_ o: Int) -> UInt32 { (o..<o + 4).reduce(0) { $0 << 8 | UInt32(f[$1]) } }
        if let vtepMAC {
            guard vtepMAC != 0, (0..<6).reduce(UInt64(0), { $0 << 8 | UInt64(f[$1]) }) == vtepMAC else { return nil }
            var sum = stride(from: 14, to: 34, by: 2).reduce(UInt32(0)) { $0 + be16($1) }
            sum = (sum & 0xffff) + (sum >> 16)
            sum = (sum & 0xffff) + (sum >> 16)
            let total = Int(be16(16))
            guard sum == 0xffff, total >= 20 + 8 + 8 + 14, total + 14 <= f.count, Int(be16(38)) + 20 == total else { return nil }
        }
        var t = TunnelMetadata()
        t.id = UInt64(be32(46) >> 8)
        t.ipv4Src = be32(26)
        t.ipv4Dst = be32(30)
        t.tos = f[15]
        t.ttl = f[22]
        t.tpSrc = UInt16(f[34]) << 8 | UInt16(f[35])
        t.tpDst = dport
        t.flags = .key
        if f[20] & 0x40 != 0 { t.flags.insert(.dontFragment) }
        if f[40] | f[41] != 0 { t.flags.insert(.checksum) }
        return (t, Array(f[50...]))
    }

    func hardwareStage(_ frame: [UInt8], port: PortIndex, into top: inout TraceRecord) {
        guard let sw = eswitch, let p = sw.port(port) else { return }
        var hw = TraceRecord()
        hw.add("eswitch", sw.name)
        hw.add("port", hardwareNames[port] ?? "\(port)")
        hw.add("port_index", UInt64(port))
        hw.add("netdev", p.netdevName)
        // bpf/esw.bpf.c esw_port_rx: an inactive port's frames do not enter the switch.
        if !p.config.linkUp {
            hw.add("result", "dropped")
            hw.add("reason", "the port function is inactive (state inactive): its link is down")
            top.add("hardware", hw.node)
            verdicts.append("hardware: dropped: eSwitch port \(port) (\(hardwareNames[port] ?? p.netdevName)) is inactive")
            return
        }
        if let program = sw.attachedProgram(port) {
            // The port's offloaded program runs before the tables (bpf/prog_stage.h). Trace
            // does not run it: its maps may hold state a run would change. What follows is
            // what a pass leads to.
            var r = TraceRecord()
            r.add("name", program.name)
            r.add("id", UInt64(program.id))
            r.add("section", program.section)
            r.add("object", program.objectPath)
            r.add("note", "runs first, before the tables; its verdict (pass, drop, tx, redirect) decides what happens to the frame. Not run by trace: the tables below are what a pass leads to")
            hw.add("program", r.node)
            portProgram = "program \(program.name) (id \(program.id)) on port \(hardwareNames[port] ?? "\(port)") decides first (not run by trace)"
        }
        var lookups: [TraceNode] = []
        var hit: (HardwareTables.Lookup, TunnelMetadata?)?
        // The parser's VXLAN view first (4789 always, for the checksum fix, when no port is registered).
        let registered = sw.registeredVXLANPorts
        if port == .uplink, let (t, inner) = Self.parseVXLAN(frame, ports: registered.isEmpty ? [VXLAN.defaultPort] : registered,
                                                                   vtepMAC: sw.publishedVTEPMAC) {
            let key = Self.hardwareKey(inner, port: port, tunnel: t)
            let l = sw.tables.lookup(key, tunnel: true)
            lookups.append(lookupNode("vxlan", key: key, l))
            if let l { hit = (l, t) }
        }
        if hit == nil {
            let key = Self.hardwareKey(frame, port: port, tunnel: nil)
            let l = sw.tables.lookup(key)
            lookups.append(lookupNode("ethernet", key: key, l))
            if let l { hit = (l, nil) }
        }
        hw.add("lookups", .list(lookups))
        guard let (l, tunnel) = hit else {
            hw.add("result", "miss")
            hw.add("reason", missReason(frame, port: p))
            top.add("hardware", hw.node)
            toRepresentor(frame, port: p, into: &top)
            return
        }
        // bpf/esw.bpf.c exceeds_tunnel_mtu: the hardware neither fragments nor answers ICMP.
        if let e = l.rule.encapEntries.first, let up = sw.port(.uplink), frame.count + e.template.length - 14 > up.mtu {
            hw.add("result", "hit, but too big to encapsulate")
            hw.add("reason", "\(frame.count) bytes + \(e.template.length) of VXLAN exceed the uplink MTU \(up.mtu): the software path answers (ICMP or fragments)")
            top.add("hardware", hw.node)
            toRepresentor(frame, port: p, into: &top)
            return
        }
        hw.add("result", "hit")
        var last = l.rule, before: [HardwareAction] = []
        if Self.usesConntrack(l.rule) {
            // A pre-ct rule: the CT table and the chains decide (bpf/ct.h).
            let passes = conntrackPasses(l.rule, frame: frame, port: port)
            hw.add("ct_passes", .list(passes.steps))
            guard let end = passes.last else {
                top.add("hardware", hw.node)
                toRepresentor(frame, port: p, into: &top)
                return
            }
            (last, before) = (end.rule, end.nat)
        }
        hw.add("actions_applied", .list(applyHardwareActions(last, frame, tunnel: tunnel, before: before).map { .text($0) }))
        if let m = l.rule.mark {
            // Partial offload: up the representor with the mark; the datapath runs the
            // flow the mark names (the one its classifier would find, shown below).
            let named = dp.marks.holder(of: m.value).map { "ufid:" + formatUFID($0.ufid) } ?? "no flow (it would be classified)"
            hw.add("mark", "0x" + String(m.value, radix: 16) + " names " + named)
            top.add("hardware", hw.node)
            toRepresentor(frame, port: p, into: &top)
            return
        }
        top.add("hardware", hw.node)
    }

    func lookupNode(_ parser: String, key: FlowKey, _ l: HardwareTables.Lookup?) -> TraceNode {
        var r = TraceRecord()
        r.add("parser", parser)
        r.add("key", keyText(key, names: hardwareNames))
        guard let l else {
            let n = eswitch!.tables.ruleCounts
            r.add("result", "miss")
            r.add("exact_rules", n.exact)
            r.add("masked_rules", n.masked)
            if n.chain > 0 { r.add("chain_rules", n.chain) }
            return r.node
        }
        let rule = l.rule
        r.add("result", "hit")
        r.add("table", rule.table.rawValue)
        r.add("rule", rule.id)
        if let f = flow(ofRule: rule) {
            r.add("flow", "ufid:" + formatUFID(f.ufid))
        } else if let f = flow(replacing: rule) {
            r.add("flow", "ufid:" + formatUFID(f.ufid))
            r.add("note", "the flow's change of actions waits for the firmware: this is its previous rule, which packets meet until the new one is written over it")
        }
        r.add("match", matchText(key: rule.spec.key, mask: rule.spec.mask, names: hardwareNames))
        r.add("actions", rule.actions.map(describe).joined(separator: ","))
        let c = eswitch!.tables.counters(of: rule)
        r.add("packets", c.packets)
        r.add("bytes", c.bytes)
        r.add("used", Self.age(c.lastUsedNanoseconds))
        if l.alsoMatching > 0 {
            r.add("also_matching", "\(l.alsoMatching) more rule(s) of this table match, under masks the silicon tries later")
        }
        return r.node
    }

    /// "0.532s ago" as dump-flows ages hits, or "never".
    static func age(_ nanoseconds: UInt64) -> String {
        guard nanoseconds != 0 else { return "never" }
        let milliseconds = (Sys.monotonicNanoseconds() &- nanoseconds) / 1_000_000
        return "\(milliseconds / 1000)." + String(String(1000 + milliseconds % 1000).dropFirst()) + "s ago"
    }

    /// The datapath flow a hardware rule was made for.
    func flow(ofRule rule: HardwareRule) -> DatapathFlow? {
        var found: DatapathFlow?
        dp.forEachFlow { f in if case .hardware(let h) = f.offload, h.id == rule.id { found = f } }
        return found
    }

    /// The flow whose rule waits to be written over `rule` (a change of actions).
    func flow(replacing rule: HardwareRule) -> DatapathFlow? {
        var found: DatapathFlow?
        dp.forEachFlow { f in
            if case .hardware(let h) = f.offload, eswitch?.rule(h)?.replacing === rule { found = f }
        }
        return found
    }

    /// Why nothing in hardware matched: the software flow that would take the packet and
    /// why it is not offloaded, if there is one.
    func missReason(_ frame: [UInt8], port: ESwitchPort) -> String {
        let base = "no hardware rule matches"
        guard let rep = port.representor, let v = dp.port(named: rep.name) else { return base }
        let key = softwareKey(frame, vport: v, tunnel: nil)
        guard let f = dp.table.classifier.entries(matching: key).first.map({ unsafeDowncast($0, to: DatapathFlow.self) }) else {
            return base + "; no datapath flow matches either"
        }
        let flow = "; the matching datapath flow ufid:\(formatUFID(f.ufid))"
        switch dp.offloadStatus(of: f) {
        case .software(let why): return base + flow + " is not offloaded: \(why)"
        case .pending: return base + flow + " has a rule the firmware has not written yet"
        case .failed(let why): return base + flow + " has a rule the hardware refused after the add: \(why)"
        case .partial: return base + flow + " has a partial rule that does not match the hardware's key"
        case .offloaded: return base + flow + " has a rule that does not match the hardware's key"
        }
    }

    /// A miss goes up the port's representor, where the host (and the datapath, when
    /// the representor is one of its ports) receives it.
    func toRepresentor(_ frame: [UInt8], port: ESwitchPort, into top: inout TraceRecord) {
        guard let rep = port.representor else {
            verdicts.append("dropped: eSwitch port \(port.index) has no representor")
            return
        }
        if let v = dp.port(named: rep.name) {
            top.add("to_representor", rep.name)
            top.add("software", softwareStage(frame, vport: v, tunnel: nil, depth: 0))
            return
        }
        top.add("to_representor", rep.name + " (not a datapath port: the host's stack receives it)")
        // The host's UDP stack hands VXLAN payloads to a vxlan vport's socket.
        if port.index == .uplink {
            let vxlanPorts = dp.allPorts.filter { $0.type == .vxlan }
            // The host's stack takes frames to p0's MAC with a good header, as the pipeline's parser.
            if let (t, inner) = Self.parseVXLAN(frame, ports: vxlanPorts.map(\.udpPort), vtepMAC: eswitch?.publishedVTEPMAC ?? 0),
               let v = vxlanPorts.first(where: { $0.udpPort == t.tpDst }) {
                // What the vport reports (VXLANPort.receiveTunnel): the parser's tunnel
                // fields, df and csum among them from the pipeline's note in the frame.
                top.add("software", softwareStage(inner, vport: v, tunnel: t, depth: 0))
                return
            }
        }
        verdicts.append("host stack: received on \(rep.name)")
    }

    func describe(_ a: HardwareAction) -> String {
        switch a {
        case .forward(let p): "forward(\(hardwareNames[p] ?? "\(p)"))"
        case .drop: "drop"
        case .pushVLAN(let tpid, let tci): "vlan_push(tpid=0x\(String(tpid, radix: 16)),vid=\(tci & VLAN.vidMask),pcp=\(tci >> VLAN.pcpShift))"
        case .popVLAN: "vlan_pop"
        case .setEthernet(let s, let sm, let d, let dm):
            "modify_header(eth" + [(sm, "src", s), (dm, "dst", d)].filter { $0.0 != 0 }.map { "\($0.1)=\(AddressText.mac($0.2))" }.joined(separator: ",").wrapped + ")"
        case .setIPv4(let v, let m):
            "modify_header(ipv4" + ([m.src != 0 ? "src=\(AddressText.ipv4(v.src))" : nil, m.dst != 0 ? "dst=\(AddressText.ipv4(v.dst))" : nil,
                                    m.tos != 0 ? "tos=\(v.tos)" : nil, m.ttl != 0 ? "ttl=\(v.ttl)" : nil].compactMap { $0 }.joined(separator: ",")).wrapped + ")"
        case .setIPv6(let v, let m):
            "modify_header(ipv6" + ([m.src != 0 ? "src=\(AddressText.ipv6(v.src))" : nil, m.dst != 0 ? "dst=\(AddressText.ipv6(v.dst))" : nil,
                                    m.hlimit != 0 ? "hlimit=\(v.hlimit)" : nil].compactMap { $0 }.joined(separator: ",")).wrapped + ")"
        case .setTransport(let proto, let s, let sm, let d, let dm):
            "modify_header(\(proto == IPProto.tcp ? "tcp" : "udp")" + ([sm != 0 ? "src=\(s)" : nil, dm != 0 ? "dst=\(d)" : nil].compactMap { $0 }.joined(separator: ",")).wrapped + ")"
        case .encap(let e): "tunnel_encap(\(e.key), entry \(e.id))"
        case .decap: "tunnel_decap"
        case .hint(let m): "mark(0x\(String(m.value, radix: 16))),to_representor"
        case .conntrack(let zone, let nat): "ct(zone=\(zone)\(nat ? ",nat" : ""))"
        case .recirculate(let id): "goto_chain(recirc_id=0x\(String(id, radix: 16)))"
        }
    }

    /// Runs a rule's actions on a copy of the frame, as bpf/actions.h does; returns what
    /// each did and records the outputs.
    func applyHardwareActions(_ rule: HardwareRule, _ frame: [UInt8], tunnel: TunnelMetadata?,
                              before: [HardwareAction] = []) -> [String] {
        guard var b = buffer(frame) else { return ["(no buffer for the trace)"] }
        var key = FlowKey(), offsets = HeaderOffsets()
        func reparse() {
            if case .success(let o) = FlowExtractor.extract(b.data, length: b.length, into: &key) { offsets = o }
        }
        reparse()
        var steps: [String] = []
        var encapsulated: TunnelMetadata?
        var forwarded = false
        // The connection's NAT is written at the ct action (first, when the rule has one).
        var list = before + rule.actions
        if case .conntrack = rule.actions.first { list = [rule.actions[0]] + before + rule.actions.dropFirst() }
        for a in list {
            switch a {
            case .forward(let p):
                let name = hardwareNames[p] ?? "\(p)"
                let port = eswitch!.port(p)
                let destination = p == .uplink ? "the wire (uplink \(port?.netdevName ?? "?"))" : "VF netdev \(port?.netdevName ?? "?")"
                // bpf/actions.h output: an inactive port takes nothing (tx_dropped).
                if let port, !port.config.linkUp {
                    steps.append("forward to eSwitch port \(p) (\(name)): dropped, the port is inactive")
                    verdicts.append("hardware: dropped at eSwitch port \(p) (\(name)): the port is inactive")
                    forwarded = true
                    continue
                }
                steps.append("forward to eSwitch port \(p) (\(name)): \(destination)")
                var out = frameNode(b.bytes, names: hardwareNames)
                if let t = encapsulated, let (tunnel, inner) = Self.parseVXLAN(b.bytes, ports: [t.tpDst], vtepMAC: nil) {
                    out = frameNode(b.bytes, inner: inner, tunnel: tunnel, names: hardwareNames)
                }
                var r = TraceRecord()
                r.add("path", "hardware")
                r.add("port", name)
                r.add("where", destination)
                r.fields += out.fields
                outputs.append(r.node)
                verdicts.append("hardware: \(destination)")
                forwarded = true
            case .drop:
                steps.append("drop")
                if !forwarded { verdicts.append("hardware: dropped by rule \(rule.id)") }
                return steps
            case .pushVLAN(let tpid, let tci):
                _ = HeaderRewrite.pushVLAN(&b, offsets: &offsets, key: &key, tpid: tpid, tci: tci)
                steps.append(describe(a))
            case .popVLAN:
                HeaderRewrite.popVLAN(&b, offsets: &offsets, key: &key)
                steps.append(describe(a))
            case .setEthernet(let s, let sm, let d, let dm):
                HeaderRewrite.setEthernet(&b, key: &key, src: s, srcMask: sm, dst: d, dstMask: dm)
                steps.append(describe(a))
            case .setIPv4(let v, let m):
                HeaderRewrite.setIPv4(&b, offsets: offsets, key: &key, value: v, mask: m)
                steps.append(describe(a))
            case .setIPv6(let v, let m):
                HeaderRewrite.setIPv6(&b, offsets: offsets, key: &key, value: v, mask: m)
                steps.append(describe(a))
            case .setTransport(let proto, let s, let sm, let d, let dm):
                HeaderRewrite.setPorts(&b, offsets: offsets, key: &key, proto: proto, src: s, srcMask: sm, dst: d, dstMask: dm)
                steps.append(describe(a))
            case .encap(let e):
                let tos = UInt8(truncatingIfNeeded: key[.ipTOS])
                let ok = e.template.bytes.withUnsafeBytes { t in
                    VXLAN.encapsulate(&b, template: t, isIPv6: e.template.isIPv6, udpChecksum: e.template.checksum,
                                      sourcePort: VXLAN.sourcePort(hash: key.hashValue32), innerTOS: tos, ipID: 0)
                }
                steps.append(describe(a) + (ok ? ": outer Ethernet/IP/UDP/VXLAN from the shared entry (UDP source port from the flow hash)" : ": no room"))
                var t = e.key.tunnel
                t.tpDst = e.key.udpPort
                encapsulated = t
            case .decap:
                if tunnel != nil, b.length > VXLAN.overheadIPv4 {
                    _ = b.pull(VXLAN.overheadIPv4)
                    reparse()
                    steps.append("tunnel_decap: outer Ethernet/IPv4/UDP/VXLAN removed")
                } else {
                    steps.append("tunnel_decap: the frame was not parsed as VXLAN; nothing removed")
                }
            case .conntrack, .recirculate:
                // Only in pre-ct rules, which conntrackPasses runs (never the last rule).
                steps.append(describe(a))
            case .hint:
                // Partial offload: the software datapath runs the flow the mark names.
                steps.append(describe(a) + ": the software datapath runs the flow this mark names, without classifying")
                forwarded = true
            }
        }
        if !forwarded { verdicts.append("hardware: rule \(rule.id) has no output (dropped)") }
        return steps
    }
}

extension String {
    /// "=x,y" after a header name, or nothing when no field is set.
    fileprivate var wrapped: String { isEmpty ? "" : "(" + self + ")" }
}
