/*  qn_http_bridge - the HTTP side's two doors into the engine.

    The HTTP server never touches engine state: every request it serves
    becomes the same protobuf Request the CLI sends, carried over an
    inproc DEALER to the engine's ROUTER (QN_HTTP_API_ENDPOINT) as two
    frames [credential][Envelope(Request)], answered by one frame
    [Envelope(Reply or Refusal)].  A bridge is one DEALER, made for one
    HTTP connection and used by that connection's thread only (ZeroMQ
    sockets are not thread-safe).

    Request ids are matched and stale replies dropped.  After a timeout
    the socket is closed and made again at the next call, so a late
    reply to a request the HTTP side gave up on can never be read as the
    answer to a later one (a Refusal carries no id).

    A watch is one SUB socket on the engine's change notifications
    (QN_HTTP_EVENTS_ENDPOINT: "run.<id>.", "runs.", "agents."), for the
    server-sent event streams: wait until one of the topics is published
    or a timeout passes.  The caller re-reads state through a bridge
    after each wake, so a notification lost in the subscription's first
    moments only delays an update until the next wake.
*/
#ifndef QN_HTTP_BRIDGE_H_INCLUDED
#define QN_HTTP_BRIDGE_H_INCLUDED

#include "qn_msg.h"

#ifdef __cplusplus
extern "C" {
#endif

#define QN_HTTP_API_ENDPOINT     "inproc://qanat-api"
#define QN_HTTP_EVENTS_ENDPOINT  "inproc://qanat-events"

//  What qn_http_bridge_call returns besides 0
#define QN_HTTP_BRIDGE_FAILED    -1     //  timeout or transport failure: 503
#define QN_HTTP_BRIDGE_REFUSED   -2     //  the engine refused the credential: 401

typedef struct _qn_http_bridge_t qn_http_bridge_t;
typedef struct _qn_http_watch_t qn_http_watch_t;

//  A bridge to the engine's request endpoint (NULL = QN_HTTP_API_ENDPOINT).
//  The socket is made at the first call.  Never NULL but out of memory.
qn_http_bridge_t *
    qn_http_bridge_new (const char *api_endpoint);

void
    qn_http_bridge_destroy (qn_http_bridge_t **self_p);

//  Sends request (its id is set here) with credential (NULL or "" =
//  none) and waits up to timeout_ms for its reply.  0 with *reply_p set
//  (free it with qanat__reply__free_unpacked (reply, NULL)); else one of
//  the codes above with *error_p set to a malloc'd message.
int
    qn_http_bridge_call (qn_http_bridge_t *self, const char *credential,
                         Qanat__Request *request, Qanat__Reply **reply_p,
                         int timeout_ms, char **error_p);

//  A SUB on the events endpoint (NULL = QN_HTTP_EVENTS_ENDPOINT),
//  subscribed to count topics.  NULL with *error_p on failure.
qn_http_watch_t *
    qn_http_watch_new (const char *events_endpoint, const char **topics, size_t count,
                       char **error_p);

void
    qn_http_watch_destroy (qn_http_watch_t **self_p);

//  What qn_http_watch_wait returns besides 0 (timeout) and -1 (failure)
#define QN_HTTP_WATCH_CHANGE     1      //  a notification came (all pending are read)
#define QN_HTTP_WATCH_PEER       2      //  peer_fd is readable or in error

//  Waits up to timeout_ms for a notification, and on peer_fd (a raw
//  socket, -1 for none) becoming readable or failing, so that a stream
//  whose client left ends at once.  A notification wins over the peer.
int
    qn_http_watch_wait (qn_http_watch_t *self, int timeout_ms, int peer_fd);

//  True when the peer of the connected socket fd has closed its side
//  (or the socket failed).  Never reads anything: data the peer sent
//  is left where it is.
bool
    qn_http_peer_closed (int fd);

#ifdef __cplusplus
}
#endif
#endif
