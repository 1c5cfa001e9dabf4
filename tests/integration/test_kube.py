#!/usr/bin/env python3
"""The kubernetes backend against a fake API server (fake_kube.py, HTTPS
with its own CA, bearer token): a task runs as a batch/v1 Job whose log
is followed live; the Job we POST is checked field by field; each failure
the API reports ends the attempt with its reason; a cancel deletes the Job
with propagationPolicy=Background; an agent killed with -9 re-attaches to
its Job by its labels and resumes the log without losing or repeating a
line."""
import os
import shutil
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness                      # noqa: E402
from harness import check, task     # noqa: E402
import fake_kube                    # noqa: E402

NAMESPACE = "qanat-test"


class Kube:
    """A fake API server for one test, and agents that use it."""

    def __init__(self, c):
        self.c = c
        self.fake = fake_kube.FakeKube(os.path.join(c.dir, "kube")).start()

    def agent(self, name="k1", wait=True, **options):
        extra = ["--backend", "kubernetes",
                 "--backend-option", "kubernetes.kubeconfig=" + self.fake.kubeconfig,
                 "--backend-option", "kubernetes.poll_ms=100",
                 "--backend-option", "kubernetes.image=fake/default"]
        for key, value in options.items():
            extra += ["--backend-option", "kubernetes.%s=%s" % (key, value)]
        return self.c.start_agent(name, extra=extra, wait=wait)

    def posts(self):
        return self.fake.find("POST", "/jobs")

    def close(self):
        self.fake.stop()


def with_kube(fn):
    def wrapped(c):
        kube = Kube(c)
        try:
            fn(c, kube)
        finally:
            kube.close()
    wrapped.__name__ = fn.__name__
    return wrapped


def attempt(run, name):
    attempts = task(run, name)["attempts"]
    check(attempts, "task %s has no attempt" % name)
    return attempts[-1]


def task_lines(c, run_id, name):
    return [l["data"] for l in c.logs_json(run_id, name) if l["stream"] != "system"]


FOLLOW = """\
name: follow
tasks:
  count:
    backend: kubernetes
    run: sh -c 'for i in $(seq 1 20); do echo "tick $i"; if [ $i = 3 ]; then echo "::qanat-metric loss=0.25 step=3"; fi; sleep 0.1; done'
"""


@with_kube
def test_a_task_runs_as_a_job_and_its_log_follows(c, kube):
    c.start_coordinator()
    kube.agent()
    run_id = c.start_run(c.write("follow.yaml", FOLLOW))
    # Live: lines arrive while the Job still runs
    c.wait_for(lambda: "tick 2" in task_lines(c, run_id, "count"), "the first ticks")
    check(c.qanat_json("status", run_id)["status"] == "running",
          "the log should arrive while the Job runs")
    run = c.wait_run(run_id)
    check(run["status"] == "succeeded", "run %s: %s" % (run["status"], attempt(run, "count")))
    lines = task_lines(c, run_id, "count")
    check(lines == ["tick %d" % i for i in range(1, 21)], "every tick once, in order: %s" % lines)
    metrics = c.qanat_json("metrics", run_id)
    loss = [m for m in metrics if m["name"] == "loss"]
    check(loss and [(p["value"], p["step"]) for p in loss[0]["points"]] == [(0.25, 3)],
          "the metric line became a metric point: %s" % metrics)
    job_name = "qanat-%d-count-1" % run_id
    a = attempt(run, "count")
    check(a["engine_job_id"] == "%s/%s" % (NAMESPACE, job_name), "engine job id %s" % a)
    check(a["backend"] == "kubernetes", "backend %s" % a["backend"])
    posts = kube.posts()
    check(len(posts) == 1 and posts[0]["path"] == "/apis/batch/v1/namespaces/%s/jobs" % NAMESPACE,
          "one Job created in the kubeconfig's namespace: %s" % [p["path"] for p in posts])
    logs = kube.fake.find("GET", "/log")
    check(logs, "the log was read")
    q = logs[0]["query"]
    check(q.get("follow") == "true" and q.get("timestamps") == "true" and q.get("container") == "main",
          "log query %s" % q)
    # Every request carried the token (the fake refuses others with 401)
    check(all(r["headers"].get("authorization") == "Bearer " + kube.fake.token
              for r in kube.fake.requests), "a request without the bearer token")
    check(kube.fake.tls, "the fake should serve HTTPS (openssl available)")


