import Classifier
import Conntrack
import NetLinux
import Packet
import ODP

#if canImport(Glibc)
import Glibc
#endif

/// Moves frames through the datapath on one thread: flow lookup, action execution,
/// output batching, misses to upcalls. Each thread (the packet thread and the control
/// thread, which executes OVS_PACKET_CMD_EXECUTE) owns one, with its own buffers and
/// senders, so nothing here is shared or locked.
final class PacketEngine: @unchecked Sendable {
    static let batch = 32
    static let spareSlots = 96
    static let maxRecirculation = 8

    unowned(unsafe) let dp: Datapath
    let reader: QuiescentState.Reader
    let pool: SlotPool
    private var senders: ContiguousArray<SenderBox?> = []
    private var nextSpare = 0
    var now: UInt64 = 0
    private var random = SystemRandomNumberGenerator()
    lazy var tunnelVectors = TunnelReceiveVectors()

    final class SenderBox {
        var sender: PacketSender
        let port: Vport
        init(_ s: consuming PacketSender, port: Vport) {
            sender = s
            self.port = port
        }

        /// Frames counted as sent when queued that the kernel refused (over the MTU) are
        /// the port's tx errors, as the kernel datapath counts an over-MTU drop.
        @inline(__always)
        func settleRefused() {
            let r = sender.takeRefused()
            guard r.packets > 0 else { return }
            port.txPackets.wrappingSubtract(r.packets, ordering: .relaxed)
            port.txBytes.wrappingSubtract(r.bytes &- r.packets &* UInt64(VirtioNetHeader.size), ordering: .relaxed)
            port.txErrors.wrappingAdd(r.packets, ordering: .relaxed)
        }
    }

    init(datapath: Datapath) {
        dp = datapath
        reader = datapath.rcu.registerReader()
        pool = SlotPool(count: PacketEngine.batch + PacketEngine.spareSlots)
    }

    deinit { dp.rcu.unregister(reader) }

    /// Drops senders of ports that went away (control thread, packet threads paused).
    func forgetSenders() { senders.removeAll() }

    /// A spare buffer for copies and segments; sends pending frames first when they run out.
    @inline(__always)
    func spareBuffer() -> PacketBuffer {
        if nextSpare == PacketEngine.spareSlots { flush() }
        let b = pool.buffer(PacketEngine.batch + nextSpare)
        nextSpare += 1
        return b
    }

    /// Sends every batched frame. Call before the batch's buffers are reused.
    func flush() {
        for s in senders where s != nil && s!.sender.pending > 0 {
            s!.sender.flush()
            s!.settleRefused()
        }
        nextSpare = 0
    }

    // MARK: Receive path

    /// A frame received on `port` with the mark the hardware gave it (0: none): a mark
    /// that names a flow of this port whose match the packet has is that flow, without
    /// classifying (partial offload); any other mark is ignored.
    @inline(__always)
    func receive(_ b: inout PacketBuffer, on port: Vport, mark: UInt32) {
        guard mark != 0 else { return receive(&b, on: port, tunnel: nil) }
        port.countRX(b.length)
        var key = FlowKey()
        key[.inPort] = UInt64(port.portNumber)
        guard case .success(var offsets) = FlowExtractor.extract(b.data, length: b.length, into: &key,
                                                                udpFragmentOffload: b.offload.gsoType & 0x7f == OffloadInfo.gsoUDP) else {
            port.rxErrors.wrappingAdd(1, ordering: .relaxed)
            return
        }
        // The check against the match costs a few word compares (in place: only the
        // words the mask examines, see FlowMask.matches(_:entry:)); it keeps a packet
        // from ever reaching a flow it does not match, whatever the mark says.
        guard let flow = dp.marks.flow(mark: mark, port: port.portNumber), flow.mask.matches(&key, entry: flow) else {
            dp.counters.staleMark()
            return process(&b, key: &key, offsets: &offsets, depth: 0)
        }
        port.rxHinted.wrappingAdd(1, ordering: .relaxed)
        dp.counters.hit()
        run(flow, &b, key: &key, offsets: &offsets, depth: 0)
    }

