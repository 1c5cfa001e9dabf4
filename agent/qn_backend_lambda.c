/*  qn_backend_lambda - runs attempts as synchronous invocations of an
    existing AWS Lambda function, following their logs in CloudWatch Logs.
    See qn_backend.h for the ops contract, qn_lambda.h for the payload,
    the result and Lambda's log lines, docs/backends.md for the rules.

    Life of an attempt, all from the agent's zloop (qn_rest):
      started at once, with "<function>@<invoke time in ms>" as engine job
      id; a few milliseconds later (after the agent's spool commit) the
      Invoke: POST /2015-03-31/functions/<function>/invocations
      (RequestResponse, SigV4 by libcurl, X-Amz-Client-Context carrying
      qanat-<run>-<task>-<attempt>), answered when the function returns;
      meanwhile every poll_ms a FilterLogEvents on /aws/lambda/<name>
      (paginated with nextToken) follows the invocation's log stream.

    Which log lines are ours.  A synchronous invocation's request id comes
    with its answer, at the end, so while it runs we take the first
    "START RequestId: ID" line after our invoke time that no other attempt
    of this agent claimed; its log stream (one execution environment,
    which runs one invocation at a time) then holds our lines up to
    "REPORT RequestId: ID", whose figures become metrics.  When the answer
    names another request id (someone else invoked the same function at
    the same moment), a system line says so and the right stream is
    followed from its START.  The cursor is "<ms> <n> <request id>
    <stream>": the time of the last line reported and how many lines at
    that time, so a new query (from that time on) repeats no line.

    Failures.  429 (TooManyRequestsException), 5xx and connections that
    could not be made are tried again (Retry-After, else backoff with
    jitter) up to max_tries; expired credentials are read again (the AWS
    files may have been refreshed) and tried once more; anything else ends
    the attempt with Lambda's own message.  A FunctionError answer ends it
    with "<errorType>: <errorMessage>" and the stackTrace.

    What cannot be done.  An invocation cannot be stopped: cancel and
    timeout end the attempt at once, "(Lambda invocation left to finish)",
    and its answer is ignored.  Its answer goes only to the connection that
    asked: after an agent restart we follow its log to the REPORT line
    (no line repeated), then end the attempt as lost, its result unknown.
    Lambda has no idempotency key: the client context lets the function
    recognise a repeated attempt key itself.
*/
#include "qn_backend.h"
#include "qn_lambda.h"
#include "qn_log.h"
#include "qn_msg.h"
#include "qn_rest.h"
#include "qn_s3_settings.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_DEFAULT_POLL_MS       1000
#define S_DEFAULT_LOG_GRACE_MS  10000
#define S_DEFAULT_MAX_TRIES     8
#define S_INVOKE_TIMEOUT_MS     (16 * 60 * 1000)    //  Lambda's 15 minutes, and some
#define S_START_SLACK_MS        1000                //  clocks: START before our invoke time
#define S_BACKOFF_BASE_MS       500
#define S_BACKOFF_MAX_MS        30000
#define S_LOGS_TARGET           "X-Amz-Target: Logs_20140328.FilterLogEvents"
#define S_LEFT                  " (Lambda invocation left to finish)"

typedef struct _s_lambda_t s_lambda_t;

typedef struct {
    qn_backend_attempt_t base;
    s_lambda_t *backend;
    Qanat__Assign *assign;      //  outputs and env, for the values
    char function [180];        //  as the task names it
    char name [80];             //  its bare name, for the log group
    char qualifier [130];
    char region [40];
    char engine_id [QN_BACKEND_JOB_ID_MAX + 1];
    char *payload;
    int64_t invoke_ms;          //  wall clock, for the log query
    bool reattached;            //  no answer will come: follow the log only

    uint64_t invoke_call;
    unsigned tries;
    int64_t next_invoke_ms;     //  zclock_mono; 0 = not due
    bool fresh_credentials;     //  read again once after an expired token

    bool answered;
    int64_t answered_ms;
    int exit_code;
    char reason [800];
    char *stack_trace;
    Qanat__EndKind kind;

    uint64_t logs_call;
    int64_t next_logs_ms;
    unsigned log_tries;
    char *next_token;           //  paging through one query...
    int64_t query_start;        //  ...whose startTime
    bool query_claimed;         //  ...and logStreamNames stay as they were
    bool claimed;               //  request_id and stream are ours
    char request_id [QN_LAMBDA_REQUEST_ID_MAX + 1];
    char stream [256];
    int64_t log_ts;             //  the last reported line's time (ms)
    uint64_t log_count;         //  lines reported at exactly log_ts
    uint64_t seen_at_ts;        //  of this query
    bool report_seen;
} s_attempt_t;

struct _s_lambda_t {
    qn_backend_front_t front;
    qn_rest_t *rest;
    qn_s3_settings_t aws;       //  credentials and default region
    char *endpoint;             //  Lambda API base, NULL = https://lambda.<region>.amazonaws.com
    char *logs_endpoint;        //  NULL = https://logs.<region>.amazonaws.com
    int poll_ms;
    int log_grace_ms;
    unsigned max_tries;
};

