/*  test_limits - priorities, concurrency limits, pools and fair share:
    the counts of qn_limits alone, the workflow keys (priority,
    concurrency, pool) with their errors, the ageing key, then dispatch
    with a real engine (insecure, on loopback, its sockets never used):
    higher priorities first, an old low task overtaking, a workflow's
    concurrency holding runs back, fair share with and without weights,
    and a randomized property check (fixed seed, printed) that no pool or
    task limit is ever exceeded, nothing is over-committed or placed
    outside its selector, the counts stay exact, and a task that fits
    somewhere free with room in its limits is always placed.
*/
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include "qn_limits.h"
#include "qn_wf_limits.h"
#include "qn_dispatch.h"
#include "qn_fleet.h"
#include "qn_run.h"
#include "test_engine.h"

//  ---------------------------------------------------------------------
//  The counts alone

static void
test_pools_and_weights (void **state)
{
    (void) state;
    qn_limits_t *limits = qn_limits_new ();
    bool set = true;
    assert_int_equal (qn_limits_pool_size (limits, "gpu", &set), QN_LIMITS_POOL_DEFAULT);
    assert_false (set);
    qn_limits_pool_set (limits, "gpu", 2);
    assert_int_equal (qn_limits_pool_size (limits, "gpu", &set), 2);
    assert_true (set);
    qn_limits_use_t use = { "gpu", "wf/train", "alice", 4 };
    assert_int_equal (qn_limits_room (limits, "gpu", "wf/train", 3), 2);
    qn_limits_take (limits, &use);
    assert_int_equal (qn_limits_room (limits, "gpu", "wf/train", 3), 1);
    assert_int_equal (qn_limits_room (limits, "gpu", "wf/train", 1), 0);
    assert_int_equal (qn_limits_room (limits, NULL, NULL, 0), UINT32_MAX);
    qn_limits_take (limits, &use);
    assert_int_equal (qn_limits_room (limits, "gpu", NULL, 0), 0);
    assert_int_equal (qn_limits_owner_used (limits, "alice"), 8);
    qn_limits_weight_set (limits, "alice", 4);
    assert_true (qn_limits_share (limits, "alice") == 2.0);
    assert_true (qn_limits_share (limits, "bob") == 0.0);
    //  Giving back more than was taken stops at zero
    for (int i = 0; i < 3; i++)
        qn_limits_give (limits, &use);
    assert_int_equal (qn_limits_pool_used (limits, "gpu"), 0);
    assert_int_equal (qn_limits_task_used (limits, "wf/train"), 0);
    assert_int_equal (qn_limits_owner_used (limits, "alice"), 0);
    //  Unset again: the default, and the record goes
    qn_limits_pool_set (limits, "gpu", 0);
    assert_int_equal (qn_limits_pool_size (limits, "gpu", &set), QN_LIMITS_POOL_DEFAULT);
    assert_false (set);
    qn_limits_weight_set (limits, "alice", 0);
    assert_int_equal (qn_limits_weight (limits, "alice", &set), 1);
    qn_limits_destroy (&limits);
    assert_null (limits);
}

//  The static key orders as priority + wait / step at any moment
static void
test_ageing_key (void **state)
{
    (void) state;
    unsigned int seed = 4242;
    printf ("test_ageing_key: seed %u\n", seed);
    int64_t now = 1700000000LL * 1000000;
    for (int i = 0; i < 100000; i++) {
        int32_t pa = (int32_t) (rand_r (&seed) % 41) - 20;
        int32_t pb = (int32_t) (rand_r (&seed) % 41) - 20;
        int64_t qa = now - (int64_t) (rand_r (&seed) % 3600) * 1000000;
        int64_t qb = now - (int64_t) (rand_r (&seed) % 3600) * 1000000;
        double ea = pa + (double) (now - qa) / QN_LIMITS_AGE_STEP_US;
        double eb = pb + (double) (now - qb) / QN_LIMITS_AGE_STEP_US;
        int64_t ka = qn_limits_priority_key (pa, qa), kb = qn_limits_priority_key (pb, qb);
        if (ea > eb + 1e-6)
            assert_true (ka > kb);
        else
        if (ea < eb - 1e-6)
            assert_true (ka < kb);
    }
    //  A low task that waited long enough goes before a fresh high one
    int64_t low = qn_limits_priority_key (QN_PRIORITY_LOW,
                                          now - 21 * QN_LIMITS_AGE_STEP_US);
    assert_true (low > qn_limits_priority_key (QN_PRIORITY_HIGH, now));
}

