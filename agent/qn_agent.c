/*  qn_agent - the agent engine.  See qn_agent.h.

    State of the conversation: we are either registered (a Welcome came
    after our last Register, and the coordinator has not gone quiet) or
    not.  Only a registered agent sends events and credit; an agent that
    is not registered spools, and sends Register with backoff.

    Events and the spool.  A backend callback stamps the event with the
    attempt's next seq, encodes it and queues it in memory ("pending").
    A zero-delay timer, armed by the first write of a loop turn, fires at
    the start of the next turn and commits everything the turn produced
    (events, acknowledgements, attempts' metadata) in one durable LMDB
    transaction; only then are the events sent, read back from the spool.
    So a line is on disk before the coordinator can see it, and a chatty
    task costs one disk flush per pipe read rather than one per line.
    "sent" marks how far an attempt's events went out on the current
    registration; a Welcome rewinds it to the acknowledged seq, which
    replays the rest.  Sends never block: when libzmq's queue is full we
    retry from a short timer.

    An event that does not fit in the spool stays pending (in seq order,
    holding back the later events of its attempt) until acknowledgements
    make room: none is ever dropped.  Output is paused long before that.
*/
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include "qn_agent.h"
#include "qn_s3.h"
#include "qn_backend.h"
#include "qn_blobstore.h"
#include "qn_transfer.h"
#include "qn_stager.h"
#include "qn_sweeper.h"
#include "qn_msg.h"
#include "qn_spool.h"
#include "qn_stacktrace.h"
#include "qn_token.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "unknown"
#endif

#define S_DEFAULT_HEARTBEAT_MS  1000
#define S_MIN_HEARTBEAT_MS      50
#define S_MAX_HEARTBEAT_MS      600000
#define S_SILENCE_BEATS         5       //  heartbeats of silence = disconnected
#define S_RETRY_MS              10      //  retry after a full send queue
#define S_COMMIT_RETRY_MS       1000    //  retry after a failed commit
#define S_SHUTDOWN_GRACE_MS     2000
#define S_RECV_BURST            256     //  messages handled per wakeup
#define S_BACKOFF_BASE_MS       250
#define S_WATCHDOG_MS           250
#define S_FULL_MARGIN           (64 * 1024)     //  room kept free of output
#define S_STREAMS               3               //  stdout, stderr, system

//  The secret values of one attempt (Assign.redact), longest first, so
//  that where two match the longer is hidden whole.
typedef struct {
    char **values;
    size_t *sizes;
    size_t count;
    size_t longest;
    bool first [256];           //  bytes a value starts with: a fast skip
} s_redactor_t;

//  Bytes held back at the end of a piece of a long line: they could be
//  the start of a secret that the next piece completes.
typedef struct {
    uint8_t *data;
    size_t size;
} s_carry_t;

typedef struct {
    qn_attempt_key_t key;
    char task_name [QN_SPOOL_TASK_NAME_MAX + 1];
    int64_t pid;
    uint64_t start_time;
    uint64_t next_seq;          //  seq the next event gets
    uint64_t committed;         //  every event up to here is in the spool
    uint64_t acked;             //  every event up to here is acknowledged
    uint64_t spool_acked;       //  acknowledgements applied to the spool
    uint64_t sent;              //  sent on the current registration
    size_t pending;             //  events not in the spool yet
    bool running;               //  the backend has not finished it yet
    bool finished;              //  its Finished event is stamped
    bool finished_spooled;      //  ...and committed
    bool meta_dirty;            //  metadata to write at the next commit
    bool forget;                //  delete from the spool at the next commit
    bool blocked;               //  during a commit: an event did not fit
    uint64_t batch_seq;         //  during a commit: last seq put
    s_redactor_t *redactor;     //  its secrets, or NULL
    s_carry_t carry [S_STREAMS];
    size_t backend;             //  index into the agent's backends
    const char *backend_name;   //  its ops' name
    bool awaiting_reattach;     //  taken over from the spool; re-attached after Welcome
    Qanat__Assign *assign;      //  a copy, when it has inputs or outputs
    bool staging;               //  inputs on their way; the backend has not started it
    bool collecting;            //  exited fine; outputs being stored before Finished
    char workdir [4096];        //  from started: where outputs are collected
    char engine_job_id [QN_BACKEND_JOB_ID_MAX + 1];
    char cursor [QN_BACKEND_CURSOR_MAX + 1];
} s_attempt_t;

//  One backend the agent offers: its ops and its state
typedef struct {
    const qn_backend_ops_t *ops;
    void *state;
} s_backend_t;

typedef struct {
    s_attempt_t *attempt;
    uint64_t seq;
    bool reserve;               //  may use the spool's reserve (Finished)
    bool finished;
    bool written;               //  put in the open transaction
    size_t size;
    uint8_t data [];            //  encoded Event
} s_pending_t;

struct _qn_agent_t {
    qn_s3_store_url_t artifact_store;   //  --artifact-store; bucket NULL = none
    uint64_t cache_max;                 //  blob cache bound; 0 = none
    int64_t cache_keep_recent_s;        //  blobs used this recently stay
    size_t keep_workdirs;               //  finished attempts' directories kept
    zlistx_t *kept_dirs;                //  those, oldest first (owned strings)
    qn_sweeper_t *sweeper;              //  removes the older ones off the loop
    char *endpoint;
    char *name;
    char *data_dir;
    char **label_keys;
    char **label_values;
    size_t label_count;
    uint32_t slots;
    size_t outbox_limit;        //  0 = none beyond the spool's own bound
    char host [256];
    uint32_t ask_heartbeat_ms;
    uint32_t ask_suspect_ms;
    uint32_t ask_lost_ms;
    uint32_t max_backoff_ms;
    uint32_t stop_after_s;
    uint32_t drain_timeout_s;

    zsock_t *sock;
    zloop_t *loop;
    unsigned beats;             //  heartbeats sent, for the transfer tick
    qn_blobstore_t *cache;      //  blobs fetched for inputs, manifests of outputs
    qn_transfer_t *transfer;    //  blob transfers on our socket
    qn_stager_t *stager;        //  inputs in, outputs out
    s_backend_t backends [QN_AGENT_MAX_BACKENDS];
    size_t backend_count;       //  the first is the default for tasks that name none
    qn_backend_events_t events;
    qn_spool_t *spool;

    zhashx_t *attempts;         //  "run/task/attempt" -> s_attempt_t
    zlistx_t *pending;          //  s_pending_t, in the order produced
    uint64_t pending_bytes;     //  as they will count in the spool
    bool commit_armed;
    bool commit_retry_armed;
    bool commit_failing;
    bool paused;                //  back-pressure applied
    bool full;                  //  the spool is full: no new work
    uint32_t owed_credit;       //  slots to announce once we may

    bool registered;
    uint32_t heartbeat_ms;
    uint32_t suspect_after_ms;  //  from the Welcome, 0 = unknown
    int heartbeat_timer;
    int register_timer;
    uint32_t backoff_step;
    unsigned int seed;
    int64_t last_rx_ms;
    int64_t last_register_ms;
    bool cut_off_stopped;       //  stop_after_disconnect fired
    bool retry_armed;
    bool fatal;
    uint64_t malformed;
    bool denied;                //  the coordinator refuses our key

    zcert_t *cert;              //  our key pair, NULL = plaintext
    char *server_key;
    zsock_t *monitor;           //  handshake events of sock (CURVE only)
    char *monitor_endpoint;

    int signal_fd;
    sigset_t saved_mask;
    bool mask_saved;
    int signals;                //  SIGTERM/SIGINT received
    bool draining;
    bool drained;               //  the drain completed
    bool exit_now;              //  handlers return -1 to end the loop
};


//  ---------------------------------------------------------------------
//  Logging

static bool s_verbose = false;

void
qn_agent_log_set_verbose (bool verbose)
{
    s_verbose = verbose;
}

void
qn_agent_log (qn_log_level_t level, const char *format, ...)
{
    if (level == QN_LOG_DEBUG && !s_verbose)
        return;
    static const char *names [] = { "debug", "info", "warning", "error" };
    struct timeval tv;
    gettimeofday (&tv, NULL);
    struct tm tm;
    gmtime_r (&tv.tv_sec, &tm);
    char stamp [32];
    strftime (stamp, sizeof (stamp), "%Y-%m-%dT%H:%M:%S", &tm);

    char text [2048];
    va_list args;
    va_start (args, format);
    vsnprintf (text, sizeof (text), format, args);
    va_end (args);
    fprintf (stderr, "%s.%03dZ %s: %s\n", stamp, (int) (tv.tv_usec / 1000),
             names [level], text);
    fflush (stderr);
}


//  ---------------------------------------------------------------------
//  Attempts

static void
s_key_string (const qn_attempt_key_t *key, char *buffer, size_t size)
{
    snprintf (buffer, size, "%" PRIu64 "/%u/%u", key->run_id, key->task_index, key->attempt);
}

//  ---------------------------------------------------------------------
//  Redaction
//
//  Every secret value an Assign names in redact is replaced by "***" in
//  what the attempt reports, before it reaches the spool.  Values of any
//  length are hidden, even of one byte (which may hide innocent text
//  too: the operator chose that secret).  A value that spans lines (a
//  PEM key, a value with a trailing newline) cannot appear whole in one
//  log line, so each of its lines is hidden as well.
//
//  Long lines reach us in 8 KiB pieces (qn_linebuf).  A secret cut by
//  such a split is still found: at the end of a partial piece, the tail
//  that could be the start of a secret is held back (in the attempt's
//  carry for that stream, at most the longest value less one byte) and
//  put in front of the next piece of the same line.  Pieces may thus be
//  a little shorter or longer than 8 KiB.

static void
s_wipe_free (void *data, size_t size)
{
    if (data) {
        explicit_bzero (data, size);
        free (data);
    }
}

static void
s_redactor_destroy (s_redactor_t **self_p)
{
    s_redactor_t *self = *self_p;
    if (!self)
        return;
    for (size_t i = 0; i < self->count; i++)
        s_wipe_free (self->values [i], self->sizes [i]);
    free (self->values);
    free (self->sizes);
    free (self);
    *self_p = NULL;
}

static int
s_redactor_add (s_redactor_t *self, const char *value, size_t size, size_t room)
{
    if (size == 0 || self->count == room)
        return 0;
    for (size_t i = 0; i < self->count; i++)
        if (self->sizes [i] == size && memcmp (self->values [i], value, size) == 0)
            return 0;
    char *copy = (char *) malloc (size);
    if (!copy)
        return -1;
    memcpy (copy, value, size);
    //  Insert keeping the longest first
    size_t at = self->count;
    while (at > 0 && self->sizes [at - 1] < size) {
        self->values [at] = self->values [at - 1];
        self->sizes [at] = self->sizes [at - 1];
        at--;
    }
    self->values [at] = copy;
    self->sizes [at] = size;
    self->count++;
    self->first [(uint8_t) value [0]] = true;
    if (size > self->longest)
        self->longest = size;
    return 0;
}

//  A redactor for the values, or NULL when there are none (or no memory:
//  then *failed_p is set, and the caller must not run the attempt).
static s_redactor_t *
s_redactor_new (char **values, size_t count, bool *failed_p)
{
    *failed_p = false;
    size_t room = 0;
    for (size_t i = 0; i < count; i++) {
        if (!values [i])
            continue;
        room++;
        //  Its lines: one more than its newlines, when it has any
        bool lines = false;
        for (const char *cur = values [i]; *cur; cur++)
            if (*cur == '\n') {
                room++;
                lines = true;
            }
        if (lines)
            room++;
    }
    if (room == 0)
        return NULL;
    s_redactor_t *self = (s_redactor_t *) calloc (1, sizeof (s_redactor_t));
    if (self) {
        self->values = (char **) calloc (room, sizeof (char *));
        self->sizes = (size_t *) calloc (room, sizeof (size_t));
    }
    if (!self || !self->values || !self->sizes) {
        s_redactor_destroy (&self);
        *failed_p = true;
        return NULL;
    }
    for (size_t i = 0; i < count; i++) {
        const char *value = values [i];
        if (!value)
            continue;
        if (s_redactor_add (self, value, strlen (value), room) == -1)
            *failed_p = true;
        if (!strchr (value, '\n'))
            continue;
        //  Each line of a multi-line value, without its '\r'
        const char *line = value;
        while (*line) {
            const char *end = strchr (line, '\n');
            size_t size = end? (size_t) (end - line): strlen (line);
            size_t kept = size;
            if (kept && line [kept - 1] == '\r')
                kept--;
            if (s_redactor_add (self, line, kept, room) == -1)
                *failed_p = true;
            line += size + (end? 1: 0);
        }
    }
    if (*failed_p || self->count == 0)
        s_redactor_destroy (&self);
    return self;
}

//  Length of the longest value that matches in full at text, or 0.
static size_t
s_redactor_match (const s_redactor_t *self, const uint8_t *text, size_t left)
{
    for (size_t i = 0; i < self->count; i++)
        if (self->sizes [i] <= left && memcmp (self->values [i], text, self->sizes [i]) == 0)
            return self->sizes [i];
    return 0;
}

//  True when the left bytes at text are the start of a longer value.
static bool
s_redactor_prefix (const s_redactor_t *self, const uint8_t *text, size_t left)
{
    for (size_t i = 0; i < self->count; i++)
        if (self->sizes [i] > left && memcmp (self->values [i], text, left) == 0)
            return true;
    return false;
}

//  Redacts carry + data into a fresh buffer (caller frees; *out_size its
//  size).  When partial, a tail that could start a secret goes back into
//  carry instead of the output.  NULL when out of memory (then nothing
//  may be reported: the piece is lost rather than shown).
static uint8_t *
s_redact (const s_redactor_t *self, s_carry_t *carry, const void *data, size_t size,
          bool partial, size_t *out_size)
{
    size_t total = carry->size + size;
    uint8_t *text = (uint8_t *) malloc (total + 1);
    //  Each byte becomes at most "***"
    uint8_t *out = (uint8_t *) malloc (total * 3 + 1);
    if (!text || !out) {
        free (text);
        free (out);
        return NULL;
    }
    if (carry->size)
        memcpy (text, carry->data, carry->size);
    if (size)
        memcpy (text + carry->size, data, size);
    s_wipe_free (carry->data, carry->size);
    carry->data = NULL;
    carry->size = 0;
    size_t at = 0;
    size_t i = 0;
    while (i < total) {
        size_t left = total - i;
        if (self->first [text [i]]) {
            //  A value the next piece may complete wins over a shorter
            //  one that matches now: if it does not complete, the
            //  shorter one still matches then.
            if (partial && left < self->longest && s_redactor_prefix (self, text + i, left)) {
                carry->data = (uint8_t *) malloc (left);
                if (carry->data) {
                    memcpy (carry->data, text + i, left);
                    carry->size = left;
                }
                else {
                    memcpy (out + at, "***", 3);
                    at += 3;
                }
                break;
            }
            size_t match = s_redactor_match (self, text + i, left);
            if (match) {
                memcpy (out + at, "***", 3);
                at += 3;
                i += match;
                continue;
            }
        }
        out [at++] = text [i++];
    }
    s_wipe_free (text, total + 1);
    *out_size = at;
    return out;
}

