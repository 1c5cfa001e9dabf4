/*  qn_store - the coordinator's metadata store on LMDB.  See qn_store.h.

    Layout: one LMDB environment in the data directory, one named
    sub-database per record kind.  Integers in keys are big-endian so that
    LMDB's byte order is numeric order:

        meta              "schema" -> be32, "next_run_id" -> be64
        workflows         name -> be32 latest version
        versions          name '\0' be32 version -> SubmitWorkflow
        runs              be64 run_id -> RunInfo (without tasks)
        runs_by_workflow  name '\0' be64 run_id -> empty
        active            be64 run_id -> empty (queued or running runs)
        tasks             be64 run_id be32 index -> TaskInfo
        logs              be64 run_id be64 log_seq -> LogLine
        metrics           be64 run_id be64 metric_seq -> MetricRecord
        agents            name -> AgentInfo
        principals        public key (Z85) -> Principal
        secrets           name -> opaque (already encrypted) bytes
        secret_access     name -> SecretAccess (who may use it)
        blobs             sha256 hex -> be64 size, be32 references
        cache             cache key hex -> be64 run_id, be32 task, be32 attempt
        s3objects         object id hex -> u8 format (1), u8 state, be32 references,
                          be64 size, be64 since_us, be16 length + location,
                          be16 length + packed ArtifactStore (exact length)

    Names never contain '\0', so "name '\0'" is a prefix that no other
    name's keys share.  Log and metric sequences are not kept as counters:
    the next one is found from the last key of the run, so there is
    nothing that could disagree with the records themselves.

    s3objects rows carry their own format byte so that a later layout can
    be told from damage; a store opened by this code gains the (empty)
    sub-database at open, so it needed no schema step.  secret_access came
    the same way: a secret without a record there is for role admin only,
    which is what an older store's secrets mean.

    Map size: 64 GiB on 64-bit hosts (1 GiB on 32-bit), or smaller when the
    process cannot map that much; it is only address space, the file grows
    with the data.  The environment variable
    QANAT_STORE_MAP_SIZE (bytes) overrides it, which tests use to provoke a
    full map; an existing larger file wins over a smaller setting.
*/
#include "qn_store.h"
#include <sys/statvfs.h>

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <lmdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>

//  Stop a filtered read after this many records that did not match, so
//  that one call cannot scan a huge run; the caller continues from *last_p.
#define QN_STORE_SCAN_CAP       100000
#define QN_STORE_LOG_LIMIT      1000
#define QN_STORE_RUN_LIMIT      50
//  Our key buffers; LMDB's own limit (511 by default) may lower it
#define QN_STORE_KEY_MAX        511

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
    DB_COUNT
} s_db_t;

static const char *s_db_names [DB_COUNT] = {
    "meta", "workflows", "versions", "runs", "runs_by_workflow",
    "active", "tasks", "logs", "metrics", "agents", "principals", "secrets", "blobs", "cache",
    "s3objects", "secret_access"
};

//  The last sequence of a run's logs or metrics, remembered so that an
//  append does not seek for it every time.  Direct-mapped by run id; an
//  aborted or failed transaction forgets everything (its appends are gone).
#define SEQ_CACHE_SIZE  64

typedef struct {
    uint64_t run_id;
    uint64_t last;
    bool valid;
} s_seq_cache_t;

struct _qn_store_t {
    s_seq_cache_t seq_cache [2][SEQ_CACHE_SIZE];    //  [0] logs, [1] metrics
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
//  Small helpers

static void
s_be32_put (uint8_t *p, uint32_t v)
{
    p [0] = (uint8_t) (v >> 24);
    p [1] = (uint8_t) (v >> 16);
    p [2] = (uint8_t) (v >> 8);
    p [3] = (uint8_t) v;
}

static uint32_t
s_be32_get (const uint8_t *p)
{
    return ((uint32_t) p [0] << 24) | ((uint32_t) p [1] << 16)
         | ((uint32_t) p [2] << 8) | (uint32_t) p [3];
}

static void
s_be64_put (uint8_t *p, uint64_t v)
{
    s_be32_put (p, (uint32_t) (v >> 32));
    s_be32_put (p + 4, (uint32_t) v);
}

static uint64_t
s_be64_get (const uint8_t *p)
{
    return ((uint64_t) s_be32_get (p) << 32) | s_be32_get (p + 4);
}

static void
s_error (qn_store_t *self, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    vsnprintf (self->error, sizeof self->error, format, args);
    va_end (args);
}

//  Sets *error_p (if given) to a malloc'd message.
static void
s_new_error (char **error_p, const char *format, ...)
{
    if (!error_p)
        return;
    va_list args;
    va_start (args, format);
    char *message = NULL;
    if (vasprintf (&message, format, args) < 0)
        message = NULL;
    va_end (args);
    *error_p = message? message: strdup ("cannot open store");
}

//  Grows a pointer array by one slot as needed.  0 or -1.
static int
s_array_push (qn_store_t *self, void ***array_p, size_t *count_p, size_t *alloc_p, void *item)
{
    if (*count_p == *alloc_p) {
        size_t alloc = *alloc_p? *alloc_p * 2: 16;
        void **array = (void **) realloc (*array_p, alloc * sizeof (void *));
        if (!array) {
            s_error (self, "out of memory");
            return -1;
        }
        *array_p = array;
        *alloc_p = alloc;
    }
    (*array_p) [(*count_p)++] = item;
    return 0;
}

static void
s_free_messages (void **array, size_t count)
{
    for (size_t index = 0; index < count; index++)
        if (array [index])
            protobuf_c_message_free_unpacked ((ProtobufCMessage *) array [index], NULL);
    free (array);
}

void
qn_store_free_array (void *array, size_t count)
{
    s_free_messages ((void **) array, count);
}

//  Checks that a name can form a key (with room for the '\0' and a
//  be64 suffix).  0 or -1.
static int
s_check_name (qn_store_t *self, const char *what, const char *name)
{
    if (!name || !*name) {
        s_error (self, "%s name is empty", what);
        return -1;
    }
    if (strlen (name) + 1 + 8 > self->max_key) {
        s_error (self, "%s name is too long (%zu bytes, at most %zu)",
                 what, strlen (name), self->max_key - 9);
        return -1;
    }
    return 0;
}

//  --------------------------------------------------------------------
//  Transactions

//  Every write goes through here: it needs an open, healthy write
//  transaction.  0 or -1.
static int
s_need_txn (qn_store_t *self)
{
    if (!self->txn) {
        s_error (self, "no open transaction");
        return -1;
    }
    if (self->txn_failed) {
        s_error (self, "transaction already failed: %s", self->txn_error);
        return -1;
    }
    return 0;
}

//  Reads see the open write transaction's writes; otherwise they use the
//  kept read-only transaction, renewed for a fresh snapshot.  NULL on
//  failure.
static MDB_txn *
s_read_begin (qn_store_t *self)
{
    if (self->txn) {
        if (self->txn_failed) {
            s_error (self, "transaction already failed: %s", self->txn_error);
            return NULL;
        }
        return self->txn;
    }
    int rc;
    if (self->rtxn) {
        rc = mdb_txn_renew (self->rtxn);
        if (rc) {
            mdb_txn_abort (self->rtxn);
            self->rtxn = NULL;
        }
    }
    if (!self->rtxn) {
        rc = mdb_txn_begin (self->env, NULL, MDB_RDONLY, &self->rtxn);
        if (rc) {
            self->rtxn = NULL;
            s_error (self, "cannot start read transaction: %s", mdb_strerror (rc));
            return NULL;
        }
    }
    return self->rtxn;
}

static void
s_read_end (qn_store_t *self, MDB_txn *txn)
{
    if (txn && txn != self->txn)
        mdb_txn_reset (txn);
}

//  Records a failed LMDB write.  LMDB marks the transaction unusable after
//  most write errors, and even when it does not, the caller's group of
//  writes is now half done: either way the transaction may only abort.
static int
s_write_failed (qn_store_t *self, s_db_t db, int rc)
{
    s_error (self, "write to %s failed: %s", s_db_names [db], mdb_strerror (rc));
    memcpy (self->txn_error, self->error, sizeof self->error);
    self->txn_failed = true;
    return -1;
}

int
qn_store_begin (qn_store_t *self)
{
    assert (self);
    if (self->txn)
        return 0;
    int rc = mdb_txn_begin (self->env, NULL, 0, &self->txn);
    if (rc) {
        self->txn = NULL;
        s_error (self, "cannot start write transaction: %s", mdb_strerror (rc));
        return -1;
    }
    self->txn_failed = false;
    return 0;
}

int
qn_store_commit (qn_store_t *self)
{
    assert (self);
    if (!self->txn)
        return 0;
    if (self->txn_failed) {
        mdb_txn_abort (self->txn);
        self->txn = NULL;
        self->txn_failed = false;
        memset (self->seq_cache, 0, sizeof self->seq_cache);
        s_error (self, "commit failed: %s", self->txn_error);
        return -1;
    }
    int rc = mdb_txn_commit (self->txn);
    //  mdb_txn_commit frees the transaction whether or not it succeeds
    self->txn = NULL;
    if (rc) {
        memset (self->seq_cache, 0, sizeof self->seq_cache);
        //  LMDB turns a short write on a full disk into EIO: say what it is.
        struct statvfs fs;
        const char *path = NULL;
        mdb_env_get_path (self->env, &path);
        if (rc != ENOSPC && path && statvfs (path, &fs) == 0
        &&  (uint64_t) fs.f_bavail * fs.f_frsize < 4 * 1024 * 1024)
            s_error (self, "commit failed: %s: no space left on the device of %s "
                     "(%llu KiB free)", mdb_strerror (rc), path,
                     (unsigned long long) fs.f_bavail * fs.f_frsize / 1024);
        else
            s_error (self, "commit failed: %s", mdb_strerror (rc));
        return -1;
    }
    return 0;
}

void
qn_store_abort (qn_store_t *self)
{
    assert (self);
    if (self->txn) {
        mdb_txn_abort (self->txn);
        self->txn = NULL;
    }
    self->txn_failed = false;
    memset (self->seq_cache, 0, sizeof self->seq_cache);
}

bool
qn_store_in_txn (qn_store_t *self)
{
    assert (self);
    return self->txn != NULL;
}

const char *
qn_store_error (qn_store_t *self)
{
    assert (self);
    return self->error;
}

//  --------------------------------------------------------------------
//  Record access

//  Packs msg straight into LMDB's reserved space.  flags may add
//  MDB_NOOVERWRITE.  0 or -1.
static int
s_put_message (qn_store_t *self, s_db_t db, const void *key, size_t key_size,
               const ProtobufCMessage *msg, unsigned flags)
{
    size_t size = protobuf_c_message_get_packed_size (msg);
    MDB_val k = { key_size, (void *) key };
    MDB_val v = { size, NULL };
    int rc = mdb_put (self->txn, self->dbi [db], &k, &v, flags | MDB_RESERVE);
    if (rc)
        return s_write_failed (self, db, rc);
    protobuf_c_message_pack (msg, (uint8_t *) v.mv_data);
    return 0;
}

static int
s_put_raw (qn_store_t *self, s_db_t db, const void *key, size_t key_size,
           const void *value, size_t value_size)
{
    MDB_val k = { key_size, (void *) key };
    MDB_val v = { value_size, (void *) value };
    int rc = mdb_put (self->txn, self->dbi [db], &k, &v, 0);
    if (rc)
        return s_write_failed (self, db, rc);
    return 0;
}

//  Deleting a key that is not there is fine.
static int
s_delete (qn_store_t *self, s_db_t db, const void *key, size_t key_size)
{
    MDB_val k = { key_size, (void *) key };
    int rc = mdb_del (self->txn, self->dbi [db], &k, NULL);
    if (rc && rc != MDB_NOTFOUND)
        return s_write_failed (self, db, rc);
    return 0;
}

//  Looks up one raw value.  1 found, 0 not found, -1 error.
static int
s_get_raw (qn_store_t *self, MDB_txn *txn, s_db_t db, const void *key, size_t key_size,
           MDB_val *value)
{
    MDB_val k = { key_size, (void *) key };
    int rc = mdb_get (txn, self->dbi [db], &k, value);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc) {
        s_error (self, "read from %s failed: %s", s_db_names [db], mdb_strerror (rc));
        return -1;
    }
    return 1;
}

