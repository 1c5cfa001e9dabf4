/*  qn_blobserver - the coordinator's end of blob transfers.  See
    qn_blobserver.h and agent/qn_transfer.h for the protocol. */
#include "qn_blobserver.h"
#include "qn_log.h"
#include <assert.h>
#include <czmq.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

//  One upload: one peer sending one blob.
typedef struct {
    char *peer;
    char hash [QN_BLOB_HASH_HEX + 1];
    char *key;              //  hash followed by peer (the hash has a fixed length)
    uint64_t size;
    bool has_attempt;
    Qanat__AttemptRef attempt;
    bool running;           //  false: waiting for another peer's upload of the hash
    bool progressed;        //  since the last tick
    qn_blobflow_receiver_t flow;
} s_upload_t;

struct _qn_blobserver_t {
    qn_blobstore_t *blobs;
    qn_blobserver_send_fn *send;
    qn_blobserver_stored_fn *stored;
    void *arg;
    uint64_t max_size;
    size_t max_uploads;
    zhashx_t *uploads;      //  key -> s_upload_t, owned
    zhashx_t *running;      //  hash -> the running s_upload_t of that hash
    uint8_t *buffer;        //  one chunk
    qn_blobserver_stats_t stats;
    qn_blobflow_tally_t tally;  //  the uploads' chunks, added to stats
};

static void
s_upload_destroy (s_upload_t **upload_p)
{
    s_upload_t *upload = *upload_p;
    if (!upload)
        return;
    free (upload->peer);
    free (upload->key);
    free (upload);
    *upload_p = NULL;
}

static void
s_upload_destructor (void **item)
{
    s_upload_destroy ((s_upload_t **) item);
}

qn_blobserver_t *
qn_blobserver_new (qn_blobstore_t *blobs, qn_blobserver_send_fn *send,
                   qn_blobserver_stored_fn *stored, void *arg)
{
    assert (blobs);
    assert (send);
    qn_blobserver_t *self = (qn_blobserver_t *) calloc (1, sizeof (qn_blobserver_t));
    if (!self)
        return NULL;
    self->blobs = blobs;
    self->send = send;
    self->stored = stored;
    self->arg = arg;
    self->max_size = QN_BLOBSERVER_MAX_SIZE;
    self->max_uploads = QN_BLOBSERVER_MAX_UPLOADS;
    self->uploads = zhashx_new ();
    self->running = zhashx_new ();
    self->buffer = (uint8_t *) malloc (QN_BLOBSERVER_CHUNK);
    if (!self->uploads || !self->running || !self->buffer) {
        qn_blobserver_destroy (&self);
        return NULL;
    }
    zhashx_set_destructor (self->uploads, s_upload_destructor);
    return self;
}

void
qn_blobserver_destroy (qn_blobserver_t **self_p)
{
    assert (self_p);
    qn_blobserver_t *self = *self_p;
    if (!self)
        return;
    zhashx_destroy (&self->running);
    zhashx_destroy (&self->uploads);
    free (self->buffer);
    free (self);
    *self_p = NULL;
}

void
qn_blobserver_set_max_size (qn_blobserver_t *self, uint64_t max_size)
{
    assert (self);
    self->max_size = max_size;
}

void
qn_blobserver_set_max_uploads (qn_blobserver_t *self, size_t max_uploads)
{
    assert (self);
    self->max_uploads = max_uploads;
}

// ---------------------------------------------------------------------
// Messages

//  Where a message goes: a qn_blobflow_send_fn's argument.
typedef struct {
    qn_blobserver_t *self;
    const char *peer;
} s_dest_t;

static int
s_send (void *arg, Qanat__Envelope *envelope)
{
    s_dest_t *dest = (s_dest_t *) arg;
    return dest->self->send (dest->self->arg, dest->peer, envelope);
}

static int
s_send_want (qn_blobserver_t *self, const char *peer, const char *hash, uint64_t offset,
             uint32_t window, bool complete, const char *error)
{
    s_dest_t dest = { self, peer };
    return qn_blobflow_send_want (s_send, &dest, hash, offset, window, complete, error);
}

// ---------------------------------------------------------------------
// Uploads

static char *
s_key (const char *hash, const char *peer)
{
    size_t size = QN_BLOB_HASH_HEX + strlen (peer) + 1;
    char *key = (char *) malloc (size);
    if (key)
        snprintf (key, size, "%s%s", hash, peer);
    return key;
}

