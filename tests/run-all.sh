#!/bin/sh
# Runs the whole test suite from a clean checkout: installs what is needed,
# builds, runs the unit and integration tests (make check), and ends with
# one line "N passed, N failed".
set -u
cd "$(dirname "$0")/.."
./packaging/install-deps.sh || exit 1
if [ ! -f Makefile ]; then
    ./autogen.sh >/dev/null && ./configure -q || exit 1
fi
make -j"$(nproc)" >/dev/null || { make; exit 1; }
make -j2 check >tests/check-output.log 2>&1
rc=$?
# The per-test results: each unit test binary and each integration test file
# reports its own cases; sum them up from the logs.
passed=0; failed=0
for log in tests/unit/*.log tests/integration/*.log tests/fault/*.log tests/*.log; do
    [ -f "$log" ] || continue
    case "$log" in *test-suite.log|*check-output.log) continue;; esac
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -1)
    if [ -n "$line" ]; then
        p=${line%% passed*}; f=${line#*, }; f=${f%% failed*}
    else
        # cmocka prints [  PASSED  ] N test(s). and [  FAILED  ] N test(s).
        p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -1)
        f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -1)
        p=${p:-0}; f=${f:-0}
        trs=${log%.log}.trs
        if [ "$p" = 0 ] && [ "$f" = 0 ] && grep -q ':test-result: FAIL' "$trs" 2>/dev/null; then f=1; fi
    fi
    passed=$((passed + p)); failed=$((failed + f))
done
grep -E '^(# (TOTAL|PASS|FAIL|ERROR|SKIP)|(PASS|FAIL|ERROR):)' tests/check-output.log
if [ $rc -ne 0 ]; then
    echo "---- failing test logs ----"
    for trs in tests/unit/*.trs tests/integration/*.trs tests/fault/*.trs tests/*.trs; do
        grep -q ':test-result: \(FAIL\|ERROR\)' "$trs" 2>/dev/null && tail -80 "${trs%.trs}.log"
    done
    [ "$failed" -eq 0 ] && failed=1
fi
echo "$passed passed, $failed failed"
[ $rc -eq 0 ]
