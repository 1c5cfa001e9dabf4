/*  qn_vault - secrets, encrypted at rest.

    Values are sealed with libsodium's secretbox (XSalsa20-Poly1305) under
    a 32-byte key kept in <data-dir>/keys/secrets.key (0600), and stored in
    the LMDB store as nonce + ciphertext.  The store, its backups and its
    dumps never hold a value in clear.

    Workflows refer to a secret in a task's env as ${{ secrets.NAME }}; the
    coordinator puts the value in the assignment of the attempt that needs
    it (over CURVE), and tells the agent to redact it from the logs.

    Redaction cannot stop a task that transforms a value, so what guards a
    secret is who may use it: its access list (SecretAccess, kept apart
    from the sealed value).  The run's owner must match a user: or role:
    entry; when there are workflow: entries the run's workflow must be one
    of them; the agent that gets the value must carry every agent label.
    A secret without a list is for role admin only.
*/
#ifndef QN_VAULT_H_INCLUDED
#define QN_VAULT_H_INCLUDED

#include "qn_store.h"
#include "qn_workflow.h"

typedef struct _qn_vault_t qn_vault_t;

//  The largest value, in bytes
#define QN_VAULT_SECRET_MAX     (64 * 1024)

//  Opens the vault of a data directory, creating its key on first use.
qn_vault_t *
    qn_vault_new (const char *data_dir, qn_store_t *store, char **error_p);

void
    qn_vault_destroy (qn_vault_t **self_p);

//  Seals and stores a value (in the store's open transaction).  0 or -1.
int
    qn_vault_set (qn_vault_t *self, const char *name, const void *value, size_t size);

//  The value of a secret, malloc'd and NUL-terminated, or NULL when it is
//  not set or cannot be opened (a wrong key, a damaged record).
char *
    qn_vault_get (qn_vault_t *self, const char *name);

//  Replaces every ${{ secrets.NAME }} in text with the value.  Returns a
//  malloc'd string; each value used is appended to redact (a zlistx of
//  strings the caller owns).  NULL with *error_p set when a secret is
//  missing or the reference is malformed.
char *
    qn_vault_expand (qn_vault_t *self, const char *text, zlistx_t *redact, char **error_p);

//  Replaces who may use secret name (in the store's open transaction),
//  after checking every entry; a list without user: or role: entries gets
//  role:admin, so that the stored list is the whole truth.  0, or -1 with
//  *error_p (malloc'd).
int
    qn_vault_set_access (qn_vault_t *self, const char *name, const Qanat__SecretAccess *access,
                         char **error_p);

//  Who may use secret name: its list, or role:admin when none is stored.
//  Free with protobuf_c_message_free_unpacked.  NULL when unreadable.
Qanat__SecretAccess *
    qn_vault_access (qn_vault_t *self, const char *name);

//  One use of a secret: the run's owner, its workflow, and the labels it
//  is sure to run with (a task's on: selector when the run starts, the
//  agent's labels when the attempt is handed out).
typedef struct {
    const char *user;
    const char *role;           //  NULL: the owner is not an admitted user now
    const char *workflow;
    const qn_kv_t *labels;
    size_t label_count;
    const char *labels_of;      //  for the reason: "task T does not select"
} qn_vault_use_t;

//  NULL when use may have secret name, else why not (malloc'd; it names
//  the secret and the list, never the value).
char *
    qn_vault_refusal (qn_vault_t *self, const char *name, const qn_vault_use_t *use);

//  Appends the name of every secret text refers to (${{ secrets.NAME }})
//  to names (a zlistx of strings the caller owns).  0, or -1 with
//  *error_p when a reference is malformed.
int
    qn_vault_references (const char *text, zlistx_t *names, char **error_p);

#endif
