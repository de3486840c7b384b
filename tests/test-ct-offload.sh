#!/usr/bin/env bash
# Connection tracking offloaded to the eSwitch, end to end (docs/ARCHITECTURE.md §9): the
# stateful ACL of test-conntrack.sh (zone 1, VF0 -> VF1 TCP 80 and UDP 53) with offload
# on. The pre-ct flows (ct(zone=1),recirc(N)) and the established flows of chains 1 and 2
# go to hardware; the TCP commit flow, which sets ct_mark, stays in software (the
# hardware commits nothing; the UDP one is a lookup there, and no new connection hits). Once
# a connection is established its packets run ct -> recirc -> post-ct rule in the
# eSwitch: the representors see the handshake and the teardown, not the data; the FIN
# hands the connection back and software closes it. The last section sends scapy frames
# (python3-scapy for /usr/bin/python3).
. "$(dirname "$0")/lib.sh"

t_topology 2 --mode switchdev
dpctl add-if pf0vf0 >/dev/null    # port 1
dpctl add-if pf0vf1 >/dev/null    # port 2
dpctl set-miss drop
t_ipv6_off vm0 vm1

topo_ct_acl_flows "$T_DIR/flows"
check "the stateful ACL's flows are accepted" dpctl add-flows "$T_DIR/flows"
flows=$(dpctl dump-flows -m)
check_eq "pre-ct, established, related, UDP commit and ARP flows are in hardware" 8 "$(echo "$flows" | grep -c 'offloaded:yes')"
check_match "a pre-ct flow is in hardware" 'recirc_id\(0\),.*in_port\(pf0vf0\).*offloaded:yes, dp:esw, actions:ct\(zone=1\),recirc\(0x1\)' "$flows"
check_match "a post-ct flow is in hardware" 'ct_state\(0x22/0x33\).*recirc_id\(0x1\).*offloaded:yes, dp:esw, actions:pf0vf1' "$flows"
check_match "the TCP commit flow stays in software, with the reason" 'ct\(commit,zone=1,mark=0x5/0xff\),pf0vf1.*not offloaded: unsupported action ct setting ct_mark or ct_label' "$flows"

# A long TCP connection: after the handshake its data runs in hardware.
to_rep0=$(port_stat pf0vf0 to_representor) to_rep1=$(port_stat pf0vf1 to_representor)
tx0=$(port_stat pf0vf0 tx_packets) tx1=$(port_stat pf0vf1 tx_packets)
mac0=$(t_in vm0 cat /sys/class/net/esw0v0/address)
mac1=$(t_in vm1 cat /sys/class/net/esw0v1/address)
t_in vm1 iperf3 -s -p 80 -1 -D >/dev/null 2>&1
sleep 0.3
t_in vm0 iperf3 -c 198.19.0.2 -p 80 -t 4 -J >"$T_DIR/iperf.json" 2>/dev/null &
IPERF=$!
sleep 2
ct=$(dpctl dump-conntrack -m zone=1)
check_match "the iperf3 connections are offloaded (status=0x8000)" 'dport=80\),reply=.*status=0x8000.*protoinfo=\(state_orig=ESTABLISHED' "$ct"
check_match "ct-stats-show counts them" 'Offloaded to hardware: [1-9]' "$(dpctl ct-stats-show zone=1)"
sport=$(echo "$ct" | grep status=0x8000 | head -n 1 | sed -n 's/.*sport=\([0-9]*\),dport=80).*/\1/p')
tr=$(dpctl trace pf0vf0 "eth(src=$mac0,dst=$mac1),eth_type(0x0800),ipv4(src=198.19.0.1,dst=198.19.0.2,proto=6,ttl=64),tcp(src=$sport,dst=80),tcp_flags(ack)" 2>&1)
check_match "trace: an established packet hits its CT entry in hardware" 'ct\(zone=1\): connection [0-9]+ \(original direction\)' "$tr"
check_match "trace: and the post-ct rule of chain 1" 'chain 0x1' "$tr"
check_ge "the CT table holds its entries" 2 "$(devlink resource show -j | python3 -c '
import json, sys
def walk(rs):
    for r in rs:
        yield r
        yield from walk(r.get("resources", []))
for dev in json.load(sys.stdin)["resources"].values():
    for r in walk(dev):
        if r["name"] == "ct": print(r["occ"])')"
