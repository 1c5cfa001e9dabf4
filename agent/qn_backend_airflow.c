/*  qn_backend_airflow - runs attempts as DAG runs of an existing Airflow
    DAG, through Airflow 2's stable REST API (/api/v1).  See qn_backend.h
    for the ops contract.

    An attempt is one DAG run of the task's airflow.dag_id whose
    dag_run_id is qanat-<run>-<task index>-<attempt>: POST .../dagRuns with that
    id and conf = the task's airflow.conf mapping plus "qanat": {run,
    task, task_name, attempt, agent, inputs: {NAME: value}} (the value
    inputs).  Airflow refuses a second run with a known dag_run_id (409).
    The engine job id is reported before the trigger (qn_backend.h,
    "Submit, then record?"): a re-attach reads that run, triggers it when
    Airflow does not know it (404), and a trigger that finds it checks
    that its conf names this attempt and follows it, so the DAG never
    runs twice for one attempt.
    The engine job id is "<dag_id>/<dag_run_id>".

    Every poll_ms: GET the DAG run (queued, running, success, failed),
    its task instances (limit and offset, page after page), then the log of the one being followed, page by
    page (continuation_token), try by try.  Task instances are followed
    one after the other in the order they started (start_date, then
    task_id); a task instance's tries in order.  The cursor is "K T B":
    K task instances followed to their end, try T of the next, B bytes of
    that try's log handed out as whole lines.  Airflow's tokens cannot be
    kept (they are its own, signed), so a re-attach reads try T again from
    its start and skips B bytes: no line lost or repeated.

    Lines: Airflow writes "[time] {file.py:N} LEVEL - text"; qanat's
    marker lines (qn_remote.h) are looked for in the text.  stop PATCHes
    the DAG run's state to failed (Airflow then fails its running task
    instances and skips the rest).  A failed run ends with the failed task
    instance named in the reason and its log's last lines as the stack
    trace (the ring of traced lines: that log is the last one followed).

    Throttling and outages as in qn_backend_ray: 429, 5xx or no answer
    are tried again no sooner than Retry-After; 401/403 re-read the
    credentials and fail after S_AUTH_TRIES with Airflow's own message.
*/
#include "qn_backend.h"
#include "qn_remote.h"
#include "qn_log.h"
#include "qn_msg.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

#define S_TRIGGER_TRIES         8
#define S_POLL_TRIES            30
#define S_PAGES_PER_TICK        50          //  log pages read in one go at most
#define S_LINE_MAX              (64 * 1024)
#define S_INSTANCES_PAGE        100         //  Airflow's default and usual maximum_page_limit
#define S_INSTANCES_MAX         10000       //  task instances of one run read at most

typedef struct {
    qn_remote_attempt_t base;   //  first; base.id is the dag_run_id
    char dag_id [QN_BACKEND_JOB_ID_MAX + 1];
    char *dag_path;             //  <url>/api/v1/dags/<dag>/dagRuns/<run>, escaped
    json_t *trigger;            //  the body, kept for tries again
    char state [16];            //  the run's, as last read
    json_t *instances;          //  its started task instances as last read, in order
    json_t *listing;            //  the pages of the task instance list read so far
    //  Where the log stands
    size_t followed;            //  K: task instances read to their end
    int try_number;             //  T, from 1
    int64_t taken;              //  B: bytes of the try handed out as whole lines
    int64_t skip;               //  after a re-attach: bytes to drop first
    int64_t received;           //  bytes of the try received
    char *carry;                //  the start of a line whose end is yet to come
    size_t carry_size;
    char *token;                //  the next page's continuation_token, or NULL
    int pages;
    char failed_task [256];     //  the last task instance seen failed
    char *xcom_task;            //  airflow.xcom_task: its XCom gives value outputs
    char *xcom_key;             //  airflow.xcom_key, default return_value
    char *sole_output;          //  the one value output, when there is one
    bool xcom_read;
} s_attempt_t;


static void s_log_next (s_attempt_t *self);
static void s_instances_done (void *arg, uint64_t call, long status, json_t *body,
                              const char *error);


//  ---------------------------------------------------------------------
//  Attempt records