    /// A frame received on `port`: extract, look up, execute, or miss.
    @inline(__always)
    func receive(_ b: inout PacketBuffer, on port: Vport, tunnel: TunnelMetadata?) {
        port.countRX(b.length)
        var key = FlowKey()
        key[.inPort] = UInt64(port.portNumber)
        if let tunnel { tunnel.store(into: &key) }
        let offsets: HeaderOffsets
        switch FlowExtractor.extract(b.data, length: b.length, into: &key,
                                     udpFragmentOffload: b.offload.gsoType & 0x7f == OffloadInfo.gsoUDP) {
        case .failure:
            port.rxErrors.wrappingAdd(1, ordering: .relaxed)
            return
        case .success(let o): offsets = o
        }
        var o = offsets
        process(&b, key: &key, offsets: &o, depth: 0)
    }

    /// Looks the key up and runs the flow's actions (or raises the miss).
    @inline(__always)
    func process(_ b: inout PacketBuffer, key: inout FlowKey, offsets: inout HeaderOffsets, depth: Int) {
        var probed: UInt64 = 0
        let hit = dp.table.classifier.lookup(key, reader: reader, probed: &probed)
        dp.counters.maskHits(probed)
        guard let entry = hit else {
            dp.counters.miss()
            dp.handleMiss(b, key: key)
            return
        }
        dp.counters.hit()
        run(unsafeDowncast(entry.takeUnretainedValue(), to: DatapathFlow.self), &b, key: &key, offsets: &offsets, depth: depth)
    }

    /// Runs a flow's actions on a packet it matched.
    @inline(__always)
    func run(_ flow: DatapathFlow, _ b: inout PacketBuffer, key: inout FlowKey, offsets: inout HeaderOffsets, depth: Int) {
        if flow.hardwareOnly {
            // skip_sw: the rule exists only in hardware (or is still waiting to get
            // there); software has no fallback for it, as on a line-rate ASIC.
            dp.counters.hardwareOnlyDrop()
            return
        }
        flow.count(bytes: b.length, tcpFlags: UInt16(truncatingIfNeeded: key[.tcpFlags]), now: now)
        var ctx = ExecState()
        flow.compiled.withUnsafeBufferPointer { acts in
            execute(acts, &b, key: &key, offsets: &offsets, state: &ctx, depth: depth, last: true)
        }
    }

    /// Per-packet state the actions carry: egress tunnel metadata and a pending trunc.
    struct ExecState {
        var tunnelOut: TunnelMetadata?
        var truncateTo: Int = 0
    }

    // MARK: Actions

