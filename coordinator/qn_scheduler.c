/*  qn_scheduler - runs the coordinator starts by itself.  See
    qn_scheduler.h and docs/schedules.md.

    Each pass first brings its view of the stored workflows up to date
    (the newest version of each, parsed once per version), then walks
    every schedule: the ticks due since its cursor (the last tick it
    considered, or the moment it first saw the schedule) are each started
    or recorded skipped, and the cursor moves to the newest.  A run is
    started through the same StartRun handler a client uses, as "@schedule"
    (or "@trigger") with no role, so it gets every check a client's run
    gets: no user can be named so (user names have no '@'), so such a run
    uses only the secrets whose access list names its workflow, whoever
    published it.
*/
#include "qn_engine.h"
#include "qn_scheduler.h"
#include "qn_log.h"
#include "qn_wf_schedule.h"

#include <inttypes.h>

#define S_PENDING_MAX   64          //  ended runs handled per pass

//  A stored workflow's newest version, parsed
typedef struct {
    uint32_t version;
    qn_workflow_t *wf;              //  NULL when it does not parse
    qn_tz_t **zones;                //  per schedule, loaded once; NULL for none
    size_t zone_count;
} s_entry_t;

struct _qn_scheduler_t {
    zhashx_t *workflows;            //  name -> s_entry_t
    //  A version may have been stored (or a reload may have dropped one)
    //  since the newest versions were last read: read them again
    bool stale;
    char *clock_file;               //  QANAT_TEST_CLOCK_FILE, or NULL
};

//  What the StartRun handler answered
typedef struct {
    uint64_t run_id;
    char error [160];
} s_started_t;

static void
s_entry_destroy (void **item)
{
    s_entry_t *entry = (s_entry_t *) *item;
    if (entry) {
        for (size_t i = 0; i < entry->zone_count; i++)
            qn_tz_destroy (&entry->zones [i]);
        free (entry->zones);
        qn_workflow_destroy (&entry->wf);
        free (entry);
        *item = NULL;
    }
}

qn_scheduler_t *
qn_scheduler_new (void)
{
    qn_scheduler_t *self = (qn_scheduler_t *) zmalloc (sizeof (qn_scheduler_t));
    self->workflows = zhashx_new ();
    zhashx_set_destructor (self->workflows, s_entry_destroy);
    self->stale = true;
    const char *clock = getenv ("QANAT_TEST_CLOCK_FILE");
    if (clock && *clock) {
        self->clock_file = strdup (clock);
        qn_log (QN_LOG_WARNING, "scheduler", "the scheduler's clock is moved by %s (for tests "
                "only)", clock);
    }
    return self;
}

void
qn_scheduler_destroy (qn_scheduler_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    qn_scheduler_t *self = *self_p;
    zhashx_destroy (&self->workflows);
    free (self->clock_file);
    free (self);
    *self_p = NULL;
}

//  Seconds since the epoch, as the scheduler sees them
static int64_t
s_now (qn_scheduler_t *self)
{
    int64_t now = zclock_time () / 1000;
    FILE *file = self->clock_file? fopen (self->clock_file, "r"): NULL;
    if (file) {
        double offset = 0;
        if (fscanf (file, "%lf", &offset) == 1 && offset > -1e10 && offset < 1e10)
            now += (int64_t) offset;
        fclose (file);
    }
    return now;
}

//  Notes a workflow whose newest version the scheduler has not parsed
static void
s_note_latest (void *arg, const char *name, uint32_t latest)
{
    zhashx_t **changed = (zhashx_t **) arg;
    s_entry_t *entry = (s_entry_t *) zhashx_lookup ((zhashx_t *) changed [0], name);
    if (!entry || entry->version != latest)
        zhashx_update (changed [1], name, (void *) (uintptr_t) latest);
}

