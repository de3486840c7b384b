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

    @Test func countersSayWhatNoVerdictCovers() {
        let c = PortProgramCounters(values: [10, 4, 3, 1, 1, 0])
        #expect(c.unreported == 1)
        #expect(c.values == [10, 4, 3, 1, 1, 0])
    }
}
