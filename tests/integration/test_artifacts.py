"""Artifacts end to end: outputs stored in the coordinator's blob store,
staged as inputs on another agent, fetched with `qanat get`; an upload cut
by kill -9 of its agent; the task cache; retention (keep_runs); outputs
that try to leave the working directory; typed parameters.

Every check is on observed data: SHA-256 of the bytes on disk (hashlib),
sizes, directory listings, log lines.  Big payloads come from a seeded
generator (gen.py, written below) so that the test knows their hash
without trusting qanat, and a retried attempt produces the same blob.

    QANAT_BUILDDIR=$PWD /usr/bin/python3 tests/integration/test_artifacts.py
"""
import hashlib
import json
import os
import random
import re
import shlex
import signal
import sys
import time

import harness
from harness import check, task

MB = 1000 * 1000

# Writes SIZE bytes of a seeded pseudo-random stream to stdout, 1 MB at a
# time: the same SEED always gives the same bytes (see s_expected_hash).
GENERATOR = """\
import random, sys
seed, size = sys.argv[1], int(sys.argv[2])
rng = random.Random(seed)
out = sys.stdout.buffer
while size > 0:
    n = min(size, 1000000)
    out.write(rng.randbytes(n))
    size -= n
"""


def generated_hash(seed, size):
    """SHA-256 of what gen.py SEED SIZE writes, computed here."""
    rng = random.Random(str(seed))
    digest = hashlib.sha256()
    while size > 0:
        n = min(size, 1000000)
        digest.update(rng.randbytes(n))
        size -= n
    return digest.hexdigest()


def generator(c):
    """The shell words that run gen.py (append SEED SIZE)."""
    path = c.write("gen.py", GENERATOR)
    return "%s %s" % (shlex.quote(sys.executable), shlex.quote(path))


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def blob_path(store, digest):
    """Where a blob store (qn_blobstore) keeps a complete blob."""
    return os.path.join(store, "objects", digest[:2], digest[2:])


def coordinator_blobs(c):
    return os.path.join(c.dir, "coordinator", "blobs")


def agent_blobs(c, name):
    return os.path.join(c.agent_dir(name), "blobs")


def objects_usage(store):
    """(bytes, files) of the complete blobs in a store."""
    total = files = 0
    for root, _, names in os.walk(os.path.join(store, "objects")):
        for name in names:
            total += os.path.getsize(os.path.join(root, name))
            files += 1
    return total, files


def stdout_of(c, run_id, task_name):
    return [l["data"] for l in c.logs_json(run_id, task_name) if l["stream"] == "stdout"]


def line_with(lines, prefix):
    found = [l for l in lines if l.startswith(prefix)]
    check(len(found) == 1, "one line starting %r in %s" % (prefix, lines))
    return found[0]


def sha_from(lines, name):
    """The hash of a `sha256sum NAME` line."""
    found = [l.split()[0] for l in lines if l.endswith("  " + name)]
    check(len(found) == 1 and re.fullmatch(r"[0-9a-f]{64}", found[0]),
          "one sha256sum line for %s in %s" % (name, lines))
    return found[0]


def artifacts(c, run_id):
    return {(a["task"], a["output"]): a for a in c.qanat_json("artifacts", run_id)}


def last_attempt(run, task_name):
    return task(run, task_name)["attempts"][-1]


def position(text, needle):
    """1-based (line, column) of the first needle in text."""
    offset = text.index(needle)
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


# ---------------------------------------------------------------------------

HANDOFF = """\
name: handoff
tasks:
  prepare:
    on: {role: a}
    outputs: {model: big.bin, rows: {value: true}}
    run: |
      set -e
      head -c 200000000 /dev/urandom > big.bin
      sha256sum big.bin
      echo rows=1234567 >> "$QANAT_VALUES"
      echo "end $(date +%s.%N)"
  consume:
    on: {role: b}
    inputs: {model: prepare.model, rows: {from: prepare.rows}}
    run: |
      set -e
      echo "start $(date +%s.%N)"
      sha256sum "$QANAT_INPUT_MODEL"
      echo "rows=$QANAT_INPUT_ROWS"
      stat -c "mode=%a size=%s" "$QANAT_INPUT_MODEL"
      echo "workdir=$PWD"
"""


