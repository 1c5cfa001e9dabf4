/*  qn_cli_runs - starting runs and looking at them: run, runs, status,
    cancel and validate, and a run printed as a table or as JSON (which
    run --follow ends with too, see qn_cli_follow.c).

    One of the files of the qn_cli class.
*/
#include "qn_cli.h"

//  ---------------------------------------------------------------------
//  Printing runs

//  An attempt that took an earlier run's outputs (cache: true): it ran
//  nowhere, and its task's cached_from names that run.
bool
cli_attempt_cached (const Qanat__AttemptInfo *attempt)
{
    return attempt->end && streq (attempt->end, "cached");
}

void
cli_print_run_json (FILE *out, Qanat__RunInfo *run)
{
    fprintf (out, "{\"run_id\":%llu,\"workflow\":", (unsigned long long) run->run_id);
    cli_json_str (out, run->workflow);
    fprintf (out, ",\"version\":%u,\"status\":", run->version);
    cli_json_str (out, qn_run_status_name (run->status));
    fprintf (out, ",\"created_us\":%lld,\"finished_us\":%lld,\"params\":",
             (long long) run->created_us, (long long) run->finished_us);
    cli_json_params (out, run->params, run->n_params);
    fputs (",\"code\":", out);
    cli_json_str (out, run->code? run->code: "");
    fputs (",\"tasks\":[", out);
    for (size_t t = 0; t < run->n_tasks; t++) {
        Qanat__TaskInfo *task = run->tasks [t];
        if (t)
            fputc (',', out);
        fputs ("{\"name\":", out);
        cli_json_str (out, task->name);
        fputs (",\"status\":", out);
        cli_json_str (out, qn_task_status_name (task->status));
        fputs (",\"needs\":[", out);
        for (size_t n = 0; n < task->n_needs; n++) {
            if (n)
                fputc (',', out);
            cli_json_str (out, task->needs [n]);
        }
        fputs ("],\"on\":", out);
        cli_json_labels (out, task->selector, task->n_selector);
        fputs (",\"waiting_reason\":", out);
        cli_json_str (out, task->waiting_reason);
        fputs (",\"attempts\":[", out);
        for (size_t a = 0; a < task->n_attempts; a++) {
            Qanat__AttemptInfo *attempt = task->attempts [a];
            if (a)
                fputc (',', out);
            fprintf (out, "{\"attempt\":%u,\"agent\":", attempt->attempt);
            cli_json_str (out, attempt->agent);
            fprintf (out, ",\"started_us\":%lld,\"finished_us\":%lld,\"finished\":%s,"
                     "\"exit_code\":%d,\"signal\":%d,\"reason\":",
                     (long long) attempt->started_us, (long long) attempt->finished_us,
                     attempt->finished? "true": "false", attempt->exit_code, attempt->signal);
            cli_json_str (out, attempt->reason);
            fputs (",\"end\":", out);
            cli_json_str (out, attempt->end);
            fprintf (out, ",\"pid\":%lld,\"last_seq\":%llu", (long long) attempt->pid,
                     (unsigned long long) attempt->last_seq);
            fprintf (out, ",\"backend\":");
            cli_json_str (out, attempt->backend);
            fprintf (out, ",\"engine_job_id\":");
            cli_json_str (out, attempt->engine_job_id);
            fprintf (out, ",\"environment\":");
            cli_json_str (out, attempt->environment);
            fprintf (out, ",\"host\":");
            cli_json_str (out, attempt->host);
            fprintf (out, ",\"cached_from\":%llu", (unsigned long long)
                     (cli_attempt_cached (attempt)? task->cached_from: 0));
            fputs (",\"stack_trace\":", out);
            cli_json_str (out, attempt->stack_trace);
            fputc ('}', out);
        }
        fputs ("],\"checks\":[", out);
        for (size_t c = 0; c < task->n_checks; c++) {
            Qanat__CheckResult *check = task->checks [c];
            if (c)
                fputc (',', out);
            fputs ("{\"expr\":", out);
            cli_json_str (out, check->expr);
            fputs (",\"severity\":", out);
            cli_json_str (out, check->severity);
            fprintf (out, ",\"passed\":%s,\"detail\":", check->passed? "true": "false");
            cli_json_str (out, check->detail);
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

void
cli_print_run (Qanat__RunInfo *run)
{
    printf ("run %llu  %s v%u  %s\n", (unsigned long long) run->run_id, run->workflow,
            run->version, qn_run_status_name (run->status));
    printf ("started %s", cli_time_text (run->created_us));
    printf ("  took %s\n", cli_duration_text (run->created_us, run->finished_us));
    if (run->code && *run->code)
        printf ("code: %.12s\n", run->code);
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
                attempt? cli_duration_text (attempt->started_us, attempt->finished_us): "-", note);
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

//  Loads a workflow file, or says why it is not valid (file:line:col
//  errors, with one newline at the end) and returns NULL.
static qn_workflow_t *
s_load_workflow (const char *path)
{
    char *error = NULL;
    qn_workflow_t *wf = qn_workflow_load (path, &error);
    if (!wf) {
        fprintf (stderr, "%s%s", error? error: "invalid workflow",
                 error && error [strlen (error) - 1] == '\n'? "": "\n");
        free (error);
    }
    return wf;
}

int
cli_cmd_run (options_t *options, int argc, char **argv)
{
    if (argc != 1) {
        return cli_usage_error ("run");
    }
    //  No such path: stdin, or a stored workflow's name (qn_cli_workflows.c)
    if (streq (argv [0], "-") || access (argv [0], F_OK) != 0)
        return cli_run_stored (options, argv [0]);
    //  Validate here first: the user gets file:line:col errors without a
    //  round trip, and the coordinator checks again anyway.
    qn_workflow_t *wf = s_load_workflow (argv [0]);
    if (!wf)
        return EXIT_USAGE;
    size_t size = 0;
    char *source = s_read_file (argv [0], &size);
    if (!source) {
        fprintf (stderr, "qanat: cannot read %s: %s\n", argv [0], strerror (errno));
        qn_workflow_destroy (&wf);
        return EXIT_USAGE;
    }
    qn_client_t *client = cli_connect (options);
    //  The folder the workflow lives in travels with it
    char *code = NULL;
    int code_rc = cli_pack_code (client, argv [0], wf, options->code_max, &code);
    if (code_rc) {
        qn_client_destroy (&client);
        free (source);
        qn_workflow_destroy (&wf);
        return code_rc;
    }
    Qanat__SubmitWorkflow submit = QANAT__SUBMIT_WORKFLOW__INIT;
    submit.filename = argv [0];
    submit.source.data = (uint8_t *) source;
    submit.source.len = size;
    Qanat__StartRun start = QANAT__START_RUN__INIT;
    start.workflow = &submit;
    start.no_cache = options->no_cache;
    start.code = code? code: (char *) "";
    int params_rc = cli_start_params (client, wf, options->params, &start);
    if (params_rc) {
        cli_start_params_free (&start);
        qn_client_destroy (&client);
        free (source);
        free (code);
        qn_workflow_destroy (&wf);
        return params_rc;
    }
    qn_workflow_destroy (&wf);
    Qanat__Request request = QANAT__REQUEST__INIT;
    request.body_case = QANAT__REQUEST__BODY_START_RUN;
    request.start_run = &start;
    Qanat__Envelope *reply = cli_call (client, &request);
    cli_start_params_free (&start);
    free (source);
    free (code);
    Qanat__RunInfo *run = reply->reply->run;
    uint64_t run_id = run->run_id;
    if (options->json && !options->follow) {
        cli_print_run_json (stdout, run);
        printf ("\n");
    }
    else
        printf ("run %llu of %s v%u started\n", (unsigned long long) run_id, run->workflow,
                run->version);
    fflush (stdout);
    qn_msg_free (&reply);
    int rc = 0;
    if (options->follow)
        rc = cli_follow_run (client, run_id);
    qn_client_destroy (&client);
    return rc;
}

int
cli_cmd_validate (options_t *options, int argc, char **argv)
{
    if (argc != 1) {
        return cli_usage_error ("validate");
    }
    qn_workflow_t *wf = s_load_workflow (argv [0]);
    if (!wf)
        return EXIT_USAGE;
    if (options->json)
        printf ("{\"valid\":true,\"name\":\"%s\",\"tasks\":%zu}\n", qn_workflow_name (wf),
                qn_workflow_task_count (wf));
    else
        printf ("%s: ok, workflow '%s' with %zu tasks\n", argv [0], qn_workflow_name (wf),
                qn_workflow_task_count (wf));
    qn_workflow_destroy (&wf);
    return 0;
}

int
cli_cmd_status (options_t *options, int argc, char **argv)
{
    if (argc != 1) {
        return cli_usage_error ("status");
    }
    uint64_t run_id = cli_parse_run_id (argv [0]);
    qn_client_t *client = cli_connect (options);
    Qanat__Envelope *reply = cli_get_run (client, run_id);
    if (options->json) {
        cli_print_run_json (stdout, reply->reply->run);
        printf ("\n");
    }
    else {
        cli_print_run (reply->reply->run);
        cli_notify_failures (client, run_id);
    }
    qn_msg_free (&reply);
    qn_client_destroy (&client);
    return 0;
}

int
cli_cmd_runs (options_t *options, int argc, char **argv)
{
    if (argc > 1) {
        return cli_usage_error ("runs");
    }
    Qanat__ListRuns list = QANAT__LIST_RUNS__INIT;
    list.workflow = argc? argv [0]: "";
    list.limit = options->limit;
    if (options->status) {
        if (qn_run_status_parse (options->status, &list.status)) {
            fprintf (stderr, "%s: --status wants queued, running, succeeded, "
                     "succeeded_with_warnings, failed or canceled, not '%s'\n", cli_program,
                     options->status);
            return EXIT_USAGE;
        }
        list.has_status = true;
    }
    if (options->owner && !*options->owner) {
        fprintf (stderr, "%s: --owner wants a user's name\n", cli_program);
        return EXIT_USAGE;
    }
    list.owner = (char *) (options->owner? options->owner: "");
    if (options->since)
        list.created_after_us = cli_parse_since ("--since", options->since);
    Qanat__Request request = QANAT__REQUEST__INIT;
    request.body_case = QANAT__REQUEST__BODY_LIST_RUNS;
    request.list_runs = &list;
    qn_client_t *client = cli_connect (options);
    Qanat__Envelope *reply = cli_call (client, &request);
    Qanat__RunList *runs = reply->reply->runs;
    if (options->json) {
        printf ("[");
        for (size_t i = 0; i < runs->n_runs; i++) {
            if (i)
                printf (",");
            cli_print_run_json (stdout, runs->runs [i]);
        }
        printf ("]\n");
    }
    else {
        //  -o wide: with which params
        printf ("%-6s %-24s %-4s %-24s %-16s %-20s %s%s\n", "RUN", "WORKFLOW", "VER", "STATUS",
                "OWNER", "STARTED", options->wide? "TOOK     ": "TOOK",
                options->wide? " PARAMS": "");
        for (size_t i = 0; i < runs->n_runs; i++) {
            Qanat__RunInfo *run = runs->runs [i];
            printf ("%-6llu %-24s %-4u %-24s %-16s ", (unsigned long long) run->run_id,
                    run->workflow, run->version, qn_run_status_name (run->status),
                    run->owner && *run->owner? run->owner: "-");
            printf ("%-20s ", cli_time_text (run->created_us));
            printf (options->wide? "%-9s": "%s", cli_duration_text (run->created_us, run->finished_us));
            for (size_t p = 0; options->wide && p < run->n_params; p++)
                printf (" %s=%s", run->params [p]->name, run->params [p]->value);
            printf ("\n");
        }
    }
    qn_msg_free (&reply);
    qn_client_destroy (&client);
    return 0;
}

int
cli_cmd_cancel (options_t *options, int argc, char **argv)
{
    if (argc < 1 || argc > 2) {
        return cli_usage_error ("cancel");
    }
    Qanat__CancelRun cancel = QANAT__CANCEL_RUN__INIT;
    cancel.run_id = cli_parse_run_id (argv [0]);
    cancel.task = argc > 1? argv [1]: "";
    Qanat__Request request = QANAT__REQUEST__INIT;
    request.body_case = QANAT__REQUEST__BODY_CANCEL_RUN;
    request.cancel_run = &cancel;
    qn_client_t *client = cli_connect (options);
    Qanat__Envelope *reply = cli_call (client, &request);
    if (options->json) {
        cli_print_run_json (stdout, reply->reply->run);
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
