/*  test_msg - the protocol envelope codec: every message type through
    qn_msg_encode and qn_msg_decode, versioning, hostile input, and
    qn_msg_send over real ROUTER/DEALER socket pairs.

    Round trips are compared field by field by walking the protobuf-c
    descriptors, so a field added to proto/qanat.proto is compared without
    anyone remembering to.  Two guards keep that honest: every message we
    build must have every field set to a non-default value (proto3 does
    not send defaults, so a default field would round-trip trivially), and
    the comparator itself is checked by changing each field of the decoded
    copy in turn and requiring that it notices.
*/
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <float.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qn_msg.h"

#define COUNT(array) (sizeof (array) / sizeof ((array) [0]))

//  ---------------------------------------------------------------------
//  An arena for the messages the builders make; freed after each case.

#define ARENA_MAX  4096
static void *s_arena [ARENA_MAX];
static size_t s_arena_used;

static void *
s_alloc (size_t size)
{
    assert_true (s_arena_used < ARENA_MAX);
    void *block = calloc (1, size);
    assert_non_null (block);
    s_arena [s_arena_used++] = block;
    return block;
}

static void
s_arena_free (void)
{
    while (s_arena_used)
        free (s_arena [--s_arena_used]);
}

static void *
s_list (void **items, size_t count)
{
    void **list = (void **) s_alloc (count * sizeof (void *));
    memcpy (list, items, count * sizeof (void *));
    return list;
}

//  Sets a repeated field of pointers (messages or strings) and its count.
#define SET_LIST(msg, field, ...) do { \
    void *items_ [] = { __VA_ARGS__ }; \
    (msg)->n_##field = COUNT (items_); \
    (msg)->field = s_list (items_, COUNT (items_)); \
} while (0)

#define NEW(var, type, init) \
    type *var = (type *) s_alloc (sizeof (type)); \
    init (var)

static ProtobufCBinaryData
s_bytes (const void *data, size_t size)
{
    ProtobufCBinaryData bytes = { size, (uint8_t *) data };
    return bytes;
}

//  ---------------------------------------------------------------------
//  Builders.  Every field gets a value that is not its default, with
//  edge values where the encoding has edges: negative varints, 64-bit
//  extremes, NUL bytes inside bytes fields, UTF-8 in strings.

static const char s_log_data [] = "line\0with\0\0NULs\xff\x01";
static const uint8_t s_cursor [] = { 0, 0, 0, 0, 0, 0, 0x01, 0x00 };
static const char s_yaml [] = "name: demo\ntasks:\n  a: {run: \"echo \xc3\xa9t\xc3\xa9\"}\n";

static Qanat__Envelope *
s_envelope (Qanat__Envelope__BodyCase body_case)
{
    NEW (env, Qanat__Envelope, qanat__envelope__init);
    env->version = QN_PROTOCOL_VERSION;
    env->body_case = body_case;
    return env;
}

static Qanat__Label *
s_label (const char *key, const char *value)
{
    NEW (label, Qanat__Label, qanat__label__init);
    label->key = (char *) key;
    label->value = (char *) value;
    return label;
}

static Qanat__Param *
s_param (const char *name, const char *value)
{
    NEW (param, Qanat__Param, qanat__param__init);
    param->name = (char *) name;
    param->value = (char *) value;
    param->type = "int";
    return param;
}

static Qanat__AttemptRef *
s_ref (uint64_t run_id, uint32_t task_index, uint32_t attempt)
{
    NEW (ref, Qanat__AttemptRef, qanat__attempt_ref__init);
    ref->run_id = run_id;
    ref->task_index = task_index;
    ref->attempt = attempt;
    return ref;
}

static Qanat__LogChunk *
s_chunk (Qanat__Stream stream, const void *data, size_t size, int64_t time_us)
{
    NEW (chunk, Qanat__LogChunk, qanat__log_chunk__init);
    chunk->stream = stream;
    chunk->data = s_bytes (data, size);
    chunk->partial = true;
    chunk->time_us = time_us;
    return chunk;
}

static Qanat__MetricPoint *
s_point (const char *name, double value, int64_t step, int64_t time_us)
{
    NEW (point, Qanat__MetricPoint, qanat__metric_point__init);
    point->name = (char *) name;
    point->value = value;
    point->step = step;
    point->has_step = true;
    point->time_us = time_us;
    return point;
}

static Qanat__Event *
s_event (Qanat__Envelope **env_p, Qanat__Event__BodyCase body_case)
{
    NEW (event, Qanat__Event, qanat__event__init);
    event->attempt = s_ref (0xFEDCBA9876543210ULL, 7, 2);
    event->seq = UINT64_MAX;
    event->body_case = body_case;
    *env_p = s_envelope (QANAT__ENVELOPE__BODY_EVENT);
    (*env_p)->event = event;
    return event;
}

static Qanat__Request *
s_request (Qanat__Envelope **env_p, Qanat__Request__BodyCase body_case)
{
    NEW (request, Qanat__Request, qanat__request__init);
    request->id = 0x123456789ULL;
    request->body_case = body_case;
    *env_p = s_envelope (QANAT__ENVELOPE__BODY_REQUEST);
    (*env_p)->request = request;
    return request;
}

static Qanat__Reply *
s_reply (Qanat__Envelope **env_p, Qanat__Reply__BodyCase body_case)
{
    NEW (reply, Qanat__Reply, qanat__reply__init);
    reply->id = UINT64_MAX - 5;
    reply->body_case = body_case;
    *env_p = s_envelope (QANAT__ENVELOPE__BODY_REPLY);
    (*env_p)->reply = reply;
    return reply;
}

static Qanat__SubmitWorkflow *
s_submit (void)
{
    NEW (submit, Qanat__SubmitWorkflow, qanat__submit_workflow__init);
    submit->filename = "examples/demo/workflow.yaml";
    submit->source = s_bytes (s_yaml, sizeof (s_yaml) - 1);
    submit->created_us = 1700000000000001LL;
    submit->code = "dir:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae";
    return submit;
}

static Qanat__ArtifactStore *
s_store (void)
{
    NEW (store, Qanat__ArtifactStore, qanat__artifact_store__init);
    store->kind = "s3";
    store->bucket = "ml";
    store->prefix = "runs/";
    store->endpoint = "http://127.0.0.1:9000";
    store->region = "eu-west-1";
    store->path_style = true;
    return store;
}

static Qanat__OutputRecord *
s_output (const char *name, Qanat__ArtifactKind kind)
{
    NEW (output, Qanat__OutputRecord, qanat__output_record__init);
    output->name = (char *) name;
    output->kind = kind;
    output->hash = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    output->size = 200000000;
    output->value = "1234";
    output->location = "s3://ml/runs/blobs/0123";
    output->store = s_store ();
    output->uploaded = true;
    return output;
}

static Qanat__AttemptInfo *
s_attempt_info (uint32_t number, int32_t exit_code)
{
    NEW (info, Qanat__AttemptInfo, qanat__attempt_info__init);
    info->attempt = number;
    info->agent = "gpu-node-7";
    info->started_us = 1700000000000000LL + number;
    info->finished_us = 1700000000500000LL + number;
    info->finished = true;
    info->exit_code = exit_code;
    info->signal = 9;
    info->reason = "killed by signal 9";
    info->stack_trace = "Traceback (most recent call last):\n  File \"train.py\", line 3\nValueError: x";
    info->last_seq = 100000 + number;
    info->pid = 4194304;
    info->end = "timeout";
    info->backend = "slurm";
    info->engine_job_id = "4711";
    info->engine_url = "https://console.example/jobs/4711";
    info->environment = "hpc";
    info->host = "login-1.cluster";
    SET_LIST (info, outputs, s_output ("model", QANAT__ARTIFACT_KIND__ARTIFACT_DIR),
              s_output ("rows", QANAT__ARTIFACT_KIND__ARTIFACT_VALUE));
    return info;
}

static Qanat__CheckResult *
s_check (const char *expr, const char *severity, const char *detail)
{
    NEW (check, Qanat__CheckResult, qanat__check_result__init);
    check->expr = (char *) expr;
    check->severity = (char *) severity;
    check->passed = true;
    check->detail = (char *) detail;
    return check;
}

static Qanat__TaskInfo *
s_task_info (uint32_t index, const char *name, Qanat__TaskStatus status)
{
    NEW (task, Qanat__TaskInfo, qanat__task_info__init);
    task->index = index;
    task->name = (char *) name;
    task->status = status;
    SET_LIST (task, needs, "prepare", "fetch");
    task->waiting_reason = "waiting for an agent with gpu=a100";
    SET_LIST (task, attempts, s_attempt_info (1, -1), s_attempt_info (2, 137));
    SET_LIST (task, checks, s_check ("accuracy >= 0.9", "error", "accuracy = 0.93"),
              s_check ("max(loss) < 2.5", "warning", "max(loss) = 1.2"));
    SET_LIST (task, selector, s_label ("gpu", "a100"), s_label ("env", "onprem"));
    task->retry_at_us = 1700000009000000LL;
    task->cached_from = 41;
    task->queued_us = 1700000008000000LL;
    return task;
}

static Qanat__RunInfo *
s_run_info (uint64_t run_id)
{
    NEW (run, Qanat__RunInfo, qanat__run_info__init);
    run->run_id = run_id;
    run->workflow = "ml-pipeline";
    run->version = 12;
    run->status = QANAT__RUN_STATUS__RUN_SUCCEEDED_WITH_WARNINGS;
    run->created_us = 1700000000000000LL;
    run->finished_us = 1700000009999999LL;
    SET_LIST (run, params, s_param ("epochs", "20"), s_param ("lr", "0.1"));
    SET_LIST (run, tasks, s_task_info (1, "train", QANAT__TASK_STATUS__TASK_SUCCEEDED),
              s_task_info (2, "evaluate", QANAT__TASK_STATUS__TASK_SKIPPED));
    run->cancel_requested = true;
    run->filename = "/home/me/ml/workflow.yaml";
    run->owner = "alice";
    run->no_cache = true;
    SET_LIST (run, artifacts, s_output ("dataset", QANAT__ARTIFACT_KIND__ARTIFACT_DIR));
    run->code = "dir:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    run->waiting_reason = "waiting: workflow ml-pipeline runs at most 1 at once (1 running)";
    return run;
}

static Qanat__LogLine *
s_log_line (const char *task, uint32_t attempt, uint64_t seq, Qanat__Stream stream)
{
    NEW (line, Qanat__LogLine, qanat__log_line__init);
    line->task = (char *) task;
    line->attempt = attempt;
    line->seq = seq;
    line->chunk = s_chunk (stream, s_log_data, sizeof (s_log_data) - 1, -(int64_t) seq);
    line->log_seq = (1ULL << 40) + seq;
    return line;
}

static Qanat__MetricSeries *
s_series (uint64_t run_id, const char *task, const char *name)
{
    NEW (series, Qanat__MetricSeries, qanat__metric_series__init);
    series->run_id = run_id;
    series->task = (char *) task;
    series->name = (char *) name;
    SET_LIST (series, points, s_point (name, 0.1, 1, 11), s_point (name, -1e300, -2, 22),
              s_point (name, DBL_MAX, INT64_MAX, INT64_MIN), s_point (name, 4.9e-324, 3, 33));
    return series;
}

static Qanat__Resources *
s_resources (uint32_t cpus, uint64_t memory_mb, uint32_t gpus)
{
    NEW (res, Qanat__Resources, qanat__resources__init);
    res->cpus = cpus;
    res->memory_mb = memory_mb;
    res->gpus = gpus;
    return res;
}

static Qanat__Gpu *
s_gpu (uint32_t index, const char *name)
{
    NEW (gpu, Qanat__Gpu, qanat__gpu__init);
    gpu->index = index;
    gpu->uuid = "GPU-5d1c2f0e-7a1b-4c3d-9e8f-0123456789ab";
    gpu->name = (char *) name;
    gpu->memory_mb = 81920;
    return gpu;
}

