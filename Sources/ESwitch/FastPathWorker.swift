import Classifier
import NetLinux
import Packet
import Synchronization

/// A packet thread of the eSwitch: polls the netdevs of the ports it owns, batches
/// receive and transmit, looks frames up in the hardware tables and applies the
/// rule's actions. Nothing on this path allocates, takes a lock or calls through an
/// existential; buffers and vectors come from pools allocated when the thread starts.
final class FastPathWorker: @unchecked Sendable {
    static let batch = 32
    static let spareSlots = 64
    /// Completions handled per pass before the pass's buffers are returned.
    static let completionsPerPass = 256

    let id: Int
    unowned(unsafe) let device: ESwitch
    let tables: HardwareTables
    let counters: CounterBlock
    let reader: QuiescentState.Reader
    let io: TapRings
    let control: ParkableThread
    var wakeup: Wakeup { control.wakeup }
    let pool: SlotPool
    var sender: PacketSender
    private var nextSpare = 0
    private var now: UInt64 = 0
    private var uplinkIndex = -1
    private var uplinkPollArmed = false
    private var uplinkBacklog = false
    private var wakeupPollArmed = false

    init(id: Int, device: ESwitch, uplinkIfindex: Int32, nice: Int32) throws(SystemError) {
        self.id = id
        sender = try PacketSender(ifindex: uplinkIfindex, bypassQdisc: true)
        self.device = device
        tables = device.tables
        counters = device.counters
        reader = tables.rcu.registerReader()
        io = try TapRings(ports: device.ports.count, maxCompletionsPerPass: FastPathWorker.completionsPerPass)
        control = try ParkableThread()
        control.setNice(nice)
        pool = SlotPool(count: FastPathWorker.batch + FastPathWorker.spareSlots)
    }

    deinit { tables.rcu.unregister(reader) }

    func start() throws(SystemError) {
        try control.start(name: "esw-fp\(id)") { [self] in run() }
    }

    /// Stops the thread and cancels its reads: the ring holds no TAP after this, so
    /// closing the fds removes the netdevs at once (a ring's own teardown is deferred).
    func stop() {
        control.stop()
        io.ring.cancelAll()
    }
    /// Parks the thread and waits until it has.
    func pause() { control.pause() }
    func resume() { control.resume() }

    /// (Re)registers the fds this worker polls. Called while paused or before start.
    func watch(port: ESwitchPort) {
        if let q = port.vfQueue { io.watch(group: Int(port.index) * 2, fd: q.fd) }
        if port.uplink != nil {
            uplinkIndex = Int(port.index)
            uplinkPollArmed = false
        }
    }

    func watchRepresentor(_ port: ESwitchPort) {
        if let r = port.representor { io.watch(group: Int(port.index) * 2 + 1, fd: r.fd) }
    }

    /// Stops reading `fd` (see TapRings.unwatch for when the netdev really goes).
    func unwatch(fd: Int32) {
        if let g = io.group(ofFD: fd) { io.unwatch(group: g) }
    }

    /// A TAP write runs the receiving namespace's whole stack in this thread: with more
    /// CPU weight than the processes it feeds, it fills sockets nobody drains.
    func setNice(_ value: Int32) { control.setNice(value) }

    // MARK: Loop

    private func run() {
        var more = false
        now = Sys.monotonicNanoseconds()
        while control.checkpoint(parking: { tables.rcu.leave(reader); io.ring.submit(wait: false, timeoutNanoseconds: 0) }) {
            tables.rcu.leave(reader)
            armPolls()
            io.armDue(now: now)
            io.ring.submit(wait: !more && !uplinkBacklog, timeoutNanoseconds: 200_000_000)
            tables.rcu.enter(reader)
            now = Sys.monotonicNanoseconds()
            let handled = io.ring.completions(limit: FastPathWorker.completionsPerPass) { userData, result, flags in
                complete(userData, result, flags)
            }
            more = handled == FastPathWorker.completionsPerPass
            if uplinkBacklog && uplinkIndex >= 0 {
                receiveFromUplink(uplinkIndex)
            }
            flushSender()
            io.endPass()
        }
        tables.rcu.leave(reader)
    }