//  Brings the parsed newest versions up to date
static void
s_refresh (qn_coordinator_t *engine)
{
    qn_scheduler_t *self = engine->scheduler;
    if (!self->stale)
        return;
    zhashx_t *changed [2] = { self->workflows, zhashx_new () };
    if (qn_store_sched_latest (engine->store, s_note_latest, changed)) {
        zhashx_destroy (&changed [1]);
        return;
    }
    self->stale = false;
    for (void *item = zhashx_first (changed [1]); item; item = zhashx_next (changed [1])) {
        const char *name = (const char *) zhashx_cursor (changed [1]);
        uint32_t latest = (uint32_t) (uintptr_t) item;
        Qanat__SubmitWorkflow *source = qn_store_get_workflow (engine->store, name, latest);
        char *error = NULL;
        qn_workflow_t *wf = source? qn_workflow_parse (source->filename,
                                                       (const char *) source->source.data,
                                                       source->source.len, &error): NULL;
        qn_engine_free_message (source);
        if (!wf)
            qn_log (QN_LOG_WARNING, "scheduler", "workflow %s v%u does not parse: %s",
                    name, latest, error? error: "not found");
        free (error);
        s_entry_t *entry = (s_entry_t *) zmalloc (sizeof (s_entry_t));
        entry->version = latest;
        entry->wf = wf;
        const qn_wf_schedule_t *sched = wf? qn_workflow_schedule (wf): NULL;
        if (sched && sched->schedule_count)
            entry->zones = (qn_tz_t **) calloc (sched->schedule_count, sizeof (qn_tz_t *));
        for (size_t i = 0; entry->zones && i < sched->schedule_count; i++) {
            entry->zones [i] = qn_tz_load (sched->schedules [i].timezone, &error);
            zstr_free (&error);
        }
        entry->zone_count = entry->zones? sched->schedule_count: 0;
        zhashx_update (self->workflows, name, entry);
    }
    zhashx_destroy (&changed [1]);
}

static size_t
s_active_runs (qn_coordinator_t *engine, const char *name)
{
    size_t active = 0;
    for (run_t *run = (run_t *) zhashx_first (engine->runs); run;
         run = (run_t *) zhashx_next (engine->runs))
        if (streq (run->info->workflow, name)
        &&  run->info->status <= QANAT__RUN_STATUS__RUN_RUNNING)
            active++;
    return active;
}

static void
s_on_reply (qn_api_call_t *call, Qanat__Reply *reply)
{
    s_started_t *started = (s_started_t *) call->sink;
    if (reply->body_case == QANAT__REPLY__BODY_RUN)
        started->run_id = reply->run->run_id;
    else
    if (reply->body_case == QANAT__REPLY__BODY_ERROR)
        snprintf (started->error, sizeof started->error, "%s", reply->error->message);
    else
        snprintf (started->error, sizeof started->error, "unexpected reply");
}

//  Starts a run of the stored version as user owner; 0 with *run_id_p,
//  or -1 with the handler's error in why
static int
s_start (qn_coordinator_t *engine, const char *name, uint32_t version, const qn_kv_t *params,
         size_t count, const char *owner, uint64_t *run_id_p, char *why, size_t why_size)
{
    Qanat__Param *values = (Qanat__Param *) calloc (count + 1, sizeof (Qanat__Param));
    Qanat__Param **pointers = (Qanat__Param **) calloc (count + 1, sizeof (Qanat__Param *));
    s_started_t started = { 0, "out of memory" };
    if (values && pointers) {
        for (size_t i = 0; i < count; i++) {
            qanat__param__init (&values [i]);
            values [i].name = params [i].key;
            values [i].value = params [i].value;
            pointers [i] = &values [i];
        }
        Qanat__StartRun start = QANAT__START_RUN__INIT;
        start.workflow_name = (char *) name;
        start.workflow_version = version;
        start.params = pointers;
        start.n_params = count;
        Qanat__Request request = QANAT__REQUEST__INIT;
        request.body_case = QANAT__REQUEST__BODY_START_RUN;
        request.start_run = &start;
        Qanat__Principal who = QANAT__PRINCIPAL__INIT;
        who.kind = "user";
        who.name = (char *) owner;
        who.role = "";                  //  no role: only workflow:NAME secrets
        qn_api_call_t call = { engine, &who, s_on_reply, &started };
        started.error [0] = '\0';
        qn_api_handle (&call, &request);
    }
    free (values);
    free (pointers);
    *run_id_p = started.run_id;
    snprintf (why, why_size, "could not start: %s", started.error);
    return started.run_id? 0: -1;
}

