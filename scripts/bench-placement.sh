#!/usr/bin/env bash
# bench-placement.sh — `scripts/bench.sh placement`: the slides' experiment ("XDP offload
# measurements", ../shared/seeds/xdp-offload-measurement-slides.txt) on esw: each function
# at each place it can run, the same traffic, the same measurements.
#
# Usage: scripts/bench.sh placement [--quick] [--bin DIR] [--out DIR]
#
# Topology (scripts/topology.sh): eswd --vfs 2 in switchdev mode; the load generator in
# `remote` behind the uplink wire (wire0, 198.19.0.100/24, L2 with the VFs); VF0 in vm0
# (198.19.0.1) is the function's VM, VF1 in vm1 (198.19.0.2) its neighbour. Hardware
# flows (IPv4, ARP) by destination MAC: uplink -> VF0 / VF1 (broadcast ARP to both),
# VF0/VF1 -> uplink.
#
# Placements:
#   nic         the function offloaded to the NIC: `esw-devlink port prog set esw0/0` (the
#               uplink's programmable stage, before the tables); nic_speed 100. The NIC's
#               engine is one processor for all ports with a queue of nic_queue_us 1000
#               (bpf/prog_stage.h): an overloaded engine drops (overflow) and delays what
#               it lets in, the neighbour's ping replies included (they pass the stage)
#   nic-25      the same with nic_speed 25 (an engine four times slower than a host CPU)
#   nic-10      nic_speed 10
#   vm-driver   XDP on the VF netdev inside vm0 (generic mode: the switch delivers with
#               bpf_redirect_peer, which enters the VF's stack past the veth's native XDP)
#   vm-bypass   AF_XDP: the XDP program steers the function's frames to an AF_XDP socket
#               of a process in vm0 (scripts/placement/xskfn.c, libxdp), which runs the
#               function in user space (copy mode: a veth has no zero-copy)
#   vm-stack    (dns only) a UDP socket server in vm0: no offload at all, the reference
# Functions: drop (LOOP_N=0), loop n then drop (n = 10, 100, 1000), dns (swap MAC/IP/UDP
# ports, set QR|NXDOMAIN, send back). Only UDP to port 9 (drop/loop) or 53 (dns) is the
# function's; other traffic passes.
# Per (placement, function):
#   handled/s   the function's frames per second with the generator flooding 64-byte
#               frames at full speed for T s (NIC: the program's verdict counters; XDP:
#               bpf_stats run_cnt; AF_XDP: the process's count)
#   prog ns     per-frame run time of the BPF program that handles the frame (bpf_stats:
#               the NIC's whole pipeline, esw_port_rx, which tail-calls the function; the
#               XDP program), the placement's processing latency
#   CPU         busy share of all CPUs during the flood (/proc/stat: user, system,
#               softirq) and the VM's share: the CPU of the processes in vm0; and, from
#               bpf_stats run times, the share of the switch's pipeline (esw_port_rx with
#               the NIC stage's program: the emulated NIC, which runs on the host's
#               CPUs) and of the VM's driver (the XDP program in vm0)
#   neighbour   ping RTT p50/p99 (µs) from vm1 to the wire (-i 0.01) during the flood, and
#               how many of its pings were answered
#   NIC engine  (nic*) frames/s the full queue dropped (overflow), the mean wait of the
#               frames it held, and held frames/s that left 100 µs or more late because
#               eswd's delay line could not keep up (port show -s: overflow, held, held_ns, late)
#   dns p50/99  (dns) round trip of queries at a fixed 1000/s (dnsprobe.py), without the
#               flood and during it
# RUNS x T s per pair, the report shows medians: 3 x 5 s (--quick 1 x 2 s). Output: OUT/placement.md, OUT/placement.png, OUT/placement.jsonl.
set -uo pipefail
LC_ALL=C; export LC_ALL
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$ROOT/scripts/netns.sh"
. "$ROOT/scripts/topology.sh"
. "$ROOT/scripts/deps.sh"
PLACEMENTS=${ESW_PLACEMENTS:-nic nic-25 nic-10 vm-driver vm-bypass vm-stack}
FUNCTIONS=${ESW_FUNCTIONS:-drop loop10 loop100 loop1000 dns}
. "$ROOT/scripts/bench-part.sh"
bench_part placement "$@"
T=5 RUNS=3; [ $QUICK = 1 ] && T=2 RUNS=1
P=${ESW_BENCH_PREFIX:-eswplace-}
D=$(mktemp -d /tmp/eswplace.XXXXXX)
PIDS=()
STATS_WAS=$(sysctl -n kernel.bpf_stats_enabled)
cleanup() {
    esw_stop "${PIDS[@]}"
    esw_del_netns "${TOPO_NAMESPACES[@]}"
    sysctl -qw kernel.bpf_stats_enabled="$STATS_WAS"
    rm -rf "$D"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$OUT"
topo_init "$P" || die "bad prefix"
DEVLINK() { ESW_CONTROL=$D/eswd.sock "$BIN/esw-devlink" "$@"; }
DPCTL() { ESW_CONTROL=$D/eswd.sock "$BIN/esw-dpctl" "$@"; }
IN() { local n=$1; shift; ip netns exec "$P$n" "$@"; }
wait_for() { local i; for i in $(seq $(($1 * 10))); do "${@:2}" >/dev/null 2>&1 && return 0; sleep 0.1; done; return 1; }
start_eswd() {
    ip netns exec "${P}host" "$BIN/eswd" --control "$D/eswd.sock" "$@" >>"$D/eswd.log" 2>&1 &
    PIDS+=("$!")
    wait_for 10 DEVLINK dev show || { cat "$D/eswd.log" >&2; return 1; }
}

# --- tools ----------------------------------------------------------------------------
CLANG=$(dirname "$(readlink -f "$(command -v swift)")")/clang
[ -x "$CLANG" ] || CLANG=clang
ARCH=$(uname -m)-linux-gnu
bpfcc() { "$CLANG" -O2 -g -target bpf -Wall -I"/usr/include/$ARCH" "$@"; }
# Host tools: the system's C compiler, or the toolchain's clang when there is none.
CC=$(command -v cc || echo "$CLANG")
"$CC" -O2 -Wall -o "$D/udpflood" "$ROOT/scripts/placement/udpflood.c" || die "udpflood does not build"
HAVE_XSK=0
if "$CC" -O2 -Wall -o "$D/xskfn" "$ROOT/scripts/placement/xskfn.c" -lxdp -lbpf 2>"$D/xsk.err"; then HAVE_XSK=1
else log "AF_XDP tool does not build (vm-bypass skipped): $(head -3 "$D/xsk.err")"; fi
func_flags() {
    case $1 in
        drop) echo -DLOOP_N=0 ;;
        loop*) echo "-DLOOP_N=${1#loop}" ;;
        dns) echo -DFUNC_DNS ;;
    esac
}
func_port() { [ "$1" = dns ] && echo 53 || echo 9; }
func_loops() { case $1 in drop) echo 0 ;; loop*) echo "${1#loop}" ;; dns) echo -1 ;; esac; }

