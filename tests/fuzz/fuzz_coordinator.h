/*  fuzz_coordinator - drives one in-process coordinator with fuzz input,
    for fuzz_agent_socket, fuzz_client_socket and their regression test.

    One coordinator per process (insecure, not durable, loopback, a temp
    data dir), made on the first input and destroyed at exit.  An input is
    a sequence of records:

        [selector: 1 byte][length: 2 bytes, big-endian][payload: length bytes]

    (the last record takes what is left when the length runs past the end).
    The selector picks one of FZ_PEERS peers, so one input can have a peer
    build up state: register, take credit, then report events.

    The coordinator keeps state between inputs; to keep each input's
    outcome as independent of the ones before as we can:
      - every input gets fresh routing ids (the input's number is part of
        them), so no connection, strike or cut-off carries over;
      - run ids 1..16 in the payloads (events, registrations' running
        attempts, run requests) mean "the input's first, second... run" and
        are rewritten to the real ids before feeding;
      - after the input, every run it left active is canceled and the agents
        it registered are drained, so they take no later input's tasks.
    Replies come back on a DEALER connected to the clients' socket under
    the routing id "fz-reply", which fuzz peers never use.
*/
#ifndef FUZZ_COORDINATOR_H_INCLUDED
#define FUZZ_COORDINATOR_H_INCLUDED

#include <ftw.h>
#include <stdio.h>
#include <unistd.h>
#include "qn_coordinator.h"
#include "qn_msg.h"

#define FZ_PEERS        4
#define FZ_RECORDS_MAX  64
#define FZ_RELATIVE_MAX 16
#define FZ_REPLY_ID     "fz-reply"

//  The agent target's run: ready tasks a (checks, retries), c (needs label
//  gpu=a100) and d; b waits for a.  Task indexes a=0 b=1 c=2 d=3.
#define FZ_AGENT_WORKFLOW \
    "name: fuzz-agent\n" \
    "params:\n" \
    "  p: {default: x}\n" \
    "tasks:\n" \
    "  a:\n" \
    "    run: echo a $QANAT_PARAM_P\n" \
    "    metrics: [accuracy, loss]\n" \
    "    retries: 1\n" \
    "    checks:\n" \
    "      - accuracy >= 0.5\n" \
    "      - {expr: \"max(loss) < 2.5\", severity: warning}\n" \
    "  b:\n" \
    "    run: [echo, b]\n" \
    "    needs: [a]\n" \
    "  c:\n" \
    "    run: echo c\n" \
    "    on: {gpu: a100}\n" \
    "    retries: 2\n" \
    "    timeout: 10\n" \
    "  d:\n" \
    "    run: echo d\n" \
    "    env: {K: V}\n"

typedef struct {
    qn_coordinator_t *coordinator;
    zsock_t *reply;                 //  DEALER on the clients' socket
    char dir [64];
    uint32_t input;                 //  inputs fed so far
    uint64_t request_id;
    uint64_t next_run;              //  id the next run will get (client target)
} fz_state_t;

static fz_state_t fz_state;

static inline int
fz_unlink_cb (const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void) sb; (void) flag; (void) ftw;
    return remove (path);
}

static inline void
fz_teardown (void)
{
    zsock_destroy (&fz_state.reply);
    qn_coordinator_destroy (&fz_state.coordinator);
    if (*fz_state.dir)
        nftw (fz_state.dir, fz_unlink_cb, 16, FTW_DEPTH | FTW_PHYS);
    memset (&fz_state, 0, sizeof fz_state);
}

//  Sends one request from FZ_REPLY_ID and returns its reply (free with
//  qn_msg_free), or NULL if none came within two seconds.
static inline Qanat__Envelope *
fz_request (Qanat__Request *request, int timeout_ms)
{
    request->id = ++fz_state.request_id;
    Qanat__Envelope env = QANAT__ENVELOPE__INIT;
    env.body_case = QANAT__ENVELOPE__BODY_REQUEST;
    env.request = request;
    zframe_t *frame = qn_msg_encode (&env);
    if (!frame)
        return NULL;
    qn_coordinator_feed (fz_state.coordinator, false, FZ_REPLY_ID, strlen (FZ_REPLY_ID),
                         zframe_data (frame), zframe_size (frame));
    zframe_destroy (&frame);
    zpoller_t *poller = zpoller_new (fz_state.reply, NULL);
    Qanat__Envelope *reply = NULL;
    int64_t deadline = zclock_mono () + timeout_ms;
    while (!reply && zclock_mono () < deadline) {
        //  No reply yet can also mean a signal cut the wait short
        //  (libFuzzer's timer ticks every second): wait on to the deadline
        if (!zpoller_wait (poller, (int) (deadline - zclock_mono ())))
            continue;
        frame = zframe_recv (fz_state.reply);
        if (!frame)
            break;
        reply = qn_msg_decode (zframe_data (frame), zframe_size (frame), NULL, NULL);
        zframe_destroy (&frame);
        //  Replies to earlier requests that timed out are skipped.
        if (reply && (reply->body_case != QANAT__ENVELOPE__BODY_REPLY
                  ||  reply->reply->id != request->id))
            qn_msg_free (&reply);
    }
    zpoller_destroy (&poller);
    return reply;
}

