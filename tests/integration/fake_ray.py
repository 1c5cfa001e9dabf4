#!/usr/bin/env python3
"""A fake Ray dashboard serving the Ray Jobs REST API, for qanat's ray
backend tests.  Written from Ray's Jobs REST API reference (the OpenAPI
page of docs.ray.io) and its job SDK's wire format:

  POST /api/jobs/                    submit: {"entrypoint", "submission_id",
                                     "runtime_env": {"working_dir",
                                     "env_vars", ...}, "metadata",
                                     "entrypoint_num_cpus", "entrypoint_num_gpus",
                                     "entrypoint_memory", "entrypoint_resources"}
                                     -> {"job_id", "submission_id"}; a known
                                     submission_id is a 400 ("... already
                                     exists"), as Ray's job manager says
  GET  /api/jobs/{id}                JobDetails: status PENDING, RUNNING,
                                     SUCCEEDED, FAILED or STOPPED, message,
                                     error_type, driver_exit_code, times in ms
  GET  /api/jobs/{id}/logs           {"logs": everything so far}
  GET  /api/jobs/{id}/logs/tail      the tail stream: Ray serves it as a
                                     WebSocket; this fake answers 426 unless
                                     asked to upgrade, and records the call
  POST /api/jobs/{id}/stop           {"stopped": bool}
  GET  /api/version                  {"version", "ray_version", "ray_commit"}

Errors are plain text, as Ray's aiohttp handlers send them.  The dashboard
has no authentication of its own; deployments put it behind a proxy that
wants a bearer token, which this fake plays when given token=...

Every request is recorded (method, path, query, headers, body).  Anything
the reference does not allow (an unknown path, method, body field or
type, a missing Content-Type) is answered 400/404/405 AND appended to
FakeRay.violations: a test asserts that list stays empty.

A job runs its entrypoint with /bin/sh -c as a local process (stdout and
stderr into one driver log, as Ray captures them), with runtime_env's
env_vars in its environment and working_dir (a local path or file://
URI) as its directory.  It stays PENDING for pending_s first.

Faults: inject(method, path_regex, status, count, retry_after) answers the
next count matching requests with status (a 429 with Retry-After); delay_s
slows every answer, submit_delay_s a submit's (after the job exists);
submit_lost_s holds a submit, then answers 503 without making the job;
expire_token() makes the current token answer 401
until set_token() gives a new one.

Standalone: python3 fake_ray.py --port N [--token T]
"""
import argparse
import json
import os
import re
import signal
import subprocess
import threading
import time
import urllib.parse

import fake_http

SUBMIT_FIELDS = {
    "entrypoint": str, "submission_id": str, "job_id": str, "runtime_env": dict,
    "metadata": dict, "entrypoint_num_cpus": (int, float), "entrypoint_num_gpus": (int, float),
    "entrypoint_memory": int, "entrypoint_resources": dict, "entrypoint_label_selector": dict,
}
RUNTIME_ENV_FIELDS = {
    "working_dir": str, "env_vars": dict, "py_modules": list, "pip": (list, dict, str),
    "uv": (list, dict, str), "conda": (dict, str), "container": dict, "image_uri": str,
    "excludes": list, "config": dict, "java_jars": list, "nsight": (str, dict),
}
TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")


class Job:
    def __init__(self, body, log_path):
        self.body = body
        self.submission_id = body["submission_id"]
        self.status = "PENDING"
        self.message = "Job has not started yet. It may be waiting for resources " \
                       "(CPUs, GPUs, memory, custom resources) to become available."
        self.error_type = None
        self.exit_code = None
        self.start_time = int(time.time() * 1000)
        self.end_time = None
        self.log_path = log_path
        self.process = None
        self.stop_asked = False

    def details(self):
        return {
            "type": "SUBMISSION", "job_id": None, "submission_id": self.submission_id,
            "driver_info": None, "status": self.status, "entrypoint": self.body["entrypoint"],
            "message": self.message, "error_type": self.error_type,
            "start_time": self.start_time, "end_time": self.end_time,
            "metadata": self.body.get("metadata") or {},
            "runtime_env": self.body.get("runtime_env") or {},
            "driver_agent_http_address": None, "driver_node_id": None,
            "driver_exit_code": self.exit_code,
        }


