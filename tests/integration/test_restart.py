"""kill -9 of qanatd between runs: after a restart every committed run, log
line and metric is still there, the store opens cleanly, and new runs work."""
import signal
import harness
from harness import check

WORKFLOW = """\
name: numbered
tasks:
  count:
    run: sh -c 'for i in $(seq 1 200); do echo "line $i"; echo "m $i $i" >> "$QANAT_METRICS"; done'
  after:
    needs: [count]
    run: echo after
"""


def test_kill_9_between_runs_loses_nothing(c):
    c.start_coordinator()
    c.start_agent("a1")
    wf = c.write("n.yaml", WORKFLOW)
    first = c.wait_run(c.start_run(wf))
    check(first["status"] == "succeeded", "first run %s" % first["status"])
    logs_before = c.logs_json(first["run_id"])
    metrics_before = c.qanat_json("metrics", first["run_id"])
    status_before = c.qanat_json("status", first["run_id"])
    check([l["data"] for l in logs_before if l["task"] == "count"] ==
          ["line %d" % i for i in range(1, 201)], "200 numbered lines in order")

    c.kill_coordinator(signal.SIGKILL)
    c.start_coordinator()
    check(c.logs_json(first["run_id"]) == logs_before, "logs changed across kill -9")
    check(c.qanat_json("metrics", first["run_id"]) == metrics_before, "metrics changed")
    check(c.qanat_json("status", first["run_id"]) == status_before, "status changed")
    runs = c.qanat_json("runs")
    check([r["run_id"] for r in runs] == [first["run_id"]], "runs list %s" % runs)

    # The agent re-registers by itself and the next run works.
    c.wait_for(lambda: any(a["connected"] for a in c.qanat_json("agents")), "agent to come back")
    second = c.wait_run(c.start_run(wf))
    check(second["status"] == "succeeded", "second run %s" % second["status"])
    check(second["run_id"] == first["run_id"] + 1, "run ids continue")
    metrics = c.qanat_json("metrics", second["run_id"], "m")
    check(len(metrics[0]["points"]) == 200, "200 metric points, got %d" % len(metrics[0]["points"]))


def test_kill_9_during_a_run_then_the_run_finishes(c):
    c.start_coordinator()
    c.start_agent("a1")
    wf = c.write("slow.yaml", """\
name: slow
tasks:
  slow:
    run: sh -c 'for i in $(seq 1 30); do echo "tick $i"; sleep 0.1; done'
  next:
    needs: [slow]
    run: echo next
""")
    run_id = c.start_run(wf)
    c.wait_for(lambda: any(l["data"] == "tick 3" for l in c.logs_json(run_id)), "first ticks")
    c.kill_coordinator(signal.SIGKILL)
    c.start_coordinator()
    run = c.wait_run(run_id, timeout=60)
    check(run["status"] == "succeeded", "run %s" % run["status"])
    ticks = [l["data"] for l in c.logs_json(run_id, "slow")]
    check(ticks == ["tick %d" % i for i in range(1, 31)],
          "every tick exactly once, in order, got %s" % ticks)


def test_old_work_directories_go(c):
    """An agent keeps the directories of its newest --keep-workdirs
    finished attempts for inspection and removes older ones as attempts
    finish; restarted with a smaller bound, it sweeps what an earlier
    process left."""
    import os
    c.start_coordinator()
    c.start_agent("a1", extra=["--keep-workdirs", "2"])
    wf = c.write("dirs.yaml", "name: dirs\ntasks:\n  t:\n    run: echo hi > note.txt\n")
    for _ in range(5):
        run = c.wait_run(c.start_run(wf))
        check(run["status"] == "succeeded", "run: %s" % run)
    root = os.path.join(c.agent_dir("a1"), "attempts")
    # Removed behind the agent's loop, by a thread of its own
    c.wait_for(lambda: sorted(os.listdir(root)) == ["4-t-1", "5-t-1"],
               "only the newest two attempts' directories (%s)" % sorted(os.listdir(root)),
               timeout=60)
    check(os.path.exists(os.path.join(root, "5-t-1", "work", "note.txt")), "kept whole")
    c.signal_agent("a1", signal.SIGTERM)
    c.agents["a1"].wait(timeout=15)
    c.start_agent("a1", extra=["--keep-workdirs", "1"])
    c.wait_for(lambda: sorted(os.listdir(root)) == ["5-t-1"],
               "swept at start down to the newest one (%s)" % sorted(os.listdir(root)),
               timeout=60)


if __name__ == "__main__":
    harness.main(globals())