//  A redacted copy of a C string (caller frees), NULL when out of memory.
static char *
s_redact_string (const s_redactor_t *self, const char *text)
{
    s_carry_t carry = { NULL, 0 };
    size_t size = 0;
    uint8_t *out = s_redact (self, &carry, text, strlen (text), false, &size);
    if (!out)
        return NULL;
    out [size] = '\0';
    return (char *) out;
}

//  A stack trace: redacted line by line.  A line that qn_stacktrace cut
//  at its length cap (it then ends in "...") may end in the first bytes
//  of a secret: those become "***" too.
static char *
s_redact_trace (const s_redactor_t *self, const char *trace)
{
    size_t size = strlen (trace);
    //  Each byte becomes at most "***", and each line gains at most "***"
    char *out = (char *) malloc (size * 3 + 4 * (size / QN_STACKTRACE_LINE_MAX + 2) + 1);
    if (!out)
        return NULL;
    size_t at = 0;
    const char *line = trace;
    while (true) {
        const char *end = strchr (line, '\n');
        size_t length = end? (size_t) (end - line): strlen (line);
        bool cut = length >= QN_STACKTRACE_LINE_MAX - 4 && length >= 3
                && memcmp (line + length - 3, "...", 3) == 0;
        s_carry_t carry = { NULL, 0 };
        size_t got = 0;
        uint8_t *piece = s_redact (self, &carry, line, cut? length - 3: length, cut, &got);
        if (!piece) {
            free (out);
            return NULL;
        }
        memcpy (out + at, piece, got);
        at += got;
        s_wipe_free (piece, got);
        if (carry.size) {
            s_wipe_free (carry.data, carry.size);
            memcpy (out + at, "***", 3);
            at += 3;
        }
        if (cut) {
            memcpy (out + at, "...", 3);
            at += 3;
        }
        if (!end)
            break;
        out [at++] = '\n';
        line = end + 1;
    }
    out [at] = '\0';
    return out;
}

static void
s_attempt_destructor (void **item)
{
    s_attempt_t *attempt = (s_attempt_t *) *item;
    if (attempt) {
        s_redactor_destroy (&attempt->redactor);
        if (attempt->assign)
            qanat__assign__free_unpacked (attempt->assign, NULL);
        for (int i = 0; i < S_STREAMS; i++)
            s_wipe_free (attempt->carry [i].data, attempt->carry [i].size);
        free (attempt);
    }
    *item = NULL;
}

static s_attempt_t *
s_attempt_lookup (qn_agent_t *self, const qn_attempt_key_t *key)
{
    char name [64];
    s_key_string (key, name, sizeof (name));
    return (s_attempt_t *) zhashx_lookup (self->attempts, name);
}

static s_attempt_t *
s_attempt_create (qn_agent_t *self, const qn_attempt_key_t *key)
{
    s_attempt_t *attempt = (s_attempt_t *) calloc (1, sizeof (s_attempt_t));
    if (!attempt)
        return NULL;
    attempt->key = *key;
    attempt->next_seq = 1;
    attempt->meta_dirty = true;
    char name [64];
    s_key_string (key, name, sizeof (name));
    if (zhashx_insert (self->attempts, name, attempt) == -1) {
        free (attempt);
        return NULL;
    }
    return attempt;
}

static void
s_attempt_ref (const qn_attempt_key_t *key, Qanat__AttemptRef *ref)
{
    qanat__attempt_ref__init (ref);
    ref->run_id = key->run_id;
    ref->task_index = key->task_index;
    ref->attempt = key->attempt;
}

static size_t
s_running (qn_agent_t *self)
{
    size_t running = 0;
    s_attempt_t *attempt = (s_attempt_t *) zhashx_first (self->attempts);
    while (attempt) {
        if (attempt->running)
            running++;
        attempt = (s_attempt_t *) zhashx_next (self->attempts);
    }
    return running;
}

//  An attempt that ended and whose events are all acknowledged leaves the
//  spool at the next commit.
static void
s_attempt_check_done (s_attempt_t *attempt)
{
    if (!attempt->running && attempt->finished_spooled && attempt->pending == 0
    &&  attempt->acked >= attempt->committed)
        attempt->forget = true;
}

//  The process's start time in clock ticks since boot, field 22 of
//  /proc/PID/stat; 0 when it cannot be read.  With the pid it names one
//  process for good, however pids are reused.
static uint64_t
s_process_start_time (int64_t pid)
{
    char path [64];
    snprintf (path, sizeof (path), "/proc/%" PRId64 "/stat", pid);
    FILE *file = fopen (path, "re");
    if (!file)
        return 0;
    char buffer [1024];
    size_t got = fread (buffer, 1, sizeof (buffer) - 1, file);
    fclose (file);
    buffer [got] = '\0';
    //  The command name may hold spaces and parentheses: fields count
    //  from the last ')'; after it comes field 3
    char *cur = strrchr (buffer, ')');
    if (!cur)
        return 0;
    cur++;
    for (int field = 3; field < 22 && cur; field++) {
        cur = strchr (cur + 1, ' ');
    }
    if (!cur)
        return 0;
    return strtoull (cur + 1, NULL, 10);
}


//  ---------------------------------------------------------------------
//  Sending

static int s_retry (zloop_t *loop, int timer_id, void *arg);

static int
s_send (qn_agent_t *self, Qanat__Envelope *env)
{
    zframe_t *frame = qn_msg_encode (env);
    if (!frame)
        return -1;
    int rc = zframe_send (&frame, self->sock, ZFRAME_DONTWAIT);
    if (rc == -1) {
        zframe_destroy (&frame);
        qn_agent_log (QN_LOG_DEBUG, "could not send a message: %s", zmq_strerror (zmq_errno ()));
    }
    return rc;
}

//  qn_transfer's way out: blob messages go straight to the socket
static int
s_transfer_send (void *arg, Qanat__Envelope *envelope)
{
    qn_agent_t *self = (qn_agent_t *) arg;
    if (!self->registered)
        return -1;
    return s_send (self, envelope);
}

static void
s_arm_retry (qn_agent_t *self)
{
    if (self->retry_armed)
        return;
    if (zloop_timer (self->loop, S_RETRY_MS, 1, s_retry, self) != -1)
        self->retry_armed = true;
}

//  Envelope{version, event} around an encoded Event, built by hand from
//  the spooled bytes: field 1 (varint) and field 13 (length-delimited).
static zframe_t *
s_event_frame (const void *data, size_t size)
{
    uint8_t head [16];
    size_t at = 0;
    head [at++] = (1 << 3) | 0;
    head [at++] = QN_PROTOCOL_VERSION;
    head [at++] = (13 << 3) | 2;
    uint64_t length = size;
    do {
        uint8_t byte = length & 0x7f;
        length >>= 7;
        head [at++] = byte | (length? 0x80: 0);
    } while (length);
    zframe_t *frame = zframe_new (NULL, at + size);
    if (!frame)
        return NULL;
    memcpy (zframe_data (frame), head, at);
    memcpy (zframe_data (frame) + at, data, size);
    return frame;
}

typedef struct {
    qn_agent_t *agent;
    s_attempt_t *attempt;
    bool blocked;
} s_flush_ctx_t;

static int
s_send_spooled (const qn_attempt_key_t *key, uint64_t seq, const void *data, size_t size,
                void *arg)
{
    (void) key;
    s_flush_ctx_t *ctx = (s_flush_ctx_t *) arg;
    if (seq > ctx->attempt->committed)
        return 1;
    zframe_t *frame = s_event_frame (data, size);
    if (!frame || zframe_send (&frame, ctx->agent->sock, ZFRAME_DONTWAIT) == -1) {
        zframe_destroy (&frame);
        ctx->blocked = true;
        return 1;
    }
    ctx->attempt->sent = seq;
    return 0;
}

//  Sends the attempt's committed events after "sent", in seq order, read
//  back from the spool.  Returns -1 when the socket is full.
static int
s_flush_attempt (qn_agent_t *self, s_attempt_t *attempt)
{
    if (!self->registered || attempt->sent >= attempt->committed)
        return 0;
    s_flush_ctx_t ctx = { self, attempt, false };
    if (qn_spool_events (self->spool, &attempt->key, attempt->sent + 1,
                         s_send_spooled, &ctx) == -1)
        qn_agent_log (QN_LOG_ERROR, "cannot read the spool");
    if (ctx.blocked) {
        s_arm_retry (self);
        return -1;
    }
    return 0;
}

static void
s_flush_all (qn_agent_t *self)
{
    s_attempt_t *attempt = (s_attempt_t *) zhashx_first (self->attempts);
    while (attempt) {
        if (s_flush_attempt (self, attempt) == -1)
            break;
        attempt = (s_attempt_t *) zhashx_next (self->attempts);
    }
}

static int
s_retry (zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    (void) timer_id;
    qn_agent_t *self = (qn_agent_t *) arg;
    self->retry_armed = false;
    s_flush_all (self);
    return self->exit_now? -1: 0;
}

static void
s_send_credit (qn_agent_t *self, uint32_t slots)
{
    Qanat__Credit credit = QANAT__CREDIT__INIT;
    credit.slots = slots;
    Qanat__Envelope env = QANAT__ENVELOPE__INIT;
    env.body_case = QANAT__ENVELOPE__BODY_CREDIT;
    env.credit = &credit;
    s_send (self, &env);
}

//  Credit goes out only while we may take work: registered, spool not
//  full, not draining.  What we could not announce waits here.
static void
s_pay_credit (qn_agent_t *self)
{
    if (!self->registered || self->full || self->draining || self->owed_credit == 0)
        return;
    s_send_credit (self, self->owed_credit);
    self->owed_credit = 0;
}

static void
s_send_drain (qn_agent_t *self)
{
    Qanat__Drain drain = QANAT__DRAIN__INIT;
    drain.draining = true;
    drain.reason = "agent shutting down";
    Qanat__Envelope env = QANAT__ENVELOPE__INIT;
    env.body_case = QANAT__ENVELOPE__BODY_DRAIN;
    env.drain = &drain;
    if (s_send (self, &env) == 0)
        qn_agent_log (QN_LOG_INFO, "draining: told the coordinator to send no new work");
}

static void
s_send_register (qn_agent_t *self)
{
    //  Every attempt we still hold: running, or finished with events the
    //  coordinator has not acknowledged (its Finished comes in the replay).
    //  Either way the coordinator must not declare it lost.
    size_t held = zhashx_size (self->attempts);
    Qanat__Label *labels = (Qanat__Label *) calloc (self->label_count + 1, sizeof (Qanat__Label));
    Qanat__Label **label_ptrs = (Qanat__Label **) calloc (self->label_count + 1, sizeof (void *));
    Qanat__AttemptRef *refs = (Qanat__AttemptRef *) calloc (held + 1, sizeof (Qanat__AttemptRef));
    Qanat__AttemptRef **ref_ptrs = (Qanat__AttemptRef **) calloc (held + 1, sizeof (void *));
    if (labels && label_ptrs && refs && ref_ptrs) {
        Qanat__Register reg = QANAT__REGISTER__INIT;
        reg.name = self->name;
        for (size_t i = 0; i < self->label_count; i++) {
            qanat__label__init (&labels [i]);
            labels [i].key = self->label_keys [i];
            labels [i].value = self->label_values [i];
            label_ptrs [i] = &labels [i];
        }
        reg.n_labels = self->label_count;
        reg.labels = label_ptrs;
        char *backends [QN_AGENT_MAX_BACKENDS];
        for (size_t b = 0; b < self->backend_count; b++)
            backends [b] = (char *) self->backends [b].ops->name;
        reg.n_backends = self->backend_count;
        reg.backends = backends;
        reg.capacity = self->slots;
        size_t count = 0;
        s_attempt_t *attempt = (s_attempt_t *) zhashx_first (self->attempts);
        while (attempt && count < held) {
            s_attempt_ref (&attempt->key, &refs [count]);
            ref_ptrs [count] = &refs [count];
            count++;
            attempt = (s_attempt_t *) zhashx_next (self->attempts);
        }
        reg.n_running = count;
        reg.running = ref_ptrs;
        reg.version = (char *) PACKAGE_VERSION;
        reg.heartbeat_ms = self->ask_heartbeat_ms;
        reg.suspect_after_ms = self->ask_suspect_ms;
        reg.lost_after_ms = self->ask_lost_ms;
        reg.draining = self->draining;
        Qanat__Envelope env = QANAT__ENVELOPE__INIT;
        env.body_case = QANAT__ENVELOPE__BODY_REGISTER;
        env.register_ = &reg;
        if (s_send (self, &env) == 0)
            qn_agent_log (QN_LOG_DEBUG, "sent Register (%zu held%s)", count,
                          self->draining? ", draining": "");
    }
    free (labels);
    free (label_ptrs);
    free (refs);
    free (ref_ptrs);
    self->last_register_ms = zclock_mono ();
}

static int s_register_timer (zloop_t *loop, int timer_id, void *arg);

//  Next Register in 250 ms x 2^n, capped, +-20% so that a fleet of agents
//  cut off together does not come back in step.
static void
s_schedule_register (qn_agent_t *self)
{
    if (self->register_timer != -1)
        zloop_timer_end (self->loop, self->register_timer);
    uint64_t delay = S_BACKOFF_BASE_MS;
    for (uint32_t i = 0; i < self->backoff_step && delay < self->max_backoff_ms; i++)
        delay *= 2;
    if (delay > self->max_backoff_ms)
        delay = self->max_backoff_ms;
    double jitter = 0.8 + 0.4 * ((double) rand_r (&self->seed) / RAND_MAX);
    size_t wait = (size_t) ((double) delay * jitter);
    if (wait < 1)
        wait = 1;
    if (self->backoff_step < 32)
        self->backoff_step++;
    self->register_timer = zloop_timer (self->loop, wait, 1, s_register_timer, self);
}

static int
s_register_timer (zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    (void) timer_id;
    qn_agent_t *self = (qn_agent_t *) arg;
    self->register_timer = -1;
    if (!self->registered) {
        s_send_register (self);
        s_schedule_register (self);
    }
    return self->exit_now? -1: 0;
}

//  We are not registered (any more): Register now, then with backoff.
static void
s_start_registering (qn_agent_t *self)
{
    self->registered = false;
    if (self->transfer)
        qn_transfer_disconnected (self->transfer);
    s_send_register (self);
    s_schedule_register (self);
}

static void
s_send_heartbeat (qn_agent_t *self)
{
    Qanat__Heartbeat beat = QANAT__HEARTBEAT__INIT;
    beat.running = (uint32_t) s_running (self);
    beat.spool_bytes = qn_spool_committed_bytes (self->spool) + self->pending_bytes;
    beat.spool_full = self->full;
    beat.cache_damaged = self->stager? qn_stager_damaged (self->stager): 0;
    Qanat__Envelope env = QANAT__ENVELOPE__INIT;
    env.body_case = QANAT__ENVELOPE__BODY_HEARTBEAT;
    env.heartbeat = &beat;
    s_send (self, &env);
}


//  ---------------------------------------------------------------------
//  The spool: one commit per loop turn

static int s_commit_timer (zloop_t *loop, int timer_id, void *arg);

static void
s_pending_destructor (void **item)
{
    free (*item);
    *item = NULL;
}

