#!/usr/bin/env bash
# bench.sh — esw against Open vSwitch's userspace datapath and a plain veth pair.
#
# Usage: scripts/bench.sh [--quick] [--bin DIR] [--out DIR] [--no-control-plane]
#
# Builds four topologies one after another (namespaces eswbench-*, addresses from
# 198.18.0.0/15, nothing in the root namespace) and measures each the same way:
#
#   esw-offload   eswd --vfs 2 (switchdev): VF0 (eswbench-vm0) <-> VF1 (eswbench-vm1),
#                 one datapath flow each way for IPv4 plus ARP, offloaded (hardware rules)
#   esw-software  the same flows under --policy skip_hw (software datapath)
#   ovs-netdev    Open vSwitch userspace datapath (datapath_type=netdev), a bridge with two
#                 system ports (veth) and the default NORMAL action, namespaces a <-> b
#   veth          a direct veth pair a <-> b (the limit)
#
# Per topology: iperf3 TCP, one stream, RUNS x T s (median; 3 x 10 s, --quick 3 x 3 s);
# iperf3 UDP with 64-byte payloads at -b 0, packets/s the receiver got (median of RUNS);
# ping RTT p50/p99 over 200 pings at -i 0.01; CPU of the switch process during the TCP
# runs (utime+stime from /proc/PID/stat, % of one core). ESW_FASTPATH_NICE=N sets the
# packet threads' niceness (devlink param fastpath_nice) before measuring.
# Control plane: 10k and 100k distinct flows through `esw-dpctl add-flows FILE`
# (policy skip_hw) and `ovs-appctl dpctl/add-flows FILE` (userspace datapath).
#
# Output: a Markdown table on stdout and in OUT/results.md, a bar chart in OUT/results.png
# (OUT defaults to bench/ in the repository). Needs root. Everything it starts is torn
# down on any exit.

set -u
LC_ALL=C; export LC_ALL
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$ROOT/scripts/netns.sh"
BIN=${ESW_BIN:-$ROOT/.build/release}
OUT=$ROOT/bench
QUICK=0 CONTROL_PLANE=1
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) QUICK=1 ;;
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
P=eswbench-
HZ=$(getconf CLK_TCK)
START_NS=$(date +%s%N)

