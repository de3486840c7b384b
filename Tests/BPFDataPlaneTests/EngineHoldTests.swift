@testable import BPFDataPlane
import ESwitch
import Glibc
import NetLinux
import Packet
import Testing

/// Frames that wait for the NIC engine (bpf/prog_stage.h), under BPF_PROG_TEST_RUN: the
/// pipeline marks them for the delay line and, when they come back from it, resumes them
/// after the stage. No delay line here (a test run sends nothing): the pipeline is given
/// an ifindex to hold to, and lo plays the delay line's TAP for the way back.
@Suite(.enabled(if: getuid() == 0, "loading BPF programs needs root"), .serialized)
struct EngineHoldTests {
    static let lo = PipelineTests.lo, redirect = PipelineTests.redirect
    static let headMagic: UInt32 = 0xe5e5_d1a8, tailMagic: UInt32 = 0xe5e5_d1a7

    /// The busy program on VF0 at nic_speed 1: every frame's wait is ~99 times its run,
    /// long enough to be held.
    static func slowStage() throws -> BPFDataPlane {
        let dp = try ProgramStageTests.attached("busy", section: "busy")
        dp.holdIfindexWithoutDelayLine = 4242
        try dp.setNICQueue(microseconds: 1_000_000)
        try dp.setNICSpeed(1)
        return dp
    }

    static func le32(_ f: [UInt8], _ o: Int) -> UInt32 { (0..<4).reduce(0) { $0 | UInt32(f[o + $1]) << (8 * UInt32($1)) } }

    /// The way back: lo is the delay line's TAP.
    static func comeBack(_ dp: BPFDataPlane, _ frame: [UInt8]) throws -> (verdict: Int32, frame: [UInt8], gsoSegs: UInt32) {
        var key = UInt32(bitPattern: lo), engine = Layout.ifindexEngine
        try BPFMap.update(dp.maps.portByIfindex, key: &key, value: &engine)
        return try dp.testRun(frame: frame, ifindex: lo)
    }

    /// A TCP superframe (gso_size set, longer than the port's MTU) keeps its GSO state
    /// on its way to the delay line: bpf_skb_change_tail used to linearise it and reset
    /// gso_size, and the pipeline's output then dropped it as too long.
    @Test func aSuperframeIsHeldWhole() throws {
        let dp = try Self.slowStage()
        let f = ConntrackPipelineTests.tcpFrame(payload: 2000)
        let r = try dp.testRun(frame: f, ifindex: Self.lo, gsoSize: 1000)
        #expect(r.verdict == Self.redirect, "to the delay line")
        #expect(r.gsoSegs == 3, "GSO state kept (a reset sets gso_segs to 0)")
        #expect(dp.programCounters(.vf(0)).held == 1)
        try #require(r.frame.count == f.count + 16)
        #expect(Array(r.frame[0..<14]) == Array(f[0..<14]), "the Ethernet header first")
        #expect(Self.le32(r.frame, 22) == Self.headMagic, "the metadata after it")
        #expect(Int(r.frame[26]) | Int(r.frame[27]) << 8 == Int(PortIndex.vf(0)), "with the port it came in on")
        #expect(Array(r.frame[30...]) == Array(f[14...]), "then the frame's own bytes")
        #expect(EngineDelayLine.metadataOffset([UInt8](repeating: 0, count: TapDevice.vnetHeaderSize) + r.frame,
                                               TapDevice.vnetHeaderSize + r.frame.count) == TapDevice.vnetHeaderSize + 14,
                "the delay line finds it")
    }

    /// Back from the delay line, an IP frame loses its metadata and goes on after the
    /// stage (the program does not run again, the port does not count it again).
    @Test func anIPFrameComesBackAsItLeft() throws {
        let dp = try Self.slowStage()
        let f = ConntrackPipelineTests.tcpFrame(payload: 100)
        let held = try dp.testRun(frame: f, ifindex: Self.lo)
        #expect(held.verdict == Self.redirect && held.frame.count == f.count + 16)
        let back = try Self.comeBack(dp, held.frame)
        #expect(back.verdict == Self.redirect, "pass, a miss: to the representor")
        #expect(back.frame == f)
        let c = dp.programCounters(.vf(0))
        #expect(c.runs == 1 && c.pass == 1 && c.held == 1)
        #expect(dp.portCounters(.vf(0)).rxPackets == 1 && dp.portCounters(.vf(0)).toRepresentor == 1)
    }

    /// A frame that is not IP (ARP here) carries its metadata at its end, as before.
    @Test func anARPFrameCarriesItAtItsEnd() throws {
        let dp = try Self.slowStage()
        var f = [UInt8](repeating: 0, count: 60)
        f.replaceSubrange(0..<14, with: [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 1, 0x08, 0x06])
        let held = try dp.testRun(frame: f, ifindex: Self.lo)
        #expect(held.verdict == Self.redirect && held.frame.count == f.count + 16)
        #expect(Self.le32(held.frame, f.count + 8) == Self.tailMagic)
        let back = try Self.comeBack(dp, held.frame)
        #expect(back.frame == f)
        #expect(dp.programCounters(.vf(0)).held == 1)
    }

    /// `late` (frames the delay line wrote back late, counted in user space) starts from
    /// zero with the program's other counters when a reload loads the program again
    /// (it used to survive the reload while the others were reset).
    @Test func lateStartsFromZeroWithTheOthersAfterAReload() throws {
        let dp = try ProgramStageTests.attached("pass", section: "pass")
        _ = try dp.testRun(frame: PipelineTests.udpFrame(), ifindex: Self.lo)
        for _ in 0..<3 { dp.lateFrames.count(port: Int(PortIndex.vf(0))) }
        var c = dp.programCounters(.vf(0))
        #expect(c.runs == 1 && c.late == 3)
        let size = dp.capacity
        try dp.resize(rules: size.rules * 2, counters: size.counters, encaps: size.encaps, connections: size.connections)
        c = dp.programCounters(.vf(0))
        #expect(dp.attachedProgram(.vf(0)) != nil, "the program survives the reload")
        #expect(c.runs == 0 && c.late == 0, "every counter from zero")
    }
}
