"""ct-frames.py PHASE1 ALL PHASE2 — the input frames of test-ct-differential.sh.

Writes JSON lists [{id, port (1-4: t1..t4), desc, expect, hex, snap?}]: PHASE1 the
frames before flush-conntrack, ALL every frame, PHASE2 those after it (with a
connection limit on zone 5). `expect` is how many frames OVS makes of each in all.
"""
import json, sys, logging
logging.getLogger("scapy").setLevel(logging.ERROR)
from scapy.all import (Ether, IP, IPv6, TCP, UDP, ICMP, ICMPv6DestUnreach, Raw, IPOption_Router_Alert,
                       IPv6ExtHdrHopByHop, ICMPv6EchoRequest, ICMPv6EchoReply)

M0, M1, MR, MX = "02:00:00:00:00:01", "02:00:00:00:00:02", "02:00:00:00:00:fe", "02:00:00:00:00:64"
VF0, VF1, EXT, SNAT = "198.18.0.1", "198.18.0.2", "198.18.100.1", "198.19.0.100"
S0, S1 = "2001:2::1", "2001:2::2"
P_VF0, P_VF1, P_UP = 1, 2, 4          # t1 (port 2), t2 (port 3), t4 (port 5)
frames = []
def add(port, desc, expect, pkt, snap=None, **extra):
    n = len(frames) + 1
    raw = bytes(pkt(n))
    f = {"id": n, "port": port, "desc": desc, "expect": expect, "hex": raw.hex()}
    if snap:
        f["snap"] = "%02d-%s" % (n, snap)
    f.update(extra)
    frames.append(f)
    return n
def data(n, size):
    return Raw(bytes((n * 11 + i) & 0xff for i in range(size)))
def v4(src, dst, n, **kw):                # the tag: IPv4 id 0xE000 + n
    return IP(src=src, dst=dst, id=0xE000 + n, **kw)
def v6(src, dst, n):                      # the tag: IPv6 flow label 0xE0000 + n
    return IPv6(src=src, dst=dst, fl=0xE0000 + n, hlim=64)
def a2b(n):  return Ether(src=M0, dst=M1) / v4(VF0, VF1, n)
def b2a(n):  return Ether(src=M1, dst=M0) / v4(VF1, VF0, n)
def a2b6(n): return Ether(src=M0, dst=M1) / v6(S0, S1, n)
def b2a6(n): return Ether(src=M1, dst=M0) / v6(S1, S0, n)
def up(src, n, dst=EXT): return Ether(src={VF0: M0, VF1: M1}[src], dst=MR) / v4(src, dst, n)
EXT2 = "198.18.101.1"
def down(n, dst=SNAT, src=EXT): return Ether(src=MX, dst=MR) / v4(src, dst, n)
VIP = "198.19.0.80"
LINUX_OPTS = [("MSS", 1460), ("SAckOK", b""), ("NOP", None), ("WScale", 7)]

# TCP A (zone 5, IPv4): VF0:40001 -> VF1:80, window scaling on both sides
a, b = 1000, 5000
add(P_VF0, "TCP A SYN VF0->VF1:80 (new, commit)", 1,
    lambda n: a2b(n) / TCP(sport=40001, dport=80, flags="S", seq=a, window=64240, options=LINUX_OPTS), snap="synsent")
add(P_VF0, "TCP A SYN retransmitted (still new: committed again)", 1,
    lambda n: a2b(n) / TCP(sport=40001, dport=80, flags="S", seq=a, window=64240, options=LINUX_OPTS))
add(P_VF1, "TCP A SYN-ACK (est)", 1,
    lambda n: b2a(n) / TCP(sport=80, dport=40001, flags="SA", seq=b, ack=a + 1, window=65160, options=LINUX_OPTS))
add(P_VF0, "TCP A ACK (est)", 1,
    lambda n: a2b(n) / TCP(sport=40001, dport=80, flags="A", seq=a + 1, ack=b + 1, window=502), snap="established")
add(P_VF0, "TCP A data VF0->VF1, 100 bytes", 1,
    lambda n: a2b(n) / TCP(sport=40001, dport=80, flags="PA", seq=a + 1, ack=b + 1, window=502) / data(n, 100))
add(P_VF1, "TCP A data VF1->VF0, 200 bytes", 1,
    lambda n: b2a(n) / TCP(sport=80, dport=40001, flags="PA", seq=b + 1, ack=a + 101, window=509) / data(n, 200))
add(P_VF0, "TCP A ACK of the data", 1,
    lambda n: a2b(n) / TCP(sport=40001, dport=80, flags="A", seq=a + 101, ack=b + 201, window=502))
add(P_VF0, "TCP A out-of-window segment (seq 2^30 ahead): inv, dropped", 0,
    lambda n: a2b(n) / TCP(sport=40001, dport=80, flags="PA", seq=a + 101 + (1 << 30), ack=b + 201, window=502) / data(n, 10))
add(P_VF1, "TCP A segment acking unsent data (ack 2^30 ahead): inv, dropped", 0,
    lambda n: b2a(n) / TCP(sport=80, dport=40001, flags="PA", seq=b + 201, ack=a + 101 + (1 << 30), window=509) / data(n, 10),
    snap="after-oow")
