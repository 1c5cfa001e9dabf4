/*  test_api_bridge - the HTTP side's two sockets, with a real engine that
    has a keyring (not --insecure), in a data directory of its own: a
    DEALER on the request bridge gets refusals without a token, with an
    unknown, revoked or expired one, replies with a good one (its user's
    role applies, error replies carry Error.code), and a SUB on the
    notifications hears "run.<id>." and "runs." after a run is started,
    nothing after a read, nothing after a failed commit.  Also the API
    token store: create, lookup, revoke, expiry, duplicate and hostile
    names, reload from the store; and two engines in one process.
*/
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include "test_engine.h"
#include "qn_engine.h"
#include "qn_turn.h"
#include "qn_agent_link.h"
#include "qn_store_internal.h"          //  to make a commit fail
#include <sodium.h>

#define S_WORKFLOW  "name: bridge-test\ntasks:\n  a:\n    run: echo a\n"

typedef struct {
    test_engine_t t;                    //  first: test_engine_teardown frees the fixture
    char api [64];
    char events [64];
    zsock_t *dealer;
    zsock_t *sub;
} s_fixture_t;

static int s_engines;                   //  endpoints of their own per engine

//  (One process has one ZAP handler: only one engine may have a keyring.)
static qn_coordinator_t *
s_engine_new (const char *dir, char *api, char *events, bool insecure)
{
    int serial = ++s_engines;
    snprintf (api, 64, "inproc://test-api-%d", serial);
    snprintf (events, 64, "inproc://test-events-%d", serial);
    qn_coordinator_config_t config = {
        .data_dir = dir,
        .client_endpoint = "tcp://127.0.0.1:*",
        .agent_endpoint = "tcp://127.0.0.1:*",
        .durable = false,
        .insecure = insecure,
        .s3_delete_after_s = -1,
        .api_endpoint = api,
        .events_endpoint = events
    };
    char *error = NULL;
    qn_coordinator_t *engine = qn_coordinator_new (&config, &error);
    if (!engine)
        fprintf (stderr, "cannot start the coordinator: %s\n", error? error: "?");
    free (error);
    return engine;
}

static int
s_setup (void **state)
{
    s_fixture_t *fixture = (s_fixture_t *) calloc (1, sizeof (s_fixture_t));
    snprintf (fixture->t.dir, sizeof fixture->t.dir, "/tmp/qanat-bridge-XXXXXX");
    if (!mkdtemp (fixture->t.dir))
        return -1;
    zsys_set_logstream (NULL);
    fixture->t.engine = s_engine_new (fixture->t.dir, fixture->api, fixture->events, false);
    if (!fixture->t.engine)
        return -1;
    fixture->dealer = zsock_new_dealer (fixture->api);
    fixture->sub = zsock_new_sub (fixture->events, "");
    zsock_set_rcvtimeo (fixture->sub, 0);
    *state = fixture;
    return 0;
}

static int
s_teardown (void **state)
{
    s_fixture_t *fixture = (s_fixture_t *) *state;
    zsock_destroy (&fixture->dealer);
    zsock_destroy (&fixture->sub);
    return test_engine_teardown (state);
}

//  A token made straight in the keyring, and committed
static char *
s_token (qn_coordinator_t *engine, const char *name, const char *role, uint32_t ttl_s)
{
    const Qanat__ApiToken *record = NULL;
    qn_keyring_failure_t failure;
    char *error = NULL;
    char *text = qn_keyring_create_api_token (engine->keyring, name, role, NULL, ttl_s, &record,
                                              &failure, &error);
    if (!text)
        fail_msg ("cannot create token %s: %s", name, error);
    qn_turn_end (engine);
    return text;
}

