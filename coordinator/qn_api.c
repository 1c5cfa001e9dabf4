/*  qn_api - the client request layer.  See qn_api.h.

    Every request kind is one row of s_table: its body case, the role it
    needs and its handler.  qn_api_handle checks the role and calls the
    handler; a handler reads the engine (call->engine) and answers through
    call->reply, never through a socket.

    One of the files of the qn_coordinator class: it shares the engine's
    records (qn_engine.h), so the include checker counts it with
    qn_coordinator.
*/
#include "qn_engine.h"
#include "qn_log.h"
#include "qn_agent_link.h"
#include "qn_fleet.h"
#include "qn_run.h"
#include "qn_dispatch.h"
#include "qn_share.h"
#include "qn_api.h"
#include <sodium.h>
#include "qn_api_views.h"
#include "qn_api_admin.h"
#include "qn_api_backup.h"
#include "qn_scheduler.h"
#include "qn_notify.h"

#define LOG_PAGE_DEFAULT     500
#define LOG_PAGE_MAX         1000
#define LIST_RUNS_MAX        10000
#define HISTORY_RUNS_MAX     1000

//  What kind of failure an error reply is (Error.code), for transports
//  that map it (HTTP status codes); the message is what people read.
#define ERR_BAD              QANAT__ERROR_CODE__ERROR_BAD_REQUEST
#define ERR_NOT_FOUND        QANAT__ERROR_CODE__ERROR_NOT_FOUND
#define ERR_DENIED           QANAT__ERROR_CODE__ERROR_DENIED
#define ERR_CONFLICT         QANAT__ERROR_CODE__ERROR_CONFLICT
#define ERR_UNAVAILABLE      QANAT__ERROR_CODE__ERROR_UNAVAILABLE

//  ---------------------------------------------------------------------
//  The caller and the reply

//  Without CURVE (--insecure) the caller has no principal: a local
//  administrator.
static bool
s_is_admin (qn_api_call_t *call)
{
    return !call->principal || streq (call->principal->role, "admin");
}

static const char *
s_sender_name (qn_api_call_t *call)
{
    return call->principal? call->principal->name: "local";
}

static void
s_reply (qn_api_call_t *call, Qanat__Reply *reply)
{
    call->reply (call, reply);
}

static void
s_error (qn_api_call_t *call, uint64_t request_id, Qanat__ErrorCode code, const char *message)
{
    Qanat__Error error = QANAT__ERROR__INIT;
    error.message = (char *) message;
    error.code = code;
    Qanat__Reply reply = QANAT__REPLY__INIT;
    reply.id = request_id;
    reply.body_case = QANAT__REPLY__BODY_ERROR;
    reply.error = &error;
    s_reply (call, &reply);
}

void
qn_api_error (qn_api_call_t *call, uint64_t request_id, Qanat__ErrorCode code,
              const char *message)
{
    s_error (call, request_id, code, message);
}

const char *
qn_api_caller (qn_api_call_t *call)
{
    return s_sender_name (call);
}

//  ---------------------------------------------------------------------
//  The handlers

static qn_workflow_t *
s_parse_submitted (Qanat__SubmitWorkflow *submit, char **error_p)
{
    if (!submit) {
        *error_p = strdup ("no workflow given");
        return NULL;
    }
    const char *filename = submit->filename && *submit->filename? submit->filename: "workflow";
    return qn_workflow_parse (filename, (const char *) submit->source.data, submit->source.len,
                              error_p);
}

//  The record of a workflow's code ("dir:<sha256>", whole here), or NULL
//  with *error_p
static Qanat__OutputRecord *
s_code_record (qn_coordinator_t *self, const char *code, char **error_p)
{
    if (strncmp (code, "dir:", 4) != 0) {
        *error_p = zsys_sprintf ("the workflow's code must be a directory (dir:<sha256>), "
                                 "not '%.80s'", code);
        return NULL;
    }
    return qn_artifacts_param_blob (self->artifacts, QN_ARTIFACTS_CODE, code, error_p);
}

//  Stores source as a version (with its code, which a new version keeps
//  referenced for as long as it exists); the store's transaction is open
static int
s_put_version (qn_coordinator_t *self, const char *name, Qanat__SubmitWorkflow *source,
               Qanat__OutputRecord *code, uint32_t *version_p, bool *created_p)
{
    char *ref = code? zsys_sprintf ("dir:%s", code->hash): NULL;
    int rc = qn_store_put_workflow_code (self->store, name, source->filename,
                                         source->source.data, source->source.len, ref,
                                         version_p, created_p);
    if (rc == 0 && *created_p)
        qn_scheduler_versions_changed (self->scheduler);
    if (rc == 0 && code && *created_p)
        rc = qn_artifacts_ref_outputs (self->artifacts, &code, 1, 1);
    zstr_free (&ref);
    return rc;
}

static void
s_handle_submit (qn_api_call_t *call, Qanat__Request *request)
{
    qn_coordinator_t *self = call->engine;
    char *error = NULL;
    qn_workflow_t *wf = s_parse_submitted (request->submit, &error);
    if (wf && qn_scheduler_check_cycle (self, wf, &error))
        qn_workflow_destroy (&wf);
    if (!wf) {
        s_error (call, request->id, ERR_BAD, error);
        free (error);
        return;
    }
    Qanat__WorkflowVersion version = QANAT__WORKFLOW_VERSION__INIT;
    version.name = (char *) qn_workflow_name (wf);
    uint32_t number = 0;
    bool created = false;
    const char *code_ref = request->submit->code;
    Qanat__OutputRecord *code = NULL;
    if (code_ref && *code_ref && !(code = s_code_record (self, code_ref, &error))) {
        s_error (call, request->id, ERR_BAD, error);
        free (error);
    }
    else
    if (qn_store_begin (self->store)
    ||  s_put_version (self, version.name, request->submit, code, &number, &created))
        s_error (call, request->id, ERR_UNAVAILABLE, qn_store_error (self->store));
    else {
        version.version = number;
        version.created = created;
        version.code = (char *) (code_ref? code_ref: "");
        Qanat__Reply reply = QANAT__REPLY__INIT;
        reply.id = request->id;
        reply.body_case = QANAT__REPLY__BODY_WORKFLOW;
        reply.workflow = &version;
        s_reply (call, &reply);
    }
    if (code)
        protobuf_c_message_free_unpacked ((ProtobufCMessage *) code, NULL);
    qn_workflow_destroy (&wf);
}

//  The error for a workflow name or version not stored (a hostile name is
//  cut short)
static char *
s_no_such_workflow (const char *name, uint32_t version)
{
    return version? zsys_sprintf ("no such workflow: %.200s version %u", name, version)
                  : zsys_sprintf ("no such workflow: %.200s", name);
}

