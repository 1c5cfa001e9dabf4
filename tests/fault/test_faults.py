"""Fault-injection suite: real qanatd and qanat-agent processes on loopback,
driven through the `qanat` CLI (tests/integration/harness.py), with faults
injected from outside: kill -9, SIGSTOP/SIGCONT partitions, a full disk,
a task that ignores SIGTERM, drain, a crash with unsent events, and
kill -9 of a warm Python worker mid-op (fault_warm.py).

Each scenario counts, from `qanat logs --json` and `qanat metrics --json`:
  lost        expected log lines or metric points that are missing
  duplicated  lines or points stored more than once
  stuck       runs not ended by their deadline
and passes only if all three are 0 and its own assertions hold.  The suite
ends with a table, one row per scenario, and `N passed, N failed`.

    QANAT_BUILDDIR=$PWD /usr/bin/python3 tests/fault/test_faults.py [a b ...]

Scenarios can be picked by letter.  A scenario that cannot run here (the
full-disk one needs `mount -t tmpfs`) is reported as skipped, with why.
"""
import collections
import json
import os
import signal
import subprocess
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, HERE)
import harness                      # noqa: E402
from harness import Cluster, TestFailure, check, agent_has_flag   # noqa: E402
import netproxy                     # noqa: E402
import fault_warm                   # noqa: E402

# Short timers so that the suite runs in minutes: heartbeat every 100 ms,
# suspect after 500 ms of silence, lost after 2 s.
TIMERS = {"heartbeat_ms": 100, "suspect_after_ms": 500, "lost_after_ms": 2000}


class Skip(Exception):
    pass


class Result:
    def __init__(self, letter, fault):
        self.letter = letter
        self.fault = fault
        self.trials = 0
        self.tasks = 0
        self.lost = 0
        self.duplicated = 0
        self.stuck = 0
        self.status = "pass"
        self.notes = []
        self.error = None
        self.seconds = 0.0

    def note(self, text):
        self.notes.append(text)


# ---------------------------------------------------------------------------
# Helpers

def new_cluster(name, lost_after_ms=TIMERS["lost_after_ms"], **kwargs):
    c = Cluster("fault-" + name)
    c.start_coordinator(heartbeat_ms=TIMERS["heartbeat_ms"],
                        suspect_after_ms=TIMERS["suspect_after_ms"],
                        lost_after_ms=lost_after_ms, **kwargs)
    return c


def agent_timers(lost_after_ms=TIMERS["lost_after_ms"]):
    timers = dict(TIMERS)
    timers["lost_after_ms"] = lost_after_ms
    return timers


def agent_extra():
    # The agent's own cut-off timer must not end work during our short,
    # deliberate partitions; a long one is not what these scenarios test.
    return ["--stop-after-disconnect", "120"] if agent_has_flag("--stop-after-disconnect") else []


def start_agent(c, name, lost_after_ms=TIMERS["lost_after_ms"], **kwargs):
    return c.start_agent(name, timers=agent_timers(lost_after_ms), extra=agent_extra(), **kwargs)


def status(c, run_id):
    return c.qanat_json("status", run_id)


def attempts_of(run, task_name):
    return harness.task(run, task_name)["attempts"]


def attempt_end(attempt):
    """The attempt's end kind; from `end` when the CLI prints it, else
    derived from the reason (older CLIs do not print `end`)."""
    if "end" in attempt:
        return attempt["end"]
    reason = attempt.get("reason") or ""
    if reason.startswith("agent lost"):
        return "agent_lost"
    if reason.startswith("timed out"):
        return "timeout"
    if reason.startswith("canceled"):
        return "canceled"
    if attempt.get("finished") and attempt.get("exit_code") == 0 and attempt.get("signal") == 0 \
            and not reason:
        return "exit"
    return "?"


def succeeded_attempts(run, task_name):
    return [a for a in attempts_of(run, task_name)
            if a["finished"] and a["exit_code"] == 0 and a["signal"] == 0 and not a["reason"]]


def stdout_lines(logs, task, attempt):
    return [l["data"] for l in logs
            if l["task"] == task and l["attempt"] == attempt and l["stream"] == "stdout"]


