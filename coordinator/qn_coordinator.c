/*  qn_coordinator - the coordinator engine.  See qn_coordinator.h.

    The wiring: the ROUTER sockets (agents, clients, and the HTTP side's
    request bridge of qn_api_bridge.c), the loop and its timer, a batch
    read per turn, who sent each message, and cut-offs for peers that
    keep sending garbage.  The agents' messages are qn_agent_link's, the
    clients' requests qn_api's, the agents' records qn_fleet's.

    Memory and store, and "durable before visible": see qn_turn.h (each
    loop turn ends in qn_turn_end, its one commit).

    Messages are hostile until decoded: a frame we cannot decode is counted,
    logged with the peer's identity, and dropped.
*/
#include "qn_engine.h"
#include "qn_log.h"
#include "qn_sdnotify.h"
#include "qn_turn.h"
#include "qn_run.h"
#include "qn_dispatch.h"
#include "qn_share.h"
#include "qn_fleet.h"
#include "qn_agent_link.h"
#include "qn_api.h"
#include "qn_retention.h"
#include "qn_scheduler.h"
#include "qn_hash.h"
#include "qn_notify.h"
#include "qn_wf_notify.h"
#include "qn_api_backup.h"

#define BATCH_MAX            8192       //  messages read per socket per turn, at most...
#define BATCH_MS             2          //  ...and for at most this long: one commit each

//  A peer that sends this many malformed messages is cut off.
#define STRIKES_MAX  20

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

void
qn_engine_refuse_wrong_socket (qn_coordinator_t *self, zsock_t *sock, zframe_t *routing_id,
                               bool agents)
{
    char *message = agents
        ? zsys_sprintf ("this is the agent socket; the CLI talks to %s", self->client_endpoint)
        : zsys_sprintf ("this is the client socket; agents talk to %s", self->agent_endpoint);
    qn_engine_refuse (sock, routing_id, QANAT__REFUSAL_CODE__REFUSAL_WRONG_SOCKET, message);
    free (message);
}

//  A peer of another protocol version drops envelopes stamped with ours
//  unread, so the refusal that tells it why (naming both versions) is
//  stamped with its version: Envelope.refusal and Refusal are the same in
//  every version, so it can read them.
static void
s_refuse_version (zsock_t *sock, zframe_t *routing_id, uint32_t version, const char *message)
{
    Qanat__Refusal refusal = QANAT__REFUSAL__INIT;
    refusal.code = QANAT__REFUSAL_CODE__REFUSAL_BAD_VERSION;
    refusal.message = (char *) message;
    Qanat__Envelope env = QANAT__ENVELOPE__INIT;
    env.version = version;
    env.body_case = QANAT__ENVELOPE__BODY_REFUSAL;
    env.refusal = &refusal;
    zframe_t *frame = zframe_new (NULL, qanat__envelope__get_packed_size (&env));
    zframe_t *id = zframe_dup (routing_id);
    if (frame && id) {
        qanat__envelope__pack (&env, zframe_data (frame));
        if (zframe_send (&id, sock, ZFRAME_MORE) == 0)
            zframe_send (&frame, sock, 0);
    }
    zframe_destroy (&id);
    zframe_destroy (&frame);
}

