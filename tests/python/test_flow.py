"""Python flows (@op, @metric, @check, Flow) against a real qanatd and two
agents (env=a, env=b): the example flow against its YAML twin, preview
against remote, checks of both severities, a raising op's traceback, ops
placed by labels, a value that cannot be pickled, the generated YAML
through the coordinator's validation, and a bad op option reported at
its Python line."""
import importlib.util
import io
import json
import os
import sys

sys.dont_write_bytecode = True      # no __pycache__ in the example's folder

from clientlib import ClusterCase, SRC, main  # noqa: E402
import qanat  # noqa: E402

EXAMPLE = os.path.join(SRC, "examples", "ml-pipeline")
sys.path.insert(0, EXAMPLE)         # the example's flow imports its step scripts

FLOWS = r'''
import os
import threading
import qanat


@qanat.op
def numbers(n: int) -> list:
    print("making", n, "numbers")
    return list(range(n))


@qanat.metric
def total(xs: list) -> float:
    return float(sum(xs))


@qanat.check(severity="error")
def below_ten(t: float) -> bool:
    return t < 10


@qanat.check(severity="warning")
def below_three(t: float) -> bool:
    return t < 3


@qanat.op
def explode(xs: list) -> int:
    raise RuntimeError("exploded after %d numbers" % len(xs))


@qanat.op(requirements=["no-such-package>=1"])
def needs_missing() -> int:
    import qanat_test_no_such_module
    return qanat_test_no_such_module.x


@qanat.op
def locked(xs: list):
    return threading.Lock()


@qanat.op(on={"env": "a"})
def on_a(note: qanat.File) -> str:
    with open(note) as f:
        return f.read().strip() + "a"


@qanat.op(on={"env": "b"})
def on_b(first: str) -> str:
    return first + "b"


@qanat.op(timeout="2 hours")
def slow() -> int:
    return 1


with qanat.Flow("sdk-checks", params={"n": 4},
                description='"quoted" ${{ params.n }} # not a comment\n: {[*&!|>\x7f\u00e9') as checks:
    t = total(numbers(checks.params.n))
    below_ten(t)
    below_three(t)

with qanat.Flow("sdk-explode") as exploding:
    explode(numbers(3))
    needs_missing()

with qanat.Flow("sdk-unpicklable") as unpicklable:
    locked(numbers(2))

with qanat.Flow("sdk-labels", params={"note": qanat.File}) as labels:
    on_b(on_a(labels.params.note))

with qanat.Flow("sdk-bad") as bad:
    slow()
'''


def load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def attempt(run, task):
    return [t for t in run.tasks if t["name"] == task][0]["attempts"][-1]


class FlowCase(ClusterCase):
    AGENTS = ()

    def setUp(self):
        super().setUp()
        self.c.start_agent("a1", labels={"env": "a"}, slots=4)
        self.c.start_agent("b1", labels={"env": "b"}, slots=4)
        code = os.path.join(self.c.dir, "code")
        os.makedirs(code)
        self.flows_path = os.path.join(code, "flows.py")
        with open(self.flows_path, "w") as f:
            f.write(FLOWS)
        self.flows = load(self.flows_path, "flows_" + self.id().rsplit(".", 1)[-1])

    def preview(self, flow, params=None):
        """flow.preview() quietly, its directories in the cluster's."""
        workdir = os.path.join(self.c.dir, "preview-%s-%d" % (flow.name, len(os.listdir(
            self.c.dir))))
        return flow.preview(params=params, out=io.StringIO(), workdir=workdir)

    def run_flow(self, flow, params=None):
        return flow.run(params=params, follow=False, client=self.admin).wait(timeout=60)


