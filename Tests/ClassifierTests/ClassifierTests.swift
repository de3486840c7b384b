import Testing
import Foundation
@testable import Classifier
import Packet

final class TestEntry: ClassifierEntry, @unchecked Sendable {
    let id: Int
    init(key: FlowKey, mask: FlowMask, id: Int) {
        self.id = id
        super.init(key: key, mask: mask, hash: mask.hash(key))
    }
}

func key(port: UInt64, dst: UInt64 = 0, tp: UInt64 = 0) -> FlowKey {
    var k = FlowKey()
    k[.inPort] = port
    k[.ethDst] = dst
    k[.ethType] = 0x0800
    k[.tpDst] = tp
    return k
}

func maskBits(_ fields: [FlowField]) -> FlowKey {
    var m = FlowKey()
    for f in fields { m[f] = f.valueMask }
    return m
}

@Suite struct ClassifierTests {
    @Test func tupleSpaceLookup() {
        let rcu = QuiescentState()
        let c = Classifier(rcu: rcu)
        let reader = rcu.registerReader()
        let m1 = c.mask(for: maskBits([.inPort, .ethDst]))
        let m2 = c.mask(for: maskBits([.inPort, .tpDst]))
        #expect(c.insert(TestEntry(key: key(port: 1, dst: 0xaa), mask: m1, id: 1)))
        #expect(c.insert(TestEntry(key: key(port: 2, tp: 80), mask: m2, id: 2)))
        #expect(!c.insert(TestEntry(key: key(port: 1, dst: 0xaa, tp: 9), mask: m1, id: 3)))  // same masked key
        #expect(c.count == 2)
        #expect(c.maskCount == 2)

        var probed: UInt64 = 0
        let hit1 = c.lookup(key(port: 1, dst: 0xaa, tp: 1234), reader: reader, probed: &probed)
        #expect((hit1?.takeUnretainedValue() as? TestEntry)?.id == 1)
        let hit2 = c.lookup(key(port: 2, dst: 0xbb, tp: 80), reader: reader, probed: &probed)
        #expect((hit2?.takeUnretainedValue() as? TestEntry)?.id == 2)
        #expect(c.lookup(key(port: 3), reader: reader, probed: &probed) == nil)
        #expect(probed >= 4)
        #expect(c.lookupExact(key: key(port: 1, dst: 0xaa, tp: 5), mask: maskBits([.inPort, .ethDst])) != nil)
    }

