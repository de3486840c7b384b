#!/usr/bin/env bash
# The daemon cleans up after itself: SIGTERM and SIGINT remove every netdev it made
# (and give the uplink back); after SIGKILL a restart with the same name starts clean.
. "$(dirname "$0")/lib.sh"

t_ns host vm0
ip -n "${T_PREFIX}host" link add up0 type veth peer name wire0
ip -n "${T_PREFIX}host" link set wire0 up
ours() { ip -n "${T_PREFIX}$1" -o link show | awk -F': ' '{print $2}' | sed 's/@.*//' | grep -E '^(esw0v[0-9]+|esw0sw[0-9]+|pf0vf[0-9]+|p0|esw0)$' | sort | tr '\n' ' '; }
# esw tc filters (handle 0xe5) on a netdev of the daemon's namespace: esw_filters DEV [ingress|egress]
esw_filters() { tc -n "${T_PREFIX}host" filter show dev "$1" "${2:-ingress}" 2>/dev/null | grep -c 'handle 0xe5 .*esw_'; }
# The ids of the programs on this daemon's filters (the pipeline and the representors' one).
our_prog_ids() {
    { tc -n "${T_PREFIX}host" filter show dev up0 ingress; tc -n "${T_PREFIX}host" filter show dev p0 egress; } 2>/dev/null |
        grep -o ' id [0-9]*' | awk '{print $2}' | sort -u | tr '\n' ' '
}
# How many of the programs with these ids are still loaded (the kernel frees a program
# after an RCU grace period: wait up to 3 s). Other eswd's on the machine do not count.
programs_left() {
    local n i id
    for i in $(seq 30); do
        n=0
        for id in "$@"; do bpftool prog show id "$id" >/dev/null 2>&1 && n=$((n + 1)); done
        [ "$n" -eq 0 ] && break
        sleep 0.1
    done
    echo "$n"
}
# 1 when the netdev has a clsact qdisc.
clsact() { tc -n "${T_PREFIX}host" qdisc show dev "$1" 2>/dev/null | grep -c '^qdisc clsact'; }
noarp() { ip -n "${T_PREFIX}host" link show up0 | grep -c NOARP; }
ipv6_off() { t_in host cat /proc/sys/net/ipv6/conf/up0/disable_ipv6; }

check_eq "uplink starts with ARP on" 0 "$(noarp)"
for sig in TERM INT; do
    t_eswd host --vfs 2 --uplink up0 --mode switchdev
    ip -n "${T_PREFIX}host" link set esw0v1 netns "${T_PREFIX}vm0"
    check_eq "netdevs while running ($sig)" "esw0 esw0sw0 esw0sw1 esw0v0 p0 pf0vf0 pf0vf1 " "$(ours host)"
    check_eq "pipeline on the uplink ($sig)" 1 "$(esw_filters up0)"
    check_eq "pipeline on the VF switch sides and representors ($sig)" "1 1 1 1 1" "$(echo $(esw_filters esw0sw0) $(esw_filters esw0sw1) $(esw_filters p0 egress) $(esw_filters pf0vf0 egress) $(esw_filters pf0vf1 egress))"
    check_eq "VF moved to a VM namespace ($sig)" "esw0v1 " "$(ours vm0)"
    check_eq "uplink kept out of ARP while attached" 1 "$(noarp)"
    ids=$(our_prog_ids)
    check_eq "two data-plane programs ($sig)" 2 "$(echo $ids | wc -w)"
    kill -$sig "$ESWD_PID"
    t_wait "eswd exits on SIG$sig" 10 bash -c "! kill -0 $ESWD_PID 2>/dev/null"
    check_eq "SIG$sig: nothing left in the daemon's namespace" "" "$(ours host)"
    check_eq "SIG$sig: nothing left in the VM namespace" "" "$(ours vm0)"
    check_eq "SIG$sig: no tc filter left on the uplink" 0 "$(esw_filters up0)"
    check_eq "SIG$sig: no data-plane program left loaded" 0 "$(programs_left $ids)"
    check_eq "SIG$sig: uplink ARP restored" 0 "$(noarp)"
    check_fails "SIG$sig: control socket removed" test -S "$ESW_CONTROL"
    check_eq "SIG$sig: the clsact qdisc eswd added is gone from the uplink" 0 "$(clsact up0)"
done

# Started from a script that ignores and blocks SIGQUIT (both survive exec): eswd sets
# the dispositions it relies on itself, and SIGQUIT stops it cleanly.
ip netns exec "${T_PREFIX}host" /usr/bin/python3 -c '
import os, signal, sys
signal.signal(signal.SIGQUIT, signal.SIG_IGN)
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGQUIT, signal.SIGTERM})
os.execv(sys.argv[1], sys.argv[1:])' "$ESW_BIN/eswd" --control "$ESW_CONTROL" --vfs 2 --uplink up0 --mode switchdev \
    >>"$T_DIR/eswd.log" 2>&1 &
