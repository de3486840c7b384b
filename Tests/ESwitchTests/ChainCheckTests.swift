import ESwitch
import Packet
import Testing

/// What the ct/recirc passes cannot do (`HardwareTables.checkChain`): the driver knows
/// whether a rule recirculates from its actions' facts, found once per action list.
struct ChainCheckTests {
    /// A rule from the uplink matching a tunnel (its id and outer destination).
    static func tunnelSpec(dst: UInt32, actions: [HardwareAction]) -> HardwareRuleSpec {
        var s = DriverTests.spec(inPort: .uplink, dst: dst, actions: actions)
        s.key[.tunnelID] = 42
        s.mask[.tunnelID] = FlowField.tunnelID.valueMask
        s.key[.tunnelIPv4Dst] = 0xC612_0001
        s.mask[.tunnelIPv4Dst] = FlowField.tunnelIPv4Dst.valueMask
        return s
    }

    @Test func aTunnelFrameIsNotRecirculatedWhateverListPassedBefore() throws {
        let (sw, dp) = try DriverTests.device()
        // A plain list passes first: what is known of it must not carry to the next list.
        _ = try sw.addRule(Self.tunnelSpec(dst: 0xC613_0002, actions: [.forward(.vf(0))])).get()
        for actions: [HardwareAction] in [[.recirculate(7)], [.conntrack(zone: 1, nat: false), .recirculate(7)]] {
            #expect(sw.addRule(Self.tunnelSpec(dst: 0xC613_0003, actions: actions)).failure
                    == .unsupportedAction("ct or recirc of a tunnel frame"))
        }
        #expect(dp.rules.count == 1)
        // The same actions without a tunnel match go in; then the plain list again.
        _ = try sw.addRule(DriverTests.spec(inPort: .vf(0), dst: 0xC613_0004, actions: [.recirculate(7)])).get()
        _ = try sw.addRule(Self.tunnelSpec(dst: 0xC613_0005, actions: [.forward(.vf(0))])).get()
        #expect(dp.rules.count == 3)
    }
}