add(P_VF1, "TCP A RST VF1->VF0 (est)", 1,
    lambda n: b2a(n) / TCP(sport=80, dport=40001, flags="RA", seq=b + 201, ack=a + 101, window=0), snap="rst")
add(P_VF0, "TCP A data VF0->VF1 after the RST", 1,
    lambda n: a2b(n) / TCP(sport=40001, dport=80, flags="PA", seq=a + 101, ack=b + 201, window=502) / data(n, 20))

# TCP B (zone 5, IPv4): VF0:40002 -> VF1:80, no options, closed with FIN/ACK
a, b = 2000, 7000
add(P_VF0, "TCP B SYN (new, commit)", 1,
    lambda n: a2b(n) / TCP(sport=40002, dport=80, flags="S", seq=a, window=8192))
add(P_VF1, "TCP B SYN-ACK", 1,
    lambda n: b2a(n) / TCP(sport=80, dport=40002, flags="SA", seq=b, ack=a + 1, window=8192))
add(P_VF0, "TCP B ACK", 1,
    lambda n: a2b(n) / TCP(sport=40002, dport=80, flags="A", seq=a + 1, ack=b + 1, window=8192))
add(P_VF0, "TCP B data VF0->VF1, 50 bytes", 1,
    lambda n: a2b(n) / TCP(sport=40002, dport=80, flags="PA", seq=a + 1, ack=b + 1, window=8192) / data(n, 50))
add(P_VF0, "TCP B FIN-ACK from VF0", 1,
    lambda n: a2b(n) / TCP(sport=40002, dport=80, flags="FA", seq=a + 51, ack=b + 1, window=8192), snap="fin1")
add(P_VF1, "TCP B FIN-ACK from VF1", 1,
    lambda n: b2a(n) / TCP(sport=80, dport=40002, flags="FA", seq=b + 1, ack=a + 52, window=8192), snap="fin2")
add(P_VF0, "TCP B last ACK", 1,
    lambda n: a2b(n) / TCP(sport=40002, dport=80, flags="A", seq=a + 52, ack=b + 2, window=8192), snap="closed")
add(P_VF0, "TCP B' SYN reusing B's closed tuple with a new ISN (new again)", 1,
    lambda n: a2b(n) / TCP(sport=40002, dport=80, flags="S", seq=a + 100000, window=8192), snap="reuse")

# TCP F (zone 5, IPv4): VF0:40010 -> VF1:80, invalid segments on an established connection
a, b = 41000, 45000
add(P_VF0, "TCP F SYN", 1,
    lambda n: a2b(n) / TCP(sport=40010, dport=80, flags="S", seq=a, window=8192))
add(P_VF1, "TCP F SYN-ACK", 1,
    lambda n: b2a(n) / TCP(sport=80, dport=40010, flags="SA", seq=b, ack=a + 1, window=8192))
add(P_VF0, "TCP F ACK", 1,
    lambda n: a2b(n) / TCP(sport=40010, dport=80, flags="A", seq=a + 1, ack=b + 1, window=8192))
f_data = add(P_VF0, "TCP F data VF0->VF1, 100 bytes", 1,
    lambda n: a2b(n) / TCP(sport=40010, dport=80, flags="PA", seq=a + 1, ack=b + 1, window=8192) / data(n, 100))
quoted_f = bytes(v4(VF0, VF1, f_data) / TCP(sport=40010, dport=80, flags="PA", seq=a + 1, ack=b + 1, window=8192) / data(f_data, 100))
add(P_VF1, "ICMP fragmentation needed VF1->VF0 quoting that TCP segment (rel)", 1,
    lambda n: b2a(n) / ICMP(type=3, code=4, nexthopmtu=100) / Raw(quoted_f))
add(P_VF1, "TCP F RST VF1->VF0 with seq 2^30 out of the window: inv, dropped", 0,
    lambda n: b2a(n) / TCP(sport=80, dport=40010, flags="R", seq=b + 1 + (1 << 30), window=0))
add(P_VF0, "TCP F SYN+FIN from VF0: inv, dropped", 0,
    lambda n: a2b(n) / TCP(sport=40010, dport=80, flags="SF", seq=a + 101, ack=b + 1, window=8192))
add(P_VF0, "TCP F segment without flags from VF0: inv, dropped", 0,
    lambda n: a2b(n) / TCP(sport=40010, dport=80, flags="", seq=a + 101, window=8192))
add(P_VF1, "TCP F data VF1->VF0, 40 bytes (still est)", 1,
    lambda n: b2a(n) / TCP(sport=80, dport=40010, flags="PA", seq=b + 1, ack=a + 101, window=8192) / data(n, 40))
add(P_VF0, "TCP F data VF0->VF1 in an IPv4 header with options (router alert)", 1,
    lambda n: Ether(src=M0, dst=M1) / v4(VF0, VF1, n, options=[IPOption_Router_Alert()]) /
              TCP(sport=40010, dport=80, flags="PA", seq=a + 101, ack=b + 41, window=8192) / data(n, 10))
