/*  qn_dag - task graph state machine.  See qn_dag.h.

    Every operation costs in proportion to the tasks it touches, not to
    the size of the graph: a run of 100,000 tasks advances one finished
    task at a time.  For that the graph keeps, besides each task's status,
    the reverse edges (who needs me), for each task the number of its
    dependencies not yet succeeded, the tasks that may have become ready
    since the last promote, and a count of tasks per status.
*/
#include "qn_dag.h"
#include <assert.h>
#include <stdlib.h>

#define STATUS_COUNT  (QANAT__TASK_STATUS__TASK_CANCELED + 1)

struct _qn_dag_t {
    qn_workflow_t *wf;
    size_t size;
    Qanat__TaskStatus *status;
    size_t *unmet;                  //  dependencies of each task not succeeded
    size_t *dependents;             //  reverse edges, CSR: dependents of i are
    size_t *dependents_at;          //  dependents [dependents_at [i] .. dependents_at [i+1])
    size_t *candidates;             //  tasks that may be ready (may repeat)
    size_t candidate_count;
    size_t candidate_room;
    size_t count [STATUS_COUNT];
    size_t *stack;                  //  scratch for skip_dependents
    bool rescan;                    //  candidates were lost: promote scans every task
};

static void
s_candidate (qn_dag_t *self, size_t index)
{
    if (self->candidate_count == self->candidate_room) {
        size_t room = self->candidate_room? 2 * self->candidate_room: 64;
        size_t *grown = (size_t *) realloc (self->candidates, room * sizeof (size_t));
        if (!grown) {
            self->rescan = true;    //  out of memory: the next promote scans all
            return;
        }
        self->candidates = grown;
        self->candidate_room = room;
    }
    self->candidates [self->candidate_count++] = index;
}

qn_dag_t *
qn_dag_new (qn_workflow_t *wf)
{
    assert (wf);
    qn_dag_t *self = (qn_dag_t *) calloc (1, sizeof (qn_dag_t));
    if (!self)
        return NULL;
    self->wf = wf;
    size_t size = self->size = qn_workflow_task_count (wf);
    size_t edges = 0;
    for (size_t i = 0; i < size; i++)
        edges += qn_workflow_task (wf, i)->needs_count;
    self->status = (Qanat__TaskStatus *) calloc (size + 1, sizeof (Qanat__TaskStatus));
    self->unmet = (size_t *) calloc (size + 1, sizeof (size_t));
    self->dependents = (size_t *) calloc (edges + 1, sizeof (size_t));
    self->dependents_at = (size_t *) calloc (size + 2, sizeof (size_t));
    self->stack = (size_t *) calloc (size + 1, sizeof (size_t));
    if (!self->status || !self->unmet || !self->dependents || !self->dependents_at || !self->stack) {
        qn_dag_destroy (&self);
        return NULL;
    }
    //  Reverse edges in two passes: count, then place.
    for (size_t i = 0; i < size; i++) {
        const qn_task_t *task = qn_workflow_task (wf, i);
        for (size_t d = 0; d < task->needs_count; d++)
            self->dependents_at [task->need_index [d] + 1]++;
    }
    for (size_t i = 0; i < size; i++)
        self->dependents_at [i + 1] += self->dependents_at [i];
    size_t *fill = self->stack;
    for (size_t i = 0; i < size; i++)
        fill [i] = self->dependents_at [i];
    for (size_t i = 0; i < size; i++) {
        const qn_task_t *task = qn_workflow_task (wf, i);
        for (size_t d = 0; d < task->needs_count; d++)
            self->dependents [fill [task->need_index [d]]++] = i;
        self->unmet [i] = task->needs_count;
        self->status [i] = QANAT__TASK_STATUS__TASK_PENDING;
        if (self->unmet [i] == 0)
            s_candidate (self, i);
    }
    self->count [QANAT__TASK_STATUS__TASK_PENDING] = size;
    return self;
}

