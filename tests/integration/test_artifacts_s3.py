#!/usr/bin/env python3
"""Artifacts in an S3-compatible store: agents move outputs and inputs
straight between their tasks and the bucket (s3rver, behind a proxy that
recomputes every SigV4 signature with aws4), never through the
coordinator.

Skipped (77) when node or the test's npm packages are missing, unless
QANAT_S3_REQUIRED=1 (as in CI), where that is a failure."""
import hashlib
import json
import os
import sys
import time

import harness
from harness import check, task
import s3_server

SERVER = None

WORKFLOW = """\
name: s3-arts
code: none                  # the code would be blobs on the coordinator; these tests count them
artifacts: {store: s3, bucket: qanat-test, prefix: "runs/", endpoint: "%(endpoint)s", region: us-east-1, path_style: true}
tasks:
  produce:
    on: {role: a}
    run: "python3 -c \\"import random; r = random.Random(7); open('model.bin', 'wb').write(r.randbytes(12000000))\\" && mkdir -p data/sub && seq 1 300 > data/sub/rows.csv && echo hello > data/readme && sha256sum model.bin && echo epochs=12 >> $QANAT_VALUES"
    outputs: {model: model.bin, data: data, epochs: {value: true}}
  consume:
    on: {role: b}
    inputs: {model: {from: produce.model, path: in/model.bin}, data: produce.data, epochs: produce.epochs}
    run: "sha256sum in/model.bin && wc -l < data/sub/rows.csv && cat data/readme && echo epochs=$QANAT_INPUT_EPOCHS"
"""


def blob_files(root):
    found = []
    for directory, _, files in os.walk(root):
        found += [os.path.join(directory, f) for f in files]
    return found


def check_only_manifests(c, manifests):
    stored = blob_files(os.path.join(c.dir, "coordinator", "blobs", "objects"))
    names = sorted(os.path.basename(os.path.dirname(p)) + os.path.basename(p) for p in stored)
    check(names == sorted(manifests),
          "the coordinator should hold the manifests %s only, not %s" % (manifests, names))


def test_outputs_and_inputs_go_through_the_bucket_only(c):
    c.start_coordinator()
    c.start_agent("a", labels={"role": "a"})
    c.start_agent("b", labels={"role": "b"})
    path = c.write("s3.yaml", WORKFLOW % {"endpoint": SERVER.endpoint})
    run_id = c.start_run(path)
    run = c.wait_run(run_id, timeout=120)
    check(run["status"] == "succeeded", "run: %s" % run)

    expected = hashlib.sha256(__import__("random").Random(7).randbytes(12000000)).hexdigest()
    logs = [(l["task"], l["data"]) for l in c.logs_json(run_id) if l["stream"] == "stdout"]
    check(("produce", "%s  model.bin" % expected) in logs, "producer's hash: %s" % logs)
    check(("consume", "%s  in/model.bin" % expected) in logs,
          "the consumer on another agent got the same bytes: %s" % logs)
    check(("consume", "300") in logs and ("consume", "hello") in logs,
          "the directory output arrived whole: %s" % logs)
    check(("consume", "epochs=12") in logs, "the value arrived: %s" % logs)

    arts = {(a["task"], a["output"]): a for a in c.qanat_json("artifacts", run_id)}
    model = arts[("produce", "model")]
    check(model["hash"] == expected and model["size"] == 12000000, "record: %s" % model)
    check(model["location"] == "s3://qanat-test/runs/blobs/" + expected,
          "content-addressed location: %s" % model)
    check(arts[("produce", "data")]["location"].startswith("s3://qanat-test/runs/blobs/"),
          "the directory's manifest is in the bucket: %s" % arts[("produce", "data")])
    check(arts[("produce", "epochs")]["value"] == "12", "value: %s" % arts)

    # No file went through the coordinator: its blob store holds only the
    # directory's manifest (for counting the references of its files)
    check_only_manifests(c, [arts[("produce", "data")]["hash"]])

    requests = SERVER.requests()
    bad = [r for r in requests if not r.get("ok")]
    check(not bad, "every request's signature must match aws4's: %s" % bad[:2])
    methods = [r["method"] for r in requests]
    check(any(r["method"] == "POST" and "uploads" in r["url"] for r in requests),
          "a 12 MB file goes up as a multipart upload: %s" % methods)
    check(any(r["method"] == "GET" and expected in r["url"] for r in requests),
          "the consumer fetched the model from the bucket: %s" % methods)

    # qanat get reads an S3 output straight from the bucket, verified
    target = os.path.join(c.dir, "got-model.bin")
    got = c.qanat("get", run_id, "produce.model", "--out", target, timeout_s=60)
    with open(target, "rb") as f:
        check(hashlib.sha256(f.read()).hexdigest() == expected,
              "qanat get: the model's bytes: %s" % got.stdout)
    target = os.path.join(c.dir, "got-data")
    c.qanat("get", run_id, "produce.data", "--out", target, timeout_s=60)
    with open(os.path.join(target, "sub", "rows.csv")) as f:
        check(len(f.read().splitlines()) == 300, "qanat get: the directory, whole")

    # The same content again: found with HEAD, not uploaded twice
    before = len(SERVER.requests())
    run2 = c.wait_run(c.start_run(path), timeout=120)
    check(run2["status"] == "succeeded", "second run: %s" % run2)
    again = SERVER.requests()[before:]
    puts = [r for r in again if r["method"] in ("PUT", "POST") and expected in r["url"]]
    check(not puts, "the model was uploaded again: %s" % puts)
    check(any(r["method"] == "HEAD" and expected in r["url"] for r in again),
          "the agent asked whether the bucket has it: %s" % [r["method"] for r in again])


