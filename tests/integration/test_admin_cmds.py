"""The commands an operator and a user reach for (issue 15, section 4):
user list|revoke, token list|revoke, secret delete, agent remove|label,
qanat-agent --join on an enrolled agent (refused; --force enrols anew),
logs --timestamps --tail --since with a header between attempts, runs
--status --since --owner with an OWNER column, get --out - and get's
modes and --force, and directory sizes in `qanat artifacts`.  Each exit
code and message is checked, with a real CURVE coordinator and agents.

    QANAT_BUILDDIR=$PWD /usr/bin/python3 tests/integration/test_admin_cmds.py
"""
import json
import os
import re
import stat
import subprocess
import time

import harness
from harness import check, main, task
from test_security import agent_log, wait_exit

ENROL_TIMEOUT = ["--enrol-timeout", "3"]


def fails(c, code, text, *args, key=None):
    """Runs qanat args (as key's user, default the admin): it must exit
    code and say text on stderr."""
    argv = [harness.QANAT, "--coordinator", c.client_endpoint, "--key", key or c.key,
            "--timeout", "5", *[str(a) for a in args]]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    check(r.returncode == code and text in r.stderr,
          "qanat %s: exit %d (want %d), stderr %r (want %r)" % (
              " ".join(map(str, args)), r.returncode, code, r.stderr, text))
    return r


def as_user(c, key, *args):
    argv = [harness.QANAT, "--coordinator", c.client_endpoint, "--key", key, "--timeout", "5",
            *[str(a) for a in args]]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


def agent_labels(c, name):
    for a in c.qanat_json("agents"):
        if a["name"] == name:
            return a["labels"]
    return None


def test_users_tokens_and_secrets(c):
    c.start_coordinator()
    alice = os.path.join(c.dir, "alice.key")
    c.qanat("user", "add", "alice", "--out", alice)
    bob = os.path.join(c.dir, "bob.key")
    c.qanat("user", "add", "bob", "--out", bob)
    users = {u["name"]: u for u in c.qanat_json("user", "list")}
    check(users["alice"]["role"] == "user" and users["alice"]["state"] == "active"
          and users["admin"]["role"] == "admin", "user list: %s" % users)
    table = c.qanat("user", "list").stdout
    check(re.search(r"^alice\s+user\s+active", table, re.M), "user list table:\n" + table)
    check(as_user(c, alice, "whoami").returncode == 0, "alice cannot talk")
    # Admin only, each of them
    for args in (["user", "list"], ["user", "revoke", "bob"], ["token", "list"],
                 ["token", "revoke", "t00000000"], ["secret", "delete", "x"],
                 ["agent", "remove", "x"], ["agent", "label", "x", "a=b"]):
        fails(c, 4, "needs role admin", *args, key=alice)

    # A revoked user's key stops working at once
    out = c.qanat("user", "revoke", "alice").stdout
    check("user alice revoked" in out, out)
    started = time.time()
    r = as_user(c, alice, "whoami")
    check(r.returncode == 4 and "does not admit the key" in r.stderr, "revoked alice: %s" % r)
    check(time.time() - started < 2, "refusing alice took %.1f s" % (time.time() - started))
    check(as_user(c, bob, "whoami").returncode == 0, "bob was cut off too")
    users = {u["name"]: u for u in c.qanat_json("user", "list")}
    check(users["alice"]["state"] == "revoked" and users["alice"]["revoked"], "%s" % users)
    fails(c, 3, "no user named 'alice'", "user", "revoke", "alice")
    fails(c, 6, "'admin' is the last admin", "user", "revoke", "admin")
    fails(c, 2, "Usage: qanat user", "user", "revoke")

    # Join tokens: listed with id, expiry, uses left and labels; revoked
    made = c.qanat_json("token", "create", "--uses", "2", "--labels", "pool=x")
    tokens = {t["id"]: t for t in c.qanat_json("token", "list")}
    mine = tokens[made["id"]]
    check(mine["uses_left"] == 2 and mine["labels"] == {"pool": "x"} and mine["state"] == "active"
          and mine["expires_us"] == made["expires_us"], "token list: %s" % mine)
    table = c.qanat("token", "list").stdout
    check(re.search(r"^%s\s+active\s+.*\s2\s+pool=x$" % made["id"], table, re.M), table)
    out = c.qanat("token", "revoke", made["id"]).stdout
    check("join token %s revoked" % made["id"] in out, out)
    tokens = {t["id"]: t for t in c.qanat_json("token", "list")}
    check(tokens[made["id"]]["state"] == "revoked", "after revoke: %s" % tokens)
    c.start_agent("late", {"pool": "x"}, wait=False, token=made["token"], extra=ENROL_TIMEOUT)
    check(wait_exit(c, "late") == 1, "an agent enrolled with a revoked token")
    fails(c, 3, "no join token with id 't00000000'", "token", "revoke", "t00000000")

    # Secrets: deleted for good
    subprocess.run([harness.QANAT, "--coordinator", c.client_endpoint, "--key", c.key,
                    "secret", "set", "S1"], input="v1\n", text=True, check=True,
                   capture_output=True)
    check([s["name"] for s in c.qanat_json("secret", "list")] == ["S1"], "secret list")
    check("secret S1 deleted" in c.qanat("secret", "delete", "S1").stdout, "delete")
    check(c.qanat_json("secret", "list") == [], "S1 still listed")
    fails(c, 3, "no secret named 'S1'", "secret", "delete", "S1")