MANIFEST = """\
name: manifest
tasks:
  train:
    backend: kubernetes
    run: [sh, -c, 'echo "greeting=$GREETING"']
    env:
      GREETING: hello
    resources: {cpus: 2, memory: 512, gpus: 1}
    timeout: 120
    kubernetes:
      image: registry.example/train:2
      namespace: ml
      service_account: trainer
      node_selector:
        disktype: ssd
        example.com/gpu: a100
      tolerations:
        - {key: gpu, operator: Equal, value: "yes", effect: NoSchedule, toleration_seconds: 30}
        - {operator: Exists}
      image_pull_secrets: [regcred, other-cred]
"""


@with_kube
def test_the_job_manifest_field_by_field(c, kube):
    c.start_coordinator()
    kube.agent()
    run_id = c.start_run(c.write("manifest.yaml", MANIFEST))
    run = c.wait_run(run_id)
    check(run["status"] == "succeeded", "run %s: %s" % (run["status"], attempt(run, "train")))
    check(task_lines(c, run_id, "train") == ["greeting=hello"], "the container saw its env")
    posts = kube.posts()
    check(len(posts) == 1, "one POST: %d" % len(posts))
    post = posts[0]
    check(post["path"] == "/apis/batch/v1/namespaces/ml/jobs", "path %s" % post["path"])
    check(post["headers"].get("content-type") == "application/json", "content type")
    job = post["body"]
    name = "qanat-%d-train-1" % run_id
    check(job["apiVersion"] == "batch/v1" and job["kind"] == "Job", "type %s" % job)
    meta = job["metadata"]
    check(meta["name"] == name and meta.get("namespace") == "ml", "metadata %s" % meta)
    labels = {"qanat.io/run": str(run_id), "qanat.io/task": "0", "qanat.io/attempt": "1",
              "qanat.io/agent": "k1"}
    check(meta["labels"] == labels, "Job labels %s" % meta["labels"])
    spec = job["spec"]
    check(spec["backoffLimit"] == 0, "backoffLimit %s" % spec.get("backoffLimit"))
    check(spec["activeDeadlineSeconds"] == 120, "activeDeadlineSeconds %s" % spec)
    template = spec["template"]
    check(template["metadata"]["labels"] == labels, "pod labels %s" % template["metadata"])
    pod = template["spec"]
    check(pod["restartPolicy"] == "Never", "restartPolicy %s" % pod.get("restartPolicy"))
    check(len(pod["containers"]) == 1, "one container")
    container = pod["containers"][0]
    check(container["name"] == "main", "container name")
    check(container["image"] == "registry.example/train:2", "image %s" % container["image"])
    check(container["command"] == ["sh", "-c", 'echo "greeting=$GREETING"'],
          "command %s" % container["command"])
    env = {e["name"]: e["value"] for e in container["env"]}
    check(env.get("GREETING") == "hello", "env %s" % env)
    check(env.get("QANAT_RUN_ID") == str(run_id), "QANAT_* in env: %s" % env)
    check(all(set(e) == {"name", "value"} for e in container["env"]), "EnvVar shape")
    resources = container["resources"]
    want = {"cpu": "2", "memory": "512Mi", "nvidia.com/gpu": "1"}
    check(resources["requests"] == want, "requests %s" % resources)
    check(resources["limits"] == want, "limits %s" % resources)
    check(pod["nodeSelector"] == {"disktype": "ssd", "example.com/gpu": "a100"},
          "nodeSelector %s" % pod.get("nodeSelector"))
    check(pod["tolerations"] == [
        {"key": "gpu", "operator": "Equal", "value": "yes", "effect": "NoSchedule",
         "tolerationSeconds": 30},
        {"operator": "Exists"}], "tolerations %s" % pod.get("tolerations"))
    check(pod["serviceAccountName"] == "trainer", "serviceAccountName")
    check(pod["imagePullSecrets"] == [{"name": "regcred"}, {"name": "other-cred"}],
          "imagePullSecrets %s" % pod.get("imagePullSecrets"))
    # The pods were found by our labels
    selectors = [r["query"].get("labelSelector") for r in kube.fake.find("GET", "/pods")
                 if "labelSelector" in r["query"]]
    check(selectors and selectors[0] == "qanat.io/run=%d,qanat.io/task=0,qanat.io/attempt=1"
          % run_id, "label selector %s" % selectors[:1])


