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

    The work volume.  A pod shares no filesystem with its agent, unless
    the agent is given one: kubernetes.work_claim (a PersistentVolumeClaim,
    ReadWriteMany unless every pod runs on the agent's node) and
    kubernetes.work_dir (where the agent itself has that claim mounted).
    Then each attempt has a directory <work_dir>/<job name> (made afresh
    at start), mounted in the pod at /qanat through a subPath, so that a
    pod sees its own attempt and nothing else:
        /qanat/work     the work directory: the inputs, staged on the
                        volume (<work_dir>/.qanat-stage), are renamed
                        there; the outputs are collected from there
        /qanat/values   $QANAT_VALUES: beside the work directory, where
                        the agent reads values (see qn_backend.h)
    The pod runs in /qanat/work with QANAT_WORKDIR set, and with the
    agent's group as a supplementary group: the attempt's directories are
    group-writable and setgid, so whatever user the image runs as can
    write there and the agent can read back what it wrote.  A pod whose
    claim does not exist stays Pending (Unschedulable); that fails the
    attempt to start after pull_grace_ms, as a pull error does.
*/
#include "qn_backend.h"
#include "qn_fs.h"
#include "qn_log.h"
#include "qn_kube_api.h"
#include "qn_linebuf.h"
#include "qn_msg.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <sys/stat.h>
#include <unistd.h>
#include <string.h>
#include <time.h>

#define S_DEFAULT_POLL_MS           1000
#define S_DEFAULT_PULL_GRACE_MS     60000
#define S_DEADLINE_SLACK_MS         5000
#define S_LOG_GRACE_MS              10000
#define S_LOG_TRIES                 3
#define S_DELETE_TRIES              3
#define S_TIME_MAX                  40
#define S_WORK_VOLUME               "qanat-work"
#define S_WORK_MOUNT                "/qanat"
#define S_WORK_POD_DIR              S_WORK_MOUNT "/work"
#define S_WORK_POD_VALUES           S_WORK_MOUNT "/" QN_BACKEND_VALUES_NAME

typedef struct _s_kube_t s_kube_t;

//  An attempt: the front end's part (no streams: the log is parsed here),
//  then the Job's
typedef struct {
    qn_backend_attempt_t base;  //  base.deadline_ms is our backstop timer
    s_kube_t *backend;
    char namespace_name [64];
    char job_name [64];
    char engine_id [QN_BACKEND_JOB_ID_MAX + 1];
    char selector [192];
    char *attempt_dir;          //  <work_dir>/<job name>, NULL without a work volume
    char *workdir;              //  <attempt_dir>/work
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
    int delete_tries;

    qn_linebuf_t *lines;
    bool continuing;            //  the next piece continues a cut line
    bool skip_line;             //  drop the rest of this line
    bool line_resumed;          //  ...because it was reported before
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
    qn_backend_front_t front;   //  the attempts, in start order
    qn_kube_api_t *api;
    char *agent_name;
    char *namespace_name;
    char *image;
    char *work_claim;           //  the shared work volume's claim, or NULL
    char *work_dir;             //  ...where the agent has it mounted
    char *stage_dir;            //  <work_dir>/.qanat-stage, where inputs are staged
    int poll_ms;
    int pull_grace_ms;
    int timer_id;
};

static const char *s_known_options [] = {
    "kubeconfig", "context", "namespace", "image", "poll_ms", "pull_grace_ms",
    "work_claim", "work_dir", NULL
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
    qn_backend_attempt_fini (&self->base);
    free (self->attempt_dir);
    free (self->workdir);
    free (self);
    *self_p = NULL;
}

static s_attempt_t *
s_attempt_new (s_kube_t *backend, const qn_attempt_key_t *key)
{
    s_attempt_t *self = (s_attempt_t *) calloc (1, sizeof (s_attempt_t));
    if (!self)
        return NULL;
    int rc = qn_backend_attempt_init (&self->base, &backend->front, key, 0);
    self->backend = backend;
    self->lines = qn_linebuf_new (0);
    qn_kube_selector (key->run_id, key->task_index, key->attempt,
                      self->selector, sizeof (self->selector));
    if (rc == -1 || !self->lines)
        s_attempt_destroy (&self);
    return self;
}

static s_attempt_t *
s_lookup (s_kube_t *self, const qn_attempt_key_t *key)
{
    return (s_attempt_t *) qn_backend_front_find (&self->front, key);
}

//  Reports the cursor when a new line moved it
static void
s_report_cursor (s_attempt_t *self)
{
    if (!self->cursor_dirty)
        return;
    char cursor [QN_BACKEND_CURSOR_MAX + 1];
    snprintf (cursor, sizeof (cursor), "%s %" PRIu64, self->cursor_time, self->cursor_count);
    qn_backend_attempt_cursor (&self->base, cursor);
    self->cursor_dirty = false;
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

//  Reports finished, out of the list
static void
s_attempt_report (s_attempt_t *self, int exit_code, const char *reason, Qanat__EndKind kind)
{
    qn_linebuf_flush (self->lines, s_on_piece, self);
    s_report_cursor (self);
    qn_log (QN_LOG_INFO, "kube", "attempt %" PRIu64 "/%u/%u (kubernetes job %s) finished: %s",
                  self->base.key.run_id, self->base.key.task_index, self->base.key.attempt,
                  self->engine_id, reason && *reason? reason: "exit 0");
    if (self->base.handle)
        zlistx_detach (self->backend->front.attempts, self->base.handle);
    self->base.handle = NULL;
    qn_backend_attempt_finished (&self->base, exit_code, 0, reason, kind);
}

//  Reports finished and forgets the attempt.  Call with nothing of ours
//  on the stack that still uses it.
static void
s_attempt_finish (s_attempt_t *self, int exit_code, const char *reason, Qanat__EndKind kind)
{
    s_attempt_report (self, exit_code, reason, kind);
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
s_attempt_stop (qn_backend_attempt_t *base, const char *reason, Qanat__EndKind kind)
{
    s_attempt_t *self = (s_attempt_t *) base;
    if (!qn_backend_attempt_stopping (&self->base, reason, kind))
        return;
    qn_kube_api_t *api = self->backend->api;
    qn_kube_api_cancel (api, self->job_call);
    qn_kube_api_cancel (api, self->pods_call);
    qn_kube_api_cancel (api, self->log_call);
    self->job_call = self->pods_call = self->log_call = 0;
    if (self->created)
        s_delete (self);
    else
    if (!self->create_call)
        s_attempt_finish (self, -1, self->base.stop_reason? self->base.stop_reason: "", kind);
    //  else the answer to the POST decides
}


//  ---------------------------------------------------------------------
//  The log

static void
s_emit (s_attempt_t *self, const char *data, size_t size, bool partial)
{
    //  Kubernetes mixes both streams: all of it may hold the stack trace
    qn_backend_attempt_log (&self->base, QANAT__STREAM__STREAM_STDOUT, true, data, size, partial,
                            self->line_time_us);
}

//  "::qanat-metric NAME=VALUE [step=N]" -> a metric event (the rule every
//  remote backend shares, qn_backend.h)
static bool
s_metric_line (s_attempt_t *self, const char *text, size_t size)
{
    return qn_backend_attempt_metric_line (&self->base, text, size, self->line_time_us);
}

//  One line, or piece of a long line, of the timestamped log
static void
s_on_piece (const char *data, size_t size, bool partial, void *arg)
{
    s_attempt_t *self = (s_attempt_t *) arg;
    if (!self->continuing) {
        size_t look = size < S_TIME_MAX + 1? size: S_TIME_MAX + 1;
        const char *space = (const char *) memchr (data, ' ', look);
        self->line_stamped = space
            && s_parse_time (data, (size_t) (space - data), &self->line_sec,
                             &self->line_nsec) == 0;
        const char *text = data;
        size_t text_size = size;
        self->line_resumed = false;
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
                    self->line_resumed = true;
                else
                if (order == 0 && self->resume_seen < self->resume_count) {
                    self->resume_seen++;
                    self->line_resumed = true;
                }
                else
                    self->resume = false;
            }
        }
        else
            self->line_time_us = qn_now_us ();
        self->skip_line = self->line_resumed;
        if (!self->skip_line) {
            if (!partial && s_metric_line (self, text, text_size))
                self->skip_line = true;
            else
                s_emit (self, text, text_size, partial);
        }
    }
    else
    if (!self->skip_line)
        s_emit (self, data, size, partial);
    self->continuing = partial;

    //  A whole new line is behind us: it moves the cursor
    if (!partial && self->line_stamped && !self->line_resumed) {
        if (self->cursor_count > 0
        &&  s_time_cmp (self->line_sec, self->line_nsec,
                        self->cursor_sec, self->cursor_nsec) == 0)
            self->cursor_count++;
        else {
            snprintf (self->cursor_time, sizeof (self->cursor_time), "%s", self->line_time);
            self->cursor_sec = self->line_sec;
            self->cursor_nsec = self->line_nsec;
            self->cursor_count = 1;
        }
        self->cursor_dirty = true;
    }
}

static int
s_log_data (void *arg, uint64_t call, const char *data, size_t size)
{
    (void) call;
    s_attempt_t *self = (s_attempt_t *) arg;
    qn_linebuf_feed (self->lines, data, size, s_on_piece, self);
    s_report_cursor (self);
    return 0;
}

static void s_log_done (void *arg, uint64_t call, long status, json_t *body, const char *error);

//  Follows the pod's log from the cursor on
static void
s_log_open (s_attempt_t *self, const char *pod)
{
    s_kube_t *backend = self->backend;
    char since [64] = "";
    if (self->cursor_count > 0) {
        //  From the cursor's second on; s_on_piece skips what we had
        time_t seconds = (time_t) self->cursor_sec;
        struct tm tm;
        if (gmtime_r (&seconds, &tm))
            strftime (since, sizeof (since), "&sinceTime=%Y-%m-%dT%H%%3A%M%%3A%SZ", &tm);
        self->resume = true;
        self->resume_sec = self->cursor_sec;
        self->resume_nsec = self->cursor_nsec;
        self->resume_count = self->cursor_count;
        self->resume_seen = 0;
    }
    //  A line cut by a broken stream is over: the next one starts afresh
    qn_linebuf_flush (self->lines, s_on_piece, self);
    self->continuing = false;
    char *path = NULL;
    if (asprintf (&path, "/api/v1/namespaces/%s/pods/%s/log?container=%s&follow=true"
                  "&timestamps=true%s", self->namespace_name, pod, QN_KUBE_CONTAINER,
                  since) < 0)
        return;
    self->log_ended_ok = false;
    self->log_call = qn_kube_api_stream (backend->api, path, s_log_data, s_log_done, self);
    free (path);
    if (self->log_call && backend->front.paused)
        qn_kube_api_pause (backend->api, self->log_call, true);
}

//  Returns true when the attempt finished (and is gone)
static bool
s_maybe_finish (s_attempt_t *self)
{
    if (!self->terminal || self->base.stop_reason)
        return false;
    if (self->log_done || !self->outcome.container_started || !*self->outcome.pod) {
        s_attempt_finish_outcome (self);
        return true;
    }
    return false;
}

static void
s_log_done (void *arg, uint64_t call, long status, json_t *body, const char *error)
{
    (void) call;
    s_attempt_t *self = (s_attempt_t *) arg;
    self->log_call = 0;
    if (status >= 200 && status < 300) {
        //  A follow stream ends when the container ends
        self->log_ended_ok = true;
        if (self->terminal || !self->outcome.container_running)
            self->log_done = true;
    }
    else {
        char text [400];
        s_describe_failure (status, body, error, text, sizeof (text));
        qn_log (QN_LOG_DEBUG, "kube", "kubernetes job %s: log stream ended: %s",
                      self->engine_id, text);
        if (self->terminal && ++self->log_tries >= S_LOG_TRIES) {
            qn_backend_attempt_system_log (&self->base, "the log of kubernetes job %s ends here: %s",
                          self->engine_id, text);
            self->log_done = true;
        }
    }
    if (s_maybe_finish (self))
        return;
    //  Find out at once whether the container ended
    if (!self->log_done && !self->job_call && !self->pods_call && !self->base.stop_reason)
        s_poll (self);
}


//  ---------------------------------------------------------------------
//  Status

static void
s_evaluate (s_attempt_t *self)
{
    s_kube_t *backend = self->backend;
    qn_kube_outcome_t *outcome = &self->outcome;
    int64_t now = zclock_mono ();
    bool ended = outcome->state == QN_KUBE_SUCCEEDED || outcome->state == QN_KUBE_FAILED;
    if (self->log_ended_ok && !self->log_call && outcome->container_started
    &&  !outcome->container_running)
        self->log_done = true;
    if (outcome->container_started && *outcome->pod && !self->log_call && !self->log_done)
        s_log_open (self, outcome->pod);

    if (outcome->state == QN_KUBE_PULL_ERROR) {
        if (!self->pull_error_ms) {
            self->pull_error_ms = now;
            qn_backend_attempt_system_log (&self->base, "kubernetes job %s waits: %s", self->engine_id,
                          outcome->reason);
        }
        if (now - self->pull_error_ms >= backend->pull_grace_ms) {
            char reason [700];
            snprintf (reason, sizeof (reason), "kubernetes job %s: %s", self->engine_id,
                      outcome->reason);
            s_attempt_stop (&self->base, reason, QANAT__END_KIND__END_START_FAILED);
        }
        return;
    }
    self->pull_error_ms = 0;
    if (ended && !self->terminal) {
        self->terminal = true;
        self->terminal_ms = now;
    }
    s_maybe_finish (self);
}

//  A pod the scheduler cannot place because its claim does not exist
//  (the work volume's, the only one we mount) will wait forever, unlike
//  one waiting for room, which an autoscaler may yet make: the first
//  reads as a start error, as a bad image does.
static void
s_check_unschedulable (json_t *pods, qn_kube_outcome_t *outcome)
{
    size_t index;
    json_t *pod;
    json_array_foreach (json_object_get (pods, "items"), index, pod) {
        const char *name = json_string_value (json_object_get (json_object_get (pod,
                                                                "metadata"), "name"));
        if (*outcome->pod && (!name || !streq (name, outcome->pod)))
            continue;
        size_t at;
        json_t *condition;
        json_array_foreach (json_object_get (json_object_get (pod, "status"), "conditions"),
                            at, condition) {
            const char *type = json_string_value (json_object_get (condition, "type"));
            const char *status = json_string_value (json_object_get (condition, "status"));
            const char *reason = json_string_value (json_object_get (condition, "reason"));
            const char *message = json_string_value (json_object_get (condition, "message"));
            if (type && streq (type, "PodScheduled") && status && streq (status, "False")
            &&  reason && streq (reason, "Unschedulable") && message
            &&  strstr (message, "persistentvolumeclaim \"") && strstr (message, "not found")) {
                outcome->state = QN_KUBE_PULL_ERROR;
                snprintf (outcome->reason, sizeof (outcome->reason), "Unschedulable: %.400s",
                          message);
                return;
            }
        }
    }
}

static void
s_pods_done (void *arg, uint64_t call, long status, json_t *body, const char *error)
{
    (void) call;
    s_attempt_t *self = (s_attempt_t *) arg;
    self->pods_call = 0;
    if (self->base.stop_reason)
        return;
    if (status < 200 || status >= 300 || !json_is_object (body)) {
        char text [400];
        s_describe_failure (status, body, error, text, sizeof (text));
        qn_log (QN_LOG_WARNING, "kube", "kubernetes job %s: cannot list its pods: %s",
                      self->engine_id, text);
        return;
    }
    qn_kube_outcome (self->job, body, &self->outcome);
    if (self->outcome.state == QN_KUBE_PENDING)
        s_check_unschedulable (body, &self->outcome);
    s_evaluate (self);
}

//  A re-attached Job must be the attempt's own
static bool
s_labels_match (s_attempt_t *self, json_t *job)
{
    json_t *labels = json_object_get (json_object_get (job, "metadata"), "labels");
    char run [32], task [16], attempt [16];
    snprintf (run, sizeof (run), "%" PRIu64, self->base.key.run_id);
    snprintf (task, sizeof (task), "%u", self->base.key.task_index);
    snprintf (attempt, sizeof (attempt), "%u", self->base.key.attempt);
    const char *have_run = json_string_value (json_object_get (labels, "qanat.io/run"));
    const char *have_task = json_string_value (json_object_get (labels, "qanat.io/task"));
    const char *have_attempt = json_string_value (json_object_get (labels, "qanat.io/attempt"));
    return have_run && streq (have_run, run) && have_task && streq (have_task, task)
        && have_attempt && streq (have_attempt, attempt);
}

static void
s_job_done (void *arg, uint64_t call, long status, json_t *body, const char *error)
{
    (void) call;
    s_attempt_t *self = (s_attempt_t *) arg;
    self->job_call = 0;
    if (self->base.stop_reason)
        return;
    char text [400];
    if (status == 404) {
        snprintf (text, sizeof (text), "kubernetes job %s no longer exists", self->engine_id);
        s_attempt_finish (self, -1, text, QANAT__END_KIND__END_LOST);
        return;
    }
    if (status < 200 || status >= 300 || !json_is_object (body)) {
        s_describe_failure (status, body, error, text, sizeof (text));
        qn_log (QN_LOG_WARNING, "kube", "kubernetes job %s: cannot read it: %s",
                      self->engine_id, text);
        return;
    }
    if (!self->verified) {
        if (!s_labels_match (self, body)) {
            snprintf (text, sizeof (text), "kubernetes job %s belongs to another attempt",
                      self->engine_id);
            self->created = false;      //  not ours: do not delete it
            s_attempt_finish (self, -1, text, QANAT__END_KIND__END_LOST);
            return;
        }
        self->verified = true;
    }
    json_decref (self->job);
    self->job = json_incref (body);
    char *path = NULL;
    if (asprintf (&path, "/api/v1/namespaces/%s/pods?labelSelector=%s",
                  self->namespace_name, self->selector) < 0)
        return;
    self->pods_call = qn_kube_api_request (self->backend->api, "GET", path, NULL,
                                           s_pods_done, self);
    free (path);
}

//  Reads the Job, then its pods (s_job_done, s_pods_done)
static void
s_poll (s_attempt_t *self)
{
    char *path = NULL;
    if (asprintf (&path, "/apis/batch/v1/namespaces/%s/jobs/%s",
                  self->namespace_name, self->job_name) < 0)
        return;
    self->job_call = qn_kube_api_request (self->backend->api, "GET", path, NULL,
                                          s_job_done, self);
    free (path);
}

static void
s_delete_done (void *arg, uint64_t call, long status, json_t *body, const char *error)
{
    (void) call;
    s_attempt_t *self = (s_attempt_t *) arg;
    self->delete_call = 0;
    bool gone = (status >= 200 && status < 300) || status == 404;
    if (!gone) {
        char text [400];
        s_describe_failure (status, body, error, text, sizeof (text));
        if (++self->delete_tries < S_DELETE_TRIES) {
            qn_log (QN_LOG_WARNING, "kube", "kubernetes job %s: cannot delete it (%s), "
                          "trying again", self->engine_id, text);
            return;             //  the tick tries again
        }
        qn_backend_attempt_system_log (&self->base, "cannot delete kubernetes job %s: %s", self->engine_id, text);
    }
    int exit_code = self->outcome.exit_code > 0? self->outcome.exit_code: -1;
    s_attempt_finish (self, exit_code, self->base.stop_reason, self->base.stop_kind);
}

static void
s_delete (s_attempt_t *self)
{
    if (self->delete_call)
        return;
    char *path = NULL;
    if (asprintf (&path, "/apis/batch/v1/namespaces/%s/jobs/%s?propagationPolicy=Background",
                  self->namespace_name, self->job_name) < 0)
        return;
    self->delete_call = qn_kube_api_request (self->backend->api, "DELETE", path, NULL,
                                             s_delete_done, self);
    free (path);
}

//  One step of an attempt, from the tick
static void
s_attempt_tick (s_attempt_t *self, int64_t now)
{
    if (self->base.stop_reason) {
        if (self->created && !self->delete_call)
            s_delete (self);    //  again, after a failure
        return;
    }
    char reason [64];
    if (qn_backend_attempt_overdue (&self->base, now, reason, sizeof (reason))) {
        s_attempt_stop (&self->base, reason, QANAT__END_KIND__END_TIMEOUT);
        return;
    }
    if (self->terminal && now - self->terminal_ms >= S_LOG_GRACE_MS) {
        s_attempt_finish_outcome (self);
        return;
    }
    if (self->created && !self->job_call && !self->pods_call)
        s_poll (self);
}

//  Callbacks may pause or resume us, which walks the list: walk a copy
static int
s_tick (zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    (void) timer_id;
    s_kube_t *self = (s_kube_t *) arg;
    size_t count = zlistx_size (self->front.attempts);
    if (count == 0) {
        zloop_timer_end (self->front.loop, self->timer_id);
        self->timer_id = -1;
        return 0;
    }
    qn_backend_attempt_t **attempts = qn_backend_front_list (&self->front, &count);
    if (!attempts)
        return 0;
    int64_t now = zclock_mono ();
    for (size_t i = 0; i < count; i++) {
        //  An earlier step cannot end another attempt; still, be sure
        if (zlistx_find (self->front.attempts, attempts [i]))
            s_attempt_tick ((s_attempt_t *) attempts [i], now);
    }
    free (attempts);
    return 0;
}

static void
s_ensure_timer (s_kube_t *self)
{
    if (self->timer_id == -1) {
        self->timer_id = zloop_timer (self->front.loop, (size_t) self->poll_ms, 0, s_tick, self);
        if (self->timer_id == -1)
            qn_log (QN_LOG_ERROR, "kube", "kubernetes: cannot start the poll timer");
    }
}


//  ---------------------------------------------------------------------
//  Starting and re-attaching

static void
s_create_done (void *arg, uint64_t call, long status, json_t *body, const char *error)
{
    (void) call;
    s_attempt_t *self = (s_attempt_t *) arg;
    s_kube_t *backend = self->backend;
    self->create_call = 0;
    if (status < 200 || status >= 300) {
        char text [400];
        char reason [600];
        s_describe_failure (status, body, error, text, sizeof (text));
        snprintf (reason, sizeof (reason), "kubernetes job %s: cannot create it: %s",
                  self->engine_id, text);
        if (self->base.stop_reason)
            s_attempt_finish (self, -1, self->base.stop_reason, self->base.stop_kind);
        else
            s_attempt_finish (self, -1, reason, QANAT__END_KIND__END_START_FAILED);
        return;
    }
    self->created = true;
    self->verified = true;
    if (self->base.timeout_s)
        self->base.deadline_ms = zclock_mono () + (int64_t) self->base.timeout_s * 1000
                          + S_DEADLINE_SLACK_MS;
    //  With a work volume, the agent collects outputs from our work
    //  directory after finished
    backend->front.events->started (backend->front.arg, &self->base.key, 0, backend->front.host,
                              self->workdir? self->workdir: "", self->engine_id);
    qn_log (QN_LOG_INFO, "kube", "attempt %" PRIu64 "/%u/%u started as kubernetes job %s",
                  self->base.key.run_id, self->base.key.task_index, self->base.key.attempt, self->engine_id);
    if (self->base.stop_reason)
        s_delete (self);
}

//  Lets the attempt directory's group into the tree: every directory
//  group-writable and setgid (what the pod makes stays in that group),
//  every file group-readable.  Staged files are read-only and may share
//  their inode with the agent's blob cache: only touched when they lack
//  the bit.
static int
s_share_entry (const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void) ftw;
    mode_t want = st->st_mode & 07777;
    if (flag == FTW_D || flag == FTW_DP)
        want |= S_ISGID | S_IRWXG;
    else
    if (flag == FTW_F && S_ISREG (st->st_mode))
        want |= S_IRGRP;
    if (want != (st->st_mode & 07777) && chmod (path, want) == -1)
        return -1;
    return 0;
}