GPU_WORKFLOW = """name: gpu-job
tasks:
  train:
    on: {gpu: a100}
    run: echo trained on $(hostname)
"""


def test_agent_label_remove_and_enrol_again(c):
    c.start_coordinator(lost_after_ms=1500)
    c.start_agent("a1", {"pool": "x"})
    run_id = c.start_run(c.write("gpu.yaml", GPU_WORKFLOW))
    time.sleep(0.5)
    check(task(c.qanat_json("status", run_id), "train")["status"] == "queued",
          "the task ran without a gpu agent")
    # The admin's labels: placement uses them at once
    out = c.qanat("agent", "label", "a1", "gpu=a100", "zone=b").stdout
    check("agent a1 labels: pool=x,gpu=a100,zone=b" in out, out)
    check(c.wait_run(run_id, 20)["status"] == "succeeded", "the relabelled agent got no work")
    check(c.qanat_json("agent", "label", "a1", "zone-")["labels"] == {"pool": "x", "gpu": "a100"},
          "zone- kept zone")
    check(agent_labels(c, "a1") == {"pool": "x", "gpu": "a100"}, "agents: %s" % agent_labels(c, "a1"))
    fails(c, 3, "no enrolled agent named 'nosuch'", "agent", "label", "nosuch", "a=b")
    fails(c, 2, "'zone' is neither KEY=VALUE", "agent", "label", "a1", "zone")
    fails(c, 2, "label 'bad key=1'", "agent", "label", "a1", "bad key=1")
    fails(c, 2, "Usage: qanat agent", "agent", "label", "a1")
    # ...and they win over what the agent says of itself, across its restart
    c.signal_agent("a1", 9)
    c.start_agent("a1", {"pool": "other"})
    check(agent_labels(c, "a1") == {"pool": "x", "gpu": "a100"},
          "after a restart: %s" % agent_labels(c, "a1"))

    # A connected agent is not forgotten
    fails(c, 6, "agent a1 is connected (or stopped less than its lost deadline ago): "
          "revoke it first", "agent", "remove", "a1")

    # --join on an enrolled agent: refused, and --force enrols anew
    key_file = os.path.join(c.agent_dir("a1"), "agent.key")
    with open(key_file) as f:
        old_key = f.read()
    c.signal_agent("a1", 9)
    c.start_agent("a1", wait=False, token=c.create_token(), extra=ENROL_TIMEOUT)
    check(wait_exit(c, "a1") == 1, "--join on an enrolled agent did not stop it")
    check("already enrolled" in agent_log(c, "a1") and "--force" in agent_log(c, "a1"),
          agent_log(c, "a1"))
    # The name is still a1's, not revoked: the coordinator keeps it
    c.start_agent("a1", wait=False, token=c.create_token(), extra=["--force", *ENROL_TIMEOUT])
    check(wait_exit(c, "a1") == 1, "--force took an enrolled name")
    check("revoke it first" in agent_log(c, "a1"), agent_log(c, "a1"))
    with open(key_file) as f:
        check(f.read() == old_key, "a refused enrolment replaced agent.key")
    c.qanat("agent", "revoke", "a1")
    c.start_agent("a1", token=c.create_token(), extra=["--force", *ENROL_TIMEOUT])
    with open(key_file) as f:
        check(f.read() != old_key, "--force kept the old key")

    # A revoked agent is forgotten; so is a lost one
    c.qanat("agent", "revoke", "a1")
    check(wait_exit(c, "a1") == 1, "the revoked agent still runs")
    out = c.qanat("agent", "remove", "a1").stdout
    check("agent a1 removed" in out, out)
    check(agent_labels(c, "a1") is None, "a1 still listed")
    fails(c, 3, "no agent named 'a1'", "agent", "remove", "a1")
    c.start_agent("a2")
    c.signal_agent("a2", 9)
    c.wait_for(lambda: any(a["name"] == "a2" and a["state"] == "lost"
                           for a in c.qanat_json("agents")), "a2 to be lost")
    c.qanat("agent", "remove", "a2")
    check(c.qanat_json("agents") == [], "agents left: %s" % c.qanat_json("agents"))
    # its key went with it
    c.start_agent("a2", wait=False, extra=ENROL_TIMEOUT)
    check(wait_exit(c, "a2") == 1, "a removed agent came back with its old key")