add(P_VF0, "TCP F retransmission of the 100 bytes (old data, in window)", 1,
    lambda n: a2b(n) / TCP(sport=40010, dport=80, flags="PA", seq=a + 1, ack=b + 41, window=8192) / data(f_data, 100))
add(P_VF0, "TCP F RST from VF0", 1,
    lambda n: a2b(n) / TCP(sport=40010, dport=80, flags="R", seq=a + 111, window=0), snap="tcp-f")
# TCP K (zone 5): VF1 advertises a 100-byte window (no scaling): a segment filling it
# passes, one byte beyond what VF1 acknowledged + its window is out of the window
a, b = 111000, 115000
add(P_VF0, "TCP K SYN", 1,
    lambda n: a2b(n) / TCP(sport=40013, dport=80, flags="S", seq=a, window=8192))
add(P_VF1, "TCP K SYN-ACK with a 100-byte window", 1,
    lambda n: b2a(n) / TCP(sport=80, dport=40013, flags="SA", seq=b, ack=a + 1, window=100))
add(P_VF0, "TCP K ACK", 1,
    lambda n: a2b(n) / TCP(sport=40013, dport=80, flags="A", seq=a + 1, ack=b + 1, window=8192))
add(P_VF0, "TCP K data filling the window exactly (100 bytes)", 1,
    lambda n: a2b(n) / TCP(sport=40013, dport=80, flags="PA", seq=a + 1, ack=b + 1, window=8192) / data(n, 100))
add(P_VF0, "TCP K 1 byte past the window: inv, dropped", 0,
    lambda n: a2b(n) / TCP(sport=40013, dport=80, flags="PA", seq=a + 101, ack=b + 1, window=8192) / data(n, 1))
add(P_VF1, "TCP K ACK of the 100 bytes, window 100 again", 1,
    lambda n: b2a(n) / TCP(sport=80, dport=40013, flags="A", seq=b + 1, ack=a + 101, window=100))
add(P_VF0, "TCP K next 100 bytes (in the new window)", 1,
    lambda n: a2b(n) / TCP(sport=40013, dport=80, flags="PA", seq=a + 101, ack=b + 1, window=8192) / data(n, 100))
# Ethernet padding (the IPv4 total length is shorter than the frame): not TCP payload
add(P_VF1, "TCP K ACK of the 200 bytes in a frame padded to 64 bytes", 1,
    lambda n: b2a(n) / TCP(sport=80, dport=40013, flags="A", seq=b + 1, ack=a + 201, window=100) / Raw(b"\0" * 10))
add(P_VF1, "TCP K 100 bytes VF1->VF0, the edge of VF0's window only if the padding was not data", 1,
    lambda n: b2a(n) / TCP(sport=80, dport=40013, flags="PA", seq=b + 1, ack=a + 201, window=100) / data(n, 100))
add(P_VF0, "TCP K header length past the segment (data offset 15, no options): inv, dropped", 0,
    lambda n: a2b(n) / TCP(sport=40013, dport=80, flags="A", seq=a + 201, ack=b + 101, window=8192, dataofs=15),
    snap="tcp-k")
# (An IPv4 total length beyond the frame is not here: OVS's userspace flow extraction
# drops such a packet's L3 fields, so it misses every flow, while the kernel datapath,
# which esw's parsing follows (test-differential), keeps them.)
# TCP L (zone 5): only the SYN offers window scaling, so neither side scales. pf's
# quirk, kept by OVS: the SYN's window was stored descaled (64240 / 2^7 -> 502) and the
# SYN-ACK without wscale "fixes it up" by shifting it back (502 << 7 = 64256), so VF1
# may send up to 64256 bytes past its ISN, not 64240, and a later window of 502 from
# VF0 does not shrink that
a, b = 121000, 125000
add(P_VF0, "TCP L SYN with wscale 7, window 64240", 1,
    lambda n: a2b(n) / TCP(sport=40014, dport=80, flags="S", seq=a, window=64240, options=LINUX_OPTS))
add(P_VF1, "TCP L SYN-ACK without window scaling", 1,
    lambda n: b2a(n) / TCP(sport=80, dport=40014, flags="SA", seq=b, ack=a + 1, window=8192, options=[("MSS", 1460)]))
add(P_VF0, "TCP L ACK, window 502 (unscaled)", 1,
    lambda n: a2b(n) / TCP(sport=40014, dport=80, flags="A", seq=a + 1, ack=b + 1, window=502))
add(P_VF1, "TCP L 256 bytes ending at ISN+1+64256 (the edge of the fixed-up window)", 1,
    lambda n: b2a(n) / TCP(sport=80, dport=40014, flags="PA", seq=b + 1 + 64000, ack=a + 1, window=8192) / data(n, 256))
add(P_VF1, "TCP L 1 byte past it: inv, dropped", 0,
    lambda n: b2a(n) / TCP(sport=80, dport=40014, flags="PA", seq=b + 1 + 64256, ack=a + 1, window=8192) / data(n, 1))
