#!/usr/bin/env python3
"""The ray backend against a fake Ray dashboard (fake_ray.py, the Jobs REST
API, a bearer token as a proxy in front of it would want): a task runs as
a Ray job whose driver log is followed live; the submit body is checked
field by field (the fake refuses anything the API reference does not
allow); a failed job ends with Ray's message and its log's tail; a cancel
stops the job; 429 with Retry-After, 500 and an expired token are waited
out; an agent killed with -9 re-attaches without losing or repeating a
line; an agent killed between its submit and the record of it submits
again and finds the job it made, which runs once."""
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness                      # noqa: E402
from harness import check, task_lines, last_attempt as attempt  # noqa: E402
import fake_ray                     # noqa: E402


class Ray:
    """A fake dashboard for one test, and agents that use it."""

    def __init__(self, c):
        self.c = c
        self.fake = fake_ray.FakeRay(os.path.join(c.dir, "ray"), token="tok-1").start()
        self.token_file = c.write("ray-token", "tok-1\n")

    def agent(self, name="r1", wait=True):
        extra = ["--backend", "ray",
                 "--backend-option", "ray.address=" + self.fake.url,
                 "--backend-option", "ray.token_file=" + self.token_file,
                 "--backend-option", "ray.poll_ms=100"]
        return self.c.start_agent(name, extra=extra, wait=wait)

    def close(self):
        self.fake.stop()
        check(not self.fake.violations, "requests the Jobs API refuses: %s" % self.fake.violations)


def with_ray(fn):
    def wrapped(c):
        ray = Ray(c)
        try:
            fn(c, ray)
        finally:
            ray.close()
    wrapped.__name__ = fn.__name__
    return wrapped


FOLLOW = """\
name: follow
tasks:
  count:
    backend: ray
    run: sh -c 'for i in $(seq 1 20); do echo "tick $i"; if [ $i = 3 ]; then echo "::qanat-metric loss=0.25 step=3"; fi; sleep 0.1; done; echo "::qanat-output total=20"; echo "greeting=$GREETING"'
    env: {GREETING: hello}
    resources: {cpus: 2, memory: 512, gpus: 1}
    outputs: {total: {value: true}}
    ray:
      runtime_env: {pip: [numpy==1.26.4], env_vars: {FROM_BLOCK: "1"}}
      entrypoint_resources: {accelerator_type_a100: 0.5}
  after:
    backend: ray
    inputs: {total: count.total}
    run: sh -c 'echo "got $QANAT_INPUT_TOTAL"'
"""


@with_ray
def test_a_task_runs_as_a_job_and_its_log_follows(c, ray):
    c.start_coordinator()
    ray.agent()
    run_id = c.start_run(c.write("follow.yaml", FOLLOW))
    c.wait_for(lambda: "tick 2" in task_lines(c, run_id, "count"), "the first ticks")
    check(c.qanat_json("status", run_id)["status"] == "running",
          "the log should arrive while the job runs")
    run = c.wait_run(run_id)
    check(run["status"] == "succeeded", "run %s: %s" % (run["status"], attempt(run, "count")))
    lines = task_lines(c, run_id, "count")
    check(lines == ["tick %d" % i for i in range(1, 21)] + ["greeting=hello"],
          "every line once, in order, markers out: %s" % lines)
    loss = [m for m in c.qanat_json("metrics", run_id) if m["name"] == "loss"]
    check(loss and [(p["value"], p["step"]) for p in loss[0]["points"]] == [(0.25, 3)],
          "the metric line became a metric point: %s" % loss)
    check(task_lines(c, run_id, "after") == ["got 20"], "the value went along: %s"
          % task_lines(c, run_id, "after"))
    a = attempt(run, "count")
    sid = "qanat-%d-0-1" % run_id
    check(a["engine_job_id"] == sid, "engine job id %s" % a)
    check(a.get("engine_url") == "%s/#/jobs/%s" % (ray.fake.url, sid), "link %s" % a)
    posts = [r for r in ray.fake.find("POST") if r["path"] == "/api/jobs/"]
    check(len(posts) == 2, "one submit per task: %d" % len(posts))
    body = posts[0]["body"]
    check(body["submission_id"] == sid, "submission_id %s" % body)
    check(body["entrypoint"].startswith("sh -c 'for i in"), "entrypoint %s" % body["entrypoint"])
    env = body["runtime_env"]["env_vars"]
    check(env.get("GREETING") == "hello" and env.get("FROM_BLOCK") == "1"
          and env.get("QANAT_RUN_ID") == str(run_id), "env_vars %s" % env)
    check("QANAT_VALUES" not in env and "QANAT_STAGE_DIR" not in env, "agent paths %s" % env)
    check(body["runtime_env"].get("pip") == ["numpy==1.26.4"], "pip %s" % body["runtime_env"])
    check(body.get("entrypoint_num_cpus") == 2 and body.get("entrypoint_num_gpus") == 1
          and body.get("entrypoint_memory") == 512 * 1024 * 1024, "resources %s" % body)
    check(body.get("entrypoint_resources") == {"accelerator_type_a100": 0.5}, "custom %s" % body)
    meta = body["metadata"]
    check(meta["qanat.run"] == str(run_id) and meta["qanat.task"] == "0"
          and meta["qanat.attempt"] == "1", "metadata %s" % meta)
    check(posts[1]["body"]["runtime_env"]["env_vars"].get("QANAT_INPUT_TOTAL") == "20",
          "the value input in env_vars: %s" % posts[1]["body"]["runtime_env"])
    check(all(r["headers"].get("Authorization") == "Bearer tok-1" for r in ray.fake.requests),
          "every request had the token")


