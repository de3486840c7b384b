#!/usr/bin/env bash
# bench-swpath.sh — `scripts/bench.sh swpath`: where the software path's 64-byte UDP
# packets go and what each costs, esw (skip_hw) against Open vSwitch 3.1 (userspace
# datapath, TSO on): the topologies, flows and iperf3 runs of bench.sh's esw-software
# and ovs-tso rows.
#
# Usage: scripts/bench.sh swpath [--quick] [--bin DIR] [--out DIR]
#
# Per switch and offered rate (50 and 80 kpps, then iperf3's -b 0; ESW_SWPATH_RATES="kpps
# ...", 0 for -b 0), RUNS x T s (3 x 8 s,
# --quick 3 x 4 s), medians, counted over the middle of each run (1 s in to 1 s before
# the end):
#   - offered: datagrams the sender sent (UdpOutDatagrams in its namespace);
#   - reached: datagrams that reached the receiver's UDP layer (InDatagrams +
#     RcvbufErrors in its namespace): what the switch forwarded;
#   - delivered; the share of offered lost on the way; the share of reached dropped at the
#     receiving socket (RcvbufErrors: iperf3 not reading fast enough; the rest of the
#     loss is before the receiver: the switch's input);
#   - the switch's packet thread (eswd's esw-dp; ovs-vswitchd's main thread, which polls
#     its system ports), ns of CPU (schedstat run time) per reached datagram and its
#     sleeps (voluntary context switches) per 1000 reached; the receiving iperf3's ns and
#     sleeps per delivered datagram.
# Costs per packet, because on a shared 2-core machine the -b 0 delivered rate is a
# contest for CPU between sender, switch and receiver (see the report's notes).
# Beside esw and OVS, two rows of a switch that does nothing but move frames
# (scripts/swpath/forward.c: AF_PACKET, recvmmsg/sendmmsg, no lookup): on esw's
# representors (eswd up, its datapath reading no port) and on a plain veth pair as OVS
# has; what any userspace software path over those netdevs gets at best.
# Output: OUT/swpath.md (OUT defaults to bench/). Needs root. Everything it starts is
# torn down on any exit.
set -uo pipefail
LC_ALL=C; export LC_ALL
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$ROOT/scripts/netns.sh"
. "$ROOT/scripts/topology.sh"
. "$ROOT/scripts/deps.sh"
. "$ROOT/scripts/bench-part.sh"
bench_part swpath "$@"
RUNS=${ESW_SWPATH_RUNS:-3}
if [ $QUICK = 1 ]; then T=4; else T=8; fi
RATES=(${ESW_SWPATH_RATES:-50 80 0})
PY=/usr/bin/python3
P=${ESW_BENCH_PREFIX:-eswbench-}
HZ=$(getconf CLK_TCK)
D=$(mktemp -d /tmp/eswswpath.XXXXXX)
PIDS=() SWPID=""
SCHEMA=""
for s in /usr/share/openvswitch/vswitch.ovsschema /usr/local/share/openvswitch/vswitch.ovsschema; do
    [ -r "$s" ] && { SCHEMA=$s; break; }
done
[ -n "$SCHEMA" ] || die "vswitch.ovsschema not found"
topo_init "$P" || exit 1
. "$ROOT/scripts/bench-lib.sh"

setup_esw() {
    topo_esw 2 start_eswd --mode switchdev --policy skip_hw || die "cannot build the esw topology"
    DPCTL add-if pf0vf0 >/dev/null || die "add-if pf0vf0"
    DPCTL add-if pf0vf1 >/dev/null || die "add-if pf0vf1"
    topo_vf_flows "$D/esw-flows"
    DPCTL add-flows "$D/esw-flows" || die "esw-dpctl add-flows"
    CLI_NS=vm0 SRV_NS=vm1 DST=$(topo_vm_addr 1) THREAD=esw-dp
}

"$CC" -O2 -Wall -o "$D/forward" "$ROOT/scripts/swpath/forward.c" || die "forward.c does not build"

# setup_forward_representors: esw's topology with the forwarder in place of its datapath
# (eswd runs: the VF netdevs, representors and the pipeline sending misses up them)
setup_forward_representors() {
    topo_esw 2 start_eswd --mode switchdev --policy skip_hw || die "cannot build the esw topology"
    # Its packet sockets forward, they do not watch: no capture mirror for them.
    DEVLINK dev param set esw0 name rep_capture_mirror value false || die "rep_capture_mirror"
    ip netns exec "${P}host" "$D/forward" pf0vf0 pf0vf1 &
    SWPID=$!; PIDS+=("$SWPID")
    CLI_NS=vm0 SRV_NS=vm1 DST=$(topo_vm_addr 1) THREAD=main
}
# setup_forward_veth: the forwarder between two veth pairs, OVS's topology
setup_forward_veth() {
    setup_two_pairs sw 198.18.1
    ip netns exec "${P}sw" "$D/forward" sa sb &
    SWPID=$!; PIDS+=("$SWPID")
    THREAD=main
}