# --- topology -------------------------------------------------------------------------
log "topology"
topo_esw 2 start_eswd --mode switchdev || die "cannot build the topology"
IN remote ip addr add 198.19.0.100/24 dev "$TOPO_WIRE"
mac() { IN "$1" cat "/sys/class/net/$2/address"; }
MAC0=$(mac vm0 esw0v0) MAC1=$(mac vm1 esw0v1) WMAC=$(mac remote "$TOPO_WIRE")
for p in pf0vf0 pf0vf1 p0; do DPCTL add-if "$p" >/dev/null || die "add-if $p"; done
topo_wire_flows "$MAC0" "$MAC1" "$D/flows"
DPCTL add-flows "$D/flows" >/dev/null || die "flows"
log "flows: $(DPCTL dump-flows -m | grep -c offloaded:yes) of 9 in hardware"
IN remote ping -c 2 -W 2 198.19.0.1 >/dev/null || die "remote cannot reach VF0"
IN remote ping -c 2 -W 2 198.19.0.2 >/dev/null || die "remote cannot reach VF1"
IN vm1 ping -c 2 -W 2 198.19.0.100 >/dev/null || die "VF1 cannot reach the wire"
sysctl -qw kernel.bpf_stats_enabled=1

# --- measurements ---------------------------------------------------------------------
# cpu_snapshot: "busy user system softirq total" jiffies of all CPUs
cpu_snapshot() { awk '/^cpu /{print $2+$3+$4+$7+$8, $2+$3, $4, $8, $2+$3+$4+$5+$6+$7+$8}' /proc/stat; }
# ns_cpu NS: jiffies (utime+stime) of the processes in namespace NS
ns_cpu() {
    local t=0 pid
    for pid in $(ip netns pids "$P$1" 2>/dev/null); do
        t=$((t + $(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)))
    done
    echo $t
}
# prog_run ID: "run_cnt run_time_ns" of a BPF program (bpf_stats)
prog_run() { bpftool prog show id "$1" -j 2>/dev/null | python3 -c 'import json,sys; p=json.load(sys.stdin); print(p.get("run_cnt",0), p.get("run_time_ns",0))' 2>/dev/null || echo "0 0"; }
# esw_rx_id: the id of the pipeline program on our uplink (other eswd may run on the machine)
esw_rx_id() { IN host tc filter show dev "$TOPO_UP" ingress | grep -o ' id [0-9]*' | head -1 | awk '{print $2}'; }
# vm_xdp_id PLACEMENT: the XDP program in vm0 for the VM placements (0: none)
vm_xdp_id() {
    case $1 in
        vm-driver|vm-bypass) IN vm0 ip -j link show dev esw0v0 | python3 -c 'import json,sys; print(json.load(sys.stdin)[0].get("xdp",{}).get("prog",{}).get("id",0))' 2>/dev/null || echo 0 ;;
        *) echo 0 ;;
    esac
}
# nic_handled: the uplink program's drop + tx verdicts
nic_handled() { DEVLINK port show -s -j esw0/0 | python3 -c 'import json,sys; s=json.load(sys.stdin)["port"]["esw0/0"].get("prog",{}).get("stats",{}); print(s.get("drop",0)+s.get("tx",0))'; }
# nic_engine: the uplink stage's "overflow held held_ns late"
nic_engine() { DEVLINK port show -s -j esw0/0 | python3 -c 'import json,sys; s=json.load(sys.stdin)["port"]["esw0/0"].get("prog",{}).get("stats",{}); print(s.get("overflow",0), s.get("held",0), s.get("held_ns",0), s.get("late",0))'; }
pctl() { python3 -c 'import sys; v=sorted(float(x) for x in sys.stdin.read().split()); q=float(sys.argv[1]); print(round(v[min(len(v)-1,int(q*len(v)))],1) if v else "null")' "$1"; }

