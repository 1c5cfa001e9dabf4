/*  qn_spool - the agent's durable spool.  See qn_spool.h.

    The environment is opened with default durability (a commit returns
    once fdatasync did), MDB_NOTLS so that reads may run while the write
    transaction of the turn is open, and a map twice the bound plus slack:
    LMDB's own overhead (page headers, overflow pages of long lines, the
    free list of a copy-on-write tree) never hits the map before our
    logical bound does.

    A lock file taken with flock keeps a second agent off the same spool;
    the kernel drops it when its holder dies, however it dies.
*/
#include "qn_spool.h"
#include "qn_log.h"
#include "qn_msg.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#define S_ATTEMPT_KEY_SIZE  16
#define S_META_HEAD_SIZE    30
#define S_META_VERSION      1
#define S_MAP_SLACK         (64ULL * 1024 * 1024)
#define S_MIN_MAX           (64ULL * 1024)

struct _qn_spool_t {
    MDB_env *env;
    MDB_dbi events;
    MDB_dbi attempts;
    MDB_txn *txn;               //  the open write transaction, or NULL
    bool txn_failed;            //  LMDB failed inside it: abort only
    uint64_t max;
    uint64_t reserve;
    uint64_t bytes;             //  committed events' bytes
    int64_t delta;              //  change in the open transaction
    uint64_t damaged;
    int lock_fd;
};


//  ---------------------------------------------------------------------
//  Keys and values

static void
s_put_be64 (uint8_t *at, uint64_t value)
{
    for (int i = 7; i >= 0; i--) {
        at [i] = (uint8_t) value;
        value >>= 8;
    }
}

static void
s_put_be32 (uint8_t *at, uint32_t value)
{
    for (int i = 3; i >= 0; i--) {
        at [i] = (uint8_t) value;
        value >>= 8;
    }
}

static uint64_t
s_get_be64 (const uint8_t *at)
{
    uint64_t value = 0;
    for (int i = 0; i < 8; i++)
        value = (value << 8) | at [i];
    return value;
}

static uint32_t
s_get_be32 (const uint8_t *at)
{
    uint32_t value = 0;
    for (int i = 0; i < 4; i++)
        value = (value << 8) | at [i];
    return value;
}

static void
s_attempt_key (const qn_attempt_key_t *key, uint8_t *buffer)
{
    s_put_be64 (buffer, key->run_id);
    s_put_be32 (buffer + 8, key->task_index);
    s_put_be32 (buffer + 12, key->attempt);
}

static void
s_parse_attempt_key (const uint8_t *buffer, qn_attempt_key_t *key)
{
    key->run_id = s_get_be64 (buffer);
    key->task_index = s_get_be32 (buffer + 8);
    key->attempt = s_get_be32 (buffer + 12);
}

static void
s_event_key (const qn_attempt_key_t *key, uint64_t seq, uint8_t *buffer)
{
    s_attempt_key (key, buffer);
    s_put_be64 (buffer + S_ATTEMPT_KEY_SIZE, seq);
}

//  Metadata: "QM", version, flags (bit 0: finished), pid, start time,
//  next seq (be64 each), name length (be16), name; then, when any is set,
//  backend, engine job id and cursor, each as length (be16) and bytes,
//  then the work directory the same way when there is one.  Records
//  without those tails (written before they existed) still read.
#define S_META_MAX (S_META_HEAD_SIZE + QN_SPOOL_TASK_NAME_MAX + 8 + QN_SPOOL_BACKEND_MAX \
                    + QN_BACKEND_JOB_ID_MAX + QN_BACKEND_CURSOR_MAX + QN_SPOOL_WORKDIR_MAX)

static size_t
s_put_text (uint8_t *buffer, const char *text, size_t max)
{
    size_t size = strnlen (text, max);
    buffer [0] = (uint8_t) (size >> 8);
    buffer [1] = (uint8_t) size;
    memcpy (buffer + 2, text, size);
    return 2 + size;
}

