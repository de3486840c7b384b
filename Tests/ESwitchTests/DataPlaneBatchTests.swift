import ESwitch
import Packet
import Testing

/// The DataPlane protocol's default batch writes (one call per rule), as the in-memory
/// data plane uses them: in order, stopping at the first refusal.
struct DataPlaneBatchTests {
    static func rule(_ i: Int, counter: UInt32? = nil) -> DataPlaneRule {
        var k = FlowKey(), m = FlowKey()
        m[.inPort] = FlowField.inPort.valueMask
        m[.ipv4Src] = 0xffff_ffff
        k[.inPort] = 1
        k[.ipv4Src] = UInt64(0xC612_0000 + i)
        return DataPlaneRule(table: .masked, key: k, mask: m, actions: [.drop], counter: counter ?? UInt32(i))
    }

    @Test func aBatchInstallsInOrderAndStopsAtTheFirstRefusal() {
        let dp = InMemoryDataPlane()
        let r = dp.program(batch: (0..<5).map { Self.rule($0) })
        #expect(r.installed == 5)
        #expect(r.error == nil)
        #expect(dp.rules.count == 5)
        dp.failNextWrites = 1
        let r2 = dp.program(batch: (5..<8).map { Self.rule($0) })
        #expect(r2.installed == 0)
        #expect(r2.error != nil)
        #expect(dp.rules.count == 5)
        let d = dp.remove(batch: [Self.rule(1), Self.rule(3), Self.rule(42)])
        #expect(d.removed == 3)
        #expect(d.error == nil)
        #expect(dp.rules.map(\.counter).sorted() == [0, 2, 4])
    }
}
