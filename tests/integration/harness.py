"""Integration test harness: real qanatd and qanat-agent processes on
loopback, random ports, temporary data directories, driven through the
real `qanat` CLI.

Each test file calls `main(globals())`, which runs every `test_*` function
with a fresh Cluster and prints one line per test plus a summary line
`N passed, N failed`.  A failing test prints the logs of every process it
started.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

BUILD = os.environ.get("QANAT_BUILDDIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
SRC = os.environ.get("QANAT_SRCDIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
QANATD = os.path.join(BUILD, "coordinator", "qanatd")
AGENT = os.path.join(BUILD, "agent", "qanat-agent")
QANAT = os.path.join(BUILD, "cli", "qanat")


class TestFailure(AssertionError):
    pass


def check(condition, message):
    if not condition:
        raise TestFailure(message)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """One coordinator and any number of agents, all in one temp dir."""

    def __init__(self, name):
        self.dir = tempfile.mkdtemp(prefix="qanat-it-%s-" % name)
        self.client_port = free_port()
        self.agent_port = free_port()
        self.coordinator = None
        self.agents = {}
        self.logs = []

    @property
    def client_endpoint(self):
        return "tcp://127.0.0.1:%d" % self.client_port

    @property
    def agent_endpoint(self):
        return "tcp://127.0.0.1:%d" % self.agent_port

    def _spawn(self, name, argv):
        path = os.path.join(self.dir, name + ".log")
        log = open(path, "ab")
        self.logs.append(path)
        return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)

    def start_coordinator(self, *extra, heartbeat_ms=200, lost_after_ms=5000):
        self.coordinator = self._spawn("qanatd", [
            QANATD, "--data-dir", os.path.join(self.dir, "coordinator"),
            "--client-endpoint", self.client_endpoint,
            "--agent-endpoint", self.agent_endpoint,
            "--heartbeat-ms", str(heartbeat_ms),
            "--lost-after-ms", str(lost_after_ms), "--verbose", *extra])
        deadline = time.time() + 15
        while time.time() < deadline:
            check(self.coordinator.poll() is None, "qanatd exited at start")
            if self.qanat("stats", check=False, timeout_s=1).returncode == 0:
                return
            time.sleep(0.1)
        raise TestFailure("qanatd did not answer within 15 s")

    def kill_coordinator(self, sig=signal.SIGKILL):
        self.coordinator.send_signal(sig)
        self.coordinator.wait(10)

    def start_agent(self, name, labels=None, slots=2, wait=True):
        argv = [AGENT, "--coordinator", self.agent_endpoint, "--name", name,
                "--slots", str(slots), "--data-dir", os.path.join(self.dir, "agent-" + name)]
        if labels:
            argv += ["--labels", ",".join("%s=%s" % kv for kv in labels.items())]
        self.agents[name] = self._spawn("agent-" + name, argv)
        if wait:
            self.wait_for(lambda: any(a["name"] == name and a["connected"]
                                      for a in self.qanat_json("agents")),
                          "agent %s to register" % name)
        return self.agents[name]

    def qanat(self, *args, check=True, timeout_s=5, timeout=120):
        argv = [QANAT, "--coordinator", self.client_endpoint, "--timeout", str(timeout_s),
                *[str(a) for a in args]]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise TestFailure("qanat %s exited %d\nstdout:\n%s\nstderr:\n%s" % (
                " ".join(map(str, args)), result.returncode, result.stdout, result.stderr))
        return result

    def qanat_json(self, *args):
        return json.loads(self.qanat(*args, "--json").stdout)

    def write(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def start_run(self, workflow_path, *params):
        argv = ["run", workflow_path]
        for p in params:
            argv += ["--param", p]
        return self.qanat_json(*argv)["run_id"]

    def wait_run(self, run_id, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            run = self.qanat_json("status", run_id)
            if run["status"] not in ("queued", "running"):
                return run
            time.sleep(0.1)
        raise TestFailure("run %s did not end within %d s: %s" % (
            run_id, timeout, json.dumps(run, indent=1)))

    def wait_for(self, predicate, what, timeout=15):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if predicate():
                return
            time.sleep(0.1)
        raise TestFailure("timed out waiting for " + what)

    def logs_json(self, run_id, *args):
        out = self.qanat("logs", run_id, *args, "--json").stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def stop(self):
        procs = list(self.agents.values()) + ([self.coordinator] if self.coordinator else [])
        for p in procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for p in procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(5)

    def dump_logs(self):
        for path in self.logs:
            print("----- %s -----" % os.path.basename(path))
            with open(path, errors="replace") as f:
                text = f.read()
            print(text[-6000:])

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def task(run, name):
    for t in run["tasks"]:
        if t["name"] == name:
            return t
    raise TestFailure("no task %s in run" % name)


def main(namespace):
    tests = [(name, fn) for name, fn in namespace.items()
             if name.startswith("test_") and callable(fn)]
    passed = failed = 0
    for name, fn in tests:
        cluster = Cluster(name)
        started = time.time()
        try:
            fn(cluster)
            passed += 1
            print("ok   %s (%.1fs)" % (name, time.time() - started), flush=True)
        except Exception:
            failed += 1
            print("FAIL %s (%.1fs)" % (name, time.time() - started))
            traceback.print_exc(file=sys.stdout)
            cluster.stop()
            cluster.dump_logs()
        finally:
            cluster.stop()
            if not failed:
                cluster.cleanup()
        sys.stdout.flush()
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)
