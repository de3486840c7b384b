#!/usr/bin/env bash
# Connection tracking in the software datapath, end to end: an OVN-like stateful ACL
# between two VFs and SNAT towards the uplink, with real TCP, UDP and ICMP traffic.
#
#   VF0 (198.19.0.1) -> VF1 (198.19.0.2): new TCP to port 80 and UDP to 53 are
#   committed in zone 1, established and related traffic passes both ways, anything
#   else new (other ports, VF1 -> VF0) has no flow and is dropped (miss mode drop).
#   VF0 -> remote (198.18.0.2, behind the uplink): SNAT to 198.18.0.9 in zone 2, the
#   replies un-NATed on the way back, found by their original-direction tuple (ct_tuple4).
# Checks that connections work or fail as the ACL says, that ICMP errors come back as
# related, that dump-conntrack / flush-conntrack / ct-stats-show / maxconns / zone
# limits behave as ovs-dpctl's, and that NATed frames on the wire carry the NAT address.
. "$(dirname "$0")/lib.sh"

t_topology 2 --mode switchdev --policy skip_hw
dpctl add-if pf0vf0 >/dev/null    # port 1
dpctl add-if pf0vf1 >/dev/null    # port 2
dpctl add-if p0 >/dev/null        # port 3: the uplink's representor
dpctl set-miss drop
t_ipv6_off vm0 vm1 remote
ip -n "${T_PREFIX}remote" addr add 198.18.0.2/24 dev wire0
ip -n "${T_PREFIX}remote" link set wire0 up
ip -n "${T_PREFIX}remote" neigh replace 198.18.0.9 lladdr 02:00:00:00:00:09 dev wire0
mac() { ip -n "${T_PREFIX}$1" -br link show dev "$2" | awk '{print $3}'; }
VM0_MAC=$(mac vm0 esw0v0) WIRE_MAC=$(mac remote wire0)
t_in vm0 ip route add 198.18.0.0/24 dev esw0v0
t_in vm0 ip neigh replace 198.18.0.2 lladdr 02:00:00:00:00:02 dev esw0v0

t_tcpchurn || { t_fail "tcpchurn builds"; exit 1; }
CHURN=$T_DIR/tcpchurn

topo_ct_acl_flows "$T_DIR/flows"
ip4='eth(),eth_type(0x0800)'
printf '%s\n' \
    "recirc_id(0),in_port(1),$ip4,ipv4(dst=198.18.0.2,frag=no) ct(commit,zone=2,nat(src=198.18.0.9)),set(eth(dst=$WIRE_MAC)),3" \
    "recirc_id(0),in_port(3),$ip4,ipv4(dst=198.18.0.9,frag=no) ct(zone=2,nat),recirc(3)" \
    "recirc_id(3),ct_state(+est+trk),ct_tuple4(src=198.19.0.1,proto=6),in_port(3),$ip4,ipv4(frag=no) set(eth(dst=$VM0_MAC)),1" >>"$T_DIR/flows"
check "the stateful ACL's flows are accepted" dpctl add-flows "$T_DIR/flows"
check_match "ct() flows show their actions" 'ct\(commit,zone=1,mark=0x5/0xff\),2' "$(dpctl dump-flows)"

# A connection held open shows ESTABLISHED; iperf3 runs through the ACL.
t_in vm1 iperf3 -s -p 80 -1 -D >/dev/null 2>&1
sleep 0.3
t_in vm0 iperf3 -c 198.19.0.2 -p 80 -t 3 -J >"$T_DIR/iperf.json" 2>/dev/null &
IPERF=$!
sleep 1.5
check_match "a running iperf3 connection is ESTABLISHED" 'dport=80\),reply=.*zone=1,mark=5,protoinfo=\(state=ESTABLISHED\)' "$(dpctl dump-conntrack)"
wait $IPERF
mbps=$(/usr/bin/python3 -c 'import json,sys; print(int(json.load(open(sys.argv[1]))["end"]["sum_received"]["bits_per_second"]/1e6))' "$T_DIR/iperf.json" 2>/dev/null || echo 0)
check_ge "iperf3 through the stateful ACL (Mbit/s)" 50 "$mbps"