//  What a StartRun runs: the file it carries (*stored_p 0), or a version
//  stored before, by name (*stored_p its number; the caller frees the
//  source).  NULL with *error_p when it names neither, both, or a version
//  that is not there.
static Qanat__SubmitWorkflow *
s_start_source (qn_coordinator_t *self, Qanat__StartRun *start, uint32_t *stored_p,
                char **error_p)
{
    *stored_p = 0;
    bool by_name = start->workflow_name && *start->workflow_name;
    if (!start->workflow && !by_name) {
        *error_p = strdup ("start run: no workflow given");
        return NULL;
    }
    if (start->workflow && by_name) {
        *error_p = strdup ("start run: give a workflow file or a stored workflow's name, "
                           "not both");
        return NULL;
    }
    if (!by_name)
        return start->workflow;
    uint32_t version = start->workflow_version;
    if (version == 0 && qn_store_workflow_latest (self->store, start->workflow_name, &version))
        version = 0;
    Qanat__SubmitWorkflow *source = version? qn_store_get_workflow (self->store,
                                                                    start->workflow_name,
                                                                    version): NULL;
    if (!source) {
        *error_p = s_no_such_workflow (start->workflow_name, start->workflow_version);
        return NULL;
    }
    *stored_p = version;
    return source;
}

//  Starts a run of source; version is its stored number, or 0 to store it.
static void
s_start_run (qn_api_call_t *call, Qanat__Request *request, Qanat__SubmitWorkflow *source,
             uint32_t version)
{
    qn_coordinator_t *self = call->engine;
    Qanat__StartRun *start = request->start_run;
    char *error = NULL;
    qn_workflow_t *wf = s_parse_submitted (source, &error);
    if (wf && !version && qn_scheduler_check_cycle (self, wf, &error))
        qn_workflow_destroy (&wf);
    bool denied = false;
    if (wf && (error = qn_dispatch_run_secrets_refusal (self, wf, call->principal))) {
        denied = true;
        self->stats.denied++;
        qn_log (QN_LOG_WARNING, "api", "%s (user %s)", error, s_sender_name (call));
        qn_workflow_destroy (&wf);
    }
    if (!wf) {
        s_error (call, request->id, denied? ERR_DENIED: ERR_BAD, error);
        free (error);
        return;
    }
    qn_kv_t *overrides = (qn_kv_t *) calloc (start->n_params + 1, sizeof (qn_kv_t));
    for (size_t p = 0; p < start->n_params; p++) {
        overrides [p].key = start->params [p]->name;
        overrides [p].value = start->params [p]->value;
    }
    qn_kv_t *params = qn_workflow_resolve_params (wf, overrides, start->n_params, &error);
    free (overrides);
    if (!params) {
        s_error (call, request->id, ERR_BAD, error);
        free (error);
        qn_workflow_destroy (&wf);
        return;
    }
    size_t param_count = qn_workflow_param_count (wf);
    bool created = false;
    uint64_t run_id = 0;
    //  The workflow's code, put first like an artifact parameter's
    //  directory: the one given, else (by name) the stored version's
    const char *code_ref = start->code && *start->code? start->code
                         : version && source->code? source->code: "";
    Qanat__OutputRecord *code = NULL;
    if (*code_ref && !(code = s_code_record (self, code_ref, &error))) {
        s_error (call, request->id, ERR_BAD, error);
        free (error);
        qn_kv_free (params, param_count);
        qn_workflow_destroy (&wf);
        return;
    }
    if (qn_store_begin (self->store)
    ||  (!version && s_put_version (self, qn_workflow_name (wf), source, code,
                                    &version, &created))
    ||  qn_store_new_run_id (self->store, &run_id)) {
        s_error (call, request->id, ERR_UNAVAILABLE, qn_store_error (self->store));
        if (code)
            protobuf_c_message_free_unpacked ((ProtobufCMessage *) code, NULL);
        qn_kv_free (params, param_count);
        qn_workflow_destroy (&wf);
        return;
    }
    //  Artifact parameters name blobs fed in with qanat put: each must be
    //  whole here, and the run references it while it exists
    Qanat__OutputRecord **artifacts = NULL;
    size_t artifact_count = 0;
    for (size_t p = 0; p < param_count && !error; p++) {
        const qn_param_t *param = qn_workflow_param (wf, p);
        if (param->type != QN_PARAM_ARTIFACT)
            continue;
        Qanat__OutputRecord *record = qn_artifacts_param_blob (self->artifacts, params [p].key,
                                                               params [p].value, &error);
        if (record)
            qn_engine_append ((void ***) &artifacts, &artifact_count, record);
    }
    if (code) {
        if (error)
            protobuf_c_message_free_unpacked ((ProtobufCMessage *) code, NULL);
        else
            qn_engine_append ((void ***) &artifacts, &artifact_count, code);
    }
    run_t *run = error? NULL: qn_run_new (self, run_id, wf, version, source->filename,
                                          params, param_count);
    qn_kv_free (params, param_count);
    //  A rerun takes what succeeded before (a run anyone may read: GetRun)
    if (run && start->reuse_from_run
    &&  qn_run_reuse (self, run, start->reuse_from_run, &error) != 0) {
        run->wf = NULL;                 //  still ours, freed below
        qn_run_destroy (&run);
    }
    if (run) {
        qn_engine_replace_string (&run->info->owner, strdup (s_sender_name (call)));
        run->info->no_cache = start->no_cache;
        if (code)
            qn_engine_replace_string (&run->info->code, strdup (code->hash));
        run->info->artifacts = artifacts;
        run->info->n_artifacts = artifact_count;
        qn_artifacts_ref_outputs (self->artifacts, artifacts, artifact_count, 1);
    }
    if (!run) {
        for (size_t a = 0; a < artifact_count; a++)
            protobuf_c_message_free_unpacked ((ProtobufCMessage *) artifacts [a], NULL);
        free (artifacts);
        s_error (call, request->id, !error? ERR_UNAVAILABLE
                                  : strncmp (error, "no run ", 7) == 0? ERR_NOT_FOUND: ERR_BAD,
                 error? error: "out of memory");
        free (error);
        qn_workflow_destroy (&wf);
        return;
    }
    char key [QN_RUN_KEY_SIZE];
    zhashx_insert (self->runs, qn_run_key (run_id, key), run);
    qn_run_advance (self, run);
    qn_dispatch (self);
    qn_run_persist (self, run);
    qn_log (QN_LOG_INFO, "api", "run %llu of %s v%u started", (unsigned long long) run_id,
            run->info->workflow, version);

    Qanat__Reply reply = QANAT__REPLY__INIT;
    reply.id = request->id;
    reply.body_case = QANAT__REPLY__BODY_RUN;
    reply.run = run->info;
    s_reply (call, &reply);
}

//  Starts a run of the file given (stored as a new version when its text
//  changed) or of a stored version, with the same checks either way.
static void
s_handle_start_run (qn_api_call_t *call, Qanat__Request *request)
{
    qn_coordinator_t *self = call->engine;
    Qanat__StartRun *start = request->start_run;
    char *error = NULL;
    uint32_t version = 0;
    Qanat__SubmitWorkflow *source = s_start_source (self, start, &version, &error);
    if (!source) {
        s_error (call, request->id, strncmp (error, "no such", 7) == 0? ERR_NOT_FOUND: ERR_BAD,
                 error);
        free (error);
        return;
    }
    s_start_run (call, request, source, version);
    if (source != start->workflow)
        qn_engine_free_message (source);
}

