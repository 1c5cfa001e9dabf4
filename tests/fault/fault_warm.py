"""Fault case (g) of the fault suite (test_faults.py): kill -9 of a warm
Python worker in the middle of an op.  An agent with --warm-python 1 runs a
Python SDK op that prints numbered lines; once some are committed the
worker running it is killed.  Its attempt must end agent_lost (the worker
died, not the op), the retry run in a new worker and succeed, and no line
be lost or stored twice."""
import os
import signal
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "python"))

FLOW = '''
import os
import time
import qanat


@qanat.op(retries=2, retry_delay="0s")
def slow(piddir: str) -> int:
    with open(os.path.join(piddir, "warm.%s" % os.environ["QANAT_ATTEMPT"]), "w") as f:
        f.write(str(os.getpid()))
    for i in range(1, 41):
        print("line %d" % i, flush=True)
        time.sleep(0.05)
    return 40


with qanat.Flow("fault-warm", params={"piddir": ""}) as flow:
    slow(flow.params.piddir)
'''


def scenario_g(r, h):
    """h: the suite's helpers (test_faults as a module)."""
    import importlib.util
    import qanat
    c = h.new_cluster("g", http_port=True)
    r.cluster = c
    c.start_agent("g1", slots=1, timers=h.agent_timers(),
                  extra=h.agent_extra() + ["--warm-python", "1"])
    code = os.path.join(c.dir, "code-g")
    os.makedirs(code)
    with open(os.path.join(code, "warmflow.py"), "w") as f:
        f.write(FLOW)
    spec = importlib.util.spec_from_file_location("warmflow_g", os.path.join(code, "warmflow.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    token = c.create_apitoken("root", "admin") if c.secure else None
    client = qanat.Client(c.http_url, token)
    run_id = str(module.flow.run(params={"piddir": c.dir}, follow=False, client=client).id)
    r.trials, r.tasks = 1, 1
    h.wait_until("5 committed lines", lambda: len(h.committed(c, run_id, "slow", 1)) >= 5, 30)
    worker = h.read_pid(os.path.join(c.dir, "warm.1"))
    before = h.committed(c, run_id, "slow", 1)
    os.kill(worker, signal.SIGKILL)
    r.note("killed warm worker %d after %d committed lines" % (worker, len(before)))

    run = h.wait_run(c, r, run_id, 60)
    logs = c.logs_json(run_id)
    r.duplicated += h.duplicates(logs)
    attempts = h.attempts_of(run, "slow")
    ok = h.succeeded_attempts(run, "slow")
    if ok:
        r.lost += h.missing(h.stdout_lines(logs, "slow", ok[0]["attempt"]), h.numbered(40))
    else:
        r.lost += 40
    first = h.stdout_lines(logs, "slow", 1)
    r.lost += h.missing(first, before)
    h.check(run["status"] == "succeeded", "run %s" % run["status"])
    h.check(len(ok) == 1, "exactly one successful attempt, got %d" % len(ok))
    h.check(h.attempt_end(attempts[0]) == "agent_lost",
            "the killed attempt ended %s (%s)" % (h.attempt_end(attempts[0]),
                                                  attempts[0]["reason"]))
    h.check(h.is_numbered_prefix(first) and first[:len(before)] == before,
            "the killed attempt's committed lines are kept in order")
    again = h.read_pid(os.path.join(c.dir, "warm.%d" % ok[0]["attempt"]))
    h.check(again != worker, "the retry ran in a new worker")
    r.note("attempts: %s" % ", ".join("%d: %s (%s)" % (a["attempt"], h.attempt_end(a),
                                                       a["reason"]) for a in attempts))