add(P_VF1, "TCP L 400 bytes at ISN+1 (behind seqlo, within the window: passes)", 1,
    lambda n: b2a(n) / TCP(sport=80, dport=40014, flags="PA", seq=b + 1, ack=a + 1, window=8192) / data(n, 400),
    snap="tcp-l")

# no connection yet
add(P_VF0, "TCP ACK+data VF0:40011->VF1:80 without a connection (OVS picks it up: new)", 1,
    lambda n: a2b(n) / TCP(sport=40011, dport=80, flags="PA", seq=50000, ack=60000, window=8192) / data(n, 10))
add(P_VF1, "TCP data VF1:80->VF0:40011 answering it", 1,
    lambda n: b2a(n) / TCP(sport=80, dport=40011, flags="PA", seq=60000, ack=50010, window=8192) / data(n, 10))
add(P_VF1, "TCP SYN-ACK VF1:80->VF0:40012 without a connection: inv, dropped", 0,
    lambda n: b2a(n) / TCP(sport=80, dport=40012, flags="SA", seq=61000, ack=51001, window=8192), snap="midstream")


# denied
add(P_VF0, "TCP SYN VF0->VF1:22 (new, denied port): dropped, not committed", 0,
    lambda n: a2b(n) / TCP(sport=40003, dport=22, flags="S", seq=3000, window=8192))
add(P_VF1, "TCP SYN VF1->VF0:80 (VF1 may not open): dropped, not committed", 0,
    lambda n: b2a(n) / TCP(sport=40004, dport=80, flags="S", seq=3100, window=8192), snap="denied")

# UDP (zone 5)
add(P_VF0, "UDP VF0:50001->VF1:53 request (new, commit)", 1,
    lambda n: a2b(n) / UDP(sport=50001, dport=53) / data(n, 30))
u1 = add(P_VF1, "UDP VF1:53->VF0:50001 reply (est)", 1,
    lambda n: b2a(n) / UDP(sport=53, dport=50001) / data(n, 60))
quoted_r = bytes(v4(VF1, VF0, u1) / UDP(sport=53, dport=50001) / data(u1, 60))
add(P_VF0, "ICMP port unreachable VF0->VF1 quoting that reply (rel, original direction)", 1,
    lambda n: a2b(n) / ICMP(type=3, code=3) / Raw(quoted_r))
add(P_VF0, "UDP VF0:50001->VF1:53 second request (est)", 1,
    lambda n: a2b(n) / UDP(sport=50001, dport=53) / data(n, 30), snap="udp")
add(P_VF0, "UDP VF0:50001->VF1:53 with a bad IPv4 header checksum: inv, dropped", 0,
    lambda n: Ether(src=M0, dst=M1) / v4(VF0, VF1, n, chksum=0x1234) / UDP(sport=50001, dport=53) / data(n, 30))
add(P_VF0, "UDP VF0:50001->VF1:53 with a UDP length beyond the datagram: inv, dropped", 0,
    lambda n: a2b(n) / UDP(sport=50001, dport=53, len=200) / data(n, 30))
add(P_VF0, "UDP VF0:50001->VF1:53 in a frame with 12 bytes of padding after the IPv4 packet (est)", 1,
    lambda n: Ether(bytes(a2b(n) / UDP(sport=50001, dport=53) / data(n, 6)) + b"\0" * 12))
add(P_VF0, "UDP VF0:50001->VF1:53 with UDP checksum 0 (none; est)", 1,
    lambda n: a2b(n) / UDP(sport=50001, dport=53, chksum=0) / data(n, 30))
u = add(P_VF0, "UDP VF0:50002->VF1:53 (new, commit), answered by an ICMP error", 1,
        lambda n: a2b(n) / UDP(sport=50002, dport=53) / data(n, 30))
quoted = bytes(v4(VF0, VF1, u) / UDP(sport=50002, dport=53) / data(u, 30))
quoted_u2 = quoted
add(P_VF1, "ICMP port unreachable VF1->VF0 quoting that UDP packet (rel)", 1,
    lambda n: b2a(n) / ICMP(type=3, code=3) / Raw(quoted))
stray = bytes(IP(src=VF0, dst=VF1, id=0x1111) / UDP(sport=50009, dport=53) / b"never sent")
add(P_VF1, "ICMP port unreachable VF1->VF0 quoting it truncated to IP header + 8 bytes (rel)", 1,
    lambda n: b2a(n) / ICMP(type=3, code=3) / Raw(quoted[:28]))
add(P_VF1, "ICMP port unreachable VF1->VF0 quoting a UDP packet never sent (no conn: inv)", 0,
    lambda n: b2a(n) / ICMP(type=3, code=3) / Raw(stray), snap="icmp")

# TCP C (zone 5, IPv6): [2001:2::1]:40005 -> [2001:2::2]:80
a, b = 11000, 15000
add(P_VF0, "IPv6 TCP C SYN (new, commit)", 1,
    lambda n: a2b6(n) / TCP(sport=40005, dport=80, flags="S", seq=a, window=64800, options=LINUX_OPTS))