//  Decodes a stored value; an undecodable one is reported and skipped by
//  the caller.
static ProtobufCMessage *
s_decode (qn_store_t *self, s_db_t db, const ProtobufCMessageDescriptor *descriptor,
          const MDB_val *value)
{
    ProtobufCMessage *msg = protobuf_c_message_unpack (
        descriptor, NULL, value->mv_size, (const uint8_t *) value->mv_data);
    if (!msg)
        s_error (self, "skipped an undecodable record in %s (%zu bytes)",
                 s_db_names [db], value->mv_size);
    return msg;
}

//  Looks up and decodes one record; NULL (with a message) when missing,
//  unreadable or undecodable.
static ProtobufCMessage *
s_get_message (qn_store_t *self, MDB_txn *txn, s_db_t db, const void *key, size_t key_size,
               const ProtobufCMessageDescriptor *descriptor)
{
    MDB_val value;
    int rc = s_get_raw (self, txn, db, key, key_size, &value);
    if (rc <= 0) {
        if (rc == 0)
            s_error (self, "no such record in %s", s_db_names [db]);
        return NULL;
    }
    return s_decode (self, db, descriptor, &value);
}

static MDB_cursor *
s_cursor (qn_store_t *self, MDB_txn *txn, s_db_t db)
{
    MDB_cursor *cursor;
    int rc = mdb_cursor_open (txn, self->dbi [db], &cursor);
    if (rc) {
        s_error (self, "cannot open cursor on %s: %s", s_db_names [db], mdb_strerror (rc));
        return NULL;
    }
    return cursor;
}

//  Finds the last sequence number under run_id in a (be64 run_id, be64
//  seq) database: 0 when the run has none.  Seeks to (run_id, max) and
//  steps back, which is O(log n) and needs no run_id + 1 that could
//  overflow.  0 or -1.
static int
s_last_seq (qn_store_t *self, MDB_txn *txn, s_db_t db, uint64_t run_id, uint64_t *last_p)
{
    *last_p = 0;
    MDB_cursor *cursor = s_cursor (self, txn, db);
    if (!cursor)
        return -1;
    uint8_t probe [16];
    s_be64_put (probe, run_id);
    s_be64_put (probe + 8, UINT64_MAX);
    MDB_val key = { sizeof probe, probe }, value;
    int rc = mdb_cursor_get (cursor, &key, &value, MDB_SET_RANGE);
    if (rc == 0 && key.mv_size == sizeof probe && memcmp (key.mv_data, probe, sizeof probe) == 0) {
        mdb_cursor_close (cursor);
        *last_p = UINT64_MAX;
        return 0;
    }
    if (rc == 0)
        rc = mdb_cursor_get (cursor, &key, &value, MDB_PREV);
    else
    if (rc == MDB_NOTFOUND)
        rc = mdb_cursor_get (cursor, &key, &value, MDB_LAST);
    mdb_cursor_close (cursor);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc) {
        s_error (self, "read from %s failed: %s", s_db_names [db], mdb_strerror (rc));
        return -1;
    }
    if (key.mv_size == 16 && memcmp (key.mv_data, probe, 8) == 0)
        *last_p = s_be64_get ((const uint8_t *) key.mv_data + 8);
    return 0;
}

//  Appends msg under (run_id, last + 1).  NOOVERWRITE so that a stray key
//  in the store can never make us overwrite an existing record.
static int
s_append (qn_store_t *self, s_db_t db, uint64_t run_id, const ProtobufCMessage *msg,
          uint64_t *seq_p)
{
    s_seq_cache_t *cached = &self->seq_cache [db == DB_LOGS? 0: 1][run_id % SEQ_CACHE_SIZE];
    uint64_t last;
    if (cached->valid && cached->run_id == run_id)
        last = cached->last;
    else
    if (s_last_seq (self, self->txn, db, run_id, &last))
        return -1;
    if (last == UINT64_MAX) {
        s_error (self, "run %" PRIu64 " has no sequence numbers left in %s",
                 run_id, s_db_names [db]);
        return -1;
    }
    uint8_t key [16];
    s_be64_put (key, run_id);
    s_be64_put (key + 8, last + 1);
    if (s_put_message (self, db, key, sizeof key, msg, MDB_NOOVERWRITE)) {
        cached->valid = false;
        return -1;
    }
    cached->run_id = run_id;
    cached->last = last + 1;
    cached->valid = true;
    if (seq_p)
        *seq_p = last + 1;
    return 0;
}

//  --------------------------------------------------------------------
//  Opening

//  Brings an older store up to this schema, inside the opening
//  transaction.  There is only version 1 so far; a v1 -> v2 step would go
//  here as "if (from < 2) { ...; from = 2; }", each step rewriting the
//  records it changes.
static int
s_migrate (qn_store_t *self, MDB_txn *txn, uint32_t from)
{
    (void) txn;
    if (from < 1) {
        s_error (self, "store schema %u is not a qanat schema", from);
        return -1;
    }
    return 0;
}