//  Sends [credential][request] on dealer and turns engine until the
//  answer is in; returns the decoded envelope (free with qn_msg_free).
static Qanat__Envelope *
s_exchange (qn_coordinator_t *engine, zsock_t *dealer, const void *credential, size_t size,
            Qanat__Request *request)
{
    Qanat__Envelope env = QANAT__ENVELOPE__INIT;
    env.body_case = QANAT__ENVELOPE__BODY_REQUEST;
    env.request = request;
    zframe_t *payload = qn_msg_encode (&env);
    assert_non_null (payload);
    zframe_t *first = zframe_new (credential, size);
    zframe_send (&first, dealer, ZFRAME_MORE);
    zframe_send (&payload, dealer, 0);
    zpoller_t *poller = zpoller_new (dealer, NULL);
    Qanat__Envelope *answer = NULL;
    for (int turn = 0; turn < 500 && !answer; turn++) {
        qn_coordinator_turn (engine);
        if (zpoller_wait (poller, 10)) {
            zframe_t *frame = zframe_recv (dealer);
            qn_msg_status_t status;
            answer = qn_msg_decode (zframe_data (frame), zframe_size (frame), &status, NULL);
            zframe_destroy (&frame);
            assert_non_null (answer);
        }
    }
    zpoller_destroy (&poller);
    if (!answer)
        fail_msg ("no answer from the bridge");
    return answer;
}

static Qanat__Envelope *
s_ask (s_fixture_t *fixture, const char *credential, Qanat__Request *request)
{
    return s_exchange (fixture->t.engine, fixture->dealer, credential,
                       credential? strlen (credential): 0, request);
}

static Qanat__Envelope *
s_ask_stats (s_fixture_t *fixture, const char *credential)
{
    Qanat__GetStats get = QANAT__GET_STATS__INIT;
    Qanat__Request request = QANAT__REQUEST__INIT;
    request.id = 5;
    request.body_case = QANAT__REQUEST__BODY_GET_STATS;
    request.get_stats = &get;
    return s_ask (fixture, credential, &request);
}

static void
s_assert_refused (Qanat__Envelope *env, const char *message)
{
    assert_int_equal (env->body_case, QANAT__ENVELOPE__BODY_REFUSAL);
    assert_int_equal (env->refusal->code, QANAT__REFUSAL_CODE__REFUSAL_DENIED);
    assert_string_equal (env->refusal->message, message);
    qn_msg_free (&env);
}

//  Every notification waiting on the SUB, as one string "a b c " (after
//  turning the engine a few times); "" when none.
static char *
s_heard (s_fixture_t *fixture)
{
    char heard [1024] = "";
    for (int turn = 0; turn < 5; turn++) {
        zclock_sleep (5);
        char *topic;
        while ((topic = zstr_recv (fixture->sub))) {
            strncat (heard, topic, sizeof heard - strlen (heard) - 2);
            strcat (heard, " ");
            zstr_free (&topic);
        }
    }
    return strdup (heard);
}

static void
test_refusals (void **state)
{
    s_fixture_t *fixture = (s_fixture_t *) *state;
    s_assert_refused (s_ask_stats (fixture, NULL), "an API token is needed");
    const char *unknown = "this API token is not admitted (unknown, revoked or expired)";
    s_assert_refused (s_ask_stats (fixture, "qat_nosuchtoken"), unknown);
    s_assert_refused (s_ask_stats (fixture, "not even a token"), unknown);
    //  A token followed by a NUL and more is not that token
    char *good = s_token (fixture->t.engine, "good", "user", 0);
    char padded [128];
    size_t size = strlen (good);
    memcpy (padded, good, size + 1);
    memcpy (padded + size + 1, "x", 2);
    Qanat__GetStats get = QANAT__GET_STATS__INIT;
    Qanat__Request request = QANAT__REQUEST__INIT;
    request.body_case = QANAT__REQUEST__BODY_GET_STATS;
    request.get_stats = &get;
    Qanat__Envelope *decoded = s_exchange (fixture->t.engine, fixture->dealer, padded, size + 2,
                                           &request);
    s_assert_refused (decoded, unknown);
    //  The good one answers
    Qanat__Envelope *reply = s_ask_stats (fixture, good);
    assert_int_equal (reply->body_case, QANAT__ENVELOPE__BODY_REPLY);
    assert_int_equal (reply->reply->body_case, QANAT__REPLY__BODY_STATS);
    assert_true (reply->reply->stats->denied >= 4);
    qn_msg_free (&reply);
    //  Revoked: refused at once
    assert_non_null (qn_keyring_revoke_api_token (fixture->t.engine->keyring, "good"));
    qn_turn_end (fixture->t.engine);
    s_assert_refused (s_ask_stats (fixture, good), unknown);
    free (good);
    //  Expired: refused once its time is up
    char *brief = s_token (fixture->t.engine, "brief", "user", 1);
    reply = s_ask_stats (fixture, brief);
    assert_int_equal (reply->body_case, QANAT__ENVELOPE__BODY_REPLY);
    qn_msg_free (&reply);
    zclock_sleep (1100);
    s_assert_refused (s_ask_stats (fixture, brief), unknown);
    free (brief);
}

