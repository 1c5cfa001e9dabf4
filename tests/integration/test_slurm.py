#!/usr/bin/env python3
"""The Slurm backend against a real single-node Slurm (slurm_cluster.py):
a DAG whose tasks all run as Slurm jobs, an out-of-memory job, a cancel
that reaches scancel, and an agent killed mid-job that re-attaches.

One Slurm serves the whole file.  Where Slurm cannot run (not root,
packages missing) the file is skipped (exit 77) with the reason."""
import os
import re
import signal
import sys
import time

import harness
from harness import check, task
from slurm_cluster import SlurmCluster, SlurmUnavailable

SLURM = None


def agent_args():
    return ["--backend", "slurm",
            "--backend-option", "slurm.conf=" + SLURM.conf,
            "--backend-option", "slurm.poll_ms=250"]


def start(c, name="s1", slots=4):
    c.start_coordinator()
    c.start_agent(name, slots=slots, extra=agent_args())


def scontrol_job(job_id):
    """`scontrol show job -o` as a dict (values without blanks), {} if gone."""
    out = SLURM.run("scontrol", "show", "job", "-o", str(job_id))
    if out.returncode != 0:
        return {}
    fields = {}
    for token in out.stdout.split():
        if "=" in token:
            key, value = token.split("=", 1)
            fields.setdefault(key, value)
    return fields


def attempt_of(run, name):
    attempts = task(run, name)["attempts"]
    check(attempts, "%s has no attempt" % name)
    return attempts[-1]


def check_slurm_attempt(attempt, name):
    """The attempt ran as a Slurm job: what status --json shows of it."""
    job_id = attempt.get("engine_job_id", "")
    check(re.fullmatch(r"[1-9][0-9]*", job_id or ""),
          "%s: engine_job_id %r is not a Slurm job id (attempt %s)" % (name, job_id, attempt))
    check(attempt.get("backend") == "slurm", "%s: backend %r" % (name, attempt.get("backend")))
    return job_id


DIAMOND = """\
name: slurm-diamond
tasks:
  extract:
    backend: slurm
    run: sh -c 'echo "extract $SLURM_JOB_ID"; echo "rows 100 1" >> "$QANAT_METRICS"'
  train:
    needs: [extract]
    backend: slurm
    resources: {memory: 200M}
    run: sh -c 'for i in 1 2 3; do echo "loss 0.$((9 - i)) $i" >> "$QANAT_METRICS"; done; echo warn >&2; echo "train in $(pwd)"'
  report:
    needs: [extract]
    backend: slurm
    slurm: {sbatch_args: ["--nice=10"]}
    run: echo report
  publish:
    needs: [train, report]
    backend: slurm
    run: sh -c 'echo "published $QANAT_RUN_ID"'
"""


def test_diamond_runs_as_slurm_jobs(c):
    start(c)
    run_id = c.start_run(c.write("diamond.yaml", DIAMOND))
    run = c.wait_run(run_id, timeout=120)
    check(run["status"] == "succeeded", "run %s: %s" % (run["status"], run))
    jobs = {}
    for name in ("extract", "train", "report", "publish"):
        check(task(run, name)["status"] == "succeeded", "%s is %s" % (name, task(run, name)))
        jobs[name] = check_slurm_attempt(attempt_of(run, name), name)
    check(len(set(jobs.values())) == 4, "four distinct Slurm jobs: %s" % jobs)
    for name, job_id in jobs.items():
        fields = scontrol_job(job_id)
        check(fields.get("JobState") == "COMPLETED", "job %s (%s): %s" % (job_id, name, fields))
        check(fields.get("JobName", "").startswith("qanat-%d-%s-1" % (run_id, name)),
              "job name %s" % fields.get("JobName"))
    check(scontrol_job(jobs["report"]).get("Nice") == "10", "sbatch_args reached sbatch")
    check(scontrol_job(jobs["train"]).get("MinMemoryNode") == "200M", "memory reached sbatch")
    lines = c.logs_json(run_id)
    text = {(l["task"], l["stream"], l["data"]) for l in lines}
    check(("extract", "stdout", "extract %s" % jobs["extract"]) in text,
          "extract ran as its Slurm job: %s" % text)
    check(("train", "stderr", "warn") in text, "stderr line tagged: %s" % text)
    check(("publish", "stdout", "published %d" % run_id) in text, "publish log: %s" % text)
    check(any(t == "train" and d.startswith("train in /") and d.endswith("/work")
              for t, s, d in text), "train ran in its work directory: %s" % text)
    series = {s["name"]: s for s in c.qanat_json("metrics", run_id)}
    check("loss" in series and [p["value"] for p in series["loss"]["points"]] == [0.8, 0.7, 0.6],
          "loss series: %s" % series)
    check("rows" in series, "rows metric: %s" % series)


