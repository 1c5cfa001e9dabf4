"""The qanat client: runs, logs, metrics, artifacts, workflows and agents
of a coordinator, over its HTTP/JSON API (docs/http-api.md).

    import qanat
    c = qanat.Client()                       # QANAT_URL / QANAT_TOKEN, or the CLI's context
    run = c.start("train", params={"lr": 0.01})
    for line in run.logs(follow=True):
        print(line["task"], line["text"], end="")
    run.wait()
    print(run.status, run.metrics()["accuracy"][-1]["value"])

Every refusal is an exception from qanat.errors with the server's message.
"""
import hashlib
import json
import os
import shutil
import stat
import tarfile
import tempfile
import time
import urllib.parse
from typing import Any, Dict, Iterator, List, Mapping, Optional

from . import _code, _config
from ._http import Transport
from .errors import NotFound, QanatError, Unreachable, error_for

__all__ = ["Client", "Run", "FINISHED"]

#: The statuses of a run that has ended
FINISHED = ("succeeded", "succeeded_with_warnings", "failed", "canceled")

_API = "/api/v1"
_PIECE = 1024 * 1024


def _quote(name: str) -> str:
    return urllib.parse.quote(name, safe="")


class Client:
    """A coordinator's HTTP API.

    url and token come from the arguments, else ``QANAT_URL`` and
    ``QANAT_TOKEN``, else the CLI's config file (its current context, or
    the one ``context`` or ``QANAT_CONTEXT`` names), else
    ``http://127.0.0.1:7780`` without a token (a coordinator started with
    ``--insecure``).  timeout bounds each request, in seconds.
    """

    def __init__(self, url: Optional[str] = None, token: Optional[str] = None,
                 context: Optional[str] = None, timeout: float = 30.0) -> None:
        self.url, self.token = _config.resolve(url, token, context)
        self._http = Transport(self.url, self.token, timeout)

    def __repr__(self) -> str:
        return "qanat.Client(%r)" % self.url

    # -----------------------------------------------------------------
    # Runs

    def runs(self, workflow: Optional[str] = None, status: Optional[str] = None,
             owner: Optional[str] = None, after: Optional[str] = None,
             before: Optional[str] = None, limit: Optional[int] = 50) -> List["Run"]:
        """Runs, newest first, filtered by workflow name, status (a run
        status name as ``"failed"``), owner, and creation time (``after``,
        ``before``: RFC 3339 text).  Pages are followed until limit runs
        (None: all of them).  The runs listed carry no tasks until read."""
        found: List[Run] = []
        cursor: Optional[str] = None
        while limit is None or len(found) < limit:
            page = 1000 if limit is None else min(1000, limit - len(found))
            query = {"workflow": workflow, "status": status, "owner": owner, "after": after,
                     "before": before, "cursor": cursor, "limit": page}
            _, body = self._http.call("GET", _API + "/runs", query=query)
            found += [Run(self, info, listed=True) for info in body.get("runs", [])]
            cursor = body.get("next")
            if not cursor or not body.get("runs"):
                break
        return found

    def run(self, run_id: int) -> "Run":
        """One run, read now (NotFound when there is none)."""
        return Run(self, self._get_run(int(run_id)))

    def start(self, workflow_or_name: Optional[str] = None,
              params: Optional[Mapping[str, Any]] = None, version: Optional[int] = None,
              source: Optional[str] = None, filename: Optional[str] = None,
              code_dir: Optional[str] = None, no_cache: bool = False,
              code: Optional[str] = None) -> "Run":
        """Starts a run: of the stored workflow named workflow_or_name
        (``version``: that version, default the newest), or of the
        workflow text ``source`` (``filename`` names it in errors; it is
        stored as a new version when it changed).  params maps names to
        strings, numbers or booleans.  code_dir is packed and put (only
        what the coordinator lacks is sent) as the run's code; code gives
        a ``dir:<sha256>`` already put (see put_tree) and wins over
        code_dir.  InvalidWorkflow when the workflow or its params are
        refused."""
        body: Dict[str, Any] = {}
        if source is not None:
            if workflow_or_name is not None:
                raise QanatError("give either a workflow name or source, not both")
            body["source"] = source
            body["filename"] = filename or "workflow.yaml"
        elif workflow_or_name:
            body["workflow"] = workflow_or_name
            if version:
                body["version"] = int(version)
        else:
            raise QanatError("give a stored workflow's name or source=")
        if params:
            body["params"] = dict(params)
        if no_cache:
            body["no_cache"] = True
        if code is None and code_dir is not None:
            code = self.put_tree(code_dir)
        if code:
            body["code"] = code
        _, info = self._http.call("POST", _API + "/runs", body, workflow=True)
        return Run(self, info)

    # -----------------------------------------------------------------
    # Workflows and code

    def publish(self, source: str, filename: str = "workflow.yaml",
                code_dir: Optional[str] = None, code: Optional[str] = None) -> Dict[str, Any]:
        """Stores workflow text as a new version (or finds it unchanged)
        without running it; code_dir is packed and put too (or code, a
        ``dir:<sha256>`` put already, is taken as it is).  The version
        keeps its code: a run of it by name gets that code, and the same
        text with other code is a new version.  Returns ``{"name",
        "version", "created", "code"}`` (code ``dir:<sha256>`` or None).
        InvalidWorkflow, with its file, line and column, when the text is
        refused."""
        if code is None and code_dir is not None:
            code = self.put_tree(code_dir)
        request = {"source": source, "filename": filename}
        if code:
            request["code"] = code
        _, body = self._http.call("POST", _API + "/workflows", request, workflow=True)
        body["code"] = body.get("code") or None
        return body

    def workflows(self) -> List[Dict[str, Any]]:
        """The stored workflows: ``[{"name", "latest", "created", "runs"}]``."""
        _, body = self._http.call("GET", _API + "/workflows")
        return body.get("workflows", [])

    def workflow(self, name: str, version: Optional[int] = None) -> Dict[str, Any]:
        """A stored workflow version (the newest when version is None):
        ``{"name", "version", "filename", "source", "created", "latest"}``."""
        _, latest = self._http.call("GET", _API + "/workflows/" + _quote(name))
        number = version or latest.get("latest")
        _, body = self._http.call("GET", "%s/workflows/%s/versions/%d"
                                  % (_API, _quote(name), int(number)))
        return body

    def put_tree(self, path: str, extra_files: Optional[Dict[str, bytes]] = None,
                 max_bytes: int = _code.CODE_MAX) -> str:
        """Packs the folder path as ``qanat run`` packs a workflow's code
        (.git and what .qanatignore leaves out are skipped; a folder over
        max_bytes is refused naming its biggest files), with extra_files
        (relative path -> content) added, and puts every blob the
        coordinator does not hold yet.  Returns ``dir:<sha256>``."""
        tree = _code.pack(path, extra_files, max_bytes)
        seen = set()
        for entry in tree.entries:
            if entry.hash in seen:
                continue
            seen.add(entry.hash)
            if entry.data is not None:
                self.put_blob(entry.data, entry.hash)
            else:
                self.put_file(entry.source, entry.hash, entry.size)  # type: ignore[arg-type]
        self.put_blob(tree.manifest, tree.hash)
        return tree.ref

    def has_blob(self, sha256: str) -> Optional[int]:
        """The size of the blob the coordinator holds under sha256, or None."""
        try:
            _, body = self._http.call("GET", _API + "/blobs/" + _quote(sha256))
        except NotFound:
            return None
        return int(body.get("size", 0))

    def put_blob(self, data: bytes, sha256: Optional[str] = None) -> bool:
        """Puts bytes unless the coordinator holds them; True when sent."""
        sha256 = sha256 or hashlib.sha256(data).hexdigest()
        if self.has_blob(sha256) is not None:
            return False
        self._put(sha256, data, len(data))
        return True

    def put_file(self, path: str, sha256: Optional[str] = None,
                 size: Optional[int] = None) -> bool:
        """Puts a file's content unless the coordinator holds it; True when sent."""
        if sha256 is None or size is None:
            sha256, size = _code._hash_file(path)
        if self.has_blob(sha256) is not None:
            return False
        with open(path, "rb") as f:
            self._put(sha256, f, size)
        return True

    def _put(self, sha256: str, body: Any, size: int) -> None:
        path = _API + "/blobs/" + _quote(sha256)
        try:
            self._http.call_raw("PUT", path, body, size)
        except QanatError as e:
            # Bytes left by another upload cut short may not have been
            # this content: the engine dropped them; one more try
            if e.status != 400 or "hashes to" not in e.message:
                raise
            if hasattr(body, "seek"):
                body.seek(0)
            self._http.call_raw("PUT", path, body, size)

    # -----------------------------------------------------------------
    # Agents and the rest

    def agents(self) -> List[Dict[str, Any]]:
        """The agents the coordinator knows, with their state, labels and slots."""
        _, body = self._http.call("GET", _API + "/agents")
        return body.get("agents", [])

    def stats(self) -> Dict[str, Any]:
        """The coordinator's counters (GET /api/v1/stats)."""
        _, body = self._http.call("GET", _API + "/stats")
        return body

    def whoami(self) -> Dict[str, Any]:
        """Who the token is: ``{"kind", "name", "role", ...}``."""
        _, body = self._http.call("GET", _API + "/whoami")
        return body

    def request(self, method: str, path: str, body: Optional[Any] = None,
                query: Optional[Mapping[str, Any]] = None) -> Any:
        """Any route of the API (docs/http-api.md) without a method here:
        path with or without its ``/api/v1`` prefix, body sent as JSON;
        returns the decoded answer (None when empty)."""
        if not path.startswith("/"):
            path = "/" + path
        if not path.startswith(_API + "/") and path != "/metrics":
            path = _API + path
        _, answer = self._http.call(method.upper(), path, body, query)
        return answer

    def _get_run(self, run_id: int) -> Dict[str, Any]:
        _, body = self._http.call("GET", "%s/runs/%d" % (_API, run_id))
        return body


