"""Stored workflows through the CLI: publish (new, then unchanged; with
its code, which run NAME gets), the
workflows table, show and diff of versions, run NAME and NAME@V, run -
from stdin, an unknown name, and rerun (same version and params; with
--failed-only the tasks that succeeded are cached from the old run)."""
import os
import subprocess
import harness
from harness import check, task, QANAT

V1 = "name: stored\nparams:\n  who: {default: world}\ntasks:\n  a:\n    run: echo hello ${{ params.who }}\n"
V2 = V1 + "  b:\n    run: echo two\n    needs: [a]\n"


def _start(c):
    c.start_coordinator()
    c.start_agent("a1")


def test_publish_twice_is_unchanged_and_listed(c):
    _start(c)
    path = c.write("stored.yaml", V1)
    out = c.qanat("workflow", "publish", path).stdout
    check(out.strip() == "stored v1 (new)", "first publish: " + out)
    out = c.qanat("workflow", "publish", path).stdout
    check(out.strip() == "stored v1 (unchanged)", "second publish: " + out)
    c.write("stored.yaml", V2)
    published = c.qanat_json("workflow", "publish", path)
    check({k: published[k] for k in ("name", "version", "created")}
          == {"name": "stored", "version": 2, "created": True}, "v2 json: %r" % published)
    check(published["code"].startswith("dir:"), "v2 code: %r" % published)
    # Nothing ran
    check(c.qanat_json("runs") == [], "publish started a run")
    listed = c.qanat_json("workflows")
    check(len(listed) == 1 and listed[0]["name"] == "stored" and listed[0]["latest"] == 2
          and listed[0]["runs"] == 0 and listed[0]["created_us"] > 0, "workflows: %r" % listed)
    table = c.qanat("workflows").stdout.splitlines()
    check(table[0].split() == ["WORKFLOW", "LATEST", "CREATED", "RUNS"], "header: %r" % table)
    check(table[1].split()[:2] == ["stored", "v2"] and table[1].split()[-1] == "0",
          "row: %r" % table)
    # An invalid file is refused here, with its position
    bad = c.write("bad.yaml", "name: bad\ntasks:\n  a:\n    run: x\n    need: [b]\n")
    result = c.qanat("workflow", "publish", bad, check=False)
    check(result.returncode == 2 and "%s:5:5:" % bad in result.stderr, "bad: " + result.stderr)


def test_show_and_diff_versions(c):
    _start(c)
    path = c.write("stored.yaml", V1)
    c.qanat("workflow", "publish", path)
    c.write("stored.yaml", V2)
    c.qanat("workflow", "publish", path)
    check(c.qanat("workflow", "show", "stored").stdout == V2, "show newest")
    check(c.qanat("workflow", "show", "stored@1").stdout == V1, "show v1")
    shown = c.qanat_json("workflow", "show", "stored@1")
    check(shown["source"] == V1 and shown["version"] == 1 and shown["latest"] == 2, "json show")
    diff = c.qanat("workflow", "diff", "stored", "1", "2").stdout
    check(diff.startswith("--- stored v1\n+++ stored v2\n"), "diff header: " + diff)
    check("+  b:\n+    run: echo two\n+    needs: [a]\n" in diff, "diff body: " + diff)
    check(c.qanat("workflow", "diff", "stored", "v2", "2").stdout == "", "no difference")
    result = c.qanat("workflow", "show", "stored@7", check=False)
    check(result.returncode == 3 and "no stored workflow stored@7" in result.stderr,
          "missing version: %d %s" % (result.returncode, result.stderr))
    result = c.qanat("workflow", "diff", "stored", "1", "x", check=False)
    check(result.returncode == 2, "bad version: %d" % result.returncode)


