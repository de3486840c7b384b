#!/usr/bin/env python3
"""report.py ROWS.jsonl OUT.md OUT.png SUBTITLE — the placement study's table and plot."""
import json
import sys

import statistics

raw = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]


def median_rows(raw):
    """One row per (placement, function): the median of each number over the runs."""
    groups = {}
    for r in raw:
        groups.setdefault((r["placement"], r["function"]), []).append(r)
    out = []
    for rs in groups.values():
        m = dict(rs[0])
        for k, v in rs[0].items():
            vals = [r[k] for r in rs if isinstance(r.get(k), (int, float))]
            if isinstance(v, (int, float)) and vals:
                med = statistics.median(vals)
                m[k] = round(med, 1) if isinstance(med, float) and med != int(med) else int(med)
        m["runs"] = len(rs)
        out.append(m)
    return out


rows = median_rows(raw)
md, png, subtitle = sys.argv[2], sys.argv[3], sys.argv[4]
PLACES = ["nic", "nic-25", "nic-10", "vm-driver", "vm-bypass", "vm-stack"]
FUNCS = ["drop", "loop10", "loop100", "loop1000", "dns"]


def f(v, suffix=""):
    if v is None:
        return "–"
    if isinstance(v, float) and v >= 1000 or isinstance(v, int):
        return f"{v:,}{suffix}"
    return f"{v}{suffix}"


out = [f"# Placement study: the same eBPF function in the NIC, in the VM's driver, in the VM's user space",
       "", f"_{subtitle}; `scripts/bench.sh placement`_", ""]
base = next((r for r in rows if r["placement"] == "none"), None)
if base:
    out += [f"Baseline (no function; the flood reaches VF0's stack, which drops it): offered "
            f"{f(base['offered_pps'])} frames/s, CPU busy {base['cpu_busy_pct']} % "
            f"(softirq {base['cpu_softirq_pct']} %), neighbour ping p50/p99 "
            f"{f(base['neighbour_ping_p50_us'])}/{f(base['neighbour_ping_p99_us'])} µs.", ""]
out += ["CPU: shares of all CPUs during the flood. `host kernel` is system + softirq time (the switch's pipeline, the NIC "
        "stage, the VM's driver: one kernel here); `VM processes` the user-space CPU of processes in the VM's namespace "
        "(AF_XDP, the socket server); `busy` everything, including other tenants of this shared machine.", "",
        "`NIC engine`: frames/s the engine's full queue dropped (overflow), the mean wait of the frames it held "
        "(nic_queue_us 1000), and held frames/s that left 100 µs or more after their time (eswd's delay line, a user-space "
        "thread, could not keep up).", "",
        "| function | placement | offered/s | handled/s | prog ns/frame | host kernel % | VM processes % | busy % | "
        "neighbour ping p50/p99 µs (answered) | NIC engine overflow/s, wait µs, late/s | dns p50/p99 µs (answered) | dns during the flood |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|---|---|---|"]
for fn in FUNCS:
    for pl in PLACES:
        for r in rows:
            if r["function"] != fn or r["placement"] != pl:
                continue
            dns = loaded = "–"
            if "dns_flood_p50_us" in r:
                loaded = f"{f(r['dns_flood_p50_us'])}/{f(r['dns_flood_p99_us'])} ({r['dns_flood_answered']}/{r['dns_flood_sent']})"
            if "dns_p50_us" in r:
                dns = f"{f(r['dns_p50_us'])}/{f(r['dns_p99_us'])} ({r['dns_answered']}/{r['dns_sent']})"
            answered = f" ({r['neighbour_pings']}/{r['neighbour_pings_sent']})" if "neighbour_pings_sent" in r else ""
            engine = (f"{f(r['nic_overflow_pps'])}, {f(r['nic_held_wait_us'])}, {f(r.get('nic_late_pps', 0))}"
                      if "nic_overflow_pps" in r else "–")
            out.append(f"| {fn} | {pl} | {f(r['offered_pps'])} | {f(r['handled_pps'])} | {f(r['prog_ns'])} | "
                       f"{round(r['cpu_system_pct'] + r['cpu_softirq_pct'], 1)} | {r['cpu_vm_pct']} | {r['cpu_busy_pct']} | "
                       f"{f(r['neighbour_ping_p50_us'])}/{f(r['neighbour_ping_p99_us'])}{answered} | {engine} | {dns} | {loaded} |")

