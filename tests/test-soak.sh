#!/usr/bin/env bash
# Route-flap soak: 100 route and neighbour changes while a ping flood runs between a VF
# and the remote over offloaded VXLAN. After each change has settled no packet is lost,
# and no frame ever leaves for a MAC the host's neighbour table no longer holds (tcpdump
# on the wire as witness). Bounded: about a minute, stops by itself.
. "$(dirname "$0")/lib.sh"

t_topology 1 --mode switchdev
t_vxlan_remote
H="${T_PREFIX}host"; R="${T_PREFIX}remote"
dpctl add-if pf0vf0
dpctl add-if vxlan_sys_4789,type=vxlan
t_vxlan_flows "$T_DIR/flows"
dpctl add-flows "$T_DIR/flows"
t_wait "flows offloaded" 5 bash -c "[ \$(dpctl dump-flows -m | grep -c 'offloaded:yes') -eq 4 ]"
check "traffic before the soak" t_ping vm0 198.19.0.3 3

# Witness on the wire: every VXLAN frame the switch sends, with its destination MAC.
ip netns exec "$R" tcpdump --immediate-mode -s 4096 -B 8192 -i wire0 -nn -e -tt -U -w "$T_DIR/wire.pcap" 'udp dst port 4789 and src host 198.18.0.1' >/dev/null 2>&1 &
T_PIDS+=("$!")
t_wait "tcpdump on the wire" 5 test -s "$T_DIR/wire.pcap"
ip netns exec "${T_PREFIX}vm0" ping -q -i 0.005 -w 120 198.19.0.3 >/dev/null 2>&1 &
FLOOD=$!; T_PIDS+=("$FLOOD")

settle=0.3
lost_windows=0
echo "0 $(ip -n "$R" link show wire0 | awk '/ether/{print $2}')" >"$T_DIR/changes"
for i in $(seq 1 100); do
    if [ $((i % 2)) -eq 0 ]; then
        mac=$(printf '02:00:00:00:bb:%02x' "$i")
        ip -n "$R" link set wire0 address "$mac"
        ip -n "$H" neigh replace 198.18.0.2 dev p0 lladdr "$mac" nud reachable
        echo "$(date +%s.%N) $mac" >>"$T_DIR/changes"    # the kernel's table holds it from here
    elif [ $((i % 4)) -eq 1 ]; then
        ip -n "$H" route replace 198.18.0.2/32 dev p0 src 198.18.0.1
    else
        ip -n "$H" route del 198.18.0.2/32 dev p0 2>/dev/null
    fi
    sleep $settle
    # After settling: a burst must get every reply.
    if ! t_in vm0 ping -q -c 10 -i 0.01 -W 1 198.19.0.3 >"$T_DIR/burst.$i" 2>&1 || ! grep -q ' 0% packet loss' "$T_DIR/burst.$i"; then
        lost_windows=$((lost_windows + 1))
        t_log "change $i: $(grep -o '[0-9]*% packet loss' "$T_DIR/burst.$i")"
    fi
done
kill -TERM $FLOOD 2>/dev/null; wait $FLOOD 2>/dev/null
sleep 0.3
check_eq "no packet lost after any of the 100 changes settled" 0 "$lost_windows"
check_eq "flows still offloaded after the soak" 4 "$(dpctl dump-flows -m | grep -c 'offloaded:yes')"

# Stale MACs: after each neighbour change (plus the settle time the tracker is given,
# which includes the kernel's notification), every frame goes to the new MAC.
pkill -INT -f "tcpdump --immediate-mode -s 4096 -B 8192 -i wire0 -nn -e -tt -U -w $T_DIR/wire.pcap" ; sleep 0.5
stale=$(tcpdump -nn -e -tt -r "$T_DIR/wire.pcap" 2>/dev/null | /usr/bin/python3 -c '
import sys
changes = [(float(t), m) for t, m in (l.split() for l in open(sys.argv[1]))]
grace = float(sys.argv[2])
stale = frames = 0
for line in sys.stdin:
    f = line.split()
    # Outer frames only: tcpdump prints the decoded inner frame on its own line.
    if len(f) < 4 or not f[0].replace(".", "", 1).isdigit(): continue
    t, dst = float(f[0]), f[3].rstrip(",")
    # Stale: a MAC some earlier neighbour update already replaced, seen after that
    # update plus the grace time. (A newer MAC is never stale.)
    replaced = {m for k, (ct, m) in enumerate(changes[:-1]) if changes[k + 1][0] + grace <= t}
    frames += 1
    if dst in replaced: stale += 1
print(stale, frames)
' "$T_DIR/changes" 0.1)
check_eq "no frame sent to a stale MAC (stale frames, of frames checked: $stale)" 0 "${stale%% *}"
check_ge "the witness saw the flood" 1000 "${stale##* }"
