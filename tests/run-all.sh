#!/bin/sh
# Runs the whole test suite from a clean checkout and ends with one line
# "N passed, N failed":
#   1. make check: unit tests, integration tests (real processes, CURVE on),
#      the fault-injection suite and the benchmark smoke test;
#   2. the same suite again, built with AddressSanitizer and
#      UndefinedBehaviorSanitizer (from `make dist`, in build-sanitizers/);
#   3. every libFuzzer target for FUZZ_SECONDS seconds each (default 60);
#   4. the Debian packages: built once, lintian, installed into a clean
#      Debian 12 tree (mmdebstrap), run, upgraded, run again
#      (tests/packaging/test_debian.sh; skipped, saying why, when
#      deb.debian.org cannot be reached).
# QANAT_QUICK=1 runs step 1 only.
set -u
cd "$(dirname "$0")/.."
TOP=$(pwd)
./packaging/install-deps.sh --tests || exit 1
# The S3 tests' node packages (s3rver, aws4), from the npm registry once
tests/s3/setup.sh || exit 1
# The browser tests' driver (playwright-core; the browser is Debian's chromium)
tests/browser/setup.sh || exit 1
export QANAT_BROWSER_NODE_DIR="$TOP/tests/browser"
export QANAT_S3_REQUIRED=1 QANAT_S3_NODE_DIR="$TOP/tests/s3"
if [ ! -f Makefile ]; then
    ./autogen.sh >/dev/null && ./configure -q || exit 1
fi
make -j"$(nproc)" >/dev/null || { make; exit 1; }

passed=0; failed=0; status=0

# Adds up the per-test results of one build tree's logs: each test reports
# its own cases ("N passed, N failed" or cmocka's summary).
count_logs () {
    for log in "$1"/tests/layout/*.log "$1"/tests/unit/*.log "$1"/tests/integration/*.log "$1"/tests/python/*.log "$1"/tests/fault/*.log "$1"/tests/*.log; do
        [ -f "$log" ] || continue
        case "$log" in *test-suite.log|*check-output.log) continue;; esac
        line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -1)
        if [ -n "$line" ]; then
            p=${line%% passed*}; f=${line#*, }; f=${f%% failed*}
        else
            p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -1)
            f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -1)
            p=${p:-0}; f=${f:-0}
        fi
        trs=${log%.log}.trs
        if [ "$f" = 0 ] && grep -q ':test-result: \(FAIL\|ERROR\)' "$trs" 2>/dev/null; then f=1; fi
        passed=$((passed + p)); failed=$((failed + f))
    done
}

show_failures () {
    for trs in "$1"/tests/layout/*.trs "$1"/tests/unit/*.trs "$1"/tests/integration/*.trs "$1"/tests/fault/*.trs "$1"/tests/*.trs; do
        grep -q ':test-result: \(FAIL\|ERROR\)' "$trs" 2>/dev/null && { echo "---- ${trs%.trs}.log"; tail -60 "${trs%.trs}.log"; }
    done
}

echo "== 1. make check"
make -j2 check >tests/check-output.log 2>&1 || { status=1; show_failures "$TOP"; }
grep -E '^(# (TOTAL|PASS|FAIL|ERROR)|(PASS|FAIL|ERROR):)' tests/check-output.log
count_logs "$TOP"

if [ "${QANAT_QUICK:-0}" != 1 ]; then
    echo "== 2. make check with ASan + UBSan"
    rm -rf build-sanitizers && mkdir build-sanitizers
    if make dist >/dev/null 2>&1 && tar -xzf qanat-*.tar.gz -C build-sanitizers --strip-components=1; then
        rm -f qanat-*.tar.gz
        ( cd build-sanitizers && ./configure -q --enable-sanitizers >/dev/null && make -j2 >/dev/null \
          && QANAT_SKIP_BENCH=1 ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
             UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
             make -j2 check >tests/check-output.log 2>&1 )
        rc=$?
        grep -E '^(# (TOTAL|PASS|FAIL|ERROR)|(PASS|FAIL|ERROR):)' build-sanitizers/tests/check-output.log 2>/dev/null
        if [ $rc -ne 0 ]; then status=1; show_failures "$TOP/build-sanitizers"; fi
        count_logs "$TOP/build-sanitizers"
        [ $rc -ne 0 ] && [ "$failed" -eq 0 ] && failed=1
    else
        echo "cannot make the distribution tarball for the sanitizer build"; status=1; failed=$((failed + 1))
    fi

    echo "== 3. fuzzing, ${FUZZ_SECONDS:-60} s per target"
    FUZZ_SECONDS=${FUZZ_SECONDS:-60} make fuzz >tests/fuzz-output.log 2>&1
    rc=$?
    grep -vE '^(INFO|#[0-9]|Done|MERGE|==)' tests/fuzz-output.log | tail -15
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' tests/fuzz-output.log | tail -1)
    if [ -n "$line" ]; then
        p=${line%% passed*}; f=${line#*, }; f=${f%% failed*}
        passed=$((passed + p)); failed=$((failed + f))
    fi
    if [ $rc -ne 0 ]; then status=1; [ -z "$line" ] && failed=$((failed + 1)); fi

    echo "== 4. Debian packages"
    started=$(date +%s)
    sh tests/packaging/test_debian.sh >tests/packaging/test_debian.log 2>&1
    rc=$?
    grep -E '^(ok|not ok|SKIP)' tests/packaging/test_debian.log
    echo "($(( $(date +%s) - started )) s)"
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' tests/packaging/test_debian.log | tail -1)
    if [ -n "$line" ]; then
        p=${line%% passed*}; f=${line#*, }; f=${f%% failed*}
        passed=$((passed + p)); failed=$((failed + f))
    fi
    if [ $rc -ne 0 ]; then status=1; [ -z "$line" ] && failed=$((failed + 1)); fi
fi

[ $status -ne 0 ] && [ "$failed" -eq 0 ] && failed=1
echo "$passed passed, $failed failed"
[ $status -eq 0 ]
