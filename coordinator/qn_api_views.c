/*  qn_api_views - what client replies show beyond the stored records.
    See qn_api_views.h.

    One of the files of the qn_coordinator class: it shares the engine's
    records (qn_engine.h), so the include checker counts it with
    qn_coordinator.
*/
#include "qn_api_views.h"
#include "qn_run.h"
#include "qn_fleet.h"
#include <inttypes.h>

//  ---------------------------------------------------------------------
//  Parameter types of stored runs

//  A workflow version parsed for its parameter declarations
typedef struct {
    char *name;
    uint32_t version;
    qn_workflow_t *wf;                  //  NULL: it could not be read
} s_declared_t;

static bool
s_untyped (const Qanat__RunInfo *run)
{
    for (size_t p = 0; p < run->n_params; p++)
        if (!run->params [p]->type || !*run->params [p]->type)
            return true;
    return false;
}

static qn_workflow_t *
s_parse_version (qn_coordinator_t *self, const char *name, uint32_t version)
{
    Qanat__SubmitWorkflow *source = version? qn_store_get_workflow (self->store, name, version)
                                           : NULL;
    if (!source)
        return NULL;
    char *error = NULL;
    qn_workflow_t *wf = qn_workflow_parse (source->filename, (const char *) source->source.data,
                                           source->source.len, &error);
    free (error);
    qn_engine_free_message (source);
    return wf;
}

void
qn_api_views_param_types (qn_coordinator_t *self, Qanat__RunInfo **runs, size_t count)
{
    s_declared_t *parsed = NULL;
    size_t parsed_count = 0;
    for (size_t r = 0; r < count; r++) {
        Qanat__RunInfo *run = runs [r];
        if (!run || !run->workflow || !s_untyped (run))
            continue;
        s_declared_t *declared = NULL;
        for (size_t i = 0; i < parsed_count && !declared; i++)
            if (parsed [i].version == run->version && streq (parsed [i].name, run->workflow))
                declared = &parsed [i];
        if (!declared) {
            char *name = strdup (run->workflow);
            s_declared_t *grown = name? (s_declared_t *) realloc (
                parsed, (parsed_count + 1) * sizeof (s_declared_t)): NULL;
            if (!grown) {
                free (name);
                break;
            }
            parsed = grown;
            declared = &parsed [parsed_count++];
            declared->name = name;
            declared->version = run->version;
            declared->wf = s_parse_version (self, name, run->version);
        }
        if (declared->wf)
            qn_run_param_types (run, declared->wf);
    }
    for (size_t i = 0; i < parsed_count; i++) {
        free (parsed [i].name);
        qn_workflow_destroy (&parsed [i].wf);
    }
    free (parsed);
}

//  ---------------------------------------------------------------------
//  Counters computed at GetStats

static void
s_add_count (Qanat__Label ***labels, size_t *count, const char *key, uint64_t value)
{
    char text [24];
    snprintf (text, sizeof text, "%" PRIu64, value);
    qn_engine_append ((void ***) labels, count, qn_engine_label_new (key, text));
}

//  The tasks still waiting in a selector queue (canceled ones leave it
//  lazily, at the next dispatch)
static uint64_t
s_queue_depth (qn_coordinator_t *self, zlistx_t *queue)
{
    uint64_t depth = 0;
    for (ready_t *ready = (ready_t *) zlistx_first (queue); ready;
         ready = (ready_t *) zlistx_next (queue)) {
        run_t *run = qn_run_find (self, ready->run_id);
        if (run && ready->task < run->info->n_tasks
        &&  qn_run_task (run, ready->task)->status == QANAT__TASK_STATUS__TASK_QUEUED)
            depth++;
    }
    return depth;
}

void
qn_api_views_stats (qn_coordinator_t *self, Qanat__Stats *stats)
{
    *stats = self->stats;
    uint64_t *buckets = (uint64_t *) calloc (QN_ENGINE_LATENCY_BUCKETS, sizeof (uint64_t));
    uint64_t total = 0;
    for (size_t b = 0; buckets && b < QN_ENGINE_LATENCY_BUCKETS; b++)
        buckets [b] = total += self->commit_latency [b];
    stats->commit_latency_bucket = buckets;
    stats->n_commit_latency_bucket = buckets? QN_ENGINE_LATENCY_BUCKETS: 0;

    stats->attempts_ended = NULL;
    stats->n_attempts_ended = 0;
    for (int end = 0; end < QN_END_COUNT; end++)
        s_add_count (&stats->attempts_ended, &stats->n_attempts_ended,
                     qn_end_name ((qn_end_t) end), self->attempts_ended [end]);

    stats->queue_depth = NULL;
    stats->n_queue_depth = 0;
    //  By shape (selector, backend, resources): the queues of one shape
    //  for each priority, pool, task limit and owner count together
    for (zlistx_t *queue = (zlistx_t *) zhashx_first (self->queues); queue;
         queue = (zlistx_t *) zhashx_next (self->queues)) {
        const char *key = (const char *) zhashx_cursor (self->queues);
        char *shape = strndup (key, strcspn (key, "!%^~"));
        uint64_t depth = s_queue_depth (self, queue);
        size_t q = 0;
        while (q < stats->n_queue_depth && strcmp (stats->queue_depth [q]->key, shape) != 0)
            q++;
        if (shape && q < stats->n_queue_depth) {
            depth += strtoull (stats->queue_depth [q]->value, NULL, 10);
            char text [24];
            snprintf (text, sizeof text, "%" PRIu64, depth);
            qn_engine_replace_string (&stats->queue_depth [q]->value, strdup (text));
        }
        else
            s_add_count (&stats->queue_depth, &stats->n_queue_depth, shape? shape: key, depth);
        free (shape);
    }

    //  Every state, even with no agent in it, so that the shape is stable
    static const char *states [] = { "connected", "suspect", "lost", "disconnected" };
    uint64_t in_state [4] = { 0 };
    int64_t now = zclock_mono ();
    for (agent_t *agent = (agent_t *) zhashx_first (self->agents); agent;
         agent = (agent_t *) zhashx_next (self->agents)) {
        qn_fleet_update_state (agent, now);
        for (size_t s = 0; s < 4; s++)
            if (agent->state && streq (agent->state, states [s]))
                in_state [s]++;
    }
    stats->agents_by_state = NULL;
    stats->n_agents_by_state = 0;
    for (size_t s = 0; s < 4; s++)
        s_add_count (&stats->agents_by_state, &stats->n_agents_by_state, states [s], in_state [s]);
}

static void
s_free_labels (Qanat__Label ***labels, size_t *count)
{
    for (size_t i = 0; i < *count; i++)
        qn_engine_free_message ((*labels) [i]);
    free (*labels);
    *labels = NULL;
    *count = 0;
}

void
qn_api_views_stats_free (Qanat__Stats *stats)
{
    free (stats->commit_latency_bucket);
    stats->commit_latency_bucket = NULL;
    stats->n_commit_latency_bucket = 0;
    s_free_labels (&stats->attempts_ended, &stats->n_attempts_ended);
    s_free_labels (&stats->queue_depth, &stats->n_queue_depth);
    s_free_labels (&stats->agents_by_state, &stats->n_agents_by_state);
}
