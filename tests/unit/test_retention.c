/*  test_retention - keep_runs: the newest finished runs of a workflow are
    kept, older ones go with their tasks, logs and metrics (other
    workflows untouched, a second pass changes nothing), runs still in
    memory are never deleted and count among the kept, the blobs only a
    deleted run referenced are freed (and counted) while a shared one
    stays, and the list of workflows due for trimming that a turn builds.
    The engine is a real one (insecure, on loopback, its sockets bound but
    never used); the runs are written to its store directly.

    S3 collection (qn_retention_s3_collect, qn_retention_on_s3_deleted)
    needs an S3 server and qn_s3gc; only its off switch is checked here
    (the test engine runs with s3_delete_after_s -1 and no qn_s3gc).
*/
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include "qn_retention.h"
#include "test_engine.h"

#define S_WORKFLOW \
    "name: ret\n" \
    "tasks:\n" \
    "  one: {run: \"true\"}\n"

#define SUCCEEDED  QANAT__RUN_STATUS__RUN_SUCCEEDED
#define FAILED     QANAT__RUN_STATUS__RUN_FAILED
#define RUNNING    QANAT__RUN_STATUS__RUN_RUNNING

//  Two blob hashes (64 lowercase hex)
#define S_HASH_ONLY \
    "1111111111111111111111111111111111111111111111111111111111111111"
#define S_HASH_SHARED \
    "2222222222222222222222222222222222222222222222222222222222222222"

static int
s_setup (void **state)
{
    test_engine_t *t = (test_engine_t *) calloc (1, sizeof (test_engine_t));
    if (test_engine_start (t, "test-retention") != 0)
        return -1;
    *state = t;
    return 0;
}

//  A run of workflow in the store, with one task whose one attempt has
//  the outputs given (each holding a reference on its blob), one log line
//  and one metric record.  Opens the store's transaction.
static void
s_put_run (qn_coordinator_t *engine, uint64_t id, const char *workflow,
           Qanat__RunStatus status, const char **hashes, size_t hash_count)
{
    qn_store_t *store = engine->store;
    assert_int_equal (qn_store_begin (store), 0);
    Qanat__RunInfo run = QANAT__RUN_INFO__INIT;
    run.run_id = id;
    run.workflow = (char *) workflow;
    run.version = 1;
    run.status = status;
    run.created_us = 1000 + (int64_t) id;
    assert_int_equal (qn_store_put_run (store, &run), 0);

    Qanat__OutputRecord records [4];
    Qanat__OutputRecord *outputs [4];
    assert_true (hash_count <= 4);
    for (size_t i = 0; i < hash_count; i++) {
        qanat__output_record__init (&records [i]);
        records [i].name = (char *) "out";
        records [i].kind = QANAT__ARTIFACT_KIND__ARTIFACT_FILE;
        records [i].hash = (char *) hashes [i];
        records [i].size = strcmp (hashes [i], S_HASH_ONLY) == 0? 100: 50;
        outputs [i] = &records [i];
    }
    assert_int_equal (qn_artifacts_ref_outputs (engine->artifacts, outputs, hash_count, 1), 0);
    Qanat__AttemptInfo attempt = QANAT__ATTEMPT_INFO__INIT;
    attempt.attempt = 1;
    attempt.finished = status != RUNNING;
    attempt.outputs = outputs;
    attempt.n_outputs = hash_count;
    Qanat__AttemptInfo *attempts [1] = { &attempt };
    Qanat__TaskInfo task = QANAT__TASK_INFO__INIT;
    task.index = 0;
    task.name = (char *) "one";
    task.status = status == RUNNING? QANAT__TASK_STATUS__TASK_RUNNING
                                   : QANAT__TASK_STATUS__TASK_SUCCEEDED;
    task.attempts = attempts;
    task.n_attempts = 1;
    assert_int_equal (qn_store_put_task (store, id, &task), 0);

    Qanat__LogChunk chunk = QANAT__LOG_CHUNK__INIT;
    chunk.data.data = (uint8_t *) "hello\n";
    chunk.data.len = 6;
    Qanat__LogLine line = QANAT__LOG_LINE__INIT;
    line.task = (char *) "one";
    line.attempt = 1;
    line.chunk = &chunk;
    assert_int_equal (qn_store_append_log (store, id, &line, NULL), 0);

    Qanat__MetricPoint point = QANAT__METRIC_POINT__INIT;
    point.name = (char *) "loss";
    point.value = 0.5;
    Qanat__MetricRecord record = QANAT__METRIC_RECORD__INIT;
    record.task = (char *) "one";
    record.attempt = 1;
    record.point = &point;
    assert_int_equal (qn_store_append_metric (store, id, &record), 0);
}

