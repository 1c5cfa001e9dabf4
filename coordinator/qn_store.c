/*  qn_store - the coordinator's metadata store on LMDB.  See qn_store.h.

    Files: one class in four, split by record kind, sharing the object and
    the helpers through qn_store_internal.h (private to these files):

        qn_store.c        open and close, map sizes, schema and migrations,
                          transactions, errors, the generic put / get /
                          delete / decode helpers and store_scan, the one
                          cursor scan that every listing goes through
                          (the two cursor loops that are not listings, the
                          last-sequence seek and deleting a run's records,
                          keep their own: see qn_store_runs.c)
        qn_store_runs.c   workflows and their versions, runs, tasks, logs,
                          metrics, and deleting a run (retention)
        qn_store_keys.c   agents, principals, secrets and their access lists
        qn_store_blobs.c  the blob index, S3 objects and cache entries
        qn_store_sched.c  the scheduler's ticks, cursors, pauses and triggers
                          (its own layout at its top)
        qn_store_notify.c the notifications' outbox

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
        apitokens         sha256 hex of the token -> ApiToken (without the token)
        blobs             sha256 hex -> be64 size, be32 references
        cache             cache key hex -> be64 run_id, be32 task, be32 attempt
        notif_outbox      be64 run_id be32 channel -> NotifEntry
        notif_pending     be64 run_id be32 channel -> empty (pending entries only)
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
    which is what an older store's secrets mean.  apitokens likewise: an
    older store has no API tokens.

    Map size: 64 GiB on 64-bit hosts (1 GiB on 32-bit), or smaller when the
    process cannot map that much; it is only address space, the file grows
    with the data.  The environment variable
    QANAT_STORE_MAP_SIZE (bytes) overrides it, which tests use to provoke a
    full map; an existing larger file wins over a smaller setting.
*/
#include "qn_store_internal.h"
#include <sys/statvfs.h>

#include <assert.h>
#include <errno.h>
#include <lmdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>

const char *const store_db_names [DB_COUNT] = {
    "meta", "workflows", "versions", "runs", "runs_by_workflow",
    "active", "tasks", "logs", "metrics", "agents", "principals", "secrets", "blobs", "cache",
    "s3objects", "secret_access", "apitokens",
    "sched_ticks", "sched_cursors", "sched_paused", "sched_pending", "sched_triggered",
    "notif_outbox", "notif_pending"
};

//  --------------------------------------------------------------------
//  Small helpers

void
store_set_error (qn_store_t *self, const char *format, ...)
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
int
store_array_push (qn_store_t *self, void ***array_p, size_t *count_p, size_t *alloc_p, void *item)
{
    if (*count_p == *alloc_p) {
        size_t alloc = *alloc_p? *alloc_p * 2: 16;
        void **array = (void **) realloc (*array_p, alloc * sizeof (void *));
        if (!array) {
            store_set_error (self, "out of memory");
            return -1;
        }
        *array_p = array;
        *alloc_p = alloc;
    }
    (*array_p) [(*count_p)++] = item;
    return 0;
}

void
store_free_messages (void **array, size_t count)
{
    for (size_t index = 0; index < count; index++)
        if (array [index])
            protobuf_c_message_free_unpacked ((ProtobufCMessage *) array [index], NULL);
    free (array);
}

void
qn_store_free_array (void *array, size_t count)
{
    store_free_messages ((void **) array, count);
}

//  Checks that a name can form a key (with room for the '\0' and a
//  be64 suffix).  0 or -1.
int
store_check_name (qn_store_t *self, const char *what, const char *name)
{
    if (!name || !*name) {
        store_set_error (self, "%s name is empty", what);
        return -1;
    }
    if (strlen (name) + 1 + 8 > self->max_key) {
        store_set_error (self, "%s name is too long (%zu bytes, at most %zu)",
                         what, strlen (name), self->max_key - 9);
        return -1;
    }
    return 0;
}

//  --------------------------------------------------------------------
//  Transactions

//  Every write goes through here: it needs an open, healthy write
//  transaction.  0 or -1.
int
store_need_txn (qn_store_t *self)
{
    if (!self->txn) {
        store_set_error (self, "no open transaction");
        return -1;
    }
    if (self->txn_failed) {
        store_set_error (self, "transaction already failed: %s", self->txn_error);
        return -1;
    }
    return 0;
}

//  Reads see the open write transaction's writes; otherwise they use the
//  kept read-only transaction, renewed for a fresh snapshot.  NULL on
//  failure.
MDB_txn *
store_read_begin (qn_store_t *self)
{
    if (self->txn) {
        if (self->txn_failed) {
            store_set_error (self, "transaction already failed: %s", self->txn_error);
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
            store_set_error (self, "cannot start read transaction: %s", mdb_strerror (rc));
            return NULL;
        }
    }
    return self->rtxn;
}

void
store_read_end (qn_store_t *self, MDB_txn *txn)
{
    if (txn && txn != self->txn)
        mdb_txn_reset (txn);
}

