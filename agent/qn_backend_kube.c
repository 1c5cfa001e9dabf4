/*  qn_backend_kube - runs attempts as Kubernetes batch/v1 Jobs through the
    API server.  See qn_backend.h for the ops contract, qn_kube_api.h for
    the client and the manifest.

    An attempt is one Job, qanat-<run>-<task>-<attempt>, labelled
    qanat.io/run, qanat.io/task (the index), qanat.io/attempt and
    qanat.io/agent on the Job and on its pod template.  Its Assign maps to
    the Job field by field: argv -> command, env -> env, cpus and
    memory_mb -> requests and limits, gpus -> nvidia.com/gpu,
    timeout_s -> activeDeadlineSeconds; the task's backend options give
    image, namespace, service_account, node_selector, toleration and
    image_pull_secret.  backoffLimit is 0: retries belong to qanat.

    Life of an attempt, all from the agent's zloop:
      POST the Job -> started ("<namespace>/<name>" as engine job id);
      every poll_ms GET the Job, then its pods by label: their status says
      when the container runs (we then follow its log), how it ended
      (qn_kube_outcome) or that it waits on an error such as
      ImagePullBackOff (after pull_grace_ms we delete the Job and finish
      END_START_FAILED);
      finished once the Job completed or failed and its log was read to
      the end (or S_LOG_GRACE_MS after, if the log cannot be had).
    A timeout is the Job's own activeDeadlineSeconds (DeadlineExceeded);
    our timer S_DEADLINE_SLACK_MS later is the backstop: it deletes the Job
    and finishes END_TIMEOUT.  stop deletes the Job (propagationPolicy=
    Background, so its pod goes too) and finishes with the given reason.

    The log.  We GET .../pods/<pod>/log?container=main&follow=true&
    timestamps=true: every line comes as "<RFC 3339 time> <text>".  We
    strip the time and report the text as stdout (Kubernetes mixes both
    streams).  The cursor is "<time> <n>": the time of the last line
    reported and how many lines we reported with exactly that time.  A
    re-attach (or a stream opened again after a broken connection) asks
    for sinceTime=<that time, to the second> and skips every line before
    the cursor's time and the first n at it: no line lost or repeated.

    Metrics.  A container has no $QANAT_METRICS file we can read, so a
    log line
        ::qanat-metric NAME=VALUE [step=N]
    is a metric point (NAME as for qanat metrics, VALUE a number, N an
    integer) and is not shown as a log line; a malformed one is reported
    as a system line.
*/
#include "qn_backend.h"
#include "qn_agent.h"
#include "qn_kube_api.h"
#include "qn_linebuf.h"
#include "qn_metric.h"
#include "qn_msg.h"
#include "qn_stacktrace.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>

#define S_DEFAULT_POLL_MS           1000
#define S_DEFAULT_PULL_GRACE_MS     60000
#define S_DEADLINE_SLACK_MS         5000
#define S_LOG_GRACE_MS              10000
#define S_LOG_TRIES                 3
#define S_DELETE_TRIES              3
#define S_METRIC_PREFIX             "::qanat-metric "
#define S_TIME_MAX                  40

typedef struct _s_kube_t s_kube_t;

typedef struct {
    s_kube_t *backend;
    void *handle;               //  in backend->attempts
    qn_attempt_key_t key;
    char namespace_name [64];
    char job_name [64];
    char engine_id [QN_BACKEND_JOB_ID_MAX + 1];
    char selector [192];
    bool created;               //  the Job exists (created or re-attached)
    bool verified;              //  its labels were checked (re-attach)

    uint64_t create_call;       //  calls in flight, 0 = none
    uint64_t job_call;
    uint64_t pods_call;
    uint64_t log_call;
    uint64_t delete_call;

    json_t *job;                //  the Job as last read
    qn_kube_outcome_t outcome;  //  as last read
    bool terminal;              //  the Job completed or failed
    int64_t terminal_ms;
    bool log_ended_ok;          //  the last stream ended cleanly
    bool log_done;              //  the log was read to its end
    int log_tries;              //  streams that failed after the end
    int64_t pull_error_ms;      //  since when the container waits on an error
    int64_t deadline_ms;        //  our backstop timer; 0 = none
    uint32_t timeout_s;
    char *stop_reason;          //  set by stop, timeout or pull error
    Qanat__EndKind stop_kind;
    int delete_tries;

    qn_linebuf_t *lines;
    qn_stacktrace_t *ring;
    bool continuing;            //  the next piece continues a cut line
    bool skip_line;             //  drop the rest of this line
    bool line_stamped;          //  the line being read had a time
    int64_t line_sec;
    int32_t line_nsec;
    char line_time [S_TIME_MAX + 1];
    int64_t line_time_us;

    char cursor_time [S_TIME_MAX + 1];  //  last reported line's time, "" = none
    int64_t cursor_sec;
    int32_t cursor_nsec;
    uint64_t cursor_count;
    bool cursor_dirty;

    bool resume;                //  skip lines up to the resume point
    int64_t resume_sec;
    int32_t resume_nsec;
    uint64_t resume_count;
    uint64_t resume_seen;
} s_attempt_t;

