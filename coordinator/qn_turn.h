/*  qn_turn - a loop turn of the engine, and what makes it safe: "durable
    before visible".

    Memory and store.  The store is the truth; the engine keeps the active
    runs (queued or running) in memory as full RunInfo messages, marks what
    a loop turn changed as dirty, and writes the dirty records in the turn's
    single write transaction.  Finished runs live only in the store.

    Durable before visible.  Everything a turn wants to send that depends
    on its writes (assignments, acknowledgements, client replies) waits in
    an outbox until the commit succeeded.  If a commit fails (disk full),
    the engine throws its memory away and reloads it from the store, tells
    every agent to register again (so each replays the events it has not
    seen acknowledged) and answers waiting clients with an error.  Then it
    stops reading for a while (a pause, longer each time a commit fails
    again) rather than spin on commits that cannot succeed.

    Acknowledgements are coalesced: one Ack per attempt and connection per
    turn, with the highest seq, sent after the outbox.

    One of the files of the qn_coordinator class: it shares the engine's
    records (qn_engine.h), so the include checker counts it with
    qn_coordinator.
*/
#ifndef QN_TURN_H_INCLUDED
#define QN_TURN_H_INCLUDED

#include "qn_engine.h"

//  Queues env for sending after the turn's commit (request_id: of the
//  client request it answers, else 0).  A reply over the message size
//  limit becomes an error reply.
void
    qn_turn_post (qn_coordinator_t *self, zsock_t *sock, zframe_t *routing_id,
                  Qanat__Envelope *env, uint64_t request_id);

//  Acknowledges an attempt's events up to seq after the turn's commit
//  (one Ack per attempt and connection, with the highest seq of the turn).
void
    qn_turn_post_ack (qn_coordinator_t *self, agent_t *agent, Qanat__AttemptRef *ref,
                      uint64_t seq);

//  The upper bound in ms of a commit latency bucket (Stats'
//  commit_latency_bucket): 0.5, 1, 2, 5, 10, 25, 50, 100, 250, then
//  INFINITY for the last, QN_ENGINE_LATENCY_BUCKETS - 1.
double
    qn_turn_latency_bound (size_t bucket);

//  Ends a loop turn: dispatches, writes the dirty runs, commits once, and
//  only then retires finished runs and sends what waited in the outbox,
//  then the acknowledgements.  A failed commit recovers and pauses.
void
    qn_turn_end (qn_coordinator_t *self);

//  (Re)builds the active runs, their queues and their agents' running
//  attempts from the store (at start, and after a failed commit).  -1
//  with *error_p (malloc'd) when the store cannot list them.
int
    qn_turn_reload (qn_coordinator_t *self, char **error_p);

//  For the engine's outbox (outgoing_t) and acks (pending_ack_t) tables.
void
    qn_turn_outgoing_destructor (void **item);
void
    qn_turn_pending_ack_destructor (void **item);

#endif
