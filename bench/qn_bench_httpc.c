/*  qn_bench_httpc - the HTTP clients of the HTTP figures, on plain
    sockets so that the client costs little beside the server it measures:
    a keep-alive GET, a closed-loop load of GET /api/v1/runs/N over many
    connections (a thread each), and many server-sent event followers of
    log streams in one thread with one poll, checking that every log line
    comes exactly once.

    One of the files of the qn_bench class.
*/
#include "qn_bench.h"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>

#define RESPONSE_MAX    (64 * 1024 * 1024)

struct _bench_http_t {
    int fd;
    char *in;                       //  received, not yet consumed
    size_t in_size;
    size_t in_cap;
};

//  ---------------------------------------------------------------------
//  One connection

//  Connects to 127.0.0.1:port from source (an address of 127/8, so that
//  many clients need not share one address's connection limit), or NULL.
bench_http_t *
bench_http_connect (const char *source, uint16_t port)
{
    int fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return NULL;
    struct sockaddr_in addr = { .sin_family = AF_INET };
    if (source) {
        inet_pton (AF_INET, source, &addr.sin_addr);
        if (bind (fd, (struct sockaddr *) &addr, sizeof addr)) {
            close (fd);
            return NULL;
        }
    }
    addr.sin_port = htons (port);
    inet_pton (AF_INET, "127.0.0.1", &addr.sin_addr);
    int one = 1;
    setsockopt (fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect (fd, (struct sockaddr *) &addr, sizeof addr)) {
        close (fd);
        return NULL;
    }
    bench_http_t *self = (bench_http_t *) zmalloc (sizeof (bench_http_t));
    self->fd = fd;
    return self;
}

void
bench_http_destroy (bench_http_t **self_p)
{
    bench_http_t *self = *self_p;
    if (self) {
        close (self->fd);
        free (self->in);
        free (self);
        *self_p = NULL;
    }
}

int
bench_http_fd (bench_http_t *self)
{
    return self->fd;
}

static int
s_send_all (int fd, const char *data, size_t size)
{
    while (size) {
        ssize_t sent = send (fd, data, size, MSG_NOSIGNAL);
        if (sent < 0 && errno == EINTR)
            continue;
        if (sent <= 0)
            return -1;
        data += sent;
        size -= (size_t) sent;
    }
    return 0;
}

//  Sends a GET (HTTP/1.1, keep-alive) with a bearer credential when given
int
bench_http_send_get (bench_http_t *self, const char *path, const char *bearer)
{
    char request [2048];
    int size = snprintf (request, sizeof request,
                         "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s%s%sAccept: */*\r\n\r\n", path,
                         bearer? "Authorization: Bearer ": "", bearer? bearer: "", bearer? "\r\n": "");
    if (size <= 0 || (size_t) size >= sizeof request)
        return -1;
    return s_send_all (self->fd, request, (size_t) size);
}

//  Reads what the socket has (blocking once); 0 at end of stream, -1 on error
static ssize_t
s_fill (bench_http_t *self)
{
    if (self->in_cap - self->in_size < 64 * 1024) {
        size_t cap = self->in_cap? self->in_cap * 2: 128 * 1024;
        char *grown = (char *) realloc (self->in, cap);
        if (!grown || cap > RESPONSE_MAX)
            return -1;
        self->in = grown;
        self->in_cap = cap;
    }
    ssize_t got;
    do
        got = recv (self->fd, self->in + self->in_size, self->in_cap - self->in_size - 1, 0);
    while (got < 0 && errno == EINTR);
    if (got > 0)
        self->in_size += (size_t) got;
    return got;
}

