# tests/lib.sh — shared harness for esw's integration tests (bash, run as root).
#
# Every namespace a test creates is named "$T_PREFIX<name>" and every link lives
# inside those namespaces, so cleanup is "kill our daemons, delete our
# namespaces" and the root namespace is never touched. Cleanup runs on any exit,
# including failures and signals.

set -u
T_NAME=$(basename "${0%.sh}")
T_PREFIX=${T_PREFIX:-eswt-${T_NAME#test-}-}
T_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ESW_BIN=${ESW_BIN:-$T_ROOT/.build/debug}
. "$T_ROOT/scripts/netns.sh"
. "$T_ROOT/scripts/topology.sh"
topo_init "$T_PREFIX" || exit 1
T_DIR=$(mktemp -d "/tmp/esw-$T_NAME.XXXXXX")
T_FAILED=0
T_CHECKS=0
T_NAMESPACES=()
T_PIDS=()

# t_log MSG: a line prefixed with the test's name
t_log() { printf '[%s] %s\n' "$T_NAME" "$*"; }

# t_cleanup: on any exit, stop our processes, delete our namespaces, report; keeps logs on failure
t_cleanup() {
    local rc=$? p n
    trap - EXIT INT TERM
    esw_stop "${T_PIDS[@]}"
    esw_del_netns "${T_NAMESPACES[@]}" "${TOPO_NAMESPACES[@]}"
    if [ "$T_FAILED" -ne 0 ] || [ "$rc" -ne 0 ]; then
        t_log "FAILED ($T_FAILED of $T_CHECKS checks; logs kept in $T_DIR)"
        [ "$rc" -ne 0 ] || rc=1
    else
        t_log "ok ($T_CHECKS checks)"
        rm -rf "$T_DIR"
    fi
    exit "$rc"
}
trap t_cleanup EXIT
trap 'exit 130' INT TERM

# t_require_root: exit 1 unless root
t_require_root() {
    if [ "$(id -u)" -ne 0 ]; then t_log "needs root"; exit 1; fi
}

# t_ns NAME...: create namespaces $T_PREFIX<NAME> with lo up.
t_ns() { topo_ns "$@" || exit 1; }

# t_in NAME CMD...: run CMD in namespace $T_PREFIX<NAME>.
t_in() { topo_in "$@"; }

# t_ipv6_off NAME...: no IPv6 in these namespaces, on their netdevs now and on any moved in
# later. A netdev with IPv6 sends MLD reports and router solicitations by itself (at about
# 2, 6, 14 and 33 s after its link comes up), frames that exact counts would take for the
# test's own.
t_ipv6_off() {
    local n
    for n in "$@"; do t_in "$n" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1; done
}

# t_veth NS1 IF1 NS2 IF2: a veth pair between two of our namespaces, both ends up.
t_veth() { topo_veth "$@"; }

# t_eswd NS ARGS...: start eswd in a namespace with a private control socket
# (exported as ESW_CONTROL for the CLIs) and wait until it answers.
t_eswd() {
    local ns=$1; shift
    export ESW_CONTROL="$T_DIR/eswd.sock"
    # ip netns exec execs the daemon: $! is eswd itself, so signals reach it.
    ip netns exec "$T_PREFIX$ns" "$ESW_BIN/eswd" --control "$ESW_CONTROL" "$@" >>"$T_DIR/eswd.log" 2>&1 &
    ESWD_PID=$!
    T_PIDS+=("$ESWD_PID")
    t_wait "eswd answers" 10 "$ESW_BIN/esw-devlink" dev show >/dev/null || { cat "$T_DIR/eswd.log"; exit 1; }
}

# t_topology VFS [eswd args...]: the lab picture of scripts/topology.sh. Namespaces host
# (eswd, the representors), remote (behind the uplink wire: up0 <-> wire0) and
# vm0..vm<VFS-1>, each holding one VF netdev with 198.19.0.<i+1>/24.
t_topology() {
    local vfs=$1; shift
    topo_esw "$vfs" t_eswd_host "$@" || { t_log "cannot build the topology"; exit 1; }
}
# t_eswd_host ARGS...: eswd in host (topo_esw's starter).
t_eswd_host() { t_eswd host "$@"; }

# t_vxlan_remote: the far VTEP as the kernel's own vxlan device: wire0 198.18.0.2/24,
# vx42 (VNI 42, remote 198.18.0.1) holding overlay 198.19.0.3/24; p0 gets 198.18.0.1/24.
t_vxlan_remote() { topo_vxlan_remote || { t_log "cannot set up the vxlan remote"; exit 1; }; }

# t_vxlan_flows FILE: the VF0 <-> remote overlay flow set (datapath ports: pf0vf0 = 1,
# vxlan_sys_4789 = 2): IPv4 and ARP encapsulated towards 198.18.0.2 with VNI 42, and
# decapsulated from it to the VF.
t_vxlan_flows() { topo_vxlan_flows "$1"; }

# A ping that must get every reply: t_ping NS DST [COUNT]
t_ping() { t_in "$1" ping -c "${3:-3}" -i 0.2 -W 2 -q "$2"; }

# iperf3 for SECONDS from NS to DST (server started in SRVNS); prints receiver Mbit/s.
t_iperf() {
    local ns=$1 srvns=$2 dst=$3 secs=${4:-2}
    t_in "$srvns" iperf3 -s -1 -D -I "$T_DIR/iperf3.pid" >/dev/null 2>&1
    sleep 0.3
    t_in "$ns" iperf3 -c "$dst" -t "$secs" -J 2>/dev/null | /usr/bin/python3 -c '
import json, sys
try:
    print(int(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"] / 1e6))
except Exception:
    print(0)'
}

# t_tcpchurn: builds scripts/conntrack/tcpchurn.c (short TCP connections) into
# $T_DIR/tcpchurn with the system's C compiler, or the Swift toolchain's clang when there
# is none.
t_tcpchurn() {
    local cc
    cc=$(command -v cc || echo "$(dirname "$(readlink -f "$(command -v swift)")")/clang")
    "$cc" -O2 -Wall -pthread -o "$T_DIR/tcpchurn" "$(dirname "${BASH_SOURCE[0]}")/../scripts/conntrack/tcpchurn.c"
}

# dpctl/devlink ARGS...: the CLIs against the test's eswd (ESW_CONTROL)
dpctl() { "$ESW_BIN/esw-dpctl" "$@"; }
devlink() { "$ESW_BIN/esw-devlink" "$@"; }
export ESW_BIN T_PREFIX
export -f dpctl devlink

# t_pass/t_fail DESC: count a check that passed / failed
t_pass() { T_CHECKS=$((T_CHECKS + 1)); t_log "ok: $1"; }
# A failure also goes to $ESW_FAILED_CHECKS when set: scripts/test.sh repeats them at its end.
t_fail() {
    T_CHECKS=$((T_CHECKS + 1)); T_FAILED=$((T_FAILED + 1)); t_log "FAIL: $1"
    [ -z "${ESW_FAILED_CHECKS:-}" ] || t_log "FAIL: $1" >>"$ESW_FAILED_CHECKS"
}

# check DESC CMD...: CMD must succeed.
check() {
    local d=$1; shift
    if "$@" >"$T_DIR/last.out" 2>&1; then t_pass "$d"; else t_fail "$d"; sed 's/^/    | /' "$T_DIR/last.out" | tail -20; fi
}

# check_fails DESC CMD...: CMD must fail.
check_fails() {
    local d=$1; shift
    if "$@" >"$T_DIR/last.out" 2>&1; then t_fail "$d (succeeded)"; sed 's/^/    | /' "$T_DIR/last.out" | tail -20; else t_pass "$d"; fi
}

# check_eq DESC EXPECTED ACTUAL
check_eq() {
    if [ "$2" = "$3" ]; then t_pass "$1"; else t_fail "$1: expected '$2', got '$3'"; fi
}

# check_match DESC REGEX TEXT (extended regex, TEXT may span lines)
check_match() {
    if printf '%s\n' "$3" | grep -Eq -- "$2"; then t_pass "$1"; else t_fail "$1: /$2/ not in:"; printf '%s\n' "$3" | sed 's/^/    | /' | head -30; fi
}

# check_no_match DESC REGEX TEXT: REGEX must not be in TEXT
check_no_match() {
    if printf '%s\n' "$3" | grep -Eq -- "$2"; then t_fail "$1: /$2/ found in:"; printf '%s\n' "$3" | sed 's/^/    | /' | head -30; else t_pass "$1"; fi
}

# check_ge DESC MIN VALUE (integers)
check_ge() {
    if [ "${3:-0}" -ge "$2" ] 2>/dev/null; then t_pass "$1 ($3 >= $2)"; else t_fail "$1: ${3:-?} < $2"; fi
}

# t_wait DESC SECONDS CMD...: retry CMD every 0.1 s until it succeeds (topo_wait).
t_wait() {
    local d=$1 limit=$2; shift 2
    topo_wait "$limit" "$@" && return 0
    t_log "timed out after ${limit}s waiting for: $d"
    return 1
}

T_PCAPS=0
# t_pcap NS IF [FILTER]: start tcpdump on IF in NS (one file per capture). Sets PCAP,
# the capture's handle; save it to run several captures at once. Immediate mode: without
# it frames wait in the capture ring's current block (up to a second), and the ones still
# there when t_pcap_count stops tcpdump are lost (seen on a loaded machine). In immediate
# mode each slot of the capture ring holds a whole snap length (64 KiB and more at the
# default), so the ring had a few dozen slots and dropped bursts when tcpdump was slow to
# run: a short snap length (every header, even of a VXLAN frame) and a larger ring.
t_pcap() {
    T_PCAPS=$((T_PCAPS + 1))
    local file="$T_DIR/$T_PCAPS-$1-$2.pcap"
    ip netns exec "$T_PREFIX$1" tcpdump --immediate-mode -s 4096 -B 8192 -i "$2" -nn -U -w "$file" ${3:-} >/dev/null 2>&1 &
    PCAP="$!:$file"
    T_PIDS+=("$!")
    # Capturing has started once tcpdump has written the file header.
    t_wait "tcpdump on $2" 5 test -s "$file"
}

# t_pcap_wait FILTER MIN [SECONDS]: wait until the running capture PCAP holds at least
# MIN frames matching FILTER (frames may take a moment on a loaded machine).
t_pcap_wait() {
    local file=${PCAP#*:} end=$(( $(date +%s) + ${3:-3} ))
    while [ "$(date +%s)" -le "$end" ]; do
        [ "$(tcpdump -nn -r "$file" $1 2>/dev/null | wc -l)" -ge "$2" ] && return 0
        sleep 0.1
    done
    return 1
}

# t_pcap_count [FILTER]: stop the capture PCAP and print how many of its frames match FILTER.
t_pcap_count() {
    local pid=${PCAP%%:*} file=${PCAP#*:}
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    tcpdump -nn -r "$file" ${1:-} 2>/dev/null | wc -l
}

# A counter from `esw-devlink port show -s` for the port whose netdev is $1.
port_stat() {
    devlink port show -s -j | python3 -c '
import json, sys
ports = json.load(sys.stdin)["port"]
for p in ports.values():
    if p["netdev"] == sys.argv[1]:
        print(p["stats"][sys.argv[2]]); break
' "$1" "$2"
}

t_require_root

# run_py_checks CMD...: t_pass/t_fail per "ok"/"FAIL" line a checking script prints,
# other lines shown as details (the differential tests' comparisons).
run_py_checks() {
    local line
    while IFS= read -r line; do
        case "$line" in
            "ok "*) t_pass "${line#ok }" ;;
            "FAIL "*) t_fail "${line#FAIL }" ;;
            *) printf '    | %s\n' "$line" ;;
        esac
    done < <("$@" 2>&1 || echo "FAIL $1 ${2##*/} exited with an error")
}
