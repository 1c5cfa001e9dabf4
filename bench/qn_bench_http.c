/*  qn_bench_http - the figures of qanatd's HTTP side: (i) reading a run
    and the run list over HTTP, with 100,000 runs stored; (j) dispatch
    throughput with 200 server-sent event log followers against without,
    and whether every follower got every line once; (k) the coordinator's
    memory with the HTTP server on and idle against off.

    One of the files of the qn_bench class.  The clients are in
    qn_bench_httpc.c.
*/
#include "qn_bench.h"

#define FOLLOWERS_PER_SOURCE    20      //  under the server's 32 per address and per credential

static double
s_own_cpu_s (void)
{
    struct rusage usage;
    getrusage (RUSAGE_SELF, &usage);
    return usage.ru_utime.tv_sec + usage.ru_utime.tv_usec / 1e6
         + usage.ru_stime.tv_sec + usage.ru_stime.tv_usec / 1e6;
}

static void
s_figure_row (const char *key, const char *label, double value, const char *unit,
              const char *format, const char *target, const char *met)
{
    char text [48];
    bench_figure (key, value, unit);
    snprintf (text, sizeof text, format, value);
    bench_row (label, text, target, met);
}

//  ---------------------------------------------------------------------
//  (i) GET a run, and the run list, over 100,000 stored runs

static void
s_get_run_figures (proc_t *proc, uint64_t first_id, uint64_t last_id)
{
    size_t counts [] = { 1, 4, 16 };
    for (size_t k = 0; k < sizeof counts / sizeof counts [0]; k++) {
        size_t conns = counts [k];
        long long ticks0 = bench_proc_cpu_ticks (proc->real);
        double own0 = s_own_cpu_s ();
        bench_load_t load;
        int rc = bench_http_load (proc->http_port, conns, bench_set.http_seconds, first_id, last_id, &load);
        double qanatd_cpu = (double) (bench_proc_cpu_ticks (proc->real) - ticks0)
                          / sysconf (_SC_CLK_TCK) / bench_set.http_seconds;
        double own_cpu = (s_own_cpu_s () - own0) / bench_set.http_seconds;
        char key [64], label [80];
        snprintf (label, sizeof label, "i GET /runs/N, %zu connection%s", conns, conns > 1? "s": "");
        if (rc || load.errors) {
            bench_say ("   %zu connections: %zu requests failed\n", conns, load.errors);
            bench_fail (label, "requests failed");
            continue;
        }
        bench_say ("   GET /api/v1/runs/N, %2zu keep-alive connection(s): %.0f requests/s, p50 %.3f ms, "
                   "p99 %.3f ms;\n       qanatd %.0f%% of a core, the bench's clients %.0f%%\n",
                   conns, load.rate, load.p50_ms, load.p99_ms, qanatd_cpu * 100, own_cpu * 100);
        snprintf (key, sizeof key, "i.get_run_rps_%zu", conns);
        s_figure_row (key, label, load.rate, "req/s", "%.0f req/s", "", "-");
        snprintf (key, sizeof key, "i.get_run_p50_%zu", conns);
        bench_figure (key, load.p50_ms, "ms");
        snprintf (key, sizeof key, "i.get_run_p99_%zu", conns);
        snprintf (label, sizeof label, "i   p50 / p99, %zu connection%s", conns, conns > 1? "s": "");
        char text [48];
        snprintf (text, sizeof text, "%.3f / %.3f ms", load.p50_ms, load.p99_ms);
        bench_figure (key, load.p99_ms, "ms");
        bench_row (label, text, "", "-");
    }
}

//  The number after "key": in a JSON text, 0 when absent
static uint64_t
s_json_number (const char *body, const char *key)
{
    char pattern [64];
    snprintf (pattern, sizeof pattern, "\"%s\":", key);
    const char *at = body? strstr (body, pattern): NULL;
    return at? strtoull (at + strlen (pattern), NULL, 10): 0;
}

