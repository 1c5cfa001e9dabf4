"""A small HTTP client for the coordinator's HTTP API tests, on
http.client only: JSON requests checked against docs/openapi.json and the
security headers every response must carry, and a Server-Sent Events
reader that can be dropped and resumed with Last-Event-ID."""
import http.client
import json
import socket
import time

import openapi_check
from harness import TestFailure, check

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")


class Response:
    def __init__(self, method, path, status, headers, body):
        self.method = method
        self.path = path
        self.status = status
        self.headers = headers              # [(name lower-case, value)]
        self.body = body

    def header(self, name):
        values = self.all(name)
        return values[-1] if values else None

    def all(self, name):
        return [v for k, v in self.headers if k == name.lower()]

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError:
            raise TestFailure("%s %s %d: not JSON: %r" % (self.method, self.path, self.status, self.body[:300]))

    def __repr__(self):
        return "%s %s -> %d %s" % (self.method, self.path, self.status, self.body[:400])


def check_security_headers(r):
    """The headers every response carries, whatever its status."""
    check(r.header("content-security-policy") == CSP,
          "%s %s %d: Content-Security-Policy %r" % (r.method, r.path, r.status, r.header("content-security-policy")))
    check(r.header("x-content-type-options") == "nosniff", "%s %s: no nosniff" % (r.method, r.path))
    check(r.header("referrer-policy") == "no-referrer", "%s %s: Referrer-Policy %r" % (
        r.method, r.path, r.header("referrer-policy")))
    check(r.header("x-frame-options") == "DENY", "%s %s: X-Frame-Options %r" % (
        r.method, r.path, r.header("x-frame-options")))
    if r.path.startswith("/api/"):
        check(r.header("cache-control") == "no-store", "%s %s: Cache-Control %r" % (
            r.method, r.path, r.header("cache-control")))


class Client:
    """Requests to 127.0.0.1:port with a bearer token (or none), a new
    connection per request unless keep is set."""

    def __init__(self, port, token=None, host="127.0.0.1", timeout=15, source=None):
        self.port = port
        self.token = token
        self.host = host
        self.timeout = timeout
        self.source = (source, 0) if source else None     # a local address to connect from

    def with_token(self, token):
        return Client(self.port, token, self.host, self.timeout)

    def from_address(self, source):
        return Client(self.port, self.token, self.host, self.timeout, source)

    def connection(self, timeout=None):
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout or self.timeout,
                                          source_address=self.source)

    def request(self, method, path, body=None, headers=None, raw=None, validate=True):
        """Sends one request: body (an object) as JSON, or raw bytes.
        Checks the security headers, and a JSON body against the
        documented response (validate=False for undocumented paths)."""
        hdrs = {}
        if self.token:
            hdrs["Authorization"] = "Bearer " + self.token
        if body is not None:
            raw = json.dumps(body).encode()
        if raw is not None:
            hdrs["Content-Type"] = "application/json"
        hdrs.update(headers or {})
        conn = self.connection()
        try:
            conn.request(method, path, body=raw, headers=hdrs)
            resp = conn.getresponse()
            data = resp.read()
            r = Response(method, path, resp.status, [(k.lower(), v) for k, v in resp.getheaders()], data)
        finally:
            conn.close()
        check_security_headers(r)
        ctype = r.header("content-type") or ""
        # 416 is the range protocol's answer (Content-Range: bytes */SIZE)
        if r.status >= 400 and r.status != 416 and (path.startswith("/api/") or path == "/metrics"):
            check(ctype.startswith("application/json"), "%r: error without a JSON body (%s)" % (r, ctype))
            err = r.json()
            openapi_check.validate(err, {"$ref": "#/components/schemas/Error"})
        if validate and path.startswith("/api/") and ctype.startswith("application/json"):
            openapi_check.check_path(method, path, r.status, r.json())
        elif validate and path.startswith("/api/") and r.status < 300 and r.status != 204:
            openapi_check.response_schema(method, openapi_check.template_of(method, path), r.status)
        return r

    def expect(self, status, method, path, body=None, **kw):
        r = self.request(method, path, body, **kw)
        check(r.status == status, "expected %d: %r" % (status, r))
        return r

    def get(self, path, **kw):
        return self.expect(200, "GET", path, **kw).json()

    def sse(self, path, last_event_id=None):
        return EventStream(self, path, last_event_id)


class EventStream:
    """One SSE connection: next_event() returns (event, id, data) or None
    at the end of the stream; keepalive comments are skipped."""

    def __init__(self, client, path, last_event_id=None, timeout=20):
        self.path = path
        hdrs = {"Accept": "text/event-stream"}
        if client.token:
            hdrs["Authorization"] = "Bearer " + client.token
        if last_event_id is not None:
            hdrs["Last-Event-ID"] = str(last_event_id)
        self.conn = client.connection(timeout)
        self.conn.request("GET", path, headers=hdrs)
        self.resp = self.conn.getresponse()
        r = Response("GET", path, self.resp.status, [(k.lower(), v) for k, v in self.resp.getheaders()], b"")
        check_security_headers(r)
        if self.resp.status != 200:
            r.body = self.resp.read()
            self.close()
            raise TestFailure("SSE %r" % r)
        ctype = r.header("content-type") or ""
        check(ctype.startswith("text/event-stream"), "SSE %s: Content-Type %r" % (path, ctype))
        self.comments = 0

    def next_event(self, timeout=20):
        """The next event, or None when the server closed the stream."""
        deadline = time.time() + timeout
        event, ident, data = "message", None, []
        while True:
            if time.time() > deadline:
                raise TestFailure("SSE %s: no event within %d s" % (self.path, timeout))
            try:
                line = self.resp.readline()
            except (socket.timeout, TimeoutError):
                raise TestFailure("SSE %s: no event within %d s" % (self.path, timeout))
            except (ConnectionError, http.client.IncompleteRead, OSError):
                return None
            if not line:
                return None
            line = line.decode("utf-8").rstrip("\r\n")
            if line == "":
                if data or ident is not None:
                    return event, ident, "\n".join(data)
                continue
            if line.startswith(":"):
                self.comments += 1
                continue
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "event":
                event = value
            elif field == "id":
                ident = value
            elif field == "data":
                data.append(value)

    def close(self):
        try:
            self.conn.close()
        except OSError:
            pass
