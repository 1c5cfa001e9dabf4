/*  qn_backend_databricks - runs attempts as one-time Databricks runs
    through the Jobs API 2.1.  See qn_backend.h for the ops contract,
    docs/backends.md for the rules.

    An attempt is POST /api/2.1/jobs/runs/submit with one task: a
    spark_python_task (python_file, parameters), a python_wheel_task
    (package_name, entry_point, parameters) or a notebook_task
    (notebook_path, base_parameters = the run's params and value inputs),
    on existing_cluster_id or new_cluster, with libraries; its
    idempotency_token is qanat-<run>-<task>-<attempt>.

    Life of an attempt, from the agent's zloop (qn_rest):
      started at once with the token as engine job id, so the spool knows
      the attempt before the submit goes out (a few milliseconds later);
      the submit answers run_id; every poll_ms runs/get gives the state
      (life_cycle_state, result_state, state_message; changes become
      system lines) and run_page_url: then started again, with the run id
      and the page as the attempt's link; at TERMINATED (or SKIPPED,
      INTERNAL_ERROR) runs/get-output of the task's run gives logs (the
      task's standard output, shown at the end: the Jobs API has no live
      log), error and error_trace (reason and stack trace) and the
      notebook's exit value (a JSON object: value outputs).  Metrics are
      "::qanat-metric" lines of the logs.

    A restarted agent re-attaches by the engine job id: a run id is
    polled again; a token (the agent died between the submit and its
    answer) is submitted again, and Databricks answers with the run it
    already started for that token: never two runs.  Cancel and timeout:
    runs/cancel, then the attempt ends.  429 (Retry-After) and 5xx are
    tried again with backoff; a refused token is fetched again once
    (OAuth), otherwise the attempt ends with Databricks' message.

    Auth: DATABRICKS_HOST (or databricks.host), then a personal access
    token (DATABRICKS_TOKEN, or databricks.token_file), else OAuth
    machine-to-machine: DATABRICKS_CLIENT_ID and DATABRICKS_CLIENT_SECRET
    to <host>/oidc/v1/token (client_credentials, scope all-apis), fetched
    again a minute before it expires.
*/
#include "qn_backend.h"
#include "qn_file.h"
#include "qn_lambda.h"
#include "qn_log.h"
#include "qn_msg.h"
#include "qn_rest.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_DEFAULT_POLL_MS       2000
#define S_DEFAULT_MAX_TRIES     8
#define S_BACKOFF_BASE_MS       500
#define S_BACKOFF_MAX_MS        30000
#define S_TOKEN_MARGIN_MS       60000
#define S_TOKEN_MAX             4096

typedef struct _s_dbx_t s_dbx_t;

typedef struct {
    qn_backend_attempt_t base;
    s_dbx_t *backend;
    Qanat__Assign *assign;      //  outputs and env, for the values
    char token [64];            //  qanat-<run>-<task>-<attempt>
    json_t *submit;             //  the runs/submit body
    int64_t run_id;             //  0 until the submit answered
    int64_t task_run_id;
    bool linked;                //  started again with the run id and page
    uint64_t call;              //  the one call in flight, 0 = none
    int64_t next_ms;            //  when the next call is due (zclock_mono)
    unsigned tries;
    bool token_refetched;
    char life_cycle [40];
    char result_state [40];
    char state_message [600];
    bool canceling;
} s_attempt_t;

struct _s_dbx_t {
    qn_backend_front_t front;
    qn_rest_t *rest;
    char *host;                 //  https://<workspace>, no trailing '/'
    char *pat;                  //  a personal access token, or NULL
    char *client_id;            //  OAuth M2M, or NULL
    char *client_secret;
    char *access_token;         //  from the token endpoint
    int64_t token_expiry_ms;    //  zclock_mono
    uint64_t token_call;
    unsigned token_failures;    //  in a row: at max_tries, attempts give up
    char token_error [600];
    int poll_ms;
    unsigned max_tries;
};

static const char *s_known_options [] = {
    "host", "token_file", "poll_ms", "max_tries", NULL
};

static void s_attempt_poll (s_attempt_t *self);


//  ---------------------------------------------------------------------
//  Attempts

