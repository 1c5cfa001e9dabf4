/*  qn_bench - qanat's benchmark suite: one command that prints every figure.

    It starts the built coordinator (coordinator/qanatd) on a temporary data
    dir and random loopback ports, with durable commits unless a figure says
    otherwise, and drives it with simulated agents: many DEALER sockets in
    this process that speak the real protocol through qn_msg, in one thread
    with one zmq_poll over all of them.  Simulated agents answer at once and
    run nothing, so their figures measure the control plane only, and say
    so.  A client (qn_client) submits runs and watches them from the main
    thread, so a blocking call never stalls the agents.

    The coordinator's CPU time comes from /proc/PID/stat and its memory
    from /proc/PID/status.  The libtool wrapper script execs the real binary
    under the same pid; we check /proc/PID/exe and, should the wrapper
    still be the process, measure its child instead.

    Figures (see bench/README.md and docs/performance.md):
      a  dispatch throughput        d  agent scale (CPU, RSS)
      b  DAG hop latency            e  dispatch cost vs. queue depth
      c  log ingest                 f  memory: coordinator, store, real agent
      g  (a) with real agents and processes (the local backend)
      h  (c) with a real agent and 8 real tasks printing as fast as they can

    Every figure prints a line "figure: KEY = VALUE UNIT" that scripts can
    read, and the run ends with a summary table.  The exit status is 0 when
    every selected figure was produced, whether or not it met its target.
*/
#include "qn_client.h"
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>

#define RUN_TASKS_MAX       10000   //  a workflow holds at most this many tasks
#define LINE_BYTES          100     //  log line size for figure c
#define SIM_ATTEMPTS_MAX    1024

//  ---------------------------------------------------------------------
//  Settings and results

typedef struct {
    char *only;                     //  figures to run, e.g. "a,b"; NULL = all
    size_t tasks;                   //  a: tasks dispatched
    size_t agents_a;                //  a, e, f: simulated agents
    uint32_t slots;                 //  a, e, f: slots per simulated agent
    size_t chain;                   //  b: tasks in the chain
    size_t log_mb;                  //  c: megabytes (10^6) of log lines
    size_t log_window;              //  c: unacknowledged events per attempt
    size_t lines_per_event;         //  c: whole lines per LogChunk (the agent packs what one read gives)
    size_t scale [4];               //  d: agent counts
    size_t scale_count;
    double window_s;                //  d: measured window
    size_t depth;                   //  e: tasks queued in the deep case
    size_t depth_shallow;           //  e: tasks queued in the shallow case
    size_t depth_tasks;             //  e: matching tasks dispatched per case
    size_t runs;                    //  f: stored runs
    bool smoke;
    size_t real_tasks;              //  g: tasks on real agents
    bool no_sync;                   //  every coordinator with --no-sync
    char *builddir;
} settings_t;

typedef struct {
    char figure [80];
    char value [48];
    char target [32];
    const char *met;                //  "yes", "NO", "-" (no target), "error"
} row_t;

static settings_t s_set;
static row_t s_rows [64];
static size_t s_row_count;
static int s_errors;

//  Processes we started, killed on any exit.
static pid_t s_children [8];

static double
s_now (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int64_t
s_now_ns (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static bool
s_selected (char figure)
{
    return !s_set.only || strchr (s_set.only, figure) != NULL;
}

static void
s_say (const char *format, ...)
{
    va_list args;
    va_start (args, format);
    vprintf (format, args);
    va_end (args);
    fflush (stdout);
}

//  A figure, as a line scripts can read.
static void
s_figure (const char *key, double value, const char *unit)
{
    s_say ("figure: %s = %.6g %s\n", key, value, unit);
}

static void
s_row (const char *figure, const char *value, const char *target, const char *met)
{
    if (s_row_count < sizeof s_rows / sizeof s_rows [0]) {
        row_t *row = &s_rows [s_row_count++];
        snprintf (row->figure, sizeof row->figure, "%s", figure);
        snprintf (row->value, sizeof row->value, "%s", value);
        snprintf (row->target, sizeof row->target, "%s", target);
        row->met = met;
    }
}

static void
s_fail (const char *figure, const char *why)
{
    s_say ("ERROR in figure %s: %s\n", figure, why);
    s_row (figure, "error", "", "error");
    s_errors++;
}

//  ---------------------------------------------------------------------
//  /proc readers

//  utime + stime of pid in clock ticks; -1 when it cannot be read.
static long long
s_proc_cpu_ticks (pid_t pid)
{
    char path [64];
    snprintf (path, sizeof path, "/proc/%d/stat", (int) pid);
    FILE *file = fopen (path, "r");
    if (!file)
        return -1;
    char buffer [2048];
    size_t size = fread (buffer, 1, sizeof buffer - 1, file);
    fclose (file);
    buffer [size] = 0;
    //  The command name may hold spaces and parentheses: fields start
    //  after the last ')'.  utime and stime are fields 14 and 15, that is
    //  the 12th and 13th after the state (field 3).
    char *cursor = strrchr (buffer, ')');
    if (!cursor)
        return -1;
    cursor++;
    unsigned long long utime = 0, stime = 0;
    if (sscanf (cursor, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
                &utime, &stime) != 2)
        return -1;
    return (long long) (utime + stime);
}

//  A "Name:  N kB" field of /proc/PID/<file> (status, smaps_rollup), in
//  KiB; -1 when missing.
static long
s_proc_field_kb (pid_t pid, const char *file_name, const char *field)
{
    char path [64];
    snprintf (path, sizeof path, "/proc/%d/%s", (int) pid, file_name);
    FILE *file = fopen (path, "r");
    if (!file)
        return -1;
    char line [256];
    long value = -1;
    size_t length = strlen (field);
    while (fgets (line, sizeof line, file))
        if (strncmp (line, field, length) == 0 && line [length] == ':') {
            value = atol (line + length + 1);
            break;
        }
    fclose (file);
    return value;
}

static long
s_proc_status_kb (pid_t pid, const char *field)
{
    return s_proc_field_kb (pid, "status", field);
}

static char *
s_proc_exe (pid_t pid)
{
    char path [64], target [4096];
    snprintf (path, sizeof path, "/proc/%d/exe", (int) pid);
    ssize_t size = readlink (path, target, sizeof target - 1);
    if (size < 0)
        return strdup ("?");
    target [size] = 0;
    return strdup (target);
}

//  The pid that runs the real binary named name: pid itself when the
//  libtool wrapper exec'd it (the usual case), else a child of pid.
static pid_t
s_real_pid (pid_t pid, const char *name)
{
    char *exe = s_proc_exe (pid);
    bool real = strstr (exe, name) != NULL;
    free (exe);
    if (real)
        return pid;
    DIR *dir = opendir ("/proc");
    pid_t found = pid;
    struct dirent *entry;
    while (dir && (entry = readdir (dir))) {
        pid_t child = (pid_t) atoi (entry->d_name);
        if (child <= 0)
            continue;
        char path [64];
        snprintf (path, sizeof path, "/proc/%d/stat", (int) child);
        FILE *file = fopen (path, "r");
        if (!file)
            continue;
        char buffer [1024];
        size_t size = fread (buffer, 1, sizeof buffer - 1, file);
        fclose (file);
        buffer [size] = 0;
        char *cursor = strrchr (buffer, ')');
        int ppid = 0;
        if (cursor && sscanf (cursor + 1, " %*c %d", &ppid) == 1 && ppid == pid) {
            char *child_exe = s_proc_exe (child);
            if (strstr (child_exe, name))
                found = child;
            free (child_exe);
        }
    }
    if (dir)
        closedir (dir);
    return found;
}

//  The file system a path lives on: fsync on tmpfs costs nothing, so
//  "durable" figures mean little there.
static const char *
s_fs_name (const char *path)
{
    struct statfs fs;
    if (statfs (path, &fs))
        return "?";
    switch ((unsigned long) fs.f_type) {
        case 0xEF53UL:     return "ext2/3/4";
        case 0x01021994UL: return "tmpfs (fsync is free: durable figures are optimistic)";
        case 0x58465342UL: return "xfs";
        case 0x9123683EUL: return "btrfs";
        case 0x794C7630UL: return "overlayfs";
        default:           return "another file system";
    }
}

static long long s_du_blocks, s_du_bytes;

static int
s_du_visit (const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void) path;
    (void) ftw;
    if (flag == FTW_F) {
        s_du_blocks += (long long) st->st_blocks * 512;
        s_du_bytes += (long long) st->st_size;
    }
    return 0;
}

//  Disk usage (as du counts it) and apparent size of a directory tree.
static void
s_du (const char *dir, long long *used_p, long long *apparent_p)
{
    s_du_blocks = s_du_bytes = 0;
    nftw (dir, s_du_visit, 16, FTW_PHYS);
    *used_p = s_du_blocks;
    *apparent_p = s_du_bytes;
}

static int
s_rm_visit (const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void) st;
    (void) flag;
    (void) ftw;
    remove (path);
    return 0;
}

static void
s_rm_tree (const char *dir)
{
    nftw (dir, s_rm_visit, 16, FTW_DEPTH | FTW_PHYS);
}

//  ---------------------------------------------------------------------
//  Child processes: the coordinator and the real agent

typedef struct {
    pid_t pid;                      //  the process we started
    pid_t real;                     //  the one running the real binary
    char *exe;
    char *dir;                      //  temporary dir, ours
    char *data_dir;
    char *log_path;
    char *client_ep;
    char *agent_ep;
} proc_t;

static void
s_child_add (pid_t pid)
{
    for (size_t i = 0; i < sizeof s_children / sizeof s_children [0]; i++)
        if (!s_children [i]) {
            s_children [i] = pid;
            return;
        }
}

static void
s_child_forget (pid_t pid)
{
    for (size_t i = 0; i < sizeof s_children / sizeof s_children [0]; i++)
        if (s_children [i] == pid)
            s_children [i] = 0;
}

static void
s_kill_children (void)
{
    for (size_t i = 0; i < sizeof s_children / sizeof s_children [0]; i++)
        if (s_children [i] > 0) {
            kill (s_children [i], SIGKILL);
            waitpid (s_children [i], NULL, 0);
            s_children [i] = 0;
        }
}

static pid_t
s_spawn (char **argv, const char *log_path)
{
    pid_t pid = fork ();
    if (pid == 0) {
        int fd = open (log_path, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd >= 0) {
            dup2 (fd, 1);
            dup2 (fd, 2);
            close (fd);
        }
        int null = open ("/dev/null", O_RDONLY);
        if (null >= 0) {
            dup2 (null, 0);
            close (null);
        }
        //  czmq's handlers would otherwise be inherited as ignored/caught
        //  dispositions are reset by exec; the mask is not.
        sigset_t none;
        sigemptyset (&none);
        sigprocmask (SIG_SETMASK, &none, NULL);
        execv (argv [0], argv);
        fprintf (stderr, "cannot exec %s: %s\n", argv [0], strerror (errno));
        _exit (127);
    }
    if (pid > 0)
        s_child_add (pid);
    return pid;
}

//  Stops a child politely (SIGTERM), then firmly after timeout_s.
static void
s_stop_pid (pid_t pid, double timeout_s)
{
    if (pid <= 0)
        return;
    kill (pid, SIGTERM);
    double deadline = s_now () + timeout_s;
    while (s_now () < deadline) {
        if (waitpid (pid, NULL, WNOHANG) == pid) {
            s_child_forget (pid);
            return;
        }
        zclock_sleep (20);
    }
    kill (pid, SIGKILL);
    waitpid (pid, NULL, 0);
    s_child_forget (pid);
}

static void
s_proc_destroy (proc_t **self_p)
{
    proc_t *self = *self_p;
    if (self) {
        s_stop_pid (self->pid, 20);
        if (self->dir)
            s_rm_tree (self->dir);
        free (self->exe);
        free (self->dir);
        free (self->data_dir);
        free (self->log_path);
        free (self->client_ep);
        free (self->agent_ep);
        free (self);
        *self_p = NULL;
    }
}

