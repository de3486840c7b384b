#!/usr/bin/env bash
# scripts/lab.sh — a ready-made esw lab (bash, run as root).
#
#   scripts/lab.sh up [--vfs N] [--miss drop|normal] [--policy none|skip_sw|skip_hw]
#                    (defaults: 2 VFs, miss normal so VMs reach each other at once, policy none)
#   scripts/lab.sh down
#   scripts/lab.sh status
#   scripts/lab.sh exec NODE CMD...      NODE: host, remote, vm0, vm1, ...
#   scripts/lab.sh demo
#
# Topology (scripts/topology.sh, the same picture as the tests' t_topology + t_vxlan_remote),
# with PREFIX = $ESW_LAB_PREFIX (default eswlab-) on namespaces and links:
#
#   PREFIXvm<i>    esw0v<i> 198.19.0.<i+1>/24          (VF netdevs, one per VM)
#   PREFIXhost     eswd (switchdev), representors pf0vf<i>, p0 198.18.0.1/24, PREFIXup0
#   PREFIXremote   PREFIXwire0 198.18.0.2/24 (veth peer of PREFIXup0), PREFIXvx42: VNI 42 -> 198.18.0.1,
#                  overlay 198.19.0.3/24
#
# Everything lives in namespaces named PREFIX*; nothing is created in the root
# namespace (no links, no routes); addresses come only from 198.18.0.0/15. The
# daemon's control socket is /run/esw/<PREFIX without its trailing ->.sock, e.g.
# /run/esw/eswlab.sock (export ESW_CONTROL=... for the CLIs; `exec` sets it). Datapath
# ports after `up`: pf0vf0..pf0vf<N-1> are ports 1..N, vxlan_sys_4789 is port N+1.
# Two labs with different prefixes can run side by side.
#
# `down` works after a crash too: it kills eswd (pid file, then every process in a
# PREFIX* namespace) and deletes every PREFIX* namespace.

set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$ROOT/scripts/netns.sh"
. "$ROOT/scripts/topology.sh"
BIN=${ESW_BIN:-$ROOT/.build/debug}
PREFIX=${ESW_LAB_PREFIX:-eswlab-}
[[ $PREFIX =~ ^[A-Za-z0-9][A-Za-z0-9-]*-$ ]] || { echo "lab: ESW_LAB_PREFIX must be letters, digits and '-', ending in '-'" >&2; exit 2; }
topo_init "$PREFIX" "$PREFIX" || exit 2
NAME=${PREFIX%-}
RUN=/run/esw
SOCK=$RUN/$NAME.sock
STATE=$RUN/$NAME.d           # pid file, daemon log, config of the running lab
PIDFILE=$STATE/eswd.pid
LOG=$STATE/eswd.log

# log/err/die MSG: progress on stdout; errors on stderr; die also exits 1
log() { printf 'lab: %s\n' "$*"; }
err() { printf 'lab: error: %s\n' "$*" >&2; }
die() { err "$*"; exit 1; }

# usage [RC]: the usage lines of this file's header, then exit RC (default 2)
usage() {
    sed -n '4,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    echo "(ESW_LAB_PREFIX: namespace and link prefix, default eswlab-; now $PREFIX)"
    exit "${1:-2}"
}

# require_root: die unless root
require_root() { [ "$(id -u)" -eq 0 ] || die "needs root"; }

# lab_namespaces: the names of every namespace with our prefix, one a line.
lab_namespaces() { ip netns list 2>/dev/null | awk '{print $1}' | grep "^${PREFIX}" || true; }

# dpctl/devlink ARGS...: the CLIs against the lab's eswd; in_ns NODE CMD...: CMD in a lab namespace
dpctl()   { ESW_CONTROL=$SOCK "$BIN/esw-dpctl" "$@"; }
devlink() { ESW_CONTROL=$SOCK "$BIN/esw-devlink" "$@"; }
in_ns()   { local n=$1; shift; ip netns exec "$PREFIX$n" "$@"; }

