/*  test_api_queries - the client requests the HTTP API reads through,
    handled by qn_api on a real engine (insecure, on loopback, its sockets
    never used): runs listed with filters and a cursor, log lines read
    after a run-wide sequence, every metric point of a workflow's runs,
    the stored workflows and their text, a run started from a stored
    version by name, parameter types in runs (also runs stored without
    them), and the counters GetStats adds.
*/
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include "qn_api.h"
#include "qn_turn.h"
#include "qn_run.h"
#include "test_engine.h"
#include "test_api_call.h"

#define S_TYPED  "name: typed\n"                                \
                 "params:\n"                                     \
                 "  epochs: {type: int, default: 3}\n"           \
                 "  rate: {type: float, default: 0.5}\n"         \
                 "  fast: {type: bool, default: false}\n"        \
                 "  label: {default: x}\n"                       \
                 "tasks:\n"                                      \
                 "  a:\n"                                        \
                 "    run: echo a\n"
#define S_TYPED_2  S_TYPED "  b:\n    run: echo b\n"

typedef struct {
    test_engine_t t;                    //  first: test_engine_teardown frees the fixture
} s_fixture_t;

static void
s_assert_error (Qanat__Reply *reply, const char *message)
{
    assert_int_equal (reply->body_case, QANAT__REPLY__BODY_ERROR);
    if (!strstr (reply->error->message, message))
        fail_msg ("error '%s' does not say '%s'", reply->error->message, message);
    qanat__reply__free_unpacked (reply, NULL);
}

static int
s_setup (void **state)
{
    s_fixture_t *fixture = (s_fixture_t *) calloc (1, sizeof (s_fixture_t));
    if (test_engine_start (&fixture->t, "test-api-queries") != 0)
        return -1;
    *state = fixture;
    return 0;
}

//  Starts a run of yaml as principal; returns the reply.
static Qanat__Reply *
s_start_file (qn_coordinator_t *engine, const Qanat__Principal *principal, const char *yaml)
{
    Qanat__SubmitWorkflow submit = QANAT__SUBMIT_WORKFLOW__INIT;
    submit.filename = (char *) "wf.yaml";
    submit.source.data = (uint8_t *) yaml;
    submit.source.len = strlen (yaml);
    Qanat__StartRun start = QANAT__START_RUN__INIT;
    start.workflow = &submit;
    Qanat__Request request = QANAT__REQUEST__INIT;
    request.id = 1;
    request.body_case = QANAT__REQUEST__BODY_START_RUN;
    request.start_run = &start;
    return test_api_call (engine, principal, &request);
}

static uint64_t
s_start_ok (qn_coordinator_t *engine, const Qanat__Principal *principal, const char *yaml)
{
    Qanat__Reply *reply = s_start_file (engine, principal, yaml);
    if (reply->body_case != QANAT__REPLY__BODY_RUN)
        fail_msg ("start run: %s", reply->body_case == QANAT__REPLY__BODY_ERROR
                                   ? reply->error->message: "?");
    uint64_t run_id = reply->run->run_id;
    qanat__reply__free_unpacked (reply, NULL);
    return run_id;
}

static Qanat__Reply *
s_list_runs (qn_coordinator_t *engine, Qanat__ListRuns *list)
{
    Qanat__Request request = QANAT__REQUEST__INIT;
    request.id = 2;
    request.body_case = QANAT__REQUEST__BODY_LIST_RUNS;
    request.list_runs = list;
    return test_api_call (engine, NULL, &request);
}

static void
s_commit (qn_coordinator_t *engine)
{
    qn_turn_end (engine);
}

//  Param "name" of run has type
static void
s_assert_type (const Qanat__RunInfo *run, const char *name, const char *type)
{
    for (size_t p = 0; p < run->n_params; p++)
        if (streq (run->params [p]->name, name)) {
            assert_string_equal (run->params [p]->type, type);
            return;
        }
    fail_msg ("run %llu has no param %s", (unsigned long long) run->run_id, name);
}

static void
s_assert_types (const Qanat__RunInfo *run)
{
    s_assert_type (run, "epochs", "int");
    s_assert_type (run, "rate", "float");
    s_assert_type (run, "fast", "bool");
    s_assert_type (run, "label", "string");
}

