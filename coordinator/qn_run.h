/*  qn_run - an active run's record and every change of its tasks and
    attempts: promotion, cache hits, the start of an attempt, its ending
    (success, or an end of qn_end_t and then a retry or failure), the
    skipping of dependents, cancellation; and the dirty marks that make
    the loop turn write what changed (run_t in qn_engine.h).

    Every task status change goes through qn_run_set_status, which keeps
    the task graph (qn_dag) and the agents' sets of running attempts in
    step with the task records.  Calls run on the engine's loop, inside a
    turn; what they change is written by the turn's one commit.

    One of the files of the qn_coordinator class: it shares the engine's
    records (qn_engine.h), so the include checker counts it with
    qn_coordinator.
*/
#ifndef QN_RUN_H_INCLUDED
#define QN_RUN_H_INCLUDED

#include "qn_engine.h"

//  How an attempt ends.  Its wire and store spelling (AttemptInfo.end)
//  and the retry_on flag that retries it are in qn_run.c's table.
typedef enum {
    QN_END_EXIT,                        //  it exited (0: a success; else a failure)
    QN_END_TIMEOUT,                     //  killed at its timeout
    QN_END_AGENT_LOST,                  //  its agent was lost, revoked, or forgot it
    QN_END_START,                       //  could not start: retried like a lost one
    QN_END_CHECK,                       //  a check of severity error failed
    QN_END_OUTPUT,                      //  a declared output is missing
    QN_END_CANCELED,                    //  canceled: never retried
    QN_END_CACHED,                      //  outputs taken from the cache: a success
    QN_END_COUNT
} qn_end_t;

//  "exit", "timeout", "agent_lost", "start", "check", "output",
//  "canceled" or "cached".
const char *
    qn_end_name (qn_end_t end);

//  The QN_RETRY_ON_* flag that retries an attempt ending so (0: never).
unsigned
    qn_end_retry_flag (qn_end_t end);

//  The end of an unsuccessful Finished of this kind.
qn_end_t
    qn_end_of_kind (Qanat__EndKind kind);

//  Room for a run's key in the runs table (its id in decimal).
#define QN_RUN_KEY_SIZE  24

//  Writes the key of a run in the runs table to key (QN_RUN_KEY_SIZE
//  bytes) and returns it.
const char *
    qn_run_key (uint64_t run_id, char *key);

//  The active run, or NULL (finished, or none).
run_t *
    qn_run_find (qn_coordinator_t *self, uint64_t run_id);

//  A new active run of wf, not yet in the runs table; it takes wf, but
//  when it returns NULL (it cannot be made) the caller still owns wf.
run_t *
    qn_run_new (qn_coordinator_t *self, uint64_t run_id, qn_workflow_t *wf, uint32_t version,
                const char *filename, const qn_kv_t *params, size_t param_count);

//  Sets the type of each of the run's params that has none to the one wf
//  declares ("string", "int", ...): stored runs made before types were
//  recorded get them from their workflow version.
void
    qn_run_param_types (Qanat__RunInfo *info, qn_workflow_t *wf);

//  The active run run_id as the store has it, not yet in the runs table;
//  NULL if it is not there, or cannot be rebuilt (then it is marked
//  failed in the open transaction).
run_t *
    qn_run_load (qn_coordinator_t *self, uint64_t run_id);

void
    qn_run_destroy (run_t **run_p);

//  For the runs table.
void
    qn_run_destructor (void **item);

Qanat__TaskInfo *
    qn_run_task (run_t *run, size_t index);

//  The task's latest attempt, or NULL.
Qanat__AttemptInfo *
    qn_run_current_attempt (Qanat__TaskInfo *task);

//  Records that the run's own record, or one task's, changed this turn.
void
    qn_run_mark (run_t *run);
void
    qn_run_mark_task (run_t *run, size_t index);

//  Writes the run's dirty records into the open transaction.
int
    qn_run_persist (qn_coordinator_t *self, run_t *run);

//  The one way a task's status changes: the record, the graph and the
//  agent's set of running attempts together.
void
    qn_run_set_status (run_t *run, size_t index, Qanat__TaskStatus status);

//  Counts the task's current attempt in (running) or out of its agent's
//  set of running attempts (for a run reloaded from the store).
void
    qn_run_track_running (run_t *run, size_t index, bool running);

//  The key of an attempt in an agent's set of running attempts; free it.
char *
    qn_run_attempt_key (uint64_t run_id, size_t task);

//  A rerun: every task that succeeded in the earlier run from_id succeeds
//  in run as cached from it (its outputs reused), before the first
//  advance; the rest run.  The earlier run must be of the same workflow
//  version with the same params.  0, or -1 with *error_p ("no run N" when
//  it is not there).
int
    qn_run_reuse (qn_coordinator_t *self, run_t *run, uint64_t from_id, char **error_p);

//  Promotes tasks whose dependencies are done and queues them (or takes
//  their outputs from the cache); derives the run's status.
void
    qn_run_advance (qn_coordinator_t *self, run_t *run);

//  The task's argv with the run's parameters in place, or as its cache
//  key counts it (identity); NULL with *error_p when it cannot be made.
char **
    qn_run_task_argv (run_t *run, const qn_task_t *spec, bool identity, char **error_p);

//  Starts attempt n_attempts + 1 of a queued task on agent: the running
//  attempt's record.
Qanat__AttemptInfo *
    qn_run_attempt_start (run_t *run, size_t index, agent_t *agent);

//  The current attempt sent its Finished: checks, outputs and the cache
//  decide between success and an attempt failed.
void
    qn_run_attempt_finished (qn_coordinator_t *self, run_t *run, size_t index,
                             Qanat__AttemptInfo *attempt, Qanat__Finished *finished);

//  Ends the current attempt of a task as end, for reason: another attempt
//  follows if retries are left and the task retries this end, else the
//  task fails and its dependents are skipped.
void
    qn_run_attempt_failed (qn_coordinator_t *self, run_t *run, size_t index, qn_end_t end,
                           const char *reason);

//  True when a task that ended its attempts-th attempt so is retried
//  (canceling: its run is being canceled).
bool
    qn_run_retries (const qn_task_t *spec, size_t attempts, qn_end_t end, bool canceling);

//  A task that cannot even be handed out (a secret is missing) fails
//  without an attempt, and without retries: nothing would change.
void
    qn_run_fail_unstartable (qn_coordinator_t *self, run_t *run, size_t index, const char *reason);

//  Cancels one task: a running attempt is told to stop and ends as
//  canceled now; a task not started is canceled; its dependents are
//  skipped.
void
    qn_run_cancel_task (qn_coordinator_t *self, run_t *run, size_t index, const char *why);

#endif
