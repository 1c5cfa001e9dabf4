/*  test_api - the client request layer without its socket: the table
    covers every Request body case of proto/qanat.proto exactly once, the
    admin-only kinds are exactly those of the protocol and are refused to a
    user with the same message as ever, an unknown kind gets the same error
    as ever, and a few handlers answer through a reply function of the
    test's own (the engine is a real one, insecure, on loopback; its
    sockets are bound but never used here).
*/
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include "qn_api.h"
#include "test_engine.h"
#include "test_api_call.h"

#define S_WORKFLOW  "name: api-test\ntasks:\n  a:\n    run: echo a\n"

typedef struct {
    test_engine_t t;                    //  first: test_engine_teardown frees the fixture
} s_fixture_t;

static Qanat__Reply *
s_call (qn_coordinator_t *engine, const Qanat__Principal *principal, Qanat__Request *request)
{
    return test_api_call (engine, principal, request);
}

//  An error reply with message and its kind (Error.code)
static void
s_assert_error (Qanat__Reply *reply, Qanat__ErrorCode code, const char *message)
{
    assert_int_equal (reply->body_case, QANAT__REPLY__BODY_ERROR);
    assert_string_equal (reply->error->message, message);
    assert_int_equal (reply->error->code, code);
    qanat__reply__free_unpacked (reply, NULL);
}

static int
s_setup (void **state)
{
    s_fixture_t *fixture = (s_fixture_t *) calloc (1, sizeof (s_fixture_t));
    if (test_engine_start (&fixture->t, "test-api") != 0)
        return -1;
    *state = fixture;
    return 0;
}

static void
test_table_covers_every_request (void **state)
{
    (void) state;
    size_t count = 0;
    const qn_api_entry_t *table = qn_api_table (&count);
    size_t body_cases = 0;
    const ProtobufCMessageDescriptor *descriptor = &qanat__request__descriptor;
    for (unsigned f = 0; f < descriptor->n_fields; f++) {
        const ProtobufCFieldDescriptor *field = &descriptor->fields [f];
        if (!(field->flags & PROTOBUF_C_FIELD_FLAG_ONEOF))
            continue;
        body_cases++;
        size_t rows = 0;
        for (size_t i = 0; i < count; i++)
            if ((unsigned) table [i].body_case == field->id) {
                rows++;
                assert_non_null (table [i].handler);
            }
        if (rows != 1)
            fail_msg ("request body %s has %zu rows in the table", field->name, rows);
        assert_non_null (qn_api_entry ((Qanat__Request__BodyCase) field->id));
    }
    assert_true (body_cases > 0);
    assert_int_equal (count, body_cases);
    assert_null (qn_api_entry (QANAT__REQUEST__BODY__NOT_SET));
}

//  The admin-only kinds are the protocol's (docs/protocol.md), no more
static void
test_admin_kinds (void **state)
{
    (void) state;
    const Qanat__Request__BodyCase admin [] = {
        QANAT__REQUEST__BODY_DRAIN_AGENT, QANAT__REQUEST__BODY_CREATE_TOKEN,
        QANAT__REQUEST__BODY_ADD_USER, QANAT__REQUEST__BODY_REVOKE_AGENT,
        QANAT__REQUEST__BODY_SET_SECRET, QANAT__REQUEST__BODY_LIST_SECRETS,
        QANAT__REQUEST__BODY_CREATE_API_TOKEN, QANAT__REQUEST__BODY_LIST_API_TOKENS,
        QANAT__REQUEST__BODY_REVOKE_API_TOKEN, QANAT__REQUEST__BODY_LIST_USERS,
        QANAT__REQUEST__BODY_REVOKE_USER, QANAT__REQUEST__BODY_LIST_TOKENS,
        QANAT__REQUEST__BODY_REVOKE_TOKEN, QANAT__REQUEST__BODY_DELETE_SECRET,
        QANAT__REQUEST__BODY_REMOVE_AGENT, QANAT__REQUEST__BODY_LABEL_AGENT,
        QANAT__REQUEST__BODY_SCHEDULE_PAUSE, QANAT__REQUEST__BODY_SET_LIMIT,
        QANAT__REQUEST__BODY_BACKUP
    };
    size_t count = 0;
    const qn_api_entry_t *table = qn_api_table (&count);
    size_t admins = 0;
    for (size_t i = 0; i < count; i++) {
        bool listed = false;
        for (size_t a = 0; a < sizeof admin / sizeof admin [0]; a++)
            listed = listed || table [i].body_case == admin [a];
        assert_int_equal (table [i].role, listed? QN_API_ADMIN: QN_API_USER);
        admins += listed;
    }
    assert_int_equal (admins, sizeof admin / sizeof admin [0]);
}