static void
test_list_runs_filters (void **state)
{
    s_fixture_t *fixture = (s_fixture_t *) *state;
    qn_coordinator_t *engine = fixture->t.engine;
    Qanat__Principal alice = QANAT__PRINCIPAL__INIT;
    alice.kind = (char *) "user";
    alice.name = (char *) "alice";
    alice.role = (char *) "user";
    for (int i = 0; i < 5; i++)
        s_start_ok (engine, i % 2? &alice: NULL, S_TYPED);
    s_commit (engine);
    //  alice's runs, two a page, newest first, with their types
    Qanat__ListRuns list = QANAT__LIST_RUNS__INIT;
    list.owner = (char *) "alice";
    list.limit = 1;
    Qanat__Reply *reply = s_list_runs (engine, &list);
    assert_int_equal (reply->body_case, QANAT__REPLY__BODY_RUNS);
    assert_int_equal (reply->runs->n_runs, 1);
    assert_int_equal (reply->runs->runs [0]->run_id, 4);
    assert_string_equal (reply->runs->runs [0]->owner, "alice");
    s_assert_types (reply->runs->runs [0]);
    assert_int_equal (reply->runs->next_before, 4);
    list.before_run_id = reply->runs->next_before;
    qanat__reply__free_unpacked (reply, NULL);
    reply = s_list_runs (engine, &list);
    assert_int_equal (reply->runs->n_runs, 1);
    assert_int_equal (reply->runs->runs [0]->run_id, 2);
    list.before_run_id = reply->runs->next_before;
    qanat__reply__free_unpacked (reply, NULL);
    reply = s_list_runs (engine, &list);
    assert_int_equal (reply->runs->n_runs, 0);
    assert_int_equal (reply->runs->next_before, 0);
    qanat__reply__free_unpacked (reply, NULL);
    //  By status: every run is queued (no agents)
    Qanat__ListRuns by_status = QANAT__LIST_RUNS__INIT;
    by_status.has_status = true;
    by_status.status = QANAT__RUN_STATUS__RUN_QUEUED;
    by_status.workflow = (char *) "typed";
    reply = s_list_runs (engine, &by_status);
    assert_int_equal (reply->runs->n_runs, 5);
    assert_int_equal (reply->runs->next_before, 0);
    qanat__reply__free_unpacked (reply, NULL);
    by_status.status = QANAT__RUN_STATUS__RUN_FAILED;
    reply = s_list_runs (engine, &by_status);
    assert_int_equal (reply->runs->n_runs, 0);
    qanat__reply__free_unpacked (reply, NULL);
    //  By time: none created in the future
    Qanat__ListRuns later = QANAT__LIST_RUNS__INIT;
    later.created_after_us = qn_now_us () + 60000000;
    reply = s_list_runs (engine, &later);
    assert_int_equal (reply->runs->n_runs, 0);
    qanat__reply__free_unpacked (reply, NULL);
    later.created_after_us = 0;
    later.created_before_us = qn_now_us () + 60000000;
    reply = s_list_runs (engine, &later);
    assert_int_equal (reply->runs->n_runs, 5);
    qanat__reply__free_unpacked (reply, NULL);
    //  A status that does not exist is refused
    by_status.status = (Qanat__RunStatus) 42;
    s_assert_error (s_list_runs (engine, &by_status), "unknown status");
}

static void
s_append_log (qn_coordinator_t *engine, uint64_t run_id, const char *task, uint32_t attempt,
              int n)
{
    char text [32];
    snprintf (text, sizeof text, "%s.%u.%d", task, attempt, n);
    Qanat__LogChunk chunk = QANAT__LOG_CHUNK__INIT;
    chunk.data.data = (uint8_t *) text;
    chunk.data.len = strlen (text);
    Qanat__LogLine line = QANAT__LOG_LINE__INIT;
    line.task = (char *) task;
    line.attempt = attempt;
    line.seq = (uint64_t) n + 1;
    line.chunk = &chunk;
    assert_int_equal (qn_store_begin (engine->store), 0);
    assert_int_equal (qn_store_append_log (engine->store, run_id, &line, NULL), 0);
}

static Qanat__Reply *
s_read_logs (qn_coordinator_t *engine, uint64_t run_id, uint64_t after_seq, const char *task,
             uint32_t attempt, const uint8_t *cursor)
{
    Qanat__ReadLogs read = QANAT__READ_LOGS__INIT;
    read.run_id = run_id;
    read.after_seq = after_seq;
    read.task = (char *) task;
    read.attempt = attempt;
    if (cursor) {
        read.cursor.data = (uint8_t *) cursor;
        read.cursor.len = 8;
    }
    Qanat__Request request = QANAT__REQUEST__INIT;
    request.id = 3;
    request.body_case = QANAT__REQUEST__BODY_READ_LOGS;
    request.read_logs = &read;
    Qanat__Reply *reply = test_api_call (engine, NULL, &request);
    assert_int_equal (reply->body_case, QANAT__REPLY__BODY_LOGS);
    return reply;
}

