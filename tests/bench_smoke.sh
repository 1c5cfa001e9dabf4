#!/bin/sh
# Smoke test of the benchmark suite: runs bench/qn_bench with tiny sizes (a
# few seconds) and checks that it exited 0 and printed every figure.  It
# asserts nothing about speed.
set -u
if [ -n "${QANAT_SKIP_BENCH:-}" ]; then
    #  Timing loops under ASan take far too long and measure nothing.
    echo "bench smoke skipped (QANAT_SKIP_BENCH is set)"
    exit 77
fi
builddir=${QANAT_BUILDDIR:-$(cd "$(dirname "$0")/.." && pwd)}
out=$(mktemp)
#  Bounded: a hang must fail the test, never stall the suite.
timeout -k 10 300 "$builddir/bench/qn_bench" --smoke --agents 20,200 --builddir "$builddir" >"$out" 2>&1
rc=$?
cat "$out"
missing=""
for key in a.dispatch b.hop_median b.hop_p90 b.hop_p99 b.hop_max c.log_ingest c.log_lines \
           d.cpu_20 d.rss_20 d.cpu_200 d.rss_200 e.dispatch_shallow e.dispatch_deep e.ratio \
           f.coordinator_rss f.store_size_per_100k f.agent_rss g.dispatch_real \
           i.get_run_rps_1 i.get_run_p99_16 i.list_p50 i.page_p99 i.pages \
           j.dispatch_without j.dispatch_with j.ratio j.followers_complete k.rss_diff \
           l.dispatch m.dispatch_without m.dispatch_with m.ratio; do
    #  A difference may be negative (k.rss_diff)
    grep -Eq "^figure: $key = -?[0-9][0-9.e+-]*( |\$)" "$out" || missing="$missing $key"
done
grep -q '^== summary ==' "$out" || missing="$missing summary"
#  Correctness, not speed: every event-stream follower got every line once
grep -Eq '^figure: j.lines_missing = 0 ' "$out" || missing="$missing j.lines_missing=0"
grep -Eq '^figure: j.lines_repeated = 0 ' "$out" || missing="$missing j.lines_repeated=0"
#  Every run's notification was queued, and deliveries reached the hung receiver
grep -Eq '^figure: m.notifications_missing = 0 ' "$out" || missing="$missing m.notifications_missing=0"
grep -Eq '^figure: m.receiver_connections = [1-9]' "$out" || missing="$missing m.receiver_connections>0"
rm -f "$out"
if [ "$rc" -eq 0 ] && [ -z "$missing" ]; then
    echo "bench smoke: every figure produced"
    echo "1 passed, 0 failed"
    exit 0
fi
echo "bench smoke: exit status $rc; missing:${missing:- none}"
echo "0 passed, 1 failed"
exit 1
