/*  qn_bench_sim - simulated agents: many DEALER sockets in one thread
    (a zactor) with one epoll over their ZMQ_FDs, speaking the real
    protocol through qn_msg.  They answer at once and run nothing, so
    the figures they drive measure the control plane only.

    Not zmq_poll: it walks every socket on every turn, so with 1,000
    agents the simulated agents, not qanatd, used most of the machine.
    epoll reports only the sockets with something to read; a socket sent
    to is drained again after the send, because a send may take in the
    signal of a message that arrived meanwhile (ZMQ_FD then stays quiet).

    One of the files of the qn_bench class.
*/
#include "qn_bench.h"
#include <sys/epoll.h>

//  ---------------------------------------------------------------------
//  Simulated agents: one thread, one epoll over every socket

static int
s_sim_send (sim_t *self, sim_agent_t *agent, Qanat__Envelope *env)
{
    if (!agent->touched) {
        agent->touched = true;
        self->touched [self->touched_count++] = (size_t) (agent - self->agents);
    }
    zframe_t *frame = qn_msg_encode (env);
    if (!frame) {
        self->send_errors++;
        return -1;
    }
    if (zframe_send (&frame, agent->sock, ZFRAME_DONTWAIT) == -1) {
        zframe_destroy (&frame);
        self->send_errors++;
        return -1;
    }
    return 0;
}

static void
s_sim_register (sim_t *self, sim_agent_t *agent)
{
    char key [] = "pool", backend [] = "local", version [] = "bench";
    Qanat__Label label = QANAT__LABEL__INIT;
    label.key = key;
    label.value = (char *) self->pool;
    Qanat__Label *labels [] = { &label };
    char *backends [] = { backend };
    Qanat__Register reg = QANAT__REGISTER__INIT;
    reg.name = agent->name;
    reg.labels = labels;
    reg.n_labels = 1;
    reg.backends = backends;
    reg.n_backends = 1;
    reg.capacity = self->capacity;
    reg.version = version;
    //  (l) 64 CPUs each; one agent in 4 with 8 GPUs and 512 GiB, the
    //  others with 256 GiB and none
    Qanat__Resources resources = QANAT__RESOURCES__INIT;
    bool gpus = (agent - self->agents) % 4 == 0;
    resources.cpus = 64;
    resources.memory_mb = gpus? 512 * 1024: 256 * 1024;
    resources.gpus = gpus? 8: 0;
    if (self->resources)
        reg.resources = &resources;
    Qanat__Envelope env = QANAT__ENVELOPE__INIT;
    env.body_case = QANAT__ENVELOPE__BODY_REGISTER;
    env.register_ = &reg;
    s_sim_send (self, agent, &env);
}

static void
s_sim_credit (sim_t *self, sim_agent_t *agent, uint32_t slots)
{
    Qanat__Credit credit = QANAT__CREDIT__INIT;
    credit.slots = slots;
    Qanat__Envelope env = QANAT__ENVELOPE__INIT;
    env.body_case = QANAT__ENVELOPE__BODY_CREDIT;
    env.credit = &credit;
    s_sim_send (self, agent, &env);
}

static void
s_sim_heartbeat (sim_t *self, sim_agent_t *agent)
{
    Qanat__Heartbeat heartbeat = QANAT__HEARTBEAT__INIT;
    Qanat__Envelope env = QANAT__ENVELOPE__INIT;
    env.body_case = QANAT__ENVELOPE__BODY_HEARTBEAT;
    env.heartbeat = &heartbeat;
    if (s_sim_send (self, agent, &env) == 0)
        self->heartbeats_sent++;
}

//  Sends one event; body is set by the caller in event.
static int
s_sim_event (sim_t *self, sim_agent_t *agent, Qanat__Event *event,
             uint64_t run_id, uint32_t task, uint32_t attempt, uint64_t seq)
{
    Qanat__AttemptRef ref = QANAT__ATTEMPT_REF__INIT;
    ref.run_id = run_id;
    ref.task_index = task;
    ref.attempt = attempt;
    event->attempt = &ref;
    event->seq = seq;
    Qanat__Envelope env = QANAT__ENVELOPE__INIT;
    env.body_case = QANAT__ENVELOPE__BODY_EVENT;
    env.event = event;
    return s_sim_send (self, agent, &env);
}

