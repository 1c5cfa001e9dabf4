/*  qn_store_blobs - the store's artifact records: the blob index, the S3
    objects and the cache entries.  Part of the class qn_store: see
    qn_store.c for the key layout and the files, qn_store.h for the
    contract.

    One of the files of the qn_store class.
*/
#include "qn_store_internal.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

//  ---------------------------------------------------------------------
//  The blob index

static bool
s_valid_hex_key (const char *hash)
{
    if (!hash || strlen (hash) != 64)
        return false;
    for (size_t i = 0; i < 64; i++)
        if (!((hash [i] >= '0' && hash [i] <= '9') || (hash [i] >= 'a' && hash [i] <= 'f')))
            return false;
    return true;
}

int
qn_store_blob_get (qn_store_t *self, const char *hash, uint64_t *size_p, uint32_t *refs_p)
{
    assert (self);
    if (!s_valid_hex_key (hash)) {
        store_set_error (self, "invalid blob hash");
        return -1;
    }
    MDB_txn *txn = store_read_begin (self);
    if (!txn)
        return -1;
    MDB_val value;
    int found = store_get_raw (self, txn, DB_BLOBS, hash, 64, &value);
    if (found == 1 && value.mv_size != 12)
        found = 0;              //  a damaged record counts as absent
    if (found == 1) {
        if (size_p)
            *size_p = store_be64_get ((const uint8_t *) value.mv_data);
        if (refs_p)
            *refs_p = store_be32_get ((const uint8_t *) value.mv_data + 8);
    }
    store_read_end (self, txn);
    return found;
}

static int
s_blob_put (qn_store_t *self, const char *hash, uint64_t size, uint32_t refs)
{
    uint8_t value [12];
    store_be64_put (value, size);
    store_be32_put (value + 8, refs);
    return store_put_raw (self, DB_BLOBS, hash, 64, value, sizeof value);
}

int
qn_store_blob_add (qn_store_t *self, const char *hash, uint64_t size)
{
    assert (self);
    if (store_need_txn (self))
        return -1;
    if (!s_valid_hex_key (hash)) {
        store_set_error (self, "invalid blob hash");
        return -1;
    }
    uint64_t old_size;
    int found = qn_store_blob_get (self, hash, &old_size, NULL);
    if (found < 0)
        return -1;
    return found? 0: s_blob_put (self, hash, size, 0);
}

int
qn_store_blob_ref (qn_store_t *self, const char *hash, int delta, uint32_t *refs_p)
{
    assert (self);
    if (store_need_txn (self))
        return -1;
    uint64_t size;
    uint32_t refs;
    int found = qn_store_blob_get (self, hash, &size, &refs);
    if (found <= 0) {
        if (found == 0)
            store_set_error (self, "no such blob");
        return -1;
    }
    int64_t next = (int64_t) refs + delta;
    if (next < 0)
        next = 0;
    if (next > UINT32_MAX)
        next = UINT32_MAX;
    if (refs_p)
        *refs_p = (uint32_t) next;
    return s_blob_put (self, hash, size, (uint32_t) next);
}

int
qn_store_blob_delete (qn_store_t *self, const char *hash)
{
    assert (self);
    if (store_need_txn (self) || !s_valid_hex_key (hash))
        return -1;
    return store_delete (self, DB_BLOBS, hash, 64);
}

//  Hashes of unreferenced blobs being gathered, up to limit
typedef struct {
    store_gathered_t gathered;  //  of malloc'd strings
    size_t limit;
} s_hashes_t;

//  One blob record; a damaged one (wrong sizes) is passed over.
static store_scan_t
s_visit_blob (qn_store_t *self, const MDB_val *key, const MDB_val *value, void *arg)
{
    s_hashes_t *hashes = (s_hashes_t *) arg;
    store_gathered_t *gathered = &hashes->gathered;
    if (gathered->count >= hashes->limit)
        return STORE_SCAN_STOP;
    if (key->mv_size != 64 || value->mv_size != 12
    ||  store_be32_get ((const uint8_t *) value->mv_data + 8) != 0)
        return STORE_SCAN_NEXT;
    char *hash = (char *) malloc (65);
    if (hash) {
        memcpy (hash, key->mv_data, 64);
        hash [64] = '\0';
    }
    if (!hash || store_array_push (self, &gathered->items, &gathered->count, &gathered->alloc,
                                   hash)) {
        free (hash);
        return STORE_SCAN_FAIL;
    }
    return STORE_SCAN_NEXT;
}