static void
s_post_reply (qn_coordinator_t *self, zframe_t *routing_id, Qanat__Reply *reply)
{
    Qanat__Envelope env = QANAT__ENVELOPE__INIT;
    env.body_case = QANAT__ENVELOPE__BODY_REPLY;
    env.reply = reply;
    qn_turn_post (self, self->clients_sock, routing_id, &env, reply->id);
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

//  A request from the client socket, or from the HTTP side's bridge
//  (its replies go back there: qn_api_bridge.c).
static void
s_handle_client_message (qn_coordinator_t *self, zsock_t *sock, zframe_t *routing_id,
                         Qanat__Envelope *env)
{
    if (env->body_case != QANAT__ENVELOPE__BODY_REQUEST) {
        self->stats.malformed_client_frames++;
        qn_engine_refuse (sock, routing_id, QANAT__REFUSAL_CODE__REFUSAL_BAD_REQUEST,
                          "clients send requests only");
        return;
    }
    qn_api_call_t call = { self, self->sender,
                           sock == self->api_sock? qn_engine_bridge_reply: s_client_reply,
                           routing_id };
    qn_api_handle (&call, env->request);
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
        if (principal)
            qn_engine_refuse_wrong_socket (self, sock, routing_id, agents);
        else
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

//  Applies one message of a ROUTER socket (routing id, payload; on the
//  request bridge routing id, credential, payload).  Anything else is
//  dropped and counted; a peer's first few drops are logged with its
//  identity, then it goes quiet so that a flood cannot fill the log.
static void
s_handle_message (qn_coordinator_t *self, zsock_t *sock, bool agents, zmsg_t *msg)
{
    bool bridge = sock == self->api_sock;
    zframe_t *routing_id = zmsg_pop (msg);
    zframe_t *credential = bridge? zmsg_pop (msg): NULL;
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
                    zmsg_size (msg) + (payload? 2: 1) + (credential? 1: 0),
                    agents? "agent": bridge? "HTTP": "client", peer);
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
                s_refuse_version (sock, routing_id, version, message);
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
            bool admitted = bridge? qn_engine_bridge_identify (self, routing_id, credential)
                                  : s_identify (self, sock, routing_id, payload, agents);
            if (admitted) {
                if (agents)
                    qn_agent_link_handle (self, routing_id, env);
                else
                    s_handle_client_message (self, sock, routing_id, env);
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
    zframe_destroy (&credential);
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
    qn_turn_end (self);
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

void
qn_engine_listen (qn_coordinator_t *self, bool on)
{
    if (on) {
        zloop_reader (self->loop, self->agents_sock, s_on_agents, self);
        zloop_reader (self->loop, self->clients_sock, s_on_clients, self);
        zloop_reader (self->loop, self->api_sock, s_on_clients, self);
    }
    else {
        zloop_reader_end (self->loop, self->agents_sock);
        zloop_reader_end (self->loop, self->clients_sock);
        zloop_reader_end (self->loop, self->api_sock);
    }
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
    //  systemd: alive (this loop turns), and a summary every 10 s
    qn_sdnotify_watchdog ();
    if (self->timer_turns % 40 == 1)
        qn_sdnotify_status ("%zu runs active, %zu agents connected",
                            zhashx_size (self->runs), zhashx_size (self->by_route));
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
    if (self->timer_turns % 4 == 1)             //  every second, from the start
        qn_scheduler_pass (self);
    qn_notify_tick (self);
    qn_api_backup_poll (self);
    qn_turn_end (self);
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
    zhashx_set_destructor (self->acks, qn_turn_pending_ack_destructor);
    self->outbox = zlistx_new ();
    zlistx_set_destructor (self->outbox, qn_turn_outgoing_destructor);

    self->store = qn_store_new (self->data_dir, config->durable, error_p);
    self->limits = self->store? qn_dispatch_limits_load (self, error_p): NULL;
    if (!self->store || !self->limits) {
        qn_coordinator_destroy (&self);
        return NULL;
    }
    if (!self->config.notify_give_up_s)
        self->config.notify_give_up_s = 24 * 3600;
    if (config->notify_file
    &&  !(self->notify_default = qn_wf_notify_load (config->notify_file, error_p))) {
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
    self->scheduler = qn_scheduler_new ();
    if (qn_turn_reload (self, error_p) || qn_store_commit (self->store)) {
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
    ||  s_bind (self->clients_sock, config->client_endpoint, &self->client_endpoint, error_p)
    ||  qn_engine_bridge_bind (self, error_p)) {
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
        qn_api_backup_destroy (&self->backup);     //  waits for its copy of the store
        qn_s3gc_destroy (&self->s3gc);
        qn_notify_destroy (&self->notifier);
        qn_wf_notify_destroy (&self->notify_default);
        zhashx_destroy (&self->s3_queued);
        zloop_destroy (&self->loop);
        zsock_destroy (&self->agents_sock);
        zsock_destroy (&self->clients_sock);
        qn_engine_bridge_close (self);
        qn_keyring_destroy (&self->keyring);
        qn_vault_destroy (&self->vault);
        qn_scheduler_destroy (&self->scheduler);
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
        qn_limits_destroy (&self->limits);
        zhashx_destroy (&self->admitted);
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
    qn_turn_end (self);
}

void
qn_coordinator_turn (qn_coordinator_t *self)
{
    s_read_socket (self, self->agents_sock, true);
    s_read_socket (self, self->clients_sock, false);
    s_read_socket (self, self->api_sock, false);
}

const char *
qn_coordinator_admin_key (qn_coordinator_t *self)
{
    return self->keyring? qn_keyring_admin_key_path (self->keyring): NULL;
}

const char *
qn_coordinator_http_credential (qn_coordinator_t *self)
{
    return self->keyring && *self->http_credential? self->http_credential: NULL;
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
    self->notifier = qn_notify_new (self);
    qn_engine_listen (self, true);
    zloop_timer (self->loop, 250, 0, s_on_timer, self);
    zloop_start (self->loop);
    qn_turn_end (self);
    return 0;
}
