import BPFDataPlane
import ESwitch
import Glibc
import Packet
import Testing

/// The NIC's programmable stage under BPF_PROG_TEST_RUN: the example programs of
/// bpf/examples (compiled here with the toolchain's clang by
/// scripts/build-example-progs.sh) attached to VF0's port, their verdicts and counters.
@Suite(.enabled(if: getuid() == 0, "loading BPF programs needs root"), .serialized)
struct ProgramStageTests {
    static let root: String = {
        var parts = "\(#filePath)".split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(3)  // Tests/BPFDataPlaneTests/ProgramStageTests.swift
        return parts.joined(separator: "/")
    }()

    /// The examples, compiled once per test process into .build (-DREDIRECT_PORT=2: VF1).
    static let programs: String? = {
        let dir = "\(root)/.build/esw-stage-tests"
        guard system("sh '\(root)/scripts/build-example-progs.sh' '\(dir)' -DREDIRECT_PORT=2 >/dev/null 2>&1") == 0 else {
            return nil
        }
        return dir
    }()

    /// The redirect example to a port index the NIC does not have (63).
    static let redirectToNowhere: String? = {
        let dir = "\(root)/.build/esw-stage-tests-63"
        guard system("sh '\(root)/scripts/build-example-progs.sh' '\(dir)' -DREDIRECT_PORT=63 >/dev/null 2>&1") == 0 else {
            return nil
        }
        return "\(dir)/redirect.o"
    }()

    static func attached(_ name: String, section: String) throws -> BPFDataPlane {
        let dp = try PipelineTests.dataPlane(ingress: .vf(0))
        let dir = try #require(programs, "the example programs compile")
        _ = try dp.attachProgram(.vf(0), objectPath: "\(dir)/\(name).o", section: section)
        return dp
    }

    @Test func dropDropsAndCounts() throws {
        let dp = try Self.attached("drop", section: "drop")
        let r = try dp.testRun(frame: PipelineTests.udpFrame(), ifindex: PipelineTests.lo)
        #expect(r.verdict == PipelineTests.shot)
        let c = dp.programCounters(.vf(0))
        #expect(c.runs == 1 && c.drop == 1 && c.unreported == 0)
        #expect(dp.portCounters(.vf(0)).rxPackets == 1, "the frame is counted once on the port, not again on its way back")
    }

    @Test func passGoesOnToTheTables() throws {
        let dp = try Self.attached("pass", section: "pass")
        let f = PipelineTests.udpFrame()
        try dp.program(PipelineTests.rule(f, inPort: .vf(0), actions: [.drop]))
        #expect(try dp.testRun(frame: f, ifindex: PipelineTests.lo).verdict == PipelineTests.shot, "the rule drops it")
        let other = PipelineTests.udpFrame(dst: 0xC613_0009)
        #expect(try dp.testRun(frame: other, ifindex: PipelineTests.lo).verdict == PipelineTests.redirect, "a miss: representor")
        #expect(dp.programCounters(.vf(0)).pass == 2)
        #expect(dp.portCounters(.vf(0)).toRepresentor == 1)
    }

    @Test func theResponderSendsTheAnswerBack() throws {
        let dp = try Self.attached("dns", section: "dns")
        let r = try dp.testRun(frame: PipelineTests.udpFrame(dport: 53), ifindex: PipelineTests.lo)
        #expect(r.verdict == PipelineTests.redirect)
        r.frame.withUnsafeBytes { p in
            #expect(p.baseAddress!.be32(26) == 0xC613_0002 && p.baseAddress!.be32(30) == 0xC613_0001, "addresses swapped")
            #expect(p.baseAddress!.be16(34) == 53 && p.baseAddress!.be16(36) == 1234, "ports swapped")
            #expect(p.baseAddress!.be16(44) & 0x800F == 0x8003, "QR and NXDOMAIN set")
        }
        #expect(PipelineTests.udpChecksumOK(r.frame, l3: 14))
        #expect(dp.programCounters(.vf(0)).tx == 1)
        #expect(dp.portCounters(.vf(0)).txPackets == 1, "sent out of the port it came in")
    }

    @Test func redirectGoesOutOfAnotherPort() throws {
        let dp = try Self.attached("redirect", section: "redirect")
        #expect(try dp.testRun(frame: PipelineTests.udpFrame(), ifindex: PipelineTests.lo).verdict == PipelineTests.redirect)
        #expect(dp.programCounters(.vf(0)).redirect == 1)
        #expect(dp.portCounters(.vf(1)).txPackets == 1)
    }

