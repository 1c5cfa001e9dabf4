/*  test_run - a run's task and attempt transitions without a socket: the
    attempt endings and their wire spelling, the retry decision, the one
    skip-dependents routine (after a failure, a cancel and a task that
    cannot start), success releasing dependents, and the dirty marks the
    loop turn writes.  The engine is a real one (insecure, on loopback, its
    sockets bound but never used); the agent is a record of the test's own
    that the engine does not know, so nothing is ever sent.
*/
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include "qn_run.h"
#include "test_engine.h"

#define QUEUED     QANAT__TASK_STATUS__TASK_QUEUED
#define PENDING    QANAT__TASK_STATUS__TASK_PENDING
#define RUNNING    QANAT__TASK_STATUS__TASK_RUNNING
#define SUCCEEDED  QANAT__TASK_STATUS__TASK_SUCCEEDED
#define FAILED     QANAT__TASK_STATUS__TASK_FAILED
#define SKIPPED    QANAT__TASK_STATUS__TASK_SKIPPED
#define CANCELED   QANAT__TASK_STATUS__TASK_CANCELED

//  a -> b, c -> d; a retries once after an exit, b never.
#define S_DIAMOND \
    "name: run-test\n" \
    "tasks:\n" \
    "  a: {run: \"true\", retries: 1, retry_delay: 0s, retry_on: [exit]}\n" \
    "  b: {run: \"true\", needs: [a]}\n" \
    "  c: {run: \"true\", needs: [a]}\n" \
    "  d: {run: \"true\", needs: [b, c]}\n"

typedef struct {
    test_engine_t t;                    //  first: test_engine_teardown frees the fixture
    agent_t agent;                      //  unknown to the engine
    Qanat__AgentInfo agent_info;
    uint64_t next_run;
} s_fixture_t;

static int
s_setup (void **state)
{
    s_fixture_t *fixture = (s_fixture_t *) calloc (1, sizeof (s_fixture_t));
    if (test_engine_start (&fixture->t, "test-run") != 0)
        return -1;
    qanat__agent_info__init (&fixture->agent_info);
    fixture->agent.name = (char *) "agent-t";
    fixture->agent.info = &fixture->agent_info;
    fixture->next_run = 1;
    *state = fixture;
    return 0;
}

//  A new run of yaml in the engine's runs table, advanced once.
static run_t *
s_start (s_fixture_t *fixture, const char *yaml)
{
    char *error = NULL;
    qn_workflow_t *wf = qn_workflow_parse ("test.yaml", yaml, strlen (yaml), &error);
    if (!wf)
        fail_msg ("workflow did not parse: %s", error? error: "?");
    uint64_t id = fixture->next_run++;
    run_t *run = qn_run_new (fixture->t.engine, id, wf, 1, "test.yaml", NULL, 0);
    assert_non_null (run);
    char key [QN_RUN_KEY_SIZE];
    zhashx_insert (fixture->t.engine->runs, qn_run_key (id, key), run);
    qn_run_advance (fixture->t.engine, run);
    assert_ptr_equal (qn_run_find (fixture->t.engine, id), run);
    return run;
}

static size_t
s_index (run_t *run, const char *name)
{
    int index = qn_workflow_task_index (run->wf, name);
    if (index < 0)
        fail_msg ("no task '%s'", name);
    return (size_t) index;
}

static Qanat__TaskInfo *
s_named (run_t *run, const char *name)
{
    return qn_run_task (run, s_index (run, name));
}

//  The record and the graph agree on every task's status.
static void
s_assert_status (run_t *run, const char *name, Qanat__TaskStatus status)
{
    assert_int_equal (s_named (run, name)->status, status);
    assert_int_equal (qn_dag_status (run->dag, s_index (run, name)), status);
}

static void
s_assert_dirty (run_t *run, const char *name)
{
    assert_true (run->dirty_task [s_index (run, name)]);
    assert_true (run->listed);
}

//  Starts the current attempt of a queued task on the fixture's agent.
static Qanat__AttemptInfo *
s_run_task (s_fixture_t *fixture, run_t *run, const char *name)
{
    s_assert_status (run, name, QUEUED);
    Qanat__AttemptInfo *attempt = qn_run_attempt_start (run, s_index (run, name), &fixture->agent);
    assert_non_null (attempt);
    assert_string_equal (attempt->agent, "agent-t");
    assert_false (attempt->finished);
    assert_ptr_equal (qn_run_current_attempt (s_named (run, name)), attempt);
    s_assert_status (run, name, RUNNING);
    return attempt;
}

