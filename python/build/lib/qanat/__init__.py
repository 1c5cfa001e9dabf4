"""qanat: run pipelines across your own infrastructure, from Python.

The client (`Client`, `Run`, the errors) speaks the coordinator's
HTTP/JSON API (docs/http-api.md): start and follow runs, read logs,
metrics and artifacts, publish workflows with their code.
Standard library only.
"""

from .client import Client, Run
from .errors import QanatError, NotFound, PermissionDenied, Unreachable, InvalidWorkflow, Conflict

__all__ = [
    "Client", "Run",
    "QanatError", "NotFound", "PermissionDenied", "Unreachable", "InvalidWorkflow", "Conflict",
]