def test_200mb_file_and_a_value_move_between_agents(c):
    c.start_coordinator()
    c.start_agent("pa", labels={"role": "a"})
    c.start_agent("pb", labels={"role": "b"})
    run = c.wait_run(c.start_run(c.write("handoff.yaml", HANDOFF)), timeout=60)
    run_id = run["run_id"]
    check(run["status"] == "succeeded", "run %s: %s" % (run["status"], run))
    check(last_attempt(run, "prepare")["agent"] == "pa", "prepare ran on pa")
    check(last_attempt(run, "consume")["agent"] == "pb", "consume ran on pb")

    produced = stdout_of(c, run_id, "prepare")
    consumed = stdout_of(c, run_id, "consume")
    digest = sha_from(produced, "big.bin")
    check(sha_from(consumed, "model") == digest,
          "consumer saw %s, producer wrote %s" % (sha_from(consumed, "model"), digest))
    check("rows=1234567" in consumed, "the value arrived: %s" % consumed)
    check(line_with(consumed, "mode=") == "mode=444 size=%d" % (200 * MB),
          "staged input read-only and whole: %s" % consumed)

    outputs = artifacts(c, run_id)
    model = outputs[("prepare", "model")]
    check((model["kind"], model["size"], model["hash"]) == ("file", 200 * MB, digest),
          "artifacts lists the model: %s" % model)
    rows = outputs[("prepare", "rows")]
    check((rows["kind"], rows["value"]) == ("value", "1234567"), "artifacts lists rows: %s" % rows)

    # The bytes travelled: the coordinator's store and the consumer's own
    # cache each hold a verified copy, and the consumer worked in its own
    # data dir on a file that is not the producer's.
    for store in (coordinator_blobs(c), agent_blobs(c, "pb")):
        path = blob_path(store, digest)
        check(os.path.isfile(path), "blob %s in %s" % (digest[:12], store))
        check(os.path.getsize(path) == 200 * MB, "%s has %d bytes" % (path, os.path.getsize(path)))
        check(sha256_file(path) == digest, "%s is corrupt" % path)
    workdir = line_with(consumed, "workdir=")[len("workdir="):]
    check(os.path.realpath(workdir).startswith(os.path.realpath(c.agent_dir("pb")) + os.sep),
          "consume ran in pb's data dir, not %s" % workdir)
    staged = os.path.join(workdir, "model")
    producer_file = [os.path.join(root, "big.bin") for root, _, names
                     in os.walk(c.agent_dir("pa")) if "big.bin" in names]
    check(os.path.isfile(staged) and len(producer_file) == 1,
          "staged %s, producer's files %s" % (staged, producer_file))
    check(not os.path.samefile(staged, producer_file[0]), "staged input is the producer's file")

    target = os.path.join(c.dir, "fetched.bin")
    got = c.qanat("get", run_id, "prepare.model", "--out", target, timeout_s=60)
    check(os.path.getsize(target) == 200 * MB and sha256_file(target) == digest,
          "qanat get returned the wrong bytes: %s" % got.stdout)
    value = c.qanat("get", run_id, "prepare.rows").stdout
    check(value == "1234567\n", "qanat get of a value: %r" % value)

    ended = float(line_with(produced, "end ").split()[1])
    started = float(line_with(consumed, "start ").split()[1])
    stored = last_attempt(run, "prepare")["finished_us"] / 1e6
    print("     200 MB handoff: %.2f s from producer exit to consumer start "
          "(upload+store %.2f s, stage on the other agent %.2f s)"
          % (started - ended, stored - ended, started - stored))


# ---------------------------------------------------------------------------

