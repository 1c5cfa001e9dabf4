/*  qn_http_routes - the JSON routes of the API: an engine call each (two
    for a workflow diff), the reply shaped by qn_json's rules; engine
    errors mapped to HTTP statuses; /metrics in Prometheus text.

    One of the files of the qn_http class.
*/
#include "qn_http_internal.h"
#include "qn_json.h"
#include "qn_diff.h"
#include "qn_prom.h"

//  ---------------------------------------------------------------------
//  Engine calls and their errors

//  The HTTP status of an engine error: its code when it has one, else
//  its wording
unsigned int
qn_http_error_status (const Qanat__Error *error)
{
    switch (error->code) {
        case QANAT__ERROR_CODE__ERROR_NOT_FOUND:   return 404;
        case QANAT__ERROR_CODE__ERROR_DENIED:      return 403;
        case QANAT__ERROR_CODE__ERROR_CONFLICT:    return 409;
        case QANAT__ERROR_CODE__ERROR_UNAVAILABLE: return 503;
        default: break;
    }
    const char *text = error->message? error->message: "";
    if (strstr (text, "permission") || strstr (text, "may not") || strstr (text, "needs role admin"))
        return 403;
    if (strstr (text, "no such") || strstr (text, "not found"))
        return 404;
    return 400;
}

static void
s_set_error (qn_http_call_t *call, unsigned int status, const char *message)
{
    json_decref (call->error);
    call->error = qn_json_error (qn_http_error_code (status), message, NULL);
    call->error_status = (int) status;
}

int
qn_http_engine (qn_http_call_t *call, Qanat__Request *request, Qanat__Reply **reply_p)
{
    char *error = NULL;
    *reply_p = NULL;
    if (!call->conn || !call->conn->bridge) {
        s_set_error (call, 503, "out of memory");
        return 503;
    }
    int rc = qn_http_bridge_call (call->conn->bridge, call->credential, request, reply_p,
                                  call->server->call_timeout_ms, &error);
    if (rc == QN_HTTP_BRIDGE_REFUSED)
        s_set_error (call, 401, error && *error? error: "a valid API token is needed");
    else
    if (rc != 0)
        s_set_error (call, 503, error? error: "coordinator busy");
    free (error);
    if (rc != 0)
        return call->error_status;
    Qanat__Reply *reply = *reply_p;
    if (reply->body_case == QANAT__REPLY__BODY_ERROR) {
        unsigned int status = qn_http_error_status (reply->error);
        s_set_error (call, status, reply->error->message && *reply->error->message
                                   ? reply->error->message: "refused");
        qanat__reply__free_unpacked (reply, NULL);
        *reply_p = NULL;
        return (int) status;
    }
    return 0;
}

enum MHD_Result
qn_http_send_call_error (qn_http_call_t *call)
{
    json_t *error = call->error;
    call->error = NULL;
    return qn_http_send_json (call->server, call->connection,
                              call->error_status? (unsigned int) call->error_status: 503,
                              error? error: qn_json_error ("unavailable", "coordinator busy", NULL));
}

//  ---------------------------------------------------------------------
//  Shapes

json_t *
qn_http_run_json (const Qanat__RunInfo *run)
{
    json_t *json = qn_json_from_message (&run->base);
    if (json && !json_object_get (json, "duration_s")) {
        int64_t end = run->finished_us? run->finished_us: 0;
        json_object_set_new (json, "duration_s", run->created_us && end >= run->created_us
                             ? json_real ((double) (end - run->created_us) / 1e6)
                             : json_null ());
    }
    return json;
}