static void
s_attempt_destroy (s_attempt_t **self_p)
{
    s_attempt_t *self = *self_p;
    if (!self)
        return;
    qn_rest_cancel (self->backend->rest, self->call);
    if (self->assign)
        qanat__assign__free_unpacked (self->assign, NULL);
    json_decref (self->submit);
    qn_backend_attempt_fini (&self->base);
    free (self);
    *self_p = NULL;
}

static void
s_attempt_report (s_attempt_t *self, int exit_code, const char *stack_trace,
                  const char *reason, Qanat__EndKind kind)
{
    qn_log (QN_LOG_INFO, "databricks", "attempt %" PRIu64 "/%u/%u (databricks run %" PRId64
            ") finished: %s", self->base.key.run_id, self->base.key.task_index,
            self->base.key.attempt, self->run_id, reason && *reason? reason: "ok");
    if (self->base.handle)
        zlistx_detach (self->backend->front.attempts, self->base.handle);
    self->base.handle = NULL;
    self->backend->front.events->finished (self->backend->front.arg, &self->base.key, exit_code,
                                           0, stack_trace? stack_trace: "", reason? reason: "",
                                           kind);
}

static void
s_attempt_finish (s_attempt_t *self, int exit_code, const char *stack_trace, const char *reason,
                  Qanat__EndKind kind)
{
    s_attempt_report (self, exit_code, stack_trace, reason, kind);
    s_attempt_destroy (&self);
}

//  Databricks' error: "ERROR_CODE: message (HTTP n)"
static void
s_engine_error (long status, json_t *body, const char *error, char *out, size_t out_size)
{
    if (status == 0) {
        snprintf (out, out_size, "%s", error && *error? error: "no answer");
        return;
    }
    const char *code = json_string_value (json_object_get (body, "error_code"));
    const char *message = json_string_value (json_object_get (body, "message"));
    snprintf (out, out_size, "%s%s%s (HTTP %ld)", code? code: "", code? ": ": "",
              message? message: "no message", status);
}


//  ---------------------------------------------------------------------
//  Auth: a personal access token, or an OAuth token fetched and renewed

static int
s_setup (void *arg, CURL *easy, struct curl_slist **headers)
{
    (void) easy;
    s_dbx_t *self = (s_dbx_t *) arg;
    const char *token = self->pat? self->pat: self->access_token;
    if (!token)
        return 0;               //  the token endpoint itself
    char header [S_TOKEN_MAX + 32];
    snprintf (header, sizeof (header), "Authorization: Bearer %s", token);
    struct curl_slist *more = curl_slist_append (*headers, header);
    memset (header, 0, sizeof (header));
    if (!more)
        return -1;
    *headers = more;
    return 0;
}

static void
s_token_done (void *arg, uint64_t call, long status, json_t *body, const char *error)
{
    (void) call;
    s_dbx_t *self = (s_dbx_t *) arg;
    self->token_call = 0;
    const char *token = json_string_value (json_object_get (body, "access_token"));
    json_int_t expires = json_integer_value (json_object_get (body, "expires_in"));
    if (status != 200 || !token || strlen (token) >= S_TOKEN_MAX) {
        char message [600];
        s_engine_error (status, body, error, message, sizeof (message));
        const char *oauth = json_string_value (json_object_get (body, "error_description"));
        if (oauth)
            snprintf (message, sizeof (message), "%s (HTTP %ld)", oauth, status);
        qn_log (QN_LOG_WARNING, "databricks", "databricks: no OAuth token from %s/oidc/v1/token: "
                "%s", self->host, message);
        snprintf (self->token_error, sizeof (self->token_error), "%s", message);
        self->token_failures++;
        //  The old token was refused or is about to be: no call uses it
        if (self->access_token)
            memset (self->access_token, 0, strlen (self->access_token));
        free (self->access_token);
        self->access_token = NULL;
        self->token_expiry_ms = zclock_mono () + S_BACKOFF_BASE_MS * 4;    //  soon again
        return;
    }
    if (self->access_token)
        memset (self->access_token, 0, strlen (self->access_token));
    free (self->access_token);
    self->access_token = strdup (token);
    self->token_failures = 0;
    //  Renewed a minute before it expires (or halfway, for short ones)
    int64_t life_ms = (int64_t) (expires > 0? expires: 3600) * 1000;
    int64_t margin = life_ms > 2 * S_TOKEN_MARGIN_MS? S_TOKEN_MARGIN_MS: life_ms / 2;
    self->token_expiry_ms = zclock_mono () + life_ms - margin;
}

