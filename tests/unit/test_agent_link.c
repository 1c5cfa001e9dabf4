/*  test_agent_link - what the agents' socket does with a decoded message,
    without a socket: Register makes the agent and answers with a Welcome,
    Credit is capped at the agent's capacity, an attempt's events are
    fenced (the current attempt's next seq changes it; a duplicate is
    acknowledged again, a gap ignored, a stale attempt acknowledged and
    canceled), and a blob offer for an attempt the agent does not run is
    refused.  The engine is a real one (insecure, on loopback, its sockets
    bound but never used): what would be sent is read from its outbox.
*/
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include "qn_agent_link.h"
#include "qn_fleet.h"
#include "test_engine.h"

#define S_WORKFLOW \
    "name: link-test\n" \
    "tasks:\n" \
    "  one: {run: \"true\"}\n"

typedef struct {
    test_engine_t t;                    //  first: test_engine_teardown frees the fixture
    run_t *run;
    zframe_t *route;
} s_fixture_t;

static int
s_setup (void **state)
{
    s_fixture_t *fixture = (s_fixture_t *) calloc (1, sizeof (s_fixture_t));
    if (test_engine_start (&fixture->t, "test-agent-link") != 0)
        return -1;
    fixture->run = test_engine_add_run (&fixture->t, 5, S_WORKFLOW);
    if (!fixture->run)
        return -1;
    fixture->route = zframe_new ("route-l", 7);
    *state = fixture;
    return 0;
}

static int
s_teardown (void **state)
{
    s_fixture_t *fixture = (s_fixture_t *) *state;
    zframe_destroy (&fixture->route);
    return test_engine_teardown (state);
}

//  The body case of the outbox's last message, which is removed.
static Qanat__Envelope__BodyCase
s_last_sent (qn_coordinator_t *engine, Qanat__Envelope **env_p)
{
    outgoing_t *out = (outgoing_t *) zlistx_last (engine->outbox);
    assert_non_null (out);
    qn_msg_status_t status;
    Qanat__Envelope *env = qn_msg_decode (zframe_data (out->frame), zframe_size (out->frame),
                                          &status, NULL);
    assert_non_null (env);
    zlistx_delete (engine->outbox, zlistx_cursor (engine->outbox));
    Qanat__Envelope__BodyCase body = env->body_case;
    if (env_p)
        *env_p = env;
    else
        qn_msg_free (&env);
    return body;
}

static agent_t *
s_register (s_fixture_t *fixture)
{
    Qanat__Register reg = QANAT__REGISTER__INIT;
    reg.name = (char *) "agent-l";
    reg.capacity = 2;
    Qanat__Envelope env = QANAT__ENVELOPE__INIT;
    env.body_case = QANAT__ENVELOPE__BODY_REGISTER;
    env.register_ = &reg;
    qn_agent_link_handle (fixture->t.engine, fixture->route, &env);
    agent_t *agent = qn_fleet_by_route (fixture->t.engine, fixture->route);
    assert_non_null (agent);
    assert_string_equal (agent->name, "agent-l");
    return agent;
}

static void
s_event (s_fixture_t *fixture, uint32_t attempt, uint64_t seq, int32_t pid)
{
    Qanat__AttemptRef ref = QANAT__ATTEMPT_REF__INIT;
    ref.run_id = 5;
    ref.task_index = 0;
    ref.attempt = attempt;
    Qanat__Started started = QANAT__STARTED__INIT;
    started.pid = pid;
    Qanat__Event event = QANAT__EVENT__INIT;
    event.attempt = &ref;
    event.seq = seq;
    event.body_case = QANAT__EVENT__BODY_STARTED;
    event.started = &started;
    Qanat__Envelope env = QANAT__ENVELOPE__INIT;
    env.body_case = QANAT__ENVELOPE__BODY_EVENT;
    env.event = &event;
    qn_agent_link_handle (fixture->t.engine, fixture->route, &env);
}

//  The highest seq to acknowledge for attempt of task 0 (0: none).
static uint64_t
s_acked (qn_coordinator_t *engine, uint32_t attempt)
{
    for (pending_ack_t *pending = (pending_ack_t *) zhashx_first (engine->acks); pending;
         pending = (pending_ack_t *) zhashx_next (engine->acks))
        if (pending->run_id == 5 && pending->task == 0 && pending->attempt == attempt)
            return pending->seq;
    return 0;
}

