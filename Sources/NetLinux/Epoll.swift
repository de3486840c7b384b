import CNetLinux

/// An epoll instance with its event buffer allocated once and reused for every wait.
public struct Epoll: ~Copyable {
    public let fd: FileDescriptor
    private let events: UnsafeMutablePointer<epoll_event>
    public let capacity: Int

    public init(capacity: Int = 64) throws(SystemError) {
        fd = FileDescriptor(adopting: try syscall("epoll_create1") { epoll_create1(Int32(EPOLL_CLOEXEC)) })
        self.capacity = capacity
        events = .allocate(capacity: capacity)
    }

    deinit { events.deallocate() }

    public func add(_ target: Int32, events mask: UInt32 = EPOLLIN.rawValue, token: UInt64) throws(SystemError) {
        var ev = epoll_event()
        ev.events = mask
        ev.data.u64 = token
        try syscall("epoll_ctl(ADD)") { epoll_ctl(fd.raw, EPOLL_CTL_ADD, target, &ev) }
    }

    public func modify(_ target: Int32, events mask: UInt32, token: UInt64) throws(SystemError) {
        var ev = epoll_event()
        ev.events = mask
        ev.data.u64 = token
        try syscall("epoll_ctl(MOD)") { epoll_ctl(fd.raw, EPOLL_CTL_MOD, target, &ev) }
    }

    public func remove(_ target: Int32) {
        var ev = epoll_event()
        _ = epoll_ctl(fd.raw, EPOLL_CTL_DEL, target, &ev)
    }

    /// Waits up to `timeoutMilliseconds` (-1 forever) and calls `body` with each ready
    /// token and its event bits. Returns the number of events.
    @discardableResult
    public func wait(timeoutMilliseconds: Int32, _ body: (UInt64, UInt32) -> Void) throws(SystemError) -> Int {
        let n = try syscall("epoll_wait") { epoll_wait(fd.raw, events, Int32(capacity), timeoutMilliseconds) }
        for i in 0..<Int(n) { body(events[i].data.u64, events[i].events) }
        return Int(n)
    }
}

/// An eventfd used to wake a thread sleeping in epoll.
public final class Wakeup: @unchecked Sendable {
    public let fd: FileDescriptor

    public init() throws(SystemError) { fd = try Sys.eventfd() }

    public func signal() { _ = cnl_eventfd_signal(fd.raw) }
    public func drain() { _ = cnl_eventfd_drain(fd.raw) }
}