static const char *s_known_options [] = {
    "region", "endpoint", "logs_endpoint", "poll_ms", "log_grace_ms", "max_tries", NULL
};

static void s_attempt_finish (s_attempt_t *self, int exit_code, const char *reason,
                              Qanat__EndKind kind);


//  ---------------------------------------------------------------------
//  Attempt records

static void
s_attempt_destroy (s_attempt_t **self_p)
{
    s_attempt_t *self = *self_p;
    if (!self)
        return;
    qn_rest_cancel (self->backend->rest, self->invoke_call);
    qn_rest_cancel (self->backend->rest, self->logs_call);
    if (self->assign)
        qanat__assign__free_unpacked (self->assign, NULL);
    qn_backend_attempt_fini (&self->base);
    free (self->payload);
    free (self->stack_trace);
    free (self->next_token);
    free (self);
    *self_p = NULL;
}

static s_attempt_t *
s_attempt_new (s_lambda_t *backend, const qn_attempt_key_t *key)
{
    s_attempt_t *self = (s_attempt_t *) calloc (1, sizeof (s_attempt_t));
    if (!self)
        return NULL;
    self->backend = backend;
    if (qn_backend_attempt_init (&self->base, &backend->front, key, 0) == -1)
        s_attempt_destroy (&self);
    return self;
}

//  Reports finished (with our own stack trace when we have one); the
//  attempt leaves the list
static void
s_attempt_report (s_attempt_t *self, int exit_code, const char *reason, Qanat__EndKind kind)
{
    qn_log (QN_LOG_INFO, "lambda", "attempt %" PRIu64 "/%u/%u (lambda %s) finished: %s",
            self->base.key.run_id, self->base.key.task_index, self->base.key.attempt,
            self->engine_id, reason && *reason? reason: "ok");
    if (self->base.handle)
        zlistx_detach (self->backend->front.attempts, self->base.handle);
    self->base.handle = NULL;
    if (self->stack_trace && exit_code != 0)
        self->backend->front.events->finished (self->backend->front.arg, &self->base.key,
                                               exit_code, 0, self->stack_trace,
                                               reason? reason: "", kind);
    else
        qn_backend_attempt_finished (&self->base, exit_code, 0, reason, kind);
}

//  Reports finished and forgets the attempt
static void
s_attempt_finish (s_attempt_t *self, int exit_code, const char *reason, Qanat__EndKind kind)
{
    s_attempt_report (self, exit_code, reason, kind);
    s_attempt_destroy (&self);
}

//  True when another attempt of ours already follows this request
static bool
s_claimed_elsewhere (s_attempt_t *self, const char *request_id)
{
    s_attempt_t *other = (s_attempt_t *) zlistx_first (self->backend->front.attempts);
    for (; other; other = (s_attempt_t *) zlistx_next (self->backend->front.attempts))
        if (other != self && other->claimed && streq (other->request_id, request_id))
            return true;
    return false;
}


//  ---------------------------------------------------------------------
//  Signing and endpoints

//  Extra headers of a signed call: the session token, if any
static void
s_signing (s_lambda_t *backend, const s_attempt_t *attempt, const char *service,
           char *sigv4, size_t sigv4_size, char *userpwd, size_t userpwd_size,
           char *token_header, size_t token_size)
{
    snprintf (sigv4, sigv4_size, "aws:amz:%s:%s", attempt->region, service);
    snprintf (userpwd, userpwd_size, "%s:%s", backend->aws.access_key, backend->aws.secret_key);
    if (backend->aws.session_token)
        snprintf (token_header, token_size, "X-Amz-Security-Token: %s",
                  backend->aws.session_token);
    else
        *token_header = '\0';
}

static char *
s_url (const char *base, const char *service, const char *region, const char *path)
{
    char *url = NULL;
    if (base)
        return asprintf (&url, "%s%s", base, path) < 0? NULL: url;
    return asprintf (&url, "https://%s.%s.amazonaws.com%s", service, region, path) < 0
         ? NULL: url;
}

//  Lambda's (or CloudWatch's) error: "Type: message" from the answer
static void
s_engine_error (s_lambda_t *backend, uint64_t call, long status, json_t *body,
                const char *error, char *out, size_t out_size, char *type, size_t type_size)
{
    *type = '\0';
    if (status == 0) {
        snprintf (out, out_size, "%s", error && *error? error: "no answer");
        return;
    }
    char header [160];
    if (qn_rest_header (backend->rest, call, "x-amzn-ErrorType", header, sizeof (header))) {
        header [strcspn (header, ":")] = '\0';
        snprintf (type, type_size, "%.100s", header);
    }
    const char *body_type = json_string_value (json_object_get (body, "__type"));
    if (!*type && body_type)
        snprintf (type, type_size, "%s", strrchr (body_type, '#')? strrchr (body_type, '#') + 1
                                                                  : body_type);
    const char *message = json_string_value (json_object_get (body, "message"));
    if (!message)
        message = json_string_value (json_object_get (body, "Message"));
    snprintf (out, out_size, "%s%s%s (HTTP %ld)", type, *type? ": ": "",
              message? message: "no message", status);
}

