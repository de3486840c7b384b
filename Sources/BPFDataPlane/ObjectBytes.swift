extension BPFObjectBytes {
    /// The compiled eBPF object (bpf/esw.bpf.c), decoded from the build's embedded copy.
    static var elf: [UInt8] { Base64.decode(base64) }
}

/// Base64 without Foundation, for the one string the build embeds.
enum Base64 {
    static func decode(_ s: String) -> [UInt8] {
        var table = [UInt8](repeating: 0xff, count: 256)
        for (i, c) in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8.enumerated() { table[Int(c)] = UInt8(i) }
        var out: [UInt8] = []
        out.reserveCapacity(s.utf8.count * 3 / 4)
        var acc: UInt32 = 0, bits = 0
        for c in s.utf8 {
            let v = table[Int(c)]
            if v == 0xff { continue }
            acc = acc << 6 | UInt32(v)
            bits += 6
            if bits >= 8 {
                bits -= 8
                out.append(UInt8(truncatingIfNeeded: acc >> UInt32(bits)))
            }
        }
        return out
    }
}
