"""Upgrades: a store written by the previous release (the fixture
tests/fixtures/store-aa15632.tar.gz, made by tests/fixtures/make_old_store.py
with the aa15632 binaries) opens with this qanatd, and every run, log line,
metric, artifact, stored workflow version, user and secret is there; a
stored version still runs by name.  Protocol skew: an envelope of another
protocol version is refused with a message naming both versions.

    QANAT_BUILDDIR=$PWD /usr/bin/python3 tests/integration/test_upgrade.py
"""
import json
import os
import tarfile

import zmq

import harness
from harness import check

FIXTURE = os.path.join(harness.SRC, "tests", "fixtures", "store-aa15632.tar.gz")


def test_previous_release_store_opens_with_everything(c):
    with tarfile.open(FIXTURE) as tar:
        tar.extractall(c.dir)
    data = os.path.join(c.dir, "store-aa15632")
    with open(os.path.join(data, "expected.json")) as f:
        expected = json.load(f)
    c.start_coordinator(data_dir=data)
    runs = {r["run_id"]: r for r in c.qanat_json("runs")}
    check(len(runs) == len(expected["runs"]), "runs %s" % sorted(runs))
    for old in expected["runs"]:
        rid = old["run_id"]
        run = c.qanat_json("status", rid)
        check(run["status"] == old["status"], "run %d status %s" % (rid, run["status"]))
        logs = [[l["task"], l["data"]] for l in c.logs_json(rid) if l.get("stream") != "system"]
        check(logs == old["logs"], "run %d logs %s != %s" % (rid, logs, old["logs"]))
        check(c.qanat_json("metrics", rid) == old["metrics"], "run %d metrics" % rid)
        check(c.qanat_json("artifacts", rid) == old["artifacts"], "run %d artifacts" % rid)
        for art in old["artifacts"]:
            got = c.qanat("get", rid, "%s.%s" % (art["task"], art["output"]), "--out",
                          os.path.join(c.dir, "got-%d" % rid))
            check(got.returncode == 0, "get run %d's output" % rid)
    check(c.qanat_json("workflows") == expected["workflows"], "workflows")
    check(sorted(u["name"] for u in c.qanat_json("user", "list")) == expected["users"], "users")
    check([s["name"] for s in c.qanat_json("secret", "list")] == expected["secrets"], "secrets")
    # The old stored version 1 runs on a new agent, by name
    c.start_agent("new1")
    run = c.wait_run(c.qanat_json("run", "fixwf@1")["run_id"])
    check(run["status"] == "succeeded", "fixwf@1 on the new release: %s" % run["status"])
    check(["use", "payload-3"] in [[l["task"], l["data"]] for l in c.logs_json(run["run_id"])],
          "the new run's output")


def test_other_protocol_version_is_refused_naming_both(c):
    c.start_coordinator(secure=False)
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, 5000)
    sock.connect(c.agent_endpoint)
    # Envelope { version = 99, register = {} }: field 1 varint, field 10 empty
    sock.send(bytes([0x08, 99, 0x52, 0x00]))
    reply = sock.recv()
    sock.close()
    text = reply.decode("utf-8", "replace")
    check("99" in text and "version 1" in text,
          "the refusal names both versions: %r" % text)
    # Stamped with the peer's version (field 1 = 99), so that a peer of
    # that version does not drop it unread; its body is a Refusal (field 24)
    check(reply[:4] == bytes([0x08, 99, 0xc2, 0x01]),
          "the refusal carries the peer's version: %r" % reply[:8])


def test_previous_release_agent_runs_tasks(c):
    """Only where the previous release is built (QANAT_OLD_BUILDDIR: the
    aa15632 tree, see tests/fixtures/make_old_store.py); CI cannot build
    it on the fly, so elsewhere this test passes without running"""
    old = os.environ.get("QANAT_OLD_BUILDDIR")
    if not old:
        print("  (skipped: QANAT_OLD_BUILDDIR not set)")
        return
    c.start_coordinator()
    saved = harness.AGENT
    harness.AGENT = os.path.join(old, "agent", "qanat-agent")
    try:
        c.start_agent("old1")
    finally:
        harness.AGENT = saved
    wf = c.write("skew.yaml", "name: skew\ntasks:\n  a:\n    run: echo old-agent\n"
                 "  b:\n    needs: [a]\n    run: echo done\n")
    run = c.wait_run(c.start_run(wf))
    check(run["status"] == "succeeded", "a run on the previous release's agent: %s" % run)
    check(["a", "old-agent"] in [[l["task"], l["data"]] for l in c.logs_json(run["run_id"])],
          "its log line")


if __name__ == "__main__":
    harness.main(globals())
