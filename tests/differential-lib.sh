# tests/differential-lib.sh — sourced (after lib.sh) by the differential tests against
# Open vSwitch's userspace datapath (test-differential, test-ct-differential).
#
# Two identical topologies, each in namespaces of the test:
#
#   <E>    eswd (--vfs 0, uplink up0) whose datapath esw@esw0 has the veth ends d1..d4
#          as netdev vports 2..5 (explicit port_no)
#   <ET>   their peers t1..t4 (and up0's peer)
#   <O>    a private ovs-vswitchd (userspace datapath, netdev@ovs-netdev) with d1..d4
#          as datapath ports 2..5
#   <OT>   their peers t1..t4
#
# How the OVS flows stay put: a datapath created with `dpctl/add-dp netdev@X` and no
# bridge is never polled (dpif_netdev_run only runs for the datapath a bridge uses:
# frames sent to its ports are not even looked up), so OVS runs one bridge br0
# (datapath_type=netdev, fail-mode=secure, no OpenFlow flows) whose datapath
# netdev@ovs-netdev carries the ports; then
#   - `revalidator/pause` stops the revalidators, which otherwise delete the hand-made
#     datapath flows within a second (they have no ukeys), and
#   - other_config:flow-limit=0 makes every upcall return ENOSPC, so a miss drops the
#     packet without installing a megaflow (one would overlap our flows).
# Ports are added one at a time, so OVS numbers them 2..5 (0 is ovs-netdev, 1 is br0);
# diff_ovs checks that and diff_esw gives esw's vports the same numbers explicitly.
# other_config:vlan-limit=0 makes OVS parse two VLAN headers in frames and flow keys,
# as the kernel datapath (which esw models) does; OVS's default is one.
#
# The Python halves live in tests/tools: diff-send.py (frames in), capture.py (frames
# out), diff-compare.py (frames, byte for byte), diff-flowstats.py (flows and counters).

PY=/usr/bin/python3
DIFF_TOOLS=$T_ROOT/tests/tools
DIFF_PORTS=(2 3 4 5)          # datapath port numbers of d1..d4 on both sides

# diff_require: esw's binaries, Open vSwitch and scapy, or the test fails (never skips).
# Sets OVS_SCHEMA and OVS_VERSION.
diff_require() {
    local b s
    for b in eswd esw-dpctl esw-devlink; do
        if [ ! -x "$ESW_BIN/$b" ]; then t_fail "no $b in $ESW_BIN (build it, or set ESW_BIN)"; exit 1; fi
    done
    for b in ovs-vswitchd ovsdb-server ovsdb-tool ovs-vsctl ovs-appctl; do
        if ! command -v "$b" >/dev/null 2>&1; then
            t_fail "$b not found: install openvswitch-switch (this test does not skip)"
            exit 1
        fi
    done
    OVS_SCHEMA=""
    for s in /usr/share/openvswitch/vswitch.ovsschema /usr/local/share/openvswitch/vswitch.ovsschema; do
        [ -r "$s" ] && { OVS_SCHEMA=$s; break; }
    done
    [ -n "$OVS_SCHEMA" ] || { t_fail "vswitch.ovsschema not found (install openvswitch-switch)"; exit 1; }
    if ! "$PY" -c 'import scapy.all' >/dev/null 2>&1; then
        t_fail "$PY cannot import scapy: install python3-scapy (this test does not skip)"
        exit 1
    fi
    OVS_VERSION=$(ovs-vswitchd --version | sed -n 's/.*(Open vSwitch) \([0-9][0-9.]*\).*/\1/p' | head -n 1)
    t_log "Open vSwitch ${OVS_VERSION:-?}"
}

# diff_topology E ET O OT: the four namespaces (no IPv6 on any link: no router
# solicitations or MLD reports, so no noise), dN <-> tN (N = 1..4) on both sides and
# up0 <-> up0p for eswd's uplink. Sets NS_E NS_ET NS_O NS_OT.
diff_topology() {
    local n i
    NS_E=$1 NS_ET=$2 NS_O=$3 NS_OT=$4
    # Recorded for cleanup before they exist: a signal while t_ns runs must not leave one.
    for n in "$NS_E" "$NS_ET" "$NS_O" "$NS_OT"; do T_NAMESPACES+=("$T_PREFIX$n"); done
    t_ns "$NS_E" "$NS_ET" "$NS_O" "$NS_OT"
    t_ipv6_off "$NS_E" "$NS_ET" "$NS_O" "$NS_OT"
    t_veth "$NS_E" up0 "$NS_ET" up0p
    for i in 1 2 3 4; do
        t_veth "$NS_E" "d$i" "$NS_ET" "t$i"
        t_veth "$NS_O" "d$i" "$NS_OT" "t$i"
    done
}

# diff_esw: eswd in NS_E with d1..d4 as vports 2..5.
diff_esw() {
    local i
    t_eswd "$NS_E" --vfs 0 --uplink up0
    for i in 1 2 3 4; do
        check "esw: add-if d$i,port_no=${DIFF_PORTS[i - 1]}" dpctl add-if "d$i,port_no=${DIFF_PORTS[i - 1]}"
    done
}