//  Opens the sub-databases and checks (or writes) the schema version, in
//  one write transaction.  0 or -1 with self->error set.
static int
s_open_databases (qn_store_t *self)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin (self->env, NULL, 0, &txn);
    if (rc) {
        s_error (self, "cannot start transaction: %s", mdb_strerror (rc));
        return -1;
    }
    for (int db = 0; db < DB_COUNT; db++) {
        rc = mdb_dbi_open (txn, s_db_names [db], MDB_CREATE, &self->dbi [db]);
        if (rc) {
            s_error (self, "cannot open database %s: %s", s_db_names [db], mdb_strerror (rc));
            goto fail;
        }
    }
    MDB_val key = { 6, (void *) "schema" }, value;
    rc = mdb_get (txn, self->dbi [DB_META], &key, &value);
    if (rc == MDB_NOTFOUND) {
        //  A new store
        uint8_t schema [4];
        s_be32_put (schema, QN_STORE_SCHEMA_VERSION);
        value.mv_size = sizeof schema;
        value.mv_data = schema;
        rc = mdb_put (txn, self->dbi [DB_META], &key, &value, 0);
        if (rc) {
            s_error (self, "cannot write schema version: %s", mdb_strerror (rc));
            goto fail;
        }
    }
    else
    if (rc) {
        s_error (self, "cannot read schema version: %s", mdb_strerror (rc));
        goto fail;
    }
    else {
        if (value.mv_size != 4) {
            s_error (self, "store schema record is corrupt (%zu bytes)", value.mv_size);
            goto fail;
        }
        uint32_t schema = s_be32_get ((const uint8_t *) value.mv_data);
        if (schema > QN_STORE_SCHEMA_VERSION) {
            s_error (self, "store schema %u is newer than this qanatd (%d)",
                     schema, QN_STORE_SCHEMA_VERSION);
            goto fail;
        }
        if (schema < QN_STORE_SCHEMA_VERSION) {
            if (s_migrate (self, txn, schema))
                goto fail;
            uint8_t current [4];
            s_be32_put (current, QN_STORE_SCHEMA_VERSION);
            value.mv_size = sizeof current;
            value.mv_data = current;
            rc = mdb_put (txn, self->dbi [DB_META], &key, &value, 0);
            if (rc) {
                s_error (self, "cannot write schema version: %s", mdb_strerror (rc));
                goto fail;
            }
        }
    }
    rc = mdb_txn_commit (txn);
    if (rc) {
        s_error (self, "cannot commit store setup: %s", mdb_strerror (rc));
        return -1;
    }
    return 0;

fail:
    mdb_txn_abort (txn);
    return -1;
}

//  The map sizes to try, largest first, ending with 0.  A process may
//  not get 64 GiB of address space (ulimit -v, valgrind), so smaller maps
//  are tried when the mapping itself fails; an explicit
//  QANAT_STORE_MAP_SIZE is the only size tried.
static void
s_map_sizes (size_t sizes [5])
{
    const char *text = getenv ("QANAT_STORE_MAP_SIZE");
    if (text && *text) {
        char *end;
        errno = 0;
        unsigned long long value = strtoull (text, &end, 10);
        //  Anything smaller than 64 KiB cannot even hold the databases
        if (errno == 0 && *end == '\0' && value >= 65536 && value <= SIZE_MAX) {
            sizes [0] = (size_t) value;
            sizes [1] = 0;
            return;
        }
    }
    if (sizeof (size_t) >= 8) {
        sizes [0] = (size_t) 64 << 30;
        sizes [1] = (size_t) 16 << 30;
        sizes [2] = (size_t) 4 << 30;
        sizes [3] = (size_t) 1 << 30;
    }
    else {
        sizes [0] = (size_t) 1 << 30;
        sizes [1] = (size_t) 512 << 20;
        sizes [2] = (size_t) 256 << 20;
        sizes [3] = (size_t) 128 << 20;
    }
    sizes [4] = 0;
}

//  Creates and opens the environment with one map size.  On failure the
//  environment is closed again (LMDB requires that after a failed open).
static int
s_env_open (qn_store_t *self, const char *dir, bool durable, size_t map_size)
{
    int rc = mdb_env_create (&self->env);
    if (rc) {
        self->env = NULL;
        return rc;
    }
    rc = mdb_env_set_maxdbs (self->env, DB_COUNT + 4);
    if (rc == 0)
        rc = mdb_env_set_mapsize (self->env, map_size);
    if (rc == 0) {
        //  NOTLS: read transactions are not tied to threads; NOSYNC only
        //  when the caller gave up durability (LMDB still never corrupts)
        unsigned flags = MDB_NOTLS | (durable? 0: MDB_NOSYNC);
        rc = mdb_env_open (self->env, dir, flags, 0600);
    }
    if (rc) {
        mdb_env_close (self->env);
        self->env = NULL;
    }
    return rc;
}

qn_store_t *
qn_store_new (const char *dir, bool durable, char **error_p)
{
    if (error_p)
        *error_p = NULL;
    if (!dir || !*dir) {
        s_new_error (error_p, "store directory is empty");
        return NULL;
    }
    if (mkdir (dir, 0700) && errno != EEXIST) {
        s_new_error (error_p, "cannot create store directory %s: %s", dir, strerror (errno));
        return NULL;
    }
    struct stat st;
    if (stat (dir, &st)) {
        s_new_error (error_p, "cannot use store directory %s: %s", dir, strerror (errno));
        return NULL;
    }
    if (!S_ISDIR (st.st_mode)) {
        s_new_error (error_p, "store directory %s is not a directory", dir);
        return NULL;
    }
    qn_store_t *self = (qn_store_t *) calloc (1, sizeof (qn_store_t));
    if (!self) {
        s_new_error (error_p, "out of memory");
        return NULL;
    }
    size_t sizes [5];
    s_map_sizes (sizes);
    int rc = 0;
    for (int index = 0; sizes [index]; index++) {
        rc = s_env_open (self, dir, durable, sizes [index]);
        //  Only a failed mapping is worth retrying smaller
        if (rc != EINVAL && rc != ENOMEM)
            break;
    }
    if (rc) {
        s_new_error (error_p, "cannot open store in %s: %s", dir, mdb_strerror (rc));
        qn_store_destroy (&self);
        return NULL;
    }
    //  Clear reader slots left by a process that died holding them, which
    //  would otherwise keep old pages from being reused
    int dead = 0;
    mdb_reader_check (self->env, &dead);
    int max_key = mdb_env_get_maxkeysize (self->env);
    self->max_key = max_key > QN_STORE_KEY_MAX? QN_STORE_KEY_MAX: (size_t) max_key;
    assert (self->max_key > 16);
    strcpy (self->error, "no error");
    if (s_open_databases (self)) {
        s_new_error (error_p, "%s: %s", dir, self->error);
        qn_store_destroy (&self);
        return NULL;
    }
    return self;
}

//  Uncommitted writes are dropped.
void
qn_store_destroy (qn_store_t **self_p)
{
    assert (self_p);
    qn_store_t *self = *self_p;
    if (!self)
        return;
    if (self->txn)
        mdb_txn_abort (self->txn);
    if (self->rtxn)
        mdb_txn_abort (self->rtxn);
    if (self->env)
        mdb_env_close (self->env);
    free (self);
    *self_p = NULL;
}

//  --------------------------------------------------------------------
//  Workflows

//  Key name '\0' be32 version, into buffer (sized by s_check_name's limit).
static size_t
s_version_key (uint8_t *buffer, const char *name, uint32_t version)
{
    size_t len = strlen (name);
    memcpy (buffer, name, len + 1);
    s_be32_put (buffer + len + 1, version);
    return len + 1 + 4;
}

//  The latest version number of name, 0 when none.  0 or -1.
static int
s_latest_version (qn_store_t *self, MDB_txn *txn, const char *name, uint32_t *version_p)
{
    *version_p = 0;
    MDB_val value;
    int rc = s_get_raw (self, txn, DB_WORKFLOWS, name, strlen (name), &value);
    if (rc < 0)
        return -1;
    if (rc == 1) {
        if (value.mv_size != 4) {
            s_error (self, "corrupt latest version of workflow %s", name);
            return -1;
        }
        *version_p = s_be32_get ((const uint8_t *) value.mv_data);
    }
    return 0;
}

