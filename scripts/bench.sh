#!/usr/bin/env bash
# bench.sh — esw against Open vSwitch 3.1 (userspace datapath, TSO on), the kernel's own
# vxlan and a plain veth pair, all measured in one run the same way.
#
# Usage: scripts/bench.sh [--quick] [--bin DIR] [--out DIR] [--no-control-plane] [--no-scale]
#                         [--scale-only] [--dataplane]
#        scripts/bench.sh resources [--quick] [--bin DIR] [--out DIR]   (see bench-resources.sh)
#        scripts/bench.sh placement [--quick] [--bin DIR] [--out DIR]   (see bench-placement.sh)
#        scripts/bench.sh hinting [--quick] [--bin DIR] [--out DIR]     (see bench-hinting.sh)
#        scripts/bench.sh conntrack [--quick] [--bin DIR] [--out DIR]   (see bench-conntrack.sh)
#        scripts/bench.sh swpath [--quick] [--bin DIR] [--out DIR]      (see bench-swpath.sh)
#
# Topologies, in rounds (below), in namespaces $ESW_BENCH_PREFIX* (default eswbench-;
# addresses from 198.18.0.0/15, nothing in the root namespace). The esw ones are the lab
# topology of scripts/topology.sh:
#
#   esw-offload     eswd --vfs 2 (switchdev): VF0 (vm0) <-> VF1 (vm1), one datapath flow
#                   each way for IPv4 and ARP, all four in hardware
#   esw-software    the same flows under --policy skip_hw (the software datapath); then,
#                   on the same netdevs and daemon, the datapath's ports removed and
#                   scripts/swpath/forward.c moving frames between the representors with
#                   no lookup (forward-representors: the least any userspace path over
#                   them does)
#   ovs-tso         Open vSwitch userspace datapath (datapath_type=netdev), a bridge with two
#                   system ports (veth) and the default NORMAL action, namespaces a <-> b;
#                   userspace TSO on (other_config:userspace-tso-enable=true, set before
#                   ovs-vswitchd starts), tx checksum offload left on: OVS at its best, the
#                   reference the ratios use
#   ovs-notso       the same without userspace TSO; the senders need `ethtool -K tx off`
#                   (the userspace datapath does not complete partial checksums then)
#   veth            a direct veth pair a <-> b (the limit)
#   esw-vxlan       VXLAN offloaded: VF0 (vm0) -> remote overlay 198.19.0.3 behind the
#                   uplink wire, where the kernel's vxlan (VNI 42) terminates it; the
#                   encap/decap flow set of topo_vxlan_flows, all four in hardware
#   vxlan-kernel    the kernel's vxlan on both ends of a veth pair between two namespaces
#                   (the VXLAN limit)
#
# On the same netdevs and daemon, esw's pipeline swapped out: bpf-redirect-esw (the
# redirect only) and classify-esw (bpf/bench/classify_min.bpf.c: one look-up of a key as
# wide as the hardware table's, then the redirect).
# For esw-offload, bpf-redirect-esw and classify-esw also the program's own cost per packet, as the
# kernel accounts it (one more UDP run with kernel.bpf_stats_enabled on, then put back).
# RUNS rounds (3; every topology set up, measured once and torn down per round, the order
# rotated each round). Per topology and round: iperf3 TCP, one stream, T s (10, --quick
# 3); iperf3 UDP with 64-byte payloads at -b 0, packets/s the receiver got (not for the
# VXLAN rows); the switch process's CPU (eswd or ovs-vswitchd: utime+stime from
# /proc/PID/stat, % of one core) during EACH iperf3 run; ping RTT p50/p99 over 200 pings at
# -i 0.01 in the last round. Values are medians over the rounds; ratios are against veth
# and ovs-tso of the same run, as the ratio of the medians and as the median of the
# rounds' own ratios (each round's rows measured minutes apart).
# Control plane: 10k and 50k distinct flows through `esw-dpctl add-flows FILE` (policy
# skip_hw) and `ovs-appctl dpctl/add-flows FILE` (the ovs-tso instance; its userspace
# datapath holds about 65k flows per thread, so the comparison stops at 50k). Tunnel
# tracker: scripts/bench-neigh.sh.
# Scale: offloaded flows (policy none, the masked table sized for the largest set):
# 50k and 200k (--quick), then 1M: one `add-flows` each (wall, flows in hardware),
# `dump-flows` and `del-flows` (wall), eswd's RSS empty, full and 5 s after del-flows,
# bytes per flow; 50k is compared with OVS's dpctl/add-flows of the same 50k. Beside each
# add, programs of scripts/scale/ measure parts of it alone: the kernel's map insert
# (map-insert.c), a first touch of its memory (first-touch.c) and the least an add of the
# same file does end to end (add-floor.c: parse, send, decode, index, map insert). The
# largest size's add and floor run SCALE_ROUNDS times (3) in turns, medians reported.
# --scale-only runs only that and the 50k comparison in rounds (five each, medians): esw
# software only (skip_hw), then esw offloaded on a fresh eswd and OVS's dpctl/add-flows in
# turns (both running; their ratio is the median of the rounds' own ratios). --dataplane adds the
# data plane's own batch rate (BPF_MAP_UPDATE_BATCH vs one update per rule, 1M rules:
# `swift test -c release --filter BatchTests/throughput`, built on the spot).
#
# Output: a Markdown report on stdout and in OUT/results.md (targets first, then every
# row, the per-run values, control plane, tracker), a bar chart in OUT/results.png (OUT
# defaults to bench/ in the repository). Needs root; installs missing packages through
# scripts/deps.sh. Everything it starts is torn down on any exit.

