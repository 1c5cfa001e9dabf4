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

static json_t *
s_attempt_json (Qanat__TaskInfo *task, Qanat__AttemptInfo *attempt)
{
    return json_pack ("{s:I,s:o,s:I,s:I,s:b,s:i,s:i,s:o,s:o,s:I,s:I,s:o,s:o,s:o,s:o,s:o,s:I,s:o}",
        "attempt", (json_int_t) attempt->attempt,
        "agent", cli_json_text (attempt->agent),
        "started_us", (json_int_t) attempt->started_us,
        "finished_us", (json_int_t) attempt->finished_us,
        "finished", attempt->finished,
        "exit_code", attempt->exit_code,
        "signal", attempt->signal,
        "reason", cli_json_text (attempt->reason),
        "end", cli_json_text (attempt->end),
        "pid", (json_int_t) attempt->pid,
        "last_seq", (json_int_t) attempt->last_seq,
        "backend", cli_json_text (attempt->backend),
        "engine_job_id", cli_json_text (attempt->engine_job_id),
        "engine_url", cli_json_text (attempt->engine_url),
        "environment", cli_json_text (attempt->environment),
        "host", cli_json_text (attempt->host),
        "cached_from", (json_int_t) (cli_attempt_cached (attempt)? task->cached_from: 0),
        "stack_trace", cli_json_text (attempt->stack_trace));
}

static json_t *
s_task_json (Qanat__TaskInfo *task)
{
    json_t *needs = json_array ();
    for (size_t n = 0; n < task->n_needs; n++)
        json_array_append_new (needs, cli_json_text (task->needs [n]));
    json_t *attempts = json_array ();
    for (size_t a = 0; a < task->n_attempts; a++)
        json_array_append_new (attempts, s_attempt_json (task, task->attempts [a]));
    json_t *checks = json_array ();
    for (size_t c = 0; c < task->n_checks; c++) {
        Qanat__CheckResult *check = task->checks [c];
        json_array_append_new (checks, json_pack ("{s:o,s:o,s:b,s:o}",
            "expr", cli_json_text (check->expr), "severity", cli_json_text (check->severity),
            "passed", check->passed, "detail", cli_json_text (check->detail)));
    }
    return json_pack ("{s:o,s:o,s:o,s:o,s:o,s:I,s:o,s:o}",
        "name", cli_json_text (task->name),
        "status", json_string (qn_task_status_name (task->status)),
        "needs", needs,
        "on", cli_json_labels (task->selector, task->n_selector),
        "waiting_reason", cli_json_text (task->waiting_reason),
        "queued_us", (json_int_t) task->queued_us,
        "attempts", attempts,
        "checks", checks);
}

json_t *
cli_run_json (Qanat__RunInfo *run)
{
    json_t *tasks = json_array ();
    for (size_t t = 0; t < run->n_tasks; t++)
        json_array_append_new (tasks, s_task_json (run->tasks [t]));
    return json_pack ("{s:I,s:o,s:I,s:s,s:o,s:I,s:I,s:o,s:o,s:o}",
        "run_id", (json_int_t) run->run_id,
        "workflow", cli_json_text (run->workflow),
        "version", (json_int_t) run->version,
        "status", qn_run_status_name (run->status),
        "waiting_reason", cli_json_text (run->waiting_reason),
        "created_us", (json_int_t) run->created_us,
        "finished_us", (json_int_t) run->finished_us,
        "params", cli_json_params (run->params, run->n_params),
        "code", cli_json_text (run->code),
        "tasks", tasks);
}

//  The wait before a retry: until it started, or until retry_at_us
//  (the coordinator's plan) while it has not
static double
s_retry_wait_s (const Qanat__TaskInfo *task, size_t failed)
{
    const Qanat__AttemptInfo *attempt = task->attempts [failed];
    int64_t next_us = failed + 1 < task->n_attempts? task->attempts [failed + 1]->started_us
                    : task->retry_at_us;
    if (next_us <= 0 || attempt->finished_us <= 0 || next_us < attempt->finished_us)
        return -1;
    return (double) (next_us - attempt->finished_us) / 1e6;
}

