/*  qn_coordinator - the coordinator engine.  See qn_coordinator.h.

    Memory and store.  The store is the truth; the engine keeps the active
    runs (queued or running) in memory as full RunInfo messages, marks what
    a loop turn changed as dirty, and writes the dirty records in the turn's
    single write transaction.  Finished runs live only in the store.

    Durable before visible.  Everything a turn wants to send that depends
    on its writes (assignments, acknowledgements, client replies) waits in
    an outbox until the commit succeeded.  If a commit fails (disk full),
    the engine throws its memory away and reloads it from the store, tells
    every agent to register again (so each replays the events it has not
    seen acknowledged) and answers waiting clients with an error.

    Messages are hostile until decoded: a frame we cannot decode is counted,
    logged with the peer's identity, and dropped.
*/
#include "qn_engine.h"
#include "qn_log.h"
#include "qn_run.h"
#include "qn_dispatch.h"
#include "qn_fleet.h"
#include "qn_api.h"
#include "qn_retention.h"
#include "qn_hash.h"
#include <math.h>

#define BATCH_MAX            8192       //  messages read per socket per turn, at most...
#define BATCH_MS             2          //  ...and for at most this long: one commit each

//  A peer that sends this many malformed messages is cut off.
#define STRIKES_MAX  20

static int s_reload (qn_coordinator_t *self, char **error_p);

//  ---------------------------------------------------------------------
//  Small helpers

static void
s_free_item (void **item)
{
    free (*item);
    *item = NULL;
}

static char *
s_route_key (zframe_t *routing_id)
{
    return zframe_strhex (routing_id);
}

//  Queues env for sending after the next successful commit.
//  An error reply to request_id, encoded.
static zframe_t *
s_error_frame (uint64_t request_id, const char *message)
{
    Qanat__Error error = QANAT__ERROR__INIT;
    error.message = (char *) message;
    Qanat__Reply reply = QANAT__REPLY__INIT;
    reply.id = request_id;
    reply.body_case = QANAT__REPLY__BODY_ERROR;
    reply.error = &error;
    Qanat__Envelope env = QANAT__ENVELOPE__INIT;
    env.body_case = QANAT__ENVELOPE__BODY_REPLY;
    env.reply = &reply;
    return qn_msg_encode (&env);
}

