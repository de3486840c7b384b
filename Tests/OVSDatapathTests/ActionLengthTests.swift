import ESwitch
import ODP
@testable import OVSDatapath
import Packet
import Testing

/// The datapath's limit on the length of an action list (the kernel's).
struct ActionLengthTests {
    typealias P = OffloadPathTests

    /// `count` outputs to port 2: 8 bytes each.
    static func outputs(_ count: Int) throws -> [UInt8] {
        try ODPText.parseActions(Array(repeating: "2", count: count).joined(separator: ","))
    }

    static func match(_ key: String) throws -> FlowMatch {
        let k = try ODPText.parseKey(key)
        guard case .success(let m) = FlowMatch.fromAttributes(key: k.key, mask: k.mask, vlanLimit: ODPConstants.datapathVLANLimit) else {
            throw ODPError(position: nil, "bad key")
        }
        return m
    }

    /// The kernel's MAX_ACTIONS_BUFSIZE: 32 KiB of actions, then EMSGSIZE.
    @Test func actionsBeyond32KiBAreRefusedWithEMSGSIZE() throws {
        let (d, _, _) = try P.datapath()
        let atLimit = try Self.outputs(4096)
        #expect(atLimit.count == 32768)
        _ = try d.putFlow(match: try Self.match("in_port(1),eth(),eth_type(0x0800),ipv4(dst=198.19.0.1,frag=no)"),
                          ufid: nil, actions: atLimit)
        let over = try Self.outputs(4097)
        let second = try Self.match("in_port(1),eth(),eth_type(0x0800),ipv4(dst=198.19.0.2,frag=no)")
        do {
            _ = try d.putFlow(match: second, ufid: nil, actions: over)
            Issue.record("32776 bytes of actions accepted")
        } catch {
            #expect(error.errno == 90)
            #expect(error.message == "the actions are too long: 32776 bytes, at most 32768")
        }
        #expect(d.allFlows.count == 1)
    }

    @Test func anExecuteWithActionsBeyond32KiBIsRefusedToo() throws {
        let (d, _, _) = try P.datapath()
        let frame = [UInt8](repeating: 0xff, count: 12) + [0x08, 0x06] + [UInt8](repeating: 0, count: 28)
        let over = try Self.outputs(4097)
        do {
            try d.execute(packet: frame, key: FlowKey(), actions: over)
            Issue.record("executed 32776 bytes of actions")
        } catch {
            #expect(error.errno == 90, "\(error)")
        }
    }
}