add(P_VF1, "IPv6 TCP C SYN-ACK", 1,
    lambda n: b2a6(n) / TCP(sport=80, dport=40005, flags="SA", seq=b, ack=a + 1, window=64800, options=LINUX_OPTS))
add(P_VF0, "IPv6 TCP C ACK", 1,
    lambda n: a2b6(n) / TCP(sport=40005, dport=80, flags="A", seq=a + 1, ack=b + 1, window=507), snap="v6-established")
add(P_VF0, "IPv6 TCP C data VF0->VF1, 64 bytes", 1,
    lambda n: a2b6(n) / TCP(sport=40005, dport=80, flags="PA", seq=a + 1, ack=b + 1, window=507) / data(n, 64))
add(P_VF1, "IPv6 TCP C data VF1->VF0, 32 bytes", 1,
    lambda n: b2a6(n) / TCP(sport=80, dport=40005, flags="PA", seq=b + 1, ack=a + 65, window=507) / data(n, 32))
add(P_VF0, "IPv6 TCP C data VF0->VF1 behind a hop-by-hop extension header", 1,
    lambda n: a2b6(n) / IPv6ExtHdrHopByHop() / TCP(sport=40005, dport=80, flags="PA", seq=a + 65, ack=b + 33, window=507) / data(n, 16))
add(P_VF0, "IPv6 TCP C out-of-window segment (seq 2^30 ahead): inv, dropped", 0,
    lambda n: a2b6(n) / TCP(sport=40005, dport=80, flags="PA", seq=a + 81 + (1 << 30), ack=b + 33, window=507) / data(n, 10))
add(P_VF0, "IPv6 TCP C RST from VF0", 1,
    lambda n: a2b6(n) / TCP(sport=40005, dport=80, flags="R", seq=a + 81, window=0), snap="v6-rst")
add(P_VF0, "IPv6 UDP [VF0]:50005->[VF1]:53 request (new, commit)", 1,
    lambda n: a2b6(n) / UDP(sport=50005, dport=53) / data(n, 30))
add(P_VF0, "ICMPv6 echo request [VF0]->[VF1] id 77 (new, commit)", 1,
    lambda n: a2b6(n) / ICMPv6EchoRequest(id=77, seq=1) / data(n, 32))
add(P_VF1, "ICMPv6 echo reply [VF1]->[VF0] id 77 (est)", 1,
    lambda n: b2a6(n) / ICMPv6EchoReply(id=77, seq=1) / data(n - 1, 32))
add(P_VF1, "ICMPv6 echo reply [VF1]->[VF0] with an unknown id 78 (no conn: inv)", 0,
    lambda n: b2a6(n) / ICMPv6EchoReply(id=78, seq=1) / data(n, 32))
add(P_VF1, "IPv6 UDP [VF1]:53->[VF0]:50005 reply (est)", 1,
    lambda n: b2a6(n) / UDP(sport=53, dport=50005) / data(n, 60))
u = add(P_VF0, "IPv6 UDP [VF0]:50006->[VF1]:53 (new, commit), answered by an ICMPv6 error", 1,
        lambda n: a2b6(n) / UDP(sport=50006, dport=53) / data(n, 30))
quoted6 = bytes(v6(S0, S1, u) / UDP(sport=50006, dport=53) / data(u, 30))
add(P_VF1, "ICMPv6 port unreachable [VF1]->[VF0] quoting that UDP packet (rel)", 1,
    lambda n: b2a6(n) / ICMPv6DestUnreach(code=4) / Raw(quoted6), snap="v6-udp-icmp")

# TCP D through SNAT (zone 9): VF0:40006 -> EXT:80, seen as 198.19.0.100:40006
a, b = 21000, 25000
add(P_VF0, "SNAT TCP D SYN VF0->EXT:80 (new, commit, nat src)", 1,
    lambda n: up(VF0, n) / TCP(sport=40006, dport=80, flags="S", seq=a, window=64240, options=LINUX_OPTS))
add(P_UP, "SNAT TCP D SYN-ACK EXT->198.19.0.100:40006 (un-SNAT, est)", 1,
    lambda n: down(n) / TCP(sport=80, dport=40006, flags="SA", seq=b, ack=a + 1, window=65160, options=LINUX_OPTS))
add(P_VF0, "SNAT TCP D ACK", 1,
    lambda n: up(VF0, n) / TCP(sport=40006, dport=80, flags="A", seq=a + 1, ack=b + 1, window=502), snap="snat-established")
add(P_VF0, "SNAT TCP D data VF0->EXT, 120 bytes", 1,
    lambda n: up(VF0, n) / TCP(sport=40006, dport=80, flags="PA", seq=a + 1, ack=b + 1, window=502) / data(n, 120))
add(P_UP, "SNAT TCP D data EXT->VF0, 300 bytes", 1,
    lambda n: down(n) / TCP(sport=80, dport=40006, flags="PA", seq=b + 1, ack=a + 121, window=509) / data(n, 300))
add(P_VF0, "SNAT TCP D FIN-ACK from VF0", 1,
    lambda n: up(VF0, n) / TCP(sport=40006, dport=80, flags="FA", seq=a + 121, ack=b + 301, window=502))
