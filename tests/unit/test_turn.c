/*  test_turn - a loop turn without traffic: what is posted waits in the
    outbox until the turn's commit, acknowledgements are coalesced (one
    per attempt and connection, the highest seq), the dirty runs are
    written in the turn's one commit, and a reload rebuilds the active
    runs and their queues from the store; a run it cannot rebuild ends
    failed with its notifications and triggers.  The engine is a real one
    (insecure, on loopback, its sockets bound but never used: a ROUTER
    socket drops what it cannot route).
*/
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include "qn_turn.h"
#include "qn_fleet.h"
#include "test_engine.h"

#define S_WORKFLOW \
    "name: turn-test\n" \
    "tasks:\n" \
    "  one: {run: \"true\"}\n" \
    "  two: {run: \"true\", needs: [one]}\n"

static int
s_setup (void **state)
{
    test_engine_t *t = (test_engine_t *) calloc (1, sizeof (test_engine_t));
    if (test_engine_start (t, "test-turn") != 0)
        return -1;
    *state = t;
    return 0;
}

static void
s_ack (qn_coordinator_t *engine, agent_t *agent, uint32_t attempt, uint64_t seq)
{
    Qanat__AttemptRef ref = QANAT__ATTEMPT_REF__INIT;
    ref.run_id = 3;
    ref.task_index = 0;
    ref.attempt = attempt;
    qn_turn_post_ack (engine, agent, &ref, seq);
}

static void
test_outbox_and_acks (void **state)
{
    test_engine_t *t = (test_engine_t *) *state;
    qn_coordinator_t *engine = t->engine;
    zframe_t *route = zframe_new ("route-t", 7);
    agent_t *agent = qn_fleet_connect (engine, "agent-t", route);

    //  Posted messages wait for the commit
    Qanat__Heartbeat heartbeat = QANAT__HEARTBEAT__INIT;
    Qanat__Envelope env = QANAT__ENVELOPE__INIT;
    env.body_case = QANAT__ENVELOPE__BODY_HEARTBEAT;
    env.heartbeat = &heartbeat;
    qn_turn_post (engine, engine->agents_sock, route, &env, 0);
    qn_turn_post (engine, engine->agents_sock, route, &env, 0);
    assert_int_equal (zlistx_size (engine->outbox), 2);

    //  One ack per attempt and connection, with the highest seq
    s_ack (engine, agent, 1, 3);
    s_ack (engine, agent, 1, 2);
    s_ack (engine, agent, 1, 5);
    s_ack (engine, agent, 2, 1);
    assert_int_equal (zhashx_size (engine->acks), 2);
    uint64_t highest = 0;
    for (pending_ack_t *pending = (pending_ack_t *) zhashx_first (engine->acks); pending;
         pending = (pending_ack_t *) zhashx_next (engine->acks))
        if (pending->attempt == 1)
            highest = pending->seq;
    assert_int_equal (highest, 5);

    //  The end of the turn sends both, and forgets them
    qn_turn_end (engine);
    assert_int_equal (zlistx_size (engine->outbox), 0);
    assert_int_equal (zhashx_size (engine->acks), 0);
    assert_int_equal (engine->stats.sends_refused, 0);
    assert_int_equal (engine->stats.commit_failures, 0);
    zframe_destroy (&route);
}

static void
test_commit_and_reload (void **state)
{
    test_engine_t *t = (test_engine_t *) *state;
    qn_coordinator_t *engine = t->engine;
    //  The workflow's source, as a submission stores it (a reload parses it)
    uint32_t version = 0;
    bool created = false;
    assert_int_equal (qn_store_begin (engine->store), 0);
    assert_int_equal (qn_store_put_workflow (engine->store, "turn-test", "test.yaml", S_WORKFLOW,
                                             strlen (S_WORKFLOW), &version, &created), 0);
    assert_int_equal (version, 1);
    run_t *run = test_engine_add_run (t, 3, S_WORKFLOW);
    assert_non_null (run);
    qn_run_advance (engine, run);
    assert_true (zlistx_size (engine->dirty_runs) > 0);
    uint64_t commits = engine->stats.commits;

    //  The dirty run is written in the turn's one commit
    qn_turn_end (engine);
    assert_int_equal (zlistx_size (engine->dirty_runs), 0);
    assert_int_equal (engine->stats.commits, commits + 1);
    assert_false (run->listed);

    //  A reload forgets memory and rebuilds the run and its queue
    char *error = NULL;
    assert_int_equal (qn_turn_reload (engine, &error), 0);
    assert_null (error);
    run = qn_run_find (engine, 3);
    assert_non_null (run);
    assert_int_equal (qn_run_task (run, 0)->status, QANAT__TASK_STATUS__TASK_QUEUED);
    assert_int_equal (qn_run_task (run, 1)->status, QANAT__TASK_STATUS__TASK_PENDING);
    zlistx_t *queue = (zlistx_t *) zhashx_lookup (engine->queues, "");
    assert_non_null (queue);
    assert_int_equal (zlistx_size (queue), 1);
    qn_turn_end (engine);
}

#define S_NOTIFYING \
    "name: turn-notify\n" \
    "notify: {on: [failed], webhook: {url: \"http://127.0.0.1:9/h\"}}\n" \
    "tasks:\n" \
    "  one: {run: \"true\"}\n" \
    "  two: {run: \"true\", needs: [one]}\n"

//  A run whose records do not match its stored workflow (three tasks
//  there, two stored) is marked failed at the reload; that end, as any,
//  writes its notification and is noted for its triggers, in the same
//  commit.
static void
test_unreloadable_run_ends (void **state)
{
    test_engine_t *t = (test_engine_t *) *state;
    qn_coordinator_t *engine = t->engine;
    const char *stored = S_NOTIFYING "  three: {run: \"true\"}\n";
    uint32_t version = 0;
    bool created = false;
    assert_int_equal (qn_store_begin (engine->store), 0);
    assert_int_equal (qn_store_put_workflow (engine->store, "turn-notify", "test.yaml", stored,
                                             strlen (stored), &version, &created), 0);
    run_t *run = test_engine_add_run (t, 4, S_NOTIFYING);
    assert_non_null (run);
    qn_run_advance (engine, run);
    qn_turn_end (engine);

    char *error = NULL;
    assert_int_equal (qn_turn_reload (engine, &error), 0);
    assert_null (qn_run_find (engine, 4));
    Qanat__RunInfo *info = qn_store_get_run (engine->store, 4);
    assert_non_null (info);
    assert_int_equal (info->status, QANAT__RUN_STATUS__RUN_FAILED);
    qanat__run_info__free_unpacked (info, NULL);
    Qanat__NotifEntry **entries = NULL;
    size_t count = 0;
    assert_int_equal (qn_store_list_notifs (engine->store, 4, 0, &entries, &count), 0);
    assert_int_equal (count, 1);
    assert_string_equal (entries [0]->event, "failed");
    assert_string_equal (entries [0]->state, "pending");
    qn_store_free_array (entries, count);
    uint64_t ids [4];
    assert_int_equal (qn_store_sched_pending_list (engine->store, ids, 4, &count), 0);
    assert_int_equal (count, 1);
    assert_int_equal (ids [0], 4);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test_setup_teardown (test_outbox_and_acks, s_setup, test_engine_teardown),
        cmocka_unit_test_setup_teardown (test_commit_and_reload, s_setup, test_engine_teardown),
        cmocka_unit_test_setup_teardown (test_unreloadable_run_ends, s_setup, test_engine_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
