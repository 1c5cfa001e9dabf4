"""Exit codes and errors a script can rely on (docs/cli.md): every code
the table promises reached from the real CLI, each not-found case named on
stderr, Ctrl-C on --follow, each key or socket mistake with its own
message at once, -o json, and JSON that is valid UTF-8 whatever a task
prints."""
import json
import os
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import harness
from harness import QANAT, SRC, Cluster, check

TABLE = [(0, "ok"), (1, "the run or task failed"), (2, "usage"), (3, "not found"),
         (4, "permission denied"), (5, "the coordinator unreachable or timed out"),
         (6, "conflict"), (130, "interrupted")]

FAILING = "name: failing\ntasks:\n  boom:\n    run: echo going; exit 7\n"
TRAIN = """\
name: train
params:
  epochs: {type: int, default: 3}
  rate: {type: float, default: 0.5}
  fast: {type: bool, default: false}
  tag: {type: string, default: "7"}
tasks:
  train:
    outputs: {model: model.bin, note: {value: true}}
    run: |
      printf 'ok\\n'
      printf '\\377\\376\\n'
      printf 'model-bytes' > model.bin
      echo "note=hello" >> "$QANAT_VALUES"
      echo "loss 0.5 1" >> "$QANAT_METRICS"
"""


def _run(argv, env=None, timeout=60):
    started = time.time()
    result = subprocess.run(argv, capture_output=True, timeout=timeout, env=env)
    return result, time.time() - started


def _clean(err):
    """stderr must be printable text naming no build tree"""
    text = err.decode("utf-8")          # raises on raw bytes
    check(".libs/" not in text and "lt-qanat" not in text, "build-tree path in %r" % text)
    check(all(ch.isprintable() or ch in "\n\t" for ch in text), "garbage in %r" % text)
    return text


def _expect(c, code, words, *args):
    result = c.qanat(*args, check=False)
    check(result.returncode == code and words in result.stderr,
          "qanat %s: exit %d (want %d), stderr %r (want %r)"
          % (" ".join(map(str, args)), result.returncode, code, result.stderr, words))
    check(".libs/" not in result.stderr, "build-tree path: %r" % result.stderr)
    return result


def test_the_table_is_in_help_and_in_the_docs(c):
    out = subprocess.run([QANAT, "--help"], capture_output=True, text=True).stdout
    with open(os.path.join(SRC, "docs", "cli.md")) as f:
        doc = f.read()
    for code, meaning in TABLE:
        check(re.search(r"^  %d +%s" % (code, re.escape(meaning)), out, re.M),
              "--help lacks %d %s:\n%s" % (code, meaning, out))
        check(re.search(r"^\| %d \| %s" % (code, re.escape(meaning)), doc, re.M),
              "docs/cli.md lacks | %d | %s" % (code, meaning))
    one = subprocess.run([QANAT, "logs", "--help"], capture_output=True, text=True).stdout
    check("3    not found" in one, "qanat logs --help lacks the table:\n" + one)


def test_every_exit_code_and_each_not_found(c):
    c.start_coordinator()
    c.start_agent("a1")
    ok = c.start_run(c.write("train.yaml", TRAIN))
    check(c.wait_run(ok)["status"] == "succeeded", "train run")
    # 0
    _expect(c, 0, "", "stats")
    # 1: a followed run that fails
    _expect(c, 1, "", "run", c.write("failing.yaml", FAILING), "--follow")
    # 2: usage, an invalid workflow, an unknown -o format
    _expect(c, 2, "unknown command 'nosuch'", "nosuch")
    _expect(c, 2, "is not a run id", "status", "abc")
    _expect(c, 2, "did you mean 'needs'",
            "validate", c.write("bad.yaml", "name: b\ntasks:\n  a:\n    run: x\n    need: [c]\n"))
    _expect(c, 2, "use --out bogus", "runs", "-o", "bogus")
    _expect(c, 2, "No such file or directory", "put", os.path.join(c.dir, "nosuch"))
    # 3: each thing that can be missing says what
    _expect(c, 3, "no run 999", "status", "999")
    _expect(c, 3, "run %d has no task nosuch" % ok, "logs", ok, "nosuch")
    _expect(c, 3, "task train of run %d has no attempt 9" % ok, "logs", ok, "train", "--attempt", "9")
    _expect(c, 3, "no run 999", "logs", "999")
    _expect(c, 3, "no run 999", "metrics", "999")
    _expect(c, 3, "no such workflow: nosuchwf", "metrics", "nosuchwf")
    _expect(c, 3, "no such workflow: nosuchwf", "runs", "nosuchwf")
    _expect(c, 3, "run %d has no metric nosuch" % ok, "metrics", ok, "nosuch")
    _expect(c, 3, "workflow train has no metric nosuch", "metrics", "train", "nosuch")
    _expect(c, 3, "has no output nosuch", "get", ok, "train.nosuch")
    _expect(c, 3, "run %d has no task nosuch" % ok, "get", ok, "nosuch.model")
    _expect(c, 3, "no agent named 'nosuch'", "agent", "drain", "nosuch")
    # what is there still exits 0
    for args in (["logs", ok, "train", "--json"], ["logs", ok, "train", "--attempt", "1", "--json"],
                 ["metrics", ok], ["metrics", "train"], ["runs", "train"]):
        _expect(c, 0, "", *args)
    # 4: a user's key asking for an admin's request
    bob = os.path.join(c.dir, "bob.key")
    c.qanat("user", "add", "bob", "--role", "user", "--out", bob)
    denied = subprocess.run([QANAT, "--coordinator", c.client_endpoint, "--key", bob,
                             "token", "create"], capture_output=True, text=True)
    check(denied.returncode == 4 and "permission denied" in denied.stderr,
          "bob: exit %d %r" % (denied.returncode, denied.stderr))
    # 6: already ended
    _expect(c, 6, "has already ended", "cancel", ok)
    # 5: nobody there
    c.kill_coordinator()
    _expect(c, 5, "cannot reach the coordinator", "--timeout", "1", "stats")