class FakeRay(fake_http.FakeServer):
    def __init__(self, directory, token=None, pending_s=0.3):
        super().__init__(token)
        self.dir = directory
        os.makedirs(directory, exist_ok=True)
        self.pending_s = pending_s
        self.submit_delay_s = 0.0   # a submit's answer comes this late (the job exists)
        self.submit_lost_s = 0.0    # a submit is held this long, then 503, no job made
        self.jobs = {}

    def start(self, port=0):
        return self.serve(_Handler, port)

    def stop(self):
        for job in list(self.jobs.values()):
            if job.process and job.process.poll() is None:
                _kill(job.process)
        self.stop_server()

    # -- jobs ------------------------------------------------------------
    def submit(self, body):
        sid = body.get("submission_id") or body.get("job_id") or \
            "raysubmit_%012x" % (int(time.time() * 1e6) & 0xffffffffffff)
        body = dict(body, submission_id=sid)
        with self.lock:
            if sid in self.jobs:
                return None
            job = Job(body, os.path.join(self.dir, "job-driver-%s.log" % re.sub(
                r"[^A-Za-z0-9_.-]", "_", sid)))
            open(job.log_path, "wb").close()
            self.jobs[sid] = job
        threading.Thread(target=self._run, args=(job,), daemon=True).start()
        return job

    def _run(self, job):
        time.sleep(self.pending_s)
        if job.stop_asked:
            self._end(job, "STOPPED", "Job was intentionally stopped.", None)
            return
        runtime_env = job.body.get("runtime_env") or {}
        env = dict(os.environ)
        env.update(runtime_env.get("env_vars") or {})
        env["RAY_JOB_SUBMISSION_ID"] = job.submission_id
        cwd = runtime_env.get("working_dir") or self.dir
        if cwd.startswith("file://"):
            cwd = cwd[len("file://"):]
        if not os.path.isdir(cwd):
            self._end(job, "FAILED", "Failed to set up runtime environment: working_dir %s "
                      "cannot be downloaded" % cwd, None, "RUNTIME_ENV_SETUP_FAILED")
            return
        with open(job.log_path, "ab") as log:
            job.process = subprocess.Popen(["/bin/sh", "-c", job.body["entrypoint"]], cwd=cwd,
                                           env=env, stdout=log, stderr=subprocess.STDOUT,
                                           stdin=subprocess.DEVNULL, start_new_session=True)
        job.status = "RUNNING"
        job.message = "Job is currently running."
        code = job.process.wait()
        if job.stop_asked:
            self._end(job, "STOPPED", "Job was intentionally stopped.", code)
        elif code == 0:
            self._end(job, "SUCCEEDED", "Job finished successfully.", 0)
        else:
            with open(job.log_path, "rb") as f:
                tail = f.read()[-20000:].decode("utf-8", "replace")
            self._end(job, "FAILED", "Job entrypoint command failed with exit code %d, last "
                      "available logs (truncated to 20,000 chars):\n%s" % (code, tail), code,
                      "JOB_ENTRYPOINT_COMMAND_ERROR")

    def _end(self, job, status, message, code, error_type=None):
        job.message, job.exit_code, job.error_type = message, code, error_type
        job.end_time = int(time.time() * 1000)
        job.status = status

    def stop_job(self, job):
        if job.status in TERMINAL:
            return False
        job.stop_asked = True
        if job.process and job.process.poll() is None:
            _kill(job.process)
        return True


def _kill(process):
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except OSError:
        pass


def check_submit(body):
    """What is wrong with a submit body, by the reference, or None."""
    if not isinstance(body, dict):
        return "body is not a JSON object"
    for key, value in body.items():
        if key not in SUBMIT_FIELDS:
            return "unknown field %r" % key
        if value is not None and (not isinstance(value, SUBMIT_FIELDS[key])
                                  or isinstance(value, bool)):
            return "field %r has the wrong type" % key
    if not isinstance(body.get("entrypoint"), str) or not body["entrypoint"].strip():
        return "entrypoint is required"
    for key in ("entrypoint_num_cpus", "entrypoint_num_gpus", "entrypoint_memory"):
        if body.get(key) is not None and body[key] < 0:
            return "%s must be >= 0" % key
    for name, amount in (body.get("entrypoint_resources") or {}).items():
        if not isinstance(amount, (int, float)) or isinstance(amount, bool) or amount < 0:
            return "entrypoint_resources[%r] must be a number >= 0" % name
    for key, value in (body.get("metadata") or {}).items():
        if not isinstance(value, str):
            return "metadata[%r] must be a string" % key
    runtime_env = body.get("runtime_env") or {}
    for key, value in runtime_env.items():
        if key not in RUNTIME_ENV_FIELDS:
            return "unknown runtime_env field %r" % key
        if not isinstance(value, RUNTIME_ENV_FIELDS[key]):
            return "runtime_env field %r has the wrong type" % key
    for key, value in (runtime_env.get("env_vars") or {}).items():
        if not isinstance(key, str) or not isinstance(value, str):
            return "runtime_env.env_vars must map strings to strings"
    return None


