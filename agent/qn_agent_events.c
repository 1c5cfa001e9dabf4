/*  qn_agent_events - what the backends report of an attempt (started,
    log output, metrics, cursor, finished), made events for the outbox.
    One of the files of the qn_agent class: see qn_agent_internal.h.

    Assign.redact: every secret value is shown as *** in the attempt's
    log chunks (all streams), metric names, Finished reason and stack
    trace, before anything is spooled.  See qn_redact.h.
*/
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include "qn_agent_internal.h"
#include "qn_log.h"
#include "qn_msg.h"
#include "qn_redact.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static qn_attempt_t *
s_callback_attempt (qn_agent_t *self, const qn_attempt_key_t *key)
{
    qn_attempt_t *attempt = qn_attempt_lookup (self->attempts, key);
    if (!attempt)
        qn_log (QN_LOG_ERROR, "agent", "backend reported an unknown attempt %" PRIu64 "/%u/%u",
                      key->run_id, key->task_index, key->attempt);
    return attempt;
}

void
qn_agent_on_started (void *arg, const qn_attempt_key_t *key, int64_t pid,
                     const char *host, const char *workdir, const char *engine_job_id)
{
    qn_agent_t *self = (qn_agent_t *) arg;
    qn_attempt_t *attempt = s_callback_attempt (self, key);
    if (!attempt)
        return;
    if (pid > 0) {
        attempt->pid = pid;
        attempt->start_time = qn_attempt_process_start_time (pid);
        attempt->meta_dirty = true;
    }
    snprintf (attempt->workdir, sizeof attempt->workdir, "%s", workdir? workdir: "");
    if (engine_job_id && *engine_job_id) {
        //  Kept in the spool with the events, for a re-attach after a crash
        snprintf (attempt->engine_job_id, sizeof (attempt->engine_job_id), "%s", engine_job_id);
        attempt->meta_dirty = true;
    }
    Qanat__Started started = QANAT__STARTED__INIT;
    started.pid = pid;
    started.host = (char *) (host? host: "");
    started.workdir = (char *) (workdir? workdir: "");
    started.engine_job_id = (char *) (engine_job_id? engine_job_id: "");
    started.backend = (char *) (attempt->backend_name? attempt->backend_name: "");
    started.engine_url = attempt->engine_url? attempt->engine_url: "";
    Qanat__Event event = QANAT__EVENT__INIT;
    event.body_case = QANAT__EVENT__BODY_STARTED;
    event.started = &started;
    qn_outbox_post (self->outbox, attempt, &event);
}

void
qn_agent_on_link (void *arg, const qn_attempt_key_t *key, const char *url)
{
    qn_agent_t *self = (qn_agent_t *) arg;
    qn_attempt_t *attempt = s_callback_attempt (self, key);
    if (!attempt || !url || strlen (url) > QN_BACKEND_URL_MAX
    ||  (strncmp (url, "https://", 8) != 0 && strncmp (url, "http://", 7) != 0))
        return;
    char *copy = strdup (url);
    if (copy) {
        free (attempt->engine_url);
        attempt->engine_url = copy;
    }
}

void
qn_agent_on_cursor (void *arg, const qn_attempt_key_t *key, const char *cursor)
{
    qn_agent_t *self = (qn_agent_t *) arg;
    qn_attempt_t *attempt = s_callback_attempt (self, key);
    if (!attempt || !cursor)
        return;
    //  The metadata is written in the same commit as the events before it
    snprintf (attempt->cursor, sizeof (attempt->cursor), "%s", cursor);
    attempt->meta_dirty = true;
}

void
qn_agent_on_log (void *arg, const qn_attempt_key_t *key, Qanat__Stream stream,
                 const void *data, size_t size, bool partial, int64_t time_us)
{
    qn_agent_t *self = (qn_agent_t *) arg;
    qn_attempt_t *attempt = s_callback_attempt (self, key);
    if (!attempt)
        return;
    uint8_t *redacted = NULL;
    if (attempt->redactor) {
        qn_redact_carry_t none = { NULL, 0 };
        qn_redact_carry_t *carry = (unsigned) stream < QN_ATTEMPT_STREAMS? &attempt->carry [stream]
                                                                : &none;
        redacted = qn_redact_bytes (attempt->redactor, carry, data, size, partial, &size);
        if (!redacted) {
            qn_log (QN_LOG_ERROR, "agent", "out of memory redacting a log line of attempt %"
                          PRIu64 "/%u/%u; line dropped", key->run_id, key->task_index,
                          key->attempt);
            return;
        }
        if (partial && size == 0) {     //  all of it held back
            free (redacted);
            return;
        }
        data = redacted;
    }
    Qanat__LogChunk chunk = QANAT__LOG_CHUNK__INIT;
    chunk.stream = stream;
    chunk.data.data = (uint8_t *) data;
    chunk.data.len = size;
    chunk.partial = partial;
    chunk.time_us = time_us;
    Qanat__Event event = QANAT__EVENT__INIT;
    event.body_case = QANAT__EVENT__BODY_LOG;
    event.log = &chunk;
    qn_outbox_post (self->outbox, attempt, &event);
    qn_redact_wipe_free (redacted, size);
}