//  The container's environment for the work volume: the agent's own
//  paths out (the stage directory, its values file), the pod's in
static json_t *
s_work_env (json_t *env, bool values)
{
    json_t *result = json_array ();
    size_t index;
    json_t *variable;
    json_array_foreach (env, index, variable) {
        const char *name = json_string_value (json_object_get (variable, "name"));
        if (name && (streq (name, "QANAT_STAGE_DIR") || streq (name, "QANAT_VALUES")
                 ||  streq (name, "QANAT_WORKDIR")))
            continue;
        json_array_append (result, variable);
    }
    json_t *workdir = json_object ();
    json_object_set_new (workdir, "name", json_string ("QANAT_WORKDIR"));
    json_object_set_new (workdir, "value", json_string (S_WORK_POD_DIR));
    json_array_append_new (result, workdir);
    if (values) {
        json_t *variable = json_object ();
        json_object_set_new (variable, "name", json_string ("QANAT_VALUES"));
        json_object_set_new (variable, "value", json_string (S_WORK_POD_VALUES));
        json_array_append_new (result, variable);
    }
    return result;
}

//  Mounts the attempt's directory of the work volume in the Job's pod
static int
s_mount_work (json_t *manifest, const char *claim, const char *job_name, bool values,
              gid_t gid)
{
    json_t *pod = json_object_get (json_object_get (json_object_get (manifest, "spec"), "template"),
                           "spec");
    json_t *container = json_array_get (json_object_get (pod, "containers"), 0);
    if (!json_is_object (pod) || !json_is_object (container))
        return -1;
    json_t *volume = json_pack ("{s:s, s:{s:s}}", "name", S_WORK_VOLUME,
                                "persistentVolumeClaim", "claimName", claim);
    json_t *mount = json_pack ("{s:s, s:s, s:s}", "name", S_WORK_VOLUME,
                               "mountPath", S_WORK_MOUNT, "subPath", job_name);
    json_t *env = s_work_env (json_object_get (container, "env"), values);
    if (!volume || !mount || !env) {
        json_decref (volume);
        json_decref (mount);
        json_decref (env);
        return -1;
    }
    json_object_set_new (pod, "volumes", json_pack ("[o]", volume));
    json_object_set_new (container, "volumeMounts", json_pack ("[o]", mount));
    json_object_set_new (container, "workingDir", json_string (S_WORK_POD_DIR));
    json_object_set_new (container, "env", env);
    //  Whatever user the image runs as, it is in the directory's group
    if (gid != 0)
        json_object_set_new (pod, "securityContext",
                             json_pack ("{s:[I]}", "supplementalGroups", (json_int_t) gid));
    return 0;
}