static Qanat__AgentInfo *
s_agent_info (const char *name)
{
    NEW (agent, Qanat__AgentInfo, qanat__agent_info__init);
    agent->name = (char *) name;
    SET_LIST (agent, labels, s_label ("env", "aws"), s_label ("cloud", "aws"));
    SET_LIST (agent, backends, "local", "lambda", "kubernetes");
    agent->capacity = 64;
    agent->credit = 3;
    agent->running = 61;
    agent->connected = true;
    agent->last_seen_us = 1700000001234567LL;
    agent->state = "suspect";
    agent->draining = true;
    agent->heartbeat_ms = 10000;
    agent->suspect_after_ms = 120000;
    agent->lost_after_ms = 600000;
    agent->spool_bytes = UINT64_MAX - 1;
    agent->spool_full = true;
    agent->drained_by_admin = true;
    agent->total = s_resources (128, UINT64_MAX, 8);
    agent->used = s_resources (UINT32_MAX, 1, 7);
    SET_LIST (agent, gpus, s_gpu (3, "NVIDIA A100-SXM4-80GB"), s_gpu (UINT32_MAX, "L4"));
    agent->confinement = "none: no cgroup v2 hierarchy";
    return agent;
}

//  One builder per message the protocol carries.

static Qanat__Envelope *
s_build_register (void)
{
    NEW (reg, Qanat__Register, qanat__register__init);
    reg->name = "gpu-node-7";
    SET_LIST (reg, labels, s_label ("env", "onprem"), s_label ("gpu", "a100"),
              s_label ("zone", "eu=west \xe2\x82\xac"));
    SET_LIST (reg, backends, "local", "slurm");
    reg->capacity = 16;
    SET_LIST (reg, running, s_ref (42, 3, 1), s_ref (UINT64_MAX, UINT32_MAX, UINT32_MAX));
    reg->version = "0.1.0";
    reg->heartbeat_ms = 10000;
    reg->suspect_after_ms = 120000;
    reg->lost_after_ms = 600000;
    reg->draining = true;
    reg->resources = s_resources (64, 512 * 1024, 2);
    SET_LIST (reg, gpus, s_gpu (4, "NVIDIA H100 80GB HBM3"), s_gpu (5, "NVIDIA H100 80GB HBM3"));
    reg->confinement = "cgroup";
    Qanat__Envelope *env = s_envelope (QANAT__ENVELOPE__BODY_REGISTER);
    env->register_ = reg;
    return env;
}

static Qanat__Envelope *
s_build_heartbeat (void)
{
    NEW (heartbeat, Qanat__Heartbeat, qanat__heartbeat__init);
    heartbeat->running = 5;
    heartbeat->spool_bytes = 1u << 30;
    heartbeat->spool_full = true;
    heartbeat->cache_damaged = 4;
    Qanat__Envelope *env = s_envelope (QANAT__ENVELOPE__BODY_HEARTBEAT);
    env->heartbeat = heartbeat;
    return env;
}

static Qanat__Envelope *
s_build_credit (void)
{
    NEW (credit, Qanat__Credit, qanat__credit__init);
    credit->slots = UINT32_MAX;
    Qanat__Envelope *env = s_envelope (QANAT__ENVELOPE__BODY_CREDIT);
    env->credit = credit;
    return env;
}

static Qanat__Envelope *
s_build_event_started (void)
{
    Qanat__Envelope *env;
    Qanat__Event *event = s_event (&env, QANAT__EVENT__BODY_STARTED);
    NEW (started, Qanat__Started, qanat__started__init);
    started->pid = 31337;
    started->host = "node-7.cluster";
    started->workdir = "/var/lib/qanat/runs/42/train.1";
    started->backend = "kubernetes";
    started->engine_job_id = "ml/qanat-42-train-1";
    started->engine_url = "https://adb-1.azuredatabricks.net/?o=1#job/7/run/42";
    event->started = started;
    return env;
}

static Qanat__Envelope *
s_build_event_log (void)
{
    Qanat__Envelope *env;
    Qanat__Event *event = s_event (&env, QANAT__EVENT__BODY_LOG);
    event->log = s_chunk (QANAT__STREAM__STREAM_STDERR, s_log_data, sizeof (s_log_data) - 1,
                          1700000000000001LL);
    return env;
}

static Qanat__Envelope *
s_build_event_metric (void)
{
    Qanat__Envelope *env;
    Qanat__Event *event = s_event (&env, QANAT__EVENT__BODY_METRIC);
    event->metric = s_point ("accuracy", 0.9375, -1, 1700000000000002LL);
    return env;
}

static Qanat__Envelope *
s_build_event_finished (void)
{
    Qanat__Envelope *env;
    Qanat__Event *event = s_event (&env, QANAT__EVENT__BODY_FINISHED);
    NEW (finished, Qanat__Finished, qanat__finished__init);
    finished->exit_code = -2147483647 - 1;
    finished->signal = 15;
    finished->stack_trace = "Traceback (most recent call last):\n  ...\nKeyError: 'x'";
    finished->reason = "timed out after 90 s";
    finished->kind = QANAT__END_KIND__END_TIMEOUT;
    SET_LIST (finished, outputs, s_output ("model", QANAT__ARTIFACT_KIND__ARTIFACT_DIR));
    event->finished = finished;
    return env;
}

static Qanat__Assign *s_assign_body (void);

static Qanat__Envelope *
s_build_welcome (void)
{
    NEW (welcome, Qanat__Welcome, qanat__welcome__init);
    welcome->agent_name = "gpu-node-7";
    welcome->heartbeat_ms = 1000;
    welcome->suspect_after_ms = 5000;
    welcome->lost_after_ms = 30000;
    SET_LIST (welcome, held, s_assign_body ());
    Qanat__Envelope *env = s_envelope (QANAT__ENVELOPE__BODY_WELCOME);
    env->welcome = welcome;
    return env;
}

static Qanat__Assign *
s_assign_body (void)
{
    NEW (assign, Qanat__Assign, qanat__assign__init);
    assign->attempt = s_ref (42, 1, 3);
    assign->task_name = "train";
    assign->workflow = "ml-pipeline";
    SET_LIST (assign, argv, "python3", "train.py", "--lr", "0.1", "");
    SET_LIST (assign, env, s_label ("QANAT_RUN_ID", "42"), s_label ("QANAT_TASK", "train"),
              s_label ("QANAT_ATTEMPT", "3"), s_label ("PYTHONPATH", "/opt/a:/opt/b"));
    assign->timeout_s = 5400;
    assign->cpus = 8;
    assign->memory_mb = 1ULL << 40;
    assign->gpus = 2;
    SET_LIST (assign, redact, "hunter2", "s3cr\xc3\xa9t");
    assign->backend = "slurm";
    SET_LIST (assign, backend_options, s_label ("partition", "gpu"),
              s_label ("sbatch_arg", "--exclusive"));
    NEW (input, Qanat__InputSpec, qanat__input_spec__init);
    input->name = "dataset";
    input->kind = QANAT__ARTIFACT_KIND__ARTIFACT_DIR;
    input->hash = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";
    input->size = 182;
    input->path = "data/in";
    input->value = "-";
    input->location = "s3://ml/runs/blobs/fedc";
    input->store = s_store ();
    SET_LIST (assign, inputs, input);
    NEW (output, Qanat__OutputSpec, qanat__output_spec__init);
    output->name = "model";
    output->path = "model.bin";
    output->value = true;
    SET_LIST (assign, outputs, output);
    assign->store = s_store ();
    assign->workdir = "/shared/projects/ml";
    assign->warm = true;
    return assign;
}

static Qanat__Envelope *
s_build_assign (void)
{
    Qanat__Envelope *env = s_envelope (QANAT__ENVELOPE__BODY_ASSIGN);
    env->assign = s_assign_body ();
    return env;
}

static Qanat__Envelope *
s_build_blob_offer (void)
{
    NEW (offer, Qanat__BlobOffer, qanat__blob_offer__init);
    offer->hash = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    offer->size = 1ULL << 40;
    offer->attempt = s_ref (42, 1, 3);
    Qanat__Envelope *env = s_envelope (QANAT__ENVELOPE__BODY_BLOB_OFFER);
    env->blob_offer = offer;
    return env;
}

static Qanat__Envelope *
s_build_blob_want (void)
{
    NEW (want, Qanat__BlobWant, qanat__blob_want__init);
    want->hash = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    want->offset = 262144;
    want->window = 2097152;
    want->complete = true;
    want->error = "unknown blob";
    Qanat__Envelope *env = s_envelope (QANAT__ENVELOPE__BODY_BLOB_WANT);
    env->blob_want = want;
    return env;
}

static Qanat__Envelope *
s_build_blob_chunk (void)
{
    NEW (chunk, Qanat__BlobChunk, qanat__blob_chunk__init);
    chunk->hash = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    chunk->offset = 524288;
    chunk->data = s_bytes ("chunk\0data", 10);
    chunk->sha256 = s_bytes ("0123456789abcdef0123456789abcdef", 32);
    chunk->error = "gone";
    Qanat__Envelope *env = s_envelope (QANAT__ENVELOPE__BODY_BLOB_CHUNK);
    env->blob_chunk = chunk;
    return env;
}

static Qanat__Envelope *
s_build_request_get_blob (void)
{
    Qanat__Envelope *env;
    Qanat__Request *request = s_request (&env, QANAT__REQUEST__BODY_GET_BLOB);
    NEW (get, Qanat__GetBlob, qanat__get_blob__init);
    get->hash = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    get->offset = 1048576;
    get->size = 65536;
    request->get_blob = get;
    return env;
}

static Qanat__Envelope *
s_build_request_put_blob (void)
{
    Qanat__Envelope *env;
    Qanat__Request *request = s_request (&env, QANAT__REQUEST__BODY_PUT_BLOB);
    NEW (put, Qanat__PutBlob, qanat__put_blob__init);
    put->hash = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    put->offset = 1048576;
    put->total_size = 3000000;
    put->data = s_bytes ("piece", 5);
    request->put_blob = put;
    return env;
}

static Qanat__Envelope *
s_build_reply_blob (void)
{
    Qanat__Envelope *env;
    Qanat__Reply *reply = s_reply (&env, QANAT__REPLY__BODY_BLOB);
    NEW (data, Qanat__BlobData, qanat__blob_data__init);
    data->hash = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    data->offset = 3;
    data->total_size = 1ULL << 33;
    data->data = s_bytes ("abc", 3);
    reply->blob = data;
    return env;
}

static Qanat__Envelope *
s_build_ack (void)
{
    NEW (ack, Qanat__Ack, qanat__ack__init);
    ack->attempt = s_ref (42, 1, 3);
    ack->seq = 1ULL << 63;
    Qanat__Envelope *env = s_envelope (QANAT__ENVELOPE__BODY_ACK);
    env->ack = ack;
    return env;
}

static Qanat__Envelope *
s_build_cancel (void)
{
    NEW (cancel, Qanat__Cancel, qanat__cancel__init);
    cancel->attempt = s_ref (42, 1, 2);
    cancel->reason = "this attempt is no longer current";
    Qanat__Envelope *env = s_envelope (QANAT__ENVELOPE__BODY_CANCEL);
    env->cancel = cancel;
    return env;
}

static Qanat__Envelope *
s_build_refusal (void)
{
    NEW (refusal, Qanat__Refusal, qanat__refusal__init);
    refusal->code = QANAT__REFUSAL_CODE__REFUSAL_NOT_REGISTERED;
    refusal->message = "register first";
    Qanat__Envelope *env = s_envelope (QANAT__ENVELOPE__BODY_REFUSAL);
    env->refusal = refusal;
    return env;
}

static Qanat__Envelope *
s_build_request_submit (void)
{
    Qanat__Envelope *env;
    s_request (&env, QANAT__REQUEST__BODY_SUBMIT)->submit = s_submit ();
    return env;
}