static void
test_read_logs_after_seq (void **state)
{
    s_fixture_t *fixture = (s_fixture_t *) *state;
    qn_coordinator_t *engine = fixture->t.engine;
    uint64_t run_id = s_start_ok (engine, NULL, S_TYPED_2);
    //  30 lines: a.1, b.1, a.2 in turn; line k has log_seq k
    for (int n = 0; n < 30; n++)
        s_append_log (engine, run_id, n % 3 == 1? "b": "a", n % 3 == 2? 2: 1, n);
    s_commit (engine);
    for (uint64_t after = 0; after <= 30; after += 4) {
        Qanat__Reply *reply = s_read_logs (engine, run_id, after, NULL, 0, NULL);
        assert_int_equal (reply->logs->n_lines, 30 - after);
        for (size_t i = 0; i < reply->logs->n_lines; i++)
            assert_int_equal (reply->logs->lines [i]->log_seq, after + i + 1);
        qanat__reply__free_unpacked (reply, NULL);
        //  Task a, attempt 2 only: lines 3, 6, 9, ...
        reply = s_read_logs (engine, run_id, after, "a", 2, NULL);
        size_t want = 0;
        for (uint64_t s = after + 1; s <= 30; s++)
            want += s % 3 == 0;
        assert_int_equal (reply->logs->n_lines, want);
        for (size_t i = 0; i < reply->logs->n_lines; i++) {
            Qanat__LogLine *line = reply->logs->lines [i];
            assert_true (line->log_seq > after && line->log_seq % 3 == 0);
            assert_string_equal (line->task, "a");
            assert_int_equal (line->attempt, 2);
        }
        qanat__reply__free_unpacked (reply, NULL);
    }
    //  after_seq wins over a cursor
    uint8_t cursor [8] = { 0, 0, 0, 0, 0, 0, 0, 25 };
    Qanat__Reply *reply = s_read_logs (engine, run_id, 10, NULL, 0, cursor);
    assert_int_equal (reply->logs->n_lines, 20);
    qanat__reply__free_unpacked (reply, NULL);
    reply = s_read_logs (engine, run_id, 0, NULL, 0, cursor);
    assert_int_equal (reply->logs->n_lines, 5);
    assert_int_equal (reply->logs->lines [0]->log_seq, 26);
    qanat__reply__free_unpacked (reply, NULL);
}

static void
s_append_metric (qn_coordinator_t *engine, uint64_t run_id, const char *task, const char *name,
                 double value, int64_t step)
{
    Qanat__MetricPoint point = QANAT__METRIC_POINT__INIT;
    point.name = (char *) name;
    point.value = value;
    point.step = step;
    point.has_step = true;
    Qanat__MetricRecord record = QANAT__METRIC_RECORD__INIT;
    record.task = (char *) task;
    record.attempt = 1;
    record.point = &point;
    assert_int_equal (qn_store_begin (engine->store), 0);
    assert_int_equal (qn_store_append_metric (engine->store, run_id, &record), 0);
}

static Qanat__Reply *
s_read_metrics (qn_coordinator_t *engine, const char *workflow, bool all_points)
{
    Qanat__ReadMetrics read = QANAT__READ_METRICS__INIT;
    read.workflow = (char *) workflow;
    read.all_points = all_points;
    Qanat__Request request = QANAT__REQUEST__INIT;
    request.id = 4;
    request.body_case = QANAT__REQUEST__BODY_READ_METRICS;
    request.read_metrics = &read;
    Qanat__Reply *reply = test_api_call (engine, NULL, &request);
    assert_int_equal (reply->body_case, QANAT__REPLY__BODY_METRICS);
    return reply;
}

static void
test_read_metrics_all_points (void **state)
{
    s_fixture_t *fixture = (s_fixture_t *) *state;
    qn_coordinator_t *engine = fixture->t.engine;
    uint64_t first = s_start_ok (engine, NULL, S_TYPED_2);
    uint64_t second = s_start_ok (engine, NULL, S_TYPED_2);
    //  Run 1: loss 1..5 from a, acc from b; run 2: loss 10..12 from a
    for (int step = 1; step <= 5; step++) {
        s_append_metric (engine, first, "a", "loss", step, step);
        s_append_metric (engine, first, "b", "acc", step / 10.0, step);
    }
    for (int step = 1; step <= 3; step++)
        s_append_metric (engine, second, "a", "loss", 9 + step, step);
    s_commit (engine);
    Qanat__Reply *reply = s_read_metrics (engine, "typed", true);
    Qanat__MetricReport *report = reply->metrics;
    assert_int_equal (report->n_series, 3);
    size_t seen = 0;
    for (size_t i = 0; i < report->n_series; i++) {
        Qanat__MetricSeries *series = report->series [i];
        if (series->run_id == first && streq (series->task, "a")) {
            assert_string_equal (series->name, "loss");
            assert_int_equal (series->n_points, 5);
            for (size_t p = 0; p < 5; p++) {
                assert_true (series->points [p]->value == (double) (p + 1));
                assert_int_equal (series->points [p]->step, p + 1);
            }
            seen |= 1;
        }
        else
        if (series->run_id == first && streq (series->task, "b")) {
            assert_string_equal (series->name, "acc");
            assert_int_equal (series->n_points, 5);
            seen |= 2;
        }
        else
        if (series->run_id == second) {
            assert_string_equal (series->name, "loss");
            assert_int_equal (series->n_points, 3);
            assert_true (series->points [2]->value == 12.0);
            seen |= 4;
        }
    }
    assert_int_equal (seen, 7);
    qanat__reply__free_unpacked (reply, NULL);
    //  Without all_points: the last value per run, as ever
    reply = s_read_metrics (engine, "typed", false);
    assert_int_equal (reply->metrics->n_series, 3);
    for (size_t i = 0; i < reply->metrics->n_series; i++) {
        Qanat__MetricSeries *series = reply->metrics->series [i];
        assert_int_equal (series->n_points, 1);
        if (series->run_id == second)
            assert_true (series->points [0]->value == 12.0);
        if (series->run_id == first && streq (series->name, "loss"))
            assert_true (series->points [0]->value == 5.0);
    }
    qanat__reply__free_unpacked (reply, NULL);
}

