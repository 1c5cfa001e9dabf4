/*  qn_backend - what every backend shares: the list of backends this
    agent build offers, the reading of --backend-option values and of a
    task's backend options, and the front end every engine sits behind
    (attempt registry, start checks, output streams, finishing, the ops
    stop, set_paused, running and shutdown).  See qn_backend.h for the ops
    contract and the front end.
*/
#include <dirent.h>
#include <inttypes.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "qn_msg.h"
#include "qn_log.h"
#include "qn_fs.h"
#include "qn_metric.h"
#include "qn_backend.h"

const qn_backend_ops_t *qn_backends [] = {
    &qn_backend_local, &qn_backend_slurm, &qn_backend_kube, &qn_backend_lambda,
    &qn_backend_databricks, &qn_backend_ray, &qn_backend_airflow, NULL
};

const qn_backend_ops_t *
qn_backend_find (const char *name)
{
    for (size_t i = 0; name && qn_backends [i]; i++)
        if (streq (qn_backends [i]->name, name))
            return qn_backends [i];
    return NULL;
}

const char *
qn_backend_names (char *buf, size_t size)
{
    buf [0] = 0;
    for (size_t i = 0; qn_backends [i]; i++) {
        size_t used = strlen (buf);
        snprintf (buf + used, size - used, "%s%s", i? ", ": "", qn_backends [i]->name);
    }
    return buf;
}

//  The key part of "<backend>.<key>=value" when the prefix is backend's,
//  else NULL.
static const char *
s_own_key (const char *option, const char *backend)
{
    size_t len = strlen (backend);
    if (strncmp (option, backend, len) != 0 || option [len] != '.')
        return NULL;
    return option + len + 1;
}

const char *
qn_backend_option (const qn_backend_config_t *config, const char *backend, const char *key)
{
    if (!config || !config->options)
        return NULL;
    size_t key_len = strlen (key);
    for (char **option = config->options; *option; option++) {
        const char *own = s_own_key (*option, backend);
        if (own && strncmp (own, key, key_len) == 0 && own [key_len] == '=')
            return own + key_len + 1;
    }
    return NULL;
}

int
qn_backend_options_check (const qn_backend_config_t *config, const char *backend,
                          const char *const *known, char *error, size_t error_size)
{
    if (!config || !config->options)
        return 0;
    for (char **option = config->options; *option; option++) {
        const char *own = s_own_key (*option, backend);
        if (!own)
            continue;
        const char *equals = strchr (own, '=');
        size_t key_len = equals? (size_t) (equals - own): strlen (own);
        bool found = false;
        for (size_t i = 0; known [i] && !found; i++)
            found = strlen (known [i]) == key_len && strncmp (known [i], own, key_len) == 0;
        if (!found || !equals) {
            size_t used = (size_t) snprintf (error, error_size, "%s option %s.%.*s (known:",
                                             equals? "unknown": "no value for", backend,
                                             (int) key_len, own);
            for (size_t i = 0; known [i] && used < error_size; i++)
                used += (size_t) snprintf (error + used, error_size - used, " %s", known [i]);
            if (used < error_size)
                snprintf (error + used, error_size - used, ")");
            return -1;
        }
    }
    return 0;
}

const char *
qn_backend_task_option (const Qanat__Assign *assign, const char *key)
{
    for (size_t i = 0; assign && i < assign->n_backend_options; i++)
        if (assign->backend_options [i]->key && streq (assign->backend_options [i]->key, key))
            return assign->backend_options [i]->value;
    return NULL;
}


int
qn_backend_make_workdir (const Qanat__Assign *assign, const char *workdir, char *error,
                         size_t error_size)
{
    const char *stage = NULL;
    for (size_t i = 0; assign && i < assign->n_env; i++)
        if (assign->env [i]->key && streq (assign->env [i]->key, "QANAT_STAGE_DIR"))
            stage = assign->env [i]->value;
    struct stat st;
    if (stage && lstat (stage, &st) == 0 && S_ISDIR (st.st_mode)) {
        //  The staged inputs become the work directory: one rename on one
        //  filesystem, a copy to another (a shared work volume)
        char reason [800];
        if (qn_fs_move (stage, workdir, reason, sizeof (reason)) == 0)
            return 0;
        snprintf (error, error_size, "cannot stage the inputs: %s", reason);
        return -1;
    }
    if (mkdir (workdir, 0700) == -1) {
        snprintf (error, error_size, "cannot create %s: %s", workdir, strerror (errno));
        return -1;
    }
    return 0;
}