def test_wrong_credentials_fail_the_attempt_with_s3s_answer(c):
    c.start_coordinator()
    os.environ["AWS_SECRET_ACCESS_KEY"] = "wrong"
    try:
        c.start_agent("a", labels={"role": "a"})
    finally:
        os.environ["AWS_SECRET_ACCESS_KEY"] = s3_server.SECRET_KEY
    path = c.write("bad.yaml", "name: s3-bad\n"
                   "artifacts: {store: s3, bucket: qanat-test, endpoint: \"%s\", path_style: true}\n"
                   "tasks:\n  produce:\n    on: {role: a}\n    run: echo x > out.txt\n"
                   "    outputs: {out: out.txt}\n" % SERVER.endpoint)
    run = c.wait_run(c.start_run(path), timeout=60)
    check(run["status"] == "failed", "run: %s" % run)
    reason = task(run, "produce")["attempts"][-1]["reason"]
    check("SignatureDoesNotMatch" in reason or "403" in reason,
          "the attempt fails with S3's own answer: %r" % reason)


ENV_WORKFLOW = """\
name: env-store
code: none
%(store)stasks:
  produce:
    on: {env: cloud}
    run: "seq 1 5000 > table.csv && mkdir -p feats && echo f1 > feats/a && echo n=3 >> $QANAT_VALUES"
    outputs: {table: table.csv, feats: feats, n: {value: true}}
  consume:
    on: {env: onprem}
    inputs: {table: {from: produce.table, path: table.csv}, feats: produce.feats, n: produce.n}
    run: "wc -l < table.csv && cat feats/a && echo n=$QANAT_INPUT_N"
"""