//  Makes the attempt's directory on the work volume, with the staged
//  inputs as its work directory, and mounts it in the manifest.  -1 with
//  the reason in error.
static int
s_prepare_work (s_kube_t *self, s_attempt_t *attempt, const Qanat__Assign *assign,
                json_t *manifest, char *error, size_t error_size)
{
    bool values = false;
    for (size_t i = 0; i < assign->n_env; i++)
        values = values || (assign->env [i]->key && streq (assign->env [i]->key, "QANAT_VALUES"));
    if (asprintf (&attempt->attempt_dir, "%s/%s", self->work_dir, attempt->job_name) < 0)
        attempt->attempt_dir = NULL;
    if (attempt->attempt_dir && asprintf (&attempt->workdir, "%s/work", attempt->attempt_dir) < 0)
        attempt->workdir = NULL;
    if (!attempt->attempt_dir || !attempt->workdir) {
        snprintf (error, error_size, "out of memory");
        return -1;
    }
    //  Afresh, even when an earlier agent left one behind
    struct stat st;
    if (qn_fs_remove_tree (attempt->attempt_dir) == -1
    ||  mkdir (attempt->attempt_dir, 0700) == -1
    ||  stat (attempt->attempt_dir, &st) == -1) {
        snprintf (error, error_size, "cannot create %s: %s", attempt->attempt_dir,
                  strerror (errno));
        return -1;
    }
    if (qn_backend_make_workdir (assign, attempt->workdir, error, error_size) == -1)
        return -1;
    if (nftw (attempt->attempt_dir, s_share_entry, 16, FTW_PHYS) == -1) {
        snprintf (error, error_size, "cannot open %s to the pod: %s", attempt->attempt_dir,
                  strerror (errno));
        return -1;
    }
    if (s_mount_work (manifest, self->work_claim, attempt->job_name,
                      values, st.st_gid) == -1) {
        snprintf (error, error_size, "out of memory");
        return -1;
    }
    return 0;
}

