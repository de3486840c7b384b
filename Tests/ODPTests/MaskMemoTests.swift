import Packet
import Testing
@testable import ODP

/// MaskMemo reuses the last decoded mask when the mask bytes are the same and the key
/// agrees outside its Ethernet and IP addresses. That is right only if decoding a mask
/// (and narrowing it to the relevant fields) never reads an address of the key: checked
/// over the whole OVS corpus, with every address of each key changed.
struct MaskMemoTests {
    static let decoder = KeyDecoder(vlanLimit: ODPConstants.datapathVLANLimit)

    /// Every corpus key that decodes, as attributes.
    static var cases: [(key: [UInt8], mask: [UInt8])] {
        OVSCorpus.keys.compactMap { c in
            guard let k = try? ODPText.parseKey(c.input) else { return nil }
            return (k.key, k.mask)
        }
    }

    struct Outcome: Equatable {
        let mask: FlowKey?
        let error: String?
    }

    /// The mask decoded for `key` (already decoded) from `mask`'s bytes, or its error.
    static func mask(_ mask: [UInt8], for key: FlowKey) -> Outcome {
        var m = FlowMatch(key: key, mask: FlowKey())
        let e = withUnsafeMutablePointer(to: &m) { decoder.decodeMask(mask[...], into: $0) }
        return e.map { Outcome(mask: nil, error: $0.message) } ?? Outcome(mask: m.mask, error: nil)
    }

    @Test func decodingAMaskNeverReadsAnAddressOfTheKey() throws {
        var checked = 0
        for (i, c) in Self.cases.enumerated() {
            guard case .success(let key) = Self.decoder.decodeKey(c.key[...]) else { continue }
            var other = key
            other[.ethSrc] = 0x0a0b_0c0d_0e0f ^ UInt64(i)
            other[.ethDst] = 0x1112_1314_1516
            other[.ipv4Src] = 0xc612_0001 &+ UInt64(i)
            other[.ipv4Dst] = 0xc613_0002
            other[WideField.ipv6Src] = 0x2001_0db8_0000_0000_0000_0000_0000_0001 &+ UInt128(i)
            other[WideField.ipv6Dst] = 0x2001_0db8_0000_0000_0000_0000_0000_0002
            #expect(Self.mask(c.mask, for: key) == Self.mask(c.mask, for: other), "corpus key \(i)")
            // And the memo sees the two keys as agreeing.
            let memo = MaskMemo()
            memo.key = key
            #expect(memo.agrees(with: other), "corpus key \(i)")
            checked += 1
        }
        #expect(checked > 40)
    }