    private func armPolls() {
        if !wakeupPollArmed {
            io.ring.pollMultishot(fd: wakeup.fd.raw, userData: TapRings.userData(.pollWakeup, port: 0, value: 0))
            wakeupPollArmed = true
        }
        if !uplinkPollArmed && uplinkIndex >= 0, let u = device.ports[uplinkIndex].uplink {
            io.ring.pollMultishot(fd: u.fd, userData: TapRings.userData(.pollUplink, port: uplinkIndex, value: 0))
            uplinkPollArmed = true
            uplinkBacklog = true
        }
    }

    @inline(__always)
    private func complete(_ userData: UInt64, _ result: Int32, _ flags: UInt32) {
        let port = Int(truncatingIfNeeded: (userData >> 40) & 0xffff)
        switch TapRings.Op(rawValue: userData >> 56) {
        case .read:
            guard var b = io.received(userData: userData, result: result, flags: flags, now: now) else { return }
            let p = device.ports[port]
            if !TapRings.readsRepresentor(userData) {
                handle(&b, from: p)
            } else {
                counters.add(thread: id, port: port, PortCounterSet.fromRepresentor, 1)
                transmit(&b, to: p, deferred: true)
            }
        case .writeToPort:
            io.writeCompleted(userData: userData)
            if result > Int32(VirtioNetHeader.size) {
                counters.add(thread: id, port: port, PortCounterSet.txPackets, 1)
                counters.add(thread: id, port: port, PortCounterSet.txBytes, UInt64(Int(result) - VirtioNetHeader.size))
            } else {
                counters.add(thread: id, port: port, PortCounterSet.txDropped, 1)
            }
        case .writeToRepresentor:
            io.writeCompleted(userData: userData)
            counters.add(thread: id, port: port, result > 0 ? PortCounterSet.toRepresentor : PortCounterSet.rxDropped, 1)
        case .pollUplink:
            uplinkBacklog = true
            if flags & IOURingCompletion.more == 0 { uplinkPollArmed = false }
        case .pollWakeup:
            wakeup.drain()
            if flags & IOURingCompletion.more == 0 { wakeupPollArmed = false }
        case nil:
            break
        }
    }

    @inline(__always)
    private func flushSender() {
        if sender.pending > 0 { sender.flush() }
        nextSpare = 0
    }

    /// A spare slot for a copy or a segment; flushes pending sends when they run out.
    @inline(__always)
    private func spareBuffer() -> PacketBuffer {
        if nextSpare == FastPathWorker.spareSlots { flushSender() }
        let b = pool.buffer(FastPathWorker.batch + nextSpare)
        nextSpare += 1
        return b
    }

    // MARK: Receive

    /// Frames from the wire: copied out of the ring's blocks, which go back at once.
    private func receiveFromUplink(_ index: Int) {
        let port = device.ports[index]
        guard let u = port.uplink else { return }
        var used = 0
        _ = u.ring.receive(maxBlocks: 4) { vnet, frame, length, vlan in
            if used == FastPathWorker.batch {
                flushSender()
                used = 0
            }
            guard length <= SlotPool.frameCapacity else { return }
            var b = pool.buffer(used, length: length)
            b.offload = OffloadInfo(virtioHeader: vnet)
            b.data.copyMemory(from: frame, byteCount: length)
            if let vlan { _ = b.restoreVLANTag(tpid: vlan.tpid, tci: vlan.tci) }
            used += 1
            handle(&b, from: port)
        }
        uplinkBacklog = u.ring.hasReadyBlock
    }

    // MARK: Switching