//  True when calls may go: a token we hold and that is not due
static bool
s_token_ready (s_dbx_t *self, int64_t now)
{
    if (self->pat)
        return true;
    if (self->access_token && now < self->token_expiry_ms)
        return true;
    if (!self->token_call && now >= self->token_expiry_ms) {
        char *url = NULL, *id = qn_rest_escape (self->client_id);
        char *secret = qn_rest_escape (self->client_secret);
        char *userpwd = NULL;
        const char *form = "grant_type=client_credentials&scope=all-apis";
        if (id && secret && asprintf (&url, "%s/oidc/v1/token", self->host) >= 0
        &&  asprintf (&userpwd, "%s:%s", self->client_id, self->client_secret) >= 0) {
            //  The token endpoint takes HTTP Basic auth with the client's
            //  id and secret; the old token must not go with it
            char *old = self->access_token;
            self->access_token = NULL;
            qn_rest_call_t call = {
                .method = "POST", .url = url, .body = form, .body_size = strlen (form),
                .content_type = "application/x-www-form-urlencoded", .userpwd = userpwd
            };
            self->token_call = qn_rest_request (self->rest, &call, s_token_done, self);
            self->access_token = old;
            memset (userpwd, 0, strlen (userpwd));
        }
        free (userpwd);
        free (url);
        free (id);
        free (secret);
    }
    return self->access_token && now < self->token_expiry_ms + S_TOKEN_MARGIN_MS / 2;
}


//  ---------------------------------------------------------------------
//  Calls

static void s_call_done (void *arg, uint64_t call, long status, json_t *body,
                         const char *error);

static int
s_call (s_attempt_t *self, const char *method, const char *path, json_t *body)
{
    char *url = NULL;
    if (asprintf (&url, "%s%s", self->backend->host, path) < 0)
        return -1;
    qn_rest_call_t call = { .method = method, .url = url, .json = body };
    self->call = qn_rest_request (self->backend->rest, &call, s_call_done, self);
    free (url);
    return self->call? 0: -1;
}

static void
s_submit (s_attempt_t *self)
{
    if (s_call (self, "POST", "/api/2.1/jobs/runs/submit", self->submit) == -1)
        self->next_ms = zclock_mono () + self->backend->poll_ms;
}

static void
s_attempt_poll (s_attempt_t *self)
{
    char path [128];
    snprintf (path, sizeof (path), "/api/2.1/jobs/runs/get?run_id=%" PRId64, self->run_id);
    if (s_call (self, "GET", path, NULL) == -1)
        self->next_ms = zclock_mono () + self->backend->poll_ms;
}

static void
s_get_output (s_attempt_t *self)
{
    char path [128];
    snprintf (path, sizeof (path), "/api/2.1/jobs/runs/get-output?run_id=%" PRId64,
              self->task_run_id? self->task_run_id: self->run_id);
    if (s_call (self, "GET", path, NULL) == -1)
        self->next_ms = zclock_mono () + self->backend->poll_ms;
}

//  The run's state; at its end, the output follows
static void
s_on_run (s_attempt_t *self, json_t *run)
{
    json_t *state = json_object_get (run, "state");
    const char *life = json_string_value (json_object_get (state, "life_cycle_state"));
    const char *result = json_string_value (json_object_get (state, "result_state"));
    const char *message = json_string_value (json_object_get (state, "state_message"));
    const char *url = json_string_value (json_object_get (run, "run_page_url"));
    json_t *tasks = json_object_get (run, "tasks");
    json_t *task_run = json_object_get (json_array_get (tasks, 0), "run_id");
    if (json_is_integer (task_run))
        self->task_run_id = json_integer_value (task_run);
    if (!self->linked) {
        //  Started again: the run id for `qanat status`, and its page
        self->linked = true;
        char engine_id [32];
        snprintf (engine_id, sizeof (engine_id), "%" PRId64, self->run_id);
        if (url && self->backend->front.events->link)
            self->backend->front.events->link (self->backend->front.arg, &self->base.key, url);
        self->backend->front.events->started (self->backend->front.arg, &self->base.key, 0,
                                              self->backend->front.host, "", engine_id);
    }
    if (life && !streq (life, self->life_cycle)) {
        qn_backend_attempt_system_log (&self->base, "databricks run %" PRId64 ": %s%s%s%s%s",
                                       self->run_id, life, result? " ": "", result? result: "",
                                       message && *message? ": ": "", message? message: "");
        snprintf (self->life_cycle, sizeof (self->life_cycle), "%s", life);
    }
    snprintf (self->result_state, sizeof (self->result_state), "%s", result? result: "");
    snprintf (self->state_message, sizeof (self->state_message), "%s", message? message: "");
    bool ended = life && (streq (life, "TERMINATED") || streq (life, "SKIPPED")
                       || streq (life, "INTERNAL_ERROR"));
    if (ended)
        s_get_output (self);
    else
        self->next_ms = zclock_mono () + self->backend->poll_ms;
}