//  The HTTP server's own credential (for /metrics without a token) is
//  admitted with a user's rights; an altered one is not, and an
//  insecure engine has none
static void
test_http_credential (void **state)
{
    s_fixture_t *fixture = (s_fixture_t *) *state;
    const char *own = qn_coordinator_http_credential (fixture->t.engine);
    assert_non_null (own);
    assert_true (strlen (own) > 40);
    Qanat__Envelope *reply = s_ask_stats (fixture, own);
    assert_int_equal (reply->body_case, QANAT__ENVELOPE__BODY_REPLY);
    assert_int_equal (reply->reply->body_case, QANAT__REPLY__BODY_STATS);
    qn_msg_free (&reply);
    char altered [128];
    snprintf (altered, sizeof altered, "%s", own);
    altered [strlen (altered) - 1] ^= 1;
    s_assert_refused (s_ask_stats (fixture, altered),
                      "this API token is not admitted (unknown, revoked or expired)");
    //  A user's rights, not an admin's
    Qanat__ListApiTokens list = QANAT__LIST_API_TOKENS__INIT;
    Qanat__Request request = QANAT__REQUEST__INIT;
    request.body_case = QANAT__REQUEST__BODY_LIST_API_TOKENS;
    request.list_api_tokens = &list;
    reply = s_exchange (fixture->t.engine, fixture->dealer, own, strlen (own), &request);
    assert_int_equal (reply->reply->body_case, QANAT__REPLY__BODY_ERROR);
    assert_int_equal (reply->reply->error->code, QANAT__ERROR_CODE__ERROR_DENIED);
    qn_msg_free (&reply);
}

static void
test_malformed_dropped (void **state)
{
    s_fixture_t *fixture = (s_fixture_t *) *state;
    uint64_t before = fixture->t.engine->stats.malformed_client_frames;
    //  One frame only: no credential
    zstr_send (fixture->dealer, "hello");
    //  Three frames: one too many
    zstr_sendx (fixture->dealer, "", "x", "y", NULL);
    for (int turn = 0; turn < 100 && fixture->t.engine->stats.malformed_client_frames < before + 2;
         turn++) {
        zclock_sleep (2);
        qn_coordinator_turn (fixture->t.engine);
    }
    assert_int_equal (fixture->t.engine->stats.malformed_client_frames, before + 2);
    //  An undecodable payload with a good token: dropped too
    char *good = s_token (fixture->t.engine, "m", "user", 0);
    zstr_sendx (fixture->dealer, good, "garbage", NULL);
    for (int turn = 0; turn < 100 && fixture->t.engine->stats.malformed_client_frames < before + 3;
         turn++) {
        zclock_sleep (2);
        qn_coordinator_turn (fixture->t.engine);
    }
    assert_int_equal (fixture->t.engine->stats.malformed_client_frames, before + 3);
    free (good);
}

