/*  qn_backend - what every backend shares: the list of backends this
    agent build offers, and the reading of --backend-option values and of
    a task's backend options.  See qn_backend.h for the ops contract.
*/
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "qn_msg.h"
#include "qn_fs.h"
#include "qn_metric.h"
#include "qn_backend.h"

const qn_backend_ops_t *qn_backends [] = {
    &qn_backend_local, &qn_backend_slurm, &qn_backend_kube, NULL
};

const qn_backend_ops_t *
qn_backend_find (const char *name)
{
    for (size_t i = 0; name && qn_backends [i]; i++)
        if (streq (qn_backends [i]->name, name))
            return qn_backends [i];
    return NULL;
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

void *
qn_backend_find_attempt (zlistx_t *list, size_t key_offset, const qn_attempt_key_t *key)
{
    for (void *item = zlistx_first (list); item; item = zlistx_next (list)) {
        const qn_attempt_key_t *own = (const qn_attempt_key_t *) ((char *) item + key_offset);
        if (own->run_id == key->run_id && own->task_index == key->task_index
        &&  own->attempt == key->attempt)
            return item;
    }
    return NULL;
}

