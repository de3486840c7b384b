import ODP
@testable import OVSDatapath
import Testing

/// The flow table's index by ufid (UFIDIndex) against a dictionary, through the
/// datapath's own puts, deletes and modifications: thousands of flows, so that the
/// index grows, passes deleted entries, rebuilds and shrinks.
struct UFIDIndexTests {
    static func match(_ i: Int) throws -> FlowMatch {
        let k = try ODPText.parseKey("in_port(1),eth(),eth_type(0x0800),ipv4(src=198.18.\(i / 256).\(i % 256),frag=no)")
        guard case .success(let m) = FlowMatch.fromAttributes(key: k.key, mask: k.mask, vlanLimit: ODPConstants.datapathVLANLimit) else {
            throw ODPError(position: nil, "bad key")
        }
        return m
    }

    @Test func agreesWithADictionaryThroughPutsDeletesAndModifications() throws {
        let (d, _, _) = try OffloadPathTests.datapath(policy: .skipHW)
        let actions = try ODPText.parseActions("2")
        var model: [UInt128: DatapathFlow] = [:]
        var rng = SystemRandomNumberGenerator()
        // Ufids that differ in one half only, and in the other only.
        func ufid(_ i: Int) -> UInt128 { i % 2 == 0 ? UInt128(i) : UInt128(i) << 64 }
        for round in 0..<3 {
            for i in 0..<6000 {
                let u = ufid(i)
                let taken = model[u] != nil
                let m = try Self.match(i)
                do throws(DatapathError) {
                    model[u] = try d.putFlow(match: m, ufid: u, actions: actions)
                    #expect(!taken, "a ufid in use is refused")
                } catch {
                    #expect(taken, "round \(round) flow \(i): \(error.message)")
                }
            }
            // The same match under another ufid is refused, and leaves no ufid behind.
            #expect(throws: DatapathError.self) { try d.putFlow(match: try Self.match(1), ufid: 999_999, actions: actions) }
            #expect(d.flow(ufid: 999_999) == nil)
            for (u, f) in model where Bool.random(using: &rng) {
                if Bool.random(using: &rng) {
                    d.deleteFlow(f)
                    model[u] = nil
                } else {
                    // A modification: a new flow object under the same ufid.
                    let fresh = try d.putFlow(match: f.match, ufid: u, actions: try ODPText.parseActions("1"),
                                              options: Datapath.PutOptions(modify: true))
                    #expect(fresh !== f)
                    model[u] = fresh
                }
            }
            #expect(d.flowCount == model.count)
            for i in 0..<6000 { #expect(d.flow(ufid: ufid(i)) === model[ufid(i)]) }
        }
        for f in model.values { d.deleteFlow(f) }
        #expect(d.flowCount == 0)
        for i in 0..<6000 { #expect(d.flow(ufid: ufid(i)) == nil) }
    }
}