# Who pays for the function: the slides' VM share and host share. bpf_stats run times say
# which code ran: the switch's pipeline (the emulated NIC with its stage's program; it runs
# on the host's CPUs) and the XDP program in the VM (the VM's driver, in a VM the guest
# kernel's). VM share = VM driver + VM processes; host share = everything else that was busy.
def shares(r):
    vm = r.get("cpu_vm_driver_pct", 0) + r["cpu_vm_pct"]
    return round(vm, 1), round(max(0.0, r["cpu_busy_pct"] - vm), 1)


if any("cpu_nic_pipeline_pct" in r for r in rows):
    out += ["", "## Who pays: the VM's share and the host's", "",
            "Shares of all CPUs during the flood, by the code that ran (bpf_stats run time for the BPF programs). "
            "`NIC pipeline`: esw_port_rx on every port, with the NIC stage's program in it — the emulated NIC, "
            "which executes on the host's CPUs (its engine model delays frames, it does not lend a CPU of its "
            "own). `VM driver`: the XDP program in the VM. `VM share` = VM driver + VM processes; `host share` = "
            "all other busy time (the host kernel, eswd, the rest of the pipeline's path).", "",
            "| function | placement | NIC pipeline % | VM driver % | VM processes % | VM share % | host share % | handled/s |",
            "|---|---|---:|---:|---:|---:|---:|---:|"]
    for fn in FUNCS:
        for pl in PLACES:
            for r in rows:
                if r["function"] != fn or r["placement"] != pl or "cpu_nic_pipeline_pct" not in r:
                    continue
                vm, host = shares(r)
                out.append(f"| {fn} | {pl} | {r['cpu_nic_pipeline_pct']} | {r['cpu_vm_driver_pct']} | {r['cpu_vm_pct']} | "
                           f"{vm} | {host} | {f(r['handled_pps'])} |")
open(md, "w").write("\n".join(out) + "\n")

try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except Exception as e:  # the table is the result; the plot is a convenience
    print(f"no plot: {e}", file=sys.stderr)
    sys.exit(0)
fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
places = [p for p in PLACES if any(r["placement"] == p for r in rows)]
funcs = [fn for fn in FUNCS if any(r["function"] == fn for r in rows)]
width = 0.8 / max(1, len(places))
for i, pl in enumerate(places):
    xs, hs, vs, hsh, ps = [], [], [], [], []
    for j, fn in enumerate(funcs):
        r = next((r for r in rows if r["placement"] == pl and r["function"] == fn), None)
        if not r:
            continue
        xs.append(j + i * width)
        hs.append((r["handled_pps"] or 0) / 1000)
        vm, host = shares(r)
        vs.append(vm)
        hsh.append(host)
        ps.append(r["neighbour_ping_p99_us"] or 0)
    axes[0].bar(xs, hs, width, label=pl)
    axes[1].bar(xs, vs, width, label=pl)
    axes[1].bar(xs, hsh, width, bottom=vs, color="none", edgecolor="grey", hatch="//")
    axes[2].bar(xs, ps, width, label=pl)
for ax, title in zip(axes, ["handled kframes/s (flood)", "CPU %: VM share (solid), host share (hatched)", "neighbour ping p99 (µs)"]):
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(funcs))])
    ax.set_xticklabels(funcs)
    ax.set_title(title)
axes[0].legend(fontsize=8)
fig.suptitle("esw placement study — " + subtitle, fontsize=10)
fig.tight_layout()
fig.savefig(png, dpi=100)
