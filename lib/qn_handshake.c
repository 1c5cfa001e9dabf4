/*  qn_handshake - watches the CURVE handshakes of a socket.
    See qn_handshake.h.
*/
#include "qn_handshake.h"

#include <assert.h>
#include <string.h>
#include <unistd.h>

struct _qn_handshake_t {
    zsock_t *sock;              //  the socket watched (not owned)
    zsock_t *monitor;           //  the PAIR socket its events come on
    char *endpoint;             //  the inproc endpoint between the two
};

qn_handshake_t *
qn_handshake_new (zsock_t *sock)
{
    assert (sock);
    //  Each monitor in this process needs an endpoint of its own.  The
    //  counter is this class's one mutable static: call from one thread
    //  (the agent.s and the CLI.s main threads do).
    static unsigned int counter = 0;
    char *endpoint = zsys_sprintf ("inproc://qn-monitor-%d-%u", (int) getpid (),
                                   counter++);
    if (!endpoint)
        return NULL;
    int events = ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH
               | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL
               | ZMQ_EVENT_DISCONNECTED;
    zsock_t *monitor = NULL;
    if (zmq_socket_monitor (zsock_resolve (sock), endpoint, events) == 0) {
        monitor = zsock_new (ZMQ_PAIR);
        if (monitor && zsock_connect (monitor, "%s", endpoint) == -1)
            zsock_destroy (&monitor);
    }
    qn_handshake_t *self = monitor? (qn_handshake_t *) calloc (1, sizeof (*self)): NULL;
    if (!self) {
        zsock_destroy (&monitor);
        zmq_socket_monitor (zsock_resolve (sock), NULL, 0);
        zstr_free (&endpoint);
        return NULL;
    }
    self->sock = sock;
    self->monitor = monitor;
    self->endpoint = endpoint;
    return self;
}

void
qn_handshake_destroy (qn_handshake_t **self_p)
{
    assert (self_p);
    qn_handshake_t *self = *self_p;
    if (!self)
        return;
    zmq_socket_monitor (zsock_resolve (self->sock), NULL, 0);
    zsock_destroy (&self->monitor);
    zstr_free (&self->endpoint);
    free (self);
    *self_p = NULL;
}

zsock_t *
qn_handshake_sock (qn_handshake_t *self)
{
    assert (self);
    return self->monitor;
}

int
qn_handshake_read (qn_handshake_t *self, uint16_t *event_p, uint32_t *value_p)
{
    assert (self);
    zmsg_t *msg = zmsg_recv (self->monitor);
    if (!msg)
        return -1;
    zframe_t *frame = zmsg_first (msg);
    int rc = -1;
    if (frame && zframe_size (frame) == 6) {
        memcpy (event_p, zframe_data (frame), 2);
        memcpy (value_p, zframe_data (frame) + 2, 4);
        rc = 0;
    }
    zmsg_destroy (&msg);
    return rc;
}
