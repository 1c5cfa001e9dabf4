/*  qn_backend_ray - runs attempts as Ray jobs through the Jobs REST API of
    a Ray cluster's dashboard.  See qn_backend.h for the ops contract.

    An attempt is one job whose submission_id is qanat-<run>-<task index>-<attempt>:
    POST /api/jobs/ with the task's command as entrypoint (its argv
    shell-quoted), runtime_env.env_vars from its environment,
    runtime_env.working_dir and pip from the task's `ray:` block,
    entrypoint_num_cpus / _num_gpus / _memory from its resources,
    entrypoint_resources from the block, and metadata naming the attempt
    (qanat.run, qanat.task, qanat.attempt, qanat.agent).  Ray refuses a
    second job with a known submission_id.  The submission_id is reported
    as the engine job id before the submit (qn_backend.h, "Submit, then
    record?"): a re-attach reads that job, submits it when the dashboard
    does not know it (404), and a submit that finds it (a 400 saying so)
    checks its metadata and follows it, so the work never starts twice.

    Every poll_ms: GET /api/jobs/<id> (status PENDING, RUNNING, SUCCEEDED,
    FAILED, STOPPED, and its message), then GET /api/jobs/<id>/logs (the
    driver log so far: Ray has no offset to read from, only the whole
    log, so a log of N MiB is read every N + 1 polls at most, up to
    S_LOG_WAIT_MAX_MS apart, and always at the end; one past
    QN_REST_RESPONSE_MAX is no longer read, the job still followed).  The cursor is the byte offset of the log up to
    which whole lines went out: a re-attach resumes there, no line lost
    or repeated.  Lines are qn_remote_log's (metrics and value outputs by
    marker lines).  stop POSTs /api/jobs/<id>/stop.

    Throttling and outages: a 429 or 5xx answer, or no answer, is tried
    again at the next poll, not before its Retry-After; a submit is tried
    S_SUBMIT_TRIES times (the submission_id makes that safe).  A 401 or
    403 (an expired token) re-reads the token file and tries again;
    S_AUTH_TRIES in a row fail the attempt with the dashboard's message.
*/
#include "qn_backend.h"
#include "qn_remote.h"
#include "qn_log.h"
#include "qn_msg.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

#define S_SUBMIT_TRIES          8
#define S_POLL_TRIES            30          //  polls in a row without an answer
#define S_LINE_MAX              (64 * 1024)
#define S_LOG_STEP              (1024 * 1024)   //  a read of the whole log per this
                                                //  much of it waits one poll more
#define S_LOG_WAIT_MAX_MS       30000

typedef struct {
    qn_remote_attempt_t base;   //  first; base.id is the submission_id
    json_t *submit;             //  the body, kept for tries again
    int64_t offset;             //  log bytes handed out as whole lines
    char status [16];           //  as last read
    char *message;              //  the job's message, as last read
    bool setup_failed;          //  error_type RUNTIME_ENV_SETUP_FAILED
    int exit_code;              //  driver_exit_code, -1 if none
    bool terminal;              //  SUCCEEDED, FAILED or STOPPED
    int64_t next_log_ms;        //  zclock_mono: no log read before, while it runs
    bool log_capped;            //  past QN_REST_RESPONSE_MAX: no longer read
} s_attempt_t;


static void s_logs_done (void *arg, uint64_t call, long status, json_t *body,
                         const char *error);


//  ---------------------------------------------------------------------
//  Attempt records

static void
s_attempt_destroy (qn_remote_attempt_t *base)
{
    s_attempt_t *self = (s_attempt_t *) base;
    qn_remote_attempt_fini (&self->base);
    json_decref (self->submit);
    free (self->message);
    free (self);
}

static s_attempt_t *
s_attempt_new (qn_remote_t *backend, const qn_attempt_key_t *key, const char *id)
{
    s_attempt_t *self = (s_attempt_t *) calloc (1, sizeof (s_attempt_t));
    if (!self)
        return NULL;
    self->exit_code = -1;
    if (qn_remote_attempt_init (&self->base, backend, key, id) == -1) {
        s_attempt_destroy (&self->base);
        return NULL;
    }
    return self;
}

