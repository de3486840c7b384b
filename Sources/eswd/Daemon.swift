import CNetLinux
import BPFDataPlane
import Classifier
import ControlProtocol
import ESwitch
import Logging
import NetLinux
import Netlink
import OVSDatapath
import Representors

/// Everything one eswd runs: the eSwitch with its netdevs, the datapath, the control
/// socket, and the single control thread that serves them (no locks in the control
/// plane: every change happens here).
final class Daemon {
    let options: DaemonOptions
    let logger: Logger
    let driver: RepresentorDriver
    let sw: ESwitch
    let dataPlane: BPFDataPlane
    let vfs: [VFNetdev]
    let server: ControlServer
    let datapaths: DatapathService
    let devlink: DevlinkService
    var tunnels: TunnelService? = nil
    let epoll: Epoll
    let signals: FileDescriptor
    let timer: FileDescriptor
    /// Fires when the emulated firmware's current access completes (armed per access).
    let firmwareTimer: FileDescriptor
    let uplinkRecord: UplinkRecord
    /// The uplink's ifindex when its clsact qdisc is eswd's (created by this run or a
    /// killed one): removed at a clean stop. A qdisc that was there before stays.
    let uplinkClsact: Int32?
    private var running = true
    private var lastMTUSync: UInt64 = 0
    /// When a client last sent a run of 64 requests or more (a bulk stream), and this
    /// (the control) thread's side of the placement during one.
    private var lastBulkRun: UInt64 = 0
    private let placement = HelperPlacement.Follower(off: true)
    /// A client streams a bulk until this long after its last such run: the placement
    /// is given back and the counter poll no longer held then.
    static let streamGapNanoseconds: UInt64 = 200_000_000
    private var memory = MemoryReturn()
    /// Faults in the heap's growth off the control thread (none if its thread could
    /// not start: the control thread then takes the page faults itself).
    private let heap = try? HeapPrefault(threadName: "esw-prefault")

    enum Token {
        static let listener: UInt64 = 1
        static let signals: UInt64 = 2
        static let timer: UInt64 = 3
        static let upcalls: UInt64 = 4
        static let routes: UInt64 = 5
        static let firmware: UInt64 = 6
        static let clientBase: UInt64 = 1 << 32
    }

    init(options: DaemonOptions, logger: Logger, signals: consuming FileDescriptor) throws {
        self.options = options
        self.logger = logger
        self.signals = signals
        // The big tables' next sizes are touched in by the same thread as the heap.
        if let heap {
            TableMemory.touchAhead = { [heap] p, n in
                let request = heap.touch(p, length: n)
                return { wait in if wait { request.stopAndWait() } else { request.stop() } }
            }
        }
        let naming = NetdevNaming(switchName: options.name, representorPrefix: options.representorPrefix)
        if let why = naming.validate(vfs: options.vfs) { throw DriverError(why) }
        driver = RepresentorDriver(naming: naming, logger: logger)
        driver.liveOwner = { TCHook.liveOwner(ofNetdev: $0) }
        // Nothing is created before the uplink is known to be there and free, nor while
        // another eswd answers on our control socket: the run directory (the socket and
        // the uplink record next to it) is its own.
        if ControlServer.isAnswered(options.controlPath) {
            throw DriverError("control socket \(options.controlPath) is in use by a live eswd (give this one another --name or --control)")
        }
        try driver.checkUplink(options.uplink)
        try driver.removeStale(vfs: options.vfs, extra: [options.name])
        let rollback = StartupRollback()
        defer { rollback.runUnlessCommitted() }
        var profile = HardwareProfile()
        if let path = options.profile {
            let text = try String(readingFile: path)
            profile = try HardwareProfile(text: text)
        }
        dataPlane = try BPFDataPlane(profile: profile)
        // The NIC engine's delay line, created with the first offloaded program.
        dataPlane.delayLineName = String("\(options.name)-engine".prefix(15))
        let vfs = try driver.createVFs(count: options.vfs)
        self.vfs = vfs
        rollback.add { [driver] in driver.destroyVFs(vfs) }
        let record = UplinkRecord(controlPath: options.controlPath, name: options.name, uplink: options.uplink)
        uplinkRecord = record
        record.prepare(logger: logger)
        rollback.add { [driver] in
            driver.releaseUplink()
            record.remove()
        }
        let uplink = try driver.bindUplink(options.uplink)
        let createdClsact = try TCHook.createClsact(ifindex: uplink.ifindex)
        uplinkClsact = record.settleClsact(createdNow: createdClsact, logger: logger) ? uplink.ifindex : nil
        rollback.add { [uplinkClsact] in if let i = uplinkClsact { TCHook.destroyClsact(ifindex: i) } }
        let sw = try ESwitch(name: options.name, vfs: vfs, uplink: uplink, mode: options.mode, profile: profile,
                             dataPlane: dataPlane, logger: logger)
        self.sw = sw
        rollback.add { sw.stop() }
        try sw.start()
        try sw.attach(provider: driver, vfLinks: driver)
        server = try ControlServer(path: options.controlPath, logger: logger)
        devlink = DevlinkService(sw: sw, driver: driver)
        let swRef = sw
        let opts = options
        let log = logger
        datapaths = DatapathService(datapath: nil, logger: logger) { name in
            let d = try Datapath(name: name, eswitch: swRef, policy: opts.policy, missMode: opts.miss,
                                 maxIdleMilliseconds: opts.maxIdle, logger: log)
            try d.start()
            return d
        }
        datapaths.heap = heap
        epoll = try Epoll(capacity: 128)
        timer = FileDescriptor(adopting: try syscall("timerfd") { cnl_timerfd_periodic(50) })
        firmwareTimer = FileDescriptor(adopting: try syscall("timerfd_create") {
            timerfd_create(CLOCK_MONOTONIC, Int32(TFD_NONBLOCK) | Int32(TFD_CLOEXEC))
        })
        if !options.noDatapath {
            let d = try datapaths.makeDatapath("esw@\(options.name)")
            datapaths.datapath = d
        }
        tunnels = try TunnelService(eswitch: sw, logger: logger)
        try epoll.add(server.listener.raw, token: Token.listener)
        try epoll.add(self.signals.raw, token: Token.signals)
        try epoll.add(timer.raw, token: Token.timer)
        try epoll.add(firmwareTimer.raw, token: Token.firmware)
        if let d = datapaths.datapath { try epoll.add(d.upcallFD, token: Token.upcalls) }
        // A switch to legacy destroys the representors: their vports go with them at once.
        devlink.afterModeChange = { [datapaths] in datapaths.datapath?.detachVanishedPorts() }
        if let fd = tunnels?.eventFD { try epoll.add(fd, token: Token.routes) }
        hookDatapath()
        hookControlClients()
        let plane = dataPlane
        datapaths.coalescingRemovals = { body in plane.coalescingRemovals(body) }
        rollback.commit()
        logger.notice("eswd ready", metadata: ["name": "\(options.name)", "vfs": "\(options.vfs)", "uplink": "\(options.uplink)",
                                               "mode": "\(options.mode.rawValue)", "control": "\(options.controlPath)"])
    }

