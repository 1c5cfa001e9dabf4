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
import random
import re
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
# CURVE everywhere (see docs/security.md): the coordinator without
# --insecure, the CLI with the admin key it made, agents enrolled with
# join tokens.  A test that needs plaintext peers passes secure=False.
SECURE = True


class TestFailure(AssertionError):
    pass


def check(condition, message):
    if not condition:
        raise TestFailure(message)


def _accepts(host, port):
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


_handed_out = set()


def free_port():
    """A port free now, below the kernel's ephemeral range: a port the
    kernel hands out (bind to 0) may become some other process's
    outgoing connection's before qanatd binds it; these never do.  Never
    the same port twice in one test process: a cluster takes three before
    it binds any."""
    low = max(_ephemeral_low(), 12000)
    for _ in range(200):
        port = random.randrange(10000, low)
        if port in _handed_out:
            continue
        _handed_out.add(port)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """One coordinator and any number of agents, all in one temp dir."""

    def __init__(self, name):
        self.dir = tempfile.mkdtemp(prefix="qanat-it-%s-" % name)
        # Workflows written here travel with their folder (qanat run packs
        # it): the cluster's own directories and logs stay out of it
        with open(os.path.join(self.dir, ".qanatignore"), "w") as f:
            f.write("/*/\n*.log\n")
        self.client_port = free_port()
        self.agent_port = free_port()
        self.http_port = free_port()
        self.coordinator = None
        self.agents = {}
        self.logs = []

    @property
    def client_endpoint(self):
        return "tcp://127.0.0.1:%d" % self.client_port

    @property
    def agent_endpoint(self):
        return "tcp://127.0.0.1:%d" % self.agent_port

    @property
    def http_url(self):
        """The coordinator's HTTP API and web UI"""
        return "http://127.0.0.1:%d" % self.http_port

    def _spawn(self, name, argv):
        path = os.path.join(self.dir, name + ".log")
        log = open(path, "ab")
        if path not in self.logs:       # a restart appends to the same log
            self.logs.append(path)
        return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)

    def start_coordinator(self, *extra, heartbeat_ms=200, lost_after_ms=5000,
                          suspect_after_ms=None, data_dir=None, wait=True, secure=None,
                          http_port=None, web_dir=None):
        """Starts qanatd; data_dir defaults to <tmp>/coordinator (the same
        one on every restart); suspect_after_ms is passed only when given.
        Its HTTP side listens on 127.0.0.1:<http_port>, a free port kept
        across restarts; http_port (True, or a port number to use instead)
        also waits until that port accepts connections; web_dir adds
        --web-dir.
        secure (default SECURE) runs it with CURVE: the CLI then uses the
        admin key the coordinator writes into <data-dir>/keys/admin.key;
        otherwise it runs --insecure and the CLI uses --key none."""
        self.secure = SECURE if secure is None else secure
        if http_port is not None and http_port is not True:
            self.http_port = http_port
        argv = [QANATD, "--data-dir", data_dir or os.path.join(self.dir, "coordinator"),
                "--client-endpoint", self.client_endpoint,
                "--agent-endpoint", self.agent_endpoint,
                "--http-endpoint", "127.0.0.1:%d" % self.http_port,
                "--heartbeat-ms", str(heartbeat_ms),
                "--lost-after-ms", str(lost_after_ms)]
        if suspect_after_ms is not None:
            argv += ["--suspect-after-ms", str(suspect_after_ms)]
        if web_dir is not None:
            argv += ["--web-dir", web_dir]
        if self.secure:
            self.key = os.path.join(data_dir or os.path.join(self.dir, "coordinator"),
                                    "keys", "admin.key")
        else:
            argv.append("--insecure")
            self.key = "none"
        self.coordinator = self._spawn("qanatd", argv + ["--verbose", *extra])
        if not wait:
            return
        deadline = time.time() + 15
        while time.time() < deadline:
            check(self.coordinator.poll() is None, "qanatd exited at start")
            if os.path.exists(self.key) or self.key == "none":
                if self.qanat("stats", check=False, timeout_s=1).returncode == 0 \
                        and (http_port is None or _accepts("127.0.0.1", self.http_port)):
                    return
            time.sleep(0.1)
        raise TestFailure("qanatd did not answer within 15 s")

    def create_apitoken(self, name, role="user", *extra):
        """An API token (qat_...) made with `qanat apitoken create`."""
        out = self.qanat("apitoken", "create", name, "--role", role, *extra).stdout
        found = re.search(r"qat_[A-Za-z0-9_\-]+", out)
        check(found, "no qat_ token in `qanat apitoken create` output: %r" % out)
        return found.group(0)

    def agent_dir(self, name):
        return os.path.join(self.dir, "agent-" + name)

    def create_token(self, labels=None, ttl="10m", uses=None):
        """A join token from the coordinator (admin), as text."""
        args = ["token", "create", "--ttl", ttl]
        if labels:
            args += ["--labels", ",".join("%s=%s" % kv for kv in labels.items())]
        if uses:
            args += ["--uses", str(uses)]
        return self.qanat_json(*args)["token"]

    def kill_coordinator(self, sig=signal.SIGKILL):
        self.coordinator.send_signal(sig)
        self.coordinator.wait(10)

    def start_agent(self, name, labels=None, slots=2, wait=True, extra=(), endpoint=None,
                    timers=None, token=None):
        """Starts an agent.  Its data dir is <tmp>/agent-NAME, so starting
        the same name again restarts it on the same data dir.  endpoint
        replaces the coordinator's agent endpoint (e.g. a proxy); timers
        ({"heartbeat_ms": .., "suspect_after_ms": .., "lost_after_ms": ..})
        become --heartbeat-ms ... flags, each only if this agent build has
        it (see agent_has_flag).  With a secure coordinator, an agent not
        enrolled yet (no agent.key in its data dir) gets --join with a
        fresh token for its labels (or the token given); a restart needs
        none.  Against an insecure one it runs --insecure."""
        data_dir = self.agent_dir(name)
        argv = [AGENT, "--coordinator", endpoint or self.agent_endpoint, "--name", name,
                "--slots", str(slots), "--data-dir", data_dir]
        if labels:
            argv += ["--labels", ",".join("%s=%s" % kv for kv in labels.items())]
        for key, value in (timers or {}).items():
            flag = "--" + key.replace("_", "-")
            if agent_has_flag(flag):
                argv += [flag, str(value)]
        if not getattr(self, "secure", SECURE):
            argv.append("--insecure")
        elif token is not None:
            argv += ["--join", token]
        elif not os.path.exists(os.path.join(data_dir, "agent.key")):
            argv += ["--join", self.create_token(labels)]
        argv += [str(a) for a in extra]
        self.agents[name] = self._spawn("agent-" + name, argv)
        if wait:
            self.wait_for(lambda: any(a["name"] == name and a["connected"]
                                      for a in self.qanat_json("agents")),
                          "agent %s to register" % name)
        return self.agents[name]

    def signal_agent(self, name, sig):
        """Sends sig to the agent process only (not to its tasks, which
        run in process groups of their own)."""
        self.agents[name].send_signal(sig)
        if sig == signal.SIGKILL:
            self.agents[name].wait(10)

    def signal_coordinator(self, sig):
        self.coordinator.send_signal(sig)

    def task_processes(self):
        """Pids of live processes whose working directory is inside this
        cluster's temp dir: the tasks agents started (orphans included)."""
        pids = []
        prefix = os.path.realpath(self.dir) + os.sep
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                cwd = os.readlink("/proc/%s/cwd" % entry)
                with open("/proc/%s/stat" % entry) as f:
                    state = f.read().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if (cwd + os.sep).startswith(prefix) and state != "Z":
                pids.append(int(entry))
        return pids

    def qanat(self, *args, check=True, timeout_s=5, timeout=120):
        argv = [QANAT, "--coordinator", self.client_endpoint, "--key", getattr(self, "key", "none"),
                "--timeout", str(timeout_s),
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
        agents = list(self.agents.values())
        procs = agents + ([self.coordinator] if self.coordinator else [])
        for p in procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGCONT)    # a stopped process cannot exit
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        # An agent's first SIGTERM drains (it waits for its tasks); the
        # second stops it at once.
        time.sleep(0.1)
        for p in agents:
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
        # Tasks orphaned by a killed agent live in their own process groups.
        for pid in self.task_processes():
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def dump_logs(self):
        for path in self.logs:
            print("----- %s -----" % os.path.basename(path))
            with open(path, errors="replace") as f:
                text = f.read()
            print(text[-6000:])

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


_AGENT_HELP = None


def agent_has_flag(flag):
    """True when `qanat-agent --help` lists flag (agent features land
    independently of the tests that use them)."""
    global _AGENT_HELP
    if _AGENT_HELP is None:
        try:
            _AGENT_HELP = subprocess.run([AGENT, "--help"], capture_output=True, text=True,
                                         timeout=10).stdout
        except (OSError, subprocess.TimeoutExpired):
            _AGENT_HELP = ""
    return flag in _AGENT_HELP


def task(run, name):
    for t in run["tasks"]:
        if t["name"] == name:
            return t
    raise TestFailure("no task %s in run" % name)


def last_attempt(run, name):
    """The last attempt of task name in a run's status."""
    attempts = task(run, name)["attempts"]
    check(attempts, "task %s has no attempt" % name)
    return attempts[-1]


def task_lines(c, run_id, name):
    """What task name printed in run run_id, without the system lines."""
    return [l["data"] for l in c.logs_json(run_id, name) if l["stream"] != "system"]


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