static void
test_ends (void **state)
{
    (void) state;
    //  The wire and store spelling of every end, unchanged
    static const char *names [QN_END_COUNT] = {
        "exit", "timeout", "agent_lost", "start", "check", "output", "canceled", "cached"
    };
    for (int end = 0; end < QN_END_COUNT; end++)
        assert_string_equal (qn_end_name ((qn_end_t) end), names [end]);
    assert_int_equal (qn_end_retry_flag (QN_END_EXIT), QN_RETRY_ON_EXIT);
    assert_int_equal (qn_end_retry_flag (QN_END_TIMEOUT), QN_RETRY_ON_TIMEOUT);
    assert_int_equal (qn_end_retry_flag (QN_END_AGENT_LOST), QN_RETRY_ON_AGENT_LOST);
    assert_int_equal (qn_end_retry_flag (QN_END_START), QN_RETRY_ON_AGENT_LOST);
    assert_int_equal (qn_end_retry_flag (QN_END_CHECK), QN_RETRY_ON_CHECK);
    assert_int_equal (qn_end_retry_flag (QN_END_OUTPUT), QN_RETRY_ON_OUTPUT);
    assert_int_equal (qn_end_retry_flag (QN_END_CANCELED), 0);
    assert_int_equal (qn_end_retry_flag (QN_END_CACHED), 0);

    assert_int_equal (qn_end_of_kind (QANAT__END_KIND__END_TIMEOUT), QN_END_TIMEOUT);
    assert_int_equal (qn_end_of_kind (QANAT__END_KIND__END_CANCELED), QN_END_CANCELED);
    assert_int_equal (qn_end_of_kind (QANAT__END_KIND__END_LOST), QN_END_AGENT_LOST);
    assert_int_equal (qn_end_of_kind (QANAT__END_KIND__END_START_FAILED), QN_END_START);
    assert_int_equal (qn_end_of_kind (QANAT__END_KIND__END_EXIT), QN_END_EXIT);

    //  Keys in the caller's buffer: two at once
    char one [QN_RUN_KEY_SIZE], two [QN_RUN_KEY_SIZE];
    qn_run_key (42, one);
    qn_run_key (UINT64_MAX, two);
    assert_string_equal (one, "42");
    assert_string_equal (two, "18446744073709551615");
}

static void
test_retry_decision (void **state)
{
    (void) state;
    const char *yaml = "name: retry\ntasks:\n"
                       "  x: {run: \"true\", retries: 2, retry_on: [timeout, check]}\n"
                       "  y: {run: \"true\"}\n";
    char *error = NULL;
    qn_workflow_t *wf = qn_workflow_parse ("retry.yaml", yaml, strlen (yaml), &error);
    assert_non_null (wf);
    const qn_task_t *x = qn_workflow_task (wf, (size_t) qn_workflow_task_index (wf, "x"));
    const qn_task_t *y = qn_workflow_task (wf, (size_t) qn_workflow_task_index (wf, "y"));
    //  After the first and the second attempt, a third remains
    assert_true (qn_run_retries (x, 1, QN_END_TIMEOUT, false));
    assert_true (qn_run_retries (x, 2, QN_END_CHECK, false));
    assert_false (qn_run_retries (x, 3, QN_END_TIMEOUT, false));
    //  Ends it does not retry, a canceled attempt, a run being canceled
    assert_false (qn_run_retries (x, 1, QN_END_EXIT, false));
    assert_false (qn_run_retries (x, 1, QN_END_CANCELED, false));
    assert_false (qn_run_retries (x, 1, QN_END_TIMEOUT, true));
    //  No retries at all by default
    assert_false (qn_run_retries (y, 1, QN_END_EXIT, false));
    qn_workflow_destroy (&wf);
}

static void
test_failure_retries_then_skips (void **state)
{
    s_fixture_t *fixture = (s_fixture_t *) *state;
    run_t *run = s_start (fixture, S_DIAMOND);
    s_assert_status (run, "a", QUEUED);
    s_assert_status (run, "b", PENDING);
    assert_int_equal (run->info->status, QANAT__RUN_STATUS__RUN_QUEUED);

    //  The first exit is retried: queued again, with the reason
    Qanat__AttemptInfo *first = s_run_task (fixture, run, "a");
    qn_run_attempt_failed (fixture->t.engine, run, s_index (run, "a"), QN_END_EXIT, "exit code 1");
    assert_true (first->finished);
    assert_string_equal (first->end, "exit");
    assert_string_equal (first->reason, "exit code 1");
    s_assert_status (run, "a", QUEUED);
    assert_non_null (strstr (s_named (run, "a")->waiting_reason, "retry 1 of 1 in "));
    assert_non_null (strstr (s_named (run, "a")->waiting_reason, "after: exit code 1"));
    s_assert_dirty (run, "a");
    s_assert_status (run, "b", PENDING);

    //  The second is not: a fails, everything after it is skipped
    Qanat__AttemptInfo *second = s_run_task (fixture, run, "a");
    assert_int_equal (second->attempt, 2);
    assert_int_equal (s_named (run, "a")->retry_at_us, 0);
    qn_run_attempt_failed (fixture->t.engine, run, s_index (run, "a"), QN_END_EXIT, "exit code 2");
    s_assert_status (run, "a", FAILED);
    const char *dependents [] = { "b", "c", "d" };
    for (size_t i = 0; i < 3; i++) {
        s_assert_status (run, dependents [i], SKIPPED);
        assert_string_equal (s_named (run, dependents [i])->waiting_reason, "skipped: a failed");
        s_assert_dirty (run, dependents [i]);
    }
    assert_int_equal (run->info->status, QANAT__RUN_STATUS__RUN_FAILED);
    assert_true (run->dirty);
    assert_true (run->info->finished_us > 0);

    //  The turn writes it all and clears the marks; the run stays on the
    //  turn's list (once) until the turn ends
    assert_int_equal (qn_run_persist (fixture->t.engine, run), 0);
    assert_false (run->dirty);
    assert_true (run->listed);
    assert_int_equal (run->dirty_count, 0);
}