void
qn_dag_destroy (qn_dag_t **self_p)
{
    assert (self_p);
    qn_dag_t *self = *self_p;
    if (self) {
        free (self->status);
        free (self->unmet);
        free (self->dependents);
        free (self->dependents_at);
        free (self->candidates);
        free (self->stack);
        free (self);
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
    assert ((int) status >= 0 && (int) status < STATUS_COUNT);
    Qanat__TaskStatus old = self->status [index];
    if (old == status)
        return;
    self->status [index] = status;
    self->count [old]--;
    self->count [status]++;
    //  Success releases dependents; leaving success (a reload, a test)
    //  takes it back.
    bool was = old == QANAT__TASK_STATUS__TASK_SUCCEEDED;
    bool is = status == QANAT__TASK_STATUS__TASK_SUCCEEDED;
    if (was != is)
        for (size_t e = self->dependents_at [index]; e < self->dependents_at [index + 1]; e++) {
            size_t dependent = self->dependents [e];
            if (is) {
                if (--self->unmet [dependent] == 0)
                    s_candidate (self, dependent);
            }
            else
                self->unmet [dependent]++;
        }
    if (status == QANAT__TASK_STATUS__TASK_PENDING && self->unmet [index] == 0)
        s_candidate (self, index);
}

size_t
qn_dag_promote (qn_dag_t *self, size_t *ready)
{
    size_t count = 0;
    size_t total = self->rescan? self->size: self->candidate_count;
    for (size_t c = 0; c < total; c++) {
        size_t i = self->rescan? c: self->candidates [c];
        if (self->status [i] == QANAT__TASK_STATUS__TASK_PENDING && self->unmet [i] == 0) {
            qn_dag_set_status (self, i, QANAT__TASK_STATUS__TASK_QUEUED);
            ready [count++] = i;
        }
    }
    self->candidate_count = 0;
    self->rescan = false;
    return count;
}

static bool
s_waiting (Qanat__TaskStatus status)
{
    return status == QANAT__TASK_STATUS__TASK_PENDING
        || status == QANAT__TASK_STATUS__TASK_QUEUED;
}

//  Depth-first over the reverse edges.  A task reached twice is skipped
//  once: the second time it is no longer waiting.
size_t
qn_dag_skip_dependents (qn_dag_t *self, size_t index, size_t *changed)
{
    assert (index < self->size);
    size_t count = 0, depth = 0;
    self->stack [depth++] = index;
    while (depth) {
        size_t from = self->stack [--depth];
        for (size_t e = self->dependents_at [from]; e < self->dependents_at [from + 1]; e++) {
            size_t dependent = self->dependents [e];
            if (!s_waiting (self->status [dependent]))
                continue;
            qn_dag_set_status (self, dependent, QANAT__TASK_STATUS__TASK_SKIPPED);
            changed [count++] = dependent;
            self->stack [depth++] = dependent;
        }
    }
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
    return self->count [QANAT__TASK_STATUS__TASK_SUCCEEDED]
         + self->count [QANAT__TASK_STATUS__TASK_FAILED]
         + self->count [QANAT__TASK_STATUS__TASK_SKIPPED]
         + self->count [QANAT__TASK_STATUS__TASK_CANCELED] == self->size;
}

Qanat__RunStatus
qn_dag_run_status (qn_dag_t *self, bool canceled, bool warnings)
{
    if (!qn_dag_finished (self)) {
        size_t waiting = self->count [QANAT__TASK_STATUS__TASK_PENDING]
                       + self->count [QANAT__TASK_STATUS__TASK_QUEUED];
        return waiting == self->size? QANAT__RUN_STATUS__RUN_QUEUED: QANAT__RUN_STATUS__RUN_RUNNING;
    }
    if (canceled)
        return QANAT__RUN_STATUS__RUN_CANCELED;
    if (self->count [QANAT__TASK_STATUS__TASK_FAILED])
        return QANAT__RUN_STATUS__RUN_FAILED;
    if (self->count [QANAT__TASK_STATUS__TASK_CANCELED])
        return QANAT__RUN_STATUS__RUN_CANCELED;
    if (self->count [QANAT__TASK_STATUS__TASK_SKIPPED])
        return QANAT__RUN_STATUS__RUN_FAILED;
    return warnings? QANAT__RUN_STATUS__RUN_SUCCEEDED_WITH_WARNINGS
                   : QANAT__RUN_STATUS__RUN_SUCCEEDED;
}
