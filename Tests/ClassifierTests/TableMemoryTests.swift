@testable import Classifier
import Packet
import Synchronization
import Testing

/// A big table maps its next size ahead of its growth and hands it to the touching hook
/// (the daemon's prefault thread), then grows into it, stopping the touching first.
/// Serialized: `TableMemory.touchAhead` is the process's.
@Suite(.serialized) struct TableMemoryTests {
    /// What the hook was asked: the ranges, and how their touching was stopped (false: at
    /// once, true: waiting).
    final class Hook: Sendable {
        let asked = Mutex<[(start: UInt, bytes: Int)]>([])
        let stops = Mutex<[(start: UInt, wait: Bool)]>([])

        func install() {
            TableMemory.touchAhead = { [self] p, n in
                let start = UInt(bitPattern: p)
                asked.withLock { $0.append((start, n)) }
                return { [self] wait in stops.withLock { $0.append((start, wait)) } }
            }
        }

        func stopped(_ start: UInt?, waiting: Bool) -> Bool {
            stops.withLock { $0.contains { $0.start == start && $0.wait == waiting } }
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
        #expect(hook.stopped(asked.first?.start, waiting: false), "its touching stops, without waiting")
        #expect(!hook.stopped(asked.first?.start, waiting: true))
        #expect(p[next - 1] == 0 && p[0] == 0)
        TableMemory.deallocate(p, count: next)
        #expect(hook.stopped(asked.first?.start, waiting: true), "unmapping it waits for the touching")

        ahead.prepare(entries: 6, capacity: 8, next: next)
        let second = hook.asked.withLock { $0.last?.start }
        let q = ahead.take(count: next * 2)
        #expect(UInt(bitPattern: q) != second, "another size is mapped anew")
        #expect(hook.stopped(second, waiting: true), "and the one mapped ahead is dropped, its touching waited for")
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
        #expect(hook.stops.withLock { $0.contains { !$0.wait } }, "the growth stopped the touching of what it took")
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