static void
s_url (s_attempt_t *self, const char *suffix, char *url, size_t size)
{
    snprintf (url, size, "%s/api/jobs/%s%s", self->base.engine->url, self->base.id, suffix);
}

//  Ends the attempt as the job ended.  The first line of its message
//  only: Ray appends the log's tail to a failure's, which the stack
//  trace shows already
static void
s_finish_outcome (s_attempt_t *self)
{
    if (streq (self->status, "SUCCEEDED")) {
        qn_remote_finish (&self->base, 0, "", QANAT__END_KIND__END_EXIT);
        return;
    }
    const char *message = self->message? self->message: "";
    size_t len = strcspn (message, "\n");
    char reason [600];
    snprintf (reason, sizeof (reason), "ray job %s: %s%s%.*s", self->base.id, self->status,
              len? ": ": "", (int) (len > 400? 400: len), message);
    if (streq (self->status, "STOPPED"))
        qn_remote_finish (&self->base, -1, reason, QANAT__END_KIND__END_CANCELED);
    else
        qn_remote_finish (&self->base, self->exit_code > 0? self->exit_code: 1, reason,
                          self->setup_failed? QANAT__END_KIND__END_START_FAILED
                                            : QANAT__END_KIND__END_EXIT);
}


//  ---------------------------------------------------------------------
//  Answers

#define S_REPLY \
    s_attempt_t *self = (s_attempt_t *) arg; \
    self->base.call = 0; \
    qn_remote_reply_t answer; \
    qn_remote_reply (self->base.engine->rest, call, status, body, error, &answer); \
    const qn_remote_reply_t *reply = &answer

static void
s_announce (s_attempt_t *self)
{
    char url [700];
    snprintf (url, sizeof (url), "%s/#/jobs/%s", self->base.engine->url, self->base.id);
    qn_remote_started (&self->base, url);
}

static void
s_submit_done (void *arg, uint64_t call, long status, json_t *body, const char *error)
{
    S_REPLY;
    if (status >= 200 && status < 300) {
        s_announce (self);
        qn_remote_next (&self->base);
        return;
    }
    //  Our own earlier submit (an agent that crashed before recording
    //  it, or an answer lost on the way): followed once its metadata
    //  says it is this attempt's
    if (status == 400 && reply->text && memmem (reply->text, reply->size, "already exists", 14)) {
        qn_log (QN_LOG_INFO, "ray", "ray job %s exists already: following it", self->base.id);
        self->base.exists = true;
        self->base.tries = 0;
        qn_remote_next (&self->base);
        return;
    }
    qn_remote_trouble (&self->base, reply, "submit it", S_SUBMIT_TRIES,
                       QANAT__END_KIND__END_START_FAILED);
}

//  A job found by its submission_id must be the attempt's own
static bool
s_metadata_match (s_attempt_t *self, json_t *job)
{
    json_t *metadata = json_object_get (job, "metadata");
    const qn_attempt_key_t *key = &self->base.base.key;
    char run [32], task [16], number [16];
    snprintf (run, sizeof (run), "%" PRIu64, key->run_id);
    snprintf (task, sizeof (task), "%u", key->task_index);
    snprintf (number, sizeof (number), "%u", key->attempt);
    const char *have_run = json_string_value (json_object_get (metadata, "qanat.run"));
    const char *have_task = json_string_value (json_object_get (metadata, "qanat.task"));
    const char *have_number = json_string_value (json_object_get (metadata, "qanat.attempt"));
    return have_run && streq (have_run, run) && have_task && streq (have_task, task)
        && have_number && streq (have_number, number);
}

