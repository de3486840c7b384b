@testable import BPFDataPlane
import Classifier
import ESwitch
import Glibc
import Packet
import Testing

/// `prefetch`: a hint that loads a rule's slot and keeps its key's fingerprint for the
/// rule's write, which takes it only for that very key. Needs root.
@Suite(.enabled(if: getuid() == 0, "loading BPF programs needs root"))
struct PrefetchTests {
    typealias P = PipelineTests
    typealias B = BatchTests

    @Test func aPrefetchedRuleIsWrittenUnderItsOwnFingerprintAndAnotherOneIsNot() throws {
        let dp = try P.dataPlane()
        let rules = B.rules(3, actions: [.drop])
        // A mask not held yet: nothing to hash (the write takes the mask's id).
        dp.prefetch(key: rules[0].key, mask: rules[0].mask, table: .masked)
        #expect(dp.lastPrefetch == nil)
        try dp.program(rules[0])

        // The hint for rule 1, from its unmasked key as the datapath has it: the write's
        // own table key is the same, and so is the fingerprint it keeps.
        var unmasked = rules[1].key
        unmasked[.ipv4Src] = 0xC612_0009
        dp.prefetch(key: unmasked, mask: rules[1].mask, table: .masked)
        let hint = try #require(dp.lastPrefetch)
        try dp.program(rules[1])
        #expect(dp.lastPrefetch == nil, "taken by the write")
        #expect(dp.slots(1).find(hint.fingerprint) != nil)

        // A hint for rule 2, then a write of another rule: that rule gets its own fingerprint.
        dp.prefetch(key: rules[2].key, mask: rules[2].mask, table: .masked)
        let stale = try #require(dp.lastPrefetch)
        let other = B.rules(5, actions: [.drop])[4]
        try dp.program(other)
        #expect(dp.slots(1).find(stale.fingerprint) == nil, "rule 2 was never written")
        // (One mask for all: its id is the first word of any of their table keys.)
        let own = TableKey(maskID: UInt32(truncatingIfNeeded: stale.key.words[0]), key: other.key,
                           mask: MaskWords(other.mask)).fingerprint
        #expect(dp.slots(1).find(own) != nil)
        for (dst, verdict) in [(B.base + 1, P.shot), (B.base + 4, P.shot), (B.base + 2, P.redirect)] {
            #expect(try B.verdict(dp, dst: dst) == verdict)
        }
    }

    /// A write said to be of the prefetched rule (queued, as an add-flows writes) takes
    /// the prefetch's table key, fingerprint and mask id; when the prefetch made nothing
    /// (a new mask) or its mask went since, the write computes them itself.
    @Test func aWriteOfThePrefetchedRuleTakesWhatThePrefetchComputed() throws {
        let dp = try P.dataPlane()
        let rules = B.rules(4, actions: [.drop])
        dp.prefetch(key: rules[0].key, mask: rules[0].mask, table: .masked)
        #expect(dp.lastPrefetch == nil, "a new mask: nothing computed ahead")
        try dp.programQueued(rules[0], prefetched: true)

        let hint = try dp.programQueuedAfterItsPrefetch(rules[1])

        // The mask goes (its last rules are removed) after the prefetch: its id may be
        // another mask's by the write, which takes a mask id afresh.
        dp.prefetch(key: rules[2].key, mask: rules[2].mask, table: .masked)
        #expect(dp.lastPrefetch != nil)
        try dp.remove(rules[0])
        try dp.remove(rules[1])
        #expect(dp.lastPrefetch == nil, "forgotten with the mask")
        try dp.programQueued(rules[2], prefetched: true)
        for (dst, verdict) in [(B.base + 0, P.redirect), (B.base + 1, P.redirect), (B.base + 2, P.shot),
                               (B.base + 3, P.redirect)] {
            #expect(try B.verdict(dp, dst: dst) == verdict)
        }

        // A flush gives back every mask id: what a prefetch computed goes with them.
        dp.prefetch(key: rules[3].key, mask: rules[3].mask, table: .masked)
        #expect(dp.lastPrefetch != nil)
        try dp.removeAllRules()
        #expect(dp.lastPrefetch == nil, "forgotten with the flush")
        try dp.programQueued(rules[3], prefetched: true)
        #expect(try B.verdict(dp, dst: B.base + 3) == P.shot)
    }

    /// The driver's form of a rule (its classifier entry: `program(table:match:…)`),
    /// queued as an add-flows queues it, prefetched or not, takes the slot its full key
    /// and mask would, and the silicon then matches it.
    @Test func aRuleGivenAsItsEntryTakesTheSlotItsKeysWould() throws {
        let dp = try P.dataPlane()
        let rules = B.rules(3, actions: [.drop])
        try dp.programQueued(rules[0], prefetched: false)
        let hint = try dp.programQueuedAfterItsPrefetch(rules[1])
        let maskID = UInt32(truncatingIfNeeded: hint.key.words[0])
        for r in rules.prefix(2) {
            let own = TableKey(maskID: maskID, key: r.key, mask: MaskWords(r.mask)).fingerprint
            #expect(dp.slots(1).find(own) != nil)
        }
        for (dst, verdict) in [(B.base + 0, P.shot), (B.base + 1, P.shot), (B.base + 2, P.redirect)] {
            #expect(try B.verdict(dp, dst: dst) == verdict)
        }
    }
}

extension BPFDataPlane {
    /// `r` as the driver hands a rule over (its classifier entry), queued as an
    /// add-flows queues it.
    func programQueued(_ r: DataPlaneRule, prefetched: Bool) throws {
        let mask = FlowMask(r.mask)
        let entry = ClassifierEntry(key: r.key, mask: mask, hash: mask.hash(r.key))
        try coalescingWrites {
            try program(table: r.table, match: entry, actions: r.actions, counter: r.counter, prefetched: prefetched)
        }
    }

    /// `r` (a masked-table rule whose mask is held) prefetched, then queued as the
    /// prefetched rule: what the prefetch computed, checked taken by the write and kept
    /// as the slot's fingerprint.
    func programQueuedAfterItsPrefetch(_ r: DataPlaneRule) throws -> (key: TableKey, fingerprint: Fingerprint) {
        prefetch(key: r.key, mask: r.mask, table: .masked)
        let hint = try #require(lastPrefetch)
        try programQueued(r, prefetched: true)
        #expect(lastPrefetch == nil, "taken by the write")
        #expect(slots(1).find(hint.fingerprint) != nil)
        return hint
    }

    /// What the last `prefetch` computed, together (nil: nothing).
    var lastPrefetch: (key: TableKey, fingerprint: Fingerprint)? {
        prefetchedTable == nil ? nil : (prefetchedKey, prefetchedFingerprint)
    }
}