wait $IPERF
mbps=$(/usr/bin/python3 -c 'import json,sys; print(int(json.load(open(sys.argv[1]))["end"]["sum_received"]["bits_per_second"]/1e6))' "$T_DIR/iperf.json" 2>/dev/null || echo 0)
check_ge "iperf3 through the offloaded ACL (Mbit/s)" 500 "$mbps"
up=$(( $(port_stat pf0vf0 to_representor) - to_rep0 + $(port_stat pf0vf1 to_representor) - to_rep1 ))
out=$(( $(port_stat pf0vf0 tx_packets) - tx0 + $(port_stat pf0vf1 tx_packets) - tx1 ))
t_log "iperf3: $up frames up the representors (handshakes, teardowns, the data before the offload), $out to the VFs"
check_ge "the representors saw under 5% of the frames" "$up" $((out / 20))
sleep 1.5
check_match "after the FINs the connections are back in software" 'dport=80\),reply=.*protoinfo=\(state_orig=(TIME_WAIT|CLOSING|FIN_WAIT_2|CLOSE_WAIT|LAST_ACK)' "$(dpctl dump-conntrack -m zone=1)"
check_no_match "none is offloaded any more" 'status=0x8000' "$(dpctl dump-conntrack -m zone=1)"
check_match "hardware counters reached the tracker (-s)" 'packets=[0-9]{4,}' "$(dpctl dump-conntrack -s zone=1)"

# Many short connections: each is offloaded (or not, when short) and handed back cleanly.
t_tcpchurn || { t_fail "tcpchurn builds"; exit 1; }
t_in vm1 "$T_DIR/tcpchurn" server 80 >/dev/null 2>&1 &
T_PIDS+=($!)
sleep 0.3
check_eq "100 TCP connections VF0 -> VF1:80 all complete" "100 0" "$(t_in vm0 "$T_DIR/tcpchurn" client 198.19.0.2 80 100 1 | cut -d' ' -f1,2)"
check_eq "TCP VF1 -> VF0:80 (new from VF1: denied) still fails" "0 2" "$(t_in vm1 "$T_DIR/tcpchurn" client 198.19.0.1 80 2 1 | cut -d' ' -f1,2)"

ctline=$(devlink dev show -s | grep '^  ct:')
t_log "dev show -s:$ctline"
check_match "dev show -s counts CT hits in the pipeline" 'hits [1-9][0-9]{3,}' "$ctline"
check_match "and hand-backs (FIN/RST)" 'hand_backs [1-9]' "$ctline"
check_match "and no refusals" 'refused_full 0 refused_unsupported 0 write_failed 0' "$ctline"

ct_occupancy() {
    devlink resource show -j | python3 -c '
import json, sys
def walk(rs):
    for r in rs:
        yield r
        yield from walk(r.get("resources", []))
for dev in json.load(sys.stdin)["resources"].values():
    for r in walk(dev):
        if r["name"] == "ct": print(r["occ"])'
}
# A connection (a byte each way ten times, then quiet: a packet after the flush would
# be picked up mid-stream and offloaded again) is established and in hardware when the
# flush comes: the flush takes it out of the hardware before it answers, not at the next
# tick (the pipeline would pass its packets meanwhile).
pkill -f "$T_DIR/tcpchurn server 80"
t_in vm1 python3 -c '
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("", 80)); s.listen(1)
c, _ = s.accept()
while c.recv(1): c.send(b"y")' &
T_PIDS+=($!)
t_wait "the echo server on port 80" 5 sh -c "ip netns exec ${T_PREFIX}vm1 ss -Hltn 'sport = :80' | grep -q 80"
t_in vm0 python3 -c '
import socket, time
s = socket.create_connection(("198.19.0.2", 80))
for _ in range(10):
    s.send(b"x"); s.recv(1); time.sleep(0.05)
time.sleep(20)' &
HOLD=$!
T_PIDS+=("$HOLD")
t_wait "the connection in hardware" 8 sh -c "$ESW_BIN/esw-dpctl dump-conntrack -m zone=1 | grep -q 'dport=80),reply=.*status=0x8000'"
sleep 1
check_ge "the CT table holds the quiet connection" 1 "$(ct_occupancy)"
check "flush-conntrack" dpctl flush-conntrack
check_eq "a flush empties the CT table at once" 0 "$(ct_occupancy)"
kill "$HOLD" 2>/dev/null; wait "$HOLD" 2>/dev/null
# trace: an established packet's ct and chain steps, and a new one's miss.
tr=$(dpctl trace pf0vf0 "eth(src=$mac0,dst=$mac1),eth_type(0x0800),ipv4(src=198.19.0.1,dst=198.19.0.2,proto=6,ttl=64),tcp(src=40000,dst=80),tcp_flags(syn)" 2>&1)
check_match "trace: a new connection misses the CT table and goes up" 'no CT entry' "$tr"

