/*  qn_outbox - the agent's events on their way to the coordinator.
    See qn_outbox.h.
*/
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include "qn_outbox.h"
#include "qn_log.h"
#include "qn_msg.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define S_FULL_MARGIN           (64 * 1024)     //  room kept free of output

typedef struct {
    qn_attempt_t *attempt;
    uint64_t seq;
    bool reserve;               //  may use the spool's reserve (Finished)
    bool finished;
    bool written;               //  put in the open transaction
    size_t size;
    uint8_t data [];            //  encoded Event
} s_pending_t;

struct _qn_outbox_t {
    qn_spool_t *spool;          //  not owned
    zhashx_t *attempts;         //  not owned: "run/task/attempt" -> qn_attempt_t
    size_t limit;               //  0 = none beyond the spool's own bound
    qn_outbox_handlers_t handlers;
    void *arg;
    zlistx_t *pending;          //  s_pending_t, in the order produced
    uint64_t pending_bytes;     //  as they will count in the spool
    bool failing;               //  the last commit failed
    bool paused;                //  back-pressure applied
    bool full;                  //  the spool is full: no new work
};

static void
s_pending_destructor (void **item)
{
    free (*item);
    *item = NULL;
}

qn_outbox_t *
qn_outbox_new (qn_spool_t *spool, zhashx_t *attempts, size_t limit,
               const qn_outbox_handlers_t *handlers, void *arg)
{
    assert (spool);
    assert (attempts);
    assert (handlers && handlers->send && handlers->commit_due && handlers->pause
            && handlers->room);
    qn_outbox_t *self = (qn_outbox_t *) calloc (1, sizeof (qn_outbox_t));
    if (!self)
        return NULL;
    self->spool = spool;
    self->attempts = attempts;
    self->limit = limit;
    self->handlers = *handlers;
    self->arg = arg;
    self->pending = zlistx_new ();
    if (!self->pending) {
        free (self);
        return NULL;
    }
    zlistx_set_destructor (self->pending, s_pending_destructor);
    return self;
}

void
qn_outbox_destroy (qn_outbox_t **self_p)
{
    assert (self_p);
    qn_outbox_t *self = *self_p;
    if (!self)
        return;
    zlistx_destroy (&self->pending);
    free (self);
    *self_p = NULL;
}

//  Stamps the event with the attempt's next seq and stages it for the
//  spool; it goes out after the commit at the end of this turn.
void
qn_outbox_post (qn_outbox_t *self, qn_attempt_t *attempt, Qanat__Event *event)
{
    Qanat__AttemptRef ref;
    qn_attempt_ref (&attempt->key, &ref);
    event->attempt = &ref;
    event->seq = attempt->next_seq;
    size_t size = qanat__event__get_packed_size (event);
    s_pending_t *pending = NULL;
    if (size <= QN_MAX_MESSAGE_SIZE - 64)
        pending = (s_pending_t *) malloc (sizeof (s_pending_t) + size);
    if (!pending || !zlistx_add_end (self->pending, pending)) {
        //  Only an oversized event (impossible: we cut lines at 8 KiB, and
        //  stack traces are bounded) or no memory gets here
        qn_log (QN_LOG_ERROR, "agent", "cannot store event %" PRIu64 " of attempt %" PRIu64
                      "/%u/%u (%zu bytes); dropping it", event->seq, attempt->key.run_id,
                      attempt->key.task_index, attempt->key.attempt, size);
        free (pending);
        return;
    }
    pending->attempt = attempt;
    pending->seq = attempt->next_seq++;
    pending->finished = event->body_case == QANAT__EVENT__BODY_FINISHED;
    pending->reserve = pending->finished;
    pending->written = false;
    pending->size = size;
    qanat__event__pack (event, pending->data);
    attempt->pending++;
    self->pending_bytes += QN_SPOOL_KEY_SIZE + size;
    self->handlers.commit_due (self->arg);
}


//  ---------------------------------------------------------------------
//  The commit

static uint64_t
s_normal_room (qn_outbox_t *self)
{
    return qn_spool_max (self->spool) - qn_spool_reserve (self->spool);
}

