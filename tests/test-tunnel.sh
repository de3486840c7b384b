#!/usr/bin/env bash
# VXLAN against the kernel's own vxlan device: offloaded encap/decap, the tunnel
# tracker following neighbour and route changes, keepalive, skip_hw, MTU and PMTU.
. "$(dirname "$0")/lib.sh"

t_topology 1 --mode switchdev
t_vxlan_remote
H="${T_PREFIX}host"
# Short neighbour timers from the start (the kernel arms a REACHABLE timer with the
# reachable time in force when the entry becomes REACHABLE), for the keepalive check.
# Reachable time (1.5-4.5 s) stays above the probe delay (1 s): otherwise the kernel's
# own probe replies keep an idle entry cycling through DELAY and it never goes STALE.
t_in host sysctl -qw net.ipv4.neigh.p0.base_reachable_time_ms=3000 net.ipv4.neigh.p0.delay_first_probe_time=1

dpctl add-if pf0vf0
dpctl add-if vxlan_sys_4789,type=vxlan
t_vxlan_flows "$T_DIR/flows"
check "add encap and decap flows" dpctl add-flows "$T_DIR/flows"

offloaded_count() { dpctl dump-flows -m | grep -c 'offloaded:yes'; }
tunnel_mac() { dpctl dump-tunnels -j | /usr/bin/python3 -c '
import json, sys
e = [x for x in json.load(sys.stdin)["encap"] if x.get("in_hardware")]
print(e[0]["lladdr"] if e else "none")'; }

# The neighbour is resolved on demand (the tracker asks the kernel), then flows go to hardware.
t_wait "all four flows offloaded" 5 bash -c "[ \$(dpctl dump-flows -m | grep -c 'offloaded:yes') -eq 4 ]"
check_eq "four flows offloaded after neighbour resolution" 4 "$(offloaded_count)"
check_match "encap entry valid" '198\.18\.0\.2 +4789 +198\.18\.0\.1 +p0 +198\.18\.0\.2 .* valid' "$(dpctl dump-tunnels)"

# Traffic in hardware: representors see none of it, hardware counters rise.
t_pcap host pf0vf0 "icmp or tcp"
P0=$PCAP
check "ping VF -> remote overlay (offloaded)" t_ping vm0 198.19.0.3 5
mbps=$(t_iperf vm0 remote 198.19.0.3 2)
check_ge "iperf3 VF -> remote over offloaded VXLAN (Mbit/s)" 50 "$mbps"
mbps=$(t_iperf remote vm0 198.19.0.1 2)
check_ge "iperf3 remote -> VF over offloaded VXLAN (Mbit/s)" 50 "$mbps"
PCAP=$P0
check_eq "pf0vf0 saw none of the offloaded traffic" 0 "$(t_pcap_count 'icmp or tcp')"
sleep 1.2
hw=$(dpctl dump-flows | grep 'ipv4(frag=no)' | grep -o 'packets:[0-9]*' | cut -d: -f2 | sort -n | head -1)
check_ge "hardware counters of encap and decap flows rose" 100 "$hw"
check_match "offloaded flows show dp:esw" 'offloaded:yes, dp:esw' "$(dpctl dump-flows -m)"

# Hardware decap takes only what the host's stack would: VXLAN frames addressed to p0's
# MAC, with a good outer IPv4 checksum and a UDP length that is the IP payload's. The
# others go up p0 as misses and the kernel drops them; a good frame reaches the VM.
cat > "$T_DIR/badvx.py" <<'PYEOF'
import sys, logging
logging.getLogger("scapy").setLevel(logging.ERROR)
from scapy.all import Ether, IP, UDP, Raw, sendp
from scapy.layers.vxlan import VXLAN
p0mac, wiremac, vfmac = sys.argv[1:4]
def frame(tag, dst=p0mac, ipsum=None, udplen_extra=0, version=None):
    inner = (Ether(src="02:00:00:00:33:33", dst=vfmac) / IP(src="198.19.0.3", dst="198.19.0.1") /
             UDP(sport=5555, dport=7777) / Raw(tag.encode()))
    f = Ether(bytes(Ether(src=wiremac, dst=dst) / IP(src="198.18.0.2", dst="198.18.0.1", ttl=64, flags="DF") /
                    UDP(sport=49152, dport=4789, chksum=0) / VXLAN(vni=42, flags=0x08) / inner))
    if ipsum is not None:
        f[IP].chksum = ipsum
    if udplen_extra:
        f[UDP].len += udplen_extra
    if version is not None:   # the IP header's version nibble (checksum made for it)
        raw = bytearray(bytes(f)); raw[14] = (version << 4) | 5; raw[24:26] = b"\0\0"
        s = sum(int.from_bytes(raw[i:i + 2], "big") for i in range(14, 34, 2))
        while s > 0xffff: s = (s & 0xffff) + (s >> 16)
        raw[24:26] = (~s & 0xffff).to_bytes(2, "big")
        f = Ether(bytes(raw))
    return f
frames = [frame("ESWTN-OTHERMAC", dst="02:00:00:00:99:99"), frame("ESWTN-BADIPSUM", ipsum=0x1234),
          frame("ESWTN-BADUDPLEN", udplen_extra=8), frame("ESWTN-VERSIONSIX", version=6), frame("ESWTN-GOOD")]
sendp(frames, iface="wire0", verbose=False)
PYEOF
P0MAC=$(ip -n "$H" -o link show p0 | grep -o 'link/ether [0-9a-f:]*' | cut -d' ' -f2)
WIREMAC=$(ip -n "${T_PREFIX}remote" -o link show wire0 | grep -o 'link/ether [0-9a-f:]*' | cut -d' ' -f2)
VFMAC=$(ip -n "${T_PREFIX}vm0" -o link show esw0v0 | grep -o 'link/ether [0-9a-f:]*' | cut -d' ' -f2)
t_pcap vm0 esw0v0 "udp port 7777"
check "send crafted VXLAN frames from the wire" t_in remote /usr/bin/python3 "$T_DIR/badvx.py" "$P0MAC" "$WIREMAC" "$VFMAC"
t_pcap_wait "udp port 7777" 1 3
vmseen=$(tcpdump -nn -A -r "${PCAP#*:}" 2>/dev/null | grep -o 'ESWTN-[A-Z]*' | sort | tr '\n' ' ')
t_pcap_count >/dev/null
check_eq "only the well-formed VXLAN frame to p0's MAC reaches the VM ($vmseen)" "ESWTN-GOOD " "$vmseen"
check_eq "decap flows still offloaded" 4 "$(offloaded_count)"

# Neighbour change: the remote gets a new MAC; the host's neighbour is updated; the
# encap entry follows within 100 ms with no flow touched.
NEWMAC=02:00:00:00:aa:42
ip -n "${T_PREFIX}remote" link set wire0 address $NEWMAC
start=$(date +%s%N)
ip -n "$H" neigh replace 198.18.0.2 dev p0 lladdr $NEWMAC nud reachable
# Polled with the lightest client (no JSON, no python): the time includes its start-up.
until "$ESW_BIN/esw-dpctl" dump-tunnels | grep -q " $NEWMAC .* valid"; do
    [ $(( ($(date +%s%N) - start) / 1000000 )) -lt 2000 ] || break
done
elapsed=$(( ($(date +%s%N) - start) / 1000000 ))
check_eq "encap entry rewritten to the new MAC" "$NEWMAC" "$(tunnel_mac)"
if [ "$elapsed" -le 100 ]; then t_pass "encap entry followed in ${elapsed} ms (<= 100 ms, measured through the CLI)"; else t_fail "encap entry took ${elapsed} ms"; fi
check "ping resumes after the MAC change" t_ping vm0 198.19.0.3 3
check_eq "still four flows offloaded, none re-added" 4 "$(offloaded_count)"

# Route to the remote endpoint deleted: flows go to software with the reason; restored: back.
ip -n "$H" route del 198.18.0.0/24 dev p0
t_wait "flows leave hardware" 3 bash -c "! dpctl dump-flows -m | grep -q 'offloaded:yes'"
check_match "reason shown in dump-flows" 'dp:ovs.*not offloaded: no route to 198\.18\.0\.2' "$(dpctl dump-flows -m)"
check_match "reason shown in dump-tunnels" 'not offloaded: no route to 198\.18\.0\.2' "$(dpctl dump-tunnels)"
ip -n "$H" route add 198.18.0.0/24 dev p0 src 198.18.0.1
t_wait "flows back in hardware" 3 bash -c "[ \$(dpctl dump-flows -m | grep -c 'offloaded:yes') -eq 4 ]"
check_eq "re-offloaded after the route came back" 4 "$(offloaded_count)"
check "ping after route restore" t_ping vm0 198.19.0.3 3

# A route through a device that is not on the switch.
ip -n "$H" link add eswfx0 type veth peer name eswfx1
ip -n "$H" link set eswfx0 up
ip -n "$H" link set eswfx1 up
ip -n "$H" route add 198.18.0.2/32 dev eswfx0
t_wait "flows leave hardware (foreign route)" 3 bash -c "! dpctl dump-flows -m | grep -q 'offloaded:yes'"
check_match "foreign egress reason" 'route to 198\.18\.0\.2 via eswfx0 is not on this switch' "$(dpctl dump-flows -m)"
ip -n "$H" route del 198.18.0.2/32 dev eswfx0
t_wait "flows back in hardware (foreign route removed)" 3 bash -c "[ \$(dpctl dump-flows -m | grep -c 'offloaded:yes') -eq 4 ]"

# The wire goes down: p0 loses carrier with the uplink (mlx5's uplink representor follows
# the port's carrier), the kernel flushes p0's neighbours and the tunnel flows leave
# hardware with a reason; the wire back: carrier, neighbour and hardware come back.
ip -n "${T_PREFIX}remote" link set wire0 down
t_wait "p0 loses carrier" 3 bash -c "ip -n $H link show p0 | grep -q NO-CARRIER"
check_match "p0 is NO-CARRIER with the wire down" 'NO-CARRIER' "$(ip -n "$H" link show p0)"
t_wait "encap flows leave hardware (wire down)" 5 bash -c "[ \$(dpctl dump-flows -m | grep -c 'offloaded:yes') -eq 2 ]"
check_eq "encap flows in software, decap flows stay (nothing arrives)" 2 "$(offloaded_count)"
check_match "reason shown with the wire down" 'dp:ovs.*not offloaded: p0 has no carrier' "$(dpctl dump-flows -m)"
check_eq "p0's neighbour flushed with the carrier" "" "$(ip -n "$H" neigh show 198.18.0.2 dev p0 | grep -v FAILED)"
ip -n "${T_PREFIX}remote" link set wire0 up
t_wait "p0 carrier back" 5 bash -c "ip -n $H link show p0 | grep -q LOWER_UP"
check_no_match "p0 has carrier with the wire up" 'NO-CARRIER' "$(ip -n "$H" link show p0)"
t_wait "flows back in hardware (wire up)" 10 bash -c "[ \$(dpctl dump-flows -m | grep -c 'offloaded:yes') -eq 4 ]"
check_eq "re-offloaded after the wire came back" 4 "$(offloaded_count)"
check "ping after the wire came back" t_ping vm0 198.19.0.3 3

# The uplink's own MTU changed: p0 follows (the port has one MTU); no echo back.
ip -n "$H" link set up0 mtu 1400
t_wait "p0 follows the uplink's MTU" 3 bash -c "ip -n $H link show p0 | grep -q 'mtu 1400'"
check_match "p0 MTU follows the uplink's" 'mtu 1400' "$(ip -n "$H" link show p0)"
ip -n "$H" link set up0 mtu 1500
t_wait "p0 back to 1500" 3 bash -c "ip -n $H link show p0 | grep -q 'mtu 1500'"
sleep 0.5
check_match "uplink stays 1500 (no echo from p0)" 'mtu 1500' "$(ip -n "$H" link show up0)"
check_match "p0 1500" 'mtu 1500' "$(ip -n "$H" link show p0)"

# Keepalive: with a short reachable time the kernel's entry would go STALE during an
# offloaded-only ping (the kernel never sees that traffic); with keepalive it stays valid.
neigh_states() {
    local out="" i
    for i in 1 2 3 4 5 6 7 8; do
        sleep 1
        out+="$(ip -n "$H" neigh show 198.18.0.2 dev p0 | awk '{print $NF}') "
    done
    echo "$out"
}
t_in vm0 ping -q -c 90 -i 0.1 198.19.0.3 >/dev/null 2>&1 &
pinger=$!
states=$(neigh_states); wait $pinger
check_no_match "keepalive: neighbour never STALE during offloaded traffic ($states)" 'STALE' "$states"
devlink dev param set esw0 name neigh_keepalive value false
t_in vm0 ping -q -c 90 -i 0.1 198.19.0.3 >/dev/null 2>&1 &
pinger=$!
states=$(neigh_states); wait $pinger
check_match "without keepalive the neighbour goes STALE ($states)" 'STALE' "$states"
devlink dev param set esw0 name neigh_keepalive value true

# MTU: the representor's MTU reaches the VF; an oversize DF packet gets the kernel
# vxlan's answer (fragmentation needed, through the tunnel port).
out=$(t_in vm0 ping -c 2 -M do -s 1472 -W 1 198.19.0.3 2>&1)
check_match "oversize DF packet: ICMP fragmentation needed with the tunnel MTU" 'Frag needed and DF set \(mtu = 1450\)|message too long, mtu=1450' "$out"
# The same for IPv6 inside: the kernel's vxlan answers with ICMPv6 Packet Too Big
# carrying the tunnel MTU (the encap rule is offloaded; too big after encapsulation, the
# frame goes to software, whose vxlan port answers).
t_in vm0 ip addr add 2001:db8:19::1/64 dev esw0v0 nodad
t_in remote ip addr add 2001:db8:19::3/64 dev vx42 nodad
DEC6='tunnel(tun_id=0x2a,src=198.18.0.2,dst=198.18.0.1,ttl=64,flags(+key)),in_port(2),eth(),eth_type(0x86dd),ipv6(frag=no)'
printf '%s\n' "in_port(1),eth(),eth_type(0x86dd),ipv6(frag=no) set(tunnel(tun_id=0x2a,dst=198.18.0.2,ttl=64,tp_dst=4789,flags(df|key))),2" \
    "$DEC6 1" > "$T_DIR/flows6"
check "add IPv6 encap and decap flows" dpctl add-flows "$T_DIR/flows6"
t_wait "IPv6 flows offloaded" 5 bash -c "[ \$(dpctl dump-flows -m | grep -c 'offloaded:yes') -eq 6 ]"
check "IPv6 ping VF -> remote overlay" t_in vm0 ping -6 -c 2 -i 0.2 -W 2 -q 2001:db8:19::3
out=$(t_in vm0 ping -6 -c 2 -s 1420 -W 1 2001:db8:19::3 2>&1)
check_match "oversize IPv6 packet (offloaded encap): Packet too big with the tunnel MTU" 'Packet too big: mtu=1450' "$out"
t_in vm0 ip -6 route flush cache >/dev/null 2>&1
ip -n "$H" link set pf0vf0 mtu 1450
t_wait "VF MTU follows the representor" 3 bash -c "ip -n ${T_PREFIX}vm0 link show esw0v0 | grep -q 'mtu 1450'"
check_match "VF MTU is 1450" 'mtu 1450' "$(ip -n "${T_PREFIX}vm0" link show esw0v0)"
check "full-size DF ping at the new MTU" t_in vm0 ping -c 2 -M do -s 1422 -W 2 198.19.0.3

# The encap table counts against the hardware resources: full, a new tunnel key is a
# visible reason, and the flow still works in software.
used=$(devlink resource show -j | /usr/bin/python3 -c 'import json,sys; print([r for r in json.load(sys.stdin)["resources"]["esw0"] if r["name"]=="encap"][0]["occ"])')
check "shrink the encap table to what is in use ($used)" devlink resource set esw0 path /encap size "$used"
check "reload" devlink dev reload esw0
dpctl add-flow 'in_port(1),eth(),eth_type(0x0800),ipv4(dst=198.19.0.77,frag=no)' \
    'set(tunnel(tun_id=0x2b,dst=198.18.0.2,ttl=64,tp_dst=4789,flags(df|key))),2'
check_match "full encap table: reason in dump-flows" 'dp:ovs.*not offloaded: no space in encap table' "$(dpctl dump-flows -m | grep 'dst=198.19.0.77')"
check_match "and in dump-tunnels" 'not offloaded: no space in encap table' "$(dpctl dump-tunnels)"

# The same flows under skip_hw: software encap/decap in the daemon.
dpctl del-flows
dpctl set-policy skip_hw
check "re-add flows under skip_hw" dpctl add-flows "$T_DIR/flows"
check_eq "no flow offloaded under skip_hw" 0 "$(offloaded_count)"
check_match "skip_hw flows are dp:ovs" 'dp:ovs' "$(dpctl dump-flows -m)"
check "ping through software VXLAN" t_ping vm0 198.19.0.3 5
# A tunnel key with csum gets the outer UDP checksum the kernel's vxlan computes (it
# went out as zero, "no checksum", from the software path, the only one such flows take).
sed 's/flags(df|key)/flags(csum|key)/' "$T_DIR/flows" > "$T_DIR/flows-csum"
dpctl del-flows
check "add encap flows with csum" dpctl add-flows "$T_DIR/flows-csum"
t_pcap remote wire0 "udp port 4789 and src host 198.18.0.1"
check "ping through software VXLAN with UDP checksums" t_ping vm0 198.19.0.3 3
t_pcap_count >/dev/null
sums=$(tcpdump -nn -vv -r "${PCAP#*:}" 2>/dev/null | grep -o '4789: \[[a-z ]*' | sort | uniq -c)
check_match "outer UDP checksums filled in and correct" 'udp sum ok' "$sums"
check_no_match "no frame without an outer UDP checksum" 'no cksum|bad' "$sums"
# The software path's tunnel key has the csum flag of a frame with an outer UDP checksum
# (the kernel's udp_tun_rx_dst; vx42 sends them), as the hardware parser's key has: the
# vport's socket never sees the checksum, so the pipeline notes it for the vport. Before,
# a decap flow matching +csum took no frame in software, and one matching -csum (what an
# upcall from the software path led to) took them all there, while shown in hardware.
check_match "the remote sends outer UDP checksums" ' udpcsum' "$(ip -n "${T_PREFIX}remote" -d link show vx42)"
sed 's/flags(+key)/flags(-df+csum+key)/' "$T_DIR/flows" > "$T_DIR/flows-rxcsum"
dpctl del-flows
check "add decap flows matching +csum" dpctl add-flows "$T_DIR/flows-rxcsum"
check "ping through software VXLAN, decap flows matching +csum" t_ping vm0 198.19.0.3 3
# trace follows the software path there (its software stage gave the key flags(+key) only).
vxhex=$(/usr/bin/python3 - "$P0MAC" <<'PYEOF'
import sys, logging
logging.getLogger("scapy").setLevel(logging.ERROR)
from scapy.all import Ether, IP, UDP, Raw
from scapy.layers.vxlan import VXLAN
inner = Ether(src="02:00:00:00:33:33", dst="02:00:00:00:44:44") / IP(src="198.19.0.3", dst="198.19.0.1") / UDP(sport=5555, dport=7777) / Raw(b"x" * 10)
print(bytes(Ether(dst=sys.argv[1]) / IP(src="198.18.0.2", dst="198.18.0.1") / UDP(sport=49152, dport=4789) /
            VXLAN(vni=42, flags=0x08) / inner).hex())
PYEOF
)
check_match "trace: a VXLAN frame with a UDP checksum takes the +csum decap flow in software" \
    'verdict: software: representor pf0vf0' "$(dpctl trace up0 "$vxhex")"
dpctl del-flows
check "back to the flows without csum" dpctl add-flows "$T_DIR/flows"
# A frame too big for the representor's MTU is dropped alone and counted as a tx error
# of the vport, as the kernel datapath's ovs_vport_send does. sendmmsg stops at it: the
# frames queued after it in the batch were lost too, all counted as sent. A burst from
# the wire, every fourth frame over pf0vf0's MTU of 1400 once decapsulated.
cat > "$T_DIR/burst.py" <<'PYEOF'
import sys, socket, logging
logging.getLogger("scapy").setLevel(logging.ERROR)
from scapy.all import Ether, IP, UDP, Raw
from scapy.layers.vxlan import VXLAN
p0mac, vfmac = sys.argv[1:3]
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("wire0", 0))
frames = []
for i in range(400):
    pad = 1380 if i % 4 == 1 else 20
    inner = (Ether(src="02:00:00:00:33:33", dst=vfmac) / IP(src="198.19.0.3", dst="198.19.0.1") /
             UDP(sport=5555, dport=7777) / Raw(b"ESWB%03d" % i + b"x" * pad))
    frames.append(bytes(Ether(dst=p0mac) / IP(src="198.18.0.2", dst="198.18.0.1") /
                        UDP(sport=49152, dport=4789, chksum=0) / VXLAN(vni=42, flags=0x08) / inner))