set -uo pipefail
LC_ALL=C; export LC_ALL
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$ROOT/scripts/netns.sh"
. "$ROOT/scripts/topology.sh"
. "$ROOT/scripts/deps.sh"
BIN=${ESW_BIN:-$ROOT/.build/release}
OUT=$ROOT/bench
QUICK=0 CONTROL_PLANE=1 SCALE=1 SCALE_ONLY=0 DATAPLANE=0
# `bench.sh resources ...`: the resource-management experiments (scripts/bench-resources.sh).
[ "${1:-}" = resources ] && { shift; exec bash "$ROOT/scripts/bench-resources.sh" "$@"; }
# `bench.sh placement ...`: the XDP offload placement study (scripts/bench-placement.sh).
[ "${1:-}" = placement ] && { shift; exec bash "$ROOT/scripts/bench-placement.sh" "$@"; }
# `bench.sh hinting ...`: partial offload against classification (scripts/bench-hinting.sh).
[ "${1:-}" = hinting ] && { shift; exec bash "$ROOT/scripts/bench-hinting.sh" "$@"; }
# `bench.sh conntrack ...`: a stateful ACL on esw and on OVS (scripts/bench-conntrack.sh).
[ "${1:-}" = conntrack ] && { shift; exec bash "$ROOT/scripts/bench-conntrack.sh" "$@"; }
# `bench.sh swpath ...`: the software path's 64-byte UDP, per packet, against OVS (scripts/bench-swpath.sh).
[ "${1:-}" = swpath ] && { shift; exec bash "$ROOT/scripts/bench-swpath.sh" "$@"; }
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) QUICK=1 ;;
        --no-scale) SCALE=0 ;;
        --scale-only) SCALE_ONLY=1 ;;
        --dataplane) DATAPLANE=1 ;;
        --bin) BIN=$2; shift ;;
        --out) OUT=$2; shift ;;
        --no-control-plane) CONTROL_PLANE=0 ;;
        -h|--help) sed -n '2,/^$/p' "$0"; exit 0 ;;
        *) echo "bench.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
RUNS=3
if [ $QUICK = 1 ]; then T=3; else T=10; fi
PINGS=200
PY=/usr/bin/python3
P=${ESW_BENCH_PREFIX:-eswbench-}
HZ=$(getconf CLK_TCK)
START_NS=$(date +%s%N)

