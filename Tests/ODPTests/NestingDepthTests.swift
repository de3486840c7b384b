import Testing
@testable import ODP

/// Nested action lists are bounded where the kernel bounds them
/// (OVS_COPY_ACTIONS_MAX_DEPTH = 16): 12,000 nested clone() in one message used to
/// overflow eswd's stack in the decoder.
@Suite struct NestingDepthTests {
    /// `output(1)` wrapped in `levels` nested actions made by `wrap`.
    static func nested(_ levels: Int, _ wrap: ([UInt8]) -> [UInt8]) -> [UInt8] {
        var bytes = nla(ActionAttr.output, le32(1))
        for _ in 0..<levels { bytes = wrap(bytes) }
        return bytes
    }
    static func clone(_ inner: [UInt8]) -> [UInt8] { nla(ActionAttr.clone, inner) }
    static func sample(_ inner: [UInt8]) -> [UInt8] {
        nla(ActionAttr.sample, nla(SampleAttr.probability, le32(UInt32.max)) + nla(SampleAttr.actions, inner))
    }
    static func checkPktLen(_ inner: [UInt8]) -> [UInt8] {
        nla(ActionAttr.checkPktLen, nla(CheckPktLenAttr.pktLen, [100, 0])
            + nla(CheckPktLenAttr.actionsIfGreater, inner) + nla(CheckPktLenAttr.actionsIfLessEqual, []))
    }

    @Test(arguments: [0, 1, 2])
    func sixteenLevelsDecodeSeventeenAreRefused(kind: Int) throws {
        let wrap = [Self.clone, Self.sample, Self.checkPktLen][kind]
        #expect(try ODPAction.decode(Self.nested(ODPAction.maxNestingDepth, wrap)).count == 1)
        let error = #expect(throws: ODPError.self) { try ODPAction.decode(Self.nested(ODPAction.maxNestingDepth + 1, wrap)) }
        #expect(error?.message == "actions nested more than 16 deep")
    }

    @Test func twelveThousandClonesAreRefusedNotACrash() {
        // 48 kB: fits one attribute (lengths are 16-bit), as in the reported message.
        let bytes = Self.nested(12_000, Self.clone)
        #expect(bytes.count < 65_536)
        #expect(throws: ODPError.self) { try ODPAction.decode(bytes) }
        #expect(ActionFormatter().format(bytes).contains("<actions nested too deeply>"))
    }

    @Test func keysNestedThousandsDeepAreNotACrash() {
        // encap() inside encap() 5,000 times (as deep as 16-bit lengths allow): the
        // decoder takes at most two VLAN tags (iteratively); the formatter stops at
        // KeyParser.maxNesting.
        var bytes = nla(KeyAttr.ethertype, be16(0x0800))
        for _ in 0..<5_000 { bytes = nla(KeyAttr.vlan, be16(0x1064)) + nla(KeyAttr.encap, bytes) }
        bytes = nla(KeyAttr.inPort, le32(1)) + nla(KeyAttr.ethernet, [UInt8](repeating: 0, count: 12))
            + nla(KeyAttr.ethertype, be16(0x8100)) + bytes
        #expect(bytes.count < 65_536)
        if case .success = KeyDecoder(vlanLimit: 2).decodeKey(bytes) { Issue.record("a 5,000-tag key decoded") }
        #expect(KeyFormatter().format(key: bytes, mask: nil).contains("<nested too deeply>"))
    }
}
