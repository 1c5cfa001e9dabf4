/*  qn_agent - the agent engine.  See qn_agent.h.

    One of the files of the qn_agent class, with qn_agent_events.c; the
    engine's state is in qn_agent_internal.h.

    State of the conversation (qn_agent_registration_t): we are either
    registered (a Welcome came after our last Register, and the
    coordinator has not gone quiet) or registering.  Only a registered
    agent sends events and credit; an agent that is not registered
    spools, and sends Register with backoff.

    Events and the spool: a backend callback builds the event and posts
    it to the outbox (qn_outbox), which stamps it with the attempt's next
    seq, commits it to the spool at the start of the next loop turn (one
    transaction for everything the turn produced) and only then hands it
    to us to send.  A Welcome replays what is not acknowledged.  Sends
    never block: when libzmq's queue is full we retry from a short timer.

    Attempts and their life: qn_attempt.
*/
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include "qn_agent_internal.h"
#include "qn_log.h"
#include "qn_s3.h"
#include "qn_backend.h"
#include "qn_blobstore.h"
#include "qn_transfer.h"
#include "qn_stager.h"
#include "qn_sweeper.h"
#include "qn_resources.h"
#include "qn_msg.h"
#include "qn_spool.h"
#include "qn_attempt.h"
#include "qn_outbox.h"
#include "qn_redact.h"
#include "qn_handshake.h"
#include "qn_token.h"

#include <errno.h>
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


//  ---------------------------------------------------------------------
//  Sending

static bool
s_registered (qn_agent_t *self)
{
    return self->registration == QN_AGENT_REGISTERED;
}

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
        qn_log (QN_LOG_DEBUG, "agent", "could not send a message: %s", zmq_strerror (zmq_errno ()));
    }
    return rc;
}

//  qn_transfer's way out: blob messages go straight to the socket
static int
s_transfer_send (void *arg, Qanat__Envelope *envelope)
{
    qn_agent_t *self = (qn_agent_t *) arg;
    if (!s_registered (self))
        return -1;
    return s_send (self, envelope);
}

//  Sends what the outbox has committed, while we are registered; when
//  libzmq's queue is full we retry from a short timer
static void s_arm_retry (qn_agent_t *self);