static s_upload_t *
s_lookup (qn_blobserver_t *self, const char *peer, const char *hash)
{
    if (!peer || !qn_blobstore_valid_hash (hash))
        return NULL;
    char *key = s_key (hash, peer);
    if (!key)
        return NULL;
    s_upload_t *upload = (s_upload_t *) zhashx_lookup (self->uploads, key);
    free (key);
    return upload;
}

static void
s_stored (qn_blobserver_t *self, s_upload_t *upload)
{
    if (self->stored)
        self->stored (self->arg, upload->peer, upload->hash, upload->size,
                      upload->has_attempt? &upload->attempt: NULL);
}

//  The uploads waiting for the running one of hash, in a new list.
static zlist_t *
s_waiting (qn_blobserver_t *self, const char *hash)
{
    zlist_t *waiting = zlist_new ();
    if (!waiting)
        return NULL;
    s_upload_t *upload = (s_upload_t *) zhashx_first (self->uploads);
    while (upload) {
        if (!upload->running && streq (upload->hash, hash))
            zlist_append (waiting, upload);
        upload = (s_upload_t *) zhashx_next (self->uploads);
    }
    return waiting;
}

static void s_start (qn_blobserver_t *self, s_upload_t *upload);

//  Forgets an upload; when it was the running one of its hash, the blob's
//  waiting offers are told it is stored, or one of them takes over.
static void
s_remove (qn_blobserver_t *self, s_upload_t *upload)
{
    char hash [QN_BLOB_HASH_HEX + 1];
    memcpy (hash, upload->hash, sizeof hash);
    bool was_running = upload->running;
    if (was_running)
        zhashx_delete (self->running, hash);
    zhashx_delete (self->uploads, upload->key);        //  destroys it
    if (!was_running)
        return;
    zlist_t *waiting = s_waiting (self, hash);
    if (!waiting)
        return;
    bool stored = qn_blobstore_has (self->blobs, hash);
    s_upload_t *next = (s_upload_t *) zlist_first (waiting);
    while (next) {
        if (stored) {
            self->stats.uploads_deduplicated++;
            s_send_want (self, next->peer, next->hash, next->size, 0, true, NULL);
            s_stored (self, next);
            zhashx_delete (self->uploads, next->key);
        }
        else {
            s_start (self, next);
            break;
        }
        next = (s_upload_t *) zlist_next (waiting);
    }
    zlist_destroy (&waiting);
}

//  Ends an upload: stored (status 0), or given up with error told to the peer.
static void
s_end (qn_blobserver_t *self, s_upload_t *upload, int status, const char *error)
{
    if (status == 0) {
        self->stats.uploads_completed++;
        s_send_want (self, upload->peer, upload->hash, upload->size, 0, true, NULL);
        s_stored (self, upload);
    }
    else {
        self->stats.uploads_failed++;
        if (error)
            s_send_want (self, upload->peer, upload->hash, upload->flow.position, 0, false,
                         error);
    }
    s_remove (self, upload);
}

//  Does what an upload's receiver decided.  The upload may be gone when
//  this returns.
static void
s_act (qn_blobserver_t *self, s_upload_t *upload, qn_blobflow_action_t action,
       const qn_blobflow_want_t *want, const char *error)
{
    switch (action) {
        case QN_BLOBFLOW_WANT:
        case QN_BLOBFLOW_WANT_MORE:
        case QN_BLOBFLOW_REFETCH:
        case QN_BLOBFLOW_RESTART:
            s_send_want (self, upload->peer, upload->hash, want->offset, want->window,
                         false, NULL);
            break;
        case QN_BLOBFLOW_PRESENT:
        case QN_BLOBFLOW_COMPLETE:
            s_end (self, upload, 0, NULL);
            break;
        case QN_BLOBFLOW_FAILED:
            qn_log (QN_LOG_WARNING, "blobs", "blobserver: upload %s from %s failed: %s",
                    upload->hash, upload->peer, error);
            s_end (self, upload, -1, error);
            break;
        case QN_BLOBFLOW_BROKEN:
            qn_log (QN_LOG_ERROR, "blobs", "blobserver: upload %s from %s: %s", upload->hash,
                    upload->peer, error);
            s_end (self, upload, -1, error);
            break;
        case QN_BLOBFLOW_DROPPED:
        case QN_BLOBFLOW_WRITTEN:
            break;                      //  counted in the tally
    }
}

