# scripts/netns.sh — sourced by tests/lib.sh, lab.sh, bench.sh and bench-neigh.sh:
# tearing down what they started, the one way that leaves nothing behind.

# esw_stop PID...: SIGTERM, up to 5 s to exit, then SIGKILL.
esw_stop() {
    local p
    [ $# -gt 0 ] || return 0
    kill "$@" 2>/dev/null
    for p in "$@"; do
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$p" 2>/dev/null
    done
    return 0
}

# esw_del_netns NS...: kills what still runs in each namespace, deletes its links, then
# the namespace. Links go first: a netns deletion moves what it cannot destroy
# (persistent TAPs, e.g. an OVS userspace bridge's internal ports) into the root
# namespace. Fails if a namespace could not be deleted.
esw_del_netns() {
    local n rc=0
    for n in "$@"; do
        ip netns pids "$n" 2>/dev/null | xargs -r kill -9 2>/dev/null
        ip -n "$n" -o link show 2>/dev/null | awk -F': ' '{print $2}' | sed 's/@.*//' | grep -vx lo |
            xargs -r -n1 ip -n "$n" link del 2>/dev/null
        if ip netns list 2>/dev/null | awk '{print $1}' | grep -qx "$n"; then ip netns del "$n" 2>/dev/null || rc=1; fi
    done
    return $rc
}