static void
s_flush_all (qn_agent_t *self)
{
    if (s_registered (self) && qn_outbox_flush (self->outbox) == -1)
        s_arm_retry (self);
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

//  The outbox's way out: one spooled event, never blocking
static int
s_send_event (void *arg, const void *data, size_t size)
{
    qn_agent_t *self = (qn_agent_t *) arg;
    zframe_t *frame = s_event_frame (data, size);
    if (!frame || zframe_send (&frame, self->sock, ZFRAME_DONTWAIT) == -1) {
        zframe_destroy (&frame);
        return -1;
    }
    return 0;
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

//  Credit goes out only while we may take work: registered, spool not
//  full, not draining.  What we could not announce waits here.
static void
s_pay_credit (qn_agent_t *self)
{
    if (!s_registered (self) || qn_outbox_full (self->outbox) || self->draining
    ||  self->owed_credit == 0)
        return;
    Qanat__Credit credit = QANAT__CREDIT__INIT;
    credit.slots = self->owed_credit;
    Qanat__Envelope env = QANAT__ENVELOPE__INIT;
    env.body_case = QANAT__ENVELOPE__BODY_CREDIT;
    env.credit = &credit;
    s_send (self, &env);
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
        qn_log (QN_LOG_INFO, "agent", "draining: told the coordinator to send no new work");
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
        if (self->resources)        //  the machine, for the local backend
            qn_resources_register (self->resources, &reg);
        size_t count = 0;
        qn_attempt_t *attempt = (qn_attempt_t *) zhashx_first (self->attempts);
        while (attempt && count < held) {
            qn_attempt_ref (&attempt->key, &refs [count]);
            ref_ptrs [count] = &refs [count];
            count++;
            attempt = (qn_attempt_t *) zhashx_next (self->attempts);
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
            qn_log (QN_LOG_DEBUG, "agent", "sent Register (%zu held%s)", count,
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
    if (!s_registered (self)) {
        s_send_register (self);
        s_schedule_register (self);
    }
    return self->exit_now? -1: 0;
}

//  We are not registered (any more): Register now, then with backoff.
static void
s_start_registering (qn_agent_t *self)
{
    self->registration = QN_AGENT_REGISTERING;
    if (self->transfer)
        qn_transfer_disconnected (self->transfer);
    s_send_register (self);
    s_schedule_register (self);
}

static void
s_send_heartbeat (qn_agent_t *self)
{
    Qanat__Heartbeat beat = QANAT__HEARTBEAT__INIT;
    beat.running = (uint32_t) qn_attempt_table_running (self->attempts);
    beat.spool_bytes = qn_outbox_bytes (self->outbox);
    beat.spool_full = qn_outbox_full (self->outbox);
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
s_arm_commit (void *arg)
{
    qn_agent_t *self = (qn_agent_t *) arg;
    if (self->commit_armed || self->commit_retry_armed)
        return;
    if (zloop_timer (self->loop, 0, 1, s_commit_timer, self) != -1)
        self->commit_armed = true;
}

//  Back-pressure from the outbox: the tasks' output pauses or resumes
static void
s_set_paused (void *arg, bool paused)
{
    qn_agent_t *self = (qn_agent_t *) arg;
    for (size_t b = 0; b < self->backend_count; b++)
        self->backends [b].ops->set_paused (self->backends [b].state, paused);
}

//  The spool has room again: the credit we owe may go out
static void
s_spool_room (void *arg)
{
    s_pay_credit ((qn_agent_t *) arg);
}

static void s_check_drained (qn_agent_t *self);

static int s_commit_retry (zloop_t *loop, int timer_id, void *arg);

//  Commits, then sends what was committed, announces credit and checks
//  whether a drain is complete.
static void
s_commit_and_send (qn_agent_t *self)
{
    if (qn_outbox_commit (self->outbox) == -1) {
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
    for (qn_attempt_t *attempt = (qn_attempt_t *) zhashx_first (self->attempts); attempt;
         attempt = (qn_attempt_t *) zhashx_next (self->attempts)) {
        if (attempt->state != QN_ATTEMPT_REATTACHING)
            continue;
        qn_attempt_advance (attempt, QN_ATTEMPT_RUNNING);
        Qanat__Assign *held = NULL;
        for (size_t i = 0; i < welcome->n_held && !held; i++) {
            Qanat__AttemptRef *ref = welcome->held [i]? welcome->held [i]->attempt: NULL;
            if (ref && ref->run_id == attempt->key.run_id
            &&  ref->task_index == attempt->key.task_index && ref->attempt == attempt->key.attempt)
                held = welcome->held [i];
        }
        Qanat__AttemptRef ref;
        qn_attempt_ref (&attempt->key, &ref);
        Qanat__Assign bare = QANAT__ASSIGN__INIT;
        bare.attempt = &ref;
        bare.task_name = attempt->task_name;
        Qanat__Assign *assign = held? held: &bare;
        if (held && !attempt->redactor) {
            bool failed = false;
            attempt->redactor = qn_redact_new (held->redact, held->n_redact, &failed);
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
        qn_agent_backend_t *backend = &self->backends [attempt->backend];
        char error [512] = "";
        if (backend->ops->reattach (backend->state, assign, attempt->engine_job_id,
                                    attempt->cursor, error, sizeof (error)) == -1) {
            qn_log (QN_LOG_WARNING, "agent", "cannot re-attach attempt %" PRIu64 "/%u/%u to %s "
                          "job %s: %s", attempt->key.run_id, attempt->key.task_index,
                          attempt->key.attempt, backend->ops->name, attempt->engine_job_id, error);
            char reason [700];
            snprintf (reason, sizeof (reason), "agent restarted and could not re-attach to "
                      "%s job %s: %s", backend->ops->name, attempt->engine_job_id, error);
            qn_agent_on_finished (self, &attempt->key, -1, 0, "", reason,
                                  QANAT__END_KIND__END_LOST);
            continue;
        }
        qn_log (QN_LOG_INFO, "agent", "re-attached attempt %" PRIu64 "/%u/%u to %s job %s",
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
    if (s_registered (self)) {
        qn_log (QN_LOG_DEBUG, "agent", "extra Welcome ignored");
        return;
    }
    self->registration = QN_AGENT_REGISTERED;
    self->backoff_step = 0;
    self->cut_off_stopped = false;
    if (self->register_timer != -1) {
        zloop_timer_end (self->loop, self->register_timer);
        self->register_timer = -1;
    }
    qn_log (QN_LOG_INFO, "agent", "registered with the coordinator as %s (heartbeat %u ms, "
                  "suspect after %u ms, lost after %u ms)",
                  welcome->agent_name && *welcome->agent_name? welcome->agent_name: self->name,
                  beat, welcome->suspect_after_ms, welcome->lost_after_ms);
    if (self->draining)
        s_send_drain (self);
    s_reattach_all (self, welcome);
    qn_transfer_reconnected (self->transfer);
    size_t running = qn_attempt_table_running (self->attempts);
    self->owed_credit = self->slots > running? (uint32_t) (self->slots - running): 0;
    s_pay_credit (self);
    size_t replay = qn_outbox_replay (self->outbox);
    if (replay)
        qn_log (QN_LOG_INFO, "agent", "replaying %zu unacknowledged event(s) of %zu attempt(s)",
                      replay, zhashx_size (self->attempts));
    s_flush_all (self);
}

static void
s_handle_ack (qn_agent_t *self, Qanat__Ack *ack)
{
    if (!ack->attempt) {
        self->malformed++;
        qn_log (QN_LOG_DEBUG, "agent", "Ack without an attempt ignored");
        return;
    }
    qn_attempt_key_t key = { ack->attempt->run_id, ack->attempt->task_index,
                             ack->attempt->attempt };
    qn_attempt_t *attempt = qn_attempt_lookup (self->attempts, &key);
    if (!attempt) {
        qn_log (QN_LOG_DEBUG, "agent", "Ack for unknown attempt %" PRIu64 "/%u/%u ignored",
                      key.run_id, key.task_index, key.attempt);
        return;
    }
    qn_outbox_ack (self->outbox, attempt, ack->seq);
}

//  Reports an attempt that never started: Started with pid 0, the reason
//  on the system stream, and Finished.
static void
s_fail_start (qn_agent_t *self, qn_attempt_t *attempt, const char *error)
{
    char reason [600];
    snprintf (reason, sizeof (reason), "cannot start: %.500s", error);
    qn_agent_on_started (self, &attempt->key, 0, self->host, "", "");
    qn_agent_on_log (self, &attempt->key, QANAT__STREAM__STREAM_SYSTEM, reason, strlen (reason),
                     false, qn_now_us ());
    qn_agent_on_finished (self, &attempt->key, -1, 0, "", reason,
                          QANAT__END_KIND__END_START_FAILED);
}

static void s_start_backend (qn_agent_t *self, qn_attempt_t *attempt, const Qanat__Assign *assign,
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
        qn_log (QN_LOG_WARNING, "agent", "Assign without an attempt ignored");
        return;
    }
    qn_attempt_key_t key = { assign->attempt->run_id, assign->attempt->task_index,
                             assign->attempt->attempt };
    if (qn_attempt_lookup (self->attempts, &key)) {
        qn_log (QN_LOG_WARNING, "agent", "duplicate Assign for attempt %" PRIu64 "/%u/%u ignored",
                      key.run_id, key.task_index, key.attempt);
        return;
    }
    qn_attempt_t *attempt = qn_attempt_create (self->attempts, &key);
    if (!attempt) {
        qn_log (QN_LOG_ERROR, "agent", "out of memory accepting an Assign");
        return;
    }
    snprintf (attempt->task_name, sizeof (attempt->task_name), "%s",
              assign->task_name? assign->task_name: "");
    //  Before anything can be reported: even a failed start may echo argv
    bool failed = false;
    attempt->redactor = qn_redact_new (assign->redact, assign->n_redact, &failed);
    if (failed) {
        qn_log (QN_LOG_ERROR, "agent", "out of memory taking the secrets of attempt %" PRIu64
                      "/%u/%u; refusing it", key.run_id, key.task_index, key.attempt);
        qn_agent_on_finished (self, &key, -1, 0, "", "agent out of memory",
                              QANAT__END_KIND__END_START_FAILED);
        return;
    }
    //  A refusal is one Finished, which the spool's reserve always takes
    if (self->draining || qn_outbox_full (self->outbox)) {
        char reason [200];
        if (self->draining)
            snprintf (reason, sizeof (reason), "agent draining");
        else
            snprintf (reason, sizeof (reason), "agent spool full: %" PRIu64 " of %" PRIu64
                      " bytes wait for acknowledgement",
                      qn_outbox_bytes (self->outbox),
                      qn_spool_max (self->spool));
        qn_log (QN_LOG_WARNING, "agent", "refusing attempt %" PRIu64 "/%u/%u: %s",
                      key.run_id, key.task_index, key.attempt, reason);
        qn_agent_on_finished (self, &key, -1, 0, "", reason, QANAT__END_KIND__END_START_FAILED);
        return;
    }
    size_t running = qn_attempt_table_running (self->attempts);
    if (running >= self->slots)
        qn_log (QN_LOG_WARNING, "agent", "Assign beyond our %u slots; running it anyway",
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
        qn_log (QN_LOG_WARNING, "agent", "attempt %" PRIu64 "/%u/%u cannot start: %s",
                      key.run_id, key.task_index, key.attempt, error);
        qn_agent_on_finished (self, &key, -1, 0, "", error, QANAT__END_KIND__END_START_FAILED);
        return;
    }
    attempt->backend = backend;
    attempt->backend_name = self->backends [backend].ops->name;
    const qn_backend_ops_t *ops = self->backends [backend].ops;
    const char *no_files = ops->no_files? ops->no_files (self->backends [backend].state): NULL;
    Qanat__Assign trimmed;
    Qanat__InputSpec *kept [assign->n_inputs + 1];
    if (no_files) {
        //  Without files in common, the workflow's code (the input at ".")
        //  is left out (the task's image brings its own), and only value
        //  inputs, which travel in the environment, are possible
        trimmed = *assign;
        trimmed.inputs = kept;
        trimmed.n_inputs = 0;
        for (size_t i = 0; i < assign->n_inputs; i++)
            if (!streq (assign->inputs [i]->path, "."))
                kept [trimmed.n_inputs++] = assign->inputs [i];
        assign = &trimmed;
        if (qn_agent_wants_files (ops, assign)) {
            snprintf (error, sizeof (error), "the %s backend cannot stage file inputs or "
                      "collect outputs here: %s; it takes value inputs only",
                      attempt->backend_name, no_files);
            qn_log (QN_LOG_WARNING, "agent", "attempt %" PRIu64 "/%u/%u cannot start: %s",
                          key.run_id, key.task_index, key.attempt, error);
            qn_agent_on_finished (self, &key, -1, 0, "", error, QANAT__END_KIND__END_START_FAILED);
            return;
        }
    }
    qn_attempt_advance (attempt, QN_ATTEMPT_RUNNING);
    if (assign->n_inputs || assign->n_outputs) {
        attempt->assign = qn_backend_assign_copy (assign);
        if (attempt->assign && !attempt->assign->store && self->artifact_store.bucket
        &&  s_use_own_store (self, attempt->assign) == -1) {
            qanat__assign__free_unpacked (attempt->assign, NULL);
            attempt->assign = NULL;
        }
        if (!attempt->assign) {
            qn_agent_on_finished (self, &key, -1, 0, "", "agent out of memory",
                                  QANAT__END_KIND__END_START_FAILED);
            return;
        }
    }
    if (assign->n_inputs) {
        //  The backend starts once the inputs are staged
        qn_attempt_advance (attempt, QN_ATTEMPT_STAGING);
        if (qn_stager_inputs (self->stager, &key, attempt->assign,
                              qn_agent_stage_root (self, attempt), s_inputs_ready, self) == -1)
            s_inputs_ready (self, &key, -1, "cannot stage the inputs (out of memory)", NULL, 0);
        return;
    }
    s_start_backend (self, attempt, assign, NULL, 0);
}

//  Starts the attempt on its backend, with extra environment variables
//  (inputs, stage directory, values file) added to the assignment's.
static void
s_start_backend (qn_agent_t *self, qn_attempt_t *attempt, const Qanat__Assign *assign,
                 Qanat__Label **extra, size_t extra_count)
{
    char error [512] = "";
    char stage [4096], values [4096];
    qn_stager_paths (self->stager, &attempt->key, qn_agent_stage_root (self, attempt), stage,
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
    qn_agent_backend_t *backend = &self->backends [attempt->backend];
    int rc = backend->ops->start (backend->state, &with, error, sizeof (error));
    //  A remote backend reported started from start (), with the id it
    //  submits under, before any byte of its submit left: on the spool now
    if (rc == 0 && attempt->engine_job_id [0])
        qn_agent_record_before_submit (self, attempt);
    free (env);
    const qn_attempt_key_t key = attempt->key;
    if (rc == -1) {
        char *clean = attempt->redactor? qn_redact_string (attempt->redactor, error): NULL;
        qn_log (QN_LOG_WARNING, "agent", "attempt %" PRIu64 "/%u/%u cannot start: %s",
                      key.run_id, key.task_index, key.attempt,
                      clean? clean: attempt->redactor? "(withheld)": error);
        free (clean);
        s_fail_start (self, attempt, error);
    }
}

static void
s_inputs_ready (void *arg, const qn_attempt_key_t *key, int status, const char *error,
                Qanat__Label **env, size_t env_count)
{
    qn_agent_t *self = (qn_agent_t *) arg;
    qn_attempt_t *attempt = qn_attempt_lookup (self->attempts, key);
    if (!attempt || attempt->state != QN_ATTEMPT_STAGING)
        return;
    qn_attempt_advance (attempt, QN_ATTEMPT_RUNNING);
    qn_agent_cache_trim (self);
    if (status != 0) {
        qn_log (QN_LOG_WARNING, "agent", "attempt %" PRIu64 "/%u/%u: %s", key->run_id,
                      key->task_index, key->attempt, error);
        s_fail_start (self, attempt, error? error: "inputs not staged");
        return;
    }
    s_start_backend (self, attempt, attempt->assign, env, env_count);
}

//  Asks the attempt's backend to stop it.  An attempt still waiting to
//  be re-attached (no Welcome yet) cannot be stopped yet.
static int
s_stop (qn_agent_t *self, qn_attempt_t *attempt, const char *reason, Qanat__EndKind kind)
{
    if (attempt->state == QN_ATTEMPT_REATTACHING)
        return -1;
    qn_agent_backend_t *backend = &self->backends [attempt->backend];
    return backend->ops->stop (backend->state, &attempt->key, reason, kind);
}

static void
s_handle_cancel (qn_agent_t *self, Qanat__Cancel *cancel)
{
    if (!cancel->attempt) {
        self->malformed++;
        qn_log (QN_LOG_DEBUG, "agent", "Cancel without an attempt ignored");
        return;
    }
    qn_attempt_key_t key = { cancel->attempt->run_id, cancel->attempt->task_index,
                             cancel->attempt->attempt };
    qn_attempt_t *attempt = qn_attempt_lookup (self->attempts, &key);
    char reason [600];
    snprintf (reason, sizeof (reason), "canceled: %.500s", cancel->reason? cancel->reason: "");
    if (!attempt || !qn_attempt_running (attempt)
    ||  s_stop (self, attempt, reason, QANAT__END_KIND__END_CANCELED) == -1) {
        qn_log (QN_LOG_DEBUG, "agent", "Cancel for attempt %" PRIu64 "/%u/%u, not running",
                      key.run_id, key.task_index, key.attempt);
        return;
    }
    qn_log (QN_LOG_INFO, "agent", "canceling attempt %" PRIu64 "/%u/%u: %s",
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
            if (s_registered (self)) {
                qn_log (QN_LOG_INFO, "agent", "coordinator does not know us; registering again");
                s_start_registering (self);
            }
            return 0;
        case QANAT__REFUSAL_CODE__REFUSAL_BAD_VERSION:
            qn_log (QN_LOG_ERROR, "agent", "coordinator refused our protocol version: %s", message);
            self->fatal = true;
            return -1;
        case QANAT__REFUSAL_CODE__REFUSAL_DENIED:
            qn_log (QN_LOG_ERROR, "agent", "the coordinator refuses this agent's key (revoked?): "
                          "%s; stopping", message);
            self->fatal = true;
            self->denied = true;
            return -1;
        case QANAT__REFUSAL_CODE__REFUSAL_WRONG_SOCKET:   //  nothing will ever work there
            qn_log (QN_LOG_ERROR, "agent", "%s; stopping", message);
            self->fatal = true;
            return -1;
        default:
            qn_log (QN_LOG_WARNING, "agent", "coordinator refused a message (code %u): %s",
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
        qn_log (QN_LOG_DEBUG, "agent", "ignored a message of %zu frames", zmsg_size (msg));
        return 0;
    }
    zframe_t *frame = zmsg_first (msg);
    qn_msg_status_t status;
    uint32_t version = 0;
    Qanat__Envelope *env = qn_msg_decode (zframe_data (frame), zframe_size (frame),
                                          &status, &version);
    if (!env) {
        self->malformed++;
        qn_log (QN_LOG_DEBUG, "agent", "ignored a frame of %zu bytes: %s (%" PRIu64 " so far)",
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
            qn_log (QN_LOG_DEBUG, "agent", "ignored an unexpected message (body %d)",
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
    if (s_registered (self) && now - self->last_rx_ms > s_silence_limit (self)) {
        qn_log (QN_LOG_WARNING, "agent", "no word from the coordinator for %" PRId64 " ms; "
                      "registering again", now - self->last_rx_ms);
        s_start_registering (self);
    }
    if (s_registered (self)) {
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
    qn_attempt_t *attempt = (qn_attempt_t *) zhashx_first (self->attempts);
    while (attempt) {
        if (qn_attempt_running (attempt)
        &&  s_stop (self, attempt, reason, QANAT__END_KIND__END_LOST) == 0)
            stopped++;
        attempt = (qn_attempt_t *) zhashx_next (self->attempts);
    }
    if (stopped)
        qn_log (QN_LOG_WARNING, "agent", "no word from the coordinator for %" PRId64 " ms: "
                      "stopping %zu attempt(s)", silence, stopped);
    return self->exit_now? -1: 0;
}

static void
s_check_drained (qn_agent_t *self)
{
    if (!self->draining || self->exit_now)
        return;
    if (zhashx_size (self->attempts) > 0 || qn_outbox_pending (self->outbox) > 0)
        return;
    qn_log (QN_LOG_INFO, "agent", "drained: every attempt finished and acknowledged; stopping");
    self->drained = true;
    self->exit_now = true;
}

static int
s_drain_timeout (zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    (void) timer_id;
    qn_agent_t *self = (qn_agent_t *) arg;
    qn_log (QN_LOG_WARNING, "agent", "drain timed out after %us with %zu attempt(s) running "
                  "and %zu held; stopping", self->drain_timeout_s,
                  qn_attempt_table_running (self->attempts), zhashx_size (self->attempts));
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
            qn_sdnotify_stopping ();
            qn_log (QN_LOG_INFO, "agent", "%s: draining: %zu attempt(s) running, %zu held; "
                          "taking no new work (send it again to stop at once)",
                          name, qn_attempt_table_running (self->attempts),
                          zhashx_size (self->attempts));
            if (s_registered (self))
                s_send_drain (self);
            if (self->drain_timeout_s
            &&  zloop_timer (self->loop, (size_t) self->drain_timeout_s * 1000, 1,
                             s_drain_timeout, self) == -1)
                qn_log (QN_LOG_ERROR, "agent", "cannot start the drain timer");
            s_check_drained (self);
        }
        else {
            qn_log (QN_LOG_INFO, "agent", "%s again: stopping now", name);
            self->exit_now = true;
        }
    }
    return self->exit_now? -1: 0;
}


//  ---------------------------------------------------------------------
//  Taking over the spool of an earlier agent

static const char *s_lost_reason = "agent restarted: the attempt's process was lost";

static int
s_take_over (const qn_spool_meta_t *meta, void *arg)
{
    qn_agent_t *self = (qn_agent_t *) arg;
    qn_attempt_t *attempt = qn_attempt_create (self->attempts, &meta->key);
    if (!attempt)
        return -1;
    snprintf (attempt->task_name, sizeof (attempt->task_name), "%s", meta->task_name);
    attempt->pid = meta->pid;
    attempt->start_time = meta->start_time;
    if (meta->finished) {
        qn_attempt_advance (attempt, QN_ATTEMPT_ENDED);
        qn_attempt_advance (attempt, QN_ATTEMPT_SPOOLED);
    }
    qn_outbox_adopt (self->outbox, attempt, meta);
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
        qn_attempt_advance (attempt, QN_ATTEMPT_REATTACHING);
        memcpy (attempt->engine_job_id, meta->engine_job_id, sizeof (attempt->engine_job_id));
        memcpy (attempt->cursor, meta->cursor, sizeof (attempt->cursor));
        snprintf (attempt->workdir, sizeof (attempt->workdir), "%s", meta->workdir);
        qn_log (QN_LOG_INFO, "agent", "attempt %" PRIu64 "/%u/%u (%s) runs as %s job %s; "
                      "re-attaching once registered", meta->key.run_id, meta->key.task_index,
                      meta->key.attempt, meta->task_name, ops->name, meta->engine_job_id);
    }
    else
    if (!meta->finished) {
        qn_attempt_kill_leftover (meta);
        qn_agent_post_finished (self, attempt, -1, 0, "", s_lost_reason, QANAT__END_KIND__END_LOST);
        qn_attempt_advance (attempt, QN_ATTEMPT_ENDED);
        qn_log (QN_LOG_WARNING, "agent", "attempt %" PRIu64 "/%u/%u (%s) was running when the "
                      "agent stopped; reporting it lost", meta->key.run_id,
                      meta->key.task_index, meta->key.attempt, meta->task_name);
    }
    qn_outbox_check_done (self->outbox, attempt);
    return 0;
}


//  ---------------------------------------------------------------------
//  Handshake monitor (CURVE only): see qn_handshake.h

static int
s_monitor_readable (zloop_t *loop, zsock_t *sock, void *arg)
{
    (void) loop;
    (void) sock;
    qn_agent_t *self = (qn_agent_t *) arg;
    uint16_t event;
    uint32_t value;
    if (qn_handshake_read (self->handshake, &event, &value) == -1)
        return 0;
    if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH && value == 400) {
        qn_log (QN_LOG_ERROR, "agent", "the coordinator refuses this agent's key at the "
                      "handshake (revoked?); stopping");
        self->fatal = true;
        self->denied = true;
        self->exit_now = true;
        return -1;
    }
    if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
        qn_log (QN_LOG_WARNING, "agent", "the coordinator's key check failed (ZAP status %u); "
                      "trying again", value);
    else
    if (event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL
    ||  event == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL)
        qn_log (QN_LOG_WARNING, "agent", "CURVE handshake with %s failed (is it the coordinator "
                      "this agent enrolled with?)", self->endpoint);
    else
    if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED)
        qn_log (QN_LOG_DEBUG, "agent", "CURVE handshake with %s done", self->endpoint);
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

//  SIGTERM and SIGINT arrive on a signalfd that the loop reads.  They
//  must be blocked before libzmq starts its threads, which inherit the
//  mask; czmq's own handling (zsys_interrupted) is switched off.
static void
s_block_signals (qn_agent_t *self)
{
    zsys_handler_set (NULL);
    sigset_t signals;
    sigemptyset (&signals);
    sigaddset (&signals, SIGTERM);
    sigaddset (&signals, SIGINT);
    if (pthread_sigmask (SIG_BLOCK, &signals, &self->saved_mask) == 0)
        self->mask_saved = true;
    self->signal_fd = signalfd (-1, &signals, SFD_NONBLOCK | SFD_CLOEXEC);
}

//  Copies the config's values.  Returns false when out of memory, or when
//  the key pair or the coordinator's key is not usable (logged).
static bool
s_take_config (qn_agent_t *self, const qn_agent_config_t *config)
{
    if (gethostname (self->host, sizeof (self->host) - 1) == -1)
        snprintf (self->host, sizeof (self->host), "localhost");
    self->endpoint = strdup (config->endpoint);
    self->name = strdup (config->name && *config->name? config->name: self->host);
    self->data_dir = strdup (config->data_dir);
    self->slots = config->slots? config->slots: 1;
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
            qn_log (QN_LOG_ERROR, "agent", "no usable CURVE key pair or coordinator key");
            return false;
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
    return ok;
}

//  The loop, the socket, the table of attempts, the spool in
//  <data_dir>/spool and the outbox on it
static bool
s_open_spool (qn_agent_t *self, const qn_agent_config_t *config)
{
    self->attempts = qn_attempt_table_new ();
    self->loop = zloop_new ();
    self->sock = zsock_new (ZMQ_DEALER);
    if (!self->attempts || !self->loop || !self->sock)
        return false;
    zloop_set_nonstop (self->loop, true);
    char spool_dir [4096];
    snprintf (spool_dir, sizeof (spool_dir), "%s/spool", self->data_dir);
    if (s_mkdir (spool_dir) == -1) {
        qn_log (QN_LOG_ERROR, "agent", "cannot create %s: %s", spool_dir, strerror (errno));
        return false;
    }
    self->spool = qn_spool_new (spool_dir, config->spool_max, QN_SPOOL_DEFAULT_RESERVE);
    qn_outbox_handlers_t handlers = { s_send_event, s_arm_commit, s_set_paused,
                                      s_spool_room };
    if (self->spool)
        self->outbox = qn_outbox_new (self->spool, self->attempts, config->outbox_limit,
                                      &handlers, self);
    return self->spool && self->outbox;
}

//  Creates the backends the config names (local when none), in order
static bool
s_open_backends (qn_agent_t *self, const qn_agent_config_t *config, bool ok)
{
    qn_backend_config_t backend_config = {
        .data_dir = self->data_dir, .host = self->host,
        .kill_grace_ms = config->kill_grace_ms, .agent_name = self->name,
        .options = config->backend_options,
        .keep_workdirs = self->keep_workdirs, .sweeper = self->sweeper,
        .resources = self->resources = config->resources
    };
    const char *local [] = { "local" };
    const char **names = config->backend_count? config->backends: local;
    size_t count = config->backend_count? config->backend_count: 1;
    if (count > QN_AGENT_MAX_BACKENDS) {
        qn_log (QN_LOG_ERROR, "agent", "at most %d backends", QN_AGENT_MAX_BACKENDS);
        ok = false;
    }
    for (size_t b = 0; ok && b < count; b++) {
        const qn_backend_ops_t *ops = qn_backend_find (names [b]);
        for (size_t other = 0; ops && other < b; other++)
            if (self->backends [other].ops == ops)
                ops = NULL;
        if (!ops) {
            char known [256];
            qn_log (QN_LOG_ERROR, "agent", "unknown or repeated backend '%s' (known: %s)",
                    names [b], qn_backend_names (known, sizeof known));
            ok = false;
            break;
        }
        self->backends [b].ops = ops;
        self->backends [b].state = ops->create (self->loop, &backend_config,
                                                &self->events, self);
        if (!self->backends [b].state) {
            qn_log (QN_LOG_ERROR, "agent", "the %s backend cannot start", ops->name);
            ok = false;
            break;
        }
        self->backend_count = b + 1;
    }
    return ok;
}

//  What an earlier agent left: replayed after our first Welcome
static bool
s_take_over_spool (qn_agent_t *self)
{
    if (qn_spool_metas (self->spool, s_take_over, self) == -1) {
        qn_log (QN_LOG_ERROR, "agent", "cannot read the spool's attempts");
        return false;
    }
    if (zhashx_size (self->attempts) > 0) {
        qn_log (QN_LOG_INFO, "agent", "spool holds %zu attempt(s) with %" PRIu64 " bytes of "
                      "unacknowledged events from an earlier agent",
                      zhashx_size (self->attempts), qn_spool_committed_bytes (self->spool));
        if (qn_outbox_commit (self->outbox) == -1)
            return false;
    }
    return true;
}

//  Connects (CURVE when we have a key pair) and registers the socket,
//  the signalfd and the watchdog with the loop
static bool
s_connect (qn_agent_t *self)
{
    bool ok = true;
    qn_msg_prepare_socket (self->sock);
    if (self->cert) {
        zcert_apply (self->cert, self->sock);
        zsock_set_curve_serverkey (self->sock, self->server_key);
        self->handshake = qn_handshake_new (self->sock);
        if (!self->handshake
        ||  zloop_reader (self->loop, qn_handshake_sock (self->handshake),
                          s_monitor_readable, self) == -1) {
            qn_log (QN_LOG_ERROR, "agent", "cannot monitor the coordinator connection");
            ok = false;
        }
    }
    if (ok) {
        zsock_set_reconnect_ivl (self->sock, S_BACKOFF_BASE_MS);
        zsock_set_reconnect_ivl_max (self->sock, (int) self->max_backoff_ms);
        ok = zsock_connect (self->sock, "%s", self->endpoint) == 0;
        if (!ok)
            qn_log (QN_LOG_ERROR, "agent", "cannot connect to %s: %s", self->endpoint,
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
    return ok;
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
    s_block_signals (self);
    bool ok = s_take_config (self, config)
           && s_open_spool (self, config);
    if (ok) {
        self->events.started = qn_agent_on_started;
        self->events.log = qn_agent_on_log;
        self->events.metric = qn_agent_on_metric;
        self->events.finished = qn_agent_on_finished;
        self->events.cursor = qn_agent_on_cursor;
        self->events.link = qn_agent_on_link;
        ok = qn_agent_cache_open (self, config, s_transfer_send);
        ok = s_open_backends (self, config, ok);
    }
    ok = ok && s_take_over_spool (self) && s_connect (self);
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
    zloop_timer (self->loop, 1000, 0, qn_agent_sd_tick, self);
    if (!self->exit_now)
        zloop_start (self->loop);

    if (!self->drained) {
        size_t running = 0;
        for (size_t b = 0; b < self->backend_count; b++)
            running += self->backends [b].ops->running (self->backends [b].state);
        if (running)
            qn_log (QN_LOG_INFO, "agent", "stopping: killing %zu running attempt(s)", running);
        for (size_t b = 0; b < self->backend_count; b++)
            self->backends [b].ops->shutdown (self->backends [b].state, S_SHUTDOWN_GRACE_MS,
                                              self->denied? "killed: the coordinator refuses "
                                                            "this agent's key"
                                            : self->fatal? "killed: agent stopped on an error"
                                                         : "killed: agent shutting down");
    }
    //  The last events go to the spool (a later agent replays them), and
    //  out if they can
    if (qn_outbox_commit (self->outbox) == 0)
        s_flush_all (self);
    if (qn_outbox_pending (self->outbox) > 0)
        qn_log (QN_LOG_ERROR, "agent", "%zu event(s) could not be spooled and are lost",
                      qn_outbox_pending (self->outbox));
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
    qn_handshake_destroy (&self->handshake);
    zsock_destroy (&self->sock);
    zcert_destroy (&self->cert);
    free (self->server_key);
    qn_outbox_destroy (&self->outbox);
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