FAILURES = """\
name: failures
tasks:
  oom:
    backend: kubernetes
    kubernetes: {image: fake/oom}
    run: sh -c 'echo allocating; sleep 30'
  pull:
    backend: kubernetes
    kubernetes: {image: fake/pull-error}
    run: echo never
  evicted:
    backend: kubernetes
    kubernetes: {image: fake/evicted}
    run: sh -c 'echo working; sleep 30'
  deadline:
    backend: kubernetes
    timeout: 1
    run: sh -c 'echo slow; sleep 30'
  backoff:
    backend: kubernetes
    run: sh -c 'echo failing; exit 3'
"""


@with_kube
def test_each_failure_ends_the_attempt_with_its_reason(c, kube):
    c.start_coordinator()
    kube.agent(pull_grace_ms=1500)
    run_id = c.start_run(c.write("failures.yaml", FAILURES))
    run = c.wait_run(run_id, timeout=60)
    check(run["status"] == "failed", "run %s" % run["status"])
    prefix = "kubernetes job %s/qanat-%d-" % (NAMESPACE, run_id)

    oom = attempt(run, "oom")
    check(oom["reason"] == prefix + "oom-1: OOMKilled (exit 137)", "oom: %s" % oom["reason"])
    check(oom["exit_code"] == 137, "oom exit code %d" % oom["exit_code"])

    pull = attempt(run, "pull")
    check(pull["reason"].startswith(prefix + "pull-1: ImagePullBackOff: ")
          or pull["reason"].startswith(prefix + "pull-1: ErrImagePull"), "pull: %s" % pull["reason"])
    check(pull["end"] == "start", "a pull error is a start failure: %s" % pull["end"])
    pull_job = "/apis/batch/v1/namespaces/%s/jobs/qanat-%d-pull-1" % (NAMESPACE, run_id)
    deletes = [r for r in kube.fake.find("DELETE") if r["path"] == pull_job]
    check(deletes and deletes[0]["query"].get("propagationPolicy") == "Background",
          "the stuck Job was deleted: %s" % deletes)

    evicted = attempt(run, "evicted")
    check(evicted["reason"].startswith(prefix + "evicted-1: Evicted: The node was low on resource"),
          "evicted: %s" % evicted["reason"])
    check(evicted["exit_code"] != 0, "evicted is a failure")

    deadline = attempt(run, "deadline")
    check(deadline["reason"] == prefix + "deadline-1: DeadlineExceeded: Job was active longer "
          "than specified deadline", "deadline: %s" % deadline["reason"])
    check(deadline["end"] == "timeout", "a deadline is a timeout: %s" % deadline["end"])

    backoff = attempt(run, "backoff")
    check(backoff["reason"] == prefix + "backoff-1: BackoffLimitExceeded: Job has reached the "
          "specified backoff limit (exit 3)", "backoff: %s" % backoff["reason"])
    check(backoff["exit_code"] == 3, "backoff exit code %d" % backoff["exit_code"])
    check("failing" in backoff["stack_trace"], "the log's tail is the stack trace: %r"
          % backoff["stack_trace"])
    check(task_lines(c, run_id, "backoff") == ["failing"], "backoff log")


CANCEL = """\
name: cancel
tasks:
  sleepy:
    backend: kubernetes
    run: sh -c 'for i in $(seq 1 600); do echo "tick $i"; sleep 0.1; done'
"""