//  Starts qanatd on random loopback ports and waits for the line that
//  names its endpoints.  durable = false adds --no-sync.
static proc_t *
s_qanatd_start (bool durable)
{
    if (s_set.no_sync)
        durable = false;
    proc_t *self = (proc_t *) zmalloc (sizeof (proc_t));
    const char *tmp = getenv ("TMPDIR");
    char *template = zsys_sprintf ("%s/qanat-bench-XXXXXX", tmp && *tmp? tmp: "/tmp");
    if (!mkdtemp (template)) {
        free (template);
        free (self);
        return NULL;
    }
    self->dir = template;
    self->data_dir = zsys_sprintf ("%s/coordinator", self->dir);
    self->log_path = zsys_sprintf ("%s/qanatd.log", self->dir);
    char *program = zsys_sprintf ("%s/coordinator/qanatd", s_set.builddir);
    char *argv [] = {
        program, (char *) "--data-dir", self->data_dir,
        (char *) "--client-endpoint", (char *) "tcp://127.0.0.1:*",
        (char *) "--agent-endpoint", (char *) "tcp://127.0.0.1:*",
        (char *) "--insecure", durable? NULL: (char *) "--no-sync", NULL
    };
    self->pid = s_spawn (argv, self->log_path);
    free (program);
    if (self->pid <= 0) {
        s_proc_destroy (&self);
        return NULL;
    }
    double deadline = s_now () + 20;
    while (s_now () < deadline && !self->client_ep) {
        if (waitpid (self->pid, NULL, WNOHANG) == self->pid) {
            s_child_forget (self->pid);
            self->pid = 0;
            break;
        }
        FILE *file = fopen (self->log_path, "r");
        char line [1024];
        while (file && fgets (line, sizeof line, file)) {
            char *clients = strstr (line, "clients on ");
            char *agents = strstr (line, ", agents on ");
            char *data = strstr (line, ", data in ");
            if (clients && agents && data && agents > clients && data > agents) {
                self->client_ep = strndup (clients + 11, (size_t) (agents - clients - 11));
                self->agent_ep = strndup (agents + 12, (size_t) (data - agents - 12));
                break;
            }
        }
        if (file)
            fclose (file);
        if (!self->client_ep)
            zclock_sleep (20);
    }
    if (!self->client_ep) {
        s_say ("qanatd did not start; its log (%s):\n", self->log_path);
        char *command = zsys_sprintf ("tail -20 '%s'", self->log_path);
        if (system (command)) {}
        free (command);
        s_proc_destroy (&self);
        return NULL;
    }
    self->real = s_real_pid (self->pid, "qanatd");
    self->exe = s_proc_exe (self->real);
    return self;
}

//  ---------------------------------------------------------------------
//  Client helpers

static qn_client_t *
s_client_new (proc_t *proc)
{
    //  Plaintext, like the coordinator (--insecure): no key file found in
    //  $HOME may turn CURVE on by surprise.
    char *error = NULL;
    qn_client_t *client = qn_client_new_keyed (proc->client_ep, "none", 300000, &error);
    if (!client)
        s_say ("cannot open a client: %s\n", error? error: "?");
    free (error);
    return client;
}

static int
s_start_run (qn_client_t *client, const char *yaml, uint64_t *run_id_p)
{
    Qanat__SubmitWorkflow submit = QANAT__SUBMIT_WORKFLOW__INIT;
    submit.filename = (char *) "bench.yaml";
    submit.source.data = (uint8_t *) yaml;
    submit.source.len = strlen (yaml);
    Qanat__StartRun start = QANAT__START_RUN__INIT;
    start.workflow = &submit;
    Qanat__Request request = QANAT__REQUEST__INIT;
    request.body_case = QANAT__REQUEST__BODY_START_RUN;
    request.start_run = &start;
    char *error = NULL;
    Qanat__Envelope *reply = qn_client_call (client, &request, &error);
    if (!reply) {
        s_say ("start run: %s\n", error? error: "failed");
        free (error);
        return -1;
    }
    if (run_id_p)
        *run_id_p = reply->reply->body_case == QANAT__REPLY__BODY_RUN? reply->reply->run->run_id: 0;
    qn_msg_free (&reply);
    return 0;
}

//  Counts the runs of workflow (newest limit) that have ended, and those of
//  them that did not succeed.  Returns the number listed, or -1.
static int
s_list_runs (qn_client_t *client, const char *workflow, uint32_t limit,
             size_t *ended_p, size_t *failed_p)
{
    Qanat__ListRuns list = QANAT__LIST_RUNS__INIT;
    list.workflow = (char *) workflow;
    list.limit = limit;
    Qanat__Request request = QANAT__REQUEST__INIT;
    request.body_case = QANAT__REQUEST__BODY_LIST_RUNS;
    request.list_runs = &list;
    char *error = NULL;
    Qanat__Envelope *reply = qn_client_call (client, &request, &error);
    if (!reply || reply->reply->body_case != QANAT__REPLY__BODY_RUNS) {
        s_say ("list runs: %s\n", error? error: "unexpected reply");
        free (error);
        qn_msg_free (&reply);
        return -1;
    }
    size_t ended = 0, failed = 0;
    Qanat__RunList *runs = reply->reply->runs;
    for (size_t i = 0; i < runs->n_runs; i++) {
        Qanat__RunStatus status = runs->runs [i]->status;
        if (status >= QANAT__RUN_STATUS__RUN_SUCCEEDED)
            ended++;
        if (status >= QANAT__RUN_STATUS__RUN_FAILED)
            failed++;
    }
    int listed = (int) runs->n_runs;
    qn_msg_free (&reply);
    *ended_p = ended;
    *failed_p = failed;
    return listed;
}

static int
s_get_stats (qn_client_t *client, Qanat__Stats *stats)
{
    Qanat__GetStats get = QANAT__GET_STATS__INIT;
    Qanat__Request request = QANAT__REQUEST__INIT;
    request.body_case = QANAT__REQUEST__BODY_GET_STATS;
    request.get_stats = &get;
    char *error = NULL;
    Qanat__Envelope *reply = qn_client_call (client, &request, &error);
    free (error);
    if (!reply || reply->reply->body_case != QANAT__REPLY__BODY_STATS) {
        qn_msg_free (&reply);
        return -1;
    }
    *stats = *reply->reply->stats;
    stats->base.unknown_fields = NULL;
    stats->base.n_unknown_fields = 0;
    qn_msg_free (&reply);
    return 0;
}

//  True when the agent named name is registered and connected.
static bool
s_agent_connected (qn_client_t *client, const char *name)
{
    Qanat__ListAgents get = QANAT__LIST_AGENTS__INIT;
    Qanat__Request request = QANAT__REQUEST__INIT;
    request.body_case = QANAT__REQUEST__BODY_LIST_AGENTS;
    request.list_agents = &get;
    char *error = NULL;
    Qanat__Envelope *reply = qn_client_call (client, &request, &error);
    free (error);
    bool connected = false;
    if (reply && reply->reply->body_case == QANAT__REPLY__BODY_AGENTS)
        for (size_t i = 0; i < reply->reply->agents->n_agents; i++)
            if (streq (reply->reply->agents->agents [i]->name, name)
            &&  reply->reply->agents->agents [i]->connected)
                connected = true;
    qn_msg_free (&reply);
    return connected;
}

//  A workflow of count independent `true` tasks, or a chain when chain
//  is set (each task needs the one before).  pool: selector, or NULL.
static char *
s_workflow_yaml (const char *name, size_t count, const char *pool, bool chain)
{
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream (&text, &size);
    if (!out)
        return NULL;
    fprintf (out, "name: %s\ntasks:\n", name);
    for (size_t i = 0; i < count; i++) {
        fprintf (out, "  t%zu:\n    run: \"true\"\n", i);
        if (pool)
            fprintf (out, "    on: {pool: %s}\n", pool);
        if (chain && i > 0)
            fprintf (out, "    needs: [t%zu]\n", i - 1);
    }
    fclose (out);
    return text;
}

//  ---------------------------------------------------------------------
//  Simulated agents: one thread, one zmq_poll over every socket

typedef enum { SIM_ECHO, SIM_LOG } sim_mode_t;

typedef struct {
    zsock_t *sock;
    char name [32];
    bool registered;
    int64_t last_finish_ns;         //  when it sent its last Finished
} sim_agent_t;

typedef struct {
    size_t agent;
    uint64_t run_id;
    uint32_t task;
    uint32_t attempt;
    uint64_t next_seq;              //  next seq to send
    uint64_t acked;                 //  highest seq acknowledged
    uint64_t logs_sent;
    bool done;                      //  every log line acknowledged
} sim_attempt_t;

typedef struct {
    //  Settings, fixed before the thread starts.
    const char *endpoint;
    size_t count;
    uint32_t capacity;
    const char *pool;               //  label pool=<pool>
    sim_mode_t mode;
    int heartbeat_ms;
    size_t connect_batch;           //  outstanding registrations at most
    size_t first_name;              //  agents are named sim-<first_name + i>
    bool record_hops;
    uint64_t log_lines;             //  log mode: lines per attempt
    uint64_t log_window;            //  log mode: unacknowledged events
    size_t log_attempts;            //  log mode: attempts to expect

    //  Results, read after the thread has stopped (or through the pipe).
    sim_agent_t *agents;
    size_t created;
    size_t registered;
    double registered_at;           //  s_now () when the last registered
    uint64_t assigns, finished_acked, acks, refusals, send_errors;
    bool open_failed;               //  a socket could not be opened
    uint64_t heartbeats_sent, heartbeat_replies;
    int64_t *hops;                  //  ns
    size_t hop_count, hop_alloc;
    sim_attempt_t attempts [SIM_ATTEMPTS_MAX];
    size_t attempt_count, attempts_done;
    int64_t log_first_ns, log_last_ack_ns;
    uint64_t log_events_acked;
} sim_t;

static int
s_sim_send (sim_t *self, sim_agent_t *agent, Qanat__Envelope *env)
{
    zframe_t *frame = qn_msg_encode (env);
    if (!frame) {
        self->send_errors++;
        return -1;
    }
    if (zframe_send (&frame, agent->sock, ZFRAME_DONTWAIT) == -1) {
        zframe_destroy (&frame);
        self->send_errors++;
        return -1;
    }
    return 0;
}

static void
s_sim_register (sim_t *self, sim_agent_t *agent)
{
    char key [] = "pool", backend [] = "local", version [] = "bench";
    Qanat__Label label = QANAT__LABEL__INIT;
    label.key = key;
    label.value = (char *) self->pool;
    Qanat__Label *labels [] = { &label };
    char *backends [] = { backend };
    Qanat__Register reg = QANAT__REGISTER__INIT;
    reg.name = agent->name;
    reg.labels = labels;
    reg.n_labels = 1;
    reg.backends = backends;
    reg.n_backends = 1;
    reg.capacity = self->capacity;
    reg.version = version;
    Qanat__Envelope env = QANAT__ENVELOPE__INIT;
    env.body_case = QANAT__ENVELOPE__BODY_REGISTER;
    env.register_ = &reg;
    s_sim_send (self, agent, &env);
}

static void
s_sim_credit (sim_t *self, sim_agent_t *agent, uint32_t slots)
{
    Qanat__Credit credit = QANAT__CREDIT__INIT;
    credit.slots = slots;
    Qanat__Envelope env = QANAT__ENVELOPE__INIT;
    env.body_case = QANAT__ENVELOPE__BODY_CREDIT;
    env.credit = &credit;
    s_sim_send (self, agent, &env);
}

static void
s_sim_heartbeat (sim_t *self, sim_agent_t *agent)
{
    Qanat__Heartbeat heartbeat = QANAT__HEARTBEAT__INIT;
    Qanat__Envelope env = QANAT__ENVELOPE__INIT;
    env.body_case = QANAT__ENVELOPE__BODY_HEARTBEAT;
    env.heartbeat = &heartbeat;
    if (s_sim_send (self, agent, &env) == 0)
        self->heartbeats_sent++;
}