static void
s_attempt_destroy (qn_remote_attempt_t *base)
{
    s_attempt_t *self = (s_attempt_t *) base;
    qn_remote_attempt_fini (&self->base);
    json_decref (self->trigger);
    json_decref (self->instances);
    json_decref (self->listing);
    free (self->xcom_task);
    free (self->xcom_key);
    free (self->sole_output);
    free (self->dag_path);
    free (self->carry);
    free (self->token);
    free (self);
}

static s_attempt_t *
s_attempt_new (qn_remote_t *backend, const qn_attempt_key_t *key, const char *dag_id,
               const char *id)
{
    s_attempt_t *self = (s_attempt_t *) calloc (1, sizeof (s_attempt_t));
    if (!self)
        return NULL;
    self->try_number = 1;
    int rc = qn_remote_attempt_init (&self->base, backend, key, id);
    snprintf (self->dag_id, sizeof (self->dag_id), "%s", dag_id);
    snprintf (self->base.engine_id, sizeof (self->base.engine_id), "%s/%s", dag_id,
              self->base.id);
    char *dag = qn_rest_escape (dag_id);
    self->dag_path = dag? zsys_sprintf ("%s/api/v1/dags/%s/dagRuns/%s", backend->url, dag,
                                        self->base.id): NULL;
    free (dag);
    if (rc == -1 || !self->dag_path
    ||  strlen (dag_id) + 1 + strlen (self->base.id) > QN_BACKEND_JOB_ID_MAX) {
        s_attempt_destroy (&self->base);
        return NULL;
    }
    return self;
}

static void s_xcom_done (void *arg, uint64_t call, long status, json_t *body,
                         const char *error);

static void
s_finish_outcome (s_attempt_t *self)
{
    if (streq (self->state, "success") && self->xcom_task && !self->xcom_read) {
        //  The values first: GET .../taskInstances/<task>/xcomEntries/<key>
        char *task = qn_rest_escape (self->xcom_task);
        char *key = qn_rest_escape (self->xcom_key);
        char url [1400];
        snprintf (url, sizeof (url), "%s/taskInstances/%s/xcomEntries/%s", self->dag_path,
                  task? task: "", key? key: "");
        free (task);
        free (key);
        qn_remote_request (&self->base, "GET", url, NULL, s_xcom_done);
        return;
    }
    if (streq (self->state, "success")) {
        qn_remote_finish (&self->base, 0, "", QANAT__END_KIND__END_EXIT);
        return;
    }
    char reason [600];
    if (*self->failed_task)
        snprintf (reason, sizeof (reason), "airflow dag run %s: failed (task %s failed)",
                  self->base.engine_id, self->failed_task);
    else
        snprintf (reason, sizeof (reason), "airflow dag run %s: %s", self->base.engine_id,
                  self->state);
    qn_remote_finish (&self->base, 1, reason, QANAT__END_KIND__END_EXIT);
}

#define S_REPLY \
    s_attempt_t *self = (s_attempt_t *) arg; \
    self->base.call = 0; \
    qn_remote_reply_t answer; \
    qn_remote_reply (self->base.engine->rest, call, status, body, error, &answer); \
    const qn_remote_reply_t *reply = &answer

static bool
s_ok (const qn_remote_reply_t *reply)
{
    return reply->status >= 200 && reply->status < 300 && json_is_object (reply->json);
}

//  started, with the run's grid view as its page
static void
s_announce (s_attempt_t *self)
{
    char *dag = qn_rest_escape (self->dag_id);
    char url [900];
    snprintf (url, sizeof (url), "%s/dags/%s/grid?dag_run_id=%s", self->base.engine->url,
              dag? dag: "", self->base.id);
    free (dag);
    qn_remote_started (&self->base, url);
}

//  A run found by its dag_run_id must be this attempt's own
static bool
s_conf_match (s_attempt_t *self, json_t *run)
{
    json_t *qanat = json_object_get (json_object_get (run, "conf"), "qanat");
    char text [32];
    snprintf (text, sizeof (text), "%" PRIu64, self->base.base.key.run_id);
    const char *have = json_string_value (json_object_get (qanat, "run"));
    if (!have || !streq (have, text))
        return false;
    snprintf (text, sizeof (text), "%u", self->base.base.key.task_index);
    have = json_string_value (json_object_get (qanat, "task"));
    if (!have || !streq (have, text))
        return false;
    snprintf (text, sizeof (text), "%u", self->base.base.key.attempt);
    have = json_string_value (json_object_get (qanat, "attempt"));
    return have && streq (have, text);
}


