#!/usr/bin/env python3
"""A fake of the two AWS APIs the lambda backend calls, for the tests
(Python standard library only), written from the public API references:

- AWS Lambda Invoke (REST-JSON, service "lambda"):
  POST /2015-03-31/functions/{FunctionName}/invocations[?Qualifier=Q]
  with X-Amz-Invocation-Type, X-Amz-Log-Type, X-Amz-Client-Context
  (base64 JSON, at most 3583 bytes) and the payload as the body; answers
  with the function's result and x-amzn-RequestId, X-Amz-Executed-Version
  and, for a failure, X-Amz-Function-Error with {errorMessage, errorType,
  stackTrace}; errors carry x-amzn-ErrorType and {"Type","message"}.
- CloudWatch Logs FilterLogEvents (JSON 1.1, service "logs"):
  POST / with X-Amz-Target: Logs_20140328.FilterLogEvents and
  Content-Type application/x-amz-json-1.1; answers {events, nextToken,
  searchedLogStreams}; errors are {"__type", "message"} with HTTP 400.

Every request must be signed with AWS Signature Version 4, which the fake
verifies on its own (canonical request, string to sign, derived key),
with the right service and region in the scope and the session token
when the credentials have one.  Anything unexpected (a method, path,
header, query or body member the references do not allow, a bad type, a
bad signature) is answered with an error and recorded in `violations`,
which a test asserts empty.

A function is a Python callable fn(event, ctx): ctx.log(text) writes a
log event to its invocation's stream (between the START and the END and
REPORT lines Lambda writes), ctx.sleep(s) waits; it returns the result or
raises FunctionFailure.  Injections: `throttle` (429
TooManyRequestsException with Retry-After), `fail_500`, `expired_keys`
(403 ExpiredTokenException for requests signed with those access keys),
`logs_throttle` (400 ThrottlingException), `logs_delay` (slow answers),
`page_size` (events per FilterLogEvents page)."""
import base64
import datetime
import hashlib
import hmac
import http.server
import json
import os
import socketserver
import threading
import time
import urllib.parse
import uuid

LOGS_TARGET = "Logs_20140328.FilterLogEvents"
FILTER_MEMBERS = {"logGroupName": str, "logGroupIdentifier": str, "logStreamNames": list,
                  "logStreamNamePrefix": str, "startTime": int, "endTime": int,
                  "filterPattern": str, "nextToken": str, "limit": int, "interleaved": bool,
                  "unmask": bool}
INVOCATION_TYPES = {"RequestResponse", "Event", "DryRun"}


class FunctionFailure(Exception):
    def __init__(self, error_type, message, trace=()):
        super().__init__(message)
        self.error_type, self.message, self.trace = error_type, message, list(trace)


def _hmac(key, text):
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def _uri_encode(text, safe="-_.~"):
    return urllib.parse.quote(text, safe=safe)


