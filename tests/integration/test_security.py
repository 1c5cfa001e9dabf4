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
    c.qanat("user", "add", "bob", "--role", "user", "--out", bob)
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


# ---- who may use a secret (access lists) ----

STEAL = ("name: %s\ntasks:\n  steal:\n"
         "    env: {P: \"${{ secrets.%s }}\"}\n"
         "    run: sh -c 'echo \"$P\" | rev; echo \"$P\" | base64'\n"
         "    retries: 0\n")


def as_user(c, key, fn, *args, **kwargs):
    """fn(c, ...) with the CLI using key instead of the admin's."""
    admin = c.key
    c.key = key
    try:
        return fn(*args, **kwargs)
    finally:
        c.key = admin


def add_user(c, name, role="user"):
    path = os.path.join(c.dir, name + ".key")
    c.qanat("user", "add", name, "--role", role, "--out", path)
    return path


def set_secret(c, name, value, *args):
    r = qanat_stdin(c, value, "secret", "set", name, *args)
    check(r.returncode == 0, "secret set %s: %s" % (name, r.stderr))
    return r


def refused_run(c, key, wf, message):
    """Starts wf as key's user, which must be refused with message."""
    r = as_user(c, key, c.qanat, "run", wf, check=False)
    check(r.returncode != 0, "the run started: %s" % r.stdout)
    check(message in r.stderr, "refusal: %r, expected %r" % (r.stderr, message))
    return r


def everything_written(c):
    """The text of every log this cluster wrote, and the stores' dumps."""
    text = ""
    for path in c.logs:
        with open(path, errors="replace") as f:
            text += f.read()
    for store in [os.path.join(c.dir, "coordinator")] + [
            os.path.join(c.agent_dir(a), "spool") for a in c.agents]:
        if os.path.exists(os.path.join(store, "data.mdb")):
            text += subprocess.run(["mdb_dump", "-a", "-p", store], capture_output=True,
                                   text=True, errors="replace").stdout
    return text


def test_a_user_cannot_use_a_secret_until_allowed(c):
    value = "hunter2-topsecret"
    c.start_coordinator()
    c.start_agent("a1")
    set_secret(c, "DBPASS", value)
    eve = add_user(c, "eve")
    wf = c.write("steal.yaml", STEAL % ("steal", "DBPASS"))
    r = refused_run(c, eve, wf, "run refused: secret DBPASS may not be used by user eve "
                    "(allowed: role:admin)")
    check(value not in r.stdout + r.stderr, "the value is in the refusal")
    follow = as_user(c, eve, c.qanat, "run", wf, "--follow", check=False)
    check(follow.returncode != 0 and "run refused" in follow.stderr, "--follow: %s" % follow)
    # Nothing stored, nothing dispatched, nothing logged
    check(c.qanat_json("runs") == [], "runs: %s" % c.qanat_json("runs"))
    time.sleep(0.5)
    check(not c.task_processes(), "a task runs: %s" % c.task_processes())
    check("steal" not in agent_log(c, "a1"), "the agent heard of it:\n" + agent_log(c, "a1"))
    for text in (value, value[::-1]):
        check(text not in everything_written(c), "%r was written somewhere" % text)

    # Allowed by name, she can (and so can a rerun of the same file)
    r = c.qanat("secret", "allow", "DBPASS", "user:eve")
    check("user:eve" in r.stdout, "secret allow: %s" % r.stdout)
    run = c.wait_run(as_user(c, eve, c.start_run, wf))
    check(run["status"] == "succeeded", "eve's allowed run: %s" % run)
    check(value[::-1] in c.qanat("logs", run["run_id"]).stdout, "the task did not get it")
    # The admins are not in user:eve's list
    refused_run(c, c.key, wf, "run refused: secret DBPASS may not be used by user admin "
                "(allowed: user:eve)")


def test_set_with_allow_and_workflow_scope(c):
    c.start_coordinator()
    c.start_agent("a1")
    eve = add_user(c, "eve")
    set_secret(c, "MLKEY", "ml-5ecret-value", "--allow", "user:eve,role:admin,workflow:ml-pipeline")
    ok = c.write("ml.yaml", STEAL % ("ml-pipeline", "MLKEY"))
    other = c.write("other.yaml", STEAL % ("scraper", "MLKEY"))
    run = c.wait_run(as_user(c, eve, c.start_run, ok))
    check(run["status"] == "succeeded", "the ml-pipeline run: %s" % run)
    runs_before = len(c.qanat_json("runs"))
    refused_run(c, eve, other, "run refused: secret MLKEY may not be used by workflow scraper "
                "(allowed: user:eve, role:admin, workflow:ml-pipeline)")
    # The admin too: the workflow scope holds for everyone
    refused_run(c, c.key, other, "may not be used by workflow scraper")
    check(len(c.qanat_json("runs")) == runs_before, "a refused run was stored")
    # A role entry: every user
    set_secret(c, "SHARED", "shared-value", "--allow", "role:user")
    run = c.wait_run(as_user(c, eve, c.start_run, c.write("s.yaml", STEAL % ("s", "SHARED"))))
    check(run["status"] == "succeeded", "role:user run: %s" % run)
    # Bad entries are refused, the list is unchanged
    for bad in ("bob", "role:root", "user:", "workflow:a/b", "team:x"):
        r = qanat_stdin(c, "x", "secret", "set", "MLKEY", "--allow", bad)
        check(r.returncode != 0 and "access list" in r.stderr, "--allow %s: %s" % (bad, r.stderr))
    r = c.qanat("secret", "allow", "NOSUCH", "user:eve", check=False)
    check(r.returncode != 0 and "no secret named NOSUCH" in r.stderr, r.stderr)


