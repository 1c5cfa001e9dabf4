"""Security: enrolment with join tokens, roles, revocation, secrets and
their redaction (docs/security.md), with a real CURVE coordinator and
real agents."""
import os
import subprocess
import time

import zmq

import harness
from harness import check, main, task

ENROL_TIMEOUT = ["--enrol-timeout", "3"]


def wait_exit(c, name, timeout=15):
    """Waits for agent name to exit; returns its exit code."""
    try:
        return c.agents[name].wait(timeout)
    except subprocess.TimeoutExpired:
        raise harness.TestFailure("agent %s still runs after %d s" % (name, timeout))


def agent_log(c, name):
    with open(os.path.join(c.dir, "agent-%s.log" % name), errors="replace") as f:
        return f.read()


def forge(token, coordinator_key=None, secret_key=None):
    """The token with its coordinator key or secret key replaced."""
    prefix, rest = token[:5], token[5:]
    check(prefix == "qnj1-", "token format: %r" % token)
    coord, secret, endpoint = rest[:40], rest[40:80], rest[80:]
    return prefix + (coordinator_key or coord) + (secret_key or secret) + endpoint


def qanat_stdin(c, text, *args):
    """The CLI as c.qanat runs it, with text on its stdin."""
    return subprocess.run([harness.QANAT, "--coordinator", c.client_endpoint, "--key", c.key,
                           "--timeout", "5", *args], input=text, capture_output=True,
                          text=True, timeout=60)


def z85(key):
    return key.decode() if isinstance(key, bytes) else key


def test_token_with_the_wrong_coordinator_key_cannot_connect(c):
    c.start_coordinator()
    token = forge(c.create_token(), coordinator_key=z85(zmq.curve_keypair()[0]))
    c.start_agent("a1", wait=False, token=token, extra=ENROL_TIMEOUT)
    check(wait_exit(c, "a1") == 1, "the agent did not exit 1")
    check("could not reach the coordinator" in agent_log(c, "a1"), agent_log(c, "a1"))
    check(not os.path.exists(os.path.join(c.agent_dir("a1"), "agent.key")), "agent.key written")
    check(not any(a["name"] == "a1" for a in c.qanat_json("agents")), "a1 is listed")


def test_token_key_never_admitted_is_refused(c):
    c.start_coordinator()
    token = forge(c.create_token(), secret_key=z85(zmq.curve_keypair()[1]))
    started = time.time()
    c.start_agent("a1", wait=False, token=token, extra=ENROL_TIMEOUT)
    check(wait_exit(c, "a1") == 1, "the agent did not exit 1")
    log = agent_log(c, "a1")
    check("enrolment refused: the coordinator does not admit this join token" in log, log)
    print("refused in %.1f s" % (time.time() - started))


def test_used_token_is_refused_for_a_second_agent(c):
    c.start_coordinator()
    token = c.create_token({"env": "x"})
    c.start_agent("a1", {"env": "x"}, token=token)
    c.start_agent("a2", {"env": "x"}, token=token, wait=False, extra=ENROL_TIMEOUT)
    check(wait_exit(c, "a2") == 1, "the second agent did not exit 1")
    check("enrolment refused" in agent_log(c, "a2"), agent_log(c, "a2"))
    names = [a["name"] for a in c.qanat_json("agents")]
    check(names == ["a1"], "agents: %s" % names)


def test_expired_token_is_refused(c):
    c.start_coordinator()
    token = c.create_token(ttl="1s")
    time.sleep(2)
    c.start_agent("a1", token=token, wait=False, extra=ENROL_TIMEOUT)
    check(wait_exit(c, "a1") == 1, "the agent did not exit 1")
    log = agent_log(c, "a1")
    check("enrolment refused" in log or "could not reach" in log, log)


def test_labels_beyond_the_token_are_refused(c):
    c.start_coordinator()
    token = c.create_token({"env": "x"})
    c.start_agent("a1", {"env": "x", "gpu": "h100"}, token=token, wait=False)
    check(wait_exit(c, "a1") == 1, "the agent did not exit 1")
    check("enrolment refused: label gpu=h100 is not granted by the join token"
          in agent_log(c, "a1"), agent_log(c, "a1"))


def test_restart_needs_no_token_and_keeps_its_key(c):
    c.start_coordinator()
    c.start_agent("a1", {"env": "x"})
    key_path = os.path.join(c.agent_dir("a1"), "agent.key")
    check(os.stat(key_path).st_mode & 0o777 == 0o600, "agent.key is not 0600")
    with open(key_path) as f:
        before = f.read()
    c.signal_agent("a1", 15)
    check(wait_exit(c, "a1") == 0, "the agent did not stop cleanly")
    c.start_agent("a1", {"env": "x"})        # no token: agent.key exists
    with open(key_path) as f:
        check(f.read() == before, "agent.key changed")
    agent = [a for a in c.qanat_json("agents") if a["name"] == "a1"][0]
    check(agent["labels"] == {"env": "x"}, "labels: %s" % agent["labels"])