    @inline(__always)
    private func handle(_ b: inout PacketBuffer, from port: ESwitchPort) {
        counters.add(thread: id, port: Int(port.index), PortCounterSet.rxPackets, 1)
        counters.add(thread: id, port: Int(port.index), PortCounterSet.rxBytes, UInt64(b.length))
        if device.modeIsLegacy {
            device.legacy.forward(&b, from: port, worker: self)
            return
        }
        var key = FlowKey()
        key[.inPort] = UInt64(port.index)
        var offsets = HeaderOffsets()
        var outer = 0
        // The hardware parser recognises VXLAN on the uplink's registered UDP ports and
        // matches outer and inner headers together.
        if port.index == .uplink, device.vxlanPortCount > 0,
           let o = parseTunnel(b, key: &key, offsets: &offsets) {
            outer = o
            if let rule = tables.lookup(key, reader: reader) {
                execute(rule, &b, key: &key, offsets: &offsets, outer: outer, from: port)
                return
            }
            key = FlowKey()
            key[.inPort] = UInt64(port.index)
            outer = 0
        }
        switch FlowExtractor.extract(b.data, length: b.length, into: &key,
                                     udpFragmentOffload: b.offload.gsoType & 0x7f == OffloadInfo.gsoUDP) {
        case .failure:
            counters.add(thread: id, port: Int(port.index), PortCounterSet.rxDropped, 1)
            return
        case .success(let o):
            offsets = o
        }
        guard let rule = tables.lookup(key, reader: reader) else {
            if port.index == .uplink && (b.offload.isGSO || b.offload.checksumPartial) {
                uplinkToRepresentor(&b, port: port, offsets: offsets)
            } else {
                toRepresentor(&b, port: port)
            }
            return
        }
        if rule.encapOverhead > 0 && exceedsTunnelMTU(b, overhead: rule.encapOverhead, offsets: offsets) {
            // The hardware does not fragment or send ICMP: the frame takes the software
            // path, where the vxlan port answers as the kernel's vxlan driver does.
            toRepresentor(&b, port: port)
            return
        }
        execute(rule, &b, key: &key, offsets: &offsets, outer: 0, from: port)
    }

    /// Whether the encapsulated frame (each segment, for TSO) would exceed the uplink's MTU.
    @inline(__always)
    private func exceedsTunnelMTU(_ b: PacketBuffer, overhead: Int, offsets: HeaderOffsets) -> Bool {
        let mtu = device.ports[Int(PortIndex.uplink)].mtu
        var innerFrame = b.length
        if b.offload.isGSO && b.offload.gsoSize > 0 && offsets.hasL4 && b.length >= offsets.l4 + 20 {
            let headers = offsets.l4 + Int(b.data.u8(offsets.l4 + 12) >> 4) * 4
            innerFrame = min(b.length, headers + Int(b.offload.gsoSize))
        }
        // Outer IP packet = outer IP/UDP/VXLAN + the whole inner frame.
        return innerFrame + overhead - 14 > mtu
    }

    /// Fills tunnel fields and the inner key for a VXLAN frame; returns the outer length.
    @inline(__always)
    private func parseTunnel(_ b: PacketBuffer, key: inout FlowKey, offsets: inout HeaderOffsets) -> Int? {
        let p = b.data
        guard b.length >= VXLAN.overheadIPv4 + 14 else { return nil }
        let t = p.be16(12)
        var l4: Int
        if t == EtherType.ipv4 {
            let ihl = Int(p.u8(14) & 0x0f) * 4
            guard ihl >= 20, p.u8(23) == IPProto.udp, p.be16(20) & 0x3fff == 0 else { return nil }
            l4 = 14 + ihl
        } else if t == EtherType.ipv6 {
            guard b.length >= VXLAN.overheadIPv6 + 14, p.u8(20) == IPProto.udp else { return nil }
            l4 = 54
        } else {
            return nil
        }
        guard b.length >= l4 + 16 + 14, device.isVXLANPort(p.be16(l4 + 2)), p.u8(l4 + 8) & 0x08 != 0 else { return nil }
        var tun = TunnelMetadata()
        if t == EtherType.ipv4 {
            tun.ipv4Src = p.be32(26)
            tun.ipv4Dst = p.be32(30)
            tun.tos = p.u8(15)
            tun.ttl = p.u8(22)
            if p.be16(20) & 0x4000 != 0 { tun.flags.insert(.dontFragment) }
        } else {
            tun.ipv6Src = p.be128(22)
            tun.ipv6Dst = p.be128(38)
            tun.tos = UInt8(truncatingIfNeeded: p.be32(14) >> 20)
            tun.ttl = p.u8(21)
        }
        tun.tpSrc = p.be16(l4)
        tun.tpDst = p.be16(l4 + 2)
        tun.id = UInt64(p.be32(l4 + 12) >> 8)
        tun.flags.insert(.key)
        if p.be16(l4 + 6) != 0 { tun.flags.insert(.checksum) }
        let outer = l4 + 16
        switch FlowExtractor.extract(p + outer, length: b.length - outer, into: &key) {
        case .failure: return nil
        case .success(let o): offsets = o
        }
        tun.store(into: &key)
        return outer
    }

