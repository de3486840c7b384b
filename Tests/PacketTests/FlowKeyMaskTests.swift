import Packet
import Testing

/// `isSubset(of: mask)` says what comparing a key with its masked copy says (a new flow
/// keeps its unmasked key only when they differ).
struct FlowKeyMaskTests {
    @Test func aKeyIsMaskedExactlyWhenItEqualsItsMaskedCopy() {
        var rng = SystemRandomNumberGenerator()
        var seen = (inside: 0, outside: 0)
        for _ in 0..<20_000 {
            var key = FlowKey(), mask = FlowKey()
            for i in 0..<FlowKey.wordCount {
                // Sparse words, so that both answers come up often.
                mask.words[i] = Int.random(in: 0..<3, using: &rng) == 0 ? UInt64.random(in: 0...UInt64.max, using: &rng) : 0
                let k = UInt64.random(in: 0...UInt64.max, using: &rng) & mask.words[i]
                key.words[i] = Int.random(in: 0..<90, using: &rng) == 0 ? k | (1 << UInt64.random(in: 0..<64, using: &rng)) : k
            }
            let expected = key == key.masked(by: mask)
            #expect(key.isSubset(of: mask) == expected)
            if expected { seen.inside += 1 } else { seen.outside += 1 }
        }
        #expect(seen.inside > 1000 && seen.outside > 1000)
    }
}
