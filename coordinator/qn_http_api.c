/*  qn_http_api - an HTTP request as the engine Request the CLI would send
    (see qn_http_api.h).  Pure: no sockets, no engine, no globals.

    One of the files of the qn_http class.

    Everything here is hostile input: paths are matched segment by
    segment against a fixed table (a run id is decimal digits only),
    bodies are JSON objects whose every key must be known and of the
    right type, numbers in query arguments are whole and in range.  A
    refusal names the field at fault.
*/
#include "qn_http_api.h"
#include "qn_json.h"
#include "qn_blobstore.h"

#define SEGMENTS_MAX    8
#define LIMIT_MAX       1000

typedef struct {
    char *part [SEGMENTS_MAX];
    size_t count;
    char *copy;
} s_path_t;

//  Everything a builder needs
typedef struct {
    s_path_t *path;
    qn_http_query_fn *query;
    void *query_arg;
    json_t *body;                       //  the parsed body, or NULL
    Qanat__Request *request;
    qn_http_route_t *route;
    json_t *error;                      //  set by a builder that refuses
    int error_status;
} s_ctx_t;

typedef int (s_build_fn) (s_ctx_t *ctx);

//  One route: method, path pattern (segments after /api/v1; '#' = a run
//  id, '*' = a name), what it is, and its builder
typedef struct {
    const char *method;
    const char *pattern;
    qn_http_route_id_t id;
    int status;
    bool stream;
    bool body;                          //  reads a JSON body
    s_build_fn *build;
} s_route_t;

//  ---------------------------------------------------------------------
//  Small helpers

static int
s_refuse (s_ctx_t *ctx, int status, const char *code, const char *field, const char *format, ...)
{
    char message [600];
    va_list args;
    va_start (args, format);
    vsnprintf (message, sizeof message, format, args);
    va_end (args);
    json_decref (ctx->error);
    ctx->error = qn_json_error (code, message, field);
    ctx->error_status = status;
    return -1;
}

static int
s_bad (s_ctx_t *ctx, const char *field, const char *what)
{
    return s_refuse (ctx, 400, "bad_request", field, "%s: %s", field, what);
}

//  A whole decimal number in [min, max], nothing else around it
static bool
s_parse_uint (const char *text, uint64_t min, uint64_t max, uint64_t *value_p)
{
    if (!text || !*text || strlen (text) > 20)
        return false;
    uint64_t value = 0;
    for (const char *c = text; *c; c++) {
        if (*c < '0' || *c > '9')
            return false;
        uint64_t digit = (uint64_t) (*c - '0');
        if (value > (UINT64_MAX - digit) / 10)
            return false;
        value = value * 10 + digit;
    }
    if (value < min || value > max)
        return false;
    *value_p = value;
    return true;
}

//  Text fit to be a name or a filter: valid UTF-8 without control
//  characters, so that nothing downstream (engine logs, JSON) is fooled
static bool
s_text_ok (const char *text)
{
    for (const char *c = text; *c; c++)
        if ((unsigned char) *c < 0x20 || *c == 0x7f)
            return false;
    json_t *json = json_string (text);  //  NULL when not UTF-8
    json_decref (json);
    return json != NULL;
}

static const char *
s_arg (s_ctx_t *ctx, const char *key)
{
    const char *value = ctx->query? ctx->query (ctx->query_arg, key): NULL;
    return value && *value? value: NULL;
}

//  A numeric query argument: 0 absent, 1 read, -1 refused
static int
s_arg_uint (s_ctx_t *ctx, const char *key, uint64_t min, uint64_t max, uint64_t *value_p)
{
    const char *text = s_arg (ctx, key);
    if (!text)
        return 0;
    if (!s_parse_uint (text, min, max, value_p)) {
        char what [120];
        snprintf (what, sizeof what, "wants a whole number from %llu to %llu",
                  (unsigned long long) min, (unsigned long long) max);
        return s_bad (ctx, key, what);
    }
    return 1;
}

//  A text argument copied for the request: 0, or -1 refused
static int
s_arg_text (s_ctx_t *ctx, const char *key, char **field_p)
{
    const char *text = s_arg (ctx, key);
    if (!text)
        return 0;
    if (strlen (text) >= QN_HTTP_NAME_MAX)
        return s_bad (ctx, key, "too long");
    if (!s_text_ok (text))
        return s_bad (ctx, key, "must be UTF-8 text without control characters");
    *field_p = strdup (text);
    return *field_p? 0: s_refuse (ctx, 503, "unavailable", NULL, "out of memory");
}

static char *
s_dup (const char *text)
{
    return strdup (text? text: "");
}

//  Every key of the body must be one of allowed
static int
s_check_keys (s_ctx_t *ctx, const char *const *allowed)
{
    const char *key;
    json_t *value;
    json_object_foreach (ctx->body, key, value) {
        bool known = false;
        for (size_t i = 0; allowed [i] && !known; i++)
            known = strcmp (key, allowed [i]) == 0;
        if (!known)
            return s_refuse (ctx, 400, "bad_request", key, "unknown field '%.200s'", key);
    }
    return 0;
}

