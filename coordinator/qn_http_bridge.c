/*  qn_http_bridge - the HTTP side's two doors into the engine: a DEALER
    for requests, a SUB for change notifications (see qn_http_bridge.h).
*/
#include "qn_http_bridge.h"
#include <poll.h>
#include <sys/socket.h>

struct _qn_http_bridge_t {
    char *endpoint;
    zsock_t *dealer;            //  made at the first call, again after a timeout
    uint64_t next_id;
};

struct _qn_http_watch_t {
    zsock_t *sub;
};

qn_http_bridge_t *
qn_http_bridge_new (const char *api_endpoint)
{
    qn_http_bridge_t *self = (qn_http_bridge_t *) calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->endpoint = strdup (api_endpoint? api_endpoint: QN_HTTP_API_ENDPOINT);
    if (!self->endpoint) {
        free (self);
        return NULL;
    }
    //  Ids that differ from one bridge to the next make a mix-up visible
    self->next_id = (uint64_t) (uintptr_t) self << 16;
    return self;
}

void
qn_http_bridge_destroy (qn_http_bridge_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    qn_http_bridge_t *self = *self_p;
    zsock_destroy (&self->dealer);
    free (self->endpoint);
    free (self);
    *self_p = NULL;
}

static int
s_fail (char **error_p, int code, const char *message)
{
    if (error_p)
        *error_p = strdup (message);
    return code;
}

//  Waits until sock is readable or the deadline passes: 1, 0, -1.
static int
s_wait_readable (zsock_t *sock, int64_t deadline_ms)
{
    while (true) {
        int64_t left = deadline_ms - zclock_mono ();
        if (left < 0)
            left = 0;
        zmq_pollitem_t item = { zsock_resolve (sock), 0, ZMQ_POLLIN, 0 };
        int rc = zmq_poll (&item, 1, (long) left);
        if (rc == -1 && errno == EINTR && left > 0)
            continue;
        return rc < 0? -1: rc > 0? 1: 0;
    }
}

//  Reads one reply frame; 1 = it answers id (*reply_p or a refusal),
//  0 = stale or not ours (dropped), -1 = unreadable.
static int
s_read_one (qn_http_bridge_t *self, uint64_t id, Qanat__Reply **reply_p, char **refusal_p)
{
    zmsg_t *msg = zmsg_recv (self->dealer);
    if (!msg)
        return -1;
    zframe_t *frame = zmsg_last (msg);
    qn_msg_status_t status = QN_MSG_OK;
    Qanat__Envelope *env = frame? qn_msg_decode (zframe_data (frame), zframe_size (frame),
                                                 &status, NULL): NULL;
    zmsg_destroy (&msg);
    if (!env)
        return 0;
    int rc = 0;
    if (env->body_case == QANAT__ENVELOPE__BODY_REFUSAL) {
        const char *text = env->refusal->message && *env->refusal->message
                         ? env->refusal->message: "not authorized";
        *refusal_p = strdup (text);
        rc = 1;
    }
    else
    if (env->body_case == QANAT__ENVELOPE__BODY_REPLY && env->reply->id == id) {
        *reply_p = env->reply;      //  detached: freed on its own by the caller
        env->reply = NULL;
        env->body_case = QANAT__ENVELOPE__BODY__NOT_SET;
        rc = 1;
    }
    qn_msg_free (&env);
    return rc;
}

