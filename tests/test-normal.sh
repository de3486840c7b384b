#!/usr/bin/env bash
# --miss normal: a MAC-learning switch on misses. VFs and the uplink host reach each
# other with no flows added by hand; learned flows appear, get offloaded, age out.
. "$(dirname "$0")/lib.sh"

t_topology 2 --mode switchdev --miss normal --max-idle 2000
ip -n "${T_PREFIX}remote" addr add 198.19.0.10/24 dev wire0
for p in pf0vf0 pf0vf1 p0; do dpctl add-if $p; done

check_eq "no flows at start" 0 "$(dpctl dump-flows | wc -l)"
check "VF0 -> VF1 with no flows added" t_ping vm0 198.19.0.2 3
check "VF0 -> uplink host" t_ping vm0 198.19.0.10 3
check "uplink host -> VF1" t_ping remote 198.19.0.2 3
n=$(dpctl dump-flows | wc -l)
check_ge "learned flows installed" 4 "$n"
check_ge "learned flows offloaded" 2 "$(dpctl dump-flows -m | grep -c 'offloaded:yes')"
check_match "learned flows match in_port and the Ethernet header" 'in_port\(1\),eth\(src=[0-9a-f:]+,dst=[0-9a-f:]+\),eth_type' "$(dpctl dump-flows)"
check_match "miss mode shown" 'miss: normal' "$(dpctl show)"
t_wait "learned flows age out after max-idle" 8 bash -c '[ "$(dpctl dump-flows | wc -l)" -eq 0 ]'
check_eq "all learned flows aged out" 0 "$(dpctl dump-flows | wc -l)"
check_eq "and left the hardware" "0" "$(devlink resource show -j | /usr/bin/python3 -c 'import json,sys; print(sum(r["occ"] for r in json.load(sys.stdin)["resources"]["esw0"] if r["name"] in ("masked","exact")))')"
dpctl add-flow 'in_port(1),eth(),eth_type(0x0800),ipv4(src=198.18.77.1,frag=no)' drop
sleep 3.5
check_eq "hand-added flows never age" 1 "$(dpctl dump-flows | grep -c 'ipv4(src=198.18.77.1')"

# stats_interval_ms longer than max-idle: a busy offloaded learned flow must not age
# out between counter polls (its rule is read before it is aged). Aged and re-learned,
# its counters would restart at every max-idle.
dpctl del-flows
check "stats_interval_ms 6000 (max-idle is 2000)" devlink dev param set esw0 name stats_interval_ms value 6000
t_in vm0 ping -c 90 -i 0.1 -W 1 -q 198.19.0.2 >/dev/null 2>&1
v4learned() { dpctl dump-flows -m | grep 'in_port(pf0vf0),.*eth_type(0x0800)'; }
check_match "the learned VF0 -> VF1 flow is offloaded" 'offloaded:yes' "$(v4learned)"
# The dump shows the counters of the last read: at most max-idle plus the 1 s aging
# period (30 pings) old here.
pk=$(v4learned | grep -o 'packets:[0-9]*' | cut -d: -f2)
check_ge "its counters cover the whole 9 s of traffic (90 pings), not one max-idle" 50 "$pk"
