import Testing
@testable import ControlProtocol

/// dump-flows type=, as OVS 3.1's populate_dump_types and flow_passes_type_filter.
@Suite struct FlowDumpTypesTests {
    // (offloaded, dp layer) of esw's flow states, as dump-flows -m shows them.
    let fullyOffloaded = FlowDumpTypes.attributes(offloadState: 1), partial = FlowDumpTypes.attributes(offloadState: 4),
        pending = FlowDumpTypes.attributes(offloadState: 2), software = FlowDumpTypes.attributes(offloadState: 0)

    func selected(_ list: String) throws -> [Bool] {
        let t = try FlowDumpTypes(parsing: list)
        return [fullyOffloaded, partial, pending, software].map { t.passes(offloaded: $0.0, dpLayer: $0.1) }
    }

    /// Only a rule in hardware is dp:esw: pending and failed flows run in software.
    @Test func onlyARuleInHardwareIsDPESW() {
        #expect(FlowDumpTypes.attributes(offloadState: 1) == (true, "esw"))
        #expect(FlowDumpTypes.attributes(offloadState: 4) == (true, "ovs"))
        for state: UInt8 in [0, 2, 3] { #expect(FlowDumpTypes.attributes(offloadState: state) == (false, "ovs")) }
    }

    @Test func aPartialFlowIsOffloadedNeverNonOffloaded() throws {
        #expect(try selected("non-offloaded") == [false, false, true, true])
        #expect(try selected("partially-offloaded") == [false, true, false, false])
        #expect(try selected("offloaded") == [true, false, false, false])
    }

    @Test func ovsTcAndDpdkSelectByDatapathLayer() throws {
        #expect(try selected("ovs") == [false, true, true, true], "a pending flow runs in software")
        #expect(try selected("tc") == [false, false, false, false])
        #expect(try selected("dpdk") == [false, false, false, false])
    }

    @Test func commaListsAreUnions() throws {
        #expect(try selected("offloaded,partially-offloaded") == [true, true, false, false])
        #expect(try selected("tc,all") == [true, true, true, true])
        #expect(try selected("") == [false, false, false, false])
    }

    @Test func anUnknownTypeIsRefusedWithOVSText() {
        #expect(throws: FlowDumpTypes.UnknownType.self) { try FlowDumpTypes(parsing: "offloaded,hw") }
        #expect(FlowDumpTypes.UnknownType(word: "hw").description == "Failed to parse type (hw)")
    }

    /// populate_dump_types: one trailing comma ends the list; any other empty word is a
    /// type it cannot parse.
    @Test func anEmptyWordIsRefusedExceptATrailingComma() throws {
        #expect(try selected("offloaded,") == [true, false, false, false])
        for list in [",offloaded", "offloaded,,ovs", ","] {
            #expect(throws: FlowDumpTypes.UnknownType.self) { try FlowDumpTypes(parsing: list) }
        }
    }
}
