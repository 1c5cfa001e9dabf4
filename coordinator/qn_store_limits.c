/*  qn_store_limits - pool sizes and owners' weights, in the meta
    sub-database under "limits/":

        limits/pool/NAME     -> be32 size
        limits/weight/NAME   -> be32 weight

    Written in the turn of the request that sets them, so that they
    survive a crash once the reply has gone.

    One of the files of the qn_store class.
*/
#include "qn_store_internal.h"

#include <stdio.h>
#include <string.h>

#define S_PREFIX    "limits/"

static size_t
s_key (qn_store_t *self, char *key, size_t size, const char *kind, const char *name)
{
    if (store_check_name (self, kind, name))
        return 0;
    int len = snprintf (key, size, S_PREFIX "%s/%s", kind, name);
    return len > 0 && (size_t) len < size? (size_t) len: 0;
}

int
qn_store_limit_put (qn_store_t *self, const char *kind, const char *name, uint32_t value)
{
    char key [QN_STORE_KEY_MAX + 1];
    size_t key_size = s_key (self, key, sizeof key, kind, name);
    if (!key_size || store_need_txn (self))
        return -1;
    if (value == 0)
        return store_delete (self, DB_META, key, key_size);
    uint8_t be [4];
    store_be32_put (be, value);
    return store_put_raw (self, DB_META, key, key_size, be, sizeof be);
}

typedef struct {
    qn_store_limit_fn *visit;
    void *arg;
} s_each_t;

static store_scan_t
s_visit (qn_store_t *self, const MDB_val *key, const MDB_val *value, void *arg)
{
    (void) self;
    s_each_t *each = (s_each_t *) arg;
    size_t prefix = strlen (S_PREFIX);
    if (value->mv_size != 4 || key->mv_size <= prefix || key->mv_size > QN_STORE_KEY_MAX)
        return STORE_SCAN_NEXT;
    char text [QN_STORE_KEY_MAX + 1];
    memcpy (text, (const char *) key->mv_data + prefix, key->mv_size - prefix);
    text [key->mv_size - prefix] = 0;
    char *slash = strchr (text, '/');
    if (!slash || !slash [1])
        return STORE_SCAN_NEXT;
    *slash = 0;
    each->visit (text, slash + 1, store_be32_get ((const uint8_t *) value->mv_data), each->arg);
    return STORE_SCAN_NEXT;
}

int
qn_store_limit_each (qn_store_t *self, qn_store_limit_fn *visit, void *arg)
{
    MDB_txn *txn = store_read_begin (self);
    if (!txn)
        return -1;
    s_each_t each = { visit, arg };
    int rc = store_scan (self, txn, DB_META, S_PREFIX, strlen (S_PREFIX), NULL, 0, 0, s_visit,
                         &each);
    store_read_end (self, txn);
    return rc;
}