//  The coordinator, made on first use.  NULL if it cannot be made.
static inline qn_coordinator_t *
fz_setup (void)
{
    if (fz_state.coordinator)
        return fz_state.coordinator;
    //  Logging every message would cost more than handling it.
    if (!getenv ("FUZZ_VERBOSE"))
        zsys_set_logstream (NULL);
    zsys_init ();
    //  run.sh names a directory it cleans up, even after a crash.
    const char *base = getenv ("FUZZ_TMPDIR");
    if (!base || !*base)
        base = access ("/dev/shm", W_OK) == 0? "/dev/shm": "/tmp";
    snprintf (fz_state.dir, sizeof fz_state.dir, "%s/qanat-fuzz-XXXXXX", base);
    if (!mkdtemp (fz_state.dir)) {
        *fz_state.dir = 0;
        return NULL;
    }
    qn_coordinator_config_t config = {
        .data_dir = fz_state.dir,
        .client_endpoint = "tcp://127.0.0.1:*",
        .agent_endpoint = "tcp://127.0.0.1:*",
        .durable = false,
        .insecure = true,
        .verbose = getenv ("FUZZ_VERBOSE") != NULL
    };
    char *error = NULL;
    fz_state.coordinator = qn_coordinator_new (&config, &error);
    if (!fz_state.coordinator) {
        fprintf (stderr, "fuzz: cannot start the coordinator: %s\n", error? error: "?");
        free (error);
        fz_teardown ();
        return NULL;
    }
    fz_state.next_run = 1;
    fz_state.reply = zsock_new (ZMQ_DEALER);
    zsock_set_identity (fz_state.reply, FZ_REPLY_ID);
    zsock_connect (fz_state.reply, "%s", qn_coordinator_client_endpoint (fz_state.coordinator));
    //  The ROUTER drops replies until the connection is up: ask until
    //  one comes back.
    Qanat__GetStats stats = QANAT__GET_STATS__INIT;
    Qanat__Request request = QANAT__REQUEST__INIT;
    request.body_case = QANAT__REQUEST__BODY_GET_STATS;
    request.get_stats = &stats;
    Qanat__Envelope *reply = NULL;
    for (int attempt = 0; attempt < 250 && !reply; attempt++)
        reply = fz_request (&request, 20);
    if (!reply) {
        fprintf (stderr, "fuzz: the coordinator does not answer\n");
        fz_teardown ();
        return NULL;
    }
    qn_msg_free (&reply);
    static bool registered = false;
    if (!registered)
        atexit (fz_teardown);
    registered = true;
    return fz_state.coordinator;
}

//  Splits off the next record.  Returns false at the end of the input.
static inline bool
fz_next_record (const uint8_t **data, size_t *size, uint8_t *selector,
                const uint8_t **payload, size_t *length)
{
    if (*size < 1)
        return false;
    *selector = (*data) [0];
    size_t want = *size >= 3? ((size_t) (*data) [1] << 8) | (*data) [2]: 0;
    size_t header = *size >= 3? 3: *size;
    *data += header;
    *size -= header;
    *length = want < *size? want: *size;
    *payload = *data;
    *data += *length;
    *size -= *length;
    return true;
}

static inline void
fz_routing_id (uint8_t id [6], uint8_t peer)
{
    id [0] = 'p';
    id [1] = peer;
    id [2] = (uint8_t) (fz_state.input >> 24);
    id [3] = (uint8_t) (fz_state.input >> 16);
    id [4] = (uint8_t) (fz_state.input >> 8);
    id [5] = (uint8_t) fz_state.input;
}

static inline void
fz_relative (uint64_t *run_id, uint64_t base)
{
    if (base && *run_id >= 1 && *run_id <= FZ_RELATIVE_MAX)
        *run_id = base + *run_id - 1;
}