void
qn_backend_system_logv (const qn_backend_events_t *events, void *arg, const qn_attempt_key_t *key,
                        const char *format, va_list args)
{
    char text [512];
    int size = vsnprintf (text, sizeof (text), format, args);
    if (size < 0)
        return;
    if ((size_t) size >= sizeof (text))
        size = sizeof (text) - 1;
    events->log (arg, key, QANAT__STREAM__STREAM_SYSTEM, text, (size_t) size, false,
                 qn_now_us ());
}

void
qn_backend_system_log (const qn_backend_events_t *events, void *arg, const qn_attempt_key_t *key,
                       const char *format, ...)
{
    va_list args;
    va_start (args, format);
    qn_backend_system_logv (events, arg, key, format, args);
    va_end (args);
}

void
qn_backend_signal_name (int sig, char *buffer, size_t size)
{
    const char *abbrev = sigabbrev_np (sig);
    if (abbrev)
        snprintf (buffer, size, "SIG%s", abbrev);
    else
        snprintf (buffer, size, "signal %d", sig);
}

void
qn_backend_safe_name (const char *name, size_t max, char *buffer, size_t size)
{
    size_t at = 0;
    for (const char *cur = name? name: ""; *cur && at + 1 < size && at < max; cur++) {
        char c = *cur;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
               || c == '_' || c == '.' || c == '-';
        buffer [at++] = ok? c: '_';
    }
    if (at == 0 && size > 1)
        buffer [at++] = '_';
    if (size)
        buffer [at] = '\0';
}

void
qn_backend_metrics_line (qn_backend_metrics_t *state, const char *data, size_t size,
                         bool partial, const qn_backend_events_t *events, void *arg,
                         const qn_attempt_key_t *key)
{
    if (state->overlong) {
        //  Rest of a line we already reported
        if (!partial)
            state->overlong = false;
        return;
    }
    state->line++;
    if (partial) {
        state->overlong = true;
        qn_backend_system_log (events, arg, key, "ignored metrics line %" PRIu64
                               ": line too long", state->line);
        return;
    }
    bool blank = true;
    for (size_t i = 0; i < size && blank; i++)
        if (data [i] != ' ' && data [i] != '\t' && data [i] != '\r')
            blank = false;
    if (blank)
        return;
    char name [QN_METRIC_NAME_MAX + 1];
    double value = 0;
    int64_t step = 0;
    bool has_step = false;
    const char *error = NULL;
    if (qn_metric_parse_line (data, size, name, &value, &step, &has_step, &error) == 0)
        events->metric (arg, key, name, value, step, has_step, qn_now_us ());
    else
        qn_backend_system_log (events, arg, key, "ignored metrics line %" PRIu64 ": %s",
                               state->line, error? error: "invalid line");
}

Qanat__Assign *
qn_backend_assign_copy (const Qanat__Assign *assign)
{
    //  Through the codec: every nested message and string copied at once
    size_t size = qanat__assign__get_packed_size (assign);
    uint8_t *buffer = (uint8_t *) malloc (size? size: 1);
    if (!buffer)
        return NULL;
    qanat__assign__pack (assign, buffer);
    Qanat__Assign *copy = qanat__assign__unpack (NULL, size, buffer);
    free (buffer);
    return copy;
}



//  ---------------------------------------------------------------------
//  The front end: the attempt registry

int
qn_backend_front_init (qn_backend_front_t *front, const qn_backend_engine_t *engine,
                       zloop_t *loop, const qn_backend_config_t *config,
                       const qn_backend_events_t *events, void *arg)
{
    assert (front && engine && loop && events);
    front->engine = engine;
    front->loop = loop;
    front->events = events;
    front->arg = arg;
    front->paused = false;
    front->timer_id = front->soon_id = -1;
    front->host = strdup (config && config->host? config->host: "");
    front->attempts = zlistx_new ();
    return front->host && front->attempts? 0: -1;
}