//  ---------------------------------------------------------------------
//  The log

//  Where the task's own text starts in "[time] {file.py:N} LEVEL - text"
static size_t
s_payload (const char *line, size_t size)
{
    if (size < 4 || line [0] != '[')
        return 0;
    const char *close = (const char *) memchr (line, ']', size < 64? size: 64);
    if (!close || (size_t) (close - line) + 3 > size || close [1] != ' ' || close [2] != '{')
        return 0;
    size_t at = (size_t) (close - line) + 3;
    const char *brace = (const char *) memchr (line + at, '}', size - at < 256? size - at: 256);
    if (!brace)
        return 0;
    at = (size_t) (brace - line) + 1;
    for (size_t i = at; i + 3 <= size && i < at + 24; i++)
        if (memcmp (line + i, " - ", 3) == 0)
            return i + 3;
    return 0;
}

static void
s_line (s_attempt_t *self, const char *line, size_t size, int64_t end_at)
{
    //  Lines a re-attached agent had handed out already are dropped
    if (end_at <= self->skip)
        return;
    qn_remote_log_line (&self->base.base, self->base.values, line, size, s_payload (line, size),
                        qn_now_us ());
}

static void
s_report_cursor (s_attempt_t *self)
{
    char cursor [64];
    //  Never behind what an earlier agent reported (while re-reading)
    snprintf (cursor, sizeof (cursor), "%zu %d %" PRId64, self->followed, self->try_number,
              self->taken > self->skip? self->taken: self->skip);
    qn_backend_attempt_cursor (&self->base.base, cursor);
}

//  A page of the try's log: whole lines go out, the rest waits
static void
s_take (s_attempt_t *self, const char *data, size_t size, bool end)
{
    self->received += (int64_t) size;
    if (size) {
        char *grown = (char *) realloc (self->carry, self->carry_size + size);
        if (!grown)
            return;
        self->carry = grown;
        memcpy (self->carry + self->carry_size, data, size);
        self->carry_size += size;
    }
    size_t at = 0;
    while (at < self->carry_size) {
        const char *start = self->carry + at;
        const char *newline = (const char *) memchr (start, '\n', self->carry_size - at);
        size_t len = newline? (size_t) (newline - start): self->carry_size - at;
        if (!newline && !end && len < S_LINE_MAX)
            break;
        if (len > S_LINE_MAX)
            len = S_LINE_MAX;
        size_t used = len + (newline && start + len == newline? 1: 0);
        s_line (self, start, len, self->taken + (int64_t) used);
        self->taken += (int64_t) used;
        at += used;
    }
    if (at && self->carry_size > at)
        memmove (self->carry, self->carry + at, self->carry_size - at);
    self->carry_size -= at;
    s_report_cursor (self);
}

//  True when the task instance is past the try being read (as last
//  listed): its log will not grow
static bool
s_try_done (s_attempt_t *self, json_t *instance)
{
    json_int_t tries = json_integer_value (json_object_get (instance, "try_number"));
    const char *state = json_string_value (json_object_get (instance, "state"));
    return self->try_number < tries
        || (state && !streq (state, "running") && !streq (state, "queued")
                  && !streq (state, "scheduled") && !streq (state, "deferred")
                  && !streq (state, "restarting") && !streq (state, "up_for_reschedule"));
}

//  The try's log was read to its end: the next try, or the next task
//  instance
static bool
s_try_over (s_attempt_t *self, json_t *instance)
{
    json_int_t tries = json_integer_value (json_object_get (instance, "try_number"));
    const char *state = json_string_value (json_object_get (instance, "state"));
    bool over = state && (streq (state, "success") || streq (state, "failed")
                      ||  streq (state, "skipped") || streq (state, "upstream_failed")
                      ||  streq (state, "removed"));
    if (self->try_number < tries)
        self->try_number++;
    else
    if (over) {
        self->followed++;
        self->try_number = 1;
    }
    else
        return false;           //  up for retry: the next try is not there yet
    free (self->token);
    self->token = NULL;
    self->taken = self->received = self->skip = 0;
    s_report_cursor (self);
    return true;
}

