/*  qanat - the command-line client.

    Every command talks to a coordinator's client socket through
    libqanat's qn_client, with a deadline on every call, so a coordinator
    that cannot be reached is a clear error within seconds, never a hang.
    Every query takes --json for scripts.

    Exit codes: 0 done (a followed run succeeded, with or without
    warnings); 1 a followed run failed or was canceled; 2 bad usage or an
    invalid workflow; 3 the coordinator could not be reached or refused;
    130 interrupted (Ctrl-C), which stops the client, never a run.
*/
#include "qanat.h"
#include "qn_blobstore.h"
#include "qn_s3.h"
#include "qn_tree.h"
#include "config.h"
#include <ftw.h>
#include <getopt.h>
#include <fcntl.h>
#include <time.h>

#define EXIT_RUN_FAILED   1
#define EXIT_USAGE        2
#define EXIT_COORDINATOR  3
#define EXIT_INTERRUPTED  130       //  128 + SIGINT, as a shell reports it

typedef struct {
    const char *endpoint;
    const char *key;                //  client key file, "none", or NULL for the default
    const char *ttl;                //  token create
    uint32_t uses;
    const char *labels;
    const char *role;               //  user add
    const char *allow;              //  secret set: who may use it
    const char *agent_labels;       //  secret set: agents it may go to
    const char *output;
    int timeout_ms;
    bool json;
    bool follow;
    bool no_cache;
    uint32_t attempt;
    uint32_t limit;
    zlistx_t *params;       //  "k=v" strings
} options_t;

//  ---------------------------------------------------------------------
//  Output helpers

static void
s_json_string (FILE *out, const char *text, size_t len)
{
    fputc ('"', out);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char) text [i];
        if (c == '"' || c == '\\')
            fprintf (out, "\\%c", c);
        else
        if (c == '\n')
            fputs ("\\n", out);
        else
        if (c == '\t')
            fputs ("\\t", out);
        else
        if (c == '\r')
            fputs ("\\r", out);
        else
        if (c < 0x20 || c == 0x7f)
            fprintf (out, "\\u%04x", c);
        else
            fputc (c, out);
    }
    fputc ('"', out);
}

static void
s_json_str (FILE *out, const char *text)
{
    s_json_string (out, text? text: "", text? strlen (text): 0);
}

static void
s_free_label (Qanat__Label *label)
{
    free (label->key);
    free (label->value);
    free (label);
}

static void
s_json_labels (FILE *out, Qanat__Label **labels, size_t count)
{
    fputc ('{', out);
    for (size_t i = 0; i < count; i++) {
        if (i)
            fputc (',', out);
        s_json_str (out, labels [i]->key);
        fputc (':', out);
        s_json_str (out, labels [i]->value);
    }
    fputc ('}', out);
}

static char *
s_time_text (int64_t us)
{
    static char text [32];
    if (us <= 0)
        return strcpy (text, "-");
    time_t seconds = (time_t) (us / 1000000);
    struct tm tm;
    localtime_r (&seconds, &tm);
    strftime (text, sizeof text, "%Y-%m-%d %H:%M:%S", &tm);
    return text;
}

static char *
s_duration_text (int64_t from_us, int64_t to_us)
{
    static char text [32];
    if (from_us <= 0)
        return strcpy (text, "-");
    if (to_us <= 0)
        to_us = qn_now_us ();
    double seconds = (double) (to_us - from_us) / 1e6;
    if (seconds < 60)
        snprintf (text, sizeof text, "%.1fs", seconds);
    else
    if (seconds < 3600)
        snprintf (text, sizeof text, "%dm%02ds", (int) seconds / 60, (int) seconds % 60);
    else
        snprintf (text, sizeof text, "%dh%02dm", (int) seconds / 3600, ((int) seconds % 3600) / 60);
    return text;
}

//  ---------------------------------------------------------------------
//  Talking to the coordinator

//  The run `--follow` is following, so that Ctrl-C can say where it went
static uint64_t s_followed_run;

//  Ctrl-C (czmq's handler sets zsys_interrupted) stops this client; the
//  run it followed goes on, and the user is told how to find it again.
static void
s_exit_interrupted (void)
{
    fflush (stdout);
    if (s_followed_run)
        fprintf (stderr, "\nqanat: interrupted: run %llu continues; follow it again with: "
                 "qanat logs %llu --follow, or see: qanat status %llu\n",
                 (unsigned long long) s_followed_run, (unsigned long long) s_followed_run,
                 (unsigned long long) s_followed_run);
    else
        fprintf (stderr, "\nqanat: interrupted\n");
    exit (EXIT_INTERRUPTED);
}

static qn_client_t *
s_connect (options_t *options)
{
    char *error = NULL;
    qn_client_t *client = qn_client_new_keyed (options->endpoint, options->key,
                                               options->timeout_ms, &error);
    if (!client) {
        fprintf (stderr, "qanat: %s\n", error? error: "cannot connect");
        free (error);
        exit (EXIT_COORDINATOR);
    }
    return client;
}

//  Calls the coordinator; on failure prints the error and exits.
static Qanat__Envelope *
s_call (qn_client_t *client, Qanat__Request *request)
{
    char *error = NULL;
    Qanat__Envelope *reply = qn_client_call (client, request, &error);
    if (!reply && zsys_interrupted)
        s_exit_interrupted ();
    if (!reply) {
        fprintf (stderr, "qanat: %s\n", error? error: "request failed");
        free (error);
        exit (EXIT_COORDINATOR);
    }
    return reply;
}

static Qanat__Envelope *
s_get_run (qn_client_t *client, uint64_t run_id)
{
    Qanat__GetRun get = QANAT__GET_RUN__INIT;
    get.run_id = run_id;
    Qanat__Request request = QANAT__REQUEST__INIT;
    request.body_case = QANAT__REQUEST__BODY_GET_RUN;
    request.get_run = &get;
    return s_call (client, &request);
}

static uint64_t
s_parse_run_id (const char *text)
{
    char *end = NULL;
    unsigned long long value = strtoull (text, &end, 10);
    if (!*text || *end || value == 0) {
        fprintf (stderr, "qanat: '%s' is not a run id (runs are numbered 1, 2, ...)\n", text);
        exit (EXIT_USAGE);
    }
    return (uint64_t) value;
}

static int
s_run_exit_code (Qanat__RunStatus status)
{
    return status == QANAT__RUN_STATUS__RUN_SUCCEEDED
        || status == QANAT__RUN_STATUS__RUN_SUCCEEDED_WITH_WARNINGS? 0: EXIT_RUN_FAILED;
}

//  ---------------------------------------------------------------------
//  Printing runs

//  An attempt that took an earlier run's outputs (cache: true): it ran
//  nowhere, and its task's cached_from names that run.
static bool
s_attempt_cached (const Qanat__AttemptInfo *attempt)
{
    return attempt->end && streq (attempt->end, "cached");
}

static void
s_print_run_json (FILE *out, Qanat__RunInfo *run)
{
    fprintf (out, "{\"run_id\":%llu,\"workflow\":", (unsigned long long) run->run_id);
    s_json_str (out, run->workflow);
    fprintf (out, ",\"version\":%u,\"status\":", run->version);
    s_json_str (out, qn_run_status_name (run->status));
    fprintf (out, ",\"created_us\":%lld,\"finished_us\":%lld,\"params\":{",
             (long long) run->created_us, (long long) run->finished_us);
    for (size_t p = 0; p < run->n_params; p++) {
        if (p)
            fputc (',', out);
        s_json_str (out, run->params [p]->name);
        fputc (':', out);
        s_json_str (out, run->params [p]->value);
    }
    fputs ("},\"tasks\":[", out);
    for (size_t t = 0; t < run->n_tasks; t++) {
        Qanat__TaskInfo *task = run->tasks [t];
        if (t)
            fputc (',', out);
        fputs ("{\"name\":", out);
        s_json_str (out, task->name);
        fputs (",\"status\":", out);
        s_json_str (out, qn_task_status_name (task->status));
        fputs (",\"needs\":[", out);
        for (size_t n = 0; n < task->n_needs; n++) {
            if (n)
                fputc (',', out);
            s_json_str (out, task->needs [n]);
        }
        fputs ("],\"on\":", out);
        s_json_labels (out, task->selector, task->n_selector);
        fputs (",\"waiting_reason\":", out);
        s_json_str (out, task->waiting_reason);
        fputs (",\"attempts\":[", out);
        for (size_t a = 0; a < task->n_attempts; a++) {
            Qanat__AttemptInfo *attempt = task->attempts [a];
            if (a)
                fputc (',', out);
            fprintf (out, "{\"attempt\":%u,\"agent\":", attempt->attempt);
            s_json_str (out, attempt->agent);
            fprintf (out, ",\"started_us\":%lld,\"finished_us\":%lld,\"finished\":%s,"
                     "\"exit_code\":%d,\"signal\":%d,\"reason\":",
                     (long long) attempt->started_us, (long long) attempt->finished_us,
                     attempt->finished? "true": "false", attempt->exit_code, attempt->signal);
            s_json_str (out, attempt->reason);
            fputs (",\"end\":", out);
            s_json_str (out, attempt->end);
            fprintf (out, ",\"pid\":%lld,\"last_seq\":%llu", (long long) attempt->pid,
                     (unsigned long long) attempt->last_seq);
            fprintf (out, ",\"backend\":");
            s_json_str (out, attempt->backend);
            fprintf (out, ",\"engine_job_id\":");
            s_json_str (out, attempt->engine_job_id);
            fprintf (out, ",\"environment\":");
            s_json_str (out, attempt->environment);
            fprintf (out, ",\"host\":");
            s_json_str (out, attempt->host);
            fprintf (out, ",\"cached_from\":%llu", (unsigned long long)
                     (s_attempt_cached (attempt)? task->cached_from: 0));
            fputs (",\"stack_trace\":", out);
            s_json_str (out, attempt->stack_trace);
            fputc ('}', out);
        }
        fputs ("],\"checks\":[", out);
        for (size_t c = 0; c < task->n_checks; c++) {
            Qanat__CheckResult *check = task->checks [c];
            if (c)
                fputc (',', out);
            fputs ("{\"expr\":", out);
            s_json_str (out, check->expr);
            fputs (",\"severity\":", out);
            s_json_str (out, check->severity);
            fprintf (out, ",\"passed\":%s,\"detail\":", check->passed? "true": "false");
            s_json_str (out, check->detail);
            fputc ('}', out);
        }
        fputs ("]}", out);
    }
    fputs ("]}", out);
}

static void
s_print_stack_trace (const char *trace)
{
    if (!trace || !*trace)
        return;
    printf ("    stack trace:\n");
    const char *line = trace;
    while (*line) {
        const char *end = strchr (line, '\n');
        size_t len = end? (size_t) (end - line): strlen (line);
        printf ("      %.*s\n", (int) len, line);
        line += len + (end? 1: 0);
    }
}

