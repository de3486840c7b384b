#!/usr/bin/env bash
# Partial offload (hinting): a flow with an action only software can run (trunc) gets a
# hardware rule that matches, marks the packet and sends it up the representor; the
# datapath runs the flow the mark names without classifying. Checked: the flows are
# offloaded:partial, their packets are counted as partial and reach them by mark,
# partial offload can be turned off, and deleting or replacing flows under traffic
# never delivers a packet to another flow's actions (scapy frames with a payload per
# flow; each flow rewrites the UDP source port to a value of its own).
. "$(dirname "$0")/lib.sh"

# python3-scapy is for the system python (python3 on PATH may be another).
PY=/usr/bin/python3
if ! "$PY" -c 'import scapy.all' >/dev/null 2>&1; then
    t_fail "$PY cannot import scapy: install python3-scapy (this test does not skip)"
    exit 1
fi

t_topology 2 --mode switchdev
dpctl add-if pf0vf0
dpctl add-if pf0vf1

# 1. Ping through partial flows (ARP fully offloaded).
cat >"$T_DIR/flows" <<'EOF'
in_port(1),eth(),eth_type(0x0800),ipv4(frag=no) trunc(2000),2
in_port(2),eth(),eth_type(0x0800),ipv4(frag=no) trunc(2000),1
in_port(1),eth(),eth_type(0x0806),arp() 2
in_port(2),eth(),eth_type(0x0806),arp() 1
EOF
check "flows with a software-only action" dpctl add-flows "$T_DIR/flows"
check_eq "dump-flows -m: offloaded:partial, dp:ovs" 2 "$(dpctl dump-flows -m | grep -c 'offloaded:partial, dp:ovs')"
check_eq "dump-flows type=partially-offloaded" 2 "$(dpctl dump-flows type=partially-offloaded | wc -l)"
check_eq "dump-flows type=offloaded (the ARP flows)" 2 "$(dpctl dump-flows type=offloaded | wc -l)"
# OVS 3.1's flow_passes_type_filter: a partial flow is offloaded (dp:ovs), never non-offloaded.
check_eq "dump-flows type=non-offloaded (none: partial flows count as offloaded)" 0 "$(dpctl dump-flows type=non-offloaded | wc -l)"
check_eq "dump-flows type=offloaded,partially-offloaded" 4 "$(dpctl dump-flows type=offloaded,partially-offloaded | wc -l)"
check_eq "dump-flows type=ovs (dp:ovs: the partial flows)" 2 "$(dpctl dump-flows type=ovs | wc -l)"
check_eq "dump-flows type=tc,dpdk (no flow of those layers)" 0 "$(dpctl dump-flows type=tc,dpdk | wc -l)"
check_match "dump-flows type=bogus: OVS's message" 'Failed to parse type \(bogus\) \(Invalid argument\)' \
    "$(dpctl dump-flows type=offloaded,bogus 2>&1)"
check_match "add-flow -v says partially" 'offloaded partially' \
    "$(dpctl add-flow -v 'in_port(1),eth(),eth_type(0x86dd),ipv6(frag=no)' 'userspace(pid=0)')"
marks_occ() {
    devlink resource show -j | python3 -c 'import json,sys; print([r for r in json.load(sys.stdin)["resources"]["esw0"] if r["name"]=="marks"][0]["occ"])'
}
check_eq "devlink marks resource counts them" 3 "$(marks_occ)"
check_match "show: partial flows" 'partial offload: on, flows: 3' "$(dpctl show)"
check "ping VF0 -> VF1 through partial flows" t_ping vm0 198.19.0.2 20
offload_counter() {   # PORT FIELD: rx_offload_* of a representor from `show -j`
    dpctl show -j | python3 -c '
import json, sys
for p in json.load(sys.stdin)["ports"]:
    if p["name"] == sys.argv[1]: print(p[sys.argv[2]])' "$1" "$2"
}
check_ge "pf0vf0 rx_offload_partial" 20 "$(offload_counter pf0vf0 rx_offload_partial)"
check_ge "pf0vf1 rx_offload_partial (the replies)" 20 "$(offload_counter pf0vf1 rx_offload_partial)"
check_ge "ARP counted as rx_offload_full" 1 "$(( $(offload_counter pf0vf0 rx_offload_full) + $(offload_counter pf0vf1 rx_offload_full) ))"
check_eq "no stale marks" 0 "$(dpctl show -j | python3 -c 'import json,sys; print(json.load(sys.stdin)["stale_marks"])')"
pk=$(dpctl dump-flows | grep 'in_port(1),eth(),eth_type(0x0800)' | grep -o 'packets:[0-9]*' | cut -d: -f2)
check_eq "the flow counts each packet once (software only)" 20 "$pk"