static Qanat__Envelope *
s_build_request_start_run (void)
{
    Qanat__Envelope *env;
    Qanat__Request *request = s_request (&env, QANAT__REQUEST__BODY_START_RUN);
    NEW (start, Qanat__StartRun, qanat__start_run__init);
    start->workflow = s_submit ();
    SET_LIST (start, params, s_param ("epochs", "3"), s_param ("dataset", "/data/x y.csv"));
    start->no_cache = true;
    start->workflow_name = "ml-pipeline";
    start->workflow_version = 3;
    start->reuse_from_run = 41;
    start->code = "dir:fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";
    request->start_run = start;
    return env;
}

static Qanat__Envelope *
s_build_request_get_run (void)
{
    Qanat__Envelope *env;
    Qanat__Request *request = s_request (&env, QANAT__REQUEST__BODY_GET_RUN);
    NEW (get, Qanat__GetRun, qanat__get_run__init);
    get->run_id = 42;
    request->get_run = get;
    return env;
}

static Qanat__Envelope *
s_build_request_list_runs (void)
{
    Qanat__Envelope *env;
    Qanat__Request *request = s_request (&env, QANAT__REQUEST__BODY_LIST_RUNS);
    NEW (list, Qanat__ListRuns, qanat__list_runs__init);
    list->workflow = "ml-pipeline";
    list->limit = 50;
    list->status = QANAT__RUN_STATUS__RUN_CANCELED;
    list->has_status = true;
    list->owner = "alice";
    list->created_after_us = -1;
    list->created_before_us = INT64_MAX;
    list->before_run_id = UINT64_MAX;
    request->list_runs = list;
    return env;
}

static Qanat__Envelope *
s_build_request_read_logs (void)
{
    Qanat__Envelope *env;
    Qanat__Request *request = s_request (&env, QANAT__REQUEST__BODY_READ_LOGS);
    NEW (read, Qanat__ReadLogs, qanat__read_logs__init);
    read->run_id = 42;
    read->task = "train";
    read->attempt = 2;
    read->cursor = s_bytes (s_cursor, sizeof (s_cursor));
    read->limit = 1000;
    read->after_seq = 1ULL << 50;
    request->read_logs = read;
    return env;
}

static Qanat__Envelope *
s_build_request_read_metrics (void)
{
    Qanat__Envelope *env;
    Qanat__Request *request = s_request (&env, QANAT__REQUEST__BODY_READ_METRICS);
    NEW (read, Qanat__ReadMetrics, qanat__read_metrics__init);
    read->run_id = 42;
    read->workflow = "ml-pipeline";
    read->name = "loss";
    read->all_points = true;
    request->read_metrics = read;
    return env;
}

static Qanat__Envelope *
s_build_request_list_agents (void)
{
    Qanat__Envelope *env;
    Qanat__Request *request = s_request (&env, QANAT__REQUEST__BODY_LIST_AGENTS);
    NEW (list, Qanat__ListAgents, qanat__list_agents__init);
    request->list_agents = list;
    return env;
}

static Qanat__Envelope *
s_build_request_cancel_run (void)
{
    Qanat__Envelope *env;
    Qanat__Request *request = s_request (&env, QANAT__REQUEST__BODY_CANCEL_RUN);
    NEW (cancel, Qanat__CancelRun, qanat__cancel_run__init);
    cancel->run_id = UINT64_MAX;
    cancel->task = "train";
    request->cancel_run = cancel;
    return env;
}

static Qanat__Envelope *
s_build_request_get_stats (void)
{
    Qanat__Envelope *env;
    Qanat__Request *request = s_request (&env, QANAT__REQUEST__BODY_GET_STATS);
    NEW (get, Qanat__GetStats, qanat__get_stats__init);
    request->get_stats = get;
    return env;
}

static Qanat__Envelope *
s_build_request_drain_agent (void)
{
    Qanat__Envelope *env;
    Qanat__Request *request = s_request (&env, QANAT__REQUEST__BODY_DRAIN_AGENT);
    NEW (drain, Qanat__DrainAgent, qanat__drain_agent__init);
    drain->name = "gpu-node-7";
    drain->drain = true;
    request->drain_agent = drain;
    return env;
}

static Qanat__Envelope *
s_build_drain (void)
{
    NEW (drain, Qanat__Drain, qanat__drain__init);
    drain->draining = true;
    drain->reason = "agent shutting down";
    Qanat__Envelope *env = s_envelope (QANAT__ENVELOPE__BODY_DRAIN);
    env->drain = drain;
    return env;
}

static Qanat__Envelope *
s_build_enrol (void)
{
    NEW (enrol, Qanat__Enrol, qanat__enrol__init);
    enrol->name = "gpu-node-7";
    static const uint8_t key [32] = { 1, 2, 3, 0, 255, 254, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
                                      17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32 };
    enrol->public_key = s_bytes ((const char *) key, sizeof key);
    SET_LIST (enrol, labels, s_label ("env", "gpu"));
    Qanat__Envelope *env = s_envelope (QANAT__ENVELOPE__BODY_ENROL);
    env->enrol = enrol;
    return env;
}

static Qanat__Envelope *
s_build_enrolled (void)
{
    NEW (enrolled, Qanat__Enrolled, qanat__enrolled__init);
    enrolled->name = "gpu-node-7";
    SET_LIST (enrolled, labels, s_label ("env", "gpu"), s_label ("zone", "b"));
    Qanat__Envelope *env = s_envelope (QANAT__ENVELOPE__BODY_ENROLLED);
    env->enrolled = enrolled;
    return env;
}

static Qanat__Envelope *
s_build_request_create_token (void)
{
    Qanat__Envelope *env;
    Qanat__Request *request = s_request (&env, QANAT__REQUEST__BODY_CREATE_TOKEN);
    NEW (create, Qanat__CreateToken, qanat__create_token__init);
    create->ttl_s = 600;
    create->uses = 3;
    SET_LIST (create, labels, s_label ("env", "gpu"));
    request->create_token = create;
    return env;
}

static Qanat__Envelope *
s_build_request_add_user (void)
{
    Qanat__Envelope *env;
    Qanat__Request *request = s_request (&env, QANAT__REQUEST__BODY_ADD_USER);
    NEW (add, Qanat__AddUser, qanat__add_user__init);
    add->name = "alice";
    add->role = "user";
    request->add_user = add;
    return env;
}

static Qanat__Envelope *
s_build_request_revoke_agent (void)
{
    Qanat__Envelope *env;
    Qanat__Request *request = s_request (&env, QANAT__REQUEST__BODY_REVOKE_AGENT);
    NEW (revoke, Qanat__RevokeAgent, qanat__revoke_agent__init);
    revoke->name = "stolen-laptop";
    request->revoke_agent = revoke;
    return env;
}

//  An access list with one entry and one agent label
static Qanat__SecretAccess *
s_secret_access (const char *entry)
{
    NEW (access, Qanat__SecretAccess, qanat__secret_access__init);
    SET_LIST (access, allow, (char *) entry);
    SET_LIST (access, agents, s_label ("env", "prod"));
    return access;
}

static Qanat__Envelope *
s_build_request_set_secret (void)
{
    Qanat__Envelope *env;
    Qanat__Request *request = s_request (&env, QANAT__REQUEST__BODY_SET_SECRET);
    NEW (set, Qanat__SetSecret, qanat__set_secret__init);
    set->name = "DB_PASSWORD";
    set->value = s_bytes ("hunter2\0tail", 12);
    set->access = s_secret_access ("user:eve");
    set->access_only = true;
    request->set_secret = set;
    return env;
}

static Qanat__Envelope *
s_build_request_list_secrets (void)
{
    Qanat__Envelope *env;
    Qanat__Request *request = s_request (&env, QANAT__REQUEST__BODY_LIST_SECRETS);
    NEW (list, Qanat__ListSecrets, qanat__list_secrets__init);
    request->list_secrets = list;
    return env;
}

static Qanat__Envelope *
s_build_reply_token (void)
{
    Qanat__Envelope *env;
    Qanat__Reply *reply = s_reply (&env, QANAT__REPLY__BODY_TOKEN);
    NEW (token, Qanat__JoinToken, qanat__join_token__init);
    token->token = "qnj1-0000000000000000000000000000000000000000";
    token->id = "t1234abcd";
    token->expires_us = 1700000000000000LL;
    token->uses = 2;
    reply->token = token;
    return env;
}

static Qanat__Envelope *
s_build_reply_user_key (void)
{
    Qanat__Envelope *env;
    Qanat__Reply *reply = s_reply (&env, QANAT__REPLY__BODY_USER_KEY);
    NEW (key, Qanat__UserKey, qanat__user_key__init);
    key->name = "alice";
    key->role = "user";
    key->key_file = "metadata\n    name = \"alice\"\n";
    reply->user_key = key;
    return env;
}

static Qanat__Envelope *
s_build_reply_secrets (void)
{
    Qanat__Envelope *env;
    Qanat__Reply *reply = s_reply (&env, QANAT__REPLY__BODY_SECRETS);
    NEW (list, Qanat__SecretList, qanat__secret_list__init);
    SET_LIST (list, names, "DB_PASSWORD", "S3_KEY");
    SET_LIST (list, access, s_secret_access ("role:admin"), s_secret_access ("workflow:etl"));
    reply->secrets = list;
    return env;
}

static Qanat__Envelope *
s_build_reply_error (void)
{
    Qanat__Envelope *env;
    Qanat__Reply *reply = s_reply (&env, QANAT__REPLY__BODY_ERROR);
    NEW (error, Qanat__Error, qanat__error__init);
    error->message = "workflow.yaml:3:5: unknown key 'rnu' (did you mean 'run'?)\n"
                     "workflow.yaml:9:1: task 'b' needs unknown task 'z'";
    error->code = QANAT__ERROR_CODE__ERROR_CONFLICT;
    reply->error = error;
    return env;
}

static Qanat__Envelope *
s_build_reply_workflow (void)
{
    Qanat__Envelope *env;
    Qanat__Reply *reply = s_reply (&env, QANAT__REPLY__BODY_WORKFLOW);
    NEW (version, Qanat__WorkflowVersion, qanat__workflow_version__init);
    version->name = "ml-pipeline";
    version->version = 7;
    version->created = true;
    version->code = "dir:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae";
    reply->workflow = version;
    return env;
}

static Qanat__Envelope *
s_build_reply_run (void)
{
    Qanat__Envelope *env;
    s_reply (&env, QANAT__REPLY__BODY_RUN)->run = s_run_info (42);
    return env;
}

static Qanat__Envelope *
s_build_reply_runs (void)
{
    Qanat__Envelope *env;
    Qanat__Reply *reply = s_reply (&env, QANAT__REPLY__BODY_RUNS);
    NEW (list, Qanat__RunList, qanat__run_list__init);
    SET_LIST (list, runs, s_run_info (44), s_run_info (43), s_run_info (1));
    list->next_before = 1;
    reply->runs = list;
    return env;
}

static Qanat__Envelope *
s_build_reply_logs (void)
{
    Qanat__Envelope *env;
    Qanat__Reply *reply = s_reply (&env, QANAT__REPLY__BODY_LOGS);
    NEW (page, Qanat__LogPage, qanat__log_page__init);
    SET_LIST (page, lines, s_log_line ("prepare", 1, 1, QANAT__STREAM__STREAM_SYSTEM),
              s_log_line ("train", 2, 2, QANAT__STREAM__STREAM_STDERR),
              s_log_line ("train", 2, 3, QANAT__STREAM__STREAM_STDERR));
    page->cursor = s_bytes (s_cursor, sizeof (s_cursor));
    page->run_finished = true;
    reply->logs = page;
    return env;
}

