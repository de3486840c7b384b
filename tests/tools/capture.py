# capture.py OUT STOPFILE [--outgoing] IFACE...: every frame on IFACEs (received only,
# unless --outgoing) until STOPFILE exists, VLAN tags the kernel took out of the data put
# back (PACKET_AUXDATA); written to OUT as JSON [[iface, hex], ...]. Prints "ready" once
# every socket is bound. Used by the differential tests (test-differential, test-hwsw).
import json, os, select, socket, struct, sys
out, stop, args = sys.argv[1], sys.argv[2], sys.argv[3:]
outgoing = "--outgoing" in args
ifaces = [a for a in args if a != "--outgoing"]
SOL_PACKET, PACKET_AUXDATA = 263, 8
TP_STATUS_VLAN_VALID, TP_STATUS_VLAN_TPID_VALID = 0x10, 0x40
socks = {}
for i in ifaces:
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
    s.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
    s.bind((i, 3))
    socks[s] = i
print("ready", flush=True)
got = []
def drain(s):
    while True:
        try:
            data, anc, _, addr = s.recvmsg(65536, socket.CMSG_SPACE(32), socket.MSG_DONTWAIT)
        except BlockingIOError:
            return
        if addr[2] == socket.PACKET_OUTGOING and not outgoing:
            continue
        for level, typ, cd in anc:
            if level == SOL_PACKET and typ == PACKET_AUXDATA and len(cd) >= 20:
                status, _, _, _, _, tci, tpid = struct.unpack("IIIHHHH", cd[:20])
                if status & TP_STATUS_VLAN_VALID:
                    if not status & TP_STATUS_VLAN_TPID_VALID:
                        tpid = 0x8100
                    data = data[:12] + struct.pack("!HH", tpid, tci) + data[12:]
        got.append([socks[s], data.hex()])
while not os.path.exists(stop):
    r, _, _ = select.select(list(socks), [], [], 0.05)
    for s in r:
        drain(s)
for s in socks:
    drain(s)
json.dump(got, open(out, "w"))