static int
s_kube_start (void *state, const Qanat__Assign *assign, char *error, size_t error_size)
{
    s_kube_t *self = (s_kube_t *) state;
    assert (self);
    qn_attempt_key_t key;
    if (qn_backend_front_check (&self->front, assign, 0, &key, error, error_size) == -1)
        return -1;
    if (assign->workdir && *assign->workdir) {
        snprintf (error, error_size, "the kubernetes backend cannot run a task in place "
                  "('workdir'): a pod shares no directory with its agent");
        return -1;
    }
    qn_kube_job_defaults_t defaults = { self->namespace_name, self->image, self->agent_name };
    char namespace_name [64];
    json_t *manifest = qn_kube_job_manifest (assign, &defaults, namespace_name,
                                             sizeof (namespace_name), error, error_size);
    if (!manifest)
        return -1;
    s_attempt_t *attempt = s_attempt_new (self, &key);
    if (!attempt) {
        json_decref (manifest);
        snprintf (error, error_size, "out of memory");
        return -1;
    }
    snprintf (attempt->namespace_name, sizeof (attempt->namespace_name), "%s", namespace_name);
    qn_kube_job_name (assign, attempt->job_name, sizeof (attempt->job_name));
    snprintf (attempt->engine_id, sizeof (attempt->engine_id), "%s/%s",
              attempt->namespace_name, attempt->job_name);
    attempt->base.timeout_s = assign->timeout_s;
    if (self->work_claim
    &&  s_prepare_work (self, attempt, assign, manifest, error, error_size) == -1) {
        json_decref (manifest);
        if (attempt->attempt_dir)
            qn_fs_remove_tree (attempt->attempt_dir);
        s_attempt_destroy (&attempt);
        return -1;
    }
    char *path = NULL;
    if (asprintf (&path, "/apis/batch/v1/namespaces/%s/jobs", namespace_name) < 0)
        path = NULL;
    attempt->create_call = path? qn_kube_api_request (self->api, "POST", path, manifest,
                                                      s_create_done, attempt): 0;
    free (path);
    json_decref (manifest);
    if (!attempt->create_call) {
        s_attempt_destroy (&attempt);
        snprintf (error, error_size, "cannot send the request to the API server");
        return -1;
    }
    qn_backend_front_add (&self->front, &attempt->base);
    s_ensure_timer (self);
    return 0;
}