//  One GET of a run list page: its latency (ns) and next cursor ("" when
//  none); -1 on failure or a page that is not newest first below before
static int64_t
s_list_page (bench_http_t *conn, const char *cursor, uint64_t *first_p, char *next, size_t size)
{
    char path [128];
    snprintf (path, sizeof path, "/api/v1/runs?limit=50%s%s", *cursor? "&cursor=": "", cursor);
    int64_t start = bench_now_ns ();
    const char *body = NULL;
    size_t length = 0;
    int status = bench_http_get (conn, path, NULL, &body, &length);
    int64_t took = bench_now_ns () - start;
    if (status != 200 || !body)
        return -1;
    ((char *) body) [length] = 0;       //  the buffer has room for it
    *first_p = s_json_number (body, "run_id");
    next [0] = 0;
    const char *at = strstr (body, "\"next\":\"");
    if (at) {
        at += 8;
        size_t len = strcspn (at, "\"");
        snprintf (next, size, "%.*s", (int) (len < size? len: size - 1), at);
    }
    return took;
}

static void
s_run_list_figures (proc_t *proc)
{
    bench_http_t *conn = bench_http_connect (NULL, proc->http_port);
    size_t repeats = bench_set.smoke? 50: 1000;
    int64_t *latencies = (int64_t *) calloc (repeats + bench_set.http_pages + 1, sizeof (int64_t));
    char next [64], cursor [64] = "";
    uint64_t first = 0, before = 0;
    bool ok = conn != NULL;
    for (size_t i = 0; ok && i < repeats; i++)
        ok = (latencies [i] = s_list_page (conn, "", &first, next, sizeof next)) >= 0;
    double p50 = bench_http_percentile (latencies, repeats, 0.5);
    double p99 = bench_http_percentile (latencies, repeats, 0.99);
    //  Paging by cursor: each page's newest run is older than the last one's
    size_t pages = 0;
    int64_t last_ns = 0;
    while (ok && pages < bench_set.http_pages) {
        last_ns = s_list_page (conn, cursor, &first, next, sizeof next);
        ok = last_ns >= 0 && (pages == 0 || first < before);
        latencies [pages++] = last_ns;
        before = first;
        if (!*next)
            break;
        snprintf (cursor, sizeof cursor, "%s", next);
    }
    bench_http_destroy (&conn);
    if (!ok) {
        bench_fail ("i run list", "a page failed or was out of order");
        free (latencies);
        return;
    }
    double page_p50 = bench_http_percentile (latencies, pages, 0.5);
    double page_p99 = bench_http_percentile (latencies, pages, 0.99);
    free (latencies);
    bench_say ("   GET /api/v1/runs?limit=50 (first page), %zu times: p50 %.3f ms, p99 %.3f ms\n",
               repeats, p50, p99);
    bench_say ("   paging with the cursor: %zu pages of 50, p50 %.3f ms, p99 %.3f ms; page %zu took %.3f ms\n",
               pages, page_p50, page_p99, pages, last_ns / 1e6);
    char text [48];
    snprintf (text, sizeof text, "%.3f / %.3f ms", p50, p99);
    bench_figure ("i.list_p50", p50, "ms");
    bench_figure ("i.list_p99", p99, "ms");
    bench_row ("i GET /runs?limit=50 p50 / p99", text, "", "-");
    snprintf (text, sizeof text, "%.3f / %.3f ms", page_p50, page_p99);
    bench_figure ("i.page_p50", page_p50, "ms");
    bench_figure ("i.page_p99", page_p99, "ms");
    bench_figure ("i.pages", (double) pages, "pages");
    bench_figure ("i.page_last", last_ns / 1e6, "ms");
    char label [80];
    snprintf (label, sizeof label, "i paging to page %zu p50 / p99", pages);
    bench_row (label, text, "", "-");
}

