/*  qn_run - an active run's record and every change of its tasks and
    attempts.  See qn_run.h.

    One of the files of the qn_coordinator class: it shares the engine's
    records (qn_engine.h), so the include checker counts it with
    qn_coordinator.
*/
#include "qn_run.h"
#include "qn_log.h"
#include "qn_agent_link.h"
#include "qn_dispatch.h"
#include "qn_share.h"
#include "qn_scheduler.h"
#include "qn_notify.h"
#include "qn_fleet.h"

//  ---------------------------------------------------------------------
//  Attempt endings

//  Every way an attempt ends, as AttemptInfo.end spells it on the wire
//  and in the store, with the retry_on flag that retries it.
static const struct {
    const char *name;
    unsigned retry_on;
} s_ends [QN_END_COUNT] = {
    [QN_END_EXIT]       = { "exit",       QN_RETRY_ON_EXIT },
    [QN_END_TIMEOUT]    = { "timeout",    QN_RETRY_ON_TIMEOUT },
    [QN_END_AGENT_LOST] = { "agent_lost", QN_RETRY_ON_AGENT_LOST },
    [QN_END_START]      = { "start",      QN_RETRY_ON_AGENT_LOST },
    [QN_END_CHECK]      = { "check",      QN_RETRY_ON_CHECK },
    [QN_END_OUTPUT]     = { "output",     QN_RETRY_ON_OUTPUT },
    [QN_END_CANCELED]   = { "canceled",   0 },
    [QN_END_CACHED]     = { "cached",     0 },
};

const char *
qn_end_name (qn_end_t end)
{
    assert (end < QN_END_COUNT);
    return s_ends [end].name;
}

unsigned
qn_end_retry_flag (qn_end_t end)
{
    assert (end < QN_END_COUNT);
    return s_ends [end].retry_on;
}

qn_end_t
qn_end_of_kind (Qanat__EndKind kind)
{
    return kind == QANAT__END_KIND__END_TIMEOUT? QN_END_TIMEOUT
         : kind == QANAT__END_KIND__END_CANCELED? QN_END_CANCELED
         : kind == QANAT__END_KIND__END_LOST? QN_END_AGENT_LOST
         : kind == QANAT__END_KIND__END_START_FAILED? QN_END_START: QN_END_EXIT;
}

//  ---------------------------------------------------------------------
//  The run record

const char *
qn_run_key (uint64_t run_id, char *key)
{
    snprintf (key, QN_RUN_KEY_SIZE, "%llu", (unsigned long long) run_id);
    return key;
}

run_t *
qn_run_find (qn_coordinator_t *self, uint64_t run_id)
{
    char key [QN_RUN_KEY_SIZE];
    return (run_t *) zhashx_lookup (self->runs, qn_run_key (run_id, key));
}

void
qn_run_destroy (run_t **run_p)
{
    run_t *run = *run_p;
    if (run) {
        qn_dag_destroy (&run->dag);
        qn_workflow_destroy (&run->wf);
        qn_engine_free_message (run->info);
        free (run->dirty_task);
        free (run->dirty_list);
        free (run->scratch);
        free (run);
        *run_p = NULL;
    }
}

void
qn_run_destructor (void **item)
{
    qn_run_destroy ((run_t **) item);
}

Qanat__TaskInfo *
qn_run_task (run_t *run, size_t index)
{
    return run->info->tasks [index];
}

Qanat__AttemptInfo *
qn_run_current_attempt (Qanat__TaskInfo *task)
{
    return task->n_attempts? task->attempts [task->n_attempts - 1]: NULL;
}

static bool
s_task_warned (Qanat__TaskInfo *task)
{
    for (size_t c = 0; c < task->n_checks; c++)
        if (!task->checks [c]->passed && streq (task->checks [c]->severity, "warning"))
            return true;
    return false;
}

//  Check results belong to the latest attempt only.
static void
s_task_clear_checks (run_t *run, Qanat__TaskInfo *task)
{
    if (s_task_warned (task) && run->warnings)
        run->warnings--;
    for (size_t c = 0; c < task->n_checks; c++)
        qn_engine_free_message (task->checks [c]);
    free (task->checks);
    task->checks = NULL;
    task->n_checks = 0;
}

//  The run goes on the engine's list of runs to write this turn.
static void
s_list_dirty (run_t *run)
{
    if (!run->listed) {
        run->listed = true;
        zlistx_add_end (run->owner->dirty_runs, run);
    }
}