def test_a_user_cannot_create_tokens_or_read_secrets_but_can_run(c):
    c.start_coordinator()
    c.start_agent("a1")
    bob = os.path.join(c.dir, "bob.key")
    c.qanat("user", "add", "bob", "--role", "user", "-o", bob)
    admin = c.key
    c.key = bob
    try:
        for args in (["token", "create"], ["secret", "list"], ["agent", "revoke", "a1"]):
            r = c.qanat(*args, check=False)
            check(r.returncode != 0, "bob could run %s" % args)
            check("permission denied: needs role admin" in r.stderr, r.stderr)
        r = qanat_stdin(c, "x", "secret", "set", "X")
        check("permission denied: needs role admin" in r.stderr, r.stderr)
        wf = c.write("ok.yaml", "name: ok\ntasks:\n  t:\n    run: echo hello from bob\n")
        run = c.wait_run(c.start_run(wf))
        check(run["status"] == "succeeded", "bob's run: %s" % run["status"])
    finally:
        c.key = admin
    # An admin may
    check(c.create_token().startswith("qnj1-"), "admin got no token")
    c.qanat("secret", "list")


def test_revoke_cuts_the_agent_off_at_once(c):
    c.start_coordinator()
    c.start_agent("a1")
    wf = c.write("long.yaml", "name: long\ntasks:\n  sleep:\n    run: sleep 60\n"
                 "    retries: 0\n")
    run_id = c.start_run(wf)
    c.wait_for(lambda: task(c.qanat_json("status", run_id), "sleep")["status"] == "running",
               "the task to run")
    time.sleep(0.5)
    started = time.time()
    c.qanat("agent", "revoke", "a1")
    check(wait_exit(c, "a1", 5) == 1, "the agent did not exit 1")
    took = time.time() - started
    print("agent exited %.2f s after the revocation" % took)
    check(took < 2.5, "the agent took %.1f s to go" % took)
    run = c.wait_run(run_id, 10)
    attempt = task(run, "sleep")["attempts"][0]
    check(attempt["reason"] == "agent revoked", "attempt ended: %s" % attempt)
    check("the coordinator refuses this agent's key (revoked?)" in agent_log(c, "a1"),
          agent_log(c, "a1"))
    check(not c.task_processes(), "the task still runs: %s" % c.task_processes())
    # Restarted, it is refused at the handshake and stops
    c.start_agent("a1", wait=False)
    check(wait_exit(c, "a1") == 1, "the revoked agent did not exit 1 at restart")


def holds(path, value):
    with open(path, "rb") as f:
        return value in f.read()


def test_secrets_are_redacted_and_never_stored_in_clear(c):
    value = "hunter2-0b5cure-V4lue"
    c.start_coordinator()
    c.start_agent("a1")
    r = qanat_stdin(c, value + "\n", "secret", "set", "TOKEN")
    check(r.returncode == 0, "secret set: %s" % r.stderr)
    wf = c.write("sec.yaml", "name: sec\ntasks:\n  show:\n"
                 "    env: {MY: \"${{ secrets.TOKEN }}\"}\n"
                 "    run: sh -c 'echo \"the secret is $MY\"; echo \"err $MY\" >&2; exit 2'\n"
                 "    retries: 0\n")
    run_id = c.start_run(wf)
    # Followed while it runs, and stored
    follow = c.qanat("logs", run_id, "--follow", check=False, timeout=30)
    run = c.wait_run(run_id)
    stored = c.qanat("logs", run_id).stdout
    for text in (follow.stdout, stored):
        check("the secret is ***" in text, "no *** in the logs:\n" + text)
        check(value not in text, "the secret is in the logs:\n" + text)
    attempt = task(run, "show")["attempts"][0]
    check("err ***" in attempt["stack_trace"], "stack trace: %r" % attempt["stack_trace"])
    check(value not in str(run), "the secret is in the run")

    # Neither the coordinator's store nor the agent's spool holds it
    c.stop()
    for store in (os.path.join(c.dir, "coordinator"), os.path.join(c.agent_dir("a1"), "spool")):
        dump = subprocess.run(["mdb_dump", "-a", "-p", store], capture_output=True, text=True,
                              errors="replace")
        check(dump.returncode == 0, "mdb_dump %s: %s" % (store, dump.stderr))
        check(value not in dump.stdout, "the secret is in %s" % store)
        check(not holds(os.path.join(store, "data.mdb"), value.encode()),
              "the secret is in %s/data.mdb" % store)
    coordinator_dump = subprocess.run(["mdb_dump", "-a", "-p", os.path.join(c.dir, "coordinator")],
                                      capture_output=True, text=True, errors="replace").stdout
    check("the secret is ***" in coordinator_dump, "the redacted log is not in the store")


def test_an_insecure_coordinator_hands_out_no_secrets(c):
    c.start_coordinator(secure=False)
    c.start_agent("a1")
    # Whether it stores one or not, it never hands it out
    r = qanat_stdin(c, "x", "secret", "set", "TOKEN")
    print("secret set on an insecure coordinator: exit %d %s" % (r.returncode, r.stderr.strip()))
    wf = c.write("sec.yaml", "name: sec\ntasks:\n  show:\n"
                 "    env: {MY: \"${{ secrets.TOKEN }}\"}\n"
                 "    run: echo never\n")
    run = c.wait_run(c.start_run(wf))
    t = task(run, "show")
    check(run["status"] == "failed" and t["status"] == "failed", "run: %s" % run)
    check("secrets are only given out over CURVE" in t["waiting_reason"], "reason: %s" % t)


if __name__ == "__main__":
    main(globals())
