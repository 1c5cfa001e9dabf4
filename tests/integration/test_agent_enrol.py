"""`qanat-agent enrol` and the agent bundle (docs/install.md):
one join token with --uses enrols several agents, each under its own
name, and each then starts without a token; the bundle made by
packaging/bundle/make-bundle.sh (`make agent-bundle`) is unpacked in a
temporary $HOME by a user who is not root, enrols, runs with --daemon
(pid file) and runs a task, with its libraries from the bundle;
packaging/nodes/install-agents.sh installs the bundle on two "hosts"
(ssh and scp replaced by local stand-ins, each host its own $HOME and
host name) with one token, and both agents run tasks."""
import os
import pwd
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import AGENT, SRC, check, main  # noqa: E402

WORKFLOW = """name: whoami
tasks:
  who:
    run: id -un
"""


def _run_workflow(cluster):
    wf_dir = os.path.join(cluster.dir, "wf")
    os.makedirs(wf_dir, exist_ok=True)
    path = os.path.join(wf_dir, "workflow.yaml")
    with open(path, "w") as f:
        f.write(WORKFLOW)
    run = cluster.wait_run(cluster.start_run(path), timeout=30)
    check(run["status"] == "succeeded", "run ended %s" % run["status"])
    return " ".join(line.get("data", "") for line in cluster.logs_json(run["run_id"]))


def test_one_token_enrols_many_agents(cluster):
    cluster.start_coordinator()
    token = cluster.create_token(uses=2)
    for name in ("node-a", "node-b"):
        out = subprocess.run([AGENT, "enrol", "--token", token, "--name", name,
                              "--data-dir", cluster.agent_dir(name), "--labels", "rack=r1"],
                             capture_output=True, text=True, timeout=30)
        check(out.returncode == 0, "enrol %s: %s" % (name, out.stderr))
        check("enrolled as %s" % name in out.stdout, "enrol said %r" % out.stdout)
        check(os.path.exists(os.path.join(cluster.agent_dir(name), "agent.key")), "no key")
    third = subprocess.run([AGENT, "enrol", "--token", token, "--name", "node-c",
                            "--data-dir", cluster.agent_dir("node-c")],
                           capture_output=True, text=True, timeout=30)
    check(third.returncode == 1 and "used up" in third.stderr,
          "a third enrolment with a 2-use token: %d %r" % (third.returncode, third.stderr))
    again = subprocess.run([AGENT, "enrol", "--token", token, "--data-dir",
                            cluster.agent_dir("node-a")], capture_output=True, text=True, timeout=30)
    check(again.returncode == 1 and "already enrolled" in again.stderr,
          "enrolling an enrolled agent again: %r" % again.stderr)
    for bad in (["--token"], ["--slots", "2", "--token", "x"], ["--user", "root", "--token", "x"]
                if os.geteuid() != 0 else ["--user", "no-such-user-here", "--token", "x"]):
        out = subprocess.run([AGENT, "enrol", *bad], capture_output=True, text=True, timeout=10)
        check(out.returncode == 1 and "qanat-agent" in out.stderr, "enrol %s: %r" % (bad, out.stderr))
    # Both start without a token, as enrolled, with the labels granted
    for name in ("node-a", "node-b"):
        cluster.start_agent(name)
    agents = {a["name"]: a for a in cluster.qanat_json("agents")}
    check(set(agents) == {"node-a", "node-b"}, "agents: %s" % sorted(agents))
    check(all(a["connected"] for a in agents.values()), "not all connected")
    _run_workflow(cluster)


def test_an_agent_enrolled_in_the_second_of_its_token_is_admitted(cluster):
    # A one-use token (t + 8 hex) used up and an agent of a name as long
    # enrolled in the same second leave the allow-list folder's time, file
    # count and size as they were: the ZAP handler must still read it again
    cluster.start_coordinator()
    for name in ("workspace", "agent-901", "agent-902"):
        token = cluster.create_token(uses=1)
        cluster.start_agent(name, token=token, wait=False)
        cluster.wait_for(lambda: any(a["name"] == name and a["connected"]
                                     for a in cluster.qanat_json("agents")),
                         "agent %s to register" % name, timeout=10)


def _as_user(argv, home, user):
    """argv run as user (nobody when we are root; else ourselves), with
    only HOME and PATH from the environment."""
    env = {"HOME": home, "PATH": "/usr/bin:/bin"}
    if user:
        argv = ["setpriv", "--reuid", user, "--regid", str(pwd.getpwnam(user).pw_gid),
                "--clear-groups", "--", *argv]
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, env=env)