class TestFlow(FlowCase):
    def test_example_matches_yaml_and_preview(self):
        example = load(os.path.join(EXAMPLE, "flow.py"), "ml_flow")
        yaml_id = self.c.start_run(os.path.join(EXAMPLE, "workflow.yaml"))
        run = self.run_flow(example.flow)
        yaml_run = self.admin.run(yaml_id).wait(timeout=60)
        self.assertEqual(run.status, "succeeded", run.info)
        self.assertEqual(yaml_run.status, "succeeded")
        ours, theirs = run.metrics(), yaml_run.metrics()

        def series(metrics, name):
            return [(p["value"], p.get("step") or 0) for p in metrics[name]]
        for name in ("loss", "train_accuracy", "accuracy", "precision", "recall", "f1"):
            self.assertEqual(series(ours, name), series(theirs, name), name)
        self.assertEqual(series(ours, "accuracy"), [(0.9325, 0)])
        # preview: the same results and metrics, in this process
        preview = self.preview(example.flow)
        self.assertEqual(preview.status, "succeeded")
        scores = json.loads(run.values()["evaluate"]["value"])
        self.assertEqual(preview.results["evaluate"], scores)
        self.assertEqual(scores["accuracy"], 0.9325)
        for task, by_name in preview.metrics.items():
            for name, points in by_name.items():
                remote = [(p["value"], p.get("step") or 0) for p in ours[name]
                          if p["task"] == task]
                self.assertEqual(remote, [(v, s or 0) for v, s in points], "%s %s" % (task, name))

    def test_checks_error_fails_warning_warns(self):
        warned = self.flows.checks.run(params={"n": 4}, follow=False, client=self.admin)
        failed = self.flows.checks.run(params={"n": 5}, follow=False, client=self.admin)
        self.assertEqual(warned.wait(timeout=60).status, "succeeded_with_warnings")
        self.assertEqual(failed.wait(timeout=60).status, "failed")
        status = self.c.qanat("status", failed.id).stdout
        self.assertIn("check.below_ten", status)
        preview = self.preview(self.flows.checks, {"n": 5})
        self.assertEqual(preview.status, "failed")
        self.assertEqual(self.preview(self.flows.checks).status,
                         "succeeded_with_warnings")

    def test_raising_op_traceback_in_status(self):
        run = self.run_flow(self.flows.exploding)
        self.assertEqual(run.status, "failed")
        trace = attempt(run, "explode")["stack_trace"]
        self.assertTrue(trace.startswith("Traceback (most recent call last):"), trace)
        self.assertIn("RuntimeError: exploded after 3 numbers", trace)
        self.assertIn("flows.py", trace)
        status = self.c.qanat("status", run.id).stdout
        self.assertIn("RuntimeError: exploded after 3 numbers", status)
        # a missing package: the import error with the flow's requirements
        trace = attempt(run, "needs_missing")["stack_trace"]
        self.assertIn("No module named 'qanat_test_no_such_module'", trace)
        self.assertIn("requires no-such-package>=1; agents do not install packages", trace)

    def test_ops_follow_labels_over_two_agents(self):
        note = self.write("note.txt", "n\n")
        run = self.run_flow(self.flows.labels, {"note": note})      # a local file, put first
        self.assertEqual(run.status, "succeeded", run.info)
        self.assertEqual(attempt(run, "on_a")["agent"], "a1")
        self.assertEqual(attempt(run, "on_b")["agent"], "b1")
        self.assertEqual(run.values()["on_b"]["value"], '"nab"')
        preview = self.preview(self.flows.labels, {"note": note})
        self.assertEqual(preview.results["on_b"], "nab")

    def test_unpicklable_value_names_the_op(self):
        with self.assertRaisesRegex(TypeError, "op locked returned a value that cannot be "
                                               "pickled"):
            self.preview(self.flows.unpicklable)
        run = self.run_flow(self.flows.unpicklable)
        self.assertEqual(run.status, "failed")
        self.assertIn("op locked returned a value that cannot be pickled",
                      attempt(run, "locked")["stack_trace"])

    def test_to_yaml_round_trip_and_bad_option_line(self):
        text = self.flows.checks.to_yaml()
        path = self.write("checks.yaml", text)
        self.assertIn("ok, workflow 'sdk-checks' with 2 tasks",
                      self.c.qanat("validate", path).stdout)
        first = self.flows.checks.publish(client=self.admin)
        again = self.flows.checks.publish(client=self.admin)
        self.assertEqual(first["version"], again["version"])
        self.assertEqual(self.admin.workflow("sdk-checks")["source"], text)
        # the stored version keeps its code: qanat run NAME runs it
        self.assertTrue(first["code"].startswith("dir:"), first)
        self.assertEqual(self.admin.workflow("sdk-checks")["code"], first["code"])
        stored = self.admin.run(self.c.start_run("sdk-checks")).wait(timeout=30)
        self.assertEqual(stored.status, "succeeded_with_warnings")
        self.assertEqual("dir:" + stored.info["code"], first["code"])
        # the generated text run without its code says what is missing
        bare = self.admin.start(None, source=text, filename="checks.yaml").wait(timeout=30)
        self.assertEqual(bare.status, "failed")
        self.assertIn("this run has no code of the flow", attempt(bare, "numbers")["stack_trace"])
        with self.assertRaises(qanat.InvalidWorkflow) as caught:
            self.flows.bad.publish(client=self.admin)
        line = FLOWS.splitlines().index('@qanat.op(timeout="2 hours")') + 1
        error = caught.exception
        self.assertEqual((error.file, error.line), (self.flows_path, line), str(error))
        self.assertIn("expected a duration for 'timeout'", str(error))
        self.assertIn("%s:%d:" % (self.flows_path, line), str(error))


if __name__ == "__main__":
    main()