def duplicates(logs):
    """Lines stored more than once: by (task, attempt, seq, line), and by
    content within an attempt (every line our tasks print is unique).  One
    event (one seq) may carry several lines: the agent packs the lines of
    one read into one chunk."""
    by_seq = collections.Counter((l["task"], l["attempt"], l["seq"], l["data"]) for l in logs)
    by_data = collections.Counter((l["task"], l["attempt"], l["data"]) for l in logs
                                  if l["stream"] == "stdout")
    return max(sum(n - 1 for n in by_seq.values()), sum(n - 1 for n in by_data.values()))


def missing(got, expected):
    """Expected lines absent from got."""
    have = collections.Counter(got)
    return sum(1 for e in expected if have[e] == 0)


def numbered(n, fmt="line %d"):
    return [fmt % i for i in range(1, n + 1)]


def is_numbered_prefix(lines, fmt="line %d"):
    return lines == numbered(len(lines), fmt)


def wait_run(c, result, run_id, timeout):
    """Waits for the run to end; a run still going at the deadline counts
    as stuck (and fails the scenario)."""
    try:
        return c.wait_run(run_id, timeout=timeout)
    except TestFailure:
        result.stuck += 1
        raise


def wait_until(what, predicate, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise TestFailure("timed out (%gs) waiting for %s" % (timeout, what))


def committed(c, run_id, task, attempt):
    return stdout_lines(c.logs_json(run_id, task, "--attempt", attempt), task, attempt)


def process_alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def read_pid(path, timeout=10):
    def get():
        try:
            with open(path) as f:
                text = f.read().strip()
            return int(text) if text else None
        except (OSError, ValueError):
            return None
    return wait_until("pid file " + path, get, timeout)


def agent_info(c, name):
    for a in c.qanat_json("agents"):
        if a["name"] == name:
            return a
    raise TestFailure("no agent %s" % name)


def slow_workflow(name, lines, pid_dir, retries=2, selector=None):
    on = "    on: {node: %s}\n" % selector if selector else ""
    return ("name: %s\n"
            "tasks:\n"
            "  slow:\n"
            "    retries: %d\n"
            "    retry_delay: 0s\n"
            "%s"
            "    run: echo $$ > %s/slow.$QANAT_ATTEMPT; "
            "for i in $(seq 1 %d); do echo \"line $i\"; sleep 0.05; done\n"
            % (name, retries, on, pid_dir, lines))


# ---------------------------------------------------------------------------
# (a) kill -9 of an agent mid-task

def scenario_a(r):
    c = new_cluster("a")
    r.cluster = c
    start_agent(c, "a1", slots=1)
    start_agent(c, "a2", slots=1)
    n = 40
    wf = c.write("a.yaml", slow_workflow("agent-kill", n, c.dir))
    run_id = c.start_run(wf)
    r.trials, r.tasks = 1, 1
    wait_until("5 committed lines", lambda: len(committed(c, run_id, "slow", 1)) >= 5, 15)
    victim = attempts_of(status(c, run_id), "slow")[0]["agent"]
    before = committed(c, run_id, "slow", 1)
    c.signal_agent(victim, signal.SIGKILL)
    r.note("killed %s after %d committed lines" % (victim, len(before)))

    run = wait_run(c, r, run_id, 30)
    logs = c.logs_json(run_id)
    r.duplicated += duplicates(logs)
    attempts = attempts_of(run, "slow")
    ok = succeeded_attempts(run, "slow")
    if ok:
        r.lost += missing(stdout_lines(logs, "slow", ok[0]["attempt"]), numbered(n))
    else:
        r.lost += n
    first = stdout_lines(logs, "slow", 1)
    r.lost += missing(first, before)
    check(run["status"] == "succeeded", "run %s" % run["status"])
    check(len(ok) == 1, "exactly one successful attempt, got %d" % len(ok))
    check(ok[0]["agent"] != victim, "the successful attempt ran on %s, the killed agent"
          % ok[0]["agent"])
    check(attempt_end(attempts[0]) == "agent_lost",
          "the killed attempt ended %s (%s)" % (attempt_end(attempts[0]), attempts[0]["reason"]))
    check(is_numbered_prefix(first) and first[:len(before)] == before,
          "the killed attempt's committed lines are kept in order: had %d, now %s"
          % (len(before), first[:5] + ["..."] + first[-3:]))
    r.note("attempts: %s" % ", ".join("%d on %s: %s" % (a["attempt"], a["agent"], attempt_end(a))
                                      for a in attempts))


# ---------------------------------------------------------------------------
# (b) kill -9 of the coordinator, five times, during a run of 1,000 tasks

B_TASKS = int(os.environ.get("QANAT_FAULT_B_TASKS", "1000"))
B_KILLS = 5
# Each task takes a little while, so that the run lasts long enough for five
# kills in the middle of it however fast dispatch gets.
B_RUN = ('sleep 0.05; for i in 1 2 3 4 5; do echo "$QANAT_TASK line $i"; done; '
         'echo "m1 1 $QANAT_ATTEMPT" >> "$QANAT_METRICS"; '
         'echo "m2 2 $QANAT_ATTEMPT" >> "$QANAT_METRICS"')


def scenario_b(r):
    c = new_cluster("b")
    r.cluster = c
    for i in range(1, 5):
        start_agent(c, "b%d" % i, slots=2)
    names = ["t%04d" % i for i in range(1, B_TASKS + 1)]
    text = "name: thousand\ntasks:\n" + "".join(
        "  %s:\n    retries: 2\n    retry_delay: 0s\n    run: %s\n" % (name, B_RUN)
        for name in names)
    wf = c.write("b.yaml", text)
    started = time.time()
    run_id = c.start_run(wf)
    r.tasks = B_TASKS

    def done_count():
        res = c.qanat("status", run_id, "--json", check=False, timeout_s=5)
        if res.returncode != 0:
            return None
        run = json.loads(res.stdout)
        return sum(1 for t in run["tasks"] if t["status"] == "succeeded"), run["status"]

    kills = []
    for k in range(1, B_KILLS + 1):
        threshold = B_TASKS * k // (B_KILLS + 1)
        deadline = time.time() + 30
        while time.time() < deadline:
            got = done_count()
            if got and (got[0] >= threshold or got[1] not in ("queued", "running")):
                break
            time.sleep(0.1)
        else:
            r.stuck += 1
            raise TestFailure("the run is stuck: fewer than %d tasks done after 30 s (%s)"
                              % (threshold, got))
        if got[1] not in ("queued", "running"):
            r.note("the run ended before kill %d" % k)
            break
        c.kill_coordinator(signal.SIGKILL)
        c.start_coordinator(heartbeat_ms=TIMERS["heartbeat_ms"],
                            suspect_after_ms=TIMERS["suspect_after_ms"],
                            lost_after_ms=TIMERS["lost_after_ms"])
        kills.append(got[0])
        r.trials += 1
    r.note("coordinator killed at %s tasks succeeded" % kills)

    run = wait_run(c, r, run_id, 120)
    r.note("run took %.1fs" % (time.time() - started))
    logs = c.logs_json(run_id)
    metrics = c.qanat_json("metrics", run_id)
    r.duplicated += duplicates(logs)
    # Metric points carry the attempt as their step: one point per
    # (task, name, attempt), or it was stored twice.
    points = collections.Counter()
    for series in metrics:
        for p in series["points"]:
            points[(series["task"], series["name"], p.get("step"))] += 1
    r.duplicated += sum(n - 1 for n in points.values())
    multi = 0
    by_task = {t["name"]: t for t in run["tasks"]}
    lines = collections.defaultdict(list)
    for l in logs:
        if l["stream"] == "stdout":
            lines[(l["task"], l["attempt"])].append(l["data"])
    not_ok = []
    for name in names:
        t = by_task[name]
        if len(t["attempts"]) > 1:
            multi += 1
        ok = [a for a in t["attempts"] if a["finished"] and a["exit_code"] == 0
              and a["signal"] == 0 and not a["reason"]]
        if t["status"] != "succeeded" or len(ok) != 1:
            not_ok.append("%s %s (%d ok attempts)" % (name, t["status"], len(ok)))
            r.lost += 7
            continue
        a = ok[0]["attempt"]
        r.lost += missing(lines[(name, a)], numbered(5, name + " line %d"))
        r.lost += sum(1 for m in ("m1", "m2") if points[(name, m, a)] == 0)
    r.note("%d task(s) had more than one attempt; %d lines, %d metric points stored"
           % (multi, len(logs), sum(points.values())))
    stats = c.qanat_json("stats")
    r.note("after the last restart: %d duplicate events dropped, %d commits"
           % (stats["duplicate_events"], stats["commits"]))
    check(r.trials == B_KILLS, "only %d kills happened" % r.trials)
    check(run["status"] == "succeeded", "run %s" % run["status"])
    check(not not_ok, "tasks not succeeded exactly once: %s" % not_ok[:5])


# ---------------------------------------------------------------------------
# (c) partition of an agent by SIGSTOP/SIGCONT, shorter and longer than
# the lost deadline

def scenario_c(r):
    c = new_cluster("c")
    r.cluster = c
    start_agent(c, "a1", slots=1)
    start_agent(c, "a2", slots=1)
    lost_s = TIMERS["lost_after_ms"] / 1000.0

    # Short: 1 s (past suspect, before lost).  Nothing is retried.
    n = 40
    short_dir = os.path.join(c.dir, "short")
    os.mkdir(short_dir)
    run_id = c.start_run(c.write("c1.yaml", slow_workflow("partition-short", n, short_dir)))
    r.trials += 1
    r.tasks += 1
    wait_until("5 committed lines", lambda: len(committed(c, run_id, "slow", 1)) >= 5, 15)
    victim = attempts_of(status(c, run_id), "slow")[0]["agent"]
    c.signal_agent(victim, signal.SIGSTOP)
    stopped = time.time()
    time.sleep(0.8)
    state = agent_info(c, victim)["state"]
    time.sleep(max(0.0, lost_s / 2 - (time.time() - stopped)))
    c.signal_agent(victim, signal.SIGCONT)
    r.note("short partition of %s: %.1fs, state %s while stopped"
           % (victim, time.time() - stopped, state))
    run = wait_run(c, r, run_id, 30)
    logs = c.logs_json(run_id)
    r.duplicated += duplicates(logs)
    r.lost += missing(stdout_lines(logs, "slow", 1), numbered(n))
    check(run["status"] == "succeeded", "short partition: run %s" % run["status"])
    check(len(attempts_of(run, "slow")) == 1, "short partition: %d attempts, expected 1"
          % len(attempts_of(run, "slow")))
    check(state == "suspect", "short partition: %s was %s while stopped, expected suspect"
          % (victim, state))

    # Long: past the lost deadline.  The task is retried on the other agent;
    # when the old one comes back its attempt is killed and its late events
    # are ignored.
    n = 200
    long_dir = os.path.join(c.dir, "long")
    os.mkdir(long_dir)
    run_id = c.start_run(c.write("c2.yaml", slow_workflow("partition-long", n, long_dir)))
    r.trials += 1
    r.tasks += 1
    wait_until("5 committed lines", lambda: len(committed(c, run_id, "slow", 1)) >= 5, 15)
    started = time.time()
    old_pid = read_pid(os.path.join(long_dir, "slow.1"))
    run = status(c, run_id)
    victim = attempts_of(run, "slow")[0]["agent"]
    other = "a2" if victim == "a1" else "a1"
    c.signal_agent(victim, signal.SIGSTOP)
    stopped = time.time()

    def retried():
        a = attempts_of(status(c, run_id), "slow")
        return len(a) >= 2 and a[0]["finished"]
    try:
        wait_until("the attempt to be declared lost and retried", retried, lost_s + 8)
    except TestFailure:
        c.signal_agent(victim, signal.SIGCONT)
        raise
    lost_after = time.time() - stopped
    at_loss = committed(c, run_id, "slow", 1)
    stale_before = c.qanat_json("stats")["stale_events"]
    time.sleep(0.5)
    # Checked while the agent is still stopped: once it runs again it kills
    # the process at once, and on a loaded machine that can come first
    alive = process_alive(old_pid)
    c.signal_agent(victim, signal.SIGCONT)
    resumed = time.time()
    check(alive or time.time() - started > n * 0.05,
          "the old attempt's process %d was already gone before the agent came back" % old_pid)
    # The old attempt would print until started + n * 0.05 s; it must be
    # killed well before.
    gone = wait_until("the old attempt's process %d to be killed" % old_pid,
                      lambda: not process_alive(old_pid), min(8, n * 0.05 - 1))
    killed_in = time.time() - resumed
    run = wait_run(c, r, run_id, 40)
    time.sleep(0.5)
    logs = c.logs_json(run_id)
    stale = c.qanat_json("stats")["stale_events"] - stale_before
    first = stdout_lines(logs, "slow", 1)
    r.duplicated += duplicates(logs)
    ok = succeeded_attempts(run, "slow")
    if ok:
        r.lost += missing(stdout_lines(logs, "slow", ok[0]["attempt"]), numbered(n))
    else:
        r.lost += n
    r.note("long partition of %s: lost after %.1fs; old process killed %.1fs after SIGCONT; "
           "%d stale events ignored; old attempt kept %d lines (%d at loss)"
           % (victim, lost_after, killed_in, stale, len(first), len(at_loss)))
    attempts = attempts_of(run, "slow")
    check(gone, "old process gone")
    check(run["status"] == "succeeded", "long partition: run %s" % run["status"])
    check(len(attempts) == 2, "long partition: %d attempts, expected 2" % len(attempts))
    check(attempt_end(attempts[0]) == "agent_lost", "long partition: first attempt ended %s (%s)"
          % (attempt_end(attempts[0]), attempts[0]["reason"]))
    check(len(ok) == 1 and ok[0]["agent"] == other,
          "long partition: the retry should succeed on %s: %s" % (other, attempts))
    check(first == at_loss, "the old attempt's logs grew after it was declared lost: %d -> %d"
          % (len(at_loss), len(first)))
    check(is_numbered_prefix(first), "the old attempt's logs are a gapless prefix")


# ---------------------------------------------------------------------------
# (d) full disk under the coordinator's data dir

def s_tree(c, run_id):
    return (c.qanat_json("status", run_id), c.logs_json(run_id), c.qanat_json("metrics", run_id))


def scenario_d(r):
    c = Cluster("fault-d")
    r.cluster = c
    disk = os.path.join(c.dir, "disk")
    os.mkdir(disk)
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", disk],
                           capture_output=True, text=True)
    if mount.returncode != 0:
        raise Skip("cannot mount a tmpfs: %s" % (mount.stderr.strip() or mount.returncode))
    try:
        s_full_disk(c, r, disk)
    finally:
        c.stop()
        um = subprocess.run(["umount", disk], capture_output=True, text=True)
        if um.returncode != 0:
            subprocess.run(["umount", "-l", disk], capture_output=True)