static void
s_sim_started (sim_t *self, sim_agent_t *agent, uint64_t run_id, uint32_t task, uint32_t attempt)
{
    char host [] = "bench", workdir [] = "/nonexistent";
    Qanat__Started started = QANAT__STARTED__INIT;
    started.pid = 1;
    started.host = host;
    started.workdir = workdir;
    Qanat__Event event = QANAT__EVENT__INIT;
    event.body_case = QANAT__EVENT__BODY_STARTED;
    event.started = &started;
    s_sim_event (self, agent, &event, run_id, task, attempt, 1);
}

static void
s_sim_finished (sim_t *self, sim_agent_t *agent, uint64_t run_id, uint32_t task,
                uint32_t attempt, uint64_t seq)
{
    Qanat__Finished finished = QANAT__FINISHED__INIT;
    Qanat__Event event = QANAT__EVENT__INIT;
    event.body_case = QANAT__EVENT__BODY_FINISHED;
    event.finished = &finished;
    agent->last_finish_ns = bench_now_ns ();
    s_sim_event (self, agent, &event, run_id, task, attempt, seq);
    s_sim_credit (self, agent, 1);
}

static void
s_sim_on_assign (sim_t *self, size_t index, Qanat__Assign *assign)
{
    sim_agent_t *agent = &self->agents [index];
    int64_t now = bench_now_ns ();
    self->assigns++;
    if (!assign->attempt)
        return;
    if (self->record_hops && agent->last_finish_ns) {
        if (self->hop_count == self->hop_alloc) {
            self->hop_alloc = self->hop_alloc? 2 * self->hop_alloc: 1024;
            self->hops = (int64_t *) realloc (self->hops, self->hop_alloc * sizeof (int64_t));
        }
        self->hops [self->hop_count++] = now - agent->last_finish_ns;
        agent->last_finish_ns = 0;
    }
    uint64_t run_id = assign->attempt->run_id;
    uint32_t task = assign->attempt->task_index;
    uint32_t attempt = assign->attempt->attempt;
    s_sim_started (self, agent, run_id, task, attempt);
    if (self->mode == SIM_ECHO)
        s_sim_finished (self, agent, run_id, task, attempt, 2);
    else
    if (self->attempt_count < SIM_ATTEMPTS_MAX) {
        sim_attempt_t *entry = &self->attempts [self->attempt_count++];
        memset (entry, 0, sizeof *entry);
        entry->agent = index;
        entry->run_id = run_id;
        entry->task = task;
        entry->attempt = attempt;
        entry->next_seq = 2;
        entry->started_ns = now;
    }
}

//  Finishes an attempt once its last line is acknowledged: the last of
//  log_lines, or of those sent when told to stop (STOPLOGS).
static void
s_sim_attempt_check (sim_t *self, zsock_t *pipe, sim_attempt_t *entry)
{
    uint64_t last = self->log_stop? entry->logs_sent: self->log_lines;
    if (entry->done || entry->acked < last + 1 || entry->next_seq != last + 2)
        return;
    entry->done = true;
    self->attempts_done++;
    self->log_last_ack_ns = bench_now_ns ();
    s_sim_finished (self, &self->agents [entry->agent], entry->run_id, entry->task,
                    entry->attempt, entry->next_seq);
    if (self->attempts_done == self->log_attempts)
        zstr_send (pipe, "LOGDONE");
}

static void
s_sim_on_ack (sim_t *self, zsock_t *pipe, size_t index, Qanat__Ack *ack)
{
    self->acks++;
    if (!ack->attempt)
        return;
    if (self->mode == SIM_ECHO) {
        if (ack->seq == 2)
            self->finished_acked++;
        return;
    }
    for (size_t i = 0; i < self->attempt_count; i++) {
        sim_attempt_t *entry = &self->attempts [i];
        if (entry->agent != index || entry->run_id != ack->attempt->run_id
        ||  entry->task != ack->attempt->task_index || entry->attempt != ack->attempt->attempt)
            continue;
        if (ack->seq > entry->acked) {
            //  Log lines are seq 2 .. log_lines + 1.
            uint64_t before = entry->acked > 1? entry->acked - 1: 0;
            uint64_t after = ack->seq > 1? ack->seq - 1: 0;
            if (after > self->log_lines)
                after = self->log_lines;
            if (after > before)
                self->log_events_acked += after - before;
            entry->acked = ack->seq;
        }
        s_sim_attempt_check (self, pipe, entry);
        break;
    }
}

