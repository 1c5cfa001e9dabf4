"""qanat.Client against a real qanatd (CURVE, API tokens) and agent:
where it finds its coordinator, every refusal as its exception with the
server's message, runs listed, followed (across a coordinator restart,
every line exactly once), waited for, canceled, and what they made read
and downloaded with its SHA-256 checked."""
import glob
import hashlib
import os
import socket
import tempfile
import threading
import time
import unittest
from unittest import mock

import clientlib
from clientlib import ClusterCase, qanat, harness, wait_for
from qanat import _config

MADE = """\
name: made
params:
  n: {type: int, default: 3}
tasks:
  make:
    run: sh -c 'for i in $(seq 1 $QANAT_PARAM_N); do echo "loss $((10 - i)) $i" >> "$QANAT_METRICS"; done; echo "rows=$QANAT_PARAM_N" >> "$QANAT_VALUES"; head -c 300000 /dev/urandom > model.bin; mkdir -p out/sub; echo a > out/a.txt; echo b > out/sub/b.txt; chmod 755 out/a.txt'
    outputs: {model: model.bin, tree: out, rows: {value: true}}
"""

SLOW = "name: slow\ntasks:\n  sleeper:\n    run: sleep 60\n"


def talker(count, pause):
    return ("name: talk\ntasks:\n  talk:\n    run: sh -c 'for i in $(seq 1 %d); do echo \"line $i\"; "
            "sleep %s; done'\n" % (count, pause))


class ConfigTest(unittest.TestCase):
    """Arguments, then QANAT_URL/QANAT_TOKEN, then the CLI's context."""

    def test_precedence(self):
        with tempfile.TemporaryDirectory() as home:
            os.makedirs(os.path.join(home, "qanat"))
            with open(os.path.join(home, "tok"), "w") as f:
                f.write("qat_fromfile\n")
            with open(os.path.join(home, "qanat", "config.yaml"), "w") as f:
                f.write('current-context: "prod"\ncontexts:\n'
                        '  "prod":\n    coordinator: "tcp://h:7710"\n    url: "http://prod:7780"\n'
                        '    token: "qat_prod"\n'
                        '  "lab:2":\n    url: "https://lab:443/"\n    token_file: "%s/tok"\n' % home)
            env = {"XDG_CONFIG_HOME": home}
            with mock.patch.dict(os.environ, env, clear=True):
                self.assertEqual(_config.resolve(), ("http://prod:7780", "qat_prod"))
                self.assertEqual(_config.resolve(context="lab:2"), ("https://lab:443", "qat_fromfile"))
                self.assertEqual(_config.resolve("http://x:1", "qat_arg"), ("http://x:1", "qat_arg"))
                c = qanat.Client(token="qat_arg")
                self.assertEqual((c.url, c.token), ("http://prod:7780", "qat_arg"))
            with mock.patch.dict(os.environ, dict(env, QANAT_URL="http://env:2", QANAT_CONTEXT="lab:2"),
                                 clear=True):
                self.assertEqual(_config.resolve(), ("http://env:2", "qat_fromfile"))
            with mock.patch.dict(os.environ, dict(env, QANAT_TOKEN="qat_env"), clear=True):
                self.assertEqual(_config.resolve(), ("http://prod:7780", "qat_env"))
        with tempfile.TemporaryDirectory() as empty:
            with mock.patch.dict(os.environ, {"XDG_CONFIG_HOME": empty}, clear=True):
                self.assertEqual(_config.resolve(), ("http://127.0.0.1:7780", None))
        with self.assertRaises(qanat.QanatError):
            qanat.Client("ftp://x")


