#!/usr/bin/env bash
# test-differential.sh — esw's software datapath against Open vSwitch's userspace
# datapath, packet for packet.
#
# Two identical topologies, each in namespaces of this test (eswt-df*):
#
#   eswt-dfe   eswd (--vfs 0, uplink up0) whose datapath esw@esw0 has the veth
#              ends d1..d4 as netdev vports 2..5 (explicit port_no)
#   eswt-dfet  their peers t1..t4 (and up0's peer)
#   eswt-dfo   a private ovs-vswitchd (userspace datapath, netdev@ovs-netdev) with
#              d1..d4 as datapath ports 2..5
#   eswt-dfot  their peers t1..t4
#
# The same flow set (tests/odp flow syntax, explicit ufids) goes into both with
# `esw-dpctl add-flows` and `ovs-appctl dpctl/add-flows`; the same crafted frames
# (scapy) go into t1..t4 of both; every frame coming out of any tN is captured
# (AF_PACKET, VLAN tags restored from PACKET_AUXDATA as libpcap does) and the two
# sides are compared byte for byte, per input frame and output port, order-
# insensitive. Every frame carries a tag ("EDIFFnn") so noise cannot interfere
# (IPv6 is also disabled in all four namespaces, so there is none). Afterwards both
# datapaths must dump the same flows (match and actions text) with the same
# packet, byte and TCP-flag counters.
#
# The topology and how OVS is made to keep exactly the hand-made flows (revalidators
# paused, flow-limit=0, vlan-limit=0): tests/differential-lib.sh.
#
# Where OVS's userspace datapath is known to differ from the kernel datapath, the
# frame says so ("ovs_fix" in gen.py) and esw is held to the kernel's behaviour.
#
# Needs root, openvswitch-switch (ovs-vswitchd, ovsdb-server, ovsdb-tool, ovs-vsctl,
# ovs-appctl) and python3-scapy for /usr/bin/python3; fails, never skips, without
# them. Everything (daemons, namespaces) is torn down on any exit.

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
. "$T_ROOT/tests/differential-lib.sh"

T_START=$(date +%s%N)
PORTS=("${DIFF_PORTS[@]}")   # datapath port numbers of d1..d4 on both sides

diff_require

# --- helpers (python) -------------------------------------------------------------

# gen.py OUT: the input frames, as JSON [{id, port (1-4), desc, expect, hex}].
# `expect` is how many frames the frame should produce in all (a sanity check that
# the comparison is not vacuous: both sides dropping everything would "agree").
cat > "$T_DIR/gen.py" <<'EOF'
import json, sys, logging
logging.getLogger("scapy").setLevel(logging.ERROR)
from scapy.all import (Ether, Dot1Q, Dot1AD, IP, IPv6, TCP, UDP, ICMP, ARP, Raw, ICMPv6EchoRequest,
                       IPv6ExtHdrHopByHop, IPOption_Router_Alert, in4_chksum)
from scapy.contrib.mpls import MPLS

M1, M2 = "02:00:00:00:01:01", "02:00:00:00:02:02"
A1, A2 = "198.18.0.1", "198.18.0.2"
S1, S2 = "2001:2::1", "2001:2::2"
frames = []

def tag(n, size=0, pre=0):
    t = b"\xee" * pre + b"EDIFF%02d" % n
    return t + bytes((n * 7 + i) & 0xff for i in range(max(0, size - len(t))))

def add(port, desc, expect, pkt, ovs_fix=None):
    n = len(frames) + 1
    raw = bytes(pkt(n))
    frames.append({"id": n, "port": port, "desc": desc, "expect": expect, "hex": raw.hex()})
    if ovs_fix:
        frames[-1]["ovs_fix"] = ovs_fix

def eth(**kw):
    return Ether(src=M1, dst=M2, **kw)

def ip(**kw):
    return IP(src=A1, dst=A2, id=0x4242, **kw)

add(1, "TCP dst 80: set eth, masked ipv4 src/dst, tcp ports", 1,
    lambda n: eth()/ip()/TCP(sport=40000, dport=80, flags="PA", seq=1, ack=1)/tag(n, 20))