void
bench_figure_i (void)
{
    bench_say ("\n== (i) HTTP reads: GET /api/v1/runs/N and the run list over %zu runs ==\n",
               bench_set.http_runs);
    bench_say ("   %zu 1-task runs submitted one call at a time and run to the end by simulated agents\n"
               "   (qanatd with --no-sync for the fill), then qanatd restarted durable with HTTP on\n"
               "   loopback; closed-loop clients in this process, one thread per keep-alive connection,\n"
               "   each GET of a run picks one of the stored runs at random; %.1f s per connection count\n",
               bench_set.http_runs, bench_set.http_seconds);
    proc_t *proc = bench_qanatd_start (false);
    qn_client_t *client = proc? bench_client_new (proc): NULL;
    if (!client) {
        bench_fail ("i HTTP reads", "qanatd did not start");
        bench_proc_destroy (&proc);
        return;
    }
    sim_t *sim = bench_sim_new (proc->agent_ep, bench_set.agents_a, bench_set.slots, "bench");
    zactor_t *actor = zactor_new (bench_sim_actor, sim);
    uint64_t first_id = 0, last_id = 0;
    double started = bench_now ();
    bool ok = bench_sim_wait (actor, "REGISTERED", 60)
           && bench_submit_and_finish (client, actor, "bench-i", bench_set.http_runs, &first_id, &last_id);
    double filled = bench_now () - started;
    zactor_destroy (&actor);
    bench_sim_destroy (&sim);
    qn_client_destroy (&client);
    if (!ok || !last_id || bench_qanatd_restart (proc, true, "127.0.0.1:0")) {
        bench_fail ("i HTTP reads", "the runs did not finish, or qanatd did not restart");
        bench_proc_destroy (&proc);
        return;
    }
    bench_say ("   filled in %.1f s (runs %llu to %llu); HTTP on port %u\n", filled,
               (unsigned long long) first_id, (unsigned long long) last_id, (unsigned) proc->http_port);
    s_get_run_figures (proc, first_id, last_id);
    s_run_list_figures (proc);
    bench_proc_destroy (&proc);
}

//  ---------------------------------------------------------------------
//  (j) Dispatch with event-stream log followers against without

typedef struct {
    double rate;                    //  dispatch tasks/s
    double cpu;                     //  qanatd's share of a core during it
    double threads [3];             //  of which its engine thread, HTTP threads, others
    double own;                     //  this process's (simulated agents, followers)
    double commits;                 //  store commits during the dispatch
    size_t followers, connected, complete;
    uint64_t lines_sent, lines_taken, missing, repeated, not_ended;
} s_phase_t;

//  Checks each follower against what the log agent sent for its run
static void
s_check_followers (s_phase_t *phase, sim_t *log_sim, bench_follower_t *results, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        uint64_t sent = 0;
        for (size_t a = 0; a < log_sim->attempt_count; a++)
            if (log_sim->attempts [a].run_id == results [i].run_id)
                sent = log_sim->attempts [a].logs_sent;
        phase->lines_taken += results [i].lines;
        phase->missing += results [i].missing + (sent > results [i].last_seq? sent - results [i].last_seq: 0);
        phase->repeated += results [i].repeated;
        phase->not_ended += !results [i].ended;
        if (results [i].status == 200 && results [i].ended && results [i].lines == sent
        &&  results [i].last_seq == sent && !results [i].missing && !results [i].repeated)
            phase->complete++;
    }
}

//  Opens the followers and waits until each has its response head and
//  the lines so far.  NULL when they cannot all connect.
static bench_followers_t *
s_followers_open (proc_t *proc, const uint64_t *run_ids, bench_follower_t *results)
{
    bench_followers_t *followers = bench_followers_start (proc->http_port, run_ids, bench_set.follow_runs,
                                                          bench_set.followers, FOLLOWERS_PER_SOURCE,
                                                          results);
    double deadline = bench_now () + 30;
    while (followers && bench_followers_connected (followers) < bench_set.followers
       &&  bench_followers_ended (followers) == 0 && bench_now () < deadline)
        zclock_sleep (20);
    if (followers && bench_followers_connected (followers) < bench_set.followers) {
        bench_say ("   only %zu of %zu followers connected\n", bench_followers_connected (followers),
                   bench_set.followers);
        bench_followers_destroy (&followers);
    }
    zclock_sleep (1000);            //  a steady state: every follower caught up and waiting
    return followers;
}

