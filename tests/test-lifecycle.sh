#!/usr/bin/env bash
# The daemon cleans up after itself: SIGTERM and SIGINT remove every netdev it made
# (and give the uplink back); after SIGKILL a restart with the same name starts clean.
. "$(dirname "$0")/lib.sh"

t_ns host vm0
ip -n "${T_PREFIX}host" link add up0 type veth peer name wire0
ip -n "${T_PREFIX}host" link set wire0 up
ours() { ip -n "${T_PREFIX}$1" -o link show | awk -F': ' '{print $2}' | sed 's/@.*//' | grep -E '^(esw0v[0-9]+|pf0vf[0-9]+|p0|esw0)$' | sort | tr '\n' ' '; }
noarp() { ip -n "${T_PREFIX}host" link show up0 | grep -c NOARP; }

check_eq "uplink starts with ARP on" 0 "$(noarp)"
for sig in TERM INT; do
    t_eswd host --vfs 2 --uplink up0 --mode switchdev
    ip -n "${T_PREFIX}host" link set esw0v1 netns "${T_PREFIX}vm0"
    check_eq "netdevs while running ($sig)" "esw0 esw0v0 p0 pf0vf0 pf0vf1 " "$(ours host)"
    check_eq "VF moved to a VM namespace ($sig)" "esw0v1 " "$(ours vm0)"
    check_eq "uplink kept out of ARP while attached" 1 "$(noarp)"
    kill -$sig "$ESWD_PID"
    t_wait "eswd exits on SIG$sig" 10 bash -c "! kill -0 $ESWD_PID 2>/dev/null"
    check_eq "SIG$sig: nothing left in the daemon's namespace" "" "$(ours host)"
    check_eq "SIG$sig: nothing left in the VM namespace" "" "$(ours vm0)"
    check_eq "SIG$sig: uplink ARP restored" 0 "$(noarp)"
    check_fails "SIG$sig: control socket removed" test -S "$ESW_CONTROL"
done

t_eswd host --vfs 2 --uplink up0 --mode switchdev
kill -KILL "$ESWD_PID"
t_wait "eswd gone after SIGKILL" 10 bash -c "! kill -0 $ESWD_PID 2>/dev/null"
t_eswd host --vfs 2 --uplink up0 --mode switchdev
check_eq "restart after SIGKILL: one clean set of netdevs" "esw0 esw0v0 esw0v1 p0 pf0vf0 pf0vf1 " "$(ours host)"
check "restarted daemon serves" dpctl show
check_match "a second daemon with the same name is refused" 'in use by a running process' \
    "$(t_in host "$ESW_BIN/eswd" --control "$T_DIR/second.sock" --vfs 2 --uplink up0 2>&1 | tail -3)"
check "the first keeps serving" dpctl show
kill -TERM "$ESWD_PID"
t_wait "eswd exits" 10 bash -c "! kill -0 $ESWD_PID 2>/dev/null"
check_eq "clean after the last stop" "" "$(ours host)"

# Leftovers of our names: a persistent TAP is removed at start; a netdev of another
# kind is never touched (the daemon refuses to start).
ip -n "${T_PREFIX}host" tuntap add dev esw0v0 mode tap
t_eswd host --vfs 2 --uplink up0 --mode switchdev
check_match "stale persistent TAP replaced by a live VF" 'persist off' "$(ip -n "${T_PREFIX}host" -d link show esw0v0)"
check_match "removal logged" 'removed stale netdev' "$(cat "$T_DIR/eswd.log")"
kill -TERM "$ESWD_PID"
t_wait "eswd exits" 10 bash -c "! kill -0 $ESWD_PID 2>/dev/null"
ip -n "${T_PREFIX}host" link add esw0v1 type veth peer name eswpeer
out=$(t_in host "$ESW_BIN/eswd" --control "$T_DIR/third.sock" --vfs 2 --uplink up0 2>&1 | tail -2)
check_match "foreign netdev with our name: refused" 'esw0v1 exists and is not ours \(kind veth\)' "$out"
check_match "and left alone" 'esw0v1@eswpeer' "$(ip -n "${T_PREFIX}host" link show esw0v1)"