//  A request whose reply must be an Error NOT_FOUND saying message
static void
s_assert_not_found (qn_coordinator_t *engine, Qanat__Request *request, const char *message)
{
    Qanat__Reply *reply = test_api_call (engine, NULL, request);
    assert_int_equal (reply->body_case, QANAT__REPLY__BODY_ERROR);
    assert_int_equal (reply->error->code, QANAT__ERROR_CODE__ERROR_NOT_FOUND);
    s_assert_error (reply, message);
}

static void
s_assert_logs_not_found (qn_coordinator_t *engine, uint64_t run_id, const char *task,
                         uint32_t attempt, const char *message)
{
    Qanat__ReadLogs read = QANAT__READ_LOGS__INIT;
    read.run_id = run_id;
    read.task = (char *) task;
    read.attempt = attempt;
    Qanat__Request request = QANAT__REQUEST__INIT;
    request.id = 5;
    request.body_case = QANAT__REQUEST__BODY_READ_LOGS;
    request.read_logs = &read;
    s_assert_not_found (engine, &request, message);
}

static void
s_assert_metrics_not_found (qn_coordinator_t *engine, uint64_t run_id, const char *workflow,
                            const char *name, const char *message)
{
    Qanat__ReadMetrics read = QANAT__READ_METRICS__INIT;
    read.run_id = run_id;
    read.workflow = (char *) workflow;
    read.name = (char *) name;
    Qanat__Request request = QANAT__REQUEST__INIT;
    request.id = 6;
    request.body_case = QANAT__REQUEST__BODY_READ_METRICS;
    request.read_metrics = &read;
    s_assert_not_found (engine, &request, message);
}

//  A run, task, attempt, workflow or metric that is not there is
//  NOT_FOUND, never an empty page a script takes for "nothing yet"
static void
test_queries_not_found (void **state)
{
    s_fixture_t *fixture = (s_fixture_t *) *state;
    qn_coordinator_t *engine = fixture->t.engine;
    uint64_t run_id = s_start_ok (engine, NULL, S_TYPED_2);
    s_commit (engine);
    s_assert_logs_not_found (engine, 999, NULL, 0, "no run 999");
    s_assert_logs_not_found (engine, run_id, "nosuch", 0, "has no task nosuch");
    //  An attempt may still come while the run is active
    Qanat__Reply *reply = s_read_logs (engine, run_id, 0, "a", 9, NULL);
    qanat__reply__free_unpacked (reply, NULL);
    s_assert_metrics_not_found (engine, 999, NULL, NULL, "no run 999");
    s_assert_metrics_not_found (engine, 0, "nosuchwf", NULL, "no such workflow: nosuchwf");
    s_assert_metrics_not_found (engine, 0, "typed", "nosuch", "workflow typed has no metric nosuch");
    Qanat__ListRuns list = QANAT__LIST_RUNS__INIT;
    list.workflow = (char *) "nosuchwf";
    reply = s_list_runs (engine, &list);
    assert_int_equal (reply->error->code, QANAT__ERROR_CODE__ERROR_NOT_FOUND);
    s_assert_error (reply, "no such workflow: nosuchwf");
    //  A known workflow with no run matching the filter is an empty list
    list.workflow = (char *) "typed";
    list.has_status = true;
    list.status = QANAT__RUN_STATUS__RUN_FAILED;
    reply = s_list_runs (engine, &list);
    assert_int_equal (reply->body_case, QANAT__REPLY__BODY_RUNS);
    assert_int_equal (reply->runs->n_runs, 0);
    qanat__reply__free_unpacked (reply, NULL);
    //  Once the run has ended, an attempt it never had is not found
    Qanat__CancelRun cancel = QANAT__CANCEL_RUN__INIT;
    cancel.run_id = run_id;
    Qanat__Request request = QANAT__REQUEST__INIT;
    request.id = 7;
    request.body_case = QANAT__REQUEST__BODY_CANCEL_RUN;
    request.cancel_run = &cancel;
    reply = test_api_call (engine, NULL, &request);
    assert_int_equal (reply->body_case, QANAT__REPLY__BODY_RUN);
    qanat__reply__free_unpacked (reply, NULL);
    s_commit (engine);
    s_assert_logs_not_found (engine, run_id, "a", 9, "task a of run 1 has no attempt 9");
    s_assert_logs_not_found (engine, run_id, NULL, 9, "run 1 has no attempt 9");
    s_assert_metrics_not_found (engine, run_id, NULL, "loss", "run 1 has no metric loss");
}

