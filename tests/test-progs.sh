#!/usr/bin/env bash
# Programs offloaded to the NIC (`esw-devlink port prog set`): the pass, drop, tx and
# redirect verdicts with real traffic and their counters; detaching restores plain
# forwarding; what the verifier refuses is refused with its message; a SIGKILL and a
# restart leave no program attached (and none loaded).
. "$(dirname "$0")/lib.sh"

t_topology 2 --mode switchdev
# The counts below are exact: the VMs send only the test's own traffic (with IPv6 on, a
# VF's router solicitations are runs of the port's program).
t_ipv6_off vm0 vm1
check "example programs compile" "$T_ROOT/scripts/build-example-progs.sh" "$T_DIR/progs" -DREDIRECT_PORT=2
P=$T_DIR/progs

dpctl add-if pf0vf0
dpctl add-if pf0vf1
topo_vf_flows "$T_DIR/flows"
check "VF<->VF flows in hardware" dpctl add-flows "$T_DIR/flows"
check "ping VF0 -> VF1 with no program" t_ping vm0 198.19.0.2 2

# Counters of the program on esw0/PORT (port show -s -j), read at once: prog_stat PORT NAME...
prog_stat() {
    devlink port show -s -j "esw0/$1" | python3 -c '
import json, sys
p = json.load(sys.stdin)["port"]["esw0/" + sys.argv[1]]
print(" ".join(str(p.get("prog", {}).get("stats", {}).get(n, "none")) for n in sys.argv[2:]))' "$@"
}

check "pass program on VF0's port" devlink port prog set esw0/1 obj "$P/pass.o" sec pass
check_match "port show names the program" 'prog: offload id [1-9][0-9]* name esw_pass_all sec pass obj .*/pass.o' \
    "$(devlink port show esw0/1)"
check "pass: VF0 -> VF1 still forwarded by the tables" t_ping vm0 198.19.0.2 3
check_ge "pass counted" 3 "$(prog_stat 1 pass)"
check_eq "every run handed back a verdict" 0 "$(prog_stat 1 runs pass drop tx redirect invalid | awk '{print $1 - $2 - $3 - $4 - $5 - $6}')"

check "drop program replaces it (relative path, default section)" \
    bash -c "cd '$P' && '$ESW_BIN/esw-devlink' port prog set esw0/1 obj drop.o"
check_fails "drop: VF0's pings are lost" t_in vm0 ping -c 3 -i 0.2 -W 1 198.19.0.2
check_ge "drop counted (counters start again with the new program)" 3 "$(prog_stat 1 drop)"
check_eq "no pass counted by the drop program" 0 "$(prog_stat 1 pass)"
mac0=$(t_in vm0 cat /sys/class/net/esw0v0/address)
mac1=$(t_in vm1 cat /sys/class/net/esw0v1/address)
# Both VMs' entries for each other pinned: VF0's frames are dropped since the drop
# program, so an entry used by the pings would go stale and be probed 5 s later, and each
# frame VF0 sends (its probe, or its answer to VM1's) is a run of the drop program: one
# crossed the reads of "trace runs nothing" below, each way round. (IPv6 is off for the
# router solicitations.)
ip -n "${T_PREFIX}vm0" neigh replace 198.19.0.2 lladdr "$mac1" dev esw0v0 nud permanent
ip -n "${T_PREFIX}vm1" neigh replace 198.19.0.1 lladdr "$mac0" dev esw0v1 nud permanent
t_pcap vm0 esw0v0 icmp
t_in vm1 ping -c 2 -i 0.2 -W 1 198.19.0.1 >/dev/null 2>&1
check_ge "VF1 -> VF0 still arrives (only VF0's port has the program)" 2 "$(t_pcap_count icmp)"

# trace shows the program and that its verdict decides (it used to report the tables'
# verdict alone: "hardware: VF netdev ..." for frames the program drops).
request="eth(src=$mac0,dst=$mac1),eth_type(0x0800),ipv4(src=198.19.0.1,dst=198.19.0.2,proto=1,ttl=64),icmp(type=8,code=0)"
drop_id=$(devlink port show -j esw0/1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["port"]["esw0/1"]["prog"]["id"])')
trace=$(dpctl trace -j pf0vf0 "$request")
field() { python3 -c 'import json,sys; j=json.load(sys.stdin); exec("print(j" + sys.argv[1] + ")")' "$1"; }
check_eq "trace: the port's program by name" esw_drop_all "$(field '["hardware"]["program"]["name"]' <<<"$trace")"
check_eq "trace: ... and id" "$drop_id" "$(field '["hardware"]["program"]["id"]' <<<"$trace")"
check_match "trace: the verdict says the program decides first" \
    "^program esw_drop_all \\(id $drop_id\\) on port pf0vf0 decides first \\(not run by trace\\); if it passes: hardware: " \
    "$(field '["verdict"]' <<<"$trace")"
