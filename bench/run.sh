#!/bin/sh
# Runs qanat's full benchmark suite (bench/README.md): builds what is
# missing, runs bench/qn_bench with any arguments given here, and writes
# its output to the terminal and to bench/results-<date>.txt.
set -u
srcdir=$(cd "$(dirname "$0")/.." && pwd)
builddir=${QANAT_BUILDDIR:-$srcdir}
if [ ! -f "$builddir/Makefile" ]; then
    (cd "$srcdir" && ./autogen.sh >/dev/null && ./configure -q) || exit 1
fi
make -C "$builddir" -j"$(nproc)" >/dev/null || exit 1
out="$srcdir/bench/results-$(date +%Y-%m-%d-%H%M).txt"
status=$(mktemp)
{ "$builddir/bench/qn_bench" --builddir "$builddir" "$@" 2>&1; echo $? >"$status"; } | tee "$out"
rc=$(cat "$status")
rm -f "$status"
echo "results written to $out"
exit "$rc"
