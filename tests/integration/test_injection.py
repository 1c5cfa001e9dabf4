"""A parameter value is data in every place a command can put it
(docs/workflow-format.md, "Parameters in commands"): with a real
coordinator, agent and /bin/sh, hostile values in bare, "…", '…', $(…),
backtick and here-document contexts print as given and run nothing."""
import os
import subprocess

import harness
from harness import check, main, task

HOSTILE = [
    "$(touch PWN_dollar)",
    "`touch PWN_tick`",
    "x'; touch PWN_sq; echo '",
    "x\"; touch PWN_dq; echo \"",
    "a\nEOF\ntouch PWN_heredoc\n",
    "; touch PWN_semi && touch PWN_and",
    "$HOME * \\",
]

INJ = """\
name: inj
params: {v: {default: x}}
tasks:
  dq:   {run: 'printf "dq=%s|" "${{ params.v }}"'}
  sq:   {run: "printf 'sq=%s|' '${{ params.v }}'"}
  bare: {run: 'printf bare=%s\\| ${{ params.v }}'}
  sub:  {run: 'printf "sub=%s|" "$(printf %s ${{ params.v }})"'}
  tick: {run: 'x=`printf %s "${{ params.v }}"`; printf "tick=%s|" "$x"'}
  doc:
    run: |
      cat <<EOF
      doc=${{ params.v }}|
      EOF
  listed: {run: [sh, -c, 'printf "listed=%s|" "${{ params.v }}"']}
"""


def output_of(c, run_id, name):
    return "\n".join(l["data"] for l in c.logs_json(run_id, name) if l["stream"] == "stdout")


def test_hostile_values_are_printed_not_run(c):
    """The issue's workflow, plus $(…), backticks, a heredoc and
    [sh, -c, …]: every value is printed byte for byte and no file appears
    in the task's directory or in /tmp."""
    c.start_coordinator()
    c.start_agent("a1", slots=4)
    wf = c.write("inj.yaml", INJ)
    for value in HOSTILE:
        run = c.wait_run(c.start_run(wf, "v=" + value))
        check(run["status"] == "succeeded", "run with %r: %s" % (value, run["status"]))
        for name in ("dq", "sq", "bare", "sub", "tick", "listed"):
            got = output_of(c, run["run_id"], name)
            want = "%s=%s|" % (name, value.rstrip("\n") if name in ("sub", "tick") else value)
            if name == "bare":
                # Unquoted in the script, still one word: printf's %s
                # consumes it whole, and the value is printed, not run
                want = "bare=%s|" % value
            check(got == want, "%s with %r printed %r, wanted %r" % (name, value, got, want))
        check(output_of(c, run["run_id"], "doc") == "doc=%s|" % value,
              "doc with %r: %r" % (value, output_of(c, run["run_id"], "doc")))
    found = []
    for root, _, files in os.walk(c.dir):
        found += [os.path.join(root, f) for f in files if f.startswith("PWN")]
    found += [f for f in os.listdir("/tmp") if f.startswith("PWN_")]
    check(found == [], "files created by values: %s" % found)


def test_unsafe_context_is_refused_with_its_place(c):
    """A reference inside $((…)) or a quoted here-document cannot be made
    data: the file is refused at file:line:col, before any run."""
    c.start_coordinator()
    wf = c.write("arith.yaml", "name: arith\nparams: {n: {default: 1}}\ntasks:\n"
                 "  t: {run: 'echo $((${{ params.n }} + 1))'}\n")
    r = c.qanat("validate", wf, check=False)
    check(r.returncode != 0, "validate accepted $((…)): %s" % r.stdout)
    err = r.stderr + r.stdout
    check(wf + ":4:" in err and "evaluated as arithmetic" in err, "message: %r" % err)
    r = c.qanat("run", wf, check=False)
    check(r.returncode != 0 and c.qanat_json("runs") == [], "a refused run was stored")
    doc = c.write("doc.yaml", "name: doc\nparams: {v: {default: 1}}\ntasks:\n"
                  "  t:\n    run: |\n      cat <<'EOF'\n      ${{ params.v }}\n      EOF\n")
    r = c.qanat("validate", doc, check=False)
    check(r.returncode != 0 and "quoted here-document" in r.stderr + r.stdout,
          "quoted heredoc: %r" % (r.stderr + r.stdout))


def test_secret_in_a_shell_string_is_a_variable(c):
    """${{ secrets.X }} in a run string reaches the task through
    QANAT_SECRET_X, redacted like a secret in env; on a command line run
    without a shell it is refused (ps would show it)."""
    c.start_coordinator()
    c.start_agent("a1")
    value = "s3cr3t-'$(touch PWN_secret)'"
    r = subprocess.run([harness.QANAT, "--coordinator", c.client_endpoint, "--key", c.key,
                        "secret", "set", "TOKEN"], input=value, capture_output=True, text=True,
                       timeout=60)
    check(r.returncode == 0, "secret set: %s" % r.stderr)
    wf = c.write("sec.yaml", "name: sec\ntasks:\n"
                 "  t: {run: 'test \"${{ secrets.TOKEN }}\" = \"$QANAT_SECRET_TOKEN\" && "
                 "printf \"%s\" \"${{ secrets.TOKEN }}\" | wc -c'}\n")
    run = c.wait_run(c.start_run(wf))
    check(run["status"] == "succeeded", "run: %s" % run)
    check(output_of(c, run["run_id"], "t").strip() == str(len(value)),
          "length: %r" % output_of(c, run["run_id"], "t"))
    check(not any(f.startswith("PWN") for _, _, fs in os.walk(c.dir) for f in fs),
          "the secret's value ran")
    argv = c.write("argv.yaml", "name: argv\ntasks:\n"
                   "  t: {run: [echo, '${{ secrets.TOKEN }}']}\n")
    r = c.qanat("validate", argv, check=False)
    check(r.returncode != 0 and "sees it in ps" in r.stderr + r.stdout,
          "secret on a command line: %r" % (r.stderr + r.stdout))


if __name__ == "__main__":
    main(globals())