static bool
s_expired (const char *type, const char *message)
{
    return streq (type, "ExpiredTokenException") || streq (type, "ExpiredToken")
        || strstr (message, "security token included in the request is expired")
        || strstr (message, "ExpiredToken");
}

//  Reads the credentials again: true when they changed
static bool
s_refresh_credentials (s_lambda_t *backend)
{
    qn_s3_settings_t fresh;
    char error [256];
    if (qn_s3_settings_resolve (&fresh, NULL, NULL, NULL, backend->aws.region, "http://unused",
                                error, sizeof (error)) == -1) {
        qn_log (QN_LOG_WARNING, "lambda", "lambda: cannot read the AWS credentials again: %s",
                error);
        return false;
    }
    bool changed = !streq (fresh.access_key, backend->aws.access_key)
                || !streq (fresh.secret_key, backend->aws.secret_key)
                || !streq (fresh.session_token? fresh.session_token: "",
                           backend->aws.session_token? backend->aws.session_token: "");
    if (changed) {
        qn_s3_settings_clear (&backend->aws);
        backend->aws = fresh;
    }
    else
        qn_s3_settings_clear (&fresh);
    return changed;
}


//  ---------------------------------------------------------------------
//  The invocation

static void s_invoke_done (void *arg, uint64_t call, long status, json_t *body,
                           const char *error);

static void
s_invoke (s_attempt_t *self)
{
    s_lambda_t *backend = self->backend;
    self->next_invoke_ms = 0;
    char *function = qn_rest_escape (self->function);
    char *qualifier = *self->qualifier? qn_rest_escape (self->qualifier): NULL;
    char path [800];
    snprintf (path, sizeof (path), "/2015-03-31/functions/%s/invocations%s%s",
              function? function: "", qualifier? "?Qualifier=": "", qualifier? qualifier: "");
    free (function);
    free (qualifier);
    char *url = s_url (backend->endpoint, "lambda", self->region, path);
    char *context = qn_lambda_client_context (self->base.key.run_id, self->base.key.task_index,
                                              self->base.key.attempt);
    char context_header [400], sigv4 [96], userpwd [512], token [2100];
    snprintf (context_header, sizeof (context_header), "X-Amz-Client-Context: %s",
              context? context: "");
    free (context);
    s_signing (backend, self, "lambda", sigv4, sizeof (sigv4), userpwd, sizeof (userpwd),
               token, sizeof (token));
    const char *headers [] = { "X-Amz-Invocation-Type: RequestResponse",
                               "X-Amz-Log-Type: None", context_header,
                               *token? token: NULL, NULL };
    qn_rest_call_t call = {
        .method = "POST", .url = url, .body = self->payload,
        .body_size = strlen (self->payload), .content_type = "application/json",
        .headers = headers, .timeout_ms = S_INVOKE_TIMEOUT_MS,
        .aws_sigv4 = sigv4, .userpwd = userpwd
    };
    self->invoke_call = url? qn_rest_request (backend->rest, &call, s_invoke_done, self): 0;
    memset (userpwd, 0, sizeof (userpwd));
    memset (token, 0, sizeof (token));
    free (url);
    if (!self->invoke_call)
        s_attempt_finish (self, -1, "lambda: cannot start the invocation (out of memory)",
                          QANAT__END_KIND__END_START_FAILED);
}

//  A transient failure: again after a while, or give up
static void
s_invoke_later (s_attempt_t *self, uint64_t call, long status, const char *message)
{
    if (self->tries + 1 >= self->backend->max_tries) {
        char reason [900];
        snprintf (reason, sizeof (reason), "lambda: %s (gave up after %u tries)", message,
                  self->tries + 1);
        s_attempt_finish (self, -1, reason, QANAT__END_KIND__END_START_FAILED);
        return;
    }
    self->tries++;
    int64_t retry_after = status? qn_rest_retry_after_ms (self->backend->rest, call): -1;
    int64_t wait = qn_rest_backoff_ms (self->tries, retry_after, S_BACKOFF_BASE_MS,
                                       S_BACKOFF_MAX_MS);
    qn_backend_attempt_system_log (&self->base, "lambda: %s; trying again in %.1fs (try %u of %u)",
                                   message, (double) wait / 1000, self->tries + 1,
                                   self->backend->max_tries);
    self->next_invoke_ms = zclock_mono () + (wait > 0? wait: 1);
}