int
qn_store_unreferenced_blobs (qn_store_t *self, char ***hashes_p, size_t *count_p, size_t limit)
{
    assert (self);
    *hashes_p = NULL;
    *count_p = 0;
    MDB_txn *txn = store_read_begin (self);
    if (!txn)
        return -1;
    s_hashes_t hashes = { { NULL, 0, 0 }, limit };
    int result = store_scan (self, txn, DB_BLOBS, NULL, 0, NULL, 0, STORE_SCAN_READ_ERROR_ENDS,
                             s_visit_blob, &hashes);
    store_read_end (self, txn);
    if (result) {
        for (size_t i = 0; i < hashes.gathered.count; i++)
            free (hashes.gathered.items [i]);
        free (hashes.gathered.items);
        return -1;
    }
    *hashes_p = (char **) hashes.gathered.items;
    *count_p = hashes.gathered.count;
    return 0;
}

//  ---- S3 objects ----

//  Offsets in an s3objects value (format 1); see the layout at the top of
//  qn_store.c.
#define S3_FORMAT           1
#define S3_AT_FORMAT        0
#define S3_AT_STATE         1
#define S3_AT_REFS          2
#define S3_AT_SIZE          6
#define S3_AT_SINCE         14
#define S3_AT_LOCATION      22          //  be16 length, then the bytes
#define S3_VALUE_MIN        (S3_AT_LOCATION + 2 + 2)
#define S3_VALUE_MAX        (S3_VALUE_MIN + QN_STORE_S3_LOCATION_MAX + QN_STORE_S3_STORE_MAX)

static void
s_be16_put (uint8_t *p, uint16_t v)
{
    p [0] = (uint8_t) (v >> 8);
    p [1] = (uint8_t) v;
}

static uint16_t
s_be16_get (const uint8_t *p)
{
    return (uint16_t) ((p [0] << 8) | p [1]);
}

static int
s_s3_check_id (qn_store_t *self, const char *id)
{
    if (!s_valid_hex_key (id)) {
        store_set_error (self, "invalid S3 object id");
        return -1;
    }
    return 0;
}

//  Checks a stored value against format 1, every length exactly; on
//  success gives where the location and the store are.  0 or -1 with a
//  message.
static int
s_s3_check_value (qn_store_t *self, const MDB_val *value, size_t *location_len_p,
                  size_t *store_at_p, size_t *store_len_p)
{
    const uint8_t *data = (const uint8_t *) value->mv_data;
    size_t size = value->mv_size;
    if (size < S3_VALUE_MIN || size > S3_VALUE_MAX) {
        store_set_error (self, "damaged S3 object record (%zu bytes)", size);
        return -1;
    }
    if (data [S3_AT_FORMAT] != S3_FORMAT) {
        store_set_error (self, "S3 object record has unknown format %u", data [S3_AT_FORMAT]);
        return -1;
    }
    if (data [S3_AT_STATE] > QN_STORE_S3_DELETED) {
        store_set_error (self, "S3 object record has unknown state %u", data [S3_AT_STATE]);
        return -1;
    }
    size_t location_len = s_be16_get (data + S3_AT_LOCATION);
    if (location_len == 0 || location_len > QN_STORE_S3_LOCATION_MAX
    ||  S3_AT_LOCATION + 2 + location_len + 2 > size
    ||  memchr (data + S3_AT_LOCATION + 2, 0, location_len)) {
        store_set_error (self, "damaged S3 object record (bad location)");
        return -1;
    }
    size_t store_at = S3_AT_LOCATION + 2 + location_len;
    size_t store_len = s_be16_get (data + store_at);
    store_at += 2;
    if (store_len > QN_STORE_S3_STORE_MAX || store_at + store_len != size) {
        store_set_error (self, "damaged S3 object record (bad store length)");
        return -1;
    }
    *location_len_p = location_len;
    *store_at_p = store_at;
    *store_len_p = store_len;
    return 0;
}

