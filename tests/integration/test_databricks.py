#!/usr/bin/env python3
"""The databricks backend against a fake workspace (fake_databricks.py,
which checks every Jobs API 2.1 request against the documented shapes):
a notebook run on a new cluster returns values and links its run page; a
failed Python run gives its error and trace; cancel calls runs/cancel;
429, 500 and an expired OAuth token are retried; an agent killed with -9
mid-run follows the run again, and one killed between the submit and its
answer submits again with the same idempotency token: one run only."""
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness                      # noqa: E402
from harness import check, task     # noqa: E402
import fake_databricks              # noqa: E402

ENV = ("DATABRICKS_HOST", "DATABRICKS_TOKEN", "DATABRICKS_CLIENT_ID", "DATABRICKS_CLIENT_SECRET")


class Workspace:
    def __init__(self, c, oauth=False):
        self.c = c
        self.fake = fake_databricks.FakeDatabricks().start()
        self.saved = {k: os.environ.pop(k, None) for k in ENV}
        os.environ["DATABRICKS_HOST"] = self.fake.endpoint
        if oauth:
            os.environ["DATABRICKS_CLIENT_ID"] = self.fake.client_id
            os.environ["DATABRICKS_CLIENT_SECRET"] = self.fake.client_secret
        else:
            os.environ["DATABRICKS_TOKEN"] = self.fake.pat

    def agent(self, name="d1"):
        return self.c.start_agent(name, extra=["--backend", "databricks",
                                               "--backend-option", "databricks.poll_ms=100",
                                               "--backend-option", "databricks.max_tries=4"])

    def close(self):
        self.fake.stop()
        for key, value in self.saved.items():
            os.environ.pop(key, None)
            if value is not None:
                os.environ[key] = value


def with_workspace(oauth=False):
    def wrap(fn):
        def wrapped(c):
            ws = Workspace(c, oauth)
            try:
                fn(c, ws)
                check(not ws.fake.violations, "requests the API does not allow: %s"
                      % ws.fake.violations)
            finally:
                ws.close()
        wrapped.__name__ = fn.__name__
        return wrapped
    return wrap


def attempt(run, name):
    return task(run, name)["attempts"][-1]


def task_lines(c, run_id, name):
    return [l["data"] for l in c.logs_json(run_id, name) if l["stream"] != "system"]


def system_lines(c, run_id, name):
    return [l["data"] for l in c.logs_json(run_id, name) if l["stream"] == "system"]


NOTEBOOK = """\
name: nb
params:
  epochs: {type: int, default: 3}
tasks:
  train:
    backend: databricks
    run: train
    databricks:
      notebook_path: /Repos/ml/train
      new_cluster: {spark_version: 15.4.x-scala2.12, node_type_id: i3.xlarge, num_workers: 2}
      libraries: [{pypi: {package: scikit-learn}}]
    outputs: {accuracy: {value: true}}
"""


@with_workspace()
def test_notebook_run_values_and_run_page(c, ws):
    ws.fake.script = lambda t: {"duration": 1.0, "logs": "epoch 1\n::qanat-metric loss=0.5 step=1\nepoch 2\n",
                                "notebook_result": '{"accuracy": 0.93}'}
    c.start_coordinator()
    ws.agent()
    run_id = c.start_run(c.write("nb.yaml", NOTEBOOK))
    c.wait_for(lambda: any("RUNNING" in n for n in system_lines(c, run_id, "train")),
               "the RUNNING state, live")
    run = c.wait_run(run_id)
    a = attempt(run, "train")
    check(run["status"] == "succeeded", "run %s: %s" % (run["status"], a))
    submit = ws.fake.submits[0]
    key = "qanat-%d-0-1" % run_id
    check(submit["idempotency_token"] == key, "token %s" % submit)
    t = submit["tasks"][0]
    check(t["notebook_task"] == {"notebook_path": "/Repos/ml/train",
                                 "base_parameters": {"epochs": "3"}}, "notebook task %s" % t)
    check(t["new_cluster"]["num_workers"] == 2 and t["libraries"] == [{"pypi": {"package": "scikit-learn"}}],
          "cluster and libraries %s" % t)
    check(a["engine_job_id"] == "101", "the run id as engine job id: %s" % a["engine_job_id"])
    check(a["engine_url"] == "%s/?o=1234#job/7/run/101" % ws.fake.endpoint, "link %s" % a)
    status = c.qanat("status", str(run_id)).stdout
    check("engine page: %s" % a["engine_url"] in status, "qanat status shows the link:\n%s" % status)
    check(task_lines(c, run_id, "train") == ["epoch 1", "epoch 2"], "logs %s"
          % task_lines(c, run_id, "train"))
    arts = {x["output"]: x for x in c.qanat_json("artifacts", run_id)}
    check(arts.get("accuracy", {}).get("value") == "0.93", "value from the notebook: %s" % arts)
    metrics = {m["name"] for m in c.qanat_json("metrics", run_id)}
    check("loss" in metrics, "metric line: %s" % metrics)
    check(all(r["headers"].get("authorization") == "Bearer " + ws.fake.pat
              for r in ws.fake.requests), "the token on every call")


PYTHON = """\
name: py
tasks:
  etl:
    backend: databricks
    run: etl
    databricks:
      python_file: dbfs:/jobs/etl.py
      parameters: ["--day", "${{ params.day }}"]
      existing_cluster_id: 0923-164208-meows279
params:
  day: {default: "2026-12-07"}
"""