# trace: the hardware hit marks, the software stage runs the flow.
request="eth(src=02:00:00:00:00:01,dst=02:00:00:00:00:02),eth_type(0x0800),ipv4(src=198.19.0.1,dst=198.19.0.2,proto=1,ttl=64),icmp(type=8,code=0)"
dpctl trace -j pf0vf0 "$request" >"$T_DIR/trace.json"
field() { "$PY" -c 'import json,sys; j=json.load(sys.stdin); exec("print(j" + sys.argv[1] + ")")' "$1"; }
check_eq "trace: hardware hit" hit "$(field '["hardware"]["result"]' <"$T_DIR/trace.json")"
check_match "trace: the mark names the flow" '^0x[0-9a-f]+ names ufid:' "$(field '["hardware"]["mark"]' <"$T_DIR/trace.json")"
check_match "trace: software runs trunc and outputs" 'trunc\(2000\),pf0vf1' "$(field '["software"]["actions"]' <"$T_DIR/trace.json")"

# 2. Off: the flows go to software, the traffic still flows, no more marks.
check "set-partial-offload off" dpctl set-partial-offload off
check_eq "no partial flows when off" 0 "$(dpctl dump-flows -m | grep -c 'offloaded:partial')"
check_match "reason shown" 'not offloaded: partial offload is off' "$(dpctl dump-flows -m)"
check_eq "marks given back" 0 "$(marks_occ)"
before=$(offload_counter pf0vf0 rx_offload_partial)
check "ping through software" t_ping vm0 198.19.0.2 5
check_eq "no partial hits when off" "$before" "$(offload_counter pf0vf0 rx_offload_partial)"
check "set-partial-offload on" dpctl set-partial-offload on
check_eq "partial again" 3 "$(dpctl dump-flows type=partially-offloaded | wc -l)"

# 3. Churn under traffic: four partial flows with four masks, each rewriting the UDP
# source port to 5000 + 100 * flow + version; flows are replaced (new version) and
# deleted and re-added while vm0 sends frames whose payload names their flow.
dpctl del-flows
dpctl add-flows "$T_DIR/flows"
dpctl del-flow 'in_port(1),eth(),eth_type(0x0800),ipv4(frag=no)'
VM1MAC=$(t_in vm1 cat /sys/class/net/esw0v1/address)
match() {   # FLOW: a match with a mask of its own
    case $1 in
        1) echo "in_port(1),eth(),eth_type(0x0800),ipv4(proto=17,frag=no),udp(dst=1001)" ;;
        2) echo "in_port(1),eth(),eth_type(0x0800),ipv4(src=198.19.0.1,proto=17,frag=no),udp(dst=1002)" ;;
        3) echo "in_port(1),eth(dst=$VM1MAC),eth_type(0x0800),ipv4(proto=17,frag=no),udp(dst=1003)" ;;
        4) echo "in_port(1),eth(),eth_type(0x0800),ipv4(dst=198.19.0.2,proto=17,frag=no),udp(dst=1004)" ;;
    esac
}
actions() { echo "set(udp(src=$((5000 + 100 * $1 + $2)),dst=$((1000 + $1)))),trunc(1400),2"; }
declare -A version
for i in 1 2 3 4; do version[$i]=0; dpctl add-flow "$(match $i)" "$(actions $i 0)"; done
check_eq "four partial flows" 4 "$(dpctl dump-flows type=partially-offloaded | grep -c 'udp(')"
check_eq "four masks in the datapath or more" 1 "$(( $(dpctl show | awk '/masks:/{print $3}' | cut -d: -f2) >= 4 ))"