//  Sends log lines while each attempt's window has room; a bounded burst
//  per attempt, so acknowledgements are read in between.  Returns true
//  while lines remain to be sent.
static bool
s_sim_stream_logs (sim_t *self)
{
    //  lines_per_event lines of LINE_BYTES - 1 characters, joined by '\n':
    //  a chunk of whole lines, as the agent sends what one read returned.
    static char *chunk_text = NULL;
    static size_t chunk_size = 0;
    size_t per_event = bench_set.lines_per_event? bench_set.lines_per_event: 1;
    if (!chunk_text) {
        chunk_size = per_event * LINE_BYTES - 1;
        chunk_text = (char *) malloc (chunk_size);
        memset (chunk_text, 'x', chunk_size);
        for (size_t l = 1; l < per_event; l++)
            chunk_text [l * LINE_BYTES - 1] = '\n';
    }
    bool pending = false;
    int64_t now = bench_now_ns ();
    for (size_t i = 0; i < self->attempt_count && !self->log_stop; i++) {
        sim_attempt_t *entry = &self->attempts [i];
        //  With a rate, no more lines than the time since the attempt
        //  started allows
        uint64_t allowed = self->log_rate > 0
            ? (uint64_t) ((double) (now - entry->started_ns) / 1e9 * self->log_rate) + 1
            : self->log_lines;
        if (allowed > self->log_lines)
            allowed = self->log_lines;
        for (int burst = 0; burst < 256 && entry->logs_sent < allowed
             && entry->next_seq - 1 - entry->acked < self->log_window; burst++) {
            char line [LINE_BYTES];
            Qanat__LogChunk chunk = QANAT__LOG_CHUNK__INIT;
            chunk.data.data = (uint8_t *) chunk_text;
            chunk.data.len = chunk_size;
            if (self->log_rate > 0) {
                //  One numbered line per event, as a task printing slowly gives
                int size = snprintf (line, sizeof line, "line %llu of run %llu ",
                                     (unsigned long long) entry->logs_sent + 1,
                                     (unsigned long long) entry->run_id);
                memset (line + size, 'x', sizeof line - 1 - (size_t) size);
                chunk.data.data = (uint8_t *) line;
                chunk.data.len = sizeof line - 1;
            }
            chunk.time_us = qn_now_us ();
            Qanat__Event event = QANAT__EVENT__INIT;
            event.body_case = QANAT__EVENT__BODY_LOG;
            event.log = &chunk;
            if (!self->log_first_ns)
                self->log_first_ns = bench_now_ns ();
            if (s_sim_event (self, &self->agents [entry->agent], &event, entry->run_id,
                             entry->task, entry->attempt, entry->next_seq))
                break;
            entry->next_seq++;
            entry->logs_sent++;
        }
        if (entry->logs_sent < allowed
        &&  entry->next_seq - 1 - entry->acked < self->log_window)
            pending = true;
    }
    return pending;
}

static void
s_sim_on_message (sim_t *self, zsock_t *pipe, size_t index, Qanat__Envelope *env)
{
    sim_agent_t *agent = &self->agents [index];
    switch (env->body_case) {
        case QANAT__ENVELOPE__BODY_WELCOME:
            if (!agent->registered) {
                agent->registered = true;
                self->registered++;
                s_sim_credit (self, agent, self->capacity);
                if (self->registered == self->count) {
                    self->registered_at = bench_now ();
                    zstr_send (pipe, "REGISTERED");
                }
            }
            break;
        case QANAT__ENVELOPE__BODY_ASSIGN:
            s_sim_on_assign (self, index, env->assign);
            if (self->log_rate > 0 && self->attempt_count == self->log_attempts)
                zstr_send (pipe, "LOGGING");
            break;
        case QANAT__ENVELOPE__BODY_ACK:
            s_sim_on_ack (self, pipe, index, env->ack);
            break;
        case QANAT__ENVELOPE__BODY_HEARTBEAT:
            self->heartbeat_replies++;
            break;
        case QANAT__ENVELOPE__BODY_REFUSAL:
            self->refusals++;
            if (env->refusal->code == QANAT__REFUSAL_CODE__REFUSAL_NOT_REGISTERED) {
                if (agent->registered) {
                    agent->registered = false;
                    self->registered--;
                }
                s_sim_register (self, agent);
            }
            break;
        default:
            break;
    }
}