//  A string member: 0 absent, 1 read (*text_p points into the body), -1 refused
static int
s_body_string (s_ctx_t *ctx, const char *key, bool required, const char **text_p)
{
    json_t *value = ctx->body? json_object_get (ctx->body, key): NULL;
    if (!value || json_is_null (value)) {
        if (required)
            return s_bad (ctx, key, "is required");
        return 0;
    }
    if (!json_is_string (value))
        return s_bad (ctx, key, "must be a string");
    *text_p = json_string_value (value);
    if (strlen (*text_p) != json_string_length (value))
        return s_bad (ctx, key, "must not hold a NUL character");
    return 1;
}

//  A whole-number member in [0, max]: 0 absent, 1 read, -1 refused
static int
s_body_uint (s_ctx_t *ctx, const char *key, uint64_t max, uint64_t *value_p)
{
    json_t *value = ctx->body? json_object_get (ctx->body, key): NULL;
    if (!value || json_is_null (value))
        return 0;
    if (!json_is_integer (value) || json_integer_value (value) < 0
    ||  (uint64_t) json_integer_value (value) > max) {
        char what [100];
        snprintf (what, sizeof what, "must be a whole number from 0 to %llu",
                  (unsigned long long) max);
        return s_bad (ctx, key, what);
    }
    *value_p = (uint64_t) json_integer_value (value);
    return 1;
}

static int
s_body_bool (s_ctx_t *ctx, const char *key, bool *value_p)
{
    json_t *value = ctx->body? json_object_get (ctx->body, key): NULL;
    if (!value || json_is_null (value))
        return 0;
    if (!json_is_boolean (value))
        return s_bad (ctx, key, "must be true or false");
    *value_p = json_is_true (value);
    return 1;
}

static int
s_name_ok (s_ctx_t *ctx, const char *field, const char *text)
{
    if (!*text)
        return s_bad (ctx, field, "must not be empty");
    if (strlen (text) >= QN_HTTP_NAME_MAX)
        return s_bad (ctx, field, "too long");
    return 0;
}

//  Allocates the request's body message; the oneof is set by the caller
#define S_NEW(type, init) \
    type *msg = (type *) malloc (sizeof (type)); \
    if (!msg) \
        return s_refuse (ctx, 503, "unavailable", NULL, "out of memory"); \
    type msg_init = init; \
    *msg = msg_init

//  ---------------------------------------------------------------------
//  Builders, one per route (or per engine request)

static int
s_build_none (s_ctx_t *ctx)
{
    (void) ctx;
    return 0;
}

static int
s_build_whoami (s_ctx_t *ctx)
{
    S_NEW (Qanat__WhoAmI, QANAT__WHO_AM_I__INIT);
    ctx->request->body_case = QANAT__REQUEST__BODY_WHOAMI;
    ctx->request->whoami = msg;
    return 0;
}

static int
s_build_session (s_ctx_t *ctx)
{
    static const char *const keys [] = { "token", NULL };
    const char *token = NULL;
    if (s_check_keys (ctx, keys) || s_body_string (ctx, "token", true, &token) < 0
    ||  s_name_ok (ctx, "token", token))
        return -1;
    snprintf (ctx->route->token, sizeof ctx->route->token, "%s", token);
    return s_build_whoami (ctx);
}

//  An RFC 3339 time argument: 0 absent, 1 read, -1 refused
static int
s_arg_time (s_ctx_t *ctx, const char *key, int64_t *us_p)
{
    const char *text = s_arg (ctx, key);
    if (!text)
        return 0;
    if (strlen (text) > 64 || qn_json_time_parse (text, us_p) != 0)
        return s_bad (ctx, key, "wants an RFC 3339 time, as 2026-12-07T18:00:00Z");
    return 1;
}

static int
s_build_list_runs (s_ctx_t *ctx)
{
    S_NEW (Qanat__ListRuns, QANAT__LIST_RUNS__INIT);
    ctx->request->body_case = QANAT__REQUEST__BODY_LIST_RUNS;
    ctx->request->list_runs = msg;
    uint64_t limit = 50, cursor = 0;
    const char *status = s_arg (ctx, "status");
    if (s_arg_text (ctx, "workflow", &msg->workflow) || s_arg_text (ctx, "owner", &msg->owner)
    ||  s_arg_time (ctx, "after", &msg->created_after_us) < 0
    ||  s_arg_time (ctx, "before", &msg->created_before_us) < 0
    ||  s_arg_uint (ctx, "cursor", 1, UINT64_MAX, &cursor) < 0
    ||  s_arg_uint (ctx, "limit", 1, LIMIT_MAX, &limit) < 0)
        return -1;
    if (status) {
        if (qn_run_status_parse (status, &msg->status))
            return s_bad (ctx, "status", "wants queued, running, succeeded, "
                          "succeeded_with_warnings, failed or canceled");
        msg->has_status = true;
    }
    msg->before_run_id = cursor;
    msg->limit = (uint32_t) limit;
    return 0;
}

