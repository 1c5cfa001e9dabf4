"""qanatd's HTTP side over TLS (--http-cert/--http-key), with a
self-signed certificate made by openssl in a temp dir: HTTPS answers and
is verified against that certificate, the session cookie is Secure,
plain HTTP to the same port gets no answer, an event stream whose client
leaves (with or without a TLS close_notify) gives its slot back at once.
Also the bind rules: beyond loopback only with TLS or --http-insecure
(which warns), and bad certificate or key files give a clear error and a
clean exit, never a crash."""
import http.client
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import time

import harness
from harness import check, TestFailure

SLOT_BACK_S = 3


def make_cert(directory, name="server", san="IP:127.0.0.1"):
    cert = os.path.join(directory, name + ".crt")
    key = os.path.join(directory, name + ".key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=qanat-test",
                    "-addext", "subjectAltName=" + san],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
    return cert, key


def https(c, cert):
    context = ssl.create_default_context(cafile=cert)
    return http.client.HTTPSConnection("127.0.0.1", c.http_port, context=context, timeout=10)


def request(c, cert, method, path, token=None, body=None):
    conn = https(c, cert)
    headers = {"Authorization": "Bearer " + token} if token else {}
    if body is not None:
        headers["Content-Type"] = "application/json"
    try:
        conn.request(method, path, body=json.dumps(body).encode() if body is not None else None, headers=headers)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def open_stream(c, cert, token):
    """A raw TLS connection with GET /api/v1/runs/events sent, read up to
    its first event; returns (tls socket, what was read)."""
    context = ssl.create_default_context(cafile=cert)
    raw = socket.create_connection(("127.0.0.1", c.http_port), timeout=10)
    tls = context.wrap_socket(raw, server_hostname="127.0.0.1")
    tls.sendall(("GET /api/v1/runs/events HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAuthorization: Bearer %s\r\n"
                 "Accept: text/event-stream\r\n\r\n" % (c.http_port, token)).encode())
    got = b""
    deadline = time.time() + 10
    while b"event: runs" not in got:
        check(time.time() < deadline, "TLS event stream: no first event: %r" % got[:300])
        chunk = tls.recv(65536)
        check(chunk, "TLS event stream closed early: %r" % got[:300])
        got += chunk
    check(got.startswith(b"HTTP/1.1 200"), "TLS event stream: %r" % got[:200])
    return tls, raw, got


def open_streams(c, cert, token):
    status, _, body = request(c, cert, "GET", "/metrics", token)
    check(status == 200, "metrics over TLS: %d %r" % (status, body[:200]))
    found = re.search(rb"^qanat_http_event_streams (\d+)", body, re.M)
    check(found, "no qanat_http_event_streams in /metrics")
    return int(found.group(1))


def wait_streams(c, cert, token, want, what):
    started = time.time()
    while open_streams(c, cert, token) != want:
        check(time.time() - started < SLOT_BACK_S, "%s: its stream still open after %d s" % (what, SLOT_BACK_S))
        time.sleep(0.1)
    return time.time() - started


def test_https_secure_cookie_and_no_plain_http(c):
    cert, key = make_cert(c.dir)
    c.start_coordinator("--http-cert", cert, "--http-key", key, http_port=True)
    token = c.create_apitoken("root", "admin")
    status, headers, body = request(c, cert, "GET", "/api/v1/whoami", token)
    check(status == 200 and json.loads(body)["role"] == "admin", "whoami over TLS: %d %r" % (status, body))
    check(headers.get("x-frame-options") == "DENY", "TLS response without the security headers: %r" % headers)
    # A client that does not trust the certificate is refused
    try:
        conn = http.client.HTTPSConnection("127.0.0.1", c.http_port, timeout=10,
                                           context=ssl.create_default_context())
        conn.request("GET", "/api/v1/whoami")
        raise TestFailure("an unverified certificate was accepted by a default client")
    except ssl.SSLCertVerificationError:
        pass
    status, headers, body = request(c, cert, "POST", "/api/v1/session", body={"token": token})
    cookie = headers.get("set-cookie", "")
    check(status == 200, "sign in over TLS: %d %r" % (status, body))
    attributes = [a.strip() for a in cookie.split(";")]
    check("Secure" in attributes and "HttpOnly" in attributes, "session cookie over TLS: %r" % cookie)
    # Plain HTTP to the TLS port: no HTTP answer at all
    conn = http.client.HTTPConnection("127.0.0.1", c.http_port, timeout=10)
    try:
        conn.request("GET", "/api/v1/whoami", headers={"Authorization": "Bearer " + token})
        resp = conn.getresponse()
        raise TestFailure("plain HTTP to the HTTPS port answered %d" % resp.status)
    except (http.client.HTTPException, ConnectionError, OSError) as e:
        if isinstance(e, TestFailure):
            raise
    finally:
        conn.close()
    status, _, _ = request(c, cert, "GET", "/api/v1/whoami", token)
    check(status == 200, "HTTPS after a plain HTTP attempt: %d" % status)


