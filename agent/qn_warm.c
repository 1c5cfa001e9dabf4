/*  qn_warm - a pool of warm Python workers.  See qn_warm.h.
*/
#include "qn_warm.h"
#include "qn_log.h"
#include "qn_spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define S_CODE_MAX      128             //  a manifest hash, with room
#define S_PACKET_MAX    (256 * 1024)    //  an op: the environment is most of it

struct _qn_warm_worker_t {
    pid_t pid;                  //  -1: the slot is free
    int fd;                     //  our end of the socket pair
    bool busy;
    size_t rss_kb;              //  after its last op
    char code [S_CODE_MAX];
};

struct _qn_warm_t {
    size_t size;
    size_t rss_max_kb;
    size_t started;
    qn_warm_worker_t *workers;  //  size of them
};

qn_warm_t *
qn_warm_new (size_t size, size_t rss_max_mb)
{
    if (size == 0)
        return NULL;
    qn_warm_t *self = (qn_warm_t *) calloc (1, sizeof (qn_warm_t));
    if (self)
        self->workers = (qn_warm_worker_t *) calloc (size, sizeof (qn_warm_worker_t));
    if (!self || !self->workers) {
        free (self);
        return NULL;
    }
    self->size = size;
    self->rss_max_kb = (rss_max_mb? rss_max_mb: QN_WARM_RSS_MAX_MB) * 1024;
    for (size_t i = 0; i < size; i++) {
        self->workers [i].pid = -1;
        self->workers [i].fd = -1;
    }
    return self;
}

static void
s_worker_end (qn_warm_worker_t *worker, bool reaped)
{
    if (worker->pid > 0 && !reaped) {
        kill (-worker->pid, SIGKILL);
        while (waitpid (worker->pid, NULL, 0) == -1 && errno == EINTR)
            ;
    }
    if (worker->fd != -1)
        close (worker->fd);
    worker->pid = -1;
    worker->fd = -1;
    worker->busy = false;
    worker->code [0] = 0;
}

void
qn_warm_destroy (qn_warm_t **self_p)
{
    qn_warm_t *self = *self_p;
    if (!self)
        return;
    for (size_t i = 0; i < self->size; i++)
        if (!self->workers [i].busy)
            s_worker_end (&self->workers [i], false);
    free (self->workers);
    free (self);
    *self_p = NULL;
}

const char *
qn_warm_code (const Qanat__Assign *assign)
{
    if (!assign->warm || assign->n_argv != 3 || (assign->workdir && *assign->workdir)
    ||  strcmp (assign->argv [1], "-c") != 0 || !strstr (assign->argv [2], "-m qanat.runtime "))
        return NULL;
    for (size_t i = 0; i < assign->n_inputs; i++) {
        const Qanat__InputSpec *input = assign->inputs [i];
        if (input->name && strcmp (input->name, ".code") == 0 && input->hash
        &&  *input->hash && strlen (input->hash) < S_CODE_MAX)
            return input->hash;
    }
    return NULL;
}

//  Starts a worker for code in slot; 0 or -1
static int
s_worker_start (qn_warm_t *self, qn_warm_worker_t *worker, const char *code,
                const char *workdir, char **envp, int out_fd, int err_fd)
{
    int pair [2];
    if (socketpair (AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) == -1)
        return -1;
    //  Its environment: the op's, with the code's copy of the package first
    size_t count = 0;
    while (envp [count])
        count++;
    char **env = (char **) calloc (count + 2, sizeof (char *));
    char *path = NULL;
    const char *old = NULL;
    for (size_t i = 0; i < count; i++)
        if (strncmp (envp [i], "PYTHONPATH=", 11) == 0)
            old = envp [i] + 11;
    if (asprintf (&path, "PYTHONPATH=%s/.qanat/lib%s%s", workdir, old && *old? ":": "",
                  old? old: "") < 0)
        path = NULL;
    if (!env || !path) {
        free (env);
        free (path);
        close (pair [0]);
        close (pair [1]);
        return -1;
    }
    size_t n = 0;
    for (size_t i = 0; i < count; i++)
        if (strncmp (envp [i], "PYTHONPATH=", 11) != 0)
            env [n++] = envp [i];
    env [n++] = path;
    char *argv [] = { (char *) "python3", (char *) "-m", (char *) "qanat._worker", NULL };
    qn_spawn_t spawn = {
        argv, env, workdir, pair [1], out_fd, err_fd, -1,
        "qanat-agent: cannot start a warm Python worker: ", true, 0, NULL, false, -1
    };
    pid_t pid = qn_spawn (&spawn);
    free (env);
    free (path);
    close (pair [1]);
    if (pid == -1) {
        close (pair [0]);
        return -1;
    }
    worker->pid = pid;
    worker->fd = pair [0];
    worker->busy = false;
    worker->rss_kb = 0;
    snprintf (worker->code, sizeof worker->code, "%s", code);
    self->started++;
    qn_log (QN_LOG_INFO, "warm", "started a Python worker, pid %d, for code %.16s",
            (int) pid, code);
    return 0;
}