//  Reads one response with a Content-Length.  Returns the status, or -1;
//  the body stays in the connection's buffer until the next call.
int
bench_http_read_response (bench_http_t *self, const char **body_p, size_t *size_p)
{
    char *end = NULL;
    while (true) {
        if (self->in_size) {
            self->in [self->in_size] = 0;
            end = strstr (self->in, "\r\n\r\n");
        }
        if (end)
            break;
        if (s_fill (self) <= 0)
            return -1;
    }
    size_t head = (size_t) (end - self->in) + 4;
    int status = 0;
    if (sscanf (self->in, "HTTP/1.%*c %d", &status) != 1)
        return -1;
    const char *length = strcasestr (self->in, "\r\nContent-Length:");
    if (!length || length > end)
        return -1;                  //  the figures read only sized responses
    size_t body = (size_t) strtoull (length + 17, NULL, 10);
    while (self->in_size < head + body)
        if (s_fill (self) <= 0)
            return -1;
    //  Keep any bytes after it (none for a client that waits its turn)
    if (body_p)
        *body_p = self->in + head;
    if (size_p)
        *size_p = body;
    size_t rest = self->in_size - head - body;
    if (rest == 0)
        self->in_size = 0;
    else {
        //  Left for the next read: moved after the caller is done with the body
        memmove (self->in, self->in + head + body, rest);
        self->in_size = rest;
        if (body_p)
            *body_p = NULL;
    }
    return status;
}

//  GET path: the status, or -1
int
bench_http_get (bench_http_t *self, const char *path, const char *bearer,
                const char **body_p, size_t *size_p)
{
    if (bench_http_send_get (self, path, bearer))
        return -1;
    return bench_http_read_response (self, body_p, size_p);
}

//  ---------------------------------------------------------------------
//  Closed-loop load: connections x GET /api/v1/runs/N, N spread over a range

typedef struct {
    uint16_t port;
    uint64_t first_id, last_id;
    double warm_until, stop_at;
    unsigned seed;
    int64_t *latencies;             //  ns, of requests after the warm-up
    size_t count, alloc;
    size_t errors;
} s_loader_t;

static void *
s_loader_run (void *args)
{
    s_loader_t *self = (s_loader_t *) args;
    bench_http_t *conn = bench_http_connect (NULL, self->port);
    if (!conn) {
        self->errors++;
        return NULL;
    }
    uint64_t span = self->last_id - self->first_id + 1;
    uint64_t state = 0x9E3779B97F4A7C15ULL ^ self->seed;
    while (true) {
        double now = bench_now ();
        if (now >= self->stop_at)
            break;
        //  xorshift: a different run each time, as clients reading many runs
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        char path [64];
        snprintf (path, sizeof path, "/api/v1/runs/%llu",
                  (unsigned long long) (self->first_id + state % span));
        int64_t start = bench_now_ns ();
        const char *body = NULL;
        int status = bench_http_get (conn, path, NULL, &body, NULL);
        int64_t took = bench_now_ns () - start;
        if (status != 200) {
            self->errors++;
            if (status < 0)
                break;
            continue;
        }
        if (now < self->warm_until)
            continue;
        if (self->count == self->alloc) {
            self->alloc = self->alloc? 2 * self->alloc: 65536;
            self->latencies = (int64_t *) realloc (self->latencies, self->alloc * sizeof (int64_t));
        }
        self->latencies [self->count++] = took;
    }
    bench_http_destroy (&conn);
    return NULL;
}

static int
s_compare_i64 (const void *a, const void *b)
{
    int64_t x = *(const int64_t *) a, y = *(const int64_t *) b;
    return x < y? -1: x > y;
}

//  Nearest-rank percentile, in ms, of latencies in ns (sorted here)
double
bench_http_percentile (int64_t *latencies, size_t count, double q)
{
    if (!count)
        return 0;
    qsort (latencies, count, sizeof (int64_t), s_compare_i64);
    size_t rank = (size_t) ceil (q * count);
    rank = rank < 1? 1: rank > count? count: rank;
    return (double) latencies [rank - 1] / 1e6;
}

