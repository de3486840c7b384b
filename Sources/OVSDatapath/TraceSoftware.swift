import Conntrack
import NetLinux
import ESwitch
import ODP
import Packet

/// The software half of a trace: the megaflow lookup and the flow's actions, run on a
/// private copy with the packet engine's rewrite helpers but without sending, counting
/// or raising upcalls.
extension PacketTracer {
    func softwareKey(_ frame: [UInt8], vport: Vport, tunnel: TunnelMetadata?) -> FlowKey {
        var key = FlowKey()
        key[.inPort] = UInt64(vport.portNumber)
        tunnel?.store(into: &key)
        frame.withUnsafeBytes { _ = FlowExtractor.extract($0.baseAddress!, length: frame.count, into: &key) }
        return key
    }

    func softwareStage(_ frame: [UInt8], vport: Vport, tunnel: TunnelMetadata?, depth: Int) -> TraceNode {
        var key = softwareKey(frame, vport: vport, tunnel: tunnel)
        var r = TraceRecord()
        r.add("datapath", dp.name)
        r.add("port", vport.name)
        r.add("port_number", UInt64(vport.portNumber))
        guard var b = buffer(frame) else {
            r.add("result", "not traced (too many copies)")
            return r.node
        }
        var offsets = HeaderOffsets()
        if case .success(let o) = FlowExtractor.extract(b.data, length: b.length, into: &key) { offsets = o }
        return lookupAndRun(&b, key: &key, offsets: &offsets, record: r, depth: depth)
    }

    func lookupAndRun(_ b: inout PacketBuffer, key: inout FlowKey, offsets: inout HeaderOffsets, record: TraceRecord,
                      depth: Int) -> TraceNode {
        var r = record
        r.add("key", keyText(key, names: dpNames))
        guard let entry = dp.table.classifier.entries(matching: key).first else {
            r.add("result", "miss")
            r.add("miss", missBehaviour(key))
            if dp.missMode == .normal {
                var steps: [TraceNode] = []
                var state = PacketEngine.ExecState()
                for port in normalOutputs(key) { output(b, to: port, key: key, state: &state, steps: &steps) }
                r.add("steps", .list(steps))
            }
            return r.node
        }
        let flow = unsafeDowncast(entry, to: DatapathFlow.self)
        r.add("result", "hit")
        r.add("flow", "ufid:" + formatUFID(flow.ufid))
        r.add("match", matchText(key: flow.match.key, mask: flow.match.mask, names: dpNames))
        r.add("actions", ActionFormatter(portNames: dpNames).format(flow.actionBytes))
        let s = flow.stats
        r.add("packets", s.packets)
        r.add("bytes", s.bytes)
        r.add("used", Self.age(s.usedNanoseconds))
        // The word dump-flows -m shows after `offloaded:` ("no" for a software flow).
        r.add("offloaded", dp.offloadStatus(of: flow).word)
        if let why = flow.softwareReason { r.add("not_offloaded", why) }
        if flow.hardwareOnly {
            // skip_sw: software never runs the flow (PacketEngine.run), whatever its actions.
            r.add("skip_sw", "the flow is hardware only: software drops the packet (counted as a hw-only drop)")
            verdicts.append("software: dropped (skip_sw flow, not run in software)")
            return r.node
        }
        var steps: [TraceNode] = []
        var state = PacketEngine.ExecState()
        run(Array(flow.compiled), &b, key: &key, offsets: &offsets, state: &state, depth: depth, steps: &steps)
        r.add("steps", .list(steps))
        return r.node
    }

    /// What a miss does, per `--miss` (nothing is raised by the trace).
    func missBehaviour(_ key: FlowKey) -> String {
        switch dp.missMode {
        case .drop:
            verdicts.append("software: miss, dropped")
            return "no megaflow matches; miss mode drop: the packet is dropped (counted as missed)"
        case .normal:
            let decision: String
            switch dp.normal.preview(key, ports: normalPorts) {
            case .forward(let p, _): decision = "forwards to \(dpNames[p] ?? "\(p)") (the destination's learned port)"
            case .flood(let ports): decision = "floods to " + (ports.isEmpty ? "no port" : ports.map { dpNames[$0] ?? "\($0)" }.joined(separator: ","))
            case .drop: decision = "drops it (the destination was learned on the input port)"
            }
            verdicts.append("software: miss, the normal handler " + decision)
            return "no megaflow matches; miss mode normal: an upcall to the built-in MAC-learning switch, which learns the source, "
                + decision + (decision.hasPrefix("forwards") ? " and installs a megaflow" : "")
        case .controller:
            verdicts.append("software: miss, upcall to the controller")
            return "no megaflow matches; miss mode controller: an OVS_PACKET_CMD_MISS upcall to the subscribed clients"
        }
    }

