/*  qn_backend_local - runs attempts as local processes.  See qn_backend.h.

    Each attempt gets <data-dir>/attempts/<run_id>-<task>-<attempt>/ with a
    fresh work/ directory (the process's cwd) and an empty metrics file
    (named by $QANAT_METRICS).  The process runs in its own process group,
    stdin from /dev/null, stdout and stderr on two non-blocking pipes read
    from the agent's zloop.  Processes start through qn_spawn (clone
    with CLONE_VM | CLONE_VFORK, not fork: see qn_spawn.h).  Whole
    lines that one read of a pipe brings go out packed in one log event
    (up to S_PACK_MAX bytes, joined by '\n').

    Each process also has a pidfd on the loop, so that its exit and the end
    of its output are handled at once, not at the next tick: a short task
    turns its slot around in a few milliseconds.  (Without pidfd, Linux
    before 5.3, the tick alone reaps.)

    One timer per backend (every S_TICK_MS, while attempts exist) reaps exited processes, fires
    timeouts and SIGKILLs, reads new metrics lines, and finishes attempts:
    Finished is reported only once the process was reaped, both pipes hit
    end of file (or S_EOF_GRACE_MS passed since the exit, when a grandchild
    holds a pipe open), and the metrics file was read to its end.
*/
#include "qn_backend.h"
#include "qn_fs.h"
#include "qn_log.h"
#include "qn_msg.h"
#include "qn_spawn.h"
#include "qn_resources.h"
#include "qn_warm.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include <sys/syscall.h>

#define S_TICK_MS              20
#define S_METRICS_POLL_MS      150
#define S_EOF_GRACE_MS         2000
#define S_PIPE_READ_MAX        65536
#define S_PACK_MAX             8192     //  bytes of whole lines per log event
#define S_METRICS_READ_MAX     (1024 * 1024)
#define S_TASK_NAME_MAX        100

typedef struct _s_local_t s_local_t;

//  An attempt: the front end's part (stdout and stderr fed from the
//  pipes, the metrics file read), then the process's
typedef struct {
    qn_backend_attempt_t base;
    s_local_t *backend;
    char *dir;                  //  the attempt's directory
    pid_t pid;
    bool exited;
    int status;                 //  from wait4
    struct rusage usage;        //  its resource use, from wait4
    bool has_usage;
    bool report_usage;          //  it asked for resources: report what it used
    int64_t exit_ms;            //  zclock_mono when reaped

    int out_fd;                 //  -1 once closed
    int err_fd;
    bool polling;               //  pipes registered on the loop
    int64_t metrics_next_ms;
    int64_t kill_ms;            //  SIGKILL time after a SIGTERM; 0 = none
    int exec_fd;                //  close-on-exec pipe: bytes = exec failed
    int pid_fd;                 //  pidfd of the process, readable once it exits; -1 if none
    //  A warm op: the worker running it (pid is the worker's), whether
    //  its socket is on the loop, whether we signalled or reaped it
    qn_warm_worker_t *warm;
    bool warm_polling;
    bool warm_signalled;
    bool warm_reaped;
} s_attempt_t;

struct _s_local_t {
    qn_backend_front_t front;   //  the attempts, in start order
    char *data_dir;
    int kill_grace_ms;
    zlistx_t *finished;         //  s_attempt_t finished from a poller, freed on the next timer
    int timer_id;
    void *child_stack;          //  qn_spawn's stack, mapped at the first start
    int null_fd;                //  /dev/null, the tasks' stdin
    qn_resources_t *resources;  //  GPUs and cgroups per attempt; NULL = none
    qn_warm_t *warm;            //  warm Python workers (--warm-python); NULL = none
};

static int s_tick (zloop_t *loop, int timer_id, void *arg);
static int s_pipe_readable (zloop_t *loop, zmq_pollitem_t *item, void *arg);


//  ---------------------------------------------------------------------
//  Attempt records

static void
s_attempt_unpoll (s_attempt_t *self)
{
    if (!self->polling)
        return;
    zmq_pollitem_t item = { NULL, 0, ZMQ_POLLIN, 0 };
    if (self->out_fd != -1) {
        item.fd = self->out_fd;
        zloop_poller_end (self->backend->front.loop, &item);
    }
    if (self->err_fd != -1) {
        item.fd = self->err_fd;
        zloop_poller_end (self->backend->front.loop, &item);
    }
    self->polling = false;
}

static int
s_attempt_poll (s_attempt_t *self)
{
    if (self->polling)
        return 0;
    int fds [2] = { self->out_fd, self->err_fd };
    for (int i = 0; i < 2; i++) {
        if (fds [i] == -1)
            continue;
        zmq_pollitem_t item = { NULL, fds [i], ZMQ_POLLIN, 0 };
        if (zloop_poller (self->backend->front.loop, &item, s_pipe_readable, self) == -1)
            return -1;
        //  POLLHUP shows as an error; we see the end of file in read()
        zloop_poller_set_tolerant (self->backend->front.loop, &item);
    }
    self->polling = true;
    return 0;
}

static void
s_warm_unpoll (s_attempt_t *self)
{
    if (!self->warm_polling)
        return;
    zmq_pollitem_t item = { NULL, qn_warm_fd (self->warm), ZMQ_POLLIN, 0 };
    zloop_poller_end (self->backend->front.loop, &item);
    self->warm_polling = false;
}

