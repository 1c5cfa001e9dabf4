/*  qn_notify - notifications of runs' endings: the durable outbox.

    When a run ends in a state one of its workflow's `notify:` channels
    lists (or the coordinator's default, --notify-file, for a workflow
    without one), one compact NotifEntry per channel is written in the
    same commit as the run's end: nothing is sent before the ending is
    stored, and a stored ending always has its notifications.  The
    message is made from the stored run when the entry is sent.  The
    loop's timer, and every batch of results, picks due pending entries,
    resolves their secrets (checked against the run's owner and workflow
    as env secrets are), and hands them to qn_notify_worker, which sends
    them on its own thread.  Each result comes back as a message, frees
    its slot at once, and is recorded with the others at the timer's next
    turn (one commit a quarter second): delivered, or retried with
    exponential backoff (1 s doubling, at most 5 minutes apart) until
    --notify-give-up has passed since the run ended, then failed with the
    last error.  Delivered at least once: an entry whose result was not
    stored before a crash goes out again, with the same Idempotency-Key.

    One of the files of the qn_coordinator class: it shares the engine's
    records (qn_engine.h), so the include checker counts it with
    qn_coordinator.
*/
#ifndef QN_NOTIFY_H_INCLUDED
#define QN_NOTIFY_H_INCLUDED

#include "qn_engine.h"

//  Retries back off from 1 s, doubling, to at most this
#define QN_NOTIFY_BACKOFF_MAX_S     300
//  Deliveries in flight at once
#define QN_NOTIFY_IN_FLIGHT_MAX     32

typedef struct _qn_notify_t qn_notify_t;

//  Starts the sender on the engine's loop (a worker thread and its pipe).
//  NULL when it cannot: notifications then stay pending in the store.
qn_notify_t *
    qn_notify_new (qn_coordinator_t *engine);

void
    qn_notify_destroy (qn_notify_t **self_p);

//  A run that has ended is being written: writes its notifications in
//  the same (open) transaction, each once (an entry already stored, from
//  an earlier commit of the same end, is left as it is).
void
    qn_notify_run_ended (qn_coordinator_t *self, run_t *run);
//  The same for a run that is not in memory (one that could not be
//  reloaded): wf is its workflow when it could be read, else NULL (the
//  coordinator's default notify: applies)
void
    qn_notify_ended (qn_coordinator_t *self, Qanat__RunInfo *info, qn_workflow_t *wf);

//  The timer's turn: sends what is due.
void
    qn_notify_tick (qn_coordinator_t *self);

//  The signature header of body at time t with key:
//  "t=<t>,v1=<hex HMAC-SHA256(key, "<t>.<body>")>".  buf needs 96 bytes.
const char *
    qn_notify_signature (const char *key, int64_t t, const char *body, char *buf);

//  Why a run of wf by owner (of role) may not have a secret its notify:
//  names, or NULL (malloc'd; names the secret, never its value).
char *
    qn_notify_secrets_refusal (qn_coordinator_t *self, qn_workflow_t *wf, const char *owner,
                               const char *role);

//  ListNotifications
void
    qn_notify_api_list (qn_api_call_t *call, Qanat__Request *request);

#endif
