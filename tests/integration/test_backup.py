"""Backup and restore (docs/operations.md): `qanat admin backup DIR` taken
while a 1,000-task run goes on, restored with `qanatd --restore` into a
fresh data directory; a coordinator started on it has every run, log
line, metric and artifact the backup had.  A damaged backup (a flipped
byte in a blob, a truncated data.mdb, a damaged manifest) is refused
naming the file, and leaves the data directory untouched.

    QANAT_BUILDDIR=$PWD /usr/bin/python3 tests/integration/test_backup.py
"""
import json
import os
import shutil
import signal
import subprocess
import time

import harness
from harness import check

SMALL = """\
name: small
tasks:
  make:
    outputs: {blob: out.txt}
    run: sh -c 'for i in 1 2 3; do echo "line $i"; echo "loss $((10 - i)) $i" >> "$QANAT_METRICS"; done; echo payload > out.txt'
  use:
    inputs: {blob: make.blob}
    run: cat "$QANAT_INPUT_BLOB"
"""

# 1,000 trivial tasks: four matrices of 250 (a matrix makes at most 256)
TENS = "[%s]" % ", ".join(str(i) for i in range(10))
TWENTYFIVES = "[%s]" % ", ".join(str(i) for i in range(25))
BIG = "name: big\ntasks:\n" + "".join("""\
  t%d:
    matrix: {a: %s, b: %s}
    run: [echo, "t%d ${{ matrix.a }} ${{ matrix.b }}"]
""" % (k, TENS, TWENTYFIVES, k) for k in range(4))


def expected_line(name):
    """t2[a=3,b=17] echoes "t2 3 17" """
    task, rest = name.split("[")
    values = [kv.split("=")[1] for kv in rest.rstrip("]").split(",")]
    return " ".join([task] + values)


def restore(c, backup, data_dir):
    return subprocess.run([harness.QANATD, "--restore", backup, "--data-dir", data_dir],
                          capture_output=True, text=True, timeout=60)


def snapshot(c, run_id):
    """What a client sees of a run: status, tasks' states, logs, metrics"""
    run = c.qanat_json("status", run_id)
    return {"status": run["status"],
            "done": sorted(t["name"] for t in run["tasks"] if t["status"] == "succeeded"),
            "logs": [(l["task"], l["data"]) for l in c.logs_json(run_id)
                     if l.get("stream") != "system"],
            "metrics": c.qanat_json("metrics", run_id),
            "artifacts": c.qanat_json("artifacts", run_id)}


def test_backup_during_a_1000_task_run_restores_everything(c):
    c.start_coordinator()
    c.start_agent("a1", slots=16)
    small = [c.wait_run(c.start_run(c.write("small.yaml", SMALL)))["run_id"] for _ in range(2)]
    big = c.start_run(c.write("big.yaml", BIG))
    c.wait_for(lambda: len(snapshot(c, big)["done"]) >= 100, "100 tasks of the big run", 60)
    before = {rid: snapshot(c, rid) for rid in small}
    big_before = snapshot(c, big)
    backup = os.path.join(c.dir, "backup")
    started = time.time()
    out = c.qanat("admin", "backup", backup, "--json").stdout
    took = time.time() - started
    big_after = snapshot(c, big)
    check(big_after["status"] == "running",
          "the big run was still running after the backup (%d tasks done)" % len(big_after["done"]))
    report = json.loads(out)
    manifest = report["manifest"]
    print("  backup: %d bytes in %d ms (%.2f s through the CLI), %d runs, %d tasks, %d log lines"
          % (report["bytes"], report["elapsed_ms"], took, manifest["counts"]["runs"],
             manifest["counts"]["tasks"], manifest["counts"]["logs"]))
    check(manifest["counts"]["runs"] == 3, "3 runs in the backup: %s" % manifest["counts"])
    with open(os.path.join(backup, "manifest.json")) as f:
        check(json.load(f) == manifest, "the manifest on disk is the one reported")
    c.qanat("cancel", big)
    c.signal_agent("a1", signal.SIGKILL)
    c.kill_coordinator(signal.SIGTERM)

    data = os.path.join(c.dir, "restored")
    result = restore(c, backup, data)
    check(result.returncode == 0, "restore: %s %s" % (result.stdout, result.stderr))
    check("3 runs" in result.stdout, "restore says what it restored: %s" % result.stdout)
    c.start_coordinator(data_dir=data)
    runs = c.qanat_json("runs")
    check(sorted(r["run_id"] for r in runs) == sorted(small + [big]), "runs %s" % runs)
    for rid in small:
        check(snapshot(c, rid) == before[rid], "run %d restored as it was" % rid)
        got = c.qanat("get", rid, "make.blob", "--out", os.path.join(c.dir, "got-%d" % rid))
        check(got.returncode == 0, "the artifact's blob was restored")
        with open(os.path.join(c.dir, "got-%d" % rid)) as f:
            check(f.read() == "payload\n", "the artifact's content")
    restored = snapshot(c, big)
    done = set(restored["done"])
    check(set(big_before["done"]) <= done <= set(big_after["done"]),
          "the big run's finished tasks are the snapshot's: %d before, %d restored, %d after"
          % (len(big_before["done"]), len(done), len(big_after["done"])))
    lines = set(restored["logs"])
    for name in big_before["done"]:
        check((name, expected_line(name)) in lines, "the log line of %s" % name)
    #  A task still running at the backup may have its line stored already
    #  (a log line commits before its task's end): never a line twice, never
    #  a line of a task the live run had not done by the second snapshot.
    names = [name for name, _ in restored["logs"]]
    check(len(names) == len(set(names)), "a log line twice: %d lines, %d tasks"
          % (len(names), len(set(names))))
    check(done <= set(names) <= set(big_after["done"]),
          "log lines of %d tasks, %d finished" % (len(set(names)), len(done)))
    for name, line in restored["logs"]:
        check(line == expected_line(name), "the log line of %s: %r" % (name, line))


