#!/usr/bin/env python3
"""Writes Fuzz/corpus/conntrack/: a selector byte (see Fuzz/Targets/conntrack.swift)
followed by a frame with valid checksums. Run from the repository root."""
import os, struct

def csum(b):
    if len(b) % 2: b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff

def ip4(a): return bytes(int(x) for x in a.split("."))
ETH4 = bytes.fromhex("020000000002020000000001") + b"\x08\x00"
ETH6 = bytes.fromhex("020000000002020000000001") + b"\x86\xdd"

def l4sum(l4, pseudo, off):
    l4 = bytearray(l4); l4[off:off + 2] = b"\0\0"
    c = csum(pseudo + bytes(l4)); l4[off:off + 2] = struct.pack("!H", c); return bytes(l4)

def ipv4(src, dst, proto, l4):
    s, d = ip4(src), ip4(dst)
    if proto == 6: l4 = l4sum(l4, s + d + struct.pack("!BBH", 0, 6, len(l4)), 16)
    elif proto == 17: l4 = l4sum(l4, s + d + struct.pack("!BBH", 0, 17, len(l4)), 6)
    elif proto == 1: l4 = l4sum(l4, b"", 2)
    h = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 1, 0x4000, 64, proto, 0, s, d))
    h[10:12] = struct.pack("!H", csum(bytes(h)))
    return bytes(h) + l4

def ipv6(src, dst, proto, l4):
    s = bytes.fromhex("20010db8" + "0" * 23 + src); d = bytes.fromhex("20010db8" + "0" * 23 + dst)
    off = {6: 16, 17: 6, 58: 2}[proto]
    l4 = l4sum(l4, s + d + struct.pack("!IxxxB", len(l4), proto), off)
    return ETH6 + struct.pack("!IHBB", 0x60000000, len(l4), proto, 64) + s + d + l4

def tcp(sp, dp, seq, ack, flags, payload=b""):
    return struct.pack("!HHIIBBHHH", sp, dp, seq, ack, 5 << 4, flags, 65535, 0, 0) + payload

def udp(sp, dp, payload=b"abcdefgh"):
    return struct.pack("!HHHH", sp, dp, 8 + len(payload), 0) + payload

def icmp(t, c, rest, body=b""):
    return struct.pack("!BBH", t, c, 0) + rest + body

req = ipv4("198.18.0.1", "198.18.1.1", 17, udp(5000, 53))
seeds = {
    "tcp-syn-snat": bytes([0x04 | 2 << 3 | 0x40]) + ETH4 + ipv4("198.18.0.1", "198.18.0.2", 6, tcp(40000, 80, 1000, 0, 0x02)),
    "tcp-synack": bytes([0x04 | 1 << 3]) + ETH4 + ipv4("198.18.0.2", "198.18.0.1", 6, tcp(80, 40000, 5000, 1001, 0x12)),
    "tcp-ack-data": bytes([0x04]) + ETH4 + ipv4("198.18.0.1", "198.18.0.2", 6, tcp(40000, 80, 1001, 5001, 0x18, b"x" * 20)),
    "udp-dnat": bytes([0x04 | 3 << 3 | 0x40]) + ETH4 + req,
    "udp-portnat": bytes([0x05 | 4 << 3 | 0x40]) + ETH4 + req,
    "icmp-echo": bytes([0x04 | 2 << 3 | 0x40]) + ETH4 + ipv4("198.18.0.1", "198.18.0.2", 1, icmp(8, 0, struct.pack("!HH", 7, 1))),
    "icmp-unreach": bytes([0x04 | 1 << 3]) + ETH4 + ipv4("198.18.1.1", "198.18.0.1", 1, icmp(3, 3, b"\0\0\0\0", req[:28])),
    "ipv6-udp-snat": bytes([0x04 | 5 << 3 | 0x40]) + ipv6("1", "2", 17, udp(4000, 53)),
    "ipv6-tcp-syn": bytes([0x04 | 6 << 3 | 0x40]) + ipv6("1", "2", 6, tcp(40000, 443, 1, 0, 0x02)),
    "ipv6-echo": bytes([0x04 | 0x40]) + ipv6("1", "2", 58, icmp(128, 0, struct.pack("!HH", 9, 1))),
}
out = os.path.join("Fuzz", "corpus", "conntrack")
os.makedirs(out, exist_ok=True)
for name, data in seeds.items():
    with open(os.path.join(out, name), "wb") as f: f.write(data)