//  Sends one event; body is set by the caller in event.
static int
s_sim_event (sim_t *self, sim_agent_t *agent, Qanat__Event *event,
             uint64_t run_id, uint32_t task, uint32_t attempt, uint64_t seq)
{
    Qanat__AttemptRef ref = QANAT__ATTEMPT_REF__INIT;
    ref.run_id = run_id;
    ref.task_index = task;
    ref.attempt = attempt;
    event->attempt = &ref;
    event->seq = seq;
    Qanat__Envelope env = QANAT__ENVELOPE__INIT;
    env.body_case = QANAT__ENVELOPE__BODY_EVENT;
    env.event = event;
    return s_sim_send (self, agent, &env);
}

static void
s_sim_started (sim_t *self, sim_agent_t *agent, uint64_t run_id, uint32_t task, uint32_t attempt)
{
    char host [] = "bench", workdir [] = "/nonexistent";
    Qanat__Started started = QANAT__STARTED__INIT;
    started.pid = 1;
    started.host = host;
    started.workdir = workdir;
    Qanat__Event event = QANAT__EVENT__INIT;
    event.body_case = QANAT__EVENT__BODY_STARTED;
    event.started = &started;
    s_sim_event (self, agent, &event, run_id, task, attempt, 1);
}

static void
s_sim_finished (sim_t *self, sim_agent_t *agent, uint64_t run_id, uint32_t task,
                uint32_t attempt, uint64_t seq)
{
    Qanat__Finished finished = QANAT__FINISHED__INIT;
    Qanat__Event event = QANAT__EVENT__INIT;
    event.body_case = QANAT__EVENT__BODY_FINISHED;
    event.finished = &finished;
    agent->last_finish_ns = s_now_ns ();
    s_sim_event (self, agent, &event, run_id, task, attempt, seq);
    s_sim_credit (self, agent, 1);
}

static void
s_sim_on_assign (sim_t *self, size_t index, Qanat__Assign *assign)
{
    sim_agent_t *agent = &self->agents [index];
    int64_t now = s_now_ns ();
    self->assigns++;
    if (!assign->attempt)
        return;
    if (self->record_hops && agent->last_finish_ns) {
        if (self->hop_count == self->hop_alloc) {
            self->hop_alloc = self->hop_alloc? 2 * self->hop_alloc: 1024;
            self->hops = (int64_t *) realloc (self->hops, self->hop_alloc * sizeof (int64_t));
        }
        self->hops [self->hop_count++] = now - agent->last_finish_ns;
        agent->last_finish_ns = 0;
    }
    uint64_t run_id = assign->attempt->run_id;
    uint32_t task = assign->attempt->task_index;
    uint32_t attempt = assign->attempt->attempt;
    s_sim_started (self, agent, run_id, task, attempt);
    if (self->mode == SIM_ECHO)
        s_sim_finished (self, agent, run_id, task, attempt, 2);
    else
    if (self->attempt_count < SIM_ATTEMPTS_MAX) {
        sim_attempt_t *entry = &self->attempts [self->attempt_count++];
        memset (entry, 0, sizeof *entry);
        entry->agent = index;
        entry->run_id = run_id;
        entry->task = task;
        entry->attempt = attempt;
        entry->next_seq = 2;
    }
}

static void
s_sim_on_ack (sim_t *self, zsock_t *pipe, size_t index, Qanat__Ack *ack)
{
    self->acks++;
    if (!ack->attempt)
        return;
    if (self->mode == SIM_ECHO) {
        if (ack->seq == 2)
            self->finished_acked++;
        return;
    }
    for (size_t i = 0; i < self->attempt_count; i++) {
        sim_attempt_t *entry = &self->attempts [i];
        if (entry->agent != index || entry->run_id != ack->attempt->run_id
        ||  entry->task != ack->attempt->task_index || entry->attempt != ack->attempt->attempt)
            continue;
        if (ack->seq > entry->acked) {
            //  Log lines are seq 2 .. log_lines + 1.
            uint64_t before = entry->acked > 1? entry->acked - 1: 0;
            uint64_t after = ack->seq > 1? ack->seq - 1: 0;
            if (after > self->log_lines)
                after = self->log_lines;
            if (after > before)
                self->log_events_acked += after - before;
            entry->acked = ack->seq;
        }
        if (!entry->done && entry->acked >= self->log_lines + 1) {
            entry->done = true;
            self->attempts_done++;
            self->log_last_ack_ns = s_now_ns ();
            s_sim_finished (self, &self->agents [index], entry->run_id, entry->task,
                            entry->attempt, self->log_lines + 2);
            if (self->attempts_done == self->log_attempts)
                zstr_send (pipe, "LOGDONE");
        }
        break;
    }
}

//  Sends log lines while each attempt's window has room; a bounded burst
//  per attempt, so acknowledgements are read in between.  Returns true
//  while lines remain to be sent.
static bool
s_sim_stream_logs (sim_t *self)
{
    //  lines_per_event lines of LINE_BYTES - 1 characters, joined by '\n':
    //  a chunk of whole lines, as the agent sends what one read returned.
    static char *chunk_text = NULL;
    static size_t chunk_size = 0;
    size_t per_event = s_set.lines_per_event? s_set.lines_per_event: 1;
    if (!chunk_text) {
        chunk_size = per_event * LINE_BYTES - 1;
        chunk_text = (char *) malloc (chunk_size);
        memset (chunk_text, 'x', chunk_size);
        for (size_t l = 1; l < per_event; l++)
            chunk_text [l * LINE_BYTES - 1] = '\n';
    }
    bool pending = false;
    for (size_t i = 0; i < self->attempt_count; i++) {
        sim_attempt_t *entry = &self->attempts [i];
        for (int burst = 0; burst < 256 && entry->logs_sent < self->log_lines
             && entry->next_seq - 1 - entry->acked < self->log_window; burst++) {
            Qanat__LogChunk chunk = QANAT__LOG_CHUNK__INIT;
            chunk.data.data = (uint8_t *) chunk_text;
            chunk.data.len = chunk_size;
            chunk.time_us = qn_now_us ();
            Qanat__Event event = QANAT__EVENT__INIT;
            event.body_case = QANAT__EVENT__BODY_LOG;
            event.log = &chunk;
            if (!self->log_first_ns)
                self->log_first_ns = s_now_ns ();
            if (s_sim_event (self, &self->agents [entry->agent], &event, entry->run_id,
                             entry->task, entry->attempt, entry->next_seq))
                break;
            entry->next_seq++;
            entry->logs_sent++;
        }
        if (entry->logs_sent < self->log_lines
        &&  entry->next_seq - 1 - entry->acked < self->log_window)
            pending = true;
    }
    return pending;
}

static void
s_sim_on_message (sim_t *self, zsock_t *pipe, size_t index, Qanat__Envelope *env)
{
    sim_agent_t *agent = &self->agents [index];
    switch (env->body_case) {
        case QANAT__ENVELOPE__BODY_WELCOME:
            if (!agent->registered) {
                agent->registered = true;
                self->registered++;
                s_sim_credit (self, agent, self->capacity);
                if (self->registered == self->count) {
                    self->registered_at = s_now ();
                    zstr_send (pipe, "REGISTERED");
                }
            }
            break;
        case QANAT__ENVELOPE__BODY_ASSIGN:
            s_sim_on_assign (self, index, env->assign);
            break;
        case QANAT__ENVELOPE__BODY_ACK:
            s_sim_on_ack (self, pipe, index, env->ack);
            break;
        case QANAT__ENVELOPE__BODY_HEARTBEAT:
            self->heartbeat_replies++;
            break;
        case QANAT__ENVELOPE__BODY_REFUSAL:
            self->refusals++;
            if (env->refusal->code == QANAT__REFUSAL_CODE__REFUSAL_NOT_REGISTERED) {
                if (agent->registered) {
                    agent->registered = false;
                    self->registered--;
                }
                s_sim_register (self, agent);
            }
            break;
        default:
            break;
    }
}

static void
s_sim_actor (zsock_t *pipe, void *args)
{
    sim_t *self = (sim_t *) args;
    self->agents = (sim_agent_t *) calloc (self->count, sizeof (sim_agent_t));
    zmq_pollitem_t *items = (zmq_pollitem_t *) calloc (self->count + 1, sizeof (zmq_pollitem_t));
    items [0].socket = zsock_resolve (pipe);
    items [0].events = ZMQ_POLLIN;
    zsock_signal (pipe, 0);

    //  Heartbeats are spread evenly over the interval: agent i is due at
    //  start + i * interval / count, and then every interval.
    int64_t period_ns = (int64_t) self->heartbeat_ms * 1000000LL;
    int64_t start_ns = s_now_ns () + period_ns;
    size_t cursor = 0;
    int64_t next_due = start_ns;
    bool stop = false;
    while (!stop) {
        //  Connect more agents while few registrations are outstanding, so
        //  the coordinator's listen backlog is never flooded.
        while (self->created < self->count && !self->open_failed
           &&  self->created - self->registered < self->connect_batch) {
            sim_agent_t *agent = &self->agents [self->created];
            snprintf (agent->name, sizeof agent->name, "sim-%zu", self->first_name + self->created);
            agent->sock = zsock_new (ZMQ_DEALER);
            if (!agent->sock) {
                //  Out of descriptors or sockets: say so rather than wait.
                if (!self->open_failed)
                    zstr_send (pipe, "FAILED");
                self->open_failed = true;
                break;
            }
            qn_msg_prepare_socket (agent->sock);
            zsock_set_sndhwm (agent->sock, 0);
            zsock_set_rcvhwm (agent->sock, 0);
            if (zsock_connect (agent->sock, "%s", self->endpoint) == -1) {
                zsock_destroy (&agent->sock);
                if (!self->open_failed)
                    zstr_send (pipe, "FAILED");
                self->open_failed = true;
                break;
            }
            items [self->created + 1].socket = zsock_resolve (agent->sock);
            items [self->created + 1].events = ZMQ_POLLIN;
            s_sim_register (self, agent);
            self->created++;
        }
        bool pending = self->mode == SIM_LOG && s_sim_stream_logs (self);
        int64_t now = s_now_ns ();
        long timeout = pending? 0: (long) ((next_due - now) / 1000000);
        if (timeout < 0)
            timeout = 0;
        if (timeout > 50)
            timeout = 50;
        if (zmq_poll (items, (int) self->created + 1, timeout) == -1 && zmq_errno () != EINTR)
            break;
        if (items [0].revents & ZMQ_POLLIN) {
            char *command = zstr_recv (pipe);
            if (!command || streq (command, "$TERM"))
                stop = true;
            else
            if (streq (command, "FINISHED"))
                zstr_sendf (pipe, "%llu", (unsigned long long) self->finished_acked);
            zstr_free (&command);
        }
        for (size_t i = 0; i < self->created; i++) {
            if (!(items [i + 1].revents & ZMQ_POLLIN))
                continue;
            void *sock = items [i + 1].socket;
            for (int count = 0; count < 1000; count++) {
                zmq_msg_t msg;
                zmq_msg_init (&msg);
                if (zmq_msg_recv (&msg, sock, ZMQ_DONTWAIT) == -1) {
                    zmq_msg_close (&msg);
                    break;
                }
                qn_msg_status_t status;
                Qanat__Envelope *env = qn_msg_decode (zmq_msg_data (&msg), zmq_msg_size (&msg),
                                                      &status, NULL);
                zmq_msg_close (&msg);
                if (env) {
                    s_sim_on_message (self, pipe, i, env);
                    qn_msg_free (&env);
                }
            }
        }
        //  Heartbeats due by now, in round-robin order.
        now = s_now_ns ();
        while (self->created && next_due <= now) {
            if (cursor < self->created && self->agents [cursor].registered)
                s_sim_heartbeat (self, &self->agents [cursor]);
            cursor++;
            if (cursor == self->count) {
                cursor = 0;
                start_ns += period_ns;
            }
            next_due = start_ns + (int64_t) ((double) cursor * period_ns / self->count);
        }
    }
    for (size_t i = 0; i < self->created; i++)
        zsock_destroy (&self->agents [i].sock);
    free (items);
}