ESWD_PID=$!
T_PIDS+=("$ESWD_PID")
t_wait "eswd started with SIGQUIT ignored answers" 10 "$ESW_BIN/esw-devlink" dev show
ignored=$(awk '/^SigIgn:/{print $2}' /proc/$ESWD_PID/status)
check_eq "SIGQUIT no longer ignored in eswd (SigIgn bit 3)" 0 "$(( 0x$ignored & 0x4 ))"
kill -QUIT "$ESWD_PID"
t_wait "eswd exits on SIGQUIT" 10 bash -c "! kill -0 $ESWD_PID 2>/dev/null"
check_fails "SIGQUIT from an ignoring parent stops eswd" kill -0 "$ESWD_PID"
check_eq "SIGQUIT: stopped cleanly, nothing left" "" "$(ours host)"
check_eq "SIGQUIT: uplink ARP restored" 0 "$(noarp)"

check_eq "uplink starts with IPv6 on" 0 "$(ipv6_off)"
t_eswd host --vfs 2 --uplink up0 --mode switchdev
check_eq "uplink IPv6 off while attached" 1 "$(ipv6_off)"
killed_ids=$(our_prog_ids)
kill -KILL "$ESWD_PID"
t_wait "eswd gone after SIGKILL" 10 bash -c "! kill -0 $ESWD_PID 2>/dev/null"
check_eq "after SIGKILL the uplink is still altered" "1 1" "$(noarp) $(ipv6_off)"
t_eswd host --vfs 2 --uplink up0 --mode switchdev
check_eq "restart after SIGKILL: one clean set of netdevs" "esw0 esw0sw0 esw0sw1 esw0v0 esw0v1 p0 pf0vf0 pf0vf1 " "$(ours host)"
check_eq "restart after SIGKILL: one filter on the uplink, the killed one replaced" 1 "$(esw_filters up0)"
check_eq "restart after SIGKILL: the killed daemon's programs are gone" 0 "$(programs_left $killed_ids)"
check_match "restart knows the uplink's settings from before the crash" 'uplink settings restored' "$(cat "$T_DIR/eswd.log")"
check "restarted daemon serves" dpctl show
refusal=$(t_in host "$ESW_BIN/eswd" --control "$T_DIR/second.sock" --vfs 2 --uplink up0 2>&1 | tail -3)
check_match "a second daemon with the same name is refused" 'uplink up0 is in use by eswd esw0 \(pid [0-9]+\)' "$refusal"
check_no_match "... with its reason alone (no libbpf chatter about a missing filter chain)" 'libbpf' "$refusal"
check "the first keeps serving" dpctl show
ids=$(our_prog_ids)
kill -TERM "$ESWD_PID"
t_wait "eswd exits" 10 bash -c "! kill -0 $ESWD_PID 2>/dev/null"
check_eq "clean after the last stop" "" "$(ours host)"
check_eq "no tc filter left on the uplink" 0 "$(esw_filters up0)"
check_eq "no data-plane program left loaded" 0 "$(programs_left $ids)"
check_eq "the clean stop after a SIGKILL gives the uplink its original ARP and IPv6" "0 0" "$(noarp) $(ipv6_off)"
check_fails "the uplink record is gone after a clean stop" test -e "$T_DIR/esw0.uplink"
check_eq "SIGKILL, restart, clean stop: the clsact qdisc the killed run added is gone" 0 "$(clsact up0)"

# Leftovers of our names: a persistent TAP is removed at start; a netdev of another
# kind is never touched (the daemon refuses to start).
ip -n "${T_PREFIX}host" tuntap add dev pf0vf0 mode tap
t_eswd host --vfs 2 --uplink up0 --mode switchdev
check_match "stale persistent TAP replaced by a live representor" 'persist off' "$(ip -n "${T_PREFIX}host" -d link show pf0vf0)"
check_match "removal logged" 'removed stale netdev' "$(cat "$T_DIR/eswd.log")"
kill -TERM "$ESWD_PID"
t_wait "eswd exits" 10 bash -c "! kill -0 $ESWD_PID 2>/dev/null"
ip -n "${T_PREFIX}host" link add esw0v1 type veth peer name eswpeer
out=$(t_in host "$ESW_BIN/eswd" --control "$T_DIR/third.sock" --vfs 2 --uplink up0 2>&1 | tail -2)
check_match "foreign netdev with our name: refused" 'esw0v1 exists and is not ours \(kind veth, peer eswpeer\)' "$out"
check_match "and left alone" 'esw0v1@eswpeer' "$(ip -n "${T_PREFIX}host" link show esw0v1)"
ip -n "${T_PREFIX}host" link del esw0v1