@with_kube
def test_file_artifacts_without_a_work_volume_are_refused(c, kube):
    """Without a shared work volume a pod shares no filesystem with its
    agent: a task with outputs (or file inputs) ends at once with a reason
    naming the options that would give it one, and no Job is created."""
    c.start_coordinator()
    kube.agent()
    run_id = c.start_run(c.write("o.yaml", "name: o\ntasks:\n  pod:\n    backend: kubernetes\n"
                                           "    run: [sh, -c, 'echo x > out.txt']\n"
                                           "    outputs: {out: out.txt}\n"))
    run = c.wait_run(run_id)
    check(run["status"] == "failed", "run: %s" % run)
    reason = attempt(run, "pod")["reason"]
    check("kubernetes backend cannot stage file inputs or collect outputs" in reason,
          "reason: %r" % reason)
    check("kubernetes.work_claim" in reason and "kubernetes.work_dir" in reason,
          "the reason should name the work volume options: %r" % reason)
    check(not kube.posts(), "a Job was created: %s" % kube.posts())
    # The workflow's code (the folder of o.yaml) is left out without a
    # volume, not refused: the image brings its own; workdir: is refused
    run = c.wait_run(c.start_run(c.write("w.yaml", "name: w\ntasks:\n  pod:\n"
                                                   "    backend: kubernetes\n"
                                                   "    run: [sh, -c, 'test ! -e w.yaml']\n"
                                                   "  shared:\n    backend: kubernetes\n"
                                                   "    workdir: /srv/shared\n"
                                                   "    run: [pwd]\n")))
    check(len(run["code"]) == 64, "the run has code: %s" % run)
    check(task(run, "pod")["status"] == "succeeded", "a pod with code but no volume: %s"
          % task(run, "pod"))
    reason = attempt(run, "shared")["reason"]
    check(task(run, "shared")["status"] == "failed"
          and "cannot run a task in place ('workdir')" in reason, "workdir on kubernetes: %r"
          % reason)


def work_volume_dir(c):
    """The host directory standing for the work claim: on another
    filesystem than the agent's data directory when /dev/shm allows, so
    that the staged inputs and the values file cross filesystems (a copy,
    not a rename), as they do from an agent's data volume to a shared
    one."""
    import tempfile
    base = "/dev/shm" if os.access("/dev/shm", os.W_OK) else c.dir
    return tempfile.mkdtemp(prefix="qanat-work-", dir=base)


SHARED = """\
name: shared
tasks:
  prepare:
    backend: local
    run: sh -c 'seq 1 100 > data.csv; mkdir -p conf; echo "scale 2" > conf/params; echo rows=100 >> "$QANAT_VALUES"'
    outputs: {data: data.csv, conf: conf/, rows: {value: true}}
  pod:
    backend: kubernetes
    inputs: {data: prepare.data, conf: prepare.conf, rows: {from: prepare.rows}}
    run:
      - sh
      - -c
      - |
        set -e
        echo "cwd $(pwd) workdir $QANAT_WORKDIR values $QANAT_VALUES stage ${QANAT_STAGE_DIR:-none}"
        grep -q "^name: shared" shared.yaml
        scale=$(cut -d' ' -f2 conf/params)
        awk -v s="$scale" '{ t += $1 * s } END { print t }' data > total.txt
        mkdir report
        echo "rows $QANAT_INPUT_ROWS" > report/summary.txt
        cp data report/copy.csv
        echo "sum=$(cat total.txt)" >> "$QANAT_VALUES"
        echo "pod done $(cat total.txt)"
    outputs: {total: total.txt, report: report/, sum: {value: true}}
  verify:
    backend: local
    inputs: {total: pod.total, report: pod.report, sum: {from: pod.sum}}
    run:
      - sh
      - -c
      - |
        set -e
        test "$(cat total)" = 10100
        test "$QANAT_INPUT_SUM" = 10100
        test "$(cat report/summary.txt)" = "rows 100"
        seq 1 100 | cmp - report/copy.csv
        echo "verified $(cat total) $QANAT_INPUT_SUM"
"""


