#!/usr/bin/env bash
# esw-dpctl trace: its verdict agrees with what the packet really does when sent (an
# offloaded flow: hardware hit and the VF it reaches; a flow the hardware cannot take:
# hardware miss, the megaflow in software, and its output), it changes no counter, and
# its errors are netlink errors.
. "$(dirname "$0")/lib.sh"

t_topology 2 --mode switchdev
t_vxlan_remote
# No IPv6 chatter (router solicitations, MLD): the counter checks below compare exactly.
t_ipv6_off vm0 vm1 host

dpctl add-if pf0vf0
dpctl add-if pf0vf1
# VF0 -> VF1 offloaded; VF1 -> VF0 IPv4 needs set(skb_mark), which the hardware cannot do.
cat >"$T_DIR/flows" <<'FLOWS'
in_port(1),eth(),eth_type(0x0800),ipv4(frag=no) 2
in_port(1),eth(),eth_type(0x0806),arp() 2
in_port(2),eth(),eth_type(0x0800),ipv4(frag=no) set(skb_mark(0x1)),1
in_port(2),eth(),eth_type(0x0806),arp() 1
FLOWS
# The reply's flow (set(skb_mark)) stays in software to trace a miss: no partial rule.
dpctl set-partial-offload off
check "flows" dpctl add-flows "$T_DIR/flows"
check_eq "three in hardware, one not" 3 "$(dpctl dump-flows type=offloaded | wc -l)"
check "ping VF0 -> VF1 (ARP resolved)" t_ping vm0 198.19.0.2 2

mac0=$(t_in vm0 cat /sys/class/net/esw0v0/address)
mac1=$(t_in vm1 cat /sys/class/net/esw0v1/address)
request="eth(src=$mac0,dst=$mac1),eth_type(0x0800),ipv4(src=198.19.0.1,dst=198.19.0.2,proto=1,ttl=64),icmp(type=8,code=0)"
reply="eth(src=$mac1,dst=$mac0),eth_type(0x0800),ipv4(src=198.19.0.2,dst=198.19.0.1,proto=1,ttl=64),icmp(type=0,code=0)"
# Static neighbours: no ARP refresh moves a counter while the traces are compared.
t_in vm0 ip neigh replace 198.19.0.2 lladdr "$mac1" nud permanent dev esw0v0
t_in vm1 ip neigh replace 198.19.0.1 lladdr "$mac0" nud permanent dev esw0v1
field() { python3 -c 'import json,sys; j=json.load(sys.stdin); exec("print(j" + sys.argv[1] + ")")' "$1"; }

# Hardware hit: the echo request from VF0.
dpctl trace -j pf0vf0 "$request" >"$T_DIR/request.json"
check_eq "request: hardware hit" hit "$(field '["hardware"]["result"]' <"$T_DIR/request.json")"
check_eq "request: the masked table" masked "$(field '["hardware"]["lookups"][-1]["table"]' <"$T_DIR/request.json")"
check_eq "request: rule action" "forward(pf0vf1)" "$(field '["hardware"]["lookups"][-1]["actions"]' <"$T_DIR/request.json")"
check_eq "request: one output, in hardware, to pf0vf1" "hardware pf0vf1" \
    "$(field '["outputs"][0]["path"], j["outputs"][0]["port"]' <"$T_DIR/request.json" | tr -d "(),'")"
check_match "request: reaches VF netdev esw0v1" 'VF netdev esw0v1' "$(field '["verdict"]' <"$T_DIR/request.json")"
check_eq "request: no software stage" False "$(field '.get("software") is not None' <"$T_DIR/request.json")"
check_match "request: the output frame decoded" 'ipv4\(src=198.19.0.1,dst=198.19.0.2,proto=1' "$(field '["outputs"][0]["key"]' <"$T_DIR/request.json")"

# Software: the echo reply from VF1 misses the hardware, says why, and the megaflow outputs it.
dpctl trace pf0vf1 "$reply" -j >"$T_DIR/reply.json"
check_eq "reply: hardware miss" miss "$(field '["hardware"]["result"]' <"$T_DIR/reply.json")"
check_match "reply: miss reason names the unoffloaded flow" 'not offloaded: unsupported action' "$(field '["hardware"]["reason"]' <"$T_DIR/reply.json")"
check_eq "reply: up representor pf0vf1" pf0vf1 "$(field '["to_representor"]' <"$T_DIR/reply.json")"
check_eq "reply: megaflow hit" hit "$(field '["software"]["result"]' <"$T_DIR/reply.json")"
check_match "reply: its actions" 'set\(skb_mark\(0x1\)\),pf0vf0' "$(field '["software"]["actions"]' <"$T_DIR/reply.json")"
check_eq "reply: output in software to pf0vf0" "software pf0vf0" \
    "$(field '["outputs"][0]["path"], j["outputs"][0]["port"]' <"$T_DIR/reply.json" | tr -d "(),'")"
