import CNetLinux
import Glibc
import NetLinux
import Testing

/// The affinity changes of a bulk stream, read back from /proc/thread-self/status: a
/// client keeping to its CPU, the helpers on it, the control thread off it, and every
/// thread given its affinity back. (A synchronous test body stays on its thread.)
@Suite(.serialized) struct HelperPlacementTests {
    static func allowedCPUs() -> String {
        guard let f = fopen("/proc/thread-self/status", "r") else { return "?" }
        defer { fclose(f) }
        var line = [CChar](repeating: 0, count: 512)
        while fgets(&line, Int32(line.count), f) != nil {
            let s = String(cString: line)
            if s.hasPrefix("Cpus_allowed_list:") { return String(s.dropFirst(18).filter { !$0.isWhitespace }) }
        }
        return "?"
    }

    static var online: Int { sysconf(Int32(_SC_NPROCESSORS_ONLN)) }

    @Test func aPinKeepsTheThreadOnItsCPUUntilReleased() {
        let before = Self.allowedCPUs()
        let pin = CPUPin()
        let cpu = cnl_current_cpu()
        #expect(Self.allowedCPUs() == "\(cpu)")
        pin.release()
        #expect(Self.allowedCPUs() == before)
    }

    @Test func helpersGoToTheNamedCPUAndTheControlThreadOffIt() throws {
        try #require(Self.online >= 2, "needs two CPUs")
        let before = Self.allowedCPUs()
        let placement = HelperPlacement()
        let helper = HelperPlacement.Follower(), control = HelperPlacement.Follower(off: true)
        placement.prefer(1)
        helper.follow(placement)
        #expect(Self.allowedCPUs() == "1")
        helper.follow(placement)  // no change: nothing to do
        #expect(Self.allowedCPUs() == "1")
        placement.prefer(-1)
        helper.follow(placement)
        #expect(Self.allowedCPUs() == before)
        placement.prefer(0)
        control.follow(placement)
        #expect(!Self.allowedCPUs().hasPrefix("0") && Self.allowedCPUs() != before, "off CPU 0: \(Self.allowedCPUs())")
        placement.prefer(-1)
        control.follow(placement)
        #expect(Self.allowedCPUs() == before)
    }
}