def verify_sigv4(method, raw_path, headers, body, credentials, service, region, now=None):
    """Returns None when the request is signed right, else why not.
    headers: a dict with lower-case names.  credentials: {access key:
    (secret, session token or None)}."""
    auth = headers.get("authorization", "")
    if not auth.startswith("AWS4-HMAC-SHA256 "):
        return "no AWS4-HMAC-SHA256 Authorization header"
    fields = {}
    for part in auth[len("AWS4-HMAC-SHA256 "):].split(","):
        key, _, value = part.strip().partition("=")
        fields[key] = value
    try:
        access_key, date, scope_region, scope_service, terminal = fields["Credential"].split("/")
        signed = fields["SignedHeaders"].split(";")
        signature = fields["Signature"]
    except (KeyError, ValueError):
        return "malformed Authorization header: %s" % auth
    if access_key not in credentials:
        return "unknown access key %s" % access_key
    secret, token = credentials[access_key]
    if (scope_region, scope_service, terminal) != (region, service, "aws4_request"):
        return "scope %s/%s/%s, want %s/%s/aws4_request" % (scope_region, scope_service,
                                                             terminal, region, service)
    amz_date = headers.get("x-amz-date", "")
    if "host" not in signed or "x-amz-date" not in signed:
        return "host and x-amz-date must be signed: %s" % signed
    if not amz_date.startswith(date):
        return "x-amz-date %s outside the scope's date %s" % (amz_date, date)
    try:
        when = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(
            tzinfo=datetime.timezone.utc)
    except ValueError:
        return "bad x-amz-date %s" % amz_date
    if abs((now or time.time()) - when.timestamp()) > 300:
        return "x-amz-date %s is more than 5 minutes off" % amz_date
    if token is not None:
        if headers.get("x-amz-security-token") != token:
            return "missing or wrong X-Amz-Security-Token"
    payload_hash = hashlib.sha256(body).hexdigest()
    if "x-amz-content-sha256" in headers and headers["x-amz-content-sha256"] not in (
            payload_hash, "UNSIGNED-PAYLOAD"):
        return "x-amz-content-sha256 does not match the body"
    path, _, query = raw_path.partition("?")
    pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
    canonical_query = "&".join("%s=%s" % (_uri_encode(k), _uri_encode(v))
                               for k, v in sorted(pairs))
    for name in signed:
        if name not in headers:
            return "signed header %s is missing" % name
    canonical_headers = "".join("%s:%s\n" % (name, " ".join(headers[name].split()))
                                for name in signed)
    canonical = "\n".join([method, path, canonical_query, canonical_headers, ";".join(signed),
                           headers.get("x-amz-content-sha256", payload_hash)])
    scope = "/".join([date, region, service, "aws4_request"])
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                         hashlib.sha256(canonical.encode()).hexdigest()])
    key = _hmac(("AWS4" + secret).encode(), date)
    for part in (region, service, "aws4_request"):
        key = _hmac(key, part)
    expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        return "signature mismatch"
    return None