//  Reads one length-prefixed text of at most max bytes into text (max + 1
//  bytes).  Returns the bytes used, 0 on malformed input.
static size_t
s_get_text (const uint8_t *data, size_t available, char *text, size_t max)
{
    if (available < 2)
        return 0;
    size_t size = ((size_t) data [0] << 8) | data [1];
    if (size > max || 2 + size > available || memchr (data + 2, '\0', size))
        return 0;
    memcpy (text, data + 2, size);
    text [size] = '\0';
    return 2 + size;
}

static size_t
s_meta_encode (const qn_spool_meta_t *meta, uint8_t *buffer)
{
    size_t name_size = strnlen (meta->task_name, QN_SPOOL_TASK_NAME_MAX);
    buffer [0] = 'Q';
    buffer [1] = 'M';
    buffer [2] = S_META_VERSION;
    buffer [3] = meta->finished? 1: 0;
    s_put_be64 (buffer + 4, (uint64_t) meta->pid);
    s_put_be64 (buffer + 12, meta->start_time);
    s_put_be64 (buffer + 20, meta->next_seq);
    buffer [28] = (uint8_t) (name_size >> 8);
    buffer [29] = (uint8_t) name_size;
    memcpy (buffer + S_META_HEAD_SIZE, meta->task_name, name_size);
    size_t size = S_META_HEAD_SIZE + name_size;
    if (meta->backend [0] || meta->engine_job_id [0] || meta->cursor [0]
    ||  meta->workdir [0]) {
        size += s_put_text (buffer + size, meta->backend, QN_SPOOL_BACKEND_MAX);
        size += s_put_text (buffer + size, meta->engine_job_id, QN_BACKEND_JOB_ID_MAX);
        size += s_put_text (buffer + size, meta->cursor, QN_BACKEND_CURSOR_MAX);
        if (meta->workdir [0])
            size += s_put_text (buffer + size, meta->workdir, QN_SPOOL_WORKDIR_MAX);
    }
    return size;
}

static int
s_meta_decode (const MDB_val *key, const MDB_val *value, qn_spool_meta_t *meta)
{
    const uint8_t *data = (const uint8_t *) value->mv_data;
    if (key->mv_size != S_ATTEMPT_KEY_SIZE
    ||  value->mv_size < S_META_HEAD_SIZE
    ||  data [0] != 'Q' || data [1] != 'M' || data [2] != S_META_VERSION
    ||  (data [3] & ~1))
        return -1;
    size_t name_size = ((size_t) data [28] << 8) | data [29];
    if (name_size > QN_SPOOL_TASK_NAME_MAX
    ||  value->mv_size < S_META_HEAD_SIZE + name_size
    ||  memchr (data + S_META_HEAD_SIZE, '\0', name_size))
        return -1;
    qn_spool_meta_t tail;
    memset (&tail, 0, sizeof (tail));
    size_t at = S_META_HEAD_SIZE + name_size;
    if (value->mv_size > at) {
        size_t used;
        if (!(used = s_get_text (data + at, value->mv_size - at, tail.backend,
                                 QN_SPOOL_BACKEND_MAX)))
            return -1;
        at += used;
        if (!(used = s_get_text (data + at, value->mv_size - at, tail.engine_job_id,
                                 QN_BACKEND_JOB_ID_MAX)))
            return -1;
        at += used;
        if (!(used = s_get_text (data + at, value->mv_size - at, tail.cursor,
                                 QN_BACKEND_CURSOR_MAX)))
            return -1;
        at += used;
        if (at < value->mv_size) {
            if (!(used = s_get_text (data + at, value->mv_size - at, tail.workdir,
                                     QN_SPOOL_WORKDIR_MAX)))
                return -1;
            at += used;
        }
        if (at != value->mv_size)
            return -1;
    }
    memset (meta, 0, sizeof (*meta));
    s_parse_attempt_key ((const uint8_t *) key->mv_data, &meta->key);
    meta->finished = data [3] & 1;
    meta->pid = (int64_t) s_get_be64 (data + 4);
    meta->start_time = s_get_be64 (data + 12);
    meta->next_seq = s_get_be64 (data + 20);
    if (meta->pid < 0 || meta->pid > INT32_MAX || meta->next_seq == 0)
        return -1;
    memcpy (meta->task_name, data + S_META_HEAD_SIZE, name_size);
    meta->task_name [name_size] = '\0';
    memcpy (meta->backend, tail.backend, sizeof (meta->backend));
    memcpy (meta->engine_job_id, tail.engine_job_id, sizeof (meta->engine_job_id));
    memcpy (meta->cursor, tail.cursor, sizeof (meta->cursor));
    memcpy (meta->workdir, tail.workdir, sizeof (meta->workdir));
    return 0;
}