//  ---------------------------------------------------------------------
//  Schedules

//  The ticks due in (cursor, now]: the newest QN_SCHEDULER_MISSED_MAX of
//  them, oldest first, in ticks; returns how many were due in all
static size_t
s_due_ticks (const qn_schedule_t *entry, const qn_tz_t *tz, int64_t cursor, int64_t now,
             int64_t *ticks, size_t *kept_p)
{
    size_t total = 0;
    int64_t ring [QN_SCHEDULER_MISSED_MAX];
    int64_t t = cursor;
    while (qn_cron_next (&entry->cron, tz, t, &t) == 0 && t <= now)
        ring [total++ % QN_SCHEDULER_MISSED_MAX] = t;
    size_t kept = total < QN_SCHEDULER_MISSED_MAX? total: QN_SCHEDULER_MISSED_MAX;
    for (size_t k = 0; k < kept; k++)
        ticks [k] = ring [(total - kept + k) % QN_SCHEDULER_MISSED_MAX];
    *kept_p = kept;
    return total;
}

//  One due tick: started, or recorded skipped with why
static void
s_tick (qn_coordinator_t *engine, const char *name, s_entry_t *entry, uint32_t index,
        int64_t tick, const char *skip, size_t *active)
{
    const qn_wf_schedule_t *sched = qn_workflow_schedule (entry->wf);
    const qn_schedule_t *schedule = &sched->schedules [index];
    qn_store_tick_t record;
    if (qn_store_sched_tick_get (engine->store, name, index, tick, &record) != 0)
        return;                         //  done already (or unreadable: not twice)
    memset (&record, 0, sizeof record);
    record.tick = tick;
    if (skip)
        snprintf (record.reason, sizeof record.reason, "%s", skip);
    else
    if (sched->max_active && *active >= sched->max_active)
        snprintf (record.reason, sizeof record.reason, "max_active %u reached (%zu active)",
                  sched->max_active, *active);
    else
    if (s_start (engine, name, entry->version, schedule->params, schedule->param_count,
                 "@schedule", &record.run_id, record.reason, sizeof record.reason) == 0) {
        record.reason [0] = '\0';
        (*active)++;
    }
    if (qn_store_begin (engine->store) || qn_store_sched_tick_put (engine->store, name, index,
                                                                   &record)) {
        qn_log (QN_LOG_ERROR, "scheduler", "%s", qn_store_error (engine->store));
        return;
    }
    if (record.run_id)
        qn_log (QN_LOG_INFO, "scheduler", "%s schedule %u tick %" PRId64 ": run %" PRIu64,
                name, index, tick, record.run_id);
    else
        qn_log (QN_LOG_INFO, "scheduler", "%s schedule %u tick %" PRId64 " skipped: %s",
                name, index, tick, record.reason);
}

static void
s_schedule_pass (qn_coordinator_t *engine, const char *name, s_entry_t *entry, uint32_t index,
                 int64_t now, bool paused, size_t *active)
{
    const qn_schedule_t *schedule = &qn_workflow_schedule (entry->wf)->schedules [index];
    int64_t cursor;
    int found = qn_store_sched_cursor_get (engine->store, name, index, &cursor);
    if (found < 0)
        return;
    if (found == 0) {                   //  counting starts when it is first seen
        if (qn_store_begin (engine->store) == 0)
            qn_store_sched_cursor_put (engine->store, name, index, now);
        return;
    }
    const qn_tz_t *tz = index < entry->zone_count? entry->zones [index]: NULL;
    if (!tz)
        return;
    if (now - cursor > QN_SCHEDULER_LOOKBACK_S) {
        qn_log (QN_LOG_WARNING, "scheduler", "%s schedule %u: ticks more than 31 days old "
                "are dropped unrecorded", name, index);
        cursor = now - QN_SCHEDULER_LOOKBACK_S;
    }
    int64_t ticks [QN_SCHEDULER_MISSED_MAX];
    size_t kept = 0;
    size_t total = s_due_ticks (schedule, tz, cursor, now, ticks, &kept);
    if (total > kept)
        qn_log (QN_LOG_WARNING, "scheduler", "%s schedule %u: %zu ticks missed, the oldest "
                "%zu left unrecorded", name, index, total, total - kept);
    for (size_t k = 0; k < kept; k++) {
        bool late = now - ticks [k] > QN_SCHEDULER_GRACE_S;
        const char *skip = NULL;
        if (paused)
            skip = "the schedule is paused";
        else
        if (late && schedule->catchup == QN_CATCHUP_NONE)
            skip = "missed: over 60 s late, the coordinator was down (catchup: none)";
        else
        if (k + 1 < kept && schedule->catchup == QN_CATCHUP_LATEST)
            skip = "missed; a later tick ran instead (catchup: latest)";
        s_tick (engine, name, entry, index, ticks [k], skip, active);
    }
    if (kept && qn_store_begin (engine->store) == 0)
        qn_store_sched_cursor_put (engine->store, name, index, ticks [kept - 1]);
}