static void
s_status_done (void *arg, uint64_t call, long status, json_t *body, const char *error)
{
    S_REPLY;
    if (status == 404 && !self->base.verified && self->submit) {
        //  Re-attached to an id the agent recorded before its submit,
        //  which never reached the dashboard: submitted now
        qn_log (QN_LOG_INFO, "ray", "ray job %s is not there: submitting it", self->base.id);
        self->base.exists = false;
        self->base.tries = 0;
        qn_remote_next (&self->base);
        return;
    }
    if (status < 200 || status >= 300 || !json_is_object (body)) {
        qn_remote_trouble (&self->base, reply, "read its status", S_POLL_TRIES,
                           QANAT__END_KIND__END_LOST);
        return;
    }
    self->base.tries = self->base.auth_failures = 0;
    if (!self->base.verified) {
        if (!s_metadata_match (self, body)) {
            char reason [300];
            snprintf (reason, sizeof (reason), "ray job %s belongs to something else (its "
                      "metadata names another attempt)", self->base.id);
            self->base.exists = false;      //  not ours: never stop it
            qn_remote_finish (&self->base, -1, reason, QANAT__END_KIND__END_START_FAILED);
            return;
        }
        if (!self->base.announced)
            s_announce (self);              //  the resubmission found it
        self->base.verified = true;
    }
    const char *state = json_string_value (json_object_get (body, "status"));
    snprintf (self->status, sizeof (self->status), "%s", state? state: "");
    const char *message = json_string_value (json_object_get (body, "message"));
    free (self->message);
    self->message = message? strdup (message): NULL;
    const char *type = json_string_value (json_object_get (body, "error_type"));
    self->setup_failed = type && streq (type, "RUNTIME_ENV_SETUP_FAILED");
    json_t *code = json_object_get (body, "driver_exit_code");
    if (json_is_integer (code))
        self->exit_code = (int) json_integer_value (code);
    self->terminal = streq (self->status, "SUCCEEDED") || streq (self->status, "FAILED")
                  || streq (self->status, "STOPPED");
    //  Then the log, read to its end once the job is over; while it runs,
    //  a large log is read less often (each read sends all of it)
    if (self->log_capped && self->terminal) {
        s_finish_outcome (self);
        return;
    }
    if (self->log_capped || (!self->terminal && zclock_mono () < self->next_log_ms))
        return;
    char url [700];
    s_url (self, "/logs", url, sizeof (url));
    qn_remote_request (&self->base, "GET", url, NULL, s_logs_done);
}

//  Hands out the whole lines of the log past the offset; at the end (the
//  job over) the unterminated rest too
static void
s_take_log (s_attempt_t *self, const char *text, size_t size, bool end)
{
    if (self->offset > (int64_t) size) {
        qn_backend_attempt_system_log (&self->base.base, "the log of ray job %s is shorter "
                                       "than what was read of it; reading it again from its "
                                       "start", self->base.id);
        self->offset = 0;
    }
    size_t at = (size_t) self->offset;
    int64_t now = qn_now_us ();
    while (at < size) {
        const char *start = text + at;
        const char *newline = (const char *) memchr (start, '\n', size - at);
        size_t len = newline? (size_t) (newline - start): size - at;
        if (!newline && !end && len < S_LINE_MAX)
            break;              //  its end is yet to come
        if (len > S_LINE_MAX)
            len = S_LINE_MAX;   //  a runaway line goes out in pieces
        qn_remote_log_line (&self->base.base, self->base.values, start, len, 0, now);
        at += len + (newline && start + len == newline? 1: 0);
    }
    self->offset = (int64_t) at;
    char cursor [32];
    snprintf (cursor, sizeof (cursor), "%" PRId64, self->offset);
    qn_backend_attempt_cursor (&self->base.base, cursor);
}

