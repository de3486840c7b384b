import ESwitch
import Glibc
import Logging
import NetLinux

/// Captures on representors (tcpdump -i pf0vf1, or -i any) see what the host sends on
/// them, as on mlx5. The hardware redirects such frames before the kernel hands packet
/// sockets their copy, so while a packet socket of another process is bound to a
/// representor, the driver has the hardware mirror its transmit (ESwitch,
/// mirrorRepresentorTransmit) and reads the mirrored frames off the TAP, discarding
/// them. With no capture, nothing of it runs: no flag, no thread, no reads.
///
/// Control thread: `sync` every 200 ms (a capture's first frames may go unseen for that
/// long), `forget` before a representor's TAP closes, `stop` at shutdown.
public final class RepresentorCapture {
    private let logger: Logger
    /// Inodes of eswd's own sockets as last read (its software path's receivers are
    /// bound to the representors too): re-read only when an unknown one appears.
    private var ownSockets: Set<UInt64> = []
    private var drain: TapDrain?
    /// The representors being drained, by port.
    private var drained: [PortIndex: TapQueue] = [:]

    public init(logger: Logger) { self.logger = logger }

    /// Looks for captures in this thread's namespace (the representors') and mirrors
    /// exactly the representors that have one.
    public func sync(_ sw: ESwitch) {
        // Legacy mode: no representors, nothing to look for.
        guard drained.count > 0 || sw.ports.contains(where: { $0.representor != nil }) else { return }
        guard let table = try? ProcFile.readWhole("/proc/thread-self/net/packet") else { return }
        var foreign = PacketSockets.foreignCaptures(in: table, ownSockets: ownSockets)
        if !foreign.isEmpty {
            ownSockets = Processes.ownSocketInodes()
            foreign = PacketSockets.foreignCaptures(in: table, ownSockets: ownSockets)
        }
        var captured: [PortIndex: TapQueue] = [:]
        if !foreign.isEmpty, sw.params.representorCaptureMirror, let c = try? InterfaceControl() {
            var byIfindex: [Int32: ESwitchPort] = [:]
            for p in sw.ports {
                if let r = p.representor, let i = try? c.index(of: r.name) { byIfindex[i] = p }
            }
            for i in PacketSockets.ifindexes(capturedBy: foreign, representors: Set(byIfindex.keys)) {
                if let p = byIfindex[i], let r = p.representor { captured[p.index] = r }
            }
        }
        guard !Self.same(captured, drained) else { return }
        // The TAP is read before the hardware sends it anything, and after it stopped.
        let starting = captured.filter { drained[$0.key] == nil }
        if !starting.isEmpty { setDrained(drained.merging(starting) { a, _ in a }) }
        let changed = sw.mirrorRepresentorTransmit(of: Set(captured.keys))
        for index in changed {
            guard let p = sw.port(index) else { continue }
            logger.info(p.mirrorsTransmit ? "representor capture: mirroring what is sent on it" : "representor capture ended",
                        metadata: ["netdev": "\(p.representor?.name ?? p.physPortName)", "port": "\(index)"])
        }
        // A port whose flag could not be set is not drained (nothing reaches its TAP).
        setDrained(captured.filter { sw.port($0.key)?.mirrorsTransmit == true })
    }

    /// A representor is going away: its TAP must not be held (its netdev goes when the
    /// last reference closes) nor read after its descriptor is closed.
    public func forget(_ queue: TapQueue) {
        setDrained(drained.filter { $0.value !== queue })
    }

    public func stop() { setDrained([:]) }

    private static func same(_ a: [PortIndex: TapQueue], _ b: [PortIndex: TapQueue]) -> Bool {
        a.count == b.count && a.allSatisfy { b[$0.key] === $0.value }
    }

    private func setDrained(_ next: [PortIndex: TapQueue]) {
        guard !Self.same(next, drained) else { return }
        if next.isEmpty {
            drain?.stop()
            drain = nil
        } else {
            if drain == nil {
                do { drain = try TapDrain() } catch {
                    logger.warning("representor capture: no drain thread", metadata: ["error": "\(error)"])
                    return
                }
            }
            drain?.watch(Array(next.values))
        }
        // What a representor that is no longer mirrored still had queued goes now.
        for (port, q) in drained where next[port] !== q { TapDrain.discardQueued(q.fd) }
        drained = next
    }
}

/// /proc/net/packet: the packet sockets of a network namespace (RepresentorCapture's
/// only; its tests reach it with @testable).
enum PacketSockets {
    struct Socket: Equatable, Sendable {
        /// The interface it is bound to (0: every interface).
        var ifindex: Int32
        /// The protocol it receives (host order; 0: none).
        var proto: UInt16
        /// Hooked into the receive path (the R column).
        var running: Bool
        var inode: UInt64
    }