add(1, "TCP dst 80 with a bad TCP checksum (incremental update keeps it bad)", 1,
    lambda n: eth()/ip()/TCP(sport=40000, dport=80, flags="PA", seq=2, ack=1, chksum=0x1234)/tag(n, 20))
add(1, "UDP dst 53, ECN bits set: out, DSCP/ttl/udp dst, out, eth dst, out", 3,
    lambda n: eth()/ip(tos=0x03)/UDP(sport=33333, dport=53)/tag(n, 24))
add(1, "ICMP echo: set ipv4 src, set icmp type", 1,
    lambda n: eth()/ip()/ICMP(type=8, id=7, seq=1)/tag(n, 32))
add(1, "ARP request: set arp sip/tha, out, set eth src, out", 2,
    lambda n: Ether(src=M1, dst="ff:ff:ff:ff:ff:ff")/ARP(op=1, hwsrc=M1, psrc=A1, pdst=A2)/tag(n))
add(1, "IPv6/TCP dst 22: set ipv6 src/hlimit/tclass, tcp dst", 1,
    lambda n: eth()/IPv6(src=S1, dst=S2, tc=0, fl=0x12345, hlim=64)/TCP(sport=40001, dport=22, flags="S")/tag(n, 16))
add(1, "IPv6/UDP dst 547: set ipv6 dst/label, udp src", 1,
    lambda n: eth()/IPv6(src=S1, dst=S2, fl=0x54321, hlim=3)/UDP(sport=546, dport=547)/tag(n, 16))
add(2, "UDP dst 4000 from port 3: push 802.1Q, out, push 802.1ad, out, pop, pop, out", 3,
    lambda n: eth()/ip()/UDP(sport=1234, dport=4000)/tag(n, 16))
# Tagged input: on receive the kernel moves the outer tag of a frame into skb
# metadata (skb_vlan_untag), so an AF_PACKET reader sees the frame untagged unless it
# puts the tag back from PACKET_AUXDATA (OVS's netdev-linux does).
add(1, "802.1Q vid 10 pcp 5 UDP: pop_vlan", 1,
    lambda n: eth()/Dot1Q(vlan=10, prio=5)/ip()/UDP(sport=1234, dport=5000)/tag(n, 16))
add(1, "802.1Q vid 11 UDP: no flow", 0,
    lambda n: eth()/Dot1Q(vlan=11)/ip()/UDP(sport=1234, dport=5000)/tag(n, 16))
add(1, "802.1ad vid 300 / 802.1Q vid 30 UDP: pop, out, pop, set ttl, out", 2,
    lambda n: eth()/Dot1AD(vlan=300)/Dot1Q(vlan=30)/ip()/UDP(sport=1234, dport=5001)/tag(n, 16))
add(1, "UDP dst 9: drop action", 0,
    lambda n: eth()/ip()/UDP(sport=1234, dport=9)/tag(n, 16))
add(1, "TCP dst 8081 (masked dst 0x1f90/0xfff0): ttl, recirc(1), then 0x1f90/0xfff8 flow", 2,
    lambda n: eth()/ip()/TCP(sport=40002, dport=8081, flags="S")/tag(n, 16))
add(1, "TCP dst 8090: recirc(1), then the 0x1f98/0xfff8 flow", 1,
    lambda n: eth()/ip()/TCP(sport=40003, dport=8090, flags="S")/tag(n, 16))
add(1, "TCP dst 8100: outside the masked match, no flow", 0,
    lambda n: eth()/ip()/TCP(sport=40004, dport=8100, flags="S")/tag(n, 16))
add(1, "UDP dst 7000: clone(set eth/ipv4, out), sample 100%(set udp, out), out", 3,
    lambda n: eth()/ip()/UDP(sport=1234, dport=7000)/tag(n, 16))
add(1, "UDP dst 7100, short: check_pkt_len le branch", 1,
    lambda n: eth()/ip()/UDP(sport=1234, dport=7100)/tag(n, 16))