for f in frames:
    s.send(f)
PYEOF
vport_tx_errors() { dpctl show -s | awk '/port [0-9]+: pf0vf0 /{p=1} p && /TX packets/{sub("errors:", "", $3); print $3; exit}'; }
ip -n "$H" link set pf0vf0 mtu 1400
t_wait "VF MTU 1400" 3 bash -c "ip -n ${T_PREFIX}vm0 link show esw0v0 | grep -q 'mtu 1400'"
errors_before=$(vport_tx_errors)
t_pcap vm0 esw0v0 "udp port 7777"
check "a burst of VXLAN frames from the wire" t_in remote /usr/bin/python3 "$T_DIR/burst.py" "$P0MAC" "$VFMAC"
t_pcap_wait "udp port 7777" 300 5
small=$(tcpdump -nn -A -r "${PCAP#*:}" 2>/dev/null | grep -o 'ESWB[0-9]*' | sort -u | wc -l)
t_pcap_count >/dev/null
check_eq "every frame within the VF's MTU reaches it (300 of the 400)" 300 "$small"
check_eq "the 100 over the MTU are the vport's tx errors" 100 "$(( $(vport_tx_errors) - errors_before ))"
ip -n "$H" link set pf0vf0 mtu 1500
check "add IPv6 flows under skip_hw" dpctl add-flows "$T_DIR/flows6"
ip -n "$H" link set pf0vf0 mtu 1500
t_wait "VF MTU back to 1500" 3 bash -c "ip -n ${T_PREFIX}vm0 link show esw0v0 | grep -q 'mtu 1500'"
t_in vm0 ip -6 route flush cache >/dev/null 2>&1
out=$(t_in vm0 ping -6 -c 2 -s 1420 -W 1 2001:db8:19::3 2>&1)
check_match "oversize IPv6 packet (software encap): Packet too big with the tunnel MTU" 'Packet too big: mtu=1450' "$out"
mbps=$(t_iperf vm0 remote 198.19.0.3 2)
check_ge "iperf3 VF -> remote through software VXLAN (Mbit/s)" 5 "$mbps"
mbps=$(t_iperf remote vm0 198.19.0.1 2)
check_ge "iperf3 remote -> VF through software VXLAN (Mbit/s)" 5 "$mbps"

