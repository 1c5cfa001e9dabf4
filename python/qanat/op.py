"""Ops, metrics and checks: the decorated functions a Flow is made of.

`@qanat.op` marks a function as one step of a pipeline.  Outside a flow
it is still the plain function (call it, test it); inside a
`with qanat.Flow(...)` block a call records a node of the graph and
returns a handle, the future result, which is passed on to other ops.
Each call becomes one task of the generated workflow, run on an agent by
`python3 -m qanat.runtime`.

`@qanat.metric` is an op whose number (or dict of numbers) is reported
as metrics of its task; `@qanat.check` is a predicate whose failure fails
the run (severity "error") or only warns ("warning"), evaluated as the
workflow's checks are.
"""

import inspect
import math
import numbers
import os
import re
import sys
import threading

__all__ = ["File", "Dir", "Param", "Op", "op", "metric", "check", "log_metric"]


class File(str):
    """A file passed between ops, as its path.

    Annotate an op's return `-> qanat.File` and return the path of the
    file it wrote; the next op receives a `File` holding the path of its
    own copy (staged by the agent, read-only)."""

    def __repr__(self):
        return "File(%s)" % str.__repr__(self)


class Dir(str):
    """A directory passed between ops, as its path (see `File`)."""

    def __repr__(self):
        return "Dir(%s)" % str.__repr__(self)


_MISSING = object()
_PARAM_TYPES = {int: "int", float: "float", bool: "bool", str: "string",
                File: "artifact", Dir: "artifact"}


class Param:
    """A flow parameter declared in full: `qanat.Param(default=0.5,
    description="learning rate", allowed=[...])`, or `qanat.Param(type=int)`
    for a required one.  A plain value in `Flow(params=...)` is its
    default; a type (`int`, `qanat.File`) declares a required one."""

    def __init__(self, default=_MISSING, type=None, description=None, allowed=None):
        if type is not None and type not in _PARAM_TYPES:
            raise TypeError("Param type must be one of int, float, bool, str, qanat.File, "
                            "qanat.Dir, not %r" % (type,))
        self.default = default
        self.type = type
        self.description = description
        self.allowed = list(allowed) if allowed is not None else None


# Metric names follow the workflow format's rule (docs/workflow-format.md)
_METRIC_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_./-]{0,127}\Z")
_collector = threading.local()


def _check_metric(name, value, step):
    if not isinstance(name, str) or not _METRIC_NAME.match(name):
        raise ValueError("invalid metric name %r (letters, digits, '_', '.', '/', '-'; "
                         "starting with a letter or '_')" % (name,))
    # numbers.Real admits numpy's scalars too
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError("metric %s: value %r is not a number" % (name, value))
    value = float(value)
    if not math.isfinite(value):
        raise ValueError("metric %s: value %r is not finite" % (name, value))
    if step is not None and (isinstance(step, bool) or not isinstance(step, numbers.Integral)):
        raise TypeError("metric %s: step %r is not an integer" % (name, step))
    return value


def log_metric(name, value, step=None):
    """Report one point of a metric from inside an op (a loss per epoch).

    On an agent the point goes to `$QANAT_METRICS`, which the agent
    streams to the coordinator; in `flow.preview()` and `op.local()` it is
    collected and printed.  Outside both it does nothing."""
    value = _check_metric(name, value, step)
    points = getattr(_collector, "points", None)
    if points is not None:
        points.append((name, value, step))
        return
    path = os.environ.get("QANAT_METRICS")
    if not path:
        return
    line = "%s %r" % (name, value) if step is None else "%s %r %d" % (name, value, int(step))
    # One write on an O_APPEND file: lines of parallel writers never mix
    data = (line + "\n").encode("ascii")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


class collecting:
    """Context manager gathering log_metric points into a list."""

    def __enter__(self):
        self.saved = getattr(_collector, "points", None)
        self.points = _collector.points = []
        return self.points

    def __exit__(self, *exc):
        _collector.points = self.saved
        return False


def metric_points(kind, name, result):
    """The points a metric op's result reports: a number under the
    metric's name, or a dict of name -> number."""
    if kind != "metric":
        return []
    if isinstance(result, dict):
        return [(k, _check_metric(k, v, None), None) for k, v in result.items()]
    return [(name, _check_metric(name, result, None), None)]


def check_passed(name, result):
    if not isinstance(result, bool):
        raise TypeError("check %s returned %r, not True or False" % (name, result))
    return result


_OPTIONS = {
    # option: (types, what the workflow format calls it)
    "on": (dict,), "backend": (str,), "slurm": (dict,), "kubernetes": (dict,),
    "resources": (dict,), "retries": (int, str), "retry_delay": (int, str),
    "retry_on": (list, tuple), "timeout": (int, str), "cache": (bool,),
    "env": (dict,), "requirements": (list, tuple), "metrics": (list, tuple),
    "warm": (bool,),
}