check_match "trace text: the program before the lookups" 'program:' "$(dpctl trace pf0vf0 "$request")"
# VF0 must send nothing between the two reads: each frame it sends is a run of the drop
# program (the neighbour entries are pinned above).
check_eq "trace runs nothing: no run counted" "$(prog_stat 1 runs)" "$(dpctl trace pf0vf0 "$request" >/dev/null; prog_stat 1 runs)"

check "prog off" devlink port prog set esw0/1 off
check_no_match "port show: no program after off" 'prog:' "$(devlink port show esw0/1)"
check_no_match "trace without a program: no program, the tables decide" 'program|decides first' "$(dpctl trace pf0vf0 "$request")"

# TCP VF0 -> VF1 through a stage that makes the frames wait (busy at nic_speed 5): the
# GSO superframes used to come back from the delay line linearised and VF1's port
# dropped them as longer than its MTU (tx_dropped), or they skipped the wait.
check "busy program on VF0's port" devlink port prog set esw0/1 obj "$P/busy.o" sec busy
check "nic_speed 5" devlink dev param set esw0 name nic_speed value 5
vf1_drop0=$(port_stat pf0vf1 tx_dropped)
mbit=$(t_iperf vm0 vm1 198.19.0.2 2)
t_log "TCP VF0 -> VF1 through a held stage: $mbit Mbit/s, held $(prog_stat 1 held), VF1 tx_dropped $vf1_drop0 -> $(port_stat pf0vf1 tx_dropped)"
check_ge "TCP VF0 -> VF1 through the delay line" 1 "$mbit"
check_ge "... its frames held, superframes too" 1000 "$(prog_stat 1 held)"
check_eq "... and none dropped at VF1's port" "$vf1_drop0" "$(port_stat pf0vf1 tx_dropped)"
check "nic_speed 100" devlink dev param set esw0 name nic_speed value 100
check "prog off again" devlink port prog set esw0/1 off
check "detach restores plain forwarding" t_ping vm0 198.19.0.2 3

