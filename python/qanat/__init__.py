"""qanat: run pipelines across your own infrastructure, from Python.

Two halves, both standard library only:

- the client (`Client`, `Run`, the errors) speaks the coordinator's
  HTTP/JSON API (docs/http-api.md): start and follow runs, read logs,
  metrics and artifacts, publish workflows with their code;
- authoring (`op`, `metric`, `check`, `Flow`) turns decorated Python
  functions into a workflow: previewed in-process, emitted as the same
  YAML `qanat run` reads, published and run on any agent, where each op
  runs under `python3 -m qanat.runtime`.

See docs/python.md.
"""

from .client import Client, Run
from .errors import QanatError, NotFound, PermissionDenied, Unreachable, InvalidWorkflow, Conflict
from .op import Op, op, metric, check, log_metric, File, Dir, Param
from .flow import Flow, Preview

__all__ = [
    "Client", "Run",
    "QanatError", "NotFound", "PermissionDenied", "Unreachable", "InvalidWorkflow", "Conflict",
    "Op", "op", "metric", "check", "log_metric", "File", "Dir", "Param",
    "Flow", "Preview",
]