void
qn_run_mark (run_t *run)
{
    run->dirty = true;
    s_list_dirty (run);
}

void
qn_run_mark_task (run_t *run, size_t index)
{
    if (!run->dirty_task [index]) {
        run->dirty_task [index] = true;
        run->dirty_list [run->dirty_count++] = index;
    }
    s_list_dirty (run);
}

char *
qn_run_attempt_key (uint64_t run_id, size_t task)
{
    return zsys_sprintf ("%llu:%zu", (unsigned long long) run_id, task);
}

//  Keeps each agent's set of running attempts in step with task statuses:
//  the set is what lost agents, reconciliation and slot counts read.
void
qn_run_track_running (run_t *run, size_t index, bool running)
{
    Qanat__AttemptInfo *attempt = qn_run_current_attempt (qn_run_task (run, index));
    agent_t *agent = attempt? (agent_t *) zhashx_lookup (run->owner->agents, attempt->agent): NULL;
    if (!agent)
        return;
    char *key = qn_run_attempt_key (run->id, index);
    //  What it asks of the agent's machine counts while it is in the set
    //  (local backend only: a cluster's engine places its own work)
    qn_res_t need = qn_fleet_need (qn_workflow_task (run->wf, index), attempt->backend);
    bool counts = !qn_res_empty (&need);
    bool listed = zhashx_lookup (agent->attempts, key) != NULL;
    bool counted = counts && listed;
    if (running != listed)
        qn_share_count (run->owner, run, index, running);
    if (running) {
        ready_t *ref = (ready_t *) zmalloc (sizeof (ready_t));
        ref->run_id = run->id;
        ref->task = (uint32_t) index;
        zhashx_update (agent->attempts, key, ref);
        if (counts && !counted)
            qn_placement_take (&agent->place, &need);
    }
    else {
        zhashx_delete (agent->attempts, key);
        if (counted)
            qn_placement_give (&agent->place, &need);
    }
    zstr_free (&key);
    agent->info->running = (uint32_t) zhashx_size (agent->attempts);
    if (counts)
        qn_fleet_show_resources (agent);
}

//  ---------------------------------------------------------------------
//  Task transitions

void
qn_run_set_status (run_t *run, size_t index, Qanat__TaskStatus status)
{
    Qanat__TaskStatus old = qn_run_task (run, index)->status;
    if (old == QANAT__TASK_STATUS__TASK_RUNNING && status != QANAT__TASK_STATUS__TASK_RUNNING)
        qn_run_track_running (run, index, false);
    qn_dag_set_status (run->dag, index, status);
    qn_run_task (run, index)->status = status;
    if (status == QANAT__TASK_STATUS__TASK_QUEUED && old != status)
        qn_run_task (run, index)->queued_us = qn_now_us ();
    if (status == QANAT__TASK_STATUS__TASK_RUNNING && old != QANAT__TASK_STATUS__TASK_RUNNING)
        qn_run_track_running (run, index, true);
    qn_run_mark_task (run, index);
}

//  The one skip-dependents routine: every task that depends on task index
//  (directly or not) and has not started is skipped, because index
//  failed or was canceled (what says which).
static void
s_skip_dependents (run_t *run, size_t index, const char *what)
{
    const char *name = qn_run_task (run, index)->name;
    size_t count = qn_dag_skip_dependents (run->dag, index, run->scratch);
    for (size_t i = 0; i < count; i++) {
        size_t dependent = run->scratch [i];
        qn_run_set_status (run, dependent, QANAT__TASK_STATUS__TASK_SKIPPED);
        qn_engine_replace_string (&qn_run_task (run, dependent)->waiting_reason,
                                  zsys_sprintf ("skipped: %s %s", name, what));
    }
}

_Static_assert (QN_END_COUNT <= QN_ENGINE_END_KINDS, "room for every end in the engine's counters");

//  The attempt ends now, as end.
static void
s_attempt_close (qn_coordinator_t *self, Qanat__AttemptInfo *attempt, qn_end_t end)
{
    self->attempts_ended [end]++;
    attempt->finished = true;
    attempt->finished_us = qn_now_us ();
    qn_engine_replace_string (&attempt->end, strdup (qn_end_name (end)));
}

//  ---------------------------------------------------------------------
//  Promotion and cache hits