json_t *
qn_http_log_line_json (const Qanat__LogLine *line)
{
    json_t *json = json_object ();
    json_t *chunk = line->chunk? qn_json_from_message (&line->chunk->base): NULL;
    json_object_set_new (json, "task", json_string (line->task? line->task: ""));
    json_object_set_new (json, "attempt", json_integer (line->attempt));
    json_object_set_new (json, "seq", json_integer ((json_int_t) line->log_seq));
    json_object_set_new (json, "attempt_seq", json_integer ((json_int_t) line->seq));
    const char *keys [][2] = { { "stream", "stream" }, { "text", "data" },
                               { "time", "time" }, { "partial", "partial" } };
    for (size_t i = 0; i < 4; i++) {
        json_t *value = chunk? json_object_get (chunk, keys [i][1]): NULL;
        json_object_set (json, keys [i][0], value? value: json_null ());
    }
    json_decref (chunk);
    return json;
}

json_t *
qn_http_run_list_json (const Qanat__RunList *list)
{
    json_t *runs = json_array ();
    for (size_t i = 0; i < list->n_runs; i++)
        json_array_append_new (runs, qn_http_run_json (list->runs [i]));
    json_t *json = json_object ();
    json_object_set_new (json, "runs", runs);
    if (list->next_before) {
        char next [32];
        snprintf (next, sizeof next, "%llu", (unsigned long long) list->next_before);
        json_object_set_new (json, "next", json_string (next));
    }
    else
        json_object_set_new (json, "next", json_null ());
    return json;
}

static json_t *
s_logs_json (const Qanat__LogPage *page, uint64_t after)
{
    json_t *lines = json_array ();
    uint64_t last = after;
    for (size_t i = 0; i < page->n_lines; i++) {
        json_array_append_new (lines, qn_http_log_line_json (page->lines [i]));
        if (page->lines [i]->log_seq > last)
            last = page->lines [i]->log_seq;
    }
    json_t *json = json_object ();
    json_object_set_new (json, "lines", lines);
    json_object_set_new (json, "next", json_integer ((json_int_t) last));
    json_object_set_new (json, "run_finished", json_boolean (page->run_finished));
    return json;
}

static const char *
s_kind_name (Qanat__ArtifactKind kind)
{
    return kind == QANAT__ARTIFACT_KIND__ARTIFACT_DIR? "dir"
         : kind == QANAT__ARTIFACT_KIND__ARTIFACT_VALUE? "value": "file";
}

//  The outputs of each task's successful attempt, as `qanat artifacts`
static json_t *
s_artifacts_json (const Qanat__RunInfo *run)
{
    json_t *list = json_array ();
    for (size_t t = 0; t < run->n_tasks; t++) {
        const Qanat__TaskInfo *task = run->tasks [t];
        if (task->status != QANAT__TASK_STATUS__TASK_SUCCEEDED || task->n_attempts == 0)
            continue;
        const Qanat__AttemptInfo *attempt = task->attempts [task->n_attempts - 1];
        for (size_t o = 0; o < attempt->n_outputs; o++) {
            const Qanat__OutputRecord *output = attempt->outputs [o];
            json_t *item = json_object ();
            json_object_set_new (item, "task", json_string (task->name));
            json_object_set_new (item, "name", json_string (output->name));
            json_object_set_new (item, "kind", json_string (s_kind_name (output->kind)));
            json_object_set_new (item, "hash", json_string (output->hash? output->hash: ""));
            json_object_set_new (item, "size", json_integer ((json_int_t) output->size));
            bool s3 = output->location && *output->location;
            json_object_set_new (item, "store", json_string (s3? "s3": "coordinator"));
            if (s3)
                json_object_set_new (item, "location", json_string (output->location));
            if (output->kind == QANAT__ARTIFACT_KIND__ARTIFACT_VALUE)
                json_object_set_new (item, "value", json_string (output->value? output->value: ""));
            char *download = zsys_sprintf (QN_HTTP_API_PREFIX "/runs/%llu/artifacts/%s/%s",
                                           (unsigned long long) run->run_id, task->name,
                                           output->name);
            json_object_set_new (item, "download", download? json_string (download): json_null ());
            zstr_free (&download);
            json_array_append_new (list, item);
        }
    }
    json_t *json = json_object ();
    json_object_set_new (json, "artifacts", list);
    return json;
}