//  Reads what agent i has, at most 1,000 messages a turn
static void
s_sim_drain (sim_t *self, zsock_t *pipe, size_t i)
{
    void *sock = zsock_resolve (self->agents [i].sock);
    for (int count = 0; count < 1000; count++) {
        zmq_msg_t msg;
        zmq_msg_init (&msg);
        if (zmq_msg_recv (&msg, sock, ZMQ_DONTWAIT) == -1) {
            zmq_msg_close (&msg);
            return;
        }
        qn_msg_status_t status;
        Qanat__Envelope *env = qn_msg_decode (zmq_msg_data (&msg), zmq_msg_size (&msg),
                                              &status, NULL);
        zmq_msg_close (&msg);
        if (env) {
            s_sim_on_message (self, pipe, i, env);
            qn_msg_free (&env);
        }
    }
    //  More left: come back next turn
    if (!self->agents [i].touched) {
        self->agents [i].touched = true;
        self->touched [self->touched_count++] = i;
    }
}

void
bench_sim_actor (zsock_t *pipe, void *args)
{
    sim_t *self = (sim_t *) args;
    self->agents = (sim_agent_t *) calloc (self->count, sizeof (sim_agent_t));
    self->touched = (size_t *) calloc (self->count + 1, sizeof (size_t));
    int epfd = epoll_create1 (EPOLL_CLOEXEC);
    struct epoll_event event = { .events = EPOLLIN, .data.u64 = 0 };
    epoll_ctl (epfd, EPOLL_CTL_ADD, zsock_fd (pipe), &event);
    struct epoll_event *ready = (struct epoll_event *) calloc (self->count + 1, sizeof (*ready));
    zsock_signal (pipe, 0);

    //  Heartbeats are spread evenly over the interval: agent i is due at
    //  start + i * interval / count, and then every interval.
    int64_t period_ns = (int64_t) self->heartbeat_ms * 1000000LL;
    int64_t start_ns = bench_now_ns () + period_ns;
    size_t cursor = 0;
    int64_t next_due = start_ns;
    bool stop = false;
    while (!stop) {
        //  Connect more agents while few registrations are outstanding, so
        //  the coordinator's listen backlog is never flooded.
        while (self->created < self->count && !self->open_failed
           &&  self->created - self->registered < self->connect_batch) {
            sim_agent_t *agent = &self->agents [self->created];
            snprintf (agent->name, sizeof agent->name, "sim-%zu", self->first_name + self->created);
            agent->sock = zsock_new (ZMQ_DEALER);
            if (!agent->sock) {
                //  Out of descriptors or sockets: say so rather than wait.
                if (!self->open_failed)
                    zstr_send (pipe, "FAILED");
                self->open_failed = true;
                break;
            }
            qn_msg_prepare_socket (agent->sock);
            zsock_set_sndhwm (agent->sock, 0);
            zsock_set_rcvhwm (agent->sock, 0);
            if (zsock_connect (agent->sock, "%s", self->endpoint) == -1) {
                zsock_destroy (&agent->sock);
                if (!self->open_failed)
                    zstr_send (pipe, "FAILED");
                self->open_failed = true;
                break;
            }
            event.data.u64 = self->created + 1;
            epoll_ctl (epfd, EPOLL_CTL_ADD, zsock_fd (agent->sock), &event);
            s_sim_register (self, agent);
            self->created++;
        }
        bool pending = self->mode == SIM_LOG && s_sim_stream_logs (self);
        int64_t now = bench_now_ns ();
        long timeout = pending || self->touched_count? 0: (long) ((next_due - now) / 1000000);
        long most = self->log_rate > 0? 5: 50;     //  a paced stream sends on time
        if (timeout < 0)
            timeout = 0;
        if (timeout > most)
            timeout = most;
        int fired = epoll_wait (epfd, ready, (int) self->created + 1, (int) timeout);
        if (fired == -1 && errno != EINTR)
            break;
        if (zsock_events (pipe) & ZMQ_POLLIN) {
            char *command = zstr_recv (pipe);
            if (!command || streq (command, "$TERM"))
                stop = true;
            else
            if (streq (command, "FINISHED"))
                zstr_sendf (pipe, "%llu", (unsigned long long) self->finished_acked);
            else
            if (streq (command, "STOPLOGS")) {
                //  No more lines: each attempt ends once what it sent is acknowledged
                self->log_stop = true;
                for (size_t i = 0; i < self->attempt_count; i++)
                    s_sim_attempt_check (self, pipe, &self->attempts [i]);
            }
            zstr_free (&command);
        }
        for (int e = 0; e < fired; e++)
            if (ready [e].data.u64)
                s_sim_drain (self, pipe, (size_t) ready [e].data.u64 - 1);
        //  Sockets sent to: what arrived meanwhile may not wake epoll
        while (self->touched_count) {
            size_t i = self->touched [--self->touched_count];
            self->agents [i].touched = false;
            s_sim_drain (self, pipe, i);
        }
        //  Heartbeats due by now, in round-robin order.
        now = bench_now_ns ();
        while (self->created && next_due <= now) {
            if (cursor < self->created && self->agents [cursor].registered)
                s_sim_heartbeat (self, &self->agents [cursor]);
            cursor++;
            if (cursor == self->count) {
                cursor = 0;
                start_ns += period_ns;
            }
            next_due = start_ns + (int64_t) ((double) cursor * period_ns / self->count);
        }
    }
    for (size_t i = 0; i < self->created; i++)
        zsock_destroy (&self->agents [i].sock);
    close (epfd);
    free (ready);
    free (self->touched);
    self->touched = NULL;
}

