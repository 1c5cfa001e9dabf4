/*  qanat - the command-line client.

    Every command talks to a coordinator's client socket through
    libqanat's qn_client, with a deadline on every call, so a coordinator
    that cannot be reached is a clear error within seconds, never a hang.
    Every query takes --json for scripts.

    Exit codes: 0 done (a followed run succeeded, with or without
    warnings); 1 a followed run failed or was canceled; 2 bad usage or an
    invalid workflow; 3 the coordinator could not be reached or refused.
*/
#include "qanat.h"
#include "config.h"
#include <getopt.h>
#include <time.h>

#define EXIT_RUN_FAILED   1
#define EXIT_USAGE        2
#define EXIT_COORDINATOR  3

typedef struct {
    const char *endpoint;
    int timeout_ms;
    bool json;
    bool follow;
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

static qn_client_t *
s_connect (options_t *options)
{
    qn_client_t *client = qn_client_new (options->endpoint, options->timeout_ms);
    if (!client) {
        fprintf (stderr, "qanat: cannot use coordinator endpoint '%s'\n",
                 options->endpoint? options->endpoint: QN_DEFAULT_CLIENT_ENDPOINT);
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
    printf ("\n%-*s  %-10s %-7s %-16s %-8s %s\n", (int) width, "TASK", "STATUS", "ATTEMPT",
            "AGENT", "TIME", "NOTE");
    for (size_t t = 0; t < run->n_tasks; t++) {
        Qanat__TaskInfo *task = run->tasks [t];
        Qanat__AttemptInfo *attempt = task->n_attempts? task->attempts [task->n_attempts - 1]: NULL;
        const char *note = task->waiting_reason && *task->waiting_reason? task->waiting_reason
                         : attempt && attempt->reason && *attempt->reason? attempt->reason: "";
        char attempt_text [16] = "-";
        if (attempt)
            snprintf (attempt_text, sizeof attempt_text, "%u", attempt->attempt);
        printf ("%-*s  %-10s %-7s %-16s %-8s %s\n", (int) width, task->name,
                qn_task_status_name (task->status), attempt_text,
                attempt? attempt->agent: "-",
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
        fputs ("{\"task\":", stdout);
        s_json_str (stdout, line->task);
        fprintf (stdout, ",\"attempt\":%u,\"seq\":%llu,\"stream\":\"%s\",\"time_us\":%lld,"
                 "\"partial\":%s,\"data\":", line->attempt, (unsigned long long) line->seq,
                 chunk->stream == QANAT__STREAM__STREAM_STDERR? "stderr"
                 : chunk->stream == QANAT__STREAM__STREAM_SYSTEM? "system": "stdout",
                 (long long) chunk->time_us, chunk->partial? "true": "false");
        s_json_string (stdout, (const char *) chunk->data.data, chunk->data.len);
        fputs ("}\n", stdout);
        return;
    }
    if (*at_line_start && prefix) {
        const char *tag = chunk->stream == QANAT__STREAM__STREAM_STDERR? "!"
                        : chunk->stream == QANAT__STREAM__STREAM_SYSTEM? "#": " ";
        if (line->attempt > 1)
            printf ("%s.%u%s| ", line->task, line->attempt, tag);
        else
            printf ("%s%s| ", line->task, tag);
    }
    fwrite (chunk->data.data, 1, chunk->data.len, stdout);
    if (!chunk->partial)
        fputc ('\n', stdout);
    *at_line_start = !chunk->partial;
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
    while (true) {
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

//  Prints how tasks changed since the last look; returns the run status.
static Qanat__RunStatus
s_follow_progress (qn_client_t *client, uint64_t run_id, Qanat__TaskStatus *seen,
                   uint32_t *seen_attempts, size_t count)
{
    Qanat__Envelope *reply = s_get_run (client, run_id);
    Qanat__RunInfo *run = reply->reply->run;
    for (size_t t = 0; t < run->n_tasks && t < count; t++) {
        Qanat__TaskInfo *task = run->tasks [t];
        Qanat__AttemptInfo *attempt = task->n_attempts? task->attempts [task->n_attempts - 1]: NULL;
        if (task->status == seen [t] && task->n_attempts == seen_attempts [t])
            continue;
        seen [t] = task->status;
        seen_attempts [t] = (uint32_t) task->n_attempts;
        if (task->status == QANAT__TASK_STATUS__TASK_RUNNING && attempt)
            printf ("==> %s started on %s (attempt %u)\n", task->name, attempt->agent,
                    attempt->attempt);
        else
        if (task->status == QANAT__TASK_STATUS__TASK_QUEUED && task->waiting_reason
        &&  *task->waiting_reason)
            printf ("==> %s queued: %s\n", task->name, task->waiting_reason);
        else
        if (task->status == QANAT__TASK_STATUS__TASK_SUCCEEDED
        ||  task->status == QANAT__TASK_STATUS__TASK_FAILED
        ||  task->status == QANAT__TASK_STATUS__TASK_SKIPPED
        ||  task->status == QANAT__TASK_STATUS__TASK_CANCELED) {
            bool skipped = task->status == QANAT__TASK_STATUS__TASK_SKIPPED;
            const char *why = skipped? task->waiting_reason: attempt? attempt->reason: "";
            printf ("==> %s %s", task->name, qn_task_status_name (task->status));
            if (attempt && !skipped)
                printf (" in %s", s_duration_text (attempt->started_us, attempt->finished_us));
            if (why && *why)
                printf (": %s", why);
            printf ("\n");
        }
    }
    fflush (stdout);
    Qanat__RunStatus status = run->status;
    qn_msg_free (&reply);
    return status;
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

static int
s_follow_run (qn_client_t *client, uint64_t run_id, size_t task_count)
{
    Qanat__TaskStatus *seen = (Qanat__TaskStatus *) calloc (task_count + 1, sizeof (Qanat__TaskStatus));
    uint32_t *seen_attempts = (uint32_t *) calloc (task_count + 1, sizeof (uint32_t));
    ProtobufCBinaryData cursor = {0, NULL};
    bool at_line_start = true;
    Qanat__RunStatus status = QANAT__RUN_STATUS__RUN_QUEUED;
    while (true) {
        status = s_follow_progress (client, run_id, seen, seen_attempts, task_count);
        size_t count = 0;
        bool finished = s_logs_page (client, run_id, NULL, 0, &cursor, true, false,
                                     &at_line_start, &count);
        if (finished) {
            s_follow_progress (client, run_id, seen, seen_attempts, task_count);
            break;
        }
        if (count == 0)
            zclock_sleep (150);
    }
    free (cursor.data);
    free (seen);
    free (seen_attempts);
    Qanat__Envelope *reply = s_get_run (client, run_id);
    printf ("\n");
    s_print_run (reply->reply->run);
    status = reply->reply->run->status;
    qn_msg_free (&reply);
    s_print_metric_summary (client, run_id);
    return s_run_exit_code (status);
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
    size_t task_count = qn_workflow_task_count (wf);
    qn_workflow_destroy (&wf);
    size_t size = 0;
    char *source = s_read_file (argv [0], &size);
    if (!source) {
        fprintf (stderr, "qanat: cannot read %s: %s\n", argv [0], strerror (errno));
        return EXIT_USAGE;
    }
    Qanat__SubmitWorkflow submit = QANAT__SUBMIT_WORKFLOW__INIT;
    submit.filename = argv [0];
    submit.source.data = (uint8_t *) source;
    submit.source.len = size;
    Qanat__StartRun start = QANAT__START_RUN__INIT;
    start.workflow = &submit;
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
    }
    Qanat__Request request = QANAT__REQUEST__INIT;
    request.body_case = QANAT__REQUEST__BODY_START_RUN;
    request.start_run = &start;
    qn_client_t *client = s_connect (options);
    Qanat__Envelope *reply = s_call (client, &request);
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
        rc = s_follow_run (client, run_id, task_count);
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
                    "\"last_seen_us\":%lld}", agent->capacity, agent->credit, agent->running,
                    agent->connected? "true": "false", (long long) agent->last_seen_us);
        }
        printf ("]\n");
    }
    else {
        printf ("%-20s %-13s %-8s %-8s %-20s %s\n", "AGENT", "STATE", "SLOTS", "RUNNING",
                "LAST SEEN", "LABELS");
        for (size_t i = 0; i < agents->n_agents; i++) {
            Qanat__AgentInfo *agent = agents->agents [i];
            printf ("%-20s %-13s %-8u %-8u %-20s ", agent->name,
                    agent->connected? "connected": "disconnected", agent->capacity,
                    agent->running, s_time_text (agent->last_seen_us));
            for (size_t l = 0; l < agent->n_labels; l++)
                printf ("%s%s=%s", l? ",": "", agent->labels [l]->key, agent->labels [l]->value);
            printf ("\n");
        }
        if (agents->n_agents == 0)
            printf ("no agents have registered yet\n");
    }
    qn_msg_free (&reply);
    qn_client_destroy (&client);
    return 0;
}

static int
s_cmd_cancel (options_t *options, int argc, char **argv)
{
    if (argc != 1) {
        fprintf (stderr, "usage: qanat cancel RUN\n");
        return EXIT_USAGE;
    }
    Qanat__CancelRun cancel = QANAT__CANCEL_RUN__INIT;
    cancel.run_id = s_parse_run_id (argv [0]);
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
        printf ("run %llu %s\n", (unsigned long long) cancel.run_id,
                qn_run_status_name (reply->reply->run->status));
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
    printf (options->json?
            "{\"malformed_agent_frames\":%llu,\"malformed_client_frames\":%llu,"
            "\"bad_version\":%llu,\"events_committed\":%llu,\"duplicate_events\":%llu}\n"
          : "malformed agent frames  %llu\nmalformed client frames %llu\n"
            "bad protocol versions   %llu\nevents committed        %llu\nduplicate events        %llu\n",
            (unsigned long long) stats->malformed_agent_frames,
            (unsigned long long) stats->malformed_client_frames,
            (unsigned long long) stats->bad_version,
            (unsigned long long) stats->events_committed,
            (unsigned long long) stats->duplicate_events);
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
    {"run", s_cmd_run, "run FILE [--param NAME=VALUE ...] [--follow]",
        "start a run of a workflow file; --follow streams progress and logs to the end"},
    {"runs", s_cmd_runs, "runs [WORKFLOW] [--limit N]", "list runs, newest first"},
    {"status", s_cmd_status, "status RUN", "a run's tasks, attempts, checks and why tasks wait"},
    {"logs", s_cmd_logs, "logs RUN [TASK] [--attempt N] [--follow]", "a run's logs"},
    {"metrics", s_cmd_metrics, "metrics RUN|WORKFLOW [NAME]",
        "a run's metric series, or a workflow's last value per run"},
    {"agents", s_cmd_agents, "agents", "agents, their labels, slots and state"},
    {"cancel", s_cmd_cancel, "cancel RUN", "cancel a run"},
    {"validate", s_cmd_validate, "validate FILE", "check a workflow file without running it"},
    {"stats", s_cmd_stats, "stats", "coordinator counters (malformed messages, events)"},
    {NULL, NULL, NULL, NULL}
};

static void
s_usage (FILE *out)
{
    fprintf (out, "usage: qanat [--coordinator ENDPOINT] [--timeout SECONDS] COMMAND [ARGS]\n\n"
                  "Commands:\n");
    for (command_t *command = s_commands; command->name; command++)
        fprintf (out, "  %-46s %s\n", command->usage, command->summary);
    fprintf (out, "\nEvery query takes --json.  The coordinator is ENDPOINT, else $QANAT_COORDINATOR,\n"
                  "else " QN_DEFAULT_CLIENT_ENDPOINT ".  'qanat COMMAND --help' shows one command.\n");
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
        {"param", required_argument, 0, 'p'},
        {"attempt", required_argument, 0, 'a'},
        {"limit", required_argument, 0, 'l'},
        {"help", no_argument, 0, 'h'},
        {"version", no_argument, 0, 'V'},
        {0, 0, 0, 0}
    };
    bool help = false;
    int opt;
    //  Options may come before or after the command (GNU permutation).
    while ((opt = getopt_long (argc, argv, "fhjp:", long_options, NULL)) != -1) {
        switch (opt) {
            case 'c': options.endpoint = optarg; break;
            case 't': options.timeout_ms = (int) (atof (optarg) * 1000); break;
            case 'j': options.json = true; break;
            case 'f': options.follow = true; break;
            case 'p': zlistx_add_end (options.params, optarg); break;
            case 'a': options.attempt = (uint32_t) atoi (optarg); break;
            case 'l': options.limit = (uint32_t) atoi (optarg); break;
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