static void
s_log_done (void *arg, uint64_t call, long status, json_t *body, const char *error)
{
    S_REPLY;
    json_t *instance = json_array_get (self->instances, self->followed);
    bool try_over = s_try_done (self, instance);
    if (!s_ok (reply)) {
        if (reply->status == 404) {
            //  No log for this try: none will come if it is over, else
            //  the next poll asks again
            self->base.tries = 0;
            if (try_over && s_try_over (self, instance))
                s_log_next (self);
            return;
        }
        qn_remote_trouble (&self->base, reply, "read a task log", S_POLL_TRIES, QANAT__END_KIND__END_LOST);
        return;
    }
    self->base.tries = 0;
    const char *content = json_string_value (json_object_get (reply->json, "content"));
    size_t size = content? json_string_length (json_object_get (reply->json, "content")): 0;
    const char *token = json_string_value (json_object_get (reply->json, "continuation_token"));
    //  The end of a try's log: Airflow marks it in its token, which is
    //  its own to read; we know it by the instance being past this try
    //  (as listed before this page was asked for) and the page empty
    bool end = size == 0 && try_over;
    s_take (self, content? content: "", size, end);
    if (token) {
        free (self->token);
        self->token = strdup (token);
    }
    if (size == 0 && !(end && s_try_over (self, instance)))
        return;                 //  nothing new: the next poll
    if (++self->pages < S_PAGES_PER_TICK)
        s_log_next (self);
}

//  Asks for the next page of the log being followed, if any
static void
s_log_next (s_attempt_t *self)
{
    if (self->base.call || self->base.base.stop_reason || self->base.base.front->paused)
        return;
    json_t *instance = json_array_get (self->instances, self->followed);
    if (!instance) {
        //  Every started task instance is read: done once the run is
        if (!streq (self->state, "queued") && !streq (self->state, "running"))
            s_finish_outcome (self);
        return;
    }
    if (json_integer_value (json_object_get (instance, "try_number")) < 1
    &&  s_try_done (self, instance)) {
        //  Never ran (skipped): no log
        if (s_try_over (self, instance))
            s_log_next (self);
        return;
    }
    const char *task = json_string_value (json_object_get (instance, "task_id"));
    char *escaped = qn_rest_escape (task? task: "");
    char *token = self->token? qn_rest_escape (self->token): NULL;
    //  A mapped task's instances share its task_id: map_index tells them
    //  apart
    json_int_t map_index = json_integer_value (json_object_get (instance, "map_index"));
    char mapped [40] = "";
    if (json_is_integer (json_object_get (instance, "map_index")) && map_index >= 0)
        snprintf (mapped, sizeof (mapped), "&map_index=%" JSON_INTEGER_FORMAT, map_index);
    char *url = NULL;
    if (escaped && asprintf (&url, "%s/taskInstances/%s/logs/%d?full_content=false%s%s%s",
                             self->dag_path, escaped, self->try_number, mapped,
                             token? "&token=": "", token? token: "") < 0)
        url = NULL;
    if (url)
        qn_remote_request (&self->base, "GET", url, NULL, s_log_done);
    free (url);
    free (escaped);
    free (token);
}

static int
s_instance_order (const void *a, const void *b)
{
    json_t *x = *(json_t *const *) a, *y = *(json_t *const *) b;
    const char *xs = json_string_value (json_object_get (x, "start_date"));
    const char *ys = json_string_value (json_object_get (y, "start_date"));
    int order = strcmp (xs? xs: "", ys? ys: "");
    if (order)
        return order;
    const char *xt = json_string_value (json_object_get (x, "task_id"));
    const char *yt = json_string_value (json_object_get (y, "task_id"));
    order = strcmp (xt? xt: "", yt? yt: "");
    json_int_t xm = json_integer_value (json_object_get (x, "map_index"));
    json_int_t ym = json_integer_value (json_object_get (y, "map_index"));
    return order? order: xm < ym? -1: xm > ym;
}

//  One page of the task instance list (limit and offset: Airflow answers
//  at most its maximum_page_limit, 100 by default, whatever is asked)
static void
s_instances_page (s_attempt_t *self, size_t offset)
{
    char url [1200];
    snprintf (url, sizeof (url), "%s/taskInstances?limit=%d&offset=%zu", self->dag_path,
              S_INSTANCES_PAGE, offset);
    qn_remote_request (&self->base, "GET", url, NULL, s_instances_done);
}