static void
s_commit (qn_coordinator_t *engine)
{
    assert_int_equal (qn_store_commit (engine->store), 0);
}

//  Whether run id is in the store, and then with its task, log and metric
//  (or none of them).
static bool
s_stored (qn_coordinator_t *engine, uint64_t id)
{
    qn_store_t *store = engine->store;
    Qanat__RunInfo *info = qn_store_get_run (store, id);
    bool found = info != NULL;
    if (info)
        qanat__run_info__free_unpacked (info, NULL);

    Qanat__TaskInfo **tasks = NULL;
    size_t task_count = 0;
    assert_int_equal (qn_store_get_tasks (store, id, &tasks, &task_count), 0);
    qn_store_free_array (tasks, task_count);
    Qanat__LogLine **lines = NULL;
    size_t line_count = 0;
    uint64_t last = 0;
    assert_int_equal (qn_store_read_logs (store, id, 0, NULL, 0, 100, &lines, &line_count,
                                          &last), 0);
    qn_store_free_array (lines, line_count);
    Qanat__MetricRecord **records = NULL;
    size_t record_count = 0;
    assert_int_equal (qn_store_read_metrics (store, id, NULL, &records, &record_count), 0);
    qn_store_free_array (records, record_count);

    size_t expected = found? 1: 0;
    assert_int_equal (task_count, expected);
    assert_int_equal (line_count, expected);
    assert_int_equal (record_count, expected);
    return found;
}

//  The run ids a workflow lists, newest first, as "5 4 " etc.
static void
s_assert_listed (qn_coordinator_t *engine, const char *workflow, const char *expected)
{
    Qanat__RunList *list = qn_store_list_runs (engine->store, workflow, 0);
    assert_non_null (list);
    char ids [256] = "";
    for (size_t i = 0; i < list->n_runs; i++) {
        char id [24];
        snprintf (id, sizeof id, "%llu ", (unsigned long long) list->runs [i]->run_id);
        strncat (ids, id, sizeof ids - strlen (ids) - 1);
    }
    qanat__run_list__free_unpacked (list, NULL);
    assert_string_equal (ids, expected);
}