//  The task's output: its logs, then the end
static void
s_on_output (s_attempt_t *self, json_t *output)
{
    const char *logs = json_string_value (json_object_get (output, "logs"));
    int64_t now_us = qn_now_us ();
    for (const char *line = logs? logs: ""; *line; ) {
        size_t len = strcspn (line, "\n");
        if (!qn_backend_attempt_metric_line (&self->base, line, len, now_us))
            qn_backend_attempt_log (&self->base, QANAT__STREAM__STREAM_STDOUT, false, line, len,
                                    false, now_us);
        line += len + (line [len] == '\n');
    }
    if (json_is_true (json_object_get (output, "logs_truncated")))
        qn_backend_attempt_system_log (&self->base, "databricks: the run's logs were cut by "
                                       "Databricks (only their end is kept)");
    const char *error = json_string_value (json_object_get (output, "error"));
    const char *trace = json_string_value (json_object_get (output, "error_trace"));
    const char *notebook = json_string_value (json_object_get (
                                                  json_object_get (output, "notebook_output"),
                                                  "result"));
    char reason [1200];
    if (streq (self->result_state, "SUCCESS")) {
        const char *values = NULL;
        for (size_t i = 0; self->assign && i < self->assign->n_env; i++)
            if (streq (self->assign->env [i]->key, "QANAT_VALUES"))
                values = self->assign->env [i]->value;
        char problem [600];
        if (self->assign && qn_lambda_write_values (self->assign, notebook,
                                                    notebook? strlen (notebook): 0, values,
                                                    problem, sizeof (problem)) == -1) {
            snprintf (reason, sizeof (reason), "databricks run %" PRId64 ": %s", self->run_id,
                      problem);
            s_attempt_finish (self, 1, NULL, reason, QANAT__END_KIND__END_EXIT);
        }
        else
            s_attempt_finish (self, 0, NULL, "", QANAT__END_KIND__END_EXIT);
        return;
    }
    snprintf (reason, sizeof (reason), "databricks run %" PRId64 ": %s %s%s%s%s%s", self->run_id,
              self->life_cycle, self->result_state, *self->state_message? ": ": "",
              self->state_message, error? ": ": "", error? error: "");
    Qanat__EndKind kind = streq (self->result_state, "TIMEDOUT")? QANAT__END_KIND__END_TIMEOUT
                        : QANAT__END_KIND__END_EXIT;
    s_attempt_finish (self, 1, trace? trace: error, reason, kind);
}

static void
s_call_done (void *arg, uint64_t call, long status, json_t *body, const char *error)
{
    s_attempt_t *self = (s_attempt_t *) arg;
    s_dbx_t *backend = self->backend;
    self->call = 0;
    if (status == 200) {
        self->tries = 0;
        if (self->canceling)
            return;
        if (!self->run_id) {
            json_t *run_id = json_object_get (body, "run_id");
            if (!json_is_integer (run_id)) {
                s_attempt_finish (self, -1, NULL, "databricks: runs/submit answered no run_id",
                                  QANAT__END_KIND__END_START_FAILED);
                return;
            }
            self->run_id = json_integer_value (run_id);
            s_attempt_poll (self);
        }
        else
        if (json_object_get (body, "state"))
            s_on_run (self, body);
        else
            s_on_output (self, body);
        return;
    }
    char message [800];
    s_engine_error (status, body, error, message, sizeof (message));
    if ((status == 401 || status == 403) && backend->client_id && !self->token_refetched) {
        self->token_refetched = true;
        backend->token_expiry_ms = 0;   //  fetched again before the next call
        self->next_ms = zclock_mono ();
        return;
    }
    if (qn_rest_transient (status) && self->tries + 1 < backend->max_tries) {
        self->tries++;
        int64_t wait = qn_rest_backoff_ms (self->tries, status? qn_rest_retry_after_ms (
                                               backend->rest, call): -1,
                                           S_BACKOFF_BASE_MS, S_BACKOFF_MAX_MS);
        qn_backend_attempt_system_log (&self->base, "databricks: %s; trying again in %.1fs",
                                       message, (double) wait / 1000);
        self->next_ms = zclock_mono () + wait;
        return;
    }
    if (self->canceling)
        return;
    char reason [900];
    snprintf (reason, sizeof (reason), "databricks: %s", message);
    s_attempt_finish (self, -1, NULL, reason, self->run_id? QANAT__END_KIND__END_EXIT
                                                          : QANAT__END_KIND__END_START_FAILED);
}


