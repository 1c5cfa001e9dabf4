/*  qn_backend - the ops table every execution backend implements.

    The agent engine (qn_agent) speaks to the coordinator; a backend runs
    attempts somewhere (a local process, a Slurm job, a pod...).  Each
    backend is one ops table plus private state, driven from the agent's
    zloop: a backend must never block the loop, so it registers its own
    pollers and timers on the loop it is given.

    A backend reports what happens to an attempt through the callbacks in
    qn_backend_events_t, in this order per attempt: started at most once
    (when the engine accepted the attempt: a process forked, a Slurm job
    id returned by sbatch, a Kubernetes Job created), then any number of
    log, metric and cursor calls in the order they happened, then
    finished once.  An attempt the engine refused may finish without
    having started (END_START_FAILED).  After finished the backend forgets
    the attempt.  Callbacks must not call back into the backend.

    Re-attaching.  A backend whose work outlives the agent (a Slurm job, a
    Kubernetes Job) sets QN_BACKEND_CAN_REATTACH.  The agent keeps each
    attempt's engine job id (from started) and the backend's latest
    cursor in its spool, in the same durable commit as the events before
    them, so after a crash it can hand both back to reattach: the backend
    then resumes exactly after the last event the spool holds, with no
    line lost or repeated.
*/
#ifndef QN_BACKEND_H_INCLUDED
#define QN_BACKEND_H_INCLUDED

#include <czmq.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include "qanat.pb-c.h"
#include "qn_sweeper.h"

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

//  Capability flags (qn_backend_ops_t.flags)
#define QN_BACKEND_CAN_REATTACH   1u    //  work survives an agent restart
#define QN_BACKEND_REMOTE         2u    //  work runs off this host

#define QN_BACKEND_JOB_ID_MAX     127   //  engine job ids longer are refused
#define QN_BACKEND_CURSOR_MAX     127

typedef struct {
    //  pid: the local process (group) id, 0 when the work is not a local
    //  process.  engine_job_id: the engine's own id ("" for the local
    //  backend, whose id is the pid); at most QN_BACKEND_JOB_ID_MAX bytes.
    void (*started) (void *arg, const qn_attempt_key_t *key, int64_t pid,
                     const char *host, const char *workdir, const char *engine_job_id);
    //  One or more whole lines joined by '\n' (no trailing newline), or one
    //  piece of a long line (partial, or the last piece after partial ones,
    //  alone)
    void (*log) (void *arg, const qn_attempt_key_t *key, Qanat__Stream stream,
                 const void *data, size_t size, bool partial, int64_t time_us);
    void (*metric) (void *arg, const qn_attempt_key_t *key, const char *name,
                    double value, int64_t step, bool has_step, int64_t time_us);
    //  reason is "" for a plain successful exit; kind says how it ended
    //  (END_START_FAILED also for a process whose exec failed)
    void (*finished) (void *arg, const qn_attempt_key_t *key, int exit_code,
                      int signal, const char *stack_trace, const char *reason,
                      Qanat__EndKind kind);
    //  Where the backend stands in the attempt's output, as a short opaque
    //  text (a byte offset, a timestamp), reported after the log calls it
    //  covers.  Only backends with QN_BACKEND_CAN_REATTACH call it; the
    //  agent stores the latest one with the events and gives it back to
    //  reattach.
    void (*cursor) (void *arg, const qn_attempt_key_t *key, const char *cursor);
} qn_backend_events_t;

typedef struct {
    const char *data_dir;       //  the agent's data directory
    const char *host;           //  reported in Started
    int kill_grace_ms;          //  SIGTERM -> SIGKILL; 0 = default
    const char *agent_name;     //  for labels on engine objects
    //  The agent's --backend-option values, "backend.key=value", NULL-
    //  terminated (may be NULL).  A backend reads the ones with its own
    //  name as prefix (qn_backend_option) and refuses unknown keys of its
    //  own prefix in create, so that a typo is an error, not a default.
    char **options;
    //  Finished attempts whose directories a backend keeps across agent
    //  restarts (the local backend sweeps older ones at start)...
    size_t keep_workdirs;
    //  ...handing them to the agent's sweeper (NULL: removed at once)
    qn_sweeper_t *sweeper;
} qn_backend_config_t;

