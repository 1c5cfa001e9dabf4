/*  qn_blobserver - the coordinator's end of blob transfers on the agent
    socket, with many agents at once.

    The protocol is described in agent/qn_transfer.h; in short, the
    receiver pulls: it asks with BlobWant {hash, offset, window} for
    [offset, offset + window) and the sender answers with BlobChunks of at
    most QN_BLOBSERVER_CHUNK bytes, each with its SHA-256.

    Uploads (agent to coordinator): an agent offers a blob (BlobOffer); we
    answer BlobWant {complete} at once if the store holds it already, else
    pull it from our partial (kept on disk across disconnects and restarts
    of either end), one window at a time, and verify every chunk and then
    the whole blob before it enters the store.  One upload of a hash runs
    at a time: another agent offering the same hash waits, and is told
    complete when the first one is stored.  On a whole-hash mismatch the
    partial is dropped and the upload starts again from 0, at most
    QN_BLOBSERVER_MAX_FAILURES times in all.

    Downloads (coordinator to agent): each BlobWant is answered with the
    chunks of that range, read from the store; nothing is kept between
    wants.  A want for a blob the store does not hold is answered with
    BlobChunk {error = "unknown blob"}.  Who may fetch what is not checked
    here.

    The protocol logic both ends share is in qn_blobflow; this object
    keeps the coordinator's bookkeeping: uploads per peer and per hash,
    limits, stalls, stats.

    Peers are named by a string (the agent's name); the send callback must
    encode (copy) the envelope before it returns.  The stored callback is
    called once per offer that ends with the blob in the store (uploaded,
    or already present), and must not call back into this object.
*/
#ifndef QN_BLOBSERVER_H_INCLUDED
#define QN_BLOBSERVER_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "qanat.pb-c.h"
#include "qn_blobstore.h"
#include "qn_blobflow.h"

#ifdef __cplusplus
extern "C" {
#endif

//  The same figures as QN_TRANSFER_* on the agent.
#define QN_BLOBSERVER_CHUNK          QN_BLOBFLOW_CHUNK
#define QN_BLOBSERVER_WINDOW         QN_BLOBFLOW_WINDOW
#define QN_BLOBSERVER_MAX_FAILURES   QN_BLOBFLOW_MAX_FAILURES
//  Defaults of the limits.
#define QN_BLOBSERVER_MAX_SIZE       (1ULL << 40)
#define QN_BLOBSERVER_MAX_UPLOADS    16

typedef struct _qn_blobserver_t qn_blobserver_t;

//  Queues a message to peer.  Returns 0 or -1.
typedef int (qn_blobserver_send_fn) (void *arg, const char *peer, Qanat__Envelope *envelope);

//  An offered blob is in the store, verified.  attempt is the offer's
//  (NULL if it had none).
typedef void (qn_blobserver_stored_fn) (void *arg, const char *peer, const char *hash,
                                        uint64_t size, const Qanat__AttemptRef *attempt);

typedef struct {
    uint64_t bytes_in;          //  chunk data accepted (uploads)
    uint64_t bytes_out;         //  chunk data sent (downloads)
    uint64_t chunks_rejected;   //  corrupted or out-of-order chunks re-fetched
    uint64_t dropped;           //  hostile or stale messages ignored
    uint64_t refused;           //  offers refused (too large, too many, bad size)
    uint64_t uploads_completed; //  uploads stored after verification
    uint64_t uploads_deduplicated;  //  offers of blobs already stored
    uint64_t uploads_failed;
    uint64_t resumes;           //  uploads taken up again (re-offer, stall)
    uint64_t restarts;          //  uploads started again after a whole-hash mismatch
} qn_blobserver_stats_t;

//  Creates the server over the coordinator's blob store (not owned).
//  stored may be NULL.  NULL on failure.
qn_blobserver_t *
    qn_blobserver_new (qn_blobstore_t *blobs, qn_blobserver_send_fn *send,
                       qn_blobserver_stored_fn *stored, void *arg);

//  Destroys the server; partials stay on disk.  Idempotent.
void
    qn_blobserver_destroy (qn_blobserver_t **self_p);

//  Largest blob an agent may offer (default QN_BLOBSERVER_MAX_SIZE), and
//  uploads one peer may run or queue at once (default
//  QN_BLOBSERVER_MAX_UPLOADS).  Offers beyond either are refused with
//  BlobWant {error}.
void
    qn_blobserver_set_max_size (qn_blobserver_t *self, uint64_t max_size);
void
    qn_blobserver_set_max_uploads (qn_blobserver_t *self, size_t max_uploads);

//  A BlobOffer: starts an upload, or resumes it from our partial when the
//  peer offers again (after a reconnect).
void
    qn_blobserver_on_offer (qn_blobserver_t *self, const char *peer, const Qanat__BlobOffer *offer);

//  A BlobChunk: data of one of peer's uploads.
void
    qn_blobserver_on_chunk (qn_blobserver_t *self, const char *peer, const Qanat__BlobChunk *chunk);

//  A BlobWant: peer downloads, or (complete / error) ends a download.
void
    qn_blobserver_on_want (qn_blobserver_t *self, const char *peer, const Qanat__BlobWant *want);

//  The peer disconnected or was declared lost: forget its uploads (their
//  partials stay on disk for its next offer) and let another peer's
//  waiting offer of the same blob go on.
void
    qn_blobserver_peer_gone (qn_blobserver_t *self, const char *peer);

//  Call every few seconds.  An upload that made no progress since the
//  previous tick is asked for again from its position, in case a message
//  was lost on the way.
void
    qn_blobserver_tick (qn_blobserver_t *self);

//  Uploads in progress or waiting, over all peers.
size_t
    qn_blobserver_uploads (qn_blobserver_t *self);

void
    qn_blobserver_stats (qn_blobserver_t *self, qn_blobserver_stats_t *stats);

#ifdef __cplusplus
}
#endif
#endif