D_LINES = 400
D_PAD = "." * 60


def s_full_disk(c, r, disk):
    data_dir = os.path.join(disk, "coordinator")

    def start():
        c.start_coordinator(heartbeat_ms=TIMERS["heartbeat_ms"],
                            suspect_after_ms=TIMERS["suspect_after_ms"],
                            lost_after_ms=TIMERS["lost_after_ms"], data_dir=data_dir)
    start()
    start_agent(c, "a1", slots=2)
    small = c.write("small.yaml", "name: small\ntasks:\n  count:\n    run: for i in $(seq 1 50); "
                    "do echo \"line $i\"; echo \"m $i $i\" >> \"$QANAT_METRICS\"; done\n")
    first = wait_run(c, r, c.start_run(small), 30)
    check(first["status"] == "succeeded", "first run %s" % first["status"])
    before = s_tree(c, first["run_id"])

    # A run that prints while the disk fills up.
    chatty = c.write("chatty.yaml", "name: chatty\ntasks:\n  talk:\n    retries: 2\n"
                     "    retry_delay: 0s\n    run: for i in $(seq 1 %d); do "
                     "echo \"line $i %s\"; sleep 0.005; done\n" % (D_LINES, D_PAD))
    accepted = [c.start_run(chatty)]
    wait_until("the chatty run to print", lambda: len(committed(c, accepted[0], "talk", 1)) >= 10,
               15)

    # Fill the disk to the last byte.
    filler = os.path.join(disk, "filler")
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError:
            pass
    free = os.statvfs(disk)
    r.note("filler %d KiB, %d bytes left" % (os.path.getsize(filler) // 1024,
                                              free.f_bavail * free.f_frsize))

    # Submissions must be refused with a clear error (the first ones might
    # still fit in the store's free pages).
    refusal = None
    for attempt in range(20):
        res = c.qanat("run", chatty, "--json", check=False)
        r.trials += 1
        if res.returncode != 0:
            refusal = (res.stderr + res.stdout).strip()
            break
        accepted.append(json.loads(res.stdout)["run_id"])
        time.sleep(0.3)
    r.note("%d run(s) accepted, then: %s" % (len(accepted), refusal))
    check(refusal is not None, "20 submissions accepted on a full disk")
    words = refusal.lower()
    check("store" in words and ("space" in words or "full" in words),
          "the refusal should name the store and the lack of space: %r" % refusal)
    time.sleep(1.0)
    stats = c.qanat_json("stats")
    r.note("commit failures while full: %d" % stats["commit_failures"])
    check(s_tree(c, first["run_id"]) == before, "the committed run changed on a full disk")

    # Free the space, restart: the store opens cleanly, nothing changed.
    os.unlink(filler)
    c.kill_coordinator(signal.SIGTERM)
    start()
    check(s_tree(c, first["run_id"]) == before, "the committed run changed across the restart")
    r.tasks = 2 + len(accepted)
    again = wait_run(c, r, c.start_run(small), 30)
    check(again["status"] == "succeeded", "run after the restart %s" % again["status"])
    for run_id in accepted:
        run = wait_run(c, r, run_id, 40)
        logs = c.logs_json(run_id)
        r.duplicated += duplicates(logs)
        ok = succeeded_attempts(run, "talk")
        want = ["line %d %s" % (i, D_PAD) for i in range(1, D_LINES + 1)]
        r.lost += missing(stdout_lines(logs, "talk", ok[0]["attempt"]), want) if ok else D_LINES
        check(run["status"] == "succeeded", "chatty run %d %s" % (run_id, run["status"]))


