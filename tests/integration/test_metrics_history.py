"""Metrics stream as time series per run, and `qanat metrics WORKFLOW NAME`
gives the history of a metric across runs."""
import harness
from harness import check

WORKFLOW = """\
name: history
params:
  accuracy: 0.5
tasks:
  train:
    run: sh -c 'for i in 1 2 3 4 5; do echo "loss $((10 - i)) $i" >> "$QANAT_METRICS"; done; echo "accuracy $QANAT_PARAM_ACCURACY" >> "$QANAT_METRICS"; echo "not a metric line" >> "$QANAT_METRICS"'
"""


def test_metrics_series_and_history_across_three_runs(c):
    c.start_coordinator()
    c.start_agent("a1")
    wf = c.write("h.yaml", WORKFLOW)
    runs = []
    for value in ("0.71", "0.83", "0.92"):
        run = c.wait_run(c.start_run(wf, "accuracy=" + value))
        check(run["status"] == "succeeded", "run %s" % run["status"])
        runs.append(run["run_id"])
    series = c.qanat_json("metrics", runs[0])
    loss = [s for s in series if s["name"] == "loss"]
    check(len(loss) == 1, "one loss series: %s" % series)
    check([p["value"] for p in loss[0]["points"]] == [9, 8, 7, 6, 5], "loss values %s" % loss)
    check([p["step"] for p in loss[0]["points"]] == [1, 2, 3, 4, 5], "loss steps %s" % loss)
    history = c.qanat_json("metrics", "history", "accuracy")
    got = {(h["run_id"], h["points"][0]["value"]) for h in history}
    check(got == {(runs[0], 0.71), (runs[1], 0.83), (runs[2], 0.92)}, "history %s" % got)
    out = c.qanat("metrics", "history", "accuracy").stdout
    for value in ("0.71", "0.83", "0.92"):
        check(value in out, "history table lacks %s:\n%s" % (value, out))
    # The invalid metrics line is reported in the logs, not silently lost.
    lines = c.logs_json(runs[0])
    check(any(l["stream"] == "system" and "ignored metrics line" in l["data"] for l in lines),
          "a system log line about the bad metrics line: %s" % lines)


if __name__ == "__main__":
    harness.main(globals())