class ErrorsTest(ClusterCase):
    """Every refusal: its class, status and the server's own words."""

    AGENTS = ()

    def test_error_mapping(self):
        with self.assertRaises(qanat.NotFound) as e:
            self.user.run(999)
        self.assertEqual((e.exception.status, e.exception.code), (404, "not_found"))
        self.assertIn("999", str(e.exception))
        with self.assertRaises(qanat.NotFound):
            self.user.start("never-stored")
        with self.assertRaises(qanat.NotFound):
            self.user.request("GET", "/nope")
        # 401: a forged token, no token; 403: the role
        for client in (qanat.Client(self.c.http_url, "qat_" + "A" * 40), qanat.Client(self.c.http_url)):
            with self.assertRaises(qanat.PermissionDenied) as e:
                client.runs()
            self.assertEqual(e.exception.status, 401)
        with self.assertRaises(qanat.PermissionDenied) as e:
            self.user.request("GET", "/api/v1/apitokens")
        self.assertEqual(e.exception.status, 403)
        # 409: a name taken; content that cannot be what its hash names
        with self.assertRaises(qanat.Conflict) as e:
            self.admin.request("POST", "/apitokens", {"name": "alice", "role": "user"})
        self.assertEqual(e.exception.status, 409)
        data = b"held\n"
        self.user.put_blob(data)
        with self.assertRaises(qanat.Conflict):
            self.user._http.call_raw("PUT", "/api/v1/blobs/" + hashlib.sha256(data).hexdigest(),
                                     b"held, longer\n", 13)
        # 400 on a workflow: InvalidWorkflow with its place
        bad = "name: x\ntasks:\n  a:\n    run: echo\n    need: [b]\n"
        for call in (lambda: self.user.start(source=bad, filename="wf.yaml"),
                     lambda: self.user.publish(bad, "wf.yaml")):
            with self.assertRaises(qanat.InvalidWorkflow) as e:
                call()
            self.assertEqual((e.exception.file, e.exception.line, e.exception.column), ("wf.yaml", 5, 5))
            self.assertIn("need", e.exception.message)
        with self.assertRaises(qanat.InvalidWorkflow) as e:
            self.user.start(source=MADE, filename="made.yaml", params={"n": "many"})
        self.assertIn("'n'", e.exception.message)
        self.assertIsNone(e.exception.line)
        # Any other 400: QanatError naming the field
        with self.assertRaises(qanat.QanatError) as e:
            self.user.runs(status="bogus")
        self.assertNotIsInstance(e.exception, qanat.InvalidWorkflow)
        self.assertEqual((e.exception.status, e.exception.field), (400, "status"))

    def test_unreachable(self):
        with self.assertRaises(qanat.Unreachable) as e:
            qanat.Client("http://127.0.0.1:%d" % harness.free_port()).runs()
        self.assertIn("cannot reach", str(e.exception))
        # A server that takes the connection and never answers
        with socket.socket() as silent:
            silent.bind(("127.0.0.1", 0))
            silent.listen(4)
            started = time.monotonic()
            with self.assertRaises(qanat.Unreachable) as e:
                qanat.Client("http://127.0.0.1:%d" % silent.getsockname()[1], timeout=0.5).agents()
            self.assertIn("timed out", str(e.exception))
            self.assertLess(time.monotonic() - started, 5)