//  The task's argv with the run's parameters in place (see
//  qn_workflow_task_argv), or as its cache key counts it (identity);
//  NULL with *error_p when it cannot be made.
char **
qn_run_task_argv (run_t *run, const qn_task_t *spec, bool identity, char **error_p)
{
    *error_p = NULL;
    qn_kv_t *params = (qn_kv_t *) calloc (run->info->n_params + 1, sizeof (qn_kv_t));
    if (!params)
        return NULL;
    for (size_t p = 0; p < run->info->n_params; p++) {
        params [p].key = run->info->params [p]->name;
        params [p].value = run->info->params [p]->value;
    }
    char **argv = identity? qn_workflow_task_identity (spec, params, run->info->n_params, error_p)
                          : qn_workflow_task_argv (spec, params, run->info->n_params, error_p);
    free (params);
    return argv;
}

//  The task's cache key: its command after parameters and its inputs'
//  hashes, with what else makes it the same work (qn_artifacts).
static int
s_cache_key (qn_coordinator_t *self, run_t *run, size_t index, char *key)
{
    const qn_task_t *spec = qn_workflow_task (run->wf, index);
    char *error = NULL;
    char **argv = qn_run_task_argv (run, spec, true, &error);
    free (error);
    Qanat__InputSpec **inputs = NULL;
    size_t input_count = 0;
    int rc = argv? qn_artifacts_inputs (self->artifacts, spec, run->info, NULL, &inputs,
                                        &input_count, &error): -1;
    free (error);
    if (rc == 0)
        rc = qn_artifacts_cache_key (self->artifacts, run->info->workflow, spec, argv, inputs,
                                     input_count, key);
    qn_artifacts_free_inputs (inputs, input_count);
    for (size_t i = 0; argv && argv [i]; i++)
        free (argv [i]);
    free (argv);
    return rc;
}

//  The task succeeds without running: one attempt that ended as cached,
//  taking outputs (an array it owns from now on, each blob gaining this
//  run's reference) from source_run.
static void
s_take_cached (qn_coordinator_t *self, run_t *run, size_t index, uint64_t source_run,
               Qanat__OutputRecord **outputs, size_t output_count)
{
    Qanat__TaskInfo *task = qn_run_task (run, index);
    Qanat__AttemptInfo *attempt = (Qanat__AttemptInfo *) malloc (sizeof (Qanat__AttemptInfo));
    qanat__attempt_info__init (attempt);
    attempt->attempt = (uint32_t) task->n_attempts + 1;
    attempt->agent = qn_engine_strdup ("");
    attempt->started_us = attempt->finished_us = qn_now_us ();
    attempt->finished = true;
    attempt->end = qn_engine_strdup (qn_end_name (QN_END_CACHED));
    self->attempts_ended [QN_END_CACHED]++;
    attempt->reason = zsys_sprintf ("cached from run %llu", (unsigned long long) source_run);
    //  Nothing ran: no agent, backend, host or environment of its own
    //  (where the outputs were made is in the source run)
    attempt->backend = qn_engine_strdup ("");
    attempt->engine_job_id = qn_engine_strdup ("");
    attempt->engine_url = qn_engine_strdup ("");
    attempt->environment = qn_engine_strdup ("");
    attempt->host = qn_engine_strdup ("");
    attempt->outputs = outputs;
    attempt->n_outputs = output_count;
    qn_artifacts_ref_outputs (self->artifacts, attempt->outputs, attempt->n_outputs, 1);
    qn_engine_append ((void ***) &task->attempts, &task->n_attempts, attempt);
    task->cached_from = source_run;
    qn_run_set_status (run, index, QANAT__TASK_STATUS__TASK_SUCCEEDED);
}

//  A task with cache: true whose identical work succeeded before takes
//  that attempt's outputs instead of running.  True when it did.
static bool
s_try_cache (qn_coordinator_t *self, run_t *run, size_t index)
{
    const qn_task_t *spec = qn_workflow_task (run->wf, index);
    if (!spec->cache || run->info->no_cache)
        return false;
    char key [QN_ARTIFACTS_KEY_HEX + 1];
    uint64_t source_run = 0;
    Qanat__AttemptInfo *source = NULL;
    if (s_cache_key (self, run, index, key) != 0
    ||  qn_artifacts_cache_lookup (self->artifacts, key, &source_run, &source) != 1)
        return false;
    if (qn_store_begin (self->store) != 0) {
        qanat__attempt_info__free_unpacked (source, NULL);
        return false;
    }
    //  The outputs move over, each blob gaining this run's reference
    s_take_cached (self, run, index, source_run, source->outputs, source->n_outputs);
    source->outputs = NULL;
    source->n_outputs = 0;
    qanat__attempt_info__free_unpacked (source, NULL);
    if (self->config.verbose)
        qn_log (QN_LOG_INFO, "run", "run %llu task %s cached from run %llu",
                (unsigned long long) run->id, spec->name, (unsigned long long) source_run);
    return true;
}