static void
s_attempt_destroy (s_attempt_t **self_p)
{
    s_attempt_t *self = *self_p;
    if (!self)
        return;
    s_attempt_unpoll (self);
    s_warm_unpoll (self);
    if (self->warm)
        qn_warm_release (self->backend->warm, self->warm, false, self->warm_reaped);
    if (self->pid_fd != -1) {
        zmq_pollitem_t item = { NULL, self->pid_fd, ZMQ_POLLIN, 0 };
        zloop_poller_end (self->backend->front.loop, &item);
        close (self->pid_fd);
    }
    if (self->out_fd != -1)
        close (self->out_fd);
    if (self->err_fd != -1)
        close (self->err_fd);
    if (self->exec_fd != -1)
        close (self->exec_fd);
    qn_backend_attempt_fini (&self->base);
    free (self->dir);
    free (self);
    *self_p = NULL;
}

static s_attempt_t *
s_attempt_new (s_local_t *backend, const qn_attempt_key_t *key)
{
    s_attempt_t *self = (s_attempt_t *) calloc (1, sizeof (s_attempt_t));
    if (!self)
        return NULL;
    int rc = qn_backend_attempt_init (&self->base, &backend->front, key,
                                      QN_BACKEND_ATTEMPT_STREAMS);
    //  Whole lines that one read of a pipe brings go out packed
    self->base.out.pack_max = self->base.err.pack_max = S_PACK_MAX;
    self->backend = backend;
    self->pid = -1;
    self->out_fd = -1;
    self->err_fd = -1;
    self->exec_fd = -1;
    self->pid_fd = -1;
    if (rc == -1)
        s_attempt_destroy (&self);
    return self;
}

//  Process groups outlive their leader as long as a member lives; we
//  signal the group even after the leader was reaped so that grandchildren
//  go too.
static void
s_attempt_signal (s_attempt_t *self, int sig)
{
    if (self->pid > 0 && !(self->warm && self->warm_reaped)) {
        kill (-self->pid, sig);
        self->warm_signalled = self->warm != NULL;
    }
}

//  SIGTERM now, SIGKILL after the grace.  The first reason wins: a task
//  canceled while it is being timed out stays "timed out".
static void
s_attempt_terminate (qn_backend_attempt_t *base, const char *reason, Qanat__EndKind kind)
{
    s_attempt_t *self = (s_attempt_t *) base;
    qn_backend_attempt_stopping (&self->base, reason, kind);
    if (self->kill_ms)
        return;
    s_attempt_signal (self, SIGTERM);
    self->kill_ms = zclock_mono () + self->backend->kill_grace_ms;
}


//  ---------------------------------------------------------------------
//  Output

//  Closes one pipe after its end of file (or when we give up on it),
//  handing out a last unterminated line.
static void
s_close_pipe (s_attempt_t *self, int *fd_p)
{
    if (*fd_p == -1)
        return;
    if (self->polling) {
        zmq_pollitem_t item = { NULL, *fd_p, ZMQ_POLLIN, 0 };
        zloop_poller_end (self->backend->front.loop, &item);
    }
    close (*fd_p);
    bool is_out = fd_p == &self->out_fd;
    *fd_p = -1;
    qn_backend_stream_flush (&self->base, is_out? &self->base.out: &self->base.err);
    if (self->out_fd == -1 && self->err_fd == -1)
        self->polling = false;
}

