import CNetLinux
import ESwitch
import Glibc
import NetLinux
import Synchronization

/// Where the NIC engine's frames wait until the engine is done with them (bpf/prog_stage.h).
/// The pipeline sends a frame that must wait out of a TAP with a trailer saying when it
/// may leave; this thread reads it, holds it until then and writes it back, so the frame
/// arrives at the TAP's ingress, where the pipeline resumes it after the stage.
///
/// A TAP because this kernel has no qdisc that holds a frame until a time (no fq, etf or
/// netem), and a BPF program cannot keep an skb: something must hold it, and only frames
/// that wait come here. Waits are kept with a timerfd (hrtimer, no timer slack).
///
/// The TAP exists while this object does (not persistent): a killed eswd takes it, and
/// the frames it held, with it.
final class EngineDelayLine: @unchecked Sendable {
    let name: String
    let ifindex: Int32
    private let tap: TapDevice
    private let timer: FileDescriptor
    private let thread: ParkableThread
    /// Frames held at most (a bound for memory; the engine's queue bound normally keeps
    /// far fewer). More are dropped.
    static let capacity = 65536
    static let trailerSize = 16
    static let magic: UInt32 = 0xe5e5_d1a7
    /// The same metadata after the Ethernet header (ESW_HOLD_MAGIC_HEAD).
    static let headMagic: UInt32 = 0xe5e5_d1a8
    /// A frame written back this much after its time left late: the delay line (a user
    /// space thread) could not keep up with the engine it emulates.
    static let lateNanoseconds: UInt64 = 100_000
    /// Late frames by the port they came in on (the data plane's: reset with the port's
    /// other program counters).
    private let lateFrames: LateFrames

    init(name: String, lateFrames: LateFrames) throws(SystemError) {
        self.lateFrames = lateFrames
        tap = try TapDevice(name: name, vnetHeader: true)
        self.name = tap.name
        // UDP GSO superframes too (TUN_F_USO4/6, Linux 6.2): else the kernel segments
        // them before the TAP and the trailer stays on the last segment only.
        let all = CNL_TUN_F_CSUM | CNL_TUN_F_TSO4 | CNL_TUN_F_TSO6 | CNL_TUN_F_TSO_ECN | 0x20 | 0x40
        _ = cnl_tun_set_offload(tap.fd.raw, all)
        try tap.fd.setNonBlocking()
        let c = try InterfaceControl()
        // The host has no business on it: no IPv6 addresses or router solicitations.
        try? ProcFile.write("/proc/sys/net/ipv6/conf/\(self.name)/disable_ipv6", "1")
        try c.setFlag(self.name, Int32(IFF_NOARP), true)
        try c.setMTU(self.name, 65521)  // a TAP's largest
        try c.setUp(self.name, true)
        ifindex = try c.index(of: self.name)
        timer = FileDescriptor(adopting: try syscall("timerfd_create") {
            timerfd_create(CLOCK_MONOTONIC, Int32(TFD_NONBLOCK) | Int32(TFD_CLOEXEC))
        })
        thread = try ParkableThread()
        let tapFD = tap.fd.raw, timerFD = timer.raw, wakeup = thread.wakeup
        try thread.start(name: "esw-nic-engine") { [thread, self] in
            var line = HeldFrames()
            self.run(tap: tapFD, timer: timerFD, wakeup: wakeup, thread: thread, frames: &line)
        }
    }

    /// Stops the thread; the frames it held go out at once (their wait cut short).
    func stop() { thread.stop() }

    deinit { thread.stop() }

    private func run(tap: Int32, timer: Int32, wakeup: Wakeup, thread: ParkableThread, frames: inout HeldFrames) {
        let trailerSize = Self.trailerSize, capacity = Self.capacity
        var buf = [UInt8](repeating: 0, count: TapDevice.vnetHeaderSize + 65536 + 4 + trailerSize + 256)
        var fds = [pollfd(fd: tap, events: Int16(POLLIN), revents: 0), pollfd(fd: timer, events: Int16(POLLIN), revents: 0),
                   pollfd(fd: wakeup.fd.raw, events: Int16(POLLIN), revents: 0)]
        var armed: UInt64 = 0
        while thread.checkpoint(parking: {}) {
            let now = Sys.monotonicNanoseconds()
            while let (at, f) = frames.popDue(now) {
                if Sys.monotonicNanoseconds() > at + Self.lateNanoseconds { countLate(f) }
                Self.write(tap, f)
            }
            if let next = frames.next, next != armed {
                Self.arm(timer, at: next)
                armed = next
            }
            _ = poll(&fds, nfds_t(fds.count), -1)
            if fds[1].revents != 0 {
                var expirations: UInt64 = 0
                _ = read(timer, &expirations, 8)
                armed = 0
            }
            if fds[2].revents != 0 { wakeup.drain() }
            // Everything the pipeline sent since the last round.
            while true {
                let n = buf.withUnsafeMutableBytes { read(tap, $0.baseAddress, $0.count) }
                if n <= 0 { break }
                guard let at = Self.trailerTime(buf, n), frames.count < capacity else { continue }
                frames.push(at: at, frame: Array(buf[0..<n]))
            }
        }
        while let (_, f) = frames.popDue(.max) { Self.write(tap, f) }
    }