sim_t *
bench_sim_new (const char *endpoint, size_t count, uint32_t capacity, const char *pool)
{
    sim_t *self = (sim_t *) zmalloc (sizeof (sim_t));
    self->endpoint = endpoint;
    self->count = count;
    self->capacity = capacity;
    self->pool = pool;
    self->mode = SIM_ECHO;
    self->heartbeat_ms = 1000;
    self->connect_batch = 200;
    self->log_window = 10000;
    return self;
}

void
bench_sim_destroy (sim_t **self_p)
{
    sim_t *self = *self_p;
    if (self) {
        free (self->agents);
        free (self->hops);
        free (self);
        *self_p = NULL;
    }
}

//  Waits for a word from the simulation; false on timeout.
bool
bench_sim_wait (zactor_t *actor, const char *word, double timeout_s)
{
    double deadline = bench_now () + timeout_s;
    zpoller_t *poller = zpoller_new (actor, NULL);
    bool seen = false;
    while (!seen && !zsys_interrupted) {
        double left = deadline - bench_now ();
        if (left <= 0)
            break;
        if (!zpoller_wait (poller, (int) (left * 1000) + 1))
            continue;
        char *message = zstr_recv (actor);
        bool failed = message && streq (message, "FAILED");
        if (message && streq (message, word))
            seen = true;
        zstr_free (&message);
        if (failed) {
            bench_say ("   the simulated agents could not open their sockets\n");
            break;
        }
    }
    zpoller_destroy (&poller);
    return seen;
}

uint64_t
bench_sim_finished_count (zactor_t *actor)
{
    zstr_send (actor, "FINISHED");
    zsock_set_rcvtimeo (actor, 10000);
    //  Skip any earlier word (REGISTERED) still queued.
    for (int tries = 0; tries < 4; tries++) {
        char *answer = zstr_recv (actor);
        if (!answer)
            break;
        if (isdigit ((unsigned char) answer [0])) {
            uint64_t count = strtoull (answer, NULL, 10);
            zstr_free (&answer);
            return count;
        }
        zstr_free (&answer);
    }
    return 0;
}
