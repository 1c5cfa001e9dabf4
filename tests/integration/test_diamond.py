"""A diamond DAG across two agents with different labels: each task runs
only on an agent whose labels match its `on:` selector, and a task that no
connected agent matches waits, with the reason shown, until one comes."""
import harness
from harness import check, task

DIAMOND = """\
name: diamond
tasks:
  extract:
    on: {env: onprem}
    run: echo "extract on $QANAT_TASK attempt $QANAT_ATTEMPT"
  train:
    needs: [extract]
    on: {env: gpu}
    run: [sh, -c, "echo training; echo warn >&2"]
  report:
    needs: [extract]
    on: {env: onprem}
    run: echo report
  publish:
    needs: [train, report]
    on: {env: gpu}
    run: echo "published run $QANAT_RUN_ID"
"""


def test_diamond_runs_each_task_on_a_matching_agent(c):
    c.start_coordinator()
    c.start_agent("onprem-1", {"env": "onprem"})
    c.start_agent("gpu-1", {"env": "gpu"})
    run_id = c.start_run(c.write("diamond.yaml", DIAMOND))
    run = c.wait_run(run_id)
    check(run["status"] == "succeeded", "run status %s" % run["status"])
    expected = {"extract": "onprem-1", "train": "gpu-1", "report": "onprem-1", "publish": "gpu-1"}
    for name, agent in expected.items():
        t = task(run, name)
        check(t["status"] == "succeeded", "%s is %s" % (name, t["status"]))
        check(len(t["attempts"]) == 1, "%s has %d attempts" % (name, len(t["attempts"])))
        check(t["attempts"][0]["agent"] == agent,
              "%s ran on %s, not %s" % (name, t["attempts"][0]["agent"], agent))
    # Order: publish started after both of its dependencies finished.
    publish = task(run, "publish")["attempts"][0]
    for dep in ("train", "report"):
        check(task(run, dep)["attempts"][0]["finished_us"] <= publish["started_us"],
              "publish started before %s finished" % dep)
    lines = c.logs_json(run_id)
    text = {(l["task"], l["stream"], l["data"]) for l in lines}
    check(("extract", "stdout", "extract on extract attempt 1") in text, "extract log: %s" % text)
    check(("train", "stderr", "warn") in text, "stderr line tagged: %s" % text)
    check(("publish", "stdout", "published run %d" % run_id) in text, "publish log: %s" % text)


def test_unmatched_task_waits_with_a_reason(c):
    c.start_coordinator()
    c.start_agent("onprem-1", {"env": "onprem"})
    wf = c.write("tpu.yaml", "name: tpu\ntasks:\n  big:\n    on: {env: tpu}\n    run: echo done on tpu\n")
    run_id = c.start_run(wf)
    c.wait_for(lambda: "waiting for an agent with env=tpu" in
               task(c.qanat_json("status", run_id), "big")["waiting_reason"], "a waiting reason")
    out = c.qanat("status", run_id).stdout
    check("waiting for an agent with env=tpu" in out, "status output lacks the reason:\n" + out)
    check(c.qanat_json("status", run_id)["status"] == "queued", "run should be queued")
    c.start_agent("tpu-1", {"env": "tpu"})
    run = c.wait_run(run_id)
    check(run["status"] == "succeeded", "run status %s" % run["status"])
    check(task(run, "big")["attempts"][0]["agent"] == "tpu-1", "ran on the wrong agent")


if __name__ == "__main__":
    harness.main(globals())