static void
s_logs_done (void *arg, uint64_t call, long status, json_t *body, const char *error)
{
    S_REPLY;
    if (status < 200 || status >= 300) {
        qn_remote_trouble (&self->base, reply, "read its log", S_POLL_TRIES,
                           QANAT__END_KIND__END_LOST);
        return;
    }
    self->base.tries = 0;
    if (error && *error) {
        //  An answer past QN_REST_RESPONSE_MAX (it was not kept)
        qn_backend_attempt_system_log (&self->base.base, "the log of ray job %s is past %d "
                                       "MiB: it is no longer read (the job is still "
                                       "followed)", self->base.id,
                                       QN_REST_RESPONSE_MAX / (1024 * 1024));
        self->log_capped = true;
        if (self->terminal)
            s_finish_outcome (self);
        return;
    }
    json_t *logs = json_object_get (body, "logs");
    int64_t waits = (int64_t) (json_string_length (logs) / S_LOG_STEP);
    int64_t wait_ms = waits * self->base.engine->poll_ms;
    self->next_log_ms = zclock_mono () + (wait_ms < S_LOG_WAIT_MAX_MS? wait_ms
                                                                      : S_LOG_WAIT_MAX_MS);
    //  Paused (back-pressure): the next poll reads it
    if (self->base.base.front->paused)
        return;
    if (json_is_string (logs))
        s_take_log (self, json_string_value (logs), json_string_length (logs), self->terminal);
    if (self->terminal)
        s_finish_outcome (self);
}


//  ---------------------------------------------------------------------
//  The engine's steps

static void
s_step (qn_remote_attempt_t *base)
{
    s_attempt_t *self = (s_attempt_t *) base;
    char url [700];
    if (!base->exists) {
        //  The submit's path ends with '/', as the dashboard routes it
        snprintf (url, sizeof (url), "%s/api/jobs/", base->engine->url);
        qn_remote_request (base, "POST", url, self->submit, s_submit_done);
    }
    else {
        s_url (self, "", url, sizeof (url));
        qn_remote_request (base, "GET", url, NULL, s_status_done);
    }
}

static bool
s_end_call (qn_remote_attempt_t *base, qn_rest_call_t *call, char *url, size_t url_size)
{
    s_url ((s_attempt_t *) base, "/stop", url, url_size);
    call->method = "POST";
    call->url = url;
    return true;
}

static const qn_remote_ops_t s_ops = {
    .name = "ray",
    .what = "ray job",
    .url_option = "address",
    .url_env = { "RAY_API_SERVER_ADDRESS", "RAY_ADDRESS", NULL },
    .step = s_step,
    .end_call = s_end_call,
    .destroy = s_attempt_destroy
};


//  ---------------------------------------------------------------------
//  Starting and re-attaching

//  argv as one shell command line, every word single-quoted
static char *
s_entrypoint (const Qanat__Assign *assign)
{
    //  A shell command (run as text) is Ray's entrypoint as it is: Ray
    //  runs it with a shell too, and shows it readable
    if (assign->n_argv == 3 && (streq (assign->argv [0], "/bin/sh")
                            ||  streq (assign->argv [0], "sh"))
    &&  streq (assign->argv [1], "-c"))
        return strdup (assign->argv [2]);
    size_t size = 1;
    for (size_t i = 0; i < assign->n_argv; i++)
        size += 4 * strlen (assign->argv [i]) + 3;
    char *line = (char *) malloc (size);
    if (!line)
        return NULL;
    char *at = line;
    for (size_t i = 0; i < assign->n_argv; i++) {
        if (i)
            *at++ = ' ';
        *at++ = '\'';
        for (const char *c = assign->argv [i]; *c; c++) {
            if (*c == '\'') {
                memcpy (at, "'\\''", 4);
                at += 4;
            }
            else
                *at++ = *c;
        }
        *at++ = '\'';
    }
    *at = '\0';
    return line;
}

//  A JSON object option of the task (the workflow checked it), or a new
//  empty one; NULL with the reason in error when it is not an object
static json_t *
s_object_option (const Qanat__Assign *assign, const char *key, char *error, size_t error_size)
{
    const char *text = qn_backend_task_option (assign, key);
    if (!text)
        return json_object ();
    json_error_t problem;
    json_t *value = json_loads (text, JSON_REJECT_DUPLICATES, &problem);
    if (!json_is_object (value)) {
        json_decref (value);
        snprintf (error, error_size, "ray: %s is not a mapping", key);
        return NULL;
    }
    return value;
}

