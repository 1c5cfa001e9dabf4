/*  qn_http_sse - server-sent event streams: a run's log lines, a run's
    state, the run list, the agents.

    One of the files of the qn_http class.

    A stream waits on a SUB socket for the engine's notification of a
    change ("run.<id>.", "runs.", "agents."), then reads the state again
    through its own bridge.  Log lines carry their run-wide log sequence
    as the event id, and a client that reconnects with Last-Event-ID (or
    ?after=) gets exactly the lines after it: none twice, none lost.
    State streams send the whole state, and only when it changed.  A
    comment every 10 s keeps proxies and the idle timeout at bay.  The
    reader runs on its connection's own thread (one thread per
    connection), so it may block; it does so in 250 ms slices, watching
    for the server stopping, and on the connection's socket too, so that
    a client that leaves gives back its stream slot at once.

    Log and list streams coalesce their reads: a change that comes less
    than COALESCE_MS after the stream's last read is read when that
    interval is over, together with every change that came meanwhile.  A
    run that prints a line per commit would otherwise cost each of its
    followers a read per line.  Nothing is lost: a log read takes every
    line after the last one sent, a list read the newest list.  A run's
    state stream still reads on each change, as it promises each state
    (a task that ran for 50 ms shows as running); that costs a run's
    watchers a GetRun per commit of the run.
*/
#include "qn_http_internal.h"
#include "qn_json.h"
#include <poll.h>

#define SLICE_MS    250
#define PAGE_LINES  500             //  log lines a read asks for, when the client did not say

//  The least time between two reads of a stream on a change.  The
//  trade-off: a line (or state) reaches the client up to this much later,
//  against engine reads that grow with changes x streams without it (20
//  followers of a run that commits 100 lines/s: 2,000 wakes a second, each
//  a read or two; 200 with it).  A log viewer does not notice 100 ms.
#define COALESCE_MS 100

typedef struct {
    qn_http_t *server;
    qn_http_route_id_t kind;
    char *credential;
    qn_http_bridge_t *bridge;
    qn_http_watch_t *watch;
    Qanat__Request request;         //  the route's engine request, read again on each change
    uint64_t after;                 //  logs: the last log sequence sent
    char *pending;                  //  events not yet handed to MHD
    size_t pending_size;
    size_t pending_sent;
    char *last;                     //  state streams: the data sent last
    bool more;                      //  logs: a page came full, read on at once
    bool done;
    bool changed;                   //  a change came that was not read yet
    int64_t last_read;              //  when the engine was last read
    int64_t last_write;
    int fd;                         //  the connection's socket, watched for the client leaving
    bool peer_spoke;                //  the client sent data: its socket is checked each slice
    int error_status;               //  the first read failed: answer this instead
    json_t *error;
} s_stream_t;

static void
s_append (s_stream_t *self, const char *text)
{
    size_t len = strlen (text);
    char *grown = (char *) realloc (self->pending, self->pending_size + len + 1);
    if (!grown) {
        self->done = true;          //  out of memory: end the stream, the client reconnects
        return;
    }
    self->pending = grown;
    memcpy (self->pending + self->pending_size, text, len + 1);
    self->pending_size += len;
}

//  One event: "event: NAME\n[id: ID\n]data: JSON\n\n" (JSON is one line)
static void
s_event (s_stream_t *self, const char *name, uint64_t id, bool with_id, json_t *data)
{
    char *text = data? json_dumps (data, JSON_COMPACT): NULL;
    char head [96];
    if (with_id)
        snprintf (head, sizeof head, "event: %s\nid: %llu\ndata: ", name, (unsigned long long) id);
    else
        snprintf (head, sizeof head, "event: %s\ndata: ", name);
    s_append (self, head);
    s_append (self, text? text: "{}");
    s_append (self, "\n\n");
    free (text);
}