static void
s_invoke_answered (s_attempt_t *self, uint64_t call, json_t *body)
{
    s_lambda_t *backend = self->backend;
    char request_id [QN_LAMBDA_REQUEST_ID_MAX + 1] = "", function_error [64] = "";
    qn_rest_header (backend->rest, call, "x-amzn-RequestId", request_id, sizeof (request_id));
    qn_rest_header (backend->rest, call, "X-Amz-Function-Error", function_error,
                    sizeof (function_error));
    size_t size = 0;
    const char *text = qn_rest_text (backend->rest, call, &size);
    (void) body;
    self->answered = true;
    self->answered_ms = zclock_mono ();
    self->kind = QANAT__END_KIND__END_EXIT;
    if (*function_error) {
        self->exit_code = 1;
        self->stack_trace = qn_lambda_function_error (text, size, function_error, self->reason,
                                                      sizeof (self->reason));
    }
    else {
        const char *values = NULL;
        for (size_t i = 0; self->assign && i < self->assign->n_env; i++)
            if (streq (self->assign->env [i]->key, "QANAT_VALUES"))
                values = self->assign->env [i]->value;
        char error [600] = "";
        if (self->assign
        &&  qn_lambda_write_values (self->assign, text, size, values, error, sizeof (error)) == -1) {
            self->exit_code = 1;
            snprintf (self->reason, sizeof (self->reason), "lambda: %s", error);
        }
    }
    if (*request_id && (!self->claimed || !streq (request_id, self->request_id))) {
        if (self->claimed)
            qn_backend_attempt_system_log (&self->base, "lambda: the invocation was request %s, "
                                           "not %s whose log was followed; following %s",
                                           request_id, self->request_id, request_id);
        //  Find the right request's START from our invoke time on
        self->claimed = false;
        self->report_seen = false;
        free (self->next_token);
        self->next_token = NULL;
    }
    if (*request_id)
        snprintf (self->request_id, sizeof (self->request_id), "%s", request_id);
}

static void
s_invoke_done (void *arg, uint64_t call, long status, json_t *body, const char *error)
{
    s_attempt_t *self = (s_attempt_t *) arg;
    self->invoke_call = 0;
    if (status == 200) {
        s_invoke_answered (self, call, body);
        return;
    }
    char message [700], type [128];
    s_engine_error (self->backend, call, status, body, error, message, sizeof (message),
                    type, sizeof (type));
    if (status == 0) {
        //  Only a connection that was never made is safe to try again: the
        //  function may run for a request whose answer we lost
        if (strstr (message, "connect") || strstr (message, "resolve"))
            s_invoke_later (self, call, status, message);
        else {
            char reason [800];
            snprintf (reason, sizeof (reason), "lambda: the invocation's connection broke: %s "
                      "(the function may have run; its result is unknown)", message);
            s_attempt_finish (self, -1, reason, QANAT__END_KIND__END_EXIT);
        }
        return;
    }
    if (qn_rest_transient (status)) {
        s_invoke_later (self, call, status, message);
        return;
    }
    if (status == 403 && s_expired (type, message) && !self->fresh_credentials) {
        self->fresh_credentials = true;
        if (s_refresh_credentials (self->backend)) {
            qn_backend_attempt_system_log (&self->base, "lambda: %s; trying again with the "
                                           "credentials read again", message);
            self->next_invoke_ms = zclock_mono () + 1;
            return;
        }
    }
    char reason [900];
    snprintf (reason, sizeof (reason), "lambda: %s%s", message,
              status == 403 && s_expired (type, message)
              ? " (refresh the agent's AWS credentials)": "");
    s_attempt_finish (self, -1, reason, QANAT__END_KIND__END_START_FAILED);
}


//  ---------------------------------------------------------------------
//  The log

static void s_logs_done (void *arg, uint64_t call, long status, json_t *body,
                         const char *error);

static void
s_logs_query (s_attempt_t *self)
{
    s_lambda_t *backend = self->backend;
    char group [128];
    snprintf (group, sizeof (group), "/aws/lambda/%s", self->name);
    if (!self->next_token) {
        //  A new query repeats the lines at log_ts; its pages keep its
        //  parameters (CloudWatch wants the same ones with nextToken)
        self->seen_at_ts = 0;
        self->query_claimed = self->claimed;
        self->query_start = self->claimed? self->log_ts: self->invoke_ms - S_START_SLACK_MS;
        if (self->query_start < 0)
            self->query_start = 0;
    }
    json_t *request = json_pack ("{s:s,s:I}", "logGroupName", group, "startTime",
                                 (json_int_t) self->query_start);
    if (request && self->query_claimed)
        json_object_set_new (request, "logStreamNames", json_pack ("[s]", self->stream));
    if (request && self->next_token)
        json_object_set_new (request, "nextToken", json_string (self->next_token));
    char *url = s_url (backend->logs_endpoint, "logs", self->region, "/");
    char sigv4 [96], userpwd [512], token [2100];
    s_signing (backend, self, "logs", sigv4, sizeof (sigv4), userpwd, sizeof (userpwd),
               token, sizeof (token));
    char *text = request? json_dumps (request, JSON_COMPACT): NULL;
    const char *headers [] = { S_LOGS_TARGET, *token? token: NULL, NULL };
    qn_rest_call_t call = {
        .method = "POST", .url = url, .body = text, .body_size = text? strlen (text): 0,
        .content_type = "application/x-amz-json-1.1", .headers = headers,
        .aws_sigv4 = sigv4, .userpwd = userpwd
    };
    self->logs_call = url && text? qn_rest_request (backend->rest, &call, s_logs_done, self): 0;
    memset (userpwd, 0, sizeof (userpwd));
    memset (token, 0, sizeof (token));
    json_decref (request);
    free (text);
    free (url);
    if (!self->logs_call)
        self->next_logs_ms = zclock_mono () + backend->poll_ms;
}

