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
#include "qn_agent_link.h"
#include "qn_api.h"
#include "qn_retention.h"
#include "qn_hash.h"

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

void
qn_engine_refuse (zsock_t *sock, zframe_t *routing_id,
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

//  Acknowledgements are coalesced per attempt and connection: one Ack
//  with the highest seq per loop turn, sent after the turn's commit.
void
qn_engine_post_ack (qn_coordinator_t *self, agent_t *agent, Qanat__AttemptRef *ref, uint64_t seq)
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
        qn_engine_refuse (self->clients_sock, routing_id, QANAT__REFUSAL_CODE__REFUSAL_BAD_REQUEST,
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
            qn_engine_refuse (self->agents_sock, agent->routing_id,
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
        qn_engine_refuse (sock, routing_id, QANAT__REFUSAL_CODE__REFUSAL_DENIED,
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
        qn_engine_refuse (sock, routing_id, QANAT__REFUSAL_CODE__REFUSAL_MALFORMED,
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
                qn_engine_refuse (sock, routing_id, QANAT__REFUSAL_CODE__REFUSAL_BAD_VERSION,
                                  message);
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
                    qn_agent_link_handle (self, routing_id, env);
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
                                              qn_agent_link_blob_send, qn_agent_link_blob_stored, self);
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
