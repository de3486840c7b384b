import ESwitch
import ODP
@testable import OVSDatapath
import Packet
import Testing

/// The offload translator's memo (`Datapath.lastTranslation`): flows of one in_port with
/// the very same actions array take the last translation, and nothing else does.
struct TranslationMemoTests {
    typealias P = OffloadPathTests

    @Test func flowsWithTheSameActionsShareATranslationOfTheirOwnInPort() throws {
        let (d, _, dp) = try P.datapath()
        let a = try P.put(d, "in_port(1),eth(),eth_type(0x0800),ipv4(dst=198.19.0.1,frag=no)", "set(ipv4(ttl=9)),2")
        let memo = try #require(d.lastTranslation)
        #expect(memo.inPort == 1 && memo.eswitchPort == .vf(0))
        #expect(memo.hardware == dp.rules.first?.actions)
        let b = try P.put(d, "in_port(1),eth(),eth_type(0x0800),ipv4(dst=198.19.0.2,frag=no)", "set(ipv4(ttl=9)),2")
        // The same actions from the other representor: its own switch port, not the memo's.
        let c = try P.put(d, "in_port(2),eth(),eth_type(0x0800),ipv4(dst=198.19.0.3,frag=no)", "set(ipv4(ttl=9)),1")
        #expect(a.offload.isOffloaded && b.offload.isOffloaded && c.offload.isOffloaded)
        #expect(dp.rules.map { $0.key[.inPort] } == [UInt64(PortIndex.vf(0)), UInt64(PortIndex.vf(0)), UInt64(PortIndex.vf(1))])
        #expect(dp.rules[0].actions == dp.rules[1].actions)
        #expect(dp.rules[1].key[.ipv4Dst] == 0xC613_0002, "the flow's own match, not the memo's first")
        #expect(dp.rules[2].actions.last == .forward(.vf(0)))
    }

    /// The memo's key is the actions array itself (its storage), and the in_port.
    @Test func theMemoHoldsOnlyItsOwnArrayAndInPort() {
        let actions: [ODPAction] = [.output(2)]
        let memo = OffloadTranslator.Memo(inPort: 1, eswitchPort: .vf(0), actions: actions, hardware: [.forward(.vf(1))])
        let shared = actions
        #expect(memo.holds(inPort: 1, shared))
        #expect(!memo.holds(inPort: 2, shared))
        #expect(!memo.holds(inPort: 1, [.output(2)]), "equal actions in another array: not known to be the same")
        #expect(!memo.holds(inPort: 1, [.output(2), .output(3)]))
    }

    /// A port that goes takes the memo with it: the next flow with the same actions is
    /// translated again, and its output to the vanished port keeps it out of hardware.
    @Test func aPortChangeForgetsTheMemo() throws {
        let (d, _, dp) = try P.datapath()
        d.setPartialOffload(false)
        _ = try P.put(d, "in_port(1),eth(),eth_type(0x0800),ipv4(dst=198.19.0.1,frag=no)", "2")
        #expect(d.lastTranslation != nil)
        try d.deletePort(2)
        #expect(d.lastTranslation == nil)
        let f = try P.put(d, "in_port(1),eth(),eth_type(0x0800),ipv4(dst=198.19.0.2,frag=no)", "2")
        #expect(!f.offload.isOffloaded, "output to a port that does not exist")
        #expect(dp.rules.count == 0, "the first flow's rule went with its output port, and none came for the second")
    }

    /// Actions whose translation reads the key (ct) or the tunnel tracker are translated
    /// every time.
    @Test func conntrackActionsAreNotMemoized() throws {
        let (d, _, _) = try P.datapath()
        _ = try P.put(d, "in_port(1),eth(),eth_type(0x0800),ipv4(dst=198.19.0.1,frag=no)", "ct(zone=3),recirc(1)")
        #expect(d.lastTranslation == nil)
    }
}
