#!/usr/bin/env python3
"""The airflow backend against a fake Airflow 2 webserver (fake_airflow.py,
the stable REST API with basic or bearer auth): a task triggers a DAG run
of an existing DAG with its conf and the attempt's dag_run_id; the task
instances' logs are followed live, page by page and try by try; a failed
run names its failed task and ends with its log's tail; a cancel sets the
run's state to failed; 429 with Retry-After, 500 and an expired token are
waited out; an agent killed with -9 re-attaches without losing or
repeating a line; an agent killed between its trigger and the record of it
triggers again and finds the run it made, which runs once.  The fake
refuses any request the API specification does not allow."""
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness                      # noqa: E402
from harness import check, task_lines, last_attempt as attempt  # noqa: E402
import fake_airflow                 # noqa: E402

TICKS = "for i in $(seq 1 %d); do echo \"tick $i\"; sleep %s; done"


class Airflow:
    """A fake webserver for one test, and agents that use it."""

    def __init__(self, c, token=None):
        self.c = c
        self.fake = fake_airflow.FakeAirflow(os.path.join(c.dir, "airflow"), token=token,
                                             page_chars=200).start()
        self.fake.add_dag("pipeline", [
            ("extract", "echo extracting; echo 'rows=3'"),
            ("train", "echo \"conf=$DAG_RUN_CONF\"; " + TICKS % (20, "0.05")
             + "; echo '::qanat-metric loss=0.5 step=2'; echo '::qanat-output total=20'")])
        self.fake.add_dag("flaky", [
            ("prepare", "echo preparing"),
            ("fit", "echo 'fitting'; echo 'ValueError: bad shape' >&2; exit 4", 1),
            ("report", "echo never")])
        self.fake.add_dag("slow", [("wait", TICKS % (300, "0.1"))])
        self.fake.add_dag("scores", [("score", "echo scoring; echo '{\"auc\": 0.91, "
                                                "\"label\": \"good\"}'")])
        self.fake.add_dag("counts", [("count", "echo counting; echo 42")])
        self.fake.add_dag("long", [("one", TICKS % (25, "0.05")), ("two", TICKS % (25, "0.05"))])
        self.password_file = c.write("airflow-password", "s3cret-pw\n")
        self.token_file = c.write("airflow-token", "%s\n" % (token or ""))

    def agent(self, name="a1", wait=True, bearer=False):
        extra = ["--backend", "airflow",
                 "--backend-option", "airflow.url=" + self.fake.url,
                 "--backend-option", "airflow.poll_ms=100"]
        if bearer:
            extra += ["--backend-option", "airflow.token_file=" + self.token_file]
        else:
            extra += ["--backend-option", "airflow.username=qanat",
                      "--backend-option", "airflow.password_file=" + self.password_file]
        return self.c.start_agent(name, extra=extra, wait=wait)

    def close(self):
        self.fake.stop()
        check(not self.fake.violations, "requests the API refuses: %s" % self.fake.violations)


def with_airflow(fn, **options):
    def wrapped(c):
        airflow = Airflow(c, **options)
        try:
            fn(c, airflow)
        finally:
            airflow.close()
    wrapped.__name__ = fn.__name__
    return wrapped


def said(c, run_id, name):
    """What the DAG's commands printed, without Airflow's line prefixes."""
    return [line.split(" INFO - ", 1)[1] for line in task_lines(c, run_id, name)
            if "{subprocess.py:93} INFO - " in line]


PIPELINE = """\
name: pipeline
tasks:
  train:
    backend: airflow
    run: "true"
    outputs: {total: {value: true}}
    airflow:
      dag_id: pipeline
      conf: {epochs: 3, dataset: {name: mnist}}
  report:
    backend: airflow
    run: "true"
    inputs: {total: train.total}
    airflow:
      dag_id: pipeline
"""