//  ---------------------------------------------------------------------
//  The timer

static void
s_attempt_stop (qn_backend_attempt_t *base, const char *reason, Qanat__EndKind kind)
{
    s_attempt_t *self = (s_attempt_t *) base;
    if (!qn_backend_attempt_stopping (&self->base, reason, kind))
        return;
    qn_rest_cancel (self->backend->rest, self->call);
    self->call = 0;
    if (self->run_id) {
        //  runs/cancel is asynchronous on Databricks' side: asking is enough
        self->canceling = true;
        json_t *body = json_pack ("{s:I}", "run_id", (json_int_t) self->run_id);
        char *url = NULL;
        if (body && asprintf (&url, "%s/api/2.1/jobs/runs/cancel", self->backend->host) >= 0) {
            qn_rest_call_t call = { .method = "POST", .url = url, .json = body };
            qn_rest_request (self->backend->rest, &call, NULL, NULL);
        }
        free (url);
        json_decref (body);
    }
    s_attempt_finish (self, -1, NULL, reason, kind);
}

static void
s_attempt_tick (s_attempt_t *self, int64_t now)
{
    char reason [64];
    if (qn_backend_attempt_overdue (&self->base, now, reason, sizeof (reason))) {
        s_attempt_stop (&self->base, reason, QANAT__END_KIND__END_TIMEOUT);
        return;
    }
    if (self->call || !self->next_ms || now < self->next_ms)
        return;
    if (!s_token_ready (self->backend, now)) {
        //  Never stuck on a token that does not come
        if (self->backend->token_failures >= self->backend->max_tries) {
            char reason [800];
            snprintf (reason, sizeof (reason), "databricks: no OAuth token (gave up after %u "
                      "tries): %s", self->backend->token_failures, self->backend->token_error);
            s_attempt_finish (self, -1, NULL, reason, self->run_id
                              ? QANAT__END_KIND__END_EXIT: QANAT__END_KIND__END_START_FAILED);
        }
        return;
    }
    self->next_ms = 0;
    if (!self->run_id)
        s_submit (self);
    else
        s_attempt_poll (self);
}

static void
s_each_tick (qn_backend_attempt_t *attempt, int64_t now)
{
    s_attempt_tick ((s_attempt_t *) attempt, now);
}

static void
s_ensure_timer (s_dbx_t *self)
{
    qn_backend_front_ticking (&self->front, 50, s_each_tick);
}


//  ---------------------------------------------------------------------
//  Starting

