/*  test_fleet - the agents the engine knows, without a socket: an agent
    on a connection is found by its route and leaves it for another, its
    credit puts it in and out of the agents with credit, and the liveness
    sweep declares it suspect after its grace, lost after its deadline,
    and returns its attempts, which then fail as agent_lost and retry by
    policy.  The engine is a real one (insecure, on loopback, its sockets
    bound but never used); the routing ids are the test's own frames.
*/
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include "qn_fleet.h"
#include "qn_run.h"
#include "test_engine.h"

#define S_WORKFLOW \
    "name: fleet-test\n" \
    "tasks:\n" \
    "  once: {run: \"true\"}\n" \
    "  again: {run: \"true\", retries: 2, retry_delay: 0s, retry_on: [agent_lost]}\n"

typedef struct {
    test_engine_t t;                    //  first: test_engine_teardown frees the fixture
    run_t *run;
    zframe_t *route_a;
    zframe_t *route_b;
} s_fixture_t;

static int
s_setup (void **state)
{
    s_fixture_t *fixture = (s_fixture_t *) calloc (1, sizeof (s_fixture_t));
    if (test_engine_start (&fixture->t, "test-fleet") != 0)
        return -1;
    fixture->run = test_engine_add_run (&fixture->t, 9, S_WORKFLOW);
    if (!fixture->run)
        return -1;
    fixture->route_a = zframe_new ("route-a", 7);
    fixture->route_b = zframe_new ("route-b", 7);
    *state = fixture;
    return 0;
}

static int
s_teardown (void **state)
{
    s_fixture_t *fixture = (s_fixture_t *) *state;
    zframe_destroy (&fixture->route_a);
    zframe_destroy (&fixture->route_b);
    return test_engine_teardown (state);
}

static size_t
s_index (run_t *run, const char *name)
{
    int index = qn_workflow_task_index (run->wf, name);
    assert_true (index >= 0);
    return (size_t) index;
}

//  A connected agent with the timer profile of its own (grace, deadline).
static agent_t *
s_connect (qn_coordinator_t *engine, const char *name, zframe_t *route)
{
    agent_t *agent = qn_fleet_connect (engine, name, route);
    assert_non_null (agent);
    agent->info->connected = true;
    agent->info->capacity = 4;
    agent->info->suspect_after_ms = 1000;
    agent->info->lost_after_ms = 5000;
    qn_fleet_update_state (agent, zclock_mono ());
    return agent;
}

static void
test_routes_and_credit (void **state)
{
    s_fixture_t *fixture = (s_fixture_t *) *state;
    qn_coordinator_t *engine = fixture->t.engine;
    agent_t *agent = s_connect (engine, "agent-a", fixture->route_a);
    assert_ptr_equal (qn_fleet_by_route (engine, fixture->route_a), agent);
    assert_null (qn_fleet_by_route (engine, fixture->route_b));
    assert_string_equal (agent->info->state, "connected");

    //  Credit puts a connected agent among those dispatch walks
    qn_fleet_set_credit (engine, agent, 3);
    assert_ptr_equal (zhashx_lookup (engine->with_credit, "agent-a"), agent);
    qn_fleet_set_credit (engine, agent, 0);
    assert_null (zhashx_lookup (engine->with_credit, "agent-a"));
    qn_fleet_set_credit (engine, agent, 2);

    //  The same agent on a new connection leaves the old one, and its credit
    agent_t *again = s_connect (engine, "agent-a", fixture->route_b);
    assert_ptr_equal (again, agent);
    assert_null (qn_fleet_by_route (engine, fixture->route_a));
    assert_ptr_equal (qn_fleet_by_route (engine, fixture->route_b), agent);
    assert_int_equal (agent->info->credit, 0);
    assert_null (zhashx_lookup (engine->with_credit, "agent-a"));

    //  Another agent registering on that connection takes it over
    agent_t *other = s_connect (engine, "agent-b", fixture->route_b);
    assert_ptr_equal (qn_fleet_by_route (engine, fixture->route_b), other);
    assert_null (agent->routing_id);
    qn_fleet_update_state (agent, zclock_mono ());
    assert_string_equal (agent->info->state, "disconnected");

    //  Drained agents take no new work
    assert_null (qn_fleet_unavailable (other, zclock_mono ()));
    other->drained_by_admin = true;
    assert_string_equal (qn_fleet_unavailable (other, zclock_mono ()), "draining");
    qn_fleet_update_state (other, zclock_mono ());
    assert_true (other->info->draining);
}

