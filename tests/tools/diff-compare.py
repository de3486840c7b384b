# diff-compare.py [--tag ip] FRAMES ESW OVS PORTS: the differential tests' frame
# comparison. FRAMES: the input frames (JSON [{id, port (1-4), desc, expect, hex,
# ovs_fix?}]); ESW, OVS: what capture.py saw come out of t1..t4 on each side; PORTS: the
# datapath port numbers of t1..t4 ("2,3,4,5"). Per input frame and output port, the
# multisets of output frames must be equal; `expect` (how many frames OVS must produce)
# keeps the comparison from being vacuous. Prints "ok|FAIL <text>" lines, details
# indented (tests/lib.sh's run_py_checks).
#
# Output frames are attributed to input frames by a tag: by default the bytes
# "EDIFFnn" in the payload; with --tag ip, the IPv4 identification 0xE000+n or the IPv6
# flow label 0xE0000+n (for frames without room for a payload tag, e.g. TCP handshakes;
# neither field is touched by conntrack or NAT). Untagged frames (noise) count as frame 0.
#
# ovs_fix {offset, length, why}: where OVS's userspace datapath is known to be wrong,
# those bytes of its output are compared as the input has them (and said so).
import json, re, struct, sys
from collections import defaultdict
args = sys.argv[1:]
mode = "payload"
if args[0] == "--tag":
    mode = args[1]; args = args[2:]
frames = json.load(open(args[0]))
sides = {"esw": json.load(open(args[1])), "ovs": json.load(open(args[2]))}
port_of = {"t%d" % i: n for i, n in zip((1, 2, 3, 4), args[3].split(","))}
tagre = re.compile(rb"EDIFF(\d\d)")

def tag_of(raw):
    if mode == "payload":
        m = tagre.search(raw)
        return int(m.group(1)) if m else 0
    off, et = 12, None
    while off + 2 <= len(raw):
        et = struct.unpack("!H", raw[off:off + 2])[0]
        if et in (0x8100, 0x88a8):
            off += 4
            continue
        break
    l3 = off + 2
    if et == 0x0800 and len(raw) >= l3 + 6:
        v = struct.unpack("!H", raw[l3 + 4:l3 + 6])[0]
        return v - 0xE000 if v & 0xF000 == 0xE000 else 0
    if et == 0x86DD and len(raw) >= l3 + 4:
        v = struct.unpack("!I", raw[l3:l3 + 4])[0] & 0xFFFFF
        return v - 0xE0000 if v & 0xF0000 == 0xE0000 else 0
    return 0

def summary(hx):
    try:
        import logging
        logging.getLogger("scapy").setLevel(logging.ERROR)
        from scapy.all import Ether
        return Ether(bytes.fromhex(hx)).summary()
    except Exception as e:
        return "(%s)" % e

outs = {s: defaultdict(lambda: defaultdict(list)) for s in sides}
for s, caps in sides.items():
    for iface, hx in caps:
        outs[s][tag_of(bytes.fromhex(hx))][port_of[iface]].append(hx)
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
                    if mode != "payload":
                        problems.append("              " + summary(hx))
            for hx in sorted(e[port]):
                if hx not in o[port]:
                    problems.append("    esw only: " + hx)
                    if mode != "payload":
                        problems.append("              " + summary(hx))
    n_e, n_o = sum(map(len, e.values())), sum(map(len, o.values()))
    differ = bool(problems)
    if f and n_o != f["expect"]:
        problems.append("  ovs produced %d frame(s), the test expects %d (test or OVS setup wrong?)" % (n_o, f["expect"]))
    if problems:
        print("FAIL %s: %s" % (name, "esw and ovs differ" if differ else "unexpected frame count"))
        if f:
            print("  input on port %s: %s" % (port_of["t%d" % f["port"]], f["hex"]))
            if mode != "payload":
                print("              " + summary(f["hex"]))
        for p in problems:
            print(p)
    elif f:
        print("ok %s: %d frame(s) on ports [%s] identical" % (name, n_o, ",".join(sorted(o, key=int))))
    elif n_o:
        print("ok %d untagged frame(s), identical" % n_o)
    for line in notes:
        print(line)
