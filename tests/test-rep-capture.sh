#!/usr/bin/env bash
# tcpdump on a representor sees the software path both ways, as on mlx5: what missed the
# hardware and came up the representor (In) and what the host sends on it (Out). The
# hardware redirects a frame sent on a representor at tc egress, before taps get their
# copy, so eswd mirrors a representor's transmit only while a packet socket of another
# process is bound to it (or to every interface): the port gets a clone, the frame goes
# through the TAP's transmit (taps see it) and eswd reads it off the TAP. Without a
# capture, nothing of it: no mirror, no drain thread, the TAP transmits nothing.
. "$(dirname "$0")/lib.sh"

t_topology 2 --mode switchdev --policy skip_hw
H=host
dpctl add-if pf0vf0
dpctl add-if pf0vf1
topo_vf_flows "$T_DIR/flows"
check "VF0 <-> VF1 flows in software (skip_hw)" dpctl add-flows "$T_DIR/flows"
check_eq "none offloaded" 0 "$(dpctl dump-flows type=offloaded | wc -l)"

# A counter of a representor as the kernel counts it (the TAP's own transmit).
link_stat() {
    ip -n "$T_PREFIX$H" -s -j link show "$1" | python3 -c 'import json, sys; print(json.load(sys.stdin)[0]["stats64"][sys.argv[1]][sys.argv[2]])' "$2" "$3"
}
# How many times eswd logged a mirror change ("on"/"off") for a representor.
mirror_events() {
    local what='representor capture: mirroring what is sent on it'
    [ "$2" = off ] && what='representor capture ended'
    grep "$what" "$T_DIR/eswd.log" | grep -c "netdev=$1\b"
}
# mirror_changed REP on|off COUNT: eswd logged more such changes than COUNT.
mirror_changed() { [ "$(mirror_events "$1" "$2")" -gt "$3" ]; }
drain_threads() { cat /proc/"$ESWD_PID"/task/*/comm 2>/dev/null | grep -c '^esw-rep-drain$'; }
# Pings VF0 -> VF1 (COUNT), printing ping's output (replies, duplicates, summary).
ping_vf1() { t_in vm0 ping -c "$1" -i 0.2 -W 2 198.19.0.2 2>&1; }
# stop_capture FILE REGEX LINES: waits until the tcpdump $DUMP (writing FILE) printed
# LINES lines matching REGEX (a frame is printed a moment after the ping saw it, later
# on a loaded machine; in immediate mode, or it waits in the capture ring's block for up
# to a second), notes pf0vf1's mirror-off events so far in $offs, stops it; FILE in $cap.
stop_capture() {
    t_wait "tcpdump printed $3 lines matching $2" 5 test "$(grep -Ec "$2" "$1")" -ge "$3"
    offs=$(mirror_events pf0vf1 off)
    kill "$DUMP"; wait "$DUMP" 2>/dev/null
    cap=$(cat "$1")
}

check "VF0 -> VF1 in software" t_ping vm0 198.19.0.2 2
check_eq "a representor's transmit queue holds 4096 frames (what a capture's mirror may queue)" 4096 \
    "$(ip -n "$T_PREFIX$H" -j link show pf0vf1 | python3 -c 'import json, sys; print(json.load(sys.stdin)[0]["txqlen"])')"
tx0=$(link_stat pf0vf1 tx packets)
check_eq "no capture: no drain thread" 0 "$(drain_threads)"
check_eq "no capture: pf0vf1's TAP transmits nothing" "$tx0" "$(link_stat pf0vf1 tx packets)"

# tcpdump -i pf0vf1: the mirror comes on within a few hundred milliseconds.
ons=$(mirror_events pf0vf1 on)
ip netns exec "$T_PREFIX$H" tcpdump -i pf0vf1 -nn -l --immediate-mode icmp >"$T_DIR/pf0vf1.txt" 2>"$T_DIR/pf0vf1.err" &
DUMP=$!
T_PIDS+=("$DUMP")
check "the mirror of pf0vf1 comes on" t_wait "mirror on pf0vf1" 3 mirror_changed pf0vf1 on "$ons"
check_eq "... for pf0vf1 alone" 0 "$(mirror_events pf0vf0 on)"
check_eq "a drain thread while capturing" 1 "$(drain_threads)"
out=$(ping_vf1 5)
check_match "VF0 -> VF1 while capturing: every reply" ' 5 received' "$out"
check_no_match "... and no duplicates (the clone is the only copy the port gets)" 'DUP|duplicates' "$out"
stop_capture "$T_DIR/pf0vf1.txt" 'ICMP echo' 10
check_eq "tcpdump -i pf0vf1 saw the requests the host sent on it" 5 "$(grep -c 'ICMP echo request' <<<"$cap")"
check_eq "... and the replies that came up it" 5 "$(grep -c 'ICMP echo reply' <<<"$cap")"
check_ge "pf0vf1's TAP transmitted the mirrored frames (and ARP's)" $((tx0 + 5)) "$(link_stat pf0vf1 tx packets)"
check_eq "... and dropped none (the drain keeps its queue empty)" 0 "$(link_stat pf0vf1 tx dropped)"

# The capture ends: at the next look (every 200 ms; a loaded machine may take longer)
# the mirror is off, the drain thread gone, and the TAP transmits nothing again while
# frames still flow.
check "the mirror of pf0vf1 goes off" t_wait "mirror off pf0vf1" 3 mirror_changed pf0vf1 off "$offs"
check_eq "no drain thread after the capture" 0 "$(drain_threads)"
tx1=$(link_stat pf0vf1 tx packets)
check "VF0 -> VF1 after the capture" t_ping vm0 198.19.0.2 3
check_eq "pf0vf1's TAP transmits nothing again" "$tx1" "$(link_stat pf0vf1 tx packets)"

# tcpdump -i any: every representor is mirrored, and the direction is the NIC's: the
# request comes in on pf0vf0 and goes out on pf0vf1, the reply the other way (what comes
# up a representor is addressed to the VF, not to it: "P", another host's, as on mlx5).
ons0=$(mirror_events pf0vf0 on); ons1=$(mirror_events pf0vf1 on)
ip netns exec "$T_PREFIX$H" tcpdump -i any -nn -l --immediate-mode icmp >"$T_DIR/any.txt" 2>"$T_DIR/any.err" &
DUMP=$!
T_PIDS+=("$DUMP")
both_on() { mirror_changed pf0vf0 on "$ons0" && mirror_changed pf0vf1 on "$ons1"; }
check "tcpdump -i any mirrors pf0vf0 and pf0vf1" t_wait "mirror on every representor" 3 both_on
out=$(ping_vf1 3)
check_match "VF0 -> VF1 under tcpdump -i any: every reply" ' 3 received' "$out"
check_no_match "... and no duplicates" 'DUP|duplicates' "$out"
stop_capture "$T_DIR/any.txt" 'pf0vf[01] .*ICMP echo' 12
check_eq "pf0vf0 In: the requests" 3 "$(grep -Ec 'pf0vf0 (In|P) .*ICMP echo request' <<<"$cap")"
check_eq "pf0vf1 Out: the requests" 3 "$(grep -c 'pf0vf1 Out .*ICMP echo request' <<<"$cap")"
check_eq "pf0vf1 In: the replies" 3 "$(grep -Ec 'pf0vf1 (In|P) .*ICMP echo reply' <<<"$cap")"
check_eq "pf0vf0 Out: the replies" 3 "$(grep -c 'pf0vf0 Out .*ICMP echo reply' <<<"$cap")"

# A burst sent on a mirrored representor: the TAP's queue (4096 frames, a TAP's default
# is 500) holds the mirror until the drain reads it, even when the drain runs late on a
# loaded machine, so the TAP drops nothing and the VF gets every frame once.
check "the end of tcpdump -i any ends the mirrors" t_wait "mirror off pf0vf1" 3 mirror_changed pf0vf1 off "$offs"
ons=$(mirror_events pf0vf1 on)
ip netns exec "$T_PREFIX$H" tcpdump -i pf0vf1 -nn 'udp port 9997' >/dev/null 2>&1 &
DUMP=$!
T_PIDS+=("$DUMP")
check "mirror on pf0vf1 again" t_wait "mirror on pf0vf1" 3 mirror_changed pf0vf1 on "$ons"
drops=$(link_stat pf0vf1 tx dropped)
tx2=$(link_stat pf0vf1 tx packets)
t_pcap vm1 esw0v1 "udp port 9997"
t_in $H /usr/bin/python3 -c '
import logging, socket
logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
from scapy.all import Ether, IP, UDP, Raw
f = bytes(Ether(dst="ff:ff:ff:ff:ff:ff")/IP(src="198.19.0.99", dst="198.19.0.2")/UDP(sport=9997, dport=9997)/Raw(b"x" * 64))
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("pf0vf1", 0))
for _ in range(3000):
    s.send(f)'
t_pcap_wait 'udp port 9997' 3000 5
check_eq "3000 frames sent on mirrored pf0vf1 reach VF1 once each" 3000 "$(t_pcap_count 'udp port 9997')"
# A TAP counts a frame transmitted when it is read off its queue.
tx_at_least() { [ "$(link_stat pf0vf1 tx packets)" -ge "$1" ]; }
check "... and their mirror went through pf0vf1's TAP" t_wait "the drain read the burst" 5 tx_at_least $((tx2 + 3000))
check_eq "... which dropped none of it" "$drops" "$(link_stat pf0vf1 tx dropped)"
offs=$(mirror_events pf0vf1 off)
kill "$DUMP" 2>/dev/null; wait "$DUMP" 2>/dev/null
check "... and the mirror goes off after it" t_wait "mirror off pf0vf1" 3 mirror_changed pf0vf1 off "$offs"

# Representors going away while mirrored (a switch to legacy): the drain lets go of their
# TAPs, so the netdevs go at once; back in switchdev, the new ones are mirrored again
# under the same tcpdump -i any.
ons=$(mirror_events pf0vf1 on)
ip netns exec "$T_PREFIX$H" tcpdump -i any -nn -l icmp >/dev/null 2>&1 &
DUMP=$!
T_PIDS+=("$DUMP")
check "tcpdump -i any: pf0vf1 mirrored" t_wait "mirror on pf0vf1" 3 mirror_changed pf0vf1 on "$ons"
# rep_capture_mirror false: no mirror even under a capture (for a userspace switch bound
# to the representors, which forwards and need not see what it sends), and back.
offs=$(mirror_events pf0vf1 off)
check "rep_capture_mirror false" devlink dev param set esw0 name rep_capture_mirror value false
check "... the mirror goes off under the running capture" t_wait "mirror off pf0vf1" 3 mirror_changed pf0vf1 off "$offs"
check "... and the drain thread with it" t_wait "no drain thread" 3 test "$(drain_threads)" -eq 0
ons=$(mirror_events pf0vf1 on)
check "rep_capture_mirror true" devlink dev param set esw0 name rep_capture_mirror value true
check "... mirrored again" t_wait "mirror on pf0vf1" 3 mirror_changed pf0vf1 on "$ons"
check "switch to legacy while mirrored" devlink dev eswitch set esw0 mode legacy
check_fails "pf0vf1 is gone" ip -n "$T_PREFIX$H" link show pf0vf1
check "... and no drain thread stays" t_wait "no drain thread" 3 test "$(drain_threads)" -eq 0
ons=$(mirror_events pf0vf1 on)
check "back to switchdev" devlink dev eswitch set esw0 mode switchdev
check "the new pf0vf1 is mirrored" t_wait "mirror on the new pf0vf1" 3 mirror_changed pf0vf1 on "$ons"
check_eq "a drain thread again" 1 "$(drain_threads)"
kill "$DUMP"; wait "$DUMP" 2>/dev/null
check "eswd is alive" kill -0 "$ESWD_PID"