struct _s_kube_t {
    zloop_t *loop;
    const qn_backend_events_t *events;
    void *arg;
    qn_kube_api_t *api;
    char *host;
    char *agent_name;
    char *namespace_name;
    char *image;
    int poll_ms;
    int pull_grace_ms;
    zlistx_t *attempts;
    int timer_id;
    bool paused;
};

static const char *s_known_options [] = {
    "kubeconfig", "context", "namespace", "image", "poll_ms", "pull_grace_ms", NULL
};

static void s_poll (s_attempt_t *self);
static void s_delete (s_attempt_t *self);


//  ---------------------------------------------------------------------
//  Times

//  Parses an RFC 3339 time ("2024-05-01T10:00:00.123456789Z", or with an
//  offset).  0 on success.
static int
s_parse_time (const char *text, size_t len, int64_t *sec_p, int32_t *nsec_p)
{
    if (len < 20 || len > S_TIME_MAX)
        return -1;
    static const int at [6] = { 0, 5, 8, 11, 14, 17 };
    static const int width [6] = { 4, 2, 2, 2, 2, 2 };
    int field [6];
    for (int f = 0; f < 6; f++) {
        field [f] = 0;
        for (int i = 0; i < width [f]; i++) {
            char c = text [at [f] + i];
            if (c < '0' || c > '9')
                return -1;
            field [f] = field [f] * 10 + (c - '0');
        }
    }
    if (text [4] != '-' || text [7] != '-' || (text [10] != 'T' && text [10] != 't')
    ||  text [13] != ':' || text [16] != ':')
        return -1;
    if (field [1] < 1 || field [1] > 12 || field [2] < 1 || field [2] > 31
    ||  field [3] > 23 || field [4] > 59 || field [5] > 60)
        return -1;
    size_t pos = 19;
    int32_t nsec = 0;
    if (text [pos] == '.') {
        pos++;
        int digits = 0;
        while (pos < len && text [pos] >= '0' && text [pos] <= '9') {
            if (digits < 9) {
                nsec = nsec * 10 + (text [pos] - '0');
                digits++;
            }
            pos++;
        }
        if (digits == 0)
            return -1;
        for (; digits < 9; digits++)
            nsec *= 10;
    }
    int64_t offset = 0;
    if (pos + 1 == len && (text [pos] == 'Z' || text [pos] == 'z'))
        offset = 0;
    else
    if (pos + 6 == len && (text [pos] == '+' || text [pos] == '-') && text [pos + 3] == ':') {
        int hours = 0, minutes = 0;
        for (int i = 1; i <= 5; i++) {
            if (i == 3)
                continue;
            char c = text [pos + i];
            if (c < '0' || c > '9')
                return -1;
            if (i < 3)
                hours = hours * 10 + (c - '0');
            else
                minutes = minutes * 10 + (c - '0');
        }
        if (hours > 23 || minutes > 59)
            return -1;
        offset = (hours * 3600 + minutes * 60) * (text [pos] == '+'? 1: -1);
    }
    else
        return -1;
    struct tm tm;
    memset (&tm, 0, sizeof (tm));
    tm.tm_year = field [0] - 1900;
    tm.tm_mon = field [1] - 1;
    tm.tm_mday = field [2];
    tm.tm_hour = field [3];
    tm.tm_min = field [4];
    tm.tm_sec = field [5];
    time_t seconds = timegm (&tm);
    if (seconds == (time_t) -1)
        return -1;
    *sec_p = (int64_t) seconds - offset;
    *nsec_p = nsec;
    return 0;
}

static int
s_time_cmp (int64_t a_sec, int32_t a_nsec, int64_t b_sec, int32_t b_nsec)
{
    if (a_sec != b_sec)
        return a_sec < b_sec? -1: 1;
    if (a_nsec != b_nsec)
        return a_nsec < b_nsec? -1: 1;
    return 0;
}


//  ---------------------------------------------------------------------
//  Attempt records

static void
s_attempt_destroy (s_attempt_t **self_p)
{
    s_attempt_t *self = *self_p;
    if (!self)
        return;
    qn_kube_api_t *api = self->backend->api;
    qn_kube_api_cancel (api, self->create_call);
    qn_kube_api_cancel (api, self->job_call);
    qn_kube_api_cancel (api, self->pods_call);
    qn_kube_api_cancel (api, self->log_call);
    qn_kube_api_cancel (api, self->delete_call);
    json_decref (self->job);
    qn_linebuf_destroy (&self->lines);
    qn_stacktrace_destroy (&self->ring);
    free (self->stop_reason);
    free (self);
    *self_p = NULL;
}