//  "params": {"name": value} as Params with their values as text
static int
s_body_params (s_ctx_t *ctx, Qanat__StartRun *start)
{
    json_t *params = json_object_get (ctx->body, "params");
    if (!params || json_is_null (params))
        return 0;
    if (!json_is_object (params))
        return s_bad (ctx, "params", "must be an object of name: value");
    size_t count = json_object_size (params);
    start->params = (Qanat__Param **) calloc (count? count: 1, sizeof (Qanat__Param *));
    if (!start->params)
        return s_refuse (ctx, 503, "unavailable", NULL, "out of memory");
    const char *key;
    json_t *value;
    json_object_foreach (params, key, value) {
        char field [QN_HTTP_NAME_MAX + 16];
        snprintf (field, sizeof field, "params.%.500s", key);
        char *text = NULL;
        if (!*key || strlen (key) >= QN_HTTP_NAME_MAX)
            return s_bad (ctx, field, "a parameter needs a name of 1 to 511 bytes");
        if (qn_json_param_text (value, &text) != 0)
            return s_bad (ctx, field, "must be a string, a number or true/false");
        Qanat__Param *param = (Qanat__Param *) malloc (sizeof *param);
        if (!param) {
            free (text);
            return s_refuse (ctx, 503, "unavailable", NULL, "out of memory");
        }
        Qanat__Param init = QANAT__PARAM__INIT;
        *param = init;
        param->name = strdup (key);
        param->value = text;
        start->params [start->n_params++] = param;
        if (!param->name || !param->value)
            return s_refuse (ctx, 503, "unavailable", NULL, "out of memory");
    }
    return 0;
}

//  A workflow file's text as the body gives it ("source", checked by
//  s_body_string) and its name
static int
s_submit_fill (s_ctx_t *ctx, Qanat__SubmitWorkflow *submit, const char *source,
               const char *filename)
{
    submit->filename = s_dup (filename && *filename? filename: "workflow.yaml");
    size_t size = json_string_length (json_object_get (ctx->body, "source"));
    submit->source.data = (uint8_t *) malloc (size? size: 1);
    if (!submit->filename || !submit->source.data)
        return s_refuse (ctx, 503, "unavailable", NULL, "out of memory");
    memcpy (submit->source.data, source, size);
    submit->source.len = size;
    return 0;
}

//  "code": the workflow's code put first (PUT /blobs), a directory's
//  manifest hash, into *code_p (malloc'd; NULL when absent or empty)
static int
s_body_code (s_ctx_t *ctx, char **code_p)
{
    const char *code = NULL;
    if (s_body_string (ctx, "code", false, &code) < 0)
        return -1;
    if (!code || !*code)
        return 0;
    if (strncmp (code, "dir:", 4) != 0 || !qn_blobstore_valid_hash (code + 4))
        return s_bad (ctx, "code", "wants dir:<sha256> (the manifest's hash, 64 hex digits)");
    *code_p = strdup (code);
    return *code_p? 0: s_refuse (ctx, 503, "unavailable", NULL, "out of memory");
}

static int
s_build_start_run (s_ctx_t *ctx)
{
    static const char *const keys [] =
        { "source", "filename", "workflow", "version", "params", "no_cache", "code", NULL };
    if (s_check_keys (ctx, keys))
        return -1;
    S_NEW (Qanat__StartRun, QANAT__START_RUN__INIT);
    ctx->request->body_case = QANAT__REQUEST__BODY_START_RUN;
    ctx->request->start_run = msg;
    const char *source = NULL, *filename = NULL, *workflow = NULL;
    uint64_t version = 0;
    bool no_cache = false;
    int has_source = s_body_string (ctx, "source", false, &source);
    int has_name = has_source < 0? -1: s_body_string (ctx, "workflow", false, &workflow);
    if (has_name < 0 || s_body_string (ctx, "filename", false, &filename) < 0
    ||  s_body_uint (ctx, "version", UINT32_MAX, &version) < 0
    ||  s_body_bool (ctx, "no_cache", &no_cache) < 0
    ||  s_body_code (ctx, &msg->code) < 0)
        return -1;
    msg->no_cache = no_cache;
    if (has_source && has_name)
        return s_bad (ctx, "workflow", "give either source or workflow, not both");
    if (!has_source && !has_name)
        return s_bad (ctx, "source", "give source (the workflow text) or workflow (a name)");
    if (has_source) {
        if (json_object_get (ctx->body, "version"))
            return s_bad (ctx, "version", "only with workflow");
        Qanat__SubmitWorkflow *submit = (Qanat__SubmitWorkflow *) malloc (sizeof *submit);
        if (!submit)
            return s_refuse (ctx, 503, "unavailable", NULL, "out of memory");
        Qanat__SubmitWorkflow submit_init = QANAT__SUBMIT_WORKFLOW__INIT;
        *submit = submit_init;
        msg->workflow = submit;         //  attached first: freed with the request
        if (s_submit_fill (ctx, submit, source, filename))
            return -1;
    }
    else {
        if (s_name_ok (ctx, "workflow", workflow))
            return -1;
        msg->workflow_name = strdup (workflow);
        msg->workflow_version = (uint32_t) version;
        if (!msg->workflow_name)
            return s_refuse (ctx, 503, "unavailable", NULL, "out of memory");
    }
    return s_body_params (ctx, ctx->request->start_run);
}

static int
s_build_get_run (s_ctx_t *ctx)
{
    S_NEW (Qanat__GetRun, QANAT__GET_RUN__INIT);
    ctx->request->body_case = QANAT__REQUEST__BODY_GET_RUN;
    ctx->request->get_run = msg;
    msg->run_id = ctx->route->run_id;
    return 0;
}

