#if canImport(Glibc)
@_exported import Glibc
#endif
import CNetLinux

/// A failed system call: its name and errno.
public struct SystemError: Error, Sendable, Equatable, CustomStringConvertible {
    public let call: String
    public let errno: Int32

    public init(_ call: String, errno: Int32) {
        self.call = call
        self.errno = errno
    }

    public var description: String { "\(call): \(String(cString: strerror(errno)))" }
}

/// Runs `body` until it does not fail with EINTR; turns -1 into a thrown SystemError.
@inline(__always)
@discardableResult
public func syscall<T: FixedWidthInteger>(_ name: @autoclosure () -> String, _ body: () -> T) throws(SystemError) -> T {
    while true {
        let r = body()
        if r == -1 {
            let e = Glibc.errno
            if e == EINTR { continue }
            throw SystemError(name(), errno: e)
        }
        return r
    }
}

/// Like `syscall`, but EAGAIN/EWOULDBLOCK yields nil instead of an error.
@inline(__always)
public func nonBlockingSyscall<T: FixedWidthInteger>(_ name: @autoclosure () -> String, _ body: () -> T) throws(SystemError) -> T? {
    while true {
        let r = body()
        if r == -1 {
            let e = Glibc.errno
            if e == EINTR { continue }
            if e == EAGAIN || e == EWOULDBLOCK { return nil }
            throw SystemError(name(), errno: e)
        }
        return r
    }
}

/// An owned file descriptor, closed exactly once when its owner goes away.
public struct FileDescriptor: ~Copyable, @unchecked Sendable {
    public let raw: Int32

    public init(adopting raw: Int32) { self.raw = raw }

    deinit { _ = Glibc.close(raw) }

    /// Gives up ownership without closing.
    public consuming func release() -> Int32 {
        let r = raw
        discard self
        return r
    }

    public func setNonBlocking() throws(SystemError) {
        let flags = try syscall("fcntl(F_GETFL)") { fcntl(raw, F_GETFL) }
        try syscall("fcntl(F_SETFL)") { fcntl(raw, F_SETFL, flags | O_NONBLOCK) }
    }
}

/// Thin wrappers for the calls the daemon makes, each named in its error.
public enum Sys {
    public static func socket(_ domain: Int32, _ type: Int32, _ proto: Int32) throws(SystemError) -> FileDescriptor {
        FileDescriptor(adopting: try syscall("socket") { Glibc.socket(domain, type | Int32(SOCK_CLOEXEC.rawValue), proto) })
    }

    public static func setsockopt<T: BitwiseCopyable>(_ fd: Int32, _ level: Int32, _ name: Int32, _ value: T, _ what: String) throws(SystemError) {
        _ = try withUnsafeBytes(of: value) { (raw) throws(SystemError) in
            try syscall("setsockopt(\(what))") {
                Glibc.setsockopt(fd, level, name, raw.baseAddress, socklen_t(raw.count))
            }
        }
    }

    @inline(__always)
    public static func read(_ fd: Int32, _ buf: UnsafeMutableRawPointer, _ count: Int) throws(SystemError) -> Int? {
        try nonBlockingSyscall("read") { Glibc.read(fd, buf, count) }
    }

    @inline(__always)
    public static func write(_ fd: Int32, _ buf: UnsafeRawPointer, _ count: Int) throws(SystemError) -> Int? {
        try nonBlockingSyscall("write") { Glibc.write(fd, buf, count) }
    }

    @inline(__always)
    public static func writev(_ fd: Int32, _ iov: UnsafePointer<iovec>, _ count: Int32) throws(SystemError) -> Int? {
        try nonBlockingSyscall("writev") { Glibc.writev(fd, iov, count) }
    }

    @inline(__always)
    public static func readv(_ fd: Int32, _ iov: UnsafePointer<iovec>, _ count: Int32) throws(SystemError) -> Int? {
        try nonBlockingSyscall("readv") { Glibc.readv(fd, iov, count) }
    }

    @inline(__always)
    public static func sendmmsg(_ fd: Int32, _ msgs: UnsafeMutablePointer<cnl_mmsghdr>, _ count: UInt32) throws(SystemError) -> Int32? {
        try nonBlockingSyscall("sendmmsg") { cnl_sendmmsg(fd, msgs, count, Int32(MSG_DONTWAIT)) }
    }

    public static func eventfd() throws(SystemError) -> FileDescriptor {
        FileDescriptor(adopting: try syscall("eventfd") {
            CNetLinux.eventfd(0, Int32(EFD_NONBLOCK) | Int32(EFD_CLOEXEC))
        })
    }

    public static func monotonicNanoseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    public static func monotonicMilliseconds() -> UInt64 { monotonicNanoseconds() / 1_000_000 }

    /// The calling thread's kernel id (for setpriority on one thread).
    public static func threadID() -> Int32 { cnl_gettid() }
}
