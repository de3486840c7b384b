import Packet

/// The last flow put's decoded key, for the next put whose key attributes are the same
/// bytes but for the addresses of its top-level Ethernet, IPv4 or IPv6 attribute.
///
/// The flows of an add-flows mostly differ only there. Decoding a key reads those bytes
/// into their fields and nothing else of them: no check looks at an address. So a key
/// whose other bytes are the last decoded key's decodes to that key with the new
/// addresses (the largest part of a software-only put's decoding). Addresses elsewhere
/// (nested in an encap or a tunnel attribute, ARP's) are compared as any other byte, and
/// so are a top-level IPv4 or IPv6 attribute's unless the top-level EtherType is theirs:
/// behind a VLAN tag the decoder reads the encap's and may leave a stray top-level one
/// unread.
final class KeyMemo {
    private var remembered = RememberedBytes()
    private var key = FlowKey()
    private var vlanLimit = 0
    private var valid = false
    /// Where the addresses lie in `bytes`, in order: start, length and which ones.
    private var starts: InlineArray<3, Int> = .init(repeating: 0)
    private var lengths: InlineArray<3, Int> = .init(repeating: 0)
    private var kinds: InlineArray<3, UInt16> = .init(repeating: 0)
    private var count = 0
    /// Counts the keys remembered: MaskMemo knows whether the current one agrees with its own.
    private(set) var generation: UInt64 = 0
    /// A byte per remembered byte: 0xff where the bytes are compared, 0 at the addresses.
    /// Compared 8 bytes at a time under it (a memcmp per stretch between addresses was
    /// three calls a put).
    private var compared = RememberedBytes()

    /// The memo's key with `new`'s addresses, if `new` is the remembered bytes elsewhere.
    func reuse(_ new: ArraySlice<UInt8>, vlanLimit: Int, into out: inout FlowKey) -> Bool {
        guard valid, vlanLimit == self.vlanLimit, remembered.count > 0, new.count == remembered.count else { return false }
        let o = remembered.bytes, c = compared.bytes
        return new.withUnsafeBytes { n in
            var diff: UInt64 = 0
            if n.count >= 8 {
                // Whole words, then the last 8 bytes (overlapping: compared twice, harmless).
                let np = n.baseAddress!, op = o.baseAddress!, cp = c.baseAddress!
                func word(_ at: Int) -> UInt64 {
                    (np.loadUnaligned(fromByteOffset: at, as: UInt64.self) ^ op.loadUnaligned(fromByteOffset: at, as: UInt64.self))
                        & cp.loadUnaligned(fromByteOffset: at, as: UInt64.self)
                }
                var at = 0
                while at &+ 8 <= n.count {
                    diff |= word(at)
                    at &+= 8
                }
                diff |= word(n.count &- 8)
            } else {
                for i in 0..<n.count { diff |= UInt64((n[i] ^ o[i]) & c[i]) }
            }
            if diff != 0 { return false }
            out = key
            for i in 0..<count {
                let p = n.baseAddress! + starts[i]
                switch kinds[i] {
                case KeyAttr.ethernet:
                    out[.ethSrc] = p.be48(0)
                    out[.ethDst] = p.be48(6)
                case KeyAttr.ipv4:
                    out[.ipv4Src] = UInt64(p.be32(0))
                    out[.ipv4Dst] = UInt64(p.be32(4))
                default:
                    out[.ipv6Src] = p.be128(0)
                    out[.ipv6Dst] = p.be128(16)
                }
            }
            return true
        }
    }

    /// Remembers a key that decoded (only one that decoded: a failed decode is not kept).
    func remember(_ new: ArraySlice<UInt8>, vlanLimit: Int, key: FlowKey) {
        valid = false
        generation &+= 1
        remembered.set(new)
        let bytes = remembered.bytes
        count = 0
        // The top-level attributes: where the addresses of the three lie. A type seen
        // twice (the decoder refuses it) is not remembered.
        var seen: UInt16 = 0
        var etherType: UInt16?
        var i = 0
        while i + 4 <= bytes.count {
            let len = Int(bytes[i]) | Int(bytes[i + 1]) << 8
            let type = (UInt16(bytes[i + 2]) | UInt16(bytes[i + 3]) << 8) & 0x3fff
            guard len >= 4, i + len <= bytes.count else { return }
            if type == KeyAttr.ethertype && len >= 4 + 2 {
                guard etherType == nil else { return }
                etherType = UInt16(bytes[i + 4]) << 8 | UInt16(bytes[i + 5])
            }
            let addresses: Int? = switch type {
            case KeyAttr.ethernet where len >= 4 + 12: 12
            case KeyAttr.ipv4 where len >= 4 + 12: 8
            case KeyAttr.ipv6 where len >= 4 + 40: 32
            default: nil
            }
            if let addresses {
                let bit: UInt16 = type == KeyAttr.ethernet ? 1 : type == KeyAttr.ipv4 ? 2 : 4
                guard seen & bit == 0 else { return }
                seen |= bit
                starts[count] = i + 4
                lengths[count] = addresses
                kinds[count] = type
                count += 1
            }
            i += (len + 3) & ~3
        }
        // Addresses the decoder read: IPv4's and IPv6's only under their own EtherType.
        var kept = 0
        for j in 0..<count {
            let read = switch kinds[j] {
            case KeyAttr.ipv4: etherType == EtherType.ipv4
            case KeyAttr.ipv6: etherType == EtherType.ipv6
            default: true
            }
            guard read else { continue }
            starts[kept] = starts[j]
            lengths[kept] = lengths[j]
            kinds[kept] = kinds[j]
            kept += 1
        }
        count = kept
        var mask = [UInt8](repeating: 0xff, count: bytes.count)
        for j in 0..<count { for b in starts[j]..<(starts[j] + lengths[j]) { mask[b] = 0 } }
        compared.set(mask[...])
        self.key = key
        self.vlanLimit = vlanLimit
        valid = true
    }
}