//  Fills object from a checked value (id is the caller's).  0 or -1.
static int
s_s3_decode (qn_store_t *self, const MDB_val *value, qn_store_s3_object_t *object)
{
    size_t location_len, store_at, store_len;
    if (s_s3_check_value (self, value, &location_len, &store_at, &store_len))
        return -1;
    const uint8_t *data = (const uint8_t *) value->mv_data;
    object->location = strndup ((const char *) data + S3_AT_LOCATION + 2, location_len);
    if (store_len) {
        object->store = (uint8_t *) malloc (store_len);
        if (object->store)
            memcpy (object->store, data + store_at, store_len);
    }
    if (!object->location || (store_len && !object->store)) {
        free (object->location);
        free (object->store);
        object->location = NULL;
        object->store = NULL;
        store_set_error (self, "out of memory");
        return -1;
    }
    object->store_size = store_len;
    object->size = store_be64_get (data + S3_AT_SIZE);
    object->refs = store_be32_get (data + S3_AT_REFS);
    object->state = data [S3_AT_STATE];
    object->since_us = (int64_t) store_be64_get (data + S3_AT_SINCE);
    return 0;
}

void
qn_store_s3_object_clear (qn_store_s3_object_t *object)
{
    if (!object)
        return;
    free (object->location);
    free (object->store);
    memset (object, 0, sizeof *object);
}

void
qn_store_s3_objects_free (qn_store_s3_object_t **objects_p, size_t count)
{
    assert (objects_p);
    qn_store_s3_object_t *objects = *objects_p;
    if (!objects)
        return;
    for (size_t index = 0; index < count; index++)
        qn_store_s3_object_clear (&objects [index]);
    free (objects);
    *objects_p = NULL;
}

int
qn_store_s3_get (qn_store_t *self, const char *id, qn_store_s3_object_t *object)
{
    assert (self);
    if (object)
        memset (object, 0, sizeof *object);
    if (s_s3_check_id (self, id))
        return -1;
    MDB_txn *txn = store_read_begin (self);
    if (!txn)
        return -1;
    MDB_val value;
    int found = store_get_raw (self, txn, DB_S3OBJECTS, id, 64, &value);
    if (found == 1) {
        if (object) {
            if (s_s3_decode (self, &value, object))
                found = -1;
            else
                memcpy (object->id, id, 65);
        }
        else {
            size_t location_len, store_at, store_len;
            if (s_s3_check_value (self, &value, &location_len, &store_at, &store_len))
                found = -1;
        }
    }
    store_read_end (self, txn);
    return found;
}

int
qn_store_s3_add (qn_store_t *self, const char *id, const char *location,
                 const uint8_t *store, size_t store_size, uint64_t size, int64_t now_us)
{
    assert (self);
    if (store_need_txn (self) || s_s3_check_id (self, id))
        return -1;
    size_t location_len = location? strlen (location): 0;
    if (location_len == 0 || location_len > QN_STORE_S3_LOCATION_MAX) {
        store_set_error (self, "S3 object location must have 1 to %d bytes",
                         QN_STORE_S3_LOCATION_MAX);
        return -1;
    }
    if (store_size > QN_STORE_S3_STORE_MAX || (store_size && !store)) {
        store_set_error (self, "S3 object store must have at most %d bytes",
                         QN_STORE_S3_STORE_MAX);
        return -1;
    }
    //  Any row, whatever its state, stays as it is; a damaged one fails
    int found = qn_store_s3_get (self, id, NULL);
    if (found != 0)
        return found < 0? -1: 0;

    size_t value_size = S3_VALUE_MIN + location_len + store_size;
    MDB_val k = { 64, (void *) id };
    MDB_val v = { value_size, NULL };
    int rc = mdb_put (self->txn, self->dbi [DB_S3OBJECTS], &k, &v, MDB_RESERVE);
    if (rc)
        return store_write_failed (self, DB_S3OBJECTS, rc);
    uint8_t *data = (uint8_t *) v.mv_data;
    data [S3_AT_FORMAT] = S3_FORMAT;
    data [S3_AT_STATE] = QN_STORE_S3_LIVE;
    store_be32_put (data + S3_AT_REFS, 0);
    store_be64_put (data + S3_AT_SIZE, size);
    store_be64_put (data + S3_AT_SINCE, (uint64_t) now_us);
    s_be16_put (data + S3_AT_LOCATION, (uint16_t) location_len);
    memcpy (data + S3_AT_LOCATION + 2, location, location_len);
    size_t store_at = S3_AT_LOCATION + 2 + location_len;
    s_be16_put (data + store_at, (uint16_t) store_size);
    if (store_size)
        memcpy (data + store_at + 2, store, store_size);
    return 0;
}

