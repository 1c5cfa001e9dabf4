/*  qn_api - the client request layer: every request kind a client may send
    (a Request of proto/qanat.proto), with the role it needs and its
    handler, in one table.

    A handler takes the decoded request and the caller's principal, and
    answers with one Reply through the call's reply function; it knows
    nothing of the transport.  The ZeroMQ client socket is one caller
    (qn_coordinator.c); another transport passes its own reply function
    and sink.  Replies must keep the engine's contract, durable before
    visible: the engine's reply function queues each reply in the outbox
    until the loop turn's commit succeeded, so whatever a transport does
    it must call qn_api_handle on the engine's loop thread, inside a turn.

    One of the files of the qn_coordinator class: it shares the engine's
    records (qn_engine.h), so the include checker counts it with
    qn_coordinator.
*/
#ifndef QN_API_H_INCLUDED
#define QN_API_H_INCLUDED

#include "qanat.h"
#include "qn_coordinator.h"

typedef struct _qn_api_call_t qn_api_call_t;

//  Takes the one reply to a request.  The reply is borrowed for the call
//  only: encode or copy it.
typedef void (qn_api_reply_fn) (qn_api_call_t *call, Qanat__Reply *reply);

//  One request being handled.
struct _qn_api_call_t {
    qn_coordinator_t *engine;
    const Qanat__Principal *principal;  //  the caller; NULL: a local admin (--insecure)
    qn_api_reply_fn *reply;             //  where the reply goes...
    void *sink;                         //  ...with the transport's routing (e.g. its id)
};

typedef enum {
    QN_API_USER,                        //  any admitted user
    QN_API_ADMIN                        //  users of role admin only
} qn_api_role_t;

typedef void (qn_api_handler_fn) (qn_api_call_t *call, Qanat__Request *request);

typedef struct {
    Qanat__Request__BodyCase body_case;
    qn_api_role_t role;                 //  the role needed
    qn_api_handler_fn *handler;
} qn_api_entry_t;

//  Handles one request: checks the role its kind needs, then calls its
//  handler.  Every path replies exactly once (an unknown kind, or a role
//  too low, gets an error reply).
void
    qn_api_handle (qn_api_call_t *call, Qanat__Request *request);

//  The row of a request kind, or NULL if there is none.
const qn_api_entry_t *
    qn_api_entry (Qanat__Request__BodyCase body_case);

//  For the handlers in the class's other files (qn_api_admin.c): an
//  error reply, and the caller's name for the log.
void
    qn_api_error (qn_api_call_t *call, uint64_t request_id, Qanat__ErrorCode code,
                  const char *message);
const char *
    qn_api_caller (qn_api_call_t *call);

//  The whole table (for tests and documentation).
const qn_api_entry_t *
    qn_api_table (size_t *count);

#endif