    /// Wires a (new) datapath's upcalls and tunnel resolver.
    func hookDatapath() {
        guard let d = datapaths.datapath else { return }
        d.tunnelResolver = tunnels?.tracker
        tunnels?.tracker.datapathLink = d.link
        // Not counted, and not weak (which gives the daemon a side table, and each retain
        // of it the runtime's slow path): the daemon outlives its datapaths.
        d.upcallListener = { [unowned(unsafe) self] u in broadcast(u) }
    }

    /// A client with a backlog is watched for room to write, not for requests; one the
    /// server disconnects leaves epoll before its fd closes.
    private func hookControlClients() {
        server.onBacklogChange = { [unowned self] fd, waiting in
            let events = waiting ? EPOLLOUT.rawValue : EPOLLIN.rawValue
            try? epoll.modify(fd, events: events, token: Token.clientBase | UInt64(fd))
        }
        server.onDisconnect = { [unowned self] fd in
            epoll.remove(fd)
            datapaths.clientGone(fd)
        }
    }

    /// Upcalls to every subscriber; one that does not read loses them (counted as the
    /// datapath's `lost`, as the kernel counts upcalls it could not queue).
    func broadcast(_ u: Upcall) {
        // A frame too long for one attribute cannot be queued: lost, as the kernel counts it.
        guard let bytes = try? DatapathService.upcallMessage(u).encoded() else {
            datapaths.datapath?.countLostUpcall()
            return
        }
        for (fd, c) in server.clients where c.subscribed {
            if !server.notify(fd, bytes) { datapaths.datapath?.countLostUpcall() }
        }
    }