//  The run as clients see it: from memory while active, else the store.
//  Sets *owned when the caller must free the result.
static Qanat__RunInfo *
s_lookup_run (qn_coordinator_t *self, uint64_t run_id, bool with_tasks, bool *owned)
{
    run_t *run = qn_run_find (self, run_id);
    if (run) {
        *owned = false;
        return run->info;
    }
    Qanat__RunInfo *info = qn_store_get_run (self->store, run_id);
    if (info && with_tasks) {
        Qanat__TaskInfo **tasks = NULL;
        size_t count = 0;
        if (qn_store_get_tasks (self->store, run_id, &tasks, &count) == 0) {
            info->tasks = tasks;
            info->n_tasks = count;
        }
    }
    *owned = true;
    return info;
}

static void
s_handle_get_run (qn_api_call_t *call, Qanat__Request *request)
{
    qn_coordinator_t *self = call->engine;
    bool owned = false;
    run_t *active = qn_run_find (self, request->get_run->run_id);
    if (active)
        qn_dispatch_explain_waiting (self, active);
    Qanat__RunInfo *info = s_lookup_run (self, request->get_run->run_id, true, &owned);
    if (info && owned)
        qn_api_views_param_types (self, &info, 1);
    if (!info) {
        char *message = zsys_sprintf ("no run %llu", (unsigned long long) request->get_run->run_id);
        s_error (call, request->id, ERR_NOT_FOUND, message);
        free (message);
        return;
    }
    Qanat__Reply reply = QANAT__REPLY__INIT;
    reply.id = request->id;
    reply.body_case = QANAT__REPLY__BODY_RUN;
    reply.run = info;
    s_reply (call, &reply);
    if (owned)
        qn_engine_free_message (info);
}

//  A workflow stored under this name (every run stores its version)
static bool
s_workflow_known (qn_coordinator_t *self, const char *name)
{
    uint32_t latest = 0;
    return qn_store_workflow_latest (self->store, name, &latest) == 0 && latest > 0;
}

//  Newest first, filtered, from the cursor; the store bounds the work of
//  one request (qn_store_find_runs) and says where to go on.
static void
s_handle_list_runs (qn_api_call_t *call, Qanat__Request *request)
{
    qn_coordinator_t *self = call->engine;
    Qanat__ListRuns *listing = request->list_runs;
    if (listing->has_status && (listing->status < QANAT__RUN_STATUS__RUN_QUEUED
                            ||  listing->status > QANAT__RUN_STATUS__RUN_CANCELED)) {
        s_error (call, request->id, ERR_BAD, "list runs: unknown status");
        return;
    }
    qn_store_run_filter_t filter = { 0 };
    filter.workflow = listing->workflow;
    filter.owner = listing->owner;
    filter.has_status = listing->has_status;
    filter.status = listing->status;
    filter.created_after_us = listing->created_after_us;
    filter.created_before_us = listing->created_before_us;
    filter.before_run_id = listing->before_run_id;
    filter.limit = listing->limit > LIST_RUNS_MAX? LIST_RUNS_MAX: listing->limit;
    Qanat__RunList *list = qn_store_find_runs (self->store, &filter);
    if (!list) {
        s_error (call, request->id, ERR_UNAVAILABLE, qn_store_error (self->store));
        return;
    }
    //  No runs of a workflow never stored is a name mistyped, not an
    //  empty history
    if (list->n_runs == 0 && filter.workflow && *filter.workflow
    &&  !s_workflow_known (self, filter.workflow)) {
        char *message = s_no_such_workflow (filter.workflow, 0);
        s_error (call, request->id, ERR_NOT_FOUND, message);
        free (message);
        qn_engine_free_message (list);
        return;
    }
    qn_api_views_param_types (self, list->runs, list->n_runs);
    Qanat__Reply reply = QANAT__REPLY__INIT;
    reply.id = request->id;
    reply.body_case = QANAT__REPLY__BODY_RUNS;
    reply.runs = list;
    s_reply (call, &reply);
    qn_engine_free_message (list);
}

//  Why a run has no logs of this task or attempt (malloc'd), or NULL.
//  Tasks are fixed when the run starts; attempts come while it runs, so
//  an attempt is missing only once the run has ended.
static char *
s_no_such_log (const Qanat__RunInfo *info, const char *task, uint32_t attempt, bool finished)
{
    unsigned long long run_id = (unsigned long long) info->run_id;
    bool task_seen = !task || !*task;
    bool attempt_seen = !attempt || !finished;
    for (size_t t = 0; t < info->n_tasks; t++) {
        const Qanat__TaskInfo *each = info->tasks [t];
        if (task && *task && !streq (each->name, task))
            continue;
        task_seen = true;
        for (size_t a = 0; a < each->n_attempts; a++)
            if (each->attempts [a]->attempt == attempt)
                attempt_seen = true;
    }
    if (!task_seen)
        return zsys_sprintf ("run %llu has no task %.200s", run_id, task);
    if (!attempt_seen)
        return task && *task
            ? zsys_sprintf ("task %.200s of run %llu has no attempt %u", task, run_id, attempt)
            : zsys_sprintf ("run %llu has no attempt %u", run_id, attempt);
    return NULL;
}

static void
s_handle_read_logs (qn_api_call_t *call, Qanat__Request *request)
{
    qn_coordinator_t *self = call->engine;
    Qanat__ReadLogs *read = request->read_logs;
    bool owned = false;
    bool named = (read->task && *read->task) || read->attempt;
    Qanat__RunInfo *info = s_lookup_run (self, read->run_id, named, &owned);
    bool finished = info && info->status != QANAT__RUN_STATUS__RUN_QUEUED
                         && info->status != QANAT__RUN_STATUS__RUN_RUNNING;
    char *missing = info? (named? s_no_such_log (info, read->task, read->attempt, finished): NULL)
                        : zsys_sprintf ("no run %llu", (unsigned long long) read->run_id);
    if (info && owned)
        qn_engine_free_message (info);
    if (missing) {
        s_error (call, request->id, ERR_NOT_FOUND, missing);
        free (missing);
        return;
    }
    uint64_t after = 0;
    if (read->cursor.len == 8)
        for (size_t i = 0; i < 8; i++)
            after = (after << 8) | read->cursor.data [i];
    if (read->after_seq)
        after = read->after_seq;        //  a line's log_seq, e.g. an SSE stream's last event
    //  At most 1,000 chunks of at most 8 KiB: a page always fits a message.
    uint32_t limit = read->limit && read->limit <= LOG_PAGE_MAX? read->limit: LOG_PAGE_DEFAULT;
    Qanat__LogLine **lines = NULL;
    size_t count = 0;
    uint64_t last = after;
    if (qn_store_read_logs (self->store, read->run_id, after, read->task, read->attempt, limit,
                            &lines, &count, &last)) {
        s_error (call, request->id, ERR_UNAVAILABLE, qn_store_error (self->store));
        return;
    }
    uint8_t cursor [8];
    for (size_t i = 0; i < 8; i++)
        cursor [i] = (uint8_t) (last >> (56 - 8 * i));
    Qanat__LogPage page = QANAT__LOG_PAGE__INIT;
    page.lines = lines;
    page.n_lines = count;
    page.cursor.data = cursor;
    page.cursor.len = 8;
    //  The run had ended before we read, so a short page is the very end.
    page.run_finished = finished && count < limit;
    Qanat__Reply reply = QANAT__REPLY__INIT;
    reply.id = request->id;
    reply.body_case = QANAT__REPLY__BODY_LOGS;
    reply.logs = &page;
    s_reply (call, &reply);
    qn_store_free_array (lines, count);
}