# The same traffic through plain VF <-> VF rules (no ct): what the ACL costs in hardware.
check "del-flows" dpctl del-flows
topo_vf_flows "$T_DIR/plain"
check "plain VF <-> VF flows" dpctl add-flows "$T_DIR/plain"
t_in vm1 iperf3 -s -p 5201 -1 -D >/dev/null 2>&1    # (tcpchurn still listens on 80)
sleep 0.3
plain=$(t_in vm0 iperf3 -c 198.19.0.2 -p 5201 -t 4 -J 2>/dev/null | /usr/bin/python3 -c 'import json,sys; print(int(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e6))' 2>/dev/null || echo 0)
# Reported, not asserted: the ratio is a benchmark's (scripts/bench.sh conntrack), and on a
# loaded 2-core machine any threshold here would fail for the load, not for esw.
t_log "iperf3: $mbps Mbit/s through the offloaded ACL, $plain Mbit/s through plain rules"
check_ge "iperf3 through the plain rules (Mbit/s)" 500 "$plain"

# --- Leaving the hardware and coming back ---
# wait_check DESC SECONDS CMD...: a check that CMD succeeds within SECONDS.
wait_check() { if t_wait "$@"; then t_pass "$1"; else t_fail "$1"; fi; }
refused_full() { devlink dev show -s | sed -n 's/^  ct:.*refused_full \([0-9]*\).*/\1/p'; }
ct_line() { dpctl dump-conntrack -m -s "zone=$1" | grep -- "$2"; }
check "del-flows" dpctl del-flows
check "flush-conntrack" dpctl flush-conntrack
check "the ACL again" dpctl add-flows "$T_DIR/flows"
wait_check "port 80 free in vm1 (the echo server's client is gone)" 25 \
    sh -c "! ip netns exec ${T_PREFIX}vm1 ss -Hltn 'sport = :80' | grep -q 80"

# What the hardware counted reaches dump-conntrack -s when the connection leaves the
# hardware (the FIN's hand-back), not only what a counter poll read before: with polls
# 5 s apart a 3 s iperf3 run is read at most once.
check "stats_interval_ms 5000" devlink dev param set esw0 name stats_interval_ms value 5000
t_in vm1 iperf3 -s -p 80 -1 -D >/dev/null 2>&1
sleep 0.3
sent=$(t_in vm0 iperf3 -c 198.19.0.2 -p 80 -t 3 -J 2>/dev/null | /usr/bin/python3 -c 'import json,sys; print(int(json.load(sys.stdin)["end"]["sum_sent"]["bytes"]))' 2>/dev/null || echo 0)
sleep 1
counted=$(dpctl dump-conntrack -s zone=1 | sed -n 's/.*dport=80,packets=[0-9]*,bytes=\([0-9]*\)).*/\1/p' | sort -n | tail -n 1)
t_log "iperf3 sent $sent bytes; dump-conntrack -s counts ${counted:-0} for its data connection"
check_ge "dump-conntrack -s has the hardware's bytes of a connection handed back" $((sent / 100 * 95)) "${counted:-0}"
check "stats_interval_ms 1000" devlink dev param set esw0 name stats_interval_ms value 1000

# A CT table of one connection.
check "del-flows" dpctl del-flows
check "flush-conntrack" dpctl flush-conntrack
check "ct resource set to 2 (one connection)" devlink resource set esw0 path /ct size 2
check "dev reload" devlink dev reload esw0
check "the ACL again" dpctl add-flows "$T_DIR/flows"
# Counter polls a minute apart from here: what the hardware counts reaches the tracker
# only as connections leave it.
check "stats_interval_ms 60000" devlink dev param set esw0 name stats_interval_ms value 60000
# Servers until their stop file appears: TCP echo on 80, UDP echo on 53 (vm1).
t_in vm1 python3 -c '
import os, socket, sys, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("", 80)); s.listen(8); s.settimeout(0.5)
def serve(c):
    while c.recv(1): c.send(b"y")
while not os.path.exists(sys.argv[1]):
    try: c, _ = s.accept()
    except OSError: continue
    threading.Thread(target=serve, args=(c,), daemon=True).start()' "$T_DIR/stop-tcp" &
T_PIDS+=($!)
t_in vm1 python3 -c '
import os, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("", 53)); s.settimeout(0.5)
while not os.path.exists(sys.argv[1]):
    try: d, a = s.recvfrom(100)
    except OSError: continue
    s.sendto(d, a)' "$T_DIR/stop-udp" &