FLAKY = """name: flaky
tasks:
  t:
    retries: 1
    retry_delay: 0
    outputs: {text: out.txt, tree: d/, answer: {value: true}}
    run: |
      echo "first of attempt $QANAT_ATTEMPT"
      echo "second of attempt $QANAT_ATTEMPT"
      echo "last of attempt $QANAT_ATTEMPT"
      if [ "$QANAT_ATTEMPT" = 1 ]; then exit 3; fi
      printf 'hello\\n' > out.txt
      mkdir -p d/sub
      printf '#!/bin/sh\\necho hi\\n' > d/run.sh
      chmod 755 d/run.sh
      head -c 100 /dev/zero > d/a
      head -c 250 /dev/zero > d/sub/b
      echo answer=42 >> "$QANAT_VALUES"
"""

FAILING = """name: failing
tasks:
  boom:
    run: exit 1
"""

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z ")


def mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_logs_runs_and_get(c):
    c.start_coordinator()
    c.start_agent("a1")
    run_id = c.start_run(c.write("flaky.yaml", FLAKY))
    check(c.wait_run(run_id)["status"] == "succeeded", "the flaky run did not succeed")
    failed_id = c.start_run(c.write("failing.yaml", FAILING))
    check(c.wait_run(failed_id)["status"] == "failed", "the failing run did not fail")

    # A header line between attempts (text only)
    out = c.qanat("logs", run_id, "t").stdout
    lines = out.splitlines()
    check(lines[0].startswith("── attempt 1 (agent a1, started ")
          and "── attempt 2 (agent a1, started " in out and lines[4].startswith("── attempt 2"),
          "logs with headers:\n" + out)
    check(lines[1:4] == ["first of attempt 1", "second of attempt 1", "last of attempt 1"], out)
    check("──" not in c.qanat("logs", run_id, "t", "--json").stdout, "a header in --json")
    every = c.qanat("logs", run_id).stdout
    check("── attempt 2 of t (agent a1" in every, "logs of every task:\n" + every)
    # --tail: the last lines of the selection
    out = c.qanat("logs", run_id, "t", "--tail", "2").stdout
    check([l for l in out.splitlines() if not l.startswith("──")]
          == ["second of attempt 2", "last of attempt 2"], "--tail 2:\n" + out)
    check(len(c.logs_json(run_id, "t", "--tail", "4")) == 4, "--tail 4 --json")
    check(c.qanat("logs", run_id, "t", "--tail", "0").stdout == "", "--tail 0")
    # --timestamps: each line starts with its time
    out = c.qanat("logs", run_id, "t", "--timestamps").stdout
    stamped = [l for l in out.splitlines() if not l.startswith("──")]
    check(len(stamped) == 6 and all(RFC3339.match(l) for l in stamped), "--timestamps:\n" + out)
    # --since: a duration, or a time
    check(len(c.logs_json(run_id, "t", "--since", "1h")) == 6, "--since 1h")
    later = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 60))
    check(c.qanat("logs", run_id, "t", "--since", later).stdout == "", "--since the future")
    fails(c, 2, "--since wants a duration back from now", "logs", run_id, "--since", "10x")
    fails(c, 2, "--tail wants a number of lines, not 'x'", "logs", run_id, "--tail", "x")
    fails(c, 3, "", "logs", 999, "--tail", "3")

    # runs --status --since --owner, and an OWNER column
    ids = lambda *args: [r["run_id"] for r in c.qanat_json("runs", *args)]
    check(ids("--status", "failed") == [failed_id], "--status failed: %s" % ids("--status", "failed"))
    check(ids("--status", "succeeded", "--owner", "admin", "--since", "1d") == [run_id],
          "--status succeeded --owner admin")
    check(ids("--owner", "nobody") == [] and ids("--since", later) == [], "filters")
    check(ids("--since", "1d") == [failed_id, run_id], "--since 1d")
    table = c.qanat("runs").stdout
    check(re.search(r"^RUN\s+WORKFLOW\s+VER\s+STATUS\s+OWNER", table)
          and re.search(r"^%d\s+failing\s+1\s+failed\s+admin\s" % failed_id, table, re.M),
          "runs table:\n" + table)
    fails(c, 2, "--status wants queued, running, succeeded", "runs", "--status", "broken")
    fails(c, 2, "--since wants a duration", "runs", "--since", "yesterday")
    fails(c, 2, "--owner wants a user's name", "runs", "--owner", "")

    # get: to stdout, with the modes of any new file, never over a file
    # without --force
    r = c.qanat("get", run_id, "t.text", "--out", "-")
    check(r.stdout == "hello\n", "--out -: %r" % r.stdout)
    umask = os.umask(0o022)
    os.umask(umask)
    text = os.path.join(c.dir, "out.txt")
    c.qanat("get", run_id, "t.text", "--out", text)
    check(mode(text) == 0o666 & ~umask, "mode %o" % mode(text))
    with open(text, "w") as f:
        f.write("mine\n")
    fails(c, 6, "%s exists: add --force to replace it" % text, "get", run_id, "t.text",
          "--out", text)
    with open(text) as f:
        check(f.read() == "mine\n", "get replaced the file without --force")
    value = os.path.join(c.dir, "answer.txt")
    open(value, "w").close()
    fails(c, 6, "exists: add --force", "get", run_id, "t.answer", "--out", value)
    c.qanat("get", run_id, "t.text", "--out", text, "--force")
    with open(text) as f:
        check(f.read() == "hello\n", "--force did not replace it")
    tree = os.path.join(c.dir, "tree")
    c.qanat("get", run_id, "t.tree", "--out", tree)
    script = os.path.join(tree, "run.sh")
    check(mode(os.path.join(tree, "sub", "b")) == 0o666 & ~umask
          and os.path.getsize(os.path.join(tree, "sub", "b")) == 250
          and mode(script) == 0o777 & ~umask, "the tree's files: %o" % mode(script))
    check(subprocess.run([script], capture_output=True, text=True).stdout == "hi\n",
          "the script does not run")
    fails(c, 6, "exists: add --force", "get", run_id, "t.tree", "--out", tree)

    # artifacts: a directory's size is the sum of its files
    outputs = {o["output"]: o for o in c.qanat_json("artifacts", run_id)}
    check(outputs["tree"]["size"] == 368 and outputs["text"]["size"] == 6,
          "artifacts: %s" % outputs)
    table = c.qanat("artifacts", run_id).stdout
    check(re.search(r"^t\s+tree\s+dir\s+368\s", table, re.M), "artifacts table:\n" + table)


if __name__ == "__main__":
    main(globals())
