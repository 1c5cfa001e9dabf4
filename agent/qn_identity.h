/*  qn_identity - the agent's identity: <data-dir>/agent.key, a czmq
    secret certificate (0600) with the agent's own key pair, made on this
    machine at enrolment (qn_enrol), and metadata "coordinator-key"
    (pinned), "endpoint", "name" and "labels" (as granted: k=v,k=v, with
    '%', ',', '=', quotes and non-printable bytes %-escaped).

    Loading checks what it reads: the public key must be the secret
    key's, the coordinator key and the name well formed; a file others
    may read is used, with a warning.  Saving writes aside and renames
    into place, so that a crash never leaves half a key file.
*/
#ifndef QN_IDENTITY_H_INCLUDED
#define QN_IDENTITY_H_INCLUDED

#include <czmq.h>
#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define QN_IDENTITY_FILE    "agent.key"

typedef struct _qn_identity_t qn_identity_t;

//  A fresh identity: a new key pair, the coordinator's public key (Z85)
//  to pin and the endpoint enrolled through; no name and no labels yet.
//  NULL on failure.
qn_identity_t *
    qn_identity_new (const char *coordinator_key, const char *endpoint);

//  Loads an identity file.  Hostile content is refused (missing or
//  malformed keys, a public key that is not the secret key's, a bad
//  coordinator key or name).  NULL with *error_p a malloc'd message.
qn_identity_t *
    qn_identity_load (const char *path, char **error_p);

//  Writes the identity (0600) beside path, then renames it into place
//  and syncs the directory.  0, or -1 with *error_p a malloc'd message.
int
    qn_identity_save (qn_identity_t *self, const char *path, char **error_p);

//  Destroys the identity and nulls the pointer.  Idempotent.
void
    qn_identity_destroy (qn_identity_t **self_p);

//  The key pair, owned by the identity.
zcert_t *
    qn_identity_cert (qn_identity_t *self);

const char *
    qn_identity_coordinator_key (qn_identity_t *self);

//  The endpoint the agent enrolled through; may be "".
const char *
    qn_identity_endpoint (qn_identity_t *self);

//  The agent's name; NULL until one is set (a fresh identity).
const char *
    qn_identity_name (qn_identity_t *self);

//  Sets the name (checked by the caller with qn_identity_name_ok): 0, or
//  -1 when out of memory.
int
    qn_identity_set_name (qn_identity_t *self, const char *name);

size_t
    qn_identity_label_count (qn_identity_t *self);

//  Arrays of label_count strings, owned by the identity.
const char **
    qn_identity_label_keys (qn_identity_t *self);

const char **
    qn_identity_label_values (qn_identity_t *self);

//  Adds a label (NULL key or value = ""): 0, or -1 when out of memory.
int
    qn_identity_add_label (qn_identity_t *self, const char *key, const char *value);

//  True for a valid agent name: 1 to 128 letters, digits, '_', '.', '-'.
bool
    qn_identity_name_ok (const char *name);

#ifdef __cplusplus
}
#endif
#endif