def test_key_and_socket_mistakes_each_say_what_at_once(c):
    c.start_coordinator()
    # the CLI pointed at the agent socket
    result, took = _run([QANAT, "--coordinator", c.agent_endpoint, "--key", c.key, "stats"])
    err = _clean(result.stderr)
    check(result.returncode == 2 and
          "this is the agent socket; the CLI talks to %s" % c.client_endpoint in err,
          "agent socket: exit %d %r" % (result.returncode, err))
    check(took < 1, "agent socket: %.2f s" % took)
    # a key file that is not there
    result, took = _run([QANAT, "--coordinator", c.client_endpoint, "--key", "./x.key", "stats"])
    err = _clean(result.stderr)
    check(result.returncode == 2 and "key file ./x.key does not exist" in err,
          "missing key: exit %d %r" % (result.returncode, err))
    check(took < 1, "missing key: %.2f s" % took)
    # no key at all against a CURVE coordinator
    env = dict(os.environ, HOME=os.path.join(c.dir, "nohome"))
    env.pop("QANAT_KEY", None)
    result, took = _run([QANAT, "--coordinator", c.client_endpoint, "stats"], env=env)
    err = _clean(result.stderr)
    check(result.returncode == 4 and "no client key: set QANAT_KEY or use --key" in err,
          "no key: exit %d %r" % (result.returncode, err))
    check(took < 1, "no key: %.2f s" % took)
    # a key the coordinator never admitted: another coordinator's admin key
    other = Cluster("other-coordinator")
    try:
        other.start_coordinator()
        with open(other.key) as f:
            text = f.read()
    finally:
        other.stop()
        other.cleanup()
    with open(c.key) as f:
        ours = re.search(r'coordinator-key = "(.*)"', f.read()).group(1)
    stranger = c.write("stranger.key", re.sub(r'coordinator-key = ".*"',
                                              'coordinator-key = "%s"' % ours.replace("\\", "\\\\"),
                                              text))
    # as it is, it names another coordinator's public key: no handshake
    other_key = c.write("other.key", text)
    result, took = _run([QANAT, "--coordinator", c.client_endpoint, "--key", other_key, "stats"])
    err = _clean(result.stderr)
    check(result.returncode == 4 and "no secure handshake with %s" % c.client_endpoint in err,
          "another coordinator's key: exit %d %r" % (result.returncode, err))
    check(took < 1, "another coordinator's key: %.2f s" % took)
    result, took = _run([QANAT, "--coordinator", c.client_endpoint, "--key", stranger, "stats"])
    err = _clean(result.stderr)
    check(result.returncode == 4 and "does not admit the key in %s" % stranger in err,
          "unknown key: exit %d %r" % (result.returncode, err))
    check(took < 1, "unknown key: %.2f s" % took)


def test_an_insecure_coordinator_names_its_client_socket_too(c):
    c.start_coordinator(secure=False)
    result, took = _run([QANAT, "--coordinator", c.agent_endpoint, "--key", "none", "stats"])
    err = _clean(result.stderr)
    check(result.returncode == 2 and
          "this is the agent socket; the CLI talks to %s" % c.client_endpoint in err,
          "agent socket: exit %d %r" % (result.returncode, err))
    check(took < 1, "agent socket: %.2f s" % took)
    # a client key against a plaintext coordinator: no secure handshake
    secure_key = c.write("client.key", "metadata\n    coordinator-key = \"%s\"\ncurve\n"
                         "    public-key = \"%s\"\n    secret-key = \"%s\"\n"
                         % ("a" * 40, "b" * 40, "c" * 40))
    result, took = _run([QANAT, "--coordinator", c.client_endpoint, "--key", secure_key, "stats"])
    err = _clean(result.stderr)
    check(result.returncode == 4 and "no secure handshake with %s" % c.client_endpoint in err
          and "--key none" in err, "key against --insecure: exit %d %r" % (result.returncode, err))
    check(took < 1, "key against --insecure: %.2f s" % took)


