/*  qn_cli_workflows - stored workflows: workflow publish|show|diff,
    workflows, rerun, and the ways of `run` that take no file: run NAME
    (a stored version, NAME@V for an older one) and run - (the text on
    stdin).

    The coordinator keeps every version of a workflow's text it was given
    (by run FILE or publish); a stored version runs by name from anywhere,
    and a rerun starts the version, params and no_cache of an earlier run
    again.  With --failed-only the coordinator takes the tasks that
    succeeded in that run as cached from it (StartRun.reuse_from_run).

    How run tells a NAME from a FILE: an existing path is a file; "-" is
    stdin; otherwise the word is NAME or NAME@V, and a word that is not a
    valid workflow name, or a name nothing is stored under, is "no such
    file or stored workflow" (exit 3).

    One of the files of the qn_cli class.
*/
#include "qn_cli.h"
#include "qn_json.h"
#include "qn_diff.h"
#include "qn_yaml.h"

//  ---------------------------------------------------------------------
//  Helpers

//  Splits NAME[@V] into name (malloc'd) and version (0: the newest);
//  false when it is not that form.
static bool
s_parse_ref (const char *text, char **name_p, uint32_t *version_p)
{
    *name_p = NULL;
    *version_p = 0;
    const char *at = strrchr (text, '@');
    size_t len = at? (size_t) (at - text): strlen (text);
    if (at) {
        char *end = NULL;
        errno = 0;
        unsigned long value = strtoul (at + 1, &end, 10);
        if (!isdigit ((unsigned char) at [1]) || *end || errno || value == 0
        ||  value > UINT32_MAX)
            return false;
        *version_p = (uint32_t) value;
    }
    char *name = strndup (text, len);
    if (!name || !qn_yaml_name_valid (name)) {
        free (name);
        return false;
    }
    *name_p = name;
    return true;
}

//  A version number as the user writes it: 3 or v3; 0 when it is not one
static uint32_t
s_parse_version (const char *text)
{
    if (*text == 'v')
        text++;
    char *end = NULL;
    errno = 0;
    unsigned long value = isdigit ((unsigned char) *text)? strtoul (text, &end, 10): 0;
    return end && !*end && !errno && value <= UINT32_MAX? (uint32_t) value: 0;
}

//  A stored version's text (0: the newest), or NULL after saying why
//  (missing when the coordinator has no such workflow or version) with
//  *rc_p the exit code.
static Qanat__Envelope *
s_get_workflow (qn_client_t *client, const char *name, uint32_t version, const char *missing,
                int *rc_p)
{
    Qanat__GetWorkflow get = QANAT__GET_WORKFLOW__INIT;
    get.name = (char *) name;
    get.version = version;
    Qanat__Request request = QANAT__REQUEST__INIT;
    request.body_case = QANAT__REQUEST__BODY_GET_WORKFLOW;
    request.get_workflow = &get;
    char *error = NULL;
    Qanat__Envelope *reply = qn_client_call (client, &request, &error);
    if (!reply && zsys_interrupted)
        cli_exit_interrupted ();
    //  The reply's code, never its words, says what failed
    int rc = reply? 0: cli_exit_code (client);
    bool not_found = rc == EXIT_NOT_FOUND;
    if (!reply)
        fprintf (stderr, "%s: %s\n", cli_program, not_found? missing: error? error: "request failed");
    *rc_p = rc;
    free (error);
    return reply;
}

//  Reads all of file; NULL when it cannot
static char *
s_read_all (FILE *file, size_t *size_p)
{
    size_t capacity = 4096, size = 0;
    char *data = (char *) malloc (capacity);
    while (data) {
        size_t got = fread (data + size, 1, capacity - size, file);
        size += got;
        if (got == 0)
            break;
        if (size == capacity) {
            char *bigger = (char *) realloc (data, capacity * 2);
            if (!bigger)
                free (data);
            data = bigger;
            capacity *= 2;
        }
    }
    if (data && ferror (file)) {
        free (data);
        data = NULL;
    }
    *size_p = size;
    return data;
}