static void
s_print_run (Qanat__RunInfo *run)
{
    printf ("run %llu  %s v%u  %s\n", (unsigned long long) run->run_id, run->workflow,
            run->version, qn_run_status_name (run->status));
    printf ("started %s", s_time_text (run->created_us));
    printf ("  took %s\n", s_duration_text (run->created_us, run->finished_us));
    if (run->n_params) {
        printf ("params:");
        for (size_t p = 0; p < run->n_params; p++)
            printf (" %s=%s", run->params [p]->name, run->params [p]->value);
        printf ("\n");
    }
    if (!run->n_tasks)
        return;
    size_t width = 4;
    for (size_t t = 0; t < run->n_tasks; t++)
        if (strlen (run->tasks [t]->name) > width)
            width = strlen (run->tasks [t]->name);
    printf ("\n%-*s  %-10s %-7s %-16s %-8s %-24s %-8s %s\n", (int) width, "TASK", "STATUS",
            "ATTEMPT", "AGENT", "ENV", "JOB", "TIME", "NOTE");
    for (size_t t = 0; t < run->n_tasks; t++) {
        Qanat__TaskInfo *task = run->tasks [t];
        Qanat__AttemptInfo *attempt = task->n_attempts? task->attempts [task->n_attempts - 1]: NULL;
        const char *note = task->waiting_reason && *task->waiting_reason? task->waiting_reason
                         : attempt && attempt->reason && *attempt->reason? attempt->reason: "";
        char attempt_text [16] = "-";
        if (attempt)
            snprintf (attempt_text, sizeof attempt_text, "%u", attempt->attempt);
        //  Where it ran: the engine and its own id for the attempt
        char job_text [160] = "-";
        if (attempt && attempt->engine_job_id && *attempt->engine_job_id)
            snprintf (job_text, sizeof job_text, "%s %s",
                      attempt->backend && *attempt->backend? attempt->backend: "job",
                      attempt->engine_job_id);
        else
        if (attempt && attempt->pid > 0)
            snprintf (job_text, sizeof job_text, "%s pid %lld",
                      attempt->backend && *attempt->backend? attempt->backend: "local",
                      (long long) attempt->pid);
        printf ("%-*s  %-10s %-7s %-16s %-8s %-24s %-8s %s\n", (int) width, task->name,
                qn_task_status_name (task->status), attempt_text,
                attempt && attempt->agent && *attempt->agent? attempt->agent: "-",
                attempt && attempt->environment && *attempt->environment?
                    attempt->environment: "-",
                job_text,
                attempt? s_duration_text (attempt->started_us, attempt->finished_us): "-", note);
        for (size_t c = 0; c < task->n_checks; c++) {
            Qanat__CheckResult *check = task->checks [c];
            printf ("    check %s %s (%s): %s\n", check->passed? "passed": "FAILED", check->expr,
                    check->severity, check->detail);
        }
        if (task->status == QANAT__TASK_STATUS__TASK_FAILED && attempt)
            s_print_stack_trace (attempt->stack_trace);
        if (task->n_attempts > 1)
            for (size_t a = 0; a + 1 < task->n_attempts; a++)
                printf ("    earlier attempt %u on %s: %s\n", task->attempts [a]->attempt,
                        task->attempts [a]->agent, task->attempts [a]->reason);
    }
}

//  ---------------------------------------------------------------------
//  Logs

static void
s_print_log_line (Qanat__LogLine *line, bool prefix, bool json, bool *at_line_start)
{
    Qanat__LogChunk *chunk = line->chunk;
    if (!chunk)
        return;
    if (json) {
        //  A chunk holds one or more whole lines (or a piece of a long
        //  one): one JSON object per line.
        const char *data = (const char *) chunk->data.data;
        size_t left = chunk->data.len;
        do {
            const char *newline = left? (const char *) memchr (data, '\n', left): NULL;
            size_t len = newline? (size_t) (newline - data): left;
            fputs ("{\"task\":", stdout);
            s_json_str (stdout, line->task);
            fprintf (stdout, ",\"attempt\":%u,\"seq\":%llu,\"stream\":\"%s\",\"time_us\":%lld,"
                     "\"partial\":%s,\"data\":", line->attempt, (unsigned long long) line->seq,
                     chunk->stream == QANAT__STREAM__STREAM_STDERR? "stderr"
                     : chunk->stream == QANAT__STREAM__STREAM_SYSTEM? "system": "stdout",
                     (long long) chunk->time_us, chunk->partial && !newline? "true": "false");
            s_json_string (stdout, data, len);
            fputs ("}\n", stdout);
            data += len + (newline? 1: 0);
            left -= len + (newline? 1: 0);
        } while (left);
        return;
    }
    //  Each line of the chunk gets the prefix
    const char *tag = chunk->stream == QANAT__STREAM__STREAM_STDERR? "!"
                    : chunk->stream == QANAT__STREAM__STREAM_SYSTEM? "#": " ";
    const char *data = (const char *) chunk->data.data;
    size_t left = chunk->data.len;
    do {
        const char *newline = left? (const char *) memchr (data, '\n', left): NULL;
        size_t len = newline? (size_t) (newline - data): left;
        if (*at_line_start && prefix) {
            if (line->attempt > 1)
                printf ("%s.%u%s| ", line->task, line->attempt, tag);
            else
                printf ("%s%s| ", line->task, tag);
        }
        fwrite (data, 1, len, stdout);
        bool ends = newline || !chunk->partial;
        if (ends)
            fputc ('\n', stdout);
        *at_line_start = ends;
        data += len + (newline? 1: 0);
        left -= len + (newline? 1: 0);
    } while (left);
}

//  Reads one page of logs; returns true when the run has ended and every
//  line was read.
static bool
s_logs_page (qn_client_t *client, uint64_t run_id, const char *task, uint32_t attempt,
             ProtobufCBinaryData *cursor, bool prefix, bool json, bool *at_line_start,
             size_t *lines_read)
{
    Qanat__ReadLogs read = QANAT__READ_LOGS__INIT;
    read.run_id = run_id;
    read.task = (char *) (task? task: "");
    read.attempt = attempt;
    read.cursor = *cursor;
    read.limit = 1000;
    Qanat__Request request = QANAT__REQUEST__INIT;
    request.body_case = QANAT__REQUEST__BODY_READ_LOGS;
    request.read_logs = &read;
    Qanat__Envelope *reply = s_call (client, &request);
    Qanat__LogPage *page = reply->reply->logs;
    for (size_t i = 0; i < page->n_lines; i++)
        s_print_log_line (page->lines [i], prefix, json, at_line_start);
    fflush (stdout);
    if (lines_read)
        *lines_read = page->n_lines;
    free (cursor->data);
    cursor->data = (uint8_t *) malloc (page->cursor.len? page->cursor.len: 1);
    memcpy (cursor->data, page->cursor.data, page->cursor.len);
    cursor->len = page->cursor.len;
    bool finished = page->run_finished;
    qn_msg_free (&reply);
    return finished;
}

static int
s_cmd_logs (options_t *options, int argc, char **argv)
{
    if (argc < 1 || argc > 2) {
        fprintf (stderr, "usage: qanat logs RUN [TASK] [--follow] [--attempt N] [--json]\n");
        return EXIT_USAGE;
    }
    uint64_t run_id = s_parse_run_id (argv [0]);
    const char *task = argc > 1? argv [1]: NULL;
    qn_client_t *client = s_connect (options);
    ProtobufCBinaryData cursor = {0, NULL};
    bool at_line_start = true;
    if (options->follow)
        s_followed_run = run_id;
    while (true) {
        if (zsys_interrupted)
            s_exit_interrupted ();
        size_t count = 0;
        bool finished = s_logs_page (client, run_id, task, options->attempt, &cursor, !task,
                                     options->json, &at_line_start, &count);
        if (finished || (!options->follow && count == 0))
            break;
        if (count == 0)
            zclock_sleep (200);
    }
    free (cursor.data);
    qn_client_destroy (&client);
    return 0;
}

//  ---------------------------------------------------------------------
//  Commands

static char *
s_read_file (const char *path, size_t *size_p)
{
    FILE *file = fopen (path, "rb");
    if (!file)
        return NULL;
    size_t capacity = 4096, size = 0;
    char *data = (char *) malloc (capacity);
    size_t got;
    while ((got = fread (data + size, 1, capacity - size, file)) > 0) {
        size += got;
        if (size == capacity) {
            capacity *= 2;
            data = (char *) realloc (data, capacity);
        }
    }
    fclose (file);
    *size_p = size;
    return data;
}

static int
s_cmd_validate (options_t *options, int argc, char **argv)
{
    if (argc != 1) {
        fprintf (stderr, "usage: qanat validate FILE\n");
        return EXIT_USAGE;
    }
    char *error = NULL;
    qn_workflow_t *wf = qn_workflow_load (argv [0], &error);
    if (!wf) {
        fprintf (stderr, "%s%s", error? error: "invalid workflow",
                 error && error [strlen (error) - 1] == '\n'? "": "\n");
        free (error);
        return EXIT_USAGE;
    }
    if (options->json)
        printf ("{\"valid\":true,\"name\":\"%s\",\"tasks\":%zu}\n", qn_workflow_name (wf),
                qn_workflow_task_count (wf));
    else
        printf ("%s: ok, workflow '%s' with %zu tasks\n", argv [0], qn_workflow_name (wf),
                qn_workflow_task_count (wf));
    qn_workflow_destroy (&wf);
    return 0;
}

static void
s_print_metric_summary (qn_client_t *client, uint64_t run_id)
{
    Qanat__ReadMetrics read = QANAT__READ_METRICS__INIT;
    read.run_id = run_id;
    Qanat__Request request = QANAT__REQUEST__INIT;
    request.body_case = QANAT__REQUEST__BODY_READ_METRICS;
    request.read_metrics = &read;
    Qanat__Envelope *reply = s_call (client, &request);
    Qanat__MetricReport *report = reply->reply->metrics;
    if (report->n_series) {
        printf ("\nmetrics (last value, points):\n");
        for (size_t i = 0; i < report->n_series; i++) {
            Qanat__MetricSeries *series = report->series [i];
            if (series->n_points)
                printf ("  %-12s %-16s %-12g (%zu points)\n", series->task, series->name,
                        series->points [series->n_points - 1]->value, series->n_points);
        }
    }
    qn_msg_free (&reply);
}

//  Following a run merges three kinds of lines in time order: a task's
//  attempt starting, its log lines, and the attempt ending.  Each loop
//  turn takes a snapshot of the run, then reads the logs: every line of an
//  attempt that had ended in the snapshot is stored by then (its end was
//  committed after its last line), so an end never comes before its logs.
typedef enum { ITEM_START, ITEM_LOG, ITEM_END, ITEM_NOTE } item_kind_t;

