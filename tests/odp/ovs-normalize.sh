#!/usr/bin/env bash
# ovs-normalize.sh — normalise ODP flow text with a private, live Open vSwitch 3.1.
#
# Usage:  ovs-normalize.sh [--vlan-limit N] [--tmpdir DIR] [--keep DIR] [[-m] IN OUT]...
#         ovs-normalize.sh [--vlan-limit N] [-m] < IN > OUT   (IN/OUT "-": stdin/stdout)
#
# Each input line is "KEY<TAB>ACTIONS" (ACTIONS defaults to "drop" when the line
# has no TAB). For every input line exactly one output line is written, in order:
#
#     <key as dump-flows prints it>, actions:<actions as dump-flows prints them>
# or  error: <the message ovs-vswitchd returned>
#
# i.e. what `ovs-appctl dpctl/add-flow KEY ACTIONS` followed by
# `ovs-appctl dpctl/dump-flows` prints on the userspace datapath, statistics
# (", packets:…, bytes:…, used:…") removed. With -m the key is printed the way
# `dump-flows -m --no-names` prints it (ufid and dp-extra-info removed).
# Several IN/OUT jobs share one Open vSwitch instance.
#
# Isolation: ovsdb-server and ovs-vswitchd run from a temporary directory with
# their own database, control sockets, pid files, logs and OVS_RUNDIR/DBDIR/
# LOGDIR/SYSCONFDIR, with syslog logging off, and ovs-vswitchd runs with
# --enable-dummy=override --disable-system: every netdev (the datapath's own
# port and the bridge's internal port included) is a dummy in-process device,
# so no kernel interface is created and no kernel datapath is used. A system
# Open vSwitch, if any, is never contacted. Both daemons are always torn down
# (EXIT/INT/TERM/HUP trap) and their directory (made under --tmpdir DIR, default
# /tmp) removed; with --keep DIR their logs are copied to DIR first.
#
# Speed: lines are added in rounds with `dpctl/add-flows` on an empty table, one
# private UFID per line so each dumped flow can be matched to its line. A line
# missing from the dump is either invalid or overlapped by an earlier line of the
# batch (EEXIST) and goes to the next round; a round that adds nothing proves the
# remaining lines fail alone, and each is then added alone for its message.
# Lines that cannot be batched (blanks or '#' in the key, empty key or actions, a
# ufid of their own) are run alone on an empty table.

set -u
LC_ALL=C; export LC_ALL

