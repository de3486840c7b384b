#!/usr/bin/env bash
# legacy mode: an SR-IOV NIC's MAC/VLAN switch. VFs and a host behind the uplink reach
# each other; a VST VF's frames carry its VLAN on the wire and arrive untagged.
. "$(dirname "$0")/lib.sh"

t_topology 2 --mode legacy
ip -n "${T_PREFIX}remote" addr add 198.19.0.10/24 dev wire0

check_eq "no representors in legacy mode" 0 "$(ip -n "${T_PREFIX}host" -o link show | grep -cE 'pf0vf|: p0')"
check_match "devlink eswitch mode" 'mode legacy' "$(devlink dev eswitch show esw0)"
check "VF0 -> VF1" t_ping vm0 198.19.0.2 3
check "VF0 -> uplink host" t_ping vm0 198.19.0.10 3
check "uplink host -> VF1" t_ping remote 198.19.0.2 3
check_match "MAC table lives in exact-match memory" 'name mac size [0-9]+ occ [1-9]' "$(devlink resource show)"

# VST: VF1 in VLAN 100. The wire sees tag 100; VF1 sees untagged frames; untagged
# frames from the wire do not reach it. (The remote speaks VLAN through scapy: no 8021q
# module is needed.)
check "port function set vlan" devlink port function set esw0/2 vlan 100
vf1mac=$(ip -n "${T_PREFIX}vm1" link show esw0v1 | awk '/ether/{print $2}')
t_pcap remote wire0 "vlan 100 and arp"
t_in vm1 ping -c 2 -i 0.2 -W 1 198.19.0.20 >/dev/null 2>&1
check_ge "VF1's frames leave on the wire with VLAN 100" 1 "$(t_pcap_count 'vlan 100 and arp')"
t_pcap vm1 esw0v1 "udp"
t_in remote /usr/bin/python3 -c '
import sys
from scapy.all import Ether, Dot1Q, IP, UDP, sendp
m = sys.argv[1]
sendp(Ether(dst=m)/Dot1Q(vlan=100)/IP(src="198.19.0.20", dst="198.19.0.2")/UDP(sport=9997, dport=9997), iface="wire0", verbose=False)
sendp(Ether(dst=m)/IP(src="198.19.0.20", dst="198.19.0.2")/UDP(sport=9996, dport=9996), iface="wire0", verbose=False)
sendp(Ether(dst=m)/Dot1Q(vlan=200)/IP(src="198.19.0.20", dst="198.19.0.2")/UDP(sport=9995, dport=9995), iface="wire0", verbose=False)
' "$vf1mac" 2>/dev/null
t_pcap_wait 'udp port 9997' 1 3
sleep 0.3
C=$PCAP
check_eq "a VLAN 100 frame from the wire reaches VF1 untagged" 1 "$(t_pcap_count 'udp port 9997 and not vlan')"
PCAP=$C; check_eq "an untagged frame from the wire does not reach VF1" 0 "$(t_pcap_count 'udp port 9996')"
PCAP=$C; check_eq "a VLAN 200 frame does not reach VF1" 0 "$(t_pcap_count 'udp port 9995')"
check_fails "VLAN 100 is isolated from VF0 (untagged)" t_in vm1 ping -c 2 -i 0.2 -W 1 198.19.0.1
check_match "port show lists the VLAN" 'vlan 100' "$(devlink port show esw0/2)"
check "clear the VLAN" devlink port function set esw0/2 vlan 0
check "VF1 -> VF0 again" t_ping vm1 198.19.0.1 3
check "set a VF MAC" devlink port function set esw0/1 hw_addr 02:00:00:00:01:01
check_match "VF netdev took the MAC" '02:00:00:00:01:01' "$(ip -n "${T_PREFIX}vm0" link show esw0v0)"
t_in vm0 ip neigh flush all; t_in vm1 ip neigh flush all
check "traffic with the new MAC" t_ping vm1 198.19.0.1 3

