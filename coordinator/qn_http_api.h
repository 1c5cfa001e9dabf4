/*  qn_http_api - the routes of the HTTP/JSON API (/api/v1/..., /metrics):
    what an HTTP request means as an engine Request.

    One of the files of the qn_http class.

    qn_http_api_decode is pure (no sockets, no engine): it takes the
    method, the path, a way to read query arguments and the body, and
    gives the protobuf Request the CLI would send for the same thing,
    plus what the route needs to shape the answer.  The fuzz target
    tests/fuzz/fuzz_http.c drives it with hostile input.
*/
#ifndef QN_HTTP_API_H_INCLUDED
#define QN_HTTP_API_H_INCLUDED

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include "qn_msg.h"

#ifdef __cplusplus
extern "C" {
#endif

#define QN_HTTP_API_PREFIX  "/api/v1"
#define QN_HTTP_NAME_MAX    512

typedef enum {
    QN_HTTP_ROUTE_NONE = 0,
    QN_HTTP_ROUTE_SESSION_CREATE,       //  POST /session
    QN_HTTP_ROUTE_SESSION_DELETE,       //  DELETE /session
    QN_HTTP_ROUTE_WHOAMI,
    QN_HTTP_ROUTE_RUNS_LIST,
    QN_HTTP_ROUTE_RUNS_START,
    QN_HTTP_ROUTE_RUNS_EVENTS,          //  SSE
    QN_HTTP_ROUTE_RUN_GET,
    QN_HTTP_ROUTE_RUN_CANCEL,
    QN_HTTP_ROUTE_RUN_LOGS,
    QN_HTTP_ROUTE_RUN_LOGS_TXT,
    QN_HTTP_ROUTE_RUN_LOGS_STREAM,      //  SSE
    QN_HTTP_ROUTE_RUN_EVENTS,           //  SSE
    QN_HTTP_ROUTE_RUN_METRICS,
    QN_HTTP_ROUTE_RUN_ARTIFACTS,
    QN_HTTP_ROUTE_RUN_ARTIFACT,         //  download
    QN_HTTP_ROUTE_WORKFLOWS_LIST,
    QN_HTTP_ROUTE_WORKFLOW_GET,
    QN_HTTP_ROUTE_WORKFLOW_VERSION,
    QN_HTTP_ROUTE_WORKFLOW_DIFF,
    QN_HTTP_ROUTE_WORKFLOW_METRIC,
    QN_HTTP_ROUTE_AGENTS_LIST,
    QN_HTTP_ROUTE_AGENTS_EVENTS,        //  SSE
    QN_HTTP_ROUTE_AGENT_DRAIN,
    QN_HTTP_ROUTE_AGENT_UNDRAIN,
    QN_HTTP_ROUTE_AGENT_REVOKE,
    QN_HTTP_ROUTE_STATS,
    QN_HTTP_ROUTE_APITOKENS_LIST,
    QN_HTTP_ROUTE_APITOKEN_CREATE,
    QN_HTTP_ROUTE_APITOKEN_REVOKE,
    QN_HTTP_ROUTE_METRICS,              //  /metrics, Prometheus text
    QN_HTTP_ROUTE_WORKFLOW_PUBLISH,     //  POST /workflows
    QN_HTTP_ROUTE_BLOB_GET,             //  GET /blobs/{sha256}
    QN_HTTP_ROUTE_BLOB_PUT,             //  PUT /blobs/{sha256}: a raw body, streamed
    QN_HTTP_ROUTE_RUN_NOTIFICATIONS,    //  GET /runs/{id}/notifications
    QN_HTTP_ROUTE_LIMITS_LIST,          //  GET /limits: pools and owners' weights
    QN_HTTP_ROUTE_SCHEDULES_LIST,       //  GET /schedules
    QN_HTTP_ROUTE_SCHEDULE_PAUSE,       //  POST /schedules/{workflow}/pause
    QN_HTTP_ROUTE_SCHEDULE_RESUME       //  POST /schedules/{workflow}/resume
} qn_http_route_id_t;

//  What a decoded request is, beyond its engine Request
typedef struct {
    qn_http_route_id_t id;
    int status;                         //  the HTTP status of a success
    bool stream;                        //  a server-sent event stream
    uint64_t run_id;
    char task [QN_HTTP_NAME_MAX];       //  artifact's task
    char name [QN_HTTP_NAME_MAX];       //  artifact, workflow, agent or token name, blob hash
    uint32_t from, to;                  //  workflow diff versions
    uint64_t after;                     //  logs: after this log sequence
    bool has_after;
    char token [QN_HTTP_NAME_MAX];      //  POST /session: the token to check
} qn_http_route_t;

//  Reads one query argument (already %-decoded), NULL when absent
typedef const char *(qn_http_query_fn) (void *arg, const char *key);

//  Decodes one HTTP request.  path is the %-decoded path (with the
//  /api/v1 prefix, or /metrics); query may be NULL (no arguments).
//  0: *route_out says what it is and request_out holds the engine
//  request (body_case NOT_SET when the route needs none, as DELETE
//  /session); release it with qn_http_api_request_reset.  Else the HTTP
//  status of the refusal (400, 404, 405, 413) with *error_out set to
//  the JSON error body, and request_out empty.
int
    qn_http_api_decode (const char *method, const char *path,
                        qn_http_query_fn *query, void *query_arg,
                        const char *body, size_t body_size,
                        Qanat__Request *request_out, qn_http_route_t *route_out,
                        json_t **error_out);

//  The route that method and path name, QN_HTTP_ROUTE_NONE for none,
//  without reading query arguments or a body: for what is decided
//  before the request is decoded (a missing credential).
qn_http_route_id_t
    qn_http_api_route (const char *method, const char *path);

//  A whole decimal number, digits only and within 64 bits (a header's
//  value, as Last-Event-ID): false for anything else
bool
    qn_http_api_parse_uint (const char *text, uint64_t *value_p);

//  Frees what qn_http_api_decode put in request and leaves it empty.
void
    qn_http_api_request_reset (Qanat__Request *request);

//  The methods a path allows ("GET, POST"), for 405's Allow header, or
//  NULL when no route has that path.
const char *
    qn_http_api_allowed (const char *path);

#ifdef __cplusplus
}
#endif
#endif
