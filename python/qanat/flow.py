"""Flow: a graph of op calls, previewed here or run on the agents.

    with qanat.Flow("ml-pipeline", params={"epochs": 20}) as flow:
        data = prepare()
        model = train(data, flow.params.epochs)

Inside the block each op call records a node and returns a handle.  The
graph is then
- run eagerly in this process by `flow.preview()` (no coordinator);
- written as a workflow in the YAML format `qanat run` reads, by
  `flow.to_yaml()`: one task per op call, running
  `python3 -m qanat.runtime FLOW TASK` in a copy of the flow's code
  folder, which also carries the qanat package (under .qanat/lib, put on
  PYTHONPATH by the task's command, so agents need no qanat installed)
  and the flow's call graph (.qanat/flows/FLOW.json);
- published or run through a `qanat.Client` (`publish()`, `run()`),
  errors of the generated YAML mapped back to the Python line of the op.
"""

import base64
import inspect
import json
import os
import re
import shlex
import sys
import tempfile
import threading

from . import _values, _yaml
from .op import File, Dir, Param, Op, collecting, metric_points, check_passed, _PARAM_TYPES

__all__ = ["Flow", "Preview", "current"]

_NAME = re.compile(r"[A-Za-z0-9_.-]{1,128}\Z")
_state = threading.local()
# The runtime sets this while it imports the flow's module on an agent
RUNTIME_ACTIVE = False


def current():
    """The innermost Flow whose `with` block is running, or None."""
    stack = getattr(_state, "stack", None)
    return stack[-1] if stack else None


class outside_flows:
    """Context manager: op calls are plain calls again (an op that calls
    another op while it is previewed, inside a `with Flow` block)."""

    def __enter__(self):
        self.saved = getattr(_state, "stack", None)
        _state.stack = []

    def __exit__(self, *exc):
        _state.stack = self.saved
        return False


class Handle:
    """The future result of an op call inside a flow: pass it to other
    ops.  It has no value while the flow is being built."""

    def __init__(self, node):
        self._node = node

    def __repr__(self):
        return "<result of %s>" % self._node.task

    def __bool__(self):
        raise TypeError("%r is the future result of an op; pass it to another op, it has no "
                        "value while the flow is built (use flow.preview() to see values)" % self)

    def __iter__(self):
        raise TypeError("%r is the future result of an op; it cannot be unpacked or iterated "
                        "while the flow is built: return one value per op" % self)

    def __getitem__(self, key):
        raise TypeError("%r is the future result of an op; pass it whole to the next op, which "
                        "gets the value and can take [%r] of it" % (self, key))


class ParamHandle:
    """A flow parameter (`flow.params.NAME`): pass it to ops, which
    receive the run's value, converted to the parameter's type."""

    def __init__(self, flow, name):
        self._flow = flow
        self.name = name

    def __repr__(self):
        return "<param %s>" % self.name

    def __bool__(self):
        raise TypeError("%r has no value while the flow is built; pass it to an op" % self)


class _Params:
    def __init__(self, flow):
        self._flow = flow

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        return self[name]

    def __getitem__(self, name):
        if name not in self._flow._params:
            raise AttributeError("flow %r has no param %r (declared: %s)" % (
                self._flow.name, name, ", ".join(self._flow._params) or "none"))
        return ParamHandle(self._flow, name)


class _Node:
    """One op call: becomes a task (or a check inside another task)."""

    def __init__(self, op, args, file, line):
        self.op = op
        self.args = args            # [(name, kind, value)] in signature order
        self.file = file
        self.line = line
        self.task = None
        self.host = None            # for a check: the node whose task runs it
        self.checks = []            # checks this node's task runs

    def handles(self):
        return [v for _, _, v in self.args if isinstance(v, Handle)]


def _param_type(value):
    for t in (bool, int, float, str):
        if type(value) is t:
            return _PARAM_TYPES[t]
    return None


def param_from_text(text, ptype, name):
    """The Python value of a parameter as the coordinator passes it."""
    try:
        if ptype == "int":
            return int(text)
        if ptype == "float":
            return float(text)
    except ValueError:
        raise ValueError("parameter %s=%r is not a valid %s" % (name, text, ptype)) from None
    if ptype == "bool":
        low = text.strip().lower()
        if low in ("true", "yes", "on", "1"):
            return True
        if low in ("false", "no", "off", "0"):
            return False
        raise ValueError("parameter %s=%r is not a bool" % (name, text))
    return text