void
qn_agent_on_metric (void *arg, const qn_attempt_key_t *key, const char *name,
                    double value, int64_t step, bool has_step, int64_t time_us)
{
    qn_agent_t *self = (qn_agent_t *) arg;
    qn_attempt_t *attempt = s_callback_attempt (self, key);
    if (!attempt)
        return;
    char *redacted = NULL;
    if (attempt->redactor && name) {
        redacted = qn_redact_string (attempt->redactor, name);
        if (!redacted)
            return;
        name = redacted;
    }
    Qanat__MetricPoint point = QANAT__METRIC_POINT__INIT;
    point.name = (char *) name;
    point.value = value;
    point.step = step;
    point.has_step = has_step;
    point.time_us = time_us;
    Qanat__Event event = QANAT__EVENT__INIT;
    event.body_case = QANAT__EVENT__BODY_METRIC;
    event.metric = &point;
    qn_outbox_post (self->outbox, attempt, &event);
    free (redacted);
}

//  Spools an attempt's Finished (it may use the spool's reserve).  The
//  reason and stack trace must be redacted already.
static void
s_post_finished_with (qn_agent_t *self, qn_attempt_t *attempt, int exit_code, int signal,
                      const char *stack_trace, const char *reason, Qanat__EndKind kind,
                      Qanat__OutputRecord **outputs, size_t output_count)
{
    Qanat__Finished finished = QANAT__FINISHED__INIT;
    finished.outputs = outputs;
    finished.n_outputs = output_count;
    finished.exit_code = exit_code;
    finished.signal = signal;
    finished.stack_trace = (char *) (stack_trace? stack_trace: "");
    finished.reason = (char *) (reason? reason: "");
    finished.kind = kind;
    Qanat__Event event = QANAT__EVENT__INIT;
    event.body_case = QANAT__EVENT__BODY_FINISHED;
    event.finished = &finished;
    qn_outbox_post (self->outbox, attempt, &event);
}

void
qn_agent_post_finished (qn_agent_t *self, qn_attempt_t *attempt, int exit_code, int signal,
                        const char *stack_trace, const char *reason, Qanat__EndKind kind)
{
    s_post_finished_with (self, attempt, exit_code, signal, stack_trace, reason, kind, NULL, 0);
}

static void s_attempt_ended (qn_agent_t *self, qn_attempt_t *attempt, int exit_code,
                             const char *reason, Qanat__EndKind kind);

//  Where the attempt's inputs are staged: on its backend's filesystem
//  when the backend says so (NULL = the agent's stage directory)
const char *
qn_agent_stage_root (qn_agent_t *self, qn_attempt_t *attempt)
{
    const qn_agent_backend_t *backend = &self->backends [attempt->backend];
    return backend->ops->stage_dir? backend->ops->stage_dir (backend->state): NULL;
}

//  Outputs stored (or not): now the attempt may end
static void
s_outputs_collected (void *arg, const qn_attempt_key_t *key, int status, const char *error,
                     Qanat__OutputRecord **outputs, size_t count)
{
    qn_agent_t *self = (qn_agent_t *) arg;
    qn_attempt_t *attempt = qn_attempt_lookup (self->attempts, key);
    if (!attempt || attempt->state != QN_ATTEMPT_COLLECTING)
        return;
    char *clean = attempt->redactor && error? qn_redact_string (attempt->redactor, error): NULL;
    const char *reason = status == 0? "": clean? clean: error? error: "outputs not stored";
    if (status != 0)
        qn_log (QN_LOG_WARNING, "agent", "attempt %" PRIu64 "/%u/%u: %s", key->run_id,
                      key->task_index, key->attempt, reason);
    //  Exit code 0 with a reason and no outputs: the coordinator fails
    //  the attempt with that reason
    s_post_finished_with (self, attempt, 0, 0, "", reason, QANAT__END_KIND__END_EXIT,
                          outputs, count);
    free (clean);
    qn_stager_forget (self->stager, key, qn_agent_stage_root (self, attempt));
    s_attempt_ended (self, attempt, 0, reason, QANAT__END_KIND__END_EXIT);
}

