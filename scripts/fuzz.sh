#!/usr/bin/env bash
# Builds and runs the libFuzzer targets in Fuzz/ for a bounded time each.
#
#   scripts/fuzz.sh [--time SECONDS] [--build-only] [--seeds KEYS.tsv ACTIONS.tsv] [TARGET...]
#
# Targets: odp-text (Sources/ODP text parser), netlink (netlink framing + attribute
# decoder + ODP key/action decoders), request (the daemon's whole request path for flow
# puts and packet executes: decode, validate, compile actions, install in a datapath,
# execute on a packet), packet (FlowExtractor and VXLAN decapsulation on arbitrary
# bytes), conntrack (the connection tracker on arbitrary frames with varied ct()
# actions; rewritten frames must keep valid checksums). Default: all five, 60 s each.
#
# The Sources/ modules a target needs (Packet, Netlink, ODP; for request also
# Classifier, Conntrack, NetLinux with its C shim, swift-log's Logging, ESwitch, OVSDatapath) are
# compiled directly with swiftc into Fuzz/.build/ (never the package's .build),
# instrumented for libFuzzer and AddressSanitizer (FUZZ_SANITIZE overrides
# "fuzzer,address"), and linked with the entry point in Fuzz/Targets/TARGET.swift.
#
# Seeds are read from Fuzz/corpus/TARGET (never written); what the fuzzer discovers goes
# to Fuzz/.build/corpus/TARGET and is reused by the next run. A crash, sanitizer report,
# timeout or out-of-memory input is saved under Fuzz/artifacts/TARGET/ and makes the
# script exit 1 after the remaining targets have run.
#
# Environment: FUZZ_SANITIZE, FUZZ_FLAGS (extra libFuzzer flags), ESW_FUZZ_STRICT=1
# (targets also check round-trip/invariant properties, see Fuzz/Targets/*.swift).
# --seeds regenerates Fuzz/corpus/ from the ODP TSV corpora (needs no sanitizer).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FUZZ=$ROOT/Fuzz
BUILD=$FUZZ/.build
ALL_TARGETS=(odp-text netlink request packet conntrack)

TIME=60
BUILD_ONLY=0
SEEDS=()
TARGETS=()
while [ $# -gt 0 ]; do
    case "$1" in
        --time) TIME=$2; shift 2 ;;
        --time=*) TIME=${1#--time=}; shift ;;
        --build-only) BUILD_ONLY=1; shift ;;
        --seeds) SEEDS=("$2" "$3"); shift 3 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        -*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
        *) TARGETS+=("$1"); shift ;;
    esac
done
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=("${ALL_TARGETS[@]}")
for t in "${TARGETS[@]}"; do
    case " ${ALL_TARGETS[*]} " in *" $t "*) ;; *) echo "fuzz.sh: unknown target $t (have: ${ALL_TARGETS[*]})" >&2; exit 2 ;; esac
done
[[ "$TIME" =~ ^[0-9]+$ ]] || { echo "fuzz.sh: --time needs whole seconds" >&2; exit 2; }

SANITIZE=${FUZZ_SANITIZE:-fuzzer,address}
SWIFTC=${SWIFTC:-swiftc}

