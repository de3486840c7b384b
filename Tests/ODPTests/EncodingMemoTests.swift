import Netlink
import Packet
import Testing
@testable import ODP

/// EncodingMemo hands a dump the last flow's key and mask attributes (addresses written
/// over) when the mask is the same and the key agrees outside its addresses. Right only
/// if the encoder reads no address: checked over the whole OVS corpus, each key also
/// with its addresses changed, one memo through all of them, against fresh encodings.
struct EncodingMemoTests {
    static let encoder = KeyEncoder(vlanLimit: ODPConstants.datapathVLANLimit)

    static var matches: [FlowMatch] {
        MaskMemoTests.cases.compactMap { c in
            var m = FlowMatch(key: FlowKey(), mask: FlowKey())
            return MaskMemoTests.decoder.decodeMatch(key: c.key[...], mask: c.mask[...], into: &m) == nil ? m : nil
        }
    }

    /// `m` with its Ethernet and IP addresses changed where the mask keeps them.
    static func withOtherAddresses(_ m: FlowMatch, _ salt: UInt64) -> FlowMatch {
        var k = m.key
        for f in [FlowField.ethSrc, .ethDst, .ipv4Src, .ipv4Dst] { k[f] ^= (salt &* 0x0101_0101_0101) & m.mask[f] }
        for f in [WideField.ipv6Src, .ipv6Dst] { k[f] ^= UInt128(salt &* 0x0101_0101_0101_0101) & m.mask[f] }
        return FlowMatch(key: k, mask: m.mask)
    }

    static func fresh(_ m: FlowMatch) -> [UInt8] {
        var w = AttributeWriter()
        w.nested(1) { encoder.encode(flow: m.key, mask: m.mask, exportMask: false, into: &$0) }
        w.nested(2) { encoder.encode(flow: m.key, mask: m.mask, exportMask: true, into: &$0) }
        return w.bytes
    }

    static func throughMemo(_ m: FlowMatch, _ memo: EncodingMemo) -> [UInt8] {
        var w = AttributeWriter()
        encoder.encode(flow: m.key, mask: m.mask, keyType: 1, maskType: 2, into: &w, memo: memo)
        return w.bytes
    }

    @Test func encodingsThroughTheMemoAreFreshEncodings() {
        let memo = EncodingMemo()
        let cases = Self.matches
        var served = 0, changed = 0
        for m in cases {
            for salt: UInt64 in [0, 0x5a, 0xc3] {
                let v = Self.withOtherAddresses(m, salt)
                if memo.serves(flow: v.key, mask: v.mask) { served += 1 }
                let expected = Self.fresh(v)
                if salt != 0 && expected != Self.fresh(m) { changed += 1 }
                #expect(Self.throughMemo(v, memo) == expected, "\(v)")
            }
        }
        #expect(cases.count > 50)
        // The memo was used, for keys whose address bytes really changed.
        #expect(served > cases.count)
        #expect(changed >= 10)
    }

    @Test func aKeyThatDiffersOutsideItsAddressesIsEncodedAfresh() throws {
        let memo = EncodingMemo()
        let a = try match("in_port(1),eth(),eth_type(0x0800),ipv4(src=198.18.0.1,proto=6,frag=no),tcp(dst=80)",
                          vlanLimit: ODPConstants.datapathVLANLimit)
        let b = try match("in_port(1),eth(),eth_type(0x0800),ipv4(src=198.18.0.2,proto=6,frag=no),tcp(dst=81)",
                          vlanLimit: ODPConstants.datapathVLANLimit)
        _ = Self.throughMemo(a, memo)
        #expect(!memo.serves(flow: b.key, mask: b.mask))
        #expect(Self.throughMemo(b, memo) == Self.fresh(b))
    }
}
