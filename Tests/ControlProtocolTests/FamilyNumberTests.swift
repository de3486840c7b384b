import Netlink
import Testing
@testable import ControlProtocol

/// The OVS families speak openvswitch.h's numbers (docs/ARCHITECTURE.md §5): a client
/// written against the header (a script, pyroute2) must find its attributes where it
/// looks for them.
@Suite struct FamilyNumberTests {
    @Test func flowAttributesAreOpenvswitchH() {
        // enum ovs_flow_attr: UNSPEC, KEY, ACTIONS, STATS, TCP_FLAGS, USED, CLEAR, MASK,
        // PROBE, UFID, UFID_FLAGS, PAD.
        #expect(FlowAttr.key == 1)
        #expect(FlowAttr.actions == 2)
        #expect(FlowAttr.stats == 3)
        #expect(FlowAttr.tcpFlags == 4)
        #expect(FlowAttr.used == 5)
        #expect(FlowAttr.clear == 6)
        #expect(FlowAttr.mask == 7)
        #expect(FlowAttr.probe == 8)
        #expect(FlowAttr.ufid == 9)
        #expect(FlowAttr.ufidFlags == 10)
    }

    @Test func aReplysUfidIsReadFromAttributeNine() {
        var w = AttributeWriter()
        w.put(9, (0..<16).map { UInt8($0 + 1) })
        let m = GenericMessage(family: Family.flow, command: FlowCmd.new, flags: 0, sequence: 0, attributes: w.bytes)
        #expect(FlowInfo(m).ufid == 0x0102_0304_0506_0708_090a_0b0c_0d0e_0f10)
    }
}
