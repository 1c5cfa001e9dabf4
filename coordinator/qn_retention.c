/*  qn_retention - keep_runs and the S3 collection glue.  See qn_retention.h.

    One of the files of the qn_coordinator class: it shares the engine's
    records (qn_engine.h), so the include checker counts it with
    qn_coordinator.
*/
#include "qn_engine.h"
#include "qn_log.h"
#include "qn_turn.h"
#include "qn_run.h"
#include "qn_retention.h"

//  ---------------------------------------------------------------------
//  keep_runs

//  Keeps the newest keep finished runs of a workflow: older ones go with
//  their tasks, logs and metrics, and blobs no run references any more.
void
qn_retention_retain (qn_coordinator_t *self, const char *workflow, uint32_t keep)
{
    uint64_t *ids = NULL;
    size_t count = 0;
    if (qn_store_workflow_run_ids (self->store, workflow, &ids, &count) != 0 || count <= keep) {
        free (ids);
        return;
    }
    if (qn_store_begin (self->store) != 0) {
        free (ids);
        return;
    }
    size_t deleted = 0, records = 0;
    //  Oldest first; runs still in memory (not finished) are never touched,
    //  nor runs with notifications still to send (made from the stored
    //  run); they count among the kept.  ids [0..deleted) become the deleted.
    size_t excess = count - keep;
    for (size_t i = 0; i < count && deleted < excess; i++) {
        if (qn_run_find (self, ids [i]) || qn_store_notifs_pending (self->store, ids [i]) != 0)
            continue;
        Qanat__TaskInfo **tasks = NULL;
        size_t task_count = 0;
        if (qn_store_get_tasks (self->store, ids [i], &tasks, &task_count) == 0) {
            qn_artifacts_release_tasks (self->artifacts, tasks, task_count);
            qn_store_free_array (tasks, task_count);
        }
        Qanat__RunInfo *info = qn_store_get_run (self->store, ids [i]);
        if (info) {
            qn_artifacts_ref_outputs (self->artifacts, info->artifacts, info->n_artifacts, -1);
            qanat__run_info__free_unpacked (info, NULL);
        }
        //  With the run go its notifications (sent or not: a pending one
        //  could no longer be written) and, below, its schedule records
        if (qn_store_delete_run (self->store, ids [i]) == 0
        &&  qn_store_delete_notifs (self->store, ids [i], &records) == 0)
            ids [deleted++] = ids [i];
    }
    if (deleted && qn_store_sched_prune (self->store, workflow, ids, deleted, &records))
        qn_log (QN_LOG_ERROR, "retention", "cannot prune the schedule records of %s: %s",
                workflow, qn_store_error (self->store));
    free (ids);
    //  Uploads of the last hour may belong to attempts still on their way
    int64_t now = zclock_mono ();
    zlistx_t *old = zlistx_new ();
    for (upload_t *upload = (upload_t *) zhashx_first (self->uploading); upload;
         upload = (upload_t *) zhashx_next (self->uploading))
        if (now - upload->when > 3600 * 1000)
            zlistx_add_end (old, (void *) zhashx_cursor (self->uploading));
    for (const char *hash = (const char *) zlistx_first (old); hash;
         hash = (const char *) zlistx_next (old))
        zhashx_delete (self->uploading, hash);
    zlistx_destroy (&old);
    uint64_t freed = qn_artifacts_collect (self->artifacts, self->uploading);
    self->s3_collect_due = self->s3_collect_due || deleted > 0;
    self->stats.runs_deleted += deleted;
    if (deleted)
        self->runs_changed = true;          //  published after the commit that deletes them
    self->stats.blob_bytes_freed += freed;
    if (deleted && self->config.verbose)
        qn_log (QN_LOG_INFO, "retention",
                "retention: %zu run(s) of %s deleted with %zu notification and schedule "
                "record(s), %llu blob bytes freed", deleted, workflow, records,
                (unsigned long long) freed);
}

//  A workflow to trim, noted at the end of a turn.
typedef struct {
    uint32_t keep;
    char *workflow;
} s_due_t;

static void
s_due_destroy (void **item)
{
    s_due_t *due = (s_due_t *) *item;
    if (due) {
        free (due->workflow);
        free (due);
        *item = NULL;
    }
}

