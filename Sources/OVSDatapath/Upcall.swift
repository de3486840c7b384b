import NetLinux
import Packet
import Synchronization

/// A packet handed from a packet thread to userspace: a flow-table miss
/// (OVS_PACKET_CMD_MISS) or a `userspace` action (OVS_PACKET_CMD_ACTION).
public struct Upcall: Sendable {
    public enum Command: UInt8, Sendable {
        case miss = 1
        case action = 2
    }
    public var command: Command
    public var inPort: UInt32
    public var key: FlowKey
    public var packet: [UInt8]
    public var userdata: [UInt8]?
    public var pid: UInt32
    /// Offload state of the frame (so an execute can send GSO frames back whole).
    public var offload: OffloadInfo
}

/// A bounded queue from packet threads to the control thread. Only misses and
/// userspace actions use it, never the flow-hit path. Full means the upcall is lost
/// (counted, as the kernel's n_lost).
final class UpcallQueue: @unchecked Sendable {
    private let items = Mutex<[Upcall]>([])
    let capacity: Int
    let wakeup: Wakeup

    init(capacity: Int = 4096) throws(SystemError) {
        self.capacity = capacity
        wakeup = try Wakeup()
    }

    func push(_ u: Upcall) -> Bool {
        let ok = items.withLock { q -> Bool in
            guard q.count < capacity else { return false }
            q.append(u)
            return true
        }
        if ok { wakeup.signal() }
        return ok
    }

    func drain() -> [Upcall] {
        wakeup.drain()
        return items.withLock { q in
            let out = q
            q.removeAll(keepingCapacity: true)
            return out
        }
    }
}