//  ---------------------------------------------------------------------
//  Reruns

//  The same params, by name and value, in any order
static bool
s_same_params (const Qanat__RunInfo *a, const Qanat__RunInfo *b)
{
    if (a->n_params != b->n_params)
        return false;
    for (size_t p = 0; p < a->n_params; p++) {
        bool found = false;
        for (size_t q = 0; q < b->n_params && !found; q++)
            found = streq (a->params [p]->name, b->params [q]->name)
                 && streq (a->params [p]->value, b->params [q]->value);
        if (!found)
            return false;
    }
    return true;
}

//  A copy of an attempt's outputs (through the wire form: no field is
//  missed), NULL when it has none or a copy fails
static Qanat__OutputRecord **
s_copy_outputs (const Qanat__AttemptInfo *attempt, size_t *count_p)
{
    *count_p = 0;
    Qanat__OutputRecord **copies = NULL;
    for (size_t o = 0; o < attempt->n_outputs; o++) {
        size_t size = qanat__output_record__get_packed_size (attempt->outputs [o]);
        uint8_t *packed = (uint8_t *) malloc (size? size: 1);
        if (!packed)
            break;
        qanat__output_record__pack (attempt->outputs [o], packed);
        Qanat__OutputRecord *copy = qanat__output_record__unpack (NULL, size, packed);
        free (packed);
        if (copy)
            qn_engine_append ((void ***) &copies, count_p, copy);
    }
    return copies;
}

int
qn_run_reuse (qn_coordinator_t *self, run_t *run, uint64_t from_id, char **error_p)
{
    *error_p = NULL;
    //  The earlier run from memory while active, else from the store
    run_t *active = qn_run_find (self, from_id);
    Qanat__RunInfo *from = active? active->info: qn_store_get_run (self->store, from_id);
    Qanat__TaskInfo **tasks = active? active->info->tasks: NULL;
    size_t task_count = active? active->info->n_tasks: 0;
    if (!from) {
        *error_p = zsys_sprintf ("no run %llu", (unsigned long long) from_id);
        return -1;
    }
    if (!streq (from->workflow, run->info->workflow) || from->version != run->info->version
    ||  !s_same_params (from, run->info))
        *error_p = zsys_sprintf ("run %llu is not of %s v%u with the same params: its tasks "
                                 "cannot be reused", (unsigned long long) from_id,
                                 run->info->workflow, run->info->version);
    else
    if (!active && qn_store_get_tasks (self->store, from_id, &tasks, &task_count) != 0)
        *error_p = zsys_sprintf ("cannot read the tasks of run %llu", (unsigned long long) from_id);
    for (size_t t = 0; t < task_count && !*error_p; t++) {
        Qanat__AttemptInfo *attempt = qn_run_current_attempt (tasks [t]);
        int index = qn_workflow_task_index (run->wf, tasks [t]->name);
        if (tasks [t]->status != QANAT__TASK_STATUS__TASK_SUCCEEDED || !attempt || index < 0)
            continue;
        size_t output_count = 0;
        Qanat__OutputRecord **outputs = s_copy_outputs (attempt, &output_count);
        s_take_cached (self, run, (size_t) index, from_id, outputs, output_count);
    }
    if (!active) {
        qn_store_free_array (tasks, task_count);
        qn_engine_free_message (from);
    }
    return *error_p? -1: 0;
}

//  Promotes tasks whose dependencies are done and queues them (or takes
//  their outputs from the cache).
void
qn_run_advance (qn_coordinator_t *self, run_t *run)
{
    size_t promoted = run->info->cancel_requested? 0: qn_dag_promote (run->dag, run->scratch);
    size_t cached = 0;
    for (size_t i = 0; i < promoted; i++) {
        size_t index = run->scratch [i];
        qn_run_set_status (run, index, QANAT__TASK_STATUS__TASK_QUEUED);
        if (s_try_cache (self, run, index))
            cached++;
        else
            qn_dispatch_queue (self, run, index);
    }
    if (cached) {
        //  Their dependents may be ready now
        qn_run_advance (self, run);
        return;
    }
    Qanat__RunStatus status = qn_dag_run_status (run->dag, run->info->cancel_requested,
                                                 run->warnings > 0);
    if (status != run->info->status) {
        run->info->status = status;
        self->runs_changed = true;
        qn_run_mark (run);
        if (qn_dag_finished (run->dag)) {
            run->info->finished_us = qn_now_us ();
            qn_scheduler_run_ended (self, run->id);
            qn_share_run_ended (self, run);
            if (self->config.verbose)
                qn_log (QN_LOG_INFO, "run", "run %llu %s", (unsigned long long) run->id,
                        qn_run_status_name (status));
        }
    }
}