static Qanat__Envelope *
s_build_reply_metrics (void)
{
    Qanat__Envelope *env;
    Qanat__Reply *reply = s_reply (&env, QANAT__REPLY__BODY_METRICS);
    NEW (report, Qanat__MetricReport, qanat__metric_report__init);
    SET_LIST (report, series, s_series (42, "train", "loss"), s_series (43, "train", "accuracy"));
    reply->metrics = report;
    return env;
}

static Qanat__Envelope *
s_build_reply_agents (void)
{
    Qanat__Envelope *env;
    Qanat__Reply *reply = s_reply (&env, QANAT__REPLY__BODY_AGENTS);
    NEW (list, Qanat__AgentList, qanat__agent_list__init);
    SET_LIST (list, agents, s_agent_info ("aws-1"), s_agent_info ("onprem-gpu"));
    reply->agents = list;
    return env;
}

static Qanat__Envelope *
s_build_reply_stats (void)
{
    Qanat__Envelope *env;
    Qanat__Reply *reply = s_reply (&env, QANAT__REPLY__BODY_STATS);
    NEW (stats, Qanat__Stats, qanat__stats__init);
    stats->malformed_agent_frames = 1;
    stats->malformed_client_frames = 2;
    stats->bad_version = 3;
    stats->events_committed = UINT64_MAX;
    stats->duplicate_events = 5;
    stats->stale_events = 6;
    stats->commits = 7;
    stats->commit_failures = 8;
    stats->denied = 9;
    stats->runs_deleted = 10;
    stats->blob_bytes_freed = 11;
    stats->blobs_stored = 12;
    stats->blob_bytes_in = 13;
    stats->blob_bytes_out = 14;
    stats->blob_chunks_rejected = 15;
    stats->sends_refused = 16;
    stats->s3_objects_deleted = 17;
    stats->s3_delete_failures = 18;
    stats->agent_cache_damaged = 19;
    static uint64_t buckets [10] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, UINT64_MAX };
    stats->commit_latency_bucket = buckets;
    stats->n_commit_latency_bucket = 10;
    stats->commit_latency_sum_ms = 0.25;
    stats->log_lines_in = 22;
    stats->log_bytes_in = 23;
    stats->tasks_dispatched = 24;
    SET_LIST (stats, attempts_ended, s_label ("exit", "3"), s_label ("timeout", "1"));
    SET_LIST (stats, queue_depth, s_label ("gpu=a100@slurm", "7"));
    SET_LIST (stats, agents_by_state, s_label ("connected", "2"), s_label ("lost", "0"));
    reply->stats = stats;
    return env;
}

//  API tokens and who the caller is
static Qanat__Envelope *
s_build_request_whoami (void)
{
    Qanat__Envelope *env;
    Qanat__Request *request = s_request (&env, QANAT__REQUEST__BODY_WHOAMI);
    NEW (whoami, Qanat__WhoAmI, qanat__who_am_i__init);
    request->whoami = whoami;
    return env;
}

static Qanat__Envelope *
s_build_request_create_api_token (void)
{
    Qanat__Envelope *env;
    Qanat__Request *request = s_request (&env, QANAT__REQUEST__BODY_CREATE_API_TOKEN);
    NEW (create, Qanat__CreateApiToken, qanat__create_api_token__init);
    create->name = "dashboard";
    create->role = "user";
    create->ttl_s = 30 * 86400;
    create->user = "alice";
    request->create_api_token = create;
    return env;
}

static Qanat__Envelope *
s_build_request_list_api_tokens (void)
{
    Qanat__Envelope *env;
    Qanat__Request *request = s_request (&env, QANAT__REQUEST__BODY_LIST_API_TOKENS);
    NEW (list, Qanat__ListApiTokens, qanat__list_api_tokens__init);
    request->list_api_tokens = list;
    return env;
}

static Qanat__Envelope *
s_build_request_revoke_api_token (void)
{
    Qanat__Envelope *env;
    Qanat__Request *request = s_request (&env, QANAT__REQUEST__BODY_REVOKE_API_TOKEN);
    NEW (revoke, Qanat__RevokeApiToken, qanat__revoke_api_token__init);
    revoke->name = "dashboard";
    request->revoke_api_token = revoke;
    return env;
}

static Qanat__Envelope *
s_build_reply_whoami (void)
{
    Qanat__Envelope *env;
    Qanat__Reply *reply = s_reply (&env, QANAT__REPLY__BODY_WHOAMI);
    NEW (principal, Qanat__Principal, qanat__principal__init);
    principal->kind = "apitoken";
    principal->name = "alice";
    principal->public_key = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7";
    principal->role = "user";
    SET_LIST (principal, labels, s_label ("env", "onprem"));
    principal->expires_us = 1796000000000000;
    principal->uses_left = 1;
    principal->revoked = true;
    principal->created_us = 1765000000000000;
    reply->whoami = principal;
    return env;
}

static Qanat__ApiToken *
s_api_token (const char *name)
{
    NEW (token, Qanat__ApiToken, qanat__api_token__init);
    token->name = (char *) name;
    token->token = "qat_Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFyYmE";
    token->role = "admin";
    token->user = "ci-robot";
    token->created_us = 1765000000000000;
    token->expires_us = 1796000000000000;
    token->revoked = true;
    return token;
}

static Qanat__Envelope *
s_build_reply_api_token (void)
{
    Qanat__Envelope *env;
    s_reply (&env, QANAT__REPLY__BODY_API_TOKEN)->api_token = s_api_token ("dashboard");
    return env;
}

static Qanat__Envelope *
s_build_reply_api_tokens (void)
{
    Qanat__Envelope *env;
    Qanat__Reply *reply = s_reply (&env, QANAT__REPLY__BODY_API_TOKENS);
    NEW (list, Qanat__ApiTokenList, qanat__api_token_list__init);
    SET_LIST (list, tokens, s_api_token ("ci"), s_api_token ("dashboard"));
    reply->api_tokens = list;
    return env;
}

static Qanat__Envelope *
s_build_request_list_workflows (void)
{
    Qanat__Envelope *env;
    Qanat__Request *request = s_request (&env, QANAT__REQUEST__BODY_LIST_WORKFLOWS);
    NEW (list, Qanat__ListWorkflows, qanat__list_workflows__init);
    request->list_workflows = list;
    return env;
}

static Qanat__Envelope *
s_build_request_get_workflow (void)
{
    Qanat__Envelope *env;
    Qanat__Request *request = s_request (&env, QANAT__REQUEST__BODY_GET_WORKFLOW);
    NEW (get, Qanat__GetWorkflow, qanat__get_workflow__init);
    get->name = "ml-pipeline";
    get->version = UINT32_MAX;
    request->get_workflow = get;
    return env;
}

static Qanat__WorkflowSummary *
s_workflow_summary (const char *name, uint32_t latest)
{
    NEW (summary, Qanat__WorkflowSummary, qanat__workflow_summary__init);
    summary->name = (char *) name;
    summary->latest = latest;
    summary->created_us = 1700000000000000LL + latest;
    summary->runs = 100000 + latest;
    return summary;
}

static Qanat__Envelope *
s_build_reply_workflows (void)
{
    Qanat__Envelope *env;
    Qanat__Reply *reply = s_reply (&env, QANAT__REPLY__BODY_WORKFLOWS);
    NEW (list, Qanat__WorkflowList, qanat__workflow_list__init);
    SET_LIST (list, workflows, s_workflow_summary ("etl", 1),
              s_workflow_summary ("ml-pipeline", 12));
    reply->workflows = list;
    return env;
}

static Qanat__Envelope *
s_build_reply_workflow_source (void)
{
    Qanat__Envelope *env;
    Qanat__Reply *reply = s_reply (&env, QANAT__REPLY__BODY_WORKFLOW_SOURCE);
    NEW (source, Qanat__WorkflowSource, qanat__workflow_source__init);
    source->name = "demo";
    source->version = 2;
    source->filename = "examples/demo/workflow.yaml";
    source->source = s_bytes (s_yaml, sizeof (s_yaml) - 1);
    source->created_us = 1700000000000002LL;
    source->latest = 3;
    source->code = "dir:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae";
    reply->workflow_source = source;
    return env;
}

static Qanat__Envelope *
s_build_request_list_users (void)
{
    Qanat__Envelope *env;
    Qanat__Request *request = s_request (&env, QANAT__REQUEST__BODY_LIST_USERS);
    NEW (list, Qanat__ListUsers, qanat__list_users__init);
    request->list_users = list;
    return env;
}

static Qanat__Envelope *
s_build_request_revoke_user (void)
{
    Qanat__Envelope *env;
    Qanat__Request *request = s_request (&env, QANAT__REQUEST__BODY_REVOKE_USER);
    NEW (revoke, Qanat__RevokeUser, qanat__revoke_user__init);
    revoke->name = "alice";
    request->revoke_user = revoke;
    return env;
}

static Qanat__Envelope *
s_build_request_list_tokens (void)
{
    Qanat__Envelope *env;
    Qanat__Request *request = s_request (&env, QANAT__REQUEST__BODY_LIST_TOKENS);
    NEW (list, Qanat__ListTokens, qanat__list_tokens__init);
    request->list_tokens = list;
    return env;
}

static Qanat__Envelope *
s_build_request_revoke_token (void)
{
    Qanat__Envelope *env;
    Qanat__Request *request = s_request (&env, QANAT__REQUEST__BODY_REVOKE_TOKEN);
    NEW (revoke, Qanat__RevokeToken, qanat__revoke_token__init);
    revoke->id = "t0badcafe";
    request->revoke_token = revoke;
    return env;
}

static Qanat__Envelope *
s_build_request_delete_secret (void)
{
    Qanat__Envelope *env;
    Qanat__Request *request = s_request (&env, QANAT__REQUEST__BODY_DELETE_SECRET);
    NEW (remove, Qanat__DeleteSecret, qanat__delete_secret__init);
    remove->name = "db-password";
    request->delete_secret = remove;
    return env;
}

static Qanat__Envelope *
s_build_request_remove_agent (void)
{
    Qanat__Envelope *env;
    Qanat__Request *request = s_request (&env, QANAT__REQUEST__BODY_REMOVE_AGENT);
    NEW (remove, Qanat__RemoveAgent, qanat__remove_agent__init);
    remove->name = "gpu-1";
    request->remove_agent = remove;
    return env;
}

static Qanat__Envelope *
s_build_request_label_agent (void)
{
    Qanat__Envelope *env;
    Qanat__Request *request = s_request (&env, QANAT__REQUEST__BODY_LABEL_AGENT);
    NEW (label, Qanat__LabelAgent, qanat__label_agent__init);
    label->name = "gpu-1";
    SET_LIST (label, set, s_label ("gpu", "a100"), s_label ("zone", "b"));
    static char *removed [] = { "old", "stale" };
    label->remove = removed;
    label->n_remove = 2;
    request->label_agent = label;
    return env;
}

static Qanat__Envelope *
s_build_reply_principals (void)
{
    Qanat__Envelope *env;
    Qanat__Reply *reply = s_reply (&env, QANAT__REPLY__BODY_PRINCIPALS);
    NEW (list, Qanat__PrincipalList, qanat__principal_list__init);
    NEW (user, Qanat__Principal, qanat__principal__init);
    user->kind = "user";
    user->name = "alice";
    user->public_key = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7";
    user->role = "admin";
    SET_LIST (user, labels, s_label ("team", "ml"));
    user->expires_us = 1;
    user->uses_left = 1;
    user->revoked = true;
    user->created_us = 1765000000000000;
    NEW (token, Qanat__Principal, qanat__principal__init);
    token->kind = "token";
    token->name = "t0badcafe";
    token->public_key = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf8";
    token->role = "agent";
    token->revoked = true;
    SET_LIST (token, labels, s_label ("env", "onprem"));
    token->expires_us = 1796000000000000;
    token->uses_left = 3;
    token->created_us = 1765000000000001;
    SET_LIST (list, principals, user, token);
    reply->principals = list;
    return env;
}