//  Calls the engine; on failure keeps the error (answered when it is the
//  first read, else sent as an "error" event for 401/403/404, or retried
//  at the next wake for 503)
static Qanat__Reply *
s_call (s_stream_t *self, Qanat__Request *request, bool first)
{
    Qanat__Reply *reply = NULL;
    char *message = NULL;
    int rc = qn_http_bridge_call (self->bridge, self->credential, request, &reply,
                                  self->server->call_timeout_ms, &message);
    unsigned int status = rc == QN_HTTP_BRIDGE_REFUSED? 401: rc? 503: 0;
    if (!rc && reply->body_case == QANAT__REPLY__BODY_ERROR) {
        status = qn_http_error_status (reply->error);
        message = strdup (reply->error->message);
        qanat__reply__free_unpacked (reply, NULL);
        reply = NULL;
    }
    if (status) {
        json_t *error = qn_json_error (qn_http_error_code (status),
                                       message? message: "refused", NULL);
        if (first) {
            self->error_status = (int) status;
            self->error = error;
        }
        else {
            if (status != 503) {
                s_event (self, "error", 0, false, error);
                self->done = true;
            }
            json_decref (error);
        }
    }
    free (message);
    return reply;
}

//  Sends the state when it changed since the last one sent
static void
s_state_event (s_stream_t *self, const char *name, json_t *data)
{
    char *text = data? json_dumps (data, JSON_COMPACT | JSON_SORT_KEYS): NULL;
    if (text && (!self->last || strcmp (text, self->last) != 0)) {
        s_event (self, name, 0, false, data);
        free (self->last);
        self->last = text;
    }
    else
        free (text);
    json_decref (data);
}

static void
s_produce_logs (s_stream_t *self, bool first)
{
    self->more = false;
    self->request.read_logs->after_seq = self->after;
    Qanat__Reply *reply = s_call (self, &self->request, first);
    if (!reply)
        return;
    if (reply->body_case == QANAT__REPLY__BODY_LOGS) {
        Qanat__LogPage *page = reply->logs;
        uint64_t before = self->after;
        for (size_t i = 0; i < page->n_lines; i++) {
            const Qanat__LogLine *line = page->lines [i];
            if (line->log_seq <= self->after)
                continue;           //  never twice
            json_t *json = qn_http_log_line_json (line);
            s_event (self, "line", line->log_seq, true, json);
            json_decref (json);
            self->after = line->log_seq;
        }
        //  Read on at once only while pages move forward (a page of
        //  lines already sent must not turn into a busy loop), and only
        //  when there may be more now: a full page, or the last one of a
        //  finished run (then the next read brings the end).  A short page
        //  of a live run is all there is: the next change wakes us
        bool full = page->n_lines >= self->request.read_logs->limit;
        if (self->after > before && (full || page->run_finished))
            self->more = true;
        else
        if (page->run_finished) {
            json_t *end = json_object ();
            json_object_set_new (end, "next", json_integer ((json_int_t) self->after));
            s_event (self, "end", self->after, true, end);
            json_decref (end);
            self->done = true;
        }
    }
    qanat__reply__free_unpacked (reply, NULL);
}

static void
s_produce (s_stream_t *self, bool first)
{
    self->changed = false;          //  what is read now covers every change so far
    self->last_read = zclock_mono ();
    if (self->kind == QN_HTTP_ROUTE_RUN_LOGS_STREAM) {
        s_produce_logs (self, first);
        return;
    }
    Qanat__Reply *reply = s_call (self, &self->request, first);
    if (!reply)
        return;
    if (self->kind == QN_HTTP_ROUTE_RUN_EVENTS && reply->body_case == QANAT__REPLY__BODY_RUN)
        s_state_event (self, "run", qn_http_run_json (reply->run));
    else
    if (self->kind == QN_HTTP_ROUTE_RUNS_EVENTS && reply->body_case == QANAT__REPLY__BODY_RUNS) {
        json_t *json = qn_http_run_list_json (reply->runs);
        s_state_event (self, "runs", json);
    }
    else
    if (self->kind == QN_HTTP_ROUTE_AGENTS_EVENTS && reply->body_case == QANAT__REPLY__BODY_AGENTS)
        s_state_event (self, "agents", qn_json_from_message (&reply->agents->base));
    qanat__reply__free_unpacked (reply, NULL);
}

