"""The exceptions of the qanat client.

Every refusal of the coordinator's HTTP API becomes one of these, holding
the server's own message: the JSON error body
``{"error": {"code", "message", "field"}}`` gives ``message``, ``code``
and ``field``, and the HTTP status picks the class.
"""
import re
from typing import Optional

__all__ = ["QanatError", "NotFound", "PermissionDenied", "Unreachable", "Conflict",
           "InvalidWorkflow", "error_for"]


class QanatError(Exception):
    """Any failure of a qanat call.

    ``message`` is the server's text (or the client's, when no server
    answered); ``status`` the HTTP status (0 when there was no answer);
    ``code`` the API's error code word (``"bad_request"``, ``"not_found"``,
    ...); ``field`` the request field at fault, when the server named one.
    """

    def __init__(self, message: str, status: int = 0, code: Optional[str] = None,
                 field: Optional[str] = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.field = field

    def __str__(self) -> str:
        return self.message


class NotFound(QanatError):
    """No such run, workflow, task, output, agent or route (HTTP 404)."""


class PermissionDenied(QanatError):
    """No valid credential (HTTP 401), or the role does not allow it (403)."""


class Conflict(QanatError):
    """The name exists already, or the content is not what was claimed (HTTP 409)."""


class Unreachable(QanatError):
    """No answer from the coordinator: connection refused, reset or timed
    out, a name that does not resolve, or a coordinator too busy to answer
    (HTTP 503)."""


_LOCATION = re.compile(r"^(?P<file>[^\n:]+):(?P<line>\d+):(?P<column>\d+): (?P<message>.*)$",
                       re.S)


class InvalidWorkflow(QanatError):
    """A workflow the coordinator refused (HTTP 400 on a workflow).

    The coordinator words such refusals ``file:line:col: message``; that
    place is parsed into ``file``, ``line`` and ``column`` (None when the
    message names no place).
    """

    def __init__(self, message: str, file: Optional[str] = None, line: Optional[int] = None,
                 column: Optional[int] = None, status: int = 400,
                 code: Optional[str] = "bad_request", field: Optional[str] = None) -> None:
        super().__init__(message, status, code, field)
        self.file = file
        self.line = line
        self.column = column

    @classmethod
    def from_message(cls, message: str, status: int = 400, code: Optional[str] = "bad_request",
                     field: Optional[str] = None) -> "InvalidWorkflow":
        """An InvalidWorkflow with its place read from a ``file:line:col:`` message."""
        match = _LOCATION.match(message.strip())
        if not match:
            return cls(message, status=status, code=code, field=field)
        return cls(message, match.group("file"), int(match.group("line")),
                   int(match.group("column")), status=status, code=code, field=field)


def error_for(status: int, message: str, code: Optional[str] = None,
              field: Optional[str] = None, workflow: bool = False) -> QanatError:
    """The exception for an HTTP error answer: by status, and a 400 on a
    request carrying a workflow (``workflow=True``) as InvalidWorkflow."""
    if status == 404:
        return NotFound(message, status, code, field)
    if status in (401, 403):
        return PermissionDenied(message, status, code, field)
    if status == 409:
        return Conflict(message, status, code, field)
    if status == 503:
        return Unreachable(message, status, code, field)
    if status == 400 and workflow:
        return InvalidWorkflow.from_message(message, status, code, field)
    return QanatError(message, status, code, field)