void
qn_retention_due (zlistx_t **due_p, const char *workflow, uint32_t keep)
{
    if (!*due_p) {
        *due_p = zlistx_new ();
        zlistx_set_destructor (*due_p, s_due_destroy);
    }
    s_due_t *due = (s_due_t *) zmalloc (sizeof (s_due_t));
    due->keep = keep;
    due->workflow = strdup (workflow);
    zlistx_add_end (*due_p, due);
}

void
qn_retention_apply (qn_coordinator_t *self, zlistx_t **due_p)
{
    if (!*due_p)
        return;
    for (s_due_t *due = (s_due_t *) zlistx_first (*due_p); due;
         due = (s_due_t *) zlistx_next (*due_p))
        qn_retention_retain (self, due->workflow, due->keep);
    zlistx_destroy (due_p);
}

//  ---------------------------------------------------------------------
//  S3 retention: objects nobody has referenced for s3_delete_after_s are
//  deleted from their buckets by qn_s3gc, in two steps on two turns: one
//  turn marks them DELETING (so that a record arriving meanwhile is
//  refused, see qn_artifacts), a later one hands those committed to the
//  worker.  A restart finds the DELETING ones again.

#define S_S3_IN_FLIGHT_MAX  100

void
qn_retention_on_s3_deleted (void *arg, const char *id, int status, const char *error)
{
    qn_coordinator_t *self = (qn_coordinator_t *) arg;
    zhashx_delete (self->s3_queued, id);
    if (qn_store_begin (self->store) != 0)
        return;                 //  still DELETING: queued again after a restart
    qn_artifacts_s3_deleted (self->artifacts, id, status == 0, qn_now_us ());
    self->s3_collect_due = true;        //  room for the next ones
    if (status == 0)
        self->stats.s3_objects_deleted++;
    else {
        self->stats.s3_delete_failures++;
        int64_t now = zclock_mono ();
        if (!self->s3_failure_logged || now - self->s3_failure_logged > 600 * 1000) {
            qn_log (QN_LOG_WARNING, "retention",
                    "S3 retention: cannot delete an unreferenced artifact (%s); kept, "
                    "tried again later (give qanatd credentials for the bucket, or "
                    "--s3-delete-after -1)",
                    error? error: "unknown error");
            self->s3_failure_logged = now;
        }
    }
    qn_turn_end (self);
}

void
qn_retention_s3_collect (qn_coordinator_t *self)
{
    if (!self->s3gc || self->config.s3_delete_after_s < 0)
        return;
    size_t pending = qn_s3gc_pending (self->s3gc);
    if (pending >= S_S3_IN_FLIGHT_MAX || qn_store_begin (self->store) != 0)
        return;
    //  Step two first: what an earlier turn marked, now committed
    qn_store_s3_object_t *objects = NULL;
    size_t count = 0;
    if (qn_artifacts_s3_deleting (self->artifacts, &objects, &count,
                                  S_S3_IN_FLIGHT_MAX + zhashx_size (self->s3_queued)) == 0)
        for (size_t i = 0; i < count && pending < S_S3_IN_FLIGHT_MAX; i++) {
            if (zhashx_lookup (self->s3_queued, objects [i].id))
                continue;
            Qanat__ArtifactStore *store = qanat__artifact_store__unpack (
                NULL, objects [i].store_size, objects [i].store);
            const char *bucket_end = objects [i].location && store && store->bucket
                ? objects [i].location + 5 + strlen (store->bucket): NULL;
            bool queued = bucket_end && strlen (objects [i].location) > 6 + strlen (store->bucket)
                       && *bucket_end == '/'
                       && qn_s3gc_delete (self->s3gc, objects [i].id, store, bucket_end + 1) == 0;
            if (queued) {
                zhashx_insert (self->s3_queued, objects [i].id, (void *) 1);
                pending++;
            }
            else    //  a row we cannot act on: back to live, tried again later
                qn_artifacts_s3_deleted (self->artifacts, objects [i].id, false, qn_now_us ());
            if (store)
                qanat__artifact_store__free_unpacked (store, NULL);
        }
    qn_store_s3_objects_free (&objects, count);
    //  Step one: mark the next ones
    if (pending < S_S3_IN_FLIGHT_MAX
    &&  qn_artifacts_s3_pick (self->artifacts, qn_now_us (),
                              self->config.s3_delete_after_s * 1000000,
                              &objects, &count, S_S3_IN_FLIGHT_MAX - pending) == 0) {
        //  Marked this turn: handed over on the next pass, once committed
        if (count)
            self->s3_collect_due = true;
        qn_store_s3_objects_free (&objects, count);
    }
}
