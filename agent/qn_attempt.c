/*  qn_attempt - one attempt the agent holds.  See qn_attempt.h.
*/
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include "qn_attempt.h"
#include "qn_log.h"

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void
s_attempt_destructor (void **item)
{
    qn_attempt_t *attempt = (qn_attempt_t *) *item;
    if (attempt) {
        qn_redact_destroy (&attempt->redactor);
        free (attempt->engine_url);
        if (attempt->assign)
            qanat__assign__free_unpacked (attempt->assign, NULL);
        for (int i = 0; i < QN_ATTEMPT_STREAMS; i++)
            qn_redact_wipe_free (attempt->carry [i].data, attempt->carry [i].size);
        free (attempt);
    }
    *item = NULL;
}

zhashx_t *
qn_attempt_table_new (void)
{
    zhashx_t *table = zhashx_new ();
    if (table)
        zhashx_set_destructor (table, s_attempt_destructor);
    return table;
}

void
qn_attempt_key_string (const qn_attempt_key_t *key, char *buffer, size_t size)
{
    snprintf (buffer, size, "%" PRIu64 "/%u/%u", key->run_id, key->task_index, key->attempt);
}

qn_attempt_t *
qn_attempt_lookup (zhashx_t *table, const qn_attempt_key_t *key)
{
    char name [64];
    qn_attempt_key_string (key, name, sizeof (name));
    return (qn_attempt_t *) zhashx_lookup (table, name);
}

qn_attempt_t *
qn_attempt_create (zhashx_t *table, const qn_attempt_key_t *key)
{
    qn_attempt_t *attempt = (qn_attempt_t *) calloc (1, sizeof (qn_attempt_t));
    if (!attempt)
        return NULL;
    attempt->key = *key;
    attempt->state = QN_ATTEMPT_NEW;
    attempt->next_seq = 1;
    attempt->meta_dirty = true;
    char name [64];
    qn_attempt_key_string (key, name, sizeof (name));
    if (zhashx_insert (table, name, attempt) == -1) {
        free (attempt);
        return NULL;
    }
    return attempt;
}

void
qn_attempt_ref (const qn_attempt_key_t *key, Qanat__AttemptRef *ref)
{
    qanat__attempt_ref__init (ref);
    ref->run_id = key->run_id;
    ref->task_index = key->task_index;
    ref->attempt = key->attempt;
}

bool
qn_attempt_running (const qn_attempt_t *self)
{
    return self->state == QN_ATTEMPT_REATTACHING || self->state == QN_ATTEMPT_RUNNING
        || self->state == QN_ATTEMPT_STAGING || self->state == QN_ATTEMPT_COLLECTING;
}

size_t
qn_attempt_table_running (zhashx_t *table)
{
    size_t running = 0;
    qn_attempt_t *attempt = (qn_attempt_t *) zhashx_first (table);
    while (attempt) {
        if (qn_attempt_running (attempt))
            running++;
        attempt = (qn_attempt_t *) zhashx_next (table);
    }
    return running;
}

int
qn_attempt_advance (qn_attempt_t *self, qn_attempt_state_t to)
{
    bool allowed = false;
    switch (self->state) {
        case QN_ATTEMPT_NEW:
            allowed = to == QN_ATTEMPT_RUNNING || to == QN_ATTEMPT_REATTACHING
                   || to == QN_ATTEMPT_ENDED;
            break;
        case QN_ATTEMPT_REATTACHING:
            allowed = to == QN_ATTEMPT_RUNNING || to == QN_ATTEMPT_ENDED;
            break;
        case QN_ATTEMPT_RUNNING:
            allowed = to == QN_ATTEMPT_STAGING || to == QN_ATTEMPT_COLLECTING
                   || to == QN_ATTEMPT_ENDED;
            break;
        case QN_ATTEMPT_STAGING:
            allowed = to == QN_ATTEMPT_RUNNING || to == QN_ATTEMPT_ENDED;
            break;
        case QN_ATTEMPT_COLLECTING:
            allowed = to == QN_ATTEMPT_ENDED;
            break;
        case QN_ATTEMPT_ENDED:
            allowed = to == QN_ATTEMPT_SPOOLED;
            break;
        case QN_ATTEMPT_SPOOLED:
            allowed = to == QN_ATTEMPT_DONE;
            break;
        case QN_ATTEMPT_DONE:
            break;
    }
    if (!allowed)
        return -1;
    self->state = to;
    return 0;
}