static void
s_instances_done (void *arg, uint64_t call, long status, json_t *body, const char *error)
{
    S_REPLY;
    if (!s_ok (reply)) {
        qn_remote_trouble (&self->base, reply, "list its task instances", S_POLL_TRIES,
                   QANAT__END_KIND__END_LOST);
        return;
    }
    self->base.tries = 0;
    json_t *page = json_object_get (reply->json, "task_instances");
    if (!self->listing)
        self->listing = json_array ();
    if (!self->listing || (json_is_array (page) && json_array_extend (self->listing, page)))
        return;
    size_t have = json_array_size (self->listing);
    json_int_t total = json_integer_value (json_object_get (reply->json, "total_entries"));
    if (json_array_size (page) && (json_int_t) have < total && have < S_INSTANCES_MAX) {
        s_instances_page (self, have);
        return;
    }
    //  The started ones, in the order they started: the order of a re-
    //  attach's cursor
    json_t *list = self->listing;
    self->listing = NULL;
    size_t count = json_array_size (list);
    json_t **started = (json_t **) calloc (count + 1, sizeof (json_t *));
    if (!started) {
        json_decref (list);
        return;
    }
    size_t kept = 0;
    for (size_t i = 0; i < count; i++) {
        json_t *instance = json_array_get (list, i);
        const char *state = json_string_value (json_object_get (instance, "state"));
        if (state && streq (state, "failed")) {
            const char *task = json_string_value (json_object_get (instance, "task_id"));
            snprintf (self->failed_task, sizeof (self->failed_task), "%s", task? task: "?");
        }
        if (json_is_string (json_object_get (instance, "start_date"))
        &&  json_is_string (json_object_get (instance, "task_id")))
            started [kept++] = instance;
    }
    qsort (started, kept, sizeof (json_t *), s_instance_order);
    json_t *sorted = json_array ();
    for (size_t i = 0; sorted && i < kept; i++)
        json_array_append (sorted, started [i]);
    free (started);
    json_decref (list);
    if (!sorted)
        return;
    json_decref (self->instances);
    self->instances = sorted;
    self->pages = 0;
    s_log_next (self);
}

static void
s_run_done (void *arg, uint64_t call, long status, json_t *body, const char *error)
{
    S_REPLY;
    if (reply->status == 404 && !self->base.verified && self->trigger) {
        //  Re-attached to an id the agent recorded before its trigger,
        //  which never reached Airflow: triggered now
        qn_log (QN_LOG_INFO, "airflow", "airflow dag run %s is not there: triggering it",
                self->base.engine_id);
        self->base.exists = false;
        self->base.tries = 0;
        qn_remote_next (&self->base);
        return;
    }
    if (!s_ok (reply)) {
        qn_remote_trouble (&self->base, reply, "read it", S_POLL_TRIES, QANAT__END_KIND__END_LOST);
        return;
    }
    self->base.tries = self->base.auth_failures = 0;
    if (!self->base.verified) {
        if (!s_conf_match (self, reply->json)) {
            char reason [300];
            snprintf (reason, sizeof (reason), "airflow dag run %s belongs to something else "
                      "(its conf names another attempt)", self->base.engine_id);
            self->base.exists = false;       //  not ours: never fail it
            qn_remote_finish (&self->base, -1, reason, QANAT__END_KIND__END_START_FAILED);
            return;
        }
        if (!self->base.announced)
            s_announce (self);           //  the trigger found it
        self->base.verified = true;
    }
    const char *state = json_string_value (json_object_get (reply->json, "state"));
    snprintf (self->state, sizeof (self->state), "%s", state? state: "");
    json_decref (self->listing);
    self->listing = NULL;
    s_instances_page (self, 0);
}

//  One value output of the XCom's JSON object: its text as it is, any
//  other JSON value as compact JSON
static void
s_xcom_output (s_attempt_t *self, const char *name, json_t *value)
{
    char *text = json_is_string (value)? strdup (json_string_value (value))
                                       : json_dumps (value, JSON_COMPACT | JSON_ENCODE_ANY
                                                     | JSON_REAL_PRECISION (15));
    char *line = text? zsys_sprintf ("%s=%s", name, text): NULL;
    if (line)
        qn_remote_output (&self->base.base, self->base.values, line, strlen (line));
    zstr_free (&line);
    free (text);
}

