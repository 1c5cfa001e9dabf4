"""A local S3-compatible server for qanat's S3 tests.

S3Server starts tests/s3/server.js (node): s3rver on a free loopback
port, with its data in a temporary directory and one bucket, and in front
of it a checking proxy that recomputes every request's SigV4 signature
with aws4 (an implementation independent of libcurl's) and checks the
payload hash against the body.  A mismatch gets S3's answer (403
SignatureDoesNotMatch, 400 XAmzContentSHA256Mismatch); every request is
logged (S3Server.requests()).  s3rver 3.7 itself checks only that the
access key exists, never a V4 signature, hence the proxy.

Installs nothing: the node packages come from tests/s3/setup.sh (npm ci
into tests/s3/node_modules), or from $QANAT_S3_NODE_DIR (a tests/s3
directory with node_modules, e.g. the source tree's, for a build made
from the distribution tarball).  available() says why it cannot run.
"""
import json
import os
import select
import shutil
import subprocess
import tempfile
import time

SRC = os.environ.get("QANAT_SRCDIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
S3_DIR = os.path.join(SRC, "tests", "s3")

ACCESS_KEY = "S3RVER"           # s3rver's one built-in account
SECRET_KEY = "S3RVER"


def node_dir():
    """The tests/s3 directory whose node_modules to use, or None."""
    for d in (os.environ.get("QANAT_S3_NODE_DIR"), S3_DIR):
        if d and all(os.path.isdir(os.path.join(d, "node_modules", m)) for m in ("s3rver", "aws4")):
            return d
    return None


def available():
    """None when the server can start, else the reason it cannot."""
    if not shutil.which("node"):
        return "node is not installed (apt-get install nodejs npm)"
    if not node_dir():
        return "node packages missing: run tests/s3/setup.sh"
    return None


class S3Server:
    def __init__(self, bucket="qanat-test"):
        self.bucket = bucket
        self.dir = tempfile.mkdtemp(prefix="qanat-s3-")
        self.log_path = os.path.join(self.dir, "requests.jsonl")
        self.stderr_path = os.path.join(self.dir, "server.log")
        self.proc = None
        self.proxy_port = self.direct_port = None

    @property
    def endpoint(self):
        """The checking proxy: what tests should talk to."""
        return "http://127.0.0.1:%d" % self.proxy_port

    @property
    def direct_endpoint(self):
        """s3rver itself, without the signature check."""
        return "http://127.0.0.1:%d" % self.direct_port

    def start(self, timeout=20):
        reason = available()
        if reason:
            raise RuntimeError(reason)
        modules = os.path.join(node_dir(), "node_modules")
        env = dict(os.environ, NODE_PATH=modules)
        stderr = open(self.stderr_path, "ab")
        self.proc = subprocess.Popen(
            ["node", os.path.join(S3_DIR, "server.js"), os.path.join(self.dir, "data"),
             self.bucket, self.log_path, "%s:%s" % (ACCESS_KEY, SECRET_KEY)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, env=env,
            start_new_session=True)
        stderr.close()
        deadline = time.time() + timeout
        line = b""
        while time.time() < deadline and not line.endswith(b"\n"):
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.2)
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 4096)
                if not chunk:
                    break
                line += chunk
            elif self.proc.poll() is not None:
                break
        if not line.endswith(b"\n"):
            self.stop(cleanup=False)
            raise RuntimeError("the S3 test server did not start:\n" + self.server_log())
        ports = json.loads(line)
        self.proxy_port, self.direct_port = ports["proxy"], ports["s3rver"]
        return self

    def requests(self):
        """Every request the proxy saw, oldest first: dicts with method,
        url, headers (lower-case names), body_sha256, ok, reason,
        provided and expected (the Authorization header sent, and the one
        aws4 computed)."""
        if not os.path.exists(self.log_path):
            return []
        with open(self.log_path) as f:
            return [json.loads(line) for line in f if line.strip()]

    def server_log(self):
        try:
            with open(self.stderr_path, errors="replace") as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    def stop(self, cleanup=True):
        if self.proc and self.proc.poll() is None:
            try:
                self.proc.stdin.close()     # server.js stops when stdin closes
            except OSError:
                pass
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc:
            self.proc.stdout.close()
        if cleanup:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
