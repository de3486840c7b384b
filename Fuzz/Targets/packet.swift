// libFuzzer target: the packet parser (Sources/Packet FlowExtractor) on arbitrary bytes,
// with and without the UDP GSO flag, and the VXLAN decapsulation parser followed by
// extraction of the inner frame (what the uplink receive path does).
//
// The frame is copied into an allocation of exactly its length, so AddressSanitizer
// reports any read past the end.
import Packet

#if canImport(Glibc)
import Glibc
#endif

/// ESW_FUZZ_STRICT=1 also checks invariants of the result (header offsets inside the
/// frame); by default only traps and memory errors count.
let strict = getenv("ESW_FUZZ_STRICT").map { String(cString: $0) == "1" } ?? false

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzPacket(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let frame = UnsafeMutableRawPointer.allocate(byteCount: max(size, 1), alignment: 1)
    defer { frame.deallocate() }
    frame.copyMemory(from: data, byteCount: size)

    var key = FlowKey()
    key[.inPort] = 1
    for gso in [false, true] {
        switch FlowExtractor.extract(frame, length: size, into: &key, udpFragmentOffload: gso) {
        case .success(let off):
            // l4 may point past the end: like the kernel's ipv6_find_hdr(), the extension
            // header walk does not require the upper-layer header to be present, and every
            // user of offsets.l4 checks the length first.
            if strict && off.l3 > size {
                fatalError("L3 offset past the end of the frame: l3 \(off.l3) length \(size)")
            }
        case .failure:
            if strict && size >= 14 { fatalError("extract failed on a \(size)-byte frame") }
        }
    }

    // Uplink path: VXLAN decapsulation (with the frame at the standard headroom), then the
    // inner frame's key.
    let pool = UnsafeMutableRawPointer.allocate(byteCount: 192 + max(size, 1), alignment: 64)
    defer { pool.deallocate() }
    (pool + 192).copyMemory(from: data, byteCount: size)
    var b = PacketBuffer(storage: pool, capacity: 192 + size, head: 192, length: size)
    if let t = VXLAN.decapsulate(&b, port: 4789) {
        var inner = FlowKey()
        t.store(into: &inner)
        _ = FlowExtractor.extract(b.data, length: b.length, into: &inner)
    }
    return 0
}