    /// Runs `actions`. `last` means no caller uses the buffer afterwards, so the final
    /// output may send it without a copy.
    func execute(_ actions: UnsafeBufferPointer<CompiledAction>, _ b: inout PacketBuffer, key: inout FlowKey,
                 offsets: inout HeaderOffsets, state: inout ExecState, depth: Int, last: Bool) {
        var i = 0
        while i < actions.count {
            let final = last && i == actions.count - 1
            switch actions[i] {
            case .output(let portNumber):
                output(&b, to: portNumber, key: key, offsets: offsets, state: &state,
                       reuse: final || (last && !mutates(actions, after: i)))
            case .userspace(let pid, let ud, _):
                dp.raiseUpcall(.action, b, key: key, userdata: ud, pid: pid)
            case .setEthernet(let s, let sm, let d, let dm):
                HeaderRewrite.setEthernet(&b, key: &key, src: s, srcMask: sm, dst: d, dstMask: dm)
            case .setIPv4(let v, let m):
                HeaderRewrite.setIPv4(&b, offsets: offsets, key: &key, value: v, mask: m)
            case .setIPv6(let v, let m):
                HeaderRewrite.setIPv6(&b, offsets: offsets, key: &key, value: v, mask: m)
            case .setPorts(let proto, let s, let sm, let d, let dm):
                HeaderRewrite.setPorts(&b, offsets: offsets, key: &key, proto: proto, src: s, srcMask: sm, dst: d, dstMask: dm)
            case .setICMP(let v6, let t, let tm, let c, let cm):
                HeaderRewrite.setICMP(&b, offsets: offsets, key: &key, v6: v6, type: t, typeMask: tm, code: c, codeMask: cm)
            case .setARP(let sip, let sipm, let tip, let tipm, let op, let opm, let sha, let sham, let tha, let tham):
                HeaderRewrite.setARP(&b, offsets: offsets, key: &key, sip: sip, sipMask: sipm, tip: tip, tipMask: tipm,
                                     op: op, opMask: opm, sha: sha, shaMask: sham, tha: tha, thaMask: tham)
            case .setMPLS(let lse, let m):
                HeaderRewrite.setMPLS(&b, offsets: offsets, key: &key, lse: lse, mask: m)
            case .setPriority(let v, let m):
                key[.priority] = (key[.priority] & ~UInt64(m)) | UInt64(v & m)
            case .setMark(let v, let m):
                key[.skbMark] = (key[.skbMark] & ~UInt64(m)) | UInt64(v & m)
            case .setTunnel(let t):
                state.tunnelOut = t
            case .pushVLAN(let tpid, let tci):
                if !HeaderRewrite.pushVLAN(&b, offsets: &offsets, key: &key, tpid: tpid, tci: tci) { return }
            case .popVLAN:
                HeaderRewrite.popVLAN(&b, offsets: &offsets, key: &key)
            case .pushMPLS(let lse, let t):
                if !HeaderRewrite.pushMPLS(&b, offsets: &offsets, key: &key, lse: lse, ethType: t) { return }
            case .popMPLS(let t):
                HeaderRewrite.popMPLS(&b, offsets: &offsets, key: &key, ethType: t)
                reparse(&b, key: &key, offsets: &offsets)
            case .pushEth(let s, let d):
                guard key[.packetType] != 0, b.push(14) else { break }
                b.data.setBE48(0, d)
                b.data.setBE48(6, s)
                b.data.setBE16(12, UInt16(truncatingIfNeeded: key[.packetType] & 0xffff))
                key[.packetType] = 0
                b.offload.shift(by: 14)
                reparse(&b, key: &key, offsets: &offsets)
            case .popEth:
                guard key[.packetType] == 0, b.length >= offsets.l3 else { break }
                let t = key[.ethType]
                _ = b.pull(offsets.l3)
                b.offload.shift(by: -offsets.l3)
                key[.packetType] = UInt64(ODPConstants.namespaceEtherType) << 16 | t
                offsets.l4 = offsets.hasL4 ? offsets.l4 - offsets.l3 : -1
                offsets.l3 = 0
            case .sample(let p, let nested):
                if p == UInt32.max || UInt32.random(in: 0...UInt32.max, using: &random) < p {
                    runOnCopy(nested, b, key: key, offsets: offsets, state: state, depth: depth)
                }
            case .clone(let nested):
                runOnCopy(nested, b, key: key, offsets: offsets, state: state, depth: depth)
            case .recirc(let id):
                guard depth < PacketEngine.maxRecirculation else {
                    dp.counters.lost()
                    return
                }
                var k = key
                k[.recircID] = UInt64(id)
                if final {
                    process(&b, key: &k, offsets: &offsets, depth: depth + 1)
                } else {
                    var copy = copyOf(b)
                    var o = offsets
                    process(&copy, key: &k, offsets: &o, depth: depth + 1)
                }
            case .hash(let alg, let basis):
                key[.dpHash] = UInt64(Self.flowHash(key, symmetric: alg == HashAlgorithm.symL4, basis: basis))
            case .trunc(let n):
                state.truncateTo = Int(n)
            case .checkPacketLength(let size, let greater, let lessEqual):
                let branch = b.length > Int(size) ? greater : lessEqual
                branch.withUnsafeBufferPointer { acts in
                    execute(acts, &b, key: &key, offsets: &offsets, state: &state, depth: depth, last: final)
                }
                if final { return }
            case .drop:
                return
            case .conntrack(let ct):
                dp.conntrack.execute(ct, on: b, offsets: offsets, key: &key, now: now)
            case .ctClear:
                ConnectionTracker.clear(&key)
            }
            i += 1
        }
    }

    /// Nested actions (sample, clone) act on their own copy; the original goes on unchanged.
    private func runOnCopy(_ nested: [CompiledAction], _ b: PacketBuffer, key: FlowKey, offsets: HeaderOffsets,
                           state: ExecState, depth: Int) {
        var copy = copyOf(b)
        var k = key, o = offsets, s = state
        nested.withUnsafeBufferPointer { acts in
            execute(acts, &copy, key: &k, offsets: &o, state: &s, depth: depth, last: true)
        }
    }

    func copyOf(_ b: PacketBuffer) -> PacketBuffer {
        var c = spareBuffer()
        c.length = min(b.length, c.capacity - c.head)
        c.offload = b.offload
        c.data.copyMemory(from: b.data, byteCount: c.length)
        return c
    }

    private func reparse(_ b: inout PacketBuffer, key: inout FlowKey, offsets: inout HeaderOffsets) {
        if case .success(let o) = FlowExtractor.extract(b.data, length: b.length, into: &key) { offsets = o }
    }