def test_an_environments_own_store_for_workflows_that_name_none(c):
    """The cloud agent has --artifact-store: outputs of a workflow without
    an artifacts: block go to that bucket under that prefix, and the
    on-prem agent (no store of its own) fetches them from there, told
    where by the input's record.  A workflow that names the coordinator's
    store keeps its blobs there even on the cloud agent."""
    c.start_coordinator()
    store = "s3://qanat-test/envs/cloud?endpoint=%s&region=us-east-1&path_style=true" % (
        SERVER.endpoint)
    c.start_agent("cloud", labels={"env": "cloud"}, extra=["--artifact-store", store])
    c.start_agent("onprem", labels={"env": "onprem"})
    path = c.write("env.yaml", ENV_WORKFLOW % {"store": ""})
    before = len(SERVER.requests())
    run_id = c.start_run(path)
    run = c.wait_run(run_id, timeout=120)
    check(run["status"] == "succeeded", "run: %s" % run)
    logs = [(l["task"], l["data"]) for l in c.logs_json(run_id) if l["stream"] == "stdout"]
    check(("consume", "5000") in logs and ("consume", "f1") in logs and ("consume", "n=3") in logs,
          "the on-prem task got the file, the directory and the value: %s" % logs)
    arts = {(a["task"], a["output"]): a for a in c.qanat_json("artifacts", run_id)}
    table = hashlib.sha256("".join("%d\n" % i for i in range(1, 5001)).encode()).hexdigest()
    check(arts[("produce", "table")]["location"] == "s3://qanat-test/envs/cloud/blobs/" + table,
          "the file went to the environment's bucket and prefix: %s" % arts)
    check(arts[("produce", "feats")]["location"].startswith("s3://qanat-test/envs/cloud/blobs/"),
          "so did the directory: %s" % arts)
    check_only_manifests(c, [arts[("produce", "feats")]["hash"]])
    # qanat get finds the environment's bucket from the record alone
    target = os.path.join(c.dir, "table.csv")
    c.qanat("get", run_id, "produce.table", "--out", target, timeout_s=60)
    with open(target) as f:
        check(len(f.read().splitlines()) == 5000, "qanat get from the environment's store")
    requests = SERVER.requests()[before:]
    check(all(r.get("ok") for r in requests), "signatures: %s" % [r for r in requests
                                                                 if not r.get("ok")][:2])
    check(any(r["method"] == "GET" and table in r["url"] for r in requests),
          "the on-prem agent fetched the table from the bucket: %s" % [
              (r["method"], r["url"]) for r in requests])

    # The workflow's own choice wins over the environment's
    path = c.write("coord.yaml", ENV_WORKFLOW % {"store": "artifacts: {store: coordinator}\n"})
    run_id = c.start_run(path)
    run = c.wait_run(run_id, timeout=120)
    check(run["status"] == "succeeded", "run with the coordinator's store: %s" % run)
    arts = {(a["task"], a["output"]): a for a in c.qanat_json("artifacts", run_id)}
    check(not arts[("produce", "table")].get("location"),
          "store: coordinator keeps the blob with the coordinator: %s" % arts)
    stored = blob_files(os.path.join(c.dir, "coordinator", "blobs", "objects"))
    check(stored, "the coordinator's blob store holds the table now")


def test_a_bad_artifact_store_url_stops_the_agent_at_once(c):
    for url, words in (("s3://Bad_Bucket", "not an S3 bucket name"),
                       ("s3://ok-bucket?endpoint=ftp://x", "http:// or https://"),
                       ("gs://bucket", "s3://BUCKET")):
        done = harness.subprocess.run([harness.AGENT, "--artifact-store", url, "--insecure",
                                       "--data-dir", c.dir], capture_output=True, text=True,
                                      timeout=20)
        check(done.returncode != 0 and words in done.stderr,
              "%s: exit %d, stderr %r" % (url, done.returncode, done.stderr))


RETAINED = """\
name: s3-retention
keep_runs: 2
tasks:
  make:
    run: "echo unique-$QANAT_RUN_ID > own.txt && mkdir -p d && echo shared > d/shared.txt && echo dir-$QANAT_RUN_ID > d/own.txt"
    outputs: {own: own.txt, d: d}
"""


def bucket_objects(prefix):
    """The hashes of the objects s3rver holds under <prefix>blobs/."""
    root = os.path.join(SERVER.dir, "data", SERVER.bucket, *prefix.strip("/").split("/"), "blobs")
    suffix = "._S3rver_object"
    found = set()
    for directory, _, files in os.walk(root):
        found |= {f[:-len(suffix)] for f in files if f.endswith(suffix)}
    return found


