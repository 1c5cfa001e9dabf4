/*  qn_transfer - the agent's end of blob transfers on the agent socket.

    Blobs move in chunks between the agent and the coordinator, pulled by
    the receiver, so that a large transfer never fills the socket ahead of
    heartbeats and logs:

    - The receiver asks with BlobWant {hash, offset, window} for the bytes
      [offset, offset + window).  Its first want (and every want after a
      reconnect) starts at what it already holds: the partial file in its
      blob store, kept across disconnects and restarts.
    - The sender answers each want with BlobChunks of at most
      QN_TRANSFER_CHUNK bytes, each with the SHA-256 of its data, covering
      exactly that range (cut short at the end of the blob).  It keeps no
      other state: a want is a grant of credit.
    - When the receiver has consumed half of what it asked for, it asks for
      the next bytes (from the end of its last ask up to its position plus
      one window), so at most one window is ever in flight per transfer.
    - A chunk that fails its hash, or that leaves a gap, is dropped and the
      receiver asks again from its position (a re-fetch); stale chunks of
      the old asks are dropped until the re-fetched one arrives.
    - At the end the receiver verifies the whole blob (qn_blobstore_finish)
      and sends BlobWant {complete}.  On a whole-hash mismatch it starts
      again from 0, at most QN_TRANSFER_MAX_FAILURES times in all.
    - BlobWant {error} (from a receiver) or BlobChunk {error} (from a
      sender) ends the transfer.

    An upload (agent to coordinator) starts with BlobOffer; the coordinator
    may answer BlobWant {complete} at once when it holds the blob already.
    A download starts with the agent's BlobWant.

    The protocol logic both ends share (checking chunks, the wants,
    answering a want) is in qn_blobflow; this object keeps the agent's
    bookkeeping: the queue of transfers, their callbacks, stalls, stats.

    The object is driven by the agent's loop and never blocks it for long:
    answering one want reads at most one window of the file.  Hashing a
    whole output file before qn_transfer_upload is the caller's business.
    A transfer object starts disconnected: call qn_transfer_reconnected
    after every Welcome, the first included.

    The send callback must encode (copy) the envelope before it returns;
    the envelope and everything it points to belong to this object.
*/
#ifndef QN_TRANSFER_H_INCLUDED
#define QN_TRANSFER_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "qanat.pb-c.h"
#include "qn_blobstore.h"
#include "qn_blobflow.h"

#ifdef __cplusplus
extern "C" {
#endif

//  Largest chunk data sent, and accepted.
#define QN_TRANSFER_CHUNK        QN_BLOBFLOW_CHUNK
//  Bytes asked for at once by a receiver, and the most a sender sends
//  for one want.
#define QN_TRANSFER_WINDOW       QN_BLOBFLOW_WINDOW
//  Whole-hash failures before a receiver gives up.
#define QN_TRANSFER_MAX_FAILURES QN_BLOBFLOW_MAX_FAILURES
//  Uploads, and downloads, running at once; more wait their turn.
#define QN_TRANSFER_MAX_ACTIVE   4

typedef struct _qn_transfer_t qn_transfer_t;

//  Queues a message to the coordinator.  Returns 0, or -1 if it could not
//  (the transfer is then retried by qn_transfer_tick or a reconnect).
typedef int (qn_transfer_send_fn) (void *arg, Qanat__Envelope *envelope);

//  Reports the end of one upload or download: status 0 when the blob is
//  in the coordinator's store (upload) or in the cache (download), else
//  -1 with error.  Called exactly once per accepted qn_transfer_upload or
//  qn_transfer_download, possibly before that call returns; never by
//  qn_transfer_destroy.  The callback may start new transfers but must not
//  destroy the object.
typedef void (qn_transfer_done_fn) (void *arg, const char *hash, int status, const char *error);

typedef struct {
    uint64_t bytes_sent;        //  chunk data sent (uploads)
    uint64_t bytes_received;    //  chunk data accepted into the cache (downloads)
    uint64_t chunks_rejected;   //  corrupted or out-of-order chunks re-fetched
    uint64_t dropped;           //  hostile or stale messages ignored
    uint64_t resumes;           //  transfers taken up again (reconnect, stall)
    uint64_t restarts;          //  downloads started again after a whole-hash mismatch
    uint64_t completed;
    uint64_t failed;
} qn_transfer_stats_t;

//  Creates the agent's transfer engine over its blob cache (not owned).
//  NULL on failure.
qn_transfer_t *
    qn_transfer_new (qn_blobstore_t *cache, qn_transfer_send_fn *send, void *send_arg);

//  Destroys the engine without calling any done callback; partial
//  downloads stay in the cache for a later resume.  Idempotent.
void
    qn_transfer_destroy (qn_transfer_t **self_p);

//  Uploads the local file path, of the given hash (hex SHA-256) and size,
//  as an output of attempt (may be NULL).  The file is opened now and read
//  with pread as the coordinator pulls it; it must not change until done
//  is called.  Uploads of one hash run one after the other, each offered
//  with its own attempt.  Returns 0, or -1 (done not called) on a bad
//  hash or a file that cannot be opened.
int
    qn_transfer_upload (qn_transfer_t *self, const char *hash, uint64_t size,
                        const char *path, const Qanat__AttemptRef *attempt,
                        qn_transfer_done_fn *done, void *arg);

//  Downloads the blob into the cache, resuming a partial; done at once
//  (before returning) if the cache holds it.  Returns 0, or -1 (done not
//  called) on a bad hash.
int
    qn_transfer_download (qn_transfer_t *self, const char *hash, uint64_t size,
                          qn_transfer_done_fn *done, void *arg);

//  A BlobWant from the coordinator: it pulls one of our uploads.
void
    qn_transfer_on_want (qn_transfer_t *self, const Qanat__BlobWant *want);

//  A BlobChunk from the coordinator: data for one of our downloads.
void
    qn_transfer_on_chunk (qn_transfer_t *self, const Qanat__BlobChunk *chunk);

//  After a Welcome: offers every upload again and asks for every download
//  from its partial (the coordinator resumes uploads from its own).
void
    qn_transfer_reconnected (qn_transfer_t *self);

//  The connection is gone: nothing is sent until qn_transfer_reconnected.
void
    qn_transfer_disconnected (qn_transfer_t *self);

//  Call every few seconds (e.g. with the heartbeat).  A transfer that made
//  no progress since the previous tick is taken up again (an upload
//  offered again, a download asked for from its position), in case a
//  message was lost on the way.
void
    qn_transfer_tick (qn_transfer_t *self);

//  Uploads and downloads not yet done (running or waiting their turn).
size_t
    qn_transfer_active (qn_transfer_t *self);

void
    qn_transfer_stats (qn_transfer_t *self, qn_transfer_stats_t *stats);

#ifdef __cplusplus
}
#endif
#endif
