#!/usr/bin/env python3
"""Sends malformed control messages to eswd and checks each gets a netlink error
(errno + message) or a clean reply, and that the daemon keeps serving.
Usage: control-fuzz.py SOCKET  — prints one line per case, exit 1 on any failure."""
import os, random, socket, struct, sys

NLMSG_ERROR = 2
FAMILY_DP, FAMILY_FLOW, FAMILY_PACKET, FAMILY_DEVLINK = 0x20, 0x22, 0x23, 0x24
ACTION_OUTPUT, ACTION_CLONE = 1, 20
REQUEST, ACK, DUMP = 1, 4, 0x300

def msg(mtype, flags, seq, body):
    return struct.pack("=IHHII", 16 + len(body), mtype, flags, seq, 0) + body

def genl(cmd, attrs=b""):
    # genlmsghdr, then the OVS families' struct ovs_header (dp_ifindex).
    return struct.pack("=BBHi", cmd, 1, 0, 0) + attrs

def attr(t, payload):
    a = struct.pack("=HH", 4 + len(payload), t) + payload
    return a + b"\0" * ((4 - len(a) % 4) % 4)

def exchange(path, data, timeout=3.0):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.settimeout(timeout)
    s.connect(path)
    s.send(data)
    replies = []
    try:
        while True:
            d = s.recv(1 << 20)
            if not d:
                break
            replies.append(d)
            # Stop after an error/ack or DONE.
            if any(t in (NLMSG_ERROR, 3) for t in types(d)):
                break
    except socket.timeout:
        pass
    s.close()
    return b"".join(replies)

def types(d):
    out, off = [], 0
    while off + 16 <= len(d):
        ln, t = struct.unpack_from("=IH", d, off)
        out.append(t)
        if ln < 16:
            break
        off += (ln + 3) & ~3
    return out

def errors(d):
    """(errno, message) of each NLMSG_ERROR in d."""
    out, off = [], 0
    while off + 16 <= len(d):
        ln, t = struct.unpack_from("=IH", d, off)
        if ln < 16:
            break
        if t == NLMSG_ERROR and ln >= 20:
            err = -struct.unpack_from("=i", d, off + 16)[0]
            text = d[off + 36: off + ln].split(b"\0")[0].decode(errors="replace") if ln > 36 else ""
            # Extended ack: the message follows the echoed header as an attribute.
            out.append((err, d[off + 20: off + ln]))
        off += (ln + 3) & ~3
    return out

def extack_text(raw):
    """The printable text of an error's extended ack (its message), if any."""
    return "".join(chr(b) for b in raw if 32 <= b < 127)[-120:].strip()

def nested_clones(depth):
    """output(1) inside `depth` nested clone() actions (the kernel allows 16)."""
    a = attr(ACTION_OUTPUT, struct.pack("=I", 1))
    for _ in range(depth):
        a = attr(ACTION_CLONE, a)
    return a

def outputs(count):
    """`count` output(1) actions: 8 bytes each."""
    return attr(ACTION_OUTPUT, struct.pack("=I", 1)) * count

def alive(path):
    d = exchange(path, msg(FAMILY_DP, REQUEST | DUMP, 99, genl(3)))
    return FAMILY_DP in types(d)