    /// An entry keeps only the words its mask touches, the first 8 inline and the rest
    /// out of line: a wide mask (IPv6 addresses, tunnel fields: 14 words) matches on every
    /// word, a narrow one on its few, and both give their masked key back whole.
    @Test func compactKeysNarrowAndWide() {
        let rcu = QuiescentState()
        let c = Classifier(rcu: rcu)
        let reader = rcu.registerReader()
        var wideBits = maskBits([.inPort, .ethSrc, .ethDst, .ipProto, .tpSrc, .tpDst, .tunnelID, .tunnelIPv4Src, .recircID, .ctState])
        wideBits[.ipv6Src] = ~0
        wideBits[.ipv6Dst] = ~0
        wideBits[.tunnelIPv6Src] = ~0
        let wide = c.mask(for: wideBits)
        #expect(wide.significantWords > ClassifierEntry.inlineWords)
        let narrow = c.mask(for: maskBits([.inPort, .tpDst]))
        #expect(narrow.significantWords < ClassifierEntry.inlineWords)

        func wideKey(_ n: UInt64) -> FlowKey {
            var k = key(port: 1, dst: 0xaa, tp: 80)
            k[.ipv6Src] = 0x2001_0db8 << 96 | UInt128(n)
            k[.ipv6Dst] = 0x2001_0db8 << 96 | 0xffff
            k[.tunnelIPv6Src] = UInt128(n) << 64 | 7
            k[.tunnelID] = 42
            k[.ipTTL] = 64  // outside the mask
            return k
        }
        var entries: [TestEntry] = []
        for n in 0..<50 as Range<UInt64> {
            let e = TestEntry(key: wideKey(n), mask: wide, id: Int(n))
            #expect(e.key == wideKey(n).masked(by: wideBits))
            #expect(c.insert(e))
            entries.append(e)
        }
        #expect(!c.insert(TestEntry(key: wideKey(7), mask: wide, id: 99)))
        let n1 = TestEntry(key: key(port: 3, tp: 22), mask: narrow, id: 100)
        #expect(n1.key == key(port: 3, tp: 22).masked(by: narrow.bits))
        #expect(c.insert(n1))

        var probed: UInt64 = 0
        for n in 0..<50 as Range<UInt64> {
            var k = wideKey(n)
            k[.ipTTL] = 1
            let hit = c.lookup(k, reader: reader, probed: &probed)
            #expect((hit?.takeUnretainedValue() as? TestEntry)?.id == Int(n))
        }
        // A difference in the last (out-of-line) word alone is a miss.
        var miss = wideKey(3)
        miss[.tunnelIPv6Src] = UInt128(3) << 64 | 8
        #expect(c.lookup(miss, reader: reader, probed: &probed) == nil)
        #expect((c.lookup(key(port: 3, dst: 1, tp: 22), reader: reader, probed: &probed)?.takeUnretainedValue() as? TestEntry)?.id == 100)

        // Replace needs the same masked key (compared word by word, inline and out of line).
        let same = TestEntry(key: wideKey(5), mask: wide, id: 205)
        #expect(c.replace(entries[5], with: same))
        #expect(!c.replace(entries[6], with: TestEntry(key: wideKey(60), mask: wide, id: 206)))
        #expect((c.lookup(wideKey(5), reader: reader, probed: &probed)?.takeUnretainedValue() as? TestEntry)?.id == 205)
    }

    /// The in-place check the mark path uses agrees with the span-based one, on the
    /// words the mask examines and only those.
    @Test func inPlaceMatchAgreesWithMatch() {
        let m = FlowMask(maskBits([.inPort, .tpDst]))
        let e = TestEntry(key: key(port: 1, dst: 0xaa, tp: 80), mask: m, id: 1)
        for (port, dst, tp) in [(1, 0xaa, 80), (1, 0xbb, 80), (1, 0, 80), (2, 0xaa, 80), (1, 0xaa, 81), (0, 0, 0)] as [(UInt64, UInt64, UInt64)] {
            var k = key(port: port, dst: dst, tp: tp)
            let expected = port == 1 && tp == 80
            #expect(m.matches(k, e.key) == expected)
            #expect(m.matches(&k, entry: e) == expected)
        }
        let all = FlowMask(FlowKey())
        var k = key(port: 7)
        #expect(all.matches(&k, entry: TestEntry(key: FlowKey(), mask: all, id: 2)))
    }

