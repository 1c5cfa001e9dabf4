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

    Submit, then record?  A backend of a remote engine (Lambda,
    Databricks, Ray, Airflow) reports started from start itself, with an
    engine job id it knows before submitting (its idempotent key, or
    what finds the invocation's log), and sends nothing before start
    returns; the agent commits that record to the spool right then.  An
    agent killed at any point after start has the id: reattach asks the
    engine, and submits again under the same key when the engine has no
    such work, so the work never starts twice and is never lost.

    The front end.  What every backend does around its engine is written
    once, in qn_backend.c, and a backend file keeps only its engine: its
    state embeds a qn_backend_front_t as first member (the attempt
    registry: every attempt not finished yet, in start order; the events
    and the loop; the pause flag), and its attempts embed a
    qn_backend_attempt_t as first member (the key, the first stop reason,
    the timeout, the stack-trace ring of the last stderr lines, the line
    buffers of stdout, stderr and the metrics file).  The front end checks
    a start (qn_backend_front_check), turns bytes of output into log,
    metric and cursor events in the order above (qn_backend_stream_*),
    reports finished with the stack trace of a failure
    (qn_backend_attempt_finished), and implements the ops stop,
    set_paused, running and shutdown for every engine
    (qn_backend_front_stop...), through the engine's hooks in
    qn_backend_engine_t.  A backend's ops table names them directly.
*/
#ifndef QN_BACKEND_H_INCLUDED
#define QN_BACKEND_H_INCLUDED

#include <czmq.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include "qanat.pb-c.h"
#include "qn_linebuf.h"
#include "qn_stacktrace.h"
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

//  What the machine has and each attempt gets (qn_resources.h)
typedef struct _qn_resources_t qn_resources_t;

//  Capability flags (qn_backend_ops_t.flags)
#define QN_BACKEND_CAN_REATTACH   1u    //  work survives an agent restart
#define QN_BACKEND_REMOTE         2u    //  work runs off this host
#define QN_BACKEND_VALUE_OUTPUTS  4u    //  with no_files, value outputs still come
                                        //  back (the backend writes the values file)

#define QN_BACKEND_JOB_ID_MAX     127   //  engine job ids longer are refused
#define QN_BACKEND_CURSOR_MAX     127
#define QN_BACKEND_URL_MAX        1024

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
    //  The engine's web page for the attempt (Databricks run page, Ray
    //  dashboard), an http(s) URL of at most QN_BACKEND_URL_MAX bytes.
    //  Called before started, which carries it to the coordinator.
    void (*link) (void *arg, const qn_attempt_key_t *key, const char *url);
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
    //  The machine's CPUs, memory and GPUs, for the local backend to hand
    //  out and confine (NULL: attempts get no GPUs named, no cgroup)
    qn_resources_t *resources;
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


//  ---------------------------------------------------------------------
//  The front end (see the top of this file)

typedef struct _qn_backend_front_t qn_backend_front_t;
typedef struct _qn_backend_attempt_t qn_backend_attempt_t;

//  What the front end asks of an engine, about one attempt or all
typedef struct {
    const char *name;           //  for the agent's own log
    //  Frees an attempt of the engine (which calls qn_backend_attempt_fini
    //  on its base).  The attempt is no longer in the list.
    void (*destroy) (qn_backend_attempt_t *attempt);
    //  The op stop for a known attempt (reason never NULL): the engine
    //  ends its work; qn_backend_attempt_stopping keeps the first reason.
    void (*stop) (qn_backend_attempt_t *attempt, const char *reason, Qanat__EndKind kind);
    //  Stops or resumes reading one attempt's output (set_paused, after
    //  the front's paused flag changed).  NULL: the flag is enough (the
    //  engine's timers look at it).
    void (*pause) (qn_backend_attempt_t *attempt, bool paused);
    //  Shutdown, first: ends the engine's work for every attempt in the
    //  list (signals, scancel, Job deletion), blocking at most about
    //  grace_ms.  NULL: nothing to end.
    void (*end_all) (qn_backend_front_t *front, int grace_ms, const char *reason);
    //  Shutdown, then for each attempt, out of the list: takes the output
    //  already there and reports finished with reason and END_LOST.
    void (*lost) (qn_backend_attempt_t *attempt, const char *reason);
    //  Shutdown, last, with the list empty: stops the engine's timers.
    //  NULL: none.
    void (*idle) (qn_backend_front_t *front);
} qn_backend_engine_t;

struct _qn_backend_front_t {
    const qn_backend_engine_t *engine;
    zloop_t *loop;
    const qn_backend_events_t *events;
    void *arg;
    char *host;                 //  config->host, reported in started
    zlistx_t *attempts;         //  qn_backend_attempt_t *, not finished, in start order
    bool paused;                //  set_paused: read no output
    //  qn_backend_front_ticking's timers (-1 = none) and what they run
    int timer_id;
    int soon_id;
    void (*tick) (qn_backend_attempt_t *attempt, int64_t now);
};

//  One output of an attempt cut into lines: stdout or stderr (log
//  events) or the metrics file (metric events).  Read from a file at an
//  offset (qn_backend_stream_open, _read), or fed what a pipe gave.
typedef struct {
    qn_linebuf_t *buf;          //  NULL: the attempt has no such stream
    int fd;                     //  the file, -1 if none
    int64_t offset;             //  bytes read from fd
    Qanat__Stream stream;       //  for log events
    bool traced;                //  its lines go to the stack-trace ring too
    size_t pack_max;            //  whole lines packed into one log event up to
                                //  this many bytes; 0 = one event a line
    bool in_long;               //  inside a long line (pieces sent)
    bool metrics;               //  the metrics file: metric events
    qn_backend_metrics_t reader;    //  ...where its reader stands
} qn_backend_stream_t;

struct _qn_backend_attempt_t {
    qn_backend_front_t *front;
    void *handle;               //  in front->attempts, NULL when not in it
    qn_attempt_key_t key;
    qn_stacktrace_t *ring;      //  the last lines of traced streams
    qn_backend_stream_t out;    //  with QN_BACKEND_ATTEMPT_STREAMS
    qn_backend_stream_t err;
    qn_backend_stream_t metrics;
    uint32_t timeout_s;         //  the assignment's
    int64_t deadline_ms;        //  zclock_mono of the timeout; 0 = none (yet)
    char *stop_reason;          //  our stop or timeout, the first one wins
    Qanat__EndKind stop_kind;   //  goes with stop_reason
    char cursor [QN_BACKEND_CURSOR_MAX + 1];    //  the last one reported
};

//  Sets up front for an engine (loop, events and arg as given to create,
//  the host from config).  -1 when out of memory (fini cleans up).
int
    qn_backend_front_init (qn_backend_front_t *front, const qn_backend_engine_t *engine,
                           zloop_t *loop, const qn_backend_config_t *config,
                           const qn_backend_events_t *events, void *arg);

//  Destroys the attempts left (engine->destroy, no event) and the list.
void
    qn_backend_front_fini (qn_backend_front_t *front);

//  The attempt with this key, or NULL.
qn_backend_attempt_t *
    qn_backend_front_find (qn_backend_front_t *front, const qn_attempt_key_t *key);

//  What front_check checks besides the key
#define QN_BACKEND_CHECK_COMMAND  1u    //  argv: not empty, no argument missing

//  Checks an assignment before start: fills key; -1 with the message in
//  error when the attempt is already running (or, with CHECK_COMMAND,
//  its command is empty or an argument missing).
int
    qn_backend_front_check (qn_backend_front_t *front, const Qanat__Assign *assign,
                            unsigned checks, qn_attempt_key_t *key, char *error,
                            size_t error_size);

//  Puts an attempt at the end of the list.
void
    qn_backend_front_add (qn_backend_front_t *front, qn_backend_attempt_t *attempt);

//  Takes the attempt out of the list and destroys it (engine->destroy).
void
    qn_backend_front_remove (qn_backend_front_t *front, qn_backend_attempt_t *attempt);

//  A copy of the list (free it), for a timer that walks the attempts
//  while callbacks may change the list; NULL with count 0 when empty (or
//  out of memory: try again at the next tick).
qn_backend_attempt_t **
    qn_backend_front_list (qn_backend_front_t *front, size_t *count);

//  Runs tick (now = zclock_mono) on every attempt in the list, walking a
//  copy (a tick may end attempts, callbacks may pause); returns how many
//  attempts there were, 0 when the engine's timer may end.
size_t
    qn_backend_front_each (qn_backend_front_t *front,
                           void (*tick) (qn_backend_attempt_t *attempt, int64_t now));

//  Runs tick on every attempt every interval_ms from now on, until the
//  list is empty, and once in a few milliseconds: after the agent's
//  commit of a started just reported (its 0 ms timer comes first), so
//  that the spool knows an attempt before its engine does.  For engines
//  that poll (REST backends).  The timers end with fini.
void
    qn_backend_front_ticking (qn_backend_front_t *front, size_t interval_ms,
                              void (*tick) (qn_backend_attempt_t *attempt, int64_t now));

//  The ops stop, set_paused, running and shutdown, for any state whose
//  first member is its qn_backend_front_t.
int
    qn_backend_front_stop (void *self, const qn_attempt_key_t *key, const char *reason,
                           Qanat__EndKind kind);
void
    qn_backend_front_set_paused (void *self, bool paused);
size_t
    qn_backend_front_running (void *self);
void
    qn_backend_front_shutdown (void *self, int grace_ms, const char *reason);

//  What an attempt's base holds besides the key and the ring
#define QN_BACKEND_ATTEMPT_STREAMS  1u  //  out (stdout), err (stderr, traced), metrics

//  Sets up the base of a new attempt (not in the list yet).  -1 when out
//  of memory (fini cleans up).
int
    qn_backend_attempt_init (qn_backend_attempt_t *attempt, qn_backend_front_t *front,
                             const qn_attempt_key_t *key, unsigned parts);

//  Frees what the base holds; closes the streams' files.
void
    qn_backend_attempt_fini (qn_backend_attempt_t *attempt);

//  Keeps reason and kind as the attempt's stop reason unless it has one.
//  True when it had none.
bool
    qn_backend_attempt_stopping (qn_backend_attempt_t *attempt, const char *reason,
                                 Qanat__EndKind kind);

//  True when the attempt has a deadline, it passed and no stop reason is
//  set yet: reason gets "timed out after Ns".
bool
    qn_backend_attempt_overdue (qn_backend_attempt_t *attempt, int64_t now, char *reason,
                                size_t reason_size);

//  A log event (to the ring too when traced).
void
    qn_backend_attempt_log (qn_backend_attempt_t *attempt, Qanat__Stream stream, bool traced,
                            const char *data, size_t size, bool partial, int64_t time_us);

//  Metrics of work that has no $QANAT_METRICS file the agent can read (a
//  pod, a Lambda function, a Databricks run) come as log lines
//      ::qanat-metric NAME=VALUE [step=N]
//  (NAME as for qanat metrics, VALUE a number, N an integer).  True when
//  text (one whole line) is one: reported as a metric at time_us, or as
//  a system line saying why it was refused; false for a plain line.
#define QN_BACKEND_METRIC_PREFIX  "::qanat-metric "
bool
    qn_backend_attempt_metric_line (qn_backend_attempt_t *attempt, const char *text, size_t size,
                                    int64_t time_us);

//  A system log line of the attempt, printf-style (qn_backend_system_log).
void
    qn_backend_attempt_system_log (qn_backend_attempt_t *attempt, const char *format, ...)
    __attribute__ ((format (printf, 2, 3)));

//  A cursor event, unless cursor is the one reported last.
void
    qn_backend_attempt_cursor (qn_backend_attempt_t *attempt, const char *cursor);

//  Reports finished (the attempt stays where it is): the stack trace of
//  the ring when exit_code or sig is not 0.
void
    qn_backend_attempt_finished (qn_backend_attempt_t *attempt, int exit_code, int sig,
                                 const char *reason, Qanat__EndKind kind);

//  Opens stream's file for reading from offset.  -1 with errno.
int
    qn_backend_stream_open (qn_backend_stream_t *stream, const char *path, int64_t offset);

//  Closes stream's file, if open.
void
    qn_backend_stream_close (qn_backend_stream_t *stream);

//  Bytes that came off a pipe: whole lines and pieces of long ones go out
//  as events now, the rest waits for its end of line.
void
    qn_backend_stream_feed (qn_backend_attempt_t *attempt, qn_backend_stream_t *stream,
                            const void *data, size_t size);

//  Reads up to max new bytes of stream's file and feeds them.  Returns
//  true at its end (for now, or when it has none), false when more waits.
bool
    qn_backend_stream_read (qn_backend_attempt_t *attempt, qn_backend_stream_t *stream,
                            size_t max);

//  Hands out the unterminated last line, at the end of the output.
void
    qn_backend_stream_flush (qn_backend_attempt_t *attempt, qn_backend_stream_t *stream);

//  The offset up to which the file's lines went out (for a cursor).
int64_t
    qn_backend_stream_position (qn_backend_stream_t *stream);

//  The backends this agent build offers, NULL-terminated
extern const qn_backend_ops_t *qn_backends [];

//  The backend named name, or NULL
const qn_backend_ops_t *
    qn_backend_find (const char *name);

//  The names of every backend, comma-separated, into buf (for messages)
const char *
    qn_backend_names (char *buf, size_t size);

//  The local fork/exec backend
extern const qn_backend_ops_t qn_backend_local;
//  Slurm jobs through sbatch/squeue/scontrol/scancel
extern const qn_backend_ops_t qn_backend_slurm;
//  Kubernetes batch/v1 Jobs through the API server (libcurl)
extern const qn_backend_ops_t qn_backend_kube;
//  Synchronous invocations of AWS Lambda functions, logs from CloudWatch
extern const qn_backend_ops_t qn_backend_lambda;
//  One-time Databricks runs through the Jobs API 2.1
extern const qn_backend_ops_t qn_backend_databricks;
//  Ray jobs through the dashboard's Jobs REST API (libcurl)
extern const qn_backend_ops_t qn_backend_ray;
//  Airflow DAG runs through the stable REST API (libcurl)
extern const qn_backend_ops_t qn_backend_airflow;

#ifdef __cplusplus
}
#endif
#endif
