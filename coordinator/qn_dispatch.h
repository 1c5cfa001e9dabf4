/*  qn_dispatch - where ready tasks wait, and how they go out: one queue
    per label selector (so that dispatch looks at the queues agents can
    serve, never at every waiting task), retries waiting out their backoff,
    the reason a queued task has not started, the secrets a task may have,
    and the Assign message of an attempt.

    Each call runs on the engine's loop, inside a turn; an assignment is
    queued in the outbox and leaves after the turn's commit.

    One of the files of the qn_coordinator class: it shares the engine's
    records (qn_engine.h), so the include checker counts it with
    qn_coordinator.
*/
#ifndef QN_DISPATCH_H_INCLUDED
#define QN_DISPATCH_H_INCLUDED

#include "qn_engine.h"

//  Queues a task that is ready: in its selector's queue, or while its
//  retry waits out its backoff (retry_at_us), in the delayed list.
void
    qn_dispatch_queue (qn_coordinator_t *self, run_t *run, size_t index);

//  Retries whose backoff is over join their queue.
void
    qn_dispatch_release_delayed (qn_coordinator_t *self);

//  For the ready_t items of the queues and the delayed list.
void
    qn_dispatch_ready_destructor (void **item);

//  One pass over the queues.  Each task goes to the connected, matching
//  agent with the most free credit.
void
    qn_dispatch (qn_coordinator_t *self);

//  Writes why each queued task of run has not started (for `qanat
//  status`), worked out when someone asks rather than on every dispatch.
void
    qn_dispatch_explain_waiting (qn_coordinator_t *self, run_t *run);

//  Why a run may not start because of the secrets its tasks name, or NULL
//  (sender: who starts it; NULL, a local administrator).
char *
    qn_dispatch_run_secrets_refusal (qn_coordinator_t *self, qn_workflow_t *wf,
                                     const Qanat__Principal *sender);

//  An assignment message and what it owns.
typedef struct {
    Qanat__AttemptRef ref;
    Qanat__Assign assign;
    zlistx_t *redact;
    Qanat__ArtifactStore store;
} qn_assignment_t;

//  Builds the Assign of attempt attempt_no of task index into out; the
//  blobs of its inputs join fetchable.  -1 with *error_p (malloc'd) when
//  it cannot be made (a secret it names is not there).
int
    qn_dispatch_assignment_build (qn_coordinator_t *self, run_t *run, size_t index,
                                  uint32_t attempt_no, qn_assignment_t *out, zhashx_t *fetchable,
                                  char **error_p);

void
    qn_dispatch_assignment_free (qn_assignment_t *self);

#endif
