import CNetLinux

/// Runs work inside another network namespace on a short-lived thread, so that the
/// calling thread's namespace never changes (setns affects only the calling thread).
public enum NetworkNamespace {
    /// Runs `body` with the thread switched into the namespace `nsFD`.
    public static func run<T: Sendable>(in nsFD: Int32, _ body: @escaping @Sendable () throws -> T) throws -> T {
        let box = ResultBox<T>()
        let fd = nsFD
        let t = try PacketThread.spawn(name: "esw-netns") {
            if cnl_setns_net(fd) != 0 {
                box.result = .failure(SystemError("setns", errno: errno))
                return
            }
            box.result = Result { try body() }
        }
        t.join()
        return try box.result!.get()
    }
}

private final class ResultBox<T>: @unchecked Sendable {
    var result: Result<T, any Error>?
    init() {}
}

/// A named pthread, used for packet workers (no Foundation, no executors: a packet
/// thread owns its loop).
public final class PacketThread: @unchecked Sendable {
    private var handle: pthread_t

    private init(handle: pthread_t) { self.handle = handle }

    private final class Start {
        let name: String
        let body: @Sendable () -> Void
        init(name: String, body: @escaping @Sendable () -> Void) {
            self.name = name
            self.body = body
        }
    }

    public static func spawn(name: String, _ body: @escaping @Sendable () -> Void) throws(SystemError) -> PacketThread {
        let start = Unmanaged.passRetained(Start(name: name, body: body)).toOpaque()
        var handle = pthread_t()
        let rc = pthread_create(&handle, nil, { arg in
            let s = Unmanaged<Start>.fromOpaque(arg!).takeRetainedValue()
            _ = cnl_set_thread_name(String(s.name.prefix(15)))
            s.body()
            return nil
        }, start)
        if rc != 0 {
            Unmanaged<Start>.fromOpaque(start).release()
            throw SystemError("pthread_create", errno: rc)
        }
        return PacketThread(handle: handle)
    }

    public func join() { pthread_join(handle, nil) }
}
