/*  test_dispatch - the ready queues without a socket: one queue per
    selector (labels and backend), retries waiting out their backoff in the
    delayed list until it is over, queue entries of tasks no longer queued
    dropped, and the waiting reasons `qanat status` shows.  The engine is a
    real one (insecure, on loopback, its sockets bound but never used) with
    no agent, so nothing is ever assigned or sent.
*/
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include "qn_dispatch.h"
#include "qn_run.h"
#include "test_engine.h"

#define S_WORKFLOW \
    "name: dispatch-test\n" \
    "tasks:\n" \
    "  plain: {run: \"true\"}\n" \
    "  gpu: {run: \"true\", on: {gpu: \"true\", env: onprem}}\n" \
    "  slurm: {run: \"true\", backend: slurm}\n" \
    "  later: {run: \"true\", needs: [plain]}\n"

typedef struct {
    test_engine_t t;                    //  first: test_engine_teardown frees the fixture
    run_t *run;
} s_fixture_t;

static int
s_setup (void **state)
{
    s_fixture_t *fixture = (s_fixture_t *) calloc (1, sizeof (s_fixture_t));
    if (test_engine_start (&fixture->t, "test-dispatch") != 0)
        return -1;
    fixture->run = test_engine_add_run (&fixture->t, 7, S_WORKFLOW);
    if (!fixture->run)
        return -1;
    *state = fixture;
    return 0;
}

static size_t
s_index (run_t *run, const char *name)
{
    int index = qn_workflow_task_index (run->wf, name);
    assert_true (index >= 0);
    return (size_t) index;
}

//  The entries of the queue of selector key (0 when there is none).
static size_t
s_queued (qn_coordinator_t *engine, const char *key)
{
    zlistx_t *queue = (zlistx_t *) zhashx_lookup (engine->queues, key);
    return queue? zlistx_size (queue): 0;
}

static void
test_queues_by_selector (void **state)
{
    s_fixture_t *fixture = (s_fixture_t *) *state;
    qn_coordinator_t *engine = fixture->t.engine;
    qn_run_advance (engine, fixture->run);
    //  Promotion queued the three tasks without needs, each by selector
    assert_int_equal (zhashx_size (engine->queues), 3);
    assert_int_equal (s_queued (engine, ""), 1);
    assert_int_equal (s_queued (engine, "gpu=true,env=onprem"), 1);
    assert_int_equal (s_queued (engine, "@slurm"), 1);
    assert_int_equal (zlistx_size (engine->delayed), 0);

    //  With no agent, dispatch hands out nothing and keeps every entry
    qn_dispatch (engine);
    assert_int_equal (s_queued (engine, ""), 1);
    assert_int_equal (qn_run_task (fixture->run, s_index (fixture->run, "plain"))->status,
                      QANAT__TASK_STATUS__TASK_QUEUED);
    assert_int_equal (zlistx_size (engine->outbox), 0);

    //  What it waits for, in words
    qn_dispatch_explain_waiting (engine, fixture->run);
    assert_string_equal (qn_run_task (fixture->run, s_index (fixture->run, "plain"))->waiting_reason,
                         "waiting for any agent");
    assert_string_equal (qn_run_task (fixture->run, s_index (fixture->run, "gpu"))->waiting_reason,
                         "waiting for an agent with gpu=true,env=onprem");
    assert_string_equal (qn_run_task (fixture->run, s_index (fixture->run, "slurm"))->waiting_reason,
                         "waiting for an agent with backend slurm");
    //  A task not queued yet has no reason of this kind
    assert_string_equal (qn_run_task (fixture->run, s_index (fixture->run, "later"))->waiting_reason,
                         "");
}

static void
test_delayed_retries (void **state)
{
    s_fixture_t *fixture = (s_fixture_t *) *state;
    qn_coordinator_t *engine = fixture->t.engine;
    run_t *run = fixture->run;
    size_t plain = s_index (run, "plain");
    qn_run_set_status (run, plain, QANAT__TASK_STATUS__TASK_QUEUED);

    //  A retry whose backoff is not over waits in the delayed list...
    qn_run_task (run, plain)->retry_at_us = qn_now_us () + 3600 * 1000000LL;
    qn_dispatch_queue (engine, run, plain);
    assert_int_equal (zlistx_size (engine->delayed), 1);
    assert_int_equal (s_queued (engine, ""), 0);
    qn_dispatch_release_delayed (engine);
    assert_int_equal (zlistx_size (engine->delayed), 1);
    //  ...and joins its queue once it is
    qn_run_task (run, plain)->retry_at_us = qn_now_us () - 1;
    qn_dispatch_release_delayed (engine);
    assert_int_equal (zlistx_size (engine->delayed), 0);
    assert_int_equal (s_queued (engine, ""), 1);

    //  A delayed task canceled meanwhile just leaves the list
    size_t gpu = s_index (run, "gpu");
    qn_run_set_status (run, gpu, QANAT__TASK_STATUS__TASK_QUEUED);
    qn_run_task (run, gpu)->retry_at_us = qn_now_us () + 3600 * 1000000LL;
    qn_dispatch_queue (engine, run, gpu);
    assert_int_equal (zlistx_size (engine->delayed), 1);
    qn_run_cancel_task (engine, run, gpu, "task canceled");
    qn_run_task (run, gpu)->retry_at_us = 0;
    qn_dispatch_release_delayed (engine);
    assert_int_equal (zlistx_size (engine->delayed), 0);
    assert_int_equal (s_queued (engine, "gpu=true,env=onprem"), 0);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test_setup_teardown (test_queues_by_selector, s_setup, test_engine_teardown),
        cmocka_unit_test_setup_teardown (test_delayed_retries, s_setup, test_engine_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
