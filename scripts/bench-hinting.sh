#!/usr/bin/env bash
# bench-hinting.sh — `scripts/bench.sh hinting`: the software path with and without
# partial offload (hinting), for flow sets whose traffic spreads over 1, 16, 64 and 256
# masks.
#
# Usage: scripts/bench.sh hinting [--quick] [--bin DIR] [--out DIR]
#
# The lab topology (scripts/topology.sh, namespaces $ESW_BENCH_PREFIX*, default
# eswbench-): eswd --vfs 2, switchdev, policy none. For M masks, M datapath flows
# in_port(pf0vf0) -> pf0vf1 with a software-only action (trunc, so every packet takes
# the software path), flow i matching UDP dst port 2000+i under a mask of its own (IPv4
# source and destination prefixes of distinct lengths), and M fully offloadable flows
# in_port(pf0vf1) with the same masks, so that the hardware's tuple space walks the same
# masks in both modes. A raw-socket sender in vm0 sends 64-byte UDP frames round-robin
# over the M flows, so the classifier's subtable ranking cannot put one hot mask first:
# without hinting a packet costs about M/2 subtable probes.
# `hint`: partial offload on (the hardware marks, the datapath goes to the flow by mark);
# `classify`: `esw-dpctl set-partial-offload off` (the same flows, classified).
# The hardware's tuple space holds at most 64 masks (devlink resource `masks`): with 256,
# only the flows of the first 64 masks get a partial rule; the report says how many.
#
# Per (M, mode), RUNS x T s each (5 x 5 s, --quick 5 x 2 s), medians:
#   - as fast as the sender goes: packets/s the datapath received on pf0vf0;
#   - at a fixed RATE (20,000 frames/s, below what either mode handles): CPU per packet
#     of eswd's packet thread (esw-dp), in user space (the datapath's own work:
#     extraction, lookup, actions; from its utime, 10 ms ticks) and in total (schedstat
#     run time, ns: with the kernel's receive and send, which hinting does not change);
#     the share of packets found by mark (rx_offload_partial).
# CPU per packet at a fixed rate, because at the sender's top speed the two modes see
# different rates, batch sizes and so costs per packet.
# Instructions per packet of esw-dp (user space), a count the machine's load does not
# move, unlike the tick-based user time: with `perf stat -e instructions:u,cycles:u -t`
# during the fixed-rate runs where the PMU has counters; where it has none (a VM without
# a virtual PMU, such as this one) a second pass runs eswd under callgrind (a copy
# without debug information, which valgrind's DWARF reader may not handle), one run of
# ESW_HINT_CG_SECONDS (4) s at ESW_HINT_CG_RATE (500) frames/s per row, counters zeroed
# before and dumped after, with simulated D1 and L2 misses per packet (eswd's accesses
# only). With M masks in hint mode and not every flow in the hardware (256 > 64 masks), a
# run over the hinted flows alone gives the hinted packets' own count.
# ESW_HINT_INSN=0 skips it, ESW_HINT_NATIVE=0 skips the native pass, ESW_HINT_CG_KEEP=DIR
# keeps the callgrind dumps (per masks-mode-target) for callgrind_annotate.
# Output: OUT/hinting.md (OUT defaults to bench/). Needs root. Everything it starts is
# torn down on any exit.
set -uo pipefail
LC_ALL=C; export LC_ALL
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$ROOT/scripts/netns.sh"
. "$ROOT/scripts/topology.sh"
. "$ROOT/scripts/deps.sh"
. "$ROOT/scripts/bench-part.sh"
bench_part hinting "$@"
# valgrind (callgrind) counts instructions per packet where the VM has no PMU (below).
esw_install_packages valgrind >&2 || log "cannot install valgrind: no instruction counts without a PMU"
RUNS=${ESW_HINT_RUNS:-5}
if [ $QUICK = 1 ]; then T=2; else T=5; fi
MASKS=(${ESW_HINT_MASKS:-1 16 64 256})
RATE=20000
PY=/usr/bin/python3
P=${ESW_BENCH_PREFIX:-eswbench-}
HZ=$(getconf CLK_TCK)
"$PY" -c 'import scapy.all' 2>/dev/null || die "$PY cannot import scapy (python3-scapy)"
D=$(mktemp -d /tmp/eswhint.XXXXXX)
PIDS=()
topo_init "$P" || exit 1
SWPID=""
. "$ROOT/scripts/bench-lib.sh"
ESWD_START_SECONDS=60   # the instruction-count pass runs eswd under callgrind
# dpcpu: "UTIME_TICKS RUNTIME_NS" of eswd's packet thread (esw-dp) so far: user time
# from its stat (clock ticks), all its CPU time from schedstat (nanoseconds)
dpcpu() {
    local t
    for t in /proc/$SWPID/task/*; do
        [ "$(cat "$t/comm" 2>/dev/null)" = esw-dp ] || continue
        echo "$(sed 's/^.*) //' "$t/stat" | awk '{print $12}') $(awk '{print $1}' "$t/schedstat")"
        return
    done
    echo "0 0"
}
# rx PORT FIELD: a counter of a datapath port from `show -j`
port_counter() {
    DPCTL show -j | "$PY" -c '
import json, sys
for p in json.load(sys.stdin)["ports"]:
    if p["name"] == sys.argv[1]:
        print(p["stats"]["rx_packets"] if sys.argv[2] == "rx" else p.get("rx_offload_partial", 0))' "$1" "$2"
}

topo_esw 2 start_eswd --mode switchdev --policy none || die "cannot build the topology"
DPCTL add-if pf0vf0 >/dev/null || die "add-if pf0vf0"
DPCTL add-if pf0vf1 >/dev/null || die "add-if pf0vf1"

# flows M FILE: M flows, flow i under mask i (source prefix a, destination prefix b),
# and the same masks on in_port(2) in hardware (no traffic).
flows() {
    "$PY" - "$1" >"$2" <<'EOF'
import sys
import ipaddress
m = int(sys.argv[1])
def mask(n): return str(ipaddress.IPv4Network("0.0.0.0/%d" % n).netmask)
for port, actions in ((1, "trunc(2000),2"), (2, "1")):
    for i in range(m):
        a, b = 32 - i % 17, 32 - i // 17          # 17 x 16 distinct (a, b) pairs cover 256
        print("in_port(%d),eth(),eth_type(0x0800),ipv4(src=198.19.0.1/%s,dst=198.19.0.2/%s,proto=17,frag=no),udp(dst=%d)"
              " %s" % (port, mask(a), mask(b), 2000 + i, actions))
EOF
}
cat >"$D/send.py" <<'EOF'
import sys, time, logging
logging.getLogger("scapy").setLevel(logging.ERROR)
from scapy.all import Ether, IP, UDP, Raw, conf
m, seconds, rate = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
s = conf.L2socket(iface="esw0v0")
# To a MAC nobody has: vm1's kernel counts and drops the frames without answering.
# An optional fourth argument: only these UDP destination ports (comma-separated).
ports = [int(x) for x in sys.argv[4].split(",")] if len(sys.argv) > 4 else [2000 + i for i in range(m)]
frames = [bytes(Ether(dst="02:00:00:00:00:99") / IP(src="198.19.0.1", dst="198.19.0.2") /
                UDP(sport=4000, dport=p) / Raw(b"x" * 18)) for p in ports]
frames = (frames * (256 // len(frames) + 1))[:max(256, len(frames))]
start = time.perf_counter()
end, sent = start + seconds, 0
while time.perf_counter() < end:
    for f in frames[:32] if rate else frames:
        s.send(f)
    if rate:
        # Bursts of 32 on a schedule: RATE frames a second on average.
        frames = frames[32:] + frames[:32]
        sent += 32
        delay = start + sent / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
EOF

# setup M: the flows for M masks, partial offload on. Sets PARTIAL (partially offloaded
# flows), DPMASKS (the datapath's masks) and HINTED (the UDP ports of the partial flows).
setup() {
    local m=$1
    DPCTL del-flows >/dev/null
    DPCTL set-partial-offload on
    flows "$m" "$D/flows.$m"
    DPCTL add-flows "$D/flows.$m" || die "add-flows ($m masks)"
    PARTIAL=$(DPCTL dump-flows type=partially-offloaded | grep -c 'in_port(1)')
    HINTED=$(DPCTL dump-flows type=partially-offloaded | grep 'in_port(1)' | sed -n 's/.*udp(dst=\([0-9]*\)).*/\1/p' | sort -n | paste -sd,)
    DPMASKS=$(DPCTL show -j | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["masks"]["total"])')
}
mode_set() { if [ "$1" = hint ]; then DPCTL set-partial-offload on; else DPCTL set-partial-offload off; fi; }
# dptid: the thread id of eswd's packet thread (esw-dp)
dptid() {
    local t
    for t in /proc/$SWPID/task/*; do
        [ "$(cat "$t/comm" 2>/dev/null)" = esw-dp ] && { basename "$t"; return; }
    done
}

# Instructions per packet: from the PMU (perf stat on esw-dp during the fixed-rate runs)
# where the machine exposes one; otherwise (a VM without a virtual PMU) by running eswd
# under callgrind in a second pass, which counts esw-dp's instructions exactly (and
# simulates its L1/last-level cache misses) at a low rate.
INSN_TOOL=none
if perf stat -x, -e instructions:u -o "$D/probe" -- true >/dev/null 2>&1 && grep -q '^[0-9]' "$D/probe"; then
    INSN_TOOL=perf
elif command -v valgrind >/dev/null && command -v callgrind_control >/dev/null; then
    INSN_TOOL=callgrind
fi
[ "${ESW_HINT_INSN:-1}" = 0 ] && INSN_TOOL=none
log "instructions per packet: $INSN_TOOL"
declare -A ROW ROWRUNS INSN DMISS LLMISS CG_HINTED PARTIALS

# The native pass: packets/s, CPU per packet (and, with a PMU, instructions and cycles).
for m in "${MASKS[@]}"; do
    [ "${ESW_HINT_NATIVE:-1}" = 0 ] && break
    setup "$m"; PARTIALS[$m]="$PARTIAL/$m"
    log "$m masks: $DPMASKS in the datapath, $PARTIAL of $m flows partially offloaded"
    for mode in hint classify; do
        mode_set $mode
        pps=() user=() total=() share=() insn=() cyc=()
        # A warm-up second: the classifier ranks its subtables by hits every second.
        ip netns exec "${P}vm0" "$PY" "$D/send.py" "$m" 1 0 >/dev/null 2>&1
        for r in $(seq $RUNS); do
            rx0=$(port_counter pf0vf0 rx) t0=$(date +%s%N)
            ip netns exec "${P}vm0" "$PY" "$D/send.py" "$m" "$T" 0 >/dev/null 2>>"$D/send.err"
            rx1=$(port_counter pf0vf0 rx) t1=$(date +%s%N)
            p=$(awk -v r0="$rx0" -v r1="$rx1" -v t0="$t0" -v t1="$t1" 'BEGIN{printf "%.1f", (r1 - r0) / ((t1 - t0) / 1e9) / 1e3}')
            rx0=$(port_counter pf0vf0 rx) h0=$(port_counter pf0vf0 partial); read -r u0 s0 < <(dpcpu)
            if [ $INSN_TOOL = perf ]; then
                perf stat -x, -e instructions:u,cycles:u -t "$(dptid)" -o "$D/perf.out" -- \
                    ip netns exec "${P}vm0" "$PY" "$D/send.py" "$m" "$T" "$RATE" >/dev/null 2>>"$D/send.err"
            else
                ip netns exec "${P}vm0" "$PY" "$D/send.py" "$m" "$T" "$RATE" >/dev/null 2>>"$D/send.err"
            fi
            rx1=$(port_counter pf0vf0 rx) h1=$(port_counter pf0vf0 partial); read -r u1 s1 < <(dpcpu)
            i0=0 c0=0
            if [ $INSN_TOOL = perf ]; then
                i0=$(awk -F, '$3 ~ /^instructions/ {print $1}' "$D/perf.out"); c0=$(awk -F, '$3 ~ /^cycles/ {print $1}' "$D/perf.out")
            fi
            read -r u t sh ip cp < <(awk -v r0="$rx0" -v r1="$rx1" -v h0="$h0" -v h1="$h1" -v u0="$u0" -v u1="$u1" \
                -v s0="$s0" -v s1="$s1" -v hz="$HZ" -v i0="${i0:-0}" -v c0="${c0:-0}" 'BEGIN{
                    pk = r1 - r0
                    if (!pk) { print "0 0 0 0 0"; exit }
                    printf "%.0f %.0f %.2f %.0f %.0f\n", (u1 - u0) / hz / pk * 1e9, (s1 - s0) / pk, (h1 - h0) / pk, i0 / pk, c0 / pk }')
            pps+=("$p") user+=("$u") total+=("$t") share+=("$sh") insn+=("$ip") cyc+=("$cp")
            log "$m masks, $mode, run $r: $p kpps at most; at $RATE/s: $u ns user, $t ns total CPU per packet, $sh by mark$([ $INSN_TOOL = perf ] && echo ", $ip instructions, $cp cycles")"
        done
        if [ $INSN_TOOL = perf ]; then
            INSN[$m,$mode]="$(printf '%s\n' "${insn[@]}" | median) ($(printf '%s\n' "${cyc[@]}" | median) cycles)"
        fi
        ROW[$m,$mode]="$DPMASKS | $mode | $PARTIAL/$m | $(printf '%s\n' "${pps[@]}" | median) | $(printf '%s\n' "${user[@]}" | median) | $(printf '%s\n' "${total[@]}" | median) | $(printf '%s\n' "${share[@]}" | median)"
        ROWRUNS[$m,$mode]="${pps[*]} | ${user[*]}"
    done
done

# cg_count OUTPREFIX: esw-dp's instructions, D1 and last-level misses (data reads and
# writes) in the last callgrind dump: the thread whose dump holds the packet thread's
# loop (DatapathWorker's run).
cg_count() {
    local f
    for f in "$1"*; do
        grep -q '^fn=.*DatapathWorker.*3run' "$f" 2>/dev/null || continue
        awk '/^events:/ { for (i = 2; i <= NF; i++) col[$i] = i - 1 }
             /^(summary|totals):/ { print $(1 + col["Ir"]), $(1 + col["D1mr"]) + $(1 + col["D1mw"]), $(1 + col["DLmr"]) + $(1 + col["DLmw"]); exit }' "$f"
        return
    done
    echo "0 0 0"
}

# The callgrind pass: eswd again, under callgrind; per (masks, mode) CG_N packets at
# CG_RATE frames/s, counters zeroed before and dumped after. With hinting and flows the
# hardware could not all take, also a run over the hinted flows only.
CG_RATE=${ESW_HINT_CG_RATE:-500}
CG_T=${ESW_HINT_CG_SECONDS:-4}
if [ $INSN_TOOL = callgrind ]; then
    teardown
    # valgrind's DWARF reader may not know the toolchain's DWARF 5: a copy without
    # debug information (the symbol table stays, so the dumps still name functions)
    objcopy --strip-debug "$BIN/eswd" "$D/eswd" || die "objcopy"
    ESWD=$D/eswd
    # The caches it simulates are this machine's per core (L1d 32 KiB 8-way, L2 1 MiB,
    # as its last level): only eswd's own accesses, not the kernel's or other processes'.
    ESWD_WRAP=(valgrind --tool=callgrind --separate-threads=yes --cache-sim=yes
          --I1=32768,8,64 --D1=32768,8,64 --LL=1048576,8,64
          --callgrind-out-file="$D/cg.%p")
    topo_esw 2 start_eswd --mode switchdev --policy none || die "cannot build the topology under callgrind"
    DPCTL add-if pf0vf0 >/dev/null || die "add-if pf0vf0"
    DPCTL add-if pf0vf1 >/dev/null || die "add-if pf0vf1"
    for m in "${MASKS[@]}"; do
        setup "$m"; PARTIALS[$m]="$PARTIAL/$m"
        for mode in hint classify; do
            mode_set $mode
            targets=all
            [ $mode = hint ] && [ "$PARTIAL" -lt "$m" ] && [ "$PARTIAL" -gt 0 ] && targets="all hinted"
            for target in $targets; do
                ports=()
                [ $target = hinted ] && ports=("$HINTED")
                ip netns exec "${P}vm0" "$PY" "$D/send.py" "$m" 1 "$CG_RATE" "${ports[@]}" >/dev/null 2>&1
                sleep 1
                callgrind_control -z "$SWPID" >/dev/null 2>&1
                rx0=$(port_counter pf0vf0 rx) h0=$(port_counter pf0vf0 partial)
                ip netns exec "${P}vm0" "$PY" "$D/send.py" "$m" "$CG_T" "$CG_RATE" "${ports[@]}" >/dev/null 2>>"$D/send.err"
                sleep 0.5
                rx1=$(port_counter pf0vf0 rx) h1=$(port_counter pf0vf0 partial)
                callgrind_control -d "$SWPID" >/dev/null 2>&1
                read -r ir d1 ll < <(cg_count "$D/cg.$SWPID.")
                if [ -n "${ESW_HINT_CG_KEEP:-}" ]; then
                    mkdir -p "$ESW_HINT_CG_KEEP/$m-$mode-$target" && cp "$D/cg.$SWPID".* "$ESW_HINT_CG_KEEP/$m-$mode-$target/"
                fi
                rm -f "$D/cg.$SWPID".*
                read -r ipk d1pk llpk sh < <(awk -v r0="$rx0" -v r1="$rx1" -v h0="$h0" -v h1="$h1" -v ir="$ir" -v d1="$d1" -v ll="$ll" 'BEGIN{
                    pk = r1 - r0
                    if (!pk) { print "0 0 0 0"; exit }
                    printf "%.0f %.1f %.2f %.2f\n", ir / pk, d1 / pk, ll / pk, (h1 - h0) / pk }')
                log "callgrind: $m masks, $mode, $target flows: $((rx1 - rx0)) packets, $ipk instructions, $d1pk D1 misses, $llpk L2 misses per packet, $sh by mark"
                if [ $target = all ]; then INSN[$m,$mode]=$ipk DMISS[$m,$mode]=$d1pk LLMISS[$m,$mode]=$llpk; else CG_HINTED[$m]="$ipk ($d1pk D1, $llpk L2 misses; $sh by mark)"; fi
            done
        done
    done
fi
{
    echo "# Partial offload (hinting): the software path with and without marks"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "- kernel: $(uname -r); CPUs: $(nproc)"
    echo "- build: $BIN/eswd (commit $(cd "$ROOT" && git rev-parse --short HEAD))"
    echo "- runs: $RUNS x $T s per row (medians)$([ $QUICK = 1 ] && echo ', --quick')"
    case $INSN_TOOL in
        perf) echo "- instructions: perf stat -e instructions:u,cycles:u on esw-dp during the fixed-rate runs (medians)" ;;
        callgrind) echo "- instructions: the PMU exposes no hardware counters here (\`perf stat -e instructions:u\`: not supported), so eswd ran again under callgrind (valgrind $(valgrind --version | sed 's/valgrind-//'), --cache-sim=yes, L1d 32 KiB, L2 1 MiB), one run of ${CG_T} s at $CG_RATE frames/s per row: esw-dp's instructions and simulated D1 / last-level cache misses (reads and writes) over the packets it received" ;;
        none) echo "- instructions: not measured (no PMU counters and no valgrind)" ;;
    esac
    echo
    echo "Traffic: 64-byte UDP frames from vm0, round-robin over the flows (one raw-socket"
    echo "sender), every packet through eswd's software datapath (the flows' trunc action"
    echo "is software-only). \`hint\`: the hardware rule marks the packet and the datapath"
    echo "runs the flow the mark names; \`classify\`: partial offload off, the datapath"
    echo "classifies (about masks/2 subtable probes a packet with the traffic spread evenly)."
    echo "The same masks are in the hardware in both modes (flows on the other port)."
    echo "kpps: packets the datapath received with the sender at full speed. CPU per packet:"
    echo "the CPU time of eswd's packet thread over the packets it received at $RATE frames/s,"
    echo "in user space (the datapath's own work; 10 ms ticks, so +-100 ns here) and in total"
    echo "(schedstat; with the kernel's receive and send, which hinting does not change)."
    echo "Instructions per packet: esw-dp's user-space instructions over the packets it"
    echo "received (everything the thread did: receive loop, extraction, lookup or mark,"
    echo "actions, batched send), a count that the machine's load does not change."
    echo
    echo "| masks | datapath masks | mode | partial flows (when on) | kpps (full speed) | user CPU ns/packet | total CPU ns/packet | share by mark | instructions/packet | D1 misses/packet (sim.) | L2 misses/packet (sim.) | kpps per run | user ns/packet per run |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    for m in "${MASKS[@]}"; do
        for mode in hint classify; do
            echo "| $m | ${ROW[$m,$mode]:-- | $mode | ${PARTIALS[$m]:--} | - | - | - | -} | ${INSN[$m,$mode]:--} | ${DMISS[$m,$mode]:--} | ${LLMISS[$m,$mode]:--} | ${ROWRUNS[$m,$mode]:-- | -} |"
        done
    done
    if [ ${#CG_HINTED[@]} -gt 0 ]; then
        echo
        echo "Where the hardware could take only some of the flows (its tuple space holds 64"
        echo "masks), the hint row mixes hinted and classified packets; the same run with the"
        echo "sender on the hinted flows only, instructions per packet:"
        echo
        for m in "${MASKS[@]}"; do
            [ -n "${CG_HINTED[$m]:-}" ] && echo "- $m masks, hinted flows only (${PARTIALS[$m]}): ${CG_HINTED[$m]}"
        done
    fi
} >"$OUT/hinting.md"
cat "$OUT/hinting.md"
log "wrote $OUT/hinting.md"
