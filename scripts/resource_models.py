#!/usr/bin/env python3
"""The experiments of "Hardware resource management for network function offload",
run against a live eswd (BPF data plane) by scripts/resource-models.sh, which builds the
lab topology and calls this with the names it used.

  table1     N flows in one add-flows batch (skip_sw) per offload model, hw_latency_us 55
             and hw_query_latency_us 35 / 350: caller's latency, coherent latency (until
             every rule is programmed), hardware accesses and time waited on the caller's
             path, and the data outage of a ping every 10 ms that needs the batch's LAST
             flow, started with the batch.
  blackhole  the masked table almost full, a batch of more flows than fit: under `async`
             the add succeeds and the flows that never reach hardware lose their traffic
             (tcpdump on the receiving VF is the witness); under a synchronous model the
             batch fails with ENOSPC and nothing of it is installed.

Writes one JSON object per line (a row) to stdout.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time

MODELS = ["lockstep", "prefetch", "credit", "predictive", "async"]


class Lab:
    def __init__(self, args):
        self.bin = args.bin
        self.prefix = args.prefix
        self.env = dict(os.environ, ESW_CONTROL=args.control)
        self.tmp = args.tmp
        self.dst = args.dst

    def cli(self, tool, *words, check=True):
        r = subprocess.run([os.path.join(self.bin, tool), *words], env=self.env, capture_output=True, text=True)
        if check and r.returncode != 0:
            raise RuntimeError(f"{tool} {' '.join(words)}: rc={r.returncode}: {r.stderr.strip()}")
        return r

    def dpctl(self, *w, check=True):
        return self.cli("esw-dpctl", *w, check=check)

    def devlink(self, *w, check=True):
        return self.cli("esw-devlink", *w, check=check)

    def ns(self, node, *cmd, **kw):
        return ["ip", "netns", "exec", self.prefix + node, *cmd]

    def param(self, name, value):
        self.devlink("dev", "param", "set", "esw0", "name", name, "value", str(value), "cmode", "runtime")

    def stats(self):
        out = self.devlink("-j", "dev", "show", "-s").stdout
        return json.loads(out)["dev"]["esw0"]["offload"]

    def wait_coherent(self, timeout=60.0):
        """Polls until the firmware has nothing left; returns the last stats."""
        end = time.monotonic() + timeout
        while True:
            s = self.stats()
            if s["pending"] == 0 or time.monotonic() > end:
                return s
            time.sleep(0.002)

    def flows(self):
        return self.dpctl("dump-flows", "-m").stdout.splitlines()

    def reset(self, keep_file):
        """Back to the reply flow only (lockstep, no latency), nothing pending."""
        self.param("offload_model", "lockstep")
        self.param("hw_latency_us", 0)
        self.param("hw_query_latency_us", 0)
        self.dpctl("del-flows")
        self.wait_coherent()
        self.dpctl("add-flows", keep_file)


def write(path, lines):
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def filler(i):
    """A flow that matches no traffic of the experiments (sources outside the VMs)."""
    return f"in_port(1),eth(),eth_type(0x0800),ipv4(src=198.18.{(i >> 8) & 255}.{i & 255},frag=no) drop"


def first_reply(ping_out):
    """(seq, unix time) of the first echo reply in `ping -D` output, or None."""
    for line in ping_out.splitlines():
        m = re.match(r"\[(\d+\.\d+)\].*icmp_seq=(\d+)", line)
        if m:
            return int(m.group(2)), float(m.group(1))
    return None


def table1(lab, n, queries, reply_file):
    last = "in_port(1),eth(),eth_type(0x0800),ipv4(frag=no) 2"
    batch = os.path.join(lab.tmp, "table1.flows")
    write(batch, [filler(i) for i in range(n - 1)] + [last])
    for q in queries:
        for model in MODELS:
            lab.reset(reply_file)
            lab.param("hw_latency_us", 55)
            lab.param("hw_query_latency_us", q)
            lab.param("offload_model", model)
            # The driver's batch statistics group operations less than 100 ms apart: the
            # reset's must not count in the batch's.
            time.sleep(0.25)
            before = lab.stats()
            count = int(max(3.0, n * 80e-6 * 3) / 0.01)
            ping = subprocess.Popen(lab.ns("vm0", "ping", "-D", "-n", "-i", "0.01", "-W", "1", "-c", str(count), lab.dst),
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            t0_wall, t0 = time.time(), time.monotonic_ns()
            r = lab.dpctl("add-flows", batch, check=False)
            t1 = time.monotonic_ns()
            after = lab.wait_coherent()
            ping_out, _ = ping.communicate()
            coherent_end = max(t1, after["coherent_at_ns"]) if after["pending"] == 0 else None
            reply = first_reply(ping_out)
            offloaded = sum(1 for l in lab.flows() if "offloaded:yes" in l)
            print(json.dumps({
                "experiment": "table1", "model": model, "flows": n, "hw_latency_us": 55, "query_latency_us": q,
                "add_rc": r.returncode,
                "caller_ms": (t1 - t0) / 1e6,
                "coherent_ms": None if coherent_end is None else (coherent_end - t0) / 1e6,
                "caller_accesses": after["hw_accesses"] - before["hw_accesses"],
                "caller_waited_ms": (after["waited_us"] - before["waited_us"]) / 1e3,
                "firmware_accesses": after["fw_accesses"] - before["fw_accesses"],
                "daemon_caller_ms": after["last_batch_caller_us"] / 1e3,
                "daemon_coherent_ms": after.get("last_batch_coherent_us", 0) / 1e3,
                "offloaded": offloaded,
                "outage_s": None if reply is None else reply[1] - t0_wall,
                "pings_lost": None if reply is None else reply[0] - 1,
            }), flush=True)


def reason(stderr):
    """The refusal's own words (ENOSPC and the table), not the summary line."""
    lines = stderr.strip().splitlines()
    line = next((l for l in lines if "space" in l), lines[-1] if lines else "")
    m = re.search(r"hardware refused.*", line)
    return m.group(0) if m else line


