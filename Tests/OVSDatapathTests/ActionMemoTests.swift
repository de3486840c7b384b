import ODP
@testable import OVSDatapath
import Packet
import Testing

/// `changeFlow` reuses the last flow's decoded and compiled actions when their bytes
/// and the match fields compiling reads are the same (ActionCompiler.Memo).
struct ActionMemoTests {
    typealias P = OffloadPathTests
    typealias L = ActionLengthTests

    @Test func theSameActionsAreSharedByTheNextFlow() throws {
        let (d, _, _) = try P.datapath()
        let a = try P.put(d, "in_port(1),eth(),eth_type(0x0800),ipv4(dst=198.19.0.1,frag=no)", "set(ipv4(ttl=9)),2")
        let b = try P.put(d, "in_port(1),eth(),eth_type(0x0800),ipv4(dst=198.19.0.2,frag=no)", "set(ipv4(ttl=9)),2")
        #expect(a.actionBytes == b.actionBytes)
        #expect(a.actionBytes.withUnsafeBufferPointer { $0.baseAddress } == b.actionBytes.withUnsafeBufferPointer { $0.baseAddress },
                "one buffer for both")
        #expect(b.compiled.count == 2)
    }

    /// The same bytes for a flow whose match the actions do not fit: compiled again, and
    /// refused, not taken from the memo.
    @Test func theSameBytesForAnotherKindOfMatchAreCompiledAgain() throws {
        let (d, _, _) = try P.datapath()
        _ = try P.put(d, "in_port(1),eth(),eth_type(0x0800),ipv4(dst=198.19.0.1,frag=no)", "set(ipv4(ttl=9)),2")
        let v6 = try L.match("in_port(1),eth(),eth_type(0x86dd),ipv6(dst=2001:db8::1,frag=no)")
        let actions = try ODPText.parseActions("set(ipv4(ttl=9)),2")
        do throws(DatapathError) {
            _ = try d.putFlow(match: v6, ufid: nil, actions: actions)
            Issue.record("set(ipv4) accepted on an IPv6 flow")
        } catch {
            #expect(error.message.contains("eth_type(0x0800)"), "\(error.message)")
        }
        #expect(d.allFlows.count == 1)
    }
}
