#!/usr/bin/env bash
# Tunnel tracker reaction time: 10k offloaded encap flows, each with its own tunnel key
# (so 10k encap entries) behind one neighbour; `ip neigh replace` gives the neighbour a
# new MAC; measured until every encap entry carries it. Prints one Markdown line.
#
#   scripts/bench-neigh.sh [FLOWS]        (root; default 10000; uses .build/release)
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$ROOT/scripts/netns.sh"
BIN=${ESW_BIN:-$ROOT/.build/release}
N=${1:-10000}
P=eswbn-
D=$(mktemp -d /tmp/esw-bench-neigh.XXXXXX)
export ESW_CONTROL=$D/eswd.sock
cleanup() {
    [ -n "${PID:-}" ] && kill "$PID" 2>/dev/null && sleep 0.5
    esw_del_netns ${P}host ${P}remote ${P}vm0
    rm -rf "$D"
}
trap cleanup EXIT
[ -x "$BIN/eswd" ] || (cd "$ROOT" && swift build -c release >/dev/null)

for n in host remote vm0; do ip netns add $P$n; ip -n $P$n link set lo up; done
ip -n ${P}host link add up0 type veth peer name wire0 netns ${P}remote
ip -n ${P}host link set up0 up; ip -n ${P}remote link set wire0 up
ip -n ${P}remote addr add 198.18.0.2/24 dev wire0
printf 'masked = %d\nencap = %d\ncounters = %d\n' $((N + 64)) $((N + 64)) $((2 * N + 64)) >"$D/profile"
ip netns exec ${P}host "$BIN/eswd" --control "$ESW_CONTROL" --vfs 1 --uplink up0 --profile "$D/profile" >"$D/eswd.log" 2>&1 &
PID=$!
for _ in $(seq 100); do "$BIN/esw-devlink" dev show >/dev/null 2>&1 && break; sleep 0.1; done
ip -n ${P}host link set esw0v0 netns ${P}vm0
ip -n ${P}host addr add 198.18.0.1/24 dev p0; ip -n ${P}host link set p0 up
ip netns exec ${P}host ping -c 1 -W 2 198.18.0.2 >/dev/null     # resolve the neighbour
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
stats() { "$BIN/esw-dpctl" dump-tunnels -s | sed -n 's/^tracker: //p'; }
field() { echo "$1" | tr ' ' '\n' | sed -n "s/^$2://p"; }
off=$("$BIN/esw-dpctl" show | awk '/offloaded flows:/{print $3}')
before=$(field "$(stats)" encap_rewrites)

newmac=02:00:00:00:cc:01
ip -n ${P}remote link set wire0 address $newmac
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
