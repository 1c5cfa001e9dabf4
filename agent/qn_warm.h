/*  qn_warm - a pool of warm Python workers for the local backend.

    A Python SDK op (Assign.warm, a command that runs `-m qanat.runtime`,
    the flow's code staged) can run as a call in a Python interpreter that
    is already running and has already imported the flow's code, instead
    of a new process: the startup of Python and the imports are most of a
    small op's time.  Like Celery's prefork pool, but a worker holds one
    code: it only ever runs ops of the code hash it started with.

    A worker is `python3 -m qanat._worker`, started in the work directory
    of its first op with that op's environment and that directory's
    .qanat/lib on PYTHONPATH.  Its stdin is one end of a SOCK_SEQPACKET
    socket pair; each op is one packet (work directory, command, the
    environment, NUL-separated) that carries the op's stdout and stderr
    pipes as SCM_RIGHTS; the answer is one packet "EXIT RSS_KB".  Between
    ops its stdout and stderr are /dev/null.  The worker is its own
    process group: the backend signals it as it signals a process, so a
    cancel or a timeout kills the worker running that op and only it.

    After each op the backend hands the worker back (qn_warm_release): it
    stays when the op ended normally and its resident memory is under the
    bound, else it is killed and replaced by a new one at the next op.
*/
#ifndef QN_WARM_H_INCLUDED
#define QN_WARM_H_INCLUDED

#include "qanat.pb-c.h"

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct _qn_warm_t qn_warm_t;
typedef struct _qn_warm_worker_t qn_warm_worker_t;

#define QN_WARM_RSS_MAX_MB   1024       //  default bound on a worker's memory after an op

//  A pool of at most size workers (0: NULL, no pool) that replaces a
//  worker whose resident memory after an op exceeds rss_max_mb.
qn_warm_t *
    qn_warm_new (size_t size, size_t rss_max_mb);

//  Kills and reaps every idle worker (busy ones belong to their attempts).
void
    qn_warm_destroy (qn_warm_t **self_p);

//  The code hash an assignment would run warm with, or NULL when it must
//  run as a process: not marked warm, not an SDK op's command, run in
//  place, or without the flow's code.
const char *
    qn_warm_code (const Qanat__Assign *assign);

//  An idle worker of code, marked busy, or NULL when there is none and no
//  room for one (the caller runs a process).  A new worker starts in
//  workdir with envp, its stdout and stderr on out_fd and err_fd (what it
//  prints while it starts is the op's).
qn_warm_worker_t *
    qn_warm_take (qn_warm_t *self, const char *code, const char *workdir, char **envp,
                  int out_fd, int err_fd);

//  Sends an op to a busy worker: its command (the shell text), work
//  directory, environment and output pipes.  0, or -1 (release it with
//  healthy = false and run a process).
int
    qn_warm_send (qn_warm_worker_t *worker, const char *workdir, const char *command,
                  char **envp, int out_fd, int err_fd);

//  The worker's process id (its process group's) and its socket, readable
//  when the answer or the end of the worker comes.
pid_t
    qn_warm_pid (qn_warm_worker_t *worker);
int
    qn_warm_fd (qn_warm_worker_t *worker);

//  Reads the answer: 1 with *exit_code, 0 when none yet, -1 when the
//  worker closed its socket (it died: its exit is reaped as a process's).
int
    qn_warm_reply (qn_warm_worker_t *worker, int *exit_code);

//  Gives the worker back after its op.  healthy: it answered and was not
//  signalled; reaped: the caller already waited for its end.  A healthy
//  worker under the memory bound becomes idle; any other is killed (when
//  not reaped), reaped and forgotten.
void
    qn_warm_release (qn_warm_t *self, qn_warm_worker_t *worker, bool healthy, bool reaped);

//  Workers started and replaced so far (for logs and tests)
size_t
    qn_warm_started (qn_warm_t *self);

#endif
