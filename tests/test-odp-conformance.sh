#!/usr/bin/env bash
# test-odp-conformance.sh — esw's ODP flow text against a live Open vSwitch 3.1.
#
# The keys of tests/odp/keys.txt (each with the action "1") and the actions of
# tests/odp/actions.txt (each with a key of its own) are added to a private
# Open vSwitch 3.1 started for this run (tests/odp/ovs-normalize.sh: userspace
# datapath, dummy netdevs, its own database, sockets and directories, inside a
# namespace of this test; always torn down) with `ovs-appctl dpctl/add-flow`,
# and read back with `dpctl/dump-flows` (and `dump-flows -m` for the keys).
# `esw-dpctl parse-flow -` (and `parse-flow -m -`) reads the same lines. Line by
# line, a flow OVS accepts must print byte-identically in esw; a flow OVS
# rejects must be rejected by esw (the error texts differ by design).
#
# tests/odp/deviations.txt lists the inputs where esw differs on purpose; for
# those, esw must print exactly the line given there (OVS's answer is logged).
#
# Needs root and openvswitch-switch (ovs-vswitchd, ovsdb-server, ovs-vsctl,
# ovs-appctl, ovsdb-tool); fails, never skips, when they are missing.
# ESW_ODP_ANY_OVS=1 compares against an Open vSwitch other than 3.1;
# ESW_ODP_CORPUS=DIR reads keys.txt, actions.txt and deviations.txt from DIR.

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ODP=$T_ROOT/tests/odp
CORPUS=${ESW_ODP_CORPUS:-$ODP}     # another directory with keys/actions/deviations.txt
DPCTL=$ESW_BIN/esw-dpctl
T_START=$(date +%s%N)

# --- prerequisites ----------------------------------------------------------------
if [ ! -x "$DPCTL" ]; then
    t_fail "no esw-dpctl at $DPCTL (build it, or set ESW_BIN)"
    exit 1
fi
for b in ovs-vswitchd ovsdb-server ovsdb-tool ovs-vsctl ovs-appctl; do
    if ! command -v "$b" >/dev/null 2>&1; then
        t_fail "$b not found: install openvswitch-switch (this test does not skip)"
        exit 1
    fi
done
OVS_VERSION=$(ovs-vswitchd --version | sed -n 's/.*(Open vSwitch) \([0-9][0-9.]*\).*/\1/p' | head -n 1)
case "$OVS_VERSION" in
    3.1.*) t_pass "Open vSwitch $OVS_VERSION" ;;
    *)
        if [ "${ESW_ODP_ANY_OVS:-0}" = 1 ]; then
            t_log "warning: Open vSwitch ${OVS_VERSION:-?}, the corpus is written for 3.1 (ESW_ODP_ANY_OVS=1)"
        else
            t_fail "Open vSwitch ${OVS_VERSION:-?} installed; esw normalises as 3.1 does (ESW_ODP_ANY_OVS=1 to compare anyway)"
            exit 1
        fi ;;
esac

# --- inputs -----------------------------------------------------------------------
# corpus FILE NAME: the non-comment, non-blank lines of FILE to $T_DIR/NAME.text
# ("<empty>" is the empty string), their line numbers in FILE to $T_DIR/NAME.lines.
corpus() {
    grep -n -v -e '^#' -e '^[[:space:]]*$' "$1" > "$T_DIR/$2.numbered"
    cut -d: -f1 "$T_DIR/$2.numbered" > "$T_DIR/$2.lines"
    cut -d: -f2- "$T_DIR/$2.numbered" | sed 's/^<empty>$//' > "$T_DIR/$2.text"
}

corpus "$CORPUS/keys.txt" keys
corpus "$CORPUS/actions.txt" actions
sed 's/$/\t1/' "$T_DIR/keys.text" > "$T_DIR/keys.in"
awk '{ printf "in_port(%d),eth(),eth_type(0x1234)\t%s\n", 2000 + NR, $0 }' "$T_DIR/actions.text" > "$T_DIR/actions.in"

# deviations.txt: blocks of "reason: / key: / actions: / esw:" lines.
: > "$T_DIR/dev.in"; : > "$T_DIR/dev.expected"; : > "$T_DIR/dev.reason"
dev_state=0 dev_bad=0 dev_n=0
while IFS= read -r line || [ -n "$line" ]; do
    case "$line" in
        '#'*|'') [ $dev_state = 0 ] || dev_bad=1; continue ;;
    esac
    case "$dev_state:$line" in
        "0:reason: "*) printf '%s\n' "${line#reason: }" >> "$T_DIR/dev.reason"; dev_state=1 ;;
        "1:key: "*) dev_key=${line#key: }; dev_state=2 ;;
        "2:actions: "*) printf '%s\t%s\n' "$dev_key" "${line#actions: }" >> "$T_DIR/dev.in"; dev_state=3 ;;
        "3:esw: "*) printf '%s\n' "${line#esw: }" >> "$T_DIR/dev.expected"; dev_state=0; dev_n=$((dev_n + 1)) ;;
        *) dev_bad=1; t_log "deviations.txt: unexpected line: $line" ;;
    esac
done < "$CORPUS/deviations.txt"
[ $dev_state = 0 ] || dev_bad=1
if [ $dev_bad = 0 ]; then t_pass "deviations.txt is well formed ($dev_n entries)"; else t_fail "deviations.txt is malformed"; fi

n_keys=$(wc -l < "$T_DIR/keys.in")
n_actions=$(wc -l < "$T_DIR/actions.in")
check_ge "keys in the corpus" 170 "$n_keys"
check_ge "actions in the corpus" 90 "$n_actions"

