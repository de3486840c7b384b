import CMnl
import NetLinux

/// An rtnetlink socket through libmnl, owned by one value: closed exactly once.
/// Buffers are allocated once and reused for every request and datagram.
public struct RouteSocket: ~Copyable {
    private let nl: OpaquePointer
    public let portID: UInt32
    private var sequence: UInt32
    private let receiveBuffer: UnsafeMutableRawBufferPointer
    private let requestBuffer: UnsafeMutableRawBufferPointer

    /// Result of reading one datagram.
    public enum Status {
        /// Messages were handled; more belong to the same answer.
        case more
        /// The answer is complete (NLMSG_DONE or the ACK).
        case done
        /// Nothing to read (non-blocking socket).
        case empty
    }

    /// `groups`: RTNLGRP_* numbers to subscribe to. A request socket has none and a
    /// receive timeout, so a lost answer cannot hang the control thread.
    public init(groups: [UInt32] = [], nonBlocking: Bool = false) throws(SystemError) {
        var flags = Int32(SOCK_CLOEXEC.rawValue)
        if nonBlocking { flags |= Int32(SOCK_NONBLOCK.rawValue) }
        guard let s = mnl_socket_open2(NETLINK_ROUTE, flags) else {
            throw SystemError("mnl_socket_open2(NETLINK_ROUTE)", errno: errno)
        }
        if mnl_socket_bind(s, 0, pid_t(MNL_SOCKET_AUTOPID)) < 0 {
            let e = errno
            mnl_socket_close(s)
            throw SystemError("mnl_socket_bind", errno: e)
        }
        for g in groups where cmnl_add_group(s, g) < 0 {
            let e = errno
            mnl_socket_close(s)
            throw SystemError("setsockopt(NETLINK_ADD_MEMBERSHIP \(g))", errno: e)
        }
        let fd = mnl_socket_get_fd(s)
        if groups.isEmpty {
            var tv = timeval(tv_sec: 2, tv_usec: 0)
            _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        } else {
            // Room for bursts (a flapping route, a neighbour flush); overflow still shows as ENOBUFS.
            var size: Int32 = 8 << 20
            if setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, 4) != 0 {
                _ = setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, 4)
            }
        }
        nl = s
        portID = mnl_socket_get_portid(s)
        sequence = UInt32(truncatingIfNeeded: time(nil))
        receiveBuffer = .allocate(byteCount: 64 << 10, alignment: 8)
        requestBuffer = .allocate(byteCount: 1024, alignment: 8)
    }

    deinit {
        mnl_socket_close(nl)
        receiveBuffer.deallocate()
        requestBuffer.deallocate()
    }

    public var fd: Int32 { mnl_socket_get_fd(nl) }

    /// Builds a request (header filled in; `build` adds the family header and
    /// attributes), sends it, and returns its sequence number.
    @discardableResult
    public mutating func send(type: Int32, flags: Int32,
                              _ build: (UnsafeMutablePointer<nlmsghdr>) -> Void) throws(SystemError) -> UInt32 {
        sequence &+= 1
        let nlh = mnl_nlmsg_put_header(requestBuffer.baseAddress)!
        nlh.pointee.nlmsg_type = UInt16(type)
        nlh.pointee.nlmsg_flags = UInt16(Int32(NLM_F_REQUEST) | flags)
        nlh.pointee.nlmsg_seq = sequence
        build(nlh)
        let length = Int(nlh.pointee.nlmsg_len)
        try syscall("mnl_socket_sendto") { mnl_socket_sendto(nl, nlh, length) }
        return sequence
    }

    /// Reads one datagram and calls `body` for each message of it (libmnl checks
    /// lengths, sequence and port id, and turns NLMSG_ERROR into errno).
    public func receive(sequence seq: UInt32 = 0, portID pid: UInt32 = 0,
                        _ body: (UnsafePointer<nlmsghdr>) -> Void) throws(SystemError) -> Status {
        let n: Int
        do {
            guard let got = try nonBlockingSyscall("mnl_socket_recvfrom", {
                mnl_socket_recvfrom(nl, receiveBuffer.baseAddress, receiveBuffer.count)
            }) else { return .empty }
            n = got
        }
        typealias Visitor = (UnsafePointer<nlmsghdr>) -> Void
        let r: Int32 = withoutActuallyEscaping(body) { visit in
            var box: Visitor = visit
            return withUnsafeMutablePointer(to: &box) { ctx in
                mnl_cb_run(receiveBuffer.baseAddress, n, seq, pid, { nlh, data in
                    guard let nlh, let data else { return MNL_CB_ERROR }
                    data.assumingMemoryBound(to: Visitor.self).pointee(nlh)
                    return MNL_CB_OK
                }, ctx)
            }
        }
        if r < 0 { throw SystemError("rtnetlink", errno: errno) }
        return r == MNL_CB_STOP ? .done : .more
    }

    /// Sends a request and handles every message of its answer.
    public mutating func transact(type: Int32, flags: Int32, _ build: (UnsafeMutablePointer<nlmsghdr>) -> Void,
                                  each: (UnsafePointer<nlmsghdr>) -> Void) throws(SystemError) {
        let seq = try send(type: type, flags: flags, build)
        while true {
            switch try receive(sequence: seq, portID: portID, each) {
            case .done: return
            case .more: continue
            case .empty: throw SystemError("rtnetlink (no answer)", errno: EAGAIN)
            }
        }
    }
}
