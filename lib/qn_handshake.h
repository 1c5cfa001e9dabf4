/*  qn_handshake - watches the CURVE handshakes of a socket.

    A coordinator whose ZAP handler refuses our key (revoked, and it
    restarted since, so no connection is left to carry a Refusal) only
    shows in libzmq's socket events: HANDSHAKE_FAILED_AUTH with the ZAP
    status code.  400 is a final no; 300 and 500 are the handler's own
    trouble and we keep trying.

    The events come on a PAIR socket (qn_handshake_sock) to poll beside
    the watched one: handshake succeeded, failed (auth, protocol, no
    detail) and disconnected.  Used by the agent engine (qn_agent), by
    enrolment (qn_enrol) and by the client (qn_client), which must say at
    once that its key is refused instead of timing out.
*/
#ifndef QN_HANDSHAKE_H_INCLUDED
#define QN_HANDSHAKE_H_INCLUDED

#include <czmq.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _qn_handshake_t qn_handshake_t;

//  Starts monitoring sock's handshakes on a fresh PAIR socket (an inproc
//  endpoint of its own).  sock must outlive the monitor.  NULL on
//  failure.
qn_handshake_t *
    qn_handshake_new (zsock_t *sock);

//  Stops monitoring, destroys the PAIR socket and nulls the pointer.
//  Idempotent.
void
    qn_handshake_destroy (qn_handshake_t **self_p);

//  The PAIR socket the events come on, to poll.
zsock_t *
    qn_handshake_sock (qn_handshake_t *self);

//  Reads one event (ZMQ_EVENT_*) and its value (for
//  HANDSHAKE_FAILED_AUTH, the ZAP status code): 0, or -1.
int
    qn_handshake_read (qn_handshake_t *self, uint16_t *event_p, uint32_t *value_p);

#ifdef __cplusplus
}
#endif
#endif