# ---------------------------------------------------------------------------
# (e) a task that ignores SIGTERM; drain and undrain

def scenario_e(r):
    c = new_cluster("e")
    r.cluster = c
    start_agent(c, "a1", slots=2, labels={"node": "a1"})
    start_agent(c, "a2", slots=2, labels={"node": "a2"})

    # A task that ignores SIGTERM, with a 1 s timeout: SIGKILL after the grace.
    pid_file = os.path.join(c.dir, "stubborn.pid")
    wf = c.write("e1.yaml", "name: stubborn\ntasks:\n  stubborn:\n    timeout: 1s\n"
                 "    run: trap '' TERM; echo $$ > %s; while :; do sleep 0.1; done\n" % pid_file)
    run_id = c.start_run(wf)
    r.trials += 1
    r.tasks += 1
    pid = read_pid(pid_file)
    run = wait_run(c, r, run_id, 20)
    a = attempts_of(run, "stubborn")
    took = (a[-1]["finished_us"] - a[-1]["started_us"]) / 1e6 if a else 0
    r.note("SIGTERM-proof task ended after %.1fs: %s (%s)" % (took, attempt_end(a[-1]),
                                                               a[-1]["reason"]))
    check(run["status"] == "failed", "stubborn run %s" % run["status"])
    check(len(a) == 1 and attempt_end(a[0]) == "timeout",
          "it should end timeout, got %s (%s)" % (attempt_end(a[0]), a[0]["reason"]))
    check(not process_alive(pid), "the SIGTERM-proof process %d still runs" % pid)
    check(took >= 1.0, "ended before its timeout (%.1fs)" % took)

    # Drain a1 while it runs a 2 s task: the task finishes; nothing new
    # starts on a1 (a task pinned there waits, another goes to a2) until
    # undrain.
    long_run = c.start_run(c.write("e2.yaml", "name: two-seconds\ntasks:\n  work:\n"
                                   "    on: {node: a1}\n    run: sleep 2; echo done\n"))
    r.trials += 1
    wait_until("the 2 s task to run", lambda: harness.task(status(c, long_run), "work")["status"]
               == "running", 10)
    c.qanat("agent", "drain", "a1")
    check(agent_info(c, "a1")["draining"], "a1 should show draining")
    pinned = c.start_run(c.write("e3.yaml", "name: pinned\ntasks:\n  pinned:\n"
                                 "    on: {node: a1}\n    run: echo pinned\n"))
    free = c.start_run(c.write("e4.yaml", "name: free\ntasks:\n  free:\n    run: echo free\n"))
    r.tasks += 3
    done = wait_run(c, r, long_run, 15)
    check(done["status"] == "succeeded", "the drained agent's task %s" % done["status"])
    other = wait_run(c, r, free, 15)
    check(other["status"] == "succeeded" and attempts_of(other, "free")[0]["agent"] == "a2",
          "the free task should run on a2: %s" % attempts_of(other, "free"))
    time.sleep(1.0)
    waiting = status(c, pinned)
    pt = harness.task(waiting, "pinned")
    r.note("pinned task while a1 drained: %s, %r" % (pt["status"], pt["waiting_reason"]))
    check(pt["status"] == "queued" and not pt["attempts"],
          "a task started on the drained agent: %s" % pt)
    c.qanat("agent", "undrain", "a1")
    after = wait_run(c, r, pinned, 15)
    check(after["status"] == "succeeded" and attempts_of(after, "pinned")[0]["agent"] == "a1",
          "after undrain the pinned task should run on a1: %s" % after["status"])
    for run_id, task, want in ((long_run, "work", ["done"]), (free, "free", ["free"]),
                               (pinned, "pinned", ["pinned"])):
        logs = c.logs_json(run_id)
        r.duplicated += duplicates(logs)
        r.lost += missing(stdout_lines(logs, task, 1), want)