# The netdevs named like eSwitch eswp's (and eswq's, the second daemon below), sorted.
eswp_links() {
    ip -n "${T_PREFIX}${1:-host}" -o link show | awk -F': ' '{print $2}' | sed 's/@.*//' |
        grep -E '^(eswp|eswq|q?pf0vf|q?p0$)' | sort | tr '\n' ' '
}
# The words given, sorted, as eswp_links prints them.
sorted_words() { echo "$@" | tr ' ' '\n' | grep . | sort | tr '\n' ' '; }
# The id of the program on a netdev's esw filter (empty: none).
esw_prog() { tc -n "${T_PREFIX}host" filter show dev "$1" "${2:-ingress}" 2>/dev/null | grep 'handle 0xe5 ' | grep -o ' id [0-9]*' | awk '{print $2}'; }
stop_eswd() {
    kill -"$1" "$ESWD_PID"
    t_wait "eswd exits on SIG$1" 10 bash -c "! kill -0 $ESWD_PID 2>/dev/null"
}

# A restart with fewer VFs after a SIGKILL removes the killed run's extra VF pairs too,
# and only those: netdevs that merely share the name's prefix (another eSwitch eswp1's
# pair, a veth eswpv07) and one of eswp's pattern that is no veth (a TAP eswpv5) stay.
ip -n "${T_PREFIX}host" link add eswp1v5 type veth peer name eswp1sw5
ip -n "${T_PREFIX}host" link add eswpv07 type veth peer name eswpeer07
ip -n "${T_PREFIX}host" tuntap add dev eswpv5 mode tap
decoys="eswp1sw5 eswp1v5 eswpeer07 eswpv07 eswpv5"
t_eswd host --name eswp --vfs 2 --uplink up0 --rep-prefix q
check_eq "eswp runs with two VFs" "$(sorted_words $decoys eswp eswpsw0 eswpsw1 eswpv0 eswpv1 qp0 qpf0vf0 qpf0vf1)" "$(eswp_links)"
stop_eswd KILL
t_eswd host --name eswp --vfs 1 --uplink up0 --rep-prefix q
check_eq "restart with --vfs 1 after SIGKILL: the killed run's VF 1 pair is gone, the look-alikes stay" \
    "$(sorted_words $decoys eswp eswpsw0 eswpv0 qp0 qpf0vf0)" "$(eswp_links)"
check_match "its removal logged" 'netdev=eswpsw1 .*removed stale netdev' "$(cat "$T_DIR/eswd.log")"
stop_eswd TERM
ip -n "${T_PREFIX}host" link del eswp1v5
ip -n "${T_PREFIX}host" link del eswpv07
ip -n "${T_PREFIX}host" tuntap del dev eswpv5 mode tap
check_eq "after the stop: no eswp netdev left" "" "$(eswp_links)"

# A start that fails leaves nothing behind: a missing uplink is named before anything is
# made; a failure after the VFs, the uplink and the pipeline were set up (a control
# socket path too long to bind) undoes them.
out=$(t_in host timeout 20 "$ESW_BIN/eswd" --name eswp --vfs 2 --uplink eswlf-nope --control "$T_DIR/nope.sock" 2>&1)
check_match "missing uplink: refused plainly" 'uplink eswlf-nope does not exist' "$out"
check_eq "missing uplink: no netdev made" "" "$(eswp_links)"
long="$T_DIR/$(printf 'x%.0s' $(seq 100)).sock"
out=$(t_in host timeout 20 "$ESW_BIN/eswd" --name eswp --vfs 2 --uplink up0 --control "$long" 2>&1)
check_match "late start failure: reported" 'bind .*File name too long' "$out"
check_eq "late start failure: the VF pairs and representors are gone" "" "$(eswp_links)"
check_eq "late start failure: no filter, no clsact left on the uplink" "0 0" "$(esw_filters up0) $(clsact up0)"
check_eq "late start failure: uplink ARP and IPv6 given back" "0 0" "$(noarp) $(ipv6_off)"
check_fails "late start failure: no uplink record left" test -e "$T_DIR/eswp.uplink"

# A clsact qdisc that was there before (with someone else's filter) stays, also through
# a SIGKILL and a restart (the uplink record says it was there).
tc -n "${T_PREFIX}host" qdisc add dev up0 clsact
tc -n "${T_PREFIX}host" filter add dev up0 ingress pref 7 protocol all u32 match u32 0 0
t_eswd host --name eswp --vfs 1 --uplink up0
stop_eswd KILL
t_eswd host --name eswp --vfs 1 --uplink up0
stop_eswd TERM
check_eq "a clsact from before stays with its filter, eswd's filter gone" "1 1 0" \
    "$(clsact up0) $(tc -n "${T_PREFIX}host" filter show dev up0 ingress | grep -c '^filter .*pref 7 u32 chain 0 $') $(esw_filters up0)"
