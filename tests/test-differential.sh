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
# How the OVS flows stay put: a datapath created with `dpctl/add-dp netdev@X` and no
# bridge is never polled (dpif_netdev_run only runs for the datapath a bridge
# uses: frames sent to its ports are not even looked up), so OVS runs one bridge
# br0 (datapath_type=netdev, fail-mode=secure, no OpenFlow flows) whose datapath
# netdev@ovs-netdev carries the ports; then
#   - `revalidator/pause` stops the revalidators, which otherwise delete the
#     hand-made datapath flows within a second (they have no ukeys), and
#   - other_config:flow-limit=0 makes every upcall return ENOSPC, so a miss drops
#     the packet without installing a megaflow (one would overlap our flows).
# Ports are added one at a time, so OVS numbers them 2..5 (0 is ovs-netdev, 1 is
# br0); the test checks that and gives esw's vports the same numbers explicitly.
# other_config:vlan-limit=0 makes OVS parse two VLAN headers in frames and flow
# keys, as the kernel datapath (which esw models) does; OVS's default is one. At the
# end the test checks that exactly our flows are still in OVS's datapath.
#
# Where OVS's userspace datapath is known to differ from the kernel datapath, the
# frame says so ("ovs_fix" in gen.py) and esw is held to the kernel's behaviour.
#
# Needs root, openvswitch-switch (ovs-vswitchd, ovsdb-server, ovsdb-tool, ovs-vsctl,
# ovs-appctl) and python3-scapy for /usr/bin/python3; fails, never skips, without
# them. Everything (daemons, namespaces) is torn down on any exit.

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PY=/usr/bin/python3
T_START=$(date +%s%N)
NS_E=dfe NS_ET=dfet NS_O=dfo NS_OT=dfot
PORTS=(2 3 4 5)          # datapath port numbers of d1..d4 on both sides

# --- prerequisites ----------------------------------------------------------------
for b in eswd esw-dpctl esw-devlink; do
    if [ ! -x "$ESW_BIN/$b" ]; then t_fail "no $b in $ESW_BIN (build it, or set ESW_BIN)"; exit 1; fi
done
for b in ovs-vswitchd ovsdb-server ovsdb-tool ovs-vsctl ovs-appctl; do
    if ! command -v "$b" >/dev/null 2>&1; then
        t_fail "$b not found: install openvswitch-switch (this test does not skip)"
        exit 1
    fi
done
OVS_SCHEMA=""
for s in /usr/share/openvswitch/vswitch.ovsschema /usr/local/share/openvswitch/vswitch.ovsschema; do
    [ -r "$s" ] && { OVS_SCHEMA=$s; break; }
done
[ -n "$OVS_SCHEMA" ] || { t_fail "vswitch.ovsschema not found (install openvswitch-switch)"; exit 1; }
if ! "$PY" -c 'import scapy.all' >/dev/null 2>&1; then
    t_fail "$PY cannot import scapy: install python3-scapy (this test does not skip)"
    exit 1
fi
OVS_VERSION=$(ovs-vswitchd --version | sed -n 's/.*(Open vSwitch) \([0-9][0-9.]*\).*/\1/p' | head -n 1)
t_log "Open vSwitch ${OVS_VERSION:-?}"

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


# send.py FRAMES: send every frame into t<port>, in order.
cat > "$T_DIR/send.py" <<'EOF'
import json, socket, sys, time
socks = {}
for f in json.load(open(sys.argv[1])):
    i = "t%d" % f["port"]
    if i not in socks:
        socks[i] = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
        socks[i].bind((i, 0))
    socks[i].send(bytes.fromhex(f["hex"]))
    time.sleep(0.005)
EOF

# compare.py FRAMES ESW OVS: per input frame and output port, the multisets of
# output frames must be equal. Prints "ok|FAIL <text>" lines, details indented.
cat > "$T_DIR/compare.py" <<'EOF'
import json, re, sys
from collections import defaultdict
frames = json.load(open(sys.argv[1]))
sides = {"esw": json.load(open(sys.argv[2])), "ovs": json.load(open(sys.argv[3]))}
port_of = {"t%d" % i: n for i, n in zip((1, 2, 3, 4), sys.argv[4].split(","))}
tagre = re.compile(rb"EDIFF(\d\d)")
outs = {s: defaultdict(lambda: defaultdict(list)) for s in sides}
for s, caps in sides.items():
    for iface, hx in caps:
        m = tagre.search(bytes.fromhex(hx))
        fid = int(m.group(1)) if m else 0          # 0: untagged (noise or cut)
        outs[s][fid][port_of[iface]].append(hx)