static int
s_build_notifications (s_ctx_t *ctx)
{
    S_NEW (Qanat__ListNotifications, QANAT__LIST_NOTIFICATIONS__INIT);
    ctx->request->body_case = QANAT__REQUEST__BODY_LIST_NOTIFICATIONS;
    ctx->request->list_notifications = msg;
    msg->run_id = ctx->route->run_id;
    return 0;
}

static int
s_build_artifact (s_ctx_t *ctx)
{
    snprintf (ctx->route->task, sizeof ctx->route->task, "%s", ctx->path->part [3]);
    snprintf (ctx->route->name, sizeof ctx->route->name, "%s", ctx->path->part [4]);
    return s_build_get_run (ctx);
}

static int
s_build_cancel (s_ctx_t *ctx)
{
    static const char *const keys [] = { "task", NULL };
    const char *task = NULL;
    if (ctx->body && (s_check_keys (ctx, keys) || s_body_string (ctx, "task", false, &task) < 0))
        return -1;
    S_NEW (Qanat__CancelRun, QANAT__CANCEL_RUN__INIT);
    ctx->request->body_case = QANAT__REQUEST__BODY_CANCEL_RUN;
    ctx->request->cancel_run = msg;
    msg->run_id = ctx->route->run_id;
    if (task && *task) {
        if (s_name_ok (ctx, "task", task))
            return -1;
        msg->task = strdup (task);
        if (!msg->task)
            return s_refuse (ctx, 503, "unavailable", NULL, "out of memory");
    }
    return 0;
}

static int
s_build_logs (s_ctx_t *ctx)
{
    S_NEW (Qanat__ReadLogs, QANAT__READ_LOGS__INIT);
    ctx->request->body_case = QANAT__REQUEST__BODY_READ_LOGS;
    ctx->request->read_logs = msg;
    msg->run_id = ctx->route->run_id;
    uint64_t attempt = 0, limit = 0;
    int after = 0;
    if (s_arg_text (ctx, "task", &msg->task)
    ||  s_arg_uint (ctx, "attempt", 1, UINT32_MAX, &attempt) < 0
    ||  (after = s_arg_uint (ctx, "after", 0, UINT64_MAX, &ctx->route->after)) < 0
    ||  s_arg_uint (ctx, "limit", 1, LIMIT_MAX, &limit) < 0)
        return -1;
    ctx->route->has_after = after == 1;
    msg->attempt = (uint32_t) attempt;
    msg->limit = (uint32_t) limit;
    msg->after_seq = ctx->route->after;
    return 0;
}

static int
s_build_read_metrics (s_ctx_t *ctx)
{
    S_NEW (Qanat__ReadMetrics, QANAT__READ_METRICS__INIT);
    ctx->request->body_case = QANAT__REQUEST__BODY_READ_METRICS;
    ctx->request->read_metrics = msg;
    if (ctx->route->id == QN_HTTP_ROUTE_RUN_METRICS) {
        msg->run_id = ctx->route->run_id;
        return s_arg_text (ctx, "name", &msg->name);
    }
    //  workflows/{name}/metrics/{metric}: every point of every run
    msg->workflow = strdup (ctx->path->part [1]);
    msg->name = strdup (ctx->path->part [3]);
    msg->all_points = true;
    snprintf (ctx->route->name, sizeof ctx->route->name, "%s", ctx->path->part [1]);
    return msg->workflow && msg->name? 0: s_refuse (ctx, 503, "unavailable", NULL, "out of memory");
}

static int
s_build_list_workflows (s_ctx_t *ctx)
{
    S_NEW (Qanat__ListWorkflows, QANAT__LIST_WORKFLOWS__INIT);
    ctx->request->body_case = QANAT__REQUEST__BODY_LIST_WORKFLOWS;
    ctx->request->list_workflows = msg;
    return 0;
}

static int
s_build_get_workflow (s_ctx_t *ctx)
{
    S_NEW (Qanat__GetWorkflow, QANAT__GET_WORKFLOW__INIT);
    ctx->request->body_case = QANAT__REQUEST__BODY_GET_WORKFLOW;
    ctx->request->get_workflow = msg;
    snprintf (ctx->route->name, sizeof ctx->route->name, "%s", ctx->path->part [1]);
    msg->name = strdup (ctx->path->part [1]);
    if (!msg->name)
        return s_refuse (ctx, 503, "unavailable", NULL, "out of memory");
    uint64_t version = 0;
    if (ctx->route->id == QN_HTTP_ROUTE_WORKFLOW_VERSION) {
        if (!s_parse_uint (ctx->path->part [3], 1, UINT32_MAX, &version))
            return s_refuse (ctx, 404, "not_found", NULL, "no such workflow version");
    }
    else
    if (ctx->route->id == QN_HTTP_ROUTE_WORKFLOW_DIFF) {
        uint64_t from = 0, to = 0;
        if (s_arg_uint (ctx, "from", 1, UINT32_MAX, &from) <= 0) {
            if (!ctx->error)
                s_bad (ctx, "from", "is required (a version number)");
            return -1;
        }
        if (s_arg_uint (ctx, "to", 1, UINT32_MAX, &to) <= 0) {
            if (!ctx->error)
                s_bad (ctx, "to", "is required (a version number)");
            return -1;
        }
        ctx->route->from = (uint32_t) from;
        ctx->route->to = (uint32_t) to;
        version = from;
    }
    msg->version = (uint32_t) version;
    return 0;
}

