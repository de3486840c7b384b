"""bench_plot.py ROWS PNG SUBTITLE — the bar charts of scripts/bench.sh's results.png.

ROWS: one line per topology: name TCP-Gbit/s UDP-kpps CPU%-TCP CPU%-UDP (n/a where none).
"""
import sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
def num(x):
    try: return float(x)
    except ValueError: return None
def color(n):
    if n.startswith("esw"): return "#1f77b4"
    if n.startswith("ovs"): return "#ff7f0e"
    return "#7f7f7f"
fig, axes = plt.subplots(1, 3, figsize=(15, 5.2))
panels = ((1, "iperf3 TCP, 1 stream", "Gbit/s"), (2, "UDP 64 B delivered", "kpps"))
for ax, (col, title, unit) in zip(axes, panels):
    sel = [(r[0], num(r[col])) for r in rows if num(r[col]) is not None]
    bars = ax.bar([s[0] for s in sel], [s[1] for s in sel], color=[color(s[0]) for s in sel])
    ax.set_title(title); ax.set_ylabel(unit)
    for bar, (_, v) in zip(bars, sel):
        ax.annotate("%.3g" % v, (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom", fontsize=8)
    # labels slanted from their bar's centre, so long names do not cross their neighbours
    plt.setp(ax.get_xticklabels(), rotation=40, ha="right", rotation_mode="anchor")
ax = axes[2]
sel = [r for r in rows if num(r[3]) is not None or num(r[4]) is not None]
x = range(len(sel)); w = 0.4
ax.bar([i - w / 2 for i in x], [num(r[3]) or 0 for r in sel], w, label="during TCP", color="#2ca02c")
ax.bar([i + w / 2 for i in x], [num(r[4]) or 0 for r in sel], w, label="during UDP", color="#98df8a")
ax.set_xticks(list(x)); ax.set_xticklabels([r[0] for r in sel], rotation=40, ha="right", rotation_mode="anchor")
ax.set_title("switch process CPU"); ax.set_ylabel("% of one core"); ax.legend(fontsize=8)
fig.suptitle("esw vs Open vSwitch userspace datapath (TSO) vs kernel (veth, vxlan) (" + sys.argv[3] + ")", fontsize=10)
fig.tight_layout()
fig.savefig(sys.argv[2], dpi=110)
