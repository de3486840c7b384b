import Packet

/// UFIDs for flows added without one. Open vSwitch's dpctl computes the ufid on the
/// client side (odp_flow_key_hash over the key attributes it sends); esw-dpctl does the
/// same, and the datapath uses it only for clients that send no ufid.
public enum FlowUFID {
    /// A keyed hash of a flow's key attributes, so that the same key gets the same ufid
    /// under one seed, with the UUID version 4 / variant 1 bits set so it prints like one.
    public static func hash(keyAttributes bytes: [UInt8], seed: UInt64) -> UInt128 {
        var h1 = seed ^ 0x9E37_79B9_7F4A_7C15, h2 = seed &* 0xC2B2_AE3D_27D4_EB4F
        // Eight bytes a step (the seed is random per process: no value is kept anywhere).
        bytes.withUnsafeBytes { p in
            var i = 0
            while i + 8 <= p.count {
                let w = p.loadUnaligned(fromByteOffset: i, as: UInt64.self)
                h1 = FlowHash.mix(h1, w)
                h2 = FlowHash.mix(h2 ^ 0x5bd1_e995, w &+ h1)
                i += 8
            }
            while i < p.count {
                h1 = FlowHash.mix(h1, UInt64(p[i]))
                h2 = FlowHash.mix(h2 ^ 0x5bd1_e995, UInt64(p[i]) &+ h1)
                i += 1
            }
        }
        var u = UInt128(FlowHash.mix(h1, 1)) << 64 | UInt128(FlowHash.mix(h2, 2))
        u = (u & ~(UInt128(0xf000) << 64)) | (UInt128(0x4000) << 64)
        u = (u & ~(UInt128(0xc000) << 48)) | (UInt128(0x8000) << 48)
        return u
    }
}