void
qn_backend_front_fini (qn_backend_front_t *front)
{
    qn_backend_attempt_t *attempt;
    while (front->attempts
       &&  (attempt = (qn_backend_attempt_t *) zlistx_first (front->attempts)))
        qn_backend_front_remove (front, attempt);
    zlistx_destroy (&front->attempts);
    free (front->host);
    front->host = NULL;
    if (front->timer_id != -1 && front->loop)
        zloop_timer_end (front->loop, front->timer_id);
    if (front->soon_id != -1 && front->loop)
        zloop_timer_end (front->loop, front->soon_id);
    front->timer_id = front->soon_id = -1;
}

static int
s_front_tick (zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    qn_backend_front_t *front = (qn_backend_front_t *) arg;
    if (timer_id == front->soon_id)
        front->soon_id = -1;    //  one-shot: the loop ends it
    if (qn_backend_front_each (front, front->tick) == 0 && front->timer_id != -1) {
        zloop_timer_end (front->loop, front->timer_id);
        front->timer_id = -1;
    }
    return 0;
}

void
qn_backend_front_ticking (qn_backend_front_t *front, size_t interval_ms,
                          void (*tick) (qn_backend_attempt_t *attempt, int64_t now))
{
    front->tick = tick;
    if (front->timer_id == -1)
        front->timer_id = zloop_timer (front->loop, interval_ms, 0, s_front_tick, front);
    if (front->soon_id == -1)
        front->soon_id = zloop_timer (front->loop, 5, 1, s_front_tick, front);
    if (front->timer_id == -1)
        qn_log (QN_LOG_ERROR, "agent", "%s backend: cannot start its timer", front->engine->name);
}

qn_backend_attempt_t *
qn_backend_front_find (qn_backend_front_t *front, const qn_attempt_key_t *key)
{
    qn_backend_attempt_t *attempt = (qn_backend_attempt_t *) zlistx_first (front->attempts);
    while (attempt) {
        if (attempt->key.run_id == key->run_id && attempt->key.task_index == key->task_index
        &&  attempt->key.attempt == key->attempt)
            return attempt;
        attempt = (qn_backend_attempt_t *) zlistx_next (front->attempts);
    }
    return NULL;
}

int
qn_backend_front_check (qn_backend_front_t *front, const Qanat__Assign *assign,
                        unsigned checks, qn_attempt_key_t *key, char *error, size_t error_size)
{
    assert (assign && assign->attempt);
    key->run_id = assign->attempt->run_id;
    key->task_index = assign->attempt->task_index;
    key->attempt = assign->attempt->attempt;
    if (qn_backend_front_find (front, key)) {
        snprintf (error, error_size, "attempt is already running");
        return -1;
    }
    if (!(checks & QN_BACKEND_CHECK_COMMAND))
        return 0;
    if (assign->n_argv == 0 || !assign->argv [0] || !*assign->argv [0]) {
        snprintf (error, error_size, "empty command");
        return -1;
    }
    for (size_t i = 0; i < assign->n_argv; i++)
        if (!assign->argv [i]) {
            snprintf (error, error_size, "missing argument %zu", i);
            return -1;
        }
    return 0;
}

void
qn_backend_front_add (qn_backend_front_t *front, qn_backend_attempt_t *attempt)
{
    attempt->handle = zlistx_add_end (front->attempts, attempt);
}

void
qn_backend_front_remove (qn_backend_front_t *front, qn_backend_attempt_t *attempt)
{
    if (attempt->handle)
        zlistx_detach (front->attempts, attempt->handle);
    attempt->handle = NULL;
    front->engine->destroy (attempt);
}

qn_backend_attempt_t **
qn_backend_front_list (qn_backend_front_t *front, size_t *count)
{
    size_t size = zlistx_size (front->attempts);
    qn_backend_attempt_t **list = size? (qn_backend_attempt_t **)
                                        malloc (size * sizeof (qn_backend_attempt_t *))
                                      : NULL;
    size_t index = 0;
    qn_backend_attempt_t *attempt = (qn_backend_attempt_t *) zlistx_first (front->attempts);
    while (list && attempt && index < size) {
        list [index++] = attempt;
        attempt = (qn_backend_attempt_t *) zlistx_next (front->attempts);
    }
    *count = index;
    return list;
}


