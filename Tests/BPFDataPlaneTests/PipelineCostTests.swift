@testable import BPFDataPlane
import CLibBPF
import ESwitch
import Foundation
import Glibc
import NetLinux
import Packet
import Testing

/// What a frame costs the pipeline (BPF_PROG_TEST_RUN with `repeat`: the kernel's own
/// average per run), for before/after comparisons of the common path: a 64-byte UDP
/// frame VF0 → VF1 through one masked rule. Run on demand:
///   ESW_PIPELINE_COST=1 swift test --filter PipelineCostTests
/// with ESW_PIPELINE_OBJECT=FILE.o to measure another build of bpf/esw.bpf.c (only the
/// maps of the common path are written, so an older object works too).
@Suite(.enabled(if: getuid() == 0 && ProcessInfo.processInfo.environment["ESW_PIPELINE_COST"] != nil,
                "set ESW_PIPELINE_COST (and be root) to measure"))
struct PipelineCostTests {
    static let runs: UInt32 = 2_000_000

    /// The fastest of five averages of `runs` runs, in nanoseconds.
    static func cost(prog: Int32, frame: [UInt8], ifindex: Int32) throws -> Double {
        var best = UInt32.max
        for _ in 0..<5 {
            var ctx = __sk_buff()
            ctx.ifindex = UInt32(bitPattern: ifindex)
            var duration: UInt32 = 0, verdict: UInt32 = 0
            let r = withUnsafeMutableBytes(of: &ctx) { c in
                frame.withUnsafeBytes { f in
                    clbpf_test_run_repeat(prog, f.baseAddress, UInt32(f.count), runs, &duration, &verdict, c.baseAddress, UInt32(c.count))
                }
            }
            #expect(r == 0 && verdict == 7, "a redirect")
            best = min(best, duration)
        }
        return Double(best)
    }

    static func write(_ o: borrowing BPFObject, _ map: String, _ key: [UInt8], _ value: [UInt8]) throws {
        let fd = try o.mapFD(map)
        let r = key.withUnsafeBytes { k in value.withUnsafeBytes { v in BPFMap.updateResult(fd, key: k.baseAddress!, value: v.baseAddress!) } }
        if r < 0 { throw SystemError("write \(map)", errno: -r) }
    }

    @Test func aVFToVFFrameThroughOneMaskedRule() throws {
        let env = ProcessInfo.processInfo.environment
        let elf = try env["ESW_PIPELINE_OBJECT"].map { [UInt8](try Data(contentsOf: URL(fileURLWithPath: $0))) } ?? BPFObjectBytes.elf
        let o = try BPFObject(elf: elf, name: "esw")
        // The object as built: esw_rule_counters' 65536 entries are one block per CPU.
        try Self.write(o, "esw_config", BPFDataPlane.u32(0), Layout.config(mode: .switchdev, ports: 3, vxlan: [],
                                                                        counterSlots: 65536 / BPFMap.possibleCPUs))
        for p: PortIndex in [.uplink, .vf(0), .vf(1)] {
            let ifindex = p == .vf(0) ? PipelineTests.lo : Int32(1000 + p)
            try Self.write(o, "esw_ports", BPFDataPlane.u32(p), Layout.port(DataPlanePort(ifindex: ifindex, representorIfindex: Int32(2000 + p),
                                                                                         isUplink: p == .uplink, mtu: 1500)))
        }
        try Self.write(o, "esw_port_by_ifindex", BPFDataPlane.u32(UInt32(PipelineTests.lo)), BPFDataPlane.u32(PortIndex.vf(0) + 1))
        let frame = PipelineTests.udpFrame(payload: 64 - 42)
        let rule = PipelineTests.rule(frame, inPort: .vf(0), actions: [.forward(.vf(1))])
        let mask = MaskWords(rule.mask)
        try Self.write(o, "esw_masks", BPFDataPlane.u32(0), mask.bytes)
        try Self.write(o, "esw_mask_lists", BPFDataPlane.u32(0), Layout.maskLists(exact: [], masked: [0]))
        try Self.write(o, "esw_action_sets", BPFDataPlane.u32(0), try Layout.actionSet(rule.actions).get())
        let tables = try BPFDataPlane.publishRuleTables(capacity: 16, in: BPFDataPlane.Maps(o))
        let key = TableKey(maskID: 0, key: rule.key, mask: mask).bytes, value = Layout.rule(actionSet: 0, counter: 0, encap: false)
        try key.withUnsafeBytes { k in try value.withUnsafeBytes { v in try BPFMap.update(tables.masked.fd, key: k.baseAddress!, value: v.baseAddress!) } }
        let ns = try Self.cost(prog: try o.programFD("esw_port_rx"), frame: frame, ifindex: PipelineTests.lo)
        print("pipeline cost: 64-byte UDP VF0 -> VF1, one masked rule: \(ns) ns/frame (\(env["ESW_PIPELINE_OBJECT"] ?? "this build"))")
    }

    /// A TCP frame of the same size through pre-ct rule, CT entry and post-ct rule. Without
    /// NAT: a repeated test run reuses the frame as the last run left it, and a NATed
    /// frame would miss the connection from the second run on.
    @Test func anEstablishedConnectionThroughCTAndAChain() throws {
        typealias T = ConntrackPipelineTests
        let dp = try T.dataPlane(withConnection: false)
        var c = T.connection()
        c.spec.original.rewrite = ConnectionRewrite()
        try dp.programConnection(c)
        try dp.program(T.postCT(inPort: .vf(0), reply: false, field: .ipv4Src, address: T.client, to: .vf(1), counter: 13))
        let frame = T.tcpFrame(payload: 64 - 54)
        let ns = try Self.cost(prog: dp.portRX, frame: frame, ifindex: PipelineTests.lo)
        #expect(dp.ruleCounters(13).packets == 5 * UInt64(Self.runs), "every run took the ct path")
        print("pipeline cost: 64-byte TCP VF0 -> VF1, ct + recirc + post-ct rule: \(ns) ns/frame")
    }
}