# log MSG: progress on stderr
log() { printf '[bench] %s\n' "$*" >&2; }
# die MSG: log and exit 1 (the EXIT trap tears down)
die() { log "error: $*"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "needs root"
[[ $P =~ ^[A-Za-z0-9][A-Za-z0-9-]*-$ ]] || die "ESW_BENCH_PREFIX must be letters, digits and '-', ending in '-'"
topo_init "$P" || exit 2

# --- prerequisites: install only what is missing (scripts/deps.sh) ------------------
esw_install_deps >&2 || die "cannot install the packages bench needs (or no Swift toolchain)"
# The release build measured is the one of this tree (unless --bin or ESW_BIN names one).
if [ "$BIN" = "$ROOT/.build/release" ]; then
    log "swift build -c release"
    (cd "$ROOT" && swift build -c release 2>&1 | tail -n 3) >&2
    [ "${PIPESTATUS[0]}" -eq 0 ] || die "release build failed"
fi
for b in eswd esw-dpctl esw-devlink; do
    [ -x "$BIN/$b" ] || die "no $b in $BIN (swift build -c release, or --bin DIR)"
done
for c in iperf3 ovs-vswitchd ovsdb-server ovs-vsctl ovs-appctl ethtool ip ss ping; do
    command -v "$c" >/dev/null 2>&1 || die "$c not found after installing packages"
done
SCHEMA=""
for s in /usr/share/openvswitch/vswitch.ovsschema /usr/local/share/openvswitch/vswitch.ovsschema; do
    [ -r "$s" ] && { SCHEMA=$s; break; }
done
[ -n "$SCHEMA" ] || die "vswitch.ovsschema not found"

# --- state and cleanup --------------------------------------------------------------
D=$(mktemp -d /tmp/eswbench.XXXXXX)
PIDS=()
SWPID=""         # the switch process of the current topology (for CPU accounting)

. "$ROOT/scripts/bench-lib.sh"
. "$ROOT/scripts/bench-report.sh"

# --- topologies ---------------------------------------------------------------------
# Each sets CLI_NS SRV_NS DST (the client sends from CLI_NS to DST in SRV_NS) and SWPID.
# flow_note: "N in hardware, M in software" for the running eswd's flows
flow_note() { DPCTL dump-flows -m | awk '/offloaded:yes/{o++} /dp:ovs/{s++} END{printf "%d in hardware, %d in software", o, s}'; }

# setup_esw POLICY (none|skip_hw): VF0 <-> VF1 through eswd; sets NOTE_esw
setup_esw() {
    local pol=$1
    esw_two_vfs "$pol"
    topo_vf_flows "$D/esw-flows"
    DPCTL add-flows "$D/esw-flows" || die "esw-dpctl add-flows"
    [ "$pol" = skip_hw ] || wait_for 5 sh -c "[ \$(ESW_CONTROL=$D/eswd.sock $BIN/esw-dpctl dump-flows -m | grep -c 'offloaded:yes') -eq 4 ]" ||
        log "not every flow offloaded"
    NOTE_esw=$(flow_note)
    log "esw ($pol): flows: $NOTE_esw"
    CLI_NS=vm0 SRV_NS=vm1 DST=$(topo_vm_addr 1)
}

# setup_esw_vxlan: VF0 -> the kernel vxlan behind the uplink (lab topology), offloaded
setup_esw_vxlan() {
    topo_esw 1 start_eswd --mode switchdev --policy none || die "cannot build the esw topology"
    topo_vxlan_remote || die "cannot set up the vxlan remote"
    DPCTL add-if pf0vf0 >/dev/null || die "add-if pf0vf0"
    DPCTL add-if vxlan_sys_4789,type=vxlan >/dev/null || die "add-if vxlan_sys_4789"
    topo_vxlan_flows "$D/esw-vxlan-flows"
    DPCTL add-flows "$D/esw-vxlan-flows" || die "esw-dpctl add-flows (vxlan)"
    # The tracker has the kernel resolve the far VTEP's neighbour; then all four go to hardware.
    wait_for 10 sh -c "[ \$(ESW_CONTROL=$D/eswd.sock $BIN/esw-dpctl dump-flows -m | grep -c 'offloaded:yes') -eq 4 ]" ||
        log "not every vxlan flow offloaded: $(DPCTL dump-flows -m | grep -o 'not offloaded:[^,]*' | sort -u | tr '\n' ' ')"
    NOTE_vx=$(flow_note)
    log "esw vxlan: flows: $NOTE_vx"
    CLI_NS=vm0 SRV_NS=remote DST=$TOPO_OVERLAY_REMOTE
}

# setup_veth: a direct veth pair a <-> b
setup_veth() {
    topo_ns a b || die "namespaces"
    topo_veth a a0 b b0 || die "veth a0/b0"
    ip -n "${P}a" addr add 198.18.2.1/24 dev a0
    ip -n "${P}b" addr add 198.18.2.2/24 dev b0
    SWPID=""
    CLI_NS=a SRV_NS=b DST=198.18.2.2
}

# setup_bpf_redirect: a <-> s <-> b, two veth pairs whose switch-side ends (in s) carry a
# minimal tc program each that only redirects into the other VM (bpf/bench/redirect_peer.bpf.c):
# what any tc switch must pay at least, measured beside esw
setup_bpf_redirect() {
    setup_two_pairs s 198.18.4
    local dev peer
    for dev in sa sb; do
        peer=$([ $dev = sa ] && echo sb || echo sa)
        ip -n "${P}s" link set "$dev" mtu 65535
        tc -n "${P}s" qdisc add dev "$dev" clsact || die "clsact $dev"
        attach_program redirect_peer s "$dev" "$peer"
    done
    SWPID=""
}

# swap_in_forwarder: the datapath lets go of the representors and the no-lookup
# forwarder moves frames between them (SWPID: the forwarder, for its CPU)
swap_in_forwarder() {
    DPCTL del-if pf0vf0 >/dev/null && DPCTL del-if pf0vf1 >/dev/null || die "del-if"
    # Its packet sockets forward, they do not watch: no capture mirror for them.
    DEVLINK dev param set esw0 name rep_capture_mirror value false || die "rep_capture_mirror"
    ip netns exec "${P}host" "$D/forward" pf0vf0 pf0vf1 &
    SWPID=$!; PIDS+=("$SWPID")
}

# attach_program PROGRAM NS DEV PEER: DEV's tc ingress (clsact in place) runs
# bpf/bench/PROGRAM.bpf.c towards PEER's far end, in place of whatever filter DEV had
attach_program() {
    local prog=$1 ns=$2 dev=$3 peer=$4 idx clang
    idx=$(ip netns exec "$P$ns" cat "/sys/class/net/$peer/ifindex")
    clang=$(dirname "$(command -v swift)")/clang
    "$clang" -O2 -g -target bpf -I"/usr/include/$(uname -m)-linux-gnu" -DTARGET_IFINDEX="$idx" \
        -c "$ROOT/bpf/bench/$prog.bpf.c" -o "$D/$prog-$ns-$dev.o" || die "clang $prog"
    tc -n "$P$ns" filter del dev "$dev" ingress 2>/dev/null
    tc -n "$P$ns" filter add dev "$dev" ingress bpf da obj "$D/$prog-$ns-$dev.o" sec tc || die "tc filter $dev"
}

# pipeline_cost NAME: one UDP run (64 B, -b 0) VF0 -> VF1 with the kernel's BPF run-time
# accounting on (kernel.bpf_stats_enabled, put back as it was right after): the
# nanoseconds per packet of the program on VF0's switch-side end, as the kernel measures
# them (bpftool prog show: run_time_ns / run_cnt over the run). Into R[NAME,ns].
pipeline_cost() {
    local name=$1 dev id before after old
    dev=$(topo_vf_switch_side 0)
    id=$(tc -n "${P}host" filter show dev "$dev" ingress | sed -n 's/.* id \([0-9]*\) .*/\1/p' | head -n 1)
    R[$name,ns]=n/a
    [ -n "$id" ] && command -v bpftool >/dev/null || { log "$name: no program id or no bpftool: no per-packet cost"; return; }
    old=$(sysctl -n kernel.bpf_stats_enabled 2>/dev/null || echo 0)
    sysctl -qw kernel.bpf_stats_enabled=1 || { log "$name: kernel.bpf_stats_enabled not writable"; return; }
    prog_stats() { bpftool prog show id "$id" -j | "$PY" -c 'import json,sys; d=json.load(sys.stdin); print(d.get("run_time_ns", 0), d.get("run_cnt", 0))'; }
    before=$(prog_stats)
    iperf_once udp "$name.cost" >/dev/null
    after=$(prog_stats)
    sysctl -qw kernel.bpf_stats_enabled="$old"
    R[$name,ns]=$(awk -v b="$before" -v a="$after" 'BEGIN{split(b, x, " "); split(a, y, " "); n = y[2] - x[2];
        if (n > 0) printf "%.0f", (y[1] - x[1]) / n; else print "n/a"}')
    log "$name: the program on $dev costs ${R[$name,ns]} ns a packet (kernel's accounting, 64 B UDP)"
}

# swap_in PROGRAM: in the esw topology (flows in hardware), the VFs' switch-side ends run
# bpf/bench/PROGRAM.bpf.c instead of esw's pipeline: the same netdevs, namespaces and
# running daemon, so the difference to esw-offload is the pipeline's own work
# (redirect_peer: only the redirect; classify_min: one look-up of a key of the hardware
# table's width first)
swap_in() {
    attach_program "$1" host "$(topo_vf_switch_side 0)" "$(topo_vf_switch_side 1)"
    attach_program "$1" host "$(topo_vf_switch_side 1)" "$(topo_vf_switch_side 0)"
}

# setup_vxlan_kernel: kernel vxlan (VNI 42, port 4789) on both ends of a veth pair a <-> b
setup_vxlan_kernel() {
    topo_ns a b || die "namespaces"
    topo_veth a a0 b b0 || die "veth a0/b0"
    ip -n "${P}a" addr add 198.18.3.1/24 dev a0
    ip -n "${P}b" addr add 198.18.3.2/24 dev b0
    ip -n "${P}a" link add vx42 type vxlan id "$TOPO_VNI" remote 198.18.3.2 local 198.18.3.1 dstport "$TOPO_VXLAN_PORT" dev a0 || die "vxlan a"
    ip -n "${P}b" link add vx42 type vxlan id "$TOPO_VNI" remote 198.18.3.1 local 198.18.3.2 dstport "$TOPO_VXLAN_PORT" dev b0 || die "vxlan b"
    ip -n "${P}a" addr add 198.19.3.1/24 dev vx42
    ip -n "${P}b" addr add 198.19.3.2/24 dev vx42
    ip -n "${P}a" link set vx42 up
    ip -n "${P}b" link set vx42 up
    SWPID=""
    CLI_NS=a SRV_NS=b DST=198.19.3.2
}

# --- measurements (iperf_once: scripts/bench-lib.sh) -----------------------------------
# ping_stats: prints "P50 P99 LOSS%" in ms
ping_stats() {
    in_ns "$CLI_NS" ping -c "$PINGS" -i 0.01 -W 1 "$DST" 2>/dev/null | "$PY" -c '
import re, sys
t = sorted(float(m.group(1)) for m in re.finditer(r"time=([0-9.]+) ms", sys.stdin.read()))
n = int(sys.argv[1])
if not t:
    print("nan nan 100"); sys.exit()
def q(p): return t[min(len(t) - 1, int(round(p * (len(t) - 1))))]
print("%.3f %.3f %.1f" % (q(0.5), q(0.99), 100.0 * (n - len(t)) / n))' "$PINGS"
}

declare -A R   # R[name,metric]
NAMES=()

# measure NAME WHAT UDP(1|0): one iperf3 TCP run, one UDP run if UDP=1, into R[NAME,*runs]
# (a round's share); the pings in the last round
measure() {
    local name=$1 what=$2 udp=$3 out v c p50 p99 loss
    [ -n "${R[$name,what]:-}" ] || { NAMES+=("$name"); R[$name,what]=$what; R[$name,tcpruns]=""; R[$name,tcpcpuruns]=""
                                     R[$name,udpruns]=""; R[$name,udpcpuruns]=""; }
    wait_for 10 in_ns "$CLI_NS" ping -c 1 -W 1 "$DST" || log "$name: no ping reply before measuring"
    out=$(iperf_once tcp "$name.tcp.$ROUND"); read -r v c <<<"$out"
    R[$name,tcpruns]+="${R[$name,tcpruns]:+ }$v"; R[$name,tcpcpuruns]+="${R[$name,tcpcpuruns]:+ }$c"
    log "$name: round $ROUND: TCP $v Gbit/s, switch CPU $c${SWPID:+%}"
    if [ "$udp" = 1 ]; then
        out=$(iperf_once udp "$name.udp.$ROUND"); read -r v c <<<"$out"
        R[$name,udpruns]+="${R[$name,udpruns]:+ }$v"; R[$name,udpcpuruns]+="${R[$name,udpcpuruns]:+ }$c"
        log "$name: round $ROUND: UDP 64 B $v kpps delivered, switch CPU $c${SWPID:+%}"
    fi
    R[$name,cpu]=${SWPID:+yes}
    [ "$ROUND" = "$RUNS" ] || return 0
    read -r p50 p99 loss < <(ping_stats)
    log "$name: ping p50 $p50 ms, p99 $p99 ms, loss $loss%"
    R[$name,p50]=$p50; R[$name,p99]=$p99; R[$name,loss]=$loss
}

# summarize NAME: the medians of NAME's runs (after the last round)
summarize() {
    local name=$1 k
    for k in tcp tcpcpu udp udpcpu; do
        if [ -z "${R[$name,${k}runs]}" ] || { [[ $k = *cpu ]] && [ -z "${R[$name,cpu]}" ]; }; then
            R[$name,$k]=n/a
        else
            R[$name,$k]=$(tr ' ' '\n' <<<"${R[$name,${k}runs]}" | median)
        fi
    done
}

# bench_topology NAME: sets NAME up, measures it (one round), tears it down; the extras
# (the program's own cost, the control-plane rates) in the last round only
bench_topology() {
    local last=0
    [ "$ROUND" = "$RUNS" ] && last=1
    case $1 in
    esw-offload)
        setup_esw none; NOTE_off=$NOTE_esw
        measure esw-offload "esw, VF <-> VF, flows in hardware" 1
        [ $last = 1 ] && pipeline_cost esw-offload
        # the redirect-only program in place of esw's pipeline (the same VF netdevs)
        swap_in redirect_peer
        measure bpf-redirect-esw "minimal tc program in place of esw's pipeline, on esw's own VF netdevs (what the pipeline adds)" 1
        [ $last = 1 ] && pipeline_cost bpf-redirect-esw
        swap_in classify_min
        measure classify-esw "one look-up of a key of the hardware table's width, then the redirect, on esw's own VF netdevs (the least a switch with this table does)" 1
        [ $last = 1 ] && pipeline_cost classify-esw ;;
    esw-software)
        setup_esw skip_hw; NOTE_sw=$NOTE_esw
        measure esw-software "esw, VF <-> VF, software datapath (skip_hw)" 1
        [ $last = 1 ] && [ $CONTROL_PLANE = 1 ] && { cp_esw 10000; cp_esw 50000; }
        swap_in_forwarder
        measure forward-representors "no-lookup AF_PACKET forwarder in place of esw's datapath, on its representors (what any userspace path over them gets)" 1 ;;
    ovs-tso)
        NOTE_ovs_tso=""
        setup_ovs 1
        measure ovs-tso "OVS 3.1 userspace datapath, userspace TSO on (reference)" 1
        [ $last = 1 ] && [ $CONTROL_PLANE = 1 ] && { cp_ovs 10000; cp_ovs 50000; }
        OVS_VER=$(ovs-vswitchd --version | sed -n 's/.*(Open vSwitch) \([0-9.]*\).*/\1/p' | head -n 1) ;;
    ovs-notso)
        setup_ovs 0
        measure ovs-notso "OVS 3.1 userspace datapath, no TSO, tx csum off" 1 ;;
    veth)
        setup_veth
        measure veth "direct veth pair (the limit)" 1 ;;
    bpf-redirect)
        setup_bpf_redirect
        measure bpf-redirect "minimal tc program: bpf_redirect_peer only, no lookup (what a tc switch must pay)" 1 ;;
    esw-vxlan)
        setup_esw_vxlan
        measure esw-vxlan "esw, VF -> remote over VXLAN, encap/decap in hardware" 0 ;;
    vxlan-kernel)
        setup_vxlan_kernel
        measure vxlan-kernel "kernel vxlan <-> kernel vxlan over a veth pair (the VXLAN limit)" 0 ;;
    esac
    teardown
}