//  Builds the in-memory run from a parsed workflow.
static run_t *
s_run_alloc (qn_coordinator_t *self, uint64_t run_id, qn_workflow_t *wf)
{
    run_t *run = (run_t *) zmalloc (sizeof (run_t));
    run->id = run_id;
    run->owner = self;
    run->wf = wf;
    run->dag = qn_dag_new (wf);
    size_t count = qn_workflow_task_count (wf) + 1;
    run->dirty_task = (bool *) calloc (count, sizeof (bool));
    run->dirty_list = (size_t *) calloc (count, sizeof (size_t));
    run->scratch = (size_t *) calloc (count, sizeof (size_t));
    if (!run->dag || !run->dirty_task || !run->dirty_list || !run->scratch) {
        run->wf = NULL;                 //  the caller still owns it
        qn_run_destroy (&run);
    }
    return run;
}

void
qn_run_param_types (Qanat__RunInfo *info, qn_workflow_t *wf)
{
    size_t declared = qn_workflow_param_count (wf);
    for (size_t p = 0; p < info->n_params; p++) {
        Qanat__Param *param = info->params [p];
        if (param->type && *param->type)
            continue;
        for (size_t d = 0; d < declared; d++) {
            const qn_param_t *declaration = qn_workflow_param (wf, d);
            if (param->name && streq (declaration->name, param->name)) {
                qn_engine_replace_string (&param->type,
                                          strdup (qn_param_type_name (declaration->type)));
                break;
            }
        }
    }
}

run_t *
qn_run_new (qn_coordinator_t *self, uint64_t run_id, qn_workflow_t *wf, uint32_t version,
            const char *filename, const qn_kv_t *params, size_t param_count)
{
    run_t *run = s_run_alloc (self, run_id, wf);
    if (!run)
        return NULL;
    size_t count = qn_workflow_task_count (wf);
    Qanat__RunInfo *info = (Qanat__RunInfo *) malloc (sizeof (Qanat__RunInfo));
    qanat__run_info__init (info);
    info->run_id = run_id;
    info->workflow = qn_engine_strdup (qn_workflow_name (wf));
    info->version = version;
    info->filename = qn_engine_strdup (filename);
    info->status = QANAT__RUN_STATUS__RUN_QUEUED;
    info->created_us = qn_now_us ();
    for (size_t p = 0; p < param_count; p++) {
        Qanat__Param *param = (Qanat__Param *) malloc (sizeof (Qanat__Param));
        qanat__param__init (param);
        param->name = qn_engine_strdup (params [p].key);
        param->value = qn_engine_strdup (params [p].value);
        qn_engine_append ((void ***) &info->params, &info->n_params, param);
    }
    qn_run_param_types (info, wf);
    info->tasks = (Qanat__TaskInfo **) calloc (count + 1, sizeof (Qanat__TaskInfo *));
    for (size_t t = 0; t < count; t++) {
        const qn_task_t *spec = qn_workflow_task (wf, t);
        Qanat__TaskInfo *task = (Qanat__TaskInfo *) malloc (sizeof (Qanat__TaskInfo));
        qanat__task_info__init (task);
        task->index = (uint32_t) t;
        task->name = qn_engine_strdup (spec->name);
        for (size_t n = 0; n < spec->needs_count; n++)
            qn_engine_append ((void ***) &task->needs, &task->n_needs, qn_engine_strdup (spec->needs [n]));
        for (size_t s = 0; s < spec->selector_count; s++)
            qn_engine_append ((void ***) &task->selector, &task->n_selector,
                              qn_engine_label_new (spec->selector [s].key, spec->selector [s].value));
        info->tasks [info->n_tasks++] = task;
    }
    run->info = info;
    for (size_t t = 0; t < count; t++)
        qn_run_mark_task (run, t);
    qn_run_mark (run);
    self->runs_changed = true;
    return run;
}