def test_run_by_name_and_version(c):
    _start(c)
    path = c.write("stored.yaml", V1)
    c.qanat("workflow", "publish", path)
    c.write("stored.yaml", V2)
    c.qanat("workflow", "publish", path)
    # Run from another directory, where no such file exists
    elsewhere = os.path.join(c.dir, "elsewhere")
    os.mkdir(elsewhere)
    argv = [QANAT, "--coordinator", c.client_endpoint, "--key", getattr(c, "key", "none")]
    result = subprocess.run(argv + ["run", "stored", "--param", "who=name", "--follow"],
                            capture_output=True, text=True, cwd=elsewhere, timeout=60)
    check(result.returncode == 0, "run by name: " + result.stdout + result.stderr)
    check("of stored v2 started" in result.stdout, "newest: " + result.stdout)
    runs = c.qanat_json("runs")
    run = c.wait_run(runs[0]["run_id"])
    check(run["version"] == 2 and run["status"] == "succeeded", "v2 run: %r" % run["status"])
    check(run["params"]["who"] == "name", "param: %r" % run["params"])
    logs = "".join(line.get("data", "") for line in c.logs_json(run["run_id"], "a"))
    check("hello name" in logs, "log: %r" % logs)
    result = subprocess.run(argv + ["run", "stored@1", "--json"], capture_output=True, text=True,
                            cwd=elsewhere, timeout=60)
    check(result.returncode == 0, "run @1: " + result.stderr)
    run = c.wait_run(c.qanat_json("runs")[0]["run_id"])
    check(run["version"] == 1 and [t["name"] for t in run["tasks"]] == ["a"], "v1 run")
    # Storing nothing new
    check(c.qanat_json("workflows")[0]["latest"] == 2, "a new version was stored")


def test_unknown_name_is_a_clear_error(c):
    _start(c)
    for word, code in (("nosuch", 3), ("nosuch@2", 3), ("no/such.yaml", 3), ("bad@x", 3)):
        result = c.qanat("run", word, check=False)
        check(result.returncode == code, "%s: exit %d" % (word, result.returncode))
        check("no such file or stored workflow: %s" % word in result.stderr,
              "%s: %s" % (word, result.stderr))
    path = c.write("stored.yaml", V1)
    c.qanat("workflow", "publish", path)
    result = c.qanat("run", "stored@5", check=False)
    check(result.returncode == 3 and "no version 5 of stored" in result.stderr, result.stderr)
    result = c.qanat("workflow", "show", "nosuch", check=False)
    check(result.returncode == 3 and "no stored workflow nosuch" in result.stderr, result.stderr)
    check(c.qanat_json("runs") == [], "a run started")


def test_run_from_stdin(c):
    _start(c)
    argv = [QANAT, "--coordinator", c.client_endpoint, "--key", getattr(c, "key", "none")]
    result = subprocess.run(argv + ["run", "-", "--param", "who=pipe", "--follow"], input=V1,
                            capture_output=True, text=True, timeout=60)
    check(result.returncode == 0, "run -: " + result.stdout + result.stderr)
    run = c.wait_run(c.qanat_json("runs")[0]["run_id"])
    check(run["status"] == "succeeded", "run: %r" % run["status"])
    logs = "".join(line.get("data", "") for line in c.logs_json(run["run_id"], "a"))
    check("hello pipe" in logs, "log: %r" % logs)
    check(c.qanat("workflow", "show", "stored").stdout == V1, "stored from stdin")
    # An invalid text: position in <stdin>
    result = subprocess.run(argv + ["run", "-"], input="name: x\ntasks:\n  a:\n    ran: y\n",
                            capture_output=True, text=True, timeout=60)
    check(result.returncode == 2 and "<stdin>:4:5:" in result.stderr, "bad: " + result.stderr)


FLAKY = """name: flaky
params:
  who: {default: world}
tasks:
  a:
    run: echo ${{ params.who }} >> %(dir)s/a.count
  b:
    run: test -f %(dir)s/flag
    needs: [a]
  c:
    run: echo c >> %(dir)s/c.count
    needs: [b]
  d:
    run: echo d >> %(dir)s/d.count
"""


def _lines(path):
    with open(path) as f:
        return f.read().splitlines()


def test_rerun_same_params(c):
    _start(c)
    path = c.write("flaky.yaml", FLAKY % {"dir": c.dir})
    open(os.path.join(c.dir, "flag"), "w").close()
    first = c.wait_run(c.start_run(path, "who=again"))
    check(first["status"] == "succeeded", "first: " + first["status"])
    c.write("flaky.yaml", FLAKY % {"dir": c.dir} + "  e:\n    run: 'true'\n")
    c.qanat("workflow", "publish", path)          # v2: the rerun stays on v1
    out = c.qanat("rerun", first["run_id"], "--follow").stdout
    check("of flaky v1 started" in out, "rerun: " + out)
    second = c.wait_run(c.qanat_json("runs")[0]["run_id"])
    check(second["run_id"] != first["run_id"] and second["version"] == 1, "version")
    check(second["params"] == first["params"], "params %r" % second["params"])
    check(second["status"] == "succeeded", second["status"])
    check(_lines(os.path.join(c.dir, "a.count")) == ["again", "again"], "a ran twice")
    check(all(t["attempts"][-1]["cached_from"] == 0 for t in second["tasks"]), "nothing cached")
    result = c.qanat("rerun", "999", check=False)
    check(result.returncode == 3 and "no run 999" in result.stderr, result.stderr)