# --- Open vSwitch -------------------------------------------------------------------
# A namespace of our own on top of the dummy netdevs: nothing OVS does can
# reach the root namespace's links. lib.sh kills whatever is left in it.
t_ns odp
t_log "normalising $n_keys keys (plain and -m), $n_actions actions and $dev_n deviations with Open vSwitch $OVS_VERSION"
if ! t_in odp "$ODP/ovs-normalize.sh" --tmpdir "$T_DIR" --keep "$T_DIR/ovs-logs" \
        "$T_DIR/keys.in" "$T_DIR/keys.ovs" \
        -m "$T_DIR/keys.in" "$T_DIR/keys-m.ovs" \
        "$T_DIR/actions.in" "$T_DIR/actions.ovs" \
        "$T_DIR/dev.in" "$T_DIR/dev.ovs" 2> "$T_DIR/ovs-normalize.err"; then
    sed 's/^/    | /' "$T_DIR/ovs-normalize.err"
    t_fail "ovs-normalize.sh failed (Open vSwitch did not run)"
    exit 1
fi
T_OVS=$(date +%s%N)

# --- esw --------------------------------------------------------------------------
"$DPCTL" parse-flow - < "$T_DIR/keys.in" > "$T_DIR/keys.esw"
"$DPCTL" parse-flow -m - < "$T_DIR/keys.in" > "$T_DIR/keys-m.esw"
"$DPCTL" parse-flow - < "$T_DIR/actions.in" > "$T_DIR/actions.esw"
"$DPCTL" parse-flow - < "$T_DIR/dev.in" > "$T_DIR/dev.esw"

# compare NAME FILE IN OVS ESW LINES: line by line; every disagreement is
# reported with its line number in FILE.
compare() {
    local name=$1 file=$2 in=$3 ovs=$4 esw=$5 lines=$6 n_in n_ovs n_esw i=0 bad=0 acc=0 rej=0 input o e ln
    n_in=$(wc -l < "$in"); n_ovs=$(wc -l < "$ovs"); n_esw=$(wc -l < "$esw")
    if [ "$n_in" != "$n_ovs" ] || [ "$n_in" != "$n_esw" ]; then
        t_fail "$name: $n_in inputs but $n_ovs OVS and $n_esw esw output lines"
        return
    fi
    while IFS= read -r input <&3 && IFS= read -r o <&4 && IFS= read -r e <&5 && IFS= read -r ln <&6; do
        i=$((i + 1))
        if [[ "$o" == error:* ]]; then
            rej=$((rej + 1))
            [[ "$e" == error:* ]] && continue
        else
            acc=$((acc + 1))
            [ "$o" = "$e" ] && continue
        fi
        bad=$((bad + 1))
        t_fail "$name: $file:$ln differs"
        printf '    input: %s\n    ovs:   %s\n    esw:   %s\n' "${input//$'\t'/ | }" "$o" "$e"
    done 3< "$in" 4< "$ovs" 5< "$esw" 6< "$lines"
    T_CHECKS=$((T_CHECKS + i - bad))
    t_log "$name: $i lines, OVS accepted $acc and rejected $rej; $bad disagreement(s)"
    eval "${name//[^a-z]/_}_acc=$acc ${name//[^a-z]/_}_rej=$rej"
}

compare keys keys.txt "$T_DIR/keys.in" "$T_DIR/keys.ovs" "$T_DIR/keys.esw" "$T_DIR/keys.lines"
compare keys-m keys.txt "$T_DIR/keys.in" "$T_DIR/keys-m.ovs" "$T_DIR/keys-m.esw" "$T_DIR/keys.lines"
compare actions actions.txt "$T_DIR/actions.in" "$T_DIR/actions.ovs" "$T_DIR/actions.esw" "$T_DIR/actions.lines"

# The corpus must exercise both outcomes, or the comparison proves little.
check_ge "keys OVS accepts" 120 "${keys_acc:-0}"
check_ge "keys OVS rejects" 50 "${keys_rej:-0}"
check_ge "actions OVS accepts" 60 "${actions_acc:-0}"
check_ge "actions OVS rejects" 30 "${actions_rej:-0}"

# --- deviations -----------------------------------------------------------------------
i=0
while IFS= read -r input <&3 && IFS= read -r want <&4 && IFS= read -r got <&5 \
        && IFS= read -r ovs <&6 && IFS= read -r why <&7; do
    i=$((i + 1))
    if [ "$got" = "$want" ]; then
        T_CHECKS=$((T_CHECKS + 1))
        if [ "$got" = "$ovs" ]; then
            t_log "deviation $i: OVS now gives the same output: $ovs"
        elif [[ "$ovs" == error:* ]]; then
            t_log "deviation $i as expected (OVS rejects it): $why"
        else
            t_log "deviation $i as expected (OVS accepts it): $why"
        fi
    else
        t_fail "deviation $i ($why)"
        printf '    input:    %s\n    expected: %s\n    esw:      %s\n    ovs:      %s\n' \
            "${input//$'\t'/ | }" "$want" "$got" "$ovs"
    fi
done 3< "$T_DIR/dev.in" 4< "$T_DIR/dev.expected" 5< "$T_DIR/dev.esw" 6< "$T_DIR/dev.ovs" 7< "$T_DIR/dev.reason"
check_eq "deviations checked" "$dev_n" "$i"

T_END=$(date +%s%N)
t_log "time: $(( (T_END - T_START) / 1000000 )) ms (Open vSwitch $(( (T_OVS - T_START) / 1000000 )) ms)"
