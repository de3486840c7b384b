import ESwitch
import ODP
@testable import OVSDatapath
import Packet
import Testing

/// Refusals the datapath must report as they are: a modify the hardware refuses (no
/// retry that hides it), a full marks table, a partial rule refused late, and what
/// trace says of a partial flow.
struct OffloadRefusalTests {
    typealias P = OffloadPathTests
    static let key = "in_port(1),eth(),eth_type(0x0800),ipv4(src=198.18.4.1,frag=no)"

    /// OVS's tc modify deletes the old filter and adds the new one; a refused add leaves
    /// the flow to the software datapath. The injected fault is the answer, not retried.
    @Test func aModifyTheHardwareRefusesGoesToSoftwareWithItsNewActions() throws {
        let (d, sw, dp) = try P.datapath()
        let f = try P.put(d, Self.key, "1")
        #expect(f.offload.isOffloaded)
        sw.params.failNextOffloads = 1
        try P.modify(d, Self.key, "2")
        let now = try #require(d.flow(ufid: f.ufid))
        #expect(sw.params.failNextOffloads == 0, "the fault was consumed")
        #expect(d.offloadStatus(of: now) == .software(reason: "injected fault"), "\(d.offloadStatus(of: now))")
        #expect(ActionFormatter().format(now.actionBytes) == "2", "the new actions, in software")
        #expect(dp.rules.isEmpty, "the old rule left the hardware")
        #expect(sw.tables.maskedPool.occupancy == 0 && sw.tables.counterPool.occupancy == 0)
    }

    /// A create-only put of a new match with a ufid in use is refused as in use before
    /// anything of it reaches the hardware: no write, no removal, the table, the hardware
    /// and the pools as before it.
    @Test func aNewMatchWithAUFIDInUseIsRefusedAndLeavesNothing() throws {
        let (d, sw, dp) = try P.datapath()
        let f = try P.put(d, Self.key, "1")
        let k = try ODPText.parseKey("in_port(1),eth(),eth_type(0x0800),ipv4(src=198.18.4.2,frag=no)")
        guard case .success(let m) = FlowMatch.fromAttributes(key: k.key, mask: k.mask, vlanLimit: ODPConstants.datapathVLANLimit) else {
            Issue.record("bad key")
            return
        }
        #expect {
            try d.putFlow(match: m, ufid: f.ufid, actions: try ODPText.parseActions("2"), options: Datapath.PutOptions())
        } throws: { e in
            guard let e = e as? DatapathError else { return false }
            return e.errno == 17 && e.message.contains("in use by another flow")
        }
        #expect(sw.offloadStatistics.operations == 1, "the refused put never asked the hardware")
        #expect(d.flowCount == 1 && d.flow(ufid: f.ufid) === f)
        #expect(d.flow(match: m) == nil)
        #expect(dp.rules.count == 1 && dp.rules[0].actions == [.forward(.vf(0))])
        #expect(sw.tables.maskedPool.occupancy == 1 && sw.tables.counterPool.occupancy == 1)
    }

    /// Under skip_sw the modify fails with the refusal's errno; the flow stays as it was.
    @Test func underSkipSWARefusedModifyFailsAndTheOldFlowStaysInHardware() throws {
        let (d, sw, dp) = try P.datapath(policy: .skipSW)
        let f = try P.put(d, Self.key, "1")
        sw.params.failNextOffloads = 1
        #expect {
            try P.modify(d, Self.key, "2")
        } throws: { ($0 as? DatapathError)?.errno == 5 }
        let now = try #require(d.flow(ufid: f.ufid))
        #expect(now === f)
        #expect(ActionFormatter().format(now.actionBytes) == "1")
        #expect(d.offloadStatus(of: now) == .offloaded)
        #expect(dp.rules.count == 1 && dp.rules[0].actions == [.forward(.vf(0))])
        #expect(sw.tables.maskedPool.occupancy == 1)
    }

    /// A partial flow modified into another partial one: the refused replacement of the
    /// marking rule is the answer too, and the mark goes back.
    @Test func aRefusedReplacementOfAMarkingRuleLeavesTheFlowInSoftware() throws {
        let (d, sw, dp) = try P.datapath()
        let f = try P.put(d, Self.key, "trunc(100),2")
        #expect(d.offloadStatus(of: f) == .partial)
        sw.params.failNextOffloads = 1
        try P.modify(d, Self.key, "trunc(200),2")
        let now = try #require(d.flow(ufid: f.ufid))
        #expect(d.offloadStatus(of: now) == .software(reason: "injected fault"), "\(d.offloadStatus(of: now))")
        #expect(now.hintMark == 0 && d.marks.count == 0)
        #expect(dp.rules.isEmpty)
        #expect(sw.tables.markPool.occupancy == 0)
    }

    /// With the marks table full, the reason says so (not only the action).
    @Test func aFullMarksTableIsNamedInTheReason() throws {
        var profile = HardwareProfile()
        profile.marks = 1
        let (d, _, _) = try P.datapath(profile: profile)
        let a = try P.put(d, "in_port(1),eth(),eth_type(0x0800),ipv4(src=198.18.4.1,frag=no)", "trunc(100),2")
        #expect(d.offloadStatus(of: a) == .partial)
        let b = try P.put(d, "in_port(1),eth(),eth_type(0x0800),ipv4(src=198.18.4.2,frag=no)", "trunc(2000),1")
        guard case .software(let why) = d.offloadStatus(of: b) else { Issue.record("\(d.offloadStatus(of: b))"); return }
        #expect(why.contains("no space in marks"), "\(why)")
        #expect(why.hasPrefix("unsupported action trunc"), "\(why)")
    }

    /// A ct_tuple4 match is refused by its name, not by the words it is kept in.
    @Test func aCTTupleMatchIsRefusedByItsName() throws {
        let (d, _, _) = try P.datapath()
        d.setPartialOffload(false)
        let f = try P.put(d, "recirc_id(5),ct_state(+est+trk),ct_tuple4(src=198.19.0.1,proto=6),in_port(1),eth(),"
                          + "eth_type(0x0800),ipv4(frag=no)", "2")
        guard case .software(let why) = d.offloadStatus(of: f) else { Issue.record("\(d.offloadStatus(of: f))"); return }
        #expect(why == "unsupported match ct_tuple4", "\(why)")
    }

    /// trace's software section says what dump-flows says of a partial flow.
    @Test func traceCallsAPartialFlowPartial() throws {
        let (d, _, _) = try P.datapath()
        let f = try P.put(d, "in_port(1),eth(),eth_type(0x0800),ipv4(frag=no)", "trunc(100),2")
        #expect(d.offloadStatus(of: f) == .partial)
        let port = try #require(d.port(named: "pf0vf0"))
        // The software stage, as the frame the marking rule sent up reaches it (the
        // representor of this test's detached port is not there to take it).
        let t = ConntrackOffloadTests.text(PacketTracer(dp: d).softwareStage(ConntrackOffloadTests.tcp(flags: 0x02, seq: 1, ack: 0),
                                                                             vport: port, tunnel: nil, depth: 0))
        #expect(t.contains("offloaded=partial"), "\(t)")
    }
}