CODE = """\
name: slurm-code
tasks:
  script:
    backend: slurm
    run: python3 tool/count.py rows.txt
    outputs: {total: total.txt}
  in-place:
    backend: slurm
    workdir: %s
    run: sh -c 'echo "in $(pwd)"; test ! -e tool; cat note.txt; echo from-job > job.txt'
"""


def test_the_code_travels_to_slurm_jobs_and_workdir_runs_in_place(c):
    """A Slurm job starts in a copy of the workflow's folder, on slurm.dir
    like staged inputs; with workdir: it runs in place on the shared path."""
    start(c)
    top = os.path.join(c.dir, "proj")
    shared = os.path.join(c.dir, "shared")
    os.makedirs(os.path.join(top, "tool"))
    os.makedirs(shared)
    with open(os.path.join(top, "tool", "count.py"), "w") as f:
        f.write("import sys\nn = len(open(sys.argv[1]).read().split())\n"
                "print('rows', n)\nopen('total.txt', 'w').write(str(n))\n")
    with open(os.path.join(top, "rows.txt"), "w") as f:
        f.write("1\n2\n3\n")
    with open(os.path.join(shared, "note.txt"), "w") as f:
        f.write("shared note\n")
    wf = os.path.join(top, "wf.yaml")
    with open(wf, "w") as f:
        f.write(CODE % shared)
    run_id = c.start_run(wf)
    run = c.wait_run(run_id, timeout=120)
    check(run["status"] == "succeeded", "run %s: %s" % (run["status"], run))
    for name in ("script", "in-place"):
        check_slurm_attempt(attempt_of(run, name), name)
    text = [(l["task"], l["data"]) for l in c.logs_json(run_id) if l["stream"] == "stdout"]
    check(("script", "rows 3") in text, "the job ran the packed script: %s" % text)
    check(("in-place", "in " + shared) in text and ("in-place", "shared note") in text,
          "the job ran in place: %s" % text)
    with open(os.path.join(shared, "job.txt")) as f:
        check(f.read() == "from-job\n", "written in place")
    arts = {a["output"]: a for a in c.qanat_json("artifacts", run_id)}
    check(arts.get("total", {}).get("size") == 1, "the output beside the code: %s" % arts)


OOM = """\
name: slurm-oom
tasks:
  hog:
    backend: slurm
    resources: {memory: 100M}
    run: [python3, -c, "import time\\nprint('allocating', flush=True)\\nb = []\\nfor i in range(60):\\n    b.append(bytearray(20 * 1024 * 1024))\\n    time.sleep(0.05)\\nprint('survived')"]
"""


def test_out_of_memory_job_fails_with_slurms_reason(c):
    start(c)
    run_id = c.start_run(c.write("oom.yaml", OOM))
    run = c.wait_run(run_id, timeout=90)
    check(run["status"] == "failed", "run %s" % run["status"])
    attempt = attempt_of(run, "hog")
    job_id = check_slurm_attempt(attempt, "hog")
    state = scontrol_job(job_id).get("JobState")
    reason = attempt.get("reason", "")
    if SLURM.mode == "cgroup":
        check(state == "OUT_OF_MEMORY", "job %s ended %s" % (job_id, state))
        check(reason.startswith("slurm job %s: OUT_OF_MEMORY" % job_id), "reason %r" % reason)
    else:
        # jobacct_gather's OverMemoryKill: Slurm says FAILED, the script
        # got SIGKILL
        check(state in ("FAILED", "OUT_OF_MEMORY"), "job %s ended %s" % (job_id, state))
        check("OUT_OF_MEMORY" in reason or "SIGKILL" in reason, "reason %r" % reason)
    lines = [l["data"] for l in c.logs_json(run_id) if l["stream"] == "stdout"]
    check("allocating" in lines and "survived" not in lines, "stdout %s" % lines)


SLEEPER = """\
name: slurm-sleep
tasks:
  nap:
    backend: slurm
    run: sh -c 'echo napping; sleep 300'
"""


def wait_job_running(c, run_id, name):
    job = {}

    def running():
        run = c.qanat_json("status", run_id)
        attempts = task(run, name)["attempts"]
        if not attempts or not attempts[-1].get("engine_job_id"):
            return False
        job["id"] = attempts[-1]["engine_job_id"]
        return scontrol_job(job["id"]).get("JobState") == "RUNNING"
    c.wait_for(running, "the Slurm job of %s to run" % name, timeout=60)
    return job["id"]