static Qanat__Reply *
s_get_workflow (qn_coordinator_t *engine, const char *name, uint32_t version)
{
    Qanat__GetWorkflow get = QANAT__GET_WORKFLOW__INIT;
    get.name = (char *) name;
    get.version = version;
    Qanat__Request request = QANAT__REQUEST__INIT;
    request.id = 5;
    request.body_case = QANAT__REQUEST__BODY_GET_WORKFLOW;
    request.get_workflow = &get;
    return test_api_call (engine, NULL, &request);
}

static Qanat__Reply *
s_list_workflows (qn_coordinator_t *engine)
{
    Qanat__ListWorkflows list = QANAT__LIST_WORKFLOWS__INIT;
    Qanat__Request request = QANAT__REQUEST__INIT;
    request.id = 6;
    request.body_case = QANAT__REQUEST__BODY_LIST_WORKFLOWS;
    request.list_workflows = &list;
    Qanat__Reply *reply = test_api_call (engine, NULL, &request);
    assert_int_equal (reply->body_case, QANAT__REPLY__BODY_WORKFLOWS);
    return reply;
}

static void
test_workflows (void **state)
{
    s_fixture_t *fixture = (s_fixture_t *) *state;
    qn_coordinator_t *engine = fixture->t.engine;
    Qanat__Reply *reply = s_list_workflows (engine);
    assert_int_equal (reply->workflows->n_workflows, 0);
    qanat__reply__free_unpacked (reply, NULL);
    s_start_ok (engine, NULL, S_TYPED);
    s_start_ok (engine, NULL, S_TYPED_2);
    s_start_ok (engine, NULL, S_TYPED_2);
    s_commit (engine);
    reply = s_list_workflows (engine);
    assert_int_equal (reply->workflows->n_workflows, 1);
    Qanat__WorkflowSummary *summary = reply->workflows->workflows [0];
    assert_string_equal (summary->name, "typed");
    assert_int_equal (summary->latest, 2);
    assert_int_equal (summary->runs, 3);
    assert_true (summary->created_us > 0);
    qanat__reply__free_unpacked (reply, NULL);
    //  The newest, and an older one by number
    for (uint32_t version = 0; version <= 2; version++) {
        reply = s_get_workflow (engine, "typed", version);
        assert_int_equal (reply->body_case, QANAT__REPLY__BODY_WORKFLOW_SOURCE);
        Qanat__WorkflowSource *source = reply->workflow_source;
        const char *text = version == 1? S_TYPED: S_TYPED_2;
        assert_string_equal (source->name, "typed");
        assert_int_equal (source->version, version? version: 2);
        assert_int_equal (source->latest, 2);
        assert_string_equal (source->filename, "wf.yaml");
        assert_int_equal (source->source.len, strlen (text));
        assert_memory_equal (source->source.data, text, strlen (text));
        assert_true (source->created_us > 0);
        qanat__reply__free_unpacked (reply, NULL);
    }
    s_assert_error (s_get_workflow (engine, "typed", 3), "no such workflow");
    s_assert_error (s_get_workflow (engine, "nope", 0), "no such workflow");
    s_assert_error (s_get_workflow (engine, "", 0), "no such workflow");
    char long_name [2000];
    memset (long_name, 'x', sizeof long_name - 1);
    long_name [sizeof long_name - 1] = 0;
    s_assert_error (s_get_workflow (engine, long_name, 0), "no such workflow");
}

static Qanat__Reply *
s_start_named (qn_coordinator_t *engine, const Qanat__Principal *principal, const char *name,
               uint32_t version, Qanat__Param **params, size_t n_params)
{
    Qanat__StartRun start = QANAT__START_RUN__INIT;
    start.workflow_name = (char *) name;
    start.workflow_version = version;
    start.params = params;
    start.n_params = n_params;
    Qanat__Request request = QANAT__REQUEST__INIT;
    request.id = 7;
    request.body_case = QANAT__REQUEST__BODY_START_RUN;
    request.start_run = &start;
    return test_api_call (engine, principal, &request);
}

