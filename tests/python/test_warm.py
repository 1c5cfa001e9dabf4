"""Warm Python workers (qanat-agent --warm-python 2) against a real qanatd:
many small ops whose logs, metrics and values stay their own, ops that
reuse two workers, a crash (os._exit) that replaces its worker and fails
its attempt (retried), a timeout and a cancel that kill only the worker
running that op, two flows (two code hashes) that never share a
worker, and a memory bound that replaces a worker after its op."""
import os
import sys
import time

sys.dont_write_bytecode = True

from clientlib import ClusterCase, main, wait_for  # noqa: E402
import qanat  # noqa: E402

FLOWS = r'''
import os
import sys
import time
import qanat

STARTED = time.time()          # once per interpreter: tells a warm worker apart


@qanat.op
def square(i: int) -> int:
    for k in range(3):
        print("op %d line %d" % (i, k))
    print("op %d err" % i, file=sys.stderr)
    qanat.log_metric("i", i)
    os.environ["LEAK_%d" % i] = "1"     # must not reach the next op
    return i * i


@qanat.op
def who(after: int = 0) -> str:
    leaked = sorted(k for k in os.environ if k.startswith("LEAK_"))
    return "%d %r %s %s" % (os.getpid(), STARTED, os.getcwd(), ",".join(leaked))


@qanat.op(retries=1)
def crash() -> int:
    print("about to crash", flush=True)
    print("pid %d" % os.getpid(), flush=True)
    if os.environ.get("QANAT_ATTEMPT") == "1":
        os._exit(7)
    return 1


@qanat.op(timeout=1)
def sleepy() -> int:
    print("sleeping", flush=True)
    time.sleep(30)
    return 0


@qanat.op
def raises() -> int:
    raise ValueError("warm boom")


@qanat.op
def writes() -> qanat.File:
    with open("out.txt", "w") as f:
        f.write("from a warm op\n")
    return qanat.File("out.txt")


with qanat.Flow("warm-many") as many:
    for n in range(12):
        last = square(n)
    for n in range(4):
        who(last)

with qanat.Flow("warm-who") as whos:
    for n in range(4):
        who()

with qanat.Flow("warm-crash") as crashing:
    crash()

with qanat.Flow("warm-timeout") as timing_out:
    sleepy()
    for n in range(3):
        who()

with qanat.Flow("warm-misc") as misc:
    raises()
    writes()
'''


def lines(run, task):
    """What task printed, line by line, without the system lines."""
    return [line for l in run.logs(task) if l["stream"] != "system"
            for line in l["text"].split("\n")]


def attempts(run, task):
    return [t for t in run.tasks if t["name"] == task][0]["attempts"]