T_PIDS+=($!)
wait_check "the echo servers" 5 sh -c "ip netns exec ${T_PREFIX}vm1 ss -Hltn 'sport = :80' | grep -q 80"
# hold SECONDS: a TCP connection VF0 -> VF1:80 that says a few bytes, stays quiet, closes.
hold() {
    t_in vm0 python3 -c '
import socket, sys, time
s = socket.create_connection(("198.19.0.2", 80))
for _ in range(10):
    s.send(b"x"); s.recv(1); time.sleep(0.05)
time.sleep(float(sys.argv[1]))' "$1" &
    T_PIDS+=($!)
}
hold 8
wait_check "connection A in hardware" 6 sh -c "$ESW_BIN/esw-dpctl dump-conntrack -m zone=1 | grep -q 'dport=80),reply=.*status=0x8000'"
check_eq "A fills the CT table" 2 "$(ct_occupancy)"

# A connection refused for want of room goes to hardware once there is room: a UDP
# stream VF0:5353 -> VF1:53 (10 packets a second, answered) while A holds the table and
# after A closes.
t_in vm0 python3 -c '
import os, socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("", 5353)); s.settimeout(0.5)
while not os.path.exists(sys.argv[1]):
    s.sendto(b"q", ("198.19.0.2", 53))
    try: s.recv(100)
    except OSError: pass
    time.sleep(0.1)' "$T_DIR/stop-b" &
T_PIDS+=($!)
full0=$(refused_full)
wait_check "B is refused: the table is full" 5 sh -c "[ \"\$($ESW_BIN/esw-devlink dev show -s | sed -n 's/^  ct:.*refused_full \([0-9]*\).*/\1/p')\" -gt $full0 ]"
sleep 2.5
full1=$(refused_full)
check_ge "a full table is not retried for every packet of B (25 in 2.5 s): $((full1 - full0)) refusals" $((full1 - full0)) 4
check_no_match "B stays in software meanwhile" 'status=0x8000' "$(ct_line 1 sport=5353)"
wait_check "A closes, and B goes to hardware" 12 sh -c "$ESW_BIN/esw-dpctl dump-conntrack -m zone=1 | grep 'sport=5353' | grep -q status=0x8000"
check_eq "B holds the CT table" 2 "$(ct_occupancy)"

# The zone's last ct rule leaves: its connections leave the hardware at once (mlx5
# flushes the zone's CT table), with the packets the hardware counted (3 s of B: 30 each
# way, never polled).
sleep 3
before=$(ct_line 1 sport=5353 | sed -n 's/.*dport=53,packets=\([0-9]*\).*/\1/p')
check "del-flows" dpctl del-flows
check_eq "del-flows empties the CT table" 0 "$(ct_occupancy)"
check_no_match "ct-stats-show: nothing offloaded" 'Offloaded to hardware' "$(dpctl ct-stats-show)"
after=$(ct_line 1 sport=5353 | sed -n 's/.*dport=53,packets=\([0-9]*\).*/\1/p')
t_log "B: $before packets before del-flows (software's and polled), $after after"
check_ge "B keeps the packets the hardware counted" $((${before:-0} + 20)) "${after:-0}"
touch "$T_DIR/stop-b"
# The same with an idle TCP connection, as the probe found it: it held the table for
# the established timeout, and a connection of another zone was refused as full.
check "flush-conntrack" dpctl flush-conntrack
check "the ACL again" dpctl add-flows "$T_DIR/flows"
hold 15
wait_check "an idle connection D in hardware" 6 sh -c "$ESW_BIN/esw-dpctl dump-conntrack -m zone=1 | grep -q 'dport=80),reply=.*status=0x8000'"
# Quiet from now on (its bytes dropped by del-flows would be retransmitted into zone 5).
sleep 1
check_eq "D fills the CT table" 2 "$(ct_occupancy)"
check "del-flows" dpctl del-flows
check_eq "del-flows takes D out of the CT table at once" 0 "$(ct_occupancy)"
check_no_match "ct-stats-show: nothing offloaded" 'Offloaded to hardware' "$(dpctl ct-stats-show)"
sed 's/zone=1/zone=5/g' "$T_DIR/flows" >"$T_DIR/flows5"
check "the ACL in zone 5" dpctl add-flows "$T_DIR/flows5"
full0=$(refused_full)
hold 3
wait_check "a connection of zone 5 in hardware" 6 sh -c "$ESW_BIN/esw-dpctl dump-conntrack -m zone=5 | grep -q 'dport=80),reply=.*status=0x8000'"
check_eq "and it was not refused" "$full0" "$(refused_full)"
touch "$T_DIR/stop-tcp" "$T_DIR/stop-udp"
wait_check "port 53 free in vm1" 5 sh -c "! ip netns exec ${T_PREFIX}vm1 ss -Hlun 'sport = :53' | grep -q 53"