//  True when value is an Event of that attempt and seq.  *finished_p
//  tells whether it is a Finished.
static bool
s_event_valid (const qn_attempt_key_t *key, uint64_t seq, const MDB_val *value,
               bool *finished_p)
{
    if (value->mv_size == 0 || value->mv_size > QN_MAX_MESSAGE_SIZE)
        return false;
    Qanat__Event *event = qanat__event__unpack (NULL, value->mv_size,
                                                (const uint8_t *) value->mv_data);
    if (!event)
        return false;
    bool valid = event->attempt
              && event->attempt->run_id == key->run_id
              && event->attempt->task_index == key->task_index
              && event->attempt->attempt == key->attempt
              && event->seq == seq
              && event->body_case != QANAT__EVENT__BODY__NOT_SET;
    if (finished_p)
        *finished_p = event->body_case == QANAT__EVENT__BODY_FINISHED;
    qanat__event__free_unpacked (event, NULL);
    return valid;
}


//  ---------------------------------------------------------------------
//  Opening and the check of every record

typedef struct {
    uint8_t key [QN_SPOOL_KEY_SIZE];
} s_fix_t;

static void
s_free_item (void **item)
{
    free (*item);
    *item = NULL;
}

//  Replaces a damaged event by a system log line saying it was lost.
static int
s_put_placeholder (qn_spool_t *self, MDB_txn *txn, const uint8_t *raw_key)
{
    qn_attempt_key_t key;
    s_parse_attempt_key (raw_key, &key);
    uint64_t seq = s_get_be64 (raw_key + S_ATTEMPT_KEY_SIZE);
    char text [160];
    snprintf (text, sizeof (text), "qanat-agent: event %" PRIu64 " of this attempt was "
              "damaged in the agent's spool and is lost", seq);
    Qanat__AttemptRef ref = QANAT__ATTEMPT_REF__INIT;
    ref.run_id = key.run_id;
    ref.task_index = key.task_index;
    ref.attempt = key.attempt;
    Qanat__LogChunk chunk = QANAT__LOG_CHUNK__INIT;
    chunk.stream = QANAT__STREAM__STREAM_SYSTEM;
    chunk.data.data = (uint8_t *) text;
    chunk.data.len = strlen (text);
    chunk.time_us = qn_now_us ();
    Qanat__Event event = QANAT__EVENT__INIT;
    event.attempt = &ref;
    event.seq = seq;
    event.body_case = QANAT__EVENT__BODY_LOG;
    event.log = &chunk;
    uint8_t buffer [512];
    size_t size = qanat__event__get_packed_size (&event);
    if (size > sizeof (buffer))
        return -1;
    qanat__event__pack (&event, buffer);
    MDB_val k = { QN_SPOOL_KEY_SIZE, (void *) raw_key };
    MDB_val v = { size, buffer };
    return mdb_put (txn, self->events, &k, &v, 0) == 0? 0: -1;
}