//  The XCom's value (Airflow gives it as text): a JSON object is one
//  value output per key; anything else is the task's sole value output
static void
s_xcom_done (void *arg, uint64_t call, long status, json_t *body, const char *error)
{
    S_REPLY;
    if (reply->status != 404 && !s_ok (reply)) {
        qn_remote_trouble (&self->base, reply, "read its XCom", S_POLL_TRIES,
                           QANAT__END_KIND__END_LOST);
        return;
    }
    self->xcom_read = true;
    json_t *value = reply->status == 404? NULL: json_object_get (reply->json, "value");
    json_t *parsed = json_is_string (value)
                   ? json_loads (json_string_value (value), JSON_DECODE_ANY, NULL): NULL;
    json_t *object = json_is_object (value)? value: json_is_object (parsed)? parsed: NULL;
    if (!value)
        qn_backend_attempt_system_log (&self->base.base, "airflow: no XCom '%s' from task %s",
                                       self->xcom_key, self->xcom_task);
    else
    if (object) {
        const char *name;
        json_t *item;
        json_object_foreach (object, name, item)
            s_xcom_output (self, name, item);
    }
    else
    if (self->sole_output)
        s_xcom_output (self, self->sole_output, value);
    else
        qn_backend_attempt_system_log (&self->base.base, "airflow: the XCom '%s' of task %s "
                                       "is not a JSON object, and the task has not exactly "
                                       "one value output", self->xcom_key, self->xcom_task);
    json_decref (parsed);
    s_finish_outcome (self);
}

static void
s_trigger_done (void *arg, uint64_t call, long status, json_t *body, const char *error)
{
    S_REPLY;
    if (s_ok (reply)) {
        s_announce (self);
        qn_remote_next (&self->base);
        return;
    }
    if (reply->status == 409) {
        qn_log (QN_LOG_INFO, "airflow", "airflow dag run %s exists already: following it",
                self->base.engine_id);
        self->base.exists = true;
        self->base.tries = 0;
        qn_remote_next (&self->base);
        return;
    }
    qn_remote_trouble (&self->base, reply, "trigger it", S_TRIGGER_TRIES,
                       QANAT__END_KIND__END_START_FAILED);
}


//  ---------------------------------------------------------------------
//  The engine's steps

static void
s_step (qn_remote_attempt_t *base)
{
    s_attempt_t *self = (s_attempt_t *) base;
    if (base->exists) {
        qn_remote_request (base, "GET", self->dag_path, NULL, s_run_done);
        return;
    }
    char *dag = qn_rest_escape (self->dag_id);
    char url [1000];
    snprintf (url, sizeof (url), "%s/api/v1/dags/%s/dagRuns", base->engine->url, dag? dag: "");
    free (dag);
    qn_remote_request (base, "POST", url, self->trigger, s_trigger_done);
}

//  A cancel fails the run: Airflow fails its running task instances and
//  skips the rest
static bool
s_end_call (qn_remote_attempt_t *base, qn_rest_call_t *call, char *url, size_t url_size)
{
    snprintf (url, url_size, "%s", ((s_attempt_t *) base)->dag_path);
    call->method = "PATCH";
    call->url = url;
    call->json = json_pack ("{s:s}", "state", "failed");
    return call->json != NULL;
}

static const qn_remote_ops_t s_ops = {
    .name = "airflow",
    .what = "airflow dag run",
    .url_option = "url",
    .url_env = { "AIRFLOW_URL", NULL },
    .needs_credentials = true,
    .step = s_step,
    .end_call = s_end_call,
    .destroy = s_attempt_destroy
};


//  ---------------------------------------------------------------------
//  Starting and re-attaching

//  The DAG run's body: dag_run_id, conf (the task's, and qanat's), note
//  Where value outputs come from besides ::qanat-output lines: the
//  XCom of airflow.xcom_task, if named.  -1 when out of memory.
static int
s_xcom_options (s_attempt_t *attempt, const Qanat__Assign *assign)
{
    const char *task = qn_backend_task_option (assign, "xcom_task");
    const char *key = qn_backend_task_option (assign, "xcom_key");
    size_t values = 0;
    for (size_t i = 0; i < assign->n_outputs; i++)
        if (assign->outputs [i]->value) {
            values++;
            free (attempt->sole_output);
            attempt->sole_output = strdup (assign->outputs [i]->name);
        }
    if (values != 1)
        zstr_free (&attempt->sole_output);
    if (!task)
        return 0;
    attempt->xcom_task = strdup (task);
    attempt->xcom_key = strdup (key? key: "return_value");
    return attempt->xcom_task && attempt->xcom_key? 0: -1;
}