//  Feeds one payload; if it decodes, run ids 1..16 are rewritten relative
//  to base first (then it is re-encoded), else the raw bytes go in.
static inline void
fz_feed (bool agents, uint8_t peer, const uint8_t *payload, size_t length, uint64_t base)
{
    uint8_t id [6];
    fz_routing_id (id, peer);
    Qanat__Envelope *env = qn_msg_decode (payload, length, NULL, NULL);
    if (!env) {
        qn_coordinator_feed (fz_state.coordinator, agents, id, sizeof id, payload, length);
        return;
    }
    if (env->body_case == QANAT__ENVELOPE__BODY_EVENT && env->event->attempt)
        fz_relative (&env->event->attempt->run_id, base);
    else
    if (env->body_case == QANAT__ENVELOPE__BODY_REGISTER)
        for (size_t i = 0; i < env->register_->n_running; i++)
            fz_relative (&env->register_->running [i]->run_id, base);
    else
    if (env->body_case == QANAT__ENVELOPE__BODY_REQUEST) {
        Qanat__Request *request = env->request;
        if (request->body_case == QANAT__REQUEST__BODY_GET_RUN)
            fz_relative (&request->get_run->run_id, base);
        else
        if (request->body_case == QANAT__REQUEST__BODY_READ_LOGS)
            fz_relative (&request->read_logs->run_id, base);
        else
        if (request->body_case == QANAT__REQUEST__BODY_READ_METRICS)
            fz_relative (&request->read_metrics->run_id, base);
        else
        if (request->body_case == QANAT__REQUEST__BODY_CANCEL_RUN)
            fz_relative (&request->cancel_run->run_id, base);
    }
    //  Pack as is: qn_msg_encode would also fix the version.
    size_t size = qanat__envelope__get_packed_size (env);
    uint8_t *packed = (uint8_t *) malloc (size? size: 1);
    if (packed) {
        qanat__envelope__pack (env, packed);
        qn_coordinator_feed (fz_state.coordinator, agents, id, sizeof id, packed, size);
        free (packed);
    }
    qn_msg_free (&env);
}

//  Returns 0, or -1 if the coordinator did not answer.
static inline int
fz_cancel_run (uint64_t run_id)
{
    Qanat__CancelRun cancel = QANAT__CANCEL_RUN__INIT;
    cancel.run_id = run_id;
    Qanat__Request request = QANAT__REQUEST__INIT;
    request.body_case = QANAT__REQUEST__BODY_CANCEL_RUN;
    request.cancel_run = &cancel;
    //  Generous: a loaded CI machine runs two fuzzers and more at once.
    Qanat__Envelope *reply = fz_request (&request, 10000);
    int rc = reply? 0: -1;
    if (!reply) {
        fprintf (stderr, "fuzz: cancel run %llu: no reply\n", (unsigned long long) run_id);
        Qanat__GetStats get = QANAT__GET_STATS__INIT;
        Qanat__Request ask = QANAT__REQUEST__INIT;
        ask.body_case = QANAT__REQUEST__BODY_GET_STATS;
        ask.get_stats = &get;
        Qanat__Envelope *stats = fz_request (&ask, 10000);
        if (stats && stats->reply->body_case == QANAT__REPLY__BODY_STATS)
            fprintf (stderr, "fuzz: commits %llu, commit failures %llu, sends refused %llu\n",
                     (unsigned long long) stats->reply->stats->commits,
                     (unsigned long long) stats->reply->stats->commit_failures,
                     (unsigned long long) stats->reply->stats->sends_refused);
        else
            fprintf (stderr, "fuzz: no stats either\n");
        qn_msg_free (&stats);
        Qanat__Envelope *again = fz_request (&request, 10000);
        fprintf (stderr, "fuzz: the same cancel again: %s %s\n",
                 !again? "no reply": again->reply->body_case == QANAT__REPLY__BODY_RUN? "run"
                 : again->reply->body_case == QANAT__REPLY__BODY_ERROR? "error": "other",
                 again && again->reply->body_case == QANAT__REPLY__BODY_ERROR
                 && again->reply->error->message? again->reply->error->message: "");
        qn_msg_free (&again);
    }
    qn_msg_free (&reply);
    return rc;
}

