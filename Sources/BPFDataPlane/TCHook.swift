import CLibBPF
import Glibc
import NetLinux

/// A netdev's clsact qdisc and the esw filters on it, seen from outside: whether eswd
/// created the qdisc (then it is eswd's to remove), and whether a live process owns the
/// netdev's esw filters.
public enum TCHook {
    /// Creates the clsact qdisc on `ifindex` unless it has one: true when this call
    /// created it.
    public static func createClsact(ifindex: Int32) throws(SystemError) -> Bool {
        let r = clbpf_tc_hook_create(ifindex)
        if r < 0 { throw SystemError("bpf_tc_hook_create(ifindex \(ifindex))", errno: -r) }
        return r == 1
    }

    /// Deletes the clsact qdisc on `ifindex` with every filter still on it.
    public static func destroyClsact(ifindex: Int32) {
        _ = clbpf_tc_hook_destroy(ifindex)
    }

    /// The process that owns the esw filter (handle 0xe5, priority 1) on `netdev`'s
    /// ingress or egress, described as "eswd eswp (pid 1234)"; nil when the netdev has no
    /// esw filter or only one a dead process left.
    ///
    /// Why the filter tells: every eswd attaches one to each netdev it drives (its uplink,
    /// its VF switch sides, its representors) and keeps the program open for its whole
    /// life, while the filter alone keeps it loaded after a SIGKILL. So a program some
    /// process still holds marks a live owner, and one nobody holds marks stale filters a
    /// restart may replace. This needs no state of ours that a crash could leave wrong,
    /// and sees every eswd of the machine whatever its run directory.
    public static func liveOwner(ofNetdev name: String) -> String? {
        let ifindex = Int32(bitPattern: if_nametoindex(name))
        guard ifindex > 0 else { return nil }
        // A side with no filter chain is a plain answer here: libbpf would print the
        // kernel's "Cannot find specified filter chain" to stderr (this runs before any
        // object is loaded, which silences it too).
        libbpf_set_print(nil)
        var programs: Set<UInt32> = []
        for egress: Int32 in [0, 1] {
            var id: UInt32 = 0
            if clbpf_tc_query(ifindex, egress, TCFilter.handle, TCFilter.priority, &id) == 0, id != 0 { programs.insert(id) }
        }
        return Processes.holding(bpfPrograms: programs).first.map(Processes.describe)
    }
}
