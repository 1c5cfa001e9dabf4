/*  qn_retention - what the engine deletes on its own: finished runs past a
    workflow's keep_runs (with their tasks, logs, metrics, and the blobs no
    record references any more), and S3 objects nobody has referenced for
    s3_delete_after_s, deleted by qn_s3gc off the loop.

    Each call runs on the engine's loop, inside a turn, and writes in the
    turn's transaction; the turn's commit makes it so.

    One of the files of the qn_coordinator class: it shares the engine's
    records (qn_engine.h), so the include checker counts it with
    qn_coordinator.
*/
#ifndef QN_RETENTION_H_INCLUDED
#define QN_RETENTION_H_INCLUDED

#include "qanat.h"
#include "qn_coordinator.h"

//  Keeps the newest keep finished runs of workflow; older ones go.
void
    qn_retention_retain (qn_coordinator_t *self, const char *workflow, uint32_t keep);

//  Notes that workflow is to keep its newest keep runs, in *due_p (a list
//  made on first use)...
void
    qn_retention_due (zlistx_t **due_p, const char *workflow, uint32_t keep);

//  ...then trims each workflow noted and destroys the list.  Does nothing
//  when *due_p is NULL.
void
    qn_retention_apply (qn_coordinator_t *self, zlistx_t **due_p);

//  One pass of S3 collection: hands the objects marked on an earlier turn
//  to qn_s3gc, and marks the next ones.
void
    qn_retention_s3_collect (qn_coordinator_t *self);

//  qn_s3gc's report of one deletion (arg is the engine); ends a turn.
void
    qn_retention_on_s3_deleted (void *arg, const char *id, int status, const char *error);

#endif