static void
test_suspect_then_lost (void **state)
{
    s_fixture_t *fixture = (s_fixture_t *) *state;
    qn_coordinator_t *engine = fixture->t.engine;
    run_t *run = fixture->run;
    agent_t *agent = s_connect (engine, "agent-a", fixture->route_a);
    qn_run_advance (engine, run);
    size_t once = s_index (run, "once");
    size_t again = s_index (run, "again");
    assert_non_null (qn_run_attempt_start (run, once, agent));
    assert_non_null (qn_run_attempt_start (run, again, agent));
    assert_int_equal (zhashx_size (agent->attempts), 2);
    int64_t now = zclock_mono ();

    //  Within its grace nothing happens
    zlistx_t *lost = qn_fleet_sweep (engine, now);
    assert_int_equal (zlistx_size (lost), 0);
    zlistx_destroy (&lost);
    assert_string_equal (agent->info->state, "connected");

    //  Past its grace: suspect, still connected, no new work, nothing to fail
    agent->last_seen = now - 2000;
    lost = qn_fleet_sweep (engine, now);
    assert_int_equal (zlistx_size (lost), 0);
    zlistx_destroy (&lost);
    assert_string_equal (agent->info->state, "suspect");
    assert_non_null (agent->routing_id);
    assert_string_equal (qn_fleet_unavailable (agent, now), "suspect");

    //  Past its deadline: lost, disconnected, and its attempts returned
    agent->last_seen = now - 6000;
    lost = qn_fleet_sweep (engine, now);
    assert_string_equal (agent->info->state, "lost");
    assert_true (agent->lost);
    assert_null (agent->routing_id);
    assert_false (agent->info->connected);
    assert_null (qn_fleet_by_route (engine, fixture->route_a));
    assert_int_equal (zlistx_size (lost), 2);
    bool seen [2] = { false, false };
    for (ready_t *ref = (ready_t *) zlistx_first (lost); ref; ref = (ready_t *) zlistx_next (lost)) {
        assert_int_equal (ref->run_id, 9);
        assert_true (ref->task == once || ref->task == again);
        seen [ref->task == again] = true;
    }
    assert_true (seen [0] && seen [1]);

    //  Failing them: agent_lost ends both, the one with retries queues again
    qn_fleet_fail_attempts (engine, &lost, "agent lost");
    assert_null (lost);
    assert_string_equal (qn_run_current_attempt (qn_run_task (run, once))->end, "agent_lost");
    assert_int_equal (qn_run_task (run, once)->status, QANAT__TASK_STATUS__TASK_FAILED);
    assert_string_equal (qn_run_current_attempt (qn_run_task (run, again))->end, "agent_lost");
    assert_int_equal (qn_run_task (run, again)->status, QANAT__TASK_STATUS__TASK_QUEUED);
    assert_int_equal (zhashx_size (agent->attempts), 0);

    //  An agent with nothing left to fail is not returned again
    lost = qn_fleet_sweep (engine, now + 1000);
    assert_int_equal (zlistx_size (lost), 0);
    zlistx_destroy (&lost);
}

static void
test_revoke (void **state)
{
    s_fixture_t *fixture = (s_fixture_t *) *state;
    qn_coordinator_t *engine = fixture->t.engine;
    run_t *run = fixture->run;
    agent_t *agent = s_connect (engine, "agent-a", fixture->route_a);
    qn_run_advance (engine, run);
    size_t again = s_index (run, "again");
    assert_non_null (qn_run_attempt_start (run, again, agent));

    assert_null (qn_fleet_revoke (engine, "nobody"));
    assert_ptr_equal (qn_fleet_revoke (engine, "agent-a"), agent);
    assert_null (qn_fleet_by_route (engine, fixture->route_a));
    assert_string_equal (agent->info->state, "lost");
    Qanat__AttemptInfo *attempt = qn_run_current_attempt (qn_run_task (run, again));
    assert_string_equal (attempt->end, "agent_lost");
    assert_int_equal (qn_run_task (run, again)->status, QANAT__TASK_STATUS__TASK_QUEUED);
}

static void
test_expect (void **state)
{
    s_fixture_t *fixture = (s_fixture_t *) *state;
    qn_coordinator_t *engine = fixture->t.engine;
    //  An agent only a stored attempt names waits out the engine's deadline
    agent_t *agent = qn_fleet_expect (engine, "agent-z");
    assert_non_null (agent);
    assert_ptr_equal (qn_fleet_expect (engine, "agent-z"), agent);
    assert_int_equal (agent->info->lost_after_ms, engine->config.lost_after_ms);
    assert_string_equal (agent->info->state, "disconnected");
    assert_null (agent->routing_id);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test_setup_teardown (test_routes_and_credit, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_suspect_then_lost, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_revoke, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_expect, s_setup, s_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