check_match "reply: reaches VF netdev esw0v0" 'representor pf0vf0 .* VF netdev esw0v0' "$(field '["verdict"]' <"$T_DIR/reply.json")"

# Both option orders, and the text form.
# (Ages aside: "used" moves between the two.)
check_eq "-j before and after the command" "$(dpctl -j trace pf0vf0 "$request" | grep -v '"used"')" \
    "$(dpctl trace pf0vf0 "$request" -j | grep -v '"used"')"
text=$(dpctl trace pf0vf0 "$request")
check_match "text: hardware result" '^  result: hit' "$text"
check_match "text: verdict" '^verdict: hardware: VF netdev esw0v1' "$text"
# The same frame as hex gives the same verdict.
hex=$(field '["packet"]["hex"]' <"$T_DIR/request.json")
check_eq "hex packet: same verdict" "$(field '["verdict"]' <"$T_DIR/request.json")" \
    "$(dpctl trace -j pf0vf0 --hex "$hex" | field '["verdict"]')"
check_eq "bare hex packet: same verdict" "$(field '["verdict"]' <"$T_DIR/request.json")" \
    "$(dpctl trace -j pf0vf0 "$hex" | field '["verdict"]')"

# A trace changes no counter: flows (hardware counters are polled every second) and ports.
sleep 1.2
flows_before=$(dpctl dump-flows | sed 's/used:[^,]*,//')
# The VFs' ports: the uplink also carries the remote kernel's own traffic (neighbour probes).
vf_stats() { devlink port show -s -j | python3 -c 'import json,sys; p=json.load(sys.stdin)["port"]; print(p["esw0/1"]["stats"], p["esw0/2"]["stats"])'; }
ports_before=$(vf_stats)
lookups_before=$(dpctl show | grep lookups:)
for _ in 1 2 3; do dpctl trace pf0vf0 "$request" >/dev/null; dpctl trace pf0vf1 "$reply" >/dev/null; done
ports_after=$(vf_stats)
sleep 1.2
check_eq "flow counters unchanged by traces" "$flows_before" "$(dpctl dump-flows | sed 's/used:[^,]*,//')"
check_eq "VF port counters unchanged by traces" "$ports_before" "$ports_after"
check_eq "datapath lookups unchanged (no hit, no miss)" "$lookups_before" "$(dpctl show | grep lookups:)"

# What the packets really do: requests in hardware straight to VF1 (VF0's port sends
# nothing to its representor), replies up pf0vf1 to the software flow (counted there).
soft_before=$(dpctl dump-flows | grep 'in_port(2),eth(),eth_type(0x0800)' | grep -o 'packets:[0-9]*' | cut -d: -f2)
up0_before=$(port_stat pf0vf0 to_representor)
up1_before=$(port_stat pf0vf1 to_representor)
t_pcap vm1 esw0v1 icmp
check "ping VF0 -> VF1" t_ping vm0 198.19.0.2 5
# tcpdump hands frames over when its ring's block retires: wait for them.
t_pcap_wait 'icmp[icmptype] == icmp-echo' 5 3
check_eq "VF1 received the requests (tcpdump in vm1)" 5 "$(t_pcap_count 'icmp[icmptype] == icmp-echo')"
check_eq "requests stayed in hardware, as traced (none to pf0vf0)" "$up0_before" "$(port_stat pf0vf0 to_representor)"
check_eq "replies went up pf0vf1, as traced" $((up1_before + 5)) "$(port_stat pf0vf1 to_representor)"
sleep 1.2
check_match "the hardware rule counted the requests" 'in_port\(1\),eth\(\),eth_type\(0x0800\),ipv4\(frag=no\), packets:([5-9]|[1-9][0-9]+),' "$(dpctl dump-flows)"
soft_after=$(dpctl dump-flows | grep 'in_port(2),eth(),eth_type(0x0800)' | grep -o 'packets:[0-9]*' | cut -d: -f2)
check_eq "the software flow counted the replies" $((soft_before + 5)) "$soft_after"