# skip_sw refusals of encap flows carry the errno of what is missing: the route
# lookup's (ENETUNREACH, as mlx5 returns it), or EAGAIN for a neighbour being resolved
# (a transient state: the tracker asked the kernel to resolve it).
dpctl del-flows
dpctl set-policy skip_sw
ip -n "$H" route add 198.18.99.0/24 dev p0
encap_to() { dpctl add-flow 'in_port(1),eth(),eth_type(0x0800),ipv4(frag=no)' \
    "set(tunnel(tun_id=0x2a,dst=$1,ttl=64,tp_dst=4789,flags(df|key))),2" 2>&1; }
check_match "skip_sw, neighbour not resolved: EAGAIN" \
    'neighbour 198\.18\.99\.2 not resolved.*\(Resource temporarily unavailable\)' "$(encap_to 198.18.99.2)"
check_match "skip_sw, no route: ENETUNREACH" 'no route to 198\.18\.77\.2 \(Network is unreachable\)' "$(encap_to 198.18.77.2)"
# A tunnel source that is not local makes the kernel's lookup fail the same way: the
# reason names the source (it read "no route to 198.18.0.2", where there is one).
check_match "skip_sw, a source that is not local is named" 'no route to 198\.18\.0\.2 from 198\.18\.0\.9 \(Network is unreachable\)' \
    "$(dpctl add-flow 'in_port(1),eth(),eth_type(0x0800),ipv4(frag=no)' \
        'set(tunnel(tun_id=0x2a,src=198.18.0.9,dst=198.18.0.2,ttl=64,tp_dst=4789,flags(df|key))),2' 2>&1)"
ip -n "$H" route del 198.18.99.0/24 dev p0
dpctl set-policy none