def test_bundle_runs_from_home_without_root(cluster):
    cluster.start_coordinator()
    made = subprocess.run(["sh", os.path.join(SRC, "packaging", "bundle", "make-bundle.sh"),
                           AGENT, "9.9.9", cluster.dir], capture_output=True, text=True, timeout=60)
    check(made.returncode == 0, "make-bundle.sh: %s" % made.stderr)
    bundle = made.stdout.strip().splitlines()[-1]
    check(os.path.basename(bundle).startswith("qanat-agent-9.9.9-linux-"), bundle)
    user = "nobody" if os.geteuid() == 0 else None
    home = os.path.join("/tmp", "qanat-bundle-home-%d" % os.getpid())
    shutil.rmtree(home, ignore_errors=True)
    os.makedirs(home, mode=0o700)
    try:
        shutil.copy(bundle, home)
        if user:
            pw = pwd.getpwnam(user)
            for root, dirs, files in os.walk(home):
                for p in [root] + [os.path.join(root, f) for f in files]:
                    os.chown(p, pw.pw_uid, pw.pw_gid)
        prefix = os.path.join(home, ".local", "lib", "qanat-agent")
        agent = os.path.join(prefix, "bin", "qanat-agent")
        out = _as_user(["sh", "-c", 'mkdir -p "$1" && tar -xzf "$2" --strip-components=1 -C "$1"',
                        "-", prefix, os.path.join(home, os.path.basename(bundle))], home, user)
        check(out.returncode == 0, "unpack: %s" % out.stderr)
        # Its libraries come from the bundle, not from this machine
        ldd = subprocess.run(["ldd", agent], capture_output=True, text=True).stdout
        czmq = [line for line in ldd.splitlines() if "libczmq" in line]
        check(czmq and prefix in czmq[0], "libczmq not from the bundle: %s" % ldd)
        token = cluster.create_token()
        out = _as_user([agent, "enrol", "--token", token, "--name", "login1"], home, user)
        check(out.returncode == 0, "enrol from the bundle: %s" % out.stderr)
        check(os.path.exists(os.path.join(home, ".qanat", "agent", "agent.key")), "no key in $HOME")
        out = _as_user([agent, "--daemon", "--slots", "1"], home, user)
        check(out.returncode == 0 and "pid" in out.stdout, "--daemon: %r %r" % (out.stdout, out.stderr))
        pid_file = os.path.join(home, ".qanat", "agent", "agent.pid")
        pid = int(open(pid_file).read())
        try:
            cluster.wait_for(lambda: any(a["name"] == "login1" and a["connected"]
                                         for a in cluster.qanat_json("agents")),
                             "the bundled agent to connect")
            second = _as_user([agent, "--daemon"], home, user)
            check(second.returncode == 1 and "already running" in second.stderr,
                  "a second --daemon: %r" % second.stderr)
            logs = _run_workflow(cluster)
            expected = user or pwd.getpwuid(os.geteuid()).pw_name
            check(expected in logs, "the task ran as %r, not %s" % (logs, expected))
        finally:
            os.kill(pid, 15)
            deadline = time.time() + 10
            while time.time() < deadline and os.path.exists(pid_file):
                time.sleep(0.1)
        check(not os.path.exists(pid_file), "the pid file outlived the agent")
    finally:
        shutil.rmtree(home, ignore_errors=True)


SSH_SHIM = """#!/bin/sh
# ssh HOST COMMAND...: runs COMMAND as ssh would (one string for a shell),
# in a UTS namespace named HOST, with HOST's own $HOME
host=$1; shift
export HOME=%(homes)s/$host PATH=/usr/bin:/bin
mkdir -p "$HOME"
exec unshare --uts sh -c 'hostname "$0"; exec sh -c "$1"' "$host" "$*"
"""
SCP_SHIM = """#!/bin/sh
# scp -q FILE HOST:PATH
cp "$2" "${3#*:}"
"""


def test_install_agents_script_on_two_hosts(cluster):
    if os.geteuid() != 0:
        print("skipped: the host stand-ins need root (unshare --uts)")
        return
    cluster.start_coordinator()
    made = subprocess.run(["sh", os.path.join(SRC, "packaging", "bundle", "make-bundle.sh"),
                           AGENT, "9.9.9", cluster.dir], capture_output=True, text=True, timeout=60)
    check(made.returncode == 0, "make-bundle.sh: %s" % made.stderr)
    bundle = made.stdout.strip().splitlines()[-1]
    homes = os.path.join(cluster.dir, "homes")
    shims = {}
    for name, text in (("ssh", SSH_SHIM % {"homes": homes}), ("scp", SCP_SHIM)):
        shims[name] = os.path.join(cluster.dir, "fake-" + name)
        with open(shims[name], "w") as f:
            f.write(text)
        os.chmod(shims[name], 0o755)
    token = cluster.create_token(uses=2)
    env = dict(os.environ, SSH=shims["ssh"], SCP=shims["scp"])
    pids = []

    def install():
        out = subprocess.run(["sh", os.path.join(SRC, "packaging", "nodes", "install-agents.sh"),
                              "--token", token, "--bundle", bundle, "--labels", "site=hpc",
                              "hpc-n1", "hpc-n2"], capture_output=True, text=True, timeout=60, env=env)
        for host in ("hpc-n1", "hpc-n2"):
            pid_file = os.path.join(homes, host, ".qanat", "agent", "agent.pid")
            if os.path.exists(pid_file):
                pids.append(int(open(pid_file).read()))
        check(out.returncode == 0, "install-agents.sh: %r %r" % (out.stdout, out.stderr))
        check("hpc-n1 ok" in out.stdout and "hpc-n2 ok" in out.stdout, out.stdout)
        cluster.wait_for(lambda: {a["name"] for a in cluster.qanat_json("agents") if a["connected"]}
                         == {"hpc-n1", "hpc-n2"}, "both hosts' agents to connect")
        _run_workflow(cluster)

    try:
        install()
        # Again (an upgrade): the token is used up, the enrolled nodes keep
        # their identities and their agents are restarted
        first = list(pids)
        install()
        check(len(pids) == 4 and not set(pids[2:]) & set(first), "not restarted: %s" % pids)
    finally:
        for pid in pids:
            try:
                os.kill(pid, 15)
            except ProcessLookupError:
                pass
        time.sleep(0.5)


if __name__ == "__main__":
    main(globals())