//  The series of run_id, task and name, made if new.  A run's series
//  follow each other from first on, so only those are searched.
static Qanat__MetricSeries *
s_series_find (Qanat__MetricReport *report, size_t first, uint64_t run_id, const char *task,
               const char *name)
{
    for (size_t i = first; i < report->n_series; i++) {
        Qanat__MetricSeries *series = report->series [i];
        if (series->run_id == run_id && streq (series->task, task) && streq (series->name, name))
            return series;
    }
    Qanat__MetricSeries *series = (Qanat__MetricSeries *) malloc (sizeof (Qanat__MetricSeries));
    qanat__metric_series__init (series);
    series->run_id = run_id;
    series->task = qn_engine_strdup (task);
    series->name = qn_engine_strdup (name);
    qn_engine_append ((void ***) &report->series, &report->n_series, series);
    return series;
}

static Qanat__MetricPoint *
s_point_copy (const Qanat__MetricPoint *point)
{
    Qanat__MetricPoint *copy = (Qanat__MetricPoint *) malloc (sizeof (Qanat__MetricPoint));
    *copy = *point;
    copy->name = qn_engine_strdup (point->name);
    return copy;
}

//  One run: every series.  A workflow: for each of its runs (newest
//  first), the last value of each metric - the history across runs - or
//  with all_points every point of each.
static void
s_handle_read_metrics (qn_api_call_t *call, Qanat__Request *request)
{
    qn_coordinator_t *self = call->engine;
    Qanat__ReadMetrics *read = request->read_metrics;
    Qanat__MetricReport *report = (Qanat__MetricReport *) malloc (sizeof (Qanat__MetricReport));
    qanat__metric_report__init (report);
    uint64_t *run_ids = NULL;
    size_t run_count = 0;
    bool history = read->run_id == 0;
    bool last_only = history && !read->all_points;
    bool named_final = history;         //  no series of a metric named: not found
    if (history) {
        if (!read->workflow || !*read->workflow) {
            s_error (call, request->id, ERR_BAD, "read metrics: give a run or a workflow");
            qn_engine_free_message (report);
            return;
        }
        Qanat__RunList *list = qn_store_list_runs (self->store, read->workflow, HISTORY_RUNS_MAX);
        if ((!list || list->n_runs == 0) && !s_workflow_known (self, read->workflow)) {
            char *message = s_no_such_workflow (read->workflow, 0);
            s_error (call, request->id, ERR_NOT_FOUND, message);
            free (message);
            qn_engine_free_message (list);
            qn_engine_free_message (report);
            return;
        }
        if (list) {
            run_ids = (uint64_t *) calloc (list->n_runs + 1, sizeof (uint64_t));
            for (size_t i = list->n_runs; i-- > 0; )
                run_ids [run_count++] = list->runs [i]->run_id;     //  oldest first
            qn_engine_free_message (list);
        }
    }
    else {
        bool owned = false;
        Qanat__RunInfo *info = s_lookup_run (self, read->run_id, false, &owned);
        if (!info) {
            char *message = zsys_sprintf ("no run %llu", (unsigned long long) read->run_id);
            s_error (call, request->id, ERR_NOT_FOUND, message);
            free (message);
            qn_engine_free_message (report);
            return;
        }
        //  A running run may report the metric later
        named_final = info->status != QANAT__RUN_STATUS__RUN_QUEUED
                   && info->status != QANAT__RUN_STATUS__RUN_RUNNING;
        if (owned)
            qn_engine_free_message (info);
        run_ids = (uint64_t *) calloc (1, sizeof (uint64_t));
        run_ids [run_count++] = read->run_id;
    }
    for (size_t r = 0; r < run_count; r++) {
        Qanat__MetricRecord **records = NULL;
        size_t count = 0;
        if (qn_store_read_metrics (self->store, run_ids [r], read->name, &records, &count))
            continue;
        size_t first = report->n_series;
        for (size_t i = 0; i < count; i++) {
            if (!records [i]->point)
                continue;
            Qanat__MetricSeries *series = s_series_find (report, first, run_ids [r],
                                                         records [i]->task,
                                                         records [i]->point->name);
            if (last_only && series->n_points) {
                //  Keep only the last value per run.
                qn_engine_free_message (series->points [0]);
                series->points [0] = s_point_copy (records [i]->point);
            }
            else
                qn_engine_append ((void ***) &series->points, &series->n_points,
                                  s_point_copy (records [i]->point));
        }
        qn_store_free_array (records, count);
    }
    free (run_ids);
    if (named_final && read->name && *read->name && report->n_series == 0) {
        char *message = history
            ? zsys_sprintf ("workflow %.200s has no metric %.200s", read->workflow, read->name)
            : zsys_sprintf ("run %llu has no metric %.200s", (unsigned long long) read->run_id,
                            read->name);
        s_error (call, request->id, ERR_NOT_FOUND, message);
        free (message);
        qn_engine_free_message (report);
        return;
    }
    Qanat__Reply reply = QANAT__REPLY__INIT;
    reply.id = request->id;
    reply.body_case = QANAT__REPLY__BODY_METRICS;
    reply.metrics = report;
    s_reply (call, &reply);
    qn_engine_free_message (report);
}

//  Every stored workflow: name, newest version, when it was stored, runs.
static void
s_handle_list_workflows (qn_api_call_t *call, Qanat__Request *request)
{
    qn_coordinator_t *self = call->engine;
    Qanat__WorkflowList list = QANAT__WORKFLOW_LIST__INIT;
    if (qn_store_list_workflows (self->store, &list.workflows, &list.n_workflows)) {
        s_error (call, request->id, ERR_UNAVAILABLE, qn_store_error (self->store));
        return;
    }
    Qanat__Reply reply = QANAT__REPLY__INIT;
    reply.id = request->id;
    reply.body_case = QANAT__REPLY__BODY_WORKFLOWS;
    reply.workflows = &list;
    s_reply (call, &reply);
    qn_store_free_array (list.workflows, list.n_workflows);
}

//  One stored version's text (0: the newest).
static void
s_handle_get_workflow (qn_api_call_t *call, Qanat__Request *request)
{
    qn_coordinator_t *self = call->engine;
    Qanat__GetWorkflow *get = request->get_workflow;
    const char *name = get->name? get->name: "";
    uint32_t latest = 0;
    uint32_t version = get->version;
    Qanat__SubmitWorkflow *stored = NULL;
    if (*name && qn_store_workflow_latest (self->store, name, &latest) == 0 && latest
    &&  version <= latest)
        stored = qn_store_get_workflow (self->store, name, version? version: latest);
    if (!stored) {
        char *message = s_no_such_workflow (name, version);
        s_error (call, request->id, ERR_NOT_FOUND, message);
        free (message);
        return;
    }
    Qanat__WorkflowSource source = QANAT__WORKFLOW_SOURCE__INIT;
    source.name = (char *) name;
    source.version = version? version: latest;
    source.filename = stored->filename;
    source.source = stored->source;
    source.created_us = stored->created_us;
    source.latest = latest;
    source.code = stored->code;
    Qanat__Reply reply = QANAT__REPLY__INIT;
    reply.id = request->id;
    reply.body_case = QANAT__REPLY__BODY_WORKFLOW_SOURCE;
    reply.workflow_source = &source;
    s_reply (call, &reply);
    qn_engine_free_message (stored);
}