static void
test_roles_and_whoami (void **state)
{
    s_fixture_t *fixture = (s_fixture_t *) *state;
    char *user = s_token (fixture->t.engine, "carol", "user", 0);
    Qanat__WhoAmI whoami = QANAT__WHO_AM_I__INIT;
    Qanat__Request request = QANAT__REQUEST__INIT;
    request.id = 9;
    request.body_case = QANAT__REQUEST__BODY_WHOAMI;
    request.whoami = &whoami;
    Qanat__Envelope *env = s_ask (fixture, user, &request);
    assert_int_equal (env->reply->body_case, QANAT__REPLY__BODY_WHOAMI);
    assert_string_equal (env->reply->whoami->kind, "apitoken");
    assert_string_equal (env->reply->whoami->name, "carol");
    assert_string_equal (env->reply->whoami->role, "user");
    assert_string_equal (env->reply->whoami->public_key, "");
    qn_msg_free (&env);
    //  A user's token may not manage tokens
    Qanat__ListApiTokens list = QANAT__LIST_API_TOKENS__INIT;
    request.id = 10;
    request.body_case = QANAT__REQUEST__BODY_LIST_API_TOKENS;
    request.list_api_tokens = &list;
    env = s_ask (fixture, user, &request);
    assert_int_equal (env->reply->body_case, QANAT__REPLY__BODY_ERROR);
    assert_int_equal (env->reply->error->code, QANAT__ERROR_CODE__ERROR_DENIED);
    assert_string_equal (env->reply->error->message, "permission denied: needs role admin");
    qn_msg_free (&env);
    //  An admin's may: created over the bridge, shown once, listed without it
    char *admin = s_token (fixture->t.engine, "root", "admin", 0);
    Qanat__CreateApiToken create = QANAT__CREATE_API_TOKEN__INIT;
    create.name = (char *) "ci";
    create.role = (char *) "user";
    create.user = (char *) "robot";
    create.ttl_s = 3600;
    request.id = 11;
    request.body_case = QANAT__REQUEST__BODY_CREATE_API_TOKEN;
    request.create_api_token = &create;
    env = s_ask (fixture, admin, &request);
    assert_int_equal (env->reply->body_case, QANAT__REPLY__BODY_API_TOKEN);
    Qanat__ApiToken *made = env->reply->api_token;
    assert_int_equal (strncmp (made->token, "qat_", 4), 0);
    assert_int_equal (strlen (made->token), 4 + 43);
    assert_string_equal (made->user, "robot");
    assert_true (made->expires_us > made->created_us);
    const Qanat__Principal *robot = qn_keyring_lookup_token (fixture->t.engine->keyring,
                                                             made->token);
    assert_non_null (robot);
    assert_string_equal (robot->name, "robot");
    qn_msg_free (&env);
    //  The same name again: a conflict
    request.id = 12;
    env = s_ask (fixture, admin, &request);
    assert_int_equal (env->reply->body_case, QANAT__REPLY__BODY_ERROR);
    assert_int_equal (env->reply->error->code, QANAT__ERROR_CODE__ERROR_CONFLICT);
    qn_msg_free (&env);
    request.id = 13;
    request.body_case = QANAT__REQUEST__BODY_LIST_API_TOKENS;
    env = s_ask (fixture, admin, &request);
    assert_int_equal (env->reply->body_case, QANAT__REPLY__BODY_API_TOKENS);
    assert_int_equal (env->reply->api_tokens->n_tokens, 3);
    for (size_t i = 0; i < 3; i++)
        assert_string_equal (env->reply->api_tokens->tokens [i]->token, "");
    assert_string_equal (env->reply->api_tokens->tokens [0]->name, "carol");
    assert_string_equal (env->reply->api_tokens->tokens [1]->name, "ci");
    qn_msg_free (&env);
    //  Revoked over the bridge; an unknown name is not found
    Qanat__RevokeApiToken revoke = QANAT__REVOKE_API_TOKEN__INIT;
    revoke.name = (char *) "carol";
    request.id = 14;
    request.body_case = QANAT__REQUEST__BODY_REVOKE_API_TOKEN;
    request.revoke_api_token = &revoke;
    env = s_ask (fixture, admin, &request);
    assert_int_equal (env->reply->body_case, QANAT__REPLY__BODY_API_TOKEN);
    assert_true (env->reply->api_token->revoked);
    qn_msg_free (&env);
    revoke.name = (char *) "nobody";
    request.id = 15;
    env = s_ask (fixture, admin, &request);
    assert_int_equal (env->reply->error->code, QANAT__ERROR_CODE__ERROR_NOT_FOUND);
    qn_msg_free (&env);
    assert_null (qn_keyring_lookup_token (fixture->t.engine->keyring, user));
    free (user);
    free (admin);
}

//  A StartRun of S_WORKFLOW, in the caller's messages
static void
s_start_run (Qanat__StartRun *start, Qanat__SubmitWorkflow *workflow)
{
    workflow->filename = (char *) "bridge.yaml";
    workflow->source.data = (uint8_t *) S_WORKFLOW;
    workflow->source.len = strlen (S_WORKFLOW);
    start->workflow = workflow;
}