# gen_flows N IN OUT FILE: N distinct exact-source IPv4 flows in_port(IN) -> OUT
gen_flows() {
    awk -v n="$1" -v i="$2" -v o="$3" 'BEGIN{
        for (k = 0; k < n; k++)
            printf "in_port(%d),eth(),eth_type(0x0800),ipv4(src=198.%d.%d.%d,frag=no) %d\n",
                   i, 18 + int(k / 65536), int(k / 256) % 256, k % 256, o }' > "$4"
}
# esw_two_vfs POLICY [eswd options...]: the esw topology with an eswd of that policy and
# the two VF representors added to its datapath
esw_two_vfs() {
    local pol=$1; shift
    topo_esw 2 start_eswd --mode switchdev --policy "$pol" "$@" || die "cannot build the esw topology"
    DPCTL add-if pf0vf0 >/dev/null || die "add-if pf0vf0"
    DPCTL add-if pf0vf1 >/dev/null || die "add-if pf0vf1"
}

# now_ns: the clock in nanoseconds
now_ns() { date +%s%N; }

# cp_esw N [WHO]: time esw-dpctl add-flows of N flows on the eswd running; sets R[WHO,cpN]
# (flows/s) and count. WHO esw (default): skip_hw, the flows counted in the dump; hw: policy
# none, the flows counted in hardware (`show`'s offloaded flows).
cp_esw() {
    local n=$1 who=${2:-esw} f=$D/cp-esw-$1 t0 t1 rc got c0 c1
    gen_flows "$n" 1 2 "$f"
    DPCTL del-flows >/dev/null 2>&1
    c0=$(cputicks)
    t0=$(now_ns); DPCTL add-flows "$f" >"$D/cp-esw-$n.out" 2>&1; rc=$?; t1=$(now_ns)
    c1=$(cputicks)
    # The daemon's own CPU time for the batch (the CLI's text parsing is the rest).
    R[$who,cp$n,daemon]=$(tick_secs "$c0" "$c1")
    if [ "$who" = hw ]; then
        got=$(DPCTL show | awk '/offloaded flows:/{print $3}')
    else
        got=$(DPCTL dump-flows 2>/dev/null | grep -c 'ipv4(src=198\.')
    fi
    R[$who,cp$n,s]=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", (b-a)/1e9}')
    R[$who,cp$n]=$(awk -v a="$t0" -v b="$t1" -v n="${got:-0}" 'BEGIN{printf "%.0f", n/((b-a)/1e9)}')
    R[$who,cp$n,got]=$got
    [ $rc -eq 0 ] || log "esw add-flows $n: rc=$rc: $(tail -n 2 "$D/cp-esw-$n.out" | tr '\n' ' ')"
    log "esw add-flows ($who): $got of $n flows in ${R[$who,cp$n,s]} s (${R[$who,cp$n]} flows/s)"
    DPCTL del-flows >/dev/null 2>&1
}