def test_an_agent_on_the_client_socket_is_told_and_stops(c):
    c.start_coordinator()
    c.start_agent("a1")
    c.signal_agent("a1", signal.SIGKILL)
    agent = c.start_agent("a1", wait=False, endpoint=c.client_endpoint)
    try:
        agent.wait(10)
    except subprocess.TimeoutExpired:
        raise harness.TestFailure("the agent on the client socket did not stop")
    with open(os.path.join(c.dir, "agent-a1.log"), errors="replace") as f:
        log = f.read()
    check("this is the client socket; agents talk to %s" % c.agent_endpoint in log,
          "agent log:\n" + log[-2000:])


def _follow_then_interrupt(c, args, wait_for, key_only=False):
    """key_only: no --coordinator, the endpoint comes from the key file"""
    env = dict(os.environ)
    env.pop("QANAT_COORDINATOR", None)
    where = [] if key_only else ["--coordinator", c.client_endpoint]
    follow = subprocess.Popen([QANAT, *where, "--key", c.key, *args], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    seen = b""
    while wait_for not in seen:
        line = follow.stdout.readline()
        check(line, "qanat %s ended early: %r" % (" ".join(args), seen))
        seen += line
    started = time.time()
    follow.send_signal(signal.SIGINT)
    out, err = follow.communicate(timeout=30)
    return follow.returncode, err, time.time() - started, seen


def test_ctrl_c_on_follow_exits_130_at_once_with_the_way_to_stop_the_run(c):
    c.start_coordinator()
    c.start_agent("a1")
    wf = c.write("long.yaml", "name: long\ntasks:\n  slow:\n    run: echo working; sleep 30\n")
    code, err, took, seen = _follow_then_interrupt(c, ["run", wf, "--follow"], b"working")
    run_id = int(seen.split()[1])
    text = _clean(err)
    check(code == 130, "run --follow: exit %d %r" % (code, text))
    check(text == "\nrun %d continues (qanat cancel %d to stop it)\n" % (run_id, run_id),
          "run --follow: stderr %r" % text)
    check(took < 1, "run --follow took %.2f s to stop" % took)
    code, err, took, _ = _follow_then_interrupt(c, ["logs", str(run_id), "--follow"], b"working",
                                                key_only=True)
    text = _clean(err)
    check(code == 130 and text == "\nrun %d continues (qanat cancel %d to stop it)\n"
          % (run_id, run_id), "logs --follow: exit %d %r" % (code, text))
    check(took < 1, "logs --follow took %.2f s to stop" % took)
    check(c.qanat_json("status", run_id)["status"] == "running", "the run stopped")
    c.qanat("cancel", run_id)


def test_output_json_is_json_and_valid_utf8(c):
    c.start_coordinator()
    c.start_agent("a1")
    run_id = c.start_run(c.write("train.yaml", TRAIN), "epochs=5")
    c.wait_run(run_id)
    for args in (["runs"], ["status", run_id], ["metrics", run_id], ["agents"], ["logs", run_id]):
        want = c.qanat(*args, "--json").stdout
        for flag in (["-o", "json"], ["--output", "json"], ["--output=json"]):
            got = c.qanat(*args, *flag).stdout
            if args[0] == "agents":
                # an agent's last_seen moves between two calls
                got, want = json.loads(got), json.loads(want)
                for a in got + want:
                    a.pop("last_seen_us", None)
                got, want = json.dumps(got), json.dumps(want)
            check(got == want, "qanat %s %s differs from --json" % (" ".join(map(str, args)), flag))
    # -o wide: the runs table with which params (who started it: always)
    wide = c.qanat("runs", "-o", "wide").stdout
    check("OWNER" in wide and "epochs=5" in wide and "epochs=5" not in c.qanat("runs").stdout,
          "runs -o wide:\n" + wide)
    # a task's raw bytes 0xFF 0xFE: still UTF-8 JSON, U+FFFD for each
    raw = subprocess.run([QANAT, "--coordinator", c.client_endpoint, "--key", c.key,
                          "logs", str(run_id), "--json"], capture_output=True).stdout
    lines = [json.loads(line) for line in raw.decode("utf-8").splitlines()]
    check(any(l["data"] == "\ufffd\ufffd" for l in lines), "no U+FFFD line: %r" % lines)
    # params keep the types the workflow declares
    params = c.qanat_json("status", run_id)["params"]
    check(params == {"epochs": 5, "rate": 0.5, "fast": False, "tag": "7"}, "params %r" % params)
    listed = [r for r in c.qanat_json("runs") if r["run_id"] == run_id][0]["params"]
    check(listed == params, "runs --json params %r" % listed)
    # downloads: --out FILE, --out - to stdout
    target = os.path.join(c.dir, "model.out")
    c.qanat("get", run_id, "train.model", "--out", target)
    with open(target, "rb") as f:
        check(f.read() == b"model-bytes", "--out FILE")
    got = subprocess.run([QANAT, "--coordinator", c.client_endpoint, "--key", c.key,
                          "get", str(run_id), "train.model", "--out", "-"], capture_output=True)
    check(got.returncode == 0 and got.stdout == b"model-bytes", "--out -: %r" % (got,))
    value = c.qanat("get", run_id, "train.note", "--out", "-").stdout
    check(value == "hello\n", "value to stdout: %r" % value)


if __name__ == "__main__":
    harness.main(globals())
