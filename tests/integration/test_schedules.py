"""Schedules and triggers with a real coordinator whose scheduler clock
the test moves (QANAT_TEST_CLOCK_FILE holds seconds added to the system
time): ticks start runs with the schedule's params; 02:30 in
Europe/Berlin runs once on both daylight-saving days; kill -9 at a tick
leaves exactly one run per tick; catchup none/latest/all after downtime;
max_active and pause/resume record skipped ticks with why; a scheduled
run gets a secret only when its access list names user:@schedule; a trigger
starts the downstream workflow once per upstream run, with its run id and
a value output, and not after a failure; a restart between an upstream
run's end and the downstream start still gives exactly one; trigger
cycles are refused when published; retention (keep_runs) takes the tick
records and notifications of the runs it deletes with them."""
import http.server
import json
import os
import random
import subprocess
import threading
import time
import urllib.error
import urllib.request
import harness
import openapi_check
from harness import check

EVERY_MINUTE = """name: %s
params:
  epochs: {default: 1}
schedule:
  cron: "%s"
  catchup: %s
  params: {epochs: 3}
%stasks:
  a: {run: "echo epochs=${{ params.epochs }}"}
"""


def _clock(c, at):
    """Moves the scheduler's clock so that it reads `at` now."""
    with open(os.path.join(c.dir, "clock"), "w") as f:
        f.write("%.3f\n" % (at - time.time()))


def _start(c, agent=False, **kw):
    os.environ["QANAT_TEST_CLOCK_FILE"] = os.path.join(c.dir, "clock")
    c.start_coordinator(**kw)
    if agent:
        c.start_agent("a1", slots=4)


