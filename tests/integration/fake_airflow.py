#!/usr/bin/env python3
"""A fake Airflow 2 webserver serving the stable REST API (/api/v1), for
qanat's airflow backend tests.  Written from Airflow's OpenAPI
specification (airflow/api_connexion/openapi/v1.yaml) for the endpoints
the backend uses:

  POST  /api/v1/dags/{dag_id}/dagRuns              trigger: DAGRun body
        (dag_run_id, logical_date, execution_date, data_interval_start,
        data_interval_end, conf, note); 409 AlreadyExists for a known
        dag_run_id, 404 for an unknown DAG
  GET   /api/v1/dags/{dag_id}/dagRuns/{dag_run_id}  the DAGRun: state
        queued, running, success or failed
  PATCH /api/v1/dags/{dag_id}/dagRuns/{dag_run_id}  {"state": "success" |
        "failed" | "queued"}: failed ends the run, its running task
        instances failed, the others not started skipped
  GET   /api/v1/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances
        {"task_instances": [...], "total_entries": N}, offset/limit paged
        (limit at most page_limit, 100 as Airflow's maximum_page_limit)
  GET   .../taskInstances/{task_id}/logs/{task_try_number}?full_content=&
        token=&map_index=   with Accept: application/json
        {"content", "continuation_token"}: a page of the try's log from
        the token's log_pos on (page_chars at most), and a new token; the
        token is signed (a foreign one is 400 "Bad Signature") and says
        end_of_log once the try is over and read to its end

  GET   .../taskInstances/{task_id}/xcomEntries/{xcom_key}?map_index=&
        deserialize=&stringify=   the XCom schema {key, timestamp,
        execution_date, map_index, task_id, dag_id, value}; a task's
        return_value is the last line of its output (BashOperator's
        do_xcom_push), value as text; 404 for none

Errors are problem+json {"type", "title", "status", "detail"}, as
connexion sends them.  Auth: basic (user, password) or a bearer token;
anything else is 401.

Every request is recorded; anything the specification does not allow (an
unknown path, method, query parameter, body field or type, a missing
Content-Type or Accept) is answered 400/404/405 AND appended to
FakeAirflow.violations: a test asserts that list stays empty.

A DAG is a chain of tasks (add_dag (dag_id, [(task_id, command,
retries)])), each run with /bin/sh -c as a local process once the one
before succeeded, with AIRFLOW_CTX_DAG_ID, AIRFLOW_CTX_DAG_RUN_ID,
AIRFLOW_CTX_TASK_ID, AIRFLOW_CTX_TRY_NUMBER as Airflow sets them and the
run's conf as JSON in DAG_RUN_CONF (what a BashOperator's env:
{{ dag_run.conf | tojson }} gives).  Its output goes to the try's log as
the task runner writes it: "[time] {subprocess.py:93} INFO - line",
between the runner's own lines; a failed command ends with Airflow's
"Task failed with exception" traceback.  A task with retries goes
up_for_retry and runs again as the next try.  Runs are queued for
queued_s first.

Faults: inject (method, path_regex, status, count, retry_after), delay_s,
trigger_delay_s, trigger_lost_s (held, then 503: no run made), expire_token () / set_token (), as in fake_ray.
"""
import base64
import datetime
import hashlib
import hmac
import json
import os
import re
import signal
import subprocess
import threading
import time
import urllib.parse

import fake_http

DAG_RUN_FIELDS = {"dag_run_id": str, "logical_date": str, "execution_date": str,
                  "data_interval_start": str, "data_interval_end": str, "conf": dict,
                  "note": str}
LOG_QUERY = {"full_content", "token", "map_index"}
TI_QUERY = {"limit", "offset", "execution_date_gte", "execution_date_lte", "start_date_gte",
            "start_date_lte", "end_date_gte", "end_date_lte", "duration_gte", "duration_lte",
            "state", "pool", "queue", "executor", "order_by"}
TI_FINISHED = ("success", "failed", "skipped", "upstream_failed", "removed")
SECRET = os.urandom(16)


def iso(t):
    if t is None:
        return None
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).isoformat()


def log_time():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] \
        + "+0000"


