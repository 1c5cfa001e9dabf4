/*  qn_transfer - the agent's end of blob transfers.  See qn_transfer.h for
    the protocol. */
#include "qn_transfer.h"
#include <assert.h>
#include <czmq.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef enum {
    S_UPLOAD,
    S_DOWNLOAD
} s_kind_t;

typedef enum {
    S_WAITING,              //  another transfer of the hash, or too many, run
    S_RUNNING,
    S_DONE                  //  to be reported and removed
} s_state_t;

typedef struct _s_item_t s_item_t;
struct _s_item_t {
    s_kind_t kind;
    s_state_t state;
    char hash [QN_BLOB_HASH_HEX + 1];
    uint64_t size;
    bool progressed;        //  since the last tick
    bool announced;         //  the coordinator was told of it (offer or want)
    qn_transfer_done_fn *done;
    void *arg;
    int status;             //  S_DONE: the outcome
    char *error;
    s_item_t *next;         //  in self->items
    s_item_t *prev;
    //  Upload
    int fd;
    char *path;
    bool has_attempt;
    Qanat__AttemptRef attempt;
    //  Download
    qn_blobflow_receiver_t flow;
};

struct _qn_transfer_t {
    qn_blobstore_t *cache;
    qn_transfer_send_fn *send;
    void *send_arg;
    bool connected;
    s_item_t *items;        //  in the order they were asked for
    s_item_t *last;
    size_t count;
    uint8_t *buffer;        //  one chunk
    qn_transfer_stats_t stats;
    qn_blobflow_tally_t tally;  //  the downloads' chunks, added to stats
};

static void
s_item_destroy (s_item_t **item_p)
{
    s_item_t *item = *item_p;
    if (!item)
        return;
    if (item->fd >= 0)
        close (item->fd);
    free (item->path);
    free (item->error);
    free (item);
    *item_p = NULL;
}

qn_transfer_t *
qn_transfer_new (qn_blobstore_t *cache, qn_transfer_send_fn *send, void *send_arg)
{
    assert (cache);
    assert (send);
    qn_transfer_t *self = (qn_transfer_t *) calloc (1, sizeof (qn_transfer_t));
    if (!self)
        return NULL;
    self->cache = cache;
    self->send = send;
    self->send_arg = send_arg;
    self->buffer = (uint8_t *) malloc (QN_TRANSFER_CHUNK);
    if (!self->buffer) {
        qn_transfer_destroy (&self);
        return NULL;
    }
    return self;
}

void
qn_transfer_destroy (qn_transfer_t **self_p)
{
    assert (self_p);
    qn_transfer_t *self = *self_p;
    if (!self)
        return;
    while (self->items) {
        s_item_t *item = self->items;
        self->items = item->next;
        s_item_destroy (&item);
    }
    free (self->buffer);
    free (self);
    *self_p = NULL;
}

// ---------------------------------------------------------------------
// Messages

//  A qn_blobflow_send_fn over self: nothing goes out while disconnected.
static int
s_send (void *arg, Qanat__Envelope *envelope)
{
    qn_transfer_t *self = (qn_transfer_t *) arg;
    if (!self->connected)
        return -1;
    return self->send (self->send_arg, envelope);
}

static int
s_send_want (qn_transfer_t *self, const char *hash, uint64_t offset, uint32_t window,
             bool complete, const char *error)
{
    return qn_blobflow_send_want (s_send, self, hash, offset, window, complete, error);
}

static int
s_send_offer (qn_transfer_t *self, s_item_t *item)
{
    Qanat__BlobOffer offer = QANAT__BLOB_OFFER__INIT;
    offer.hash = item->hash;
    offer.size = item->size;
    if (item->has_attempt)
        offer.attempt = &item->attempt;
    Qanat__Envelope envelope = QANAT__ENVELOPE__INIT;
    envelope.body_case = QANAT__ENVELOPE__BODY_BLOB_OFFER;
    envelope.blob_offer = &offer;
    int rc = s_send (self, &envelope);
    if (rc == 0)
        item->announced = true;
    return rc;
}

