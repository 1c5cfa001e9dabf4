/*  qn_command - runs a short command as a child process from the zloop.
    See qn_command.h.
*/
#include "qn_command.h"
#include "qn_spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define S_REAP_TICK_MS   20     //  without pidfd
#define S_READ_SIZE      16384

struct _qn_command_t {
    zloop_t *loop;              //  NULL for qn_command_run
    qn_command_fn *fn;
    void *arg;
    pid_t pid;
    bool exited;
    int status;
    int pid_fd;                 //  -1 once closed or absent
    int out_fd;
    int err_fd;
    int in_fd;                  //  stdin pipe while input remains
    char *input;
    size_t input_size;
    size_t input_at;
    qn_command_result_t result;
    size_t out_capacity;
    size_t err_capacity;
    int64_t deadline_ms;        //  0 = none
    int timeout_timer;          //  -1 if none
    int reap_timer;             //  -1 if none
    int done_timer;             //  -1 if none
    bool done;                  //  the callback ran
    bool finishing;             //  the done timer is set
};

static void s_check_done (qn_command_t *self);


//  ---------------------------------------------------------------------
//  Starting

static void
s_close (int *fd_p)
{
    if (*fd_p != -1) {
        close (*fd_p);
        *fd_p = -1;
    }
}

//  Starts the child with its pipes; fills self's descriptors.  -1 when
//  it cannot.
static int
s_spawn (qn_command_t *self, char *const *argv, char *const *env, const char *input)
{
    int out_pipe [2] = { -1, -1 }, err_pipe [2] = { -1, -1 }, in_pipe [2] = { -1, -1 };
    char **envp = qn_spawn_env (env);
    int rc = -1;
    if (!envp)
        goto done;
    if (input) {
        self->input_size = strlen (input);
        self->input = strdup (input);
        if (!self->input || pipe2 (in_pipe, O_CLOEXEC) == -1)
            goto done;
    }
    if (pipe2 (out_pipe, O_CLOEXEC) == -1 || pipe2 (err_pipe, O_CLOEXEC) == -1)
        goto done;
    qn_spawn_t spawn = {
        argv, envp, NULL, in_pipe [0], out_pipe [1], err_pipe [1], -1,
        "qanat-agent: cannot run the command\n", false, 127, NULL, false, -1
    };
    pid_t pid = qn_spawn (&spawn);
    if (pid == -1)
        goto done;
    self->pid = pid;
    self->out_fd = out_pipe [0];
    self->err_fd = err_pipe [0];
    self->in_fd = in_pipe [1];
    out_pipe [0] = err_pipe [0] = in_pipe [1] = -1;
    fcntl (self->out_fd, F_SETFL, fcntl (self->out_fd, F_GETFL) | O_NONBLOCK);
    fcntl (self->err_fd, F_SETFL, fcntl (self->err_fd, F_GETFL) | O_NONBLOCK);
    if (self->in_fd != -1)
        fcntl (self->in_fd, F_SETFL, fcntl (self->in_fd, F_GETFL) | O_NONBLOCK);
    self->pid_fd = (int) syscall (SYS_pidfd_open, pid, 0);
    rc = 0;
done:
    for (int i = 0; i < 2; i++) {
        s_close (&out_pipe [i]);
        s_close (&err_pipe [i]);
        s_close (&in_pipe [i]);
    }
    qn_spawn_strings_free (envp);
    return rc;
}

static qn_command_t *
s_new (void)
{
    qn_command_t *self = (qn_command_t *) calloc (1, sizeof (qn_command_t));
    if (!self)
        return NULL;
    self->pid_fd = self->out_fd = self->err_fd = self->in_fd = -1;
    self->timeout_timer = self->reap_timer = self->done_timer = -1;
    self->result.out = (char *) malloc (1);
    self->result.err = (char *) malloc (1);
    if (!self->result.out || !self->result.err) {
        free (self->result.out);
        free (self->result.err);
        free (self);
        return NULL;
    }
    self->result.out [0] = self->result.err [0] = '\0';
    return self;
}


//  ---------------------------------------------------------------------
//  Reading, writing, reaping (shared by both modes)

