#!/usr/bin/env python3
"""The lambda backend against a fake of AWS Lambda and CloudWatch Logs
(fake_lambda.py, which verifies every request's SigV4 signature on its
own and fails on anything the API references do not allow): a task is a
synchronous Invoke whose log is followed live from CloudWatch, its
payload built from params and value inputs, its JSON result turned into
value outputs and its REPORT line into metrics; a FunctionError becomes
the end reason and stack trace; cancel leaves the invocation to finish;
throttling, a 500 and expired credentials are retried; an agent killed
with -9 follows the invocation's log again without repeating a line and
never invokes twice."""
import os
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness                      # noqa: E402
from harness import check, task     # noqa: E402
import fake_lambda                  # noqa: E402


class Lambda:
    """A fake AWS for one test, and agents that use it with credentials
    from the AWS files only."""

    def __init__(self, c):
        self.c = c
        self.fake = fake_lambda.FakeLambda().start()
        self.aws_dir = os.path.join(c.dir, "aws")
        os.makedirs(self.aws_dir, exist_ok=True)
        self.fake.write_credentials(self.aws_dir)
        self.saved = {k: os.environ.get(k) for k in (
            "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
            "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE")}
        for key in self.saved:
            os.environ.pop(key, None)
        os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.path.join(self.aws_dir, "credentials")
        os.environ["AWS_CONFIG_FILE"] = os.path.join(self.aws_dir, "config")

    def agent(self, name="l1", wait=True):
        extra = ["--backend", "lambda",
                 "--backend-option", "lambda.endpoint=" + self.fake.endpoint,
                 "--backend-option", "lambda.logs_endpoint=" + self.fake.endpoint,
                 "--backend-option", "lambda.poll_ms=100",
                 "--backend-option", "lambda.log_grace_ms=3000"]
        return self.c.start_agent(name, extra=extra, wait=wait)

    def close(self):
        self.fake.stop()
        for key, value in self.saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def with_lambda(fn):
    def wrapped(c):
        aws = Lambda(c)
        try:
            fn(c, aws)
            check(not aws.fake.violations, "requests the API does not allow: %s"
                  % aws.fake.violations)
        finally:
            aws.close()
    wrapped.__name__ = fn.__name__
    return wrapped


def attempt(run, name):
    return task(run, name)["attempts"][-1]


def task_lines(c, run_id, name):
    return [l["data"] for l in c.logs_json(run_id, name) if l["stream"] != "system"]


def system_lines(c, run_id, name):
    return [l["data"] for l in c.logs_json(run_id, name) if l["stream"] == "system"]


def ticking(count, pause, result=None):
    def fn(event, ctx):
        for i in range(1, count + 1):
            ctx.log("tick %d\n" % i)
            if i == 3:
                ctx.log("::qanat-metric loss=0.25 step=3\n")
            ctx.sleep(pause)
        return result if result is not None else {"total": count, "label": "done", "seen": event}
    return fn


SCORE = """\
name: score
params:
  n: {type: int, default: 7}
tasks:
  prepare:
    backend: local
    run: sh -c 'echo rows=12 >> "$QANAT_VALUES"'
    outputs: {rows: {value: true}}
  score:
    backend: lambda
    run: score
    inputs: {rows: {from: prepare.rows}}
    lambda:
      function: score
      qualifier: live
      payload: {n: "${{ params.n }}", rows: "${{ inputs.rows }}", note: "n=${{ params.n }}"}
    outputs: {total: {value: true}, label: {value: true}}
"""


