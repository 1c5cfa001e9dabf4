#!/bin/sh
# Builds qanat's libFuzzer targets with clang (ASan + UBSan + libFuzzer,
# outside the autotools build) and runs each for FUZZ_SECONDS on a copy of
# its seed corpus.  Fails if any target crashes, leaks or breaks an
# invariant; crash inputs are kept in tests/fuzz/build/artifacts/.
#
#   tests/fuzz/run.sh [--seeds] [--build-only] [target...]
#
#   --seeds       rewrite the generated seed files in tests/fuzz/corpus/
#                 (envelopes, socket sequences, tokens) with make_seeds
#   --build-only  build, do not run
#   target        fuzz_envelope, fuzz_check, ... (default: all of them)
#
# Environment: FUZZ_SECONDS (default 60), CLANG (default clang-14 or
# clang), QANAT_SRCDIR, QANAT_BUILDDIR (where proto/qanat.pb-c.c is),
# FUZZ_JOBS (targets run at once, default 1).
set -u

here=$(cd "$(dirname "$0")" && pwd)
srcdir=${QANAT_SRCDIR:-$(cd "$here/../.." && pwd)}
builddir=${QANAT_BUILDDIR:-$srcdir}
seconds=${FUZZ_SECONDS:-60}
jobs=${FUZZ_JOBS:-1}
fuzzdir=$srcdir/tests/fuzz
build=$fuzzdir/build
ALL_TARGETS="fuzz_envelope fuzz_agent_socket fuzz_client_socket fuzz_workflow fuzz_check fuzz_token fuzz_metric_line fuzz_manifest fuzz_shellref fuzz_http"

seeds=no
build_only=no
targets=""
for arg in "$@"; do
    case $arg in
        --seeds) seeds=yes ;;
        --build-only) build_only=yes ;;
        fuzz_*) targets="$targets $arg" ;;
        *) echo "usage: $0 [--seeds] [--build-only] [target...]" >&2; exit 2 ;;
    esac
done
[ -n "$targets" ] || targets=$ALL_TARGETS

if [ -n "${CLANG:-}" ]; then cc=$CLANG
elif command -v clang-14 >/dev/null 2>&1; then cc=clang-14
elif command -v clang >/dev/null 2>&1; then cc=clang
else echo "run.sh: clang not found (packages clang-14 libclang-rt-14-dev)" >&2; exit 1
fi

mkdir -p "$build/obj" "$build/artifacts" "$build/proto" || exit 1

# ---- the generated protobuf code ----
proto_c=$builddir/proto/qanat.pb-c.c
if [ ! -f "$proto_c" ] && [ -f "$builddir/Makefile" ]; then
    make -C "$builddir" proto/qanat.pb-c.c >/dev/null || exit 1
fi
if [ ! -f "$proto_c" ]; then
    protoc-c --proto_path="$srcdir/proto" --c_out="$build/proto" "$srcdir/proto/qanat.proto" || exit 1
    proto_c=$build/proto/qanat.pb-c.c
fi
proto_dir=$(dirname "$proto_c")

pkgs="libczmq libzmq libprotobuf-c yaml-0.1 lmdb libcurl libsodium jansson libmicrohttpd"
dep_cflags=$(pkg-config --cflags $pkgs) || exit 1
dep_libs="$(pkg-config --libs $pkgs) -lm"
includes="-I$srcdir/include/qanat -I$srcdir/lib -I$proto_dir -I$srcdir/coordinator -I$fuzzdir"
cflags="-std=c11 -D_GNU_SOURCE -g -O1 -Wall -Wextra -Wno-unused-parameter -fno-omit-frame-pointer
        -fno-sanitize-recover=undefined"