def test_upload_cut_by_kill_9_resumes_and_the_blob_is_whole(c):
    size = 300 * MB
    c.start_coordinator()
    c.start_agent("up")
    gen = generator(c)
    wf = c.write("upload.yaml", """\
name: upload
tasks:
  produce:
    retries: 2
    outputs: {big: big.bin}
    run: |
      set -e
      %s cut %d > big.bin
      sha256sum big.bin
""" % (gen, size))
    expected = generated_hash("cut", size)
    run_id = c.start_run(wf)
    partial_dir = os.path.join(coordinator_blobs(c), "partial")
    final = blob_path(coordinator_blobs(c), expected)

    def partial_size():
        try:
            return os.path.getsize(os.path.join(partial_dir, expected))
        except OSError:
            return None

    # Kill the agent once a good share, but not all, has arrived.
    deadline = time.time() + 40
    while time.time() < deadline:
        held = partial_size()
        if held is not None and held >= 40 * MB:
            break
        check(not os.path.exists(final), "the upload finished before we could cut it")
        time.sleep(0.005)
    else:
        raise harness.TestFailure("no partial upload of %s appeared" % expected[:12])
    c.signal_agent("up", signal.SIGKILL)
    time.sleep(0.2)
    before = partial_size()
    check(before is not None and 40 * MB <= before < size,
          "partial after the kill holds %s of %d bytes" % (before, size))
    check(not os.path.exists(final), "blob complete despite the kill")

    # Same name, same data dir.  Sample the partial until the blob is
    # complete: a restarted upload would show it shrinking below `before`.
    c.start_agent("up", wait=False)
    smallest = before
    samples = 0
    deadline = time.time() + 60
    while not os.path.exists(final) and time.time() < deadline:
        held = partial_size()
        if held is not None:
            smallest = min(smallest, held)
            samples += 1
        elif not os.path.exists(final):
            smallest = 0            # the partial was dropped: not a resume
        time.sleep(0.005)
    run = c.wait_run(run_id, timeout=60)
    check(run["status"] == "succeeded", "run %s: %s" % (run["status"], task(run, "produce")))
    check(smallest >= before,
          "upload restarted: partial shrank from %d to %d bytes after the agent came back"
          % (before, smallest))
    check(os.path.getsize(final) == size and sha256_file(final) == expected,
          "stored blob is not the generated content")
    out = artifacts(c, run_id)[("produce", "big")]
    check((out["hash"], out["size"]) == (expected, size), "artifacts: %s" % out)
    leftovers = [n for n in os.listdir(partial_dir) if not n.startswith("tmp")]
    check(leftovers == [], "partial files left behind: %s" % leftovers)
    attempts = task(run, "produce")["attempts"]
    print("     cut at %d MB of %d MB, resumed (%d samples, smallest %d MB); attempts: %s"
          % (before // MB, size // MB, samples, smallest // MB,
             ", ".join("%d %s" % (a["attempt"], a["end"]) for a in attempts)))
    # The exact bytes re-sent on resume are asserted by tests/unit/test_transfer.c;
    # `qanat stats` does not print the blob server's byte counters.


def test_get_json_prints_json_for_values_and_files(c):
    c.start_coordinator()
    c.start_agent("a1")
    wf = c.write("outs.yaml", """\
name: outs
tasks:
  make:
    outputs: {greeting: {value: true}, report: report.txt}
    run: 'echo "greeting=say \\"hi\\"" >> "$QANAT_VALUES"; echo hello > report.txt'
""")
    run = c.wait_run(c.start_run(wf))
    check(run["status"] == "succeeded", "run %s" % run["status"])
    run_id = run["run_id"]
    raw = c.qanat("get", run_id, "make.greeting").stdout
    check(raw == 'say "hi"\n', "the value without --json: %r" % raw)
    got = c.qanat("get", run_id, "make.greeting", "--json").stdout
    try:
        value = json.loads(got)
    except ValueError:
        raise harness.TestFailure("get --json of a value is not JSON: %r" % got)
    check(value == {"task": "make", "output": "greeting", "kind": "value", "value": 'say "hi"'},
          "get --json of a value: %s" % value)
    # -o: the file gets the value itself, stdout says what was written
    target = os.path.join(c.dir, "greeting.txt")
    written = json.loads(c.qanat("get", run_id, "make.greeting", "--out", target, "--json").stdout)
    with open(target) as f:
        check(f.read() == 'say "hi"\n', "the value written by -o")
    check((written["path"], written["bytes"]) == (target, 9), "get -o --json: %s" % written)
    target = os.path.join(c.dir, "report.txt")
    report = json.loads(c.qanat("get", run_id, "make.report", "--out", target, "--json").stdout)
    check(report == {"task": "make", "output": "report", "kind": "file",
                     "hash": hashlib.sha256(b"hello\n").hexdigest(), "path": target, "bytes": 6},
          "get --json of a file: %s" % report)


# ---------------------------------------------------------------------------

CACHED = """\
name: cached
params:
  greeting: hello
tasks:
  make:
    cache: true
    outputs: {out: out.txt}
    run: echo "computing in run $QANAT_RUN_ID"; echo ${{ params.greeting }} > out.txt
  use:
    inputs: {x: make.out}
    run: cat x
"""