//  Refused before the handler runs: the request bodies are not even set.
static void
test_admin_refused_to_user (void **state)
{
    s_fixture_t *fixture = (s_fixture_t *) *state;
    Qanat__Principal user = QANAT__PRINCIPAL__INIT;
    user.kind = (char *) "user";
    user.name = (char *) "alice";
    user.role = (char *) "user";
    size_t count = 0;
    const qn_api_entry_t *table = qn_api_table (&count);
    uint64_t refused = 0;
    for (size_t i = 0; i < count; i++) {
        if (table [i].role != QN_API_ADMIN)
            continue;
        Qanat__Request request = QANAT__REQUEST__INIT;
        request.id = 100 + i;
        request.body_case = table [i].body_case;
        s_assert_error (s_call (fixture->t.engine, &user, &request),
                        QANAT__ERROR_CODE__ERROR_DENIED, "permission denied: needs role admin");
        refused++;
    }
    //  ...and counted as denied
    Qanat__GetStats get = QANAT__GET_STATS__INIT;
    Qanat__Request request = QANAT__REQUEST__INIT;
    request.id = 7;
    request.body_case = QANAT__REQUEST__BODY_GET_STATS;
    request.get_stats = &get;
    Qanat__Reply *reply = s_call (fixture->t.engine, &user, &request);
    assert_int_equal (reply->body_case, QANAT__REPLY__BODY_STATS);
    assert_true (reply->stats->denied >= refused);
    qanat__reply__free_unpacked (reply, NULL);
}

static void
test_unknown_and_bad_requests (void **state)
{
    s_fixture_t *fixture = (s_fixture_t *) *state;
    Qanat__Request request = QANAT__REQUEST__INIT;
    request.id = 1;
    s_assert_error (s_call (fixture->t.engine, NULL, &request), QANAT__ERROR_CODE__ERROR_BAD_REQUEST,
                    "unknown request");
    Qanat__StartRun start = QANAT__START_RUN__INIT;
    request.id = 2;
    request.body_case = QANAT__REQUEST__BODY_START_RUN;
    request.start_run = &start;
    s_assert_error (s_call (fixture->t.engine, NULL, &request), QANAT__ERROR_CODE__ERROR_BAD_REQUEST,
                    "start run: no workflow given");
    Qanat__GetRun get = QANAT__GET_RUN__INIT;
    get.run_id = 42;
    request.id = 3;
    request.body_case = QANAT__REQUEST__BODY_GET_RUN;
    request.get_run = &get;
    s_assert_error (s_call (fixture->t.engine, NULL, &request), QANAT__ERROR_CODE__ERROR_NOT_FOUND,
                    "no run 42");
}

//  The administrative requests on an insecure engine: nothing to find,
//  and no keyring for users, tokens or labels
static void
s_admin_handlers (qn_coordinator_t *engine)
{
    Qanat__Request request = QANAT__REQUEST__INIT;
    Qanat__RemoveAgent remove = QANAT__REMOVE_AGENT__INIT;
    remove.name = (char *) "gone-1";
    request.id = 20;
    request.body_case = QANAT__REQUEST__BODY_REMOVE_AGENT;
    request.remove_agent = &remove;
    s_assert_error (s_call (engine, NULL, &request), QANAT__ERROR_CODE__ERROR_NOT_FOUND,
                    "no agent named 'gone-1'");
    Qanat__LabelAgent label = QANAT__LABEL_AGENT__INIT;
    label.name = (char *) "gone-1";
    request.body_case = QANAT__REQUEST__BODY_LABEL_AGENT;
    request.label_agent = &label;
    s_assert_error (s_call (engine, NULL, &request), QANAT__ERROR_CODE__ERROR_BAD_REQUEST,
                    "this coordinator runs --insecure: an agent's labels are its own "
                    "(qanat-agent --label)");
    Qanat__DeleteSecret delete_secret = QANAT__DELETE_SECRET__INIT;
    delete_secret.name = (char *) "nope";
    request.body_case = QANAT__REQUEST__BODY_DELETE_SECRET;
    request.delete_secret = &delete_secret;
    s_assert_error (s_call (engine, NULL, &request), QANAT__ERROR_CODE__ERROR_NOT_FOUND,
                    "no secret named 'nope' (qanat secret list shows them)");
    Qanat__RevokeUser revoke = QANAT__REVOKE_USER__INIT;
    revoke.name = (char *) "alice";
    request.body_case = QANAT__REQUEST__BODY_REVOKE_USER;
    request.revoke_user = &revoke;
    s_assert_error (s_call (engine, NULL, &request), QANAT__ERROR_CODE__ERROR_BAD_REQUEST,
                    "users need CURVE: this coordinator runs --insecure");
    Qanat__ListUsers list = QANAT__LIST_USERS__INIT;
    request.body_case = QANAT__REQUEST__BODY_LIST_USERS;
    request.list_users = &list;
    Qanat__Reply *reply = s_call (engine, NULL, &request);
    assert_int_equal (reply->body_case, QANAT__REPLY__BODY_PRINCIPALS);
    assert_int_equal (reply->principals->n_principals, 0);
    qanat__reply__free_unpacked (reply, NULL);
}

