#!/usr/bin/env python3
"""A fake Kubernetes API server for qanat's kubernetes backend tests.

It speaks the few endpoints the backend uses, shaped as the Kubernetes API
reference documents them:

  POST   /apis/batch/v1/namespaces/{ns}/jobs                 create a Job
  GET    /apis/batch/v1/namespaces/{ns}/jobs[?labelSelector] list Jobs
  GET    /apis/batch/v1/namespaces/{ns}/jobs/{name}          read a Job
  DELETE /apis/batch/v1/namespaces/{ns}/jobs/{name}          delete it; its
         pods go with propagationPolicy=Background or Foreground, and stay
         (orphaned) without one, as the API does for batch/v1 Jobs
  GET    /api/v1/namespaces/{ns}/pods?labelSelector=...      list pods
  GET    /api/v1/namespaces/{ns}/pods/{name}/log?container=&follow=&
         timestamps=&sinceTime=                              the log, streamed
         with Transfer-Encoding: chunked while the container runs

Every request needs "Authorization: Bearer <token>" and is recorded
(method, path, query, headers, body) in FakeKube.requests.

A Job "runs" by executing its container's command (command + args) as a
local process, so its log and exit code are real.  Its image picks a
scenario:
  fake/pull-error  the container waits: ErrImagePull, then ImagePullBackOff
  fake/oom         the command runs, then is killed: terminated OOMKilled 137
  fake/evicted     the command runs, then the pod is evicted (phase Failed,
                   reason Evicted)
  anything else    the command runs to its end (Completed or Error)
activeDeadlineSeconds is enforced (Job condition Failed, DeadlineExceeded)
and backoffLimit counted (Failed, BackoffLimitExceeded).

Volumes: a pod's persistentVolumeClaim volumes are claims the fake knows
(claims={"NAME": HOSTDIR}, or --claim NAME=HOSTDIR), each a host directory.
A pod naming an unknown claim is never scheduled: it stays Pending with
the condition PodScheduled False, reason Unschedulable, as the scheduler
reports it.  A container's volumeMount of a claim maps its mountPath to
HOSTDIR/subPath (created if missing, as the kubelet does); since the
container is a local process, its workingDir and the env values that
start with a mountPath are translated to the host path, and the process
runs in that working directory.

Standalone: python3 fake_kube.py --port N --dir D [--no-tls] [--claim NAME=HOSTDIR]...
writes D/kubeconfig (and with TLS a self-signed CA in D) and serves until
interrupted.
"""
import argparse
import base64
import datetime
import http.server
import json
import os
import random
import shutil
import signal
import socketserver
import ssl
import string
import subprocess
import sys
import threading
import time
import urllib.parse

SCENARIO_RUN_BEFORE_KILL_S = 1.0


def now_rfc3339():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def rfc3339_nano(ns):
    """As the kubelet writes log timestamps: RFC 3339 with nanoseconds,
    trailing zeros of the fraction trimmed (Go's RFC3339Nano)."""
    seconds, fraction = divmod(ns, 1_000_000_000)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    if fraction:
        text += ("." + "%09d" % fraction).rstrip("0")
    return text + "Z"


def parse_rfc3339_ns(text):
    """Nanoseconds since the epoch for an RFC 3339 time in UTC."""
    if not text.endswith("Z"):
        raise ValueError("want UTC")
    main, _, fraction = text[:-1].partition(".")
    seconds = int(datetime.datetime.strptime(main, "%Y-%m-%dT%H:%M:%S").replace(
        tzinfo=datetime.timezone.utc).timestamp())
    return seconds * 1_000_000_000 + int((fraction + "000000000")[:9] or 0)


def status_body(code, reason, message, details=None):
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Success" if code < 300 else "Failure",
            "message": message, "reason": reason, "code": code}
    if details:
        body["details"] = details
    return body


def dns1123_label(name):
    return (isinstance(name, str) and 0 < len(name) <= 63
            and all(c.islower() or c.isdigit() or c == "-" for c in name)
            and name[0].isalnum() and name[-1].isalnum())