static void
test_start_by_name (void **state)
{
    s_fixture_t *fixture = (s_fixture_t *) *state;
    qn_coordinator_t *engine = fixture->t.engine;
    s_start_ok (engine, NULL, S_TYPED);
    s_start_ok (engine, NULL, S_TYPED_2);
    s_commit (engine);
    Qanat__Principal bob = QANAT__PRINCIPAL__INIT;
    bob.kind = (char *) "user";
    bob.name = (char *) "bob";
    bob.role = (char *) "user";
    //  An older version by number: it runs that text, stores nothing new
    Qanat__Param epochs = QANAT__PARAM__INIT;
    epochs.name = (char *) "epochs";
    epochs.value = (char *) "7";
    Qanat__Param *params [1] = { &epochs };
    Qanat__Reply *reply = s_start_named (engine, &bob, "typed", 1, params, 1);
    assert_int_equal (reply->body_case, QANAT__REPLY__BODY_RUN);
    assert_int_equal (reply->run->version, 1);
    assert_string_equal (reply->run->workflow, "typed");
    assert_string_equal (reply->run->owner, "bob");
    assert_string_equal (reply->run->filename, "wf.yaml");
    assert_int_equal (reply->run->n_tasks, 1);
    s_assert_type (reply->run, "epochs", "int");
    for (size_t p = 0; p < reply->run->n_params; p++)
        if (streq (reply->run->params [p]->name, "epochs"))
            assert_string_equal (reply->run->params [p]->value, "7");
    qanat__reply__free_unpacked (reply, NULL);
    //  The newest
    reply = s_start_named (engine, NULL, "typed", 0, NULL, 0);
    assert_int_equal (reply->body_case, QANAT__REPLY__BODY_RUN);
    assert_int_equal (reply->run->version, 2);
    assert_int_equal (reply->run->n_tasks, 2);
    qanat__reply__free_unpacked (reply, NULL);
    s_commit (engine);
    reply = s_list_workflows (engine);
    assert_int_equal (reply->workflows->workflows [0]->latest, 2);
    assert_int_equal (reply->workflows->workflows [0]->runs, 4);
    qanat__reply__free_unpacked (reply, NULL);
    //  The same checks as a file: a bad parameter value
    epochs.value = (char *) "many";
    s_assert_error (s_start_named (engine, &bob, "typed", 0, params, 1), "epochs");
    //  Unknown names and versions, both or neither given
    s_assert_error (s_start_named (engine, NULL, "nope", 0, NULL, 0), "no such workflow");
    s_assert_error (s_start_named (engine, NULL, "typed", 9, NULL, 0), "no such workflow");
    Qanat__SubmitWorkflow submit = QANAT__SUBMIT_WORKFLOW__INIT;
    submit.source.data = (uint8_t *) S_TYPED;
    submit.source.len = strlen (S_TYPED);
    Qanat__StartRun start = QANAT__START_RUN__INIT;
    start.workflow = &submit;
    start.workflow_name = (char *) "typed";
    Qanat__Request request = QANAT__REQUEST__INIT;
    request.id = 8;
    request.body_case = QANAT__REQUEST__BODY_START_RUN;
    request.start_run = &start;
    s_assert_error (test_api_call (engine, NULL, &request), "not both");
    start.workflow = NULL;
    start.workflow_name = NULL;
    s_assert_error (test_api_call (engine, NULL, &request), "start run: no workflow given");
}

//  A rerun: what succeeded in the earlier run is cached from it, the rest
//  runs; only a run of the same version with the same params qualifies
#define S_REDO  "name: redo\n"                                  \
                "params:\n"                                     \
                "  n: {default: 1}\n"                           \
                "tasks:\n"                                      \
                "  a: {run: \"true\"}\n"                        \
                "  b: {run: \"true\", needs: [a]}\n"             \
                "  c: {run: \"true\"}\n"

static Qanat__Reply *
s_start_reuse (qn_coordinator_t *engine, const Qanat__Principal *principal, uint32_t version,
               uint64_t from, const char *n)
{
    Qanat__Param param = QANAT__PARAM__INIT;
    param.name = (char *) "n";
    param.value = (char *) n;
    Qanat__Param *params [1] = { &param };
    Qanat__StartRun start = QANAT__START_RUN__INIT;
    start.workflow_name = (char *) "redo";
    start.workflow_version = version;
    start.params = params;
    start.n_params = n? 1: 0;
    start.reuse_from_run = from;
    Qanat__Request request = QANAT__REQUEST__INIT;
    request.id = 9;
    request.body_case = QANAT__REQUEST__BODY_START_RUN;
    request.start_run = &start;
    return test_api_call (engine, principal, &request);
}

static const Qanat__TaskInfo *
s_task_named (const Qanat__RunInfo *run, const char *name)
{
    for (size_t t = 0; t < run->n_tasks; t++)
        if (streq (run->tasks [t]->name, name))
            return run->tasks [t];
    fail_msg ("no task %s", name);
    return NULL;
}

//  Task a of the active run succeeds with a value output, c cannot start
static void
s_finish_first (qn_coordinator_t *engine, uint64_t run_id)
{
    run_t *run = qn_run_find (engine, run_id);
    assert_non_null (run);
    size_t a = (size_t) qn_workflow_task_index (run->wf, "a");
    Qanat__AttemptInfo *attempt = (Qanat__AttemptInfo *) malloc (sizeof (Qanat__AttemptInfo));
    qanat__attempt_info__init (attempt);
    attempt->attempt = 1;
    attempt->finished = true;
    attempt->end = strdup ("exit");
    Qanat__OutputRecord *output = (Qanat__OutputRecord *) malloc (sizeof (Qanat__OutputRecord));
    qanat__output_record__init (output);
    output->name = strdup ("v");
    output->kind = QANAT__ARTIFACT_KIND__ARTIFACT_VALUE;
    output->value = strdup ("42");
    qn_engine_append ((void ***) &attempt->outputs, &attempt->n_outputs, output);
    Qanat__TaskInfo *task = qn_run_task (run, a);
    qn_engine_append ((void ***) &task->attempts, &task->n_attempts, attempt);
    qn_run_set_status (run, a, QANAT__TASK_STATUS__TASK_SUCCEEDED);
    qn_run_fail_unstartable (engine, run, (size_t) qn_workflow_task_index (run->wf, "c"),
                             "no agent");
    qn_run_advance (engine, run);
}