typedef struct {
    int64_t time;
    item_kind_t kind;
    size_t order;                   //  keeps the sort stable
    Qanat__TaskInfo *task;
    Qanat__AttemptInfo *attempt;
    Qanat__LogLine *line;
} follow_item_t;

typedef struct {
    char *name;
    uint32_t started;               //  highest attempt announced as started
    uint32_t ended;                 //  highest attempt announced as ended
    bool closed;                    //  final status printed
    char *note;                     //  last waiting reason printed
} follow_task_t;

static int
s_item_compare (const void *a, const void *b)
{
    const follow_item_t *x = (const follow_item_t *) a, *y = (const follow_item_t *) b;
    if (x->time != y->time)
        return x->time < y->time? -1: 1;
    if (x->kind != y->kind)
        return x->kind < y->kind? -1: 1;
    return x->order < y->order? -1: x->order > y->order;
}

static follow_task_t *
s_follow_task (follow_task_t *tasks, size_t count, const char *name)
{
    for (size_t t = 0; t < count; t++)
        if (streq (tasks [t].name, name))
            return &tasks [t];
    return NULL;
}

static bool
s_task_ended (Qanat__TaskStatus status)
{
    return status == QANAT__TASK_STATUS__TASK_SUCCEEDED || status == QANAT__TASK_STATUS__TASK_FAILED
        || status == QANAT__TASK_STATUS__TASK_SKIPPED || status == QANAT__TASK_STATUS__TASK_CANCELED;
}

//  Adds the start, end and note items of a snapshot not yet printed.
//  with_ends is false when the logs read after the snapshot may be
//  incomplete (a full page), so ends wait for the next turn.
static void
s_follow_collect (Qanat__RunInfo *run, follow_task_t *tracked, size_t tracked_count,
                  follow_item_t *items, size_t *count, bool with_ends)
{
    for (size_t t = 0; t < run->n_tasks; t++) {
        Qanat__TaskInfo *task = run->tasks [t];
        follow_task_t *state = s_follow_task (tracked, tracked_count, task->name);
        if (!state || state->closed)
            continue;
        for (size_t a = 0; a < task->n_attempts; a++) {
            Qanat__AttemptInfo *attempt = task->attempts [a];
            if (attempt->attempt > state->started)
                items [(*count)++] = (follow_item_t) {attempt->started_us, ITEM_START, *count, task, attempt, NULL};
            bool last = a + 1 == task->n_attempts;
            bool over = last? s_task_ended (task->status): attempt->finished;
            if (with_ends && over && attempt->attempt > state->ended)
                items [(*count)++] = (follow_item_t) {attempt->finished_us, ITEM_END, *count, task, attempt, NULL};
        }
        bool note = task->n_attempts == 0 && task->waiting_reason && *task->waiting_reason
                 && (!state->note || !streq (state->note, task->waiting_reason));
        if (with_ends && note)
            items [(*count)++] = (follow_item_t) {INT64_MAX, ITEM_NOTE, *count, task, NULL, NULL};
    }
}

static void
s_follow_print (follow_item_t *item, follow_task_t *state, bool *at_line_start)
{
    Qanat__TaskInfo *task = item->task;
    Qanat__AttemptInfo *attempt = item->attempt;
    if (item->kind != ITEM_LOG && !*at_line_start) {
        putchar ('\n');
        *at_line_start = true;
    }
    switch (item->kind) {
        case ITEM_LOG:
            s_print_log_line (item->line, true, false, at_line_start);
            break;
        case ITEM_START:
            if (attempt->attempt <= state->started)
                break;
            if (s_attempt_cached (attempt))
                printf ("==> %s cached from run %llu\n", task->name,
                        (unsigned long long) task->cached_from);
            else
                printf ("==> %s started on %s (attempt %u)\n", task->name, attempt->agent,
                        attempt->attempt);
            state->started = attempt->attempt;
            break;
        case ITEM_END: {
            if (attempt->attempt <= state->ended)
                break;
            state->ended = attempt->attempt;
            if (s_attempt_cached (attempt)) {
                state->closed = true;     //  its start line said it all
                break;
            }
            bool last = attempt == task->attempts [task->n_attempts - 1];
            const char *outcome = last? qn_task_status_name (task->status): "failed, retrying";
            printf ("==> %s %s in %s", task->name, outcome,
                    s_duration_text (attempt->started_us, attempt->finished_us));
            if (attempt->reason && *attempt->reason)
                printf (": %s", attempt->reason);
            printf ("\n");
            state->closed = last;
            break;
        }
        case ITEM_NOTE:
            const char *reason = task->waiting_reason;
            if (strncmp (reason, "skipped: ", 9) == 0)
                reason += 9;
            printf ("==> %s %s: %s\n", task->name, qn_task_status_name (task->status), reason);
            free (state->note);
            state->note = strdup (task->waiting_reason);
            state->closed = s_task_ended (task->status);
            break;
    }
}

//  Room for every item one snapshot can add.
static size_t
s_follow_slots (Qanat__RunInfo *run)
{
    size_t slots = 1;
    for (size_t t = 0; t < run->n_tasks; t++)
        slots += 2 * run->tasks [t]->n_attempts + 1;
    return slots;
}

static int
s_follow_run (qn_client_t *client, uint64_t run_id)
{
    s_followed_run = run_id;
    Qanat__Envelope *first = s_get_run (client, run_id);
    size_t tracked_count = first->reply->run->n_tasks;
    follow_task_t *tracked = (follow_task_t *) calloc (tracked_count + 1, sizeof (follow_task_t));
    for (size_t t = 0; t < tracked_count; t++)
        tracked [t].name = strdup (first->reply->run->tasks [t]->name);
    qn_msg_free (&first);

    ProtobufCBinaryData cursor = {0, NULL};
    bool at_line_start = true;
    bool finished = false;
    while (!finished) {
        if (zsys_interrupted)
            s_exit_interrupted ();
        Qanat__Envelope *snapshot = s_get_run (client, run_id);
        Qanat__ReadLogs read = QANAT__READ_LOGS__INIT;
        read.run_id = run_id;
        read.cursor = cursor;
        read.limit = 1000;
        Qanat__Request request = QANAT__REQUEST__INIT;
        request.body_case = QANAT__REQUEST__BODY_READ_LOGS;
        request.read_logs = &read;
        Qanat__Envelope *logs = s_call (client, &request);
        Qanat__LogPage *page = logs->reply->logs;
        finished = page->run_finished;
        bool full = page->n_lines >= read.limit;

        //  Lines of attempts the snapshot did not know yet: a second
        //  snapshot, taken after the read, announces them.
        Qanat__Envelope *later = NULL;
        for (size_t i = 0; i < page->n_lines && !later; i++) {
            follow_task_t *state = s_follow_task (tracked, tracked_count, page->lines [i]->task);
            if (state && page->lines [i]->attempt > state->started)
                later = s_get_run (client, run_id);
        }
        size_t capacity = page->n_lines + s_follow_slots (snapshot->reply->run)
                        + (later? s_follow_slots (later->reply->run): 0);
        size_t item_count = 0;
        follow_item_t *items = (follow_item_t *) calloc (capacity, sizeof (follow_item_t));
        s_follow_collect (snapshot->reply->run, tracked, tracked_count, items, &item_count, !full);
        if (later)
            s_follow_collect (later->reply->run, tracked, tracked_count, items, &item_count, false);
        for (size_t i = 0; i < page->n_lines; i++)
            items [item_count++] = (follow_item_t) {page->lines [i]->chunk? page->lines [i]->chunk->time_us: 0,
                                                    ITEM_LOG, item_count, NULL, NULL, page->lines [i]};
        //  Clocks of different machines differ: keep a task's lines between
        //  its start and its end whatever their timestamps say.
        for (size_t i = 0; i < item_count; i++) {
            if (items [i].kind != ITEM_LOG)
                continue;
            for (size_t j = 0; j < item_count; j++) {
                follow_item_t *other = &items [j];
                if (other->kind == ITEM_LOG || other->kind == ITEM_NOTE
                ||  !streq (other->task->name, items [i].line->task)
                ||  other->attempt->attempt != items [i].line->attempt)
                    continue;
                if (other->kind == ITEM_START && other->time > items [i].time)
                    other->time = items [i].time;
                if (other->kind == ITEM_END && other->time < items [i].time)
                    other->time = items [i].time;
            }
        }
        qsort (items, item_count, sizeof (follow_item_t), s_item_compare);
        for (size_t i = 0; i < item_count; i++) {
            const char *name = items [i].kind == ITEM_LOG? items [i].line->task: items [i].task->name;
            follow_task_t *state = s_follow_task (tracked, tracked_count, name);
            if (state)
                s_follow_print (&items [i], state, &at_line_start);
        }
        fflush (stdout);
        free (items);
        free (cursor.data);
        cursor.data = (uint8_t *) malloc (page->cursor.len? page->cursor.len: 1);
        memcpy (cursor.data, page->cursor.data, page->cursor.len);
        cursor.len = page->cursor.len;
        size_t lines = page->n_lines;
        qn_msg_free (&logs);
        qn_msg_free (&snapshot);
        qn_msg_free (&later);
        if (!finished && lines == 0)
            zclock_sleep (150);
    }
    //  The run has ended: whatever the last snapshot missed.
    Qanat__Envelope *last = s_get_run (client, run_id);
    follow_item_t *items = (follow_item_t *) calloc (s_follow_slots (last->reply->run),
                                                     sizeof (follow_item_t));
    size_t item_count = 0;
    s_follow_collect (last->reply->run, tracked, tracked_count, items, &item_count, true);
    qsort (items, item_count, sizeof (follow_item_t), s_item_compare);
    for (size_t i = 0; i < item_count; i++)
        s_follow_print (&items [i], s_follow_task (tracked, tracked_count, items [i].task->name),
                        &at_line_start);
    free (items);
    free (cursor.data);
    printf ("\n");
    s_print_run (last->reply->run);
    Qanat__RunStatus status = last->reply->run->status;
    qn_msg_free (&last);
    for (size_t t = 0; t < tracked_count; t++) {
        free (tracked [t].name);
        free (tracked [t].note);
    }
    free (tracked);
    s_print_metric_summary (client, run_id);
    return s_run_exit_code (status);
}

//  ---------------------------------------------------------------------
//  Feeding files in: qanat put, and --param NAME=@PATH