class Op:
    """A decorated function: an op, a metric or a check.

    Calling it inside `with qanat.Flow(...)` records a task and returns a
    handle; elsewhere it calls the function.  `.local(...)` runs it once
    here, printing its result and metrics."""

    def __init__(self, fn, kind, options, line):
        if not callable(fn):
            raise TypeError("@qanat.%s decorates a function, not %r" % (kind, fn))
        for key, value in options.items():
            types = _OPTIONS.get(key)
            if key == "severity" and kind == "check":
                if value not in ("error", "warning"):
                    raise ValueError("check severity must be 'error' or 'warning', not %r"
                                     % (value,))
                continue
            if types is None:
                raise TypeError("unknown option %r for @qanat.%s (use %s)"
                                % (key, kind, ", ".join(sorted(_OPTIONS))))
            if value is not None and (not isinstance(value, types) or
                                      (isinstance(value, bool) and bool not in types)):
                raise TypeError("option %s=%r of %s: expected %s" % (
                    key, value, fn.__name__, " or ".join(t.__name__ for t in types)))
        self.fn = fn
        self.kind = kind
        self.name = fn.__name__
        self.options = {k: v for k, v in options.items() if v is not None}
        self.severity = options.get("severity", "error")
        try:
            self.file = os.path.abspath(inspect.getsourcefile(fn) or "")
        except TypeError:
            self.file = ""
        # The decorator's line (co_firstlineno is the first decorator's)
        self.line = line or fn.__code__.co_firstlineno
        self.signature = inspect.signature(fn)
        self.__doc__ = fn.__doc__
        self.__name__ = fn.__name__
        self.__qualname__ = getattr(fn, "__qualname__", fn.__name__)
        self.__module__ = fn.__module__
        self.__wrapped__ = fn

    def __repr__(self):
        return "<qanat %s %s (%s:%d)>" % (self.kind, self.name,
                                          os.path.basename(self.file), self.line)

    @property
    def returns(self):
        """'file', 'dir' or 'value': how the result travels."""
        ann = self.signature.return_annotation
        if ann is File or ann == "File" or ann == "qanat.File":
            return "file"
        if ann is Dir or ann == "Dir" or ann == "qanat.Dir":
            return "dir"
        return "value"

    def __call__(self, *args, **kwargs):
        from . import flow as _flow
        current = _flow.current()
        if current is None:
            return self.fn(*args, **kwargs)
        caller = sys._getframe(1)
        return current._record(self, args, kwargs, caller.f_code.co_filename, caller.f_lineno)

    def local(self, *args, **kwargs):
        """Runs the function once, in this process and directory, printing
        its result, the metrics it reports and, for a check, whether it
        passed; returns the result."""
        from .flow import outside_flows
        with collecting() as points, outside_flows():
            result = self.fn(*args, **kwargs)
        points += metric_points(self.kind, self.name, result)
        print("%s -> %r" % (self.name, result))
        for name, value, step in points:
            print("  metric %s = %g%s" % (name, value, "" if step is None else " (step %d)" % step))
        if self.kind == "check":
            passed = check_passed(self.name, result)
            print("  check %s (%s): %s" % (self.name, self.severity,
                                           "passed" if passed else "FAILED"))
        return result


def _decorator(kind, fn, options):
    line = sys._getframe(2).f_lineno
    if fn is not None:
        return Op(fn, kind, options, None)
    return lambda f: Op(f, kind, options, line)


def op(fn=None, *, on=None, backend=None, slurm=None, kubernetes=None, resources=None,
       retries=None, retry_delay=None, retry_on=None, timeout=None, cache=None, env=None,
       requirements=None, metrics=None, warm=None):
    """Marks a function as an op: one task of a flow.

    Options are the workflow format's task keys (docs/workflow-format.md):
    `on={"env": "hpc"}` (agent labels), `backend="slurm"`,
    `slurm={"partition": "gpu"}`, `kubernetes={...}`,
    `resources={"gpus": 1, "memory": "8G"}`, `retries=2`, `retry_delay="10s"`,
    `retry_on=[...]`, `timeout="2h"`, `cache=True`, `env={...}`,
    `metrics=[names]` (informational), `requirements=["numpy>=1.26"]`
    (recorded and shown: agents do not install packages), `warm=False`
    (always a new process, even on an agent with warm Python workers)."""
    return _decorator("op", fn, dict(on=on, backend=backend, slurm=slurm, kubernetes=kubernetes,
                                     resources=resources, retries=retries,
                                     retry_delay=retry_delay, retry_on=retry_on,
                                     timeout=timeout, cache=cache, env=env,
                                     requirements=requirements, metrics=metrics, warm=warm))


def metric(fn=None, **options):
    """Marks a function whose result is reported as a metric of its task:
    a number, named after the function, or a dict of name -> number.
    Takes the same options as `op`."""
    return _decorator("metric", fn, options)


def check(fn=None, *, severity="error"):
    """Marks a predicate as a check.  When it returns False the run fails
    (severity "error") or succeeds with warnings ("warning").  It runs in
    the task that produced its arguments and is reported as the metric
    `check.NAME` (1 passed, 0 failed) with the check `check.NAME == 1`,
    so the CLI and the UI show it as any other check."""
    return _decorator("check", fn, {"severity": severity})
