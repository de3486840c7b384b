# diff-send.py FRAMES [--processed CMD UFID_PREFIX [--base N]] [--snap CMD DIR]: send every frame of
# FRAMES (JSON [{id, port (1-4), hex, snap?}]) into t<port>, in order. Used by the
# differential tests (test-differential, test-ct-differential).
#
# Without --processed, frames are 5 ms apart. With it, frame k is sent only once the
# datapath has processed frame k-1: CMD (a shell command) dumps the datapath's flows
# (`dump-flows -m`), and the packet counters of the flows whose ufid starts with
# UFID_PREFIX (every input frame hits exactly one of them) must add up to k-1 (plus N,
# the frames an earlier run sent). After 3
# frames that were not seen within 2 s each, it warns and falls back to 50 ms gaps.
# With --snap, after each frame that has a "snap" name, CMD's output (e.g. the
# conntrack table) is written to DIR/<snap>.txt.
import json, re, socket, subprocess, sys, time
args = sys.argv[1:]
frames = json.load(open(args.pop(0)))
processed = snap = None
base = 0
while args:
    a = args.pop(0)
    if a == "--processed":
        processed = (args.pop(0), args.pop(0))
    elif a == "--base":
        base = int(args.pop(0))
    elif a == "--snap":
        snap = (args.pop(0), args.pop(0))
    else:
        sys.exit("diff-send.py: unknown argument " + a)

def count():
    out = subprocess.run(processed[0], shell=True, capture_output=True, text=True).stdout
    n = 0
    for line in out.splitlines():
        m = re.match(r"ufid:(\S+?), .*?packets:(\d+)", line)
        if m and m.group(1).startswith(processed[1]):
            n += int(m.group(2))
    return n - base

socks = {}
lost = 0
for k, f in enumerate(frames):
    if processed and lost < 3:
        end = time.time() + 2
        while count() < k:
            if time.time() > end:
                lost += 1
                print("diff-send.py: frame %s: the datapath had not processed the previous frame after 2 s%s"
                      % (f["id"], "; 50 ms gaps from now on" if lost == 3 else ""), file=sys.stderr)
                break
            time.sleep(0.005)
    elif processed:
        time.sleep(0.05)
    i = "t%d" % f["port"]
    if i not in socks:
        socks[i] = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
        socks[i].bind((i, 0))
    socks[i].send(bytes.fromhex(f["hex"]))
    if snap and f.get("snap"):
        end = time.time() + 2
        while processed and lost < 3 and count() < k + 1 and time.time() < end:
            time.sleep(0.005)
        if not processed or lost >= 3:
            time.sleep(0.05)
        out = subprocess.run(snap[0], shell=True, capture_output=True, text=True)
        open("%s/%s.txt" % (snap[1], f["snap"]), "w").write(out.stdout + out.stderr)
    if not processed:
        time.sleep(0.005)
if processed and lost < 3:
    end = time.time() + 2
    while count() < len(frames) and time.time() < end:
        time.sleep(0.005)
