/*  qn_store_notify - the notifications' outbox: one NotifEntry per run and
    channel.  A pending entry lives in notif_pending, whole; once it is
    delivered or failed it moves to notif_outbox.  So the commit that
    stores a run's end touches one small table, and the sender reads
    exactly its work.  (Stores written before kept every entry in the
    outbox and an empty value in notif_pending; such an entry is read from
    the outbox until it leaves the pending table.)

    One of the files of the qn_store class.
*/
#include "qn_store_internal.h"
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#define S_KEY_SIZE  12
//  Channels a run can have (qn_wf_notify.h's QN_NOTIFY_CHANNELS_MAX)
#define S_CHANNELS_MAX  16

static void
s_key (uint8_t *key, uint64_t run_id, uint32_t channel)
{
    store_be64_put (key, run_id);
    store_be32_put (key + 8, channel);
}

int
qn_store_put_notif (qn_store_t *self, const Qanat__NotifEntry *entry)
{
    assert (self);
    assert (entry);
    if (store_need_txn (self))
        return -1;
    uint8_t key [S_KEY_SIZE];
    s_key (key, entry->run_id, entry->channel);
    bool pending = entry->state && strcmp (entry->state, "pending") == 0;
    store_db_t to = pending? DB_NOTIF_PENDING: DB_NOTIF_OUTBOX;
    if (store_put_message (self, to, key, sizeof key, &entry->base, 0))
        return -1;
    return store_delete (self, pending? DB_NOTIF_OUTBOX: DB_NOTIF_PENDING, key, sizeof key);
}

//  The entry at key: the pending table's, else the outbox's.  1 found
//  (value set), 0 not, -1 error.
static int
s_find (qn_store_t *self, MDB_txn *txn, const uint8_t *key, MDB_val *value, store_db_t *db_p)
{
    int found = store_get_raw (self, txn, DB_NOTIF_PENDING, key, S_KEY_SIZE, value);
    *db_p = DB_NOTIF_PENDING;
    if (found == 1 && value->mv_size > 0)
        return 1;
    *db_p = DB_NOTIF_OUTBOX;
    return found < 0? -1: store_get_raw (self, txn, DB_NOTIF_OUTBOX, key, S_KEY_SIZE, value);
}

Qanat__NotifEntry *
qn_store_get_notif (qn_store_t *self, uint64_t run_id, uint32_t channel)
{
    assert (self);
    MDB_txn *txn = store_read_begin (self);
    if (!txn)
        return NULL;
    uint8_t key [S_KEY_SIZE];
    s_key (key, run_id, channel);
    MDB_val value;
    store_db_t db;
    ProtobufCMessage *entry = s_find (self, txn, key, &value, &db) == 1
                            ? store_decode (self, db, &qanat__notif_entry__descriptor, &value)
                            : NULL;
    store_read_end (self, txn);
    return (Qanat__NotifEntry *) entry;
}

int
qn_store_has_notif (qn_store_t *self, uint64_t run_id, uint32_t channel)
{
    assert (self);
    MDB_txn *txn = store_read_begin (self);
    if (!txn)
        return -1;
    uint8_t key [S_KEY_SIZE];
    s_key (key, run_id, channel);
    MDB_val value;
    store_db_t db;
    int found = s_find (self, txn, key, &value, &db);
    store_read_end (self, txn);
    return found;
}

typedef struct {
    MDB_txn *txn;
    size_t limit;
    store_db_t db;                  //  the table being scanned
    qn_store_notif_skip_fn *skip;   //  entries to pass over, undecoded
    void *skip_arg;
    store_gathered_t gathered;
} s_listing_t;

static store_scan_t
s_visit (qn_store_t *self, const MDB_val *key, const MDB_val *value, void *arg)
{
    s_listing_t *listing = (s_listing_t *) arg;
    if (key->mv_size != S_KEY_SIZE)
        return STORE_SCAN_NEXT;
    const uint8_t *bytes = (const uint8_t *) key->mv_data;
    if (listing->skip
    &&  listing->skip (store_be64_get (bytes), store_be32_get (bytes + 8), listing->skip_arg))
        return STORE_SCAN_NEXT;
    MDB_val entry = *value;
    store_db_t db = listing->db;
    if (db == DB_NOTIF_PENDING && value->mv_size == 0) {
        //  An older store's marker: the entry is in the outbox
        int found = store_get_raw (self, listing->txn, DB_NOTIF_OUTBOX, key->mv_data,
                                   S_KEY_SIZE, &entry);
        if (found < 0)
            return STORE_SCAN_FAIL;
        if (!found)
            return STORE_SCAN_NEXT;
        db = DB_NOTIF_OUTBOX;
    }
    else
    if (db == DB_NOTIF_OUTBOX) {
        //  An older store's pending entry shows once: from the pending scan
        MDB_val marker;
        if (store_get_raw (self, listing->txn, DB_NOTIF_PENDING, key->mv_data, S_KEY_SIZE,
                           &marker) == 1 && marker.mv_size == 0)
            return STORE_SCAN_NEXT;
    }
    ProtobufCMessage *item = store_decode (self, db, &qanat__notif_entry__descriptor, &entry);
    store_gathered_t *gathered = &listing->gathered;
    if (item
    &&  store_array_push (self, &gathered->items, &gathered->count, &gathered->alloc, item)) {
        protobuf_c_message_free_unpacked (item, NULL);
        return STORE_SCAN_FAIL;
    }
    return gathered->count >= listing->limit? STORE_SCAN_STOP: STORE_SCAN_NEXT;
}