//  Puts one blob into the coordinator's store, a MiB at a time, from fd
//  (or from memory when fd is -1); each answer says how much the
//  coordinator holds, so a put cut short resumes where it stopped and
//  content it has already is not sent again.
static int
s_put_blob (qn_client_t *client, const char *hash, uint64_t size, int fd, const char *memory)
{
    uint8_t *buffer = (uint8_t *) malloc (1024 * 1024);
    if (!buffer)
        return -1;
    uint64_t offset = 0;
    int stalls = 0;
    int rc = -1;
    while (stalls < 3) {
        size_t len = size - offset > 1024 * 1024? 1024 * 1024: (size_t) (size - offset);
        const uint8_t *data = buffer;
        if (fd == -1)
            data = (const uint8_t *) memory + offset;
        else
        if (len && pread (fd, buffer, len, (off_t) offset) != (ssize_t) len) {
            fprintf (stderr, "qanat: cannot read: %s\n", strerror (errno));
            break;
        }
        Qanat__PutBlob put = QANAT__PUT_BLOB__INIT;
        put.hash = (char *) hash;
        put.offset = offset;
        put.total_size = size;
        put.data.data = (uint8_t *) data;
        put.data.len = len;
        Qanat__Request request = QANAT__REQUEST__INIT;
        request.body_case = QANAT__REQUEST__BODY_PUT_BLOB;
        request.put_blob = &put;
        Qanat__Envelope *reply = s_call (client, &request);
        uint64_t held = reply->reply->blob? reply->reply->blob->offset: 0;
        qn_msg_free (&reply);
        if (held == size) {
            rc = 0;
            break;
        }
        stalls = held == offset + len? 0: stalls + 1;
        offset = held > size? size: held;
    }
    if (rc && stalls >= 3)
        fprintf (stderr, "qanat: the coordinator does not take blob %.12s\n", hash);
    free (buffer);
    return rc;
}

static int
s_put_file (qn_client_t *client, const char *path, const char *hash, uint64_t size)
{
    int fd = open (path, O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
        fprintf (stderr, "qanat: %s: %s\n", path, strerror (errno));
        return -1;
    }
    int rc = s_put_blob (client, hash, size, fd, NULL);
    close (fd);
    return rc;
}

//  Puts a local file or directory (every file, then its manifest) and
//  returns its reference, "file:<sha256>" or "dir:<sha256>" (malloc'd),
//  with its bytes in *bytes_p; NULL after saying why.
static char *
s_put_path (qn_client_t *client, const char *path, uint64_t *bytes_p)
{
    char *full = realpath (path, NULL);
    struct stat st;
    if (!full || stat (full, &st) == -1 || !(S_ISREG (st.st_mode) || S_ISDIR (st.st_mode))) {
        fprintf (stderr, "qanat: %s: %s\n", path, full? "not a file or a directory"
                                                      : strerror (errno));
        free (full);
        return NULL;
    }
    char *slash = strrchr (full, '/');
    const char *leaf = slash + 1;
    *slash = 0;
    const char *parent = *full? full: "/";
    char *error = NULL, *ref = NULL;
    qn_tree_t *tree = *leaf? qn_tree_scan (parent, leaf, &error): NULL;
    if (!tree)
        fprintf (stderr, "qanat: %s: %s\n", path, error? error: "cannot read it");
    for (size_t e = 0; tree && e < qn_tree_count (tree); e++) {
        const qn_tree_entry_t *entry = qn_tree_entry (tree, e);
        char file [8192];
        if (qn_tree_is_dir (tree))
            snprintf (file, sizeof file, "%s/%s/%s", parent, leaf, entry->path);
        else
            snprintf (file, sizeof file, "%s/%s", parent, leaf);
        if (s_put_file (client, file, entry->hash, entry->size) == -1)
            qn_tree_destroy (&tree);
    }
    if (tree && !qn_tree_is_dir (tree))
        ref = zsys_sprintf ("file:%s", qn_tree_entry (tree, 0)->hash);
    else
    if (tree) {
        size_t size = 0;
        char hash [QN_BLOB_HASH_HEX + 1];
        char *manifest = qn_tree_manifest (tree, &size);
        if (manifest && qn_tree_manifest_hash (tree, hash) == 0
        &&  s_put_blob (client, hash, size, -1, manifest) == 0)
            ref = zsys_sprintf ("dir:%s", hash);
        free (manifest);
    }
    if (tree)
        *bytes_p = qn_tree_bytes (tree);
    qn_tree_destroy (&tree);
    free (error);
    free (full);
    return ref;
}

static int
s_cmd_put (options_t *options, int argc, char **argv)
{
    if (argc != 1) {
        fprintf (stderr, "usage: qanat put PATH [--json]\n");
        return EXIT_USAGE;
    }
    qn_client_t *client = s_connect (options);
    uint64_t bytes = 0;
    char *ref = s_put_path (client, argv [0], &bytes);
    qn_client_destroy (&client);
    if (!ref)
        return EXIT_COORDINATOR;
    if (options->json) {
        printf ("{\"ref\":");
        s_json_str (stdout, ref);
        printf (",\"bytes\":%llu}\n", (unsigned long long) bytes);
    }
    else {
        //  The reference alone on stdout, for $(qanat put PATH)
        printf ("%s\n", ref);
        fprintf (stderr, "qanat: stored %s (%llu bytes); give it to a run as --param NAME=%s\n",
                 argv [0], (unsigned long long) bytes, ref);
    }
    zstr_free (&ref);
    return 0;
}

static int
s_cmd_run (options_t *options, int argc, char **argv)
{
    if (argc != 1) {
        fprintf (stderr, "usage: qanat run FILE [--param NAME=VALUE ...] [--follow] [--json]\n");
        return EXIT_USAGE;
    }
    //  Validate here first: the user gets file:line:col errors without a
    //  round trip, and the coordinator checks again anyway.
    char *error = NULL;
    qn_workflow_t *wf = qn_workflow_load (argv [0], &error);
    if (!wf) {
        fprintf (stderr, "%s%s", error? error: "invalid workflow",
                 error && error [strlen (error) - 1] == '\n'? "": "\n");
        free (error);
        return EXIT_USAGE;
    }
    size_t size = 0;
    char *source = s_read_file (argv [0], &size);
    if (!source) {
        fprintf (stderr, "qanat: cannot read %s: %s\n", argv [0], strerror (errno));
        qn_workflow_destroy (&wf);
        return EXIT_USAGE;
    }
    qn_client_t *client = s_connect (options);
    zlistx_t *refs = zlistx_new ();
    zlistx_set_destructor (refs, (zlistx_destructor_fn *) zstr_free);
    Qanat__SubmitWorkflow submit = QANAT__SUBMIT_WORKFLOW__INIT;
    submit.filename = argv [0];
    submit.source.data = (uint8_t *) source;
    submit.source.len = size;
    Qanat__StartRun start = QANAT__START_RUN__INIT;
    start.workflow = &submit;
    start.no_cache = options->no_cache;
    size_t param_count = zlistx_size (options->params);
    start.params = (Qanat__Param **) calloc (param_count + 1, sizeof (Qanat__Param *));
    for (char *pair = (char *) zlistx_first (options->params); pair;
         pair = (char *) zlistx_next (options->params)) {
        char *equals = strchr (pair, '=');
        if (!equals || equals == pair) {
            fprintf (stderr, "qanat: --param wants NAME=VALUE, got '%s'\n", pair);
            return EXIT_USAGE;
        }
        *equals = 0;
        Qanat__Param *param = (Qanat__Param *) malloc (sizeof (Qanat__Param));
        qanat__param__init (param);
        param->name = pair;
        param->value = equals + 1;
        start.params [start.n_params++] = param;
        //  @PATH for an artifact parameter: the file or directory is put
        //  first, and the run gets its reference
        for (size_t p = 0; p < qn_workflow_param_count (wf) && param->value [0] == '@'; p++) {
            const qn_param_t *declared = qn_workflow_param (wf, p);
            if (declared->type != QN_PARAM_ARTIFACT || !streq (declared->name, pair))
                continue;
            uint64_t bytes = 0;
            char *ref = s_put_path (client, param->value + 1, &bytes);
            if (!ref)
                return EXIT_COORDINATOR;
            fprintf (stderr, "qanat: put %s as %s (%llu bytes)\n", param->value + 1, ref,
                     (unsigned long long) bytes);
            zlistx_add_end (refs, ref);
            param->value = ref;
        }
    }
    qn_workflow_destroy (&wf);
    Qanat__Request request = QANAT__REQUEST__INIT;
    request.body_case = QANAT__REQUEST__BODY_START_RUN;
    request.start_run = &start;
    Qanat__Envelope *reply = s_call (client, &request);
    zlistx_destroy (&refs);
    for (size_t p = 0; p < start.n_params; p++)
        free (start.params [p]);
    free (start.params);
    free (source);
    Qanat__RunInfo *run = reply->reply->run;
    uint64_t run_id = run->run_id;
    if (options->json && !options->follow) {
        s_print_run_json (stdout, run);
        printf ("\n");
    }
    else
        printf ("run %llu of %s v%u started\n", (unsigned long long) run_id, run->workflow,
                run->version);
    fflush (stdout);
    qn_msg_free (&reply);
    int rc = 0;
    if (options->follow)
        rc = s_follow_run (client, run_id);
    qn_client_destroy (&client);
    return rc;
}

//  ---------------------------------------------------------------------
//  Artifacts

static const char *
s_kind_name (Qanat__ArtifactKind kind)
{
    return kind == QANAT__ARTIFACT_KIND__ARTIFACT_DIR? "dir"
         : kind == QANAT__ARTIFACT_KIND__ARTIFACT_VALUE? "value": "file";
}

//  The outputs of a task's successful attempt, or NULL
static Qanat__AttemptInfo *
s_output_attempt (Qanat__TaskInfo *task)
{
    if (task->status != QANAT__TASK_STATUS__TASK_SUCCEEDED || task->n_attempts == 0)
        return NULL;
    return task->attempts [task->n_attempts - 1];
}

static int
s_cmd_artifacts (options_t *options, int argc, char **argv)
{
    if (argc != 1) {
        fprintf (stderr, "usage: qanat artifacts RUN [--json]\n");
        return EXIT_USAGE;
    }
    uint64_t run_id = s_parse_run_id (argv [0]);
    qn_client_t *client = s_connect (options);
    Qanat__Envelope *reply = s_get_run (client, run_id);
    Qanat__RunInfo *run = reply->reply->run;
    if (options->json)
        printf ("[");
    else
        printf ("%-16s %-16s %-6s %12s  %s\n", "TASK", "OUTPUT", "KIND", "SIZE", "SHA-256 / VALUE");
    bool first = true;
    for (size_t t = 0; t < run->n_tasks; t++) {
        Qanat__AttemptInfo *attempt = s_output_attempt (run->tasks [t]);
        for (size_t o = 0; attempt && o < attempt->n_outputs; o++) {
            Qanat__OutputRecord *output = attempt->outputs [o];
            if (options->json) {
                printf ("%s{\"task\":", first? "": ",");
                s_json_str (stdout, run->tasks [t]->name);
                printf (",\"output\":");
                s_json_str (stdout, output->name);
                printf (",\"kind\":\"%s\",\"size\":%llu,\"hash\":", s_kind_name (output->kind),
                        (unsigned long long) output->size);
                s_json_str (stdout, output->hash);
                printf (",\"value\":");
                s_json_str (stdout, output->value);
                printf (",\"location\":");
                s_json_str (stdout, output->location);
                printf (",\"cached_from\":%llu}", (unsigned long long) run->tasks [t]->cached_from);
            }
            else
                printf ("%-16s %-16s %-6s %12llu  %s%s%s\n", run->tasks [t]->name, output->name,
                        s_kind_name (output->kind), (unsigned long long) output->size,
                        output->kind == QANAT__ARTIFACT_KIND__ARTIFACT_VALUE? output->value
                                                                            : output->hash,
                        output->location && *output->location? "  ": "",
                        output->location? output->location: "");
            first = false;
        }
    }
    if (options->json)
        printf ("]\n");
    qn_msg_free (&reply);
    qn_client_destroy (&client);
    return 0;
}

