/*  qn_agent - the agent engine.  See qn_agent.h.

    State of the conversation: we are either registered (a Welcome came
    after our last Register, and the coordinator has not gone quiet) or
    not.  Only a registered agent sends events and credit; an agent that
    is not registered buffers, and sends Register every heartbeat.

    Every event of an attempt is encoded once into a frame and kept in the
    attempt's outbox until an Ack covers it.  "sent" marks how far the
    outbox went out on the current connection; a Welcome rewinds it to
    the acknowledged seq, which replays the rest.  Sends never block: when
    libzmq's queue is full we retry from a short timer.
*/
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include "qn_agent.h"
#include "qn_backend.h"
#include "qn_msg.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
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
#define S_SHUTDOWN_GRACE_MS     2000
#define S_RECV_BURST            256     //  messages handled per wakeup

typedef struct {
    uint64_t seq;
    zframe_t *frame;            //  encoded Envelope{Event}
} s_event_t;

typedef struct {
    qn_attempt_key_t key;
    uint64_t next_seq;          //  seq the next event gets
    uint64_t acked;             //  every event up to here is committed
    uint64_t sent;              //  sent on the current registration
    zlistx_t *events;           //  s_event_t, in seq order, all > acked
    bool running;               //  the backend has not finished it yet
} s_attempt_t;

struct _qn_agent_t {
    char *endpoint;
    char *name;
    char *data_dir;
    char **label_keys;
    char **label_values;
    size_t label_count;
    uint32_t slots;
    size_t outbox_limit;
    char host [256];

    zsock_t *sock;
    zloop_t *loop;
    const qn_backend_ops_t *backend_ops;
    void *backend;
    qn_backend_events_t events;

    zhashx_t *attempts;         //  "run/task/attempt" -> s_attempt_t
    size_t outbox_bytes;
    bool paused;                //  back-pressure applied