//  "<time> <count>" as s_log_data reports it
static int
s_parse_cursor (const char *cursor, s_attempt_t *attempt)
{
    const char *space = strchr (cursor, ' ');
    if (!space || (size_t) (space - cursor) > S_TIME_MAX)
        return -1;
    int64_t sec;
    int32_t nsec;
    if (s_parse_time (cursor, (size_t) (space - cursor), &sec, &nsec) == -1)
        return -1;
    char *end = NULL;
    errno = 0;
    unsigned long long count = strtoull (space + 1, &end, 10);
    if (errno || !end || *end || end == space + 1 || count == 0 || space [1] == '-')
        return -1;
    memcpy (attempt->cursor_time, cursor, (size_t) (space - cursor));
    attempt->cursor_time [space - cursor] = '\0';
    attempt->cursor_sec = sec;
    attempt->cursor_nsec = nsec;
    attempt->cursor_count = count;
    return 0;
}

static bool
s_dns_name (const char *text, size_t len)
{
    if (len == 0 || len > 63)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = text [i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!alnum && (c != '-' || i == 0 || i == len - 1))
            return false;
    }
    return true;
}

static int
s_kube_reattach (void *state, const Qanat__Assign *assign, const char *engine_job_id,
                 const char *cursor, char *error, size_t error_size)
{
    s_kube_t *self = (s_kube_t *) state;
    assert (self);
    assert (assign && assign->attempt);
    qn_attempt_key_t key = {
        assign->attempt->run_id, assign->attempt->task_index, assign->attempt->attempt
    };
    if (s_lookup (self, &key)) {
        snprintf (error, error_size, "attempt is already followed");
        return -1;
    }
    const char *slash = engine_job_id? strchr (engine_job_id, '/'): NULL;
    if (!slash || !s_dns_name (engine_job_id, (size_t) (slash - engine_job_id))
    ||  !s_dns_name (slash + 1, strlen (slash + 1))) {
        snprintf (error, error_size, "invalid kubernetes job id '%.100s' (want namespace/name)",
                  engine_job_id? engine_job_id: "");
        return -1;
    }
    s_attempt_t *attempt = s_attempt_new (self, &key);
    if (!attempt) {
        snprintf (error, error_size, "out of memory");
        return -1;
    }
    snprintf (attempt->namespace_name, sizeof (attempt->namespace_name), "%.*s",
              (int) (slash - engine_job_id), engine_job_id);
    snprintf (attempt->job_name, sizeof (attempt->job_name), "%s", slash + 1);
    snprintf (attempt->engine_id, sizeof (attempt->engine_id), "%s", engine_job_id);
    if (cursor && *cursor && s_parse_cursor (cursor, attempt) == -1) {
        s_attempt_destroy (&attempt);
        snprintf (error, error_size, "invalid kubernetes log cursor '%.100s'", cursor);
        return -1;
    }
    attempt->created = true;
    attempt->base.timeout_s = assign->timeout_s;
    //  With a work volume, the attempt's directory (outputs and values)
    //  is still there for the agent, which kept where it is in its spool.
    //  We do not know when it started: the Job's own deadline is the
    //  timeout, ours only a late backstop
    if (assign->timeout_s)
        attempt->base.deadline_ms = zclock_mono () + (int64_t) assign->timeout_s * 1000
                             + S_DEADLINE_SLACK_MS;
    qn_backend_front_add (&self->front, &attempt->base);
    s_ensure_timer (self);
    s_poll (attempt);
    qn_log (QN_LOG_INFO, "kube", "attempt %" PRIu64 "/%u/%u: following kubernetes job %s again "
                  "from '%s'", key.run_id, key.task_index, key.attempt, engine_job_id,
                  cursor? cursor: "");
    return 0;
}