static void
test_notifications (void **state)
{
    s_fixture_t *fixture = (s_fixture_t *) *state;
    char *admin = s_token (fixture->t.engine, "root", "admin", 0);
    free (s_heard (fixture));           //  whatever the start said
    //  A run started: its own topic and the list's
    Qanat__SubmitWorkflow workflow = QANAT__SUBMIT_WORKFLOW__INIT;
    Qanat__StartRun start = QANAT__START_RUN__INIT;
    s_start_run (&start, &workflow);
    Qanat__Request request = QANAT__REQUEST__INIT;
    request.id = 21;
    request.body_case = QANAT__REQUEST__BODY_START_RUN;
    request.start_run = &start;
    Qanat__Envelope *env = s_ask (fixture, admin, &request);
    assert_int_equal (env->reply->body_case, QANAT__REPLY__BODY_RUN);
    uint64_t run_id = env->reply->run->run_id;
    assert_string_equal (env->reply->run->owner, "root");
    qn_msg_free (&env);
    char expected [64];
    snprintf (expected, sizeof expected, "run.%llu. runs. ", (unsigned long long) run_id);
    char *heard = s_heard (fixture);
    assert_string_equal (heard, expected);
    free (heard);
    //  A read changes nothing: nothing heard
    Qanat__GetRun get = QANAT__GET_RUN__INIT;
    get.run_id = run_id;
    request.id = 22;
    request.body_case = QANAT__REQUEST__BODY_GET_RUN;
    request.get_run = &get;
    env = s_ask (fixture, admin, &request);
    assert_int_equal (env->reply->body_case, QANAT__REPLY__BODY_RUN);
    qn_msg_free (&env);
    heard = s_heard (fixture);
    assert_string_equal (heard, "");
    free (heard);
    //  A canceled run: its topic and the list's (its status changed)
    Qanat__CancelRun cancel = QANAT__CANCEL_RUN__INIT;
    cancel.run_id = run_id;
    request.id = 23;
    request.body_case = QANAT__REQUEST__BODY_CANCEL_RUN;
    request.cancel_run = &cancel;
    env = s_ask (fixture, admin, &request);
    assert_int_equal (env->reply->body_case, QANAT__REPLY__BODY_RUN);
    qn_msg_free (&env);
    heard = s_heard (fixture);
    assert_string_equal (heard, expected);
    free (heard);
    free (admin);
}

//  A run started and canceled in one batch (one turn): each answered,
//  the run's topic once, and the run retired once
static void
test_start_and_cancel_in_one_turn (void **state)
{
    s_fixture_t *fixture = (s_fixture_t *) *state;
    char *admin = s_token (fixture->t.engine, "root", "admin", 0);
    free (s_heard (fixture));
    Qanat__SubmitWorkflow workflow = QANAT__SUBMIT_WORKFLOW__INIT;
    Qanat__StartRun start = QANAT__START_RUN__INIT;
    s_start_run (&start, &workflow);
    Qanat__CancelRun cancel = QANAT__CANCEL_RUN__INIT;
    cancel.run_id = 1;                  //  the first run of a new store
    Qanat__Request requests [2] = { QANAT__REQUEST__INIT, QANAT__REQUEST__INIT };
    requests [0].id = 31;
    requests [0].body_case = QANAT__REQUEST__BODY_START_RUN;
    requests [0].start_run = &start;
    requests [1].id = 32;
    requests [1].body_case = QANAT__REQUEST__BODY_CANCEL_RUN;
    requests [1].cancel_run = &cancel;
    for (int i = 0; i < 2; i++) {
        Qanat__Envelope env = QANAT__ENVELOPE__INIT;
        env.body_case = QANAT__ENVELOPE__BODY_REQUEST;
        env.request = &requests [i];
        zframe_t *payload = qn_msg_encode (&env);
        zstr_sendm (fixture->dealer, admin);
        zframe_send (&payload, fixture->dealer, 0);
    }
    zclock_sleep (20);                  //  both waiting: one batch
    qn_coordinator_turn (fixture->t.engine);
    zsock_set_rcvtimeo (fixture->dealer, 1000);
    for (int i = 0; i < 2; i++) {
        zframe_t *frame = zframe_recv (fixture->dealer);
        assert_non_null (frame);
        qn_msg_status_t status;
        Qanat__Envelope *env = qn_msg_decode (zframe_data (frame), zframe_size (frame), &status,
                                              NULL);
        zframe_destroy (&frame);
        assert_non_null (env);
        assert_int_equal (env->reply->id, 31 + i);
        assert_int_equal (env->reply->body_case, QANAT__REPLY__BODY_RUN);
        qn_msg_free (&env);
    }
    char *heard = s_heard (fixture);
    assert_string_equal (heard, "run.1. runs. ");
    free (heard);
    assert_null (qn_run_find (fixture->t.engine, 1));
    free (admin);
}