//  Runs conns connections for seconds (after a short warm-up) and fills
//  result.  -1 when no connection worked.
int
bench_http_load (uint16_t port, size_t conns, double seconds, uint64_t first_id,
                 uint64_t last_id, bench_load_t *result)
{
    memset (result, 0, sizeof *result);
    s_loader_t *loaders = (s_loader_t *) calloc (conns, sizeof (s_loader_t));
    pthread_t *threads = (pthread_t *) calloc (conns, sizeof (pthread_t));
    double warm = seconds / 10 < 0.5? seconds / 10: 0.5;
    double start = bench_now ();
    for (size_t i = 0; i < conns; i++) {
        loaders [i].port = port;
        loaders [i].first_id = first_id;
        loaders [i].last_id = last_id;
        loaders [i].warm_until = start + warm;
        loaders [i].stop_at = start + warm + seconds;
        loaders [i].seed = (unsigned) (i * 7919 + 1);
        pthread_create (&threads [i], NULL, s_loader_run, &loaders [i]);
    }
    size_t total = 0;
    for (size_t i = 0; i < conns; i++) {
        pthread_join (threads [i], NULL);
        total += loaders [i].count;
        result->errors += loaders [i].errors;
    }
    int64_t *all = (int64_t *) malloc ((total + 1) * sizeof (int64_t));
    size_t at = 0;
    for (size_t i = 0; i < conns; i++) {
        memcpy (all + at, loaders [i].latencies, loaders [i].count * sizeof (int64_t));
        at += loaders [i].count;
        free (loaders [i].latencies);
    }
    result->requests = total;
    result->rate = total / seconds;
    result->p50_ms = bench_http_percentile (all, total, 0.5);
    result->p99_ms = bench_http_percentile (all, total, 0.99);
    free (all);
    free (loaders);
    free (threads);
    return total? 0: -1;
}

//  ---------------------------------------------------------------------
//  Event stream followers: one thread, one poll over every connection

typedef struct {
    bench_http_t *conn;
    bench_follower_t *result;
    bool head_done;                 //  the response head has been read
    size_t chunk_left;              //  bytes of the current chunk still to come
    bool chunk_crlf;                //  the CRLF after a chunk's data is due
    char line [4096];               //  the event-stream line being read
    size_t line_size;
    char event [32];
    uint64_t id;
    bool has_id;
} s_follower_t;

struct _bench_followers_t {
    pthread_t thread;
    atomic_bool stop;
    atomic_size_t connected;        //  followers that had their response head
    atomic_size_t ended;            //  followers that had the end event (or failed)
    s_follower_t *followers;
    size_t count;
};

//  One complete event: a "line" checks the sequence, an "end" closes
static void
s_follower_event (s_follower_t *self)
{
    bench_follower_t *result = self->result;
    if (streq (self->event, "line") && self->has_id) {
        if (self->id <= result->last_seq)
            result->repeated++;
        else {
            if (self->id != result->last_seq + 1)
                result->missing += self->id - result->last_seq - 1;
            result->last_seq = self->id;
            result->lines++;
        }
    }
    else
    if (streq (self->event, "end"))
        result->ended = true;
    else
    if (streq (self->event, "error"))
        result->failed = true;
    self->event [0] = 0;
    self->has_id = false;
}

static void
s_follower_line (s_follower_t *self)
{
    self->line [self->line_size] = 0;
    if (self->line_size == 0)
        s_follower_event (self);
    else
    if (strncmp (self->line, "event: ", 7) == 0)
        snprintf (self->event, sizeof self->event, "%s", self->line + 7);
    else
    if (strncmp (self->line, "id: ", 4) == 0) {
        self->id = strtoull (self->line + 4, NULL, 10);
        self->has_id = true;
    }
    self->line_size = 0;
}

//  Event-stream bytes, chunk framing removed
static void
s_follower_text (s_follower_t *self, const char *data, size_t size)
{
    self->result->bytes += size;
    for (size_t i = 0; i < size; i++) {
        if (data [i] == '\n')
            s_follower_line (self);
        else
        if (self->line_size < sizeof self->line - 1)
            self->line [self->line_size++] = data [i];
    }
}

//  Takes what the connection holds: the head, then chunks.  -1 when the
//  stream is over or broken.
static int
s_follower_take (s_follower_t *self)
{
    bench_http_t *conn = self->conn;
    size_t at = 0;
    if (!self->head_done) {
        conn->in [conn->in_size] = 0;
        char *end = strstr (conn->in, "\r\n\r\n");
        if (!end)
            return 0;
        int status = 0;
        sscanf (conn->in, "HTTP/1.%*c %d", &status);
        self->result->status = status;
        self->head_done = true;
        at = (size_t) (end - conn->in) + 4;
        if (status != 200 || !strcasestr (conn->in, "chunked"))
            return -1;
    }
    while (at < conn->in_size) {
        if (self->chunk_left) {
            size_t take = conn->in_size - at < self->chunk_left? conn->in_size - at: self->chunk_left;
            s_follower_text (self, conn->in + at, take);
            at += take;
            self->chunk_left -= take;
            self->chunk_crlf = self->chunk_left == 0;
            continue;
        }
        char *eol = memmem (conn->in + at, conn->in_size - at, "\r\n", 2);
        if (!eol)
            break;
        if (self->chunk_crlf)
            self->chunk_crlf = false;           //  the CRLF that ends a chunk
        else {
            size_t size = (size_t) strtoull (conn->in + at, NULL, 16);
            if (size == 0)
                return -1;                      //  the last chunk
            self->chunk_left = size;
        }
        at = (size_t) (eol - conn->in) + 2;
    }
    memmove (conn->in, conn->in + at, conn->in_size - at);
    conn->in_size -= at;
    return 0;
}