static void
s_handle_list_agents (qn_api_call_t *call, Qanat__Request *request)
{
    qn_coordinator_t *self = call->engine;
    Qanat__AgentList list = QANAT__AGENT_LIST__INIT;
    size_t count = zhashx_size (self->agents);
    list.agents = (Qanat__AgentInfo **) calloc (count + 1, sizeof (Qanat__AgentInfo *));
    int64_t now = zclock_mono ();
    for (agent_t *agent = (agent_t *) zhashx_first (self->agents); agent;
         agent = (agent_t *) zhashx_next (self->agents)) {
        qn_fleet_update_state (agent, now);
        list.agents [list.n_agents++] = agent->info;
    }
    Qanat__Reply reply = QANAT__REPLY__INIT;
    reply.id = request->id;
    reply.body_case = QANAT__REPLY__BODY_AGENTS;
    reply.agents = &list;
    s_reply (call, &reply);
    free (list.agents);
}

static void
s_handle_cancel_run (qn_api_call_t *call, Qanat__Request *request)
{
    qn_coordinator_t *self = call->engine;
    uint64_t run_id = request->cancel_run->run_id;
    const char *task_name = request->cancel_run->task;
    run_t *run = qn_run_find (self, run_id);
    if (!run) {
        bool owned;
        Qanat__RunInfo *info = s_lookup_run (self, run_id, false, &owned);
        bool ended = info != NULL;
        char *message = info? zsys_sprintf ("run %llu has already ended (%s)",
                                            (unsigned long long) run_id,
                                            qn_run_status_name (info->status))
                            : zsys_sprintf ("no run %llu", (unsigned long long) run_id);
        if (info && owned)
            qn_engine_free_message (info);
        s_error (call, request->id, ended? ERR_CONFLICT: ERR_NOT_FOUND, message);
        free (message);
        return;
    }
    if (!s_is_admin (call) && !streq (run->info->owner, s_sender_name (call))) {
        self->stats.denied++;
        char *message = zsys_sprintf ("permission denied: run %llu belongs to %s",
                                      (unsigned long long) run_id, run->info->owner);
        s_error (call, request->id, ERR_DENIED, message);
        free (message);
        return;
    }
    if (task_name && *task_name) {
        int index = qn_workflow_task_index (run->wf, task_name);
        char *message = NULL;
        if (index < 0)
            message = zsys_sprintf ("run %llu has no task '%s'", (unsigned long long) run_id, task_name);
        else
        if (qn_dag_finished_task (run->dag, (size_t) index))
            message = zsys_sprintf ("task %s has already ended (%s)", task_name,
                                    qn_task_status_name (run->info->tasks [index]->status));
        if (message) {
            s_error (call, request->id, index < 0? ERR_NOT_FOUND: ERR_CONFLICT, message);
            free (message);
            return;
        }
        qn_run_cancel_task (self, run, (size_t) index, "task canceled");
        qn_log (QN_LOG_INFO, "api", "run %llu task %s canceled", (unsigned long long) run_id,
                task_name);
    }
    else {
        run->info->cancel_requested = true;
        qn_run_mark (run);
        for (size_t t = 0; t < run->info->n_tasks; t++)
            if (!qn_dag_finished_task (run->dag, t))
                qn_run_cancel_task (self, run, t, "run canceled");
        qn_log (QN_LOG_INFO, "api", "run %llu canceled", (unsigned long long) run_id);
    }
    qn_run_advance (self, run);
    Qanat__Reply reply = QANAT__REPLY__INIT;
    reply.id = request->id;
    reply.body_case = QANAT__REPLY__BODY_RUN;
    reply.run = run->info;
    s_reply (call, &reply);
}

//  A reply naming one agent (none when agent is NULL).
static void
s_post_agent_reply (qn_api_call_t *call, uint64_t request_id, agent_t *agent)
{
    Qanat__AgentList list = QANAT__AGENT_LIST__INIT;
    Qanat__AgentInfo *one [1] = { agent? agent->info: NULL };
    list.agents = one;
    list.n_agents = agent? 1: 0;
    Qanat__Reply reply = QANAT__REPLY__INIT;
    reply.id = request_id;
    reply.body_case = QANAT__REPLY__BODY_AGENTS;
    reply.agents = &list;
    s_reply (call, &reply);
}

//  `qanat agent drain NAME`: the agent finishes what it runs and gets
//  nothing new until undrained.
static void
s_handle_drain_agent (qn_api_call_t *call, Qanat__Request *request)
{
    qn_coordinator_t *self = call->engine;
    agent_t *agent = (agent_t *) zhashx_lookup (self->agents, request->drain_agent->name);
    if (!agent) {
        char *message = zsys_sprintf ("no agent named '%s'", request->drain_agent->name);
        s_error (call, request->id, ERR_NOT_FOUND, message);
        free (message);
        return;
    }
    agent->drained_by_admin = request->drain_agent->drain;
    qn_fleet_update_state (agent, zclock_mono ());
    qn_fleet_persist (self, agent);
    qn_log (QN_LOG_INFO, "api", "agent %s %s by request", agent->name,
            agent->drained_by_admin? "drained": "undrained");
    s_post_agent_reply (call, request->id, agent);
}

static void
s_handle_create_token (qn_api_call_t *call, Qanat__Request *request)
{
    qn_coordinator_t *self = call->engine;
    if (!self->keyring) {
        s_error (call, request->id, ERR_BAD,
                      "join tokens need CURVE: this coordinator runs --insecure");
        return;
    }
    Qanat__CreateToken *create = request->create_token;
    int64_t expires = 0;
    char *id = NULL;
    char *text = qn_keyring_create_token (self->keyring, create->ttl_s, create->uses,
                                          create->labels, create->n_labels, &expires, &id);
    if (!text) {
        s_error (call, request->id, ERR_UNAVAILABLE, "cannot create a join token");
        return;
    }
    qn_log (QN_LOG_INFO, "api", "join token %s created by %s", id, s_sender_name (call));
    Qanat__JoinToken token = QANAT__JOIN_TOKEN__INIT;
    token.token = text;
    token.id = id;
    token.expires_us = expires;
    token.uses = create->uses? create->uses: 1;
    Qanat__Reply reply = QANAT__REPLY__INIT;
    reply.id = request->id;
    reply.body_case = QANAT__REPLY__BODY_TOKEN;
    reply.token = &token;
    s_reply (call, &reply);
    free (text);
    free (id);
}