//  The task's options into the one task of runs/submit.  NULL with error.
static json_t *
s_task (const Qanat__Assign *assign, char *error, size_t error_size)
{
    const char *python_file = qn_backend_task_option (assign, "python_file");
    const char *package = qn_backend_task_option (assign, "package_name");
    const char *entry = qn_backend_task_option (assign, "entry_point");
    const char *notebook = qn_backend_task_option (assign, "notebook_path");
    const char *cluster_id = qn_backend_task_option (assign, "existing_cluster_id");
    const char *new_cluster = qn_backend_task_option (assign, "new_cluster");
    const char *libraries = qn_backend_task_option (assign, "libraries");
    const char *parameters = qn_backend_task_option (assign, "parameters");
    if ((python_file != NULL) + (package != NULL) + (notebook != NULL) != 1
    ||  (package && !entry) || (cluster_id != NULL) + (new_cluster != NULL) != 1) {
        snprintf (error, error_size, "databricks: give one of python_file, package_name (with "
                  "entry_point) or notebook_path, and one of existing_cluster_id or new_cluster");
        return NULL;
    }
    json_t *task = json_pack ("{s:s}", "task_key", "qanat");
    json_t *args = NULL;
    if (parameters) {
        char *text = qn_lambda_payload (assign, parameters, error, error_size);
        args = text? json_loads (text, 0, NULL): NULL;
        free (text);
        if (!json_is_array (args)) {
            if (!*error)
                snprintf (error, error_size, "databricks: parameters must be a list");
            json_decref (args);
            json_decref (task);
            return NULL;
        }
        for (size_t i = 0; i < json_array_size (args); i++)
            if (!json_is_string (json_array_get (args, i))) {
                char *item = json_dumps (json_array_get (args, i), JSON_ENCODE_ANY | JSON_COMPACT);
                json_array_set_new (args, i, json_string (item? item: ""));
                free (item);
            }
    }
    if (python_file)
        json_object_set_new (task, "spark_python_task",
                             json_pack ("{s:s,s:o*}", "python_file", python_file,
                                        "parameters", args));
    else
    if (package)
        json_object_set_new (task, "python_wheel_task",
                             json_pack ("{s:s,s:s,s:o*}", "package_name", package,
                                        "entry_point", entry, "parameters", args));
    else {
        //  A notebook gets the run's params and value inputs as widgets
        char *text = qn_lambda_payload (assign, NULL, error, error_size);
        json_t *payload = text? json_loads (text, 0, NULL): NULL;
        free (text);
        json_t *widgets = json_object ();
        json_object_update (widgets, json_object_get (payload, "params"));
        json_object_update (widgets, json_object_get (payload, "inputs"));
        json_decref (payload);
        json_decref (args);
        json_object_set_new (task, "notebook_task",
                             json_pack ("{s:s,s:o}", "notebook_path", notebook,
                                        "base_parameters", widgets));
    }
    if (cluster_id)
        json_object_set_new (task, "existing_cluster_id", json_string (cluster_id));
    json_t *cluster = new_cluster? json_loads (new_cluster, 0, NULL): NULL;
    json_t *libs = libraries? json_loads (libraries, 0, NULL): NULL;
    if ((new_cluster && !json_is_object (cluster)) || (libraries && !json_is_array (libs))) {
        snprintf (error, error_size, "databricks: new_cluster must be a mapping, libraries a list");
        json_decref (cluster);
        json_decref (libs);
        json_decref (task);
        return NULL;
    }
    if (cluster)
        json_object_set_new (task, "new_cluster", cluster);
    if (libs)
        json_object_set_new (task, "libraries", libs);
    return task;
}

static s_attempt_t *
s_attempt_new (s_dbx_t *backend, const qn_attempt_key_t *key)
{
    s_attempt_t *self = (s_attempt_t *) calloc (1, sizeof (s_attempt_t));
    if (!self)
        return NULL;
    self->backend = backend;
    snprintf (self->token, sizeof (self->token), "qanat-%" PRIu64 "-%u-%u", key->run_id,
              key->task_index, key->attempt);
    if (qn_backend_attempt_init (&self->base, &backend->front, key, 0) == -1)
        s_attempt_destroy (&self);
    return self;
}

//  The attempt's submit body; -1 with error
static int
s_prepare (s_attempt_t *self, const Qanat__Assign *assign, char *error, size_t error_size)
{
    for (size_t i = 0; i < assign->n_inputs; i++)
        if (assign->inputs [i]->kind != QANAT__ARTIFACT_KIND__ARTIFACT_VALUE
        &&  !streq (assign->inputs [i]->path, ".")) {
            snprintf (error, error_size, "the databricks backend takes value inputs only "
                      "(input '%s' is a file)", assign->inputs [i]->name);
            return -1;
        }
    for (size_t i = 0; i < assign->n_outputs; i++)
        if (!assign->outputs [i]->value) {
            snprintf (error, error_size, "the databricks backend returns value outputs only "
                      "(output '%s' is a file)", assign->outputs [i]->name);
            return -1;
        }
    json_t *task = s_task (assign, error, error_size);
    if (!task)
        return -1;
    char name [200];
    snprintf (name, sizeof (name), "%s %s", self->token, assign->task_name? assign->task_name: "");
    self->submit = json_pack ("{s:s,s:s,s:[o]}", "run_name", name, "idempotency_token",
                              self->token, "tasks", task);
    if (self->submit && assign->timeout_s)
        json_object_set_new (self->submit, "timeout_seconds", json_integer (assign->timeout_s));
    self->assign = qn_backend_assign_copy (assign);
    if (!self->submit || !self->assign) {
        snprintf (error, error_size, "out of memory");
        return -1;
    }
    return 0;
}