# Module dependencies (as in Package.swift) and which modules each target links, in
# build order.
module_deps() {
    case "$1" in
        Packet|Netlink|Logging) echo "" ;;
        ODP) echo "Packet Netlink" ;;
        Classifier|Conntrack) echo "Packet" ;;
        NetLinux) echo "Netlink" ;;
        ESwitch) echo "Packet Classifier NetLinux Logging" ;;
        OVSDatapath) echo "Packet Classifier Conntrack ODP ESwitch NetLinux Logging" ;;
    esac
}
target_modules() {
    case "$1" in
        odp-text|netlink) echo "Packet Netlink ODP" ;;
        request) echo "Packet Netlink ODP Classifier Conntrack Logging NetLinux ESwitch OVSDatapath" ;;
        packet) echo "Packet" ;;
        conntrack) echo "Packet Conntrack" ;;
    esac
}
# swift-log's sources, from the package's checkout (resolved on demand).
LOGGING_SRC=$ROOT/.build/checkouts/swift-log/Sources/Logging
module_sources() {
    case "$1" in
        Logging)
            [ -d "$LOGGING_SRC" ] || (cd "$ROOT" && swift package resolve >/dev/null)
            echo "$LOGGING_SRC"/*.swift "$LOGGING_SRC"/Handlers/*.swift ;;
        *) echo "$ROOT"/Sources/"$1"/*.swift ;;
    esac
}
# NetLinux imports the C shim CNetLinux: compiled with clang, found through a module map.
build_cshim() {
    local dir=$1
    mkdir -p "$dir/cmod"
    if newer_than "$dir/CNetLinux.o" "$ROOT/Sources/CNetLinux/shim.c" "$ROOT/Sources/CNetLinux/include/CNetLinux.h" "$0"; then
        echo "fuzz.sh: compiling CNetLinux ($(basename "$dir"))"
        printf 'module CNetLinux {\n    umbrella header "%s"\n    export *\n}\n' \
            "$ROOT/Sources/CNetLinux/include/CNetLinux.h" >"$dir/cmod/module.modulemap"
        clang -O1 -g -fsanitize=address -I "$ROOT/Sources/CNetLinux/include" -c "$ROOT/Sources/CNetLinux/shim.c" \
            -o "$dir/CNetLinux.o"
    fi
}

# newer_than OUT FILE...: true if OUT is missing or any FILE is newer.
newer_than() {
    local out=$1; shift
    [ -e "$out" ] || return 0
    local f
    for f in "$@"; do [ "$f" -nt "$out" ] && return 0; done
    return 1
}

# build_module DIR NAME FLAGS... : compiles Sources/NAME into DIR/NAME.o + .swiftmodule.
build_module() {
    local dir=$1 name=$2; shift 2
    local srcs extra=()
    read -r -a srcs <<<"$(module_sources "$name")"
    # swift-log uses `package` access between its modules.
    [ "$name" = Logging ] && extra=(-package-name swift_log)
    local deps=() d
    for d in $(module_deps "$name"); do deps+=("$dir/$d.swiftmodule"); done
    if newer_than "$dir/$name.o" "${srcs[@]}" "${deps[@]}" "$0"; then
        echo "fuzz.sh: compiling $name ($(basename "$dir"))"
        "$SWIFTC" -module-name "$name" -parse-as-library -swift-version 6 -wmo \
            -module-cache-path "$BUILD/module-cache" -I "$dir" -I "$dir/cmod" \
            -emit-module -emit-module-path "$dir/$name.swiftmodule" \
            -c -o "$dir/$name.o" "${extra[@]}" "$@" "${srcs[@]}"
        # swiftc leaves outputs whose content did not change untouched: mark them fresh.
        touch "$dir/$name.o" "$dir/$name.swiftmodule"
    fi
}

build_target() {
    local t=$1 dir=$BUILD/$SANITIZE_DIR rc=0
    mkdir -p "$dir"
    local m objs=()
    if [[ " $(target_modules "$t") " == *" NetLinux "* ]]; then
        build_cshim "$dir"
        objs+=("$dir/CNetLinux.o")
    fi
    for m in $(target_modules "$t"); do
        build_module "$dir" "$m" -O -g "-sanitize=$SANITIZE"
        objs+=("$dir/$m.o")
    done
    local bin=$dir/fuzz-$t
    if newer_than "$bin" "$FUZZ/Targets/$t.swift" "${objs[@]}" "$0"; then
        echo "fuzz.sh: linking $bin"
        "$SWIFTC" -module-name "Fuzz_${t//-/_}" -parse-as-library -swift-version 6 -O -g \
            "-sanitize=$SANITIZE" -use-ld=lld -module-cache-path "$BUILD/module-cache" -I "$dir" -I "$dir/cmod" \
            "$FUZZ/Targets/$t.swift" "${objs[@]}" -o "$bin" >"$bin.log" 2>&1 || rc=$?
        # ASan's instrumentation makes the linker warn about each local helper symbol.
        grep -v "Cannot export local symbol" "$bin.log" >&2 || true
        [ "${rc:-0}" -eq 0 ] || { echo "fuzz.sh: building $bin failed" >&2; exit 1; }
        touch "$bin"
    fi
}

# request's seeds include 48 KB messages (12,000 nested clone()): inputs up to 64 KB.
max_len() { case "$1" in request) echo 65600 ;; *) echo 4096 ;; esac; }

SANITIZE_DIR=san-${SANITIZE//,/-}
mkdir -p "$BUILD"

if [ ${#SEEDS[@]} -eq 2 ]; then
    dir=$BUILD/plain
    mkdir -p "$dir"
    for m in Packet Netlink ODP; do build_module "$dir" "$m" -Onone; done
    if newer_than "$dir/seeds" "$FUZZ/Tools/seeds.swift" "$dir/ODP.o"; then
        "$SWIFTC" -swift-version 6 -module-cache-path "$BUILD/module-cache" -I "$dir" \
            "$FUZZ/Tools/seeds.swift" "$dir/Packet.o" "$dir/Netlink.o" "$dir/ODP.o" -o "$dir/seeds"
    fi
    rm -rf "$FUZZ/corpus"
    "$dir/seeds" "${SEEDS[0]}" "${SEEDS[1]}" "$FUZZ/corpus"
fi

for t in "${TARGETS[@]}"; do build_target "$t"; done
[ "$BUILD_ONLY" = 1 ] && exit 0

status=0
summary=()
for t in "${TARGETS[@]}"; do
    bin=$BUILD/$SANITIZE_DIR/fuzz-$t
    work=$BUILD/corpus/$t
    art=$FUZZ/artifacts/$t
    log=$BUILD/logs/$t.log
    mkdir -p "$work" "$art" "$(dirname "$log")"
    dict=()
    [ -f "$FUZZ/dict/$t.dict" ] && dict=("-dict=$FUZZ/dict/$t.dict")
    marker=$BUILD/logs/$t.start
    touch "$marker"
    echo "fuzz.sh: running $t for ${TIME}s (log: ${log#$ROOT/})"
    set +e
    # detect_leaks=0: the Swift runtime's metadata caches are never freed by design.
    # SWIFT_BACKTRACE=enable=no: let libFuzzer/ASan report traps (the Swift backtracer
    # reads the stack in a way ASan flags as an error of its own).
    SWIFT_BACKTRACE=enable=no \
    ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:allocator_may_return_null=1} \
    "$bin" -max_total_time="$TIME" -timeout=30 -rss_limit_mb=2048 -max_len="$(max_len "$t")" \
        -print_final_stats=1 -artifact_prefix="$art/" "${dict[@]}" ${FUZZ_FLAGS:-} \
        "$work" "$FUZZ/corpus/$t" >"$log" 2>&1
    rc=$?
    set -e
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1 || true)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1 || true)
    cov=$( (grep -o 'cov: [0-9]*' "$log" || true) | tail -1 | cut -d' ' -f2)
    if [ $rc -eq 0 ]; then
        summary+=("$t: ok, ${execs:-?} runs, ${rate:-?} exec/s, cov ${cov:-?}")
    else
        status=1
        summary+=("$t: FAILED (exit $rc), ${execs:-?} runs")
        echo "fuzz.sh: $t failed (exit $rc); end of its log:" >&2
        grep -v '^#[0-9]' "$log" | tail -60 >&2
        find "$art" -type f -newer "$marker" | while read -r f; do
            hex=$(od -An -v -tx1 "$f" | tr -d ' \n')
            echo "fuzz.sh: artifact ${f#$ROOT/} ($(stat -c %s "$f") bytes): ${hex:0:4096}" >&2
        done
    fi
done

echo
printf 'fuzz.sh: %s\n' "${summary[@]}"
exit $status