//  One of our stream's lines (a log event may hold several)
static void
s_emit (s_attempt_t *self, const char *message, int64_t ts)
{
    int64_t time_us = ts * 1000;
    const char *line = message;
    while (*line) {
        size_t len = strcspn (line, "\n");
        size_t shown = len;
        while (shown && line [shown - 1] == '\r')
            shown--;
        if (!qn_backend_attempt_metric_line (&self->base, line, shown, time_us))
            qn_backend_attempt_log (&self->base, QANAT__STREAM__STREAM_STDOUT, true, line, shown,
                                    false, time_us);
        line += len + (line [len] == '\n');
    }
}

static void
s_report_metrics (s_attempt_t *self, const qn_lambda_report_t *report, int64_t ts)
{
    const qn_backend_events_t *events = self->backend->front.events;
    void *arg = self->backend->front.arg;
    struct { const char *name; double value; } figures [] = {
        { "lambda_duration_ms", report->duration_ms },
        { "lambda_billed_duration_ms", report->billed_ms },
        { "lambda_max_memory_mb", report->max_memory_mb },
        { "lambda_init_duration_ms", report->init_ms },
    };
    for (size_t i = 0; i < sizeof (figures) / sizeof (figures [0]); i++)
        if (figures [i].value >= 0)
            events->metric (arg, &self->base.key, figures [i].name, figures [i].value, 0, false,
                            ts * 1000);
}

//  One log event, in the order CloudWatch gives them
static void
s_log_event (s_attempt_t *self, const char *stream, int64_t ts, const char *message)
{
    char request_id [QN_LAMBDA_REQUEST_ID_MAX + 1] = "";
    qn_lambda_report_t report;
    qn_lambda_line_t kind = qn_lambda_line (message, request_id, &report);
    if (!self->claimed) {
        bool ours = kind == QN_LAMBDA_LINE_START && ts >= self->invoke_ms - S_START_SLACK_MS
                 && (*self->request_id? streq (request_id, self->request_id)
                                      : !s_claimed_elsewhere (self, request_id));
        if (!ours || strlen (stream) >= sizeof (self->stream))
            return;
        self->claimed = true;
        snprintf (self->request_id, sizeof (self->request_id), "%s", request_id);
        snprintf (self->stream, sizeof (self->stream), "%s", stream);
        self->log_ts = ts;
        self->log_count = 1;
        self->seen_at_ts = 1;
        return;
    }
    if (self->report_seen || !streq (stream, self->stream) || ts < self->log_ts)
        return;
    if (ts == self->log_ts) {
        if (++self->seen_at_ts <= self->log_count)
            return;             //  reported by an earlier query
        self->log_count++;
    }
    else {
        self->log_ts = ts;
        self->log_count = self->seen_at_ts = 1;
    }
    if (kind == QN_LAMBDA_LINE_PLAIN)
        s_emit (self, message, ts);
    else
    if (kind == QN_LAMBDA_LINE_REPORT && streq (request_id, self->request_id)) {
        s_report_metrics (self, &report, ts);
        self->report_seen = true;
    }
    else
    if (kind == QN_LAMBDA_LINE_START)
        self->report_seen = true;   //  the next invocation: ours ended unreported
}

static void
s_logs_done (void *arg, uint64_t call, long status, json_t *body, const char *error)
{
    s_attempt_t *self = (s_attempt_t *) arg;
    s_lambda_t *backend = self->backend;
    self->logs_call = 0;
    if (status != 200) {
        char message [700], type [128];
        s_engine_error (backend, call, status, body, error, message, sizeof (message),
                        type, sizeof (type));
        //  ResourceNotFound: the log group appears with the first line
        bool quiet = qn_rest_transient (status) || streq (type, "ResourceNotFoundException")
                  || streq (type, "ThrottlingException");
        if (!quiet && self->log_tries == 0)
            qn_backend_attempt_system_log (&self->base, "lambda logs: %s", message);
        if (status == 403 && s_expired (type, message))
            s_refresh_credentials (backend);
        self->log_tries++;
        int64_t wait = qn_rest_backoff_ms (self->log_tries, status? qn_rest_retry_after_ms (
                                               backend->rest, call): -1,
                                           backend->poll_ms, S_BACKOFF_MAX_MS);
        self->next_logs_ms = zclock_mono () + wait;
        return;
    }
    self->log_tries = 0;
    json_t *events = json_object_get (body, "events");
    for (size_t i = 0; i < json_array_size (events); i++) {
        json_t *event = json_array_get (events, i);
        const char *stream = json_string_value (json_object_get (event, "logStreamName"));
        const char *message = json_string_value (json_object_get (event, "message"));
        json_t *ts = json_object_get (event, "timestamp");
        if (stream && message && json_is_integer (ts))
            s_log_event (self, stream, json_integer_value (ts), message);
    }
    if (self->claimed) {
        char cursor [QN_BACKEND_CURSOR_MAX + 1];
        int size = snprintf (cursor, sizeof (cursor), "%" PRId64 " %" PRIu64 " %s %s",
                             self->log_ts, self->log_count, self->request_id, self->stream);
        if (size > 0 && (size_t) size < sizeof (cursor))
            qn_backend_attempt_cursor (&self->base, cursor);
    }
    free (self->next_token);
    const char *token = json_string_value (json_object_get (body, "nextToken"));
    //  A claim made in this query's pages: a new query of that stream
    self->next_token = token && !self->report_seen && self->query_claimed == self->claimed
                     ? strdup (token): NULL;
    self->next_logs_ms = self->next_token? zclock_mono (): zclock_mono () + backend->poll_ms;
}


