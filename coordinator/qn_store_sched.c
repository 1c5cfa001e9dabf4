/*  qn_store_sched - the scheduler's records: ticks, cursors, paused
    workflows, runs whose end may trigger others, and the triggers fired.
    One of the files of the qn_store class (see qn_store.c).

        sched_ticks      name '\0' be32 schedule be64 tick (s) -> be64 run_id, reason
        sched_cursors    name '\0' be32 schedule -> be64 last tick considered (s)
        sched_paused     name -> empty
        sched_pending    be64 run_id -> empty (ended; its triggers not yet fired)
        sched_triggered  be64 upstream run_id, name -> be64 run_id started

    A tick's record and the run it starts are written in the same
    transaction (the scheduler's turn), so that the record is the
    idempotency key: after a crash either both are there or neither.
*/
#include "qn_store_internal.h"

#include <string.h>

//  name '\0' be32 index [be64 tick]; 0 when the name does not fit
static size_t
s_tick_key (qn_store_t *self, uint8_t *key, const char *name, uint32_t index, bool with_tick,
            int64_t tick)
{
    if (store_check_name (self, "workflow", name))
        return 0;
    size_t len = strlen (name);
    memcpy (key, name, len + 1);
    store_be32_put (key + len + 1, index);
    if (with_tick)
        store_be64_put (key + len + 5, (uint64_t) tick);
    return len + 5 + (with_tick? 8: 0);
}

static int
s_tick_decode (qn_store_t *self, const MDB_val *value, int64_t tick, qn_store_tick_t *out)
{
    if (value->mv_size < 8 || value->mv_size > 8 + sizeof out->reason - 1) {
        store_set_error (self, "corrupt schedule tick record");
        return -1;
    }
    memset (out, 0, sizeof *out);
    out->tick = tick;
    out->run_id = store_be64_get ((const uint8_t *) value->mv_data);
    memcpy (out->reason, (const uint8_t *) value->mv_data + 8, value->mv_size - 8);
    return 0;
}

int
qn_store_sched_tick_put (qn_store_t *self, const char *name, uint32_t index,
                         const qn_store_tick_t *tick)
{
    uint8_t key [QN_STORE_KEY_MAX];
    uint8_t value [8 + sizeof tick->reason];
    size_t key_size = s_tick_key (self, key, name, index, true, tick->tick);
    if (!key_size || store_need_txn (self))
        return -1;
    size_t reason = strnlen (tick->reason, sizeof tick->reason - 1);
    store_be64_put (value, tick->run_id);
    memcpy (value + 8, tick->reason, reason);
    return store_put_raw (self, DB_SCHED_TICKS, key, key_size, value, 8 + reason);
}

int
qn_store_sched_tick_get (qn_store_t *self, const char *name, uint32_t index, int64_t tick,
                         qn_store_tick_t *out)
{
    uint8_t key [QN_STORE_KEY_MAX];
    size_t key_size = s_tick_key (self, key, name, index, true, tick);
    MDB_txn *txn = key_size? store_read_begin (self): NULL;
    if (!txn)
        return -1;
    MDB_val value;
    int rc = store_get_raw (self, txn, DB_SCHED_TICKS, key, key_size, &value);
    if (rc == 1 && s_tick_decode (self, &value, tick, out))
        rc = -1;
    store_read_end (self, txn);
    return rc;
}

static store_scan_t
s_visit_last (qn_store_t *self, const MDB_val *key, const MDB_val *value, void *arg)
{
    qn_store_tick_t *out = (qn_store_tick_t *) arg;
    if (key->mv_size < 8)
        return STORE_SCAN_NEXT;
    int64_t tick = (int64_t) store_be64_get ((const uint8_t *) key->mv_data + key->mv_size - 8);
    if (s_tick_decode (self, value, tick, out))
        return STORE_SCAN_FAIL;
    return STORE_SCAN_STOP;
}

int
qn_store_sched_tick_last (qn_store_t *self, const char *name, uint32_t index,
                          qn_store_tick_t *out)
{
    uint8_t key [QN_STORE_KEY_MAX];
    size_t key_size = s_tick_key (self, key, name, index, false, 0);
    MDB_txn *txn = key_size? store_read_begin (self): NULL;
    if (!txn)
        return -1;
    memset (out, 0, sizeof *out);
    out->tick = INT64_MIN;
    int rc = store_scan (self, txn, DB_SCHED_TICKS, key, key_size, NULL, 0, STORE_SCAN_BACKWARD,
                         s_visit_last, out);
    store_read_end (self, txn);
    return rc? -1: out->tick != INT64_MIN;
}

int
qn_store_sched_cursor_get (qn_store_t *self, const char *name, uint32_t index,
                           int64_t *cursor_p)
{
    uint8_t key [QN_STORE_KEY_MAX];
    size_t key_size = s_tick_key (self, key, name, index, false, 0);
    MDB_txn *txn = key_size? store_read_begin (self): NULL;
    if (!txn)
        return -1;
    MDB_val value;
    int rc = store_get_raw (self, txn, DB_SCHED_CURSORS, key, key_size, &value);
    if (rc == 1 && value.mv_size != 8) {
        store_set_error (self, "corrupt schedule cursor of %s", name);
        rc = -1;
    }
    if (rc == 1)
        *cursor_p = (int64_t) store_be64_get ((const uint8_t *) value.mv_data);
    store_read_end (self, txn);
    return rc;
}