add(1, "UDP dst 7100, 300 bytes: check_pkt_len gt branch", 1,
    lambda n: eth()/ip()/UDP(sport=1234, dport=7100)/tag(n, 300 - 42))
add(1, "UDP dst 7200, 250 bytes: trunc(64), out, out", 2,
    lambda n: eth()/ip()/UDP(sport=1234, dport=7200)/tag(n, 250 - 42))
add(1, "UDP dst 7300: full (non-masked) set(ipv4)", 1,
    lambda n: eth()/ip(tos=0x22, ttl=31)/UDP(sport=1234, dport=7300)/tag(n, 16))
add(1, "UDP dst 7300, UDP checksum 0: set(ipv4) must leave it 0", 1,
    lambda n: eth()/ip()/UDP(sport=1234, dport=7300, chksum=0)/tag(n, 16))
add(1, "UDP dst 7300, bad IPv4 header checksum: set(ipv4) updates it incrementally", 1,
    lambda n: eth()/ip(chksum=0xbeef)/UDP(sport=1234, dport=7300)/tag(n, 16))
add(3, "UDP dst 7400 from port 4: set eth src, out to in_port, out", 2,
    lambda n: eth()/ip()/UDP(sport=1234, dport=7400)/tag(n, 16))
add(1, "UDP dst 7500: masked set of eth src, ipv4 dst/tos, udp dst", 1,
    lambda n: eth()/ip()/UDP(sport=1234, dport=7500)/tag(n, 16))
add(1, "MPLS label 2000 tc 3 over IPv4: masked set(mpls) label/ttl", 1,
    lambda n: Ether(src=M1, dst=M2, type=0x8847)/MPLS(label=2000, cos=3, s=1, ttl=60)/ip()/UDP(sport=1234, dport=5002)/tag(n, 16))
# OVS's userspace datapath takes the first bytes of a later fragment for a UDP
# header: packet_set_ipv4_addr() "updates the checksum" at payload offset 6 (frame
# offset 40). The kernel datapath leaves non-first fragments' payload alone
# (update_ip_l4_checksum() returns on a fragment offset), and so must esw: those two
# bytes of OVS's output are compared as the kernel would have them (= the input's).
add(1, "IPv4 later fragment (proto 17): set ipv4 src", 1,
    lambda n: eth()/ip(proto=17, frag=100)/Raw(tag(n, 40, pre=8)),
    ovs_fix={"offset": 40, "length": 2,
             "why": "OVS userspace rewrote 2 payload bytes of a later fragment as if they were a UDP checksum"})
add(1, "IPv4 first fragment UDP dst 7600: set ipv4 src, udp dst", 1,
    lambda n: eth()/ip(flags="MF")/UDP(sport=1234, dport=7600)/tag(n, 40))
add(1, "802.1Q vid 20 TCP: set eth src, ipv4 ttl, push 802.1Q", 1,
    lambda n: eth()/Dot1Q(vlan=20, prio=1)/ip()/TCP(sport=40005, dport=443, flags="A")/tag(n, 16))
add(1, "IPv6 hop-by-hop + TCP dst 22: set ipv6 src, tcp dst past the extension header", 1,
    lambda n: eth()/IPv6(src=S1, dst=S2)/IPv6ExtHdrHopByHop()/TCP(sport=40006, dport=22, flags="S")/tag(n, 16))
add(1, "UDP dst 7300 with IPv4 options (IHL 6): full set(ipv4)", 1,
    lambda n: eth()/ip(options=[IPOption_Router_Alert()])/UDP(sport=1234, dport=7300)/tag(n, 16))
add(1, "ICMPv6 echo: set ipv6 hlimit", 1,
    lambda n: eth()/IPv6(src=S1, dst=S2)/ICMPv6EchoRequest(id=1, seq=1)/tag(n, 16))
add(1, "eth_type 0x88b5: no flow", 0,
    lambda n: Ether(src=M1, dst=M2, type=0x88b5)/tag(n, 46))