//  ---------------------------------------------------------------------
//  The front end: ops every engine shares

size_t
qn_backend_front_each (qn_backend_front_t *front,
                       void (*tick) (qn_backend_attempt_t *attempt, int64_t now))
{
    size_t count = zlistx_size (front->attempts);
    if (count == 0)
        return 0;
    qn_backend_attempt_t **attempts = qn_backend_front_list (front, &count);
    if (!attempts)
        return count;           //  out of memory: the next tick tries again
    int64_t now = zclock_mono ();
    for (size_t i = 0; i < count; i++)
        if (zlistx_find (front->attempts, attempts [i]))
            tick (attempts [i], now);
    free (attempts);
    return count;
}

int
qn_backend_front_stop (void *self, const qn_attempt_key_t *key, const char *reason,
                       Qanat__EndKind kind)
{
    qn_backend_front_t *front = (qn_backend_front_t *) self;
    qn_backend_attempt_t *attempt = qn_backend_front_find (front, key);
    if (!attempt)
        return -1;
    front->engine->stop (attempt, reason? reason: "", kind);
    return 0;
}

void
qn_backend_front_set_paused (void *self, bool paused)
{
    qn_backend_front_t *front = (qn_backend_front_t *) self;
    if (front->paused == paused)
        return;
    front->paused = paused;
    if (!front->engine->pause)
        return;
    qn_backend_attempt_t *attempt = (qn_backend_attempt_t *) zlistx_first (front->attempts);
    while (attempt) {
        front->engine->pause (attempt, paused);
        attempt = (qn_backend_attempt_t *) zlistx_next (front->attempts);
    }
}

size_t
qn_backend_front_running (void *self)
{
    return zlistx_size (((qn_backend_front_t *) self)->attempts);
}

//  Blocking on purpose (the engine's end_all, bounded by grace_ms): we
//  are leaving, and the work goes first
void
qn_backend_front_shutdown (void *self, int grace_ms, const char *reason)
{
    qn_backend_front_t *front = (qn_backend_front_t *) self;
    if (zlistx_size (front->attempts) == 0)
        return;
    reason = reason? reason: "";
    if (front->engine->end_all)
        front->engine->end_all (front, grace_ms, reason);
    qn_backend_attempt_t *attempt;
    while ((attempt = (qn_backend_attempt_t *) zlistx_first (front->attempts))) {
        zlistx_detach (front->attempts, attempt->handle);
        attempt->handle = NULL;
        front->engine->lost (attempt, reason);
        front->engine->destroy (attempt);
    }
    if (front->engine->idle)
        front->engine->idle (front);
}


//  ---------------------------------------------------------------------
//  The front end: an attempt's base

static int
s_stream_init (qn_backend_stream_t *stream, Qanat__Stream kind, bool traced, bool metrics,
               size_t pack_max)
{
    memset (stream, 0, sizeof (*stream));
    stream->fd = -1;
    stream->stream = kind;
    stream->traced = traced;
    stream->metrics = metrics;
    stream->pack_max = pack_max;
    stream->buf = qn_linebuf_new (0);
    return stream->buf? 0: -1;
}

int
qn_backend_attempt_init (qn_backend_attempt_t *attempt, qn_backend_front_t *front,
                         const qn_attempt_key_t *key, unsigned parts)
{
    memset (attempt, 0, sizeof (*attempt));
    attempt->front = front;
    attempt->key = *key;
    attempt->out.fd = attempt->err.fd = attempt->metrics.fd = -1;
    attempt->ring = qn_stacktrace_new (0);
    int rc = attempt->ring? 0: -1;
    if (parts & QN_BACKEND_ATTEMPT_STREAMS) {
        rc |= s_stream_init (&attempt->out, QANAT__STREAM__STREAM_STDOUT, false, false, 0);
        rc |= s_stream_init (&attempt->err, QANAT__STREAM__STREAM_STDERR, true, false, 0);
        rc |= s_stream_init (&attempt->metrics, QANAT__STREAM__STREAM_SYSTEM, false, true, 0);
    }
    return rc;
}

