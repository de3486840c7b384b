#!/usr/bin/env bash
# bench-conntrack.sh — `scripts/bench.sh conntrack`: a stateful ACL (conntrack) between two
# VMs on esw and on Open vSwitch 3.1's userspace datapath, measured in the same run.
#
# Usage: scripts/bench.sh conntrack [--quick] [--bin DIR] [--out DIR]
#
# The ACL (scripts/topology.sh topo_ct_acl_flows): VM0 -> VM1 new TCP to port 80 is
# committed in zone 1, established traffic passes both ways, everything else new is
# dropped. esw: the lab topology (eswd --vfs 2, switchdev) with the ACL as datapath
# flows, under policy skip_hw (software path) and policy none (flows and established
# connections offloaded where the hardware can). OVS: a bridge (datapath_type=netdev,
# userspace TSO on) between two namespaces over veth, the same ACL as OpenFlow rules
# (ct(table=1,zone=1), ct(commit,zone=1)); its datapath builds the same megaflows.
# Measured per setup, with and without the ACL (the same topology forwarding plainly):
#   - iperf3 TCP, 1 stream, to port 80: Gbit/s, RUNS x T s, median;
#   - connection setup: N short TCP connections (handshake, one byte each way, FIN both
#     ways; scripts/conntrack/tcpchurn.c with 4 threads) to port 80: connections/s.
# N = 10,000 (--quick 1,000). Output: OUT/conntrack.md. Needs root; tears everything
# down on any exit.
set -uo pipefail
LC_ALL=C; export LC_ALL
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$ROOT/scripts/netns.sh"
. "$ROOT/scripts/topology.sh"
. "$ROOT/scripts/deps.sh"
. "$ROOT/scripts/bench-part.sh"
bench_part conntrack "$@"
if [ $QUICK = 1 ]; then RUNS=1 T=2 N=1000; else RUNS=3 T=4 N=10000; fi
PY=/usr/bin/python3
P=${ESW_BENCH_PREFIX:-eswbench-}
HZ=$(getconf CLK_TCK)
SCHEMA=""
for s in /usr/share/openvswitch/vswitch.ovsschema /usr/local/share/openvswitch/vswitch.ovsschema; do
    [ -r "$s" ] && { SCHEMA=$s; break; }
done
[ -n "$SCHEMA" ] || die "vswitch.ovsschema not found (openvswitch-switch)"
D=$(mktemp -d /tmp/eswct.XXXXXX)
PIDS=() SWPID=""
topo_init "$P" || exit 1
. "$ROOT/scripts/bench-lib.sh"

"$CC" -O2 -Wall -pthread -o "$D/tcpchurn" "$ROOT/scripts/conntrack/tcpchurn.c" || die "tcpchurn does not build"
# setup_esw POLICY ACL(1|0)
setup_esw() {
    topo_esw 2 start_eswd --mode switchdev --policy "$1" || die "cannot build the esw topology"
    DPCTL add-if pf0vf0 >/dev/null && DPCTL add-if pf0vf1 >/dev/null || die "add-if"
    DPCTL set-miss drop
    if [ "$2" = 1 ]; then topo_ct_acl_flows "$D/flows"; else topo_vf_flows "$D/flows"; fi
    DPCTL add-flows "$D/flows" || die "esw-dpctl add-flows"
    CLI_NS=vm0 SRV_NS=vm1 DST=$(topo_vm_addr 1)
}

# setup_ovs_acl ACL(1|0): the OVS peer with the ACL as OpenFlow rules, or NORMAL
setup_ovs_acl() {
    setup_ovs 1
    local of=$D/ovs/acl.of
    if [ "$1" = 1 ]; then
        printf '%s\n' \
            "table=0,priority=100,arp,actions=NORMAL" \
            "table=0,priority=90,ip,actions=ct(table=1,zone=1)" \
            "table=0,priority=0,actions=drop" \
            "table=1,priority=100,ct_state=+new+trk,tcp,in_port=sa,tp_dst=80,actions=ct(commit,zone=1,exec(set_field:5->ct_mark)),output:sb" \
            "table=1,priority=90,ct_state=-new+est-inv+trk,in_port=sa,actions=output:sb" \
            "table=1,priority=90,ct_state=-new+est-inv+trk,in_port=sb,actions=output:sa" \
            "table=1,priority=90,ct_state=-new-est+rel-inv+trk,in_port=sb,actions=output:sa" \
            "table=1,priority=0,actions=drop" >"$of"
        ip netns exec "${P}sw" env OVS_RUNDIR="$D/ovs" ovs-ofctl del-flows br0 &&
            ip netns exec "${P}sw" env OVS_RUNDIR="$D/ovs" ovs-ofctl add-flows br0 "$of" || die "ovs-ofctl add-flows"
    fi
}

