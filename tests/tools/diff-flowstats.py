# diff-flowstats.py ESWDUMP OVSDUMP: `dump-flows -m --no-names` of esw and of OVS's
# userspace datapath: the same ufids, each with the same match and actions text and the
# same packets, bytes and TCP flags. Prints "ok|FAIL <text>" lines, details indented
# (tests/lib.sh's run_py_checks). Used by the differential tests.
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