def test_cache_hit_on_the_second_run_and_no_cache_runs_again(c):
    c.start_coordinator()
    c.start_agent("a1")
    wf = c.write("cached.yaml", CACHED)
    expected = hashlib.sha256(b"hello\n").hexdigest()

    first = c.wait_run(c.start_run(wf))
    check(first["status"] == "succeeded", "first run %s" % first["status"])
    check(stdout_of(c, first["run_id"], "make") == ["computing in run %d" % first["run_id"]],
          "make ran in the first run")
    out = artifacts(c, first["run_id"])[("make", "out")]
    check((out["hash"], out["cached_from"]) == (expected, 0), "first artifacts %s" % out)

    second = c.wait_run(c.start_run(wf))
    check(second["status"] == "succeeded", "second run %s" % second["status"])
    attempt = last_attempt(second, "make")
    check("cached from run %d" % first["run_id"] in attempt["reason"],
          "make not cached: %s" % attempt)
    check(stdout_of(c, second["run_id"], "make") == [], "a cached task printed something")
    out = artifacts(c, second["run_id"])[("make", "out")]
    check((out["hash"], out["cached_from"]) == (expected, first["run_id"]),
          "cached artifacts %s" % out)
    check(stdout_of(c, second["run_id"], "use") == ["hello"], "the cached output reached use")
    # A cached attempt ran nowhere: no agent, host, backend or environment,
    # and it names the run whose outputs it took.
    ran = last_attempt(first, "make")
    check(ran["host"] != "" and ran["cached_from"] == 0, "the first attempt %s" % ran)
    where = {k: attempt[k] for k in ("agent", "host", "backend", "environment", "engine_job_id")}
    check(set(where.values()) == {""} and attempt["end"] == "cached"
          and attempt["cached_from"] == first["run_id"], "the cached attempt %s" % attempt)
    followed = c.qanat("run", wf, "--follow", timeout=60).stdout
    check("==> make cached from run %d\n" % first["run_id"] in followed
          and "make started on" not in followed and "==> use started on a1" in followed,
          "followed a cached task:\n" + followed)

    third_id = c.qanat_json("run", wf, "--no-cache")["run_id"]
    third = c.wait_run(third_id)
    check(third["status"] == "succeeded", "--no-cache run %s" % third["status"])
    check(stdout_of(c, third_id, "make") == ["computing in run %d" % third_id],
          "--no-cache did not run make")
    check("cached" not in last_attempt(third, "make")["reason"], "--no-cache used the cache")
    check(artifacts(c, third_id)[("make", "out")]["cached_from"] == 0, "--no-cache cached_from")

    # Other parameters are other work.
    fourth = c.wait_run(c.start_run(wf, "greeting=bonjour"))
    check(stdout_of(c, fourth["run_id"], "make") == ["computing in run %d" % fourth["run_id"]],
          "a changed parameter hit the cache")
    check(stdout_of(c, fourth["run_id"], "use") == ["bonjour"], "new output reached use")


# ---------------------------------------------------------------------------

