"""Runs one op of a flow as a task: `python3 -m qanat.runtime FLOW TASK`.

The agent starts it in the task's working directory, a copy of the
flow's code with .qanat/lib (this package) and .qanat/flows/FLOW.json
(the call graph written by Flow.code_files).  It

1. reads the task's entry of the call graph;
2. imports the op's module from the code (a missing package fails with
   the import error and the flow's requirements as a hint);
3. builds the arguments: params from $QANAT_PARAM_<NAME> (converted to
   their types), results of other ops from their staged files
   (.qanat/in/TASK), literals from the graph;
4. calls the op, and stores its result at .qanat/out/result (a File's
   copy, a Dir's tree, or an encoded value, see _values) plus its JSON
   text as the value output `value`;
5. reports a metric op's number(s) and every check's outcome
   (`check.NAME` 1 or 0, judged by the task's `check.NAME == 1` checks)
   through $QANAT_METRICS.

Exceptions are not caught: Python prints the traceback on stderr, which
the agent keeps as the attempt's stack trace.  Nothing here uses the
network.
"""

import base64
import importlib
import json
import os
import shutil
import sys

from . import _values, flow as _flow
from .op import File, Dir, log_metric, metric_points, check_passed

RESULT = os.path.join(".qanat", "out", "result")


class MissingRequirement(ImportError):
    """A module the op imports is not installed on this agent."""


# Call graphs read, by flow name, in a warm worker (qanat._worker sets it
# to a dict): its ops all come from one code, so one flow's graph is the
# same file in every op's directory
SPEC_CACHE = None


def _load_spec(flow_name, task):
    path = os.path.join(".qanat", "flows", flow_name + ".json")
    try:
        if SPEC_CACHE is not None and flow_name in SPEC_CACHE:
            spec = SPEC_CACHE[flow_name]
        else:
            with open(path, encoding="utf-8") as f:
                spec = json.load(f)
            if SPEC_CACHE is not None:
                SPEC_CACHE[flow_name] = spec
    except OSError as e:
        raise SystemExit("qanat.runtime: cannot read %s (%s): run this in a task's working "
                         "directory, which holds the flow's code" % (path, e.strerror))
    entry = spec.get("tasks", {}).get(task)
    if entry is None:
        raise SystemExit("qanat.runtime: flow %s has no task %r (it has: %s)" % (
            flow_name, task, ", ".join(spec.get("tasks", {}))))
    return entry


def _missing(error, call, requirements):
    hint = ("this flow requires %s; " % ", ".join(requirements)) if requirements else ""
    return MissingRequirement(
        "%s (op %s, %s): %sagents do not install packages: install it where the agent "
        "runs, or use an image that has it" % (error, call["name"], call["source"], hint))


def _import(call, requirements):
    try:
        target = importlib.import_module(call["module"])
        for part in call["function"].split("."):
            target = getattr(target, part)
    except ModuleNotFoundError as e:
        raise _missing(e, call, requirements) from e
    return getattr(target, "fn", target)


def _call(call, requirements, own=None):
    """Calls the op or check of call with its arguments; an import the
    call makes that fails gets the same hint as the module's."""
    fn = _import(call, requirements)
    pos, kw = _arguments(call, own)
    try:
        return fn(*pos, **kw)
    except ModuleNotFoundError as e:
        raise _missing(e, call, requirements) from e


def _input(task, how):
    path = os.path.abspath(os.path.join(".qanat", "in", task))
    if how == "file":
        return File(path)
    if how == "dir":
        return Dir(path)
    with open(path, "rb") as f:
        return _values.decode(f.read(), "the result of " + task)


def _arg(spec, own):
    if "param" in spec:
        name, ptype = spec["param"], spec["type"]
        if ptype == "artifact":
            path = os.path.abspath(os.path.join(".qanat", "param", name))
            return Dir(path) if os.path.isdir(path) else File(path)
        variable = "QANAT_PARAM_" + "".join(c.upper() if c.isalnum() else "_" for c in name)
        return _flow.param_from_text(os.environ.get(variable, ""), ptype, name)
    if "input" in spec:
        return _input(spec["input"], spec["as"])
    if "self" in spec:
        return own
    if "literal" in spec:
        return spec["literal"]
    return _values.decode(base64.b64decode(spec["encoded"]), "an argument")