static Qanat__Envelope *
s_build_request_list_notifications (void)
{
    Qanat__Envelope *env;
    Qanat__Request *request = s_request (&env, QANAT__REQUEST__BODY_LIST_NOTIFICATIONS);
    NEW (list, Qanat__ListNotifications, qanat__list_notifications__init);
    list->run_id = 42;
    list->limit = 10;
    request->list_notifications = list;
    return env;
}

static Qanat__Envelope *
s_build_reply_notifications (void)
{
    Qanat__Envelope *env;
    Qanat__Reply *reply = s_reply (&env, QANAT__REPLY__BODY_NOTIFICATIONS);
    NEW (list, Qanat__NotifList, qanat__notif_list__init);
    NEW (entry, Qanat__NotifEntry, qanat__notif_entry__init);
    entry->run_id = 42;
    entry->channel = 1;
    entry->workflow = "train";
    entry->version = 3;
    entry->event = "check_failed";
    entry->kind = "email";
    entry->target = "ops@example.com via smtps://mail.example:465";
    entry->state = "failed";
    entry->attempts = 7;
    entry->last_error = "HTTP 500: try later";
    entry->created_us = 1765000000000000;
    entry->next_attempt_us = 1765000000000001;
    entry->done_us = 1765000000000002;
    entry->idempotency_key = "qanat-run-42-check_failed-1";
    entry->owner = "alice";
    static uint8_t body [] = "{\"run\":42}";
    entry->body.data = body;
    entry->body.len = sizeof body - 1;
    entry->text = "qanat: run 42 of train (version 3) failed";
    entry->url = "smtps://mail.example:465";
    entry->secret = "${{ secrets.HOOK }}";
    static char *to [] = { "ops@example.com", "dev@example.com" };
    entry->to = to;
    entry->n_to = 2;
    entry->from = "qanat@example.com";
    entry->user = "qanat";
    entry->password = "${{ secrets.SMTP }}";
    entry->from_default = true;
    SET_LIST (list, entries, entry);
    reply->notifications = list;
    return env;
}

static Qanat__Envelope *
s_build_request_list_schedules (void)
{
    Qanat__Envelope *env;
    Qanat__Request *request = s_request (&env, QANAT__REQUEST__BODY_LIST_SCHEDULES);
    NEW (list, Qanat__ListSchedules, qanat__list_schedules__init);
    list->workflow = "nightly";
    request->list_schedules = list;
    return env;
}

static Qanat__Envelope *
s_build_request_schedule_pause (void)
{
    Qanat__Envelope *env;
    Qanat__Request *request = s_request (&env, QANAT__REQUEST__BODY_SCHEDULE_PAUSE);
    NEW (pause, Qanat__SchedulePause, qanat__schedule_pause__init);
    pause->workflow = "nightly";
    pause->paused = true;
    request->schedule_pause = pause;
    return env;
}

static Qanat__Envelope *
s_build_request_set_limit (void)
{
    Qanat__Envelope *env;
    Qanat__Request *request = s_request (&env, QANAT__REQUEST__BODY_SET_LIMIT);
    NEW (set, Qanat__SetLimit, qanat__set_limit__init);
    set->kind = "pool";
    set->name = "gpu-a100";
    set->value = 4;
    request->set_limit = set;
    return env;
}

static Qanat__Envelope *
s_build_request_list_limits (void)
{
    Qanat__Envelope *env;
    Qanat__Request *request = s_request (&env, QANAT__REQUEST__BODY_LIST_LIMITS);
    NEW (list, Qanat__ListLimits, qanat__list_limits__init);
    list->kind = "weight";
    request->list_limits = list;
    return env;
}

static Qanat__Envelope *
s_build_reply_limits (void)
{
    Qanat__Envelope *env;
    Qanat__Reply *reply = s_reply (&env, QANAT__REPLY__BODY_LIMITS);
    NEW (list, Qanat__LimitList, qanat__limit_list__init);
    NEW (item, Qanat__LimitInfo, qanat__limit_info__init);
    item->kind = "pool";
    item->name = "gpu-a100";
    item->value = 4;
    item->set = true;
    item->used = 3;
    item->waiting = 17;
    SET_LIST (list, limits, item);
    reply->limits = list;
    return env;
}

static Qanat__Envelope *
s_build_request_backup (void)
{
    Qanat__Envelope *env;
    Qanat__Request *request = s_request (&env, QANAT__REQUEST__BODY_BACKUP);
    NEW (backup, Qanat__Backup, qanat__backup__init);
    backup->dir = "/var/backups/qanat/monday";
    request->backup = backup;
    return env;
}

static Qanat__Envelope *
s_build_reply_backup_done (void)
{
    Qanat__Envelope *env;
    Qanat__Reply *reply = s_reply (&env, QANAT__REPLY__BODY_BACKUP_DONE);
    NEW (done, Qanat__BackupDone, qanat__backup_done__init);
    done->dir = "/var/backups/qanat/monday";
    done->manifest = "{\"format\": \"qanat-backup 1\"}";
    done->bytes = 123456789;
    done->elapsed_ms = 4321;
    reply->backup_done = done;
    return env;
}

static Qanat__Envelope *
s_build_reply_schedules (void)
{
    Qanat__Envelope *env;
    Qanat__Reply *reply = s_reply (&env, QANAT__REPLY__BODY_SCHEDULES);
    NEW (list, Qanat__ScheduleList, qanat__schedule_list__init);
    NEW (row, Qanat__ScheduleInfo, qanat__schedule_info__init);
    row->workflow = "nightly";
    row->version = 3;
    row->index = 1;
    row->cron = "0 3 * * 1-5";
    row->timezone = "Europe/Berlin";
    row->catchup = "latest";
    row->next_tick_us = 1765000000000000;
    row->last_tick_us = 1764900000000000;
    row->last_run = UINT64_MAX;
    row->last_run_status = QANAT__RUN_STATUS__RUN_SUCCEEDED_WITH_WARNINGS;
    row->last_skipped = "max_active 1 reached";
    row->paused = true;
    row->max_active = 2;
    SET_LIST (row, trigger_after, "prepare", "clean");
    SET_LIST (row, trigger_on, "succeeded");
    SET_LIST (list, schedules, row);
    list->now_us = 1765000000000001;
    reply->schedules = list;
    return env;
}

//  The table: every case becomes one cmocka test, and the coverage test
//  walks them all.
#define CASES(X) \
    X (register) X (heartbeat) X (credit) \
    X (event_started) X (event_log) X (event_metric) X (event_finished) \
    X (welcome) X (assign) X (ack) X (cancel) X (refusal) \
    X (request_submit) X (request_start_run) X (request_get_run) X (request_list_runs) \
    X (request_read_logs) X (request_read_metrics) X (request_list_agents) \
    X (request_cancel_run) X (request_get_stats) X (request_drain_agent) X (drain) \
    X (enrol) X (enrolled) X (request_create_token) X (request_add_user) \
    X (request_revoke_agent) X (request_set_secret) X (request_list_secrets) \
    X (reply_token) X (reply_user_key) X (reply_secrets) \
    X (reply_error) X (reply_workflow) X (reply_run) X (reply_runs) X (reply_logs) \
    X (reply_metrics) X (reply_agents) X (reply_stats) \
    X (blob_offer) X (blob_want) X (blob_chunk) X (request_get_blob) X (request_put_blob) X (reply_blob) \
    X (request_whoami) X (request_create_api_token) X (request_list_api_tokens) \
    X (request_revoke_api_token) X (reply_whoami) X (reply_api_token) X (reply_api_tokens) \
    X (request_list_workflows) X (request_get_workflow) X (reply_workflows) X (reply_workflow_source) \
    X (request_list_users) X (request_revoke_user) X (request_list_tokens) \
    X (request_revoke_token) X (request_delete_secret) X (request_remove_agent) \
    X (request_label_agent) X (reply_principals) \
    X (request_list_notifications) X (reply_notifications) \
    X (request_list_schedules) X (request_schedule_pause) X (reply_schedules) \
    X (request_set_limit) X (request_list_limits) X (reply_limits) \
    X (request_backup) X (reply_backup_done)

typedef struct {
    const char *name;
    Qanat__Envelope *(*build) (void);
} case_t;

#define DEFINE_CASE(name) static case_t s_case_##name = { #name, s_build_##name };
CASES (DEFINE_CASE)
#define CASE_POINTER(name) &s_case_##name,
static case_t *s_cases [] = { CASES (CASE_POINTER) };

//  ---------------------------------------------------------------------
//  Walking messages through their descriptors

static char s_path [1024];          //  where the last difference was found

static void
s_path_push (const char *format, ...)
{
    size_t used = strlen (s_path);
    va_list args;
    va_start (args, format);
    vsnprintf (s_path + used, sizeof (s_path) - used, format, args);
    va_end (args);
}

static size_t
s_value_size (ProtobufCType type)
{
    switch (type) {
        case PROTOBUF_C_TYPE_INT32:
        case PROTOBUF_C_TYPE_SINT32:
        case PROTOBUF_C_TYPE_SFIXED32:
        case PROTOBUF_C_TYPE_UINT32:
        case PROTOBUF_C_TYPE_FIXED32:
        case PROTOBUF_C_TYPE_FLOAT:
        case PROTOBUF_C_TYPE_ENUM:
            return 4;
        case PROTOBUF_C_TYPE_BOOL:
            return sizeof (protobuf_c_boolean);
        case PROTOBUF_C_TYPE_INT64:
        case PROTOBUF_C_TYPE_SINT64:
        case PROTOBUF_C_TYPE_SFIXED64:
        case PROTOBUF_C_TYPE_UINT64:
        case PROTOBUF_C_TYPE_FIXED64:
        case PROTOBUF_C_TYPE_DOUBLE:
            return 8;
        case PROTOBUF_C_TYPE_STRING:
            return sizeof (char *);
        case PROTOBUF_C_TYPE_BYTES:
            return sizeof (ProtobufCBinaryData);
        case PROTOBUF_C_TYPE_MESSAGE:
            return sizeof (ProtobufCMessage *);
    }
    fail_msg ("unknown protobuf-c type %d", (int) type);
    return 0;
}

static void *
s_member (const ProtobufCMessage *msg, unsigned offset)
{
    return (char *) msg + offset;
}

//  Element i of a field: the field itself, or element i of a repeated one.
static void *
s_element (const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *field, size_t i)
{
    if (field->label == PROTOBUF_C_LABEL_REPEATED)
        return *(char **) s_member (msg, field->offset) + i * s_value_size (field->type);
    return s_member (msg, field->offset);
}