//  Fetches one blob from the coordinator into blobs, a MiB at a time,
//  each piece and the whole verified by the blob store.
static int
s_fetch_blob (qn_client_t *client, qn_blobstore_t *blobs, const char *hash)
{
    if (qn_blobstore_has (blobs, hash))
        return 0;
    uint64_t offset = 0, total = 0;
    do {
        Qanat__GetBlob get = QANAT__GET_BLOB__INIT;
        get.hash = (char *) hash;
        get.offset = offset;
        get.size = 1024 * 1024;
        Qanat__Request request = QANAT__REQUEST__INIT;
        request.body_case = QANAT__REQUEST__BODY_GET_BLOB;
        request.get_blob = &get;
        Qanat__Envelope *reply = s_call (client, &request);
        Qanat__BlobData *data = reply->reply->blob;
        total = data->total_size;
        char error [256];
        if (data->offset != offset || (data->data.len == 0 && offset < total)
        ||  qn_blobstore_write (blobs, hash, offset, data->data.data, data->data.len, NULL,
                                error, sizeof error)) {
            fprintf (stderr, "qanat: blob %.12s: bad piece at %llu\n", hash,
                     (unsigned long long) offset);
            qn_msg_free (&reply);
            return -1;
        }
        offset += data->data.len;
        qn_msg_free (&reply);
    } while (offset < total);
    char error [256];
    if (qn_blobstore_finish (blobs, hash, total, error, sizeof error)) {
        fprintf (stderr, "qanat: blob %.12s: %s\n", hash, error);
        return -1;
    }
    return 0;
}

//  Where `qanat get` takes blobs from: the coordinator, or the S3 store
//  the output's record names (its producer's or its workflow's)
typedef struct {
    qn_client_t *client;
    qn_s3_t *s3;                //  NULL = the coordinator
    char *prefix;               //  of the S3 keys: <prefix>blobs/<sha256>
    const char *scratch;        //  a private directory for downloads
} s_blob_source_t;

//  Fetches one blob into blobs from the source, verified by its hash
static int
s_fetch_from (s_blob_source_t *source, qn_blobstore_t *blobs, const char *hash)
{
    if (!source->s3)
        return s_fetch_blob (source->client, blobs, hash);
    if (qn_blobstore_has (blobs, hash))
        return 0;
    char key [1200], path [4200], error [1400] = "", got [QN_BLOB_HASH_HEX + 1];
    qn_s3_blob_key (source->prefix, hash, key, sizeof key);
    snprintf (path, sizeof path, "%s/download", source->scratch);
    uint64_t size = 0;
    int rc = qn_s3_get_file (source->s3, key, path, error, sizeof error);
    if (rc == 0 && qn_blobstore_put_file (blobs, path, got, &size, error, sizeof error) == 0
    &&  strcmp (got, hash) != 0) {
        snprintf (error, sizeof error, "s3 object %s does not match its SHA-256", key);
        rc = -1;
    }
    unlink (path);
    if (rc == -1 || *error) {
        fprintf (stderr, "qanat: %s\n", *error? error: "cannot fetch from S3");
        return -1;
    }
    return 0;
}

//  Opens the S3 store of an output with a location: the store its record
//  names, else the bucket and prefix of the location itself, with
//  endpoint and region from the usual AWS places.  -1 with a message.
static int
s_open_s3_source (s_blob_source_t *source, const Qanat__OutputRecord *output)
{
    const Qanat__ArtifactStore *store = output->store && output->store->bucket
                                     && *output->store->bucket? output->store: NULL;
    const char *bucket = output->location + 5;
    const char *slash = strchr (bucket, '/');
    const char *blobs = slash? strstr (slash, "blobs/"): NULL;
    if (!slash || !blobs) {
        fprintf (stderr, "qanat: cannot read the location %s\n", output->location);
        return -1;
    }
    char *bucket_name = strndup (bucket, (size_t) (slash - bucket));
    source->prefix = store? strdup (store->prefix? store->prefix: "")
                          : strndup (slash + 1, (size_t) (blobs - slash - 1));
    qn_s3_config_t config;
    memset (&config, 0, sizeof config);
    config.bucket = store? store->bucket: bucket_name;
    config.endpoint = store && store->endpoint && *store->endpoint? store->endpoint: NULL;
    config.region = store && store->region && *store->region? store->region: NULL;
    config.path_style = store? store->path_style: false;
    char *error = NULL;
    source->s3 = bucket_name && source->prefix? qn_s3_new (&config, &error): NULL;
    if (!source->s3)
        fprintf (stderr, "qanat: s3: %s\n", error? error: "out of memory");
    free (error);
    free (bucket_name);
    return source->s3? 0: -1;
}

static int
s_remove_entry (const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void) st; (void) flag; (void) ftw;
    return remove (path);
}

//  What `qanat get --json` got: the value, or the file or directory's
//  hash; and the path and bytes written, if it wrote any.
static void
s_print_output_json (FILE *out, const char *task, const Qanat__OutputRecord *output,
                     const char *path, uint64_t bytes)
{
    fputs ("{\"task\":", out);
    s_json_str (out, task);
    fputs (",\"output\":", out);
    s_json_str (out, output->name);
    fprintf (out, ",\"kind\":\"%s\"", s_kind_name (output->kind));
    bool value = output->kind == QANAT__ARTIFACT_KIND__ARTIFACT_VALUE;
    fputs (value? ",\"value\":": ",\"hash\":", out);
    s_json_str (out, value? output->value: output->hash);
    if (path) {
        fputs (",\"path\":", out);
        s_json_str (out, path);
        fprintf (out, ",\"bytes\":%llu", (unsigned long long) bytes);
    }
    fputs ("}\n", out);
}

