/*  qn_spawn - starts a child process the way the agent starts all of its
    children: the local backend's tasks and qn_command's short commands.

    The child runs in its own process group (set from both sides, so that
    a kill right after the start reaches the group), with every signal
    disposition back to its default and an empty signal mask (the agent
    blocks SIGTERM and SIGINT and reads them from a signalfd: that must
    not carry over, or a cancel landing before exec would be swallowed),
    stdin, stdout and stderr on the given descriptors, every other
    descriptor closed at exec, in the given directory, with exactly the
    given environment.  argv [0] is searched in the PATH of that
    environment, as execvp does (a file that is no executable format runs
    through /bin/sh).

    Processes start with clone (CLONE_VM | CLONE_VFORK), not fork: no copy
    of the agent's address space to make and tear down per task (a third
    of the agent's time per short task when it forked).  The child thus
    shares the agent's memory until it execs: it makes only
    async-signal-safe calls, allocates nothing and writes no global;
    qn_spawn prepares everything it needs before the clone.

    When the child cannot run argv [0] (or enter its directory) it writes
    a message to its stderr, one byte to exec_fd (when given: a
    close-on-exec pipe that a successful exec closes empty, so the
    parent can tell a failed start from a task that failed) and exits.
*/
#ifndef QN_SPAWN_H_INCLUDED
#define QN_SPAWN_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define QN_SPAWN_STACK_SIZE  (256 * 1024)   //  the child's, until it execs
#define QN_SPAWN_PATH        "/bin:/usr/bin"    //  execvp's, when PATH is unset

typedef struct {
    char *const *argv;          //  NULL-terminated, argv [0] not empty
    char *const *envp;          //  the whole environment, NULL-terminated
    const char *workdir;        //  the child's cwd; NULL = ours
    int stdin_fd;               //  -1 = /dev/null
    int stdout_fd;
    int stderr_fd;
    int exec_fd;                //  gets one byte when the start failed; -1 = none
    //  What the child writes to its stderr when it cannot run argv [0]:
    //  this text, then (describe) what went wrong and a newline
    const char *failure;
    bool describe;
    //  Its exit status then: 0 = the shell's (127 for a program not
    //  found, 126 for one that cannot run)
    int failure_status;
    //  QN_SPAWN_STACK_SIZE bytes from qn_spawn_stack_new for the child
    //  until it execs, reused from start to start; NULL = one mapped for
    //  this start alone
    void *stack;
    //  When join_cgroup: the child writes itself to cgroup_fd (open on a
    //  cgroup v2 group's cgroup.procs) before anything else, so that the
    //  task and all it starts are held to that group's limits
    bool join_cgroup;
    int cgroup_fd;
} qn_spawn_t;

//  Starts the child.  Returns its pid, or -1 with errno set when no
//  process could be made (nothing was started then).
pid_t
    qn_spawn (const qn_spawn_t *spawn);

//  A stack for qn_spawn_t.stack, or NULL.
void *
    qn_spawn_stack_new (void);

//  Unmaps the stack and nulls the pointer.  Idempotent.
void
    qn_spawn_stack_destroy (void **stack_p);

//  Our environment with the entries of extra ("KEY=VALUE", NULL-terminated,
//  may be NULL) put in: an entry replaces ours of the same key where it
//  stands, a new key goes at the end, and entries without '=' or without
//  a key are left out.  NULL-terminated, every string owned by the array
//  (free with qn_spawn_strings_free), or NULL.
char **
    qn_spawn_env (char *const *extra);

//  The value of PATH in envp, or QN_SPAWN_PATH.
const char *
    qn_spawn_path (char *const *envp);

//  Frees a NULL-terminated array of strings and the strings.  NULL is fine.
void
    qn_spawn_strings_free (char **strings);

#ifdef __cplusplus
}
#endif
#endif
