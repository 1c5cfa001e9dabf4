/*  qn_http_internal - what the files of the HTTP server share.

    One of the files of the qn_http class.

    qn_http.c: the daemon, limits, security headers, static files, the
    session cookie, /metrics; qn_http_api.c: requests decoded;
    qn_http_routes.c: JSON routes; qn_http_sse.c: event streams;
    qn_http_download.c: artifacts and logs.txt; qn_http_blobs.c: blob
    uploads.
*/
#ifndef QN_HTTP_INTERNAL_H_INCLUDED
#define QN_HTTP_INTERNAL_H_INCLUDED

#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include "qn_http.h"
#include "qn_http_api.h"
#include "qn_http_bridge.h"

#define QN_HTTP_CONNECTIONS_MAX     256
#define QN_HTTP_PER_IP_MAX          32
#define QN_HTTP_IDLE_TIMEOUT_S      15
#define QN_HTTP_HEADERS_MAX         (8 * 1024)
#define QN_HTTP_STREAMS_PER_TOKEN   32
#define QN_HTTP_KEEPALIVE_MS        10000
#define QN_HTTP_STATUS_MAX          600
#define QN_HTTP_BLOB_PIECE          (1024 * 1024)
#define QN_HTTP_BLOB_MAX            (64ull * 1024 * 1024 * 1024)

struct _qn_http_t {
    struct MHD_Daemon *daemon;
    char *web_dir;                  //  real paths
    char *javascript_dir;
    char *api_endpoint;
    char *events_endpoint;
    char *cert_pem;
    char *key_pem;
    char *url;
    char *metrics_credential;       //  for /metrics without a caller's token, or NULL
    bool tls;
    bool metrics_public;
    bool credential_required;
    int call_timeout_ms;
    uint16_t port;
    atomic_bool stopping;
    pthread_mutex_t lock;           //  guards what follows
    uint64_t responses [QN_HTTP_STATUS_MAX];
    uint64_t requests;
    bool started;                   //  MHD_start_daemon returned
    char start_error [256];         //  MHD's first complaint before that
    zhash_t *streams;               //  credential -> open event streams (int *)
};

//  One HTTP connection (MHD socket context): its bridge to the engine
typedef struct {
    qn_http_bridge_t *bridge;
} qn_http_conn_t;

//  One API request being served
typedef struct {
    qn_http_t *server;
    struct MHD_Connection *connection;
    qn_http_conn_t *conn;
    const char *method;
    const char *path;
    const char *credential;         //  "" = none
    qn_http_route_t route;
    Qanat__Request request;
    int error_status;               //  set with error by qn_http_engine
    json_t *error;
} qn_http_call_t;

//  ---- responses (qn_http.c) ----

//  Adds the security headers (and no-store for api), counts the status,
//  queues and releases response.
enum MHD_Result
    qn_http_queue (qn_http_t *self, struct MHD_Connection *connection, unsigned int status,
                   struct MHD_Response *response, bool api);

//  A JSON body (stolen) with status
enum MHD_Result
    qn_http_send_json (qn_http_t *self, struct MHD_Connection *connection, unsigned int status,
                       json_t *body);

//  {"error": {...}}
enum MHD_Result
    qn_http_send_error (qn_http_t *self, struct MHD_Connection *connection, unsigned int status,
                        const char *code, const char *message, const char *field);

//  The error code word of an HTTP status ("not_found")
const char *
    qn_http_error_code (unsigned int status);

//  ---- engine calls (qn_http_routes.c) ----

//  Sends request through the connection's bridge with the call's
//  credential.  0 and *reply_p, or the HTTP status of the failure with
//  call->error set (Refusal 401, Error.code or wording 404/403/409/503/400).
int
    qn_http_engine (qn_http_call_t *call, Qanat__Request *request, Qanat__Reply **reply_p);

//  The HTTP status of an engine Error: by its code, else by its wording
unsigned int
    qn_http_error_status (const Qanat__Error *error);

//  Sends call->error with call->error_status
enum MHD_Result
    qn_http_send_call_error (qn_http_call_t *call);

//  Serves a decoded API route (not streams or downloads)
enum MHD_Result
    qn_http_routes_serve (qn_http_call_t *call);

//  Serves /metrics: GetStats, ListAgents and the server's own counters
enum MHD_Result
    qn_http_routes_metrics (qn_http_call_t *call);

//  The JSON of a run (qn_json's, with duration_s)
json_t *
    qn_http_run_json (const Qanat__RunInfo *run);

//  {"runs": [...], "next": "<cursor>" or null}
json_t *
    qn_http_run_list_json (const Qanat__RunList *list);

//  The JSON of a log line, as /logs and the log stream give it
json_t *
    qn_http_log_line_json (const Qanat__LogLine *line);

//  ---- event streams (qn_http_sse.c) ----

enum MHD_Result
    qn_http_sse_serve (qn_http_call_t *call);

//  ---- downloads (qn_http_download.c) ----

enum MHD_Result
    qn_http_download_artifact (qn_http_call_t *call);

enum MHD_Result
    qn_http_download_logs (qn_http_call_t *call);

//  ---- blob uploads (qn_http_blobs.c) ----

typedef struct _qn_http_upload_t qn_http_upload_t;

//  Starts PUT /blobs/{sha256} for a decoded call (its hash in
//  route.name): checks Content-Length and asks the engine what it holds.
//  The upload, or NULL when already answered (*result_p).
qn_http_upload_t *
    qn_http_blobs_begin (qn_http_call_t *call, enum MHD_Result *result_p);

//  Feeds body bytes as they come; -1 to drop the connection
int
    qn_http_blobs_take (qn_http_upload_t *self, const char *data, size_t size);

//  The body is in: the last piece, then the answer (201, 200, or the error)
enum MHD_Result
    qn_http_blobs_finish (qn_http_upload_t *self);

void
    qn_http_blobs_destroy (qn_http_upload_t **self_p);

//  {"hash": ..., "size": ...}
json_t *
    qn_http_blob_json (const char *hash, uint64_t size);

#endif
