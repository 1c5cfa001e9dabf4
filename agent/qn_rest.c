/*  qn_rest - REST calls on the agent's zloop.  See qn_rest.h.

    libcurl's multi interface is driven by the loop: CURLMOPT_SOCKETFUNCTION
    turns each socket curl wants watched into a zloop poller (replaced when
    the wanted events change, ended on CURL_POLL_REMOVE), and
    CURLMOPT_TIMERFUNCTION keeps one one-shot zloop timer.  Both call
    curl_multi_socket_action, after which finished transfers are collected
    and their completion callbacks run, outside libcurl.
*/
#include "qn_rest.h"
#include "qn_log.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define S_CONNECT_TIMEOUT_MS    10000
#define S_REQUEST_TIMEOUT_MS    30000
#define S_ERROR_BODY_MAX        (64 * 1024)

typedef struct {
    qn_rest_t *rest;
    void *handle;               //  in rest->calls
    uint64_t id;
    CURL *easy;
    struct curl_slist *headers;
    char *request_body;         //  our copy: the caller's may go once the call starts
    size_t request_size;
    char *buffer;               //  the answer (whole calls, error answers of streams)
    size_t size;
    size_t max;
    bool overflow;
    char *reply_headers;        //  the last answer's header lines
    size_t header_size;
    bool streaming;
    bool canceled;              //  from inside libcurl: forgotten when it completes
    bool paused;                //  as applied to curl
    bool want_paused;           //  as asked
    qn_rest_data_fn *data;
    qn_rest_done_fn *done;
    void *arg;
    char errbuf [CURL_ERROR_SIZE];
} s_call_t;

struct _qn_rest_t {
    zloop_t *loop;
    char *name;                 //  for log lines
    qn_rest_setup_fn *setup;
    void *setup_arg;
    CURLM *multi;
    zlistx_t *calls;            //  s_call_t in flight
    uint64_t next_id;
    int timer_id;
    int in_curl;                //  > 0 while inside libcurl: defer pauses
    bool pause_dirty;
    s_call_t *completing;       //  the call whose completion runs, for qn_rest_header
};

static void
s_call_destroy (s_call_t **self_p)
{
    s_call_t *self = *self_p;
    if (!self)
        return;
    if (self->easy)
        curl_easy_cleanup (self->easy);
    curl_slist_free_all (self->headers);
    if (self->request_body) {
        //  Bodies may carry tokens (OAuth client credentials)
        memset (self->request_body, 0, self->request_size);
        free (self->request_body);
    }
    free (self->buffer);
    free (self->reply_headers);
    free (self);
    *self_p = NULL;
}

static s_call_t *
s_call_find (qn_rest_t *self, uint64_t id)
{
    s_call_t *call = (s_call_t *) zlistx_first (self->calls);
    while (call && (call->id != id || call->canceled))
        call = (s_call_t *) zlistx_next (self->calls);
    return call;
}

//  Bounded buffering of an answer
static size_t
s_buffer_append (s_call_t *call, const char *data, size_t size)
{
    if (call->overflow || call->size + size > call->max) {
        call->overflow = true;
        return size;
    }
    char *grown = (char *) realloc (call->buffer, call->size + size + 1);
    if (!grown)
        return 0;
    call->buffer = grown;
    memcpy (call->buffer + call->size, data, size);
    call->size += size;
    call->buffer [call->size] = '\0';
    return size;
}

static size_t
s_write (char *data, size_t one, size_t count, void *arg)
{
    s_call_t *call = (s_call_t *) arg;
    size_t size = one * count;
    if (call->canceled)
        return 0;               //  aborts the transfer
    if (call->streaming) {
        long status = 0;
        curl_easy_getinfo (call->easy, CURLINFO_RESPONSE_CODE, &status);
        if (status >= 200 && status < 300) {
            if (call->data && call->data (call->arg, call->id, data, size) == -1)
                return 0;
            return size;
        }
    }
    return s_buffer_append (call, data, size);
}

