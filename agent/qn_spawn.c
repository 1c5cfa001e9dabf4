/*  qn_spawn - starts a child process: its setup between clone and exec,
    written once.  See qn_spawn.h.
*/
#include "qn_spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC  (1U << 2)
#endif
#define S_FD_SCAN_MAX  65536    //  descriptors marked one by one without close_range

//  What the child needs, all prepared by the parent before the clone:
//  the child shares the parent's memory and must not allocate.
typedef struct {
    const qn_spawn_t *spawn;
    const char *path;           //  the child's PATH, to search for argv [0]
    char *candidate;            //  room for a directory of path + '/' + argv [0]
    char **sh_argv;             //  room for "/bin/sh", candidate, argv [1..], NULL
    int fd_max;                 //  descriptors to mark close-on-exec without close_range
} s_child_t;


//  ---------------------------------------------------------------------
//  In the child: async-signal-safe calls only

//  The child runs on a stack of ours that AddressSanitizer does not know
//  (clone): left instrumented, a sanitizer build warns into the child's
//  stderr ("ignoring requested __asan_handle_no_return") before _exit,
//  which is the task's own output.  The child code is not instrumented.
#define S_CHILD __attribute__ ((no_sanitize_address))

S_CHILD static void
s_write_all (int fd, const char *text)
{
    size_t size = strlen (text);
    while (size > 0) {
        ssize_t rc = write (fd, text, size);
        if (rc <= 0)
            return;
        text += rc;
        size -= (size_t) rc;
    }
}

//  fd becomes target, open across exec (dup2 onto itself would leave a
//  close-on-exec flag in place)
S_CHILD static void
s_move (int fd, int target)
{
    if (fd == target)
        fcntl (fd, F_SETFD, 0);
    else
        dup2 (fd, target);
}

//  execvp with the child's PATH rather than ours, without touching environ
//  (shared with the parent) or allocating: each directory in turn; a file
//  that is not an executable format runs through /bin/sh, as execvp does.
//  Returns the errno to report when nothing could be run.
S_CHILD static int
s_exec (s_child_t *child)
{
    char *const *argv = child->spawn->argv;
    char *const *envp = child->spawn->envp;
    const char *name = argv [0];
    if (strchr (name, '/')) {
        execve (name, argv, envp);
        if (errno == ENOEXEC) {
            child->sh_argv [1] = (char *) name;
            execve ("/bin/sh", child->sh_argv, envp);
            errno = ENOEXEC;
        }
        return errno;
    }
    size_t name_size = strlen (name);
    bool denied = false;
    int error = ENOENT;
    const char *dir = child->path;
    while (true) {
        const char *end = strchr (dir, ':');
        size_t dir_size = end? (size_t) (end - dir): strlen (dir);
        char *at = child->candidate;
        //  An empty entry is the current directory
        if (dir_size) {
            memcpy (at, dir, dir_size);
            at += dir_size;
            *at++ = '/';
        }
        memcpy (at, name, name_size + 1);
        execve (child->candidate, argv, envp);
        error = errno;
        if (error == ENOEXEC) {
            child->sh_argv [1] = child->candidate;
            execve ("/bin/sh", child->sh_argv, envp);
            return ENOEXEC;
        }
        if (error == EACCES)
            denied = true;
        else
        if (error != ENOENT && error != ENOTDIR && error != ESTALE && error != ENODEV
        &&  error != ETIMEDOUT && error != ELOOP && error != ENAMETOOLONG)
            return error;
        if (!end)
            break;
        dir = end + 1;
    }
    return denied? EACCES: error;
}

S_CHILD static void
s_fail (const qn_spawn_t *spawn, const char *text, int error, int status)
{
    s_write_all (STDERR_FILENO, text);
    if (spawn->describe) {
        //  strerrordesc_np: a constant table, no locale, no allocation
        const char *description = strerrordesc_np (error);
        s_write_all (STDERR_FILENO, description? description: "cannot execute");
        s_write_all (STDERR_FILENO, "\n");
    }
    if (spawn->exec_fd != -1)
        s_write_all (spawn->exec_fd, "x");
    _exit (status);
}

