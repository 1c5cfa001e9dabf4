/*  qn_dag - task graph state machine.  See qn_dag.h. */
#include "qn_dag.h"
#include <assert.h>
#include <stdlib.h>

struct _qn_dag_t {
    qn_workflow_t *wf;
    size_t size;
    Qanat__TaskStatus *status;
};

qn_dag_t *
qn_dag_new (qn_workflow_t *wf)
{
    assert (wf);
    qn_dag_t *self = (qn_dag_t *) calloc (1, sizeof (qn_dag_t));
    if (!self)
        return NULL;
    self->wf = wf;
    self->size = qn_workflow_task_count (wf);
    self->status = (Qanat__TaskStatus *) calloc (self->size? self->size: 1, sizeof (Qanat__TaskStatus));
    if (!self->status) {
        free (self);
        return NULL;
    }
    for (size_t i = 0; i < self->size; i++)
        self->status [i] = QANAT__TASK_STATUS__TASK_PENDING;
    return self;
}

void
qn_dag_destroy (qn_dag_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        free ((*self_p)->status);
        free (*self_p);
        *self_p = NULL;
    }
}

size_t
qn_dag_size (qn_dag_t *self)
{
    return self->size;
}

Qanat__TaskStatus
qn_dag_status (qn_dag_t *self, size_t index)
{
    assert (index < self->size);
    return self->status [index];
}

void
qn_dag_set_status (qn_dag_t *self, size_t index, Qanat__TaskStatus status)
{
    assert (index < self->size);
    self->status [index] = status;
}

size_t
qn_dag_promote (qn_dag_t *self, size_t *ready)
{
    size_t count = 0;
    for (size_t i = 0; i < self->size; i++) {
        if (self->status [i] != QANAT__TASK_STATUS__TASK_PENDING)
            continue;
        const qn_task_t *task = qn_workflow_task (self->wf, i);
        bool all_done = true;
        for (size_t d = 0; d < task->needs_count && all_done; d++)
            if (self->status [task->need_index [d]] != QANAT__TASK_STATUS__TASK_SUCCEEDED)
                all_done = false;
        if (all_done) {
            self->status [i] = QANAT__TASK_STATUS__TASK_QUEUED;
            ready [count++] = i;
        }
    }
    return count;
}

static bool
s_waiting (Qanat__TaskStatus status)
{
    return status == QANAT__TASK_STATUS__TASK_PENDING
        || status == QANAT__TASK_STATUS__TASK_QUEUED;
}

//  Tasks are few per workflow (bounded by the parser), so a fixpoint over
//  the needs lists is simpler than keeping reverse edges, and cheap.
size_t
qn_dag_skip_dependents (qn_dag_t *self, size_t index, size_t *changed)
{
    assert (index < self->size);
    bool *doomed = (bool *) calloc (self->size, sizeof (bool));
    if (!doomed)
        return 0;
    doomed [index] = true;
    size_t count = 0;
    bool progress = true;
    while (progress) {
        progress = false;
        for (size_t i = 0; i < self->size; i++) {
            if (doomed [i] || !s_waiting (self->status [i]))
                continue;
            const qn_task_t *task = qn_workflow_task (self->wf, i);
            for (size_t d = 0; d < task->needs_count; d++)
                if (doomed [task->need_index [d]]) {
                    doomed [i] = true;
                    self->status [i] = QANAT__TASK_STATUS__TASK_SKIPPED;
                    changed [count++] = i;
                    progress = true;
                    break;
                }
        }
    }
    free (doomed);
    return count;
}

static bool
s_terminal (Qanat__TaskStatus status)
{
    return status == QANAT__TASK_STATUS__TASK_SUCCEEDED
        || status == QANAT__TASK_STATUS__TASK_FAILED
        || status == QANAT__TASK_STATUS__TASK_SKIPPED
        || status == QANAT__TASK_STATUS__TASK_CANCELED;
}

bool
qn_dag_finished_task (qn_dag_t *self, size_t index)
{
    assert (index < self->size);
    return s_terminal (self->status [index]);
}

bool
qn_dag_finished (qn_dag_t *self)
{
    for (size_t i = 0; i < self->size; i++)
        if (!s_terminal (self->status [i]))
            return false;
    return true;
}

Qanat__RunStatus
qn_dag_run_status (qn_dag_t *self, bool canceled, bool warnings)
{
    if (!qn_dag_finished (self)) {
        for (size_t i = 0; i < self->size; i++)
            if (!s_waiting (self->status [i]))
                return QANAT__RUN_STATUS__RUN_RUNNING;
        return QANAT__RUN_STATUS__RUN_QUEUED;
    }
    if (canceled)
        return QANAT__RUN_STATUS__RUN_CANCELED;
    bool any_canceled = false, any_skipped = false;
    for (size_t i = 0; i < self->size; i++) {
        if (self->status [i] == QANAT__TASK_STATUS__TASK_FAILED)
            return QANAT__RUN_STATUS__RUN_FAILED;
        any_canceled |= self->status [i] == QANAT__TASK_STATUS__TASK_CANCELED;
        any_skipped |= self->status [i] == QANAT__TASK_STATUS__TASK_SKIPPED;
    }
    if (any_canceled)
        return QANAT__RUN_STATUS__RUN_CANCELED;
    if (any_skipped)
        return QANAT__RUN_STATUS__RUN_FAILED;
    return warnings? QANAT__RUN_STATUS__RUN_SUCCEEDED_WITH_WARNINGS
                   : QANAT__RUN_STATUS__RUN_SUCCEEDED;
}