static sim_t *
s_sim_new (const char *endpoint, size_t count, uint32_t capacity, const char *pool)
{
    sim_t *self = (sim_t *) zmalloc (sizeof (sim_t));
    self->endpoint = endpoint;
    self->count = count;
    self->capacity = capacity;
    self->pool = pool;
    self->mode = SIM_ECHO;
    self->heartbeat_ms = 1000;
    self->connect_batch = 200;
    self->log_window = 10000;
    return self;
}

static void
s_sim_destroy (sim_t **self_p)
{
    sim_t *self = *self_p;
    if (self) {
        free (self->agents);
        free (self->hops);
        free (self);
        *self_p = NULL;
    }
}

//  Waits for a word from the simulation; false on timeout.
static bool
s_sim_wait (zactor_t *actor, const char *word, double timeout_s)
{
    double deadline = s_now () + timeout_s;
    zpoller_t *poller = zpoller_new (actor, NULL);
    bool seen = false;
    while (!seen && !zsys_interrupted) {
        double left = deadline - s_now ();
        if (left <= 0)
            break;
        if (!zpoller_wait (poller, (int) (left * 1000) + 1))
            continue;
        char *message = zstr_recv (actor);
        bool failed = message && streq (message, "FAILED");
        if (message && streq (message, word))
            seen = true;
        zstr_free (&message);
        if (failed) {
            s_say ("   the simulated agents could not open their sockets\n");
            break;
        }
    }
    zpoller_destroy (&poller);
    return seen;
}

static uint64_t
s_sim_finished_count (zactor_t *actor)
{
    zstr_send (actor, "FINISHED");
    zsock_set_rcvtimeo (actor, 10000);
    //  Skip any earlier word (REGISTERED) still queued.
    for (int tries = 0; tries < 4; tries++) {
        char *answer = zstr_recv (actor);
        if (!answer)
            break;
        if (isdigit ((unsigned char) answer [0])) {
            uint64_t count = strtoull (answer, NULL, 10);
            zstr_free (&answer);
            return count;
        }
        zstr_free (&answer);
    }
    return 0;
}

//  ---------------------------------------------------------------------
//  Figures

//  Submits `tasks` independent tasks of workflow name (runs of at most
//  RUN_TASKS_MAX) with selector pool, and waits until every run ended.
//  Returns tasks/s from the first StartRun to the last run ended, or -1.
static double
s_dispatch_measure (proc_t *proc, qn_client_t *client, const char *name, size_t tasks,
                    const char *pool, double *cpu_share_p, double *commits_p)
{
    size_t runs = (tasks + RUN_TASKS_MAX - 1) / RUN_TASKS_MAX;
    size_t per_run = tasks < RUN_TASKS_MAX? tasks: RUN_TASKS_MAX;
    char *yaml = s_workflow_yaml (name, per_run, pool, false);
    size_t last = tasks - (runs - 1) * per_run;
    char *last_yaml = last == per_run? NULL: s_workflow_yaml (name, last, pool, false);
    Qanat__Stats before, after;
    memset (&before, 0, sizeof before);
    memset (&after, 0, sizeof after);
    s_get_stats (client, &before);
    long long cpu0 = s_proc_cpu_ticks (proc->real);
    double started = s_now ();
    int rc = 0;
    for (size_t r = 0; r < runs && rc == 0; r++)
        rc = s_start_run (client, r == runs - 1 && last_yaml? last_yaml: yaml, NULL);
    free (yaml);
    free (last_yaml);
    if (rc)
        return -1;
    //  Generous deadline: a slow machine still finishes, a hang does not
    //  last forever.
    double deadline = s_now () + 120 + tasks / 500.0;
    size_t ended = 0, failed = 0;
    while (!zsys_interrupted && s_now () < deadline) {
        if (s_list_runs (client, name, (uint32_t) runs, &ended, &failed) < 0)
            return -1;
        if (ended >= runs)
            break;
        zclock_sleep (10);
    }
    double elapsed = s_now () - started;
    long long cpu1 = s_proc_cpu_ticks (proc->real);
    s_get_stats (client, &after);
    if (ended < runs) {
        s_say ("  only %zu of %zu runs ended in time\n", ended, runs);
        return -1;
    }
    if (failed)
        s_say ("  warning: %zu runs did not succeed\n", failed);
    if (cpu_share_p)
        *cpu_share_p = (double) (cpu1 - cpu0) / sysconf (_SC_CLK_TCK) / elapsed;
    if (commits_p)
        *commits_p = (double) (after.commits - before.commits);
    return tasks / elapsed;
}

static sim_t *
s_sim_start (proc_t *proc, size_t count, uint32_t capacity, const char *pool, zactor_t **actor_p)
{
    sim_t *sim = s_sim_new (proc->agent_ep, count, capacity, pool);
    *actor_p = zactor_new (s_sim_actor, sim);
    return sim;
}

static void
s_figure_a (void)
{
    s_say ("\n== (a) dispatch throughput (control plane, simulated agents) ==\n");
    s_say ("   %zu tasks as runs of up to %d independent `true` tasks, %zu simulated agents x %u slots,\n"
           "   each answering an Assign at once with Started, Finished{exit 0} and Credit{1};\n"
           "   durable commits; from the first StartRun until ListRuns shows every run ended\n",
           s_set.tasks, RUN_TASKS_MAX, s_set.agents_a, s_set.slots);
    proc_t *proc = s_qanatd_start (true);
    if (!proc) {
        s_fail ("a dispatch throughput", "qanatd did not start");
        return;
    }
    qn_client_t *client = s_client_new (proc);
    if (!client) {
        s_fail ("a", "cannot open a client");
        s_proc_destroy (&proc);
        return;
    }
    zactor_t *actor = NULL;
    sim_t *sim = s_sim_start (proc, s_set.agents_a, s_set.slots, "bench", &actor);
    if (!s_sim_wait (actor, "REGISTERED", 60))
        s_fail ("a dispatch throughput", "simulated agents did not register");
    else {
        double cpu = 0, commits = 0;
        double rate = s_dispatch_measure (proc, client, "bench-a", s_set.tasks, "bench", &cpu, &commits);
        if (rate < 0)
            s_fail ("a dispatch throughput", "the runs did not finish");
        else {
            s_say ("   %.0f tasks/s; qanatd used %.0f%% of one core; %.0f commits (%.1f tasks per commit)\n",
                   rate, cpu * 100, commits, commits > 0? s_set.tasks / commits: 0);
            s_say ("   ratio to target (>= 20,000 tasks/s): %.2f\n", rate / 20000);
            s_figure ("a.dispatch", rate, "tasks/s");
            s_figure ("a.qanatd_cpu", cpu * 100, "%core");
            char value [48];
            snprintf (value, sizeof value, "%.0f tasks/s", rate);
            s_row ("a dispatch throughput (ctl plane, sim agents)", value, ">= 20000 tasks/s",
                   rate >= 20000? "yes": "NO");
        }
    }
    zactor_destroy (&actor);
    s_sim_destroy (&sim);
    qn_client_destroy (&client);
    s_proc_destroy (&proc);
}

static int
s_compare_i64 (const void *a, const void *b)
{
    int64_t x = *(const int64_t *) a, y = *(const int64_t *) b;
    return x < y? -1: x > y;
}

//  Nearest-rank percentile of a sorted array.
static double
s_percentile (const int64_t *sorted, size_t count, double q)
{
    size_t rank = (size_t) ceil (q * count);
    if (rank < 1)
        rank = 1;
    if (rank > count)
        rank = count;
    return (double) sorted [rank - 1];
}

static void
s_figure_b (void)
{
    s_say ("\n== (b) DAG hop latency (control plane, simulated agent) ==\n");
    s_say ("   a chain of %zu `true` tasks (each needs the previous) on one simulated agent (%u slots);\n"
           "   hop = from the agent sending Finished of task i to it receiving the Assign of task i+1\n"
           "   (CLOCK_MONOTONIC in the bench process); durable commits\n", s_set.chain, s_set.slots);
    proc_t *proc = s_qanatd_start (true);
    if (!proc) {
        s_fail ("b hop latency", "qanatd did not start");
        return;
    }
    qn_client_t *client = s_client_new (proc);
    if (!client) {
        s_fail ("b", "cannot open a client");
        s_proc_destroy (&proc);
        return;
    }
    zactor_t *actor = NULL;
    sim_t *sim = s_sim_new (proc->agent_ep, 1, s_set.slots, "bench");
    sim->record_hops = true;
    actor = zactor_new (s_sim_actor, sim);
    char *yaml = s_workflow_yaml ("bench-b", s_set.chain, "bench", true);
    bool ok = s_sim_wait (actor, "REGISTERED", 60) && s_start_run (client, yaml, NULL) == 0;
    free (yaml);
    size_t ended = 0, failed = 0;
    double deadline = s_now () + 60 + s_set.chain / 20.0;
    while (ok && !zsys_interrupted && s_now () < deadline) {
        if (s_list_runs (client, "bench-b", 1, &ended, &failed) < 0)
            ok = false;
        else
        if (ended)
            break;
        else
            zclock_sleep (20);
    }
    zactor_destroy (&actor);      //  the results are ours to read from here
    if (!ok || !ended || sim->hop_count == 0)
        s_fail ("b hop latency", "the chain did not finish");
    else {
        qsort (sim->hops, sim->hop_count, sizeof (int64_t), s_compare_i64);
        double median = s_percentile (sim->hops, sim->hop_count, 0.5) / 1e6;
        double p90 = s_percentile (sim->hops, sim->hop_count, 0.9) / 1e6;
        double p99 = s_percentile (sim->hops, sim->hop_count, 0.99) / 1e6;
        double max = (double) sim->hops [sim->hop_count - 1] / 1e6;
        double min = (double) sim->hops [0] / 1e6;
        s_say ("   %zu hops: min %.3f ms, median %.3f ms, p90 %.3f ms, p99 %.3f ms, max %.3f ms\n",
               sim->hop_count, min, median, p90, p99, max);
        s_say ("   ratio to target: median %.2f of 2 ms, p99 %.2f of 10 ms\n", median / 2, p99 / 10);
        s_figure ("b.hop_median", median, "ms");
        s_figure ("b.hop_p90", p90, "ms");
        s_figure ("b.hop_p99", p99, "ms");
        s_figure ("b.hop_max", max, "ms");
        char value [48];
        snprintf (value, sizeof value, "%.3f ms", median);
        s_row ("b hop latency median (ctl plane, sim agent)", value, "< 2 ms", median < 2? "yes": "NO");
        snprintf (value, sizeof value, "%.3f ms", p90);
        s_row ("b hop latency p90", value, "", "-");
        snprintf (value, sizeof value, "%.3f ms", p99);
        s_row ("b hop latency p99", value, "< 10 ms", p99 < 10? "yes": "NO");
        snprintf (value, sizeof value, "%.3f ms", max);
        s_row ("b hop latency max", value, "", "-");
    }
    s_sim_destroy (&sim);
    qn_client_destroy (&client);
    s_proc_destroy (&proc);
}

