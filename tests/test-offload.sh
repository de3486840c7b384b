#!/usr/bin/env bash
# VF <-> VF through hardware rules installed from datapath flows: traffic works, the
# rules' counters move, the representors see none of it; the same flows under skip_hw
# stay in software and the representors carry the traffic.
. "$(dirname "$0")/lib.sh"

t_topology 2 --mode switchdev

dpctl add-if pf0vf0
dpctl add-if pf0vf1
topo_vf_flows "$T_DIR/flows"
out=$(dpctl add-flow -v 'in_port(1),eth(),eth_type(0x86dd),ipv6(frag=no)' 'drop')
check_eq "add-flow -v reports offload" "offloaded" "$out"
check "batch of VF<->VF flows" dpctl add-flows "$T_DIR/flows"
check_eq "show counts offloaded flows" 5 "$(dpctl show | awk '/offloaded flows:/{print $3}')"
check_eq "dump-flows -m: every flow offloaded:yes, dp:esw" 5 "$(dpctl dump-flows -m | grep -c 'offloaded:yes, dp:esw')"
check_eq "dump-flows type=offloaded" 5 "$(dpctl dump-flows type=offloaded | wc -l)"
check_eq "dump-flows type=non-offloaded" 0 "$(dpctl dump-flows type=non-offloaded | wc -l)"

rx_before=$(port_stat pf0vf1 tx_packets)
t_pcap host pf0vf0 "icmp or tcp or arp"
R0=$PCAP
check "ping VF0 -> VF1 in hardware" t_ping vm0 198.19.0.2 10
mbps=$(t_iperf vm0 vm1 198.19.0.2 2)
check_ge "iperf3 VF0 -> VF1 in hardware (Mbit/s)" 500 "$mbps"
PCAP=$R0
check_eq "pf0vf0 saw none of it" 0 "$(t_pcap_count 'icmp or tcp or arp')"
sleep 1.2
pk=$(dpctl dump-flows | grep 'in_port(1),eth(),eth_type(0x0800)' | grep -o 'packets:[0-9]*' | cut -d: -f2)
check_ge "hardware counters merged into dump-flows" 1000 "$pk"
check_ge "VF1 port counters moved" $((rx_before + 1000)) "$(port_stat pf0vf1 tx_packets)"
check_match "used time from hardware" 'used:[0-9]+\.[0-9]{3}s' "$(dpctl dump-flows | grep 'in_port(1),eth(),eth_type(0x0800)')"
# mod-flow --clear zeroes an offloaded flow's statistics: the hardware counters are
# baselined where they stand, now and after the next counter poll.
v4flow() { dpctl dump-flows | grep 'in_port(1),eth(),eth_type(0x0800)'; }
check "mod-flow --clear on an offloaded flow" dpctl mod-flow --clear 'in_port(1),eth(),eth_type(0x0800),ipv4(frag=no)' 2
check_match "cleared at once: packets:0, never used" 'packets:0, bytes:0, used:never' "$(v4flow)"
sleep 1.2
check_match "still cleared after a hardware counter poll" 'packets:0, bytes:0, used:never' "$(v4flow)"
check "traffic after the clear" t_ping vm0 198.19.0.2 3
sleep 1.2
check_match "then counts only the new packets" 'packets:3, bytes:294, ' "$(v4flow)"
# A modification keeps the rule's counter: what it counted is in the flow once.
dpctl mod-flow 'in_port(1),eth(),eth_type(0x0800),ipv4(frag=no)' 2
dpctl mod-flow 'in_port(1),eth(),eth_type(0x0800),ipv4(frag=no)' 'set(ipv4(ttl=64)),2'
sleep 1.2
check_match "two mod-flows later, still the same count" 'packets:3, bytes:294, ' "$(v4flow)"

# Deleting a flow removes its rule: the traffic falls back to the representor.
dpctl del-flow 'in_port(1),eth(),eth_type(0x0800),ipv4(frag=no)'
check_eq "rule gone with the flow" 0 "$(dpctl dump-flows -m | grep -c 'in_port(pf0vf0).*eth_type(0x0800)')"
t_pcap host pf0vf0 icmp
t_in vm0 ping -c 2 -i 0.2 -W 1 198.19.0.2 >/dev/null 2>&1
check_ge "after del-flow, VF0's packets reach pf0vf0" 1 "$(t_pcap_count icmp)"
dpctl add-flow 'in_port(1),eth(),eth_type(0x0800),ipv4(frag=no)' 2
check "traffic back in hardware" t_ping vm0 198.19.0.2 3
check "mod-flow changes actions in hardware" dpctl mod-flow 'in_port(1),eth(),eth_type(0x0800),ipv4(frag=no)' drop
check_fails "modified flow drops in hardware" t_in vm0 ping -c 2 -i 0.2 -W 1 198.19.0.2
dpctl mod-flow 'in_port(1),eth(),eth_type(0x0800),ipv4(frag=no)' 2
check "modified back" t_ping vm0 198.19.0.2 3

# The namespace a VF is in goes away: the veth pair would die with it, a real VF goes
# back to the host's namespace. esw makes it again in the daemon's namespace, with the
# port's MAC; moved into a new namespace it works, its flows still in hardware.
replies() { dpctl dump-flows | grep 'in_port(2),eth(),eth_type(0x0800)' | grep -o 'packets:[0-9]*' | cut -d: -f2; }
sleep 1.2
replies0=$(replies)
ip netns del "${T_PREFIX}vm1"
t_wait "esw0v1 back" 5 ip -n "${T_PREFIX}host" link show esw0v1
check_match "VF1's netdev is back in the daemon's namespace" 'esw0v1@' "$(ip -n "${T_PREFIX}host" -o link show esw0v1 2>&1)"
t_ns vm1
ip -n "${T_PREFIX}host" link set esw0v1 netns "${T_PREFIX}vm1"
ip -n "${T_PREFIX}vm1" addr add 198.19.0.2/24 dev esw0v1
ip -n "${T_PREFIX}vm1" link set esw0v1 up
check "ping VF0 -> VF1 in its new namespace" t_ping vm0 198.19.0.2 3
check_eq "the flows stayed in hardware" 5 "$(dpctl dump-flows -m | grep -c 'offloaded:yes')"
sleep 1.2
check_ge "the replies from the new VF1 went through the hardware rule" $((replies0 + 3)) "$(replies)"

# skip_hw: software datapath; representors carry the traffic.
dpctl del-flows
check_eq "flush removes every rule" 0 "$(devlink resource show -j | /usr/bin/python3 -c 'import json,sys; print([r for r in json.load(sys.stdin)["resources"]["esw0"] if r["name"]=="masked"][0]["occ"])')"
dpctl set-policy skip_hw
check "flows under skip_hw" dpctl add-flows "$T_DIR/flows"
check_eq "dump-flows -m: dp:ovs" 4 "$(dpctl dump-flows -m | grep -c 'dp:ovs')"
check_match "reason shown" 'not offloaded: offload policy is skip_hw' "$(dpctl dump-flows -m)"
t_pcap host pf0vf0 "icmp or tcp"
R0=$PCAP
check "ping through the software path" t_ping vm0 198.19.0.2 5
mbps=$(t_iperf vm0 vm1 198.19.0.2 2)
check_ge "iperf3 through the software path (Mbit/s)" 50 "$mbps"
PCAP=$R0
check_ge "pf0vf0 carries the software path" 10 "$(t_pcap_count 'icmp or tcp')"
