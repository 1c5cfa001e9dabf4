#!/usr/bin/env python3
"""Priorities, concurrency limits and named pools on real agents
(docs/scheduling.md): higher priorities start first, a pool or a task
limit caps attempts at once across runs, a workflow's concurrency holds
later runs back with a reason, and a coordinator kill -9 leaves the
counts exact (rebuilt from the running attempts) and the pool sizes set.

Tasks append "TASK start|end TIME" lines to a record file; the checks
replay it.
"""
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import check, main, task  # noqa: E402

TIMERS = {"heartbeat_ms": 200}


def record_cmd(record, seconds):
    return ("sh -c 'echo \"$QANAT_TASK start $(date +%%s.%%N)\" >> %s; sleep %s; "
            "echo \"$QANAT_TASK end $(date +%%s.%%N)\" >> %s'" % (record, seconds, record))


def out_path(c, name):
    os.makedirs(os.path.join(c.dir, "out"), exist_ok=True)
    return os.path.join(c.dir, "out", name)


def read_record(path):
    starts, ends = {}, {}
    if not os.path.exists(path):
        return starts, ends
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) == 3:
                (starts if parts[1] == "start" else ends)[parts[0]] = float(parts[2])
    return starts, ends


def most_at_once(starts, ends, names):
    events = sorted([(starts[n], 1) for n in names] + [(ends[n], -1) for n in names],
                    key=lambda e: (e[0], e[1]))
    most = now = 0
    for _, sign in events:
        now += sign
        most = max(most, now)
    return most


def pools_by_name(c):
    return {p["name"]: p for p in c.qanat_json("pools")}


def running(c, run_id, name):
    return task(c.qanat_json("status", run_id), name)["status"] == "running"


def test_higher_priority_starts_first(c):
    c.start_coordinator()
    c.start_agent("one", slots=1, timers=TIMERS)
    record = out_path(c, "record")
    holder = c.start_run(c.write("holder.yaml", "name: holder\ntasks:\n  hold:\n    run: %s\n"
                                 % record_cmd(record, "1.5")))
    c.wait_for(lambda: running(c, holder, "hold"), "the holder to run")
    runs = []
    for name, priority in (("low", "low"), ("normal", "normal"), ("high", "high"),
                           ("top", "100")):
        runs.append(c.start_run(c.write(name + ".yaml", "name: %s\npriority: %s\ntasks:\n"
                                        "  %s:\n    run: %s\n" % (name, priority, name,
                                                                    record_cmd(record, "0")))))
    # A task's own priority wins over its workflow's
    runs.append(c.start_run(c.write("own.yaml", "name: own\npriority: low\ntasks:\n  own:\n"
                                    "    priority: 50\n    run: %s\n" % record_cmd(record, "0"))))
    for run_id in [holder] + runs:
        check(c.wait_run(run_id, timeout=30)["status"] == "succeeded", "run %s" % run_id)
    starts, _ = read_record(record)
    order = sorted(("top", "own", "high", "normal", "low"), key=lambda n: starts[n])
    check(order == ["top", "own", "high", "normal", "low"], "start order %r" % order)


def test_a_pool_caps_attempts_across_workflows(c):
    c.start_coordinator()
    c.start_agent("big", slots=8, timers=TIMERS)
    c.qanat("pool", "set", "lic", "2")
    record = out_path(c, "record")
    runs = []
    for w in ("a", "b"):
        lines = ["name: %s" % w, "tasks:"]
        for i in range(3):
            lines.append("  %s%d:\n    pool: lic\n    run: %s" % (w, i, record_cmd(record, "0.6")))
        runs.append(c.start_run(c.write(w + ".yaml", "\n".join(lines) + "\n")))
    c.wait_for(lambda: pools_by_name(c).get("lic", {}).get("used") == 2, "the pool to fill")
    lic = pools_by_name(c)["lic"]
    check(lic["value"] == 2 and lic["set"] and lic["waiting"] == 4, "qanat pools: %r" % lic)
    status = c.qanat_json("status", runs[1])
    reasons = [t["waiting_reason"] for t in status["tasks"] if t["status"] == "queued"]
    check(reasons and all(r == "waiting: pool lic is full (2 of 2 in use)" for r in reasons),
          "waiting reasons: %r" % reasons)
    for run_id in runs:
        check(c.wait_run(run_id, timeout=30)["status"] == "succeeded", "run %s" % run_id)
    starts, ends = read_record(record)
    check(most_at_once(starts, ends, list(starts)) == 2, "the pool of 2 ran %d at once"
          % most_at_once(starts, ends, list(starts)))
    check(pools_by_name(c)["lic"]["used"] == 0, "pool still counts attempts")
    # An unset pool has one slot, and says so
    lines = ["name: unset", "tasks:"] + ["  u%d:\n    pool: nobody-set-me\n    run: %s"
                                         % (i, record_cmd(record, "0.3")) for i in range(3)]
    run = c.wait_run(c.start_run(c.write("unset.yaml", "\n".join(lines) + "\n")), timeout=30)
    check(run["status"] == "succeeded", "unset pool run")
    starts, ends = read_record(record)
    check(most_at_once(starts, ends, ["u0", "u1", "u2"]) == 1, "an unset pool ran more than 1")
    check(c.qanat("pool", "set", "lic", "x", check=False).returncode != 0, "pool set lic x")