//  Writes the run's dirty records into the open transaction.
int
qn_run_persist (qn_coordinator_t *self, run_t *run)
{
    if (qn_store_begin (self->store))
        return -1;
    if (run->dirty) {
        if (qn_store_put_run (self->store, run->info))
            return -1;
        //  Its notifications go in the commit that stores its end
        if (qn_dag_finished (run->dag))
            qn_notify_run_ended (self, run);
        run->dirty = false;
    }
    for (size_t i = 0; i < run->dirty_count; i++) {
        size_t t = run->dirty_list [i];
        if (qn_store_put_task (self->store, run->id, qn_run_task (run, t)))
            return -1;
        run->dirty_task [t] = false;
    }
    run->dirty_count = 0;
    //  run->listed stays: the run is on the turn's list until the turn
    //  ends (a run listed twice would be retired, and freed, twice)
    return 0;
}

//  ---------------------------------------------------------------------
//  Attempts

static agent_t *
s_agent_of (qn_coordinator_t *self, Qanat__AttemptInfo *attempt)
{
    return attempt? (agent_t *) zhashx_lookup (self->agents, attempt->agent): NULL;
}

//  Exponential backoff with +-20% jitter, so that tasks failing together
//  do not come back together.
static int64_t
s_retry_delay_us (const qn_task_t *spec, size_t attempts)
{
    double delay = spec->retry_delay_s;
    for (size_t i = 1; i < attempts && delay < spec->retry_max_delay_s; i++)
        delay *= 2;
    if (delay > spec->retry_max_delay_s)
        delay = spec->retry_max_delay_s;
    delay *= 0.8 + 0.4 * ((double) randof (1000) / 1000.0);
    return (int64_t) (delay * 1e6);
}

bool
qn_run_retries (const qn_task_t *spec, size_t attempts, qn_end_t end, bool canceling)
{
    return !canceling && attempts <= spec->retries && (spec->retry_on & qn_end_retry_flag (end));
}

//  The agent's "env" label: the environment `qanat status` shows.
static const char *
s_agent_environment (agent_t *agent)
{
    for (size_t l = 0; l < agent->info->n_labels; l++)
        if (streq (agent->info->labels [l]->key, "env"))
            return agent->info->labels [l]->value;
    return "";
}

Qanat__AttemptInfo *
qn_run_attempt_start (run_t *run, size_t index, agent_t *agent)
{
    const qn_task_t *spec = qn_workflow_task (run->wf, index);
    Qanat__TaskInfo *task = qn_run_task (run, index);
    Qanat__AttemptInfo *attempt = (Qanat__AttemptInfo *) malloc (sizeof (Qanat__AttemptInfo));
    qanat__attempt_info__init (attempt);
    attempt->attempt = (uint32_t) task->n_attempts + 1;
    attempt->agent = qn_engine_strdup (agent->name);
    attempt->started_us = qn_now_us ();
    attempt->environment = qn_engine_strdup (s_agent_environment (agent));
    attempt->backend = qn_engine_strdup (spec->backend? spec->backend
                               : agent->info->n_backends? agent->info->backends [0]: "");
    qn_engine_append ((void ***) &task->attempts, &task->n_attempts, attempt);
    qn_engine_replace_string (&task->waiting_reason, qn_engine_strdup (""));
    s_task_clear_checks (run, task);
    task->retry_at_us = 0;
    qn_run_set_status (run, index, QANAT__TASK_STATUS__TASK_RUNNING);
    return attempt;
}

void
qn_run_attempt_failed (qn_coordinator_t *self, run_t *run, size_t index, qn_end_t end,
                       const char *reason)
{
    Qanat__TaskInfo *task = qn_run_task (run, index);
    Qanat__AttemptInfo *attempt = qn_run_current_attempt (task);
    if (attempt && !attempt->finished) {
        self->attempts_ended [end]++;
        attempt->finished = true;
        attempt->finished_us = qn_now_us ();
        qn_engine_replace_string (&attempt->reason, qn_engine_strdup (reason));
    }
    if (attempt)
        qn_engine_replace_string (&attempt->end, qn_engine_strdup (qn_end_name (end)));
    const qn_task_t *spec = qn_workflow_task (run->wf, index);
    if (qn_run_retries (spec, task->n_attempts, end, run->info->cancel_requested)) {
        int64_t delay = s_retry_delay_us (spec, task->n_attempts);
        task->retry_at_us = qn_now_us () + delay;
        qn_engine_replace_string (&task->waiting_reason,
                                  zsys_sprintf ("retry %zu of %u in %.1fs, after: %s", task->n_attempts,
                                        spec->retries, delay / 1e6, reason));
        qn_run_set_status (run, index, QANAT__TASK_STATUS__TASK_QUEUED);
        qn_dispatch_queue (self, run, index);
    }
    else {
        qn_run_set_status (run, index, QANAT__TASK_STATUS__TASK_FAILED);
        s_skip_dependents (run, index, "failed");
    }
    qn_run_mark_task (run, index);
    qn_run_advance (self, run);
}

