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
      i  HTTP: GET a run, the run list and its pages over 100,000 runs
      j  (a) with 200 event-stream log followers vs without
      k  RSS with the HTTP server on and idle vs off
      l  (a) with resource matching over 1,000 agents of mixed sizes
      m  1-task runs notifying a webhook receiver that answers, or hangs, vs without

    Every figure prints a line "figure: KEY = VALUE UNIT" that scripts can
    read, and the run ends with a summary table.  The exit status is 0 when
    every selected figure was produced, whether or not it met its target.

    The program is one class in several files, which share qn_bench.h:
      qn_bench.c          main: the settings, the machine, the figure
                          lines and the summary
      qn_bench_proc.c     the processes it starts (qanatd, the real
                          agent), /proc readings, client calls
      qn_bench_sim.c      the simulated agents
      qn_bench_control.c  figures a to f, l and m: the control plane,
                          driven by simulated agents
      qn_bench_real.c     figures g and h: real agents and processes
      qn_bench_http.c     figures i, j and k: the HTTP side
      qn_bench_httpc.c    the HTTP clients those figures drive it with
*/
#include "qn_bench.h"

//  ---------------------------------------------------------------------
//  Settings and results

typedef struct {
    char figure [80];
    char value [48];
    char target [32];
    const char *met;                //  "yes", "NO", "-" (no target), "error"
} row_t;

settings_t bench_set;        //  the settings every figure reads
static row_t s_rows [64];
static size_t s_row_count;
static int s_errors;