//  Parses text as a workflow, or says why not (file:line:col errors)
static qn_workflow_t *
s_parse (const char *filename, const char *text, size_t size)
{
    char *error = NULL;
    qn_workflow_t *wf = qn_workflow_parse (filename, text, size, &error);
    if (!wf) {
        fprintf (stderr, "%s%s", error? error: "invalid workflow",
                 error && *error && error [strlen (error) - 1] == '\n'? "": "\n");
        free (error);
    }
    return wf;
}

//  ---------------------------------------------------------------------
//  Starting a run

void
cli_start_params_free (Qanat__StartRun *start)
{
    for (size_t p = 0; p < start->n_params; p++) {
        free (start->params [p]->name);
        free (start->params [p]->value);
        free (start->params [p]);
    }
    free (start->params);
    start->params = NULL;
    start->n_params = 0;
}

int
cli_start_params (qn_client_t *client, qn_workflow_t *wf, zlistx_t *pairs,
                  Qanat__StartRun *start)
{
    start->params = (Qanat__Param **) calloc (zlistx_size (pairs) + 1, sizeof (Qanat__Param *));
    for (const char *pair = (const char *) zlistx_first (pairs); pair;
         pair = (const char *) zlistx_next (pairs)) {
        const char *equals = strchr (pair, '=');
        if (!equals || equals == pair) {
            fprintf (stderr, "qanat: --param wants NAME=VALUE, got '%s'\n", pair);
            return EXIT_USAGE;
        }
        Qanat__Param *param = (Qanat__Param *) malloc (sizeof (Qanat__Param));
        qanat__param__init (param);
        param->name = strndup (pair, (size_t) (equals - pair));
        param->value = strdup (equals + 1);
        start->params [start->n_params++] = param;
        //  @PATH for an artifact parameter: put first, then referenced
        bool artifact = false;
        for (size_t p = 0; p < qn_workflow_param_count (wf); p++) {
            const qn_param_t *declared = qn_workflow_param (wf, p);
            artifact |= declared->type == QN_PARAM_ARTIFACT && streq (declared->name, param->name);
        }
        if (!artifact || param->value [0] != '@')
            continue;
        uint64_t bytes = 0;
        char *ref = cli_put_path (client, param->value + 1, &bytes);
        if (!ref)
            return cli_failure_code (client, EXIT_USAGE);
        fprintf (stderr, "qanat: put %s as %s (%llu bytes)\n", param->value + 1, ref,
                 (unsigned long long) bytes);
        free (param->value);
        param->value = ref;
    }
    return 0;
}

//  Sends start, says which run began (or prints it as JSON), and follows
//  it with --follow; returns the exit code.
static int
s_start (options_t *options, qn_client_t *client, Qanat__StartRun *start)
{
    Qanat__Request request = QANAT__REQUEST__INIT;
    request.body_case = QANAT__REQUEST__BODY_START_RUN;
    request.start_run = start;
    Qanat__Envelope *reply = cli_call (client, &request);
    Qanat__RunInfo *run = reply->reply->run;
    uint64_t run_id = run->run_id;
    if (options->json && !options->follow) {
        cli_json_print (cli_run_json (run));
    }
    else {
        printf ("run %llu of %s v%u started", (unsigned long long) run_id, run->workflow,
                run->version);
        size_t cached = 0;
        for (size_t t = 0; t < run->n_tasks; t++)
            cached += run->tasks [t]->cached_from == start->reuse_from_run
                   && start->reuse_from_run;
        if (start->reuse_from_run)
            printf (" (%s cached from run %llu)", cli_plural (cached, "task", "tasks"),
                    (unsigned long long) start->reuse_from_run);
        printf ("\n");
    }
    fflush (stdout);
    qn_msg_free (&reply);
    return options->follow? cli_follow_run (client, run_id): 0;
}

