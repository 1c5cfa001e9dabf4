/*  qn_blobflow - the protocol logic of a blob transfer, shared by both ends
    (the agent's qn_transfer and the coordinator's qn_blobserver).

    A blob moves in chunks pulled by the receiver (docs/protocol.md 4.7):

    - The receiver asks with BlobWant {hash, offset, window} for the bytes
      [offset, offset + window).  Its first want, every want after a
      reconnect and a re-fetch start at its position: what its blob store
      holds of the blob (the partial file).
    - The sender answers a want with BlobChunks of at most QN_BLOBFLOW_CHUNK
      bytes, each with the SHA-256 of its data, covering exactly that range
      cut at the end of the blob.  It keeps nothing between wants.
    - When half of what it asked for has arrived, the receiver asks for the
      next bytes, from the end of its last ask up to its position plus one
      window: at most one window is ever in flight.
    - A chunk that fails its hash, or leaves a gap, is dropped and the
      receiver asks again from its position; stale chunks of the old asks
      are dropped until the re-fetched one arrives.
    - With every byte in, the receiver verifies the whole blob; on a
      mismatch it starts again from 0, at most QN_BLOBFLOW_MAX_FAILURES
      times in all.

    This class holds the decisions only.  The receiver is a plain struct
    kept inside the caller's own record of the transfer; each call says
    what to do next (an action, and the want to send), and the caller
    sends, counts, logs and ends transfers its own way.  The sender is one
    function over caller-supplied read and send callbacks.  Nothing here
    blocks beyond one read of the store or of a window of the file.
*/
#ifndef QN_BLOBFLOW_H_INCLUDED
#define QN_BLOBFLOW_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "qanat.pb-c.h"
#include "qn_blobstore.h"