static void
s_handle_add_user (qn_api_call_t *call, Qanat__Request *request)
{
    qn_coordinator_t *self = call->engine;
    if (!self->keyring) {
        s_error (call, request->id, ERR_BAD, "users need CURVE: this coordinator runs --insecure");
        return;
    }
    char *error = NULL;
    bool exists = qn_keyring_user (self->keyring, request->add_user->name) != NULL;
    char *key_file = qn_keyring_add_user (self->keyring, request->add_user->name,
                                          request->add_user->role, &error);
    if (!key_file) {
        s_error (call, request->id, exists? ERR_CONFLICT: ERR_BAD, error);
        free (error);
        return;
    }
    qn_log (QN_LOG_INFO, "api", "user %s (%s) added by %s", request->add_user->name,
            request->add_user->role, s_sender_name (call));
    Qanat__UserKey key = QANAT__USER_KEY__INIT;
    key.name = request->add_user->name;
    key.role = request->add_user->role;
    key.key_file = key_file;
    Qanat__Reply reply = QANAT__REPLY__INIT;
    reply.id = request->id;
    reply.body_case = QANAT__REPLY__BODY_USER_KEY;
    reply.user_key = &key;
    s_reply (call, &reply);
    free (key_file);
}

//  Who the caller is: kind, name and role, nothing else of its record
//  (no key, no hash).
static void
s_handle_whoami (qn_api_call_t *call, Qanat__Request *request)
{
    Qanat__Principal principal = QANAT__PRINCIPAL__INIT;
    principal.kind = call->principal? call->principal->kind: "local";
    principal.name = call->principal? call->principal->name: "admin";
    principal.role = call->principal? call->principal->role: "admin";
    principal.expires_us = call->principal? call->principal->expires_us: 0;
    Qanat__Reply reply = QANAT__REPLY__INIT;
    reply.id = request->id;
    reply.body_case = QANAT__REPLY__BODY_WHOAMI;
    reply.whoami = &principal;
    s_reply (call, &reply);
}

static void
s_post_api_token (qn_api_call_t *call, uint64_t request_id, const Qanat__ApiToken *record,
                  char *text)
{
    Qanat__ApiToken token = *record;
    token.token = text? text: "";
    Qanat__Reply reply = QANAT__REPLY__INIT;
    reply.id = request_id;
    reply.body_case = QANAT__REPLY__BODY_API_TOKEN;
    reply.api_token = &token;
    s_reply (call, &reply);
}

static bool
s_api_tokens_refused (qn_api_call_t *call, uint64_t request_id)
{
    if (call->engine->keyring)
        return false;
    s_error (call, request_id, ERR_BAD,
             "API tokens need a keyring: this coordinator runs --insecure");
    return true;
}

//  The token text is in this reply only: the store keeps its hash.
static void
s_handle_create_api_token (qn_api_call_t *call, Qanat__Request *request)
{
    if (s_api_tokens_refused (call, request->id))
        return;
    Qanat__CreateApiToken *create = request->create_api_token;
    const Qanat__ApiToken *record = NULL;
    qn_keyring_failure_t failure;
    char *error = NULL;
    char *text = qn_keyring_create_api_token (call->engine->keyring, create->name, create->role,
                                              create->user, create->ttl_s, &record, &failure,
                                              &error);
    if (!text) {
        s_error (call, request->id, failure == QN_KEYRING_EXISTS? ERR_CONFLICT
                                  : failure == QN_KEYRING_STORE? ERR_UNAVAILABLE: ERR_BAD, error);
        free (error);
        return;
    }
    qn_log (QN_LOG_INFO, "api", "API token %s (user %s, role %s) created by %s", record->name,
            record->user, record->role, s_sender_name (call));
    s_post_api_token (call, request->id, record, text);
    sodium_memzero (text, strlen (text));
    free (text);
}

static void
s_handle_list_api_tokens (qn_api_call_t *call, Qanat__Request *request)
{
    Qanat__ApiTokenList list = QANAT__API_TOKEN_LIST__INIT;
    const Qanat__ApiToken **records = NULL;
    size_t count = 0;
    if (call->engine->keyring)
        records = qn_keyring_api_tokens (call->engine->keyring, &count);
    //  Copies with the token field empty, as stored
    Qanat__ApiToken *copies = (Qanat__ApiToken *) calloc (count + 1, sizeof (Qanat__ApiToken));
    Qanat__ApiToken **tokens = (Qanat__ApiToken **) calloc (count + 1, sizeof (void *));
    if (!copies || !tokens) {
        s_error (call, request->id, ERR_UNAVAILABLE, "out of memory");
        count = 0;
    }
    else {
        for (size_t i = 0; i < count; i++) {
            copies [i] = *records [i];
            copies [i].token = "";
            tokens [i] = &copies [i];
        }
        list.tokens = tokens;
        list.n_tokens = count;
        Qanat__Reply reply = QANAT__REPLY__INIT;
        reply.id = request->id;
        reply.body_case = QANAT__REPLY__BODY_API_TOKENS;
        reply.api_tokens = &list;
        s_reply (call, &reply);
    }
    free (tokens);
    free (copies);
    free (records);
}

static void
s_handle_revoke_api_token (qn_api_call_t *call, Qanat__Request *request)
{
    if (s_api_tokens_refused (call, request->id))
        return;
    const char *name = request->revoke_api_token->name;
    const Qanat__ApiToken *record = qn_keyring_revoke_api_token (call->engine->keyring, name);
    if (!record) {
        char *message = zsys_sprintf ("no API token named '%s'", name);
        s_error (call, request->id, ERR_NOT_FOUND, message);
        free (message);
        return;
    }
    qn_log (QN_LOG_WARNING, "api", "API token %s revoked by %s", name, s_sender_name (call));
    s_post_api_token (call, request->id, record, NULL);
}

//  Revocation: the key leaves the allow-list, the agent is disconnected at
//  once (its messages are refused from now on), and the attempts it ran
//  end as "agent revoked" and retry elsewhere by policy (the engine's
//  part: qn_fleet_revoke).
static void
s_handle_revoke_agent (qn_api_call_t *call, Qanat__Request *request)
{
    qn_coordinator_t *self = call->engine;
    const char *name = request->revoke_agent->name;
    if (!self->keyring || qn_keyring_revoke_agent (self->keyring, name)) {
        char *message = zsys_sprintf ("no enrolled agent named '%s'", name);
        s_error (call, request->id, ERR_NOT_FOUND, message);
        free (message);
        return;
    }
    agent_t *agent = qn_fleet_revoke (self, name);
    qn_log (QN_LOG_WARNING, "api", "agent %s revoked by %s", name, s_sender_name (call));
    s_post_agent_reply (call, request->id, agent);
}

//  Replies with secrets' names and access lists, never their values.
static void
s_post_secrets (qn_api_call_t *call, uint64_t request_id, char **names, size_t count)
{
    qn_coordinator_t *self = call->engine;
    Qanat__SecretAccess **access = (Qanat__SecretAccess **) calloc (count + 1, sizeof (void *));
    size_t listed = 0;
    while (access && listed < count && (access [listed] = qn_vault_access (self->vault, names [listed])))
        listed++;
    if (listed < count)
        s_error (call, request_id, ERR_UNAVAILABLE, "cannot read a secret's access list");
    else {
        Qanat__SecretList list = QANAT__SECRET_LIST__INIT;
        list.names = names;
        list.n_names = count;
        list.access = access;
        list.n_access = count;
        Qanat__Reply reply = QANAT__REPLY__INIT;
        reply.id = request_id;
        reply.body_case = QANAT__REPLY__BODY_SECRETS;
        reply.secrets = &list;
        s_reply (call, &reply);
    }
    for (size_t i = 0; i < listed; i++)
        protobuf_c_message_free_unpacked (&access [i]->base, NULL);
    free (access);
}