# cp_hw N: cp_esw N hw (on an eswd with policy none)
cp_hw() { cp_esw "$1" hw; }

# cp_ovs N: time ovs-appctl dpctl/add-flows of N flows; sets R[ovs,cpN] (flows/s) and count
cp_ovs() {
    local n=$1 f=$D/cp-ovs-$1 t0 t1 rc got pin pout
    pin=$($APPCTL dpctl/show | sed -n 's/^ *port \([0-9]*\): sa\b.*/\1/p')
    pout=$($APPCTL dpctl/show | sed -n 's/^ *port \([0-9]*\): sb\b.*/\1/p')
    [ -n "$pin" ] && [ -n "$pout" ] || die "OVS port numbers of sa/sb not found"
    gen_flows "$n" "$pin" "$pout" "$f"
    $APPCTL revalidator/pause >/dev/null 2>&1
    $APPCTL dpctl/del-flows >/dev/null 2>&1
    t0=$(now_ns); $APPCTL dpctl/add-flows "$f" >"$D/cp-ovs-$n.out" 2>&1; rc=$?; t1=$(now_ns)
    got=$($APPCTL dpctl/dump-flows 2>/dev/null | grep -c 'ipv4(src=198\.')
    R[ovs,cp$n,s]=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", (b-a)/1e9}')
    R[ovs,cp$n]=$(awk -v a="$t0" -v b="$t1" -v n="$got" 'BEGIN{printf "%.0f", n/((b-a)/1e9)}')
    R[ovs,cp$n,got]=$got
    [ $rc -eq 0 ] || log "ovs dpctl/add-flows $n: rc=$rc: $(grep -v '^$' "$D/cp-ovs-$n.out" | tail -n 2 | tr '\n' ' ')"
    log "ovs dpctl/add-flows: $got of $n flows in ${R[ovs,cp$n,s]} s (${R[ovs,cp$n]} flows/s)"
    $APPCTL dpctl/del-flows >/dev/null 2>&1
    $APPCTL revalidator/resume >/dev/null 2>&1
}

