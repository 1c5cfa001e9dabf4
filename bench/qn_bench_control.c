/*  qn_bench_control - the figures of the control plane, driven by
    simulated agents: (a) dispatch throughput, (b) DAG hop latency,
    (c) log ingest, (d) agent scale, (e) dispatch cost vs. queue depth,
    (f) memory of the coordinator, its store and a real agent,
    (l) dispatch with resource matching, (m) dispatch while every run's
    end queues a webhook to a receiver that answers at once or hangs.

    One of the files of the qn_bench class.
*/
#include "qn_bench.h"
#include <netinet/tcp.h>

//  ---------------------------------------------------------------------
//  Figures

//  Submits `tasks` independent tasks of workflow name (runs of at most
//  RUN_TASKS_MAX) with selector pool, and waits until every run ended.
//  Returns tasks/s from the first StartRun to the last run ended, or -1.
double
bench_dispatch_measure (proc_t *proc, qn_client_t *client, const char *name, size_t tasks,
                        const char *pool, double *cpu_share_p, double *commits_p)
{
    size_t runs = (tasks + RUN_TASKS_MAX - 1) / RUN_TASKS_MAX;
    size_t per_run = tasks < RUN_TASKS_MAX? tasks: RUN_TASKS_MAX;
    char *yaml = bench_workflow_yaml (name, per_run, pool, false);
    size_t last = tasks - (runs - 1) * per_run;
    char *last_yaml = last == per_run? NULL: bench_workflow_yaml (name, last, pool, false);
    Qanat__Stats before, after;
    memset (&before, 0, sizeof before);
    memset (&after, 0, sizeof after);
    bench_get_stats (client, &before);
    long long cpu0 = bench_proc_cpu_ticks (proc->real);
    double started = bench_now ();
    int rc = 0;
    for (size_t r = 0; r < runs && rc == 0; r++)
        rc = bench_start_run (client, r == runs - 1 && last_yaml? last_yaml: yaml, NULL);
    free (yaml);
    free (last_yaml);
    if (rc)
        return -1;
    //  Generous deadline: a slow machine still finishes, a hang does not
    //  last forever.
    double deadline = bench_now () + 120 + tasks / 500.0;
    size_t ended = 0, failed = 0;
    while (!zsys_interrupted && bench_now () < deadline) {
        if (bench_list_runs (client, name, (uint32_t) runs, &ended, &failed) < 0)
            return -1;
        if (ended >= runs)
            break;
        zclock_sleep (10);
    }
    double elapsed = bench_now () - started;
    long long cpu1 = bench_proc_cpu_ticks (proc->real);
    bench_get_stats (client, &after);
    if (ended < runs) {
        bench_say ("  only %zu of %zu runs ended in time\n", ended, runs);
        return -1;
    }
    if (failed)
        bench_say ("  warning: %zu runs did not succeed\n", failed);
    if (cpu_share_p)
        *cpu_share_p = (double) (cpu1 - cpu0) / sysconf (_SC_CLK_TCK) / elapsed;
    if (commits_p)
        *commits_p = (double) (after.commits - before.commits);
    return tasks / elapsed;
}

static sim_t *
s_sim_start (proc_t *proc, size_t count, uint32_t capacity, const char *pool, zactor_t **actor_p)
{
    sim_t *sim = bench_sim_new (proc->agent_ep, count, capacity, pool);
    *actor_p = zactor_new (bench_sim_actor, sim);
    return sim;
}

