"""A failing task: its dependents are skipped, independent branches still
run, the stack trace is stored, and a Python traceback is extracted whole."""
import json

import harness
from harness import check, task

FAILING = """\
name: failing
tasks:
  fetch:
    run: echo fetched
  parse:
    needs: [fetch]
    run:
      - python3
      - -c
      - |
        import sys
        def parse_line(line):
            return int(line)
        def read_config():
            print("reading config")
            print("noise before the error", file=sys.stderr)
            return parse_line("not a number")
        read_config()
  report:
    needs: [parse]
    run: echo never
  side:
    needs: [fetch]
    run: echo side branch
  shell_fail:
    run: sh -c 'echo one >&2; echo two >&2; exit 3'
"""


def test_failure_skips_dependents_and_keeps_the_traceback(c):
    c.start_coordinator()
    c.start_agent("a1")
    run_id = c.start_run(c.write("failing.yaml", FAILING))
    run = c.wait_run(run_id)
    check(run["status"] == "failed", "run status %s" % run["status"])
    check(task(run, "fetch")["status"] == "succeeded", "fetch")
    check(task(run, "side")["status"] == "succeeded", "independent branch should still run")
    parse = task(run, "parse")
    check(parse["status"] == "failed", "parse is %s" % parse["status"])
    attempt = parse["attempts"][-1]
    check(attempt["exit_code"] == 1, "exit code %d" % attempt["exit_code"])
    trace = attempt["stack_trace"]
    check(trace.startswith("Traceback (most recent call last):"), "trace start:\n" + trace)
    check("read_config" in trace and "parse_line" in trace, "frames missing:\n" + trace)
    check(trace.rstrip().endswith("ValueError: invalid literal for int() with base 10: 'not a number'"),
          "trace end:\n" + trace)
    check("noise before the error" not in trace, "traceback should be extracted alone:\n" + trace)
    report = task(run, "report")
    check(report["status"] == "skipped", "report is %s" % report["status"])
    check(report["attempts"] == [], "a skipped task never runs")
    shell = task(run, "shell_fail")
    check(shell["status"] == "failed", "shell_fail")
    check(shell["attempts"][-1]["exit_code"] == 3, "exit code 3")
    check("one" in shell["attempts"][-1]["stack_trace"] and "two" in shell["attempts"][-1]["stack_trace"],
          "last stderr lines as trace: %r" % shell["attempts"][-1]["stack_trace"])
    # The logs of the failed task are stored, stdout and stderr tagged.
    lines = c.logs_json(run_id, "parse")
    check(any(l["data"] == "reading config" and l["stream"] == "stdout" for l in lines), "stdout line")
    check(any(l["data"].startswith("ValueError") and l["stream"] == "stderr" for l in lines), "stderr line")
    # The human status output shows the stack trace.
    out = c.qanat("status", run_id).stdout
    check("stack trace:" in out and "ValueError" in out, "status output:\n" + out)


def test_follow_exit_code_reflects_the_run(c):
    c.start_coordinator()
    c.start_agent("a1")
    ok = c.write("ok.yaml", "name: ok\ntasks:\n  hello:\n    run: echo hello from qanat\n")
    result = c.qanat("run", ok, "--follow", check=False, timeout=60)
    check(result.returncode == 0, "exit %d\n%s%s" % (result.returncode, result.stdout, result.stderr))
    check("hello from qanat" in result.stdout, "followed logs:\n" + result.stdout)
    check("succeeded" in result.stdout, "followed status:\n" + result.stdout)
    bad = c.write("bad.yaml", "name: bad\ntasks:\n  boom:\n    run: sh -c 'echo dying; exit 7'\n")
    result = c.qanat("run", bad, "--follow", check=False, timeout=60)
    check(result.returncode == 1, "a failed run exits 1, got %d" % result.returncode)
    check("dying" in result.stdout and "exit code 7" in result.stdout, "output:\n" + result.stdout)


def test_retries_make_new_attempts(c):
    c.start_coordinator()
    c.start_agent("a1")
    marker = c.dir + "/marker"
    wf = c.write("flaky.yaml", """\
name: flaky
tasks:
  flaky:
    retries: 2
    run: sh -c 'if [ -e %s ]; then echo second try; else touch %s; echo first try; exit 1; fi'
""" % (marker, marker))
    run = c.wait_run(c.start_run(wf))
    check(run["status"] == "succeeded", "run status %s" % run["status"])
    attempts = task(run, "flaky")["attempts"]
    check(len(attempts) == 2, "two attempts, got %d" % len(attempts))
    check(attempts[0]["reason"] == "exit code 1", "first attempt reason %r" % attempts[0]["reason"])
    first = c.logs_json(run["run_id"], "flaky", "--attempt", "1")
    second = c.logs_json(run["run_id"], "flaky", "--attempt", "2")
    check([l["data"] for l in first] == ["first try"], "attempt 1 logs %s" % first)
    check([l["data"] for l in second] == ["second try"], "attempt 2 logs %s" % second)



def test_a_missing_output_is_retried_by_retry_on_output(c):
    """An attempt that exits 0 without its declared output ends `output`:
    retried when retry_on lists output (or by default), not otherwise."""
    c.start_coordinator()
    c.start_agent("a1")
    # Attempt 1 of each task exits 0 without result.txt; attempt 2 writes it.
    command = ("if [ -e %s/$QANAT_TASK.tried ]; then echo done > result.txt; "
               "else touch %s/$QANAT_TASK.tried; fi" % (c.dir, c.dir))
    wf = c.write("outputs.yaml", """\
name: outputs
tasks:
  listed:
    retries: 1
    retry_delay: 0s
    retry_on: [output]
    outputs: {result: result.txt}
    run: %(cmd)s
  default:
    retries: 1
    retry_delay: 0s
    outputs: {result: result.txt}
    run: %(cmd)s
  unlisted:
    retries: 1
    retry_delay: 0s
    retry_on: [exit]
    outputs: {result: result.txt}
    run: %(cmd)s
""" % {"cmd": json.dumps(command)})
    run = c.wait_run(c.start_run(wf))
    for name in ("listed", "default"):
        attempts = task(run, name)["attempts"]
        check(task(run, name)["status"] == "succeeded" and len(attempts) == 2,
              "%s: %s with %d attempts" % (name, task(run, name)["status"], len(attempts)))
        check(attempts[0]["end"] == "output" and "result" in attempts[0]["reason"],
              "%s attempt 1: %s" % (name, attempts[0]))
    unlisted = task(run, "unlisted")
    check(unlisted["status"] == "failed" and len(unlisted["attempts"]) == 1,
          "unlisted: %s with %d attempts" % (unlisted["status"], len(unlisted["attempts"])))
    check(run["status"] == "failed", "run status %s" % run["status"])

if __name__ == "__main__":
    harness.main(globals())
