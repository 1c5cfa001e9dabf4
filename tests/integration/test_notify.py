#!/usr/bin/env python3
"""Notifications (docs/notifications.md): signed webhooks delivered once
per event, retried after a failure with the same Idempotency-Key, email
through a local SMTP server, delivery after a coordinator kill -9, and a
receiver that hangs does not hold up other runs."""
import hashlib
import hmac
import http.server
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness
import openapi_check
from harness import check, free_port, main

HOOK_SECRET = "whsec-test-0123456789"


class Receiver:
    """A webhook receiver in a thread: records every POST; answers 500 to
    the first `fail` requests, hangs `hang` seconds when told to, and holds
    the first request until `release` is set when `hold` is given."""

    def __init__(self, fail=0, hang=0, port=None, hold=False):
        self.posts = []
        self.fail = fail
        self.hang = hang
        self.release = threading.Event() if hold else None
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                outer.posts.append((dict(self.headers), body))
                if outer.release and len(outer.posts) == 1:
                    outer.release.wait(60)
                if outer.hang:
                    time.sleep(outer.hang)
                code = 500 if outer.fail > 0 else 200
                outer.fail -= 1
                self.send_response(code)
                self.end_headers()
                self.wfile.write(b"try later" if code == 500 else b"ok")

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port or free_port()), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self):
        return "http://127.0.0.1:%d/hook" % self.port

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def verify(headers, body):
    sig = headers.get("X-Qanat-Signature", "")
    parts = dict(p.split("=", 1) for p in sig.split(","))
    expected = hmac.new(HOOK_SECRET.encode(), ("%s." % parts["t"]).encode() + body,
                        hashlib.sha256).hexdigest()
    check(hmac.compare_digest(parts["v1"], expected), "bad signature %s" % sig)
    check(abs(int(parts["t"]) - time.time()) < 300, "old timestamp %s" % parts["t"])


def set_secret(c, name, value, *extra):
    r = subprocess.run([harness.QANAT, "--coordinator", c.client_endpoint, "--key", c.key,
                        "secret", "set", name, *extra], input=value, capture_output=True,
                       text=True, timeout=30)
    check(r.returncode == 0, "secret set: %s" % r.stderr)


def workflow(c, name, url, fail=True, on="[failed]"):
    return c.write(name + ".yaml",
                   "name: %s\n"
                   "notify:\n"
                   "  on: %s\n"
                   "  webhook: {url: \"%s\", secret: \"${{ secrets.HOOK }}\"}\n"
                   "tasks:\n"
                   "  work:\n"
                   "    run: %s\n"
                   "    retries: 0\n" % (name, on, url, "exit 3" if fail else "true"))


def notifications(c, run_id=None):
    return c.qanat_json("notifications", *([run_id] if run_id else []))


def wait_state(c, run_id, state, timeout=20):
    c.wait_for(lambda: [n["state"] for n in notifications(c, run_id)] == [state],
               "notification of run %s %s: %s" % (run_id, state, notifications(c, run_id)),
               timeout=timeout)