@with_kube
def test_file_artifacts_through_a_shared_work_volume(c, kube):
    """With kubernetes.work_claim and kubernetes.work_dir, a pod gets its
    attempt's directory of the claim at /qanat (subPath): the staged
    inputs as its work directory, /qanat/values for its values; the agent
    collects what it wrote from its own mount of the claim."""
    work = work_volume_dir(c)
    try:
        kube.fake.claims["qanat-work"] = work
        c.start_coordinator()
        c.start_agent("edge")
        kube.agent(work_claim="qanat-work", work_dir=work)
        run_id = c.start_run(c.write("shared.yaml", SHARED))
        run = c.wait_run(run_id, timeout=60)
        check(run["status"] == "succeeded", "run %s: %s" % (
            run["status"], [(t["name"], t["attempts"][-1:]) for t in run["tasks"]]))
        check(attempt(run, "pod")["backend"] == "kubernetes", "pod ran on %s"
              % attempt(run, "pod")["backend"])
        check(attempt(run, "verify")["backend"] == "local", "verify ran on %s"
              % attempt(run, "verify")["backend"])

        job_name = "qanat-%d-pod-1" % run_id
        host_work = os.path.join(work, job_name, "work")
        pod_lines = task_lines(c, run_id, "pod")
        check("cwd %s workdir %s values %s stage none" % (host_work, host_work,
                                                          os.path.join(work, job_name, "values"))
              in pod_lines, "the pod ran in its work directory (the fake's stand-in for "
              "/qanat/work): %s" % pod_lines)
        check("pod done 10100" in pod_lines, "the pod read its inputs: %s" % pod_lines)
        check("verified 10100 10100" in task_lines(c, run_id, "verify"),
              "verify saw the pod's outputs: %s" % task_lines(c, run_id, "verify"))

        posts = kube.posts()
        check(len(posts) == 1, "one Job: %s" % [p["path"] for p in posts])
        pod = posts[0]["body"]["spec"]["template"]["spec"]
        check(pod.get("volumes") == [{"name": "qanat-work",
                                      "persistentVolumeClaim": {"claimName": "qanat-work"}}],
              "volumes %s" % pod.get("volumes"))
        container = pod["containers"][0]
        check(container.get("volumeMounts") == [{"name": "qanat-work", "mountPath": "/qanat",
                                                 "subPath": job_name}],
              "volumeMounts %s" % container.get("volumeMounts"))
        check(container.get("workingDir") == "/qanat/work", "workingDir %s"
              % container.get("workingDir"))
        env = {e["name"]: e["value"] for e in container["env"]}
        check(env.get("QANAT_WORKDIR") == "/qanat/work", "QANAT_WORKDIR %s" % env)
        check(env.get("QANAT_VALUES") == "/qanat/values", "QANAT_VALUES %s" % env)
        check("QANAT_STAGE_DIR" not in env, "the agent's stage dir leaked into the pod: %s" % env)
        check(not any(v.startswith(c.dir) for v in env.values()),
              "an agent-side path in the pod's env: %s" % env)
        groups = pod.get("securityContext", {}).get("supplementalGroups")
        gid = os.stat(os.path.join(work, job_name)).st_gid
        if gid:
            check(groups == [gid], "the pod should be in the work directory's group %d: %s"
                  % (gid, pod.get("securityContext")))

        # The attempt's directory: inputs staged, outputs left, and the
        # values beside the work directory, where the agent read them
        # ...and the workflow's code (the folder of shared.yaml), staged there too
        check(sorted(os.listdir(host_work)) == [".qanatignore", "conf", "data", "report",
                                                "shared.yaml", "total.txt"],
              "work directory %s" % sorted(os.listdir(host_work)))
        with open(os.path.join(work, job_name, "values")) as f:
            check("sum=10100" in f.read(), "the pod's values file beside its work directory")
        mode = os.stat(host_work).st_mode
        check(mode & 0o2070 == 0o2070, "work directory mode %o: group rwx and setgid" % mode)

        found = {(a["task"], a["output"]): a for a in c.qanat_json("artifacts", run_id)}
        for output, kind in (("total", "file"), ("report", "directory"), ("sum", "value")):
            record = found.get(("pod", output))
            check(record and record["kind"] in (kind, kind[:3]),
                  "qanat artifacts should list pod.%s (%s): %s" % (output, kind, sorted(found)))
        check(found[("pod", "sum")]["value"] == "10100", "pod.sum %s" % found[("pod", "sum")])
    finally:
        import shutil
        shutil.rmtree(work, ignore_errors=True)


