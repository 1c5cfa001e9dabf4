/*  qn_turn - a loop turn of the engine: the outbox, coalesced acks, the
    turn's one commit, and recovery and pause after a failed one.  See
    qn_turn.h for the contract ("durable before visible").

    One of the files of the qn_coordinator class: it shares the engine's
    records (qn_engine.h), so the include checker counts it with
    qn_coordinator.
*/
#include "qn_turn.h"
#include "qn_log.h"
#include "qn_run.h"
#include "qn_dispatch.h"
#include "qn_fleet.h"
#include "qn_retention.h"
#include "qn_scheduler.h"
#include <math.h>

//  ---------------------------------------------------------------------
//  The outbox and the acknowledgements

//  An error reply to request_id, encoded.
static zframe_t *
s_error_frame (uint64_t request_id, Qanat__ErrorCode code, const char *message)
{
    Qanat__Error error = QANAT__ERROR__INIT;
    error.message = (char *) message;
    error.code = code;
    Qanat__Reply reply = QANAT__REPLY__INIT;
    reply.id = request_id;
    reply.body_case = QANAT__REPLY__BODY_ERROR;
    reply.error = &error;
    Qanat__Envelope env = QANAT__ENVELOPE__INIT;
    env.body_case = QANAT__ENVELOPE__BODY_REPLY;
    env.reply = &reply;
    return qn_msg_encode (&env);
}

//  Queues env for sending after the next successful commit.
void
qn_turn_post (qn_coordinator_t *self, zsock_t *sock, zframe_t *routing_id, Qanat__Envelope *env,
              uint64_t request_id)
{
    zframe_t *frame = qn_msg_encode (env);
    if (!frame && request_id)
        //  A reply over the message size limit: the client still gets an
        //  answer, and learns to ask for less.
        frame = s_error_frame (request_id, QANAT__ERROR_CODE__ERROR_BAD_REQUEST,
                               "the reply would be larger than 16 MiB: ask for "
                               "less (a smaller --limit, one task, one metric)");
    if (!frame) {
        qn_log (QN_LOG_ERROR, "coordinator", "cannot encode an outgoing message");
        return;
    }
    outgoing_t *out = (outgoing_t *) zmalloc (sizeof (outgoing_t));
    out->sock = sock;
    out->routing_id = zframe_dup (routing_id);
    out->frame = frame;
    out->request_id = request_id;
    zlistx_add_end (self->outbox, out);
}

static void
s_outgoing_destroy (outgoing_t **out_p)
{
    if (*out_p) {
        zframe_destroy (&(*out_p)->routing_id);
        zframe_destroy (&(*out_p)->frame);
        free (*out_p);
        *out_p = NULL;
    }
}

//  Acknowledgements are coalesced per attempt and connection: one Ack
//  with the highest seq per loop turn, sent after the turn's commit.
void
qn_turn_post_ack (qn_coordinator_t *self, agent_t *agent, Qanat__AttemptRef *ref, uint64_t seq)
{
    char key [160];
    snprintf (key, sizeof key, "%s|%llu:%u:%u", agent->route_key, (unsigned long long) ref->run_id,
              ref->task_index, ref->attempt);
    pending_ack_t *pending = (pending_ack_t *) zhashx_lookup (self->acks, key);
    if (!pending) {
        pending = (pending_ack_t *) zmalloc (sizeof (pending_ack_t));
        pending->routing_id = zframe_dup (agent->routing_id);
        pending->run_id = ref->run_id;
        pending->task = ref->task_index;
        pending->attempt = ref->attempt;
        zhashx_insert (self->acks, key, pending);
    }
    if (seq > pending->seq)
        pending->seq = seq;
}

void
qn_turn_pending_ack_destructor (void **item)
{
    pending_ack_t *pending = (pending_ack_t *) *item;
    if (pending) {
        zframe_destroy (&pending->routing_id);
        free (pending);
        *item = NULL;
    }
}

