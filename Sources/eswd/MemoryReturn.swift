import CNetLinux
import Glibc

/// Gives freed memory back to the system after the flow table shrank a lot (a
/// del-flows of a million flows frees hundreds of MiB that glibc would otherwise keep
/// for reuse). The table's old structures are freed only after an RCU grace period, so
/// this looks a second later, from the control loop's timer.
struct MemoryReturn {
    /// Fewer flows than this below the peak since the last trim: trim.
    static let flowDrop = 10_000
    /// Free heap kept for the next add: a trim gives back all of it or nothing, and pages
    /// given back inside the heap fault in again when they are reused (on the prefault
    /// thread, ahead of the allocations, but a fault each all the same). A 50k add after a
    /// 50k del-flows faulted 6-7k pages back on the control thread, a tenth of its time,
    /// when the prefault thread followed only the heap's end; 48 MiB keeps a 50k table's
    /// worth (about 35 MiB) and returns anything bigger.
    static let keptFreeBytes = 48 << 20
    private var peakFlows = 0
    private var lastLook: UInt64 = 0
    /// Trims still to do: once at the drop, once a second later (after the grace period).
    private var trimsLeft = 0

    /// Fixes glibc's mmap threshold: by default a freed big block raises it (up to 32
    /// MiB), after which big arrays come from the heap and fragment it; fixed, they are
    /// mapped and unmapped whole. And its trim threshold: at the default 128 KiB, a
    /// buffer of a few hundred KiB freed at the top of the heap gave its pages back and
    /// the next one faulted them in again (a streamed dump moved the heap's end twice a
    /// chunk); memory is returned by `tick` instead, when the table shrank.
    static func configureAllocator() {
        _ = mallopt(M_MMAP_THRESHOLD, 256 << 10)
        _ = mallopt(M_TRIM_THRESHOLD, 16 << 20)
    }

    /// True when it trimmed the heap (pages given back inside it).
    mutating func tick(now: UInt64, flows: Int) -> Bool {
        peakFlows = max(peakFlows, flows)
        guard now &- lastLook >= 1_000_000_000 else { return false }
        lastLook = now
        if flows + Self.flowDrop < peakFlows { trimsLeft = 2 }
        peakFlows = flows
        if trimsLeft > 0 {
            trimsLeft -= 1
            if mallinfo2().fordblks > Self.keptFreeBytes {
                _ = malloc_trim(0)
                return true
            }
        }
        return false
    }
}