//  ---------------------------------------------------------------------
//  The rest of the ops table

static int
s_parse_ms (const char *text, int min, int max, int *value_p)
{
    char *end = NULL;
    errno = 0;
    long value = strtol (text, &end, 10);
    if (errno || !end || *end || end == text || value < min || value > max)
        return -1;
    *value_p = (int) value;
    return 0;
}

static void s_kube_destroy (void **state_p);

//  A PersistentVolumeClaim's name: a DNS-1123 subdomain
static bool
s_dns_subdomain (const char *text)
{
    size_t len = strlen (text);
    if (len == 0 || len > 253)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = text [i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!alnum && ((c != '-' && c != '.') || i == 0 || i == len - 1))
            return false;
    }
    return true;
}

//  kubernetes.work_claim and kubernetes.work_dir: both or neither; the
//  directory must be there, ours to write.  0, or -1 after logging why.
static int
s_work_options (s_kube_t *self, const qn_backend_config_t *config)
{
    const char *claim = qn_backend_option (config, "kubernetes", "work_claim");
    const char *dir = qn_backend_option (config, "kubernetes", "work_dir");
    if (claim && !*claim)
        claim = NULL;
    if (dir && !*dir)
        dir = NULL;
    if (!claim && !dir)
        return 0;
    if (!claim || !dir) {
        qn_log (QN_LOG_ERROR, "kube", "kubernetes backend: work_claim and work_dir go together "
                      "(the shared work volume's claim, and where this agent has it mounted)");
        return -1;
    }
    if (!s_dns_subdomain (claim)) {
        qn_log (QN_LOG_ERROR, "kube", "kubernetes backend: invalid work_claim '%.100s' (want "
                      "a PersistentVolumeClaim name)", claim);
        return -1;
    }
    struct stat st;
    if (dir [0] != '/') {
        qn_log (QN_LOG_ERROR, "kube", "kubernetes backend: work_dir '%.200s' is not an "
                      "absolute path", dir);
        return -1;
    }
    errno = 0;
    if (stat (dir, &st) == -1 || !S_ISDIR (st.st_mode)) {
        qn_log (QN_LOG_ERROR, "kube", "kubernetes backend: work_dir %.200s is not a "
                      "directory%s%s", dir, errno? ": ": "", errno? strerror (errno): "");
        return -1;
    }
    if (access (dir, W_OK | X_OK) == -1) {
        qn_log (QN_LOG_ERROR, "kube", "kubernetes backend: work_dir %.200s is not writable by "
                      "this agent: %s", dir, strerror (errno));
        return -1;
    }
    self->work_claim = strdup (claim);
    self->work_dir = strdup (dir);
    if (!self->work_claim || !self->work_dir)
        return -1;
    //  "/mnt/work/" and "/mnt/work" name one directory
    size_t len = strlen (self->work_dir);
    while (len > 1 && self->work_dir [len - 1] == '/')
        self->work_dir [--len] = '\0';
    if (asprintf (&self->stage_dir, "%s/.qanat-stage", self->work_dir) < 0) {
        self->stage_dir = NULL;
        return -1;
    }
    qn_log (QN_LOG_INFO, "kube", "kubernetes backend: work volume %s, mounted here at %s",
                  self->work_claim, self->work_dir);
    return 0;
}