# An offloaded connection the hardware carries does not expire between counter polls:
# a UDP stream from VF1 (4 packets a second for 40 s after one request) with polls a
# minute apart, past the UDP timeout (30 s). Only the hardware sees the stream.
t_in vm1 python3 -c '
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("", 53))
d, a = s.recvfrom(100)
for _ in range(160):
    s.sendto(b"s", a); time.sleep(0.25)' &
T_PIDS+=($!)
check "flush-conntrack (an empty CT table)" dpctl flush-conntrack
sleep 0.3
t_in vm0 python3 -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("", 5454)); s.settimeout(3)
s.sendto(b"q", ("198.19.0.2", 53))
n = 0
try:
    while True: s.recv(100); n += 1
except OSError: pass
print(n)' >"$T_DIR/stream.out" &
CLIENT=$!
T_PIDS+=("$CLIENT")
wait_check "the stream's connection in hardware" 5 sh -c "$ESW_BIN/esw-dpctl dump-conntrack -m zone=5 | grep 'dport=53' | grep -q status=0x8000"
wait "$CLIENT"
got=$(cat "$T_DIR/stream.out")
check_ge "the stream is not cut at the UDP timeout (the client got $got of 160)" 155 "${got:-0}"
check "stats_interval_ms 1000" devlink dev param set esw0 name stats_interval_ms value 1000

# A connection's counts are its IP packets' lengths, in software and in hardware alike
# (as the kernel's conntrack counts), a VLAN tag included in neither: the kernel holds
# an 802.1Q tag outside the frame's data when the hardware sees it. UDP in VLAN 10 in
# zone 6, one request and its answer in software, then 10 each way in hardware (the
# CT table holds one connection: the stream's goes first).
check "flush-conntrack (room in the CT table)" dpctl flush-conntrack
vlan='eth(),eth_type(0x8100),vlan(vid=10,pcp=0),encap(eth_type(0x0800),ipv4(proto=17,frag=no),udp())'
printf '%s\n' "recirc_id(0),in_port(1),$vlan ct(commit,zone=6),2" \
    "recirc_id(0),in_port(2),$vlan ct(zone=6),recirc(61)" \
    "recirc_id(61),ct_state(+est+trk),in_port(2),$vlan 1" >"$T_DIR/flows6"
check "UDP in VLAN 10 through zone 6" dpctl add-flows "$T_DIR/flows6"
# vlan_udp NS IFACE REPLY COUNT: COUNT frames of 100 bytes of payload (IP length 128)
vlan_udp() {
    t_in "$1" /usr/bin/python3 -c '
import sys
from scapy.all import Ether, Dot1Q, IP, UDP, sendp
reply = sys.argv[2] == "reply"
ends = [("198.19.0.1", 6000), ("198.19.0.2", 6001)]
(src, sport), (dst, dport) = ends[::-1] if reply else ends
f = Ether(dst="02:00:00:00:00:0" + ("1" if reply else "2")) / Dot1Q(vlan=10) / IP(src=src, dst=dst) / UDP(sport=sport, dport=dport) / (b"v" * 100)
sendp([f] * int(sys.argv[3]), iface=sys.argv[1], verbose=0)' "$2" "$3" "$4"
}
vlan_udp vm0 esw0v0 request 1
vlan_udp vm1 esw0v1 reply 1
wait_check "the VLAN connection in hardware" 5 sh -c "$ESW_BIN/esw-dpctl dump-conntrack -m zone=6 | grep -q status=0x8000"
hits0=$(devlink dev show -s | sed -n 's/^  ct:.* hits \([0-9]*\).*/\1/p')
vlan_udp vm0 esw0v0 request 10
vlan_udp vm1 esw0v1 reply 10
sleep 2.5
check_eq "the hardware carried 20 of its packets" 20 $(( $(devlink dev show -s | sed -n 's/^  ct:.* hits \([0-9]*\).*/\1/p') - hits0 ))
ct6=$(dpctl dump-conntrack -s zone=6)
check_match "dump-conntrack -s: 11 packets of 128 bytes each way" \
    'orig=\(src=198.19.0.1,dst=198.19.0.2,sport=6000,dport=6001,packets=11,bytes=1408\),reply=\(src=198.19.0.2,dst=198.19.0.1,sport=6001,dport=6000,packets=11,bytes=1408\)' "$ct6"