static void
s_figure_c (void)
{
    size_t attempts = 8;
    size_t per_event = s_set.lines_per_event? s_set.lines_per_event: 1;
    uint64_t lines = (uint64_t) s_set.log_mb * 1000000 / LINE_BYTES / attempts / per_event;
    if (lines == 0)
        lines = 1;
    //  From here "lines" counts events; each carries per_event lines.
    s_say ("\n== (c) log ingest (control plane, simulated agents) ==\n");
    s_say ("   %zu simulated attempts (one per agent) each send %llu LogChunk events of %zu lines of\n"
           "   %d bytes (%.1f MB in all), keeping up to %zu unacknowledged events per attempt;\n"
           "   durable commits; from the first line sent to the Ack of the last\n",
           attempts, (unsigned long long) lines, per_event, LINE_BYTES,
           (double) lines * per_event * attempts * LINE_BYTES / 1e6, s_set.log_window);
    proc_t *proc = s_qanatd_start (true);
    if (!proc) {
        s_fail ("c log ingest", "qanatd did not start");
        return;
    }
    qn_client_t *client = s_client_new (proc);
    if (!client) {
        s_fail ("c", "cannot open a client");
        s_proc_destroy (&proc);
        return;
    }
    sim_t *sim = s_sim_new (proc->agent_ep, attempts, 1, "bench");
    sim->mode = SIM_LOG;
    sim->log_lines = lines;
    sim->log_window = s_set.log_window;
    sim->log_attempts = attempts;
    zactor_t *actor = zactor_new (s_sim_actor, sim);
    char *yaml = s_workflow_yaml ("bench-c", attempts, "bench", false);
    long long cpu0 = s_proc_cpu_ticks (proc->real);
    double wall0 = s_now ();
    bool ok = s_sim_wait (actor, "REGISTERED", 60) && s_start_run (client, yaml, NULL) == 0;
    free (yaml);
    ok = ok && s_sim_wait (actor, "LOGDONE", 120 + (double) s_set.log_mb);
    double wall1 = s_now ();
    long long cpu1 = s_proc_cpu_ticks (proc->real);
    long rss = s_proc_status_kb (proc->real, "VmRSS");
    Qanat__Stats stats;
    memset (&stats, 0, sizeof stats);
    s_get_stats (client, &stats);
    zactor_destroy (&actor);
    if (!ok || !sim->log_last_ack_ns)
        s_fail ("c log ingest", "the log lines were not all acknowledged");
    else {
        double seconds = (double) (sim->log_last_ack_ns - sim->log_first_ns) / 1e9;
        double total_lines = (double) lines * per_event * attempts;
        double mbps = total_lines * LINE_BYTES / 1e6 / seconds;
        long long used = 0, apparent = 0;
        s_du (proc->data_dir, &used, &apparent);
        s_say ("   %.0f lines in %.2f s: %.1f MB/s, %.0f lines/s; %llu commits (%.0f events per commit);\n"
               "   qanatd %.0f%% of one core, RSS %.1f MiB; store %.1f MB on disk\n",
               total_lines, seconds, mbps, total_lines / seconds,
               (unsigned long long) stats.commits,
               stats.commits? (double) stats.events_committed / stats.commits: 0,
               (double) (cpu1 - cpu0) / sysconf (_SC_CLK_TCK) / (wall1 - wall0) * 100,
               rss / 1024.0, used / 1e6);
        s_say ("   ratio to target (>= 100 MB/s): %.2f\n", mbps / 100);
        s_figure ("c.log_ingest", mbps, "MB/s");
        s_figure ("c.log_lines", total_lines / seconds, "lines/s");
        char value [48];
        snprintf (value, sizeof value, "%.1f MB/s", mbps);
        s_row ("c log ingest (ctl plane, sim agents)", value, ">= 100 MB/s", mbps >= 100? "yes": "NO");
        snprintf (value, sizeof value, "%.0f lines/s", total_lines / seconds);
        s_row ("c log ingest, lines", value, "", "-");
    }
    s_sim_destroy (&sim);
    qn_client_destroy (&client);
    s_proc_destroy (&proc);
}

//  Figure d runs its simulated agents in helper processes (this program
//  again, with --sim-child), as many as the open-file limit asks for: each
//  DEALER socket costs two descriptors here (the TCP connection and the
//  socket's mailbox), and the hard limit may not be raised.  A helper
//  prints REGISTERED once all its agents are welcome, runs until its
//  stdin closes, then prints its counters.
typedef struct {
    pid_t pid;
    int to_child;                   //  its stdin; closing it stops it
    FILE *from_child;               //  its stdout
    bool registered;
} helper_t;

static int
s_sim_child_main (const char *endpoint, size_t first, size_t count)
{
    sim_t *sim = s_sim_new (endpoint, count, 4, "bench");
    sim->first_name = first;
    zactor_t *actor = zactor_new (s_sim_actor, sim);
    bool ok = s_sim_wait (actor, "REGISTERED", 120 + count / 50.0);
    printf ("%s\n", ok? "REGISTERED": "FAILED");
    fflush (stdout);
    char line [64];
    while (fgets (line, sizeof line, stdin))
        ;
    zactor_destroy (&actor);
    printf ("STATS %llu %llu %llu\n", (unsigned long long) sim->heartbeats_sent,
            (unsigned long long) sim->heartbeat_replies, (unsigned long long) sim->refusals);
    fflush (stdout);
    s_sim_destroy (&sim);
    return ok? 0: 1;
}

static int
s_helper_start (helper_t *helper, const char *endpoint, size_t first, size_t count)
{
    int down [2], up [2];
    if (pipe (down) || pipe (up))
        return -1;
    //  The libtool wrapper, not /proc/self/exe: the real binary finds
    //  libqanat only through the wrapper's environment.
    char *self_exe = zsys_sprintf ("%s/bench/qn_bench", s_set.builddir);
    if (access (self_exe, X_OK)) {
        free (self_exe);
        self_exe = s_proc_exe (getpid ());
    }
    char first_text [32], count_text [32];
    snprintf (first_text, sizeof first_text, "%zu", first);
    snprintf (count_text, sizeof count_text, "%zu", count);
    pid_t pid = fork ();
    if (pid == 0) {
        dup2 (down [0], 0);
        dup2 (up [1], 1);
        close (down [0]); close (down [1]); close (up [0]); close (up [1]);
        sigset_t none;
        sigemptyset (&none);
        sigprocmask (SIG_SETMASK, &none, NULL);
        char *argv [] = { self_exe, (char *) "--sim-child", (char *) endpoint,
                          first_text, count_text, NULL };
        execv (self_exe, argv);
        _exit (127);
    }
    free (self_exe);
    close (down [0]);
    close (up [1]);
    if (pid < 0) {
        close (down [1]);
        close (up [0]);
        return -1;
    }
    s_child_add (pid);
    helper->pid = pid;
    helper->to_child = down [1];
    helper->from_child = fdopen (up [0], "r");
    return 0;
}

//  Waits until every helper said REGISTERED; false on failure or timeout.
static bool
s_helpers_registered (helper_t *helpers, size_t count, double timeout_s)
{
    double deadline = s_now () + timeout_s;
    size_t done = 0;
    while (done < count && s_now () < deadline) {
        struct pollfd fds [64];
        for (size_t i = 0; i < count; i++) {
            fds [i].fd = fileno (helpers [i].from_child);
            fds [i].events = helpers [i].registered? 0: POLLIN;
            fds [i].revents = 0;
        }
        if (poll (fds, count, 200) <= 0)
            continue;
        for (size_t i = 0; i < count; i++)
            if (fds [i].revents & (POLLIN | POLLHUP)) {
                char line [64];
                if (!fgets (line, sizeof line, helpers [i].from_child)
                ||  strncmp (line, "REGISTERED", 10) != 0) {
                    s_say ("   helper %d: %s\n", (int) helpers [i].pid,
                           feof (helpers [i].from_child)? "exited": line);
                    return false;
                }
                helpers [i].registered = true;
                done++;
            }
    }
    return done == count;
}

//  Stops the helpers and adds up their counters.
static void
s_helpers_stop (helper_t *helpers, size_t count, unsigned long long *sent,
                unsigned long long *answered, unsigned long long *refused)
{
    *sent = *answered = *refused = 0;
    for (size_t i = 0; i < count; i++)
        if (helpers [i].to_child >= 0) {
            close (helpers [i].to_child);
            helpers [i].to_child = -1;
        }
    for (size_t i = 0; i < count; i++) {
        if (!helpers [i].from_child)
            continue;
        char line [128];
        while (fgets (line, sizeof line, helpers [i].from_child)) {
            unsigned long long a, b, c;
            if (sscanf (line, "STATS %llu %llu %llu", &a, &b, &c) == 3) {
                *sent += a;
                *answered += b;
                *refused += c;
            }
        }
        fclose (helpers [i].from_child);
        helpers [i].from_child = NULL;
        s_stop_pid (helpers [i].pid, 20);
    }
}

static void
s_figure_d (void)
{
    struct rlimit limit;
    getrlimit (RLIMIT_NOFILE, &limit);
    size_t per_process = limit.rlim_cur > 1024? (limit.rlim_cur - 512) / 2: 256;
    s_say ("\n== (d) agent scale (control plane, simulated agents) ==\n");
    s_say ("   N simulated agents, registered and heartbeating at 1 Hz spread evenly, in helper\n"
           "   processes of at most %zu agents each (one zmq_poll per process; each DEALER costs\n"
           "   2 descriptors and the open-file limit is %llu); qanatd CPU and RSS over a %.0f s\n"
           "   window after all registered\n", per_process,
           (unsigned long long) limit.rlim_cur, s_set.window_s);
    for (size_t k = 0; k < s_set.scale_count; k++) {
        size_t count = s_set.scale [k];
        char label [80];
        snprintf (label, sizeof label, "d %zu agents, qanatd CPU", count);
        proc_t *proc = s_qanatd_start (true);
        if (!proc) {
            s_fail (label, "qanatd did not start");
            continue;
        }
        size_t processes = (count + per_process - 1) / per_process;
        if (processes > 64)
            processes = 64;
        helper_t helpers [64];
        memset (helpers, 0, sizeof helpers);
        double reg0 = s_now ();
        bool ok = true;
        size_t first = 0;
        for (size_t i = 0; i < processes && ok; i++) {
            size_t share = count / processes + (i < count % processes? 1: 0);
            helpers [i].to_child = -1;
            ok = s_helper_start (&helpers [i], proc->agent_ep, first, share) == 0;
            first += share;
        }
        ok = ok && s_helpers_registered (helpers, processes, 120 + count / 50.0);
        if (!ok) {
            unsigned long long sent, answered, refused;
            s_helpers_stop (helpers, processes, &sent, &answered, &refused);
            s_fail (label, "the simulated agents did not all register");
        }
        else {
            double registration = s_now () - reg0;
            zclock_sleep (1000);        //  let the registration burst settle
            long long cpu0 = s_proc_cpu_ticks (proc->real);
            double wall0 = s_now ();
            zclock_sleep ((int) (s_set.window_s * 1000));
            long long cpu1 = s_proc_cpu_ticks (proc->real);
            double wall1 = s_now ();
            long rss = s_proc_status_kb (proc->real, "VmRSS");
            long hwm = s_proc_status_kb (proc->real, "VmHWM");
            unsigned long long sent, answered, refused;
            s_helpers_stop (helpers, processes, &sent, &answered, &refused);
            double share = (double) (cpu1 - cpu0) / sysconf (_SC_CLK_TCK) / (wall1 - wall0);
            s_say ("   %zu agents in %zu process(es): registered in %.2f s; qanatd %.1f%% of one core,\n"
                   "   RSS %.1f MiB (peak %.1f MiB); %llu heartbeats sent, %llu answered, %llu refusals in all\n",
                   count, processes, registration, share * 100, rss / 1024.0, hwm / 1024.0,
                   sent, answered, refused);
            char key [64], value [48];
            snprintf (key, sizeof key, "d.cpu_%zu", count);
            s_figure (key, share * 100, "%core");
            snprintf (key, sizeof key, "d.rss_%zu", count);
            s_figure (key, rss / 1024.0, "MiB");
            snprintf (value, sizeof value, "%.1f %% of a core", share * 100);
            if (count == 10000) {
                s_say ("   ratio to target (< 30%% of one core): %.2f\n", share / 0.30);
                s_row ("d 10000 agents, qanatd CPU (ctl plane, sim)", value, "< 30 %", share < 0.30? "yes": "NO");
            }
            else
                s_row (label, value, "", "-");
            snprintf (label, sizeof label, "d %zu agents, qanatd RSS", count);
            snprintf (value, sizeof value, "%.1f MiB", rss / 1024.0);
            s_row (label, value, "", "-");
        }
        s_proc_destroy (&proc);
    }
}

//  Submits background runs of workflow name until total tasks are queued.
static int
s_queue_background (qn_client_t *client, size_t *queued, size_t total)
{
    size_t runs = 0;
    double started = s_now ();
    while (*queued < total && !zsys_interrupted) {
        size_t count = total - *queued < RUN_TASKS_MAX? total - *queued: RUN_TASKS_MAX;
        char *yaml = s_workflow_yaml ("bench-e-background", count, "none", false);
        int rc = s_start_run (client, yaml, NULL);
        free (yaml);
        if (rc)
            return -1;
        *queued += count;
        if (++runs % 10 == 0)
            s_say ("   ... %zu tasks queued (%.0f s)\n", *queued, s_now () - started);
    }
    return 0;
}