static void
s_send_acks (qn_coordinator_t *self)
{
    for (pending_ack_t *pending = (pending_ack_t *) zhashx_first (self->acks); pending;
         pending = (pending_ack_t *) zhashx_next (self->acks)) {
        Qanat__AttemptRef ref = QANAT__ATTEMPT_REF__INIT;
        ref.run_id = pending->run_id;
        ref.task_index = pending->task;
        ref.attempt = pending->attempt;
        Qanat__Ack ack = QANAT__ACK__INIT;
        ack.attempt = &ref;
        ack.seq = pending->seq;
        Qanat__Envelope env = QANAT__ENVELOPE__INIT;
        env.body_case = QANAT__ENVELOPE__BODY_ACK;
        env.ack = &ack;
        qn_msg_send (self->agents_sock, pending->routing_id, &env);
    }
    zhashx_purge (self->acks);
}

//  ---------------------------------------------------------------------
//  Loading from the store (at start, and after a failed commit)

int
qn_turn_reload (qn_coordinator_t *self, char **error_p)
{
    qn_scheduler_versions_changed (self->scheduler);
    zlistx_purge (self->dirty_runs);
    zhashx_purge (self->runs);
    zhashx_purge (self->queues);
    zlistx_purge (self->delayed);
    qn_fleet_forget_attempts (self);
    uint64_t *ids = NULL;
    size_t count = 0;
    if (qn_store_active_runs (self->store, &ids, &count)) {
        *error_p = strdup (qn_store_error (self->store));
        return -1;
    }
    for (size_t i = 0; i < count; i++) {
        run_t *run = qn_run_load (self, ids [i]);
        if (!run)
            continue;
        char key [QN_RUN_KEY_SIZE];
        zhashx_insert (self->runs, qn_run_key (run->id, key), run);
        for (size_t t = 0; t < run->info->n_tasks; t++) {
            Qanat__TaskInfo *task = qn_run_task (run, t);
            if (task->status == QANAT__TASK_STATUS__TASK_QUEUED)
                qn_dispatch_queue (self, run, t);
            else
            if (task->status == QANAT__TASK_STATUS__TASK_RUNNING) {
                //  It waits for its agent to come back and report, or to
                //  be declared lost; an agent we never knew gets a record.
                Qanat__AttemptInfo *attempt = qn_run_current_attempt (task);
                if (attempt)
                    qn_fleet_expect (self, attempt->agent);
                qn_run_track_running (run, t, true);
            }
        }
        qn_run_advance (self, run);
    }
    free (ids);
    return 0;
}

//  ---------------------------------------------------------------------
//  The loop turn

//  A commit failed: nothing of this turn happened.  Start again from the
//  store; agents re-register and replay what we never acknowledged.
static void
s_recover (qn_coordinator_t *self)
{
    const char *why = qn_store_error (self->store);
    qn_log (QN_LOG_ERROR, "coordinator", "store commit failed (%s); reloading from the store", why);
    outgoing_t *out = (outgoing_t *) zlistx_first (self->outbox);
    while (out) {
        if (out->request_id) {
            char *message = zsys_sprintf ("the coordinator could not store this change (%s); "
                                          "nothing was changed", why);
            zframe_t *frame = s_error_frame (out->request_id, QANAT__ERROR_CODE__ERROR_UNAVAILABLE,
                                             message);
            zframe_t *id = zframe_dup (out->routing_id);
            if (frame && zframe_send (&id, out->sock, ZFRAME_MORE | ZFRAME_DONTWAIT) == 0)
                zframe_send (&frame, out->sock, ZFRAME_DONTWAIT);
            zframe_destroy (&id);
            zframe_destroy (&frame);
            free (message);
        }
        out = (outgoing_t *) zlistx_next (self->outbox);
    }
    zlistx_purge (self->outbox);
    zhashx_purge (self->acks);
    for (agent_t *agent = (agent_t *) zhashx_first (self->agents); agent;
         agent = (agent_t *) zhashx_next (self->agents))
        if (agent->routing_id) {
            qn_engine_refuse (self->agents_sock, agent->routing_id,
                              QANAT__REFUSAL_CODE__REFUSAL_NOT_REGISTERED, "register again");
            qn_fleet_disconnect (self, agent);
        }
    char *error = NULL;
    if (qn_turn_reload (self, &error)) {
        qn_log (QN_LOG_ERROR, "coordinator", "cannot reload from the store: %s", error);
        free (error);
    }
    qn_store_abort (self->store);
}

static int
s_on_resume (zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    (void) timer_id;
    qn_coordinator_t *self = (qn_coordinator_t *) arg;
    self->paused = false;
    qn_engine_listen (self, true);
    return 0;
}