static void
s_engine_destroy (qn_backend_attempt_t *base)
{
    s_attempt_t *attempt = (s_attempt_t *) base;
    s_attempt_destroy (&attempt);
}

static void
s_engine_pause (qn_backend_attempt_t *base, bool paused)
{
    s_attempt_t *attempt = (s_attempt_t *) base;
    if (attempt->log_call)
        qn_kube_api_pause (attempt->backend->api, attempt->log_call, paused);
}

static void s_engine_end_all (qn_backend_front_t *front, int grace_ms, const char *reason);
static void s_engine_lost (qn_backend_attempt_t *base, const char *reason);

static const qn_backend_engine_t s_engine = {
    .name = "kubernetes",
    .destroy = s_engine_destroy,
    .stop = s_attempt_stop,
    .pause = s_engine_pause,
    .end_all = s_engine_end_all,
    .lost = s_engine_lost
};

static void *
s_kube_create (zloop_t *loop, const qn_backend_config_t *config,
               const qn_backend_events_t *events, void *arg)
{
    assert (loop);
    assert (config);
    assert (events);
    char error [512];
    if (qn_backend_options_check (config, "kubernetes", s_known_options,
                                  error, sizeof (error)) == -1) {
        qn_log (QN_LOG_ERROR, "kube", "kubernetes backend: %s", error);
        return NULL;
    }
    s_kube_t *self = (s_kube_t *) calloc (1, sizeof (s_kube_t));
    if (!self)
        return NULL;
    int rc = qn_backend_front_init (&self->front, &s_engine, loop, config, events, arg);
    self->timer_id = -1;
    self->poll_ms = S_DEFAULT_POLL_MS;
    self->pull_grace_ms = S_DEFAULT_PULL_GRACE_MS;
    self->agent_name = strdup (config->agent_name? config->agent_name: "");
    const char *poll_ms = qn_backend_option (config, "kubernetes", "poll_ms");
    const char *pull_grace_ms = qn_backend_option (config, "kubernetes", "pull_grace_ms");
    const char *image = qn_backend_option (config, "kubernetes", "image");
    bool ok = rc == 0 && self->agent_name;
    if (ok && poll_ms && s_parse_ms (poll_ms, 10, 600000, &self->poll_ms) == -1) {
        qn_log (QN_LOG_ERROR, "kube", "kubernetes backend: poll_ms wants 10 to 600000");
        ok = false;
    }
    if (ok && pull_grace_ms
    &&  s_parse_ms (pull_grace_ms, 0, 86400000, &self->pull_grace_ms) == -1) {
        qn_log (QN_LOG_ERROR, "kube", "kubernetes backend: pull_grace_ms wants 0 to 86400000");
        ok = false;
    }
    if (ok && image && *image)
        ok = (self->image = strdup (image)) != NULL;
    if (ok)
        ok = s_work_options (self, config) == 0;
    qn_kube_config_t *kube_config = NULL;
    if (ok) {
        kube_config = qn_kube_config_resolve (qn_backend_option (config, "kubernetes",
                                                                 "kubeconfig"),
                                              qn_backend_option (config, "kubernetes",
                                                                 "context"),
                                              error, sizeof (error));
        if (!kube_config) {
            qn_log (QN_LOG_ERROR, "kube", "kubernetes backend: %s", error);
            ok = false;
        }
    }
    if (ok) {
        const char *namespace_name = qn_backend_option (config, "kubernetes", "namespace");
        if (!namespace_name || !*namespace_name)
            namespace_name = kube_config->namespace_name;
        if (!namespace_name || !*namespace_name)
            namespace_name = "default";
        ok = (self->namespace_name = strdup (namespace_name)) != NULL;
    }
    if (ok) {
        qn_log (QN_LOG_INFO, "kube", "kubernetes backend: API server %s, namespace %s",
                      kube_config->server, self->namespace_name);
        self->api = qn_kube_api_new (loop, &kube_config);
        ok = self->api != NULL;
    }
    qn_kube_config_destroy (&kube_config);
    if (!ok) {
        void *state = self;
        s_kube_destroy (&state);
        return NULL;
    }
    return self;
}