static int
s_dbx_start (void *state, const Qanat__Assign *assign, char *error, size_t error_size)
{
    s_dbx_t *self = (s_dbx_t *) state;
    if (qn_rest_ensure (&self->rest, self->front.loop, "databricks", s_setup, self, error,
                        error_size) == -1)
        return -1;
    qn_attempt_key_t key;
    if (qn_backend_front_check (&self->front, assign, 0, &key, error, error_size) == -1)
        return -1;
    s_attempt_t *attempt = s_attempt_new (self, &key);
    if (!attempt) {
        snprintf (error, error_size, "out of memory");
        return -1;
    }
    if (s_prepare (attempt, assign, error, error_size) == -1) {
        s_attempt_destroy (&attempt);
        return -1;
    }
    attempt->base.timeout_s = assign->timeout_s;
    if (assign->timeout_s)
        attempt->base.deadline_ms = zclock_mono () + (int64_t) assign->timeout_s * 1000;
    attempt->next_ms = zclock_mono ();
    qn_backend_front_add (&self->front, &attempt->base);
    //  The token first: a restarted agent submits it again, never twice
    self->front.events->started (self->front.arg, &key, 0, self->front.host, "", attempt->token);
    s_ensure_timer (self);
    return 0;
}

static int
s_dbx_reattach (void *state, const Qanat__Assign *assign, const char *engine_job_id,
                const char *cursor, char *error, size_t error_size)
{
    (void) cursor;
    s_dbx_t *self = (s_dbx_t *) state;
    if (qn_rest_ensure (&self->rest, self->front.loop, "databricks", s_setup, self, error,
                        error_size) == -1)
        return -1;
    qn_attempt_key_t key;
    if (qn_backend_front_check (&self->front, assign, 0, &key, error, error_size) == -1)
        return -1;
    s_attempt_t *attempt = s_attempt_new (self, &key);
    if (!attempt) {
        snprintf (error, error_size, "out of memory");
        return -1;
    }
    char *end = NULL;
    long long run_id = engine_job_id? strtoll (engine_job_id, &end, 10): 0;
    if (run_id > 0 && end && *end == '\0') {
        attempt->run_id = run_id;
        attempt->linked = true;
        attempt->assign = qn_backend_assign_copy (assign);
    }
    else
    if (!engine_job_id || !streq (engine_job_id, attempt->token)
    ||  s_prepare (attempt, assign, error, error_size) == -1) {
        if (!*error)
            snprintf (error, error_size, "bad databricks job id '%.60s'",
                      engine_job_id? engine_job_id: "");
        s_attempt_destroy (&attempt);
        return -1;
    }
    attempt->next_ms = zclock_mono ();
    qn_backend_front_add (&self->front, &attempt->base);
    qn_backend_attempt_system_log (&attempt->base, "databricks: the agent restarted; %s",
                                   attempt->run_id? "following the run again"
                                   : "submitting again with the same idempotency token");
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
    s_attempt_report ((s_attempt_t *) base, -1, NULL, reason, QANAT__END_KIND__END_LOST);
}


static const qn_backend_engine_t s_engine = {
    .name = "databricks",
    .destroy = s_engine_destroy,
    .stop = s_attempt_stop,
    .lost = s_engine_lost
};

static void s_dbx_destroy (void **state_p);

