@testable import NetLinux
import Testing

/// When the daemon's timer trims the heap: the schedule alone (`trimDue`), looks a second
/// apart as the timer makes them, the flow counts as a table would have them.
@Suite struct MemoryReturnTests {
    static let second: UInt64 = 1_000_000_000

    /// Feeds one count a look, a second apart, and says at which looks a trim was due.
    static func dueLooks(_ counts: [Int]) -> [Int] {
        var m = MemoryReturn()
        var due: [Int] = []
        for (i, n) in counts.enumerated() where m.trimDue(now: UInt64(i + 1) * second, flows: n) { due.append(i) }
        return due
    }

    @Test func aDropTrimsAtOnceAndOnceMoreASecondLater() {
        #expect(Self.dueLooks([200_000, 200_000, 0, 0, 0, 0]) == [2, 3])
    }

    /// A table emptied a few thousand flows a second (aging, small batches of deletes)
    /// gives its memory back too: the peak is kept until a drop is seen.
    @Test func aGradualShrinkTrimsOnceItAddsUpToADrop() {
        let counts = stride(from: 40_000, through: 0, by: -4_000).map { $0 }   // 4k fewer a second
        // 40k at look 0; 28k (12k below the peak) at look 3, and again at 4; from 28k the
        // next drop past 10k is 16k at look 6, then 4k at look 9.
        #expect(Self.dueLooks(counts) == [3, 4, 6, 7, 9, 10])
    }

    @Test func churnAndGrowthNeverTrim() {
        #expect(Self.dueLooks([0, 50_000, 100_000, 95_000, 100_000, 91_000, 150_000]) == [])
    }

    @Test func callsBetweenLooksOnlyRaiseThePeak() {
        var m = MemoryReturn()
        // The control loop calls far more often than once a second: a peak seen between
        // looks counts, and no call inside the second is a look.
        let due = [(Self.second, 1_000), (Self.second + 1_000, 60_000), (Self.second + 2_000, 0),
                   (2 * Self.second + 2_000, 0)].map { m.trimDue(now: $0.0, flows: $0.1) }
        #expect(due == [false, false, false, true])
    }
}