def test_tls_event_stream_ends_when_its_client_leaves(c):
    cert, key = make_cert(c.dir)
    c.start_coordinator("--http-cert", cert, "--http-key", key, http_port=True)
    token = c.create_apitoken("root", "admin")
    check(open_streams(c, cert, token) == 0, "streams open before any was")
    # Gone without a word: the socket closed (a FIN behind no TLS alert)
    tls, _, _ = open_stream(c, cert, token)
    check(open_streams(c, cert, token) == 1, "the TLS stream is not counted")
    tls.close()
    took = wait_streams(c, cert, token, 0, "a TLS client that closed its socket")
    # A polite client: close_notify first (unread data on the socket),
    # then the socket closed
    tls, _, _ = open_stream(c, cert, token)
    tls.settimeout(0.5)
    try:
        tls.unwrap()                    # sends close_notify; the server may not answer it
    except (OSError, ssl.SSLError):
        pass
    time.sleep(0.3)                     # the alert arrives alone, then the close
    tls.close()                         # the TLS socket owns the descriptor
    took_notify = wait_streams(c, cert, token, 0, "a TLS client that sent close_notify and closed")
    status, _, _ = request(c, cert, "GET", "/api/v1/whoami", token)
    check(status == 200, "server after the streams ended: %d" % status)
    print("  TLS streams ended %.2f s (socket closed) and %.2f s (close_notify) after their client left" % (
        took, took_notify))


def exits_with(c, *args):
    """Starts qanatd with args and expects it to exit (not crash) at
    start; returns what it printed."""
    c.start_coordinator(*args, wait=False)
    try:
        rc = c.coordinator.wait(15)
    except subprocess.TimeoutExpired:
        raise TestFailure("qanatd %s kept running" % " ".join(args))
    with open(os.path.join(c.dir, "qanatd.log"), "rb") as f:
        out = f.read().decode("utf-8", "replace")
    check(rc == 1, "qanatd %s: exit %d (want 1, a clean refusal)\n%s" % (" ".join(args), rc, out))
    os.remove(os.path.join(c.dir, "qanatd.log"))
    shutil.rmtree(os.path.join(c.dir, "coordinator"), ignore_errors=True)
    return out


def test_bind_rules_and_bad_files(c):
    cert, key = make_cert(c.dir)
    other_cert, other_key = make_cert(c.dir, "other")
    out = exits_with(c, "--http-endpoint", "0.0.0.0:%d" % c.http_port)
    check("refusing plain HTTP on the non-loopback address" in out and "--http-insecure" in out,
          "non-loopback without TLS: %r" % out[-400:])
    junk = os.path.join(c.dir, "junk.pem")
    with open(junk, "wb") as f:
        f.write(os.urandom(600))
    broken = os.path.join(c.dir, "broken.crt")
    with open(broken, "w") as f:
        f.write("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    cases = [((cert, os.path.join(c.dir, "missing.key")), "cannot read the private key"),
             ((os.path.join(c.dir, "missing.crt"), key), "cannot read the certificate"),
             ((key, cert), "is not a PEM certificate"),
             ((cert, cert), "is not a PEM private key"),
             ((junk, key), "is not a PEM certificate"),
             ((c.dir, key), "is not a PEM certificate"),
             ((cert, other_key), "do not match"),
             ((broken, key), "cannot serve HTTPS")]
    for (cert_file, key_file), want in cases:
        out = exits_with(c, "--http-cert", cert_file, "--http-key", key_file)
        check(want in out, "--http-cert %s --http-key %s: want %r in\n%s" % (
            os.path.basename(cert_file), os.path.basename(key_file), want, out[-600:]))
    out = exits_with(c, "--http-cert", cert)
    check("needs both a certificate and a key" in out, "cert without key: %r" % out[-400:])
    # --http-insecure: allowed, with a warning
    c.start_coordinator("--http-endpoint", "0.0.0.0:%d" % c.http_port, "--http-insecure", http_port=True)
    conn = http.client.HTTPConnection("127.0.0.1", c.http_port, timeout=10)
    conn.request("GET", "/api/v1/whoami")
    check(conn.getresponse().status == 401, "plain HTTP with --http-insecure")
    conn.close()
    c.kill_coordinator()
    with open(os.path.join(c.dir, "qanatd.log"), "rb") as f:
        out = f.read().decode("utf-8", "replace")
    check(re.search(r"warning http: --http-insecure: serving plain HTTP on 0\.0\.0\.0", out),
          "no warning for --http-insecure: %r" % out[-400:])
    os.remove(os.path.join(c.dir, "qanatd.log"))
    # TLS beyond loopback needs no --http-insecure
    c.start_coordinator("--http-endpoint", "0.0.0.0:%d" % c.http_port, "--http-cert", cert, "--http-key", key,
                        http_port=True)
    status, _, _ = request(c, cert, "GET", "/api/v1/whoami")
    check(status == 401, "HTTPS on 0.0.0.0 without a token: %d" % status)


if __name__ == "__main__":
    harness.main(globals())
