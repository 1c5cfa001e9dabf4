/*  qn_backend - the ops table every execution backend implements.

    The agent engine (qn_agent) speaks to the coordinator; a backend runs
    attempts somewhere (a local process, a Slurm job, a pod...).  Each
    backend is one ops table plus private state, driven from the agent's
    zloop: a backend must never block the loop, so it registers its own
    pollers and timers on the loop it is given.

    A backend reports what happens to an attempt through the callbacks in
    qn_backend_events_t, in this order per attempt: started once, then any
    number of log and metric calls in the order they happened, then
    finished once.  After finished the backend forgets the attempt.
    Callbacks must not call back into the backend.
*/
#ifndef QN_BACKEND_H_INCLUDED
#define QN_BACKEND_H_INCLUDED

#include <czmq.h>
#include <stdbool.h>
#include <stdint.h>
#include "qanat.pb-c.h"

#ifdef __cplusplus
extern "C" {
#endif

//  Grace between SIGTERM and SIGKILL for timeouts and cancels
#ifndef QN_BACKEND_KILL_GRACE_MS
#define QN_BACKEND_KILL_GRACE_MS  5000
#endif

typedef struct {
    uint64_t run_id;
    uint32_t task_index;
    uint32_t attempt;
} qn_attempt_key_t;

typedef struct {
    void (*started) (void *arg, const qn_attempt_key_t *key, int64_t pid,
                     const char *host, const char *workdir);
    //  One line or piece of a line, without its newline
    void (*log) (void *arg, const qn_attempt_key_t *key, Qanat__Stream stream,
                 const void *data, size_t size, bool partial, int64_t time_us);
    void (*metric) (void *arg, const qn_attempt_key_t *key, const char *name,
                    double value, int64_t step, bool has_step, int64_t time_us);
    //  reason is "" for a plain successful exit; kind says how it ended
    //  (END_START_FAILED also for a process whose exec failed)
    void (*finished) (void *arg, const qn_attempt_key_t *key, int exit_code,
                      int signal, const char *stack_trace, const char *reason,
                      Qanat__EndKind kind);
} qn_backend_events_t;

typedef struct {
    const char *data_dir;       //  the agent's data directory
    const char *host;           //  reported in Started
    int kill_grace_ms;          //  SIGTERM -> SIGKILL; 0 = default
} qn_backend_config_t;

typedef struct {
    const char *name;           //  as offered in Register.backends

    //  Creates the backend's state on loop.  events and arg must outlive
    //  it.  NULL on failure.
    void *(*create) (zloop_t *loop, const qn_backend_config_t *config,
                     const qn_backend_events_t *events, void *arg);

    //  Starts an attempt.  assign->attempt is not NULL.  On success the
    //  started callback has been called before this returns.  On failure
    //  returns -1 with a message in error and no callback made.
    int (*start) (void *self, const Qanat__Assign *assign, char *error, size_t error_size);

    //  Asks the attempt to stop (SIGTERM, SIGKILL after the grace); it
    //  finishes later with this reason and kind (END_CANCELED for a
    //  Cancel, END_LOST when the agent gives up its work).  A timeout
    //  already under way keeps its own.  Returns 0, or -1 if the backend
    //  does not know the attempt.
    int (*stop) (void *self, const qn_attempt_key_t *key, const char *reason,
                 Qanat__EndKind kind);

    //  Stops (true) or resumes (false) reading the attempts' output: the
    //  agent's back-pressure when too many events wait for acknowledgement.
    void (*set_paused) (void *self, bool paused);

    //  Number of attempts that have not finished yet.
    size_t (*running) (void *self);

    //  Kills every attempt, waiting up to grace_ms for them to go after
    //  SIGTERM, and reports each as finished with reason and kind
    //  END_LOST.  Blocks.
    void (*shutdown) (void *self, int grace_ms, const char *reason);

    //  Destroys the state (killing what still runs) and nulls the pointer.
    void (*destroy) (void **self_p);
} qn_backend_ops_t;

//  The local fork/exec backend
extern const qn_backend_ops_t qn_backend_local;

#ifdef __cplusplus
}
#endif
#endif