# cp_rounds esw|hw|ovs N: cp_esw/cp_hw/cp_ovs N, CP_ROUNDS times (default 5); R[who,cpN] is then
# the median and R[who,cpN,runs] every round's flows/s
cp_rounds() {
    local who=$1 n=$2 runs=()
    for _ in $(seq "${CP_ROUNDS:-5}"); do "cp_$who" "$n"; runs+=("${R[$who,cp$n]}"); done
    R[$who,cp$n]=$(printf '%s\n' "${runs[@]}" | median)
    R[$who,cp$n,runs]="${runs[*]}"
}

# cp_alternating N: cp_hw and cp_ovs of N flows in turns, CP_ROUNDS times each, the order
# swapped every round, with eswd (ESW_PID) and ovs-vswitchd (OVS_PID) both running: the
# machine's drift over the rounds falls on both alike, and each round's pair is measured
# seconds apart. R[hw|ovs,cpN] are the medians, R[hw|ovs,cpN,runs] every round's flows/s.
cp_alternating() {
    local n=$1 r hw=() ovs=()
    for r in $(seq "${CP_ROUNDS:-5}"); do
        if [ $((r % 2)) = 1 ]; then
            SWPID=$ESW_PID; cp_hw "$n"; SWPID=$OVS_PID; cp_ovs "$n"
        else
            SWPID=$OVS_PID; cp_ovs "$n"; SWPID=$ESW_PID; cp_hw "$n"
        fi
        hw+=("${R[hw,cp$n]}"); ovs+=("${R[ovs,cp$n]}")
    done
    R[hw,cp$n]=$(printf '%s\n' "${hw[@]}" | median); R[hw,cp$n,runs]="${hw[*]}"
    R[ovs,cp$n]=$(printf '%s\n' "${ovs[@]}" | median); R[ovs,cp$n,runs]="${ovs[*]}"
}

