@testable import ESwitch
import Testing

/// Offloaded programs as the driver sees them: per port, through the data plane, and
/// the nic_speed parameter reaching it.
struct PortProgramTests {
    @Test func aProgramIsAttachedToAnExistingPortAndDetached() throws {
        let (sw, dp, _) = try OffloadModelTests.device(.lockstep)
        let p = try sw.attachProgram(.vf(1), objectPath: "/dev/null", section: "drop")
        #expect(p.section == "drop")
        #expect(dp.portPrograms[.vf(1)] == p)
        #expect(sw.attachedProgram(.vf(1)) == p)
        #expect(sw.attachedProgram(.vf(0)) == nil)
        sw.detachProgram(.vf(1))
        #expect(sw.attachedProgram(.vf(1)) == nil)
    }

    @Test func noPortNoProgram() throws {
        let (sw, _, _) = try OffloadModelTests.device(.lockstep)
        #expect(throws: DataPlaneError.self) { try sw.attachProgram(.vf(7), objectPath: "/dev/null", section: nil) }
        #expect(throws: DataPlaneError.self) { try sw.attachProgram(.vf(0), objectPath: "/nonexistent.o", section: nil) }
    }

    @Test func nicSpeedReachesTheDataPlane() throws {
        let (sw, dp, _) = try OffloadModelTests.device(.lockstep)
        var params = sw.params
        try params.set("nic_speed", "25")
        sw.params = params
        #expect(dp.nicSpeed == 25)
        #expect(sw.params.value(of: "nic_speed") == "25")
        #expect(throws: DeviceParams.ParamError.self) { try params.set("nic_speed", "0") }
        #expect(throws: DeviceParams.ParamError.self) { try params.set("nic_speed", "101") }
    }

    @Test func nicQueueReachesTheDataPlane() throws {
        let (sw, dp, _) = try OffloadModelTests.device(.lockstep)
        #expect(sw.params.value(of: "nic_queue_us") == "1000", "1 ms by default")
        var params = sw.params
        try params.set("nic_queue_us", "250")
        sw.params = params
        #expect(dp.nicQueueMicroseconds == 250)
        try params.set("nic_queue_us", "0")
        sw.params = params
        #expect(dp.nicQueueMicroseconds == 0, "0: only an idle engine takes a frame")
        #expect(throws: DeviceParams.ParamError.self) { try params.set("nic_queue_us", "-1") }
        #expect(throws: DeviceParams.ParamError.self) { try params.set("nic_queue_us", "1000001") }
        #expect(throws: DeviceParams.ParamError.self) { try params.set("nic_queue_us", "1ms") }
        #expect(DeviceParams.names.contains("nic_queue_us"))
    }

    @Test func countersSayWhatNoVerdictCovers() {
        let c = PortProgramCounters(values: [10, 4, 3, 1, 1, 0])
        #expect(c.unreported == 1)
        #expect(c.values == [10, 4, 3, 1, 1, 0, 0, 0, 0, 0], "an older daemon's list: no engine counters")
        let e = PortProgramCounters(values: [10, 10, 0, 0, 0, 0, 7, 5, 5000])
        #expect(e.overflow == 7 && e.held == 5 && e.heldNanoseconds == 5000 && e.unreported == 0)
        #expect(PortProgramCounters.names.count == e.values.count)
    }
}
