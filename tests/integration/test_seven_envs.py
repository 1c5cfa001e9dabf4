#!/usr/bin/env python3
"""One workflow across seven environments, one agent each: on-prem
(local), HPC (Slurm, real daemons), Ray (the fake dashboard), Airflow (the
fake webserver), AWS Lambda and Databricks (their fakes) and Kubernetes
(the fake API server).  A value goes along the whole chain, each engine
adding one to it; `qanat status` shows seven environments and seven
engine job ids.

Skipped (77) only where Slurm cannot run at all, or where this build has
no Lambda or Databricks backend (their fakes come with them)."""
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness                                  # noqa: E402
from harness import check, task                 # noqa: E402
import fake_airflow                             # noqa: E402
import fake_kube                                # noqa: E402
import fake_ray                                 # noqa: E402
from slurm_cluster import SlurmCluster, SlurmUnavailable    # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SLURM = None
# QANAT_SEVEN_PARTIAL=1 runs the environments this build has (a check of
# the chain while a backend is missing); the full test wants all seven
PARTIAL = os.environ.get("QANAT_SEVEN_PARTIAL") == "1"
CLOUD = [name for name in ("lambda", "databricks")
         if os.path.exists(os.path.join(HERE, "fake_%s.py" % name))]

HEAD = """\
name: seven
tasks:
  prepare:
    on: {env: onprem}
    run: sh -c 'echo "prepare on $(hostname)"; echo n=1 >> "$QANAT_VALUES"'
    outputs: {n: {value: true}}
  train:
    on: {env: hpc}
    backend: slurm
    resources: {memory: 100M}
    inputs: {n: prepare.n}
    run: sh -c 'echo "slurm job $SLURM_JOB_ID got $QANAT_INPUT_N"; echo n=$((QANAT_INPUT_N + 1)) >> "$QANAT_VALUES"'
    outputs: {n: {value: true}}
  tune:
    on: {env: ray}
    backend: ray
    inputs: {n: train.n}
    run: sh -c 'echo "ray job got $QANAT_INPUT_N"; echo "::qanat-metric trials=4"; echo "::qanat-output n=$((QANAT_INPUT_N + 1))"'
    outputs: {n: {value: true}}
  etl:
    on: {env: airflow}
    backend: airflow
    inputs: {n: tune.n}
    outputs: {n: {value: true}}
    airflow: {dag_id: chain}
"""

TAIL = """\
  publish:
    on: {env: k8s}
    backend: kubernetes
    kubernetes: {image: fake/default, namespace: qanat-test}
    inputs: {n: %s.n}
    run: ["sh", "-c", "echo \\"published $QANAT_INPUT_N\\""]
"""

AIRFLOW_TASK = ("python3 -c 'import json, os; "
                "n = int(json.loads(os.environ[\"DAG_RUN_CONF\"])[\"qanat\"][\"inputs\"][\"n\"]); "
                "print(\"airflow got\", n); print(\"::qanat-output n=%d\" % (n + 1))'")


LAMBDA = """\
  score:
    on: {env: aws}
    backend: lambda
    inputs: {n: %s.n}
    lambda: {function: bump, payload: {n: "${{ inputs.n }}"}}
    outputs: {n: {value: true}}
"""


def agent_with_env(c, name, label, env, extra):
    """Starts an agent whose credentials come from its environment."""
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        c.start_agent(name, labels={"env": label}, extra=extra)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def lambda_step(c, last):
    """AWS Lambda: the fake's function adds one; credentials from the AWS
    files, as test_lambda.py gives them."""
    import fake_lambda
    fake = fake_lambda.FakeLambda().start()

    def bump(event, ctx):
        ctx.log("lambda got %d" % int(event["n"]))
        return {"n": int(event["n"]) + 1}
    fake.functions["bump"] = bump
    aws = os.path.join(c.dir, "aws")
    os.makedirs(aws, exist_ok=True)
    fake.write_credentials(aws)
    env = {"AWS_SHARED_CREDENTIALS_FILE": os.path.join(aws, "credentials"),
           "AWS_CONFIG_FILE": os.path.join(aws, "config")}
    agent_with_env(c, "aws", "aws", env,
                   ["--backend", "lambda", "--backend-option", "lambda.endpoint=" + fake.endpoint,
                    "--backend-option", "lambda.logs_endpoint=" + fake.endpoint,
                    "--backend-option", "lambda.poll_ms=100"])
    return LAMBDA % last, "score", fake.stop, ("score", "aws", "lambda", r"bump@.*")


DATABRICKS = """\
  analyse:
    on: {env: databricks}
    backend: databricks
    inputs: {n: %s.n}
    databricks: {notebook_path: /Repos/ml/analyse, existing_cluster_id: 0601-182128-dcbte59m}
    outputs: {n: {value: true}}
"""


def databricks_step(c, last):
    """Databricks: a notebook run on an existing cluster adds one; the
    workspace and its token from the environment, as test_databricks.py
    gives them."""
    import json
    import fake_databricks
    fake = fake_databricks.FakeDatabricks().start()

    def script(task_spec):
        n = int(task_spec["notebook_task"]["base_parameters"]["n"])
        return {"duration": 0.5, "logs": "databricks got %d\n" % n,
                "notebook_result": json.dumps({"n": n + 1})}
    fake.script = script
    env = {"DATABRICKS_HOST": fake.endpoint, "DATABRICKS_TOKEN": fake.pat}
    agent_with_env(c, "dbx", "databricks", env,
                   ["--backend", "databricks", "--backend-option", "databricks.poll_ms=100"])
    return DATABRICKS % last, "analyse", fake.stop, ("analyse", "databricks", "databricks",
                                                     r"[0-9]+")


