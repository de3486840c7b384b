@testable import BPFDataPlane
import CLibBPF
import ESwitch
import Glibc
import NetLinux
import Packet
import Testing

/// removeAllRules (a datapath flush): every rule table empty at once, checked in the
/// kernel's maps and with BPF_PROG_TEST_RUN, and the tables usable again. Needs root.
@Suite(.enabled(if: getuid() == 0, "loading BPF programs needs root"))
struct FlushTests {
    typealias P = PipelineTests

    /// Entries in a hash map, counted with the kernel's own iteration.
    static func entries(_ fd: Int32) -> Int {
        var n = 0
        var key = [UInt8](repeating: 0, count: 512), next = key
        while (n == 0 ? bpf_map_get_next_key(fd, nil, &next) : bpf_map_get_next_key(fd, key, &next)) == 0 {
            n += 1
            key = next
        }
        return n
    }

    @Test func aFlushEmptiesEveryRuleTableAtOnceAndTheyFillAgain() throws {
        // Masked pre-ct rules and chain post-ct rules, then masked and exact-match ones.
        let dp = try ConntrackPipelineTests.dataPlane(withConnection: false)
        let n = 3000
        let masked = BatchTests.rules(n, actions: [.drop])
        #expect(dp.program(batch: masked).installed == n)
        let exactDst: UInt32 = 0xC613_7000
        var exact = P.rule(P.udpFrame(dst: exactDst), inPort: .vf(0), actions: [.drop], counter: 50)
        exact.table = .exact
        try dp.program(exact)
        #expect(try BatchTests.verdict(dp, dst: BatchTests.base) == P.shot)
        #expect(try BatchTests.verdict(dp, dst: exactDst) == P.shot)
        #expect(Self.entries(dp.mapFD(.masked)) == n + 2)
        #expect(Self.entries(dp.mapFD(.exact)) == 1)
        #expect(Self.entries(dp.maps.chain) == 2)

        try dp.removeAllRules()
        #expect(Self.entries(dp.mapFD(.masked)) == 0)
        #expect(Self.entries(dp.mapFD(.exact)) == 0)
        #expect(Self.entries(dp.maps.chain) == 0)
        for dst in [BatchTests.base, BatchTests.base + UInt32(n - 1), exactDst] {
            #expect(try BatchTests.verdict(dp, dst: dst) == P.redirect, "a miss goes up the representor")
        }
        #expect(dp.masksByWords.isEmpty && dp.actionSets.isEmpty && dp.chainMasks.isEmpty && dp.chainList.isEmpty)

        // The shadow forgot them too: the same rules go in again, and hit.
        #expect(dp.program(batch: masked).installed == n)
        try dp.program(exact)
        #expect(try BatchTests.verdict(dp, dst: BatchTests.base + 7) == P.shot)
        #expect(try BatchTests.verdict(dp, dst: exactDst) == P.shot)
        #expect(Self.entries(dp.mapFD(.masked)) == n)
    }

    /// Once the empty tables are in, the flush has happened, whatever fails after: here
    /// the mask lists cannot be rewritten. Nothing may stay counted (a mask still counted
    /// would keep a later rule on it out of the lists: reported installed, never matched).
    @Test func aFlushWhoseListsCannotBeWrittenStillEmptiesAndGivesEverythingBack() throws {
        let dp = try PipelineTests.dataPlane()
        let rules = BatchTests.rules(10, actions: [.drop])
        #expect(dp.program(batch: rules).installed == 10)
        #expect(try BatchTests.verdict(dp, dst: BatchTests.base + 3) == P.shot)
        // The mask lists' fd stands for /dev/null during the flush: its writes fail.
        let fd = dp.maps.maskLists
        let saved = dup(fd)
        let null = open("/dev/null", O_RDONLY)
        _ = dup2(null, fd)
        close(null)
        var threw = false
        do { try dp.removeAllRules() } catch { threw = true }
        _ = dup2(saved, fd)
        close(saved)
        #expect(!threw, "the tables were swapped: the flush happened")
        #expect(try BatchTests.verdict(dp, dst: BatchTests.base + 3) == P.redirect, "gone from the silicon")
        #expect(dp.masksByWords.isEmpty && dp.actionSets.isEmpty)
        #expect(dp.listsUnpublished)
        dp.maintain(now: Sys.monotonicNanoseconds())
        #expect(!dp.listsUnpublished, "maintain writes the lists")
        // The same rules go in again and match.
        #expect(dp.program(batch: rules).installed == 10)
        #expect(try BatchTests.verdict(dp, dst: BatchTests.base + 3) == P.shot)
    }

    /// A replacement written beside a rule on a new mask, whose mask lists then cannot be
    /// published: both are taken back, and the replaced rule runs its old actions again.
    /// Their action set must still be held (it was released before the publish: freed,
    /// its id could go to another set the old rule would then run).
    @Test func aReplacementTakenBackKeepsItsOldActionSet() throws {
        let dp = try PipelineTests.dataPlane()
        let old = P.rule(P.udpFrame(dst: BatchTests.base), inPort: .vf(0), actions: [.forward(.vf(1))], counter: 100)
        try dp.program(old)
        let set = try #require(dp.actionSets.values.first)
        var onNewMask = P.rule(P.udpFrame(dst: BatchTests.base + 1), inPort: .vf(0), actions: [.drop], counter: 101)
        onNewMask.mask[.ipProto] = FlowField.ipProto.valueMask
        onNewMask.key[.ipProto] = 17
        var replacement = old
        replacement.actions = [.drop]
        let fd = dp.maps.maskLists
        let saved = dup(fd)
        let null = open("/dev/null", O_RDONLY)
        _ = dup2(null, fd)
        close(null)
        let r = dp.program(batch: [onNewMask, replacement])
        _ = dup2(saved, fd)
        close(saved)
        #expect(r.installed == 0 && r.error != nil, "the lists could not be published: both taken back")
        #expect(dp.actionSetsByID[set] != nil && dp.actionSetUsers[Int(set)] == 1, "the old rule still holds its set")
        #expect(try BatchTests.verdict(dp, dst: BatchTests.base) == P.redirect)
        #expect(dp.ruleCounters(100).packets == 1, "the old rule forwards")
        #expect(dp.remove(batch: [old]).removed == 1)
        #expect(dp.actionSets.isEmpty)
    }
}