class Invocation:
    def __init__(self, fake, function, stream):
        self.fake, self.function, self.stream = fake, function, stream
        self.request_id = str(uuid.uuid4())

    def log(self, text):
        self.fake.add_event(self.function, self.stream, text)

    @staticmethod
    def sleep(seconds):
        time.sleep(seconds)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):
        pass

    def reply(self, code, body, headers=None, raw=None):
        data = raw if raw is not None else json.dumps(body).encode()
        self.send_response(code)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def violation(self, why, service):
        self.server.fake.violations.append("%s %s: %s" % (self.command, self.path, why))
        if service == "logs":
            self.reply(400, {"__type": "InvalidParameterException", "message": why})
        else:
            self.reply(400, {"Type": "User", "message": why},
                       {"x-amzn-ErrorType": "InvalidRequestContentException"})

    def do_GET(self):
        self.handle_any()

    def do_PUT(self):
        self.handle_any()

    def do_DELETE(self):
        self.handle_any()

    def do_POST(self):
        self.handle_any()

    def handle_any(self):
        fake = self.server.fake
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        service = "logs" if "x-amz-target" in headers else "lambda"
        with fake.lock:
            fake.requests.append({"method": self.command, "path": self.path, "headers": headers,
                                  "body": body, "service": service, "time": time.time()})
        if self.command != "POST":
            return self.violation("only POST is expected", service)
        why = verify_sigv4(self.command, self.path, headers, body, fake.credentials, service,
                           fake.region)
        if why:
            return self.violation(why, service)
        access_key = headers["authorization"].split("Credential=")[1].split("/")[0]
        if access_key in fake.expired_keys:
            if service == "logs":
                return self.reply(400, {"__type": "ExpiredTokenException",
                                        "message": "The security token included in the request "
                                                   "is expired"})
            return self.reply(403, {"Type": "User", "message": "The security token included in "
                                    "the request is expired"},
                              {"x-amzn-ErrorType": "ExpiredTokenException"})
        if service == "logs":
            return self.filter_log_events(headers, body)
        return self.invoke(headers, body)

    # -- Lambda Invoke --------------------------------------------------

    def invoke(self, headers, body):
        fake = self.server.fake
        path, _, query = self.path.partition("?")
        parts = path.split("/")
        if len(parts) != 5 or parts[1] != "2015-03-31" or parts[2] != "functions" \
                or parts[4] != "invocations":
            return self.violation("no such Lambda route", "lambda")
        name = urllib.parse.unquote(parts[3])
        params = urllib.parse.parse_qs(query, keep_blank_values=True)
        if set(params) - {"Qualifier"}:
            return self.violation("unexpected query %s" % query, "lambda")
        kind = headers.get("x-amz-invocation-type", "RequestResponse")
        if kind not in INVOCATION_TYPES:
            return self.violation("bad X-Amz-Invocation-Type %s" % kind, "lambda")
        if kind != "RequestResponse":
            return self.violation("the backend must invoke synchronously, not %s" % kind, "lambda")
        if headers.get("x-amz-log-type", "None") not in ("None", "Tail"):
            return self.violation("bad X-Amz-Log-Type", "lambda")
        context = headers.get("x-amz-client-context")
        if context is not None:
            try:
                decoded = json.loads(base64.b64decode(context, validate=True))
            except Exception:
                return self.violation("X-Amz-Client-Context is not base64 JSON", "lambda")
            if len(context) > 3583 or not isinstance(decoded, dict) \
                    or set(decoded) - {"custom", "env", "client"}:
                return self.violation("bad X-Amz-Client-Context %s" % decoded, "lambda")
        for header in headers:
            if header.startswith("x-amz-") and header not in (
                    "x-amz-invocation-type", "x-amz-log-type", "x-amz-client-context",
                    "x-amz-date", "x-amz-security-token", "x-amz-content-sha256"):
                return self.violation("unexpected header %s" % header, "lambda")
        try:
            event = json.loads(body) if body else None
        except ValueError:
            return self.violation("the payload is not JSON", "lambda")
        if len(body) > 6 * 1024 * 1024:
            return self.reply(413, {"Type": "User", "message": "Request must be smaller than "
                                    "6291456 bytes for the InvokeFunction operation"},
                              {"x-amzn-ErrorType": "RequestTooLargeException"})
        with fake.lock:
            fake.invocations.append({"function": name, "qualifier": params.get("Qualifier", [""])[0],
                                     "event": event, "context": context and decoded,
                                     "time": time.time()})
            throttle = fake.throttle > 0
            if throttle:
                fake.throttle -= 1
            fail = not throttle and fake.fail_500 > 0
            if fail:
                fake.fail_500 -= 1
        if throttle:
            return self.reply(429, {"Type": "User", "message": "Rate Exceeded.",
                                    "Reason": "ReservedFunctionConcurrentInvocationLimitExceeded"},
                              {"x-amzn-ErrorType": "TooManyRequestsException",
                               "Retry-After": str(fake.retry_after)})
        if fail:
            return self.reply(500, {"Type": "Service", "message": "Internal failure"},
                              {"x-amzn-ErrorType": "ServiceException"})
        function = fake.functions.get(name)
        if function is None:
            return self.reply(404, {"Type": "User", "message": "Function not found: "
                                    "arn:aws:lambda:%s:123456789012:function:%s"
                                    % (fake.region, name)},
                              {"x-amzn-ErrorType": "ResourceNotFoundException"})
        stream = "%s/[$LATEST]%s" % (time.strftime("%Y/%m/%d"), uuid.uuid4().hex)
        call = Invocation(fake, name, stream)
        fake.add_event(name, stream, "START RequestId: %s Version: $LATEST\n" % call.request_id)
        started = time.time()
        headers_out = {"x-amzn-RequestId": call.request_id, "X-Amz-Executed-Version": "$LATEST"}
        try:
            result = function(event, call)
            data = json.dumps(result).encode()
        except FunctionFailure as failure:
            headers_out["X-Amz-Function-Error"] = "Unhandled"
            data = json.dumps({"errorMessage": failure.message, "errorType": failure.error_type,
                               "requestId": call.request_id,
                               "stackTrace": failure.trace}).encode()
        took = (time.time() - started) * 1000
        fake.add_event(name, stream, "END RequestId: %s\n" % call.request_id)
        fake.add_event(name, stream, "REPORT RequestId: %s\tDuration: %.2f ms\tBilled Duration: "
                       "%d ms\tMemory Size: 128 MB\tMax Memory Used: 42 MB\t\n"
                       % (call.request_id, took, int(took) + 1))
        try:
            self.reply(200, None, headers_out, raw=data)
        except OSError:
            pass        # the caller went away: the answer is lost, as with Lambda

    # -- CloudWatch Logs FilterLogEvents --------------------------------

    def filter_log_events(self, headers, body):
        fake = self.server.fake
        if headers.get("x-amz-target") != LOGS_TARGET:
            return self.violation("unexpected X-Amz-Target %s" % headers.get("x-amz-target"), "logs")
        if headers.get("content-type") != "application/x-amz-json-1.1":
            return self.violation("Content-Type %s" % headers.get("content-type"), "logs")
        if self.path != "/":
            return self.violation("the JSON protocol posts to /", "logs")
        try:
            request = json.loads(body)
        except ValueError:
            return self.violation("body is not JSON", "logs")
        if not isinstance(request, dict):
            return self.violation("body is not an object", "logs")
        for key, value in request.items():
            kind = FILTER_MEMBERS.get(key)
            if kind is None or not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                return self.violation("unexpected member %s=%r" % (key, value), "logs")
        if "logGroupName" not in request or not request["logGroupName"].startswith("/aws/lambda/"):
            return self.violation("logGroupName /aws/lambda/NAME is required", "logs")
        if fake.logs_delay:
            time.sleep(fake.logs_delay)
        with fake.lock:
            if fake.logs_throttle > 0:
                fake.logs_throttle -= 1
                return self.reply(400, {"__type": "ThrottlingException", "message": "Rate exceeded"})
            group = fake.groups.get(request["logGroupName"])
            if group is None:
                return self.reply(400, {"__type": "ResourceNotFoundException",
                                        "message": "The specified log group does not exist."})
            query = {k: v for k, v in request.items() if k != "nextToken"}
            offset = 0
            if "nextToken" in request:
                try:
                    token = json.loads(base64.b64decode(request["nextToken"]))
                    offset = token["offset"]
                except Exception:
                    return self.violation("a nextToken we did not give", "logs")
                if token["query"] != query:
                    return self.violation("nextToken used with other parameters", "logs")
            start = request.get("startTime", 0)
            end = request.get("endTime", 1 << 62)
            streams = request.get("logStreamNames")
            matching = [e for e in group if start <= e["timestamp"] <= end
                        and (streams is None or e["logStreamName"] in streams)]
            page = matching[offset:offset + min(fake.page_size, request.get("limit", 10000))]
            answer = {"events": page, "searchedLogStreams": []}
            if offset + len(page) < len(matching):
                answer["nextToken"] = base64.b64encode(json.dumps(
                    {"offset": offset + len(page), "query": query}).encode()).decode()
            fake.log_queries.append(request)
        self.reply(200, answer)


class ThreadingServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class FakeLambda:
    def __init__(self, region="eu-west-1"):
        self.region = region
        self.credentials = {"AKIDQANATTEST1": ("secret/one+key", "session-token-1")}
        self.expired_keys = set()
        self.functions = {}
        self.groups = {}
        self.requests, self.invocations, self.log_queries, self.violations = [], [], [], []
        self.throttle = self.fail_500 = self.logs_throttle = 0
        self.retry_after = 1
        self.logs_delay = 0
        self.page_size = 4
        self.lock = threading.RLock()
        self.server = ThreadingServer(("127.0.0.1", 0), Handler)
        self.server.fake = self
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def endpoint(self):
        return "http://127.0.0.1:%d" % self.server.server_address[1]

    def add_event(self, function, stream, message):
        with self.lock:
            group = self.groups.setdefault("/aws/lambda/" + function, [])
            now = int(time.time() * 1000)
            group.append({"logStreamName": stream, "timestamp": now, "message": message,
                          "ingestionTime": now, "eventId": str(len(group))})

    def write_credentials(self, directory, access_key="AKIDQANATTEST1"):
        """The shared credentials and config files for the agent."""
        secret, token = self.credentials[access_key]
        path = os.path.join(directory, "credentials")
        with open(path + ".new", "w") as f:
            f.write("[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n"
                    % (access_key, secret))
            if token:
                f.write("aws_session_token = %s\n" % token)
        os.replace(path + ".new", path)
        with open(os.path.join(directory, "config"), "w") as f:
            f.write("[default]\nregion = %s\n" % self.region)
        return path

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