static void
test_keep_newest (void **state)
{
    test_engine_t *t = (test_engine_t *) *state;
    qn_coordinator_t *engine = t->engine;
    for (uint64_t id = 1; id <= 5; id++)
        s_put_run (engine, id, "ret", id % 2? SUCCEEDED: FAILED, NULL, 0);
    for (uint64_t id = 6; id <= 8; id++)
        s_put_run (engine, id, "other", SUCCEEDED, NULL, 0);
    s_commit (engine);
    s_assert_listed (engine, "ret", "5 4 3 2 1 ");
    uint64_t deleted = engine->stats.runs_deleted;
    bool collect_due = engine->s3_collect_due;

    //  Nothing to do while a workflow has no more than it keeps
    qn_retention_retain (engine, "ret", 5);
    qn_retention_retain (engine, "ret", 9);
    qn_retention_retain (engine, "nothing-here", 1);
    assert_int_equal (engine->stats.runs_deleted, deleted);
    assert_int_equal (engine->s3_collect_due, collect_due);

    qn_retention_retain (engine, "ret", 2);
    s_commit (engine);
    assert_int_equal (engine->stats.runs_deleted, deleted + 3);
    for (uint64_t id = 1; id <= 3; id++)
        assert_false (s_stored (engine, id));
    assert_true (s_stored (engine, 4));
    assert_true (s_stored (engine, 5));
    s_assert_listed (engine, "ret", "5 4 ");
    uint64_t *ids = NULL;
    size_t count = 0;
    assert_int_equal (qn_store_workflow_run_ids (engine->store, "ret", &ids, &count), 0);
    assert_int_equal (count, 2);
    assert_int_equal (ids [0], 4);
    assert_int_equal (ids [1], 5);
    free (ids);
    //  References fell: the next S3 pass is due
    assert_true (engine->s3_collect_due);

    //  Another workflow is not touched; a second pass changes nothing
    s_assert_listed (engine, "other", "8 7 6 ");
    qn_retention_retain (engine, "ret", 2);
    s_commit (engine);
    assert_int_equal (engine->stats.runs_deleted, deleted + 3);
    s_assert_listed (engine, "ret", "5 4 ");

    //  keep 1 then takes one more
    qn_retention_retain (engine, "ret", 1);
    s_commit (engine);
    assert_int_equal (engine->stats.runs_deleted, deleted + 4);
    s_assert_listed (engine, "ret", "5 ");
    s_assert_listed (engine, "other", "8 7 6 ");
}

static void
test_active_runs_kept (void **state)
{
    test_engine_t *t = (test_engine_t *) *state;
    qn_coordinator_t *engine = t->engine;
    //  Runs 1 and 3 are still in memory (running); 2, 4, 5, 6 finished
    s_put_run (engine, 1, "ret", RUNNING, NULL, 0);
    s_put_run (engine, 2, "ret", SUCCEEDED, NULL, 0);
    s_put_run (engine, 3, "ret", RUNNING, NULL, 0);
    for (uint64_t id = 4; id <= 6; id++)
        s_put_run (engine, id, "ret", SUCCEEDED, NULL, 0);
    s_commit (engine);
    assert_non_null (test_engine_add_run (t, 1, S_WORKFLOW));
    assert_non_null (test_engine_add_run (t, 3, S_WORKFLOW));
    uint64_t deleted = engine->stats.runs_deleted;

    //  Keep 3 of 6: three must go, and the runs in memory count among the
    //  kept, so the three oldest finished ones go (2, 4, 5), passing over
    //  the active 1 and 3
    qn_retention_retain (engine, "ret", 3);
    s_commit (engine);
    assert_int_equal (engine->stats.runs_deleted, deleted + 3);
    s_assert_listed (engine, "ret", "6 3 1 ");
    assert_true (s_stored (engine, 1));
    assert_true (s_stored (engine, 3));
    assert_true (s_stored (engine, 6));
    assert_false (s_stored (engine, 2));
    assert_false (s_stored (engine, 4));
    assert_false (s_stored (engine, 5));
    assert_non_null (qn_run_find (engine, 1));
    assert_non_null (qn_run_find (engine, 3));

    //  Even keep 1 never deletes a run in memory: only 6 goes
    qn_retention_retain (engine, "ret", 1);
    s_commit (engine);
    assert_int_equal (engine->stats.runs_deleted, deleted + 4);
    s_assert_listed (engine, "ret", "3 1 ");
}

