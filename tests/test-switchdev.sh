#!/usr/bin/env bash
# switchdev with no hardware rules: every frame from a VF arrives on its representor
# and nowhere else; a frame sent on a representor leaves through the port it stands
# for; a Linux bridge of representors is a working software switch.
. "$(dirname "$0")/lib.sh"

t_topology 2 --mode switchdev
ip -n "${T_PREFIX}remote" addr add 198.19.0.10/24 dev wire0
H=host

for p in pf0vf0 pf0vf1 p0; do t_pcap $H $p arp; eval "C_$p=\$PCAP"; done
t_pcap vm1 esw0v1 arp; C_vm1=$PCAP
t_pcap remote wire0 arp; C_wire=$PCAP
t_in vm0 ping -c 2 -i 0.2 -W 1 198.19.0.2 >/dev/null 2>&1
sleep 0.3
PCAP=$C_pf0vf0; check_ge "VF0's ARP arrives on pf0vf0" 1 "$(t_pcap_count arp)"
PCAP=$C_pf0vf1; check_eq "... not on pf0vf1" 0 "$(t_pcap_count arp)"
PCAP=$C_p0; check_eq "... not on p0" 0 "$(t_pcap_count arp)"
PCAP=$C_vm1; check_eq "... not at VF1" 0 "$(t_pcap_count arp)"
PCAP=$C_wire; check_eq "... not on the wire" 0 "$(t_pcap_count arp)"

# A frame sent through a representor leaves through the port it represents.
t_pcap vm1 esw0v1 "udp port 9999"
t_in $H /usr/bin/python3 -c '
from scapy.all import Ether, IP, UDP, Raw, sendp
sendp(Ether(dst="ff:ff:ff:ff:ff:ff")/IP(src="198.19.0.99", dst="198.19.0.2")/UDP(sport=9999, dport=9999)/Raw(b"esw-rep-test"),
      iface="pf0vf1", verbose=False)'
t_pcap_wait 'udp port 9999' 1 3
check_eq "frame sent on pf0vf1 reaches VF1" 1 "$(t_pcap_count 'udp port 9999')"
t_pcap remote wire0 "udp port 9998"
t_in $H /usr/bin/python3 -c '
from scapy.all import Ether, IP, UDP, Raw, sendp
sendp(Ether(dst="ff:ff:ff:ff:ff:ff")/IP(src="198.19.0.99", dst="198.19.0.10")/UDP(sport=9998, dport=9998)/Raw(b"esw-rep-test"),
      iface="p0", verbose=False)'
t_pcap_wait 'udp port 9998' 1 3
check_eq "frame sent on p0 reaches the wire" 1 "$(t_pcap_count 'udp port 9998')"

# Representors in a Linux bridge: the software path switches between VFs and the uplink.
ip -n "${T_PREFIX}$H" link add br0 type bridge
for p in pf0vf0 pf0vf1 p0; do ip -n "${T_PREFIX}$H" link set $p master br0; done
ip -n "${T_PREFIX}$H" link set br0 up
# The first ping above left VF0's neighbour entry for VF1 FAILED; a kernel may wait before
# it solicits again, which would fail the ping for a reason that is not the switch's.
t_in vm0 ip neigh flush dev esw0v0
check "VF0 -> VF1 through the bridge of representors" t_ping vm0 198.19.0.2 3
check "VF0 -> uplink host through the bridge" t_ping vm0 198.19.0.10 3
check "uplink host -> VF1 through the bridge" t_ping remote 198.19.0.2 3
check_ge "representor counters count the software path" 3 "$(port_stat pf0vf0 to_representor)"
check_match "representor alias names switch and port" 'esw0 switch_id [0-9a-f]+ port 1 phys_port_name pf0vf0' "$(ip -n "${T_PREFIX}$H" link show pf0vf0)"
check_match "altname esw0-pf0vf0" 'altname esw0-pf0vf0' "$(ip -n "${T_PREFIX}$H" link show pf0vf0)"
check_match "devlink port show" 'esw0/1: type eth netdev pf0vf0 flavour pcivf pfnum 0 vfnum 0' "$(devlink port show)"
check_match "devlink port show (uplink)" 'esw0/0: type eth netdev p0 flavour physical port 0' "$(devlink port show)"