    /// Rows of the table (columns sk RefCnt Type Proto Iface R Rmem User Inode); a line
    /// that does not parse is skipped.
    static func parse(_ table: String) -> [Socket] {
        table.split(separator: "\n").dropFirst().compactMap { line in
            let f = line.split(separator: " ", omittingEmptySubsequences: true)
            guard f.count >= 9, let proto = UInt16(f[3], radix: 16), let ifindex = Int32(f[4]), let inode = UInt64(f[8])
            else { return nil }
            return Socket(ifindex: ifindex, proto: proto, running: f[5] == "1", inode: inode)
        }
    }

    /// Sockets that receive frames now and are not eswd's own.
    static func foreignCaptures(in table: String, ownSockets: Set<UInt64>) -> [Socket] {
        parse(table).filter { $0.running && $0.proto != 0 && !ownSockets.contains($0.inode) }
    }

    /// The representors those sockets capture on: the one a socket is bound to, every
    /// one for a socket bound to no interface (tcpdump -i any).
    static func ifindexes(capturedBy sockets: [Socket], representors: Set<Int32>) -> Set<Int32> {
        var out: Set<Int32> = []
        for s in sockets {
            if s.ifindex == 0 { return representors }
            if representors.contains(s.ifindex) { out.insert(s.ifindex) }
        }
        return out
    }

    /// The representors to mirror, given the table, eswd's own socket inodes and the
    /// representors' ifindexes.
    static func capturedRepresentors(table: String, ownSockets: Set<UInt64>, representors: Set<Int32>) -> Set<Int32> {
        ifindexes(capturedBy: foreignCaptures(in: table, ownSockets: ownSockets), representors: representors)
    }
}

/// A thread that reads and discards what mirrored representors transmit, as soon as it
/// is queued on their TAPs (a full TAP queue drops and counts tx_dropped). It exists
/// only while some representor is mirrored. Any sender fills the queue (the software
/// path, the host's stack, a bridge), and eswd may run with no datapath: the drain is
/// not the datapath's packet thread's.
final class TapDrain: @unchecked Sendable {
    private let thread: ParkableThread
    private let epoll: Epoll
    /// Held while watched: a TAP's descriptor stays open, so no other file takes its
    /// number while the thread may still read it.
    private var queues: [TapQueue] = []
    private static let wakeupToken = UInt64.max
    /// A 64 KiB superframe and its vnet header fit (a shorter read would only truncate).
    private static let bufferSize = 128 << 10

    init() throws(SystemError) {
        thread = try ParkableThread()
        epoll = try Epoll(capacity: 64)
        try epoll.add(thread.wakeup.fd.raw, token: TapDrain.wakeupToken)
        try thread.start(name: "esw-rep-drain") { [self] in run() }
    }

    /// Changes the TAPs it reads (control thread), with the thread parked.
    func watch(_ next: [TapQueue]) {
        thread.pause()
        for q in queues { epoll.remove(q.fd) }
        queues = next
        for q in queues { try? epoll.add(q.fd, token: UInt64(UInt32(bitPattern: q.fd))) }
        thread.resume()
    }

    func stop() {
        thread.stop()
        for q in queues { epoll.remove(q.fd) }
        queues = []
    }

    /// Reads a TAP's queue empty (its descriptor is non-blocking).
    static func discardQueued(_ fd: Int32, into buffer: UnsafeMutableRawPointer? = nil) {
        let b = buffer ?? UnsafeMutableRawPointer.allocate(byteCount: bufferSize, alignment: 16)
        defer { if buffer == nil { b.deallocate() } }
        while Glibc.read(fd, b, bufferSize) > 0 {}
    }

    private func run() {
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: TapDrain.bufferSize, alignment: 16)
        defer { buffer.deallocate() }
        var ready = [(token: UInt64, events: UInt32)](repeating: (0, 0), count: 64)
        let broken: UInt32 = 0x008 | 0x010   // EPOLLERR | EPOLLHUP
        while thread.checkpoint(parking: {}) {
            var n = 0
            _ = try? epoll.wait(timeoutMilliseconds: 1000) { token, events in
                if n < ready.count { ready[n] = (token, events); n += 1 }
            }
            for i in 0..<n {
                let (token, events) = ready[i]
                if token == TapDrain.wakeupToken {
                    thread.wakeup.drain()
                    continue
                }
                let fd = Int32(truncatingIfNeeded: token)
                TapDrain.discardQueued(fd, into: buffer)
                // A TAP whose netdev was deleted under it reports an error for ever:
                // watching it would spin (the control thread's removal comes later).
                if events & broken != 0 { epoll.remove(fd) }
            }
        }
    }
}
