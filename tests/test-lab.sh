#!/usr/bin/env bash
# The lab end to end: `scripts/lab.sh demo` (up, traffic over hardware and VXLAN,
# neighbour change, table-full failure, down) must pass every step, and up/status/
# exec/down must leave no lab namespace or link behind, even after a crash.
# The lab's prefix is ESW_LAB_PREFIX (default eswlab-), so this can run beside another lab.
. "$(dirname "$0")/lib.sh"
LAB="$T_ROOT/scripts/lab.sh"
LABP=${ESW_LAB_PREFIX:-eswlab-}
export ESW_LAB_PREFIX=$LABP
LAB_PIDFILE=/run/esw/${LABP%-}.d/eswd.pid
# leftovers: lab namespaces, then links named with the lab prefix in the root namespace
leftovers() { ip netns list | awk '{print $1}' | grep -c "^$LABP"; ip -o link show | grep -cF "$LABP"; }

if ip netns list | awk '{print $1}' | grep -q "^$LABP"; then
    t_fail "a lab is already up ($LABP*); not touching it (run ESW_LAB_PREFIX=$LABP scripts/lab.sh down)"
    exit 1
fi
trap 'bash "$LAB" down >/dev/null 2>&1; t_cleanup' EXIT

out=$(timeout 300 bash "$LAB" demo 2>&1); rc=$?
echo "$out" >"$T_DIR/demo.log"
check_eq "demo exits 0 (log: demo.log)" 0 "$rc"
check_match "demo reports every step passed" 'demo: [0-9]+ passed, 0 failed' "$out"
check_eq "nothing left after the demo" "0 0" "$(leftovers | tr '\n' ' ' | sed 's/ $//')"

check "lab up" bash "$LAB" up --vfs 2 --miss normal
check_fails "a second up is refused" bash "$LAB" up
check "status" bash "$LAB" status
check "exec: VF0 reaches VF1 (normal mode)" bash "$LAB" exec vm0 ping -c 3 -i 0.2 -W 2 198.19.0.2
check_match "exec sets ESW_CONTROL for the CLIs" 'esw@esw0' "$(bash "$LAB" exec host esw-dpctl show)"
check_eq "root namespace untouched by the lab" 0 "$(ip -o link show | grep -c "$LABP\|esw0v\|pf0vf")"
# A crash: the daemon (the pid in the lab's pid file) is killed; down still cleans everything.
pid=$(cat "$LAB_PIDFILE" 2>/dev/null)
check_match "the lab's pid file names eswd" '^eswd$' "$(cat "/proc/${pid:-0}/comm" 2>/dev/null)"
[ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null; sleep 0.5
check "down after a crash" bash "$LAB" down
check_eq "nothing left after down" "0 0" "$(leftovers | tr '\n' ' ' | sed 's/ $//')"
check_no_match "... not the killed eswd's uplink record either" "uplink=${LABP}up0" "$(cat /run/esw/esw0.uplink 2>/dev/null)"
