#!/usr/bin/env bash
# resource-models.sh — the experiments of "Hardware resource management for network
# function offload" on a live eswd (the BPF data plane, real netdevs, real pings):
# Table 1 (coherent latency and data outage per offload model) and Figure 1 (the
# blackhole of asynchronous offload). The utilisation experiment is a model of the
# driver's accounting and runs in the unit tests (UtilisationExperimentTests).
#
# Usage: scripts/resource-models.sh [--quick] [--flows N] [--bin DIR] [--rows FILE]
#   --quick   1,000 flows and one query latency (35 us) instead of 10,000 and 35 + 350
# Writes one JSON row per measurement to FILE (default: stdout). Needs root; namespaces
# are $ESW_RM_PREFIX* (default eswrm-), removed on any exit.
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$ROOT/scripts/netns.sh"
. "$ROOT/scripts/topology.sh"
BIN=${ESW_BIN:-$ROOT/.build/release}
FLOWS=10000 QUERIES=35,350 ROWS=/dev/stdout
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) FLOWS=1000 QUERIES=35 ;;
        --flows) FLOWS=$2; shift ;;
        --bin) BIN=$2; shift ;;
        --rows) ROWS=$2; shift ;;
        -h|--help) sed -n '2,/^set/p' "$0" | sed '$d'; exit 0 ;;
        *) echo "resource-models.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
P=${ESW_RM_PREFIX:-eswrm-}
D=$(mktemp -d /tmp/eswrm.XXXXXX)
PIDS=()
log() { printf '[resource-models] %s\n' "$*" >&2; }
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    esw_stop "${PIDS[@]}"
    esw_del_netns "${TOPO_NAMESPACES[@]}"
    if [ $rc -ne 0 ]; then log "failed (rc=$rc); logs in $D"; else rm -rf "$D"; fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM
topo_init "$P" || exit 1
esw_del_netns $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^$P")

start_eswd() {
    ip netns exec "${P}host" "$BIN/eswd" --control "$D/eswd.sock" "$@" >>"$D/eswd.log" 2>&1 &
    PIDS+=("$!")
    ESW_CONTROL=$D/eswd.sock topo_wait 10 "$BIN/esw-devlink" dev show || { cat "$D/eswd.log" >&2; return 1; }
}
DPCTL() { ESW_CONTROL=$D/eswd.sock "$BIN/esw-dpctl" "$@"; }

printf 'masked = %d\n' $((FLOWS + 64)) >"$D/profile"
topo_esw 2 start_eswd --mode switchdev --policy skip_sw --profile "$D/profile" || { log "no topology"; exit 1; }
DPCTL add-if pf0vf0 >/dev/null && DPCTL add-if pf0vf1 >/dev/null || { log "add-if failed"; exit 1; }
# Static neighbours: the experiments' traffic needs no ARP flow.
mac() { ip -n "${P}$1" -j link show dev "$2" | "${PYTHON:-python3}" -c 'import json,sys; print(json.load(sys.stdin)[0]["address"])'; }
ip -n "${P}vm0" neigh replace "$(topo_vm_addr 1)" lladdr "$(mac vm1 "$(topo_vf_name 1)")" dev "$(topo_vf_name 0)" nud permanent
ip -n "${P}vm1" neigh replace "$(topo_vm_addr 0)" lladdr "$(mac vm0 "$(topo_vf_name 0)")" dev "$(topo_vf_name 1)" nud permanent
# The reply direction is installed before every run: only VF0 -> VF1 depends on the batch.
echo "in_port(2),eth(),eth_type(0x0800),ipv4(frag=no) 1" >"$D/reply.flows"

log "$FLOWS flows per batch, query latencies $QUERIES us, binaries $BIN"
"${PYTHON:-python3}" "$ROOT/scripts/resource_models.py" --bin "$BIN" --prefix "$P" --control "$D/eswd.sock" \
    --tmp "$D" --dst "$(topo_vm_addr 1)" --vf-netdev "$(topo_vf_name 1)" --reply-flows "$D/reply.flows" \
    --flows "$FLOWS" --queries "$QUERIES" --parts "${ESW_RM_PARTS:-table1,blackhole}" >"$ROWS"