typedef struct {
    const char *name;           //  as offered in Register.backends
    unsigned flags;             //  QN_BACKEND_* capabilities

    //  Why this instance cannot stage file inputs or collect outputs (its
    //  work directories are on no filesystem the agent reads and writes:
    //  a pod without a shared work volume), or NULL when it can.  A NULL
    //  op = it can.
    const char *(*no_files) (void *self);

    //  Where the agent should stage inputs for this backend: a directory
    //  on the filesystem of its work directories, so that the staged
    //  inputs become a work directory by a rename.  NULL (or a NULL op)
    //  = the agent's own stage directory.
    const char *(*stage_dir) (void *self);

    //  Creates the backend's state on loop.  events and arg must outlive
    //  it.  NULL on failure.
    void *(*create) (zloop_t *loop, const qn_backend_config_t *config,
                     const qn_backend_events_t *events, void *arg);

    //  Starts an attempt.  assign->attempt is not NULL; assign->backend
    //  names this backend and assign->backend_options holds the task's
    //  options for it (check them: a bad one is a -1 with its message).
    //  Returns 0 when the attempt is under way: started follows (perhaps
    //  before this returns, perhaps from the loop later), or finished with
    //  END_START_FAILED if the engine refuses it.  Returns -1 with a
    //  message in error and no callback made when it cannot start at all.
    //  Never blocks on the engine.
    int (*start) (void *self, const Qanat__Assign *assign, char *error, size_t error_size);

    //  Takes back an attempt an earlier agent process started: the engine
    //  job id it reported in started and the latest cursor ("" if none).
    //  assign is the attempt's assignment as far as the agent knows it
    //  after a restart (attempt key, task name, timeout, redact values;
    //  argv and env may be empty).  Returns 0 when the backend follows the
    //  attempt again (it then reports logs after the cursor and finished;
    //  started is not called again), -1 when it cannot, with the reason
    //  in error.  NULL for backends without QN_BACKEND_CAN_REATTACH.
    int (*reattach) (void *self, const Qanat__Assign *assign, const char *engine_job_id,
                     const char *cursor, char *error, size_t error_size);

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
    //  END_LOST.  Blocks, at most about grace_ms.  Remote backends cancel
    //  their engine jobs here (scancel, Job deletion) the same way.
    void (*shutdown) (void *self, int grace_ms, const char *reason);

    //  Destroys the state and nulls the pointer.  The local backend kills
    //  what still runs; a remote backend only lets go (its jobs are
    //  canceled by shutdown, or re-attached by the next agent).
    void (*destroy) (void **self_p);
} qn_backend_ops_t;

//  Looks up option "<backend>.<key>" in config->options.  NULL if absent.
const char *
    qn_backend_option (const qn_backend_config_t *config, const char *backend,
                       const char *key);

//  Checks that every option with prefix "<backend>." has a key in known
//  (NULL-terminated).  -1 with "unknown option backend.key (known: ...)"
//  in error otherwise.
int
    qn_backend_options_check (const qn_backend_config_t *config, const char *backend,
                              const char *const *known, char *error, size_t error_size);

//  The attempt in list (a zlistx of a backend's own attempt structs, each
//  holding its qn_attempt_key_t at key_offset) whose key is key, or NULL.
void *
    qn_backend_find_attempt (zlistx_t *list, size_t key_offset, const qn_attempt_key_t *key);

//  A deep copy of an assignment that outlives its message (free with
//  qanat__assign__free_unpacked), or NULL.
Qanat__Assign *
    qn_backend_assign_copy (const Qanat__Assign *assign);

//  The value of the task's backend option key (Assign.backend_options),
//  the first one if repeated, or NULL.
const char *
    qn_backend_task_option (const Qanat__Assign *assign, const char *key);

//  Values.  The agent gives a task that returns values $QANAT_VALUES, a
//  file on its own disk.  A backend whose work runs where that path
//  does not exist (a Slurm node, a pod) points $QANAT_VALUES at "values"
//  beside the work directory instead (dirname (workdir)/values, on the
//  filesystem it shares with the agent): the agent reads it from there
//  when it exists, also after a re-attach.
#define QN_BACKEND_VALUES_NAME  "values"

//  Creates the attempt's work directory, which must not exist: the stage
//  directory the agent filled with its inputs ($QANAT_STAGE_DIR in the
//  assignment's environment) is moved there (copied, then removed, when
//  workdir is on another filesystem), else an empty one is made.  -1
//  with the reason in error.
int
    qn_backend_make_workdir (const Qanat__Assign *assign, const char *workdir, char *error,
                             size_t error_size);

//  ---------------------------------------------------------------------
//  What backends share

//  A system log line (STREAM_SYSTEM) of an attempt, printf-style; cut at
//  512 bytes.
void
    qn_backend_system_log (const qn_backend_events_t *events, void *arg,
                           const qn_attempt_key_t *key, const char *format, ...)
    __attribute__ ((format (printf, 4, 5)));
void
    qn_backend_system_logv (const qn_backend_events_t *events, void *arg,
                            const qn_attempt_key_t *key, const char *format, va_list args);

//  "SIGKILL", or "signal 70" for a number without a name.
void
    qn_backend_signal_name (int sig, char *buffer, size_t size);

//  Keeps [A-Za-z0-9_.-] of a task name, at most max bytes and never
//  empty, so that a hostile name cannot leave a directory it names.
void
    qn_backend_safe_name (const char *name, size_t max, char *buffer, size_t size);


//  Where an attempt's metrics file reader stands
typedef struct {
    uint64_t line;              //  line number, for messages
    bool overlong;              //  inside a line longer than a chunk
} qn_backend_metrics_t;

//  One line (or piece) of an attempt's $QANAT_METRICS file: a metric, or a
//  system log line saying why it was ignored.  Blank lines are skipped.
void
    qn_backend_metrics_line (qn_backend_metrics_t *state, const char *data, size_t size,
                             bool partial, const qn_backend_events_t *events, void *arg,
                             const qn_attempt_key_t *key);

//  The backends this agent build offers, NULL-terminated
extern const qn_backend_ops_t *qn_backends [];

//  The backend named name, or NULL
const qn_backend_ops_t *
    qn_backend_find (const char *name);

//  The local fork/exec backend
extern const qn_backend_ops_t qn_backend_local;
//  Slurm jobs through sbatch/squeue/scontrol/scancel
extern const qn_backend_ops_t qn_backend_slurm;
//  Kubernetes batch/v1 Jobs through the API server (libcurl)
extern const qn_backend_ops_t qn_backend_kube;

#ifdef __cplusplus
}
#endif
#endif