void
qn_backend_attempt_fini (qn_backend_attempt_t *attempt)
{
    qn_backend_stream_t *streams [3] = { &attempt->out, &attempt->err, &attempt->metrics };
    for (int i = 0; i < 3; i++) {
        qn_backend_stream_close (streams [i]);
        qn_linebuf_destroy (&streams [i]->buf);
    }
    qn_stacktrace_destroy (&attempt->ring);
    free (attempt->stop_reason);
    attempt->stop_reason = NULL;
}

bool
qn_backend_attempt_stopping (qn_backend_attempt_t *attempt, const char *reason,
                             Qanat__EndKind kind)
{
    if (attempt->stop_reason)
        return false;
    attempt->stop_reason = strdup (reason? reason: "");
    attempt->stop_kind = kind;
    return true;
}

bool
qn_backend_attempt_overdue (qn_backend_attempt_t *attempt, int64_t now, char *reason,
                            size_t reason_size)
{
    if (!attempt->deadline_ms || now < attempt->deadline_ms || attempt->stop_reason)
        return false;
    snprintf (reason, reason_size, "timed out after %us", attempt->timeout_s);
    return true;
}

void
qn_backend_attempt_log (qn_backend_attempt_t *attempt, Qanat__Stream stream, bool traced,
                        const char *data, size_t size, bool partial, int64_t time_us)
{
    if (traced)
        qn_stacktrace_add (attempt->ring, data, size, partial);
    attempt->front->events->log (attempt->front->arg, &attempt->key, stream, data, size,
                                 partial, time_us);
}

void
qn_backend_attempt_system_log (qn_backend_attempt_t *attempt, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    qn_backend_system_logv (attempt->front->events, attempt->front->arg, &attempt->key,
                            format, args);
    va_end (args);
}

void
qn_backend_attempt_cursor (qn_backend_attempt_t *attempt, const char *cursor)
{
    if (streq (cursor, attempt->cursor) || !attempt->front->events->cursor)
        return;
    snprintf (attempt->cursor, sizeof (attempt->cursor), "%s", cursor);
    attempt->front->events->cursor (attempt->front->arg, &attempt->key, cursor);
}

void
qn_backend_attempt_finished (qn_backend_attempt_t *attempt, int exit_code, int sig,
                             const char *reason, Qanat__EndKind kind)
{
    char *stack_trace = NULL;
    if (exit_code != 0 || sig != 0)
        stack_trace = qn_stacktrace_extract (attempt->ring);
    attempt->front->events->finished (attempt->front->arg, &attempt->key, exit_code, sig,
                                      stack_trace? stack_trace: "", reason? reason: "", kind);
    free (stack_trace);
}