# udp NS FIELD...: the namespace's Udp counters (/proc/net/snmp), in the order asked
udp() {
    local ns=$1; shift
    ip netns exec "$P$ns" cat /proc/net/snmp | awk -v want="$*" '
        $1 == "Udp:" && !h { for (i = 2; i <= NF; i++) col[$i] = i; h = 1; next }
        $1 == "Udp:" { n = split(want, w, " "); for (i = 1; i <= n; i++) printf "%s ", $col[w[i]]; print "" }'
}
# thread_stat NAME: "RUN_NS SLEEPS" of the switch's packet thread (eswd: by name; OVS:
# the main thread, which polls non-pmd ports)
thread_stat() {
    local t=/proc/$SWPID/task/$SWPID
    if [ "$1" != main ]; then
        for t in /proc/$SWPID/task/*; do [ "$(cat "$t/comm" 2>/dev/null)" = "$1" ] && break; done
    fi
    echo "$(awk '{print $1}' "$t/schedstat") $(awk '/^voluntary_ctxt_switches/{print $2}' "$t/status")"
}
# snapshot: one line of every counter the run compares
snapshot() {
    local srv
    srv=$(pgrep -f "^iperf3 -s -1 -J -p $PORT" | head -n 1)
    echo "$(date +%s%N) $(udp "$CLI_NS" OutDatagrams) $(udp "$SRV_NS" InDatagrams RcvbufErrors) $(thread_stat "$THREAD")" \
         "$(awk '{print $1}' "/proc/$srv/schedstat" 2>/dev/null || echo 0)" \
         "$(awk '/^voluntary_ctxt_switches/{print $2}' "/proc/$srv/status" 2>/dev/null || echo 0)"
}

PORT=5301
ROWS=()
# measure SWITCH: RUNS runs per rate, one table row per rate
measure() {
    local sw=$1 rate r b spid cpid s0 s1 line cols
    wait_for 10 in_ns "$CLI_NS" ping -c 1 -W 1 "$DST" || log "$sw: no ping reply before measuring"
    for rate in "${RATES[@]}"; do
        local vals=()
        for r in $(seq "$RUNS"); do
            b=$([ "$rate" = 0 ] && echo 0 || echo "$((rate * 512))k")
            timeout $((T + 20)) ip netns exec "$P$SRV_NS" iperf3 -s -1 -J -p $PORT >/dev/null 2>&1 &
            spid=$!; PIDS+=("$spid")
            wait_for 5 sh -c "ip netns exec $P$SRV_NS ss -Hltn 'sport = :$PORT' | grep -q $PORT"
            timeout $((T + 20)) ip netns exec "$P$CLI_NS" iperf3 -c "$DST" -p $PORT -u -l 64 -b "$b" -t "$T" >/dev/null 2>&1 &
            cpid=$!
            sleep 1; s0=$(snapshot); sleep $((T - 2)); s1=$(snapshot)
            wait "$cpid" "$spid" 2>/dev/null
            # snapshot fields: time, sent, received, dropped at the socket, thread run ns, thread sleeps, receiver run ns, receiver sleeps
            line=$(awk -v a="$s0" -v b="$s1" 'BEGIN{ split(a, x, " "); split(b, y, " ")
                s = (y[1] - x[1]) / 1e9; out = y[2] - x[2]; got = y[3] - x[3]; drop = y[4] - x[4]
                reach = got + drop; if (!reach || !got || !out) { print "0 0 0 0 0 0 0 0 0"; exit }
                printf "%.1f %.1f %.1f %.1f %.1f %.0f %.1f %.0f %.1f\n", out / s / 1e3, reach / s / 1e3, got / s / 1e3,
                       100 * (out - got) / out, 100 * drop / reach, (y[5] - x[5]) / reach, 1000 * (y[6] - x[6]) / reach,
                       (y[7] - x[7]) / got, 1000 * (y[8] - x[8]) / got }')
            log "$sw at $([ "$rate" = 0 ] && echo '-b 0' || echo "$rate kpps"), run $r: offered, reached, delivered kpps, % lost, % of reached dropped at the socket, thread ns/pkt, sleeps/1000, receiver ns/pkt, receiver sleeps/1000: $line"
            vals+=("$line")
        done
        cols=""
        for c in 1 2 3 4 5 6 7 8 9; do
            cols+=" $(printf '%s\n' "${vals[@]}" | awk -v c=$c '{print $c}' | median) |"
        done
        ROWS+=("| $sw | $([ "$rate" = 0 ] && echo '-b 0' || echo "$rate kpps") |$cols")
    done
}

LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
log "esw (skip_hw)"; setup_esw; measure esw-software; teardown
log "Open vSwitch (TSO on)"; setup_ovs 1; THREAD=main; PORT=5302; measure ovs-tso; teardown
log "forwarder on esw's representors"; setup_forward_representors; PORT=5303; measure forward-representors; teardown
log "forwarder on veth"; setup_forward_veth; PORT=5304; measure forward-veth; teardown

{
    echo "# Software path, 64-byte UDP: where packets go and what each costs"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); kernel $(uname -r); CPUs: $(nproc)"
    echo "- build: $BIN/eswd (commit $(cd "$ROOT" && git rev-parse --short HEAD)); $(ovs-vswitchd --version | head -n 1)"
    echo "- load average (1, 5, 15 min) before and after: $LOAD0; $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "- runs: $RUNS x $T s per row, counted over the middle $((T - 2)) s (medians)$([ $QUICK = 1 ] && echo ', --quick')"
    echo
    echo "| switch | offered | offered kpps | reached kpps | delivered kpps | % of offered lost | % of reached dropped at the socket | switch thread ns/pkt | switch thread sleeps / 1000 pkts | receiver ns/pkt | receiver sleeps / 1000 pkts |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|"
    printf '%s\n' "${ROWS[@]}"
    echo
    echo "reached: datagrams that got to the receiver's UDP layer (what the switch forwarded);"
    echo "the thread's ns/pkt are per reached datagram and include the kernel work its sends"
    echo "trigger (the receiving namespace's IP/UDP receive runs in the softirq its transmit raises)."
    echo "forward-representors, forward-veth: scripts/swpath/forward.c, a switch that only moves"
    echo "frames (AF_PACKET recvmmsg/sendmmsg, no lookup), on esw's representors and on OVS's veth"
    echo "ports. receiver sleeps: the receiving iperf3's voluntary context switches (its socket"
    echo "ran empty) per 1000 datagrams it read."
} | tee "$OUT/swpath.md"