//  ---------------------------------------------------------------------
//  The timer: invocations due, log queries, ends

static void
s_attempt_stop (qn_backend_attempt_t *base, const char *reason, Qanat__EndKind kind)
{
    s_attempt_t *self = (s_attempt_t *) base;
    if (!qn_backend_attempt_stopping (&self->base, reason, kind))
        return;
    char text [700];
    bool left = self->invoke_call || self->answered || self->reattached;
    snprintf (text, sizeof (text), "%s%s", reason, left? S_LEFT: "");
    if (left)
        qn_backend_attempt_system_log (&self->base, "lambda: an invocation cannot be stopped: "
                                       "it is left to finish and its answer is ignored");
    s_attempt_finish (self, -1, text, kind);
}

static void
s_attempt_tick (s_attempt_t *self, int64_t now)
{
    char reason [64];
    if (qn_backend_attempt_overdue (&self->base, now, reason, sizeof (reason))) {
        s_attempt_stop (&self->base, reason, QANAT__END_KIND__END_TIMEOUT);
        return;
    }
    int grace = self->backend->log_grace_ms;
    if (self->answered && (self->report_seen || now - self->answered_ms >= grace)) {
        s_attempt_finish (self, self->exit_code, self->reason, self->kind);
        return;
    }
    if (self->reattached
    &&  (self->report_seen || zclock_time () - self->invoke_ms > S_INVOKE_TIMEOUT_MS + grace)) {
        s_attempt_finish (self, -1, "the agent restarted during the Lambda invocation: its log "
                          "was followed to its end, but a synchronous invocation answers only "
                          "the connection that made it, so its result is unknown",
                          QANAT__END_KIND__END_LOST);
        return;
    }
    if (self->next_invoke_ms && now >= self->next_invoke_ms && !self->invoke_call)
        s_invoke (self);
    else
    if (!self->logs_call && now >= self->next_logs_ms && !self->base.front->paused
    &&  (self->invoke_call || self->answered || self->reattached))
        s_logs_query (self);
}

static void
s_each_tick (qn_backend_attempt_t *attempt, int64_t now)
{
    s_attempt_tick ((s_attempt_t *) attempt, now);
}

static void
s_ensure_timer (s_lambda_t *self)
{
    qn_backend_front_ticking (&self->front, 50, s_each_tick);
}


//  ---------------------------------------------------------------------
//  Starting and re-attaching

//  The task's options into the attempt.  -1 with error.
static int
s_options (s_lambda_t *backend, s_attempt_t *attempt, const Qanat__Assign *assign,
           const char *fallback_function, char *error, size_t error_size)
{
    const char *function = qn_backend_task_option (assign, "function");
    const char *qualifier = qn_backend_task_option (assign, "qualifier");
    const char *region = qn_backend_task_option (assign, "region");
    if (!function)
        function = fallback_function;
    if (!function || !*function || strlen (function) >= sizeof (attempt->function)) {
        snprintf (error, error_size, "lambda: the task names no function (lambda: {function: "
                  "NAME})");
        return -1;
    }
    snprintf (attempt->function, sizeof (attempt->function), "%s", function);
    //  arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER], ACCOUNT:function:NAME
    const char *name = strstr (function, "function:");
    name = name? name + 9: function;
    snprintf (attempt->name, sizeof (attempt->name), "%.*s", (int) strcspn (name, ":"), name);
    snprintf (attempt->qualifier, sizeof (attempt->qualifier), "%s", qualifier? qualifier: "");
    if (!region && strncmp (function, "arn:", 4) == 0) {
        //  An ARN names its region
        const char *at = function;
        for (int colons = 0; colons < 3 && at; colons++)
            at = strchr (at, ':')? strchr (at, ':') + 1: NULL;
        if (at)
            snprintf (attempt->region, sizeof (attempt->region), "%.*s",
                      (int) strcspn (at, ":"), at);
    }
    else
        snprintf (attempt->region, sizeof (attempt->region), "%s",
                  region? region: backend->aws.region);
    if (!*attempt->name || !*attempt->region) {
        snprintf (error, error_size, "lambda: cannot tell the function's name or region");
        return -1;
    }
    return 0;
}

