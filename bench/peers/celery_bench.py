"""Celery side of qanat's peer benchmark (bench/peers/celery.sh runs it).

The same module is the Celery app the worker loads (`celery -A celery_bench
worker`) and the driver (`python3 celery_bench.py drive`):

  (a) throughput: TASKS trivial tasks submitted one by one with .delay(),
      from the first submit until every result is back in the driver;
  (b) chain: a chain of CHAIN tasks; each task takes its own start and end
      time (time.time(), inside the worker process), so a hop is the
      successor's start minus its predecessor's end, and a link is start
      to next start.

Broker and result backend: Redis at $CELERY_PEERS_REDIS.  Prints
"peer: celery.KEY = VALUE UNIT" lines (bench/peers/peers.py reads them).
"""
import math
import os
import statistics
import sys
import time

from celery import Celery, chain
from celery.result import ResultSet

REDIS = os.environ.get("CELERY_PEERS_REDIS", "redis://127.0.0.1:6379/0")
app = Celery("celery_bench", broker=REDIS, backend=REDIS)
app.conf.update(result_expires=3600, task_serializer="json", result_serializer="json",
                accept_content=["json"])


@app.task
def noop():
    return None


@app.task
def stamp(index):
    start = time.time()
    return [index, start, time.time()]


def say(text):
    print(text, flush=True)


def peer(key, value, unit):
    say("peer: celery.%s = %.6g %s" % (key, value, unit))


def quantile(values, q):
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def warm_up(concurrency, deadline):
    # Every pool process up and connected before anything is timed.
    end = time.time() + deadline
    while True:
        try:
            ResultSet([noop.delay() for _ in range(concurrency * 4)]).get(timeout=10)
            return
        except Exception as error:          # the worker may still be starting
            if time.time() > end:
                raise SystemExit("celery: the worker did not answer within %d s (%s)"
                                 % (deadline, error))
            time.sleep(0.5)


def throughput(tasks, deadline):
    start = time.time()
    results = [noop.delay() for _ in range(tasks)]
    submitted = time.time()
    ResultSet(results).join_native(timeout=deadline, propagate=True)
    end = time.time()
    say("   %d tasks: submitted in %.3f s (%.0f/s), all results back after %.3f s"
        % (tasks, submitted - start, tasks / (submitted - start), end - start))
    peer("tasks", tasks, "tasks")
    peer("throughput", tasks / (end - start), "tasks/s")
    peer("submit_rate", tasks / (submitted - start), "tasks/s")


def chain_latency(length, deadline):
    result = chain(*[stamp.si(index) for index in range(length)]).apply_async()
    result.get(timeout=deadline)
    # The chain's result is its last task; .parent leads back to the first.
    stamps = []
    node = result
    while node is not None:
        stamps.append(node.get(timeout=deadline))
        node = node.parent
    stamps.sort()
    if len(stamps) != length or [s[0] for s in stamps] != list(range(length)):
        raise SystemExit("celery: chain results incomplete (%d of %d)" % (len(stamps), length))
    hops = [after[1] - before[2] for before, after in zip(stamps, stamps[1:])]
    links = [after[1] - before[1] for before, after in zip(stamps, stamps[1:])]
    ms = [hop * 1000 for hop in hops]
    say("   chain of %d: %d hops (end -> next start, worker clocks): min %.3f ms, median %.3f ms,"
        " p90 %.3f ms, p99 %.3f ms, max %.3f ms; start -> next start median %.3f ms"
        % (length, len(hops), min(ms), statistics.median(ms), quantile(ms, 0.9),
           quantile(ms, 0.99), max(ms), statistics.median(links) * 1000))
    peer("chain", length, "tasks")
    peer("hop_median", statistics.median(ms), "ms")
    peer("hop_p90", quantile(ms, 0.9), "ms")
    peer("hop_p99", quantile(ms, 0.99), "ms")
    peer("hop_max", max(ms), "ms")
    peer("cycle_median", statistics.median(links) * 1000, "ms")


def main():
    if len(sys.argv) < 2 or sys.argv[1] != "drive":
        raise SystemExit("usage: celery_bench.py drive TASKS CHAIN CONCURRENCY [DEADLINE]")
    tasks, length, concurrency = (int(arg) for arg in sys.argv[2:5])
    deadline = int(sys.argv[5]) if len(sys.argv) > 5 else 600
    warm_up(concurrency, 60)
    throughput(tasks, deadline)
    chain_latency(length, deadline)


if __name__ == "__main__":
    main()