def send_udp(lab, ports, per_port):
    code = ("import socket,sys\n"
            "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
            f"for p in {ports!r}:\n"
            f"    for _ in range({per_port}): s.sendto(b'x'*32,('{lab.dst}',p))\n")
    subprocess.run(lab.ns("vm0", sys.executable, "-c", code), check=True)


class Capture:
    """tcpdump on the receiving VF, the blackhole's witness. Counted only once tcpdump
    says it listens, stopped only after a quiet period, with a short snap length (in
    immediate mode each ring slot holds a whole snap length: at the default 256 KiB the
    ring has a few slots and drops a burst on a loaded machine); a drop it reports
    fails the run, as lost packets would otherwise read as blackholed flows."""

    def __init__(self, lab, vf_netdev, lo, hi):
        self.proc = subprocess.Popen(lab.ns("vm1", "tcpdump", "--immediate-mode", "-s", "128", "-B", "4096",
                                            "-i", vf_netdev, "-n", "-l", "-q", "-p", f"udp and dst portrange {lo}-{hi}"),
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines, self.stderr = [], []
        self.last_line_at = time.monotonic()
        listening, started = threading.Event(), threading.Event()

        def read_stderr():
            for line in self.proc.stderr:
                self.stderr.append(line.strip())
                if "listening on" in line:
                    started.set()
                    listening.set()
            listening.set()

        def read_stdout():
            for line in self.proc.stdout:
                self.lines.append(line)
                self.last_line_at = time.monotonic()

        self.readers = [threading.Thread(target=f, daemon=True) for f in (read_stderr, read_stdout)]
        for t in self.readers:
            t.start()
        if not listening.wait(20) or not started.is_set() or self.proc.poll() is not None:
            raise RuntimeError(f"tcpdump did not start: {self.stderr}")

    def stop(self, quiet=1.0, limit=15.0):
        """Waits until no packet came for `quiet` seconds, then stops tcpdump; returns its lines."""
        begun = time.monotonic()
        deadline = begun + limit
        # Quiet since the packets were sent (now), not since tcpdump started.
        while time.monotonic() < deadline and time.monotonic() - max(self.last_line_at, begun) < quiet:
            time.sleep(0.1)
        self.proc.terminate()
        self.proc.wait()
        for t in self.readers:
            t.join(5)
        dropped = [l for l in self.stderr if "dropped by kernel" in l and not l.startswith("0 ")]
        if dropped:
            raise RuntimeError(f"tcpdump lost packets itself: {dropped}")
        return self.lines


def blackhole(lab, reply_file, vf_netdev, size, free, batch_size, per_port):
    ports = list(range(6000, 6000 + batch_size))
    fill = os.path.join(lab.tmp, "blackhole.fill")
    batch = os.path.join(lab.tmp, "blackhole.flows")
    write(fill, [filler(i) for i in range(size - 1 - free)])
    write(batch, [f"in_port(1),eth(),eth_type(0x0800),ipv4(proto=17,frag=no),udp(dst={p}) 2" for p in ports])
    lab.reset(reply_file)
    lab.devlink("resource", "set", "esw0", "path", "/masked", "size", str(size))
    lab.devlink("dev", "reload", "esw0")
    for model in ["async", "lockstep", "credit", "prefetch", "predictive"]:
        lab.reset(reply_file)
        lab.dpctl("add-flows", fill)
        lab.param("offload_model", model)
        lab.param("hw_latency_us", 55)
        lab.param("hw_query_latency_us", 35)
        before = lab.stats()
        r = lab.dpctl("add-flows", batch, check=False)
        after = lab.wait_coherent()
        installed = [l for l in lab.flows() if "udp(" in l]
        reported = {int(re.search(r"udp\([^)]*dst=(\d+)", l).group(1)) for l in installed}
        failed = sum(1 for l in installed if "offloaded:failed" in l)
        tcpdump = Capture(lab, vf_netdev, ports[0], ports[-1])
        send_udp(lab, ports, per_port)
        got = {p: 0 for p in ports}
        for line in tcpdump.stop():
            m = re.search(r"\.(\d+): UDP", line)
            if m and int(m.group(1)) in got:
                got[int(m.group(1))] += 1
        lost_installed = sum(per_port - got[p] for p in reported)
        print(json.dumps({
            "experiment": "blackhole", "model": model, "table_size": size, "free_before": free, "batch": batch_size,
            "add_rc": r.returncode, "add_error": reason(r.stderr) if r.returncode else "",
            "reported_installed": len(reported), "in_hardware": len(reported) - failed, "failed_late": failed,
            "late_failures": after["late_failures"] - before["late_failures"],
            "packets_per_flow": per_port, "lost_of_reported_installed": lost_installed,
            "flows_blackholed": sum(1 for p in reported if got[p] == 0),
        }), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--prefix", required=True)
    ap.add_argument("--control", required=True)
    ap.add_argument("--tmp", required=True)
    ap.add_argument("--dst", required=True)
    ap.add_argument("--vf-netdev", default="esw0v1")
    ap.add_argument("--reply-flows", required=True)
    ap.add_argument("--flows", type=int, default=10000)
    ap.add_argument("--queries", default="35,350")
    ap.add_argument("--parts", default="table1,blackhole")
    args = ap.parse_args()
    lab = Lab(args)
    parts = args.parts.split(",")
    if "table1" in parts:
        table1(lab, args.flows, [int(q) for q in args.queries.split(",")], args.reply_flows)
    if "blackhole" in parts:
        blackhole(lab, args.reply_flows, args.vf_netdev, size=64, free=5, batch_size=20, per_port=10)


if __name__ == "__main__":
    main()