# ---------------------------------------------------------------------------
# (f) kill -9 of an agent holding events the coordinator never received

def scenario_f(r):
    # A 5 s lost deadline: this scenario is about the spool, not the timers,
    # and the agent must come back before its attempt is declared lost.
    lost_ms = 5000
    c = new_cluster("f", lost_after_ms=lost_ms)
    r.cluster = c
    proxy = netproxy.Proxy(c.agent_port)
    r.proxy = proxy
    start_agent(c, "a1", slots=1, endpoint=proxy.endpoint, lost_after_ms=lost_ms)
    side = os.path.join(c.dir, "printed")
    n = 100
    wf = c.write("f.yaml", "name: spool\ntasks:\n  slow:\n    retries: 2\n    retry_delay: 0s\n"
                 "    run: for i in $(seq 1 %d); do echo \"line $i\"; echo $i >> %s.$QANAT_ATTEMPT; "
                 "sleep 0.05; done\n" % (n, side))
    run_id = c.start_run(wf)
    r.trials, r.tasks = 1, 1
    wait_until("5 committed lines", lambda: len(committed(c, run_id, "slow", 1)) >= 5, 15)

    # Cut: nothing more reaches the coordinator (stopped, and the bytes in
    # flight are thrown away), while the task keeps printing.
    proxy.pause()
    c.signal_coordinator(signal.SIGSTOP)
    time.sleep(1.0)
    with open(side + ".1") as f:
        printed = len(f.read().split())
    time.sleep(0.3)                 # the agent has read (and spooled) these by now
    c.signal_agent("a1", signal.SIGKILL)
    proxy.drop()
    c.signal_coordinator(signal.SIGCONT)
    proxy.resume()
    with open(side + ".1") as f:
        printed_at_kill = len(f.read().split())
    r.note("%d lines printed 0.3 s before the kill, %d at the kill" % (printed, printed_at_kill))
    start_agent(c, "a1", slots=1, endpoint=proxy.endpoint, lost_after_ms=lost_ms, wait=False)

    run = wait_run(c, r, run_id, 40)
    logs = c.logs_json(run_id)
    r.duplicated += duplicates(logs)
    first = stdout_lines(logs, "slow", 1)
    r.lost += missing(first, numbered(printed))
    ok = succeeded_attempts(run, "slow")
    if ok and ok[0]["attempt"] != 1:
        r.lost += missing(stdout_lines(logs, "slow", ok[0]["attempt"]), numbered(n))
    attempts = attempts_of(run, "slow")
    r.note("attempt 1 has %d lines; attempts: %s" % (len(first), ", ".join(
        "%d: %s" % (a["attempt"], a["reason"] or "ok") for a in attempts)))
    if not agent_has_flag("--profile"):
        r.note("this agent build has no durable spool flags yet (no --profile in --help)")
    check(run["status"] == "succeeded", "run %s" % run["status"])
    check(is_numbered_prefix(first), "attempt 1's lines are not a gapless prefix")
    check(len(first) >= printed, "attempt 1 kept %d lines of the %d printed before the kill"
          % (len(first), printed))