def test_secret_list_shows_access_never_values_and_only_admins_change_it(c):
    c.start_coordinator()
    c.start_agent("a1", {"env": "prod"})
    eve = add_user(c, "eve")
    set_secret(c, "DBPASS", "db-value-1234")
    set_secret(c, "MLKEY", "ml-value-5678", "--allow", "user:eve,workflow:ml-pipeline")
    text = c.qanat("secret", "list").stdout
    listed = c.qanat_json("secret", "list")
    for out in (text, str(listed)):
        check("db-value-1234" not in out and "ml-value-5678" not in out, "a value is listed")
    check(listed == [{"name": "DBPASS", "allow": ["role:admin"], "agents": {}},
                     {"name": "MLKEY", "allow": ["user:eve", "workflow:ml-pipeline"],
                      "agents": {}}], "secret list --json: %s" % listed)
    lines = text.splitlines()
    check(lines[0].split() == ["DBPASS", "role:admin"], "text: %r" % text)
    check(lines[1].split() == ["MLKEY", "user:eve,workflow:ml-pipeline"], "text: %r" % text)
    # Re-setting the value keeps the list
    set_secret(c, "MLKEY", "ml-value-rotated")
    check(c.qanat_json("secret", "list")[1]["allow"] == ["user:eve", "workflow:ml-pipeline"],
          "the list changed with the value")
    # Eve may not change a list, nor list them
    for args in (["secret", "allow", "DBPASS", "user:eve"], ["secret", "list"]):
        r = as_user(c, eve, c.qanat, *args, check=False)
        check(r.returncode != 0 and "permission denied: needs role admin" in r.stderr,
              "eve %s: %s" % (args, r.stderr))
    r = as_user(c, eve, qanat_stdin, c, "x", "secret", "set", "DBPASS", "--allow", "user:eve")
    check(r.returncode != 0 and "permission denied: needs role admin" in r.stderr, r.stderr)
    check(c.qanat_json("secret", "list")[0]["allow"] == ["role:admin"], "eve changed the list")


def test_a_list_narrowed_after_the_start_stops_later_tasks(c):
    c.start_coordinator()
    c.start_agent("a1")
    eve = add_user(c, "eve")
    set_secret(c, "DBPASS", "narrowed-value", "--allow", "user:eve")
    wf = c.write("two.yaml", "name: two\ntasks:\n  first:\n    run: sleep 2\n"
                 "  second:\n    needs: first\n    env: {P: \"${{ secrets.DBPASS }}\"}\n"
                 "    run: echo got $P\n")
    run_id = as_user(c, eve, c.start_run, wf)
    c.qanat("secret", "allow", "DBPASS", "role:admin")
    run = c.wait_run(run_id)
    second = task(run, "second")
    check(run["status"] == "failed" and second["status"] == "failed", "run: %s" % run)
    check(second["attempts"] == [], "the second task was dispatched: %s" % second)
    check("cannot start: secret DBPASS may not be used by user eve (allowed: role:admin)"
          in second["waiting_reason"], "reason: %s" % second["waiting_reason"])
    check("narrowed-value" not in everything_written(c), "the value was written")


def test_a_secret_scoped_to_agent_labels(c):
    c.start_coordinator()
    c.start_agent("dev", {"env": "dev"})
    c.start_agent("prod", {"env": "prod"})
    set_secret(c, "PRODKEY", "prod-only-value", "--allow", "role:admin", "--agents", "env=prod")
    check(c.qanat_json("secret", "list")[0]["agents"] == {"env": "prod"}, "agents not listed")
    anywhere = c.write("any.yaml", STEAL % ("anywhere", "PRODKEY"))
    refused_run(c, c.key, anywhere, "run refused: secret PRODKEY is only given to agents "
                "labelled env=prod: task steal does not select env=prod")
    pinned = c.write("prod.yaml", (STEAL % ("pinned", "PRODKEY")) + "    on: {env: prod}\n")
    run = c.wait_run(c.start_run(pinned))
    check(run["status"] == "succeeded", "pinned run: %s" % run)
    check(task(run, "steal")["attempts"][0]["agent"] == "prod", "ran on %s" % run)
    # Labels added after the start stop the tasks not handed out yet
    two = c.write("two.yaml", "name: two\ntasks:\n  first:\n    run: sleep 2\n"
                  "  second:\n    needs: first\n    on: {env: prod}\n"
                  "    env: {P: \"${{ secrets.PRODKEY }}\"}\n    run: echo got $P\n")
    run_id = c.start_run(two)
    c.qanat("secret", "allow", "PRODKEY", "role:admin", "--agents", "env=prod,zone=eu")
    run = c.wait_run(run_id)
    second = task(run, "second")
    check(second["status"] == "failed" and second["attempts"] == [], "second: %s" % second)
    check("cannot start: secret PRODKEY is only given to agents labelled env=prod,zone=eu: "
          "agent prod does not carry zone=eu" in second["waiting_reason"], second["waiting_reason"])


if __name__ == "__main__":
    main(globals())