def test_damaged_backups_are_refused(c):
    c.start_coordinator()
    c.start_agent("a1")
    c.wait_run(c.start_run(c.write("small.yaml", SMALL)))
    backup = os.path.join(c.dir, "backup")
    os.mkdir(backup)                    # an empty directory is fine
    c.qanat("admin", "backup", backup)
    again = c.qanat("admin", "backup", backup, check=False)
    check(again.returncode == 6 and "exists and is not empty" in again.stderr,
          "a second backup into the same directory: %d %s" % (again.returncode, again.stderr))
    relative = c.qanat("admin", "backup", "relative/dir", check=False)
    check(relative.returncode == 2 and "absolute path" in relative.stderr, relative.stderr)

    def damaged(name, change, message):
        copy = os.path.join(c.dir, "damaged-" + name)
        shutil.copytree(backup, copy)
        change(copy)
        data = os.path.join(c.dir, "data-" + name)
        result = restore(c, copy, data)
        check(result.returncode == 1 and message in result.stderr,
              "%s: refused with %r: %d %s" % (name, message, result.returncode, result.stderr))
        check(not os.path.exists(data), "%s: no data directory left behind" % name)
        check(not [e for e in os.listdir(c.dir) if e.startswith("data-%s." % name)],
              "%s: no partial restore left behind" % name)

    def flip_blob(copy):
        objects = os.path.join(copy, "blobs", "objects")
        sub = sorted(os.listdir(objects))[0]
        path = os.path.join(objects, sub, sorted(os.listdir(os.path.join(objects, sub)))[0])
        os.chmod(path, 0o644)
        with open(path, "r+b") as f:
            byte = f.read(1)
            f.seek(0)
            f.write(bytes([byte[0] ^ 0x01]))

    def truncate_store(copy):
        path = os.path.join(copy, "data.mdb")
        os.truncate(path, os.path.getsize(path) // 2)

    def break_manifest(copy):
        with open(os.path.join(copy, "manifest.json"), "a") as f:
            f.write("}")

    def escape_path(copy):
        path = os.path.join(copy, "manifest.json")
        with open(path) as f:
            manifest = json.load(f)
        manifest["files"][0]["path"] = "../../etc/passwd"
        with open(path, "w") as f:
            json.dump(manifest, f)

    damaged("blob", flip_blob, "hashes to")
    damaged("store", truncate_store, "data.mdb has")
    damaged("manifest", break_manifest, "not a backup manifest")
    damaged("path", escape_path, "not a valid entry")
    # The intact backup restores, but never over a data directory in use
    data = os.path.join(c.dir, "coordinator")
    result = restore(c, backup, data)
    check(result.returncode == 1 and "exists and is not empty" in result.stderr, result.stderr)
    check(restore(c, backup, os.path.join(c.dir, "fresh")).returncode == 0, "intact backup")


if __name__ == "__main__":
    harness.main(globals())