//  Pauses task output above the unacknowledged-bytes limit, and declares
//  the spool full (no credit, no new work) when what it holds, with
//  what waits to enter it, comes within a margin of its normal room.
//  Both lift again at three quarters.
static void
s_update_pressure (qn_outbox_t *self, bool refused)
{
    uint64_t bytes = qn_outbox_bytes (self);
    uint64_t room = s_normal_room (self);
    uint64_t margin = room / 8 < S_FULL_MARGIN? room / 8: S_FULL_MARGIN;
    if (!self->full && (refused || bytes + margin > room)) {
        self->full = true;
        qn_log (QN_LOG_WARNING, "agent", "agent spool full: %" PRIu64 " of %" PRIu64 " bytes "
                      "wait for acknowledgement; pausing task output, taking no new work",
                      bytes, qn_spool_max (self->spool));
    }
    else
    if (self->full && !refused && bytes <= room / 4 * 3) {
        self->full = false;
        qn_log (QN_LOG_INFO, "agent", "agent spool has room again (%" PRIu64 " bytes); "
                      "taking work", bytes);
        self->handlers.room (self->arg);
    }
    bool over = self->limit && bytes > self->limit;
    bool under = !self->limit || bytes <= self->limit / 4 * 3;
    if (!self->paused && (self->full || over)) {
        self->paused = true;
        if (!self->full)
            qn_log (QN_LOG_WARNING, "agent", "%" PRIu64 " bytes of events wait for "
                          "acknowledgement; pausing task output", bytes);
        self->handlers.pause (self->arg, true);
    }
    else
    if (self->paused && !self->full && under) {
        self->paused = false;
        qn_log (QN_LOG_INFO, "agent", "events acknowledged; resuming task output");
        self->handlers.pause (self->arg, false);
    }
}

//  Acknowledgements first: the room they free is for this very batch.
//  Returns -1 when the spool failed.
static int
s_put_acks (qn_outbox_t *self)
{
    qn_attempt_t *attempt = (qn_attempt_t *) zhashx_first (self->attempts);
    while (attempt) {
        attempt->blocked = false;
        attempt->batch_seq = attempt->committed;
        attempt = (qn_attempt_t *) zhashx_next (self->attempts);
    }
    attempt = (qn_attempt_t *) zhashx_first (self->attempts);
    while (attempt) {
        if (attempt->state == QN_ATTEMPT_DONE) {
            if (qn_spool_meta_delete (self->spool, &attempt->key) == -1)
                return -1;
        }
        else
        if (attempt->acked > attempt->spool_acked
        &&  qn_spool_ack (self->spool, &attempt->key, attempt->acked) == -1)
            return -1;
        attempt = (qn_attempt_t *) zhashx_next (self->attempts);
    }
    return 0;
}

//  Events in the order produced; one that does not fit holds back the
//  rest of its attempt, so that each attempt's spool has no gap.  Sets
//  *refused when the spool's normal room refused one.  Returns -1 when
//  the spool failed.
static int
s_put_events (qn_outbox_t *self, bool *refused)
{
    s_pending_t *pending = (s_pending_t *) zlistx_first (self->pending);
    while (pending) {
        qn_attempt_t *owner = pending->attempt;
        if (!owner->blocked) {
            if (qn_spool_put (self->spool, &owner->key, pending->seq, pending->data,
                              pending->size, pending->reserve) == 0
            ||  errno == EEXIST) {
                pending->written = true;
                owner->batch_seq = pending->seq;
            }
            else
            if (errno == ENOSPC && !pending->reserve) {
                owner->blocked = true;
                *refused = true;
            }
            else
            if (errno == ENOSPC)
                owner->blocked = true;      //  even the reserve is spent
            else
                return -1;
        }
        pending = (s_pending_t *) zlistx_next (self->pending);
    }
    return 0;
}