//  One phase on a fresh qanatd: the followed runs' agent paces its
//  lines; the followers (when with) follow them; the dispatch runs.
static int
s_follow_phase (bool with, s_phase_t *phase)
{
    memset (phase, 0, sizeof *phase);
    proc_t *proc = bench_qanatd_start_http (true, "127.0.0.1:0");
    qn_client_t *client = proc? bench_client_new (proc): NULL;
    if (!client) {
        bench_proc_destroy (&proc);
        return -1;
    }
    sim_t *sim = bench_sim_new (proc->agent_ep, bench_set.agents_a, bench_set.slots, "bench");
    zactor_t *actor = zactor_new (bench_sim_actor, sim);
    sim_t *log_sim = bench_sim_new (proc->agent_ep, 1, (uint32_t) bench_set.follow_runs, "bench-logs");
    log_sim->mode = SIM_LOG;
    log_sim->log_rate = bench_set.follow_rate;
    log_sim->log_lines = UINT64_MAX / 4;
    log_sim->log_attempts = bench_set.follow_runs;
    log_sim->first_name = 1000;
    zactor_t *log_actor = zactor_new (bench_sim_actor, log_sim);
    uint64_t *run_ids = (uint64_t *) calloc (bench_set.follow_runs, sizeof (uint64_t));
    bench_follower_t *results = (bench_follower_t *) calloc (bench_set.followers, sizeof *results);
    bench_followers_t *followers = NULL;
    char *yaml = bench_workflow_yaml ("bench-j-logs", 1, "bench-logs", false);
    bool ok = bench_sim_wait (actor, "REGISTERED", 60) && bench_sim_wait (log_actor, "REGISTERED", 60);
    for (size_t r = 0; ok && r < bench_set.follow_runs; r++)
        ok = bench_start_run (client, yaml, &run_ids [r]) == 0;
    free (yaml);
    ok = ok && bench_sim_wait (log_actor, "LOGGING", 60);
    if (ok && with)
        ok = (followers = s_followers_open (proc, run_ids, results)) != NULL;
    if (ok && !with)
        zclock_sleep (1000);
    long long before [3], after [3];
    bench_proc_thread_ns (proc->real, "qanatd", "MHD", before);
    double started = bench_now (), own = s_own_cpu_s ();
    if (ok)
        phase->rate = bench_dispatch_measure (proc, client, "bench-j", bench_set.tasks, "bench",
                                              &phase->cpu, &phase->commits);
    double elapsed = bench_now () - started;
    phase->own = (s_own_cpu_s () - own) / elapsed;
    bench_proc_thread_ns (proc->real, "qanatd", "MHD", after);
    for (int k = 0; k < 3; k++)
        phase->threads [k] = (double) (after [k] - before [k]) / 1e9 / elapsed;
    ok = ok && phase->rate > 0;
    zstr_send (log_actor, "STOPLOGS");
    ok = ok && bench_sim_wait (log_actor, "LOGDONE", 60);
    double deadline = bench_now () + 60;
    while (ok && followers && bench_followers_ended (followers) < bench_set.followers
       &&  bench_now () < deadline)
        zclock_sleep (20);
    bench_followers_destroy (&followers);
    zactor_destroy (&log_actor);    //  its attempts are ours to read from here
    zactor_destroy (&actor);
    for (size_t a = 0; a < log_sim->attempt_count; a++)
        phase->lines_sent += log_sim->attempts [a].logs_sent;
    if (ok && with) {
        phase->followers = bench_set.followers;
        s_check_followers (phase, log_sim, results, bench_set.followers);
    }
    free (results);
    free (run_ids);
    bench_sim_destroy (&log_sim);
    bench_sim_destroy (&sim);
    qn_client_destroy (&client);
    bench_proc_destroy (&proc);
    return ok? 0: -1;
}

static int
s_compare_double (const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;
    return x < y? -1: x > y;
}