    func run() {
        while running {
            var ready: [(UInt64, UInt32)] = []
            _ = try? epoll.wait(timeoutMilliseconds: armFirmwareTimer()) { t, e in ready.append((t, e)) }
            for (token, events) in ready {
                switch token {
                case Token.listener:
                    while let c = server.accept() { try? epoll.add(c, token: Token.clientBase | UInt64(c)) }
                case Token.signals:
                    let sig = cnl_signalfd_read(signals.raw)
                    logger.notice("signal \(sig): shutting down")
                    running = false
                case Token.firmware:
                    var buf: UInt64 = 0
                    _ = Glibc.read(firmwareTimer.raw, &buf, 8)
                case Token.timer:
                    var buf: UInt64 = 0
                    _ = Glibc.read(timer.raw, &buf, 8)
                    tick()
                case Token.upcalls:
                    datapaths.datapath?.processUpcalls()
                case Token.routes:
                    tunnels?.processEvents()
                default:
                    let fd = Int32(truncatingIfNeeded: token & 0xffff_ffff)
                    if events & EPOLLOUT.rawValue != 0 { server.flush(fd) }
                    if events & ~EPOLLOUT.rawValue != 0 { serve(fd) }
                }
            }
            // Nothing else to do: the firmware may start a partial bulk (the driver's
            // doorbell); otherwise only its due work runs and bulks keep filling.
            sw.serviceHardware(idle: ready.isEmpty)
        }
        shutdown()
    }

    /// Arms the firmware timer for the current access's completion (to the nanosecond:
    /// accesses are tens of microseconds) and returns how long epoll may wait: not at all
    /// while writes wait for the doorbell, else a second.
    private func armFirmwareTimer() -> Int32 {
        let deadline = sw.nextHardwareDeadline ?? 0
        var its = itimerspec()
        its.it_value = timespec(tv_sec: Int(deadline / 1_000_000_000), tv_nsec: Int(deadline % 1_000_000_000))
        _ = timerfd_settime(firmwareTimer.raw, Int32(TFD_TIMER_ABSTIME), &its, nil)
        return deadline == 0 && sw.hasHardwareWork ? 0 : 1000
    }

    private func tick() {
        let now = Sys.monotonicNanoseconds()
        let streaming = now &- lastBulkRun < Self.streamGapNanoseconds
        // The stream is over: every thread may run anywhere again.
        if HelperPlacement.shared.current >= 0 && !streaming {
            HelperPlacement.shared.prefer(-1)
            placement.follow()
        }
        datapaths.datapath?.tick(now: now, streaming: streaming)
        tunnels?.tick(now: now)
        sw.tick(now: now)
        server.disconnectStalled(now: now)
        if memory.tick(now: now, flows: datapaths.datapath?.flowCount ?? 0) { heap?.noteTrim() }
        if now &- lastMTUSync > 200_000_000 {
            lastMTUSync = now
            driver.syncMTU(sw)
            sw.syncUplinkRepresentor()
            sw.refreshVFNamespaces()
            sw.refreshLegacyTable()
            datapaths.datapath?.detachVanishedPorts()
            driver.capture.sync(sw)
        }
    }

    private func serve(_ fd: Int32) {
        guard let client = server.clients[fd] else { return }
        // Its replies wait for room: its requests wait too (unless it hung up).
        if client.isWaitingForRoom {
            server.flush(fd)
            if client.isWaitingForRoom { return }
        }
        guard let datagrams = server.readAvailable(fd) else {
            epoll.remove(fd)
            server.drop(fd)
            datapaths.clientGone(fd)
            return
        }
        if datagrams.isEmpty { return }
        let entries = Self.entries(of: datagrams)
        notePlacement(of: client, requests: entries.count)
        // The daemon held by the run, once (a cycle only while the run lasts: the client
        // drops its producer when it is done or gone). Unowned, checked or not, it was
        // retained and released for each request.
        // (The entries given up: the run takes each one out as it serves it, which copied
        // all of them, a retain each, while this function still held them too.)
        // The requests the client sends while these are served join the run, up to about
        // `runBytes` of them; then other clients get their turn.
        var budget = ControlServer.runBytes - datagrams.reduce(0) { $0 + $1.count }
        let server = self.server
        let run = RequestRun(consume entries, handle: { [self] raw, out in handle(raw, client: client, into: &out) }, refill: { [self] in
            guard budget > 0, server.clients[fd] === client, let more = server.readAvailable(fd) else { return [] }
            budget -= more.reduce(0) { $0 + $1.count }
            let entries = Self.entries(of: more)
            notePlacement(of: client, requests: entries.count)
            return entries
        })
        // New rules' writes go to the kernel in bulks, all of them before the replies leave;
        // the run is one batch of offload operations (its burst's clock read twice).
        let plane = dataPlane
        let sw = self.sw
        server.stream(fd) { out in plane.coalescingWrites { sw.batchingOperations { run.produce(into: &out) } } }
    }

    /// A client streaming a bulk (a flow file): the helper threads on its CPU and this
    /// thread on the others while the stream lasts (HelperPlacement), or, if that
    /// cannot be, this thread moved off its CPU (CPUPlacement), looked at most every ms.
    private func notePlacement(of client: ControlServer.Client, requests: Int) {
        guard requests >= 64 else { return }
        let now = Sys.monotonicNanoseconds()
        lastBulkRun = now
        // (Looked at again every ms: a client streaming right after another, within
        // the `streamGapNanoseconds` before the placement is given back, may be on any CPU.)
        guard now &- client.lastPlacementCheck > 1_000_000 else { return }
        client.lastPlacementCheck = now
        if let cpu = CPUPlacement.separate(from: client.pid), cpu != HelperPlacement.shared.current {
            HelperPlacement.shared.prefer(cpu)
            placement.follow()
        }
    }