//  Pulls the upload from what our partial holds.  May end it.
static void
s_start (qn_blobserver_t *self, s_upload_t *upload)
{
    if (!upload->running) {
        upload->running = true;
        zhashx_insert (self->running, upload->hash, upload);
    }
    upload->progressed = true;
    qn_blobflow_want_t want = { 0, 0 };
    char error [256] = "";
    qn_blobflow_action_t action = qn_blobflow_resume (&upload->flow, self->blobs, &want,
                                                      error, sizeof error);
    s_act (self, upload, action, &want, error);
}

static size_t
s_peer_uploads (qn_blobserver_t *self, const char *peer)
{
    size_t count = 0;
    s_upload_t *upload = (s_upload_t *) zhashx_first (self->uploads);
    while (upload) {
        if (streq (upload->peer, peer))
            count++;
        upload = (s_upload_t *) zhashx_next (self->uploads);
    }
    return count;
}

//  Size of a stored blob, or -1.
static int
s_stored_size (qn_blobserver_t *self, const char *hash, uint64_t *size)
{
    char path [PATH_MAX];
    struct stat st;
    if (qn_blobstore_path (self->blobs, hash, path, sizeof path) || stat (path, &st))
        return -1;
    *size = (uint64_t) st.st_size;
    return 0;
}

void
qn_blobserver_on_offer (qn_blobserver_t *self, const char *peer, const Qanat__BlobOffer *offer)
{
    assert (self);
    if (!peer || !offer || !qn_blobstore_valid_hash (offer->hash)) {
        self->stats.dropped++;
        return;
    }
    s_upload_t *upload = s_lookup (self, peer, offer->hash);
    if (upload) {
        //  Offered again (the peer reconnected, or thinks we stalled).
        if (upload->size != offer->size) {
            self->stats.dropped++;
            return;
        }
        self->stats.resumes++;
        if (upload->running)
            s_start (self, upload);
        return;
    }
    char error [256];
    uint64_t stored_size;
    if (offer->size > self->max_size) {
        self->stats.refused++;
        snprintf (error, sizeof error, "blob of %" PRIu64 " bytes exceeds the limit of %" PRIu64,
                  offer->size, self->max_size);
        s_send_want (self, peer, offer->hash, 0, 0, false, error);
        return;
    }
    if (qn_blobstore_has (self->blobs, offer->hash)) {
        if (s_stored_size (self, offer->hash, &stored_size) == 0 && stored_size != offer->size) {
            self->stats.refused++;
            snprintf (error, sizeof error, "blob %s has %" PRIu64 " bytes, not %" PRIu64,
                      offer->hash, stored_size, offer->size);
            s_send_want (self, peer, offer->hash, 0, 0, false, error);
            return;
        }
        self->stats.uploads_deduplicated++;
        s_send_want (self, peer, offer->hash, offer->size, 0, true, NULL);
        if (self->stored)
            self->stored (self->arg, peer, offer->hash, offer->size, offer->attempt);
        return;
    }
    if (s_peer_uploads (self, peer) >= self->max_uploads) {
        self->stats.refused++;
        snprintf (error, sizeof error, "too many uploads at once (%zu)", self->max_uploads);
        s_send_want (self, peer, offer->hash, 0, 0, false, error);
        return;
    }
    upload = (s_upload_t *) calloc (1, sizeof (s_upload_t));
    if (!upload)
        return;
    memcpy (upload->hash, offer->hash, sizeof upload->hash);
    upload->peer = strdup (peer);
    upload->key = s_key (offer->hash, peer);
    upload->size = offer->size;
    qn_blobflow_receiver_init (&upload->flow, offer->hash, offer->size, &self->tally);
    if (offer->attempt) {
        Qanat__AttemptRef init = QANAT__ATTEMPT_REF__INIT;
        upload->attempt = init;
        upload->attempt.run_id = offer->attempt->run_id;
        upload->attempt.task_index = offer->attempt->task_index;
        upload->attempt.attempt = offer->attempt->attempt;
        upload->has_attempt = true;
    }
    if (!upload->peer || !upload->key || zhashx_insert (self->uploads, upload->key, upload)) {
        s_upload_destroy (&upload);
        return;
    }
    //  One writer per partial: a second peer's offer waits its turn.
    if (!zhashx_lookup (self->running, upload->hash))
        s_start (self, upload);
}