FAILS = """\
name: fails
tasks:
  broken:
    backend: ray
    run: |
      echo working; echo "Traceback (most recent call last):"; echo "ValueError: bad shape" >&2; exit 3
"""


@with_ray
def test_a_failed_job_ends_with_rays_message(c, ray):
    c.start_coordinator()
    ray.agent()
    run_id = c.start_run(c.write("fails.yaml", FAILS))
    run = c.wait_run(run_id)
    check(run["status"] == "failed", "run %s" % run["status"])
    a = attempt(run, "broken")
    check(a["exit_code"] == 3, "exit code %s" % a)
    reason = a.get("reason", "")
    check(reason.startswith("ray job qanat-%d-0-1: FAILED: Job entrypoint command failed "
                            "with exit code 3" % run_id), "reason %r" % reason)
    check("ValueError: bad shape" in a.get("stack_trace", ""), "stack trace %r" % a)


SETUP = """\
name: setup
tasks:
  nodir:
    backend: ray
    run: echo never
    ray:
      runtime_env: {working_dir: /nonexistent/qanat-code}
"""


@with_ray
def test_a_runtime_env_failure_is_a_start_failure(c, ray):
    c.start_coordinator()
    ray.agent()
    run_id = c.start_run(c.write("setup.yaml", SETUP))
    run = c.wait_run(run_id)
    a = attempt(run, "nodir")
    check(a["end"] == "start", "end %s" % a)
    check("working_dir" in a.get("reason", ""), "reason %r" % a.get("reason"))


SLEEPY = """\
name: sleepy
tasks:
  sleepy:
    backend: ray
    run: sh -c 'for i in $(seq 1 300); do echo "tick $i"; sleep 0.1; done'
"""


@with_ray
def test_cancel_stops_the_job(c, ray):
    c.start_coordinator()
    ray.agent()
    run_id = c.start_run(c.write("sleepy.yaml", SLEEPY))
    c.wait_for(lambda: "tick 2" in task_lines(c, run_id, "sleepy"), "the first ticks")
    c.qanat("cancel", run_id)
    run = c.wait_run(run_id, timeout=20)
    check(run["status"] == "canceled", "run %s" % run["status"])
    check(attempt(run, "sleepy")["end"] == "canceled", "end %s" % attempt(run, "sleepy"))
    stops = ray.fake.find("POST", "/stop")
    check(len(stops) == 1 and stops[0]["path"] == "/api/jobs/qanat-%d-0-1/stop" % run_id,
          "one stop: %s" % stops)
    c.wait_for(lambda: ray.fake.jobs["qanat-%d-0-1" % run_id].status == "STOPPED",
               "the job to stop", timeout=5)


SHORT = """\
name: short
tasks:
  short:
    backend: ray
    run: sh -c 'for i in $(seq 1 10); do echo "line $i"; sleep 0.1; done'
"""