static void
s_figure_e (void)
{
    s_say ("\n== (e) dispatch cost vs. queue depth (control plane, simulated agents) ==\n");
    s_say ("   background tasks queued with a selector no agent matches (on: {pool: none}), then\n"
           "   %zu matching tasks dispatched as in (a) on %zu simulated agents x %u slots; durable\n",
           s_set.depth_tasks, s_set.agents_a, s_set.slots);
    proc_t *proc = s_qanatd_start (true);
    if (!proc) {
        s_fail ("e queue depth", "qanatd did not start");
        return;
    }
    qn_client_t *client = s_client_new (proc);
    if (!client) {
        s_fail ("e", "cannot open a client");
        s_proc_destroy (&proc);
        return;
    }
    zactor_t *actor = NULL;
    sim_t *sim = s_sim_start (proc, s_set.agents_a, s_set.slots, "bench", &actor);
    size_t queued = 0;
    double rates [2] = { -1, -1 };
    size_t depths [2] = { s_set.depth_shallow, s_set.depth };
    const char *names [2] = { "bench-e-shallow", "bench-e-deep" };
    bool ok = s_sim_wait (actor, "REGISTERED", 60);
    for (int k = 0; k < 2 && ok; k++) {
        double submit0 = s_now ();
        if (s_queue_background (client, &queued, depths [k])) {
            ok = false;
            break;
        }
        s_say ("   %zu background tasks queued (%.1f s); qanatd RSS %.1f MiB\n", queued,
               s_now () - submit0, s_proc_status_kb (proc->real, "VmRSS") / 1024.0);
        double cpu = 0;
        rates [k] = s_dispatch_measure (proc, client, names [k], s_set.depth_tasks, "bench", &cpu, NULL);
        if (rates [k] < 0)
            ok = false;
        else
            s_say ("   with %zu queued: %.0f tasks/s (%.1f us per dispatch), qanatd %.0f%% of one core\n",
                   queued, rates [k], 1e6 / rates [k], cpu * 100);
    }
    zactor_destroy (&actor);
    if (!ok)
        s_fail ("e queue depth", "a measurement did not finish");
    else {
        double ratio = rates [1] / rates [0];
        s_say ("   deep / shallow throughput: %.3f (target: within 20%%, i.e. >= 0.80)\n", ratio);
        s_figure ("e.dispatch_shallow", rates [0], "tasks/s");
        s_figure ("e.dispatch_deep", rates [1], "tasks/s");
        s_figure ("e.ratio", ratio, "");
        char label [80], value [48];
        snprintf (label, sizeof label, "e dispatch, %zu queued (ctl plane, sim)", depths [0]);
        snprintf (value, sizeof value, "%.0f tasks/s", rates [0]);
        s_row (label, value, "", "-");
        snprintf (label, sizeof label, "e dispatch, %zu queued (ctl plane, sim)", depths [1]);
        snprintf (value, sizeof value, "%.0f tasks/s", rates [1]);
        s_row (label, value, "", "-");
        snprintf (value, sizeof value, "%.3f", ratio);
        s_row ("e deep / shallow", value, ">= 0.80", ratio >= 0.8 && ratio <= 1.25? "yes": "NO");
    }
    s_sim_destroy (&sim);
    qn_client_destroy (&client);
    s_proc_destroy (&proc);
}

//  The real agent against proc: its idle RSS in KiB, or -1.
static long
s_real_agent_rss (proc_t *proc, qn_client_t *client, char **exe_p)
{
    char *program = zsys_sprintf ("%s/agent/qanat-agent", s_set.builddir);
    char *data_dir = zsys_sprintf ("%s/agent", proc->dir);
    char *log_path = zsys_sprintf ("%s/agent.log", proc->dir);
    //  The bench's coordinator runs --insecure: so must its agent.
    char *probe = zsys_sprintf ("%s --help 2>&1 | grep -q -- --insecure", program);
    bool insecure_flag = system (probe) == 0;
    free (probe);
    char *argv [] = {
        program, (char *) "--coordinator", proc->agent_ep, (char *) "--name", (char *) "bench-agent",
        (char *) "--slots", (char *) "2", (char *) "--data-dir", data_dir,
        insecure_flag? (char *) "--insecure": NULL, NULL
    };
    pid_t pid = s_spawn (argv, log_path);
    long rss = -1;
    double deadline = s_now () + 20;
    bool connected = false;
    while (pid > 0 && !connected && s_now () < deadline && !zsys_interrupted) {
        connected = s_agent_connected (client, "bench-agent");
        if (!connected)
            zclock_sleep (50);
    }
    if (connected) {
        zclock_sleep (2000);    //  idle: registered, heartbeating, nothing to run
        pid_t real = s_real_pid (pid, "qanat-agent");
        *exe_p = s_proc_exe (real);
        rss = s_proc_status_kb (real, "VmRSS");
        //  What the RSS is made of: most of it is shared library pages
        //  that every process using those libraries shares
        long anon = s_proc_status_kb (real, "RssAnon");
        long file = s_proc_status_kb (real, "RssFile");
        //  Pss: the process's fair share of the pages it shares
        long pss = s_proc_field_kb (real, "smaps_rollup", "Pss");
        if (anon >= 0 && file >= 0)
            s_say ("   of which anonymous %.2f MiB, file-backed (libraries) %.2f MiB; "
                   "PSS %.2f MiB\n", anon / 1024.0, file / 1024.0, pss / 1024.0);
    }
    s_stop_pid (pid, 10);
    free (program);
    free (data_dir);
    free (log_path);
    return rss;
}

//  (a) again, with real processes: real agents, the local backend, a
//  fork and exec of `true` per task.
static void
s_figure_g (void)
{
    size_t agents = s_set.smoke? 2: 8;
    long cpus = sysconf (_SC_NPROCESSORS_ONLN);
    size_t slots = (size_t) (cpus > 0? cpus: 1) * 2;
    size_t tasks = s_set.real_tasks;
    s_say ("\n== (a) dispatch throughput with real processes (local backend) ==\n");
    s_say ("   %zu tasks `true` as runs of up to %d, %zu real qanat-agent processes x %zu slots;\n"
           "   durable commits on both sides (coordinator store, agent spools); from the first\n"
           "   StartRun until every run ended\n", tasks, RUN_TASKS_MAX, agents, slots);
    proc_t *proc = s_qanatd_start (true);
    if (!proc) {
        s_fail ("g real processes", "qanatd did not start");
        return;
    }
    qn_client_t *client = s_client_new (proc);
    char *program = zsys_sprintf ("%s/agent/qanat-agent", s_set.builddir);
    char *probe = zsys_sprintf ("%s --help 2>&1 | grep -q -- --insecure", program);
    bool insecure_flag = system (probe) == 0;
    free (probe);
    pid_t *pids = (pid_t *) calloc (agents, sizeof (pid_t));
    char slots_text [24];
    snprintf (slots_text, sizeof slots_text, "%zu", slots);
    bool connected = client != NULL;
    for (size_t i = 0; i < agents && connected; i++) {
        char *name = zsys_sprintf ("real-%zu", i);
        char *data_dir = zsys_sprintf ("%s/agent-%zu", proc->dir, i);
        char *log_path = zsys_sprintf ("%s/agent-%zu.log", proc->dir, i);
        char *argv [] = {
            program, (char *) "--coordinator", proc->agent_ep, (char *) "--name", name,
            (char *) "--slots", slots_text, (char *) "--labels", (char *) "pool=bench",
            (char *) "--data-dir", data_dir, insecure_flag? (char *) "--insecure": NULL, NULL
        };
        pids [i] = s_spawn (argv, log_path);
        double deadline = s_now () + 20;
        bool up = false;
        while (pids [i] > 0 && !up && s_now () < deadline && !zsys_interrupted) {
            up = s_agent_connected (client, name);
            if (!up)
                zclock_sleep (50);
        }
        connected = up;
        free (name);
        free (data_dir);
        free (log_path);
    }
    if (!connected)
        s_fail ("g real processes", "the real agents did not register");
    else {
        double cpu = 0, commits = 0;
        double rate = s_dispatch_measure (proc, client, "bench-g", tasks, "bench", &cpu, &commits);
        if (rate < 0)
            s_fail ("g real processes", "the runs did not finish");
        else {
            s_say ("   %.0f tasks/s; qanatd used %.0f%% of one core\n", rate, cpu * 100);
            s_say ("   ratio to target (>= 2,000 tasks/s): %.2f\n", rate / 2000);
            s_figure ("g.dispatch_real", rate, "tasks/s");
            char value [48];
            snprintf (value, sizeof value, "%.0f tasks/s", rate);
            s_row ("a dispatch throughput (real processes)", value, ">= 2000 tasks/s",
                   rate >= 2000? "yes": "NO");
        }
    }
    for (size_t i = 0; i < agents; i++)
        if (pids [i] > 0)
            s_stop_pid (pids [i], 10);
    free (pids);
    free (program);
    qn_client_destroy (&client);
    s_proc_destroy (&proc);
}


//  Lines of run_id stored by the coordinator, read back page by page
//  (each chunk not partial ends one line more than it holds '\n's), and
//  the chunks that held them.  -1 on error.
static long long
s_count_stored_lines (qn_client_t *client, uint64_t run_id, long long *chunks_p)
{
    long long lines = 0, chunks = 0;
    uint8_t *cursor = NULL;
    size_t cursor_size = 0;
    bool more = true;
    double deadline = s_now () + 300;
    while (more && s_now () < deadline) {
        Qanat__ReadLogs read = QANAT__READ_LOGS__INIT;
        read.run_id = run_id;
        read.cursor.data = cursor;
        read.cursor.len = cursor_size;
        Qanat__Request request = QANAT__REQUEST__INIT;
        request.body_case = QANAT__REQUEST__BODY_READ_LOGS;
        request.read_logs = &read;
        char *error = NULL;
        Qanat__Envelope *reply = qn_client_call (client, &request, &error);
        if (!reply || reply->reply->body_case != QANAT__REPLY__BODY_LOGS) {
            s_say ("   read logs: %s\n", error? error: "unexpected reply");
            free (error);
            qn_msg_free (&reply);
            free (cursor);
            return -1;
        }
        Qanat__LogPage *page = reply->reply->logs;
        for (size_t i = 0; i < page->n_lines; i++) {
            Qanat__LogChunk *chunk = page->lines [i]->chunk;
            if (!chunk || chunk->stream != QANAT__STREAM__STREAM_STDOUT)
                continue;
            chunks++;
            if (chunk->partial)
                continue;
            lines++;
            const uint8_t *at = chunk->data.data;
            const uint8_t *end = at + chunk->data.len;
            while (at < end && (at = (const uint8_t *) memchr (at, '\n', (size_t) (end - at)))) {
                lines++;
                at++;
            }
        }
        more = !(page->run_finished && page->n_lines == 0);
        free (cursor);
        cursor = NULL;
        cursor_size = page->cursor.len;
        if (cursor_size) {
            cursor = (uint8_t *) malloc (cursor_size);
            memcpy (cursor, page->cursor.data, cursor_size);
        }
        else
        if (page->n_lines == 0)
            more = false;
        qn_msg_free (&reply);
    }
    free (cursor);
    *chunks_p = chunks;
    return lines;
}

