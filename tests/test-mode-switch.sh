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
