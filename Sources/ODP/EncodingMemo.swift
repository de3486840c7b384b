import Netlink
import Packet

/// The key and mask attributes of the flow a dump encoded last, for the next flow.
///
/// A dump's flows mostly share their mask and differ in the addresses they match. The
/// encoder writes an Ethernet or IP address only into its own attribute and never reads
/// one to decide anything (as MaskMemo's decoding does not): with the same mask and a key
/// that agrees outside the addresses (`MaskMemo.comparedBits`), the mask attributes are
/// the last flow's bytes, and the key attributes too, its addresses written over (the two
/// encodings were two thirds of the daemon's work for a dumped flow).
///
/// Only keys whose addresses lie in their top-level `eth()`, `ipv4()` or `ipv6()` are
/// kept: an ARP key carries its IPv4 addresses in `arp()`, a VLAN key nests them.
public final class EncodingMemo {
    var key = FlowKey()
    var mask = FlowKey()
    var keyBytes: [UInt8] = []
    var maskBytes: [UInt8] = []
    /// Payload offsets in `keyBytes` of the attributes holding the addresses (-1: none).
    var ethernetAt = -1, ipv4At = -1, ipv6At = -1
    var valid = false

    public init() {}

    /// Whether the last encoding serves `flow` under `mask`.
    func serves(flow: borrowing FlowKey, mask: borrowing FlowKey) -> Bool {
        guard valid else { return false }
        let a = flow.words.span, b = key.words.span, c = MaskMemo.comparedBits.words.span
        let m = mask.words.span, n = self.mask.words.span
        var diff: UInt64 = 0
        for i in 0..<FlowKey.wordCount { diff |= (a[i] ^ b[i]) & c[i] | (m[i] ^ n[i]) }
        return diff == 0
    }

    /// Keeps a fresh encoding, if its addresses lie where they can be written over.
    func remember(flow: borrowing FlowKey, mask: borrowing FlowKey, key keyBytes: ArraySlice<UInt8>,
                  mask maskBytes: ArraySlice<UInt8>) {
        valid = false
        var ethernet = -1, ipv4 = -1, ipv6 = -1
        let servable = keyBytes.withUnsafeBytes { bytes in
            var walk = RawAttributes.Iterator(bytes)
            while let a = walk.next() {
                switch a.type {
                case KeyAttr.ethernet where a.count == 12: ethernet = a.range.lowerBound
                case KeyAttr.ipv4 where a.count == 12: ipv4 = a.range.lowerBound
                case KeyAttr.ipv6 where a.count == 40: ipv6 = a.range.lowerBound
                case KeyAttr.ethernet, KeyAttr.ipv4, KeyAttr.ipv6, KeyAttr.arp, KeyAttr.encap: return false
                default: break
                }
            }
            return !walk.malformed
        }
        guard servable else { return }
        key = copy flow
        self.mask = copy mask
        self.keyBytes.removeAll(keepingCapacity: true)
        self.keyBytes.append(contentsOf: keyBytes)
        self.maskBytes.removeAll(keepingCapacity: true)
        self.maskBytes.append(contentsOf: maskBytes)
        (ethernetAt, ipv4At, ipv6At) = (ethernet, ipv4, ipv6)
        valid = true
    }

    /// The last key's attributes with `flow`'s addresses, appended to `b`.
    func appendKey(of flow: borrowing FlowKey, to b: inout AttributeWriter) {
        let start = b.bytes.count
        b.append(raw: keyBytes)
        if ethernetAt >= 0 {
            b.bytes.setBE48(start + ethernetAt, flow[.ethSrc])
            b.bytes.setBE48(start + ethernetAt + 6, flow[.ethDst])
        }
        if ipv4At >= 0 {
            b.bytes.setBE32(start + ipv4At, UInt32(truncatingIfNeeded: flow[.ipv4Src]))
            b.bytes.setBE32(start + ipv4At + 4, UInt32(truncatingIfNeeded: flow[.ipv4Dst]))
        }
        if ipv6At >= 0 {
            b.bytes.setBE128(start + ipv6At, flow[.ipv6Src])
            b.bytes.setBE128(start + ipv6At + 16, flow[.ipv6Dst])
        }
    }
}

extension KeyEncoder {
    /// A flow's key attributes nested in `keyType`, then its mask attributes nested in
    /// `maskType`, as `encode(flow:mask:exportMask:into:)` writes them; through `memo`,
    /// from the last flow's when they serve.
    public func encode(flow: FlowKey, mask: FlowKey, keyType: UInt16, maskType: UInt16, into b: inout AttributeWriter,
                       memo: EncodingMemo) {
        if memo.serves(flow: flow, mask: mask) {
            b.nested(keyType) { memo.appendKey(of: flow, to: &$0) }
            b.nested(maskType) { $0.append(raw: memo.maskBytes) }
            return
        }
        let keyStart = b.bytes.count + 4
        b.nested(keyType) { encode(flow: flow, mask: mask, exportMask: false, into: &$0) }
        let keyEnd = b.bytes.count, maskStart = keyEnd + 4
        b.nested(maskType) { encode(flow: flow, mask: mask, exportMask: true, into: &$0) }
        memo.remember(flow: flow, mask: mask, key: b.bytes[keyStart..<keyEnd], mask: b.bytes[maskStart..<b.bytes.count])
    }
}