//  "::qanat-metric NAME=VALUE [step=N]" -> a metric event (qn_backend.h)
bool
qn_backend_attempt_metric_line (qn_backend_attempt_t *attempt, const char *text, size_t size,
                                int64_t time_us)
{
    size_t prefix = strlen (QN_BACKEND_METRIC_PREFIX);
    if (size < prefix || memcmp (text, QN_BACKEND_METRIC_PREFIX, prefix) != 0)
        return false;
    char line [512];
    size_t rest = size - prefix;
    if (rest >= sizeof (line)) {
        qn_backend_attempt_system_log (attempt, "ignored metric line: too long");
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
        qn_backend_attempt_system_log (attempt, "ignored metric line: want '::qanat-metric "
                                       "name=value [step=N]'");
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
        attempt->front->events->metric (attempt->front->arg, &attempt->key, name, value,
                                        step_value, has_step, time_us);
    else
        qn_backend_attempt_system_log (attempt, "ignored metric line: %s",
                                       error? error: "invalid line");
    return true;
}


//  ---------------------------------------------------------------------
//  The front end: output streams

//  Whole lines that come in together leave together: one log event
//  carries as many as fit in pack_max bytes, joined by '\n' (the
//  LogChunk contract).  One event per line would bound a chatty task at
//  the events per second the agent and the coordinator handle, not at
//  the bytes.  The pieces of a long line still go one per event, and so
//  does its last piece: a chunk is either whole lines or part of one
//  line, never both, and the agent's redactor finds the carry of a split
//  secret right in front of that last piece.  The pack never outlives
//  one feed, so lines are not held back waiting for more.
typedef struct {
    qn_backend_attempt_t *attempt;
    qn_backend_stream_t *stream;
    int64_t time_us;
    size_t packed;              //  bytes in pack
    char pack [QN_LINEBUF_CHUNK];
} s_feed_t;

static void
s_pack_flush (s_feed_t *feed)
{
    if (feed->packed) {
        qn_backend_attempt_t *attempt = feed->attempt;
        attempt->front->events->log (attempt->front->arg, &attempt->key,
                                     feed->stream->stream, feed->pack, feed->packed, false,
                                     feed->time_us);
        feed->packed = 0;
    }
}

static void
s_on_line (const char *data, size_t size, bool partial, void *arg)
{
    s_feed_t *feed = (s_feed_t *) arg;
    qn_backend_stream_t *stream = feed->stream;
    qn_backend_attempt_t *attempt = feed->attempt;
    if (stream->metrics) {
        qn_backend_metrics_line (&stream->reader, data, size, partial, attempt->front->events,
                                 attempt->front->arg, &attempt->key);
        return;
    }
    if (stream->traced)
        qn_stacktrace_add (attempt->ring, data, size, partial);
    bool whole = !partial && !stream->in_long;
    stream->in_long = partial;
    size_t pack_max = stream->pack_max < sizeof (feed->pack)? stream->pack_max
                                                             : sizeof (feed->pack);
    if (whole && pack_max && size <= pack_max) {
        size_t need = (feed->packed? feed->packed + 1: 0) + size;
        if (need > pack_max)
            s_pack_flush (feed);
        if (feed->packed)
            feed->pack [feed->packed++] = '\n';
        memcpy (feed->pack + feed->packed, data, size);
        feed->packed += size;
        return;
    }
    s_pack_flush (feed);
    attempt->front->events->log (attempt->front->arg, &attempt->key, stream->stream,
                                 data, size, partial, feed->time_us);
}

int
qn_backend_stream_open (qn_backend_stream_t *stream, const char *path, int64_t offset)
{
    qn_backend_stream_close (stream);
    stream->fd = open (path, O_RDONLY | O_CLOEXEC);
    if (stream->fd == -1)
        return -1;
    stream->offset = offset;
    return 0;
}

void
qn_backend_stream_close (qn_backend_stream_t *stream)
{
    if (stream->fd != -1)
        close (stream->fd);
    stream->fd = -1;
}

void
qn_backend_stream_feed (qn_backend_attempt_t *attempt, qn_backend_stream_t *stream,
                        const void *data, size_t size)
{
    s_feed_t feed;
    feed.attempt = attempt;
    feed.stream = stream;
    feed.time_us = qn_now_us ();
    feed.packed = 0;
    qn_linebuf_feed (stream->buf, data, size, s_on_line, &feed);
    s_pack_flush (&feed);
}

bool
qn_backend_stream_read (qn_backend_attempt_t *attempt, qn_backend_stream_t *stream,
                        size_t max)
{
    if (stream->fd == -1)
        return true;
    char buffer [65536];
    size_t total = 0;
    while (total < max) {
        ssize_t got = pread (stream->fd, buffer, sizeof (buffer), (off_t) stream->offset);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            return true;
        stream->offset += got;
        total += (size_t) got;
        qn_backend_stream_feed (attempt, stream, buffer, (size_t) got);
    }
    return false;
}

void
qn_backend_stream_flush (qn_backend_attempt_t *attempt, qn_backend_stream_t *stream)
{
    if (!stream->buf)
        return;
    s_feed_t feed;
    feed.attempt = attempt;
    feed.stream = stream;
    feed.time_us = qn_now_us ();
    feed.packed = 0;
    qn_linebuf_flush (stream->buf, s_on_line, &feed);
    s_pack_flush (&feed);
}

int64_t
qn_backend_stream_position (qn_backend_stream_t *stream)
{
    return stream->offset - (int64_t) (stream->buf? qn_linebuf_pending (stream->buf): 0);
}
