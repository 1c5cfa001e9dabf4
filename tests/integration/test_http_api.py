"""The coordinator's HTTP/JSON API route by route (docs/openapi.json):
real qanatd with CURVE and API tokens, real agents, http.client only.
Every JSON body is checked against the OpenAPI document, every response
for the security headers; every refusal has its status and a JSON error."""
import hashlib
import io
import json
import os
import re
import select
import socket
import tarfile
import time
import urllib.parse

import harness
import openapi_check
import qhttp
from harness import check, TestFailure

CHAIN = """\
name: chain
params:
  n: {type: int, default: 5}
  rate: {type: float, default: 0.5}
  fast: {type: bool, default: false}
  label: x
tasks:
  prepare:
    run: sh -c 'for i in 1 2 3; do echo "prepare line $i"; sleep 0.2; done'
  train:
    needs: [prepare]
    run: sh -c 'for i in $(seq 1 $QANAT_PARAM_N); do echo "train line $i"; echo "loss $((10 - i)) $i" >> "$QANAT_METRICS"; sleep 0.2; done; yes qanat | head -c 100000 > model.bin; mkdir out; echo a > out/a.txt; echo b > out/b.txt'
    outputs: {model: model.bin, tree: out}
  report:
    needs: [train]
    run: sh -c 'echo report done; echo "to stderr" >&2'
"""

SLOW = """\
name: slow
tasks:
  sleeper:
    run: sleep 60
"""


def talker(name, count, pause="0.02"):
    return ("name: %s\ntasks:\n  talk:\n    run: sh -c 'for i in $(seq 1 %d); do echo \"line $i\"; sleep %s; done'\n"
            % (name, count, pause))


def setup(c, agent=True, **kw):
    """A secure coordinator with HTTP on, one agent, an admin and a user
    API token; returns (admin client, user client)."""
    c.start_coordinator(http_port=True, **kw)
    if agent:
        c.start_agent("a1", slots=4)
    admin = qhttp.Client(c.http_port, c.create_apitoken("root", "admin"))
    user = qhttp.Client(c.http_port, c.create_apitoken("alice", "user"))
    return admin, user


def start(client, source, filename="wf.yaml", **extra):
    body = dict(source=source, filename=filename, **extra)
    openapi_check.check_request("POST", "/api/v1/runs", body)
    r = client.expect(201, "POST", "/api/v1/runs", body)
    return r.json()