//  Metadata of the attempts that changed.  Returns -1 when the spool
//  failed.
static int
s_put_metas (qn_outbox_t *self)
{
    qn_attempt_t *attempt = (qn_attempt_t *) zhashx_first (self->attempts);
    while (attempt) {
        if (attempt->state != QN_ATTEMPT_DONE
        &&  (attempt->meta_dirty || attempt->batch_seq > attempt->committed)) {
            bool finished = attempt->state == QN_ATTEMPT_SPOOLED;
            s_pending_t *pending = (s_pending_t *) zlistx_first (self->pending);
            while (pending && !finished) {
                if (pending->attempt == attempt && pending->written && pending->finished)
                    finished = true;
                pending = (s_pending_t *) zlistx_next (self->pending);
            }
            qn_spool_meta_t meta;
            qn_attempt_meta (attempt, attempt->batch_seq + 1, finished, &meta);
            if (qn_spool_meta_put (self->spool, &meta) == -1)
                return -1;
        }
        attempt = (qn_attempt_t *) zhashx_next (self->attempts);
    }
    return 0;
}

//  Committed: the written events leave memory, the rest keep their order
static void
s_drop_written (qn_outbox_t *self)
{
    zlistx_t *remaining = zlistx_new ();
    if (!remaining)
        return;
    zlistx_set_destructor (remaining, s_pending_destructor);
    s_pending_t *pending;
    while ((pending = (s_pending_t *) zlistx_detach (self->pending, NULL))) {
        if (!pending->written) {
            if (zlistx_add_end (remaining, pending))
                continue;
            //  No memory even for a list node: the event is in the
            //  spool's care no more; say so rather than lose it quietly
            qn_log (QN_LOG_ERROR, "agent", "out of memory: event %" PRIu64 " dropped",
                          pending->seq);
            free (pending);
            continue;
        }
        qn_attempt_t *owner = pending->attempt;
        owner->committed = pending->seq;
        owner->pending--;
        if (pending->finished)
            qn_attempt_advance (owner, QN_ATTEMPT_SPOOLED);
        self->pending_bytes -= QN_SPOOL_KEY_SIZE + pending->size;
        free (pending);
    }
    zlistx_destroy (&self->pending);
    self->pending = remaining;
}

//  Committed: DONE attempts leave the table, the others' acknowledgements
//  and metadata are in the spool
static void
s_forget_done (qn_outbox_t *self)
{
    zlist_t *gone = zlist_new ();
    qn_attempt_t *attempt = (qn_attempt_t *) zhashx_first (self->attempts);
    while (attempt) {
        if (attempt->state == QN_ATTEMPT_DONE) {
            if (gone)
                zlist_append (gone, (void *) zhashx_cursor (self->attempts));
        }
        else {
            attempt->spool_acked = attempt->acked;
            attempt->meta_dirty = false;
        }
        attempt = (qn_attempt_t *) zhashx_next (self->attempts);
    }
    if (gone) {
        const char *key;
        while ((key = (const char *) zlist_pop (gone))) {
            char name [64];
            snprintf (name, sizeof (name), "%s", key);
            qn_log (QN_LOG_DEBUG, "agent", "attempt %s acknowledged in full; forgotten", name);
            zhashx_delete (self->attempts, name);
        }
        zlist_destroy (&gone);
    }
}

//  Writes what the turn produced in one transaction.  Returns 0, or -1
//  when the spool failed (everything stays staged; we retry later).
int
qn_outbox_commit (qn_outbox_t *self)
{
    bool refused = false;
    bool failed = s_put_acks (self) == -1
               || s_put_events (self, &refused) == -1
               || s_put_metas (self) == -1;
    if (failed || qn_spool_commit (self->spool) == -1) {
        qn_spool_abort (self->spool);
        s_pending_t *pending = (s_pending_t *) zlistx_first (self->pending);
        while (pending) {
            pending->written = false;
            pending = (s_pending_t *) zlistx_next (self->pending);
        }
        if (!self->failing)
            qn_log (QN_LOG_ERROR, "agent", "cannot write the spool; keeping %zu event(s) in "
                          "memory and trying again", zlistx_size (self->pending));
        self->failing = true;
        return -1;
    }
    if (self->failing)
        qn_log (QN_LOG_INFO, "agent", "the spool takes writes again");
    self->failing = false;
    s_drop_written (self);
    s_forget_done (self);
    s_update_pressure (self, refused);
    return 0;
}


//  ---------------------------------------------------------------------
//  Sending, acknowledgements