static void
s_arm_commit (qn_agent_t *self)
{
    if (self->commit_armed || self->commit_retry_armed)
        return;
    if (zloop_timer (self->loop, 0, 1, s_commit_timer, self) != -1)
        self->commit_armed = true;
}

static uint64_t
s_normal_room (qn_agent_t *self)
{
    return qn_spool_max (self->spool) - qn_spool_reserve (self->spool);
}

//  Pauses task output above the unacknowledged-bytes limit, and declares
//  the spool full (no credit, no new work) when what it holds, with
//  what waits to enter it, comes within a margin of its normal room.
//  Both lift again at three quarters.
static void
s_update_pressure (qn_agent_t *self, bool refused)
{
    uint64_t bytes = qn_spool_committed_bytes (self->spool) + self->pending_bytes;
    uint64_t room = s_normal_room (self);
    uint64_t margin = room / 8 < S_FULL_MARGIN? room / 8: S_FULL_MARGIN;
    if (!self->full && (refused || bytes + margin > room)) {
        self->full = true;
        qn_agent_log (QN_LOG_WARNING, "agent spool full: %" PRIu64 " of %" PRIu64 " bytes "
                      "wait for acknowledgement; pausing task output, taking no new work",
                      bytes, qn_spool_max (self->spool));
    }
    else
    if (self->full && !refused && bytes <= room / 4 * 3) {
        self->full = false;
        qn_agent_log (QN_LOG_INFO, "agent spool has room again (%" PRIu64 " bytes); "
                      "taking work", bytes);
        s_pay_credit (self);
    }
    bool over = self->outbox_limit && bytes > self->outbox_limit;
    bool under = !self->outbox_limit || bytes <= self->outbox_limit / 4 * 3;
    if (!self->paused && (self->full || over)) {
        self->paused = true;
        if (!self->full)
            qn_agent_log (QN_LOG_WARNING, "%" PRIu64 " bytes of events wait for "
                          "acknowledgement; pausing task output", bytes);
        for (size_t b = 0; b < self->backend_count; b++)
            self->backends [b].ops->set_paused (self->backends [b].state, true);
    }
    else
    if (self->paused && !self->full && under) {
        self->paused = false;
        qn_agent_log (QN_LOG_INFO, "events acknowledged; resuming task output");
        for (size_t b = 0; b < self->backend_count; b++)
            self->backends [b].ops->set_paused (self->backends [b].state, false);
    }
}

static void
s_meta_of (s_attempt_t *attempt, uint64_t next_seq, bool finished, qn_spool_meta_t *meta)
{
    memset (meta, 0, sizeof (*meta));
    meta->key = attempt->key;
    meta->pid = attempt->pid;
    meta->start_time = attempt->start_time;
    meta->next_seq = next_seq;
    meta->finished = finished;
    snprintf (meta->task_name, sizeof (meta->task_name), "%s", attempt->task_name);
    if (attempt->engine_job_id [0]) {
        snprintf (meta->backend, sizeof (meta->backend), "%s",
                  attempt->backend_name);
        memcpy (meta->engine_job_id, attempt->engine_job_id, sizeof (meta->engine_job_id));
        memcpy (meta->cursor, attempt->cursor, sizeof (meta->cursor));
        if (attempt->assign && attempt->assign->n_outputs)
            snprintf (meta->workdir, sizeof (meta->workdir), "%s", attempt->workdir);
    }
}

static void s_check_drained (qn_agent_t *self);

//  Writes what the turn produced in one transaction.  Returns 0, or -1
//  when the spool failed (everything stays staged; we retry later).
static int
s_commit (qn_agent_t *self)
{
    bool refused = false;
    bool failed = false;
    s_attempt_t *attempt = (s_attempt_t *) zhashx_first (self->attempts);
    while (attempt) {
        attempt->blocked = false;
        attempt->batch_seq = attempt->committed;
        attempt = (s_attempt_t *) zhashx_next (self->attempts);
    }
    //  Acknowledgements first: the room they free is for this very batch
    attempt = (s_attempt_t *) zhashx_first (self->attempts);
    while (attempt && !failed) {
        if (attempt->forget) {
            if (qn_spool_meta_delete (self->spool, &attempt->key) == -1)
                failed = true;
        }
        else
        if (attempt->acked > attempt->spool_acked
        &&  qn_spool_ack (self->spool, &attempt->key, attempt->acked) == -1)
            failed = true;
        attempt = (s_attempt_t *) zhashx_next (self->attempts);
    }
    //  Events in the order produced; one that does not fit holds back the
    //  rest of its attempt, so that each attempt's spool has no gap
    s_pending_t *pending = (s_pending_t *) zlistx_first (self->pending);
    while (pending && !failed) {
        s_attempt_t *owner = pending->attempt;
        if (!owner->blocked) {
            if (qn_spool_put (self->spool, &owner->key, pending->seq, pending->data,
                              pending->size, pending->reserve) == 0
            ||  errno == EEXIST) {
                pending->written = true;
                owner->batch_seq = pending->seq;
            }
            else
            if (errno == ENOSPC && !pending->reserve) {
                owner->blocked = true;
                refused = true;
            }
            else
            if (errno == ENOSPC)
                owner->blocked = true;      //  even the reserve is spent
            else
                failed = true;
        }
        pending = (s_pending_t *) zlistx_next (self->pending);
    }
    //  Metadata of the attempts that changed
    attempt = (s_attempt_t *) zhashx_first (self->attempts);
    while (attempt && !failed) {
        if (!attempt->forget
        &&  (attempt->meta_dirty || attempt->batch_seq > attempt->committed)) {
            bool finished = attempt->finished_spooled;
            pending = (s_pending_t *) zlistx_first (self->pending);
            while (pending && !finished) {
                if (pending->attempt == attempt && pending->written && pending->finished)
                    finished = true;
                pending = (s_pending_t *) zlistx_next (self->pending);
            }
            qn_spool_meta_t meta;
            s_meta_of (attempt, attempt->batch_seq + 1, finished, &meta);
            if (qn_spool_meta_put (self->spool, &meta) == -1)
                failed = true;
        }
        attempt = (s_attempt_t *) zhashx_next (self->attempts);
    }
    if (failed || qn_spool_commit (self->spool) == -1) {
        qn_spool_abort (self->spool);
        pending = (s_pending_t *) zlistx_first (self->pending);
        while (pending) {
            pending->written = false;
            pending = (s_pending_t *) zlistx_next (self->pending);
        }
        if (!self->commit_failing)
            qn_agent_log (QN_LOG_ERROR, "cannot write the spool; keeping %zu event(s) in "
                          "memory and trying again", zlistx_size (self->pending));
        self->commit_failing = true;
        return -1;
    }
    if (self->commit_failing)
        qn_agent_log (QN_LOG_INFO, "the spool takes writes again");
    self->commit_failing = false;

    //  Committed: the written events leave memory, the rest keep their order
    zlistx_t *remaining = zlistx_new ();
    if (remaining) {
        zlistx_set_destructor (remaining, s_pending_destructor);
        while ((pending = (s_pending_t *) zlistx_detach (self->pending, NULL))) {
            if (!pending->written) {
                if (zlistx_add_end (remaining, pending))
                    continue;
                //  No memory even for a list node: the event is in the
                //  spool's care no more; say so rather than lose it quietly
                qn_agent_log (QN_LOG_ERROR, "out of memory: event %" PRIu64 " dropped",
                              pending->seq);
                free (pending);
                continue;
            }
            s_attempt_t *owner = pending->attempt;
            owner->committed = pending->seq;
            owner->pending--;
            if (pending->finished)
                owner->finished_spooled = true;
            self->pending_bytes -= QN_SPOOL_KEY_SIZE + pending->size;
            free (pending);
        }
        zlistx_destroy (&self->pending);
        self->pending = remaining;
    }
    zlist_t *gone = zlist_new ();
    attempt = (s_attempt_t *) zhashx_first (self->attempts);
    while (attempt) {
        if (attempt->forget) {
            if (gone)
                zlist_append (gone, (void *) zhashx_cursor (self->attempts));
        }
        else {
            attempt->spool_acked = attempt->acked;
            attempt->meta_dirty = false;
        }
        attempt = (s_attempt_t *) zhashx_next (self->attempts);
    }
    if (gone) {
        const char *key;
        while ((key = (const char *) zlist_pop (gone))) {
            char name [64];
            snprintf (name, sizeof (name), "%s", key);
            qn_agent_log (QN_LOG_DEBUG, "attempt %s acknowledged in full; forgotten", name);
            zhashx_delete (self->attempts, name);
        }
        zlist_destroy (&gone);
    }
    s_update_pressure (self, refused);
    return 0;
}

static int s_commit_retry (zloop_t *loop, int timer_id, void *arg);

//  Commits, then sends what was committed, announces credit and checks
//  whether a drain is complete.
static void
s_commit_and_send (qn_agent_t *self)
{
    if (s_commit (self) == -1) {
        if (!self->commit_retry_armed
        &&  zloop_timer (self->loop, S_COMMIT_RETRY_MS, 1, s_commit_retry, self) != -1)
            self->commit_retry_armed = true;
        return;
    }
    s_flush_all (self);
    s_pay_credit (self);
    s_check_drained (self);
}

static int
s_commit_timer (zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    (void) timer_id;
    qn_agent_t *self = (qn_agent_t *) arg;
    self->commit_armed = false;
    s_commit_and_send (self);
    return self->exit_now? -1: 0;
}

static int
s_commit_retry (zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    (void) timer_id;
    qn_agent_t *self = (qn_agent_t *) arg;
    self->commit_retry_armed = false;
    s_commit_and_send (self);
    return self->exit_now? -1: 0;
}

//  Stamps the event with the attempt's next seq and stages it for the
//  spool; it goes out after the commit at the end of this turn.
static void
s_post_event (qn_agent_t *self, s_attempt_t *attempt, Qanat__Event *event)
{
    Qanat__AttemptRef ref;
    s_attempt_ref (&attempt->key, &ref);
    event->attempt = &ref;
    event->seq = attempt->next_seq;
    size_t size = qanat__event__get_packed_size (event);
    s_pending_t *pending = NULL;
    if (size <= QN_MAX_MESSAGE_SIZE - 64)
        pending = (s_pending_t *) malloc (sizeof (s_pending_t) + size);
    if (!pending || !zlistx_add_end (self->pending, pending)) {
        //  Only an oversized event (impossible: we cut lines at 8 KiB, and
        //  stack traces are bounded) or no memory gets here
        qn_agent_log (QN_LOG_ERROR, "cannot store event %" PRIu64 " of attempt %" PRIu64
                      "/%u/%u (%zu bytes); dropping it", event->seq, attempt->key.run_id,
                      attempt->key.task_index, attempt->key.attempt, size);
        free (pending);
        return;
    }
    pending->attempt = attempt;
    pending->seq = attempt->next_seq++;
    pending->finished = event->body_case == QANAT__EVENT__BODY_FINISHED;
    pending->reserve = pending->finished;
    pending->written = false;
    pending->size = size;
    qanat__event__pack (event, pending->data);
    attempt->pending++;
    self->pending_bytes += QN_SPOOL_KEY_SIZE + size;
    s_arm_commit (self);
}


//  ---------------------------------------------------------------------
//  Backend callbacks

static s_attempt_t *
s_callback_attempt (qn_agent_t *self, const qn_attempt_key_t *key)
{
    s_attempt_t *attempt = s_attempt_lookup (self, key);
    if (!attempt)
        qn_agent_log (QN_LOG_ERROR, "backend reported an unknown attempt %" PRIu64 "/%u/%u",
                      key->run_id, key->task_index, key->attempt);
    return attempt;
}

static void
s_on_started (void *arg, const qn_attempt_key_t *key, int64_t pid,
              const char *host, const char *workdir, const char *engine_job_id)
{
    qn_agent_t *self = (qn_agent_t *) arg;
    s_attempt_t *attempt = s_callback_attempt (self, key);
    if (!attempt)
        return;
    if (pid > 0) {
        attempt->pid = pid;
        attempt->start_time = s_process_start_time (pid);
        attempt->meta_dirty = true;
    }
    snprintf (attempt->workdir, sizeof attempt->workdir, "%s", workdir? workdir: "");
    if (engine_job_id && *engine_job_id) {
        //  Kept in the spool with the events, for a re-attach after a crash
        snprintf (attempt->engine_job_id, sizeof (attempt->engine_job_id), "%s", engine_job_id);
        attempt->meta_dirty = true;
    }
    Qanat__Started started = QANAT__STARTED__INIT;
    started.pid = pid;
    started.host = (char *) (host? host: "");
    started.workdir = (char *) (workdir? workdir: "");
    started.engine_job_id = (char *) (engine_job_id? engine_job_id: "");
    started.backend = (char *) (attempt->backend_name? attempt->backend_name: "");
    Qanat__Event event = QANAT__EVENT__INIT;
    event.body_case = QANAT__EVENT__BODY_STARTED;
    event.started = &started;
    s_post_event (self, attempt, &event);
}

static void
s_on_cursor (void *arg, const qn_attempt_key_t *key, const char *cursor)
{
    qn_agent_t *self = (qn_agent_t *) arg;
    s_attempt_t *attempt = s_callback_attempt (self, key);
    if (!attempt || !cursor)
        return;
    //  The metadata is written in the same commit as the events before it
    snprintf (attempt->cursor, sizeof (attempt->cursor), "%s", cursor);
    attempt->meta_dirty = true;
}

static void
s_on_log (void *arg, const qn_attempt_key_t *key, Qanat__Stream stream,
          const void *data, size_t size, bool partial, int64_t time_us)
{
    qn_agent_t *self = (qn_agent_t *) arg;
    s_attempt_t *attempt = s_callback_attempt (self, key);
    if (!attempt)
        return;
    uint8_t *redacted = NULL;
    if (attempt->redactor) {
        s_carry_t none = { NULL, 0 };
        s_carry_t *carry = (unsigned) stream < S_STREAMS? &attempt->carry [stream]: &none;
        redacted = s_redact (attempt->redactor, carry, data, size, partial, &size);
        if (!redacted) {
            qn_agent_log (QN_LOG_ERROR, "out of memory redacting a log line of attempt %"
                          PRIu64 "/%u/%u; line dropped", key->run_id, key->task_index,
                          key->attempt);
            return;
        }
        if (partial && size == 0) {     //  all of it held back
            free (redacted);
            return;
        }
        data = redacted;
    }
    Qanat__LogChunk chunk = QANAT__LOG_CHUNK__INIT;
    chunk.stream = stream;
    chunk.data.data = (uint8_t *) data;
    chunk.data.len = size;
    chunk.partial = partial;
    chunk.time_us = time_us;
    Qanat__Event event = QANAT__EVENT__INIT;
    event.body_case = QANAT__EVENT__BODY_LOG;
    event.log = &chunk;
    s_post_event (self, attempt, &event);
    s_wipe_free (redacted, size);
}