class _Handler(fake_http.Handler):
    def _send(self, status, body, headers=()):
        text = isinstance(body, str)
        self.reply(status, body.encode() if text else json.dumps(body).encode(),
                   "text/plain; charset=utf-8" if text else "application/json", headers)

    def _bad(self, status, text):
        self.owner.violation("%s %s: %s" % (self.command, self.path, text))
        self._send(status, text)

    def handle_method(self, method):
        fake = self.owner
        path, query, raw, body = self.record(method)
        if fake.token is not None and not self.bearer_ok():
            self._send(401, "401: Unauthorized (token invalid or expired)")
            return
        fault = fake.take_fault(method, path)
        if fault:
            headers = [("Retry-After", str(fault[1]))] if fault[1] is not None else []
            self._send(fault[0], "%d: injected" % fault[0], headers)
            return
        self._route(method, path, raw, body)

    def _route(self, method, path, raw, body):
        fake = self.owner
        if path == "/api/version":
            if method != "GET":
                return self._bad(405, "405: Method Not Allowed")
            return self._send(200, {"version": "3", "ray_version": "2.9.3", "ray_commit": "fake"})
        if path == "/api/jobs/" or path == "/api/jobs":
            if method != "POST":
                return self._bad(405, "405: Method Not Allowed")
            if not (self.headers.get("Content-Type") or "").startswith("application/json"):
                return self._bad(400, "Content-Type must be application/json")
            if not isinstance(body, dict):
                return self._bad(400, "Bad Request: body is not JSON")
            problem = check_submit(body)
            if problem:
                return self._bad(400, "Bad Request: " + problem)
            if fake.submit_lost_s:
                # Held, then refused: the job is never made
                time.sleep(fake.submit_lost_s)
                return self._send(503, "Service Unavailable")
            job = fake.submit(body)
            if job is None:
                sid = body.get("submission_id") or body.get("job_id")
                return self._send(400, "Traceback (most recent call last):\nValueError: Job "
                                  "with submission_id %s already exists. Please use a "
                                  "different submission_id." % sid)
            if fake.submit_delay_s:
                time.sleep(fake.submit_delay_s)
            return self._send(200, {"job_id": job.submission_id,
                                    "submission_id": job.submission_id})
        match = re.fullmatch(r"/api/jobs/([^/]+)(/logs|/logs/tail|/stop)?", path)
        if not match:
            return self._bad(404, "404: Not Found")
        sid = urllib.parse.unquote(match.group(1))
        action = match.group(2) or ""
        want = "POST" if action == "/stop" else "GET"
        if method != want:
            return self._bad(405, "405: Method Not Allowed")
        if raw and method == "GET":
            return self._bad(400, "a GET has no body")
        job = fake.jobs.get(sid)
        if job is None:
            return self._send(404, "Job %s does not exist" % sid)
        if action == "":
            return self._send(200, job.details())
        if action == "/logs":
            with open(job.log_path, "rb") as f:
                return self._send(200, {"logs": f.read().decode("utf-8", "replace")})
        if action == "/logs/tail":
            if (self.headers.get("Upgrade") or "").lower() != "websocket":
                return self._send(426, "426: the log tail is a WebSocket")
            return self._send(501, "501: the fake serves no WebSocket")
        return self._send(200, {"stopped": fake.stop_job(job)})


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8265)
    parser.add_argument("--dir", default="/tmp/fake-ray")
    parser.add_argument("--token")
    args = parser.parse_args()
    fake = FakeRay(args.dir, token=args.token).start(args.port)
    print(fake.url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        fake.stop()


if __name__ == "__main__":
    main()