ids = [f["id"] for f in frames] + [0]
desc = {f["id"]: f for f in frames}
for fid in ids:
    f = desc.get(fid)
    name = "frame %02d (%s)" % (fid, f["desc"]) if f else "untagged frames"
    e, o = outs["esw"][fid], outs["ovs"][fid]
    fix = f.get("ovs_fix") if f else None
    notes = []
    if fix:
        a, b = 2 * fix["offset"], 2 * (fix["offset"] + fix["length"])
        for port in o:
            fixed = [hx[:a] + f["hex"][a:b] + hx[b:] for hx in o[port]]
            if fixed != o[port]:
                notes.append("  note: %s; compared with bytes %d-%d as the input has them"
                             % (fix["why"], fix["offset"], fix["offset"] + fix["length"] - 1))
                notes += ["    ovs raw: " + hx for hx in o[port]]
            o[port] = fixed
    problems = []
    for port in sorted(set(e) | set(o), key=int):
        if sorted(e[port]) != sorted(o[port]):
            problems.append("  output port %s: esw %d frame(s), ovs %d frame(s)" % (port, len(e[port]), len(o[port])))
            for hx in sorted(o[port]):
                if hx not in e[port]:
                    problems.append("    ovs only: " + hx)
            for hx in sorted(e[port]):
                if hx not in o[port]:
                    problems.append("    esw only: " + hx)
    n_e, n_o = sum(map(len, e.values())), sum(map(len, o.values()))
    differ = bool(problems)
    if f and n_o != f["expect"]:
        problems.append("  ovs produced %d frame(s), the test expects %d (test or OVS setup wrong?)" % (n_o, f["expect"]))
    if problems:
        print("FAIL %s: %s" % (name, "esw and ovs differ" if differ else "unexpected frame count"))
        if f:
            print("  input on port %s: %s" % (port_of["t%d" % f["port"]], f["hex"]))
        for p in problems:
            print(p)
    elif f:
        print("ok %s: %d frame(s) on ports [%s] identical" % (name, n_o, ",".join(sorted(o, key=int))))
    elif n_o:
        print("ok %d untagged frame(s), identical" % n_o)
    for line in notes:
        print(line)
EOF

# flowstats.py ESWDUMP OVSDUMP: `dump-flows -m --no-names` of both: the same ufids,
# each with the same match and actions text and the same packets, bytes and TCP flags.
cat > "$T_DIR/flowstats.py" <<'EOF'
import re, sys
def load(path):
    d = {}
    for line in open(path):
        m = re.match(r"ufid:([0-9a-f-]+), (.*?), packets:(\d+), bytes:(\d+), used:[^,]*(?:, flags:([^,]*))?, dp:\w+, actions:(.*?)(?:, dp-extra-info:.*)?$",
                     line.rstrip("\n"))
        if m:
            u, key, pk, by, fl, acts = m.groups()
            d[u] = {"text": key + ", actions:" + acts, "stats": (int(pk), int(by), fl or ""), "line": line.strip()}
    return d
e, o = load(sys.argv[1]), load(sys.argv[2])
for u in sorted(set(e) | set(o)):
    if u not in e:
        print("FAIL flow %s is only in ovs: %s" % (u, o[u]["line"])); continue
    if u not in o:
        print("FAIL flow %s is only in esw: %s" % (u, e[u]["line"])); continue
    bad = []
    if e[u]["text"] != o[u]["text"]:
        bad.append("match/actions text")
    if e[u]["stats"] != o[u]["stats"]:
        bad.append("counters (esw packets:%d bytes:%d flags:%s, ovs packets:%d bytes:%d flags:%s)"
                   % (e[u]["stats"] + o[u]["stats"]))
    if bad:
        print("FAIL flow %s: %s differ" % (u, " and ".join(bad)))
        print("  esw: " + e[u]["line"]); print("  ovs: " + o[u]["line"])
    else:
        print("ok flow %s: same text, packets:%d bytes:%d" % ((u,) + o[u]["stats"][:2]))
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
: > "$T_DIR/flows.txt"
for i in "${!FLOWS[@]}"; do
    printf 'add ufid:dd1ff000-0000-4000-8000-%012x,%s %s\n' "$((i + 1))" "${FLOWS[i]%%$'\t'*}" "${FLOWS[i]#*$'\t'}" >> "$T_DIR/flows.txt"
