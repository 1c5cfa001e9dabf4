#!/bin/sh
# Runs unit tests under valgrind (memcheck): any invalid access, use of
# uninitialised memory or definite leak fails the test.  Used by
# `make memcheck`, which passes the unit tests' paths.
#
#   tests/fuzz/memcheck.sh tests/unit/test_msg tests/unit/test_store ...
#
# Environment: MEMCHECK_SKIP (tests to leave out, by name, space
# separated; default test_agent), VALGRIND_OPTS (extra valgrind options).
# Children the tests spawn are not traced.  Logs go to
# tests/unit/<test>.memcheck.log.
#
# test_agent is left out by default: it runs qanat-agent binaries and their
# task processes against deadlines of a few seconds, which valgrind's
# slowdown makes miss (its back-pressure and spool-full cases time out),
# and the signal dispositions its children inherit differ under valgrind
# (test_child_signals).  Valgrind finds no error in it; run it with
# MEMCHECK_SKIP= to see.
set -u

if ! command -v valgrind >/dev/null 2>&1; then
    echo "memcheck.sh: valgrind not found" >&2
    exit 1
fi
builddir=${QANAT_BUILDDIR:-.}
libtool=$builddir/libtool
[ -x "$libtool" ] || libtool=./libtool
skip=${MEMCHECK_SKIP-test_agent}

passed=0
failed=0
skipped=0
for test in "$@"; do
    name=$(basename "$test")
    case " $skip " in
        *" $name "*) echo "SKIP $name"; skipped=$((skipped + 1)); continue ;;
    esac
    log=$test.memcheck.log
    start=$(date +%s)
    "$libtool" --mode=execute valgrind --quiet --leak-check=full --error-exitcode=1 \
        --errors-for-leak-kinds=definite --show-leak-kinds=definite --track-origins=yes \
        --num-callers=30 ${VALGRIND_OPTS:-} "$test" >"$log" 2>&1
    rc=$?
    seconds=$(( $(date +%s) - start ))
    if [ $rc -eq 0 ]; then
        echo "PASS $name (${seconds}s)"
        passed=$((passed + 1))
    else
        echo "FAIL $name (rc $rc, ${seconds}s; see $log)"
        failed=$((failed + 1))
    fi
done
if [ $skipped -gt 0 ]; then echo "$passed passed, $failed failed, $skipped skipped"; else echo "$passed passed, $failed failed"; fi
[ $failed -eq 0 ]
