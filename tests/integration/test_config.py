"""The daemons' YAML config files, --check-config, sd_notify and the log
formats (docs/configuration.md): a bad key or value stops the daemon at
start naming file, line, column and key; --check-config exits 0 with the
effective settings (flags over the file) or 2 with the error; under a
notify socket of our own READY comes once the sockets accept, then
WATCHDOG and STATUS, and STOPPING on SIGTERM; logs are text, JSON with
--log-format json, and carry <N> priorities when stderr is the journal."""
import json
import os
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import AGENT, QANATD, check, main  # noqa: E402


def _write(cluster, name, text):
    path = os.path.join(cluster.dir, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def _run(argv, timeout=20):
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                           stdin=subprocess.DEVNULL)


def _coordinator_yaml(cluster, extra=""):
    return ("data_dir: %s\nclient_endpoint: %s\nagent_endpoint: %s\n"
            "http_endpoint: none\ninsecure: true\n%s"
            % (os.path.join(cluster.dir, "coordinator"), cluster.client_endpoint,
               cluster.agent_endpoint, extra))


def test_errors_name_file_line_column_and_key(cluster):
    path = _write(cluster, "qanatd.yaml",
                  "# settings\ndata_dir: /tmp/x\nheartbeat_ms: abc\nkeep_run: 3\n"
                  "placement: diagonal\n")
    out = _run([QANATD, "--config", path])
    check(out.returncode == 2, "bad qanatd.yaml: exit %d, not 2" % out.returncode)
    for text in ["qanatd.yaml:3:15: heartbeat_ms: wants a whole number from 10 to 3600000, "
                 "not 'abc'",
                 "qanatd.yaml:4:1: unknown key 'keep_run' (did you mean 'keep_runs'?)",
                 "qanatd.yaml:5:12: placement: wants one of pack|spread, not 'diagonal'"]:
        check(text in out.stderr, "no '%s' in: %s" % (text, out.stderr))
    agent = _write(cluster, "agent.yaml", "insecure: true\nlabels:\n  - a=b\nslot: 4\n"
                   "heartbeat_ms: 20x\n")
    out = _run([AGENT, "--config", agent, "--check-config"])
    check(out.returncode == 2, "bad agent.yaml: exit %d, not 2" % out.returncode)
    for text in ["agent.yaml:4:1: unknown key 'slot' (did you mean 'slots'?)",
                 "agent.yaml:5:15: heartbeat_ms: wants a whole number from 0 to 600000"]:
        check(text in out.stderr, "no '%s' in: %s" % (text, out.stderr))
    # A flag's bad value, and the old format refused with how to convert
    out = _run([QANATD, "--heartbeat-ms", "abc"])
    check(out.returncode == 2 and "--heartbeat-ms wants a whole number" in out.stderr,
          "bad --heartbeat-ms: %d %s" % (out.returncode, out.stderr))
    old = _write(cluster, "qanatd.cfg", "qanatd\n    heartbeat_ms = 1000\n")
    out = _run([QANATD, "--config", old])
    check(out.returncode == 2 and "no longer read" in out.stderr and "key: value" in out.stderr,
          "old .cfg: %d %s" % (out.returncode, out.stderr))


def test_check_config_prints_effective_settings(cluster):
    path = _write(cluster, "qanatd.yaml", "heartbeat_ms: 500\nkeep_runs: 3\nno_sync: yes\n")
    out = _run([QANATD, "--config", path, "--check-config", "--keep-runs", "7"])
    check(out.returncode == 0, "check-config: %d %s" % (out.returncode, out.stderr))
    lines = out.stdout.splitlines()
    for line in ["heartbeat_ms: 500", "keep_runs: 7", "no_sync: true",
                 "lost_after_ms: 30000  # default", "placement: pack  # default"]:
        check(line in lines, "no '%s' in:\n%s" % (line, out.stdout))
    # Settings that tie together are checked too
    bad = _write(cluster, "tied.yaml", "heartbeat_ms: 5000\nsuspect_after_ms: 1000\n")
    out = _run([QANATD, "--config", bad, "--check-config"])
    check(out.returncode == 2, "heartbeat over suspect: exit %d" % out.returncode)
    agent = _write(cluster, "agent.yaml", "insecure: true\nslots: 3\nbackend: [local]\n"
                   "labels: [zone=a, gpu=no]\njoin: SECRET-TOKEN\n")
    out = _run([AGENT, "--config", agent, "--check-config", "--slots", "5",
                "--data-dir", os.path.join(cluster.dir, "never-made")])
    check(out.returncode == 0, "agent check-config: %d %s" % (out.returncode, out.stderr))
    for line in ["slots: 5", "insecure: true", "  - zone=a", "  - gpu=no", "  - local"]:
        check(line in out.stdout.splitlines(), "no '%s' in:\n%s" % (line, out.stdout))
    check("SECRET-TOKEN" not in out.stdout, "the join token printed")
    check(not os.path.exists(os.path.join(cluster.dir, "never-made")),
          "--check-config made the data directory")