//  POST /workflows: store a version without running it
static int
s_build_publish (s_ctx_t *ctx)
{
    static const char *const keys [] = { "source", "filename", "code", NULL };
    const char *source = NULL, *filename = NULL;
    if (s_check_keys (ctx, keys) || s_body_string (ctx, "source", true, &source) < 0
    ||  s_body_string (ctx, "filename", false, &filename) < 0)
        return -1;
    S_NEW (Qanat__SubmitWorkflow, QANAT__SUBMIT_WORKFLOW__INIT);
    ctx->request->body_case = QANAT__REQUEST__BODY_SUBMIT;
    ctx->request->submit = msg;
    return s_body_code (ctx, &msg->code) || s_submit_fill (ctx, msg, source, filename);
}

//  blobs/{sha256}: the hash is the blob's name, lowercase hex only
static int
s_blob_hash (s_ctx_t *ctx, char **hash_p)
{
    const char *hash = ctx->path->part [1];
    if (!qn_blobstore_valid_hash (hash))
        return s_bad (ctx, "hash", "wants a SHA-256 in lowercase hex (64 digits 0-9a-f)");
    snprintf (ctx->route->name, sizeof ctx->route->name, "%s", hash);
    *hash_p = strdup (hash);
    return *hash_p? 0: s_refuse (ctx, 503, "unavailable", NULL, "out of memory");
}

//  GET /blobs/{sha256}: whether the coordinator holds it, by reading
//  its first byte (the answer carries its size)
static int
s_build_get_blob (s_ctx_t *ctx)
{
    S_NEW (Qanat__GetBlob, QANAT__GET_BLOB__INIT);
    ctx->request->body_case = QANAT__REQUEST__BODY_GET_BLOB;
    ctx->request->get_blob = msg;
    msg->size = 1;
    return s_blob_hash (ctx, &msg->hash);
}

//  PUT /blobs/{sha256}: the raw body is fed to the engine as PutBlob
//  pieces by the server (qn_http_blobs.c); here only the hash is read
static int
s_build_put_blob (s_ctx_t *ctx)
{
    S_NEW (Qanat__PutBlob, QANAT__PUT_BLOB__INIT);
    ctx->request->body_case = QANAT__REQUEST__BODY_PUT_BLOB;
    ctx->request->put_blob = msg;
    return s_blob_hash (ctx, &msg->hash);
}

static int
s_build_list_agents (s_ctx_t *ctx)
{
    S_NEW (Qanat__ListAgents, QANAT__LIST_AGENTS__INIT);
    ctx->request->body_case = QANAT__REQUEST__BODY_LIST_AGENTS;
    ctx->request->list_agents = msg;
    return 0;
}

static int
s_build_agent_action (s_ctx_t *ctx)
{
    const char *name = ctx->path->part [1];
    snprintf (ctx->route->name, sizeof ctx->route->name, "%s", name);
    if (ctx->route->id == QN_HTTP_ROUTE_AGENT_REVOKE) {
        S_NEW (Qanat__RevokeAgent, QANAT__REVOKE_AGENT__INIT);
        ctx->request->body_case = QANAT__REQUEST__BODY_REVOKE_AGENT;
        ctx->request->revoke_agent = msg;
        msg->name = strdup (name);
        return msg->name? 0: s_refuse (ctx, 503, "unavailable", NULL, "out of memory");
    }
    S_NEW (Qanat__DrainAgent, QANAT__DRAIN_AGENT__INIT);
    ctx->request->body_case = QANAT__REQUEST__BODY_DRAIN_AGENT;
    ctx->request->drain_agent = msg;
    msg->name = strdup (name);
    msg->drain = ctx->route->id == QN_HTTP_ROUTE_AGENT_DRAIN;
    return msg->name? 0: s_refuse (ctx, 503, "unavailable", NULL, "out of memory");
}

static int
s_build_list_limits (s_ctx_t *ctx)
{
    S_NEW (Qanat__ListLimits, QANAT__LIST_LIMITS__INIT);
    ctx->request->body_case = QANAT__REQUEST__BODY_LIST_LIMITS;
    ctx->request->list_limits = msg;
    return 0;
}

static int
s_build_list_schedules (s_ctx_t *ctx)
{
    S_NEW (Qanat__ListSchedules, QANAT__LIST_SCHEDULES__INIT);
    ctx->request->body_case = QANAT__REQUEST__BODY_LIST_SCHEDULES;
    ctx->request->list_schedules = msg;
    return 0;
}

//  Pauses or resumes every schedule of a workflow (admin, as the CLI)
static int
s_build_schedule_pause (s_ctx_t *ctx)
{
    const char *name = ctx->path->part [1];
    if (s_name_ok (ctx, "workflow", name))
        return -1;
    S_NEW (Qanat__SchedulePause, QANAT__SCHEDULE_PAUSE__INIT);
    ctx->request->body_case = QANAT__REQUEST__BODY_SCHEDULE_PAUSE;
    ctx->request->schedule_pause = msg;
    msg->paused = ctx->route->id == QN_HTTP_ROUTE_SCHEDULE_PAUSE;
    msg->workflow = strdup (name);
    return msg->workflow? 0: s_refuse (ctx, 503, "unavailable", NULL, "out of memory");
}