done
NFLOWS=${#FLOWS[@]}

"$PY" "$T_DIR/gen.py" "$T_DIR/frames.json" || { t_fail "cannot craft the input frames"; exit 1; }
NFRAMES=$("$PY" -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$T_DIR/frames.json")
t_log "$NFLOWS flows, $NFRAMES input frames"

# --- topology ---------------------------------------------------------------------
# Recorded for cleanup before they exist: a signal while t_ns runs must not leave one.
for n in "$NS_E" "$NS_ET" "$NS_O" "$NS_OT"; do T_NAMESPACES+=("$T_PREFIX$n"); done
t_ns "$NS_E" "$NS_ET" "$NS_O" "$NS_OT"
for n in "$NS_E" "$NS_ET" "$NS_O" "$NS_OT"; do
    # No IPv6 (router solicitations, MLD reports) on any of our links: no noise.
    t_in "$n" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
done
t_veth "$NS_E" up0 "$NS_ET" up0p
for i in 1 2 3 4; do
    t_veth "$NS_E" "d$i" "$NS_ET" "t$i"
    t_veth "$NS_O" "d$i" "$NS_OT" "t$i"
done

# --- esw --------------------------------------------------------------------------
t_eswd "$NS_E" --vfs 0 --uplink up0
for i in 1 2 3 4; do
    check "esw: add-if d$i,port_no=${PORTS[i - 1]}" dpctl add-if "d$i,port_no=${PORTS[i - 1]}"
done

# --- Open vSwitch -----------------------------------------------------------------
OVSD=$T_DIR/ovs
mkdir -p "$OVSD"
export OVS_RUNDIR=$OVSD OVS_DBDIR=$OVSD OVS_LOGDIR=$OVSD OVS_SYSCONFDIR=$OVSD
OVS_LOG="-vconsole:off -vsyslog:off -vfile:info"
VSCTL="ovs-vsctl --no-syslog --db=unix:$OVSD/db.sock --timeout=10"
APPCTL="ovs-appctl -t $OVSD/vsd.ctl"
ovsdb-tool create "$OVSD/conf.db" "$OVS_SCHEMA" >/dev/null || { t_fail "ovsdb-tool create failed"; exit 1; }
t_in "$NS_O" ovsdb-server "$OVSD/conf.db" --remote="punix:$OVSD/db.sock" --pidfile="$OVSD/ovsdb.pid" \
    --detach --no-chdir --log-file="$OVSD/ovsdb.log" --unixctl="$OVSD/ovsdb.ctl" $OVS_LOG 2>"$OVSD/ovsdb.err" \
    || { cat "$OVSD/ovsdb.err"; t_fail "ovsdb-server failed to start"; exit 1; }
T_PIDS+=("$(cat "$OVSD/ovsdb.pid")")
# flow-limit=0: a miss is dropped without installing a megaflow. vlan-limit=0: parse
# two VLAN headers (OVS_VLAN_MAX), as the kernel datapath and esw do (default: 1).
$VSCTL --no-wait init -- set Open_vSwitch . other_config:flow-limit=0 other_config:vlan-limit=0 || { t_fail "ovs-vsctl init failed"; exit 1; }
t_in "$NS_O" ovs-vswitchd "unix:$OVSD/db.sock" --pidfile="$OVSD/vsd.pid" --detach --no-chdir \
    --log-file="$OVSD/vsd.log" --unixctl="$OVSD/vsd.ctl" $OVS_LOG 2>"$OVSD/vsd.err" \
    || { cat "$OVSD/vsd.err"; t_fail "ovs-vswitchd failed to start"; exit 1; }
T_PIDS+=("$(cat "$OVSD/vsd.pid")")
$VSCTL add-br br0 -- set bridge br0 datapath_type=netdev fail-mode=secure other-config:disable-in-band=true \
    || { t_fail "ovs-vsctl add-br failed"; exit 1; }
for i in 1 2 3 4; do
    $VSCTL add-port br0 "d$i" || { t_fail "ovs-vsctl add-port d$i failed"; exit 1; }
done
OVS_SHOW=$($APPCTL dpctl/show 2>&1)
for i in 1 2 3 4; do
    check_match "ovs: d$i is datapath port ${PORTS[i - 1]}" "^  port ${PORTS[i - 1]}: d$i( |\$)" "$OVS_SHOW"
done
[ "$T_FAILED" -eq 0 ] || { t_log "OVS numbered the ports differently; the flows would not line up"; exit 1; }
check "ovs: revalidator/pause" $APPCTL revalidator/pause

# --- flows ------------------------------------------------------------------------
check "esw: add-flows ($NFLOWS flows)" dpctl add-flows "$T_DIR/flows.txt"
check "ovs: dpctl/add-flows ($NFLOWS flows)" $APPCTL dpctl/add-flows "$T_DIR/flows.txt"
check_eq "esw: flow count" "$NFLOWS" "$(dpctl dump-flows | grep -c 'actions:')"
check_eq "ovs: flow count" "$NFLOWS" "$($APPCTL dpctl/dump-flows | grep -c 'actions:')"
check_eq "esw: no flow offloaded (netdev vports: software only)" 0 "$(dpctl dump-flows type=offloaded | grep -c 'actions:')"

# --- traffic ----------------------------------------------------------------------
start_capture() {     # NS NAME: capture on t1..t4 of NS into $T_DIR/NAME.json
    rm -f "$T_DIR/$2.stop"
    t_in "$1" "$PY" "$T_ROOT/tests/tools/capture.py" "$T_DIR/$2.json" "$T_DIR/$2.stop" t1 t2 t3 t4 >"$T_DIR/$2.cap.out" 2>&1 &
    T_PIDS+=("$!")
    eval "CAP_$2=$!"
    t_wait "$2 capture ready" 10 grep -q ready "$T_DIR/$2.cap.out" || { cat "$T_DIR/$2.cap.out"; exit 1; }
}
stop_capture() {      # NAME
    local pid
    eval "pid=\$CAP_$1"
    touch "$T_DIR/$1.stop"
    wait "$pid" || { t_fail "$1 capture failed"; cat "$T_DIR/$1.cap.out"; }
}
start_capture "$NS_ET" esw
start_capture "$NS_OT" ovs
check "esw: send $NFRAMES frames" t_in "$NS_ET" "$PY" "$T_DIR/send.py" "$T_DIR/frames.json"
check "ovs: send $NFRAMES frames" t_in "$NS_OT" "$PY" "$T_DIR/send.py" "$T_DIR/frames.json"
# Both datapaths have read every frame (RX of ports 2..5; nothing else is sent on
# these links) ...
rx_total() { awk '/^  port [0-9]+: d[1-4]/ { p = 1; next } /^  port / { p = 0 } p && /RX packets:/ { sub(/.*RX packets:/, ""); n += $1 } END { print n + 0 }'; }
rx_done() { [ "$(dpctl show -s | rx_total)" -ge "$NFRAMES" ] && [ "$($APPCTL dpctl/show -s | rx_total)" -ge "$NFRAMES" ]; }
t_wait "both datapaths received $NFRAMES frames" 10 rx_done ||
    t_fail "datapaths did not receive all frames (esw $(dpctl show -s | rx_total), ovs $($APPCTL dpctl/show -s | rx_total))"
# ... and had time to send what they make of them.
sleep 0.5
stop_capture esw
stop_capture ovs

# --- comparison -------------------------------------------------------------------
run_py_checks "$PY" "$T_DIR/compare.py" "$T_DIR/frames.json" "$T_DIR/esw.json" "$T_DIR/ovs.json" "$(IFS=,; echo "${PORTS[*]}")"

dpctl dump-flows -m --no-names > "$T_DIR/esw-flows.txt"
$APPCTL dpctl/dump-flows -m --no-names > "$T_DIR/ovs-flows.txt"
check_eq "ovs: still exactly our $NFLOWS flows (no revalidator deletions, no miss megaflows)" "$NFLOWS/$NFLOWS" \
    "$(grep -c '^ufid:dd1ff000-' "$T_DIR/ovs-flows.txt")/$(grep -c 'actions:' "$T_DIR/ovs-flows.txt")"
run_py_checks "$PY" "$T_DIR/flowstats.py" "$T_DIR/esw-flows.txt" "$T_DIR/ovs-flows.txt"

t_log "runtime $(( ($(date +%s%N) - T_START) / 1000000 )) ms"