path = sys.argv[1]
cases = [
    ("three bytes of garbage", b"\x01\x02\x03"),
    ("header length larger than the datagram", struct.pack("=IHHII", 4096, FAMILY_DP, REQUEST, 1, 0)),
    ("header length below 16", struct.pack("=IHHII", 8, FAMILY_DP, REQUEST, 2, 0)),
    ("unknown family", msg(0x7f, REQUEST | ACK, 3, genl(1))),
    ("generic header missing", msg(FAMILY_DP, REQUEST | ACK, 4, b"")),
    ("generic header cut short", msg(FAMILY_DP, REQUEST | ACK, 11, b"\x03\x01")),
    ("attribute length past the end", msg(FAMILY_FLOW, REQUEST | ACK, 5, genl(1, struct.pack("=HH", 200, 1)))),
    ("flow key that is not a key", msg(FAMILY_FLOW, REQUEST | ACK, 6, genl(1, attr(1, b"\xff" * 7) + attr(3, b"")))),
    ("flow without actions", msg(FAMILY_FLOW, REQUEST | ACK, 7, genl(1, attr(1, attr(3, struct.pack("=I", 1)))))),
    ("u32 attribute of 2 bytes", msg(FAMILY_DEVLINK, REQUEST | ACK, 8, genl(7, attr(10, b"\x01\x00")))),
    ("unknown command", msg(FAMILY_DP, REQUEST | ACK, 9, genl(99))),
    # Control message types are skipped, as netlink_rcv_skb skips them, but an ACK asked
    # for is sent (there was no answer at all: a client waiting for its ACK hung).
    ("NLMSG_NOOP with ACK", msg(1, REQUEST | ACK, 12, b"")),
    ("NLMSG_DONE as a request with ACK", msg(3, REQUEST | ACK, 13, b"")),
    # A port function state (u8) of 4 bytes was skipped and the request acknowledged.
    ("port function state of 4 bytes", msg(FAMILY_DEVLINK, REQUEST | ACK, 17, genl(8,
        attr(10, struct.pack("=I", 1)) + attr(20, struct.pack("=I", 0))))),
    ("string that is not UTF-8", msg(FAMILY_DEVLINK, REQUEST | ACK, 10, genl(6, attr(40, b"\xff\xfe\0") + attr(41, b"1\0")))),
    # 12,000 nested clone() once overflowed the daemon's stack in the action decoder.
    ("actions nested 12000 deep in a flow", msg(FAMILY_FLOW, REQUEST | ACK, 12, genl(1,
        attr(1, attr(3, struct.pack("=I", 1)) + attr(4, bytes(12))) + attr(2, nested_clones(12000))))),
    ("actions nested 12000 deep in an execute", msg(FAMILY_PACKET, REQUEST | ACK, 13, genl(3,
        attr(1, b"\xff" * 6 + b"\x02" + b"\0" * 5 + b"\x08\x00" + bytes(50)) + attr(3, nested_clones(12000))))),
    ("actions nested 17 deep in an execute", msg(FAMILY_PACKET, REQUEST | ACK, 14, genl(3,
        attr(1, b"\xff" * 6 + b"\x02" + b"\0" * 5 + b"\x08\x00" + bytes(50)) + attr(3, nested_clones(17))))),
    # The kernel's MAX_ACTIONS_BUFSIZE: at most 32 KiB of actions, else EMSGSIZE.
    ("64000 bytes of actions in a flow", msg(FAMILY_FLOW, REQUEST | ACK, 15, genl(1,
        attr(1, attr(3, struct.pack("=I", 1)) + attr(4, bytes(12))) + attr(2, outputs(8000))))),
    ("32776 bytes of actions in an execute", msg(FAMILY_PACKET, REQUEST | ACK, 16, genl(3,
        attr(1, b"\xff" * 6 + b"\x02" + b"\0" * 5 + b"\x08\x00" + bytes(50)) + attr(3, outputs(4097))))),
]
rng = random.Random(42)
for i in range(40):
    fam = rng.choice([FAMILY_DP, 0x21, FAMILY_FLOW, 0x23, FAMILY_DEVLINK, 0x25])
    body = genl(rng.randrange(0, 12), bytes(rng.randrange(256) for _ in range(rng.randrange(0, 64))))
    cases.append((f"random body {i} family {fam:#x}", msg(fam, REQUEST | ACK, 100 + i, body)))

failed = 0
for name, data in cases:
    d = exchange(path, data)
    errs = errors(d)
    ok_reply = bool(errs) or (d and types(d))
    if not ok_reply:
        print(f"FAIL {name}: no reply")
        failed += 1
    elif errs and errs[0][0] != 0 and errs[0][0] not in (1, 2, 5, 7, 19, 22, 28, 34, 71, 90, 95, 17, 16, 9, 13, 12, 61, 105):
        print(f"FAIL {name}: odd errno {errs[0][0]}")
        failed += 1
    else:
        print(f"ok {name}: errno {errs[0][0] if errs else 'none'}" + (f" ({extack_text(errs[0][1])})" if errs and errs[0][0] else ""))
    if not alive(path):
        print(f"FAIL daemon stopped answering after: {name}")
        sys.exit(1)

# Datagrams queued together are read together (one run of requests): an unframed one
# among them is answered in its place, and the ones after it still are.
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.settimeout(3.0)
s.connect(path)
for d in (msg(1, REQUEST | ACK, 201, b""), b"\x01\x02\x03", msg(1, REQUEST | ACK, 203, b"")):
    s.send(d)
answers = []
try:
    while len(answers) < 3:
        d = s.recv(1 << 20)
        if not d:
            break
        off = 0
        while off + 20 <= len(d):
            ln, t, _, seq = struct.unpack_from("=IHHI", d, off)
            if ln < 16:
                break
            if t == NLMSG_ERROR:
                answers.append((seq, -struct.unpack_from("=i", d, off + 16)[0]))
            off += (ln + 3) & ~3
except socket.timeout:
    pass
s.close()
order = " ".join(f"{seq}:{err}" for seq, err in answers)
if answers == [(201, 0), (0, 22), (203, 0)]:
    print(f"ok three datagrams at once, the middle one unframed: answered in order ({order})")
else:
    print(f"FAIL three datagrams at once, the middle one unframed: answers {order}")
    failed += 1
sys.exit(1 if failed else 0)