eswd_pid() { # the running daemon's pid, or nothing
    local p
    [ -r "$PIDFILE" ] || return 1
    p=$(cat "$PIDFILE" 2>/dev/null)
    [ -n "$p" ] && kill -0 "$p" 2>/dev/null && [ "$(cat /proc/"$p"/comm 2>/dev/null)" = eswd ] || return 1
    ! grep -q '^State:[[:space:]]*Z' /proc/"$p"/status 2>/dev/null || return 1   # a zombie is dead
    echo "$p"
}

# wait_for DESC SECONDS CMD...: retry CMD every 0.1 s until it succeeds (topo_wait).
wait_for() {
    local d=$1 limit=$2; shift 2
    topo_wait "$limit" "$@" && return 0
    err "timed out after ${limit}s waiting for: $d"
    return 1
}

# need_binaries: die unless eswd and the CLIs are built in BIN
need_binaries() {
    local b
    for b in eswd esw-dpctl esw-devlink; do
        [ -x "$BIN/$b" ] || die "$BIN/$b missing: run 'swift build' (or 'scripts/lab.sh demo', which builds)"
    done
}

# ---------------------------------------------------------------- down

# cmd_down [quiet]: stop eswd and everything in our namespaces, delete them; fails if any is left
cmd_down() {
    require_root
    local p n pids=() quiet=${1:-}
    if p=$(eswd_pid); then pids+=("$p"); fi
    for n in $(lab_namespaces); do
        for p in $(ip netns pids "$n" 2>/dev/null); do pids+=("$p"); done
    done
    esw_stop "${pids[@]}"
    # (anything started in the meantime, or ignoring SIGTERM, is killed here)
    for n in $(lab_namespaces); do esw_del_netns "$n" || err "cannot delete namespace $n"; done
    rm -f "$SOCK" "$PIDFILE" "$STATE/config"
    # A killed eswd leaves its uplink's record beside the socket (the settings a restart
    # gives back); the uplink it names went with the namespaces.
    if [ -f "$RUN/esw0.uplink" ] && grep -qx "uplink=$TOPO_UP" "$RUN/esw0.uplink"; then rm -f "$RUN/esw0.uplink"; fi
    [ -n "$quiet" ] || log "down: $(if [ -z "$(lab_namespaces)" ]; then echo "no $PREFIX* namespaces left"; else echo "LEFT: $(lab_namespaces | tr '\n' ' ')"; fi)"
    [ -z "$(lab_namespaces)" ]
}

# ---------------------------------------------------------------- up

daemon_answers() { # succeeds once eswd answers; gives up at once if it died
    kill -0 "$(cat "$PIDFILE")" 2>/dev/null || { UP_DEAD=1; return 0; }
    devlink dev show
}

# lab_start_eswd ARGS...: eswd in host, detached from this shell (setsid and ip netns
# exec both exec: $! is eswd), pid in PIDFILE; returns once it answers (topo_esw's starter).
lab_start_eswd() {
    setsid ip netns exec "${PREFIX}host" "$BIN/eswd" --control "$SOCK" "$@" </dev/null >>"$LOG" 2>&1 &
    echo $! >"$PIDFILE"
    UP_DEAD=0
    wait_for "eswd answers on $SOCK" 10 daemon_answers || return 1
    [ "$UP_DEAD" -eq 0 ] || { err "eswd exited right after starting"; return 1; }
}

UP_MADE=0
up_abort() { # a failed `up`: never leave half a lab
    err "up failed; tearing down what was made"
    [ -s "$LOG" ] && { err "eswd log (tail):"; tail -15 "$LOG" | sed 's/^/    | /' >&2; }
    cmd_down quiet
    exit 1
}