static int
s_build_stats (s_ctx_t *ctx)
{
    S_NEW (Qanat__GetStats, QANAT__GET_STATS__INIT);
    ctx->request->body_case = QANAT__REQUEST__BODY_GET_STATS;
    ctx->request->get_stats = msg;
    return 0;
}

static int
s_build_list_tokens (s_ctx_t *ctx)
{
    S_NEW (Qanat__ListApiTokens, QANAT__LIST_API_TOKENS__INIT);
    ctx->request->body_case = QANAT__REQUEST__BODY_LIST_API_TOKENS;
    ctx->request->list_api_tokens = msg;
    return 0;
}

static int
s_build_create_token (s_ctx_t *ctx)
{
    static const char *const keys [] = { "name", "role", "ttl_s", "user", NULL };
    const char *name = NULL, *role = NULL, *user = NULL;
    uint64_t ttl = 0;
    if (s_check_keys (ctx, keys) || s_body_string (ctx, "name", true, &name) < 0
    ||  s_body_string (ctx, "role", false, &role) < 0
    ||  s_body_string (ctx, "user", false, &user) < 0
    ||  s_body_uint (ctx, "ttl_s", UINT32_MAX, &ttl) < 0 || s_name_ok (ctx, "name", name))
        return -1;
    if (role && strcmp (role, "admin") != 0 && strcmp (role, "user") != 0)
        return s_bad (ctx, "role", "must be admin or user");
    if (user && *user && s_name_ok (ctx, "user", user))
        return -1;
    S_NEW (Qanat__CreateApiToken, QANAT__CREATE_API_TOKEN__INIT);
    ctx->request->body_case = QANAT__REQUEST__BODY_CREATE_API_TOKEN;
    ctx->request->create_api_token = msg;
    msg->name = strdup (name);
    msg->role = s_dup (role && *role? role: "user");
    msg->ttl_s = (uint32_t) ttl;
    if (user && *user)
        msg->user = strdup (user);
    if (!msg->name || !msg->role || !msg->user)
        return s_refuse (ctx, 503, "unavailable", NULL, "out of memory");
    return 0;
}

static int
s_build_revoke_token (s_ctx_t *ctx)
{
    S_NEW (Qanat__RevokeApiToken, QANAT__REVOKE_API_TOKEN__INIT);
    ctx->request->body_case = QANAT__REQUEST__BODY_REVOKE_API_TOKEN;
    ctx->request->revoke_api_token = msg;
    snprintf (ctx->route->name, sizeof ctx->route->name, "%s", ctx->path->part [1]);
    msg->name = strdup (ctx->path->part [1]);
    return msg->name? 0: s_refuse (ctx, 503, "unavailable", NULL, "out of memory");
}

//  ---------------------------------------------------------------------
//  The table.  A path matching a row's pattern with another method is
//  405; a path matching none is 404.