def test_webhook_signed_once_and_retried_with_same_key(c):
    receiver = Receiver(fail=1)
    try:
        c.start_coordinator("--public-url", "http://qanat.example/")
        c.start_agent("a1")
        set_secret(c, "HOOK", HOOK_SECRET)
        run_id = c.start_run(workflow(c, "hooked", receiver.url()))
        c.wait_run(run_id)
        wait_state(c, run_id, "delivered")
        check(len(receiver.posts) == 2, "one failure, one delivery: %d posts" % len(receiver.posts))
        keys = set(h["Idempotency-Key"] for h, _ in receiver.posts)
        check(len(keys) == 1, "the same Idempotency-Key on every attempt: %s" % keys)
        for headers, body in receiver.posts:
            verify(headers, body)
        event = json.loads(receiver.posts[-1][1])
        check(event["run"] == run_id and event["workflow"] == "hooked"
              and event["status"] == "failed" and event["version"] == 1, "payload %s" % event)
        check(event["failed_tasks"][0]["task"] == "work", "failed tasks %s" % event)
        check(event["url"] == "http://qanat.example/ui/runs/%d" % run_id, "link %s" % event)
        entry = notifications(c, run_id)[0]
        check(entry["attempts"] == 2 and entry["last_error"].startswith("HTTP 500"),
              "attempts and last error: %s" % entry)
        check(HOOK_SECRET not in c.qanat("notifications", run_id).stdout, "secret shown")
        # The same over HTTP, for a user's API token
        token = c.create_apitoken("reader")
        request = urllib.request.Request(
            "http://127.0.0.1:%d/api/v1/runs/%d/notifications" % (c.http_port, run_id),
            headers={"Authorization": "Bearer " + token})
        with urllib.request.urlopen(request, timeout=10) as answer:
            listed = json.loads(answer.read())
        openapi_check.check_path("GET", "/api/v1/runs/%d/notifications" % run_id, 200, listed)
        got = listed["entries"][0]
        check(got["state"] == "delivered" and got["attempts"] == 2 and got["kind"] == "webhook"
              and got["idempotency_key"] == keys.copy().pop(), "over HTTP: %s" % listed)
        check("secret" not in got and "body" not in got and "password" not in got,
              "settings stay in the store: %s" % got)
        # A succeeded run is not in on: [failed]: nothing is sent
        ok_id = c.start_run(workflow(c, "hooked", receiver.url(), fail=False))
        c.wait_run(ok_id)
        time.sleep(1.5)
        check(notifications(c, ok_id) == [], "no notification for a success")
        check(len(receiver.posts) == 2, "still two posts: %d" % len(receiver.posts))
        print("webhook: 2 posts for 1 event (500 then 200), key %s" % keys.pop())
    finally:
        receiver.stop()


def test_slack_on_check_failed_and_warnings(c):
    receiver = Receiver()
    try:
        c.start_coordinator()
        c.start_agent("a1")
        set_secret(c, "SLACK", receiver.url())
        def flow(name, checks, run="echo no metrics"):
            return c.write(name + ".yaml",
                           "name: %s\nnotify:\n  on: [check_failed, succeeded_with_warnings]\n"
                           "  slack: {webhook: \"${{ secrets.SLACK }}\"}\n"
                           "tasks:\n  t:\n    run: %s\n    retries: 0\n    checks: %s\n"
                           % (name, run, checks))
        checked = c.start_run(flow("checked", "[loss < 1]"))
        warned = c.start_run(flow("warned", "[{expr: \"loss < 1\", severity: warning}]"))
        plain = c.start_run(flow("plain", "[]", run="exit 4"))
        for run_id in (checked, warned, plain):
            c.wait_run(run_id)
        wait_state(c, checked, "delivered")
        wait_state(c, warned, "delivered")
        time.sleep(0.5)
        check(notifications(c, plain) == [], "a plain failure is no check_failed")
        texts = sorted(json.loads(body)["text"] for _, body in receiver.posts)
        check(len(texts) == 2, "two Slack messages: %s" % texts)
        check(texts[0].startswith("qanat: run %d of checked (version 1) failed" % checked)
              and "task t failed" in texts[0], "check_failed text: %r" % texts[0])
        check(texts[1].startswith("qanat: run %d of warned (version 1) succeeded with warnings"
                                  % warned), "warnings text: %r" % texts[1])
        events = sorted(n["event"] for n in notifications(c)[:2])
        check(events == ["check_failed", "succeeded_with_warnings"], "events %s" % events)
        check(all(n["target"] == "${{ secrets.SLACK }}" for n in notifications(c)),
              "the Slack URL is shown as its reference")
    finally:
        receiver.stop()