//  The job's body, from the assignment and the task's `ray:` options
//  (runtime_env and entrypoint_resources, JSON mappings).  NULL with the
//  reason in error.
static json_t *
s_submit_body (s_attempt_t *attempt, const Qanat__Assign *assign, char *error,
               size_t error_size)
{
    json_t *runtime_env = s_object_option (assign, "runtime_env", error, error_size);
    json_t *resources = runtime_env? s_object_option (assign, "entrypoint_resources", error,
                                                      error_size): NULL;
    if (!resources) {
        json_decref (runtime_env);
        return NULL;
    }
    //  The task's environment joins the block's env_vars; the agent's
    //  own paths mean nothing on the cluster
    json_t *env = json_object_get (runtime_env, "env_vars");
    if (!json_is_object (env)) {
        env = json_object ();
        json_object_set_new (runtime_env, "env_vars", env);
    }
    for (size_t i = 0; i < assign->n_env; i++) {
        const char *key = assign->env [i]->key, *value = assign->env [i]->value;
        if (key && value && !streq (key, "QANAT_STAGE_DIR") && !streq (key, "QANAT_VALUES")
        &&  !streq (key, "QANAT_WORKDIR"))
            json_object_set_new (env, key, json_string (value));
    }
    //  Value inputs, also when the assignment came back without the
    //  agent's additions (a resubmission after a restart)
    for (size_t i = 0; i < assign->n_inputs; i++) {
        const Qanat__InputSpec *input = assign->inputs [i];
        if (input->kind != QANAT__ARTIFACT_KIND__ARTIFACT_VALUE || !input->name)
            continue;
        char variable [200];
        snprintf (variable, sizeof (variable), "QANAT_INPUT_%s", input->name);
        if (!json_object_get (env, variable))
            json_object_set_new (env, variable, json_string (input->value? input->value: ""));
    }
    char run [32], task [16], number [16];
    snprintf (run, sizeof (run), "%" PRIu64, assign->attempt->run_id);
    snprintf (task, sizeof (task), "%u", assign->attempt->task_index);
    snprintf (number, sizeof (number), "%u", assign->attempt->attempt);
    char *entrypoint = s_entrypoint (assign);
    json_t *body = entrypoint? json_pack ("{s:s, s:s, s:o, s:{s:s, s:s, s:s, s:s, s:s}}",
                                          "entrypoint", entrypoint,
                                          "submission_id", attempt->base.id,
                                          "runtime_env", runtime_env,
                                          "metadata", "qanat.run", run, "qanat.task", task,
                                          "qanat.attempt", number, "qanat.task_name",
                                          assign->task_name? assign->task_name: "",
                                          "qanat.agent", attempt->base.engine->agent_name)
                             : NULL;
    if (!entrypoint)
        json_decref (runtime_env);      //  json_pack took it otherwise
    free (entrypoint);
    if (!body) {
        json_decref (resources);
        snprintf (error, error_size, "out of memory");
        return NULL;
    }
    if (assign->cpus)
        json_object_set_new (body, "entrypoint_num_cpus", json_integer (assign->cpus));
    if (assign->gpus)
        json_object_set_new (body, "entrypoint_num_gpus", json_integer (assign->gpus));
    if (assign->memory_mb)
        json_object_set_new (body, "entrypoint_memory",
                             json_integer ((json_int_t) assign->memory_mb * 1024 * 1024));
    if (json_object_size (resources))
        json_object_set_new (body, "entrypoint_resources", resources);
    else
        json_decref (resources);
    return body;
}

