import CNetLinux

#if canImport(Glibc)
import Glibc
#endif

/// Keeps the daemon's control thread off the CPU of a client streaming a bulk of
/// requests (a flow file).
///
/// A socket's wakeup tells the scheduler that the waker is about to sleep, so the
/// daemon is woken on the client's CPU, even with its own idle. A client streaming a
/// flow file does not sleep (it parses the next lines): the two take turns on one CPU,
/// each run of the daemon a datagram long, until a load balance separates them (on
/// this 2-CPU VM, 37 ms of an 80 ms 50k-flow add-flows). Moved once, the daemon finds
/// the next datagrams waiting when it finishes a run (the client parses faster than
/// the daemon installs) and is not woken again while the stream lasts.
public enum CPUPlacement {
    /// Moves the calling thread off its CPU if `pid` last ran there, and says which CPU
    /// that is (nil if unknown). Only the calling thread's affinity is touched, and it is
    /// given back at once (a `taskset` of that thread landing in between would be undone).
    public static func separate(from pid: Int32) -> Int32? {
        guard pid > 0, let cpu = lastCPU(of: pid) else { return nil }
        if currentCPU == cpu { _ = moveOff(cpu: cpu) }
        return cpu
    }

    /// Moves the calling thread off `cpu` (to another CPU its affinity allows) and gives
    /// its affinity back; false if it could not. (Should the kernel refuse the affinity
    /// back, which it has no reason to, the thread keeps off that CPU: it still runs.)
    static func moveOff(cpu: Int32) -> Bool { cnl_move_off_cpu(cpu) == 0 }

    /// The CPU the calling thread runs on.
    public static var currentCPU: Int32 { cnl_current_cpu() }

    /// The CPU a process last ran on (field 39 of /proc/PID/stat).
    static func lastCPU(of pid: Int32) -> Int32? {
        guard let f = fopen("/proc/\(pid)/stat", "r") else { return nil }
        defer { fclose(f) }
        var buf = [UInt8](repeating: 0, count: 1024)
        let n = fread(&buf, 1, buf.count, f)
        // The command name (field 2) is in parentheses and may hold blanks: count after it.
        guard n > 0, let close = buf[..<n].lastIndex(of: UInt8(ascii: ")")) else { return nil }
        let fields = buf[(close + 1)..<n].split(separator: UInt8(ascii: " "))
        guard fields.count > 36 else { return nil }
        return Int32(String(decoding: fields[36], as: UTF8.self))
    }
}