add(1, "UDP dst 12345: no flow", 0,
    lambda n: eth()/ip()/UDP(sport=1234, dport=12345)/tag(n, 16))
add(2, "UDP dst 53 from port 3: no flow (in_port differs)", 0,
    lambda n: eth()/ip()/UDP(sport=33333, dport=53)/tag(n, 24))

# A UDP frame for the non-masked set(ipv4) flow whose rewritten checksum comes out
# as 0, which must go on the wire as 0xffff (0 means "no checksum"). The checksum
# is ~(S + sport) in ones' complement, so sport = the checksum computed with sport 0.
def udp_zero(n):
    body = tag(n, 16)
    def rewritten_csum(sport):
        out = IP(src="198.18.17.1", dst="198.18.17.2", tos=0, ttl=64, id=0x4242)/UDP(sport=sport, dport=7300, chksum=0)/body
        return in4_chksum(17, out[IP], bytes(out[UDP]))
    sport = rewritten_csum(0) or 0xffff
    assert rewritten_csum(sport) == 0, sport
    return eth()/ip()/UDP(sport=sport, dport=7300)/body
add(1, "UDP dst 7300 whose rewritten checksum is 0: must become 0xffff", 1, udp_zero)

json.dump(frames, open(sys.argv[1], "w"), indent=1)
EOF