static void *
s_followers_run (void *args)
{
    bench_followers_t *self = (bench_followers_t *) args;
    struct pollfd *items = (struct pollfd *) calloc (self->count, sizeof (struct pollfd));
    while (!atomic_load (&self->stop)) {
        size_t live = 0;
        for (size_t i = 0; i < self->count; i++) {
            items [i].fd = self->followers [i].conn? self->followers [i].conn->fd: -1;
            items [i].events = POLLIN;
            live += items [i].fd >= 0;
        }
        if (!live)
            break;
        if (poll (items, (nfds_t) self->count, 100) < 0 && errno != EINTR)
            break;
        for (size_t i = 0; i < self->count; i++) {
            s_follower_t *follower = &self->followers [i];
            if (items [i].fd < 0 || !(items [i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            bool had_head = follower->head_done;
            bool over = s_fill (follower->conn) <= 0 || s_follower_take (follower) < 0
                     || follower->result->ended || follower->result->failed;
            if (!had_head && follower->head_done)
                atomic_fetch_add (&self->connected, 1);
            if (over) {
                bench_http_destroy (&follower->conn);
                atomic_fetch_add (&self->ended, 1);
            }
        }
    }
    free (items);
    return NULL;
}

//  Opens count followers of GET /api/v1/runs/ID/logs/stream?task=t0, the
//  i-th following run_ids [i % runs], per_source of them from each
//  loopback address and with each credential (the server's caps are per
//  address and per credential).  NULL when a connection fails.
bench_followers_t *
bench_followers_start (uint16_t port, const uint64_t *run_ids, size_t runs, size_t count,
                       size_t per_source, bench_follower_t *results)
{
    bench_followers_t *self = (bench_followers_t *) zmalloc (sizeof (bench_followers_t));
    self->followers = (s_follower_t *) calloc (count, sizeof (s_follower_t));
    self->count = count;
    for (size_t i = 0; i < count; i++) {
        size_t group = i / per_source;
        char source [32], bearer [64], path [128];
        snprintf (source, sizeof source, "127.0.%zu.%zu", (group + 2) / 250, (group + 2) % 250);
        snprintf (bearer, sizeof bearer, "qat_bench_follower_%zu", group);
        memset (&results [i], 0, sizeof results [i]);
        results [i].run_id = run_ids [i % runs];
        snprintf (path, sizeof path, "/api/v1/runs/%llu/logs/stream?task=t0",
                  (unsigned long long) results [i].run_id);
        s_follower_t *follower = &self->followers [i];
        follower->result = &results [i];
        follower->conn = bench_http_connect (source, port);
        if (!follower->conn || bench_http_send_get (follower->conn, path, bearer)) {
            bench_say ("   follower %zu: cannot connect from %s: %s\n", i, source, strerror (errno));
            for (size_t k = 0; k <= i; k++)
                bench_http_destroy (&self->followers [k].conn);
            free (self->followers);
            free (self);
            return NULL;
        }
    }
    pthread_create (&self->thread, NULL, s_followers_run, self);
    return self;
}

size_t
bench_followers_connected (bench_followers_t *self)
{
    return atomic_load (&self->connected);
}

size_t
bench_followers_ended (bench_followers_t *self)
{
    return atomic_load (&self->ended);
}

//  Stops the thread and closes what is open; the results stay the caller's
void
bench_followers_destroy (bench_followers_t **self_p)
{
    bench_followers_t *self = *self_p;
    if (self) {
        atomic_store (&self->stop, true);
        pthread_join (self->thread, NULL);
        for (size_t i = 0; i < self->count; i++)
            bench_http_destroy (&self->followers [i].conn);
        free (self->followers);
        free (self);
        *self_p = NULL;
    }
}