static json_t *
s_trigger_body (s_attempt_t *attempt, const Qanat__Assign *assign,
                char *error, size_t error_size)
{
    json_t *conf = NULL;
    const char *text = qn_backend_task_option (assign, "conf");
    if (text) {
        json_error_t problem;
        conf = json_loads (text, JSON_REJECT_DUPLICATES, &problem);
        if (!json_is_object (conf)) {
            json_decref (conf);
            snprintf (error, error_size, "airflow: conf is not a mapping");
            return NULL;
        }
    }
    else
        conf = json_object ();
    json_t *inputs = json_object ();
    for (size_t i = 0; inputs && i < assign->n_inputs; i++) {
        const Qanat__InputSpec *input = assign->inputs [i];
        if (input->kind == QANAT__ARTIFACT_KIND__ARTIFACT_VALUE && input->name)
            json_object_set_new (inputs, input->name,
                                 json_string (input->value? input->value: ""));
    }
    char run [32], task [16], number [16];
    snprintf (run, sizeof (run), "%" PRIu64, assign->attempt->run_id);
    snprintf (task, sizeof (task), "%u", assign->attempt->task_index);
    snprintf (number, sizeof (number), "%u", assign->attempt->attempt);
    json_t *qanat = inputs? json_pack ("{s:s, s:s, s:s, s:s, s:s, s:o}", "run", run,
                                       "task", task, "task_name",
                                       assign->task_name? assign->task_name: "",
                                       "attempt", number, "agent", attempt->base.engine->agent_name,
                                       "inputs", inputs): NULL;
    char note [200];
    snprintf (note, sizeof (note), "qanat run %s, task %.100s, attempt %s", run,
              assign->task_name? assign->task_name: task, number);
    if (!qanat || json_object_set_new (conf, "qanat", qanat) == -1) {
        json_decref (conf);
        snprintf (error, error_size, "out of memory");
        return NULL;
    }
    json_t *body = json_pack ("{s:s, s:o, s:s}", "dag_run_id", attempt->base.id, "conf", conf,
                              "note", note);
    if (!body)
        snprintf (error, error_size, "out of memory");
    return body;
}

//  An Airflow DAG id: letters, digits, '_', '.', '-'
static bool
s_dag_id_valid (const char *dag_id)
{
    size_t len = strlen (dag_id);
    if (len == 0 || len > 100)
        return false;
    for (const char *c = dag_id; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9')
           || *c == '_' || *c == '.' || *c == '-'))
            return false;
    return true;
}

static int
s_airflow_start (void *state, const Qanat__Assign *assign, char *error, size_t error_size)
{
    qn_remote_t *self = (qn_remote_t *) state;
    assert (self);
    qn_attempt_key_t key;
    if (qn_backend_front_check (&self->front, assign, 0, &key, error, error_size) == -1)
        return -1;
    const char *url = qn_backend_task_option (assign, "url");
    if (url && !streq (url, self->url)) {
        snprintf (error, error_size, "this agent's Airflow is %.200s, not %.200s (give the "
                  "agent --backend-option airflow.url=...)", self->url, url);
        return -1;
    }
    const char *dag_id = qn_backend_task_option (assign, "dag_id");
    if (!dag_id || !s_dag_id_valid (dag_id)) {
        snprintf (error, error_size, "airflow: the task needs a valid dag_id (got '%.100s')",
                  dag_id? dag_id: "");
        return -1;
    }
    s_attempt_t *attempt = s_attempt_new (self, &key, dag_id, NULL);
    if (!attempt) {
        snprintf (error, error_size, "airflow: '%.100s/qanat-...' is longer than an engine "
                  "job id may be (%d bytes; a shorter dag_id), or out of memory",
                  dag_id, QN_BACKEND_JOB_ID_MAX);
        return -1;
    }
    attempt->trigger = s_trigger_body (attempt, assign, error, error_size);
    if (attempt->trigger && s_xcom_options (attempt, assign) == -1) {
        snprintf (error, error_size, "out of memory");
        json_decref (attempt->trigger);
        attempt->trigger = NULL;
    }
    if (!attempt->trigger
    ||  qn_remote_follow (&attempt->base, assign->timeout_s, error, error_size) == -1) {
        s_attempt_destroy (&attempt->base);
        return -1;
    }
    return 0;
}