//  ---------------------------------------------------------------------
//  The workflow keys

static qn_workflow_t *
s_parse (const char *yaml, char **error_p)
{
    *error_p = NULL;
    return qn_workflow_parse ("wf.yaml", yaml, strlen (yaml), error_p);
}

static void
test_workflow_keys (void **state)
{
    (void) state;
    char *error = NULL;
    qn_workflow_t *wf = s_parse ("name: w\npriority: high\nconcurrency: 2\ntasks:\n"
                                 "  a:\n    run: \"true\"\n"
                                 "  b:\n    run: \"true\"\n    priority: -7\n"
                                 "    concurrency: 3\n    pool: gpu-a100\n"
                                 "  c:\n    run: \"true\"\n    priority: low\n", &error);
    assert_non_null (wf);
    assert_int_equal (qn_workflow_limits (wf)->priority, QN_PRIORITY_HIGH);
    assert_int_equal (qn_workflow_limits (wf)->concurrency, 2);
    assert_int_equal (qn_workflow_task (wf, 0)->priority, QN_PRIORITY_HIGH);
    assert_null (qn_workflow_task (wf, 0)->pool);
    assert_int_equal (qn_workflow_task (wf, 1)->priority, -7);
    assert_int_equal (qn_workflow_task (wf, 1)->concurrency, 3);
    assert_string_equal (qn_workflow_task (wf, 1)->pool, "gpu-a100");
    assert_int_equal (qn_workflow_task (wf, 2)->priority, QN_PRIORITY_LOW);
    qn_workflow_destroy (&wf);
    wf = s_parse ("name: w\ntasks:\n  a:\n    run: \"true\"\n", &error);
    assert_int_equal (qn_workflow_limits (wf)->priority, QN_PRIORITY_NORMAL);
    assert_int_equal (qn_workflow_limits (wf)->concurrency, 0);
    qn_workflow_destroy (&wf);
    const char *bad [][2] = {
        { "name: w\npriority: urgent\ntasks:\n  a:\n    run: \"true\"\n",
          "wf.yaml:2:11: expected high, normal, low or an integer from -1000 to 1000 for "
          "'priority'" },
        { "name: w\ntasks:\n  a:\n    run: \"true\"\n    priority: 1001\n",
          "wf.yaml:5:15: expected high, normal, low or an integer from -1000 to 1000 for "
          "'priority'" },
        { "name: w\nconcurrency: 0\ntasks:\n  a:\n    run: \"true\"\n",
          "wf.yaml:2:14: 'concurrency' must be from 1 to 1000000" },
        { "name: w\ntasks:\n  a:\n    run: \"true\"\n    pool: \"../x\"\n",
          "wf.yaml:5:11: invalid pool name '../x'" },
        { "name: w\ntasks:\n  a:\n    run: \"true\"\n    pool: [a]\n",
          "wf.yaml:5:11: invalid pool name" },
        { "name: w\ntasks:\n  a:\n    run: \"true\"\n    concurrency: many\n",
          "wf.yaml:5:18:" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad [0]; i++) {
        wf = s_parse (bad [i][0], &error);
        assert_null (wf);
        assert_non_null (error);
        if (strncmp (error, bad [i][1], strlen (bad [i][1])) != 0)
            fail_msg ("case %zu: %s", i, error);
        free (error);
    }
}

//  ---------------------------------------------------------------------
//  Dispatch with an engine

#define S_AGENTS  4

typedef test_fleet_t s_fixture_t;

static int
s_setup (void **state)
{
    return test_fleet_start (state, "test-limits");
}

//  A connected agent with zone=a|b, cpus CPUs and credit slots
static agent_t *
s_agent (s_fixture_t *fixture, size_t i, uint32_t cpus, uint32_t credit)
{
    Qanat__Resources resources = QANAT__RESOURCES__INIT;
    resources.cpus = cpus;
    resources.memory_mb = 65536;
    return test_fleet_agent (fixture, i, &resources, credit);
}

//  A run of yaml owned by owner, advanced (its ready tasks queued)
static run_t *
s_run (s_fixture_t *fixture, uint64_t id, const char *owner, const char *yaml)
{
    run_t *run = test_engine_add_run (&fixture->t, id, yaml);
    assert_non_null (run);
    qn_engine_replace_string (&run->info->owner, strdup (owner));
    qn_run_advance (fixture->t.engine, run);
    return run;
}

static size_t
s_running (run_t *run)
{
    size_t running = 0;
    for (size_t t = 0; t < run->info->n_tasks; t++)
        running += qn_run_task (run, t)->status == QANAT__TASK_STATUS__TASK_RUNNING;
    return running;
}

//  Ends every running attempt of run (as a cancel does) and pays the slots back
static void
s_end_all (qn_coordinator_t *engine, run_t *run)
{
    for (size_t t = 0; t < run->info->n_tasks; t++)
        if (qn_run_task (run, t)->status == QANAT__TASK_STATUS__TASK_RUNNING) {
            Qanat__AttemptInfo *attempt = qn_run_current_attempt (qn_run_task (run, t));
            agent_t *agent = (agent_t *) zhashx_lookup (engine->agents, attempt->agent);
            qn_run_cancel_task (engine, run, t, "done in the test");
            qn_fleet_release (agent, run->id, (uint32_t) t, attempt->attempt);
            qn_fleet_set_credit (engine, agent, agent->info->credit + 1);
        }
    qn_run_advance (engine, run);
}

static void
test_priorities_and_ageing (void **state)
{
    s_fixture_t *fixture = (s_fixture_t *) *state;
    qn_coordinator_t *engine = fixture->t.engine;
    run_t *low = s_run (fixture, 1, "alice", "name: low\npriority: low\ntasks:\n  t:\n"
                        "    run: \"true\"\n");
    run_t *normal = s_run (fixture, 2, "alice", "name: normal\ntasks:\n  t:\n    run: \"true\"\n");
    run_t *high = s_run (fixture, 3, "alice", "name: high\npriority: high\ntasks:\n  t:\n"
                         "    run: \"true\"\n");
    assert_true (qn_run_task (low, 0)->queued_us > 0);
    assert_true (qn_run_task (low, 0)->queued_us <= qn_run_task (high, 0)->queued_us);
    agent_t *agent = s_agent (fixture, 0, 8, 1);
    qn_dispatch (engine);
    assert_int_equal (s_running (high), 1);
    assert_int_equal (s_running (normal) + s_running (low), 0);
    //  The low task has waited 25 steps: it ages past the normal one
    for (zlistx_t *queue = (zlistx_t *) zhashx_first (engine->queues); queue;
         queue = (zlistx_t *) zhashx_next (engine->queues)) {
        ready_t *ready = (ready_t *) zlistx_first (queue);
        if (ready && ready->run_id == low->id)
            ready->queued_us -= 25 * QN_LIMITS_AGE_STEP_US;
    }
    s_end_all (engine, high);
    qn_dispatch (engine);
    assert_int_equal (s_running (low), 1);
    assert_int_equal (s_running (normal), 0);
    s_end_all (engine, low);
    qn_dispatch (engine);
    assert_int_equal (s_running (normal), 1);
    assert_int_equal (agent->info->credit, 0);
}

static void
test_workflow_concurrency (void **state)
{
    s_fixture_t *fixture = (s_fixture_t *) *state;
    qn_coordinator_t *engine = fixture->t.engine;
    s_agent (fixture, 0, 8, 8);
    const char *yaml = "name: one\nconcurrency: 1\ntasks:\n  a:\n    run: \"true\"\n"
                       "  b:\n    run: \"true\"\n";
    run_t *first = s_run (fixture, 1, "alice", yaml);
    run_t *second = s_run (fixture, 2, "alice", yaml);
    run_t *third = s_run (fixture, 3, "alice", yaml);
    qn_dispatch (engine);
    //  Canceled while held (as CancelRun does): it waits for nothing
    assert_string_not_equal (third->info->waiting_reason, "");
    third->info->cancel_requested = true;
    for (size_t t = 0; t < third->info->n_tasks; t++)
        qn_run_cancel_task (engine, third, t, "run canceled");
    qn_run_advance (engine, third);
    assert_string_equal (third->info->waiting_reason, "");
    assert_int_equal (s_running (first), 2);
    assert_int_equal (s_running (second), 0);
    assert_string_equal (second->info->waiting_reason,
                         "waiting: workflow one runs at most 1 at once (1 running)");
    qn_dispatch_explain_waiting (engine, second);
    assert_string_equal (qn_run_task (second, 0)->waiting_reason, second->info->waiting_reason);
    s_end_all (engine, first);         //  canceled: the run ends
    qn_dispatch (engine);
    assert_int_equal (s_running (second), 2);
    assert_string_equal (second->info->waiting_reason, "");
}

//  Two owners wanting the same agents: the running shares follow the
//  weights, pass after pass, whoever came first
static void
s_fair (s_fixture_t *fixture, uint32_t alice_weight)
{
    qn_coordinator_t *engine = fixture->t.engine;
    qn_limits_weight_set (engine->limits, "alice", alice_weight);
    char *yaml = strdup ("name: many\ntasks:\n");
    for (int t = 0; t < 200; t++) {
        char *more = zsys_sprintf ("%s  t%d:\n    run: \"true\"\n", yaml, t);
        free (yaml);
        yaml = more;
    }
    run_t *alice = s_run (fixture, 1, "alice", yaml);
    agent_t *agent = s_agent (fixture, 0, 64, 12);
    qn_dispatch (engine);
    assert_int_equal (s_running (alice), 12);     //  alone, alice takes everything
    run_t *bob = s_run (fixture, 2, "bob", yaml);
    free (yaml);
    unsigned int seed = 99;
    printf ("s_fair (weight %u): seed %u\n", alice_weight, seed);
    for (int round = 0; round < 60; round++) {
        //  Some attempts end, at random, each pays its slot back
        for (run_t *run = alice; run; run = run == alice? bob: NULL)
            for (size_t t = 0; t < run->info->n_tasks; t++)
                if (qn_run_task (run, t)->status == QANAT__TASK_STATUS__TASK_RUNNING
                &&  rand_r (&seed) % 3 == 0) {
                    Qanat__AttemptInfo *attempt = qn_run_current_attempt (qn_run_task (run, t));
                    qn_run_cancel_task (engine, run, t, "done");
                    qn_fleet_release (agent, run->id, (uint32_t) t, attempt->attempt);
                    qn_fleet_set_credit (engine, agent, agent->info->credit + 1);
                }
        qn_dispatch (engine);
        assert_int_equal (agent->info->credit, 0);     //  never idle while tasks wait
        if (round >= 10) {
            double a = (double) s_running (alice) / alice_weight;
            double b = (double) s_running (bob);
            //  Within one slot of the weighted share
            assert_true (a - b <= 1.0 + 1e-9 && b - a <= 1.0 + 1e-9);
        }
    }
}

static void
test_fair_share_equal (void **state)
{
    s_fair ((s_fixture_t *) *state, 1);
}

static void
test_fair_share_weighted (void **state)
{
    s_fair ((s_fixture_t *) *state, 3);
}

//  Randomized: owners, priorities, pools, task limits, selectors
static void
test_limits_randomized (void **state)
{
    s_fixture_t *fixture = (s_fixture_t *) *state;
    qn_coordinator_t *engine = fixture->t.engine;
    unsigned int seed = 2026;
    printf ("test_limits_randomized: seed %u\n", seed);
    for (size_t i = 0; i < S_AGENTS; i++)
        s_agent (fixture, i, 2 + (uint32_t) (rand_r (&seed) % 6), 2 + (uint32_t) (rand_r (&seed) % 4));
    qn_limits_pool_set (engine->limits, "p0", 2);
    qn_limits_pool_set (engine->limits, "p1", 3);
    uint32_t pool_size [3] = { 2, 3, 1 };               //  p2 is never set: 1
    const char *owners [] = { "alice", "bob", "carol" };
    run_t *runs [6];
    for (uint64_t r = 0; r < 6; r++) {
        char *yaml = zsys_sprintf ("name: w%llu\npriority: %d\ntasks:\n", (unsigned long long) r % 3,
                                   (int) (rand_r (&seed) % 21) - 10);
        for (int t = 0; t < 30; t++) {
            int pool = rand_r (&seed) % 4, on = rand_r (&seed) % 3;
            char *more = zsys_sprintf (
                "%s  t%d:\n    run: \"true\"\n    resources: {cpus: %u}\n%s%s%s%s", yaml, t,
                (unsigned) (rand_r (&seed) % 3),
                pool < 3? "    pool: p": "", pool < 3? (pool == 0? "0\n": pool == 1? "1\n": "2\n"): "",
                on == 0? "": on == 1? "    on: {zone: a}\n": "    on: {zone: b}\n",
                t % 7 == 0? "    concurrency: 1\n": "");
            free (yaml);
            yaml = more;
        }
        runs [r] = s_run (fixture, 10 + r, owners [rand_r (&seed) % 3], yaml);
        free (yaml);
    }
    for (int round = 0; round < 50; round++) {
        qn_dispatch (engine);
        //  Counts exact and limits held
        uint32_t in_pool [3] = { 0 };
        zhashx_t *per_task = zhashx_new ();
        for (size_t r = 0; r < 6; r++)
            for (size_t t = 0; t < runs [r]->info->n_tasks; t++) {
                const qn_task_t *spec = qn_workflow_task (runs [r]->wf, t);
                Qanat__TaskInfo *task = qn_run_task (runs [r], t);
                if (task->status != QANAT__TASK_STATUS__TASK_RUNNING)
                    continue;
                Qanat__AttemptInfo *attempt = qn_run_current_attempt (task);
                agent_t *agent = (agent_t *) zhashx_lookup (engine->agents, attempt->agent);
                assert_true (qn_fleet_matches (agent, spec));
                if (spec->pool)
                    in_pool [spec->pool [1] - '0']++;
                if (spec->concurrency) {
                    char *key = zsys_sprintf ("%s/%s", runs [r]->info->workflow, spec->name);
                    size_t count = (size_t) zhashx_lookup (per_task, key) + 1;
                    zhashx_update (per_task, key, (void *) count);
                    assert_true (count <= spec->concurrency);
                    assert_int_equal (qn_limits_task_used (engine->limits, key), count);
                    free (key);
                }
            }
        zhashx_destroy (&per_task);
        for (int p = 0; p < 3; p++) {
            char name [4] = { 'p', (char) ('0' + p), 0 };
            assert_true (in_pool [p] <= pool_size [p]);
            assert_int_equal (qn_limits_pool_used (engine->limits, name), in_pool [p]);
        }
        for (size_t a = 0; a < S_AGENTS; a++)
            assert_true (fixture->agents [a]->place.used.cpus
                         <= fixture->agents [a]->place.total.cpus);
        //  No task left queued that fits somewhere free with room in its limits
        for (size_t r = 0; r < 6; r++)
            for (size_t t = 0; t < runs [r]->info->n_tasks; t++) {
                if (qn_run_task (runs [r], t)->status != QANAT__TASK_STATUS__TASK_QUEUED)
                    continue;
                const qn_task_t *spec = qn_workflow_task (runs [r]->wf, t);
                char *key = zsys_sprintf ("%s/%s", runs [r]->info->workflow, spec->name);
                bool room = qn_limits_room (engine->limits, spec->pool,
                                            spec->concurrency? key: NULL, spec->concurrency) > 0;
                free (key);
                qn_res_t need = { spec->cpus, 0, 0 };
                for (size_t a = 0; room && a < S_AGENTS; a++) {
                    agent_t *agent = fixture->agents [a];
                    assert_false (agent->info->credit > 0 && qn_fleet_matches (agent, spec)
                                  && qn_placement_fits (&agent->place, &need));
                }
            }
        //  Some end
        for (size_t r = 0; r < 6; r++)
            for (size_t t = 0; t < runs [r]->info->n_tasks; t++)
                if (qn_run_task (runs [r], t)->status == QANAT__TASK_STATUS__TASK_RUNNING
                &&  rand_r (&seed) % 2 == 0) {
                    Qanat__TaskInfo *task = qn_run_task (runs [r], t);
                    Qanat__AttemptInfo *attempt = qn_run_current_attempt (task);
                    agent_t *agent = (agent_t *) zhashx_lookup (engine->agents, attempt->agent);
                    qn_run_cancel_task (engine, runs [r], t, "done");
                    qn_fleet_release (agent, runs [r]->id, (uint32_t) t, attempt->attempt);
                    qn_fleet_set_credit (engine, agent, agent->info->credit + 1);
                }
    }
    //  Every attempt ended: nothing counted any more
    for (size_t r = 0; r < 6; r++)
        s_end_all (engine, runs [r]);
    for (int p = 0; p < 3; p++) {
        char name [4] = { 'p', (char) ('0' + p), 0 };
        assert_int_equal (qn_limits_pool_used (engine->limits, name), 0);
    }
    assert_int_equal (qn_limits_owner_used (engine->limits, "alice"), 0);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_pools_and_weights),
        cmocka_unit_test (test_ageing_key),
        cmocka_unit_test (test_workflow_keys),
        cmocka_unit_test_setup_teardown (test_priorities_and_ageing, s_setup, test_fleet_teardown),
        cmocka_unit_test_setup_teardown (test_workflow_concurrency, s_setup, test_fleet_teardown),
        cmocka_unit_test_setup_teardown (test_fair_share_equal, s_setup, test_fleet_teardown),
        cmocka_unit_test_setup_teardown (test_fair_share_weighted, s_setup, test_fleet_teardown),
        cmocka_unit_test_setup_teardown (test_limits_randomized, s_setup, test_fleet_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
