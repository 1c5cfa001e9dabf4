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

//  Deepest tree s_copy_tree follows: a stage directory is the agent's own
//  making, so deeper is a bug or an attack, not data
#define S_COPY_DEPTH_MAX    256

//  Copies the open regular file in (whose stat is st) to a new file to,
//  with its mode.  Apart from the tree walk, so that its buffer is not
//  on the stack of every level of a deep tree.
static int
s_copy_file (int in, const struct stat *st, const char *to, const char *from, char *error,
             size_t error_size)
{
    int out = open (to, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (out == -1) {
        snprintf (error, error_size, "cannot create %s: %s", to, strerror (errno));
        return -1;
    }
    char buffer [65536];
    int rc = 0;
    while (rc == 0) {
        ssize_t got = read (in, buffer, sizeof (buffer));
        if (got == -1 && errno == EINTR)
            continue;
        if (got == -1) {
            snprintf (error, error_size, "cannot read %s: %s", from, strerror (errno));
            rc = -1;
        }
        if (got <= 0)
            break;
        for (ssize_t done = 0; rc == 0 && done < got; ) {
            ssize_t put = write (out, buffer + done, (size_t) (got - done));
            if (put == -1 && errno == EINTR)
                continue;
            if (put <= 0) {
                snprintf (error, error_size, "cannot write %s: %s", to,
                          put == -1? strerror (errno): "no progress");
                rc = -1;
            }
            else
                done += put;
        }
    }
    if (rc == 0 && fchmod (out, st->st_mode & 07777) == -1) {
        snprintf (error, error_size, "cannot set the mode of %s: %s", to, strerror (errno));
        rc = -1;
    }
    if (close (out) == -1 && rc == 0) {
        snprintf (error, error_size, "cannot write %s: %s", to, strerror (errno));
        rc = -1;
    }
    return rc;
}


//  Copies from (a regular file, or a directory of them) to to, which must
//  not exist, with the modes of the originals.  Nothing else is ever
//  staged, so anything else (a symlink, a device, a fifo) is refused.
//  -1 with the reason in error; what was copied so far stays for the
//  caller to remove.
static int
s_copy_tree (const char *from, const char *to, int depth, char *error, size_t error_size)
{
    if (depth > S_COPY_DEPTH_MAX) {
        snprintf (error, error_size, "cannot copy %s: nested too deep", from);
        return -1;
    }
    int in = open (from, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;
    if (in == -1 || fstat (in, &st) == -1) {
        snprintf (error, error_size, "cannot copy %s: %s", from,
                  errno == ELOOP? "a symlink": strerror (errno));
        if (in != -1)
            close (in);
        return -1;
    }
    if (S_ISDIR (st.st_mode)) {
        DIR *dir = fdopendir (in);
        if (!dir) {
            snprintf (error, error_size, "cannot read %s: %s", from, strerror (errno));
            close (in);
            return -1;
        }
        int rc = 0;
        if (mkdir (to, 0700) == -1) {
            snprintf (error, error_size, "cannot create %s: %s", to, strerror (errno));
            rc = -1;
        }
        struct dirent *entry;
        while (rc == 0 && (entry = readdir (dir))) {
            if (streq (entry->d_name, ".") || streq (entry->d_name, ".."))
                continue;
            char *child_from = NULL, *child_to = NULL;
            if (asprintf (&child_from, "%s/%s", from, entry->d_name) < 0)
                child_from = NULL;
            if (asprintf (&child_to, "%s/%s", to, entry->d_name) < 0)
                child_to = NULL;
            if (!child_from || !child_to) {
                snprintf (error, error_size, "out of memory");
                rc = -1;
            }
            else
                rc = s_copy_tree (child_from, child_to, depth + 1, error, error_size);
            free (child_from);
            free (child_to);
        }
        closedir (dir);
        //  Last, so that a read-only directory could still be filled
        if (rc == 0 && chmod (to, st.st_mode & 07777) == -1) {
            snprintf (error, error_size, "cannot set the mode of %s: %s", to, strerror (errno));
            rc = -1;
        }
        return rc;
    }
    if (!S_ISREG (st.st_mode)) {
        snprintf (error, error_size, "cannot copy %s: not a regular file or a directory", from);
        close (in);
        return -1;
    }
    int rc = s_copy_file (in, &st, to, from, error, error_size);
    close (in);
    return rc;
}

int
qn_backend_move (const char *from, const char *to, char *error, size_t error_size)
{
    if (rename (from, to) == 0)
        return 0;
    if (errno != EXDEV) {
        snprintf (error, error_size, "cannot move %s to %s: %s", from, to, strerror (errno));
        return -1;
    }
    //  Another filesystem: a copy, then the original goes
    char reason [600] = "";
    if (s_copy_tree (from, to, 0, reason, sizeof (reason)) == -1) {
        int saved = errno;
        qn_backend_remove_tree (to);
        errno = saved;
        snprintf (error, error_size, "cannot move %s to %s (another filesystem): %s",
                  from, to, reason);
        return -1;
    }
    if (qn_backend_remove_tree (from) == -1) {
        snprintf (error, error_size, "copied %s to %s, but cannot remove it: %s", from, to,
                  strerror (errno));
        return -1;
    }
    return 0;
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
        if (qn_backend_move (stage, workdir, reason, sizeof (reason)) == 0)
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

static int
s_remove_entry (const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void) sb;
    (void) flag;
    (void) ftw;
    return remove (path);
}

int
qn_backend_remove_tree (const char *path)
{
    struct stat st;
    if (lstat (path, &st) == -1)
        return errno == ENOENT? 0: -1;
    return nftw (path, s_remove_entry, 16, FTW_DEPTH | FTW_PHYS);
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

int
qn_backend_mkdirs (const char *path, mode_t mode)
{
    char *copy = strdup (path);
    if (!copy)
        return -1;
    for (char *slash = strchr (copy + 1, '/'); slash; slash = strchr (slash + 1, '/')) {
        *slash = '\0';
        if (mkdir (copy, mode) == -1 && errno != EEXIST) {
            free (copy);
            return -1;
        }
        *slash = '/';
    }
    free (copy);
    return mkdir (path, mode) == -1 && errno != EEXIST? -1: 0;
}
