"""Checks: a failing `error` check fails its task (and the run), a failing
`warning` check makes the run "succeeded with warnings"."""
import harness
from harness import check, task

WORKFLOW = """\
name: checked
params:
  accuracy: 0.95
tasks:
  evaluate:
    run: sh -c 'echo "accuracy $QANAT_PARAM_ACCURACY" >> "$QANAT_METRICS"; echo "f1 0.5" >> "$QANAT_METRICS"'
    checks:
      - accuracy >= 0.9
      - {expr: "f1 >= 0.8", severity: warning}
  publish:
    needs: [evaluate]
    run: echo published
"""


def test_warning_check_gives_succeeded_with_warnings(c):
    c.start_coordinator()
    c.start_agent("a1")
    run = c.wait_run(c.start_run(c.write("w.yaml", WORKFLOW)))
    check(run["status"] == "succeeded with warnings", "run status %s" % run["status"])
    evaluate = task(run, "evaluate")
    check(evaluate["status"] == "succeeded", "evaluate %s" % evaluate["status"])
    checks = {ch["expr"]: ch for ch in evaluate["checks"]}
    check(checks["accuracy >= 0.9"]["passed"], "accuracy check should pass: %s" % checks)
    check(not checks["f1 >= 0.8"]["passed"], "f1 check should fail: %s" % checks)
    check(checks["f1 >= 0.8"]["severity"] == "warning", "severity")
    check("0.5" in checks["f1 >= 0.8"]["detail"], "detail %r" % checks["f1 >= 0.8"]["detail"])
    check(task(run, "publish")["status"] == "succeeded", "publish should run")


def test_error_check_fails_the_task(c):
    c.start_coordinator()
    c.start_agent("a1")
    run = c.wait_run(c.start_run(c.write("e.yaml", WORKFLOW), "accuracy=0.82"))
    check(run["status"] == "failed", "run status %s" % run["status"])
    evaluate = task(run, "evaluate")
    check(evaluate["status"] == "failed", "evaluate %s" % evaluate["status"])
    attempt = evaluate["attempts"][-1]
    check(attempt["exit_code"] == 0, "the process itself succeeded")
    check(attempt["reason"] == "check failed: accuracy = 0.82 (needs >= 0.9)",
          "reason %r" % attempt["reason"])
    check(task(run, "publish")["status"] == "skipped", "publish should be skipped")
    out = c.qanat("status", run["run_id"]).stdout
    check("check FAILED accuracy >= 0.9" in out, "status output:\n" + out)


def test_check_on_a_metric_never_reported_fails(c):
    c.start_coordinator()
    c.start_agent("a1")
    wf = c.write("m.yaml", "name: m\ntasks:\n  t:\n    run: echo no metrics\n    checks: [loss < 1]\n")
    run = c.wait_run(c.start_run(wf))
    check(run["status"] == "failed", "run status %s" % run["status"])
    check("never reported" in task(run, "t")["checks"][0]["detail"], "detail")


if __name__ == "__main__":
    harness.main(globals())