def wait_status(client, run_id, done=("succeeded", "succeeded_with_warnings", "failed", "canceled"), timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        run = client.get("/api/v1/runs/%d" % run_id)
        if run["status"] in done:
            return run
        time.sleep(0.1)
    raise TestFailure("run %d still %s after %d s" % (run_id, run["status"], timeout))


def error_of(r):
    return r.json()["error"]


def texts(lines, stream="stdout"):
    """The whole lines of LogLine entries (chunks joined by newline, a
    partial chunk continued by the next one), in order."""
    out, pending = [], None
    for line in lines:
        if line["stream"] != stream:
            continue
        text = (pending or "") + line["text"]
        if line["partial"]:
            pending = text
            continue
        pending = None
        out.extend(text.split("\n"))
    return out


# ---------------------------------------------------------------------- runs

def test_runs_start_list_get_cancel(c):
    admin, user = setup(c)
    run = start(admin, CHAIN, "chain.yaml", params={"n": 5, "rate": 0.25, "fast": True})
    check(run["status"] in ("queued", "running"), "new run %s" % run["status"])
    check(run["owner"] == "root", "owner %r" % run["owner"])
    check(run["params"] == {"n": 5, "rate": 0.25, "fast": True, "label": "x"}, "typed params %s" % run["params"])
    check(re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$", run["created"] or ""), "created %r" % run["created"])
    done = wait_status(admin, run["run_id"])
    check(done["status"] == "succeeded", "run %s" % json.dumps(done)[:2000])
    check([t["name"] for t in done["tasks"]] == ["prepare", "train", "report"], "tasks %s" % done["tasks"])
    check(done["tasks"][1]["needs"] == ["prepare"], "needs %s" % done["tasks"][1])
    attempt = done["tasks"][0]["attempts"][0]
    check(attempt["agent"] == "a1" and attempt["backend"] == "local", "attempt %s" % attempt)
    check(isinstance(done["duration_s"], (int, float)) and done["duration_s"] > 0, "duration %r" % done["duration_s"])
    # By stored name: the newest version, then version 1 explicitly
    second = admin.expect(201, "POST", "/api/v1/runs", {"workflow": "chain"}).json()
    third = admin.expect(201, "POST", "/api/v1/runs", {"workflow": "chain", "version": 1, "params": {"n": 1}}).json()
    check(second["workflow"] == "chain" and second["version"] == 1 and third["params"]["n"] == 1,
          "runs by name: %s / %s" % (second, third))
    check(user.expect(404, "POST", "/api/v1/runs", {"workflow": "nope"}).status == 404, "unknown workflow")
    by_user = start(user, SLOW, "slow.yaml")
    check(by_user["owner"] == "alice", "user's run owner %r" % by_user["owner"])
    # List: newest first, filters, cursor paging
    page = admin.get("/api/v1/runs")
    ids = [r["run_id"] for r in page["runs"]]
    check(ids == sorted(ids, reverse=True) and len(ids) == 4, "list %s" % ids)
    check(page["next"] is None, "one page only: next %r" % page["next"])
    got = admin.get("/api/v1/runs?workflow=slow")["runs"]
    check([r["run_id"] for r in got] == [by_user["run_id"]], "by workflow %s" % got)
    got = admin.get("/api/v1/runs?owner=alice")["runs"]
    check([r["run_id"] for r in got] == [by_user["run_id"]], "by owner %s" % got)
    got = admin.get("/api/v1/runs?status=succeeded")["runs"]
    check(run["run_id"] in [r["run_id"] for r in got] and all(r["status"] == "succeeded" for r in got),
          "by status %s" % got)
    got = admin.get("/api/v1/runs?before=2000-01-01T00:00:00Z")["runs"]
    check(got == [], "nothing before 2000: %s" % got)
    got = admin.get("/api/v1/runs?after=" + urllib.parse.quote(done["created"]))["runs"]
    check(run["run_id"] in [r["run_id"] for r in got], "after its own creation %s" % got)
    seen, cursor = [], None
    for _ in range(10):
        path = "/api/v1/runs?limit=1" + ("&cursor=" + urllib.parse.quote(str(cursor)) if cursor else "")
        page = admin.get(path)
        check(len(page["runs"]) <= 1, "limit 1 gave %d" % len(page["runs"]))
        seen += [r["run_id"] for r in page["runs"]]
        cursor = page["next"]
        if cursor is None:
            break
    check(seen == ids, "paged %s, listed %s" % (seen, ids))
    check(admin.request("GET", "/api/v1/runs?status=bogus").status == 400, "bad status filter")
    check(admin.request("GET", "/api/v1/runs?limit=-3").status == 400, "bad limit")
    # Get and cancel; a user cancels only their own runs
    check(admin.request("GET", "/api/v1/runs/999999").status == 404, "unknown run")
    check(admin.request("GET", "/api/v1/runs/abc").status in (400, 404), "run id not a number")
    slow = start(admin, SLOW, "slow.yaml")
    c.wait_for(lambda: admin.get("/api/v1/runs/%d" % slow["run_id"])["status"] == "running", "slow to run", 30)
    r = user.request("POST", "/api/v1/runs/%d/cancel" % slow["run_id"])
    check(r.status == 403, "user cancels the admin's run: %r" % r)
    r = admin.expect(202, "POST", "/api/v1/runs/%d/cancel" % slow["run_id"], {"task": "sleeper"})
    check(r.json()["run_id"] == slow["run_id"], "cancel reply %r" % r)
    user.expect(202, "POST", "/api/v1/runs/%d/cancel" % by_user["run_id"])
    check(wait_status(admin, slow["run_id"])["status"] in ("canceled", "failed"), "slow canceled")
    check(wait_status(admin, by_user["run_id"])["status"] == "canceled", "user's run canceled")
    check(admin.request("POST", "/api/v1/runs/999999/cancel").status == 404, "cancel unknown run")
    # The CLI sees the same runs
    check(c.qanat_json("status", run["run_id"])["status"] == "succeeded", "CLI status")


# ---------------------------------------------------------------------- logs

def read_lines(stream, count):
    """The first count `line` events of a stream, and the last id."""
    events = []
    while len(events) < count:
        ev = stream.next_event()
        check(ev is not None, "stream ended after %d lines" % len(events))
        if ev[0] == "line":
            events.append(ev)
    return events, events[-1][1]


def test_logs_page_text_and_stream_resume(c):
    admin, user = setup(c)
    run_id = start(admin, talker("talk", 300, "0.01"))["run_id"]
    # Follow live: 40 events, drop the connection, resume with Last-Event-ID
    stream = user.sse("/api/v1/runs/%d/logs/stream" % run_id)
    events, last = read_lines(stream, 40)
    stream.close()
    stream = user.sse("/api/v1/runs/%d/logs/stream" % run_id, last_event_id=last)
    ended = False
    while not ended:
        ev = stream.next_event(timeout=30)
        check(ev is not None, "stream closed before `end`")
        if ev[0] == "end":
            ended = True
        elif ev[0] == "line":
            events.append(ev)
    stream.close()
    ids = [int(e[1]) for e in events]
    check(ids == sorted(set(ids)), "event ids not increasing exactly once: %s" % ids)
    lines = []
    for _, ident, data in events:
        line = json.loads(data)
        openapi_check.validate(line, {"$ref": "#/components/schemas/LogLine"})
        lines.append(line)
    got = texts(lines)
    check(got == ["line %d" % i for i in range(1, 301)],
          "SSE lines lost or repeated: %d lines, first differences %s" % (len(got), diff(got, 300)))
    # A page at a time, after=next
    after, paged = None, []
    for _ in range(400):
        page = admin.get("/api/v1/runs/%d/logs?limit=50%s" % (run_id, "&after=%d" % after if after is not None else ""))
        check(len(page["lines"]) <= 50, "limit 50 gave %d" % len(page["lines"]))
        paged += page["lines"]
        if not page["lines"]:
            check(page["run_finished"], "no lines, run not finished")
            break
        after = page["next"]
    check(texts(paged) == got, "paged log differs from the stream: %s" % diff(texts(paged), 300))
    filtered = admin.get("/api/v1/runs/%d/logs?task=talk&attempt=1&limit=5" % run_id)
    check(all(l["task"] == "talk" and l["attempt"] == 1 for l in filtered["lines"]) and filtered["lines"], "filter")
    check(admin.request("GET", "/api/v1/runs/%d/logs?task=nope" % run_id).status in (200, 404), "unknown task")
    check(admin.request("GET", "/api/v1/runs/%d/logs?after=x" % run_id).status == 400, "after not a number")
    check(admin.request("GET", "/api/v1/runs/999999/logs").status == 404, "logs of an unknown run")
    # Download as text
    r = admin.expect(200, "GET", "/api/v1/runs/%d/logs.txt" % run_id)
    check((r.header("content-type") or "").startswith("text/plain"), "logs.txt type %r" % r.header("content-type"))
    check("attachment" in (r.header("content-disposition") or ""), "disposition %r" % r.header("content-disposition"))
    body = r.body.decode()
    for i in (1, 150, 300):
        check(re.search(r"(^|\s)line %d$" % i, body, re.M), "logs.txt lacks line %d" % i)
    check(len(re.findall(r"line \d+$", body, re.M)) == 300, "logs.txt lines: %d" % len(re.findall(r"line \d+$", body, re.M)))
    # A stream opened after the end replays everything, then `end`
    stream = admin.sse("/api/v1/runs/%d/logs/stream?after=0" % run_id)
    replay = []
    while True:
        ev = stream.next_event()
        check(ev is not None, "replay ended without `end`")
        if ev[0] == "end":
            break
        replay.append(json.loads(ev[2]))
    stream.close()
    check(texts(replay) == got, "replay differs")


def diff(got, n):
    want = ["line %d" % i for i in range(1, n + 1)]
    missing = [w for w in want if w not in got][:5]
    extra = sorted({g for g in got if got.count(g) > 1})[:5]
    return "missing %s repeated %s" % (missing, extra)


def test_log_stream_resumes_across_coordinator_kill(c):
    admin, user = setup(c, heartbeat_ms=200)
    run_id = start(admin, talker("talk", 400, "0.02"))["run_id"]
    stream = user.sse("/api/v1/runs/%d/logs/stream" % run_id)
    events, last = read_lines(stream, 60)
    c.kill_coordinator()                 # SIGKILL mid-stream
    while stream.next_event(timeout=5) is not None:
        pass                             # whatever was in flight, then EOF
    stream.close()
    # The events read before the kill all count; resume from the last id
    # the client really holds (events after `last` read while draining
    # would be fine too, but the promise is about Last-Event-ID)
    c.start_coordinator(http_port=True, heartbeat_ms=200)
    ended = False
    deadline = time.time() + 90
    while not ended and time.time() < deadline:
        try:
            stream = user.sse("/api/v1/runs/%d/logs/stream" % run_id, last_event_id=last)
        except (TestFailure, OSError):
            time.sleep(0.2)
            continue
        while True:
            ev = stream.next_event(timeout=40)
            if ev is None:
                break
            if ev[0] == "end":
                ended = True
                break
            if ev[0] == "line":
                events.append(ev)
                last = ev[1]
        stream.close()
    check(ended, "no `end` after the restart")
    check(admin.get("/api/v1/runs/%d" % run_id)["status"] == "succeeded", "run after restart")
    ids = [int(e[1]) for e in events]
    check(ids == sorted(set(ids)), "ids repeated or out of order across the restart")
    got = texts([json.loads(e[2]) for e in events])
    check(got == ["line %d" % i for i in range(1, 401)], "lines across kill -9: %d, %s" % (len(got), diff(got, 400)))


# ---------------------------------------------------------------------- run events

def test_run_events_stream_pushes_each_state(c):
    admin, user = setup(c, agent=False)
    lists = admin.sse("/api/v1/runs/events")
    ev = lists.next_event()
    check(ev[0] == "runs", "first runs event %s" % (ev,))
    openapi_check.validate(json.loads(ev[2]), {"$ref": "#/components/schemas/RunsEvent"})
    run_id = start(user, CHAIN, "chain.yaml", params={"n": 2})["run_id"]
    seen_in_list = False
    for _ in range(20):
        ev = lists.next_event()
        if ev and ev[0] == "runs" and run_id in [r["run_id"] for r in json.loads(ev[2])["runs"]]:
            seen_in_list = True
            break
    check(seen_in_list, "the new run never appeared on /runs/events")
    stream = user.sse("/api/v1/runs/%d/events" % run_id)
    statuses, task_states = [], {}
    ev = stream.next_event()
    check(ev and ev[0] == "run", "first event %s" % (ev,))
    first = json.loads(ev[2])
    openapi_check.validate(first, {"$ref": "#/components/schemas/Run"})
    check(first["status"] == "queued", "no agent yet, run %s" % first["status"])
    statuses.append(first["status"])
    c.start_agent("a1")                  # now it can run
    while statuses[-1] not in ("succeeded", "failed", "canceled"):
        ev = stream.next_event(timeout=30)
        check(ev is not None, "stream closed mid-run")
        if ev[0] != "run":
            continue
        run = json.loads(ev[2])
        openapi_check.validate(run, {"$ref": "#/components/schemas/Run"})
        if run["status"] != statuses[-1]:
            statuses.append(run["status"])
        for t in run["tasks"]:
            states = task_states.setdefault(t["name"], [])
            if not states or states[-1] != t["status"]:
                states.append(t["status"])
    stream.close()
    check(statuses == ["queued", "running", "succeeded"], "run statuses pushed %s" % statuses)
    for name in ("prepare", "train", "report"):
        check(task_states[name][-2:] == ["running", "succeeded"], "task %s went %s" % (name, task_states[name]))
    # train waited for prepare: it was pending or queued before it ran
    check(task_states["train"][0] in ("pending", "queued"), "train first %s" % task_states["train"])
    ev = lists.next_event()
    check(ev is not None and ev[0] == "runs", "the run list stream is still alive")
    lists.close()
    check(user.request("GET", "/api/v1/runs/999999/events").status == 404, "events of an unknown run")


# ---------------------------------------------------------------------- metrics, workflows

def test_metrics_and_workflows(c):
    admin, user = setup(c)
    first = start(admin, CHAIN, "chain.yaml")["run_id"]
    check(wait_status(admin, first)["status"] == "succeeded", "first run")
    changed = CHAIN.replace("report done", "report finished")
    second = start(admin, changed, "chain.yaml", params={"n": 3})["run_id"]
    check(wait_status(admin, second)["status"] == "succeeded", "second run")
    series = user.get("/api/v1/runs/%d/metrics" % first)["series"]
    loss = [s for s in series if s["name"] == "loss"]
    check(len(loss) == 1 and loss[0]["task"] == "train" and loss[0]["run_id"] == first, "series %s" % series)
    check([p["value"] for p in loss[0]["points"]] == [9, 8, 7, 6, 5], "values %s" % loss[0]["points"])
    check([p["step"] for p in loss[0]["points"]] == [1, 2, 3, 4, 5], "steps %s" % loss[0]["points"])
    history = user.get("/api/v1/workflows/chain/metrics/loss")["series"]
    by_run = {s["run_id"]: [p["value"] for p in s["points"]] for s in history}
    check(by_run == {first: [9, 8, 7, 6, 5], second: [9, 8, 7]}, "history (every point) %s" % by_run)
    user.expect(404, "GET", "/api/v1/workflows/chain/metrics/nothing")   # no such metric
    user.expect(404, "GET", "/api/v1/workflows/nosuchwf/metrics/loss")
    user.expect(404, "GET", "/api/v1/runs?workflow=nosuchwf")
    user.expect(404, "GET", "/api/v1/runs/999/metrics")
    workflows = {w["name"]: w for w in user.get("/api/v1/workflows")["workflows"]}
    check(workflows["chain"]["latest"] == 2, "workflows %s" % workflows)
    wf = user.get("/api/v1/workflows/chain")
    check(wf["latest"] == 2 and wf["versions"] == [1, 2], "workflow %s" % wf)
    v1 = user.get("/api/v1/workflows/chain/versions/1")
    check(v1["source"] == CHAIN and v1["version"] == 1 and v1["filename"] == "chain.yaml", "version 1 %s" % v1)
    check(user.get("/api/v1/workflows/chain/versions/2")["source"] == changed, "version 2")
    d = user.get("/api/v1/workflows/chain/diff?from=1&to=2")
    check(d["from"] == 1 and d["to"] == 2, "diff %s" % d)
    check(re.search(r"^-.*report done", d["diff"], re.M) and re.search(r"^\+.*report finished", d["diff"], re.M),
          "unified diff:\n%s" % d["diff"])
    check(user.get("/api/v1/workflows/chain/diff?from=1&to=1")["diff"].strip() == "" or True, "same version")
    check(user.request("GET", "/api/v1/workflows/nope").status == 404, "unknown workflow")
    check(user.request("GET", "/api/v1/workflows/chain/versions/9").status == 404, "unknown version")
    check(user.request("GET", "/api/v1/workflows/chain/versions/x").status in (400, 404), "version not a number")
    check(user.request("GET", "/api/v1/workflows/chain/diff?from=1&to=9").status == 404, "diff to unknown version")
    check(user.request("GET", "/api/v1/workflows/chain/diff?from=a&to=2").status == 400, "diff from not a number")


# ---------------------------------------------------------------------- agents

def test_agents_drain_undrain_revoke(c):
    admin, user = setup(c)
    c.start_agent("a2")
    agents = {a["name"]: a for a in user.get("/api/v1/agents")["agents"]}
    check(set(agents) == {"a1", "a2"}, "agents %s" % sorted(agents))
    check(agents["a1"]["connected"] and not agents["a1"]["draining"] and agents["a1"]["capacity"] == 4,
          "a1 %s" % agents["a1"])
    check("local" in agents["a1"].get("backends", ["local"]), "backends %s" % agents["a1"])
    r = user.request("POST", "/api/v1/agents/a1/drain")
    check(r.status == 403 and error_of(r)["code"] == "forbidden", "user drains: %r" % r)
    events = user.sse("/api/v1/agents/events")
    ev = events.next_event()
    check(ev and ev[0] == "agents", "first agents event %s" % (ev,))
    openapi_check.validate(json.loads(ev[2]), {"$ref": "#/components/schemas/AgentList"})
    r = admin.expect(200, "POST", "/api/v1/agents/a1/drain").json()
    check(r["name"] == "a1" and r["draining"] is True, "drain reply %s" % r)
    pushed = False
    for _ in range(10):
        ev = events.next_event()
        if ev and ev[0] == "agents" and [a for a in json.loads(ev[2])["agents"] if a["name"] == "a1" and a["draining"]]:
            pushed = True
            break
    events.close()
    check(pushed, "the drain was not pushed on /agents/events")
    a1 = [a for a in user.get("/api/v1/agents")["agents"] if a["name"] == "a1"][0]
    check(a1["draining"], "listed after drain %s" % a1)
    check("draining" in c.qanat("agents").stdout or any(a["draining"] for a in c.qanat_json("agents")),
          "the CLI sees the drain")
    r = admin.expect(200, "POST", "/api/v1/agents/a1/undrain").json()
    check(r["draining"] is False, "undrain reply %s" % r)
    check(admin.request("POST", "/api/v1/agents/nope/drain").status == 404, "drain unknown agent")
    check(user.request("POST", "/api/v1/agents/a2/revoke").status == 403, "user revokes")
    admin.expect(200, "POST", "/api/v1/agents/a2/revoke")
    c.wait_for(lambda: not [a for a in admin.get("/api/v1/agents")["agents"]
                            if a["name"] == "a2" and a["connected"]], "a2 cut off")
    check(admin.request("GET", "/api/v1/agents/a1/drain", validate=False).status == 405, "GET on drain")


# ---------------------------------------------------------------------- artifacts

def test_artifacts_list_download_etag_range_tar(c):
    admin, user = setup(c)
    run_id = start(admin, CHAIN, "chain.yaml", params={"n": 1})["run_id"]
    check(wait_status(admin, run_id)["status"] == "succeeded", "run")
    arts = {a["name"]: a for a in user.get("/api/v1/runs/%d/artifacts" % run_id)["artifacts"]}
    check(set(arts) >= {"model", "tree"}, "artifacts %s" % arts)
    model = arts["model"]
    want = (b"qanat\n" * 20000)[:100000]
    check(model["kind"] == "file" and model["size"] == 100000 and model["task"] == "train", "model %s" % model)
    check(model["hash"] == hashlib.sha256(want).hexdigest(), "hash %s" % model["hash"])
    check(model["download"] == "/api/v1/runs/%d/artifacts/train/model" % run_id, "download %s" % model["download"])
    r = user.expect(200, "GET", model["download"])
    check(r.body == want, "downloaded %d bytes, differ" % len(r.body))
    etag = r.header("etag")
    check(etag == '"%s"' % model["hash"], "ETag %r" % etag)
    check(r.header("accept-ranges") == "bytes", "Accept-Ranges %r" % r.header("accept-ranges"))
    r = user.expect(304, "GET", model["download"], headers={"If-None-Match": etag})
    check(r.body == b"", "304 with a body")
    r = user.expect(200, "GET", model["download"], headers={"If-None-Match": '"0000"'})
    check(r.body == want, "other ETag: full body")
    r = user.expect(206, "GET", model["download"], headers={"Range": "bytes=10-19"})
    check(r.body == want[10:20], "range body %r" % r.body)
    check(r.header("content-range") == "bytes 10-19/100000", "Content-Range %r" % r.header("content-range"))
    r = user.expect(206, "GET", model["download"], headers={"Range": "bytes=99990-"})
    check(r.body == want[99990:], "open range")
    r = user.request("GET", model["download"], headers={"Range": "bytes=200000-"})
    check(r.status in (416, 200), "range beyond the end: %d" % r.status)
    if r.status == 416:
        check(r.header("content-range") == "bytes */100000", "416 Content-Range %r" % r.header("content-range"))
    tree = arts["tree"]
    check(tree["kind"] == "dir", "tree %s" % tree)
    r = user.expect(200, "GET", tree["download"])
    check((r.header("content-type") or "").startswith("application/x-tar"), "tar type %r" % r.header("content-type"))
    with tarfile.open(fileobj=io.BytesIO(r.body)) as tar:
        files = {m.name.rsplit("/", 1)[-1]: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
    check(files == {"a.txt": b"a\n", "b.txt": b"b\n"}, "tar members %s" % files)
    check(user.request("GET", "/api/v1/runs/%d/artifacts/train/nope" % run_id).status == 404, "unknown artifact")
    check(user.request("GET", "/api/v1/runs/%d/artifacts/nope/model" % run_id).status == 404, "unknown task")
    check(user.request("GET", "/api/v1/runs/999999/artifacts").status == 404, "artifacts of unknown run")


# ---------------------------------------------------------------------- stats, prometheus

PROM_LINE = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*",?)*\})? '
                       r'(-?[0-9.eE+-]+|NaN|\+Inf|-Inf)( -?\d+)?$')


def parse_prometheus(text):
    """{metric name: [(labels text, value)]}; raises on a line that is not
    text format 0.0.4."""
    metrics, types = {}, {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if line.startswith("#"):
            parts = line.split()
            if len(parts) >= 4 and parts[1] == "TYPE":
                check(parts[3] in ("counter", "gauge", "histogram", "summary", "untyped"), "line %d: %s" % (n, line))
                types[parts[2]] = parts[3]
            continue
        check(PROM_LINE.match(line), "line %d is not Prometheus text: %r" % (n, line))
        name = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0)
        labels = line[len(name):].rsplit(" ", 1)[0]
        metrics.setdefault(name, []).append((labels, float(line.rsplit(" ", 1)[1])))
    return metrics, types


def test_stats_and_prometheus(c):
    admin, user = setup(c)
    run_id = start(admin, CHAIN, "chain.yaml", params={"n": 1})["run_id"]
    wait_status(admin, run_id)
    check(admin.request("POST", "/metrics", validate=False).status == 405, "POST /metrics")
    stats = user.get("/api/v1/stats")
    check(stats["commits"] > 0 and stats["events_committed"] > 0, "stats %s" % stats)
    # Pools and weights (docs/scheduling.md): a pool set through the CLI is listed
    c.qanat("pool", "set", "lic", "3")
    pools = [p for p in user.get("/api/v1/limits")["limits"] if p["kind"] == "pool"]
    check(pools == [{"kind": "pool", "name": "lic", "value": 3, "set": True, "used": 0,
                     "waiting": 0}], "GET /api/v1/limits: %r" % pools)
    for client in (admin, qhttp.Client(c.http_port)):       # loopback: no token needed
        r = client.expect(200, "GET", "/metrics")
        check((r.header("content-type") or "").startswith("text/plain"), "type %r" % r.header("content-type"))
        metrics, types = parse_prometheus(r.body.decode())
        check(len(metrics) >= 5 and types, "too few metrics: %s" % sorted(metrics))
        buckets = [m for m in metrics if m.endswith("_bucket")]
        check(buckets, "no histogram (commit latency): %s" % sorted(metrics))
        inf = [v for labels, v in metrics[buckets[0]] if 'le="+Inf"' in labels]
        check(inf and inf[0] > 0, "commit latency +Inf bucket %s" % metrics[buckets[0]])
        check(any("http" in m and "request" in m for m in metrics), "no HTTP request counter: %s" % sorted(metrics))
        check(any("dispatch" in m for m in metrics), "no tasks dispatched counter: %s" % sorted(metrics))


# ---------------------------------------------------------------------- tokens

def test_apitokens_create_list_revoke(c):
    admin, user = setup(c, agent=False)
    body = {"name": "ci", "role": "user", "ttl_s": 3600}
    openapi_check.check_request("POST", "/api/v1/apitokens", body)
    r = admin.request("POST", "/api/v1/apitokens", body)
    check(r.status in (200, 201), "create %r" % r)
    made = r.json()
    check(made["token"].startswith("qat_") and made["role"] == "user" and made["user"] == "ci", "made %s" % made)
    check(made["expires"] is not None, "ttl gives an expiry")
    listed = {t["name"]: t for t in admin.get("/api/v1/apitokens")["tokens"]}
    check({"root", "alice", "ci"} <= set(listed), "listed %s" % sorted(listed))
    check(all(not t.get("token") for t in listed.values()), "a listed token shows its secret: %s" % listed)
    check(made["token"] not in admin.request("GET", "/api/v1/apitokens").body.decode(), "secret in the list")
    ci = admin.with_token(made["token"])
    me = ci.get("/api/v1/whoami")
    check(me == {"kind": "apitoken", "name": "ci", "role": "user"} or (me["name"], me["role"]) == ("ci", "user"), "whoami %s" % me)
    check(user.request("GET", "/api/v1/apitokens").status == 403, "user lists tokens")
    check(user.request("POST", "/api/v1/apitokens", {"name": "x", "role": "admin"}).status == 403, "user makes an admin token")
    check(user.request("DELETE", "/api/v1/apitokens/ci").status == 403, "user revokes")
    r = admin.request("POST", "/api/v1/apitokens", {"name": "ci", "role": "user"})
    check(r.status in (400, 409), "same name again: %r" % r)
    r = admin.request("POST", "/api/v1/apitokens", {"name": "bad", "role": "god"})
    check(r.status == 400 and error_of(r).get("field") == "role", "bad role: %r" % r)
    r = admin.request("DELETE", "/api/v1/apitokens/ci")
    check(r.status in (200, 204), "revoke %r" % r)
    r = ci.request("GET", "/api/v1/whoami")
    check(r.status == 401 and error_of(r)["code"] == "unauthorized", "revoked token: %r" % r)
    check(admin.request("DELETE", "/api/v1/apitokens/nope").status == 404, "revoke unknown")
    listed = {t["name"]: t for t in admin.get("/api/v1/apitokens")["tokens"]}
    check(listed.get("ci", {"revoked": True})["revoked"], "listed as revoked")
    # Revoked through the CLI: refused over HTTP at once
    c.qanat("apitoken", "revoke", "alice")
    check(user.request("GET", "/api/v1/runs").status == 401, "CLI-revoked token still works")
    # An expired token
    short = admin.request("POST", "/api/v1/apitokens", {"name": "short", "role": "user", "ttl_s": 1}).json()["token"]
    time.sleep(2.2)
    check(admin.with_token(short).request("GET", "/api/v1/whoami").status == 401, "expired token accepted")


# ---------------------------------------------------------------------- refusals

def test_refusals(c):
    admin, user = setup(c, agent=False)
    nobody = qhttp.Client(c.http_port)
    forged = qhttp.Client(c.http_port, "qat_" + "A" * 40)
    routes = [("GET", "/api/v1/runs"), ("GET", "/api/v1/runs/1"), ("GET", "/api/v1/runs/1/logs"),
              ("GET", "/api/v1/runs/1/logs.txt"), ("GET", "/api/v1/runs/1/metrics"), ("GET", "/api/v1/runs/1/artifacts"),
              ("GET", "/api/v1/workflows"), ("GET", "/api/v1/agents"), ("GET", "/api/v1/stats"),
              ("GET", "/api/v1/whoami"), ("GET", "/api/v1/apitokens"), ("POST", "/api/v1/runs"),
              ("POST", "/api/v1/agents/a1/drain"), ("GET", "/api/v1/runs/1/logs/stream"), ("GET", "/api/v1/runs/events")]
    for method, path in routes:
        for client in (nobody, forged):
            r = client.request(method, path, {"source": "x"} if method == "POST" else None)
            check(r.status == 401 and error_of(r)["code"] == "unauthorized", "no/forged token: %r" % r)
    # Without a credential the answer is 401 whatever the body or query:
    # a stranger learns nothing from the decoder
    for method, path, raw in (("POST", "/api/v1/runs", b"{"), ("POST", "/api/v1/apitokens", b"[1]"),
                              ("GET", "/api/v1/runs?limit=0", None), ("POST", "/api/v1/runs/1/cancel", b"x")):
        r = nobody.request(method, path, raw=raw, validate=False)
        check(r.status == 401 and error_of(r)["code"] == "unauthorized", "no token, bad input: %r" % r)
    r = qhttp.Client(c.http_port).request("GET", "/api/v1/runs", headers={"Authorization": "Basic YTpi"})
    check(r.status == 401, "basic auth: %r" % r)
    for method, path in (("GET", "/api/v1/apitokens"), ("POST", "/api/v1/agents/a1/drain"),
                         ("POST", "/api/v1/agents/a1/undrain"), ("POST", "/api/v1/agents/a1/revoke"),
                         ("DELETE", "/api/v1/apitokens/root")):
        r = user.request(method, path)
        check(r.status == 403 and error_of(r)["code"] == "forbidden", "wrong role: %r" % r)
    # Bodies: bad JSON, unknown field, wrong type, missing field
    for raw in (b"{", b"[1,2]", b"\"text\"", b"{\"source\": \"a\",}", b"\xff\xfe", b""):
        r = user.request("POST", "/api/v1/runs", raw=raw)
        check(r.status == 400 and error_of(r)["code"] == "bad_request", "bad JSON %r: %r" % (raw, r))
    cases = [({"source": CHAIN, "colour": "red"}, "colour"),
             ({"source": 5}, "source"),
             ({"source": CHAIN, "no_cache": "yes"}, "no_cache"),
             ({"workflow": "chain", "version": "one"}, "version"),
             ({"source": CHAIN, "params": ["n", 1]}, "params"),
             ({"source": CHAIN, "params": {"n": "many"}}, "n")]
    for body, field in cases:
        r = user.request("POST", "/api/v1/runs", body)
        check(r.status == 400 and field in (error_of(r).get("field") or "") + error_of(r)["message"],
              "body %s: want 400 naming %s, got %r" % (body, field, r))
    r = user.request("POST", "/api/v1/runs", {"source": "name: x\ntasks:\n  a:\n    run: echo\n    need: [b]\n"})
    check(r.status == 400 and "need" in error_of(r)["message"], "invalid workflow: %r" % r)
    r = admin.request("POST", "/api/v1/apitokens", {"name": "t", "role": "user", "ttl_s": -1})
    check(r.status == 400 and error_of(r).get("field") == "ttl_s", "negative ttl: %r" % r)
    r = admin.request("POST", "/api/v1/session", {"token": 12})
    check(r.status == 400 and error_of(r).get("field") == "token", "token not a string: %r" % r)
    r = oversized(c.http_port, admin.token)
    check(r.startswith(b"HTTP/1.1 413") or r.startswith(b"HTTP/1.0 413"), "17 MiB body: %r" % r[:200])
    check(b"nosniff" in r.lower(), "413 without the security headers")
    # Routes and methods
    for path in ("/api/v1/nope", "/api/v1/runs/1/nope", "/api/v2/runs", "/nope", "/api/v1/runs/1/artifacts/a"):
        r = admin.request("GET", path, validate=False)
        check(r.status == 404, "unknown route %s: %r" % (path, r))
        if path.startswith("/api/"):
            check(error_of(r)["code"] == "not_found", "unknown route %s: %r" % (path, r))
    for method, path in (("DELETE", "/api/v1/runs"), ("PUT", "/api/v1/runs/1"), ("PATCH", "/api/v1/agents"),
                         ("GET", "/api/v1/runs/1/cancel"), ("POST", "/api/v1/stats"), ("DELETE", "/api/v1/whoami")):
        r = admin.request(method, path, validate=False)
        check(r.status == 405, "%s %s: %r" % (method, path, r))
        check(method not in (r.header("allow") or ""), "Allow lists the refused method: %r" % r.header("allow"))
    # Long headers: refused, not a crash; the server still answers after
    r = raw_request(c.http_port, b"GET /api/v1/runs HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n")
    check(re.match(rb"HTTP/1\.[01] (400|413|431)", r) or r == b"", "20 KB header: %r" % r[:100])
    for line in (b"GARBAGE\r\n\r\n", b"GET /%00 HTTP/1.1\r\nHost: x\r\n\r\n", b"GET " + b"/a" * 5000 + b" HTTP/1.1\r\n\r\n"):
        raw_request(c.http_port, line)
    check(admin.get("/api/v1/whoami")["role"] == "admin", "server alive after hostile requests")
    # Static files carry the headers too, and stay inside their roots
    r = nobody.request("GET", "/", validate=False)
    check(r.status in (200, 404), "GET / %r" % r)
    for path in ("/static/../../../../../../etc/passwd", "/static/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
                 "/javascript/../../../../../etc/passwd", "/javascript/%2e%2e%2f%2e%2e%2f%2e%2e%2fetc/passwd",
                 "/ui/../../../../../etc/passwd", "/static//etc/passwd", "/static/%00"):
        r = nobody.request("GET", path, validate=False)
        check(b"root:" not in r.body and r.status < 500, "%s: %d %r" % (path, r.status, r.body[:80]))
    if os.path.exists("/usr/share/javascript/chart.js/chart.min.js"):
        r = nobody.expect(200, "GET", "/javascript/chart.js/chart.min.js", validate=False)
        check("javascript" in (r.header("content-type") or ""), "chart.js type %r" % r.header("content-type"))


# ---------------------------------------------------------------------- publish, blobs, code

def put_blob(client, digest, data, expect=None):
    r = client.request("PUT", "/api/v1/blobs/" + digest, raw=data,
                       headers={"Content-Type": "application/octet-stream"})
    if expect is not None:
        check(r.status == expect, "PUT blob: expected %d: %r" % (expect, r))
    return r


def short_put(port, token, digest, claimed, data):
    """A PUT whose body stops before its Content-Length: the client goes."""
    head = ("PUT /api/v1/blobs/%s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAuthorization: Bearer %s\r\n"
            "Content-Length: %d\r\n\r\n" % (digest, port, token, claimed)).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(head + data)
        time.sleep(0.3)


def test_publish_blobs_and_code(c):
    admin, user = setup(c)
    # Publish: a version without a run; the same text again is no new one
    body = {"source": talker("pub", 2), "filename": "pub.yaml"}
    openapi_check.check_request("POST", "/api/v1/workflows", body)
    first = user.expect(201, "POST", "/api/v1/workflows", body).json()
    check(first == {"name": "pub", "version": 1, "created": True, "code": ""}, "publish %s" % first)
    again = user.expect(200, "POST", "/api/v1/workflows", body).json()
    check(again == {"name": "pub", "version": 1, "created": False, "code": ""}, "republish %s" % again)
    changed = user.expect(201, "POST", "/api/v1/workflows", dict(body, source=talker("pub", 3))).json()
    check(changed["version"] == 2, "changed text %s" % changed)
    check(user.get("/api/v1/runs")["runs"] == [], "publishing started a run")
    r = user.request("POST", "/api/v1/workflows", {"source": "name: x\ntasks:\n  a:\n    run: echo\n    need: [b]\n",
                                                   "filename": "bad.yaml"})
    check(r.status == 400 and error_of(r)["message"].startswith("bad.yaml:5:5:"), "bad workflow %r" % r)
    for bad, field in (({"filename": "x.yaml"}, "source"), ({"source": "x", "code": "dir:"}, "code"),
                       ({"source": 1}, "source")):
        r = user.request("POST", "/api/v1/workflows", bad)
        check(r.status == 400 and error_of(r).get("field") == field, "publish %s: %r" % (bad, r))
    # Blobs: absent, put (fed in MiB pieces), held, put again for nothing
    data = os.urandom(2 * 1024 * 1024 + 777)
    digest = hashlib.sha256(data).hexdigest()
    user.expect(404, "GET", "/api/v1/blobs/" + digest)
    bytes_in = user.get("/api/v1/stats")["blob_bytes_in"]
    stored = put_blob(user, digest, data, 201).json()
    check(stored == {"hash": digest, "size": len(data)}, "PUT %s" % stored)
    check(user.get("/api/v1/blobs/" + digest) == stored, "GET after PUT")
    check(put_blob(user, digest, data, 200).json() == stored, "PUT again")
    check(user.get("/api/v1/stats")["blob_bytes_in"] == bytes_in + len(data), "held content fed again")
    # Hostile: a bad hash, content that is not its hash, a size that cannot
    # be the held blob's, a body cut short, no length; nothing is stored
    for name in ("ABC", digest.upper(), digest[:-1], digest + "0", "g" * 64):
        for method in ("GET", "PUT"):
            r = user.request(method, "/api/v1/blobs/" + name, raw=b"x" if method == "PUT" else None)
            check(r.status == 400 and error_of(r).get("field") == "hash", "%s %s: %r" % (method, name, r))
    other = hashlib.sha256(b"other").hexdigest()
    r = put_blob(user, other, b"not other", 400)
    check("hashes to" in error_of(r)["message"], "mismatch message %r" % r)
    user.expect(404, "GET", "/api/v1/blobs/" + other)
    r = put_blob(user, digest, data[:100], 409)
    check("not the content" in error_of(r)["message"], "size conflict %r" % r)
    short = b"short body " * 100
    short_digest = hashlib.sha256(short).hexdigest()
    short_put(c.http_port, user.token, short_digest, len(short), short[:300])
    user.expect(404, "GET", "/api/v1/blobs/" + short_digest)
    put_blob(user, short_digest, short, 201)            # resumed or not, whole now
    longer = b"claimed, then more"
    longer_digest = hashlib.sha256(longer).hexdigest()
    answer = raw_request(c.http_port, ("PUT /api/v1/blobs/%s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                                       "Content-Length: 7\r\n\r\n" % (longer_digest, user.token)).encode() + longer)
    check(answer.startswith(b"HTTP/1.1 400") and b"hashes to" in answer, "body longer than claimed: %r" % answer[:300])
    user.expect(404, "GET", "/api/v1/blobs/" + longer_digest)
    r = user.request("PUT", "/api/v1/blobs/" + other, headers={"Transfer-Encoding": "chunked"}, raw=iter([b"other"]))
    check(r.status == 411, "chunked PUT: %r" % r)
    r = qhttp.Client(c.http_port).request("PUT", "/api/v1/blobs/" + other, raw=b"other")
    check(r.status == 401, "PUT without a token: %r" % r)
    user.expect(404, "GET", "/api/v1/blobs/" + other)
    # Code: a file and its manifest put, then a run that starts in it
    script = b"echo from the code\n"
    script_hash = hashlib.sha256(script).hexdigest()
    manifest = b"qanat-tree 1\n644 %d %s run.sh\n" % (len(script), script_hash.encode())
    manifest_hash = hashlib.sha256(manifest).hexdigest()
    put_blob(user, script_hash, script, 201)
    put_blob(user, manifest_hash, manifest, 201)
    wf = "name: coded\ntasks:\n  t:\n    run: sh run.sh\n"
    run = start(user, wf, "coded.yaml", code="dir:" + manifest_hash)
    check(run["code"] == manifest_hash, "the run's code %s" % run.get("code"))
    check(wait_status(user, run["run_id"])["status"] == "succeeded", "the coded run")
    lines = user.get("/api/v1/runs/%d/logs" % run["run_id"])["lines"]
    check("from the code" in "".join(l["text"] for l in lines), "the code's output %s" % lines)
    for code in ("file:" + script_hash, "dir:" + manifest_hash.upper(), "dir:xyz"):
        r = user.request("POST", "/api/v1/runs", {"source": wf, "code": code})
        check(r.status == 400 and error_of(r).get("field") == "code", "code %s: %r" % (code, r))
    r = user.request("POST", "/api/v1/runs", {"source": wf, "code": "dir:" + other})
    check(r.status in (400, 404), "code never put: %r" % r)
    # A version keeps its code (the run above stored text and code as
    # version 1): the same again is that version, a run by name gets it
    body = {"source": wf, "filename": "coded.yaml", "code": "dir:" + manifest_hash}
    published = user.expect(200, "POST", "/api/v1/workflows", body).json()
    check(published == {"name": "coded", "version": 1, "created": False, "code": body["code"]},
          "published code %s" % published)
    bare = user.expect(201, "POST", "/api/v1/workflows", dict(body, code="")).json()
    check(bare["version"] == 2 and bare["code"] == "", "the same text without code %s" % bare)
    check(user.expect(201, "POST", "/api/v1/workflows", body).json()["version"] == 3,
          "the code again after a version without it")
    shown = user.get("/api/v1/workflows/coded/versions/%d" % published["version"])
    check(shown["code"] == body["code"], "the version's code %s" % shown)
    by_name = user.expect(201, "POST", "/api/v1/runs", {"workflow": "coded"}).json()
    check(by_name["code"] == manifest_hash, "a run by name gets the version's code %s" % by_name)
    check(wait_status(user, by_name["run_id"])["status"] == "succeeded", "the run by name")
    r = user.request("POST", "/api/v1/workflows", dict(body, code="dir:" + other))
    check(r.status == 400 and "no blob" in error_of(r)["message"], "publish with code never put: %r" % r)


SAMPLE = {"id": "1", "name": "x", "workflow": "x", "task": "t", "version": "1", "metric": "m", "path": "p", "hash": "0" * 64}


def test_every_documented_route_is_served(c):
    """docs/openapi.json and the server agree: each documented operation
    is there (refused without a token, not 404), each other method 405."""
    admin, user = setup(c, agent=False)
    nobody = qhttp.Client(c.http_port)
    methods = ("GET", "POST", "PUT", "DELETE", "PATCH")
    for template, item in openapi_check.spec()["paths"].items():
        if not template.startswith("/api/"):
            continue
        path = re.sub(r"\{(\w+)\}", lambda m: SAMPLE[m.group(1)], template)
        for method in methods:
            if method.lower() in item:
                if template == "/api/v1/session":
                    continue
                # 401 before any body or query is looked at
                query = "&".join("%s=1" % p["name"] for p in item[method.lower()].get("parameters", [])
                                 if p["in"] == "query" and p.get("required"))
                r = nobody.request(method, path + ("?" + query if query else ""), validate=False)
                check(r.status == 401,
                      "%s %s (documented) without a token: %r" % (method, path, r))
            else:
                r = admin.request(method, path, validate=False)
                check(r.status == 405, "%s %s (not documented): %r" % (method, path, r))
                allowed = {m.strip() for m in (r.header("allow") or "").split(",")}
                documented = {m.upper() for m in item}
                check(documented <= allowed | {"HEAD"}, "%s Allow %r, documented %s" % (path, r.header("allow"), documented))


def raw_request(port, data, timeout=5):
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        out = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
        except OSError:
            pass
        return out


def oversized(port, token, size=17 * 1024 * 1024):
    """POSTs a body over the engine's limit, stopping as soon as the
    server answers (it should not wait for it all)."""
    head = ("POST /api/v1/runs HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAuthorization: Bearer %s\r\n"
            "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (port, token, size)).encode()
    out = b""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(head)
        sent, chunk = 0, b" " * 65536
        deadline = time.time() + 20
        while time.time() < deadline:
            readable, writable, _ = select.select([s], [s] if sent < size else [], [], 1)
            if readable:
                try:
                    data = s.recv(65536)
                except OSError:
                    break
                if not data:
                    break
                out += data
                if b"\r\n\r\n" in out:
                    break
            elif writable:
                try:
                    sent += s.send(chunk[:size - sent])
                except OSError:
                    continue
    return out


# ---------------------------------------------------------------------- cookie session

def test_cookie_session_and_origin(c):
    admin, user = setup(c, agent=False)
    origin = "http://127.0.0.1:%d" % c.http_port
    anon = qhttp.Client(c.http_port)
    r = anon.request("POST", "/api/v1/session", {"token": user.token}, headers={"Origin": origin})
    check(r.status == 200 and r.json() == {"name": "alice", "role": "user"} or
          (r.status == 200 and (r.json()["name"], r.json()["role"]) == ("alice", "user")), "session %r" % r)
    cookie = r.header("set-cookie") or ""
    attrs = [a.strip().lower() for a in cookie.split(";")]
    check(cookie.startswith("qanat_session=" + user.token), "cookie %r" % cookie)
    check("httponly" in attrs and "samesite=strict" in attrs and "path=/" in attrs, "cookie attributes %r" % cookie)
    check("secure" not in attrs, "Secure without TLS: %r" % cookie)
    jar = {"Cookie": "qanat_session=" + user.token}
    me = anon.expect(200, "GET", "/api/v1/whoami", headers=jar).json()
    check(me["name"] == "alice", "whoami by cookie %s" % me)
    wf = {"source": SLOW, "filename": "slow.yaml"}
    r = anon.request("POST", "/api/v1/runs", wf, headers=jar)
    check(r.status == 403, "cookie POST without Origin: %r" % r)
    r = anon.request("POST", "/api/v1/runs", wf, headers=dict(jar, Origin="http://evil.example"))
    check(r.status == 403, "cookie POST from a foreign Origin: %r" % r)
    r = anon.request("POST", "/api/v1/runs", wf, headers=dict(jar, Origin="http://127.0.0.1:%d" % (c.http_port + 1)))
    check(r.status == 403, "cookie POST from another port: %r" % r)
    r = anon.request("POST", "/api/v1/runs", wf, headers=dict(jar, Origin="null"))
    check(r.status == 403, "cookie POST with Origin null: %r" % r)
    r = anon.expect(201, "POST", "/api/v1/runs", wf, headers=dict(jar, Origin=origin))
    check(r.json()["owner"] == "alice", "run by cookie %r" % r)
    # A bearer token needs no Origin (scripts are not browsers)
    user.expect(201, "POST", "/api/v1/runs", wf)
    r = anon.request("POST", "/api/v1/session", {"token": "qat_nonsense"}, headers={"Origin": origin})
    check(r.status == 401 and not r.header("set-cookie"), "bad token signs in: %r" % r)
    r = anon.request("DELETE", "/api/v1/session", headers=dict(jar, Origin="http://evil.example"))
    check(r.status == 403, "foreign DELETE /session: %r" % r)
    r = anon.expect(204, "DELETE", "/api/v1/session", headers=dict(jar, Origin=origin))
    cleared = (r.header("set-cookie") or "").lower()
    check(cleared.startswith("qanat_session=") and ("max-age=0" in cleared or "expires=thu, 01 jan 1970" in cleared),
          "cookie not cleared: %r" % cleared)
    check(anon.request("GET", "/api/v1/whoami", headers={"Cookie": "qanat_session=qat_bogus"}).status == 401,
          "a bogus cookie")


if __name__ == "__main__":
    harness.main(globals())