const char *
qn_attempt_state_name (qn_attempt_state_t state)
{
    switch (state) {
        case QN_ATTEMPT_NEW:            return "new";
        case QN_ATTEMPT_REATTACHING:    return "reattaching";
        case QN_ATTEMPT_RUNNING:        return "running";
        case QN_ATTEMPT_STAGING:        return "staging";
        case QN_ATTEMPT_COLLECTING:     return "collecting";
        case QN_ATTEMPT_ENDED:          return "ended";
        case QN_ATTEMPT_SPOOLED:        return "spooled";
        case QN_ATTEMPT_DONE:           return "done";
    }
    return "?";
}

void
qn_attempt_meta (const qn_attempt_t *self, uint64_t next_seq, bool finished,
                 qn_spool_meta_t *meta)
{
    memset (meta, 0, sizeof (*meta));
    meta->key = self->key;
    meta->pid = self->pid;
    meta->start_time = self->start_time;
    meta->next_seq = next_seq;
    meta->finished = finished;
    snprintf (meta->task_name, sizeof (meta->task_name), "%s", self->task_name);
    //  The backend, with the engine job id a remote backend reports
    //  before its submit (see qn_agent_record_before_submit)
    if (self->backend_name)
        snprintf (meta->backend, sizeof (meta->backend), "%s", self->backend_name);
    if (self->engine_job_id [0]) {
        memcpy (meta->engine_job_id, self->engine_job_id, sizeof (meta->engine_job_id));
        memcpy (meta->cursor, self->cursor, sizeof (meta->cursor));
        if (self->assign && self->assign->n_outputs)
            snprintf (meta->workdir, sizeof (meta->workdir), "%s", self->workdir);
    }
}

uint64_t
qn_attempt_process_start_time (int64_t pid)
{
    char path [64];
    snprintf (path, sizeof (path), "/proc/%" PRId64 "/stat", pid);
    FILE *file = fopen (path, "re");
    if (!file)
        return 0;
    char buffer [1024];
    size_t got = fread (buffer, 1, sizeof (buffer) - 1, file);
    fclose (file);
    buffer [got] = '\0';
    //  The command name may hold spaces and parentheses: fields count
    //  from the last ')'; after it comes field 3
    char *cur = strrchr (buffer, ')');
    if (!cur)
        return 0;
    cur++;
    for (int field = 3; field < 22 && cur; field++) {
        cur = strchr (cur + 1, ' ');
    }
    if (!cur)
        return 0;
    return strtoull (cur + 1, NULL, 10);
}

//  Kills what is left of an attempt's process group: its pipes died with
//  the agent that started it, so we cannot take it back.  A live process
//  with that pid but another start time is not ours (the pid was reused)
//  and is left alone.
void
qn_attempt_kill_leftover (const qn_spool_meta_t *meta)
{
    if (meta->pid <= 0 || kill (-(pid_t) meta->pid, 0) == -1)
        return;
    uint64_t start_time = qn_attempt_process_start_time (meta->pid);
    if (start_time && meta->start_time && start_time != meta->start_time) {
        qn_log (QN_LOG_INFO, "agent", "pid %" PRId64 " now belongs to another process; "
                      "not touching it", meta->pid);
        return;
    }
    qn_log (QN_LOG_WARNING, "agent", "killing process group %" PRId64 " of attempt %" PRIu64
                  "/%u/%u, left by an earlier agent", meta->pid, meta->key.run_id,
                  meta->key.task_index, meta->key.attempt);
    kill (-(pid_t) meta->pid, SIGKILL);
}

const char *
qn_attempt_end_kind_name (Qanat__EndKind kind)
{
    switch (kind) {
        case QANAT__END_KIND__END_EXIT:         return "exit";
        case QANAT__END_KIND__END_TIMEOUT:      return "timeout";
        case QANAT__END_KIND__END_CANCELED:     return "canceled";
        case QANAT__END_KIND__END_LOST:         return "lost";
        case QANAT__END_KIND__END_START_FAILED: return "start failed";
        default:                                return "?";
    }
}