//  Drain, undrain, revoke: the agent's entry when the reply lists agents
static json_t *
s_agent_json (const qn_http_route_t *route, const Qanat__Reply *reply)
{
    if (reply->body_case == QANAT__REPLY__BODY_AGENTS)
        for (size_t i = 0; i < reply->agents->n_agents; i++)
            if (reply->agents->agents [i]->name
            &&  strcmp (reply->agents->agents [i]->name, route->name) == 0)
                return qn_json_from_message (&reply->agents->agents [i]->base);
    json_t *json = json_object ();
    json_object_set_new (json, "name", json_string (route->name));
    if (route->id == QN_HTTP_ROUTE_AGENT_REVOKE)
        json_object_set_new (json, "revoked", json_true ());
    else
        json_object_set_new (json, "draining", json_boolean (route->id == QN_HTTP_ROUTE_AGENT_DRAIN));
    return json;
}

//  GET /workflows/{name}: the newest version and the list of versions
static json_t *
s_workflow_json (const Qanat__WorkflowSource *source)
{
    json_t *json = json_object ();
    json_object_set_new (json, "name", json_string (source->name? source->name: ""));
    uint32_t latest = source->latest? source->latest: source->version;
    json_object_set_new (json, "latest", json_integer (latest));
    json_t *versions = json_array ();
    for (uint32_t v = 1; v <= latest && v <= 100000; v++)
        json_array_append_new (versions, json_integer (v));
    json_object_set_new (json, "versions", versions);
    return json;
}

//  GET /workflows/{name}/diff?from=&to=: the first version is in reply
static json_t *
s_diff_json (qn_http_call_t *call, Qanat__Reply *first, int *status_p)
{
    Qanat__GetWorkflow get = QANAT__GET_WORKFLOW__INIT;
    get.name = call->route.name;
    get.version = call->route.to;
    Qanat__Request request = QANAT__REQUEST__INIT;
    request.body_case = QANAT__REQUEST__BODY_GET_WORKFLOW;
    request.get_workflow = &get;
    Qanat__Reply *second = NULL;
    *status_p = qn_http_engine (call, &request, &second);
    if (*status_p)
        return NULL;
    const Qanat__WorkflowSource *a = first->workflow_source, *b = second->workflow_source;
    char label_a [64], label_b [64];
    snprintf (label_a, sizeof label_a, "v%u", (unsigned) call->route.from);
    snprintf (label_b, sizeof label_b, "v%u", (unsigned) call->route.to);
    char *diff = a && b? qn_diff_unified ((const char *) a->source.data, a->source.len,
                                          (const char *) b->source.data, b->source.len,
                                          label_a, label_b, 3)
                       : NULL;
    json_t *json = json_object ();
    json_object_set_new (json, "from", json_integer (call->route.from));
    json_object_set_new (json, "to", json_integer (call->route.to));
    //  Workflow text is read as UTF-8, invalid bytes as U+FFFD
    json_t *text = diff? qn_json_text (diff, strlen (diff)): NULL;
    json_object_set_new (json, "diff", text? text: json_string (""));
    free (diff);
    qanat__reply__free_unpacked (second, NULL);
    return json;
}

//  A run's notifications: what a listing shows, without the settings the
//  store keeps for sending (left empty by the engine)
static json_t *
s_notifications_json (const Qanat__NotifList *list)
{
    static const char *internal [] = {
        "body", "text", "url", "secret", "to", "from", "user", "password", "from_default", NULL
    };
    json_t *json = qn_json_from_message (&list->base);
    json_t *entries = json? json_object_get (json, "entries"): NULL;
    size_t index;
    json_t *entry;
    json_array_foreach (entries, index, entry)
        for (size_t i = 0; internal [i]; i++)
            json_object_del (entry, internal [i]);
    return json;
}