    /// Through the memo, in corpus order and in every pair of corpus keys: what a
    /// fresh decode gives, errors included.
    @Test func theMemoAnswersAsAFreshDecode() throws {
        let cases = Self.cases
        let memo = MaskMemo()
        func check(_ c: (key: [UInt8], mask: [UInt8])) {
            var fresh = FlowMatch(key: FlowKey(), mask: FlowKey())
            var memoized = FlowMatch(key: FlowKey(), mask: FlowKey())
            let e1 = Self.decoder.decodeMatch(key: c.key[...], mask: c.mask[...], into: &fresh)
            let e2 = Self.decoder.decodeMatch(key: c.key[...], mask: c.mask[...], into: &memoized, memo: memo)
            #expect(e1?.message == e2?.message)
            if e1 == nil { #expect(fresh == memoized) }
        }
        for a in cases {
            for b in cases {
                check(a)
                check(b)
            }
        }
    }

    /// Every corpus mask over every corpus key, through one memo per mask (so that it
    /// answers across different keys): what a fresh decode gives, errors included.
    @Test func everyMaskOverEveryKeyThroughTheMemo() {
        let cases = Self.cases
        for mask in cases.map(\.mask) {
            let memo = MaskMemo()
            for k in cases + cases.reversed() {
                var fresh = FlowMatch(key: FlowKey(), mask: FlowKey()), viaMemo = fresh
                let e1 = Self.decoder.decodeMatch(key: k.key[...], mask: mask[...], into: &fresh)
                let e2 = Self.decoder.decodeMatch(key: k.key[...], mask: mask[...], into: &viaMemo, memo: memo)
                #expect(e1?.message == e2?.message)
                if e1 == nil { #expect(fresh == viaMemo) }
            }
        }
    }

    /// The memo compares every bit but the addresses: the fields that share their words
    /// (VLAN TCI with eth_src, EtherType with eth_dst) are compared.
    @Test func comparedBitsAreAllButTheAddresses() {
        let c = MaskMemo.comparedBits
        #expect(c[.vlanTCI] == 0xffff && c[.ethType] == 0xffff && c[.ipProto] == 0xff)
        #expect(c[.ethSrc] == 0 && c[.ethDst] == 0 && c[.ipv4Src] == 0 && c[.ipv4Dst] == 0)
        #expect(c[WideField.ipv6Src] == 0 && c[WideField.ipv6Dst] == 0)
        let cleared = (0..<FlowKey.wordCount).reduce(0) { $0 + (~c.words[$1]).nonzeroBitCount }
        #expect(cleared == 48 + 48 + 32 + 32 + 128 + 128)
    }

    /// ARP's protocol addresses live in the IPv4 address bits: two ARP keys that differ
    /// only there share a mask, and one with another opcode (in ip_proto's bits) does not.
    @Test func arpKeysShareAMaskOnlyWithTheSameOpcode() throws {
        let memo = MaskMemo()
        let first = try ODPText.parseKey("in_port(1),eth(),eth_type(0x0806),arp(sip=198.18.0.1/255.255.255.0,op=1)")
        var m = FlowMatch(key: FlowKey(), mask: FlowKey())
        #expect(Self.decoder.decodeMatch(key: first.key[...], mask: first.mask[...], into: &m, memo: memo) == nil)
        for text in ["in_port(1),eth(),eth_type(0x0806),arp(sip=0.0.0.0/255.255.255.0,op=1)",
                     "in_port(1),eth(),eth_type(0x0806),arp(sip=198.18.0.9/255.255.255.0,op=2)"] {
            let k = try ODPText.parseKey(text)
            #expect(k.mask == first.mask, "the same mask bytes")
            var fresh = FlowMatch(key: FlowKey(), mask: FlowKey()), viaMemo = fresh
            let e1 = Self.decoder.decodeMatch(key: k.key[...], mask: k.mask[...], into: &fresh)
            let e2 = Self.decoder.decodeMatch(key: k.key[...], mask: k.mask[...], into: &viaMemo, memo: memo)
            #expect(e1 == nil && e2 == nil && fresh == viaMemo, "\(text)")
        }
        let sameOp = try ODPText.parseKey("in_port(1),eth(),eth_type(0x0806),arp(sip=0.0.0.0/255.255.255.0,op=1)")
        var k1 = FlowMatch(key: FlowKey(), mask: FlowKey())
        _ = Self.decoder.decodeMatch(key: first.key[...], mask: first.mask[...], into: &k1)
        var k2 = k1
        _ = Self.decoder.decodeMatch(key: sameOp.key[...], mask: sameOp.mask[...], into: &k2)
        memo.key = k1.key
        #expect(memo.agrees(with: k2.key), "ARP addresses are not compared")
        let otherOp = try ODPText.parseKey("in_port(1),eth(),eth_type(0x0806),arp(sip=198.18.0.1/255.255.255.0,op=2)")
        var k3 = k1
        _ = Self.decoder.decodeMatch(key: otherOp.key[...], mask: otherOp.mask[...], into: &k3)
        #expect(!memo.agrees(with: k3.key), "the opcode is")
    }

    /// Keys the corpus lacks: an original-direction tuple (the relevant-mask path that
    /// adds the tuple) and two VLAN tags (the inner TCI read through the encap): a mask
    /// decodes the same with every address changed.
    @Test func tupleAndQinQKeysDecodeTheSameMaskWithOtherAddresses() throws {
        let texts = [
            "ct_state(+trk),ct_tuple4(src=198.18.0.1,dst=198.18.0.2,proto=6,tp_src=1000,tp_dst=80),recirc_id(1),in_port(1),"
                + "eth(),eth_type(0x0800),ipv4(src=198.18.0.1,proto=6,frag=no),tcp(dst=80)",
            "in_port(1),eth(src=02:00:00:00:00:01),eth_type(0x88a8),vlan(vid=10),encap(eth_type(0x8100),vlan(vid=20),"
                + "encap(eth_type(0x0800),ipv4(src=198.18.0.1,frag=no)))",
        ]
        for text in texts {
            let k = try ODPText.parseKey(text)
            guard case .success(let key) = Self.decoder.decodeKey(k.key[...]) else {
                Issue.record("\(text) does not decode")
                continue
            }
            var other = key
            other[.ethSrc] = 0x0a0b_0c0d_0e0f
            other[.ipv4Src] = 0xc612_0063
            other[.ipv4Dst] = 0xc612_0064
            let a = Self.mask(k.mask, for: key), b = Self.mask(k.mask, for: other)
            #expect(a.error == nil, "\(text): \(a.error ?? "")")
            #expect(a == b, "\(text)")
        }
    }

    /// Same mask bytes, a key that differs where the mask's decoding looks (the IP
    /// protocol under an L4 mask): decoded again, not taken from the memo.
    @Test func aKeyThatDiffersWhereTheMaskLooksIsDecodedAgain() throws {
        let memo = MaskMemo()
        let tcp = try ODPText.parseKey("in_port(1),eth(),eth_type(0x0800),ipv4(src=198.18.0.1,proto=6,frag=no),tcp(dst=80)")
        var m = FlowMatch(key: FlowKey(), mask: FlowKey())
        #expect(Self.decoder.decodeMatch(key: tcp.key[...], mask: tcp.mask[...], into: &m, memo: memo) == nil)
        #expect(memo.valid)
        // The same mask bytes under a UDP key: the tcp attribute's mask does not fit a
        // UDP key, which only a real decode finds.
        let udp = try ODPText.parseKey("in_port(1),eth(),eth_type(0x0800),ipv4(src=198.18.0.2,proto=17,frag=no),udp(dst=80)")
        var fresh = FlowMatch(key: FlowKey(), mask: FlowKey()), memoized = fresh
        let e1 = Self.decoder.decodeMatch(key: udp.key[...], mask: tcp.mask[...], into: &fresh)
        let e2 = Self.decoder.decodeMatch(key: udp.key[...], mask: tcp.mask[...], into: &memoized, memo: memo)
        #expect(e1 != nil && e1?.message == e2?.message)
        #expect(!memo.valid, "a mask that did not decode is not kept")
        // A key that differs only in its address takes the memo's mask.
        let next = try ODPText.parseKey("in_port(1),eth(),eth_type(0x0800),ipv4(src=198.18.0.3,proto=6,frag=no),tcp(dst=80)")
        #expect(Self.decoder.decodeMatch(key: tcp.key[...], mask: tcp.mask[...], into: &m, memo: memo) == nil)
        var viaMemo = FlowMatch(key: FlowKey(), mask: FlowKey())
        #expect(Self.decoder.decodeMatch(key: next.key[...], mask: next.mask[...], into: &viaMemo, memo: memo) == nil)
        #expect(viaMemo.mask == m.mask && viaMemo.key[.ipv4Src] == 0xc612_0003)
    }
}
