/*  qn_outbox - the agent's events on their way to the coordinator: every
    event is stamped with its attempt's next seq, committed to the spool
    (qn_spool) and only then sent, and it stays in the spool until the
    coordinator acknowledges it.

    Pending events.  qn_outbox_post encodes the event and queues it in
    memory ("pending"); the owner is told (commit_due) that a commit is
    wanted, and calls qn_outbox_commit once at the start of the next loop
    turn: everything the turn produced (events, acknowledgements,
    attempts' metadata) goes in one durable LMDB transaction.  So a line
    is on disk before the coordinator can see it, and a chatty task costs
    one disk flush per pipe read rather than one per line.

    Sending.  qn_outbox_flush offers each attempt's committed events
    after "sent", in seq order, read back from the spool, to the send
    handler; one it cannot take now (a full socket queue) stops the
    flush, and the next flush starts there.  "sent" marks how far an
    attempt's events went out on the current registration;
    qn_outbox_replay rewinds it to the acknowledged seq, so that the next
    flush replays the rest.  The owner flushes only while registered.

    Acknowledgements.  qn_outbox_ack records that the coordinator has an
    attempt's events up to seq; the next commit deletes them from the
    spool.  An attempt that ended, whose Finished is spooled and whose
    events are all acknowledged (DONE, see qn_attempt.h) is deleted from
    the spool and from the table of attempts at the next commit.

    Back-pressure.  Task output pauses (pause handler) above the
    unacknowledged-bytes limit, and the spool counts as full (no credit,
    no new work) when what it holds, with what waits to enter it, comes
    within a margin of its normal room (its bound less the reserve kept
    for Finished events).  Both lift again at three quarters; the room
    handler says when the spool is no longer full.  An event that does
    not fit in the spool stays pending (in seq order, holding back the
    later events of its attempt) until acknowledgements make room: none
    is ever dropped.  Output is paused long before that.
*/
#ifndef QN_OUTBOX_H_INCLUDED
#define QN_OUTBOX_H_INCLUDED

#include <czmq.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "qn_attempt.h"
#include "qn_spool.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _qn_outbox_t qn_outbox_t;

typedef struct {
    //  Sends one committed event (size bytes of an encoded qanat.Event).
    //  Returns 0, or -1 when it cannot go now: the flush stops there.
    int (*send) (void *arg, const void *event, size_t size);
    //  Something waits to be committed: call qn_outbox_commit at the
    //  start of the next loop turn.  May be called many times a turn.
    void (*commit_due) (void *arg);
    //  Pause (true) or resume (false) the tasks' output.
    void (*pause) (void *arg, bool paused);
    //  The spool is no longer full: work (credit) may be taken again.
    void (*room) (void *arg);
} qn_outbox_handlers_t;

//  An outbox on the spool (not owned) for the attempts of the table (not
//  owned; the outbox deletes DONE attempts from it).  limit: bytes of
//  unacknowledged events above which output pauses, 0 = only when the
//  spool is full.  Every handler is required.  NULL when out of memory.
qn_outbox_t *
    qn_outbox_new (qn_spool_t *spool, zhashx_t *attempts, size_t limit,
                   const qn_outbox_handlers_t *handlers, void *arg);

//  Drops what is still pending (call qn_outbox_commit first to keep it),
//  nulls the pointer.  Idempotent.
void
    qn_outbox_destroy (qn_outbox_t **self_p);

//  Stamps the event with the attempt's next seq (and its AttemptRef)
//  and queues it for the next commit.  An event that cannot be encoded
//  or queued (out of memory) is dropped with an error logged.
void
    qn_outbox_post (qn_outbox_t *self, qn_attempt_t *attempt, Qanat__Event *event);

//  Writes what waits in one transaction and updates the back-pressure.
//  Returns 0, or -1 when the spool failed (everything stays pending: try
//  again later).
int
    qn_outbox_commit (qn_outbox_t *self);

//  Offers the committed events not sent yet to the send handler.
//  Returns 0, or -1 when it refused one (flush again later).
int
    qn_outbox_flush (qn_outbox_t *self);

//  A new registration: every unacknowledged event is to be sent again
//  (by the next flush).  Returns how many.
size_t
    qn_outbox_replay (qn_outbox_t *self);

//  The coordinator has the attempt's events up to seq (capped at what is
//  committed); they leave the spool at the next commit.
void
    qn_outbox_ack (qn_outbox_t *self, qn_attempt_t *attempt, uint64_t seq);

//  Takes over an attempt found in the spool (its metadata): its next
//  seq, what is committed, and what is acknowledged (every event the
//  spool no longer holds; all of them when its events cannot be read).
void
    qn_outbox_adopt (qn_outbox_t *self, qn_attempt_t *attempt, const qn_spool_meta_t *meta);

//  Moves the attempt to DONE when it is SPOOLED and every event of it is
//  committed and acknowledged: it leaves at the next commit.
void
    qn_outbox_check_done (qn_outbox_t *self, qn_attempt_t *attempt);

//  Bytes of events in the spool and waiting to enter it.
uint64_t
    qn_outbox_bytes (qn_outbox_t *self);

//  Events waiting to enter the spool.
size_t
    qn_outbox_pending (qn_outbox_t *self);

//  True while the spool counts as full (no new work).
bool
    qn_outbox_full (qn_outbox_t *self);

//  True while task output is paused.
bool
    qn_outbox_paused (qn_outbox_t *self);

#ifdef __cplusplus
}
#endif
#endif