static void
test_register_and_credit (void **state)
{
    s_fixture_t *fixture = (s_fixture_t *) *state;
    qn_coordinator_t *engine = fixture->t.engine;
    agent_t *agent = s_register (fixture);
    assert_true (agent->info->connected);
    Qanat__Envelope *welcome = NULL;
    assert_int_equal (s_last_sent (engine, &welcome), QANAT__ENVELOPE__BODY_WELCOME);
    assert_string_equal (welcome->welcome->agent_name, "agent-l");
    assert_int_equal (welcome->welcome->n_held, 0);
    qn_msg_free (&welcome);

    //  Credit adds up, capped at the agent's capacity
    Qanat__Credit credit = QANAT__CREDIT__INIT;
    credit.slots = 5;
    Qanat__Envelope env = QANAT__ENVELOPE__INIT;
    env.body_case = QANAT__ENVELOPE__BODY_CREDIT;
    env.credit = &credit;
    qn_agent_link_handle (engine, fixture->route, &env);
    assert_int_equal (agent->info->credit, 2);
    assert_ptr_equal (zhashx_lookup (engine->with_credit, "agent-l"), agent);
}

static void
test_event_fencing (void **state)
{
    s_fixture_t *fixture = (s_fixture_t *) *state;
    qn_coordinator_t *engine = fixture->t.engine;
    agent_t *agent = s_register (fixture);
    zlistx_purge (engine->outbox);
    qn_run_advance (engine, fixture->run);
    Qanat__AttemptInfo *attempt = qn_run_attempt_start (fixture->run, 0, agent);
    assert_non_null (attempt);
    uint32_t current = attempt->attempt;

    //  The current attempt's next event changes it, and is acknowledged
    s_event (fixture, current, 1, 4242);
    assert_int_equal (attempt->pid, 4242);
    assert_int_equal (attempt->last_seq, 1);
    assert_int_equal (s_acked (engine, current), 1);
    assert_int_equal (engine->stats.events_committed, 1);

    //  A duplicate is acknowledged again and changes nothing
    s_event (fixture, current, 1, 1);
    assert_int_equal (attempt->pid, 4242);
    assert_int_equal (engine->stats.duplicate_events, 1);

    //  A gap is ignored: the agent replays from its last acknowledgement
    s_event (fixture, current, 3, 1);
    assert_int_equal (attempt->last_seq, 1);
    assert_int_equal (s_acked (engine, current), 1);

    //  An attempt no longer current is acknowledged and canceled
    s_event (fixture, current + 1, 1, 1);
    assert_int_equal (engine->stats.stale_events, 1);
    assert_int_equal (s_acked (engine, current + 1), 1);
    assert_int_equal (s_last_sent (engine, NULL), QANAT__ENVELOPE__BODY_CANCEL);
    assert_int_equal (attempt->pid, 4242);
}

static void
test_blob_offer_refused (void **state)
{
    s_fixture_t *fixture = (s_fixture_t *) *state;
    qn_coordinator_t *engine = fixture->t.engine;
    s_register (fixture);
    zlistx_purge (engine->outbox);
    uint64_t denied = engine->stats.denied;
    Qanat__AttemptRef ref = QANAT__ATTEMPT_REF__INIT;
    ref.run_id = 5;
    ref.attempt = 1;
    Qanat__BlobOffer offer = QANAT__BLOB_OFFER__INIT;
    offer.attempt = &ref;
    offer.hash = (char *) "00";
    Qanat__Envelope env = QANAT__ENVELOPE__INIT;
    env.body_case = QANAT__ENVELOPE__BODY_BLOB_OFFER;
    env.blob_offer = &offer;
    qn_agent_link_handle (engine, fixture->route, &env);
    Qanat__Envelope *want = NULL;
    assert_int_equal (s_last_sent (engine, &want), QANAT__ENVELOPE__BODY_BLOB_WANT);
    assert_string_equal (want->blob_want->error, "not an output of an attempt this agent runs");
    qn_msg_free (&want);
    assert_int_equal (engine->stats.denied, denied + 1);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test_setup_teardown (test_register_and_credit, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_event_fencing, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_blob_offer_refused, s_setup, s_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