//  Whatever a canceled attempt sends afterwards is no longer current and
//  is ignored.
void
qn_run_cancel_task (qn_coordinator_t *self, run_t *run, size_t index, const char *why)
{
    Qanat__TaskInfo *task = qn_run_task (run, index);
    if (task->status == QANAT__TASK_STATUS__TASK_RUNNING) {
        Qanat__AttemptInfo *attempt = qn_run_current_attempt (task);
        agent_t *agent = s_agent_of (self, attempt);
        qn_agent_link_post_cancel (self, agent, run->id, (uint32_t) index, attempt->attempt, why);
        if (agent) {
            qn_res_t need = qn_fleet_need (qn_workflow_task (run->wf, index), attempt->backend);
            qn_fleet_hold (agent, run->id, (uint32_t) index, attempt->attempt, &need);
        }
        qn_engine_replace_string (&attempt->reason, zsys_sprintf ("canceled: %s", why));
        s_attempt_close (self, attempt, QN_END_CANCELED);
    }
    qn_engine_replace_string (&task->waiting_reason, qn_engine_strdup (""));
    qn_run_set_status (run, index, QANAT__TASK_STATUS__TASK_CANCELED);
    s_skip_dependents (run, index, "canceled");
}

void
qn_run_fail_unstartable (qn_coordinator_t *self, run_t *run, size_t index, const char *reason)
{
    Qanat__TaskInfo *task = qn_run_task (run, index);
    qn_engine_replace_string (&task->waiting_reason, zsys_sprintf ("cannot start: %s", reason));
    qn_run_set_status (run, index, QANAT__TASK_STATUS__TASK_FAILED);
    s_skip_dependents (run, index, "failed");
    qn_run_advance (self, run);
}

//  Evaluates the task's checks over the metrics its attempt reported.
//  Returns the first failing error check's description, or NULL.
static char *
s_evaluate_checks (qn_coordinator_t *self, run_t *run, size_t index, uint32_t attempt_number)
{
    const qn_task_t *spec = qn_workflow_task (run->wf, index);
    Qanat__TaskInfo *task = qn_run_task (run, index);
    s_task_clear_checks (run, task);
    char *failure = NULL;
    for (size_t c = 0; c < spec->checks_count; c++) {
        qn_check_t *check = spec->checks [c].check;
        Qanat__MetricRecord **records = NULL;
        size_t count = 0;
        qn_store_read_metrics (self->store, run->id, qn_check_metric (check), &records, &count);
        double *values = (double *) calloc (count? count: 1, sizeof (double));
        size_t found = 0;
        for (size_t r = 0; r < count; r++)
            if (streq (records [r]->task, spec->name) && records [r]->attempt == attempt_number
            &&  records [r]->point)
                values [found++] = records [r]->point->value;
        qn_store_free_array (records, count);
        bool passed = false;
        char *detail = qn_check_eval (check, values, found, &passed);
        free (values);
        Qanat__CheckResult *result = (Qanat__CheckResult *) malloc (sizeof (Qanat__CheckResult));
        qanat__check_result__init (result);
        result->expr = qn_engine_strdup (qn_check_expr (check));
        bool warning = spec->checks [c].severity == QN_SEVERITY_WARNING;
        result->severity = qn_engine_strdup (warning? "warning": "error");
        result->passed = passed;
        result->detail = detail;
        qn_engine_append ((void ***) &task->checks, &task->n_checks, result);
        if (!passed && !warning && !failure)
            failure = zsys_sprintf ("check failed: %s", detail);
    }
    if (s_task_warned (task))
        run->warnings++;
    return failure;
}