static void
test_blobs_freed (void **state)
{
    test_engine_t *t = (test_engine_t *) *state;
    qn_coordinator_t *engine = t->engine;
    //  Run 1 holds the only reference on one blob and shares another
    //  with run 3; run 2 has none
    const char *old_hashes [] = { S_HASH_ONLY, S_HASH_SHARED };
    const char *new_hashes [] = { S_HASH_SHARED };
    s_put_run (engine, 1, "ret", SUCCEEDED, old_hashes, 2);
    s_put_run (engine, 2, "ret", SUCCEEDED, NULL, 0);
    s_put_run (engine, 3, "ret", SUCCEEDED, new_hashes, 1);
    s_commit (engine);
    uint64_t size = 0;
    uint32_t refs = 0;
    assert_int_equal (qn_store_blob_get (engine->store, S_HASH_ONLY, &size, &refs), 1);
    assert_int_equal (refs, 1);
    assert_int_equal (qn_store_blob_get (engine->store, S_HASH_SHARED, &size, &refs), 1);
    assert_int_equal (refs, 2);
    uint64_t freed = engine->stats.blob_bytes_freed;
    uint64_t deleted = engine->stats.runs_deleted;

    qn_retention_retain (engine, "ret", 1);
    s_commit (engine);
    assert_int_equal (engine->stats.runs_deleted, deleted + 2);
    s_assert_listed (engine, "ret", "3 ");
    //  The blob only run 1 referenced is gone, and counted
    assert_int_equal (qn_store_blob_get (engine->store, S_HASH_ONLY, NULL, NULL), 0);
    assert_int_equal (engine->stats.blob_bytes_freed, freed + 100);
    //  The shared one stays, with run 3's reference
    assert_int_equal (qn_store_blob_get (engine->store, S_HASH_SHARED, &size, &refs), 1);
    assert_int_equal (size, 50);
    assert_int_equal (refs, 1);
}

static void
test_due_and_apply (void **state)
{
    test_engine_t *t = (test_engine_t *) *state;
    qn_coordinator_t *engine = t->engine;
    for (uint64_t id = 1; id <= 3; id++)
        s_put_run (engine, id, "ret", SUCCEEDED, NULL, 0);
    for (uint64_t id = 4; id <= 7; id++)
        s_put_run (engine, id, "other", SUCCEEDED, NULL, 0);
    s_commit (engine);
    uint64_t deleted = engine->stats.runs_deleted;

    //  Nothing noted: nothing done
    zlistx_t *due = NULL;
    qn_retention_apply (engine, &due);
    assert_null (due);
    assert_int_equal (engine->stats.runs_deleted, deleted);

    //  Each workflow noted is trimmed to its own keep; the list goes
    qn_retention_due (&due, "ret", 1);
    assert_non_null (due);
    qn_retention_due (&due, "other", 3);
    assert_int_equal (zlistx_size (due), 2);
    qn_retention_apply (engine, &due);
    assert_null (due);
    s_commit (engine);
    assert_int_equal (engine->stats.runs_deleted, deleted + 3);
    s_assert_listed (engine, "ret", "3 ");
    s_assert_listed (engine, "other", "7 6 5 ");

    //  A list noted but never applied is the caller's to destroy
    qn_retention_due (&due, "ret", 1);
    zlistx_destroy (&due);
}

static void
test_s3_off (void **state)
{
    test_engine_t *t = (test_engine_t *) *state;
    qn_coordinator_t *engine = t->engine;
    //  No qn_s3gc and s3_delete_after_s -1: a pass does nothing at all
    assert_null (engine->s3gc);
    bool due = engine->s3_collect_due;
    bool in_txn = qn_store_in_txn (engine->store);
    qn_retention_s3_collect (engine);
    assert_int_equal (engine->s3_collect_due, due);
    assert_int_equal (qn_store_in_txn (engine->store), in_txn);
    assert_int_equal (engine->stats.s3_objects_deleted, 0);
    assert_int_equal (engine->stats.s3_delete_failures, 0);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test_setup_teardown (test_keep_newest, s_setup, test_engine_teardown),
        cmocka_unit_test_setup_teardown (test_active_runs_kept, s_setup, test_engine_teardown),
        cmocka_unit_test_setup_teardown (test_blobs_freed, s_setup, test_engine_teardown),
        cmocka_unit_test_setup_teardown (test_due_and_apply, s_setup, test_engine_teardown),
        cmocka_unit_test_setup_teardown (test_s3_off, s_setup, test_engine_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
