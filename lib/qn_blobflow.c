/*  qn_blobflow - the protocol logic of a blob transfer, shared by both
    ends.  See include/qn_blobflow.h. */
#include "qn_blobflow.h"
#include <assert.h>
#include <stdio.h>
#include <string.h>

static void
s_set_error (char *error, size_t error_size, const char *text)
{
    if (error && error_size)
        snprintf (error, error_size, "%s", text);
}

//  Asks for the bytes from offset, up to one window.
static void
s_ask (qn_blobflow_receiver_t *self, uint64_t offset, qn_blobflow_want_t *want)
{
    uint64_t rest = self->size - offset;
    uint32_t window = rest < QN_BLOBFLOW_WINDOW? (uint32_t) rest: QN_BLOBFLOW_WINDOW;
    self->asked_end = offset + window;
    want->offset = offset;
    want->window = window;
}

void
qn_blobflow_receiver_init (qn_blobflow_receiver_t *self, const char *hash, uint64_t size,
                           qn_blobflow_tally_t *tally)
{
    assert (self);
    assert (qn_blobstore_valid_hash (hash));
    memset (self, 0, sizeof *self);
    memcpy (self->hash, hash, QN_BLOB_HASH_HEX);
    self->size = size;
    self->tally = tally;
}

qn_blobflow_action_t
qn_blobflow_resume (qn_blobflow_receiver_t *self, qn_blobstore_t *store,
                    qn_blobflow_want_t *want, char *error, size_t error_size)
{
    assert (self);
    assert (store);
    assert (want);
    self->refetching = false;
    if (qn_blobstore_has (store, self->hash))
        return QN_BLOBFLOW_PRESENT;
    self->position = qn_blobstore_partial (store, self->hash);
    if (self->position > self->size) {
        //  Not the blob we were told of; start clean.
        qn_blobstore_abandon (store, self->hash);
        self->position = 0;
    }
    if (self->position == self->size)
        return qn_blobflow_finish (self, store, want, error, error_size);
    s_ask (self, self->position, want);
    return QN_BLOBFLOW_WANT;
}

qn_blobflow_action_t
qn_blobflow_finish (qn_blobflow_receiver_t *self, qn_blobstore_t *store,
                    qn_blobflow_want_t *want, char *error, size_t error_size)
{
    assert (self);
    assert (store);
    assert (want);
    char reason [256] = "";
    if (qn_blobstore_finish (store, self->hash, self->size, reason, sizeof reason) == 0)
        return QN_BLOBFLOW_COMPLETE;
    //  finish dropped the partial: the next try starts at 0.
    self->position = 0;
    self->refetching = false;
    //  An empty blob has nothing to fetch again.
    if (++self->failures >= QN_BLOBFLOW_MAX_FAILURES || self->size == 0) {
        s_set_error (error, error_size, reason);
        return QN_BLOBFLOW_FAILED;
    }
    if (self->tally)
        self->tally->restarts++;
    s_ask (self, 0, want);
    return QN_BLOBFLOW_RESTART;
}

void
qn_blobflow_refetch (qn_blobflow_receiver_t *self, qn_blobflow_want_t *want)
{
    assert (self);
    assert (want);
    self->refetching = true;
    s_ask (self, self->position, want);
}

//  qn_blobflow_receive but for the tally.
static qn_blobflow_action_t
s_receive (qn_blobflow_receiver_t *self, qn_blobstore_t *store,
           const Qanat__BlobChunk *chunk, qn_blobflow_want_t *want,
           size_t *written, char *error, size_t error_size)
{
    if (!chunk || !chunk->hash || strcmp (chunk->hash, self->hash))
        return QN_BLOBFLOW_DROPPED;
    size_t size = chunk->data.len;
    if (size == 0 || size > QN_BLOBFLOW_CHUNK || !chunk->data.data
    ||  chunk->offset > self->size || size > self->size - chunk->offset)
        return QN_BLOBFLOW_DROPPED;     //  no sender of ours sends that
    if (chunk->offset < self->position)
        return QN_BLOBFLOW_DROPPED;     //  a duplicate of what we hold
    if (chunk->offset > self->position) {
        //  A gap: a chunk went missing (or this is stale after a re-ask).
        if (self->refetching)
            return QN_BLOBFLOW_DROPPED;
        qn_blobflow_refetch (self, want);
        return QN_BLOBFLOW_REFETCH;
    }
    uint8_t digest [32];
    if (chunk->sha256.len != 32 || !chunk->sha256.data
    ||  qn_blobstore_hash_chunk (chunk->data.data, size, digest)
    ||  memcmp (digest, chunk->sha256.data, 32)) {
        qn_blobflow_refetch (self, want);
        return QN_BLOBFLOW_REFETCH;
    }
    char reason [256] = "";
    //  Verified above: no need to hash it twice.
    if (qn_blobstore_write (store, self->hash, chunk->offset, chunk->data.data, size,
                            NULL, reason, sizeof reason)) {
        uint64_t partial = qn_blobstore_partial (store, self->hash);
        if (partial == self->position) {
            s_set_error (error, error_size, reason);
            return QN_BLOBFLOW_BROKEN;  //  the disk, not the data
        }
        //  The partial changed under us: go on from what it holds.
        if (partial > self->size) {
            qn_blobstore_abandon (store, self->hash);
            partial = 0;
        }
        self->position = partial;
        qn_blobflow_refetch (self, want);
        return QN_BLOBFLOW_REFETCH;
    }
    self->position += size;
    self->refetching = false;
    *written = size;
    if (self->position == self->size)
        return qn_blobflow_finish (self, store, want, error, error_size);
    if (self->asked_end < self->size
    &&  self->asked_end - self->position <= QN_BLOBFLOW_WINDOW / 2) {
        //  Half the window consumed: ask for the next bytes, up to one
        //  window past our position, so one window at most is in flight.
        uint64_t end = self->position + QN_BLOBFLOW_WINDOW;
        if (end > self->size)
            end = self->size;
        want->offset = self->asked_end;
        want->window = (uint32_t) (end - self->asked_end);
        self->asked_end = end;
        return QN_BLOBFLOW_WANT_MORE;
    }
    return QN_BLOBFLOW_WRITTEN;
}