add(P_UP, "SNAT TCP D FIN-ACK from EXT", 1,
    lambda n: down(n) / TCP(sport=80, dport=40006, flags="FA", seq=b + 301, ack=a + 122, window=509))
add(P_VF0, "SNAT TCP D last ACK", 1,
    lambda n: up(VF0, n) / TCP(sport=40006, dport=80, flags="A", seq=a + 122, ack=b + 302, window=502), snap="snat-closed")
# TCP E: VF1:40006 -> EXT:80 wants the same translated tuple as D (still in TIME_WAIT):
# NAT must pick another source port; OVS takes the next one, 40007.
a, b = 31000, 35000
add(P_VF1, "SNAT TCP E SYN VF1:40006->EXT:80: the same SNAT tuple as D, port moves", 1,
    lambda n: up(VF1, n) / TCP(sport=40006, dport=80, flags="S", seq=a, window=8192))
add(P_UP, "SNAT TCP E SYN-ACK EXT->198.19.0.100:40007 (un-SNAT to VF1:40006)", 1,
    lambda n: down(n) / TCP(sport=80, dport=40007, flags="SA", seq=b, ack=a + 1, window=8192))
add(P_VF1, "SNAT TCP E ACK", 1,
    lambda n: up(VF1, n) / TCP(sport=40006, dport=80, flags="A", seq=a + 1, ack=b + 1, window=8192), snap="snat-clash")

# UDP, ICMP error and ICMP echo through SNAT
add(P_VF0, "SNAT UDP VF0:50003->EXT:53 (new, commit, nat src)", 1,
    lambda n: up(VF0, n) / UDP(sport=50003, dport=53) / data(n, 40))
add(P_UP, "SNAT UDP EXT:53->198.19.0.100:50003 reply (un-SNAT, est)", 1,
    lambda n: down(n) / UDP(sport=53, dport=50003) / data(n, 80))
add(P_VF0, "SNAT UDP VF0:50003->EXT:53 with UDP checksum 0: stays 0 through SNAT", 1,
    lambda n: up(VF0, n) / UDP(sport=50003, dport=53, chksum=0) / data(n, 40))
u = add(P_VF0, "SNAT UDP VF0:50004->EXT:53, answered by an ICMP error", 1,
        lambda n: up(VF0, n) / UDP(sport=50004, dport=53) / data(n, 40))
quoted = bytes(v4(SNAT, EXT, u) / UDP(sport=50004, dport=53) / data(u, 40))   # as it left the uplink
add(P_UP, "SNAT ICMP port unreachable EXT->198.19.0.100 quoting it (rel; outer and inner un-SNAT)", 1,
    lambda n: down(n) / ICMP(type=3, code=3) / Raw(quoted))
add(P_VF0, "SNAT ICMP echo request VF0->EXT id 0x4d2 (new, commit, nat src)", 1,
    lambda n: up(VF0, n) / ICMP(type=8, id=0x4d2, seq=1) / data(n, 56))
add(P_UP, "SNAT ICMP echo reply EXT->198.19.0.100 id 0x4d2 (un-SNAT, est)", 1,
    lambda n: down(n) / ICMP(type=0, id=0x4d2, seq=1) / data(n - 1, 56))
add(P_VF1, "SNAT UDP VF1:50003->EXT:53: ports 50003 and 50004 taken, NAT takes 50005", 1,
    lambda n: up(VF1, n) / UDP(sport=50003, dport=53) / data(n, 40))
add(P_UP, "SNAT UDP EXT:53->198.19.0.100:50005 reply (un-SNAT to VF1:50003)", 1,
    lambda n: down(n) / UDP(sport=53, dport=50005) / data(n, 80))
# ICMP ids are not translated, so VF1's echo with VF0's id wants the reply tuple VF0's
# echo holds: OVS 3.1 cannot NAT it, commits nothing and lets the request leave the
# uplink un-NATed (VF1's private source) instead of dropping it. A kernel datapath would
# drop it; esw follows OVS here (a deliberate deviation would be marked on this frame).
add(P_VF1, "SNAT ICMP echo request VF1->EXT with VF0's id 0x4d2: NAT tuple taken, leaves un-NATed", 1,
    lambda n: up(VF1, n) / ICMP(type=8, id=0x4d2, seq=7) / data(n, 56), snap="snat-clash2")
add(P_UP, "SNAT ICMP echo reply with an unknown id 999 (no conn: inv)", 0,
    lambda n: down(n) / ICMP(type=0, id=999, seq=1) / data(n, 56))
add(P_UP, "TCP SYN EXT->198.19.0.100:12345 from outside (new): dropped", 0,
    lambda n: down(n) / TCP(sport=33000, dport=12345, flags="S", seq=4000, window=8192))

# TCP H, I: VF0 -> EXT2:443, SNAT to the single address and port 198.19.0.101:2000
a, b = 81000, 85000
add(P_VF0, "SNAT TCP H SYN VF0:40020->EXT2:443 (nat to 198.19.0.101:2000)", 1,
    lambda n: up(VF0, n, EXT2) / TCP(sport=40020, dport=443, flags="S", seq=a, window=8192))