@with_workspace()
def test_failed_python_run_gives_error_and_trace(c, ws):
    ws.fake.script = lambda t: {"duration": 0.3, "result": "FAILED", "logs": "reading\n",
                                "error": "ZeroDivisionError: division by zero",
                                "error_trace": "Traceback (most recent call last):\n  File \"etl.py\", line 3\nZeroDivisionError: division by zero"}
    c.start_coordinator()
    ws.agent()
    run = c.wait_run(c.start_run(c.write("py.yaml", PYTHON)))
    a = attempt(run, "etl")
    check(run["status"] == "failed", "run %s" % run["status"])
    check("FAILED" in a["reason"] and "ZeroDivisionError: division by zero" in a["reason"],
          "reason %r" % a["reason"])
    check('File "etl.py", line 3' in a["stack_trace"], "trace %r" % a["stack_trace"])
    t = ws.fake.submits[0]["tasks"][0]
    check(t["spark_python_task"] == {"python_file": "dbfs:/jobs/etl.py",
                                     "parameters": ["--day", "2026-12-07"]}
          and t["existing_cluster_id"] == "0923-164208-meows279", "task %s" % t)


@with_workspace()
def test_cancel_calls_runs_cancel(c, ws):
    ws.fake.script = lambda t: {"duration": 20}
    c.start_coordinator()
    ws.agent()
    run_id = c.start_run(c.write("py.yaml", PYTHON))
    c.wait_for(lambda: any("RUNNING" in n for n in system_lines(c, run_id, "etl")), "RUNNING")
    c.qanat("cancel", run_id)
    run = c.wait_run(run_id)
    check(run["status"] == "canceled", "run %s" % run["status"])
    c.wait_for(lambda: ws.fake.cancels == [101], "runs/cancel of run 101")


@with_workspace(oauth=True)
def test_oauth_throttling_and_5xx_are_retried(c, ws):
    ws.fake.token_lifetime = 2          # renewed halfway, during the run
    ws.fake.script = lambda t: {"duration": 2.5, "logs": "ok\n"}
    c.start_coordinator()
    ws.agent()
    ws.fake.throttle = 2
    ws.fake.fail_500 = 1
    run_id = c.start_run(c.write("py.yaml", PYTHON))
    run = c.wait_run(run_id)
    check(run["status"] == "succeeded", "run %s: %s" % (run["status"], attempt(run, "etl")))
    tokens = [r for r in ws.fake.requests if r["path"] == "/oidc/v1/token"]
    check(len(tokens) >= 2, "the OAuth token was renewed before it expired: %d" % len(tokens))
    check(all(r["headers"].get("authorization", "").startswith("Bearer oauth-")
              for r in ws.fake.requests if r["path"] != "/oidc/v1/token"), "OAuth tokens on calls")
    notes = system_lines(c, run_id, "etl")
    check(any("REQUEST_LIMIT_EXCEEDED" in n and "trying again" in n for n in notes),
          "throttling shows: %s" % notes)
    check(len(ws.fake.runs) == 1, "one run: %s" % list(ws.fake.runs))

    # A secret the workspace refuses: the attempt fails with its message,
    # it does not wait for a token forever
    ws.fake.client_secret = "rotated"
    ws.fake.tokens.clear()
    run = c.wait_run(c.start_run(c.write("py.yaml", PYTHON)), timeout=40)
    a = attempt(run, "etl")
    check(run["status"] == "failed" and "Client authentication failed" in a["reason"]
          and "gave up after" in a["reason"], "refused client: %s" % a)


@with_workspace()
def test_kill_9_reattaches_and_never_submits_twice(c, ws):
    ws.fake.script = lambda t: {"duration": 2.0, "logs": "\n".join("line %d" % i for i in range(1, 11)) + "\n"}
    c.start_coordinator()
    ws.agent()
    # Mid-run: the run id was spooled; the new agent follows that run
    run_id = c.start_run(c.write("py.yaml", PYTHON))
    c.wait_for(lambda: any("RUNNING" in n for n in system_lines(c, run_id, "etl")), "RUNNING")
    c.signal_agent("d1", signal.SIGKILL)
    time.sleep(0.3)
    ws.agent()
    run = c.wait_run(run_id)
    check(run["status"] == "succeeded" and attempt(run, "etl")["attempt"] == 1,
          "re-attached: %s" % attempt(run, "etl"))
    check(task_lines(c, run_id, "etl") == ["line %d" % i for i in range(1, 11)],
          "every line once: %s" % task_lines(c, run_id, "etl"))
    check(len(ws.fake.submits) == 1, "one submit: %d" % len(ws.fake.submits))

    # Between the submit and its answer: the token was spooled first, the
    # new agent submits it again and Databricks answers the same run
    ws.fake.submit_delay = 2.0
    run_id = c.start_run(c.write("py.yaml", PYTHON))
    c.wait_for(lambda: len(ws.fake.submits) == 2, "the second submit")
    c.signal_agent("d1", signal.SIGKILL)
    ws.fake.submit_delay = 0
    time.sleep(0.3)
    ws.agent()
    run = c.wait_run(run_id)
    check(run["status"] == "succeeded" and attempt(run, "etl")["attempt"] == 1,
          "the same attempt: %s" % attempt(run, "etl"))
    check(len(ws.fake.submits) == 3 and ws.fake.submits[1]["idempotency_token"]
          == ws.fake.submits[2]["idempotency_token"], "submitted again with the same token")
    check(len(ws.fake.runs) == 2, "one run per attempt, never two: %s" % sorted(ws.fake.runs))


if __name__ == "__main__":
    harness.main(globals())