void
bench_figure_a (void)
{
    bench_say ("\n== (a) dispatch throughput (control plane, simulated agents) ==\n");
    bench_say ("   %zu tasks as runs of up to %d independent `true` tasks, %zu simulated agents x %u slots,\n"
               "   each answering an Assign at once with Started, Finished{exit 0} and Credit{1};\n"
               "   durable commits; from the first StartRun until ListRuns shows every run ended\n",
               bench_set.tasks, RUN_TASKS_MAX, bench_set.agents_a, bench_set.slots);
    proc_t *proc = bench_qanatd_start (true);
    if (!proc) {
        bench_fail ("a dispatch throughput", "qanatd did not start");
        return;
    }
    qn_client_t *client = bench_client_new (proc);
    if (!client) {
        bench_fail ("a", "cannot open a client");
        bench_proc_destroy (&proc);
        return;
    }
    zactor_t *actor = NULL;
    sim_t *sim = s_sim_start (proc, bench_set.agents_a, bench_set.slots, "bench", &actor);
    if (!bench_sim_wait (actor, "REGISTERED", 60))
        bench_fail ("a dispatch throughput", "simulated agents did not register");
    else {
        double cpu = 0, commits = 0;
        double rate = bench_dispatch_measure (proc, client, "bench-a", bench_set.tasks, "bench", &cpu, &commits);
        if (rate < 0)
            bench_fail ("a dispatch throughput", "the runs did not finish");
        else {
            bench_say ("   %.0f tasks/s; qanatd used %.0f%% of one core; %.0f commits (%.1f tasks per commit)\n",
                       rate, cpu * 100, commits, commits > 0? bench_set.tasks / commits: 0);
            bench_say ("   ratio to target (>= 20,000 tasks/s): %.2f\n", rate / 20000);
            bench_figure ("a.dispatch", rate, "tasks/s");
            bench_figure ("a.qanatd_cpu", cpu * 100, "%core");
            char value [48];
            snprintf (value, sizeof value, "%.0f tasks/s", rate);
            bench_row ("a dispatch throughput (ctl plane, sim agents)", value, ">= 20000 tasks/s",
                       rate >= 20000? "yes": "NO");
        }
    }
    zactor_destroy (&actor);
    bench_sim_destroy (&sim);
    qn_client_destroy (&client);
    bench_proc_destroy (&proc);
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

void
bench_figure_b (void)
{
    bench_say ("\n== (b) DAG hop latency (control plane, simulated agent) ==\n");
    bench_say ("   a chain of %zu `true` tasks (each needs the previous) on one simulated agent (%u slots);\n"
               "   hop = from the agent sending Finished of task i to it receiving the Assign of task i+1\n"
               "   (CLOCK_MONOTONIC in the bench process); durable commits\n", bench_set.chain, bench_set.slots);
    proc_t *proc = bench_qanatd_start (true);
    if (!proc) {
        bench_fail ("b hop latency", "qanatd did not start");
        return;
    }
    qn_client_t *client = bench_client_new (proc);
    if (!client) {
        bench_fail ("b", "cannot open a client");
        bench_proc_destroy (&proc);
        return;
    }
    zactor_t *actor = NULL;
    sim_t *sim = bench_sim_new (proc->agent_ep, 1, bench_set.slots, "bench");
    sim->record_hops = true;
    actor = zactor_new (bench_sim_actor, sim);
    char *yaml = bench_workflow_yaml ("bench-b", bench_set.chain, "bench", true);
    bool ok = bench_sim_wait (actor, "REGISTERED", 60) && bench_start_run (client, yaml, NULL) == 0;
    free (yaml);
    size_t ended = 0, failed = 0;
    double deadline = bench_now () + 60 + bench_set.chain / 20.0;
    while (ok && !zsys_interrupted && bench_now () < deadline) {
        if (bench_list_runs (client, "bench-b", 1, &ended, &failed) < 0)
            ok = false;
        else
        if (ended)
            break;
        else
            zclock_sleep (20);
    }
    zactor_destroy (&actor);      //  the results are ours to read from here
    if (!ok || !ended || sim->hop_count == 0)
        bench_fail ("b hop latency", "the chain did not finish");
    else {
        qsort (sim->hops, sim->hop_count, sizeof (int64_t), s_compare_i64);
        double median = s_percentile (sim->hops, sim->hop_count, 0.5) / 1e6;
        double p90 = s_percentile (sim->hops, sim->hop_count, 0.9) / 1e6;
        double p99 = s_percentile (sim->hops, sim->hop_count, 0.99) / 1e6;
        double max = (double) sim->hops [sim->hop_count - 1] / 1e6;
        double min = (double) sim->hops [0] / 1e6;
        bench_say ("   %zu hops: min %.3f ms, median %.3f ms, p90 %.3f ms, p99 %.3f ms, max %.3f ms\n",
                   sim->hop_count, min, median, p90, p99, max);
        bench_say ("   ratio to target: median %.2f of 2 ms, p99 %.2f of 10 ms\n", median / 2, p99 / 10);
        bench_figure ("b.hop_median", median, "ms");
        bench_figure ("b.hop_p90", p90, "ms");
        bench_figure ("b.hop_p99", p99, "ms");
        bench_figure ("b.hop_max", max, "ms");
        char value [48];
        snprintf (value, sizeof value, "%.3f ms", median);
        bench_row ("b hop latency median (ctl plane, sim agent)", value, "< 2 ms", median < 2? "yes": "NO");
        snprintf (value, sizeof value, "%.3f ms", p90);
        bench_row ("b hop latency p90", value, "", "-");
        snprintf (value, sizeof value, "%.3f ms", p99);
        bench_row ("b hop latency p99", value, "< 10 ms", p99 < 10? "yes": "NO");
        snprintf (value, sizeof value, "%.3f ms", max);
        bench_row ("b hop latency max", value, "", "-");
    }
    bench_sim_destroy (&sim);
    qn_client_destroy (&client);
    bench_proc_destroy (&proc);
}

void
bench_figure_c (void)
{
    size_t attempts = 8;
    size_t per_event = bench_set.lines_per_event? bench_set.lines_per_event: 1;
    uint64_t lines = (uint64_t) bench_set.log_mb * 1000000 / LINE_BYTES / attempts / per_event;
    if (lines == 0)
        lines = 1;
    //  From here "lines" counts events; each carries per_event lines.
    bench_say ("\n== (c) log ingest (control plane, simulated agents) ==\n");
    bench_say ("   %zu simulated attempts (one per agent) each send %llu LogChunk events of %zu lines of\n"
               "   %d bytes (%.1f MB in all), keeping up to %zu unacknowledged events per attempt;\n"
               "   durable commits; from the first line sent to the Ack of the last\n",
               attempts, (unsigned long long) lines, per_event, LINE_BYTES,
               (double) lines * per_event * attempts * LINE_BYTES / 1e6, bench_set.log_window);
    proc_t *proc = bench_qanatd_start (true);
    if (!proc) {
        bench_fail ("c log ingest", "qanatd did not start");
        return;
    }
    qn_client_t *client = bench_client_new (proc);
    if (!client) {
        bench_fail ("c", "cannot open a client");
        bench_proc_destroy (&proc);
        return;
    }
    sim_t *sim = bench_sim_new (proc->agent_ep, attempts, 1, "bench");
    sim->mode = SIM_LOG;
    sim->log_lines = lines;
    sim->log_window = bench_set.log_window;
    sim->log_attempts = attempts;
    zactor_t *actor = zactor_new (bench_sim_actor, sim);
    char *yaml = bench_workflow_yaml ("bench-c", attempts, "bench", false);
    long long cpu0 = bench_proc_cpu_ticks (proc->real);
    double wall0 = bench_now ();
    bool ok = bench_sim_wait (actor, "REGISTERED", 60) && bench_start_run (client, yaml, NULL) == 0;
    free (yaml);
    ok = ok && bench_sim_wait (actor, "LOGDONE", 120 + (double) bench_set.log_mb);
    double wall1 = bench_now ();
    long long cpu1 = bench_proc_cpu_ticks (proc->real);
    long rss = bench_proc_status_kb (proc->real, "VmRSS");
    Qanat__Stats stats;
    memset (&stats, 0, sizeof stats);
    bench_get_stats (client, &stats);
    zactor_destroy (&actor);
    if (!ok || !sim->log_last_ack_ns)
        bench_fail ("c log ingest", "the log lines were not all acknowledged");
    else {
        double seconds = (double) (sim->log_last_ack_ns - sim->log_first_ns) / 1e9;
        double total_lines = (double) lines * per_event * attempts;
        double mbps = total_lines * LINE_BYTES / 1e6 / seconds;
        long long used = 0, apparent = 0;
        bench_du (proc->data_dir, &used, &apparent);
        bench_say ("   %.0f lines in %.2f s: %.1f MB/s, %.0f lines/s; %llu commits (%.0f events per commit);\n"
                   "   qanatd %.0f%% of one core, RSS %.1f MiB; store %.1f MB on disk\n",
                   total_lines, seconds, mbps, total_lines / seconds,
                   (unsigned long long) stats.commits,
                   stats.commits? (double) stats.events_committed / stats.commits: 0,
                   (double) (cpu1 - cpu0) / sysconf (_SC_CLK_TCK) / (wall1 - wall0) * 100,
                   rss / 1024.0, used / 1e6);
        bench_say ("   ratio to target (>= 100 MB/s): %.2f\n", mbps / 100);
        bench_figure ("c.log_ingest", mbps, "MB/s");
        bench_figure ("c.log_lines", total_lines / seconds, "lines/s");
        char value [48];
        snprintf (value, sizeof value, "%.1f MB/s", mbps);
        bench_row ("c log ingest (ctl plane, sim agents)", value, ">= 100 MB/s", mbps >= 100? "yes": "NO");
        snprintf (value, sizeof value, "%.0f lines/s", total_lines / seconds);
        bench_row ("c log ingest, lines", value, "", "-");
    }
    bench_sim_destroy (&sim);
    qn_client_destroy (&client);
    bench_proc_destroy (&proc);
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

int
bench_sim_child_main (const char *endpoint, size_t first, size_t count)
{
    sim_t *sim = bench_sim_new (endpoint, count, 4, "bench");
    sim->first_name = first;
    zactor_t *actor = zactor_new (bench_sim_actor, sim);
    bool ok = bench_sim_wait (actor, "REGISTERED", 120 + count / 50.0);
    printf ("%s\n", ok? "REGISTERED": "FAILED");
    fflush (stdout);
    char line [64];
    while (fgets (line, sizeof line, stdin))
        ;
    zactor_destroy (&actor);
    printf ("STATS %llu %llu %llu\n", (unsigned long long) sim->heartbeats_sent,
            (unsigned long long) sim->heartbeat_replies, (unsigned long long) sim->refusals);
    fflush (stdout);
    bench_sim_destroy (&sim);
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
    char *self_exe = zsys_sprintf ("%s/bench/qn_bench", bench_set.builddir);
    if (access (self_exe, X_OK)) {
        free (self_exe);
        self_exe = bench_proc_exe (getpid ());
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
    bench_child_add (pid);
    helper->pid = pid;
    helper->to_child = down [1];
    helper->from_child = fdopen (up [0], "r");
    return 0;
}

//  Waits until every helper said REGISTERED; false on failure or timeout.
static bool
s_helpers_registered (helper_t *helpers, size_t count, double timeout_s)
{
    double deadline = bench_now () + timeout_s;
    size_t done = 0;
    while (done < count && bench_now () < deadline) {
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
                    bench_say ("   helper %d: %s\n", (int) helpers [i].pid,
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
        bench_stop_pid (helpers [i].pid, 20);
    }
}

void
bench_figure_d (void)
{
    struct rlimit limit;
    getrlimit (RLIMIT_NOFILE, &limit);
    size_t per_process = limit.rlim_cur > 1024? (limit.rlim_cur - 512) / 2: 256;
    bench_say ("\n== (d) agent scale (control plane, simulated agents) ==\n");
    bench_say ("   N simulated agents, registered and heartbeating at 1 Hz spread evenly, in helper\n"
               "   processes of at most %zu agents each (one zmq_poll per process; each DEALER costs\n"
               "   2 descriptors and the open-file limit is %llu); qanatd CPU and RSS over a %.0f s\n"
           "   window after all registered\n", per_process,
           (unsigned long long) limit.rlim_cur, bench_set.window_s);
    for (size_t k = 0; k < bench_set.scale_count; k++) {
        size_t count = bench_set.scale [k];
        char label [80];
        snprintf (label, sizeof label, "d %zu agents, qanatd CPU", count);
        proc_t *proc = bench_qanatd_start (true);
        if (!proc) {
            bench_fail (label, "qanatd did not start");
            continue;
        }
        size_t processes = (count + per_process - 1) / per_process;
        if (processes > 64)
            processes = 64;
        helper_t helpers [64];
        memset (helpers, 0, sizeof helpers);
        double reg0 = bench_now ();
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
            bench_fail (label, "the simulated agents did not all register");
        }
        else {
            double registration = bench_now () - reg0;
            zclock_sleep (1000);        //  let the registration burst settle
            long long cpu0 = bench_proc_cpu_ticks (proc->real);
            double wall0 = bench_now ();
            zclock_sleep ((int) (bench_set.window_s * 1000));
            long long cpu1 = bench_proc_cpu_ticks (proc->real);
            double wall1 = bench_now ();
            long rss = bench_proc_status_kb (proc->real, "VmRSS");
            long hwm = bench_proc_status_kb (proc->real, "VmHWM");
            unsigned long long sent, answered, refused;
            s_helpers_stop (helpers, processes, &sent, &answered, &refused);
            double share = (double) (cpu1 - cpu0) / sysconf (_SC_CLK_TCK) / (wall1 - wall0);
            bench_say ("   %zu agents in %zu process(es): registered in %.2f s; qanatd %.1f%% of one core,\n"
                       "   RSS %.1f MiB (peak %.1f MiB); %llu heartbeats sent, %llu answered, %llu refusals in all\n",
                       count, processes, registration, share * 100, rss / 1024.0, hwm / 1024.0,
                       sent, answered, refused);
            char key [64], value [48];
            snprintf (key, sizeof key, "d.cpu_%zu", count);
            bench_figure (key, share * 100, "%core");
            snprintf (key, sizeof key, "d.rss_%zu", count);
            bench_figure (key, rss / 1024.0, "MiB");
            snprintf (value, sizeof value, "%.1f %% of a core", share * 100);
            if (count == 10000) {
                bench_say ("   ratio to target (< 30%% of one core): %.2f\n", share / 0.30);
                bench_row ("d 10000 agents, qanatd CPU (ctl plane, sim)", value, "< 30 %", share < 0.30? "yes": "NO");
            }
            else
                bench_row (label, value, "", "-");
            snprintf (label, sizeof label, "d %zu agents, qanatd RSS", count);
            snprintf (value, sizeof value, "%.1f MiB", rss / 1024.0);
            bench_row (label, value, "", "-");
        }
        bench_proc_destroy (&proc);
    }
}

//  Submits background runs of workflow name until total tasks are queued.
static int
s_queue_background (qn_client_t *client, size_t *queued, size_t total)
{
    size_t runs = 0;
    double started = bench_now ();
    while (*queued < total && !zsys_interrupted) {
        size_t count = total - *queued < RUN_TASKS_MAX? total - *queued: RUN_TASKS_MAX;
        char *yaml = bench_workflow_yaml ("bench-e-background", count, "none", false);
        int rc = bench_start_run (client, yaml, NULL);
        free (yaml);
        if (rc)
            return -1;
        *queued += count;
        if (++runs % 10 == 0)
            bench_say ("   ... %zu tasks queued (%.0f s)\n", *queued, bench_now () - started);
    }
    return 0;
}

void
bench_figure_e (void)
{
    bench_say ("\n== (e) dispatch cost vs. queue depth (control plane, simulated agents) ==\n");
    bench_say ("   background tasks queued with a selector no agent matches (on: {pool: none}), then\n"
               "   %zu matching tasks dispatched as in (a) on %zu simulated agents x %u slots; durable\n",
               bench_set.depth_tasks, bench_set.agents_a, bench_set.slots);
    proc_t *proc = bench_qanatd_start (true);
    if (!proc) {
        bench_fail ("e queue depth", "qanatd did not start");
        return;
    }
    qn_client_t *client = bench_client_new (proc);
    if (!client) {
        bench_fail ("e", "cannot open a client");
        bench_proc_destroy (&proc);
        return;
    }
    zactor_t *actor = NULL;
    sim_t *sim = s_sim_start (proc, bench_set.agents_a, bench_set.slots, "bench", &actor);
    size_t queued = 0;
    double rates [2] = { -1, -1 };
    size_t depths [2] = { bench_set.depth_shallow, bench_set.depth };
    const char *names [2] = { "bench-e-shallow", "bench-e-deep" };
    bool ok = bench_sim_wait (actor, "REGISTERED", 60);
    for (int k = 0; k < 2 && ok; k++) {
        double submit0 = bench_now ();
        if (s_queue_background (client, &queued, depths [k])) {
            ok = false;
            break;
        }
        bench_say ("   %zu background tasks queued (%.1f s); qanatd RSS %.1f MiB\n", queued,
                   bench_now () - submit0, bench_proc_status_kb (proc->real, "VmRSS") / 1024.0);
        double cpu = 0;
        rates [k] = bench_dispatch_measure (proc, client, names [k], bench_set.depth_tasks, "bench", &cpu, NULL);
        if (rates [k] < 0)
            ok = false;
        else
            bench_say ("   with %zu queued: %.0f tasks/s (%.1f us per dispatch), qanatd %.0f%% of one core\n",
                       queued, rates [k], 1e6 / rates [k], cpu * 100);
    }
    zactor_destroy (&actor);
    if (!ok)
        bench_fail ("e queue depth", "a measurement did not finish");
    else {
        double ratio = rates [1] / rates [0];
        bench_say ("   deep / shallow throughput: %.3f (target: within 20%%, i.e. >= 0.80)\n", ratio);
        bench_figure ("e.dispatch_shallow", rates [0], "tasks/s");
        bench_figure ("e.dispatch_deep", rates [1], "tasks/s");
        bench_figure ("e.ratio", ratio, "");
        char label [80], value [48];
        snprintf (label, sizeof label, "e dispatch, %zu queued (ctl plane, sim)", depths [0]);
        snprintf (value, sizeof value, "%.0f tasks/s", rates [0]);
        bench_row (label, value, "", "-");
        snprintf (label, sizeof label, "e dispatch, %zu queued (ctl plane, sim)", depths [1]);
        snprintf (value, sizeof value, "%.0f tasks/s", rates [1]);
        bench_row (label, value, "", "-");
        snprintf (value, sizeof value, "%.3f", ratio);
        bench_row ("e deep / shallow", value, ">= 0.80", ratio >= 0.8 && ratio <= 1.25? "yes": "NO");
    }
    bench_sim_destroy (&sim);
    qn_client_destroy (&client);
    bench_proc_destroy (&proc);
}


//  Submits runs 1-task runs of workflow name, one call at a time, and
//  waits until the simulated agents of actor finished them all and the
//  newest are listed as ended.  The first and last run ids when asked.
bool
bench_submit_and_finish (qn_client_t *client, zactor_t *actor, const char *name, size_t runs,
                         uint64_t *first_id_p, uint64_t *last_id_p)
{
    char *yaml = bench_workflow_yaml (name, 1, NULL, false);
    double started = bench_now ();
    bool ok = true;
    for (size_t r = 0; r < runs && ok && !zsys_interrupted; r++) {
        uint64_t run_id = 0;
        ok = bench_start_run (client, yaml, &run_id) == 0;
        if (r == 0 && first_id_p)
            *first_id_p = run_id;
        if (last_id_p)
            *last_id_p = run_id;
        if ((r + 1) % 20000 == 0)
            bench_say ("   ... %zu runs submitted (%.0f s)\n", r + 1, bench_now () - started);
    }
    free (yaml);
    double deadline = bench_now () + 120;
    uint64_t finished = 0;
    while (ok && bench_now () < deadline && !zsys_interrupted
       && (finished = bench_sim_finished_count (actor)) < runs)
        zclock_sleep (50);
    size_t ended = 0, failed = 0;
    int listed = ok? bench_list_runs (client, name, 50, &ended, &failed): -1;
    if (finished < runs || listed < 0 || ended < (size_t) listed) {
        bench_say ("   only %llu of %zu runs finished\n", (unsigned long long) finished, runs);
        ok = false;
    }
    return ok;
}

void
bench_figure_f (void)
{
    bench_say ("\n== (f) memory: coordinator and store after %zu runs, real agent idle ==\n", bench_set.runs);
    bench_say ("   %zu runs of a 1-task workflow, each run to the end by simulated agents; qanatd runs\n"
               "   with --no-sync to submit faster (fsync does not change RSS or store size)\n", bench_set.runs);
    proc_t *proc = bench_qanatd_start (false);
    if (!proc) {
        bench_fail ("f memory", "qanatd did not start");
        return;
    }
    qn_client_t *client = bench_client_new (proc);
    if (!client) {
        bench_fail ("f", "cannot open a client");
        bench_proc_destroy (&proc);
        return;
    }
    zactor_t *actor = NULL;
    sim_t *sim = s_sim_start (proc, bench_set.agents_a, bench_set.slots, "bench", &actor);
    bool ok = bench_sim_wait (actor, "REGISTERED", 60);
    long rss0 = bench_proc_status_kb (proc->real, "VmRSS");
    long long used0 = 0, apparent0 = 0;
    bench_du (proc->data_dir, &used0, &apparent0);
    double started = bench_now ();
    ok = ok && bench_submit_and_finish (client, actor, "bench-f", bench_set.runs, NULL, NULL);
    double elapsed = bench_now () - started;
    zactor_destroy (&actor);
    zclock_sleep (500);
    long rss = bench_proc_status_kb (proc->real, "VmRSS");
    long hwm = bench_proc_status_kb (proc->real, "VmHWM");
    long long used = 0, apparent = 0;
    bench_du (proc->data_dir, &used, &apparent);
    if (!ok)
        bench_fail ("f coordinator memory", "the runs did not all finish");
    else {
        double scale = 100000.0 / bench_set.runs;
        bench_say ("   %zu runs in %.1f s (%.0f runs/s, one client call at a time)\n", bench_set.runs, elapsed,
                   bench_set.runs / elapsed);
        bench_say ("   qanatd RSS: %.1f MiB at start (agents registered), %.1f MiB after, peak %.1f MiB;\n"
                   "   growth %.1f MiB per 100,000 runs\n", rss0 / 1024.0, rss / 1024.0, hwm / 1024.0,
                   (rss - rss0) / 1024.0 * scale);
        bench_say ("   store: %.1f MB on disk (du), %.1f MB apparent; %.1f MB on disk per 100,000 runs\n",
                   used / 1e6, apparent / 1e6, (used - used0) / 1e6 * scale);
        bench_figure ("f.coordinator_rss", rss / 1024.0, "MiB");
        bench_figure ("f.coordinator_rss_growth_per_100k", (rss - rss0) / 1024.0 * scale, "MiB");
        bench_figure ("f.store_size_per_100k", (used - used0) / 1e6 * scale, "MB");
        char label [80], value [48];
        snprintf (label, sizeof label, "f qanatd RSS after %zu runs", bench_set.runs);
        snprintf (value, sizeof value, "%.1f MiB", rss / 1024.0);
        bench_row (label, value, "", "-");
        snprintf (value, sizeof value, "%.1f MB", (used - used0) / 1e6 * scale);
        bench_row ("f store size per 100,000 runs", value, "", "-");
    }
    char *exe = NULL;
    long agent_rss = bench_real_agent_rss (proc, client, &exe);
    if (agent_rss < 0)
        bench_fail ("f agent idle RSS", "the real agent did not register");
    else {
        bench_say ("   real agent (%s) idle, registered: RSS %.2f MiB\n", exe, agent_rss / 1024.0);
        bench_say ("   ratio to target (< 8 MiB): %.2f\n", agent_rss / 1024.0 / 8);
        bench_figure ("f.agent_rss", agent_rss / 1024.0, "MiB");
        char value [48];
        snprintf (value, sizeof value, "%.2f MiB", agent_rss / 1024.0);
        bench_row ("f real agent idle RSS", value, "< 8 MiB", agent_rss < 8 * 1024? "yes": "NO");
    }
    free (exe);
    bench_sim_destroy (&sim);
    qn_client_destroy (&client);
    bench_proc_destroy (&proc);
}

//  (l) (a) with placement by resources: agents of mixed sizes that report
//  what they have, tasks that ask for CPUs, memory and, one in ten, a GPU.
void
bench_figure_l (void)
{
    bench_say ("\n== (l) dispatch with resource matching (control plane, simulated agents) ==\n");
    bench_say ("   %zu tasks as runs of up to %d `true` tasks, 9 in 10 asking {cpus: 1, memory: 1G},\n"
               "   1 in 10 {cpus: 4, memory: 16G, gpus: 1}; %zu simulated agents x %u slots reporting\n"
               "   64 CPUs each, one in 4 with 8 GPUs and 512 GiB, the others 256 GiB and none;\n"
               "   placement pack (the default); otherwise as (a)\n",
               bench_set.tasks, RUN_TASKS_MAX, bench_set.agents_l, bench_set.slots);
    proc_t *proc = bench_qanatd_start (true);
    qn_client_t *client = proc? bench_client_new (proc): NULL;
    if (!client) {
        bench_fail ("l dispatch with resources", "qanatd did not start");
        bench_proc_destroy (&proc);
        return;
    }
    sim_t *sim = bench_sim_new (proc->agent_ep, bench_set.agents_l, bench_set.slots, "bench");
    sim->resources = true;
    zactor_t *actor = zactor_new (bench_sim_actor, sim);
    if (!bench_sim_wait (actor, "REGISTERED", 120))
        bench_fail ("l dispatch with resources", "simulated agents did not register");
    else {
        double cpu = 0;
        bench_set.mixed_resources = true;
        double rate = bench_dispatch_measure (proc, client, "bench-l", bench_set.tasks, "bench",
                                              &cpu, NULL);
        bench_set.mixed_resources = false;
        if (rate < 0)
            bench_fail ("l dispatch with resources", "the runs did not finish");
        else {
            bench_say ("   %.0f tasks/s; qanatd used %.0f%% of one core (%.1f us of CPU per task)\n",
                       rate, cpu * 100, cpu / rate * 1e6);
            bench_say ("   ratio to target (>= 50,000 tasks/s): %.2f\n", rate / 50000);
            bench_figure ("l.dispatch", rate, "tasks/s");
            bench_figure ("l.qanatd_cpu", cpu * 100, "%core");
            char value [48], row [64];
            snprintf (value, sizeof value, "%.0f tasks/s", rate);
            snprintf (row, sizeof row, "l dispatch with resources (%zu sim agents)", bench_set.agents_l);
            bench_row (row, value, ">= 50000 tasks/s",
                       rate >= 50000? "yes": "NO");
        }
    }
    zactor_destroy (&actor);
    bench_sim_destroy (&sim);
    qn_client_destroy (&client);
    bench_proc_destroy (&proc);
}

//  (m) A receiver that hangs: a loopback socket that listens with a
//  backlog of 1 and never accepts.  The kernel completes the first
//  connections into its accept queue, where their requests wait for an
//  answer that never comes; once the queue is full it drops every new
//  SYN, so later deliveries wait for libcurl's connect limit.  Returns
//  the socket and its port, or -1.
static int
s_hanging_receiver (uint16_t *port_p)
{
    int fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in addr;
    memset (&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    socklen_t size = sizeof addr;
    if (fd < 0 || bind (fd, (struct sockaddr *) &addr, sizeof addr) || listen (fd, 1)
    ||  getsockname (fd, (struct sockaddr *) &addr, &size)) {
        if (fd >= 0)
            close (fd);
        return -1;
    }
    *port_p = ntohs (addr.sin_port);
    return fd;
}

//  Connections waiting in a listening socket's accept queue (Linux gives
//  it as tcpi_unacked of a socket in LISTEN), or -1.
static long
s_accept_queue (int fd)
{
    struct tcp_info info;
    socklen_t size = sizeof info;
    if (getsockopt (fd, IPPROTO_TCP, TCP_INFO, &info, &size))
        return -1;
    return (long) info.tcpi_unacked;
}

typedef struct {
    size_t listed;                  //  entries of our runs seen
    size_t expected;                //  entries there must be
    size_t delivered;
    unsigned long long attempts;    //  attempts whose result was recorded
    long queued;                    //  connections in the receiver's accept queue
} notif_seen_t;

//  Reads back the outbox after a round with notify: the first run's entry
//  and the newest 999 (a listing's most), each of which must be one of
//  the round's runs and not delivered (nothing answers).  -1 on an error.
static int
s_notif_check (qn_client_t *client, uint64_t first_id, uint64_t last_id, size_t runs,
               notif_seen_t *seen)
{
    memset (seen, 0, sizeof *seen);
    size_t newest = runs < 999? runs: 999;
    seen->expected = newest + (runs > newest? 1: 0);
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1 && runs == newest)
            break;
        Qanat__ListNotifications list = QANAT__LIST_NOTIFICATIONS__INIT;
        list.run_id = pass == 0? 0: first_id;
        list.limit = pass == 0? (uint32_t) newest: 1;
        Qanat__Request request = QANAT__REQUEST__INIT;
        request.body_case = QANAT__REQUEST__BODY_LIST_NOTIFICATIONS;
        request.list_notifications = &list;
        char *error = NULL;
        Qanat__Envelope *reply = qn_client_call (client, &request, &error);
        if (!reply || reply->reply->body_case != QANAT__REPLY__BODY_NOTIFICATIONS) {
            bench_say ("   list notifications: %s\n", error? error: "unexpected reply");
            free (error);
            qn_msg_free (&reply);
            return -1;
        }
        Qanat__NotifList *entries = reply->reply->notifications;
        for (size_t i = 0; i < entries->n_entries; i++) {
            Qanat__NotifEntry *entry = entries->entries [i];
            if (entry->run_id < first_id || entry->run_id > last_id || entry->channel != 0
            ||  !streq (entry->kind, "webhook"))
                continue;
            seen->listed++;
            seen->attempts += entry->attempts;
            if (streq (entry->state, "delivered"))
                seen->delivered++;
        }
        qn_msg_free (&reply);
    }
    return 0;
}

//  One measurement of (m) on a fresh qanatd: runs 1-task runs, submitted
//  one call at a time, each notifying url when it is given.  Returns
//  runs/s from the first StartRun to the last run ended, or -1.  With
//  url, it then waits (5 s at most) until the sender has reached the
//  receiver (answering or hung), so that a round shorter than the
//  sender's tick still shows that deliveries are made or tried.
static double
s_notify_round (const char *url, int receiver, bench_receiver_t *answering, size_t runs,
                notif_seen_t *seen, double *cpu_p)
{
    proc_t *proc = bench_qanatd_start (true);
    qn_client_t *client = proc? bench_client_new (proc): NULL;
    if (!client) {
        bench_proc_destroy (&proc);
        return -1;
    }
    zactor_t *actor = NULL;
    sim_t *sim = s_sim_start (proc, bench_set.agents_a, bench_set.slots, "bench", &actor);
    double rate = -1;
    uint64_t first_id = 0, last_id = 0;
    if (bench_sim_wait (actor, "REGISTERED", 60)) {
        bench_set.notify_url = url;
        unsigned long answered = answering? bench_receiver_requests (answering): 0;
        long long cpu0 = bench_proc_cpu_ticks (proc->real);
        double started = bench_now ();
        bool ok = bench_submit_and_finish (client, actor, url? "bench-m-notify": "bench-m",
                                           runs, &first_id, &last_id);
        double elapsed = bench_now () - started;
        long long cpu1 = bench_proc_cpu_ticks (proc->real);
        bench_set.notify_url = NULL;
        double deadline = bench_now () + 5;
        while (ok && answering && bench_receiver_requests (answering) == answered
           &&  bench_now () < deadline)
            zclock_sleep (20);
        if (ok && answering)
            zclock_sleep (300);         //  its result recorded
        if (ok) {
            rate = runs / elapsed;
            *cpu_p = (double) (cpu1 - cpu0) / sysconf (_SC_CLK_TCK) / elapsed;
        }
        if (ok && url && s_notif_check (client, first_id, last_id, runs, seen))
            rate = -1;
        deadline = bench_now () + 5;
        while (url && !answering && (seen->queued = s_accept_queue (receiver)) == 0
           &&  bench_now () < deadline)
            zclock_sleep (50);
    }
    zactor_destroy (&actor);
    bench_sim_destroy (&sim);
    qn_client_destroy (&client);
    bench_proc_destroy (&proc);
    return rate;
}

static int
s_compare_double (const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;
    return x < y? -1: x > y;
}

//  The median of count values (sorts them).
static double
s_median (double *values, size_t count)
{
    qsort (values, count, sizeof (double), s_compare_double);
    return values [count / 2];
}

//  (m) is measured three ways: without notify, notifying a receiver that
//  answers at once, notifying one that hangs
#define S_M_VARIANTS    3
#define S_M_ROUNDS_MAX  3

static void
s_notif_add (notif_seen_t *total, const notif_seen_t *seen)
{
    total->expected += seen->expected;
    total->listed += seen->listed;
    total->delivered += seen->delivered;
    total->attempts += seen->attempts;
    total->queued = seen->queued;
}

//  rates and cpu_us: one row per variant, one value per round
static void
s_figure_m_report (double rates [S_M_VARIANTS][S_M_ROUNDS_MAX],
                   double cpu_us [S_M_VARIANTS][S_M_ROUNDS_MAX], size_t rounds,
                   notif_seen_t *seen, unsigned long answered)
{
    double rate [S_M_VARIANTS], cpu [S_M_VARIANTS];
    for (size_t v = 0; v < S_M_VARIANTS; v++) {
        rate [v] = s_median (rates [v], rounds);
        cpu [v] = s_median (cpu_us [v], rounds);
    }
    double ratio = rate [2] / rate [0], ratio_answering = rate [1] / rate [0];
    bench_say ("   medians: without %.0f runs/s, answering receiver %.0f, hung receiver %.0f;\n"
               "   answering / without %.3f, hung / without %.3f (target >= 0.90);\n"
               "   qanatd CPU per run %.0f us without, %.0f us answering, %.0f us hung\n",
               rate [0], rate [1], rate [2], ratio_answering, ratio, cpu [0], cpu [1], cpu [2]);
    bench_say ("   outbox, read back after each round (the first run's entry and the newest 999):\n"
               "   answering: %zu notification(s) missing, %zu delivered (the receiver answered\n"
               "   %lu requests); hung: %zu missing, %zu delivered, %llu failed attempt(s)\n"
               "   recorded, %ld connection(s) in the receiver's accept queue after the last round\n",
               seen [1].expected - seen [1].listed, seen [1].delivered, answered,
               seen [2].expected - seen [2].listed, seen [2].delivered, seen [2].attempts,
               seen [2].queued);
    bench_figure ("m.dispatch_without", rate [0], "runs/s");
    bench_figure ("m.dispatch_answering", rate [1], "runs/s");
    bench_figure ("m.dispatch_with", rate [2], "runs/s");
    bench_figure ("m.ratio_answering", ratio_answering, "");
    bench_figure ("m.ratio", ratio, "");
    bench_figure ("m.cpu_per_run_without", cpu [0], "us");
    bench_figure ("m.cpu_per_run_answering", cpu [1], "us");
    bench_figure ("m.cpu_per_run_with", cpu [2], "us");
    bench_figure ("m.notifications_missing",
                  (double) (seen [1].expected - seen [1].listed + seen [2].expected - seen [2].listed), "");
    bench_figure ("m.receiver_connections", (double) seen [2].queued, "");
    char value [48];
    snprintf (value, sizeof value, "%.0f runs/s", rate [0]);
    bench_row ("m 1-task runs, no notify (ctl plane, sim)", value, "", "-");
    snprintf (value, sizeof value, "%.0f runs/s", rate [1]);
    bench_row ("m 1-task runs, webhook answering at once", value, "", "-");
    snprintf (value, sizeof value, "%.0f runs/s", rate [2]);
    bench_row ("m 1-task runs, webhook to a hung receiver", value, "", "-");
    snprintf (value, sizeof value, "%.3f", ratio_answering);
    bench_row ("m answering receiver / without notify", value, "", "-");
    snprintf (value, sizeof value, "%.3f", ratio);
    bench_row ("m hung receiver / without notify", value, ">= 0.90",
               ratio >= 0.9 && seen [2].listed == seen [2].expected && seen [2].delivered == 0
               && seen [1].listed == seen [1].expected && seen [2].queued > 0? "yes": "NO");
}

void
bench_figure_m (void)
{
    size_t rounds = bench_set.smoke? 1: S_M_ROUNDS_MAX;
    size_t runs = bench_set.notify_runs;
    bench_say ("\n== (m) dispatch with notifications: a receiver that answers, one that hangs (control plane, simulated agents) ==\n");
    bench_say ("   %zu runs of one `true` task, submitted one call at a time, on %zu simulated agents x %u\n"
               "   slots; without notify, and with notify: {on: [succeeded, failed], webhook} to a\n"
               "   loopback receiver that answers 200 at once, or to a loopback port that listens\n"
               "   and never accepts; a fresh qanatd for each; %zu round(s) of the three (their order\n"
               "   rotates), medians; from the first StartRun until every run ended\n",
               runs, bench_set.agents_a, bench_set.slots, rounds);
    uint16_t port = 0;
    int receiver = s_hanging_receiver (&port);
    bench_receiver_t *answering = receiver >= 0? bench_receiver_new (): NULL;
    if (!answering) {
        if (receiver >= 0)
            close (receiver);
        bench_fail ("m dispatch with notify", "cannot open the receivers' sockets");
        return;
    }
    char url [S_M_VARIANTS][64] = { "" };
    snprintf (url [1], sizeof url [1], "http://127.0.0.1:%u/hook", bench_receiver_port (answering));
    snprintf (url [2], sizeof url [2], "http://127.0.0.1:%u/hook", port);
    double rates [S_M_VARIANTS][S_M_ROUNDS_MAX], cpu_us [S_M_VARIANTS][S_M_ROUNDS_MAX];
    notif_seen_t total [S_M_VARIANTS];
    memset (total, 0, sizeof total);
    bool ok = true;
    for (size_t k = 0; k < rounds && ok; k++) {
        //  The order rotates: a machine getting busier or quieter then
        //  favours none of the three
        for (size_t turn = 0; turn < S_M_VARIANTS && ok; turn++) {
            size_t v = (k + turn) % S_M_VARIANTS;
            double cpu = 0;
            notif_seen_t seen;
            memset (&seen, 0, sizeof seen);
            rates [v][k] = s_notify_round (v? url [v]: NULL, v == 2? receiver: -1,
                                           v == 1? answering: NULL, runs, &seen, &cpu);
            ok = rates [v][k] > 0;
            cpu_us [v][k] = ok? cpu / rates [v][k] * 1e6: 0;
            s_notif_add (&total [v], &seen);
        }
        if (ok)
            bench_say ("   round %zu: without %.0f runs/s (qanatd %.0f us of CPU per run), answering\n"
                       "   %.0f runs/s (%.0f us), hung %.0f runs/s (%.0f us): %.3f, %.3f\n", k + 1,
                       rates [0][k], cpu_us [0][k], rates [1][k], cpu_us [1][k], rates [2][k],
                       cpu_us [2][k], rates [1][k] / rates [0][k], rates [2][k] / rates [0][k]);
    }
    unsigned long answered = bench_receiver_requests (answering);
    bench_receiver_destroy (&answering);
    close (receiver);
    if (!ok)
        bench_fail ("m dispatch with notify", "the runs did not finish, or the outbox could not be read");
    else
        s_figure_m_report (rates, cpu_us, rounds, total, answered);
}
