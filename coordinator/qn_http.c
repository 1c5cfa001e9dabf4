/*  qn_http - qanatd's HTTP server (see qn_http.h): the daemon, its
    limits, the security headers, the static files of the web UI, the
    session cookie, and the dispatch of API requests.

    One of the files of the qn_http class.
*/
#include "qn_http_internal.h"
#include "qn_json.h"
#include "qn_log.h"
#include <arpa/inet.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <sys/stat.h>

#define SESSION_COOKIE  "qanat_session"

static const char *s_csp =
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

//  One request's upload, kept across the access handler's calls
typedef struct {
    bool started;
    char *body;
    size_t size;
    size_t capacity;
    bool too_large;
    uint64_t discarded;
    qn_http_upload_t *upload;       //  PUT /blobs: the body goes to the engine
} s_request_t;

//  ---------------------------------------------------------------------
//  Responses

const char *
qn_http_error_code (unsigned int status)
{
    switch (status) {
        case 401: return "unauthorized";
        case 403: return "forbidden";
        case 404: return "not_found";
        case 409: return "conflict";
        case 413: case 431: return "too_large";
        case 429: case 503: case 504: return "unavailable";
        default:  return status >= 500? "unavailable": "bad_request";
    }
}

enum MHD_Result
qn_http_queue (qn_http_t *self, struct MHD_Connection *connection, unsigned int status,
               struct MHD_Response *response, bool api)
{
    if (!response)
        return MHD_NO;
    MHD_add_response_header (response, "Content-Security-Policy", s_csp);
    MHD_add_response_header (response, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header (response, "Referrer-Policy", "no-referrer");
    MHD_add_response_header (response, "X-Frame-Options", "DENY");
    if (api)
        MHD_add_response_header (response, "Cache-Control", "no-store");
    pthread_mutex_lock (&self->lock);
    self->responses [status < QN_HTTP_STATUS_MAX? status: 0]++;
    pthread_mutex_unlock (&self->lock);
    enum MHD_Result rc = MHD_queue_response (connection, status, response);
    MHD_destroy_response (response);
    return rc;
}

enum MHD_Result
qn_http_send_json (qn_http_t *self, struct MHD_Connection *connection, unsigned int status,
                   json_t *body)
{
    char *text = body? json_dumps (body, JSON_COMPACT | JSON_ENSURE_ASCII): NULL;
    json_decref (body);
    if (!text) {
        status = 503;
        text = strdup ("{\"error\":{\"code\":\"unavailable\",\"message\":\"out of memory\"}}");
        if (!text)
            return MHD_NO;
    }
    size_t size = strlen (text);
    char *line = (char *) realloc (text, size + 1 + 1);     //  room for the newline
    if (!line) {
        free (text);
        return MHD_NO;
    }
    text = line;
    memcpy (text + size, "\n", 2);
    struct MHD_Response *response =
        MHD_create_response_from_buffer (size + 1, text, MHD_RESPMEM_MUST_FREE);
    if (!response) {
        free (text);
        return MHD_NO;
    }
    MHD_add_response_header (response, "Content-Type", "application/json");
    return qn_http_queue (self, connection, status, response, true);
}

enum MHD_Result
qn_http_send_error (qn_http_t *self, struct MHD_Connection *connection, unsigned int status,
                    const char *code, const char *message, const char *field)
{
    return qn_http_send_json (self, connection, status,
                              qn_json_error (code? code: qn_http_error_code (status),
                                             message, field));
}

//  ---------------------------------------------------------------------
//  Static files: the web UI (web_dir) and Debian's JavaScript libraries

static const char *
s_content_type (const char *path)
{
    static const struct { const char *ext, *type; } types [] = {
        { ".html", "text/html; charset=utf-8" },
        { ".js",   "text/javascript; charset=utf-8" },
        { ".mjs",  "text/javascript; charset=utf-8" },
        { ".css",  "text/css; charset=utf-8" },
        { ".svg",  "image/svg+xml" },
        { ".png",  "image/png" },
        { ".json", "application/json" },
        { ".map",  "application/json" },
        { ".ico",  "image/x-icon" },
        { ".txt",  "text/plain; charset=utf-8" },
        { ".woff2", "font/woff2" },
    };
    const char *dot = strrchr (path, '.');
    const char *slash = strrchr (path, '/');
    if (dot && (!slash || dot > slash))
        for (size_t i = 0; i < sizeof types / sizeof types [0]; i++)
            if (strcasecmp (dot, types [i].ext) == 0)
                return types [i].type;
    return "application/octet-stream";
}

//  Serves root/relpath when it is a regular file inside root after every
//  symlink is resolved; 404 otherwise.  root is a real path.
static enum MHD_Result
s_serve_file (qn_http_t *self, struct MHD_Connection *connection, const char *root,
              const char *relpath)
{
    if (!root || !*relpath || strstr (relpath, "..") || strchr (relpath, '\\')
    ||  strstr (relpath, "//") || *relpath == '/' || strlen (relpath) > 1024)
        return qn_http_send_error (self, connection, 404, NULL, "no such file", NULL);
    for (const char *c = relpath; *c; c++)
        if ((unsigned char) *c < 0x20 || *c == 0x7f)
            return qn_http_send_error (self, connection, 404, NULL, "no such file", NULL);
    char joined [PATH_MAX + 1200];
    snprintf (joined, sizeof joined, "%s/%s", root, relpath);
    char *real = realpath (joined, NULL);
    size_t root_len = strlen (root);
    int fd = -1;
    struct stat st;
    if (real && strncmp (real, root, root_len) == 0 && real [root_len] == '/')
        fd = open (real, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    free (real);
    if (fd == -1 || fstat (fd, &st) == -1 || !S_ISREG (st.st_mode)) {
        if (fd != -1)
            close (fd);
        return qn_http_send_error (self, connection, 404, NULL, "no such file", NULL);
    }
    struct MHD_Response *response =
        MHD_create_response_from_fd ((uint64_t) st.st_size, fd);
    if (!response) {
        close (fd);
        return MHD_NO;
    }
    MHD_add_response_header (response, "Content-Type", s_content_type (relpath));
    MHD_add_response_header (response, "Cache-Control", "no-cache");
    return qn_http_queue (self, connection, 200, response, false);
}

static enum MHD_Result
s_serve_static (qn_http_t *self, struct MHD_Connection *connection, const char *method,
                const char *url)
{
    if (strcmp (method, "GET") != 0 && strcmp (method, "HEAD") != 0) {
        struct MHD_Response *response = MHD_create_response_from_buffer (0, NULL,
                                                                         MHD_RESPMEM_PERSISTENT);
        MHD_add_response_header (response, "Allow", "GET, HEAD");
        return qn_http_queue (self, connection, 405, response, false);
    }
    if (strcmp (url, "/") == 0 || strcmp (url, "/index.html") == 0 || strcmp (url, "/ui") == 0
    ||  strncmp (url, "/ui/", 4) == 0)
        return s_serve_file (self, connection, self->web_dir, "index.html");
    if (strncmp (url, "/static/", 8) == 0 && self->web_dir) {
        char root [PATH_MAX + 16];
        snprintf (root, sizeof root, "%s/static", self->web_dir);
        char *real_root = realpath (root, NULL);
        enum MHD_Result rc = s_serve_file (self, connection, real_root, url + 8);
        free (real_root);
        return rc;
    }
    if (strncmp (url, "/javascript/", 12) == 0)
        return s_serve_file (self, connection, self->javascript_dir, url + 12);
    return qn_http_send_error (self, connection, 404, NULL, "no such page", NULL);
}

//  ---------------------------------------------------------------------
//  Credentials: a bearer token, or the session cookie

static bool
s_token_ok (const char *token)
{
    size_t len = strlen (token);
    if (len == 0 || len > 512)
        return false;
    //  Printable, and safe inside a cookie
    for (const char *c = token; *c; c++)
        if (*c <= 0x20 || *c >= 0x7f || *c == ';' || *c == ',' || *c == '"' || *c == '\\')
            return false;
    return true;
}

//  Whether the request comes from a page of our own origin: its Origin
//  is this server's scheme and Host.  A request without Origin (not
//  from a browser's page) passes only when absent_ok.
static bool
s_same_origin (qn_http_t *self, struct MHD_Connection *connection, bool absent_ok)
{
    const char *origin = MHD_lookup_connection_value (connection, MHD_HEADER_KIND, "Origin");
    if (!origin)
        return absent_ok;
    const char *host = MHD_lookup_connection_value (connection, MHD_HEADER_KIND, "Host");
    char own [600];
    int size = host? snprintf (own, sizeof own, "%s://%s", self->tls? "https": "http", host)
                   : -1;
    return size > 0 && (size_t) size < sizeof own && strcmp (origin, own) == 0;
}

//  The caller's credential: 0 (*credential_p, "" for none), or an HTTP
//  status already answered.
static int
s_credential (qn_http_t *self, struct MHD_Connection *connection, const char *method,
              const char **credential_p, enum MHD_Result *result_p)
{
    *credential_p = "";
    const char *auth = MHD_lookup_connection_value (connection, MHD_HEADER_KIND,
                                                    MHD_HTTP_HEADER_AUTHORIZATION);
    if (auth) {
        if (strncasecmp (auth, "Bearer ", 7) != 0 || !s_token_ok (auth + 7)) {
            *result_p = qn_http_send_error (self, connection, 401, NULL,
                                            "Authorization wants: Bearer <API token>", NULL);
            return 401;
        }
        *credential_p = auth + 7;
        return 0;
    }
    const char *cookie = MHD_lookup_connection_value (connection, MHD_COOKIE_KIND, SESSION_COOKIE);
    if (!cookie || !*cookie)
        return 0;
    if (!s_token_ok (cookie)) {
        *result_p = qn_http_send_error (self, connection, 401, NULL, "bad session cookie", NULL);
        return 401;
    }
    //  A cookie rides along on any request a page makes, so whatever
    //  changes something must come from a page of our own origin
    if (strcmp (method, "GET") != 0 && strcmp (method, "HEAD") != 0
    &&  !s_same_origin (self, connection, false)) {
        *result_p = qn_http_send_error (self, connection, 403, NULL,
                                        "cross-origin request refused", "Origin");
        return 403;
    }
    *credential_p = cookie;
    return 0;
}

//  POST /session: the token is checked by the engine (WhoAmI with it),
//  then set as an HttpOnly cookie; DELETE /session clears it.
static enum MHD_Result
s_session (qn_http_call_t *call)
{
    qn_http_t *self = call->server;
    const char *secure = self->tls? "; Secure": "";
    char cookie [1200];
    //  Another site's page must not sign its visitor in (as someone
    //  else) or out: the browser names that page in Origin
    if (!s_same_origin (self, call->connection, true))
        return qn_http_send_error (self, call->connection, 403, NULL,
                                   "cross-origin request refused", "Origin");
    if (call->route.id == QN_HTTP_ROUTE_SESSION_DELETE) {
        snprintf (cookie, sizeof cookie, SESSION_COOKIE "=; HttpOnly; SameSite=Strict; "
                  "Path=/; Max-Age=0%s", secure);
        struct MHD_Response *response = MHD_create_response_from_buffer (0, NULL,
                                                                         MHD_RESPMEM_PERSISTENT);
        MHD_add_response_header (response, "Set-Cookie", cookie);
        return qn_http_queue (self, call->connection, 204, response, true);
    }
    if (!s_token_ok (call->route.token))
        return qn_http_send_error (self, call->connection, 401, NULL, "not a valid API token",
                                   "token");
    call->credential = call->route.token;
    Qanat__Reply *reply = NULL;
    if (qn_http_engine (call, &call->request, &reply))
        return qn_http_send_call_error (call);
    json_t *body = json_object ();
    Qanat__Principal *who = reply->body_case == QANAT__REPLY__BODY_WHOAMI? reply->whoami: NULL;
    json_object_set_new (body, "name", json_string (who && who->name? who->name: ""));
    json_object_set_new (body, "role", json_string (who && who->role? who->role: ""));
    qanat__reply__free_unpacked (reply, NULL);
    char *text = json_dumps (body, JSON_COMPACT);
    json_decref (body);
    if (!text)
        return MHD_NO;
    snprintf (cookie, sizeof cookie, SESSION_COOKIE "=%s; HttpOnly; SameSite=Strict; Path=/%s",
              call->route.token, secure);
    struct MHD_Response *response = MHD_create_response_from_buffer (strlen (text), text,
                                                                     MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header (response, "Content-Type", "application/json");
    MHD_add_response_header (response, "Set-Cookie", cookie);
    return qn_http_queue (self, call->connection, 200, response, true);
}

//  ---------------------------------------------------------------------
//  API dispatch

static const char *
s_query (void *arg, const char *key)
{
    return MHD_lookup_connection_value ((struct MHD_Connection *) arg, MHD_GET_ARGUMENT_KIND, key);
}

static bool
s_from_loopback (struct MHD_Connection *connection)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info (connection, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (!info || !info->client_addr)
        return false;
    const struct sockaddr *addr = info->client_addr;
    if (addr->sa_family == AF_INET)
        return (ntohl (((const struct sockaddr_in *) addr)->sin_addr.s_addr) >> 24) == 127;
    if (addr->sa_family == AF_INET6) {
        const struct in6_addr *a6 = &((const struct sockaddr_in6 *) addr)->sin6_addr;
        if (IN6_IS_ADDR_LOOPBACK (a6))
            return true;
        return IN6_IS_ADDR_V4MAPPED (a6) && a6->s6_addr [12] == 127;
    }
    return false;
}

//  Whether a route needs the caller's credential (not the session's own
//  routes, not /metrics, which has rules of its own); unknown routes
//  are left to the decoder's 404 and 405
static bool
s_wants_credential (const char *method, const char *url)
{
    qn_http_route_id_t id = qn_http_api_route (method, url);
    return id != QN_HTTP_ROUTE_NONE && id != QN_HTTP_ROUTE_SESSION_CREATE
        && id != QN_HTTP_ROUTE_SESSION_DELETE && id != QN_HTTP_ROUTE_METRICS;
}

//  What every API request goes through first: its connection's bridge,
//  the credential (401 without one where one is needed, before the body
//  or query is looked at), then the decoding.  0 with call ready, or 1
//  with the answer queued (*result_p).
static int
s_call_begin (qn_http_t *self, struct MHD_Connection *connection, const char *method,
              const char *url, s_request_t *request, qn_http_call_t *call,
              enum MHD_Result *result_p)
{
    memset (call, 0, sizeof *call);
    call->server = self;
    call->connection = connection;
    call->method = method;
    call->path = url;
    *result_p = MHD_NO;
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info (connection, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    call->conn = info? (qn_http_conn_t *) info->socket_context: NULL;
    if (!call->conn)
        return 1;
    if (s_credential (self, connection, method, &call->credential, result_p))
        return 1;
    const char *as = strcmp (method, "HEAD") == 0? "GET": method;
    if (!*call->credential && self->credential_required && s_wants_credential (as, url)) {
        *result_p = qn_http_send_error (self, connection, 401, NULL, "no credential: send "
                                        "Authorization: Bearer <API token> or sign in", NULL);
        return 1;
    }
    json_t *error = NULL;
    int status = qn_http_api_decode (as, url, s_query, connection, request->body, request->size,
                                     &call->request, &call->route, &error);
    if (status == 0)
        return 0;
    if (status != 405) {
        *result_p = qn_http_send_json (self, connection, (unsigned int) status, error);
        return 1;
    }
    char *text = json_dumps (error, JSON_COMPACT);
    json_decref (error);
    struct MHD_Response *response = text
        ? MHD_create_response_from_buffer (strlen (text), text, MHD_RESPMEM_MUST_FREE)
        : NULL;
    if (!response) {
        free (text);
        return 1;
    }
    const char *allowed = qn_http_api_allowed (url);
    MHD_add_response_header (response, "Allow", allowed? allowed: "GET");
    MHD_add_response_header (response, "Content-Type", "application/json");
    *result_p = qn_http_queue (self, connection, 405, response, true);
    return 1;
}

//  PUT /blobs/{sha256}, once its headers are in: the body is fed to the
//  engine as it arrives (qn_http_blobs.c), never kept whole
static enum MHD_Result
s_begin_upload (qn_http_t *self, struct MHD_Connection *connection, const char *method,
                const char *url, s_request_t *request)
{
    qn_http_call_t call;
    enum MHD_Result result = MHD_NO;
    if (s_call_begin (self, connection, method, url, request, &call, &result))
        return result;
    request->upload = qn_http_blobs_begin (&call, &result);
    qn_http_api_request_reset (&call.request);
    json_decref (call.error);
    return result;
}

static enum MHD_Result
s_serve_api (qn_http_t *self, struct MHD_Connection *connection, const char *method,
             const char *url, s_request_t *request)
{
    qn_http_call_t call;
    enum MHD_Result result = MHD_NO;
    if (s_call_begin (self, connection, method, url, request, &call, &result))
        return result;
    switch (call.route.id) {
        case QN_HTTP_ROUTE_SESSION_CREATE:
        case QN_HTTP_ROUTE_SESSION_DELETE:
            result = s_session (&call);
            break;
        case QN_HTTP_ROUTE_METRICS:
            if (!*call.credential && !self->metrics_public && !s_from_loopback (connection))
                result = qn_http_send_error (self, connection, 401, NULL,
                                             "/metrics wants a credential from here", NULL);
            else {
                //  Allowed without a token: the server's own credential
                if (!*call.credential && self->metrics_credential)
                    call.credential = self->metrics_credential;
                result = qn_http_routes_metrics (&call);
            }
            break;
        case QN_HTTP_ROUTE_RUN_ARTIFACT:
            result = qn_http_download_artifact (&call);
            break;
        case QN_HTTP_ROUTE_RUN_LOGS_TXT:
            result = qn_http_download_logs (&call);
            break;
        default:
            result = call.route.stream? qn_http_sse_serve (&call): qn_http_routes_serve (&call);
            break;
    }
    qn_http_api_request_reset (&call.request);
    json_decref (call.error);
    return result;
}

//  ---------------------------------------------------------------------
//  The access handler: limits first, then the upload, then the answer

static enum MHD_Result
s_header_size (void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    (void) kind;
    *(size_t *) cls += strlen (key) + (value? strlen (value): 0) + 4;
    return MHD_YES;
}

//  Checks what is known once the headers are in: 0, or answered
static int
s_first_checks (qn_http_t *self, struct MHD_Connection *connection, bool upload,
                enum MHD_Result *result_p)
{
    size_t headers = 0;
    MHD_get_connection_values (connection, MHD_HEADER_KIND, s_header_size, &headers);
    if (headers > QN_HTTP_HEADERS_MAX) {
        *result_p = qn_http_send_error (self, connection, 431, NULL,
                                        "request headers over 8 KiB", NULL);
        return 431;
    }
    const char *length = MHD_lookup_connection_value (connection, MHD_HEADER_KIND,
                                                      MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (!upload && length && strtoull (length, NULL, 10) > QN_MAX_MESSAGE_SIZE) {
        *result_p = qn_http_send_error (self, connection, 413, NULL,
                                        "request body over the limit", NULL);
        return 413;
    }
    return 0;
}

//  Keeps upload data up to the limit; past it, counts and drops it (and
//  gives up on a client that goes on far past it).
static int
s_take_upload (s_request_t *request, const char *data, size_t size)
{
    if (request->too_large || request->size + size > QN_MAX_MESSAGE_SIZE) {
        request->too_large = true;
        request->discarded += size;
        return request->discarded > 4ull * QN_MAX_MESSAGE_SIZE? -1: 0;
    }
    if (request->size + size + 1 > request->capacity) {
        size_t capacity = request->capacity? request->capacity: 4096;
        while (capacity < request->size + size + 1)
            capacity *= 2;
        char *grown = (char *) realloc (request->body, capacity);
        if (!grown)
            return -1;
        request->body = grown;
        request->capacity = capacity;
    }
    memcpy (request->body + request->size, data, size);
    request->size += size;
    request->body [request->size] = 0;
    return 0;
}

static enum MHD_Result
s_access (void *cls, struct MHD_Connection *connection, const char *url, const char *method,
          const char *version, const char *upload_data, size_t *upload_data_size, void **req_cls)
{
    (void) version;
    qn_http_t *self = (qn_http_t *) cls;
    s_request_t *request = (s_request_t *) *req_cls;
    if (!request) {
        request = (s_request_t *) calloc (1, sizeof *request);
        if (!request)
            return MHD_NO;
        *req_cls = request;
        pthread_mutex_lock (&self->lock);
        self->requests++;
        pthread_mutex_unlock (&self->lock);
        enum MHD_Result result = MHD_NO;
        bool upload = qn_http_api_route (method, url) == QN_HTTP_ROUTE_BLOB_PUT;
        if (s_first_checks (self, connection, upload, &result))
            return result;
        return upload? s_begin_upload (self, connection, method, url, request): MHD_YES;
    }
    if (*upload_data_size) {
        int rc = request->upload
               ? qn_http_blobs_take (request->upload, upload_data, *upload_data_size)
               : s_take_upload (request, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return rc == 0? MHD_YES: MHD_NO;
    }
    if (request->upload)
        return qn_http_blobs_finish (request->upload);
    if (request->too_large)
        return qn_http_send_error (self, connection, 413, NULL, "request body over the limit",
                                   NULL);
    bool api = strncmp (url, QN_HTTP_API_PREFIX "/", strlen (QN_HTTP_API_PREFIX) + 1) == 0
            || strcmp (url, "/metrics") == 0;
    if (api)
        return s_serve_api (self, connection, method, url, request);
    if (strncmp (url, "/api/", 5) == 0 || strcmp (url, "/api") == 0)
        return qn_http_send_error (self, connection, 404, NULL, "no such route", NULL);
    return s_serve_static (self, connection, method, url);
}

static void
s_completed (void *cls, struct MHD_Connection *connection, void **req_cls,
             enum MHD_RequestTerminationCode toe)
{
    (void) cls;
    (void) connection;
    (void) toe;
    s_request_t *request = (s_request_t *) *req_cls;
    if (request) {
        qn_http_blobs_destroy (&request->upload);
        free (request->body);
        free (request);
        *req_cls = NULL;
    }
}

static void
s_connection (void *cls, struct MHD_Connection *connection, void **socket_context,
              enum MHD_ConnectionNotificationCode toe)
{
    (void) cls;
    (void) connection;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        qn_http_conn_t *conn = (qn_http_conn_t *) calloc (1, sizeof *conn);
        if (conn)
            conn->bridge = qn_http_bridge_new (((qn_http_t *) cls)->api_endpoint);
        *socket_context = conn;
    }
    else {
        //  The connection's thread is done with its socket by now
        qn_http_conn_t *conn = (qn_http_conn_t *) *socket_context;
        if (conn) {
            qn_http_bridge_destroy (&conn->bridge);
            free (conn);
        }
        *socket_context = NULL;
    }
}

static void
s_mhd_log (void *cls, const char *format, va_list args)
{
    qn_http_t *self = (qn_http_t *) cls;
    char text [512];
    vsnprintf (text, sizeof text, format, args);
    size_t len = strlen (text);
    while (len && (text [len - 1] == '\n' || text [len - 1] == '\r'))
        text [--len] = 0;
    qn_log (QN_LOG_WARNING, "http", "%s", text);
    //  The first complaint while starting says best why it failed
    pthread_mutex_lock (&self->lock);
    if (!self->started && !*self->start_error)
        snprintf (self->start_error, sizeof self->start_error, "%s", text);
    pthread_mutex_unlock (&self->lock);
}

//  ---------------------------------------------------------------------
//  Construction

//  Parses "ADDR:PORT" or "[IPv6]:PORT" ("localhost" = 127.0.0.1)
static int
s_parse_endpoint (const char *endpoint, struct sockaddr_storage *addr, bool *loopback_p,
                  char **error_p)
{
    memset (addr, 0, sizeof *addr);
    char host [256];
    const char *colon = NULL;
    if (*endpoint == '[') {
        const char *close = strchr (endpoint, ']');
        if (!close || close [1] != ':' || (size_t) (close - endpoint - 1) >= sizeof host)
            goto bad;
        memcpy (host, endpoint + 1, (size_t) (close - endpoint - 1));
        host [close - endpoint - 1] = 0;
        colon = close + 1;
    }
    else {
        colon = strrchr (endpoint, ':');
        if (!colon || (size_t) (colon - endpoint) >= sizeof host)
            goto bad;
        memcpy (host, endpoint, (size_t) (colon - endpoint));
        host [colon - endpoint] = 0;
    }
    char *end = NULL;
    long port = strtol (colon + 1, &end, 10);
    if (!colon [1] || *end || port < 0 || port > 65535)
        goto bad;
    if (strcmp (host, "localhost") == 0)
        snprintf (host, sizeof host, "127.0.0.1");
    struct sockaddr_in *v4 = (struct sockaddr_in *) addr;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *) addr;
    if (*endpoint != '[' && inet_pton (AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons ((uint16_t) port);
        *loopback_p = (ntohl (v4->sin_addr.s_addr) >> 24) == 127;
        return 0;
    }
    if (*endpoint == '[' && inet_pton (AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons ((uint16_t) port);
        *loopback_p = IN6_IS_ADDR_LOOPBACK (&v6->sin6_addr);
        return 0;
    }
bad:
    *error_p = zsys_sprintf ("bad HTTP endpoint '%s': want ADDR:PORT or [IPv6]:PORT", endpoint);
    return -1;
}

//  Reads a PEM file that holds marker (a certificate, a private key)
static char *
s_read_pem (const char *path, const char *marker, const char *what, char **error_p)
{
    FILE *file = fopen (path, "r");
    if (!file) {
        *error_p = zsys_sprintf ("cannot read the %s %s: %s", what, path, strerror (errno));
        return NULL;
    }
    char *text = (char *) calloc (1, 1024 * 1024 + 1);
    size_t size = text? fread (text, 1, 1024 * 1024, file): 0;
    bool failed = ferror (file);
    fclose (file);
    if (!text || failed || size == 0 || size == 1024 * 1024 || strlen (text) != size
    ||  !strstr (text, marker)) {
        free (text);
        *error_p = zsys_sprintf ("%s is not a PEM %s (\"%s\", under 1 MiB)", path, what, marker);
        return NULL;
    }
    return text;
}

static int
s_configure (qn_http_t *self, const qn_http_config_t *config, char **error_p)
{
    self->call_timeout_ms = config->call_timeout_ms > 0? config->call_timeout_ms: 10000;
    self->metrics_public = config->metrics_public;
    self->credential_required = config->credential_required;
    if (config->metrics_credential
    &&  !(self->metrics_credential = strdup (config->metrics_credential))) {
        *error_p = strdup ("out of memory");
        return -1;
    }
    self->api_endpoint = strdup (config->api_endpoint? config->api_endpoint
                                                     : QN_HTTP_API_ENDPOINT);
    self->events_endpoint = strdup (config->events_endpoint? config->events_endpoint
                                                           : QN_HTTP_EVENTS_ENDPOINT);
    self->streams = zhash_new ();
    if (!self->api_endpoint || !self->events_endpoint || !self->streams) {
        *error_p = strdup ("out of memory");
        return -1;
    }
    self->web_dir = config->web_dir? realpath (config->web_dir, NULL): NULL;
    if (!self->web_dir)
        qn_log (QN_LOG_WARNING, "http", "no web UI: cannot find the web directory %s",
                config->web_dir? config->web_dir: "(none given)");
    self->javascript_dir = realpath (config->javascript_dir? config->javascript_dir
                                                           : QN_HTTP_JAVASCRIPT_DIR, NULL);
    if ((config->cert_file != NULL) != (config->key_file != NULL)) {
        *error_p = strdup ("HTTPS needs both a certificate and a key file");
        return -1;
    }
    if (config->cert_file) {
        self->cert_pem = s_read_pem (config->cert_file, "-----BEGIN CERTIFICATE-----",
                                     "certificate", error_p);
        self->key_pem = self->cert_pem? s_read_pem (config->key_file, "PRIVATE KEY-----",
                                                    "private key", error_p): NULL;
        if (!self->key_pem)
            return -1;
        self->tls = true;
    }
    return 0;
}

qn_http_t *
qn_http_new (const qn_http_config_t *config, char **error_p)
{
    char *error = NULL;
    struct sockaddr_storage addr;
    bool loopback = false;
    const char *endpoint = config->endpoint? config->endpoint: QN_HTTP_DEFAULT_ENDPOINT;
    if (s_parse_endpoint (endpoint, &addr, &loopback, &error) != 0) {
        *error_p = error;
        return NULL;
    }
    bool tls = config->cert_file != NULL;
    if (!loopback && !tls && !config->insecure) {
        *error_p = zsys_sprintf ("refusing plain HTTP on the non-loopback address %s: give "
                                 "--http-cert and --http-key, or --http-insecure", endpoint);
        return NULL;
    }
    if (!loopback && !tls)
        qn_log (QN_LOG_WARNING, "http", "--http-insecure: serving plain HTTP on %s; tokens and "
                "cookies cross the network in clear text", endpoint);
    qn_http_t *self = (qn_http_t *) calloc (1, sizeof *self);
    if (!self) {
        *error_p = strdup ("out of memory");
        return NULL;
    }
    pthread_mutex_init (&self->lock, NULL);
    atomic_init (&self->stopping, false);
    if (s_configure (self, config, &error) != 0) {
        qn_http_destroy (&self);
        *error_p = error;
        return NULL;
    }
    unsigned int flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD
                       | MHD_USE_POLL | MHD_USE_ERROR_LOG
                       | (addr.ss_family == AF_INET6? MHD_USE_IPv6: 0)
                       | (self->tls? MHD_USE_TLS: 0);
    //  The logger first, so that MHD's own start-up messages go to it
    struct MHD_OptionItem options [] = {
        { MHD_OPTION_EXTERNAL_LOGGER, (intptr_t) s_mhd_log, self },
        { MHD_OPTION_SOCK_ADDR, 0, &addr },
        { MHD_OPTION_CONNECTION_LIMIT, QN_HTTP_CONNECTIONS_MAX, NULL },
        { MHD_OPTION_PER_IP_CONNECTION_LIMIT, QN_HTTP_PER_IP_MAX, NULL },
        { MHD_OPTION_CONNECTION_TIMEOUT, QN_HTTP_IDLE_TIMEOUT_S, NULL },
        //  Headers (8 KiB, checked again by s_first_checks) and the
        //  connection's buffers come from this pool
        { MHD_OPTION_CONNECTION_MEMORY_LIMIT, 2 * QN_HTTP_HEADERS_MAX, NULL },
        { MHD_OPTION_NOTIFY_COMPLETED, (intptr_t) s_completed, self },
        { MHD_OPTION_NOTIFY_CONNECTION, (intptr_t) s_connection, self },
        { self->tls? MHD_OPTION_HTTPS_MEM_KEY: MHD_OPTION_END, 0, self->key_pem },
        { self->tls? MHD_OPTION_HTTPS_MEM_CERT: MHD_OPTION_END, 0, self->cert_pem },
        { MHD_OPTION_END, 0, NULL }
    };
    self->daemon = MHD_start_daemon (flags, 0, NULL, NULL, s_access, self,
                                     MHD_OPTION_ARRAY, options, MHD_OPTION_END);
    pthread_mutex_lock (&self->lock);
    self->started = true;
    pthread_mutex_unlock (&self->lock);
    if (!self->daemon) {
        *error_p = zsys_sprintf ("cannot serve %s on %s: %s", self->tls? "HTTPS": "HTTP",
                                 endpoint, *self->start_error? self->start_error
                                 : "address in use?");
        qn_http_destroy (&self);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info (self->daemon,
                                                            MHD_DAEMON_INFO_BIND_PORT);
    self->port = info? info->port: 0;
    char host [INET6_ADDRSTRLEN + 2] = "127.0.0.1";
    if (addr.ss_family == AF_INET6) {
        char text [INET6_ADDRSTRLEN] = "::1";
        inet_ntop (AF_INET6, &((struct sockaddr_in6 *) &addr)->sin6_addr, text, sizeof text);
        snprintf (host, sizeof host, "[%s]", text);
    }
    else
        inet_ntop (AF_INET, &((struct sockaddr_in *) &addr)->sin_addr, host, sizeof host);
    self->url = zsys_sprintf ("%s://%s:%u/", self->tls? "https": "http", host,
                              (unsigned) self->port);
    return self;
}

void
qn_http_destroy (qn_http_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    qn_http_t *self = *self_p;
    //  Event streams see this within their next slice and end
    atomic_store (&self->stopping, true);
    if (self->daemon)
        MHD_stop_daemon (self->daemon);
    zhash_destroy (&self->streams);
    pthread_mutex_destroy (&self->lock);
    free (self->web_dir);
    free (self->javascript_dir);
    free (self->api_endpoint);
    free (self->events_endpoint);
    free (self->cert_pem);
    if (self->metrics_credential) {
        memset (self->metrics_credential, 0, strlen (self->metrics_credential));
        free (self->metrics_credential);
    }
    if (self->key_pem) {
        memset (self->key_pem, 0, strlen (self->key_pem));
        free (self->key_pem);
    }
    zstr_free (&self->url);
    free (self);
    *self_p = NULL;
}

uint16_t
qn_http_port (qn_http_t *self)
{
    return self->port;
}

const char *
qn_http_url (qn_http_t *self)
{
    return self->url;
}
