/*  test_http - qanatd's HTTP server (qn_http) on a free loopback port,
    against a fake engine: a thread with a ROUTER on a test endpoint that
    answers canned replies (a Refusal for any credential but "qat_good").
    Requests go over raw sockets, so every byte the server sends is seen:
    the security headers on every response, 401 without a token, 404 for
    an unknown route, 405 with Allow, 413 for an oversized body, 400
    naming the field for bad JSON, static files and traversal refused,
    a download with ETag, 304 and byte ranges, the cookie's Origin check,
    a blob upload fed to the engine in MiB pieces.
    Also qn_http_api_decode alone.
*/
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <stdatomic.h>
#include "qn_http.h"
#include "qn_http_api.h"
#include "qn_http_bridge.h"
#include "qn_tree.h"

#define S_API       "inproc://test-http-api"
#define S_EVENTS    "inproc://test-http-events"
#define S_TOKEN     "qat_good"
#define S_HASH      "abababababababababababababababababababababababababababababababab"
#define S_BLOB_SIZE 5000

typedef struct {
    zactor_t *engine;
    qn_http_t *http;
    char dir [64];                      //  web root and friends
    uint16_t port;
} s_fixture_t;

static uint8_t s_blob [S_BLOB_SIZE];
static atomic_int s_stuck_reads;       //  ReadLogs of run 9 the fake engine answered
static atomic_int s_live_lines;        //  run 11's lines so far, log_seq 1 to this
static atomic_bool s_live_finished;    //  run 11 has ended
static atomic_int s_live_reads;        //  ReadLogs of run 11 the fake engine answered
static atomic_ullong s_put_held;       //  bytes of the blob being put the fake engine holds
static atomic_int s_put_pieces;        //  PutBlob requests with data
static atomic_ullong s_put_biggest;    //  the largest piece
static atomic_ullong s_put_first;      //  the offset of the first piece with data

//  A directory output: its manifest and its two files, served as blobs
typedef struct {
    char hash [QN_BLOB_HASH_HEX + 1];
    char *data;
    size_t size;
} s_stored_t;
static s_stored_t s_stored [3];        //  manifest, a.txt, sub/b.txt

//  Makes the directory tree/ (a.txt, sub/b.txt) under dir and keeps its
//  manifest and files as the fake engine's blobs
static void
s_make_tree (const char *dir)
{
    char path [256];
    snprintf (path, sizeof path, "%s/tree", dir);
    mkdir (path, 0700);
    snprintf (path, sizeof path, "%s/tree/sub", dir);
    mkdir (path, 0700);
    const char *files [][2] = { { "a.txt", "alpha\n" }, { "sub/b.txt", "beta\n" } };
    for (size_t i = 0; i < 2; i++) {
        snprintf (path, sizeof path, "%s/tree/%s", dir, files [i][0]);
        FILE *file = fopen (path, "w");
        fputs (files [i][1], file);
        fclose (file);
    }
    char *error = NULL;
    qn_tree_t *tree = qn_tree_scan (dir, "tree", &error);
    assert_non_null (tree);
    assert_int_equal (qn_tree_count (tree), 2);
    s_stored [0].data = qn_tree_manifest (tree, &s_stored [0].size);
    assert_int_equal (qn_tree_manifest_hash (tree, s_stored [0].hash), 0);
    for (size_t i = 0; i < 2; i++) {
        const qn_tree_entry_t *entry = qn_tree_entry (tree, i);
        assert_string_equal (entry->path, files [i][0]);
        snprintf (s_stored [i + 1].hash, sizeof s_stored [i + 1].hash, "%s", entry->hash);
        s_stored [i + 1].data = strdup (files [i][1]);
        s_stored [i + 1].size = strlen (files [i][1]);
    }
    qn_tree_destroy (&tree);
}

//  ---------------------------------------------------------------------
//  The fake engine

static void
s_answer (zsock_t *router, zframe_t *identity, Qanat__Envelope *reply)
{
    zframe_t *payload = qn_msg_encode (reply);
    zmsg_t *msg = zmsg_new ();
    zmsg_append (msg, &identity);
    zmsg_append (msg, &payload);
    zmsg_send (&msg, router);
}

static const s_stored_t *
s_stored_blob (const Qanat__GetBlob *get)
{
    for (size_t i = 0; i < 3; i++)
        if (strcmp (get->hash, s_stored [i].hash) == 0 && get->offset <= s_stored [i].size)
            return &s_stored [i];
    return NULL;
}

//  Fills a line of task t, attempt 1, whose chunk holds text
static Qanat__LogLine *
s_log_line (Qanat__LogLine *line, Qanat__LogChunk *chunk, char *text, uint64_t seq,
            uint64_t log_seq)
{
    Qanat__LogLine line_init = QANAT__LOG_LINE__INIT;
    Qanat__LogChunk chunk_init = QANAT__LOG_CHUNK__INIT;
    *line = line_init;
    *chunk = chunk_init;
    chunk->data.data = (uint8_t *) text;
    chunk->data.len = strlen (text);
    line->task = "t";
    line->attempt = 1;
    line->seq = seq;
    line->log_seq = log_seq;
    line->chunk = chunk;
    return line;
}

//  Run 11 is live: its lines so far after the request's after_seq, up
//  to 64 a page, and the end once it finished and all were read
static void
s_live_page (zsock_t *router, zframe_t *identity, Qanat__Request *request)
{
    s_live_reads++;
    bool finished = s_live_finished;
    uint64_t last = (uint64_t) s_live_lines;
    Qanat__LogLine lines [64], *line_list [64];
    Qanat__LogChunk chunks [64];
    char texts [64][16];
    Qanat__LogPage page = QANAT__LOG_PAGE__INIT;
    for (uint64_t seq = request->read_logs->after_seq + 1; seq <= last && page.n_lines < 64;
         seq++) {
        size_t i = page.n_lines++;
        snprintf (texts [i], sizeof texts [i], "live %d", (int) seq);
        line_list [i] = s_log_line (&lines [i], &chunks [i], texts [i], seq, seq);
    }
    page.lines = line_list;
    page.run_finished = finished && page.n_lines < 64;
    Qanat__Envelope env = QANAT__ENVELOPE__INIT;
    Qanat__Reply reply = QANAT__REPLY__INIT;
    reply.id = request->id;
    reply.body_case = QANAT__REPLY__BODY_LOGS;
    reply.logs = &page;
    env.body_case = QANAT__ENVELOPE__BODY_REPLY;
    env.reply = &reply;
    s_answer (router, identity, &env);
}