@with_airflow
def test_a_task_triggers_a_dag_run_and_its_logs_follow(c, airflow):
    c.start_coordinator()
    airflow.agent()
    airflow.fake.page_limit = 1     # one task instance per page: all are read all the same
    run_id = c.start_run(c.write("pipeline.yaml", PIPELINE))
    c.wait_for(lambda: "tick 3" in said(c, run_id, "train"), "the first ticks")
    check(c.qanat_json("status", run_id)["status"] == "running",
          "the log should arrive while the run goes on")
    run = c.wait_run(run_id)
    check(run["status"] == "succeeded", "run %s: %s" % (run["status"], attempt(run, "train")))
    lines = said(c, run_id, "train")
    check(lines[:2] == ["extracting", "rows=3"], "extract's log first: %s" % lines[:3])
    check(lines[3:] == ["tick %d" % i for i in range(1, 21)], "every tick once: %s" % lines)
    check(lines[2].startswith("conf={") and '"epochs": 3' in lines[2], "conf %s" % lines[2])
    check(not any(line.startswith("::qanat") for line in said(c, run_id, "train")),
          "marker lines are not log lines")
    loss = [m for m in c.qanat_json("metrics", run_id) if m["name"] == "loss"]
    check(loss and [(p["value"], p["step"]) for p in loss[0]["points"]] == [(0.5, 2)],
          "the metric: %s" % loss)
    a = attempt(run, "train")
    rid = "qanat-%d-0-1" % run_id
    check(a["engine_job_id"] == "pipeline/" + rid, "engine job id %s" % a)
    check(a.get("engine_url") == "%s/dags/pipeline/grid?dag_run_id=%s" % (airflow.fake.url, rid),
          "link %s" % a.get("engine_url"))
    posts = airflow.fake.find("POST")
    check(len(posts) == 2, "one trigger per task: %d" % len(posts))
    body = posts[0]["body"]
    check(posts[0]["path"] == "/api/v1/dags/pipeline/dagRuns" and body["dag_run_id"] == rid,
          "trigger %s %s" % (posts[0]["path"], body))
    conf = body["conf"]
    check(conf["epochs"] == 3 and conf["dataset"] == {"name": "mnist"}, "conf %s" % conf)
    check(conf["qanat"]["run"] == str(run_id) and conf["qanat"]["task"] == "0"
          and conf["qanat"]["attempt"] == "1", "qanat's part %s" % conf["qanat"])
    check(posts[1]["body"]["conf"]["qanat"]["inputs"] == {"total": "20"},
          "the value input: %s" % posts[1]["body"]["conf"])
    pages = [r for r in airflow.fake.find("GET", "/logs/") if "token" in r["query"]]
    check(pages, "the logs were read page by page")
    listed = [r["query"] for r in airflow.fake.find("GET", "/taskInstances")
              if r["path"].endswith("/taskInstances")]
    check(any(q.get("offset") == ["1"] for q in listed), "task instances page by page: %s"
          % listed[:4])
    check(all(r["headers"].get("Authorization", "").startswith("Basic ")
              for r in airflow.fake.requests), "basic auth on every request")


XCOM = """\
name: xcom
tasks:
  score:
    backend: airflow
    outputs: {auc: {value: true}, label: {value: true}}
    airflow: {dag_id: scores, xcom_task: score}
  count:
    backend: airflow
    outputs: {n: {value: true}}
    airflow: {dag_id: counts, xcom_task: count, xcom_key: return_value}
  use:
    backend: airflow
    inputs: {auc: score.auc, label: score.label, n: count.n}
    airflow: {dag_id: counts}
"""


@with_airflow
def test_value_outputs_from_a_tasks_xcom(c, airflow):
    c.start_coordinator()
    airflow.agent()
    run_id = c.start_run(c.write("xcom.yaml", XCOM))
    run = c.wait_run(run_id)
    check(run["status"] == "succeeded", "run %s: %s" % (run["status"], run["tasks"]))
    reads = [r["path"] for r in airflow.fake.find("GET", "/xcomEntries/")]
    check(any(p.endswith("/taskInstances/score/xcomEntries/return_value") for p in reads),
          "the XCom was read: %s" % reads)
    use = [p for p in airflow.fake.find("POST") if p["path"].endswith("/counts/dagRuns")][-1]
    check(use["body"]["conf"]["qanat"]["inputs"] == {"auc": "0.91", "label": "good", "n": "42"},
          "a JSON object's keys, and a sole output's value: %s" % use["body"]["conf"])


