/*  qn_attempt - one attempt the agent holds: its key, where it is in its
    life, the backend that runs it, its secrets, and the bookkeeping of
    its events (kept by qn_outbox).

    Life of an attempt (qn_attempt_state_t), each step with the ones
    that may follow it:

        NEW           -> RUNNING, REATTACHING, ENDED
        REATTACHING   -> RUNNING, ENDED
        RUNNING       -> STAGING, COLLECTING, ENDED
        STAGING       -> RUNNING, ENDED
        COLLECTING    -> ENDED
        ENDED         -> SPOOLED
        SPOOLED       -> DONE

    - NEW: just created, from an Assign that is being checked, or from
      the spool of an earlier agent that is being taken over.
    - REATTACHING: taken over from the spool; its engine job outlived the
      earlier agent and is taken back after the Welcome.
    - RUNNING: accepted and handed (or about to be handed) to its backend.
    - STAGING: its inputs are on their way; the backend has not started it.
    - COLLECTING: it exited fine; its outputs are being stored before its
      Finished.
    - ENDED: its Finished is stamped (the backend is done with it, or
      never had it: a refusal, a start that failed, an attempt lost in a
      restart).
    - SPOOLED: its Finished is committed to the spool.
    - DONE: ...and every event is acknowledged: it leaves the spool (and
      the agent) at the next commit.

    REATTACHING, RUNNING, STAGING and COLLECTING count as running: they
    hold a slot.  A step the list does not show is refused.  ENDED,
    SPOOLED and DONE come last in the enum, in that order.

    The record's fields are open: the agent engine and qn_outbox read and
    write them.  The seq fields belong to qn_outbox.
*/
#ifndef QN_ATTEMPT_H_INCLUDED
#define QN_ATTEMPT_H_INCLUDED

#include <czmq.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "qanat.pb-c.h"
#include "qn_backend.h"
#include "qn_redact.h"
#include "qn_spool.h"

#ifdef __cplusplus
extern "C" {
#endif

#define QN_ATTEMPT_STREAMS      3       //  stdout, stderr, system

typedef enum {
    QN_ATTEMPT_NEW,
    QN_ATTEMPT_REATTACHING,
    QN_ATTEMPT_RUNNING,
    QN_ATTEMPT_STAGING,
    QN_ATTEMPT_COLLECTING,
    QN_ATTEMPT_ENDED,
    QN_ATTEMPT_SPOOLED,
    QN_ATTEMPT_DONE
} qn_attempt_state_t;

typedef struct {
    qn_attempt_key_t key;
    qn_attempt_state_t state;
    char task_name [QN_SPOOL_TASK_NAME_MAX + 1];
    int64_t pid;
    uint64_t start_time;

    //  Its events, kept by qn_outbox
    uint64_t next_seq;          //  seq the next event gets
    uint64_t committed;         //  every event up to here is in the spool
    uint64_t acked;             //  every event up to here is acknowledged
    uint64_t spool_acked;       //  acknowledgements applied to the spool
    uint64_t sent;              //  sent on the current registration
    size_t pending;             //  events not in the spool yet
    //  These three are not steps of its life: metadata can change (pid,
    //  cursor) at any point of it, and a commit can refuse an event of it
    //  whatever its state.
    bool meta_dirty;            //  metadata to write at the next commit
    bool blocked;               //  during a commit: an event did not fit
    uint64_t batch_seq;         //  during a commit: last seq put

    qn_redact_t *redactor;      //  its secrets, or NULL
    qn_redact_carry_t carry [QN_ATTEMPT_STREAMS];
    size_t backend;             //  index into the agent's backends
    const char *backend_name;   //  its ops' name
    Qanat__Assign *assign;      //  a copy, when it has inputs or outputs
    char workdir [4096];        //  from started: where outputs are collected
    char engine_job_id [QN_BACKEND_JOB_ID_MAX + 1];
    char cursor [QN_BACKEND_CURSOR_MAX + 1];
    char *engine_url;           //  from link, sent with started; NULL = none
} qn_attempt_t;

//  A table of attempts, "run/task/attempt" -> qn_attempt_t, which owns
//  them (deleting one destroys it).  NULL when out of memory.
zhashx_t *
    qn_attempt_table_new (void);

//  Creates an attempt (state NEW, next seq 1, metadata to write) in the
//  table.  NULL when out of memory or when the key is there already.
qn_attempt_t *
    qn_attempt_create (zhashx_t *table, const qn_attempt_key_t *key);

//  The attempt of that key, or NULL.
qn_attempt_t *
    qn_attempt_lookup (zhashx_t *table, const qn_attempt_key_t *key);

//  How many of the table's attempts are running (hold a slot).
size_t
    qn_attempt_table_running (zhashx_t *table);

//  "run/task/attempt", the table's key.
void
    qn_attempt_key_string (const qn_attempt_key_t *key, char *buffer, size_t size);

//  Fills an AttemptRef with the key.
void
    qn_attempt_ref (const qn_attempt_key_t *key, Qanat__AttemptRef *ref);

//  Moves the attempt to state to.  Returns 0, or -1 when the life of an
//  attempt has no such step (the state stays).
int
    qn_attempt_advance (qn_attempt_t *self, qn_attempt_state_t to);

//  True in the states that hold a slot.
bool
    qn_attempt_running (const qn_attempt_t *self);

//  The state's name, for messages.
const char *
    qn_attempt_state_name (qn_attempt_state_t state);

//  The attempt's spool metadata, with that next seq and finished flag.
void
    qn_attempt_meta (const qn_attempt_t *self, uint64_t next_seq, bool finished,
                     qn_spool_meta_t *meta);

//  The process's start time in clock ticks since boot, field 22 of
//  /proc/PID/stat; 0 when it cannot be read.  With the pid it names one
//  process for good, however pids are reused.
uint64_t
    qn_attempt_process_start_time (int64_t pid);

//  Kills what is left of the process group of an attempt in the spool of
//  an earlier agent (see qn_attempt.c).
void
    qn_attempt_kill_leftover (const qn_spool_meta_t *meta);

//  "exit", "timeout", "canceled", "lost", "start failed"
const char *
    qn_attempt_end_kind_name (Qanat__EndKind kind);

#ifdef __cplusplus
}
#endif
#endif