void
qn_engine_post (qn_coordinator_t *self, zsock_t *sock, zframe_t *routing_id, Qanat__Envelope *env,
                uint64_t request_id)
{
    zframe_t *frame = qn_msg_encode (env);
    if (!frame && request_id)
        //  A reply over the message size limit: the client still gets an
        //  answer, and learns to ask for less.
        frame = s_error_frame (request_id, "the reply would be larger than 16 MiB: ask for "
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

static void
s_send_now (zsock_t *sock, zframe_t *routing_id, Qanat__Envelope *env)
{
    qn_msg_send (sock, routing_id, env);
}

static void
s_refuse (zsock_t *sock, zframe_t *routing_id,
          Qanat__RefusalCode code, const char *message)
{
    Qanat__Refusal refusal = QANAT__REFUSAL__INIT;
    refusal.code = code;
    refusal.message = (char *) message;
    Qanat__Envelope env = QANAT__ENVELOPE__INIT;
    env.body_case = QANAT__ENVELOPE__BODY_REFUSAL;
    env.refusal = &refusal;
    s_send_now (sock, routing_id, &env);
}

static void
s_post_reply (qn_coordinator_t *self, zframe_t *routing_id, Qanat__Reply *reply)
{
    Qanat__Envelope env = QANAT__ENVELOPE__INIT;
    env.body_case = QANAT__ENVELOPE__BODY_REPLY;
    env.reply = reply;
    qn_engine_post (self, self->clients_sock, routing_id, &env, reply->id);
}

//  ---------------------------------------------------------------------
//  Telling an agent

void
qn_engine_post_cancel (qn_coordinator_t *self, agent_t *agent, uint64_t run_id, uint32_t task,
               uint32_t attempt, const char *reason)
{
    if (!agent || !agent->routing_id)
        return;
    Qanat__AttemptRef ref = QANAT__ATTEMPT_REF__INIT;
    ref.run_id = run_id;
    ref.task_index = task;
    ref.attempt = attempt;
    Qanat__Cancel cancel = QANAT__CANCEL__INIT;
    cancel.attempt = &ref;
    cancel.reason = (char *) reason;
    Qanat__Envelope env = QANAT__ENVELOPE__INIT;
    env.body_case = QANAT__ENVELOPE__BODY_CANCEL;
    env.cancel = &cancel;
    qn_engine_post (self, self->agents_sock, agent->routing_id, &env, 0);
}

//  ---------------------------------------------------------------------
//  Agent messages

//  Welcome carries the assignments of the unfinished attempts the agent
//  holds and we still count as current, so that a restarted agent can
//  take back engine jobs that outlived it, with their redactions.
static void
s_post_welcome (qn_coordinator_t *self, agent_t *agent, Qanat__Register *reg)
{
    Qanat__Welcome welcome = QANAT__WELCOME__INIT;
    welcome.agent_name = agent->name;
    welcome.heartbeat_ms = agent->info->heartbeat_ms;
    welcome.suspect_after_ms = agent->info->suspect_after_ms;
    welcome.lost_after_ms = agent->info->lost_after_ms;
    size_t held = 0;
    qn_assignment_t *assignments = reg->n_running?
        (qn_assignment_t *) calloc (reg->n_running, sizeof (qn_assignment_t)): NULL;
    Qanat__Assign **held_ptrs = reg->n_running?
        (Qanat__Assign **) calloc (reg->n_running, sizeof (Qanat__Assign *)): NULL;
    for (size_t i = 0; assignments && held_ptrs && i < reg->n_running; i++) {
        Qanat__AttemptRef *ref = reg->running [i];
        run_t *run = qn_run_find (self, ref->run_id);
        Qanat__TaskInfo *task = run && ref->task_index < run->info->n_tasks?
                                qn_run_task (run, ref->task_index): NULL;
        Qanat__AttemptInfo *attempt = task? qn_run_current_attempt (task): NULL;
        if (!attempt || attempt->attempt != ref->attempt || attempt->finished
        ||  task->status != QANAT__TASK_STATUS__TASK_RUNNING || !streq (attempt->agent, agent->name))
            continue;
        char *error = NULL;
        if (qn_dispatch_assignment_build (self, run, ref->task_index, ref->attempt,
                                          &assignments [held], agent->fetchable, &error) == -1) {
            free (error);
            continue;
        }
        held_ptrs [held] = &assignments [held].assign;
        held++;
    }
    welcome.held = held_ptrs;
    welcome.n_held = held;
    Qanat__Envelope env = QANAT__ENVELOPE__INIT;
    env.body_case = QANAT__ENVELOPE__BODY_WELCOME;
    env.welcome = &welcome;
    qn_engine_post (self, self->agents_sock, agent->routing_id, &env, 0);
    for (size_t i = 0; i < held; i++)
        qn_dispatch_assignment_free (&assignments [i]);
    free (assignments);
    free (held_ptrs);
}

static bool
s_reported (Qanat__Register *reg, uint64_t run_id, uint32_t task, uint32_t attempt)
{
    for (size_t i = 0; i < reg->n_running; i++)
        if (reg->running [i]->run_id == run_id && reg->running [i]->task_index == task
        &&  reg->running [i]->attempt == attempt)
            return true;
    return false;
}

//  An agent (re)registers.  Its report of the attempts it still runs is
//  reconciled with ours: attempts we consider current continue; attempts
//  it runs that are no longer current are killed; attempts we believe it
//  runs but it does not know of have been lost with its previous life.
static void
s_handle_register (qn_coordinator_t *self, zframe_t *routing_id, Qanat__Register *reg)
{
    if (!reg->name || !*reg->name || strlen (reg->name) > 128) {
        s_refuse (self->agents_sock, routing_id, QANAT__REFUSAL_CODE__REFUSAL_BAD_REQUEST,
                  "register: the agent name must be 1 to 128 characters");
        return;
    }
    //  With CURVE an agent is who its key says, with the labels it was
    //  granted at enrolment, whatever it claims.
    Qanat__Label **labels = reg->labels;
    size_t label_count = reg->n_labels;
    if (self->sender) {
        if (!streq (self->sender->name, reg->name)) {
            self->stats.denied++;
            char *message = zsys_sprintf ("this key belongs to agent '%s', not '%s'",
                                          self->sender->name, reg->name);
            s_refuse (self->agents_sock, routing_id, QANAT__REFUSAL_CODE__REFUSAL_DENIED, message);
            free (message);
            return;
        }
        labels = self->sender->labels;
        label_count = self->sender->n_labels;
    }
    agent_t *agent = qn_fleet_connect (self, reg->name, routing_id);

    Qanat__AgentInfo *info = agent->info;
    for (size_t i = 0; i < info->n_labels; i++)
        qn_engine_free_message (info->labels [i]);
    free (info->labels);
    info->labels = NULL;
    info->n_labels = 0;
    for (size_t i = 0; i < label_count; i++)
        qn_engine_append ((void ***) &info->labels, &info->n_labels,
                          qn_engine_label_new (labels [i]->key, labels [i]->value));
    for (size_t i = 0; i < info->n_backends; i++)
        free (info->backends [i]);
    free (info->backends);
    info->backends = NULL;
    info->n_backends = 0;
    for (size_t i = 0; i < reg->n_backends; i++)
        qn_engine_append ((void ***) &info->backends, &info->n_backends, qn_engine_strdup (reg->backends [i]));
    info->capacity = reg->capacity;
    qn_fleet_set_credit (self, agent, 0);
    info->connected = true;
    info->last_seen_us = qn_now_us ();
    agent->lost = false;
    agent->drained_by_itself = reg->draining;
    //  The agent's own timer profile, within sane bounds, else ours.
    uint32_t lost_after = reg->lost_after_ms? reg->lost_after_ms: self->config.lost_after_ms;
    uint32_t suspect_after = reg->suspect_after_ms? reg->suspect_after_ms: self->config.suspect_after_ms;
    uint32_t heartbeat = reg->heartbeat_ms? reg->heartbeat_ms: self->config.heartbeat_ms;
    if (heartbeat < 10)
        heartbeat = 10;
    if (heartbeat > 3600000)
        heartbeat = 3600000;
    if (suspect_after < 2 * heartbeat)
        suspect_after = 2 * heartbeat;
    if (lost_after < suspect_after)
        lost_after = suspect_after;
    info->heartbeat_ms = heartbeat;
    info->suspect_after_ms = suspect_after;
    info->lost_after_ms = lost_after;
    info->spool_full = false;
    qn_fleet_update_state (agent, zclock_mono ());

    //  Reconcile what we believe it runs with what it reports.
    zlistx_t *gone = zlistx_new ();
    for (ready_t *ref = (ready_t *) zhashx_first (agent->attempts); ref;
         ref = (ready_t *) zhashx_next (agent->attempts)) {
        run_t *run = qn_run_find (self, ref->run_id);
        Qanat__AttemptInfo *attempt = run? qn_run_current_attempt (qn_run_task (run, ref->task)): NULL;
        if (!attempt || !s_reported (reg, ref->run_id, ref->task, attempt->attempt))
            zlistx_add_end (gone, ref);
    }
    for (ready_t *ref = (ready_t *) zlistx_first (gone); ref; ref = (ready_t *) zlistx_next (gone)) {
        run_t *run = qn_run_find (self, ref->run_id);
        if (run)
            qn_run_attempt_failed (self, run, ref->task, QN_END_AGENT_LOST,
                                   "agent lost: it does not hold this attempt");
        else {
            char *key = qn_run_attempt_key (ref->run_id, ref->task);
            zhashx_delete (agent->attempts, key);
            zstr_free (&key);
        }
    }
    zlistx_destroy (&gone);
    info->running = (uint32_t) zhashx_size (agent->attempts);
    for (size_t i = 0; i < reg->n_running; i++) {
        Qanat__AttemptRef *ref = reg->running [i];
        run_t *run = qn_run_find (self, ref->run_id);
        Qanat__TaskInfo *task = run && ref->task_index < run->info->n_tasks?
                                qn_run_task (run, ref->task_index): NULL;
        Qanat__AttemptInfo *attempt = task? qn_run_current_attempt (task): NULL;
        bool current = attempt && attempt->attempt == ref->attempt
                    && task->status == QANAT__TASK_STATUS__TASK_RUNNING
                    && streq (attempt->agent, agent->name);
        if (!current)
            qn_engine_post_cancel (self, agent, ref->run_id, ref->task_index, ref->attempt,
                           "this attempt is no longer current");
    }
    qn_fleet_persist (self, agent);
    s_post_welcome (self, agent, reg);
    qn_log (QN_LOG_INFO, "coordinator",
            "agent %s registered (%zu labels, %u slots, %u attempts running)", agent->name,
            info->n_labels, info->capacity, info->running);
}

//  Acknowledgements are coalesced per attempt and connection: one Ack
//  with the highest seq per loop turn, sent after the turn's commit.
static void
s_post_ack (qn_coordinator_t *self, agent_t *agent, Qanat__AttemptRef *ref, uint64_t seq)
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

static void
s_pending_ack_destructor (void **item)
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
        s_send_now (self->agents_sock, pending->routing_id, &env);
    }
    zhashx_purge (self->acks);
}


