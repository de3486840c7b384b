#!/usr/bin/env bash
# A flow table of 200k offloaded flows through one `add-flows`: the count, a sample of
# flows found by ufid with their own match, a dump that lists them all, a file with a
# bad last line that changes nothing (the batch is undone, policy none), and the
# daemon's memory given back after `del-flows` (generous bounds; speed is measured by
# scripts/bench.sh scale, never asserted here).
. "$(dirname "$0")/lib.sh"

N=${ESW_SCALE_FLOWS:-200000}
cat >"$T_DIR/profile" <<EOF
masked = $((N + 1024))
counters = $((N + 1024))
EOF
t_topology 2 --mode switchdev --policy none --profile "$T_DIR/profile"
dpctl add-if pf0vf0
dpctl add-if pf0vf1

rss_mib() { awk '/^VmRSS/{print int($2 / 1024)}' "/proc/$ESWD_PID/status"; }
# flows N FILE: N distinct source addresses from 198.18.0.0 on, VF0 -> VF1, ufid = the index
flows() {
    awk -v n="$1" 'BEGIN{ for (k = 0; k < n; k++)
        printf "ufid:00000000-0000-0000-0000-%012x,in_port(1),eth(),eth_type(0x0800),ipv4(src=198.%d.%d.%d,frag=no) 2\n",
               k, 18 + int(k / 65536), int(k / 256) % 256, k % 256 }' >"$2"
}
flows "$N" "$T_DIR/flows"
rss0=$(rss_mib)

# A bad line at the end of a big file: what was already sent is undone.
# The file's own syntax (read as bytes, line by line), as ovs-dpctl reads it: comments
# (a whole line, or from a '#' on), blank lines, leading blanks, CRLF endings, a command
# word per line followed by a space or a tab, a tab or a carriage return before the
# actions, a line without a final newline.
printf '%s\r\n' '# a comment' '' '  in_port(1),eth(),eth_type(0x0800),ipv4(src=198.18.200.1,frag=no) 2' \
    'add in_port(1),eth(),eth_type(0x0800),ipv4(src=198.18.200.2,frag=no) drop  # dropped' \
    $'add\tin_port(1),eth(),eth_type(0x0800),ipv4(src=198.18.200.3,frag=no)\t 2' \
    $'modify in_port(1),eth(),eth_type(0x0800),ipv4(src=198.18.200.3,frag=no)\r1' >"$T_DIR/syntax"
printf '%s' 'delete in_port(1),eth(),eth_type(0x0800),ipv4(src=198.18.200.1,frag=no)' >>"$T_DIR/syntax"
check "a flow file with comments, CRLF, command words and no final newline" dpctl add-flows "$T_DIR/syntax"
dump=$(dpctl dump-flows)
check_eq "... leaves the two flows it adds and keeps" 2 "$(grep -c 'src=198.18.200' <<<"$dump")"
check_match "... drop" 'src=198.18.200.2,.*actions:drop' "$dump"
check_match "... modify changed the actions" 'src=198.18.200.3,.*actions:1$' "$dump"
check "... and go" dpctl del-flows
# A line without actions is refused, as ovs-dpctl's add-flows refuses it ("Failed parsing
# line"): taken as drop, a forgotten action list installed a flow that drops.
printf '%s\n' 'in_port(1),eth(),eth_type(0x0800),ipv4(src=198.18.200.4,frag=no) 2' \
    'in_port(1),eth(),eth_type(0x0800),ipv4(src=198.18.200.5,frag=no)' >"$T_DIR/noactions"
out=$(dpctl add-flows "$T_DIR/noactions" 2>&1)
check_match "a line without actions is refused, naming it" "noactions:2: no actions" "$out"
check_eq "... and the file installs nothing" 0 "$(dpctl dump-flows | grep -c 'src=198.18.200')"

head -n 50000 "$T_DIR/flows" >"$T_DIR/bad"
echo 'in_port(1),eth(),eth_type(0x0800),ipv4(src=198.18.0.1,frag=maybe) 2' >>"$T_DIR/bad"
out=$(dpctl add-flows "$T_DIR/bad" 2>&1)
check_match "a file with a parse error on its last line is refused" "bad:50001: .*nothing was changed" "$out"
check_eq "... and leaves no flow (the streamed part was undone)" 0 "$(dpctl show | awk '/  flows:/{print $2}')"

check "add-flows of $N flows" dpctl add-flows "$T_DIR/flows"
rss_full=$(rss_mib)
t_log "eswd RSS: $rss0 MiB empty, $rss_full MiB with $N flows"
check_eq "show counts every flow" "$N" "$(dpctl show | awk '/  flows:/{print $2}')"
check_eq "every flow is in hardware" "$N" "$(dpctl show | awk '/offloaded flows:/{print $3}')"

# A sample spread over the file, each found by its ufid with its own source address.
sample_ok=0 sample=0
for k in 0 1 255 256 65535 65536 $((N / 3)) $((N / 2)) $((N - 2)) $((N - 1)); do
    sample=$((sample + 1))
    ufid=$(printf '00000000-0000-0000-0000-%012x' "$k")
    src=$(printf '198.%d.%d.%d' $((18 + k / 65536)) $((k / 256 % 256)) $((k % 256)))
    out=$(dpctl get-flow -m "ufid:$ufid" 2>&1)
    if printf '%s' "$out" | grep -q "ufid:$ufid, .*ipv4(src=$src[,)].*offloaded:yes"; then
        sample_ok=$((sample_ok + 1))
    else
        t_log "flow $k: $out"
    fi
done
check_eq "a sample of flows found by ufid, each with its match, in hardware" "$sample" "$sample_ok"
check_eq "dump-flows lists every flow" "$N" "$(dpctl dump-flows | grep -c 'ipv4(src=198\.')"

check "del-flows" dpctl del-flows
check_eq "no flow left" 0 "$(dpctl show | awk '/  flows:/{print $2}')"
check_eq "no rule left in hardware" 0 "$(dpctl show | awk '/offloaded flows:/{print $3}')"
# Memory back to the system (glibc trims a second or two after the table shrank).
bound=$((rss0 + 64))
t_wait "RSS back" 10 sh -c "[ \$(awk '/^VmRSS/{print int(\$2 / 1024)}' /proc/$ESWD_PID/status) -le $bound ]"
rss_after=$(rss_mib)
t_log "eswd RSS after del-flows: $rss_after MiB"
check_ge "RSS after del-flows at most the empty daemon's + 64 MiB (bound, MiB)" "$rss_after" "$bound"
