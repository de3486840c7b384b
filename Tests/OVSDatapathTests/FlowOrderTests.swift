import ESwitch
import ODP
@testable import OVSDatapath
import Testing

/// The order a dump walks (`flowsInEntryOrder`): oldest first, a modified flow in its
/// place, holes closed without reordering, a snapshot unchanged by later changes.
struct FlowOrderTests {
    static func key(_ i: Int) -> String { "in_port(1),eth(),eth_type(0x0800),ipv4(dst=198.19.\(i / 256).\(i % 256),frag=no)" }

    static func live(_ d: Datapath) -> [UInt128] { d.flowsInEntryOrder.compactMap { $0?.ufid } }

    @Test func flowsComeOldestFirstThroughDeletesModificationsAndCompaction() throws {
        let (d, _, _) = try OffloadPathTests.datapath()
        var expected: [UInt128] = []
        for i in 0..<3000 { expected.append(try OffloadPathTests.put(d, Self.key(i), "2").ufid) }
        #expect(Self.live(d) == expected)
        let snapshot = d.flowsInEntryOrder

        // Modify flow 10: a new object in the old one's place.
        let k = try ODPText.parseKey(Self.key(10))
        guard case .success(let m) = FlowMatch.fromAttributes(key: k.key, mask: k.mask, vlanLimit: ODPConstants.datapathVLANLimit) else {
            Issue.record("bad key"); return
        }
        let old = d.flow(ufid: expected[10])
        let fresh = try d.putFlow(match: m, ufid: nil, actions: try ODPText.parseActions("1"), options: Datapath.PutOptions(modify: true))
        #expect(fresh !== old && fresh.ufid == expected[10])
        #expect(Self.live(d) == expected)
        #expect(d.flowsInEntryOrder[10] === fresh)

        // Delete every flow but each third: past 1024 holes and half the array, the
        // holes close; the order stays.
        for (i, u) in expected.enumerated() where i % 3 != 0 { d.deleteFlow(d.flow(ufid: u)!) }
        expected = expected.enumerated().filter { $0.offset % 3 == 0 }.map(\.element)
        #expect(Self.live(d) == expected)
        #expect(d.flowsInEntryOrder.count < 3000, "compacted")
        #expect(d.flowsInEntryOrder.count - expected.count <= 1024)

        // New flows go last, and the table's own positions stay right (deleting through
        // them after the compaction).
        let late = try OffloadPathTests.put(d, Self.key(5000), "2").ufid
        d.deleteFlow(d.flow(ufid: expected[1])!)
        expected.remove(at: 1)
        #expect(Self.live(d) == expected + [late])

        // The snapshot taken first still holds the 3000 as they were.
        #expect(snapshot.count == 3000 && snapshot.allSatisfy { $0 != nil })
        #expect(snapshot[10] === old)

        d.flushFlows()
        #expect(d.flowsInEntryOrder.isEmpty)
    }

    static func match(_ i: Int) throws -> FlowMatch {
        let k = try ODPText.parseKey(key(i))
        guard case .success(let m) = FlowMatch.fromAttributes(key: k.key, mask: k.mask, vlanLimit: ODPConstants.datapathVLANLimit) else {
            throw ODPError(position: nil, "bad key")
        }
        return m
    }

    /// Every live flow sits where its tablePosition says, and nothing else is live.
    static func consistent(_ d: Datapath) -> Bool {
        let order = d.flowsInEntryOrder
        let live = order.compactMap { $0 }
        guard live.count == d.flowCount else { return false }
        for f in live where !(order[f.tablePosition] === f && d.flow(ufid: f.ufid) === f) { return false }
        return true
    }