static s_attempt_t *
s_attempt_new (s_kube_t *backend, const qn_attempt_key_t *key)
{
    s_attempt_t *self = (s_attempt_t *) calloc (1, sizeof (s_attempt_t));
    if (!self)
        return NULL;
    self->backend = backend;
    self->key = *key;
    self->lines = qn_linebuf_new (0);
    self->ring = qn_stacktrace_new (0);
    qn_kube_selector (key->run_id, key->task_index, key->attempt,
                      self->selector, sizeof (self->selector));
    if (!self->lines || !self->ring)
        s_attempt_destroy (&self);
    return self;
}

static s_attempt_t *
s_lookup (s_kube_t *self, const qn_attempt_key_t *key)
{
    s_attempt_t *attempt = (s_attempt_t *) zlistx_first (self->attempts);
    while (attempt) {
        if (attempt->key.run_id == key->run_id
        &&  attempt->key.task_index == key->task_index
        &&  attempt->key.attempt == key->attempt)
            return attempt;
        attempt = (s_attempt_t *) zlistx_next (self->attempts);
    }
    return NULL;
}

static void
s_system_log (s_attempt_t *self, const char *format, ...)
{
    char text [600];
    va_list args;
    va_start (args, format);
    int size = vsnprintf (text, sizeof (text), format, args);
    va_end (args);
    if (size < 0)
        return;
    if ((size_t) size >= sizeof (text))
        size = sizeof (text) - 1;
    self->backend->events->log (self->backend->arg, &self->key, QANAT__STREAM__STREAM_SYSTEM,
                                text, (size_t) size, false, qn_now_us ());
}

//  The message of a Kubernetes Status answer, or the transport error
static void
s_describe_failure (long status, json_t *body, const char *error, char *buffer, size_t size)
{
    const char *message = json_string_value (json_object_get (body, "message"));
    if (status == 0)
        snprintf (buffer, size, "%s", error && *error? error: "no answer");
    else
    if (message && *message)
        snprintf (buffer, size, "HTTP %ld: %.300s", status, message);
    else
        snprintf (buffer, size, "HTTP %ld", status);
}


//  ---------------------------------------------------------------------
//  Finishing

static void s_on_piece (const char *data, size_t size, bool partial, void *arg);

//  Reports finished and forgets the attempt.  Call with nothing of ours
//  on the stack that still uses it.
static void
s_attempt_finish (s_attempt_t *self, int exit_code, const char *reason, Qanat__EndKind kind)
{
    s_kube_t *backend = self->backend;
    qn_linebuf_flush (self->lines, s_on_piece, self);
    if (self->cursor_dirty && backend->events->cursor) {
        char cursor [QN_BACKEND_CURSOR_MAX + 1];
        snprintf (cursor, sizeof (cursor), "%s %" PRIu64, self->cursor_time, self->cursor_count);
        backend->events->cursor (backend->arg, &self->key, cursor);
        self->cursor_dirty = false;
    }
    char *stack_trace = NULL;
    if (exit_code != 0)
        stack_trace = qn_stacktrace_extract (self->ring);
    qn_agent_log (QN_LOG_INFO, "attempt %" PRIu64 "/%u/%u (kubernetes job %s) finished: %s",
                  self->key.run_id, self->key.task_index, self->key.attempt, self->engine_id,
                  reason && *reason? reason: "exit 0");
    zlistx_detach (backend->attempts, self->handle);
    backend->events->finished (backend->arg, &self->key, exit_code, 0,
                               stack_trace? stack_trace: "", reason? reason: "", kind);
    free (stack_trace);
    s_attempt_destroy (&self);
}

//  Finishes after the Job ended on its own, from the last outcome
static void
s_attempt_finish_outcome (s_attempt_t *self)
{
    qn_kube_outcome_t *outcome = &self->outcome;
    if (outcome->state == QN_KUBE_SUCCEEDED && outcome->exit_code == 0) {
        s_attempt_finish (self, 0, "", QANAT__END_KIND__END_EXIT);
        return;
    }
    char reason [700];
    snprintf (reason, sizeof (reason), "kubernetes job %s: %s", self->engine_id,
              *outcome->reason? outcome->reason: "failed");
    s_attempt_finish (self, outcome->exit_code != 0? outcome->exit_code: -1, reason,
                      outcome->timed_out? QANAT__END_KIND__END_TIMEOUT
                                        : QANAT__END_KIND__END_EXIT);
}

