"""The client's transport: JSON calls, raw bodies and server-sent event
streams over urllib, every failure turned into a qanat error.

Nothing here knows the routes; client.py does.
"""
import json
import socket
import ssl
import urllib.error
import urllib.parse
import urllib.request
from typing import IO, Any, Dict, Iterator, Mapping, Optional, Tuple

from .errors import QanatError, Unreachable, error_for

USER_AGENT = "qanat-python/1"


class Transport:
    """One coordinator's HTTP API: its base URL and credential."""

    def __init__(self, url: str, token: Optional[str], timeout: float = 30.0,
                 context: Optional[ssl.SSLContext] = None) -> None:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise QanatError("the coordinator's URL must be http:// or https://HOST:PORT, not %r"
                             % url)
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.context = context

    # -----------------------------------------------------------------

    def address(self, path: str, query: Optional[Mapping[str, Any]] = None) -> str:
        """The full URL of path (already under /api/v1) with query
        arguments (None values left out)."""
        if query:
            pairs = [(k, _query_text(v)) for k, v in query.items() if v is not None]
            if pairs:
                path += "?" + urllib.parse.urlencode(pairs)
        return self.url + path

    def open(self, method: str, path: str, query: Optional[Mapping[str, Any]] = None,
             body: Optional[bytes] = None, headers: Optional[Dict[str, str]] = None,
             workflow: bool = False, timeout: Optional[float] = None) -> Any:
        """Sends a request; returns the open response (2xx or 304) for the
        caller to read and close, or raises the mapped error."""
        request = urllib.request.Request(self.address(path, query), data=body, method=method)
        request.add_header("User-Agent", USER_AGENT)
        request.add_header("Accept", "application/json")
        if self.token:
            request.add_header("Authorization", "Bearer " + self.token)
        for key, value in (headers or {}).items():
            request.add_header(key, value)
        try:
            return urllib.request.urlopen(request, timeout=timeout or self.timeout,
                                          context=self.context)
        except urllib.error.HTTPError as e:
            raise _http_error(e, workflow) from None
        except (urllib.error.URLError, OSError, ssl.SSLError) as e:
            raise _unreachable(self.url, e) from None

    def call(self, method: str, path: str, body: Optional[Any] = None,
             query: Optional[Mapping[str, Any]] = None, workflow: bool = False) -> Tuple[int, Any]:
        """A JSON call: (status, decoded body); body is sent as JSON."""
        data = None
        headers = {}
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        return self._answer(self.open(method, path, query, data, headers, workflow),
                            method, path)

    def call_raw(self, method: str, path: str, body: Any, size: int) -> Tuple[int, Any]:
        """Sends a raw body (bytes, or a binary file read to size bytes)
        with its Content-Length; returns (status, decoded JSON answer)."""
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
        return self._answer(self.open(method, path, None, body, headers,
                                      timeout=max(self.timeout, 120.0)), method, path)

    def _answer(self, response: Any, method: str, path: str) -> Tuple[int, Any]:
        """Reads and closes response: (status, its JSON or None when empty)."""
        try:
            raw = response.read()
            status = response.status
        except (OSError, ssl.SSLError) as e:
            raise _unreachable(self.url, e) from None
        finally:
            response.close()
        if not raw:
            return status, None
        try:
            return status, json.loads(raw.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            raise QanatError("the coordinator's answer to %s %s is not JSON" % (method, path),
                             status) from None

    def events(self, path: str, query: Optional[Mapping[str, Any]] = None,
               last_id: Optional[str] = None,
               timeout: float = 40.0) -> Iterator[Tuple[str, Optional[str], str]]:
        """The events of a server-sent event stream as (event, id, data),
        until the server closes it.  A connection that fails raises
        Unreachable (the caller decides whether to reconnect); comments
        and retry hints are skipped.  timeout bounds the silence between
        two lines (the server sends a keepalive every 10 s)."""
        headers = {"Accept": "text/event-stream"}
        if last_id is not None:
            headers["Last-Event-ID"] = last_id
        response = self.open("GET", path, query, None, headers, timeout=timeout)
        try:
            yield from _parse_events(response)
        except (OSError, ssl.SSLError, ValueError) as e:
            # ValueError: http.client's reader on a connection cut mid-chunk
            raise _unreachable(self.url, e) from None
        finally:
            response.close()


def _parse_events(stream: IO[bytes]) -> Iterator[Tuple[str, Optional[str], str]]:
    event, event_id, data = "message", None, []
    while True:
        raw = stream.readline()
        if not raw:
            return
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        if not line:
            if data:
                yield event, event_id, "\n".join(data)
            event, event_id, data = "message", None, []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if field == "event":
            event = value
        elif field == "id":
            event_id = value
        elif field == "data":
            data.append(value)


def _query_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _http_error(e: urllib.error.HTTPError, workflow: bool) -> QanatError:
    status = e.code
    message = e.reason if isinstance(e.reason, str) else "HTTP %d" % status
    code = field = None
    try:
        body = json.loads(e.read().decode("utf-8"))
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):
            message = str(error.get("message") or message)
            code = error.get("code")
            field = error.get("field")
    except (ValueError, UnicodeDecodeError, OSError):
        pass
    finally:
        e.close()
    return error_for(status, message, code, field, workflow)


def _unreachable(url: str, e: BaseException) -> Unreachable:
    reason = getattr(e, "reason", None) or e
    if isinstance(reason, socket.timeout) or isinstance(e, socket.timeout):
        text = "timed out"
    else:
        text = str(reason) or type(reason).__name__
    return Unreachable("cannot reach the coordinator at %s: %s" % (url, text))
