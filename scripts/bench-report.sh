# bench-report.sh — scripts/bench.sh's report: results.md (or results-scale.md with
# --scale-only) from the measurements in R, and the plot results.png.
# Sourced by scripts/bench.sh; bench_report reads its globals (R, NAMES, RUNS, T, QUICK,
# SCALE_ONLY, CONTROL_PLANE, SCALE_SIZES, the NOTE_* and *_LINE strings, BUILD, ELAPSED).

# ratio A B: A/B with two decimals, or n/a
ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN{ if (a == "n/a" || b == "n/a" || a == "nan" || b == "nan" || a == "" || b == "" || b + 0 == 0) print "n/a"; else printf "%.2f", a / b }'
}
# paired A B METRIC (tcp|udp): the median over the rounds of A's run over B's run of the
# same round, or n/a
paired() {
    awk -v a="${R[$1,${3}runs]:-}" -v b="${R[$2,${3}runs]:-}" 'BEGIN{
        n = split(a, x, " "); m = split(b, y, " ")
        if (n == 0 || n != m) { print "n/a"; exit }
        for (i = 1; i <= n; i++) {
            if (x[i] == "n/a" || y[i] == "n/a" || y[i] + 0 == 0) { print "n/a"; exit }
            v = x[i] / y[i]
            for (j = i - 1; j >= 1 && r[j] > v; j--) r[j + 1] = r[j]
            r[j + 1] = v
        }
        printf "%.2f", r[int((n + 1) / 2)] }'
}
# pct V: "V %" or n/a
pct() { if [ "$1" = n/a ] || [ -z "$1" ]; then echo n/a; else echo "$1 %"; fi; }
# bench_report: the Markdown report on stdout
bench_report() {
    # A partial run (ESW_BENCH_TOPOLOGIES) leaves rows unmeasured: they print empty.
    local -
    set +u
    echo "# esw benchmark"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "- kernel: $(uname -r); CPUs: $(nproc); $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')"
    echo "- build: $BUILD"
    echo "- peer: Open vSwitch ${OVS_VER:-?} userspace datapath (datapath_type=netdev), NORMAL, veth system ports;" \
         "ovs-tso: other_config:userspace-tso-enable=true set before ovs-vswitchd started, tx checksum offload on" \
         "(vswitchd log: ${NOTE_ovs_tso:-no TSO message});" \
         "ovs-notso: TSO off, \`ethtool -K tx off\` in the senders"
    echo "- method: $RUNS rounds, each setting up, measuring and tearing down every topology in turn (the order" \
         "rotated per round); iperf3 $(iperf3 --version | head -n 1 | awk '{print $2}'), TCP 1 stream $T s per round (median of the rounds);" \
         "UDP 64 B payload -b 0, $T s per round, receiver's delivered packets/s (median);" \
         "ping $PINGS x -i 0.01 in the last round; switch CPU = utime+stime of the switch process (eswd or ovs-vswitchd)" \
         "over each iperf3 run, % of one core (median of the runs; every run below)"
    [ $SCALE_ONLY = 1 ] || echo "- esw flows: esw-offload: ${NOTE_off:-not measured}; esw-software: ${NOTE_sw:-not measured}; esw-vxlan: ${NOTE_vx:-not measured}"
    echo "- total runtime: ${ELAPSED} s$([ $QUICK = 1 ] && echo ' (--quick)')"
    if [ $SCALE_ONLY = 0 ]; then
    echo
    echo "## Targets"
    echo
    echo "| target | esw | reference | esw/reference | round by round |"
    echo "|---|---|---|---|---|"
    echo "| offloaded VF<->VF TCP vs veth | ${R[esw-offload,tcp]} Gbit/s | veth ${R[veth,tcp]} Gbit/s | $(ratio "${R[esw-offload,tcp]}" "${R[veth,tcp]}") | $(paired esw-offload veth tcp) |"
    echo "| offloaded VF<->VF TCP vs OVS-TSO | ${R[esw-offload,tcp]} Gbit/s | ovs-tso ${R[$REF,tcp]} Gbit/s | $(ratio "${R[esw-offload,tcp]}" "${R[$REF,tcp]}") | $(paired esw-offload $REF tcp) |"
    echo "| offloaded VF<->VF 64 B UDP vs veth | ${R[esw-offload,udp]} kpps | veth ${R[veth,udp]} kpps | $(ratio "${R[esw-offload,udp]}" "${R[veth,udp]}") | $(paired esw-offload veth udp) |"
    echo "| ... the same limit for any tc switch: a redirect-only program vs veth | ${R[bpf-redirect,udp]} kpps | veth ${R[veth,udp]} kpps | $(ratio "${R[bpf-redirect,udp]}" "${R[veth,udp]}") | $(paired bpf-redirect veth udp) |"
    echo "| offloaded VF<->VF 64 B UDP vs the redirect-only program | ${R[esw-offload,udp]} kpps | bpf-redirect ${R[bpf-redirect,udp]} kpps | $(ratio "${R[esw-offload,udp]}" "${R[bpf-redirect,udp]}") | $(paired esw-offload bpf-redirect udp) |"
    echo "| ... vs the redirect-only program on esw's own VF netdevs (the pipeline's own cost) | ${R[esw-offload,udp]} kpps | bpf-redirect-esw ${R[bpf-redirect-esw,udp]} kpps | $(ratio "${R[esw-offload,udp]}" "${R[bpf-redirect-esw,udp]}") | $(paired esw-offload bpf-redirect-esw udp) |"
    echo "| ... the same per packet, as the kernel accounts the programs' run time (64 B UDP) | ${R[esw-offload,ns]:-n/a} ns | bpf-redirect-esw ${R[bpf-redirect-esw,ns]:-n/a} ns | $(ratio "${R[esw-offload,ns]:-n/a}" "${R[bpf-redirect-esw,ns]:-n/a}") | n/a |"
    echo "| ... vs one look-up of a key of the hardware table's width, then the redirect, on esw's own VF netdevs | ${R[esw-offload,udp]} kpps | classify-esw ${R[classify-esw,udp]:-n/a} kpps | $(ratio "${R[esw-offload,udp]}" "${R[classify-esw,udp]:-n/a}") | $(paired esw-offload classify-esw udp) |"
    echo "| ... the same per packet (kernel's accounting) | ${R[esw-offload,ns]:-n/a} ns | classify-esw ${R[classify-esw,ns]:-n/a} ns | $(ratio "${R[esw-offload,ns]:-n/a}" "${R[classify-esw,ns]:-n/a}") | n/a |"
    echo "| offloaded VXLAN TCP (VF -> remote) vs kernel vxlan | ${R[esw-vxlan,tcp]} Gbit/s | vxlan-kernel ${R[vxlan-kernel,tcp]} Gbit/s | $(ratio "${R[esw-vxlan,tcp]}" "${R[vxlan-kernel,tcp]}") | $(paired esw-vxlan vxlan-kernel tcp) |"
    echo "| eswd CPU, offloaded VF<->VF TCP | $(pct "${R[esw-offload,tcpcpu]}") of a core | ovs-vswitchd (ovs-tso) $(pct "${R[$REF,tcpcpu]}") | $(ratio "${R[esw-offload,tcpcpu]}" "${R[$REF,tcpcpu]}") | n/a |"
    echo "| eswd CPU, offloaded VF<->VF 64 B UDP | $(pct "${R[esw-offload,udpcpu]}") of a core | ovs-vswitchd (ovs-tso) $(pct "${R[$REF,udpcpu]}") | $(ratio "${R[esw-offload,udpcpu]}" "${R[$REF,udpcpu]}") | n/a |"
    echo "| eswd CPU, offloaded VXLAN TCP | $(pct "${R[esw-vxlan,tcpcpu]}") of a core | kernel vxlan: no switch process | n/a | n/a |"
    echo "| software path TCP vs OVS-TSO | ${R[esw-software,tcp]} Gbit/s | ovs-tso ${R[$REF,tcp]} Gbit/s | $(ratio "${R[esw-software,tcp]}" "${R[$REF,tcp]}") | $(paired esw-software $REF tcp) |"
    echo "| software path 64 B UDP vs OVS-TSO | ${R[esw-software,udp]} kpps | ovs-tso ${R[$REF,udp]} kpps | $(ratio "${R[esw-software,udp]}" "${R[$REF,udp]}") | $(paired esw-software $REF udp) |"
    echo "| ... a no-lookup forwarder on the same representors vs OVS-TSO (64 B UDP) | ${R[forward-representors,udp]} kpps | ovs-tso ${R[$REF,udp]} kpps | $(ratio "${R[forward-representors,udp]}" "${R[$REF,udp]}") | $(paired forward-representors $REF udp) |"
    echo "| software path 64 B UDP vs that forwarder | ${R[esw-software,udp]} kpps | forward-representors ${R[forward-representors,udp]} kpps | $(ratio "${R[esw-software,udp]}" "${R[forward-representors,udp]}") | $(paired esw-software forward-representors udp) |"
    echo
    echo "esw/reference is the ratio of the medians; round by round is the median of each round's own ratio"
    echo "(a round measures both rows within minutes of each other, so the drift of the machine over the run cancels)."
    echo "A real NIC's offloaded traffic costs the host's switch process nothing: the target for eswd's CPU"
    echo "during offloaded traffic is 0 %. Throughput ratios above 1 are better than the reference."
    echo
    echo "## Every row"
    echo
    echo "| topology | what | TCP Gbit/s | TCP ×veth | TCP ×OVS-TSO | UDP 64 B kpps | UDP ×veth | UDP ×OVS-TSO | ping p50 ms | ping p99 ms | switch CPU % (TCP) | switch CPU % (UDP) |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
    for n in "${NAMES[@]}"; do
        echo "| $n | ${R[$n,what]} | ${R[$n,tcp]} | $(ratio "${R[$n,tcp]}" "${R[veth,tcp]}") | $(ratio "${R[$n,tcp]}" "${R[$REF,tcp]}") | ${R[$n,udp]} | $(ratio "${R[$n,udp]}" "${R[veth,udp]}") | $(ratio "${R[$n,udp]}" "${R[$REF,udp]}") | ${R[$n,p50]} | ${R[$n,p99]} | ${R[$n,tcpcpu]} | ${R[$n,udpcpu]} |"
    done
    echo
    echo "×veth and ×OVS-TSO are this row over the veth and ovs-tso rows of the same run. Every run"
    echo "(value, then switch CPU % of one core):"
    echo
    for n in "${NAMES[@]}"; do
        printf -- '- %s: TCP Gbit/s [%s] CPU %% [%s]' "$n" "${R[$n,tcpruns]}" "${R[$n,tcpcpuruns]}"
        [ -n "${R[$n,udpruns]}" ] && printf '; UDP kpps [%s] CPU %% [%s]' "${R[$n,udpruns]}" "${R[$n,udpcpuruns]}"
        printf '; ping loss %s%%\n' "${R[$n,loss]}"
    done
    fi
    if [ $CONTROL_PLANE = 1 ] && [ $SCALE_ONLY = 0 ]; then
        echo
        echo "## Control plane"
        echo
        echo "| flows | esw add-flows (skip_hw) | OVS dpctl/add-flows | esw/OVS |"
        echo "|---|---|---|---|"
        for k in 10000 50000; do
            echo "| $((k / 1000))k | ${R[esw,cp$k]} flows/s (${R[esw,cp$k,got]} in ${R[esw,cp$k,s]} s; daemon CPU ${R[esw,cp$k,daemon]} s) | ${R[ovs,cp$k]} flows/s (${R[ovs,cp$k,got]} in ${R[ovs,cp$k,s]} s) | $(ratio "${R[esw,cp$k]}" "${R[ovs,cp$k]}") |"
        done
        echo
        echo "flows/s counts the flows present in dump-flows afterwards over the wall time of the one command"
        echo "(OVS's userspace datapath holds about 65k flows per thread: the comparison stops at 50k, a size it holds)."
    fi
    if [ -n "${SCALE_SIZES:-}" ]; then
        echo
        echo "## Scale: offloaded flows"
        echo
        echo "| flows | add-flows (one command) | in hardware | eswd CPU: all (control thread, BPF writer, prefault); the CLI's | the kernel's map insert alone | the pipeline floor (parse, send, decode, index, map insert: a minimal C program) | a first touch of its memory alone, just before | dump-flows | del-flows | eswd RSS empty → full → 5 s after del | per flow |"
        echo "|---|---|---|---|---|---|---|---|---|---|---|"
        for k in "${SCALE_SIZES[@]}"; do
            local each="" floors="" touches="" last=""
            if [ "${R[scale$k,rounds]:-1}" -gt 1 ]; then
                each="; the median of ${R[scale$k,rounds]} rounds: ${R[scale$k,adds]// / s, } s; the control thread ${R[scale$k,controls]// / s, } s; steal ${R[scale$k,steals]// / s, } s"
                floors=" (${R[scale$k,floors]// / s, } s)"; touches=" (${R[scale$k,touches]// / s, } s)"; last=", the last round"
            fi
            [ -n "$each" ] || each="; steal ${R[scale$k,steal]:-n/a} s"
            echo "| $((k / 1000))k | ${R[scale$k,add]} s (${R[scale$k,rate]} flows/s$each) | ${R[scale$k,hw]} | ${R[scale$k,addcpu]} s (${R[scale$k,control]}, ${R[scale$k,writer]}, ${R[scale$k,prefault]}$last); ${R[scale$k,cli]:-n/a} s | ${R[scale$k,kernel]:-n/a} s | ${R[scale$k,floor]:-n/a} s$floors | ${R[scale$k,touch]:-n/a} s$touches | ${R[scale$k,dump]} s ($(per_s "${R[scale$k,dumped]}" "${R[scale$k,dump]}") flows/s; steal ${R[scale$k,dumpsteal]:-n/a} s) | ${R[scale$k,del]} s ($(per_s "$k" "${R[scale$k,del]}") flows/s) | ${R[scale$k,rss0]} → ${R[scale$k,rss]} → ${R[scale$k,rssafter]} MiB | ${R[scale$k,perflow]} B |"
        done
        echo
        echo "| 50k flows | esw add-flows, offloaded (policy none) | OVS ${OVS_VER:-3.1} dpctl/add-flows (userspace datapath) | esw/OVS |"
        echo "|---|---|---|---|"
        echo "| add, in hardware (the scale run's single add) | ${R[scale50000,rate]} flows/s | ${R[ovs,cp50000]} flows/s (${R[ovs,cp50000,got]} kept) | $(ratio "${R[scale50000,rate]}" "${R[ovs,cp50000]}") |"
        if [ -n "${R[hw,cp50000,runs]:-}" ]; then
            echo "| add, in hardware (median of ${CP_ROUNDS:-5} rounds in turns with OVS's, a fresh eswd; the ratio: the median of the rounds' own) | ${R[hw,cp50000]} flows/s (daemon CPU ${R[hw,cp50000,daemon]} s, last round) | ${R[ovs,cp50000]} flows/s | $(paired hw ovs cp50000,) |"
        fi
        echo "| ... the kernel's map insert alone, no driver (the ceiling of any offloaded add) | $(per_s 50000 "${R[scale50000,kernel]:-0}") flows/s | ${R[ovs,cp50000]} flows/s | $(ratio "$(per_s 50000 "${R[scale50000,kernel]:-0}")" "${R[ovs,cp50000]}") |"
        echo "| ... the pipeline floor alone, a minimal C program (parse, send, decode, index, map insert) | $(per_s 50000 "${R[scale50000,floor]:-0}") flows/s | ${R[ovs,cp50000]} flows/s | $(ratio "$(per_s 50000 "${R[scale50000,floor]:-0}")" "${R[ovs,cp50000]}") |"
        echo "| add, software only (skip_hw, as OVS's userspace datapath) | ${R[esw,cp50000]} flows/s (daemon CPU ${R[esw,cp50000,daemon]} s${R[esw,cp50000,runs]:+, last round}) | ${R[ovs,cp50000]} flows/s | $(ratio "${R[esw,cp50000]}" "${R[ovs,cp50000]}") |"
        echo
        if [ -n "${R[esw,cp50000,runs]:-}" ]; then
            echo
            echo "Software only, in hardware in rounds, and OVS: the median of ${CP_ROUNDS:-5} rounds each (flows/s of every round: esw software only ${R[esw,cp50000,runs]}; esw in hardware ${R[hw,cp50000,runs]:-n/a}; OVS ${R[ovs,cp50000,runs]})."
            echo "The rounds in hardware run on one eswd, each add after the previous round's del-flows; they"
            echo "take turns with OVS's rounds (ovs-vswitchd running beside it, the order swapped every round)."
        fi
        echo
        echo "Wall time of one CLI command each, the file parsed by the CLI as it streams. The largest size's"
        echo "add runs in rounds (SCALE_ROUNDS, 3), each on the same eswd after the round before's del-flows,"
        echo "taking turns with the pipeline floor (the floor first in even rounds): add, floor and first touch"
        echo "are the medians, with every round's value; dump-flows, del-flows and RSS are the first round's."
        echo "OVS's userspace"
        echo "datapath keeps about 65k flows per thread (dpif-netdev's MAX_FLOWS), so the comparison is at 50k."
        echo "RSS counts the daemon only: the BPF maps holding the rules are kernel memory."
        echo "The kernel's map insert alone: scripts/scale/map-insert.c filling a map made as eswd makes its"
        echo "masked table (same key and value, no preallocation, 256 rules per BPF_MAP_UPDATE_BATCH) with"
        echo "as many rules, right after the add: the part of an add no driver can avoid."
        echo "The pipeline floor: scripts/scale/add-floor.c adding the same file end to end with only what any"
        echo "implementation does, right after the map insert alone: a client thread reads the file, parses"
        echo "each line by hand (this file's form only) and sends 160-byte OVS_FLOW_CMD_NEW requests in 48 KB"
        echo "datagrams over a SOCK_SEQPACKET socketpair (4096 unanswered at most); a server thread checks each"
        echo "message's and attribute's length, builds the table key and rule, indexes a 56-byte record by ufid"
        echo "and by match (a duplicate of either refused) and queues the rule; a writer thread writes the queue,"
        echo "256 rules per BPF_MAP_UPDATE_BATCH, into a"
        echo "map made as map-insert.c's; each request is ACKed once its run's rules are in the map. The server"
        echo "has one CPU, the client and the writer the other. Wall time from opening the file to the last ACK."
        echo "eswd CPU by thread: the control thread (decode, datapath, driver: the bound of an add), the BPF"
        echo "writer (the kernel's map inserts), the prefault thread (faulting in the heap's growth and the"
        echo "tables' next sizes ahead of their use). The CLI's CPU (read, parse, send, read the answers) is"
        echo "beside it: on this machine's $(nproc) CPUs an add takes at least 1/$(nproc) of eswd's and the CLI's CPU"
        echo "together in wall time, however its threads are placed. This VM's host backs guest memory"
        echo "lazily: a page the guest never used, or gave back (free page reporting), costs a host fault on its first use,"
        echo "160-550 MB/s against about 3 GB/s for one used just before (4 KiB pages). A 1M add faults in"
        echo "about 1 GB (eswd's heap and tables, the kernel's BPF elements): the prefault thread's CPU is"
        echo "mostly that, and the add's wall time moved by a second or more with the machine's memory."
        echo "Steal: the time the VM's host ran other work while this machine's CPUs wanted to run (/proc/stat,"
        echo "summed over the CPUs), during the add or the dump: a round with a second of it measured the host too."
        echo "A first touch of its memory alone: scripts/scale/first-touch.c faulting in 1 KiB a flow (4 KiB"
        echo "pages) right before the add, and giving it back: what the memory alone costs on this machine at"
        echo "that moment (cold: about 0.3 GB/s; warm: about 3 GB/s). The add then finds those pages in the"
        echo "kernel's free lists, before the host takes them back, as a machine without a lazy host gives them."
        [ -n "${DATAPLANE_LINE:-}" ] && echo "Data plane alone (1M masked rules into the BPF maps): $DATAPLANE_LINE."
    fi
    if [ -n "${NEIGH_LINE:-}" ]; then
        echo
        echo "## Tunnel tracker"
        echo
        echo "| tunnel tracker | end to end | daemon |"
        echo "|---|---|---|"
        echo "$NEIGH_LINE"
    fi
}

# bench_plot FILE.png: TCP, UDP and switch CPU per row (matplotlib, scripts/bench_plot.py)
bench_plot() {
    local n
    for n in "${NAMES[@]}"; do
        echo "$n ${R[$n,tcp]:-0} ${R[$n,udp]:-0} ${R[$n,tcpcpu]:-n/a} ${R[$n,udpcpu]:-n/a}"
    done > "$D/plot.txt"
    "$PY" "$ROOT/scripts/bench_plot.py" "$D/plot.txt" "$1" \
        "$(uname -r), $(nproc) CPUs, $(date -u +%Y-%m-%d)$([ $QUICK = 1 ] && echo ', --quick')"
}