//  run - : the workflow's text from stdin, stored as a version as run
//  FILE would, with no directory around it
static int
s_run_stdin (options_t *options)
{
    size_t size = 0;
    char *source = s_read_all (stdin, &size);
    if (!source) {
        fprintf (stderr, "qanat: cannot read the workflow from stdin\n");
        return EXIT_USAGE;
    }
    qn_workflow_t *wf = s_parse ("<stdin>", source, size);
    if (!wf) {
        free (source);
        return EXIT_USAGE;
    }
    qn_client_t *client = cli_connect (options);
    Qanat__SubmitWorkflow submit = QANAT__SUBMIT_WORKFLOW__INIT;
    submit.filename = (char *) "<stdin>";
    submit.source.data = (uint8_t *) source;
    submit.source.len = size;
    Qanat__StartRun start = QANAT__START_RUN__INIT;
    start.workflow = &submit;
    start.no_cache = options->no_cache;
    int rc = cli_start_params (client, wf, options->params, &start);
    if (rc == 0)
        rc = s_start (options, client, &start);
    cli_start_params_free (&start);
    qn_workflow_destroy (&wf);
    free (source);
    qn_client_destroy (&client);
    return rc;
}

int
cli_run_stored (options_t *options, const char *word)
{
    if (streq (word, "-"))
        return s_run_stdin (options);
    char *name = NULL;
    uint32_t version = 0;
    if (!s_parse_ref (word, &name, &version)) {
        fprintf (stderr, "qanat: no such file or stored workflow: %s\n", word);
        return EXIT_NOT_FOUND;
    }
    qn_client_t *client = cli_connect (options);
    char *missing = version? zsys_sprintf ("no such file or stored workflow: %s (no version %u "
                                           "of %s)", word, version, name)
                           : zsys_sprintf ("no such file or stored workflow: %s", word);
    int rc = 0;
    Qanat__Envelope *reply = s_get_workflow (client, name, version, missing, &rc);
    free (missing);
    Qanat__WorkflowSource *source = reply? reply->reply->workflow_source: NULL;
    //  Parsed here for its params' types (an artifact takes @PATH)
    qn_workflow_t *wf = source? s_parse (source->filename, (const char *) source->source.data,
                                         source->source.len): NULL;
    if (source && !wf)
        rc = EXIT_USAGE;
    if (wf) {
        Qanat__StartRun start = QANAT__START_RUN__INIT;
        start.workflow_name = name;
        start.workflow_version = source->version;   //  what was read, even if one is added now
        start.no_cache = options->no_cache;
        rc = cli_start_params (client, wf, options->params, &start);
        if (rc == 0)
            rc = s_start (options, client, &start);
        cli_start_params_free (&start);
        qn_workflow_destroy (&wf);
    }
    qn_msg_free (&reply);
    qn_client_destroy (&client);
    free (name);
    return rc;
}

//  ---------------------------------------------------------------------
//  rerun

int
cli_cmd_rerun (options_t *options, int argc, char **argv)
{
    if (argc != 1) {
        return cli_usage_error ("rerun");
    }
    uint64_t run_id = cli_parse_run_id (argv [0]);
    qn_client_t *client = cli_connect (options);
    Qanat__Envelope *old = cli_get_run (client, run_id);
    Qanat__RunInfo *run = old->reply->run;
    Qanat__StartRun start = QANAT__START_RUN__INIT;
    start.workflow_name = run->workflow;
    start.workflow_version = run->version;
    start.no_cache = run->no_cache || options->no_cache;
    start.reuse_from_run = options->failed_only? run_id: 0;
    //  The same code, by its hash (the coordinator still holds it: the old
    //  run references it)
    char *code = run->code && *run->code? zsys_sprintf ("dir:%s", run->code): NULL;
    start.code = code? code: (char *) "";
    //  The same params, by name and value (artifacts by their reference)
    start.params = (Qanat__Param **) calloc (run->n_params + 1, sizeof (Qanat__Param *));
    Qanat__Param *params = (Qanat__Param *) calloc (run->n_params + 1, sizeof (Qanat__Param));
    for (size_t p = 0; p < run->n_params; p++) {
        qanat__param__init (&params [p]);
        params [p].name = run->params [p]->name;
        params [p].value = run->params [p]->value;
        start.params [start.n_params++] = &params [p];
    }
    int rc = s_start (options, client, &start);
    zstr_free (&code);
    free (params);
    free (start.params);
    qn_msg_free (&old);
    qn_client_destroy (&client);
    return rc;
}