static int
s_lambda_start (void *state, const Qanat__Assign *assign, char *error, size_t error_size)
{
    s_lambda_t *self = (s_lambda_t *) state;
    if (qn_rest_ensure (&self->rest, self->front.loop, "lambda", NULL, NULL, error,
                        error_size) == -1)
        return -1;
    qn_attempt_key_t key;
    if (qn_backend_front_check (&self->front, assign, 0, &key, error, error_size) == -1)
        return -1;
    for (size_t i = 0; i < assign->n_inputs; i++)
        if (assign->inputs [i]->kind != QANAT__ARTIFACT_KIND__ARTIFACT_VALUE
        &&  !streq (assign->inputs [i]->path, ".")) {
            snprintf (error, error_size, "the lambda backend takes value inputs only "
                      "(input '%s' is a file)", assign->inputs [i]->name);
            return -1;
        }
    for (size_t i = 0; i < assign->n_outputs; i++)
        if (!assign->outputs [i]->value) {
            snprintf (error, error_size, "the lambda backend returns value outputs only "
                      "(output '%s' is a file)", assign->outputs [i]->name);
            return -1;
        }
    s_attempt_t *attempt = s_attempt_new (self, &key);
    if (!attempt) {
        snprintf (error, error_size, "out of memory");
        return -1;
    }
    if (s_options (self, attempt, assign, NULL, error, error_size) == -1
    ||  !(attempt->payload = qn_lambda_payload (assign, qn_backend_task_option (assign, "payload"),
                                                error, error_size))
    ||  !(attempt->assign = qn_backend_assign_copy (assign))) {
        if (!*error)
            snprintf (error, error_size, "out of memory");
        s_attempt_destroy (&attempt);
        return -1;
    }
    attempt->base.timeout_s = assign->timeout_s;
    if (assign->timeout_s)
        attempt->base.deadline_ms = zclock_mono () + (int64_t) assign->timeout_s * 1000;
    attempt->invoke_ms = zclock_time ();
    snprintf (attempt->engine_id, sizeof (attempt->engine_id), "%.80s@%" PRId64,
              attempt->name, attempt->invoke_ms);
    attempt->next_invoke_ms = zclock_mono ();
    qn_backend_front_add (&self->front, &attempt->base);
    qn_log (QN_LOG_INFO, "lambda", "attempt %" PRIu64 "/%u/%u: invoking %s%s%s in %s",
            key.run_id, key.task_index, key.attempt, attempt->function,
            *attempt->qualifier? ":": "", attempt->qualifier, attempt->region);
    self->front.events->started (self->front.arg, &key, 0, self->front.host, "",
                                 attempt->engine_id);
    s_ensure_timer (self);
    return 0;
}

//  Follows the log of an invocation an earlier agent process made
static int
s_lambda_reattach (void *state, const Qanat__Assign *assign, const char *engine_job_id,
                   const char *cursor, char *error, size_t error_size)
{
    s_lambda_t *self = (s_lambda_t *) state;
    if (qn_rest_ensure (&self->rest, self->front.loop, "lambda", NULL, NULL, error,
                        error_size) == -1)
        return -1;
    qn_attempt_key_t key;
    if (qn_backend_front_check (&self->front, assign, 0, &key, error, error_size) == -1)
        return -1;
    const char *at = engine_job_id? strrchr (engine_job_id, '@'): NULL;
    char *end = NULL;
    long long invoke_ms = at? strtoll (at + 1, &end, 10): 0;
    if (!at || at == engine_job_id || !end || *end || invoke_ms <= 0) {
        snprintf (error, error_size, "bad lambda job id '%.60s'", engine_job_id? engine_job_id: "");
        return -1;
    }
    char function [100];
    snprintf (function, sizeof (function), "%.*s", (int) (at - engine_job_id), engine_job_id);
    s_attempt_t *attempt = s_attempt_new (self, &key);
    if (!attempt) {
        snprintf (error, error_size, "out of memory");
        return -1;
    }
    if (s_options (self, attempt, assign, function, error, error_size) == -1) {
        s_attempt_destroy (&attempt);
        return -1;
    }
    attempt->invoke_ms = invoke_ms;
    attempt->reattached = true;
    snprintf (attempt->engine_id, sizeof (attempt->engine_id), "%s", engine_job_id);
    long long ts = 0;
    unsigned long long count = 0;
    char request_id [QN_LAMBDA_REQUEST_ID_MAX + 1], stream [256];
    if (cursor && sscanf (cursor, "%lld %llu %63s %255s", &ts, &count, request_id, stream) == 4) {
        attempt->claimed = true;
        attempt->log_ts = ts;
        attempt->log_count = count;
        snprintf (attempt->request_id, sizeof (attempt->request_id), "%s", request_id);
        snprintf (attempt->stream, sizeof (attempt->stream), "%s", stream);
        snprintf (attempt->base.cursor, sizeof (attempt->base.cursor), "%s", cursor);
    }
    qn_backend_front_add (&self->front, &attempt->base);
    qn_backend_attempt_system_log (&attempt->base, "lambda: the agent restarted; following the "
                                   "invocation's log to its end (its result cannot be had)");
    s_ensure_timer (self);
    return 0;
}


