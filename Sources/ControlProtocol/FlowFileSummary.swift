#if canImport(Glibc)
import Glibc
#endif

/// The closing message of `add-flows`/`mod-flows`/`del-flows FILE` when requests of the
/// file failed: what happened to the rest of it.
public enum FlowFileSummary {
    /// `failures`: the first failures (request index, error) as `RequestStream` keeps
    /// them, `failureCount` how many there were, `total` the file's requests, `line` a
    /// request's line in the file. Under skip_sw the first refusal undid the batch
    /// (the requests before it) and the daemon cancelled every later one (ECANCELED),
    /// the commit included (index `total`: the refused request may have been the last).
    public static func message(total: Int, failureCount: Int, failures: [(index: Int, error: ControlError)],
                               line: (Int) -> Int32) -> String {
        if failures.contains(where: { $0.error.errno == ECANCELED }) {
            guard let refused = failures.first(where: { $0.error.errno != ECANCELED }) else {
                return "\(failureCount) of \(total) flows failed; under skip_sw the file was undone"
            }
            let before = refused.index, after = total - refused.index - 1
            let undone = before == 1 ? "the flow before it was undone" : "the \(before) flows before it were undone"
            let rest: String
            switch (before, after) {
            case (0, 0): rest = "it was the only flow"
            case (0, _): rest = after == 1 ? "the flow after it was cancelled" : "the \(after) flows after it were cancelled"
            case (_, 0): rest = undone
            default: rest = undone + (after == 1 ? " and the flow after it cancelled" : " and the \(after) after it cancelled")
            }
            return "line \(line(refused.index)) was refused; under skip_sw the file was undone: \(rest)"
        }
        let applied = total - failureCount
        let others = applied == 0 ? "none was applied" : applied == 1 ? "the other flow was applied" : "the other \(applied) were applied"
        return "\(failureCount) of \(total) flow\(total == 1 ? "" : "s") failed; \(others)"
    }

    /// Whether a failure is worth its own line: a cancelled request says nothing the
    /// summary does not.
    public static func isReported(_ error: ControlError) -> Bool { error.errno != ECANCELED }
}
