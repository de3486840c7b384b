#!/usr/bin/env bash
# Installs what the tests need, builds, and runs every test: the Swift unit tests,
# the integration tests in tests/ (root: network namespaces, TAP/veth, OVS 3.1), and a
# short bounded fuzz run.
#
#   scripts/test.sh [TEST...]      TEST: a tests/test-*.sh name (e.g. tunnel); default all
#
# Environment: ESW_FUZZ_SECONDS (per fuzz target, default 15; 0 skips fuzzing),
# ESW_SKIP_UNIT=1 (integration tests only).
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

if [ "$(id -u)" -ne 0 ]; then
    echo "scripts/test.sh: the integration tests need root (network namespaces, TAP devices)" >&2
    exit 1
fi

# Dependencies: Debian packages, installed only when missing.
. "$ROOT/scripts/deps.sh"
esw_install_deps || exit 1

echo "== build"
swift build 2>&1 | tail -3
[ "${PIPESTATUS[0]}" -eq 0 ] || { echo "scripts/test.sh: build failed" >&2; exit 1; }

passed=0; failed=0; failures=()
record() { if [ "$2" -eq 0 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); failures+=("$1"); fi; }
# Every failed check of every test (tests/lib.sh's t_fail), repeated in the summary: a log
# read from its end, as CI keeps it, still names what failed.
ESW_FAILED_CHECKS=$(mktemp); export ESW_FAILED_CHECKS
trap 'rm -f "$ESW_FAILED_CHECKS"' EXIT

if [ "${ESW_SKIP_UNIT:-0}" != 1 ] && [ $# -eq 0 ]; then
    echo "== unit tests (swift test)"
    # The failing tests' lines, then the tail: a failure anywhere in the run is named.
    unit_log=$(mktemp)
    swift test > "$unit_log" 2>&1
    unit_rc=$?
    grep -E "✘|recorded an issue|error:" "$unit_log" | head -40
    tail -5 "$unit_log"
    rm -f "$unit_log"
    record "swift test" "$unit_rc"
fi

tests=()
if [ $# -gt 0 ]; then
    for t in "$@"; do tests+=("tests/test-${t#test-}.sh"); done
else
    tests=(tests/test-*.sh)
fi
for t in "${tests[@]}"; do
    [ -f "$t" ] || { echo "no such test: $t" >&2; record "$t" 1; continue; }
    echo "== $t"
    start=$(date +%s)
    timeout 600 bash "$t"
    rc=$?
    echo "   ($(( $(date +%s) - start )) s, exit $rc)"
    record "$t" "$rc"
done

if [ $# -eq 0 ] && [ "${ESW_FUZZ_SECONDS:-15}" != 0 ]; then
    echo "== fuzz (${ESW_FUZZ_SECONDS:-15} s per target)"
    scripts/fuzz.sh --time "${ESW_FUZZ_SECONDS:-15}" 2>&1 | tail -12
    record "scripts/fuzz.sh" "${PIPESTATUS[0]}"
fi

echo
for f in "${failures[@]}"; do echo "failed: $f"; done
[ ! -s "$ESW_FAILED_CHECKS" ] || { echo "failed checks:"; head -40 "$ESW_FAILED_CHECKS"; }
echo "tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