int
qn_store_put_workflow (qn_store_t *self, const char *name, const char *filename,
                       const void *source, size_t len, uint32_t *version_p, bool *created_p)
{
    assert (self);
    if (s_need_txn (self) || s_check_name (self, "workflow", name))
        return -1;
    if (!source && len) {
        s_error (self, "workflow source is missing");
        return -1;
    }
    uint32_t latest;
    if (s_latest_version (self, self->txn, name, &latest))
        return -1;

    uint8_t key [QN_STORE_KEY_MAX];
    size_t key_size;
    if (latest > 0) {
        key_size = s_version_key (key, name, latest);
        Qanat__SubmitWorkflow *stored = (Qanat__SubmitWorkflow *) s_get_message (
            self, self->txn, DB_VERSIONS, key, key_size, &qanat__submit_workflow__descriptor);
        //  A missing or undecodable latest version just gets a new one
        bool same = stored
                 && stored->source.len == len
                 && (len == 0 || memcmp (stored->source.data, source, len) == 0);
        if (stored)
            protobuf_c_message_free_unpacked ((ProtobufCMessage *) stored, NULL);
        if (same) {
            if (version_p)
                *version_p = latest;
            if (created_p)
                *created_p = false;
            return 0;
        }
        if (latest == UINT32_MAX) {
            s_error (self, "workflow %s has no version numbers left", name);
            return -1;
        }
    }
    uint32_t version = latest + 1;
    Qanat__SubmitWorkflow submit = QANAT__SUBMIT_WORKFLOW__INIT;
    submit.filename = (char *) (filename? filename: "");
    submit.source.data = (uint8_t *) source;
    submit.source.len = len;
    key_size = s_version_key (key, name, version);
    if (s_put_message (self, DB_VERSIONS, key, key_size, &submit.base, 0))
        return -1;
    uint8_t be_version [4];
    s_be32_put (be_version, version);
    if (s_put_raw (self, DB_WORKFLOWS, name, strlen (name), be_version, sizeof be_version))
        return -1;
    if (version_p)
        *version_p = version;
    if (created_p)
        *created_p = true;
    return 0;
}

//  version 0 means the latest version.
Qanat__SubmitWorkflow *
qn_store_get_workflow (qn_store_t *self, const char *name, uint32_t version)
{
    assert (self);
    if (s_check_name (self, "workflow", name))
        return NULL;
    MDB_txn *txn = s_read_begin (self);
    if (!txn)
        return NULL;
    Qanat__SubmitWorkflow *submit = NULL;
    if (version == 0 && s_latest_version (self, txn, name, &version) == 0 && version == 0)
        s_error (self, "no workflow %s", name);
    if (version > 0) {
        uint8_t key [QN_STORE_KEY_MAX];
        size_t key_size = s_version_key (key, name, version);
        submit = (Qanat__SubmitWorkflow *) s_get_message (
            self, txn, DB_VERSIONS, key, key_size, &qanat__submit_workflow__descriptor);
    }
    s_read_end (self, txn);
    return submit;
}

//  --------------------------------------------------------------------
//  Runs

int
qn_store_new_run_id (qn_store_t *self, uint64_t *run_id_p)
{
    assert (self);
    assert (run_id_p);
    if (s_need_txn (self))
        return -1;
    static const char name [] = "next_run_id";
    MDB_val value;
    int rc = s_get_raw (self, self->txn, DB_META, name, strlen (name), &value);
    if (rc < 0)
        return -1;
    uint64_t next = 1;
    if (rc == 1) {
        if (value.mv_size != 8) {
            s_error (self, "corrupt next run id record (%zu bytes)", value.mv_size);
            return -1;
        }
        next = s_be64_get ((const uint8_t *) value.mv_data);
    }
    if (next == 0 || next == UINT64_MAX) {
        s_error (self, "no run ids left");
        return -1;
    }
    uint8_t be_next [8];
    s_be64_put (be_next, next + 1);
    if (s_put_raw (self, DB_META, name, strlen (name), be_next, sizeof be_next))
        return -1;
    *run_id_p = next;
    return 0;
}

static size_t
s_run_index_key (uint8_t *buffer, const char *workflow, uint64_t run_id)
{
    size_t len = strlen (workflow);
    memcpy (buffer, workflow, len + 1);
    s_be64_put (buffer + len + 1, run_id);
    return len + 1 + 8;
}

//  Decodes the run stored under key; the key's id is the truth.
static Qanat__RunInfo *
s_get_run (qn_store_t *self, MDB_txn *txn, uint64_t run_id)
{
    uint8_t key [8];
    s_be64_put (key, run_id);
    Qanat__RunInfo *run = (Qanat__RunInfo *) s_get_message (
        self, txn, DB_RUNS, key, sizeof key, &qanat__run_info__descriptor);
    if (run)
        run->run_id = run_id;
    return run;
}

int
qn_store_put_run (qn_store_t *self, const Qanat__RunInfo *run)
{
    assert (self);
    assert (run);
    if (s_need_txn (self))
        return -1;
    const char *workflow = run->workflow? run->workflow: "";
    //  The index key allows an empty workflow; only the length matters
    if (strlen (workflow) + 1 + 8 > self->max_key) {
        s_error (self, "workflow name is too long");
        return -1;
    }
    uint8_t key [8];
    s_be64_put (key, run->run_id);

    //  A run that changed workflow (which the coordinator never does)
    //  must not stay listed under the old one
    MDB_val old_value;
    int rc = s_get_raw (self, self->txn, DB_RUNS, key, sizeof key, &old_value);
    if (rc < 0)
        return -1;
    if (rc == 1) {
        Qanat__RunInfo *old = qanat__run_info__unpack (
            NULL, old_value.mv_size, (const uint8_t *) old_value.mv_data);
        if (old && old->workflow && strcmp (old->workflow, workflow) != 0
        &&  strlen (old->workflow) + 1 + 8 <= self->max_key) {
            uint8_t old_index [QN_STORE_KEY_MAX];
            size_t size = s_run_index_key (old_index, old->workflow, run->run_id);
            rc = s_delete (self, DB_RUNS_BY_WORKFLOW, old_index, size);
        }
        else
            rc = 0;
        if (old)
            qanat__run_info__free_unpacked (old, NULL);
        if (rc)
            return -1;
    }
    //  Tasks have their own records; a shallow copy leaves the caller's
    //  struct untouched
    Qanat__RunInfo copy = *run;
    copy.n_tasks = 0;
    copy.tasks = NULL;
    if (s_put_message (self, DB_RUNS, key, sizeof key, &copy.base, 0))
        return -1;

    uint8_t index [QN_STORE_KEY_MAX];
    size_t index_size = s_run_index_key (index, workflow, run->run_id);
    if (s_put_raw (self, DB_RUNS_BY_WORKFLOW, index, index_size, "", 0))
        return -1;

    if (run->status == QANAT__RUN_STATUS__RUN_QUEUED
    ||  run->status == QANAT__RUN_STATUS__RUN_RUNNING)
        return s_put_raw (self, DB_ACTIVE, key, sizeof key, "", 0);
    else
        return s_delete (self, DB_ACTIVE, key, sizeof key);
}

Qanat__RunInfo *
qn_store_get_run (qn_store_t *self, uint64_t run_id)
{
    assert (self);
    MDB_txn *txn = s_read_begin (self);
    if (!txn)
        return NULL;
    Qanat__RunInfo *run = s_get_run (self, txn, run_id);
    s_read_end (self, txn);
    return run;
}

//  Walks runs_by_workflow backwards from the end of workflow's range
//  (the first key past "workflow '\0' ..." is "workflow '\1'").
static int
s_list_workflow_runs (qn_store_t *self, MDB_txn *txn, const char *workflow, uint32_t limit,
                      Qanat__RunList *list, size_t *alloc_p)
{
    size_t len = strlen (workflow);
    if (len + 1 + 8 > self->max_key)
        return 0;               //  such a workflow cannot have runs
    MDB_cursor *cursor = s_cursor (self, txn, DB_RUNS_BY_WORKFLOW);
    if (!cursor)
        return -1;
    uint8_t probe [QN_STORE_KEY_MAX];
    memcpy (probe, workflow, len);
    probe [len] = 1;
    MDB_val key = { len + 1, probe }, value;
    int rc = mdb_cursor_get (cursor, &key, &value, MDB_SET_RANGE);
    if (rc == 0)
        rc = mdb_cursor_get (cursor, &key, &value, MDB_PREV);
    else
    if (rc == MDB_NOTFOUND)
        rc = mdb_cursor_get (cursor, &key, &value, MDB_LAST);
    int result = 0;
    while (rc == 0 && list->n_runs < limit) {
        const uint8_t *data = (const uint8_t *) key.mv_data;
        if (key.mv_size < len + 1 || memcmp (data, workflow, len) != 0 || data [len] != 0)
            break;              //  before the workflow's range
        if (key.mv_size == len + 1 + 8) {
            Qanat__RunInfo *run = s_get_run (self, txn, s_be64_get (data + len + 1));
            //  A dangling or undecodable entry is skipped
            if (run && s_array_push (self, (void ***) &list->runs, &list->n_runs, alloc_p, run)) {
                qanat__run_info__free_unpacked (run, NULL);
                result = -1;
                break;
            }
        }
        rc = mdb_cursor_get (cursor, &key, &value, MDB_PREV);
    }
    if (rc && rc != MDB_NOTFOUND) {
        s_error (self, "read from runs_by_workflow failed: %s", mdb_strerror (rc));
        result = -1;
    }
    mdb_cursor_close (cursor);
    return result;
}