class RunTest(ClusterCase):
    """Runs started, listed, waited for, canceled; what they made."""

    def test_outputs_metrics_values_download(self):
        runs = [self.user.start(source=MADE, filename="made.yaml", params={"n": n}) for n in (2, 3, 4)]
        for run in runs:
            self.assertIs(run.wait(60), run)
            self.assertEqual(run.status, "succeeded")
        last = runs[-1]
        self.assertEqual([t["name"] for t in last.tasks], ["make"])
        self.assertEqual(last.task("make")["status"], "succeeded")
        # listing: newest first, paged, filtered
        self.assertEqual([r.id for r in self.user.runs(limit=2)], [runs[2].id, runs[1].id])
        self.assertEqual([r.id for r in self.user.runs(limit=None, workflow="made")],
                         [r.id for r in reversed(runs)])
        self.assertEqual(len(self.user.runs(status="failed")), 0)
        self.assertEqual(self.user.runs(limit=1)[0].tasks[0]["name"], "make")
        self.assertEqual(self.user.workflows()[0]["name"], "made")
        # metrics and values
        loss = last.metrics()["loss"]
        self.assertEqual([(p["value"], p["step"], p["task"]) for p in loss],
                         [(9, 1, "make"), (8, 2, "make"), (7, 3, "make"), (6, 4, "make")])
        self.assertEqual(last.values(), {"make": {"rows": "4"}})
        kinds = {a["name"]: a["kind"] for a in last.artifacts()}
        self.assertEqual(kinds, {"model": "file", "tree": "dir", "rows": "value"})
        # downloads, checked
        where = os.path.join(self.c.dir, "dl")
        os.makedirs(where)
        model = last.download("make", "model", os.path.join(where, "model.bin"))
        with open(model, "rb") as f:
            content = f.read()
        self.assertEqual(len(content), 300000)
        self.assertEqual(hashlib.sha256(content).hexdigest(),
                         [a["hash"] for a in last.artifacts() if a["name"] == "model"][0])
        tree = last.download("make", "tree", os.path.join(where, "tree"))
        with open(os.path.join(tree, "sub", "b.txt")) as f:
            self.assertEqual(f.read(), "b\n")
        self.assertTrue(os.stat(os.path.join(tree, "a.txt")).st_mode & 0o100)
        last.download("make", "rows", os.path.join(where, "rows"))
        with open(os.path.join(where, "rows")) as f:
            self.assertEqual(f.read(), "4")
        with self.assertRaises(qanat.NotFound):
            last.download("make", "nothing", os.path.join(where, "x"))
        with self.assertRaises(qanat.QanatError):
            last.download("make", "tree", tree)              # not empty
        with self.assertRaises(qanat.QanatError):
            last.download("make", "model", where)            # a directory
        # A blob damaged in the coordinator's store is not taken as the output
        digest = [a["hash"] for a in runs[0].artifacts() if a["name"] == "model"][0]
        stored = glob.glob(os.path.join(self.c.dir, "coordinator", "**", digest[:2], digest[2:]),
                           recursive=True)
        self.assertTrue(stored, "the model's blob in the store")
        os.chmod(stored[0], 0o644)
        with open(stored[0], "r+b") as f:
            f.write(b"X" * 16)
        with self.assertRaises(qanat.QanatError):
            runs[0].download("make", "model", os.path.join(where, "damaged.bin"))
        self.assertFalse(os.path.exists(os.path.join(where, "damaged.bin")))

    def test_wait_timeout_and_cancel(self):
        run = self.user.start(source=SLOW, filename="slow.yaml")
        with self.assertRaises(TimeoutError):
            run.wait(timeout=0.3)
        wait_for(lambda: run.refresh().info["tasks"][0]["status"] == "running", "the task to start")
        self.assertIs(run.cancel(), run)
        self.assertEqual(run.wait(30).status, "canceled")
        self.assertEqual(self.user.run(run.id).status, "canceled")

    def test_logs_follow_survives_coordinator_restart(self):
        count = 300
        run = self.user.start(source=talker(count, "0.02"), filename="talk.yaml")
        seen, seqs = [], []
        restarted = threading.Event()

        def restart():
            self.c.kill_coordinator()           # SIGKILL, mid-stream
            time.sleep(1.0)                     # the client finds no one for a while
            self.c.start_coordinator(http_port=True)
            restarted.set()

        restarter = None
        for line in run.logs(follow=True):
            seqs.append(line["seq"])
            seen += line["text"].splitlines()
            if len(seen) >= 40 and restarter is None:
                restarter = threading.Thread(target=restart)
                restarter.start()
        restarter.join()
        self.assertTrue(restarted.is_set())
        self.assertEqual(seqs, sorted(set(seqs)), "a log sequence seen twice or out of order")
        self.assertEqual(seen, ["line %d" % i for i in range(1, count + 1)])
        self.assertEqual(run.wait(30).status, "succeeded")
        # read again without following: the same lines, and only a task's
        again = [text for l in run.logs(task="talk") for text in l["text"].splitlines()]
        self.assertEqual(again, seen)
        with self.assertRaises(qanat.NotFound):
            list(run.logs(task="nope"))


if __name__ == "__main__":
    clientlib.main()