static void
test_rerun_reuses_succeeded (void **state)
{
    s_fixture_t *fixture = (s_fixture_t *) *state;
    qn_coordinator_t *engine = fixture->t.engine;
    uint64_t first = s_start_ok (engine, NULL, S_REDO);
    s_finish_first (engine, first);
    s_commit (engine);
    //  From the active run (b still queued in it), then from the store
    //  once it has ended
    for (int round = 0; round < 2; round++) {
        if (round == 1) {
            run_t *run = qn_run_find (engine, first);
            assert_non_null (run);
            qn_run_fail_unstartable (engine, run, (size_t) qn_workflow_task_index (run->wf, "b"),
                                     "no agent");
            qn_run_advance (engine, run);
            s_commit (engine);
            assert_null (qn_run_find (engine, first));
        }
        //  Anyone who may read the run (GetRun: any user) may rerun it, as
        //  its own run
        Qanat__Principal bob = QANAT__PRINCIPAL__INIT;
        bob.kind = (char *) "user";
        bob.name = (char *) "bob";
        bob.role = (char *) "user";
        Qanat__Reply *reply = s_start_reuse (engine, round? &bob: NULL, 1, first, NULL);
        if (reply->body_case != QANAT__REPLY__BODY_RUN)
            fail_msg ("rerun: %s", reply->body_case == QANAT__REPLY__BODY_ERROR
                                   ? reply->error->message: "?");
        assert_string_equal (reply->run->owner, round? "bob": "local");
        const Qanat__TaskInfo *a = s_task_named (reply->run, "a");
        assert_int_equal (a->status, QANAT__TASK_STATUS__TASK_SUCCEEDED);
        assert_int_equal (a->cached_from, first);
        assert_int_equal (a->n_attempts, 1);
        assert_string_equal (a->attempts [0]->end, "cached");
        char *reason = zsys_sprintf ("cached from run %llu", (unsigned long long) first);
        assert_string_equal (a->attempts [0]->reason, reason);
        free (reason);
        assert_int_equal (a->attempts [0]->n_outputs, 1);
        assert_string_equal (a->attempts [0]->outputs [0]->value, "42");
        //  b waited on a: it runs now, as does c that failed
        assert_int_equal (s_task_named (reply->run, "b")->status, QANAT__TASK_STATUS__TASK_QUEUED);
        assert_int_equal (s_task_named (reply->run, "b")->cached_from, 0);
        assert_int_equal (s_task_named (reply->run, "c")->status, QANAT__TASK_STATUS__TASK_QUEUED);
        qanat__reply__free_unpacked (reply, NULL);
        s_commit (engine);
    }
    //  Not there; other params; another version
    Qanat__Reply *reply = s_start_reuse (engine, NULL, 1, 999, NULL);
    assert_int_equal (reply->body_case, QANAT__REPLY__BODY_ERROR);
    assert_int_equal (reply->error->code, QANAT__ERROR_CODE__ERROR_NOT_FOUND);
    s_assert_error (reply, "no run 999");
    s_assert_error (s_start_reuse (engine, NULL, 1, first, "2"), "same params");
    s_start_ok (engine, NULL, S_REDO "  d: {run: \"true\"}\n");
    s_assert_error (s_start_reuse (engine, NULL, 2, first, NULL), "not of redo v2");
}

//  Runs stored before types were recorded get them from their workflow
//  version when read
static void
test_param_types_of_old_runs (void **state)
{
    s_fixture_t *fixture = (s_fixture_t *) *state;
    qn_coordinator_t *engine = fixture->t.engine;
    uint64_t run_id = s_start_ok (engine, NULL, S_TYPED);
    s_commit (engine);
    //  A finished run as an older qanatd stored it: no types
    Qanat__RunInfo *stored = qn_store_get_run (engine->store, run_id);
    assert_non_null (stored);
    s_assert_types (stored);
    for (size_t p = 0; p < stored->n_params; p++) {
        free (stored->params [p]->type);
        stored->params [p]->type = (char *) protobuf_c_empty_string;
    }
    stored->run_id = 50;
    stored->status = QANAT__RUN_STATUS__RUN_SUCCEEDED;
    assert_int_equal (qn_store_begin (engine->store), 0);
    assert_int_equal (qn_store_put_run (engine->store, stored), 0);
    assert_int_equal (qn_store_commit (engine->store), 0);
    qanat__run_info__free_unpacked (stored, NULL);
    stored = qn_store_get_run (engine->store, 50);
    assert_string_equal (stored->params [0]->type, "");
    qanat__run_info__free_unpacked (stored, NULL);
    Qanat__ListRuns list = QANAT__LIST_RUNS__INIT;
    Qanat__Reply *reply = s_list_runs (engine, &list);
    assert_int_equal (reply->runs->n_runs, 2);
    assert_int_equal (reply->runs->runs [0]->run_id, 50);
    s_assert_types (reply->runs->runs [0]);
    s_assert_types (reply->runs->runs [1]);
    qanat__reply__free_unpacked (reply, NULL);
    Qanat__GetRun get = QANAT__GET_RUN__INIT;
    get.run_id = 50;
    Qanat__Request request = QANAT__REQUEST__INIT;
    request.id = 9;
    request.body_case = QANAT__REQUEST__BODY_GET_RUN;
    request.get_run = &get;
    reply = test_api_call (engine, NULL, &request);
    assert_int_equal (reply->body_case, QANAT__REPLY__BODY_RUN);
    s_assert_types (reply->run);
    qanat__reply__free_unpacked (reply, NULL);
}