    private func countLate(_ f: [UInt8]) {
        guard let m = Self.metadataOffset(f, f.count) else { return }
        lateFrames.count(port: Int(f[m + 12]) | Int(f[m + 13]) << 8)
    }

    /// Where a frame's hold metadata (16 bytes: at, magic, port, verdict, arg) is in what
    /// the TAP sent (after the virtio-net header), or nil for anything not ours. IPv4/IPv6
    /// frames carry it right after the Ethernet header (their GSO state survives: see
    /// bpf/prog_stage.h), after the VLAN tag the TAP writes out of a tagged frame's
    /// metadata; other frames carry it at their end.
    static func metadataOffset(_ b: [UInt8], _ n: Int) -> Int? {
        let eth = TapDevice.vnetHeaderSize
        guard n >= eth + 14 + trailerSize else { return nil }
        func le32(_ o: Int) -> UInt32 { (0..<4).reduce(UInt32(0)) { $0 | UInt32(b[o + $1]) << (8 * UInt32($1)) } }
        let type = Int(b[eth + 12]) << 8 | Int(b[eth + 13])
        let head = eth + (type == 0x8100 || type == 0x88a8 ? 18 : 14)
        if n >= head + trailerSize && le32(head + 8) == headMagic { return head }
        return le32(n - trailerSize + 8) == magic ? n - trailerSize : nil
    }

    /// The departure time in a frame's hold metadata, or nil for anything else the TAP
    /// sent (nothing of ours).
    static func trailerTime(_ b: [UInt8], _ n: Int) -> UInt64? {
        guard let m = metadataOffset(b, n) else { return nil }
        return (0..<8).reduce(UInt64(0)) { $0 | UInt64(b[m + $1]) << (8 * UInt64($1)) }
    }

    private static func write(_ tap: Int32, _ frame: [UInt8]) {
        // A full receive backlog drops the frame, as the NIC's output would.
        _ = frame.withUnsafeBytes { Glibc.write(tap, $0.baseAddress, $0.count) }
    }

    private static func arm(_ timer: Int32, at ns: UInt64) {
        var spec = itimerspec()
        spec.it_value.tv_sec = Int(ns / 1_000_000_000)
        spec.it_value.tv_nsec = Int(ns % 1_000_000_000)
        _ = timerfd_settime(timer, Int32(TFD_TIMER_ABSTIME), &spec, nil)
    }
}

/// Frames the delay line wrote back late (EngineDelayLine.lateNanoseconds), by port: a
/// program counter kept in user space, so the data plane resets it with the port's others
/// (a program attached, or attached again after a reload).
final class LateFrames: Sendable {
    private let byPort = Mutex([UInt64](repeating: 0, count: Layout.maxPorts))

    func count(port: Int) { byPort.withLock { if port < $0.count { $0[port] += 1 } } }
    func value(_ port: PortIndex) -> UInt64 { byPort.withLock { Int(port) < $0.count ? $0[Int(port)] : 0 } }
    func reset(_ port: PortIndex) { byPort.withLock { if Int(port) < $0.count { $0[Int(port)] = 0 } } }
}

/// Held frames by departure time (a binary min-heap; ties leave in arrival order).
struct HeldFrames {
    private var heap: [(at: UInt64, seq: UInt64, frame: [UInt8])] = []
    private var sequence: UInt64 = 0

    var count: Int { heap.count }
    var next: UInt64? { heap.first?.at }

    private func less(_ a: Int, _ b: Int) -> Bool {
        heap[a].at != heap[b].at ? heap[a].at < heap[b].at : heap[a].seq < heap[b].seq
    }

    mutating func push(at: UInt64, frame: [UInt8]) {
        sequence &+= 1
        heap.append((at, sequence, frame))
        var i = heap.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard less(i, parent) else { break }
            heap.swapAt(i, parent)
            i = parent
        }
    }

    /// The earliest frame and its time, if it is due at `now`.
    mutating func popDue(_ now: UInt64) -> (UInt64, [UInt8])? {
        guard let first = heap.first?.at, first <= now else { return nil }
        heap.swapAt(0, heap.count - 1)
        let out = (first, heap.removeLast().frame)
        var i = 0
        while true {
            let l = 2 * i + 1, r = l + 1
            var m = i
            if l < heap.count && less(l, m) { m = l }
            if r < heap.count && less(r, m) { m = r }
            if m == i { break }
            heap.swapAt(i, m)
            i = m
        }
        return out
    }
}