//  How many values a field holds in msg: the count of a repeated field,
//  0 or 1 for a oneof member, 1 for a plain proto3 field.
static size_t
s_field_count (const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *field)
{
    if (field->label == PROTOBUF_C_LABEL_REPEATED)
        return *(size_t *) s_member (msg, field->quantifier_offset);
    if (field->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
        return *(uint32_t *) s_member (msg, field->quantifier_offset) == field->id;
    if (field->label == PROTOBUF_C_LABEL_NONE)
        return 1;
    fail_msg ("%s.%s: label %d is not used by qanat.proto", msg->descriptor->name,
              field->name, (int) field->label);
    return 0;
}

static bool s_msg_equal (const ProtobufCMessage *a, const ProtobufCMessage *b);

static bool
s_value_equal (const ProtobufCFieldDescriptor *field, const void *a, const void *b)
{
    switch (field->type) {
        case PROTOBUF_C_TYPE_BOOL:
            return (*(const protobuf_c_boolean *) a != 0) == (*(const protobuf_c_boolean *) b != 0);
        case PROTOBUF_C_TYPE_STRING: {
            const char *x = *(char * const *) a, *y = *(char * const *) b;
            return strcmp (x? x: "", y? y: "") == 0;
        }
        case PROTOBUF_C_TYPE_BYTES: {
            const ProtobufCBinaryData *x = (const ProtobufCBinaryData *) a;
            const ProtobufCBinaryData *y = (const ProtobufCBinaryData *) b;
            return x->len == y->len && (x->len == 0 || memcmp (x->data, y->data, x->len) == 0);
        }
        case PROTOBUF_C_TYPE_MESSAGE: {
            const ProtobufCMessage *x = *(ProtobufCMessage * const *) a;
            const ProtobufCMessage *y = *(ProtobufCMessage * const *) b;
            if (!x || !y)
                return x == y;
            return s_msg_equal (x, y);
        }
        default:
            //  Numbers bit for bit: a double must come back exactly
            return memcmp (a, b, s_value_size (field->type)) == 0;
    }
}

//  True when a and b hold the same values in every field.  On a
//  difference s_path ends with the path of the first differing field.
static bool
s_msg_equal (const ProtobufCMessage *a, const ProtobufCMessage *b)
{
    if (a->descriptor != b->descriptor) {
        s_path_push (" (different types)");
        return false;
    }
    if (a->n_unknown_fields != b->n_unknown_fields) {
        s_path_push (" (unknown fields)");
        return false;
    }
    const ProtobufCMessageDescriptor *desc = a->descriptor;
    for (unsigned f = 0; f < desc->n_fields; f++) {
        const ProtobufCFieldDescriptor *field = &desc->fields [f];
        size_t mark = strlen (s_path);
        s_path_push (".%s", field->name);
        if ((field->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
        &&  *(uint32_t *) s_member (a, field->quantifier_offset)
         != *(uint32_t *) s_member (b, field->quantifier_offset)) {
            s_path_push (" (oneof case)");
            return false;
        }
        size_t count = s_field_count (a, field);
        if (count != s_field_count (b, field)) {
            s_path_push (" (count)");
            return false;
        }
        for (size_t i = 0; i < count; i++) {
            size_t element_mark = strlen (s_path);
            if (field->label == PROTOBUF_C_LABEL_REPEATED)
                s_path_push ("[%zu]", i);
            if (!s_value_equal (field, s_element (a, field, i), s_element (b, field, i)))
                return false;
            s_path [element_mark] = 0;
        }
        s_path [mark] = 0;
    }
    return true;
}

static void
s_assert_equal (const Qanat__Envelope *a, const Qanat__Envelope *b)
{
    strcpy (s_path, "envelope");
    if (!s_msg_equal (&a->base, &b->base))
        fail_msg ("round trip changed %s", s_path);
}

//  Oneof members and message types the builders have covered.
typedef struct {
    const ProtobufCMessageDescriptor *desc;
    uint32_t id;
} seen_t;
static seen_t s_seen [512];
static size_t s_seen_count;

static void
s_mark_seen (const ProtobufCMessageDescriptor *desc, uint32_t id)
{
    for (size_t i = 0; i < s_seen_count; i++)
        if (s_seen [i].desc == desc && s_seen [i].id == id)
            return;
    assert_true (s_seen_count < COUNT (s_seen));
    s_seen [s_seen_count].desc = desc;
    s_seen [s_seen_count].id = id;
    s_seen_count++;
}

static bool
s_was_seen (const ProtobufCMessageDescriptor *desc, uint32_t id)
{
    for (size_t i = 0; i < s_seen_count; i++)
        if (s_seen [i].desc == desc && s_seen [i].id == id)
            return true;
    return false;
}

static bool
s_is_default (const ProtobufCFieldDescriptor *field, const void *value)
{
    switch (field->type) {
        case PROTOBUF_C_TYPE_STRING: {
            const char *text = *(char * const *) value;
            return !text || !*text;
        }
        case PROTOBUF_C_TYPE_BYTES:
            return ((const ProtobufCBinaryData *) value)->len == 0;
        case PROTOBUF_C_TYPE_MESSAGE:
            return *(ProtobufCMessage * const *) value == NULL;
        default: {
            static const uint8_t zero [8] = { 0 };
            return memcmp (value, zero, s_value_size (field->type)) == 0;
        }
    }
}

//  Every field of msg holds a value that is not its default: each plain
//  field, each repeated field (at least one element, each populated),
//  and the one member of each oneof.  Strings inside repeated fields may
//  be empty, on purpose (an empty argv word must survive).
static void
s_assert_populated (const ProtobufCMessage *msg)
{
    const ProtobufCMessageDescriptor *desc = msg->descriptor;
    s_mark_seen (desc, 0);
    for (unsigned f = 0; f < desc->n_fields; f++) {
        const ProtobufCFieldDescriptor *field = &desc->fields [f];
        size_t mark = strlen (s_path);
        s_path_push (".%s", field->name);
        if (field->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            if (*(uint32_t *) s_member (msg, field->quantifier_offset) == 0)
                fail_msg ("%s: no member of the oneof is set", s_path);
            if (s_field_count (msg, field) == 0) {
                s_path [mark] = 0;
                continue;
            }
            s_mark_seen (desc, field->id);
        }
        size_t count = s_field_count (msg, field);
        if (count == 0)
            fail_msg ("%s: repeated field is empty", s_path);
        for (size_t i = 0; i < count; i++) {
            void *value = s_element (msg, field, i);
            bool in_list = field->label == PROTOBUF_C_LABEL_REPEATED;
            if (s_is_default (field, value) && !(in_list && field->type == PROTOBUF_C_TYPE_STRING))
                fail_msg ("%s%s holds its default value: the round trip would prove nothing",
                          s_path, in_list? "[i]": "");
            if (field->type == PROTOBUF_C_TYPE_MESSAGE)
                s_assert_populated (*(ProtobufCMessage **) value);
        }
        s_path [mark] = 0;
    }
}

//  Changes each value of msg (part of the decoded copy root_b) in turn
//  and requires s_msg_equal to see the change.  Returns how many changes
//  were tried.
static size_t s_mutate_message (const ProtobufCMessage *root_a, const ProtobufCMessage *root_b,
                                ProtobufCMessage *msg);

static void
s_expect_different (const ProtobufCMessage *root_a, const ProtobufCMessage *root_b,
                    const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *field,
                    const char *change)
{
    s_path [0] = 0;
    if (s_msg_equal (root_a, root_b))
        fail_msg ("the comparator missed a change (%s) of %s.%s", change,
                  msg->descriptor->name, field->name);
}

static size_t
s_mutate_value (const ProtobufCMessage *root_a, const ProtobufCMessage *root_b,
                const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *field, void *value)
{
    size_t tried = 1;
    switch (field->type) {
        case PROTOBUF_C_TYPE_BOOL: {
            protobuf_c_boolean *flag = (protobuf_c_boolean *) value;
            protobuf_c_boolean saved = *flag;
            *flag = !saved;
            s_expect_different (root_a, root_b, msg, field, "flipped");
            *flag = saved;
            break;
        }
        case PROTOBUF_C_TYPE_STRING: {
            char *text = *(char **) value;
            if (!text || !*text)
                return 0;
            text [0] ^= 0x20;
            s_expect_different (root_a, root_b, msg, field, "first character");
            text [0] ^= 0x20;
            break;
        }
        case PROTOBUF_C_TYPE_BYTES: {
            ProtobufCBinaryData *bytes = (ProtobufCBinaryData *) value;
            if (bytes->len == 0)
                return 0;
            bytes->data [bytes->len - 1] ^= 0x01;
            s_expect_different (root_a, root_b, msg, field, "last byte");
            bytes->data [bytes->len - 1] ^= 0x01;
            bytes->len--;
            s_expect_different (root_a, root_b, msg, field, "length");
            bytes->len++;
            tried++;
            break;
        }
        case PROTOBUF_C_TYPE_MESSAGE: {
            ProtobufCMessage **sub = (ProtobufCMessage **) value;
            ProtobufCMessage *saved = *sub;
            *sub = NULL;
            s_expect_different (root_a, root_b, msg, field, "removed");
            *sub = saved;
            tried += s_mutate_message (root_a, root_b, saved);
            break;
        }
        default: {
            //  The lowest bit, and the highest byte: both ends of a number
            uint8_t *bytes = (uint8_t *) value;
            size_t size = s_value_size (field->type);
            bytes [0] ^= 0x01;
            s_expect_different (root_a, root_b, msg, field, "low bit");
            bytes [0] ^= 0x01;
            bytes [size - 1] ^= 0x40;
            s_expect_different (root_a, root_b, msg, field, "high byte");
            bytes [size - 1] ^= 0x40;
            tried++;
            break;
        }
    }
    return tried;
}

static size_t
s_mutate_message (const ProtobufCMessage *root_a, const ProtobufCMessage *root_b,
                  ProtobufCMessage *msg)
{
    size_t tried = 0;
    const ProtobufCMessageDescriptor *desc = msg->descriptor;
    for (unsigned f = 0; f < desc->n_fields; f++) {
        const ProtobufCFieldDescriptor *field = &desc->fields [f];
        size_t count = s_field_count (msg, field);
        if (field->label == PROTOBUF_C_LABEL_REPEATED && count > 0) {
            size_t *n = (size_t *) s_member (msg, field->quantifier_offset);
            (*n)--;
            s_expect_different (root_a, root_b, msg, field, "one element fewer");
            (*n)++;
            tried++;
        }
        if ((field->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) && count > 0) {
            uint32_t *body_case = (uint32_t *) s_member (msg, field->quantifier_offset);
            *body_case = 0;
            s_expect_different (root_a, root_b, msg, field, "oneof unset");
            *body_case = field->id;
            tried++;
        }
        for (size_t i = 0; i < count; i++)
            tried += s_mutate_value (root_a, root_b, msg, field, s_element (msg, field, i));
    }
    return tried;
}

//  ---------------------------------------------------------------------
//  Round trips

//  Decodes size bytes from a heap copy of exactly that size, so that
//  valgrind sees any read past the end.
static Qanat__Envelope *
s_decode_copy (const void *data, size_t size, qn_msg_status_t *status, uint32_t *version)
{
    uint8_t *copy = (uint8_t *) malloc (size? size: 1);
    assert_non_null (copy);
    if (size)
        memcpy (copy, data, size);
    Qanat__Envelope *env = qn_msg_decode (copy, size, status, version);
    free (copy);
    return env;
}

//  Decoding hostile bytes: either a usable envelope (our version, with a
//  body) or NULL with a failure status.  Returns whether it decoded.
static bool
s_decode_hostile (const void *data, size_t size)
{
    qn_msg_status_t status = QN_MSG_OK;
    Qanat__Envelope *env = s_decode_copy (data, size, &status, NULL);
    if (env) {
        assert_int_equal (status, QN_MSG_OK);
        assert_int_equal (env->version, QN_PROTOCOL_VERSION);
        assert_int_not_equal (env->body_case, QANAT__ENVELOPE__BODY__NOT_SET);
        qn_msg_free (&env);
        assert_null (env);
        return true;
    }
    if (status != QN_MSG_MALFORMED && status != QN_MSG_BAD_VERSION)
        fail_msg ("decoding %zu bytes failed with status %d", size, (int) status);
    return false;
}

static void
test_roundtrip (void **state)
{
    case_t *test_case = (case_t *) *state;
    Qanat__Envelope *env = test_case->build ();
    strcpy (s_path, test_case->name);
    s_assert_populated (&env->base);

    //  The encoder owns the version field, whatever the caller left there
    env->version = 77;
    zframe_t *frame = qn_msg_encode (env);
    assert_non_null (frame);
    assert_int_equal (env->version, QN_PROTOCOL_VERSION);
    assert_true (zframe_size (frame) > 0);
    assert_true (zframe_size (frame) <= QN_MAX_MESSAGE_SIZE);

    qn_msg_status_t status = QN_MSG_TOO_LARGE;
    uint32_t version = 99;
    Qanat__Envelope *decoded = s_decode_copy (zframe_data (frame), zframe_size (frame),
                                              &status, &version);
    assert_non_null (decoded);
    assert_int_equal (status, QN_MSG_OK);
    assert_int_equal (decoded->version, QN_PROTOCOL_VERSION);
    assert_int_equal (decoded->body_case, env->body_case);
    s_assert_equal (env, decoded);

    //  Encoding is deterministic: the decoded copy encodes to the same bytes
    zframe_t *again = qn_msg_encode (decoded);
    assert_non_null (again);
    assert_true (zframe_eq (frame, again));
    zframe_destroy (&again);

    //  The comparator is not blind: it notices a change anywhere
    size_t tried = s_mutate_message (&env->base, &decoded->base, &decoded->base);
    assert_true (tried > 2);
    s_assert_equal (env, decoded);      //  every change was undone

    qn_msg_free (&decoded);
    assert_null (decoded);
    qn_msg_free (&decoded);             //  idempotent
    zframe_destroy (&frame);
    s_arena_free ();
}

//  A few fields spelled out, in case the generic walk ever goes wrong in
//  a way the mutation check cannot see.
static void
test_roundtrip_explicit (void **state)
{
    (void) state;
    Qanat__Envelope *env = s_build_event_log ();
    zframe_t *frame = qn_msg_encode (env);
    assert_non_null (frame);
    Qanat__Envelope *decoded = qn_msg_decode (zframe_data (frame), zframe_size (frame), NULL, NULL);
    assert_non_null (decoded);
    assert_int_equal (decoded->body_case, QANAT__ENVELOPE__BODY_EVENT);
    Qanat__Event *event = decoded->event;
    assert_int_equal (event->body_case, QANAT__EVENT__BODY_LOG);
    assert_true (event->attempt->run_id == 0xFEDCBA9876543210ULL);
    assert_int_equal (event->attempt->task_index, 7);
    assert_int_equal (event->attempt->attempt, 2);
    assert_true (event->seq == UINT64_MAX);
    assert_int_equal (event->log->stream, QANAT__STREAM__STREAM_STDERR);
    assert_int_equal (event->log->data.len, sizeof (s_log_data) - 1);
    assert_memory_equal (event->log->data.data, s_log_data, sizeof (s_log_data) - 1);
    assert_int_equal (event->log->data.data [4], 0);
    assert_true (event->log->partial);
    assert_true (event->log->time_us == 1700000000000001LL);
    qn_msg_free (&decoded);
    zframe_destroy (&frame);
    s_arena_free ();

    env = s_build_assign ();
    frame = qn_msg_encode (env);
    decoded = qn_msg_decode (zframe_data (frame), zframe_size (frame), NULL, NULL);
    assert_non_null (decoded);
    Qanat__Assign *assign = decoded->assign;
    assert_int_equal (assign->n_argv, 5);
    assert_string_equal (assign->argv [0], "python3");
    assert_string_equal (assign->argv [3], "0.1");
    assert_string_equal (assign->argv [4], "");
    assert_int_equal (assign->n_env, 4);
    assert_string_equal (assign->env [2]->key, "QANAT_ATTEMPT");
    assert_string_equal (assign->env [2]->value, "3");
    assert_true (assign->memory_mb == (1ULL << 40));
    qn_msg_free (&decoded);
    zframe_destroy (&frame);
    s_arena_free ();

    env = s_build_event_finished ();
    frame = qn_msg_encode (env);
    decoded = qn_msg_decode (zframe_data (frame), zframe_size (frame), NULL, NULL);
    assert_non_null (decoded);
    assert_int_equal (decoded->event->finished->exit_code, INT32_MIN);
    assert_int_equal (decoded->event->finished->signal, 15);
    qn_msg_free (&decoded);
    zframe_destroy (&frame);
    s_arena_free ();
}

//  Every oneof member of every message reachable from Envelope, and every
//  message type, is built by some case.
static void
test_every_body_covered (void **state)
{
    (void) state;
    s_seen_count = 0;
    for (size_t c = 0; c < COUNT (s_cases); c++) {
        Qanat__Envelope *env = s_cases [c]->build ();
        strcpy (s_path, s_cases [c]->name);
        s_assert_populated (&env->base);
        s_arena_free ();
    }
    const ProtobufCMessageDescriptor *todo [256];
    const ProtobufCMessageDescriptor *done [256];
    size_t todo_count = 0, done_count = 0;
    todo [todo_count++] = &qanat__envelope__descriptor;
    while (todo_count) {
        const ProtobufCMessageDescriptor *desc = todo [--todo_count];
        bool already = false;
        for (size_t i = 0; i < done_count; i++)
            already = already || done [i] == desc;
        if (already)
            continue;
        assert_true (done_count < COUNT (done));
        done [done_count++] = desc;
        if (!s_was_seen (desc, 0))
            fail_msg ("no case builds a %s", desc->name);
        for (unsigned f = 0; f < desc->n_fields; f++) {
            const ProtobufCFieldDescriptor *field = &desc->fields [f];
            if ((field->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) && !s_was_seen (desc, field->id))
                fail_msg ("no case sets %s.%s", desc->name, field->name);
            if (field->type == PROTOBUF_C_TYPE_MESSAGE) {
                assert_true (todo_count < COUNT (todo));
                todo [todo_count++] = (const ProtobufCMessageDescriptor *) field->descriptor;
            }
        }
    }
    //  Envelope, Event, Request, Reply and every body: no fewer than 40 types
    assert_true (done_count >= 40);
}

//  ---------------------------------------------------------------------
//  Versions

//  Packs env as is, version included, bypassing qn_msg_encode.
static uint8_t *
s_pack_raw (Qanat__Envelope *env, size_t *size)
{
    *size = qanat__envelope__get_packed_size (env);
    uint8_t *buffer = (uint8_t *) malloc (*size? *size: 1);
    assert_non_null (buffer);
    assert_int_equal (qanat__envelope__pack (env, buffer), *size);
    return buffer;
}

static void
test_encode_sets_version (void **state)
{
    (void) state;
    Qanat__Envelope *env = s_build_heartbeat ();
    env->version = 0;
    zframe_t *frame = qn_msg_encode (env);
    assert_non_null (frame);
    assert_int_equal (env->version, QN_PROTOCOL_VERSION);
    //  Read the bytes with protobuf-c itself, not with our decoder
    Qanat__Envelope *raw = qanat__envelope__unpack (NULL, zframe_size (frame), zframe_data (frame));
    assert_non_null (raw);
    assert_int_equal (raw->version, QN_PROTOCOL_VERSION);
    assert_int_equal (raw->heartbeat->running, 5);
    qanat__envelope__free_unpacked (raw, NULL);
    zframe_destroy (&frame);
    s_arena_free ();
}

static void
s_expect_bad_version (uint32_t version, Qanat__Envelope *(*build) (void))
{
    Qanat__Envelope *env = build ();
    env->version = version;
    size_t size;
    uint8_t *buffer = s_pack_raw (env, &size);
    qn_msg_status_t status = QN_MSG_OK;
    uint32_t got = 12345;
    Qanat__Envelope *decoded = s_decode_copy (buffer, size, &status, &got);
    assert_null (decoded);
    assert_int_equal (status, QN_MSG_BAD_VERSION);
    assert_int_equal (got, version);
    //  Status and version pointers are optional
    assert_null (qn_msg_decode (buffer, size, NULL, NULL));
    status = QN_MSG_OK;
    assert_null (qn_msg_decode (buffer, size, &status, NULL));
    assert_int_equal (status, QN_MSG_BAD_VERSION);
    free (buffer);
    s_arena_free ();
}

static void
test_bad_version (void **state)
{
    (void) state;
    s_expect_bad_version (2, s_build_heartbeat);
    s_expect_bad_version (0, s_build_heartbeat);
    s_expect_bad_version (2, s_build_reply_run);
    s_expect_bad_version (0, s_build_register);
    s_expect_bad_version (UINT32_MAX, s_build_request_get_stats);

    //  The same envelope with our version decodes
    Qanat__Envelope *env = s_build_heartbeat ();
    size_t size;
    uint8_t *buffer = s_pack_raw (env, &size);
    qn_msg_status_t status;
    Qanat__Envelope *decoded = qn_msg_decode (buffer, size, &status, NULL);
    assert_non_null (decoded);
    assert_int_equal (status, QN_MSG_OK);
    qn_msg_free (&decoded);
    free (buffer);
    s_arena_free ();
}

//  ---------------------------------------------------------------------
//  Hostile input

//  Zero bytes unpack as an all-default envelope: neither a version nor a
//  body, which is not an envelope at all rather than one of version 0.
static void
test_empty_buffer (void **state)
{
    (void) state;
    qn_msg_status_t status = QN_MSG_OK;
    assert_null (s_decode_copy ("", 0, &status, NULL));
    assert_int_equal (status, QN_MSG_MALFORMED);
}

static void
test_bodiless (void **state)
{
    (void) state;
    //  Our version, but no body
    qn_msg_status_t status;
    Qanat__Envelope env = QANAT__ENVELOPE__INIT;
    env.version = QN_PROTOCOL_VERSION;
    size_t size;
    uint8_t *buffer = s_pack_raw (&env, &size);
    assert_true (size > 0);
    status = QN_MSG_OK;
    assert_null (s_decode_copy (buffer, size, &status, NULL));
    assert_int_equal (status, QN_MSG_MALFORMED);
    free (buffer);

    //  Valid protobuf of unknown fields only: still no body
    const uint8_t unknown [] = { 0xc0, 0x3e, 0x01, 0x08, 0x01 };     //  field 1000 = 1, version = 1
    status = QN_MSG_OK;
    assert_null (s_decode_copy (unknown, sizeof (unknown), &status, NULL));
    assert_int_equal (status, QN_MSG_MALFORMED);

    //  Not protobuf at all
    const char *text = "GET / HTTP/1.1\r\nHost: qanat\r\n\r\n";
    status = QN_MSG_OK;
    assert_null (s_decode_copy (text, strlen (text), &status, NULL));
    assert_int_not_equal (status, QN_MSG_OK);

    //  A length prefix claiming more than there is
    const uint8_t liar [] = { 0x08, 0x01, 0x5a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01 };
    status = QN_MSG_OK;
    assert_null (s_decode_copy (liar, sizeof (liar), &status, NULL));
    assert_int_equal (status, QN_MSG_MALFORMED);
}

static uint64_t s_rng_state;

static uint64_t
s_rand (void)
{
    //  xorshift64*: the same sequence on every machine
    s_rng_state ^= s_rng_state >> 12;
    s_rng_state ^= s_rng_state << 25;
    s_rng_state ^= s_rng_state >> 27;
    return s_rng_state * 0x2545F4914F6CDD1DULL;
}

static void
test_random_garbage (void **state)
{
    (void) state;
    s_rng_state = 0x9E3779B97F4A7C15ULL;
    uint8_t buffer [512];
    size_t decoded = 0;
    for (int i = 0; i < 10000; i++) {
        size_t size = (size_t) (s_rand () % (sizeof (buffer) + 1));
        for (size_t b = 0; b < size; b++)
            buffer [b] = (uint8_t) s_rand ();
        //  Some buffers start like a real envelope, to get past the
        //  first byte more often
        if (i % 4 == 0 && size >= 2) {
            buffer [0] = 0x08;
            buffer [1] = 0x01;
        }
        decoded += s_decode_hostile (buffer, size);
    }
    print_message ("%zu of 10000 random buffers decoded\n", decoded);
}

//  Valid messages with a few bytes changed: reaches deeper into the
//  decoder than pure noise does.
static void
test_corrupted_messages (void **state)
{
    (void) state;
    s_rng_state = 0xC0FFEE1234567ULL;
    size_t decoded = 0, tried = 0;
    for (size_t c = 0; c < COUNT (s_cases); c++) {
        zframe_t *frame = qn_msg_encode (s_cases [c]->build ());
        assert_non_null (frame);
        size_t size = zframe_size (frame);
        uint8_t *copy = (uint8_t *) malloc (size);
        for (int round = 0; round < 400; round++) {
            memcpy (copy, zframe_data (frame), size);
            int changes = 1 + (int) (s_rand () % 4);
            for (int k = 0; k < changes; k++)
                copy [s_rand () % size] = (uint8_t) s_rand ();
            decoded += s_decode_hostile (copy, size);
            tried++;
        }
        free (copy);
        zframe_destroy (&frame);
        s_arena_free ();
    }
    print_message ("%zu of %zu corrupted messages decoded\n", decoded, tried);
}

//  Every prefix of every valid message either decodes or fails cleanly.
static void
test_truncation (void **state)
{
    (void) state;
    for (size_t c = 0; c < COUNT (s_cases); c++) {
        zframe_t *frame = qn_msg_encode (s_cases [c]->build ());
        assert_non_null (frame);
        size_t size = zframe_size (frame);
        size_t decoded = 0;
        for (size_t length = 0; length < size; length++)
            decoded += s_decode_hostile (zframe_data (frame), length);
        //  The whole message does decode, and the empty prefix does not
        assert_true (s_decode_hostile (zframe_data (frame), size));
        assert_false (s_decode_hostile (zframe_data (frame), 0));
        //  The body is the last field: cutting into it can never produce
        //  a complete one
        assert_int_equal (decoded, 0);
        zframe_destroy (&frame);
        s_arena_free ();
    }
}

static void
test_too_large (void **state)
{
    (void) state;
    //  Zeros: the size check must come before any parsing
    uint8_t *big = (uint8_t *) calloc (1, QN_MAX_MESSAGE_SIZE + 1);
    assert_non_null (big);
    qn_msg_status_t status = QN_MSG_OK;
    assert_null (qn_msg_decode (big, QN_MAX_MESSAGE_SIZE + 1, &status, NULL));
    assert_int_equal (status, QN_MSG_TOO_LARGE);
    assert_null (qn_msg_decode (big, SIZE_MAX, &status, NULL));
    assert_int_equal (status, QN_MSG_TOO_LARGE);
    //  At the limit it is parsed, and zeros are not an envelope
    status = QN_MSG_OK;
    assert_null (qn_msg_decode (big, QN_MAX_MESSAGE_SIZE, &status, NULL));
    assert_int_equal (status, QN_MSG_MALFORMED);

    //  The encoder refuses to make what the decoder would refuse
    Qanat__Envelope *env = s_build_event_log ();
    env->event->log->data = s_bytes (big, QN_MAX_MESSAGE_SIZE);
    assert_null (qn_msg_encode (env));
    zsock_t *dealer = zsock_new (ZMQ_DEALER);
    assert_non_null (dealer);
    assert_int_equal (qn_msg_send (dealer, NULL, env), -1);
    zsock_destroy (&dealer);
    //  Just under the limit, all headers included, is fine
    env->event->log->data.len = QN_MAX_MESSAGE_SIZE - 64;
    zframe_t *frame = qn_msg_encode (env);
    assert_non_null (frame);
    assert_true (zframe_size (frame) <= QN_MAX_MESSAGE_SIZE);
    Qanat__Envelope *decoded = qn_msg_decode (zframe_data (frame), zframe_size (frame), &status, NULL);
    assert_non_null (decoded);
    assert_int_equal (decoded->event->log->data.len, QN_MAX_MESSAGE_SIZE - 64);
    qn_msg_free (&decoded);
    zframe_destroy (&frame);
    free (big);
    s_arena_free ();
}

//  ---------------------------------------------------------------------
//  Sockets

static zmsg_t *
s_recv (zsock_t *sock)
{
    zpoller_t *poller = zpoller_new (sock, NULL);
    assert_non_null (poller);
    void *which = zpoller_wait (poller, 5000);
    zpoller_destroy (&poller);
    if (which != sock)
        fail_msg ("nothing received within 5 s");
    zmsg_t *msg = zmsg_recv (sock);
    assert_non_null (msg);
    return msg;
}

//  Every case from a DEALER to a ROUTER and back, through qn_msg_send.
static void
s_exchange (const char *bind_endpoint)
{
    zsock_t *router = zsock_new (ZMQ_ROUTER);
    assert_non_null (router);
    assert_int_equal (qn_msg_prepare_socket (router), 0);
    assert_true (zsock_maxmsgsize (router) >= QN_MAX_MESSAGE_SIZE);
    assert_int_equal (zsock_linger (router), 0);
    assert_true (zsock_bind (router, "%s", bind_endpoint) >= 0);
    char *endpoint = zsock_last_endpoint (router);
    assert_non_null (endpoint);

    zsock_t *dealer = zsock_new (ZMQ_DEALER);
    assert_non_null (dealer);
    assert_int_equal (qn_msg_prepare_socket (dealer), 0);
    zsock_set_identity (dealer, "agent-7");
    assert_int_equal (zsock_connect (dealer, "%s", endpoint), 0);

    for (size_t c = 0; c < COUNT (s_cases); c++) {
        Qanat__Envelope *env = s_cases [c]->build ();
        assert_int_equal (qn_msg_send (dealer, NULL, env), 0);
        zmsg_t *msg = s_recv (router);
        assert_int_equal (zmsg_size (msg), 2);
        zframe_t *routing_id = zmsg_pop (msg);
        assert_true (zframe_streq (routing_id, "agent-7"));
        zframe_t *payload = zmsg_pop (msg);
        qn_msg_status_t status;
        Qanat__Envelope *decoded = qn_msg_decode (zframe_data (payload), zframe_size (payload),
                                                  &status, NULL);
        assert_non_null (decoded);
        s_assert_equal (env, decoded);
        qn_msg_free (&decoded);
        zframe_destroy (&payload);
        zmsg_destroy (&msg);

        //  And back, addressed by the routing id, which the caller keeps
        assert_int_equal (qn_msg_send (router, routing_id, env), 0);
        assert_true (zframe_streq (routing_id, "agent-7"));
        zframe_destroy (&routing_id);
        msg = s_recv (dealer);
        assert_int_equal (zmsg_size (msg), 1);
        payload = zmsg_first (msg);
        decoded = qn_msg_decode (zframe_data (payload), zframe_size (payload), &status, NULL);
        assert_non_null (decoded);
        assert_int_equal (status, QN_MSG_OK);
        s_assert_equal (env, decoded);
        qn_msg_free (&decoded);
        zmsg_destroy (&msg);
        s_arena_free ();
    }
    zstr_free (&endpoint);
    zsock_destroy (&dealer);
    zsock_destroy (&router);
}

static void
test_send_inproc (void **state)
{
    (void) state;
    s_exchange ("inproc://test-msg");
}

static void
test_send_tcp (void **state)
{
    (void) state;
    s_exchange ("tcp://127.0.0.1:*");
}

//  A routing id frame that the ROUTER does not know: the message is
//  dropped (ROUTER_MANDATORY off), not an error for the sender.
static void
test_send_unknown_peer (void **state)
{
    (void) state;
    zsock_t *router = zsock_new (ZMQ_ROUTER);
    assert_non_null (router);
    qn_msg_prepare_socket (router);
    assert_true (zsock_bind (router, "inproc://test-msg-unknown") == 0);
    zframe_t *nobody = zframe_new ("nobody", 6);
    assert_int_equal (qn_msg_send (router, nobody, s_build_welcome ()), 0);
    assert_int_equal (zframe_size (nobody), 6);
    zframe_destroy (&nobody);
    zsock_destroy (&router);
    s_arena_free ();
}

//  ---------------------------------------------------------------------
//  Names

static void
test_names (void **state)
{
    (void) state;
    const char *statuses [] = {
        qn_msg_status_str (QN_MSG_OK), qn_msg_status_str (QN_MSG_TOO_LARGE),
        qn_msg_status_str (QN_MSG_MALFORMED), qn_msg_status_str (QN_MSG_BAD_VERSION)
    };
    for (size_t i = 0; i < COUNT (statuses); i++) {
        assert_non_null (statuses [i]);
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal (statuses [i], statuses [j]);
    }
    assert_string_equal (qn_msg_status_str ((qn_msg_status_t) 99), "unknown");

    assert_string_equal (qn_task_status_name (QANAT__TASK_STATUS__TASK_PENDING), "pending");
    assert_string_equal (qn_task_status_name (QANAT__TASK_STATUS__TASK_QUEUED), "queued");
    assert_string_equal (qn_task_status_name (QANAT__TASK_STATUS__TASK_RUNNING), "running");
    assert_string_equal (qn_task_status_name (QANAT__TASK_STATUS__TASK_SUCCEEDED), "succeeded");
    assert_string_equal (qn_task_status_name (QANAT__TASK_STATUS__TASK_FAILED), "failed");
    assert_string_equal (qn_task_status_name (QANAT__TASK_STATUS__TASK_SKIPPED), "skipped");
    assert_string_equal (qn_task_status_name (QANAT__TASK_STATUS__TASK_CANCELED), "canceled");
    assert_string_equal (qn_task_status_name ((Qanat__TaskStatus) 42), "unknown");
    assert_string_equal (qn_run_status_name (QANAT__RUN_STATUS__RUN_QUEUED), "queued");
    assert_string_equal (qn_run_status_name (QANAT__RUN_STATUS__RUN_RUNNING), "running");
    assert_string_equal (qn_run_status_name (QANAT__RUN_STATUS__RUN_SUCCEEDED), "succeeded");
    assert_string_equal (qn_run_status_name (QANAT__RUN_STATUS__RUN_SUCCEEDED_WITH_WARNINGS),
                         "succeeded with warnings");
    assert_string_equal (qn_run_status_name (QANAT__RUN_STATUS__RUN_FAILED), "failed");
    assert_string_equal (qn_run_status_name (QANAT__RUN_STATUS__RUN_CANCELED), "canceled");
    assert_string_equal (qn_run_status_name ((Qanat__RunStatus) -1), "unknown");
    //  The words scripts give (runs --status, the HTTP API's ?status=)
    Qanat__RunStatus status = QANAT__RUN_STATUS__RUN_QUEUED;
    assert_int_equal (qn_run_status_parse ("failed", &status), 0);
    assert_int_equal (status, QANAT__RUN_STATUS__RUN_FAILED);
    assert_int_equal (qn_run_status_parse ("succeeded_with_warnings", &status), 0);
    assert_int_equal (status, QANAT__RUN_STATUS__RUN_SUCCEEDED_WITH_WARNINGS);
    assert_int_equal (qn_run_status_parse ("canceled", &status), 0);
    assert_int_equal (status, QANAT__RUN_STATUS__RUN_CANCELED);
    const char *wrong [] = { "FAILED", "fail", "failedx", "", "succeeded with warnings",
                             "run_failed", NULL };
    for (size_t i = 0; i < COUNT (wrong); i++)
        assert_int_equal (qn_run_status_parse (wrong [i], &status), -1);
    assert_int_equal (status, QANAT__RUN_STATUS__RUN_CANCELED);

    int64_t before = qn_now_us ();
    assert_true (before > 1600000000LL * 1000000);
    assert_true (qn_now_us () >= before);
}

#define ROUNDTRIP_TEST(name) \
    { "roundtrip_" #name, test_roundtrip, NULL, NULL, &s_case_##name },

int
main (void)
{
    const struct CMUnitTest tests [] = {
        CASES (ROUNDTRIP_TEST)
        cmocka_unit_test (test_roundtrip_explicit),
        cmocka_unit_test (test_every_body_covered),
        cmocka_unit_test (test_encode_sets_version),
        cmocka_unit_test (test_bad_version),
        cmocka_unit_test (test_empty_buffer),
        cmocka_unit_test (test_bodiless),
        cmocka_unit_test (test_random_garbage),
        cmocka_unit_test (test_corrupted_messages),
        cmocka_unit_test (test_truncation),
        cmocka_unit_test (test_too_large),
        cmocka_unit_test (test_send_inproc),
        cmocka_unit_test (test_send_tcp),
        cmocka_unit_test (test_send_unknown_peer),
        cmocka_unit_test (test_names),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
