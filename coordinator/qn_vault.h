/*  qn_vault - secrets, encrypted at rest.

    Values are sealed with libsodium's secretbox (XSalsa20-Poly1305) under
    a 32-byte key kept in <data-dir>/keys/secrets.key (0600), and stored in
    the LMDB store as nonce + ciphertext.  The store, its backups and its
    dumps never hold a value in clear.

    Workflows refer to a secret in a task's env as ${{ secrets.NAME }}; the
    coordinator puts the value in the assignment of the attempt that needs
    it (over CURVE), and tells the agent to redact it from the logs.
*/
#ifndef QN_VAULT_H_INCLUDED
#define QN_VAULT_H_INCLUDED

#include "qn_store.h"

typedef struct _qn_vault_t qn_vault_t;

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

#endif