def test_rerun_failed_only_reuses_what_succeeded(c):
    _start(c)
    path = c.write("flaky.yaml", FLAKY % {"dir": c.dir})
    first = c.wait_run(c.start_run(path, "who=x"))
    check(first["status"] == "failed", "first: " + first["status"])
    check(task(first, "c")["status"] == "skipped", "c skipped")
    open(os.path.join(c.dir, "flag"), "w").close()
    result = c.qanat("rerun", first["run_id"], "--failed-only", "--follow")
    check("(2 tasks cached from run %d)" % first["run_id"] in result.stdout, result.stdout)
    second = c.wait_run(c.qanat_json("runs")[0]["run_id"])
    check(second["status"] == "succeeded", "rerun: " + second["status"])
    for name in ("a", "d"):
        t = task(second, name)
        check(t["status"] == "succeeded" and t["attempts"][-1]["cached_from"] == first["run_id"],
              "%s cached: %r" % (name, t))
        check(t["attempts"][-1]["reason"] == "cached from run %d" % first["run_id"], "reason")
    for name in ("b", "c"):
        check(task(second, name)["attempts"][-1]["cached_from"] == 0, name + " ran")
    # a and d ran once only, c once (now)
    check(_lines(os.path.join(c.dir, "a.count")) == ["x"], "a ran again")
    check(_lines(os.path.join(c.dir, "d.count")) == ["d"], "d ran again")
    check(_lines(os.path.join(c.dir, "c.count")) == ["c"], "c did not run")
    status = c.qanat("status", second["run_id"]).stdout
    check("cached from run %d" % first["run_id"] in status, "status: " + status)


def test_published_code_runs_by_name(c):
    """A version keeps the code it was published with: run NAME from a
    folder without the files still finds them; new code is a new version."""
    _start(c)
    project = os.path.join(c.dir, "project")
    os.mkdir(project)
    wf = os.path.join(project, "tool.yaml")
    with open(wf, "w") as f:
        f.write("name: tool\ntasks:\n  a:\n    run: python3 helper.py\n")
    helper = os.path.join(project, "helper.py")
    with open(helper, "w") as f:
        f.write("print('helper says one')\n")
    first = c.qanat_json("workflow", "publish", wf)
    check(first["version"] == 1 and first["code"].startswith("dir:"), "publish: %r" % first)
    shown = c.qanat_json("workflow", "show", "tool")
    check(shown["code"] == first["code"], "show keeps the code: %r" % shown)
    again = c.qanat_json("workflow", "publish", wf)
    check(again["version"] == 1 and not again["created"], "unchanged code: %r" % again)
    with open(helper, "w") as f:
        f.write("print('helper says two')\n")
    second = c.qanat_json("workflow", "publish", wf)
    check(second["version"] == 2 and second["created"] and second["code"] != first["code"],
          "the same text with new code is a new version: %r" % second)
    elsewhere = os.path.join(c.dir, "elsewhere2")
    os.mkdir(elsewhere)
    argv = [QANAT, "--coordinator", c.client_endpoint, "--key", getattr(c, "key", "none")]
    for ref, said in (("tool", "helper says two"), ("tool@1", "helper says one")):
        result = subprocess.run(argv + ["run", ref, "--follow"], capture_output=True, text=True,
                                cwd=elsewhere, timeout=60)
        check(result.returncode == 0 and said in result.stdout,
              "run %s: %s%s" % (ref, result.stdout, result.stderr))
    run = c.qanat_json("runs")[0]
    check(c.qanat_json("status", str(run["run_id"]))["code"] == first["code"][4:],
          "the run records the version's code")
    # code: none publishes no code
    bare = os.path.join(project, "bare.yaml")
    with open(bare, "w") as f:
        f.write("name: bare\ncode: none\ntasks:\n  a:\n    run: echo bare\n")
    check(c.qanat_json("workflow", "publish", bare)["code"] == "", "code: none")


if __name__ == "__main__":
    harness.main(globals())