//  Deletes unreadable metadata.  Returns 0 or -1.
static int
s_check_metas (qn_spool_t *self, MDB_txn *txn)
{
    MDB_cursor *cursor;
    if (mdb_cursor_open (txn, self->attempts, &cursor))
        return -1;
    MDB_val k, v;
    int rc = mdb_cursor_get (cursor, &k, &v, MDB_FIRST);
    while (rc == 0) {
        qn_spool_meta_t meta;
        if (s_meta_decode (&k, &v, &meta) == -1) {
            self->damaged++;
            if (mdb_cursor_del (cursor, 0)) {
                mdb_cursor_close (cursor);
                return -1;
            }
        }
        rc = mdb_cursor_get (cursor, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close (cursor);
    return rc == MDB_NOTFOUND? 0: -1;
}

//  Makes sure the attempt whose last event is (key, last_seq) has
//  metadata that covers it.
static int
s_check_meta_of (qn_spool_t *self, MDB_txn *txn, const qn_attempt_key_t *key,
                 uint64_t last_seq, bool last_finished)
{
    uint8_t raw [S_ATTEMPT_KEY_SIZE];
    s_attempt_key (key, raw);
    MDB_val k = { S_ATTEMPT_KEY_SIZE, raw };
    MDB_val v;
    qn_spool_meta_t meta;
    int rc = mdb_get (txn, self->attempts, &k, &v);
    if (rc == 0 && s_meta_decode (&k, &v, &meta) == 0) {
        if (meta.next_seq > last_seq && (meta.finished || !last_finished))
            return 0;
    }
    else {
        if (rc != MDB_NOTFOUND && rc != 0)
            return -1;
        memset (&meta, 0, sizeof (meta));
        meta.key = *key;
    }
    self->damaged++;
    if (meta.next_seq <= last_seq)
        meta.next_seq = last_seq + 1;
    if (last_finished)
        meta.finished = true;
    uint8_t buffer [S_META_MAX];
    MDB_val value = { s_meta_encode (&meta, buffer), buffer };
    return mdb_put (txn, self->attempts, &k, &value, 0) == 0? 0: -1;
}

//  Walks every event: counts bytes, collects damage, then repairs it.
static int
s_check_events (qn_spool_t *self, MDB_txn *txn)
{
    MDB_cursor *cursor;
    if (mdb_cursor_open (txn, self->events, &cursor))
        return -1;
    zlistx_t *bad_keys = zlistx_new ();         //  zchunk of keys to delete
    zlistx_t *placeholders = zlistx_new ();     //  s_fix_t
    if (!bad_keys || !placeholders) {
        mdb_cursor_close (cursor);
        zlistx_destroy (&bad_keys);
        zlistx_destroy (&placeholders);
        return -1;
    }
    zlistx_set_destructor (bad_keys, (zlistx_destructor_fn *) zchunk_destroy);
    zlistx_set_destructor (placeholders, s_free_item);
    uint64_t bytes = 0;
    bool have_prev = false;
    qn_attempt_key_t prev = { 0, 0, 0 };
    uint64_t prev_seq = 0;
    bool prev_finished = false;
    int result = 0;
    MDB_val k, v;
    int rc = mdb_cursor_get (cursor, &k, &v, MDB_FIRST);
    while (rc == 0 && result == 0) {
        if (k.mv_size != QN_SPOOL_KEY_SIZE) {
            self->damaged++;
            zchunk_t *chunk = zchunk_new (k.mv_data, k.mv_size);
            if (!chunk || !zlistx_add_end (bad_keys, chunk))
                result = -1;
        }
        else {
            qn_attempt_key_t key;
            s_parse_attempt_key ((const uint8_t *) k.mv_data, &key);
            uint64_t seq = s_get_be64 ((const uint8_t *) k.mv_data + S_ATTEMPT_KEY_SIZE);
            bool finished = false;
            if (!s_event_valid (&key, seq, &v, &finished)) {
                self->damaged++;
                s_fix_t *fix = (s_fix_t *) malloc (sizeof (s_fix_t));
                if (fix)
                    memcpy (fix->key, k.mv_data, QN_SPOOL_KEY_SIZE);
                if (!fix || !zlistx_add_end (placeholders, fix)) {
                    free (fix);
                    result = -1;
                }
                finished = false;
            }
            else
                bytes += QN_SPOOL_KEY_SIZE + v.mv_size;
            bool same = have_prev && memcmp (&prev, &key, sizeof (key)) == 0;
            if (have_prev && !same
            &&  s_check_meta_of (self, txn, &prev, prev_seq, prev_finished) == -1)
                result = -1;
            have_prev = true;
            prev = key;
            prev_seq = seq;
            prev_finished = finished;
        }
        rc = mdb_cursor_get (cursor, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close (cursor);
    if (rc != 0 && rc != MDB_NOTFOUND)
        result = -1;
    if (result == 0 && have_prev
    &&  s_check_meta_of (self, txn, &prev, prev_seq, prev_finished) == -1)
        result = -1;
    zchunk_t *chunk = (zchunk_t *) zlistx_first (bad_keys);
    while (chunk && result == 0) {
        MDB_val bad = { zchunk_size (chunk), zchunk_data (chunk) };
        if (mdb_del (txn, self->events, &bad, NULL))
            result = -1;
        chunk = (zchunk_t *) zlistx_next (bad_keys);
    }
    s_fix_t *fix = (s_fix_t *) zlistx_first (placeholders);
    while (fix && result == 0) {
        if (s_put_placeholder (self, txn, fix->key) == -1)
            result = -1;
        else {
            MDB_val key = { QN_SPOOL_KEY_SIZE, fix->key };
            MDB_val value;
            if (mdb_get (txn, self->events, &key, &value) == 0)
                bytes += QN_SPOOL_KEY_SIZE + value.mv_size;
        }
        fix = (s_fix_t *) zlistx_next (placeholders);
    }
    zlistx_destroy (&bad_keys);
    zlistx_destroy (&placeholders);
    self->bytes = bytes;
    return result;
}

qn_spool_t *
qn_spool_new (const char *path, uint64_t max_bytes, uint64_t reserve_bytes)
{
    assert (path);
    qn_spool_t *self = (qn_spool_t *) calloc (1, sizeof (qn_spool_t));
    if (!self)
        return NULL;
    self->lock_fd = -1;
    self->max = max_bytes? max_bytes: QN_SPOOL_DEFAULT_MAX;
    if (self->max < S_MIN_MAX)
        self->max = S_MIN_MAX;
    self->reserve = reserve_bytes < self->max / 4? reserve_bytes: self->max / 4;

    char lock_path [4096];
    snprintf (lock_path, sizeof (lock_path), "%s/agent.lock", path);
    self->lock_fd = open (lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (self->lock_fd == -1) {
        qn_log (QN_LOG_ERROR, "spool", "cannot open %s: %s", lock_path, strerror (errno));
        qn_spool_destroy (&self);
        return NULL;
    }
    if (flock (self->lock_fd, LOCK_EX | LOCK_NB) == -1) {
        qn_log (QN_LOG_ERROR, "spool", "spool %s is in use by another agent", path);
        qn_spool_destroy (&self);
        return NULL;
    }
    int rc = mdb_env_create (&self->env);
    if (rc == 0)
        rc = mdb_env_set_maxdbs (self->env, 4);
    if (rc == 0) {
        uint64_t map = self->max * 2 + S_MAP_SLACK;
        long page = sysconf (_SC_PAGESIZE);
        if (page > 0)
            map = (map + (uint64_t) page - 1) / (uint64_t) page * (uint64_t) page;
        rc = mdb_env_set_mapsize (self->env, (size_t) map);
    }
    if (rc == 0)
        rc = mdb_env_open (self->env, path, MDB_NOTLS, 0600);
    if (rc) {
        qn_log (QN_LOG_ERROR, "spool", "cannot open the spool in %s: %s", path, mdb_strerror (rc));
        qn_spool_destroy (&self);
        return NULL;
    }
    MDB_txn *txn = NULL;
    rc = mdb_txn_begin (self->env, NULL, 0, &txn);
    if (rc == 0)
        rc = mdb_dbi_open (txn, "events", MDB_CREATE, &self->events);
    if (rc == 0)
        rc = mdb_dbi_open (txn, "attempts", MDB_CREATE, &self->attempts);
    if (rc == 0 && (s_check_metas (self, txn) == -1 || s_check_events (self, txn) == -1))
        rc = EIO;
    if (rc == 0)
        rc = mdb_txn_commit (txn);
    else
    if (txn)
        mdb_txn_abort (txn);
    if (rc) {
        qn_log (QN_LOG_ERROR, "spool", "cannot read the spool in %s: %s", path, mdb_strerror (rc));
        qn_spool_destroy (&self);
        return NULL;
    }
    if (self->damaged)
        qn_log (QN_LOG_WARNING, "spool", "spool %s: %" PRIu64 " damaged record(s) skipped or "
                      "repaired", path, self->damaged);
    return self;
}

void
qn_spool_destroy (qn_spool_t **self_p)
{
    assert (self_p);
    qn_spool_t *self = *self_p;
    if (!self)
        return;
    qn_spool_abort (self);
    if (self->env)
        mdb_env_close (self->env);
    if (self->lock_fd != -1)
        close (self->lock_fd);
    free (self);
    *self_p = NULL;
}


//  ---------------------------------------------------------------------
//  Writing

//  Opens the write transaction of this batch if there is none.
static int
s_begin (qn_spool_t *self)
{
    if (self->txn)
        return self->txn_failed? -1: 0;
    int rc = mdb_txn_begin (self->env, NULL, 0, &self->txn);
    if (rc) {
        self->txn = NULL;
        qn_log (QN_LOG_ERROR, "spool", "spool: cannot begin a transaction: %s", mdb_strerror (rc));
        return -1;
    }
    self->txn_failed = false;
    self->delta = 0;
    return 0;
}

static void
s_failed (qn_spool_t *self, const char *what, int rc)
{
    self->txn_failed = true;
    qn_log (QN_LOG_ERROR, "spool", "spool: cannot %s: %s", what, mdb_strerror (rc));
}

int
qn_spool_put (qn_spool_t *self, const qn_attempt_key_t *key, uint64_t seq,
              const void *data, size_t size, bool reserve)
{
    assert (self);
    assert (key);
    if (size > QN_MAX_MESSAGE_SIZE) {
        errno = EINVAL;
        return -1;
    }
    if (s_begin (self) == -1) {
        errno = EIO;
        return -1;
    }
    uint64_t limit = reserve? self->max: self->max - self->reserve;
    uint64_t need = QN_SPOOL_KEY_SIZE + size;
    if (qn_spool_bytes (self) + need > limit) {
        errno = ENOSPC;
        return -1;
    }
    uint8_t raw [QN_SPOOL_KEY_SIZE];
    s_event_key (key, seq, raw);
    MDB_val k = { sizeof (raw), raw };
    MDB_val v = { size, (void *) data };
    int rc = mdb_put (self->txn, self->events, &k, &v, MDB_NOOVERWRITE);
    if (rc == MDB_KEYEXIST) {
        errno = EEXIST;
        return -1;
    }
    if (rc) {
        s_failed (self, "store an event", rc);
        errno = rc == MDB_MAP_FULL? ENOSPC: EIO;
        return -1;
    }
    self->delta += (int64_t) need;
    return 0;
}

int
qn_spool_ack (qn_spool_t *self, const qn_attempt_key_t *key, uint64_t seq)
{
    assert (self);
    assert (key);
    if (s_begin (self) == -1)
        return -1;
    MDB_cursor *cursor;
    int rc = mdb_cursor_open (self->txn, self->events, &cursor);
    if (rc) {
        s_failed (self, "open a cursor", rc);
        return -1;
    }
    uint8_t raw [QN_SPOOL_KEY_SIZE];
    s_event_key (key, 0, raw);
    MDB_val k = { sizeof (raw), raw };
    MDB_val v;
    int deleted = 0;
    rc = mdb_cursor_get (cursor, &k, &v, MDB_SET_RANGE);
    while (rc == 0) {
        if (k.mv_size != QN_SPOOL_KEY_SIZE
        ||  memcmp (k.mv_data, raw, S_ATTEMPT_KEY_SIZE) != 0
        ||  s_get_be64 ((const uint8_t *) k.mv_data + S_ATTEMPT_KEY_SIZE) > seq)
            break;
        size_t size = v.mv_size;
        rc = mdb_cursor_del (cursor, 0);
        if (rc)
            break;
        self->delta -= (int64_t) (QN_SPOOL_KEY_SIZE + size);
        deleted++;
        //  After a delete the cursor's next item is the one that followed
        rc = mdb_cursor_get (cursor, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close (cursor);
    if (rc != 0 && rc != MDB_NOTFOUND) {
        s_failed (self, "delete acknowledged events", rc);
        return -1;
    }
    return deleted;
}

int
qn_spool_meta_put (qn_spool_t *self, const qn_spool_meta_t *meta)
{
    assert (self);
    assert (meta);
    if (s_begin (self) == -1)
        return -1;
    uint8_t raw [S_ATTEMPT_KEY_SIZE];
    s_attempt_key (&meta->key, raw);
    uint8_t buffer [S_META_MAX];
    MDB_val k = { sizeof (raw), raw };
    MDB_val v = { s_meta_encode (meta, buffer), buffer };
    int rc = mdb_put (self->txn, self->attempts, &k, &v, 0);
    if (rc) {
        s_failed (self, "store an attempt", rc);
        return -1;
    }
    return 0;
}

int
qn_spool_meta_delete (qn_spool_t *self, const qn_attempt_key_t *key)
{
    assert (self);
    assert (key);
    if (qn_spool_ack (self, key, UINT64_MAX) == -1)
        return -1;
    uint8_t raw [S_ATTEMPT_KEY_SIZE];
    s_attempt_key (key, raw);
    MDB_val k = { sizeof (raw), raw };
    int rc = mdb_del (self->txn, self->attempts, &k, NULL);
    if (rc && rc != MDB_NOTFOUND) {
        s_failed (self, "delete an attempt", rc);
        return -1;
    }
    return 0;
}

int
qn_spool_commit (qn_spool_t *self)
{
    assert (self);
    if (!self->txn)
        return 0;
    if (self->txn_failed) {
        qn_spool_abort (self);
        return -1;
    }
    int rc = mdb_txn_commit (self->txn);
    self->txn = NULL;
    if (rc) {
        self->delta = 0;
        qn_log (QN_LOG_ERROR, "spool", "spool: commit failed: %s", mdb_strerror (rc));
        return -1;
    }
    self->bytes = (uint64_t) ((int64_t) self->bytes + self->delta);
    self->delta = 0;
    return 0;
}

void
qn_spool_abort (qn_spool_t *self)
{
    assert (self);
    if (self->txn)
        mdb_txn_abort (self->txn);
    self->txn = NULL;
    self->txn_failed = false;
    self->delta = 0;
}


//  ---------------------------------------------------------------------
//  Reading

int
qn_spool_events (qn_spool_t *self, const qn_attempt_key_t *key, uint64_t from_seq,
                 qn_spool_event_fn *fn, void *arg)
{
    assert (self);
    assert (fn);
    MDB_txn *txn;
    if (mdb_txn_begin (self->env, NULL, MDB_RDONLY, &txn))
        return -1;
    MDB_cursor *cursor;
    if (mdb_cursor_open (txn, self->events, &cursor)) {
        mdb_txn_abort (txn);
        return -1;
    }
    uint8_t raw [QN_SPOOL_KEY_SIZE];
    MDB_val k, v;
    int rc;
    if (key) {
        s_event_key (key, from_seq, raw);
        k.mv_size = sizeof (raw);
        k.mv_data = raw;
        rc = mdb_cursor_get (cursor, &k, &v, MDB_SET_RANGE);
    }
    else
        rc = mdb_cursor_get (cursor, &k, &v, MDB_FIRST);
    int calls = 0;
    while (rc == 0) {
        if (key && (k.mv_size < S_ATTEMPT_KEY_SIZE
                    || memcmp (k.mv_data, raw, S_ATTEMPT_KEY_SIZE) != 0))
            break;
        if (k.mv_size == QN_SPOOL_KEY_SIZE) {
            qn_attempt_key_t at;
            s_parse_attempt_key ((const uint8_t *) k.mv_data, &at);
            uint64_t seq = s_get_be64 ((const uint8_t *) k.mv_data + S_ATTEMPT_KEY_SIZE);
            if (seq >= from_seq) {
                calls++;
                if (fn (&at, seq, v.mv_data, v.mv_size, arg) != 0)
                    break;
            }
        }
        rc = mdb_cursor_get (cursor, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close (cursor);
    mdb_txn_abort (txn);
    return rc == 0 || rc == MDB_NOTFOUND? calls: -1;
}

int
qn_spool_metas (qn_spool_t *self, qn_spool_meta_fn *fn, void *arg)
{
    assert (self);
    assert (fn);
    MDB_txn *txn;
    if (mdb_txn_begin (self->env, NULL, MDB_RDONLY, &txn))
        return -1;
    MDB_cursor *cursor;
    if (mdb_cursor_open (txn, self->attempts, &cursor)) {
        mdb_txn_abort (txn);
        return -1;
    }
    int calls = 0;
    MDB_val k, v;
    int rc = mdb_cursor_get (cursor, &k, &v, MDB_FIRST);
    while (rc == 0) {
        qn_spool_meta_t meta;
        if (s_meta_decode (&k, &v, &meta) == 0) {
            calls++;
            if (fn (&meta, arg) != 0)
                break;
        }
        rc = mdb_cursor_get (cursor, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close (cursor);
    mdb_txn_abort (txn);
    return rc == 0 || rc == MDB_NOTFOUND? calls: -1;
}

int
qn_spool_meta_get (qn_spool_t *self, const qn_attempt_key_t *key, qn_spool_meta_t *meta)
{
    assert (self);
    assert (key);
    assert (meta);
    MDB_txn *txn;
    if (mdb_txn_begin (self->env, NULL, MDB_RDONLY, &txn))
        return -1;
    uint8_t raw [S_ATTEMPT_KEY_SIZE];
    s_attempt_key (key, raw);
    MDB_val k = { sizeof (raw), raw };
    MDB_val v;
    int rc = mdb_get (txn, self->attempts, &k, &v);
    if (rc == 0)
        rc = s_meta_decode (&k, &v, meta) == 0? 0: -1;
    mdb_txn_abort (txn);
    return rc == 0? 0: -1;
}

uint64_t
qn_spool_bytes (qn_spool_t *self)
{
    assert (self);
    int64_t bytes = (int64_t) self->bytes + self->delta;
    return bytes > 0? (uint64_t) bytes: 0;
}

uint64_t
qn_spool_committed_bytes (qn_spool_t *self)
{
    assert (self);
    return self->bytes;
}

uint64_t
qn_spool_max (qn_spool_t *self)
{
    assert (self);
    return self->max;
}

uint64_t
qn_spool_reserve (qn_spool_t *self)
{
    assert (self);
    return self->reserve;
}

uint64_t
qn_spool_damaged (qn_spool_t *self)
{
    assert (self);
    return self->damaged;
}