    /// (From a review.) A batch of modifications and deletions rolled back across a
    /// compaction: positions and the learned count stay right, and so through deletes.
    @Test func aRollbackAcrossACompactionKeepsPositionsAndTheLearnedCount() throws {
        let (d, _, _) = try OffloadPathTests.datapath()
        for i in 0..<3000 {
            _ = try d.changeFlow(match: Self.match(i), ufid: nil, actions: ODPText.parseActions("2"),
                                 options: .init(origin: i % 2 == 0 ? .normal : .user))
        }
        #expect(d.table.learnedCount == 1500)
        var batch: [FlowChange] = []
        for i in stride(from: 0, to: 3000, by: 7) {
            batch.append(try d.changeFlow(match: Self.match(i), ufid: nil, actions: ODPText.parseActions("1"), options: .init(modify: true)))
        }
        for i in 0..<3000 where i % 3 != 0 { batch.append(d.deleteFlowReportingChange(d.flow(match: try Self.match(i))!)) }
        #expect(d.flowsInEntryOrder.count < 3000, "compacted")
        for i in stride(from: 0, to: 3000, by: 9) {
            batch.append(try d.changeFlow(match: Self.match(i), ufid: nil, actions: ODPText.parseActions("2"), options: .init(modify: true)))
        }
        #expect(Self.consistent(d))
        d.undo(batch)
        #expect(d.flowCount == 3000)
        #expect(Self.consistent(d))
        #expect(d.table.learnedCount == 1500)
        for f in Array(d.allFlows.reversed()) {
            d.deleteFlow(f)
            if d.flowCount % 500 == 0 { #expect(Self.consistent(d)) }
        }
        #expect(d.flowsInEntryOrder.isEmpty && d.table.learnedCount == 0)
    }

    /// A rollback leaves what another client did meanwhile: a flow the batch modified and
    /// another client then deleted (a flush) stays deleted; one the batch added and another
    /// client then modified keeps that client's actions. (The rollback used to restore
    /// the first and delete the second.)
    @Test func aRollbackLeavesFlowsAnotherClientChangedSince() throws {
        let (d, _, _) = try OffloadPathTests.datapath()
        _ = try d.changeFlow(match: Self.match(1), ufid: nil, actions: ODPText.parseActions("2"), options: .init())
        var batch: [FlowChange] = []
        batch.append(try d.changeFlow(match: Self.match(1), ufid: nil, actions: ODPText.parseActions("1"), options: .init(modify: true)))
        batch.append(try d.changeFlow(match: Self.match(2), ufid: nil, actions: ODPText.parseActions("1"), options: .init()))
        batch.append(try d.changeFlow(match: Self.match(3), ufid: nil, actions: ODPText.parseActions("1"), options: .init()))
        // Another client: deletes the first, modifies the second.
        d.deleteFlow(d.flow(match: try Self.match(1))!)
        _ = try d.changeFlow(match: Self.match(2), ufid: nil, actions: ODPText.parseActions("2"), options: .init(modify: true))
        d.undo(batch)
        #expect(d.flow(match: try Self.match(1)) == nil, "the flush stands")
        #expect(d.flow(match: try Self.match(2))?.actionBytes == (try ODPText.parseActions("2")), "the other client's actions stand")
        #expect(d.flow(match: try Self.match(3)) == nil, "what only the batch did is undone")
        #expect(d.flowCount == 1)
        #expect(Self.consistent(d))
    }

    /// A batch deleted a flow and added its match again; another client flushed it. The
    /// undo must not bring the deleted flow back: the skipped newer change marks the flow
    /// (by ufid and by match) for every older change of it.
    @Test func aRollbackDoesNotBringBackAFlowItReAddedAndAnotherClientFlushed() throws {
        let (d, _, _) = try OffloadPathTests.datapath()
        _ = try d.changeFlow(match: Self.match(1), ufid: nil, actions: ODPText.parseActions("2"), options: .init())
        var batch: [FlowChange] = []
        batch.append(d.deleteFlowReportingChange(d.flow(match: try Self.match(1))!))
        batch.append(try d.changeFlow(match: Self.match(1), ufid: nil, actions: ODPText.parseActions("1"), options: .init()))
        d.deleteFlow(d.flow(match: try Self.match(1))!)   // another client's flush
        d.undo(batch)
        #expect(d.flow(match: try Self.match(1)) == nil, "the flush stands")
        #expect(d.flowCount == 0)
        #expect(Self.consistent(d))
    }

    /// (From a probe of `del-flows FILE` with a bad last line.) A batch that deletes flows
    /// and is undone leaves the table as it found it: every flow back in its place in the
    /// order (past the compaction threshold and an empty table, while the batch holds the
    /// places), and in hardware exactly the flows that were there. Restored newest first
    /// and tried in hardware again, the flows that had been left to software took the room
    /// of the offloaded ones restored after them.
    @Test func anUndoneBatchOfDeletesRestoresTheOrderAndWhichFlowsAreInHardware() throws {
        var profile = HardwareProfile()
        profile.maskedEntries = 1024
        let (d, _, _) = try OffloadPathTests.datapath(profile: profile)
        for i in 0..<1500 { _ = try d.changeFlow(match: Self.match(i), ufid: nil, actions: ODPText.parseActions("2"), options: .init()) }
        func inHardware() -> Set<UInt128> { Set(d.allFlows.filter { $0.offload.isOffloaded }.map(\.ufid)) }
        let order = Self.live(d), hardware = inHardware()
        #expect(hardware.count > 0 && hardware.count < 1500, "some flows are left to software")
        let reasons = Dictionary(uniqueKeysWithValues: d.allFlows.map { ($0.ufid, $0.offload) })

        d.keepsFlowPlaces = true
        var batch: [FlowChange] = []
        for i in 0..<1500 { batch.append(d.deleteFlowReportingChange(d.flow(match: try Self.match(i))!)) }
        #expect(d.flowCount == 0)
        d.undo(batch)
        d.keepsFlowPlaces = false

        #expect(Self.live(d) == order, "the order")
        #expect(inHardware() == hardware, "\(inHardware().count) in hardware, \(hardware.count) before")
        #expect(d.allFlows.allSatisfy { f in f.offload.isOffloaded || reasons[f.ufid] == f.offload }, "the same reasons")
        #expect(Self.consistent(d))
        // The places are given up once no batch holds them: deletes compact the order again.
        for f in Array(d.allFlows) where f.ufid.hashValue % 4 != 0 { d.deleteFlow(f) }
        #expect(d.flowsInEntryOrder.count < 1500, "compacted")
        #expect(Self.consistent(d))
    }
}