static void
s_unpoll (qn_command_t *self, int fd)
{
    if (self->loop && fd != -1) {
        zmq_pollitem_t item = { NULL, fd, 0, 0 };
        zloop_poller_end (self->loop, &item);
    }
}

//  Appends to a bounded buffer, dropping what does not fit
static void
s_keep (char **buffer_p, size_t *size_p, size_t *capacity_p, bool *truncated_p,
        const char *data, size_t size)
{
    size_t room = QN_COMMAND_OUTPUT_MAX - *size_p;
    if (size > room) {
        *truncated_p = true;
        size = room;
    }
    if (size == 0)
        return;
    if (*size_p + size + 1 > *capacity_p) {
        size_t capacity = *capacity_p? *capacity_p * 2: 1024;
        while (capacity < *size_p + size + 1)
            capacity *= 2;
        if (capacity > QN_COMMAND_OUTPUT_MAX + 1)
            capacity = QN_COMMAND_OUTPUT_MAX + 1;
        char *grown = (char *) realloc (*buffer_p, capacity);
        if (!grown) {
            *truncated_p = true;
            return;
        }
        *buffer_p = grown;
        *capacity_p = capacity;
    }
    memcpy (*buffer_p + *size_p, data, size);
    *size_p += size;
    (*buffer_p) [*size_p] = '\0';
}

//  Reads what one pipe holds; closes it at end of file or on error
static void
s_read (qn_command_t *self, int *fd_p)
{
    char buffer [S_READ_SIZE];
    for (int round = 0; round < 8 && *fd_p != -1; round++) {
        ssize_t got = read (*fd_p, buffer, sizeof (buffer));
        if (got > 0) {
            if (fd_p == &self->out_fd)
                s_keep (&self->result.out, &self->result.out_size, &self->out_capacity,
                        &self->result.out_truncated, buffer, (size_t) got);
            else
                s_keep (&self->result.err, &self->result.err_size, &self->err_capacity,
                        &self->result.err_truncated, buffer, (size_t) got);
            continue;
        }
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        s_unpoll (self, *fd_p);
        s_close (fd_p);
    }
}