//  Shutdown: every Job goes, within the grace.  Blocking on purpose: we
//  are leaving.
static void
s_engine_end_all (qn_backend_front_t *front, int grace_ms, const char *reason)
{
    (void) reason;
    s_kube_t *self = (s_kube_t *) front;
    int64_t end_ms = zclock_mono () + (grace_ms > 0? grace_ms: 0);
    s_attempt_t *attempt = (s_attempt_t *) zlistx_first (self->front.attempts);
    for (; attempt; attempt = (s_attempt_t *) zlistx_next (self->front.attempts)) {
        bool may_exist = attempt->created || attempt->create_call;
        qn_kube_api_cancel (self->api, attempt->create_call);
        qn_kube_api_cancel (self->api, attempt->job_call);
        qn_kube_api_cancel (self->api, attempt->pods_call);
        qn_kube_api_cancel (self->api, attempt->log_call);
        qn_kube_api_cancel (self->api, attempt->delete_call);
        attempt->create_call = attempt->job_call = attempt->pods_call = 0;
        attempt->log_call = attempt->delete_call = 0;
        int64_t left = end_ms - zclock_mono ();
        if (may_exist && left > 0) {
            char path [256];
            char error [300];
            snprintf (path, sizeof (path),
                      "/apis/batch/v1/namespaces/%s/jobs/%s?propagationPolicy=Background",
                      attempt->namespace_name, attempt->job_name);
            long status = qn_kube_api_request_sync (self->api, "DELETE", path, NULL,
                                                    (int) left, error, sizeof (error));
            if ((status < 200 || status >= 300) && status != 404)
                qn_log (QN_LOG_WARNING, "kube", "kubernetes job %s: cannot delete it: %s",
                              attempt->engine_id,
                              status? "the API server refused": error);
        }
        else
        if (may_exist)
            qn_log (QN_LOG_WARNING, "kube", "kubernetes job %s: no time left to delete it",
                          attempt->engine_id);
    }
}

//  Shutdown, then: the log read so far, then report
static void
s_engine_lost (qn_backend_attempt_t *base, const char *reason)
{
    s_attempt_report ((s_attempt_t *) base, -1, reason, QANAT__END_KIND__END_LOST);
}

static void
s_kube_destroy (void **state_p)
{
    assert (state_p);
    s_kube_t *self = (s_kube_t *) *state_p;
    if (!self)
        return;
    qn_backend_front_fini (&self->front);
    qn_kube_api_destroy (&self->api);
    if (self->timer_id != -1)
        zloop_timer_end (self->front.loop, self->timer_id);
    free (self->agent_name);
    free (self->namespace_name);
    free (self->image);
    free (self->work_claim);
    free (self->work_dir);
    free (self->stage_dir);
    free (self);
    *state_p = NULL;
}

static const char *
s_kube_no_files (void *state)
{
    s_kube_t *self = (s_kube_t *) state;
    return self && self->work_claim? NULL
         : "a pod shares no filesystem with its agent unless the agent has a shared work "
           "volume (--backend-option kubernetes.work_claim=PVC --backend-option "
           "kubernetes.work_dir=PATH)";
}

//  With a work volume, inputs are staged on it (out of every pod's
//  subPath), so that they become an attempt's work directory by a rename
static const char *
s_kube_stage_dir (void *state)
{
    s_kube_t *self = (s_kube_t *) state;
    return self && self->work_claim? self->stage_dir: NULL;
}

const qn_backend_ops_t qn_backend_kube = {
    .name = "kubernetes",
    .flags = QN_BACKEND_CAN_REATTACH | QN_BACKEND_REMOTE,
    .no_files = s_kube_no_files,
    .stage_dir = s_kube_stage_dir,
    .create = s_kube_create,
    .start = s_kube_start,
    .reattach = s_kube_reattach,
    .stop = qn_backend_front_stop,
    .set_paused = qn_backend_front_set_paused,
    .running = qn_backend_front_running,
    .shutdown = qn_backend_front_shutdown,
    .destroy = s_kube_destroy
};