int
qn_http_bridge_call (qn_http_bridge_t *self, const char *credential,
                     Qanat__Request *request, Qanat__Reply **reply_p,
                     int timeout_ms, char **error_p)
{
    *reply_p = NULL;
    if (!self->dealer) {
        self->dealer = zsock_new (ZMQ_DEALER);
        if (!self->dealer)
            return s_fail (error_p, QN_HTTP_BRIDGE_FAILED, "coordinator unavailable");
        qn_msg_prepare_socket (self->dealer);
        if (zsock_connect (self->dealer, "%s", self->endpoint) != 0) {
            zsock_destroy (&self->dealer);
            return s_fail (error_p, QN_HTTP_BRIDGE_FAILED, "coordinator unavailable");
        }
    }
    request->id = ++self->next_id;
    Qanat__Envelope env = QANAT__ENVELOPE__INIT;
    env.body_case = QANAT__ENVELOPE__BODY_REQUEST;
    env.request = request;
    zframe_t *payload = qn_msg_encode (&env);
    if (!payload)
        return s_fail (error_p, QN_HTTP_BRIDGE_FAILED, "cannot encode the request");
    zmsg_t *msg = zmsg_new ();
    zmsg_addmem (msg, credential? credential: "", credential? strlen (credential): 0);
    zmsg_append (msg, &payload);
    if (zmsg_send (&msg, self->dealer) != 0) {
        zmsg_destroy (&msg);
        zsock_destroy (&self->dealer);
        return s_fail (error_p, QN_HTTP_BRIDGE_FAILED, "coordinator unavailable");
    }
    int64_t deadline = zclock_mono () + (timeout_ms > 0? timeout_ms: 0);
    char *refusal = NULL;
    while (true) {
        int ready = s_wait_readable (self->dealer, deadline);
        if (ready <= 0)
            break;
        int rc = s_read_one (self, request->id, reply_p, &refusal);
        if (rc == -1)
            break;
        if (rc == 1) {
            if (!refusal)
                return 0;
            if (error_p)
                *error_p = refusal;
            else
                free (refusal);
            return QN_HTTP_BRIDGE_REFUSED;
        }
    }
    //  Given up: a new socket next time, so the late reply is never read
    zsock_destroy (&self->dealer);
    return s_fail (error_p, QN_HTTP_BRIDGE_FAILED, "coordinator busy");
}

//  ---------------------------------------------------------------------
//  Watches

qn_http_watch_t *
qn_http_watch_new (const char *events_endpoint, const char **topics, size_t count,
                   char **error_p)
{
    qn_http_watch_t *self = (qn_http_watch_t *) calloc (1, sizeof *self);
    if (!self) {
        s_fail (error_p, -1, "out of memory");
        return NULL;
    }
    self->sub = zsock_new (ZMQ_SUB);
    if (!self->sub
    ||  zsock_connect (self->sub, "%s", events_endpoint? events_endpoint
                                                      : QN_HTTP_EVENTS_ENDPOINT) != 0) {
        qn_http_watch_destroy (&self);
        s_fail (error_p, -1, "cannot watch the coordinator's changes");
        return NULL;
    }
    qn_msg_prepare_socket (self->sub);
    for (size_t i = 0; i < count; i++)
        zsock_set_subscribe (self->sub, topics [i]);
    return self;
}

void
qn_http_watch_destroy (qn_http_watch_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    zsock_destroy (&(*self_p)->sub);
    free (*self_p);
    *self_p = NULL;
}

int
qn_http_watch_wait (qn_http_watch_t *self, int timeout_ms, int peer_fd)
{
    zmq_pollitem_t items [2] = {
        { zsock_resolve (self->sub), 0, ZMQ_POLLIN, 0 },
        { NULL, peer_fd, ZMQ_POLLIN, 0 }
    };
    int rc = zmq_poll (items, peer_fd >= 0? 2: 1, timeout_ms > 0? timeout_ms: 0);
    if (rc == -1)
        return errno == EINTR? 0: -1;
    if (rc == 0)
        return 0;
    if (!(items [0].revents & ZMQ_POLLIN))
        return QN_HTTP_WATCH_PEER;
    //  One wake for a burst: whatever is pending now is taken at once
    zmq_pollitem_t item = { zsock_resolve (self->sub), 0, ZMQ_POLLIN, 0 };
    while (zmq_poll (&item, 1, 0) > 0 && (item.revents & ZMQ_POLLIN)) {
        zmsg_t *msg = zmsg_recv (self->sub);
        if (!msg)
            break;
        zmsg_destroy (&msg);
    }
    return QN_HTTP_WATCH_CHANGE;
}

bool
qn_http_peer_closed (int fd)
{
    //  POLLRDHUP sees the peer's FIN even behind data it sent first (a
    //  TLS close_notify alert, say), which a peeking recv cannot
    struct pollfd item = { fd, POLLIN | POLLRDHUP, 0 };
    int rc = poll (&item, 1, 0);
    if (rc == -1)
        return errno != EINTR && errno != ENOMEM;
    if (rc == 0)
        return false;
    if (item.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL))
        return true;
    char byte;
    ssize_t size = recv (fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    return size == 0
        || (size == -1 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}
