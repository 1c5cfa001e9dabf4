/*  qn_share - the engine's side of priorities, concurrency limits, pools
    and fair share (the counts themselves are qn_limits'): the order in
    which a dispatch pass visits its queues, how much room each has, when
    fair share holds a queue back, which runs a workflow's concurrency
    lets start, the counts kept in step as attempts start and end, and the
    administrator's requests that size pools and weigh owners.

    Order.  Every task of a queue has the same priority, pool, task limit
    and owner (they are part of the queue's key, qn_dispatch.c), so a
    queue is ranked by its oldest task.  Queues of one priority form a
    group, ranked by the aged priority of its oldest task (priority + one
    level per QN_LIMITS_AGE_STEP_US waited: no task starves); within a
    group, the owner furthest below its weighted share goes first, then
    the older task.  Queues of the same group that want the same agents
    (same selector, backend and resources) are peers: while peers of
    several owners wait, a queue stops placing once its owner's share is
    above the lowest other owner's, and the pass goes round again.

    One of the files of the qn_coordinator class: it shares the engine's
    records (qn_engine.h), so the include checker counts it with
    qn_coordinator.
*/
#ifndef QN_SHARE_H_INCLUDED
#define QN_SHARE_H_INCLUDED

#include "qn_engine.h"

//  A queue as one dispatch pass sees it
typedef struct {
    zlistx_t *queue;
    const char *name;           //  its key in the engine's queues (not owned)
    const qn_task_t *spec;      //  of its oldest task
    const char *owner;          //  its runs' owner (not owned)
    char *task;                 //  "workflow/task" when the task has a concurrency
    int32_t priority;
    int64_t key;                //  its oldest task's qn_limits_priority_key
    int64_t group_key;          //  the best key of its priority
    size_t class_len;           //  the length of name's selector/resources part
    size_t peers;               //  its peer group's id
    bool several;               //  peers of another owner wait too
    size_t room;                //  attempts its pool and task limit allow now
    bool capped;                //  fair share stopped it this sweep
    bool done;                  //  it stopped for another reason: not again this pass
} qn_share_queue_t;

//  The non-empty queues in visiting order (*count_p of them), or NULL;
//  freed with qn_share_order_free.
qn_share_queue_t *
    qn_share_order (qn_coordinator_t *self, size_t *count_p);
void
    qn_share_order_free (qn_share_queue_t **order_p, size_t count);

//  Drops the queue's gone tasks from its head and works out its room:
//  false when it is empty or its pool or task limit is reached.
bool
    qn_share_ready (qn_coordinator_t *self, qn_share_queue_t *entry);

//  True when fair share holds entry back now.
bool
    qn_share_over (qn_coordinator_t *self, qn_share_queue_t *entry, qn_share_queue_t *order,
                   size_t count);

//  An attempt of task index of run starts running (true) or ends.
void
    qn_share_count (qn_coordinator_t *self, run_t *run, size_t index, bool running);

//  Whether ready (of run) may join its queue: false when run's workflow
//  has its concurrency of runs active, and ready is held (taken) until
//  one ends.
bool
    qn_share_admit (qn_coordinator_t *self, run_t *run, ready_t *ready);

//  run ended: held runs of its workflow may start.
void
    qn_share_run_ended (qn_coordinator_t *self, run_t *run);

//  Why a queued task waits for its pool or task limit, or NULL (malloc'd).
char *
    qn_share_waiting_reason (qn_coordinator_t *self, run_t *run, const qn_task_t *spec);

//  The engine's limits, with the stored pool sizes and weights; NULL with
//  *error_p when the store cannot be read.
qn_limits_t *
    qn_dispatch_limits_load (qn_coordinator_t *self, char **error_p);

//  The requests: SetLimit (an administrator's) and ListLimits.
void
    qn_share_handle_set (qn_api_call_t *call, Qanat__Request *request);
void
    qn_share_handle_list (qn_api_call_t *call, Qanat__Request *request);

#endif