@with_lambda
def test_invoke_with_live_logs_values_and_metrics(c, aws):
    aws.fake.functions["score"] = ticking(20, 0.1)
    aws.fake.page_size = 2
    c.start_coordinator()
    c.start_agent("edge")
    aws.agent()
    run_id = c.start_run(c.write("score.yaml", SCORE))
    c.wait_for(lambda: "tick 3" in task_lines(c, run_id, "score"), "the first ticks")
    check(c.qanat_json("status", run_id)["status"] == "running",
          "the log should arrive while the function runs")
    run = c.wait_run(run_id)
    a = attempt(run, "score")
    check(run["status"] == "succeeded", "run %s: %s" % (run["status"], a))
    lines = task_lines(c, run_id, "score")
    check(lines == ["tick %d" % i for i in range(1, 21)], "every tick once, in order: %s" % lines)
    check(a["backend"] == "lambda" and a["engine_job_id"].startswith("score@"),
          "engine job id %s" % a["engine_job_id"])
    invocations = aws.fake.invocations
    check(len(invocations) == 1, "one invocation: %s" % invocations)
    check(invocations[0]["event"] == {"n": 7, "rows": 12, "note": "n=7"},
          "the payload from params and value inputs: %s" % invocations[0]["event"])
    check(invocations[0]["qualifier"] == "live", "qualifier %s" % invocations[0])
    key = "qanat-%d-%d-1" % (run_id, [t["name"] for t in run["tasks"]].index("score"))
    check(invocations[0]["context"] == {"custom": {"qanat_key": key}},
          "client context %s, want %s" % (invocations[0]["context"], key))
    arts = {x["output"]: x for x in c.qanat_json("artifacts", run_id)}
    check(arts.get("total", {}).get("value") == "20" and arts.get("label", {}).get("value") == "done",
          "value outputs from the JSON result: %s" % arts)
    metrics = {m["name"]: m for m in c.qanat_json("metrics", run_id)}
    check([(p["value"], p["step"]) for p in metrics.get("loss", {}).get("points", [])] == [(0.25, 3)],
          "the ::qanat-metric line: %s" % sorted(metrics))
    for name in ("lambda_duration_ms", "lambda_billed_duration_ms", "lambda_max_memory_mb"):
        check(name in metrics, "REPORT figure %s in %s" % (name, sorted(metrics)))
    check(metrics["lambda_max_memory_mb"]["points"][0]["value"] == 42, "max memory %s"
          % metrics["lambda_max_memory_mb"])
    signed = [r for r in aws.fake.requests if r["service"] == "logs"]
    check(signed and all(r["headers"].get("x-amz-security-token") == "session-token-1"
                         for r in aws.fake.requests), "the session token on every request")
    check(any("nextToken" in q for q in aws.fake.log_queries),
          "the log was read in pages (nextToken): %s %s" % (aws.fake.log_queries[:3],
                                                            aws.fake.violations[:3]))


FAILING = """\
name: failing
tasks:
  boom:
    backend: lambda
    run: boom
    lambda: {function: boom}
  missing:
    backend: lambda
    run: missing
    lambda: {function: nowhere}
"""


@with_lambda
def test_function_errors_and_missing_functions(c, aws):
    def boom(event, ctx):
        ctx.log("about to fail\n")
        raise fake_lambda.FunctionFailure("ValueError", "bad input 42", [
            '  File "/var/task/app.py", line 9, in handler\n    raise ValueError("bad input 42")\n'])
    aws.fake.functions["boom"] = boom
    c.start_coordinator()
    aws.agent()
    run = c.wait_run(c.start_run(c.write("failing.yaml", FAILING)))
    a = attempt(run, "boom")
    check(task(run, "boom")["status"] == "failed", "boom: %s" % a)
    check("ValueError: bad input 42" in a["reason"] and "Lambda Unhandled function error" in a["reason"],
          "reason %r" % a["reason"])
    check('File "/var/task/app.py", line 9' in a["stack_trace"], "stack trace %r" % a["stack_trace"])
    m = attempt(run, "missing")
    check(m["end"] == "start" and "ResourceNotFoundException: Function not found" in m["reason"],
          "a missing function is a start failure with Lambda's message: %s" % m)


CANCEL = """\
name: cancel
tasks:
  slow:
    backend: lambda
    run: slow
    lambda: {function: slow}
"""


@with_lambda
def test_cancel_leaves_the_invocation_to_finish(c, aws):
    aws.fake.functions["slow"] = ticking(40, 0.1)
    c.start_coordinator()
    aws.agent()
    run_id = c.start_run(c.write("cancel.yaml", CANCEL))
    c.wait_for(lambda: "tick 2" in task_lines(c, run_id, "slow"), "the function to run")
    started = time.time()
    c.qanat("cancel", run_id)
    run = c.wait_run(run_id)
    a = attempt(run, "slow")
    check(run["status"] == "canceled", "run %s" % run["status"])
    check(time.time() - started < 3, "cancel took %.1fs" % (time.time() - started))
    check("canceled" in a["reason"], "reason %r" % a["reason"])
    # The coordinator keeps its own cancel reason; the agent's says more
    with open(os.path.join(c.dir, "agent-l1.log")) as f:
        check("(Lambda invocation left to finish)" in f.read(), "the agent's reason")