for srv in "vm1 80" "vm1 81" "vm0 80" "remote 80"; do
    set -- $srv
    t_in "$1" "$CHURN" server "$2" >/dev/null 2>&1 &
    T_PIDS+=($!)
done
sleep 0.3
# churn NS DST PORT N: "OK FAILED" of N connections one after the other
churn() { t_in "$1" "$CHURN" client "$2" "$3" "$4" 1 | cut -d' ' -f1,2; }

check_eq "200 TCP connections VF0 -> VF1:80 all complete" "200 0" "$(churn vm0 198.19.0.2 80 200)"
check_eq "TCP VF0 -> VF1:81 (no flow for it) fails" "0 2" "$(churn vm0 198.19.0.2 81 2)"
check_eq "TCP VF1 -> VF0:80 (new from VF1: denied) fails" "0 2" "$(churn vm1 198.19.0.1 80 2)"

dump=$(dpctl dump-conntrack zone=1)
check_ge "dump-conntrack zone=1 lists the closed connections" 200 "$(echo "$dump" | grep -c '^tcp,orig=(src=198.19.0.1,dst=198.19.0.2,sport=[0-9]*,dport=80),reply=(src=198.19.0.2,dst=198.19.0.1,sport=80,dport=[0-9]*),zone=1,mark=5,protoinfo=(state=')"
check_eq "no connection to port 81 was committed" 0 "$(echo "$dump" | grep -c 'dport=81')"

# UDP: a reply is established traffic; a closed port's ICMP error comes back as related.
printf '%s\n' 'import socket, sys' \
    's = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)' \
    's.settimeout(2)' \
    's.connect((sys.argv[1], int(sys.argv[2])))' \
    's.send(b"query")' \
    'try:' \
    '    print("reply", s.recv(100).decode())' \
    'except ConnectionRefusedError:' \
    '    print("refused")' \
    'except socket.timeout:' \
    '    print("timeout")' >"$T_DIR/udp.py"
t_in vm1 /usr/bin/python3 -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", 53)); s.settimeout(5)
d, a = s.recvfrom(100); s.sendto(b"answer", a)' &
UDPSRV=$!
sleep 0.3
check_eq "UDP VF0 -> VF1:53 gets its reply" "reply answer" "$(t_in vm0 /usr/bin/python3 "$T_DIR/udp.py" 198.19.0.2 53)"
wait $UDPSRV
check_eq "UDP to VF1:53 with no listener: the ICMP error comes back (related)" "refused" "$(t_in vm0 /usr/bin/python3 "$T_DIR/udp.py" 198.19.0.2 53)"
check_eq "UDP VF0 -> VF1:54 (no flow) is dropped" "timeout" "$(t_in vm0 /usr/bin/python3 "$T_DIR/udp.py" 198.19.0.2 54)"
check_match "dump-conntrack lists the UDP connection" '^udp,orig=\(src=198.19.0.1,dst=198.19.0.2,sport=[0-9]+,dport=53\),reply=\(src=198.19.0.2,dst=198.19.0.1,sport=53,dport=[0-9]+\),zone=1$' "$(dpctl dump-conntrack zone=1)"

# SNAT towards the uplink: the wire sees 198.18.0.9, VF0 gets the replies.
t_pcap remote wire0 "tcp port 80"
check_eq "20 TCP connections VF0 -> remote through SNAT complete" "20 0" "$(churn vm0 198.18.0.2 80 20)"
check_ge "the wire saw the NAT address" 20 "$(t_pcap_count 'src host 198.18.0.9 and tcp port 80')"

check_eq "and never VF0's own" 0 "$(t_pcap_count 'host 198.19.0.1')"
check_match "zone 2 holds the SNATed tuple" '^tcp,orig=\(src=198.19.0.1,dst=198.18.0.2,sport=[0-9]+,dport=80\),reply=\(src=198.18.0.2,dst=198.18.0.9,sport=80,dport=[0-9]+\),zone=2,protoinfo' "$(dpctl dump-conntrack zone=2)"