//  Sets a value, its access list, or both (admin only).  A value set
//  without a list keeps the one it has: rotating a password does not
//  change who may use it.
static void
s_handle_set_secret (qn_api_call_t *call, Qanat__Request *request)
{
    qn_coordinator_t *self = call->engine;
    Qanat__SetSecret *set = request->set_secret;
    bool valid = set->name && *set->name && strlen (set->name) <= 128;
    for (const char *c = set->name; valid && *c; c++)
        valid = isalnum ((unsigned char) *c) || *c == '_' || *c == '-' || *c == '.';
    if (!valid) {
        s_error (call, request->id, ERR_BAD,
                      "a secret name is 1 to 128 letters, digits, '_', '-' or '.'");
        return;
    }
    if (!self->vault) {
        s_error (call, request->id, ERR_BAD,
                      "secrets need CURVE: this coordinator runs --insecure");
        return;
    }
    void *sealed = NULL;
    size_t sealed_size = 0;
    if (set->access_only && (!set->access
    ||  qn_store_get_secret (self->store, set->name, &sealed, &sealed_size) != 1)) {
        char *message = set->access? zsys_sprintf ("no secret named %s", set->name)
                                   : strdup ("no access list given");
        s_error (call, request->id, set->access? ERR_NOT_FOUND: ERR_BAD, message);
        free (message);
        return;
    }
    free (sealed);
    //  Both refusals come before anything is written: a value is never
    //  stored under a list that was refused, nor the other way round.
    char *error = NULL;
    Qanat__ErrorCode code = ERR_BAD;
    if (!set->access_only && set->value.len > QN_VAULT_SECRET_MAX)
        error = strdup ("cannot store the secret (at most 64 KiB)");
    else
    if (set->access)
        qn_vault_set_access (self->vault, set->name, set->access, &error);
    if (!error && !set->access_only
    &&  qn_vault_set (self->vault, set->name, set->value.data, set->value.len)) {
        error = strdup (qn_store_error (self->store));
        code = ERR_UNAVAILABLE;
    }
    if (error) {
        s_error (call, request->id, code, error);
        free (error);
        return;
    }
    qn_log (QN_LOG_INFO, "api", "secret %s %s by %s", set->name,
            set->access_only? "access list changed": set->access? "and its access list set": "set",
            s_sender_name (call));
    char *names [1] = { set->name };
    s_post_secrets (call, request->id, names, 1);
}

static void
s_handle_list_secrets (qn_api_call_t *call, Qanat__Request *request)
{
    qn_coordinator_t *self = call->engine;
    char **names = NULL;
    size_t count = 0;
    qn_store_list_secrets (self->store, &names, &count);
    if (self->vault)
        s_post_secrets (call, request->id, names, count);
    else {
        Qanat__SecretList list = QANAT__SECRET_LIST__INIT;
        Qanat__Reply reply = QANAT__REPLY__INIT;
        reply.id = request->id;
        reply.body_case = QANAT__REPLY__BODY_SECRETS;
        reply.secrets = &list;
        s_reply (call, &reply);
    }
    for (size_t i = 0; i < count; i++)
        free (names [i]);
    free (names);
}

//  A piece of a stored blob (`qanat get`), at most 1 MiB so that the
//  reply fits a message.
static void
s_handle_get_blob (qn_api_call_t *call, Qanat__Request *request)
{
    qn_coordinator_t *self = call->engine;
    Qanat__GetBlob *get = request->get_blob;
    qn_blobstore_t *blobs = qn_artifacts_blobs (self->artifacts);
    uint64_t total = 0;
    if (!get->hash || !qn_blobstore_valid_hash (get->hash)
    ||  qn_store_blob_get (self->store, get->hash, &total, NULL) != 1
    ||  !qn_blobstore_has (blobs, get->hash)) {
        s_error (call, request->id, ERR_NOT_FOUND, "no such blob");
        return;
    }
    uint32_t size = get->size && get->size < 1024 * 1024? get->size: 1024 * 1024;
    if (get->offset > total) {
        s_error (call, request->id, ERR_BAD, "offset past the end of the blob");
        return;
    }
    if (size > total - get->offset)
        size = (uint32_t) (total - get->offset);
    uint8_t *buffer = (uint8_t *) malloc (size? size: 1);
    ssize_t got = buffer? qn_blobstore_read (blobs, get->hash, get->offset, buffer, size): -1;
    if (got < 0) {
        free (buffer);
        s_error (call, request->id, ERR_UNAVAILABLE, "cannot read the blob");
        return;
    }
    Qanat__BlobData data = QANAT__BLOB_DATA__INIT;
    data.hash = get->hash;
    data.offset = get->offset;
    data.total_size = total;
    data.data.data = buffer;
    data.data.len = (size_t) got;
    Qanat__Reply reply = QANAT__REPLY__INIT;
    reply.id = request->id;
    reply.body_case = QANAT__REPLY__BODY_BLOB;
    reply.blob = &data;
    s_reply (call, &reply);
    free (buffer);
}

//  A client feeding a blob in (qanat put): pieces in order, each answered
//  with how many bytes we hold, so that an interrupted put resumes there.
//  The blob is verified whole, then kept an hour unreferenced (on its way
//  to a run, like an agent's upload) before retention may take it.
static void
s_handle_put_blob (qn_api_call_t *call, Qanat__Request *request)
{
    qn_coordinator_t *self = call->engine;
    Qanat__PutBlob *put = request->put_blob;
    qn_blobstore_t *blobs = qn_artifacts_blobs (self->artifacts);
    if (!put->hash || !qn_blobstore_valid_hash (put->hash) || put->data.len > 1024 * 1024
    ||  put->offset > put->total_size || put->data.len > put->total_size - put->offset) {
        s_error (call, request->id, ERR_BAD, "put blob: bad hash, offset or size");
        return;
    }
    self->put_bytes_in += put->data.len;    //  what came over the wire, kept or not
    char error [256] = "";
    uint64_t held = qn_blobstore_has (blobs, put->hash)? put->total_size
                  : qn_blobstore_partial (blobs, put->hash);
    if (held < put->total_size && put->offset == held && put->data.len) {
        if (qn_blobstore_write (blobs, put->hash, put->offset, put->data.data, put->data.len,
                                NULL, error, sizeof error) != 0) {
            s_error (call, request->id, ERR_UNAVAILABLE, error);
            return;
        }
        held += put->data.len;
    }
    if (held == put->total_size && !qn_blobstore_has (blobs, put->hash)) {
        if (qn_blobstore_finish (blobs, put->hash, put->total_size, error, sizeof error) != 0) {
            qn_blobstore_abandon (blobs, put->hash);
            s_error (call, request->id, ERR_BAD, error);
            return;
        }
        self->stats.blobs_stored++;
    }
    if (held == put->total_size)        //  new, or put again: an hour more
        qn_agent_link_keep_upload (self, put->hash, put->total_size, NULL);
    Qanat__BlobData data = QANAT__BLOB_DATA__INIT;
    data.hash = put->hash;
    data.offset = held;
    data.total_size = put->total_size;
    Qanat__Reply reply = QANAT__REPLY__INIT;
    reply.id = request->id;
    reply.body_case = QANAT__REPLY__BODY_BLOB;
    reply.blob = &data;
    s_reply (call, &reply);
}