//  Waits for the client leaving only, while a read is due anyway: the
//  change notifications that come meanwhile queue in the watch, rather
//  than waking the thread once each
static int
s_wait_peer (s_stream_t *self, int timeout_ms)
{
    if (self->peer_spoke || self->fd < 0) {
        zclock_sleep (timeout_ms);
        return 0;
    }
    struct pollfd item = { self->fd, POLLIN | POLLRDHUP, 0 };
    int rc = poll (&item, 1, timeout_ms > 0? timeout_ms: 0);
    return rc > 0? QN_HTTP_WATCH_PEER: 0;
}

static ssize_t
s_read (void *cls, uint64_t pos, char *buffer, size_t max)
{
    (void) pos;
    s_stream_t *self = (s_stream_t *) cls;
    while (true) {
        if (self->pending_sent < self->pending_size) {
            size_t size = self->pending_size - self->pending_sent;
            if (size > max)
                size = max;
            memcpy (buffer, self->pending + self->pending_sent, size);
            self->pending_sent += size;
            self->last_write = zclock_mono ();
            return (ssize_t) size;
        }
        free (self->pending);
        self->pending = NULL;
        self->pending_size = self->pending_sent = 0;
        if (self->done || atomic_load (&self->server->stopping))
            return MHD_CONTENT_READER_END_OF_STREAM;
        if (self->more) {
            s_produce (self, false);
            continue;
        }
        int64_t now = zclock_mono ();
        int64_t due = self->last_read + COALESCE_MS - now;
        if (self->changed && due <= 0) {
            //  Takes the notifications that queued meanwhile: this read covers them
            qn_http_watch_wait (self->watch, 0, -1);
            s_produce (self, false);
            continue;
        }
        int64_t quiet = now - self->last_write;
        if (quiet >= QN_HTTP_KEEPALIVE_MS) {
            s_append (self, ": keepalive\n\n");
            continue;
        }
        int64_t wait = QN_HTTP_KEEPALIVE_MS - quiet;
        if (wait > SLICE_MS)
            wait = SLICE_MS;
        if (self->changed && due < wait)
            wait = due;             //  then read what came meanwhile, at once
        int rc = self->changed? s_wait_peer (self, (int) wait)
               : qn_http_watch_wait (self->watch, (int) wait, self->peer_spoke? -1: self->fd);
        if (rc < 0)
            return MHD_CONTENT_READER_END_WITH_ERROR;
        if (rc == QN_HTTP_WATCH_CHANGE) {
            self->changed = true;   //  read at the top of the loop, or once the interval is over
            if (self->kind == QN_HTTP_ROUTE_RUN_EVENTS)
                self->last_read = 0;    //  each state: read now
        }
        if ((rc == QN_HTTP_WATCH_PEER || self->peer_spoke) && self->fd >= 0) {
            //  The client left: free its stream slot and thread now, not
            //  when a keepalive write fails tens of seconds later.  An
            //  orderly end, as nobody is there to be told of an error
            //  (and MHD would log one for each page a browser leaves)
            if (qn_http_peer_closed (self->fd))
                return MHD_CONTENT_READER_END_OF_STREAM;
            //  Data we leave unread (a pipelined request, a TLS record)
            //  keeps the socket readable: stop waiting on it, check it
            //  once a slice instead
            self->peer_spoke = true;
        }
    }
}

//  Gives back a stream's slot (s_take_slot)
static void
s_give_slot (qn_http_t *server, const char *credential)
{
    pthread_mutex_lock (&server->lock);
    int *count = (int *) zhash_lookup (server->streams, credential);
    if (count && --*count <= 0)
        zhash_delete (server->streams, credential);
    pthread_mutex_unlock (&server->lock);
}

static void
s_stream_destroy (s_stream_t **self_p)
{
    s_stream_t *self = *self_p;
    if (!self)
        return;
    if (self->credential)
        s_give_slot (self->server, self->credential);
    qn_http_watch_destroy (&self->watch);
    qn_http_bridge_destroy (&self->bridge);
    qn_http_api_request_reset (&self->request);
    free (self->credential);
    free (self->pending);
    free (self->last);
    json_decref (self->error);
    free (self);
    *self_p = NULL;
}

static void
s_free (void *cls)
{
    s_stream_t *self = (s_stream_t *) cls;
    s_stream_destroy (&self);
}

