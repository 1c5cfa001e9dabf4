/*  qn_keyring - who may talk to the coordinator, and as what.

    Holds the coordinator's CURVE key pair and every principal it admits:
    users (role admin or user), agents, and join tokens (short-lived keys
    good for one thing only, enrolment).  The principals live in the LMDB
    store; their public keys are mirrored as certificate files into
    <data-dir>/keys/allowed, the directory czmq's zauth reads, so that the
    ZAP handler admits exactly the allow-list at the CURVE handshake.  There
    is no allow-any mode.  Every message is checked again against the
    principal of its sender's key (libzmq's User-Id), which is what makes a
    revocation take effect at once, on live connections too.

    API tokens (bearer tokens of the HTTP API) are principals too, of kind
    "apitoken": only the SHA-256 of each token is stored (with its name,
    user, role, expiry and whether it was revoked), and a token is found
    by hashing what the client presents.  They never reach the ZAP
    allow-list: they are no CURVE keys.

    Files (all 0600, in a 0700 directory):
      keys/coordinator.key   the coordinator's key pair
      keys/admin.key         the first admin's client key (with the
                             coordinator key and endpoint in its metadata)
*/
#ifndef QN_KEYRING_H_INCLUDED
#define QN_KEYRING_H_INCLUDED

#include <czmq.h>
#include "qn_store.h"

typedef struct _qn_keyring_t qn_keyring_t;

//  Opens the keyring of a data directory, creating the coordinator key and
//  the admin key on first use, and starts zauth.  client_endpoint and
//  agent_endpoint go into key files and tokens.  NULL on failure.
qn_keyring_t *
    qn_keyring_new (const char *data_dir, qn_store_t *store, const char *client_endpoint,
                    const char *agent_endpoint, char **error_p);

void
    qn_keyring_destroy (qn_keyring_t **self_p);

//  Makes sock a CURVE server with the coordinator's key, under ZAP.
void
    qn_keyring_secure (qn_keyring_t *self, zsock_t *sock);

const char *
    qn_keyring_public_key (qn_keyring_t *self);

const char *
    qn_keyring_admin_key_path (qn_keyring_t *self);

//  The principal behind a public key (Z85), if admitted: not revoked, and
//  for tokens not expired and not used up.  Not owned by the caller.
const Qanat__Principal *
    qn_keyring_lookup (qn_keyring_t *self, const char *public_key);

//  The admitted user named name, or NULL.  Not owned by the caller.
const Qanat__Principal *
    qn_keyring_user (qn_keyring_t *self, const char *name);

//  A new join token (a malloc'd string).  ttl_s 0 = 1 hour, uses 0 = 1.
//  Writes into the store's open transaction.
char *
    qn_keyring_create_token (qn_keyring_t *self, uint32_t ttl_s, uint32_t uses,
                             Qanat__Label **labels, size_t label_count, int64_t *expires_p,
                             char **id_p);

//  An agent enrols with a token: token_key is the key it connected with,
//  public_key its own (32 bytes).  The agent is admitted under name with
//  the token's labels (the agent may ask for a subset, never more).  One
//  use of the token is spent.  Returns the agent's principal (not owned),
//  or NULL with *error_p a malloc'd reason.
const Qanat__Principal *
    qn_keyring_enrol (qn_keyring_t *self, const char *token_key, const char *name,
                      const uint8_t *public_key, size_t key_size, Qanat__Label **labels,
                      size_t label_count, char **error_p);

//  Adds a user with a fresh key pair; returns the client key file text
//  (malloc'd: it holds the secret key, show it once), or NULL and *error_p.
char *
    qn_keyring_add_user (qn_keyring_t *self, const char *name, const char *role, char **error_p);

//  Revokes every key of agent name.  0, or -1 when no such agent.
int
    qn_keyring_revoke_agent (qn_keyring_t *self, const char *name);

//  ---- administration: listing, revoking, forgetting, relabelling ----