//  The attempt's Finished is in: its uploads are referenced by its
//  record now (or by nothing, and retention may take them).
static void
s_uploads_settled (qn_coordinator_t *self, uint64_t run_id, uint32_t task, uint32_t attempt)
{
    if (zhashx_size (self->uploading) == 0)
        return;                 //  the common case: no artifacts in flight
    zlistx_t *done = zlistx_new ();
    for (upload_t *upload = (upload_t *) zhashx_first (self->uploading); upload;
         upload = (upload_t *) zhashx_next (self->uploading))
        if (upload->run_id == run_id && upload->task == task && upload->attempt == attempt)
            zlistx_add_end (done, (void *) zhashx_cursor (self->uploading));
    for (const char *hash = (const char *) zlistx_first (done); hash;
         hash = (const char *) zlistx_next (done))
        zhashx_delete (self->uploading, hash);
    zlistx_destroy (&done);
}


//  One event of one attempt.  Fencing: only the current attempt of a
//  running task may change it; anything else is acknowledged (so the agent
//  can let go of it) and, if the attempt may still run, killed.
static void
s_handle_event (qn_coordinator_t *self, agent_t *agent, Qanat__Event *event)
{
    Qanat__AttemptRef *ref = event->attempt;
    if (!ref || event->seq == 0 || event->body_case == QANAT__EVENT__BODY__NOT_SET) {
        self->stats.malformed_agent_frames++;
        return;
    }
    run_t *run = qn_run_find (self, ref->run_id);
    Qanat__TaskInfo *task = run && ref->task_index < run->info->n_tasks?
                            qn_run_task (run, ref->task_index): NULL;
    Qanat__AttemptInfo *attempt = task? qn_run_current_attempt (task): NULL;
    bool current = attempt && attempt->attempt == ref->attempt
                && task->status == QANAT__TASK_STATUS__TASK_RUNNING
                && streq (attempt->agent, agent->name);
    if (!current) {
        self->stats.stale_events++;
        s_post_ack (self, agent, ref, event->seq);
        if (event->body_case != QANAT__EVENT__BODY_FINISHED)
            qn_engine_post_cancel (self, agent, ref->run_id, ref->task_index, ref->attempt,
                           "this attempt is no longer current");
        return;
    }
    if (event->seq <= attempt->last_seq) {
        self->stats.duplicate_events++;
        s_post_ack (self, agent, ref, attempt->last_seq);
        return;
    }
    if (event->seq != attempt->last_seq + 1)
        return;     //  a gap: the agent replays from its last acknowledgement

    switch (event->body_case) {
        case QANAT__EVENT__BODY_STARTED: {
            Qanat__Started *started = event->started;
            attempt->pid = started->pid;
            //  Shown by `qanat status`; bounded like every agent string
            if (started->engine_job_id && strlen (started->engine_job_id) <= 255)
                qn_engine_replace_string (&attempt->engine_job_id, qn_engine_strdup (started->engine_job_id));
            if (started->backend && *started->backend && strlen (started->backend) <= 64)
                qn_engine_replace_string (&attempt->backend, qn_engine_strdup (started->backend));
            if (started->host && strlen (started->host) <= 255)
                qn_engine_replace_string (&attempt->host, qn_engine_strdup (started->host));
            break;
        }
        case QANAT__EVENT__BODY_LOG: {
            Qanat__LogLine line = QANAT__LOG_LINE__INIT;
            line.task = task->name;
            line.attempt = attempt->attempt;
            line.seq = event->seq;
            line.chunk = event->log;
            if (qn_store_begin (self->store) == 0)
                qn_store_append_log (self->store, run->id, &line, NULL);
            break;
        }
        case QANAT__EVENT__BODY_METRIC: {
            if (!event->metric->name || !*event->metric->name || !isfinite (event->metric->value)) {
                self->stats.malformed_agent_frames++;
                break;
            }
            Qanat__MetricRecord record = QANAT__METRIC_RECORD__INIT;
            record.task = task->name;
            record.attempt = attempt->attempt;
            record.seq = event->seq;
            record.point = event->metric;
            if (qn_store_begin (self->store) == 0)
                qn_store_append_metric (self->store, run->id, &record);
            break;
        }
        default:
            break;
    }
    attempt->last_seq = event->seq;
    qn_run_mark_task (run, ref->task_index);
    self->stats.events_committed++;
    if (event->body_case == QANAT__EVENT__BODY_FINISHED) {
        s_uploads_settled (self, run->id, ref->task_index, attempt->attempt);
        qn_run_attempt_finished (self, run, ref->task_index, attempt, event->finished);
    }
    s_post_ack (self, agent, ref, event->seq);
}