add(P_UP, "SNAT TCP H SYN-ACK EXT2:443->198.19.0.101:2000 (un-SNAT to VF0:40020)", 1,
    lambda n: down(n, "198.19.0.101", EXT2) / TCP(sport=443, dport=2000, flags="SA", seq=b, ack=a + 1, window=8192))
add(P_VF0, "SNAT TCP H ACK", 1,
    lambda n: up(VF0, n, EXT2) / TCP(sport=40020, dport=443, flags="A", seq=a + 1, ack=b + 1, window=8192))
# As with the ICMP id clash above: OVS logs "Unable to NAT due to tuple space
# exhaustion", commits nothing and forwards the SYN un-NATed; esw follows OVS.
add(P_VF0, "SNAT TCP I SYN VF0:40021->EXT2:443: the only NAT port is taken, leaves un-NATed", 1,
    lambda n: up(VF0, n, EXT2) / TCP(sport=40021, dport=443, flags="S", seq=a + 5000, window=8192), snap="snat-port-range")

# IPv6 through SNAT: [VF0] -> [2001:2:0:100::1], seen as [2001:2:0:ff::100]
X6, N6 = "2001:2:0:100::1", "2001:2:0:ff::100"
def up6(n):   return Ether(src=M0, dst=MR) / v6(S0, X6, n)
def down6(n): return Ether(src=MX, dst=MR) / v6(X6, N6, n)
a, b = 91000, 95000
add(P_VF0, "IPv6 SNAT TCP J SYN [VF0]:40030->[X6]:80 (new, commit, nat src)", 1,
    lambda n: up6(n) / TCP(sport=40030, dport=80, flags="S", seq=a, window=64800, options=LINUX_OPTS))
add(P_UP, "IPv6 SNAT TCP J SYN-ACK [X6]:80->[N6]:40030 (un-SNAT)", 1,
    lambda n: down6(n) / TCP(sport=80, dport=40030, flags="SA", seq=b, ack=a + 1, window=64800, options=LINUX_OPTS))
add(P_VF0, "IPv6 SNAT TCP J ACK", 1,
    lambda n: up6(n) / TCP(sport=40030, dport=80, flags="A", seq=a + 1, ack=b + 1, window=507))
add(P_VF0, "IPv6 SNAT TCP J data [VF0]->[X6], 70 bytes", 1,
    lambda n: up6(n) / TCP(sport=40030, dport=80, flags="PA", seq=a + 1, ack=b + 1, window=507) / data(n, 70))
add(P_UP, "IPv6 SNAT TCP J data [X6]->[VF0], 90 bytes", 1,
    lambda n: down6(n) / TCP(sport=80, dport=40030, flags="PA", seq=b + 1, ack=a + 71, window=507) / data(n, 90))
u = add(P_VF0, "IPv6 SNAT UDP [VF0]:50030->[X6]:53, answered by an ICMPv6 error", 1,
        lambda n: up6(n) / UDP(sport=50030, dport=53) / data(n, 30))
quoted6n = bytes(v6(N6, X6, u) / UDP(sport=50030, dport=53) / data(u, 30))   # as it left the uplink
add(P_UP, "IPv6 SNAT ICMPv6 port unreachable [X6]->[N6] quoting it (rel; outer and inner un-SNAT)", 1,
    lambda n: down6(n) / ICMPv6DestUnreach(code=4) / Raw(quoted6n), snap="v6-snat")

# TCP G through the load balancer (zone 9): EXT:33100 -> VIP 198.19.0.80:80 = VF1:80
a, b = 71000, 75000
add(P_UP, "DNAT TCP G SYN EXT->VIP:80 (new, commit, nat dst VF1:80)", 1,
    lambda n: down(n, VIP) / TCP(sport=33100, dport=80, flags="S", seq=a, window=64240, options=LINUX_OPTS))
add(P_VF1, "DNAT TCP G SYN-ACK VF1->EXT (un-DNAT: from the VIP)", 1,
    lambda n: up(VF1, n) / TCP(sport=80, dport=33100, flags="SA", seq=b, ack=a + 1, window=65160, options=LINUX_OPTS))
add(P_UP, "DNAT TCP G ACK", 1,
    lambda n: down(n, VIP) / TCP(sport=33100, dport=80, flags="A", seq=a + 1, ack=b + 1, window=502))
add(P_UP, "DNAT TCP G data EXT->VIP, 90 bytes", 1,
    lambda n: down(n, VIP) / TCP(sport=33100, dport=80, flags="PA", seq=a + 1, ack=b + 1, window=502) / data(n, 90))
add(P_VF1, "DNAT TCP G data VF1->EXT, 150 bytes", 1,
    lambda n: up(VF1, n) / TCP(sport=80, dport=33100, flags="PA", seq=b + 1, ack=a + 91, window=509) / data(n, 150))
add(P_UP, "TCP SYN EXT->VIP:81 (no load balancer there): dropped", 0,
    lambda n: down(n, VIP) / TCP(sport=33101, dport=81, flags="S", seq=a, window=8192))