    /// Whether an action after `i` changes the buffer (then an output at `i` must send a
    /// copy). An output to a tunnel port does: it pushes the outer headers into the
    /// headroom, where a batched send still pending for an earlier output keeps its
    /// virtio-net header.
    @inline(__always)
    func mutates(_ actions: UnsafeBufferPointer<CompiledAction>, after i: Int) -> Bool {
        var j = i + 1
        while j < actions.count {
            switch actions[j] {
            case .output(let n):
                if dp.vport(n)?.type == .vxlan { return true }
            case .drop, .userspace, .sample, .clone, .trunc, .hash, .setPriority, .setMark, .setTunnel: break
            default: return true
            }
            j += 1
        }
        return false
    }

    /// OVS's flow_hash_5tuple-style hash for the `hash` action.
    static func flowHash(_ k: FlowKey, symmetric: Bool, basis: UInt32) -> UInt32 {
        var a = k[.ipv4Src] ^ UInt64(truncatingIfNeeded: k[.ipv6Src] ^ (k[.ipv6Src] >> 64))
        var b = k[.ipv4Dst] ^ UInt64(truncatingIfNeeded: k[.ipv6Dst] ^ (k[.ipv6Dst] >> 64))
        var c = k[.tpSrc], d = k[.tpDst]
        if symmetric && (a > b || (a == b && c > d)) {
            swap(&a, &b)
            swap(&c, &d)
        }
        var h = FlowHash.mix(UInt64(basis), a)
        h = FlowHash.mix(h, b)
        h = FlowHash.mix(h, c << 16 | d | k[.ipProto] << 32)
        let r = FlowHash.finish(h)
        return r == 0 ? 1 : r
    }

    // MARK: Output

    /// Sends a frame out of a vport. With `reuse` the frame goes as it is (zero copy,
    /// batched); otherwise a copy goes and the caller keeps its buffer.
    @inline(__always)
    func output(_ b: inout PacketBuffer, to portNumber: UInt32, key: FlowKey, offsets: HeaderOffsets,
                state: inout ExecState, reuse: Bool) {
        guard let port = dp.vport(portNumber) else {
            dp.counters.lost()
            return
        }
        var out: PacketBuffer
        if reuse { out = b } else { out = copyOf(b) }
        if state.truncateTo > 0 {
            out.truncate(to: state.truncateTo)
            if out.offload.isGSO { VXLAN.finishPartialChecksum(&out); out.offload = OffloadInfo() }
            state.truncateTo = 0
        }
        switch port.type {
        case .vxlan:
            sendTunnel(&out, port: port, key: key, offsets: offsets, tunnel: state.tunnelOut)
        case .internal:
            guard key[.packetType] == 0, let t = port.tap else { port.txDropped.wrappingAdd(1, ordering: .relaxed); return }
            writeTap(&out, fd: t.fd, port: port)
        default:
            guard key[.packetType] == 0 else { port.txDropped.wrappingAdd(1, ordering: .relaxed); return }
            sendNetdev(&out, port: port)
        }
    }

    @inline(__always)
    func writeTap(_ b: inout PacketBuffer, fd: Int32, port: Vport) {
        let hdr = b.data - VirtioNetHeader.size
        b.offload.write(virtioHeader: hdr)
        if (try? Sys.write(fd, hdr, b.length + VirtioNetHeader.size)) != nil {
            port.countTX(b.length)
        } else {
            port.txDropped.wrappingAdd(1, ordering: .relaxed)
        }
    }

    @inline(__always)
    func sendNetdev(_ b: inout PacketBuffer, port: Vport) {
        let n = Int(port.portNumber)
        if n >= senders.count { senders.append(contentsOf: repeatElement(nil, count: n + 1 - senders.count)) }
        if senders[n] == nil {
            // Through the qdisc and the taps, as the kernel datapath's dev_queue_xmit.
            guard let s = try? PacketSender(ifindex: port.ifindex, bypassQdisc: false) else {
                port.txErrors.wrappingAdd(1, ordering: .relaxed)
                return
            }
            senders[n] = SenderBox(s, port: port)
        }
        let hdr = b.data - VirtioNetHeader.size
        b.offload.write(virtioHeader: hdr)
        port.countTX(b.length)
        senders[n]!.sender.enqueue(hdr, length: b.length + VirtioNetHeader.size)
        // A full batch was sent by the enqueue.
        if senders[n]!.sender.pending == 0 { senders[n]!.settleRefused() }
    }
}