//  Rewrites the fixed fields of an existing row, leaving location and
//  store as they are.  refs_delta is applied (clamped) when apply_refs;
//  state >= 0 sets the state and since_us.  0 or -1.
static int
s_s3_update (qn_store_t *self, const char *id, bool apply_refs, int refs_delta, int state,
             int64_t now_us, uint32_t *refs_p)
{
    if (store_need_txn (self) || s_s3_check_id (self, id))
        return -1;
    MDB_val value;
    int found = store_get_raw (self, self->txn, DB_S3OBJECTS, id, 64, &value);
    if (found <= 0) {
        if (found == 0)
            store_set_error (self, "no such S3 object");
        return -1;
    }
    size_t location_len, store_at, store_len;
    if (s_s3_check_value (self, &value, &location_len, &store_at, &store_len))
        return -1;
    //  The value lives in LMDB's pages, which the put below may change
    uint8_t copy [S3_VALUE_MAX];
    memcpy (copy, value.mv_data, value.mv_size);
    size_t copy_size = value.mv_size;
    uint32_t refs = store_be32_get (copy + S3_AT_REFS);
    if (apply_refs) {
        int64_t next = (int64_t) refs + refs_delta;
        if (next < 0)
            next = 0;
        if (next > UINT32_MAX)
            next = UINT32_MAX;
        //  A LIVE row's grace period runs from when its last user went;
        //  in the other states since_us is when the state began
        if (refs > 0 && next == 0 && copy [S3_AT_STATE] == QN_STORE_S3_LIVE)
            store_be64_put (copy + S3_AT_SINCE, (uint64_t) now_us);
        refs = (uint32_t) next;
        store_be32_put (copy + S3_AT_REFS, refs);
    }
    if (state >= 0) {
        copy [S3_AT_STATE] = (uint8_t) state;
        store_be64_put (copy + S3_AT_SINCE, (uint64_t) now_us);
    }
    if (store_put_raw (self, DB_S3OBJECTS, id, 64, copy, copy_size))
        return -1;
    if (refs_p)
        *refs_p = refs;
    return 0;
}

int
qn_store_s3_ref (qn_store_t *self, const char *id, int delta, int64_t now_us, uint32_t *refs_p)
{
    assert (self);
    return s_s3_update (self, id, true, delta, -1, now_us, refs_p);
}

int
qn_store_s3_set_state (qn_store_t *self, const char *id, int state, int64_t now_us)
{
    assert (self);
    if (state < QN_STORE_S3_LIVE || state > QN_STORE_S3_DELETED) {
        store_set_error (self, "invalid S3 object state %d", state);
        return -1;
    }
    return s_s3_update (self, id, false, 0, state, now_us, NULL);
}

int
qn_store_s3_delete (qn_store_t *self, const char *id)
{
    assert (self);
    if (store_need_txn (self) || s_s3_check_id (self, id))
        return -1;
    return store_delete (self, DB_S3OBJECTS, id, 64);
}

//  S3 objects being gathered: up to limit rows in state with since_us
//  before before_us (LIVE ones only without references)
typedef struct {
    int state;
    int64_t before_us;
    size_t limit;
    qn_store_s3_object_t *objects;
    size_t count;
    size_t alloc;
} s_s3_listing_t;