//  (c) again, end to end: a real agent, 8 real tasks on it printing
//  100-byte lines as fast as `yes` can, through the local backend's pipes,
//  the agent's spool and the coordinator's store.
static void
s_figure_h (void)
{
    size_t tasks = 8;
    size_t lines_per_task = s_set.log_mb * 1000000 / LINE_BYTES / tasks;
    if (lines_per_task == 0)
        lines_per_task = 1;
    double total_mb = (double) lines_per_task * tasks * LINE_BYTES / 1e6;
    s_say ("\n== (c) log ingest with real processes (local backend, real agent) ==\n");
    s_say ("   %zu tasks on one real qanat-agent (%zu slots), each `yes LINE | head -n %zu`\n"
           "   (%d-byte lines with their newline), %.0f MB in all; durable commits on both sides;\n"
           "   from StartRun until the run ended (every line stored: the ends come after the lines)\n",
           tasks, tasks, lines_per_task, LINE_BYTES, total_mb);
    proc_t *proc = s_qanatd_start (true);
    if (!proc) {
        s_fail ("h real log ingest", "qanatd did not start");
        return;
    }
    qn_client_t *client = s_client_new (proc);
    char *program = zsys_sprintf ("%s/agent/qanat-agent", s_set.builddir);
    char *probe = zsys_sprintf ("%s --help 2>&1 | grep -q -- --insecure", program);
    bool insecure_flag = system (probe) == 0;
    free (probe);
    char *data_dir = zsys_sprintf ("%s/agent-log", proc->dir);
    char *log_path = zsys_sprintf ("%s/agent-log.log", proc->dir);
    char slots_text [24];
    snprintf (slots_text, sizeof slots_text, "%zu", tasks);
    char *argv [] = {
        program, (char *) "--coordinator", proc->agent_ep, (char *) "--name", (char *) "real-log",
        (char *) "--slots", slots_text, (char *) "--labels", (char *) "pool=benchlog",
        (char *) "--data-dir", data_dir, insecure_flag? (char *) "--insecure": NULL, NULL
    };
    pid_t pid = client? s_spawn (argv, log_path): -1;
    bool up = false;
    double deadline = s_now () + 20;
    while (pid > 0 && !up && s_now () < deadline && !zsys_interrupted) {
        up = s_agent_connected (client, "real-log");
        if (!up)
            zclock_sleep (50);
    }
    if (!up) {
        s_fail ("h real log ingest", "the real agent did not register");
        goto done;
    }
    //  99 characters and the newline: LINE_BYTES on the pipe
    char line [LINE_BYTES];
    memset (line, 'x', LINE_BYTES - 1);
    line [LINE_BYTES - 1] = 0;
    char *yaml = NULL;
    size_t yaml_size = 0;
    FILE *out = open_memstream (&yaml, &yaml_size);
    fprintf (out, "name: bench-h\ntasks:\n");
    for (size_t i = 0; i < tasks; i++)
        fprintf (out, "  t%zu:\n    run: \"yes %s | head -n %zu\"\n    on: {pool: benchlog}\n",
                 i, line, lines_per_task);
    fclose (out);

    pid_t agent_real = s_real_pid (pid, "qanat-agent");
    Qanat__Stats before, after;
    memset (&before, 0, sizeof before);
    memset (&after, 0, sizeof after);
    s_get_stats (client, &before);
    long long cpu_q0 = s_proc_cpu_ticks (proc->real);
    long long cpu_a0 = s_proc_cpu_ticks (agent_real);
    double started = s_now ();
    uint64_t run_id = 0;
    int rc = s_start_run (client, yaml, &run_id);
    free (yaml);
    size_t ended = 0, failed = 0;
    deadline = s_now () + 120 + total_mb;
    while (rc == 0 && !zsys_interrupted && s_now () < deadline) {
        if (s_list_runs (client, "bench-h", 1, &ended, &failed) < 0)
            rc = -1;
        if (ended >= 1)
            break;
        zclock_sleep (10);
    }
    double elapsed = s_now () - started;
    long long cpu_q1 = s_proc_cpu_ticks (proc->real);
    long long cpu_a1 = s_proc_cpu_ticks (agent_real);
    s_get_stats (client, &after);
    if (rc || ended < 1) {
        s_fail ("h real log ingest", "the run did not finish");
        goto done;
    }
    if (failed)
        s_say ("   warning: the run did not succeed\n");
    double ticks = (double) sysconf (_SC_CLK_TCK);
    double mbps = total_mb / elapsed;
    double lines_s = (double) lines_per_task * tasks / elapsed;
    double events = (double) (after.events_committed - before.events_committed);
    s_say ("   %.1f MB/s, %.0f lines/s (%.2f s); qanatd %.0f%% of a core, agent %.0f%% of a core;\n"
           "   %.0f events committed (%.1f lines per event)\n",
           mbps, lines_s, elapsed, (cpu_q1 - cpu_q0) / ticks / elapsed * 100,
           (cpu_a1 - cpu_a0) / ticks / elapsed * 100, events,
           events > 0? lines_per_task * tasks / events: 0);
    long long chunks = 0;
    long long stored = s_count_stored_lines (client, run_id, &chunks);
    s_say ("   read back: %lld lines in %lld chunks (expected %zu lines)%s\n", stored, chunks,
           lines_per_task * tasks, stored == (long long) (lines_per_task * tasks)? "": "  MISMATCH");
    s_say ("   ratio to target (>= 100 MB/s): %.2f\n", mbps / 100);
    s_figure ("h.log_ingest_real", mbps, "MB/s");
    s_figure ("h.log_lines_real", lines_s, "lines/s");
    char value [48];
    snprintf (value, sizeof value, "%.1f MB/s", mbps);
    s_row ("c log ingest (real agent, 8 real tasks)", value, ">= 100 MB/s", mbps >= 100? "yes": "NO");
    snprintf (value, sizeof value, "%.0f lines/s", lines_s);
    s_row ("c log ingest, real, lines", value, "", "-");
    if (stored != (long long) (lines_per_task * tasks))
        s_fail ("h real log ingest", "stored lines differ from lines printed");
done:
    if (pid > 0)
        s_stop_pid (pid, 10);
    free (program);
    free (data_dir);
    free (log_path);
    qn_client_destroy (&client);
    s_proc_destroy (&proc);
}

static void
s_figure_f (void)
{
    s_say ("\n== (f) memory: coordinator and store after %zu runs, real agent idle ==\n", s_set.runs);
    s_say ("   %zu runs of a 1-task workflow, each run to the end by simulated agents; qanatd runs\n"
           "   with --no-sync to submit faster (fsync does not change RSS or store size)\n", s_set.runs);
    proc_t *proc = s_qanatd_start (false);
    if (!proc) {
        s_fail ("f memory", "qanatd did not start");
        return;
    }
    qn_client_t *client = s_client_new (proc);
    if (!client) {
        s_fail ("f", "cannot open a client");
        s_proc_destroy (&proc);
        return;
    }
    zactor_t *actor = NULL;
    sim_t *sim = s_sim_start (proc, s_set.agents_a, s_set.slots, "bench", &actor);
    bool ok = s_sim_wait (actor, "REGISTERED", 60);
    long rss0 = s_proc_status_kb (proc->real, "VmRSS");
    long long used0 = 0, apparent0 = 0;
    s_du (proc->data_dir, &used0, &apparent0);
    char *yaml = s_workflow_yaml ("bench-f", 1, NULL, false);
    double started = s_now ();
    for (size_t r = 0; r < s_set.runs && ok && !zsys_interrupted; r++) {
        ok = s_start_run (client, yaml, NULL) == 0;
        if ((r + 1) % 20000 == 0)
            s_say ("   ... %zu runs submitted (%.0f s)\n", r + 1, s_now () - started);
    }
    free (yaml);
    double deadline = s_now () + 120;
    uint64_t finished = 0;
    while (ok && s_now () < deadline && !zsys_interrupted
       && (finished = s_sim_finished_count (actor)) < s_set.runs)
        zclock_sleep (50);
    size_t ended = 0, failed = 0;
    int listed = ok? s_list_runs (client, "bench-f", 50, &ended, &failed): -1;
    if (finished < s_set.runs || listed < 0 || ended < (size_t) listed) {
        s_say ("   only %llu of %zu runs finished\n", (unsigned long long) finished, s_set.runs);
        ok = false;
    }
    double elapsed = s_now () - started;
    zactor_destroy (&actor);
    zclock_sleep (500);
    long rss = s_proc_status_kb (proc->real, "VmRSS");
    long hwm = s_proc_status_kb (proc->real, "VmHWM");
    long long used = 0, apparent = 0;
    s_du (proc->data_dir, &used, &apparent);
    if (!ok)
        s_fail ("f coordinator memory", "the runs did not all finish");
    else {
        double scale = 100000.0 / s_set.runs;
        s_say ("   %zu runs in %.1f s (%.0f runs/s, one client call at a time)\n", s_set.runs, elapsed,
               s_set.runs / elapsed);
        s_say ("   qanatd RSS: %.1f MiB at start (agents registered), %.1f MiB after, peak %.1f MiB;\n"
               "   growth %.1f MiB per 100,000 runs\n", rss0 / 1024.0, rss / 1024.0, hwm / 1024.0,
               (rss - rss0) / 1024.0 * scale);
        s_say ("   store: %.1f MB on disk (du), %.1f MB apparent; %.1f MB on disk per 100,000 runs\n",
               used / 1e6, apparent / 1e6, (used - used0) / 1e6 * scale);
        s_figure ("f.coordinator_rss", rss / 1024.0, "MiB");
        s_figure ("f.coordinator_rss_growth_per_100k", (rss - rss0) / 1024.0 * scale, "MiB");
        s_figure ("f.store_size_per_100k", (used - used0) / 1e6 * scale, "MB");
        char label [80], value [48];
        snprintf (label, sizeof label, "f qanatd RSS after %zu runs", s_set.runs);
        snprintf (value, sizeof value, "%.1f MiB", rss / 1024.0);
        s_row (label, value, "", "-");
        snprintf (value, sizeof value, "%.1f MB", (used - used0) / 1e6 * scale);
        s_row ("f store size per 100,000 runs", value, "", "-");
    }
    char *exe = NULL;
    long agent_rss = s_real_agent_rss (proc, client, &exe);
    if (agent_rss < 0)
        s_fail ("f agent idle RSS", "the real agent did not register");
    else {
        s_say ("   real agent (%s) idle, registered: RSS %.2f MiB\n", exe, agent_rss / 1024.0);
        s_say ("   ratio to target (< 8 MiB): %.2f\n", agent_rss / 1024.0 / 8);
        s_figure ("f.agent_rss", agent_rss / 1024.0, "MiB");
        char value [48];
        snprintf (value, sizeof value, "%.2f MiB", agent_rss / 1024.0);
        s_row ("f real agent idle RSS", value, "< 8 MiB", agent_rss < 8 * 1024? "yes": "NO");
    }
    free (exe);
    s_sim_destroy (&sim);
    qn_client_destroy (&client);
    s_proc_destroy (&proc);
}

//  ---------------------------------------------------------------------
//  The machine, and the settings

static void
s_describe_machine (void)
{
    char model [256] = "?";
    FILE *file = fopen ("/proc/cpuinfo", "r");
    char line [512];
    while (file && fgets (line, sizeof line, file))
        if (strncmp (line, "model name", 10) == 0) {
            char *colon = strchr (line, ':');
            if (colon) {
                snprintf (model, sizeof model, "%s", colon + 2);
                model [strcspn (model, "\n")] = 0;
            }
            break;
        }
    if (file)
        fclose (file);
    long mem_kb = 0;
    file = fopen ("/proc/meminfo", "r");
    while (file && fgets (line, sizeof line, file))
        if (sscanf (line, "MemTotal: %ld kB", &mem_kb) == 1)
            break;
    if (file)
        fclose (file);
    char load [128] = "?";
    file = fopen ("/proc/loadavg", "r");
    if (file && fgets (load, sizeof load, file))
        load [strcspn (load, "\n")] = 0;
    if (file)
        fclose (file);
    struct utsname uts;
    uname (&uts);
    time_t now = time (NULL);
    char date [64];
    strftime (date, sizeof date, "%Y-%m-%d %H:%M:%S %Z", localtime (&now));
    s_say ("qanat benchmark, %s\n", date);
    s_say ("machine: %ld CPUs online (nproc), %s, %.1f GiB memory, %s %s %s\n",
           sysconf (_SC_NPROCESSORS_ONLN), model, mem_kb / 1048576.0, uts.sysname, uts.release,
           uts.machine);
    s_say ("load average at start: %s\n", load);
    struct rlimit limit;
    getrlimit (RLIMIT_NOFILE, &limit);
    s_say ("open files limit: %llu (hard %llu)\n", (unsigned long long) limit.rlim_cur,
           (unsigned long long) limit.rlim_max);
}