tc -n "${T_PREFIX}host" qdisc del dev up0 clsact

# A netdev a live eswd drives is refused to a second one, whether as its uplink or as a
# port of its own (a VF switch side); a second eswd with the same name but other
# representor names is refused too (the first runs without a datapath, so that no
# netdev of its name tells it is alive: its switch side's filter must). The first keeps
# its filters. After a SIGKILL the same netdev is free again.
t_eswd host --name eswp --vfs 2 --uplink up0 --rep-prefix q --no-datapath
first_pid=$ESWD_PID
up_prog=$(esw_prog up0); sw_prog=$(esw_prog eswpsw0)
second() { t_in host timeout 20 "$ESW_BIN/eswd" --control "$T_DIR/second.sock" "$@" 2>&1 | tail -3; }
check_match "second eswd on the first's uplink: refused" "uplink up0 is in use by eswd eswp \\(pid $first_pid\\)" \
    "$(second --name eswq --vfs 1 --uplink up0 --rep-prefix r)"
check_match "second eswd on the first's VF switch side: refused" "uplink eswpsw0 is in use by eswd eswp \\(pid $first_pid\\)" \
    "$(second --name eswq --vfs 1 --uplink eswpsw0 --rep-prefix r)"
ip -n "${T_PREFIX}host" link add up1 type veth peer name wire1
check_match "second eswd with the first's name, other representors: refused" "netdev eswpsw0 is in use by eswd eswp \\(pid $first_pid\\)" \
    "$(second --name eswp --vfs 2 --uplink up1 --rep-prefix r)"
check_eq "the first's filters are untouched" "$up_prog $sw_prog" "$(esw_prog up0) $(esw_prog eswpsw0)"
check_eq "the first's netdevs are untouched, the second left none" "$(sorted_words eswpsw0 eswpsw1 eswpv0 eswpv1 qp0 qpf0vf0 qpf0vf1)" "$(eswp_links)"
check "the first keeps serving" devlink dev show
stop_eswd KILL
ESW_CONTROL="$T_DIR/second.sock"
t_eswd_second() {
    ip netns exec "${T_PREFIX}host" "$ESW_BIN/eswd" --control "$ESW_CONTROL" "$@" >>"$T_DIR/eswd.log" 2>&1 &
    ESWD_PID=$!
    T_PIDS+=("$ESWD_PID")
    t_wait "second eswd answers" 10 "$ESW_BIN/esw-devlink" dev show
}
check "after the first's SIGKILL, a second eswd takes its uplink" t_eswd_second --name eswq --vfs 1 --uplink up0 --rep-prefix r
check_eq "and replaces the dead one's filter" 1 "$(esw_filters up0)"
check_no_match "with a program of its own" "^$up_prog\$" "$(esw_prog up0)"
stop_eswd TERM
t_eswd host --name eswp --vfs 2 --uplink up0 --rep-prefix q
check_eq "the killed eswp restarts over its stale netdevs" "$(sorted_words eswp eswpsw0 eswpsw1 eswpv0 eswpv1 qp0 qpf0vf0 qpf0vf1)" "$(eswp_links)"
stop_eswd TERM
check_eq "all stopped: nothing left" "" "$(eswp_links)"
check_eq "all stopped: uplink as it was" "0 0 0 0" "$(esw_filters up0) $(clsact up0) $(noarp) $(ipv6_off)"

# Two eSwitches of one name in two namespaces share a run directory (by default
# /run/esw/esw0.sock and esw0.uplink; here the test's): the second is refused before it
# makes anything. It used to replace the live daemon's control socket (the first then
# answered no one, for good once the second's stop removed the file) and to take the
# first's uplink record for a crashed run's, "restoring" its settings onto its own uplink.
t_eswd host --vfs 1 --uplink up0
t_ns host2
ip -n "${T_PREFIX}host2" link add up0 type veth peer name wire0
out=$(ip netns exec "${T_PREFIX}host2" timeout 20 "$ESW_BIN/eswd" --control "$ESW_CONTROL" --vfs 1 --uplink up0 2>&1 | tail -3)
check_match "a second eswd on a live one's control socket: refused" "control socket $ESW_CONTROL is in use by a live eswd" "$out"
check_eq "it made nothing in its namespace" "up0 wire0 " "$(ip -n "${T_PREFIX}host2" -o link show | awk -F': ' '{print $2}' | sed 's/@.*//' | grep -vx lo | sort | tr '\n' ' ')"
check_eq "nor touched its uplink" 0 "$(ip -n "${T_PREFIX}host2" link show up0 | grep -c NOARP)"
check "the first still answers on its socket" devlink dev show
check "the first's uplink record is still there" test -e "$T_DIR/esw0.uplink"
stop_eswd TERM
check_fails "the first's clean stop removed its socket" test -S "$ESW_CONTROL"