// ---------------------------------------------------------------------
// Bookkeeping

//  Marks an item finished; s_settle reports it.
static void
s_complete (qn_transfer_t *self, s_item_t *item, int status, const char *error)
{
    if (item->state == S_DONE)
        return;
    item->state = S_DONE;
    item->status = status;
    free (item->error);
    item->error = error? strdup (error): NULL;
    if (item->fd >= 0) {
        close (item->fd);
        item->fd = -1;
    }
    if (status == 0)
        self->stats.completed++;
    else
        self->stats.failed++;
}

static s_item_t *
s_find (qn_transfer_t *self, s_kind_t kind, const char *hash)
{
    if (!hash)
        return NULL;
    for (s_item_t *item = self->items; item; item = item->next) {
        if (item->kind == kind && item->state == S_RUNNING && streq (item->hash, hash))
            return item;
    }
    return NULL;
}

//  Asks for a download's bytes as its receiver decided.
static void
s_ask (qn_transfer_t *self, s_item_t *item, const qn_blobflow_want_t *want)
{
    if (s_send_want (self, item->hash, want->offset, want->window, false, NULL) == 0)
        item->announced = true;
}

//  Does what a download's receiver decided.
static void
s_download_act (qn_transfer_t *self, s_item_t *item, qn_blobflow_action_t action,
                const qn_blobflow_want_t *want, const char *error)
{
    switch (action) {
        case QN_BLOBFLOW_WANT:
        case QN_BLOBFLOW_REFETCH:
        case QN_BLOBFLOW_RESTART:
            s_ask (self, item, want);
            break;
        case QN_BLOBFLOW_WANT_MORE:
            //  The transfer was announced by its first want already.
            s_send_want (self, item->hash, want->offset, want->window, false, NULL);
            break;
        case QN_BLOBFLOW_COMPLETE:
            s_send_want (self, item->hash, item->size, 0, true, NULL);
            s_complete (self, item, 0, NULL);
            break;
        case QN_BLOBFLOW_PRESENT:
            //  Nothing was asked for: the coordinator is not to be told.
            s_complete (self, item, 0, NULL);
            break;
        case QN_BLOBFLOW_FAILED:
            s_send_want (self, item->hash, 0, 0, false, "verification failed");
            s_complete (self, item, -1, error);
            break;
        case QN_BLOBFLOW_BROKEN:
            s_complete (self, item, -1, error);     //  the disk, not the data
            break;
        case QN_BLOBFLOW_DROPPED:
        case QN_BLOBFLOW_WRITTEN:
            break;                                  //  counted in the tally
    }
}

//  Takes a download up from what the cache holds.
static void
s_download_resume (qn_transfer_t *self, s_item_t *item)
{
    qn_blobflow_want_t want = { 0, 0 };
    char error [256] = "";
    qn_blobflow_action_t action = qn_blobflow_resume (&item->flow, self->cache, &want,
                                                      error, sizeof error);
    s_download_act (self, item, action, &want, error);
}

static bool
s_can_run (qn_transfer_t *self, s_item_t *candidate)
{
    size_t running = 0;
    for (s_item_t *item = self->items; item; item = item->next) {
        if (item->kind == candidate->kind && item->state == S_RUNNING) {
            if (streq (item->hash, candidate->hash))
                return false;
            running++;
        }
    }
    return running < QN_TRANSFER_MAX_ACTIVE;
}

static void
s_start (qn_transfer_t *self, s_item_t *item)
{
    item->state = S_RUNNING;
    item->progressed = true;
    if (item->kind == S_UPLOAD)
        s_send_offer (self, item);
    else
        s_download_resume (self, item);
}

