@testable import Classifier
import Packet
import Synchronization
import Testing

/// A big table maps its next size ahead of its growth and hands it to the touching hook
/// (the daemon's prefault thread), then grows into it, stopping the touching first.
/// Serialized: `TableMemory.touchAhead` is the process's.
@Suite(.serialized) struct TableMemoryTests {
    /// What the hook was asked: the ranges, and how many were stopped.
    final class Hook: Sendable {
        let asked = Mutex<[(start: UInt, bytes: Int)]>([])
        let stopped = Mutex<Int>(0)

        func install() {
            TableMemory.touchAhead = { [self] p, n in
                asked.withLock { $0.append((UInt(bitPattern: p), n)) }
                return { [self] in stopped.withLock { $0 += 1 } }
            }
        }
    }

    @Test func aheadStorageIsTakenAtItsSizeAndDroppedOtherwise() {
        let hook = Hook()
        hook.install()
        defer { TableMemory.touchAhead = nil }
        let next = 1 << 20  // 8 MiB of UInt64
        var ahead = AheadStorage<UInt64>()
        ahead.prepare(entries: 5, capacity: 8, next: next)
        #expect(hook.asked.withLock { $0.count } == 0, "not before 5/8 of the slots")
        ahead.prepare(entries: 6, capacity: 8, next: next)
        ahead.prepare(entries: 6, capacity: 8, next: next)
        let asked = hook.asked.withLock { $0 }
        #expect(asked.count == 1, "once a size")
        #expect(asked.first?.bytes == next * 8)
        let p = ahead.take(count: next)
        #expect(UInt(bitPattern: p) == asked.first?.start, "the growth takes the storage mapped ahead")
        #expect(hook.stopped.withLock { $0 } == 1, "the touching stops before the table writes it")
        #expect(p[next - 1] == 0 && p[0] == 0)
        TableMemory.deallocate(p, count: next)

        ahead.prepare(entries: 6, capacity: 8, next: next)
        let q = ahead.take(count: next * 2)
        #expect(UInt(bitPattern: q) != hook.asked.withLock { $0.last?.start }, "another size is mapped anew")
        #expect(hook.stopped.withLock { $0 } == 2, "and the one mapped ahead stopped and dropped")
        TableMemory.deallocate(q, count: next * 2)
    }

    @Test func aGrowingSubtableMapsItsNextSizeAheadAndKeepsItsEntries() {
        let hook = Hook()
        hook.install()
        defer { TableMemory.touchAhead = nil }
        let c = Classifier(rcu: QuiescentState())
        var m = FlowKey()
        m[.ipv4Src] = 0xffff_ffff
        let mask = FlowMask(m)
        var entries: [ClassifierEntry] = []
        // 2^18 slots hold 196,608 entries before the growth to 2^19 (4 MiB of slots):
        // past 5/8 of them (163,840) the next size is mapped ahead.
        for i in 0..<200_000 {
            var k = FlowKey()
            k[.ipv4Src] = UInt64(i)
            let e = ClassifierEntry(key: k, mask: mask, hash: mask.hash(k))
            #expect(c.insert(e))
            entries.append(e)
        }
        let sizes = hook.asked.withLock { $0.map(\.bytes) }
        #expect(sizes.contains((1 << 19) * MemoryLayout<UInt>.stride), "asked: \(sizes)")
        #expect(hook.stopped.withLock { $0 } >= 1, "the growth stopped the touching of what it took")
        for (i, e) in entries.enumerated() where i % 997 == 0 {
            var k = FlowKey()
            k[.ipv4Src] = UInt64(i)
            #expect(c.lookupExact(key: k, mask: m) === e)
        }
    }

    @Test func withoutAHookNothingIsMappedAhead() {
        TableMemory.touchAhead = nil
        #expect(TableMemory.allocateAhead(UInt64.self, count: 1 << 20) == nil)
    }
}
