/*  qn_remote - what the Ray and Airflow backends share.  See qn_remote.h.
*/
#include "qn_remote.h"
#include "qn_log.h"
#include "qn_msg.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_MARKER_MAX  4096

void
qn_remote_output (qn_backend_attempt_t *attempt, const char *values_path, const char *text,
                  size_t size)
{
    const char *equals = (const char *) memchr (text, '=', size);
    size_t name_len = equals? (size_t) (equals - text): 0;
    bool valid = name_len > 0 && name_len <= 128 && size < S_MARKER_MAX;
    for (size_t i = 0; valid && i < name_len; i++) {
        char c = text [i];
        valid = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
             || c == '_' || c == '-';
    }
    if (!valid) {
        qn_backend_attempt_system_log (attempt, "ignored output line: want '"
                                       QN_REMOTE_OUTPUT_PREFIX "name=value'");
        return;
    }
    if (!values_path) {
        qn_backend_attempt_system_log (attempt, "ignored output line: the attempt has no "
                                       "values file");
        return;
    }
    //  Appended: after a re-attach a line may come twice, and the last
    //  value of a name wins
    int fd = open (values_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    char line [S_MARKER_MAX + 1];
    memcpy (line, text, size);
    line [size] = '\n';
    if (fd == -1 || write (fd, line, size + 1) != (ssize_t) (size + 1))
        qn_backend_attempt_system_log (attempt, "cannot record output '%.*s': %s",
                                       (int) name_len, text, strerror (errno));
    if (fd != -1)
        close (fd);
}

void
qn_remote_log_line (qn_backend_attempt_t *attempt, const char *values_path, const char *line,
                    size_t size, size_t payload, int64_t time_us)
{
    if (payload > size)
        payload = 0;
    const char *text = line + payload;
    size_t text_size = size - payload;
    while (text_size && (text [text_size - 1] == '\r'))
        text_size--;
    size_t output = strlen (QN_REMOTE_OUTPUT_PREFIX);
    if (qn_backend_attempt_metric_line (attempt, text, text_size, time_us))
        return;
    if (text_size >= output && memcmp (text, QN_REMOTE_OUTPUT_PREFIX, output) == 0)
        qn_remote_output (attempt, values_path, text + output, text_size - output);
    else
        qn_backend_attempt_log (attempt, QANAT__STREAM__STREAM_STDOUT, true, line, size, false,
                                time_us);
}

int
qn_remote_log_dirs (const char *dir, char *error, size_t error_size)
{
    char work [4096];
    snprintf (work, sizeof (work), "%s/work", dir);
    if ((mkdir (dir, 0700) == -1 && errno != EEXIST)
    ||  (mkdir (work, 0700) == -1 && errno != EEXIST)) {
        snprintf (error, error_size, "cannot create %s: %s", work, strerror (errno));
        return -1;
    }
    return 0;
}


//  ---------------------------------------------------------------------
//  Credentials

void
qn_remote_auth_fini (qn_remote_auth_t *auth)
{
    free (auth->token_file);
    free (auth->username);
    free (auth->password_file);
    free (auth->ca_file);
    memset (auth, 0, sizeof (*auth));
}

//  The first line of a small secret file into buffer; -1 when it cannot
//  be read or is empty
static int
s_read_secret (const char *path, char *buffer, size_t size)
{
    int fd = open (path, O_RDONLY | O_CLOEXEC);
    if (fd == -1)
        return -1;
    ssize_t got = read (fd, buffer, size - 1);
    close (fd);
    if (got <= 0)
        return -1;
    buffer [got] = '\0';
    buffer [strcspn (buffer, "\r\n")] = '\0';
    return *buffer? 0: -1;
}

int
qn_remote_setup (void *arg, CURL *easy, struct curl_slist **headers)
{
    qn_remote_auth_t *auth = (qn_remote_auth_t *) arg;
    if (!auth)
        return 0;
    if (auth->ca_file)
        curl_easy_setopt (easy, CURLOPT_CAINFO, auth->ca_file);
    char secret [4096];
    char *header = NULL;
    if (auth->token_file) {
        if (s_read_secret (auth->token_file, secret, sizeof (secret)) == -1) {
            qn_log (QN_LOG_WARNING, "engine", "cannot read the token file %s", auth->token_file);
            return -1;
        }
        header = zsys_sprintf ("Authorization: Bearer %s", secret);
    }
    else
    if (auth->username && auth->password_file) {
        if (s_read_secret (auth->password_file, secret, sizeof (secret)) == -1) {
            qn_log (QN_LOG_WARNING, "engine", "cannot read the password file %s",
                    auth->password_file);
            return -1;
        }
        //  libcurl encodes the pair
        curl_easy_setopt (easy, CURLOPT_HTTPAUTH, (long) CURLAUTH_BASIC);
        curl_easy_setopt (easy, CURLOPT_USERNAME, auth->username);
        curl_easy_setopt (easy, CURLOPT_PASSWORD, secret);
        memset (secret, 0, sizeof (secret));
        return 0;
    }
    else
        return 0;
    memset (secret, 0, sizeof (secret));
    struct curl_slist *grown = header? curl_slist_append (*headers, header): NULL;
    if (header) {
        memset (header, 0, strlen (header));
        zstr_free (&header);
    }
    if (!grown)
        return -1;
    *headers = grown;
    return 0;
}


//  ---------------------------------------------------------------------
//  Answers

void
qn_remote_reply (qn_rest_t *rest, uint64_t call, long status, json_t *body, const char *error,
                 qn_remote_reply_t *reply)
{
    memset (reply, 0, sizeof (*reply));
    reply->status = status;
    reply->json = body;
    reply->error = error;
    reply->text = qn_rest_text (rest, call, &reply->size);
    reply->retry_after_ms = qn_rest_retry_after_ms (rest, call);
}

void
qn_remote_describe (const qn_remote_reply_t *reply, char *buffer, size_t size)
{
    if (reply->status == 0) {
        snprintf (buffer, size, "%s", reply->error && *reply->error? reply->error: "no answer");
        return;
    }
    static const char *fields [] = { "detail", "message", "error", "title", NULL };
    const char *message = NULL;
    for (size_t i = 0; fields [i] && !message; i++) {
        message = json_string_value (json_object_get (reply->json, fields [i]));
        if (message && !*message)
            message = NULL;
    }
    size_t len = message? strcspn (message, "\n"): 0;
    if (!message && reply->text && !reply->json) {
        //  A plain text answer (Ray's): its last line says what, after
        //  any traceback
        const char *text = reply->text;
        size_t text_size = reply->size;
        while (text_size && (text [text_size - 1] == '\n' || text [text_size - 1] == '\r'))
            text_size--;
        const char *last = text;
        for (size_t i = 0; i < text_size; i++)
            if (text [i] == '\n' && i + 1 < text_size)
                last = text + i + 1;
        message = last;
        len = (size_t) (text + text_size - last);
    }
    if (len > 300)
        len = 300;
    if (message && len)
        snprintf (buffer, size, "HTTP %ld: %.*s", reply->status, (int) len, message);
    else
        snprintf (buffer, size, "HTTP %ld", reply->status);
}

int64_t
qn_remote_wait_ms (const qn_remote_reply_t *reply, unsigned tries)
{
    return qn_rest_backoff_ms (tries? tries: 1, reply->retry_after_ms, 500, 60000);
}


//  ---------------------------------------------------------------------
//  The common state

#define S_DEFAULT_POLL_MS   1000
#define S_AUTH_TRIES        3
#define S_UNSENT_TRIES      10

static void s_hook_destroy (qn_backend_attempt_t *base);
static void s_hook_end_all (qn_backend_front_t *front, int grace_ms, const char *reason);
static void s_hook_lost (qn_backend_attempt_t *base, const char *reason);

static const qn_backend_engine_t s_hooks = {
    .name = "remote engine",
    .destroy = s_hook_destroy,
    .stop = qn_remote_stop,
    .end_all = s_hook_end_all,
    .lost = s_hook_lost
};

//  Credentials from the options, else the environment (<NAME>_TOKEN_FILE,
//  <NAME>_USERNAME, <NAME>_PASSWORD_FILE, the name upper-cased)
static int
s_auth (qn_remote_t *self, const qn_backend_config_t *config)
{
    const char *name = self->ops->name;
    static const char *keys [] = { "token_file", "username", "password_file", "ca_file" };
    char *values [4] = { NULL, NULL, NULL, NULL };
    for (int i = 0; i < 4; i++) {
        const char *value = qn_backend_option (config, name, keys [i]);
        char variable [64];
        snprintf (variable, sizeof (variable), "%s_%s", name, keys [i]);
        for (char *c = variable; *c; c++)
            *c = (char) toupper ((unsigned char) *c);
        if (!value || !*value)
            value = getenv (variable);
        if (value && *value && !(values [i] = strdup (value)))
            return -1;
    }
    self->auth.token_file = values [0];
    self->auth.username = values [1];
    self->auth.password_file = values [2];
    self->auth.ca_file = values [3];
    if (self->auth.username && !self->auth.password_file) {
        qn_log (QN_LOG_ERROR, name, "%s backend: a username wants a password_file", name);
        return -1;
    }
    if (self->ops->needs_credentials && !self->auth.token_file && !self->auth.username) {
        qn_log (QN_LOG_ERROR, name, "%s backend: no credentials (give --backend-option "
                "%s.token_file=PATH, or %s.username=USER and %s.password_file=PATH)", name,
                name, name, name);
        return -1;
    }
    return 0;
}

int
qn_remote_init (qn_remote_t *self, const qn_remote_ops_t *ops, zloop_t *loop,
                const qn_backend_config_t *config, const qn_backend_events_t *events, void *arg)
{
    self->ops = ops;
    self->poll_ms = S_DEFAULT_POLL_MS;
    const char *name = ops->name;
    if (qn_backend_front_init (&self->front, &s_hooks, loop, config, events, arg) == -1)
        return -1;
    const char *known [] = {
        ops->url_option, "token_file", "username", "password_file", "ca_file", "poll_ms", NULL
    };
    char error [512];
    if (qn_backend_options_check (config, name, known, error, sizeof (error)) == -1) {
        qn_log (QN_LOG_ERROR, name, "%s backend: %s", name, error);
        return -1;
    }
    const char *url = qn_backend_option (config, name, ops->url_option);
    for (int i = 0; (!url || !*url) && ops->url_env [i]; i++)
        url = getenv (ops->url_env [i]);
    if (!url || (strncmp (url, "http://", 7) != 0 && strncmp (url, "https://", 8) != 0)) {
        qn_log (QN_LOG_ERROR, name, "%s backend: give its address as an http:// or https:// "
                "URL (--backend-option %s.%s=URL%s%s)", name, name, ops->url_option,
                ops->url_env [0]? ", or $": "", ops->url_env [0]? ops->url_env [0]: "");
        return -1;
    }
    self->url = strdup (url);
    self->data_dir = strdup (config->data_dir? config->data_dir: ".");
    self->agent_name = strdup (config->agent_name? config->agent_name: "");
    if (!self->url || !self->data_dir || !self->agent_name || s_auth (self, config) == -1)
        return -1;
    size_t len = strlen (self->url);
    while (len > 0 && self->url [len - 1] == '/')
        self->url [--len] = '\0';
    const char *poll_ms = qn_backend_option (config, name, "poll_ms");
    char *end = NULL;
    long value = poll_ms? strtol (poll_ms, &end, 10): 0;
    if (poll_ms && (!end || *end || value < 10 || value > 600000)) {
        qn_log (QN_LOG_ERROR, name, "%s backend: poll_ms wants 10 to 600000", name);
        return -1;
    }
    if (poll_ms)
        self->poll_ms = (int) value;
    char dir [4096];
    snprintf (dir, sizeof (dir), "%s/%s", self->data_dir, name);
    if (mkdir (dir, 0700) == -1 && errno != EEXIST) {
        qn_log (QN_LOG_ERROR, name, "%s backend: cannot create %s: %s", name, dir,
                strerror (errno));
        return -1;
    }
    //  libcurl is loaded with the first attempt (qn_remote_follow), not
    //  with the agent
    qn_log (QN_LOG_INFO, name, "%s backend: %s", name, self->url);
    return 0;
}

void
qn_remote_fini (qn_remote_t *self)
{
    qn_backend_front_fini (&self->front);
    qn_rest_destroy (&self->rest);
    qn_remote_auth_fini (&self->auth);
    free (self->url);
    free (self->data_dir);
    free (self->agent_name);
}

void *
qn_remote_create (const qn_remote_ops_t *ops, zloop_t *loop, const qn_backend_config_t *config,
                  const qn_backend_events_t *events, void *arg)
{
    assert (loop && config && events);
    qn_remote_t *self = (qn_remote_t *) calloc (1, sizeof (qn_remote_t));
    if (self && qn_remote_init (self, ops, loop, config, events, arg) == -1) {
        void *state = self;
        qn_remote_destroy (&state);
        self = NULL;
    }
    return self;
}

void
qn_remote_destroy (void **state_p)
{
    assert (state_p);
    qn_remote_t *self = (qn_remote_t *) *state_p;
    if (!self)
        return;
    qn_remote_fini (self);
    free (self);
    *state_p = NULL;
}

int
qn_remote_reattach_key (qn_remote_t *self, const Qanat__Assign *assign, qn_attempt_key_t *key,
                        char *error, size_t error_size)
{
    assert (assign && assign->attempt);
    key->run_id = assign->attempt->run_id;
    key->task_index = assign->attempt->task_index;
    key->attempt = assign->attempt->attempt;
    if (qn_backend_front_find (&self->front, key)) {
        snprintf (error, error_size, "attempt is already followed");
        return -1;
    }
    return 0;
}

int
qn_remote_attempt_init (qn_remote_attempt_t *attempt, qn_remote_t *engine,
                        const qn_attempt_key_t *key, const char *id)
{
    attempt->engine = engine;
    char head [28], tail [12];
    snprintf (head, sizeof (head), "qanat-%" PRIu64 "-", key->run_id);
    snprintf (tail, sizeof (tail), "-%u", key->attempt);
    if (id) {
        size_t len = strlen (id);
        bool safe = len < sizeof (attempt->id) && len > strlen (head) + strlen (tail)
                 && strncmp (id, head, strlen (head)) == 0
                 && streq (id + len - strlen (tail), tail);
        for (const char *c = id; safe && *c; c++)
            safe = isalnum ((unsigned char) *c) || *c == '_' || *c == '.' || *c == '-';
        if (!safe)
            return -1;
        snprintf (attempt->id, sizeof (attempt->id), "%s", id);
    }
    else
        snprintf (attempt->id, sizeof (attempt->id), "%s%u%s", head, key->task_index, tail);
    snprintf (attempt->engine_id, sizeof (attempt->engine_id), "%s", attempt->id);
    int rc = qn_backend_attempt_init (&attempt->base, &engine->front, key, 0);
    attempt->dir = zsys_sprintf ("%s/%s/%s", engine->data_dir, engine->ops->name, attempt->id);
    attempt->values = attempt->dir? zsys_sprintf ("%s/" QN_BACKEND_VALUES_NAME, attempt->dir)
                                   : NULL;
    attempt->workdir = attempt->dir? zsys_sprintf ("%s/work", attempt->dir): NULL;
    return rc == 0 && attempt->values && attempt->workdir? 0: -1;
}

void
qn_remote_attempt_fini (qn_remote_attempt_t *attempt)
{
    if (attempt->engine && attempt->engine->rest && attempt->call)
        qn_rest_cancel (attempt->engine->rest, attempt->call);
    attempt->call = 0;
    qn_backend_attempt_fini (&attempt->base);
    zstr_free (&attempt->dir);
    zstr_free (&attempt->values);
    zstr_free (&attempt->workdir);
}


//  ---------------------------------------------------------------------
//  Following attempts

//  One step of an attempt, from the front's timer
static void
s_tick (qn_backend_attempt_t *base, int64_t now)
{
    qn_remote_attempt_t *attempt = (qn_remote_attempt_t *) base;
    char reason [300];
    if (attempt->unsent >= S_UNSENT_TRIES) {
        snprintf (reason, sizeof (reason), "%s %s: cannot make a request to %.100s (can the "
                  "agent read its credentials files?)", attempt->engine->ops->what,
                  attempt->engine_id, attempt->engine->url);
        qn_remote_finish (attempt, -1, attempt->base.stop_reason? attempt->base.stop_reason
                                                                 : reason,
                          attempt->base.stop_reason? attempt->base.stop_kind
                          : attempt->exists? QANAT__END_KIND__END_LOST
                                           : QANAT__END_KIND__END_START_FAILED);
    }
    else
    if (qn_backend_attempt_overdue (base, now, reason, sizeof (reason)))
        qn_remote_stop (base, reason, QANAT__END_KIND__END_TIMEOUT);
    else
        qn_remote_next (attempt);
}

int
qn_remote_follow (qn_remote_attempt_t *attempt, uint32_t timeout_s, char *error,
                  size_t error_size)
{
    qn_remote_t *self = attempt->engine;
    if (qn_rest_ensure (&self->rest, self->front.loop, self->ops->name, qn_remote_setup,
                        &self->auth, error, error_size) == -1)
        return -1;
    attempt->base.timeout_s = timeout_s;
    if (attempt->exists) {
        //  Re-attached: when it started is not known here, the timeout
        //  runs from now
        if (timeout_s)
            attempt->base.deadline_ms = zclock_mono () + (int64_t) timeout_s * 1000;
    }
    char why [300];
    if (qn_remote_log_dirs (attempt->dir, why, sizeof (why)) == -1) {
        if (!attempt->exists) {
            snprintf (error, error_size, "%s", why);
            return -1;
        }
        qn_log (QN_LOG_WARNING, self->ops->name, "%s %s: %s", self->ops->what,
                attempt->engine_id, why);
    }
    qn_backend_front_add (&self->front, &attempt->base);
    qn_backend_front_ticking (&self->front, (size_t) self->poll_ms, s_tick);
    if (!attempt->exists && !attempt->announced)
        //  The id first (qn_backend.h, "Submit, then record?"): the agent
        //  records it before the submit below leaves, at the next turn
        self->front.events->started (self->front.arg, &attempt->base.key, 0, self->front.host,
                                     attempt->workdir, attempt->engine_id);
    qn_remote_next (attempt);
    if (!attempt->exists && !attempt->call) {
        //  Out of the list, not destroyed: the caller does that
        zlistx_detach (self->front.attempts, attempt->base.handle);
        attempt->base.handle = NULL;
        snprintf (error, error_size, "cannot send the request to %s", self->url);
        return -1;
    }
    return 0;
}

#define S_END_TRIES  5

//  The answer to the call that ends the attempt's work
static void
s_end_done (void *arg, uint64_t call, long status, json_t *body, const char *error)
{
    qn_remote_attempt_t *attempt = (qn_remote_attempt_t *) arg;
    qn_remote_t *self = attempt->engine;
    attempt->call = 0;
    qn_remote_reply_t reply;
    qn_remote_reply (self->rest, call, status, body, error, &reply);
    if ((status >= 200 && status < 300) || status == 404 || ++attempt->tries >= S_END_TRIES) {
        if (status < 200 || (status >= 300 && status != 404)) {
            char text [400];
            qn_remote_describe (&reply, text, sizeof (text));
            qn_backend_attempt_system_log (&attempt->base, "cannot end %s %s: %s",
                                           self->ops->what, attempt->engine_id, text);
        }
        qn_remote_finish (attempt, -1, attempt->base.stop_reason, attempt->base.stop_kind);
        return;
    }
    attempt->not_before = zclock_mono () + qn_remote_wait_ms (&reply, (unsigned) attempt->tries);
}

void
qn_remote_next (qn_remote_attempt_t *attempt)
{
    if (attempt->call || zclock_mono () < attempt->not_before)
        return;
    if (attempt->base.stop_reason) {
        qn_remote_t *self = attempt->engine;
        char url [1200];
        qn_rest_call_t call;
        memset (&call, 0, sizeof (call));
        if (attempt->exists && self->ops->end_call (attempt, &call, url, sizeof (url))) {
            qn_remote_request (attempt, call.method, call.url, call.json, s_end_done);
            json_decref (call.json);
        }
        else
            qn_remote_finish (attempt, -1, attempt->base.stop_reason, attempt->base.stop_kind);
        return;
    }
    attempt->engine->ops->step (attempt);
}
void
qn_remote_request (qn_remote_attempt_t *attempt, const char *method, const char *url,
                   json_t *body, qn_rest_done_fn *done)
{
    static const char *const headers [] = { "Accept: application/json", NULL };
    qn_rest_call_t call = { .method = method, .url = url, .json = body, .headers = headers };
    attempt->call = qn_rest_request (attempt->engine->rest, &call, done, attempt);
    //  Not even sent (a credentials file that cannot be read): the tick
    //  tries again a little later, and gives up after a while
    if (attempt->call)
        attempt->unsent = 0;
    else {
        attempt->unsent++;
        attempt->not_before = zclock_mono () + 1000;
    }
}

void
qn_remote_started (qn_remote_attempt_t *attempt, const char *engine_url)
{
    qn_remote_t *self = attempt->engine;
    qn_backend_front_t *front = &self->front;
    attempt->exists = attempt->verified = attempt->announced = true;
    attempt->tries = 0;
    if (attempt->base.timeout_s && !attempt->base.deadline_ms)
        attempt->base.deadline_ms = zclock_mono () + (int64_t) attempt->base.timeout_s * 1000;
    if (engine_url && front->events->link)
        front->events->link (front->arg, &attempt->base.key, engine_url);
    front->events->started (front->arg, &attempt->base.key, 0, front->host, attempt->workdir,
                            attempt->engine_id);
    qn_log (QN_LOG_INFO, self->ops->name, "attempt %" PRIu64 "/%u/%u started as %s %s",
            attempt->base.key.run_id, attempt->base.key.task_index, attempt->base.key.attempt,
            self->ops->what, attempt->engine_id);
}

void
qn_remote_finish (qn_remote_attempt_t *attempt, int exit_code, const char *reason,
                  Qanat__EndKind kind)
{
    qn_remote_t *self = attempt->engine;
    qn_log (QN_LOG_INFO, self->ops->name, "attempt %" PRIu64 "/%u/%u (%s %s) finished: %s",
            attempt->base.key.run_id, attempt->base.key.task_index, attempt->base.key.attempt,
            self->ops->what, attempt->engine_id, reason && *reason? reason: "success");
    if (attempt->base.handle)
        zlistx_detach (self->front.attempts, attempt->base.handle);
    attempt->base.handle = NULL;
    qn_backend_attempt_finished (&attempt->base, exit_code, 0, reason, kind);
    self->ops->destroy (attempt);
}

bool
qn_remote_trouble (qn_remote_attempt_t *attempt, const qn_remote_reply_t *reply,
                   const char *what, int max_tries, Qanat__EndKind kind)
{
    qn_remote_t *self = attempt->engine;
    char text [400];
    qn_remote_describe (reply, text, sizeof (text));
    int64_t wait_ms = qn_remote_wait_ms (reply, (unsigned) ++attempt->tries);
    attempt->not_before = zclock_mono () + wait_ms;
    bool auth = reply->status == 401 || reply->status == 403;
    if (auth)
        attempt->auth_failures++;
    bool transient = qn_rest_transient (reply->status);
    if ((auth && attempt->auth_failures < S_AUTH_TRIES)
    ||  (!auth && transient && attempt->tries < max_tries)) {
        qn_log (QN_LOG_WARNING, self->ops->name, "%s %s: cannot %s (%s), trying again in %"
                PRId64 " ms", self->ops->what, attempt->engine_id, what, text, wait_ms);
        return false;
    }
    char reason [700];
    bool gone = reply->status == 404 && attempt->verified;
    if (gone)
        snprintf (reason, sizeof (reason), "%s %s no longer exists", self->ops->what,
                  attempt->engine_id);
    else
        snprintf (reason, sizeof (reason), "%s %s: cannot %s: %s", self->ops->what,
                  attempt->engine_id, what, text);
    if (attempt->base.stop_reason)
        qn_remote_finish (attempt, -1, attempt->base.stop_reason, attempt->base.stop_kind);
    else
        qn_remote_finish (attempt, -1, reason, gone? QANAT__END_KIND__END_LOST: kind);
    return true;
}

void
qn_remote_stop (qn_backend_attempt_t *base, const char *reason, Qanat__EndKind kind)
{
    qn_remote_attempt_t *attempt = (qn_remote_attempt_t *) base;
    if (!qn_backend_attempt_stopping (base, reason, kind))
        return;
    //  A poll in flight is dropped; a submit in flight decides
    if (attempt->call && attempt->exists) {
        qn_rest_cancel (attempt->engine->rest, attempt->call);
        attempt->call = 0;
    }
    attempt->tries = 0;
    attempt->not_before = 0;
    qn_remote_next (attempt);
}

static void
s_hook_destroy (qn_backend_attempt_t *base)
{
    qn_remote_attempt_t *attempt = (qn_remote_attempt_t *) base;
    attempt->engine->ops->destroy (attempt);
}

//  Shutdown: every attempt's work is ended, within the grace (blocking:
//  the agent is leaving)
static void
s_hook_end_all (qn_backend_front_t *front, int grace_ms, const char *reason)
{
    (void) reason;
    qn_remote_t *self = (qn_remote_t *) front;
    int64_t end_ms = zclock_mono () + (grace_ms > 0? grace_ms: 0);
    qn_remote_attempt_t *attempt = (qn_remote_attempt_t *) zlistx_first (front->attempts);
    for (; attempt; attempt = (qn_remote_attempt_t *) zlistx_next (front->attempts)) {
        bool may_exist = attempt->exists || attempt->call;
        qn_rest_cancel (self->rest, attempt->call);
        attempt->call = 0;
        char url [1200], error [300] = "";
        qn_rest_call_t call;
        memset (&call, 0, sizeof (call));
        if (!may_exist || !self->ops->end_call (attempt, &call, url, sizeof (url)))
            continue;
        static const char *const headers [] = { "Accept: application/json", NULL };
        int64_t left = end_ms - zclock_mono ();
        call.headers = headers;
        call.timeout_ms = (long) left;
        long status = left > 0? qn_rest_request_sync (self->rest, &call, error, sizeof (error))
                              : 0;
        json_decref (call.json);
        if (status < 200 || status >= 300)
            qn_log (QN_LOG_WARNING, self->ops->name, "%s %s: cannot end it: %s",
                    self->ops->what, attempt->engine_id, left <= 0? "no time left"
                                                   : status? "refused": error);
    }
}

static void
s_hook_lost (qn_backend_attempt_t *base, const char *reason)
{
    qn_backend_attempt_finished (base, -1, 0, reason, QANAT__END_KIND__END_LOST);
}
