#!/usr/bin/env python3
"""One workflow across three environments: an on-prem agent (local
backend), an HPC agent (Slurm backend, real Slurm daemons) and a cloud
agent (Kubernetes backend, the fake API server).  Data moves between them
as artifacts; logs, metrics and statuses of all three arrive in one run,
and `qanat status` shows where each task ran and its engine job id.

Skipped (77) only where Slurm cannot run at all; CI installs it."""
import os
import re
import sys
import time

import harness
from harness import check, task
import fake_kube
from slurm_cluster import SlurmCluster, SlurmUnavailable

SLURM = None

WORKFLOW = """\
name: hybrid
tasks:
  prepare:
    on: {env: onprem}
    run: sh -c 'seq 1 250 > data.csv; echo "prepared $(wc -l < data.csv) rows"; echo "rows 250" >> "$QANAT_METRICS"; echo rows=250 >> "$QANAT_VALUES"'
    outputs:
      data: data.csv
      rows: {value: true}
  train:
    on: {env: hpc}
    backend: slurm
    resources: {memory: 100M}
    inputs: {data: prepare.data, rows: prepare.rows}
    run: sh -c 'echo "train as slurm job $SLURM_JOB_ID on $(wc -l < data) rows (told $QANAT_INPUT_ROWS)"; for i in 1 2 3; do echo "loss 0.$((9 - i)) $i" >> "$QANAT_METRICS"; done; echo 0.93 > score.txt; echo score=0.93 >> "$QANAT_VALUES"'
    outputs: {score: {value: true}}
  evaluate:
    on: {env: cloud}
    backend: kubernetes
    kubernetes: {image: fake/default, namespace: qanat-test}
    inputs: {score: train.score}
    run: ["sh", "-c", "echo \\"evaluate in a pod, score $QANAT_INPUT_SCORE\\"; echo '::qanat-metric accuracy=0.93'"]
"""


def test_one_run_across_local_slurm_and_kubernetes(c):
    kube = fake_kube.FakeKube(os.path.join(c.dir, "kube")).start()
    try:
        c.start_coordinator()
        c.start_agent("edge", labels={"env": "onprem"})
        c.start_agent("hpc", labels={"env": "hpc"},
                      extra=["--backend", "slurm",
                             "--backend-option", "slurm.conf=" + SLURM.conf,
                             "--backend-option", "slurm.poll_ms=250"])
        c.start_agent("cloud", labels={"env": "cloud"},
                      extra=["--backend", "kubernetes",
                             "--backend-option", "kubernetes.kubeconfig=" + kube.kubeconfig,
                             "--backend-option", "kubernetes.poll_ms=100"])
        path = c.write("hybrid.yaml", WORKFLOW)
        started = time.time()
        run_id = c.start_run(path)
        run = c.wait_run(run_id, timeout=120)
        took = time.time() - started
        check(run["status"] == "succeeded", "run ended %s: %s" % (run["status"], run))

        where = {}
        for name, env, backend in (("prepare", "onprem", "local"), ("train", "hpc", "slurm"),
                                   ("evaluate", "cloud", "kubernetes")):
            attempt = task(run, name)["attempts"][-1]
            check(attempt.get("environment") == env, "%s ran in %r, not %s: %s" % (
                name, attempt.get("environment"), env, attempt))
            check(attempt.get("backend") == backend, "%s ran on %r, not %s" % (
                name, attempt.get("backend"), backend))
            where[name] = attempt
        check(where["prepare"]["pid"] > 0, "the local task has a pid: %s" % where["prepare"])
        slurm_id = where["train"]["engine_job_id"]
        check(re.fullmatch(r"[1-9][0-9]*", slurm_id), "Slurm job id %r" % slurm_id)
        kube_id = where["evaluate"]["engine_job_id"]
        check(re.fullmatch(r"qanat-test/qanat-%s-evaluate-1" % run_id, kube_id),
              "Kubernetes job id %r" % kube_id)
        check(kube.find("POST", "/apis/batch/v1/namespaces/qanat-test/jobs"),
              "no Job was created through the API server")

        # One run's logs hold all three environments' lines
        lines = {(l["task"], l["data"]) for l in c.logs_json(run_id) if l["stream"] == "stdout"}
        check(("prepare", "prepared 250 rows") in lines, "prepare's log: %s" % lines)
        check(("train", "train as slurm job %s on 250 rows (told 250)" % slurm_id) in lines,
              "train's log (data moved from on-prem to the Slurm job): %s" % lines)
        check(("evaluate", "evaluate in a pod, score 0.93") in lines,
              "evaluate's log (value moved from Slurm to the pod): %s" % lines)

        # ... and their metrics
        metrics = {(m["task"], m["name"]): m for m in c.qanat_json("metrics", run_id)}
        check(("prepare", "rows") in metrics, "prepare's metric: %s" % sorted(metrics))
        losses = [p["value"] for p in metrics.get(("train", "loss"), {}).get("points", [])]
        check(losses == [0.8, 0.7, 0.6], "train's losses from the Slurm job: %s" % losses)
        check(("evaluate", "accuracy") in metrics, "evaluate's metric from the pod log: %s"
              % sorted(metrics))

        # The status a person reads: environment and engine job per task
        text = c.qanat("status", run_id).stdout
        check(re.search(r"^train\s+succeeded\s+1\s+hpc\s+hpc\s+slurm %s\b" % slurm_id, text, re.M),
              "status should show train's environment and Slurm job:\n" + text)
        check(re.search(r"^evaluate\s+succeeded\s+1\s+cloud\s+cloud\s+kubernetes %s\b"
                        % re.escape(kube_id), text, re.M),
              "status should show evaluate's environment and Job:\n" + text)
        check(re.search(r"^prepare\s+succeeded\s+1\s+edge\s+onprem\s+local pid \d+", text, re.M),
              "status should show prepare's environment and pid:\n" + text)
        print("# hybrid run took %.1f s (local -> slurm %s -> kubernetes %s)" % (
            took, slurm_id, kube_id), flush=True)
    finally:
        kube.stop()


def test_task_waits_for_an_agent_with_its_backend(c):
    """A Kubernetes task with only local agents around waits, and says why."""
    c.start_coordinator()
    c.start_agent("edge", labels={"env": "onprem"})
    path = c.write("k.yaml", "name: k\ntasks:\n  pod:\n    backend: kubernetes\n"
                             "    run: echo hi\n")
    run_id = c.start_run(path)

    def reason():
        return task(c.qanat_json("status", run_id), "pod").get("waiting_reason", "")
    c.wait_for(lambda: "backend kubernetes" in reason(), "a waiting reason naming the backend")
    check(reason() == "waiting for an agent with backend kubernetes", reason())
    c.qanat("cancel", run_id)


if __name__ == "__main__":
    started = time.time()
    try:
        SLURM = SlurmCluster().start()
    except SlurmUnavailable as e:
        print("1..0 # SKIP Slurm cannot run here: %s" % e)
        sys.exit(77)
    try:
        try:
            harness.main(globals())
        except SystemExit as e:
            if e.code:
                print(SLURM.logs())
            raise
    finally:
        SLURM.stop()
        print("# test_hybrid.py took %.1f s" % (time.time() - started), flush=True)