# cmd_up [--vfs N] [--miss M] [--policy P]: build the lab (scripts/topology.sh) and start eswd
cmd_up() {
    require_root
    local vfs=2 miss=normal policy=none i
    while [ $# -gt 0 ]; do
        case $1 in
            --vfs) vfs=${2:-}; shift 2 || usage ;;
            --miss) miss=${2:-}; shift 2 || usage ;;
            --policy) policy=${2:-}; shift 2 || usage ;;
            -h|--help) usage 0 ;;
            *) err "up: unknown argument '$1'"; usage ;;
        esac
    done
    [[ $vfs =~ ^[0-9]+$ ]] && [ "$vfs" -ge 1 ] && [ "$vfs" -le 200 ] || die "--vfs must be 1..200"
    case $miss in drop|normal) ;; *) die "--miss must be drop or normal" ;; esac
    case $policy in none|skip_sw|skip_hw) ;; *) die "--policy must be none, skip_sw or skip_hw" ;; esac
    need_binaries

    if [ -n "$(lab_namespaces)" ] || eswd_pid >/dev/null; then
        die "a lab is already up ($(lab_namespaces | tr '\n' ' ')); run 'scripts/lab.sh down' first${ESW_LAB_PREFIX:+ (with ESW_LAB_PREFIX=$PREFIX)}"
    fi

    trap up_abort ERR
    set -E
    mkdir -p "$RUN" "$STATE"
    rm -f "$SOCK" "$PIDFILE"
    : >"$LOG"

    # namespaces, the wire (PREFIXup0 in host <-> PREFIXwire0 in remote), eswd, VFs into VMs
    topo_esw "$vfs" lab_start_eswd --mode switchdev --miss "$miss" --policy "$policy" || false

    # the remote VTEP (kernel vxlan) and the host's tunnel endpoint on p0
    topo_vxlan_remote || false

    # datapath ports: pf0vf<i> = i+1, vxlan_sys_4789 = vfs+1
    for ((i = 0; i < vfs; i++)); do dpctl add-if "pf0vf$i" >/dev/null; done
    dpctl add-if vxlan_sys_4789,type=vxlan >/dev/null
    printf 'vfs=%s\nmiss=%s\npolicy=%s\n' "$vfs" "$miss" "$policy" >"$STATE/config"

    trap - ERR
    set +E
    log "up: $vfs VFs, miss=$miss, policy=$policy, eswd pid $(cat "$PIDFILE") (log $LOG)"
    for ((i = 0; i < vfs; i++)); do log "  ${PREFIX}vm$i: $(topo_vf_name "$i") $(topo_vm_addr "$i")/24 (datapath port $((i + 1)) = pf0vf$i)"; done
    log "  ${PREFIX}remote: $TOPO_WIRE $TOPO_VTEP_REMOTE/24, $TOPO_VX VNI $TOPO_VNI overlay $TOPO_OVERLAY_REMOTE/24 (vxlan_sys_4789 = port $((vfs + 1)))"
    log "  ${PREFIX}host: eswd, p0 $TOPO_VTEP_HOST/24, uplink $TOPO_UP"
    echo "export ESW_CONTROL=$SOCK"
}

# ---------------------------------------------------------------- status

# cmd_status: namespaces, eswd, config, datapath and eswitch state; fails if the lab is not up
cmd_status() {
    require_root
    local p ns rc=0
    ns=$(lab_namespaces)
    echo "namespaces: ${ns:-(none)}" | tr '\n' ' '; echo
    if p=$(eswd_pid); then
        echo "eswd: pid $p, alive"
    else
        p=$(ip netns pids "${PREFIX}host" 2>/dev/null | while read -r q; do [ "$(cat /proc/"$q"/comm 2>/dev/null)" = eswd ] && ! grep -q '^State:[[:space:]]*Z' /proc/"$q"/status && echo "$q"; done | head -1)
        if [ -n "$p" ]; then echo "eswd: pid $p, alive (no pid file)"; else echo "eswd: not running"; rc=1; fi
    fi
    [ -f "$STATE/config" ] && echo "config: $(tr '\n' ' ' <"$STATE/config")"
    [ -z "$ns" ] && return 1
    [ "$rc" -eq 0 ] || return 1
    echo "--- esw-dpctl show"
    dpctl show
    echo "--- esw-dpctl dump-flows -m: $(dpctl dump-flows -m | grep -c . ) flows ($(dpctl dump-flows -m | grep -c 'offloaded:yes') offloaded)"
    echo "--- esw-devlink dev eswitch show"
    devlink dev eswitch show
}

# ---------------------------------------------------------------- exec

