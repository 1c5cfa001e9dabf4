/*  qn_agent_link - what the agents' socket does with a decoded message
    of a peer qn_coordinator has identified: Register (reconciled with
    the attempts we count as its, answered with a Welcome that hands back
    the attempts it still holds), Heartbeat, Credit, the events of its
    attempts (fenced: only the current attempt of a running task changes
    it), Drain, Enrol (a join token's only message), and who may store or
    fetch which blob (qn_blobserver does the transfers), with the uploads
    kept from retention until a record references them.

    Each call runs on the engine's loop, inside a turn: what it sends in
    answer waits in the outbox for the turn's commit, except a refusal.

    One of the files of the qn_coordinator class: it shares the engine's
    records (qn_engine.h), so the include checker counts it with
    qn_coordinator.
*/
#ifndef QN_AGENT_LINK_H_INCLUDED
#define QN_AGENT_LINK_H_INCLUDED

#include "qn_engine.h"

//  Applies one message of the agents' socket from routing_id, its sender
//  (self->sender, NULL without CURVE) identified already.
void
    qn_agent_link_handle (qn_coordinator_t *self, zframe_t *routing_id, Qanat__Envelope *env);

//  Tells agent (if connected) to stop an attempt, after the commit.
void
    qn_agent_link_post_cancel (qn_coordinator_t *self, agent_t *agent, uint64_t run_id,
                               uint32_t task, uint32_t attempt, const char *reason);

//  A blob stored on its way to a record (an attempt's output, or a put
//  for a run's parameter, attempt NULL): indexed, and kept from
//  retention for an hour unless a record references it sooner.
void
    qn_agent_link_keep_upload (qn_coordinator_t *self, const char *hash, uint64_t size,
                               const Qanat__AttemptRef *attempt);

//  The blob server's callbacks (arg: the engine): a message to the agent
//  peer, after the commit (-1: not connected)...
int
    qn_agent_link_blob_send (void *arg, const char *peer, Qanat__Envelope *envelope);
//  ...and a blob stored for an attempt of peer's.
void
    qn_agent_link_blob_stored (void *arg, const char *peer, const char *hash, uint64_t size,
                               const Qanat__AttemptRef *attempt);

#endif