static void
s_reply_to (zsock_t *router, zframe_t *identity, Qanat__Request *request)
{
    Qanat__Envelope env = QANAT__ENVELOPE__INIT;
    Qanat__Reply reply = QANAT__REPLY__INIT;
    reply.id = request->id;
    env.body_case = QANAT__ENVELOPE__BODY_REPLY;
    env.reply = &reply;
    Qanat__Principal who = QANAT__PRINCIPAL__INIT;
    Qanat__RunInfo run = QANAT__RUN_INFO__INIT;
    Qanat__TaskInfo task = QANAT__TASK_INFO__INIT;
    Qanat__TaskInfo *tasks [] = { &task };
    Qanat__AttemptInfo attempt = QANAT__ATTEMPT_INFO__INIT;
    Qanat__AttemptInfo *attempts [] = { &attempt };
    Qanat__OutputRecord output = QANAT__OUTPUT_RECORD__INIT;
    Qanat__OutputRecord tree = QANAT__OUTPUT_RECORD__INIT;
    Qanat__OutputRecord *outputs [] = { &output, &tree };
    Qanat__BlobData blob = QANAT__BLOB_DATA__INIT;
    Qanat__RunList runs = QANAT__RUN_LIST__INIT;
    Qanat__Stats stats = QANAT__STATS__INIT;
    Qanat__AgentList agents = QANAT__AGENT_LIST__INIT;
    Qanat__Error error = QANAT__ERROR__INIT;
    Qanat__LogPage page = QANAT__LOG_PAGE__INIT;
    Qanat__LogLine lines [3], *line_list [3];
    Qanat__LogChunk chunks [3];
    char texts [3][16];
    if (request->body_case == QANAT__REQUEST__BODY_READ_LOGS
    &&  (request->read_logs->run_id == 7 || request->read_logs->run_id == 9)) {
        //  Run 7 has finished with three lines, log_seq 1 to 3, one per
        //  page; run 9's pages always hold its first line, whatever the
        //  request says (an engine that does not move on)
        bool stuck = request->read_logs->run_id == 9;
        if (stuck)
            s_stuck_reads++;
        uint64_t next = stuck? 1: request->read_logs->after_seq + 1;
        for (uint64_t seq = next; seq <= 3 && page.n_lines < 1; seq++) {
            size_t i = page.n_lines++;
            snprintf (texts [i], sizeof texts [i], "line %d", (int) seq);
            line_list [i] = s_log_line (&lines [i], &chunks [i], texts [i], seq + 10, seq);
        }
        page.lines = line_list;
        page.run_finished = true;
        reply.body_case = QANAT__REPLY__BODY_LOGS;
        reply.logs = &page;
    }
    else
    if (request->body_case == QANAT__REQUEST__BODY_READ_LOGS && request->read_logs->run_id == 11) {
        s_live_page (router, identity, request);
        return;
    }
    else
    if (request->body_case == QANAT__REQUEST__BODY_WHOAMI) {
        who.kind = "apitoken";
        who.name = "alice";
        who.role = "user";
        reply.body_case = QANAT__REPLY__BODY_WHOAMI;
        reply.whoami = &who;
    }
    else
    if (request->body_case == QANAT__REQUEST__BODY_GET_RUN && request->get_run->run_id == 7) {
        run.run_id = 7;
        run.workflow = "w";
        run.status = QANAT__RUN_STATUS__RUN_SUCCEEDED;
        run.n_tasks = 1;
        run.tasks = tasks;
        task.name = "t";
        task.status = QANAT__TASK_STATUS__TASK_SUCCEEDED;
        task.n_attempts = 1;
        task.attempts = attempts;
        attempt.attempt = 1;
        attempt.n_outputs = 2;
        attempt.outputs = outputs;
        tree.name = "tree";
        tree.kind = QANAT__ARTIFACT_KIND__ARTIFACT_DIR;
        tree.hash = s_stored [0].hash;
        tree.size = s_stored [0].size;
        output.name = "out";
        output.hash = S_HASH;
        output.size = S_BLOB_SIZE;
        reply.body_case = QANAT__REPLY__BODY_RUN;
        reply.run = &run;
    }
    else
    if (request->body_case == QANAT__REQUEST__BODY_GET_BLOB
    &&  strcmp (request->get_blob->hash, S_HASH) == 0 && request->get_blob->offset <= S_BLOB_SIZE) {
        uint64_t size = S_BLOB_SIZE - request->get_blob->offset;
        //  Small pieces, so that a download takes several
        if (size > 1000)
            size = 1000;
        blob.hash = S_HASH;
        blob.offset = request->get_blob->offset;
        blob.total_size = S_BLOB_SIZE;
        blob.data.data = s_blob + blob.offset;
        blob.data.len = (size_t) size;
        reply.body_case = QANAT__REPLY__BODY_BLOB;
        reply.blob = &blob;
    }
    else
    if (request->body_case == QANAT__REQUEST__BODY_GET_BLOB && s_stored_blob (request->get_blob)) {
        const s_stored_t *stored = s_stored_blob (request->get_blob);
        blob.hash = request->get_blob->hash;
        blob.offset = request->get_blob->offset;
        blob.total_size = stored->size;
        blob.data.data = (uint8_t *) stored->data + blob.offset;
        blob.data.len = stored->size - blob.offset;
        reply.body_case = QANAT__REPLY__BODY_BLOB;
        reply.blob = &blob;
    }
    else
    if (request->body_case == QANAT__REQUEST__BODY_PUT_BLOB) {
        //  Pieces taken in order from what is held, each answered with it
        const Qanat__PutBlob *put = request->put_blob;
        if (put->data.len) {
            if (s_put_pieces++ == 0)
                s_put_first = put->offset;
            if (put->data.len > s_put_biggest)
                s_put_biggest = put->data.len;
        }
        if (put->offset == s_put_held)
            s_put_held += put->data.len;
        blob.hash = put->hash;
        blob.offset = s_put_held;
        blob.total_size = put->total_size;
        reply.body_case = QANAT__REPLY__BODY_BLOB;
        reply.blob = &blob;
    }
    else
    if (request->body_case == QANAT__REQUEST__BODY_GET_STATS) {
        stats.commits = 42;
        reply.body_case = QANAT__REPLY__BODY_STATS;
        reply.stats = &stats;
    }
    else
    if (request->body_case == QANAT__REQUEST__BODY_LIST_AGENTS) {
        reply.body_case = QANAT__REPLY__BODY_AGENTS;
        reply.agents = &agents;
    }
    else
    if (request->body_case == QANAT__REQUEST__BODY_LIST_RUNS) {
        reply.body_case = QANAT__REPLY__BODY_RUNS;
        reply.runs = &runs;
    }
    else {
        error.message = "no such thing";
        error.code = QANAT__ERROR_CODE__ERROR_NOT_FOUND;
        reply.body_case = QANAT__REPLY__BODY_ERROR;
        reply.error = &error;
    }
    s_answer (router, identity, &env);
}