//  Stops following the Job: the first reason wins.  Deletes the Job if it
//  exists; finishes once that is done (or right away if there is no Job).
static void
s_attempt_stop (s_attempt_t *self, const char *reason, Qanat__EndKind kind)
{
    if (self->stop_reason)
        return;
    self->stop_reason = strdup (reason? reason: "");
    self->stop_kind = kind;
    qn_kube_api_t *api = self->backend->api;
    qn_kube_api_cancel (api, self->job_call);
    qn_kube_api_cancel (api, self->pods_call);
    qn_kube_api_cancel (api, self->log_call);
    self->job_call = self->pods_call = self->log_call = 0;
    if (self->created)
        s_delete (self);
    else
    if (!self->create_call)
        s_attempt_finish (self, -1, self->stop_reason? self->stop_reason: "", kind);
    //  else the answer to the POST decides
}


//  ---------------------------------------------------------------------
//  The log

static void
s_emit (s_attempt_t *self, const char *data, size_t size, bool partial)
{
    s_kube_t *backend = self->backend;
    qn_stacktrace_add (self->ring, data, size, partial);
    backend->events->log (backend->arg, &self->key, QANAT__STREAM__STREAM_STDOUT,
                          data, size, partial, self->line_time_us);
}

//  "::qanat-metric NAME=VALUE [step=N]" -> a metric event.  Returns true
//  when the line was one (reported or refused), false for a plain line.
static bool
s_metric_line (s_attempt_t *self, const char *text, size_t size)
{
    size_t prefix = strlen (S_METRIC_PREFIX);
    if (size < prefix || memcmp (text, S_METRIC_PREFIX, prefix) != 0)
        return true && false;
    char line [512];
    size_t rest = size - prefix;
    if (rest >= sizeof (line)) {
        s_system_log (self, "ignored metric line: too long");
        return true;
    }
    memcpy (line, text + prefix, rest);
    line [rest] = '\0';
    //  NAME=VALUE [step=N] -> "NAME VALUE [N]" as qanat metric files have it
    char *save = NULL;
    char *pair = strtok_r (line, " \t\r", &save);
    char *step = strtok_r (NULL, " \t\r", &save);
    char *extra = strtok_r (NULL, " \t\r", &save);
    char *equals = pair? strchr (pair, '='): NULL;
    if (!equals || extra || (step && strncmp (step, "step=", 5) != 0)) {
        s_system_log (self, "ignored metric line: want '::qanat-metric name=value [step=N]'");
        return true;
    }
    *equals = '\0';
    char plain [540];
    snprintf (plain, sizeof (plain), "%s %s%s%s", pair, equals + 1, step? " ": "",
              step? step + 5: "");
    char name [QN_METRIC_NAME_MAX + 1];
    double value = 0;
    int64_t step_value = 0;
    bool has_step = false;
    const char *error = NULL;
    if (qn_metric_parse_line (plain, strlen (plain), name, &value, &step_value, &has_step,
                              &error) == 0)
        self->backend->events->metric (self->backend->arg, &self->key, name, value,
                                       step_value, has_step, self->line_time_us);
    else
        s_system_log (self, "ignored metric line: %s", error? error: "invalid line");
    return true;
}

//  One line, or piece of a long line, of the timestamped log
static void
s_on_piece (const char *data, size_t size, bool partial, void *arg)
{
    s_attempt_t *self = (s_attempt_t *) arg;
    if (!self->continuing) {
        const char *space = memchr (data, ' ', size < S_TIME_MAX + 1? size: S_TIME_MAX + 1);
        self->line_stamped = space
            && s_parse_time (data, (size_t) (space - data), &self->line_sec,
                             &self->line_nsec) == 0;
        const char *text = data;
        size_t text_size = size;
        bool skip = false;
        if (self->line_stamped) {
            size_t time_len = (size_t) (space - data);
            memcpy (self->line_time, data, time_len);
            self->line_time [time_len] = '\0';
            text = space + 1;
            text_size = size - time_len - 1;
            self->line_time_us = self->line_sec * 1000000 + self->line_nsec / 1000;
            if (self->resume) {
                int order = s_time_cmp (self->line_sec, self->line_nsec,
                                        self->resume_sec, self->resume_nsec);
                if (order < 0)
                    skip = true;
                else
                if (order == 0 && self->resume_seen < self->resume_count) {
                    self->resume_seen++;
                    skip = true;
                }
                else
                    self->resume = false;
            }
        }
        else
            self->line_time_us = qn_now_us ();
        self->skip_line = skip;
        if (!skip && !partial && s_metric_line (self, text, text_size))
            self->skip_line = true;
        else
        if (!skip)
            s_emit (self, text, text_size, partial);
    }
    else
    if (!self->skip_line)
        s_emit (self, data, size, partial);
    self->continuing = partial;

    //  A whole line is behind us: it counts for the cursor (lines we
    //  skipped were counted before)
    if (!partial && self->line_stamped && !self->skip_line_counted_dummy)
        ;
}