//  An agent connected with a join token's key presents its own key.
static void
s_handle_enrol (qn_coordinator_t *self, zframe_t *routing_id, Qanat__Enrol *enrol)
{
    char *error = NULL;
    const Qanat__Principal *agent = qn_keyring_enrol (
        self->keyring, self->sender->public_key, enrol->name, enrol->public_key.data,
        enrol->public_key.len, enrol->labels, enrol->n_labels, &error);
    if (!agent) {
        self->stats.denied++;
        qn_log (QN_LOG_WARNING, "coordinator", "enrolment of agent '%s' refused: %s", enrol->name,
                error);
        s_refuse (self->agents_sock, routing_id, QANAT__REFUSAL_CODE__REFUSAL_DENIED, error);
        free (error);
        return;
    }
    qn_log (QN_LOG_INFO, "coordinator", "agent %s enrolled with join token %s", agent->name,
            self->sender->name);
    Qanat__Enrolled enrolled = QANAT__ENROLLED__INIT;
    enrolled.name = agent->name;
    enrolled.labels = agent->labels;
    enrolled.n_labels = agent->n_labels;
    Qanat__Envelope reply = QANAT__ENVELOPE__INIT;
    reply.body_case = QANAT__ENVELOPE__BODY_ENROLLED;
    reply.enrolled = &enrolled;
    qn_engine_post (self, self->agents_sock, routing_id, &reply, 0);
}

//  ---------------------------------------------------------------------
//  Blob transfers (qn_blobserver does the protocol; we say who may)

static int
s_blob_send (void *arg, const char *peer, Qanat__Envelope *envelope)
{
    qn_coordinator_t *self = (qn_coordinator_t *) arg;
    agent_t *agent = (agent_t *) zhashx_lookup (self->agents, peer);
    if (!agent || !agent->routing_id)
        return -1;
    qn_engine_post (self, self->agents_sock, agent->routing_id, envelope, 0);
    return 0;
}

//  A blob stored on its way to a record (an attempt's output, or a put
//  for a run's parameter): indexed, and kept from retention for an hour
//  unless a record references it sooner
void
qn_engine_keep_upload (qn_coordinator_t *self, const char *hash, uint64_t size,
                       const Qanat__AttemptRef *attempt)
{
    if (qn_store_begin (self->store) == 0)
        qn_store_blob_add (self->store, hash, size);
    upload_t *upload = (upload_t *) zmalloc (sizeof (upload_t));
    if (upload) {
        upload->when = zclock_mono ();
        if (attempt) {
            upload->run_id = attempt->run_id;
            upload->task = attempt->task_index;
            upload->attempt = attempt->attempt;
        }
        zhashx_update (self->uploading, hash, upload);
    }
}

static void
s_blob_stored (void *arg, const char *peer, const char *hash, uint64_t size,
               const Qanat__AttemptRef *attempt)
{
    (void) peer;
    qn_coordinator_t *self = (qn_coordinator_t *) arg;
    qn_engine_keep_upload (self, hash, size, attempt);
    self->stats.blobs_stored++;
}

//  An agent may store outputs only for an attempt it runs now.
static void
s_handle_blob_offer (qn_coordinator_t *self, agent_t *agent, Qanat__BlobOffer *offer)
{
    Qanat__AttemptRef *ref = offer->attempt;
    run_t *run = ref? qn_run_find (self, ref->run_id): NULL;
    Qanat__TaskInfo *task = run && ref->task_index < run->info->n_tasks?
                            qn_run_task (run, ref->task_index): NULL;
    Qanat__AttemptInfo *attempt = task? qn_run_current_attempt (task): NULL;
    if (!attempt || attempt->attempt != ref->attempt || attempt->finished
    ||  !streq (attempt->agent, agent->name)) {
        Qanat__BlobWant want = QANAT__BLOB_WANT__INIT;
        want.hash = offer->hash? offer->hash: (char *) "";
        want.error = (char *) "not an output of an attempt this agent runs";
        Qanat__Envelope env = QANAT__ENVELOPE__INIT;
        env.body_case = QANAT__ENVELOPE__BODY_BLOB_WANT;
        env.blob_want = &want;
        qn_engine_post (self, self->agents_sock, agent->routing_id, &env, 0);
        self->stats.denied++;
        return;
    }
    qn_blobserver_on_offer (self->blobserver, agent->name, offer);
}

//  An agent may fetch the blobs of its attempts' inputs, nothing else.
static void
s_handle_blob_want (qn_coordinator_t *self, agent_t *agent, Qanat__BlobWant *want)
{
    bool ends_upload = want->complete || (want->error && *want->error);
    if (!ends_upload && (!want->hash || !zhashx_lookup (agent->fetchable, want->hash))) {
        Qanat__BlobChunk chunk = QANAT__BLOB_CHUNK__INIT;
        chunk.hash = want->hash? want->hash: (char *) "";
        chunk.offset = want->offset;
        chunk.error = (char *) "not an input of an attempt this agent runs";
        Qanat__Envelope env = QANAT__ENVELOPE__INIT;
        env.body_case = QANAT__ENVELOPE__BODY_BLOB_CHUNK;
        env.blob_chunk = &chunk;
        qn_engine_post (self, self->agents_sock, agent->routing_id, &env, 0);
        self->stats.denied++;
        return;
    }
    qn_blobserver_on_want (self->blobserver, agent->name, want);
}