static void
test_ends_not_retried (void **state)
{
    s_fixture_t *fixture = (s_fixture_t *) *state;
    run_t *run = s_start (fixture, S_DIAMOND);
    //  a retries exits only: a lost agent fails it at once
    s_run_task (fixture, run, "a");
    qn_run_attempt_failed (fixture->t.engine, run, s_index (run, "a"), QN_END_AGENT_LOST,
                           "agent lost");
    s_assert_status (run, "a", FAILED);
    assert_string_equal (qn_run_current_attempt (s_named (run, "a"))->end, "agent_lost");
    s_assert_status (run, "d", SKIPPED);
}

static void
test_success_and_cancel (void **state)
{
    s_fixture_t *fixture = (s_fixture_t *) *state;
    run_t *run = s_start (fixture, S_DIAMOND);
    Qanat__AttemptInfo *attempt = s_run_task (fixture, run, "a");
    assert_int_equal (run->info->status, QANAT__RUN_STATUS__RUN_QUEUED);
    qn_run_advance (fixture->t.engine, run);
    assert_int_equal (run->info->status, QANAT__RUN_STATUS__RUN_RUNNING);

    Qanat__Finished finished = QANAT__FINISHED__INIT;
    qn_run_attempt_finished (fixture->t.engine, run, s_index (run, "a"), attempt, &finished);
    s_assert_status (run, "a", SUCCEEDED);
    assert_true (attempt->finished);
    assert_string_equal (attempt->end, "exit");
    s_assert_status (run, "b", QUEUED);
    s_assert_status (run, "c", QUEUED);
    s_assert_status (run, "d", PENDING);

    //  A running task canceled: its attempt ends as canceled, d is skipped
    Qanat__AttemptInfo *b = s_run_task (fixture, run, "b");
    qn_run_cancel_task (fixture->t.engine, run, s_index (run, "b"), "task canceled");
    s_assert_status (run, "b", CANCELED);
    assert_true (b->finished);
    assert_string_equal (b->end, "canceled");
    assert_string_equal (b->reason, "canceled: task canceled");
    s_assert_status (run, "d", SKIPPED);
    assert_string_equal (s_named (run, "d")->waiting_reason, "skipped: b canceled");
    //  A queued one canceled: no attempt
    qn_run_cancel_task (fixture->t.engine, run, s_index (run, "c"), "task canceled");
    s_assert_status (run, "c", CANCELED);
    assert_int_equal (s_named (run, "c")->n_attempts, 0);
    qn_run_advance (fixture->t.engine, run);
    assert_int_equal (run->info->status, QANAT__RUN_STATUS__RUN_CANCELED);
}

static void
test_fail_unstartable (void **state)
{
    s_fixture_t *fixture = (s_fixture_t *) *state;
    run_t *run = s_start (fixture, S_DIAMOND);
    qn_run_fail_unstartable (fixture->t.engine, run, s_index (run, "a"), "secret X is missing");
    s_assert_status (run, "a", FAILED);
    assert_int_equal (s_named (run, "a")->n_attempts, 0);
    assert_string_equal (s_named (run, "a")->waiting_reason, "cannot start: secret X is missing");
    s_assert_status (run, "b", SKIPPED);
    assert_string_equal (s_named (run, "b")->waiting_reason, "skipped: a failed");
    assert_int_equal (run->info->status, QANAT__RUN_STATUS__RUN_FAILED);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_ends),
        cmocka_unit_test (test_retry_decision),
        cmocka_unit_test_setup_teardown (test_failure_retries_then_skips, s_setup, test_engine_teardown),
        cmocka_unit_test_setup_teardown (test_ends_not_retried, s_setup, test_engine_teardown),
        cmocka_unit_test_setup_teardown (test_success_and_cancel, s_setup, test_engine_teardown),
        cmocka_unit_test_setup_teardown (test_fail_unstartable, s_setup, test_engine_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