# No flow at all: hardware miss, software miss, dropped under --miss drop; and sending it
# shows the datapath's miss counter move.
v6="eth(src=$mac0,dst=$mac1),eth_type(0x86dd),ipv6(src=2001:db8::1,dst=2001:db8::2,proto=17),udp(src=1,dst=9)"
out=$(dpctl trace -j pf0vf0 "$v6")
check_eq "no flow: software miss" miss "$(field '["software"]["result"]' <<<"$out")"
check_match "no flow: dropped (miss mode drop)" 'software: miss, dropped' "$(field '["verdict"]' <<<"$out")"
dpctl set-miss normal
out=$(dpctl trace -j pf0vf0 "$v6")
check_match "miss mode normal: the MAC-learning switch floods (nothing learned)" 'normal handler floods to pf0vf1' "$(field '["verdict"]' <<<"$out")"
check_eq "miss mode normal: the flood's output" pf0vf1 "$(field '["outputs"][0]["port"]' <<<"$out")"
check_eq "miss mode normal: the trace installed no flow" 4 "$(dpctl dump-flows | wc -l)"
dpctl set-miss drop
# IN_PORT by number, and a description whose in_port disagrees with it.
check_eq "IN_PORT as a number" "$(field '["verdict"]' <"$T_DIR/request.json")" "$(dpctl trace -j 1 "$request" | field '["verdict"]')"
check_match "in_port(2) is not IN_PORT 1: EINVAL" 'is not pf0vf0' "$(dpctl trace 1 "in_port(2),$request" 2>&1)"

# VXLAN: VF0 <-> the remote VTEP's overlay, encap and decap in hardware. A packet on the
# vxlan port is traced from the wire, as the remote VTEP sends it.
dpctl del-flows
dpctl add-if vxlan_sys_4789,type=vxlan
topo_vxlan_flows "$T_DIR/vxflows" 1 3   # VF0 = 1, vxlan_sys_4789 = 3
check "vxlan flows" dpctl add-flows "$T_DIR/vxflows"
t_in vm0 ping -c 1 -W 1 198.19.0.3 >/dev/null 2>&1   # the tracker resolves the remote's neighbour
check "vxlan flows offloaded" t_wait "4 offloaded" 10 bash -c '[ "$(dpctl dump-flows type=offloaded | wc -l)" -eq 4 ]'
remote_mac=$(t_in remote cat /sys/class/net/vx42/address)
encap=$(dpctl trace -j pf0vf0 "eth(src=$mac0,dst=$remote_mac),eth_type(0x0800),ipv4(src=198.19.0.1,dst=198.19.0.3,proto=1),icmp(type=8,code=0)")
check_match "encap: hardware hit, encap then forward to the uplink" 'tunnel_encap\(vxlan vni 42 dst 198.18.0.2:4789, entry [0-9]+\),forward\(p0\)' \
    "$(field '["hardware"]["lookups"][-1]["actions"]' <<<"$encap")"
check_match "encap: the frame on the wire carries VNI 42" 'tunnel\(tun_id=0x2a,src=198.18.0.1,dst=198.18.0.2,.*icmp\(type=8' \
    "$(field '["outputs"][0]["key"]' <<<"$encap")"
# A frame the encap would make bigger than the uplink's MTU takes the software path.
big=$(field '["packet"]["hex"]' <<<"$encap")$(printf '0%.0s' $(seq 1 2860))
bigtrace=$(dpctl trace -j pf0vf0 --hex "$big")
check_eq "too big to encapsulate: the hardware sends it to the representor" "hit but too big to encapsulate pf0vf0" \
    "$(field '["hardware"]["result"], j["to_representor"]' <<<"$bigtrace" | tr -d "(),'")"
check_match "too big: the software flow sends it to the vxlan port" 'software: VXLAN vni 42' "$(field '["verdict"]' <<<"$bigtrace")"
decap=$(dpctl trace -j vxlan_sys_4789 "tunnel(tun_id=0x2a,src=198.18.0.2,dst=198.18.0.1,ttl=64,flags(key)),eth(src=$remote_mac,dst=$mac0),eth_type(0x0800),ipv4(src=198.19.0.3,dst=198.19.0.1,proto=1),icmp(type=0,code=0)")
check_eq "decap: parsed as VXLAN on the uplink and hit" "vxlan hit" \
    "$(field '["hardware"]["lookups"][0]["parser"], j["hardware"]["lookups"][0]["result"]' <<<"$decap" | tr -d "(),'")"
check_eq "decap: to VF netdev esw0v0" "hardware: VF netdev esw0v0" "$(field '["verdict"]' <<<"$decap")"
# The same frame on the wire addressed to another host's MAC: the parser does not take
# it as VXLAN (as the pipeline does not), the host's stack drops it.
wire=$(field '["wire"]["hex"]' <<<"$decap")
other=$(dpctl trace -j p0 --hex "020000009999${wire:12}")
check_eq "decap to another host's MAC: no VXLAN parse, a miss" "ethernet miss" \
    "$(field '["hardware"]["lookups"][0]["parser"], j["hardware"]["lookups"][0]["result"]' <<<"$other" | tr -d "(),'")"
