import NetLinux
import Packet
import Synchronization

/// The datapath's packet thread: polls every vport, receives in batches, hands each
/// frame to its PacketEngine, flushes output batches.
final class DatapathWorker: @unchecked Sendable {
    unowned(unsafe) let dp: Datapath
    let engine: PacketEngine
    let epoll: Epoll
    let control: ParkableThread
    var wakeup: Wakeup { control.wakeup }
    private var watched: [Int32: UInt32] = [:]
    static let wakeupToken: UInt64 = 1 << 40

    init(datapath: Datapath) throws(SystemError) {
        dp = datapath
        engine = PacketEngine(datapath: datapath)
        epoll = try Epoll(capacity: 64)
        control = try ParkableThread()
        try epoll.add(wakeup.fd.raw, token: DatapathWorker.wakeupToken)
    }

    func start() throws(SystemError) {
        try control.start(name: "esw-dp") { [self] in run() }
    }

    func stop() { control.stop() }
    func pause() { control.pause() }
    func resume() { control.resume() }

    /// Re-syncs the polled fds with the vports (while paused).
    func rewatch(_ ports: [Vport]) {
        for (fd, _) in watched { epoll.remove(fd) }
        watched.removeAll()
        for p in ports {
            guard let fd = p.receiveFD else { continue }
            try? epoll.add(fd, token: UInt64(p.portNumber))
            watched[fd] = p.portNumber
        }
        engine.forgetSenders()
    }

    private func run() {
        var ready = [UInt64](repeating: 0, count: 64)
        while control.checkpoint(parking: { dp.rcu.leave(engine.reader) }) {
            dp.rcu.leave(engine.reader)
            var n = 0
            _ = try? epoll.wait(timeoutMilliseconds: 200) { token, _ in
                if n < 64 { ready[n] = token; n += 1 }
            }
            dp.rcu.enter(engine.reader)
            engine.now = Sys.monotonicNanoseconds()
            for i in 0..<n {
                let token = ready[i]
                if token == DatapathWorker.wakeupToken {
                    wakeup.drain()
                    continue
                }
                guard let port = dp.vport(UInt32(truncatingIfNeeded: token)) else { continue }
                receive(from: port)
            }
            engine.flush()
        }
        dp.rcu.leave(engine.reader)
    }

    private func receive(from port: Vport) {
        let pool = engine.pool
        if let rx = port.netdevRX {
            var got = 0
            repeat {
                got = rx.receiver.receive(count: PacketEngine.batch,
                                          capacity: SlotPool.frameCapacity + VirtioNetHeader.size,
                                          buffer: { pool.slot($0) + SlotPool.headroom - VirtioNetHeader.size }) { i, len, vlan, mark in
                    guard len > VirtioNetHeader.size else { return }
                    let frame = pool.slot(i) + SlotPool.headroom - VirtioNetHeader.size
                    var b = PacketBuffer(storage: pool.slot(i), capacity: SlotPool.slotSize, head: SlotPool.headroom,
                                         length: len - VirtioNetHeader.size, offload: OffloadInfo(virtioHeader: frame))
                    if let vlan { _ = b.restoreVLANTag(tpid: vlan.tpid, tci: vlan.tci) }
                    engine.receive(&b, on: port, mark: mark)
                }
                // Outputs may point into this batch's slots: send them before reuse.
                engine.flush()
            } while got == PacketEngine.batch
        } else if let tap = port.tap {
            for i in 0..<PacketEngine.batch {
                let frame = pool.slot(i) + SlotPool.headroom - VirtioNetHeader.size
                guard let n = try? Sys.read(tap.fd, frame, SlotPool.frameCapacity + VirtioNetHeader.size),
                      n > VirtioNetHeader.size else { break }
                var b = PacketBuffer(storage: pool.slot(i), capacity: SlotPool.slotSize, head: SlotPool.headroom,
                                     length: n - VirtioNetHeader.size, offload: OffloadInfo(virtioHeader: frame))
                engine.receive(&b, on: port, tunnel: nil)
            }
        } else if port.tunnel != nil {
            engine.receiveTunnel(on: port)
        }
    }
}