def make_token(pos, end):
    data = base64.urlsafe_b64encode(json.dumps({"log_pos": pos, "end_of_log": end}).encode())
    sig = hmac.new(SECRET, data, hashlib.sha256).hexdigest()[:16]
    return data.decode().rstrip("=") + "." + sig


def read_token(token):
    data, _, sig = token.rpartition(".")
    if not data or not hmac.compare_digest(
            hmac.new(SECRET, (data + "=" * (-len(data) % 4)).encode(),
                     hashlib.sha256).hexdigest()[:16], sig):
        return None
    return json.loads(base64.urlsafe_b64decode(data + "=" * (-len(data) % 4)))


class TaskInstance:
    def __init__(self, run, task_id, command, retries):
        self.run, self.task_id, self.command, self.retries = run, task_id, command, retries
        self.state = None
        self.try_number = 0
        self.start = self.end = None
        self.logs = {}              # try -> text
        self.xcom = {}              # key -> value as text
        self.process = None

    def write(self, text):
        self.logs[self.try_number] = self.logs.get(self.try_number, "") + text

    def runner(self, level, source, text):
        self.write("[%s] {%s} %s - %s\n" % (log_time(), source, level, text))

    def json(self):
        run = self.run
        return {
            "task_id": self.task_id, "dag_id": run.dag_id, "dag_run_id": run.run_id,
            "execution_date": iso(run.logical), "start_date": iso(self.start),
            "end_date": iso(self.end),
            "duration": (self.end - self.start) if self.end and self.start else None,
            "state": self.state, "try_number": self.try_number, "map_index": -1,
            "max_tries": self.retries, "hostname": "fake-worker" if self.start else "",
            "unixname": "airflow", "pool": "default_pool", "pool_slots": 1,
            "queue": "default", "priority_weight": 1, "operator": "BashOperator",
            "queued_when": iso(self.start), "pid": self.process.pid if self.process else None,
            "executor_config": "{}", "sla_miss": None, "rendered_fields": {},
            "trigger": None, "triggerer_job": None, "note": None,
        }


class DagRun:
    def __init__(self, dag_id, body, tasks):
        self.dag_id = dag_id
        self.run_id = body["dag_run_id"]
        self.conf = body.get("conf") or {}
        self.note = body.get("note")
        self.logical = time.time()
        self.state = "queued"
        self.start = self.end = None
        self.tis = [TaskInstance(self, t, c, r) for t, c, r in tasks]
        self.canceled = False

    def json(self):
        return {
            "dag_run_id": self.run_id, "dag_id": self.dag_id,
            "logical_date": iso(self.logical), "execution_date": iso(self.logical),
            "start_date": iso(self.start), "end_date": iso(self.end),
            "data_interval_start": iso(self.logical), "data_interval_end": iso(self.logical),
            "last_scheduling_decision": iso(time.time()), "run_type": "manual",
            "state": self.state, "external_trigger": True, "conf": self.conf,
            "note": self.note,
        }


