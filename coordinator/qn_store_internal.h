/*  qn_store_internal - what the files of the store share, and nobody else.

    The store is one class in several files (see the top of qn_store.c);
    qn_store.h is its face for the rest of the coordinator.  This header
    holds the object, the sub-database enum and the helpers that every
    record kind uses: key encoding, errors, transactions, record access
    and the one cursor scan.  Only the store's own files include it.

    One of the files of the qn_store class.
*/
#ifndef QN_STORE_INTERNAL_H_INCLUDED
#define QN_STORE_INTERNAL_H_INCLUDED

#include "qn_store.h"
#include <lmdb.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

//  Our key buffers; LMDB's own limit (511 by default) may lower it
#define QN_STORE_KEY_MAX        511

//  The sub-databases, in the order of store_db_names (qn_store.c)
typedef enum {
    DB_META,
    DB_WORKFLOWS,
    DB_VERSIONS,
    DB_RUNS,
    DB_RUNS_BY_WORKFLOW,
    DB_ACTIVE,
    DB_TASKS,
    DB_LOGS,
    DB_METRICS,
    DB_AGENTS,
    DB_PRINCIPALS,
    DB_SECRETS,
    DB_BLOBS,
    DB_CACHE,
    DB_S3OBJECTS,
    DB_SECRET_ACCESS,
    DB_API_TOKENS,
    DB_SCHED_TICKS,
    DB_SCHED_CURSORS,
    DB_SCHED_PAUSED,
    DB_SCHED_PENDING,
    DB_SCHED_TRIGGERED,
    DB_NOTIF_OUTBOX,
    DB_NOTIF_PENDING,
    DB_COUNT
} store_db_t;

extern const char *const store_db_names [DB_COUNT];

//  The last sequence of a run's logs or metrics, remembered so that an
//  append does not seek for it every time.  Direct-mapped by run id; an
//  aborted or failed transaction forgets everything (its appends are gone).
#define SEQ_CACHE_SIZE  64

typedef struct {
    uint64_t run_id;
    uint64_t last;
    bool valid;
} store_seq_cache_t;

struct _qn_store_t {
    store_seq_cache_t seq_cache [2][SEQ_CACHE_SIZE];    //  [0] logs, [1] metrics
    MDB_env *env;
    MDB_dbi dbi [DB_COUNT];
    MDB_txn *txn;               //  the open write transaction, or NULL
    bool txn_failed;            //  a write failed: the txn can only abort
    MDB_txn *rtxn;              //  read-only txn kept reset between reads
    size_t max_key;             //  LMDB's key size limit
    char error [1024];
    char txn_error [1024];      //  why the write txn failed, kept for commit
};

//  --------------------------------------------------------------------
//  Big-endian integers in keys and values

static inline void
store_be32_put (uint8_t *p, uint32_t v)
{
    p [0] = (uint8_t) (v >> 24);
    p [1] = (uint8_t) (v >> 16);
    p [2] = (uint8_t) (v >> 8);
    p [3] = (uint8_t) v;
}

static inline uint32_t
store_be32_get (const uint8_t *p)
{
    return ((uint32_t) p [0] << 24) | ((uint32_t) p [1] << 16)
         | ((uint32_t) p [2] << 8) | (uint32_t) p [3];
}

static inline void
store_be64_put (uint8_t *p, uint64_t v)
{
    store_be32_put (p, (uint32_t) (v >> 32));
    store_be32_put (p + 4, (uint32_t) v);
}

static inline uint64_t
store_be64_get (const uint8_t *p)
{
    return ((uint64_t) store_be32_get (p) << 32) | store_be32_get (p + 4);
}

//  --------------------------------------------------------------------
//  Helpers (qn_store.c)

//  Sets the message that qn_store_error returns.
void
    store_set_error (qn_store_t *self, const char *format, ...)
    __attribute__ ((format (printf, 2, 3)));

//  Grows a pointer array by one slot as needed.  0 or -1.
int
    store_array_push (qn_store_t *self, void ***array_p, size_t *count_p, size_t *alloc_p,
                      void *item);

//  Pointers being gathered by a scan's visits, grown by store_array_push
typedef struct {
    void **items;
    size_t count;
    size_t alloc;
} store_gathered_t;

