import CNetLinux
import Glibc

/// Gives freed memory back to the system after the flow table shrank a lot (a
/// del-flows of a million flows frees hundreds of MiB that glibc would otherwise keep
/// for reuse). The table's old structures are freed only after an RCU grace period, so
/// the daemon's timer looks once a second, and trims again a second after the drop.
public struct MemoryReturn {
    /// Fewer flows than this below the peak since the last drop: trim. The peak is kept
    /// until a drop is seen, so a table emptied a few thousand flows a second (aging,
    /// a controller deleting in small batches) is trimmed as one emptied at once.
    public static let flowDrop = 10_000
    /// Free heap kept for the next add: a trim gives back all of it or nothing, and pages
    /// given back inside the heap fault in again when they are reused (on the prefault
    /// thread, ahead of the allocations, but a fault each all the same). A 50k add after a
    /// 50k del-flows faulted 6-7k pages back on the control thread, a tenth of its time,
    /// when the prefault thread followed only the heap's end; 48 MiB keeps a 50k table's
    /// worth (about 35 MiB) and returns anything bigger.
    public static let keptFreeBytes = 48 << 20
    private var peakFlows = 0
    private var lastLook: UInt64 = 0
    /// Trims still to do: once at the drop, once a second later (after the grace period).
    private var trimsLeft = 0

    public init() {}

    /// Fixes glibc's mmap threshold: by default a freed big block raises it (up to 32
    /// MiB), after which big arrays come from the heap and fragment it; fixed, they are
    /// mapped and unmapped whole. And its trim threshold: at the default 128 KiB, a
    /// buffer of a few hundred KiB freed at the top of the heap gave its pages back and
    /// the next one faulted them in again (a streamed dump moved the heap's end twice a
    /// chunk); memory is returned by `tick` instead, when the table shrank.
    public static func configureAllocator() {
        _ = mallopt(M_MMAP_THRESHOLD, 256 << 10)
        _ = mallopt(M_TRIM_THRESHOLD, 16 << 20)
    }

    /// True when it trimmed the heap (pages given back inside it).
    public mutating func tick(now: UInt64, flows: Int) -> Bool {
        guard trimDue(now: now, flows: flows), mallinfo2().fordblks > Self.keptFreeBytes else { return false }
        _ = malloc_trim(0)
        return true
    }

    /// Whether this call is a look (a second after the last) that should trim, if more
    /// than `keptFreeBytes` of the heap is free: at a drop of `flowDrop` flows below the
    /// peak, and once more at the next look.
    mutating func trimDue(now: UInt64, flows: Int) -> Bool {
        peakFlows = max(peakFlows, flows)
        guard now &- lastLook >= 1_000_000_000 else { return false }
        lastLook = now
        if flows + Self.flowDrop < peakFlows {
            trimsLeft = 2
            peakFlows = flows
        }
        guard trimsLeft > 0 else { return false }
        trimsLeft -= 1
        return true
    }
}