static void
s_handle_agent_message (qn_coordinator_t *self, zframe_t *routing_id, Qanat__Envelope *env)
{
    //  A join token's key is good for enrolment and nothing else.
    bool token = self->sender && streq (self->sender->kind, "token");
    if (token != (env->body_case == QANAT__ENVELOPE__BODY_ENROL)) {
        self->stats.denied++;
        s_refuse (self->agents_sock, routing_id, QANAT__REFUSAL_CODE__REFUSAL_DENIED, token
                  ? "a join token's key may only enrol": "this agent is enrolled already");
        return;
    }
    if (token) {
        s_handle_enrol (self, routing_id, env->enrol);
        return;
    }
    if (env->body_case == QANAT__ENVELOPE__BODY_REGISTER) {
        s_handle_register (self, routing_id, env->register_);
        return;
    }
    agent_t *agent = qn_fleet_by_route (self, routing_id);
    if (!agent) {
        //  We restarted, or declared it lost: it must register again.
        s_refuse (self->agents_sock, routing_id,
                  QANAT__REFUSAL_CODE__REFUSAL_NOT_REGISTERED, "register first");
        return;
    }
    agent->last_seen = zclock_mono ();
    agent->info->last_seen_us = qn_now_us ();
    switch (env->body_case) {
        case QANAT__ENVELOPE__BODY_HEARTBEAT: {
            if (agent->info->spool_full != env->heartbeat->spool_full) {
                qn_log (QN_LOG_WARNING, "coordinator", "agent %s %s", agent->name,
                        env->heartbeat->spool_full? "reports its spool full: no new work for it"
                                                  : "has spool room again");
                agent->info->spool_full = env->heartbeat->spool_full;
            }
            agent->info->spool_bytes = env->heartbeat->spool_bytes;
            //  A count lower than the last is a restarted agent's own
            uint64_t damaged = env->heartbeat->cache_damaged;
            self->stats.agent_cache_damaged += damaged >= agent->cache_damaged
                                             ? damaged - agent->cache_damaged: damaged;
            agent->cache_damaged = damaged;
            Qanat__Heartbeat heartbeat = QANAT__HEARTBEAT__INIT;
            heartbeat.running = agent->info->running;
            Qanat__Envelope reply = QANAT__ENVELOPE__INIT;
            reply.body_case = QANAT__ENVELOPE__BODY_HEARTBEAT;
            reply.heartbeat = &heartbeat;
            qn_engine_post (self, self->agents_sock, routing_id, &reply, 0);
            break;
        }
        case QANAT__ENVELOPE__BODY_CREDIT: {
            //  Capped at the agent's capacity, not at capacity minus what we
            //  count as running: after a reconnect we still count attempts
            //  whose Finished is on its way, while the agent already offers
            //  their slots; they would never come back.
            uint64_t credit = (uint64_t) agent->info->credit + env->credit->slots;
            uint32_t room = agent->info->capacity;
            qn_fleet_set_credit (self, agent, credit > room? room: (uint32_t) credit);
            break;
        }
        case QANAT__ENVELOPE__BODY_EVENT:
            s_handle_event (self, agent, env->event);
            break;
        case QANAT__ENVELOPE__BODY_BLOB_OFFER:
            s_handle_blob_offer (self, agent, env->blob_offer);
            break;
        case QANAT__ENVELOPE__BODY_BLOB_CHUNK:
            qn_blobserver_on_chunk (self->blobserver, agent->name, env->blob_chunk);
            break;
        case QANAT__ENVELOPE__BODY_BLOB_WANT:
            s_handle_blob_want (self, agent, env->blob_want);
            break;
        case QANAT__ENVELOPE__BODY_DRAIN:
            agent->drained_by_itself = env->drain->draining;
            qn_fleet_update_state (agent, zclock_mono ());
            qn_fleet_persist (self, agent);
            qn_log (QN_LOG_INFO, "coordinator", "agent %s %s%s%s", agent->name,
                    env->drain->draining? "draining": "takes work again",
                    *env->drain->reason? ": ": "", env->drain->reason);
            break;
        default:
            self->stats.malformed_agent_frames++;
            s_refuse (self->agents_sock, routing_id, QANAT__REFUSAL_CODE__REFUSAL_BAD_REQUEST,
                      "not a message an agent may send");
            break;
    }
}

//  ---------------------------------------------------------------------
//  Client requests: qn_api handles them (one table of every kind, with the
//  role each needs); this socket is one way in.

//  A reply to a client waits in the outbox for the turn's commit.
static void
s_client_reply (qn_api_call_t *call, Qanat__Reply *reply)
{
    s_post_reply (call->engine, (zframe_t *) call->sink, reply);
}

static void
s_handle_client_message (qn_coordinator_t *self, zframe_t *routing_id, Qanat__Envelope *env)
{
    if (env->body_case != QANAT__ENVELOPE__BODY_REQUEST) {
        self->stats.malformed_client_frames++;
        s_refuse (self->clients_sock, routing_id, QANAT__REFUSAL_CODE__REFUSAL_BAD_REQUEST,
                  "clients send requests only");
        return;
    }
    qn_api_call_t call = { self, self->sender, s_client_reply, routing_id };
    qn_api_handle (&call, env->request);
}

//  ---------------------------------------------------------------------
//  Loading from the store (at start, and after a failed commit)


static int
s_reload (qn_coordinator_t *self, char **error_p)
{
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
            zframe_t *frame = s_error_frame (out->request_id, message);
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
            s_refuse (self->agents_sock, agent->routing_id,
                      QANAT__REFUSAL_CODE__REFUSAL_NOT_REGISTERED, "register again");
            qn_fleet_disconnect (self, agent);
        }
    char *error = NULL;
    if (s_reload (self, &error)) {
        qn_log (QN_LOG_ERROR, "coordinator", "cannot reload from the store: %s", error);
        free (error);
    }
    qn_store_abort (self->store);
}

static int s_on_agents (zloop_t *loop, zsock_t *sock, void *arg);
static int s_on_clients (zloop_t *loop, zsock_t *sock, void *arg);