//  Entries of db (with prefix), gathered onto listing's; 0 or -1
static int
s_scan (qn_store_t *self, s_listing_t *listing, store_db_t db, const void *prefix,
        size_t prefix_len, unsigned flags, size_t limit)
{
    listing->db = db;
    listing->limit = listing->gathered.count + limit;
    return store_scan (self, listing->txn, db, prefix, prefix_len, NULL, 0, flags, s_visit,
                       listing);
}

static int
s_order (const void *a, const void *b)
{
    const Qanat__NotifEntry *x = *(Qanat__NotifEntry *const *) a;
    const Qanat__NotifEntry *y = *(Qanat__NotifEntry *const *) b;
    if (x->run_id != y->run_id)
        return x->run_id < y->run_id? -1: 1;
    return x->channel < y->channel? -1: x->channel > y->channel;
}

static int
s_order_newest (const void *a, const void *b)
{
    return s_order (b, a);
}

int
qn_store_list_notifs (qn_store_t *self, uint64_t run_id, size_t limit,
                      Qanat__NotifEntry ***entries_p, size_t *count_p)
{
    assert (self);
    *entries_p = NULL;
    *count_p = 0;
    limit = limit? limit: 100;
    MDB_txn *txn = store_read_begin (self);
    if (!txn)
        return -1;
    s_listing_t listing = { txn, 0, DB_NOTIF_OUTBOX, NULL, NULL, { NULL, 0, 0 } };
    uint8_t prefix [8];
    store_be64_put (prefix, run_id);
    //  Both tables, each up to limit, then merged in order
    unsigned flags = run_id? 0: STORE_SCAN_BACKWARD;
    int rc = s_scan (self, &listing, DB_NOTIF_OUTBOX, run_id? prefix: NULL, run_id? 8: 0,
                     flags, limit);
    if (rc == 0)
        rc = s_scan (self, &listing, DB_NOTIF_PENDING, run_id? prefix: NULL, run_id? 8: 0,
                     flags, limit);
    store_read_end (self, txn);
    store_gathered_t *gathered = &listing.gathered;
    if (rc) {
        store_free_messages (gathered->items, gathered->count);
        return -1;
    }
    if (gathered->count)            //  items is NULL when both tables had none
        qsort (gathered->items, gathered->count, sizeof (void *), run_id? s_order: s_order_newest);
    while (gathered->count > limit)
        protobuf_c_message_free_unpacked (gathered->items [--gathered->count], NULL);
    *entries_p = (Qanat__NotifEntry **) gathered->items;
    *count_p = gathered->count;
    return 0;
}

int
qn_store_pending_notifs (qn_store_t *self, size_t limit, qn_store_notif_skip_fn *skip,
                         void *skip_arg, Qanat__NotifEntry ***entries_p, size_t *count_p)
{
    assert (self);
    *entries_p = NULL;
    *count_p = 0;
    MDB_txn *txn = store_read_begin (self);
    if (!txn)
        return -1;
    s_listing_t listing = { txn, 0, DB_NOTIF_PENDING, skip, skip_arg, { NULL, 0, 0 } };
    int rc = s_scan (self, &listing, DB_NOTIF_PENDING, NULL, 0, 0, limit? limit: 100);
    store_read_end (self, txn);
    if (rc) {
        store_free_messages (listing.gathered.items, listing.gathered.count);
        return -1;
    }
    *entries_p = (Qanat__NotifEntry **) listing.gathered.items;
    *count_p = listing.gathered.count;
    return 0;
}

int
qn_store_notifs_pending (qn_store_t *self, uint64_t run_id)
{
    assert (self);
    MDB_txn *txn = store_read_begin (self);
    if (!txn)
        return -1;
    int found = 0;
    for (uint32_t channel = 0; channel < S_CHANNELS_MAX && found == 0; channel++) {
        uint8_t key [S_KEY_SIZE];
        s_key (key, run_id, channel);
        MDB_val value;
        found = store_get_raw (self, txn, DB_NOTIF_PENDING, key, sizeof key, &value);
    }
    store_read_end (self, txn);
    return found;
}

int
qn_store_delete_notifs (qn_store_t *self, uint64_t run_id, size_t *deleted_p)
{
    assert (self);
    if (store_need_txn (self))
        return -1;
    size_t deleted = 0;
    for (uint32_t channel = 0; channel < S_CHANNELS_MAX; channel++) {
        uint8_t key [S_KEY_SIZE];
        s_key (key, run_id, channel);
        MDB_val value;
        store_db_t db;
        int found = s_find (self, self->txn, key, &value, &db);
        if (found < 0
        ||  (found && (store_delete (self, DB_NOTIF_PENDING, key, sizeof key)
                       || store_delete (self, DB_NOTIF_OUTBOX, key, sizeof key))))
            return -1;
        deleted += (size_t) found;
    }
    if (deleted_p)
        *deleted_p += deleted;
    return 0;
}
