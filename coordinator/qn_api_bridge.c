/*  qn_api_bridge - the engine's end of the HTTP side's two sockets.

    The HTTP server runs on threads of its own and never touches the
    engine's records or the store: it passes each request over the
    request bridge, a ROUTER the engine binds (inproc://qanat-api by
    default), as [credential][payload] from a DEALER of its own, and
    waits on the notifications, a PUB (inproc://qanat-events), to know
    when to read again.

    A bridge request is the same Request a CLI sends, handled by qn_api
    like any other; only the caller is found differently: by an API token
    (the credential frame, the bearer token as the client sent it) rather
    than a CURVE key.  Its reply waits in the outbox for the turn's
    commit, like a client's: durable before visible.

    Notifications are single frames of text, published after a commit
    succeeded (never before, nothing after a failed one), each at most
    once per turn:
        run.<id>.     run <id> changed (tasks, attempts, logs, metrics, checks)
        runs.         a run was created, or a run's status changed
        agents.       an agent's record changed (registered, lost, drained, revoked...)
    The trailing dot makes a prefix subscription exact ("run.1." is not
    a prefix of "run.12.").

    One of the files of the qn_coordinator class: it shares the engine's
    records (qn_engine.h), so the include checker counts it with
    qn_coordinator.
*/
#include "qn_engine.h"
#include "qn_log.h"
#include "qn_turn.h"
#include <sodium.h>

//  A credential longer than this is no token of ours
#define CREDENTIAL_MAX  256

int
qn_engine_bridge_bind (qn_coordinator_t *self, char **error_p)
{
    const char *api = self->config.api_endpoint? self->config.api_endpoint
                                               : QN_COORDINATOR_API_ENDPOINT;
    const char *events = self->config.events_endpoint? self->config.events_endpoint
                                                     : QN_COORDINATOR_EVENTS_ENDPOINT;
    self->api_sock = zsock_new (ZMQ_ROUTER);
    self->events_sock = zsock_new (ZMQ_PUB);
    if (!self->api_sock || !self->events_sock) {
        *error_p = strdup ("cannot make the HTTP side's sockets");
        return -1;
    }
    //  The same size limit as the client socket, no waiting on reads
    qn_msg_prepare_socket (self->api_sock);
    zsock_set_router_mandatory (self->api_sock, 0);
    zsock_set_rcvtimeo (self->api_sock, 0);
    if (zsock_bind (self->api_sock, "%s", api) == -1) {
        *error_p = zsys_sprintf ("cannot bind the HTTP side's sockets (%s): %s", api,
                                 zmq_strerror (zmq_errno ()));
        return -1;
    }
    self->api_endpoint = strdup (api);
    if (zsock_bind (self->events_sock, "%s", events) == -1) {
        *error_p = zsys_sprintf ("cannot bind the HTTP side's sockets (%s): %s", events,
                                 zmq_strerror (zmq_errno ()));
        return -1;
    }
    self->events_endpoint = strdup (events);
    //  A fresh secret each start, never stored, never sent over a network
    uint8_t secret [32];
    randombytes_buf (secret, sizeof secret);
    memcpy (self->http_credential, "qhs_", 4);
    sodium_bin2hex (self->http_credential + 4, sizeof self->http_credential - 4,
                    secret, sizeof secret);
    sodium_memzero (secret, sizeof secret);
    Qanat__Principal reader = QANAT__PRINCIPAL__INIT;
    reader.kind = "local";
    reader.name = "qanatd-http";
    reader.role = "user";
    self->http_reader = reader;
    return 0;
}

void
qn_engine_bridge_close (qn_coordinator_t *self)
{
    //  Closing a socket frees its endpoints later, on libzmq's own thread;
    //  unbinding frees them now
    if (self->api_sock && self->api_endpoint)
        zsock_unbind (self->api_sock, "%s", self->api_endpoint);
    if (self->events_sock && self->events_endpoint)
        zsock_unbind (self->events_sock, "%s", self->events_endpoint);
    zsock_destroy (&self->api_sock);
    zsock_destroy (&self->events_sock);
    zstr_free (&self->api_endpoint);
    zstr_free (&self->events_endpoint);
    sodium_memzero (self->http_credential, sizeof self->http_credential);
}

bool
qn_engine_bridge_identify (qn_coordinator_t *self, zframe_t *routing_id, zframe_t *credential)
{
    self->sender = NULL;
    if (!self->keyring)
        return true;
    size_t size = zframe_size (credential);
    const char *why = "an API token is needed";
    if (size > 0) {
        why = "this API token is not admitted (unknown, revoked or expired)";
        char text [CREDENTIAL_MAX + 1];
        if (size <= CREDENTIAL_MAX && !memchr (zframe_data (credential), '\0', size)) {
            memcpy (text, zframe_data (credential), size);
            text [size] = '\0';
            self->sender = qn_keyring_lookup_token (self->keyring, text);
            if (!self->sender && *self->http_credential
            &&  size == strlen (self->http_credential)
            &&  sodium_memcmp (text, self->http_credential, size) == 0)
                self->sender = &self->http_reader;
            sodium_memzero (text, sizeof text);
        }
    }
    if (self->sender)
        return true;
    self->stats.denied++;
    //  Never the token itself in the log
    qn_log (QN_LOG_WARNING, "coordinator", "refused an HTTP request: %s", why);
    qn_engine_refuse (self->api_sock, routing_id, QANAT__REFUSAL_CODE__REFUSAL_DENIED, why);
    return false;
}

void
qn_engine_bridge_reply (qn_api_call_t *call, Qanat__Reply *reply)
{
    qn_coordinator_t *self = call->engine;
    Qanat__Envelope env = QANAT__ENVELOPE__INIT;
    env.body_case = QANAT__ENVELOPE__BODY_REPLY;
    env.reply = reply;
    qn_turn_post (self, self->api_sock, (zframe_t *) call->sink, &env, reply->id);
}

//  ---------------------------------------------------------------------
//  Notifications

static int
s_compare_ids (const void *a, const void *b)
{
    uint64_t one = *(const uint64_t *) a, other = *(const uint64_t *) b;
    return one < other? -1: one > other;
}

static void
s_publish (qn_coordinator_t *self, const char *topic)
{
    //  A PUB never blocks: a subscriber that lags loses messages, and
    //  reads again anyway
    zstr_send (self->events_sock, topic);
}

void
qn_engine_publish (qn_coordinator_t *self, zlistx_t *changed)
{
    size_t count = changed? zlistx_size (changed): 0;
    uint64_t *ids = count? (uint64_t *) malloc (count * sizeof (uint64_t)): NULL;
    size_t listed = 0;
    if (ids) {
        for (run_t *run = (run_t *) zlistx_first (changed); run;
             run = (run_t *) zlistx_next (changed))
            ids [listed++] = run->id;
        qsort (ids, listed, sizeof (uint64_t), s_compare_ids);
    }
    if (self->events_sock) {
        for (size_t i = 0; i < listed; i++)
            if (i == 0 || ids [i] != ids [i - 1]) {
                char topic [32];
                snprintf (topic, sizeof topic, "run.%llu.", (unsigned long long) ids [i]);
                s_publish (self, topic);
            }
        if (self->runs_changed)
            s_publish (self, "runs.");
        if (self->agents_changed)
            s_publish (self, "agents.");
    }
    free (ids);
    self->runs_changed = false;
    self->agents_changed = false;
}