    @inline(__always)
    private func execute(_ rule: HardwareRule, _ b: inout PacketBuffer, key: inout FlowKey,
                         offsets: inout HeaderOffsets, outer: Int, from port: ESwitchPort) {
        rule.count(bytes: b.length, now: now)
        rule.actions.withUnsafeBufferPointer { actions in
            run(actions, from: 0, &b, key: &key, offsets: &offsets, outer: outer, inPort: port)
        }
    }

    private func run(_ actions: UnsafeBufferPointer<HardwareAction>, from start: Int, _ b: inout PacketBuffer,
                     key: inout FlowKey, offsets: inout HeaderOffsets, outer: Int, inPort: ESwitchPort) {
        var i = start
        while i < actions.count {
            switch actions[i] {
            case .forward(let p):
                // An output followed by more rewriting must not send the buffer it rewrites.
                let last = i == actions.count - 1
                let out = device.ports[Int(p)]
                if last || !Self.mutates(actions, after: i) {
                    transmit(&b, to: out, deferred: true)
                } else {
                    var copy = spareBuffer()
                    copy.length = b.length
                    copy.offload = b.offload
                    copy.data.copyMemory(from: b.data, byteCount: b.length)
                    transmit(&copy, to: out, deferred: true)
                }
            case .drop:
                return
            case .pushVLAN(let tpid, let tci):
                _ = HeaderRewrite.pushVLAN(&b, offsets: &offsets, key: &key, tpid: tpid, tci: tci)
            case .popVLAN:
                HeaderRewrite.popVLAN(&b, offsets: &offsets, key: &key)
            case .setEthernet(let s, let sm, let d, let dm):
                HeaderRewrite.setEthernet(&b, key: &key, src: s, srcMask: sm, dst: d, dstMask: dm)
            case .setIPv4(let v, let m):
                HeaderRewrite.setIPv4(&b, offsets: offsets, key: &key, value: v, mask: m)
            case .setIPv6(let v, let m):
                HeaderRewrite.setIPv6(&b, offsets: offsets, key: &key, value: v, mask: m)
            case .setTransport(let proto, let s, let sm, let d, let dm):
                HeaderRewrite.setPorts(&b, offsets: offsets, key: &key, proto: proto, src: s, srcMask: sm, dst: d, dstMask: dm)
            case .decap:
                if outer > 0 {
                    _ = b.pull(outer)
                    b.offload.stripOuter(outer)
                }
            case .encap(let entry):
                if b.offload.isGSO && (b.offload.gsoType & 0x7f == OffloadInfo.gsoTCPv4 || b.offload.gsoType & 0x7f == OffloadInfo.gsoTCPv6) {
                    // No tunnel TSO on the wire: segment, then encapsulate each segment.
                    let n = TCPSegmenter.segmentCount(b, offsets: offsets)
                    for s in 0..<n {
                        var seg = spareBuffer()
                        guard TCPSegmenter.segment(b, offsets: offsets, index: s, into: &seg) else { break }
                        var segKey = key
                        var segOffsets = offsets
                        encapsulate(&seg, entry: entry, key: segKey)
                        segOffsets = HeaderOffsets()
                        run(actions, from: i + 1, &seg, key: &segKey, offsets: &segOffsets, outer: 0, inPort: inPort)
                    }
                    return
                }
                encapsulate(&b, entry: entry, key: key)
                offsets = HeaderOffsets()
            }
            i += 1
        }
    }

    @inline(__always)
    private static func mutates(_ actions: UnsafeBufferPointer<HardwareAction>, after i: Int) -> Bool {
        var j = i + 1
        while j < actions.count {
            switch actions[j] {
            case .forward, .drop: break
            default: return true
            }
            j += 1
        }
        return false
    }

    @inline(__always)
    private func encapsulate(_ b: inout PacketBuffer, entry: EncapEntry, key: FlowKey) {
        entry.withHeader { h in
            let innerTOS = UInt8(truncatingIfNeeded: key[.ipTOS])
            let port = VXLAN.sourcePort(hash: key.hashValue32)
            _ = VXLAN.encapsulate(&b, template: UnsafeRawBufferPointer(h.bytes), isIPv6: h.template.isIPv6,
                                  udpChecksum: h.template.checksum, sourcePort: port, innerTOS: innerTOS,
                                  ipID: UInt16(truncatingIfNeeded: now >> 10))
        }
    }

