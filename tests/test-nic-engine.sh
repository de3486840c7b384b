#!/usr/bin/env bash
# The NIC engine (bpf/prog_stage.h): one engine, shared by every port's offloaded
# program, with finite speed and a bounded queue. A program that loads it (1000 rounds on
# every frame, then pass) goes on the uplink; a flood from behind the wire overloads it at
# a low nic_speed: the stage drops frames (overflow) and a neighbour VF's ping, whose
# replies come in through the uplink's stage, waits in its queue (held frames, RTT well
# above the unloaded one). Detaching restores plain forwarding and removes the delay
# line's TAP; TCP passes the held path whole; a SIGKILL takes the TAP with the daemon.
. "$(dirname "$0")/lib.sh"

t_topology 2 --mode switchdev
check "example programs compile" "$T_ROOT/scripts/build-example-progs.sh" "$T_DIR/progs"
P=$T_DIR/progs
cc=$(command -v cc || echo "$(dirname "$(readlink -f "$(command -v swift)")")/clang")
check "the flood generator builds" "$cc" -O2 -Wall -o "$T_DIR/udpflood" "$T_ROOT/scripts/placement/udpflood.c"

t_in remote ip addr add 198.19.0.100/24 dev "$TOPO_WIRE"
for p in pf0vf0 pf0vf1 p0; do dpctl add-if "$p" >/dev/null; done
mac() { t_in "$1" cat "/sys/class/net/$2/address"; }
MAC0=$(mac vm0 esw0v0) MAC1=$(mac vm1 esw0v1) WMAC=$(mac remote "$TOPO_WIRE")
# Datapath ports: pf0vf0 1, pf0vf1 2, p0 3. The wire reaches the VFs by MAC, the VFs the wire.
topo_wire_flows "$MAC0" "$MAC1" "$T_DIR/flows"
check "flows between the wire and the VFs in hardware" dpctl add-flows "$T_DIR/flows"
check "VF1 reaches the wire" t_ping vm1 198.19.0.100 3