# tcp_runs NAME: RUNS iperf3 runs to port 80 of DST; R[NAME,tcp] median Gbit/s
declare -A R
tcp_runs() {
    local v=() r out
    for r in $(seq $RUNS); do
        out=$(IPERF_PORT=80 iperf_once tcp "$1.$r")
        v+=("${out%% *}")
        log "$1: TCP run $r: ${out%% *} Gbit/s, switch CPU ${out##* }%"
    done
    R[$1,tcp]=$(printf '%s\n' "${v[@]}" | median)
    R[$1,tcpruns]="${v[*]}"
}

# churn_run NAME: N short connections to port 80; R[NAME,cps], R[NAME,failed]
churn_run() {
    in_ns "$SRV_NS" "$D/tcpchurn" server 80 >/dev/null 2>&1 & PIDS+=($!)
    sleep 0.3
    local ok failed secs
    read -r ok failed secs < <(in_ns "$CLI_NS" "$D/tcpchurn" client "$DST" 80 "$N" 4)
    R[$1,cps]=$(awk -v n="$ok" -v s="$secs" 'BEGIN{ if (s + 0 == 0) print 0; else printf "%.0f", n / s }')
    R[$1,failed]=$failed
    log "$1: $ok of $N connections in $secs s (${R[$1,cps]}/s), $failed failed"
}

measure_setup() {
    local name=$1
    tcp_runs "$name"
    churn_run "$name"
}

ROWS=()
for setup in "esw-software skip_hw" "esw-offload none"; do
    set -- $setup
    for acl in 1 0; do
        setup_esw "$2" "$acl"
        measure_setup "$1.$acl"
        if [ "$acl" = 1 ]; then
            R[$1,conns]=$(DPCTL dump-conntrack | wc -l)
            R[$1,flows]=$(DPCTL dump-flows -m | awk '/offloaded:yes/{o++} /dp:ovs/{s++} END{printf "%d in hardware, %d in software", o, s}')
        fi
        teardown
    done
done
for acl in 1 0; do
    setup_ovs_acl "$acl"
    measure_setup "ovs-tso.$acl"
    [ "$acl" = 1 ] && R[ovs-tso,conns]=$(ovs-appctl -t "$D/ovs/vsd.ctl" dpctl/dump-conntrack | wc -l)
    teardown
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b + 0 == 0) print "n/a"; else printf "%.2f", a / b }'; }
{
    echo "# Connection tracking: a stateful ACL on esw and on Open vSwitch"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "- kernel: $(uname -r); CPUs: $(nproc)"
    echo "- build: $BIN/eswd (commit $(cd "$ROOT" && git rev-parse --short HEAD))"
    echo "- peer: Open vSwitch $(ovs-vswitchd --version | sed -n 's/.*) //p' | head -n 1) userspace datapath, userspace TSO on, the ACL as OpenFlow rules"
    echo "- runs: TCP $RUNS x $T s (median); $N short connections, 4 client threads$([ $QUICK = 1 ] && echo '; --quick')"
    echo
    echo "| setup | TCP with ACL Gbit/s | TCP without Gbit/s | with/without | connections/s with ACL | without | with/without | failed | conntrack entries after | ACL flows |"
    echo "|---|---|---|---|---|---|---|---|---|---|"
    for s in esw-software esw-offload ovs-tso; do
        echo "| $s | ${R[$s.1,tcp]} | ${R[$s.0,tcp]} | $(ratio "${R[$s.1,tcp]}" "${R[$s.0,tcp]}") | ${R[$s.1,cps]} | ${R[$s.0,cps]} | $(ratio "${R[$s.1,cps]}" "${R[$s.0,cps]}") | ${R[$s.1,failed]} | ${R[$s,conns]:-n/a} | ${R[$s,flows]:-OpenFlow} |"
    done
    echo
    echo "Against OVS in the same run: connections/s esw-software/ovs-tso $(ratio "${R[esw-software.1,cps]}" "${R[ovs-tso.1,cps]}"),"
    echo "esw-offload/ovs-tso $(ratio "${R[esw-offload.1,cps]}" "${R[ovs-tso.1,cps]}"); TCP with ACL esw-offload/ovs-tso $(ratio "${R[esw-offload.1,tcp]}" "${R[ovs-tso.1,tcp]}")."
    echo
    echo "TCP runs (Gbit/s): $(for s in esw-software esw-offload ovs-tso; do printf '%s with [%s] without [%s]; ' "$s" "${R[$s.1,tcpruns]}" "${R[$s.0,tcpruns]}"; done)"
} >"$OUT/conntrack.md"
cat "$OUT/conntrack.md"
log "wrote $OUT/conntrack.md"