log() { printf '[bench] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "needs root"

# --- prerequisites: install only what is missing ------------------------------------
need=()
command -v iperf3 >/dev/null 2>&1 || need+=(iperf3)
command -v ovs-vswitchd >/dev/null 2>&1 && command -v ovsdb-server >/dev/null 2>&1 || need+=(openvswitch-switch)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v ping >/dev/null 2>&1 || need+=(iputils-ping)
[ -x "$PY" ] && "$PY" -c 'import matplotlib' >/dev/null 2>&1 || need+=(python3-matplotlib)
if [ ${#need[@]} -gt 0 ]; then
    log "installing: ${need[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y "${need[@]}" >/dev/null || {
        apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y "${need[@]}" >/dev/null; } \
        || die "apt-get install ${need[*]} failed"
fi
for b in eswd esw-dpctl esw-devlink; do
    [ -x "$BIN/$b" ] || die "no $b in $BIN (swift build -c release, or --bin DIR)"
done
SCHEMA=""
for s in /usr/share/openvswitch/vswitch.ovsschema /usr/local/share/openvswitch/vswitch.ovsschema; do
    [ -r "$s" ] && { SCHEMA=$s; break; }
done
[ -n "$SCHEMA" ] || die "vswitch.ovsschema not found"

# --- state and cleanup --------------------------------------------------------------
D=$(mktemp -d /tmp/eswbench.XXXXXX)
PIDS=()
NSS=()
SWPID=""         # the switch process of the current topology (for CPU accounting)

teardown() {     # kill what we started, delete our namespaces
    local p n
    for f in "$D"/ovs/vsd.pid "$D"/ovs/ovsdb.pid; do
        [ -s "$f" ] && PIDS+=("$(cat "$f" 2>/dev/null)")
    done
    esw_stop "${PIDS[@]}"
    esw_del_netns "${NSS[@]}"
    rm -f "$D"/ovs/*.pid
    PIDS=(); NSS=(); SWPID=""
}
cleanup() {
    local rc=$?
    trap - EXIT INT TERM HUP
    teardown
    if [ $rc -ne 0 ]; then log "failed (rc=$rc); logs kept in $D"; else rm -rf "$D"; fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

mkns() {
    local n
    for n in "$@"; do
        ip netns del "$P$n" 2>/dev/null
        ip netns add "$P$n" || die "cannot create namespace $P$n"
        NSS+=("$P$n")
        ip -n "$P$n" link set lo up
    done
}
in_ns() { local n=$1; shift; ip netns exec "$P$n" "$@"; }
veth() {  # NS1 IF1 NS2 IF2
    ip -n "$P$1" link add "$2" type veth peer name "$4" netns "$P$3" || die "veth $2/$4"
    ip -n "$P$1" link set "$2" up
    ip -n "$P$3" link set "$4" up
}
wait_for() {  # SECONDS CMD...
    local end=$(( $(date +%s%N) + $1 * 1000000000 )); shift
    while [ "$(date +%s%N)" -lt "$end" ]; do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
    return 1
}
cputicks() { if [ -n "$SWPID" ] && [ -r "/proc/$SWPID/stat" ]; then
                 sed 's/^.*) //' "/proc/$SWPID/stat" | awk '{print $12 + $13}'
             else echo 0; fi; }
median() { sort -g | awk '{a[NR]=$1} END{ if (NR == 0) print "nan"; else print a[int((NR+1)/2)] }'; }

# --- topologies ---------------------------------------------------------------------
# Each sets CLI_NS SRV_NS DST (the client sends from CLI_NS to DST in SRV_NS), SWPID.
DPCTL() { ESW_CONTROL=$D/eswd.sock "$BIN/esw-dpctl" "$@"; }
DEVLINK() { ESW_CONTROL=$D/eswd.sock "$BIN/esw-devlink" "$@"; }

setup_esw() {  # POLICY (none|skip_hw)
    local pol=$1 i
    mkns host remote vm0 vm1
    veth host up0 remote wire0
    : > "$D/eswd.log"
    ip netns exec "${P}host" "$BIN/eswd" --control "$D/eswd.sock" --vfs 2 --uplink up0 \
        --mode switchdev --policy "$pol" >>"$D/eswd.log" 2>&1 &
    SWPID=$!; PIDS+=("$SWPID")
    wait_for 10 DEVLINK dev show || { cat "$D/eswd.log" >&2; die "eswd does not answer"; }
    if [ -n "${ESW_FASTPATH_NICE:-}" ]; then
        DEVLINK dev param set esw0 name fastpath_nice value "$ESW_FASTPATH_NICE" || die "fastpath_nice"
    fi
    for i in 0 1; do
        ip -n "${P}host" link set "esw0v$i" netns "${P}vm$i" || die "cannot move esw0v$i"
        ip -n "${P}vm$i" addr add "198.19.0.$((i + 1))/24" dev "esw0v$i"
        ip -n "${P}vm$i" link set "esw0v$i" up
    done
    DPCTL add-if pf0vf0 >/dev/null || die "add-if pf0vf0"
    DPCTL add-if pf0vf1 >/dev/null || die "add-if pf0vf1"
    cat >"$D/esw-flows" <<'EOF'
in_port(1),eth(),eth_type(0x0800),ipv4(frag=no) 2
in_port(1),eth(),eth_type(0x0806),arp() 2
in_port(2),eth(),eth_type(0x0800),ipv4(frag=no) 1
in_port(2),eth(),eth_type(0x0806),arp() 1
EOF
    DPCTL add-flows "$D/esw-flows" || die "esw-dpctl add-flows"
    NOTE_esw=$(DPCTL dump-flows -m | awk '/offloaded:yes/{o++} /dp:ovs/{s++} END{printf "%d in hardware, %d in software", o, s}')
    log "esw ($pol): flows: $NOTE_esw"
    CLI_NS=vm0 SRV_NS=vm1 DST=198.19.0.2
}

setup_ovs() {
    mkns sw a b
    veth a a0 sw sa
    veth b b0 sw sb
    mkdir -p "$D/ovs"
    local O=$D/ovs
    OVS_ENV=(env OVS_RUNDIR=$O OVS_DBDIR=$O OVS_LOGDIR=$O OVS_SYSCONFDIR=$O)
    local LOGOPTS="-vconsole:off -vsyslog:off -vfile:info"
    ovsdb-tool create "$O/conf.db" "$SCHEMA" >/dev/null || die "ovsdb-tool create"
    ip netns exec "${P}sw" "${OVS_ENV[@]}" ovsdb-server "$O/conf.db" --remote="punix:$O/db.sock" \
        --pidfile="$O/ovsdb.pid" --detach --no-chdir --log-file="$O/ovsdb.log" --unixctl="$O/ovsdb.ctl" \
        $LOGOPTS 2>>"$O/ovsdb.err" || die "ovsdb-server"
    VSCTL="ovs-vsctl --no-syslog --db=unix:$O/db.sock --timeout=10"
    $VSCTL --no-wait init || die "ovs-vsctl init"
    ip netns exec "${P}sw" "${OVS_ENV[@]}" ovs-vswitchd "unix:$O/db.sock" --pidfile="$O/vsd.pid" \
        --detach --no-chdir --log-file="$O/vsd.log" --unixctl="$O/vsd.ctl" $LOGOPTS 2>>"$O/vsd.err" || die "ovs-vswitchd"
    SWPID=$(cat "$O/vsd.pid")
    APPCTL="ovs-appctl -t $O/vsd.ctl"
    $VSCTL add-br br0 -- set bridge br0 datapath_type=netdev || die "add-br"
    $VSCTL add-port br0 sa || die "add-port sa"
    $VSCTL add-port br0 sb || die "add-port sb"
    # The userspace datapath does not complete checksums of veth frames: senders must.
    in_ns a ethtool -K a0 tx off >/dev/null 2>&1
    in_ns b ethtool -K b0 tx off >/dev/null 2>&1
    ip -n "${P}a" addr add 198.18.1.1/24 dev a0
    ip -n "${P}b" addr add 198.18.1.2/24 dev b0
    CLI_NS=a SRV_NS=b DST=198.18.1.2
}

setup_veth() {
    mkns a b
    veth a a0 b b0
    ip -n "${P}a" addr add 198.18.2.1/24 dev a0
    ip -n "${P}b" addr add 198.18.2.2/24 dev b0
    SWPID=""
    CLI_NS=a SRV_NS=b DST=198.18.2.2
}

# --- measurements -------------------------------------------------------------------
# iperf_once KIND(tcp|udp) TAG: one run; prints "VALUE CPU%" (Gbit/s or kpps; CPU n/a if no switch)
iperf_once() {
    local kind=$1 tag=$2 srv cli spid c0 c1 t0 t1 v cpu
    srv=$D/$tag.srv.json cli=$D/$tag.cli.json
    timeout $((T + 30)) ip netns exec "$P$SRV_NS" iperf3 -s -1 -J >"$srv" 2>>"$D/iperf3.err" &
    spid=$!; PIDS+=("$spid")
    wait_for 5 sh -c "ip netns exec $P$SRV_NS ss -Hltn 'sport = :5201' | grep -q 5201"
    c0=$(cputicks); t0=$(date +%s%N)
    if [ "$kind" = tcp ]; then
        timeout $((T + 20)) ip netns exec "$P$CLI_NS" iperf3 -c "$DST" -t "$T" -J >"$cli" 2>>"$D/iperf3.err"
    else
        timeout $((T + 20)) ip netns exec "$P$CLI_NS" iperf3 -c "$DST" -u -l 64 -b 0 -t "$T" -J >"$cli" 2>>"$D/iperf3.err"
    fi
    c1=$(cputicks); t1=$(date +%s%N)
    wait "$spid" 2>/dev/null
    v=$("$PY" - "$kind" "$srv" <<'EOF'
import json, sys
kind, path = sys.argv[1], sys.argv[2]
try:
    e = json.load(open(path))["end"]
    if kind == "tcp":
        print("%.3f" % (e["sum_received"]["bits_per_second"] / 1e9))
    else:
        # The receiver's view: datagrams that arrived = packets - lost_packets, over its time.
        s = e["sum"]
        got = s["packets"] - s["lost_packets"]
        print("%.1f" % (got / s["seconds"] / 1e3))
except Exception:
    print("0")
EOF
)
    if [ -n "$SWPID" ]; then
        cpu=$(awk -v a="$c0" -v b="$c1" -v s="$t0" -v e="$t1" -v hz="$HZ" 'BEGIN{printf "%.0f", (b-a)/hz/((e-s)/1e9)*100}')
    else cpu=n/a; fi
    echo "$v $cpu"
}

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

measure() {  # NAME
    local name=$1 r out v c tv=() cv=() uv=()
    NAMES+=("$name")
    wait_for 10 in_ns "$CLI_NS" ping -c 1 -W 1 "$DST" || log "$name: no ping reply before measuring"
    for r in $(seq $RUNS); do
        out=$(iperf_once tcp "$name.tcp.$r"); read -r v c <<<"$out"
        tv+=("$v"); cv+=("$c")
        log "$name: TCP run $r: $v Gbit/s, switch CPU $c${SWPID:+%}"
    done
    for r in $(seq $RUNS); do
        out=$(iperf_once udp "$name.udp.$r"); read -r v c <<<"$out"
        uv+=("$v")
        log "$name: UDP 64 B run $r: $v kpps delivered"
    done
    read -r p50 p99 loss < <(ping_stats)
    log "$name: ping p50 $p50 ms, p99 $p99 ms, loss $loss%"
    R[$name,tcp]=$(printf '%s\n' "${tv[@]}" | median)
    R[$name,tcpruns]="${tv[*]}"
    if [ -n "$SWPID" ]; then R[$name,cpu]=$(printf '%s\n' "${cv[@]}" | median); else R[$name,cpu]=n/a; fi
    R[$name,udp]=$(printf '%s\n' "${uv[@]}" | median)
    R[$name,udpruns]="${uv[*]}"
    R[$name,p50]=$p50; R[$name,p99]=$p99; R[$name,loss]=$loss
}

# gen_flows N IN OUT FILE: N distinct exact-source IPv4 flows in_port(IN) -> OUT
gen_flows() {
    awk -v n="$1" -v i="$2" -v o="$3" 'BEGIN{
        for (k = 0; k < n; k++)
            printf "in_port(%d),eth(),eth_type(0x0800),ipv4(src=198.%d.%d.%d,frag=no) %d\n",
                   i, 18 + int(k / 65536), int(k / 256) % 256, k % 256, o }' > "$4"
}
now_ns() { date +%s%N; }

# cp_esw N: time esw-dpctl add-flows of N flows (skip_hw); sets R[esw,cpN] (flows/s) and count
cp_esw() {
    local n=$1 f=$D/cp-esw-$1 t0 t1 rc got
    gen_flows "$n" 1 2 "$f"
    DPCTL del-flows >/dev/null 2>&1
    local c0 c1
    c0=$(cputicks)
    t0=$(now_ns); DPCTL add-flows "$f" >"$D/cp-esw-$n.out" 2>&1; rc=$?; t1=$(now_ns)
    c1=$(cputicks)
    # The daemon's own CPU time for the batch (the CLI's text parsing is the rest).
    R[esw,cp$n,daemon]=$(awk -v a="$c0" -v b="$c1" -v hz="$(getconf CLK_TCK)" 'BEGIN{printf "%.2f", (b-a)/hz}')
    got=$(DPCTL dump-flows 2>/dev/null | grep -c 'ipv4(src=198\.')
    R[esw,cp$n,s]=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", (b-a)/1e9}')
    R[esw,cp$n]=$(awk -v a="$t0" -v b="$t1" -v n="$got" 'BEGIN{printf "%.0f", n/((b-a)/1e9)}')
    R[esw,cp$n,got]=$got
    [ $rc -eq 0 ] || log "esw add-flows $n: rc=$rc: $(tail -n 2 "$D/cp-esw-$n.out" | tr '\n' ' ')"
    log "esw add-flows: $got of $n flows in ${R[esw,cp$n,s]} s (${R[esw,cp$n]} flows/s)"
    DPCTL del-flows >/dev/null 2>&1
}

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

# --- run ----------------------------------------------------------------------------
log "binaries: $BIN; $RUNS x $T s per iperf3 test; $PINGS pings"
# leftovers of an interrupted earlier run (our prefix only)
esw_del_netns $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^$P")

log "== esw offloaded"
setup_esw none; NOTE_off=$NOTE_esw
measure esw-offload
teardown

log "== esw software path (skip_hw)"
setup_esw skip_hw; NOTE_sw=$NOTE_esw
measure esw-software
if [ $CONTROL_PLANE = 1 ]; then cp_esw 10000; cp_esw 100000; fi
teardown

log "== Open vSwitch userspace datapath"
setup_ovs
measure ovs-netdev
if [ $CONTROL_PLANE = 1 ]; then cp_ovs 10000; cp_ovs 100000; fi
OVS_VER=$(ovs-vswitchd --version | sed -n 's/.*(Open vSwitch) \([0-9.]*\).*/\1/p' | head -n 1)
teardown

log "== direct veth pair"
setup_veth
measure veth
teardown

log "== tunnel tracker reaction (10k encap flows behind one neighbour)"
NEIGH_LINE=$(ESW_BIN="$BIN" bash "$ROOT/scripts/bench-neigh.sh" 10000 2>>"$D/neigh.err" | tail -n 1)
log "$NEIGH_LINE"

# --- report -------------------------------------------------------------------------
ratio() {  # A B -> A/B formatted, or n/a
    awk -v a="$1" -v b="$2" 'BEGIN{ if (a == "n/a" || b == "n/a" || a == "nan" || b == "nan" || b + 0 == 0) print "n/a"; else printf "%.2f", a / b }'
}
END_NS=$(date +%s%N)
ELAPSED=$(awk -v a="$START_NS" -v b="$END_NS" 'BEGIN{printf "%.0f", (b-a)/1e9}')
mkdir -p "$OUT"
GITREV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
git -C "$ROOT" diff --quiet HEAD -- Sources 2>/dev/null || GITREV="$GITREV+local changes"
BUILD="$BIN/eswd (commit $GITREV, built $(date -u -r "$BIN/eswd" '+%Y-%m-%d %H:%M UTC'))"
{
    echo "# esw benchmark"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "- kernel: $(uname -r); CPUs: $(nproc); $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')"
    echo "- build: $BUILD"
    echo "- peer: Open vSwitch ${OVS_VER:-?} userspace datapath (datapath_type=netdev), NORMAL, veth system ports"
    echo "- method: iperf3 $(iperf3 --version | head -n 1 | awk '{print $2}'), TCP 1 stream $RUNS x $T s (median);" \
         "UDP 64 B payload -b 0, $RUNS x $T s, receiver's delivered packets/s (median);" \
         "ping $PINGS x -i 0.01; switch CPU = utime+stime of the switch process during TCP runs, % of one core (median)"
    echo "- esw flows: offloaded topology: $NOTE_off; software topology: $NOTE_sw"
    echo "- total runtime: ${ELAPSED} s$([ $QUICK = 1 ] && echo ' (--quick)')"
    echo
    echo "| topology | TCP Gbit/s | TCP ×OVS | UDP 64 B kpps | UDP ×OVS | ping p50 ms | p50 ×OVS | ping p99 ms | p99 ×OVS | switch CPU % (TCP) |"
    echo "|---|---|---|---|---|---|---|---|---|---|"
    for n in "${NAMES[@]}"; do
        echo "| $n | ${R[$n,tcp]} | $(ratio "${R[$n,tcp]}" "${R[ovs-netdev,tcp]}") | ${R[$n,udp]} | $(ratio "${R[$n,udp]}" "${R[ovs-netdev,udp]}") | ${R[$n,p50]} | $(ratio "${R[$n,p50]}" "${R[ovs-netdev,p50]}") | ${R[$n,p99]} | $(ratio "${R[$n,p99]}" "${R[ovs-netdev,p99]}") | ${R[$n,cpu]} |"
    done
    echo
    echo "Ratios are esw/OVS (for latency, >1 means slower than OVS). Runs: " \
        "$(for n in "${NAMES[@]}"; do printf '%s TCP [%s] UDP [%s] loss %s%%; ' "$n" "${R[$n,tcpruns]}" "${R[$n,udpruns]}" "${R[$n,loss]}"; done)"
    if [ $CONTROL_PLANE = 1 ]; then
        echo
        echo "| control plane | esw add-flows (skip_hw) | OVS dpctl/add-flows | esw/OVS |"
        echo "|---|---|---|---|"
        for k in 10000 100000; do
            echo "| $((k / 1000))k flows | ${R[esw,cp$k]} flows/s (${R[esw,cp$k,got]} in ${R[esw,cp$k,s]} s; daemon CPU ${R[esw,cp$k,daemon]} s) | ${R[ovs,cp$k]} flows/s (${R[ovs,cp$k,got]} in ${R[ovs,cp$k,s]} s) | $(ratio "${R[esw,cp$k]}" "${R[ovs,cp$k]}") |"
        done
        echo
        echo "flows/s counts the flows present in dump-flows afterwards over the wall time of the one command."
    fi
    if [ -n "${NEIGH_LINE:-}" ]; then
        echo
        echo "| tunnel tracker | end to end | daemon |"
        echo "|---|---|---|"
        echo "$NEIGH_LINE"
    fi
} > "$OUT/results.md"
cat "$OUT/results.md"

# plot
{
    for n in "${NAMES[@]}"; do echo "$n ${R[$n,tcp]:-0} ${R[$n,udp]:-0}"; done
} > "$D/plot.txt"
"$PY" - "$D/plot.txt" "$OUT/results.png" "$(uname -r), $(nproc) CPUs, $(date -u +%Y-%m-%d)$([ $QUICK = 1 ] && echo ', --quick')" <<'EOF' || log "plot failed"
import sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
names = [r[0] for r in rows]
def num(x):
    try: return float(x)
    except ValueError: return 0.0
tcp = [num(r[1]) for r in rows]
udp = [num(r[2]) for r in rows]
fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2))
colors = ["#1f77b4", "#6baed6", "#ff7f0e", "#7f7f7f"][:len(names)]
for ax, vals, title, unit in ((a, tcp, "iperf3 TCP, 1 stream", "Gbit/s"), (b, udp, "UDP 64 B delivered", "kpps")):
    bars = ax.bar(names, vals, color=colors)
    ax.set_title(title); ax.set_ylabel(unit)
    for bar, v in zip(bars, vals):
        ax.annotate("%.3g" % v, (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center", va="bottom", fontsize=9)
    ax.tick_params(axis="x", rotation=15)
fig.suptitle("esw vs Open vSwitch userspace datapath vs veth (" + sys.argv[3] + ")", fontsize=10)
fig.tight_layout()
fig.savefig(sys.argv[2], dpi=110)
EOF
log "wrote $OUT/results.md and $OUT/results.png in ${ELAPSED} s"