def match_selector(labels, selector):
    """Equality-based label selectors: k=v, k==v, k!=v, k, !k."""
    if not selector:
        return True
    for term in selector.split(","):
        term = term.strip()
        if "!=" in term:
            k, v = term.split("!=", 1)
            if labels.get(k) == v:
                return False
        elif "==" in term or "=" in term:
            k, v = term.split("==", 1) if "==" in term else term.split("=", 1)
            if labels.get(k) != v:
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


def volume_errors(pod):
    """What the API server's validation says of a pod's volumes and
    mounts, or None."""
    names = set()
    for i, volume in enumerate(pod.get("volumes") or []):
        if not isinstance(volume, dict) or not dns1123_label(volume.get("name")):
            return "spec.template.spec.volumes[%d].name: Invalid value" % i
        if volume["name"] in names:
            return "spec.template.spec.volumes[%d].name: Duplicate value" % i
        names.add(volume["name"])
        claim = volume.get("persistentVolumeClaim")
        if claim is not None and not (isinstance(claim, dict) and claim.get("claimName")):
            return "spec.template.spec.volumes[%d].persistentVolumeClaim.claimName: " \
                   "Required value" % i
    for i, mount in enumerate(pod["containers"][0].get("volumeMounts") or []):
        where = "spec.template.spec.containers[0].volumeMounts[%d]" % i
        if not isinstance(mount, dict) or mount.get("name") not in names:
            return where + ".name: Not found"
        if not str(mount.get("mountPath", "")).startswith("/"):
            return where + ".mountPath: Invalid value"
        sub = mount.get("subPath", "")
        if sub and (sub.startswith("/") or ".." in sub.split("/")):
            return where + ".subPath: Invalid value"
    return None


class Pod:
    def __init__(self, job, name):
        self.job = job
        self.name = name
        self.lines = []             # (ns, text bytes) in order
        self.output_done = False
        self.deleted = False
        self.cond = threading.Condition()
        self.process = None
        self.host_mounts = {}
        template = job.obj["spec"]["template"]
        labels = dict(template.get("metadata", {}).get("labels", {}))
        labels["job-name"] = job.name
        labels["batch.kubernetes.io/job-name"] = job.name
        labels["controller-uid"] = job.obj["metadata"]["uid"]
        labels["batch.kubernetes.io/controller-uid"] = job.obj["metadata"]["uid"]
        container = template["spec"]["containers"][0]
        self.container = container
        self.obj = {
            "kind": "Pod", "apiVersion": "v1",
            "metadata": {"name": name, "namespace": job.namespace, "labels": labels,
                         "uid": "%032x" % random.getrandbits(128),
                         "creationTimestamp": now_rfc3339(),
                         "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job",
                                              "name": job.name,
                                              "uid": job.obj["metadata"]["uid"],
                                              "controller": True}]},
            "spec": template["spec"],
            "status": {"phase": "Pending", "conditions": [],
                       "containerStatuses": [{
                           "name": container.get("name", "main"),
                           "image": container.get("image", ""), "ready": False,
                           "restartCount": 0, "started": False,
                           "state": {"waiting": {"reason": "ContainerCreating"}}}]},
        }

    def cstatus(self):
        statuses = self.obj["status"].get("containerStatuses")
        if not statuses:
            # Not scheduled: no container status yet
            return {"state": {"waiting": {"reason": "ContainerCreating"}}}
        return statuses[0]

    def unschedulable(self, message):
        """As the scheduler leaves a pod it cannot place."""
        self.obj["status"] = {
            "phase": "Pending", "qosClass": "BestEffort",
            "conditions": [{"type": "PodScheduled", "status": "False", "lastProbeTime": None,
                            "lastTransitionTime": now_rfc3339(), "reason": "Unschedulable",
                            "message": message}]}

    def mounts(self, claims):
        """{mountPath: host directory} of the container's claim mounts, or
        the name of a claim that does not exist."""
        volumes = {v.get("name"): v for v in self.obj["spec"].get("volumes") or []}
        for volume in volumes.values():
            claim = (volume.get("persistentVolumeClaim") or {}).get("claimName")
            if claim is not None and claim not in claims:
                return claim
        result = {}
        for mount in self.container.get("volumeMounts") or []:
            volume = volumes.get(mount.get("name")) or {}
            claim = (volume.get("persistentVolumeClaim") or {}).get("claimName")
            if claim is None:
                continue
            host = claims[claim]
            if mount.get("subPath"):
                host = os.path.join(host, mount["subPath"])
                os.makedirs(host, exist_ok=True)
            result[mount["mountPath"].rstrip("/") or "/"] = host
        return result

    @staticmethod
    def translate(value, mounts):
        """A path in the pod -> the host path the fake's mount stands for."""
        for path in sorted(mounts, key=len, reverse=True):
            if value == path or value.startswith(path.rstrip("/") + "/"):
                return mounts[path] + value[len(path):]
        return value

    def add_line(self, text):
        with self.cond:
            ns = time.time_ns()
            if self.lines and ns <= self.lines[-1][0]:
                ns = self.lines[-1][0] + 1
            self.lines.append((ns, text))
            self.cond.notify_all()

    def finish_output(self):
        with self.cond:
            self.output_done = True
            self.cond.notify_all()