typedef struct {
    qn_outbox_t *outbox;
    qn_attempt_t *attempt;
    bool blocked;
} s_flush_ctx_t;

static int
s_send_spooled (const qn_attempt_key_t *key, uint64_t seq, const void *data, size_t size,
                void *arg)
{
    (void) key;
    s_flush_ctx_t *ctx = (s_flush_ctx_t *) arg;
    if (seq > ctx->attempt->committed)
        return 1;
    if (ctx->outbox->handlers.send (ctx->outbox->arg, data, size) == -1) {
        ctx->blocked = true;
        return 1;
    }
    ctx->attempt->sent = seq;
    return 0;
}

//  Sends the attempt's committed events after "sent", in seq order, read
//  back from the spool.  Returns -1 when the send handler refused one.
static int
s_flush_attempt (qn_outbox_t *self, qn_attempt_t *attempt)
{
    if (attempt->sent >= attempt->committed)
        return 0;
    s_flush_ctx_t ctx = { self, attempt, false };
    if (qn_spool_events (self->spool, &attempt->key, attempt->sent + 1,
                         s_send_spooled, &ctx) == -1)
        qn_log (QN_LOG_ERROR, "agent", "cannot read the spool");
    return ctx.blocked? -1: 0;
}

int
qn_outbox_flush (qn_outbox_t *self)
{
    qn_attempt_t *attempt = (qn_attempt_t *) zhashx_first (self->attempts);
    while (attempt) {
        if (s_flush_attempt (self, attempt) == -1)
            return -1;
        attempt = (qn_attempt_t *) zhashx_next (self->attempts);
    }
    return 0;
}

size_t
qn_outbox_replay (qn_outbox_t *self)
{
    size_t replay = 0;
    qn_attempt_t *attempt = (qn_attempt_t *) zhashx_first (self->attempts);
    while (attempt) {
        attempt->sent = attempt->acked;
        replay += attempt->committed - attempt->acked;
        attempt = (qn_attempt_t *) zhashx_next (self->attempts);
    }
    return replay;
}

//  An attempt that ended and whose events are all acknowledged leaves the
//  spool at the next commit.
void
qn_outbox_check_done (qn_outbox_t *self, qn_attempt_t *attempt)
{
    (void) self;
    if (attempt->state == QN_ATTEMPT_SPOOLED && attempt->pending == 0
    &&  attempt->acked >= attempt->committed)
        qn_attempt_advance (attempt, QN_ATTEMPT_DONE);
}

void
qn_outbox_ack (qn_outbox_t *self, qn_attempt_t *attempt, uint64_t ack_seq)
{
    //  Never acknowledge what was not even committed, let alone sent
    uint64_t seq = ack_seq < attempt->committed? ack_seq: attempt->committed;
    if (seq <= attempt->acked)
        return;
    attempt->acked = seq;
    if (attempt->sent < seq)
        attempt->sent = seq;
    qn_outbox_check_done (self, attempt);
    self->handlers.commit_due (self->arg);
}

static int
s_first_seq (const qn_attempt_key_t *key, uint64_t seq, const void *data, size_t size,
             void *arg)
{
    (void) key;
    (void) data;
    (void) size;
    *(uint64_t *) arg = seq;
    return 1;
}

void
qn_outbox_adopt (qn_outbox_t *self, qn_attempt_t *attempt, const qn_spool_meta_t *meta)
{
    attempt->next_seq = meta->next_seq;
    attempt->committed = meta->next_seq - 1;
    attempt->meta_dirty = false;
    uint64_t first = 0;
    qn_spool_events (self->spool, &meta->key, 0, s_first_seq, &first);
    attempt->acked = attempt->spool_acked = first? first - 1: attempt->committed;
    attempt->sent = attempt->acked;
}

uint64_t
qn_outbox_bytes (qn_outbox_t *self)
{
    return qn_spool_committed_bytes (self->spool) + self->pending_bytes;
}

size_t
qn_outbox_pending (qn_outbox_t *self)
{
    return zlistx_size (self->pending);
}

bool
qn_outbox_full (qn_outbox_t *self)
{
    return self->full;
}

bool
qn_outbox_paused (qn_outbox_t *self)
{
    return self->paused;
}