static int
s_list_all_runs (qn_store_t *self, MDB_txn *txn, uint32_t limit, Qanat__RunList *list,
                 size_t *alloc_p)
{
    MDB_cursor *cursor = s_cursor (self, txn, DB_RUNS);
    if (!cursor)
        return -1;
    MDB_val key, value;
    int rc = mdb_cursor_get (cursor, &key, &value, MDB_LAST);
    int result = 0;
    while (rc == 0 && list->n_runs < limit) {
        if (key.mv_size == 8) {
            Qanat__RunInfo *run = (Qanat__RunInfo *) s_decode (
                self, DB_RUNS, &qanat__run_info__descriptor, &value);
            if (run) {
                run->run_id = s_be64_get ((const uint8_t *) key.mv_data);
                if (s_array_push (self, (void ***) &list->runs, &list->n_runs, alloc_p, run)) {
                    qanat__run_info__free_unpacked (run, NULL);
                    result = -1;
                    break;
                }
            }
        }
        rc = mdb_cursor_get (cursor, &key, &value, MDB_PREV);
    }
    if (rc && rc != MDB_NOTFOUND) {
        s_error (self, "read from runs failed: %s", mdb_strerror (rc));
        result = -1;
    }
    mdb_cursor_close (cursor);
    return result;
}

Qanat__RunList *
qn_store_list_runs (qn_store_t *self, const char *workflow, uint32_t limit)
{
    assert (self);
    if (limit == 0)
        limit = QN_STORE_RUN_LIMIT;
    Qanat__RunList *list = (Qanat__RunList *) malloc (sizeof (Qanat__RunList));
    if (!list) {
        s_error (self, "out of memory");
        return NULL;
    }
    qanat__run_list__init (list);
    MDB_txn *txn = s_read_begin (self);
    if (!txn) {
        free (list);
        return NULL;
    }
    size_t alloc = 0;
    int rc = workflow && *workflow
           ? s_list_workflow_runs (self, txn, workflow, limit, list, &alloc)
           : s_list_all_runs (self, txn, limit, list, &alloc);
    s_read_end (self, txn);
    if (rc) {
        qanat__run_list__free_unpacked (list, NULL);
        return NULL;
    }
    return list;
}

int
qn_store_active_runs (qn_store_t *self, uint64_t **ids_p, size_t *count_p)
{
    assert (self);
    assert (ids_p);
    assert (count_p);
    *ids_p = NULL;
    *count_p = 0;
    MDB_txn *txn = s_read_begin (self);
    if (!txn)
        return -1;
    MDB_cursor *cursor = s_cursor (self, txn, DB_ACTIVE);
    if (!cursor) {
        s_read_end (self, txn);
        return -1;
    }
    uint64_t *ids = NULL;
    size_t count = 0, alloc = 0;
    int result = 0;
    MDB_val key, value;
    int rc = mdb_cursor_get (cursor, &key, &value, MDB_FIRST);
    while (rc == 0) {
        if (key.mv_size == 8) {
            if (count == alloc) {
                alloc = alloc? alloc * 2: 16;
                uint64_t *grown = (uint64_t *) realloc (ids, alloc * sizeof (uint64_t));
                if (!grown) {
                    s_error (self, "out of memory");
                    result = -1;
                    break;
                }
                ids = grown;
            }
            ids [count++] = s_be64_get ((const uint8_t *) key.mv_data);
        }
        rc = mdb_cursor_get (cursor, &key, &value, MDB_NEXT);
    }
    if (result == 0 && rc != MDB_NOTFOUND) {
        s_error (self, "read from active failed: %s", mdb_strerror (rc));
        result = -1;
    }
    mdb_cursor_close (cursor);
    s_read_end (self, txn);
    if (result) {
        free (ids);
        return -1;
    }
    *ids_p = ids;
    *count_p = count;
    return 0;
}

//  --------------------------------------------------------------------
//  Tasks

int
qn_store_put_task (qn_store_t *self, uint64_t run_id, const Qanat__TaskInfo *task)
{
    assert (self);
    assert (task);
    if (s_need_txn (self))
        return -1;
    uint8_t key [12];
    s_be64_put (key, run_id);
    s_be32_put (key + 8, task->index);
    return s_put_message (self, DB_TASKS, key, sizeof key, &task->base, 0);
}

int
qn_store_get_tasks (qn_store_t *self, uint64_t run_id, Qanat__TaskInfo ***tasks_p,
                    size_t *count_p)
{
    assert (self);
    assert (tasks_p);
    assert (count_p);
    *tasks_p = NULL;
    *count_p = 0;
    MDB_txn *txn = s_read_begin (self);
    if (!txn)
        return -1;
    MDB_cursor *cursor = s_cursor (self, txn, DB_TASKS);
    if (!cursor) {
        s_read_end (self, txn);
        return -1;
    }
    uint8_t start [12];
    s_be64_put (start, run_id);
    s_be32_put (start + 8, 0);
    void **tasks = NULL;
    size_t count = 0, alloc = 0;
    int result = 0;
    MDB_val key = { sizeof start, start }, value;
    int rc = mdb_cursor_get (cursor, &key, &value, MDB_SET_RANGE);
    while (rc == 0) {
        if (key.mv_size < 8 || memcmp (key.mv_data, start, 8) != 0)
            break;              //  past the run
        if (key.mv_size == 12) {
            Qanat__TaskInfo *task = (Qanat__TaskInfo *) s_decode (
                self, DB_TASKS, &qanat__task_info__descriptor, &value);
            if (task) {
                task->index = s_be32_get ((const uint8_t *) key.mv_data + 8);
                if (s_array_push (self, &tasks, &count, &alloc, task)) {
                    qanat__task_info__free_unpacked (task, NULL);
                    result = -1;
                    break;
                }
            }
        }
        rc = mdb_cursor_get (cursor, &key, &value, MDB_NEXT);
    }
    if (result == 0 && rc && rc != MDB_NOTFOUND) {
        s_error (self, "read from tasks failed: %s", mdb_strerror (rc));
        result = -1;
    }
    mdb_cursor_close (cursor);
    s_read_end (self, txn);
    if (result) {
        s_free_messages (tasks, count);
        return -1;
    }
    *tasks_p = (Qanat__TaskInfo **) tasks;
    *count_p = count;
    return 0;
}

//  --------------------------------------------------------------------
//  Logs and metrics

int
qn_store_append_log (qn_store_t *self, uint64_t run_id, const Qanat__LogLine *line,
                     uint64_t *log_seq_p)
{
    assert (self);
    assert (line);
    if (s_need_txn (self))
        return -1;
    return s_append (self, DB_LOGS, run_id, &line->base, log_seq_p);
}

int
qn_store_append_metric (qn_store_t *self, uint64_t run_id, const Qanat__MetricRecord *record)
{
    assert (self);
    assert (record);
    if (s_need_txn (self))
        return -1;
    return s_append (self, DB_METRICS, run_id, &record->base, NULL);
}

//  Every record of a (be64 run_id, be64 seq) database after `after`, in
//  order, through keep (): returns true to keep the decoded message.
//  Stops after limit kept records or QN_STORE_SCAN_CAP records dropped;
//  *last_p gets the last sequence examined.  Undecodable records count as
//  examined and dropped.
typedef bool (s_keep_fn) (ProtobufCMessage *msg, const void *arg);

static int
s_read_sequence (qn_store_t *self, s_db_t db, const ProtobufCMessageDescriptor *descriptor,
                 uint64_t run_id, uint64_t after, s_keep_fn *keep, const void *arg,
                 size_t limit, size_t scan_cap, void ***msgs_p, size_t *count_p,
                 uint64_t *last_p)
{
    *msgs_p = NULL;
    *count_p = 0;
    if (last_p)
        *last_p = after;
    if (after == UINT64_MAX)
        return 0;
    MDB_txn *txn = s_read_begin (self);
    if (!txn)
        return -1;
    MDB_cursor *cursor = s_cursor (self, txn, db);
    if (!cursor) {
        s_read_end (self, txn);
        return -1;
    }
    uint8_t start [16];
    s_be64_put (start, run_id);
    s_be64_put (start + 8, after + 1);
    void **msgs = NULL;
    size_t count = 0, alloc = 0, dropped = 0;
    uint64_t last = after;
    int result = 0;
    MDB_val key = { sizeof start, start }, value;
    int rc = mdb_cursor_get (cursor, &key, &value, MDB_SET_RANGE);
    while (rc == 0 && count < limit && dropped < scan_cap) {
        if (key.mv_size < 8 || memcmp (key.mv_data, start, 8) != 0)
            break;              //  past the run
        if (key.mv_size == 16) {
            last = s_be64_get ((const uint8_t *) key.mv_data + 8);
            ProtobufCMessage *msg = s_decode (self, db, descriptor, &value);
            if (msg && keep (msg, arg)) {
                if (s_array_push (self, &msgs, &count, &alloc, msg)) {
                    protobuf_c_message_free_unpacked (msg, NULL);
                    result = -1;
                    break;
                }
            }
            else {
                if (msg)
                    protobuf_c_message_free_unpacked (msg, NULL);
                dropped++;
            }
        }
        rc = mdb_cursor_get (cursor, &key, &value, MDB_NEXT);
    }
    if (result == 0 && rc && rc != MDB_NOTFOUND) {
        s_error (self, "read from %s failed: %s", s_db_names [db], mdb_strerror (rc));
        result = -1;
    }
    mdb_cursor_close (cursor);
    s_read_end (self, txn);
    if (result) {
        s_free_messages (msgs, count);
        return -1;
    }
    *msgs_p = msgs;
    *count_p = count;
    if (last_p)
        *last_p = last;
    return 0;
}

