/*  qn_scheduler - runs the coordinator starts by itself: schedule ticks
    of stored workflows (their newest version's `schedule:`), and runs a
    `trigger:` starts when an upstream workflow's run ends.

    Exactly once, across crashes: a tick's record (workflow, schedule
    index, tick time: the idempotency key) is written in the same
    transaction as the run it starts, in the engine's turn, and a run's end
    leaves a pending record in the same commit as its final status, which
    the scheduler turns into the downstream runs and the record of having
    done so, again in one commit.  See docs/schedules.md.

    The scheduler's clock is the system's, plus, for tests only, the number
    of seconds (a decimal, may be negative) held in the file named by the
    environment variable QANAT_TEST_CLOCK_FILE, read on every pass: a test
    moves time forward by writing that file instead of waiting.

    Each call runs on the engine's loop, inside a turn, and writes in the
    turn's transaction.  One of the files of the qn_coordinator class: it
    shares the engine's records (qn_engine.h), so the include checker
    counts it with qn_coordinator.
*/
#ifndef QN_SCHEDULER_H_INCLUDED
#define QN_SCHEDULER_H_INCLUDED

#include "qanat.h"
#include "qn_coordinator.h"
#include "qn_api.h"

//  A tick up to this late runs under any catchup; older ones were missed
//  (the coordinator was down) and follow the schedule's catchup
#define QN_SCHEDULER_GRACE_S        60
//  At most this many missed ticks of one schedule are recorded per pass,
//  and none older than this (so that a long outage costs one short pass)
#define QN_SCHEDULER_MISSED_MAX     100
#define QN_SCHEDULER_LOOKBACK_S     (31 * 86400)

typedef struct _qn_scheduler_t qn_scheduler_t;

qn_scheduler_t *
    qn_scheduler_new (void);

void
    qn_scheduler_destroy (qn_scheduler_t **self_p);

//  One pass: due ticks start their runs (or are recorded skipped), ended
//  runs start the runs their downstream triggers ask for.
void
    qn_scheduler_pass (qn_coordinator_t *engine);

//  A workflow version was stored, or the engine reloaded its state: the
//  next pass reads the newest versions again (until then it reads none)
void
    qn_scheduler_versions_changed (qn_scheduler_t *self);

//  Seconds since the epoch as the scheduler sees them (the system clock,
//  moved by QANAT_TEST_CLOCK_FILE in tests); for other timers that tests
//  want to move too
int64_t
    qn_scheduler_now (qn_coordinator_t *engine);

//  A run reached its final status (qn_run): its triggers fire on a pass
void
    qn_scheduler_run_ended (qn_coordinator_t *engine, uint64_t run_id);

//  Refuses a workflow about to be stored whose trigger would close a
//  cycle of triggers among the stored workflows' newest versions.  0, or
//  -1 with *error_p a malloc'd message.
int
    qn_scheduler_check_cycle (qn_coordinator_t *engine, qn_workflow_t *wf, char **error_p);

//  The request handlers: ListSchedules and SchedulePause
void
    qn_scheduler_handle_list (qn_api_call_t *call, Qanat__Request *request);
void
    qn_scheduler_handle_pause (qn_api_call_t *call, Qanat__Request *request);

#endif