def test_keep_runs_deletes_old_runs_and_their_blobs(c):
    blob = 5 * MB
    c.start_coordinator()
    c.start_agent("a1")
    wf = c.write("keep.yaml", """\
name: keep
keep_runs: 2
tasks:
  make:
    outputs: {blob: blob.bin}
    run: %s "run-$QANAT_RUN_ID" %d > blob.bin
""" % (generator(c), blob))
    hashes = {}
    for _ in range(6):
        run = c.wait_run(c.start_run(wf))
        check(run["status"] == "succeeded", "run %d %s" % (run["run_id"], run["status"]))
        hashes[run["run_id"]] = artifacts(c, run["run_id"])[("make", "blob")]["hash"]
    ids = sorted(hashes)
    for run_id in ids:
        check(hashes[run_id] == generated_hash("run-%d" % run_id, blob),
              "run %d stored the wrong content" % run_id)
    check(len(set(hashes.values())) == 6, "six distinct blobs")

    listed = [r["run_id"] for r in c.qanat_json("runs")]
    check(listed == ids[:-3:-1], "runs left: %s, want %s" % (listed, ids[:-3:-1]))
    for run_id in ids[:-2]:
        gone = c.qanat("status", run_id, check=False)
        check(gone.returncode != 0 and "no run %d" % run_id in gone.stderr,
              "run %d still answers: %s %s" % (run_id, gone.stdout, gone.stderr))
        logs = c.qanat("logs", run_id, check=False)
        check(logs.returncode != 0, "logs of deleted run %d still there" % run_id)
    for run_id in ids[-2:]:
        target = os.path.join(c.dir, "kept-%d.bin" % run_id)
        c.qanat("get", run_id, "make.blob", "--out", target)
        check(sha256_file(target) == hashes[run_id], "kept run %d's blob" % run_id)

    used, files = objects_usage(coordinator_blobs(c))
    present = [run_id for run_id in ids
               if os.path.exists(blob_path(coordinator_blobs(c), hashes[run_id]))]
    with open(os.path.join(c.dir, "qanatd.log"), errors="replace") as log:
        retention = [l.split("retention: ", 1)[1].strip() for l in log if "retention: " in l]
    print("     blob dir after 6 runs: %d bytes in %d files; blobs of runs %s present"
          % (used, files, present))
    check(present == ids[-2:],
          "blobs of deleted runs not freed: present for runs %s (want %s); "
          "blob dir %d bytes in %d files; qanatd says: %s"
          % (present, ids[-2:], used, files, retention))
    check(used <= 2 * blob + 64 * 1024, "blob dir holds %d bytes, want about %d" % (used, 2 * blob))


def test_keep_runs_flag_of_the_coordinator(c):
    c.start_coordinator("--keep-runs", "1")
    c.start_agent("a1")
    plain = c.write("plain.yaml", "name: plain\ntasks:\n  t: {run: echo hi}\n")
    own = c.write("own.yaml", "name: own\nkeep_runs: 3\ntasks:\n  t: {run: echo hi}\n")
    for _ in range(3):
        check(c.wait_run(c.start_run(plain))["status"] == "succeeded", "plain run")
    for _ in range(4):
        check(c.wait_run(c.start_run(own))["status"] == "succeeded", "own run")
    plain_runs = [r["run_id"] for r in c.qanat_json("runs", "plain")]
    own_runs = [r["run_id"] for r in c.qanat_json("runs", "own")]
    check(plain_runs == [3], "--keep-runs 1 left %s" % plain_runs)
    check(own_runs == [7, 6, 5], "keep_runs: 3 overrides the flag, left %s" % own_runs)


# ---------------------------------------------------------------------------

ESCAPING = """\
name: escaping
tasks:
  leak:
    run: echo hi
    outputs:
      up: ../x
      abs: /etc/passwd
      deep: a/../../b
      fine: a/b.txt
"""


def test_outputs_outside_the_work_dir_are_refused(c):
    c.start_coordinator()
    c.start_agent("a1")
    bad = c.write("escaping.yaml", ESCAPING)
    for command in ("validate", "run"):
        result = c.qanat(command, bad, check=False)
        text = result.stdout + result.stderr
        check(result.returncode != 0, "qanat %s accepted it: %s" % (command, text))
        errors = [l for l in text.splitlines() if l.startswith(bad + ":")]
        for name, path in (("up", "../x"), ("abs", "/etc/passwd"), ("deep", "a/../../b")):
            line, col = position(ESCAPING, path)
            want = "%s:%d:%d: output '%s'" % (bad, line, col, name)
            check(any(e.startswith(want) and path in e for e in errors),
                  "qanat %s: no %r in %s" % (command, want, text))
        check(len(errors) == 3, "qanat %s: a/b.txt is fine, got %s" % (command, errors))
    check(c.qanat_json("runs") == [], "a refused workflow made a run")

    wf = c.write("runtime.yaml", """\
name: runtime
tasks:
  link:
    outputs: {leak: out.txt}
    run: ln -s /etc/passwd out.txt
  missing:
    outputs: {model: model.bin}
    run: echo nothing
""")
    run = c.wait_run(c.start_run(wf))
    check(run["status"] == "failed", "run %s" % run["status"])
    link = last_attempt(run, "link")
    check(task(run, "link")["status"] == "failed" and link["exit_code"] == 0,
          "link: %s" % task(run, "link"))
    check("out.txt" in link["reason"] and "outside" in link["reason"],
          "symlink reason: %r" % link["reason"])
    missing = last_attempt(run, "missing")
    check(task(run, "missing")["status"] == "failed", "missing: %s" % task(run, "missing"))
    check("model.bin" in missing["reason"] and "no such file" in missing["reason"],
          "missing reason: %r" % missing["reason"])
    check(c.qanat_json("artifacts", run["run_id"]) == [], "failed tasks have artifacts")
    with open("/etc/passwd", "rb") as f:
        passwd = hashlib.sha256(f.read()).hexdigest()
    check(not os.path.exists(blob_path(coordinator_blobs(c), passwd)),
          "/etc/passwd was uploaded")
    print("     reasons: %r; %r" % (link["reason"], missing["reason"]))