//  ---------------------------------------------------------------------
//  workflows, workflow publish|show|diff

int
cli_cmd_workflows (options_t *options, int argc, char **argv)
{
    (void) argv;
    if (argc != 0) {
        return cli_usage_error ("workflows");
    }
    Qanat__ListWorkflows list = QANAT__LIST_WORKFLOWS__INIT;
    Qanat__Request request = QANAT__REQUEST__INIT;
    request.body_case = QANAT__REQUEST__BODY_LIST_WORKFLOWS;
    request.list_workflows = &list;
    qn_client_t *client = cli_connect (options);
    Qanat__Envelope *reply = cli_call (client, &request);
    Qanat__WorkflowList *workflows = reply->reply->workflows;
    json_t *items = json_array ();
    cli_table_t *table = cli_table_new ("WORKFLOW LATEST CREATED RUNS");
    for (size_t i = 0; i < workflows->n_workflows; i++) {
        Qanat__WorkflowSummary *summary = workflows->workflows [i];
        json_array_append_new (items, json_pack ("{s:o,s:I,s:I,s:I}",
            "name", cli_json_text (summary->name), "latest", (json_int_t) summary->latest,
            "created_us", (json_int_t) summary->created_us, "runs", (json_int_t) summary->runs));
        char latest [16], runs [16];
        snprintf (latest, sizeof latest, "v%u", summary->latest);
        snprintf (runs, sizeof runs, "%u", summary->runs);
        cli_table_add (table, summary->name, latest,
                       summary->created_us? cli_time_text (summary->created_us): "-", runs);
    }
    if (options->json)
        cli_json_print (items);
    else {
        json_decref (items);
        cli_table_print (table, stdout);
    }
    cli_table_destroy (&table);
    qn_msg_free (&reply);
    qn_client_destroy (&client);
    return 0;
}

static int
s_publish (options_t *options, const char *path)
{
    FILE *file = fopen (path, "rb");
    size_t size = 0;
    char *source = file? s_read_all (file, &size): NULL;
    if (file)
        fclose (file);
    if (!source) {
        fprintf (stderr, "qanat: cannot read %s: %s\n", path, file? "read error": strerror (errno));
        return EXIT_USAGE;
    }
    //  Checked here first for file:line:col errors without a round trip
    qn_workflow_t *wf = s_parse (path, source, size);
    int rc = EXIT_USAGE;
    qn_client_t *client = wf? cli_connect (options): NULL;
    //  The version keeps its code, as run FILE's does: run NAME gets it
    char *code = NULL;
    if (wf)
        rc = cli_pack_code (client, path, wf, options->code_max, &code);
    qn_workflow_destroy (&wf);
    if (client && rc == 0) {
        Qanat__SubmitWorkflow submit = QANAT__SUBMIT_WORKFLOW__INIT;
        submit.filename = (char *) path;
        submit.source.data = (uint8_t *) source;
        submit.source.len = size;
        submit.code = code? code: (char *) "";
        Qanat__Request request = QANAT__REQUEST__INIT;
        request.body_case = QANAT__REQUEST__BODY_SUBMIT;
        request.submit = &submit;
        Qanat__Envelope *reply = cli_call (client, &request);
        Qanat__WorkflowVersion *version = reply->reply->workflow;
        if (options->json) {
            cli_json_print (json_pack ("{s:o,s:I,s:b,s:o}", "name", cli_json_text (version->name),
                                       "version", (json_int_t) version->version,
                                       "created", version->created,
                                       "code", cli_json_text (version->code)));
        }
        else
            printf ("%s v%u (%s)\n", version->name, version->version,
                    version->created? "new": "unchanged");
        qn_msg_free (&reply);
    }
    qn_client_destroy (&client);
    free (code);
    free (source);
    return rc;
}