static int
s_cmd_get (options_t *options, int argc, char **argv)
{
    const char *dot = argc == 2? strchr (argv [1], '.'): NULL;
    if (argc != 2 || !dot || dot == argv [1] || !dot [1]) {
        fprintf (stderr, "usage: qanat get RUN TASK.OUTPUT [-o PATH] [--json]\n");
        return EXIT_USAGE;
    }
    uint64_t run_id = s_parse_run_id (argv [0]);
    char *task_name = strndup (argv [1], (size_t) (dot - argv [1]));
    const char *output_name = dot + 1;
    qn_client_t *client = s_connect (options);
    Qanat__Envelope *reply = s_get_run (client, run_id);
    Qanat__RunInfo *run = reply->reply->run;
    Qanat__OutputRecord *output = NULL;
    bool task_found = false;
    for (size_t t = 0; t < run->n_tasks && !output; t++) {
        if (!streq (run->tasks [t]->name, task_name))
            continue;
        task_found = true;
        Qanat__AttemptInfo *attempt = s_output_attempt (run->tasks [t]);
        for (size_t o = 0; attempt && o < attempt->n_outputs && !output; o++)
            if (streq (attempt->outputs [o]->name, output_name))
                output = attempt->outputs [o];
    }
    int rc = 0;
    if (!output) {
        fprintf (stderr, "qanat: run %llu has %s\n", (unsigned long long) run_id, task_found
                 ? "no such output for that task (it may not have succeeded)": "no such task");
        rc = EXIT_USAGE;
    }
    else
    if (output->kind == QANAT__ARTIFACT_KIND__ARTIFACT_VALUE) {
        FILE *out = options->output? fopen (options->output, "w"): stdout;
        if (!out) {
            fprintf (stderr, "qanat: %s: %s\n", options->output, strerror (errno));
            rc = EXIT_USAGE;
        }
        else {
            //  With -o the file gets the value itself, as without --json
            if (options->json && out == stdout)
                s_print_output_json (stdout, task_name, output, NULL, 0);
            else
                fprintf (out, "%s\n", output->value);
            if (out != stdout)
                fclose (out);
            if (options->json && out != stdout)
                s_print_output_json (stdout, task_name, output, options->output,
                                     strlen (output->value) + 1);
        }
    }
    else {
        //  Into a private blob store first, verified, then staged safely;
        //  from the coordinator, or straight from the output's bucket
        const char *tmp = getenv ("TMPDIR");
        char dir [4096];
        snprintf (dir, sizeof dir, "%s/qanat-get-XXXXXX", tmp && *tmp? tmp: "/tmp");
        qn_blobstore_t *blobs = mkdtemp (dir)? qn_blobstore_new (dir): NULL;
        s_blob_source_t source = { .client = client, .scratch = dir };
        qn_tree_t *tree = NULL;
        char *error = NULL;
        int failed = EXIT_COORDINATOR;     //  or the store it is in
        if (output->location && *output->location && s_open_s3_source (&source, output) == -1)
            rc = failed;
        if (rc || !blobs || s_fetch_from (&source, blobs, output->hash))
            rc = failed;
        else
        if (output->kind == QANAT__ARTIFACT_KIND__ARTIFACT_DIR) {
            tree = qn_tree_load_manifest (blobs, output->hash, output->size, &error);
            for (size_t e = 0; tree && e < qn_tree_count (tree) && rc == 0; e++)
                if (s_fetch_from (&source, blobs, qn_tree_entry (tree, e)->hash))
                    rc = failed;
        }
        else
            tree = qn_tree_for_file (output->hash, output->size);
        if (rc == 0 && tree) {
            char target [4096];
            snprintf (target, sizeof target, "%s", options->output? options->output: output_name);
            char *slash = strrchr (target, '/');
            const char *parent = slash? (slash == target? "/": target): ".";
            const char *leaf = slash? slash + 1: target;
            if (slash)
                *slash = 0;
            if (!*leaf || qn_tree_stage (tree, blobs, parent, leaf, NULL, NULL, &error))
                rc = EXIT_USAGE;
            else {
                if (slash)
                    *slash = '/';
                if (options->json)
                    s_print_output_json (stdout, task_name, output, target, qn_tree_bytes (tree));
                else
                    printf ("%s.%s -> %s (%llu bytes)\n", task_name, output_name, target,
                            (unsigned long long) qn_tree_bytes (tree));
            }
        }
        else
        if (rc == 0)
            rc = failed;
        if (error)
            fprintf (stderr, "qanat: %s\n", error);
        free (error);
        qn_tree_destroy (&tree);
        qn_s3_destroy (&source.s3);
        free (source.prefix);
        qn_blobstore_destroy (&blobs);
        nftw (dir, s_remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    }
    free (task_name);
    qn_msg_free (&reply);
    qn_client_destroy (&client);
    return rc;
}

static int
s_cmd_status (options_t *options, int argc, char **argv)
{
    if (argc != 1) {
        fprintf (stderr, "usage: qanat status RUN [--json]\n");
        return EXIT_USAGE;
    }
    uint64_t run_id = s_parse_run_id (argv [0]);
    qn_client_t *client = s_connect (options);
    Qanat__Envelope *reply = s_get_run (client, run_id);
    if (options->json) {
        s_print_run_json (stdout, reply->reply->run);
        printf ("\n");
    }
    else
        s_print_run (reply->reply->run);
    qn_msg_free (&reply);
    qn_client_destroy (&client);
    return 0;
}

static int
s_cmd_runs (options_t *options, int argc, char **argv)
{
    if (argc > 1) {
        fprintf (stderr, "usage: qanat runs [WORKFLOW] [--limit N] [--json]\n");
        return EXIT_USAGE;
    }
    Qanat__ListRuns list = QANAT__LIST_RUNS__INIT;
    list.workflow = argc? argv [0]: "";
    list.limit = options->limit;
    Qanat__Request request = QANAT__REQUEST__INIT;
    request.body_case = QANAT__REQUEST__BODY_LIST_RUNS;
    request.list_runs = &list;
    qn_client_t *client = s_connect (options);
    Qanat__Envelope *reply = s_call (client, &request);
    Qanat__RunList *runs = reply->reply->runs;
    if (options->json) {
        printf ("[");
        for (size_t i = 0; i < runs->n_runs; i++) {
            if (i)
                printf (",");
            s_print_run_json (stdout, runs->runs [i]);
        }
        printf ("]\n");
    }
    else {
        printf ("%-6s %-24s %-4s %-24s %-20s %s\n", "RUN", "WORKFLOW", "VER", "STATUS", "STARTED", "TOOK");
        for (size_t i = 0; i < runs->n_runs; i++) {
            Qanat__RunInfo *run = runs->runs [i];
            printf ("%-6llu %-24s %-4u %-24s %-20s ", (unsigned long long) run->run_id,
                    run->workflow, run->version, qn_run_status_name (run->status),
                    s_time_text (run->created_us));
            printf ("%s\n", s_duration_text (run->created_us, run->finished_us));
        }
    }
    qn_msg_free (&reply);
    qn_client_destroy (&client);
    return 0;
}

static int
s_cmd_metrics (options_t *options, int argc, char **argv)
{
    if (argc < 1 || argc > 2) {
        fprintf (stderr, "usage: qanat metrics RUN|WORKFLOW [NAME] [--json]\n");
        return EXIT_USAGE;
    }
    Qanat__ReadMetrics read = QANAT__READ_METRICS__INIT;
    bool history = !isdigit ((unsigned char) argv [0][0]);
    if (history)
        read.workflow = argv [0];
    else
        read.run_id = s_parse_run_id (argv [0]);
    read.name = argc > 1? argv [1]: "";
    Qanat__Request request = QANAT__REQUEST__INIT;
    request.body_case = QANAT__REQUEST__BODY_READ_METRICS;
    request.read_metrics = &read;
    qn_client_t *client = s_connect (options);
    Qanat__Envelope *reply = s_call (client, &request);
    Qanat__MetricReport *report = reply->reply->metrics;
    if (options->json) {
        printf ("[");
        for (size_t i = 0; i < report->n_series; i++) {
            Qanat__MetricSeries *series = report->series [i];
            printf ("%s{\"run_id\":%llu,\"task\":", i? ",": "", (unsigned long long) series->run_id);
            s_json_str (stdout, series->task);
            printf (",\"name\":");
            s_json_str (stdout, series->name);
            printf (",\"points\":[");
            for (size_t p = 0; p < series->n_points; p++) {
                Qanat__MetricPoint *point = series->points [p];
                printf ("%s{\"value\":%.17g,\"time_us\":%lld", p? ",": "", point->value,
                        (long long) point->time_us);
                if (point->has_step)
                    printf (",\"step\":%lld", (long long) point->step);
                printf ("}");
            }
            printf ("]}");
        }
        printf ("]\n");
    }
    else
    if (history) {
        printf ("%-6s %-16s %-20s %s\n", "RUN", "TASK", "METRIC", "VALUE");
        for (size_t i = 0; i < report->n_series; i++) {
            Qanat__MetricSeries *series = report->series [i];
            if (series->n_points)
                printf ("%-6llu %-16s %-20s %g\n", (unsigned long long) series->run_id,
                        series->task, series->name, series->points [0]->value);
        }
    }
    else {
        for (size_t i = 0; i < report->n_series; i++) {
            Qanat__MetricSeries *series = report->series [i];
            printf ("%s %s (%zu points)\n", series->task, series->name, series->n_points);
            for (size_t p = 0; p < series->n_points; p++) {
                Qanat__MetricPoint *point = series->points [p];
                if (point->has_step)
                    printf ("  step %-6lld %g\n", (long long) point->step, point->value);
                else
                    printf ("  %g\n", point->value);
            }
        }
    }
    if (!options->json && report->n_series == 0)
        printf ("no metrics%s%s\n", argc > 1? " named ": "", argc > 1? argv [1]: "");
    qn_msg_free (&reply);
    qn_client_destroy (&client);
    return 0;
}

static int
s_cmd_agents (options_t *options, int argc, char **argv)
{
    (void) argc;
    (void) argv;
    Qanat__ListAgents list = QANAT__LIST_AGENTS__INIT;
    Qanat__Request request = QANAT__REQUEST__INIT;
    request.body_case = QANAT__REQUEST__BODY_LIST_AGENTS;
    request.list_agents = &list;
    qn_client_t *client = s_connect (options);
    Qanat__Envelope *reply = s_call (client, &request);
    Qanat__AgentList *agents = reply->reply->agents;
    if (options->json) {
        printf ("[");
        for (size_t i = 0; i < agents->n_agents; i++) {
            Qanat__AgentInfo *agent = agents->agents [i];
            printf ("%s{\"name\":", i? ",": "");
            s_json_str (stdout, agent->name);
            printf (",\"labels\":");
            s_json_labels (stdout, agent->labels, agent->n_labels);
            printf (",\"backends\":[");
            for (size_t b = 0; b < agent->n_backends; b++) {
                printf ("%s", b? ",": "");
                s_json_str (stdout, agent->backends [b]);
            }
            printf ("],\"capacity\":%u,\"credit\":%u,\"running\":%u,\"connected\":%s,"
                    "\"last_seen_us\":%lld,\"state\":", agent->capacity, agent->credit,
                    agent->running, agent->connected? "true": "false",
                    (long long) agent->last_seen_us);
            s_json_str (stdout, agent->state);
            printf (",\"draining\":%s,\"heartbeat_ms\":%u,\"suspect_after_ms\":%u,"
                    "\"lost_after_ms\":%u,\"spool_bytes\":%llu,\"spool_full\":%s}",
                    agent->draining? "true": "false", agent->heartbeat_ms,
                    agent->suspect_after_ms, agent->lost_after_ms,
                    (unsigned long long) agent->spool_bytes, agent->spool_full? "true": "false");
        }
        printf ("]\n");
    }
    else {
        printf ("%-20s %-22s %-6s %-8s %-20s %-18s %-18s %s\n", "AGENT", "STATE", "SLOTS",
                "RUNNING", "LAST SEEN", "TIMERS (s)", "BACKENDS", "LABELS");
        for (size_t i = 0; i < agents->n_agents; i++) {
            Qanat__AgentInfo *agent = agents->agents [i];
            char state [64], timers [64];
            snprintf (state, sizeof state, "%s%s%s", agent->state, agent->draining? ", draining": "",
                      agent->spool_full? ", spool full": "");
            snprintf (timers, sizeof timers, "%g/%g/%g", agent->heartbeat_ms / 1000.0,
                      agent->suspect_after_ms / 1000.0, agent->lost_after_ms / 1000.0);
            //  The first backend is the agent's default
            char backends [128] = "";
            for (size_t b = 0, used = 0; b < agent->n_backends && used < sizeof backends; b++)
                used += (size_t) snprintf (backends + used, sizeof backends - used, "%s%s",
                                           b? ",": "", agent->backends [b]);
            printf ("%-20s %-22s %-6u %-8u %-20s %-18s %-18s ", agent->name, state,
                    agent->capacity, agent->running, s_time_text (agent->last_seen_us), timers,
                    *backends? backends: "-");
            for (size_t l = 0; l < agent->n_labels; l++)
                printf ("%s%s=%s", l? ",": "", agent->labels [l]->key, agent->labels [l]->value);
            printf ("\n");
        }
        if (agents->n_agents == 0)
            printf ("no agents have registered yet\n");
        else
            printf ("\nTIMERS: heartbeat / suspect after / lost after\n");
    }
    qn_msg_free (&reply);
    qn_client_destroy (&client);
    return 0;
}

static int
s_cmd_cancel (options_t *options, int argc, char **argv)
{
    if (argc < 1 || argc > 2) {
        fprintf (stderr, "usage: qanat cancel RUN [TASK]\n");
        return EXIT_USAGE;
    }
    Qanat__CancelRun cancel = QANAT__CANCEL_RUN__INIT;
    cancel.run_id = s_parse_run_id (argv [0]);
    cancel.task = argc > 1? argv [1]: "";
    Qanat__Request request = QANAT__REQUEST__INIT;
    request.body_case = QANAT__REQUEST__BODY_CANCEL_RUN;
    request.cancel_run = &cancel;
    qn_client_t *client = s_connect (options);
    Qanat__Envelope *reply = s_call (client, &request);
    if (options->json) {
        s_print_run_json (stdout, reply->reply->run);
        printf ("\n");
    }
    else
    if (argc > 1)
        printf ("run %llu task %s canceled\n", (unsigned long long) cancel.run_id, argv [1]);
    else
        printf ("run %llu %s\n", (unsigned long long) cancel.run_id,
                qn_run_status_name (reply->reply->run->status));
    qn_msg_free (&reply);
    qn_client_destroy (&client);
    return 0;
}

static int
s_cmd_agent (options_t *options, int argc, char **argv)
{
    if (argc == 2 && streq (argv [0], "revoke")) {
        Qanat__RevokeAgent revoke = QANAT__REVOKE_AGENT__INIT;
        revoke.name = argv [1];
        Qanat__Request request = QANAT__REQUEST__INIT;
        request.body_case = QANAT__REQUEST__BODY_REVOKE_AGENT;
        request.revoke_agent = &revoke;
        qn_client_t *client = s_connect (options);
        Qanat__Envelope *reply = s_call (client, &request);
        printf (options->json? "{\"revoked\":\"%s\"}\n"
                             : "agent %s revoked: its key is refused from now on\n", argv [1]);
        qn_msg_free (&reply);
        qn_client_destroy (&client);
        return 0;
    }
    if (argc != 2 || (!streq (argv [0], "drain") && !streq (argv [0], "undrain"))) {
        fprintf (stderr, "usage: qanat agent drain|undrain|revoke NAME\n");
        return EXIT_USAGE;
    }
    Qanat__DrainAgent drain = QANAT__DRAIN_AGENT__INIT;
    drain.name = argv [1];
    drain.drain = streq (argv [0], "drain");
    Qanat__Request request = QANAT__REQUEST__INIT;
    request.body_case = QANAT__REQUEST__BODY_DRAIN_AGENT;
    request.drain_agent = &drain;
    qn_client_t *client = s_connect (options);
    Qanat__Envelope *reply = s_call (client, &request);
    Qanat__AgentInfo *agent = reply->reply->agents->n_agents? reply->reply->agents->agents [0]: NULL;
    if (options->json && agent)
        printf ("{\"name\":\"%s\",\"draining\":%s,\"running\":%u}\n", agent->name,
                agent->draining? "true": "false", agent->running);
    else
    if (agent)
        printf ("agent %s %s (%u attempts running)\n", agent->name,
                agent->draining? "draining: it finishes what it runs and takes nothing new"
                               : "takes work again", agent->running);
    qn_msg_free (&reply);
    qn_client_destroy (&client);
    return 0;
}

//  "90", "90s", "30m", "2h", "1d": seconds, or -1.
static long
s_parse_duration (const char *text)
{
    char *end = NULL;
    long value = strtol (text, &end, 10);
    if (end == text || value < 0)
        return -1;
    long unit = streq (end, "") || streq (end, "s")? 1: streq (end, "m")? 60
              : streq (end, "h")? 3600: streq (end, "d")? 86400: -1;
    return unit < 0? -1: value * unit;
}

//  "k=v,k=v" into labels (malloc'd array of malloc'd labels), or -1.
static int
s_parse_labels (const char *text, Qanat__Label ***labels_p, size_t *count_p)
{
    *labels_p = NULL;
    *count_p = 0;
    if (!text || !*text)
        return 0;
    char *copy = strdup (text);
    int rc = 0;
    for (char *item = strtok (copy, ","); item; item = strtok (NULL, ",")) {
        char *equals = strchr (item, '=');
        if (!equals || equals == item) {
            rc = -1;
            break;
        }
        *equals = 0;
        Qanat__Label *label = (Qanat__Label *) malloc (sizeof (Qanat__Label));
        qanat__label__init (label);
        label->key = strdup (item);
        label->value = strdup (equals + 1);
        *labels_p = (Qanat__Label **) realloc (*labels_p, (*count_p + 1) * sizeof (Qanat__Label *));
        (*labels_p) [(*count_p)++] = label;
    }
    free (copy);
    return rc;
}

static int
s_cmd_token (options_t *options, int argc, char **argv)
{
    if (argc != 1 || !streq (argv [0], "create")) {
        fprintf (stderr, "usage: qanat token create [--ttl 1h] [--uses N] [--labels k=v,...]\n");
        return EXIT_USAGE;
    }
    Qanat__CreateToken create = QANAT__CREATE_TOKEN__INIT;
    long ttl = options->ttl? s_parse_duration (options->ttl): 3600;
    if (ttl <= 0 || ttl > 365L * 86400) {
        fprintf (stderr, "qanat: --ttl wants a duration like 90s, 30m, 1h, 7d\n");
        return EXIT_USAGE;
    }
    create.ttl_s = (uint32_t) ttl;
    create.uses = options->uses? options->uses: 1;
    if (s_parse_labels (options->labels, &create.labels, &create.n_labels)) {
        fprintf (stderr, "qanat: --labels wants k=v,k=v\n");
        return EXIT_USAGE;
    }
    Qanat__Request request = QANAT__REQUEST__INIT;
    request.body_case = QANAT__REQUEST__BODY_CREATE_TOKEN;
    request.create_token = &create;
    qn_client_t *client = s_connect (options);
    Qanat__Envelope *reply = s_call (client, &request);
    Qanat__JoinToken *token = reply->reply->token;
    if (options->json) {
        printf ("{\"token\":");
        s_json_str (stdout, token->token);
        printf (",\"id\":");
        s_json_str (stdout, token->id);
        printf (",\"expires_us\":%lld,\"uses\":%u}\n", (long long) token->expires_us, token->uses);
    }
    else {
        printf ("%s\n", token->token);
        fprintf (stderr, "join token %s: good for %u agent%s until %s; start an agent with\n"
                 "  qanat-agent --join TOKEN --name NAME\n", token->id, token->uses,
                 token->uses == 1? "": "s", s_time_text (token->expires_us));
    }
    for (size_t i = 0; i < create.n_labels; i++)
        s_free_label (create.labels [i]);
    free (create.labels);
    qn_msg_free (&reply);
    qn_client_destroy (&client);
    return 0;
}

static int
s_cmd_user (options_t *options, int argc, char **argv)
{
    if (argc != 2 || !streq (argv [0], "add")) {
        fprintf (stderr, "usage: qanat user add NAME [--role user|admin] [-o KEYFILE]\n");
        return EXIT_USAGE;
    }
    Qanat__AddUser add = QANAT__ADD_USER__INIT;
    add.name = argv [1];
    add.role = (char *) (options->role? options->role: "user");
    Qanat__Request request = QANAT__REQUEST__INIT;
    request.body_case = QANAT__REQUEST__BODY_ADD_USER;
    request.add_user = &add;
    qn_client_t *client = s_connect (options);
    Qanat__Envelope *reply = s_call (client, &request);
    const char *key_file = reply->reply->user_key->key_file;
    int rc = 0;
    if (options->output) {
        int fd = open (options->output, O_WRONLY | O_CREAT | O_EXCL, 0600);
        if (fd == -1 || write (fd, key_file, strlen (key_file)) != (ssize_t) strlen (key_file)) {
            fprintf (stderr, "qanat: cannot write %s: %s\n", options->output, strerror (errno));
            rc = EXIT_USAGE;
        }
        else
            fprintf (stderr, "user %s (%s): key written to %s; use it with --key %s\n",
                     add.name, add.role, options->output, options->output);
        if (fd != -1)
            close (fd);
    }
    else
        fputs (key_file, stdout);
    qn_msg_free (&reply);
    qn_client_destroy (&client);
    return rc;
}

//  The access list "user:a,role:b,workflow:c" plus agent labels, or
//  NULL when neither was given.  Free with s_access_free.
static Qanat__SecretAccess *
s_access_new (const char *allow, const char *agent_labels)
{
    if (!allow && !agent_labels)
        return NULL;
    Qanat__SecretAccess *access = (Qanat__SecretAccess *) malloc (sizeof (Qanat__SecretAccess));
    qanat__secret_access__init (access);
    char *copy = strdup (allow? allow: "");
    for (char *item = strtok (copy, ","); item; item = strtok (NULL, ",")) {
        access->allow = (char **) realloc (access->allow, (access->n_allow + 1) * sizeof (char *));
        access->allow [access->n_allow++] = strdup (item);
    }
    free (copy);
    if (s_parse_labels (agent_labels, &access->agents, &access->n_agents)) {
        fprintf (stderr, "qanat: --agents takes KEY=VALUE,KEY=VALUE\n");
        exit (EXIT_USAGE);
    }
    return access;
}

static void
s_access_free (Qanat__SecretAccess *access)
{
    if (access) {
        for (size_t i = 0; i < access->n_allow; i++)
            free (access->allow [i]);
        free (access->allow);
        for (size_t i = 0; i < access->n_agents; i++)
            s_free_label (access->agents [i]);
        free (access->agents);
        free (access);
    }
}

//  "role:admin" and, when the secret is scoped to agents, "agents env=prod"
static void
s_print_access (const Qanat__SecretAccess *access)
{
    for (size_t i = 0; access && i < access->n_allow; i++)
        printf ("%s%s", i? ",": "", access->allow [i]);
    for (size_t i = 0; access && i < access->n_agents; i++)
        printf ("%s%s=%s", i? ",": "  agents ", access->agents [i]->key, access->agents [i]->value);
}

static void
s_print_secrets (options_t *options, const Qanat__SecretList *secrets)
{
    if (options->json)
        printf ("[");
    for (size_t i = 0; i < secrets->n_names; i++) {
        const Qanat__SecretAccess *access = i < secrets->n_access? secrets->access [i]: NULL;
        if (!options->json) {
            printf ("%-24s ", secrets->names [i]);
            s_print_access (access);
            printf ("\n");
            continue;
        }
        printf ("%s{\"name\":", i? ",": "");
        s_json_str (stdout, secrets->names [i]);
        printf (",\"allow\":[");
        for (size_t a = 0; access && a < access->n_allow; a++) {
            printf ("%s", a? ",": "");
            s_json_str (stdout, access->allow [a]);
        }
        printf ("],\"agents\":{");
        for (size_t a = 0; access && a < access->n_agents; a++) {
            printf ("%s", a? ",": "");
            s_json_str (stdout, access->agents [a]->key);
            printf (":");
            s_json_str (stdout, access->agents [a]->value);
        }
        printf ("}}");
    }
    if (options->json)
        printf ("]\n");
}

static int
s_cmd_secret (options_t *options, int argc, char **argv)
{
    Qanat__Request request = QANAT__REQUEST__INIT;
    Qanat__SetSecret set = QANAT__SET_SECRET__INIT;
    Qanat__ListSecrets list = QANAT__LIST_SECRETS__INIT;
    char *value = NULL;
    if (argc == 2 && streq (argv [0], "set")) {
        //  From stdin, never from the command line (ps, shell history).
        size_t size = 0, room = 4096;
        value = (char *) malloc (room);
        size_t got;
        while ((got = fread (value + size, 1, room - size, stdin)) > 0) {
            size += got;
            if (size == room)
                value = (char *) realloc (value, room *= 2);
        }
        while (size && (value [size - 1] == '\n' || value [size - 1] == '\r'))
            size--;
        set.name = argv [1];
        set.value.data = (uint8_t *) value;
        set.value.len = size;
        set.access = s_access_new (options->allow, options->agent_labels);
        request.body_case = QANAT__REQUEST__BODY_SET_SECRET;
        request.set_secret = &set;
    }
    else
    if (argc == 3 && streq (argv [0], "allow")) {
        //  The list alone: the value stays as it is.
        set.name = argv [1];
        set.access = s_access_new (argv [2], options->agent_labels);
        set.access_only = true;
        request.body_case = QANAT__REQUEST__BODY_SET_SECRET;
        request.set_secret = &set;
    }
    else
    if (argc == 1 && streq (argv [0], "list")) {
        request.body_case = QANAT__REQUEST__BODY_LIST_SECRETS;
        request.list_secrets = &list;
    }
    else {
        fprintf (stderr, "usage: qanat secret set NAME [--allow LIST] [--agents k=v,..] < value-file\n"
                         "       qanat secret allow NAME LIST [--agents k=v,..]\n"
                         "       qanat secret list\n"
                         "LIST: user:NAME,role:ROLE,workflow:NAME (default role:admin)\n");
        return EXIT_USAGE;
    }
    qn_client_t *client = s_connect (options);
    Qanat__Envelope *reply = s_call (client, &request);
    if (value)
        memset (value, 0, set.value.len);
    free (value);
    s_access_free (set.access);
    Qanat__SecretList *secrets = reply->reply->secrets;
    if (request.body_case == QANAT__REQUEST__BODY_SET_SECRET && !options->json) {
        printf ("secret %s %s; may be used by ", argv [1], set.access_only? "allowed": "set");
        s_print_access (secrets->n_access? secrets->access [0]: NULL);
        printf ("\n");
    }
    else
        s_print_secrets (options, secrets);
    qn_msg_free (&reply);
    qn_client_destroy (&client);
    return 0;
}

static int
s_cmd_stats (options_t *options, int argc, char **argv)
{
    (void) argc;
    (void) argv;
    Qanat__GetStats get = QANAT__GET_STATS__INIT;
    Qanat__Request request = QANAT__REQUEST__INIT;
    request.body_case = QANAT__REQUEST__BODY_GET_STATS;
    request.get_stats = &get;
    qn_client_t *client = s_connect (options);
    Qanat__Envelope *reply = s_call (client, &request);
    Qanat__Stats *stats = reply->reply->stats;
    struct { const char *key, *label; uint64_t value; } rows [] = {
        { "malformed_agent_frames", "malformed agent frames", stats->malformed_agent_frames },
        { "malformed_client_frames", "malformed client frames", stats->malformed_client_frames },
        { "bad_version", "bad protocol versions", stats->bad_version },
        { "events_committed", "events committed", stats->events_committed },
        { "duplicate_events", "duplicate events", stats->duplicate_events },
        { "stale_events", "stale events", stats->stale_events },
        { "commits", "commits", stats->commits },
        { "commit_failures", "commit failures", stats->commit_failures },
        { "denied", "denied", stats->denied },
        { "blobs_stored", "blobs stored", stats->blobs_stored },
        { "blob_bytes_in", "blob bytes in", stats->blob_bytes_in },
        { "blob_bytes_out", "blob bytes out", stats->blob_bytes_out },
        { "blob_chunks_rejected", "blob chunks rejected", stats->blob_chunks_rejected },
        { "sends_refused", "sends refused", stats->sends_refused },
        { "runs_deleted", "runs deleted (retention)", stats->runs_deleted },
        { "blob_bytes_freed", "blob bytes freed", stats->blob_bytes_freed },
        { "s3_objects_deleted", "S3 objects deleted", stats->s3_objects_deleted },
        { "s3_delete_failures", "S3 deletes failed", stats->s3_delete_failures },
        { "agent_cache_damaged", "agent cache blobs damaged", stats->agent_cache_damaged },
    };
    size_t count = sizeof rows / sizeof rows [0];
    if (options->json)
        printf ("{");
    for (size_t i = 0; i < count; i++)
        if (options->json)
            printf ("%s\"%s\":%llu", i? ",": "", rows [i].key, (unsigned long long) rows [i].value);
        else
            printf ("%-24s %llu\n", rows [i].label, (unsigned long long) rows [i].value);
    if (options->json)
        printf ("}\n");
    qn_msg_free (&reply);
    qn_client_destroy (&client);
    return 0;
}

//  ---------------------------------------------------------------------

typedef struct {
    const char *name;
    int (*fn) (options_t *, int, char **);
    const char *usage;
    const char *summary;
} command_t;

static command_t s_commands [] = {
    {"run", s_cmd_run, "run FILE [--param NAME=VALUE ...] [--follow] [--no-cache]",
        "start a run of a workflow file; --follow streams progress and logs to the end"},
    {"runs", s_cmd_runs, "runs [WORKFLOW] [--limit N]", "list runs, newest first"},
    {"status", s_cmd_status, "status RUN", "a run's tasks, attempts, checks and why tasks wait"},
    {"logs", s_cmd_logs, "logs RUN [TASK] [--attempt N] [--follow]", "a run's logs"},
    {"metrics", s_cmd_metrics, "metrics RUN|WORKFLOW [NAME]",
        "a run's metric series, or a workflow's last value per run"},
    {"agents", s_cmd_agents, "agents", "agents, their labels, slots and state"},
    {"cancel", s_cmd_cancel, "cancel RUN [TASK]", "cancel a run, or one task of it"},
    {"agent", s_cmd_agent, "agent drain|undrain|revoke NAME",
        "stop giving an agent new work (it finishes what it runs), resume, or cut it off"},
    {"token", s_cmd_token, "token create [--ttl 1h] [--uses N] [--labels k=v,..]",
        "a join token for new agents (admin)"},
    {"user", s_cmd_user, "user add NAME [--role user|admin] [-o KEYFILE]",
        "a user and their client key (admin)"},
    {"secret", s_cmd_secret, "secret set NAME [--allow LIST] < FILE | allow NAME LIST | list",
        "a secret (stdin, sealed at rest) and who may use it: LIST is user:NAME,role:ROLE,"
        "workflow:NAME (default role:admin), --agents k=v,.. the agents it may go to (admin)"},
    {"validate", s_cmd_validate, "validate FILE", "check a workflow file without running it"},
    {"artifacts", s_cmd_artifacts, "artifacts RUN", "the outputs a run's tasks produced"},
    {"get", s_cmd_get, "get RUN TASK.OUTPUT [-o PATH]",
        "download an output (file or directory, verified), or print a value"},
    {"put", s_cmd_put, "put PATH",
        "feed a file or directory in, for an artifact parameter (run --param NAME=@PATH does it too)"},
    {"stats", s_cmd_stats, "stats", "coordinator counters (malformed messages, events)"},
    {NULL, NULL, NULL, NULL}
};

static void
s_usage (FILE *out)
{
    fprintf (out, "usage: qanat [--coordinator ENDPOINT] [--key KEYFILE] [--timeout SECONDS] COMMAND [ARGS]\n\n"
                  "Commands:\n");
    for (command_t *command = s_commands; command->name; command++)
        fprintf (out, "  %-46s %s\n", command->usage, command->summary);
    fprintf (out, "\nEvery query takes --json.  The coordinator is ENDPOINT, else $QANAT_COORDINATOR,\n"
                  "else the key file's, else " QN_DEFAULT_CLIENT_ENDPOINT ".  The client key is KEYFILE, else\n"
                  "$QANAT_KEY, else ~/.qanat/client.key, else ~/.qanat/coordinator/keys/admin.key;\n"
                  "--key none talks plaintext to a coordinator run with --insecure.\n"
                  "'qanat COMMAND --help' shows one command.\n");
}

int
main (int argc, char *argv [])
{
    zsys_init ();
    zsys_set_logstream (NULL);
    options_t options = {0};
    options.timeout_ms = 5000;
    options.params = zlistx_new ();
    zlistx_set_destructor (options.params, (zlistx_destructor_fn *) zstr_free);
    zlistx_set_duplicator (options.params, (zlistx_duplicator_fn *) strdup);
    static struct option long_options [] = {
        {"coordinator", required_argument, 0, 'c'},
        {"timeout", required_argument, 0, 't'},
        {"json", no_argument, 0, 'j'},
        {"follow", no_argument, 0, 'f'},
        {"no-cache", no_argument, 0, 'N'},
        {"param", required_argument, 0, 'p'},
        {"attempt", required_argument, 0, 'a'},
        {"limit", required_argument, 0, 'l'},
        {"key", required_argument, 0, 'k'},
        {"ttl", required_argument, 0, 'T'},
        {"uses", required_argument, 0, 'U'},
        {"labels", required_argument, 0, 'L'},
        {"role", required_argument, 0, 'R'},
        {"allow", required_argument, 0, 'A'},
        {"agents", required_argument, 0, 'G'},
        {"output", required_argument, 0, 'o'},
        {"help", no_argument, 0, 'h'},
        {"version", no_argument, 0, 'V'},
        {0, 0, 0, 0}
    };
    bool help = false;
    int opt;
    //  Options may come before or after the command (GNU permutation).
    while ((opt = getopt_long (argc, argv, "fhjp:o:", long_options, NULL)) != -1) {
        switch (opt) {
            case 'c': options.endpoint = optarg; break;
            case 't': options.timeout_ms = (int) (atof (optarg) * 1000); break;
            case 'j': options.json = true; break;
            case 'f': options.follow = true; break;
            case 'N': options.no_cache = true; break;
            case 'p': zlistx_add_end (options.params, optarg); break;
            case 'a': options.attempt = (uint32_t) atoi (optarg); break;
            case 'l': options.limit = (uint32_t) atoi (optarg); break;
            case 'k': options.key = optarg; break;
            case 'T': options.ttl = optarg; break;
            case 'U': options.uses = (uint32_t) atoi (optarg); break;
            case 'L': options.labels = optarg; break;
            case 'R': options.role = optarg; break;
            case 'A': options.allow = optarg; break;
            case 'G': options.agent_labels = optarg; break;
            case 'o': options.output = optarg; break;
            case 'h': help = true; break;
            case 'V': printf ("qanat %s\n", PACKAGE_VERSION); return 0;
            default: s_usage (stderr); return EXIT_USAGE;
        }
    }
    if (options.timeout_ms <= 0)
        options.timeout_ms = 5000;
    if (optind >= argc) {
        s_usage (help? stdout: stderr);
        return help? 0: EXIT_USAGE;
    }
    const char *name = argv [optind];
    for (command_t *command = s_commands; command->name; command++)
        if (streq (command->name, name)) {
            if (help) {
                printf ("usage: qanat %s [--json] [--coordinator ENDPOINT]\n\n%s\n",
                        command->usage, command->summary);
                return 0;
            }
            int rc = command->fn (&options, argc - optind - 1, argv + optind + 1);
            zlistx_destroy (&options.params);
            return rc;
        }
    fprintf (stderr, "qanat: unknown command '%s'\n\n", name);
    s_usage (stderr);
    return EXIT_USAGE;
}
