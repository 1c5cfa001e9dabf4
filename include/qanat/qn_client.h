/*  qn_client - talk to a coordinator's client socket.

    One DEALER socket, one request at a time.  Every call has a deadline: a
    coordinator that cannot be reached gives a clear error, never a hang.
*/
#ifndef QN_CLIENT_H_INCLUDED
#define QN_CLIENT_H_INCLUDED

#include "qn_msg.h"

#ifdef __cplusplus
extern "C" {
#endif

//  Default client endpoint of a coordinator on this machine.
#define QN_DEFAULT_CLIENT_ENDPOINT  "tcp://127.0.0.1:7710"
#define QN_DEFAULT_AGENT_ENDPOINT   "tcp://127.0.0.1:7711"

typedef struct _qn_client_t qn_client_t;

//  Connects to endpoint (NULL: $QANAT_COORDINATOR, else the endpoint in
//  the key file, else the default) with the default client key (see
//  qn_client_new_keyed).  timeout_ms bounds every call.  NULL on failure.
qn_client_t *
    qn_client_new (const char *endpoint, int timeout_ms);

//  Connects with CURVE using the client key file key_path (made by
//  `qanatd` for its admin, or by `qanat user add`; it also carries the
//  coordinator's public key).  key_path NULL: $QANAT_KEY, else
//  ~/.qanat/client.key, else ~/.qanat/coordinator/keys/admin.key, else
//  plaintext.  key_path "none": plaintext, for a coordinator run with
//  --insecure.  NULL on failure with *error_p a malloc'd message.
qn_client_t *
    qn_client_new_keyed (const char *endpoint, const char *key_path, int timeout_ms,
                         char **error_p);

void
    qn_client_destroy (qn_client_t **self_p);

const char *
    qn_client_endpoint (qn_client_t *self);

//  Why a call (or qn_client_new_keyed) failed, for a program to act on:
//  the CLI turns it into its exit code.
typedef enum {
    QN_CLIENT_OK = 0,
    QN_CLIENT_ERROR,            //  an Error reply: its code is qn_client_error_code
    QN_CLIENT_REFUSED,          //  a Refusal: its code is qn_client_refusal_code
    QN_CLIENT_DENIED,           //  the CURVE handshake failed: no key, or one not admitted
    QN_CLIENT_UNREACHABLE,      //  no answer before the deadline
    QN_CLIENT_INTERRUPTED,      //  SIGINT or SIGTERM stopped the wait
    QN_CLIENT_BAD_KEY,          //  the key file is missing or is not a client key
    QN_CLIENT_LOCAL             //  the request could not be sent (too large, no memory)
} qn_client_failure_t;

//  Sends request (its id is set here) and waits for the matching reply.
//  Returns the reply envelope (free with qn_msg_free), whose ->reply is
//  set, or NULL with *error_p a malloc'd message.  A reply of type Error is
//  returned as NULL too, with its message in *error_p.  An interrupt
//  (SIGINT or SIGTERM, zsys_interrupted) stops the wait: NULL with
//  "interrupted".
Qanat__Envelope *
    qn_client_call (qn_client_t *self, Qanat__Request *request, char **error_p);

//  Why the last call failed; QN_CLIENT_OK after a reply.
qn_client_failure_t
    qn_client_failure (qn_client_t *self);

//  The Qanat__ErrorCode of the last Error reply (QN_CLIENT_ERROR)
int
    qn_client_error_code (qn_client_t *self);

//  The Qanat__RefusalCode of the last Refusal (QN_CLIENT_REFUSED)
uint32_t
    qn_client_refusal_code (qn_client_t *self);

//  Like qn_client_new_keyed, but on failure also says why in *failure_p
//  (QN_CLIENT_BAD_KEY or QN_CLIENT_LOCAL).  failure_p may be NULL.
qn_client_t *
    qn_client_new_checked (const char *endpoint, const char *key_path, int timeout_ms,
                           qn_client_failure_t *failure_p, char **error_p);

#ifdef __cplusplus
}
#endif
#endif
