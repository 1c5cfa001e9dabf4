/*  qn_bench_proc - the processes the benchmark starts and measures:
    qanatd and the real agent as child processes (killed on any exit),
    their CPU time and memory from /proc, disk usage, and the client
    calls every figure makes.

    One of the files of the qn_bench class.
*/
#include "qn_bench.h"

//  ---------------------------------------------------------------------
//  /proc readers

//  utime + stime of pid in clock ticks; -1 when it cannot be read.
long long
bench_proc_cpu_ticks (pid_t pid)
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

//  CPU time (ns, from schedstat: exact, where per-thread ticks round
//  each short-lived slice down) of pid's threads, split by name: those
//  named engine (the main thread), those whose name starts with http,
//  and the rest.
void
bench_proc_thread_ns (pid_t pid, const char *engine, const char *http, long long ns [3])
{
    ns [0] = ns [1] = ns [2] = 0;
    char path [64];
    snprintf (path, sizeof path, "/proc/%d/task", (int) pid);
    DIR *dir = opendir (path);
    struct dirent *entry;
    while (dir && (entry = readdir (dir))) {
        if (entry->d_name [0] == '.')
            continue;
        char file_path [400], name [64] = "";
        unsigned long long run_ns = 0;
        snprintf (file_path, sizeof file_path, "%s/%s/comm", path, entry->d_name);
        FILE *file = fopen (file_path, "r");
        if (file && fgets (name, sizeof name, file))
            name [strcspn (name, "\n")] = 0;
        if (file)
            fclose (file);
        snprintf (file_path, sizeof file_path, "%s/%s/schedstat", path, entry->d_name);
        file = fopen (file_path, "r");
        bool read = file && fscanf (file, "%llu", &run_ns) == 1;
        if (file)
            fclose (file);
        if (!read)
            continue;
        size_t kind = streq (name, engine)? 0: strncmp (name, http, strlen (http)) == 0? 1: 2;
        ns [kind] += (long long) run_ns;
    }
    if (dir)
        closedir (dir);
}

//  A "Name:  N kB" field of /proc/PID/<file> (status, smaps_rollup), in
//  KiB; -1 when missing.
long
bench_proc_field_kb (pid_t pid, const char *file_name, const char *field)
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

long
bench_proc_status_kb (pid_t pid, const char *field)
{
    return bench_proc_field_kb (pid, "status", field);
}

char *
bench_proc_exe (pid_t pid)
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
pid_t
bench_real_pid (pid_t pid, const char *name)
{
    char *exe = bench_proc_exe (pid);
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
            char *child_exe = bench_proc_exe (child);
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
const char *
bench_fs_name (const char *path)
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
void
bench_du (const char *dir, long long *used_p, long long *apparent_p)
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

//  Processes we started, killed on any exit.
static pid_t s_children [8];

void
bench_child_add (pid_t pid)
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

void
bench_kill_children (void)
{
    for (size_t i = 0; i < sizeof s_children / sizeof s_children [0]; i++)
        if (s_children [i] > 0) {
            kill (s_children [i], SIGKILL);
            waitpid (s_children [i], NULL, 0);
            s_children [i] = 0;
        }
}

pid_t
bench_spawn (char **argv, const char *log_path)
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
        bench_child_add (pid);
    return pid;
}

