#!/usr/bin/env bash
# Tunnel tracker reaction time: 10k offloaded encap flows, each with its own tunnel key
# (so 10k encap entries) behind one neighbour; `ip neigh replace` gives the neighbour a
# new MAC; measured until every encap entry carries it. Prints one Markdown line.
#
#   scripts/bench-neigh.sh [FLOWS]        (root; default 10000; uses .build/release)
#
# The lab topology of scripts/topology.sh with one VF and the underlay only (no vxlan
# device in remote), in namespaces $ESW_BENCH_NEIGH_PREFIX* (default eswbn-).
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$ROOT/scripts/netns.sh"
. "$ROOT/scripts/topology.sh"
BIN=${ESW_BIN:-$ROOT/.build/release}
N=${1:-10000}
P=${ESW_BENCH_NEIGH_PREFIX:-eswbn-}
topo_init "$P" || exit 2
D=$(mktemp -d /tmp/esw-bench-neigh.XXXXXX)
export ESW_CONTROL=$D/eswd.sock
PID=""
# cleanup: stop eswd, delete our namespaces and the scratch directory
cleanup() {
    esw_stop ${PID:+"$PID"}
    esw_del_netns "${TOPO_NAMESPACES[@]}"
    rm -rf "$D"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
[ -x "$BIN/eswd" ] || (cd "$ROOT" && swift build -c release >/dev/null)

# start_eswd ARGS...: eswd in host with room for N encap flows (topo_esw's starter)
start_eswd() {
    ip netns exec "${P}host" "$BIN/eswd" --control "$ESW_CONTROL" --profile "$D/profile" "$@" >"$D/eswd.log" 2>&1 &
    PID=$!
    topo_wait 10 "$BIN/esw-devlink" dev show
}
printf 'masked = %d\nencap = %d\ncounters = %d\n' $((N + 64)) $((N + 64)) $((2 * N + 64)) >"$D/profile"
topo_esw 1 start_eswd || { echo "bench-neigh: cannot build the topology" >&2; cat "$D/eswd.log" >&2; exit 1; }
topo_underlay || exit 1
ip netns exec ${P}host ping -c 1 -W 2 "$TOPO_VTEP_REMOTE" >/dev/null     # resolve the neighbour
"$BIN/esw-dpctl" add-if pf0vf0 >/dev/null
"$BIN/esw-dpctl" add-if vxlan_sys_4789,type=vxlan >/dev/null
/usr/bin/python3 - "$N" >"$D/flows" <<'PY'
import sys
n = int(sys.argv[1])
for i in range(n):
    print(f"in_port(1),eth(),eth_type(0x0800),ipv4(src=198.18.{128 + i // 250}.{i % 250 + 1},frag=no) "
          f"set(tunnel(tun_id={i + 1:#x},dst=198.18.0.2,ttl=64,tp_dst=4789,flags(df|key))),2")
PY
"$BIN/esw-dpctl" add-flows "$D/flows"
# stats: the tracker's counters line; field LINE NAME: one counter of it
stats() { "$BIN/esw-dpctl" dump-tunnels -s | sed -n 's/^tracker: //p'; }
field() { echo "$1" | tr ' ' '\n' | sed -n "s/^$2://p"; }
off=$("$BIN/esw-dpctl" show | awk '/offloaded flows:/{print $3}')
before=$(field "$(stats)" encap_rewrites)

newmac=02:00:00:00:cc:01
ip -n ${P}remote link set "$TOPO_WIRE" address $newmac
start=$(date +%s%N)
ip -n ${P}host neigh replace 198.18.0.2 dev p0 lladdr $newmac nud reachable
while :; do
    s=$(stats)
    now=$(date +%s%N)
    [ $(( $(field "$s" encap_rewrites) - before )) -ge "$off" ] && break
    [ $(( (now - start) / 1000000 )) -gt 30000 ] && { echo "timed out" >&2; break; }
done
wall=$(( (now - start) / 1000 ))
daemon=$(( $(field "$s" last_rewrite_ns) / 1000 ))
entries=$(field "$s" last_rewrite_entries)
printf '| neighbour change -> %s encap entries (%s offloaded flows) rewritten | %d.%03d ms end to end (CLI polling included) | %d.%03d ms in the daemon |\n' \
    "$entries" "$off" $((wall / 1000)) $((wall % 1000)) $((daemon / 1000)) $((daemon % 1000))
