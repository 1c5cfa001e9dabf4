"""matrix: on a task: one task per combination, named NAME[k=v,...], its
values in ${{ matrix.KEY }} (as data) and QANAT_MATRIX_KEY, a dependent's
needs on the task as written meaning every expansion, and errors at
file:line:col."""
import harness
from harness import check, task

MATRIX = """name: sweep
params:
  tag: {default: t}
tasks:
  train:
    matrix:
      lr: [0.1, 0.01]
      seed: [1, 2, 3]
    run: echo "lr=${{ matrix.lr }} seed=$QANAT_MATRIX_SEED tag=${{ params.tag }}"
  exec:
    matrix: {opt: [adam, sgd]}
    run: [echo, "opt=${{ matrix.opt }}"]
  report:
    needs: [train, exec]
    run: echo report
"""

NAMES = ["train[lr=0.1,seed=1]", "train[lr=0.1,seed=2]", "train[lr=0.1,seed=3]",
         "train[lr=0.01,seed=1]", "train[lr=0.01,seed=2]", "train[lr=0.01,seed=3]",
         "exec[opt=adam]", "exec[opt=sgd]", "report"]


def _log(c, run_id, name):
    return "".join(line["data"] for line in c.logs_json(run_id, name))


def test_matrix_expands_and_needs_every_expansion(c):
    c.start_coordinator()
    c.start_agent("a1", slots=4)
    path = c.write("sweep.yaml", MATRIX)
    out = c.qanat("validate", path).stdout
    check("with 9 tasks" in out, out)
    run = c.wait_run(c.start_run(path, "tag=x"))
    check(run["status"] == "succeeded", run["status"])
    check([t["name"] for t in run["tasks"]] == NAMES, "names: %r" % [t["name"] for t in run["tasks"]])
    check(_log(c, run["run_id"], "train[lr=0.01,seed=2]") == "lr=0.01 seed=2 tag=x", "train log")
    check(_log(c, run["run_id"], "exec[opt=sgd]") == "opt=sgd", "exec log")
    report = task(run, "report")
    check(sorted(report["needs"]) == sorted(NAMES[:-1]), "needs: %r" % report["needs"])
    # report started after every expansion ended
    last_end = max(t["attempts"][-1]["finished_us"] for t in run["tasks"] if t["name"] != "report")
    check(report["attempts"][0]["started_us"] >= last_end, "report started early")


def test_matrix_errors_at_their_position(c):
    bad = c.write("bad.yaml", "name: bad\ntasks:\n  t:\n    matrix: {lr: [0.1, 'a b']}\n"
                  "    run: echo ${{ matrix.nope }}\n  u:\n    matrix: {k: 3}\n    run: echo\n"
                  "  v:\n    matrix: {a: [1, 2], b: [x]}\n    run: echo\n"
                  "  w:\n    inputs: {m: {from: v.out}}\n    run: echo\n")
    result = c.qanat("validate", bad, check=False)
    check(result.returncode == 2, "exit %d" % result.returncode)
    for expected in ("bad.yaml:4:24: invalid value for matrix key 'lr' in task 't'",
                     "bad.yaml:5:10: unknown matrix key 'nope'",
                     "bad.yaml:7:17: expected a non-empty list of values for matrix key 'k'",
                     "bad.yaml:13:",
                     "inputs from a matrix are not supported"):
        check(expected in result.stderr, "%r not in %s" % (expected, result.stderr))
    big = c.write("big.yaml", "name: big\ntasks:\n  t:\n    matrix: {a: [%s], b: [%s]}\n"
                  "    run: echo\n" % (",".join(str(i) for i in range(20)),
                                      ",".join(str(i) for i in range(20))))
    result = c.qanat("validate", big, check=False)
    check(result.returncode == 2 and "makes more than 256 tasks" in result.stderr, result.stderr)


if __name__ == "__main__":
    harness.main(globals())