static void
s_on_metric (void *arg, const qn_attempt_key_t *key, const char *name,
             double value, int64_t step, bool has_step, int64_t time_us)
{
    qn_agent_t *self = (qn_agent_t *) arg;
    s_attempt_t *attempt = s_callback_attempt (self, key);
    if (!attempt)
        return;
    char *redacted = NULL;
    if (attempt->redactor && name) {
        redacted = s_redact_string (attempt->redactor, name);
        if (!redacted)
            return;
        name = redacted;
    }
    Qanat__MetricPoint point = QANAT__METRIC_POINT__INIT;
    point.name = (char *) name;
    point.value = value;
    point.step = step;
    point.has_step = has_step;
    point.time_us = time_us;
    Qanat__Event event = QANAT__EVENT__INIT;
    event.body_case = QANAT__EVENT__BODY_METRIC;
    event.metric = &point;
    s_post_event (self, attempt, &event);
    free (redacted);
}

static const char *
s_kind_name (Qanat__EndKind kind)
{
    switch (kind) {
        case QANAT__END_KIND__END_EXIT:         return "exit";
        case QANAT__END_KIND__END_TIMEOUT:      return "timeout";
        case QANAT__END_KIND__END_CANCELED:     return "canceled";
        case QANAT__END_KIND__END_LOST:         return "lost";
        case QANAT__END_KIND__END_START_FAILED: return "start failed";
        default:                                return "?";
    }
}

//  Spools an attempt's Finished (it may use the spool's reserve).  The
//  reason and stack trace must be redacted already.
static void
s_post_finished_with (qn_agent_t *self, s_attempt_t *attempt, int exit_code, int signal,
                      const char *stack_trace, const char *reason, Qanat__EndKind kind,
                      Qanat__OutputRecord **outputs, size_t output_count)
{
    Qanat__Finished finished = QANAT__FINISHED__INIT;
    finished.outputs = outputs;
    finished.n_outputs = output_count;
    finished.exit_code = exit_code;
    finished.signal = signal;
    finished.stack_trace = (char *) (stack_trace? stack_trace: "");
    finished.reason = (char *) (reason? reason: "");
    finished.kind = kind;
    Qanat__Event event = QANAT__EVENT__INIT;
    event.body_case = QANAT__EVENT__BODY_FINISHED;
    event.finished = &finished;
    s_post_event (self, attempt, &event);
    attempt->finished = true;
}

static void
s_post_finished (qn_agent_t *self, s_attempt_t *attempt, int exit_code, int signal,
                 const char *stack_trace, const char *reason, Qanat__EndKind kind)
{
    s_post_finished_with (self, attempt, exit_code, signal, stack_trace, reason, kind, NULL, 0);
}

static void s_attempt_ended (qn_agent_t *self, s_attempt_t *attempt, int exit_code,
                             const char *reason, Qanat__EndKind kind);

//  Where the attempt's inputs are staged: on its backend's filesystem
//  when the backend says so (NULL = the agent's stage directory)
static const char *
s_stage_root (qn_agent_t *self, s_attempt_t *attempt)
{
    const s_backend_t *backend = &self->backends [attempt->backend];
    return backend->ops->stage_dir? backend->ops->stage_dir (backend->state): NULL;
}

//  Outputs stored (or not): now the attempt may end
static void
s_outputs_collected (void *arg, const qn_attempt_key_t *key, int status, const char *error,
                     Qanat__OutputRecord **outputs, size_t count)
{
    qn_agent_t *self = (qn_agent_t *) arg;
    s_attempt_t *attempt = s_attempt_lookup (self, key);
    if (!attempt || !attempt->collecting)
        return;
    attempt->collecting = false;
    char *clean = attempt->redactor && error? s_redact_string (attempt->redactor, error): NULL;
    const char *reason = status == 0? "": clean? clean: error? error: "outputs not stored";
    if (status != 0)
        qn_agent_log (QN_LOG_WARNING, "attempt %" PRIu64 "/%u/%u: %s", key->run_id,
                      key->task_index, key->attempt, reason);
    //  Exit code 0 with a reason and no outputs: the coordinator fails
    //  the attempt with that reason
    s_post_finished_with (self, attempt, 0, 0, "", reason, QANAT__END_KIND__END_EXIT,
                          outputs, count);
    free (clean);
    qn_stager_forget (self->stager, key, s_stage_root (self, attempt));
    s_attempt_ended (self, attempt, 0, reason, QANAT__END_KIND__END_EXIT);
}

static void
s_on_finished (void *arg, const qn_attempt_key_t *key, int exit_code,
               int signal, const char *stack_trace, const char *reason,
               Qanat__EndKind kind)
{
    qn_agent_t *self = (qn_agent_t *) arg;
    s_attempt_t *attempt = s_callback_attempt (self, key);
    if (!attempt)
        return;
    char *clean_trace = NULL;
    char *clean_reason = NULL;
    if (attempt->redactor) {
        //  What a line held back at its end (the stream ended inside a
        //  long line) goes out now: alone it is no whole secret
        for (int i = 0; i < S_STREAMS; i++)
            if (attempt->carry [i].size)
                s_on_log (self, key, (Qanat__Stream) i, "", 0, false, qn_now_us ());
        clean_trace = s_redact_trace (attempt->redactor, stack_trace? stack_trace: "");
        clean_reason = s_redact_string (attempt->redactor, reason? reason: "");
        //  Out of memory: say nothing rather than show a secret
        stack_trace = clean_trace? clean_trace: "";
        reason = clean_reason? clean_reason: "(reason withheld: out of memory)";
    }
    if (attempt->assign && attempt->assign->n_outputs && !attempt->collecting
    &&  exit_code == 0 && signal == 0 && kind == QANAT__END_KIND__END_EXIT) {
        //  A success ends only once its outputs are stored
        attempt->collecting = true;
        qn_agent_log (QN_LOG_INFO, "attempt %" PRIu64 "/%u/%u exited 0; storing %zu output(s)",
                      key->run_id, key->task_index, key->attempt, attempt->assign->n_outputs);
        if (qn_stager_outputs (self->stager, key, attempt->assign, attempt->workdir,
                               s_outputs_collected, self) == -1)
            s_outputs_collected (self, key, -1, "cannot collect the outputs (out of memory)",
                                 NULL, 0);
        if (clean_trace)
            s_wipe_free (clean_trace, strlen (clean_trace));
        free (clean_reason);
        return;
    }
    s_post_finished (self, attempt, exit_code, signal, stack_trace, reason, kind);
    if (attempt->staging || attempt->assign)
        qn_stager_forget (self->stager, key, s_stage_root (self, attempt));
    attempt->staging = false;
    s_attempt_ended (self, attempt, exit_code, reason, kind);
    if (clean_trace)
        s_wipe_free (clean_trace, strlen (clean_trace));
    free (clean_reason);
}

//  The bookkeeping after an attempt's Finished went to the spool
//  A finished attempt's directory (the parent of its work directory,
//  with its metrics and values files) stays for inspection until
//  keep_workdirs newer ones have finished, then goes: an agent's disk
//  does not fill with every task it ever ran.  Only a directory whose
//  work/ the backend reported in started is ever removed.
static void
s_keep_workdir (qn_agent_t *self, const char *workdir)
{
    size_t len = workdir? strlen (workdir): 0;
    if (!self->kept_dirs || len < 7 || strcmp (workdir + len - 5, "/work") != 0
    ||  workdir [0] != '/')
        return;
    char *dir = strndup (workdir, len - 5);
    if (!dir || !*dir || strchr (dir + 1, '/') == NULL) {
        free (dir);             //  never a top-level directory
        return;
    }
    zlistx_add_end (self->kept_dirs, dir);
    while (zlistx_size (self->kept_dirs) > self->keep_workdirs) {
        qn_sweeper_remove (self->sweeper, (char *) zlistx_first (self->kept_dirs));
        zlistx_delete (self->kept_dirs, zlistx_cursor (self->kept_dirs));
    }
}

static void
s_attempt_ended (qn_agent_t *self, s_attempt_t *attempt, int exit_code, const char *reason,
                 Qanat__EndKind kind)
{
    const qn_attempt_key_t *key = &attempt->key;
    bool was_running = attempt->running;
    attempt->running = false;
    qn_agent_log (QN_LOG_INFO, "attempt %" PRIu64 "/%u/%u finished (%s): exit code %d%s%s",
                  key->run_id, key->task_index, key->attempt, s_kind_name (kind), exit_code,
                  reason && *reason? ", ": "", reason? reason: "");
    //  The slot comes back; announced after the commit, behind the
    //  Finished (or at the next Welcome, which recomputes it)
    if (was_running || kind == QANAT__END_KIND__END_START_FAILED)
        self->owed_credit++;
    s_keep_workdir (self, attempt->workdir);
    if (self->draining) {
        size_t running = s_running (self);
        qn_agent_log (QN_LOG_INFO, "draining: %zu attempt(s) still running, %zu held",
                      running, zhashx_size (self->attempts));
    }
}


//  ---------------------------------------------------------------------
//  Messages from the coordinator

static void s_set_heartbeat (qn_agent_t *self, uint32_t heartbeat_ms);

static int s_use_own_store (qn_agent_t *self, Qanat__Assign *assign);

//  Takes back the engine jobs an earlier agent left running, with the
//  assignments the coordinator returned.  One it no longer counts as
//  current is re-attached only to be stopped, so that it does not run on
//  unseen in the engine.
static void
s_reattach_all (qn_agent_t *self, Qanat__Welcome *welcome)
{
    for (s_attempt_t *attempt = (s_attempt_t *) zhashx_first (self->attempts); attempt;
         attempt = (s_attempt_t *) zhashx_next (self->attempts)) {
        if (!attempt->awaiting_reattach)
            continue;
        attempt->awaiting_reattach = false;
        Qanat__Assign *held = NULL;
        for (size_t i = 0; i < welcome->n_held && !held; i++) {
            Qanat__AttemptRef *ref = welcome->held [i]? welcome->held [i]->attempt: NULL;
            if (ref && ref->run_id == attempt->key.run_id
            &&  ref->task_index == attempt->key.task_index && ref->attempt == attempt->key.attempt)
                held = welcome->held [i];
        }
        Qanat__AttemptRef ref;
        s_attempt_ref (&attempt->key, &ref);
        Qanat__Assign bare = QANAT__ASSIGN__INIT;
        bare.attempt = &ref;
        bare.task_name = attempt->task_name;
        Qanat__Assign *assign = held? held: &bare;
        if (held && !attempt->redactor) {
            bool failed = false;
            attempt->redactor = s_redactor_new (held->redact, held->n_redact, &failed);
        }
        if (held && held->n_outputs && !attempt->assign) {
            //  Its outputs are collected from the work directory the
            //  spool kept, into the same store as before the restart
            attempt->assign = qn_backend_assign_copy (held);
            if (attempt->assign && !attempt->assign->store && self->artifact_store.bucket
            &&  s_use_own_store (self, attempt->assign) == -1) {
                qanat__assign__free_unpacked (attempt->assign, NULL);
                attempt->assign = NULL;
            }
        }
        s_backend_t *backend = &self->backends [attempt->backend];
        char error [512] = "";
        if (backend->ops->reattach (backend->state, assign, attempt->engine_job_id,
                                    attempt->cursor, error, sizeof (error)) == -1) {
            qn_agent_log (QN_LOG_WARNING, "cannot re-attach attempt %" PRIu64 "/%u/%u to %s "
                          "job %s: %s", attempt->key.run_id, attempt->key.task_index,
                          attempt->key.attempt, backend->ops->name, attempt->engine_job_id, error);
            char reason [700];
            snprintf (reason, sizeof (reason), "agent restarted and could not re-attach to "
                      "%s job %s: %s", backend->ops->name, attempt->engine_job_id, error);
            s_on_finished (self, &attempt->key, -1, 0, "", reason, QANAT__END_KIND__END_LOST);
            continue;
        }
        qn_agent_log (QN_LOG_INFO, "re-attached attempt %" PRIu64 "/%u/%u to %s job %s",
                      attempt->key.run_id, attempt->key.task_index, attempt->key.attempt,
                      backend->ops->name, attempt->engine_job_id);
        if (!held)
            backend->ops->stop (backend->state, &attempt->key,
                                "canceled: the coordinator no longer counts this attempt",
                                QANAT__END_KIND__END_CANCELED);
    }
}

static void
s_handle_welcome (qn_agent_t *self, Qanat__Welcome *welcome)
{
    uint32_t beat = welcome->heartbeat_ms? welcome->heartbeat_ms: S_DEFAULT_HEARTBEAT_MS;
    if (beat < S_MIN_HEARTBEAT_MS)
        beat = S_MIN_HEARTBEAT_MS;
    if (beat > S_MAX_HEARTBEAT_MS)
        beat = S_MAX_HEARTBEAT_MS;
    s_set_heartbeat (self, beat);
    self->suspect_after_ms = welcome->suspect_after_ms;
    //  Several Registers may be answered by several Welcomes; credit and
    //  replay go once, after the first, and since they follow every
    //  Register we sent on the same connection, the coordinator sees them
    //  after its last reset of our credit.
    if (self->registered) {
        qn_agent_log (QN_LOG_DEBUG, "extra Welcome ignored");
        return;
    }
    self->registered = true;
    self->backoff_step = 0;
    self->cut_off_stopped = false;
    if (self->register_timer != -1) {
        zloop_timer_end (self->loop, self->register_timer);
        self->register_timer = -1;
    }
    qn_agent_log (QN_LOG_INFO, "registered with the coordinator as %s (heartbeat %u ms, "
                  "suspect after %u ms, lost after %u ms)",
                  welcome->agent_name && *welcome->agent_name? welcome->agent_name: self->name,
                  beat, welcome->suspect_after_ms, welcome->lost_after_ms);
    if (self->draining)
        s_send_drain (self);
    s_reattach_all (self, welcome);
    qn_transfer_reconnected (self->transfer);
    size_t running = s_running (self);
    self->owed_credit = self->slots > running? (uint32_t) (self->slots - running): 0;
    s_pay_credit (self);
    size_t replay = 0;
    s_attempt_t *attempt = (s_attempt_t *) zhashx_first (self->attempts);
    while (attempt) {
        attempt->sent = attempt->acked;
        replay += attempt->committed - attempt->acked;
        attempt = (s_attempt_t *) zhashx_next (self->attempts);
    }
    if (replay)
        qn_agent_log (QN_LOG_INFO, "replaying %zu unacknowledged event(s) of %zu attempt(s)",
                      replay, zhashx_size (self->attempts));
    s_flush_all (self);
}

static void
s_handle_ack (qn_agent_t *self, Qanat__Ack *ack)
{
    if (!ack->attempt) {
        self->malformed++;
        qn_agent_log (QN_LOG_DEBUG, "Ack without an attempt ignored");
        return;
    }
    qn_attempt_key_t key = { ack->attempt->run_id, ack->attempt->task_index,
                             ack->attempt->attempt };
    s_attempt_t *attempt = s_attempt_lookup (self, &key);
    if (!attempt) {
        qn_agent_log (QN_LOG_DEBUG, "Ack for unknown attempt %" PRIu64 "/%u/%u ignored",
                      key.run_id, key.task_index, key.attempt);
        return;
    }
    //  Never acknowledge what was not even committed, let alone sent
    uint64_t seq = ack->seq < attempt->committed? ack->seq: attempt->committed;
    if (seq <= attempt->acked)
        return;
    attempt->acked = seq;
    if (attempt->sent < seq)
        attempt->sent = seq;
    s_attempt_check_done (attempt);
    s_arm_commit (self);
}