@with_kube
def test_a_missing_work_claim_fails_the_start(c, kube):
    """A pod whose claim does not exist is never scheduled: after
    pull_grace_ms the attempt fails to start with the scheduler's message,
    and its Job goes."""
    work = work_volume_dir(c)
    try:
        c.start_coordinator()
        kube.agent(work_claim="no-such-claim", work_dir=work, pull_grace_ms=800)
        run_id = c.start_run(c.write("m.yaml", "name: m\ntasks:\n  pod:\n"
                                               "    backend: kubernetes\n"
                                               "    run: [sh, -c, 'echo x > out.txt']\n"
                                               "    outputs: {out: out.txt}\n"))
        run = c.wait_run(run_id, timeout=30)
        check(run["status"] == "failed", "run %s" % run["status"])
        a = attempt(run, "pod")
        check(a["end"] == "start", "a missing claim is a start failure: %s" % a)
        check('persistentvolumeclaim "no-such-claim" not found' in a["reason"]
              and "Unschedulable" in a["reason"], "reason %r" % a["reason"])
        job = "/apis/batch/v1/namespaces/%s/jobs/qanat-%d-pod-1" % (NAMESPACE, run_id)
        check([r for r in kube.fake.find("DELETE") if r["path"] == job],
              "the stuck Job was deleted")
    finally:
        import shutil
        shutil.rmtree(work, ignore_errors=True)


def test_work_volume_options_are_checked(c):
    """Both options or neither, and a directory the agent can write: an
    agent given less does not start."""
    c.start_coordinator()
    kube = Kube(c)
    try:
        cases = (({"work_claim": "qanat-work"}, "work_claim and work_dir go together"),
                 ({"work_dir": c.dir}, "work_claim and work_dir go together"),
                 ({"work_claim": "qanat-work", "work_dir": os.path.join(c.dir, "missing")},
                  "is not a directory"),
                 ({"work_claim": "Not_A_Name", "work_dir": c.dir}, "invalid work_claim"),
                 ({"work_claim": "qanat-work", "work_dir": "relative/dir"},
                  "is not an absolute path"))
        for i, (options, message) in enumerate(cases):
            agent = kube.agent("bad%d" % i, wait=False, **options)
            try:
                code = agent.wait(15)
            except Exception:
                agent.kill()
                raise harness.TestFailure("the agent started with %s" % options)
            check(code != 0, "the agent with %s exited %d" % (options, code))
            with open(os.path.join(c.dir, "agent-bad%d.log" % i)) as f:
                log = f.read()
            check(message in log, "the agent with %s should say %r:\n%s" % (options, message, log))
    finally:
        kube.close()


@with_kube
def test_cancel_deletes_the_job_in_the_background(c, kube):
    c.start_coordinator()
    kube.agent()
    run_id = c.start_run(c.write("cancel.yaml", CANCEL))
    c.wait_for(lambda: "tick 2" in task_lines(c, run_id, "sleepy"), "the first ticks")
    started = time.time()
    c.qanat("cancel", run_id)
    run = c.wait_run(run_id, timeout=20)
    check(run["status"] == "canceled", "run %s" % run["status"])
    check(time.time() - started < 10, "cancel took %.1fs" % (time.time() - started))
    a = attempt(run, "sleepy")
    check(a["end"] == "canceled", "end %s" % a["end"])
    job = "/apis/batch/v1/namespaces/%s/jobs/qanat-%d-sleepy-1" % (NAMESPACE, run_id)
    deletes = [r for r in kube.fake.find("DELETE") if r["path"] == job]
    check(len(deletes) == 1, "one DELETE of the Job: %s" % deletes)
    check(deletes[0]["query"].get("propagationPolicy") == "Background",
          "propagationPolicy %s" % deletes[0]["query"])
    # Background propagation took the pod, and so its process, with it
    c.wait_for(lambda: not kube.fake.live_processes(), "the pod's process to go", timeout=5)
    check(not kube.fake.pods, "pods left: %s" % list(kube.fake.pods))


