/*  qn_bench_real - the figures with real agents and processes: (g) is
    (a) with the local backend running every task, (h) is (c) with a
    real agent and real tasks printing as fast as they can.

    One of the files of the qn_bench class.
*/
#include "qn_bench.h"

//  ---------------------------------------------------------------------
//  Figures with real agents

//  The real agent against proc: its idle RSS in KiB, or -1.
long
bench_real_agent_rss (proc_t *proc, qn_client_t *client, char **exe_p)
{
    char *program = zsys_sprintf ("%s/agent/qanat-agent", bench_set.builddir);
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
    pid_t pid = bench_spawn (argv, log_path);
    long rss = -1;
    double deadline = bench_now () + 20;
    bool connected = false;
    while (pid > 0 && !connected && bench_now () < deadline && !zsys_interrupted) {
        connected = bench_agent_connected (client, "bench-agent");
        if (!connected)
            zclock_sleep (50);
    }
    if (connected) {
        zclock_sleep (2000);    //  idle: registered, heartbeating, nothing to run
        pid_t real = bench_real_pid (pid, "qanat-agent");
        *exe_p = bench_proc_exe (real);
        rss = bench_proc_status_kb (real, "VmRSS");
        //  What the RSS is made of: most of it is shared library pages
        //  that every process using those libraries shares
        long anon = bench_proc_status_kb (real, "RssAnon");
        long file = bench_proc_status_kb (real, "RssFile");
        //  Pss: the process's fair share of the pages it shares
        long pss = bench_proc_field_kb (real, "smaps_rollup", "Pss");
        if (anon >= 0 && file >= 0)
            bench_say ("   of which anonymous %.2f MiB, file-backed (libraries) %.2f MiB; "
                       "PSS %.2f MiB\n", anon / 1024.0, file / 1024.0, pss / 1024.0);
    }
    bench_stop_pid (pid, 10);
    free (program);
    free (data_dir);
    free (log_path);
    return rss;
}

