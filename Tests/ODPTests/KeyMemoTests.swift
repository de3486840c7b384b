import Packet
import Testing
@testable import ODP

/// KeyMemo takes the last decoded key when the key's bytes are the same but for the
/// addresses of its top-level Ethernet, IPv4 and IPv6 attributes. Right only if no
/// check of the decoder looks at those bytes: checked over the whole OVS corpus, each
/// key with its addresses changed, against fresh decodes.
struct KeyMemoTests {
    static let decoder = MaskMemoTests.decoder

    /// `key` with the address bytes of its top-level Ethernet, IPv4 and IPv6 attributes
    /// changed (a walk of its own, not the memo's).
    static func withOtherAddresses(_ key: [UInt8], _ salt: UInt8) -> [UInt8] {
        var k = key
        var i = 0
        while i + 4 <= k.count {
            let len = Int(k[i]) | Int(k[i + 1]) << 8
            let type = (UInt16(k[i + 2]) | UInt16(k[i + 3]) << 8) & 0x3fff
            guard len >= 4 else { break }
            let addresses = type == KeyAttr.ethernet ? 12 : type == KeyAttr.ipv4 ? 8 : type == KeyAttr.ipv6 ? 32 : 0
            for j in 0..<min(addresses, len - 4) { k[i + 4 + j] ^= salt &+ UInt8(j) }
            i += (len + 3) & ~3
        }
        return k
    }

    static func decode(_ key: [UInt8], _ mask: [UInt8], memo: MaskMemo?) -> (FlowMatch, String?) {
        var m = FlowMatch(key: FlowKey(), mask: FlowKey())
        let e = memo.map { decoder.decodeMatch(key: key[...], mask: mask[...], into: &m, memo: $0) }
            ?? decoder.decodeMatch(key: key[...], mask: mask[...], into: &m)
        return (m, e?.message)
    }