class Run:
    """One run: ``id``, ``info`` (the API's JSON of it), ``status`` and
    ``tasks`` (read again while the run has not finished), and what it
    made: logs, metrics, artifacts, values."""

    def __init__(self, client: Client, info: Dict[str, Any], listed: bool = False) -> None:
        self.client = client
        self.info = info
        self.id = int(info["run_id"])
        self._listed = listed

    def __repr__(self) -> str:
        return "<qanat.Run %d %s %s>" % (self.id, self.info.get("workflow"),
                                        self.info.get("status"))

    def refresh(self) -> "Run":
        """Reads the run again; returns it."""
        self.info = self.client._get_run(self.id)
        self._listed = False
        return self

    @property
    def finished(self) -> bool:
        """True once the run has ended (as last read)."""
        return self.info.get("status") in FINISHED

    @property
    def status(self) -> str:
        """The run's status (``"running"``, ``"succeeded"``, ...), read
        again unless the run had already finished."""
        if not self.finished:
            self.refresh()
        return str(self.info.get("status"))

    @property
    def tasks(self) -> List[Dict[str, Any]]:
        """The tasks with their status, attempts and checks."""
        if self._listed or not self.finished:
            self.refresh()
        return list(self.info.get("tasks", []))

    def task(self, name: str) -> Dict[str, Any]:
        """One task by name (NotFound when the run has none)."""
        for task in self.tasks:
            if task.get("name") == name:
                return task
        raise NotFound("run %d has no task %s" % (self.id, name), 404, "not_found")

    def wait(self, timeout: Optional[float] = None, poll: float = 0.5) -> "Run":
        """Waits until the run has finished; TimeoutError after timeout
        seconds (None: no limit).  Returns the run."""
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = 0.1
        while not self.finished:
            self.refresh()
            if self.finished:
                break
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError("run %d still %s after %g s" % (self.id, self.info.get("status"),
                                                                   timeout))
            sleep = min(pause, poll)
            if deadline is not None:
                sleep = max(0.0, min(sleep, deadline - time.monotonic()))
            time.sleep(sleep)
            pause *= 1.5
        return self

    def cancel(self, task: Optional[str] = None) -> "Run":
        """Cancels the run (or only task).  Returns the run, read anew."""
        body = {"task": task} if task else None
        _, info = self.client._http.call("POST", "%s/runs/%d/cancel" % (_API, self.id), body)
        self.info = info
        return self

    # -----------------------------------------------------------------
    # Logs

    def logs(self, task: Optional[str] = None, follow: bool = False,
             after: int = 0, reconnect_for: float = 60.0) -> Iterator[Dict[str, Any]]:
        """The run's log lines as dicts (``task``, ``attempt``, ``seq``,
        ``stream``, ``text``, ``time``, ...), in order; ``text`` may hold
        several lines as the agent sent them.  Only task's with task.
        follow keeps reading the event stream until the run has finished,
        reconnecting (a coordinator restart included, for up to
        reconnect_for seconds without an answer) and resuming after the
        last line seen: no line is lost or repeated.  after skips the
        lines up to that log sequence."""
        if follow:
            return self._follow(task, after, reconnect_for)
        return self._read(task, after)

    def _read(self, task: Optional[str], after: int) -> Iterator[Dict[str, Any]]:
        while True:
            _, page = self.client._http.call("GET", "%s/runs/%d/logs" % (_API, self.id),
                                             query={"task": task, "after": after or None,
                                                    "limit": 1000})
            lines = page.get("lines", [])
            for line in lines:
                if int(line.get("seq", 0)) > after:
                    after = int(line["seq"])
                    yield line
            if not lines or int(page.get("next", after)) <= 0:
                return
            after = max(after, int(page.get("next", after)))

    def _follow(self, task: Optional[str], after: int,
                reconnect_for: float) -> Iterator[Dict[str, Any]]:
        last = after
        failing_since: Optional[float] = None
        pause = 0.2
        path = "%s/runs/%d/logs/stream" % (_API, self.id)
        while True:
            try:
                for event, _, data in self.client._http.events(
                        path, {"task": task}, last_id=str(last) if last else None):
                    failing_since = None
                    pause = 0.2
                    if event == "line":
                        line = json.loads(data)
                        seq = int(line.get("seq", 0))
                        if seq > last:
                            last = seq
                            yield line
                    elif event == "end":
                        return
                    elif event == "error":
                        _raise_event_error(data)
                # closed without "end": the coordinator went away mid-stream
                gone: Optional[Unreachable] = None
            except Unreachable as e:
                gone = e
            # Reconnect after a pause that grows while nothing comes back
            now = time.monotonic()
            if failing_since is None:
                failing_since = now
            elif now - failing_since > reconnect_for:
                raise gone or Unreachable("the log stream of run %d keeps closing" % self.id)
            time.sleep(pause)
            pause = min(pause * 2, 2.0)

    # -----------------------------------------------------------------
    # What the run made

    def metrics(self, name: Optional[str] = None) -> Dict[str, List[Dict[str, Any]]]:
        """Metric name -> its points (``value``, ``step``, ``time``, and
        the ``task`` that reported it), in the order reported."""
        _, body = self.client._http.call("GET", "%s/runs/%d/metrics" % (_API, self.id),
                                         query={"name": name})
        result: Dict[str, List[Dict[str, Any]]] = {}
        for series in body.get("series", []):
            points = result.setdefault(series.get("name", ""), [])
            for point in series.get("points", []):
                point = dict(point)
                point.setdefault("task", series.get("task"))
                points.append(point)
        return result

    def artifacts(self) -> List[Dict[str, Any]]:
        """The outputs of each task's successful attempt: ``task``,
        ``name``, ``kind`` (file, dir, value), ``hash``, ``size``,
        ``store``, and ``value`` for a value."""
        _, body = self.client._http.call("GET", "%s/runs/%d/artifacts" % (_API, self.id))
        return body.get("artifacts", [])

    def values(self) -> Dict[str, Dict[str, str]]:
        """The value outputs: ``{task: {output: value}}``."""
        result: Dict[str, Dict[str, str]] = {}
        for item in self.artifacts():
            if item.get("kind") == "value":
                result.setdefault(item["task"], {})[item["name"]] = item.get("value", "")
        return result

    def _artifact(self, task: str, output: str) -> Dict[str, Any]:
        for item in self.artifacts():
            if item.get("task") == task and item.get("name") == output:
                return item
        raise NotFound("run %d has no output %s of task %s" % (self.id, output, task),
                       404, "not_found")

    def download(self, task: str, output: str, path: str) -> str:
        """Writes output of task to path: a file as a file (replacing
        one there), a directory output as a directory (its files under
        path, which must not exist or be empty), a value as a text file.  Every byte is verified against the output's SHA-256 (a
        directory's against its manifest) before path is made; QanatError
        when it does not match.  Returns path."""
        item = self._artifact(task, output)
        if os.path.isdir(path) and (item.get("kind") != "dir" or os.listdir(path)):
            raise QanatError("%s is a directory%s: give a new path"
                             % (path, "" if item.get("kind") != "dir" else " already holding files"))
        if item.get("kind") == "dir" and os.path.lexists(path) and not os.path.isdir(path):
            raise QanatError("%s exists and is not a directory: give a new path" % path)
        if item.get("store") == "s3":
            raise QanatError("output %s of task %s is kept in S3 at %s: read it there"
                             % (output, task, item.get("location")))
        if item.get("kind") == "value":
            _write_atomic(path, str(item.get("value", "")).encode("utf-8"))
            return path
        url = "%s/runs/%d/artifacts/%s/%s" % (_API, self.id, _quote(task), _quote(output))
        response = self.client._http.open("GET", url, timeout=max(self.client._http.timeout, 60))
        parent = os.path.dirname(os.path.abspath(path))
        try:
            with tempfile.NamedTemporaryFile(dir=parent, prefix=".qanat-", delete=False) as tmp:
                digest = hashlib.sha256()
                while True:
                    block = response.read(_PIECE)
                    if not block:
                        break
                    digest.update(block)
                    tmp.write(block)
        except OSError as e:
            raise Unreachable("download of %s/%s cut short: %s" % (task, output, e)) from None
        finally:
            response.close()
        try:
            if item.get("kind") == "dir":
                _untar_verified(tmp.name, output, item.get("hash", ""), path)
            else:
                if digest.hexdigest() != item.get("hash"):
                    raise QanatError("output %s of task %s: SHA-256 %s, not %s as recorded"
                                     % (output, task, digest.hexdigest(), item.get("hash")))
                os.chmod(tmp.name, 0o644)
                os.replace(tmp.name, path)
        finally:
            if os.path.exists(tmp.name):
                os.unlink(tmp.name)
        return path