//  ---------------------------------------------------------------------
//  Triggers

typedef struct {
    Qanat__TaskInfo **tasks;
    size_t count;
} s_outputs_t;

static const char *
s_output_value (void *arg, const char *task, const char *output)
{
    s_outputs_t *outputs = (s_outputs_t *) arg;
    for (size_t t = 0; t < outputs->count; t++) {
        Qanat__TaskInfo *info = outputs->tasks [t];
        if (!streq (info->name, task) || info->n_attempts == 0)
            continue;
        Qanat__AttemptInfo *attempt = info->attempts [info->n_attempts - 1];
        for (size_t o = 0; o < attempt->n_outputs; o++)
            if (streq (attempt->outputs [o]->name, output)
            &&  attempt->outputs [o]->kind == QANAT__ARTIFACT_KIND__ARTIFACT_VALUE)
                return attempt->outputs [o]->value;
    }
    return NULL;
}

static bool
s_listed (char **names, size_t count, const char *name)
{
    for (size_t i = 0; i < count; i++)
        if (streq (names [i], name))
            return true;
    return false;
}

//  The downstream runs of one ended run
static void
s_fire (qn_coordinator_t *engine, Qanat__RunInfo *upstream)
{
    s_outputs_t outputs = { NULL, 0 };
    bool loaded = false;
    zhashx_t *workflows = engine->scheduler->workflows;
    for (s_entry_t *entry = (s_entry_t *) zhashx_first (workflows); entry;
         entry = (s_entry_t *) zhashx_next (workflows)) {
        const char *name = (const char *) zhashx_cursor (workflows);
        const qn_wf_schedule_t *sched = entry->wf? qn_workflow_schedule (entry->wf): NULL;
        uint64_t done = 0;
        if (!sched || !s_listed (sched->after, sched->after_count, upstream->workflow)
        ||  !(sched->on & (1u << upstream->status))
        ||  qn_store_sched_triggered_get (engine->store, upstream->run_id, name, &done) != 0)
            continue;
        if (!loaded)
            qn_store_get_tasks (engine->store, upstream->run_id, &outputs.tasks, &outputs.count);
        loaded = true;
        qn_kv_t *params = (qn_kv_t *) calloc (sched->trigger_param_count + 1, sizeof (qn_kv_t));
        for (size_t p = 0; params && p < sched->trigger_param_count; p++) {
            params [p].key = strdup (sched->trigger_params [p].key);
            params [p].value = qn_wf_schedule_expand (sched->trigger_params [p].value,
                                                      upstream->run_id, upstream->workflow,
                                                      upstream->status, s_output_value, &outputs);
        }
        uint64_t run_id = 0;
        char why [200] = "";
        size_t active = s_active_runs (engine, name);
        if (sched->max_active && active >= sched->max_active)
            snprintf (why, sizeof why, "max_active %u reached", sched->max_active);
        else
            s_start (engine, name, entry->version, params, params? sched->trigger_param_count: 0,
                     "@trigger", &run_id, why, sizeof why);
        qn_kv_free (params, sched->trigger_param_count);
        if (qn_store_begin (engine->store) == 0)
            qn_store_sched_triggered_put (engine->store, upstream->run_id, name, run_id);
        if (run_id)
            qn_log (QN_LOG_INFO, "scheduler", "run %" PRIu64 " of %s ended %s: run %" PRIu64
                    " of %s", upstream->run_id, upstream->workflow,
                    qn_wf_schedule_status_name (upstream->status), run_id, name);
        else
            qn_log (QN_LOG_WARNING, "scheduler", "run %" PRIu64 " of %s ended: %s not "
                    "started: %s", upstream->run_id, upstream->workflow, name, why);
    }
    qn_store_free_array (outputs.tasks, outputs.count);
}

