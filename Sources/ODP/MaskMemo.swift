import Packet
#if canImport(Glibc)
import Glibc
#endif

/// The last flow put's decoded mask, for the next put with the same mask attributes.
///
/// The flows of an add-flows mostly share their mask attributes and differ in the
/// addresses they match. Decoding a mask reads the key it is decoded for (its
/// EtherType, VLAN tags, protocol, fragment, ICMP type and code, packet type, tunnel),
/// and so does narrowing it to the fields relevant to the packet, but neither reads an
/// Ethernet or IP address: with the same mask bytes and a key that agrees outside the
/// addresses, the result is the last one's (a third of a software-only put's decoding).
public final class MaskMemo {
    var bytes = RememberedBytes()
    var key = FlowKey() { didSet { keysAgreeAt = nil } }
    /// The `keys` generation whose key agrees with `key` (`agrees(with:)`), if known: a
    /// key `keys` gives (the same but for addresses, which are not compared) agrees then
    /// too, with no 28-word comparison per put.
    var keysAgreeAt: UInt64?
    var mask = FlowKey()
    var vlanLimit = 0
    var valid = false
    /// The last put's key, for a key that differs only in its addresses (KeyMemo).
    let keys = KeyMemo()

    public init() {}

    /// The key bits a mask's decoding may read: all but the Ethernet and IP addresses.
    /// (Other fields that share their words stay compared.)
    static let comparedBits: FlowKey = {
        var m = FlowKey.allOnes
        for f in [FlowField.ethSrc, .ethDst, .ipv4Src, .ipv4Dst] { m[f] = 0 }
        for f in [WideField.ipv6Src, .ipv6Dst] { m[f] = 0 }
        return m
    }()

    /// `agrees(with: key)` for a key just decoded, `reused` when `keys` gave it.
    func agrees(withDecoded key: UnsafePointer<FlowKey>, reused: Bool) -> Bool {
        if reused && keysAgreeAt == keys.generation { return true }
        guard agrees(with: key.pointee) else { return false }
        if reused { keysAgreeAt = keys.generation }
        return true
    }

    /// Whether `key` agrees with the remembered key wherever a mask's decoding looks.
    func agrees(with key: borrowing FlowKey) -> Bool {
        let a = key.words.span, b = self.key.words.span, c = Self.comparedBits.words.span
        var diff: UInt64 = 0
        for i in 0..<FlowKey.wordCount { diff |= (a[i] ^ b[i]) & c[i] }
        return diff == 0
    }
}

extension KeyDecoder {
    /// `decodeMatch`, with the key taken from `memo` when its bytes are the last put's
    /// but for addresses (KeyMemo), and the mask when its bytes and the key's relevant
    /// fields are the last put's (a key or mask that did not decode is not kept).
    public func decodeMatch(key: ArraySlice<UInt8>, mask: ArraySlice<UInt8>, into match: inout FlowMatch,
                            memo: MaskMemo) -> ODPError? {
        withUnsafeMutablePointer(to: &match) { decodeMatch(key: key, mask: mask, into: $0, memo: memo) }
    }

    /// `decodeMatch(…memo:)` into memory that need not hold a match yet (a put's, not
    /// zeroed first: 448 bytes): the key and then the mask are each written whole before
    /// anything reads them. Both are written when it returns nil.
    public func decodeMatch(key: ArraySlice<UInt8>, mask: ArraySlice<UInt8>, into m: UnsafeMutablePointer<FlowMatch>,
                            memo: MaskMemo) -> ODPError? {
        let reused = memo.keys.reuse(key, vlanLimit: vlanLimit, into: &m.pointee.key)
        if !reused {
            // From a zero key, as the memo's key was decoded.
            m.pointee.key = FlowKey()
            let keyFitness = decode(key, into: &m.pointee.key, isMask: false, src: SourceKey(nil))
            guard case .perfect = keyFitness else { return Self.error(keyFitness, mask: false) }
            memo.keys.remember(key, vlanLimit: vlanLimit, key: m.pointee.key)
        }
        if memo.valid, memo.vlanLimit == vlanLimit, memo.bytes.same(as: mask),
           memo.agrees(withDecoded: m.pointer(to: \.key)!, reused: reused) {
            m.pointee.mask = memo.mask
            return nil
        }
        // A fresh decode writes only the fields present: from a zero mask, so that a
        // caller's leftovers never differ from what the memo would have given.
        m.pointee.mask = FlowKey()
        if let e = decodeMask(mask, into: m) {
            memo.valid = false
            return e
        }
        memo.bytes.set(mask)
        memo.key = m.pointee.key
        // The key is `keys`' but for addresses (reused), or `keys`' own (remembered
        // just now; or not remembered, and then `keys` gives none before its next).
        memo.keysAgreeAt = memo.keys.generation
        memo.mask = m.pointee.mask
        memo.vlanLimit = vlanLimit
        memo.valid = true
        return nil
    }
}

extension Array where Element == UInt8 {
    /// Whether `other` holds the same bytes, in one memcmp. (`elementsEqual` between an
    /// array and a slice compares an element at a time: ~200 instructions for a flow's
    /// key, mask or actions, once a put.)
    public func sameBytes(as other: ArraySlice<UInt8>) -> Bool {
        guard count == other.count else { return false }
        if isEmpty { return true }
        return withUnsafeBytes { a in other.withUnsafeBytes { b in memcmp(a.baseAddress!, b.baseAddress!, a.count) == 0 } }
    }
}
