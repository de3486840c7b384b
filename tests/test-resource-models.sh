#!/usr/bin/env bash
# The offload models of "Hardware resource management for network function offload",
# end to end on real netdevs: scripts/resource-models.sh in quick mode (1,000 flows,
# hw_latency_us 55, hw_query_latency_us 35), its shape asserted as ratios:
# lockstep's caller waits about one access per flow, credit's caller waits far less,
# every model ends coherent (all flows in hardware) and the last flow's traffic gets
# through; the blackhole: async loses traffic of flows it reported
# installed, every synchronous model refuses the batch whole and loses none of them.
. "$(dirname "$0")/lib.sh"
t_require_root

rows=$T_DIR/rows.jsonl
ESW_BIN=$ESW_BIN ESW_RM_PREFIX=$T_PREFIX bash "$T_ROOT/scripts/resource-models.sh" --quick --rows "$rows" \
    2>"$T_DIR/experiments.log"
check_eq "the experiments ran" 0 $?
sed 's/^/    | /' "$rows"

run_py_checks /usr/bin/python3 - "$rows" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
t1 = {r["model"]: r for r in rows if r["experiment"] == "table1"}
bh = {r["model"]: r for r in rows if r["experiment"] == "blackhole"}
def check(cond, what):
    print(("ok " if cond else "FAIL ") + what)
n = 1000
for m, r in t1.items():
    check(r["add_rc"] == 0 and r["offloaded"] == n + 1, f"{m}: the batch is in hardware ({r['offloaded']} flows offloaded)")
    check(r["coherent_ms"] is not None, f"{m}: coherent (nothing left pending)")
    check(r["pings_lost"] is not None, f"{m}: the ping got through once the last flow was in")
lw = t1["lockstep"]["caller_waited_ms"]
expected = n * 0.055
check(0.8 * expected <= lw <= 4 * expected, f"lockstep waits ~one access per flow: {lw:.1f} ms for {n} x 55 us")
check(t1["lockstep"]["caller_accesses"] == n, "lockstep: one caller access per flow")
check(t1["prefetch"]["caller_accesses"] <= n // 64 + 2, f"prefetch: one caller access per batch ({t1['prefetch']['caller_accesses']})")
check(t1["credit"]["caller_waited_ms"] < 0.2 * lw, f"credit's caller waits {t1['credit']['caller_waited_ms']:.2f} ms < 0.2 x lockstep's")
check(t1["predictive"]["caller_accesses"] == 0 and t1["async"]["caller_accesses"] == 0, "predictive and async: no access on the caller's path")
a = bh["async"]
check(a["add_rc"] == 0 and a["reported_installed"] == a["batch"], "async: the whole batch reported installed")
check(a["failed_late"] > 0 and a["late_failures"] == a["failed_late"], f"async: {a['failed_late']} flows refused later, visible per flow")
check(a["lost_of_reported_installed"] > 0 and a["flows_blackholed"] == a["failed_late"],
      f"async blackholes: {a['lost_of_reported_installed']} packets of installed flows lost (tcpdump)")
for m in ["lockstep", "prefetch", "credit", "predictive"]:
    r = bh[m]
    check(r["add_rc"] != 0 and r["reported_installed"] == 0 and r["lost_of_reported_installed"] == 0,
          f"{m}: the batch is refused whole, nothing installed, nothing installed is lost")
PY
