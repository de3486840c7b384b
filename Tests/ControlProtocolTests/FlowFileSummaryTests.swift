import Glibc
import Testing
@testable import ControlProtocol

/// The closing message of a flow file with failures: under skip_sw, which line was
/// refused and what became of the others.
@Suite struct FlowFileSummaryTests {
    func message(total: Int, refusedAt r: Int?, cancelledAfter: Bool) -> String {
        var failures: [(index: Int, error: ControlError)] = []
        if let r {
            failures.append((r, ControlError(errno: EOPNOTSUPP, message: "refused")))
            if cancelledAfter { for i in (r + 1)..<min(total, r + 10) { failures.append((i, ControlError(errno: ECANCELED, message: ""))) } }
        }
        let count = r.map { cancelledAfter ? total - $0 : 1 } ?? 0
        return FlowFileSummary.message(total: total, failureCount: count, failures: failures, line: { Int32($0 + 1) })
    }

    @Test func underSkipSWItSaysWhichLineWasRefusedAndCountsUndoneAndCancelled() {
        #expect(message(total: 2000, refusedAt: 1500, cancelledAfter: true)
                == "line 1501 was refused; under skip_sw the file was undone: the 1500 flows before it were undone and the 499 after it cancelled")
        #expect(message(total: 3, refusedAt: 1, cancelledAfter: true)
                == "line 2 was refused; under skip_sw the file was undone: the flow before it was undone and the flow after it cancelled")
        #expect(message(total: 3, refusedAt: 0, cancelledAfter: true)
                == "line 1 was refused; under skip_sw the file was undone: the 2 flows after it were cancelled")
    }

    /// The last line refused: no request after it to cancel, but the daemon refuses the
    /// commit (ECANCELED, index `total`): the lines before it were undone, not applied.
    @Test func aRefusedLastLineUnderSkipSWSaysTheFileWasUndone() {
        let failures: [(index: Int, error: ControlError)] = [(2, ControlError(errno: ENOSPC, message: "no space")),
                                                             (3, ControlError(errno: ECANCELED, message: "batch aborted"))]
        #expect(FlowFileSummary.message(total: 3, failureCount: 2, failures: failures, line: { Int32($0 + 1) })
                == "line 3 was refused; under skip_sw the file was undone: the 2 flows before it were undone")
    }

    @Test func otherwiseItCountsWhatWasApplied() {
        #expect(message(total: 3, refusedAt: 1, cancelledAfter: false) == "1 of 3 flows failed; the other 2 were applied")
        #expect(message(total: 2, refusedAt: 1, cancelledAfter: false) == "1 of 2 flows failed; the other flow was applied")
        #expect(message(total: 1, refusedAt: 0, cancelledAfter: false) == "1 of 1 flow failed; none was applied")
    }

    @Test func cancelledRequestsGetNoLineOfTheirOwn() {
        #expect(!FlowFileSummary.isReported(ControlError(errno: ECANCELED, message: "")))
        #expect(FlowFileSummary.isReported(ControlError(errno: EOPNOTSUPP, message: "")))
    }
}