//  An agent's message, as if it came on the agent socket
static void
s_agent_says (qn_coordinator_t *engine, zframe_t *route, Qanat__Envelope *env)
{
    qn_agent_link_handle (engine, route, env);
    qn_turn_end (engine);
}

static void
s_agent_event (qn_coordinator_t *engine, zframe_t *route, uint64_t seq, Qanat__Event *event)
{
    Qanat__AttemptRef ref = QANAT__ATTEMPT_REF__INIT;
    ref.run_id = 1;
    ref.task_index = 0;
    ref.attempt = 1;
    event->attempt = &ref;
    event->seq = seq;
    Qanat__Envelope env = QANAT__ENVELOPE__INIT;
    env.body_case = QANAT__ENVELOPE__BODY_EVENT;
    env.event = event;
    s_agent_says (engine, route, &env);
}

//  The fleet's changes say "agents.", an attempt's events "run.<id>."
//  alone (the run list did not change), a credit nothing
static void
test_fleet_and_event_notifications (void **state)
{
    s_fixture_t *fixture = (s_fixture_t *) *state;
    qn_coordinator_t *engine = fixture->t.engine;
    char *admin = s_token (engine, "root", "admin", 0);
    free (s_heard (fixture));
    zframe_t *route = zframe_new ("\0agent", 6);
    Qanat__Register reg = QANAT__REGISTER__INIT;
    reg.name = (char *) "w1";
    reg.capacity = 1;
    Qanat__Envelope env = QANAT__ENVELOPE__INIT;
    env.body_case = QANAT__ENVELOPE__BODY_REGISTER;
    env.register_ = &reg;
    s_agent_says (engine, route, &env);
    char *heard = s_heard (fixture);
    assert_string_equal (heard, "agents. ");
    free (heard);
    Qanat__Credit credit = QANAT__CREDIT__INIT;
    credit.slots = 1;
    env.body_case = QANAT__ENVELOPE__BODY_CREDIT;
    env.credit = &credit;
    s_agent_says (engine, route, &env);
    heard = s_heard (fixture);
    assert_string_equal (heard, "");
    free (heard);
    //  Started and given to w1 at once
    Qanat__SubmitWorkflow workflow = QANAT__SUBMIT_WORKFLOW__INIT;
    Qanat__StartRun start = QANAT__START_RUN__INIT;
    s_start_run (&start, &workflow);
    Qanat__Request request = QANAT__REQUEST__INIT;
    request.id = 41;
    request.body_case = QANAT__REQUEST__BODY_START_RUN;
    request.start_run = &start;
    Qanat__Envelope *reply = s_ask (fixture, admin, &request);
    assert_int_equal (reply->reply->run->run_id, 1);
    qn_msg_free (&reply);
    heard = s_heard (fixture);
    assert_string_equal (heard, "run.1. runs. ");
    free (heard);
    assert_int_equal (qn_run_find (engine, 1)->info->status, QANAT__RUN_STATUS__RUN_RUNNING);
    //  Its attempt's events: the run's topic only
    Qanat__Started started = QANAT__STARTED__INIT;
    started.pid = 42;
    Qanat__Event event = QANAT__EVENT__INIT;
    event.body_case = QANAT__EVENT__BODY_STARTED;
    event.started = &started;
    s_agent_event (engine, route, 1, &event);
    heard = s_heard (fixture);
    assert_string_equal (heard, "run.1. ");
    free (heard);
    Qanat__LogChunk chunk = QANAT__LOG_CHUNK__INIT;
    chunk.data.data = (uint8_t *) "hello\n";
    chunk.data.len = 6;
    event.body_case = QANAT__EVENT__BODY_LOG;
    event.log = &chunk;
    s_agent_event (engine, route, 2, &event);
    heard = s_heard (fixture);
    assert_string_equal (heard, "run.1. ");
    free (heard);
    //  Drained by an admin over the bridge
    Qanat__DrainAgent drain = QANAT__DRAIN_AGENT__INIT;
    drain.name = (char *) "w1";
    drain.drain = true;
    request.id = 42;
    request.body_case = QANAT__REQUEST__BODY_DRAIN_AGENT;
    request.drain_agent = &drain;
    reply = s_ask (fixture, admin, &request);
    assert_int_equal (reply->reply->body_case, QANAT__REPLY__BODY_AGENTS);
    qn_msg_free (&reply);
    heard = s_heard (fixture);
    assert_string_equal (heard, "agents. ");
    free (heard);
    zframe_destroy (&route);
    free (admin);
}