#ifdef __cplusplus
extern "C" {
#endif

//  Largest chunk data sent, and accepted.
#define QN_BLOBFLOW_CHUNK        (256 * 1024)
//  Bytes asked for at once by a receiver, and the most a sender sends for
//  one want.
#define QN_BLOBFLOW_WINDOW       (2 * 1024 * 1024)
//  Whole-hash failures before a receiver gives up.
#define QN_BLOBFLOW_MAX_FAILURES 3
//  qn_blobflow_answer: the sender does not know the size; a short read
//  marks the end of the blob.
#define QN_BLOBFLOW_SIZE_UNKNOWN UINT64_MAX

//  What the receiver's caller does next.  "Ask" means: send
//  BlobWant {hash, want.offset, want.window}.
typedef enum {
    QN_BLOBFLOW_DROPPED,        //  chunk ignored (malformed, duplicate, stale)
    QN_BLOBFLOW_WRITTEN,        //  chunk written; nothing to ask yet
    QN_BLOBFLOW_WANT,           //  ask: the first want, from the position
    QN_BLOBFLOW_WANT_MORE,      //  chunk written; ask for the next bytes
    QN_BLOBFLOW_REFETCH,        //  chunk rejected (bad hash, gap); ask again
    QN_BLOBFLOW_PRESENT,        //  the store held the blob already
    QN_BLOBFLOW_COMPLETE,       //  every byte in and verified: the blob is stored
    QN_BLOBFLOW_RESTART,        //  whole-hash mismatch, partial dropped: ask from 0
    QN_BLOBFLOW_FAILED,         //  whole-hash mismatch once too often; error set
    QN_BLOBFLOW_BROKEN          //  the store cannot write the chunk; error set
} qn_blobflow_action_t;

typedef struct {
    uint64_t offset;
    uint32_t window;
} qn_blobflow_want_t;

//  What receivers did, summed over the transfers that share it (an
//  engine's statistics).
typedef struct {
    uint64_t bytes;             //  chunk data written into the store
    uint64_t rejected;          //  chunks re-fetched (bad hash, gap)
    uint64_t dropped;           //  chunks ignored (malformed, duplicate, stale)
    uint64_t restarts;          //  started again after a whole-hash mismatch
} qn_blobflow_tally_t;

//  The receiving end of one transfer.  Read its fields freely; change them
//  only through the functions below.
typedef struct {
    char hash [QN_BLOB_HASH_HEX + 1];
    uint64_t size;
    uint64_t position;          //  bytes in the store's partial
    uint64_t asked_end;         //  end of the last want
    bool refetching;            //  dropping stale chunks until the re-asked one
    int failures;               //  whole-hash mismatches
    qn_blobflow_tally_t *tally; //  counted into, not owned; may be NULL
} qn_blobflow_receiver_t;

//  Sends one message (the envelope must be encoded, or copied, before the
//  callback returns).  Returns 0, or -1 if it could not.
typedef int (qn_blobflow_send_fn) (void *arg, Qanat__Envelope *envelope);

//  Reads up to size bytes of the blob at offset into buffer.  Returns the
//  bytes read, fewer than size only at the end of the blob, or -1 with a
//  reason in error.
typedef ssize_t (qn_blobflow_read_fn) (void *arg, const char *hash, uint64_t offset,
                                       uint8_t *buffer, size_t size,
                                       char *error, size_t error_size);

//  Sets up a receiver for the blob hash (a valid hash) of size bytes, at
//  position 0 and with no failures, counting into tally (may be NULL; it
//  must outlive the receiver).  Call qn_blobflow_resume next.
void
    qn_blobflow_receiver_init (qn_blobflow_receiver_t *self, const char *hash, uint64_t size,
                               qn_blobflow_tally_t *tally);

//  Takes the transfer up from what store holds: at its start and after
//  every reconnect or re-offer.  PRESENT when the store has the whole blob
//  (nothing else done); else the position is the partial's size (a
//  partial larger than the blob is dropped) and the result is WANT, or
//  when the partial holds every byte, what qn_blobflow_finish says.
qn_blobflow_action_t
    qn_blobflow_resume (qn_blobflow_receiver_t *self, qn_blobstore_t *store,
                        qn_blobflow_want_t *want, char *error, size_t error_size);

//  Every byte is in the partial: verifies the whole and moves it into
//  store.  COMPLETE, RESTART (want from 0; counted in the tally), or
//  FAILED with the store's reason after QN_BLOBFLOW_MAX_FAILURES
//  mismatches (at once for an empty blob, which cannot come out
//  differently a second time).  The position is 0 after a mismatch.
qn_blobflow_action_t
    qn_blobflow_finish (qn_blobflow_receiver_t *self, qn_blobstore_t *store,
                        qn_blobflow_want_t *want, char *error, size_t error_size);

//  Takes one chunk of the blob (the caller has handled a chunk carrying
//  an error).  Checks its size and offset against the blob and the
//  position, its SHA-256, writes it into store and decides the next want.
//  Returns DROPPED, WRITTEN, WANT_MORE, REFETCH, BROKEN, or when it was
//  the last chunk, what qn_blobflow_finish says.  written (may be NULL)
//  gets the bytes written into the store: the chunk's size for WRITTEN,
//  WANT_MORE, COMPLETE, RESTART and FAILED, else 0.  DROPPED, REFETCH,
//  RESTART and the bytes written are counted in the tally.  Never
//  crashes on a hostile chunk.
qn_blobflow_action_t
    qn_blobflow_receive (qn_blobflow_receiver_t *self, qn_blobstore_t *store,
                         const Qanat__BlobChunk *chunk, qn_blobflow_want_t *want,
                         size_t *written, char *error, size_t error_size);

//  Asks again from the position, dropping what is in flight until the
//  re-asked chunk arrives: for a transfer that made no progress for a
//  while (a message may have been lost).  Not counted as a rejection.
void
    qn_blobflow_refetch (qn_blobflow_receiver_t *self, qn_blobflow_want_t *want);

//  Sends BlobWant {hash, offset, window, complete, error (may be NULL)}.
int
    qn_blobflow_send_want (qn_blobflow_send_fn *send_fn, void *send_arg, const char *hash,
                           uint64_t offset, uint32_t window, bool complete,
                           const char *error);

//  Sends BlobChunk {hash, offset, error}: the sender cannot go on.
int
    qn_blobflow_send_error (qn_blobflow_send_fn *send_fn, void *send_arg, const char *hash,
                            uint64_t offset, const char *error);

//  The sending end: answers one want with the chunks of
//  [want->offset, want->offset + window), window being at most
//  QN_BLOBFLOW_WINDOW, cut at size (or at the first short read when size
//  is QN_BLOBFLOW_SIZE_UNKNOWN).  Each chunk is read with read_fn into buffer
//  (QN_BLOBFLOW_CHUNK bytes) and sent with its SHA-256; sending stops at
//  the first send that fails (the receiver asks again).  sent gets the
//  chunk bytes sent.  Returns 0, or -1 when a read failed or (size
//  unknown) the offset is past the end: BlobChunk {error} was then sent
//  and error holds the reason.
int
    qn_blobflow_answer (const Qanat__BlobWant *want, uint64_t size,
                        qn_blobflow_read_fn *read_fn, void *read_arg,
                        qn_blobflow_send_fn *send_fn, void *send_arg,
                        uint8_t *buffer, uint64_t *sent,
                        char *error, size_t error_size);

#ifdef __cplusplus
}
#endif
#endif
