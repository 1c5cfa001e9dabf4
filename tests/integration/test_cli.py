"""The CLI as a user meets it: clear errors, validation with file:line:col,
--help everywhere, --json everywhere, cancel, and logs --follow."""
import json
import os
import signal
import subprocess
import time
import harness
from harness import check, task, QANAT


def test_unreachable_coordinator_is_a_clear_error_within_seconds(c):
    started = time.time()
    result = subprocess.run([QANAT, "--coordinator", "tcp://127.0.0.1:%d" % harness.free_port(),
                             "--timeout", "2", "runs"], capture_output=True, text=True, timeout=30)
    took = time.time() - started
    check(result.returncode == 5, "exit code %d" % result.returncode)
    check("cannot reach the coordinator" in result.stderr, "stderr: " + result.stderr)
    check(took < 10, "took %.1f s" % took)


def test_validate_reports_file_line_col(c):
    bad = c.write("bad.yaml", "name: bad\ntasks:\n  a:\n    run: echo a\n    need: [b]\n")
    result = subprocess.run([QANAT, "validate", bad], capture_output=True, text=True)
    check(result.returncode == 2, "exit %d" % result.returncode)
    check("%s:5:5:" % bad in result.stderr, "position: " + result.stderr)
    check("did you mean 'needs'" in result.stderr, "suggestion: " + result.stderr)
    cycle = c.write("cycle.yaml", "name: c\ntasks:\n  a:\n    run: x\n    needs: [b]\n  b:\n    run: y\n    needs: [a]\n")
    result = subprocess.run([QANAT, "validate", cycle], capture_output=True, text=True)
    check(result.returncode == 2 and "cycle" in result.stderr, "cycle: " + result.stderr)
    good = c.write("good.yaml", "name: good\ntasks:\n  a:\n    run: echo a\n")
    result = subprocess.run([QANAT, "validate", good], capture_output=True, text=True)
    check(result.returncode == 0 and "ok" in result.stdout, "valid file: " + result.stdout + result.stderr)


def _fields(data):
    """(field number, bytes) of a protobuf message's length-delimited
    fields; varints are skipped."""
    def varint(at):
        value = shift = 0
        while True:
            value |= (data[at] & 0x7F) << shift
            shift += 7
            at += 1
            if not data[at - 1] & 0x80:
                return value, at
    at = 0
    while at < len(data):
        key, at = varint(at)
        if key & 7 == 0:
            _, at = varint(at)
            continue
        size, at = varint(at)
        yield key >> 3, data[at:at + size]
        at += size


def _field(data, number):
    return next((value for field, value in _fields(data) if field == number), b"")


def _varint(n):
    out = b""
    while n > 0x7F:
        out += bytes([(n & 0x7F) | 0x80])
        n >>= 7
    return out + bytes([n])


def test_a_file_over_1_mib_gets_one_message_from_cli_and_coordinator(c):
    """The CLI refuses it before sending; a client that sends it anyway
    gets the same words from the coordinator (docs/workflow-format.md)."""
    import zmq
    from test_garbage import envelope, peer, read_cert
    c.start_coordinator()
    source = b"#" * (1024 * 1024 + 1)
    with open(c.write("huge.yaml", ""), "wb") as f:
        f.write(source)
    expected = "huge.yaml:1:1: file is larger than 1 MiB\n"
    for command in ("validate", "run"):
        result = subprocess.run([QANAT, "--coordinator", c.client_endpoint, "--key", c.key,
                                 command, "huge.yaml"], capture_output=True, text=True, cwd=c.dir)
        check((result.returncode, result.stderr) == (2, expected),
              "qanat %s: exit %d, %r" % (command, result.returncode, result.stderr))
    # StartRun{workflow: SubmitWorkflow{filename, source}} in Request{id: 7}
    def submessage(number, body):
        return bytes([(number << 3) | 2]) + _varint(len(body)) + body
    workflow = submessage(1, b"huge.yaml") + submessage(2, source)
    request = b"\x08\x07" + submessage(11, submessage(1, workflow))
    sock = peer(c.client_endpoint, read_cert(c.key))
    sock.send(envelope(1, 30, request))
    check(sock.poll(10000), "no reply from the coordinator")
    reply = _field(sock.recv(), 31)
    sock.close()
    message = _field(_field(reply, 10), 1).decode()
    check(message + "\n" == expected, "the coordinator said %r" % message)