@with_ray
def test_throttling_errors_and_an_expired_token_are_waited_out(c, ray):
    c.start_coordinator()
    ray.agent()
    ray.fake.inject("POST", r"^/api/jobs/$", 429, count=2, retry_after=1)
    ray.fake.inject("GET", r"^/api/jobs/[^/]+$", 500, count=2)
    run_id = c.start_run(c.write("short.yaml", SHORT))
    c.wait_for(lambda: "line 3" in task_lines(c, run_id, "short"), "the first lines")
    # The token expires; the agent keeps trying and picks up the new one
    ray.fake.expire_token()
    time.sleep(0.3)
    with open(ray.token_file, "w") as f:
        f.write("tok-2\n")
    ray.fake.set_token("tok-2")
    run = c.wait_run(run_id)
    check(run["status"] == "succeeded", "run %s: %s" % (run["status"], attempt(run, "short")))
    check(task_lines(c, run_id, "short") == ["line %d" % i for i in range(1, 11)],
          "every line once: %s" % task_lines(c, run_id, "short"))
    posts = [r for r in ray.fake.find("POST") if r["path"] == "/api/jobs/"]
    check(len(posts) == 3, "two throttled submits, then one: %d" % len(posts))
    check(posts[1]["time"] - posts[0]["time"] >= 0.9 and posts[2]["time"] - posts[1]["time"] >= 0.9,
          "Retry-After: 1 was waited: %s" % [round(p["time"] - posts[0]["time"], 2) for p in posts])
    check(len(ray.fake.jobs) == 1, "one job: %s" % list(ray.fake.jobs))


@with_ray
def test_a_revoked_token_fails_the_attempt_with_the_engines_message(c, ray):
    c.start_coordinator()
    ray.agent()
    run_id = c.start_run(c.write("sleepy.yaml", SLEEPY))
    c.wait_for(lambda: "tick 2" in task_lines(c, run_id, "sleepy"), "the first ticks")
    ray.fake.expire_token()
    run = c.wait_run(run_id, timeout=30)
    a = attempt(run, "sleepy")
    check(run["status"] == "failed" and "HTTP 401" in a.get("reason", ""),
          "run %s, reason %r" % (run["status"], a.get("reason")))
    check("tok-1" not in a.get("reason", ""), "the token stays out of the reason")


@with_ray
def test_an_unreadable_token_file_ends_the_attempt(c, ray):
    c.start_coordinator()
    ray.agent()
    run_id = c.start_run(c.write("sleepy.yaml", SLEEPY))
    c.wait_for(lambda: "tick 2" in task_lines(c, run_id, "sleepy"), "the first ticks")
    os.unlink(ray.token_file)
    run = c.wait_run(run_id, timeout=30)
    a = attempt(run, "sleepy")
    check(a["end"] == "agent_lost" and "cannot make a request" in a.get("reason", ""),
          "end %s, reason %r" % (a["end"], a.get("reason")))


BIG = """\
name: big
tasks:
  big:
    backend: ray
    run: sh -c 'head -c 5000000 /dev/zero | tr "\\\\0" x | fold -w 1000; echo; for i in $(seq 1 60); do echo "tick $i"; sleep 0.05; done'
"""


@with_ray
def test_a_large_log_is_read_less_often_and_every_line_once(c, ray):
    # Ray serves the whole log at each read: past 1 MiB the agent reads
    # it every few polls only, and still hands out every line once
    c.start_coordinator()
    ray.agent()
    run_id = c.start_run(c.write("big.yaml", BIG))
    run = c.wait_run(run_id, timeout=40)
    check(run["status"] == "succeeded", "run %s: %s" % (run["status"], attempt(run, "big")))
    lines = task_lines(c, run_id, "big")
    check(lines == ["x" * 1000] * 5000 + ["tick %d" % i for i in range(1, 61)],
          "every line once: %d lines, %s" % (len(lines), lines[-3:]))
    gets = [r["path"] for r in ray.fake.find("GET", "/api/jobs/")]
    logs = [p for p in gets if p.endswith("/logs")]
    polls = len(gets) - len(logs)
    check(len(logs) * 2 < polls, "the log read less often than the status: %d of %d"
          % (len(logs), polls))


REATTACH = """\
name: reattach
tasks:
  long:
    backend: ray
    run: sh -c 'for i in $(seq 1 50); do echo "line $i"; sleep 0.06; done'
"""