//  Stops a child politely (SIGTERM), then firmly after timeout_s.
void
bench_stop_pid (pid_t pid, double timeout_s)
{
    if (pid <= 0)
        return;
    kill (pid, SIGTERM);
    double deadline = bench_now () + timeout_s;
    while (bench_now () < deadline) {
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

void
bench_proc_destroy (proc_t **self_p)
{
    proc_t *self = *self_p;
    if (self) {
        bench_stop_pid (self->pid, 20);
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

//  Runs qanatd in self's dir and waits for the lines that name its
//  endpoints.  http: "none", or ADDR:PORT (port 0 = any free one).
//  Returns 0, or -1 with the process stopped and its log shown.
static int
s_qanatd_launch (proc_t *self, bool durable, const char *http)
{
    if (bench_set.no_sync)
        durable = false;
    //  A fresh log: the endpoint lines of an earlier launch are stale
    unlink (self->log_path);
    char *program = zsys_sprintf ("%s/coordinator/qanatd", bench_set.builddir);
    char *argv [] = {
        program, (char *) "--data-dir", self->data_dir,
        (char *) "--client-endpoint", (char *) "tcp://127.0.0.1:*",
        (char *) "--agent-endpoint", (char *) "tcp://127.0.0.1:*",
        //  "none" unless a figure measures the HTTP side: the other
        //  figures are the engine's (and several coordinators may run at once)
        (char *) "--http-endpoint", (char *) http,
        (char *) "--insecure", durable? NULL: (char *) "--no-sync", NULL
    };
    self->pid = bench_spawn (argv, self->log_path);
    free (program);
    if (self->pid <= 0)
        return -1;
    bool want_http = !streq (http, "none");
    double deadline = bench_now () + 60;
    while (bench_now () < deadline && (!self->client_ep || (want_http && !self->http_port))) {
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
            char *url = strstr (line, "HTTP API on http://");
            if (!self->client_ep && clients && agents && data && agents > clients && data > agents) {
                self->client_ep = strndup (clients + 11, (size_t) (agents - clients - 11));
                self->agent_ep = strndup (agents + 12, (size_t) (data - agents - 12));
            }
            char *port = url? strrchr (url, ':'): NULL;
            if (port && !self->http_port)
                self->http_port = (uint16_t) atoi (port + 1);
        }
        if (file)
            fclose (file);
        if (!self->client_ep || (want_http && !self->http_port))
            zclock_sleep (20);
    }
    if (!self->client_ep || (want_http && !self->http_port)) {
        bench_say ("qanatd did not start; its log (%s):\n", self->log_path);
        char *command = zsys_sprintf ("tail -20 '%s'", self->log_path);
        if (system (command)) {}
        free (command);
        bench_stop_pid (self->pid, 5);
        self->pid = 0;
        return -1;
    }
    self->real = bench_real_pid (self->pid, "qanatd");
    free (self->exe);
    self->exe = bench_proc_exe (self->real);
    return 0;
}

//  Starts qanatd on random loopback ports, without HTTP.  durable =
//  false adds --no-sync.
proc_t *
bench_qanatd_start (bool durable)
{
    return bench_qanatd_start_http (durable, "none");
}

//  Starts qanatd as bench_qanatd_start does, its HTTP side on http
//  ("none", or ADDR:PORT; its port then in proc->http_port).
proc_t *
bench_qanatd_start_http (bool durable, const char *http)
{
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
    if (s_qanatd_launch (self, durable, http))
        bench_proc_destroy (&self);
    return self;
}

//  Stops qanatd politely and starts it again on the same data dir (new
//  ports).  -1 when it does not come back.
int
bench_qanatd_restart (proc_t *self, bool durable, const char *http)
{
    bench_stop_pid (self->pid, 60);
    self->pid = self->real = 0;
    zstr_free (&self->client_ep);
    zstr_free (&self->agent_ep);
    self->http_port = 0;
    return s_qanatd_launch (self, durable, http);
}

//  ---------------------------------------------------------------------
//  Client helpers

qn_client_t *
bench_client_new (proc_t *proc)
{
    //  Plaintext, like the coordinator (--insecure): no key file found in
    //  $HOME may turn CURVE on by surprise.
    char *error = NULL;
    qn_client_t *client = qn_client_new_keyed (proc->client_ep, "none", 300000, &error);
    if (!client)
        bench_say ("cannot open a client: %s\n", error? error: "?");
    free (error);
    return client;
}

int
bench_start_run (qn_client_t *client, const char *yaml, uint64_t *run_id_p)
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
        bench_say ("start run: %s\n", error? error: "failed");
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
int
bench_list_runs (qn_client_t *client, const char *workflow, uint32_t limit,
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
        bench_say ("list runs: %s\n", error? error: "unexpected reply");
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

int
bench_get_stats (qn_client_t *client, Qanat__Stats *stats)
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
bool
bench_agent_connected (qn_client_t *client, const char *name)
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
char *
bench_workflow_yaml (const char *name, size_t count, const char *pool, bool chain)
{
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream (&text, &size);
    if (!out)
        return NULL;
    fprintf (out, "name: %s\n", name);
    //  (m) every run's end queues a webhook
    if (bench_set.notify_url)
        fprintf (out, "notify: {on: [succeeded, failed], webhook: {url: \"%s\"}}\n",
                 bench_set.notify_url);
    fprintf (out, "tasks:\n");
    for (size_t i = 0; i < count; i++) {
        fprintf (out, "  t%zu:\n    run: \"true\"\n", i);
        if (pool)
            fprintf (out, "    on: {pool: %s}\n", pool);
        if (chain && i > 0)
            fprintf (out, "    needs: [t%zu]\n", i - 1);
        //  (l) one task in ten a GPU task, the others small CPU tasks
        if (bench_set.mixed_resources)
            fprintf (out, "    resources: %s\n", i % 10 == 9? "{cpus: 4, memory: 16G, gpus: 1}"
                                                          : "{cpus: 1, memory: 1G}");
    }
    fclose (out);
    return text;
}