def param_text(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class Flow:
    """A named graph of op calls; a context manager recording the op
    calls made inside its block.

    params: name -> default value (its type is the value's), a type
    (`int`, `qanat.File`: a required parameter), or a `qanat.Param`.
    A parameter without a type takes it from the annotation of the first
    op argument it is passed to.  requirements: packages the flow's code
    needs on the agents (recorded and shown; agents install nothing).
    code_dir: the folder shipped as the tasks' code (default: the folder
    of the file that creates the flow; in a notebook, the current
    directory).  description and keep_runs are the workflow's keys;
    python is the interpreter tasks run ops with."""

    def __init__(self, name, params=None, description=None, requirements=None,
                 code_dir=None, keep_runs=None, python="python3"):
        if not isinstance(name, str) or not _NAME.match(name) or ".." in name:
            raise ValueError("invalid flow name %r (letters, digits, '_', '.', '-', at most "
                             "128 characters, no '..')" % (name,))
        caller = sys._getframe(1)
        self.name = name
        self.description = description
        self.requirements = list(requirements or [])
        self.keep_runs = keep_runs
        self.python = python
        self.file = os.path.abspath(caller.f_code.co_filename)
        self.line = caller.f_lineno
        if code_dir is None:
            # A notebook cell or the interactive prompt has no folder of
            # its own: the code is the current directory's
            code_dir = os.getcwd() if _interactive(self.file) else os.path.dirname(self.file)
        self.code_dir = os.path.abspath(code_dir)
        self._params = {}
        for pname, spec in (params or {}).items():
            if not isinstance(pname, str) or not _NAME.match(pname):
                raise ValueError("invalid param name %r" % (pname,))
            if spec is None:
                spec = Param()          # required, typed by the op argument it reaches
            elif not isinstance(spec, Param):
                spec = (Param(type=spec) if isinstance(spec, type) else Param(default=spec))
            if (spec.type is None and spec.default is not _missing()
                    and _param_type(spec.default) is None):
                raise TypeError("param %s: default %r is not an int, float, bool or str"
                                % (pname, spec.default))
            self._params[pname] = spec
        self.params = _Params(self)
        self.nodes = []
        self._tasks = {}
        self._yaml = None

    # -- building ---------------------------------------------------------
    def __enter__(self):
        if not hasattr(_state, "stack"):
            _state.stack = []
        _state.stack.append(self)
        return self

    def __exit__(self, *exc):
        _state.stack.remove(self)
        return False

    def _record(self, op, args, kwargs, file, line):
        try:
            bound = op.signature.bind(*args, **kwargs)
        except TypeError as e:
            raise TypeError("%s:%d: %s(): %s" % (file, line, op.name, e)) from None
        bound.apply_defaults()
        recorded = []
        for pname, value in bound.arguments.items():
            kind = op.signature.parameters[pname].kind
            values = (list(value) if kind == inspect.Parameter.VAR_POSITIONAL else
                      list(value.values()) if kind == inspect.Parameter.VAR_KEYWORD else [value])
            for v in values:
                if isinstance(v, (Handle, ParamHandle)) and kind in (
                        inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
                    raise TypeError("%s:%d: %s(): pass results and params as named "
                                    "arguments, not through *%s" % (file, line, op.name, pname))
                if isinstance(v, ParamHandle) and v._flow is not self:
                    raise ValueError("%s:%d: %s(): param %s belongs to another flow"
                                     % (file, line, op.name, v.name))
                if isinstance(v, Handle) and v._node not in self.nodes:
                    raise ValueError("%s:%d: %s(): %r comes from another flow"
                                     % (file, line, op.name, v))
                if not isinstance(v, (Handle, ParamHandle)) and _nested_handle(v):
                    raise TypeError("%s:%d: %s(): argument %s holds a result or a param inside "
                                    "a list or dict; pass each as an argument of its own"
                                    % (file, line, op.name, pname))
                self._infer_param_type(op, pname, v)
            recorded.append((pname, kind, value))
        node = _Node(op, recorded, os.path.abspath(file), line)
        node.task = self._task_name(op.name)
        self.nodes.append(node)
        self._yaml = None
        if op.kind == "check":
            producers = {id(h._node): h._node for h in node.handles()}
            if len(producers) == 1:
                node.host = next(iter(producers.values()))
                node.host.checks.append(node)
            return None
        return Handle(node)

    def _infer_param_type(self, op, pname, value):
        if not isinstance(value, ParamHandle):
            return
        spec = self._params[value.name]
        if spec.type is None and spec.default is _missing():
            ann = op.signature.parameters[pname].annotation
            if ann in _PARAM_TYPES:
                spec.type = ann

    def _task_name(self, base):
        name, n = base, 1
        while name in self._tasks:
            n += 1
            name = "%s-%d" % (base, n)
        self._tasks[name] = True
        return name

    def _ptype(self, name):
        spec = self._params[name]
        if spec.type is not None:
            return _PARAM_TYPES[spec.type]
        if spec.default is not _missing():
            return _param_type(spec.default)
        return "string"

    # -- the generated workflow -------------------------------------------
    def _module_of(self, op):
        if _interactive(op.file):
            raise ValueError("op %s is defined in a notebook cell or at the prompt; agents "
                             "import ops from files: move it into a .py module in the code "
                             "folder %s and import it" % (op.name, self.code_dir))
        rel = os.path.relpath(op.file, self.code_dir)
        outside = not op.file or rel.startswith(".." + os.sep) or rel == ".." or \
            os.path.isabs(rel)
        if outside and op.__module__ not in (None, "__main__") and "<locals>" not in \
                op.__qualname__:
            # An op of an installed library: agents import it by its name
            # (and need the library installed, as any requirement)
            return op.__module__
        if outside:
            raise ValueError("%s:%d: op %s is defined in %s, outside the flow's code folder %s "
                             "(which is what agents get): move it there, or give "
                             "Flow(code_dir=...)" % (op.file, op.line, op.name, op.file,
                                                     self.code_dir))
        if "<locals>" in op.__qualname__:
            raise ValueError("%s:%d: op %s is defined inside a function; define ops at the top "
                             "level of a module so that agents can import them"
                             % (op.file, op.line, op.name))
        parts = os.path.splitext(rel)[0].split(os.sep)
        if parts[-1] == "__init__":
            parts.pop()
        return ".".join(parts)

    def _arg_spec(self, node, value):
        if isinstance(value, ParamHandle):
            ptype = self._ptype(value.name)
            return {"param": value.name, "type": ptype}
        if isinstance(value, Handle):
            if value._node is node.host or value._node is node:
                return {"self": True}
            return {"input": value._node.task, "as": value._node.op.returns}
        if _values._json_exact(value):
            return {"literal": value}
        try:
            data = _values.encode(value, node.op.name)
        except _values.UnpicklableValue as e:
            raise _values.UnpicklableValue("%s:%d: an argument of %s() cannot be pickled (%s)" % (
                node.file, node.line, node.op.name, e.__cause__)) from e
        return {"encoded": base64.b64encode(data).decode("ascii")}

    def _call_spec(self, node):
        args = []
        for pname, kind, value in node.args:
            if kind == inspect.Parameter.VAR_POSITIONAL:
                args.append([pname, "*", [self._arg_spec(node, v) for v in value]])
            elif kind == inspect.Parameter.VAR_KEYWORD:
                args.append([pname, "**", {k: self._arg_spec(node, v) for k, v in value.items()}])
            else:
                args.append([pname, "/" if kind == inspect.Parameter.POSITIONAL_ONLY else "=",
                             self._arg_spec(node, value)])
        return {"module": self._module_of(node.op), "function": node.op.__qualname__,
                "kind": node.op.kind, "name": node.op.name, "severity": node.op.severity,
                "returns": node.op.returns, "args": args, "task": node.task,
                "source": "%s:%d" % (os.path.relpath(node.file, self.code_dir), node.line)}

    def spec(self):
        """The call graph the runtime reads (.qanat/flows/NAME.json)."""
        tasks = {}
        for node in self.nodes:
            if node.host is not None:
                continue
            entry = self._call_spec(node)
            entry["checks"] = [self._call_spec(c) for c in node.checks]
            entry["requirements"] = sorted(set(self.requirements)
                                           | set(node.op.options.get("requirements", [])))
            tasks[node.task] = entry
        return {"flow": self.name, "version": 1, "tasks": tasks}

    def _task_yaml(self, node):
        op_origin = (node.op.file, node.op.line, node.task)
        call_origin = (node.file, node.line, node.task)
        task = _yaml.Located({}, call_origin, "%s:%d: %s %s()" % (
            os.path.relpath(node.file, self.code_dir), node.line, node.op.kind, node.op.name))
        # A run without the flow's code (a stored version run by name) is
        # told so, rather than failing on a missing module
        command = ('[ -d .qanat/lib ] || { echo "qanat: this run has no code of the flow: '
                   'start it with flow.run() or publish it with flow.publish()" >&2; exit 2; }; '
                   'PYTHONPATH="$PWD/.qanat/lib${PYTHONPATH:+:$PYTHONPATH}" exec %s -m '
                   'qanat.runtime %s %s' % (shlex.quote(self.python), shlex.quote(self.name),
                                            shlex.quote(node.task)))
        task["run"] = command
        inputs = _yaml.Located({}, call_origin)
        runs = [node] + node.checks
        for n in runs:
            for pname, kind, value in n.args:
                values = value if kind == inspect.Parameter.VAR_POSITIONAL else \
                    value.values() if kind == inspect.Parameter.VAR_KEYWORD else [value]
                for v in values:
                    if isinstance(v, Handle) and v._node is not node:
                        inputs[v._node.task] = {"from": v._node.task + ".result",
                                                "path": ".qanat/in/" + v._node.task}
                    elif isinstance(v, ParamHandle) and self._ptype(v.name) == "artifact":
                        inputs["param-" + v.name] = {"param": v.name,
                                                     "path": ".qanat/param/" + v.name}
        if inputs:
            task["inputs"] = inputs
        options = dict(node.op.options) if node.host is None else {}
        for key in ("on", "backend", "slurm", "kubernetes", "resources", "retries",
                    "retry_delay", "retry_on", "timeout", "cache", "env"):
            if key in options:
                value = options[key]
                if isinstance(value, dict):
                    value = _yaml.Located(value, op_origin)
                elif isinstance(value, (list, tuple)):
                    value = _OList(value, op_origin)
                else:
                    value = _OStr(param_text(value), op_origin)
                task[key] = value
        # An agent with warm Python workers may run it as a call in one
        # (workers are `python3`: another interpreter always runs as a process)
        warm = options.get("warm", True) and self.python == "python3"
        task["warm"] = _OStr("true" if warm else "false", op_origin)
        if node.op.kind != "check":
            task["outputs"] = {"result": ".qanat/out/result"}
            if node.op.returns == "value":
                task["outputs"]["value"] = {"value": "true"}
        metrics = list(options.get("metrics", []))
        if node.op.kind == "metric" and node.op.signature.return_annotation not in (
                dict, "dict"):
            metrics.append(node.op.name)
        checks = []
        for c in ([node] if node.op.kind == "check" else node.checks):
            metrics.append("check." + c.task)
            checks.append(_yaml.Located({"expr": "check.%s == 1" % c.task,
                                         "severity": c.op.severity}, (c.file, c.line, c.task)))
        if metrics:
            task["metrics"] = metrics
        if checks:
            task["checks"] = checks
        return task

    def _document(self):
        doc = _yaml.Located({}, (self.file, self.line, None))
        doc["name"] = self.name
        description = self.description or "generated by qanat from %s" % os.path.basename(
            self.file)
        reqs = sorted(set(self.requirements).union(
            *[n.op.options.get("requirements", []) for n in self.nodes]))
        if reqs:
            description += " (requires: %s)" % ", ".join(reqs)
        doc["description"] = description
        if self.keep_runs is not None:
            doc["keep_runs"] = self.keep_runs
        if self._params:
            params = {}
            for pname, spec in self._params.items():
                entry = {"type": self._ptype(pname)}
                if spec.default is not _missing():
                    entry["default"] = param_text(spec.default)
                if spec.allowed is not None:
                    entry["allowed"] = [param_text(a) for a in spec.allowed]
                if spec.description:
                    entry["description"] = spec.description
                params[pname] = entry
            doc["params"] = params
        tasks = {}
        for node in self.nodes:
            if node.host is None:
                tasks[node.task] = self._task_yaml(node)
        if not tasks:
            raise ValueError("%s:%d: flow %s has no ops: call ops inside its `with` block"
                             % (self.file, self.line, self.name))
        doc["tasks"] = tasks
        return doc

    def to_yaml(self):
        """The workflow this flow runs as, in the format of
        docs/workflow-format.md (every value quoted)."""
        text, origins = _yaml.dump(
            self._document(),
            "Generated by qanat from %s: edit the Python, not this file.\n"
            "Each task runs an op with `python3 -m qanat.runtime` in a copy of the code."
            % os.path.basename(self.file))
        self._yaml = (text, origins)
        return text

    def source_of(self, line):
        """(file, line, task) of the Python code that wrote YAML line
        `line` (1-based), or None."""
        if self._yaml is None:
            self.to_yaml()
        origins = self._yaml[1]
        if 1 <= line <= len(origins):
            return origins[line - 1]
        return None

    def map_errors(self, message):
        """message with every `FILE:LINE:COL: text` of the generated YAML
        rewritten as `PYFILE:PYLINE: text (task T; FILE:LINE:COL)`."""
        out = []
        for text in str(message).splitlines():
            m = re.match(r"(.*?):(\d+):(\d+): (.*)$", text)
            origin = self.source_of(int(m.group(2))) if m else None
            if origin and origin[0]:
                where = "%s:%d" % origin[:2]
                task = " (task %s; %s)" % (origin[2], text[:m.end(3)]) if origin[2] else \
                    " (%s)" % text[:m.end(3)]
                out.append("%s: %s%s" % (where, m.group(4), task))
            else:
                out.append(text)
        return "\n".join(out)

    def _invalid(self, error):
        """error (an InvalidWorkflow from the coordinator) with its
        position mapped to the Python source."""
        from .errors import InvalidWorkflow
        message = getattr(error, "message", None) or str(error)
        line = getattr(error, "line", None)
        mapped = self.map_errors(message)
        origin = self.source_of(line) if isinstance(line, int) else None
        if origin is None:
            m = re.search(r":(\d+):\d+: ", message)
            origin = self.source_of(int(m.group(1))) if m else None
        if origin is None or mapped == message:
            return error
        new = InvalidWorkflow(mapped, origin[0], origin[1], 1)
        return new

    # -- shipping and running ---------------------------------------------
    def _refuse_in_runtime(self, what):
        if RUNTIME_ACTIVE:
            raise RuntimeError("flow.%s() was called while an agent imported the flow's "
                               "module to run one op; put it under "
                               "`if __name__ == \"__main__\":`" % what)

    def code_files(self):
        """The extra files shipped with the code: the qanat package
        (.qanat/lib/qanat/) and the call graph (.qanat/flows/NAME.json)."""
        files = {}
        package = os.path.dirname(os.path.abspath(__file__))
        for entry in sorted(os.listdir(package)):
            if entry.endswith(".py") or entry == "py.typed":
                with open(os.path.join(package, entry), "rb") as f:
                    files[".qanat/lib/qanat/" + entry] = f.read()
        files[".qanat/flows/%s.json" % self.name] = (
            json.dumps(self.spec(), indent=1, sort_keys=True) + "\n").encode("utf-8")
        return files

    def _client(self, client):
        if client is not None:
            return client
        from .client import Client
        return Client()

    def _ship(self, client):
        source = self.to_yaml()
        code = client.put_tree(self.code_dir, extra_files=self.code_files())
        return source, code

    def publish(self, client=None):
        """Stores the flow as the workflow's next version (unchanged: the
        same version) with its code, which a run of that version by name
        (`qanat run NAME`) gets; returns {"name", "version", "created",
        "code"}."""
        self._refuse_in_runtime("publish")
        from .errors import InvalidWorkflow
        client = self._client(client)
        source, code = self._ship(client)
        try:
            return client.publish(source, filename=self.name + ".yaml", code=code)
        except InvalidWorkflow as e:
            raise self._invalid(e) from None

    def run(self, params=None, follow=True, client=None, no_cache=False, out=None):
        """Starts a run of this flow with params (name -> value) and
        returns its `qanat.Run`; with follow, prints its logs as they come
        and waits for it to end."""
        self._refuse_in_runtime("run")
        from .errors import InvalidWorkflow
        client = self._client(client)
        source, code = self._ship(client)
        texts = self._run_params(client, params or {})
        try:
            run = client.start(None, params=texts, source=source,
                               filename=self.name + ".yaml", code=code, no_cache=no_cache)
        except InvalidWorkflow as e:
            raise self._invalid(e) from None
        if follow:
            out = out or sys.stdout
            print("run %s of %s started" % (run.id, self.name), file=out, flush=True)
            for entry in run.logs(follow=True):
                text = entry.get("text", entry.get("line", ""))
                for line in text.rstrip("\n").split("\n"):
                    print("%-12s | %s" % (entry.get("task", ""), line), file=out, flush=True)
            run.wait()
            print("run %s %s" % (run.id, run.status), file=out, flush=True)
        return run

    def _run_params(self, client, params):
        """params as the run's texts; a local path given for a File or Dir
        parameter is put first and passed on as its reference."""
        texts = {}
        for name, value in params.items():
            text = param_text(value) if not isinstance(value, os.PathLike) else os.fspath(value)
            if (name in self._params and self._ptype(name) == "artifact"
                    and not text.startswith(("file:", "dir:"))):
                if os.path.isdir(text):
                    text = client.put_tree(text)
                elif os.path.isfile(text):
                    import hashlib
                    digest = hashlib.sha256()
                    with open(text, "rb") as f:
                        for block in iter(lambda: f.read(1 << 20), b""):
                            digest.update(block)
                    client.put_file(text, digest.hexdigest(), os.path.getsize(text))
                    text = "file:" + digest.hexdigest()
                else:
                    raise FileNotFoundError("parameter %s: no file or directory %s"
                                            % (name, text))
            texts[name] = text
        return texts

    # -- preview ------------------------------------------------------------
    def preview(self, params=None, out=None, workdir=None):
        """Runs the whole flow here, now, each op in a fresh temporary
        directory, values passed through the same encoding as on agents;
        prints each op's result, metrics and checks; returns a Preview.
        An op that raises stops the preview with its exception."""
        self._refuse_in_runtime("preview")
        out = out or sys.stdout
        values = {}
        for pname, spec in self._params.items():
            ptype = self._ptype(pname)
            if params and pname in params:
                raw = params[pname]
            elif spec.default is not _missing():
                raw = spec.default
            else:
                raise ValueError("preview: parameter %r is required (it has no default)"
                                 % pname)
            if ptype == "artifact":
                values[pname] = (File if spec.type is File else Dir)(os.path.abspath(raw))
            else:
                values[pname] = param_from_text(param_text(raw), ptype, pname)
        unknown = set(params or {}) - set(self._params)
        if unknown:
            raise ValueError("preview: unknown parameter(s) %s (declared: %s)" % (
                ", ".join(sorted(unknown)), ", ".join(self._params) or "none"))
        root = workdir or tempfile.mkdtemp(prefix="qanat-preview-%s-" % self.name)
        result = Preview(self.name, root)
        with outside_flows():
            self._preview_nodes(values, result, root, out)
        result.status = ("failed" if result.failed else
                         "succeeded_with_warnings" if result.warnings else "succeeded")
        print("preview %s: %s" % (self.name, result.status), file=out, flush=True)
        return result

    def _preview_nodes(self, values, result, root, out):
        for node in self.nodes:
            if node.host is not None:
                continue
            blocked = [h._node.task for n in [node] + node.checks for h in n.handles()
                       if h._node is not node and h._node.task not in result.results]
            if blocked:
                result.skipped.append(node.task)
                print("%-12s skipped (needs %s)" % (node.task, ", ".join(blocked)), file=out)
                continue
            self._preview_task(node, values, result, root, out)

    def _resolve(self, node, value, values, result, own):
        if isinstance(value, ParamHandle):
            return values[value.name]
        if isinstance(value, Handle):
            return own if value._node is node.host or value._node is node else \
                result.results[value._node.task]
        return value

    def _call_args(self, node, values, result, own=None):
        pos, kw = [], {}
        for pname, kind, value in node.args:
            r = lambda v: self._resolve(node, v, values, result, own)  # noqa: E731
            if kind == inspect.Parameter.POSITIONAL_ONLY:
                pos.append(r(value))
            elif kind == inspect.Parameter.VAR_POSITIONAL:
                pos.extend(r(v) for v in value)
            elif kind == inspect.Parameter.VAR_KEYWORD:
                kw.update({k: r(v) for k, v in value.items()})
            else:
                kw[pname] = r(value)
        return pos, kw

    def _preview_task(self, node, values, result, root, out):
        cwd = os.path.join(root, node.task)
        os.makedirs(cwd, exist_ok=True)
        saved = os.getcwd()
        task_metrics = result.metrics.setdefault(node.task, {})
        try:
            os.chdir(cwd)
            with collecting() as points:
                own = None
                if node.op.kind != "check":
                    pos, kw = self._call_args(node, values, result)
                    own = node.op.fn(*pos, **kw)
                    own = _travel(node.op, own)
                    points += metric_points(node.op.kind, node.op.name, own)
                    result.results[node.task] = own
                checks = [node] if node.op.kind == "check" else node.checks
                outcomes = []
                for c in checks:
                    pos, kw = self._call_args(c, values, result, own)
                    passed = check_passed(c.task, c.op.fn(*pos, **kw))
                    points.append(("check." + c.task, 1.0 if passed else 0.0, None))
                    outcomes.append((c, passed))
        finally:
            os.chdir(saved)
        for name, value, step in points:
            task_metrics.setdefault(name, []).append((value, step))
        if node.op.kind != "check":
            print("%-12s -> %s" % (node.task, _short(result.results[node.task])), file=out)
        shown = {k: v for k, v in task_metrics.items() if not k.startswith("check.")}
        if shown:
            print("%-12s    metrics: %s" % ("", ", ".join(
                "%s=%.4g%s" % (k, v[-1][0], " (%d points)" % len(v) if len(v) > 1 else "")
                for k, v in shown.items())), file=out)
        for c, passed in outcomes:
            result.checks.append((node.task, c.task, c.op.severity, passed))
            print("%-12s    check %s (%s): %s" % ("", c.task, c.op.severity,
                                                  "passed" if passed else "FAILED"), file=out)
            if not passed and c.op.severity == "error":
                result.failed.append(node.task)
                result.results.pop(node.task, None)
            elif not passed:
                result.warnings.append(c.task)
        out.flush()


class _OStr(str):
    """An option's text, with the op decorator's line as its origin."""

    def __new__(cls, value, origin):
        s = super().__new__(cls, value)
        s.origin = origin
        return s


class _OList(list):
    def __init__(self, value, origin):
        super().__init__(value)
        self.origin = origin


def _nested_handle(value, depth=0):
    if isinstance(value, (Handle, ParamHandle)):
        return True
    if depth > 20 or isinstance(value, (str, bytes)):
        return False
    if isinstance(value, dict):
        value = list(value.keys()) + list(value.values())
    if isinstance(value, (list, tuple, set, frozenset)):
        return any(_nested_handle(v, depth + 1) for v in value)
    return False


def _interactive(path):
    """True for code that has no file an agent could import: a notebook
    cell (ipykernel keeps them in temporary files), the prompt, exec()."""
    base = os.path.basename(path)
    return (not os.path.isfile(path) or base.startswith("<")
            or os.sep + "ipykernel_" in path)


def _missing():
    from .op import _MISSING
    return _MISSING


def _travel(op, value):
    """value as the next op gets it on an agent: a File/Dir by absolute
    path, anything else through the result file's encoding."""
    if op.returns in ("file", "dir"):
        if not isinstance(value, (str, os.PathLike)):
            raise TypeError("op %s is annotated -> qanat.%s but returned %r, not a path"
                            % (op.name, "File" if op.returns == "file" else "Dir", value))
        path = os.path.abspath(os.fspath(value))
        want_dir = op.returns == "dir"
        if not (os.path.isdir(path) if want_dir else os.path.isfile(path)):
            raise FileNotFoundError("op %s returned %s, which is not a %s" % (
                op.name, path, "directory" if want_dir else "file"))
        return (Dir if want_dir else File)(path)
    if isinstance(value, (File, Dir)):
        raise TypeError("op %s returned a qanat.%s but is not annotated -> qanat.%s: annotate "
                        "its return so that the file travels" % (
                            op.name, type(value).__name__, type(value).__name__))
    return _values.decode(_values.encode(value, op.name), "result of " + op.name)


def _short(value, limit=100):
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


class Preview:
    """What flow.preview() did: results (task -> value), metrics
    (task -> name -> [(value, step)]), checks [(task, check, severity,
    passed)], failed/skipped tasks, status as a run's."""

    def __init__(self, flow, workdir):
        self.flow = flow
        self.workdir = workdir
        self.results = {}
        self.metrics = {}
        self.checks = []
        self.failed = []
        self.skipped = []
        self.warnings = []
        self.status = None

    def __repr__(self):
        return "<Preview %s: %s, %d tasks>" % (self.flow, self.status, len(self.results))