def _qanat_with_key_only(c, *args, **popen):
    """qanat with no --coordinator: the endpoint comes from the key file."""
    env = dict(os.environ)
    env.pop("QANAT_COORDINATOR", None)
    return subprocess.Popen([QANAT, "--key", c.key, *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, **popen)


def test_ctrl_c_during_run_follow_stops_following_not_the_run(c):
    c.start_coordinator()
    c.start_agent("a1")
    wf = c.write("long.yaml", "name: long\ntasks:\n  slow:\n    run: echo working; sleep 3; echo done\n")
    follow = _qanat_with_key_only(c, "run", wf, "--follow")
    seen = b""
    while b"working" not in seen:
        line = follow.stdout.readline()
        check(line, "qanat run --follow ended early: %r" % seen)
        seen += line
    run_id = int(seen.split()[1])
    follow.send_signal(signal.SIGINT)
    out, err = follow.communicate(timeout=30)
    err = err.decode(errors="replace")
    check(follow.returncode == 130, "exit %d, stderr %r" % (follow.returncode, err))
    check(err == "\nrun %d continues (qanat cancel %d to stop it)\n" % (run_id, run_id),
          "stderr %r" % err)
    check(c.qanat_json("status", run_id)["status"] == "running", "the run stopped")
    check(c.wait_run(run_id)["status"] == "succeeded", "the run did not finish")


def test_an_unreachable_coordinator_is_named_as_the_key_file_names_it(c):
    c.start_coordinator()
    c.kill_coordinator()
    result = _qanat_with_key_only(c, "--timeout", "1", "runs")
    err = result.communicate(timeout=30)[1].decode(errors="replace")
    check(result.returncode == 5, "exit %d" % result.returncode)
    check("cannot reach the coordinator at %s: " % c.client_endpoint in err, "stderr %r" % err)

def _help_commands():
    """The commands `qanat --help` lists, from its Commands: section"""
    out = subprocess.run([QANAT, "--help"], capture_output=True, text=True).stdout
    section = out.split("Commands:\n")[1].split("\n\n")[0]
    return [line.split()[0] for line in section.splitlines() if line.startswith("  ") and line[2] != " "]


def test_help_on_every_command(c):
    result = subprocess.run([QANAT, "--help"], capture_output=True, text=True)
    check(result.returncode == 0 and result.stdout.startswith("Usage: qanat "), "qanat --help")
    commands = _help_commands()
    for command in ("run", "runs", "status", "logs", "metrics", "agents", "cancel", "validate",
                    "completion"):
        check(command in commands, "%s missing from help" % command)
    for command in commands:
        one = subprocess.run([QANAT, command, "--help"], capture_output=True, text=True)
        check(one.returncode == 0 and one.stdout.startswith("Usage: qanat " + command + " "),
              "%s --help: %s" % (command, one.stdout + one.stderr))
        check("3    not found" in one.stdout and "--coordinator ENDPOINT" in one.stdout,
              "%s --help lacks the exit codes or the global options" % command)
    # an option of another command is a usage error that names the command
    result = subprocess.run([QANAT, "runs", "--follow"], capture_output=True, text=True)
    check(result.returncode == 2 and "runs does not take --follow" in result.stderr,
          "runs --follow: %d %r" % (result.returncode, result.stderr))
    result = subprocess.run([QANAT, "--limit", "3", "status", "1"], capture_output=True, text=True)
    check(result.returncode == 2 and "status does not take --limit" in result.stderr,
          "--limit status: %d %r" % (result.returncode, result.stderr))
    result = subprocess.run([QANAT, "runs", "--limit", "many"], capture_output=True, text=True)
    check(result.returncode == 2 and "--limit takes a whole number" in result.stderr,
          "--limit many: %r" % result.stderr)


def test_cancel_kills_the_running_task(c):
    c.start_coordinator()
    c.start_agent("a1")
    pidfile = c.dir + "/pid"
    wf = c.write("long.yaml", """\
name: long
tasks:
  sleeper:
    run: sh -c 'echo $$ > %s; echo sleeping; exec sleep 300'
  after:
    needs: [sleeper]
    run: echo never
""" % pidfile)
    run_id = c.start_run(wf)
    c.wait_for(lambda: any(l["data"] == "sleeping" for l in c.logs_json(run_id)), "the task to start")
    pid = int(open(pidfile).read())
    out = c.qanat("cancel", run_id).stdout
    check("canceled" in out, "cancel output: " + out)
    run = c.wait_run(run_id)
    check(run["status"] == "canceled", "run %s" % run["status"])
    check(task(run, "sleeper")["status"] == "canceled", "sleeper")
    check(task(run, "after")["status"] == "skipped", "after")

    def gone():
        try:
            with open("/proc/%d/stat" % pid) as f:
                return f.read().split()[2] == "Z"
        except FileNotFoundError:
            return True
    c.wait_for(gone, "the sleeping process to be killed", timeout=15)
    result = c.qanat("cancel", run_id, check=False)
    check(result.returncode != 0 and "already ended" in result.stderr, "second cancel: " + result.stderr)


def test_logs_follow_and_json_everywhere(c):
    c.start_coordinator()
    c.start_agent("a1", {"env": "test"})
    wf = c.write("f.yaml", """\
name: follow
tasks:
  ticker:
    run: sh -c 'for i in 1 2 3 4 5; do echo "tick $i"; sleep 0.2; done'
""")
    run_id = c.start_run(wf)
    out = c.qanat("logs", run_id, "--follow", timeout=60).stdout
    check(all(("tick %d" % i) in out for i in range(1, 6)), "follow output:\n" + out)
    for args in (["runs"], ["runs", "follow"], ["status", run_id], ["agents"], ["metrics", run_id],
                 ["stats"]):
        json.loads(c.qanat(*args, "--json").stdout)
    agents = c.qanat_json("agents")
    check(agents[0]["labels"] == {"env": "test"}, "labels %s" % agents)
    check(agents[0]["capacity"] == 2, "slots %s" % agents)
    runs = c.qanat("runs").stdout
    check("follow" in runs and "succeeded" in runs, "runs table:\n" + runs)
    missing = c.qanat("status", "999", check=False)
    check(missing.returncode == 3 and "no run 999" in missing.stderr, "missing run: " + missing.stderr)
    bad_param = c.qanat("run", wf, "--param", "nope=1", check=False)
    check(bad_param.returncode != 0 and "unknown parameter 'nope'" in bad_param.stderr,
          "unknown param: " + bad_param.stderr)


if __name__ == "__main__":
    harness.main(globals())