static void
s_engine (zsock_t *pipe, void *args)
{
    (void) args;
    zsock_t *router = zsock_new_router (S_API);
    zsock_t *pub = zsock_new_pub (S_EVENTS);
    zsock_signal (pipe, 0);
    zpoller_t *poller = zpoller_new (pipe, router, NULL);
    while (true) {
        void *which = zpoller_wait (poller, -1);
        if (which == pipe) {
            //  "PUBLISH" topic: a change notification, as the engine sends
            char *command = NULL, *topic = NULL;
            if (zstr_recvx (pipe, &command, &topic, NULL) == 2 && streq (command, "PUBLISH")) {
                zstr_send (pub, topic);
                zstr_free (&command);
                zstr_free (&topic);
                continue;
            }
            zstr_free (&command);
            zstr_free (&topic);
            break;                      //  $TERM
        }
        if (which != router)
            break;                      //  interrupted
        zmsg_t *msg = zmsg_recv (router);
        zframe_t *identity = zmsg_pop (msg);
        zframe_t *credential = zmsg_pop (msg);
        zframe_t *payload = zmsg_pop (msg);
        Qanat__Envelope *env = payload? qn_msg_decode (zframe_data (payload), zframe_size (payload),
                                                       NULL, NULL): NULL;
        if (!env || env->body_case != QANAT__ENVELOPE__BODY_REQUEST)
            zframe_destroy (&identity);
        else
        if (zframe_size (credential) != strlen (S_TOKEN)
        ||  memcmp (zframe_data (credential), S_TOKEN, strlen (S_TOKEN)) != 0) {
            Qanat__Refusal refusal = QANAT__REFUSAL__INIT;
            refusal.code = QANAT__REFUSAL_CODE__REFUSAL_DENIED;
            refusal.message = "unknown API token";
            Qanat__Envelope reply = QANAT__ENVELOPE__INIT;
            reply.body_case = QANAT__ENVELOPE__BODY_REFUSAL;
            reply.refusal = &refusal;
            s_answer (router, identity, &reply);
        }
        else
            s_reply_to (router, identity, env->request);
        qn_msg_free (&env);
        zframe_destroy (&credential);
        zframe_destroy (&payload);
        zmsg_destroy (&msg);
    }
    zpoller_destroy (&poller);
    zsock_destroy (&pub);
    zsock_destroy (&router);
}

//  ---------------------------------------------------------------------
//  Fixture

static void
s_write (const char *path, const char *text)
{
    FILE *file = fopen (path, "w");
    assert_non_null (file);
    fputs (text, file);
    fclose (file);
}

static int
s_setup (void **state)
{
    s_fixture_t *self = (s_fixture_t *) calloc (1, sizeof *self);
    for (size_t i = 0; i < S_BLOB_SIZE; i++)
        s_blob [i] = (uint8_t) (i * 7 + 3);
    snprintf (self->dir, sizeof self->dir, "/tmp/test-http-XXXXXX");
    assert_non_null (mkdtemp (self->dir));
    char path [256];
    snprintf (path, sizeof path, "%s/web", self->dir);
    mkdir (path, 0700);
    snprintf (path, sizeof path, "%s/web/static", self->dir);
    mkdir (path, 0700);
    snprintf (path, sizeof path, "%s/js", self->dir);
    mkdir (path, 0700);
    snprintf (path, sizeof path, "%s/web/index.html", self->dir);
    s_write (path, "<html>INDEX</html>\n");
    snprintf (path, sizeof path, "%s/web/static/app.js", self->dir);
    s_write (path, "var app = 1;\n");
    snprintf (path, sizeof path, "%s/web/secret.txt", self->dir);
    s_write (path, "SECRET\n");
    snprintf (path, sizeof path, "%s/outside.txt", self->dir);
    s_write (path, "OUTSIDE\n");
    //  A symlink inside static/ pointing out of it
    char link [256];
    snprintf (link, sizeof link, "%s/web/static/link.txt", self->dir);
    assert_int_equal (symlink (path, link), 0);
    snprintf (path, sizeof path, "%s/js/lib.mjs", self->dir);
    s_write (path, "export const x = 1;\n");
    s_make_tree (self->dir);

    self->engine = zactor_new (s_engine, NULL);
    char web [128], js [128];
    snprintf (web, sizeof web, "%s/web", self->dir);
    snprintf (js, sizeof js, "%s/js", self->dir);
    qn_http_config_t config = {
        .endpoint = "127.0.0.1:0", .web_dir = web, .javascript_dir = js,
        .api_endpoint = S_API, .events_endpoint = S_EVENTS, .call_timeout_ms = 20000,
        .metrics_credential = S_TOKEN, .credential_required = true
    };
    char *error = NULL;
    self->http = qn_http_new (&config, &error);
    if (!self->http)
        fprintf (stderr, "qn_http_new: %s\n", error);
    assert_non_null (self->http);
    self->port = qn_http_port (self->http);
    assert_true (self->port > 0);
    *state = self;
    return 0;
}

static int
s_teardown (void **state)
{
    s_fixture_t *self = (s_fixture_t *) *state;
    qn_http_destroy (&self->http);
    zactor_destroy (&self->engine);
    for (size_t i = 0; i < 3; i++) {
        free (s_stored [i].data);
        s_stored [i].data = NULL;
    }
    char command [128];
    snprintf (command, sizeof command, "rm -rf %s", self->dir);
    assert_int_equal (system (command), 0);
    free (self);
    return 0;
}

//  ---------------------------------------------------------------------
//  A raw HTTP client

typedef struct {
    int status;
    char *head;                         //  status line and headers
    char *body;
    size_t body_size;
} s_response_t;