//  Records a failed LMDB write.  LMDB marks the transaction unusable after
//  most write errors, and even when it does not, the caller's group of
//  writes is now half done: either way the transaction may only abort.
int
store_write_failed (qn_store_t *self, store_db_t db, int rc)
{
    store_set_error (self, "write to %s failed: %s", store_db_names [db], mdb_strerror (rc));
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
        store_set_error (self, "cannot start write transaction: %s", mdb_strerror (rc));
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
        store_set_error (self, "commit failed: %s", self->txn_error);
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
            store_set_error (self, "commit failed: %s: no space left on the device of %s "
                             "(%llu KiB free)", mdb_strerror (rc), path,
                             (unsigned long long) fs.f_bavail * fs.f_frsize / 1024);
        else
            store_set_error (self, "commit failed: %s", mdb_strerror (rc));
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
int
store_put_message (qn_store_t *self, store_db_t db, const void *key, size_t key_size,
                   const ProtobufCMessage *msg, unsigned flags)
{
    size_t size = protobuf_c_message_get_packed_size (msg);
    MDB_val k = { key_size, (void *) key };
    MDB_val v = { size, NULL };
    int rc = mdb_put (self->txn, self->dbi [db], &k, &v, flags | MDB_RESERVE);
    if (rc)
        return store_write_failed (self, db, rc);
    protobuf_c_message_pack (msg, (uint8_t *) v.mv_data);
    return 0;
}

int
store_put_raw (qn_store_t *self, store_db_t db, const void *key, size_t key_size,
               const void *value, size_t value_size)
{
    MDB_val k = { key_size, (void *) key };
    MDB_val v = { value_size, (void *) value };
    int rc = mdb_put (self->txn, self->dbi [db], &k, &v, 0);
    if (rc)
        return store_write_failed (self, db, rc);
    return 0;
}

//  Deleting a key that is not there is fine.
int
store_delete (qn_store_t *self, store_db_t db, const void *key, size_t key_size)
{
    MDB_val k = { key_size, (void *) key };
    int rc = mdb_del (self->txn, self->dbi [db], &k, NULL);
    if (rc && rc != MDB_NOTFOUND)
        return store_write_failed (self, db, rc);
    return 0;
}

//  Looks up one raw value.  1 found, 0 not found, -1 error.
int
store_get_raw (qn_store_t *self, MDB_txn *txn, store_db_t db, const void *key,
               size_t key_size, MDB_val *value)
{
    MDB_val k = { key_size, (void *) key };
    int rc = mdb_get (txn, self->dbi [db], &k, value);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc) {
        store_set_error (self, "read from %s failed: %s", store_db_names [db], mdb_strerror (rc));
        return -1;
    }
    return 1;
}

//  Decodes a stored value; an undecodable one is reported and skipped by
//  the caller.
ProtobufCMessage *
store_decode (qn_store_t *self, store_db_t db, const ProtobufCMessageDescriptor *descriptor,
              const MDB_val *value)
{
    ProtobufCMessage *msg = protobuf_c_message_unpack (
        descriptor, NULL, value->mv_size, (const uint8_t *) value->mv_data);
    if (!msg)
        store_set_error (self, "skipped an undecodable record in %s (%zu bytes)",
                         store_db_names [db], value->mv_size);
    return msg;
}

//  Looks up and decodes one record; NULL (with a message) when missing,
//  unreadable or undecodable.
ProtobufCMessage *
store_get_message (qn_store_t *self, MDB_txn *txn, store_db_t db, const void *key,
                   size_t key_size, const ProtobufCMessageDescriptor *descriptor)
{
    MDB_val value;
    int rc = store_get_raw (self, txn, db, key, key_size, &value);
    if (rc <= 0) {
        if (rc == 0)
            store_set_error (self, "no such record in %s", store_db_names [db]);
        return NULL;
    }
    return store_decode (self, db, descriptor, &value);
}

MDB_cursor *
store_cursor (qn_store_t *self, MDB_txn *txn, store_db_t db)
{
    MDB_cursor *cursor;
    int rc = mdb_cursor_open (txn, self->dbi [db], &cursor);
    if (rc) {
        store_set_error (self, "cannot open cursor on %s: %s", store_db_names [db],
                         mdb_strerror (rc));
        return NULL;
    }
    return cursor;
}

//  --------------------------------------------------------------------
//  The one cursor scan

//  The first key past every key that starts with prefix: the prefix with
//  its last byte below 0xff raised by one and the rest dropped ("name
//  '\0'" gives "name '\1'").  0 when there is none (an empty prefix, or
//  all 0xff): the range runs to the end of the database.
static size_t
s_past_prefix (uint8_t *past, const void *prefix, size_t prefix_len)
{
    if (prefix_len)
        memcpy (past, prefix, prefix_len);
    while (prefix_len > 0 && past [prefix_len - 1] == 0xff)
        prefix_len--;
    if (prefix_len > 0)
        past [prefix_len - 1]++;
    return prefix_len;
}