//  Host and credentials from the agent's environment and options only
static int
s_credentials (s_dbx_t *self, const qn_backend_config_t *config, char *error,
               size_t error_size)
{
    const char *host = qn_backend_option (config, "databricks", "host");
    if (!host)
        host = getenv ("DATABRICKS_HOST");
    if (!host || (strncmp (host, "https://", 8) != 0 && strncmp (host, "http://", 7) != 0)) {
        snprintf (error, error_size, "no workspace: set DATABRICKS_HOST or --backend-option "
                  "databricks.host=https://...");
        return -1;
    }
    self->host = strdup (host);
    if (self->host && self->host [0])
        while (strlen (self->host) > 8 && self->host [strlen (self->host) - 1] == '/')
            self->host [strlen (self->host) - 1] = '\0';
    const char *token_file = qn_backend_option (config, "databricks", "token_file");
    const char *token = getenv ("DATABRICKS_TOKEN");
    if (token_file) {
        char *text = qn_file_read_small (token_file, S_TOKEN_MAX, NULL, NULL, error, error_size);
        if (!text)
            return -1;
        text [strcspn (text, "\r\n")] = '\0';
        self->pat = text;
    }
    else
    if (token && *token)
        self->pat = strdup (token);
    else {
        const char *id = getenv ("DATABRICKS_CLIENT_ID");
        const char *secret = getenv ("DATABRICKS_CLIENT_SECRET");
        if (!id || !*id || !secret || !*secret) {
            snprintf (error, error_size, "no credentials: set DATABRICKS_TOKEN (or "
                      "databricks.token_file), or DATABRICKS_CLIENT_ID and "
                      "DATABRICKS_CLIENT_SECRET for OAuth");
            return -1;
        }
        self->client_id = strdup (id);
        self->client_secret = strdup (secret);
    }
    return self->host? 0: -1;
}

static void *
s_dbx_create (zloop_t *loop, const qn_backend_config_t *config,
              const qn_backend_events_t *events, void *arg)
{
    char error [512] = "";
    if (qn_backend_options_check (config, "databricks", s_known_options, error,
                                  sizeof (error)) == -1) {
        qn_log (QN_LOG_ERROR, "databricks", "databricks backend: %s", error);
        return NULL;
    }
    s_dbx_t *self = (s_dbx_t *) calloc (1, sizeof (s_dbx_t));
    if (!self)
        return NULL;
    self->poll_ms = S_DEFAULT_POLL_MS;
    self->max_tries = S_DEFAULT_MAX_TRIES;
    bool ok = qn_backend_front_init (&self->front, &s_engine, loop, config, events, arg) == 0;
    const char *poll_ms = qn_backend_option (config, "databricks", "poll_ms");
    const char *max_tries = qn_backend_option (config, "databricks", "max_tries");
    if (ok && poll_ms && (atoi (poll_ms) < 10 || atoi (poll_ms) > 600000)) {
        snprintf (error, sizeof (error), "poll_ms wants 10 to 600000");
        ok = false;
    }
    if (ok && max_tries && (atoi (max_tries) < 1 || atoi (max_tries) > 100)) {
        snprintf (error, sizeof (error), "max_tries wants 1 to 100");
        ok = false;
    }
    if (ok && poll_ms)
        self->poll_ms = atoi (poll_ms);
    if (ok && max_tries)
        self->max_tries = (unsigned) atoi (max_tries);
    ok = ok && s_credentials (self, config, error, sizeof (error)) == 0;
    if (!ok) {
        if (*error)
            qn_log (QN_LOG_ERROR, "databricks", "databricks backend: %s", error);
        void *state = self;
        s_dbx_destroy (&state);
        return NULL;
    }
    qn_log (QN_LOG_INFO, "databricks", "databricks backend: workspace %s, %s", self->host,
            self->pat? "personal access token": "OAuth machine-to-machine");
    return self;
}

static void
s_wipe (char **text_p)
{
    if (*text_p)
        memset (*text_p, 0, strlen (*text_p));
    free (*text_p);
    *text_p = NULL;
}

static void
s_dbx_destroy (void **state_p)
{
    s_dbx_t *self = (s_dbx_t *) *state_p;
    if (!self)
        return;
    qn_backend_front_fini (&self->front);
    qn_rest_destroy (&self->rest);
    free (self->host);
    s_wipe (&self->pat);
    s_wipe (&self->client_id);
    s_wipe (&self->client_secret);
    s_wipe (&self->access_token);
    free (self);
    *state_p = NULL;
}

const qn_backend_ops_t qn_backend_databricks = {
    .name = "databricks",
    .flags = QN_BACKEND_CAN_REATTACH | QN_BACKEND_REMOTE,
    .create = s_dbx_create,
    .start = s_dbx_start,
    .reattach = s_dbx_reattach,
    .stop = qn_backend_front_stop,
    .set_paused = qn_backend_front_set_paused,
    .running = qn_backend_front_running,
    .shutdown = qn_backend_front_shutdown,
    .destroy = s_dbx_destroy
};
