/// What a start has changed outside the process, undone (last first) if a later step
/// fails: netdevs, tc hooks and the uplink's settings outlive the process, the rest
/// (TAPs, sockets, programs without a filter) goes when it exits.
final class StartupRollback {
    private var steps: [() -> Void] = []
    private var done = false

    func add(_ undo: @escaping () -> Void) { steps.append(undo) }

    /// The start succeeded: nothing is undone.
    func commit() { done = true }

    /// Undoes every step unless the start was committed (call it from a `defer`).
    func runUnlessCommitted() {
        guard !done else { return }
        done = true
        for undo in steps.reversed() { undo() }
    }
}