# attach PLACEMENT FUNCTION: sets PROG_ID (the program bpf_stats reads; 0: none) and XPID
attach() {
    local pl=$1 fn=$2 flags
    flags=$(func_flags "$fn")
    PROG_ID=0 XPID=
    case $pl in
        nic|nic-*)
            bpfcc $flags -c "$ROOT/bpf/bench/placement/nic.bpf.c" -o "$D/nic.o" || return 1
            DEVLINK dev param set esw0 name nic_speed value "$([ "$pl" = nic ] && echo 100 || echo "${pl#nic-}")" || return 1
            DEVLINK port prog set esw0/0 obj "$D/nic.o" sec nic || return 1
            PROG_ID=$(esw_rx_id) ;;
        vm-driver)
            bpfcc $flags -c "$ROOT/bpf/bench/placement/vm_xdp.bpf.c" -o "$D/xdp.o" || return 1
            IN vm0 ip link set dev esw0v0 xdpgeneric obj "$D/xdp.o" sec xdp || return 1
            PROG_ID=$(IN vm0 ip -j link show dev esw0v0 | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["xdp"]["prog"]["id"])') ;;
        vm-bypass)
            [ $HAVE_XSK = 1 ] || return 1
            bpfcc $flags -DAF_XDP -c "$ROOT/bpf/bench/placement/vm_xdp.bpf.c" -o "$D/xsk.o" || return 1
            : >"$D/xsk.count"
            # One receive queue: generic XDP then sees every frame on queue 0, where the
            # socket is (a veth has a queue per CPU, and frames keep the queue they were
            # sent on).
            IN vm0 ethtool -L esw0v0 rx 1 >/dev/null 2>&1
            ip netns exec "${P}vm0" "$D/xskfn" esw0v0 "$D/xsk.o" "$(func_loops "$fn")" "$D/xsk.count" >"$D/xsk.log" 2>&1 &
            XPID=$!; PIDS+=("$XPID")
            wait_for 5 test -s "$D/xsk.count" || { cat "$D/xsk.log" >&2; return 1; }
            PROG_ID=$(IN vm0 ip -j link show dev esw0v0 | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["xdp"]["prog"]["id"])' 2>/dev/null || echo 0) ;;
        vm-stack)
            [ "$fn" = dns ] || return 1
            ip netns exec "${P}vm0" python3 -c '