char *
cli_retry_text (const Qanat__TaskInfo *task, size_t failed, unsigned retries)
{
    double wait = s_retry_wait_s (task, failed);
    //  The total comes from the coordinator's "retry N of R ..." note
    unsigned retry = 0;
    const char *reason = task->waiting_reason? task->waiting_reason: "";
    if (sscanf (reason, "retry %u of %u", &retry, &retries) != 2)
        retry = 0;
    bool counted = retries > 0;
    char total [32] = "";
    if (counted)
        snprintf (total, sizeof total, " of %u", retries + 1);
    return wait < 0? zsys_sprintf ("retrying (attempt %zu%s)", failed + 2, total)
                   : zsys_sprintf ("retrying in %.1fs (attempt %zu%s)", wait, failed + 2, total);
}

char *
cli_task_note (const Qanat__TaskInfo *task, const Qanat__AttemptInfo *attempt)
{
    const char *reason = task->waiting_reason;
    if (reason && *reason) {
        //  A queued retry counts down: "retry 1 of 3 in 4.2s, after: ..."
        //  with the time left now, not when the coordinator wrote it
        const char *in = strstr (reason, " in ");
        const char *after = strstr (reason, ", after: ");
        if (task->status == QANAT__TASK_STATUS__TASK_QUEUED && task->retry_at_us > 0
        &&  strncmp (reason, "retry ", 6) == 0 && in && after && in < after) {
            double left = (double) (task->retry_at_us - qn_now_us ()) / 1e6;
            return left > 0
                ? zsys_sprintf ("%.*s in %.1fs%s", (int) (in - reason), reason, left, after)
                : zsys_sprintf ("%.*s due now%s", (int) (in - reason), reason, after);
        }
        return strdup (reason);
    }
    return strdup (attempt && attempt->reason? attempt->reason: "");
}

static void
s_note_stack_trace (cli_table_t *table, const char *trace)
{
    if (!trace || !*trace)
        return;
    cli_table_note (table, "    stack trace:");
    const char *line = trace;
    while (*line) {
        const char *end = strchr (line, '\n');
        size_t len = end? (size_t) (end - line): strlen (line);
        char *text = zsys_sprintf ("      %.*s", (int) len, line);
        cli_table_note (table, text);
        free (text);
        line += len + (end? 1: 0);
    }
}

//  The notes under a task's row: the engine's page for its attempt, its
//  checks, the stack trace of its failure, its earlier attempts
static void
s_note_task (cli_table_t *table, Qanat__TaskInfo *task, Qanat__AttemptInfo *attempt)
{
    if (attempt && attempt->engine_url && *attempt->engine_url) {
        char *text = zsys_sprintf ("    engine page: %s", attempt->engine_url);
        cli_table_note (table, text);
        free (text);
    }
    for (size_t c = 0; c < task->n_checks; c++) {
        Qanat__CheckResult *check = task->checks [c];
        char *text = zsys_sprintf ("    check %s %s (%s): %s",
                                   cli_status_paint (check->passed? "passed": "FAILED"),
                                   check->expr, check->severity, check->detail);
        cli_table_note (table, text);
        free (text);
    }
    if (task->status == QANAT__TASK_STATUS__TASK_FAILED && attempt)
        s_note_stack_trace (table, attempt->stack_trace);
    for (size_t a = 0; a + 1 < task->n_attempts; a++) {
        char *text = zsys_sprintf ("    earlier attempt %u on %s: %s", task->attempts [a]->attempt,
                                   task->attempts [a]->agent, task->attempts [a]->reason);
        cli_table_note (table, text);
        free (text);
    }
}

//  Where an attempt ran: the engine and its own id for it
static void
s_job_text (Qanat__AttemptInfo *attempt, char *text, size_t size)
{
    snprintf (text, size, "-");
    if (attempt && attempt->engine_job_id && *attempt->engine_job_id)
        snprintf (text, size, "%s %s", attempt->backend && *attempt->backend? attempt->backend: "job",
                  attempt->engine_job_id);
    else
    if (attempt && attempt->pid > 0)
        snprintf (text, size, "%s pid %lld",
                  attempt->backend && *attempt->backend? attempt->backend: "local",
                  (long long) attempt->pid);
}