static void
test_handlers (void **state)
{
    s_fixture_t *fixture = (s_fixture_t *) *state;
    //  A user may list agents (there are none)
    Qanat__Principal user = QANAT__PRINCIPAL__INIT;
    user.kind = (char *) "user";
    user.name = (char *) "bob";
    user.role = (char *) "user";
    Qanat__ListAgents list = QANAT__LIST_AGENTS__INIT;
    Qanat__Request request = QANAT__REQUEST__INIT;
    request.id = 11;
    request.body_case = QANAT__REQUEST__BODY_LIST_AGENTS;
    request.list_agents = &list;
    Qanat__Reply *reply = s_call (fixture->t.engine, &user, &request);
    assert_int_equal (reply->body_case, QANAT__REPLY__BODY_AGENTS);
    assert_int_equal (reply->agents->n_agents, 0);
    qanat__reply__free_unpacked (reply, NULL);
    //  A workflow submitted gets its first version
    Qanat__SubmitWorkflow submit = QANAT__SUBMIT_WORKFLOW__INIT;
    submit.filename = (char *) "api-test.yaml";
    submit.source.data = (uint8_t *) S_WORKFLOW;
    submit.source.len = strlen (S_WORKFLOW);
    request.id = 12;
    request.body_case = QANAT__REQUEST__BODY_SUBMIT;
    request.submit = &submit;
    reply = s_call (fixture->t.engine, NULL, &request);
    assert_int_equal (reply->body_case, QANAT__REPLY__BODY_WORKFLOW);
    assert_string_equal (reply->workflow->name, "api-test");
    assert_int_equal (reply->workflow->version, 1);
    assert_true (reply->workflow->created);
    qanat__reply__free_unpacked (reply, NULL);
    //  A broken one is refused with the parser's words
    submit.source.data = (uint8_t *) "tasks: [";
    submit.source.len = strlen ("tasks: [");
    request.id = 13;
    reply = s_call (fixture->t.engine, NULL, &request);
    assert_int_equal (reply->body_case, QANAT__REPLY__BODY_ERROR);
    assert_true (strlen (reply->error->message) > 0);
    qanat__reply__free_unpacked (reply, NULL);
    //  Secrets need CURVE: an insecure engine says so to its local admin
    Qanat__SetSecret set = QANAT__SET_SECRET__INIT;
    set.name = (char *) "token";
    request.id = 14;
    request.body_case = QANAT__REQUEST__BODY_SET_SECRET;
    request.set_secret = &set;
    s_assert_error (s_call (fixture->t.engine, NULL, &request), QANAT__ERROR_CODE__ERROR_BAD_REQUEST,
                    "secrets need CURVE: this coordinator runs --insecure");
    s_admin_handlers (fixture->t.engine);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_table_covers_every_request),
        cmocka_unit_test (test_admin_kinds),
        cmocka_unit_test_setup_teardown (test_admin_refused_to_user, s_setup, test_engine_teardown),
        cmocka_unit_test_setup_teardown (test_unknown_and_bad_requests, s_setup, test_engine_teardown),
        cmocka_unit_test_setup_teardown (test_handlers, s_setup, test_engine_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
