#!/usr/bin/env python3
"""A fake Databricks workspace for the tests (Python standard library
only), written from the public Jobs API 2.1 and OAuth M2M references:

- POST /oidc/v1/token: grant_type=client_credentials&scope=all-apis as a
  form, the client's id and secret as HTTP Basic; answers
  {access_token, token_type: Bearer, expires_in, scope}.
- POST /api/2.1/jobs/runs/submit {run_name, tasks: [one task with
  task_key, exactly one of spark_python_task / python_wheel_task /
  notebook_task, exactly one of existing_cluster_id / new_cluster,
  libraries], idempotency_token (at most 64 characters), timeout_seconds}
  -> {run_id}; the same token answers the same run.
- GET /api/2.1/jobs/runs/get?run_id=N -> {run_id, job_id, run_name,
  state: {life_cycle_state, result_state, state_message,
  user_cancelled_or_timedout}, run_page_url, tasks: [{run_id, task_key,
  state}]}; the run walks PENDING -> RUNNING -> TERMINATING -> TERMINATED.
- GET /api/2.1/jobs/runs/get-output?run_id=TASK_RUN -> {metadata, logs,
  logs_truncated, error, error_trace, notebook_output: {result,
  truncated}}; asked for the parent run of a multi-task run it refuses,
  as Databricks does.
- POST /api/2.1/jobs/runs/cancel {run_id} -> {}.
Errors are {"error_code", "message"}.  Every call but the token's needs
"Authorization: Bearer" with the personal access token or a live OAuth
token; anything unexpected is answered 400 and recorded in `violations`.

A script is a callable fn(submitted task) -> dict(duration=, result=
SUCCESS|FAILED|TIMEDOUT, logs=, error=, error_trace=, notebook_result=).
Injections: `throttle` (429 REQUEST_LIMIT_EXCEEDED with Retry-After),
`fail_500`, `submit_delay` (a slow submit answer, after the run exists),
`token_lifetime` (seconds an OAuth token lives)."""
import base64
import http.server
import json
import socketserver
import threading
import time
import urllib.parse

TASK_KINDS = ("spark_python_task", "python_wheel_task", "notebook_task")
SUBMIT_MEMBERS = {"run_name", "tasks", "idempotency_token", "timeout_seconds",
                  "access_control_list", "git_source", "health", "notification_settings",
                  "webhook_notifications", "email_notifications", "environments", "queue",
                  "run_as", "budget_policy_id", "usage_policy_id"}
TASK_MEMBERS = set(TASK_KINDS) | {"task_key", "existing_cluster_id", "new_cluster", "libraries",
                                  "timeout_seconds", "depends_on", "description", "run_if",
                                  "environment_key", "max_retries"}
KIND_MEMBERS = {"spark_python_task": {"python_file", "parameters", "source"},
                "python_wheel_task": {"package_name", "entry_point", "parameters",
                                      "named_parameters"},
                "notebook_task": {"notebook_path", "base_parameters", "source", "warehouse_id"}}