# Port function state inactive: the function's link is down, as on mlx5. The VF netdev
# loses carrier, nothing of it enters the switch or reaches it, and trace says why;
# state active gives all of it back. (The bridge above still switches VF0 <-> VF1.)
check "port function set state inactive" devlink port function set esw0/1 state inactive
check_match "port show says inactive" 'state inactive' "$(devlink port show esw0/1)"
check_eq "VF0 has no carrier" 0 "$(t_in vm0 cat /sys/class/net/esw0v0/carrier)"
check_match "VF0 is NO-CARRIER" 'NO-CARRIER' "$(t_in vm0 ip link show esw0v0)"
t_pcap $H pf0vf0 arp; C_rep=$PCAP
t_pcap vm1 esw0v1 "arp"; C_vm1=$PCAP
t_in vm0 ip neigh flush dev esw0v0
check_fails "VF0 -> VF1 fails" t_ping vm0 198.19.0.2 2
PCAP=$C_rep; check_eq "... VF0's ARP does not reach pf0vf0" 0 "$(t_pcap_count "arp and ether src $(t_in vm0 cat /sys/class/net/esw0v0/address)")"
PCAP=$C_vm1; check_eq "... nor VF1" 0 "$(t_pcap_count "arp and ether src $(t_in vm0 cat /sys/class/net/esw0v0/address)")"
drops=$(port_stat pf0vf0 tx_dropped)
t_in $H /usr/bin/python3 -c '
from scapy.all import Ether, IP, UDP, sendp
sendp(Ether(dst="ff:ff:ff:ff:ff:ff")/IP(src="198.19.0.99", dst="198.19.0.1")/UDP(sport=9993, dport=9993), iface="pf0vf0", verbose=False)' \
    2>/dev/null  # the drop at pf0vf0's egress is ENOBUFS to the sender
sleep 0.3
check_ge "a frame sent on pf0vf0 is dropped (tx_dropped)" $((drops + 1)) "$(port_stat pf0vf0 tx_dropped)"
arp="eth(src=02:00:00:00:00:99,dst=02:00:00:00:00:98),eth_type(0x0800),ipv4(src=198.19.0.1,dst=198.19.0.2,proto=1,ttl=64),icmp(type=8,code=0)"
check_match "trace: the port is inactive" 'dropped: eSwitch port 1 \(pf0vf0\) is inactive' "$(dpctl trace pf0vf0 "$arp")"
check "port function set state active" devlink port function set esw0/1 state active
check_eq "VF0 has carrier again" 1 "$(t_in vm0 cat /sys/class/net/esw0v0/carrier)"
check_no_match "trace: no longer inactive" 'inactive' "$(dpctl trace pf0vf0 "$arp")"
t_in vm0 ip neigh flush dev esw0v0
check "VF0 -> VF1 again" t_wait "VF0 -> VF1" 5 t_ping vm0 198.19.0.2 1

# VST (port function vlan) is a legacy-mode setting: mlx5 refuses it in switchdev mode
# with EOPNOTSUPP, and accepts vlan 0 (for libvirt).
check_fails "port function set vlan 100 is refused" devlink port function set esw0/2 vlan 100
check_match "... saying why" 'legacy-mode setting' "$(devlink port function set esw0/2 vlan 100 2>&1)"
check_no_match "... and nothing changed" 'vlan 100' "$(devlink port show esw0/2)"
check "vlan 0 is accepted" devlink port function set esw0/2 vlan 0
# A request is checked whole before any of it applies: the VLAN's refusal leaves the MAC
# given with it unset (the VF used to take the MAC, and the caller got the error).
mac2=$(devlink port show esw0/2 | grep -o 'hw_addr [0-9a-f:]*')
check_fails "hw_addr with a vlan is refused" devlink port function set esw0/2 hw_addr 02:00:00:00:02:77 vlan 100
check_match "... and the MAC did not change" "$mac2" "$(devlink port show esw0/2)"
check_no_match "... nor did the VF's" '02:00:00:00:02:77' "$(ip -n "${T_PREFIX}vm1" link show esw0v1)"
check_fails "hw_addr 00:00:00:00:00:00 is refused" devlink port function set esw0/2 hw_addr 00:00:00:00:00:00
check_match "... saying why" 'not a valid VF address' "$(devlink port function set esw0/2 hw_addr 00:00:00:00:00:00 2>&1)"
check_match "eswd --vfs 64 is refused up front (the uplink takes a port)" 'vfs must be 0...63' \
    "$("$ESW_BIN/eswd" --vfs 64 --uplink eswpt-none 2>&1)"
