import Glibc
import Testing
@testable import ControlProtocol

@Suite struct CPUPlacementTests {
    @Test func readsTheCPUAProcessLastRanOn() throws {
        let cpus = Int32(sysconf(Int32(_SC_NPROCESSORS_CONF)))
        let cpu = try #require(CPUPlacement.lastCPU(of: getpid()))
        #expect(cpu >= 0 && cpu < cpus)
        // No such process: no answer, not a guess.
        #expect(CPUPlacement.lastCPU(of: Int32.max) == nil)
    }

    /// The thread moves off its CPU, and its affinity is given back: it may move again,
    /// and back to the CPU it left.
    @Test(.enabled(if: sysconf(Int32(_SC_NPROCESSORS_ONLN)) >= 2, "needs two CPUs"))
    func movesOffACPUAndGivesTheAffinityBack() throws {
        let first = CPUPlacement.currentCPU
        #expect(CPUPlacement.moveOff(cpu: first))
        let second = CPUPlacement.currentCPU
        #expect(second != first)
        #expect(CPUPlacement.moveOff(cpu: second))
        #expect(CPUPlacement.currentCPU != second)
        // Nothing to share with: no move, no CPU.
        let before = CPUPlacement.currentCPU
        #expect(CPUPlacement.separate(from: -1) == nil)
        #expect(CPUPlacement.currentCPU == before)
    }
}
