/*  qn_agent_link - the agents' socket's actions.  See qn_agent_link.h.

    One of the files of the qn_coordinator class: it shares the engine's
    records (qn_engine.h), so the include checker counts it with
    qn_coordinator.
*/
#include "qn_agent_link.h"
#include "qn_log.h"
#include "qn_turn.h"
#include "qn_run.h"
#include "qn_dispatch.h"
#include "qn_fleet.h"
#include <math.h>

//  ---------------------------------------------------------------------
//  Telling an agent

void
qn_agent_link_post_cancel (qn_coordinator_t *self, agent_t *agent, uint64_t run_id, uint32_t task,
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
    qn_turn_post (self, self->agents_sock, agent->routing_id, &env, 0);
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
    qn_turn_post (self, self->agents_sock, agent->routing_id, &env, 0);
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
        qn_engine_refuse (self->agents_sock, routing_id, QANAT__REFUSAL_CODE__REFUSAL_BAD_REQUEST,
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
            qn_engine_refuse (self->agents_sock, routing_id, QANAT__REFUSAL_CODE__REFUSAL_DENIED,
                              message);
            free (message);
            return;
        }
        labels = self->sender->labels;
        label_count = self->sender->n_labels;
    }
    agent_t *agent = qn_fleet_connect (self, reg->name, routing_id);

    Qanat__AgentInfo *info = agent->info;
    qn_fleet_relabel (agent, labels, label_count);
    for (size_t i = 0; i < info->n_backends; i++)
        free (info->backends [i]);
    free (info->backends);
    info->backends = NULL;
    info->n_backends = 0;
    for (size_t i = 0; i < reg->n_backends; i++)
        qn_engine_append ((void ***) &info->backends, &info->n_backends, qn_engine_strdup (reg->backends [i]));
    info->capacity = reg->capacity;
    qn_fleet_set_resources (agent, reg);
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
        if (!current) {
            qn_agent_link_post_cancel (self, agent, ref->run_id, ref->task_index, ref->attempt,
                                      "this attempt is no longer current");
            //  Its process may still hold what it asked until it ends
            Qanat__AttemptInfo *old = task && ref->attempt && ref->attempt <= task->n_attempts
                                    ? task->attempts [ref->attempt - 1]: NULL;
            if (old && streq (old->agent, agent->name)) {
                qn_res_t need = qn_fleet_need (qn_workflow_task (run->wf, ref->task_index),
                                               old->backend);
                qn_fleet_hold (agent, ref->run_id, ref->task_index, ref->attempt, &need);
            }
        }
    }
    qn_fleet_persist (self, agent);
    s_post_welcome (self, agent, reg);
    qn_log (QN_LOG_INFO, "coordinator",
            "agent %s registered (%zu labels, %u slots, %u attempts running)", agent->name,
            info->n_labels, info->capacity, info->running);
}

//  ---------------------------------------------------------------------
//  Events of attempts

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

//  A log chunk in Stats: its bytes, and its lines (a line cut in pieces
//  counts once, with the piece that ends it).
static void
s_count_log (qn_coordinator_t *self, const Qanat__LogChunk *chunk)
{
    if (!chunk || !chunk->data.len)
        return;
    self->stats.log_bytes_in += chunk->data.len;
    uint64_t lines = chunk->partial? 0: 1;
    for (size_t i = 0; i < chunk->data.len; i++)
        lines += chunk->data.data [i] == '\n';
    self->stats.log_lines_in += lines;
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
        qn_turn_post_ack (self, agent, ref, event->seq);
        if (event->body_case == QANAT__EVENT__BODY_FINISHED)
            qn_fleet_release (agent, ref->run_id, ref->task_index, ref->attempt);
        else
            qn_agent_link_post_cancel (self, agent, ref->run_id, ref->task_index, ref->attempt,
                                      "this attempt is no longer current");
        return;
    }
    if (event->seq <= attempt->last_seq) {
        self->stats.duplicate_events++;
        qn_turn_post_ack (self, agent, ref, attempt->last_seq);
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
            //  A link, only as http(s): the web UI makes it an anchor
            if (started->engine_url && strlen (started->engine_url) <= 1024
            &&  (strncmp (started->engine_url, "https://", 8) == 0
            ||   strncmp (started->engine_url, "http://", 7) == 0))
                qn_engine_replace_string (&attempt->engine_url, qn_engine_strdup (started->engine_url));
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
            s_count_log (self, event->log);
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
    qn_turn_post_ack (self, agent, ref, event->seq);
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
        qn_engine_refuse (self->agents_sock, routing_id, QANAT__REFUSAL_CODE__REFUSAL_DENIED,
                          error);
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
    qn_turn_post (self, self->agents_sock, routing_id, &reply, 0);
}

//  ---------------------------------------------------------------------
//  Blob transfers (qn_blobserver does the protocol; we say who may)

int
qn_agent_link_blob_send (void *arg, const char *peer, Qanat__Envelope *envelope)
{
    qn_coordinator_t *self = (qn_coordinator_t *) arg;
    agent_t *agent = (agent_t *) zhashx_lookup (self->agents, peer);
    if (!agent || !agent->routing_id)
        return -1;
    qn_turn_post (self, self->agents_sock, agent->routing_id, envelope, 0);
    return 0;
}

//  A blob stored on its way to a record (an attempt's output, or a put
//  for a run's parameter): indexed, and kept from retention for an hour
//  unless a record references it sooner
void
qn_agent_link_keep_upload (qn_coordinator_t *self, const char *hash, uint64_t size,
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

void
qn_agent_link_blob_stored (void *arg, const char *peer, const char *hash, uint64_t size,
                           const Qanat__AttemptRef *attempt)
{
    (void) peer;
    qn_coordinator_t *self = (qn_coordinator_t *) arg;
    qn_agent_link_keep_upload (self, hash, size, attempt);
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
        qn_turn_post (self, self->agents_sock, agent->routing_id, &env, 0);
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
        qn_turn_post (self, self->agents_sock, agent->routing_id, &env, 0);
        self->stats.denied++;
        return;
    }
    qn_blobserver_on_want (self->blobserver, agent->name, want);
}

void
qn_agent_link_handle (qn_coordinator_t *self, zframe_t *routing_id, Qanat__Envelope *env)
{
    //  A client request here is a CLI pointed at the wrong socket
    //  (without CURVE; with it, the user's key says so first)
    if (env->body_case == QANAT__ENVELOPE__BODY_REQUEST) {
        qn_engine_refuse_wrong_socket (self, self->agents_sock, routing_id, true);
        return;
    }
    //  A join token's key is good for enrolment and nothing else.
    bool token = self->sender && streq (self->sender->kind, "token");
    if (token != (env->body_case == QANAT__ENVELOPE__BODY_ENROL)) {
        self->stats.denied++;
        qn_engine_refuse (self->agents_sock, routing_id, QANAT__REFUSAL_CODE__REFUSAL_DENIED, token
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
        qn_engine_refuse (self->agents_sock, routing_id,
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
            qn_turn_post (self, self->agents_sock, routing_id, &reply, 0);
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
            qn_engine_refuse (self->agents_sock, routing_id,
                              QANAT__REFUSAL_CODE__REFUSAL_BAD_REQUEST,
                              "not a message an agent may send");
            break;
    }
}
