#!/bin/sh
# scripts/build-example-progs.sh OUTDIR [CLANG_FLAGS...] — compiles the example programs
# for the NIC's programmable stage (bpf/examples/*.bpf.c) into OUTDIR/NAME.o with the
# Swift toolchain's clang (the one that builds the data plane: the system may have none),
# e.g. for `esw-devlink port prog set esw0/1 obj OUTDIR/drop.o sec drop`.
# Extra flags go to every compile (-DLOOP_N=1000, -DREDIRECT_PORT=2).
set -eu
out=$1; shift
root=$(cd "$(dirname "$0")/.." && pwd)
clang=${ESW_CLANG:-}
if [ -z "$clang" ]; then
    swift=$(command -v swift || true)
    if [ -n "$swift" ] && [ -x "$(dirname "$(readlink -f "$swift")")/clang" ]; then
        clang=$(dirname "$(readlink -f "$swift")")/clang
    else
        clang=clang
    fi
fi
arch=$(uname -m)-linux-gnu
mkdir -p "$out"
for src in "$root"/bpf/examples/*.bpf.c; do
    name=$(basename "$src" .bpf.c)
    "$clang" -O2 -g -target bpf -Wall -Werror -I"/usr/include/$arch" "$@" -c "$src" -o "$out/$name.o"
done
