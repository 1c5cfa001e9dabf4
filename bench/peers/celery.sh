#!/bin/bash
# Celery with a Redis broker and result backend, on loopback: trivial-task
# throughput and chain latency (bench/peers/celery_bench.py does the work).
# See bench/peers/README.md.  Prints "peer: celery.KEY = VALUE UNIT".
#
#   CELERY_PEERS_TASKS     trivial tasks for the throughput run (default 10000)
#   CELERY_PEERS_CHAIN     tasks in the chain (default 1000)
#   CELERY_PEERS_DEADLINE  seconds any one wait may take (default 600)
#
# Exit 0 when it ran, 2 when Celery or Redis cannot be installed or started
# here (the reason is printed), 1 on other errors.
# bash, also when started as `sh run.sh` (make runs $(SHELL), often dash).
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -u
here=$(cd "$(dirname "$0")" && pwd)
# Debian's python, which has python3-celery; a python3 earlier on PATH
# (pyenv, a venv) may not.
PY=/usr/bin/python3
TASKS=${CELERY_PEERS_TASKS:-10000}
CHAIN=${CELERY_PEERS_CHAIN:-1000}
DEADLINE=${CELERY_PEERS_DEADLINE:-600}

say () { printf '%s\n' "$*"; }

if ! "$PY" -c 'import celery, redis' 2>/dev/null || ! command -v redis-server >/dev/null; then
    if [ "$(id -u)" != 0 ]; then
        say "celery: not installed and not root, cannot apt-get install python3-celery python3-redis redis-server"
        exit 2
    fi
    say "celery: installing python3-celery python3-redis redis-server with apt-get"
    if ! { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
               python3-celery python3-redis redis-server; } >/tmp/qanat-peers-apt-celery.log 2>&1; then
        say "celery: apt-get failed (log in /tmp/qanat-peers-apt-celery.log)"
        tail -5 /tmp/qanat-peers-apt-celery.log
        exit 2
    fi
fi
say "celery: celery $("$PY" -c 'import celery; print(celery.__version__)'), $(redis-server --version | cut -d' ' -f1-3), $("$PY" -V)"

top=$(mktemp -d "${TMPDIR:-/tmp}/qanat-peers-celery.XXXXXX") || exit 1
redis_pid=""
worker_pid=""
# stop PID: SIGTERM, 15 s, then SIGKILL.  The worker runs in its own
# process group (setsid), so its pool processes go with it.
stop () {
    local pid=$1 group=$2 tries=0
    [ -n "$pid" ] || return 0
    if [ "$group" = group ]; then kill -TERM -- "-$pid" 2>/dev/null; else kill -TERM "$pid" 2>/dev/null; fi
    while kill -0 "$pid" 2>/dev/null && [ $tries -lt 150 ]; do
        sleep 0.1
        tries=$((tries + 1))
    done
    if [ "$group" = group ]; then kill -KILL -- "-$pid" 2>/dev/null; else kill -KILL "$pid" 2>/dev/null; fi
    wait "$pid" 2>/dev/null
}
cleanup () {
    stop "$worker_pid" group
    stop "$redis_pid" single
    worker_pid=""
    redis_pid=""
    if [ -n "${QANAT_PEERS_KEEP:-}" ]; then say "celery: kept $top"; else rm -rf "$top"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port=$("$PY" "$here/peers.py" ports 1) || exit 1
# No persistence (--save '', no AOF): Redis as Celery users commonly run
# it for a broker.  qanat's figures are durable (fsync per commit).
redis-server --port "$port" --bind 127.0.0.1 --dir "$top" --save '' --appendonly no \
    --daemonize no --logfile "$top/redis.log" &
redis_pid=$!
tries=0
until [ "$(redis-cli -p "$port" ping 2>/dev/null)" = PONG ]; do
    tries=$((tries + 1))
    if [ $tries -gt 100 ] || ! kill -0 "$redis_pid" 2>/dev/null; then
        say "celery: redis-server did not start on port $port:"
        tail -5 "$top/redis.log"
        exit 2
    fi
    sleep 0.1
done

export CELERY_PEERS_REDIS="redis://127.0.0.1:$port/0"
export PYTHONDONTWRITEBYTECODE=1    # nothing written into the source tree
export PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}"
concurrency=$(nproc)
(cd "$top" && exec setsid "$PY" -m celery -A celery_bench worker --pool=prefork \
    --concurrency="$concurrency" --loglevel=WARNING >"$top/worker.log" 2>&1) &
worker_pid=$!
say "celery: redis on 127.0.0.1:$port (no persistence), worker prefork x $concurrency (pid $worker_pid)"
say "celery: $TASKS trivial tasks (noop.delay() each), then a chain of $CHAIN"

started=$(date +%s.%N)
timeout $((DEADLINE * 2 + 120)) "$PY" "$here/celery_bench.py" drive "$TASKS" "$CHAIN" "$concurrency" "$DEADLINE"
rc=$?
if [ $rc -ne 0 ]; then
    say "celery: the driver failed (exit $rc); worker log:"
    tail -10 "$top/worker.log"
    [ $rc -eq 124 ] && say "celery: timed out"
    exit 1
fi
say "celery: done in $(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s"
exit 0