# Management: stats, flush by tuple, by zone, maxconns, zone limits.
check_match "ct-stats-show counts TCP" 'TCP: [0-9]+' "$(dpctl ct-stats-show)"
one=$(dpctl dump-conntrack zone=2 | head -n 1 | sed -n 's/^tcp,orig=(src=\([^,]*\),dst=\([^,]*\),sport=\([0-9]*\),dport=\([0-9]*\)).*/ct_nw_src=\1,ct_nw_dst=\2,ct_nw_proto=6,ct_tp_src=\3,ct_tp_dst=\4/p')
n2=$(dpctl dump-conntrack zone=2 | wc -l)
check "flush-conntrack zone=2 with one tuple" dpctl flush-conntrack zone=2 "$one"
check_eq "exactly that connection is gone" $((n2 - 1)) "$(dpctl dump-conntrack zone=2 | wc -l)"
check_fails "flushing that 5-tuple again fails (ENOENT), as ovs-dpctl" dpctl flush-conntrack zone=2 "$one"
# ovs-dpctl's second tuple: the reply direction (here the NATed side).
rpl=$(dpctl dump-conntrack zone=2 | head -n 1 | sed -n 's/.*,reply=(src=\([^,]*\),dst=\([^,]*\),sport=\([0-9]*\),dport=\([0-9]*\)).*/ct_nw_src=\1,ct_nw_dst=\2,ct_tp_src=\3,ct_tp_dst=\4/p')
check "flush-conntrack zone=2 with an original and a reply tuple" dpctl flush-conntrack zone=2 ct_nw_proto=6 "$rpl"
check_eq "exactly that connection is gone" $((n2 - 2)) "$(dpctl dump-conntrack zone=2 | wc -l)"
check "flush-conntrack zone=2" dpctl flush-conntrack zone=2
check_eq "zone 2 is empty" 0 "$(dpctl dump-conntrack zone=2 | wc -l)"
check_ge "zone 1 is untouched" 200 "$(dpctl dump-conntrack zone=1 | wc -l)"
check_fails "a malformed tuple is refused" dpctl flush-conntrack 'ct_nw_src=1.2.3'
# A flush whose zone attribute is malformed (4 bytes, not a u16) is EINVAL, not "all zones".
before=$(dpctl dump-conntrack | wc -l)
err=$(/usr/bin/python3 - "$ESW_CONTROL" <<'PY'
import socket, struct, sys
body = struct.pack("=BBHi", 2, 1, 0, 0) + struct.pack("=HHI", 8, 1, 1)   # flush, zone attr of 4 bytes
m = struct.pack("=IHHII", 16 + len(body), 0x26, 1 | 4, 1, 0) + body
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET); s.settimeout(3); s.connect(sys.argv[1]); s.send(m)
d = s.recv(65536)
ln, t = struct.unpack_from("=IH", d, 0)
print(-struct.unpack_from("=i", d, 16)[0] if t == 2 else "reply")
PY
)
check_eq "a flush with a malformed zone attribute is EINVAL" 22 "$err"
check_eq "and flushes nothing" "$before" "$(dpctl dump-conntrack | wc -l)"
check "flush-conntrack" dpctl flush-conntrack
check_eq "the tracker is empty" 0 "$(dpctl dump-conntrack | wc -l)"

check "ct-set-maxconns 10" dpctl ct-set-maxconns 10
check_eq "ct-get-maxconns" 10 "$(dpctl ct-get-maxconns)"
# (A failed attempt takes 2 s: few of them, or the first connections time out meanwhile.)
check_eq "with maxconns 10, connections beyond the tenth cannot commit" "10 3" "$(churn vm0 198.19.0.2 80 13)"
dpctl flush-conntrack
dpctl ct-set-maxconns 3000000 >/dev/null
check "ct-set-limits zone=1,limit=5" dpctl ct-set-limits zone=1,limit=5
check_match "ct-get-limits shows it" 'zone=1,limit=5,count=0' "$(dpctl ct-get-limits zone=1)"
check_eq "ct-get-limits ends its last line, as ovs-dpctl" 2 "$(dpctl ct-get-limits zone=1 | wc -l)"
check_eq "zone 1 takes 5 connections" "5 3" "$(churn vm0 198.19.0.2 80 8)"
check_eq "zone 2 is not limited" "8 0" "$(churn vm0 198.18.0.2 80 8)"
check "ct-del-limits zone=1" dpctl ct-del-limits zone=1
check_no_match "the limit is gone" 'zone=1,limit=5' "$(dpctl ct-get-limits)"