//  Keeps the header lines of the last answer (a status line starts over:
//  100 Continue, redirects)
static size_t
s_header (char *data, size_t one, size_t count, void *arg)
{
    s_call_t *call = (s_call_t *) arg;
    size_t size = one * count;
    if (size >= 5 && memcmp (data, "HTTP/", 5) == 0)
        call->header_size = 0;
    if (call->header_size + size > QN_REST_HEADERS_MAX)
        return size;            //  headers past the bound are not kept
    char *grown = (char *) realloc (call->reply_headers, call->header_size + size + 1);
    if (!grown)
        return 0;
    call->reply_headers = grown;
    memcpy (grown + call->header_size, data, size);
    call->header_size += size;
    grown [call->header_size] = '\0';
    return size;
}

static struct curl_slist *
s_append (struct curl_slist **list, const char *line)
{
    struct curl_slist *more = curl_slist_append (*list, line);
    if (more)
        *list = more;
    return more;
}

//  An easy handle for one call, ready to run.  -1 when out of memory or
//  the setup hook refuses.
static int
s_call_setup (qn_rest_t *self, s_call_t *call, const qn_rest_call_t *spec, long timeout_ms)
{
    call->easy = curl_easy_init ();
    if (!call->easy)
        return -1;
    CURL *easy = call->easy;
    curl_easy_setopt (easy, CURLOPT_URL, spec->url);
    curl_easy_setopt (easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt (easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt (easy, CURLOPT_PRIVATE, call);
    curl_easy_setopt (easy, CURLOPT_ERRORBUFFER, call->errbuf);
    curl_easy_setopt (easy, CURLOPT_WRITEFUNCTION, s_write);
    curl_easy_setopt (easy, CURLOPT_WRITEDATA, call);
    curl_easy_setopt (easy, CURLOPT_HEADERFUNCTION, s_header);
    curl_easy_setopt (easy, CURLOPT_HEADERDATA, call);
    curl_easy_setopt (easy, CURLOPT_CONNECTTIMEOUT_MS, (long) S_CONNECT_TIMEOUT_MS);
    curl_easy_setopt (easy, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt (easy, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt (easy, CURLOPT_USERAGENT, "qanat-agent");

    if (!s_append (&call->headers, "Accept: application/json"))
        return -1;
    if (self->setup && self->setup (self->setup_arg, easy, &call->headers) == -1)
        return -1;
    for (size_t i = 0; spec->headers && spec->headers [i]; i++)
        if (!s_append (&call->headers, spec->headers [i]))
            return -1;
    bool has_body = spec->json || spec->body;
    if (spec->json) {
        call->request_body = json_dumps (spec->json, JSON_COMPACT);
        call->request_size = call->request_body? strlen (call->request_body): 0;
        if (!call->request_body
        ||  !s_append (&call->headers, "Content-Type: application/json"))
            return -1;
        curl_easy_setopt (easy, CURLOPT_POSTFIELDS, call->request_body);
        curl_easy_setopt (easy, CURLOPT_POSTFIELDSIZE, (long) strlen (call->request_body));
    }
    else
    if (spec->body) {
        char *type = NULL;
        if (asprintf (&type, "Content-Type: %s",
                      spec->content_type? spec->content_type: "application/json") < 0)
            return -1;
        struct curl_slist *more = s_append (&call->headers, type);
        free (type);
        call->request_body = (char *) malloc (spec->body_size + 1);
        if (!more || !call->request_body)
            return -1;
        memcpy (call->request_body, spec->body, spec->body_size);
        call->request_body [spec->body_size] = '\0';
        call->request_size = spec->body_size;
        curl_easy_setopt (easy, CURLOPT_POSTFIELDS, call->request_body);
        curl_easy_setopt (easy, CURLOPT_POSTFIELDSIZE, (long) spec->body_size);
    }
    curl_easy_setopt (easy, CURLOPT_HTTPHEADER, call->headers);
    if (spec->aws_sigv4) {
        curl_easy_setopt (easy, CURLOPT_AWS_SIGV4, spec->aws_sigv4);
        curl_easy_setopt (easy, CURLOPT_USERPWD, spec->userpwd? spec->userpwd: "");
    }
    else
    if (spec->userpwd)
        curl_easy_setopt (easy, CURLOPT_USERPWD, spec->userpwd);   //  HTTP Basic
    const char *method = spec->method? spec->method: has_body? "POST": "GET";
    if (streq (method, "GET") && !has_body)
        curl_easy_setopt (easy, CURLOPT_HTTPGET, 1L);
    else
    if (!streq (method, "POST") || !has_body)
        curl_easy_setopt (easy, CURLOPT_CUSTOMREQUEST, method);
    return 0;
}

//  Runs the completion of one transfer and forgets it.
static void
s_call_complete (qn_rest_t *self, s_call_t *call, CURLcode result)
{
    long status = 0;
    char error [CURL_ERROR_SIZE + 64] = "";
    json_t *body = NULL;
    if (result == CURLE_OK) {
        curl_easy_getinfo (call->easy, CURLINFO_RESPONSE_CODE, &status);
        if (call->overflow)
            snprintf (error, sizeof (error), "answer larger than %zu bytes", call->max);
        else
        if (call->buffer && call->size > 0)
            body = json_loadb (call->buffer, call->size, 0, NULL);
    }
    else
        snprintf (error, sizeof (error), "%s%s%s", curl_easy_strerror (result),
                  *call->errbuf? ": ": "", call->errbuf);
    if (call->done) {
        s_call_t *outer = self->completing;
        self->completing = call;
        call->done (call->arg, call->id, status, body, error);
        self->completing = outer;
    }
    json_decref (body);
    s_call_destroy (&call);
}

static void
s_apply_pauses (qn_rest_t *self)
{
    while (self->pause_dirty) {
        self->pause_dirty = false;
        s_call_t *call = (s_call_t *) zlistx_first (self->calls);
        while (call) {
            if (call->paused != call->want_paused && !call->canceled) {
                call->paused = call->want_paused;
                self->in_curl++;
                curl_easy_pause (call->easy, call->paused? CURLPAUSE_RECV: CURLPAUSE_CONT);
                self->in_curl--;
                //  Unpausing may have delivered data, whose callback may
                //  have changed the list: start over
                self->pause_dirty = true;
                break;
            }
            call = (s_call_t *) zlistx_next (self->calls);
        }
    }
}

static void
s_collect (qn_rest_t *self)
{
    CURLMsg *message;
    int left;
    while ((message = curl_multi_info_read (self->multi, &left))) {
        if (message->msg != CURLMSG_DONE)
            continue;
        CURL *easy = message->easy_handle;
        CURLcode result = message->data.result;
        s_call_t *call = NULL;
        curl_easy_getinfo (easy, CURLINFO_PRIVATE, (char **) &call);
        curl_multi_remove_handle (self->multi, easy);
        if (!call)
            continue;
        zlistx_detach (self->calls, call->handle);
        s_call_complete (self, call, result);
    }
    //  Calls canceled while libcurl was on the stack go now
    s_call_t *call = (s_call_t *) zlistx_first (self->calls);
    while (call) {
        s_call_t *next = (s_call_t *) zlistx_next (self->calls);
        if (call->canceled) {
            zlistx_detach (self->calls, call->handle);
            curl_multi_remove_handle (self->multi, call->easy);
            s_call_destroy (&call);
        }
        call = next;
    }
    s_apply_pauses (self);
}

static void
s_action (qn_rest_t *self, curl_socket_t fd, int flags)
{
    int running = 0;
    self->in_curl++;
    curl_multi_socket_action (self->multi, fd, flags, &running);
    self->in_curl--;
    s_collect (self);
}

static int
s_socket_ready (zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    (void) loop;
    qn_rest_t *self = (qn_rest_t *) arg;
    int flags = 0;
    if (item->revents & ZMQ_POLLIN)
        flags |= CURL_CSELECT_IN;
    if (item->revents & ZMQ_POLLOUT)
        flags |= CURL_CSELECT_OUT;
    if (item->revents & ZMQ_POLLERR)
        flags |= CURL_CSELECT_ERR;
    s_action (self, item->fd, flags);
    return 0;
}

static int
s_timer_fired (zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    qn_rest_t *self = (qn_rest_t *) arg;
    if (timer_id == self->timer_id)
        self->timer_id = -1;    //  one-shot: the loop ends it
    s_action (self, CURL_SOCKET_TIMEOUT, 0);
    return 0;
}

static int
s_socket_cb (CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    (void) easy;
    (void) socketp;
    qn_rest_t *self = (qn_rest_t *) userp;
    zmq_pollitem_t item = { NULL, fd, 0, 0 };
    zloop_poller_end (self->loop, &item);
    if (what == CURL_POLL_REMOVE)
        return 0;
    if (what & CURL_POLL_IN)
        item.events |= ZMQ_POLLIN;
    if (what & CURL_POLL_OUT)
        item.events |= ZMQ_POLLOUT;
    if (zloop_poller (self->loop, &item, s_socket_ready, self) == -1)
        return -1;
    zloop_poller_set_tolerant (self->loop, &item);
    return 0;
}

static int
s_timer_cb (CURLM *multi, long timeout_ms, void *userp)
{
    (void) multi;
    qn_rest_t *self = (qn_rest_t *) userp;
    if (self->timer_id != -1) {
        zloop_timer_end (self->loop, self->timer_id);
        self->timer_id = -1;
    }
    if (timeout_ms >= 0) {
        self->timer_id = zloop_timer (self->loop, timeout_ms > 0? (size_t) timeout_ms: 1, 1,
                                      s_timer_fired, self);
        if (self->timer_id == -1)
            return -1;
    }
    return 0;
}

int
qn_rest_ensure (qn_rest_t **rest_p, zloop_t *loop, const char *name,
                qn_rest_setup_fn *setup, void *setup_arg, char *error, size_t error_size)
{
    if (!*rest_p)
        *rest_p = qn_rest_new (loop, name, setup, setup_arg);
    if (!*rest_p)
        snprintf (error, error_size, "%s: cannot load libcurl (see the agent's log)", name);
    return *rest_p? 0: -1;
}

qn_rest_t *
qn_rest_new (zloop_t *loop, const char *name, qn_rest_setup_fn *setup, void *setup_arg)
{
    assert (loop);
    char why [256];
    if (qn_curl_load (why, sizeof why) == -1) {
        qn_log (QN_LOG_ERROR, "rest", "%s backend: %s", name? name: "REST", why);
        return NULL;
    }
    qn_rest_t *self = (qn_rest_t *) calloc (1, sizeof (qn_rest_t));
    if (!self)
        return NULL;
    self->loop = loop;
    self->timer_id = -1;
    self->next_id = 1;
    self->setup = setup;
    self->setup_arg = setup_arg;
    self->name = strdup (name? name: "REST");
    self->multi = curl_multi_init ();
    self->calls = zlistx_new ();
    if (!self->multi || !self->calls || !self->name) {
        if (self->multi)
            curl_multi_cleanup (self->multi);
        zlistx_destroy (&self->calls);
        free (self->name);
        free (self);
        return NULL;
    }
    curl_multi_setopt (self->multi, CURLMOPT_SOCKETFUNCTION, s_socket_cb);
    curl_multi_setopt (self->multi, CURLMOPT_SOCKETDATA, self);
    curl_multi_setopt (self->multi, CURLMOPT_TIMERFUNCTION, s_timer_cb);
    curl_multi_setopt (self->multi, CURLMOPT_TIMERDATA, self);
    return self;
}

void
qn_rest_destroy (qn_rest_t **self_p)
{
    assert (self_p);
    qn_rest_t *self = *self_p;
    if (!self)
        return;
    s_call_t *call;
    while ((call = (s_call_t *) zlistx_detach (self->calls, NULL))) {
        curl_multi_remove_handle (self->multi, call->easy);
        s_call_destroy (&call);
    }
    zlistx_destroy (&self->calls);
    curl_multi_cleanup (self->multi);
    if (self->timer_id != -1)
        zloop_timer_end (self->loop, self->timer_id);
    free (self->name);
    free (self);
    *self_p = NULL;
}

static uint64_t
s_start (qn_rest_t *self, const qn_rest_call_t *spec, bool streaming, qn_rest_data_fn *data,
         qn_rest_done_fn *done, void *arg)
{
    assert (self);
    assert (spec && spec->url);
    s_call_t *call = (s_call_t *) calloc (1, sizeof (s_call_t));
    if (!call)
        return 0;
    call->rest = self;
    call->id = self->next_id++;
    call->streaming = streaming;
    call->max = streaming? S_ERROR_BODY_MAX: QN_REST_RESPONSE_MAX;
    call->data = data;
    call->done = done;
    call->arg = arg;
    long timeout_ms = spec->timeout_ms > 0? spec->timeout_ms
                    : streaming? 0L: (long) S_REQUEST_TIMEOUT_MS;
    if (s_call_setup (self, call, spec, timeout_ms) == -1) {
        s_call_destroy (&call);
        return 0;
    }
    call->handle = zlistx_add_end (self->calls, call);
    if (!call->handle) {
        s_call_destroy (&call);
        return 0;
    }
    if (curl_multi_add_handle (self->multi, call->easy) != CURLM_OK) {
        zlistx_detach (self->calls, call->handle);
        s_call_destroy (&call);
        return 0;
    }
    return call->id;
}

uint64_t
qn_rest_request (qn_rest_t *self, const qn_rest_call_t *call, qn_rest_done_fn *done, void *arg)
{
    return s_start (self, call, false, NULL, done, arg);
}

uint64_t
qn_rest_stream (qn_rest_t *self, const qn_rest_call_t *call, qn_rest_data_fn *data,
                qn_rest_done_fn *done, void *arg)
{
    return s_start (self, call, true, data, done, arg);
}

void
qn_rest_cancel (qn_rest_t *self, uint64_t id)
{
    assert (self);
    s_call_t *call = id? s_call_find (self, id): NULL;
    if (!call)
        return;
    if (self->in_curl) {
        //  libcurl is on the stack: the transfer cannot be removed now;
        //  it ends at its next write and is then dropped without a word
        call->canceled = true;
        call->data = NULL;
        call->done = NULL;
        return;
    }
    zlistx_detach (self->calls, call->handle);
    curl_multi_remove_handle (self->multi, call->easy);
    s_call_destroy (&call);
}

void
qn_rest_pause (qn_rest_t *self, uint64_t id, bool paused)
{
    assert (self);
    s_call_t *call = id? s_call_find (self, id): NULL;
    if (!call || !call->streaming)
        return;
    call->want_paused = paused;
    self->pause_dirty = true;
    if (self->in_curl == 0)
        s_apply_pauses (self);
}

size_t
qn_rest_active (qn_rest_t *self)
{
    return zlistx_size (self->calls);
}

long
qn_rest_request_sync (qn_rest_t *self, const qn_rest_call_t *spec, char *error,
                      size_t error_size)
{
    assert (self);
    s_call_t *call = (s_call_t *) calloc (1, sizeof (s_call_t));
    if (!call) {
        snprintf (error, error_size, "out of memory");
        return 0;
    }
    call->max = S_ERROR_BODY_MAX;
    long status = 0;
    if (s_call_setup (self, call, spec, spec->timeout_ms > 0? spec->timeout_ms: 1) == -1)
        snprintf (error, error_size, "out of memory");
    else {
        CURLcode result = curl_easy_perform (call->easy);
        if (result == CURLE_OK)
            curl_easy_getinfo (call->easy, CURLINFO_RESPONSE_CODE, &status);
        else
            snprintf (error, error_size, "%s%s%s", curl_easy_strerror (result),
                      *call->errbuf? ": ": "", call->errbuf);
    }
    s_call_destroy (&call);
    return status;
}


//  ---------------------------------------------------------------------
//  The answer of the call being completed

static s_call_t *
s_completing (qn_rest_t *self, uint64_t id)
{
    return self->completing && self->completing->id == id? self->completing: NULL;
}

bool
qn_rest_header (qn_rest_t *self, uint64_t id, const char *name, char *value,
                size_t value_size)
{
    assert (self && name && value && value_size > 0);
    *value = '\0';
    s_call_t *call = s_completing (self, id);
    if (!call || !call->reply_headers)
        return false;
    size_t name_len = strlen (name);
    const char *line = call->reply_headers;
    while (*line) {
        const char *end = strchr (line, '\n');
        size_t len = end? (size_t) (end - line): strlen (line);
        if (len > name_len && line [name_len] == ':' && strncasecmp (line, name, name_len) == 0) {
            const char *start = line + name_len + 1;
            const char *stop = line + len;
            while (start < stop && (*start == ' ' || *start == '\t'))
                start++;
            while (stop > start && isspace ((unsigned char) stop [-1]))
                stop--;
            size_t size = (size_t) (stop - start);
            if (size >= value_size)
                size = value_size - 1;
            memcpy (value, start, size);
            value [size] = '\0';
            return true;
        }
        line += len + (end? 1: 0);
    }
    return false;
}

const char *
qn_rest_text (qn_rest_t *self, uint64_t id, size_t *size_p)
{
    s_call_t *call = s_completing (self, id);
    if (size_p)
        *size_p = call && call->buffer? call->size: 0;
    return call? call->buffer: NULL;
}

int64_t
qn_rest_retry_after_ms (qn_rest_t *self, uint64_t id)
{
    char value [64];
    if (!qn_rest_header (self, id, "Retry-After", value, sizeof (value)) || !*value)
        return -1;
    if (isdigit ((unsigned char) value [0])) {
        char *end;
        unsigned long long seconds = strtoull (value, &end, 10);
        if (*end != '\0' && *end != '.')
            return -1;
        return seconds > 86400? 86400 * 1000LL: (int64_t) seconds * 1000;
    }
    struct tm tm;
    memset (&tm, 0, sizeof (tm));
    const char *end = strptime (value, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    if (!end || *end)
        return -1;
    int64_t delta = ((int64_t) timegm (&tm) - (int64_t) time (NULL)) * 1000;
    return delta < 0? 0: delta;
}


//  ---------------------------------------------------------------------
//  Retry decisions and the URL encoder

bool
qn_rest_transient (long status)
{
    return status == 0 || status == 408 || status == 429 || status == 500
        || status == 502 || status == 503 || status == 504;
}

int64_t
qn_rest_backoff_ms (unsigned tries, int64_t retry_after_ms, int64_t base_ms, int64_t max_ms)
{
    if (retry_after_ms >= 0)
        return retry_after_ms < max_ms? retry_after_ms: max_ms;
    int64_t wait = base_ms > 0? base_ms: 1;
    for (unsigned i = 1; i < tries && wait < max_ms; i++)
        wait *= 2;
    if (wait > max_ms)
        wait = max_ms;
    //  Jitter, so that agents throttled together do not come back together
    int64_t jitter = wait / 4 > 0? (int64_t) (randof ((int) (wait / 4 + 1))): 0;
    return wait - jitter;
}

char *
qn_rest_escape (const char *text)
{
    static const char hex [] = "0123456789ABCDEF";
    size_t len = strlen (text);
    char *out = (char *) malloc (len * 3 + 1);
    if (!out)
        return NULL;
    size_t at = 0;
    for (const unsigned char *c = (const unsigned char *) text; *c; c++) {
        if (isalnum (*c) || *c == '-' || *c == '_' || *c == '.' || *c == '~')
            out [at++] = (char) *c;
        else {
            out [at++] = '%';
            out [at++] = hex [*c >> 4];
            out [at++] = hex [*c & 15];
        }
    }
    out [at] = '\0';
    return out;
}