typedef struct {
    const char *task;
    uint32_t attempt;
} s_log_filter_t;

static bool
s_keep_line (ProtobufCMessage *msg, const void *arg)
{
    const s_log_filter_t *filter = (const s_log_filter_t *) arg;
    const Qanat__LogLine *line = (const Qanat__LogLine *) msg;
    if (filter->task && *filter->task
    &&  (!line->task || strcmp (line->task, filter->task) != 0))
        return false;
    if (filter->attempt && line->attempt != filter->attempt)
        return false;
    return true;
}

int
qn_store_read_logs (qn_store_t *self, uint64_t run_id, uint64_t after, const char *task,
                    uint32_t attempt, uint32_t limit, Qanat__LogLine ***lines_p,
                    size_t *count_p, uint64_t *last_p)
{
    assert (self);
    assert (lines_p);
    assert (count_p);
    s_log_filter_t filter = { task, attempt };
    return s_read_sequence (self, DB_LOGS, &qanat__log_line__descriptor, run_id, after,
                            s_keep_line, &filter, limit? limit: QN_STORE_LOG_LIMIT,
                            QN_STORE_SCAN_CAP, (void ***) lines_p, count_p, last_p);
}

static bool
s_keep_metric (ProtobufCMessage *msg, const void *arg)
{
    const char *name = (const char *) arg;
    const Qanat__MetricRecord *record = (const Qanat__MetricRecord *) msg;
    if (name && *name)
        return record->point && record->point->name && strcmp (record->point->name, name) == 0;
    return true;
}

int
qn_store_read_metrics (qn_store_t *self, uint64_t run_id, const char *name,
                       Qanat__MetricRecord ***records_p, size_t *count_p)
{
    assert (self);
    assert (records_p);
    assert (count_p);
    //  The contract is "every record": no limit and no scan cap
    return s_read_sequence (self, DB_METRICS, &qanat__metric_record__descriptor, run_id, 0,
                            s_keep_metric, name, SIZE_MAX, SIZE_MAX,
                            (void ***) records_p, count_p, NULL);
}

//  --------------------------------------------------------------------
//  Agents

int
qn_store_put_agent (qn_store_t *self, const Qanat__AgentInfo *agent)
{
    assert (self);
    assert (agent);
    if (s_need_txn (self) || s_check_name (self, "agent", agent->name))
        return -1;
    return s_put_message (self, DB_AGENTS, agent->name, strlen (agent->name), &agent->base, 0);
}

//  Every record of a sub-database keyed by name, in key order.
static int
s_list_messages (qn_store_t *self, s_db_t db, const ProtobufCMessageDescriptor *descriptor,
                 void ***items_p, size_t *count_p)
{
    *items_p = NULL;
    *count_p = 0;
    MDB_txn *txn = s_read_begin (self);
    if (!txn)
        return -1;
    MDB_cursor *cursor = s_cursor (self, txn, db);
    if (!cursor) {
        s_read_end (self, txn);
        return -1;
    }
    void **items = NULL;
    size_t count = 0, alloc = 0;
    int result = 0;
    MDB_val key, value;
    int rc = mdb_cursor_get (cursor, &key, &value, MDB_FIRST);
    while (rc == 0) {
        ProtobufCMessage *item = s_decode (self, db, descriptor, &value);
        if (item && s_array_push (self, &items, &count, &alloc, item)) {
            protobuf_c_message_free_unpacked (item, NULL);
            result = -1;
            break;
        }
        rc = mdb_cursor_get (cursor, &key, &value, MDB_NEXT);
    }
    if (result == 0 && rc != MDB_NOTFOUND) {
        s_error (self, "read from %s failed: %s", s_db_names [db], mdb_strerror (rc));
        result = -1;
    }
    mdb_cursor_close (cursor);
    s_read_end (self, txn);
    if (result) {
        s_free_messages (items, count);
        return -1;
    }
    *items_p = items;
    *count_p = count;
    return 0;
}

int
qn_store_list_agents (qn_store_t *self, Qanat__AgentInfo ***agents_p, size_t *count_p)
{
    assert (self);
    assert (agents_p);
    assert (count_p);
    return s_list_messages (self, DB_AGENTS, &qanat__agent_info__descriptor,
                            (void ***) agents_p, count_p);
}

//  ---- principals and secrets ----

int
qn_store_put_principal (qn_store_t *self, const Qanat__Principal *principal)
{
    assert (self);
    assert (principal);
    if (s_need_txn (self) || s_check_name (self, "principal key", principal->public_key))
        return -1;
    return s_put_message (self, DB_PRINCIPALS, principal->public_key,
                          strlen (principal->public_key), &principal->base, 0);
}

int
qn_store_delete_principal (qn_store_t *self, const char *public_key)
{
    assert (self);
    if (s_need_txn (self) || s_check_name (self, "principal key", public_key))
        return -1;
    return s_delete (self, DB_PRINCIPALS, public_key, strlen (public_key));
}

int
qn_store_list_principals (qn_store_t *self, Qanat__Principal ***principals_p, size_t *count_p)
{
    assert (self);
    return s_list_messages (self, DB_PRINCIPALS, &qanat__principal__descriptor,
                            (void ***) principals_p, count_p);
}

int
qn_store_put_secret (qn_store_t *self, const char *name, const void *data, size_t size)
{
    assert (self);
    if (s_need_txn (self) || s_check_name (self, "secret", name))
        return -1;
    return s_put_raw (self, DB_SECRETS, name, strlen (name), data, size);
}

//  A malloc'd copy of the value of name in db: 1, 0 when not there, -1.
static int
s_get_copy (qn_store_t *self, s_db_t db, const char *name, void **data_p, size_t *size_p)
{
    *data_p = NULL;
    *size_p = 0;
    if (s_check_name (self, "secret", name))
        return -1;
    MDB_txn *txn = s_read_begin (self);
    if (!txn)
        return -1;
    MDB_val value;
    int found = s_get_raw (self, txn, db, name, strlen (name), &value);
    if (found == 1) {
        *data_p = malloc (value.mv_size? value.mv_size: 1);
        if (*data_p) {
            memcpy (*data_p, value.mv_data, value.mv_size);
            *size_p = value.mv_size;
        }
        else
            found = -1;
    }
    s_read_end (self, txn);
    return found < 0? -1: found;
}

int
qn_store_get_secret (qn_store_t *self, const char *name, void **data_p, size_t *size_p)
{
    assert (self);
    return s_get_copy (self, DB_SECRETS, name, data_p, size_p);
}

int
qn_store_list_secrets (qn_store_t *self, char ***names_p, size_t *count_p)
{
    assert (self);
    *names_p = NULL;
    *count_p = 0;
    MDB_txn *txn = s_read_begin (self);
    if (!txn)
        return -1;
    MDB_cursor *cursor = s_cursor (self, txn, DB_SECRETS);
    if (!cursor) {
        s_read_end (self, txn);
        return -1;
    }
    char **names = NULL;
    size_t count = 0;
    MDB_val key, value;
    int rc = mdb_cursor_get (cursor, &key, &value, MDB_FIRST);
    while (rc == 0) {
        char **grown = (char **) realloc (names, (count + 1) * sizeof (char *));
        if (!grown)
            break;
        names = grown;
        names [count] = strndup ((const char *) key.mv_data, key.mv_size);
        if (names [count])
            count++;
        rc = mdb_cursor_get (cursor, &key, &value, MDB_NEXT);
    }
    mdb_cursor_close (cursor);
    s_read_end (self, txn);
    *names_p = names;
    *count_p = count;
    return 0;
}

int
qn_store_put_secret_access (qn_store_t *self, const char *name, const Qanat__SecretAccess *access)
{
    assert (self);
    assert (access);
    if (s_need_txn (self) || s_check_name (self, "secret", name))
        return -1;
    return s_put_message (self, DB_SECRET_ACCESS, name, strlen (name), &access->base, 0);
}