//  Frees count protobuf messages (NULL ones skipped) and the array.
void
    store_free_messages (void **array, size_t count);

//  Checks that a name can form a key (with room for the '\0' and a
//  be64 suffix).  0 or -1.
int
    store_check_name (qn_store_t *self, const char *what, const char *name);

//  Every write goes through here: it needs an open, healthy write
//  transaction.  0 or -1.
int
    store_need_txn (qn_store_t *self);

//  Reads see the open write transaction's writes; otherwise they use the
//  kept read-only transaction, renewed for a fresh snapshot.  NULL on
//  failure.  store_read_end resets the read-only one.
MDB_txn *
    store_read_begin (qn_store_t *self);
void
    store_read_end (qn_store_t *self, MDB_txn *txn);

//  Records a failed LMDB write: the write transaction can only abort.
//  Returns -1.
int
    store_write_failed (qn_store_t *self, store_db_t db, int rc);

//  Packs msg straight into LMDB's reserved space.  flags may add
//  MDB_NOOVERWRITE.  0 or -1.
int
    store_put_message (qn_store_t *self, store_db_t db, const void *key, size_t key_size,
                       const ProtobufCMessage *msg, unsigned flags);
int
    store_put_raw (qn_store_t *self, store_db_t db, const void *key, size_t key_size,
                   const void *value, size_t value_size);

//  Deleting a key that is not there is fine.
int
    store_delete (qn_store_t *self, store_db_t db, const void *key, size_t key_size);

//  Looks up one raw value.  1 found, 0 not found, -1 error.
int
    store_get_raw (qn_store_t *self, MDB_txn *txn, store_db_t db, const void *key,
                   size_t key_size, MDB_val *value);

//  Decodes a stored value; NULL (reported through qn_store_error) when it
//  does not decode, which the caller skips.
ProtobufCMessage *
    store_decode (qn_store_t *self, store_db_t db, const ProtobufCMessageDescriptor *descriptor,
                  const MDB_val *value);

//  Looks up and decodes one record; NULL (with a message) when missing,
//  unreadable or undecodable.
ProtobufCMessage *
    store_get_message (qn_store_t *self, MDB_txn *txn, store_db_t db, const void *key,
                       size_t key_size, const ProtobufCMessageDescriptor *descriptor);

//  Opens a cursor, NULL with a message on failure.  For the seeks that are
//  not scans; a scan goes through store_scan.
MDB_cursor *
    store_cursor (qn_store_t *self, MDB_txn *txn, store_db_t db);

//  --------------------------------------------------------------------
//  The one cursor scan (qn_store.c)

//  What a visit tells the scan
typedef enum {
    STORE_SCAN_FAIL = -1,       //  end the scan as a failure (the visit set the error)
    STORE_SCAN_NEXT = 0,        //  go on to the next record
    STORE_SCAN_STOP = 1         //  end the scan as a success (a limit was reached)
} store_scan_t;

typedef store_scan_t (store_visit_fn) (qn_store_t *self, const MDB_val *key,
                                       const MDB_val *value, void *arg);

//  Newest first: from the last key with the prefix back to the first
#define STORE_SCAN_BACKWARD         1u
//  A failed cursor read ends the scan like its end does, without an error:
//  how the secret names, unreferenced blobs and a workflow's run ids have
//  always been listed (kept so: the split changed no behaviour)
#define STORE_SCAN_READ_ERROR_ENDS  2u

//  Visits the records of db whose keys start with prefix (every record
//  when prefix_len is 0), in key order, or in reverse with
//  STORE_SCAN_BACKWARD, until a key without the prefix, the end, or a visit
//  that does not return STORE_SCAN_NEXT.  A forward scan starts at from
//  (a key that starts with prefix) when it is not NULL; a backward one
//  starts at the last key before from (from itself left out: a cursor)
//  when it is not NULL, else at the end of the prefix's range.  Records that a visit
//  does not want (wrong key size, undecodable, filtered out) are its to
//  skip.  0 when the scan ended or was stopped; -1 when the cursor could
//  not be opened or read (with a message) or a visit failed.
int
    store_scan (qn_store_t *self, MDB_txn *txn, store_db_t db, const void *prefix,
                size_t prefix_len, const void *from, size_t from_len, unsigned flags,
                store_visit_fn *visit, void *arg);

#endif