//  (a) again, with real processes: real agents, the local backend, a
//  fork and exec of `true` per task.
void
bench_figure_g (void)
{
    size_t agents = bench_set.smoke? 2: 8;
    long cpus = sysconf (_SC_NPROCESSORS_ONLN);
    size_t slots = (size_t) (cpus > 0? cpus: 1) * 2;
    size_t tasks = bench_set.real_tasks;
    bench_say ("\n== (a) dispatch throughput with real processes (local backend) ==\n");
    bench_say ("   %zu tasks `true` as runs of up to %d, %zu real qanat-agent processes x %zu slots;\n"
               "   durable commits on both sides (coordinator store, agent spools); from the first\n"
               "   StartRun until every run ended\n", tasks, RUN_TASKS_MAX, agents, slots);
    proc_t *proc = bench_qanatd_start (true);
    if (!proc) {
        bench_fail ("g real processes", "qanatd did not start");
        return;
    }
    qn_client_t *client = bench_client_new (proc);
    char *program = zsys_sprintf ("%s/agent/qanat-agent", bench_set.builddir);
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
        pids [i] = bench_spawn (argv, log_path);
        double deadline = bench_now () + 20;
        bool up = false;
        while (pids [i] > 0 && !up && bench_now () < deadline && !zsys_interrupted) {
            up = bench_agent_connected (client, name);
            if (!up)
                zclock_sleep (50);
        }
        connected = up;
        free (name);
        free (data_dir);
        free (log_path);
    }
    if (!connected)
        bench_fail ("g real processes", "the real agents did not register");
    else {
        double cpu = 0, commits = 0;
        double rate = bench_dispatch_measure (proc, client, "bench-g", tasks, "bench", &cpu, &commits);
        if (rate < 0)
            bench_fail ("g real processes", "the runs did not finish");
        else {
            bench_say ("   %.0f tasks/s; qanatd used %.0f%% of one core\n", rate, cpu * 100);
            bench_say ("   ratio to target (>= 2,000 tasks/s): %.2f\n", rate / 2000);
            bench_figure ("g.dispatch_real", rate, "tasks/s");
            char value [48];
            snprintf (value, sizeof value, "%.0f tasks/s", rate);
            bench_row ("a dispatch throughput (real processes)", value, ">= 2000 tasks/s",
                       rate >= 2000? "yes": "NO");
        }
    }
    for (size_t i = 0; i < agents; i++)
        if (pids [i] > 0)
            bench_stop_pid (pids [i], 10);
    free (pids);
    free (program);
    qn_client_destroy (&client);
    bench_proc_destroy (&proc);
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
    double deadline = bench_now () + 300;
    while (more && bench_now () < deadline) {
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
            bench_say ("   read logs: %s\n", error? error: "unexpected reply");
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
void
bench_figure_h (void)
{
    size_t tasks = 8;
    size_t lines_per_task = bench_set.log_mb * 1000000 / LINE_BYTES / tasks;
    if (lines_per_task == 0)
        lines_per_task = 1;
    double total_mb = (double) lines_per_task * tasks * LINE_BYTES / 1e6;
    bench_say ("\n== (c) log ingest with real processes (local backend, real agent) ==\n");
    bench_say ("   %zu tasks on one real qanat-agent (%zu slots), each `yes LINE | head -n %zu`\n"
               "   (%d-byte lines with their newline), %.0f MB in all; durable commits on both sides;\n"
               "   from StartRun until the run ended (every line stored: the ends come after the lines)\n",
               tasks, tasks, lines_per_task, LINE_BYTES, total_mb);
    proc_t *proc = bench_qanatd_start (true);
    if (!proc) {
        bench_fail ("h real log ingest", "qanatd did not start");
        return;
    }
    qn_client_t *client = bench_client_new (proc);
    char *program = zsys_sprintf ("%s/agent/qanat-agent", bench_set.builddir);
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
    pid_t pid = client? bench_spawn (argv, log_path): -1;
    bool up = false;
    double deadline = bench_now () + 20;
    while (pid > 0 && !up && bench_now () < deadline && !zsys_interrupted) {
        up = bench_agent_connected (client, "real-log");
        if (!up)
            zclock_sleep (50);
    }
    if (!up) {
        bench_fail ("h real log ingest", "the real agent did not register");
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

    pid_t agent_real = bench_real_pid (pid, "qanat-agent");
    Qanat__Stats before, after;
    memset (&before, 0, sizeof before);
    memset (&after, 0, sizeof after);
    bench_get_stats (client, &before);
    long long cpu_q0 = bench_proc_cpu_ticks (proc->real);
    long long cpu_a0 = bench_proc_cpu_ticks (agent_real);
    double started = bench_now ();
    uint64_t run_id = 0;
    int rc = bench_start_run (client, yaml, &run_id);
    free (yaml);
    size_t ended = 0, failed = 0;
    deadline = bench_now () + 120 + total_mb;
    while (rc == 0 && !zsys_interrupted && bench_now () < deadline) {
        if (bench_list_runs (client, "bench-h", 1, &ended, &failed) < 0)
            rc = -1;
        if (ended >= 1)
            break;
        zclock_sleep (10);
    }
    double elapsed = bench_now () - started;
    long long cpu_q1 = bench_proc_cpu_ticks (proc->real);
    long long cpu_a1 = bench_proc_cpu_ticks (agent_real);
    bench_get_stats (client, &after);
    if (rc || ended < 1) {
        bench_fail ("h real log ingest", "the run did not finish");
        goto done;
    }
    if (failed)
        bench_say ("   warning: the run did not succeed\n");
    double ticks = (double) sysconf (_SC_CLK_TCK);
    double mbps = total_mb / elapsed;
    double lines_s = (double) lines_per_task * tasks / elapsed;
    double events = (double) (after.events_committed - before.events_committed);
    bench_say ("   %.1f MB/s, %.0f lines/s (%.2f s); qanatd %.0f%% of a core, agent %.0f%% of a core;\n"
               "   %.0f events committed (%.1f lines per event)\n",
               mbps, lines_s, elapsed, (cpu_q1 - cpu_q0) / ticks / elapsed * 100,
               (cpu_a1 - cpu_a0) / ticks / elapsed * 100, events,
               events > 0? lines_per_task * tasks / events: 0);
    long long chunks = 0;
    long long stored = s_count_stored_lines (client, run_id, &chunks);
    bench_say ("   read back: %lld lines in %lld chunks (expected %zu lines)%s\n", stored, chunks,
               lines_per_task * tasks, stored == (long long) (lines_per_task * tasks)? "": "  MISMATCH");
    bench_say ("   ratio to target (>= 100 MB/s): %.2f\n", mbps / 100);
    bench_figure ("h.log_ingest_real", mbps, "MB/s");
    bench_figure ("h.log_lines_real", lines_s, "lines/s");
    char value [48];
    snprintf (value, sizeof value, "%.1f MB/s", mbps);
    bench_row ("c log ingest (real agent, 8 real tasks)", value, ">= 100 MB/s", mbps >= 100? "yes": "NO");
    snprintf (value, sizeof value, "%.0f lines/s", lines_s);
    bench_row ("c log ingest, real, lines", value, "", "-");
    if (stored != (long long) (lines_per_task * tasks))
        bench_fail ("h real log ingest", "stored lines differ from lines printed");
done:
    if (pid > 0)
        bench_stop_pid (pid, 10);
    free (program);
    free (data_dir);
    free (log_path);
    qn_client_destroy (&client);
    bench_proc_destroy (&proc);
}