    bool registered;
    uint32_t heartbeat_ms;
    int heartbeat_timer;
    int64_t last_rx_ms;
    int64_t last_register_ms;
    bool retry_armed;
    bool fatal;
    uint64_t malformed;
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
//  Attempts and their outboxes

static void
s_key_string (const qn_attempt_key_t *key, char *buffer, size_t size)
{
    snprintf (buffer, size, "%" PRIu64 "/%u/%u", key->run_id, key->task_index, key->attempt);
}

static void
s_event_destroy (s_event_t **self_p)
{
    if (*self_p) {
        zframe_destroy (&(*self_p)->frame);
        free (*self_p);
        *self_p = NULL;
    }
}

static void
s_attempt_destroy (s_attempt_t **self_p)
{
    s_attempt_t *self = *self_p;
    if (!self)
        return;
    s_event_t *event;
    while ((event = (s_event_t *) zlistx_detach (self->events, NULL)))
        s_event_destroy (&event);
    zlistx_destroy (&self->events);
    free (self);
    *self_p = NULL;
}

static void
s_attempt_destructor (void **item)
{
    s_attempt_destroy ((s_attempt_t **) item);
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
    attempt->running = true;
    attempt->events = zlistx_new ();
    if (!attempt->events) {
        free (attempt);
        return NULL;
    }
    char name [64];
    s_key_string (key, name, sizeof (name));
    if (zhashx_insert (self->attempts, name, attempt) == -1) {
        s_attempt_destroy (&attempt);
        return NULL;
    }
    return attempt;
}

//  An attempt is forgotten once it ended and all its events are committed.
static void
s_attempt_maybe_forget (qn_agent_t *self, s_attempt_t *attempt)
{
    if (attempt->running || zlistx_size (attempt->events) > 0)
        return;
    char name [64];
    s_key_string (&attempt->key, name, sizeof (name));
    zhashx_delete (self->attempts, name);
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


//  ---------------------------------------------------------------------
//  Sending

static int s_retry (zloop_t *loop, int timer_id, void *arg);

//  Sends a copy of frame without blocking.  Returns 0, or -1 when libzmq
//  would block (queue full) or failed.
static int
s_send_frame (qn_agent_t *self, zframe_t *frame)
{
    zframe_t *copy = zframe_dup (frame);
    if (!copy)
        return -1;
    if (zframe_send (&copy, self->sock, ZFRAME_DONTWAIT) == -1) {
        zframe_destroy (&copy);
        return -1;
    }
    return 0;
}

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

static void
s_arm_retry (qn_agent_t *self)
{
    if (self->retry_armed)
        return;
    if (zloop_timer (self->loop, S_RETRY_MS, 1, s_retry, self) != -1)
        self->retry_armed = true;
}

//  Sends the attempt's events after "sent", in seq order.  The common case
//  is one new event at the tail, so we find the first unsent one walking
//  back from the end.  Returns -1 when the socket is full.
static int
s_flush_attempt (qn_agent_t *self, s_attempt_t *attempt)
{
    if (!self->registered)
        return 0;
    s_event_t *event = (s_event_t *) zlistx_last (attempt->events);
    if (!event || event->seq <= attempt->sent)
        return 0;
    //  Walk back to the last sent event (or the list's head)...
    s_event_t *prev;
    while ((prev = (s_event_t *) zlistx_prev (attempt->events)) && prev->seq > attempt->sent)
        ;
    //  ...so that the next one is the first unsent
    event = (s_event_t *) zlistx_next (attempt->events);
    while (event) {
        if (s_send_frame (self, event->frame) == -1) {
            s_arm_retry (self);
            return -1;
        }
        attempt->sent = event->seq;
        event = (s_event_t *) zlistx_next (attempt->events);
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
    return 0;
}

static void
s_update_pressure (qn_agent_t *self)
{
    if (!self->paused && self->outbox_bytes > self->outbox_limit) {
        self->paused = true;
        qn_agent_log (QN_LOG_WARNING, "%zu bytes of events wait for acknowledgement; "
                      "pausing task output", self->outbox_bytes);
        self->backend_ops->set_paused (self->backend, true);
    }
    else
    if (self->paused && self->outbox_bytes <= self->outbox_limit / 4 * 3) {
        self->paused = false;
        qn_agent_log (QN_LOG_INFO, "events acknowledged; resuming task output");
        self->backend_ops->set_paused (self->backend, false);
    }
}

//  Stamps the event with the attempt's next seq, stores it in the outbox
//  and sends it if we can.
static void
s_post_event (qn_agent_t *self, s_attempt_t *attempt, Qanat__Event *event)
{
    Qanat__AttemptRef ref;
    s_attempt_ref (&attempt->key, &ref);
    event->attempt = &ref;
    event->seq = attempt->next_seq;
    Qanat__Envelope env = QANAT__ENVELOPE__INIT;
    env.body_case = QANAT__ENVELOPE__BODY_EVENT;
    env.event = event;
    zframe_t *frame = qn_msg_encode (&env);
    s_event_t *entry = frame? (s_event_t *) calloc (1, sizeof (s_event_t)): NULL;
    if (!entry || !zlistx_add_end (attempt->events, entry)) {
        //  Only an oversized event (impossible: we cut lines at 8 KiB, and
        //  stack traces are bounded) or no memory gets here
        qn_agent_log (QN_LOG_ERROR, "cannot store an event; dropping it");
        zframe_destroy (&frame);
        free (entry);
        return;
    }
    entry->seq = attempt->next_seq++;
    entry->frame = frame;
    self->outbox_bytes += zframe_size (frame);
    s_flush_attempt (self, attempt);
    s_update_pressure (self);
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

static void
s_send_register (qn_agent_t *self)
{
    //  Every attempt we still hold: running, or finished with events the
    //  coordinator has not acknowledged (its Finished comes in the replay).
    //  Either way the coordinator must not declare it lost.
    size_t running = zhashx_size (self->attempts);
    Qanat__Label *labels = (Qanat__Label *) calloc (self->label_count + 1, sizeof (Qanat__Label));
    Qanat__Label **label_ptrs = (Qanat__Label **) calloc (self->label_count + 1, sizeof (void *));
    Qanat__AttemptRef *refs = (Qanat__AttemptRef *) calloc (running + 1, sizeof (Qanat__AttemptRef));
    Qanat__AttemptRef **ref_ptrs = (Qanat__AttemptRef **) calloc (running + 1, sizeof (void *));
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
        char *backends [] = { (char *) self->backend_ops->name };
        reg.n_backends = 1;
        reg.backends = backends;
        reg.capacity = self->slots;
        size_t count = 0;
        s_attempt_t *attempt = (s_attempt_t *) zhashx_first (self->attempts);
        while (attempt && count < running) {
            s_attempt_ref (&attempt->key, &refs [count]);
            ref_ptrs [count] = &refs [count];
            count++;
            attempt = (s_attempt_t *) zhashx_next (self->attempts);
        }
        reg.n_running = count;
        reg.running = ref_ptrs;
        reg.version = (char *) PACKAGE_VERSION;
        Qanat__Envelope env = QANAT__ENVELOPE__INIT;
        env.body_case = QANAT__ENVELOPE__BODY_REGISTER;
        env.register_ = &reg;
        if (s_send (self, &env) == 0)
            qn_agent_log (QN_LOG_DEBUG, "sent Register (%zu running)", count);
    }
    free (labels);
    free (label_ptrs);
    free (refs);
    free (ref_ptrs);
    self->last_register_ms = zclock_mono ();
}

static void
s_send_heartbeat (qn_agent_t *self)
{
    Qanat__Heartbeat beat = QANAT__HEARTBEAT__INIT;
    beat.running = (uint32_t) s_running (self);
    Qanat__Envelope env = QANAT__ENVELOPE__INIT;
    env.body_case = QANAT__ENVELOPE__BODY_HEARTBEAT;
    env.heartbeat = &beat;
    s_send (self, &env);
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
              const char *host, const char *workdir)
{
    qn_agent_t *self = (qn_agent_t *) arg;
    s_attempt_t *attempt = s_callback_attempt (self, key);
    if (!attempt)
        return;
    Qanat__Started started = QANAT__STARTED__INIT;
    started.pid = pid;
    started.host = (char *) (host? host: "");
    started.workdir = (char *) (workdir? workdir: "");
    Qanat__Event event = QANAT__EVENT__INIT;
    event.body_case = QANAT__EVENT__BODY_STARTED;
    event.started = &started;
    s_post_event (self, attempt, &event);
}

static void
s_on_log (void *arg, const qn_attempt_key_t *key, Qanat__Stream stream,
          const void *data, size_t size, bool partial, int64_t time_us)
{
    qn_agent_t *self = (qn_agent_t *) arg;
    s_attempt_t *attempt = s_callback_attempt (self, key);
    if (!attempt)
        return;
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
}

static void
s_on_metric (void *arg, const qn_attempt_key_t *key, const char *name,
             double value, int64_t step, bool has_step, int64_t time_us)
{
    qn_agent_t *self = (qn_agent_t *) arg;
    s_attempt_t *attempt = s_callback_attempt (self, key);
    if (!attempt)
        return;
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
}

static void
s_on_finished (void *arg, const qn_attempt_key_t *key, int exit_code,
               int signal, const char *stack_trace, const char *reason)
{
    qn_agent_t *self = (qn_agent_t *) arg;
    s_attempt_t *attempt = s_callback_attempt (self, key);
    if (!attempt)
        return;
    Qanat__Finished finished = QANAT__FINISHED__INIT;
    finished.exit_code = exit_code;
    finished.signal = signal;
    finished.stack_trace = (char *) (stack_trace? stack_trace: "");
    finished.reason = (char *) (reason? reason: "");
    Qanat__Event event = QANAT__EVENT__INIT;
    event.body_case = QANAT__EVENT__BODY_FINISHED;
    event.finished = &finished;
    s_post_event (self, attempt, &event);
    attempt->running = false;
    qn_agent_log (QN_LOG_INFO, "attempt %" PRIu64 "/%u/%u finished: exit code %d%s%s",
                  key->run_id, key->task_index, key->attempt, exit_code,
                  *finished.reason? ", ": "", finished.reason);
    //  While not registered the credit is recomputed at the next Welcome
    if (self->registered)
        s_send_credit (self, 1);
}


//  ---------------------------------------------------------------------
//  Messages from the coordinator

static void
s_handle_welcome (qn_agent_t *self, Qanat__Welcome *welcome);

static void
s_set_heartbeat (qn_agent_t *self, uint32_t heartbeat_ms);

static void
s_handle_welcome (qn_agent_t *self, Qanat__Welcome *welcome)
{
    uint32_t beat = welcome->heartbeat_ms? welcome->heartbeat_ms: S_DEFAULT_HEARTBEAT_MS;
    if (beat < S_MIN_HEARTBEAT_MS)
        beat = S_MIN_HEARTBEAT_MS;
    if (beat > S_MAX_HEARTBEAT_MS)
        beat = S_MAX_HEARTBEAT_MS;
    s_set_heartbeat (self, beat);
    //  Several Registers may be answered by several Welcomes; credit and
    //  replay go once, after the first, and since they follow every
    //  Register we sent on the same connection, the coordinator sees them
    //  after its last reset of our credit.
    if (self->registered) {
        qn_agent_log (QN_LOG_DEBUG, "extra Welcome ignored");
        return;
    }
    self->registered = true;
    qn_agent_log (QN_LOG_INFO, "registered with the coordinator as %s (heartbeat %u ms)",
                  welcome->agent_name && *welcome->agent_name? welcome->agent_name: self->name,
                  beat);
    size_t running = s_running (self);
    if (self->slots > running)
        s_send_credit (self, (uint32_t) (self->slots - running));
    s_attempt_t *attempt = (s_attempt_t *) zhashx_first (self->attempts);
    while (attempt) {
        attempt->sent = attempt->acked;
        attempt = (s_attempt_t *) zhashx_next (self->attempts);
    }
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
    //  Never acknowledge what does not exist yet
    uint64_t seq = ack->seq < attempt->next_seq? ack->seq: attempt->next_seq - 1;
    if (seq <= attempt->acked)
        return;
    attempt->acked = seq;
    if (attempt->sent < seq)
        attempt->sent = seq;
    s_event_t *event;
    while ((event = (s_event_t *) zlistx_first (attempt->events)) && event->seq <= seq) {
        zlistx_detach_cur (attempt->events);
        self->outbox_bytes -= zframe_size (event->frame);
        s_event_destroy (&event);
    }
    s_update_pressure (self);
    s_attempt_maybe_forget (self, attempt);
}

//  Reports an attempt that never started: Started with pid 0, the reason
//  on the system stream, and Finished.
static void
s_fail_start (qn_agent_t *self, s_attempt_t *attempt, const char *error)
{
    char reason [600];
    snprintf (reason, sizeof (reason), "cannot start: %.500s", error);
    s_on_started (self, &attempt->key, 0, self->host, "");
    s_on_log (self, &attempt->key, QANAT__STREAM__STREAM_SYSTEM, reason, strlen (reason),
              false, qn_now_us ());
    s_on_finished (self, &attempt->key, -1, 0, "", reason);
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
    size_t running = s_running (self);
    if (running >= self->slots)
        qn_agent_log (QN_LOG_WARNING, "Assign beyond our %u slots; running it anyway",
                      self->slots);
    s_attempt_t *attempt = s_attempt_create (self, &key);
    if (!attempt) {
        qn_agent_log (QN_LOG_ERROR, "out of memory accepting an Assign");
        return;
    }
    char error [512] = "";
    if (self->backend_ops->start (self->backend, assign, error, sizeof (error)) == -1) {
        qn_agent_log (QN_LOG_WARNING, "attempt %" PRIu64 "/%u/%u cannot start: %s",
                      key.run_id, key.task_index, key.attempt, error);
        s_fail_start (self, attempt, error);
    }
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
    if (!attempt || !attempt->running
    ||  self->backend_ops->cancel (self->backend, &key, cancel->reason? cancel->reason: "") == -1) {
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
            //  The coordinator lost us (it restarted); one Register per
            //  heartbeat is enough however many refusals come
            if (self->registered
            ||  zclock_mono () - self->last_register_ms >= self->heartbeat_ms) {
                qn_agent_log (QN_LOG_INFO, "coordinator does not know us; registering again");
                self->registered = false;
                s_send_register (self);
            }
            return 0;
        case QANAT__REFUSAL_CODE__REFUSAL_BAD_VERSION:
            qn_agent_log (QN_LOG_ERROR, "coordinator refused our protocol version: %s", message);
            self->fatal = true;
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
        if (rc == -1)
            return -1;
    }
    return 0;
}


//  ---------------------------------------------------------------------
//  Heartbeat

static int
s_heartbeat (zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    (void) timer_id;
    qn_agent_t *self = (qn_agent_t *) arg;
    int64_t now = zclock_mono ();
    if (self->registered
    &&  now - self->last_rx_ms > (int64_t) S_SILENCE_BEATS * self->heartbeat_ms) {
        qn_agent_log (QN_LOG_WARNING, "no word from the coordinator for %" PRId64 " ms; "
                      "registering again", now - self->last_rx_ms);
        self->registered = false;
    }
    if (self->registered)
        s_send_heartbeat (self);
    else
        s_send_register (self);
    return 0;
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


//  ---------------------------------------------------------------------
//  Life cycle

static char *
s_strdup_or_empty (const char *text)
{
    return strdup (text? text: "");
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
    self->backend_ops = &qn_backend_local;
    if (gethostname (self->host, sizeof (self->host) - 1) == -1)
        snprintf (self->host, sizeof (self->host), "localhost");
    self->endpoint = strdup (config->endpoint);
    self->name = strdup (config->name && *config->name? config->name: self->host);
    self->data_dir = strdup (config->data_dir);
    self->slots = config->slots? config->slots: 1;
    self->outbox_limit = config->outbox_limit? config->outbox_limit: QN_AGENT_OUTBOX_LIMIT;
    self->label_count = config->label_count;
    self->label_keys = (char **) calloc (config->label_count + 1, sizeof (char *));
    self->label_values = (char **) calloc (config->label_count + 1, sizeof (char *));
    bool ok = self->endpoint && self->name && self->data_dir
           && self->label_keys && self->label_values;
    for (size_t i = 0; ok && i < config->label_count; i++) {
        self->label_keys [i] = s_strdup_or_empty (config->label_keys [i]);
        self->label_values [i] = s_strdup_or_empty (config->label_values [i]);
        ok = self->label_keys [i] && self->label_values [i];
    }
    if (ok) {
        self->attempts = zhashx_new ();
        self->loop = zloop_new ();
        self->sock = zsock_new (ZMQ_DEALER);
        ok = self->attempts && self->loop && self->sock;
    }
    if (ok) {
        zhashx_set_destructor (self->attempts, s_attempt_destructor);
        qn_msg_prepare_socket (self->sock);
        ok = zsock_connect (self->sock, "%s", self->endpoint) == 0;
        if (!ok)
            qn_agent_log (QN_LOG_ERROR, "cannot connect to %s: %s", self->endpoint,
                          zmq_strerror (zmq_errno ()));
    }
    if (ok) {
        self->events.started = s_on_started;
        self->events.log = s_on_log;
        self->events.metric = s_on_metric;
        self->events.finished = s_on_finished;
        qn_backend_config_t backend_config = {
            self->data_dir, self->host, config->kill_grace_ms
        };
        self->backend = self->backend_ops->create (self->loop, &backend_config,
                                                   &self->events, self);
        ok = self->backend != NULL;
    }
    if (ok)
        ok = zloop_reader (self->loop, self->sock, s_socket_readable, self) == 0;
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
    s_set_heartbeat (self, S_DEFAULT_HEARTBEAT_MS);
    s_send_register (self);
    zloop_start (self->loop);

    qn_agent_log (QN_LOG_INFO, "stopping: killing %zu running attempt(s)",
                  self->backend_ops->running (self->backend));
    self->backend_ops->shutdown (self->backend, S_SHUTDOWN_GRACE_MS,
                                 self->fatal? "killed: agent stopped on an error"
                                            : "killed: agent shutting down");
    //  Best effort: let the last events leave before the socket closes
    s_flush_all (self);
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
    if (self->backend)
        self->backend_ops->destroy (&self->backend);
    zloop_destroy (&self->loop);
    zsock_destroy (&self->sock);
    zhashx_destroy (&self->attempts);
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
