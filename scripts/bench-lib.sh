# bench-lib.sh — the pieces of scripts/bench.sh that its parts share: namespaces and
# waiting, the switch process's CPU, medians, eswd and its CLIs, Open vSwitch as the peer,
# one iperf3 run.
# Sourced after scripts/netns.sh and scripts/topology.sh, by a script that defines
# log/die, P (namespace prefix), D (its temporary directory), PIDS, SWPID, PY, HZ, T
# and, for setup_ovs, SCHEMA; sourcing it installs the EXIT trap (cleanup). start_eswd
# runs ESWD (default $BIN/eswd) behind ESWD_WRAP (a command such as valgrind, or none)
# and waits ESWD_START_SECONDS for it.
ESWD_WRAP=()
# CC: the system's C compiler, or the Swift toolchain's clang when there is none (the
# benches' C tools).
CC=$(command -v cc || echo "$(dirname "$(readlink -f "$(command -v swift)")")/clang")

# teardown: stop what the current topology started (PIDS, an OVS peer's daemons), delete
# its namespaces
teardown() {
    local f
    for f in "$D"/ovs/vsd.pid "$D"/ovs/ovsdb.pid; do
        [ -s "$f" ] && PIDS+=("$(cat "$f" 2>/dev/null)")
    done
    esw_stop "${PIDS[@]}"
    esw_del_netns "${TOPO_NAMESPACES[@]}"
    rm -rf "$D"/ovs
    PIDS=(); TOPO_NAMESPACES=(); SWPID=""
}
# cleanup: on any exit, tear down; keep the logs in D if it failed. Installed as the
# EXIT trap by sourcing this file.
cleanup() {
    local rc=$?
    trap - EXIT INT TERM HUP
    teardown
    if [ $rc -ne 0 ]; then log "failed (rc=$rc); logs kept in $D"; else rm -rf "$D"; fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# DPCTL/DEVLINK ARGS...: the CLIs against this run's eswd
DPCTL() { ESW_CONTROL=$D/eswd.sock "$BIN/esw-dpctl" "$@"; }
DEVLINK() { ESW_CONTROL=$D/eswd.sock "$BIN/esw-devlink" "$@"; }

# start_eswd ARGS...: eswd in host (topo_esw's starter); returns once it answers
start_eswd() {
    : > "$D/eswd.log"
    ip netns exec "${P}host" "${ESWD_WRAP[@]}" "${ESWD:-$BIN/eswd}" --control "$D/eswd.sock" "$@" >>"$D/eswd.log" 2>&1 &
    SWPID=$!; PIDS+=("$SWPID")
    topo_wait "${ESWD_START_SECONDS:-10}" DEVLINK dev show || { cat "$D/eswd.log" >&2; return 1; }
}

# in_ns NODE CMD...: run CMD in namespace $P<NODE>
in_ns() { topo_in "$@"; }
# wait_for SECONDS CMD...: retry CMD every 0.1 s until it succeeds
wait_for() { topo_wait "$@"; }
# cputicks: utime+stime (clock ticks) of the switch process so far, 0 if there is none
cputicks() { if [ -n "$SWPID" ] && [ -r "/proc/$SWPID/stat" ]; then
                 sed 's/^.*) //' "/proc/$SWPID/stat" | awk '{print $12 + $13}'
             else echo 0; fi; }
# children_ticks: CPU ticks of this shell's reaped children (a command run and waited for
# between two reads is counted by the second; the reads' own subshells add a tick at most)
children_ticks() { sed 's/^.*) //' "/proc/$$/stat" | awk '{print $14 + $15}'; }
# steal_ticks: ticks the host ran other work while this VM's CPUs wanted to run (all CPUs)
steal_ticks() { awk '/^cpu /{print $9}' /proc/stat; }
# median: the median of the numbers on stdin (nan if none)
median() { sort -g | awk '{a[NR]=$1} END{ if (NR == 0) print "nan"; else print a[int((NR+1)/2)] }'; }

# setup_two_pairs MIDDLE NET: namespaces a, b and MIDDLE, veth a0 (a) <-> sa (MIDDLE) and
# b0 (b) <-> sb (MIDDLE), a0 NET.1/24 and b0 NET.2/24: a switch in MIDDLE between a and b
setup_two_pairs() {
    topo_ns a b "$1" || die "namespaces"
    topo_veth a a0 "$1" sa || die "veth a0/sa"
    topo_veth b b0 "$1" sb || die "veth b0/sb"
    ip -n "${P}a" addr add "$2.1/24" dev a0
    ip -n "${P}b" addr add "$2.2/24" dev b0
    CLI_NS=a SRV_NS=b DST=$2.2
}

# setup_ovs TSO(1|0): OVS 3.1 userspace datapath bridging a <-> b over veth system ports
setup_ovs() {
    local tso=$1 O=$D/ovs
    setup_two_pairs sw 198.18.1
    mkdir -p "$O"
    OVS_ENV=(env OVS_RUNDIR=$O OVS_DBDIR=$O OVS_LOGDIR=$O OVS_SYSCONFDIR=$O)
    local LOGOPTS="-vconsole:off -vsyslog:off -vfile:info"
    ovsdb-tool create "$O/conf.db" "$SCHEMA" >/dev/null || die "ovsdb-tool create"
    ip netns exec "${P}sw" "${OVS_ENV[@]}" ovsdb-server "$O/conf.db" --remote="punix:$O/db.sock" \
        --pidfile="$O/ovsdb.pid" --detach --no-chdir --log-file="$O/ovsdb.log" --unixctl="$O/ovsdb.ctl" \
        $LOGOPTS 2>>"$O/ovsdb.err" || die "ovsdb-server"
    VSCTL="ovs-vsctl --no-syslog --db=unix:$O/db.sock --timeout=10"
    $VSCTL --no-wait init || die "ovs-vsctl init"
    if [ "$tso" = 1 ]; then
        # Read once when ovs-vswitchd starts: set before it runs.
        $VSCTL --no-wait set Open_vSwitch . other_config:userspace-tso-enable=true || die "userspace-tso-enable"
    fi
    ip netns exec "${P}sw" "${OVS_ENV[@]}" ovs-vswitchd "unix:$O/db.sock" --pidfile="$O/vsd.pid" \
        --detach --no-chdir --log-file="$O/vsd.log" --unixctl="$O/vsd.ctl" $LOGOPTS 2>>"$O/vsd.err" || die "ovs-vswitchd"
    SWPID=$(cat "$O/vsd.pid")
    APPCTL="ovs-appctl -t $O/vsd.ctl"
    $VSCTL add-br br0 -- set bridge br0 datapath_type=netdev || die "add-br"
    $VSCTL add-port br0 sa || die "add-port sa"
    $VSCTL add-port br0 sb || die "add-port sb"
    if [ "$tso" = 1 ]; then
        grep -qi 'TCP Segmentation Offloading support enabled' "$O/vsd.log" ||
            log "warning: ovs-vswitchd's log does not say userspace TSO is enabled"
        NOTE_ovs_tso=$(grep -io 'userspace TCP Segmentation Offloading support enabled' "$O/vsd.log" | head -n 1)
    else
        # Without TSO the userspace datapath does not complete checksums of veth frames: senders must.
        in_ns a ethtool -K a0 tx off >/dev/null 2>&1 || die "ethtool -K a0 tx off"
        in_ns b ethtool -K b0 tx off >/dev/null 2>&1 || die "ethtool -K b0 tx off"
    fi
}

# iperf_once KIND(tcp|udp) TAG: one run; prints "VALUE CPU%" (Gbit/s or kpps; CPU n/a if
# no switch). The server listens on IPERF_PORT (default 5201).
iperf_once() {
    local kind=$1 tag=$2 srv cli spid c0 c1 t0 t1 v cpu port=${IPERF_PORT:-5201}
    srv=$D/$tag.srv.json cli=$D/$tag.cli.json
    timeout $((T + 30)) ip netns exec "$P$SRV_NS" iperf3 -s -1 -J -p "$port" >"$srv" 2>>"$D/iperf3.err" &
    spid=$!; PIDS+=("$spid")
    wait_for 5 sh -c "ip netns exec $P$SRV_NS ss -Hltn 'sport = :$port' | grep -q $port"
    c0=$(cputicks); t0=$(date +%s%N)
    if [ "$kind" = tcp ]; then
        timeout $((T + 20)) ip netns exec "$P$CLI_NS" iperf3 -c "$DST" -p "$port" -t "$T" -J >"$cli" 2>>"$D/iperf3.err"
    else
        timeout $((T + 20)) ip netns exec "$P$CLI_NS" iperf3 -c "$DST" -p "$port" -u -l 64 -b 0 -t "$T" -J >"$cli" 2>>"$D/iperf3.err"
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

