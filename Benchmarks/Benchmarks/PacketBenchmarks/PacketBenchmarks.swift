import Benchmark
import Packet

// Flow-key extraction (FlowExtractor.extract) on typical frames. One scaled iteration is
// one frame, so the wallClock column reads as ns/packet. mallocCountTotal must stay 0
// (see Thresholds/).

/// Frames in stable raw memory, built once per benchmark process.
final class Frames: @unchecked Sendable {
    struct Frame {
        let bytes: UnsafeMutableRawPointer
        let length: Int
    }
    let tcp4: Frame
    let udp6: Frame
    let vlanTCP4: Frame
    let arp: Frame

    init() {
        tcp4 = Frames.make(FrameBuilder.ipv4TCP())
        udp6 = Frames.make(FrameBuilder.ipv6UDP())
        vlanTCP4 = Frames.make(FrameBuilder.ipv4TCP(vlan: 0x2064))
        arp = Frames.make(FrameBuilder.arpRequest())
    }

    static func make(_ b: [UInt8]) -> Frame {
        let p = UnsafeMutableRawPointer.allocate(byteCount: max(b.count, 64), alignment: 64)
        p.initializeMemory(as: UInt8.self, repeating: 0, count: max(b.count, 64))
        b.withUnsafeBytes { p.copyMemory(from: $0.baseAddress!, byteCount: b.count) }
        return Frame(bytes: p, length: b.count)
    }

    static let shared = Frames()
}

/// Byte-level frame construction (test-only code path, allocation is fine here).
enum FrameBuilder {
    static func be16(_ v: UInt16) -> [UInt8] { [UInt8(v >> 8), UInt8(v & 0xff)] }
    static func be32(_ v: UInt32) -> [UInt8] { be16(UInt16(v >> 16)) + be16(UInt16(v & 0xffff)) }
    static func mac(_ v: UInt64) -> [UInt8] { be16(UInt16(v >> 32)) + be32(UInt32(v & 0xffff_ffff)) }

    static func ethernet(_ type: UInt16, vlan: UInt16? = nil) -> [UInt8] {
        var b = mac(0x0200_0000_0002) + mac(0x0200_0000_0001)
        if let vlan { b += be16(EtherType.vlan) + be16(vlan) }
        return b + be16(type)
    }

    static func ipv4TCP(vlan: UInt16? = nil) -> [UInt8] {
        let payload = [UInt8](repeating: 0x61, count: 6)
        var b = ethernet(EtherType.ipv4, vlan: vlan)
        let total = 20 + 20 + payload.count
        b += [0x45, 0x00] + be16(UInt16(total)) + be16(0x1234) + be16(0x4000) + [64, IPProto.tcp] + be16(0)
        b += be32(0xC612_0001) + be32(0xC612_0002)
        b += be16(40000) + be16(80) + be32(1) + be32(0) + be16(0x5018) + be16(8192) + be16(0) + be16(0)
        return b + payload
    }

    static func ipv6UDP() -> [UInt8] {
        let payload = [UInt8](repeating: 0x62, count: 16)
        var b = ethernet(EtherType.ipv6)
        b += be32(0x6000_0000 | 0x12345) + be16(UInt16(8 + payload.count)) + [IPProto.udp, 64]
        b += be32(0x2001_0db8) + be32(0) + be32(0) + be32(1)
        b += be32(0x2001_0db8) + be32(0) + be32(0) + be32(2)
        b += be16(5353) + be16(53) + be16(UInt16(8 + payload.count)) + be16(0)
        return b + payload
    }

    static func arpRequest() -> [UInt8] {
        var b = mac(0xffff_ffff_ffff) + mac(0x0200_0000_0001) + be16(EtherType.arp)
        b += be16(1) + be16(EtherType.ipv4) + [6, 4] + be16(1)
        b += mac(0x0200_0000_0001) + be32(0xC612_0001) + mac(0) + be32(0xC612_0002)
        return b + [UInt8](repeating: 0, count: 18)  // pad to the 60-byte minimum
    }
}

@inline(__always)
func extractLoop(_ benchmark: Benchmark, _ f: Frames.Frame) {
    var key = FlowKey()
    key[.inPort] = 1
    var acc: UInt64 = 0
    for _ in benchmark.scaledIterations {
        switch FlowExtractor.extract(f.bytes, length: f.length, into: &key) {
        case .success(let off): acc &+= UInt64(truncatingIfNeeded: off.l4)
        case .failure: acc &+= 1
        }
        acc &+= key.words[15] ^ key.words[17]
        blackHole(acc)
    }
    blackHole(key)
}

let benchmarks: @Sendable () -> Void = {
    let zeroMallocs: [BenchmarkMetric: BenchmarkThresholds] = [
        .mallocCountTotal: BenchmarkThresholds(absolute: [.p90: 0]),
    ]
    let config = Benchmark.Configuration(
        metrics: [.wallClock, .throughput, .mallocCountTotal],
        timeUnits: .nanoseconds,
        warmupIterations: 100,
        scalingFactor: .kilo,
        maxDuration: .seconds(2),
        maxIterations: 1_000_000,
        thresholds: zeroMallocs
    )
    // The frames must parse to what they claim to be, or the numbers mean nothing.
    let fs = Frames.shared
    func check(_ f: Frames.Frame, _ ethType: UInt16, _ proto: UInt8, _ tpDst: UInt64) {
        var k = FlowKey()
        guard case .success = FlowExtractor.extract(f.bytes, length: f.length, into: &k),
              k[.ethType] == UInt64(ethType), k[.ipProto] == UInt64(proto), k[.tpDst] == tpDst else {
            fatalError("benchmark frame does not parse as expected")
        }
    }
    check(fs.tcp4, EtherType.ipv4, IPProto.tcp, 80)
    check(fs.udp6, EtherType.ipv6, IPProto.udp, 53)
    check(fs.vlanTCP4, EtherType.ipv4, IPProto.tcp, 80)
    check(fs.arp, EtherType.arp, 1, 0)

    Benchmark("extract.tcp4", configuration: config) { benchmark in
        extractLoop(benchmark, Frames.shared.tcp4)
    }
    Benchmark("extract.udp6", configuration: config) { benchmark in
        extractLoop(benchmark, Frames.shared.udp6)
    }
    Benchmark("extract.vlan-tcp4", configuration: config) { benchmark in
        extractLoop(benchmark, Frames.shared.vlanTCP4)
    }
    Benchmark("extract.arp", configuration: config) { benchmark in
        extractLoop(benchmark, Frames.shared.arp)
    }
    // The four frames in turn (branch predictor sees a mix).
    Benchmark("extract.mix", configuration: config) { benchmark in
        let fs = Frames.shared
        let frames = (fs.tcp4, fs.udp6, fs.vlanTCP4, fs.arp)
        var key = FlowKey()
        var acc: UInt64 = 0
        var i = 0
        for _ in benchmark.scaledIterations {
            let f: Frames.Frame
            switch i & 3 {
            case 0: f = frames.0
            case 1: f = frames.1
            case 2: f = frames.2
            default: f = frames.3
            }
            i &+= 1
            if case .success(let off) = FlowExtractor.extract(f.bytes, length: f.length, into: &key) {
                acc &+= UInt64(truncatingIfNeeded: off.l3)
            }
            acc &+= key.words[16]
            blackHole(acc)
        }
        blackHole(key)
    }
}
