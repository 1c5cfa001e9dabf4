#!/bin/bash
# qanat side by side with its peers (bench/peers/README.md): builds qanat
# if needed, measures qanat's control plane (bench/qn_bench --only a,b) and
# real processes (qanat_real.py), then Slurm (slurm.sh, defaults and tuned)
# and Celery + Redis (celery.sh), all on loopback on this machine, and
# prints the table work | qanat | peer | ratio.  Output also goes to
# bench/peers/results-<date>.txt.  Takes minutes: run by hand
# (`make bench-peers`), not in CI.
#
#   QANAT_PEERS        which parts to run (default "qanat warm slurm celery";
#                      "warm celery" = warm Python ops beside Celery)
#   QANAT_PEERS_AGENTS real agents for qanat (default 4), --slots = nproc
#   Sizes: SLURM_PEERS_JOBS (1000 tuned), SLURM_PEERS_DEFAULT_JOBS (200
#          with defaults: 2 jobs per 3 s there), SLURM_PEERS_CHAIN (20),
#          CELERY_PEERS_TASKS (10000), CELERY_PEERS_CHAIN (1000),
#          QANAT_PEERS_TASKS (1000), QANAT_PEERS_CHAIN (100),
#          QANAT_PEERS_BENCH_TASKS (10000), QANAT_PEERS_BENCH_CHAIN (1000),
#          QANAT_PEERS_WARM_TASKS (3000), QANAT_PEERS_WARM_CHAIN (50),
#          QANAT_PEERS_WARM_AGENTS (2) x QANAT_PEERS_WARM_SLOTS (4)
# bash, also when started as `sh run.sh` (make runs $(SHELL), often dash).
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -u
here=$(cd "$(dirname "$0")" && pwd)
srcdir=$(cd "$here/../.." && pwd)
builddir=${QANAT_BUILDDIR:-$srcdir}
PY=/usr/bin/python3
PARTS=${QANAT_PEERS:-qanat warm slurm celery}

if [ ! -x "$PY" ]; then
    echo "bench-peers: needs Debian's $PY (apt-get install python3)" >&2
    exit 1
fi
if [ ! -f "$builddir/Makefile" ]; then
    (cd "$srcdir" && ./autogen.sh >/dev/null && ./configure -q) || exit 1
fi
make -C "$builddir" -j"$(nproc)" >/dev/null || exit 1

out="$here/results-$(date +%Y-%m-%d-%H%M).txt"
log=$(mktemp "${TMPDIR:-/tmp}/qanat-peers-log.XXXXXX") || exit 1
status=$(mktemp "${TMPDIR:-/tmp}/qanat-peers-rc.XXXXXX") || exit 1
trap 'rm -f "$log" "$status"' EXIT
echo 0 >"$status"

# section TITLE COMMAND...: run one part, keep its output for the table,
# remember a failure.
section () {
    local title=$1 rc
    shift
    echo
    echo "== $title =="
    "$@" 2>&1 | tee -a "$log"
    rc=${PIPESTATUS[0]}
    if [ "$rc" -ne 0 ]; then
        echo "(exit $rc: $([ "$rc" -eq 2 ] && echo "cannot run on this machine, see above" || echo "failed, see above"))"
        echo 1 >"$status"
    fi
}
wanted () { case " $PARTS " in *" $1 "*) return 0 ;; esac; return 1; }

{
    started=$(date +%s)
    echo "qanat and its peers, side by side, $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "machine: $(nproc) CPUs online (nproc), $(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -1)," \
         "$(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) memory," \
         "$(uname -sr) $(uname -m), $(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME")"
    echo "load average at start: $(cat /proc/loadavg)"
    echo "build tree: $builddir ($(git -C "$srcdir" rev-parse --short HEAD 2>/dev/null || echo 'no git'))"
    echo "everything on loopback on this one machine; qanatd runs with --insecure (CURVE off)"

    if wanted qanat; then
        bench_tasks=${QANAT_PEERS_BENCH_TASKS:-10000}
        bench_chain=${QANAT_PEERS_BENCH_CHAIN:-1000}
        printf 'peer: a.tasks = %s tasks\npeer: b.chain = %s tasks\n' "$bench_tasks" "$bench_chain" >>"$log"
        section "qanat, control plane (bench/qn_bench --only a,b; simulated agents)" \
            "$builddir/bench/qn_bench" --builddir "$builddir" --only a,b \
            --tasks "$bench_tasks" --chain "$bench_chain"
        section "qanat, real processes (bench/peers/qanat_real.py)" \
            "$PY" "$here/qanat_real.py" --builddir "$builddir" \
            --agents "${QANAT_PEERS_AGENTS:-4}" --slots "$(nproc)" \
            --tasks "${QANAT_PEERS_TASKS:-1000}" --chain "${QANAT_PEERS_CHAIN:-100}"
    fi
    if wanted warm; then
        section "qanat, warm Python ops (bench/peers/qanat_warm.py)" \
            "$PY" "$here/qanat_warm.py" --builddir "$builddir" \
            --agents "${QANAT_PEERS_WARM_AGENTS:-2}" --slots "${QANAT_PEERS_WARM_SLOTS:-4}" \
            --tasks "${QANAT_PEERS_WARM_TASKS:-3000}" --chain "${QANAT_PEERS_WARM_CHAIN:-50}"
    fi
    wanted slurm && section "Slurm, one node (bench/peers/slurm.sh)" bash "$here/slurm.sh"
    wanted celery && section "Celery + Redis (bench/peers/celery.sh)" bash "$here/celery.sh"

    echo
    echo "== side by side =="
    "$PY" "$here/peers.py" table "$log"
    echo
    echo "load average at end: $(cat /proc/loadavg)"
    echo "run time: $(( $(date +%s) - started )) s"
} 2>&1 | tee "$out"
rc=$(cat "$status")
echo "results written to $out"
exit "$rc"