//  ---------------------------------------------------------------------
//  The backend

static void
s_engine_destroy (qn_backend_attempt_t *base)
{
    s_attempt_t *self = (s_attempt_t *) base;
    s_attempt_destroy (&self);
}

static void
s_engine_lost (qn_backend_attempt_t *base, const char *reason)
{
    s_attempt_t *self = (s_attempt_t *) base;
    char text [700];
    snprintf (text, sizeof (text), "%s%s", reason, S_LEFT);
    s_attempt_report (self, -1, text, QANAT__END_KIND__END_LOST);
}


static const qn_backend_engine_t s_engine = {
    .name = "lambda",
    .destroy = s_engine_destroy,
    .stop = s_attempt_stop,
    .lost = s_engine_lost
};

static void s_lambda_destroy (void **state_p);

static int
s_number_option (const qn_backend_config_t *config, const char *key, long low, long high,
                 int *value)
{
    const char *text = qn_backend_option (config, "lambda", key);
    if (!text)
        return 0;
    char *end;
    long number = strtol (text, &end, 10);
    if (*text == '\0' || *end || number < low || number > high) {
        qn_log (QN_LOG_ERROR, "lambda", "lambda backend: %s wants %ld to %ld", key, low, high);
        return -1;
    }
    *value = (int) number;
    return 0;
}

static void *
s_lambda_create (zloop_t *loop, const qn_backend_config_t *config,
                 const qn_backend_events_t *events, void *arg)
{
    char error [512];
    if (qn_backend_options_check (config, "lambda", s_known_options, error,
                                  sizeof (error)) == -1) {
        qn_log (QN_LOG_ERROR, "lambda", "lambda backend: %s", error);
        return NULL;
    }
    s_lambda_t *self = (s_lambda_t *) calloc (1, sizeof (s_lambda_t));
    if (!self)
        return NULL;
    self->poll_ms = S_DEFAULT_POLL_MS;
    self->log_grace_ms = S_DEFAULT_LOG_GRACE_MS;
    int max_tries = S_DEFAULT_MAX_TRIES;
    bool ok = qn_backend_front_init (&self->front, &s_engine, loop, config, events, arg) == 0
           && s_number_option (config, "poll_ms", 10, 600000, &self->poll_ms) == 0
           && s_number_option (config, "log_grace_ms", 0, 600000, &self->log_grace_ms) == 0
           && s_number_option (config, "max_tries", 1, 100, &max_tries) == 0;
    self->max_tries = (unsigned) max_tries;
    const char *endpoint = qn_backend_option (config, "lambda", "endpoint");
    const char *logs_endpoint = qn_backend_option (config, "lambda", "logs_endpoint");
    if (ok && endpoint)
        ok = (self->endpoint = strdup (endpoint)) != NULL;
    if (ok && logs_endpoint)
        ok = (self->logs_endpoint = strdup (logs_endpoint)) != NULL;
    //  Credentials and region only from the agent's environment and the
    //  AWS files, never from a workflow
    if (ok && qn_s3_settings_resolve (&self->aws, NULL, NULL, NULL,
                                      qn_backend_option (config, "lambda", "region"),
                                      "http://unused", error, sizeof (error)) == -1) {
        qn_log (QN_LOG_ERROR, "lambda", "lambda backend: %s", error);
        ok = false;
    }
    if (!ok) {
        void *state = self;
        s_lambda_destroy (&state);
        return NULL;
    }
    qn_log (QN_LOG_INFO, "lambda", "lambda backend: region %s, credentials from %s",
            self->aws.region, self->aws.credentials_source);
    return self;
}

static void
s_lambda_destroy (void **state_p)
{
    s_lambda_t *self = (s_lambda_t *) *state_p;
    if (!self)
        return;
    qn_backend_front_fini (&self->front);
    qn_rest_destroy (&self->rest);
    qn_s3_settings_clear (&self->aws);
    free (self->endpoint);
    free (self->logs_endpoint);
    free (self);
    *state_p = NULL;
}

const qn_backend_ops_t qn_backend_lambda = {
    .name = "lambda",
    .flags = QN_BACKEND_CAN_REATTACH | QN_BACKEND_REMOTE,
    .create = s_lambda_create,
    .start = s_lambda_start,
    .reattach = s_lambda_reattach,
    .stop = qn_backend_front_stop,
    .set_paused = qn_backend_front_set_paused,
    .running = qn_backend_front_running,
    .shutdown = qn_backend_front_shutdown,
    .destroy = s_lambda_destroy
};
