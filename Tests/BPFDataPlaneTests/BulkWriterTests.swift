@testable import BPFDataPlane
import Glibc
import Synchronization
import Testing

/// The writer thread alone: a write runs off the caller's thread, its outcome comes back
/// once, and stopping waits for a write in flight. No BPF needed.
struct BulkWriterTests {
    final class Flag: Sendable {
        let value = Atomic<Bool>(false)
        var isSet: Bool { value.load(ordering: .relaxed) }
        func set(_ v: Bool) { value.store(v, ordering: .relaxed) }
    }

    @Test func aWriteRunsOnTheThreadAndItsOutcomeIsCollectedOnce() throws {
        let writer = try BulkWriter()
        defer { writer.stop() }
        #expect(writer.collect() == nil, "nothing in flight")
        let caller = pthread_self()
        let ranElsewhere = Flag()
        writer.start {
            ranElsewhere.set(pthread_equal(pthread_self(), caller) == 0)
            return (written: 7, errno: EIO)
        }
        #expect(writer.busy)
        let outcome = try #require(writer.collect())
        #expect(outcome.written == 7 && outcome.errno == EIO)
        #expect(ranElsewhere.isSet)
        #expect(!writer.busy && writer.collect() == nil)
        // The thread takes the next write.
        writer.start { (written: 1, errno: 0) }
        #expect(writer.collect()?.written == 1)
    }

    @Test func aWriteStillRunningIsNotCollectedWithoutWaiting() throws {
        let writer = try BulkWriter()
        defer { writer.stop() }
        let release = Flag()
        writer.start {
            while !release.isSet { usleep(1000) }
            return (written: 3, errno: 0)
        }
        #expect(writer.collectIfDone() == nil && writer.busy, "still running")
        release.set(true)
        var outcome: BulkWriter.Outcome?
        for _ in 0..<1000 where outcome == nil {
            outcome = writer.collectIfDone()
            if outcome == nil { usleep(1000) }
        }
        #expect(outcome?.written == 3)
        #expect(!writer.busy && writer.collectIfDone() == nil)
    }

    @Test func stoppingWaitsForTheWriteInFlight() throws {
        let writer = try BulkWriter()
        let finished = Flag()
        writer.start {
            usleep(50_000)
            finished.set(true)
            return (written: 0, errno: 0)
        }
        writer.stop()
        #expect(finished.isSet)
        #expect(!writer.busy)
    }
}