cat >"$T_DIR/send.py" <<'EOF'
import sys, time, logging
logging.getLogger("scapy").setLevel(logging.ERROR)
from scapy.all import Ether, IP, UDP, Raw, conf
dst, seconds = sys.argv[1], float(sys.argv[2])
s = conf.L2socket(iface="esw0v0")
frames = [bytes(Ether(dst=dst) / IP(src="198.19.0.1", dst="198.19.0.2") / UDP(sport=4000, dport=1000 + i) /
                Raw(b"F%d:" % i + b"x" * 40)) for i in (1, 2, 3, 4)]
# About 4000 frames a second: enough to race every change, few enough to check quickly.
end, n = time.time() + seconds, 0
while time.time() < end:
    for f in frames:
        s.send(f)
    n += 4
    time.sleep(0.001)
print(n)
EOF
cat >"$T_DIR/check.py" <<'EOF'
import sys, logging
logging.getLogger("scapy").setLevel(logging.ERROR)
from scapy.all import rdpcap, UDP, Raw
pcap, sent = sys.argv[1], int(sys.argv[2])
allowed = {int(a.split("=")[0]): {int(v) for v in a.split("=")[1].split(",")} for a in sys.argv[3:]}
got = {i: 0 for i in allowed}
wrong = []
for p in rdpcap(pcap):
    if UDP not in p or Raw not in p or not bytes(p[Raw]).startswith(b"F"):
        continue
    flow = int(bytes(p[Raw])[1:2])
    got[flow] += 1
    if p[UDP].dport != 1000 + flow or p[UDP].sport not in allowed[flow]:
        wrong.append((flow, p[UDP].sport, p[UDP].dport))
print("received per flow:", got, "of", sent, "sent")
print(("ok" if not wrong else "FAIL") + " no packet ran another flow's actions (%d wrong%s)" % (len(wrong), ": %s" % wrong[:5] if wrong else ""))
print(("ok" if sum(got.values()) >= sent // 2 else "FAIL") + " most packets delivered under churn (%d of %d)" % (sum(got.values()), sent))
EOF
t_pcap vm1 esw0v1 "udp"
R1=$PCAP
t_in vm0 "$PY" "$T_DIR/send.py" "$VM1MAC" 4.5 >"$T_DIR/sent" 2>"$T_DIR/send.err" &
SENDER=$!
sleep 0.5
end=$(( $(date +%s) + 4 ))
round=0
while [ "$(date +%s)" -lt "$end" ]; do
    round=$((round + 1))
    k=$(( round % 4 + 1 )); j=$(( (round + 2) % 4 + 1 ))
    version[$k]=$(( version[$k] + 1 ))
    dpctl mod-flow "$(match $k)" "$(actions $k ${version[$k]})"
    dpctl del-flow "$(match $j)"
    dpctl add-flow "$(match $j)" "$(actions $j ${version[$j]})"
done
wait "$SENDER"
sleep 0.3
PCAP=$R1
t_pcap_count >/dev/null
t_log "churn: $round rounds, $(cat "$T_DIR/sent") frames sent"
allowed=()
for i in 1 2 3 4; do
    vs=$(seq -s, $((5000 + 100 * i)) $((5000 + 100 * i + version[$i])))
    allowed+=("$i=$vs")
done
check_ge "churn rounds" 5 "$round"
run_py_checks "$PY" "$T_DIR/check.py" "${PCAP#*:}" "$(cat "$T_DIR/sent")" "${allowed[@]}"
check_eq "still four partial flows" 4 "$(dpctl dump-flows type=partially-offloaded | grep -c 'udp(')"
check_ge "packets reached flows by mark during the churn" 100 "$(offload_counter pf0vf0 rx_offload_partial)"
t_log "stale marks (classified instead): $(dpctl show -j | python3 -c 'import json,sys; print(json.load(sys.stdin)["stale_marks"])')"
dpctl del-flows
check_eq "every mark given back" 0 "$(marks_occ)"