class FakeAirflow(fake_http.FakeServer):
    def __init__(self, directory, user="qanat", password="s3cret-pw", token=None,
                 queued_s=0.3, page_chars=300):
        super().__init__(token)
        self.dir = directory
        os.makedirs(directory, exist_ok=True)
        self.user, self.password = user, password
        self.queued_s, self.page_chars = queued_s, page_chars
        self.trigger_delay_s = 0.0  # a trigger's answer comes this late (the run exists)
        self.trigger_lost_s = 0.0   # a trigger is held this long, then 503, no run made
        self.page_limit = 100       # maximum_page_limit: task instances per page at most
        self.dags = {}
        self.runs = {}

    def start(self, port=0):
        return self.serve(_Handler, port)

    def stop(self):
        for run in list(self.runs.values()):
            for ti in run.tis:
                if ti.process and ti.process.poll() is None:
                    _kill(ti.process)
        self.stop_server()

    def add_dag(self, dag_id, tasks):
        self.dags[dag_id] = [(t[0], t[1], t[2] if len(t) > 2 else 0) for t in tasks]

    # -- runs ------------------------------------------------------------
    def trigger(self, dag_id, body):
        with self.lock:
            key = (dag_id, body["dag_run_id"])
            if key in self.runs:
                return None
            run = DagRun(dag_id, body, self.dags[dag_id])
            self.runs[key] = run
        threading.Thread(target=self._run, args=(run,), daemon=True).start()
        return run

    def _run(self, run):
        time.sleep(self.queued_s)
        if run.canceled:
            return
        run.state, run.start = "running", time.time()
        for ti in run.tis:
            ti.state = "scheduled"
        for ti in run.tis:
            if run.canceled:
                return
            while not self._try(run, ti):
                if run.canceled:
                    return
                if ti.try_number > ti.retries:
                    ti.state, ti.end = "failed", time.time()
                    for rest in run.tis[run.tis.index(ti) + 1:]:
                        rest.state = "upstream_failed"
                    run.state, run.end = "failed", time.time()
                    return
                ti.state = "up_for_retry"
                time.sleep(0.2)
            ti.state, ti.end = "success", time.time()
        run.state, run.end = "success", time.time()

    def _try(self, run, ti):
        """One try of a task instance; True when it succeeded."""
        ti.try_number += 1
        ti.state, ti.start, ti.end = "queued", time.time(), None
        time.sleep(0.1)
        ti.state = "running"
        ti.runner("INFO", "taskinstance.py:1159", "Dependencies all met for dep_context=non-"
                  "requeueable deps ti=<TaskInstance: %s.%s %s [queued]>"
                  % (run.dag_id, ti.task_id, run.run_id))
        ti.runner("INFO", "taskinstance.py:1361", "Starting attempt %d of %d"
                  % (ti.try_number, ti.retries + 1))
        env = dict(os.environ, AIRFLOW_CTX_DAG_ID=run.dag_id, AIRFLOW_CTX_DAG_RUN_ID=run.run_id,
                   AIRFLOW_CTX_TASK_ID=ti.task_id, AIRFLOW_CTX_TRY_NUMBER=str(ti.try_number),
                   DAG_RUN_CONF=json.dumps(run.conf))
        ti.runner("INFO", "subprocess.py:75", "Running command: ['/bin/bash', '-c', %r]"
                  % ti.command)
        ti.process = subprocess.Popen(["/bin/sh", "-c", ti.command], env=env, cwd=self.dir,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, start_new_session=True)
        last = None
        for raw in ti.process.stdout:
            last = raw.decode("utf-8", "replace").rstrip("\n")
            ti.runner("INFO", "subprocess.py:93", last)
        code = ti.process.wait()
        ti.runner("INFO", "subprocess.py:97", "Command exited with return code %d" % code)
        if run.canceled:
            return False
        if code == 0:
            if last is not None:    # BashOperator's do_xcom_push: the last line
                ti.xcom["return_value"] = last
            ti.runner("INFO", "taskinstance.py:1400", "Marking task as SUCCESS. dag_id=%s, "
                      "task_id=%s" % (run.dag_id, ti.task_id))
            return True
        ti.runner("ERROR", "taskinstance.py:1703", "Task failed with exception")
        ti.write("Traceback (most recent call last):\n  File \"/opt/airflow/operators/bash.py"
                 "\", line 210, in execute\n    raise AirflowException(\nairflow.exceptions."
                 "AirflowException: Bash command failed. The command returned a non-zero "
                 "exit code %d.\n" % code)
        ti.runner("INFO", "taskinstance.py:1400", "Marking task as %s. dag_id=%s, task_id=%s"
                  % ("UP_FOR_RETRY" if ti.try_number <= ti.retries else "FAILED",
                     run.dag_id, ti.task_id))
        return False

    def cancel(self, run, state):
        if state == "failed":
            run.canceled = True
            for ti in run.tis:
                if ti.state in ("running", "queued", "up_for_retry"):
                    if ti.process and ti.process.poll() is None:
                        _kill(ti.process)
                    ti.state, ti.end = "failed", time.time()
                elif ti.state not in TI_FINISHED:
                    ti.state = "skipped"
        run.state = state
        if state != "queued":
            run.end = time.time()


def _kill(process):
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except OSError:
        pass