//  Writes what the stdin pipe takes; closes it when all is written or
//  the child stopped reading
static void
s_write (qn_command_t *self)
{
    while (self->in_fd != -1 && self->input_at < self->input_size) {
        ssize_t put = write (self->in_fd, self->input + self->input_at,
                             self->input_size - self->input_at);
        if (put > 0)
            self->input_at += (size_t) put;
        else
        if (put < 0 && errno == EINTR)
            continue;
        else
        if (put < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        else
            break;
    }
    s_unpoll (self, self->in_fd);
    s_close (&self->in_fd);
}

static void
s_reap (qn_command_t *self, bool block)
{
    if (self->exited || self->pid <= 0)
        return;
    int status = 0;
    pid_t rc;
    do
        rc = waitpid (self->pid, &status, block? 0: WNOHANG);
    while (rc == -1 && errno == EINTR);
    if (rc == self->pid || (rc == -1 && errno == ECHILD)) {
        self->exited = true;
        self->status = rc == self->pid? status: 0;
        if (self->pid_fd != -1) {
            s_unpoll (self, self->pid_fd);
            s_close (&self->pid_fd);
        }
    }
}

static void
s_fill_outcome (qn_command_t *self)
{
    if (self->result.timed_out)
        self->result.exit_code = -1;
    else
    if (WIFEXITED (self->status))
        self->result.exit_code = WEXITSTATUS (self->status);
    else
    if (WIFSIGNALED (self->status)) {
        self->result.signal = WTERMSIG (self->status);
        self->result.exit_code = 128 + self->result.signal;
    }
    else
        self->result.exit_code = -1;
}

static void
s_kill (qn_command_t *self)
{
    if (self->pid > 0 && !self->exited)
        kill (-self->pid, SIGKILL);
    if (self->pid > 0)
        kill (-self->pid, SIGKILL);     //  the group may outlive its leader
}


//  ---------------------------------------------------------------------
//  On the loop

static int
s_on_done (zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    (void) timer_id;
    qn_command_t *self = (qn_command_t *) arg;
    self->done_timer = -1;              //  a one-shot timer: gone after this
    self->done = true;
    s_fill_outcome (self);
    self->fn (self, &self->result, self->arg);
    return 0;
}

//  When the child exited and its output ended, the callback runs from a
//  timer: the loop may still hold this round's events for our pollers.
static void
s_check_done (qn_command_t *self)
{
    if (self->finishing || !self->exited || self->out_fd != -1 || self->err_fd != -1)
        return;
    self->finishing = true;
    s_unpoll (self, self->in_fd);
    s_close (&self->in_fd);
    if (self->timeout_timer != -1) {
        zloop_timer_end (self->loop, self->timeout_timer);
        self->timeout_timer = -1;
    }
    if (self->reap_timer != -1) {
        zloop_timer_end (self->loop, self->reap_timer);
        self->reap_timer = -1;
    }
    self->done_timer = zloop_timer (self->loop, 1, 1, s_on_done, self);
}

static int
s_on_readable (zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    (void) loop;
    qn_command_t *self = (qn_command_t *) arg;
    if (item->fd == self->out_fd && self->out_fd != -1)
        s_read (self, &self->out_fd);
    else
    if (item->fd == self->err_fd && self->err_fd != -1)
        s_read (self, &self->err_fd);
    else
    if (item->fd == self->in_fd && self->in_fd != -1)
        s_write (self);
    else
    if (item->fd == self->pid_fd && self->pid_fd != -1)
        s_reap (self, false);
    s_check_done (self);
    return 0;
}

static int
s_on_reap_tick (zloop_t *loop, int timer_id, void *arg)
{
    (void) timer_id;
    qn_command_t *self = (qn_command_t *) arg;
    //  One shot, armed again while needed: a timer must not end itself
    //  from its own handler (zloop frees it at once once terminated)
    self->reap_timer = -1;
    s_reap (self, false);
    s_check_done (self);
    if (!self->exited && !self->finishing)
        self->reap_timer = zloop_timer (loop, S_REAP_TICK_MS, 1, s_on_reap_tick, self);
    return 0;
}

static int
s_on_timeout (zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    (void) timer_id;
    qn_command_t *self = (qn_command_t *) arg;
    self->timeout_timer = -1;
    if (self->finishing)
        return 0;
    self->result.timed_out = true;
    s_kill (self);
    s_reap (self, true);
    //  A grandchild may hold the pipes open: we stop listening
    s_unpoll (self, self->out_fd);
    s_close (&self->out_fd);
    s_unpoll (self, self->err_fd);
    s_close (&self->err_fd);
    s_check_done (self);
    return 0;
}

static int
s_watch (qn_command_t *self, int fd, short events)
{
    if (fd == -1)
        return 0;
    zmq_pollitem_t item = { NULL, fd, events, 0 };
    if (zloop_poller (self->loop, &item, s_on_readable, self) == -1)
        return -1;
    zloop_poller_set_tolerant (self->loop, &item);
    return 0;
}

qn_command_t *
qn_command_new (zloop_t *loop, char *const *argv, char *const *env, const char *input,
                int timeout_ms, qn_command_fn *fn, void *arg)
{
    assert (loop);
    assert (fn);
    if (!argv || !argv [0] || !*argv [0])
        return NULL;
    qn_command_t *self = s_new ();
    if (!self)
        return NULL;
    self->loop = loop;
    self->fn = fn;
    self->arg = arg;
    if (s_spawn (self, argv, env, input) == -1) {
        qn_command_destroy (&self);
        return NULL;
    }
    if (self->in_fd != -1) {
        s_write (self);
        if (s_watch (self, self->in_fd, ZMQ_POLLOUT) == -1)
            s_close (&self->in_fd);
    }
    if (s_watch (self, self->out_fd, ZMQ_POLLIN) == -1
    ||  s_watch (self, self->err_fd, ZMQ_POLLIN) == -1) {
        qn_command_destroy (&self);
        return NULL;
    }
    if (self->pid_fd == -1 || s_watch (self, self->pid_fd, ZMQ_POLLIN) == -1) {
        s_close (&self->pid_fd);
        self->reap_timer = zloop_timer (loop, S_REAP_TICK_MS, 1, s_on_reap_tick, self);
    }
    if (timeout_ms > 0)
        self->timeout_timer = zloop_timer (loop, (size_t) timeout_ms, 1, s_on_timeout, self);
    return self;
}

void
qn_command_destroy (qn_command_t **self_p)
{
    assert (self_p);
    qn_command_t *self = *self_p;
    if (!self)
        return;
    if (self->pid > 0 && !self->exited) {
        s_kill (self);
        s_reap (self, true);
    }
    s_unpoll (self, self->out_fd);
    s_unpoll (self, self->err_fd);
    s_unpoll (self, self->in_fd);
    s_unpoll (self, self->pid_fd);
    s_close (&self->out_fd);
    s_close (&self->err_fd);
    s_close (&self->in_fd);
    s_close (&self->pid_fd);
    if (self->loop) {
        if (self->timeout_timer != -1)
            zloop_timer_end (self->loop, self->timeout_timer);
        if (self->reap_timer != -1)
            zloop_timer_end (self->loop, self->reap_timer);
        if (self->done_timer != -1)
            zloop_timer_end (self->loop, self->done_timer);
    }
    free (self->input);
    qn_command_result_free (&self->result);
    free (self);
    *self_p = NULL;
}

bool
qn_command_done (qn_command_t *self)
{
    assert (self);
    return self->done;
}

int
qn_command_pid (qn_command_t *self)
{
    assert (self);
    return (int) self->pid;
}


//  ---------------------------------------------------------------------
//  Blocking

int
qn_command_run (char *const *argv, char *const *env, const char *input, int timeout_ms,
                qn_command_result_t *result)
{
    assert (result);
    memset (result, 0, sizeof (*result));
    result->exit_code = -1;
    qn_command_t *self = s_new ();
    if (!self)
        return -1;
    if (!argv || !argv [0] || !*argv [0] || s_spawn (self, argv, env, input) == -1) {
        *result = self->result;
        memset (&self->result, 0, sizeof (self->result));
        result->exit_code = -1;
        qn_command_destroy (&self);
        return -1;
    }
    int64_t deadline = timeout_ms > 0? zclock_mono () + timeout_ms: 0;
    s_write (self);
    while (self->out_fd != -1 || self->err_fd != -1 || !self->exited) {
        struct pollfd fds [4];
        int count = 0;
        if (self->out_fd != -1)
            fds [count++] = (struct pollfd) { self->out_fd, POLLIN, 0 };
        if (self->err_fd != -1)
            fds [count++] = (struct pollfd) { self->err_fd, POLLIN, 0 };
        if (self->in_fd != -1)
            fds [count++] = (struct pollfd) { self->in_fd, POLLOUT, 0 };
        if (self->pid_fd != -1 && !self->exited)
            fds [count++] = (struct pollfd) { self->pid_fd, POLLIN, 0 };
        int wait_ms = S_REAP_TICK_MS;
        if (self->pid_fd != -1 && !self->exited)
            wait_ms = 1000;
        if (deadline) {
            int64_t left = deadline - zclock_mono ();
            if (left <= 0) {
                self->result.timed_out = true;
                s_kill (self);
                s_reap (self, true);
                break;
            }
            if (left < wait_ms)
                wait_ms = (int) left;
        }
        int rc = poll (fds, (nfds_t) count, wait_ms);
        if (rc < 0 && errno != EINTR)
            break;
        if (self->out_fd != -1)
            s_read (self, &self->out_fd);
        if (self->err_fd != -1)
            s_read (self, &self->err_fd);
        if (self->in_fd != -1)
            s_write (self);
        s_reap (self, false);
    }
    if (!self->exited) {
        s_kill (self);
        s_reap (self, true);
    }
    s_fill_outcome (self);
    int rc = self->result.timed_out || self->result.exit_code == -1? -1: 0;
    *result = self->result;
    memset (&self->result, 0, sizeof (self->result));
    qn_command_destroy (&self);
    return rc;
}

void
qn_command_result_free (qn_command_result_t *result)
{
    if (!result)
        return;
    free (result->out);
    free (result->err);
    result->out = result->err = NULL;
    result->out_size = result->err_size = 0;
}