void
bench_figure_j (void)
{
    size_t pairs = bench_set.smoke? 1: 3;
    bench_say ("\n== (j) dispatch with %zu event-stream log followers vs without ==\n", bench_set.followers);
    bench_say ("   figure (a)'s dispatch (%zu tasks, %zu simulated agents x %u slots, durable) on a fresh\n"
               "   qanatd with HTTP on, while %zu 1-task runs on another simulated agent print %.0f lines/s\n"
               "   each (one 100-byte line per event); with: %zu followers of those logs\n"
               "   (GET /api/v1/runs/ID/logs/stream?task=t0, %d per loopback address and per bearer),\n"
               "   connected and caught up before the dispatch; %zu pair(s), alternating, medians\n",
               bench_set.tasks, bench_set.agents_a, bench_set.slots, bench_set.follow_runs,
               bench_set.follow_rate, bench_set.followers, FOLLOWERS_PER_SOURCE, pairs);
    double without [8], with [8], cpu_without [8], cpu_with [8];
    s_phase_t total = { 0 };
    for (size_t p = 0; p < pairs; p++) {
        s_phase_t off, on;
        if (s_follow_phase (false, &off) || s_follow_phase (true, &on)) {
            bench_fail ("j dispatch with followers", "a phase did not complete");
            return;
        }
        without [p] = off.rate;
        with [p] = on.rate;
        cpu_without [p] = off.cpu;
        cpu_with [p] = on.cpu;
        bench_say ("   pair %zu: without %.0f tasks/s, with %.0f tasks/s; qanatd's share of a core during the\n"
                   "     dispatch, engine thread + HTTP threads + others: without %.0f + %.0f + %.0f %%,"
                   " with %.0f + %.0f + %.0f %%;\n     the bench process (simulated agents, followers):"
                   " without %.0f %%, with %.0f %%;\n     store commits during the dispatch: without %.0f"
                   " (%.0f tasks per commit), with %.0f (%.0f)\n"
                   "     followers: %zu of %zu got every line once (%llu lines sent, %llu line events taken by all,"
                   " %llu missing, %llu repeated, %llu without the end)\n",
                   p + 1, off.rate, on.rate, off.threads [0] * 100, off.threads [1] * 100,
                   off.threads [2] * 100, on.threads [0] * 100, on.threads [1] * 100, on.threads [2] * 100,
                   off.own * 100, on.own * 100, off.commits,
                   off.commits > 0? bench_set.tasks / off.commits: 0, on.commits,
                   on.commits > 0? bench_set.tasks / on.commits: 0,
                   on.complete, on.followers,
                   (unsigned long long) on.lines_sent, (unsigned long long) on.lines_taken,
                   (unsigned long long) on.missing, (unsigned long long) on.repeated,
                   (unsigned long long) on.not_ended);
        total.followers += on.followers;
        total.complete += on.complete;
        total.missing += on.missing;
        total.repeated += on.repeated;
    }
    qsort (without, pairs, sizeof (double), s_compare_double);
    qsort (with, pairs, sizeof (double), s_compare_double);
    qsort (cpu_without, pairs, sizeof (double), s_compare_double);
    qsort (cpu_with, pairs, sizeof (double), s_compare_double);
    double off = without [pairs / 2], on = with [pairs / 2], ratio = on / off;
    bench_say ("   median: without %.0f tasks/s, with %.0f tasks/s: ratio %.3f (goal >= 0.90);"
               " qanatd %.0f%% vs %.0f%% of a core\n", off, on, ratio, cpu_without [pairs / 2] * 100,
               cpu_with [pairs / 2] * 100);
    s_figure_row ("j.dispatch_without", "j dispatch, HTTP idle", off, "tasks/s", "%.0f tasks/s", "", "-");
    char label [80];
    snprintf (label, sizeof label, "j dispatch, %zu SSE followers", bench_set.followers);
    s_figure_row ("j.dispatch_with", label, on, "tasks/s", "%.0f tasks/s", "", "-");
    s_figure_row ("j.ratio", "j ratio with / without", ratio, "", "%.3f", ">= 0.90", ratio >= 0.9? "yes": "NO");
    bool every = total.complete == total.followers && !total.missing && !total.repeated;
    char text [48];
    snprintf (text, sizeof text, "%zu of %zu", total.complete, total.followers);
    bench_figure ("j.followers_complete", (double) total.complete, "followers");
    bench_figure ("j.lines_missing", (double) total.missing, "lines");
    bench_figure ("j.lines_repeated", (double) total.repeated, "lines");
    bench_row ("j followers with every line once", text, "all", every? "yes": "NO");
}