/// The same under the asynchronous models.
struct OffloadRefusalModelTests {
    /// A skip_sw flow whose rule is still pending: the packet reaches software, which
    /// drops it (a hw-only drop). trace used to run the flow's actions and report an
    /// output the packet never takes.
    @Test func traceDropsWhatSoftwareDropsForAPendingSkipSWFlow() throws {
        let (d, _, _, _) = try OffloadModelPathTests.datapath(.async, policy: .skipSW)
        let f = try OffloadPathTests.put(d, "in_port(1),eth(),eth_type(0x0800),ipv4(frag=no)", "2")
        guard case .pending = d.offloadStatus(of: f) else { Issue.record("\(d.offloadStatus(of: f))"); return }
        let port = try #require(d.port(named: "pf0vf0"))
        let tracer = PacketTracer(dp: d)
        let t = ConntrackOffloadTests.text(tracer.softwareStage(ConntrackOffloadTests.tcp(flags: 0x02, seq: 1, ack: 0),
                                                                vport: port, tunnel: nil, depth: 0))
        #expect(t.contains("skip_sw="), "\(t)")
        #expect(!t.contains("output:"), "\(t)")
        #expect(tracer.outputs.isEmpty)
        #expect(tracer.verdicts == ["software: dropped (skip_sw flow, not run in software)"])
    }

    /// A marking rule the hardware refuses late gives its mark back at once (the marks
    /// table counted it until the flow was deleted).
    @Test func aMarkingRuleRefusedLateGivesItsMarkBack() throws {
        let (d, sw, _, _) = try OffloadModelPathTests.datapath(.async, policy: .none)
        sw.params.failNextOffloads = 1
        let f = try OffloadPathTests.put(d, "in_port(1),eth(),eth_type(0x0800),ipv4(frag=no)", "trunc(100),2")
        #expect(sw.tables.markPool.occupancy == 1)
        sw.drainHardware()
        guard case .failed = d.offloadStatus(of: f) else { Issue.record("\(d.offloadStatus(of: f))"); return }
        #expect(sw.tables.markPool.occupancy == 0, "no rule in hardware holds the mark")
        // A second partial flow, programmed: one mark.
        let g = try OffloadPathTests.put(d, "in_port(2),eth(),eth_type(0x0800),ipv4(frag=no)", "trunc(100),1")
        sw.drainHardware()
        #expect(d.offloadStatus(of: g) == .partial)
        #expect(sw.tables.markPool.occupancy == 1)
        // Modifying the failed flow into another partial one takes a fresh mark.
        try OffloadPathTests.modify(d, "in_port(1),eth(),eth_type(0x0800),ipv4(frag=no)", "trunc(200),2")
        sw.drainHardware()
        let f2 = try #require(d.flow(ufid: f.ufid))
        #expect(d.offloadStatus(of: f2) == .partial, "\(d.offloadStatus(of: f2))")
        #expect(sw.tables.markPool.occupancy == 2)
        d.deleteFlow(f2)
        d.deleteFlow(g)
        sw.drainHardware()
        #expect(sw.tables.markPool.occupancy == 0)
    }
}