# VF1 -> EXT3 198.18.102.1: ct(commit,zone=5),ct(commit,zone=9,nat(src=198.19.1.100))
# in one action list; replies come back through ct(zone=9,nat), ct_clear and recirc
EXT3, SNAT3 = "198.18.102.1", "198.19.1.100"
add(P_VF1, "two ct(): UDP VF1:50200->EXT3:53 committed in zone 5 and zone 9 (SNAT) in one pass", 1,
    lambda n: up(VF1, n, EXT3) / UDP(sport=50200, dport=53) / data(n, 24))
add(P_UP, "two ct(): UDP EXT3:53->198.19.1.100:50200 reply, un-SNAT, ct_clear, recirc untracked", 1,
    lambda n: down(n, SNAT3, EXT3) / UDP(sport=53, dport=50200) / data(n, 48))
add(P_VF1, "two ct(): UDP VF1:50200->EXT3:53 again (both connections known)", 1,
    lambda n: up(VF1, n, EXT3) / UDP(sport=50200, dport=53) / data(n, 24))
add(P_VF1, "two ct(): TCP SYN VF1:40200->EXT3:80", 1,
    lambda n: up(VF1, n, EXT3) / TCP(sport=40200, dport=80, flags="S", seq=7000, window=8192), snap="two-ct")

# Bad L4 checksums, last in phase 1 so that what they change cannot spread: OVS 3.1's
# conntrack verifies TCP, UDP and ICMP(v6) checksums of frames that carry no checksum
# offload metadata (these come from AF_PACKET sockets with complete checksums) and marks
# a bad one invalid; a bad IPv4 header checksum (frame above) likewise. esw's tracker
# verifies only the IPv4 header (Sources/Conntrack/Extract.swift: partial checksums from
# veth/TAP ports); if that is to stay, these frames are where to say so.
add(P_VF0, "checksum: UDP VF0:50001->VF1:53 (est) with a bad UDP checksum: inv, dropped", 0,
    lambda n: a2b(n) / UDP(sport=50001, dport=53, chksum=0x1234) / data(n, 30))
add(P_VF1, "checksum: ICMP port unreachable VF1->VF0 for UDP 50002 with a bad ICMP checksum: inv, dropped", 0,
    lambda n: b2a(n) / ICMP(type=3, code=3, chksum=0x1234) / Raw(quoted_u2))
add(P_UP, "checksum: DNAT TCP G data EXT->VIP with a bad TCP checksum: inv, dropped", 0,
    lambda n: down(n, VIP) / TCP(sport=33100, dport=80, flags="PA", seq=71091, ack=75151, window=502, chksum=0x1234) / data(n, 20))
add(P_UP, "checksum: IPv6 SNAT TCP J data [X6]->[N6] with a bad TCP checksum: inv, dropped", 0,
    lambda n: down6(n) / TCP(sport=80, dport=40030, flags="PA", seq=95091, ack=91071, window=507, chksum=0x1234) / data(n, 20))
add(P_VF0, "checksum: TCP SYN VF0:40015->VF1:80 with a bad TCP checksum: inv, dropped, not committed", 0,
    lambda n: a2b(n) / TCP(sport=40015, dport=80, flags="S", seq=3300, window=8192, chksum=0x1234))

json.dump(frames, open(sys.argv[1], "w"), indent=1)

# Phase 2, after flush-conntrack and `ct-set-limits zone=5,limit=1`
phase1 = len(frames)
a, b = 101000, 105000
add(P_VF0, "limit: TCP SYN VF0:40100->VF1:80 (new, committed: zone 5 at its limit of 1)", 1,
    lambda n: a2b(n) / TCP(sport=40100, dport=80, flags="S", seq=a, window=8192), snap="limit-1")
# OVS refuses the commit and forwards the packet uncommitted; the kernel would drop it.
# esw follows OVS.
add(P_VF0, "limit: TCP SYN VF0:40101->VF1:80 (zone 5 full: commit fails, forwarded uncommitted)", 1,
    lambda n: a2b(n) / TCP(sport=40101, dport=80, flags="S", seq=a + 10, window=8192))
add(P_VF1, "limit: TCP SYN-ACK for the uncommitted one: no connection, inv", 0,
    lambda n: b2a(n) / TCP(sport=80, dport=40101, flags="SA", seq=b + 10, ack=a + 11, window=8192))
add(P_VF1, "limit: TCP SYN-ACK for the committed one (est)", 1,
    lambda n: b2a(n) / TCP(sport=80, dport=40100, flags="SA", seq=b, ack=a + 1, window=8192))
add(P_VF0, "limit: UDP VF0:50100->VF1:53 (zone 5 full: not committed)", 1,
    lambda n: a2b(n) / UDP(sport=50100, dport=53) / data(n, 20))
add(P_VF0, "limit: SNAT UDP VF0:50101->EXT:53 (zone 9 has no limit)", 1,
    lambda n: up(VF0, n) / UDP(sport=50101, dport=53) / data(n, 20))
json.dump(frames, open(sys.argv[2], "w"), indent=1)
json.dump(frames[phase1:], open(sys.argv[3], "w"), indent=1)