@with_ray
def test_agent_kill_9_then_restart_reattaches_without_duplicates(c, ray):
    c.start_coordinator()
    ray.agent()
    run_id = c.start_run(c.write("reattach.yaml", REATTACH))
    c.wait_for(lambda: "line 5" in task_lines(c, run_id, "long"), "the first lines")
    c.signal_agent("r1", signal.SIGKILL)
    time.sleep(1.0)                 # the job goes on meanwhile
    ray.agent()
    run = c.wait_run(run_id, timeout=40)
    check(run["status"] == "succeeded", "run %s: %s" % (run["status"], attempt(run, "long")))
    lines = task_lines(c, run_id, "long")
    check(lines == ["line %d" % i for i in range(1, 51)], "every line exactly once: %s" % lines)
    check(len(ray.fake.find("POST")) == 1, "submitted once: %d" % len(ray.fake.find("POST")))
    check(attempt(run, "long")["attempt"] == 1, "the same attempt: %s" % attempt(run, "long"))


@with_ray
def test_a_crash_between_submit_and_record_submits_once(c, ray):
    c.start_coordinator()
    ray.agent()
    ray.fake.submit_delay_s = 3.0   # the job exists, its answer is late
    run_id = c.start_run(c.write("reattach.yaml", REATTACH))
    sid = "qanat-%d-0-1" % run_id
    c.wait_for(lambda: sid in ray.fake.jobs, "the job to exist")
    time.sleep(0.5)
    c.signal_agent("r1", signal.SIGKILL)
    ray.fake.submit_delay_s = 0.0
    ray.agent()
    run = c.wait_run(run_id, timeout=40)
    check(run["status"] == "succeeded", "run %s: %s" % (run["status"], attempt(run, "long")))
    check(list(ray.fake.jobs) == [sid], "one job: %s" % list(ray.fake.jobs))
    posts = ray.fake.find("POST")
    check(len(posts) == 1, "the recorded id is followed, not submitted again: %d" % len(posts))
    a = attempt(run, "long")
    check(a["attempt"] == 1 and a["engine_job_id"] == sid, "the same attempt: %s" % a)
    lines = task_lines(c, run_id, "long")
    check(lines == ["line %d" % i for i in range(1, 51)], "every line exactly once: %s" % lines)

    # Killed while a submit that never reaches Ray is in flight: the id
    # was recorded first, the new agent finds no such job and submits it
    ray.fake.submit_lost_s = 3.0
    run_id = c.start_run(c.write("reattach.yaml", REATTACH))
    sid = "qanat-%d-0-1" % run_id
    c.wait_for(lambda: len(ray.fake.find("POST")) == 2, "the lost submit")
    time.sleep(0.3)
    c.signal_agent("r1", signal.SIGKILL)
    ray.fake.submit_lost_s = 0.0
    ray.agent()
    run = c.wait_run(run_id, timeout=40)
    check(run["status"] == "succeeded", "run %s: %s" % (run["status"], attempt(run, "long")))
    posts = ray.fake.find("POST")
    check(len(posts) == 3 and posts[2]["body"]["submission_id"] == sid,
          "submitted again under the same id: %s" % [p["body"].get("submission_id") for p in posts])
    check(attempt(run, "long")["attempt"] == 1, "the same attempt: %s" % attempt(run, "long"))
    check(sorted(ray.fake.jobs)[-1:] == [sid] and len(ray.fake.jobs) == 2,
          "one job per attempt: %s" % list(ray.fake.jobs))


BAD_BLOCKS = """\
name: bad
tasks:
  a:
    backend: ray
    run: echo a
    ray:
      runtime_env: {working_dir: x, secrets: y}
  b:
    backend: airflow
    run: "true"
    airflow: {conf: {qanat: 1}}
"""


def test_bad_blocks_are_refused_at_file_line_col(c):
    c.start_coordinator()
    result = c.qanat("run", c.write("bad.yaml", BAD_BLOCKS), check=False)
    check(result.returncode != 0, "the run was refused")
    err = result.stderr
    check("bad.yaml:7:20: invalid 'runtime_env' in 'ray' (unknown runtime_env field 'secrets')"
          in err, "runtime_env error: %s" % err)
    check("bad.yaml:11:14: 'airflow' needs 'dag_id'" in err, "dag_id error: %s" % err)
    check("invalid 'conf' in 'airflow' (the key 'qanat' is qanat's own)" in err,
          "conf error: %s" % err)


if __name__ == "__main__":
    harness.main(globals())