//  Starts what may start and reports what finished, until nothing moves.
//  Done callbacks run here only, never while the list is being walked,
//  and they may add transfers.
static void
s_settle (qn_transfer_t *self)
{
    while (true) {
        s_item_t *item;
        for (item = self->items; item; item = item->next) {
            if (item->state == S_WAITING && s_can_run (self, item))
                s_start (self, item);
            if (item->state == S_DONE)
                break;
        }
        if (!item)
            return;
        if (item->prev)
            item->prev->next = item->next;
        else
            self->items = item->next;
        if (item->next)
            (item->next)->prev = item->prev;
        else
            self->last = item->prev;
        self->count--;
        if (item->done)
            item->done (item->arg, item->hash, item->status, item->error);
        s_item_destroy (&item);
    }
}

static s_item_t *
s_item_new (qn_transfer_t *self, s_kind_t kind, const char *hash, uint64_t size,
            qn_transfer_done_fn *done, void *arg)
{
    s_item_t *item = (s_item_t *) calloc (1, sizeof (s_item_t));
    if (!item)
        return NULL;
    item->kind = kind;
    item->state = S_WAITING;
    memcpy (item->hash, hash, QN_BLOB_HASH_HEX);
    item->size = size;
    item->done = done;
    item->arg = arg;
    item->fd = -1;
    if (kind == S_DOWNLOAD)
        qn_blobflow_receiver_init (&item->flow, hash, size, &self->tally);
    return item;
}

static int
s_add (qn_transfer_t *self, s_item_t *item)
{
    item->prev = self->last;
    if (self->last)
        self->last->next = item;
    else
        self->items = item;
    self->last = item;
    self->count++;
    s_settle (self);
    return 0;
}

// ---------------------------------------------------------------------
// Public API

int
qn_transfer_upload (qn_transfer_t *self, const char *hash, uint64_t size,
                    const char *path, const Qanat__AttemptRef *attempt,
                    qn_transfer_done_fn *done, void *arg)
{
    assert (self);
    if (!qn_blobstore_valid_hash (hash) || !path)
        return -1;
    //  O_NONBLOCK: a fifo put in place of the output must not hang us.
    int fd = open (path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        return -1;
    struct stat st;
    if (fstat (fd, &st) || !S_ISREG (st.st_mode) || (uint64_t) st.st_size != size) {
        close (fd);
        return -1;
    }
    s_item_t *item = s_item_new (self, S_UPLOAD, hash, size, done, arg);
    if (!item) {
        close (fd);
        return -1;
    }
    item->fd = fd;
    item->path = strdup (path);
    if (attempt) {
        Qanat__AttemptRef init = QANAT__ATTEMPT_REF__INIT;
        item->attempt = init;
        item->attempt.run_id = attempt->run_id;
        item->attempt.task_index = attempt->task_index;
        item->attempt.attempt = attempt->attempt;
        item->has_attempt = true;
    }
    if (!item->path) {
        s_item_destroy (&item);
        return -1;
    }
    return s_add (self, item);
}

int
qn_transfer_download (qn_transfer_t *self, const char *hash, uint64_t size,
                      qn_transfer_done_fn *done, void *arg)
{
    assert (self);
    if (!qn_blobstore_valid_hash (hash))
        return -1;
    s_item_t *item = s_item_new (self, S_DOWNLOAD, hash, size, done, arg);
    if (!item)
        return -1;
    return s_add (self, item);
}

static int
s_pread_all (int fd, uint8_t *buffer, size_t size, uint64_t offset)
{
    size_t done = 0;
    while (done < size) {
        ssize_t rc = pread (fd, buffer + done, size - done, (off_t) (offset + done));
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc < 0)
            return -1;
        if (rc == 0) {
            errno = EIO;        //  the file shrank under us
            return -1;
        }
        done += (size_t) rc;
    }
    return 0;
}

//  A qn_blobflow_read_fn over an upload's file: all of size, or an error
//  (the file is not to change, so a short read is one).
static ssize_t
s_upload_read (void *arg, const char *hash, uint64_t offset, uint8_t *buffer, size_t size,
               char *error, size_t error_size)
{
    (void) hash;                //  the item's own
    s_item_t *item = (s_item_t *) arg;
    if (s_pread_all (item->fd, buffer, size, offset)) {
        snprintf (error, error_size, "cannot read %s at %" PRIu64 ": %s",
                  item->path, offset, strerror (errno));
        return -1;
    }
    return (ssize_t) size;
}

