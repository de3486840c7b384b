#!/usr/bin/env python3
"""Writes Fuzz/corpus/request/ (seeds of the request target):
  flow-*:    the netlink corpus' OVS_FLOW_CMD_NEW messages, as flow-family messages;
  exec-*:    their actions as OVS_PACKET_CMD_EXECUTE on a UDP packet;
  deep-*:    actions nested past the kernel's limit (clone 17 and 12,000 deep, sample,
             check_pkt_len) in flow puts and executes;
  huge-*:    lengths that claim more than there is (message, attribute, nested
             attribute) and a 64 KB packet.
Usage: request-seeds.py (from anywhere; rewrites the directory)."""
import os, shutil, struct

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "..", "corpus")
OUT = os.path.join(CORPUS, "request")
FLOW, PACKET = 0x22, 0x23
OUTPUT, SAMPLE, CLONE, CHECK_PKT_LEN, USERSPACE = 1, 6, 20, 21, 2

def attr(t, payload):
    a = struct.pack("=HH", 4 + len(payload), t) + payload
    return a + b"\0" * ((4 - len(a) % 4) % 4)

def msg(family, cmd, attrs, seq=1, flags=0x5):
    body = struct.pack("=BBHi", cmd, 1, 0, 0) + attrs
    return struct.pack("=IHHII", 16 + len(body), family, flags, seq, 0) + body

def attrs_of(m):
    """The attributes of a generic netlink message with the OVS header."""
    return m[24:struct.unpack_from("=I", m, 0)[0]]

UDP = (bytes.fromhex("020000000002020000000001") + b"\x08\x00" + bytes.fromhex("4500003200000000401100")
       + b"\0" + bytes([198, 18, 0, 1, 198, 18, 0, 2]) + bytes.fromhex("303912b5001e0000") + bytes(22))
KEY = attr(3, struct.pack("=I", 1)) + attr(4, bytes(12)) + attr(6, struct.pack(">H", 0x0800))

def nest(depth, wrap):
    a = attr(OUTPUT, struct.pack("=I", 1))
    for _ in range(depth):
        a = wrap(a)
    return a

clone = lambda a: attr(CLONE, a)
sample = lambda a: attr(SAMPLE, attr(1, struct.pack("=I", 0xffffffff)) + attr(2, a))
cpl = lambda a: attr(CHECK_PKT_LEN, attr(1, struct.pack("=H", 100)) + attr(2, a) + attr(3, b""))

shutil.rmtree(OUT, ignore_errors=True)
os.makedirs(OUT)
def write(name, data):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)

n = 0
for name in sorted(os.listdir(os.path.join(CORPUS, "netlink"))):
    if not name.startswith("flow-new-"):
        continue
    m = open(os.path.join(CORPUS, "netlink", name), "rb").read()
    a = attrs_of(m)
    write(f"flow-{n:03d}", msg(FLOW, 1, a))
    off = 0
    while off + 4 <= len(a):
        ln, t = struct.unpack_from("=HH", a, off)
        if ln < 4:
            break
        if t & 0x3fff == 2:
            write(f"exec-{n:03d}", msg(PACKET, 3, attr(1, UDP) + attr(2, KEY) + attr(3, a[off + 4: off + ln])))
        off += (ln + 3) & ~3
    n += 1

for depth in (16, 17, 12000):
    write(f"deep-clone-{depth}-flow", msg(FLOW, 1, attr(1, KEY) + attr(2, nest(depth, clone))))
    write(f"deep-clone-{depth}-exec", msg(PACKET, 3, attr(1, UDP) + attr(3, nest(depth, clone))))
write("deep-sample-20-exec", msg(PACKET, 3, attr(1, UDP) + attr(3, nest(20, sample))))
write("deep-check-pkt-len-20-exec", msg(PACKET, 3, attr(1, UDP) + attr(3, nest(20, cpl))))
write("deep-clone-12000-bare", nest(12000, clone))
write("userspace-exec", msg(PACKET, 3, attr(1, UDP) + attr(3, attr(USERSPACE, attr(1, struct.pack("=I", 7))))))

write("huge-message-length", struct.pack("=IHHII", 0xffffffff, FLOW, 5, 1, 0) + struct.pack("=BBHi", 1, 1, 0, 0))
write("huge-attribute-length", msg(FLOW, 1, struct.pack("=HH", 0xffff, 2) + attr(OUTPUT, struct.pack("=I", 1))))
write("huge-nested-length", msg(PACKET, 3, attr(1, UDP) + attr(3, attr(CLONE, struct.pack("=HH", 0xfff0, OUTPUT)))))
write("huge-packet", msg(PACKET, 3, attr(1, UDP + bytes(65000)) + attr(3, attr(OUTPUT, struct.pack("=I", 1)))))
print(f"request-seeds.py: {len(os.listdir(OUT))} seeds in {os.path.relpath(OUT)}")