@with_lambda
def test_throttling_500_and_expired_credentials_are_retried(c, aws):
    aws.fake.functions["slow"] = ticking(3, 0.05, {"ok": True})
    aws.fake.throttle = 2
    aws.fake.fail_500 = 1
    aws.fake.logs_throttle = 2
    c.start_coordinator()
    aws.agent()
    run_id = c.start_run(c.write("cancel.yaml", CANCEL))
    run = c.wait_run(run_id)
    check(run["status"] == "succeeded", "run %s: %s" % (run["status"], attempt(run, "slow")))
    check(len(aws.fake.invocations) == 4, "2 throttled, 1 failed, 1 ran: %d"
          % len(aws.fake.invocations))
    gaps = [b["time"] - a["time"] for a, b in zip(aws.fake.invocations, aws.fake.invocations[1:])]
    check(gaps[0] >= 0.9, "Retry-After: 1 was honoured: %s" % gaps)
    notes = system_lines(c, run_id, "slow")
    check(any("TooManyRequestsException: Rate Exceeded." in n and "trying again" in n for n in notes),
          "the throttling shows: %s" % notes)
    check(task_lines(c, run_id, "slow") == ["tick 1", "tick 2", "tick 3"], "lines %s"
          % task_lines(c, run_id, "slow"))

    # Expired credentials: the agent reads the AWS files again and goes on
    aws.fake.credentials["AKIDQANATTEST2"] = ("second/secret", None)
    aws.fake.expired_keys.add("AKIDQANATTEST1")
    aws.fake.write_credentials(aws.aws_dir, "AKIDQANATTEST2")
    run = c.wait_run(c.start_run(c.write("cancel.yaml", CANCEL)))
    check(run["status"] == "succeeded", "after the refresh: %s" % attempt(run, "slow"))
    # ...and when the files hold nothing newer, the attempt fails with
    # Lambda's message instead of trying forever
    aws.fake.expired_keys.add("AKIDQANATTEST2")
    run = c.wait_run(c.start_run(c.write("cancel.yaml", CANCEL)))
    a = attempt(run, "slow")
    check(run["status"] == "failed" and "ExpiredTokenException" in a["reason"]
          and "refresh the agent's AWS credentials" in a["reason"], "expired: %s" % a)


LONG = """\
name: long
tasks:
  long:
    backend: lambda
    run: long
    lambda: {function: long}
"""


@with_lambda
def test_kill_9_follows_the_log_again_and_never_invokes_twice(c, aws):
    aws.fake.functions["long"] = ticking(30, 0.1)
    c.start_coordinator()
    aws.agent()
    run_id = c.start_run(c.write("long.yaml", LONG))
    c.wait_for(lambda: "tick 5" in task_lines(c, run_id, "long"), "the first ticks")
    c.signal_agent("l1", signal.SIGKILL)
    time.sleep(0.5)
    aws.agent()
    run = c.wait_run(run_id, timeout=40)
    a = attempt(run, "long")
    lines = task_lines(c, run_id, "long")
    check(lines == ["tick %d" % i for i in range(1, 31)],
          "every line once after the re-attach: %s" % lines)
    check(a["attempt"] == 1 and "result is unknown" in a["reason"],
          "the re-attached attempt ends with its result unknown: %s" % a)
    check(len(aws.fake.invocations) == 1, "invoked once: %d" % len(aws.fake.invocations))

    # Killed while the Invoke is in flight and before any log line: the
    # started event (with the invoke time) was spooled before the Invoke
    # went out, so the new agent follows that invocation, never a second
    gate = threading.Event()

    def held(event, ctx):
        gate.wait(10)
        ctx.log("after the gate\n")
        return {"ok": True}
    aws.fake.functions["long"] = held
    time.sleep(1.2)     # the first invocation's lines are older than our invoke time
    run_id = c.start_run(c.write("long.yaml", LONG))
    c.wait_for(lambda: len(aws.fake.invocations) == 2, "the second invocation")
    c.signal_agent("l1", signal.SIGKILL)
    time.sleep(0.3)
    aws.agent()
    gate.set()
    run = c.wait_run(run_id, timeout=40)
    check(len(aws.fake.invocations) == 2, "no second Invoke for the same attempt: %s"
          % [i["context"] for i in aws.fake.invocations])
    check(task_lines(c, run_id, "long") == ["after the gate"], "its log: %s"
          % task_lines(c, run_id, "long"))


if __name__ == "__main__":
    harness.main(globals())