VLANLIMIT="" KEEP="" TMPBASE=/tmp
declare -a JOB_IN JOB_OUT JOB_V
nj=0
verbose_next=0
while [ $# -gt 0 ]; do
    case "$1" in
        --vlan-limit) VLANLIMIT="$2"; shift ;;
        --keep) KEEP="$2"; shift ;;
        --tmpdir) TMPBASE="$2"; shift ;;
        -m|--verbose) verbose_next=1 ;;
        -h|--help) sed -n '2,/^$/p' "$0"; exit 0 ;;
        -?*) echo "ovs-normalize.sh: unknown option $1" >&2; exit 2 ;;
        *)
            [ $# -ge 2 ] || { echo "ovs-normalize.sh: IN without OUT" >&2; exit 2; }
            JOB_IN[nj]=$1; JOB_OUT[nj]=$2; JOB_V[nj]=$verbose_next
            nj=$((nj + 1)); verbose_next=0; shift ;;
    esac
    shift
done
if [ $nj = 0 ]; then
    JOB_IN[0]=-; JOB_OUT[0]=-; JOB_V[0]=$verbose_next; nj=1
fi

die() { echo "ovs-normalize.sh: $*" >&2; exit 1; }

for b in ovsdb-tool ovsdb-server ovs-vswitchd ovs-vsctl ovs-appctl; do
    command -v "$b" >/dev/null 2>&1 || die "$b not found (install openvswitch-switch)"
done
SCHEMA=""
for s in /usr/share/openvswitch/vswitch.ovsschema /usr/local/share/openvswitch/vswitch.ovsschema; do
    [ -r "$s" ] && { SCHEMA=$s; break; }
done
[ -n "$SCHEMA" ] || die "vswitch.ovsschema not found"

D=$(mktemp -d "$TMPBASE/ovs-normalize.XXXXXX") || exit 1
PIDS=""
cleanup() {
    local p alive
    trap - EXIT INT TERM HUP
    for p in vsd ovsdb; do
        [ -s "$D/$p.pid" ] && PIDS="$PIDS $(cat "$D/$p.pid" 2>/dev/null)"
    done
    for p in $PIDS; do kill "$p" 2>/dev/null; done
    for _ in $(seq 50); do
        alive=0
        for p in $PIDS; do kill -0 "$p" 2>/dev/null && alive=1; done
        [ $alive = 0 ] && break
        sleep 0.1
    done
    for p in $PIDS; do kill -9 "$p" 2>/dev/null; done
    if [ -n "$KEEP" ]; then mkdir -p "$KEEP" && cp "$D"/*.log "$KEEP"/ 2>/dev/null; fi
    rm -rf "$D"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# Everything OVS would otherwise put in /var/run/openvswitch, /etc/openvswitch,
# /var/log/openvswitch goes to $D.
export OVS_RUNDIR=$D OVS_DBDIR=$D OVS_LOGDIR=$D OVS_SYSCONFDIR=$D
LOGOPTS="-vconsole:off -vsyslog:off -vfile:info"

ovsdb-tool create "$D/conf.db" "$SCHEMA" >/dev/null || die "ovsdb-tool create failed"
ovsdb-server "$D/conf.db" --remote="punix:$D/db.sock" --pidfile="$D/ovsdb.pid" \
    --detach --no-chdir --log-file="$D/ovsdb.log" --unixctl="$D/ovsdb.ctl" $LOGOPTS 2>"$D/ovsdb.err" \
    || { cat "$D/ovsdb.err" >&2; die "ovsdb-server failed to start"; }
PIDS="$PIDS $(cat "$D/ovsdb.pid")"
VSCTL="ovs-vsctl --no-syslog --db=unix:$D/db.sock --timeout=10"
$VSCTL --no-wait init || die "ovs-vsctl init failed"
if [ -n "$VLANLIMIT" ]; then
    $VSCTL --no-wait set Open_vSwitch . other_config:vlan-limit="$VLANLIMIT" || die "cannot set vlan-limit"
fi
ovs-vswitchd "unix:$D/db.sock" --pidfile="$D/vsd.pid" --detach --no-chdir \
    --log-file="$D/vsd.log" --unixctl="$D/vsd.ctl" $LOGOPTS \
    --enable-dummy=override --disable-system 2>"$D/vsd.err" \
    || { cat "$D/vsd.err" "$D/vsd.log" >&2 2>/dev/null; die "ovs-vswitchd failed to start"; }
PIDS="$PIDS $(cat "$D/vsd.pid")"
APPCTL="ovs-appctl -t $D/vsd.ctl"
$VSCTL add-br br0 -- set bridge br0 datapath_type=netdev || die "add-br failed"
$APPCTL dpctl/dump-dps 2>/dev/null | grep -q 'netdev@ovs-netdev' || die "no userspace datapath (dpctl/dump-dps)"
# Keep the revalidators from deleting the hand-made datapath flows.
$APPCTL revalidator/pause >/dev/null || die "revalidator/pause failed"

VERBOSE=0

# strip_line LINE: drop stats, and for -m the leading ufid and dp-extra-info.
strip_line() {
    local l=$1 key acts
    [ $VERBOSE = 1 ] && l=${l#ufid:*, }
    key=${l%%, packets:*}
    acts=${l#*, actions:}
    acts=${acts%, dp-extra-info:*}
    printf '%s, actions:%s\n' "$key" "$acts"
}

# errmsg TEXT: the server's error text on one line (ovs-appctl's own line dropped).
errmsg() {
    printf '%s\n' "$1" | grep -v 'server returned an error' | tr '\n' ' ' | sed 's/ *$//'
}

dump() {
    if [ $VERBOSE = 1 ]; then
        $APPCTL dpctl/dump-flows -m --no-names
    else
        $APPCTL dpctl/dump-flows
    fi | grep -v '^flow-dump from'
}

# run_one KEY ACTIONS: a lone add-flow on an empty flow table.
run_one() {
    local key=$1 acts=$2 err out
    $APPCTL dpctl/del-flows >/dev/null 2>&1
    if ! err=$($APPCTL dpctl/add-flow "$key" "$acts" 2>&1 >/dev/null); then
        printf 'error: %s\n' "$(errmsg "$err")"
        return
    fi
    out=$(dump)
    if [ -z "$out" ]; then
        printf 'error: flow accepted but not found in dump-flows\n'
        return
    fi
    strip_line "$(printf '%s\n' "$out" | head -n 1)"
}

batchable() {
    local k=$1 a=$2
    [ -n "$k" ] && [ -n "$a" ] || return 1
    [[ "$k" == *[[:space:]#]* ]] && return 1
    [[ "$k" == *ufid:* ]] && return 1
    [[ "$a" == *'#'* ]] && return 1
    [[ "$a" == [[:space:]]* || "$a" == *[[:space:]] ]] && return 1
    return 0
}

# run_job IN OUT
run_job() {
    local in=$1 out=$2 line n=0 i u pl vl pa va np nv ok found err
    local -a KEYS=() ACTS=() RES=() PENDING=() SINGLE=() NEXT=()
    while IFS= read -r line || [ -n "$line" ]; do
        line=${line%$'\r'}
        if [[ "$line" == *$'\t'* ]]; then
            KEYS[n]=${line%%$'\t'*}; ACTS[n]=${line#*$'\t'}
        else
            KEYS[n]=$line; ACTS[n]=drop
        fi
        RES[n]=""
        if batchable "${KEYS[n]}" "${ACTS[n]}"; then PENDING+=("$n"); else SINGLE+=("$n"); fi
        n=$((n + 1))
    done < <(if [ "$in" = - ]; then cat; else cat -- "$in"; fi)

    # Rounds: add every pending line in one batch on an empty table; the lines whose
    # flow shows up are done. A line can be missing because it is invalid, or because
    # an earlier line of the same batch overlaps it (EEXIST): those go to the next
    # round. A round that adds nothing proves that every remaining line fails alone.
    while [ ${#PENDING[@]} -gt 0 ]; do
        local -A IDX=()
        : > "$D/batch.txt"
        for i in "${PENDING[@]}"; do
            printf -v u '0dd0cafe-0000-4000-8000-%012x' "$i"
            IDX[$u]=$i
            printf 'add ufid:%s,%s %s\n' "$u" "${KEYS[i]}" "${ACTS[i]}" >> "$D/batch.txt"
        done
        $APPCTL dpctl/del-flows >/dev/null 2>&1
        $APPCTL dpctl/add-flows "$D/batch.txt" >/dev/null 2>&1
        $APPCTL dpctl/dump-flows -m --no-names | grep -v '^flow-dump from' > "$D/verbose.txt"
        if [ $VERBOSE = 1 ]; then cp "$D/verbose.txt" "$D/plain.txt"; else dump > "$D/plain.txt"; fi
        np=$(wc -l < "$D/plain.txt"); nv=$(wc -l < "$D/verbose.txt")
        [ "$np" = "$nv" ] || die "plain and -m dumps differ in length"
        found=0
        # Both dumps list the flows in the same order; the -m one names the ufid.
        while IFS= read -r pl <&3 && IFS= read -r vl <&4; do
            u=${vl#ufid:}; u=${u%%,*}
            pa=${pl#*, actions:}; pa=${pa%, dp-extra-info:*}
            va=${vl#*, actions:}; va=${va%, dp-extra-info:*}
            [ "$pa" = "$va" ] && [ -n "${IDX[$u]+x}" ] || die "cannot pair the plain and -m dumps"
            RES[${IDX[$u]}]=$(strip_line "$pl")
            found=$((found + 1))
        done 3< "$D/plain.txt" 4< "$D/verbose.txt"
        unset IDX
        NEXT=()
        for i in "${PENDING[@]}"; do [ -n "${RES[i]}" ] || NEXT+=("$i"); done
        [ $found -gt 0 ] || break
        PENDING=("${NEXT[@]}")
    done

    # What is left fails on its own: get the message of a lone add-flow.
    $APPCTL dpctl/del-flows >/dev/null 2>&1
    for i in "${PENDING[@]}"; do
        if err=$($APPCTL dpctl/add-flow "${KEYS[i]}" "${ACTS[i]}" 2>&1 >/dev/null); then
            RES[i]=$(run_one "${KEYS[i]}" "${ACTS[i]}")     # cannot happen; be exact anyway
            $APPCTL dpctl/del-flows >/dev/null 2>&1
        else
            RES[i]="error: $(errmsg "$err")"
        fi
    done
    for i in "${SINGLE[@]}"; do RES[i]=$(run_one "${KEYS[i]}" "${ACTS[i]}"); done

    if [ "$out" = - ]; then
        for ((i = 0; i < n; i++)); do printf '%s\n' "${RES[i]}"; done
    else
        for ((i = 0; i < n; i++)); do printf '%s\n' "${RES[i]}"; done > "$out"
    fi
}

for ((j = 0; j < nj; j++)); do
    VERBOSE=${JOB_V[j]}
    run_job "${JOB_IN[j]}" "${JOB_OUT[j]}"
done
$APPCTL dpctl/del-flows >/dev/null 2>&1
exit 0
