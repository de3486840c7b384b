import ODP
@testable import OVSDatapath
import Testing

/// Which flow a put changes when its ufid and its key disagree, as the kernel's
/// ovs_flow_cmd_new and ovs_flow_cmd_set decide it: the ufid names the flow; a SET
/// changes that flow, a NEW with another key is refused; actions never reach a flow
/// whose own key they do not suit.
struct PutLookupTests {
    static let arp = "in_port(1),eth(),eth_type(0x0806),arp(sip=198.18.0.1)"
    static let ipv4 = "in_port(1),eth(),eth_type(0x0800),ipv4(src=198.18.0.2,frag=no)"
    static let other = "in_port(1),eth(),eth_type(0x0800),ipv4(src=198.18.0.3,frag=no)"
    static let arpUFID: UInt128 = 0xA
    static let ipv4UFID: UInt128 = 0xB

    static func match(_ text: String) throws -> FlowMatch {
        let k = try ODPText.parseKey(text)
        guard case .success(let m) = FlowMatch.fromAttributes(key: k.key, mask: k.mask, vlanLimit: ODPConstants.datapathVLANLimit) else {
            throw ODPError(position: nil, "bad key")
        }
        return m
    }

    /// A datapath with an ARP flow and an IPv4 flow, both output to port 2.
    static func twoFlows() throws -> Datapath {
        let (d, _, _) = try OffloadPathTests.datapath()
        try d.putFlow(match: match(arp), ufid: arpUFID, actions: ODPText.parseActions("2"))
        try d.putFlow(match: match(ipv4), ufid: ipv4UFID, actions: ODPText.parseActions("2"))
        return d
    }

    static func actions(_ d: Datapath, _ ufid: UInt128) -> String {
        d.flow(ufid: ufid).map { ActionFormatter().format($0.actionBytes) } ?? "gone"
    }

    static let set = Datapath.PutOptions(create: false, modify: true)
    static let newMayModify = Datapath.PutOptions(create: true, modify: true)

    @Test func aSetChangesTheFlowItsUFIDNamesNotTheOneItsKeyNames() throws {
        let d = try Self.twoFlows()
        let changed = try d.putFlow(match: Self.match(Self.ipv4), ufid: Self.arpUFID, actions: ODPText.parseActions("1"),
                                    options: Self.set)
        #expect(changed.ufid == Self.arpUFID)
        #expect(changed.match == (try Self.match(Self.arp)), "the flow keeps its own key")
        #expect(Self.actions(d, Self.arpUFID) == "1")
        #expect(Self.actions(d, Self.ipv4UFID) == "2")
    }

    @Test func actionsThatDoNotSuitTheFlowsOwnKeyAreRefusedAndChangeNothing() throws {
        let d = try Self.twoFlows()
        let before = d.flow(ufid: Self.arpUFID)
        let offload = before?.offload
        // Valid for the IPv4 key sent with it, not for the ARP flow the ufid names.
        #expect(throws: DatapathError.self) {
            try d.putFlow(match: Self.match(Self.ipv4), ufid: Self.arpUFID,
                          actions: ODPText.parseActions("set(ipv4(src=198.18.0.9,ttl=9)),2"), options: Self.set)
        }
        #expect(d.flow(ufid: Self.arpUFID) === before)
        #expect(Self.actions(d, Self.arpUFID) == "2")
        #expect(d.flow(ufid: Self.arpUFID)?.offload == offload)
    }

    @Test func aNewWhoseUFIDNamesAFlowWithAnotherKeyIsRefused() throws {
        let d = try Self.twoFlows()
        let (m, a) = (try Self.match(Self.other), try ODPText.parseActions("1"))
        do throws(DatapathError) {
            try d.putFlow(match: m, ufid: Self.arpUFID, actions: a, options: Self.newMayModify)
            Issue.record("a NEW with the ufid of a flow with another key was accepted")
        } catch {
            #expect(error.errno == 2)
        }
        #expect(d.flowCount == 2)
        #expect(Self.actions(d, Self.arpUFID) == "2")
        #expect(d.flow(match: try Self.match(Self.other)) == nil)
    }

    @Test func aSetWithAnUnknownUFIDIsRefusedEvenIfItsKeyNamesAFlow() throws {
        let d = try Self.twoFlows()
        let (m, a) = (try Self.match(Self.ipv4), try ODPText.parseActions("1"))
        do throws(DatapathError) {
            try d.putFlow(match: m, ufid: 0xC, actions: a, options: Self.set)
            Issue.record("a SET with an unknown ufid changed a flow")
        } catch {
            #expect(error.errno == 2)
        }
        #expect(Self.actions(d, Self.ipv4UFID) == "2")
    }

    @Test func aPutWhoseUFIDAndKeyAgreeStillModifies() throws {
        let d = try Self.twoFlows()
        try d.putFlow(match: Self.match(Self.ipv4), ufid: Self.ipv4UFID, actions: ODPText.parseActions("1"), options: Self.set)
        try d.putFlow(match: Self.match(Self.arp), ufid: Self.arpUFID, actions: ODPText.parseActions("1"),
                      options: Self.newMayModify)
        // A NEW with a new ufid and a known key changes the flow of that key (the kernel's
        // key look-up after the ufid's), which keeps its own ufid.
        try d.putFlow(match: Self.match(Self.ipv4), ufid: 0xD, actions: ODPText.parseActions("drop"), options: Self.newMayModify)
        #expect(Self.actions(d, Self.arpUFID) == "1")
        #expect(Self.actions(d, Self.ipv4UFID) == "drop")
        #expect(d.flow(ufid: 0xD) == nil)
        #expect(d.flowCount == 2)
    }
}
