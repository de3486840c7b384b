import Benchmark
import Classifier
import Packet

// Megaflow classifier (tuple-space search) with 100k flows spread over 1, 16 and 256
// distinct masks.
//   lookup.*: one scaled iteration is one lookup of a key that hits, so wallClock reads as
//             ns/lookup; mallocCountTotal must stay 0 (see Thresholds/).
//   insert.*: one iteration inserts 100k flows into an empty classifier; the custom
//             inserts/s metric is 100k divided by the measured time.

let flowCount = 100_000

/// A deterministic generator (SplitMix64) so every run builds the same flows.
struct SplitMix64 {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Mask number `v`: in_port, eth_dst, eth_type and ipv4_src exact (ipv4_src is unique per
/// flow, so exactly one entry matches each key), an ipv4_dst prefix of 32 - v % 32 bits, and
/// ip_proto / tp_dst / tp_src according to the bits of v / 32. Distinct for v < 256.
func maskBits(_ v: Int) -> FlowKey {
    var m = FlowKey()
    for f in [FlowField.inPort, .ethDst, .ethType, .ipv4Src] { m[f] = f.valueMask }
    let prefix = 32 - v % 32
    m[.ipv4Dst] = UInt64(UInt32.max << UInt32(32 - prefix))
    let extra = v / 32
    if extra & 1 != 0 { m[.ipProto] = FlowField.ipProto.valueMask }
    if extra & 2 != 0 { m[.tpDst] = FlowField.tpDst.valueMask }
    if extra & 4 != 0 { m[.tpSrc] = FlowField.tpSrc.valueMask }
    return m
}

/// A full (unmasked) packet key for flow `j`: every field a TCP/UDP packet would fill.
func packetKey(_ j: Int, _ rng: inout SplitMix64) -> FlowKey {
    var k = FlowKey()
    k[.inPort] = UInt64(1 + j % 8)
    k[.ethSrc] = 0x0200_0000_0000 | (rng.next() & 0xffff_ffff)
    k[.ethDst] = 0x0200_0001_0000 | UInt64(j % 64)
    k[.ethType] = UInt64(EtherType.ipv4)
    k[.ipv4Src] = UInt64(0x0A00_0000 + UInt32(j))
    k[.ipv4Dst] = rng.next() & 0xffff_ffff
    k[.ipProto] = UInt64(j & 1 == 0 ? IPProto.tcp : IPProto.udp)
    k[.ipTTL] = 64
    k[.tpSrc] = rng.next() & 0xffff
    k[.tpDst] = UInt64(80 + j % 100)
    k[.tcpFlags] = j & 1 == 0 ? 0x10 : 0
    return k
}

/// 100k entries over `masks` masks, plus the packet keys that hit them in a shuffled order.
final class Workload: @unchecked Sendable {
    let masks: Int
    let entries: [ClassifierEntry]
    /// Lookup keys, one per flow, shuffled so consecutive lookups touch unrelated slots.
    let keys: UnsafeMutablePointer<FlowKey>

    init(masks: Int) {
        self.masks = masks
        var rng = SplitMix64(state: UInt64(masks))
        let flowMasks = (0..<masks).map { FlowMask(maskBits($0)) }
        var entries: [ClassifierEntry] = []
        entries.reserveCapacity(flowCount)
        var packetKeys: [FlowKey] = []
        packetKeys.reserveCapacity(flowCount)
        for j in 0..<flowCount {
            let k = packetKey(j, &rng)
            entries.append(ClassifierEntry(key: k, mask: flowMasks[j % masks]))
            packetKeys.append(k)
        }
        for i in stride(from: flowCount - 1, to: 0, by: -1) {
            packetKeys.swapAt(i, Int(rng.next() % UInt64(i + 1)))
        }
        self.entries = entries
        keys = .allocate(capacity: flowCount)
        keys.initialize(from: packetKeys, count: flowCount)
    }

    func build(rcu: QuiescentState) -> Classifier {
        let c = Classifier(rcu: rcu)
        for e in entries { precondition(c.insert(e)) }
        return c
    }
}

/// A populated classifier and a registered reader, inside a read-side section.
final class LookupState: @unchecked Sendable {
    let rcu = QuiescentState()
    let classifier: Classifier
    let reader: QuiescentState.Reader
    let keys: UnsafeMutablePointer<FlowKey>
    var cursor = 0

    init(masks: Int) {
        let w = Workload(masks: masks)
        classifier = w.build(rcu: rcu)
        precondition(classifier.count == flowCount && classifier.maskCount == masks)
        rcu.synchronize()
        keys = w.keys
        reader = rcu.registerReader()
        rcu.enter(reader)
        // Every key must hit, and hit its own flow.
        var probed: UInt64 = 0
        for i in 0..<flowCount {
            guard let hit = classifier.lookup(keys[i], reader: reader, probed: &probed) else {
                fatalError("lookup key \(i) missed")
            }
            precondition(hit.takeUnretainedValue().key[.ipv4Src] == keys[i][.ipv4Src])
        }
    }
}

let benchmarks: @Sendable () -> Void = {
    let lookupConfig = Benchmark.Configuration(
        metrics: [.wallClock, .throughput, .mallocCountTotal],
        timeUnits: .nanoseconds,
        warmupIterations: 10,
        scalingFactor: .kilo,
        maxDuration: .seconds(3),
        maxIterations: 100_000,
        thresholds: [.mallocCountTotal: BenchmarkThresholds(absolute: [.p90: 0])]
    )

    // Two access patterns: every flow in a shuffled order (the working set is far larger
    // than the caches, as with 100k active flows), and the same 1k flows over and over
    // (".hot": the cost of the search itself, with the touched entries cached).
    for masks in [1, 16, 256] {
        for (suffix, window) in [("", flowCount), (".hot", 1024)] {
            Benchmark("lookup.100k.\(masks)-mask\(masks == 1 ? "" : "s")\(suffix)", configuration: lookupConfig) {
                benchmark, state in
                let c = state.classifier, reader = state.reader, keys = state.keys
                var i = state.cursor
                var probed: UInt64 = 0
                for _ in benchmark.scaledIterations {
                    let hit = c.lookup(keys[i], reader: reader, probed: &probed)
                    blackHole(hit)
                    i += 1
                    if i == window { i = 0 }
                }
                state.cursor = i
                blackHole(probed)
            } setup: {
                LookupState(masks: masks)
            }
        }
    }

    let insertsPerSecond = BenchmarkMetric.custom("inserts/s", polarity: .prefersLarger, useScalingFactor: false)
    let insertConfig = Benchmark.Configuration(
        metrics: [.wallClock, insertsPerSecond],
        timeUnits: .milliseconds,
        warmupIterations: 1,
        scalingFactor: .one,
        maxDuration: .seconds(5),
        maxIterations: 20
    )
    for masks in [1, 16, 256] {
        Benchmark("insert.100k.\(masks)-mask\(masks == 1 ? "" : "s")", configuration: insertConfig) {
            benchmark, workload in
            let rcu = QuiescentState()
            let entries = workload.entries
            let clock = ContinuousClock()
            do {
                let c = Classifier(rcu: rcu)
                let start = clock.now
                benchmark.startMeasurement()
                for e in entries { _ = c.insert(e) }
                benchmark.stopMeasurement()
                let elapsed = clock.now - start
                precondition(c.count == flowCount)
                let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
                benchmark.measurement(insertsPerSecond, Int(Double(flowCount) / seconds))
                blackHole(c)
            }
            rcu.synchronize()
        } setup: {
            Workload(masks: masks)
        }
    }
}
