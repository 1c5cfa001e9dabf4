/*  qn_store_notify - the notifications' outbox: one NotifEntry per run and
    channel, and an index of the pending ones so that the sender finds
    its work without reading every delivered entry.

    One of the files of the qn_store class.
*/
#include "qn_store_internal.h"
#include <assert.h>
#include <string.h>

#define S_KEY_SIZE  12

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
    if (store_put_message (self, DB_NOTIF_OUTBOX, key, sizeof key, &entry->base, 0))
        return -1;
    if (entry->state && strcmp (entry->state, "pending") == 0)
        return store_put_raw (self, DB_NOTIF_PENDING, key, sizeof key, "", 0);
    return store_delete (self, DB_NOTIF_PENDING, key, sizeof key);
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
    ProtobufCMessage *entry = store_get_message (self, txn, DB_NOTIF_OUTBOX, key, sizeof key,
                                                 &qanat__notif_entry__descriptor);
    store_read_end (self, txn);
    return (Qanat__NotifEntry *) entry;
}

typedef struct {
    MDB_txn *txn;               //  for the pending index's lookups
    size_t limit;
    store_gathered_t gathered;
} s_listing_t;

static store_scan_t
s_gather (qn_store_t *self, s_listing_t *listing, const MDB_val *value)
{
    ProtobufCMessage *item = store_decode (self, DB_NOTIF_OUTBOX,
                                           &qanat__notif_entry__descriptor, value);
    store_gathered_t *gathered = &listing->gathered;
    if (item
    &&  store_array_push (self, &gathered->items, &gathered->count, &gathered->alloc, item)) {
        protobuf_c_message_free_unpacked (item, NULL);
        return STORE_SCAN_FAIL;
    }
    return gathered->count >= listing->limit? STORE_SCAN_STOP: STORE_SCAN_NEXT;
}

static store_scan_t
s_visit_entry (qn_store_t *self, const MDB_val *key, const MDB_val *value, void *arg)
{
    if (key->mv_size != S_KEY_SIZE)
        return STORE_SCAN_NEXT;
    return s_gather (self, (s_listing_t *) arg, value);
}

static store_scan_t
s_visit_pending (qn_store_t *self, const MDB_val *key, const MDB_val *value, void *arg)
{
    (void) value;
    s_listing_t *listing = (s_listing_t *) arg;
    if (key->mv_size != S_KEY_SIZE)
        return STORE_SCAN_NEXT;
    MDB_val entry;
    int found = store_get_raw (self, listing->txn, DB_NOTIF_OUTBOX, key->mv_data, S_KEY_SIZE,
                               &entry);
    if (found < 0)
        return STORE_SCAN_FAIL;
    return found? s_gather (self, listing, &entry): STORE_SCAN_NEXT;
}

static int
s_list (qn_store_t *self, store_db_t db, const void *prefix, size_t prefix_len, unsigned flags,
        size_t limit, Qanat__NotifEntry ***entries_p, size_t *count_p)
{
    *entries_p = NULL;
    *count_p = 0;
    MDB_txn *txn = store_read_begin (self);
    if (!txn)
        return -1;
    s_listing_t listing = { txn, limit? limit: 100, { NULL, 0, 0 } };
    int rc = store_scan (self, txn, db, prefix, prefix_len, NULL, 0, flags,
                         db == DB_NOTIF_PENDING? s_visit_pending: s_visit_entry, &listing);
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
qn_store_list_notifs (qn_store_t *self, uint64_t run_id, size_t limit,
                      Qanat__NotifEntry ***entries_p, size_t *count_p)
{
    assert (self);
    uint8_t prefix [8];
    store_be64_put (prefix, run_id);
    if (run_id)
        return s_list (self, DB_NOTIF_OUTBOX, prefix, sizeof prefix, 0, limit, entries_p, count_p);
    return s_list (self, DB_NOTIF_OUTBOX, NULL, 0, STORE_SCAN_BACKWARD, limit, entries_p, count_p);
}

int
qn_store_pending_notifs (qn_store_t *self, size_t limit, Qanat__NotifEntry ***entries_p,
                         size_t *count_p)
{
    assert (self);
    return s_list (self, DB_NOTIF_PENDING, NULL, 0, 0, limit, entries_p, count_p);
}
