#!/usr/bin/env bash
# bench-resources.sh — `scripts/bench.sh resources`: the experiments of "Hardware resource
# management for network function offload" at full size, reported beside the paper.
#
# Usage: scripts/bench.sh resources [--quick] [--bin DIR] [--out DIR]
#   Table 1 and the blackhole: scripts/resource-models.sh (10,000 flows, hw_latency_us 55,
#   hw_query_latency_us 35 and 350; --quick: 1,000 flows, 35 only) on a release eswd.
#   Utilisation: UtilisationExperimentTests with a 4,096-entry masked table and 32,768
#   exact entries (--quick: 1,024 / 2,048).
# Output: OUT/resources.md (tables), OUT/resources.png (plot), OUT/resource-models.jsonl
# (raw rows); OUT defaults to bench/. Needs root.
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$ROOT/scripts/deps.sh"
. "$ROOT/scripts/bench-part.sh"
bench_part resources "$@"
rows=$OUT/resource-models.jsonl util=$(mktemp /tmp/eswutil.XXXXXX)
trap 'rm -f "$util"' EXIT
quick=(); [ $QUICK = 1 ] && quick=(--quick)
log "Table 1 and the blackhole on a live eswd"
ESW_BIN=$BIN bash "$ROOT/scripts/resource-models.sh" "${quick[@]}" --rows "$rows" || exit 1
log "utilisation (the driver's accounting)"
if [ $QUICK = 1 ]; then masked=1024 exact=2048; else masked=4096 exact=32768; fi
(cd "$ROOT" && ESW_UTILISATION_MASKED=$masked ESW_UTILISATION_EXACT=$exact ESW_EXPERIMENT_OUT=$util \
    swift test --filter UtilisationExperimentTests 2>&1 | tail -n 2) >&2
python3 "$ROOT/scripts/resource_report.py" "$rows" "$util" "$OUT/resources.md" "$OUT/resources.png" \
    "$(uname -r), $(nproc) CPUs, $(date -u +%Y-%m-%d)$([ $QUICK = 1 ] && echo ', --quick')" || exit 1
log "wrote $OUT/resources.md and $OUT/resources.png"