class Run:
    def __init__(self, fake, run_id, body):
        self.fake, self.run_id, self.body = fake, run_id, body
        self.task_run_id = run_id + 1000
        self.created = time.time()
        self.canceled_at = None
        self.outcome = fake.script(body["tasks"][0])

    def state(self):
        elapsed = time.time() - self.created
        duration = self.outcome.get("duration", 1.0)
        if self.canceled_at is not None and elapsed >= self.canceled_at - self.created + 0.2:
            return "TERMINATED", "CANCELED", "Run cancelled."
        if elapsed < 0.3:
            return "PENDING", None, "Waiting for cluster"
        if elapsed < 0.3 + duration:
            return "RUNNING", None, "In run"
        if elapsed < 0.5 + duration:
            return "TERMINATING", None, ""
        result = self.outcome.get("result", "SUCCESS")
        return "TERMINATED", result, "" if result == "SUCCESS" else "Workload failed"

    def json(self):
        life, result, message = self.state()
        state = {"life_cycle_state": life, "state_message": message,
                 "user_cancelled_or_timedout": result in ("CANCELED", "TIMEDOUT")}
        if result:
            state["result_state"] = result
        return {"job_id": 7, "run_id": self.run_id, "run_name": self.body.get("run_name", ""),
                "number_in_job": self.run_id, "state": state,
                "run_page_url": "%s/?o=1234#job/7/run/%d" % (self.fake.endpoint, self.run_id),
                "tasks": [{"run_id": self.task_run_id, "task_key": self.body["tasks"][0]["task_key"],
                           "state": state}],
                "start_time": int(self.created * 1000)}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):
        pass

    def reply(self, code, body, headers=None):
        data = json.dumps(body).encode()
        self.send_response(code)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        try:
            self.wfile.write(data)
        except OSError:
            pass

    def error(self, code, error_code, message):
        self.reply(code, {"error_code": error_code, "message": message})

    def violation(self, why):
        self.server.fake.violations.append("%s %s: %s" % (self.command, self.path, why))
        self.error(400, "INVALID_PARAMETER_VALUE", why)

    def do_GET(self):
        self.handle_any()

    def do_POST(self):
        self.handle_any()

    def do_PUT(self):
        self.handle_any()

    def handle_any(self):
        fake = self.server.fake
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        path, _, query = self.path.partition("?")
        headers = {k.lower(): v for k, v in self.headers.items()}
        with fake.lock:
            fake.requests.append({"method": self.command, "path": path, "query": query,
                                  "headers": headers, "body": raw, "time": time.time()})
        if path == "/oidc/v1/token":
            return self.token(headers, raw)
        auth = headers.get("authorization", "")
        if not auth.startswith("Bearer ") or auth[7:] not in fake.live_tokens():
            return self.error(401, "UNAUTHENTICATED", "Invalid access token.")
        with fake.lock:
            throttle = fake.throttle > 0
            fake.throttle -= 1 if throttle else 0
            fail = not throttle and fake.fail_500 > 0
            fake.fail_500 -= 1 if fail else 0
        if throttle:
            return self.reply(429, {"error_code": "REQUEST_LIMIT_EXCEEDED",
                                    "message": "Too many requests."}, {"Retry-After": "1"})
        if fail:
            return self.error(500, "INTERNAL_ERROR", "Internal server error")
        routes = {("POST", "/api/2.1/jobs/runs/submit"): self.submit,
                  ("GET", "/api/2.1/jobs/runs/get"): self.get,
                  ("GET", "/api/2.1/jobs/runs/get-output"): self.get_output,
                  ("POST", "/api/2.1/jobs/runs/cancel"): self.cancel}
        route = routes.get((self.command, path))
        if route is None:
            return self.violation("no such route")
        if self.command == "POST":
            if headers.get("content-type") != "application/json":
                return self.violation("Content-Type %s" % headers.get("content-type"))
            try:
                body = json.loads(raw)
            except ValueError:
                return self.violation("the body is not JSON")
            if query:
                return self.violation("unexpected query %s" % query)
            return route(body)
        if raw:
            return self.violation("a GET with a body")
        params = urllib.parse.parse_qs(query, keep_blank_values=True)
        if set(params) - {"run_id", "include_history", "include_resolved_values"} \
                or len(params.get("run_id", [])) != 1 or not params["run_id"][0].isdigit():
            return self.violation("want ?run_id=N: %s" % query)
        return route(int(params["run_id"][0]))

    def token(self, headers, raw):
        fake = self.server.fake
        expected = "Basic " + base64.b64encode(("%s:%s" % (fake.client_id, fake.client_secret))
                                               .encode()).decode()
        if self.command != "POST" or headers.get("content-type") != \
                "application/x-www-form-urlencoded":
            return self.violation("the token endpoint takes a form POST")
        form = urllib.parse.parse_qs(raw.decode())
        if form != {"grant_type": ["client_credentials"], "scope": ["all-apis"]}:
            return self.violation("form %s" % form)
        if headers.get("authorization") != expected:
            return self.reply(401, {"error": "invalid_client",
                                    "error_description": "Client authentication failed"})
        with fake.lock:
            fake.token_serial += 1
            token = "oauth-%d" % fake.token_serial
            fake.tokens[token] = time.time() + fake.token_lifetime
        self.reply(200, {"access_token": token, "token_type": "Bearer",
                         "expires_in": fake.token_lifetime, "scope": "all-apis"})

    def submit(self, body):
        fake = self.server.fake
        if not isinstance(body, dict) or set(body) - SUBMIT_MEMBERS:
            return self.violation("unexpected members %s" % sorted(set(body) - SUBMIT_MEMBERS))
        token = body.get("idempotency_token")
        if token is not None and (not isinstance(token, str) or len(token) > 64):
            return self.violation("bad idempotency_token")
        tasks = body.get("tasks")
        if not isinstance(tasks, list) or len(tasks) != 1 or not isinstance(tasks[0], dict):
            return self.violation("want one task")
        task = tasks[0]
        if set(task) - TASK_MEMBERS or not isinstance(task.get("task_key"), str):
            return self.violation("bad task %s" % task)
        kinds = [k for k in TASK_KINDS if k in task]
        clusters = [k for k in ("existing_cluster_id", "new_cluster") if k in task]
        if len(kinds) != 1 or len(clusters) != 1:
            return self.violation("one task kind and one cluster: %s" % task)
        if set(task[kinds[0]]) - KIND_MEMBERS[kinds[0]]:
            return self.violation("bad %s %s" % (kinds[0], task[kinds[0]]))
        if "new_cluster" in task and not isinstance(task["new_cluster"], dict):
            return self.violation("new_cluster is an object")
        if "libraries" in task and not isinstance(task["libraries"], list):
            return self.violation("libraries is a list")
        with fake.lock:
            fake.submits.append(body)
            if token in fake.by_token:
                run = fake.by_token[token]
            else:
                fake.next_run += 1
                run = Run(fake, fake.next_run, body)
                fake.runs[run.run_id] = run
                if token is not None:
                    fake.by_token[token] = run
        if fake.submit_delay:
            time.sleep(fake.submit_delay)
        self.reply(200, {"run_id": run.run_id, "number_in_job": run.run_id})

    def find(self, run_id):
        run = self.server.fake.runs.get(run_id)
        if run is None:
            self.error(400, "INVALID_PARAMETER_VALUE", "Run %d does not exist." % run_id)
        return run

    def get(self, run_id):
        run = self.find(run_id)
        if run:
            with self.server.fake.lock:
                self.server.fake.polls += 1
            self.reply(200, run.json())

    def get_output(self, run_id):
        fake = self.server.fake
        run = next((r for r in fake.runs.values() if r.task_run_id == run_id), None)
        if run is None:
            if run_id in fake.runs:
                return self.violation("Retrieving the output of runs with multiple tasks is not "
                                      "supported.")
            return self.error(400, "INVALID_PARAMETER_VALUE", "Run %d does not exist." % run_id)
        life, result, _ = run.state()
        answer = {"metadata": run.json()["tasks"][0]}
        if life == "TERMINATED":
            outcome = run.outcome
            answer["logs"] = outcome.get("logs", "")
            answer["logs_truncated"] = False
            if result == "FAILED":
                answer["error"] = outcome.get("error", "Exception")
                answer["error_trace"] = outcome.get("error_trace", "")
            if "notebook_result" in outcome:
                answer["notebook_output"] = {"result": outcome["notebook_result"],
                                             "truncated": False}
        self.reply(200, answer)

    def cancel(self, body):
        if not isinstance(body, dict) or set(body) != {"run_id"} or not isinstance(body["run_id"], int):
            return self.violation("want {run_id}")
        run = self.find(body["run_id"])
        if run:
            run.canceled_at = time.time()
            self.server.fake.cancels.append(body["run_id"])
            self.reply(200, {})


class ThreadingServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class FakeDatabricks:
    def __init__(self):
        self.pat = "dapi-test-token"
        self.client_id, self.client_secret = "qanat-sp", "sp-secret"
        self.tokens, self.token_serial, self.token_lifetime = {}, 0, 3600
        self.script = lambda task: {"duration": 1.0}
        self.runs, self.by_token, self.next_run = {}, {}, 100
        self.requests, self.submits, self.cancels, self.violations = [], [], [], []
        self.polls = 0
        self.throttle = self.fail_500 = 0
        self.submit_delay = 0
        self.lock = threading.RLock()
        self.server = ThreadingServer(("127.0.0.1", 0), Handler)
        self.server.fake = self
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def endpoint(self):
        return "http://127.0.0.1:%d" % self.server.server_address[1]

    def live_tokens(self):
        now = time.time()
        return {self.pat} | {t for t, until in self.tokens.items() if until > now}

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