int
qn_store_get_secret_access (qn_store_t *self, const char *name, Qanat__SecretAccess **access_p)
{
    assert (self);
    assert (access_p);
    *access_p = NULL;
    MDB_val value = { 0, NULL };
    int found = s_get_copy (self, DB_SECRET_ACCESS, name, &value.mv_data, &value.mv_size);
    if (found == 1) {
        *access_p = (Qanat__SecretAccess *) s_decode (self, DB_SECRET_ACCESS,
                                                      &qanat__secret_access__descriptor, &value);
        if (!*access_p)
            found = -1;
    }
    free (value.mv_data);
    return found;
}

//  ---------------------------------------------------------------------
//  Artifacts: blob index, cache, retention

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
        s_error (self, "invalid blob hash");
        return -1;
    }
    MDB_txn *txn = s_read_begin (self);
    if (!txn)
        return -1;
    MDB_val value;
    int found = s_get_raw (self, txn, DB_BLOBS, hash, 64, &value);
    if (found == 1 && value.mv_size != 12)
        found = 0;              //  a damaged record counts as absent
    if (found == 1) {
        if (size_p)
            *size_p = s_be64_get ((const uint8_t *) value.mv_data);
        if (refs_p)
            *refs_p = s_be32_get ((const uint8_t *) value.mv_data + 8);
    }
    s_read_end (self, txn);
    return found;
}

static int
s_blob_put (qn_store_t *self, const char *hash, uint64_t size, uint32_t refs)
{
    uint8_t value [12];
    s_be64_put (value, size);
    s_be32_put (value + 8, refs);
    return s_put_raw (self, DB_BLOBS, hash, 64, value, sizeof value);
}

int
qn_store_blob_add (qn_store_t *self, const char *hash, uint64_t size)
{
    assert (self);
    if (s_need_txn (self))
        return -1;
    if (!s_valid_hex_key (hash)) {
        s_error (self, "invalid blob hash");
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
    if (s_need_txn (self))
        return -1;
    uint64_t size;
    uint32_t refs;
    int found = qn_store_blob_get (self, hash, &size, &refs);
    if (found <= 0) {
        if (found == 0)
            s_error (self, "no such blob");
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
    if (s_need_txn (self) || !s_valid_hex_key (hash))
        return -1;
    return s_delete (self, DB_BLOBS, hash, 64);
}

int
qn_store_unreferenced_blobs (qn_store_t *self, char ***hashes_p, size_t *count_p, size_t limit)
{
    assert (self);
    *hashes_p = NULL;
    *count_p = 0;
    MDB_txn *txn = s_read_begin (self);
    if (!txn)
        return -1;
    MDB_cursor *cursor = s_cursor (self, txn, DB_BLOBS);
    if (!cursor) {
        s_read_end (self, txn);
        return -1;
    }
    size_t alloc = 0;
    int result = 0;
    MDB_val key, value;
    int rc = mdb_cursor_get (cursor, &key, &value, MDB_FIRST);
    while (rc == 0 && *count_p < limit) {
        if (key.mv_size == 64 && value.mv_size == 12
        &&  s_be32_get ((const uint8_t *) value.mv_data + 8) == 0) {
            char *hash = (char *) malloc (65);
            if (hash) {
                memcpy (hash, key.mv_data, 64);
                hash [64] = '\0';
            }
            if (!hash || s_array_push (self, (void ***) hashes_p, count_p, &alloc, hash)) {
                free (hash);
                result = -1;
                break;
            }
        }
        rc = mdb_cursor_get (cursor, &key, &value, MDB_NEXT);
    }
    mdb_cursor_close (cursor);
    s_read_end (self, txn);
    if (result) {
        for (size_t i = 0; i < *count_p; i++)
            free ((*hashes_p) [i]);
        free (*hashes_p);
        *hashes_p = NULL;
        *count_p = 0;
    }
    return result;
}

//  ---- S3 objects ----

//  Offsets in an s3objects value (format 1); see the layout at the top.
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
        s_error (self, "invalid S3 object id");
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
        s_error (self, "damaged S3 object record (%zu bytes)", size);
        return -1;
    }
    if (data [S3_AT_FORMAT] != S3_FORMAT) {
        s_error (self, "S3 object record has unknown format %u", data [S3_AT_FORMAT]);
        return -1;
    }
    if (data [S3_AT_STATE] > QN_STORE_S3_DELETED) {
        s_error (self, "S3 object record has unknown state %u", data [S3_AT_STATE]);
        return -1;
    }
    size_t location_len = s_be16_get (data + S3_AT_LOCATION);
    if (location_len == 0 || location_len > QN_STORE_S3_LOCATION_MAX
    ||  S3_AT_LOCATION + 2 + location_len + 2 > size
    ||  memchr (data + S3_AT_LOCATION + 2, 0, location_len)) {
        s_error (self, "damaged S3 object record (bad location)");
        return -1;
    }
    size_t store_at = S3_AT_LOCATION + 2 + location_len;
    size_t store_len = s_be16_get (data + store_at);
    store_at += 2;
    if (store_len > QN_STORE_S3_STORE_MAX || store_at + store_len != size) {
        s_error (self, "damaged S3 object record (bad store length)");
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
        s_error (self, "out of memory");
        return -1;
    }
    object->store_size = store_len;
    object->size = s_be64_get (data + S3_AT_SIZE);
    object->refs = s_be32_get (data + S3_AT_REFS);
    object->state = data [S3_AT_STATE];
    object->since_us = (int64_t) s_be64_get (data + S3_AT_SINCE);
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
    MDB_txn *txn = s_read_begin (self);
    if (!txn)
        return -1;
    MDB_val value;
    int found = s_get_raw (self, txn, DB_S3OBJECTS, id, 64, &value);
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
    s_read_end (self, txn);
    return found;
}