def test_undelivered_survive_kill_9(c):
    port = free_port()
    c.start_coordinator()
    c.start_agent("a1")
    set_secret(c, "HOOK", HOOK_SECRET)
    wf = workflow(c, "later", "http://127.0.0.1:%d/hook" % port)
    ids = [c.start_run(wf) for _ in range(3)]
    for run_id in ids:
        c.wait_run(run_id)
    # The receiver is down: each stays pending with an error
    c.wait_for(lambda: all(n["attempts"] >= 1 and n["state"] == "pending"
                           for n in notifications(c)) and len(notifications(c)) == 3,
               "three pending notifications with an error")
    c.kill_coordinator()
    receiver = Receiver(port=port)
    try:
        c.start_coordinator()
        for run_id in ids:
            wait_state(c, run_id, "delivered", timeout=30)
        runs = sorted(json.loads(b)["run"] for _, b in receiver.posts)
        check(runs == sorted(ids), "each run's notification exactly once: %s" % runs)
        print("after kill -9: %d delivered, %d posts" % (len(ids), len(receiver.posts)))
    finally:
        receiver.stop()


def test_kill_9_while_delivery_in_flight(c):
    """The coordinator is killed while the receiver holds its request: the
    attempt's result was never recorded, so after the restart the same
    notification goes out again, with the same Idempotency-Key, and is
    recorded delivered once."""
    receiver = Receiver(hold=True)
    try:
        c.start_coordinator()
        c.start_agent("a1")
        set_secret(c, "HOOK", HOOK_SECRET)
        run_id = c.start_run(workflow(c, "held", receiver.url()))
        c.wait_run(run_id)
        c.wait_for(lambda: len(receiver.posts) == 1, "the receiver holds the request")
        check([n["state"] for n in notifications(c, run_id)] == ["pending"],
              "in flight: %s" % notifications(c, run_id))
        c.kill_coordinator()
        receiver.release.set()          # its answer goes to a dead connection
        c.start_coordinator()
        wait_state(c, run_id, "delivered", timeout=30)
        time.sleep(1.5)                 # nothing more comes
        keys = [h["Idempotency-Key"] for h, _ in receiver.posts]
        runs = [json.loads(b)["run"] for _, b in receiver.posts]
        for headers, body in receiver.posts:
            verify(headers, body)
        check(len(keys) == 2 and keys[0] == keys[1] and runs == [run_id, run_id],
              "posts after kill -9 in flight: keys %s, runs %s" % (keys, runs))
        entry = notifications(c, run_id)[0]
        check(entry["attempts"] == 1 and entry["idempotency_key"] == keys[0],
              "entry: %s" % entry)
        print("kill -9 with the delivery in flight: %d posts, one key %s, 1 delivered"
              % (len(keys), keys[0]))
    finally:
        receiver.stop()


def test_hanging_receiver_does_not_slow_dispatch(c):
    receiver = Receiver(hang=8)
    try:
        c.start_coordinator()
        c.start_agent("a1", slots=4)
        set_secret(c, "HOOK", HOOK_SECRET)
        hooked = c.start_run(workflow(c, "slowhook", receiver.url()))
        c.wait_run(hooked)
        c.wait_for(lambda: len(receiver.posts) == 1, "the receiver got the post")
        plain = c.write("plain.yaml", "name: plain\ntasks:\n  t:\n    run: 'true'\n")
        started = time.time()
        for _ in range(5):
            c.wait_run(c.start_run(plain))
        took = time.time() - started
        check(took < 6, "5 runs took %.1f s while the receiver hangs" % took)
        print("5 runs in %.1f s while the webhook receiver hangs" % took)
    finally:
        receiver.stop()