//  After a failed commit (a full disk) stop reading for a while, longer
//  each time it fails again, rather than spin on commits that cannot
//  succeed; what peers send meanwhile waits in their queues.
static void
s_pause (qn_coordinator_t *self)
{
    self->backoff_ms = self->backoff_ms? self->backoff_ms * 2: 100;
    if (self->backoff_ms > 1000)
        self->backoff_ms = 1000;
    if (!self->loop || self->paused)
        return;
    self->paused = true;
    qn_engine_listen (self, false);
    zloop_timer (self->loop, (size_t) self->backoff_ms, 1, s_on_resume, self);
}

double
qn_turn_latency_bound (size_t bucket)
{
    static const double bounds [QN_ENGINE_LATENCY_BUCKETS - 1] = {
        0.5, 1, 2, 5, 10, 25, 50, 100, 250
    };
    return bucket < QN_ENGINE_LATENCY_BUCKETS - 1? bounds [bucket]: INFINITY;
}

//  A successful commit's latency, for the histogram in Stats
static void
s_count_latency (qn_coordinator_t *self, double ms)
{
    size_t bucket = 0;
    while (ms > qn_turn_latency_bound (bucket))
        bucket++;
    self->commit_latency [bucket]++;
    self->stats.commit_latency_sum_ms += ms;
}

void
qn_turn_end (qn_coordinator_t *self)
{
    qn_dispatch (self);
    zlistx_t *changed = self->dirty_runs;
    self->dirty_runs = zlistx_new ();
    for (run_t *run = (run_t *) zlistx_first (changed); run; run = (run_t *) zlistx_next (changed)) {
        qn_run_persist (self, run);
        run->listed = false;
    }
    bool writing = qn_store_in_txn (self->store);
    int64_t commit_start = zclock_usecs ();
    if (qn_store_commit (self->store)) {
        zlistx_destroy (&changed);
        //  Nothing of this turn happened: nothing to tell the HTTP side
        self->runs_changed = false;
        self->agents_changed = false;
        self->stats.commit_failures++;
        s_recover (self);
        s_pause (self);
        return;
    }
    if (writing) {
        self->stats.commits++;
        self->backoff_ms = 0;
        s_count_latency (self, (double) (zclock_usecs () - commit_start) / 1000.0);
    }
    //  What changed, for the HTTP side: only now that it is stored, and
    //  before a finished run leaves memory
    qn_engine_publish (self, changed);
    //  Finished runs leave memory once they are safely stored; only a run
    //  that changed this turn can have just finished.
    zlistx_t *retain = NULL;
    for (run_t *run = (run_t *) zlistx_first (changed); run; run = (run_t *) zlistx_next (changed))
        if (qn_dag_finished (run->dag) && !run->listed) {
            uint32_t keep = qn_workflow_keep_runs (run->wf);
            if (!keep)
                keep = self->config.keep_runs;
            if (keep)
                qn_retention_due (&retain, run->info->workflow, keep);
            char key [QN_RUN_KEY_SIZE];
            zhashx_delete (self->runs, qn_run_key (run->id, key));
        }
    zlistx_destroy (&changed);
    //  Retention, in a transaction the next turn commits
    qn_retention_apply (self, &retain);

    outgoing_t *out = (outgoing_t *) zlistx_first (self->outbox);
    while (out) {
        zframe_t *frame = out->frame;
        out->frame = NULL;
        zframe_t *id = out->routing_id;
        out->routing_id = NULL;
        if (zframe_send (&id, out->sock, ZFRAME_MORE | ZFRAME_DONTWAIT) != 0
        ||  zframe_send (&frame, out->sock, ZFRAME_DONTWAIT) != 0) {
            self->stats.sends_refused++;
            if (out->request_id)
                qn_log (QN_LOG_WARNING, "coordinator",
                        "a reply to request %llu could not be sent: %s",
                        (unsigned long long) out->request_id, zmq_strerror (zmq_errno ()));
        }
        zframe_destroy (&id);
        zframe_destroy (&frame);
        out = (outgoing_t *) zlistx_next (self->outbox);
    }
    zlistx_purge (self->outbox);
    s_send_acks (self);
}

void
qn_turn_outgoing_destructor (void **item)
{
    s_outgoing_destroy ((outgoing_t **) item);
}