def _notify_socket(cluster):
    path = os.path.join(cluster.dir, "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(0.2)
    return sock, path


def _accepts(endpoint):
    host, port = endpoint[len("tcp://"):].rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=0.5):
            return True
    except OSError:
        return False


def _messages(sock, until, deadline_s, seen):
    """Reads datagrams into seen until one holds until (or the deadline)"""
    deadline = time.time() + deadline_s
    while time.time() < deadline:
        try:
            data = sock.recv(4096).decode()
        except socket.timeout:
            continue
        seen.append(data)
        if until in data:
            return True
    return False


def _spawn(cluster, name, argv, env):
    log = open(os.path.join(cluster.dir, name + ".log"), "ab")
    cluster.logs.append(log.name)
    return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, env=env, start_new_session=True)


def test_sd_notify_ready_watchdog_status_stopping(cluster):
    sock, path = _notify_socket(cluster)
    env = dict(os.environ, NOTIFY_SOCKET=path, WATCHDOG_USEC="400000")
    config = _write(cluster, "qanatd.yaml", _coordinator_yaml(cluster))
    qanatd = _spawn(cluster, "qanatd", [QANATD, "--config", config], env)
    cluster.coordinator = qanatd
    seen = []
    check(_messages(sock, "READY=1", 15, seen), "no READY=1 from qanatd: %s" % seen)
    check(_accepts(cluster.client_endpoint) and _accepts(cluster.agent_endpoint),
          "READY=1 before the sockets accept")
    check(_messages(sock, "WATCHDOG=1", 3, seen), "no WATCHDOG=1 from qanatd: %s" % seen)
    check(_messages(sock, "STATUS=", 12, seen) or any("STATUS=" in m for m in seen),
          "no STATUS= from qanatd: %s" % seen)
    status = [m for m in seen if m.startswith("STATUS=")]
    check(status and "runs active" in status[0] and "agents connected" in status[0],
          "status: %s" % status)
    # The agent too, from its own loop
    agent_env = dict(env, HOME=cluster.dir)
    agent = _spawn(cluster, "agent", [AGENT, "--insecure", "--coordinator",
                                      cluster.agent_endpoint, "--name", "a1", "--data-dir",
                                      os.path.join(cluster.dir, "a1")], agent_env)
    cluster.agents["a1"] = agent
    agent_seen = []
    check(_messages(sock, "READY=1", 15, agent_seen), "no READY=1 from the agent")
    check(_messages(sock, "attempts running", 15, agent_seen),
          "no STATUS from the agent: %s" % agent_seen)
    agent.send_signal(signal.SIGTERM)
    check(_messages(sock, "STOPPING=1", 10, agent_seen), "no STOPPING=1 from the agent")
    agent.wait(timeout=15)
    qanatd.send_signal(signal.SIGTERM)
    check(_messages(sock, "STOPPING=1", 10, seen), "no STOPPING=1 from qanatd: %s" % seen[-3:])
    qanatd.wait(timeout=15)
    sock.close()


def _log_lines(cluster, extra, env_extra=None, journal=False):
    """qanatd's stderr lines from a short life with extra options"""
    config = _write(cluster, "qanatd.yaml", _coordinator_yaml(cluster))
    err_path = os.path.join(cluster.dir, "stderr.log")
    err = open(err_path, "wb")
    env = dict(os.environ, **(env_extra or {}))
    if journal:
        st = os.fstat(err.fileno())
        env["JOURNAL_STREAM"] = "%d:%d" % (st.st_dev, st.st_ino)
    proc = subprocess.Popen([QANATD, "--config", config, "--no-sync", *extra],
                            stdout=subprocess.DEVNULL, stderr=err, env=env,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 15
    while time.time() < deadline and not _accepts(cluster.client_endpoint):
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=15)
    err.close()
    with open(err_path) as f:
        return [line for line in f.read().splitlines() if line]


def test_log_formats(cluster):
    text = _log_lines(cluster, [])
    check(text, "no log lines")
    import re
    pattern = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (debug|info|warning|error) "
                         r"[a-z-]+: ")
    check(all(pattern.match(line) for line in text), "text lines: %s" % text)
    lines = _log_lines(cluster, ["--log-format", "json"])
    objects = [json.loads(line) for line in lines]
    check(any(o["message"] == "stopped" and o["component"] == "qanatd"
              and o["level"] == "info" for o in objects), "json: %s" % lines)
    check(all(re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", o["time"])
              for o in objects), "json times: %s" % lines)
    journal = _log_lines(cluster, [], journal=True)
    check(journal and all(re.match(r"^<[3467]>\d{4}-", line) for line in journal),
          "journal lines: %s" % journal)
    check(any(line.startswith("<4>") for line in journal)
          and any(line.startswith("<6>") for line in journal),
          "journal priorities (a warning for --no-sync, info): %s" % journal)
    # JOURNAL_STREAM naming another file: no prefixes
    other = _log_lines(cluster, [], env_extra={"JOURNAL_STREAM": "1:1"})
    check(all(not line.startswith("<") for line in other), "prefix without the journal")


if __name__ == "__main__":
    main(globals())