sleep 1.2
vx_before=$(dpctl dump-flows | grep -o 'packets:[0-9]*' | awk -F: '{s += $2} END {print s + 0}')
check "ping VF0 -> the remote's overlay" t_ping vm0 198.19.0.3 5
sleep 1.2
check_ge "encap and decap rules counted the ping, as traced" $((vx_before + 10)) \
    "$(dpctl dump-flows type=offloaded | grep -o 'packets:[0-9]*' | awk -F: '{s += $2} END {print s + 0}')"

# An IPv6 tunnel destination: the software vxlan vport sends over IPv4 only (and the
# hardware takes no IPv6 encap); the trace says that, not that set(tunnel) is missing.
v6flow='in_port(2),eth(),eth_type(0x0800),ipv4(frag=no)'
check "a flow with an IPv6 tunnel destination" \
    dpctl add-flow "$v6flow" 'set(tunnel(tun_id=0x2a,ipv6_dst=fd00:18::2,ttl=64,tp_dst=4789,flags(df|key))),3'
v6=$(dpctl trace pf0vf1 "eth(src=$mac1,dst=$mac0),eth_type(0x0800),ipv4(src=198.19.0.2,dst=198.19.0.3,proto=1),icmp(type=8,code=0)")
check_match "trace: the tunnel's IPv6 destination is shown" 'set tunnel: vni 42 to fd00:18::2' "$v6"
check_match "trace: dropped for its IPv6 destination, not for a missing set(tunnel)" 'IPv6 tunnel destination' "$v6"
dpctl del-flow "$v6flow"

# Two rules of two masks match the reply: the silicon takes the one whose mask it tries
# first, in the order it ranks its masks by hits (a second's hits), and so does the trace.
# The destination mask made busier by requests VF1 does not answer: the replies then
# hit the forwarding rule, not the drop.
dpctl del-flows
cat >"$T_DIR/overlap" <<FLOWS
in_port(1),eth(),eth_type(0x0806),arp() 2
in_port(2),eth(),eth_type(0x0806),arp() 1
in_port(2),eth(),eth_type(0x0800),ipv4(src=198.19.0.2,frag=no) drop
in_port(2),eth(),eth_type(0x0800),ipv4(dst=198.19.0.1,frag=no) 1
in_port(1),eth(),eth_type(0x0800),ipv4(dst=198.19.0.2,frag=no) 2
FLOWS
check "overlapping flows" dpctl add-flows "$T_DIR/overlap"
check "all offloaded" t_wait "5 offloaded" 10 bash -c '[ "$(dpctl dump-flows type=offloaded | wc -l)" -eq 5 ]'
t_in vm1 sysctl -qw net.ipv4.icmp_echo_ignore_all=1
t_in vm0 ping -c 300 -i 0.005 -W 1 -q 198.19.0.2 >/dev/null 2>&1
t_in vm1 sysctl -qw net.ipv4.icmp_echo_ignore_all=0
forwarded() { [ "$(dpctl trace -j pf0vf1 "$reply" | field '["hardware"]["lookups"][-1]["actions"]')" = "forward(pf0vf0)" ]; }
check "trace: the reply hits the forwarding rule once its mask ranks first" t_wait "the ranking" 5 forwarded
check_match "... and says the drop rule matches too, under a mask tried later" 'masks the silicon tries later' \
    "$(dpctl trace -j pf0vf1 "$reply" | field '["hardware"]["lookups"][-1]["also_matching"]')"
check "... as the replies really do: ping VF0 -> VF1 answered" t_ping vm0 198.19.0.2 3
dpctl del-flows

# Errors are netlink errors with a message.
check_fails "unknown port fails" dpctl trace nosuchport "$request"
check_match "unknown port: ENODEV's message" 'no port nosuchport' "$(dpctl trace nosuchport "$request" 2>&1)"
check_fails "a runt packet fails" dpctl trace pf0vf0 --hex 02000000
check_match "runt packet: EINVAL's message" 'shorter than an Ethernet header' "$(dpctl trace pf0vf0 --hex 02000000 2>&1)"
check_fails "a packet without eth_type fails" dpctl trace pf0vf0 "eth(src=$mac0,dst=$mac1)"
check_match "an empty packet is refused as empty" 'the packet is empty' "$(dpctl trace pf0vf0 '' 2>&1)"
check "the daemon is still there" dpctl show