def _base(step=600):
    """A step-aligned time well ahead of now, so every tick is ours."""
    return (int(time.time()) // step + 10) * step


def _publish(c, name, cron="* * * * *", catchup="none", extra=""):
    os.makedirs(os.path.join(c.dir, name), exist_ok=True)
    path = c.write(os.path.join(name, "wf.yaml"), EVERY_MINUTE % (name, cron, catchup, extra))
    c.qanat("workflow", "publish", path)
    time.sleep(1.3)                     # a pass sees the schedule: counting starts


def _runs(c, name):
    return [r for r in c.qanat_json("runs", name, "--limit", "1000")]


def _rows(c, name=None):
    return c.qanat_json("schedules", *([name] if name else []))


def _split_by_kill(c, pattern, keys):
    """For the k-th kill (keys[k]: what the log line names, a tick or an
    upstream run), whether the coordinator killed then had logged its line
    (before the kill) or a later one did (after a restart: on a loaded
    machine a pass may come only after the next kill too).  Each line is
    logged exactly once, never by a coordinator older than its key."""
    import re
    with open(os.path.join(c.dir, "qanatd.log"), errors="replace") as f:
        # Each start logs (unbuffered, unlike the banner) that its clock is moved
        instances = f.read().split("the scheduler's clock is moved by")[1:]
    where = {}
    for i, text in enumerate(instances):
        for m in re.finditer(pattern, text):
            where.setdefault(int(m.group(1)), []).append(i)
    check(all(len(v) == 1 for v in where.values()), "a line twice: %r" % where)
    before = sum(1 for k, key in enumerate(keys) if where.get(key) == [k])
    after = sum(1 for k, key in enumerate(keys) if len(where.get(key, [])) == 1
                and where[key][0] > k)
    check(before + after == len(keys), "lines: %r for %r" % (where, keys))
    return before, after


def _wait_runs(c, name, count, timeout=10):
    c.wait_for(lambda: len(_runs(c, name)) >= count, "%d runs of %s" % (count, name), timeout)
    time.sleep(1.2)                     # one more pass: nothing more comes
    runs = _runs(c, name)
    check(len(runs) == count, "%s: %d runs, wanted %d" % (name, len(runs), count))
    return runs


def test_ticks_start_runs(c):
    _start(c, agent=True)
    t0 = _base()
    _clock(c, t0 + 5)
    _publish(c, "tick")
    rows = _rows(c)
    check(len(rows) == 1 and rows[0]["cron"] == "* * * * *" and rows[0]["timezone"] == "UTC"
          and rows[0]["next_tick_us"] == (t0 + 60) * 10**6 and rows[0]["last_run"] == 0,
          "rows: %r" % rows)
    for k in (1, 2, 3):
        _clock(c, t0 + 60 * k + 5)
        _wait_runs(c, "tick", k)
    runs = _runs(c, "tick")
    owners = c.qanat("runs", "tick").stdout.splitlines()[1:]
    check(len(owners) == 3 and all(" @schedule " in r for r in owners), "owners: %r" % owners)
    last = c.wait_run(runs[0]["run_id"])
    check(last["status"] == "succeeded" and last["params"]["epochs"] == "3", "run: %r" % last)
    lines = [l["data"].strip() for l in c.logs_json(last["run_id"], "a")]
    check("epochs=3" in lines, "logs: %r" % lines)
    row = _rows(c)[0]
    check(row["last_tick_us"] == (t0 + 180) * 10**6 and row["last_run"] == last["run_id"]
          and row["last_run_status"] == "succeeded", "row: %r" % row)
    table = c.qanat("schedules").stdout.splitlines()
    check(table[0].split()[:3] == ["WORKFLOW", "CRON", "TIMEZONE"]
          and table[1].startswith("tick") and "succeeded" in table[1], "table: %r" % table)
    # By hand it still runs
    c.qanat("run", "tick")
    check(len(_runs(c, "tick")) == 4, "run NAME by hand")


def test_daylight_saving_berlin(c):
    """02:30 Europe/Berlin: once at the jump on 2027-03-28 (02:00 -> 03:00),
    once at the first 02:30 on 2027-10-31 (03:00 -> 02:00), never twice."""
    _start(c)
    spring = 1806195600                 # 2027-03-28 01:00 UTC: 02:00 CET becomes 03:00 CEST
    _clock(c, spring - 600)
    text = (EVERY_MINUTE % ("dst", "30 2 * * *", "none", "")).replace(
        "catchup: none", "catchup: none\n  timezone: Europe/Berlin")
    _publish_text(c, "dst", text)
    time.sleep(1.3)
    row = _rows(c)[0]
    check(row["timezone"] == "Europe/Berlin" and row["next_tick_us"] == spring * 10**6,
          "spring next tick: %r" % row)
    _clock(c, spring + 20)
    _wait_runs(c, "dst", 1)
    _clock(c, spring + 45 * 60)         # 03:45 CEST: no second 02:30
    time.sleep(1.2)
    check(len(_runs(c, "dst")) == 1, "spring forward ran twice")
    fall = 1824942600                   # 2027-10-31 00:30 UTC: 02:30 CEST, the first pass
    _clock(c, fall - 600)
    time.sleep(1.2)
    check(_rows(c)[0]["next_tick_us"] == fall * 10**6, "fall next tick: %r" % _rows(c)[0])
    _clock(c, fall + 20)
    _wait_runs(c, "dst", 2)
    _clock(c, fall + 3600 + 20)         # 02:30 CET, the second pass
    time.sleep(1.2)
    _clock(c, fall + 3600 + 40 * 60)
    time.sleep(1.2)
    check(len(_runs(c, "dst")) == 2, "fall back ran 02:30 twice")
    row = _rows(c)[0]
    check(row["last_tick_us"] == fall * 10**6
          and row["next_tick_us"] == (fall + 86400 + 3600) * 10**6, "after fall: %r" % row)


def test_kill_at_tick_exactly_once(c):
    _start(c)
    t0 = _base()
    _clock(c, t0 + 5)
    _publish(c, "once")
    kills = 8
    random.seed(18)
    for k in range(1, kills + 1):
        _clock(c, t0 + 60 * k + 1)
        # Around the pass that fires the tick (one a second): some kills
        # come before it, some after
        time.sleep((0.0, 0.25, 0.5, 1.0)[k % 4] + random.uniform(0.0, 0.1))
        c.kill_coordinator()
        c.start_coordinator()
        # The tick is handled once the coordinator is back, if not before
        c.wait_for(lambda: _rows(c)[0]["last_tick_us"] == (t0 + 60 * k) * 10**6,
                   "tick %d" % k)
    runs = _wait_runs(c, "once", kills)
    before, after = _split_by_kill(c, r"once schedule 0 tick (\d+): run",
                                   [t0 + 60 * k for k in range(1, kills + 1)])
    print("  kill -9 at %d ticks: %d runs, one per tick (%d started before the kill, %d after "
          "the restart)" % (kills, len(runs), before, after))
    row = _rows(c)[0]
    check(row["last_tick_us"] == (t0 + 60 * kills) * 10**6, "last tick: %r" % row)


def test_catchup_after_downtime(c):
    _start(c)
    t0 = _base()
    _clock(c, t0 + 5)
    for mode in ("none", "latest", "all"):
        _publish(c, "c-" + mode, cron="*/10 * * * *", catchup=mode)
    c.kill_coordinator()
    # Down for five ticks; the newest is 90 s late when it comes back
    _clock(c, t0 + 50 * 60 + 90)
    c.start_coordinator()
    counts = {}
    for mode, want in (("none", 0), ("latest", 1), ("all", 5)):
        runs = _wait_runs(c, "c-" + mode, want) if want else None
        counts[mode] = len(_runs(c, "c-" + mode))
        check(counts[mode] == want, "catchup %s: %d runs" % (mode, counts[mode]))
    rows = {r["workflow"]: r for r in _rows(c)}
    check("catchup: none" in rows["c-none"]["last_skipped"], "none: %r" % rows["c-none"])
    check(rows["c-latest"]["last_run"] and rows["c-latest"]["last_tick_us"] == (t0 + 3000) * 10**6,
          "latest: %r" % rows["c-latest"])
    check(rows["c-all"]["last_tick_us"] == (t0 + 3000) * 10**6, "all: %r" % rows["c-all"])
    print("  catchup after 5 missed ticks: %r runs" % counts)


def test_max_active_skips(c):
    _start(c)                           # no agent: runs stay queued
    t0 = _base()
    _clock(c, t0 + 5)
    _publish(c, "busy", extra="max_active: 1\n")
    _clock(c, t0 + 65)
    _wait_runs(c, "busy", 1)
    _clock(c, t0 + 125)
    time.sleep(1.5)
    check(len(_runs(c, "busy")) == 1, "max_active let a second run start")
    row = _rows(c, "busy")[0]
    check(row["last_run"] == 0 and "max_active 1 reached" in row["last_skipped"]
          and row["max_active"] == 1, "row: %r" % row)
    check("skipped: max_active" in c.qanat("schedules").stdout, "table says why")


def test_pause_resume(c):
    _start(c)
    t0 = _base()
    _clock(c, t0 + 5)
    _publish(c, "pz")
    c.qanat("schedule", "pause", "pz")
    check(_rows(c)[0]["paused"], "paused")
    _clock(c, t0 + 65)
    time.sleep(1.5)
    check(_runs(c, "pz") == [], "a paused schedule started a run")
    row = _rows(c)[0]
    check(row["last_skipped"] == "the schedule is paused", "row: %r" % row)
    check("paused" in c.qanat("schedules").stdout, "table shows paused")
    c.qanat("schedule", "resume", "pz")
    _clock(c, t0 + 125)
    _wait_runs(c, "pz", 1)
    bad = c.qanat("schedule", "pause", "nope", check=False)
    check(bad.returncode != 0 and "no such workflow" in bad.stderr, "unknown: " + bad.stderr)


def test_scheduled_runs_secrets(c):
    _start(c, agent=True)
    import subprocess
    subprocess.run([harness.QANAT, "--coordinator", c.client_endpoint, "--key", c.key,
                    "secret", "set", "TOKEN"], input="s3cr3t\n", text=True, check=True,
                   capture_output=True)
    t0 = _base()
    _clock(c, t0 + 5)
    _publish(c, "sec", extra="", cron="* * * * *")
    # The same workflow with a secret: an admin's secret is not lent to it
    path = c.write(os.path.join("sec", "wf.yaml"), (EVERY_MINUTE % ("sec", "* * * * *", "none", ""))
                   .replace("tasks:", "tasks:\n  s: {run: test -n \"$T\", env: {T: \"${{ secrets.TOKEN }}\"}}"))
    c.qanat("workflow", "publish", path)
    _clock(c, t0 + 65)
    c.wait_for(lambda: _rows(c)[0]["last_tick_us"] == (t0 + 60) * 10**6, "tick 1")
    row = _rows(c)[0]
    check(row["last_run"] == 0 and "run refused" in row["last_skipped"], "row: %r" % row)
    check(_runs(c, "sec") == [], "a run started with an admin-only secret")
    c.qanat("secret", "allow", "TOKEN", "workflow:sec")         # not enough: an owner
    _clock(c, t0 + 125)
    c.wait_for(lambda: _rows(c)[0]["last_tick_us"] == (t0 + 120) * 10**6, "tick 2")
    check(_runs(c, "sec") == [], "workflow:sec alone lent an admin's secret")
    c.qanat("secret", "allow", "TOKEN", "user:@schedule,workflow:sec")
    _clock(c, t0 + 185)
    runs = _wait_runs(c, "sec", 1)
    check(c.wait_run(runs[0]["run_id"])["status"] == "succeeded", "workflow:sec secret")


UPSTREAM = """name: up
params:
  fail: {default: "no"}
tasks:
  t:
    run: 'echo v=up-value >> "$QANAT_VALUES"; test ${{ params.fail }} = no'
    outputs: {v: {value: true}}
"""

DOWNSTREAM = """name: %s
params:
  from_run: {default: ""}
  got: {default: ""}
trigger:
  after: [up]
  on: [%s]
  params:
    from_run: "${{ upstream.run }}"
    got: "${{ upstream.outputs.t.v }}"
tasks:
  b: {run: "echo from ${{ params.from_run }}"}
"""


def _publish_text(c, name, text, check_ok=True):
    os.makedirs(os.path.join(c.dir, name), exist_ok=True)
    path = c.write(os.path.join(name, "wf.yaml"), text)
    return c.qanat("workflow", "publish", path, check=check_ok)


def test_cascade(c):
    _start(c, agent=True)
    _publish_text(c, "up", UPSTREAM)
    _publish_text(c, "down", DOWNSTREAM % ("down", "succeeded, succeeded_with_warnings"))
    _publish_text(c, "onfail", DOWNSTREAM % ("onfail", "failed"))
    a = c.qanat_json("run", "up")["run_id"]
    check(c.wait_run(a)["status"] == "succeeded", "upstream failed")
    runs = _wait_runs(c, "down", 1)
    b = c.wait_run(runs[0]["run_id"])
    check(b["params"]["from_run"] == str(a) and b["params"]["got"] == "up-value"
          and b["status"] == "succeeded", "downstream: %r" % b)
    check(" @trigger " in c.qanat("runs", "down").stdout, "owner @trigger")
    check(_runs(c, "onfail") == [], "on: failed fired after a success")
    # A failure: no "down", one "onfail"
    f = c.qanat_json("run", "up", "--param", "fail=yes")["run_id"]
    check(c.wait_run(f)["status"] == "failed", "upstream did not fail")
    _wait_runs(c, "onfail", 1)
    check(len(_runs(c, "down")) == 1, "a failed upstream started down")
    rows = {r["workflow"]: r for r in _rows(c)}
    check(rows["down"]["trigger_after"] == ["up"] and rows["down"]["cron"] == "", "rows: %r" % rows)
    # Cycles are refused at publish: up after down closes up -> down -> up
    cyc = UPSTREAM.replace("tasks:", "trigger: {after: [down]}\ntasks:")
    bad = _publish_text(c, "up", cyc, check_ok=False)
    check(bad.returncode != 0 and "trigger cycle" in bad.stderr, "cycle: " + bad.stderr)
    selfish = DOWNSTREAM.replace("after: [up]", "after: [self]") % ("self", "succeeded")
    bad = _publish_text(c, "self", selfish, check_ok=False)
    check(bad.returncode != 0 and "trigger cycle" in bad.stderr, "self cycle: " + bad.stderr)


def _entries(c, table):
    """Records in one of the coordinator store's tables (mdb_stat reads
    beside the running coordinator)."""
    out = subprocess.run(["mdb_stat", "-s", table, os.path.join(c.dir, "coordinator")],
                         capture_output=True, text=True, timeout=30)
    check(out.returncode == 0, "mdb_stat %s: %s" % (table, out.stderr))
    return int(out.stdout.split("Entries:")[1].split()[0])


def test_retention_prunes_ticks_and_notifications(c):
    posts = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            posts.append(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", harness.free_port()), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        _start(c, agent=True)
        t0 = _base()
        _clock(c, t0 + 5)
        hook = 'notify: {on: [succeeded], webhook: {url: "http://127.0.0.1:%d/h"}}\nkeep_runs: 2\n'
        _publish(c, "kept", extra=hook % server.server_address[1])
        counts = []
        for k in range(1, 6):
            _clock(c, t0 + 60 * k + 5)
            c.wait_for(lambda: len(posts) == k, "tick %d's run notified" % k, 20)
            c.wait_for(lambda: all(n["state"] == "delivered" for n in c.qanat_json("notifications")),
                       "delivered recorded", 10)
            counts.append((_entries(c, "sched_ticks"),
                           _entries(c, "notif_outbox") + _entries(c, "notif_pending")))
        runs = [r["run_id"] for r in _runs(c, "kept")]
        listed = c.qanat_json("notifications")
        print("  tick records and notifications after each of 5 ticks (keep_runs: 2): %s"
              % counts)
        check(len(runs) == 2, "runs kept: %r" % runs)
        check(sorted(n["run"] for n in listed) == sorted(runs), "notifications: %r" % listed)
        check(counts[-1] == (2, 2), "records after 5 ticks: %r (want 2 ticks, 2 notifications)"
              % (counts[-1],))
        row = _rows(c, "kept")[0]
        check(row["last_tick_us"] == (t0 + 300) * 10**6 and row["last_run"] == max(runs),
              "row: %r" % row)
    finally:
        server.shutdown()
        server.server_close()


def _api(c, method, path, token):
    """(status, JSON body) of a call to the HTTP API with an API token."""
    request = urllib.request.Request("http://127.0.0.1:%d/api/v1/%s" % (c.http_port, path),
                                     method=method, data=b"" if method == "POST" else None,
                                     headers={"Authorization": "Bearer " + token})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def test_schedules_over_http(c):
    _start(c, agent=True, http_port=True)
    t0 = _base()
    _clock(c, t0 + 5)
    _publish(c, "web")
    _clock(c, t0 + 65)
    _wait_runs(c, "web", 1)
    reader, admin = c.create_apitoken("reader"), c.create_apitoken("boss", "admin")
    status, listed = _api(c, "GET", "schedules", reader)
    check(status == 200, "GET /schedules: %d %r" % (status, listed))
    openapi_check.check("GET", "/api/v1/schedules", 200, listed)
    rows = listed["schedules"]
    cli = _rows(c)
    check(len(rows) == 1 and rows[0]["workflow"] == "web" and rows[0]["cron"] == "* * * * *"
          and rows[0]["last_run"] == cli[0]["last_run"] and rows[0]["paused"] is False
          and rows[0]["last_run_status"] == cli[0]["last_run_status"],
          "over HTTP %r, CLI %r" % (rows, cli))
    # Pausing is the admin's, as with the CLI
    status, body = _api(c, "POST", "schedules/web/pause", reader)
    check(status == 403, "a user paused: %d %r" % (status, body))
    status, body = _api(c, "POST", "schedules/web/pause", admin)
    check(status == 200 and body["schedules"][0]["paused"] is True, "pause: %d %r" % (status, body))
    openapi_check.check("POST", "/api/v1/schedules/{workflow}/pause", 200, body)
    check(_rows(c, "web")[0]["paused"] is True, "the CLI sees it paused")
    _clock(c, t0 + 125)
    time.sleep(1.5)
    check(len(_runs(c, "web")) == 1, "a paused schedule ran")
    status, body = _api(c, "POST", "schedules/web/resume", admin)
    check(status == 200 and body["schedules"][0]["paused"] is False, "resume: %d %r" % (status, body))
    _clock(c, t0 + 185)
    _wait_runs(c, "web", 2)
    status, body = _api(c, "POST", "schedules/nosuch/pause", admin)
    check(status in (400, 404), "an unknown workflow: %d %r" % (status, body))
    status, body = _api(c, "GET", "schedules/web/pause", admin)
    check(status == 405, "GET on pause: %d" % status)


def test_cascade_restart_exactly_once(c):
    _start(c, agent=True)
    _publish_text(c, "up", UPSTREAM)
    _publish_text(c, "down", DOWNSTREAM % ("down", "succeeded"))
    rounds = 4
    random.seed(2)
    ups = []
    for _ in range(rounds):
        a = c.qanat_json("run", "up")["run_id"]
        ups.append(a)
        c.wait_for(lambda: c.qanat_json("status", a)["status"] == "succeeded", "up to end", 30)
        time.sleep((0.0, 1.2, 0.3, 0.6)[len(ups) % 4])
        c.kill_coordinator()
        c.start_coordinator()
    runs = _wait_runs(c, "down", rounds, timeout=20)
    froms = sorted(int(c.qanat_json("status", r["run_id"])["params"]["from_run"]) for r in runs)
    check(froms == sorted(ups), "downstream per upstream: %r vs %r" % (froms, ups))
    before, after = _split_by_kill(c, r"run (\d+) of up ended succeeded: run", ups)
    print("  kill -9 after %d upstream ends: %d downstream runs, one each (%d started before the "
          "kill, %d after the restart)" % (rounds, len(runs), before, after))


if __name__ == "__main__":
    harness.main(globals())