//  Why an administrative change failed
typedef enum {
    QN_KEYRING_NOT_FOUND = 1,           //  no such principal (live, where it says)
    QN_KEYRING_REFUSED,                 //  it would leave the coordinator without an admin
    QN_KEYRING_BAD,                     //  a bad label
    QN_KEYRING_FAILED                   //  the store failed
} qn_keyring_change_t;

//  Every principal of kind ("user", "token", "agent"), revoked ones too,
//  by name then creation: a malloc'd array of borrowed records, valid
//  until the keyring changes.
const Qanat__Principal **
    qn_keyring_list (qn_keyring_t *self, const char *kind, size_t *count_p);

//  Revokes the live user name: its key is refused from the next message
//  on.  The last admin is not revoked.  Its record (not owned), or NULL
//  with *failure_p and *error_p (malloc'd).
const Qanat__Principal *
    qn_keyring_revoke_user (qn_keyring_t *self, const char *name,
                            qn_keyring_change_t *failure_p, char **error_p);

//  Revokes the join token id (no more enrolments with it).  Its record
//  (not owned), or NULL when there is no token of that id.  Revoking a
//  revoked one changes nothing.
const Qanat__Principal *
    qn_keyring_revoke_token (qn_keyring_t *self, const char *id);

//  The live (not revoked) principal of agent name, or NULL.  Not owned.
const Qanat__Principal *
    qn_keyring_agent (qn_keyring_t *self, const char *name);

//  Forgets agent name: every key it had leaves the store and the
//  allow-list.  The number of keys forgotten (0: none known), or -1 when
//  the store failed.
int
    qn_keyring_forget_agent (qn_keyring_t *self, const char *name);

//  Changes the labels of the live agent name: set adds or replaces
//  key=value, remove takes keys away.  Its record (not owned), or NULL
//  with *failure_p and *error_p (malloc'd).
const Qanat__Principal *
    qn_keyring_label_agent (qn_keyring_t *self, const char *name, Qanat__Label **set,
                            size_t set_count, char **remove, size_t remove_count,
                            qn_keyring_change_t *failure_p, char **error_p);

//  ---- API tokens ----

//  Token names (and their users) are 1 to 64 letters, digits, '.', '_', '-'
#define QN_KEYRING_API_NAME_MAX  64

//  Why creating an API token failed
typedef enum {
    QN_KEYRING_INVALID,                 //  a bad name, user or role
    QN_KEYRING_EXISTS,                  //  a token of that name exists (not revoked)
    QN_KEYRING_STORE                    //  the store failed
} qn_keyring_failure_t;

//  A new API token ("qat_" and 43 characters; malloc'd: show it once).
//  user NULL or empty = name; ttl_s 0 = no expiry.  *record_p (not owned)
//  is its record, without the token.  Writes into the store's open
//  transaction.  NULL with *error_p (malloc'd) and *failure_p on failure.
char *
    qn_keyring_create_api_token (qn_keyring_t *self, const char *name, const char *role,
                                 const char *user, uint32_t ttl_s,
                                 const Qanat__ApiToken **record_p,
                                 qn_keyring_failure_t *failure_p, char **error_p);

//  Revokes the API token name, for good.  Its record (not owned), or NULL
//  when there is none of that name.  Revoking a revoked one changes nothing.
const Qanat__ApiToken *
    qn_keyring_revoke_api_token (qn_keyring_t *self, const char *name);

//  Every API token's record (revoked and expired ones too), by name: a
//  malloc'd array of borrowed records, valid until the keyring changes.
const Qanat__ApiToken **
    qn_keyring_api_tokens (qn_keyring_t *self, size_t *count_p);

//  The principal of an API token as a client presents it (kind
//  "apitoken", name its user, role its role), or NULL when it is unknown,
//  revoked or expired.  Not owned by the caller.
const Qanat__Principal *
    qn_keyring_lookup_token (qn_keyring_t *self, const char *token_text);

//  Drops expired and used-up tokens from the allow-list.
void
    qn_keyring_expire (qn_keyring_t *self);

#endif