//  Runs in the child, which shares the parent's memory (the calling
//  thread waits until we exec or exit) but has its own descriptors, cwd
//  and signal handlers.
S_CHILD static int
s_child (void *arg)
{
    s_child_t *child = (s_child_t *) arg;
    const qn_spawn_t *spawn = child->spawn;
    setpgid (0, 0);
    //  The parent blocked every signal around the clone, so that no
    //  handler of the agent runs here on its memory.  Reset every
    //  disposition and the mask, then let pending signals in, with their
    //  default effect.
    struct sigaction default_action;
    memset (&default_action, 0, sizeof default_action);
    default_action.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            sigaction (sig, &default_action, NULL);
    sigset_t none;
    sigemptyset (&none);
    sigprocmask (SIG_SETMASK, &none, NULL);

    int in_fd = spawn->stdin_fd;
    if (in_fd == -1)
        in_fd = open ("/dev/null", O_RDONLY | O_CLOEXEC);
    if (in_fd != -1)
        s_move (in_fd, STDIN_FILENO);
    else
        close (STDIN_FILENO);
    s_move (spawn->stdout_fd, STDOUT_FILENO);
    s_move (spawn->stderr_fd, STDERR_FILENO);
    //  Nothing of the agent's but these three reaches the program
    if (syscall (SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) == -1)
        for (int fd = 3; fd < child->fd_max; fd++)
            fcntl (fd, F_SETFD, FD_CLOEXEC);

    //  Into the attempt's cgroup before anything of the task runs (its
    //  children are born there too); running unconfined would be worse
    //  than not running
    if (spawn->join_cgroup && write (spawn->cgroup_fd, "0\n", 2) != 2)
        s_fail (spawn, "qanat-agent: cannot join the attempt's cgroup\n", 0, 127);
    if (spawn->workdir && chdir (spawn->workdir) == -1)
        s_fail (spawn, "qanat-agent: cannot enter work directory\n", 0, 127);
    int error = s_exec (child);
    s_fail (spawn, spawn->failure? spawn->failure: "qanat-agent: cannot run the command\n",
            error, spawn->failure_status? spawn->failure_status: error == ENOENT? 127: 126);
    return 127;
}


//  ---------------------------------------------------------------------
//  In the parent

void *
qn_spawn_stack_new (void)
{
    void *stack = mmap (NULL, QN_SPAWN_STACK_SIZE, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK | MAP_NORESERVE, -1, 0);
    return stack == MAP_FAILED? NULL: stack;
}

void
qn_spawn_stack_destroy (void **stack_p)
{
    if (stack_p && *stack_p) {
        munmap (*stack_p, QN_SPAWN_STACK_SIZE);
        *stack_p = NULL;
    }
}

pid_t
qn_spawn (const qn_spawn_t *spawn)
{
    if (!spawn || !spawn->argv || !spawn->argv [0] || !*spawn->argv [0] || !spawn->envp) {
        errno = EINVAL;
        return -1;
    }
    size_t argc = 0;
    while (spawn->argv [argc])
        argc++;
    s_child_t child = { spawn, qn_spawn_path (spawn->envp), NULL, NULL, S_FD_SCAN_MAX };
    struct rlimit limit;
    if (getrlimit (RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < S_FD_SCAN_MAX)
        child.fd_max = (int) limit.rlim_cur;
    child.candidate = (char *) malloc (strlen (child.path) + strlen (spawn->argv [0]) + 2);
    child.sh_argv = (char **) calloc (argc + 2, sizeof (char *));
    void *stack = spawn->stack? spawn->stack: qn_spawn_stack_new ();
    pid_t pid = -1;
    int error = ENOMEM;
    if (child.candidate && child.sh_argv && stack) {
        child.sh_argv [0] = (char *) "/bin/sh";
        for (size_t i = 1; i < argc; i++)
            child.sh_argv [i + 1] = spawn->argv [i];
        sigset_t all, saved;
        sigfillset (&all);
        pthread_sigmask (SIG_SETMASK, &all, &saved);
        //  The stack grows down on every architecture Linux runs us on here
        pid = clone (s_child, (char *) stack + QN_SPAWN_STACK_SIZE,
                     CLONE_VM | CLONE_VFORK | SIGCHLD, &child);
        error = errno;
        pthread_sigmask (SIG_SETMASK, &saved, NULL);
        //  Also from the parent, so that a kill right away reaches the group
        if (pid > 0)
            setpgid (pid, pid);
    }
    if (stack != spawn->stack)
        qn_spawn_stack_destroy (&stack);
    free (child.candidate);
    free (child.sh_argv);
    if (pid == -1)
        errno = error;
    return pid;
}

const char *
qn_spawn_path (char *const *envp)
{
    for (size_t i = 0; envp && envp [i]; i++)
        if (strncmp (envp [i], "PATH=", 5) == 0)
            return envp [i] + 5;
    return QN_SPAWN_PATH;
}

void
qn_spawn_strings_free (char **strings)
{
    if (!strings)
        return;
    for (size_t i = 0; strings [i]; i++)
        free (strings [i]);
    free (strings);
}

char **
qn_spawn_env (char *const *extra)
{
    size_t ours = 0, theirs = 0;
    while (environ && environ [ours])
        ours++;
    while (extra && extra [theirs])
        theirs++;
    char **envp = (char **) calloc (ours + theirs + 1, sizeof (char *));
    if (!envp)
        return NULL;
    size_t count = 0;
    for (size_t i = 0; i < ours + theirs; i++) {
        const char *entry = i < ours? environ [i]: extra [i - ours];
        const char *equals = strchr (entry, '=');
        if (!equals || equals == entry)
            continue;
        size_t key_len = (size_t) (equals - entry);
        size_t at;
        for (at = 0; at < count; at++)
            if (strncmp (envp [at], entry, key_len + 1) == 0)
                break;
        char *copy = strdup (entry);
        if (!copy) {
            qn_spawn_strings_free (envp);
            return NULL;
        }
        if (at < count) {
            free (envp [at]);
            envp [at] = copy;
        }
        else
            envp [count++] = copy;
    }
    return envp;
}