    /// Ports the normal handler floods to (Datapath.handleNormal's choice).
    var normalPorts: [UInt32] { dp.allPorts.filter { $0.portNumber != 0 && $0.type != .vxlan }.map(\.portNumber) }

    /// Where the normal handler would send a missed packet.
    func normalOutputs(_ key: FlowKey) -> [UInt32] {
        switch dp.normal.preview(key, ports: normalPorts) {
        case .forward(let p, _): [p]
        case .flood(let ports): ports
        case .drop: []
        }
    }

    /// The packet engine's action loop (PacketEngine.execute), recording instead of doing.
    func run(_ actions: [CompiledAction], _ b: inout PacketBuffer, key: inout FlowKey, offsets: inout HeaderOffsets,
             state: inout PacketEngine.ExecState, depth: Int, steps: inout [TraceNode]) {
        func note(_ s: String) { steps.append(.text(s)) }
        for a in actions {
            switch a {
            case .output(let n):
                output(b, to: n, key: key, state: &state, steps: &steps)
            case .userspace(let pid, _, _):
                note("userspace(pid=\(pid)): an upcall to userspace (not raised by the trace)")
                verdicts.append("software: upcall to userspace")
            case .setEthernet(let s, let sm, let d, let dm):
                HeaderRewrite.setEthernet(&b, key: &key, src: s, srcMask: sm, dst: d, dstMask: dm)
                note("set eth: src=\(AddressText.mac(key[.ethSrc])),dst=\(AddressText.mac(key[.ethDst]))")
            case .setIPv4(let v, let m):
                HeaderRewrite.setIPv4(&b, offsets: offsets, key: &key, value: v, mask: m)
                note("set ipv4: src=\(AddressText.ipv4(UInt32(truncatingIfNeeded: key[.ipv4Src]))),dst=\(AddressText.ipv4(UInt32(truncatingIfNeeded: key[.ipv4Dst]))),tos=\(key[.ipTOS]),ttl=\(key[.ipTTL]) (checksums updated)")
            case .setIPv6(let v, let m):
                HeaderRewrite.setIPv6(&b, offsets: offsets, key: &key, value: v, mask: m)
                note("set ipv6: src=\(AddressText.ipv6(key[.ipv6Src])),dst=\(AddressText.ipv6(key[.ipv6Dst])),hlimit=\(key[.ipTTL])")
            case .setPorts(let proto, let s, let sm, let d, let dm):
                HeaderRewrite.setPorts(&b, offsets: offsets, key: &key, proto: proto, src: s, srcMask: sm, dst: d, dstMask: dm)
                note("set ports: src=\(key[.tpSrc]),dst=\(key[.tpDst]) (checksum updated)")
            case .setICMP(let v6, let t, let tm, let c, let cm):
                HeaderRewrite.setICMP(&b, offsets: offsets, key: &key, v6: v6, type: t, typeMask: tm, code: c, codeMask: cm)
                note("set icmp: type=\(key[.tpSrc]),code=\(key[.tpDst])")
            case .setARP(let sip, let sipm, let tip, let tipm, let op, let opm, let sha, let sham, let tha, let tham):
                HeaderRewrite.setARP(&b, offsets: offsets, key: &key, sip: sip, sipMask: sipm, tip: tip, tipMask: tipm,
                                     op: op, opMask: opm, sha: sha, shaMask: sham, tha: tha, thaMask: tham)
                note("set arp")
            case .setMPLS(let lse, let m):
                HeaderRewrite.setMPLS(&b, offsets: offsets, key: &key, lse: lse, mask: m)
                note("set mpls")
            case .setPriority(let v, let m):
                key[.priority] = (key[.priority] & ~UInt64(m)) | UInt64(v & m)
                note("set skb_priority(\(key[.priority]))")
            case .setMark(let v, let m):
                key[.skbMark] = (key[.skbMark] & ~UInt64(m)) | UInt64(v & m)
                note("set skb_mark(\(key[.skbMark]))")
            case .setTunnel(let t):
                state.tunnelOut = t
                let to = t.ipv4Dst == 0 && t.isIPv6 ? AddressText.ipv6(t.ipv6Dst) : AddressText.ipv4(t.ipv4Dst)
                note("set tunnel: vni \(t.id) to \(to) (used by the next output to a vxlan port)")
            case .pushVLAN(let tpid, let tci):
                guard HeaderRewrite.pushVLAN(&b, offsets: &offsets, key: &key, tpid: tpid, tci: tci) else {
                    note("push_vlan: no room; the packet is dropped")
                    return
                }
                note("push_vlan: vid=\(tci & VLAN.vidMask),pcp=\(tci >> VLAN.pcpShift)")
            case .popVLAN:
                HeaderRewrite.popVLAN(&b, offsets: &offsets, key: &key)
                note("pop_vlan")
            case .pushMPLS(let lse, let t):
                guard HeaderRewrite.pushMPLS(&b, offsets: &offsets, key: &key, lse: lse, ethType: t) else { return }
                note("push_mpls")
            case .popMPLS(let t):
                HeaderRewrite.popMPLS(&b, offsets: &offsets, key: &key, ethType: t)
                if case .success(let o) = FlowExtractor.extract(b.data, length: b.length, into: &key) { offsets = o }
                note("pop_mpls")
            case .pushEth, .popEth:
                note("\(a): not traced further (packet type changes)")
                return
            case .sample(let p, let nested):
                note("sample(probability \(p == UInt32.max ? "100%" : "\(Double(p) / Double(UInt32.max) * 100)%")): traced as taken, on a copy")
                runOnCopy(nested, b, key: key, offsets: offsets, state: state, depth: depth, steps: &steps)
            case .clone(let nested):
                note("clone: on a copy")
                runOnCopy(nested, b, key: key, offsets: offsets, state: state, depth: depth, steps: &steps)
            case .recirc(let id):
                guard depth < PacketEngine.maxRecirculation else {
                    note("recirc(\(id)): too deep, dropped (lost)")
                    return
                }
                var k = key
                k[.recircID] = UInt64(id)
                guard var copy = buffer(b.bytes) else { return }
                var o = offsets
                var rr = TraceRecord()
                rr.add("recirc_id", UInt64(id))
                steps.append(.record([("recirculation", lookupAndRun(&copy, key: &k, offsets: &o, record: rr, depth: depth + 1))]))
            case .hash(let alg, let basis):
                key[.dpHash] = UInt64(PacketEngine.flowHash(key, symmetric: alg == HashAlgorithm.symL4, basis: basis))
                note("hash: dp_hash=0x\(String(key[.dpHash], radix: 16))")
            case .trunc(let n):
                state.truncateTo = Int(n)
                note("trunc(\(n)): the next output carries at most \(n) bytes")
            case .checkPacketLength(let size, let greater, let lessEqual):
                let bigger = b.length > Int(size)
                note("check_pkt_len(size=\(size)): \(b.length) bytes, \(bigger ? "greater" : "less or equal")")
                run(bigger ? greater : lessEqual, &b, key: &key, offsets: &offsets, state: &state, depth: depth, steps: &steps)
                return
            case .drop:
                note("drop")
                verdicts.append("software: dropped by the flow")
                return
            case .ctClear:
                note("ct_clear")
                ConnectionTracker.clear(&key)
            case .conntrack(let ct):
                let before = b.bytes
                dp.conntrack.execute(ct, on: b, offsets: offsets, key: &key, now: Sys.monotonicNanoseconds(), dryRun: true)
                var what = "ct(zone=\(ct.zone)\(ct.commit ? ",commit" : "")\(ct.forceCommit ? ",force_commit" : "")\(ct.nat != nil ? ",nat" : ""))"
                what += ": ct_state=" + formatCTState(UInt8(truncatingIfNeeded: key[.ctState]))
                if key[.ctMark] != 0 { what += ", ct_mark=0x" + String(key[.ctMark], radix: 16) }
                if b.bytes != before { what += ", NAT rewrote the packet" }
                note(what + " (as the tracker would decide now; the trace commits nothing)")
            }
        }
    }

