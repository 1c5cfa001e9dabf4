#!/usr/bin/env python3
"""The workflow's code travels with it: `qanat run FILE` packs the folder
holding the file (less .git and what .qanatignore leaves out), every task
starts in a copy of it, a rerun of unchanged code moves no bytes, a size
guard refuses a folder too big, `code: none` and `workdir:` opt out, and
the code is part of a task's cache identity."""
import json
import os
import subprocess

from harness import QANAT, TestFailure, check, main, task


def project(c, files, name="proj"):
    """A folder of files (path -> text) beside nothing else; returns it."""
    top = os.path.join(c.dir, name)
    for path, text in files.items():
        full = os.path.join(top, path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "w") as f:
            f.write(text)
    return top


def stdout_of(c, run_id, task_name):
    return [l["data"] for l in c.logs_json(run_id, task_name) if l["stream"] == "stdout"]


def blob_counters(c):
    stats = c.qanat_json("stats")
    return {k: stats[k] for k in ("blobs_stored", "blob_bytes_in", "blob_bytes_out")}


SCRIPT_WF = """name: code-script
tasks:
  hello:
    run: python3 script.py
"""


def test_a_script_next_to_the_workflow_runs(c):
    c.start_coordinator()
    c.start_agent("a1")
    top = project(c, {
        "wf.yaml": SCRIPT_WF,
        "script.py": "import os\nfrom helpers.greet import greet\nprint(greet('code'))\n"
                     "print('inputs', sorted(k for k in os.environ if 'INPUT' in k))\n",
        "helpers/__init__.py": "",
        "helpers/greet.py": "def greet(x):\n    return 'hello from ' + x\n",
    })
    run = c.wait_run(c.start_run(os.path.join(top, "wf.yaml")))
    check(run["status"] == "succeeded", "run %s: %s" % (run["status"], json.dumps(run)[:800]))
    # The code is the working directory, not an input with a variable
    check(stdout_of(c, run["run_id"], "hello") == ["hello from code", "inputs []"],
          "stdout %s" % stdout_of(c, run["run_id"], "hello"))
    check(len(run["code"]) == 64, "the run records its code hash: %r" % run["code"])
    status = c.qanat("status", run["run_id"]).stdout
    check("code: %s\n" % run["code"][:12] in status, "status shows the code:\n" + status)
    # The same from another working directory, with a relative path
    argv = [QANAT, "--coordinator", c.client_endpoint, "--key", c.key, "run", "proj/wf.yaml",
            "--json"]
    out = subprocess.run(argv, cwd=c.dir, capture_output=True, text=True, timeout=60)
    check(out.returncode == 0, "relative run: %s" % out.stderr)
    again = c.wait_run(json.loads(out.stdout)["run_id"])
    check(again["status"] == "succeeded" and again["code"] == run["code"],
          "relative path run %s" % json.dumps(again)[:400])


IGNORE_WF = """name: code-ignore
tasks:
  look:
    run: >-
      test -f script.py && test -f keep.tmp && test -f sub/ok.txt &&
      test ! -e a.tmp && test ! -e sub/b.tmp && test ! -e data && test ! -e .git &&
      test ! -e build/out.o && test ! -e notes/private.md && test -f notes/public.md &&
      echo all-as-expected
"""


def test_qanatignore_leaves_files_out(c):
    c.start_coordinator()
    c.start_agent("a1")
    top = project(c, {
        "wf.yaml": IGNORE_WF,
        "script.py": "print(1)\n",
        ".qanatignore": "# scratch files\n*.tmp\n!keep.tmp\n\ndata/\n/build\nnotes/**/private.md\n",
        "a.tmp": "x", "keep.tmp": "k", "sub/b.tmp": "x", "sub/ok.txt": "ok",
        "data/big.csv": "1,2\n", "build/out.o": "o", ".git/config": "[core]\n",
        "notes/private.md": "secret", "notes/public.md": "public",
    })
    run = c.wait_run(c.start_run(os.path.join(top, "wf.yaml")))
    check(run["status"] == "succeeded", "run %s: %s" % (
        run["status"], task(run, "look")["attempts"][-1]["reason"]))
    check(stdout_of(c, run["run_id"], "look") == ["all-as-expected"], "the task saw other files")


def test_a_link_out_of_the_folder_is_refused_unless_left_out(c):
    c.start_coordinator()
    c.start_agent("a1")
    top = project(c, {"wf.yaml": SCRIPT_WF, "script.py": "print('ok')\n"})
    os.symlink("/etc", os.path.join(top, "etc-link"))
    out = c.qanat("run", os.path.join(top, "wf.yaml"), check=False)
    check(out.returncode == 2 and "etc-link" in out.stderr
          and "leave it out in %s/.qanatignore" % top in out.stderr, out.stderr)
    with open(os.path.join(top, ".qanatignore"), "w") as f:
        f.write("etc-link\n")
    run = c.wait_run(c.start_run(os.path.join(top, "wf.yaml")))
    check(run["status"] == "succeeded", "left out: %s" % run["status"])