int
qn_store_s3_add (qn_store_t *self, const char *id, const char *location,
                 const uint8_t *store, size_t store_size, uint64_t size, int64_t now_us)
{
    assert (self);
    if (s_need_txn (self) || s_s3_check_id (self, id))
        return -1;
    size_t location_len = location? strlen (location): 0;
    if (location_len == 0 || location_len > QN_STORE_S3_LOCATION_MAX) {
        s_error (self, "S3 object location must have 1 to %d bytes",
                 QN_STORE_S3_LOCATION_MAX);
        return -1;
    }
    if (store_size > QN_STORE_S3_STORE_MAX || (store_size && !store)) {
        s_error (self, "S3 object store must have at most %d bytes",
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
        return s_write_failed (self, DB_S3OBJECTS, rc);
    uint8_t *data = (uint8_t *) v.mv_data;
    data [S3_AT_FORMAT] = S3_FORMAT;
    data [S3_AT_STATE] = QN_STORE_S3_LIVE;
    s_be32_put (data + S3_AT_REFS, 0);
    s_be64_put (data + S3_AT_SIZE, size);
    s_be64_put (data + S3_AT_SINCE, (uint64_t) now_us);
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
    if (s_need_txn (self) || s_s3_check_id (self, id))
        return -1;
    MDB_val value;
    int found = s_get_raw (self, self->txn, DB_S3OBJECTS, id, 64, &value);
    if (found <= 0) {
        if (found == 0)
            s_error (self, "no such S3 object");
        return -1;
    }
    size_t location_len, store_at, store_len;
    if (s_s3_check_value (self, &value, &location_len, &store_at, &store_len))
        return -1;
    //  The value lives in LMDB's pages, which the put below may change
    uint8_t copy [S3_VALUE_MAX];
    memcpy (copy, value.mv_data, value.mv_size);
    size_t copy_size = value.mv_size;
    uint32_t refs = s_be32_get (copy + S3_AT_REFS);
    if (apply_refs) {
        int64_t next = (int64_t) refs + refs_delta;
        if (next < 0)
            next = 0;
        if (next > UINT32_MAX)
            next = UINT32_MAX;
        //  A LIVE row's grace period runs from when its last user went;
        //  in the other states since_us is when the state began
        if (refs > 0 && next == 0 && copy [S3_AT_STATE] == QN_STORE_S3_LIVE)
            s_be64_put (copy + S3_AT_SINCE, (uint64_t) now_us);
        refs = (uint32_t) next;
        s_be32_put (copy + S3_AT_REFS, refs);
    }
    if (state >= 0) {
        copy [S3_AT_STATE] = (uint8_t) state;
        s_be64_put (copy + S3_AT_SINCE, (uint64_t) now_us);
    }
    if (s_put_raw (self, DB_S3OBJECTS, id, 64, copy, copy_size))
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
        s_error (self, "invalid S3 object state %d", state);
        return -1;
    }
    return s_s3_update (self, id, false, 0, state, now_us, NULL);
}

int
qn_store_s3_delete (qn_store_t *self, const char *id)
{
    assert (self);
    if (s_need_txn (self) || s_s3_check_id (self, id))
        return -1;
    return s_delete (self, DB_S3OBJECTS, id, 64);
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
        s_error (self, "invalid S3 object state %d", state);
        return -1;
    }
    MDB_txn *txn = s_read_begin (self);
    if (!txn)
        return -1;
    MDB_cursor *cursor = s_cursor (self, txn, DB_S3OBJECTS);
    if (!cursor) {
        s_read_end (self, txn);
        return -1;
    }
    qn_store_s3_object_t *objects = NULL;
    size_t count = 0, alloc = 0;
    int result = 0;
    MDB_val key, value;
    int rc = mdb_cursor_get (cursor, &key, &value, MDB_FIRST);
    while (rc == 0 && count < limit) {
        const uint8_t *data = (const uint8_t *) value.mv_data;
        char id [65];
        size_t location_len, store_at, store_len;
        if (key.mv_size == 64) {
            memcpy (id, key.mv_data, 64);
            id [64] = '\0';
        }
        if (key.mv_size != 64 || !s_valid_hex_key (id)) {
            s_error (self, "skipped an S3 object record with a bad key (%zu bytes)",
                     key.mv_size);
            rc = mdb_cursor_get (cursor, &key, &value, MDB_NEXT);
            continue;
        }
        //  The filter reads the fixed fields; the decode below copies
        //  the rest only for rows that are returned
        if (s_s3_check_value (self, &value, &location_len, &store_at, &store_len)) {
            rc = mdb_cursor_get (cursor, &key, &value, MDB_NEXT);
            continue;
        }
        bool wanted = data [S3_AT_STATE] == state
                   && (int64_t) s_be64_get (data + S3_AT_SINCE) < before_us
                   && (state != QN_STORE_S3_LIVE || s_be32_get (data + S3_AT_REFS) == 0);
        if (wanted) {
            if (count == alloc) {
                size_t grown_alloc = alloc? alloc * 2: 16;
                qn_store_s3_object_t *grown = (qn_store_s3_object_t *) realloc (
                    objects, grown_alloc * sizeof (qn_store_s3_object_t));
                if (!grown) {
                    s_error (self, "out of memory");
                    result = -1;
                    break;
                }
                objects = grown;
                alloc = grown_alloc;
            }
            qn_store_s3_object_t *object = &objects [count];
            memset (object, 0, sizeof *object);
            if (s_s3_decode (self, &value, object)) {
                result = -1;        //  only out of memory: the value was checked
                break;
            }
            memcpy (object->id, id, 65);
            count++;
        }
        rc = mdb_cursor_get (cursor, &key, &value, MDB_NEXT);
    }
    if (result == 0 && rc && rc != MDB_NOTFOUND) {
        s_error (self, "read from %s failed: %s", s_db_names [DB_S3OBJECTS], mdb_strerror (rc));
        result = -1;
    }
    mdb_cursor_close (cursor);
    s_read_end (self, txn);
    if (result) {
        qn_store_s3_objects_free (&objects, count);
        return -1;
    }
    *objects_p = objects;
    *count_p = count;
    return 0;
}

int
qn_store_put_cache (qn_store_t *self, const char *key, uint64_t run_id, uint32_t task,
                    uint32_t attempt)
{
    assert (self);
    if (s_need_txn (self) || !s_valid_hex_key (key))
        return -1;
    uint8_t value [16];
    s_be64_put (value, run_id);
    s_be32_put (value + 8, task);
    s_be32_put (value + 12, attempt);
    return s_put_raw (self, DB_CACHE, key, 64, value, sizeof value);
}

int
qn_store_get_cache (qn_store_t *self, const char *key, uint64_t *run_id_p, uint32_t *task_p,
                    uint32_t *attempt_p)
{
    assert (self);
    if (!s_valid_hex_key (key))
        return -1;
    MDB_txn *txn = s_read_begin (self);
    if (!txn)
        return -1;
    MDB_val value;
    int found = s_get_raw (self, txn, DB_CACHE, key, 64, &value);
    if (found == 1 && value.mv_size != 16)
        found = 0;
    if (found == 1) {
        const uint8_t *data = (const uint8_t *) value.mv_data;
        *run_id_p = s_be64_get (data);
        *task_p = s_be32_get (data + 8);
        *attempt_p = s_be32_get (data + 12);
    }
    s_read_end (self, txn);
    return found;
}

int
qn_store_delete_cache (qn_store_t *self, const char *key)
{
    assert (self);
    if (s_need_txn (self) || !s_valid_hex_key (key))
        return -1;
    return s_delete (self, DB_CACHE, key, 64);
}

//  Deletes every key of db that starts with the 8-byte prefix.
static int
s_delete_prefix (qn_store_t *self, s_db_t db, const uint8_t *prefix)
{
    MDB_cursor *cursor;
    int rc = mdb_cursor_open (self->txn, self->dbi [db], &cursor);
    if (rc)
        return s_write_failed (self, db, rc);
    MDB_val key = { 8, (void *) prefix }, value;
    rc = mdb_cursor_get (cursor, &key, &value, MDB_SET_RANGE);
    while (rc == 0 && key.mv_size >= 8 && memcmp (key.mv_data, prefix, 8) == 0) {
        rc = mdb_cursor_del (cursor, 0);
        if (rc)
            break;
        rc = mdb_cursor_get (cursor, &key, &value, MDB_GET_CURRENT);
        if (rc == EINVAL || rc == MDB_NOTFOUND)
            rc = mdb_cursor_get (cursor, &key, &value, MDB_SET_RANGE);
    }
    mdb_cursor_close (cursor);
    if (rc && rc != MDB_NOTFOUND)
        return s_write_failed (self, db, rc);
    return 0;
}

int
qn_store_delete_run (qn_store_t *self, uint64_t run_id)
{
    assert (self);
    if (s_need_txn (self))
        return -1;
    uint8_t id [8];
    s_be64_put (id, run_id);
    Qanat__RunInfo *run = s_get_run (self, self->txn, run_id);
    if (run && run->workflow) {
        size_t len = strlen (run->workflow);
        if (len + 9 <= self->max_key) {
            uint8_t key [QN_STORE_KEY_MAX];
            memcpy (key, run->workflow, len);
            key [len] = 0;
            memcpy (key + len + 1, id, 8);
            if (s_delete (self, DB_RUNS_BY_WORKFLOW, key, len + 9)) {
                qanat__run_info__free_unpacked (run, NULL);
                return -1;
            }
        }
    }
    if (run)
        qanat__run_info__free_unpacked (run, NULL);
    if (s_delete (self, DB_RUNS, id, 8) || s_delete (self, DB_ACTIVE, id, 8)
    ||  s_delete_prefix (self, DB_TASKS, id) || s_delete_prefix (self, DB_LOGS, id)
    ||  s_delete_prefix (self, DB_METRICS, id))
        return -1;
    return 0;
}

int
qn_store_workflow_run_ids (qn_store_t *self, const char *workflow, uint64_t **ids_p,
                           size_t *count_p)
{
    assert (self);
    *ids_p = NULL;
    *count_p = 0;
    size_t len = workflow? strlen (workflow): 0;
    if (len == 0 || len + 9 > self->max_key)
        return 0;
    MDB_txn *txn = s_read_begin (self);
    if (!txn)
        return -1;
    MDB_cursor *cursor = s_cursor (self, txn, DB_RUNS_BY_WORKFLOW);
    if (!cursor) {
        s_read_end (self, txn);
        return -1;
    }
    uint8_t probe [QN_STORE_KEY_MAX];
    memcpy (probe, workflow, len);
    probe [len] = 0;
    MDB_val key = { len + 1, probe }, value;
    int rc = mdb_cursor_get (cursor, &key, &value, MDB_SET_RANGE);
    size_t alloc = 0;
    int result = 0;
    while (rc == 0) {
        const uint8_t *data = (const uint8_t *) key.mv_data;
        if (key.mv_size < len + 1 || memcmp (data, workflow, len) != 0 || data [len] != 0)
            break;
        if (key.mv_size == len + 9) {
            if (*count_p == alloc) {
                alloc = alloc? alloc * 2: 64;
                uint64_t *grown = (uint64_t *) realloc (*ids_p, alloc * sizeof (uint64_t));
                if (!grown) {
                    s_error (self, "out of memory");
                    result = -1;
                    break;
                }
                *ids_p = grown;
            }
            (*ids_p) [(*count_p)++] = s_be64_get (data + len + 1);
        }
        rc = mdb_cursor_get (cursor, &key, &value, MDB_NEXT);
    }
    mdb_cursor_close (cursor);
    s_read_end (self, txn);
    if (result) {
        free (*ids_p);
        *ids_p = NULL;
        *count_p = 0;
    }
    return result;
}