static int
s_show (options_t *options, const char *ref)
{
    char *name = NULL;
    uint32_t version = 0;
    if (!s_parse_ref (ref, &name, &version)) {
        fprintf (stderr, "qanat: '%s' is not NAME or NAME@VERSION\n", ref);
        return EXIT_USAGE;
    }
    qn_client_t *client = cli_connect (options);
    char *missing = zsys_sprintf ("no stored workflow %s", ref);
    int rc = 0;
    Qanat__Envelope *reply = s_get_workflow (client, name, version, missing, &rc);
    free (missing);
    Qanat__WorkflowSource *source = reply? reply->reply->workflow_source: NULL;
    if (source && options->json) {
        json_t *text = qn_json_text ((const char *) source->source.data, source->source.len);
        cli_json_print (json_pack ("{s:o,s:I,s:I,s:I,s:o,s:o,s:o}", "name", cli_json_text (source->name),
                                   "version", (json_int_t) source->version,
                                   "latest", (json_int_t) source->latest,
                                   "created_us", (json_int_t) source->created_us,
                                   "filename", cli_json_text (source->filename),
                                   "code", cli_json_text (source->code),
                                   "source", text? text: json_string ("")));
    }
    else
    if (source)
        fwrite (source->source.data, 1, source->source.len, stdout);
    qn_msg_free (&reply);
    qn_client_destroy (&client);
    free (name);
    return rc;
}

static int
s_diff (options_t *options, const char *name, const char *from_text, const char *to_text)
{
    uint32_t versions [2] = { s_parse_version (from_text), s_parse_version (to_text) };
    if (!qn_yaml_name_valid (name) || !versions [0] || !versions [1]) {
        fprintf (stderr, "%s: workflow diff takes a workflow's name and two versions (1, 2, ...)\n",
                 cli_program);
        return cli_usage_error ("workflow");
    }
    qn_client_t *client = cli_connect (options);
    Qanat__Envelope *replies [2] = { NULL, NULL };
    int rc = 0;
    for (int i = 0; i < 2 && rc == 0; i++) {
        char *missing = zsys_sprintf ("no stored workflow %s@%u", name, versions [i]);
        replies [i] = s_get_workflow (client, name, versions [i], missing, &rc);
        free (missing);
    }
    if (rc == 0) {
        Qanat__WorkflowSource *a = replies [0]->reply->workflow_source;
        Qanat__WorkflowSource *b = replies [1]->reply->workflow_source;
        char *labels [2] = { zsys_sprintf ("%s v%u", name, a->version),
                             zsys_sprintf ("%s v%u", name, b->version) };
        char *diff = qn_diff_unified ((const char *) a->source.data, a->source.len,
                                      (const char *) b->source.data, b->source.len,
                                      labels [0], labels [1], 3);
        if (!diff) {
            fprintf (stderr, "qanat: out of memory\n");
            rc = EXIT_COORDINATOR;
        }
        else
        if (options->json) {
            cli_json_print (json_pack ("{s:o,s:I,s:I,s:o}", "name", cli_json_text (name),
                                       "from", (json_int_t) a->version, "to", (json_int_t) b->version,
                                       "diff", cli_json_text (diff)));
        }
        else
            fputs (diff, stdout);
        free (diff);
        free (labels [0]);
        free (labels [1]);
    }
    qn_msg_free (&replies [0]);
    qn_msg_free (&replies [1]);
    qn_client_destroy (&client);
    return rc;
}

int
cli_cmd_workflow (options_t *options, int argc, char **argv)
{
    if (argc == 2 && streq (argv [0], "publish"))
        return s_publish (options, argv [1]);
    if (argc == 2 && streq (argv [0], "show"))
        return s_show (options, argv [1]);
    if (argc == 4 && streq (argv [0], "diff"))
        return s_diff (options, argv [1], argv [2], argv [3]);
    return cli_usage_error ("workflow");
}