//  Reports an attempt that never started: Started with pid 0, the reason
//  on the system stream, and Finished.
static void
s_fail_start (qn_agent_t *self, s_attempt_t *attempt, const char *error)
{
    char reason [600];
    snprintf (reason, sizeof (reason), "cannot start: %.500s", error);
    s_on_started (self, &attempt->key, 0, self->host, "", "");
    s_on_log (self, &attempt->key, QANAT__STREAM__STREAM_SYSTEM, reason, strlen (reason),
              false, qn_now_us ());
    s_on_finished (self, &attempt->key, -1, 0, "", reason, QANAT__END_KIND__END_START_FAILED);
}

static void s_start_backend (qn_agent_t *self, s_attempt_t *attempt, const Qanat__Assign *assign,
                             Qanat__Label **extra, size_t extra_count);
static void s_inputs_ready (void *arg, const qn_attempt_key_t *key, int status,
                            const char *error, Qanat__Label **env, size_t env_count);

//  A workflow that names no artifact store gets this environment's, when
//  the agent was given one: its outputs then go straight to that bucket.
static int
s_use_own_store (qn_agent_t *self, Qanat__Assign *assign)
{
    const qn_s3_store_url_t *own = &self->artifact_store;
    Qanat__ArtifactStore *store = (Qanat__ArtifactStore *) malloc (sizeof (*store));
    if (!store)
        return -1;
    qanat__artifact_store__init (store);
    store->kind = strdup ("s3");
    store->bucket = strdup (own->bucket);
    store->prefix = strdup (own->prefix? own->prefix: "");
    store->endpoint = strdup (own->endpoint? own->endpoint: "");
    store->region = strdup (own->region? own->region: "");
    store->path_style = own->path_style;
    assign->store = store;
    if (!store->kind || !store->bucket || !store->prefix || !store->endpoint || !store->region)
        return -1;
    return 0;
}

static void
s_handle_assign (qn_agent_t *self, Qanat__Assign *assign)
{
    if (!assign->attempt) {
        self->malformed++;
        qn_agent_log (QN_LOG_WARNING, "Assign without an attempt ignored");
        return;
    }
    qn_attempt_key_t key = { assign->attempt->run_id, assign->attempt->task_index,
                             assign->attempt->attempt };
    if (s_attempt_lookup (self, &key)) {
        qn_agent_log (QN_LOG_WARNING, "duplicate Assign for attempt %" PRIu64 "/%u/%u ignored",
                      key.run_id, key.task_index, key.attempt);
        return;
    }
    s_attempt_t *attempt = s_attempt_create (self, &key);
    if (!attempt) {
        qn_agent_log (QN_LOG_ERROR, "out of memory accepting an Assign");
        return;
    }
    snprintf (attempt->task_name, sizeof (attempt->task_name), "%s",
              assign->task_name? assign->task_name: "");
    //  Before anything can be reported: even a failed start may echo argv
    bool failed = false;
    attempt->redactor = s_redactor_new (assign->redact, assign->n_redact, &failed);
    if (failed) {
        qn_agent_log (QN_LOG_ERROR, "out of memory taking the secrets of attempt %" PRIu64
                      "/%u/%u; refusing it", key.run_id, key.task_index, key.attempt);
        s_on_finished (self, &key, -1, 0, "", "agent out of memory",
                       QANAT__END_KIND__END_START_FAILED);
        return;
    }
    //  A refusal is one Finished, which the spool's reserve always takes
    if (self->draining || self->full) {
        char reason [200];
        if (self->draining)
            snprintf (reason, sizeof (reason), "agent draining");
        else
            snprintf (reason, sizeof (reason), "agent spool full: %" PRIu64 " of %" PRIu64
                      " bytes wait for acknowledgement",
                      qn_spool_committed_bytes (self->spool) + self->pending_bytes,
                      qn_spool_max (self->spool));
        qn_agent_log (QN_LOG_WARNING, "refusing attempt %" PRIu64 "/%u/%u: %s",
                      key.run_id, key.task_index, key.attempt, reason);
        s_on_finished (self, &key, -1, 0, "", reason, QANAT__END_KIND__END_START_FAILED);
        return;
    }
    size_t running = s_running (self);
    if (running >= self->slots)
        qn_agent_log (QN_LOG_WARNING, "Assign beyond our %u slots; running it anyway",
                      self->slots);
    char error [512] = "";
    const char *wanted = assign->backend && *assign->backend? assign->backend: NULL;
    size_t backend = 0;
    while (wanted && backend < self->backend_count
       &&  !streq (self->backends [backend].ops->name, wanted))
        backend++;
    if (backend == self->backend_count) {
        size_t used = (size_t) snprintf (error, sizeof (error),
                                         "this agent has no backend '%.64s' (it offers:", wanted);
        for (size_t b = 0; b < self->backend_count && used < sizeof (error); b++)
            used += (size_t) snprintf (error + used, sizeof (error) - used, " %s",
                                       self->backends [b].ops->name);
        if (used < sizeof (error))
            snprintf (error + used, sizeof (error) - used, ")");
        qn_agent_log (QN_LOG_WARNING, "attempt %" PRIu64 "/%u/%u cannot start: %s",
                      key.run_id, key.task_index, key.attempt, error);
        s_on_finished (self, &key, -1, 0, "", error, QANAT__END_KIND__END_START_FAILED);
        return;
    }
    attempt->backend = backend;
    attempt->backend_name = self->backends [backend].ops->name;
    const qn_backend_ops_t *ops = self->backends [backend].ops;
    const char *no_files = ops->no_files? ops->no_files (self->backends [backend].state): NULL;
    if (no_files) {
        //  Value inputs only, which travel in the environment
        bool files = assign->n_outputs > 0;
        for (size_t i = 0; i < assign->n_inputs; i++)
            files = files || assign->inputs [i]->kind != QANAT__ARTIFACT_KIND__ARTIFACT_VALUE;
        if (files) {
            snprintf (error, sizeof (error), "the %s backend cannot stage file inputs or "
                      "collect outputs here: %s; it takes value inputs only",
                      attempt->backend_name, no_files);
            qn_agent_log (QN_LOG_WARNING, "attempt %" PRIu64 "/%u/%u cannot start: %s",
                          key.run_id, key.task_index, key.attempt, error);
            s_on_finished (self, &key, -1, 0, "", error, QANAT__END_KIND__END_START_FAILED);
            return;
        }
    }
    attempt->running = true;
    if (assign->n_inputs || assign->n_outputs) {
        attempt->assign = qn_backend_assign_copy (assign);
        if (attempt->assign && !attempt->assign->store && self->artifact_store.bucket
        &&  s_use_own_store (self, attempt->assign) == -1) {
            qanat__assign__free_unpacked (attempt->assign, NULL);
            attempt->assign = NULL;
        }
        if (!attempt->assign) {
            s_on_finished (self, &key, -1, 0, "", "agent out of memory",
                           QANAT__END_KIND__END_START_FAILED);
            return;
        }
    }
    if (assign->n_inputs) {
        //  The backend starts once the inputs are staged
        attempt->staging = true;
        if (qn_stager_inputs (self->stager, &key, attempt->assign, s_stage_root (self, attempt),
                              s_inputs_ready, self) == -1)
            s_inputs_ready (self, &key, -1, "cannot stage the inputs (out of memory)", NULL, 0);
        return;
    }
    s_start_backend (self, attempt, assign, NULL, 0);
}

//  Starts the attempt on its backend, with extra environment variables
//  (inputs, stage directory, values file) added to the assignment's.
static void
s_start_backend (qn_agent_t *self, s_attempt_t *attempt, const Qanat__Assign *assign,
                 Qanat__Label **extra, size_t extra_count)
{
    char error [512] = "";
    char stage [4096], values [4096];
    qn_stager_paths (self->stager, &attempt->key, s_stage_root (self, attempt), stage,
                     sizeof stage, values, sizeof values);
    Qanat__Label stage_label = QANAT__LABEL__INIT, values_label = QANAT__LABEL__INIT;
    stage_label.key = (char *) "QANAT_STAGE_DIR";
    stage_label.value = stage;
    values_label.key = (char *) "QANAT_VALUES";
    values_label.value = values;
    Qanat__Assign with = *assign;
    Qanat__Label **env = (Qanat__Label **) calloc (assign->n_env + extra_count + 3,
                                                   sizeof (Qanat__Label *));
    if (!env) {
        s_fail_start (self, attempt, "agent out of memory");
        return;
    }
    size_t count = 0;
    for (size_t i = 0; i < assign->n_env; i++)
        env [count++] = assign->env [i];
    for (size_t i = 0; i < extra_count; i++)
        env [count++] = extra [i];
    if (assign->n_inputs)
        env [count++] = &stage_label;
    bool values_wanted = false;
    for (size_t i = 0; i < assign->n_outputs; i++)
        values_wanted = values_wanted || assign->outputs [i]->value;
    if (values_wanted)
        env [count++] = &values_label;
    with.env = env;
    with.n_env = count;
    s_backend_t *backend = &self->backends [attempt->backend];
    int rc = backend->ops->start (backend->state, &with, error, sizeof (error));
    free (env);
    const qn_attempt_key_t key = attempt->key;
    if (rc == -1) {
        char *clean = attempt->redactor? s_redact_string (attempt->redactor, error): NULL;
        qn_agent_log (QN_LOG_WARNING, "attempt %" PRIu64 "/%u/%u cannot start: %s",
                      key.run_id, key.task_index, key.attempt,
                      clean? clean: attempt->redactor? "(withheld)": error);
        free (clean);
        s_fail_start (self, attempt, error);
    }
}

//  Keeps the blob cache under its bound once inputs are in place
static void
s_trim_cache (qn_agent_t *self)
{
    if (!self->cache_max)
        return;
    size_t count = 0;
    uint64_t freed = qn_blobstore_trim (self->cache, self->cache_max, self->cache_keep_recent_s,
                                        &count);
    if (count)
        qn_agent_log (QN_LOG_INFO, "blob cache: removed %zu least recently used blob(s), "
                      "%" PRIu64 " bytes", count, freed);
}

static void
s_inputs_ready (void *arg, const qn_attempt_key_t *key, int status, const char *error,
                Qanat__Label **env, size_t env_count)
{
    qn_agent_t *self = (qn_agent_t *) arg;
    s_attempt_t *attempt = s_attempt_lookup (self, key);
    if (!attempt || !attempt->staging)
        return;
    attempt->staging = false;
    s_trim_cache (self);
    if (status != 0) {
        qn_agent_log (QN_LOG_WARNING, "attempt %" PRIu64 "/%u/%u: %s", key->run_id,
                      key->task_index, key->attempt, error);
        s_fail_start (self, attempt, error? error: "inputs not staged");
        return;
    }
    s_start_backend (self, attempt, attempt->assign, env, env_count);
}

//  Asks the attempt's backend to stop it.  An attempt still waiting to
//  be re-attached (no Welcome yet) cannot be stopped yet.
static int
s_stop (qn_agent_t *self, s_attempt_t *attempt, const char *reason, Qanat__EndKind kind)
{
    if (attempt->awaiting_reattach)
        return -1;
    s_backend_t *backend = &self->backends [attempt->backend];
    return backend->ops->stop (backend->state, &attempt->key, reason, kind);
}

static void
s_handle_cancel (qn_agent_t *self, Qanat__Cancel *cancel)
{
    if (!cancel->attempt) {
        self->malformed++;
        qn_agent_log (QN_LOG_DEBUG, "Cancel without an attempt ignored");
        return;
    }
    qn_attempt_key_t key = { cancel->attempt->run_id, cancel->attempt->task_index,
                             cancel->attempt->attempt };
    s_attempt_t *attempt = s_attempt_lookup (self, &key);
    char reason [600];
    snprintf (reason, sizeof (reason), "canceled: %.500s", cancel->reason? cancel->reason: "");
    if (!attempt || !attempt->running
    ||  s_stop (self, attempt, reason, QANAT__END_KIND__END_CANCELED) == -1) {
        qn_agent_log (QN_LOG_DEBUG, "Cancel for attempt %" PRIu64 "/%u/%u, not running",
                      key.run_id, key.task_index, key.attempt);
        return;
    }
    qn_agent_log (QN_LOG_INFO, "canceling attempt %" PRIu64 "/%u/%u: %s",
                  key.run_id, key.task_index, key.attempt,
                  cancel->reason? cancel->reason: "");
}

//  Returns -1 when the engine must stop.
static int
s_handle_refusal (qn_agent_t *self, Qanat__Refusal *refusal)
{
    const char *message = refusal->message? refusal->message: "";
    switch (refusal->code) {
        case QANAT__REFUSAL_CODE__REFUSAL_NOT_REGISTERED:
            //  The coordinator lost us (it restarted).  While we are not
            //  registered the backoff timer sends Register; however many
            //  refusals come, they add none.
            if (self->registered) {
                qn_agent_log (QN_LOG_INFO, "coordinator does not know us; registering again");
                s_start_registering (self);
            }
            return 0;
        case QANAT__REFUSAL_CODE__REFUSAL_BAD_VERSION:
            qn_agent_log (QN_LOG_ERROR, "coordinator refused our protocol version: %s", message);
            self->fatal = true;
            return -1;
        case QANAT__REFUSAL_CODE__REFUSAL_DENIED:
            qn_agent_log (QN_LOG_ERROR, "the coordinator refuses this agent's key (revoked?): "
                          "%s; stopping", message);
            self->fatal = true;
            self->denied = true;
            return -1;
        default:
            qn_agent_log (QN_LOG_WARNING, "coordinator refused a message (code %u): %s",
                          refusal->code, message);
            return 0;
    }
}

//  Returns -1 when the engine must stop.
static int
s_handle_message (qn_agent_t *self, zmsg_t *msg)
{
    if (zmsg_size (msg) != 1) {
        self->malformed++;
        qn_agent_log (QN_LOG_DEBUG, "ignored a message of %zu frames", zmsg_size (msg));
        return 0;
    }
    zframe_t *frame = zmsg_first (msg);
    qn_msg_status_t status;
    uint32_t version = 0;
    Qanat__Envelope *env = qn_msg_decode (zframe_data (frame), zframe_size (frame),
                                          &status, &version);
    if (!env) {
        self->malformed++;
        qn_agent_log (QN_LOG_DEBUG, "ignored a frame of %zu bytes: %s (%" PRIu64 " so far)",
                      zframe_size (frame), qn_msg_status_str (status), self->malformed);
        return 0;
    }
    int rc = 0;
    switch (env->body_case) {
        case QANAT__ENVELOPE__BODY_WELCOME:
            s_handle_welcome (self, env->welcome);
            break;
        case QANAT__ENVELOPE__BODY_HEARTBEAT:
            break;          //  being alive is all it says
        case QANAT__ENVELOPE__BODY_ASSIGN:
            s_handle_assign (self, env->assign);
            break;
        case QANAT__ENVELOPE__BODY_ACK:
            s_handle_ack (self, env->ack);
            break;
        case QANAT__ENVELOPE__BODY_CANCEL:
            s_handle_cancel (self, env->cancel);
            break;
        case QANAT__ENVELOPE__BODY_BLOB_WANT:
            qn_transfer_on_want (self->transfer, env->blob_want);
            break;
        case QANAT__ENVELOPE__BODY_BLOB_CHUNK:
            qn_transfer_on_chunk (self->transfer, env->blob_chunk);
            break;
        case QANAT__ENVELOPE__BODY_REFUSAL:
            rc = s_handle_refusal (self, env->refusal);
            break;
        default:
            self->malformed++;
            qn_agent_log (QN_LOG_DEBUG, "ignored an unexpected message (body %d)",
                          (int) env->body_case);
            break;
    }
    qn_msg_free (&env);
    return rc;
}