static store_scan_t
s_visit_s3_object (qn_store_t *self, const MDB_val *key, const MDB_val *value, void *arg)
{
    s_s3_listing_t *listing = (s_s3_listing_t *) arg;
    if (listing->count >= listing->limit)
        return STORE_SCAN_STOP;
    const uint8_t *data = (const uint8_t *) value->mv_data;
    char id [65];
    size_t location_len, store_at, store_len;
    if (key->mv_size == 64) {
        memcpy (id, key->mv_data, 64);
        id [64] = '\0';
    }
    if (key->mv_size != 64 || !s_valid_hex_key (id)) {
        store_set_error (self, "skipped an S3 object record with a bad key (%zu bytes)",
                         key->mv_size);
        return STORE_SCAN_NEXT;
    }
    //  The filter reads the fixed fields; the decode below copies the
    //  rest only for rows that are returned
    if (s_s3_check_value (self, value, &location_len, &store_at, &store_len))
        return STORE_SCAN_NEXT;
    bool wanted = data [S3_AT_STATE] == listing->state
               && (int64_t) store_be64_get (data + S3_AT_SINCE) < listing->before_us
               && (listing->state != QN_STORE_S3_LIVE
                   || store_be32_get (data + S3_AT_REFS) == 0);
    if (!wanted)
        return STORE_SCAN_NEXT;
    if (listing->count == listing->alloc) {
        size_t grown_alloc = listing->alloc? listing->alloc * 2: 16;
        qn_store_s3_object_t *grown = (qn_store_s3_object_t *) realloc (
            listing->objects, grown_alloc * sizeof (qn_store_s3_object_t));
        if (!grown) {
            store_set_error (self, "out of memory");
            return STORE_SCAN_FAIL;
        }
        listing->objects = grown;
        listing->alloc = grown_alloc;
    }
    qn_store_s3_object_t *object = &listing->objects [listing->count];
    memset (object, 0, sizeof *object);
    if (s_s3_decode (self, value, object))
        return STORE_SCAN_FAIL;     //  only out of memory: the value was checked
    memcpy (object->id, id, 65);
    listing->count++;
    return STORE_SCAN_NEXT;
}

//  A whole scan, like the blob index's: retention calls it once in a
//  while, and rows that do not decode are skipped (reported through
//  qn_store_error) so that one damaged row cannot stop retention.
int
qn_store_s3_list (qn_store_t *self, int state, int64_t before_us,
                  qn_store_s3_object_t **objects_p, size_t *count_p, size_t limit)
{
    assert (self);
    assert (objects_p);
    assert (count_p);
    *objects_p = NULL;
    *count_p = 0;
    if (state < QN_STORE_S3_LIVE || state > QN_STORE_S3_DELETED) {
        store_set_error (self, "invalid S3 object state %d", state);
        return -1;
    }
    MDB_txn *txn = store_read_begin (self);
    if (!txn)
        return -1;
    s_s3_listing_t listing = { state, before_us, limit, NULL, 0, 0 };
    int rc = store_scan (self, txn, DB_S3OBJECTS, NULL, 0, NULL, 0, 0,
                         s_visit_s3_object, &listing);
    store_read_end (self, txn);
    if (rc) {
        qn_store_s3_objects_free (&listing.objects, listing.count);
        return -1;
    }
    *objects_p = listing.objects;
    *count_p = listing.count;
    return 0;
}

//  ---- the cache ----

int
qn_store_put_cache (qn_store_t *self, const char *key, uint64_t run_id, uint32_t task,
                    uint32_t attempt)
{
    assert (self);
    if (store_need_txn (self) || !s_valid_hex_key (key))
        return -1;
    uint8_t value [16];
    store_be64_put (value, run_id);
    store_be32_put (value + 8, task);
    store_be32_put (value + 12, attempt);
    return store_put_raw (self, DB_CACHE, key, 64, value, sizeof value);
}

int
qn_store_get_cache (qn_store_t *self, const char *key, uint64_t *run_id_p, uint32_t *task_p,
                    uint32_t *attempt_p)
{
    assert (self);
    if (!s_valid_hex_key (key))
        return -1;
    MDB_txn *txn = store_read_begin (self);
    if (!txn)
        return -1;
    MDB_val value;
    int found = store_get_raw (self, txn, DB_CACHE, key, 64, &value);
    if (found == 1 && value.mv_size != 16)
        found = 0;
    if (found == 1) {
        const uint8_t *data = (const uint8_t *) value.mv_data;
        *run_id_p = store_be64_get (data);
        *task_p = store_be32_get (data + 8);
        *attempt_p = store_be32_get (data + 12);
    }
    store_read_end (self, txn);
    return found;
}

int
qn_store_delete_cache (qn_store_t *self, const char *key)
{
    assert (self);
    if (store_need_txn (self) || !s_valid_hex_key (key))
        return -1;
    return store_delete (self, DB_CACHE, key, 64);
}