void
qn_agent_on_finished (void *arg, const qn_attempt_key_t *key, int exit_code,
                      int signal, const char *stack_trace, const char *reason,
                      Qanat__EndKind kind)
{
    qn_agent_t *self = (qn_agent_t *) arg;
    qn_attempt_t *attempt = s_callback_attempt (self, key);
    if (!attempt)
        return;
    char *clean_trace = NULL;
    char *clean_reason = NULL;
    if (attempt->redactor) {
        //  What a line held back at its end (the stream ended inside a
        //  long line) goes out now: alone it is no whole secret
        for (int i = 0; i < QN_ATTEMPT_STREAMS; i++)
            if (attempt->carry [i].size)
                qn_agent_on_log (self, key, (Qanat__Stream) i, "", 0, false, qn_now_us ());
        clean_trace = qn_redact_trace (attempt->redactor, stack_trace? stack_trace: "");
        clean_reason = qn_redact_string (attempt->redactor, reason? reason: "");
        //  Out of memory: say nothing rather than show a secret
        stack_trace = clean_trace? clean_trace: "";
        reason = clean_reason? clean_reason: "(reason withheld: out of memory)";
    }
    if (attempt->assign && attempt->assign->n_outputs
    &&  exit_code == 0 && signal == 0 && kind == QANAT__END_KIND__END_EXIT
    &&  qn_attempt_advance (attempt, QN_ATTEMPT_COLLECTING) == 0) {
        //  A success ends only once its outputs are stored
        qn_log (QN_LOG_INFO, "agent", "attempt %" PRIu64 "/%u/%u exited 0; storing %zu output(s)",
                      key->run_id, key->task_index, key->attempt, attempt->assign->n_outputs);
        if (qn_stager_outputs (self->stager, key, attempt->assign, attempt->workdir,
                               s_outputs_collected, self) == -1)
            s_outputs_collected (self, key, -1, "cannot collect the outputs (out of memory)",
                                 NULL, 0);
        if (clean_trace)
            qn_redact_wipe_free (clean_trace, strlen (clean_trace));
        free (clean_reason);
        return;
    }
    qn_agent_post_finished (self, attempt, exit_code, signal, stack_trace, reason, kind);
    if (attempt->state == QN_ATTEMPT_STAGING || attempt->assign)
        qn_stager_forget (self->stager, key, qn_agent_stage_root (self, attempt));
    s_attempt_ended (self, attempt, exit_code, reason, kind);
    if (clean_trace)
        qn_redact_wipe_free (clean_trace, strlen (clean_trace));
    free (clean_reason);
}

//  The bookkeeping after an attempt's Finished went to the spool
//  A finished attempt's directory (the parent of its work directory,
//  with its metrics and values files) stays for inspection until
//  keep_workdirs newer ones have finished, then goes: an agent's disk
//  does not fill with every task it ever ran.  Only a directory whose
//  work/ the backend reported in started is ever removed.
static void
s_keep_workdir (qn_agent_t *self, const char *workdir)
{
    size_t len = workdir? strlen (workdir): 0;
    if (!self->kept_dirs || len < 7 || strcmp (workdir + len - 5, "/work") != 0
    ||  workdir [0] != '/')
        return;
    char *dir = strndup (workdir, len - 5);
    if (!dir || !*dir || strchr (dir + 1, '/') == NULL) {
        free (dir);             //  never a top-level directory
        return;
    }
    zlistx_add_end (self->kept_dirs, dir);
    while (zlistx_size (self->kept_dirs) > self->keep_workdirs) {
        qn_sweeper_remove (self->sweeper, (char *) zlistx_first (self->kept_dirs));
        zlistx_delete (self->kept_dirs, zlistx_cursor (self->kept_dirs));
    }
}

static void
s_attempt_ended (qn_agent_t *self, qn_attempt_t *attempt, int exit_code, const char *reason,
                 Qanat__EndKind kind)
{
    const qn_attempt_key_t *key = &attempt->key;
    bool was_running = qn_attempt_running (attempt);
    qn_attempt_advance (attempt, QN_ATTEMPT_ENDED);
    qn_log (QN_LOG_INFO, "agent", "attempt %" PRIu64 "/%u/%u finished (%s): exit code %d%s%s",
                  key->run_id, key->task_index, key->attempt, qn_attempt_end_kind_name (kind),
                  exit_code, reason && *reason? ", ": "", reason? reason: "");
    //  The slot comes back; announced after the commit, behind the
    //  Finished (or at the next Welcome, which recomputes it)
    if (was_running || kind == QANAT__END_KIND__END_START_FAILED)
        self->owed_credit++;
    s_keep_workdir (self, attempt->workdir);
    if (self->draining) {
        size_t running = qn_attempt_table_running (self->attempts);
        qn_log (QN_LOG_INFO, "agent", "draining: %zu attempt(s) still running, %zu held",
                      running, zhashx_size (self->attempts));
    }
}



void
qn_agent_record_before_submit (qn_agent_t *self, qn_attempt_t *attempt)
{
    attempt->meta_dirty = true;
    if (qn_outbox_commit (self->outbox) == -1)
        qn_log (QN_LOG_WARNING, "agent", "attempt %" PRIu64 "/%u/%u: cannot record it before "
                "its submit", attempt->key.run_id, attempt->key.task_index,
                attempt->key.attempt);
}

bool
qn_agent_wants_files (const qn_backend_ops_t *ops, const Qanat__Assign *assign)
{
    bool files = false;
    for (size_t i = 0; i < assign->n_outputs; i++)
        files = files || !assign->outputs [i]->value
             || !(ops->flags & QN_BACKEND_VALUE_OUTPUTS);
    for (size_t i = 0; i < assign->n_inputs; i++)
        files = files || assign->inputs [i]->kind != QANAT__ARTIFACT_KIND__ARTIFACT_VALUE;
    return files;
}