    func runOnCopy(_ nested: [CompiledAction], _ b: PacketBuffer, key: FlowKey, offsets: HeaderOffsets,
                   state: PacketEngine.ExecState, depth: Int, steps: inout [TraceNode]) {
        guard var copy = buffer(b.bytes) else { return }
        var k = key, o = offsets, s = state
        run(nested, &copy, key: &k, offsets: &o, state: &s, depth: depth, steps: &steps)
    }

    /// Where an output of the datapath goes, and the frame that leaves.
    func output(_ b: PacketBuffer, to n: UInt32, key: FlowKey, state: inout PacketEngine.ExecState, steps: inout [TraceNode]) {
        var bytes = b.bytes
        if state.truncateTo > 0 {
            bytes = Array(bytes.prefix(state.truncateTo))
            state.truncateTo = 0
        }
        guard let port = dp.vport(n) else {
            steps.append(.text("output:\(n): no such port, dropped (lost)"))
            verdicts.append("software: output to missing port \(n) (lost)")
            return
        }
        var r = TraceRecord()
        r.add("path", "software")
        r.add("port", port.name)
        var frame: TraceRecord
        let destination: String
        switch port.type {
        case .vxlan:
            guard let t = state.tunnelOut, t.ipv4Dst != 0 else {
                // (VXLANPort sends over IPv4 only: an IPv6 destination is dropped there too.)
                if let t = state.tunnelOut, t.isIPv6 {
                    steps.append(.text("output:\(port.name): the tunnel's destination \(AddressText.ipv6(t.ipv6Dst)) is IPv6; this vport sends over IPv4 only, dropped"))
                    verdicts.append("software: dropped at \(port.name) (IPv6 tunnel destination, not supported)")
                } else {
                    steps.append(.text("output:\(port.name): no set(tunnel) before it, dropped"))
                    verdicts.append("software: dropped at \(port.name) (no tunnel metadata)")
                }
                return
            }
            var meta = t
            if meta.tpDst == 0 { meta.tpDst = port.udpPort }
            destination = "VXLAN vni \(t.id) to \(AddressText.ipv4(t.ipv4Dst)):\(meta.tpDst), routed by the kernel (through p0 to the wire when the route says so)"
            // What the vport hands to its raw socket (VXLANPort.sendTunnelFrame): IPv4/UDP/VXLAN
            // and the frame; the kernel adds Ethernet, and fills a zero source address.
            meta.tpSrc = VXLAN.sourcePort(hash: key.hashValue32)
            let outer = VXLAN.template(ethSrc: 0, ethDst: 0, tunnel: meta, udpDst: meta.tpDst)
            var ipPacket = bytes
            if var sent = buffer(bytes), outer.bytes.withUnsafeBytes({
                VXLAN.encapsulate(&sent, template: $0, isIPv6: false, udpChecksum: false, sourcePort: meta.tpSrc,
                                  innerTOS: UInt8(truncatingIfNeeded: key[.ipTOS]), ipID: 0)
            }) {
                ipPacket = Array(sent.bytes.dropFirst(14))
            }
            frame = frameNode(ipPacket, inner: bytes, tunnel: meta, names: dpNames)
        case .internal:
            destination = "the host's stack (internal port \(port.name))"
            frame = frameNode(bytes, names: dpNames)
        default:
            if let e = port.eswitchPort, let sw = eswitch, let p = sw.port(e) {
                // esw_rep_tx: straight out of the port the representor stands for, no lookup.
                destination = "representor \(port.name) → eSwitch port \(e) → "
                    + (e == .uplink ? "the wire (uplink \(p.netdevName))"
                        : p.config.linkUp ? "VF netdev \(p.netdevName)" : "dropped: the port is inactive")
            } else {
                destination = "netdev \(port.name)"
            }
            frame = frameNode(bytes, names: dpNames)
        }
        steps.append(.text("output:\(port.name) → \(destination)"))
        r.add("where", destination)
        r.fields += frame.fields
        outputs.append(r.node)
        verdicts.append("software: \(destination)")
    }
}