static void
s_trigger_pass (qn_coordinator_t *engine)
{
    uint64_t ids [S_PENDING_MAX];
    size_t count = 0;
    if (qn_store_sched_pending_list (engine->store, ids, S_PENDING_MAX, &count))
        return;
    for (size_t i = 0; i < count; i++) {
        Qanat__RunInfo *info = qn_store_get_run (engine->store, ids [i]);
        //  A run that ended in this very turn is written at its end: the
        //  next pass sees its final status
        bool ended = info && info->status > QANAT__RUN_STATUS__RUN_RUNNING;
        if (ended)
            s_fire (engine, info);
        qn_engine_free_message (info);
        if ((ended || !info) && qn_store_begin (engine->store) == 0)
            qn_store_sched_pending_delete (engine->store, ids [i]);
    }
}

void
qn_scheduler_run_ended (qn_coordinator_t *engine, uint64_t run_id)
{
    if (qn_store_begin (engine->store) || qn_store_sched_pending_put (engine->store, run_id))
        qn_log (QN_LOG_ERROR, "scheduler", "run %" PRIu64 ": %s", run_id,
                qn_store_error (engine->store));
}

int64_t
qn_scheduler_now (qn_coordinator_t *engine)
{
    return s_now (engine->scheduler);
}

void
qn_scheduler_versions_changed (qn_scheduler_t *self)
{
    if (self)
        self->stale = true;
}

void
qn_scheduler_pass (qn_coordinator_t *engine)
{
    s_refresh (engine);
    int64_t now = s_now (engine->scheduler);
    zhashx_t *workflows = engine->scheduler->workflows;
    zlistx_t *names = zhashx_keys (workflows);
    for (const char *name = (const char *) zlistx_first (names); name;
         name = (const char *) zlistx_next (names)) {
        s_entry_t *entry = (s_entry_t *) zhashx_lookup (workflows, name);
        const qn_wf_schedule_t *sched = entry->wf? qn_workflow_schedule (entry->wf): NULL;
        if (!sched || !sched->schedule_count)
            continue;
        bool paused = qn_store_sched_paused (engine->store, name) == 1;
        size_t active = s_active_runs (engine, name);
        for (uint32_t i = 0; i < sched->schedule_count; i++)
            s_schedule_pass (engine, name, entry, i, now, paused, &active);
    }
    zlistx_destroy (&names);
    s_trigger_pass (engine);
}

//  ---------------------------------------------------------------------
//  Trigger cycles

//  The trigger keys of name's newest version, wf standing in for its own
static const qn_wf_schedule_t *
s_triggers_of (zhashx_t *workflows, qn_workflow_t *wf, const char *name)
{
    if (streq (name, qn_workflow_name (wf)))
        return qn_workflow_schedule (wf);
    s_entry_t *entry = (s_entry_t *) zhashx_lookup (workflows, name);
    return entry && entry->wf? qn_workflow_schedule (entry->wf): NULL;
}

//  True if target is reached from name by following triggers downstream
static bool
s_reaches (zhashx_t *workflows, qn_workflow_t *wf, const char *from, const char *target,
           zhashx_t *seen)
{
    if (zhashx_insert (seen, from, (void *) 1) != 0)
        return false;                   //  been there
    zlistx_t *names = zhashx_keys (workflows);
    zlistx_set_duplicator (names, (zlistx_duplicator_fn *) strdup);
    if (!zhashx_lookup (workflows, qn_workflow_name (wf)))
        zlistx_add_end (names, (void *) qn_workflow_name (wf));
    bool found = false;
    for (const char *down = (const char *) zlistx_first (names); down && !found;
         down = (const char *) zlistx_next (names)) {
        const qn_wf_schedule_t *sched = s_triggers_of (workflows, wf, down);
        if (sched && s_listed (sched->after, sched->after_count, from))
            found = streq (down, target) || s_reaches (workflows, wf, down, target, seen);
    }
    zlistx_destroy (&names);
    return found;
}