void
qn_transfer_on_want (qn_transfer_t *self, const Qanat__BlobWant *want)
{
    assert (self);
    s_item_t *item = want? s_find (self, S_UPLOAD, want->hash): NULL;
    if (!item) {
        self->stats.dropped++;
        return;
    }
    item->progressed = true;
    if (want->error && *want->error) {
        char error [512];
        snprintf (error, sizeof error, "coordinator: %.400s", want->error);
        s_complete (self, item, -1, error);
    }
    else
    if (want->complete)
        s_complete (self, item, 0, NULL);
    else
    if (want->offset > item->size)
        self->stats.dropped++;
    else {
        //  At most one window of the file; not connected, the next want
        //  asks again.
        char error [256] = "";
        uint64_t sent = 0;
        int rc = qn_blobflow_answer (want, item->size, s_upload_read, item, s_send, self,
                                     self->buffer, &sent, error, sizeof error);
        self->stats.bytes_sent += sent;
        if (rc)
            s_complete (self, item, -1, error);
    }
    s_settle (self);
}

void
qn_transfer_on_chunk (qn_transfer_t *self, const Qanat__BlobChunk *chunk)
{
    assert (self);
    s_item_t *item = chunk? s_find (self, S_DOWNLOAD, chunk->hash): NULL;
    if (!item) {
        self->stats.dropped++;
        return;
    }
    if (chunk->error && *chunk->error) {
        char error [512];
        snprintf (error, sizeof error, "coordinator: %.400s", chunk->error);
        //  The sender cannot go on: what we hold of it is of no use.
        qn_blobstore_abandon (self->cache, item->hash);
        s_complete (self, item, -1, error);
    }
    else {
        qn_blobflow_want_t want = { 0, 0 };
        size_t written = 0;
        char error [256] = "";
        qn_blobflow_action_t action = qn_blobflow_receive (&item->flow, self->cache, chunk,
                                                           &want, &written, error, sizeof error);
        if (written)
            item->progressed = true;
        s_download_act (self, item, action, &want, error);
    }
    s_settle (self);
}

//  Takes a running transfer up again from where each end stands.
static void
s_resume (qn_transfer_t *self, s_item_t *item)
{
    if (item->announced)
        self->stats.resumes++;
    if (item->kind == S_UPLOAD)
        s_send_offer (self, item);
    else
        s_download_resume (self, item);
}

void
qn_transfer_reconnected (qn_transfer_t *self)
{
    assert (self);
    self->connected = true;
    for (s_item_t *item = self->items; item; item = item->next) {
        if (item->state == S_RUNNING) {
            item->progressed = true;
            s_resume (self, item);
        }
    }
    s_settle (self);
}

void
qn_transfer_disconnected (qn_transfer_t *self)
{
    assert (self);
    self->connected = false;
}

void
qn_transfer_tick (qn_transfer_t *self)
{
    assert (self);
    if (!self->connected)
        return;
    for (s_item_t *item = self->items; item; item = item->next) {
        if (item->state == S_RUNNING) {
            if (!item->progressed) {
                self->stats.resumes++;
                if (item->kind == S_UPLOAD)
                    s_send_offer (self, item);
                else {
                    //  What is in flight may still come: drop it.
                    qn_blobflow_want_t want;
                    qn_blobflow_refetch (&item->flow, &want);
                    s_ask (self, item, &want);
                }
            }
            item->progressed = false;
        }
    }
    s_settle (self);
}

size_t
qn_transfer_active (qn_transfer_t *self)
{
    assert (self);
    return self->count;
}

void
qn_transfer_stats (qn_transfer_t *self, qn_transfer_stats_t *stats)
{
    assert (self);
    assert (stats);
    *stats = self->stats;
    stats->bytes_received = self->tally.bytes;
    stats->chunks_rejected = self->tally.rejected;
    stats->dropped += self->tally.dropped;
    stats->restarts = self->tally.restarts;
}
