/*  make_seeds - writes the generated seed corpora of the fuzz targets:
    an envelope of every kind (fuzz_envelope), message sequences for the
    coordinator's two sockets (fuzz_agent_socket, fuzz_client_socket, in
    the record format of fuzz_coordinator.h) and join tokens (fuzz_token).

    Usage: make_seeds CORPUS_DIR    (run by `tests/fuzz/run.sh --seeds`)
    Keys are fixed, so the output is the same on every run.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zmq.h>
#include "qn_msg.h"
#include "qn_token.h"

static const char *s_dir;

static void
s_write (const char *target, const char *name, const void *data, size_t size)
{
    char path [512];
    snprintf (path, sizeof path, "%s/%s", s_dir, target);
    mkdir (path, 0755);
    snprintf (path, sizeof path, "%s/%s/%s", s_dir, target, name);
    FILE *file = fopen (path, "wb");
    if (!file || fwrite (data, 1, size, file) != size) {
        fprintf (stderr, "make_seeds: cannot write %s\n", path);
        exit (1);
    }
    fclose (file);
}

//  Packs env with the current version.
static zframe_t *
s_pack (Qanat__Envelope *env)
{
    zframe_t *frame = qn_msg_encode (env);
    assert (frame);
    return frame;
}

//  A sequence of records for the socket targets.
typedef struct {
    uint8_t data [65536];
    size_t size;
} seq_t;

static void
s_add (seq_t *seq, uint8_t peer, Qanat__Envelope *env)
{
    zframe_t *frame = s_pack (env);
    size_t size = zframe_size (frame);
    assert (size < 65536 && seq->size + 3 + size <= sizeof seq->data);
    seq->data [seq->size++] = peer;
    seq->data [seq->size++] = (uint8_t) (size >> 8);
    seq->data [seq->size++] = (uint8_t) size;
    memcpy (seq->data + seq->size, zframe_data (frame), size);
    seq->size += size;
    zframe_destroy (&frame);
}

static void
s_add_raw (seq_t *seq, uint8_t peer, const void *data, size_t size)
{
    seq->data [seq->size++] = peer;
    seq->data [seq->size++] = (uint8_t) (size >> 8);
    seq->data [seq->size++] = (uint8_t) size;
    memcpy (seq->data + seq->size, data, size);
    seq->size += size;
}

//  ---------------------------------------------------------------------
//  Agent messages

static Qanat__Label s_gpu = { PROTOBUF_C_MESSAGE_INIT (&qanat__label__descriptor), (char *) "gpu", (char *) "a100" };
static Qanat__Label *s_labels [] = { &s_gpu };
static char *s_backends [] = { (char *) "local" };

static void
s_register (seq_t *seq, uint8_t peer, const char *name, uint32_t capacity, bool gpu,
            Qanat__AttemptRef **running, size_t n_running)
{
    Qanat__Register reg = QANAT__REGISTER__INIT;
    reg.name = (char *) name;
    reg.labels = gpu? s_labels: NULL;
    reg.n_labels = gpu? 1: 0;
    reg.backends = s_backends;
    reg.n_backends = 1;
    reg.capacity = capacity;
    reg.running = running;
    reg.n_running = n_running;
    reg.version = (char *) "0.1";
    reg.heartbeat_ms = 500;
    reg.suspect_after_ms = 2000;
    reg.lost_after_ms = 10000;
    Qanat__Envelope env = QANAT__ENVELOPE__INIT;
    env.body_case = QANAT__ENVELOPE__BODY_REGISTER;
    env.register_ = &reg;
    s_add (seq, peer, &env);
}

static void
s_credit (seq_t *seq, uint8_t peer, uint32_t slots)
{
    Qanat__Credit credit = QANAT__CREDIT__INIT;
    credit.slots = slots;
    Qanat__Envelope env = QANAT__ENVELOPE__INIT;
    env.body_case = QANAT__ENVELOPE__BODY_CREDIT;
    env.credit = &credit;
    s_add (seq, peer, &env);
}

static void
s_heartbeat (seq_t *seq, uint8_t peer, bool full)
{
    Qanat__Heartbeat heartbeat = QANAT__HEARTBEAT__INIT;
    heartbeat.running = 1;
    heartbeat.spool_bytes = full? 1 << 20: 0;
    heartbeat.spool_full = full;
    Qanat__Envelope env = QANAT__ENVELOPE__INIT;
    env.body_case = QANAT__ENVELOPE__BODY_HEARTBEAT;
    env.heartbeat = &heartbeat;
    s_add (seq, peer, &env);
}

static void
s_drain (seq_t *seq, uint8_t peer, bool draining)
{
    Qanat__Drain drain = QANAT__DRAIN__INIT;
    drain.draining = draining;
    drain.reason = (char *) "shutting down";
    Qanat__Envelope env = QANAT__ENVELOPE__INIT;
    env.body_case = QANAT__ENVELOPE__BODY_DRAIN;
    env.drain = &drain;
    s_add (seq, peer, &env);
}

//  kind: 's'tarted, 'l'og, 'm'etric, 'f'inished (exit code in value).
static void
s_event (seq_t *seq, uint8_t peer, uint64_t run_id, uint32_t task, uint32_t attempt,
         uint64_t number, char kind, const char *text, double value)
{
    Qanat__AttemptRef ref = QANAT__ATTEMPT_REF__INIT;
    ref.run_id = run_id;
    ref.task_index = task;
    ref.attempt = attempt;
    Qanat__Event event = QANAT__EVENT__INIT;
    event.attempt = &ref;
    event.seq = number;
    Qanat__Started started = QANAT__STARTED__INIT;
    Qanat__LogChunk log = QANAT__LOG_CHUNK__INIT;
    Qanat__MetricPoint metric = QANAT__METRIC_POINT__INIT;
    Qanat__Finished finished = QANAT__FINISHED__INIT;
    switch (kind) {
        case 's':
            started.pid = 4242;
            started.host = (char *) "node1";
            started.workdir = (char *) "/tmp/qanat-work";
            event.body_case = QANAT__EVENT__BODY_STARTED;
            event.started = &started;
            break;
        case 'l':
            log.stream = value? QANAT__STREAM__STREAM_STDERR: QANAT__STREAM__STREAM_STDOUT;
            log.data.data = (uint8_t *) text;
            log.data.len = strlen (text);
            log.time_us = 1700000000000000;
            event.body_case = QANAT__EVENT__BODY_LOG;
            event.log = &log;
            break;
        case 'm':
            metric.name = (char *) text;
            metric.value = value;
            metric.step = 3;
            metric.has_step = true;
            metric.time_us = 1700000000000000;
            event.body_case = QANAT__EVENT__BODY_METRIC;
            event.metric = &metric;
            break;
        default:
            finished.exit_code = (int32_t) value;
            finished.stack_trace = value? (char *) "Traceback (most recent call last):\nValueError": (char *) "";
            finished.reason = (char *) "";
            finished.kind = QANAT__END_KIND__END_EXIT;
            event.body_case = QANAT__EVENT__BODY_FINISHED;
            event.finished = &finished;
            break;
    }
    Qanat__Envelope env = QANAT__ENVELOPE__INIT;
    env.body_case = QANAT__ENVELOPE__BODY_EVENT;
    env.event = &event;
    s_add (seq, peer, &env);
}

static void
s_agent_seeds (void)
{
    const char *t = "fuzz_agent_socket";
    seq_t *seq = (seq_t *) calloc (1, sizeof (seq_t));

    //  The whole life of task a (index 0): it passes its check, b follows.
    s_register (seq, 0, "ag0", 4, true, NULL, 0);
    s_credit (seq, 0, 4);
    s_event (seq, 0, 1, 0, 1, 1, 's', NULL, 0);
    s_event (seq, 0, 1, 0, 1, 2, 'l', "hello from a", 0);
    s_event (seq, 0, 1, 0, 1, 3, 'm', "accuracy", 0.9);
    s_event (seq, 0, 1, 0, 1, 4, 'm', "loss", 3.0);
    s_event (seq, 0, 1, 0, 1, 5, 'f', NULL, 0);
    s_event (seq, 0, 1, 1, 1, 1, 's', NULL, 0);
    s_event (seq, 0, 1, 1, 1, 2, 'f', NULL, 0);
    s_event (seq, 0, 1, 2, 1, 1, 'f', NULL, 0);
    s_event (seq, 0, 1, 3, 1, 1, 'f', NULL, 0);
    s_write (t, "ok-run-succeeds", seq->data, seq->size);

    //  a fails its check, then exits 1: retried, then failed; b skipped.
    seq->size = 0;
    s_register (seq, 1, "ag1", 2, false, NULL, 0);
    s_credit (seq, 1, 2);
    s_event (seq, 1, 1, 0, 1, 1, 'm', "accuracy", 0.1);
    s_event (seq, 1, 1, 0, 1, 2, 'l', "stderr line", 1);
    s_event (seq, 1, 1, 0, 1, 3, 'f', NULL, 0);
    s_event (seq, 1, 1, 3, 1, 1, 'f', NULL, 2);
    s_heartbeat (seq, 1, false);
    s_credit (seq, 1, 1);
    s_event (seq, 1, 1, 0, 2, 1, 'f', NULL, 1);
    s_write (t, "ok-check-fails", seq->data, seq->size);

    //  Fencing: stale attempts, duplicates, gaps, unknown runs.
    seq->size = 0;
    s_register (seq, 2, "ag2", 8, true, NULL, 0);
    s_credit (seq, 2, 8);
    s_event (seq, 2, 1, 0, 1, 1, 's', NULL, 0);
    s_event (seq, 2, 1, 0, 1, 1, 's', NULL, 0);
    s_event (seq, 2, 1, 0, 1, 5, 'l', "after a gap", 0);
    s_event (seq, 2, 1, 0, 7, 1, 'l', "a stale attempt", 0);
    s_event (seq, 2, 99, 0, 1, 1, 'f', NULL, 0);
    s_event (seq, 2, 1, 77, 1, 1, 'l', "no such task", 0);
    s_event (seq, 3, 1, 0, 1, 2, 'l', "an unregistered peer", 0);
    s_event (seq, 2, 1, 2, 1, 1, 'm', "", 1);
    s_write (t, "ok-fencing", seq->data, seq->size);

    //  Re-registration: the same name from another peer, reporting what
    //  it runs; spool full; draining.
    seq->size = 0;
    Qanat__AttemptRef ref1 = QANAT__ATTEMPT_REF__INIT;
    ref1.run_id = 1; ref1.task_index = 0; ref1.attempt = 1;
    Qanat__AttemptRef ref2 = QANAT__ATTEMPT_REF__INIT;
    ref2.run_id = 1; ref2.task_index = 2; ref2.attempt = 3;
    Qanat__AttemptRef *running [] = { &ref1, &ref2 };
    s_register (seq, 0, "ag3", 4, true, NULL, 0);
    s_credit (seq, 0, 4);
    s_register (seq, 1, "ag3", 4, true, running, 2);
    s_heartbeat (seq, 1, true);
    s_credit (seq, 1, 2);
    s_heartbeat (seq, 1, false);
    s_drain (seq, 1, true);
    s_credit (seq, 1, 2);
    s_drain (seq, 1, false);
    s_event (seq, 1, 1, 0, 1, 1, 'f', NULL, 0);
    s_register (seq, 1, "ag3", 4, true, NULL, 0);
    s_write (t, "ok-reregister", seq->data, seq->size);

    //  What an agent must not send, and garbage.
    seq->size = 0;
    s_register (seq, 0, "", 1, false, NULL, 0);
    s_heartbeat (seq, 2, false);
    Qanat__Refusal refusal = QANAT__REFUSAL__INIT;
    refusal.message = (char *) "no";
    Qanat__Envelope env = QANAT__ENVELOPE__INIT;
    env.body_case = QANAT__ENVELOPE__BODY_REFUSAL;
    env.refusal = &refusal;
    s_register (seq, 0, "ag4", 1, false, NULL, 0);
    s_add (seq, 0, &env);
    Qanat__Enrol enrol = QANAT__ENROL__INIT;
    enrol.name = (char *) "ag4";
    env.body_case = QANAT__ENVELOPE__BODY_ENROL;
    env.enrol = &enrol;
    s_add (seq, 0, &env);
    s_add_raw (seq, 0, "\x08\x07\x5a\x00", 4);      //  version 7
    s_add_raw (seq, 0, "garbage", 7);
    s_add_raw (seq, 0, "", 0);
    s_write (t, "bad-messages", seq->data, seq->size);
    free (seq);
}

//  ---------------------------------------------------------------------
//  Client requests

static const char s_workflow [] =
    "name: seeds\n"
    "params:\n"
    "  n: {default: 3}\n"
    "  required: {description: must be given}\n"
    "tasks:\n"
    "  one:\n"
    "    run: echo $QANAT_PARAM_N\n"
    "    checks: [accuracy >= 0.9]\n"
    "  two:\n"
    "    run: [echo, two]\n"
    "    needs: [one]\n"
    "    on: {env: gpu}\n";

static void
s_request (seq_t *seq, uint8_t peer, Qanat__Request *request)
{
    static uint64_t id = 0;
    request->id = ++id;
    Qanat__Envelope env = QANAT__ENVELOPE__INIT;
    env.body_case = QANAT__ENVELOPE__BODY_REQUEST;
    env.request = request;
    s_add (seq, peer, &env);
}

static void
s_client_seeds (void)
{
    const char *t = "fuzz_client_socket";
    seq_t *seq = (seq_t *) calloc (1, sizeof (seq_t));
    Qanat__SubmitWorkflow submit = QANAT__SUBMIT_WORKFLOW__INIT;
    submit.filename = (char *) "seeds.yaml";
    submit.source.data = (uint8_t *) s_workflow;
    submit.source.len = strlen (s_workflow);
    Qanat__Param param = QANAT__PARAM__INIT;
    param.name = (char *) "required";
    param.value = (char *) "yes";
    Qanat__Param *params [] = { &param };
    Qanat__StartRun start = QANAT__START_RUN__INIT;
    start.workflow = &submit;
    start.params = params;
    start.n_params = 1;
    Qanat__GetRun get = QANAT__GET_RUN__INIT;
    get.run_id = 1;
    Qanat__ListRuns list = QANAT__LIST_RUNS__INIT;
    Qanat__ReadLogs logs = QANAT__READ_LOGS__INIT;
    logs.run_id = 1;
    Qanat__ReadMetrics metrics = QANAT__READ_METRICS__INIT;
    metrics.run_id = 1;
    Qanat__ListAgents agents = QANAT__LIST_AGENTS__INIT;
    Qanat__CancelRun cancel = QANAT__CANCEL_RUN__INIT;
    cancel.run_id = 1;
    Qanat__GetStats stats = QANAT__GET_STATS__INIT;
    Qanat__DrainAgent drain = QANAT__DRAIN_AGENT__INIT;
    drain.name = (char *) "ag0";
    drain.drain = true;
    Qanat__CreateToken token = QANAT__CREATE_TOKEN__INIT;
    token.ttl_s = 60;
    token.uses = 2;
    Qanat__AddUser user = QANAT__ADD_USER__INIT;
    user.name = (char *) "alice";
    user.role = (char *) "user";
    Qanat__RevokeAgent revoke = QANAT__REVOKE_AGENT__INIT;
    revoke.name = (char *) "ag0";
    Qanat__SetSecret secret = QANAT__SET_SECRET__INIT;
    secret.name = (char *) "db.password";
    secret.value.data = (uint8_t *) "hunter2";
    secret.value.len = 7;
    Qanat__ListSecrets secrets = QANAT__LIST_SECRETS__INIT;
    Qanat__Request request = QANAT__REQUEST__INIT;

    //  One file per request kind, each after a started run.
    struct { const char *name; int body; void *message; } kinds [] = {
        { "ok-submit", QANAT__REQUEST__BODY_SUBMIT, &submit },
        { "ok-start-run", QANAT__REQUEST__BODY_START_RUN, &start },
        { "ok-get-run", QANAT__REQUEST__BODY_GET_RUN, &get },
        { "ok-list-runs", QANAT__REQUEST__BODY_LIST_RUNS, &list },
        { "ok-read-logs", QANAT__REQUEST__BODY_READ_LOGS, &logs },
        { "ok-read-metrics", QANAT__REQUEST__BODY_READ_METRICS, &metrics },
        { "ok-list-agents", QANAT__REQUEST__BODY_LIST_AGENTS, &agents },
        { "ok-cancel-run", QANAT__REQUEST__BODY_CANCEL_RUN, &cancel },
        { "ok-get-stats", QANAT__REQUEST__BODY_GET_STATS, &stats },
        { "ok-drain-agent", QANAT__REQUEST__BODY_DRAIN_AGENT, &drain },
        { "ok-create-token", QANAT__REQUEST__BODY_CREATE_TOKEN, &token },
        { "ok-add-user", QANAT__REQUEST__BODY_ADD_USER, &user },
        { "ok-revoke-agent", QANAT__REQUEST__BODY_REVOKE_AGENT, &revoke },
        { "ok-set-secret", QANAT__REQUEST__BODY_SET_SECRET, &secret },
        { "ok-list-secrets", QANAT__REQUEST__BODY_LIST_SECRETS, &secrets },
    };
    for (size_t k = 0; k < sizeof kinds / sizeof kinds [0]; k++) {
        seq->size = 0;
        request.body_case = QANAT__REQUEST__BODY_START_RUN;
        request.start_run = &start;
        s_request (seq, 0, &request);
        request.body_case = (Qanat__Request__BodyCase) kinds [k].body;
        request.submit = (Qanat__SubmitWorkflow *) kinds [k].message;   //  the oneof's one pointer
        s_request (seq, (uint8_t) (k % 4), &request);
        s_write (t, kinds [k].name, seq->data, seq->size);
    }

    //  A longer conversation: two runs, cancel a task, read what is there.
    seq->size = 0;
    request.body_case = QANAT__REQUEST__BODY_START_RUN;
    request.start_run = &start;
    s_request (seq, 0, &request);
    s_request (seq, 1, &request);
    cancel.run_id = 2;
    cancel.task = (char *) "two";
    request.body_case = QANAT__REQUEST__BODY_CANCEL_RUN;
    request.cancel_run = &cancel;
    s_request (seq, 1, &request);
    metrics.run_id = 0;
    metrics.workflow = (char *) "seeds";
    metrics.name = (char *) "accuracy";
    request.body_case = QANAT__REQUEST__BODY_READ_METRICS;
    request.read_metrics = &metrics;
    s_request (seq, 2, &request);
    logs.task = (char *) "one";
    logs.attempt = 1;
    logs.cursor.data = (uint8_t *) "\x00\x00\x00\x01";
    logs.cursor.len = 4;
    logs.limit = 10;
    request.body_case = QANAT__REQUEST__BODY_READ_LOGS;
    request.read_logs = &logs;
    s_request (seq, 3, &request);
    list.workflow = (char *) "seeds";
    list.limit = 5;
    request.body_case = QANAT__REQUEST__BODY_LIST_RUNS;
    request.list_runs = &list;
    s_request (seq, 3, &request);
    s_write (t, "ok-conversation", seq->data, seq->size);

    //  Refused: bad workflows, missing parameters, agent messages, garbage.
    seq->size = 0;
    start.n_params = 0;
    request.body_case = QANAT__REQUEST__BODY_START_RUN;
    request.start_run = &start;
    s_request (seq, 0, &request);
    Qanat__SubmitWorkflow broken = QANAT__SUBMIT_WORKFLOW__INIT;
    broken.filename = (char *) "broken.yaml";
    broken.source.data = (uint8_t *) "name: x\ntasks:\n  a: {needs: [a], run: true}\n";
    broken.source.len = strlen ((char *) broken.source.data);
    request.body_case = QANAT__REQUEST__BODY_SUBMIT;
    request.submit = &broken;
    s_request (seq, 1, &request);
    Qanat__StartRun empty = QANAT__START_RUN__INIT;
    request.body_case = QANAT__REQUEST__BODY_START_RUN;
    request.start_run = &empty;
    s_request (seq, 1, &request);
    secret.name = (char *) "bad name!";
    request.body_case = QANAT__REQUEST__BODY_SET_SECRET;
    request.set_secret = &secret;
    s_request (seq, 2, &request);
    Qanat__Heartbeat heartbeat = QANAT__HEARTBEAT__INIT;
    Qanat__Envelope env = QANAT__ENVELOPE__INIT;
    env.body_case = QANAT__ENVELOPE__BODY_HEARTBEAT;
    env.heartbeat = &heartbeat;
    s_add (seq, 2, &env);
    request.body_case = QANAT__REQUEST__BODY__NOT_SET;
    s_request (seq, 3, &request);
    s_add_raw (seq, 3, "\x08\x02", 2);
    s_add_raw (seq, 3, "\xff\xff\xff", 3);
    s_write (t, "bad-requests", seq->data, seq->size);
    free (seq);
}

//  ---------------------------------------------------------------------
//  Envelopes: the bodies of the sequences above, one file each, and the
//  coordinator's own messages.

static void
s_envelope_seeds (void)
{
    const char *t = "fuzz_envelope";
    //  Every message of the socket seeds, split back out of its records.
    const char *sources [] = { "fuzz_agent_socket", "fuzz_client_socket" };
    const char *files [] = { "ok-run-succeeds", "ok-reregister", "ok-conversation",
                             "ok-create-token", "ok-set-secret" };
    int count = 0;
    for (size_t f = 0; f < sizeof files / sizeof files [0]; f++) {
        char path [512];
        snprintf (path, sizeof path, "%s/%s/%s", s_dir, sources [f < 2? 0: 1], files [f]);
        FILE *file = fopen (path, "rb");
        assert (file);
        uint8_t data [65536];
        size_t size = fread (data, 1, sizeof data, file);
        fclose (file);
        for (size_t at = 0; at + 3 <= size; ) {
            size_t len = ((size_t) data [at + 1] << 8) | data [at + 2];
            char name [64];
            snprintf (name, sizeof name, "ok-%02d", count++);
            s_write (t, name, data + at + 3, len);
            at += 3 + len;
        }
    }
    //  Coordinator -> peer messages.
    Qanat__AttemptRef ref = QANAT__ATTEMPT_REF__INIT;
    ref.run_id = 1;
    ref.task_index = 2;
    ref.attempt = 1;
    Qanat__Welcome welcome = QANAT__WELCOME__INIT;
    welcome.agent_name = (char *) "ag0";
    welcome.heartbeat_ms = 1000;
    char *argv [] = { (char *) "/bin/sh", (char *) "-c", (char *) "echo hi" };
    Qanat__Label env_label = QANAT__LABEL__INIT;
    env_label.key = (char *) "QANAT_RUN_ID";
    env_label.value = (char *) "1";
    Qanat__Label *env_labels [] = { &env_label };
    Qanat__Assign assign = QANAT__ASSIGN__INIT;
    assign.attempt = &ref;
    assign.task_name = (char *) "c";
    assign.workflow = (char *) "fuzz-agent";
    assign.argv = argv;
    assign.n_argv = 3;
    assign.env = env_labels;
    assign.n_env = 1;
    assign.timeout_s = 10;
    Qanat__Ack ack = QANAT__ACK__INIT;
    ack.attempt = &ref;
    ack.seq = 5;
    Qanat__Cancel cancel = QANAT__CANCEL__INIT;
    cancel.attempt = &ref;
    cancel.reason = (char *) "run canceled";
    Qanat__Refusal refusal = QANAT__REFUSAL__INIT;
    refusal.code = QANAT__REFUSAL_CODE__REFUSAL_BAD_VERSION;
    refusal.message = (char *) "protocol version 2 is not supported";
    Qanat__Enrolled enrolled = QANAT__ENROLLED__INIT;
    enrolled.name = (char *) "ag0";
    enrolled.labels = s_labels;
    enrolled.n_labels = 1;
    Qanat__Stats stats = QANAT__STATS__INIT;
    stats.commits = 12;
    Qanat__Reply reply = QANAT__REPLY__INIT;
    reply.id = 7;
    reply.body_case = QANAT__REPLY__BODY_STATS;
    reply.stats = &stats;
    Qanat__Envelope env = QANAT__ENVELOPE__INIT;
    struct { const char *name; int body; void *message; } kinds [] = {
        { "ok-welcome", QANAT__ENVELOPE__BODY_WELCOME, &welcome },
        { "ok-assign", QANAT__ENVELOPE__BODY_ASSIGN, &assign },
        { "ok-ack", QANAT__ENVELOPE__BODY_ACK, &ack },
        { "ok-cancel", QANAT__ENVELOPE__BODY_CANCEL, &cancel },
        { "ok-refusal", QANAT__ENVELOPE__BODY_REFUSAL, &refusal },
        { "ok-enrolled", QANAT__ENVELOPE__BODY_ENROLLED, &enrolled },
        { "ok-reply", QANAT__ENVELOPE__BODY_REPLY, &reply },
    };
    for (size_t k = 0; k < sizeof kinds / sizeof kinds [0]; k++) {
        env.body_case = (Qanat__Envelope__BodyCase) kinds [k].body;
        env.welcome = (Qanat__Welcome *) kinds [k].message;    //  the oneof's one pointer
        zframe_t *frame = s_pack (&env);
        s_write (t, kinds [k].name, zframe_data (frame), zframe_size (frame));
        zframe_destroy (&frame);
    }
    s_write (t, "bad-empty", "", 0);
    s_write (t, "bad-version", "\x08\x02\x5a\x00", 4);
    s_write (t, "bad-no-body", "\x08\x01", 2);
    s_write (t, "bad-truncated", "\x08\x01\x52\x10\x0a", 5);
}

//  ---------------------------------------------------------------------
//  Join tokens, made with fixed keys.

static void
s_token_seeds (void)
{
    const char *t = "fuzz_token";
    uint8_t bytes [32];
    char coordinator [41], secret [41];
    for (int i = 0; i < 32; i++)
        bytes [i] = (uint8_t) (i * 7 + 1);
    zmq_z85_encode (coordinator, bytes, 32);
    for (int i = 0; i < 32; i++)
        bytes [i] = (uint8_t) (255 - i * 3);
    zmq_z85_encode (secret, bytes, 32);
    const char *endpoints [] = { NULL, "tcp://10.0.0.5:7711", "ipc:///run/qanat/agents",
                                 "tcp://[::1]:7711" };
    const char *names [] = { "ok-plain", "ok-tcp", "ok-ipc", "ok-ipv6" };
    for (int e = 0; e < 4; e++) {
        char *token = qn_token_format (coordinator, secret, endpoints [e]);
        assert (token);
        s_write (t, names [e], token, strlen (token));
        if (e == 1) {
            char padded [512];
            snprintf (padded, sizeof padded, "  %s\n", token);
            s_write (t, "ok-padded", padded, strlen (padded));
            token [strlen (token) - 20] = 0;
            s_write (t, "bad-cut", token, strlen (token));
        }
        free (token);
    }
    char bad [256];
    snprintf (bad, sizeof bad, "qnj1-%s%.39s~tcp://x", coordinator, secret);
    s_write (t, "bad-alphabet", bad, strlen (bad));
    snprintf (bad, sizeof bad, "qnj1-%s%shttp://x", coordinator, secret);
    s_write (t, "bad-endpoint", bad, strlen (bad));
    s_write (t, "bad-prefix", "qnj2-", 5);
}

int
main (int argc, char *argv [])
{
    if (argc != 2) {
        fprintf (stderr, "usage: make_seeds CORPUS_DIR\n");
        return 2;
    }
    s_dir = argv [1];
    mkdir (s_dir, 0755);
    s_agent_seeds ();
    s_client_seeds ();
    s_envelope_seeds ();
    s_token_seeds ();
    return 0;
}