int
qn_scheduler_check_cycle (qn_coordinator_t *engine, qn_workflow_t *wf, char **error_p)
{
    const qn_wf_schedule_t *sched = qn_workflow_schedule (wf);
    if (!sched || !sched->after_count)
        return 0;
    s_refresh (engine);
    const char *name = qn_workflow_name (wf);
    for (size_t i = 0; i < sched->after_count; i++) {
        zhashx_t *seen = zhashx_new ();
        //  A cycle: the upstream is reached again from this workflow
        bool cycle = streq (sched->after [i], name)
                  || s_reaches (engine->scheduler->workflows, wf, name, sched->after [i], seen);
        zhashx_destroy (&seen);
        if (cycle) {
            *error_p = zsys_sprintf ("trigger cycle: %.200s runs after %.200s, which runs "
                                     "(through its triggers) after %.200s", name,
                                     sched->after [i], name);
            return -1;
        }
    }
    return 0;
}

//  ---------------------------------------------------------------------
//  Requests

static const char *s_catchup_names [] = { "none", "latest", "all" };

//  The status of a run: from memory while active, else the store
static Qanat__RunStatus
s_run_status (qn_coordinator_t *engine, uint64_t run_id)
{
    char key [32];
    snprintf (key, sizeof key, "%" PRIu64, run_id);
    run_t *run = (run_t *) zhashx_lookup (engine->runs, key);
    if (run)
        return run->info->status;
    Qanat__RunInfo *info = qn_store_get_run (engine->store, run_id);
    Qanat__RunStatus status = info? info->status: QANAT__RUN_STATUS__RUN_QUEUED;
    qn_engine_free_message (info);
    return status;
}

//  One row: schedule index of the workflow, or its trigger (index -1)
static Qanat__ScheduleInfo *
s_row (qn_coordinator_t *engine, const char *name, s_entry_t *entry, int index, int64_t now)
{
    const qn_wf_schedule_t *sched = qn_workflow_schedule (entry->wf);
    Qanat__ScheduleInfo *row = (Qanat__ScheduleInfo *) zmalloc (sizeof (Qanat__ScheduleInfo));
    qanat__schedule_info__init (row);
    row->workflow = strdup (name);
    row->version = entry->version;
    row->max_active = sched->max_active;
    row->paused = qn_store_sched_paused (engine->store, name) == 1;
    row->trigger_after = (char **) calloc (sched->after_count + 1, sizeof (char *));
    for (size_t i = 0; index < 0 && i < sched->after_count; i++)
        row->trigger_after [row->n_trigger_after++] = strdup (sched->after [i]);
    row->trigger_on = (char **) calloc (7, sizeof (char *));
    for (unsigned s = 0; index < 0 && s < 6; s++)
        if (sched->on & (1u << s))
            row->trigger_on [row->n_trigger_on++] = strdup (qn_wf_schedule_status_name (s));
    if (index < 0) {
        row->cron = strdup ("");
        row->timezone = strdup ("");
        row->catchup = strdup ("");
        row->last_skipped = strdup ("");
        return row;
    }
    const qn_schedule_t *schedule = &sched->schedules [index];
    row->index = (uint32_t) index;
    row->cron = strdup (schedule->cron_text);
    row->timezone = strdup (schedule->timezone);
    row->catchup = strdup (s_catchup_names [schedule->catchup]);
    int64_t cursor = now, next = 0;
    if (qn_store_sched_cursor_get (engine->store, name, (uint32_t) index, &cursor) != 1
    ||  cursor > now)
        cursor = now;
    const qn_tz_t *tz = (size_t) index < entry->zone_count? entry->zones [index]: NULL;
    if (tz && qn_cron_next (&schedule->cron, tz, cursor, &next) == 0)
        row->next_tick_us = next * 1000000;
    qn_store_tick_t last;
    if (qn_store_sched_tick_last (engine->store, name, (uint32_t) index, &last) == 1) {
        row->last_tick_us = last.tick * 1000000;
        row->last_run = last.run_id;
        if (last.run_id)
            row->last_run_status = s_run_status (engine, last.run_id);
        row->last_skipped = strdup (last.reason);
    }
    else
        row->last_skipped = strdup ("");
    return row;
}