qn_blobflow_action_t
qn_blobflow_receive (qn_blobflow_receiver_t *self, qn_blobstore_t *store,
                     const Qanat__BlobChunk *chunk, qn_blobflow_want_t *want,
                     size_t *written, char *error, size_t error_size)
{
    assert (self);
    assert (store);
    assert (want);
    size_t bytes = 0;
    qn_blobflow_action_t action = s_receive (self, store, chunk, want, &bytes,
                                             error, error_size);
    if (self->tally) {
        self->tally->bytes += bytes;
        if (action == QN_BLOBFLOW_DROPPED)
            self->tally->dropped++;
        else
        if (action == QN_BLOBFLOW_REFETCH)
            self->tally->rejected++;
    }
    if (written)
        *written = bytes;
    return action;
}

// ---------------------------------------------------------------------
// Messages and the sending end

int
qn_blobflow_send_want (qn_blobflow_send_fn *send_fn, void *send_arg, const char *hash,
                       uint64_t offset, uint32_t window, bool complete, const char *error)
{
    assert (send_fn);
    Qanat__BlobWant want = QANAT__BLOB_WANT__INIT;
    want.hash = (char *) hash;
    want.offset = offset;
    want.window = window;
    want.complete = complete;
    if (error)
        want.error = (char *) error;
    Qanat__Envelope envelope = QANAT__ENVELOPE__INIT;
    envelope.body_case = QANAT__ENVELOPE__BODY_BLOB_WANT;
    envelope.blob_want = &want;
    return send_fn (send_arg, &envelope);
}

//  Sends one chunk: data with its SHA-256, or an error.
static int
s_send_chunk (qn_blobflow_send_fn *send_fn, void *send_arg, const char *hash, uint64_t offset,
              const uint8_t *data, size_t size, const char *error)
{
    Qanat__BlobChunk chunk = QANAT__BLOB_CHUNK__INIT;
    uint8_t digest [32];
    chunk.hash = (char *) hash;
    chunk.offset = offset;
    if (error)
        chunk.error = (char *) error;
    else {
        qn_blobstore_hash_chunk (data, size, digest);
        chunk.data.data = (uint8_t *) data;
        chunk.data.len = size;
        chunk.sha256.data = digest;
        chunk.sha256.len = sizeof digest;
    }
    Qanat__Envelope envelope = QANAT__ENVELOPE__INIT;
    envelope.body_case = QANAT__ENVELOPE__BODY_BLOB_CHUNK;
    envelope.blob_chunk = &chunk;
    return send_fn (send_arg, &envelope);
}

int
qn_blobflow_send_error (qn_blobflow_send_fn *send_fn, void *send_arg, const char *hash,
                        uint64_t offset, const char *error)
{
    assert (send_fn);
    assert (error);
    return s_send_chunk (send_fn, send_arg, hash, offset, NULL, 0, error);
}

int
qn_blobflow_answer (const Qanat__BlobWant *want, uint64_t size,
                    qn_blobflow_read_fn *read_fn, void *read_arg,
                    qn_blobflow_send_fn *send_fn, void *send_arg,
                    uint8_t *buffer, uint64_t *sent,
                    char *error, size_t error_size)
{
    assert (want);
    assert (read_fn);
    assert (send_fn);
    assert (buffer);
    if (sent)
        *sent = 0;
    uint32_t window = want->window < QN_BLOBFLOW_WINDOW? want->window: QN_BLOBFLOW_WINDOW;
    uint64_t end = want->offset > UINT64_MAX - window? UINT64_MAX: want->offset + window;
    if (end > size)
        end = size;
    for (uint64_t at = want->offset; at < end; ) {
        size_t chunk = end - at < QN_BLOBFLOW_CHUNK? (size_t) (end - at): QN_BLOBFLOW_CHUNK;
        char reason [256] = "";
        ssize_t rc = read_fn (read_arg, want->hash, at, buffer, chunk, reason, sizeof reason);
        assert (rc <= (ssize_t) chunk);
        if (rc < 0 || (rc == 0 && at == want->offset)) {
            //  Nothing at all at the offset asked for: it was past the end.
            if (rc == 0)
                snprintf (reason, sizeof reason, "offset past the end of the blob");
            s_send_chunk (send_fn, send_arg, want->hash, at, NULL, 0, reason);
            s_set_error (error, error_size, reason);
            return -1;
        }
        if (rc == 0)
            return 0;           //  the end of the blob, on a chunk boundary
        if (s_send_chunk (send_fn, send_arg, want->hash, at, buffer, (size_t) rc, NULL))
            return 0;           //  the receiver asks again
        if (sent)
            *sent += (uint64_t) rc;
        if ((size_t) rc < chunk)
            return 0;           //  the end of the blob
        at += chunk;
    }
    return 0;
}