static const char *
s_label (Qanat__Label **labels, size_t count, const char *key)
{
    for (size_t i = 0; i < count; i++)
        if (streq (labels [i]->key, key))
            return labels [i]->value;
    return NULL;
}

static Qanat__Reply *
s_stats (qn_coordinator_t *engine)
{
    Qanat__GetStats get = QANAT__GET_STATS__INIT;
    Qanat__Request request = QANAT__REQUEST__INIT;
    request.id = 10;
    request.body_case = QANAT__REQUEST__BODY_GET_STATS;
    request.get_stats = &get;
    Qanat__Reply *reply = test_api_call (engine, NULL, &request);
    assert_int_equal (reply->body_case, QANAT__REPLY__BODY_STATS);
    return reply;
}

static void
test_stats_additions (void **state)
{
    s_fixture_t *fixture = (s_fixture_t *) *state;
    qn_coordinator_t *engine = fixture->t.engine;
    Qanat__Reply *reply = s_stats (engine);
    Qanat__Stats *stats = reply->stats;
    assert_int_equal (stats->n_commit_latency_bucket, 10);
    uint64_t before = stats->commit_latency_bucket [9];
    assert_int_equal (before, stats->commits);
    assert_int_equal (stats->n_attempts_ended, 8);
    assert_string_equal (s_label (stats->attempts_ended, stats->n_attempts_ended, "exit"), "0");
    assert_string_equal (s_label (stats->attempts_ended, stats->n_attempts_ended, "canceled"),
                         "0");
    assert_int_equal (stats->n_agents_by_state, 4);
    assert_string_equal (s_label (stats->agents_by_state, stats->n_agents_by_state,
                                  "connected"), "0");
    qanat__reply__free_unpacked (reply, NULL);
    //  Two runs queued on no selector, one canceled while queued; three commits
    s_start_ok (engine, NULL, S_TYPED);
    s_commit (engine);
    uint64_t run_id = s_start_ok (engine, NULL, S_TYPED);
    s_commit (engine);
    Qanat__CancelRun cancel = QANAT__CANCEL_RUN__INIT;
    cancel.run_id = run_id;
    Qanat__Request request = QANAT__REQUEST__INIT;
    request.id = 11;
    request.body_case = QANAT__REQUEST__BODY_CANCEL_RUN;
    request.cancel_run = &cancel;
    qanat__reply__free_unpacked (test_api_call (engine, NULL, &request), NULL);
    s_commit (engine);
    reply = s_stats (engine);
    stats = reply->stats;
    assert_int_equal (stats->commit_latency_bucket [9], before + 3);
    for (size_t b = 1; b < 10; b++)
        assert_true (stats->commit_latency_bucket [b] >= stats->commit_latency_bucket [b - 1]);
    assert_true (stats->commit_latency_sum_ms >= 0);
    const char *depth = s_label (stats->queue_depth, stats->n_queue_depth, "");
    assert_non_null (depth);
    assert_string_equal (depth, "1");
    assert_int_equal (stats->tasks_dispatched, 0);
    qanat__reply__free_unpacked (reply, NULL);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test_setup_teardown (test_list_runs_filters, s_setup, test_engine_teardown),
        cmocka_unit_test_setup_teardown (test_read_logs_after_seq, s_setup, test_engine_teardown),
        cmocka_unit_test_setup_teardown (test_read_metrics_all_points, s_setup,
                                         test_engine_teardown),
        cmocka_unit_test_setup_teardown (test_workflows, s_setup, test_engine_teardown),
        cmocka_unit_test_setup_teardown (test_queries_not_found, s_setup, test_engine_teardown),
        cmocka_unit_test_setup_teardown (test_start_by_name, s_setup, test_engine_teardown),
        cmocka_unit_test_setup_teardown (test_rerun_reuses_succeeded, s_setup,
                                         test_engine_teardown),
        cmocka_unit_test_setup_teardown (test_param_types_of_old_runs, s_setup,
                                         test_engine_teardown),
        cmocka_unit_test_setup_teardown (test_stats_additions, s_setup, test_engine_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
