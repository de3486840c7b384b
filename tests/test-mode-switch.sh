#!/usr/bin/env bash
# legacy <-> switchdev at run time while a ping runs: representors come and go, the
# VF netdevs and their configuration stay, the ping resumes, nothing leaks.
. "$(dirname "$0")/lib.sh"

t_topology 2 --mode legacy
H="${T_PREFIX}host"
links() { ip -n "$H" -o link show | wc -l; }
reps() { ip -n "$H" -o link show | grep -cE ': (pf0vf[0-9]+|p0)[:@]'; }
legacy_links=$(links)
mac0=$(ip -n "${T_PREFIX}vm0" link show esw0v0 | awk '/ether/{print $2}')

ip netns exec "${T_PREFIX}vm0" ping -i 0.05 -w 60 198.19.0.2 >"$T_DIR/ping.log" 2>&1 &
PING=$!
T_PIDS+=("$PING")
for round in 1 2; do
    check "round $round: to switchdev" devlink dev eswitch set esw0 mode switchdev
    check_eq "round $round: three representors" 3 "$(reps)"
    ip -n "$H" link add br0 type bridge 2>/dev/null
    for p in pf0vf0 pf0vf1 p0; do ip -n "$H" link set $p master br0; done
    ip -n "$H" link set br0 up
    check "round $round: ping resumes in switchdev (software path)" t_ping vm0 198.19.0.2 3
    check "round $round: to legacy" devlink dev eswitch set esw0 mode legacy
    check_eq "round $round: representors gone" 0 "$(reps)"
    ip -n "$H" link del br0
    check "round $round: ping resumes in legacy" t_ping vm0 198.19.0.2 3
done
check_eq "no netdev leaked" "$legacy_links" "$(links)"
check_eq "VF netdev kept its MAC" "$mac0" "$(ip -n "${T_PREFIX}vm0" link show esw0v0 | awk '/ether/{print $2}')"
check_match "VF netdev still in its namespace" 'esw0v0' "$(ip -n "${T_PREFIX}vm0" link show)"
kill -INT $PING; wait $PING
check_match "background ping got replies throughout" '[0-9]+ received' "$(tail -3 "$T_DIR/ping.log")"
check_fails "an unknown mode is refused" devlink dev eswitch set esw0 mode bogus

# The datapath across a round trip. Its representor vports go with their netdevs (as
# the kernel detaches a vport whose netdev unregisters), the flows naming them leave
# the hardware, and vports added on the new representors bring them back.
offloaded() { dpctl dump-flows -m | grep -c 'offloaded:yes'; }
vports() { dpctl show | grep -cE 'pf0vf[01]'; }
topo_vf_flows "$T_DIR/vf.flows"
check "to switchdev (datapath)" devlink dev eswitch set esw0 mode switchdev
check "add-if pf0vf0 as port 1" dpctl add-if pf0vf0,port_no=1
check "add-if pf0vf1 as port 2" dpctl add-if pf0vf1,port_no=2
check "add the VF flows" dpctl add-flows "$T_DIR/vf.flows"
t_wait "four flows in hardware" 5 sh -c "[ \$($ESW_BIN/esw-dpctl dump-flows -m | grep -c offloaded:yes) -eq 4 ]"
check_eq "the four VF flows in hardware" 4 "$(offloaded)"
check "ping through the hardware" t_ping vm0 198.19.0.2 3
check "to legacy (datapath)" devlink dev eswitch set esw0 mode legacy
check_eq "legacy: the representors' vports are gone with them" 0 "$(vports)"
check_eq "legacy: no flow claims the hardware" 0 "$(offloaded)"
check "legacy: ping" t_ping vm0 198.19.0.2 3
check "back to switchdev (datapath)" devlink dev eswitch set esw0 mode switchdev
check_eq "switchdev: no vport on the new representors until added" 0 "$(vports)"
check_match "switchdev: the flows say why they are in software" 'not offloaded: .*(in_port|output to port) [12] ' "$(dpctl dump-flows -m)"
check "add-if the new pf0vf0 as port 1" dpctl add-if pf0vf0,port_no=1
check "add-if the new pf0vf1 as port 2" dpctl add-if pf0vf1,port_no=2
t_wait "four flows in hardware" 5 sh -c "[ \$($ESW_BIN/esw-dpctl dump-flows -m | grep -c offloaded:yes) -eq 4 ]"
check_eq "switchdev: the four flows back in hardware" 4 "$(offloaded)"
check "switchdev: ping through the hardware again" t_ping vm0 198.19.0.2 3
t_wait "the counter poll" 5 sh -c "$ESW_BIN/esw-dpctl dump-flows -m | grep 'in_port(pf0vf0),.*eth_type(0x0800)' | grep -q 'packets:[1-9]'"
check_match "and the hardware counted it" 'packets:[1-9].*offloaded:yes' "$(dpctl dump-flows -m | grep 'in_port(pf0vf0),.*eth_type(0x0800)')"
check "to legacy at the end" devlink dev eswitch set esw0 mode legacy
