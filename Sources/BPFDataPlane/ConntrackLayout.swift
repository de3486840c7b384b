import ESwitch
import Packet

/// The byte layouts of the chain and CT tables (bpf/esw_shared.h, bpf/ct.h), checked by
/// Tests/BPFDataPlaneTests/LayoutTests.swift as the others are.
extension Layout {
    public static let chainKeySize = 176
    public static let chainMaskSize = 176
    public static let chainListSize = 264
    public static let ctKeySize = 40
    public static let ctEntrySize = 48
    public static let maxRecirculations = 4
    /// FlowKey words of the ct fields in a chain key: ct_state | ct_zone << 16 | ct_mark << 32, ct_label.
    static let conntrackWords = [10, 11, 12]

    public static let ctNATSource: UInt8 = 1, ctNATSourcePort: UInt8 = 2, ctNATDestination: UInt8 = 4, ctNATDestinationPort: UInt8 = 8
    public static let ctHandedBack: UInt32 = 1
    /// esw_ct_stats indices.
    public enum CTStat: Int, CaseIterable { case hit, miss, handBack, chainMiss, tooDeep, handBackLost }

    /// Whether a chain rule's match fits the chain key: recirc_id exact, nothing asked of
    /// dp_hash or the other words outside it.
    static func fitsChainKey(key: FlowKey, mask: FlowKey) -> Bool {
        guard mask[.recircID] == FlowField.recircID.valueMask, mask[.dpHash] == 0 else { return false }
        let k = key.words.span, m = mask.words.span
        return wordsOutsideHardwareKey.allSatisfy { w in w == 7 || conntrackWords.contains(w) || k[w] & m[w] == 0 }
    }

    /// struct esw_chain_key: mask id, recirc id, the ct words and the 18 key words, masked.
    static func chainKey(maskID: UInt32, key: FlowKey, mask: FlowKey) -> [UInt8] {
        var b = Bytes(chainKeySize)
        b.u32(0, maskID)
        b.u32(4, UInt32(truncatingIfNeeded: key[.recircID]))
        let k = key.words.span, m = mask.words.span
        b.words(8, conntrackWords.map { k[$0] & m[$0] })
        b.words(32, keyWordSource.map { k[$0] & m[$0] })
        return b.b
    }

    /// struct esw_chain_mask.
    static func chainMask(_ mask: FlowKey) -> [UInt8] {
        var b = Bytes(chainMaskSize)
        let m = mask.words.span
        b.words(0, conntrackWords.map { m[$0] })
        b.words(32, words(mask))
        return b.b
    }

    static func chainList(_ ids: [UInt32]) -> [UInt8] {
        var b = Bytes(chainListSize)
        b.u32(0, UInt32(min(ids.count, maxMasks)))
        for (i, id) in ids.prefix(maxMasks).enumerated() { b.u32(8 + 4 * i, id) }
        return b.b
    }

    /// struct esw_ct_key of one direction.
    static func ctKey(_ t: ConnectionTuple) -> [UInt8] {
        var b = Bytes(ctKeySize)
        b.u16(0, t.zone)
        b.u8(2, t.proto)
        b.u8(3, t.isIPv6 ? 1 : 0)
        b.u16(4, t.srcPort)
        b.u16(6, t.dstPort)
        b.u64(8, UInt64(truncatingIfNeeded: t.src >> 64))
        b.u64(16, UInt64(truncatingIfNeeded: t.src))
        b.u64(24, UInt64(truncatingIfNeeded: t.dst >> 64))
        b.u64(32, UInt64(truncatingIfNeeded: t.dst))
        return b.b
    }

    /// struct esw_ct_entry of one direction.
    static func ctEntry(_ d: ConnectionDirection, mark: UInt32, label: UInt128, counter: UInt32) -> [UInt8] {
        var b = Bytes(ctEntrySize)
        b.u32(0, counter)
        b.u8(8, d.state)
        var nat: UInt8 = 0
        if let a = d.rewrite.src { nat |= ctNATSource; b.u32(20, UInt32(truncatingIfNeeded: a)) }
        if let a = d.rewrite.dst { nat |= ctNATDestination; b.u32(24, UInt32(truncatingIfNeeded: a)) }
        if let p = d.rewrite.srcPort { nat |= ctNATSourcePort; b.u16(10, p) }
        if let p = d.rewrite.dstPort { nat |= ctNATDestinationPort; b.u16(12, p) }
        b.u8(9, nat)
        b.u32(16, mark)
        b.u64(32, UInt64(truncatingIfNeeded: label >> 64))
        b.u64(40, UInt64(truncatingIfNeeded: label))
        return b.b
    }
}