int
qn_store_sched_cursor_put (qn_store_t *self, const char *name, uint32_t index, int64_t cursor)
{
    uint8_t key [QN_STORE_KEY_MAX], value [8];
    size_t key_size = s_tick_key (self, key, name, index, false, 0);
    if (!key_size || store_need_txn (self))
        return -1;
    store_be64_put (value, (uint64_t) cursor);
    return store_put_raw (self, DB_SCHED_CURSORS, key, key_size, value, 8);
}

int
qn_store_sched_paused (qn_store_t *self, const char *name)
{
    if (store_check_name (self, "workflow", name))
        return -1;
    MDB_txn *txn = store_read_begin (self);
    if (!txn)
        return -1;
    MDB_val value;
    int rc = store_get_raw (self, txn, DB_SCHED_PAUSED, name, strlen (name), &value);
    store_read_end (self, txn);
    return rc;
}

int
qn_store_sched_set_paused (qn_store_t *self, const char *name, bool paused)
{
    if (store_check_name (self, "workflow", name) || store_need_txn (self))
        return -1;
    return paused? store_put_raw (self, DB_SCHED_PAUSED, name, strlen (name), "", 0)
                 : store_delete (self, DB_SCHED_PAUSED, name, strlen (name));
}

int
qn_store_sched_pending_put (qn_store_t *self, uint64_t run_id)
{
    uint8_t key [8];
    store_be64_put (key, run_id);
    return store_need_txn (self)? -1: store_put_raw (self, DB_SCHED_PENDING, key, 8, "", 0);
}

int
qn_store_sched_pending_delete (qn_store_t *self, uint64_t run_id)
{
    uint8_t key [8];
    store_be64_put (key, run_id);
    return store_need_txn (self)? -1: store_delete (self, DB_SCHED_PENDING, key, 8);
}

typedef struct {
    uint64_t *ids;
    size_t count, max;
} s_pending_t;

static store_scan_t
s_visit_pending (qn_store_t *self, const MDB_val *key, const MDB_val *value, void *arg)
{
    (void) self;
    (void) value;
    s_pending_t *pending = (s_pending_t *) arg;
    if (key->mv_size == 8)
        pending->ids [pending->count++] = store_be64_get ((const uint8_t *) key->mv_data);
    return pending->count < pending->max? STORE_SCAN_NEXT: STORE_SCAN_STOP;
}

int
qn_store_sched_pending_list (qn_store_t *self, uint64_t *ids, size_t max, size_t *count_p)
{
    *count_p = 0;
    MDB_txn *txn = max? store_read_begin (self): NULL;
    if (!txn)
        return max? -1: 0;
    s_pending_t pending = { ids, 0, max };
    int rc = store_scan (self, txn, DB_SCHED_PENDING, NULL, 0, NULL, 0, 0, s_visit_pending,
                         &pending);
    store_read_end (self, txn);
    *count_p = pending.count;
    return rc;
}

static size_t
s_trigger_key (qn_store_t *self, uint8_t *key, uint64_t upstream, const char *name)
{
    if (store_check_name (self, "workflow", name))
        return 0;
    store_be64_put (key, upstream);
    size_t len = strlen (name);
    memcpy (key + 8, name, len);
    return 8 + len;
}

int
qn_store_sched_triggered_get (qn_store_t *self, uint64_t upstream, const char *name,
                              uint64_t *run_id_p)
{
    uint8_t key [QN_STORE_KEY_MAX];
    size_t key_size = s_trigger_key (self, key, upstream, name);
    MDB_txn *txn = key_size? store_read_begin (self): NULL;
    if (!txn)
        return -1;
    MDB_val value;
    int rc = store_get_raw (self, txn, DB_SCHED_TRIGGERED, key, key_size, &value);
    if (rc == 1 && value.mv_size == 8)
        *run_id_p = store_be64_get ((const uint8_t *) value.mv_data);
    store_read_end (self, txn);
    return rc;
}

int
qn_store_sched_triggered_put (qn_store_t *self, uint64_t upstream, const char *name,
                              uint64_t run_id)
{
    uint8_t key [QN_STORE_KEY_MAX], value [8];
    size_t key_size = s_trigger_key (self, key, upstream, name);
    if (!key_size || store_need_txn (self))
        return -1;
    store_be64_put (value, run_id);
    return store_put_raw (self, DB_SCHED_TRIGGERED, key, key_size, value, 8);
}

typedef struct {
    qn_store_sched_latest_fn *visit;
    void *arg;
} s_latest_t;

static store_scan_t
s_visit_latest (qn_store_t *self, const MDB_val *key, const MDB_val *value, void *arg)
{
    (void) self;
    s_latest_t *latest = (s_latest_t *) arg;
    char name [QN_STORE_KEY_MAX + 1];
    if (value->mv_size != 4 || key->mv_size == 0 || key->mv_size > QN_STORE_KEY_MAX)
        return STORE_SCAN_NEXT;
    memcpy (name, key->mv_data, key->mv_size);
    name [key->mv_size] = '\0';
    latest->visit (latest->arg, name, store_be32_get ((const uint8_t *) value->mv_data));
    return STORE_SCAN_NEXT;
}

int
qn_store_sched_latest (qn_store_t *self, qn_store_sched_latest_fn *visit, void *arg)
{
    MDB_txn *txn = store_read_begin (self);
    if (!txn)
        return -1;
    s_latest_t latest = { visit, arg };
    int rc = store_scan (self, txn, DB_WORKFLOWS, NULL, 0, NULL, 0, 0, s_visit_latest, &latest);
    store_read_end (self, txn);
    return rc;
}