double
bench_now (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int64_t
bench_now_ns (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static bool
s_selected (char figure)
{
    return !bench_set.only || strchr (bench_set.only, figure) != NULL;
}

void
bench_say (const char *format, ...)
{
    va_list args;
    va_start (args, format);
    vprintf (format, args);
    va_end (args);
    fflush (stdout);
}

//  A figure, as a line scripts can read.
void
bench_figure (const char *key, double value, const char *unit)
{
    bench_say ("figure: %s = %.6g %s\n", key, value, unit);
}

void
bench_row (const char *figure, const char *value, const char *target, const char *met)
{
    if (s_row_count < sizeof s_rows / sizeof s_rows [0]) {
        row_t *row = &s_rows [s_row_count++];
        snprintf (row->figure, sizeof row->figure, "%s", figure);
        snprintf (row->value, sizeof row->value, "%s", value);
        snprintf (row->target, sizeof row->target, "%s", target);
        row->met = met;
    }
}

void
bench_fail (const char *figure, const char *why)
{
    bench_say ("ERROR in figure %s: %s\n", figure, why);
    bench_row (figure, "error", "", "error");
    s_errors++;
}

//  ---------------------------------------------------------------------
//  The machine, and the settings

//  The first line of /proc/loadavg, "?" when it cannot be read: printed
//  at the start and the end, as the figures depend on what else runs.
static void
s_load_average (char *load, size_t size)
{
    snprintf (load, size, "?");
    FILE *file = fopen ("/proc/loadavg", "r");
    if (file && fgets (load, (int) size, file))
        load [strcspn (load, "\n")] = 0;
    if (file)
        fclose (file);
}

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
    char load [128];
    s_load_average (load, sizeof load);
    struct utsname uts;
    uname (&uts);
    time_t now = time (NULL);
    char date [64];
    strftime (date, sizeof date, "%Y-%m-%d %H:%M:%S %Z", localtime (&now));
    bench_say ("qanat benchmark, %s\n", date);
    bench_say ("machine: %ld CPUs online (nproc), %s, %.1f GiB memory, %s %s %s\n",
               sysconf (_SC_NPROCESSORS_ONLN), model, mem_kb / 1048576.0, uts.sysname, uts.release,
               uts.machine);
    bench_say ("load average at start: %s\n", load);
    struct rlimit limit;
    getrlimit (RLIMIT_NOFILE, &limit);
    bench_say ("open files limit: %llu (hard %llu)\n", (unsigned long long) limit.rlim_cur,
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
        "  --only LIST        figures to run, e.g. a,b (default: a,b,c,d,e,f,g,h,i,j,k,l,m;\n"
        "                     g = a with real processes, h = c with a real agent;\n"
        "                     i,j,k = the HTTP side, what `make bench-http` runs;\n"
        "                     l = a with resource matching over 1,000 agents;\n"
        "                     m = 1-task runs notifying an answering or hanging webhook vs not)\n"
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
        "  --http-runs N      (i) stored runs (default 100000)\n"
        "  --http-seconds S   (i) seconds measured per connection count (default 5)\n"
        "  --http-pages N     (i) run list pages followed by cursor (default 1000)\n"
        "  --followers N      (j) event-stream log followers (default 200)\n"
        "  --follow-runs N    (j) runs whose log they follow (default 10)\n"
        "  --follow-rate R    (j) log lines/s of each followed run (default 100)\n"
        "  --rss-rounds N     (k) qanatd starts with and without HTTP (default 3)\n"
        "  --notify-runs N    (m) 1-task runs per measurement (default 10000)\n"
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
    char *exe = bench_proc_exe (getpid ());
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
    bench_kill_children ();
}

static void
s_on_signal (int sig)
{
    bench_kill_children ();
    signal (sig, SIG_DFL);
    raise (sig);
}

//  A helper of figure d: --sim-child ENDPOINT FIRST COUNT.
static int
s_sim_child (char *argv [])
{
    size_t first = 0, count = 0;
    if (s_parse_size (argv [3], &first) || s_parse_size (argv [4], &count) || !count)
        return 2;
    s_raise_nofile (2 * count + 512);
    zsys_set_max_sockets (count + 256);
    zsys_set_linger (0);
    zsys_init ();
    zsys_handler_set (NULL);
    signal (SIGPIPE, SIG_IGN);
    return bench_sim_child_main (argv [2], first, count);
}

//  The full sizes: the figures' targets are set for these.
static void
s_settings_full (void)
{
    bench_set.tasks = 100000;
    bench_set.real_tasks = 20000;
    bench_set.agents_a = 8;
    bench_set.agents_l = 1000;
    bench_set.slots = 64;
    bench_set.chain = 1000;
    bench_set.log_mb = 200;
    bench_set.log_window = 10000;
    bench_set.lines_per_event = 40;
    bench_set.scale [0] = 1000;
    bench_set.scale [1] = 10000;
    bench_set.scale_count = 2;
    bench_set.window_s = 10;
    bench_set.depth = 1000000;
    bench_set.depth_shallow = 1000;
    bench_set.depth_tasks = 20000;
    bench_set.runs = 100000;
    bench_set.http_runs = 100000;
    bench_set.http_seconds = 5;
    bench_set.http_pages = 1000;
    bench_set.followers = 200;
    bench_set.follow_runs = 10;
    bench_set.follow_rate = 100;
    bench_set.rss_rounds = 3;
    bench_set.notify_runs = 10000;
}

//  --smoke: tiny sizes, the whole suite in well under 20 s.
static void
s_settings_smoke (void)
{
    bench_set.smoke = true;
    bench_set.tasks = 2000;
    bench_set.real_tasks = 100;
    bench_set.chain = 50;
    bench_set.log_mb = 2;
    bench_set.log_window = 1000;
    bench_set.scale [0] = 20;
    bench_set.scale [1] = 200;
    bench_set.window_s = 1;
    bench_set.depth = 12000;
    bench_set.depth_shallow = 1000;
    bench_set.depth_tasks = 1000;
    bench_set.runs = 300;
    bench_set.http_runs = 300;
    bench_set.http_seconds = 0.3;
    bench_set.http_pages = 10;
    bench_set.followers = 40;
    bench_set.follow_runs = 4;
    bench_set.rss_rounds = 1;
    bench_set.agents_l = 50;
    bench_set.notify_runs = 50;
}

//  Sets what one option (but --help) says; -1 for a bad value.
static int
s_option_apply (int opt, const char *arg)
{
    size_t value = 0;
    int rc = 0;
    switch (opt) {
        case 'o': free (bench_set.only); bench_set.only = strdup (arg); break;
        case 't': rc = s_parse_size (arg, &bench_set.tasks); break;
        case 'S': rc = s_parse_size (arg, &bench_set.agents_a); break;
        case 's': rc = s_parse_size (arg, &value); bench_set.slots = (uint32_t) value; break;
        case 'c': rc = s_parse_size (arg, &bench_set.chain); break;
        case 'l': rc = s_parse_size (arg, &bench_set.log_mb); break;
        case 'w': rc = s_parse_size (arg, &bench_set.log_window); break;
        case 'P': rc = s_parse_size (arg, &bench_set.lines_per_event); break;
        case 'G': rc = s_parse_size (arg, &bench_set.real_tasks); break;
        case 'a': {
            bench_set.scale_count = 0;
            char *copy = strdup (arg);
            for (char *item = strtok (copy, ","); item && rc == 0; item = strtok (NULL, ",")) {
                rc = s_parse_size (item, &value);
                if (rc == 0 && bench_set.scale_count < 4)
                    bench_set.scale [bench_set.scale_count++] = value;
            }
            free (copy);
            break;
        }
        case 'W': bench_set.window_s = atof (arg); rc = bench_set.window_s > 0? 0: -1; break;
        case 'd': rc = s_parse_size (arg, &bench_set.depth); break;
        case 'D': rc = s_parse_size (arg, &bench_set.depth_tasks); break;
        case 'r': rc = s_parse_size (arg, &bench_set.runs); break;
        case 'R': rc = s_parse_size (arg, &bench_set.http_runs); break;
        case 'T': bench_set.http_seconds = atof (arg); rc = bench_set.http_seconds > 0? 0: -1; break;
        case 'p': rc = s_parse_size (arg, &bench_set.http_pages); break;
        case 'F': rc = s_parse_size (arg, &bench_set.followers); break;
        case 'f': rc = s_parse_size (arg, &bench_set.follow_runs); break;
        case 'L': bench_set.follow_rate = atof (arg); rc = bench_set.follow_rate > 0? 0: -1; break;
        case 'K': rc = s_parse_size (arg, &bench_set.rss_rounds); break;
        case 'N': rc = s_parse_size (arg, &bench_set.notify_runs); break;
        case 'k': break;
        case 'n': bench_set.no_sync = true; break;
        case 'b': free (bench_set.builddir); bench_set.builddir = strdup (arg); break;
    }
    return rc;
}

//  Reads the command line into bench_set.  Returns -1 to go on, else the
//  exit status (0 after --help, 2 on a bad option or size).
static int
s_settings_parse (int argc, char *argv [])
{
    s_settings_full ();
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
        {"http-runs", required_argument, 0, 'R'},
        {"http-seconds", required_argument, 0, 'T'},
        {"http-pages", required_argument, 0, 'p'},
        {"followers", required_argument, 0, 'F'},
        {"follow-runs", required_argument, 0, 'f'},
        {"follow-rate", required_argument, 0, 'L'},
        {"rss-rounds", required_argument, 0, 'K'},
        {"notify-runs", required_argument, 0, 'N'},
        {"smoke", no_argument, 0, 'k'},
        {"no-sync", no_argument, 0, 'n'},
        {"builddir", required_argument, 0, 'b'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}
    };
    //  --smoke first, so that explicit sizes given with it still win.
    for (int i = 1; i < argc; i++)
        if (streq (argv [i], "--smoke"))
            s_settings_smoke ();
    int opt;
    while ((opt = getopt_long (argc, argv, "h", options, NULL)) != -1) {
        if (opt == 'h') {
            s_usage (stdout);
            return 0;
        }
        if (!strchr ("otSsclwPGaWdDrRTpFfLKNknb", opt)) {
            s_usage (stderr);
            return 2;
        }
        if (s_option_apply (opt, optarg)) {
            fprintf (stderr, "qn_bench: bad value '%s'\n", optarg);
            return 2;
        }
    }
    if (bench_set.tasks == 0 || bench_set.agents_a == 0 || bench_set.slots == 0
    ||  bench_set.chain < 2 || bench_set.log_mb == 0 || bench_set.log_window == 0
    ||  bench_set.scale_count == 0 || bench_set.depth_tasks == 0 || bench_set.runs == 0
    ||  bench_set.http_runs == 0 || bench_set.http_pages == 0 || bench_set.followers == 0
    ||  bench_set.follow_runs == 0 || bench_set.follow_runs > SIM_ATTEMPTS_MAX
    ||  bench_set.notify_runs == 0) {
        fprintf (stderr, "qn_bench: sizes must be positive (and --chain at least 2)\n");
        return 2;
    }
    for (size_t k = 0; k < bench_set.scale_count; k++)
        if (bench_set.scale [k] == 0) {
            fprintf (stderr, "qn_bench: agent counts must be positive\n");
            return 2;
        }
    if (bench_set.depth_shallow > bench_set.depth)
        bench_set.depth_shallow = bench_set.depth;
    if (!bench_set.builddir)
        bench_set.builddir = s_default_builddir ();
    return -1;
}

//  Room for the most simulated agents any figure runs, czmq, and the
//  handlers that kill our children on any exit.
static void
s_process_setup (void)
{
    size_t most_agents = bench_set.agents_a > bench_set.agents_l? bench_set.agents_a
                                                                : bench_set.agents_l;
    for (size_t k = 0; k < bench_set.scale_count; k++)
        if (bench_set.scale [k] > most_agents)
            most_agents = bench_set.scale [k];
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
}

//  Starts a coordinator once, to show which binary the wrapper runs (the
//  pid we measure) and where the data goes.  -1 when it cannot start.
static int
s_describe_qanatd (void)
{
    proc_t *probe = bench_qanatd_start (true);
    if (!probe) {
        bench_say ("cannot start %s/coordinator/qanatd\n", bench_set.builddir);
        return -1;
    }
    bench_say ("qanatd: started pid %d, measured pid %d, running %s\n",
               (int) probe->pid, (int) probe->real, probe->exe);
    bench_say ("data dirs under %s, on %s\n", probe->dir, bench_fs_name (probe->dir));
    bench_say ("qanatd runs with --insecure: plaintext sockets, CURVE off (see docs/performance.md)\n");
    if (bench_set.no_sync)
        bench_say ("--no-sync: EVERY coordinator runs without fsync; \"durable\" below does not hold\n");
    bench_proc_destroy (&probe);
    return 0;
}

static void
s_run_figures (void)
{
    if (s_selected ('a'))
        bench_figure_a ();
    if (s_selected ('b'))
        bench_figure_b ();
    if (s_selected ('c'))
        bench_figure_c ();
    if (s_selected ('d'))
        bench_figure_d ();
    if (s_selected ('e'))
        bench_figure_e ();
    if (s_selected ('f'))
        bench_figure_f ();
    if (s_selected ('g'))
        bench_figure_g ();
    if (s_selected ('h'))
        bench_figure_h ();
    if (s_selected ('i'))
        bench_figure_i ();
    if (s_selected ('j'))
        bench_figure_j ();
    if (s_selected ('k'))
        bench_figure_k ();
    if (s_selected ('l'))
        bench_figure_l ();
    if (s_selected ('m'))
        bench_figure_m ();
}

static void
s_summary (void)
{
    char load [128];
    s_load_average (load, sizeof load);
    bench_say ("\nload average at end: %s\n", load);
    bench_say ("\n== summary ==\n");
    bench_say ("%-48s | %-20s | %-17s | %s\n", "figure", "value", "target", "met?");
    bench_say ("%.48s-+-%.20s-+-%.17s-+-----\n", "------------------------------------------------",
               "--------------------", "-----------------");
    for (size_t i = 0; i < s_row_count; i++)
        bench_say ("%-48s | %-20s | %-17s | %s\n", s_rows [i].figure, s_rows [i].value,
                   s_rows [i].target, s_rows [i].met);
    bench_say ("\n%d figure(s) could not be produced\n", s_errors);
}

int
main (int argc, char *argv [])
{
    if (argc == 5 && streq (argv [1], "--sim-child"))
        return s_sim_child (argv);
    int rc = s_settings_parse (argc, argv);
    if (rc != -1)
        return rc;
    s_process_setup ();
    s_describe_machine ();
    bench_say ("build tree: %s%s\n", bench_set.builddir,
               bench_set.smoke? "  (--smoke: tiny sizes)": "");
    if (s_describe_qanatd () != 0)
        return 1;
    s_run_figures ();
    s_summary ();
    free (bench_set.only);
    free (bench_set.builddir);
    return s_errors? 1: 0;
}