static void
s_read_pipe (s_attempt_t *self, int *fd_p)
{
    char buffer [S_PIPE_READ_MAX];
    ssize_t got = read (*fd_p, buffer, sizeof (buffer));
    if (got > 0)
        qn_backend_stream_feed (&self->base, fd_p == &self->out_fd? &self->base.out
                                                                  : &self->base.err,
                                buffer, (size_t) got);
    else
    if (got == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
        s_close_pipe (self, fd_p);
}

static bool s_attempt_step (s_attempt_t *self, int64_t now);

static int
s_free_finished (zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    (void) timer_id;
    s_local_t *backend = (s_local_t *) arg;
    s_attempt_t *attempt;
    while ((attempt = (s_attempt_t *) zlistx_detach (backend->finished, NULL)))
        s_attempt_destroy (&attempt);
    return 0;
}

//  Runs one step of an attempt now rather than at the next tick.  When
//  that finishes it, it stops watching its descriptors at once but is
//  freed from a timer: the loop may still hold this round's events for
//  it, and must find it alive.
static void
s_attempt_kick (s_attempt_t *self)
{
    s_local_t *backend = self->backend;
    if (s_attempt_step (self, zclock_mono ())) {
        zlistx_detach (backend->front.attempts, self->base.handle);
        self->base.handle = NULL;
        s_attempt_unpoll (self);
        s_warm_unpoll (self);
        if (self->pid_fd != -1) {
            zmq_pollitem_t item = { NULL, self->pid_fd, ZMQ_POLLIN, 0 };
            zloop_poller_end (backend->front.loop, &item);
            close (self->pid_fd);
            self->pid_fd = -1;
        }
        if (zlistx_size (backend->finished) == 0)
            zloop_timer (backend->front.loop, 1, 1, s_free_finished, backend);
        zlistx_add_end (backend->finished, self);
    }
}

static int
s_pipe_readable (zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    (void) loop;
    s_attempt_t *self = (s_attempt_t *) arg;
    if (item->fd == self->out_fd)
        s_read_pipe (self, &self->out_fd);
    else
    if (item->fd == self->err_fd)
        s_read_pipe (self, &self->err_fd);
    //  The end of the output of a process that already exited: finish
    if (self->exited && self->out_fd == -1 && self->err_fd == -1)
        s_attempt_kick (self);
    return 0;
}

static int
s_process_exited (zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    (void) loop;
    (void) item;
    s_attempt_t *self = (s_attempt_t *) arg;
    //  Readable stays readable: stop watching, the step reaps it.
    zmq_pollitem_t watched = { NULL, self->pid_fd, ZMQ_POLLIN, 0 };
    zloop_poller_end (self->backend->front.loop, &watched);
    close (self->pid_fd);
    self->pid_fd = -1;
    s_attempt_kick (self);
    return 0;
}


//  The warm worker's answer: the op's end, as a process's exit would be
static int
s_warm_readable (zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    (void) loop;
    (void) item;
    s_attempt_t *self = (s_attempt_t *) arg;
    int exit_code = 0;
    int rc = qn_warm_reply (self->warm, &exit_code);
    if (rc == 0)
        return 0;
    s_warm_unpoll (self);       //  an answer, or the worker's end: its exit is reaped
    if (rc == 1 && !self->exited) {
        self->exited = true;
        self->status = W_EXITCODE (exit_code, 0);
        self->exit_ms = zclock_mono ();
        s_attempt_kick (self);
    }
    return 0;
}

//  Hands the op to a warm worker of its code when it is one and the pool
//  has one: the worker's pid (the exec pipe closed: nothing execs), or -1
//  (run a process).
static pid_t
s_warm_start (s_local_t *self, s_attempt_t *attempt, const Qanat__Assign *assign,
              const char *workdir, char **envp, int out_fd, int err_fd, int exec_pipe [2],
              const qn_resources_grant_t *grant)
{
    const char *code = self->warm? qn_warm_code (assign): NULL;
    //  A worker cannot join a cgroup or change its GPUs per op
    if (!code || grant->cgroup_fd != -1 || grant->gpus_visible)
        return -1;
    qn_warm_worker_t *worker = qn_warm_take (self->warm, code, workdir, envp, out_fd, err_fd);
    if (!worker)
        return -1;
    if (qn_warm_send (worker, workdir, assign->argv [2], envp, out_fd, err_fd) == -1) {
        qn_warm_release (self->warm, worker, false, false);
        return -1;
    }
    attempt->warm = worker;
    zmq_pollitem_t item = { NULL, qn_warm_fd (worker), ZMQ_POLLIN, 0 };
    if (zloop_poller (self->front.loop, &item, s_warm_readable, attempt) == 0) {
        zloop_poller_set_tolerant (self->front.loop, &item);
        attempt->warm_polling = true;
    }
    for (int i = 0; i < 2; i++) {
        close (exec_pipe [i]);
        exec_pipe [i] = -1;
    }
    return qn_warm_pid (worker);
}


//  ---------------------------------------------------------------------
//  Metrics

//  Reads up to S_METRICS_READ_MAX new bytes.  Returns true when the end of
//  the file was reached, false when there is more to read.
static bool
s_read_metrics (s_attempt_t *self)
{
    return qn_backend_stream_read (&self->base, &self->base.metrics, S_METRICS_READ_MAX);
}


//  ---------------------------------------------------------------------
//  Finishing

//  The child writes to the close-on-exec pipe only when it could not
//  exec; a successful exec closes it empty.  Read once the process ended,
//  so it never blocks.
static bool
s_exec_failed (s_attempt_t *self)
{
    if (self->exec_fd == -1)
        return false;
    char byte;
    ssize_t got = read (self->exec_fd, &byte, 1);
    close (self->exec_fd);
    self->exec_fd = -1;
    return got == 1;
}

static void
s_attempt_finish (s_attempt_t *self)
{
    int exit_code = 0;
    int sig = 0;
    if (WIFEXITED (self->status))
        exit_code = WEXITSTATUS (self->status);
    else
    if (WIFSIGNALED (self->status)) {
        sig = WTERMSIG (self->status);
        exit_code = 128 + sig;
    }
    char reason [600] = "";
    if (self->base.stop_reason)
        snprintf (reason, sizeof (reason), "%s", self->base.stop_reason);
    else
    if (sig) {
        char name [64];
        qn_backend_signal_name (sig, name, sizeof (name));
        snprintf (reason, sizeof (reason), "killed by signal %s", name);
    }
    else
    if (exit_code != 0)
        snprintf (reason, sizeof (reason), "exit code %d", exit_code);

    //  What an attempt that asked for resources used, as its metrics: the
    //  peak resident memory of its largest process (bytes) and the CPU
    //  time of the process and the children it waited for (seconds)
    if (self->has_usage && self->report_usage) {
        const struct rusage *usage = &self->usage;
        int64_t now_us = zclock_time () * 1000;
        double cpu = usage->ru_utime.tv_sec + usage->ru_stime.tv_sec
                   + (usage->ru_utime.tv_usec + usage->ru_stime.tv_usec) / 1e6;
        const qn_backend_events_t *events = self->backend->front.events;
        events->metric (self->backend->front.arg, &self->base.key, "qanat.peak_rss",
                        (double) usage->ru_maxrss * 1024, 0, false, now_us);
        events->metric (self->backend->front.arg, &self->base.key, "qanat.cpu_seconds", cpu,
                        0, false, now_us);
    }
    //  Its GPUs are free again; the OOM killer's end says so (unless a
    //  cancel or timeout ended it first)
    char oom [128];
    if (self->backend->resources
    &&  qn_resources_attempt_end (self->backend->resources, &self->base.key, oom, sizeof oom)
    &&  !self->base.stop_reason)
        snprintf (reason, sizeof (reason), "%s", oom);
    //  A warm worker goes back to the pool when its op ended normally; one
    //  that died of a signal we did not send was lost, as an agent would
    //  be (the attempt is retried)
    bool worker_lost = false;
    if (self->warm) {
        bool healthy = !self->base.stop_reason && !self->warm_signalled && !self->warm_reaped;
        worker_lost = self->warm_reaped && sig && !self->base.stop_reason;
        s_warm_unpoll (self);
        qn_warm_release (self->backend->warm, self->warm, healthy, self->warm_reaped);
        self->warm = NULL;
        if (worker_lost) {
            char name [64];
            qn_backend_signal_name (sig, name, sizeof (name));
            snprintf (reason, sizeof (reason), "its warm Python worker was killed by signal %s",
                      name);
        }
    }
    Qanat__EndKind kind = QANAT__END_KIND__END_EXIT;
    if (worker_lost)
        kind = QANAT__END_KIND__END_LOST;
    else
    if (self->base.stop_reason)
        kind = self->base.stop_kind;
    else
    if (s_exec_failed (self))
        kind = QANAT__END_KIND__END_START_FAILED;

    qn_backend_attempt_finished (&self->base, exit_code, sig, reason, kind);
}

//  One step of an attempt's life, run from the tick.  Returns true when
//  the attempt has finished and can be forgotten.
static bool
s_attempt_step (s_attempt_t *self, int64_t now)
{
    s_local_t *backend = self->backend;
    if (!self->exited) {
        int status;
        pid_t rc = wait4 (self->pid, &status, WNOHANG, &self->usage);
        if (rc == self->pid || (rc == -1 && errno == ECHILD)) {
            self->exited = true;
            self->status = rc == self->pid? status: 0;
            self->has_usage = rc == self->pid && !self->warm;
            self->warm_reaped = self->warm != NULL;
            self->exit_ms = now;
        }
    }
    char reason [64];
    if (!self->exited && qn_backend_attempt_overdue (&self->base, now, reason, sizeof (reason))) {
        qn_log (QN_LOG_INFO, "local", "attempt %" PRIu64 "/%u/%u %s",
                      self->base.key.run_id, self->base.key.task_index, self->base.key.attempt, reason);
        s_attempt_terminate (&self->base, reason, QANAT__END_KIND__END_TIMEOUT);
    }
    //  After the grace, kill whatever remains of the group, leader or not
    if (self->kill_ms && now >= self->kill_ms) {
        s_attempt_signal (self, SIGKILL);
        self->kill_ms = 0;
    }
    if (backend->front.paused)
        return false;

    if (now >= self->metrics_next_ms && !self->exited) {
        s_read_metrics (self);
        self->metrics_next_ms = now + S_METRICS_POLL_MS;
    }
    if (!self->exited)
        return false;

    if (self->out_fd != -1 || self->err_fd != -1) {
        if (now - self->exit_ms < S_EOF_GRACE_MS)
            return false;
        //  A grandchild holds a pipe open: stop reading, and stop it, so
        //  that nothing of the task outlives its attempt
        qn_log (QN_LOG_DEBUG, "local", "attempt %" PRIu64 "/%u/%u: output still open %d ms "
                      "after exit, killing the process group",
                      self->base.key.run_id, self->base.key.task_index, self->base.key.attempt,
                      S_EOF_GRACE_MS);
        s_attempt_signal (self, SIGKILL);
        s_close_pipe (self, &self->out_fd);
        s_close_pipe (self, &self->err_fd);
    }
    //  Last read of the metrics, in slices so that a huge file cannot
    //  stall the loop
    if (!s_read_metrics (self))
        return false;
    qn_backend_stream_flush (&self->base, &self->base.metrics);
    s_attempt_finish (self);
    return true;
}

//  Callbacks may pause or resume us, which walks the list; so we walk a
//  copy of it here.
static int
s_tick (zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    (void) timer_id;
    s_local_t *self = (s_local_t *) arg;
    size_t count;
    qn_backend_attempt_t **attempts = qn_backend_front_list (&self->front, &count);
    if (!attempts)
        return 0;               //  none, or try again next tick
    int64_t now = zclock_mono ();
    for (size_t i = 0; i < count; i++)
        if (s_attempt_step ((s_attempt_t *) attempts [i], now))
            qn_backend_front_remove (&self->front, attempts [i]);
    free (attempts);
    //  No attempts, no ticking: an idle agent sleeps
    if (zlistx_size (self->front.attempts) == 0) {
        zloop_timer_end (self->front.loop, self->timer_id);
        self->timer_id = -1;
    }
    return 0;
}


//  ---------------------------------------------------------------------
//  Starting

static int
s_mkdir (const char *path, mode_t mode)
{
    if (mkdir (path, mode) == 0 || errno == EEXIST)
        return 0;
    return -1;
}

static bool
s_env_key_ok (const char *key)
{
    return key && *key && !strchr (key, '=');
}

//  Child environment: ours, overridden by Assign.env, overridden by the
//  QANAT_* variables we own.  Returns a NULL-terminated array of strings
//  (all owned by the array), or NULL.
static char **
s_build_env (const Qanat__Assign *assign, const char *metrics, const char *workdir,
             const qn_resources_grant_t *grant)
{
    char **extra = (char **) calloc (assign->n_env + 6, sizeof (char *));
    if (!extra)
        return NULL;
    size_t count = 0;
    bool failed = false;
    for (size_t i = 0; i < assign->n_env && !failed; i++) {
        const Qanat__Label *label = assign->env [i];
        if (!label || !s_env_key_ok (label->key))
            continue;
        if (asprintf (&extra [count], "%s=%s", label->key, label->value? label->value: "") < 0)
            failed = true;
        else
            count++;
    }
    if (!failed && asprintf (&extra [count], "QANAT_METRICS=%s", metrics) >= 0)
        count++;
    else
        failed = true;
    if (!failed && asprintf (&extra [count], "QANAT_WORKDIR=%s", workdir) >= 0)
        count++;
    else
        failed = true;
    //  Exactly the GPUs it was given (none: none), on a machine that has
    //  some, counted as nvidia-smi counts them (CUDA's own order puts the
    //  fastest first)
    if (!failed && grant->gpus_visible) {
        if ((extra [count] = strdup ("CUDA_DEVICE_ORDER=PCI_BUS_ID")))
            count++;
        else
            failed = true;
    }
    for (int i = 0; grant->gpus_visible && i < 2 && !failed; i++)
        if (asprintf (&extra [count], "%s=%s", i? "NVIDIA_VISIBLE_DEVICES": "CUDA_VISIBLE_DEVICES",
                      *grant->gpus || !i? grant->gpus: "none") >= 0)
            count++;
        else
            failed = true;
    extra [count] = NULL;
    char **envp = failed? NULL: qn_spawn_env (extra);
    qn_spawn_strings_free (extra);
    return envp;
}

//  The attempt's directory under the agent's data dir (malloc'd), or NULL
static char *
s_attempt_dir (s_local_t *self, const qn_attempt_key_t *key, const char *safe)
{
    char *dir = NULL;
    if (asprintf (&dir, "%s/attempts/%" PRIu64 "-%s-%u", self->data_dir,
                  key->run_id, safe, key->attempt) < 0)
        return NULL;
    //  Two live tasks whose names differ only in characters we replaced
    //  must not share a directory
    s_attempt_t *other = (s_attempt_t *) zlistx_first (self->front.attempts);
    while (other) {
        if (other->dir && streq (other->dir, dir)) {
            free (dir);
            if (asprintf (&dir, "%s/attempts/%" PRIu64 "-%s-%u-%u", self->data_dir,
                          key->run_id, safe, key->attempt, key->task_index) < 0)
                dir = NULL;
            break;
        }
        other = (s_attempt_t *) zlistx_next (self->front.attempts);
    }
    return dir;
}

//  Learns of the process's exit through a pidfd where the kernel has
//  them, and by the tick timer always
static void
s_watch_exit (s_local_t *self, s_attempt_t *attempt)
{
    attempt->pid_fd = (int) syscall (SYS_pidfd_open, attempt->pid, 0);
    if (attempt->pid_fd != -1) {
        zmq_pollitem_t item = { NULL, attempt->pid_fd, ZMQ_POLLIN, 0 };
        if (zloop_poller (self->front.loop, &item, s_process_exited, attempt) == -1) {
            close (attempt->pid_fd);
            attempt->pid_fd = -1;
        }
    }
    if (self->timer_id == -1) {
        self->timer_id = zloop_timer (self->front.loop, S_TICK_MS, 0, s_tick, self);
        if (self->timer_id == -1)
            qn_log (QN_LOG_ERROR, "local", "cannot start the process timer");
    }
}

//  `workdir:` runs the task in place, in a directory the site shares:
//  *workdir_p becomes it.  -1 with the reason when it is not a directory.
static int
s_in_place (const Qanat__Assign *assign, char **workdir_p, char *error, size_t error_size)
{
    if (!assign->workdir || !*assign->workdir)
        return 0;
    struct stat st;
    int found = stat (assign->workdir, &st);
    if (found == -1 || !S_ISDIR (st.st_mode)) {
        snprintf (error, error_size, "workdir %.300s: %s", assign->workdir,
                  found == -1? strerror (errno): "not a directory");
        return -1;
    }
    char *copy = strdup (assign->workdir);
    if (!copy) {
        snprintf (error, error_size, "out of memory");
        return -1;
    }
    free (*workdir_p);
    *workdir_p = copy;
    return 0;
}

//  An empty file at path (the attempt's $QANAT_METRICS); 0 or -1
static int
s_create_empty (const char *path, char *error, size_t error_size)
{
    int fd = open (path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd == -1) {
        snprintf (error, error_size, "cannot create %s: %s", path, strerror (errno));
        return -1;
    }
    close (fd);
    return 0;
}

static int
s_local_start (void *state, const Qanat__Assign *assign, char *error, size_t error_size)
{
    s_local_t *self = (s_local_t *) state;
    assert (self);
    qn_attempt_key_t key;
    if (qn_backend_front_check (&self->front, assign, QN_BACKEND_CHECK_COMMAND, &key, error,
                                error_size) == -1)
        return -1;

    char safe [S_TASK_NAME_MAX + 1];
    qn_backend_safe_name (assign->task_name? assign->task_name: "", S_TASK_NAME_MAX, safe, sizeof (safe));
    char *attempts_dir = NULL;
    char *dir = NULL;
    char *workdir = NULL;
    char *metrics = NULL;
    char **envp = NULL;
    char **argv = NULL;
    char *cannot_run = NULL;
    s_attempt_t *attempt = NULL;
    int out_pipe [2] = { -1, -1 };
    int err_pipe [2] = { -1, -1 };
    int exec_pipe [2] = { -1, -1 };
    int rc = -1;
    qn_resources_grant_t grant = { false, "", -1 };
    bool granted = false;

    if (asprintf (&attempts_dir, "%s/attempts", self->data_dir) < 0)
        attempts_dir = NULL;
    dir = s_attempt_dir (self, &key, safe);
    if (dir && asprintf (&workdir, "%s/work", dir) < 0)
        workdir = NULL;
    if (dir && asprintf (&metrics, "%s/metrics", dir) < 0)
        metrics = NULL;
    if (asprintf (&cannot_run, "qanat-agent: cannot run '%.200s': ", assign->argv [0]) < 0)
        cannot_run = NULL;
    if (!attempts_dir || !dir || !workdir || !metrics || !cannot_run) {
        snprintf (error, error_size, "out of memory");
        goto done;
    }
    if (s_mkdir (attempts_dir, 0700) == -1 || s_mkdir (dir, 0700) == -1) {
        snprintf (error, error_size, "cannot create %s: %s", dir, strerror (errno));
        goto done;
    }
    //  A fresh work directory, even when an earlier agent left one behind
    if (qn_fs_remove_tree (workdir) == -1) {
        snprintf (error, error_size, "cannot create %s: %s", workdir, strerror (errno));
        goto done;
    }
    if (qn_backend_make_workdir (assign, workdir, error, error_size) == -1)
        goto done;
    if (s_in_place (assign, &workdir, error, error_size) == -1)
        goto done;
    if (s_create_empty (metrics, error, error_size) == -1)
        goto done;

    if (self->resources && qn_resources_attempt_begin (self->resources, &key, assign, &grant,
                                                       error, error_size) == -1)
        goto done;
    granted = self->resources != NULL;
    attempt = s_attempt_new (self, &key);
    envp = s_build_env (assign, metrics, workdir, &grant);
    argv = (char **) calloc (assign->n_argv + 1, sizeof (char *));
    if (!attempt || !envp || !argv) {
        snprintf (error, error_size, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < assign->n_argv; i++)
        argv [i] = assign->argv [i];

    if (qn_backend_stream_open (&attempt->base.metrics, metrics, 0) == -1
    ||  pipe2 (out_pipe, O_CLOEXEC) == -1
    ||  pipe2 (err_pipe, O_CLOEXEC) == -1
    ||  pipe2 (exec_pipe, O_CLOEXEC) == -1) {
        snprintf (error, error_size, "cannot set up the process: %s", strerror (errno));
        goto done;
    }
    if (!self->child_stack)
        self->child_stack = qn_spawn_stack_new ();
    if (!self->child_stack) {
        snprintf (error, error_size, "out of memory");
        goto done;
    }
    qn_spawn_t spawn = {
        argv, envp, workdir, self->null_fd, out_pipe [1], err_pipe [1], exec_pipe [1],
        cannot_run, true, 0, self->child_stack, grant.cgroup_fd != -1, grant.cgroup_fd
    };
    pid_t pid = s_warm_start (self, attempt, assign, workdir, envp, out_pipe [1], err_pipe [1],
                              exec_pipe, &grant);
    if (pid == -1 && (pid = qn_spawn (&spawn)) == -1) {
        snprintf (error, error_size, "cannot start a process: %s", strerror (errno));
        goto done;
    }

    close (out_pipe [1]);
    close (err_pipe [1]);
    close (exec_pipe [1]);
    out_pipe [1] = err_pipe [1] = exec_pipe [1] = -1;
    attempt->exec_fd = exec_pipe [0];
    exec_pipe [0] = -1;
    if (attempt->exec_fd != -1)
        fcntl (attempt->exec_fd, F_SETFL, fcntl (attempt->exec_fd, F_GETFL) | O_NONBLOCK);
    attempt->pid = pid;
    attempt->dir = dir;
    dir = NULL;
    attempt->out_fd = out_pipe [0];
    attempt->err_fd = err_pipe [0];
    out_pipe [0] = err_pipe [0] = -1;
    fcntl (attempt->out_fd, F_SETFL, fcntl (attempt->out_fd, F_GETFL) | O_NONBLOCK);
    fcntl (attempt->err_fd, F_SETFL, fcntl (attempt->err_fd, F_GETFL) | O_NONBLOCK);
    attempt->base.timeout_s = assign->timeout_s;
    attempt->report_usage = assign->cpus || assign->memory_mb || assign->gpus;
    if (assign->timeout_s)
        attempt->base.deadline_ms = zclock_mono () + (int64_t) assign->timeout_s * 1000;
    attempt->metrics_next_ms = zclock_mono () + S_METRICS_POLL_MS;
    if (!self->front.paused && s_attempt_poll (attempt) == -1)
        qn_log (QN_LOG_WARNING, "local", "cannot watch the output of pid %d", (int) pid);
    qn_backend_front_add (&self->front, &attempt->base);
    s_watch_exit (self, attempt);
    self->front.events->started (self->front.arg, &key, pid, self->front.host, workdir, "");
    qn_log (QN_LOG_INFO, "local", "attempt %" PRIu64 "/%u/%u (%s) started as pid %d in %s",
                  key.run_id, key.task_index, key.attempt, safe, (int) pid, workdir);
    attempt = NULL;
    rc = 0;
    granted = false;

done:
    if (grant.cgroup_fd != -1)
        close (grant.cgroup_fd);
    if (granted) {
        char ignored [8];
        qn_resources_attempt_end (self->resources, &key, ignored, sizeof ignored);
    }
    for (int i = 0; i < 2; i++) {
        if (out_pipe [i] != -1)
            close (out_pipe [i]);
        if (err_pipe [i] != -1)
            close (err_pipe [i]);
        if (exec_pipe [i] != -1)
            close (exec_pipe [i]);
    }
    s_attempt_destroy (&attempt);
    qn_spawn_strings_free (envp);
    free (argv);                //  the strings belong to assign
    free (attempts_dir);
    free (dir);
    free (workdir);
    free (metrics);
    free (cannot_run);
    return rc;
}


//  ---------------------------------------------------------------------
//  The rest of the ops table

typedef struct {
    char *name;
    int64_t mtime_ns;
} s_entry_t;

static int
s_newest_first (const void *a, const void *b)
{
    const s_entry_t *x = (const s_entry_t *) a, *y = (const s_entry_t *) b;
    return x->mtime_ns > y->mtime_ns? -1: x->mtime_ns < y->mtime_ns? 1
         : strcmp (x->name, y->name);
}

//  At start: the attempt directories an earlier agent left behind, but
//  the newest keep (the agent keeps as many finished ones from now on),
//  go to the sweeper, so that thousands of them do not hold up the start
static void
s_sweep_attempts (const char *data_dir, size_t keep, qn_sweeper_t *sweeper)
{
    char *root = zsys_sprintf ("%s/attempts", data_dir);
    DIR *handle = root? opendir (root): NULL;
    s_entry_t *entries = NULL;
    size_t count = 0, capacity = 0;
    struct dirent *entry;
    while (handle && (entry = readdir (handle))) {
        struct stat st;
        if (entry->d_name [0] == '.'
        ||  fstatat (dirfd (handle), entry->d_name, &st, AT_SYMLINK_NOFOLLOW) == -1
        ||  !S_ISDIR (st.st_mode))
            continue;
        if (count == capacity) {
            size_t grown_capacity = capacity? capacity * 2: 64;
            s_entry_t *grown = (s_entry_t *) realloc (entries, grown_capacity * sizeof (s_entry_t));
            if (!grown)
                break;
            entries = grown;
            capacity = grown_capacity;
        }
        entries [count].name = strdup (entry->d_name);
        entries [count].mtime_ns = (int64_t) st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
        if (entries [count].name)
            count++;
    }
    if (handle)
        closedir (handle);
    if (count > keep) {
        qsort (entries, count, sizeof (s_entry_t), s_newest_first);
        for (size_t i = keep; i < count; i++) {
            char *path = zsys_sprintf ("%s/%s", root, entries [i].name);
            if (path)
                qn_sweeper_remove (sweeper, path);
            zstr_free (&path);
        }
        qn_log (QN_LOG_INFO, "local", "removing %zu old attempt directories from %s",
                      count - keep, root);
    }
    for (size_t i = 0; i < count; i++)
        free (entries [i].name);
    free (entries);
    zstr_free (&root);
}

static void
s_engine_destroy (qn_backend_attempt_t *base)
{
    s_attempt_t *attempt = (s_attempt_t *) base;
    s_attempt_destroy (&attempt);
}

static void
s_engine_pause (qn_backend_attempt_t *base, bool paused)
{
    s_attempt_t *attempt = (s_attempt_t *) base;
    if (paused)
        s_attempt_unpoll (attempt);
    else {
        s_attempt_poll (attempt);
        //  Time spent paused does not count against the EOF grace
        if (attempt->exited)
            attempt->exit_ms = zclock_mono ();
    }
}

static void s_engine_end_all (qn_backend_front_t *front, int grace_ms, const char *reason);
static void s_engine_lost (qn_backend_attempt_t *base, const char *reason);

static const qn_backend_engine_t s_engine = {
    .name = "local",
    .destroy = s_engine_destroy,
    .stop = s_attempt_terminate,
    .pause = s_engine_pause,
    .end_all = s_engine_end_all,
    .lost = s_engine_lost
};

static void *
s_local_create (zloop_t *loop, const qn_backend_config_t *config,
                const qn_backend_events_t *events, void *arg)
{
    assert (loop);
    assert (config && config->data_dir);
    assert (events);
    s_local_t *self = (s_local_t *) calloc (1, sizeof (s_local_t));
    if (!self)
        return NULL;
    int rc = qn_backend_front_init (&self->front, &s_engine, loop, config, events, arg);
    self->kill_grace_ms = config->kill_grace_ms > 0? config->kill_grace_ms
                                                   : QN_BACKEND_KILL_GRACE_MS;
    self->data_dir = strdup (config->data_dir);
    self->finished = zlistx_new ();
    s_sweep_attempts (config->data_dir, config->keep_workdirs, config->sweeper);
    self->timer_id = -1;
    self->null_fd = open ("/dev/null", O_RDONLY | O_CLOEXEC);
    self->resources = config->resources;
    const char *warm = qn_backend_option (config, "local", "warm_python");
    const char *rss = qn_backend_option (config, "local", "warm_rss_mb");
    //  Whole numbers only: a typo must not mean "no pool" or "no bound"
    if ((warm && (!*warm || strspn (warm, "0123456789") != strlen (warm) || atoi (warm) > 64))
    ||  (rss && (!*rss || strspn (rss, "0123456789") != strlen (rss) || strlen (rss) > 9))) {
        qn_log (QN_LOG_ERROR, "local", "local.warm_python wants 0 to 64 and local.warm_rss_mb "
                "a number of MB, not '%s' and '%s'", warm? warm: "", rss? rss: "");
        rc = -1;
    }
    else
    if (warm && atoi (warm) > 0) {
        self->warm = qn_warm_new ((size_t) atoi (warm), rss? (size_t) atol (rss): 0);
        if (!self->warm)
            rc = -1;
    }
    if (rc == -1 || !self->data_dir || !self->finished) {
        if (self->null_fd != -1)
            close (self->null_fd);
        qn_backend_front_fini (&self->front);
        zlistx_destroy (&self->finished);
        free (self->data_dir);
        free (self);
        return NULL;
    }
    return self;
}

//  Shutdown: SIGTERM to every process, SIGKILL after the grace, until all
//  were reaped.  Blocking on purpose: we are leaving, and want the tasks
//  gone first.
static void
s_engine_end_all (qn_backend_front_t *front, int grace_ms, const char *reason)
{
    s_local_t *self = (s_local_t *) front;
    s_attempt_t *attempt = (s_attempt_t *) zlistx_first (self->front.attempts);
    while (attempt) {
        qn_backend_attempt_stopping (&attempt->base, reason, QANAT__END_KIND__END_LOST);
        s_attempt_signal (attempt, SIGTERM);
        attempt = (s_attempt_t *) zlistx_next (self->front.attempts);
    }
    int64_t kill_at = zclock_mono () + grace_ms;
    bool killed = false;
    while (true) {
        bool all_reaped = true;
        attempt = (s_attempt_t *) zlistx_first (self->front.attempts);
        while (attempt) {
            if (!attempt->exited) {
                int status;
                pid_t rc = waitpid (attempt->pid, &status, WNOHANG);
                if (rc == attempt->pid || (rc == -1 && errno == ECHILD)) {
                    attempt->exited = true;
                    attempt->status = rc == attempt->pid? status: 0;
                }
                else
                    all_reaped = false;
            }
            attempt = (s_attempt_t *) zlistx_next (self->front.attempts);
        }
        if (all_reaped)
            break;
        if (!killed && zclock_mono () >= kill_at) {
            attempt = (s_attempt_t *) zlistx_first (self->front.attempts);
            while (attempt) {
                s_attempt_signal (attempt, SIGKILL);
                attempt = (s_attempt_t *) zlistx_next (self->front.attempts);
            }
            killed = true;
        }
        zclock_sleep (S_TICK_MS);
    }
}

//  Shutdown, then: what output is already there, then report (with the
//  stop reason end_all gave it)
static void
s_engine_lost (qn_backend_attempt_t *base, const char *reason)
{
    (void) reason;
    s_attempt_t *attempt = (s_attempt_t *) base;
    s_attempt_signal (attempt, SIGKILL);
    for (int i = 0; i < 16 && attempt->out_fd != -1; i++)
        s_read_pipe (attempt, &attempt->out_fd);
    for (int i = 0; i < 16 && attempt->err_fd != -1; i++)
        s_read_pipe (attempt, &attempt->err_fd);
    s_close_pipe (attempt, &attempt->out_fd);
    s_close_pipe (attempt, &attempt->err_fd);
    s_read_metrics (attempt);
    qn_backend_stream_flush (&attempt->base, &attempt->base.metrics);
    s_attempt_finish (attempt);
}

static void
s_local_destroy (void **state_p)
{
    assert (state_p);
    s_local_t *self = (s_local_t *) *state_p;
    if (!self)
        return;
    s_attempt_t *attempt = (s_attempt_t *) zlistx_first (self->front.attempts);
    while (attempt) {
        s_attempt_signal (attempt, SIGKILL);
        if (!attempt->exited || (attempt->warm && !attempt->warm_reaped))
            waitpid (attempt->pid, NULL, 0);
        attempt->warm_reaped = attempt->warm != NULL;
        attempt = (s_attempt_t *) zlistx_next (self->front.attempts);
    }
    qn_backend_front_fini (&self->front);
    while ((attempt = (s_attempt_t *) zlistx_detach (self->finished, NULL)))
        s_attempt_destroy (&attempt);
    zlistx_destroy (&self->finished);
    if (self->timer_id != -1)
        zloop_timer_end (self->front.loop, self->timer_id);
    qn_spawn_stack_destroy (&self->child_stack);
    qn_warm_destroy (&self->warm);
    if (self->null_fd != -1)
        close (self->null_fd);
    free (self->data_dir);
    free (self);
    *state_p = NULL;
}

const qn_backend_ops_t qn_backend_local = {
    .name = "local",
    .create = s_local_create,
    .start = s_local_start,
    .stop = qn_backend_front_stop,
    .set_paused = qn_backend_front_set_paused,
    .running = qn_backend_front_running,
    .shutdown = qn_backend_front_shutdown,
    .destroy = s_local_destroy
};
