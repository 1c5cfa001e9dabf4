"""What the fakes of REST engines (fake_ray.py, fake_airflow.py) share: a
threaded HTTP server on loopback, every request recorded, the requests a
reference does not allow kept in `violations` (a test asserts it empty),
a bearer token that can expire, and injected faults (an HTTP status for
the next few matching requests, with Retry-After) and slow answers."""
import http.server
import json
import re
import socketserver
import threading
import time
import urllib.parse


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class FakeServer:
    def __init__(self, token=None):
        self.token = token
        self.expired = False
        self.delay_s = 0.0
        self.requests, self.violations, self.faults = [], [], []
        self.lock = threading.Lock()
        self.server = None

    def serve(self, handler, port=0):
        self.server = Server(("127.0.0.1", port), type("H", (handler,), {"owner": self}))
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.server.server_address[1]

    def stop_server(self):
        if self.server:
            self.server.shutdown()
            self.server.server_close()

    def inject(self, method, path_regex, status, count=1, retry_after=None):
        """The next count requests of method to a path matching answer status."""
        with self.lock:
            self.faults.append([method, re.compile(path_regex), status, count, retry_after])

    def expire_token(self):
        self.expired = True

    def set_token(self, token):
        self.token, self.expired = token, False

    def find(self, method, path_part=""):
        with self.lock:
            return [r for r in self.requests if r["method"] == method and path_part in r["path"]]

    def violation(self, text):
        with self.lock:
            self.violations.append(text)

    def take_fault(self, method, path):
        """The fault for this request, (status, retry_after), or None."""
        with self.lock:
            for fault in self.faults:
                if fault[3] > 0 and fault[0] == method and fault[1].search(path):
                    fault[3] -= 1
                    return fault[2], fault[4]
        return None


class Handler(http.server.BaseHTTPRequestHandler):
    owner = None
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.guarded("GET")

    def do_POST(self):
        self.guarded("POST")

    def do_PUT(self):
        self.guarded("PUT")

    def do_PATCH(self):
        self.guarded("PATCH")

    def do_DELETE(self):
        self.guarded("DELETE")

    def handle(self):
        try:
            super().handle()
        except ConnectionError:
            pass                # the client went between requests

    def guarded(self, method):
        try:
            self.handle_method(method)
        except ConnectionError:
            pass                # the client went (an agent killed mid-call)

    def reply(self, status, data, content_type, headers=()):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        try:
            self.wfile.write(data)
        except OSError:
            pass                # the client went (an agent killed mid-call)

    def record(self, method):
        """Reads and records the request: (path, query, raw body, JSON body)."""
        fake = self.owner
        parsed = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(parsed.query, keep_blank_values=True)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw
        with fake.lock:
            fake.requests.append({"method": method, "path": parsed.path, "query": query,
                                  "headers": dict(self.headers.items()), "body": body,
                                  "time": time.time()})
        if fake.delay_s:
            time.sleep(fake.delay_s)
        return parsed.path, query, raw, body

    def bearer_ok(self):
        fake = self.owner
        auth = self.headers.get("Authorization") or ""
        return fake.token is not None and auth == "Bearer " + fake.token and not fake.expired

    def handle_method(self, method):
        raise NotImplementedError