static int
s_socket_readable (zloop_t *loop, zsock_t *sock, void *arg)
{
    (void) loop;
    qn_agent_t *self = (qn_agent_t *) arg;
    for (int count = 0; count < S_RECV_BURST; count++) {
        if (!(zsock_events (sock) & ZMQ_POLLIN))
            break;
        zmsg_t *msg = zmsg_recv (sock);
        if (!msg)
            break;
        self->last_rx_ms = zclock_mono ();
        int rc = s_handle_message (self, msg);
        zmsg_destroy (&msg);
        if (rc == -1) {
            self->exit_now = true;
            return -1;
        }
    }
    return self->exit_now? -1: 0;
}


//  ---------------------------------------------------------------------
//  Timers: heartbeat, the silence watchdog, drain

//  Silence after which we call ourselves disconnected: five heartbeats,
//  or the coordinator's suspect timer when that is longer (a WAN agent's
//  coordinator waits minutes before it suspects us; so do we).
static int64_t
s_silence_limit (qn_agent_t *self)
{
    int64_t limit = (int64_t) S_SILENCE_BEATS * self->heartbeat_ms;
    if ((int64_t) self->suspect_after_ms > limit)
        limit = self->suspect_after_ms;
    return limit;
}

static int
s_heartbeat (zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    (void) timer_id;
    qn_agent_t *self = (qn_agent_t *) arg;
    int64_t now = zclock_mono ();
    if (self->registered && now - self->last_rx_ms > s_silence_limit (self)) {
        qn_agent_log (QN_LOG_WARNING, "no word from the coordinator for %" PRId64 " ms; "
                      "registering again", now - self->last_rx_ms);
        s_start_registering (self);
    }
    if (self->registered) {
        s_send_heartbeat (self);
        //  A transfer that made no progress since the last few beats is
        //  taken up again (a message lost on the way)
        if (++self->beats % 4 == 0)
            qn_transfer_tick (self->transfer);
    }
    return self->exit_now? -1: 0;
}

static void
s_set_heartbeat (qn_agent_t *self, uint32_t heartbeat_ms)
{
    if (heartbeat_ms == self->heartbeat_ms && self->heartbeat_timer != -1)
        return;
    if (self->heartbeat_timer != -1)
        zloop_timer_end (self->loop, self->heartbeat_timer);
    self->heartbeat_ms = heartbeat_ms;
    self->heartbeat_timer = zloop_timer (self->loop, heartbeat_ms, 0, s_heartbeat, self);
}

//  stop_after_disconnect: cut off too long, we stop our attempts rather
//  than let them run on for a coordinator that has given them up.
static int
s_watchdog (zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    (void) timer_id;
    qn_agent_t *self = (qn_agent_t *) arg;
    int64_t silence = zclock_mono () - self->last_rx_ms;
    if (self->cut_off_stopped || silence <= (int64_t) self->stop_after_s * 1000)
        return 0;
    self->cut_off_stopped = true;
    char reason [100];
    snprintf (reason, sizeof (reason), "stopped: cut off from the coordinator for %us",
              self->stop_after_s);
    size_t stopped = 0;
    s_attempt_t *attempt = (s_attempt_t *) zhashx_first (self->attempts);
    while (attempt) {
        if (attempt->running
        &&  s_stop (self, attempt, reason, QANAT__END_KIND__END_LOST) == 0)
            stopped++;
        attempt = (s_attempt_t *) zhashx_next (self->attempts);
    }
    if (stopped)
        qn_agent_log (QN_LOG_WARNING, "no word from the coordinator for %" PRId64 " ms: "
                      "stopping %zu attempt(s)", silence, stopped);
    return self->exit_now? -1: 0;
}

static void
s_check_drained (qn_agent_t *self)
{
    if (!self->draining || self->exit_now)
        return;
    if (zhashx_size (self->attempts) > 0 || zlistx_size (self->pending) > 0)
        return;
    qn_agent_log (QN_LOG_INFO, "drained: every attempt finished and acknowledged; stopping");
    self->drained = true;
    self->exit_now = true;
}

static int
s_drain_timeout (zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    (void) timer_id;
    qn_agent_t *self = (qn_agent_t *) arg;
    qn_agent_log (QN_LOG_WARNING, "drain timed out after %us with %zu attempt(s) running "
                  "and %zu held; stopping", self->drain_timeout_s, s_running (self),
                  zhashx_size (self->attempts));
    self->exit_now = true;
    return -1;
}

static int
s_signal_readable (zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    (void) loop;
    (void) item;
    qn_agent_t *self = (qn_agent_t *) arg;
    struct signalfd_siginfo info;
    while (read (self->signal_fd, &info, sizeof (info)) == (ssize_t) sizeof (info)) {
        const char *name = info.ssi_signo == SIGINT? "SIGINT": "SIGTERM";
        self->signals++;
        if (self->signals == 1) {
            self->draining = true;
            qn_agent_log (QN_LOG_INFO, "%s: draining: %zu attempt(s) running, %zu held; "
                          "taking no new work (send it again to stop at once)",
                          name, s_running (self), zhashx_size (self->attempts));
            if (self->registered)
                s_send_drain (self);
            if (self->drain_timeout_s
            &&  zloop_timer (self->loop, (size_t) self->drain_timeout_s * 1000, 1,
                             s_drain_timeout, self) == -1)
                qn_agent_log (QN_LOG_ERROR, "cannot start the drain timer");
            s_check_drained (self);
        }
        else {
            qn_agent_log (QN_LOG_INFO, "%s again: stopping now", name);
            self->exit_now = true;
        }
    }
    return self->exit_now? -1: 0;
}


//  ---------------------------------------------------------------------
//  Taking over the spool of an earlier agent

static const char *s_lost_reason = "agent restarted: the attempt's process was lost";

//  Kills what is left of an attempt's process group: its pipes died with
//  the agent that started it, so we cannot take it back.  A live process
//  with that pid but another start time is not ours (the pid was reused)
//  and is left alone.
static void
s_kill_leftover (const qn_spool_meta_t *meta)
{
    if (meta->pid <= 0 || kill (-(pid_t) meta->pid, 0) == -1)
        return;
    uint64_t start_time = s_process_start_time (meta->pid);
    if (start_time && meta->start_time && start_time != meta->start_time) {
        qn_agent_log (QN_LOG_INFO, "pid %" PRId64 " now belongs to another process; "
                      "not touching it", meta->pid);
        return;
    }
    qn_agent_log (QN_LOG_WARNING, "killing process group %" PRId64 " of attempt %" PRIu64
                  "/%u/%u, left by an earlier agent", meta->pid, meta->key.run_id,
                  meta->key.task_index, meta->key.attempt);
    kill (-(pid_t) meta->pid, SIGKILL);
}

static int
s_first_seq (const qn_attempt_key_t *key, uint64_t seq, const void *data, size_t size,
             void *arg)
{
    (void) key;
    (void) data;
    (void) size;
    *(uint64_t *) arg = seq;
    return 1;
}

static int
s_take_over (const qn_spool_meta_t *meta, void *arg)
{
    qn_agent_t *self = (qn_agent_t *) arg;
    s_attempt_t *attempt = s_attempt_create (self, &meta->key);
    if (!attempt)
        return -1;
    snprintf (attempt->task_name, sizeof (attempt->task_name), "%s", meta->task_name);
    attempt->pid = meta->pid;
    attempt->start_time = meta->start_time;
    attempt->next_seq = meta->next_seq;
    attempt->committed = meta->next_seq - 1;
    attempt->finished = attempt->finished_spooled = meta->finished;
    attempt->meta_dirty = false;
    uint64_t first = 0;
    qn_spool_events (self->spool, &meta->key, 0, s_first_seq, &first);
    attempt->acked = attempt->spool_acked = first? first - 1: attempt->committed;
    attempt->sent = attempt->acked;
    const qn_backend_ops_t *ops = meta->backend [0]? qn_backend_find (meta->backend): NULL;
    size_t backend = 0;
    while (ops && backend < self->backend_count && self->backends [backend].ops != ops)
        backend++;
    if (!meta->finished && ops && backend < self->backend_count && ops->reattach
    &&  meta->engine_job_id [0]) {
        //  Its engine job outlived us: taken back after the Welcome, which
        //  brings its assignment (and the secrets to redact)
        attempt->backend = backend;
        attempt->backend_name = ops->name;
        attempt->running = true;
        attempt->awaiting_reattach = true;
        memcpy (attempt->engine_job_id, meta->engine_job_id, sizeof (attempt->engine_job_id));
        memcpy (attempt->cursor, meta->cursor, sizeof (attempt->cursor));
        snprintf (attempt->workdir, sizeof (attempt->workdir), "%s", meta->workdir);
        qn_agent_log (QN_LOG_INFO, "attempt %" PRIu64 "/%u/%u (%s) runs as %s job %s; "
                      "re-attaching once registered", meta->key.run_id, meta->key.task_index,
                      meta->key.attempt, meta->task_name, ops->name, meta->engine_job_id);
    }
    else
    if (!meta->finished) {
        s_kill_leftover (meta);
        s_post_finished (self, attempt, -1, 0, "", s_lost_reason, QANAT__END_KIND__END_LOST);
        qn_agent_log (QN_LOG_WARNING, "attempt %" PRIu64 "/%u/%u (%s) was running when the "
                      "agent stopped; reporting it lost", meta->key.run_id,
                      meta->key.task_index, meta->key.attempt, meta->task_name);
    }
    s_attempt_check_done (attempt);
    return 0;
}


//  ---------------------------------------------------------------------
//  Handshake monitor (CURVE only)
//
//  A coordinator whose ZAP handler refuses our key (revoked, and it
//  restarted since, so no connection is left to carry a Refusal) only
//  shows in libzmq's socket events: HANDSHAKE_FAILED_AUTH with the ZAP
//  status code.  400 is a final no; 300 and 500 are the handler's own
//  trouble and we keep trying.

//  Starts monitoring sock's handshakes on a fresh PAIR socket.  NULL on
//  failure; *endpoint_p gets the malloc'd inproc endpoint.
static zsock_t *
s_monitor_new (zsock_t *sock, char **endpoint_p)
{
    static unsigned int counter = 0;
    char *endpoint = zsys_sprintf ("inproc://qn-agent-monitor-%d-%u", (int) getpid (),
                                   counter++);
    if (!endpoint)
        return NULL;
    int events = ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH
               | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL
               | ZMQ_EVENT_DISCONNECTED;
    zsock_t *monitor = NULL;
    if (zmq_socket_monitor (zsock_resolve (sock), endpoint, events) == 0) {
        monitor = zsock_new (ZMQ_PAIR);
        if (monitor && zsock_connect (monitor, "%s", endpoint) == -1)
            zsock_destroy (&monitor);
    }
    if (!monitor) {
        zmq_socket_monitor (zsock_resolve (sock), NULL, 0);
        zstr_free (&endpoint);
    }
    *endpoint_p = endpoint;
    return monitor;
}

static void
s_monitor_destroy (zsock_t *sock, zsock_t **monitor_p, char **endpoint_p)
{
    if (*monitor_p && sock)
        zmq_socket_monitor (zsock_resolve (sock), NULL, 0);
    zsock_destroy (monitor_p);
    zstr_free (endpoint_p);
}

//  Reads one event: 0 with *event_p and *value_p, or -1.
static int
s_monitor_read (zsock_t *monitor, uint16_t *event_p, uint32_t *value_p)
{
    zmsg_t *msg = zmsg_recv (monitor);
    if (!msg)
        return -1;
    zframe_t *frame = zmsg_first (msg);
    int rc = -1;
    if (frame && zframe_size (frame) == 6) {
        memcpy (event_p, zframe_data (frame), 2);
        memcpy (value_p, zframe_data (frame) + 2, 4);
        rc = 0;
    }
    zmsg_destroy (&msg);
    return rc;
}

static int
s_monitor_readable (zloop_t *loop, zsock_t *sock, void *arg)
{
    (void) loop;
    qn_agent_t *self = (qn_agent_t *) arg;
    uint16_t event;
    uint32_t value;
    if (s_monitor_read (sock, &event, &value) == -1)
        return 0;
    if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH && value == 400) {
        qn_agent_log (QN_LOG_ERROR, "the coordinator refuses this agent's key at the "
                      "handshake (revoked?); stopping");
        self->fatal = true;
        self->denied = true;
        self->exit_now = true;
        return -1;
    }
    if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
        qn_agent_log (QN_LOG_WARNING, "the coordinator's key check failed (ZAP status %u); "
                      "trying again", value);
    else
    if (event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL
    ||  event == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL)
        qn_agent_log (QN_LOG_WARNING, "CURVE handshake with %s failed (is it the coordinator "
                      "this agent enrolled with?)", self->endpoint);
    else
    if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED)
        qn_agent_log (QN_LOG_DEBUG, "CURVE handshake with %s done", self->endpoint);
    return self->exit_now? -1: 0;
}


//  ---------------------------------------------------------------------
//  Life cycle

static char *
s_strdup_or_empty (const char *text)
{
    return strdup (text? text: "");
}

static int
s_mkdir (const char *path)
{
    if (mkdir (path, 0700) == 0 || errno == EEXIST)
        return 0;
    return -1;
}