# ---------------------------------------------------------------------

def _raise_event_error(data: str) -> None:
    try:
        error = json.loads(data).get("error", {})
    except (ValueError, AttributeError):
        error = {}
    code = error.get("code")
    status = {"not_found": 404, "unauthorized": 401, "forbidden": 403, "conflict": 409,
              "unavailable": 503}.get(code, 400)
    raise error_for(status, str(error.get("message") or "the stream failed"), code,
                    error.get("field"))


def _write_atomic(path: str, data: bytes) -> None:
    parent = os.path.dirname(os.path.abspath(path))
    with tempfile.NamedTemporaryFile(dir=parent, prefix=".qanat-", delete=False) as tmp:
        tmp.write(data)
    os.chmod(tmp.name, 0o644)
    os.replace(tmp.name, path)


def _untar_verified(archive: str, name: str, manifest_hash: str, path: str) -> None:
    """Unpacks a directory output's tar (members ``name/<path>``) into
    path, after checking that its files make the recorded manifest."""
    entries = []
    with tarfile.open(archive, "r:") as tar:
        members = tar.getmembers()
        for member in members:
            if member.isdir():
                continue
            if not member.isfile():
                raise QanatError("output %s: the archive holds %s, not a file" % (name, member.name))
            relative = _member_path(member.name, name)
            f = tar.extractfile(member)
            digest = hashlib.sha256(f.read() if f else b"").hexdigest()
            entries.append(_code.Entry(os.fsencode(relative), member.mode & 0o777, member.size,
                                       digest))
        got = hashlib.sha256(_code.manifest_of(entries)).hexdigest()
        if got != manifest_hash:
            raise QanatError("output %s: the files received make manifest %s, not %s as recorded"
                             % (name, got, manifest_hash))
        staging = tempfile.mkdtemp(dir=os.path.dirname(os.path.abspath(path)), prefix=".qanat-")
        try:
            for member in members:
                if not member.isfile():
                    continue
                target = os.path.join(staging, _member_path(member.name, name))
                os.makedirs(os.path.dirname(target), exist_ok=True)
                src = tar.extractfile(member)
                with open(target, "wb") as out:
                    shutil.copyfileobj(src, out, _PIECE)  # type: ignore[arg-type]
                os.chmod(target, (member.mode & 0o777) | stat.S_IRUSR | stat.S_IWUSR)
            if os.path.isdir(path) and not os.listdir(path):
                os.rmdir(path)
            os.rename(staging, path)
            os.chmod(path, 0o755)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise


def _member_path(member: str, name: str) -> str:
    if not member.startswith(name + "/"):
        raise QanatError("output %s: unexpected path %r in the archive" % (name, member))
    relative = member[len(name) + 1:]
    parts = relative.split("/")
    if not relative or relative.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise QanatError("output %s: unsafe path %r in the archive" % (name, member))
    return relative
