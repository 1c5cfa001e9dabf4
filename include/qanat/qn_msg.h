/*  qn_msg - encode and decode protocol envelopes, send and receive them on
    ZeroMQ sockets.

    Every message on the wire is one frame holding one qanat.Envelope (see
    proto/qanat.proto).  Decoding treats its input as hostile: an oversized
    buffer, a buffer protobuf-c cannot unpack, an envelope with no body, or
    a version we do not speak are all reported as errors, never crashes.
*/
#ifndef QN_MSG_H_INCLUDED
#define QN_MSG_H_INCLUDED

#include <czmq.h>
#include "qanat.pb-c.h"

#ifdef __cplusplus
extern "C" {
#endif

#define QN_PROTOCOL_VERSION  1
//  Largest envelope we accept; also set as ZMQ_MAXMSGSIZE on our sockets.
#define QN_MAX_MESSAGE_SIZE  (16 * 1024 * 1024)

typedef enum {
    QN_MSG_OK = 0,
    QN_MSG_TOO_LARGE,
    QN_MSG_MALFORMED,     //  not a protobuf envelope, or no body
    QN_MSG_BAD_VERSION    //  decoded, but a version we do not speak
} qn_msg_status_t;

//  Encodes env (setting env->version) into a new frame.  NULL on failure.
zframe_t *
    qn_msg_encode (Qanat__Envelope *env);

//  Decodes size bytes.  Returns the envelope, or NULL with *status saying
//  why.  For QN_MSG_BAD_VERSION, *version_p (if not NULL) gets the version.
Qanat__Envelope *
    qn_msg_decode (const void *data, size_t size, qn_msg_status_t *status, uint32_t *version_p);

//  Frees a decoded envelope and nulls the pointer.  Idempotent.
void
    qn_msg_free (Qanat__Envelope **env_p);

//  Sends env on sock, prefixed by routing_id when not NULL (ROUTER sockets).
//  Does not take ownership of routing_id.  Returns 0 or -1.
int
    qn_msg_send (zsock_t *sock, zframe_t *routing_id, Qanat__Envelope *env);

//  Human name of a status.
const char *
    qn_msg_status_str (qn_msg_status_t status);

//  Applies the socket options every qanat socket uses (max message size,
//  linger).  Returns 0 or -1.
int
    qn_msg_prepare_socket (zsock_t *sock);

//  Lower-case names of statuses, as the CLI prints them.
const char *
    qn_task_status_name (Qanat__TaskStatus status);
const char *
    qn_run_status_name (Qanat__RunStatus status);

//  A run status from its word as scripts give it: queued, running,
//  succeeded, succeeded_with_warnings, failed, canceled (the enum's name
//  without RUN_, lower case).  0 with *status_p, or -1.
int
    qn_run_status_parse (const char *word, Qanat__RunStatus *status_p);

//  Current wall-clock time in microseconds.
int64_t
    qn_now_us (void);


#ifdef __cplusplus
}
#endif
#endif
