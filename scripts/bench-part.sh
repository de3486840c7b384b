# bench-part.sh — what the parts of `scripts/bench.sh` (resources, hinting, placement) share.
# Sourced after ROOT is set and scripts/deps.sh is sourced.

# bench_part NAME "$@": parses --quick, --bin DIR, --out DIR (-h prints the calling
# script's header), defines log/die with the part's name, checks root, installs what is
# missing and builds release when BIN is this tree's. Sets QUICK, BIN, OUT.
bench_part() {
    BENCH_PART=$1; shift
    QUICK=0 BIN=${ESW_BIN:-$ROOT/.build/release} OUT=$ROOT/bench
    while [ $# -gt 0 ]; do
        case "$1" in
            --quick) QUICK=1 ;;
            --bin) BIN=$2; shift ;;
            --out) OUT=$2; shift ;;
            -h|--help) sed -n '2,/^set /p' "$0" | sed '$d'; exit 0 ;;
            *) echo "bench.sh $BENCH_PART: unknown argument $1" >&2; exit 2 ;;
        esac
        shift
    done
    [ "$(id -u)" -eq 0 ] || die "needs root"
    esw_install_deps >&2 || die "cannot install the packages it needs"
    if [ "$BIN" = "$ROOT/.build/release" ]; then
        log "swift build -c release"
        (cd "$ROOT" && swift build -c release 2>&1 | tail -n 3) >&2 || exit 1
    fi
    mkdir -p "$OUT"
}

# log MSG / die MSG: progress on stderr, with the part's name.
log() { printf '[bench %s] %s\n' "$BENCH_PART" "$*" >&2; }
die() { log "error: $*"; exit 1; }