# ---- build: qanat's sources once, then one binary per target ----
echo "building fuzz targets with $cc into $build"
objects=""
for src in "$srcdir"/lib/*.c "$srcdir"/coordinator/qn_*.c "$proto_c"; do
    obj=$build/obj/$(basename "$src" .c).o
    if [ ! -f "$obj" ] || [ "$src" -nt "$obj" ] || [ "$0" -nt "$obj" ]; then
        $cc $cflags -fsanitize=fuzzer-no-link,address,undefined $includes $dep_cflags \
            -c "$src" -o "$obj" || exit 1
    fi
    objects="$objects $obj"
done
for target in $targets; do
    [ -f "$fuzzdir/$target.c" ] || { echo "run.sh: no target $target" >&2; exit 2; }
    $cc $cflags -fsanitize=fuzzer,address,undefined $includes $dep_cflags \
        "$fuzzdir/$target.c" $objects $dep_libs -o "$build/$target" || exit 1
done

if [ $seeds = yes ]; then
    $cc $cflags -fsanitize=address,undefined $includes $dep_cflags \
        "$fuzzdir/make_seeds.c" $objects $dep_libs -o "$build/make_seeds" || exit 1
    "$build/make_seeds" "$fuzzdir/corpus" || exit 1
fi
[ $build_only = yes ] && exit 0

# ---- run ----
# The coordinator's data dirs go here (tmpfs when there is one), removed
# at the end even when a target crashed before its own cleanup.
tmp_base=/tmp
[ -w /dev/shm ] && tmp_base=/dev/shm
FUZZ_TMPDIR=$(mktemp -d "$tmp_base/qanat-fuzz-run-XXXXXX") || exit 1
export FUZZ_TMPDIR
trap 'rm -rf "$FUZZ_TMPDIR"' EXIT
trap 'exit 130' INT TERM

export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}"

# The socket targets keep one coordinator whose state grows from input to
# input, so libFuzzer's per-input leak check (run whenever an input's
# mallocs and frees do not balance) would rerun nearly every input under
# LeakSanitizer, 50 times slower.  They get the leak check at exit instead,
# after the coordinator is destroyed: anything it lost is reported then.
leak_flag_of () {
    case $1 in
        fuzz_agent_socket|fuzz_client_socket) echo -detect_leaks=0 ;;
        *) echo -detect_leaks=1 ;;
    esac
}

max_len_of () {
    case $1 in
        fuzz_agent_socket|fuzz_client_socket|fuzz_workflow) echo 16384 ;;
        *) echo 4096 ;;
    esac
}

# Runs one target; writes its summary line to build/<target>.result.
run_one () {
    target=$1
    corpus=$build/corpus/$target
    rm -rf "$corpus"
    mkdir -p "$corpus"
    [ -d "$fuzzdir/corpus/$target" ] && cp "$fuzzdir/corpus/$target"/* "$corpus"/ 2>/dev/null
    # Past crashes stay in the corpus: they must keep passing.
    [ -d "$fuzzdir/regressions/$target" ] && cp "$fuzzdir/regressions/$target"/* "$corpus"/ 2>/dev/null
    log=$build/$target.log
    before=$(ls "$build/artifacts" | grep -c "^$target-")
    (cd "$build" && "./$target" -max_total_time="$seconds" -max_len="$(max_len_of "$target")" "$(leak_flag_of "$target")" \
        -timeout=20 -rss_limit_mb=4096 -print_final_stats=1 \
        -artifact_prefix="$build/artifacts/$target-" "$corpus") >"$log" 2>&1
    rc=$?
    after=$(ls "$build/artifacts" | grep -c "^$target-")
    crashes=$((after - before))
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 | cut -d' ' -f2)
    ft=$(grep -o 'ft: [0-9]*' "$log" | tail -n 1 | cut -d' ' -f2)
    units=$(ls "$corpus" | wc -l)
    if [ $rc -eq 0 ] && [ $crashes -eq 0 ]; then verdict=ok; else verdict=FAILED; fi
    printf '%-20s %-6s execs %s (%s/s)  cov %s  ft %s  corpus %s  crashes %s%s\n' \
        "$target" "$verdict" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "$units" "$crashes" \
        "$([ $verdict = ok ] || echo "  (rc $rc, see $log)")" >"$build/$target.result"
}

running=0
for target in $targets; do
    run_one "$target" &
    running=$((running + 1))
    if [ $running -ge "$jobs" ]; then
        wait
        running=0
    fi
done
wait

passed=0
failed=0
for target in $targets; do
    cat "$build/$target.result"
    if grep -q " ok " "$build/$target.result"; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
done
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