//  A commit that fails publishes nothing; nor does the next, which
//  changed nothing
static void
test_no_notification_after_failed_commit (void **state)
{
    s_fixture_t *fixture = (s_fixture_t *) *state;
    qn_coordinator_t *engine = fixture->t.engine;
    free (s_heard (fixture));
    run_t *run = test_engine_add_run (&fixture->t, 77, S_WORKFLOW);
    assert_non_null (run);
    engine->agents_changed = true;
    assert_int_equal (qn_store_begin (engine->store), 0);
    engine->store->txn_failed = true;
    snprintf (engine->store->txn_error, sizeof engine->store->txn_error, "test");
    qn_turn_end (engine);
    assert_int_equal (engine->stats.commit_failures, 1);
    char *heard = s_heard (fixture);
    assert_string_equal (heard, "");
    free (heard);
    qn_turn_end (engine);
    heard = s_heard (fixture);
    assert_string_equal (heard, "");
    free (heard);
}

//  Two engines in one process, each with its endpoints; a third on the
//  first one's endpoints is refused with a clear error
static void
test_two_engines (void **state)
{
    s_fixture_t *fixture = (s_fixture_t *) *state;
    char dir [64];
    snprintf (dir, sizeof dir, "/tmp/qanat-bridge2-XXXXXX");
    assert_non_null (mkdtemp (dir));
    char api [64], events [64];
    qn_coordinator_t *second = s_engine_new (dir, api, events, true);
    assert_non_null (second);
    assert_string_not_equal (api, fixture->api);
    //  Its bridge answers, as a local admin (no keyring)
    zsock_t *dealer = zsock_new_dealer (api);
    Qanat__WhoAmI whoami = QANAT__WHO_AM_I__INIT;
    Qanat__Request request = QANAT__REQUEST__INIT;
    request.id = 3;
    request.body_case = QANAT__REQUEST__BODY_WHOAMI;
    request.whoami = &whoami;
    Qanat__Envelope *decoded = s_exchange (second, dealer, "", 0, &request);
    assert_int_equal (decoded->reply->body_case, QANAT__REPLY__BODY_WHOAMI);
    assert_string_equal (decoded->reply->whoami->kind, "local");
    assert_string_equal (decoded->reply->whoami->name, "admin");
    assert_string_equal (decoded->reply->whoami->role, "admin");
    qn_msg_free (&decoded);
    zsock_destroy (&dealer);
    qn_coordinator_destroy (&second);
    qn_coordinator_config_t config = {
        .data_dir = dir, .client_endpoint = "tcp://127.0.0.1:*",
        .agent_endpoint = "tcp://127.0.0.1:*", .insecure = true, .s3_delete_after_s = -1,
        .api_endpoint = fixture->api, .events_endpoint = fixture->events
    };
    char *error = NULL;
    assert_null (qn_coordinator_new (&config, &error));
    assert_non_null (strstr (error, "cannot bind the HTTP side's sockets"));
    free (error);
    nftw (dir, s_test_engine_unlink, 16, FTW_DEPTH | FTW_PHYS);
}

//  ---------------------------------------------------------------------
//  The token store