enum MHD_Result
qn_http_routes_serve (qn_http_call_t *call)
{
    Qanat__Reply *reply = NULL;
    if (qn_http_engine (call, &call->request, &reply))
        return qn_http_send_call_error (call);
    json_t *json = NULL;
    int status = 0;
    switch (call->route.id) {
        case QN_HTTP_ROUTE_RUNS_LIST:
            json = reply->body_case == QANAT__REPLY__BODY_RUNS? qn_http_run_list_json (reply->runs): NULL;
            break;
        case QN_HTTP_ROUTE_RUNS_START:
        case QN_HTTP_ROUTE_RUN_GET:
        case QN_HTTP_ROUTE_RUN_CANCEL:
            json = reply->body_case == QANAT__REPLY__BODY_RUN? qn_http_run_json (reply->run): NULL;
            break;
        case QN_HTTP_ROUTE_RUN_LOGS:
            json = reply->body_case == QANAT__REPLY__BODY_LOGS
                 ? s_logs_json (reply->logs, call->route.after): NULL;
            break;
        case QN_HTTP_ROUTE_RUN_ARTIFACTS:
            json = reply->body_case == QANAT__REPLY__BODY_RUN? s_artifacts_json (reply->run): NULL;
            break;
        case QN_HTTP_ROUTE_WORKFLOW_GET:
            json = reply->body_case == QANAT__REPLY__BODY_WORKFLOW_SOURCE
                 ? s_workflow_json (reply->workflow_source): NULL;
            break;
        case QN_HTTP_ROUTE_WORKFLOW_DIFF:
            json = reply->body_case == QANAT__REPLY__BODY_WORKFLOW_SOURCE
                 ? s_diff_json (call, reply, &status): NULL;
            break;
        case QN_HTTP_ROUTE_AGENT_DRAIN:
        case QN_HTTP_ROUTE_AGENT_UNDRAIN:
        case QN_HTTP_ROUTE_AGENT_REVOKE:
            json = s_agent_json (&call->route, reply);
            break;
        case QN_HTTP_ROUTE_WORKFLOW_PUBLISH:
            json = reply->body_case == QANAT__REPLY__BODY_WORKFLOW
                 ? qn_json_from_message (&reply->workflow->base): NULL;
            //  An unchanged text is no new version: 200, not 201
            if (json && !reply->workflow->created)
                call->route.status = 200;
            break;
        case QN_HTTP_ROUTE_RUN_NOTIFICATIONS:
            json = reply->body_case == QANAT__REPLY__BODY_NOTIFICATIONS
                 ? s_notifications_json (reply->notifications): NULL;
            break;
        case QN_HTTP_ROUTE_BLOB_GET:
            json = reply->body_case == QANAT__REPLY__BODY_BLOB
                 ? qn_http_blob_json (call->route.name, reply->blob->total_size): NULL;
            break;
        case QN_HTTP_ROUTE_WHOAMI:
        case QN_HTTP_ROUTE_RUN_METRICS:
        case QN_HTTP_ROUTE_WORKFLOW_METRIC:
        case QN_HTTP_ROUTE_WORKFLOWS_LIST:
        case QN_HTTP_ROUTE_WORKFLOW_VERSION:
        case QN_HTTP_ROUTE_AGENTS_LIST:
        case QN_HTTP_ROUTE_STATS:
        case QN_HTTP_ROUTE_APITOKENS_LIST:
        case QN_HTTP_ROUTE_APITOKEN_CREATE:
        case QN_HTTP_ROUTE_APITOKEN_REVOKE:
        default: {
            //  The reply's body as it is: whoami, metrics, workflows, agents, stats, tokens
            const ProtobufCFieldDescriptor *field = protobuf_c_message_descriptor_get_field (
                &qanat__reply__descriptor, (unsigned) reply->body_case);
            const ProtobufCMessage *body = field && field->type == PROTOBUF_C_TYPE_MESSAGE
                ? *(const ProtobufCMessage **) ((const char *) reply + field->offset): NULL;
            json = body? qn_json_from_message (body): NULL;
            break;
        }
    }
    qanat__reply__free_unpacked (reply, NULL);
    if (status)
        return qn_http_send_call_error (call);
    if (!json)
        return qn_http_send_error (call->server, call->connection, 503, NULL,
                                   "unexpected reply from the coordinator", NULL);
    return qn_http_send_json (call->server, call->connection, (unsigned int) call->route.status,
                              json);
}