#  What each cloud step needs beyond this file: its fake, its backend
CLOUD_STEPS = {"lambda": lambda_step, "databricks": databricks_step}


def cloud_steps(c, last):
    """The cloud steps this build has, chained after last.  Returns (yaml,
    last task, closers, status rows)."""
    text, closers, rows = "", [], []
    for name in CLOUD:
        if name not in CLOUD_STEPS:
            continue
        part, last, close, row = CLOUD_STEPS[name](c, last)
        text += part
        closers.append(close)
        rows.append(row)
    return text, last, closers, rows


def test_one_run_across_seven_environments(c):
    kube = fake_kube.FakeKube(os.path.join(c.dir, "kube")).start()
    ray = fake_ray.FakeRay(os.path.join(c.dir, "ray")).start()
    airflow = fake_airflow.FakeAirflow(os.path.join(c.dir, "airflow"), token="af-token").start()
    airflow.add_dag("chain", [("step", AIRFLOW_TASK)])
    closers = [kube.stop, ray.stop, airflow.stop]
    try:
        c.start_coordinator()
        c.start_agent("edge", labels={"env": "onprem"})
        c.start_agent("hpc", labels={"env": "hpc"},
                      extra=["--backend", "slurm",
                             "--backend-option", "slurm.conf=" + SLURM.conf,
                             "--backend-option", "slurm.poll_ms=250"])
        c.start_agent("rayhead", labels={"env": "ray"},
                      extra=["--backend", "ray", "--backend-option", "ray.address=" + ray.url,
                             "--backend-option", "ray.poll_ms=100"])
        token = c.write("airflow-token", "af-token\n")
        c.start_agent("composer", labels={"env": "airflow"},
                      extra=["--backend", "airflow",
                             "--backend-option", "airflow.url=" + airflow.url,
                             "--backend-option", "airflow.token_file=" + token,
                             "--backend-option", "airflow.poll_ms=100"])
        c.start_agent("cluster", labels={"env": "k8s"},
                      extra=["--backend", "kubernetes",
                             "--backend-option", "kubernetes.kubeconfig=" + kube.kubeconfig,
                             "--backend-option", "kubernetes.poll_ms=100"])
        cloud_text, last, cloud_closers, cloud_rows = cloud_steps(c, "etl")
        closers += cloud_closers
        path = c.write("seven.yaml", HEAD + cloud_text + TAIL % last)
        started = time.time()
        run_id = c.start_run(path)
        run = c.wait_run(run_id, timeout=80)
        took = time.time() - started
        check(run["status"] == "succeeded", "run ended %s: %s" % (
            run["status"], [(t["name"], t["attempts"][-1:]) for t in run["tasks"]]))

        index = [t["name"] for t in run["tasks"]].index
        rows = [("prepare", "onprem", "local", None),
                ("train", "hpc", "slurm", r"[1-9][0-9]*"),
                ("tune", "ray", "ray", r"qanat-%d-%d-1" % (run_id, index("tune"))),
                ("etl", "airflow", "airflow", r"chain/qanat-%d-%d-1" % (run_id, index("etl")))] + \
            cloud_rows + \
            [("publish", "k8s", "kubernetes", r"qanat-test/qanat-%d-publish-1" % run_id)]
        if not PARTIAL:
            check(len(rows) == 7, "seven environments: %s" % [r[1] for r in rows])
        text = c.qanat("status", run_id).stdout
        jobs = set()
        for name, env, backend, job in rows:
            a = task(run, name)["attempts"][-1]
            check(a.get("environment") == env and a.get("backend") == backend,
                  "%s ran in %r on %r: %s" % (name, a.get("environment"), a.get("backend"), a))
            engine = a["engine_job_id"] if job else "pid %d" % a["pid"]
            if job:
                check(re.fullmatch(job, engine), "%s's engine job id %r" % (name, engine))
            jobs.add(engine)
            check(re.search(r"^%s\s+succeeded\s+1\s+\S+\s+%s\s+%s %s\b"
                            % (name, env, backend, re.escape(engine)), text, re.M),
                  "status should show %s in %s as %s %s:\n%s" % (name, env, backend, engine, text))
        check(len(jobs) == len(rows), "one engine job per task: %s" % jobs)
        lines = [(l["task"], l["data"]) for l in c.logs_json(run_id) if l["stream"] == "stdout"]
        check(("tune", "ray job got 2") in lines, "ray's log: %s" % lines)
        check(any(t == "etl" and d.endswith("INFO - airflow got 3") for t, d in lines),
              "airflow's log: %s" % lines)
        want = 4 + len(cloud_rows)
        check(("publish", "published %d" % want) in lines,
              "the value went along the chain to %d: %s" % (want, lines))
        metrics = {(m["task"], m["name"]) for m in c.qanat_json("metrics", run_id)}
        check(("tune", "trials") in metrics, "ray's metric: %s" % metrics)
        print("# seven-environment run took %.1f s: %s" % (
            took, ", ".join("%s %s" % (r[2], r[1]) for r in rows)), flush=True)
    finally:
        for close in closers:
            close()


if __name__ == "__main__":
    started = time.time()
    missing = [name for name in ("lambda", "databricks")
               if name not in CLOUD or name not in CLOUD_STEPS]
    if missing and not PARTIAL:
        print("1..0 # SKIP this build has no %s backend (and fake) for the chain"
              % " or ".join(missing))
        sys.exit(77)
    try:
        SLURM = SlurmCluster().start()
    except SlurmUnavailable as e:
        print("1..0 # SKIP Slurm cannot run here: %s" % e)
        sys.exit(77)
    try:
        harness.main(globals())
    finally:
        SLURM.stop()
        print("# test_seven_envs.py took %.1f s" % (time.time() - started), flush=True)