void
qn_blobserver_on_chunk (qn_blobserver_t *self, const char *peer, const Qanat__BlobChunk *chunk)
{
    assert (self);
    s_upload_t *upload = chunk? s_lookup (self, peer, chunk->hash): NULL;
    if (!upload || !upload->running) {
        self->stats.dropped++;
        return;
    }
    if (chunk->error && *chunk->error) {
        //  The agent cannot read its file.  The partial stays for a
        //  waiting offer of the same blob, else it is of no use.
        qn_log (QN_LOG_WARNING, "blobs", "blobserver: upload %s from %s: %.200s", upload->hash,
                peer, chunk->error);
        self->stats.uploads_failed++;
        zlist_t *waiting = s_waiting (self, upload->hash);
        if (!waiting || zlist_size (waiting) == 0)
            qn_blobstore_abandon (self->blobs, upload->hash);
        zlist_destroy (&waiting);
        s_remove (self, upload);
        return;
    }
    qn_blobflow_want_t want = { 0, 0 };
    size_t written = 0;
    char error [256] = "";
    qn_blobflow_action_t action = qn_blobflow_receive (&upload->flow, self->blobs, chunk,
                                                       &want, &written, error, sizeof error);
    if (written)
        upload->progressed = true;
    s_act (self, upload, action, &want, error);
}

// ---------------------------------------------------------------------
// Downloads

//  A qn_blobflow_read_fn over the store; the end of the blob ends the
//  answer, a blob that cannot be read is told as such.
static ssize_t
s_store_read (void *arg, const char *hash, uint64_t offset, uint8_t *buffer, size_t size,
              char *error, size_t error_size)
{
    ssize_t rc = qn_blobstore_read ((qn_blobstore_t *) arg, hash, offset, buffer, size);
    if (rc < 0)
        snprintf (error, error_size, "blob unreadable");
    return rc;
}

void
qn_blobserver_on_want (qn_blobserver_t *self, const char *peer, const Qanat__BlobWant *want)
{
    assert (self);
    if (!peer || !want || !qn_blobstore_valid_hash (want->hash)) {
        self->stats.dropped++;
        return;
    }
    if (want->complete || (want->error && *want->error) || want->window == 0)
        return;                 //  the download is over: we keep nothing of it
    if (!qn_blobstore_has (self->blobs, want->hash)) {
        s_dest_t dest = { self, peer };
        qn_blobflow_send_error (s_send, &dest, want->hash, want->offset, "unknown blob");
        return;
    }
    s_dest_t dest = { self, peer };
    char error [256];
    uint64_t sent = 0;
    qn_blobflow_answer (want, QN_BLOBFLOW_SIZE_UNKNOWN, s_store_read, self->blobs,
                        s_send, &dest, self->buffer, &sent, error, sizeof error);
    self->stats.bytes_out += sent;
}

// ---------------------------------------------------------------------
// Peers and time

void
qn_blobserver_peer_gone (qn_blobserver_t *self, const char *peer)
{
    assert (self);
    if (!peer)
        return;
    //  Collected first: removing one may start or end others.
    zlist_t *keys = zlist_new ();
    if (!keys)
        return;
    zlist_autofree (keys);
    s_upload_t *upload = (s_upload_t *) zhashx_first (self->uploads);
    while (upload) {
        if (streq (upload->peer, peer))
            zlist_append (keys, upload->key);
        upload = (s_upload_t *) zhashx_next (self->uploads);
    }
    const char *key = (const char *) zlist_first (keys);
    while (key) {
        upload = (s_upload_t *) zhashx_lookup (self->uploads, key);
        if (upload)
            s_remove (self, upload);
        key = (const char *) zlist_next (keys);
    }
    zlist_destroy (&keys);
}

void
qn_blobserver_tick (qn_blobserver_t *self)
{
    assert (self);
    //  Asking sends messages only: the table does not change under us.
    s_upload_t *upload = (s_upload_t *) zhashx_first (self->uploads);
    while (upload) {
        if (upload->running) {
            if (!upload->progressed && upload->flow.position < upload->size) {
                self->stats.resumes++;
                //  What is in flight may still come: drop it.
                qn_blobflow_want_t want;
                qn_blobflow_refetch (&upload->flow, &want);
                s_send_want (self, upload->peer, upload->hash, want.offset, want.window,
                             false, NULL);
            }
            upload->progressed = false;
        }
        upload = (s_upload_t *) zhashx_next (self->uploads);
    }
}

size_t
qn_blobserver_uploads (qn_blobserver_t *self)
{
    assert (self);
    return zhashx_size (self->uploads);
}

void
qn_blobserver_stats (qn_blobserver_t *self, qn_blobserver_stats_t *stats)
{
    assert (self);
    assert (stats);
    *stats = self->stats;
    stats->bytes_in = self->tally.bytes;
    stats->chunks_rejected = self->tally.rejected;
    stats->dropped += self->tally.dropped;
    stats->restarts = self->tally.restarts;
}