//  Every row of workflow (or of every workflow when it is "")
static void
s_reply_list (qn_api_call_t *call, uint64_t request_id, const char *workflow)
{
    qn_coordinator_t *engine = call->engine;
    s_refresh (engine);
    int64_t now = s_now (engine->scheduler);
    zhashx_t *workflows = engine->scheduler->workflows;
    zlistx_t *names = zhashx_keys (workflows);
    zlistx_set_comparator (names, (zlistx_comparator_fn *) strcmp);
    zlistx_sort (names);
    Qanat__ScheduleList list = QANAT__SCHEDULE_LIST__INIT;
    list.now_us = now * 1000000;
    for (const char *name = (const char *) zlistx_first (names); name;
         name = (const char *) zlistx_next (names)) {
        s_entry_t *entry = (s_entry_t *) zhashx_lookup (workflows, name);
        const qn_wf_schedule_t *sched = entry->wf? qn_workflow_schedule (entry->wf): NULL;
        if (!sched || (*workflow && !streq (workflow, name)))
            continue;
        for (size_t i = 0; i < sched->schedule_count; i++)
            qn_engine_append ((void ***) &list.schedules, &list.n_schedules,
                              s_row (engine, name, entry, (int) i, now));
        if (sched->after_count)
            qn_engine_append ((void ***) &list.schedules, &list.n_schedules,
                              s_row (engine, name, entry, -1, now));
    }
    zlistx_destroy (&names);
    Qanat__Reply reply = QANAT__REPLY__INIT;
    reply.id = request_id;
    reply.body_case = QANAT__REPLY__BODY_SCHEDULES;
    reply.schedules = &list;
    call->reply (call, &reply);
    for (size_t i = 0; i < list.n_schedules; i++)
        protobuf_c_message_free_unpacked ((ProtobufCMessage *) list.schedules [i], NULL);
    free (list.schedules);
}

void
qn_scheduler_handle_list (qn_api_call_t *call, Qanat__Request *request)
{
    const char *workflow = request->list_schedules->workflow;
    s_reply_list (call, request->id, workflow? workflow: "");
}

void
qn_scheduler_handle_pause (qn_api_call_t *call, Qanat__Request *request)
{
    qn_coordinator_t *engine = call->engine;
    Qanat__SchedulePause *pause = request->schedule_pause;
    const char *name = pause->workflow? pause->workflow: "";
    s_refresh (engine);
    s_entry_t *entry = *name? (s_entry_t *) zhashx_lookup (engine->scheduler->workflows, name)
                            : NULL;
    const qn_wf_schedule_t *sched = entry && entry->wf? qn_workflow_schedule (entry->wf): NULL;
    if (!sched || !sched->schedule_count) {
        char *message = zsys_sprintf (entry? "workflow %.200s has no schedule"
                                           : "no such workflow: %.200s", name);
        qn_api_error (call, request->id, entry? QANAT__ERROR_CODE__ERROR_BAD_REQUEST
                                              : QANAT__ERROR_CODE__ERROR_NOT_FOUND, message);
        zstr_free (&message);
        return;
    }
    if (qn_store_begin (engine->store)
    ||  qn_store_sched_set_paused (engine->store, name, pause->paused)) {
        qn_api_error (call, request->id, QANAT__ERROR_CODE__ERROR_UNAVAILABLE,
                      qn_store_error (engine->store));
        return;
    }
    qn_log (QN_LOG_INFO, "scheduler", "%s's schedules %s by %s", name,
            pause->paused? "paused": "resumed", qn_api_caller (call));
    s_reply_list (call, request->id, name);
}