//  Counts a stream against its credential: false past the cap
static bool
s_take_slot (qn_http_t *server, const char *credential)
{
    bool taken = false;
    pthread_mutex_lock (&server->lock);
    int *count = (int *) zhash_lookup (server->streams, credential);
    if (!count && (count = (int *) calloc (1, sizeof *count))) {
        if (zhash_insert (server->streams, credential, count) == 0)
            zhash_freefn (server->streams, credential, free);
        else {
            free (count);
            count = NULL;
        }
    }
    if (count && *count < QN_HTTP_STREAMS_PER_TOKEN) {
        ++*count;
        taken = true;
    }
    pthread_mutex_unlock (&server->lock);
    return taken;
}

//  Where a log stream resumes: Last-Event-ID, else ?after=
static uint64_t
s_resume_after (qn_http_call_t *call)
{
    const char *last = MHD_lookup_connection_value (call->connection, MHD_HEADER_KIND,
                                                    "Last-Event-ID");
    //  Only an id we could have sent; anything else (past 64 bits, say)
    //  is ignored rather than read as "after everything"
    uint64_t value = 0;
    if (last && qn_http_api_parse_uint (last, &value))
        return value;
    return call->route.has_after? call->route.after: 0;
}

enum MHD_Result
qn_http_sse_serve (qn_http_call_t *call)
{
    qn_http_t *server = call->server;
    if (!s_take_slot (server, call->credential))
        return qn_http_send_error (server, call->connection, 429, "unavailable",
                                   "too many event streams for this credential", NULL);
    s_stream_t *self = (s_stream_t *) calloc (1, sizeof *self);
    char *credential = strdup (call->credential);
    if (!self || !credential) {
        s_give_slot (server, call->credential);
        free (self);
        free (credential);
        return qn_http_send_error (server, call->connection, 503, NULL, "out of memory", NULL);
    }
    self->server = server;
    self->kind = call->route.id;
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info (call->connection, MHD_CONNECTION_INFO_CONNECTION_FD);
    self->fd = info? (int) info->connect_fd: -1;
    self->credential = credential;
    self->bridge = qn_http_bridge_new (server->api_endpoint);
    //  The stream owns the route's request from now on
    self->request = call->request;
    Qanat__Request init = QANAT__REQUEST__INIT;
    call->request = init;
    char topic [64];
    if (self->kind == QN_HTTP_ROUTE_RUNS_EVENTS)
        snprintf (topic, sizeof topic, "runs.");
    else
    if (self->kind == QN_HTTP_ROUTE_AGENTS_EVENTS)
        snprintf (topic, sizeof topic, "agents.");
    else
        snprintf (topic, sizeof topic, "run.%llu.", (unsigned long long) call->route.run_id);
    const char *topics [] = { topic };
    char *error = NULL;
    //  Subscribed before the first read, so no change falls in between
    self->watch = self->bridge
                ? qn_http_watch_new (server->events_endpoint, topics, 1, &error): NULL;
    if (!self->watch) {
        s_stream_destroy (&self);
        enum MHD_Result rc = qn_http_send_error (server, call->connection, 503, NULL,
                                                 error? error: "out of memory", NULL);
        free (error);
        return rc;
    }
    if (self->kind == QN_HTTP_ROUTE_RUN_LOGS_STREAM) {
        self->after = s_resume_after (call);
        //  A limit the engine honours as it is (1 to 1,000), so that a
        //  page shorter than it tells the stream it caught up
        if (!self->request.read_logs->limit)
            self->request.read_logs->limit = PAGE_LINES;
    }
    s_append (self, "retry: 2000\n\n");
    s_produce (self, true);
    if (self->error) {
        call->error = self->error;
        call->error_status = self->error_status;
        self->error = NULL;
        s_stream_destroy (&self);
        return qn_http_send_call_error (call);
    }
    self->last_write = zclock_mono ();
    struct MHD_Response *response = MHD_create_response_from_callback (MHD_SIZE_UNKNOWN,
                                                                       32 * 1024, s_read,
                                                                       self, s_free);
    if (!response) {
        s_stream_destroy (&self);
        return MHD_NO;
    }
    MHD_add_response_header (response, "Content-Type", "text/event-stream; charset=utf-8");
    MHD_add_response_header (response, "X-Accel-Buffering", "no");
    return qn_http_queue (server, call->connection, 200, response, true);
}
