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

#include <stdlib.h>
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

//  --------------------------------------------------------------------
//  Pruning with retention

typedef struct {
    uint32_t index;                 //  the schedule
    int64_t tick;
    uint64_t run_id;
    bool drop;
} s_tick_row_t;

typedef struct {
    s_tick_row_t *rows;
    size_t count, alloc;
    size_t name_len;
} s_ticks_t;

static store_scan_t
s_visit_tick (qn_store_t *self, const MDB_val *key, const MDB_val *value, void *arg)
{
    s_ticks_t *ticks = (s_ticks_t *) arg;
    if (key->mv_size != ticks->name_len + 13 || value->mv_size < 8)
        return STORE_SCAN_NEXT;
    if (ticks->count == ticks->alloc) {
        size_t alloc = ticks->alloc? 2 * ticks->alloc: 64;
        s_tick_row_t *rows = (s_tick_row_t *) realloc (ticks->rows, alloc * sizeof *rows);
        if (!rows) {
            store_set_error (self, "out of memory");
            return STORE_SCAN_FAIL;
        }
        ticks->rows = rows;
        ticks->alloc = alloc;
    }
    const uint8_t *bytes = (const uint8_t *) key->mv_data + ticks->name_len + 1;
    s_tick_row_t *row = &ticks->rows [ticks->count++];
    row->index = store_be32_get (bytes);
    row->tick = (int64_t) store_be64_get (bytes + 4);
    row->run_id = store_be64_get ((const uint8_t *) value->mv_data);
    row->drop = false;
    return STORE_SCAN_NEXT;
}

static int
s_compare_id (const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
    return x < y? -1: x > y;
}

//  Marks what may go of one schedule's rows (first..end, oldest first):
//  ticks of deleted runs, then skipped ticks older than the newest of
//  those; never a tick after the cursor, nor the schedule's newest
static void
s_mark_schedule (s_tick_row_t *rows, size_t first, size_t end, int64_t cursor,
                 const uint64_t *deleted, size_t deleted_count)
{
    int64_t newest_dropped = INT64_MIN;
    for (size_t r = first; r + 1 < end; r++)
        if (rows [r].run_id && rows [r].tick <= cursor
        &&  bsearch (&rows [r].run_id, deleted, deleted_count, sizeof (uint64_t), s_compare_id)) {
            rows [r].drop = true;
            newest_dropped = rows [r].tick;
        }
    for (size_t r = first; r + 1 < end; r++)
        if (!rows [r].run_id && rows [r].tick < newest_dropped)
            rows [r].drop = true;
}

typedef struct {
    uint8_t (*keys) [QN_STORE_KEY_MAX];
    size_t *sizes;
    size_t count, alloc;
} s_keys_t;

static store_scan_t
s_visit_key (qn_store_t *self, const MDB_val *key, const MDB_val *value, void *arg)
{
    (void) value;
    s_keys_t *keys = (s_keys_t *) arg;
    if (key->mv_size > QN_STORE_KEY_MAX)
        return STORE_SCAN_NEXT;
    if (keys->count == keys->alloc) {
        size_t alloc = keys->alloc? 2 * keys->alloc: 8;
        void *more = realloc (keys->keys, alloc * QN_STORE_KEY_MAX);
        size_t *sizes = more? (size_t *) realloc (keys->sizes, alloc * sizeof (size_t)): NULL;
        if (more)
            keys->keys = (uint8_t (*) [QN_STORE_KEY_MAX]) more;
        if (!sizes) {
            store_set_error (self, "out of memory");
            return STORE_SCAN_FAIL;
        }
        keys->sizes = sizes;
        keys->alloc = alloc;
    }
    memcpy (keys->keys [keys->count], key->mv_data, key->mv_size);
    keys->sizes [keys->count++] = key->mv_size;
    return STORE_SCAN_NEXT;
}

//  Deletes the keys of db under prefix, counting them into *deleted_p
static int
s_delete_prefix (qn_store_t *self, store_db_t db, const uint8_t *prefix, size_t prefix_size,
                 size_t *deleted_p)
{
    s_keys_t keys = { NULL, NULL, 0, 0 };
    int rc = store_scan (self, self->txn, db, prefix, prefix_size, NULL, 0, 0, s_visit_key,
                         &keys);
    for (size_t k = 0; rc == 0 && k < keys.count; k++) {
        rc = store_delete (self, db, keys.keys [k], keys.sizes [k]);
        if (rc == 0 && deleted_p)
            (*deleted_p)++;
    }
    free (keys.keys);
    free (keys.sizes);
    return rc;
}

int
qn_store_sched_prune (qn_store_t *self, const char *name, uint64_t *deleted, size_t count,
                      size_t *pruned_p)
{
    uint8_t key [QN_STORE_KEY_MAX];
    size_t key_size = s_tick_key (self, key, name, 0, false, 0);
    if (!key_size || store_need_txn (self))
        return -1;
    size_t prefix_size = key_size - 4;      //  name '\0': every schedule
    qsort (deleted, count, sizeof (uint64_t), s_compare_id);
    s_ticks_t ticks = { NULL, 0, 0, strlen (name) };
    int rc = store_scan (self, self->txn, DB_SCHED_TICKS, key, prefix_size, NULL, 0, 0,
                         s_visit_tick, &ticks);
    //  Rows come by schedule, then tick
    for (size_t first = 0, end; rc == 0 && first < ticks.count; first = end) {
        for (end = first; end < ticks.count && ticks.rows [end].index == ticks.rows [first].index; )
            end++;
        int64_t cursor;
        int found = qn_store_sched_cursor_get (self, name, ticks.rows [first].index, &cursor);
        if (found < 0)
            rc = -1;
        else
        if (found)
            s_mark_schedule (ticks.rows, first, end, cursor, deleted, count);
    }
    for (size_t r = 0; rc == 0 && r < ticks.count; r++)
        if (ticks.rows [r].drop) {
            size_t size = s_tick_key (self, key, name, ticks.rows [r].index, true,
                                      ticks.rows [r].tick);
            rc = store_delete (self, DB_SCHED_TICKS, key, size);
            if (rc == 0 && pruned_p)
                (*pruned_p)++;
        }
    //  What triggered runs of a deleted upstream run: its end cannot fire
    //  again once its own triggers have (it is no longer pending)
    for (size_t i = 0; rc == 0 && i < count; i++) {
        uint8_t id [8], pending_key [8];
        store_be64_put (id, deleted [i]);
        memcpy (pending_key, id, 8);
        MDB_val value;
        int pending = store_get_raw (self, self->txn, DB_SCHED_PENDING, pending_key, 8, &value);
        if (pending < 0)
            rc = -1;
        else
        if (!pending)
            rc = s_delete_prefix (self, DB_SCHED_TRIGGERED, id, 8, pruned_p);
    }
    free (ticks.rows);
    return rc;
}