class Job:
    def __init__(self, server, namespace, obj):
        self.server = server
        self.namespace = namespace
        self.name = obj["metadata"]["name"]
        self.obj = obj
        self.pods = []
        self.deleted = False
        self.lock = threading.Lock()
        meta = obj["metadata"]
        meta["uid"] = "%032x" % random.getrandbits(128)
        meta["creationTimestamp"] = now_rfc3339()
        meta["resourceVersion"] = str(server.next_version())
        meta.setdefault("labels", {})
        spec = obj["spec"]
        spec.setdefault("backoffLimit", 6)
        spec.setdefault("completions", 1)
        spec.setdefault("parallelism", 1)
        obj["status"] = {}
        self.thread = threading.Thread(target=self.run, daemon=True)

    # -- the Job controller and the kubelet, much simplified --

    def set_condition(self, kind, reason=None, message=None):
        status = self.obj["status"]
        condition = {"type": kind, "status": "True", "lastProbeTime": now_rfc3339(),
                     "lastTransitionTime": now_rfc3339()}
        if reason:
            condition["reason"] = reason
            condition["message"] = message
        status.setdefault("conditions", []).append(condition)
        status.pop("active", None)
        if kind == "Complete":
            status["completionTime"] = now_rfc3339()

    def run(self):
        spec = self.obj["spec"]
        deadline = spec.get("activeDeadlineSeconds")
        started = time.time()
        self.obj["status"]["startTime"] = now_rfc3339()
        failures = 0
        while not self.deleted:
            pod = self.new_pod()
            outcome = self.run_pod(pod, started, deadline)
            if outcome in ("deleted", "stuck"):
                return
            with self.lock:
                status = self.obj["status"]
                if outcome == "deadline":
                    status["failed"] = status.get("failed", 0) + 1
                    self.set_condition("Failed", "DeadlineExceeded",
                                       "Job was active longer than specified deadline")
                    return
                if outcome == "succeeded":
                    status["succeeded"] = 1
                    self.set_condition("Complete")
                    return
                failures += 1
                status["failed"] = failures
                if failures > spec.get("backoffLimit", 6):
                    self.set_condition("Failed", "BackoffLimitExceeded",
                                       "Job has reached the specified backoff limit")
                    return

    def new_pod(self):
        suffix = "".join(random.choice(string.ascii_lowercase + string.digits) for _ in range(5))
        pod = Pod(self, "%s-%s" % (self.name[:57], suffix))
        with self.lock:
            self.pods.append(pod)
            self.obj["status"]["active"] = 1
        self.server.add_pod(pod)
        return pod

    def run_pod(self, pod, started, deadline):
        image = pod.container.get("image", "")
        cs = pod.cstatus()
        time.sleep(0.05)
        mounts = pod.mounts(self.server.claims)
        if isinstance(mounts, str):
            pod.unschedulable('0/1 nodes are available: persistentvolumeclaim "%s" not found. '
                              'preemption: 0/1 nodes are available: 1 Preemption is not '
                              'helpful for scheduling.' % mounts)
            while not pod.deleted and not self.deleted:
                if deadline is not None and time.time() - started > deadline:
                    pod.finish_output()
                    return "deadline"
                time.sleep(0.05)
            pod.finish_output()
            return "stuck"
        pod.host_mounts = mounts

        if image == "fake/pull-error":
            cs["state"] = {"waiting": {"reason": "ErrImagePull",
                                       "message": 'rpc error: code = NotFound desc = failed '
                                                  'to pull and unpack image "%s"' % image}}
            time.sleep(0.3)
            cs["state"] = {"waiting": {"reason": "ImagePullBackOff",
                                       "message": 'Back-off pulling image "%s"' % image}}
            while not pod.deleted and not self.deleted:
                if deadline is not None and time.time() - started > deadline:
                    pod.finish_output()
                    pod.obj["status"]["phase"] = "Failed"
                    return "deadline"
                time.sleep(0.05)
            pod.finish_output()
            return "stuck"


        argv = list(pod.container.get("command") or []) + list(pod.container.get("args") or [])
        if not argv:
            argv = ["true"]
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOSTNAME": pod.name}
        for item in pod.container.get("env") or []:
            env[item["name"]] = Pod.translate(item.get("value", ""), mounts)
        if pod.container.get("workingDir"):
            workdir = Pod.translate(pod.container["workingDir"], mounts)
        else:
            workdir = os.path.join(self.server.dir, "pods", pod.name)
        os.makedirs(workdir, exist_ok=True)
        try:
            process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, env=env, cwd=workdir,
                                       start_new_session=True)
        except OSError as error:
            cs["state"] = {"waiting": {"reason": "RunContainerError", "message": str(error)}}
            pod.finish_output()
            while not pod.deleted and not self.deleted:
                time.sleep(0.05)
            return "stuck"
        pod.process = process
        self.server.processes.append(process)
        start = now_rfc3339()
        cs["state"] = {"running": {"startedAt": start}}
        cs["ready"] = cs["started"] = True
        pod.obj["status"]["phase"] = "Running"
        pod.obj["status"]["startTime"] = start

        reader = threading.Thread(target=self.read_output, args=(pod, process), daemon=True)
        reader.start()
        killed_for = None
        kill_at = time.time() + SCENARIO_RUN_BEFORE_KILL_S
        while process.poll() is None:
            if pod.deleted or self.deleted:
                self.kill(process)
                killed_for = "deleted"
            elif deadline is not None and time.time() - started > deadline:
                self.kill(process)
                killed_for = "deadline"
            elif image in ("fake/oom", "fake/evicted") and time.time() >= kill_at:
                self.kill(process)
                killed_for = image
            time.sleep(0.02)
        reader.join(5)
        code = process.returncode
        if code < 0:
            code = 128 - code
        if image == "fake/oom":
            killed_for, code = "fake/oom", 137
        elif image == "fake/evicted":
            killed_for = "fake/evicted"
        finished = now_rfc3339()
        terminated = {"exitCode": code, "startedAt": start, "finishedAt": finished,
                      "containerID": "fake://%s" % pod.name,
                      "reason": "Completed" if code == 0 else "Error"}
        if killed_for == "fake/oom":
            terminated["reason"] = "OOMKilled"
        cs["state"] = {"terminated": terminated}
        cs["ready"] = cs["started"] = False
        if killed_for == "fake/evicted":
            pod.obj["status"]["reason"] = "Evicted"
            pod.obj["status"]["message"] = ("The node was low on resource: memory. Threshold "
                                            "quantity: 100Mi, available: 50Mi.")
        pod.obj["status"]["phase"] = "Succeeded" if code == 0 and not killed_for else "Failed"
        if killed_for == "deleted":
            return "deleted"
        if killed_for == "deadline":
            return "deadline"
        return "succeeded" if code == 0 and not killed_for else "failed"

    @staticmethod
    def kill(process):
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    @staticmethod
    def read_output(pod, process):
        for line in process.stdout:
            pod.add_line(line.rstrip(b"\n"))
        process.stdout.close()
        process.wait()
        pod.finish_output()

    def delete(self, policy):
        self.deleted = True
        if policy in ("Background", "Foreground"):
            for pod in self.pods:
                pod.deleted = True
                self.server.remove_pod(pod)
                with pod.cond:
                    pod.cond.notify_all()
        else:
            # Orphaned: the pods live on, no longer owned
            for pod in self.pods:
                pod.obj["metadata"].pop("ownerReferences", None)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-kube/1.0"

    def log_message(self, format, *args):
        if self.server.fake.verbose:
            sys.stderr.write("fake-kube: " + format % args + "\n")

    def send_json(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def fail(self, code, reason, message):
        self.send_json(code, status_body(code, reason, message))

    def handle_any(self, method):
        fake = self.server.fake
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query, keep_blank_values=True)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode(errors="replace")
        fake.record({"method": method, "path": url.path,
                     "query": {k: v[0] if len(v) == 1 else v for k, v in query.items()},
                     "headers": {k.lower(): v for k, v in self.headers.items()},
                     "body": body})
        if self.headers.get("Authorization") != "Bearer " + fake.token:
            return self.fail(401, "Unauthorized", "Unauthorized")
        parts = [urllib.parse.unquote(p) for p in url.path.strip("/").split("/")]
        q = {k: v[0] for k, v in query.items()}
        try:
            if parts[:4] == ["apis", "batch", "v1", "namespaces"] and len(parts) >= 6 \
                    and parts[5] == "jobs":
                return self.jobs(method, parts[4], parts[6] if len(parts) > 6 else None,
                                 q, body, len(parts) <= 7)
            if parts[:3] == ["api", "v1", "namespaces"] and len(parts) >= 5 and parts[4] == "pods":
                if len(parts) == 5 and method == "GET":
                    return self.list_pods(parts[3], q)
                if len(parts) == 7 and parts[6] == "log" and method == "GET":
                    return self.pod_log(parts[3], parts[5], q)
                if len(parts) == 6 and method == "GET":
                    pod = fake.pods.get((parts[3], parts[5]))
                    if not pod:
                        return self.fail(404, "NotFound", 'pods "%s" not found' % parts[5])
                    return self.send_json(200, pod.obj)
            self.fail(404, "NotFound", "the server could not find the requested resource")
        except (OSError, ssl.SSLError):
            # The client went away (a canceled stream, a killed agent)
            self.close_connection = True

    def do_GET(self):
        self.handle_any("GET")

    def do_POST(self):
        self.handle_any("POST")

    def do_DELETE(self):
        self.handle_any("DELETE")

    def do_PUT(self):
        self.handle_any("PUT")

    def do_PATCH(self):
        self.handle_any("PATCH")

    def jobs(self, method, namespace, name, q, body, exact):
        fake = self.server.fake
        if not exact:
            return self.fail(404, "NotFound", "the server could not find the requested resource")
        if name is None and method == "POST":
            if not isinstance(body, dict) or body.get("apiVersion") != "batch/v1" \
                    or body.get("kind") != "Job":
                return self.fail(400, "BadRequest", "expected a batch/v1 Job")
            meta = body.get("metadata") or {}
            name = meta.get("name")
            if not dns1123_label(name):
                return self.fail(422, "Invalid", 'Job.batch "%s" is invalid: metadata.name: '
                                 'Invalid value' % name)
            if meta.get("namespace", namespace) != namespace:
                return self.fail(400, "BadRequest", "the namespace of the provided object does "
                                 "not match the namespace sent on the request")
            try:
                containers = body["spec"]["template"]["spec"]["containers"]
                assert containers and containers[0].get("image") and containers[0].get("name")
                assert body["spec"]["template"]["spec"].get("restartPolicy") in ("Never",
                                                                                 "OnFailure")
            except (KeyError, TypeError, AssertionError):
                return self.fail(422, "Invalid", 'Job.batch "%s" is invalid: spec.template' % name)
            invalid = volume_errors(body["spec"]["template"]["spec"])
            if invalid:
                return self.fail(422, "Invalid", 'Job.batch "%s" is invalid: %s' % (name, invalid))
            with fake.lock:
                if (namespace, name) in fake.jobs:
                    return self.fail(409, "AlreadyExists", 'jobs.batch "%s" already exists' % name)
                meta["namespace"] = namespace
                job = Job(fake, namespace, body)
                fake.jobs[(namespace, name)] = job
            job.thread.start()
            return self.send_json(201, job.obj)
        if name is None and method == "GET":
            items = [j.obj for (ns, _), j in list(fake.jobs.items())
                     if ns == namespace and match_selector(j.obj["metadata"]["labels"],
                                                           q.get("labelSelector", ""))]
            return self.send_json(200, {"kind": "JobList", "apiVersion": "batch/v1",
                                        "metadata": {"resourceVersion": str(fake.version)},
                                        "items": items})
        job = fake.jobs.get((namespace, name)) if name else None
        if name and not job:
            return self.fail(404, "NotFound", 'jobs.batch "%s" not found' % name)
        if method == "GET":
            with job.lock:
                return self.send_json(200, job.obj)
        if method == "DELETE":
            policy = q.get("propagationPolicy")
            if isinstance(body, dict) and body.get("propagationPolicy"):
                policy = body["propagationPolicy"]
            if policy not in (None, "Background", "Foreground", "Orphan"):
                return self.fail(400, "BadRequest", "invalid propagationPolicy")
            with fake.lock:
                fake.jobs.pop((namespace, name), None)
            job.delete(policy)
            return self.send_json(200, status_body(200, None, None, {
                "name": name, "group": "batch", "kind": "jobs",
                "uid": job.obj["metadata"]["uid"]}))
        self.fail(405, "MethodNotAllowed", "method not allowed")

    def list_pods(self, namespace, q):
        fake = self.server.fake
        items = [p.obj for (ns, _), p in list(fake.pods.items())
                 if ns == namespace and match_selector(p.obj["metadata"]["labels"],
                                                       q.get("labelSelector", ""))]
        self.send_json(200, {"kind": "PodList", "apiVersion": "v1",
                             "metadata": {"resourceVersion": str(fake.version)}, "items": items})

    def pod_log(self, namespace, name, q):
        fake = self.server.fake
        pod = fake.pods.get((namespace, name))
        if not pod:
            return self.fail(404, "NotFound", 'pods "%s" not found' % name)
        container = q.get("container", pod.container.get("name"))
        if container != pod.container.get("name"):
            return self.fail(400, "BadRequest", 'container %s is not valid for pod %s'
                             % (container, name))
        state = pod.cstatus()["state"]
        if "waiting" in state:
            return self.fail(400, "BadRequest", 'container "%s" in pod "%s" is waiting to start: '
                             '%s' % (container, name, state["waiting"].get("reason")))
        follow = q.get("follow") == "true"
        stamps = q.get("timestamps") == "true"
        since = 0
        if q.get("sinceTime"):
            try:
                since = parse_rfc3339_ns(q["sinceTime"])
            except ValueError:
                return self.fail(400, "BadRequest", "invalid sinceTime")
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        index = 0
        while True:
            with pod.cond:
                while index >= len(pod.lines) and not pod.output_done and not pod.deleted \
                        and follow and not fake.stopping:
                    pod.cond.wait(0.2)
                batch = pod.lines[index:]
                index = len(pod.lines)
                ended = pod.output_done or pod.deleted or not follow or fake.stopping
            data = b""
            for ns, text in batch:
                if ns < since:
                    continue
                data += ((rfc3339_nano(ns) + " ").encode() if stamps else b"") + text + b"\n"
            if data:
                self.wfile.write(b"%x\r\n" % len(data) + data + b"\r\n")
                self.wfile.flush()
            if ended and index >= len(pod.lines):
                break
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


class ThreadingServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class FakeKube:
    """The server, in a thread of the caller's process."""

    def __init__(self, directory, port=0, tls=True, ca_data=False, verbose=False, claims=None):
        self.dir = directory
        self.claims = dict(claims or {})
        os.makedirs(directory, exist_ok=True)
        self.token = "%032x" % random.getrandbits(128)
        self.jobs = {}
        self.pods = {}
        self.requests = []
        self.processes = []
        self.lock = threading.RLock()
        self.version = 1
        self.stopping = False
        self.verbose = verbose
        self.httpd = ThreadingServer(("127.0.0.1", port), Handler)
        self.httpd.fake = self
        self.port = self.httpd.server_address[1]
        self.tls = tls and shutil.which("openssl") is not None
        scheme = "http"
        if self.tls:
            self.make_certificate()
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(self.cert_path, self.key_path)
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
            scheme = "https"
        self.server_url = "%s://127.0.0.1:%d" % (scheme, self.port)
        self.kubeconfig = os.path.join(directory, "kubeconfig")
        self.write_kubeconfig(ca_data)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def make_certificate(self):
        self.cert_path = os.path.join(self.dir, "server.crt")
        self.key_path = os.path.join(self.dir, "server.key")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                        "-keyout", self.key_path, "-out", self.cert_path, "-days", "2",
                        "-subj", "/CN=fake-kube",
                        "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                       check=True, capture_output=True)

    def write_kubeconfig(self, ca_data):
        cluster = "    server: %s\n" % self.server_url
        if self.tls:
            if ca_data:
                with open(self.cert_path, "rb") as f:
                    cluster += "    certificate-authority-data: %s\n" % \
                        base64.b64encode(f.read()).decode()
            else:
                cluster += "    certificate-authority: %s\n" % os.path.basename(self.cert_path)
        text = ("apiVersion: v1\nkind: Config\ncurrent-context: fake\n"
                "clusters:\n- name: fake-cluster\n  cluster:\n%s"
                "contexts:\n- name: fake\n  context:\n    cluster: fake-cluster\n"
                "    user: fake-user\n    namespace: qanat-test\n"
                "users:\n- name: fake-user\n  user:\n    token: %s\n") % (cluster, self.token)
        with open(self.kubeconfig, "w") as f:
            f.write(text)
        os.chmod(self.kubeconfig, 0o600)

    def next_version(self):
        with self.lock:
            self.version += 1
            return self.version

    def record(self, request):
        with self.lock:
            self.requests.append(request)

    def add_pod(self, pod):
        with self.lock:
            self.pods[(pod.job.namespace, pod.name)] = pod

    def remove_pod(self, pod):
        with self.lock:
            self.pods.pop((pod.job.namespace, pod.name), None)

    def find(self, method=None, path_contains=None):
        with self.lock:
            return [r for r in self.requests
                    if (method is None or r["method"] == method)
                    and (path_contains is None or path_contains in r["path"])]

    def live_processes(self):
        return [p for p in self.processes if p.poll() is None]

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.stopping = True
        for pod in list(self.pods.values()):
            with pod.cond:
                pod.cond.notify_all()
        for job in list(self.jobs.values()):
            job.deleted = True
        for process in self.processes:
            Job.kill(process)
        self.httpd.shutdown()
        self.httpd.server_close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--dir", required=True)
    parser.add_argument("--no-tls", action="store_true")
    parser.add_argument("--ca-data", action="store_true",
                        help="inline the CA as certificate-authority-data")
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--claim", action="append", default=[], metavar="NAME=HOSTDIR",
                        help="a PersistentVolumeClaim, as a host directory (repeatable)")
    args = parser.parse_args()
    claims = {}
    for claim in args.claim:
        name, equals, host = claim.partition("=")
        if not equals or not name or not os.path.isdir(host):
            parser.error("--claim wants NAME=HOSTDIR, an existing directory: %s" % claim)
        claims[name] = os.path.abspath(host)
    fake = FakeKube(args.dir, args.port, tls=not args.no_tls, ca_data=args.ca_data,
                    verbose=args.verbose, claims=claims)
    print("fake kubernetes API at %s, kubeconfig %s" % (fake.server_url, fake.kubeconfig),
          flush=True)
    fake.start()
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        fake.stop()


if __name__ == "__main__":
    main()