def load(path, name):
    import importlib.util
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class TestWarm(ClusterCase):
    AGENTS = ()

    def setUp(self):
        super().setUp()
        self.c.start_agent("a1", slots=2, extra=("--warm-python", "2"))
        self.flows = self.flows_in("code")

    def flows_in(self, folder, extra=""):
        code = os.path.join(self.c.dir, folder)
        os.makedirs(code)
        path = os.path.join(code, "flows.py")
        with open(path, "w") as f:
            f.write(FLOWS + extra)
        return load(path, "flows_%s_%s" % (folder, self.id().rsplit(".", 1)[-1]))

    def run_flow(self, flow):
        return flow.run(follow=False, client=self.admin).wait(timeout=60)

    def workers(self):
        """Pids of the agent's warm workers alive now."""
        pids = []
        for entry in os.listdir("/proc"):
            try:
                with open("/proc/%s/cmdline" % entry, "rb") as f:
                    argv = f.read().split(b"\0")
            except OSError:
                continue
            if b"qanat._worker" in argv:
                cwd = os.readlink("/proc/%s/cwd" % entry) if os.path.exists(
                    "/proc/%s/cwd" % entry) else ""
                if cwd.startswith(os.path.realpath(self.c.dir)):
                    pids.append(int(entry))
        return sorted(pids)

    def test_many_ops_logs_metrics_values_own(self):
        run = self.run_flow(self.flows.many)
        self.assertEqual(run.status, "succeeded", run.info)
        values = run.values()
        metrics = run.metrics()["i"]
        for t in run.tasks:
            if t["name"].startswith("who"):
                continue
            n = int(values[t["name"]]["value"]) ** 0.5
            n = int(round(n))
            self.assertEqual(sorted(lines(run, t["name"])), sorted(["op %d line %d" % (n, k) for k in range(3)]
                                                   + ["op %d err" % n]), t["name"])
            self.assertEqual([p["value"] for p in metrics if p["task"] == t["name"]], [n])
        # two workers served the twelve ops
        self.assertLessEqual(len(self.workers()), 2)
        seen = [values[t["name"]]["value"].strip('"').split(" ") for t in run.tasks
                if t["name"].startswith("who")]
        self.assertLessEqual(len({s[0] for s in seen}), 2, seen)
        for s in seen:
            self.assertEqual(s[3:], [""], "an op's environment leaked: %r" % s)
            self.assertIn("/work", s[2])
        self.assertEqual(len({s[2] for s in seen}), 4, "each op has its own directory")

    def test_crash_replaces_worker_and_retries(self):
        before = self.workers()
        run = self.run_flow(self.flows.crashing)
        self.assertEqual(run.status, "succeeded", run.info)
        tries = attempts(run, "crash")
        self.assertEqual(len(tries), 2, tries)
        self.assertEqual(tries[0]["exit_code"], 7, tries[0])
        printed = lines(run, "crash")
        self.assertEqual(printed.count("about to crash"), 2, printed)
        pids = [p for p in printed if p.startswith("pid ")]
        self.assertEqual(len(set(pids)), 2, "the crashed worker was replaced: %r" % pids)
        self.assertEqual(before, [])

    def test_timeout_kills_only_that_worker_and_exception_trace(self):
        run = self.run_flow(self.flows.timing_out)
        self.assertEqual(run.status, "failed", run.info)
        self.assertEqual(attempts(run, "sleepy")[-1]["end"], "timeout", run.info)
        # the worker of sleepy was killed; the one that ran the who ops
        # (each flow is its own code: its call graph is part of it) lives on
        served = {run.values()[t["name"]]["value"].strip('"').split(" ")[0]
                  for t in run.tasks if t["name"] != "sleepy"}
        self.assertEqual([str(p) for p in self.workers()], sorted(served))
        misc = self.run_flow(self.flows.misc)
        trace = attempts(misc, "raises")[-1]["stack_trace"]
        self.assertIn("ValueError: warm boom", trace)
        self.assertTrue(trace.startswith("Traceback (most recent call last):"), trace)
        path = os.path.join(self.c.dir, "out.txt")
        misc.download("writes", "result", path)
        with open(path) as f:
            self.assertEqual(f.read(), "from a warm op\n")

    def test_cancel_kills_the_worker(self):
        started = self.flows.timing_out.run(follow=False, client=self.admin)
        wait_for(lambda: "sleeping" in lines(started, "sleepy"),
                 "the op to start")
        busy = set(self.workers())
        started.cancel()
        run = started.wait(timeout=30)
        self.assertEqual(run.status, "canceled", run.info)
        wait_for(lambda: len(busy - set(self.workers())) >= 1, "the worker to go")

    def test_two_code_hashes_never_share_a_worker(self):
        other = self.flows_in("code2", extra="\n# another code hash\n")
        one = self.run_flow(self.flows.whos)
        two = self.run_flow(other.whos)
        pids_one = {one.values()[t["name"]]["value"].strip('"').split(" ")[0] for t in one.tasks}
        pids_two = {two.values()[t["name"]]["value"].strip('"').split(" ")[0] for t in two.tasks}
        self.assertTrue(pids_one.isdisjoint(pids_two), (pids_one, pids_two))


class TestWarmMemory(TestWarm):
    """A worker whose memory after an op is past local.warm_rss_mb is
    replaced: with a bound of 1 MB every op gets a new worker."""

    def setUp(self):
        ClusterCase.setUp(self)
        self.c.start_agent("a1", slots=1, extra=("--warm-python", "1", "--backend-option",
                                                 "local.warm_rss_mb=1"))
        self.flows = self.flows_in("code")

    def test_memory_bound_replaces_each_worker(self):
        run = self.run_flow(self.flows.whos)
        self.assertEqual(run.status, "succeeded", run.info)
        pids = {run.values()[t["name"]]["value"].strip('"').split(" ")[0] for t in run.tasks}
        self.assertEqual(len(pids), 4, pids)


for _name in [n for n in vars(TestWarm) if n.startswith("test_")]:
    setattr(TestWarmMemory, _name, None)     # only its own test


if __name__ == "__main__":
    main()