qn_agent_t *
qn_agent_new (const qn_agent_config_t *config)
{
    assert (config);
    assert (config->endpoint);
    assert (config->data_dir);
    qn_agent_t *self = (qn_agent_t *) calloc (1, sizeof (qn_agent_t));
    if (!self)
        return NULL;
    self->heartbeat_timer = -1;
    self->register_timer = -1;
    self->signal_fd = -1;
    self->seed = (unsigned int) (getpid () ^ (unsigned int) zclock_time ());

    //  SIGTERM and SIGINT arrive on a signalfd that the loop reads.  They
    //  must be blocked before libzmq starts its threads, which inherit the
    //  mask; czmq's own handling (zsys_interrupted) is switched off.
    zsys_handler_set (NULL);
    sigset_t signals;
    sigemptyset (&signals);
    sigaddset (&signals, SIGTERM);
    sigaddset (&signals, SIGINT);
    if (pthread_sigmask (SIG_BLOCK, &signals, &self->saved_mask) == 0)
        self->mask_saved = true;
    self->signal_fd = signalfd (-1, &signals, SFD_NONBLOCK | SFD_CLOEXEC);

    if (gethostname (self->host, sizeof (self->host) - 1) == -1)
        snprintf (self->host, sizeof (self->host), "localhost");
    self->endpoint = strdup (config->endpoint);
    self->name = strdup (config->name && *config->name? config->name: self->host);
    self->data_dir = strdup (config->data_dir);
    self->slots = config->slots? config->slots: 1;
    self->outbox_limit = config->outbox_limit;
    self->ask_heartbeat_ms = config->heartbeat_ms;
    self->ask_suspect_ms = config->suspect_after_ms;
    self->ask_lost_ms = config->lost_after_ms;
    self->max_backoff_ms = config->max_backoff_ms? config->max_backoff_ms
                                                 : QN_AGENT_DEFAULT_MAX_BACKOFF_MS;
    if (self->max_backoff_ms < S_BACKOFF_BASE_MS)
        self->max_backoff_ms = S_BACKOFF_BASE_MS;
    if (config->cert) {
        self->cert = zcert_dup (config->cert);
        self->server_key = config->server_key? strdup (config->server_key): NULL;
        if (!self->cert || !self->server_key
        ||  strlen (self->server_key) != QN_Z85_KEY_SIZE) {
            qn_agent_log (QN_LOG_ERROR, "no usable CURVE key pair or coordinator key");
            qn_agent_destroy (&self);
            return NULL;
        }
    }
    self->stop_after_s = config->stop_after_disconnect_s;
    self->drain_timeout_s = config->drain_timeout_s;
    self->label_count = config->label_count;
    self->label_keys = (char **) calloc (config->label_count + 1, sizeof (char *));
    self->label_values = (char **) calloc (config->label_count + 1, sizeof (char *));
    bool ok = self->endpoint && self->name && self->data_dir
           && self->label_keys && self->label_values && self->signal_fd != -1;
    for (size_t i = 0; ok && i < config->label_count; i++) {
        self->label_keys [i] = s_strdup_or_empty (config->label_keys [i]);
        self->label_values [i] = s_strdup_or_empty (config->label_values [i]);
        ok = self->label_keys [i] && self->label_values [i];
    }
    if (ok) {
        self->attempts = zhashx_new ();
        self->pending = zlistx_new ();
        self->loop = zloop_new ();
        self->sock = zsock_new (ZMQ_DEALER);
        ok = self->attempts && self->pending && self->loop && self->sock;
    }
    if (ok) {
        zhashx_set_destructor (self->attempts, s_attempt_destructor);
        zlistx_set_destructor (self->pending, s_pending_destructor);
        zloop_set_nonstop (self->loop, true);
        char spool_dir [4096];
        snprintf (spool_dir, sizeof (spool_dir), "%s/spool", self->data_dir);
        if (s_mkdir (spool_dir) == -1) {
            qn_agent_log (QN_LOG_ERROR, "cannot create %s: %s", spool_dir, strerror (errno));
            ok = false;
        }
        else
            self->spool = qn_spool_new (spool_dir, config->spool_max, QN_SPOOL_DEFAULT_RESERVE);
        ok = ok && self->spool;
    }
    if (ok) {
        self->events.started = s_on_started;
        self->events.log = s_on_log;
        self->events.metric = s_on_metric;
        self->events.finished = s_on_finished;
        self->events.cursor = s_on_cursor;
        char blob_dir [4096];
        snprintf (blob_dir, sizeof blob_dir, "%s/blobs", self->data_dir);
        self->cache = qn_blobstore_new (blob_dir);
        self->transfer = self->cache? qn_transfer_new (self->cache, s_transfer_send, self): NULL;
        self->stager = self->transfer? qn_stager_new (self->loop, self->transfer, self->cache,
                                                      self->data_dir): NULL;
        if (!self->stager) {
            qn_agent_log (QN_LOG_ERROR, "cannot open the blob cache in %s", blob_dir);
            ok = false;
        }
        self->cache_max = config->cache_max;
        self->keep_workdirs = config->keep_workdirs < 0? 100: (size_t) config->keep_workdirs;
        self->kept_dirs = zlistx_new ();
        self->sweeper = qn_sweeper_new ();
        if (self->kept_dirs)
            zlistx_set_destructor (self->kept_dirs, (zlistx_destructor_fn *) zstr_free);
        self->cache_keep_recent_s = config->cache_keep_recent_s < 0? 3600
                                  : config->cache_keep_recent_s;
        if (self->cache) {
            //  Downloads of attempts long gone are no resume points
            qn_blobstore_sweep_partials (self->cache, 24 * 3600);
            s_trim_cache (self);
        }
        char store_error [256] = "";
        if (ok && config->artifact_store
        &&  qn_s3_store_url_parse (config->artifact_store, &self->artifact_store, store_error,
                                   sizeof store_error) == -1) {
            qn_agent_log (QN_LOG_ERROR, "artifact store: %s", store_error);
            ok = false;
        }
        qn_backend_config_t backend_config = {
            .data_dir = self->data_dir, .host = self->host,
            .kill_grace_ms = config->kill_grace_ms, .agent_name = self->name,
            .options = config->backend_options,
            .keep_workdirs = self->keep_workdirs,
            .sweeper = self->sweeper
        };
        const char *local [] = { "local" };
        const char **names = config->backend_count? config->backends: local;
        size_t count = config->backend_count? config->backend_count: 1;
        if (count > QN_AGENT_MAX_BACKENDS) {
            qn_agent_log (QN_LOG_ERROR, "at most %d backends", QN_AGENT_MAX_BACKENDS);
            ok = false;
        }
        for (size_t b = 0; ok && b < count; b++) {
            const qn_backend_ops_t *ops = qn_backend_find (names [b]);
            for (size_t other = 0; ops && other < b; other++)
                if (self->backends [other].ops == ops)
                    ops = NULL;
            if (!ops) {
                qn_agent_log (QN_LOG_ERROR, "unknown or repeated backend '%s' (known: local, "
                              "slurm, kubernetes)", names [b]);
                ok = false;
                break;
            }
            self->backends [b].ops = ops;
            self->backends [b].state = ops->create (self->loop, &backend_config,
                                                    &self->events, self);
            if (!self->backends [b].state) {
                qn_agent_log (QN_LOG_ERROR, "the %s backend cannot start", ops->name);
                ok = false;
                break;
            }
            self->backend_count = b + 1;
        }
    }
    if (ok) {
        //  What an earlier agent left: replayed after our first Welcome
        if (qn_spool_metas (self->spool, s_take_over, self) == -1) {
            qn_agent_log (QN_LOG_ERROR, "cannot read the spool's attempts");
            ok = false;
        }
        else
        if (zhashx_size (self->attempts) > 0) {
            qn_agent_log (QN_LOG_INFO, "spool holds %zu attempt(s) with %" PRIu64 " bytes of "
                          "unacknowledged events from an earlier agent",
                          zhashx_size (self->attempts), qn_spool_committed_bytes (self->spool));
            if (s_commit (self) == -1)
                ok = false;
        }
    }
    if (ok) {
        qn_msg_prepare_socket (self->sock);
        if (self->cert) {
            zcert_apply (self->cert, self->sock);
            zsock_set_curve_serverkey (self->sock, self->server_key);
            self->monitor = s_monitor_new (self->sock, &self->monitor_endpoint);
            if (!self->monitor
            ||  zloop_reader (self->loop, self->monitor, s_monitor_readable, self) == -1) {
                qn_agent_log (QN_LOG_ERROR, "cannot monitor the coordinator connection");
                ok = false;
            }
        }
    }
    if (ok) {
        zsock_set_reconnect_ivl (self->sock, S_BACKOFF_BASE_MS);
        zsock_set_reconnect_ivl_max (self->sock, (int) self->max_backoff_ms);
        ok = zsock_connect (self->sock, "%s", self->endpoint) == 0;
        if (!ok)
            qn_agent_log (QN_LOG_ERROR, "cannot connect to %s: %s", self->endpoint,
                          zmq_strerror (zmq_errno ()));
    }
    if (ok)
        ok = zloop_reader (self->loop, self->sock, s_socket_readable, self) == 0;
    if (ok) {
        zmq_pollitem_t item = { NULL, self->signal_fd, ZMQ_POLLIN, 0 };
        ok = zloop_poller (self->loop, &item, s_signal_readable, self) == 0;
    }
    if (ok && self->stop_after_s)
        ok = zloop_timer (self->loop, S_WATCHDOG_MS, 0, s_watchdog, self) != -1;
    if (!ok) {
        qn_agent_destroy (&self);
        return NULL;
    }
    zloop_reader_set_tolerant (self->loop, self->sock);
    return self;
}

int
qn_agent_run (qn_agent_t *self)
{
    assert (self);
    self->last_rx_ms = zclock_mono ();
    s_set_heartbeat (self, self->ask_heartbeat_ms? self->ask_heartbeat_ms
                                                 : S_DEFAULT_HEARTBEAT_MS);
    s_start_registering (self);
    if (!self->exit_now)
        zloop_start (self->loop);

    if (!self->drained) {
        size_t running = 0;
        for (size_t b = 0; b < self->backend_count; b++)
            running += self->backends [b].ops->running (self->backends [b].state);
        if (running)
            qn_agent_log (QN_LOG_INFO, "stopping: killing %zu running attempt(s)", running);
        for (size_t b = 0; b < self->backend_count; b++)
            self->backends [b].ops->shutdown (self->backends [b].state, S_SHUTDOWN_GRACE_MS,
                                              self->denied? "killed: the coordinator refuses "
                                                            "this agent's key"
                                            : self->fatal? "killed: agent stopped on an error"
                                                         : "killed: agent shutting down");
    }
    //  The last events go to the spool (a later agent replays them), and
    //  out if they can
    if (s_commit (self) == 0)
        s_flush_all (self);
    if (zlistx_size (self->pending) > 0)
        qn_agent_log (QN_LOG_ERROR, "%zu event(s) could not be spooled and are lost",
                      zlistx_size (self->pending));
    zsock_set_linger (self->sock, 500);
    return self->fatal? -1: 0;
}

void
qn_agent_destroy (qn_agent_t **self_p)
{
    assert (self_p);
    qn_agent_t *self = *self_p;
    if (!self)
        return;
    for (size_t b = 0; b < self->backend_count; b++)
        if (self->backends [b].state)
            self->backends [b].ops->destroy (&self->backends [b].state);
    qn_stager_destroy (&self->stager);
    qn_sweeper_destroy (&self->sweeper);
    zlistx_destroy (&self->kept_dirs);
    qn_s3_store_url_clear (&self->artifact_store);
    qn_transfer_destroy (&self->transfer);
    qn_blobstore_destroy (&self->cache);
    zloop_destroy (&self->loop);
    s_monitor_destroy (self->sock, &self->monitor, &self->monitor_endpoint);
    zsock_destroy (&self->sock);
    zcert_destroy (&self->cert);
    free (self->server_key);
    zlistx_destroy (&self->pending);
    zhashx_destroy (&self->attempts);
    qn_spool_destroy (&self->spool);
    if (self->signal_fd != -1)
        close (self->signal_fd);
    if (self->mask_saved)
        pthread_sigmask (SIG_SETMASK, &self->saved_mask, NULL);
    for (size_t i = 0; self->label_keys && i < self->label_count; i++)
        free (self->label_keys [i]);
    for (size_t i = 0; self->label_values && i < self->label_count; i++)
        free (self->label_values [i]);
    free (self->label_keys);
    free (self->label_values);
    free (self->endpoint);
    free (self->name);
    free (self->data_dir);
    free (self);
    *self_p = NULL;
}


//  ---------------------------------------------------------------------
//  Identity: <data-dir>/agent.key

struct _qn_agent_identity_t {
    zcert_t *cert;
    char *coordinator_key;
    char *endpoint;
    char *name;
    char **label_keys;
    char **label_values;
    size_t label_count;
};

void
qn_agent_identity_destroy (qn_agent_identity_t **self_p)
{
    assert (self_p);
    qn_agent_identity_t *self = *self_p;
    if (!self)
        return;
    zcert_destroy (&self->cert);
    for (size_t i = 0; i < self->label_count; i++) {
        free (self->label_keys [i]);
        free (self->label_values [i]);
    }
    free (self->label_keys);
    free (self->label_values);
    free (self->coordinator_key);
    free (self->endpoint);
    free (self->name);
    free (self);
    *self_p = NULL;
}

zcert_t *
qn_agent_identity_cert (qn_agent_identity_t *self)
{
    assert (self);
    return self->cert;
}

const char *
qn_agent_identity_coordinator_key (qn_agent_identity_t *self)
{
    assert (self);
    return self->coordinator_key;
}

const char *
qn_agent_identity_endpoint (qn_agent_identity_t *self)
{
    assert (self);
    return self->endpoint;
}

const char *
qn_agent_identity_name (qn_agent_identity_t *self)
{
    assert (self);
    return self->name;
}

size_t
qn_agent_identity_label_count (qn_agent_identity_t *self)
{
    assert (self);
    return self->label_count;
}

const char **
qn_agent_identity_label_keys (qn_agent_identity_t *self)
{
    assert (self);
    return (const char **) self->label_keys;
}

const char **
qn_agent_identity_label_values (qn_agent_identity_t *self)
{
    assert (self);
    return (const char **) self->label_values;
}

static bool
s_z85_key_ok (const char *text)
{
    uint8_t binary [32];
    return text && strlen (text) == QN_Z85_KEY_SIZE && zmq_z85_decode (binary, text) != NULL;
}

static bool
s_name_ok (const char *name)
{
    size_t size = name? strlen (name): 0;
    if (size == 0 || size > 128)
        return false;
    for (size_t i = 0; i < size; i++) {
        char c = name [i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
              || c == '_' || c == '.' || c == '-'))
            return false;
    }
    return true;
}

//  Label text in a certificate's metadata: czmq writes a value between
//  double quotes without escaping, so quotes, the separators and
//  anything not printable are %-escaped.
static bool
s_label_byte_plain (uint8_t c)
{
    return c > 0x20 && c < 0x7f && c != '%' && c != ',' && c != '=' && c != '"'
        && c != '\'' && c != '\\' && c != '#';
}

static void
s_escape_into (zchunk_t *chunk, const char *text)
{
    for (const uint8_t *cur = (const uint8_t *) text; *cur; cur++) {
        if (s_label_byte_plain (*cur))
            zchunk_extend (chunk, cur, 1);
        else {
            char escaped [4];
            snprintf (escaped, sizeof (escaped), "%%%02X", *cur);
            zchunk_extend (chunk, escaped, 3);
        }
    }
}

//  Decodes size bytes of text; NULL on a bad escape.
static char *
s_unescape (const char *text, size_t size)
{
    char *out = (char *) malloc (size + 1);
    if (!out)
        return NULL;
    size_t at = 0;
    for (size_t i = 0; i < size; i++) {
        if (text [i] != '%') {
            out [at++] = text [i];
            continue;
        }
        unsigned int byte;
        char hex [3] = { 0, 0, 0 };
        if (i + 2 >= size) {
            free (out);
            return NULL;
        }
        hex [0] = text [i + 1];
        hex [1] = text [i + 2];
        if (!isxdigit ((unsigned char) hex [0]) || !isxdigit ((unsigned char) hex [1])
        ||  sscanf (hex, "%2x", &byte) != 1 || byte == 0) {
            free (out);
            return NULL;
        }
        out [at++] = (char) byte;
        i += 2;
    }
    out [at] = '\0';
    return out;
}

