/*  qn_command - runs a short command (sbatch, squeue, scancel...) as a
    child process without blocking the agent's zloop.

    The child gets argv (argv[0] searched in PATH), our environment plus
    the extra "KEY=VALUE" entries (which replace ours of the same key),
    stdin from the given text (or /dev/null), stdout and stderr on pipes
    read by zloop pollers, and its own process group.  Its exit is seen
    through a pidfd (or a 20 ms timer where pidfd_open is missing).

    Once the child exited and both pipes hit end of file, the callback
    runs once, from a zloop timer, with the outcome and what the child
    wrote: at most QN_COMMAND_OUTPUT_MAX bytes of each stream, the rest
    read and dropped (output is hostile).  The caller may destroy the
    command from its callback.

    A command still running at its deadline is killed (SIGKILL to its
    group); it then ends with exit_code -1 and timed_out set.
*/
#ifndef QN_COMMAND_H_INCLUDED
#define QN_COMMAND_H_INCLUDED

#include <czmq.h>
#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define QN_COMMAND_OUTPUT_MAX  65536

typedef struct _qn_command_t qn_command_t;

typedef struct {
    //  The exit code, 128 + N when killed by signal N, -1 when it could
    //  not be run or was killed at its deadline.
    int exit_code;
    int signal;                 //  the signal that ended it, else 0
    bool timed_out;             //  killed at the deadline
    //  NUL-terminated (the child may also have written NUL bytes: use
    //  the sizes), at most QN_COMMAND_OUTPUT_MAX bytes each
    char *out;
    size_t out_size;
    char *err;
    size_t err_size;
    bool out_truncated;         //  more was written and dropped
    bool err_truncated;
} qn_command_result_t;

//  Called once when the command ended; result is valid during the call.
typedef void (qn_command_fn) (qn_command_t *command, const qn_command_result_t *result,
                              void *arg);

//  Starts argv (NULL-terminated, at least one element) on loop.  env:
//  extra "KEY=VALUE" entries, NULL-terminated, or NULL.  input: stdin
//  text, or NULL for /dev/null.  timeout_ms: 0 for none.  NULL when it
//  cannot start at all (no callback then).
qn_command_t *
    qn_command_new (zloop_t *loop, char *const *argv, char *const *env, const char *input,
                    int timeout_ms, qn_command_fn *fn, void *arg);

//  Destroys the command and nulls the pointer; a child still running is
//  killed and reaped, and the callback never runs.  Idempotent.
void
    qn_command_destroy (qn_command_t **self_p);

//  True once the callback ran.
bool
    qn_command_done (qn_command_t *self);

//  The child's pid (its process group), or 0 before it started.
int
    qn_command_pid (qn_command_t *self);

//  Runs argv to the end, blocking at most timeout_ms (killed then; 0 for
//  no bound), and fills result (free with qn_command_result_free).
//  Returns 0 when the child ran and exited by itself, -1 otherwise
//  (result still filled).
int
    qn_command_run (char *const *argv, char *const *env, const char *input, int timeout_ms,
                    qn_command_result_t *result);

//  Frees the output buffers of a result filled by qn_command_run.
void
    qn_command_result_free (qn_command_result_t *result);

#ifdef __cplusplus
}
#endif
#endif