# A MAC another VF has on the same VLAN is refused, as mlx5's legacy L2 table refuses it
# (EEXIST, naming the port that has it); nothing changes, and nothing is logged again and again.
check_fails "hw_addr of VF1 on VF0 is refused" devlink port function set esw0/1 hw_addr "$vf1mac"
check_match "... naming the port that has it" 'already in use by port 2' \
    "$(devlink port function set esw0/1 hw_addr "$vf1mac" 2>&1)"
check_match "VF0 keeps its MAC in port show" 'hw_addr 02:00:00:00:01:01' "$(devlink port show esw0/1)"
check_match "... and on its netdev" '02:00:00:00:01:01' "$(ip -n "${T_PREFIX}vm0" link show esw0v0)"
check_match "the MAC table holds both VFs" 'name mac size [0-9]+ occ 2' "$(devlink resource show)"
check "VF1 -> VF0 still" t_ping vm1 198.19.0.1 2
# A request is checked whole before any of it applies: VF1's MAC is free on VF0's VLAN
# but not on the VLAN asked with it, and the refusal leaves VF0's MAC as it was (the MAC
# used to change before the VLAN was refused).
check "VF1 in VLAN 100" devlink port function set esw0/2 vlan 100
check_fails "VF0: VF1's MAC with VF1's VLAN is refused" devlink port function set esw0/1 hw_addr "$vf1mac" vlan 100
check_match "... and VF0's MAC did not change" 'hw_addr 02:00:00:00:01:01' "$(devlink port show esw0/1)"
check_match "... nor its netdev's" '02:00:00:00:01:01' "$(ip -n "${T_PREFIX}vm0" link show esw0v0)"
check "VF1 back out of VLAN 100" devlink port function set esw0/2 vlan 0
# VF1's own driver takes VF0's address: VF1 loses its entry (its old MAC is no longer
# its own), and the refusal is logged once, not at every refresh.
t_in vm1 ip link set esw0v1 address 02:00:00:00:01:01
sleep 1.5
check_match "VF1's entry is out of the table" 'name mac size [0-9]+ occ 1' "$(devlink resource show)"
check_eq "the refusal is logged once" 1 "$(grep -c 'already in use by port 1' "$T_DIR/eswd.log")"
check_eq "no 'no room' for a duplicate" 0 "$(grep -c 'no room' "$T_DIR/eswd.log")"
t_in vm1 ip link set esw0v1 address "$vf1mac"
t_wait "VF1's entry back" 3 sh -c "'$ESW_BIN/esw-devlink' resource show | grep -Eq 'name mac size [0-9]+ occ 2'"
check_match "VF1's entry is back" 'name mac size [0-9]+ occ 2' "$(devlink resource show)"
t_in vm0 ip neigh flush all; t_in vm1 ip neigh flush all
check "VF1 -> VF0 again" t_ping vm1 198.19.0.1 2

# VST is 802.1Q: an 802.1ad (S-tag) frame with VID 100 is not VLAN 100's.
check "VF1 back in VLAN 100" devlink port function set esw0/2 vlan 100
t_pcap vm1 esw0v1 "udp"
t_in remote /usr/bin/python3 -c '
import sys
from scapy.all import Ether, Dot1Q, Dot1AD, IP, UDP, sendp
m = sys.argv[1]
sendp(Ether(dst=m)/Dot1AD(vlan=100)/IP(src="198.19.0.20", dst="198.19.0.2")/UDP(sport=9990, dport=9990), iface="wire0", verbose=False)
sendp(Ether(dst=m)/Dot1Q(vlan=100)/IP(src="198.19.0.20", dst="198.19.0.2")/UDP(sport=9991, dport=9991), iface="wire0", verbose=False)
' "$vf1mac" 2>/dev/null
t_pcap_wait 'udp port 9991' 1 3
sleep 0.3
C=$PCAP
check_eq "an 802.1Q VLAN 100 frame reaches VF1" 1 "$(t_pcap_count 'udp port 9991')"
PCAP=$C; check_eq "an 802.1ad VID 100 frame does not" 0 "$(t_pcap_count 'udp port 9990')"
check_ge "... it is counted as dropped on the uplink" 1 "$(port_stat up0 rx_dropped 2>/dev/null || echo 0)"
check "clear the VLAN" devlink port function set esw0/2 vlan 0
