/*  qn_api_backup - `qanat admin backup DIR` on the engine's side: starts
    a qn_backup (the copy runs on its own thread, the loop goes on) and
    answers the request when the copy is verified, from a timer turn.  One
    backup at a time.

    One of the files of the qn_coordinator class: it shares the engine's
    records (qn_engine.h), so the include checker counts it with
    qn_coordinator.
*/
#ifndef QN_API_BACKUP_H_INCLUDED
#define QN_API_BACKUP_H_INCLUDED

#include "qn_api.h"

typedef struct _qn_api_backup_t qn_api_backup_t;

//  The Backup request (admin): a path on the coordinator's host.
void
    qn_api_backup_start (qn_api_call_t *call, Qanat__Request *request);

//  From the timer's turn: replies to a finished backup, if any.
void
    qn_api_backup_poll (qn_coordinator_t *self);

//  Waits for a running copy (the store must outlive it), then frees.
void
    qn_api_backup_destroy (qn_api_backup_t **self_p);

#endif