def test_cancel_reaches_scancel(c):
    start(c)
    run_id = c.start_run(c.write("sleep.yaml", SLEEPER))
    job_id = wait_job_running(c, run_id, "nap")
    c.wait_for(lambda: any(l["data"] == "napping" for l in c.logs_json(run_id)),
               "the first log line")
    c.qanat("cancel", run_id)
    run = c.wait_run(run_id, timeout=60)
    check(run["status"] in ("canceled", "cancelled"), "run %s" % run["status"])
    # The run ends at once; the job ends when scancel reached Slurm, and
    # the agent reports the attempt once Slurm says so.
    c.wait_for(lambda: scontrol_job(job_id).get("JobState") == "CANCELLED",
               "job %s to be CANCELLED" % job_id, timeout=30)
    queue = SLURM.run("squeue", "-h", "-j", job_id, "-o", "%T").stdout.strip()
    check(queue in ("", "CANCELLED"), "still queued: %r" % queue)

    def reported():
        with open(os.path.join(c.dir, "agent-s1.log"), errors="replace") as f:
            return re.search(r"attempt %d/0/1 finished \(canceled\)" % run_id, f.read())
    c.wait_for(reported, "the agent to report the attempt canceled", timeout=30)


COUNTER = """\
name: slurm-reattach
tasks:
  count:
    backend: slurm
    run: sh -c 'for i in $(seq 1 40); do echo "line $i"; echo "step $i $i" >> "$QANAT_METRICS"; sleep 0.2; done; seq 1 40 > counted.txt; echo total=40 >> "$QANAT_VALUES"'
    outputs: {counted: counted.txt, total: {value: true}}
"""


def test_agent_killed_mid_job_reattaches(c):
    start(c, name="r1")
    run_id = c.start_run(c.write("count.yaml", COUNTER))
    job_id = wait_job_running(c, run_id, "count")
    c.wait_for(lambda: len([l for l in c.logs_json(run_id) if l["stream"] == "stdout"]) >= 5,
               "some log lines")
    c.signal_agent("r1", signal.SIGKILL)
    time.sleep(2)                   # the job writes on while nobody reads
    check(scontrol_job(job_id).get("JobState") == "RUNNING", "the job outlived the agent")
    c.start_agent("r1", slots=4, extra=agent_args())
    run = c.wait_run(run_id, timeout=90)
    check(run["status"] == "succeeded", "run %s: %s" % (run["status"], run))
    attempt = attempt_of(run, "count")
    check(len(task(run, "count")["attempts"]) == 1, "one attempt: %s" % task(run, "count"))
    check(attempt.get("engine_job_id") == job_id, "same job: %s" % attempt)
    lines = [l["data"] for l in c.logs_json(run_id) if l["stream"] == "stdout"]
    check(lines == ["line %d" % i for i in range(1, 41)],
          "every line once, in order: %s" % lines)
    series = {s["name"]: s for s in c.qanat_json("metrics", run_id)}
    steps = [p["step"] for p in series.get("step", {}).get("points", [])]
    check(steps == list(range(1, 41)), "every metric once: %s" % steps)
    # Its outputs are collected by the new agent process, from the work
    # directory the spool remembered
    arts = {a["output"]: a for a in c.qanat_json("artifacts", run_id)}
    check(arts.get("total", {}).get("value") == "40", "the value output: %s" % arts)
    check(arts.get("counted", {}).get("size") == len("".join("%d\n" % i for i in range(1, 41))),
          "the file output: %s" % arts)


if __name__ == "__main__":
    started = time.time()
    try:
        # QANAT_SLURM_MEMORY=linux forces the fallback without cgroups
        SLURM = SlurmCluster(memory_enforcement=os.environ.get("QANAT_SLURM_MEMORY") or None).start()
    except SlurmUnavailable as e:
        print("1..0 # SKIP Slurm cannot run here: %s" % e)
        sys.exit(77)
    print("# Slurm up in %.1f s (memory enforced by %s), %s" % (
        SLURM.started_in, SLURM.mode, SLURM.conf), flush=True)
    try:
        try:
            harness.main(globals())
        except SystemExit as e:
            if e.code:
                print(SLURM.logs())
            raise
    finally:
        SLURM.stop()
        print("# test_slurm.py took %.1f s" % (time.time() - started), flush=True)