static const s_route_t s_routes [] = {
    { "POST",   "session",                QN_HTTP_ROUTE_SESSION_CREATE,   200, 0, 1, s_build_session },
    { "DELETE", "session",                QN_HTTP_ROUTE_SESSION_DELETE,   204, 0, 0, s_build_none },
    { "GET",    "whoami",                 QN_HTTP_ROUTE_WHOAMI,           200, 0, 0, s_build_whoami },
    { "GET",    "runs",                   QN_HTTP_ROUTE_RUNS_LIST,        200, 0, 0, s_build_list_runs },
    { "POST",   "runs",                   QN_HTTP_ROUTE_RUNS_START,       201, 0, 1, s_build_start_run },
    { "GET",    "runs/events",            QN_HTTP_ROUTE_RUNS_EVENTS,      200, 1, 0, s_build_list_runs },
    { "GET",    "runs/#",                 QN_HTTP_ROUTE_RUN_GET,          200, 0, 0, s_build_get_run },
    { "POST",   "runs/#/cancel",          QN_HTTP_ROUTE_RUN_CANCEL,       202, 0, 1, s_build_cancel },
    { "GET",    "runs/#/logs",            QN_HTTP_ROUTE_RUN_LOGS,         200, 0, 0, s_build_logs },
    { "GET",    "runs/#/logs.txt",        QN_HTTP_ROUTE_RUN_LOGS_TXT,     200, 0, 0, s_build_logs },
    { "GET",    "runs/#/logs/stream",     QN_HTTP_ROUTE_RUN_LOGS_STREAM,  200, 1, 0, s_build_logs },
    { "GET",    "runs/#/events",          QN_HTTP_ROUTE_RUN_EVENTS,       200, 1, 0, s_build_get_run },
    { "GET",    "runs/#/metrics",         QN_HTTP_ROUTE_RUN_METRICS,      200, 0, 0, s_build_read_metrics },
    { "GET",    "runs/#/artifacts",       QN_HTTP_ROUTE_RUN_ARTIFACTS,    200, 0, 0, s_build_get_run },
    { "GET",    "runs/#/notifications",   QN_HTTP_ROUTE_RUN_NOTIFICATIONS, 200, 0, 0, s_build_notifications },
    { "GET",    "runs/#/artifacts/*/*",   QN_HTTP_ROUTE_RUN_ARTIFACT,     200, 0, 0, s_build_artifact },
    { "GET",    "workflows",              QN_HTTP_ROUTE_WORKFLOWS_LIST,   200, 0, 0, s_build_list_workflows },
    { "POST",   "workflows",              QN_HTTP_ROUTE_WORKFLOW_PUBLISH, 201, 0, 1, s_build_publish },
    { "GET",    "workflows/*",            QN_HTTP_ROUTE_WORKFLOW_GET,     200, 0, 0, s_build_get_workflow },
    { "GET",    "workflows/*/versions/*", QN_HTTP_ROUTE_WORKFLOW_VERSION, 200, 0, 0, s_build_get_workflow },
    { "GET",    "workflows/*/diff",       QN_HTTP_ROUTE_WORKFLOW_DIFF,    200, 0, 0, s_build_get_workflow },
    { "GET",    "workflows/*/metrics/*",  QN_HTTP_ROUTE_WORKFLOW_METRIC,  200, 0, 0, s_build_read_metrics },
    { "GET",    "agents",                 QN_HTTP_ROUTE_AGENTS_LIST,      200, 0, 0, s_build_list_agents },
    { "GET",    "agents/events",          QN_HTTP_ROUTE_AGENTS_EVENTS,    200, 1, 0, s_build_list_agents },
    { "POST",   "agents/*/drain",         QN_HTTP_ROUTE_AGENT_DRAIN,      200, 0, 0, s_build_agent_action },
    { "POST",   "agents/*/undrain",       QN_HTTP_ROUTE_AGENT_UNDRAIN,    200, 0, 0, s_build_agent_action },
    { "POST",   "agents/*/revoke",        QN_HTTP_ROUTE_AGENT_REVOKE,     200, 0, 0, s_build_agent_action },
    { "GET",    "stats",                  QN_HTTP_ROUTE_STATS,            200, 0, 0, s_build_stats },
    { "GET",    "limits",                 QN_HTTP_ROUTE_LIMITS_LIST,      200, 0, 0, s_build_list_limits },
    { "GET",    "schedules",              QN_HTTP_ROUTE_SCHEDULES_LIST,   200, 0, 0, s_build_list_schedules },
    { "POST",   "schedules/*/pause",      QN_HTTP_ROUTE_SCHEDULE_PAUSE,   200, 0, 0, s_build_schedule_pause },
    { "POST",   "schedules/*/resume",     QN_HTTP_ROUTE_SCHEDULE_RESUME,  200, 0, 0, s_build_schedule_pause },
    { "GET",    "blobs/*",                QN_HTTP_ROUTE_BLOB_GET,         200, 0, 0, s_build_get_blob },
    { "PUT",    "blobs/*",                QN_HTTP_ROUTE_BLOB_PUT,         201, 0, 0, s_build_put_blob },
    { "GET",    "apitokens",              QN_HTTP_ROUTE_APITOKENS_LIST,   200, 0, 0, s_build_list_tokens },
    { "POST",   "apitokens",              QN_HTTP_ROUTE_APITOKEN_CREATE,  201, 0, 1, s_build_create_token },
    { "DELETE", "apitokens/*",            QN_HTTP_ROUTE_APITOKEN_REVOKE,  200, 0, 0, s_build_revoke_token },
};
#define ROUTE_COUNT (sizeof s_routes / sizeof s_routes [0])

//  Splits the path after /api/v1/ into segments.  false for a path that
//  cannot be any route (empty segment, too many, too long).
static bool
s_split (const char *path, s_path_t *out)
{
    memset (out, 0, sizeof *out);
    size_t prefix = strlen (QN_HTTP_API_PREFIX);
    if (strncmp (path, QN_HTTP_API_PREFIX "/", prefix + 1) != 0)
        return false;
    out->copy = strdup (path + prefix + 1);
    if (!out->copy)
        return false;
    char *cursor = out->copy;
    while (true) {
        char *slash = strchr (cursor, '/');
        if (slash)
            *slash = 0;
        if (!*cursor || out->count == SEGMENTS_MAX || strlen (cursor) >= QN_HTTP_NAME_MAX
        ||  !s_text_ok (cursor))
            return false;
        out->part [out->count++] = cursor;
        if (!slash)
            return true;
        cursor = slash + 1;
    }
}

static bool
s_match (const char *pattern, s_path_t *path, uint64_t *run_id_p)
{
    size_t index = 0;
    const char *cursor = pattern;
    while (*cursor) {
        const char *end = strchr (cursor, '/');
        size_t len = end? (size_t) (end - cursor): strlen (cursor);
        if (index == path->count)
            return false;
        const char *part = path->part [index++];
        if (len == 1 && *cursor == '#') {
            if (!s_parse_uint (part, 1, UINT64_MAX, run_id_p))
                return false;
        }
        else
        if (!(len == 1 && *cursor == '*')
        &&  (strlen (part) != len || memcmp (part, cursor, len) != 0))
            return false;
        cursor += len + (end? 1: 0);
    }
    return index == path->count;
}

