#!/usr/bin/env python3
"""dnsprobe.py DST_IP RATE SECONDS — the placement study's latency probe: DNS-like UDP
queries to DST_IP:53 at RATE per second for SECONDS, each answer matched by its id.
Prints JSON: sent, answered, p50_us, p99_us (round-trip times of the answered ones),
and whether the answers had the NXDOMAIN flags set."""
import json
import select
import socket
import struct
import sys
import time

dst, rate, seconds = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setblocking(False)
sent_at = {}
rtts = []
flagged = 0
n = 0
start = time.perf_counter()
end = start + seconds
while True:
    now = time.perf_counter()
    if now >= end + 0.2:
        break
    if now < end and n < (now - start) * rate:
        qid = n & 0xFFFF
        sent_at[qid] = time.perf_counter_ns()
        s.sendto(struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + b"probe", (dst, 53))
        n += 1
        continue
    wait = max(0.0, min(start + n / rate - now, 0.01))
    r, _, _ = select.select([s], [], [], wait)
    while r:
        try:
            d, _ = s.recvfrom(2048)
        except BlockingIOError:
            break
        t = time.perf_counter_ns()
        if len(d) >= 4:
            qid, flags = struct.unpack("!HH", d[:4])
            if qid in sent_at:
                rtts.append((t - sent_at.pop(qid)) / 1000)
                flagged += (flags & 0x800F) == 0x8003
rtts.sort()
pick = lambda q: round(rtts[min(len(rtts) - 1, int(q * len(rtts)))], 1) if rtts else None
print(json.dumps({"sent": n, "answered": len(rtts), "nxdomain": flagged, "p50_us": pick(0.5), "p99_us": pick(0.99)}))