# rss_mib: the switch process's resident memory, MiB
rss_mib() { awk '/^VmRSS/{print int($2 / 1024)}' "/proc/$SWPID/status" 2>/dev/null || echo 0; }
# thread_ticks: "COMM TICKS" (utime+stime) for every thread of the switch process
thread_ticks() {
    local t
    for t in /proc/"$SWPID"/task/*; do
        printf '%s %s\n' "$(cat "$t/comm" 2>/dev/null)" "$(sed 's/^.*) //' "$t/stat" 2>/dev/null | awk '{print $12 + $13}')"
    done
}
# thread_secs BEFORE AFTER COMM: CPU seconds threads named COMM used between two thread_ticks
thread_secs() {
    awk -v c="$3" -v hz="$HZ" 'FNR == NR { if ($1 == c) a += $2; next } $1 == c { b += $2 }
        END { printf "%.2f", (b - a) / hz }' <(printf '%s\n' "$1") <(printf '%s\n' "$2")
}
# secs T0 T1: nanosecond stamps to seconds (3 decimals)
secs() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.3f", (b-a)/1e9}'; }
# tick_secs T0 T1: two reads of a clock-tick counter (/proc) to seconds (2 decimals)
tick_secs() { awk -v a="$1" -v b="$2" -v hz="$HZ" 'BEGIN{printf "%.2f", (b-a)/hz}'; }
# per_s N SECONDS: N / SECONDS, rounded
per_s() { awk -v n="$1" -v s="$2" 'BEGIN{ if (s + 0 == 0) print "n/a"; else printf "%.0f", n / s }'; }

# scale_esw SIZES...: offloaded flows through one eswd (policy none, masked table and
# counters sized for the largest set), one scale_run per size
scale_esw() {
    local max=0 n
    for n in "$@"; do [ "$n" -gt "$max" ] && max=$n; done
    SCALE_LARGEST=$max
    printf 'masked = %d\ncounters = %d\n' $((max + 1024)) $((max + 1024)) >"$D/scale-profile"
    esw_two_vfs none --profile "$D/scale-profile"
    # The kernel's part of an add, measured alone (scale_run).
    "$CC" -O2 -Wall -o "$D/map-insert" "$ROOT/scripts/scale/map-insert.c" -lbpf || die "map-insert.c does not build"
    # The memory's part of an add, measured alone right before it (scale_run).
    "$CC" -O2 -Wall -o "$D/first-touch" "$ROOT/scripts/scale/first-touch.c" || die "first-touch.c does not build"
    # The least an add-flows does end to end, a minimal program on the same file (scale_run).
    "$CC" -O2 -Wall -o "$D/add-floor" "$ROOT/scripts/scale/add-floor.c" -lbpf -lpthread || die "add-floor.c does not build"
    for n in "$@"; do scale_run "$n"; done
}

# kernel_quiet: waits (10 s at most) until the CPUs spend at most 10 ms of system time in
# 0.2 s. The kernel frees a BPF map's elements in a worker after its last user closed it
# (map-insert's million rules: about 1.4 s of CPU), beside whatever is measured next.
kernel_quiet() {
    local a b k
    a=$(awk '/^cpu /{print $4 + $7 + $8}' /proc/stat)
    for k in $(seq 50); do
        sleep 0.2
        b=$(awk '/^cpu /{print $4 + $7 + $8}' /proc/stat)
        [ $((b - a)) -le $((HZ / 100)) ] && return 0
        a=$b
    done
}

# scale_add N FILE: one add-flows of FILE's N flows, once the kernel has freed the maps of
# what ran before (their elements are freed by a kernel worker, beside whatever runs next),
# right after a first touch of what it will fault in (1 KiB a flow: eswd's heap and tables,
# the kernel's BPF elements) by a program doing only that; sets R[scaleN,*] of this add
scale_add() {
    local n=$1 f=$2 t0 t1 c0 c1 k0 k1 th0 th1 s0 s1
    kernel_quiet
    R[scale$n,touch]=$("$D/first-touch" $((n * 1024)) 2>>"$D/first-touch.err" | awk '{print $2}')
    th0=$(thread_ticks); c0=$(cputicks); k0=$(children_ticks); s0=$(steal_ticks); t0=$(now_ns)
    DPCTL add-flows "$f" >"$D/scale-add-$n.out" 2>&1 || log "esw add-flows $n: $(tail -n 2 "$D/scale-add-$n.out" | tr '\n' ' ')"
    t1=$(now_ns); s1=$(steal_ticks); k1=$(children_ticks); c1=$(cputicks); th1=$(thread_ticks)
    R[scale$n,add]=$(secs "$t0" "$t1")
    R[scale$n,steal]=$(tick_secs "$s0" "$s1")
    R[scale$n,addcpu]=$(tick_secs "$c0" "$c1")
    R[scale$n,cli]=$(tick_secs "$k0" "$k1")
    R[scale$n,control]=$(thread_secs "$th0" "$th1" eswd)
    R[scale$n,writer]=$(thread_secs "$th0" "$th1" esw-bpf-write)
    R[scale$n,prefault]=$(thread_secs "$th0" "$th1" esw-prefault)
    R[scale$n,hw]=$(DPCTL show | awk '/offloaded flows:/{print $3}')
}

# scale_floor N FILE: the least an add of FILE does end to end (scripts/scale/add-floor.c:
# parse, send, decode, index, map insert), once the kernel has freed the maps before
scale_floor() {
    kernel_quiet
    "$D/add-floor" "$2" "$1" 2>>"$D/add-floor.err" | awk '{print $2}'
}

# scale_run N: add-flows, dump-flows, del-flows of N offloaded flows; sets R[scaleN,*].
# The largest size's add runs SCALE_ROUNDS times (3), taking turns with the pipeline
# floor (one add of a million flows is at the mercy of this VM, whose speed moves by a
# third within minutes): add, floor and first touch are the medians of the rounds, each
# round's value kept in R[scaleN,adds|floors|touches|controls|steals]; the CPU split is the last
# round's.
scale_run() {
    local n=$1 f=$D/scale-$1 t0 t1 s0 s1 lines k r rounds=1 hw adds=() floors=() touches=() controls=() steals=()
    gen_flows "$n" 1 2 "$f"
    R[scale$n,rss0]=$(rss_mib)
    scale_add "$n" "$f"
    adds+=("${R[scale$n,add]}"); touches+=("${R[scale$n,touch]}"); controls+=("${R[scale$n,control]}"); steals+=("${R[scale$n,steal]}")
    hw=${R[scale$n,hw]:-0}
    R[scale$n,rss]=$(rss_mib)
    s0=$(steal_ticks); t0=$(now_ns); lines=$(DPCTL dump-flows | wc -l); t1=$(now_ns); s1=$(steal_ticks)
    R[scale$n,dump]=$(secs "$t0" "$t1"); R[scale$n,dumped]=$lines
    R[scale$n,dumpsteal]=$(tick_secs "$s0" "$s1")
    t0=$(now_ns); DPCTL del-flows >/dev/null 2>&1; t1=$(now_ns)
    R[scale$n,del]=$(secs "$t0" "$t1")
    # eswd gives the memory back a second or two after the table shrank
    for k in 1 2 3 4 5; do sleep 1; done
    R[scale$n,rssafter]=$(rss_mib)
    # The kernel's part alone (scripts/scale/map-insert.c), beside the add it is part of.
    R[scale$n,kernel]=$("$D/map-insert" "$n" 2>>"$D/map-insert.err" | awk '{print $2}')
    floors+=("$(scale_floor "$n" "$f")")
    [ "$n" = "$SCALE_LARGEST" ] && rounds=${SCALE_ROUNDS:-3}
    for r in $(seq 2 "$rounds"); do
        # the floor first in even rounds, the add first in odd ones
        [ $((r % 2)) = 0 ] && floors+=("$(scale_floor "$n" "$f")")
        scale_add "$n" "$f"
        adds+=("${R[scale$n,add]}"); touches+=("${R[scale$n,touch]}"); controls+=("${R[scale$n,control]}"); steals+=("${R[scale$n,steal]}")
        [ "${R[scale$n,hw]:-0}" -lt "$hw" ] && hw=${R[scale$n,hw]:-0}
        DPCTL del-flows >/dev/null 2>&1
        # eswd trims its heap at the two timer ticks after the drop (MemoryReturn), as in
        # the first round's 5 s wait: every round's add starts from a trimmed heap
        sleep 3
        [ $((r % 2)) = 1 ] && floors+=("$(scale_floor "$n" "$f")")
    done
    R[scale$n,rounds]=$rounds
    R[scale$n,hw]=$hw
    R[scale$n,adds]="${adds[*]}"; R[scale$n,add]=$(printf '%s\n' "${adds[@]}" | median)
    R[scale$n,floors]="${floors[*]}"; R[scale$n,floor]=$(printf '%s\n' "${floors[@]}" | median)
    R[scale$n,touches]="${touches[*]}"; R[scale$n,touch]=$(printf '%s\n' "${touches[@]}" | median)
    R[scale$n,controls]="${controls[*]}"; R[scale$n,steals]="${steals[*]}"
    R[scale$n,rate]=$(per_s "$hw" "${R[scale$n,add]}")
    R[scale$n,perflow]=$(awk -v a="${R[scale$n,rss0]}" -v b="${R[scale$n,rss]}" -v n="$n" 'BEGIN{printf "%.0f", (b-a)*1048576/n}')
    local each=""; [ "$rounds" -gt 1 ] && each=" (median of $rounds rounds; each: add ${R[scale$n,adds]} s, control thread ${R[scale$n,controls]} s, steal ${R[scale$n,steals]} s, floor ${R[scale$n,floors]} s, first touch ${R[scale$n,touches]} s)"
    log "scale $n: add ${R[scale$n,add]} s (${R[scale$n,rate]} flows/s, ${R[scale$n,hw]} in hardware, steal ${R[scale$n,steal]} s, daemon CPU ${R[scale$n,addcpu]} s:" \
        "control ${R[scale$n,control]}, writer ${R[scale$n,writer]}, prefault ${R[scale$n,prefault]}; the CLI ${R[scale$n,cli]} s;" \
        "the kernel's map insert alone ${R[scale$n,kernel]:-n/a} s, the pipeline floor ${R[scale$n,floor]:-n/a} s, a first touch of $((n / 1024)) MiB alone ${R[scale$n,touch]:-n/a} s)$each," \
        "dump ${R[scale$n,dump]} s ($lines lines, steal ${R[scale$n,dumpsteal]} s), del ${R[scale$n,del]} s;" \
        "RSS ${R[scale$n,rss0]} -> ${R[scale$n,rss]} -> ${R[scale$n,rssafter]} MiB (${R[scale$n,perflow]} B/flow)"
    rm -f "$f"
}

# dataplane_bench N: the data plane's batch rate against one write per rule (root test)
dataplane_bench() {
    local line
    line=$(cd "$ROOT" && ESW_DATAPLANE_BENCH=$1 swift test -c release --filter 'BatchTests/throughput' 2>&1 | grep -o 'dataplane-bench.*' | tail -n 1)
    DATAPLANE_LINE=${line#dataplane-bench }
    log "data plane: ${DATAPLANE_LINE:-no result}"
}

# --- run ----------------------------------------------------------------------------
log "binaries: $BIN; $RUNS x $T s per iperf3 test; $PINGS pings; namespaces $P*"
# leftovers of an interrupted earlier run (our prefix only)
esw_del_netns $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^$P")

if [ $SCALE_ONLY = 0 ]; then
# The no-lookup forwarder (swap_in_forwarder), built before the first round.
"$CC" -O2 -Wall -o "$D/forward" "$ROOT/scripts/swpath/forward.c" || die "forward.c does not build"
# Rounds: every topology once per round (one TCP and one UDP run each), the order rotated
# from round to round, so that the machine's drift over the run (a shared VM) falls on
# every row alike and each round's rows are measured minutes apart, not a quarter hour.
# ESW_BENCH_TOPOLOGIES="NAME..." measures only those (a partial run for development).
TOPOLOGIES=(${ESW_BENCH_TOPOLOGIES:-esw-offload esw-software ovs-tso ovs-notso veth bpf-redirect esw-vxlan vxlan-kernel})
for ROUND in $(seq $RUNS); do
    for i in "${!TOPOLOGIES[@]}"; do
        t=${TOPOLOGIES[$(( (i + ROUND - 1) % ${#TOPOLOGIES[@]} ))]}
        log "== round $ROUND of $RUNS: $t"
        bench_topology "$t"
    done
done
for n in "${NAMES[@]}"; do summarize "$n"; done

log "== tunnel tracker reaction (10k encap flows behind one neighbour)"
NEIGH_LINE=$(ESW_BIN="$BIN" ESW_BENCH_NEIGH_PREFIX="${P}neigh-" bash "$ROOT/scripts/bench-neigh.sh" 10000 2>>"$D/neigh.err" | tail -n 1)
log "$NEIGH_LINE"
fi

if [ $SCALE = 1 ] || [ $SCALE_ONLY = 1 ]; then
    if [ $QUICK = 1 ]; then SCALE_SIZES=(50000 200000); else SCALE_SIZES=(50000 200000 1000000); fi
    log "== scale: offloaded flows (${SCALE_SIZES[*]})"
    scale_esw "${SCALE_SIZES[@]}"
    teardown
    if [ $SCALE_ONLY = 1 ]; then
        log "== esw software only (skip_hw): add-flows of 50k, as the control-plane part does"
        esw_two_vfs skip_hw
        # Several rounds each (one add takes a tenth of a second: a single one is at
        # this VM's mercy), the median reported with every round.
        cp_rounds esw 50000
        teardown
        log "== esw offloaded (policy none, a fresh eswd) and Open vSwitch's dpctl/add-flows: 50k, rounds in turns"
        esw_two_vfs none --profile "$D/scale-profile"
        ESW_PID=$SWPID
        NOTE_ovs_tso=""
        setup_ovs 1
        OVS_PID=$SWPID
        cp_alternating 50000
        OVS_VER=$(ovs-vswitchd --version | sed -n 's/.*(Open vSwitch) \([0-9.]*\).*/\1/p' | head -n 1)
        teardown
    fi
    [ $DATAPLANE = 1 ] && dataplane_bench 1000000
fi

# --- report (scripts/bench-report.sh) ------------------------------------------------
END_NS=$(date +%s%N)
ELAPSED=$(awk -v a="$START_NS" -v b="$END_NS" 'BEGIN{printf "%.0f", (b-a)/1e9}')
mkdir -p "$OUT"
GITREV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
git -C "$ROOT" diff --quiet HEAD -- Sources 2>/dev/null || GITREV="$GITREV+local changes"
BUILD="$BIN/eswd (commit $GITREV, built $(date -u -r "$BIN/eswd" '+%Y-%m-%d %H:%M UTC'))"
REF=ovs-tso
# --scale-only keeps the full report of the last complete run
REPORT=$OUT/results.md; [ $SCALE_ONLY = 1 ] && REPORT=$OUT/results-scale.md
bench_report > "$REPORT"
cat "$REPORT"

[ $SCALE_ONLY = 1 ] && { log "wrote $REPORT in ${ELAPSED} s"; exit 0; }
bench_plot "$OUT/results.png" || log "plot failed"
log "wrote $OUT/results.md and $OUT/results.png in ${ELAPSED} s"