    /// Sends a frame out of a port's netdev (VF TAP or uplink).
    @inline(__always)
    func transmit(_ b: inout PacketBuffer, to port: ESwitchPort, deferred: Bool) {
        let idx = Int(port.index)
        if let q = port.vfQueue {
            if !port.config.linkUp || (!b.offload.isGSO && b.length > port.mtu + 18) {
                counters.add(thread: id, port: idx, PortCounterSet.txDropped, 1)
                return
            }
            let hdr = b.data - VirtioNetHeader.size
            b.offload.write(virtioHeader: hdr)
            // A received buffer nothing rewrites any more goes out with the pass's
            // submission; anything else (copies, segments, frames changed after this
            // output) is written now.
            if deferred, let slot = io.slot(of: b) {
                io.write(fd: q.fd, slot: slot, hdr, length: b.length + VirtioNetHeader.size, op: .writeToPort, port: idx)
                return
            }
            if (try? Sys.write(q.fd, hdr, b.length + VirtioNetHeader.size)) != nil {
                counters.add(thread: id, port: idx, PortCounterSet.txPackets, 1)
                counters.add(thread: id, port: idx, PortCounterSet.txBytes, UInt64(b.length))
            } else {
                counters.add(thread: id, port: idx, PortCounterSet.txDropped, 1)
            }
        } else if port.uplink != nil {
            let hdr = b.data - VirtioNetHeader.size
            b.offload.write(virtioHeader: hdr)
            sender.enqueue(hdr, length: b.length + VirtioNetHeader.size)
            counters.add(thread: id, port: idx, PortCounterSet.txPackets, 1)
            counters.add(thread: id, port: idx, PortCounterSet.txBytes, UInt64(b.length))
        }
    }

    /// A frame from the uplink for the host stack gets there as a real wire would have
    /// delivered it: encapsulated superframes as separate packets, encapsulated partial
    /// checksums completed (the stack would hand them to the tunnel socket unfinished).
    private func uplinkToRepresentor(_ b: inout PacketBuffer, port: ESwitchPort, offsets: HeaderOffsets) {
        if let inner = TunnelSegmenter.innerStart(b, outer: offsets) {
            var innerKey = FlowKey()
            guard case .success(let innerOffsets) = FlowExtractor.extract(b.data + inner, length: b.length - inner,
                                                                          into: &innerKey) else {
                counters.add(thread: id, port: Int(port.index), PortCounterSet.rxDropped, 1)
                return
            }
            var innerView = b
            _ = innerView.pull(inner)
            innerView.offload.shift(by: -inner)
            for s in 0..<TCPSegmenter.segmentCount(innerView, offsets: innerOffsets) {
                var seg = spareBuffer()
                guard TunnelSegmenter.segment(b, outer: offsets, inner: inner, innerOffsets: innerOffsets, index: s,
                                              into: &seg) else { break }
                toRepresentor(&seg, port: port)
            }
            return
        }
        if b.offload.checksumPartial && offsets.hasL4 && Int(b.offload.checksumStart) > offsets.l4 {
            VXLAN.finishPartialChecksum(&b)
        }
        toRepresentor(&b, port: port)
    }

    /// The software path: a frame no rule matched goes to the port's representor.
    @inline(__always)
    private func toRepresentor(_ b: inout PacketBuffer, port: ESwitchPort) {
        guard let r = port.representor else {
            counters.add(thread: id, port: Int(port.index), PortCounterSet.rxDropped, 1)
            return
        }
        let hdr = b.data - VirtioNetHeader.size
        b.offload.write(virtioHeader: hdr)
        if let slot = io.slot(of: b) {
            io.write(fd: r.fd, slot: slot, hdr, length: b.length + VirtioNetHeader.size, op: .writeToRepresentor,
                     port: Int(port.index))
            return
        }
        if (try? Sys.write(r.fd, hdr, b.length + VirtioNetHeader.size)) != nil {
            counters.add(thread: id, port: Int(port.index), PortCounterSet.toRepresentor, 1)
        } else {
            counters.add(thread: id, port: Int(port.index), PortCounterSet.rxDropped, 1)
        }
    }
}