FLAKY = """\
name: flaky
tasks:
  fit:
    backend: airflow
    run: "true"
    airflow: {dag_id: flaky}
"""


@with_airflow
def test_a_failed_run_names_its_task_and_its_log_tail(c, airflow):
    c.start_coordinator()
    airflow.agent()
    run_id = c.start_run(c.write("flaky.yaml", FLAKY))
    run = c.wait_run(run_id)
    check(run["status"] == "failed", "run %s" % run["status"])
    a = attempt(run, "fit")
    check(a.get("reason") == "airflow dag run flaky/qanat-%d-0-1: failed (task fit failed)"
          % run_id, "reason %r" % a.get("reason"))
    check("AirflowException: Bash command failed" in a.get("stack_trace", ""),
          "stack trace %r" % a.get("stack_trace"))
    lines = task_lines(c, run_id, "fit")
    tries = [l for l in lines if "Starting attempt" in l and " of 2" in l]
    check(len(tries) == 2 and "attempt 1 of 2" in tries[0] and "attempt 2 of 2" in tries[1],
          "both tries' logs, in order: %s" % tries)
    check(said(c, run_id, "fit").count("ValueError: bad shape") == 2, "each try's output once")


SLOW = """\
name: slow
tasks:
  wait:
    backend: airflow
    run: "true"
    airflow: {dag_id: slow}
"""


@with_airflow
def test_cancel_fails_the_dag_run(c, airflow):
    c.start_coordinator()
    airflow.agent()
    run_id = c.start_run(c.write("slow.yaml", SLOW))
    c.wait_for(lambda: "tick 2" in said(c, run_id, "wait"), "the first ticks")
    c.qanat("cancel", run_id)
    run = c.wait_run(run_id, timeout=20)
    check(run["status"] == "canceled", "run %s" % run["status"])
    patches = airflow.fake.find("PATCH")
    check(len(patches) == 1 and patches[0]["body"] == {"state": "failed"}
          and patches[0]["path"] == "/api/v1/dags/slow/dagRuns/qanat-%d-0-1" % run_id,
          "one PATCH to failed: %s" % patches)
    dag_run = airflow.fake.runs[("slow", "qanat-%d-0-1" % run_id)]
    check(dag_run.state == "failed" and dag_run.tis[0].state == "failed",
          "the run and its task failed: %s %s" % (dag_run.state, dag_run.tis[0].state))


LONG = """\
name: long
tasks:
  both:
    backend: airflow
    run: "true"
    airflow: {dag_id: long}
"""


def test_throttling_errors_and_an_expired_token_are_waited_out(c):
    airflow = Airflow(c, token="tok-1")
    try:
        c.start_coordinator()
        airflow.agent(bearer=True)
        airflow.fake.inject("POST", r"/dagRuns$", 429, count=2, retry_after=1)
        airflow.fake.inject("GET", r"/dagRuns/[^/]+$", 500, count=2)
        airflow.fake.delay_s = 0.15     # and every answer slow
        run_id = c.start_run(c.write("long.yaml", LONG))
        c.wait_for(lambda: "tick 3" in said(c, run_id, "both"), "the first ticks")
        airflow.fake.expire_token()
        time.sleep(0.3)
        with open(airflow.token_file, "w") as f:
            f.write("tok-2\n")
        airflow.fake.set_token("tok-2")
        run = c.wait_run(run_id)
        check(run["status"] == "succeeded", "run %s: %s" % (run["status"], attempt(run, "both")))
        check(said(c, run_id, "both") == ["tick %d" % i for i in range(1, 26)] * 2,
              "every line once: %s" % said(c, run_id, "both"))
        posts = airflow.fake.find("POST")
        check(len(posts) == 3 and posts[1]["time"] - posts[0]["time"] >= 0.9,
              "Retry-After waited: %s" % [round(p["time"] - posts[0]["time"], 2) for p in posts])
        check(len(airflow.fake.runs) == 1, "one run: %s" % list(airflow.fake.runs))
        check(any(r["headers"].get("Authorization") == "Bearer tok-2"
                  for r in airflow.fake.requests), "the new token was used")
    finally:
        airflow.close()