//  Raises the open-file limit: to the hard limit, or beyond when we may
//  (root), since 10,000 simulated agents need two descriptors each here
//  and one each in qanatd, which inherits the limit.
static void
s_raise_nofile (size_t wanted)
{
    struct rlimit limit;
    if (getrlimit (RLIMIT_NOFILE, &limit))
        return;
    if (limit.rlim_max != RLIM_INFINITY && limit.rlim_max < wanted) {
        struct rlimit more = { wanted, wanted };
        if (setrlimit (RLIMIT_NOFILE, &more) == 0)
            return;
    }
    limit.rlim_cur = limit.rlim_max;
    setrlimit (RLIMIT_NOFILE, &limit);
}

static int
s_parse_size (const char *text, size_t *value_p)
{
    char *end = NULL;
    errno = 0;
    unsigned long long value = strtoull (text, &end, 10);
    if (errno || end == text || *end || *text == '-')
        return -1;
    *value_p = (size_t) value;
    return 0;
}

static void
s_usage (FILE *out)
{
    fprintf (out,
        "usage: qn_bench [options]\n"
        "\n"
        "Starts the built qanatd and measures it; prints every figure and a summary.\n"
        "\n"
        "  --only LIST        figures to run, e.g. a,b (default: a,b,c,d,e,f,g,h;\n"
        "                     g = a with real processes, h = c with a real agent)\n"
        "  --tasks N          (a) tasks dispatched (default 100000)\n"
        "  --real-tasks N     (g) tasks run as real processes (default 20000)\n"
        "  --sim-agents N     (a,e,f) simulated agents (default 8)\n"
        "  --slots N          (a,b,e,f) slots per simulated agent (default 64)\n"
        "  --chain N          (b) tasks in the chain (default 1000)\n"
        "  --log-mb N         (c,h) megabytes of log lines (default 200)\n"
        "  --log-window N     (c) unacknowledged events per attempt (default 10000)\n"
        "  --agents N[,N..]   (d) simulated agent counts (default 1000,10000)\n"
        "  --window S         (d) measured window in seconds (default 10)\n"
        "  --depth N          (e) tasks queued in the deep case (default 1000000)\n"
        "  --depth-tasks N    (e) matching tasks dispatched per case (default 20000)\n"
        "  --runs N           (f) stored runs (default 100000)\n"
        "  --no-sync          run every coordinator with --no-sync (not durable: for\n"
        "                     finding what fsync costs; the figures are then not the targets)\n"
        "  --smoke            tiny sizes: the whole suite in well under 20 s\n"
        "  --builddir DIR     where the built programs are (default $QANAT_BUILDDIR,\n"
        "                     else the build tree this program lives in)\n"
        "  -h, --help         this help\n");
}

static char *
s_default_builddir (void)
{
    const char *env = getenv ("QANAT_BUILDDIR");
    if (env && *env)
        return strdup (env);
    char *exe = s_proc_exe (getpid ());
    char *bench = strstr (exe, "/bench/");
    if (bench) {
        *bench = 0;
        return exe;
    }
    free (exe);
    return strdup (".");
}

static void
s_on_exit (void)
{
    s_kill_children ();
}

static void
s_on_signal (int sig)
{
    s_kill_children ();
    signal (sig, SIG_DFL);
    raise (sig);
}

int
main (int argc, char *argv [])
{
    //  A helper of figure d: --sim-child ENDPOINT FIRST COUNT.
    if (argc == 5 && streq (argv [1], "--sim-child")) {
        size_t first = 0, count = 0;
        if (s_parse_size (argv [3], &first) || s_parse_size (argv [4], &count) || !count)
            return 2;
        s_raise_nofile (2 * count + 512);
        zsys_set_max_sockets (count + 256);
        zsys_set_linger (0);
        zsys_init ();
        zsys_handler_set (NULL);
        signal (SIGPIPE, SIG_IGN);
        return s_sim_child_main (argv [2], first, count);
    }
    s_set.tasks = 100000;
    s_set.real_tasks = 20000;
    s_set.agents_a = 8;
    s_set.slots = 64;
    s_set.chain = 1000;
    s_set.log_mb = 200;
    s_set.log_window = 10000;
    s_set.lines_per_event = 40;
    s_set.scale [0] = 1000;
    s_set.scale [1] = 10000;
    s_set.scale_count = 2;
    s_set.window_s = 10;
    s_set.depth = 1000000;
    s_set.depth_shallow = 1000;
    s_set.depth_tasks = 20000;
    s_set.runs = 100000;

    static struct option options [] = {
        {"only", required_argument, 0, 'o'},
        {"tasks", required_argument, 0, 't'},
        {"real-tasks", required_argument, 0, 'G'},
        {"sim-agents", required_argument, 0, 'S'},
        {"slots", required_argument, 0, 's'},
        {"chain", required_argument, 0, 'c'},
        {"log-mb", required_argument, 0, 'l'},
        {"log-window", required_argument, 0, 'w'},
        {"lines-per-event", required_argument, 0, 'P'},
        {"agents", required_argument, 0, 'a'},
        {"window", required_argument, 0, 'W'},
        {"depth", required_argument, 0, 'd'},
        {"depth-tasks", required_argument, 0, 'D'},
        {"runs", required_argument, 0, 'r'},
        {"smoke", no_argument, 0, 'k'},
        {"no-sync", no_argument, 0, 'n'},
        {"builddir", required_argument, 0, 'b'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}
    };
    //  --smoke first, so that explicit sizes given with it still win.
    for (int i = 1; i < argc; i++)
        if (streq (argv [i], "--smoke")) {
            s_set.smoke = true;
            s_set.tasks = 2000;
            s_set.real_tasks = 100;
            s_set.chain = 50;
            s_set.log_mb = 2;
            s_set.log_window = 1000;
            s_set.scale [0] = 20;
            s_set.scale [1] = 200;
            s_set.window_s = 1;
            s_set.depth = 12000;
            s_set.depth_shallow = 1000;
            s_set.depth_tasks = 1000;
            s_set.runs = 300;
        }
    int opt;
    while ((opt = getopt_long (argc, argv, "h", options, NULL)) != -1) {
        size_t value = 0;
        int rc = 0;
        switch (opt) {
            case 'o': free (s_set.only); s_set.only = strdup (optarg); break;
            case 't': rc = s_parse_size (optarg, &s_set.tasks); break;
            case 'S': rc = s_parse_size (optarg, &s_set.agents_a); break;
            case 's': rc = s_parse_size (optarg, &value); s_set.slots = (uint32_t) value; break;
            case 'c': rc = s_parse_size (optarg, &s_set.chain); break;
            case 'l': rc = s_parse_size (optarg, &s_set.log_mb); break;
            case 'w': rc = s_parse_size (optarg, &s_set.log_window); break;
            case 'P': rc = s_parse_size (optarg, &s_set.lines_per_event); break;
            case 'G': rc = s_parse_size (optarg, &s_set.real_tasks); break;
            case 'a': {
                s_set.scale_count = 0;
                char *copy = strdup (optarg);
                for (char *item = strtok (copy, ","); item && rc == 0; item = strtok (NULL, ",")) {
                    rc = s_parse_size (item, &value);
                    if (rc == 0 && s_set.scale_count < 4)
                        s_set.scale [s_set.scale_count++] = value;
                }
                free (copy);
                break;
            }
            case 'W': s_set.window_s = atof (optarg); rc = s_set.window_s > 0? 0: -1; break;
            case 'd': rc = s_parse_size (optarg, &s_set.depth); break;
            case 'D': rc = s_parse_size (optarg, &s_set.depth_tasks); break;
            case 'r': rc = s_parse_size (optarg, &s_set.runs); break;
            case 'k': break;
            case 'n': s_set.no_sync = true; break;
            case 'b': free (s_set.builddir); s_set.builddir = strdup (optarg); break;
            case 'h': s_usage (stdout); return 0;
            default: s_usage (stderr); return 2;
        }
        if (rc) {
            fprintf (stderr, "qn_bench: bad value '%s'\n", optarg);
            return 2;
        }
    }
    if (s_set.tasks == 0 || s_set.agents_a == 0 || s_set.slots == 0 || s_set.chain < 2
    ||  s_set.log_mb == 0 || s_set.log_window == 0 || s_set.scale_count == 0
    ||  s_set.depth_tasks == 0 || s_set.runs == 0) {
        fprintf (stderr, "qn_bench: sizes must be positive (and --chain at least 2)\n");
        return 2;
    }
    for (size_t k = 0; k < s_set.scale_count; k++)
        if (s_set.scale [k] == 0) {
            fprintf (stderr, "qn_bench: agent counts must be positive\n");
            return 2;
        }
    if (s_set.depth_shallow > s_set.depth)
        s_set.depth_shallow = s_set.depth;
    if (!s_set.builddir)
        s_set.builddir = s_default_builddir ();

    size_t most_agents = s_set.agents_a;
    for (size_t k = 0; k < s_set.scale_count; k++)
        if (s_set.scale [k] > most_agents)
            most_agents = s_set.scale [k];
    s_raise_nofile (3 * most_agents + 1024);
    //  Before the first socket: czmq sizes its context from this.
    zsys_set_max_sockets (most_agents + 256);
    zsys_set_linger (0);
    atexit (s_on_exit);
    zsys_init ();
    zsys_handler_set (NULL);
    signal (SIGINT, s_on_signal);
    signal (SIGTERM, s_on_signal);
    signal (SIGPIPE, SIG_IGN);

    s_describe_machine ();
    s_say ("build tree: %s%s\n", s_set.builddir, s_set.smoke? "  (--smoke: tiny sizes)": "");
    {
        //  Show which binary the wrapper runs: the pid we measure.
        proc_t *probe = s_qanatd_start (true);
        if (!probe) {
            s_say ("cannot start %s/coordinator/qanatd\n", s_set.builddir);
            return 1;
        }
        s_say ("qanatd: started pid %d, measured pid %d, running %s\n",
               (int) probe->pid, (int) probe->real, probe->exe);
        s_say ("data dirs under %s, on %s\n", probe->dir, s_fs_name (probe->dir));
        s_say ("qanatd runs with --insecure: plaintext sockets, CURVE off (see docs/performance.md)\n");
        if (s_set.no_sync)
            s_say ("--no-sync: EVERY coordinator runs without fsync; \"durable\" below does not hold\n");
        s_proc_destroy (&probe);
    }
    if (s_selected ('a'))
        s_figure_a ();
    if (s_selected ('b'))
        s_figure_b ();
    if (s_selected ('c'))
        s_figure_c ();
    if (s_selected ('d'))
        s_figure_d ();
    if (s_selected ('e'))
        s_figure_e ();
    if (s_selected ('f'))
        s_figure_f ();
    if (s_selected ('g'))
        s_figure_g ();
    if (s_selected ('h'))
        s_figure_h ();

    char load [128] = "?";
    FILE *file = fopen ("/proc/loadavg", "r");
    if (file && fgets (load, sizeof load, file))
        load [strcspn (load, "\n")] = 0;
    if (file)
        fclose (file);
    s_say ("\nload average at end: %s\n", load);
    s_say ("\n== summary ==\n");
    s_say ("%-48s | %-20s | %-17s | %s\n", "figure", "value", "target", "met?");
    s_say ("%.48s-+-%.20s-+-%.17s-+-----\n", "------------------------------------------------",
           "--------------------", "-----------------");
    for (size_t i = 0; i < s_row_count; i++)
        s_say ("%-48s | %-20s | %-17s | %s\n", s_rows [i].figure, s_rows [i].value,
               s_rows [i].target, s_rows [i].met);
    s_say ("\n%d figure(s) could not be produced\n", s_errors);
    free (s_set.only);
    free (s_set.builddir);
    return s_errors? 1: 0;
}