@with_kube
def test_stopping_the_agent_deletes_its_jobs(c, kube):
    c.start_coordinator()
    kube.agent()
    run_id = c.start_run(c.write("cancel.yaml", CANCEL))
    c.wait_for(lambda: "tick 2" in task_lines(c, run_id, "sleepy"), "the first ticks")
    # The first SIGTERM drains, the second stops at once: shutdown
    c.signal_agent("k1", signal.SIGTERM)
    time.sleep(0.2)
    c.signal_agent("k1", signal.SIGTERM)
    c.agents["k1"].wait(10)
    job = "/apis/batch/v1/namespaces/%s/jobs/qanat-%d-sleepy-1" % (NAMESPACE, run_id)
    deletes = [r for r in kube.fake.find("DELETE") if r["path"] == job]
    check(len(deletes) == 1 and deletes[0]["query"].get("propagationPolicy") == "Background",
          "the Job was deleted on the way out: %s" % deletes)
    c.wait_for(lambda: not kube.fake.live_processes(), "the pod's process to go", timeout=5)


REATTACH = """\
name: reattach
tasks:
  long:
    backend: kubernetes
    run: sh -c 'for i in $(seq 1 60); do echo "line $i"; sleep 0.05; done'
  after:
    needs: [long]
    run: echo after
"""


@with_kube
def test_agent_kill_9_then_restart_reattaches_without_duplicates(c, kube):
    c.start_coordinator()
    kube.agent()
    run_id = c.start_run(c.write("reattach.yaml", REATTACH))
    c.wait_for(lambda: "line 5" in task_lines(c, run_id, "long"), "the first lines")
    c.signal_agent("k1", signal.SIGKILL)
    time.sleep(1.0)                 # the Job goes on printing meanwhile
    log_reads = len(kube.fake.find("GET", "/log"))
    kube.agent()
    run = c.wait_run(run_id, timeout=60)
    check(run["status"] == "succeeded", "run %s: %s" % (run["status"], attempt(run, "long")))
    lines = task_lines(c, run_id, "long")
    check(lines == ["line %d" % i for i in range(1, 61)],
          "every line exactly once, in order: %s" % lines)
    check(len(kube.posts()) == 2, "no Job created again (one for long, one for after): %d"
          % len(kube.posts()))
    a = attempt(run, "long")
    check(a["attempt"] == 1, "the same attempt finished: %s" % a)
    resumed = kube.fake.find("GET", "/log")[log_reads:]
    check(resumed and resumed[0]["query"].get("sinceTime"),
          "the log resumed from the cursor: %s" % [r["query"] for r in resumed])


REATTACH_OUTPUTS = """\
name: reattach-outputs
tasks:
  long:
    backend: kubernetes
    run: sh -c 'for i in $(seq 1 40); do echo "line $i"; sleep 0.05; done; seq 1 40 > counted.txt; echo total=40 >> "$QANAT_VALUES"'
    outputs: {counted: counted.txt, total: {value: true}}
  after:
    backend: kubernetes
    inputs: {counted: long.counted, total: long.total}
    run: sh -c 'test "$(wc -l < counted)" = 40 && echo "got $QANAT_INPUT_TOTAL"'
"""


@with_kube
def test_kill_9_with_outputs_on_a_work_volume(c, kube):
    """An agent killed while its pod runs, then restarted: the outputs of
    the re-attached attempt are still collected (the spool kept where its
    work directory is), and the next pod gets them."""
    work = work_volume_dir(c)
    try:
        kube.fake.claims["qanat-work"] = work
        c.start_coordinator()
        kube.agent(work_claim="qanat-work", work_dir=work)
        run_id = c.start_run(c.write("reattach-outputs.yaml", REATTACH_OUTPUTS))
        c.wait_for(lambda: "line 5" in task_lines(c, run_id, "long"), "the first lines")
        c.signal_agent("k1", signal.SIGKILL)
        time.sleep(1.0)
        kube.agent(work_claim="qanat-work", work_dir=work)
        run = c.wait_run(run_id, timeout=60)
        check(run["status"] == "succeeded", "run %s: %s" % (
            run["status"], [(t["name"], t["attempts"][-1:]) for t in run["tasks"]]))
        check(attempt(run, "long")["attempt"] == 1, "the same attempt: %s" % attempt(run, "long"))
        arts = {a["output"]: a for a in c.qanat_json("artifacts", run_id)}
        check(arts.get("total", {}).get("value") == "40", "the value output: %s" % arts)
        check("got 40" in task_lines(c, run_id, "after"), "the next pod: %s"
              % task_lines(c, run_id, "after"))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    harness.main(globals())