def test_task_and_workflow_concurrency(c):
    c.start_coordinator()
    c.start_agent("big", slots=8, timers=TIMERS)
    record = out_path(c, "record")
    # A task limit counts attempts of the task across runs
    path = c.write("lim.yaml", "name: lim\ntasks:\n  t:\n    concurrency: 1\n    run: %s\n"
                   % record_cmd(record, "0.5").replace("$QANAT_TASK", "t$QANAT_RUN_ID"))
    runs = [c.start_run(path) for _ in range(3)]
    for run_id in runs:
        check(c.wait_run(run_id, timeout=30)["status"] == "succeeded", "lim run %s" % run_id)
    starts, ends = read_record(record)
    names = ["t%s" % r for r in runs]
    check(most_at_once(starts, ends, names) == 1, "task concurrency 1 ran %d at once"
          % most_at_once(starts, ends, names))
    # A workflow limit holds whole runs back, visibly
    path = c.write("one.yaml", "name: one\nconcurrency: 1\ntasks:\n  a:\n    run: %s\n"
                   "  b:\n    needs: a\n    run: %s\n"
                   % (record_cmd(record, "0.5").replace("$QANAT_TASK", "a$QANAT_RUN_ID"),
                      record_cmd(record, "0.3").replace("$QANAT_TASK", "b$QANAT_RUN_ID")))
    first, second = c.start_run(path), c.start_run(path)
    held = c.qanat_json("status", second)
    check(held["waiting_reason"] == "waiting: workflow one runs at most 1 at once (1 running)",
          "the second run's reason: %r" % held["waiting_reason"])
    check(task(held, "a")["waiting_reason"] == held["waiting_reason"], "task a's reason")
    table = c.qanat("runs", "one").stdout
    check(any(line.split()[:1] == [str(second)] and "waiting" in line
              for line in table.splitlines()), "qanat runs:\n" + table)
    for run_id in (first, second):
        check(c.wait_run(run_id, timeout=30)["status"] == "succeeded", "one run %s" % run_id)
    starts, ends = read_record(record)
    check(starts["a%s" % second] >= ends["b%s" % first] - 0.01,
          "the second run started before the first ended")
    check(c.qanat_json("status", second)["waiting_reason"] == "", "reason kept after start")


def test_coordinator_kill_9_keeps_pools_exact(c):
    c.start_coordinator()
    c.start_agent("node", slots=4, timers=TIMERS)
    c.qanat("pool", "set", "one", "1")
    c.qanat("user", "weight", "admin", "3")
    record = out_path(c, "record")
    first = c.start_run(c.write("first.yaml", "name: first\ntasks:\n  f:\n    pool: one\n"
                                "    run: %s\n" % record_cmd(record, "3")))
    c.wait_for(lambda: running(c, first, "f"), "f to run")
    # A workflow of concurrency 1: one run running, one held back
    one = c.write("one.yaml", "name: one\nconcurrency: 1\ntasks:\n  o:\n    run: %s\n"
                  % record_cmd(record, "3").replace("$QANAT_TASK", "o$QANAT_RUN_ID"))
    busy, held = c.start_run(one), c.start_run(one)
    c.wait_for(lambda: running(c, busy, "o"), "the first run of one to run")
    queued_us = task(c.qanat_json("status", held), "o")["queued_us"]
    c.kill_coordinator(signal.SIGKILL)
    c.start_coordinator()
    status = c.qanat_json("status", held)
    # Its ageing counts from when it was queued, not from the restart
    check(queued_us > 0 and task(status, "o")["queued_us"] == queued_us,
          "queued_us %r, after kill -9 %r" % (queued_us, task(status, "o")["queued_us"]))
    check(task(status, "o")["status"] == "queued" and status["waiting_reason"].startswith(
        "waiting: workflow one runs at most 1"), "after kill -9 the held run: %r" % status)
    c.wait_for(lambda: pools_by_name(c)["one"]["used"] == 1, "the pool to count f again")
    check(pools_by_name(c)["one"]["value"] == 1 and pools_by_name(c)["one"]["set"],
          "pool size after kill -9: %r" % pools_by_name(c)["one"])
    weights = {w["name"]: w for w in c.qanat_json("user", "weights")}
    check(weights.get("admin", {}).get("value") == 3, "weight after kill -9: %r" % weights)
    second = c.start_run(c.write("second.yaml", "name: second\ntasks:\n  s:\n    pool: one\n"
                                 "    run: %s\n" % record_cmd(record, "0")))
    time.sleep(0.5)
    check(task(c.qanat_json("status", second), "s")["status"] == "queued",
          "s started while f held the pool")
    for run_id in (first, second, busy, held):
        check(c.wait_run(run_id, timeout=30)["status"] == "succeeded", "run %s" % run_id)
    starts, ends = read_record(record)
    check(starts["s"] >= ends["f"] - 0.01, "s started before f ended")
    check(starts["o%s" % held] >= ends["o%s" % busy] - 0.01,
          "the held run started before the running one ended")
    check(pools_by_name(c)["one"]["used"] == 0, "the pool counts an attempt after both")


if __name__ == "__main__":
    main(globals())
