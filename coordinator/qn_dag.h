/*  qn_dag - the state machine of one run's task graph.

    Holds the status of every task of a run and applies the rules that move
    the graph forward: a pending task whose dependencies all succeeded
    becomes queued; when a task fails or is canceled, everything that
    depends on it (directly or not) is skipped; the run's status is derived
    from its tasks' statuses, never stored separately by hand.
*/
#ifndef QN_DAG_H_INCLUDED
#define QN_DAG_H_INCLUDED

#include "qn_workflow.h"
#include "qanat.pb-c.h"

typedef struct _qn_dag_t qn_dag_t;

//  A graph over wf's tasks, every task pending.  Does not own wf, which
//  must outlive the dag.
qn_dag_t *
    qn_dag_new (qn_workflow_t *wf);

void
    qn_dag_destroy (qn_dag_t **self_p);

size_t
    qn_dag_size (qn_dag_t *self);

Qanat__TaskStatus
    qn_dag_status (qn_dag_t *self, size_t index);

void
    qn_dag_set_status (qn_dag_t *self, size_t index, Qanat__TaskStatus status);

//  Moves every pending task whose dependencies all succeeded to queued.
//  Writes their indexes to ready (room for qn_dag_size entries) and
//  returns how many.
size_t
    qn_dag_promote (qn_dag_t *self, size_t *ready);

//  Marks every pending or queued task that depends, directly or through
//  others, on task index as skipped.  Writes their indexes to changed and
//  returns how many.
size_t
    qn_dag_skip_dependents (qn_dag_t *self, size_t index, size_t *changed);

//  True when task index is succeeded, failed, skipped or canceled.
bool
    qn_dag_finished_task (qn_dag_t *self, size_t index);

//  True when every task is succeeded, failed, skipped or canceled.
bool
    qn_dag_finished (qn_dag_t *self);

//  The run's status: queued until any task has started, running until all
//  are finished; then canceled if the run was canceled, failed if any task
//  failed, canceled if a task was canceled on its own, failed if any was
//  skipped, else succeeded (with warnings if warnings).
Qanat__RunStatus
    qn_dag_run_status (qn_dag_t *self, bool canceled, bool warnings);

#endif