# cmd_exec NODE CMD...: exec CMD in a lab namespace with ESW_CONTROL set and the binaries on PATH
cmd_exec() {
    require_root
    [ $# -ge 2 ] || die "usage: scripts/lab.sh exec NODE CMD..."
    local node=${1#"$PREFIX"}; shift
    ip netns list | awk '{print $1}' | grep -qx "$PREFIX$node" || die "no namespace $PREFIX$node (nodes: $(lab_namespaces | sed "s/^$PREFIX//" | tr '\n' ' '))"
    ESW_CONTROL=$SOCK PATH=$BIN:$PATH exec ip netns exec "$PREFIX$node" "$@"
}

# ---------------------------------------------------------------- demo

PASS=0
FAILS=0
DEMO_DIR=
DEMO_START=
# ok/fail MSG: count and print a demo step's outcome; step TITLE: a demo section header
ok()   { PASS=$((PASS + 1)); echo "ok: $*"; }
fail() { FAILS=$((FAILS + 1)); echo "FAIL: $*"; }
step() { printf '\n=== %s\n' "$*"; }
show() { sed 's/^/    /'; }   # indent a command's output

# demo_cleanup: on the demo's exit, tear the lab down and print the tally
demo_cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    step "teardown"
    if cmd_down; then ok "lab torn down, no $PREFIX* namespace left"; else fail "teardown left namespaces behind"; fi
    [ -n "$DEMO_DIR" ] && rm -rf "$DEMO_DIR"
    echo
    echo "demo: $PASS passed, $FAILS failed (${DEMO_START:+$(( $(date +%s) - DEMO_START )) s after the build})"
    [ "$rc" -ne 130 ] || echo "demo: interrupted, lab torn down"
    [ "$FAILS" -eq 0 ] || [ "$rc" -ne 0 ] || rc=1
    exit "$rc"
}

# iperf3 for SECONDS from node to DST, server in SRV on PORT (5201); prints receiver
# Mbit/s (0 on failure)
demo_iperf() {
    local cli=$1 srv=$2 dst=$3 secs=$4 port=${5:-5201}
    in_ns "$srv" iperf3 -s -p "$port" -1 -D -I "$DEMO_DIR/iperf3-$srv.pid" >/dev/null 2>&1
    wait_for "iperf3 server in $srv" 3 bash -c "ip netns exec $PREFIX$srv ss -ltn | grep -q ':$port '" || true
    in_ns "$cli" iperf3 -c "$dst" -p "$port" -t "$secs" -J 2>/dev/null >"$DEMO_DIR/iperf.json"
    python3 -c '
import json, sys
try:
    print(int(json.load(open(sys.argv[1]))["end"]["sum_received"]["bits_per_second"] / 1e6))
except Exception:
    print(0)' "$DEMO_DIR/iperf.json"
}

# dump-flows -m without the ufid and the fully wildcarded fields, for reading
tidy_flows() {
    sed -E 's/ufid:[^ ]* //; s/[a-z_]+\(0\/0\),//g; s/packet_type\([^)]*\),//g; s/[a-z]+=[0-9a-f.:]+\/[0.:]+,?//g; s/,\)/)/g'
}

masked() { # "size occ" of the masked table
    devlink resource show -j | python3 -c '
import json, sys
r = [r for r in json.load(sys.stdin)["resources"]["esw0"] if r["name"] == "masked"][0]
print(r["size"], r["occ"])'
}

# cmd_demo: dependencies, build, lab up, offload, VXLAN, neighbour change, conntrack ACL,
# table full, down
cmd_demo() {
    require_root
    local out n mbps size occ i

    step "dependencies and build (only what is missing)"
    . "$ROOT/scripts/deps.sh"
    esw_install_deps >&2 || die "cannot install dependencies"
    if [ -x "$BIN/eswd" ] && [ -x "$BIN/esw-dpctl" ] && [ -x "$BIN/esw-devlink" ]; then
        echo "    binaries present in $BIN, not building"
    else
        echo "    building (swift build, debug)..."
        (cd "$ROOT" && swift build) || die "swift build failed"
    fi
    DEMO_START=$(date +%s)

    step "lab up (any old lab is torn down first)"
    if [ -n "$(lab_namespaces)" ] || eswd_pid >/dev/null; then
        echo "    old lab found, tearing it down"
        cmd_down | show
    fi
    DEMO_DIR=$(mktemp -d "/tmp/${NAME}-demo.XXXXXX")
    trap demo_cleanup EXIT
    trap 'exit 130' INT TERM
    cmd_up --vfs 2 --miss drop --policy none 2>&1 | show
    if [ "${PIPESTATUS[0]}" -ne 0 ]; then fail "lab up"; exit 1; fi
    ok "lab up"

    step "install flows (port 1 = pf0vf0/VF0, 2 = pf0vf1/VF1, 3 = vxlan_sys_4789)"
    local TUN='set(tunnel(tun_id=0x2a,dst=198.18.0.2,ttl=64,tp_dst=4789,flags(df|key))),3'
    local DEC='tunnel(tun_id=0x2a,src=198.18.0.2,dst=198.18.0.1,ttl=64,flags(+key)),in_port(3),eth()'
    cat >"$DEMO_DIR/flows" <<EOF
in_port(1),eth(),eth_type(0x0800),ipv4(dst=198.19.0.2,frag=no) 2
in_port(2),eth(),eth_type(0x0800),ipv4(frag=no) 1
in_port(2),eth(),eth_type(0x0806),arp() 1
in_port(1),eth(),eth_type(0x0806),arp() 2,$TUN
in_port(1),eth(),eth_type(0x0800),ipv4(dst=198.19.0.3,frag=no) $TUN
$DEC,eth_type(0x0800),ipv4(frag=no) 1
$DEC,eth_type(0x0806),arp() 1
EOF
    local nflows
    nflows=$(grep -c . "$DEMO_DIR/flows")
    echo "    # VF0 <-> VF1 (IPv4 both ways, ARP from VF1)"
    sed -n '1,3p' "$DEMO_DIR/flows" | show
    echo "    # ARP from VF0 goes to VF1 and into the tunnel (the hardware matches arp() without fields only)"
    sed -n '4p' "$DEMO_DIR/flows" | show
    echo "    # VF0 -> remote overlay 198.19.0.3: VXLAN encap (VNI 42 to 198.18.0.2); remote -> VF0: decap"
    sed -n '5,$p' "$DEMO_DIR/flows" | show
    if out=$(dpctl add-flows "$DEMO_DIR/flows" 2>&1); then ok "$nflows flows added"; else fail "add-flows"; echo "$out" | show; fi
    echo "    waiting for the tunnel neighbour to resolve and all flows to reach hardware..."
    if wait_for "$nflows flows offloaded" 5 bash -c "[ \$(ESW_CONTROL=$SOCK $BIN/esw-dpctl dump-flows -m | grep -c 'offloaded:yes') -eq $nflows ]"; then
        ok "all $nflows flows offloaded"
    else
        fail "not all flows offloaded"; dpctl dump-flows -m --names | tidy_flows | show
    fi

    step "ping VF0 (${PREFIX}vm0, 198.19.0.1) -> VF1 (198.19.0.2)"
    if in_ns vm0 ping -c 3 -i 0.2 -W 2 198.19.0.2 2>&1 | show; [ "${PIPESTATUS[0]}" -eq 0 ]; then ok "ping VF0 -> VF1"; else fail "ping VF0 -> VF1"; fi

    step "ping VF0 -> remote overlay 198.19.0.3 (over VXLAN)"
    if in_ns vm0 ping -c 3 -i 0.2 -W 2 198.19.0.3 2>&1 | show; [ "${PIPESTATUS[0]}" -eq 0 ]; then ok "ping VF0 -> remote overlay"; else fail "ping VF0 -> remote overlay"; fi

    step "iperf3 2 s VF0 -> VF1"
    echo "    running (2 s)..."
    mbps=$(demo_iperf vm0 vm1 198.19.0.2 2)
    echo "    received: $mbps Mbit/s"
    if [ "$mbps" -gt 0 ]; then ok "iperf3 VF0 -> VF1: $mbps Mbit/s"; else fail "iperf3 VF0 -> VF1 moved nothing"; fi

    step "iperf3 2 s VF0 -> remote overlay (VXLAN)"
    echo "    running (2 s)..."
    mbps=$(demo_iperf vm0 remote 198.19.0.3 2)
    echo "    received: $mbps Mbit/s"
    if [ "$mbps" -gt 0 ]; then ok "iperf3 VF0 -> remote: $mbps Mbit/s"; else fail "iperf3 VF0 -> remote moved nothing"; fi

    step "esw-dpctl dump-flows -m --names (after the 1 s stats poll; ufids and wildcarded fields hidden)"
    sleep 1.2
    out=$(dpctl dump-flows -m --names 2>&1)
    echo "$out" | tidy_flows | show
    n=$(echo "$out" | grep -c 'offloaded:yes, dp:esw')
    if [ "$n" -eq "$nflows" ]; then ok "$n of $nflows flows offloaded:yes, dp:esw"; else fail "only $n of $nflows flows offloaded:yes, dp:esw"; fi
    n=$(echo "$out" | grep -o 'packets:[0-9]*' | cut -d: -f2 | awk '$1 > 0' | wc -l)
    if [ "$n" -eq "$nflows" ]; then ok "all $nflows flows have non-zero packet counters"
    elif [ "$n" -gt 0 ]; then
        # every flow was exercised above, but ARP may have been answered from cache
        local zero
        zero=$(echo "$out" | grep 'packets:0,' | grep -vc 'arp' || true)
        if [ "$zero" -eq 0 ]; then ok "$n flows have non-zero packet counters (zero only on ARP flows: neighbours cached)"
        else fail "$zero IPv4 flows still at packets:0"; fi
    else fail "no flow has a non-zero packet counter"; fi

    step "esw-devlink resource show (hardware table occupancy)"
    out=$(devlink resource show 2>&1)
    echo "$out" | show
    read -r size occ <<<"$(masked)"
    if [ "${occ:-0}" -gt 0 ]; then ok "masked table occupancy $occ of $size"; else fail "masked table occupancy is ${occ:-?}"; fi

    step "neighbour change: remote $TOPO_WIRE gets MAC 02:00:00:00:aa:42"
    local NEWMAC=02:00:00:00:aa:42
    echo "    before:"; dpctl dump-tunnels 2>&1 | show
    ip -n "${PREFIX}remote" link set "$TOPO_WIRE" address $NEWMAC
    ip -n "${PREFIX}host" neigh replace 198.18.0.2 dev p0 lladdr $NEWMAC nud reachable
    wait_for "encap entry with $NEWMAC" 3 bash -c "ESW_CONTROL=$SOCK $BIN/esw-dpctl dump-tunnels | grep -q ' $NEWMAC .* valid'" || true
    out=$(dpctl dump-tunnels 2>&1)
    echo "    after:"; echo "$out" | show
    if echo "$out" | grep -q " $NEWMAC .* valid"; then ok "encap entry follows the new MAC"; else fail "encap entry did not follow the new MAC"; fi
    if in_ns vm0 ping -c 3 -i 0.2 -W 2 -q 198.19.0.3 2>&1 | show; [ "${PIPESTATUS[0]}" -eq 0 ]; then ok "ping VF0 -> remote after the MAC change"; else fail "ping after the MAC change"; fi

    step "stateful ACL (conntrack zone 1, offloaded once established): VF0 may open TCP to VF1 port 80, VF1 may open nothing"
    topo_ct_acl_flows "$DEMO_DIR/acl"
    show <"$DEMO_DIR/acl"
    if dpctl del-flows && out=$(dpctl add-flows "$DEMO_DIR/acl" 2>&1); then ok "ACL flows replace the others"; else fail "ACL add-flows"; echo "$out" | show; fi
    echo "    running iperf3 VF0 -> VF1:80 (2 s)..."
    mbps=$(demo_iperf vm0 vm1 198.19.0.2 2 80)
    echo "    received: $mbps Mbit/s"
    if [ "$mbps" -gt 0 ]; then ok "iperf3 VF0 -> VF1:80 through the ACL: $mbps Mbit/s"; else fail "iperf3 through the ACL moved nothing"; fi
    out=$(devlink dev show -s 2>&1 | grep '^  ct:')
    echo "    \$ esw-devlink dev show -s | grep ct:"; echo "$out" | show
    if echo "$out" | grep -Eq 'hits [1-9][0-9]{3,}'; then
        ok "the established connection ran in the NIC's CT table (pre-ct rule, CT entry, post-ct rule)"
    else fail "no CT hits in the pipeline"; fi
    out=$(dpctl dump-conntrack zone=1 2>&1)
    echo "    \$ esw-dpctl dump-conntrack zone=1"; echo "$out" | show
    if echo "$out" | grep -q '^tcp,orig=(src=198.19.0.1,dst=198.19.0.2,sport=[0-9]*,dport=80),.*zone=1,mark=5'; then
        ok "the connections are tracked in zone 1 with ct_mark 5"
    else fail "no tracked connection VF0 -> VF1:80"; fi
    in_ns vm0 iperf3 -s -p 80 -1 -D -I "$DEMO_DIR/iperf3-vm0.pid" >/dev/null 2>&1   # a listener the ACL hides
    if in_ns vm1 timeout 3 bash -c 'exec 3<>/dev/tcp/198.19.0.1/80' 2>/dev/null; then fail "VF1 opened a connection to VF0"
    else ok "VF1 -> VF0:80 (a listener is there) blocked by the ACL: no flow for a new connection from VF1"; fi
    kill "$(cat "$DEMO_DIR/iperf3-vm0.pid" 2>/dev/null)" 2>/dev/null
    dpctl del-flows
    if out=$(dpctl add-flows "$DEMO_DIR/flows" 2>&1) &&
       wait_for "$nflows flows offloaded" 5 bash -c "[ \$(ESW_CONTROL=$SOCK $BIN/esw-dpctl dump-flows -m | grep -c 'offloaded:yes') -eq $nflows ]"; then
        ok "the first flow set is back in hardware"
    else fail "restoring the first flow set"; echo "$out" | show; fi

    step "table full under skip_sw: masked table resized to occupancy + 2, three filler flows"
    if out=$(dpctl set-policy skip_sw 2>&1); then echo "    set-policy skip_sw"; else fail "set-policy skip_sw"; echo "$out" | show; fi
    read -r size occ <<<"$(masked)"
    echo "    masked table: size $size, occ $occ -> resizing to $((occ + 2))"
    if devlink resource set esw0 path /masked size $((occ + 2)) 2>&1 | show && [ "${PIPESTATUS[0]}" -eq 0 ] &&
       devlink dev reload esw0 2>&1 | show && [ "${PIPESTATUS[0]}" -eq 0 ]; then
        read -r size occ <<<"$(masked)"
        if [ "$size" -eq $((occ + 2)) ]; then ok "masked resized to $size ($occ in use)"; else fail "masked is $size/$occ after reload"; fi
    else
        fail "resource set + reload"
    fi
    for i in 1 2 3; do
        local f="in_port(1),eth(),eth_type(0x0800),ipv4(src=198.18.9.$i,frag=no)"
        echo "    \$ esw-dpctl add-flow '$f' drop"
        out=$(dpctl add-flow "$f" drop 2>&1); local rc=$?
        [ -n "$out" ] && echo "$out" | show
        if [ "$i" -lt 3 ]; then
            if [ "$rc" -eq 0 ]; then ok "filler $i fits"; else fail "filler $i refused"; fi
        else
            if [ "$rc" -ne 0 ] && echo "$out" | grep -q 'No space left on device'; then ok "filler 3 refused: ENOSPC with a message"
            else fail "filler 3: expected 'No space left on device' (rc $rc)"; fi
        fi
    done
    read -r size occ <<<"$(masked)"
    echo "    masked table now: size $size, occ $occ"
    if [ "$size" -eq "$occ" ]; then ok "masked table full ($occ of $size)"; else fail "masked table $occ of $size"; fi
    if in_ns vm0 ping -c 2 -i 0.2 -W 2 -q 198.19.0.2 >/dev/null 2>&1; then ok "existing flows still forward (ping VF0 -> VF1)"; else fail "ping VF0 -> VF1 after the table filled"; fi

    [ "$FAILS" -eq 0 ]
}

# ---------------------------------------------------------------- main

[ $# -ge 1 ] || usage
cmd=$1; shift
case $cmd in
    up) cmd_up "$@" ;;
    down) cmd_down ;;
    status) cmd_status ;;
    exec) cmd_exec "$@" ;;
    demo) cmd_demo ;;
    -h|--help|help) usage 0 ;;
    *) err "unknown command '$cmd'"; usage ;;
esac