import socket, struct
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 53))
while True:
    d, a = s.recvfrom(2048)
    if len(d) >= 4:
        s.sendto(d[:2] + struct.pack("!H", struct.unpack("!H", d[2:4])[0] | 0x8003) + d[4:], a)' &
            XPID=$!; PIDS+=("$XPID")
            sleep 0.5 ;;
    esac
}
detach() {
    DEVLINK port prog set esw0/0 off 2>/dev/null
    IN vm0 ip link set dev esw0v0 xdpgeneric off 2>/dev/null
    if [ -n "${XPID:-}" ]; then kill "$XPID" 2>/dev/null; wait "$XPID" 2>/dev/null; XPID=; fi
    [ -s "$D/xsk.log" ] && { log "xskfn: $(tail -3 "$D/xsk.log")"; : >"$D/xsk.log"; }
}
handled_count() {
    case $1 in
        nic|nic-*) nic_handled ;;
        vm-driver) prog_run "$PROG_ID" | cut -d' ' -f1 ;;
        vm-bypass) tail -1 "$D/xsk.count" 2>/dev/null || echo 0 ;;
        vm-stack) echo 0 ;;
    esac
}

# measure PLACEMENT FUNCTION: one JSON row
measure() {
    local pl=$1 fn=$2 port c0 c1 n0 n1 h0 h1 r0 r1 e0 e1 sent ping lat
    port=$(func_port "$fn")
    local x0 x1 vd0 vd1
    h0=$(handled_count "$pl"); r0=$(prog_run "$PROG_ID"); c0=$(cpu_snapshot); n0=$(ns_cpu vm0); e0=$(nic_engine)
    x0=$(prog_run "$PIPE_ID"); vd0=$(prog_run "$(vm_xdp_id "$pl")")
    IN vm1 ping -i 0.01 -c $((T * 80)) -W 1 198.19.0.100 >"$D/ping.txt" 2>&1 &
    local pp=$! lp=
    # dns: the probe also runs during the flood (the latency at the flood's rate).
    if [ "$fn" = dns ]; then
        IN remote python3 "$ROOT/scripts/placement/dnsprobe.py" 198.19.0.1 1000 "$T" >"$D/loaded.json" &
        lp=$!
    else
        echo '{}' >"$D/loaded.json"
    fi
    sent=$(IN remote "$D/udpflood" "$TOPO_WIRE" "$WMAC" "$MAC0" 198.19.0.100 198.19.0.1 "$port" "$T")
    wait $pp $lp
    h1=$(handled_count "$pl"); r1=$(prog_run "$PROG_ID"); c1=$(cpu_snapshot); n1=$(ns_cpu vm0); e1=$(nic_engine)
    x1=$(prog_run "$PIPE_ID"); vd1=$(prog_run "$(vm_xdp_id "$pl")")
    ping=$(grep -o 'time=[0-9.]*' "$D/ping.txt" | cut -d= -f2 | awk '{print $1 * 1000}')
    lat='{}'
    if [ "$fn" = dns ]; then
        sleep 0.5
        lat=$(IN remote python3 "$ROOT/scripts/placement/dnsprobe.py" 198.19.0.1 1000 "$T")
    fi
    python3 - "$pl" "$fn" "$T" "$sent" "$h0" "$h1" "$r0" "$r1" "$c0" "$c1" "$n0" "$n1" \
        "$(echo "$ping" | pctl 0.5)" "$(echo "$ping" | pctl 0.99)" "$(echo "$ping" | wc -w)" "$lat" "$(nproc)" "$(cat "$D/loaded.json")" "$e0" "$e1" "$((T * 80))" "$x0" "$x1" "$vd0" "$vd1" <<'PY'
import json, sys
a = sys.argv[1:]
pl, fn, T, sent = a[0], a[1], float(a[2]), int(a[3] or 0)
h = int(a[5] or 0) - int(a[4] or 0)
r0, r1 = [list(map(int, x.split())) for x in (a[6], a[7])]
c0, c1 = [list(map(int, x.split())) for x in (a[8], a[9])]
dc = [y - x for x, y in zip(c0, c1)]
total = dc[4] or 1
vm = int(a[11]) - int(a[10])
runs = r1[0] - r0[0]
row = {
    "placement": pl, "function": fn, "seconds": T,
    "offered_pps": round(sent / T), "handled_pps": round(h / T) if pl != "vm-stack" else None,
    "prog_ns": round((r1[1] - r0[1]) / runs) if runs > 0 else None,
    "cpu_busy_pct": round(100 * dc[0] / total, 1), "cpu_user_pct": round(100 * dc[1] / total, 1),
    "cpu_system_pct": round(100 * dc[2] / total, 1), "cpu_softirq_pct": round(100 * dc[3] / total, 1),
    "cpu_vm_pct": round(100 * vm / total, 1),
    "neighbour_ping_p50_us": None if a[12] == "null" else float(a[12]),
    "neighbour_ping_p99_us": None if a[13] == "null" else float(a[13]),
    "neighbour_pings": int(a[14]),
    "neighbour_pings_sent": int(a[20]),
    "cpus": int(a[16]),
}
# Shares of all CPUs by who ran the code (bpf_stats run time over the run's CPU time):
# the emulated NIC's pipeline (all ports, with the stage's program) and the VM's driver.
cpu_ns = T * 1e9 * int(a[16])
x0, x1, vd0, vd1 = [list(map(int, x.split())) for x in (a[21], a[22], a[23], a[24])]
row["cpu_nic_pipeline_pct"] = round(100 * (x1[1] - x0[1]) / cpu_ns, 1)
row["cpu_vm_driver_pct"] = round(100 * (vd1[1] - vd0[1]) / cpu_ns, 1)
if pl.startswith("nic"):
    e0, e1 = [list(map(int, x.split())) for x in (a[18], a[19])]
    de = [y - x for x, y in zip(e0, e1)]
    row.update({"nic_overflow_pps": round(de[0] / T), "nic_held_pps": round(de[1] / T),
                "nic_held_wait_us": round(de[2] / de[1] / 1000, 1) if de[1] else 0,
                "nic_late_pps": round(de[3] / T) if len(de) > 3 else 0})
lat = json.loads(a[15] or "{}")
if lat:
    row.update({"dns_sent": lat["sent"], "dns_answered": lat["answered"], "dns_nxdomain": lat["nxdomain"],
                "dns_p50_us": lat["p50_us"], "dns_p99_us": lat["p99_us"]})
loaded = json.loads(a[17] or "{}")
if loaded:
    row.update({"dns_flood_answered": loaded["answered"], "dns_flood_sent": loaded["sent"],
                "dns_flood_p50_us": loaded["p50_us"], "dns_flood_p99_us": loaded["p99_us"]})
print(json.dumps(row))
PY
}