int
store_scan (qn_store_t *self, MDB_txn *txn, store_db_t db, const void *prefix,
            size_t prefix_len, const void *from, size_t from_len, unsigned flags,
            store_visit_fn *visit, void *arg)
{
    bool backward = (flags & STORE_SCAN_BACKWARD) != 0;
    assert (prefix_len <= QN_STORE_KEY_MAX);
    assert (from_len <= QN_STORE_KEY_MAX);
    MDB_cursor *cursor = store_cursor (self, txn, db);
    if (!cursor)
        return -1;
    MDB_val key, value;
    uint8_t past [QN_STORE_KEY_MAX];
    int rc;
    if (backward) {
        //  Seek past the range (or to from, which is left out) and step
        //  back, or start from the last key when nothing lies past it
        key.mv_size = from? from_len: s_past_prefix (past, prefix, prefix_len);
        key.mv_data = from? (void *) from: past;
        rc = key.mv_size? mdb_cursor_get (cursor, &key, &value, MDB_SET_RANGE): MDB_NOTFOUND;
        if (rc == 0)
            rc = mdb_cursor_get (cursor, &key, &value, MDB_PREV);
        else
        if (rc == MDB_NOTFOUND)
            rc = mdb_cursor_get (cursor, &key, &value, MDB_LAST);
    }
    else
    if (from || prefix_len) {
        key.mv_size = from? from_len: prefix_len;
        key.mv_data = (void *) (from? from: prefix);
        rc = mdb_cursor_get (cursor, &key, &value, MDB_SET_RANGE);
    }
    else
        rc = mdb_cursor_get (cursor, &key, &value, MDB_FIRST);

    int result = 0;
    while (rc == 0) {
        if (prefix_len
        &&  (key.mv_size < prefix_len || memcmp (key.mv_data, prefix, prefix_len) != 0))
            break;              //  out of the prefix's range
        store_scan_t next = visit (self, &key, &value, arg);
        if (next != STORE_SCAN_NEXT) {
            result = next == STORE_SCAN_FAIL? -1: 0;
            break;
        }
        rc = mdb_cursor_get (cursor, &key, &value, backward? MDB_PREV: MDB_NEXT);
    }
    if (rc && rc != MDB_NOTFOUND && !(flags & STORE_SCAN_READ_ERROR_ENDS)) {
        store_set_error (self, "read from %s failed: %s", store_db_names [db], mdb_strerror (rc));
        result = -1;
    }
    mdb_cursor_close (cursor);
    return result;
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
        store_set_error (self, "store schema %u is not a qanat schema", from);
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
        store_set_error (self, "cannot start transaction: %s", mdb_strerror (rc));
        return -1;
    }
    for (int db = 0; db < DB_COUNT; db++) {
        rc = mdb_dbi_open (txn, store_db_names [db], MDB_CREATE, &self->dbi [db]);
        if (rc) {
            store_set_error (self, "cannot open database %s: %s", store_db_names [db],
                             mdb_strerror (rc));
            goto fail;
        }
    }
    MDB_val key = { 6, (void *) "schema" }, value;
    rc = mdb_get (txn, self->dbi [DB_META], &key, &value);
    if (rc == MDB_NOTFOUND) {
        //  A new store
        uint8_t schema [4];
        store_be32_put (schema, QN_STORE_SCHEMA_VERSION);
        value.mv_size = sizeof schema;
        value.mv_data = schema;
        rc = mdb_put (txn, self->dbi [DB_META], &key, &value, 0);
        if (rc) {
            store_set_error (self, "cannot write schema version: %s", mdb_strerror (rc));
            goto fail;
        }
    }
    else
    if (rc) {
        store_set_error (self, "cannot read schema version: %s", mdb_strerror (rc));
        goto fail;
    }
    else {
        if (value.mv_size != 4) {
            store_set_error (self, "store schema record is corrupt (%zu bytes)", value.mv_size);
            goto fail;
        }
        uint32_t schema = store_be32_get ((const uint8_t *) value.mv_data);
        if (schema > QN_STORE_SCHEMA_VERSION) {
            store_set_error (self, "store schema %u is newer than this qanatd (%d)",
                             schema, QN_STORE_SCHEMA_VERSION);
            goto fail;
        }
        if (schema < QN_STORE_SCHEMA_VERSION) {
            if (s_migrate (self, txn, schema))
                goto fail;
            uint8_t current [4];
            store_be32_put (current, QN_STORE_SCHEMA_VERSION);
            value.mv_size = sizeof current;
            value.mv_data = current;
            rc = mdb_put (txn, self->dbi [DB_META], &key, &value, 0);
            if (rc) {
                store_set_error (self, "cannot write schema version: %s", mdb_strerror (rc));
                goto fail;
            }
        }
    }
    rc = mdb_txn_commit (txn);
    if (rc) {
        store_set_error (self, "cannot commit store setup: %s", mdb_strerror (rc));
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


//  Only self->env is touched, and LMDB's environment is thread-safe: the
//  copy takes a read transaction of its own (MDB_NOTLS lets it live on
//  any thread) and writers go on meanwhile.
int
qn_store_copy (qn_store_t *self, const char *dir, char **error_p)
{
    assert (self);
    int rc = mdb_env_copy2 (self->env, dir, MDB_CP_COMPACT);
    if (rc) {
        s_new_error (error_p, "cannot copy the store into %s: %s", dir, mdb_strerror (rc));
        return -1;
    }
    return 0;
}