# tx: the DNS-style responder answers from the NIC; VF1 never sees the query.
check "dns responder on VF0's port" devlink port prog set esw0/1 obj "$P/dns.o" sec dns
t_pcap vm1 esw0v1 "udp port 53"
answer=$(t_in vm0 python3 -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
s.connect(("198.19.0.2", 53))
s.send(b"\x12\x34\x01\x00" + bytes(8) + b"query")
d, src = s.recvfrom(512)
print(d[:4].hex(), src[1], d[12:].decode())' 2>&1)
check_eq "tx: the answer comes back from port 53 with QR and NXDOMAIN set" "12348103 53 query" "$answer"
check_eq "tx: VF1 saw no query" 0 "$(t_pcap_count 'udp port 53')"
check_ge "tx counted" 1 "$(prog_stat 1 tx)"
check "tx: other traffic passes on" t_ping vm0 198.19.0.2 2

# redirect: VF0's frames go to VF1 (port 2) without any rule.
dpctl del-flows
check "redirect program" devlink port prog set esw0/1 obj "$P/redirect.o" sec redirect
t_pcap vm1 esw0v1 "icmp or arp"
t_in vm0 ping -c 3 -i 0.2 -W 1 198.19.0.2 >/dev/null 2>&1
check_ge "redirect: VF0's frames reach VF1 with no rule" 3 "$(t_pcap_count 'icmp or arp')"
check_ge "redirect counted" 3 "$(prog_stat 1 redirect)"

# What the verifier refuses never reaches the port.
out=$(devlink port prog set esw0/1 obj "$P/unchecked.o" sec unchecked 2>&1)
check_match "verifier refusal reported with its message" 'invalid access to packet' "$out"
check_match "... as the verifier's" '^esw-devlink: verifier: ' "$out"
check_match "the previous program stays" 'name esw_redirect_all' "$(devlink port show esw0/1)"
check_match "a missing section is named" 'no section "nope"' "$(devlink port prog set esw0/1 obj "$P/drop.o" sec nope 2>&1)"
check_match "a file that is not an object is refused with libbpf's reason" 'esw-devlink: .*flows: [A-Za-z]+' "$(devlink port prog set esw0/1 obj "$T_DIR/flows" 2>&1)"
check_no_match "... not as an unknown error" 'Unknown error' "$(devlink port prog set esw0/1 obj "$T_DIR/flows" 2>&1)"
# A program of another type: refused by name (the daemon read the name after closing the
# object, and crashed).
printf '%s\n' '#include <linux/bpf.h>' '#include <bpf/bpf_helpers.h>' \
    'SEC("xdp") int x(struct xdp_md *c) { return XDP_PASS; }' 'char LICENSE[] SEC("license") = "GPL";' >"$T_DIR/xdp.c"
"$(dirname "$(readlink -f "$(command -v swift)")")/clang" -O2 -target bpf -I"/usr/include/$(uname -m)-linux-gnu" \
    -c "$T_DIR/xdp.c" -o "$T_DIR/xdp.o"
check_match "an XDP program is refused by name" 'section xdp is not a tc \(SCHED_CLS\) program' \
    "$(devlink port prog set esw0/1 obj "$T_DIR/xdp.o" 2>&1)"
check "eswd is alive after it" devlink dev show
# A FIFO would block libbpf's open until a writer came, the control thread with it.
mkfifo "$T_DIR/fifo.o"
check_match "a FIFO is refused, not opened" 'not a regular file' "$(timeout 5 "$ESW_BIN/esw-devlink" port prog set esw0/1 obj "$T_DIR/fifo.o" 2>&1)"
check "eswd still answers" timeout 5 "$ESW_BIN/esw-devlink" dev show
check_match "a directory is refused" 'not a regular file' "$(devlink port prog set esw0/1 obj "$T_DIR" 2>&1)"
check_match "the previous program still stays" 'name esw_redirect_all' "$(devlink port show esw0/1)"
# Two programs in one section: `sec tc` is ambiguous (the first used to be taken
# silently), refused naming both; a program's function name picks one.
printf '%s\n' '#include "esw_prog.h"' \
    'SEC("tc") int two_pass(struct __sk_buff *skb) { return esw_pass(skb); }' \
    'SEC("tc") int two_drop(struct __sk_buff *skb) { return esw_drop(skb); }' \
    'char LICENSE[] SEC("license") = "GPL";' >"$T_DIR/two.c"
"$(dirname "$(readlink -f "$(command -v swift)")")/clang" -O2 -g -target bpf -I"/usr/include/$(uname -m)-linux-gnu" \
    -I"$T_ROOT/bpf/examples" -c "$T_DIR/two.c" -o "$T_DIR/two.o"
check_match "two programs in section tc: refused as ambiguous, naming both" \
    'section "tc" holds 2 programs \(two_pass, two_drop\)' "$(devlink port prog set esw0/1 obj "$T_DIR/two.o" sec tc 2>&1)"
check_match "... and the previous program stays" 'name esw_redirect_all' "$(devlink port show esw0/1)"
check "a program picked by its function name" devlink port prog set esw0/1 obj "$T_DIR/two.o" sec two_drop
check_match "... is the one attached" 'name two_drop sec tc' "$(devlink port show esw0/1)"
check_fails "... and VF0's frames meet it" t_in vm0 ping -c 2 -i 0.2 -W 1 -q 198.19.0.2
check_ge "... counted as its drops" 2 "$(prog_stat 1 drop)"
check "the redirect program back" devlink port prog set esw0/1 obj "$P/redirect.o" sec redirect

# A reload that needs bigger maps loads the data plane again: the program goes along.
check "exact table grown past what the maps hold" devlink resource set esw0 path /exact size 40000
check "dev reload (new maps)" devlink dev reload esw0
check_match "the program survives the reload" 'name esw_redirect_all' "$(devlink port show esw0/1)"
t_pcap vm1 esw0v1 "icmp or arp"
t_in vm0 ping -c 3 -i 0.2 -W 1 198.19.0.2 >/dev/null 2>&1
check_ge "... and still redirects" 3 "$(t_pcap_count 'icmp or arp')"

# nic_speed: a slow NIC processor still gives the same verdicts.
check "nic_speed 10" devlink dev param set esw0 name nic_speed value 10
check_match "param shown" 'cmode runtime value 10' "$(devlink dev param show esw0 name nic_speed)"
check "drop on the uplink too" devlink port prog set esw0/0 obj "$P/drop.o"
check_match "uplink port shows its program" 'name esw_drop_all' "$(devlink port show esw0/0)"

# SIGKILL, restart: nothing of the killed daemon's programs survives.
user_ids=$(bpftool prog show -j | python3 -c '
import json, sys
print(" ".join(str(p["id"]) for p in json.load(sys.stdin) if p.get("name") in ("esw_redirect_all", "esw_drop_all")))')
check_match "the user programs are loaded" '[0-9]+ [0-9]+' "$user_ids"
kill -KILL "$ESWD_PID"
t_wait "eswd gone after SIGKILL" 10 bash -c "! kill -0 $ESWD_PID 2>/dev/null"
t_eswd host --vfs 2 --uplink "$TOPO_UP" --mode switchdev
for i in 0 1; do topo_vf_to_vm "$i" >/dev/null 2>&1; done
check_no_match "restart: no program attached" 'prog:' "$(devlink port show)"
gone() {
    local id
    for id in $user_ids; do bpftool prog show id "$id" >/dev/null 2>&1 && return 1; done
    return 0
}
check "restart: the killed daemon's user programs are unloaded" t_wait "user programs unloaded" 5 gone
dpctl add-if pf0vf0
dpctl add-if pf0vf1
dpctl add-flows "$T_DIR/flows"
check "restart: VF0 -> VF1 forwarded plainly" t_ping vm0 198.19.0.2 3