# ---------------------------------------------------------------------------

def test_typed_params(c):
    c.start_coordinator()
    c.start_agent("a1")
    wf = c.write("params.yaml", """\
name: params
params:
  epochs: {type: int, default: 3}
  note: {type: string, default: plain}
tasks:
  t:
    run: echo epochs=${{ params.epochs }} env=$QANAT_PARAM_EPOCHS note=${{ params.note }}
""")
    bad = c.qanat("run", wf, "--param", "epochs=abc", check=False)
    check(bad.returncode != 0, "epochs=abc accepted: %s" % bad.stdout)
    check("parameter 'epochs' wants an int, not 'abc'" in bad.stderr + bad.stdout,
          "message: %r" % (bad.stderr + bad.stdout))
    check(c.qanat_json("runs") == [], "a refused run was stored")

    default = c.wait_run(c.start_run(wf))
    check(stdout_of(c, default["run_id"], "t") == ["epochs=3 env=3 note=plain"],
          "default: %s" % stdout_of(c, default["run_id"], "t"))
    given = c.wait_run(c.start_run(wf, "epochs=7", "note=a b; echo INJECTED"))
    check(given["status"] == "succeeded", "run %s" % given["status"])
    check(stdout_of(c, given["run_id"], "t") == ["epochs=7 env=7 note=a b; echo INJECTED"],
          "given: %s" % stdout_of(c, given["run_id"], "t"))


def test_a_chunk_corrupted_on_the_wire_is_fetched_again(c):
    """A byte flipped in flight (a proxy between a plaintext agent and the
    coordinator, as a bad link would): the chunk's SHA-256 catches it, the
    coordinator asks for it again, and the stored blob is whole."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fault"))
    import netproxy
    c.start_coordinator(secure=False)
    proxy = netproxy.Proxy(c.agent_port)
    try:
        c.start_agent("a", endpoint=proxy.endpoint)
        # 4 MB of data: the flip lands 1 MB into the upload's chunks
        path = c.write("corrupt.yaml", "name: corrupt\ntasks:\n  produce:\n"
                       "    run: python3 -c \"import random; open('blob.bin', 'wb')"
                       ".write(random.Random(3).randbytes(4000000))\"\n"
                       "    outputs: {blob: blob.bin}\n")
        expected = hashlib.sha256(random.Random(3).randbytes(4000000)).hexdigest()
        proxy.corrupt_once(1500000)
        run = c.wait_run(c.start_run(path), timeout=60)
        check(run["status"] == "succeeded", "run: %s" % run)
        check(proxy.corrupted_at is not None, "the proxy never flipped a byte")
        stats = c.qanat_json("stats")
        check(stats["blob_chunks_rejected"] >= 1,
              "the coordinator should have rejected the corrupted chunk: %s" % stats)
        record = [a for a in c.qanat_json("artifacts", run["run_id"]) if a["output"] == "blob"][0]
        check(record["hash"] == expected, "recorded hash %s" % record["hash"])
        stored = os.path.join(c.dir, "coordinator", "blobs", "objects", expected[:2], expected[2:])
        with open(stored, "rb") as f:
            check(hashlib.sha256(f.read()).hexdigest() == expected, "the stored blob is whole")
        print("# flipped byte %d of the agent's stream; %d chunk(s) fetched again" % (
            proxy.corrupted_at, stats["blob_chunks_rejected"]), flush=True)
    finally:
        proxy.close()


def test_the_agents_blob_cache_stays_under_its_bound(c):
    """A consumer agent with --cache-max 1M and --cache-keep-recent 0
    takes three distinct 600 kB inputs, one run after another: after each
    staging the least recently used blob goes, so its cache never holds
    more than one, and every run still gets its bytes right."""
    blob = 600 * 1000
    c.start_coordinator()
    c.start_agent("maker", labels={"role": "maker"})
    c.start_agent("user", labels={"role": "user"},
                  extra=["--cache-max", "1M", "--cache-keep-recent", "0"])
    # code: none, so that the cache holds only the inputs' blobs
    wf = c.write("bounded.yaml", """\