def _arguments(call, own=None):
    pos, kw = [], {}
    for name, kind, spec in call["args"]:
        if kind == "/":
            pos.append(_arg(spec, own))
        elif kind == "*":
            pos.extend(_arg(s, own) for s in spec)
        elif kind == "**":
            kw.update({k: _arg(s, own) for k, s in spec.items()})
        else:
            kw[name] = _arg(spec, own)
    return pos, kw


def _store(call, result):
    """Writes the result output; returns the text of the `value` output."""
    os.makedirs(os.path.dirname(RESULT), exist_ok=True)
    returns, name = call["returns"], call["name"]
    if returns in ("file", "dir"):
        if not isinstance(result, (str, os.PathLike)):
            raise TypeError("op %s is annotated -> qanat.%s but returned %r, not a path"
                            % (name, "File" if returns == "file" else "Dir", result))
        path = os.path.abspath(os.fspath(result))
        want_dir = returns == "dir"
        if not (os.path.isdir(path) if want_dir else os.path.isfile(path)):
            raise FileNotFoundError("op %s returned %s, which is not a %s" % (
                name, path, "directory" if want_dir else "file"))
        if os.path.abspath(RESULT).startswith(path + os.sep):
            raise ValueError("op %s returned %s, which holds the task's own output folder; "
                             "return a folder inside it" % (name, path))
        if path.startswith(os.getcwd() + os.sep) and not os.path.islink(path):
            try:
                os.replace(path, RESULT)    # the op's own file: moved, not copied
                return None
            except OSError:
                pass
        if want_dir:
            shutil.copytree(path, RESULT, symlinks=False)
        else:
            shutil.copyfile(path, RESULT)
        return None
    if isinstance(result, (File, Dir)):
        raise TypeError("op %s returned a qanat.%s but is not annotated -> qanat.%s: annotate "
                        "its return so that the file travels"
                        % (name, type(result).__name__, type(result).__name__))
    data = _values.encode(result, name)
    with open(RESULT, "wb") as f:
        f.write(data)
    return _values.json_text(result)


def _write_value(name, text):
    path = os.environ.get("QANAT_VALUES")
    if not path:
        return
    with open(path, "a", encoding="utf-8") as f:
        f.write("%s=%s\n" % (name, text))


def run_task(flow_name, task):
    """Runs task of flow_name in the current directory (see the module's
    doc); raises what the op raises."""
    entry = _load_spec(flow_name, task)
    requirements = entry.get("requirements", [])
    here = os.getcwd()
    if here not in sys.path:
        sys.path.insert(0, here)
    _flow.RUNTIME_ACTIVE = True
    result = None
    if entry["kind"] != "check":
        result = _call(entry, requirements)
        value = _store(entry, result)
        if entry["returns"] == "value":
            _write_value("value", value or "")
        for name, number, step in metric_points(entry["kind"], entry["name"], result):
            log_metric(name, number, step)
    checks = [entry] if entry["kind"] == "check" else entry.get("checks", [])
    failed = 0
    for call in checks:
        passed = check_passed(call["name"], _call(call, requirements, result))
        check_task = task if call is entry else _check_task(call)
        log_metric("check." + check_task, 1.0 if passed else 0.0)
        print("qanat: check %s (%s): %s" % (check_task, call["severity"],
                                            "passed" if passed else "FAILED"), flush=True)
        failed += not passed
    return result


def _check_task(call):
    return call.get("task") or call["name"]


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: python3 -m qanat.runtime FLOW TASK  (in a task's working directory)",
              file=sys.stderr)
        return 2
    sys.dont_write_bytecode = True
    run_task(argv[0], argv[1])
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