static int
s_ray_start (void *state, const Qanat__Assign *assign, char *error, size_t error_size)
{
    qn_remote_t *self = (qn_remote_t *) state;
    assert (self);
    qn_attempt_key_t key;
    if (qn_backend_front_check (&self->front, assign, QN_BACKEND_CHECK_COMMAND, &key,
                                error, error_size) == -1)
        return -1;
    if (assign->workdir && *assign->workdir) {
        snprintf (error, error_size, "the ray backend cannot run a task in place ('workdir'): "
                  "a Ray job shares no directory with its agent");
        return -1;
    }
    const char *address = qn_backend_task_option (assign, "address");
    if (address && !streq (address, self->url)) {
        snprintf (error, error_size, "this agent's Ray dashboard is %.200s, not %.200s "
                  "(give the agent --backend-option ray.address=...)", self->url, address);
        return -1;
    }
    s_attempt_t *attempt = s_attempt_new (self, &key, NULL);
    if (!attempt) {
        snprintf (error, error_size, "out of memory");
        return -1;
    }
    attempt->submit = s_submit_body (attempt, assign, error, error_size);
    if (!attempt->submit
    ||  qn_remote_follow (&attempt->base, assign->timeout_s, error, error_size) == -1) {
        s_attempt_destroy (&attempt->base);
        return -1;
    }
    return 0;
}

static int
s_ray_reattach (void *state, const Qanat__Assign *assign, const char *engine_job_id,
                const char *cursor, char *error, size_t error_size)
{
    qn_remote_t *self = (qn_remote_t *) state;
    assert (self);
    qn_attempt_key_t key;
    if (qn_remote_reattach_key (self, assign, &key, error, error_size) == -1)
        return -1;
    s_attempt_t *attempt = s_attempt_new (self, &key, engine_job_id);
    if (!attempt) {
        snprintf (error, error_size, "invalid ray job id '%.100s' (want qanat-%" PRIu64
                  "-%u-%u)", engine_job_id? engine_job_id: "", key.run_id, key.task_index,
                  key.attempt);
        return -1;
    }
    char *end = NULL;
    errno = 0;
    long long offset = cursor && *cursor? strtoll (cursor, &end, 10): 0;
    if (cursor && *cursor && (errno || !end || *end || offset < 0)) {
        snprintf (error, error_size, "invalid ray log cursor '%.100s'", cursor);
        s_attempt_destroy (&attempt->base);
        return -1;
    }
    attempt->offset = offset;
    attempt->base.exists = attempt->base.announced = true;
    //  Kept for a job the dashboard does not know (s_status_done)
    if (assign->n_argv && !(attempt->submit = s_submit_body (attempt, assign, error,
                                                              error_size))) {
        s_attempt_destroy (&attempt->base);
        return -1;
    }
    if (qn_remote_follow (&attempt->base, assign->timeout_s, error, error_size) == -1) {
        s_attempt_destroy (&attempt->base);
        return -1;
    }
    qn_log (QN_LOG_INFO, "ray", "attempt %" PRIu64 "/%u/%u: following ray job %s again from "
            "byte %lld", key.run_id, key.task_index, key.attempt, attempt->base.id, offset);
    return 0;
}


//  ---------------------------------------------------------------------
//  The ops table

static void *
s_ray_create (zloop_t *loop, const qn_backend_config_t *config,
              const qn_backend_events_t *events, void *arg)
{
    return qn_remote_create (&s_ops, loop, config, events, arg);
}

static const char *
s_ray_no_files (void *state)
{
    (void) state;
    return "a Ray job shares no filesystem with its agent (value inputs travel in "
           "runtime_env.env_vars, value outputs as '" QN_REMOTE_OUTPUT_PREFIX "NAME=VALUE' "
           "log lines)";
}

const qn_backend_ops_t qn_backend_ray = {
    .name = "ray",
    .flags = QN_BACKEND_CAN_REATTACH | QN_BACKEND_REMOTE | QN_BACKEND_VALUE_OUTPUTS
,
    .no_files = s_ray_no_files,
    .create = s_ray_create,
    .start = s_ray_start,
    .reattach = s_ray_reattach,
    .stop = qn_backend_front_stop,
    .set_paused = qn_backend_front_set_paused,
    .running = qn_backend_front_running,
    .shutdown = qn_backend_front_shutdown,
    .destroy = qn_remote_destroy
};
