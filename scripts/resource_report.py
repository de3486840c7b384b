#!/usr/bin/env python3
"""Renders the resource-management experiments (rows of scripts/resource_models.py and
the utilisation table of UtilisationExperimentTests) as Markdown beside the paper's
numbers, and plots Table 1.  Usage: resource_report.py ROWS UTIL_MD OUT_MD OUT_PNG TITLE"""
import json
import sys

rows_path, util_path, out_md, out_png, title = sys.argv[1:6]
rows = [json.loads(l) for l in open(rows_path) if l.strip()]
t1 = [r for r in rows if r["experiment"] == "table1"]
bh = [r for r in rows if r["experiment"] == "blackhole"]
PAPER = {"lockstep": (600, 1.10, 110), "credit": (480, 0.81, 80)}


def f(x, fmt):
    return "n/a" if x is None else format(x, fmt)


md = [f"# Hardware resource management: the paper's experiments on esw", "", f"_{title}_", ""]
md += ["## Table 1: one batch of flows, per offload model", "",
       "Each run: one `esw-dpctl add-flows` of N flows (policy skip_sw; the LAST flow is the one a ping from VF0 "
       "to VF1 needs, its reply flow installed before), hw_latency_us 55. Caller: until add-flows returned. "
       "Coherent: until it returned AND the firmware had programmed every flow. Outage: from the batch's start "
       "to the first echo reply (a ping every 10 ms started with the batch). Seen by the client (the CLI's whole run) "
       "and, in the eswd columns, by the driver itself (`esw-devlink -s dev show`: first operation to the last one's "
       "return, and to the last rule programmed).", "",
       "| model | flows | query µs | caller ms | coherent ms | coherent / lockstep | eswd caller ms | eswd coherent ms | caller accesses | caller waited ms | firmware accesses | outage s | pings lost |",
       "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
lock = {(r["query_latency_us"]): r["coherent_ms"] for r in t1 if r["model"] == "lockstep"}
for r in t1:
    base = lock.get(r["query_latency_us"])
    ratio = "n/a" if not base or r["coherent_ms"] is None else f"{r['coherent_ms'] / base:.2f}"
    md.append(f"| {r['model']} | {r['flows']} | {r['query_latency_us']} | {r['caller_ms']:.1f} | {f(r['coherent_ms'], '.1f')} "
              f"| {ratio} | {r.get('daemon_caller_ms', 0):.1f} | {r.get('daemon_coherent_ms', 0):.1f} | {r['caller_accesses']} | {r['caller_waited_ms']:.2f} | {r['firmware_accesses']} "
              f"| {f(r['outage_s'], '.3f')} | {f(r['pings_lost'], 'd')} |")
for m, (lat, out, lost) in PAPER.items():
    md.append(f"| paper: {m} (Spectrum, 10,000 routes) | 10000 | 35 / 350 | | {lat} | {lat / 600:.2f} | | | | | | {out:.2f} | {lost} |")
# The floor: the same batch with no hardware access on the caller's path at all (async):
# what the control path itself costs here. The hidden share is how much of lockstep's
# hardware wait a model takes off the coherent latency, against that floor.
floor = {}
for r in t1:
    if r["model"] in ("async", "predictive") and r["coherent_ms"] is not None:
        q = r["query_latency_us"]
        floor[q] = min(floor.get(q, r["coherent_ms"]), r["coherent_ms"])
md += ["", "The floor is the same batch with no hardware access on the caller's path at all (the faster of `async` "
       "and `predictive` in the run): what the "
       "control path itself costs here (CLI, netlink, decode, classifier, driver). A coherent latency of 0.1x "
       "lockstep's is out of reach of any model when the floor is above it; what a model can do is hide lockstep's "
       "hardware wait (lockstep - floor), and this is the share it hides.",
       "", "| query µs | lockstep coherent ms | floor (no hardware wait) ms | floor / lockstep | model | coherent ms | hardware latency hidden |",
       "|---:|---:|---:|---:|---|---:|---:|"]
for r in t1:
    q = r["query_latency_us"]
    if r["model"] not in ("prefetch", "credit") or not lock.get(q) or not floor.get(q) or r["coherent_ms"] is None:
        continue
    hidden = (lock[q] - r["coherent_ms"]) / (lock[q] - floor[q]) if lock[q] > floor[q] else float("nan")
    md.append(f"| {q} | {lock[q]:.1f} | {floor[q]:.1f} | {floor[q] / lock[q]:.2f} | {r['model']} | {r['coherent_ms']:.1f} | {hidden * 100:.0f} % |")
md += ["", "## Figure 1: the blackhole", "",
       "The masked table almost full (free entries below the batch), policy skip_sw, a batch of flows each matching "
       "its own UDP port; after the add, 10 packets per flow from VF0, counted by tcpdump on VF1.", "",
       "| model | table | free | batch | add | reported installed | in hardware | refused later | packets lost of installed flows | installed flows blackholed |",
       "|---|---:|---:|---:|---|---:|---:|---:|---:|---:|"]
for r in bh:
    add = "success" if r["add_rc"] == 0 else "refused: " + r["add_error"].replace("|", "/")
    md.append(f"| {r['model']} | {r['table_size']} | {r['free_before']} | {r['batch']} | {add} | {r['reported_installed']} "
              f"| {r['in_hardware']} | {r['failed_late']} | {r['lost_of_reported_installed']} | {r['flows_blackholed']} |")
md += ["", "## Utilisation: admitted before the first refusal", "",
       "A masked table filled with IPv4 (one unit) and IPv6 (double width) rules in turn, and exact-match memory "
       "(an eighth held by legacy MAC entries) filled with 5-tuples, each until its first refusal. lockstep asks the "
       "hardware each time: the real capacity.", ""]
md += open(util_path).read().splitlines()
open(out_md, "w").write("\n".join(md) + "\n")

try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:
    sys.exit(0)
queries = sorted({r["query_latency_us"] for r in t1})
fig, axes = plt.subplots(1, 2, figsize=(11, 4))
models = [r["model"] for r in t1 if r["query_latency_us"] == queries[0]]
width = 0.8 / max(1, len(queries))
for i, q in enumerate(queries):
    sel = {r["model"]: r for r in t1 if r["query_latency_us"] == q}
    xs = [j + i * width for j in range(len(models))]
    axes[0].bar(xs, [sel[m]["coherent_ms"] or 0 for m in models], width, label=f"query {q} µs")
    axes[1].bar(xs, [(sel[m]["outage_s"] or 0) * 1000 for m in models], width, label=f"query {q} µs")
for ax, t in zip(axes, ["coherent latency (ms)", "data outage (ms)"]):
    ax.set_xticks([j + width * (len(queries) - 1) / 2 for j in range(len(models))])
    ax.set_xticklabels(models)
    ax.set_title(t)
    ax.legend()
n = t1[0]["flows"] if t1 else 0
fig.suptitle(f"{n} flows in one batch, hw_latency 55 µs — {title}")
fig.tight_layout()
fig.savefig(out_png, dpi=100)