static int
s_identity_add_label (qn_agent_identity_t *self, const char *key, const char *value)
{
    char **keys = (char **) realloc (self->label_keys,
                                     (self->label_count + 1) * sizeof (char *));
    if (keys)
        self->label_keys = keys;
    char **values = (char **) realloc (self->label_values,
                                       (self->label_count + 1) * sizeof (char *));
    if (values)
        self->label_values = values;
    char *key_copy = strdup (key? key: "");
    char *value_copy = strdup (value? value: "");
    if (!keys || !values || !key_copy || !value_copy) {
        free (key_copy);
        free (value_copy);
        return -1;
    }
    self->label_keys [self->label_count] = key_copy;
    self->label_values [self->label_count] = value_copy;
    self->label_count++;
    return 0;
}

//  Parses "k=v,k=v" (escaped) into the identity's labels.
static int
s_identity_parse_labels (qn_agent_identity_t *self, const char *text)
{
    const char *cur = text;
    while (*cur) {
        const char *end = strchr (cur, ',');
        size_t size = end? (size_t) (end - cur): strlen (cur);
        const char *eq = (const char *) memchr (cur, '=', size);
        if (!eq || eq == cur)
            return -1;
        char *key = s_unescape (cur, (size_t) (eq - cur));
        char *value = s_unescape (eq + 1, size - (size_t) (eq - cur) - 1);
        int rc = key && value? s_identity_add_label (self, key, value): -1;
        free (key);
        free (value);
        if (rc == -1)
            return -1;
        if (!end)
            break;
        cur = end + 1;
    }
    return 0;
}

qn_agent_identity_t *
qn_agent_identity_load (const char *path, char **error_p)
{
    assert (path);
    assert (error_p);
    *error_p = NULL;
    struct stat st;
    if (stat (path, &st) == -1) {
        *error_p = zsys_sprintf ("cannot read %s: %s", path, strerror (errno));
        return NULL;
    }
    if (st.st_mode & 077)
        qn_agent_log (QN_LOG_WARNING, "%s is readable by others (mode %03o): it holds this "
                      "agent's secret key; chmod 600 it", path, (unsigned) (st.st_mode & 0777));
    qn_agent_identity_t *self = (qn_agent_identity_t *) calloc (1, sizeof (*self));
    if (!self) {
        *error_p = strdup ("out of memory");
        return NULL;
    }
    self->cert = zcert_load (path);
    const char *problem = NULL;
    if (!self->cert)
        problem = "not a key file";
    else {
        //  The public key must be the secret key's: a file with a public
        //  key only (or a forged one) would not get through the handshake
        uint8_t derived [32];
        char derived_txt [QN_Z85_KEY_SIZE + 1];
        if (zmq_curve_public (derived_txt, zcert_secret_txt (self->cert)) != 0
        ||  !streq (derived_txt, zcert_public_txt (self->cert))
        ||  !zmq_z85_decode (derived, derived_txt))
            problem = "its public key is not its secret key's";
        else {
            const char *key = zcert_meta (self->cert, "coordinator-key");
            const char *name = zcert_meta (self->cert, "name");
            const char *endpoint = zcert_meta (self->cert, "endpoint");
            const char *labels = zcert_meta (self->cert, "labels");
            if (!s_z85_key_ok (key))
                problem = "no valid coordinator-key";
            else
            if (!s_name_ok (name))
                problem = "no valid name";
            else {
                self->coordinator_key = strdup (key);
                self->name = strdup (name);
                self->endpoint = strdup (endpoint? endpoint: "");
                if (!self->coordinator_key || !self->name || !self->endpoint)
                    problem = "out of memory";
                else
                if (labels && s_identity_parse_labels (self, labels) == -1)
                    problem = "malformed labels";
            }
        }
    }
    if (problem) {
        *error_p = zsys_sprintf ("%s: %s (enrol again: delete it and run once with "
                                 "--join TOKEN)", path, problem);
        qn_agent_identity_destroy (&self);
    }
    return self;
}

//  Writes the identity (0600) beside path, then renames it into place,
//  so that a crash never leaves half a key file.
static int
s_identity_save (qn_agent_identity_t *self, const char *path, char **error_p)
{
    zcert_set_meta (self->cert, "coordinator-key", "%s", self->coordinator_key);
    zcert_set_meta (self->cert, "endpoint", "%s", self->endpoint);
    zcert_set_meta (self->cert, "name", "%s", self->name);
    zchunk_t *labels = zchunk_new (NULL, 256);
    if (!labels) {
        *error_p = strdup ("out of memory");
        return -1;
    }
    for (size_t i = 0; i < self->label_count; i++) {
        if (i)
            zchunk_extend (labels, ",", 1);
        s_escape_into (labels, self->label_keys [i]);
        zchunk_extend (labels, "=", 1);
        s_escape_into (labels, self->label_values [i]);
    }
    zchunk_extend (labels, "", 1);
    zcert_set_meta (self->cert, "labels", "%s", (char *) zchunk_data (labels));
    zchunk_destroy (&labels);

    char *temp = zsys_sprintf ("%s.new", path);
    if (!temp) {
        *error_p = strdup ("out of memory");
        return -1;
    }
    mode_t old = umask (077);
    unlink (temp);
    int rc = zcert_save_secret (self->cert, temp);
    umask (old);
    if (rc == 0 && chmod (temp, 0600) == 0 && rename (temp, path) == 0) {
        //  The rename must survive a crash too
        char *dir = strdup (path);
        char *slash = dir? strrchr (dir, '/'): NULL;
        if (slash) {
            *slash = '\0';
            int fd = open (*dir? dir: "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            if (fd != -1) {
                fsync (fd);
                close (fd);
            }
        }
        free (dir);
        zstr_free (&temp);
        return 0;
    }
    *error_p = zsys_sprintf ("cannot write %s: %s", path, strerror (errno));
    unlink (temp);
    zstr_free (&temp);
    return -1;
}


//  ---------------------------------------------------------------------
//  Enrolment

static int
s_send_enrol (zsock_t *sock, const qn_agent_enrol_t *request, zcert_t *cert)
{
    Qanat__Label *labels = (Qanat__Label *) calloc (request->label_count + 1,
                                                    sizeof (Qanat__Label));
    Qanat__Label **label_ptrs = (Qanat__Label **) calloc (request->label_count + 1,
                                                          sizeof (void *));
    int rc = -1;
    if (labels && label_ptrs) {
        Qanat__Enrol enrol = QANAT__ENROL__INIT;
        enrol.name = (char *) request->name;
        enrol.public_key.data = (uint8_t *) zcert_public_key (cert);
        enrol.public_key.len = 32;
        for (size_t i = 0; i < request->label_count; i++) {
            qanat__label__init (&labels [i]);
            labels [i].key = (char *) request->label_keys [i];
            labels [i].value = (char *) request->label_values [i];
            label_ptrs [i] = &labels [i];
        }
        enrol.n_labels = request->label_count;
        enrol.labels = label_ptrs;
        Qanat__Envelope env = QANAT__ENVELOPE__INIT;
        env.body_case = QANAT__ENVELOPE__BODY_ENROL;
        env.enrol = &enrol;
        zframe_t *frame = qn_msg_encode (&env);
        if (frame && zframe_send (&frame, sock, ZFRAME_DONTWAIT) == 0)
            rc = 0;
        zframe_destroy (&frame);
    }
    free (labels);
    free (label_ptrs);
    return rc;
}

//  The answer to Enrol, if this message is one: 1 = enrolled (identity
//  filled), -1 = refused (*error_p set), 0 = something else.
static int
s_enrol_answer (zmsg_t *msg, qn_agent_identity_t *identity, char **error_p)
{
    if (zmsg_size (msg) != 1)
        return 0;
    zframe_t *frame = zmsg_first (msg);
    qn_msg_status_t status;
    uint32_t version = 0;
    Qanat__Envelope *env = qn_msg_decode (zframe_data (frame), zframe_size (frame),
                                          &status, &version);
    if (!env)
        return 0;
    int rc = 0;
    if (env->body_case == QANAT__ENVELOPE__BODY_ENROLLED) {
        Qanat__Enrolled *enrolled = env->enrolled;
        rc = 1;
        if (!s_name_ok (enrolled->name)) {
            *error_p = strdup ("the coordinator answered with an invalid agent name");
            rc = -1;
        }
        else
        if (!(identity->name = strdup (enrolled->name)))
            rc = -1;
        for (size_t i = 0; rc == 1 && i < enrolled->n_labels; i++)
            if (!enrolled->labels [i]
            ||  s_identity_add_label (identity, enrolled->labels [i]->key,
                                      enrolled->labels [i]->value) == -1)
                rc = -1;
        if (rc == -1 && !*error_p)
            *error_p = strdup ("out of memory");
    }
    else
    if (env->body_case == QANAT__ENVELOPE__BODY_REFUSAL) {
        const char *message = env->refusal->message && *env->refusal->message
                            ? env->refusal->message: "no reason given";
        if (env->refusal->code == QANAT__REFUSAL_CODE__REFUSAL_BAD_VERSION)
            *error_p = zsys_sprintf ("the coordinator refused our protocol version: %s", message);
        else
            *error_p = zsys_sprintf ("enrolment refused: %s", message);
        rc = -1;
    }
    qn_msg_free (&env);
    return rc;
}

qn_agent_identity_t *
qn_agent_enrol (const qn_agent_enrol_t *request, char **error_p)
{
    assert (request);
    assert (request->token);
    assert (request->path);
    assert (error_p);
    *error_p = NULL;
    qn_token_t token;
    const char *problem = NULL;
    if (qn_token_parse (request->token, &token, &problem) == -1) {
        *error_p = zsys_sprintf ("bad join token: %s", problem? problem: "malformed");
        return NULL;
    }
    const char *endpoint = request->endpoint && *request->endpoint? request->endpoint
                                                                  : token.endpoint;
    if (!*endpoint) {
        *error_p = strdup ("the join token names no endpoint: give --coordinator");
        return NULL;
    }
    if (!s_name_ok (request->name)) {
        *error_p = zsys_sprintf ("agent name '%s': use 1 to 128 letters, digits, '_', '.' "
                                 "or '-'", request->name? request->name: "");
        return NULL;
    }
    qn_agent_identity_t *identity = (qn_agent_identity_t *) calloc (1, sizeof (*identity));
    uint8_t token_public [32], token_secret [32];
    zcert_t *token_cert = NULL;
    zsock_t *sock = NULL;
    zsock_t *monitor = NULL;
    char *monitor_endpoint = NULL;
    zpoller_t *poller = NULL;
    if (identity) {
        identity->cert = zcert_new ();
        identity->coordinator_key = strdup (token.coordinator_key);
        identity->endpoint = strdup (endpoint);
    }
    if (zmq_z85_decode (token_public, token.public_key)
    &&  zmq_z85_decode (token_secret, token.secret_key))
        token_cert = zcert_new_from (token_public, token_secret);
    explicit_bzero (token_secret, sizeof (token_secret));
    if (identity && identity->cert && identity->coordinator_key && identity->endpoint
    &&  token_cert && (sock = zsock_new (ZMQ_DEALER))) {
        qn_msg_prepare_socket (sock);
        zcert_apply (token_cert, sock);
        zsock_set_curve_serverkey (sock, token.coordinator_key);
        zsock_set_reconnect_ivl (sock, 250);
        zsock_set_reconnect_ivl_max (sock, 1000);
        monitor = s_monitor_new (sock, &monitor_endpoint);
        if (monitor)
            poller = zpoller_new (sock, monitor, NULL);
    }
    //  The token's secret goes; its endpoint lives on in the identity
    explicit_bzero (&token, sizeof (token));
    endpoint = identity && identity->endpoint? identity->endpoint: "";
    if (!poller)
        *error_p = strdup ("cannot set up the enrolment connection (out of memory?)");
    else
    if (zsock_connect (sock, "%s", endpoint) == -1)
        *error_p = zsys_sprintf ("cannot connect to %s: %s", endpoint,
                                 zmq_strerror (zmq_errno ()));

    //  One Enrol per connection that got through the handshake: a
    //  message queued on a connection that then dies is lost, and a
    //  second one on a live connection would meet a spent token.
    int timeout = request->timeout_ms > 0? request->timeout_ms: QN_AGENT_ENROL_TIMEOUT_MS;
    int64_t deadline = zclock_mono () + timeout;
    bool connected = false;
    bool sent = false;
    size_t enrols = 0;
    size_t handshake_failures = 0;
    int answer = 0;
    char *late_refusal = NULL;
    while (!*error_p && answer == 0 && zclock_mono () < deadline) {
        if (connected && !sent && s_send_enrol (sock, request, identity->cert) == 0) {
            sent = true;
            enrols++;
            qn_agent_log (QN_LOG_INFO, "enrolling as %s with %s", request->name, endpoint);
        }
        int64_t wait = deadline - zclock_mono ();
        if (wait > 100)
            wait = 100;
        void *which = zpoller_wait (poller, wait > 0? (int) wait: 0);
        if (which == monitor) {
            uint16_t event;
            uint32_t value;
            if (s_monitor_read (monitor, &event, &value) == -1)
                continue;
            if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
                connected = true;
                sent = false;
            }
            else
            if (event == ZMQ_EVENT_DISCONNECTED)
                connected = false;
            else
            if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH && value == 400)
                *error_p = strdup ("enrolment refused: the coordinator does not admit this "
                                   "join token (used up, expired, or never made there)");
            else
                handshake_failures++;
        }
        else
        if (which == sock) {
            zmsg_t *msg = zmsg_recv (sock);
            if (!msg)
                continue;
            char *refusal = NULL;
            answer = s_enrol_answer (msg, identity, &refusal);
            zmsg_destroy (&msg);
            if (answer == -1 && enrols > 1 && !identity->name) {
                //  The refusal may answer a second Enrol after the first
                //  was granted: wait a moment for the Enrolled
                qn_agent_log (QN_LOG_DEBUG, "%s", refusal? refusal: "refused");
                int64_t grace = zclock_mono () + 1000;
                if (deadline > grace)
                    deadline = grace;
                zstr_free (&late_refusal);
                late_refusal = refusal;
                answer = 0;
                continue;
            }
            if (answer == -1)
                *error_p = refusal? refusal: strdup ("enrolment refused");
            else
                zstr_free (&refusal);
        }
        else
        if (zpoller_terminated (poller))
            *error_p = strdup ("interrupted");
    }
    if (answer == 0 && !*error_p && late_refusal) {
        *error_p = late_refusal;
        late_refusal = NULL;
    }
    zstr_free (&late_refusal);
    if (answer == 0 && !*error_p)
        *error_p = zsys_sprintf ("could not reach the coordinator at %s to enrol (is the "
                                 "token's coordinator key right? expired token?)%s", endpoint,
                                 handshake_failures? " (the CURVE handshake failed)": "");
    if (answer == 1 && s_identity_save (identity, request->path, error_p) == 0)
        qn_agent_log (QN_LOG_INFO, "enrolled as %s; identity saved in %s", identity->name,
                      request->path);
    else
        qn_agent_identity_destroy (&identity);
    zpoller_destroy (&poller);
    s_monitor_destroy (sock, &monitor, &monitor_endpoint);
    zsock_destroy (&sock);
    zcert_destroy (&token_cert);
    return identity;
}