void
qn_run_attempt_finished (qn_coordinator_t *self, run_t *run, size_t index,
                         Qanat__AttemptInfo *attempt, Qanat__Finished *finished)
{
    attempt->exit_code = finished->exit_code;
    attempt->signal = finished->signal;
    qn_engine_replace_string (&attempt->stack_trace, qn_engine_strdup (finished->stack_trace));
    qn_engine_replace_string (&attempt->reason, qn_engine_strdup (finished->reason));
    bool ok = finished->exit_code == 0 && finished->signal == 0;
    if (ok) {
        char *failure = s_evaluate_checks (self, run, index, attempt->attempt);
        if (failure) {
            qn_run_attempt_failed (self, run, index, QN_END_CHECK, failure);
            free (failure);
            return;
        }
        const qn_task_t *spec = qn_workflow_task (run->wf, index);
        char *missing = qn_store_begin (self->store) == 0
                      ? qn_artifacts_record (self->artifacts, spec, attempt, finished)
                      : strdup ("the store cannot record the outputs");
        if (missing) {
            qn_run_attempt_failed (self, run, index, QN_END_OUTPUT, missing);
            free (missing);
            return;
        }
        if (spec->cache && !run->info->no_cache) {
            char key [QN_ARTIFACTS_KEY_HEX + 1];
            if (s_cache_key (self, run, index, key) == 0)
                qn_artifacts_cache_put (self->artifacts, key, run->id, (uint32_t) index,
                                        attempt->attempt);
        }
        s_attempt_close (self, attempt, QN_END_EXIT);
        qn_run_set_status (run, index, QANAT__TASK_STATUS__TASK_SUCCEEDED);
        qn_run_advance (self, run);
    }
    else {
        char *reason = *finished->reason? strdup (finished->reason)
                     : finished->signal? zsys_sprintf ("killed by signal %d", finished->signal)
                     : zsys_sprintf ("exit code %d", finished->exit_code);
        qn_run_attempt_failed (self, run, index, qn_end_of_kind (finished->kind), reason);
        free (reason);
    }
}

//  ---------------------------------------------------------------------
//  Loading from the store

run_t *
qn_run_load (qn_coordinator_t *self, uint64_t run_id)
{
    Qanat__RunInfo *info = qn_store_get_run (self->store, run_id);
    if (!info)
        return NULL;
    Qanat__SubmitWorkflow *source = qn_store_get_workflow (self->store, info->workflow, info->version);
    char *error = NULL;
    qn_workflow_t *wf = source? qn_workflow_parse (source->filename, (const char *) source->source.data,
                                                   source->source.len, &error): NULL;
    qn_engine_free_message (source);
    Qanat__TaskInfo **tasks = NULL;
    size_t count = 0;
    if (!wf || qn_store_get_tasks (self->store, run_id, &tasks, &count)
    ||  count != qn_workflow_task_count (wf)) {
        qn_log (QN_LOG_ERROR, "run", "run %llu cannot be reloaded (%s); it is marked failed",
                (unsigned long long) run_id, error? error: "its records are incomplete");
        free (error);
        info->tasks = tasks;                //  for the notifications' failed tasks
        info->n_tasks = count;
        info->status = QANAT__RUN_STATUS__RUN_FAILED;
        info->finished_us = qn_now_us ();
        //  It ended: its triggers and notifications go in the same commit,
        //  as for any run's end
        if (qn_store_begin (self->store) == 0) {
            qn_store_put_run (self->store, info);
            qn_notify_ended (self, info, wf);
            qn_scheduler_run_ended (self, run_id);
        }
        qn_workflow_destroy (&wf);
        qn_engine_free_message (info);
        return NULL;
    }
    run_t *run = s_run_alloc (self, run_id, wf);
    if (!run) {
        qn_store_free_array (tasks, count);
        qn_workflow_destroy (&wf);
        qn_engine_free_message (info);
        return NULL;
    }
    info->tasks = tasks;
    info->n_tasks = count;
    qn_run_param_types (info, wf);      //  stored before types were recorded
    run->info = info;
    for (size_t t = 0; t < count; t++) {
        //  A status we do not know (a damaged record) ends the task.
        if ((int) tasks [t]->status < 0 || tasks [t]->status > QANAT__TASK_STATUS__TASK_CANCELED)
            tasks [t]->status = QANAT__TASK_STATUS__TASK_FAILED;
        qn_dag_set_status (run->dag, t, tasks [t]->status);
        for (size_t c = 0; c < tasks [t]->n_checks; c++)
            if (!tasks [t]->checks [c]->passed && streq (tasks [t]->checks [c]->severity, "warning")) {
                run->warnings++;
                break;
            }
    }
    return run;
}
