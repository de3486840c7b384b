import NetLinux

/// Time as the emulated hardware sees it: when firmware work completes, and how a
/// caller waits for a hardware access. The daemon uses the system's monotonic clock;
/// unit tests use `ManualHardwareClock`, where waiting only advances time, so that the
/// offload models' timing is exact and the tests are fast.
public protocol HardwareClock: AnyObject {
    /// Nanoseconds on a monotonic scale.
    func now() -> UInt64
    /// Blocks the caller for `nanoseconds` (a hardware access on its path).
    func wait(nanoseconds: UInt64)
}

public final class SystemHardwareClock: HardwareClock {
    public init() {}
    public func now() -> UInt64 { Sys.monotonicNanoseconds() }
    public func wait(nanoseconds: UInt64) { spin(microseconds: Int(nanoseconds / 1000)) }
}

/// A clock that moves only when someone waits or a test advances it.
public final class ManualHardwareClock: HardwareClock, @unchecked Sendable {
    public private(set) var time: UInt64
    public init(start: UInt64 = 1_000_000_000) { time = start }
    public func now() -> UInt64 { time }
    public func wait(nanoseconds: UInt64) { time += nanoseconds }
    public func advance(nanoseconds: UInt64) { time += nanoseconds }
}

/// Waits `microseconds`: spins for short waits (sleep granularity is too coarse), sleeps for long ones.
func spin(microseconds: Int) {
    guard microseconds > 0 else { return }
    if microseconds >= 500 {
        usleep(UInt32(microseconds))
        return
    }
    let end = Sys.monotonicNanoseconds() + UInt64(microseconds) * 1000
    while Sys.monotonicNanoseconds() < end {}
}
