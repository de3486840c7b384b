import Testing
@testable import Classifier

@Suite struct KeyedHashTests {
    /// The SipHash paper's key (bytes 00..0f) and messages 00, 01, 02, …: the reference
    /// vectors of SipHash-2-4 for 8 and 16 bytes, read as little-endian words.
    static let referenceKey: (k0: UInt64, k1: UInt64) = (0x0706_0504_0302_0100, 0x0f0e_0d0c_0b0a_0908)

    @Test func matchesSipHash24ReferenceVectors() {
        var eight = SipHasher<SipHash24>(key: Self.referenceKey)
        eight.combine(0x0706_0504_0302_0100)
        #expect(eight.finalize() == 0x93f5_f579_9a93_2462)
        var sixteen = SipHasher<SipHash24>(key: Self.referenceKey)
        sixteen.combine(0x0706_0504_0302_0100)
        sixteen.combine(0x0f0e_0d0c_0b0a_0908)
        #expect(sixteen.finalize() == 0x3f2a_cc7f_57c2_9bdb)
    }

    @Test func keyAndWordsDecide() {
        let h = KeyedHash.hash(1, 2)
        #expect(h == KeyedHash.hash(1, 2))
        #expect(h != KeyedHash.hash(2, 1))
        var other = KeyedHash(key: (sipHashProcessKey.k0 ^ 1, sipHashProcessKey.k1))
        other.combine(1)
        other.combine(2)
        #expect(other.finalize() != h)
        // Length is part of the input: a trailing zero word changes the hash.
        var three = KeyedHash()
        three.combine(1)
        three.combine(2)
        three.combine(0)
        #expect(three.finalize() != h)
    }
}
