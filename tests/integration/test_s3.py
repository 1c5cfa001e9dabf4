#!/usr/bin/env python3
"""S3 artifact store (qn_s3) against s3rver, started by s3_server.py.

Drives the C client through the unit test binary's driver mode
(`tests/unit/test_s3 --driver put|get|head|delete KEY [PATH]`).  Every
request goes through the checking proxy, which recomputes its SigV4
signature with aws4 and checks its payload hash; test_signature_cross_check
also recomputes each recorded request with tests/s3/sigv4-check.js and
compares the Authorization headers byte for byte.

Prints one line per test and "N passed, N failed" (harness.py's
convention).  Skips (exit 77) when node or the node packages are missing,
unless QANAT_S3_REQUIRED=1, which makes that a failure.
"""
import hashlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import s3_server  # noqa: E402

BUILD = os.environ.get("QANAT_BUILDDIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
DRIVER = os.path.join(BUILD, "tests", "unit", "test_s3")
KEY = "dir/sp ace+plus&amp=eq~t_u-v.w/\u00e9t\u00e9.bin"   # needs encoding in path and signature


class TestFailure(AssertionError):
    pass


def check(condition, message):
    if not condition:
        raise TestFailure(message)


class Context:
    """One test: a fresh server, a temp dir, and the driver."""

    def __init__(self, name):
        self.server = s3_server.S3Server()
        self.dir = tempfile.mkdtemp(prefix="qanat-s3-it-%s-" % name)

    def env(self, **overrides):
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update({
            "HOME": self.dir,               # no ~/.aws of the machine's
            "AWS_ACCESS_KEY_ID": s3_server.ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": s3_server.SECRET_KEY,
            "AWS_ENDPOINT_URL_S3": self.server.endpoint,
            "QN_S3_TEST_BUCKET": self.server.bucket,
            "QN_S3_TEST_PATH_STYLE": "1",
            "QN_S3_TEST_TIMEOUT_S": "20",
        })
        for k, v in overrides.items():
            if v is None:
                env.pop(k, None)
            else:
                env[k] = v
        return env

    def s3(self, *args, expect=0, **env):
        result = subprocess.run([DRIVER, "--driver", *[str(a) for a in args]],
                                capture_output=True, text=True, env=self.env(**env), timeout=120)
        if expect is not None and result.returncode != expect:
            raise TestFailure("driver %s exited %d (expected %d)\nstdout: %s\nstderr: %s" % (
                " ".join(map(str, args)), result.returncode, expect, result.stdout, result.stderr))
        return result

    def file(self, name, size=None, data=None):
        path = os.path.join(self.dir, name)
        with open(path, "wb") as f:
            f.write(data if data is not None else os.urandom(size))
        return path

    def path(self, name):
        return os.path.join(self.dir, name)

    def cleanup(self):
        import shutil
        shutil.rmtree(self.dir, ignore_errors=True)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def all_signatures_match(ctx):
    requests = ctx.server.requests()
    check(requests, "the proxy saw no requests")
    bad = [r for r in requests if not r["ok"]]
    check(not bad, "requests failing the aws4 check: %s" % json.dumps(bad, indent=1)[:3000])
    return requests


# ---------------------------------------------------------------------

def test_small_round_trip(ctx):
    src = ctx.file("small.bin", 1000)
    ctx.s3("put", KEY, src)
    check(ctx.s3("head", KEY).stdout.strip() == "1000", "head: wrong size")
    out = ctx.path("small.out")
    ctx.s3("get", KEY, out)
    check(read(out) == read(src), "downloaded bytes differ")
    check(not os.path.exists(out + ".part"), ".part left behind")
    # An empty file too
    empty = ctx.file("empty.bin", data=b"")
    ctx.s3("put", "empty", empty)
    check(ctx.s3("head", "empty").stdout.strip() == "0", "head: empty object not size 0")
    ctx.s3("get", "empty", ctx.path("empty.out"))
    check(read(ctx.path("empty.out")) == b"", "empty object not empty")
    ctx.s3("delete", KEY)
    ctx.s3("head", KEY, expect=1)
    result = ctx.s3("get", KEY, ctx.path("missing.out"), expect=2)
    check("s3: GET s3://qanat-test/%s: 404 NoSuchKey" % KEY in result.stderr,
          "unclear error for a missing key: %r" % result.stderr)
    check(not os.path.exists(ctx.path("missing.out.part")), "empty .part left behind")
    requests = all_signatures_match(ctx)
    put = [r for r in requests if r["method"] == "PUT"][0]
    check(put["headers"]["x-amz-content-sha256"] == hashlib.sha256(read(src)).hexdigest(),
          "x-amz-content-sha256 is not the payload's SHA-256")
    check("%C3%A9t%C3%A9.bin" in put["url"] and "sp%20ace%2Bplus%26amp%3Deq" in put["url"],
          "key not encoded as expected: %s" % put["url"])


def test_multipart_round_trip(ctx):
    part = 64 * 1024
    env = {"QANAT_S3_TEST_SMALL_PARTS": "1", "QN_S3_TEST_PART_SIZE": str(part)}
    src = ctx.file("big.bin", 5 * part + 12345)
    ctx.s3("put", KEY, src, **env)
    check(ctx.s3("head", KEY).stdout.strip() == str(5 * part + 12345), "head: wrong size")
    out = ctx.path("big.out")
    ctx.s3("get", KEY, out)
    check(read(out) == read(src), "multipart object differs from the file")
    requests = all_signatures_match(ctx)
    urls = [(r["method"], r["url"].split("?", 1)[1] if "?" in r["url"] else "") for r in requests]
    check(urls[0] == ("POST", "uploads="), "no CreateMultipartUpload first: %s" % urls)
    parts = [u for m, u in urls if m == "PUT" and u.startswith("partNumber=")]
    check(len(parts) == 6, "expected 6 parts, got %s" % parts)
    check(urls[7][0] == "POST" and urls[7][1].startswith("uploadId="), "no Complete: %s" % urls)
    data = read(src)
    for i, r in enumerate(r for r in requests if r["method"] == "PUT"):
        want = hashlib.sha256(data[i * part:(i + 1) * part]).hexdigest()
        check(r["headers"]["x-amz-content-sha256"] == want and r["body_sha256"] == want,
              "part %d: payload hash wrong" % (i + 1))
    # Exactly part_size: one plain PUT
    exact = ctx.file("exact.bin", part)
    before = len(requests)
    ctx.s3("put", "exact", exact, **env)
    after = ctx.server.requests()[before:]
    check([r["method"] for r in after] == ["PUT"] and "?" not in after[0]["url"],
          "a file of exactly part_size should be one PUT: %s" % [r["url"] for r in after])


def test_multipart_abort(ctx):
    # The proxy fails part 2 of keys with "inject-500": the upload must stop
    # and be aborted (DELETE ?uploadId=).  s3rver does not implement the
    # abort (405), which the error then mentions.
    env = {"QANAT_S3_TEST_SMALL_PARTS": "1", "QN_S3_TEST_PART_SIZE": str(16 * 1024)}
    src = ctx.file("big.bin", 16 * 1024 * 4)
    result = ctx.s3("put", "x/inject-500", src, expect=2, **env)
    check("s3: PUT s3://qanat-test/x/inject-500: 500 InternalError: injected failure"
          in result.stderr, "unclear error: %r" % result.stderr)
    requests = ctx.server.requests()
    calls = [(r["method"], r["url"].split("?")[1].split("&")[0]) for r in requests]
    check([c[0] for c in calls] == ["POST", "PUT", "PUT", "DELETE"],
          "expected Create, part 1, part 2, Abort: %s" % calls)
    check(calls[3][1].startswith("uploadId="), "abort without uploadId: %s" % calls)
    check(all(r["ok"] for r in requests), "a request failed the aws4 check")
    ctx.s3("head", "x/inject-500", expect=1)


def test_multipart_default_minimum(ctx):
    # Without the test knob: 5 MiB parts (S3's minimum), a ~12 MiB file
    env = {"QN_S3_TEST_PART_SIZE": str(5 * 1024 * 1024)}
    src = ctx.file("big.bin", 12 * 1024 * 1024 + 7)
    ctx.s3("put", "big", src, **env)
    out = ctx.path("big.out")
    ctx.s3("get", "big", out)
    check(read(out) == read(src), "multipart object differs from the file")
    requests = all_signatures_match(ctx)
    check(len([r for r in requests if "partNumber=" in r["url"]]) == 3, "expected 3 parts")
    # and a smaller part size is refused without the knob
    result = ctx.s3("put", "x", src, expect=2, QN_S3_TEST_PART_SIZE=str(1024 * 1024))
    check("below the minimum" in result.stderr, "small part size accepted: %r" % result.stderr)


def test_resumed_get(ctx):
    src = ctx.file("obj.bin", 200000)
    ctx.s3("put", "obj", src)
    data = read(src)
    out = ctx.path("obj.out")
    with open(out + ".part", "wb") as f:
        f.write(data[:70000])
    ctx.s3("get", "obj", out)
    check(read(out) == data, "resumed download differs")
    check(not os.path.exists(out + ".part"), ".part left behind")
    get = [r for r in ctx.server.requests() if r["method"] == "GET"][-1]
    check(get["headers"].get("range") == "bytes=70000-", "no Range request: %s" % get["headers"])
    # A .part longer than the object: 416, then a fresh download
    out2 = ctx.path("obj2.out")
    with open(out2 + ".part", "wb") as f:
        f.write(b"x" * 300000)
    ctx.s3("get", "obj", out2)
    check(read(out2) == data, "download after a 416 differs")
    gets = [r for r in ctx.server.requests() if r["method"] == "GET"][-2:]
    check(gets[0]["headers"].get("range") == "bytes=300000-" and "range" not in gets[1]["headers"],
          "expected a Range request then a full one: %s" % [g["headers"] for g in gets])
    all_signatures_match(ctx)


def test_wrong_secret(ctx):
    src = ctx.file("f.bin", 100)
    result = ctx.s3("put", "k", src, expect=2, AWS_SECRET_ACCESS_KEY="not-the-secret")
    check("s3: PUT s3://qanat-test/k: 403 SignatureDoesNotMatch: The request signature we "
          "calculated does not match" in result.stderr, "unclear error: %r" % result.stderr)
    check(not ctx.server.requests()[-1]["ok"], "the proxy accepted a wrong signature")
    result = ctx.s3("head", "k", expect=2, AWS_SECRET_ACCESS_KEY="not-the-secret")
    check("s3: HEAD s3://qanat-test/k: 403 Forbidden" in result.stderr, repr(result.stderr))
    # s3rver alone checks the access key but not V4 signatures
    direct = {"AWS_ENDPOINT_URL_S3": ctx.server.direct_endpoint}
    result = ctx.s3("put", "k", src, expect=2, AWS_ACCESS_KEY_ID="NOBODY", **direct)
    check("403 InvalidAccessKeyId" in result.stderr, "unclear error: %r" % result.stderr)
    result = ctx.s3("put", "k", src, expect=None, AWS_SECRET_ACCESS_KEY="not-the-secret", **direct)
    if result.returncode == 0:
        print("     note: s3rver accepted a wrong V4 signature (it does not verify them); "
              "the aws4 proxy does")


def test_credentials_from_file(ctx):
    creds = ctx.file("credentials", data=(
        "[default]\naws_access_key_id = NOBODY\naws_secret_access_key = x\n"
        "[ci]\naws_access_key_id = %s\naws_secret_access_key = %s\n"
        "aws_session_token = session/token+value==\n" % (
            s3_server.ACCESS_KEY, s3_server.SECRET_KEY)).encode())
    env = {"AWS_ACCESS_KEY_ID": None, "AWS_SECRET_ACCESS_KEY": None,
           "AWS_SHARED_CREDENTIALS_FILE": creds, "AWS_PROFILE": "ci"}
    src = ctx.file("f.bin", 3000)
    ctx.s3("put", "from-file", src, **env)
    ctx.s3("get", "from-file", ctx.path("f.out"), **env)
    check(read(ctx.path("f.out")) == read(src), "round trip with file credentials differs")
    requests = all_signatures_match(ctx)
    for r in requests:
        check(r["headers"].get("x-amz-security-token") == "session/token+value==",
              "session token not sent")
        check("x-amz-security-token" in r["provided"].split("SignedHeaders=")[1].split(",")[0],
              "session token not signed")


def test_signature_cross_check(ctx):
    """Every request libcurl sent, recomputed by aws4 from the recorded
    method, path, query, headers, date and payload hash: the Authorization
    headers must be equal byte for byte; a changed byte must not be."""
    part = 32 * 1024
    env = {"QANAT_S3_TEST_SMALL_PARTS": "1", "QN_S3_TEST_PART_SIZE": str(part),
           "AWS_SESSION_TOKEN": "tok  with  spaces/+="}
    src = ctx.file("f.bin", 2 * part + 1)
    ctx.s3("put", KEY, src, **env)
    ctx.s3("head", KEY, **env)
    with open(ctx.path("f.out.part"), "wb") as f:
        f.write(read(src)[:10])
    ctx.s3("get", KEY, ctx.path("f.out"), **env)
    ctx.s3("delete", KEY, **env)
    requests = ctx.server.requests()
    methods = sorted(set(r["method"] for r in requests))
    check(methods == ["DELETE", "GET", "HEAD", "POST", "PUT"], "methods seen: %s" % methods)
    checker = os.path.join(s3_server.S3_DIR, "sigv4-check.js")
    node_env = dict(os.environ, NODE_PATH=os.path.join(s3_server.node_dir(), "node_modules"))

    def recompute(method, url, headers):
        request = {"method": method, "url": url, "headers": headers, "secret": s3_server.SECRET_KEY}
        out = subprocess.run(["node", checker], input=json.dumps(request), capture_output=True,
                             text=True, env=node_env, timeout=30)
        check(out.stdout.strip(), "sigv4-check.js failed: %s" % out.stderr)
        return json.loads(out.stdout)

    for r in requests:
        result = recompute(r["method"], r["url"], r["headers"])
        check(result["expected"] == r["headers"]["authorization"],
              "%s %s: libcurl sent\n  %s\naws4 computed\n  %s" % (
                  r["method"], r["url"], r["headers"]["authorization"], result["expected"]))
    # Negative controls: the check notices any change to what was signed
    r = [r for r in requests if r["method"] == "PUT"][0]
    mutations = [
        (r["method"], r["url"] + "x", r["headers"]),
        ("POST", r["url"], r["headers"]),
        (r["method"], r["url"], dict(r["headers"], **{"x-amz-date": r["headers"]["x-amz-date"][:-1] + "9"})),
        (r["method"], r["url"], dict(r["headers"], **{"x-amz-content-sha256": "0" * 64})),
        (r["method"], r["url"], dict(r["headers"], **{"x-amz-security-token": "other"})),
    ]
    for method, url, headers in mutations:
        result = recompute(method, url, headers)
        check(result["expected"] != r["headers"]["authorization"] and not result["ok"],
              "a changed request still matched: %s %s" % (method, url))


def test_timeout(ctx):
    # A server that accepts connections and never answers: bounded by the
    # stall/total timeout
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        endpoint = "http://127.0.0.1:%d" % listener.getsockname()[1]
        started = time.time()
        result = ctx.s3("head", "k", expect=2, AWS_ENDPOINT_URL_S3=endpoint, QN_S3_TEST_TIMEOUT_S="2")
        elapsed = time.time() - started
    check(elapsed < 10, "head took %.1f s against a silent server" % elapsed)
    check("s3: HEAD s3://qanat-test/k: " in result.stderr and "imeout" in result.stderr,
          "unclear timeout error: %r" % result.stderr)


# ---------------------------------------------------------------------

def main(namespace):
    reason = s3_server.available()
    if reason:
        if os.environ.get("QANAT_S3_REQUIRED") == "1":
            print("FAIL setup: %s" % reason)
            print("0 passed, 1 failed")
            sys.exit(1)
        print("1..0 # SKIP %s" % reason)
        sys.exit(77)
    tests = [(name, fn) for name, fn in namespace.items()
             if name.startswith("test_") and callable(fn)]
    passed = failed = 0
    for name, fn in tests:
        ctx = Context(name)
        started = time.time()
        try:
            ctx.server.start()
            fn(ctx)
            passed += 1
            print("ok   %s (%.1fs)" % (name, time.time() - started), flush=True)
        except Exception:
            failed += 1
            print("FAIL %s (%.1fs)" % (name, time.time() - started))
            traceback.print_exc(file=sys.stdout)
            print("----- server log -----")
            print(ctx.server.server_log())
        finally:
            ctx.server.stop()
            ctx.cleanup()
        sys.stdout.flush()
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main(globals())