    @Test func removeAndSubtableLifecycle() {
        let rcu = QuiescentState()
        let c = Classifier(rcu: rcu)
        let reader = rcu.registerReader()
        let m = c.mask(for: maskBits([.inPort]))
        var entries: [TestEntry] = []
        for i in 0..<1000 {
            let e = TestEntry(key: key(port: UInt64(i)), mask: m, id: i)
            entries.append(e)
            #expect(c.insert(e))
        }
        var probed: UInt64 = 0
        for i in stride(from: 0, to: 1000, by: 7) {
            #expect((c.lookup(key(port: UInt64(i)), reader: reader, probed: &probed)?.takeUnretainedValue() as? TestEntry)?.id == i)
        }
        for e in entries where e.id % 2 == 0 { #expect(c.remove(e)) }
        #expect(!c.remove(entries[0]))
        for i in 0..<1000 {
            let hit = c.lookup(key(port: UInt64(i)), reader: reader, probed: &probed)
            #expect((hit != nil) == (i % 2 == 1))
        }
        for e in entries where e.id % 2 == 1 { c.remove(e) }
        #expect(c.count == 0)
        #expect(c.maskCount == 0)
        rcu.synchronize()
        #expect(rcu.pending == 0)
    }

    @Test func entriesAreReleasedAfterGracePeriodOnly() {
        let rcu = QuiescentState()
        let c = Classifier(rcu: rcu)
        let reader = rcu.registerReader()
        weak var weakEntry: TestEntry?
        do {
            let e = TestEntry(key: key(port: 9), mask: c.mask(for: maskBits([.inPort])), id: 9)
            weakEntry = e
            c.insert(e)
        }
        #expect(weakEntry != nil)
        rcu.enter(reader)  // a reader is mid-batch
        c.remove(weakEntry!)
        rcu.reclaim()
        #expect(weakEntry != nil)  // still visible to the reader
        rcu.leave(reader)
        rcu.reclaim()
        #expect(weakEntry == nil)
    }

    @Test func rerankPutsBusiestMaskFirst() {
        let rcu = QuiescentState()
        let c = Classifier(rcu: rcu)
        let reader = rcu.registerReader()
        let masks = [maskBits([.inPort]), maskBits([.ethDst]), maskBits([.tpDst])]
        c.insert(TestEntry(key: key(port: 1), mask: c.mask(for: masks[0]), id: 0))
        c.insert(TestEntry(key: key(port: 0, dst: 5), mask: c.mask(for: masks[1]), id: 1))
        c.insert(TestEntry(key: key(port: 0, tp: 7), mask: c.mask(for: masks[2]), id: 2))
        var probed: UInt64 = 0
        for _ in 0..<100 { _ = c.lookup(key(port: 9, tp: 7), reader: reader, probed: &probed) }
        #expect(probed == 300)
        #expect(c.rerank())
        probed = 0
        _ = c.lookup(key(port: 9, tp: 7), reader: reader, probed: &probed)
        #expect(probed == 1)
    }

    @Test func concurrentReadersSeeStableEntriesWhileWriterChurns() async {
        let rcu = QuiescentState()
        let c = Classifier(rcu: rcu)
        let m = c.mask(for: maskBits([.inPort, .tpDst]))
        for i in 0..<64 { c.insert(TestEntry(key: key(port: 1, tp: UInt64(i)), mask: m, id: i)) }
        let stop = Flag()
        let failures = Counter()
        let readers = (0..<2).map { _ in
            Thread {
                let r = rcu.registerReader()
                var probed: UInt64 = 0
                while !stop.value {
                    rcu.enter(r)
                    for i in 0..<64 {
                        let hit = c.lookup(key(port: 1, tp: UInt64(i)), reader: r, probed: &probed)
                        if hit == nil { failures.add() }
                    }
                    rcu.leave(r)
                }
                rcu.unregister(r)
            }
        }
        for t in readers { t.start() }
        // Churn: insert and remove thousands of other entries, forcing rebuilds and new masks.
        for round in 0..<20 {
            var added: [TestEntry] = []
            let m2 = c.mask(for: maskBits(round % 2 == 0 ? [.inPort, .ethDst] : [.inPort, .tpDst]))
            for j in 0..<500 {
                let e = TestEntry(key: key(port: 2, dst: UInt64(j), tp: UInt64(j)), mask: round % 2 == 0 ? m2 : m, id: 1000 + j)
                if c.insert(e) { added.append(e) }
            }
            for e in added { c.remove(e) }
            rcu.reclaim()
        }
        stop.set()
        while readers.contains(where: { !$0.isFinished }) { usleep(1000) }
        rcu.synchronize()
        #expect(failures.value == 0)
        #expect(c.count == 64)
    }
}

final class Flag: @unchecked Sendable {
    private let lock = NSLock()
    private var v = false
    var value: Bool { lock.lock(); defer { lock.unlock() }; return v }
    func set() { lock.lock(); v = true; lock.unlock() }
}

final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var v = 0
    var value: Int { lock.lock(); defer { lock.unlock() }; return v }
    func add() { lock.lock(); v += 1; lock.unlock() }
}