static int
s_on_resume (zloop_t *loop, int timer_id, void *arg)
{
    (void) timer_id;
    qn_coordinator_t *self = (qn_coordinator_t *) arg;
    self->paused = false;
    zloop_reader (loop, self->agents_sock, s_on_agents, self);
    zloop_reader (loop, self->clients_sock, s_on_clients, self);
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
    zloop_reader_end (self->loop, self->agents_sock);
    zloop_reader_end (self->loop, self->clients_sock);
    zloop_timer (self->loop, (size_t) self->backoff_ms, 1, s_on_resume, self);
}

void
qn_engine_end_turn (qn_coordinator_t *self)
{
    qn_dispatch (self);
    zlistx_t *changed = self->dirty_runs;
    self->dirty_runs = zlistx_new ();
    for (run_t *run = (run_t *) zlistx_first (changed); run; run = (run_t *) zlistx_next (changed))
        qn_run_persist (self, run);
    bool writing = qn_store_in_txn (self->store);
    if (qn_store_commit (self->store)) {
        zlistx_destroy (&changed);
        self->stats.commit_failures++;
        s_recover (self);
        s_pause (self);
        return;
    }
    if (writing) {
        self->stats.commits++;
        self->backoff_ms = 0;
    }
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

static void
s_outgoing_destructor (void **item)
{
    s_outgoing_destroy ((outgoing_t **) item);
}

//  Who sent this message: the principal of the CURVE key libzmq reports
//  as the connection's User-Id.  Agents' sockets take agents and join
//  tokens, clients' sockets take users.  Anyone else is refused, counted
//  and logged with the key.  Without CURVE (--insecure) everyone is a
//  local administrator.
static bool
s_identify (qn_coordinator_t *self, zsock_t *sock, zframe_t *routing_id, zframe_t *payload,
            bool agents)
{
    self->sender = NULL;
    if (!self->keyring)
        return true;
    const char *key = zframe_meta (payload, "User-Id");
    const Qanat__Principal *principal = qn_keyring_lookup (self->keyring, key);
    bool fits = principal && (agents? !streq (principal->kind, "user")
                                    : streq (principal->kind, "user"));
    if (!fits) {
        self->stats.denied++;
        qn_log (QN_LOG_WARNING, "coordinator", "refused a message from %s key %s: %s",
                agents? "agent": "client", key? key: "(none)",
                principal? "wrong socket for this key"
                         : "not admitted (unknown, revoked or expired)");
        s_refuse (sock, routing_id, QANAT__REFUSAL_CODE__REFUSAL_DENIED,
                  "your key is not admitted here (unknown, revoked or expired)");
        return false;
    }
    self->sender = principal;
    return true;
}

//  A peer that keeps sending malformed messages is cut off: everything it
//  sends is dropped unread.  (A ROUTER socket cannot close one peer's
//  connection; with CURVE the peer's key can also be revoked.)
static void
s_strike (qn_coordinator_t *self, zsock_t *sock, zframe_t *routing_id, bool agents)
{
    char *key = s_route_key (routing_id);
    size_t *strikes = (size_t *) zhashx_lookup (self->strikes, key);
    if (!strikes) {
        strikes = (size_t *) zmalloc (sizeof (size_t));
        zhashx_insert (self->strikes, key, strikes);
    }
    if (++*strikes == STRIKES_MAX) {
        const char *who = self->sender? self->sender->name: "";
        qn_log (QN_LOG_WARNING, "coordinator", "cut off %s peer %s%s%s after %d malformed messages",
                agents? "agent": "client", key, *who? " key of ": "", who, STRIKES_MAX);
        s_refuse (sock, routing_id, QANAT__REFUSAL_CODE__REFUSAL_MALFORMED,
                  "too many malformed messages: cut off");
    }
    zstr_free (&key);
}

static size_t
s_strikes (qn_coordinator_t *self, zframe_t *routing_id)
{
    if (zhashx_size (self->strikes) == 0)
        return 0;
    char *key = s_route_key (routing_id);
    size_t *strikes = (size_t *) zhashx_lookup (self->strikes, key);
    zstr_free (&key);
    return strikes? *strikes: 0;
}

//  Applies one message of a ROUTER socket (routing id, payload).  Anything
//  else is dropped and counted; a peer's first few drops are logged with
//  its identity, then it goes quiet so that a flood cannot fill the log.
static void
s_handle_message (qn_coordinator_t *self, zsock_t *sock, bool agents, zmsg_t *msg)
{
    zframe_t *routing_id = zmsg_pop (msg);
    zframe_t *payload = zmsg_pop (msg);
    uint64_t *malformed = agents? &self->stats.malformed_agent_frames
                                : &self->stats.malformed_client_frames;
    uint64_t malformed_before = self->stats.malformed_agent_frames
                              + self->stats.malformed_client_frames + self->stats.bad_version;
    size_t strikes = routing_id? s_strikes (self, routing_id): 0;
    bool quiet = strikes >= 3;
    if (strikes >= STRIKES_MAX) {
        (*malformed)++;
        malformed_before++;                 //  counted, but no new strike
    }
    else
    if (!routing_id || !payload || zmsg_size (msg) != 0) {
        (*malformed)++;
        char *peer = routing_id? zframe_strhex (routing_id): strdup ("?");
        if (!quiet)
            qn_log (QN_LOG_WARNING, "coordinator",
                    "dropped a message of %zu frames from %s peer %s",
                    zmsg_size (msg) + (payload? 2: 1), agents? "agent": "client", peer);
        free (peer);
    }
    else {
        qn_msg_status_t status;
        uint32_t version = 0;
        Qanat__Envelope *env = qn_msg_decode (zframe_data (payload), zframe_size (payload),
                                              &status, &version);
        if (!env) {
            char *peer = zframe_strhex (routing_id);
            if (status == QN_MSG_BAD_VERSION) {
                self->stats.bad_version++;
                char *message = zsys_sprintf ("protocol version %u is not supported; this "
                                              "coordinator speaks version %u",
                                              version, QN_PROTOCOL_VERSION);
                s_refuse (sock, routing_id, QANAT__REFUSAL_CODE__REFUSAL_BAD_VERSION, message);
                free (message);
            }
            else
                (*malformed)++;
            if (!quiet)
                qn_log (QN_LOG_WARNING, "coordinator", "dropped %s (%zu bytes) from %s peer %s",
                        qn_msg_status_str (status), zframe_size (payload),
                        agents? "agent": "client", peer);
            free (peer);
        }
        else {
            if (s_identify (self, sock, routing_id, payload, agents)) {
                if (agents)
                    s_handle_agent_message (self, routing_id, env);
                else
                    s_handle_client_message (self, routing_id, env);
            }
            self->sender = NULL;
            qn_msg_free (&env);
        }
    }
    uint64_t malformed_after = self->stats.malformed_agent_frames
                             + self->stats.malformed_client_frames + self->stats.bad_version;
    if (routing_id && malformed_after > malformed_before)
        s_strike (self, sock, routing_id, agents);
    zframe_destroy (&routing_id);
    zframe_destroy (&payload);
}

//  Reads up to BATCH_MAX messages from a ROUTER socket and applies each,
//  then ends the loop turn: one commit for the whole batch.
static int
s_read_socket (qn_coordinator_t *self, zsock_t *sock, bool agents)
{
    //  The sockets have a receive timeout of 0: zmsg_recv returns NULL as
    //  soon as nothing is waiting, with no poll per message.
    int64_t until = zclock_mono () + BATCH_MS;
    for (int count = 0; count < BATCH_MAX; count++) {
        zmsg_t *msg = zmsg_recv (sock);
        if (!msg)
            break;
        s_handle_message (self, sock, agents, msg);
        zmsg_destroy (&msg);
        if ((count & 63) == 63 && zclock_mono () >= until)
            break;
    }
    qn_engine_end_turn (self);
    return 0;
}

static int
s_on_agents (zloop_t *loop, zsock_t *sock, void *arg)
{
    (void) loop;
    return s_read_socket ((qn_coordinator_t *) arg, sock, true);
}

static int
s_on_clients (zloop_t *loop, zsock_t *sock, void *arg)
{
    (void) loop;
    return s_read_socket ((qn_coordinator_t *) arg, sock, false);
}

//  Agents silent past the deadline are lost, and so are the attempts they
//  ran, which then retry by policy.  Attempts of agents that never came
//  back after our own restart end the same way.
static int
s_on_timer (zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    (void) timer_id;
    qn_coordinator_t *self = (qn_coordinator_t *) arg;
    int64_t now = zclock_mono ();
    if (++self->timer_turns % 8 == 0)           //  every 2 s
        qn_blobserver_tick (self->blobserver);
    //  S3 retention: soon after references fell, else once a minute (for
    //  objects whose grace has run out since)
    if ((self->s3_collect_due && self->timer_turns % 4 == 1) || self->timer_turns % 240 == 1) {
        self->s3_collect_due = false;
        qn_retention_s3_collect (self);
    }
    if (self->timer_turns % (4 * 3600) == 1) {  //  at start, then hourly
        //  Uploads from agents that never came back to finish them
        uint64_t freed = qn_blobstore_sweep_partials (qn_artifacts_blobs (self->artifacts),
                                                      QN_COORDINATOR_PARTIAL_MAX_AGE_S);
        self->stats.blob_bytes_freed += freed;
        if (freed)
            qn_log (QN_LOG_INFO, "coordinator",
                    "removed %" PRIu64 " bytes of uploads not resumed for %d hours", freed,
                    QN_COORDINATOR_PARTIAL_MAX_AGE_S / 3600);
    }
    zlistx_t *lost = qn_fleet_sweep (self, now);
    qn_fleet_fail_attempts (self, &lost, "agent lost");
    if (self->keyring)
        qn_keyring_expire (self->keyring);
    qn_dispatch_release_delayed (self);
    qn_engine_end_turn (self);
    return 0;
}

//  ---------------------------------------------------------------------
//  Construction

static int
s_bind (zsock_t *sock, const char *endpoint, char **bound_p, char **error_p)
{
    qn_msg_prepare_socket (sock);
    zsock_set_router_mandatory (sock, 0);
    zsock_set_rcvtimeo (sock, 0);
    if (zsock_bind (sock, "%s", endpoint) == -1) {
        *error_p = zsys_sprintf ("cannot bind %s: %s", endpoint, zmq_strerror (zmq_errno ()));
        return -1;
    }
    *bound_p = zsock_last_endpoint (sock);
    return 0;
}

qn_coordinator_t *
qn_coordinator_new (const qn_coordinator_config_t *config, char **error_p)
{
    qn_coordinator_t *self = (qn_coordinator_t *) zmalloc (sizeof (qn_coordinator_t));
    self->config = *config;
    if (!self->config.heartbeat_ms)
        self->config.heartbeat_ms = 1000;
    if (!self->config.lost_after_ms)
        self->config.lost_after_ms = 30000;
    if (!self->config.suspect_after_ms || self->config.suspect_after_ms > self->config.lost_after_ms)
        self->config.suspect_after_ms = self->config.lost_after_ms < 5000? self->config.lost_after_ms: 5000;
    self->data_dir = strdup (config->data_dir);
    self->config.data_dir = self->data_dir;
    qanat__stats__init (&self->stats);
    self->agents = qn_hash_new ();
    if (!self->agents) {
        *error_p = strdup ("cannot make hash tables (libsodium unusable?)");
        free (self->data_dir);
        free (self);
        return NULL;
    }
    zhashx_set_destructor (self->agents, qn_fleet_agent_destructor);
    self->by_route = qn_hash_new ();
    self->runs = qn_hash_new ();
    zhashx_set_destructor (self->runs, qn_run_destructor);
    self->queues = qn_hash_new ();
    zhashx_set_destructor (self->queues, (zhashx_destructor_fn *) zlistx_destroy);
    self->delayed = zlistx_new ();
    zlistx_set_destructor (self->delayed, qn_dispatch_ready_destructor);
    self->with_credit = qn_hash_new ();
    self->dirty_runs = zlistx_new ();
    self->acks = qn_hash_new ();
    zhashx_set_destructor (self->acks, s_pending_ack_destructor);
    self->outbox = zlistx_new ();
    zlistx_set_destructor (self->outbox, s_outgoing_destructor);

    self->store = qn_store_new (self->data_dir, config->durable, error_p);
    if (!self->store) {
        qn_coordinator_destroy (&self);
        return NULL;
    }
    self->strikes = qn_hash_new ();
    zhashx_set_destructor (self->strikes, s_free_item);
    char *blob_dir = zsys_sprintf ("%s/blobs", self->data_dir);
    self->artifacts = blob_dir? qn_artifacts_new (self->store, blob_dir, error_p): NULL;
    zstr_free (&blob_dir);
    self->uploading = qn_hash_new ();
    zhashx_set_destructor (self->uploading, s_free_item);
    self->s3_queued = qn_hash_new ();
    if (self->artifacts)
        self->blobserver = qn_blobserver_new (qn_artifacts_blobs (self->artifacts),
                                              s_blob_send, s_blob_stored, self);
    if (!self->artifacts || !self->blobserver) {
        qn_coordinator_destroy (&self);
        return NULL;
    }
    if (!config->insecure) {
        //  Secrets only where they can be given out over CURVE.
        self->vault = qn_vault_new (self->data_dir, self->store, error_p);
        if (!self->vault) {
            qn_coordinator_destroy (&self);
            return NULL;
        }
        self->keyring = qn_keyring_new (self->data_dir, self->store, config->client_endpoint,
                                        config->agent_endpoint, error_p);
        if (!self->keyring) {
            qn_coordinator_destroy (&self);
            return NULL;
        }
    }
    qn_fleet_load (self);
    if (s_reload (self, error_p) || qn_store_commit (self->store)) {
        qn_coordinator_destroy (&self);
        return NULL;
    }
    self->agents_sock = zsock_new (ZMQ_ROUTER);
    self->clients_sock = zsock_new (ZMQ_ROUTER);
    if (self->keyring && self->agents_sock && self->clients_sock) {
        qn_keyring_secure (self->keyring, self->agents_sock);
        qn_keyring_secure (self->keyring, self->clients_sock);
    }
    if (!self->agents_sock || !self->clients_sock
    ||  s_bind (self->agents_sock, config->agent_endpoint, &self->agent_endpoint, error_p)
    ||  s_bind (self->clients_sock, config->client_endpoint, &self->client_endpoint, error_p)) {
        qn_coordinator_destroy (&self);
        return NULL;
    }
    self->started = zclock_mono ();
    return self;
}

void
qn_coordinator_destroy (qn_coordinator_t **self_p)
{
    assert (self_p);
    qn_coordinator_t *self = *self_p;
    if (self) {
        qn_s3gc_destroy (&self->s3gc);
        zhashx_destroy (&self->s3_queued);
        zloop_destroy (&self->loop);
        zsock_destroy (&self->agents_sock);
        zsock_destroy (&self->clients_sock);
        qn_keyring_destroy (&self->keyring);
        qn_vault_destroy (&self->vault);
        qn_blobserver_destroy (&self->blobserver);
        qn_artifacts_destroy (&self->artifacts);
        zhashx_destroy (&self->uploading);
        zhashx_destroy (&self->strikes);
        zlistx_destroy (&self->outbox);
        zhashx_destroy (&self->acks);
        zhashx_destroy (&self->queues);
        zlistx_destroy (&self->delayed);
        zhashx_destroy (&self->with_credit);
        zlistx_destroy (&self->dirty_runs);
        zhashx_destroy (&self->runs);
        zhashx_destroy (&self->by_route);
        zhashx_destroy (&self->agents);
        if (self->store)
            qn_store_commit (self->store);
        qn_store_destroy (&self->store);
        zstr_free (&self->agent_endpoint);
        zstr_free (&self->client_endpoint);
        free (self->data_dir);
        free (self);
        *self_p = NULL;
    }
}

const char *
qn_coordinator_client_endpoint (qn_coordinator_t *self)
{
    return self->client_endpoint;
}

const char *
qn_coordinator_agent_endpoint (qn_coordinator_t *self)
{
    return self->agent_endpoint;
}

void
qn_coordinator_feed (qn_coordinator_t *self, bool agents, const void *routing_id, size_t id_size,
                     const void *payload, size_t size)
{
    zmsg_t *msg = zmsg_new ();
    zmsg_addmem (msg, routing_id, id_size);
    zmsg_addmem (msg, payload, size);
    s_handle_message (self, agents? self->agents_sock: self->clients_sock, agents, msg);
    zmsg_destroy (&msg);
    qn_engine_end_turn (self);
}

const char *
qn_coordinator_admin_key (qn_coordinator_t *self)
{
    return self->keyring? qn_keyring_admin_key_path (self->keyring): NULL;
}

int
qn_coordinator_run (qn_coordinator_t *self)
{
    self->loop = zloop_new ();
    if (self->config.s3_delete_after_s >= 0) {
        self->s3gc = qn_s3gc_new (self->loop, qn_retention_on_s3_deleted, self);
        if (!self->s3gc)
            qn_log (QN_LOG_WARNING, "coordinator",
                    "cannot start the S3 deletion worker: S3 artifacts stay in " "their buckets");
    }
    zloop_reader (self->loop, self->agents_sock, s_on_agents, self);
    zloop_reader (self->loop, self->clients_sock, s_on_clients, self);
    zloop_timer (self->loop, 250, 0, s_on_timer, self);
    zloop_start (self->loop);
    qn_engine_end_turn (self);
    return 0;
}