# diff_ovs [OTHER_CONFIG...]: ovsdb-server and ovs-vswitchd in NS_O (files in $T_DIR/ovs),
# bridge br0 with d1..d4 as datapath ports 2..5, revalidators paused. Extra
# Open_vSwitch other_config settings (key=value) are set before ovs-vswitchd starts.
# Sets OVSD, VSCTL, APPCTL.
diff_ovs() {
    local i extra=() kv show
    for kv in "$@"; do extra+=("other_config:$kv"); done
    OVSD=$T_DIR/ovs
    mkdir -p "$OVSD"
    export OVS_RUNDIR=$OVSD OVS_DBDIR=$OVSD OVS_LOGDIR=$OVSD OVS_SYSCONFDIR=$OVSD
    local log="-vconsole:off -vsyslog:off -vfile:info"
    VSCTL="ovs-vsctl --no-syslog --db=unix:$OVSD/db.sock --timeout=10"
    APPCTL="ovs-appctl -t $OVSD/vsd.ctl"
    ovsdb-tool create "$OVSD/conf.db" "$OVS_SCHEMA" >/dev/null || { t_fail "ovsdb-tool create failed"; exit 1; }
    t_in "$NS_O" ovsdb-server "$OVSD/conf.db" --remote="punix:$OVSD/db.sock" --pidfile="$OVSD/ovsdb.pid" \
        --detach --no-chdir --log-file="$OVSD/ovsdb.log" --unixctl="$OVSD/ovsdb.ctl" $log 2>"$OVSD/ovsdb.err" \
        || { cat "$OVSD/ovsdb.err"; t_fail "ovsdb-server failed to start"; exit 1; }
    T_PIDS+=("$(cat "$OVSD/ovsdb.pid")")
    # flow-limit=0: a miss is dropped without installing a megaflow. vlan-limit=0: parse
    # two VLAN headers (OVS_VLAN_MAX), as the kernel datapath and esw do (default: 1).
    $VSCTL --no-wait init -- set Open_vSwitch . other_config:flow-limit=0 other_config:vlan-limit=0 "${extra[@]}" \
        || { t_fail "ovs-vsctl init failed"; exit 1; }
    t_in "$NS_O" ovs-vswitchd "unix:$OVSD/db.sock" --pidfile="$OVSD/vsd.pid" --detach --no-chdir \
        --log-file="$OVSD/vsd.log" --unixctl="$OVSD/vsd.ctl" $log 2>"$OVSD/vsd.err" \
        || { cat "$OVSD/vsd.err"; t_fail "ovs-vswitchd failed to start"; exit 1; }
    T_PIDS+=("$(cat "$OVSD/vsd.pid")")
    $VSCTL add-br br0 -- set bridge br0 datapath_type=netdev fail-mode=secure other-config:disable-in-band=true \
        || { t_fail "ovs-vsctl add-br failed"; exit 1; }
    for i in 1 2 3 4; do
        $VSCTL add-port br0 "d$i" || { t_fail "ovs-vsctl add-port d$i failed"; exit 1; }
    done
    show=$($APPCTL dpctl/show 2>&1)
    for i in 1 2 3 4; do
        check_match "ovs: d$i is datapath port ${DIFF_PORTS[i - 1]}" "^  port ${DIFF_PORTS[i - 1]}: d$i( |\$)" "$show"
    done
    [ "$T_FAILED" -eq 0 ] || { t_log "OVS numbered the ports differently; the flows would not line up"; exit 1; }
    check "ovs: revalidator/pause" $APPCTL revalidator/pause
}

# diff_flows_file OUT UFID_PREFIX FLOW...: "add ufid:<prefix><n, 12 hex digits>,KEY ACTIONS"
# lines for esw-dpctl add-flows and ovs-appctl dpctl/add-flows; each FLOW is KEY<TAB>ACTIONS.
# UFID_PREFIX is the first 24 characters of a ufid ("dd1ff000-0000-4000-8000-").
diff_flows_file() {
    local out=$1 prefix=$2 i=0 f
    shift 2
    : > "$out"
    for f in "$@"; do
        i=$((i + 1))
        printf 'add ufid:%s%012x,%s %s\n' "$prefix" "$i" "${f%%$'\t'*}" "${f#*$'\t'}" >> "$out"
    done
}

# diff_capture_start NS NAME: capture what comes out of t1..t4 of NS into $T_DIR/NAME.json
diff_capture_start() {
    rm -f "$T_DIR/$2.stop"
    t_in "$1" "$PY" "$DIFF_TOOLS/capture.py" "$T_DIR/$2.json" "$T_DIR/$2.stop" t1 t2 t3 t4 >"$T_DIR/$2.cap.out" 2>&1 &
    T_PIDS+=("$!")
    eval "CAP_$2=$!"
    t_wait "$2 capture ready" 10 grep -q ready "$T_DIR/$2.cap.out" || { cat "$T_DIR/$2.cap.out"; exit 1; }
}

# diff_capture_stop NAME
diff_capture_stop() {
    local pid
    eval "pid=\$CAP_$1"
    touch "$T_DIR/$1.stop"
    wait "$pid" || { t_fail "$1 capture failed"; cat "$T_DIR/$1.cap.out"; }
}

# diff_rx_total: the sum of "RX packets" of ports d1..d4 in a `dpctl show -s` on stdin
diff_rx_total() {
    awk '/^  port [0-9]+: d[1-4]/ { p = 1; next } /^  port / { p = 0 } p && /RX packets:/ { sub(/.*RX packets:/, ""); n += $1 } END { print n + 0 }'
}