qn_warm_worker_t *
qn_warm_take (qn_warm_t *self, const char *code, const char *workdir, char **envp,
              int out_fd, int err_fd)
{
    if (!self || !code)
        return NULL;
    qn_warm_worker_t *free_slot = NULL, *other = NULL;
    for (size_t i = 0; i < self->size; i++) {
        qn_warm_worker_t *worker = &self->workers [i];
        if (worker->pid == -1) {
            free_slot = free_slot? free_slot: worker;
            continue;
        }
        if (worker->busy)
            continue;
        if (strcmp (worker->code, code) == 0) {
            worker->busy = true;
            return worker;
        }
        other = other? other: worker;
    }
    //  No idle worker of this code: a free slot, else the slot of an idle
    //  worker of other code (never reused for this one: replaced)
    if (!free_slot && other) {
        s_worker_end (other, false);
        free_slot = other;
    }
    if (!free_slot
    ||  s_worker_start (self, free_slot, code, workdir, envp, out_fd, err_fd) == -1)
        return NULL;
    free_slot->busy = true;
    return free_slot;
}

int
qn_warm_send (qn_warm_worker_t *worker, const char *workdir, const char *command,
              char **envp, int out_fd, int err_fd)
{
    size_t size = strlen (workdir) + strlen (command) + 2;
    for (size_t i = 0; envp [i]; i++)
        size += strlen (envp [i]) + 1;
    if (size > S_PACKET_MAX)
        return -1;
    char *packet = (char *) malloc (size);
    if (!packet)
        return -1;
    size_t at = 0;
    memcpy (packet + at, workdir, strlen (workdir) + 1);
    at += strlen (workdir) + 1;
    memcpy (packet + at, command, strlen (command) + 1);
    at += strlen (command) + 1;
    for (size_t i = 0; envp [i]; i++) {
        memcpy (packet + at, envp [i], strlen (envp [i]) + 1);
        at += strlen (envp [i]) + 1;
    }
    struct iovec iov = { packet, size };
    union {
        char buffer [CMSG_SPACE (2 * sizeof (int))];
        struct cmsghdr align;
    } control;
    memset (&control, 0, sizeof control);
    struct msghdr message = { 0 };
    message.msg_iov = &iov;
    message.msg_iovlen = 1;
    message.msg_control = control.buffer;
    message.msg_controllen = sizeof control.buffer;
    struct cmsghdr *header = CMSG_FIRSTHDR (&message);
    header->cmsg_level = SOL_SOCKET;
    header->cmsg_type = SCM_RIGHTS;
    header->cmsg_len = CMSG_LEN (2 * sizeof (int));
    int fds [2] = { out_fd, err_fd };
    memcpy (CMSG_DATA (header), fds, sizeof fds);
    ssize_t sent;
    do
        sent = sendmsg (worker->fd, &message, MSG_NOSIGNAL);
    while (sent == -1 && errno == EINTR);
    free (packet);
    return sent == (ssize_t) size? 0: -1;
}

pid_t
qn_warm_pid (qn_warm_worker_t *worker)
{
    return worker->pid;
}

int
qn_warm_fd (qn_warm_worker_t *worker)
{
    return worker->fd;
}

int
qn_warm_reply (qn_warm_worker_t *worker, int *exit_code)
{
    char answer [64];
    ssize_t got = recv (worker->fd, answer, sizeof answer - 1, MSG_DONTWAIT);
    if (got == -1 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return 0;
    if (got <= 0)
        return -1;
    answer [got] = 0;
    int code = 0;
    unsigned long rss = 0;
    if (sscanf (answer, "%d %lu", &code, &rss) != 2 || code < 0 || code > 255)
        return -1;              //  not our worker's words: treat it as gone
    *exit_code = code;
    worker->rss_kb = rss;
    return 1;
}

void
qn_warm_release (qn_warm_t *self, qn_warm_worker_t *worker, bool healthy, bool reaped)
{
    if (!self || !worker)
        return;
    if (healthy && !reaped && worker->rss_kb <= self->rss_max_kb) {
        worker->busy = false;
        return;
    }
    if (healthy && !reaped)
        qn_log (QN_LOG_INFO, "warm", "Python worker %d uses %zu MB after its op (bound %zu MB): "
                "replaced", (int) worker->pid, worker->rss_kb / 1024, self->rss_max_kb / 1024);
    s_worker_end (worker, reaped);
}

size_t
qn_warm_started (qn_warm_t *self)
{
    return self? self->started: 0;
}