    @Test func aKeyWithOtherAddressesDecodesAsAFreshDecodeThroughTheMemo() {
        var reused = 0
        for (i, c) in MaskMemoTests.cases.enumerated() {
            let memo = MaskMemo()
            _ = Self.decode(c.key, c.mask, memo: memo)
            for salt: UInt8 in [1, 0x55, 0xfe] {
                let other = Self.withOtherAddresses(c.key, salt)
                let fresh = Self.decode(other, c.mask, memo: nil)
                var viaMemo = FlowKey()
                if memo.keys.reuse(other[...], vlanLimit: Self.decoder.vlanLimit, into: &viaMemo) {
                    reused += 1
                    #expect(fresh.1 == nil, "corpus key \(i): the memo answered a key that does not decode")
                    #expect(viaMemo == fresh.0.key, "corpus key \(i), salt \(salt)")
                }
                let memoized = Self.decode(other, c.mask, memo: memo)
                #expect(memoized.1 == fresh.1, "corpus key \(i)")
                if fresh.1 == nil { #expect(memoized.0 == fresh.0, "corpus key \(i), salt \(salt)") }
            }
        }
        #expect(reused > 100, "the memo answers for most of the corpus")
    }

    /// Keys the key memo gives (other addresses) under masks that change, each mask twice
    /// in a row: the mask memo's remembered agreement with the key memo's key (no
    /// comparison) answers as a fresh decode, whether the mask memo was refreshed by a
    /// key it gave or by one decoded anew.
    @Test func theMaskMemosKnownAgreementAnswersAsAFreshDecode() {
        let cases = MaskMemoTests.cases
        var agreedWithoutComparing = 0
        for (i, c) in cases.prefix(40).enumerated() {
            let memo = MaskMemo()
            var salt: UInt8 = 0
            for mask in cases.map(\.mask) + [c.mask] {
                for _ in 0..<2 {
                    salt &+= 7
                    let other = Self.withOtherAddresses(c.key, salt)
                    let known = memo.keysAgreeAt != nil && memo.keysAgreeAt == memo.keys.generation
                    let memoized = Self.decode(other, mask, memo: memo)
                    let fresh = Self.decode(other, mask, memo: nil)
                    #expect(memoized.1 == fresh.1, "corpus key \(i)")
                    if fresh.1 == nil { #expect(memoized.0 == fresh.0, "corpus key \(i), salt \(salt)") }
                    if known && memo.valid { agreedWithoutComparing += 1 }
                }
            }
        }
        #expect(agreedWithoutComparing > 1000)
    }

    /// The bytes are compared a word at a time, the last word overlapping the one before
    /// it, and byte by byte below a word: a changed byte anywhere outside the addresses
    /// is seen, whatever the key's length, and an address byte is not.
    @Test func everyByteOutsideTheAddressesIsCompared() {
        let memo = KeyMemo()
        var key = FlowKey()
        key[.inPort] = 3
        // The IPv4 EtherType, an IPv4 attribute (addresses at bytes 12..<20) and, after
        // it, 0 to 11 more bytes (from 4 on, an attribute of their own).
        for extra in 0..<12 {
            let etherType: [UInt8] = [6, 0, UInt8(KeyAttr.ethertype), 0, 0x08, 0x00, 0, 0]
            let ipv4: [UInt8] = [16, 0, UInt8(KeyAttr.ipv4), 0, 1, 2, 3, 4, 5, 6, 7, 8, 6, 0, 64, 0]
            let tail: [UInt8] = extra < 4 ? [UInt8](repeating: 0x5a, count: extra)
                : [UInt8(extra), 0, 99, 0] + [UInt8](repeating: 0x5a, count: extra - 4)
            let bytes = etherType + ipv4 + tail
            memo.remember(bytes[...], vlanLimit: 2, key: key)
            var out = FlowKey()
            for i in bytes.indices {
                var other = bytes
                other[i] ^= 0x80
                let isAddress = (12..<20).contains(i)
                #expect(memo.reuse(other[...], vlanLimit: 2, into: &out) == isAddress, "length \(bytes.count), byte \(i)")
            }
            #expect(memo.reuse(bytes[...], vlanLimit: 2, into: &out) && out[.inPort] == 3)
        }
        // Shorter than a word: no addresses, every byte compared.
        for length in 4..<8 {
            let bytes = [UInt8(length), 0, 99, 0] + [UInt8](repeating: 7, count: length - 4)
            memo.remember(bytes[...], vlanLimit: 2, key: key)
            var out = FlowKey()
            #expect(memo.reuse(bytes[...], vlanLimit: 2, into: &out))
            for i in bytes.indices {
                var other = bytes
                other[i] ^= 1
                #expect(!memo.reuse(other[...], vlanLimit: 2, into: &out), "length \(length), byte \(i)")
            }
        }
    }

    /// A key that differs anywhere but in those addresses (a port, the EtherType, a
    /// VLAN, nested tunnel addresses) is decoded again.
    @Test func aKeyThatDiffersElsewhereIsDecodedAgain() throws {
        let memo = MaskMemo()
        let base = "in_port(1),eth(src=00:00:00:00:00:01,dst=00:00:00:00:00:02),eth_type(0x0800),ipv4(src=198.18.0.1,dst=198.18.0.2,proto=6,frag=no),tcp(dst=80)"
        let first = try ODPText.parseKey(base)
        _ = Self.decode(first.key, first.mask, memo: memo)
        var out = FlowKey()
        let sameButAddresses = try ODPText.parseKey(base.replacing("198.18.0.1", with: "198.19.7.9"))
        #expect(memo.keys.reuse(sameButAddresses.key[...], vlanLimit: Self.decoder.vlanLimit, into: &out))
        #expect(out[.ipv4Src] == 0xc613_0709)
        for other in [base.replacing("dst=80", with: "dst=81"),
                      base.replacing("in_port(1)", with: "in_port(2)"),
                      base.replacing("proto=6", with: "proto=17").replacing("tcp(", with: "udp(")] {
            let k = try ODPText.parseKey(other)
            #expect(!memo.keys.reuse(k.key[...], vlanLimit: Self.decoder.vlanLimit, into: &out), "\(other)")
            #expect(!memo.keys.reuse(first.key[...], vlanLimit: Self.decoder.vlanLimit + 1, into: &out), "another VLAN limit")
        }
        // Tunnel addresses are nested attributes: compared, not substituted.
        let tunnel = "tunnel(tun_id=0x5,src=198.18.1.1,dst=198.18.1.2,ttl=64,flags(-df+csum+key)),in_port(3),eth(),eth_type(0x0800),ipv4(src=198.18.0.1,frag=no)"
        let t1 = try ODPText.parseKey(tunnel)
        _ = Self.decode(t1.key, t1.mask, memo: memo)
        let t2 = try ODPText.parseKey(tunnel.replacing("src=198.18.1.1", with: "src=198.18.1.9"))
        #expect(!memo.keys.reuse(t2.key[...], vlanLimit: Self.decoder.vlanLimit, into: &out))
        let t3 = try ODPText.parseKey(tunnel.replacing("ipv4(src=198.18.0.1", with: "ipv4(src=198.18.0.7"))
        #expect(memo.keys.reuse(t3.key[...], vlanLimit: Self.decoder.vlanLimit, into: &out))
        #expect(out == Self.decode(t3.key, t3.mask, memo: nil).0.key)
    }

    /// Behind a VLAN tag the decoder reads the encap's IPv4 attribute and may leave a
    /// stray top-level one unread: its addresses are compared, not taken (a reviewer's
    /// case: through the memo the stray bytes became the key's addresses).
    @Test func aStrayTopLevelIPv4AttributeBehindAVLANIsNotTaken() throws {
        let vlan = try ODPText.parseKey("in_port(1),eth(src=00:00:00:00:00:01,dst=00:00:00:00:00:02),eth_type(0x8100),vlan(vid=5),encap(eth_type(0x0800),ipv4(src=198.18.0.1,dst=198.18.0.2,proto=6,frag=no),tcp(dst=80))")
        func withStray(_ a: UInt8) -> [UInt8] { vlan.key + [16, 0, 7, 0, 198, 19, 0, a, 198, 19, 1, a, 6, 0, 64, 0] }
        let memo = MaskMemo()
        let first = Self.decode(withStray(1), vlan.mask, memo: memo)
        #expect(first.1 == nil, "the decoder takes the key: \(first.1 ?? "")")
        let fresh = Self.decode(withStray(9), vlan.mask, memo: nil)
        let viaMemo = Self.decode(withStray(9), vlan.mask, memo: memo)
        #expect(viaMemo.1 == fresh.1)
        #expect(viaMemo.0 == fresh.0)
        #expect(viaMemo.0.key[.ipv4Src] == 0xc612_0001, "the encap's address")
    }
}