def test_retention_deletes_s3_objects_nobody_references(c):
    """keep_runs: 2 over four runs in the environment's bucket: the
    coordinator (--s3-delete-after 0, credentials from its environment)
    deletes the objects of the two runs it dropped from the bucket, and
    only those: a file both kept runs still use stays."""
    c.start_coordinator("--s3-delete-after", "0")
    store = "s3://qanat-test/retained?endpoint=%s&path_style=true" % SERVER.endpoint
    c.start_agent("cloud", extra=["--artifact-store", store])
    path = c.write("retained.yaml", RETAINED)
    runs = {}
    for _ in range(4):
        run_id = c.start_run(path)
        run = c.wait_run(run_id, timeout=60)
        check(run["status"] == "succeeded", "run %d: %s" % (run_id, run))
        runs[run_id] = {a["output"]: a for a in c.qanat_json("artifacts", run_id)}
    ids = sorted(runs)
    shared = hashlib.sha256(b"shared\n").hexdigest()

    def objects_of(run_id):
        own = hashlib.sha256(("unique-%d\n" % run_id).encode()).hexdigest()
        own_dir = hashlib.sha256(("dir-%d\n" % run_id).encode()).hexdigest()
        return {own, own_dir, runs[run_id]["d"]["hash"]}

    dropped = set().union(*(objects_of(r) for r in ids[:2]))
    kept = set().union(*(objects_of(r) for r in ids[2:])) | {shared}
    check(not dropped & kept, "distinct contents")
    c.wait_for(lambda: not bucket_objects("retained") & dropped, "the dropped runs' objects deleted",
               timeout=20)
    left = bucket_objects("retained")
    check(left == kept, "the bucket holds %s, want %s (the shared file stays)" % (
        sorted(left), sorted(kept)))
    deletes = [r for r in SERVER.requests() if r["method"] == "DELETE"]
    check(len(deletes) == len(dropped) and all(r.get("ok") for r in deletes),
          "one signed DELETE per dropped object: %s" % [(r["url"], r.get("ok")) for r in deletes])
    stats = c.qanat_json("stats")
    check(stats.get("s3_objects_deleted") == len(dropped), "stats: %s" % stats)

    # Content whose object was deleted, made again: the agent finds
    # nothing (HEAD), puts it back, and the coordinator trusts that record
    # over the deletion's tombstone; the object stays, referenced
    again = hashlib.sha256(("unique-%d\n" % ids[0]).encode()).hexdigest()
    path = c.write("again.yaml", "name: s3-again\ntasks:\n  make:\n"
                   "    run: echo unique-%d > own.txt\n    outputs: {own: own.txt}\n" % ids[0])
    run_id = c.start_run(path)
    run = c.wait_run(run_id, timeout=60)
    check(run["status"] == "succeeded", "the same content again: %s" % run)
    time.sleep(2)                   # two collection passes
    check(again in bucket_objects("retained"), "the object put back stays")
    target = os.path.join(c.dir, "again.txt")
    c.qanat("get", run_id, "make.own", "--out", target, timeout_s=30)
    with open(target) as f:
        check(f.read() == "unique-%d\n" % ids[0], "qanat get of the object put back")


if __name__ == "__main__":
    missing = s3_server.available()
    if missing:
        if os.environ.get("QANAT_S3_REQUIRED") == "1":
            print("S3 tests required but cannot run: %s" % missing)
            print("0 passed, 1 failed")
            sys.exit(1)
        print("1..0 # SKIP %s" % missing)
        sys.exit(77)
    SERVER = s3_server.S3Server().start()
    # Agents take their credentials from the environment, as on AWS
    os.environ["AWS_ACCESS_KEY_ID"] = s3_server.ACCESS_KEY
    os.environ["AWS_SECRET_ACCESS_KEY"] = s3_server.SECRET_KEY
    try:
        harness.main(globals())
    finally:
        SERVER.stop()