# prog_stat NAME...: counters of the uplink's program (port show -s -j)
prog_stat() {
    devlink port show -s -j esw0/0 | python3 -c '
import json, sys
p = json.load(sys.stdin)["port"]["esw0/0"]
print(" ".join(str(p.get("prog", {}).get("stats", {}).get(n, "none")) for n in sys.argv[1:]))' "$@"
}
# rtt_p50 COUNT INTERVAL: VF1's ping to the wire, the median RTT in µs, and the replies
rtt_p50() {
    t_in vm1 ping -c "$1" -i "$2" -W 1 198.19.0.100 2>/dev/null | python3 -c '
import re, sys
t = sorted(float(x) * 1000 for x in re.findall(r"time=([0-9.]+)", sys.stdin.read()))
print(int(t[len(t) // 2]) if t else 0, len(t))'
}
engine_tap() { t_in host ip -o link show esw0-engine 2>/dev/null; }

check "busy program (1000 rounds, pass) on the uplink" devlink port prog set esw0/0 obj "$P/busy.o" sec busy
check_match "the engine's delay line is up" 'esw0-engine' "$(engine_tap)"
check_match "nic_queue_us shown, 1000 by default" 'cmode runtime value 1000' "$(devlink dev param show esw0 name nic_queue_us)"
read -r idle idle_n <<<"$(rtt_p50 20 0.05)"
check_ge "unloaded: VF1's pings answered through the uplink's stage" 19 "$idle_n"
t_log "unloaded neighbour RTT p50: ${idle} µs"

# Overload: 1000 rounds cost the engine ~100 µs a frame at 1 %: it does ~10k frames/s.
check "nic_speed 1" devlink dev param set esw0 name nic_speed value 1
check "nic_queue_us 2000" devlink dev param set esw0 name nic_queue_us value 2000
t_in remote "$T_DIR/udpflood" "$TOPO_WIRE" "$WMAC" "$MAC0" 198.19.0.100 198.19.0.1 9 4 20000 >"$T_DIR/flood.out" &
flood=$!
sleep 0.5
read -r busy busy_n <<<"$(rtt_p50 200 0.01)"
wait "$flood"
t_log "overloaded: neighbour RTT p50 ${busy} µs, ${busy_n}/200 answered; flood sent $(cat "$T_DIR/flood.out")"
read -r overflow held held_ns <<<"$(prog_stat overflow held held_ns)"
t_log "stage: overflow $overflow, held $held (mean wait $((held_ns / (held > 0 ? held : 1) / 1000)) µs)"
check_ge "the full queue drops frames (overflow)" 1000 "$overflow"
check_ge "frames wait for the engine (held)" 100 "$held"
check_ge "the mean wait is about the queue's depth (>= 1000 µs)" 1000000 "$((held_ns / (held > 0 ? held : 1)))"
check_ge "the neighbour's ping waits in the queue: p50 >= 700 µs" 700 "$busy"
check_ge "... and >= 3x its unloaded RTT" $((3 * idle)) "$busy"
check_ge "... and is not all lost" 10 "$busy_n"
check_eq "the uplink port counts the overflow as rx drops" "$overflow" \
    "$(port_stat p0 rx_dropped)"

# TCP through the held path: VF0's segments (GSO superframes, partial checksums) wait
# in the delay line and go on to the wire whole and correct.
check "uplink's program off" devlink port prog set esw0/0 off
check "busy program on VF0's port" devlink port prog set esw0/1 obj "$P/busy.o" sec busy
# GSO superframes used to come back from the delay line linearised (gso_size 0, longer
# than the MTU) and were dropped at the uplink's output (tx_dropped), or skipped the
# delay when too large to grow; now they are held whole and none is dropped.
check "nic_speed 5" devlink dev param set esw0 name nic_speed value 5
vf0_prog() {
    devlink port show -s -j esw0/1 | python3 -c '
import json, sys
s = json.load(sys.stdin)["port"]["esw0/1"]["prog"]["stats"]
print(" ".join(str(s[n]) for n in sys.argv[1:]))' "$@"
}
read -r held0 pass0 <<<"$(vf0_prog held pass)"
p0_drop0=$(port_stat p0 tx_dropped)
mbit=$(t_iperf vm0 remote 198.19.0.100 2)
t_log "TCP VF0 -> wire through a held stage: $mbit Mbit/s"
check_ge "TCP through the delay line" 1 "$mbit"
read -r held1 pass1 <<<"$(vf0_prog held pass)"
t_log "VF0's stage: $((pass1 - pass0)) frames passed, $((held1 - held0)) held; p0 tx_dropped $p0_drop0 -> $(port_stat p0 tx_dropped)"
check_ge "VF0's frames were held, superframes too (before: ~1000 in 2 s)" 5000 "$((held1 - held0))"
check_eq "no superframe dropped at the uplink's output after its wait" "$p0_drop0" "$(port_stat p0 tx_dropped)"
check "nic_speed 10" devlink dev param set esw0 name nic_speed value 10
check "VF0's program off" devlink port prog set esw0/1 off
check "busy program on the uplink again" devlink port prog set esw0/0 obj "$P/busy.o" sec busy
check "prog off" devlink port prog set esw0/0 off
check_eq "the delay line's TAP is gone" "" "$(engine_tap)"
read -r after after_n <<<"$(rtt_p50 20 0.05)"
t_log "after detach: neighbour RTT p50 ${after} µs"
check_ge "detach: every ping answered" 20 "$after_n"
check_ge "detach: plain forwarding, RTT back under the queue's wait (< 700 µs)" "$after" 699

# A SIGKILL takes the TAP (not persistent) and what it held with the daemon.
check "busy program again" devlink port prog set esw0/0 obj "$P/busy.o" sec busy
check_match "delay line up again" 'esw0-engine' "$(engine_tap)"
kill -KILL "$ESWD_PID"
t_wait "eswd gone after SIGKILL" 10 bash -c "! kill -0 $ESWD_PID 2>/dev/null"
check "SIGKILL: the delay line's TAP goes with the daemon" t_wait "TAP gone" 5 bash -c "! ip -n ${T_PREFIX}host link show esw0-engine"