name: bounded
code: none
tasks:
  make:
    on: {role: maker}
    outputs: {blob: blob.bin}
    run: %s "cache-$QANAT_RUN_ID" %d > blob.bin
  use:
    on: {role: user}
    inputs: {blob: make.blob}
    run: sha256sum blob
""" % (generator(c), blob))
    for _ in range(3):
        run_id = c.start_run(wf)
        run = c.wait_run(run_id)
        check(run["status"] == "succeeded", "run %d: %s" % (run_id, run["status"]))
        lines = [l["data"] for l in c.logs_json(run_id)
                 if l["task"] == "use" and l["stream"] == "stdout"]
        want = generated_hash("cache-%d" % run_id, blob)
        check(lines == ["%s  blob" % want], "run %d's consumer read %s" % (run_id, lines))
        used, files = objects_usage(agent_blobs(c, "user"))
        check(used <= 1024 * 1024 and files == 1,
              "the consumer's cache holds %d bytes in %d blobs after run %d" % (used, files, run_id))
        check(os.path.exists(blob_path(agent_blobs(c, "user"), want)),
              "the blob just used stays in the cache")
    with open(os.path.join(c.dir, "agent-user.log"), errors="replace") as log:
        trims = [l for l in log if "blob cache: removed" in l]
    check(len(trims) == 2, "two trims logged: %s" % trims)


FED = """\
name: fed
params:
  data: {type: artifact}
  table: {type: artifact}
tasks:
  use:
    inputs: {d: {param: data}, t: {param: table, path: in/table.csv}}
    run: "cat d/a.txt d/sub/b.txt && wc -l < in/table.csv && sha256sum in/table.csv"
"""


def test_put_feeds_local_files_into_a_run(c):
    """qanat put stores a local directory in the coordinator and prints its
    reference; run --param NAME=@PATH puts a file on the way; the task gets
    both as inputs, verified; a reference to nothing, or not a reference,
    is refused when the run starts."""
    c.start_coordinator()
    c.start_agent("a1")
    data = os.path.join(c.dir, "local-data")
    os.makedirs(os.path.join(data, "sub"))
    with open(os.path.join(data, "a.txt"), "w") as f:
        f.write("alpha\n")
    with open(os.path.join(data, "sub", "b.txt"), "w") as f:
        f.write("beta\n")
    table = os.path.join(c.dir, "table.csv")
    with open(table, "w") as f:
        f.write("".join("%d,x\n" % i for i in range(2500)))
    put = c.qanat_json("put", data)
    check(put["ref"].startswith("dir:") and put["bytes"] == 11, "qanat put: %s" % put)
    again = c.qanat_json("put", data)
    check(again == put, "the same directory gives the same reference: %s" % again)

    wf = c.write("fed.yaml", FED)
    started = c.qanat("run", wf, "--param", "data=" + put["ref"], "--param", "table=@" + table,
                      "--json", timeout_s=30)
    run_id = json.loads(started.stdout)["run_id"]
    check("put %s as file:" % table in started.stderr, "run says what it put: %r" % started.stderr)
    run = c.wait_run(run_id)
    check(run["status"] == "succeeded", "run: %s" % run)
    lines = [l["data"] for l in c.logs_json(run_id) if l["stream"] == "stdout"]
    check(lines[:3] == ["alpha", "beta", "2500"], "the task read its inputs: %s" % lines)
    check(lines[3].split()[0] == sha256_file(table), "the table's bytes: %s" % lines)

    for value, words in (("file:" + "0" * 64, "has no blob"),
                         ("abc", "artifact reference")):
        bad = c.qanat("run", wf, "--param", "data=" + value, "--param", "table=@" + table,
                      check=False, timeout_s=30)
        check(bad.returncode != 0 and words in bad.stderr,
              "%s: exit %d, %r" % (value, bad.returncode, bad.stderr))


if __name__ == "__main__":
    harness.main(globals())