//  A connection to the server, reads given up after 10 s
static int
s_connect (s_fixture_t *self)
{
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = { 0 };
    addr.sin_family = AF_INET;
    addr.sin_port = htons (self->port);
    addr.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    struct timeval timeout = { 10, 0 };
    setsockopt (fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    assert_int_equal (connect (fd, (struct sockaddr *) &addr, sizeof addr), 0);
    return fd;
}

//  Sends text as it is, reads until the server closes
static s_response_t
s_send (s_fixture_t *self, const char *text, size_t size)
{
    s_response_t response = { 0, NULL, NULL, 0 };
    int fd = s_connect (self);
    size_t sent = 0;
    while (sent < size) {
        ssize_t rc = send (fd, text + sent, size - sent, MSG_NOSIGNAL);
        if (rc <= 0)
            break;              //  the server may answer and close early (413)
        sent += (size_t) rc;
    }
    size_t capacity = 65536, got = 0;
    char *buffer = (char *) malloc (capacity + 1);
    while (true) {
        if (got == capacity) {
            capacity *= 2;
            buffer = (char *) realloc (buffer, capacity + 1);
        }
        ssize_t rc = recv (fd, buffer + got, capacity - got, 0);
        if (rc <= 0)
            break;
        got += (size_t) rc;
    }
    close (fd);
    buffer [got] = 0;
    char *end = strstr (buffer, "\r\n\r\n");
    assert_non_null (end);
    response.head = strndup (buffer, (size_t) (end - buffer) + 2);
    response.body_size = got - (size_t) (end + 4 - buffer);
    response.body = (char *) malloc (response.body_size + 1);
    memcpy (response.body, end + 4, response.body_size);
    response.body [response.body_size] = 0;
    sscanf (buffer, "HTTP/1.1 %d", &response.status);
    free (buffer);
    return response;
}

static s_response_t
s_request (s_fixture_t *self, const char *method, const char *path, const char *headers,
           const char *body)
{
    char *text = zsys_sprintf ("%s %s HTTP/1.1\r\nHost: 127.0.0.1:%u\r\nConnection: close\r\n"
                               "%s%s\r\n%s", method, path, (unsigned) self->port,
                               headers? headers: "", body? "Content-Type: application/json\r\n"
                                                        : "", "");
    if (body) {
        char *with = zsys_sprintf ("%s %s HTTP/1.1\r\nHost: 127.0.0.1:%u\r\nConnection: close\r\n"
                                   "%sContent-Length: %zu\r\n\r\n%s", method, path,
                                   (unsigned) self->port, headers? headers: "", strlen (body),
                                   body);
        zstr_free (&text);
        text = with;
    }
    s_response_t response = s_send (self, text, strlen (text));
    zstr_free (&text);
    return response;
}

static void
s_response_free (s_response_t *response)
{
    free (response->head);
    free (response->body);
}

static void s_assert_security_headers (const s_response_t *response);

//  One request that must be answered with status (and the usual headers)
static void
s_expect (s_fixture_t *self, const char *method, const char *path, const char *headers,
          const char *body, int status)
{
    s_response_t response = s_request (self, method, path, headers, body);
    assert_int_equal (response.status, status);
    s_assert_security_headers (&response);
    s_response_free (&response);
}

//  The value of a header (a static copy), NULL when absent
static const char *
s_header (const s_response_t *response, const char *name)
{
    static char value [1024];
    char *pattern = zsys_sprintf ("\r\n%s: ", name);
    const char *at = strcasestr (response->head, pattern);
    const char *start = at? at + strlen (pattern): NULL;
    zstr_free (&pattern);
    if (!start)
        return NULL;
    const char *end = strstr (start, "\r\n");
    size_t len = end? (size_t) (end - start): strlen (start);
    snprintf (value, sizeof value, "%.*s", (int) len, start);
    return value;
}

static void
s_assert_security_headers (const s_response_t *response)
{
    const char *csp = s_header (response, "Content-Security-Policy");
    assert_non_null (csp);
    assert_non_null (strstr (csp, "default-src 'self'"));
    assert_non_null (strstr (csp, "frame-ancestors 'none'"));
    assert_string_equal (s_header (response, "X-Content-Type-Options"), "nosniff");
    assert_string_equal (s_header (response, "Referrer-Policy"), "no-referrer");
    assert_string_equal (s_header (response, "X-Frame-Options"), "DENY");
}

//  ---------------------------------------------------------------------
//  Tests

static void
test_auth_and_headers (void **state)
{
    s_fixture_t *self = (s_fixture_t *) *state;
    s_response_t response = s_request (self, "GET", "/api/v1/whoami", NULL, NULL);
    assert_int_equal (response.status, 401);
    s_assert_security_headers (&response);
    assert_non_null (strstr (response.body, "\"unauthorized\""));
    s_response_free (&response);

    response = s_request (self, "GET", "/api/v1/whoami", "Authorization: Bearer qat_good\r\n", NULL);
    assert_int_equal (response.status, 200);
    s_assert_security_headers (&response);
    assert_string_equal (s_header (&response, "Cache-Control"), "no-store");
    assert_string_equal (s_header (&response, "Content-Type"), "application/json");
    assert_non_null (strstr (response.body, "\"name\":\"alice\""));
    s_response_free (&response);

    response = s_request (self, "GET", "/api/v1/whoami", "Authorization: Basic eDp5\r\n", NULL);
    assert_int_equal (response.status, 401);
    s_response_free (&response);

    //  No credential at all: 401 before the body or the query is looked
    //  at (a bad one would otherwise tell a stranger 400) ...
    s_expect (self, "POST", "/api/v1/runs", NULL, "{\"source\": ", 401);
    s_expect (self, "GET", "/api/v1/runs?limit=0", NULL, NULL, 401);
    //  ... but signing in reads its body, and unknown routes stay 404/405
    s_expect (self, "POST", "/api/v1/session", NULL, "{\"token\": 5}", 400);
    s_expect (self, "GET", "/api/v1/nope", NULL, NULL, 404);
    s_expect (self, "PUT", "/api/v1/runs", NULL, NULL, 405);

    //  An engine error maps by its code
    response = s_request (self, "GET", "/api/v1/runs/12", "Authorization: Bearer qat_good\r\n", NULL);
    assert_int_equal (response.status, 404);
    assert_non_null (strstr (response.body, "no such thing"));
    s_response_free (&response);
}

static void
test_routes_refused (void **state)
{
    s_fixture_t *self = (s_fixture_t *) *state;
    const char *auth = "Authorization: Bearer qat_good\r\n";
    s_response_t response = s_request (self, "GET", "/api/v1/nope", auth, NULL);
    assert_int_equal (response.status, 404);
    s_assert_security_headers (&response);
    assert_non_null (strstr (response.body, "\"not_found\""));
    s_response_free (&response);

    response = s_request (self, "GET", "/api/v1/runs/abc", auth, NULL);
    assert_int_equal (response.status, 404);
    s_response_free (&response);

    response = s_request (self, "PUT", "/api/v1/runs", auth, NULL);
    assert_int_equal (response.status, 405);
    assert_string_equal (s_header (&response, "Allow"), "GET, POST");
    s_assert_security_headers (&response);
    s_response_free (&response);

    //  Too large: refused from its Content-Length, before any of it is read
    const char *big = "POST /api/v1/runs HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                      "Authorization: Bearer qat_good\r\nContent-Length: 999999999\r\n\r\n{";
    response = s_send (self, big, strlen (big));
    assert_int_equal (response.status, 413);
    s_assert_security_headers (&response);
    assert_non_null (strstr (response.body, "\"too_large\""));
    s_response_free (&response);

    //  Bad JSON, an unknown field, a wrong type: 400 naming the field
    response = s_request (self, "POST", "/api/v1/runs", auth, "{\"source\": ");
    assert_int_equal (response.status, 400);
    assert_non_null (strstr (response.body, "not valid JSON"));
    s_response_free (&response);
    response = s_request (self, "POST", "/api/v1/runs", auth, "{\"source\": \"x\", \"colour\": 1}");
    assert_int_equal (response.status, 400);
    assert_non_null (strstr (response.body, "\"field\":\"colour\""));
    s_response_free (&response);
    response = s_request (self, "POST", "/api/v1/runs", auth, "{\"source\": 5}");
    assert_int_equal (response.status, 400);
    assert_non_null (strstr (response.body, "\"field\":\"source\""));
    s_response_free (&response);
    response = s_request (self, "POST", "/api/v1/runs", auth,
                          "{\"workflow\": \"w\", \"params\": {\"n\": [1]}}");
    assert_int_equal (response.status, 400);
    assert_non_null (strstr (response.body, "\"field\":\"params.n\""));
    s_response_free (&response);
    response = s_request (self, "GET", "/api/v1/runs?limit=0", auth, NULL);
    assert_int_equal (response.status, 400);
    assert_non_null (strstr (response.body, "\"field\":\"limit\""));
    s_response_free (&response);
    response = s_request (self, "GET", "/api/v1/runs?status=happy", auth, NULL);
    assert_int_equal (response.status, 400);
    s_response_free (&response);
    //  Publish, blobs, code: the hash and the code reference are checked
    response = s_request (self, "GET", "/api/v1/blobs/ABC", auth, NULL);
    assert_int_equal (response.status, 400);
    assert_non_null (strstr (response.body, "\"field\":\"hash\""));
    s_response_free (&response);
    response = s_request (self, "DELETE", "/api/v1/blobs/"
                          "0000000000000000000000000000000000000000000000000000000000000000", auth, NULL);
    assert_int_equal (response.status, 405);
    assert_string_equal (s_header (&response, "Allow"), "GET, PUT");
    s_response_free (&response);
    response = s_request (self, "POST", "/api/v1/runs", auth,
                          "{\"workflow\": \"w\", \"code\": \"file:abc\"}");
    assert_int_equal (response.status, 400);
    assert_non_null (strstr (response.body, "\"field\":\"code\""));
    s_response_free (&response);
    response = s_request (self, "POST", "/api/v1/workflows", auth, "{\"filename\": \"w.yaml\"}");
    assert_int_equal (response.status, 400);
    assert_non_null (strstr (response.body, "\"field\":\"source\""));
    s_response_free (&response);
    response = s_request (self, "GET", "/api/v1/runs?status=failed&limit=5", auth, NULL);
    assert_int_equal (response.status, 200);
    assert_string_equal (response.body, "{\"runs\":[],\"next\":null}\n");
    s_response_free (&response);
}

static void
test_cookie_origin (void **state)
{
    s_fixture_t *self = (s_fixture_t *) *state;
    //  A cookie-authenticated POST from no origin, or another one: 403
    s_response_t response = s_request (self, "POST", "/api/v1/runs/7/cancel",
                                       "Cookie: qanat_session=qat_good\r\n", "{}");
    assert_int_equal (response.status, 403);
    s_response_free (&response);
    response = s_request (self, "POST", "/api/v1/runs/7/cancel",
                          "Cookie: qanat_session=qat_good\r\nOrigin: http://evil.example\r\n", "{}");
    assert_int_equal (response.status, 403);
    s_response_free (&response);
    //  From its own origin it reaches the engine (whose fake says not found)
    char headers [200];
    snprintf (headers, sizeof headers, "Cookie: qanat_session=qat_good\r\n"
              "Origin: http://127.0.0.1:%u\r\n", (unsigned) self->port);
    response = s_request (self, "POST", "/api/v1/runs/7/cancel", headers, "{}");
    assert_int_equal (response.status, 404);
    s_response_free (&response);
    //  A GET with the cookie needs no Origin
    response = s_request (self, "GET", "/api/v1/whoami", "Cookie: qanat_session=qat_good\r\n", NULL);
    assert_int_equal (response.status, 200);
    s_response_free (&response);
    //  Another site's page cannot sign its visitor in or out
    response = s_request (self, "POST", "/api/v1/session", "Origin: http://evil.example\r\n",
                          "{\"token\": \"qat_good\"}");
    assert_int_equal (response.status, 403);
    assert_null (s_header (&response, "Set-Cookie"));
    s_response_free (&response);
    s_expect (self, "DELETE", "/api/v1/session", "Origin: null\r\n", NULL, 403);
    snprintf (headers, sizeof headers, "Origin: http://127.0.0.1:%u\r\n", (unsigned) self->port);
    s_expect (self, "POST", "/api/v1/session", headers, "{\"token\": \"qat_good\"}", 200);
    //  POST /session checks the token, then sets it as an HttpOnly cookie
    response = s_request (self, "POST", "/api/v1/session", NULL, "{\"token\": \"qat_bad\"}");
    assert_int_equal (response.status, 401);
    assert_null (s_header (&response, "Set-Cookie"));
    s_response_free (&response);
    response = s_request (self, "POST", "/api/v1/session", NULL, "{\"token\": \"qat_good\"}");
    assert_int_equal (response.status, 200);
    const char *cookie = s_header (&response, "Set-Cookie");
    assert_non_null (cookie);
    assert_non_null (strstr (cookie, "qanat_session=qat_good"));
    assert_non_null (strstr (cookie, "HttpOnly"));
    assert_non_null (strstr (cookie, "SameSite=Strict"));
    assert_null (strstr (cookie, "Secure"));
    s_response_free (&response);
}

static void
test_static_files (void **state)
{
    s_fixture_t *self = (s_fixture_t *) *state;
    s_response_t response = s_request (self, "GET", "/", NULL, NULL);
    assert_int_equal (response.status, 200);
    assert_string_equal (response.body, "<html>INDEX</html>\n");
    assert_string_equal (s_header (&response, "Content-Type"), "text/html; charset=utf-8");
    s_assert_security_headers (&response);
    s_response_free (&response);
    response = s_request (self, "GET", "/ui/runs/12/tasks/train/logs", NULL, NULL);
    assert_int_equal (response.status, 200);
    assert_string_equal (response.body, "<html>INDEX</html>\n");
    s_response_free (&response);
    response = s_request (self, "GET", "/static/app.js", NULL, NULL);
    assert_int_equal (response.status, 200);
    assert_string_equal (response.body, "var app = 1;\n");
    assert_string_equal (s_header (&response, "Content-Type"), "text/javascript; charset=utf-8");
    s_response_free (&response);
    response = s_request (self, "GET", "/javascript/lib.mjs", NULL, NULL);
    assert_int_equal (response.status, 200);
    assert_string_equal (s_header (&response, "Content-Type"), "text/javascript; charset=utf-8");
    s_response_free (&response);
    //  Out of the root: by "..", encoded or not, or by a symlink
    const char *refused [] = { "/static/../secret.txt", "/static/%2e%2e/secret.txt",
                               "/static/link.txt", "/static/", "/static//etc/passwd",
                               "/javascript/../web/secret.txt", "/static/nope.js", "/secret.txt" };
    for (size_t i = 0; i < sizeof refused / sizeof refused [0]; i++) {
        response = s_request (self, "GET", refused [i], NULL, NULL);
        if (response.status != 404)
            fprintf (stderr, "%s: %d\n", refused [i], response.status);
        assert_int_equal (response.status, 404);
        assert_null (strstr (response.body, "SECRET"));
        assert_null (strstr (response.body, "OUTSIDE"));
        s_assert_security_headers (&response);
        s_response_free (&response);
    }
    response = s_request (self, "POST", "/static/app.js", NULL, "{}");
    assert_int_equal (response.status, 405);
    s_response_free (&response);
}

static void
test_download (void **state)
{
    s_fixture_t *self = (s_fixture_t *) *state;
    const char *path = "/api/v1/runs/7/artifacts/t/out";
    s_response_t response = s_request (self, "GET", path, "Authorization: Bearer qat_good\r\n", NULL);
    assert_int_equal (response.status, 200);
    assert_string_equal (s_header (&response, "ETag"), "\"" S_HASH "\"");
    assert_string_equal (s_header (&response, "Accept-Ranges"), "bytes");
    assert_int_equal (response.body_size, S_BLOB_SIZE);
    assert_memory_equal (response.body, s_blob, S_BLOB_SIZE);
    s_assert_security_headers (&response);
    s_response_free (&response);

    response = s_request (self, "GET", path, "Authorization: Bearer qat_good\r\n"
                          "If-None-Match: \"" S_HASH "\"\r\n", NULL);
    assert_int_equal (response.status, 304);
    s_response_free (&response);

    //  A range across two of the engine's pieces
    response = s_request (self, "GET", path, "Authorization: Bearer qat_good\r\n"
                          "Range: bytes=990-1009\r\n", NULL);
    assert_int_equal (response.status, 206);
    assert_string_equal (s_header (&response, "Content-Range"), "bytes 990-1009/5000");
    assert_int_equal (response.body_size, 20);
    assert_memory_equal (response.body, s_blob + 990, 20);
    s_response_free (&response);
    response = s_request (self, "GET", path, "Authorization: Bearer qat_good\r\n"
                          "Range: bytes=-10\r\n", NULL);
    assert_int_equal (response.status, 206);
    assert_memory_equal (response.body, s_blob + S_BLOB_SIZE - 10, 10);
    s_response_free (&response);
    //  Several ranges: the whole; past the end: 416
    response = s_request (self, "GET", path, "Authorization: Bearer qat_good\r\n"
                          "Range: bytes=0-1,5-6\r\n", NULL);
    assert_int_equal (response.status, 200);
    assert_int_equal (response.body_size, S_BLOB_SIZE);
    s_response_free (&response);
    response = s_request (self, "GET", path, "Authorization: Bearer qat_good\r\n"
                          "Range: bytes=6000-\r\n", NULL);
    assert_int_equal (response.status, 416);
    s_response_free (&response);
    //  No such output
    response = s_request (self, "GET", "/api/v1/runs/7/artifacts/t/other",
                          "Authorization: Bearer qat_good\r\n", NULL);
    assert_int_equal (response.status, 404);
    s_response_free (&response);
}

//  A directory output comes as a tar stream: each file's header (its
//  path under the output's name), its bytes, padding; two zero blocks
static void
test_download_tree (void **state)
{
    s_fixture_t *self = (s_fixture_t *) *state;
    s_response_t response = s_request (self, "GET", "/api/v1/runs/7/artifacts/t/tree",
                                       "Authorization: Bearer qat_good\r\n", NULL);
    assert_int_equal (response.status, 200);
    assert_string_equal (s_header (&response, "Content-Type"), "application/x-tar");
    assert_string_equal (s_header (&response, "Content-Length"), "3072");
    assert_int_equal (response.body_size, 3072);
    const char *tar = response.body;
    assert_string_equal (tar, "tree/a.txt");
    assert_memory_equal (tar + 257, "ustar", 5);
    assert_memory_equal (tar + 124, "00000000006", 11);         //  size, octal
    assert_memory_equal (tar + 512, "alpha\n\0", 7);
    assert_string_equal (tar + 1024, "tree/sub/b.txt");
    assert_memory_equal (tar + 1536, "beta\n\0", 6);
    for (size_t i = 2048; i < 3072; i++)
        assert_int_equal (tar [i], 0);
    s_response_free (&response);
}

//  /metrics: Prometheus text; from loopback without a token, through the
//  server's own credential; a token given is checked
static void
test_metrics (void **state)
{
    s_fixture_t *self = (s_fixture_t *) *state;
    s_response_t response = s_request (self, "GET", "/", NULL, NULL);      //  one 200 counted
    s_response_free (&response);
    response = s_request (self, "GET", "/metrics", NULL, NULL);
    assert_int_equal (response.status, 200);
    assert_string_equal (s_header (&response, "Content-Type"),
                         "text/plain; version=0.0.4; charset=utf-8");
    s_assert_security_headers (&response);
    assert_non_null (strstr (response.body, "\nqanat_commits_total 42\n"));
    assert_non_null (strstr (response.body, "# TYPE qanat_http_requests_total counter\n"));
    assert_non_null (strstr (response.body, "qanat_http_responses_total{code=\"200\"}"));
    s_response_free (&response);
    response = s_request (self, "GET", "/metrics", "Authorization: Bearer qat_wrong\r\n", NULL);
    assert_int_equal (response.status, 401);
    s_response_free (&response);
    response = s_request (self, "POST", "/metrics", NULL, "{}");
    assert_int_equal (response.status, 405);
    s_response_free (&response);
}

//  A log stream resumes after Last-Event-ID, sends each line once with
//  its log sequence as id, and ends once the run finished
static void
test_log_stream (void **state)
{
    s_fixture_t *self = (s_fixture_t *) *state;
    s_response_t response = s_request (self, "GET", "/api/v1/runs/7/logs/stream",
                                       "Authorization: Bearer qat_good\r\nLast-Event-ID: 1\r\n",
                                       NULL);
    assert_int_equal (response.status, 200);
    assert_string_equal (s_header (&response, "Content-Type"), "text/event-stream; charset=utf-8");
    s_assert_security_headers (&response);
    assert_non_null (strstr (response.body, "retry: 2000\n"));
    assert_null (strstr (response.body, "line 1"));
    const char *two = strstr (response.body, "event: line\nid: 2\ndata: {");
    const char *three = strstr (response.body, "event: line\nid: 3\ndata: {");
    const char *end = strstr (response.body, "event: end\nid: 3\n");
    assert_non_null (two);
    assert_non_null (three);
    assert_non_null (end);
    assert_true (two < three && three < end);
    assert_non_null (strstr (two, "\"text\":\"line 2\""));
    assert_null (strstr (three + 20, "id: 3\ndata: {\"task"));    //  once
    s_response_free (&response);

    //  ?after= when there is no Last-Event-ID; an unknown run is an HTTP error
    response = s_request (self, "GET", "/api/v1/runs/7/logs/stream?after=2",
                          "Authorization: Bearer qat_good\r\n", NULL);
    assert_null (strstr (response.body, "line 2"));
    assert_non_null (strstr (response.body, "line 3"));
    s_response_free (&response);
    response = s_request (self, "GET", "/api/v1/runs/8/logs/stream",
                          "Authorization: Bearer qat_good\r\n", NULL);
    assert_int_equal (response.status, 404);
    s_response_free (&response);
    response = s_request (self, "GET", "/api/v1/runs/7/logs/stream", NULL, NULL);
    assert_int_equal (response.status, 401);
    s_response_free (&response);

    //  A Last-Event-ID past 64 bits is no id we sent: ignored, not read
    //  as "after everything"
    response = s_request (self, "GET", "/api/v1/runs/7/logs/stream",
                          "Authorization: Bearer qat_good\r\nLast-Event-ID: 99999999999999999999\r\n",
                          NULL);
    assert_non_null (strstr (response.body, "\"text\":\"line 1\""));
    s_response_free (&response);

    //  An engine whose pages do not move forward ends the stream and the
    //  text file (each line once), instead of being asked again forever
    s_stuck_reads = 0;
    response = s_request (self, "GET", "/api/v1/runs/9/logs/stream",
                          "Authorization: Bearer qat_good\r\n", NULL);
    assert_int_equal (response.status, 200);
    const char *line = strstr (response.body, "event: line\nid: 1\n");
    assert_non_null (line);
    assert_null (strstr (line + 1, "event: line"));
    assert_non_null (strstr (response.body, "event: end\nid: 1\n"));
    s_response_free (&response);
    assert_in_range (s_stuck_reads, 1, 5);
    s_stuck_reads = 0;
    response = s_request (self, "GET", "/api/v1/runs/9/logs.txt",
                          "Authorization: Bearer qat_good\r\n", NULL);
    assert_int_equal (response.status, 200);
    //  (chunked: one chunk of 13 bytes, then the last one)
    assert_string_equal (response.body, "D\r\n[t#1] line 1\n\r\n0\r\n\r\n");
    s_response_free (&response);
    assert_in_range (s_stuck_reads, 1, 5);
}

//  A burst of changes within one interval costs a stream one read, not
//  one per change; every line still comes once, in order
static void
test_log_stream_coalesce (void **state)
{
    s_fixture_t *self = (s_fixture_t *) *state;
    s_live_lines = 0;
    s_live_finished = false;
    s_live_reads = 0;
    int fd = s_connect (self);
    char *text = zsys_sprintf ("GET /api/v1/runs/11/logs/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                               "Connection: close\r\nAuthorization: Bearer qat_good\r\n\r\n");
    assert_int_equal (send (fd, text, strlen (text), MSG_NOSIGNAL), (ssize_t) strlen (text));
    zstr_free (&text);
    size_t capacity = 1 << 20, got = 0;
    char *buffer = (char *) malloc (capacity + 1);
    buffer [0] = 0;
    //  The head comes after the stream's first read (of no lines)
    while (!strstr (buffer, "retry: 2000")) {
        ssize_t rc = recv (fd, buffer + got, capacity - got, 0);
        assert_true (rc > 0);
        got += (size_t) rc;
        buffer [got] = 0;
    }
    int reads = s_live_reads;
    //  20 lines, a commit and a notification each, 1 ms apart: all
    //  within the interval that began with the first read
    const int burst = 20;
    for (int i = 0; i < burst; i++) {
        s_live_lines++;
        zstr_sendx (self->engine, "PUBLISH", "run.11.", NULL);
        zclock_sleep (1);
    }
    zclock_sleep (400);
    int burst_reads = s_live_reads - reads;
    s_live_finished = true;
    zstr_sendx (self->engine, "PUBLISH", "run.11.", NULL);
    while (true) {
        ssize_t rc = recv (fd, buffer + got, capacity - got, 0);
        if (rc <= 0)
            break;
        got += (size_t) rc;
    }
    buffer [got] = 0;
    close (fd);
    //  One read (two if a loaded machine stretched the burst over two
    //  intervals); without coalescing, about one a notification
    assert_in_range (burst_reads, 1, 2);
    //  ids 1 to 20 once each, in order, then the end
    const char *at = buffer;
    for (int i = 1; i <= burst; i++) {
        char event [64];
        snprintf (event, sizeof event, "event: line\nid: %d\n", i);
        const char *found = strstr (at, event);
        assert_non_null (found);
        assert_null (strstr (found + 1, event));
        at = found + 1;
    }
    assert_non_null (strstr (at, "event: end\nid: 20\n"));
    int lines = 0;
    for (const char *p = buffer; (p = strstr (p, "event: line\n")); p++)
        lines++;
    assert_int_equal (lines, burst);
    free (buffer);
}

//  A slow engine: answers its first request 500 ms late, and every later
//  one with a reply to another id first, then its own (commits = 2)
static void
s_slow_engine (zsock_t *pipe, void *args)
{
    (void) args;
    zsock_t *router = zsock_new_router ("inproc://test-http-slow");
    zsock_signal (pipe, 0);
    zpoller_t *poller = zpoller_new (pipe, router, NULL);
    int served = 0;
    while (zpoller_wait (poller, -1) == router) {
        zmsg_t *msg = zmsg_recv (router);
        zframe_t *identity = zmsg_pop (msg);
        zframe_t *credential = zmsg_pop (msg);
        zframe_t *payload = zmsg_pop (msg);
        Qanat__Envelope *request = qn_msg_decode (zframe_data (payload), zframe_size (payload),
                                                  NULL, NULL);
        Qanat__Stats stats = QANAT__STATS__INIT;
        Qanat__Reply reply = QANAT__REPLY__INIT;
        reply.body_case = QANAT__REPLY__BODY_STATS;
        reply.stats = &stats;
        Qanat__Envelope env = QANAT__ENVELOPE__INIT;
        env.body_case = QANAT__ENVELOPE__BODY_REPLY;
        env.reply = &reply;
        if (served++ == 0) {
            zclock_sleep (500);
            stats.commits = 1;
        }
        else {
            reply.id = request->request->id + 1000;
            stats.commits = 99;
            s_answer (router, zframe_dup (identity), &env);
            stats.commits = 2;
        }
        reply.id = request->request->id;
        s_answer (router, identity, &env);
        qn_msg_free (&request);
        zframe_destroy (&credential);
        zframe_destroy (&payload);
        zmsg_destroy (&msg);
    }
    zpoller_destroy (&poller);
    zsock_destroy (&router);
}

//  The bridge alone: a call the engine leaves unanswered fails as busy
//  after its timeout, and its late answer is never taken for the answer
//  to the next call; a reply to another id is dropped
static void
test_bridge_timeout (void **state)
{
    (void) state;
    zactor_t *engine = zactor_new (s_slow_engine, NULL);
    qn_http_bridge_t *bridge = qn_http_bridge_new ("inproc://test-http-slow");
    Qanat__GetStats get = QANAT__GET_STATS__INIT;
    Qanat__Request request = QANAT__REQUEST__INIT;
    request.body_case = QANAT__REQUEST__BODY_GET_STATS;
    request.get_stats = &get;
    Qanat__Reply *reply = NULL;
    char *error = NULL;
    int64_t start = zclock_mono ();
    assert_int_equal (qn_http_bridge_call (bridge, "qat_x", &request, &reply, 200, &error),
                      QN_HTTP_BRIDGE_FAILED);
    assert_true (zclock_mono () - start >= 190);
    assert_string_equal (error, "coordinator busy");
    zstr_free (&error);
    assert_null (reply);
    zclock_sleep (700);                 //  the late answer has been sent by now
    assert_int_equal (qn_http_bridge_call (bridge, "qat_x", &request, &reply, 5000, &error), 0);
    assert_non_null (reply);
    assert_int_equal (reply->id, request.id);
    assert_int_equal (reply->stats->commits, 2);
    qanat__reply__free_unpacked (reply, NULL);
    qn_http_bridge_destroy (&bridge);
    zactor_destroy (&engine);
}

//  qn_http_api_decode alone: the request the CLI would send

static const char *
s_query (void *arg, const char *key)
{
    const char **pairs = (const char **) arg;
    for (size_t i = 0; pairs [i]; i += 2)
        if (strcmp (pairs [i], key) == 0)
            return pairs [i + 1];
    return NULL;
}

static void
test_decode (void **state)
{
    (void) state;
    Qanat__Request request;
    qn_http_route_t route;
    json_t *error = NULL;
    const char *query [] = { "task", "train", "after", "41", "limit", "10", NULL };
    assert_int_equal (qn_http_api_decode ("GET", "/api/v1/runs/12/logs/stream", s_query, query,
                                          NULL, 0, &request, &route, &error), 0);
    assert_int_equal (route.id, QN_HTTP_ROUTE_RUN_LOGS_STREAM);
    assert_true (route.stream);
    assert_int_equal (request.body_case, QANAT__REQUEST__BODY_READ_LOGS);
    assert_int_equal (request.read_logs->run_id, 12);
    assert_string_equal (request.read_logs->task, "train");
    assert_int_equal (request.read_logs->after_seq, 41);
    assert_int_equal (request.read_logs->limit, 10);
    qn_http_api_request_reset (&request);

    const char *body = "{\"workflow\": \"w\", \"version\": 3, \"params\": {\"lr\": 0.5, "
                       "\"deep\": true, \"name\": \"x\"}, \"no_cache\": true}";
    assert_int_equal (qn_http_api_decode ("POST", "/api/v1/runs", NULL, NULL, body, strlen (body),
                                          &request, &route, &error), 0);
    assert_int_equal (route.status, 201);
    assert_string_equal (request.start_run->workflow_name, "w");
    assert_int_equal (request.start_run->workflow_version, 3);
    assert_true (request.start_run->no_cache);
    assert_int_equal (request.start_run->n_params, 3);
    qn_http_api_request_reset (&request);

    assert_int_equal (qn_http_api_decode ("GET", "/api/v1/workflows/w/diff", NULL, NULL, NULL, 0,
                                          &request, &route, &error), 400);
    assert_non_null (error);
    assert_string_equal (json_string_value (json_object_get (json_object_get (error, "error"),
                                                             "field")), "from");
    json_decref (error);
    assert_int_equal (request.body_case, QANAT__REQUEST__BODY__NOT_SET);

    assert_int_equal (qn_http_api_decode ("DELETE", "/api/v1/apitokens/ci", NULL, NULL, NULL, 0,
                                          &request, &route, &error), 0);
    assert_string_equal (request.revoke_api_token->name, "ci");
    qn_http_api_request_reset (&request);
    //  The schedule routes: the requests of qanat schedules and schedule pause|resume
    assert_int_equal (qn_http_api_decode ("GET", "/api/v1/schedules", NULL, NULL, NULL, 0,
                                          &request, &route, &error), 0);
    assert_int_equal (request.body_case, QANAT__REQUEST__BODY_LIST_SCHEDULES);
    qn_http_api_request_reset (&request);
    assert_int_equal (qn_http_api_decode ("POST", "/api/v1/schedules/nightly/pause", NULL, NULL,
                                          NULL, 0, &request, &route, &error), 0);
    assert_string_equal (request.schedule_pause->workflow, "nightly");
    assert_true (request.schedule_pause->paused);
    qn_http_api_request_reset (&request);
    assert_int_equal (qn_http_api_decode ("POST", "/api/v1/schedules/nightly/resume", NULL, NULL,
                                          NULL, 0, &request, &route, &error), 0);
    assert_int_equal (route.id, QN_HTTP_ROUTE_SCHEDULE_RESUME);
    assert_false (request.schedule_pause->paused);
    qn_http_api_request_reset (&request);
    assert_int_equal (qn_http_api_decode ("GET", "/api/v1/runs/0", NULL, NULL, NULL, 0,
                                          &request, &route, &error), 404);
    json_decref (error);
    assert_int_equal (qn_http_api_decode ("GET", "/api/v1/runs//logs", NULL, NULL, NULL, 0,
                                          &request, &route, &error), 404);
    json_decref (error);

    //  Names in the path and filters in the query are UTF-8 text without
    //  control characters: nothing else reaches the engine (or its log)
    const char *paths [][2] = {
        { "GET", "/api/v1/workflows/a\nb" }, { "POST", "/api/v1/agents/a\x7f/drain" },
        { "GET", "/api/v1/workflows/\xc3" }, { "DELETE", "/api/v1/apitokens/\xff\xfe" },
        { "GET", "/api/v1/runs/7/artifacts/t/a\rb" }
    };
    for (size_t i = 0; i < sizeof paths / sizeof paths [0]; i++) {
        assert_int_equal (qn_http_api_decode (paths [i][0], paths [i][1], NULL, NULL, NULL, 0,
                                              &request, &route, &error), 404);
        json_decref (error);
        assert_int_equal (request.body_case, QANAT__REQUEST__BODY__NOT_SET);
    }
    assert_int_equal (qn_http_api_decode ("GET", "/api/v1/workflows/caf\xc3\xa9", NULL, NULL,
                                          NULL, 0, &request, &route, &error), 0);
    assert_string_equal (request.get_workflow->name, "caf\xc3\xa9");
    qn_http_api_request_reset (&request);
    const char *filters [][3] = {
        { "/api/v1/runs", "workflow", "a\tb" }, { "/api/v1/runs", "owner", "\xff" },
        { "/api/v1/runs/7/logs", "task", "t\x1b[31m" }, { "/api/v1/runs/7/metrics", "name", "\xc3(" }
    };
    for (size_t i = 0; i < sizeof filters / sizeof filters [0]; i++) {
        const char *pairs [] = { filters [i][1], filters [i][2], NULL };
        assert_int_equal (qn_http_api_decode ("GET", filters [i][0], s_query, pairs, NULL, 0,
                                              &request, &route, &error), 400);
        assert_string_equal (json_string_value (json_object_get (json_object_get (error, "error"),
                                                                 "field")), filters [i][1]);
        json_decref (error);
    }
    //  Last-Event-ID and friends: digits within 64 bits, nothing else
    uint64_t value = 0;
    assert_true (qn_http_api_parse_uint ("18446744073709551615", &value));
    assert_true (value == UINT64_MAX);
    const char *numbers [] = { "18446744073709551616", "99999999999999999999", "-1", "+1", " 1",
                               "1 ", "0x10", "" };
    for (size_t i = 0; i < sizeof numbers / sizeof numbers [0]; i++)
        assert_false (qn_http_api_parse_uint (numbers [i], &value));
}

//  PUT /blobs: the body goes to the engine in pieces of at most 1 MiB as
//  it arrives, after what the engine holds already (an upload resumed)
static void
test_blob_upload (void **state)
{
    s_fixture_t *self = (s_fixture_t *) *state;
    const char *hash = "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc";
    size_t size = 2 * 1024 * 1024 + 512 * 1024 + 3;
    s_put_held = 1000;                  //  left by an upload cut short
    s_put_pieces = 0;
    s_put_biggest = 0;
    char *head = zsys_sprintf ("PUT /api/v1/blobs/%s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                               "Authorization: Bearer " S_TOKEN "\r\nContent-Length: %zu\r\n\r\n",
                               hash, size);
    size_t head_size = strlen (head);
    char *text = (char *) malloc (head_size + size);
    memcpy (text, head, head_size);
    memset (text + head_size, 'z', size);
    s_response_t response = s_send (self, text, head_size + size);
    assert_int_equal (response.status, 201);
    s_assert_security_headers (&response);
    char *want = zsys_sprintf ("{\"hash\":\"%s\",\"size\":%zu}\n", hash, size);
    assert_string_equal (response.body, want);
    assert_true (s_put_held == size);
    assert_true (s_put_first == 1000);
    assert_true (s_put_biggest == 1024 * 1024);
    assert_int_equal (s_put_pieces, 3);
    zstr_free (&want);
    s_response_free (&response);
    free (text);
    zstr_free (&head);
    //  No length: 411; no token: 401, before a byte of the body is read
    const char *chunked = "PUT /api/v1/blobs/cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
                          " HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer " S_TOKEN
                          "\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
    response = s_send (self, chunked, strlen (chunked));
    assert_int_equal (response.status, 411);
    s_response_free (&response);
    const char *stranger = "PUT /api/v1/blobs/cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
                           " HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 999999999999"
                           "\r\n\r\nabc";
    response = s_send (self, stranger, strlen (stranger));
    assert_int_equal (response.status, 401);
    s_response_free (&response);
}

int
main (void)
{
    zsys_init ();
    const struct CMUnitTest tests [] = {
        cmocka_unit_test_setup_teardown (test_auth_and_headers, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_routes_refused, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_cookie_origin, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_static_files, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_download, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_download_tree, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_log_stream, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_log_stream_coalesce, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_metrics, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_blob_upload, s_setup, s_teardown),
        cmocka_unit_test (test_decode),
        cmocka_unit_test (test_bridge_timeout),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