def test_email_through_local_smtp(c):
    try:
        from aiosmtpd.controller import Controller
    except ImportError:
        print("skipped: python3-aiosmtpd is not installed (packaging/install-deps.sh)")
        return
    mails = []

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            mails.append(envelope)
            return "250 OK"

    port = free_port()
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        c.start_coordinator()
        c.start_agent("a1")
        wf = c.write("mailed.yaml",
                     "name: mailed\n"
                     "notify:\n"
                     "  on: [succeeded]\n"
                     "  email: {to: [ops@example.com, dev@example.com],"
                     " smtp: \"smtp://127.0.0.1:%d\", from: qanat@example.com}\n"
                     "tasks:\n  t:\n    run: 'true'\n" % port)
        run_id = c.start_run(wf)
        c.wait_run(run_id)
        wait_state(c, run_id, "delivered")
        check(len(mails) == 1, "one mail: %d" % len(mails))
        mail = mails[0]
        check(sorted(mail.rcpt_tos) == ["dev@example.com", "ops@example.com"],
              "recipients %s" % mail.rcpt_tos)
        text = mail.content.decode()
        check("run %d of mailed" % run_id in text and "succeeded" in text, "mail %s" % text)
        print("email: 1 mail to %s" % ",".join(mail.rcpt_tos))
    finally:
        controller.stop()


def test_give_up_shows_in_status(c):
    port = free_port()
    c.start_coordinator("--notify-give-up", "2")
    c.start_agent("a1")
    set_secret(c, "HOOK", HOOK_SECRET)
    run_id = c.start_run(workflow(c, "nobody", "http://127.0.0.1:%d/hook?token=abc" % port))
    c.wait_run(run_id)
    wait_state(c, run_id, "failed", timeout=15)
    entry = notifications(c, run_id)[0]
    check(entry["attempts"] >= 2 and "onnect" in entry["last_error"], "entry %s" % entry)
    check("token=abc" not in entry["target"], "the URL's query is masked: %s" % entry)
    status = c.qanat("status", run_id).stdout
    check("notification webhook to http://127.0.0.1:%d/hook failed after" % port in status,
          "status shows the failure:\n%s" % status)
    print("given up after %d attempts: %s" % (entry["attempts"], entry["last_error"]))


def test_secret_access_is_checked(c):
    c.start_coordinator()
    c.start_agent("a1")
    set_secret(c, "HOOK", HOOK_SECRET, "--allow", "role:admin,workflow:other")
    r = c.qanat("run", workflow(c, "hooked", "http://127.0.0.1:9/x"), check=False)
    check(r.returncode != 0 and "run refused" in r.stderr and "HOOK" in r.stderr,
          "a run whose notify names a secret it may not use is refused: %s" % r.stderr)
    check(HOOK_SECRET not in r.stderr, "the value is not shown")


def test_coordinator_default_for_workflows_without_notify(c):
    receiver = Receiver()
    try:
        default = c.write("notify.yaml", "notify:\n  on: [failed]\n  webhook: {url: \"%s\", "
                          "secret: \"${{ secrets.HOOK }}\"}\n" % receiver.url())
        c.start_coordinator("--notify-file", default)
        c.start_agent("a1")
        # The operator's secret, scoped to no user's runs: the default may use it
        set_secret(c, "HOOK", HOOK_SECRET, "--allow", "user:nobody")
        plain = c.write("plain.yaml", "name: plain\ntasks:\n  t:\n    run: exit 1\n    retries: 0\n")
        run_id = c.start_run(plain)
        c.wait_run(run_id)
        wait_state(c, run_id, "delivered")
        check(len(receiver.posts) == 1, "one post: %d" % len(receiver.posts))
        verify(*receiver.posts[0])
    finally:
        receiver.stop()


def test_bad_notify_is_refused_with_position(c):
    c.start_coordinator()
    wf = c.write("bad.yaml", "name: bad\nnotify:\n  on: [failled]\n  webhook: {url: ftp://x}\n"
                 "tasks:\n  t:\n    run: 'true'\n")
    r = c.qanat("validate", wf, check=False)
    check(r.returncode != 0, "validate accepted a bad notify")
    check("bad.yaml:3:8:" in r.stderr and "failled" in r.stderr, "error: %s" % r.stderr)
    check("bad.yaml:4:18:" in r.stderr, "url error: %s" % r.stderr)


if __name__ == "__main__":
    main(globals())