# --- the flows --------------------------------------------------------------------
# KEY<TAB>ACTIONS; ports 2..5 are d1..d4 (t1..t4). Keys are complete (an ipv4 flow
# with proto 6 has a tcp() key, ...): OVS's userspace datapath wants a perfect fit.
FLOWS=(
"recirc_id(0),in_port(2),eth(),eth_type(0x0800),ipv4(proto=6,frag=no),tcp(dst=80)	set(eth(src=02:00:5e:00:00:01,dst=02:00:5e:00:00:02)),set(ipv4(src=198.18.1.1,dst=198.18.2.2)),set(tcp(src=1111,dst=8080)),3"
"recirc_id(0),in_port(2),eth(),eth_type(0x0800),ipv4(proto=17,frag=no),udp(dst=53)	3,set(ipv4(tos=0xb8/0xfc,ttl=9)),set(udp(dst=5353)),4,set(eth(dst=02:00:5e:00:00:99)),5"
"recirc_id(0),in_port(2),eth(),eth_type(0x0800),ipv4(proto=1,frag=no),icmp(type=8)	set(ipv4(src=198.18.3.3)),set(icmp(type=0,code=0)),4"
"recirc_id(0),in_port(2),eth(),eth_type(0x0806),arp(op=1)	set(arp(sip=198.18.4.4,tha=02:00:5e:00:00:44)),3,set(eth(src=02:00:5e:00:00:45)),5"
"recirc_id(0),in_port(2),eth(),eth_type(0x86dd),ipv6(proto=6,frag=no),tcp(dst=22)	set(ipv6(src=2001:2::99,tclass=0x20,hlimit=17)),set(tcp(dst=2222)),4"
"recirc_id(0),in_port(2),eth(),eth_type(0x86dd),ipv6(proto=17,frag=no),udp(dst=547)	set(ipv6(dst=2001:2::22,label=0xabcde)),set(udp(src=5460)),3"
"recirc_id(0),in_port(3),eth(),eth_type(0x0800),ipv4(proto=17,frag=no),udp(dst=4000)	push_vlan(vid=100,pcp=3),2,push_vlan(tpid=0x88a8,vid=200,pcp=5),4,pop_vlan,pop_vlan,5"
"recirc_id(0),in_port(2),eth(),eth_type(0x8100),vlan(vid=10),encap(eth_type(0x0800),ipv4(proto=17,frag=no),udp())	pop_vlan,3"
"recirc_id(0),in_port(2),eth(),eth_type(0x88a8),vlan(vid=300),encap(eth_type(0x8100),vlan(vid=30),encap(eth_type(0x0800),ipv4(frag=no)))	pop_vlan,4,pop_vlan,set(ipv4(ttl=1)),5"
"recirc_id(0),in_port(2),eth(),eth_type(0x0800),ipv4(proto=17,frag=no),udp(dst=9)	drop"
"recirc_id(0),in_port(2),eth(),eth_type(0x0800),ipv4(proto=6,frag=no),tcp(dst=0x1f90/0xfff0)	set(ipv4(ttl=33)),recirc(1)"
"recirc_id(0x1),in_port(2),eth(),eth_type(0x0800),ipv4(ttl=33,proto=6,frag=no),tcp(dst=0x1f90/0xfff8)	3,set(tcp(src=7)),5"
"recirc_id(0x1),in_port(2),eth(),eth_type(0x0800),ipv4(ttl=33,proto=6,frag=no),tcp(dst=0x1f98/0xfff8)	4"
"recirc_id(0),in_port(2),eth(),eth_type(0x0800),ipv4(proto=17,frag=no),udp(dst=7000)	clone(set(eth(dst=02:00:5e:00:00:77)),set(ipv4(dst=198.18.7.7)),4),sample(sample=100.0%,actions(set(udp(src=1)),5)),3"
"recirc_id(0),in_port(2),eth(),eth_type(0x0800),ipv4(proto=17,frag=no),udp(dst=7100)	check_pkt_len(size=200,gt(4),le(set(ipv4(ttl=2)),5))"
"recirc_id(0),in_port(2),eth(),eth_type(0x0800),ipv4(proto=17,frag=no),udp(dst=7200)	trunc(64),3,4"
"recirc_id(0),in_port(2),eth(),eth_type(0x0800),ipv4(proto=17,frag=no),udp(dst=7300)	set(ipv4(src=198.18.17.1,dst=198.18.17.2,proto=17,tos=0,ttl=64,frag=no)),3"
"recirc_id(0),in_port(4),eth(),eth_type(0x0800),ipv4(proto=17,frag=no),udp(dst=7400)	set(eth(src=02:00:5e:00:00:18)),4,2"
"recirc_id(0),in_port(2),eth(),eth_type(0x0800),ipv4(proto=17,frag=no),udp(dst=7500)	set(eth(src=0a:00:00:00:00:00/0f:00:00:00:00:00)),set(ipv4(dst=198.18.99.0/255.255.255.0,tos=0x3/0x3)),set(udp(dst=0x1d00/0xff00)),3"
"recirc_id(0),in_port(2),eth(),eth_type(0x8847),mpls(label=2000,tc=3,ttl=60,bos=1)	set(mpls(label=2001,ttl=59)),4"
"recirc_id(0),in_port(2),eth(),eth_type(0x0800),ipv4(proto=17,frag=later)	set(ipv4(src=198.18.21.1)),3"
"recirc_id(0),in_port(2),eth(),eth_type(0x0800),ipv4(proto=17,frag=first),udp(dst=7600)	set(ipv4(src=198.18.21.2)),set(udp(dst=7601)),3"
"recirc_id(0),in_port(2),eth(),eth_type(0x8100),vlan(vid=20),encap(eth_type(0x0800),ipv4(proto=6,frag=no),tcp())	set(eth(src=02:00:5e:00:00:22)),set(ipv4(ttl=3)),push_vlan(vid=21,pcp=2),4"
"recirc_id(0),in_port(2),eth(),eth_type(0x86dd),ipv6(proto=58,frag=no),icmpv6(type=128)	set(ipv6(hlimit=1)),3"
)
diff_flows_file "$T_DIR/flows.txt" dd1ff000-0000-4000-8000- "${FLOWS[@]}"
NFLOWS=${#FLOWS[@]}

"$PY" "$T_DIR/gen.py" "$T_DIR/frames.json" || { t_fail "cannot craft the input frames"; exit 1; }
NFRAMES=$("$PY" -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$T_DIR/frames.json")
t_log "$NFLOWS flows, $NFRAMES input frames"

# --- topology, esw, Open vSwitch ---------------------------------------------------
diff_topology dfe dfet dfo dfot
diff_esw
diff_ovs

# --- flows ------------------------------------------------------------------------
check "esw: add-flows ($NFLOWS flows)" dpctl add-flows "$T_DIR/flows.txt"
check "ovs: dpctl/add-flows ($NFLOWS flows)" $APPCTL dpctl/add-flows "$T_DIR/flows.txt"
check_eq "esw: flow count" "$NFLOWS" "$(dpctl dump-flows | grep -c 'actions:')"
check_eq "ovs: flow count" "$NFLOWS" "$($APPCTL dpctl/dump-flows | grep -c 'actions:')"
check_eq "esw: no flow offloaded (netdev vports: software only)" 0 "$(dpctl dump-flows type=offloaded | grep -c 'actions:')"

# --- dump-flows filter= -----------------------------------------------------------
# The same flows (same ufids) on both sides: each filter must select the same ufids
# (a flow passes when it has the filter's value wherever both match), and a filter
# OVS refuses must be refused with its words. Not compared: VLAN filters against the
# double-tagged flow (9), which OVS decodes under vswitchd's vlan-limit 1 (dl_vlan=300
# and dl_vlan_pcp=0 leave it out there; esw decodes both tags and keeps it).
selected_ufids() { grep -o '^ufid:[^,]*' | sort | tr '\n' ' '; }
for f in udp,udp_dst=53 tcp tcp,tcp_dst=80 tcp,tcp_dst=8080 tcp,tcp_dst=8088 in_port=3 'in_port(2) udp' ip,nw_ttl=33 \
    ipv6 dl_vlan=10 ip,ip_frag=later ip,ip_frag=first mpls,mpls_label=2000 icmp6,icmpv6_type=128 \
    arp,arp_op=1 recirc_id=1 ip,nw_src=198.18.1.1 ip,nw_tos=0 in_port=0 udp6,udp_dst=547 eth_type=0x8100 in_port=2 \
    dl_vlan=30 vlan_tci=0x0000 ip,ip_dscp=0 tcp,tcp_flags=0 ""; do
    esw_sel=$(dpctl dump-flows -m --no-names "filter=$f" | selected_ufids)
    ovs_sel=$($APPCTL dpctl/dump-flows -m --no-names "filter=$f" | selected_ufids)
    check_eq "dump-flows filter=$f: the same flows as OVS ($(wc -w <<<"$ovs_sel"))" "$ovs_sel" "$esw_sel"
done
for f in udp,tp_dst=53 bogus=1 ip,nw_src=1.2.3 ip,ip udp,nw_src=1.1.1.1,ip_src=1.1.1.2 tcp,tp_dst=0x10000; do
    ovs_err=$($APPCTL dpctl/dump-flows "filter=$f" 2>&1 >/dev/null | grep -o 'Failed to parse filter (.*)')
    esw_err=$(dpctl dump-flows "filter=$f" 2>&1 >/dev/null | grep -o 'Failed to parse filter (.*)')
    check_eq "dump-flows filter=$f: OVS's message" "${ovs_err:-(none)}" "${esw_err:-(none)}"
done

# --- traffic ----------------------------------------------------------------------
diff_capture_start "$NS_ET" esw
diff_capture_start "$NS_OT" ovs
check "esw: send $NFRAMES frames" t_in "$NS_ET" "$PY" "$DIFF_TOOLS/diff-send.py" "$T_DIR/frames.json"
check "ovs: send $NFRAMES frames" t_in "$NS_OT" "$PY" "$DIFF_TOOLS/diff-send.py" "$T_DIR/frames.json"
# Both datapaths have read every frame (RX of ports 2..5; nothing else is sent on
# these links) ...
rx_done() { [ "$(dpctl show -s | diff_rx_total)" -ge "$NFRAMES" ] && [ "$($APPCTL dpctl/show -s | diff_rx_total)" -ge "$NFRAMES" ]; }
t_wait "both datapaths received $NFRAMES frames" 10 rx_done ||
    t_fail "datapaths did not receive all frames (esw $(dpctl show -s | diff_rx_total), ovs $($APPCTL dpctl/show -s | diff_rx_total))"
# ... and had time to send what they make of them.
sleep 0.5
diff_capture_stop esw
diff_capture_stop ovs

# --- comparison -------------------------------------------------------------------
run_py_checks "$PY" "$DIFF_TOOLS/diff-compare.py" "$T_DIR/frames.json" "$T_DIR/esw.json" "$T_DIR/ovs.json" "$(IFS=,; echo "${PORTS[*]}")"

dpctl dump-flows -m --no-names > "$T_DIR/esw-flows.txt"
$APPCTL dpctl/dump-flows -m --no-names > "$T_DIR/ovs-flows.txt"
check_eq "ovs: still exactly our $NFLOWS flows (no revalidator deletions, no miss megaflows)" "$NFLOWS/$NFLOWS" \
    "$(grep -c '^ufid:dd1ff000-' "$T_DIR/ovs-flows.txt")/$(grep -c 'actions:' "$T_DIR/ovs-flows.txt")"
run_py_checks "$PY" "$DIFF_TOOLS/diff-flowstats.py" "$T_DIR/esw-flows.txt" "$T_DIR/ovs-flows.txt"

# show -s: the byte counters as OVS prints them (print_human_size: " (1.2 KiB)" from
# 1 KiB up, nothing below; esw printed "(500 B)").
port_bytes() { awk '/^  port [2-5]:/ { p = 1; next } /^  port / { p = 0 } p && /bytes:/'; }
check_eq "show -s: RX/TX bytes lines of ports 2..5 as OVS's" "$($APPCTL dpctl/show -s | port_bytes)" "$(dpctl show -s | port_bytes)"

# -s/--statistics on mod-flow and del-flow (ovs-dpctl's options; esw refused them): the
# flow's counts, as OVS prints them. Flow 1 (TCP dst 80) carried two frames, flow 2
# (UDP dst 53) one.
flow_line() { sed -n "s/^add ufid:dd1ff000-0000-4000-8000-00000000000$1,/&/p" "$T_DIR/flows.txt" | cut -d' ' -f2-; }
counts() { grep -o '^packets:[0-9]*, bytes:[0-9]*'; }
read -r k1 a1 <<<"$(flow_line 1)"
read -r k2 _ <<<"$(flow_line 2)"
ovs_mod=$($APPCTL dpctl/mod-flow -s "$k1" "$a1" | counts)
check_match "ovs: mod-flow -s prints the flow's counts" '^packets:2, bytes:[0-9]+$' "$ovs_mod"
check_eq "esw: mod-flow -s prints OVS's counts" "$ovs_mod" "$(dpctl mod-flow -s "$k1" "$a1" | counts)"
check_eq "esw: mod-flow --statistics, options first" "$ovs_mod" "$(dpctl --statistics mod-flow "$k1" "$a1" | counts)"
ovs_del=$($APPCTL dpctl/del-flow -s "$k2" | counts)
check_match "ovs: del-flow -s prints the deleted flow's counts" '^packets:1, bytes:[0-9]+$' "$ovs_del"
check_eq "esw: del-flow -s prints OVS's counts" "$ovs_del" "$(dpctl del-flow -s "$k2" | counts)"
check_fails "esw: the flow is gone" dpctl get-flow "${k2%%,*}"
# --clear (the kernel datapath's; OVS's userspace one refuses it): -s prints the counts
# from before the clear, as the kernel's reply has them.
check_eq "esw: mod-flow --clear -s prints the counts before the clear" "$ovs_mod" "$(dpctl mod-flow --clear -s "$k1" "$a1" | counts)"
check_eq "esw: and the flow's counts are cleared" "packets:0, bytes:0" "$(dpctl get-flow "${k1%%,*}" | grep -o 'packets:[0-9]*, bytes:[0-9]*')"
check_eq "esw: add-flow -s prints a new flow's zero counts" "packets:0, bytes:0, used:never" "$(dpctl add-flow -s "$k2" 3)"

t_log "runtime $(( ($(date +%s%N) - T_START) / 1000000 )) ms"