static const s_route_t *
s_find (const char *method, const char *path, s_path_t *parts, uint64_t *run_id_p,
        bool *path_known_p)
{
    *path_known_p = false;
    if (strcmp (path, "/metrics") == 0) {
        static const s_route_t metrics =
            { "GET", "", QN_HTTP_ROUTE_METRICS, 200, 0, 0, s_build_stats };
        *path_known_p = true;
        memset (parts, 0, sizeof *parts);
        return strcmp (method, "GET") == 0 || strcmp (method, "HEAD") == 0? &metrics: NULL;
    }
    if (!s_split (path, parts))
        return NULL;
    for (size_t i = 0; i < ROUTE_COUNT; i++)
        if (s_match (s_routes [i].pattern, parts, run_id_p)) {
            *path_known_p = true;
            if (strcmp (s_routes [i].method, method) == 0)
                return &s_routes [i];
        }
    return NULL;
}

bool
qn_http_api_parse_uint (const char *text, uint64_t *value_p)
{
    return s_parse_uint (text, 0, UINT64_MAX, value_p);
}

qn_http_route_id_t
qn_http_api_route (const char *method, const char *path)
{
    s_path_t parts;
    uint64_t run_id = 0;
    bool known = false;
    const s_route_t *row = method && path? s_find (method, path, &parts, &run_id, &known): NULL;
    if (method && path)
        free (parts.copy);
    return row? row->id: QN_HTTP_ROUTE_NONE;
}

const char *
qn_http_api_allowed (const char *path)
{
    if (strcmp (path, "/metrics") == 0)
        return "GET";
    s_path_t parts;
    uint64_t run_id;
    const char *allowed = NULL;
    if (s_split (path, &parts)) {
        bool get = false, post = false, del = false, put = false;
        for (size_t i = 0; i < ROUTE_COUNT; i++)
            if (s_match (s_routes [i].pattern, &parts, &run_id)) {
                get |= strcmp (s_routes [i].method, "GET") == 0;
                post |= strcmp (s_routes [i].method, "POST") == 0;
                del |= strcmp (s_routes [i].method, "DELETE") == 0;
                put |= strcmp (s_routes [i].method, "PUT") == 0;
            }
        allowed = get && post? "GET, POST": get && del? "GET, DELETE": get && put? "GET, PUT"
                : post && del? "POST, DELETE"
                : get? "GET": post? "POST": del? "DELETE": put? "PUT": NULL;
    }
    free (parts.copy);
    return allowed;
}

//  Parses the body of a route that reads one: a JSON object
static int
s_parse_body (s_ctx_t *ctx, const s_route_t *row, const char *body, size_t body_size)
{
    if (!row->body || body_size == 0)
        return row->body && row->id != QN_HTTP_ROUTE_RUN_CANCEL
            ? s_refuse (ctx, 400, "bad_request", NULL, "a JSON object is required as the body")
            : 0;
    json_error_t error;
    ctx->body = json_loadb (body, body_size, JSON_REJECT_DUPLICATES, &error);
    if (!ctx->body)
        return s_refuse (ctx, 400, "bad_request", NULL, "the body is not valid JSON: %s "
                         "(line %d, column %d)", error.text, error.line, error.column);
    if (!json_is_object (ctx->body))
        return s_refuse (ctx, 400, "bad_request", NULL, "the body must be a JSON object");
    return 0;
}

int
qn_http_api_decode (const char *method, const char *path,
                    qn_http_query_fn *query, void *query_arg,
                    const char *body, size_t body_size,
                    Qanat__Request *request_out, qn_http_route_t *route_out,
                    json_t **error_out)
{
    Qanat__Request init = QANAT__REQUEST__INIT;
    *request_out = init;
    memset (route_out, 0, sizeof *route_out);
    *error_out = NULL;
    s_path_t parts;
    s_ctx_t ctx = { &parts, query, query_arg, NULL, request_out, route_out, NULL, 0 };
    bool path_known = false;
    uint64_t run_id = 0;
    const s_route_t *row = method && path? s_find (method, path, &parts, &run_id, &path_known)
                                         : NULL;
    if (!row) {
        if (path_known)
            s_refuse (&ctx, 405, "bad_request", NULL, "method %.20s not allowed here", method);
        else
            s_refuse (&ctx, 404, "not_found", NULL, "no such route");
    }
    else {
        route_out->id = row->id;
        route_out->status = row->status;
        route_out->stream = row->stream;
        route_out->run_id = run_id;
        if (s_parse_body (&ctx, row, body, body_size) == 0)
            row->build (&ctx);
    }
    json_decref (ctx.body);
    free (parts.copy);
    if (ctx.error) {
        qn_http_api_request_reset (request_out);
        *error_out = ctx.error;
        return ctx.error_status;
    }
    return 0;
}

void
qn_http_api_request_reset (Qanat__Request *request)
{
    if (request->body_case != QANAT__REQUEST__BODY__NOT_SET) {
        //  free_unpacked walks the message by its descriptor, freeing the
        //  outer struct too: hand it a heap copy
        Qanat__Request *heap = (Qanat__Request *) malloc (sizeof *heap);
        if (heap) {
            *heap = *request;
            qanat__request__free_unpacked (heap, NULL);
        }
    }
    Qanat__Request init = QANAT__REQUEST__INIT;
    *request = init;
}