ROWS=$OUT/placement.jsonl
: >"$ROWS"
PIPE_ID=$(esw_rx_id)
[ -n "$PIPE_ID" ] || die "no pipeline program on $TOPO_UP"
# The baseline: the neighbour's ping and the flood with no function anywhere (frames
# reach VF0's stack, which drops them: no socket on port 9).
log "baseline (no function)"
PROG_ID=0 XPID=
measure none none | tee -a "$ROWS" >&2
for fn in $FUNCTIONS; do
    for pl in $PLACEMENTS; do
        [ "$pl" = vm-stack ] && [ "$fn" != dns ] && continue
        log "$pl / $fn"
        if ! attach "$pl" "$fn"; then log "$pl / $fn: cannot attach (skipped)"; detach; continue; fi
        for run in $(seq $RUNS); do measure "$pl" "$fn" | tee -a "$ROWS" >&2; done
        detach
    done
done
DEVLINK dev param set esw0 name nic_speed value 100
/usr/bin/python3 "$ROOT/scripts/placement/report.py" "$ROWS" "$OUT/placement.md" "$OUT/placement.png" \
    "$(uname -r), $(nproc) CPUs, $(date -u +%Y-%m-%d), median of $RUNS x ${T}s" || die "report failed"
cat "$OUT/placement.md"