//  "K T B" as s_report_cursor writes it
static int
s_parse_cursor (const char *cursor, s_attempt_t *attempt)
{
    unsigned long long followed = 0, taken = 0;
    int tries = 0, used = 0;
    if (sscanf (cursor, "%llu %d %llu%n", &followed, &tries, &taken, &used) != 3
    ||  cursor [used] != '\0' || tries < 1 || followed > 100000 || strchr (cursor, '-'))
        return -1;
    attempt->followed = (size_t) followed;
    attempt->try_number = tries;
    attempt->taken = 0;
    attempt->skip = (int64_t) taken;
    return 0;
}

static int
s_airflow_reattach (void *state, const Qanat__Assign *assign, const char *engine_job_id,
                    const char *cursor, char *error, size_t error_size)
{
    qn_remote_t *self = (qn_remote_t *) state;
    assert (self);
    qn_attempt_key_t key;
    if (qn_remote_reattach_key (self, assign, &key, error, error_size) == -1)
        return -1;
    const char *slash = strchr (engine_job_id, '/');
    char dag_id [QN_BACKEND_JOB_ID_MAX + 1] = "";
    if (slash && (size_t) (slash - engine_job_id) < sizeof (dag_id))
        snprintf (dag_id, sizeof (dag_id), "%.*s", (int) (slash - engine_job_id),
                  engine_job_id);
    s_attempt_t *attempt = s_dag_id_valid (dag_id)
                         ? s_attempt_new (self, &key, dag_id, slash + 1): NULL;
    if (!attempt || !streq (attempt->base.engine_id, engine_job_id)) {
        snprintf (error, error_size, "invalid airflow dag run id '%.100s' (want "
                  "DAG/qanat-RUN-TASK-ATTEMPT)", engine_job_id? engine_job_id: "");
        if (attempt)
            s_attempt_destroy (&attempt->base);
        return -1;
    }
    if (cursor && *cursor && s_parse_cursor (cursor, attempt) == -1) {
        snprintf (error, error_size, "invalid airflow log cursor '%.100s'", cursor);
        s_attempt_destroy (&attempt->base);
        return -1;
    }
    attempt->base.exists = attempt->base.announced = true;
    //  Kept for a run Airflow does not know (s_run_done)
    if (!(attempt->trigger = s_trigger_body (attempt, assign, error, error_size))
    ||  s_xcom_options (attempt, assign) == -1) {
        if (attempt->trigger)
            snprintf (error, error_size, "out of memory");
        s_attempt_destroy (&attempt->base);
        return -1;
    }
    if (qn_remote_follow (&attempt->base, assign->timeout_s, error, error_size) == -1) {
        s_attempt_destroy (&attempt->base);
        return -1;
    }
    qn_log (QN_LOG_INFO, "airflow", "attempt %" PRIu64 "/%u/%u: following airflow dag run %s "
            "again from '%s'", key.run_id, key.task_index, key.attempt, attempt->base.engine_id,
            cursor? cursor: "");
    return 0;
}


//  ---------------------------------------------------------------------
//  The ops table

static void *
s_airflow_create (zloop_t *loop, const qn_backend_config_t *config,
                  const qn_backend_events_t *events, void *arg)
{
    return qn_remote_create (&s_ops, loop, config, events, arg);
}

static const char *
s_airflow_no_files (void *state)
{
    (void) state;
    return "an Airflow DAG run shares no filesystem with its agent (value inputs travel in "
           "its conf, value outputs as '" QN_REMOTE_OUTPUT_PREFIX "NAME=VALUE' log lines)";
}

const qn_backend_ops_t qn_backend_airflow = {
    .name = "airflow",
    .flags = QN_BACKEND_CAN_REATTACH | QN_BACKEND_REMOTE | QN_BACKEND_VALUE_OUTPUTS
,
    .no_files = s_airflow_no_files,
    .create = s_airflow_create,
    .start = s_airflow_start,
    .reattach = s_airflow_reattach,
    .stop = qn_backend_front_stop,
    .set_paused = qn_backend_front_set_paused,
    .running = qn_backend_front_running,
    .shutdown = qn_backend_front_shutdown,
    .destroy = qn_remote_destroy
};