//  ---------------------------------------------------------------------
//  (k) RSS with the HTTP server on and idle, against off

//  A fresh qanatd's VmRSS (KiB) a second after it started; with HTTP,
//  also after a burst of requests (*used_p), once their connections closed
static long
s_rss_of_start (const char *http, long *used_p)
{
    proc_t *proc = bench_qanatd_start_http (true, http);
    if (!proc)
        return -1;
    zclock_sleep (1000);
    long rss = bench_proc_status_kb (proc->real, "VmRSS");
    if (used_p) {
        bench_load_t load;
        bench_http_load (proc->http_port, 16, bench_set.smoke? 0.3: 2, 1, 1, &load);
        zclock_sleep (1000);
        *used_p = bench_proc_status_kb (proc->real, "VmRSS");
    }
    bench_proc_destroy (&proc);
    return rss;
}

static int
s_compare_long (const void *a, const void *b)
{
    long x = *(const long *) a, y = *(const long *) b;
    return x < y? -1: x > y;
}

void
bench_figure_k (void)
{
    size_t rounds = bench_set.rss_rounds < 1? 1: bench_set.rss_rounds > 16? 16: bench_set.rss_rounds;
    bench_say ("\n== (k) qanatd RSS: HTTP server on and idle vs --http-endpoint none ==\n");
    bench_say ("   VmRSS of a fresh qanatd (empty store, no agents) 1 s after start; %zu starts of each,\n"
               "   alternating, medians; also with HTTP after 16 connections of GET requests (a 404:\n"
               "   no run) have come and gone\n", rounds);
    long off [16], on [16], used [16];
    for (size_t r = 0; r < rounds; r++) {
        off [r] = s_rss_of_start ("none", NULL);
        on [r] = s_rss_of_start ("127.0.0.1:0", &used [r]);
        if (off [r] < 0 || on [r] < 0) {
            bench_fail ("k RSS", "qanatd did not start");
            return;
        }
        bench_say ("   start %zu: off %.2f MiB, on %.2f MiB, on after requests %.2f MiB\n", r + 1,
                   off [r] / 1024.0, on [r] / 1024.0, used [r] / 1024.0);
    }
    qsort (off, rounds, sizeof (long), s_compare_long);
    qsort (on, rounds, sizeof (long), s_compare_long);
    qsort (used, rounds, sizeof (long), s_compare_long);
    double diff = (on [rounds / 2] - off [rounds / 2]) / 1024.0;
    double diff_used = (used [rounds / 2] - off [rounds / 2]) / 1024.0;
    bench_say ("   median: off %.2f MiB, on and idle %.2f MiB (+%.2f MiB), after requests %.2f MiB (+%.2f MiB)\n",
               off [rounds / 2] / 1024.0, on [rounds / 2] / 1024.0, diff, used [rounds / 2] / 1024.0, diff_used);
    bench_figure ("k.rss_off", off [rounds / 2] / 1024.0, "MiB");
    bench_figure ("k.rss_on", on [rounds / 2] / 1024.0, "MiB");
    s_figure_row ("k.rss_diff", "k RSS, HTTP on and idle minus off", diff, "MiB", "%+.2f MiB", "<= 2 MiB",
                  diff <= 2? "yes": "NO");
    s_figure_row ("k.rss_diff_used", "k   the same after serving requests", diff_used, "MiB", "%+.2f MiB", "", "-");
}