//  Cancels every run made since next_run (canceling an ended run is a
//  harmless error) and moves next_run past them.  Returns 0, or -1 if
//  the coordinator did not answer.
static inline int
fz_cancel_new_runs (void)
{
    Qanat__ListRuns list = QANAT__LIST_RUNS__INIT;
    list.limit = 1;
    Qanat__Request request = QANAT__REQUEST__INIT;
    request.body_case = QANAT__REQUEST__BODY_LIST_RUNS;
    request.list_runs = &list;
    Qanat__Envelope *reply = fz_request (&request, 2000);
    if (!reply)
        return -1;
    uint64_t newest = 0;
    if (reply->reply->body_case == QANAT__REPLY__BODY_RUNS && reply->reply->runs->n_runs)
        newest = reply->reply->runs->runs [0]->run_id;
    qn_msg_free (&reply);
    int rc = 0;
    for (uint64_t run_id = fz_state.next_run; run_id <= newest && rc == 0; run_id++)
        rc = fz_cancel_run (run_id);
    if (newest >= fz_state.next_run)
        fz_state.next_run = newest + 1;
    return rc;
}

//  Starts a run of yaml; returns its id, or 0.
static inline uint64_t
fz_start_run (const char *yaml)
{
    Qanat__SubmitWorkflow submit = QANAT__SUBMIT_WORKFLOW__INIT;
    submit.filename = (char *) "fuzz-agent.yaml";
    submit.source.data = (uint8_t *) yaml;
    submit.source.len = strlen (yaml);
    Qanat__StartRun start = QANAT__START_RUN__INIT;
    start.workflow = &submit;
    Qanat__Request request = QANAT__REQUEST__INIT;
    request.body_case = QANAT__REQUEST__BODY_START_RUN;
    request.start_run = &start;
    //  As generous as the cancel: a loaded machine may be slow to answer
    Qanat__Envelope *reply = fz_request (&request, 10000);
    uint64_t run_id = 0;
    if (reply && reply->reply->body_case == QANAT__REPLY__BODY_RUN)
        run_id = reply->reply->run->run_id;
    else
        //  Say why, for whoever reads the fuzzer's log
        fprintf (stderr, "fuzz: start run failed: %s\n",
                 !reply? "no reply"
                 : reply->reply->body_case == QANAT__REPLY__BODY_ERROR
                   && reply->reply->error->message? reply->reply->error->message
                 : "an unexpected reply");
    qn_msg_free (&reply);
    return run_id;
}

//  Drains the agents an input registered, so they take no later input's
//  work (a drained agent keeps its name but gets no tasks).
static inline void
fz_drain_peers (const bool used [FZ_PEERS])
{
    Qanat__Drain drain = QANAT__DRAIN__INIT;
    drain.draining = true;
    drain.reason = (char *) "end of fuzz input";
    Qanat__Envelope env = QANAT__ENVELOPE__INIT;
    env.body_case = QANAT__ENVELOPE__BODY_DRAIN;
    env.drain = &drain;
    zframe_t *frame = qn_msg_encode (&env);
    if (!frame)
        return;
    for (uint8_t peer = 0; peer < FZ_PEERS; peer++)
        if (used [peer]) {
            uint8_t id [6];
            fz_routing_id (id, peer);
            qn_coordinator_feed (fz_state.coordinator, true, id, sizeof id,
                                 zframe_data (frame), zframe_size (frame));
        }
    zframe_destroy (&frame);
}

//  One input on the agents' socket, after starting a run of
//  FZ_AGENT_WORKFLOW (run id 1 in the input).  Returns 1, or -1 if the
//  coordinator stopped answering.
static inline int
fz_agent_socket_one (const uint8_t *data, size_t size)
{
    if (!fz_setup ())
        return -1;
    fz_state.input++;
    uint64_t run_id = fz_start_run (FZ_AGENT_WORKFLOW);
    if (!run_id)
        return -1;
    bool used [FZ_PEERS] = { false };
    uint8_t selector;
    const uint8_t *payload;
    size_t length;
    for (int records = 0; records < FZ_RECORDS_MAX
                       && fz_next_record (&data, &size, &selector, &payload, &length); records++) {
        uint8_t peer = selector % FZ_PEERS;
        used [peer] = true;
        fz_feed (true, peer, payload, length, run_id);
    }
    fz_drain_peers (used);
    return fz_cancel_run (run_id) == 0? 1: -1;
}

//  One input on the clients' socket.  Returns 1, or -1 if the coordinator
//  stopped answering.
static inline int
fz_client_socket_one (const uint8_t *data, size_t size)
{
    if (!fz_setup ())
        return -1;
    fz_state.input++;
    uint64_t base = fz_state.next_run;
    uint8_t selector;
    const uint8_t *payload;
    size_t length;
    for (int records = 0; records < FZ_RECORDS_MAX
                       && fz_next_record (&data, &size, &selector, &payload, &length); records++)
        fz_feed (false, selector % FZ_PEERS, payload, length, base);
    return fz_cancel_new_runs () == 0? 1: -1;
}

#endif