def problem(status, title, detail):
    return {"type": "https://airflow.apache.org/docs/apache-airflow/2.9.3/stable-rest-api-"
                    "ref.html#section/Errors/" + title.replace(" ", ""),
            "title": title, "status": status, "detail": detail}


class _Handler(fake_http.Handler):
    def _send(self, status, body, headers=()):
        self.reply(status, json.dumps(body).encode(), "application/problem+json"
                   if status >= 400 else "application/json", headers)

    def _bad(self, status, title, detail):
        self.owner.violation("%s %s: %s" % (self.command, self.path, detail))
        self._send(status, problem(status, title, detail))

    def _authorized(self):
        fake = self.owner
        auth = self.headers.get("Authorization") or ""
        if auth.startswith("Basic "):
            try:
                user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
            except ValueError:
                return False
            return user == fake.user and password == fake.password
        return self.bearer_ok()

    def handle_method(self, method):
        fake = self.owner
        path, query, raw, body = self.record(method)
        if not self._authorized():
            return self._send(401, problem(401, "Unauthorized", "Token expired or invalid"
                                           if fake.expired else "Not authenticated"),
                              [("WWW-Authenticate", "Basic")])
        fault = fake.take_fault(method, path)
        if fault:
            headers = [("Retry-After", str(fault[1]))] if fault[1] is not None else []
            title = "Too Many Requests" if fault[0] == 429 else "Internal Server Error"
            return self._send(fault[0], problem(fault[0], title, "injected"), headers)
        if "application/json" not in (self.headers.get("Accept") or ""):
            return self._bad(406, "Not Acceptable", "Accept must name application/json")
        if raw and method in ("POST", "PATCH") and not (
                self.headers.get("Content-Type") or "").startswith("application/json"):
            return self._bad(415, "Unsupported Media Type", "Content-Type must be JSON")
        self._route(method, path, query, raw, body)

    def _route(self, method, path, query, raw, body):
        fake = self.owner
        m = re.fullmatch(r"/api/v1/dags/([^/]+)/dagRuns(?:/([^/]+)(?:/taskInstances(?:/([^/]+)"
                         r"(?:/logs/([^/]+)|/xcomEntries/([^/]+)))?)?)?", path)
        if not m:
            return self._bad(404, "Not Found", "no such endpoint: " + path)
        dag_id, run_id, task_id, try_text, xcom_key = (urllib.parse.unquote(g) if g else g
                                                       for g in m.groups())
        if dag_id not in fake.dags:
            return self._send(404, problem(404, "DAG not found", "DAG with dag_id: '%s' not "
                                           "found" % dag_id))
        if run_id is None:
            if method != "POST":
                return self._bad(405, "Method Not Allowed", method + " on dagRuns")
            return self._trigger(dag_id, body)
        run = fake.runs.get((dag_id, run_id))
        if run is None:
            return self._send(404, problem(404, "DAGRun not found", "DAGRun with DAG ID: '%s' "
                                           "and DagRun ID: '%s' not found" % (dag_id, run_id)))
        if "/taskInstances" not in path:
            if method == "GET":
                return self._no_query(query) or self._send(200, run.json())
            if method != "PATCH":
                return self._bad(405, "Method Not Allowed", method + " on a dagRun")
            if query.keys() - {"update_mask"}:
                return self._bad(400, "Bad Request", "unknown query parameters")
            if not isinstance(body, dict) or set(body) != {"state"} or \
                    body["state"] not in ("success", "failed", "queued"):
                return self._bad(400, "Bad Request", "want {\"state\": success|failed|queued}")
            fake.cancel(run, body["state"])
            return self._send(200, run.json())
        if method != "GET" or raw:
            return self._bad(405, "Method Not Allowed", method + " on taskInstances")
        if task_id is None:
            if query.keys() - TI_QUERY:
                return self._bad(400, "Bad Request", "unknown query parameters")
            # offset/limit as documented: limit at most the webserver's
            # maximum_page_limit (page_limit here), default 100
            try:
                limit = int(query.get("limit", ["100"])[0])
                offset = int(query.get("offset", ["0"])[0])
            except ValueError:
                return self._bad(400, "Bad Request", "limit and offset must be integers")
            if limit < 1 or offset < 0:
                return self._bad(400, "Bad Request", "limit must be >= 1, offset >= 0")
            tis = [ti.json() for ti in run.tis]
            page = tis[offset:offset + min(limit, fake.page_limit)]
            return self._send(200, {"task_instances": page, "total_entries": len(tis)})
        if xcom_key is not None:
            return self._xcom(run, task_id, xcom_key, query)
        return self._log(run, task_id, try_text, query)

    def _xcom(self, run, task_id, key, query):
        """GET .../xcomEntries/{xcom_key}: the XCom schema, its value as
        text (no deserialize: the stored value stringified)"""
        if query.keys() - {"map_index", "deserialize", "stringify"}:
            return self._bad(400, "Bad Request", "unknown query parameters")
        ti = next((t for t in run.tis if t.task_id == task_id), None)
        if ti is None or key not in ti.xcom:
            return self._send(404, problem(404, "XCom entry not found", "XCom entry with "
                                           "key: '%s' not found" % key))
        return self._send(200, {"key": key, "timestamp": iso(ti.end),
                                "execution_date": iso(run.logical), "map_index": -1,
                                "task_id": task_id, "dag_id": run.dag_id,
                                "value": ti.xcom[key]})

    def _no_query(self, query):
        if query:
            self._bad(400, "Bad Request", "unknown query parameters")
            return True
        return False

    def _trigger(self, dag_id, body):
        fake = self.owner
        if not isinstance(body, dict):
            return self._bad(400, "Bad Request", "body is not a JSON object")
        for key, value in body.items():
            if key not in DAG_RUN_FIELDS:
                return self._bad(400, "Bad Request", "{'%s': ['Unknown field.']}" % key)
            if value is not None and not isinstance(value, DAG_RUN_FIELDS[key]):
                return self._bad(400, "Bad Request", "field %r has the wrong type" % key)
        if not body.get("dag_run_id") or not re.fullmatch(r"[A-Za-z0-9_.~:+-]{1,250}",
                                                          body["dag_run_id"]):
            return self._bad(400, "Bad Request", "dag_run_id is missing or invalid")
        if fake.trigger_lost_s:
            # Held, then refused: the run is never made
            time.sleep(fake.trigger_lost_s)
            return self._send(503, problem(503, "Service Unavailable", "try again"))
        run = fake.trigger(dag_id, body)
        if run is not None and fake.trigger_delay_s:
            time.sleep(fake.trigger_delay_s)
        if run is None:
            return self._send(409, problem(409, "Already exists", "DAGRun with DAG ID: '%s' "
                                           "and DAGRun ID: '%s' already exists"
                                           % (dag_id, body["dag_run_id"])))
        return self._send(200, run.json())

    def _log(self, run, task_id, try_text, query):
        fake = self.owner
        if query.keys() - LOG_QUERY:
            return self._bad(400, "Bad Request", "unknown query parameters")
        ti = next((t for t in run.tis if t.task_id == task_id), None)
        if ti is None:
            return self._send(404, problem(404, "TaskInstance not found",
                                           "Task instance did not exist in the DB"))
        if not try_text.isdigit() or int(try_text) < 1:
            return self._bad(400, "Bad Request", "task_try_number must be a positive integer")
        number = int(try_text)
        #  Whether the try is over, before its text: a try that ends in
        #  between is not "end_of_log" with lines unread
        over = number < ti.try_number or ti.state in TI_FINISHED or \
            (ti.state == "up_for_retry" and number == ti.try_number)
        text = ti.logs.get(number, "")
        pos = 0
        if query.get("full_content", ["false"])[0] not in ("true", "false"):
            return self._bad(400, "Bad Request", "full_content must be true or false")
        if "token" in query:
            meta = read_token(query["token"][0])
            if meta is None:
                return self._bad(400, "Bad Request", "Bad Signature. Please use only the "
                                 "tokens provided by the API.")
            pos = meta["log_pos"]
        page = text[pos:pos + fake.page_chars]
        pos += len(page)
        self._send(200, {"content": page,
                         "continuation_token": make_token(pos, over and pos >= len(text))})