void
cli_print_run (Qanat__RunInfo *run)
{
    printf ("run %llu  %s v%u  %s\n", (unsigned long long) run->run_id, run->workflow,
            run->version, cli_status_paint (qn_run_status_name (run->status)));
    if (run->waiting_reason && *run->waiting_reason)
        printf ("%s\n", run->waiting_reason);
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
    printf ("\n");
    cli_table_t *table = cli_table_new ("TASK STATUS ATTEMPT AGENT ENV JOB TIME NOTE");
    for (size_t t = 0; t < run->n_tasks; t++) {
        Qanat__TaskInfo *task = run->tasks [t];
        Qanat__AttemptInfo *attempt = task->n_attempts? task->attempts [task->n_attempts - 1]: NULL;
        char *note = cli_task_note (task, attempt);
        char attempt_text [16] = "-";
        if (attempt)
            snprintf (attempt_text, sizeof attempt_text, "%u", attempt->attempt);
        char job_text [160];
        s_job_text (attempt, job_text, sizeof job_text);
        char *took = strdup (attempt? cli_duration_text (attempt->started_us, attempt->finished_us): "-");
        cli_table_add (table, task->name, cli_status_paint (qn_task_status_name (task->status)),
                       attempt_text, attempt? attempt->agent: NULL,
                       attempt? attempt->environment: NULL, job_text, took, note);
        free (took);
        free (note);
        s_note_task (table, task, attempt);
    }
    cli_table_print (table, stdout);
    cli_table_destroy (&table);
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
        cli_json_print (cli_run_json (run));
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
        cli_json_print (json_pack ("{s:b,s:o,s:I}", "valid", 1,
                                   "name", cli_json_text (qn_workflow_name (wf)),
                                   "tasks", (json_int_t) qn_workflow_task_count (wf)));
    else
        printf ("%s: ok, workflow '%s' with %s\n", argv [0], qn_workflow_name (wf),
                cli_plural (qn_workflow_task_count (wf), "task", "tasks"));
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
        cli_json_print (cli_run_json (reply->reply->run));
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
        json_t *list = json_array ();
        for (size_t i = 0; i < runs->n_runs; i++)
            json_array_append_new (list, cli_run_json (runs->runs [i]));
        cli_json_print (list);
    }
    else {
        //  -o wide: with which params
        cli_table_t *table = cli_table_new (options->wide
            ? "RUN WORKFLOW VER STATUS OWNER STARTED TOOK PARAMS"
            : "RUN WORKFLOW VER STATUS OWNER STARTED TOOK");
        for (size_t i = 0; i < runs->n_runs; i++) {
            Qanat__RunInfo *run = runs->runs [i];
            char id [24], version [16];
            snprintf (id, sizeof id, "%llu", (unsigned long long) run->run_id);
            snprintf (version, sizeof version, "%u", run->version);
            char *started = strdup (cli_time_text (run->created_us));
            char *took = strdup (cli_duration_text (run->created_us, run->finished_us));
            char *params = strdup ("");
            for (size_t p = 0; options->wide && p < run->n_params; p++) {
                char *longer = zsys_sprintf ("%s%s%s=%s", params, p? " ": "",
                                             run->params [p]->name, run->params [p]->value);
                free (params);
                params = longer;
            }
            //  A run its workflow's concurrency holds back says so
            bool held = run->waiting_reason && *run->waiting_reason
                     && run->status == QANAT__RUN_STATUS__RUN_QUEUED;
            cli_table_add (table, id, run->workflow, version,
                           held? "waiting": cli_status_paint (qn_run_status_name (run->status)),
                           run->owner,
                           started, took, params);
            free (started);
            free (took);
            free (params);
        }
        cli_table_print (table, stdout);
        cli_table_destroy (&table);
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
        cli_json_print (cli_run_json (reply->reply->run));
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
