@testable import Classifier
import Packet
import Synchronization
import Testing

/// A big table maps its next size ahead of its growth and hands it to the populating
/// hook (the daemon's prefault thread), then grows into it: the entries stay found.
/// Serialized: `TableMemory.populate` is the process's.
@Suite(.serialized) struct TableMemoryTests {
    @Test func aGrowingSubtableMapsItsNextSizeAheadAndKeepsItsEntries() {
        let asked = Mutex<[Int]>([])
        TableMemory.populate = { _, n in asked.withLock { $0.append(n) } }
        defer { TableMemory.populate = nil }
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
        let sizes = asked.withLock { $0 }
        #expect(sizes.contains((1 << 19) * MemoryLayout<UInt>.stride), "asked: \(sizes)")
        for (i, e) in entries.enumerated() where i % 997 == 0 {
            var k = FlowKey()
            k[.ipv4Src] = UInt64(i)
            #expect(c.lookupExact(key: k, mask: m) === e)
        }
    }

    @Test func withoutAHookNothingIsMappedAhead() {
        TableMemory.populate = nil
        #expect(TableMemory.allocateAhead(UInt64.self, count: 1 << 20) == nil)
    }
}