//  ---------------------------------------------------------------------
//  /metrics

static void
s_prom_http (qn_http_t *server, qn_prom_t *prom)
{
    uint64_t responses [QN_HTTP_STATUS_MAX];
    pthread_mutex_lock (&server->lock);
    memcpy (responses, server->responses, sizeof responses);
    uint64_t requests = server->requests;
    double streams = 0;
    for (int *count = (int *) zhash_first (server->streams); count;
         count = (int *) zhash_next (server->streams))
        streams += *count;
    pthread_mutex_unlock (&server->lock);
    qn_prom_counter (prom, "qanat_http_requests_total", "HTTP requests received", NULL,
                     (double) requests);
    for (unsigned int status = 100; status < QN_HTTP_STATUS_MAX; status++) {
        if (!responses [status])
            continue;
        char code [8];
        snprintf (code, sizeof code, "%u", status);
        char *label = qn_prom_label_text ("code", code);
        qn_prom_counter (prom, "qanat_http_responses_total", "HTTP responses by status code",
                         label, (double) responses [status]);
        free (label);
    }
    qn_prom_gauge (prom, "qanat_http_event_streams", "server-sent event streams open", NULL,
                   streams);
}

//  Agents by state, when the engine's Stats do not count them already
static void
s_prom_agents (qn_prom_t *prom, const Qanat__AgentList *list)
{
    const char *states [] = { "connected", "suspect", "lost", "disconnected" };
    double counts [4] = { 0, 0, 0, 0 }, draining = 0;
    for (size_t i = 0; i < list->n_agents; i++) {
        for (size_t s = 0; s < 4; s++)
            if (list->agents [i]->state && strcmp (list->agents [i]->state, states [s]) == 0)
                counts [s]++;
        draining += list->agents [i]->draining;
    }
    for (size_t s = 0; s < 4; s++) {
        char *label = qn_prom_label_text ("state", states [s]);
        qn_prom_gauge (prom, "qanat_agents", "agents known, by state", label, counts [s]);
        free (label);
    }
    qn_prom_gauge (prom, "qanat_agents_draining", "agents taking no new work", NULL, draining);
}

enum MHD_Result
qn_http_routes_metrics (qn_http_call_t *call)
{
    Qanat__Reply *stats = NULL;
    if (qn_http_engine (call, &call->request, &stats))
        return qn_http_send_call_error (call);
    Qanat__ListAgents list = QANAT__LIST_AGENTS__INIT;
    Qanat__Request request = QANAT__REQUEST__INIT;
    request.body_case = QANAT__REQUEST__BODY_LIST_AGENTS;
    request.list_agents = &list;
    Qanat__Reply *agents = NULL;
    if (qn_http_engine (call, &request, &agents)) {
        qanat__reply__free_unpacked (stats, NULL);
        return qn_http_send_call_error (call);
    }
    qn_prom_t *prom = qn_prom_new ();
    char *text = NULL;
    if (prom) {
        if (stats->body_case == QANAT__REPLY__BODY_STATS) {
            qn_prom_add_stats (prom, &stats->stats->base);
            if (stats->stats->n_agents_by_state == 0 && agents->body_case == QANAT__REPLY__BODY_AGENTS)
                s_prom_agents (prom, agents->agents);
        }
        s_prom_http (call->server, prom);
        text = qn_prom_text (prom);
        qn_prom_destroy (&prom);
    }
    qanat__reply__free_unpacked (stats, NULL);
    qanat__reply__free_unpacked (agents, NULL);
    if (!text)
        return qn_http_send_error (call->server, call->connection, 503, NULL, "out of memory",
                                   NULL);
    struct MHD_Response *response = MHD_create_response_from_buffer (strlen (text), text,
                                                                     MHD_RESPMEM_MUST_FREE);
    if (!response) {
        free (text);
        return MHD_NO;
    }
    MHD_add_response_header (response, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
    return qn_http_queue (call->server, call->connection, 200, response, true);
}