# ---------------------------------------------------------------------------

SCENARIOS = [
    ("a", "kill -9 agent mid-task", scenario_a),
    ("b", "kill -9 coordinator x5, %d tasks" % B_TASKS, scenario_b),
    ("c", "agent SIGSTOP < and > lost deadline", scenario_c),
    ("d", "full disk under the store", scenario_d),
    ("e", "SIGTERM-proof task; drain/undrain", scenario_e),
    ("f", "kill -9 agent with unsent events", scenario_f),
    ("g", "kill -9 warm Python worker mid-op",
     lambda r: fault_warm.scenario_g(r, sys.modules[__name__])),
]


def run_scenario(letter, fault, fn):
    r = Result(letter, fault)
    r.cluster = None
    r.proxy = None
    started = time.time()
    try:
        fn(r)
        if r.lost or r.duplicated or r.stuck:
            raise TestFailure("lost %d, duplicated %d, stuck %d" % (r.lost, r.duplicated, r.stuck))
    except Skip as e:
        r.status = "skip"
        r.error = str(e)
    except Exception as e:          # noqa: BLE001 - every failure is reported
        r.status = "FAIL"
        r.error = "%s: %s" % (type(e).__name__, e)
        traceback.print_exc(file=sys.stdout)
    finally:
        if r.proxy:
            r.proxy.close()
        if r.cluster:
            r.cluster.stop()
            if r.status == "FAIL":
                r.cluster.dump_logs()
            else:
                r.cluster.cleanup()
    r.seconds = time.time() - started
    print("%-4s (%s) %s  %.1fs" % (r.status, letter, fault, r.seconds), flush=True)
    for n in r.notes:
        print("       " + n)
    if r.error:
        print("       " + r.error)
    sys.stdout.flush()
    return r


def main(argv):
    picked = [a for a in argv if not a.startswith("-")]
    started = time.time()
    results = [run_scenario(letter, fault, fn) for letter, fault, fn in SCENARIOS
               if not picked or letter in picked]
    print()
    header = ("fault", "trials", "tasks", "lost", "duplicated lines", "stuck runs", "result", "time")
    rows = [("(%s) %s" % (r.letter, r.fault), r.trials, r.tasks, r.lost, r.duplicated, r.stuck,
             r.status, "%.0fs" % r.seconds) for r in results]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    print(" | ".join(str(h).ljust(w) for h, w in zip(header, widths)))
    print("-+-".join("-" * w for w in widths))
    for row in rows:
        print(" | ".join(str(x).ljust(w) for x, w in zip(row, widths)))
    for r in results:
        if r.status != "pass":
            print("(%s) %s: %s" % (r.letter, r.status, r.error))
    passed = sum(1 for r in results if r.status == "pass")
    failed = sum(1 for r in results if r.status == "FAIL")
    skipped = sum(1 for r in results if r.status == "skip")
    print("suite time %.0fs" % (time.time() - started))
    print("%d passed, %d failed%s" % (passed, failed, ", %d skipped" % skipped if skipped else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
