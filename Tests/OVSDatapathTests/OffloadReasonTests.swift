import ESwitch
import ODP
@testable import OVSDatapath
import Packet
import Testing

/// The reason the datapath gives for a flow that stays in software.
struct OffloadReasonTests {
    typealias P = OffloadPathTests
    static let arpMatch = "in_port(1),eth(),eth_type(0x0806),arp(sip=198.19.0.2)"

    /// The driver checks the match before the actions: when both are refused, the match
    /// is the reason, as it is with actions the hardware can do.
    @Test(arguments: [true, false])
    func aRefusedMatchIsTheReasonEvenWithSoftwareOnlyActions(partialOffload: Bool) throws {
        let (d, _, dp) = try P.datapath()
        d.setPartialOffload(partialOffload)
        for actions in ["userspace(pid=3),2", "2", "trunc(100),2", "check_pkt_len(size=100,gt(2),le(1))"] {
            let f = try P.put(d, Self.arpMatch, actions)
            guard case .software(let reason) = f.offload else { Issue.record("\(actions): offloaded"); continue }
            #expect(reason == "unsupported match arp", "\(actions): \(reason)")
            d.deleteFlow(f)
        }
        #expect(dp.rules.isEmpty)
    }

    @Test func skipSWNamesTheMatchToo() throws {
        let (d, _, _) = try P.datapath(policy: .skipSW)
        do {
            _ = try P.put(d, Self.arpMatch, "userspace(pid=3),2")
            Issue.record("installed under skip_sw")
        } catch let e as DatapathError {
            #expect(e.message.contains("unsupported match arp"), "\(e.message)")
        }
    }

    /// Which flows are offloaded does not change: a match the hardware takes still gets a
    /// partial rule for software-only actions, and an action refusal is still the reason
    /// when partial offload is off.
    @Test func anAcceptedMatchWithSoftwareOnlyActionsIsStillPartialOrRefusedForTheAction() throws {
        let (d, _, _) = try P.datapath()
        let f = try P.put(d, "in_port(1),eth(),eth_type(0x0806),arp()", "userspace(pid=3),2")
        #expect(d.offloadStatus(of: f) == .partial)
        d.setPartialOffload(false)
        #expect(d.offloadStatus(of: f) == .software(reason: "partial offload is off"))
        let g = try P.put(d, "in_port(2),eth(),eth_type(0x0806),arp()", "userspace(pid=3),1")
        guard case .software(let reason) = g.offload else { Issue.record("offloaded"); return }
        #expect(reason == "unsupported action userspace", "\(reason)")
    }
}
