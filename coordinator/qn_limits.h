/*  qn_limits - the counts behind priorities, concurrency limits, pools and
    fair share: the named pools an administrator sized (`qanat pool set`),
    the owners' weights (`qanat user weight`), and how many attempts of
    each pool, task and owner run now.  Dispatch asks it how much room a
    queue has (so that a queue whose pool or task limit is reached is
    passed over whole) and which owner is furthest below its share.

    Plain records, no engine: the engine keeps the counts in step as
    attempts start and end (qn_run_track_running), which is also how they
    are rebuilt after a restart; the sizes and weights are stored by the
    engine (qn_store_limits.c) and loaded at start.  See
    docs/scheduling.md.
*/
#ifndef QN_LIMITS_H_INCLUDED
#define QN_LIMITS_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

//  A pool nobody sized has one slot: a name mistyped in a workflow runs,
//  one attempt at a time, and its waiting reason says the pool is unset.
#define QN_LIMITS_POOL_DEFAULT      1
#define QN_LIMITS_WEIGHT_DEFAULT    1
#define QN_LIMITS_SIZE_MAX          1000000
//  Effective priority rises one level for each this long a task waits
#define QN_LIMITS_AGE_STEP_US       (30LL * 1000000)

typedef struct _qn_limits_t qn_limits_t;

//  What one attempt counts against
typedef struct {
    const char *pool;           //  NULL = none
    const char *task;           //  "workflow/task" when the task has a concurrency, else NULL
    const char *owner;          //  the run's owner ("" = local)
    uint32_t units;             //  its weight in its owner's share (>= 1)
} qn_limits_use_t;

qn_limits_t *
    qn_limits_new (void);

void
    qn_limits_destroy (qn_limits_t **self_p);

//  Sizes a pool (0: back to unset, the default size).
void
    qn_limits_pool_set (qn_limits_t *self, const char *name, uint32_t size);

//  A pool's size; *set_p (if given) says whether an administrator set it.
uint32_t
    qn_limits_pool_size (qn_limits_t *self, const char *name, bool *set_p);

uint32_t
    qn_limits_pool_used (qn_limits_t *self, const char *name);

//  Weighs an owner (0: back to the default, 1).
void
    qn_limits_weight_set (qn_limits_t *self, const char *owner, uint32_t weight);

uint32_t
    qn_limits_weight (qn_limits_t *self, const char *owner, bool *set_p);

//  An attempt starts (take) or ends (give); giving stops at zero.
void
    qn_limits_take (qn_limits_t *self, const qn_limits_use_t *use);
void
    qn_limits_give (qn_limits_t *self, const qn_limits_use_t *use);

//  Attempts that may still start against pool (NULL: none) and task
//  (NULL: none) with the task's concurrency; UINT32_MAX when unlimited.
uint32_t
    qn_limits_room (qn_limits_t *self, const char *pool, const char *task,
                    uint32_t concurrency);

//  Attempts of task running now
uint32_t
    qn_limits_task_used (qn_limits_t *self, const char *task);

//  Units an owner runs now, and that over its weight
uint64_t
    qn_limits_owner_used (qn_limits_t *self, const char *owner);
double
    qn_limits_share (qn_limits_t *self, const char *owner);

//  Calls visit for every pool that is set or in use (kind "pool") and
//  every owner that is weighed or running (kind "weight"), in no order.
typedef void (qn_limits_visit_fn) (const char *kind, const char *name, uint32_t value,
                                   bool set, uint64_t used, void *arg);
void
    qn_limits_each (qn_limits_t *self, qn_limits_visit_fn *visit, void *arg);

//  The static ordering key of a task of priority waiting since queued_us
//  (higher goes first): base + wait / step orders as base * step -
//  queued, so keys never change while tasks wait.
static inline int64_t
qn_limits_priority_key (int32_t priority, int64_t queued_us)
{
    return (int64_t) priority * QN_LIMITS_AGE_STEP_US - queued_us;
}

#endif