    /// A redirect to a port index with no port is a verdict the NIC cannot act on:
    /// counted invalid (it used to be counted as a redirect, then dropped at output).
    @Test func aRedirectToNoPortIsInvalid() throws {
        let dp = try PipelineTests.dataPlane(ingress: .vf(0))
        _ = try dp.attachProgram(.vf(0), objectPath: try #require(Self.redirectToNowhere), section: "redirect")
        #expect(try dp.testRun(frame: PipelineTests.udpFrame(), ifindex: PipelineTests.lo).verdict == PipelineTests.shot)
        let c = dp.programCounters(.vf(0))
        #expect(c.runs == 1 && c.invalid == 1 && c.redirect == 0)
        #expect(dp.portCounters(.vf(0)).rxDropped == 1, "the port counts the drop")
    }

    @Test func aSlowNICGivesTheSameVerdicts() throws {
        let dp = try Self.attached("drop", section: "drop")
        try dp.setNICSpeed(10)
        #expect(try dp.testRun(frame: PipelineTests.udpFrame(), ifindex: PipelineTests.lo).verdict == PipelineTests.shot)
        #expect(dp.programCounters(.vf(0)).drop == 1)
    }

    /// The engine's queue (bpf/prog_stage.h): with none at all (nic_queue_us 0) and an
    /// engine at 1 %, each run keeps the engine busy 100 times its run time, and a frame
    /// that finds it busy is dropped before its program runs.
    @Test func aFullEngineDropsBeforeTheProgramRuns() throws {
        let dp = try Self.attached("loop", section: "loop")
        try dp.setNICSpeed(1)
        try dp.setNICQueue(microseconds: 0)
        let f = PipelineTests.udpFrame()
        for _ in 0..<50 { #expect(try dp.testRun(frame: f, ifindex: PipelineTests.lo).verdict == PipelineTests.shot) }
        let c = dp.programCounters(.vf(0))
        #expect(c.overflow > 0, "back-to-back frames find the engine busy")
        #expect(c.runs + c.overflow == 50 && c.drop == c.runs)
        #expect(dp.portCounters(.vf(0)).rxDropped == c.overflow, "the port counts them as rx drops")
        #expect(dp.engineBusyUntil() > 0)
    }

    /// A queue that holds them: every frame runs. With no delay line (none here) the frames
    /// that would wait go on at once, and none is counted as held.
    @Test func aQueueTakesTheFramesAndNothingIsHeldWithoutADelayLine() throws {
        let dp = try Self.attached("pass", section: "pass")
        try dp.setNICSpeed(1)
        try dp.setNICQueue(microseconds: 1_000_000)
        for _ in 0..<20 {
            #expect(try dp.testRun(frame: PipelineTests.udpFrame(), ifindex: PipelineTests.lo).verdict == PipelineTests.redirect)
        }
        let c = dp.programCounters(.vf(0))
        #expect(c.runs == 20 && c.pass == 20 && c.overflow == 0 && c.held == 0)
        #expect(dp.delayLineInterface == nil)
    }

    @Test func theQueueParameterIsBounded() throws {
        let dp = try PipelineTests.dataPlane(ingress: .vf(0))
        #expect(throws: DataPlaneError.self) { try dp.setNICQueue(microseconds: 1_000_001) }
        #expect(throws: DataPlaneError.self) { try dp.setNICQueue(microseconds: -1) }
        try dp.setNICQueue(microseconds: 0)
    }

    @Test func detachedMeansPlainForwarding() throws {
        let dp = try Self.attached("drop", section: "drop")
        dp.detachProgram(.vf(0))
        #expect(dp.attachedProgram(.vf(0)) == nil)
        #expect(try dp.testRun(frame: PipelineTests.udpFrame(), ifindex: PipelineTests.lo).verdict == PipelineTests.redirect)
    }

    @Test func theVerifiersRefusalIsTheError() throws {
        let dp = try PipelineTests.dataPlane(ingress: .vf(0))
        let dir = try #require(Self.programs)
        #expect {
            _ = try dp.attachProgram(.vf(0), objectPath: "\(dir)/unchecked.o", section: "unchecked")
        } throws: { error in
            guard case .programRefused(let m)? = error as? DataPlaneError else { return false }
            return m.contains("invalid access to packet")
        }
        #expect(dp.attachedProgram(.vf(0)) == nil)
    }
}
