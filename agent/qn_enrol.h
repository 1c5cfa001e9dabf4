/*  qn_enrol - enrols an agent with a join token (qanat-agent --join).

    Makes the agent's key pair (the secret key never leaves this
    machine), connects with the token's key to the coordinator the token
    pins, sends Enrol{name, our public key, labels} and waits for the
    answer (bounded).  Enrolled -> the identity (qn_identity), with the
    labels granted, is saved and returned.  A refusal, a handshake the
    coordinator refuses, or no answer -> an error for the operator.
*/
#ifndef QN_ENROL_H_INCLUDED
#define QN_ENROL_H_INCLUDED

#include "qn_identity.h"

#ifdef __cplusplus
extern "C" {
#endif

#define QN_ENROL_TIMEOUT_MS     10000

typedef struct {
    const char *token;              //  the join token text
    const char *endpoint;           //  NULL or "" = the token's
    const char *name;
    const char **label_keys;        //  labels asked for (label_count each)
    const char **label_values;
    size_t label_count;
    const char *path;               //  where the identity is saved
    int timeout_ms;                 //  0 = QN_ENROL_TIMEOUT_MS
} qn_enrol_request_t;

//  Enrols as request says.  Enrolled -> the identity, saved at path
//  (0600, written aside and renamed into place).  Else NULL with
//  *error_p a malloc'd message for the operator.
qn_identity_t *
    qn_enrol_join (const qn_enrol_request_t *request, char **error_p);

#ifdef __cplusplus
}
#endif
#endif