static void
test_token_store (void **state)
{
    s_fixture_t *fixture = (s_fixture_t *) *state;
    qn_keyring_t *keyring = fixture->t.engine->keyring;
    const Qanat__ApiToken *record = NULL;
    qn_keyring_failure_t failure;
    char *error = NULL;
    const char *hostile [] = { "", "a b", "../x", "x/y", "a;b", "tab\t", "é",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" /* 65 */ };
    for (size_t i = 0; i < sizeof hostile / sizeof hostile [0]; i++) {
        assert_null (qn_keyring_create_api_token (keyring, hostile [i], "user", NULL, 0,
                                                  &record, &failure, &error));
        assert_int_equal (failure, QN_KEYRING_INVALID);
        zstr_free (&error);
        //  ...as a user too
        assert_null (qn_keyring_create_api_token (keyring, "fine", "user", hostile [i] [0]?
                                                  hostile [i]: "a b", 0, &record, &failure,
                                                  &error));
        assert_int_equal (failure, QN_KEYRING_INVALID);
        zstr_free (&error);
    }
    assert_null (qn_keyring_create_api_token (keyring, "x", "root", NULL, 0, &record, &failure,
                                              &error));
    assert_non_null (strstr (error, "unknown role"));
    zstr_free (&error);
    //  64 characters is fine
    char *text = qn_keyring_create_api_token (
        keyring, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "admin", NULL,
        0, &record, &failure, &error);
    assert_non_null (text);
    const Qanat__Principal *principal = qn_keyring_lookup_token (keyring, text);
    assert_non_null (principal);
    assert_string_equal (principal->kind, "apitoken");
    assert_string_equal (principal->role, "admin");
    assert_int_equal (record->expires_us, 0);
    //  A duplicate name is refused while the first lives, fine once revoked
    char *again = qn_keyring_create_api_token (
        keyring, record->name, "user", NULL, 0, &record, &failure, &error);
    assert_null (again);
    assert_int_equal (failure, QN_KEYRING_EXISTS);
    zstr_free (&error);
    assert_non_null (qn_keyring_revoke_api_token (
        keyring, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
    assert_null (qn_keyring_lookup_token (keyring, text));
    again = qn_keyring_create_api_token (
        keyring, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "user", NULL,
        0, &record, &failure, &error);
    assert_non_null (again);
    assert_string_not_equal (again, text);
    assert_non_null (qn_keyring_lookup_token (keyring, again));
    //  Lookups of what is not a token
    assert_null (qn_keyring_lookup_token (keyring, NULL));
    assert_null (qn_keyring_lookup_token (keyring, ""));
    assert_null (qn_keyring_lookup_token (keyring, text + 4));
    assert_null (qn_keyring_revoke_api_token (keyring, "nobody"));
    //  Tokens survive a restart from the store; only hashes were stored
    qn_turn_end (fixture->t.engine);
    qn_coordinator_destroy (&fixture->t.engine);
    zsock_destroy (&fixture->dealer);
    zsock_destroy (&fixture->sub);
    fixture->t.engine = s_engine_new (fixture->t.dir, fixture->api, fixture->events, false);
    assert_non_null (fixture->t.engine);
    keyring = fixture->t.engine->keyring;
    assert_null (qn_keyring_lookup_token (keyring, text));
    principal = qn_keyring_lookup_token (keyring, again);
    assert_non_null (principal);
    assert_string_equal (principal->role, "user");
    size_t count = 0;
    const Qanat__ApiToken **records = qn_keyring_api_tokens (keyring, &count);
    assert_int_equal (count, 2);
    assert_true (records [0]->revoked != records [1]->revoked);
    free (records);
    //  The store holds no token text
    char *path = zsys_sprintf ("%s/data.mdb", fixture->t.dir);
    zfile_t *file = zfile_new (NULL, path);
    assert_non_null (file);
    assert_int_equal (zfile_input (file), 0);
    zchunk_t *chunk = zfile_read (file, zfile_cursize (file), 0);
    assert_non_null (chunk);
    assert_true (zchunk_size (chunk) > 0);
    assert_null (memmem (zchunk_data (chunk), zchunk_size (chunk), again + 4, 20));
    assert_null (memmem (zchunk_data (chunk), zchunk_size (chunk), text + 4, 20));
    //  ...but its hash is there (the check above looks in the right file)
    uint8_t digest [32];
    char hex [65];
    crypto_hash_sha256 (digest, (const unsigned char *) again, strlen (again));
    sodium_bin2hex (hex, sizeof hex, digest, sizeof digest);
    assert_non_null (memmem (zchunk_data (chunk), zchunk_size (chunk), hex, 64));
    zchunk_destroy (&chunk);
    zfile_destroy (&file);
    zstr_free (&path);
    free (text);
    free (again);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test_setup_teardown (test_refusals, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_http_credential, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_malformed_dropped, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_roles_and_whoami, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_notifications, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_start_and_cancel_in_one_turn, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_fleet_and_event_notifications, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_no_notification_after_failed_commit, s_setup,
                                         s_teardown),
        cmocka_unit_test_setup_teardown (test_two_engines, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_token_store, s_setup, s_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