static void
s_handle_get_stats (qn_api_call_t *call, Qanat__Request *request)
{
    qn_coordinator_t *self = call->engine;
    qn_blobserver_stats_t blob_stats;
    qn_blobserver_stats (self->blobserver, &blob_stats);
    self->stats.blob_bytes_in = blob_stats.bytes_in + self->put_bytes_in;
    self->stats.blob_bytes_out = blob_stats.bytes_out;
    self->stats.blob_chunks_rejected = blob_stats.chunks_rejected;
    Qanat__Stats stats;
    qn_api_views_stats (self, &stats);
    Qanat__Reply reply = QANAT__REPLY__INIT;
    reply.id = request->id;
    reply.body_case = QANAT__REPLY__BODY_STATS;
    reply.stats = &stats;
    s_reply (call, &reply);
    qn_api_views_stats_free (&stats);
}

//  ---------------------------------------------------------------------
//  The table: every request kind once.  What a user may not do is marked
//  admin; an admin may do everything.

static const qn_api_entry_t s_table [] = {
    { QANAT__REQUEST__BODY_SUBMIT,       QN_API_USER,  s_handle_submit },
    { QANAT__REQUEST__BODY_START_RUN,    QN_API_USER,  s_handle_start_run },
    { QANAT__REQUEST__BODY_GET_RUN,      QN_API_USER,  s_handle_get_run },
    { QANAT__REQUEST__BODY_LIST_RUNS,    QN_API_USER,  s_handle_list_runs },
    { QANAT__REQUEST__BODY_READ_LOGS,    QN_API_USER,  s_handle_read_logs },
    { QANAT__REQUEST__BODY_READ_METRICS, QN_API_USER,  s_handle_read_metrics },
    { QANAT__REQUEST__BODY_LIST_WORKFLOWS, QN_API_USER, s_handle_list_workflows },
    { QANAT__REQUEST__BODY_GET_WORKFLOW, QN_API_USER,  s_handle_get_workflow },
    { QANAT__REQUEST__BODY_LIST_SCHEDULES, QN_API_USER, qn_scheduler_handle_list },
    { QANAT__REQUEST__BODY_SCHEDULE_PAUSE, QN_API_ADMIN, qn_scheduler_handle_pause },
    { QANAT__REQUEST__BODY_LIST_AGENTS,  QN_API_USER,  s_handle_list_agents },
    { QANAT__REQUEST__BODY_CANCEL_RUN,   QN_API_USER,  s_handle_cancel_run },
    { QANAT__REQUEST__BODY_GET_STATS,    QN_API_USER,  s_handle_get_stats },
    { QANAT__REQUEST__BODY_DRAIN_AGENT,  QN_API_ADMIN, s_handle_drain_agent },
    { QANAT__REQUEST__BODY_CREATE_TOKEN, QN_API_ADMIN, s_handle_create_token },
    { QANAT__REQUEST__BODY_ADD_USER,     QN_API_ADMIN, s_handle_add_user },
    { QANAT__REQUEST__BODY_REVOKE_AGENT, QN_API_ADMIN, s_handle_revoke_agent },
    { QANAT__REQUEST__BODY_SET_SECRET,   QN_API_ADMIN, s_handle_set_secret },
    { QANAT__REQUEST__BODY_LIST_SECRETS, QN_API_ADMIN, s_handle_list_secrets },
    { QANAT__REQUEST__BODY_GET_BLOB,     QN_API_USER,  s_handle_get_blob },
    { QANAT__REQUEST__BODY_PUT_BLOB,     QN_API_USER,  s_handle_put_blob },
    { QANAT__REQUEST__BODY_WHOAMI,       QN_API_USER,  s_handle_whoami },
    { QANAT__REQUEST__BODY_CREATE_API_TOKEN, QN_API_ADMIN, s_handle_create_api_token },
    { QANAT__REQUEST__BODY_LIST_API_TOKENS,  QN_API_ADMIN, s_handle_list_api_tokens },
    { QANAT__REQUEST__BODY_REVOKE_API_TOKEN, QN_API_ADMIN, s_handle_revoke_api_token },
    { QANAT__REQUEST__BODY_LIST_USERS,   QN_API_ADMIN, qn_api_admin_list_users },
    { QANAT__REQUEST__BODY_REVOKE_USER,  QN_API_ADMIN, qn_api_admin_revoke_user },
    { QANAT__REQUEST__BODY_LIST_TOKENS,  QN_API_ADMIN, qn_api_admin_list_tokens },
    { QANAT__REQUEST__BODY_REVOKE_TOKEN, QN_API_ADMIN, qn_api_admin_revoke_token },
    { QANAT__REQUEST__BODY_DELETE_SECRET, QN_API_ADMIN, qn_api_admin_delete_secret },
    { QANAT__REQUEST__BODY_BACKUP, QN_API_ADMIN, qn_api_backup_start },
    { QANAT__REQUEST__BODY_REMOVE_AGENT, QN_API_ADMIN, qn_api_admin_remove_agent },
    { QANAT__REQUEST__BODY_LABEL_AGENT,  QN_API_ADMIN, qn_api_admin_label_agent },
    { QANAT__REQUEST__BODY_LIST_NOTIFICATIONS, QN_API_USER, qn_notify_api_list },
    { QANAT__REQUEST__BODY_SET_LIMIT,    QN_API_ADMIN, qn_share_handle_set },
    { QANAT__REQUEST__BODY_LIST_LIMITS,  QN_API_USER,  qn_share_handle_list },
};

const qn_api_entry_t *
qn_api_table (size_t *count)
{
    *count = sizeof s_table / sizeof s_table [0];
    return s_table;
}

const qn_api_entry_t *
qn_api_entry (Qanat__Request__BodyCase body_case)
{
    for (size_t i = 0; i < sizeof s_table / sizeof s_table [0]; i++)
        if (s_table [i].body_case == body_case)
            return &s_table [i];
    return NULL;
}

void
qn_api_handle (qn_api_call_t *call, Qanat__Request *request)
{
    qn_coordinator_t *self = call->engine;
    const qn_api_entry_t *entry = qn_api_entry (request->body_case);
    if (!entry) {
        self->stats.malformed_client_frames++;
        s_error (call, request->id, ERR_BAD, "unknown request");
        return;
    }
    if (entry->role == QN_API_ADMIN && !s_is_admin (call)) {
        self->stats.denied++;
        qn_log (QN_LOG_WARNING, "api", "user %s was denied an admin request", s_sender_name (call));
        s_error (call, request->id, ERR_DENIED, "permission denied: needs role admin");
        return;
    }
    entry->handler (call, request);
}