def test_the_size_guard_names_the_biggest_files(c):
    c.start_coordinator()
    c.start_agent("a1")
    top = project(c, {"wf.yaml": SCRIPT_WF, "script.py": "print(1)\n"})
    # Sparse: sizes are read from the metadata, nothing is hashed
    for name, size in (("model.bin", 150 << 20), ("data/train.csv", 30 << 20)):
        path = os.path.join(top, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.truncate(size)
    before = blob_counters(c)
    out = c.qanat("run", os.path.join(top, "wf.yaml"), check=False)
    check(out.returncode == 2, "refused with 2, got %d: %s" % (out.returncode, out.stderr))
    lines = out.stderr.splitlines()
    check("over the limit of 100.0 MiB" in out.stderr and "--code-max" in out.stderr
          and ".qanatignore" in out.stderr, "the message:\n" + out.stderr)
    named = [l.split()[-1] for l in lines if l.startswith("  ")]
    check(named[:2] == ["model.bin", "data/train.csv"], "biggest first: %s" % out.stderr)
    check(blob_counters(c) == before, "nothing was sent")
    check("code-script" not in c.qanat("runs").stdout, "no run was started")
    # A lower limit of one's own, and a size that is not one
    out = c.qanat("run", os.path.join(top, "wf.yaml"), "--code-max", "abc", check=False)
    check(out.returncode == 2 and "--code-max wants a size" in out.stderr, out.stderr)
    os.unlink(os.path.join(top, "model.bin"))
    os.unlink(os.path.join(top, "data/train.csv"))
    with open(os.path.join(top, "notes.txt"), "w") as f:
        f.write("x" * 20000)
    out = c.qanat("run", os.path.join(top, "wf.yaml"), "--code-max", "10K", check=False)
    check(out.returncode == 2 and "notes.txt" in out.stderr
          and "over the limit of 10.0 KiB" in out.stderr, out.stderr)
    # Left out by .qanatignore, it no longer counts
    with open(os.path.join(top, ".qanatignore"), "w") as f:
        f.write("notes.txt\n")
    run = c.wait_run(c.qanat_json("run", os.path.join(top, "wf.yaml"), "--code-max", "10K")
                     ["run_id"])
    check(run["status"] == "succeeded", "run after ignoring %s" % run["status"])


def test_a_rerun_of_unchanged_code_moves_zero_bytes(c):
    c.start_coordinator()
    c.start_agent("a1")
    top = project(c, {"wf.yaml": SCRIPT_WF.replace("script.py", "script.py data.bin"),
                      "script.py": "import sys\nprint(len(open(sys.argv[1], 'rb').read()))\n",
                      "data.bin": "z" * (3 << 20)})
    wf = os.path.join(top, "wf.yaml")
    start = blob_counters(c)
    first = c.wait_run(c.start_run(wf))
    check(first["status"] == "succeeded", "first run %s" % first["status"])
    check(stdout_of(c, first["run_id"], "hello") == [str(3 << 20)], "the task read its data")
    after_first = blob_counters(c)
    check(after_first["blob_bytes_in"] - start["blob_bytes_in"] >= 3 << 20,
          "the first run put the code: %s -> %s" % (start, after_first))
    check(after_first["blob_bytes_out"] - start["blob_bytes_out"] >= 3 << 20,
          "the agent fetched the code: %s -> %s" % (start, after_first))
    second = c.wait_run(c.start_run(wf))
    check(second["status"] == "succeeded" and second["code"] == first["code"],
          "second run %s" % second["status"])
    check(stdout_of(c, second["run_id"], "hello") == [str(3 << 20)], "second run's data")
    check(blob_counters(c) == after_first,
          "a rerun of unchanged code moved bytes: %s -> %s" % (after_first, blob_counters(c)))
    # One file changed: only that file moves
    with open(os.path.join(top, "script.py"), "a") as f:
        f.write("# changed\n")
    third = c.wait_run(c.start_run(wf))
    check(third["status"] == "succeeded" and third["code"] != first["code"], "third run")
    moved = blob_counters(c)["blob_bytes_in"] - after_first["blob_bytes_in"]
    check(0 < moved < 4096, "only the changed file and the manifest were sent: %d" % moved)


NONE_WF = """name: code-none
code: none
tasks:
  empty:
    run: ls -A | wc -l
"""

MIXED_WF = """name: code-mixed
tasks:
  with-code:
    run: cat hello.txt
  without:
    code: none
    run: ls -A | wc -l
  in-place:
    workdir: %s
    run: pwd && cat shared.txt && test ! -e hello.txt && echo written > out.txt
"""


def test_code_none_and_workdir(c):
    c.start_coordinator()
    c.start_agent("a1")
    top = project(c, {"wf.yaml": NONE_WF, "hello.txt": "hi"})
    run = c.wait_run(c.start_run(os.path.join(top, "wf.yaml")))
    check(run["status"] == "succeeded" and run["code"] == "", "code: none run %s" % run)
    check(stdout_of(c, run["run_id"], "empty") == ["0"], "code: none is an empty directory")

    shared = os.path.join(c.dir, "shared")
    os.makedirs(shared)
    with open(os.path.join(shared, "shared.txt"), "w") as f:
        f.write("on the shared filesystem\n")
    top = project(c, {"wf.yaml": MIXED_WF % shared, "hello.txt": "hi\n"}, name="mixed")
    run = c.wait_run(c.start_run(os.path.join(top, "wf.yaml")))
    check(run["status"] == "succeeded", "mixed run %s" % json.dumps(run)[:1200])
    check(stdout_of(c, run["run_id"], "with-code") == ["hi"], "with-code")
    check(stdout_of(c, run["run_id"], "without") == ["0"], "a task's code: none")
    check(stdout_of(c, run["run_id"], "in-place") == [shared, "on the shared filesystem"],
          "in-place: %s" % stdout_of(c, run["run_id"], "in-place"))
    check(open(os.path.join(shared, "out.txt")).read() == "written\n", "written in place")

    # A workdir that is not there fails the attempt with the reason
    top = project(c, {"wf.yaml": MIXED_WF % "/nonexistent/qanat-shared"}, name="gone")
    run = c.wait_run(c.start_run(os.path.join(top, "wf.yaml")))
    reason = task(run, "in-place")["attempts"][-1]["reason"]
    check(task(run, "in-place")["status"] == "failed" and "/nonexistent/qanat-shared" in reason,
          "a missing workdir: %s" % reason)
    # Refused when the file is read
    bad = project(c, {"wf.yaml": "name: b\ntasks:\n  t:\n    workdir: rel/dir\n    run: pwd\n"},
                  name="bad")
    out = c.qanat("run", os.path.join(bad, "wf.yaml"), check=False)
    check(out.returncode == 2 and "'workdir' must be an absolute path" in out.stderr, out.stderr)
    bad = project(c, {"wf.yaml": "name: b\ntasks:\n  t:\n    code: yes\n    run: pwd\n"},
                  name="bad2")
    out = c.qanat("run", os.path.join(bad, "wf.yaml"), check=False)
    check(out.returncode == 2 and "a task's 'code' can only be 'none'" in out.stderr, out.stderr)


CACHED_WF = """name: code-cache
tasks:
  step:
    run: python3 step.py
    cache: true
"""


def test_the_cache_identity_includes_the_code(c):
    c.start_coordinator()
    c.start_agent("a1")
    top = project(c, {"wf.yaml": CACHED_WF, "step.py": "print('version 1')\n"})
    wf = os.path.join(top, "wf.yaml")
    first = c.wait_run(c.start_run(wf))
    check(stdout_of(c, first["run_id"], "step") == ["version 1"], "first run")
    second = c.wait_run(c.start_run(wf))
    check(task(second, "step")["attempts"][-1]["cached_from"] == first["run_id"],
          "unchanged code is a cache hit: %s" % task(second, "step")["attempts"][-1])
    with open(os.path.join(top, "step.py"), "w") as f:
        f.write("print('version 2')\n")
    third = c.wait_run(c.start_run(wf))
    check(task(third, "step")["attempts"][-1]["cached_from"] == 0
          and stdout_of(c, third["run_id"], "step") == ["version 2"],
          "changed code ran again: %s" % task(third, "step")["attempts"][-1])


def test_a_rerun_keeps_its_code(c):
    """qanat rerun runs the same code (by its hash), whatever the folder
    holds now."""
    c.start_coordinator()
    c.start_agent("a1")
    top = project(c, {"wf.yaml": CACHED_WF.replace("cache: true", "cache: false"),
                      "step.py": "print('version 1')\n"})
    first = c.wait_run(c.start_run(os.path.join(top, "wf.yaml")))
    with open(os.path.join(top, "step.py"), "w") as f:
        f.write("print('version 2')\n")
    again = c.wait_run(c.qanat_json("rerun", first["run_id"])["run_id"])
    check(again["code"] == first["code"] and again["status"] == "succeeded",
          "the rerun's code %s, first %s" % (again["code"], first["code"]))
    check(stdout_of(c, again["run_id"], "step") == ["version 1"], "the rerun ran the old code")


# `code: PATH` in the file: a folder relative to it
def test_code_names_another_folder(c):
    c.start_coordinator()
    c.start_agent("a1")
    top = project(c, {"flows/wf.yaml": "name: elsewhere\ncode: ../src\ntasks:\n"
                                       "  t:\n    run: python3 main.py\n",
                      "src/main.py": "print('from src')\n"})
    run = c.wait_run(c.start_run(os.path.join(top, "flows", "wf.yaml")))
    check(run["status"] == "succeeded" and stdout_of(c, run["run_id"], "t") == ["from src"],
          "code: ../src %s" % run["status"])
    out = c.qanat("run", os.path.join(top, "flows", "wf.yaml").replace("wf", "nope"),
                  check=False)
    check(out.returncode != 0 and "no such file" in out.stderr, "a missing file: %s" % out.stderr)
    top2 = project(c, {"wf.yaml": "name: e\ncode: missing\ntasks:\n  t:\n    run: pwd\n"},
                   name="p2")
    out = c.qanat("run", os.path.join(top2, "wf.yaml"), check=False)
    check(out.returncode == 2 and "code folder" in out.stderr, out.stderr)


if __name__ == "__main__":
    main(globals())