@with_airflow
def test_agent_kill_9_then_restart_reattaches_without_duplicates(c, airflow):
    c.start_coordinator()
    airflow.agent()
    run_id = c.start_run(c.write("long.yaml", LONG))
    c.wait_for(lambda: "tick 5" in said(c, run_id, "both"), "the first lines")
    c.signal_agent("a1", signal.SIGKILL)
    time.sleep(1.0)
    airflow.agent()
    run = c.wait_run(run_id, timeout=40)
    check(run["status"] == "succeeded", "run %s: %s" % (run["status"], attempt(run, "both")))
    lines = task_lines(c, run_id, "both")
    check(len(lines) == len(set(lines)), "no line twice: %s" % lines)
    check(said(c, run_id, "both") == ["tick %d" % i for i in range(1, 26)] * 2,
          "every tick once per task, in order: %s" % said(c, run_id, "both"))
    check(len(airflow.fake.find("POST")) == 1, "triggered once")


@with_airflow
def test_a_crash_between_trigger_and_record_triggers_once(c, airflow):
    c.start_coordinator()
    airflow.agent()
    airflow.fake.trigger_delay_s = 3.0
    run_id = c.start_run(c.write("long.yaml", LONG))
    rid = "qanat-%d-0-1" % run_id
    c.wait_for(lambda: ("long", rid) in airflow.fake.runs, "the run to exist")
    time.sleep(0.5)
    c.signal_agent("a1", signal.SIGKILL)
    airflow.fake.trigger_delay_s = 0.0
    airflow.agent()
    run = c.wait_run(run_id, timeout=40)
    check(run["status"] == "succeeded", "run %s: %s" % (run["status"], attempt(run, "both")))
    check(list(airflow.fake.runs) == [("long", rid)], "one run: %s" % list(airflow.fake.runs))
    posts = airflow.fake.find("POST")
    check(len(posts) == 1, "the recorded id is followed, not triggered again: %d" % len(posts))
    check(attempt(run, "both")["attempt"] == 1, "the same attempt")
    check(said(c, run_id, "both") == ["tick %d" % i for i in range(1, 26)] * 2,
          "every tick once: %s" % said(c, run_id, "both"))

    # Killed while a trigger that never reaches Airflow is in flight: the
    # id was recorded first, the new agent finds no such run and triggers it
    airflow.fake.trigger_lost_s = 3.0
    run_id = c.start_run(c.write("long.yaml", LONG))
    rid = "qanat-%d-0-1" % run_id
    c.wait_for(lambda: len(airflow.fake.find("POST")) == 2, "the lost trigger")
    time.sleep(0.3)
    c.signal_agent("a1", signal.SIGKILL)
    airflow.fake.trigger_lost_s = 0.0
    airflow.agent()
    run = c.wait_run(run_id, timeout=40)
    check(run["status"] == "succeeded", "run %s: %s" % (run["status"], attempt(run, "both")))
    posts = airflow.fake.find("POST")
    check(len(posts) == 3 and posts[2]["body"]["dag_run_id"] == rid,
          "triggered again under the same id: %s" % [p["body"].get("dag_run_id") for p in posts])
    check(attempt(run, "both")["attempt"] == 1, "the same attempt")
    check(("long", rid) in airflow.fake.runs and len(airflow.fake.runs) == 2,
          "one run per attempt: %s" % list(airflow.fake.runs))


if __name__ == "__main__":
    harness.main(globals())