    /// The requests of datagrams read at once, in order.
    private static func entries(of datagrams: [[UInt8]]) -> [RequestRun.Entry] {
        var entries: [RequestRun.Entry] = []
        for data in datagrams {
            let before = entries.count
            do { try MessageParser.split(data) { entries.append(.request($0)) } } catch {
                // Not even framed: none of it is served (the messages before the bad one
                // were appended already), and it is answered once, in its place among the others.
                entries.removeSubrange(before...)
                entries.append(.answer(ErrorMessage(errno: EINVAL, message: "malformed message: \(error)", sequence: 0, requestType: 0).encoded()))
            }
        }
        return entries
    }

    /// One request → its replies, always ending with an ACK, DONE or error, appended to
    /// `out`; or the stream that produces a big dump's replies (DONE is then the stream
    /// runner's to add).
    /// `raw` is consumed: its body moves into the message (no reference of its own).
    private func handle(_ raw: consuming RawMessage, client: ControlServer.Client, into out: inout [UInt8]) -> ReplyStream? {
        heap?.noteGrowth()
        let header = raw.header
        var reply = ControlServer.Reply(sequence: header.sequence, requestType: header.type)
        let wantsAck = header.flags & NetlinkFlags.ack != 0
        let isDump = header.flags & NetlinkFlags.dump == NetlinkFlags.dump
        do throws(RequestError) {
            // A control message (NOOP, DONE, ...) is skipped, as the kernel's
            // netlink_rcv_skb skips it: acknowledged when the sender asked for an ACK.
            guard header.type >= NetlinkMessageType.minimumFamily else {
                if wantsAck { ErrorMessage(errno: 0, sequence: header.sequence, requestType: header.type).append(to: &out) }
                return nil
            }
            let m: GenericMessage
            do { m = try GenericMessage(header: header, body: (consume raw).body) } catch { throw RequestError(EINVAL, error.description) }
            switch m.header.type {
            case Family.datapath:
                try datapaths.handleDatapath(m, &reply)
                if m.command == DatapathCmd.new || m.command == DatapathCmd.del { rehookDatapath() }
            case Family.vport: try datapaths.handleVport(m, &reply)
            case Family.flow: try datapaths.handleFlow(m, &reply, client: client.fd.raw)
            case Family.packet: try datapaths.handlePacket(m, &reply, client: client)
            case Family.devlink: try devlink.handle(m, &reply)
            case Family.conntrack: try ConntrackService.handle(m, datapath: datapaths.datapath, &reply)
            case Family.tunnel:
                guard let t = tunnels else { throw RequestError(ENOTSUP, "no tunnel tracker") }
                try t.handle(m, &reply)
            default:
                throw RequestError(EOPNOTSUPP, "unknown family \(m.header.type)")
            }
        } catch {
            ErrorMessage(errno: error.errno, message: error.message, sequence: header.sequence,
                         requestType: header.type).append(to: &out)
            return nil
        }
        // (Most requests reply nothing but their ACK: not even an empty append.)
        if !reply.bytes.isEmpty { out += reply.bytes }
        if let stream = reply.stream { return stream }
        if isDump { out += encodeDone(sequence: header.sequence) }
        if wantsAck && !isDump {
            ErrorMessage(errno: 0, sequence: header.sequence, requestType: header.type).append(to: &out)
        }
        return nil
    }

    private func rehookDatapath() {
        if let d = datapaths.datapath {
            try? epoll.add(d.upcallFD, token: Token.upcalls)
            hookDatapath()
        }
    }

    private func shutdown() {
        logger.notice("stopping")
        TableMemory.touchAhead = nil
        heap?.stop()
        datapaths.datapath?.stop()
        driver.capture.stop()
        sw.stop()
        driver.destroyVFs(vfs)
        if let i = uplinkClsact { TCHook.destroyClsact(ifindex: i) }
        driver.releaseUplink()
        uplinkRecord.remove()
        // Closing the representors' TAP queues (when these objects go) removes them.
    }
}

extension String {
    init(readingFile path: String) throws {
        guard let f = fopen(path, "r") else { throw SystemError("open \(path)", errno: errno) }
        defer { fclose(f) }
        var bytes: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = fread(&buf, 1, buf.count, f)
            if n <= 0 { break }
            bytes += buf[0..<n]
        }
        self = String(decoding: bytes, as: UTF8.self)
    }
}
