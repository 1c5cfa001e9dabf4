/*  test_placement - where tasks fit: the placement rules on their own
    (fit, take and give, the words of a waiting reason, bin-packing against
    spreading), then randomized property checks of dispatch with a real
    engine (insecure, on loopback, its sockets never used) and simulated
    agents of random sizes and labels: it never over-commits an agent,
    never places a task outside its selector, always places a task that
    fits somewhere free, and its counts of what is in use stay exact as
    attempts start and end.
*/
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include "qn_placement.h"
#include "qn_dispatch.h"
#include "qn_fleet.h"
#include "qn_run.h"
#include "test_engine.h"

//  ---------------------------------------------------------------------
//  The rules alone

static void
test_fit_take_give (void **state)
{
    (void) state;
    qn_place_t place = { true, { 8, 16384, 2 }, { 0, 0, 0 } };
    qn_res_t need = { 4, 8192, 1 };
    assert_true (qn_placement_fits (&place, &need));
    qn_placement_take (&place, &need);
    assert_true (qn_placement_fits (&place, &need));
    qn_placement_take (&place, &need);
    assert_false (qn_placement_fits (&place, &need));
    qn_res_t nothing = { 0, 0, 0 };
    assert_true (qn_placement_fits (&place, &nothing));     //  slots limit it, not this
    qn_placement_give (&place, &need);
    qn_placement_give (&place, &need);
    qn_placement_give (&place, &need);                      //  stops at zero
    assert_int_equal (place.used.cpus, 0);
    assert_int_equal (place.used.gpus, 0);
    //  More than the agent has never fits, and an untracked agent takes all
    qn_res_t huge = { 1, 0, 8 };
    assert_false (qn_placement_could_fit (&place, &huge));
    qn_place_t cluster = { false, { 0, 0, 0 }, { 0, 0, 0 } };
    assert_true (qn_placement_fits (&cluster, &huge));
    qn_placement_mode_t mode;
    assert_int_equal (qn_placement_mode_parse ("spread", &mode), 0);
    assert_int_equal (mode, QN_PLACEMENT_SPREAD);
    assert_int_equal (qn_placement_mode_parse ("tight", &mode), -1);
}

static void
test_words (void **state)
{
    (void) state;
    char text [96];
    qn_res_t need = { 2, 4096, 1 };
    assert_string_equal (qn_placement_text (&need, text, sizeof text), "cpus=2,memory=4G,gpus=1");
    qn_res_t memory = { 0, 1536, 0 };
    assert_string_equal (qn_placement_text (&memory, text, sizeof text), "memory=1536M");
    qn_place_t place = { true, { 8, 8192, 2 }, { 4, 7168, 1 } };
    qn_res_t gpus = { 0, 0, 2 };
    assert_string_equal (qn_placement_short_text (&place, &gpus, text, sizeof text), "1");
    assert_string_equal (qn_placement_short_text (&place, &memory, text, sizeof text), "1G");
    qn_res_t both = { 1, 2048, 2 };
    assert_string_equal (qn_placement_short_text (&place, &both, text, sizeof text),
                         "memory=1G,gpus=1");
}

static void
test_pack_and_spread (void **state)
{
    (void) state;
    //  a: 1 of 2 GPUs free; b: 4 of 4; c: none
    qn_place_t a = { true, { 16, 65536, 2 }, { 8, 0, 1 } };
    qn_place_t b = { true, { 16, 65536, 4 }, { 0, 0, 0 } };
    qn_place_t c = { true, { 16, 65536, 0 }, { 0, 0, 0 } };
    const qn_place_t *places [] = { &a, &b, &c };
    uint32_t credit [] = { 1, 4, 8 };
    qn_res_t gpu = { 1, 1024, 1 };
    assert_int_equal (qn_placement_choose (places, credit, 3, &gpu, QN_PLACEMENT_PACK), 0);
    assert_int_equal (qn_placement_choose (places, credit, 3, &gpu, QN_PLACEMENT_SPREAD), 1);
    //  A task without GPUs stays off the GPU nodes when packing
    qn_res_t cpu = { 2, 1024, 0 };
    assert_int_equal (qn_placement_choose (places, credit, 3, &cpu, QN_PLACEMENT_PACK), 2);
    //  Nothing asked: the most credit, as before resources counted
    qn_res_t nothing = { 0, 0, 0 };
    assert_int_equal (qn_placement_choose (places, credit, 3, &nothing, QN_PLACEMENT_PACK), 2);
    qn_res_t too_big = { 1, 1024, 8 };
    assert_int_equal (qn_placement_choose (places, credit, 3, &too_big, QN_PLACEMENT_PACK), -1);
}

//  Random GPU-only fleets: pack picks an agent with the fewest GPUs free
//  among those it fits on, spread one with the most, neither one it does
//  not fit on, and -1 only when it fits nowhere.
static void
test_choose_randomized (void **state)
{
    (void) state;
    unsigned int seed = 19;
    for (int round = 0; round < 2000; round++) {
        qn_place_t fleet [8];
        const qn_place_t *places [8];
        uint32_t credit [8];
        size_t count = 1 + (size_t) (rand_r (&seed) % 8);
        for (size_t i = 0; i < count; i++) {
            uint32_t total = (uint32_t) (rand_r (&seed) % 9);
            qn_place_t place = { true, { 64, 1 << 20, total },
                                 { 0, 0, total? (uint32_t) (rand_r (&seed) % (total + 1)): 0 } };
            fleet [i] = place;
            places [i] = &fleet [i];
            credit [i] = 1 + (uint32_t) (rand_r (&seed) % 4);
        }
        qn_res_t need = { 0, 0, 1 + (uint32_t) (rand_r (&seed) % 4) };
        for (int mode = 0; mode < 2; mode++) {
            int chosen = qn_placement_choose (places, credit, count, &need, (qn_placement_mode_t) mode);
            bool anywhere = false;
            for (size_t i = 0; i < count; i++)
                anywhere = anywhere || qn_placement_fits (&fleet [i], &need);
            assert_int_equal (chosen >= 0, anywhere);
            if (chosen < 0)
                continue;
            assert_true (qn_placement_fits (&fleet [chosen], &need));
            uint32_t free_chosen = qn_placement_free (&fleet [chosen]).gpus;
            for (size_t i = 0; i < count; i++) {
                if (!qn_placement_fits (&fleet [i], &need))
                    continue;
                uint32_t free_i = qn_placement_free (&fleet [i]).gpus;
                if (mode == QN_PLACEMENT_PACK)
                    assert_true (free_chosen <= free_i);
                else
                    assert_true (free_chosen >= free_i);
            }
        }
    }
}

//  The heap hands every task of a queue to the agent
//  qn_placement_choose would pick among those left (same free GPUs, same
//  credit), as tasks take room and credit, until none fits.
static void
test_heap_follows_choose (void **state)
{
    (void) state;
    unsigned int seed = 23;
    for (int round = 0; round < 500; round++) {
        qn_place_t fleet [16];
        const qn_place_t *places [16];
        uint32_t credit [16];
        void *items [16];
        qn_res_t need = { 0, 0, (uint32_t) (rand_r (&seed) % 3) };
        size_t count = 0;
        for (size_t i = 0; i < 16; i++) {
            uint32_t total = (uint32_t) (rand_r (&seed) % 9);
            qn_place_t place = { rand_r (&seed) % 8 != 0, { 64, 1 << 20, total },
                                 { 0, 0, total? (uint32_t) (rand_r (&seed) % (total + 1)): 0 } };
            fleet [i] = place;
            if (!qn_placement_fits (&fleet [i], &need))
                continue;
            places [count] = &fleet [i];
            items [count] = &fleet [i];
            credit [count++] = 1 + (uint32_t) (rand_r (&seed) % 4);
        }
        qn_placement_mode_t mode = (qn_placement_mode_t) (round % 2);
        qn_placement_heap_t heap = { places, credit, items, count, need, mode };
        qn_placement_heap_make (&heap);
        while (heap.count) {
            int chosen = qn_placement_choose (places, credit, heap.count, &need, mode);
            assert_true (chosen >= 0);
            qn_place_t *first = (qn_place_t *) items [0];
            assert_ptr_equal (places [0], first);
            assert_int_equal (first->tracked, places [chosen]->tracked);
            if (first->tracked && need.gpus)
                assert_int_equal (qn_placement_free (first).gpus,
                                  qn_placement_free (places [chosen]).gpus);
            assert_int_equal (credit [0], credit [chosen]);
            qn_placement_take (first, &need);
            credit [0]--;
            qn_placement_heap_update_first (&heap, credit [0] > 0 && qn_placement_fits (first, &need));
        }
    }
}

//  ---------------------------------------------------------------------
//  Dispatch with random agents and tasks

#define S_AGENTS  6
#define S_TASKS   60

typedef test_fleet_t s_fixture_t;

static int
s_setup (void **state)
{
    return test_fleet_start (state, "test-placement");
}

//  A connected agent with label zone=a|b that reports what it has, as its
//  Register would, and one slot per CPU of credit (and two more)
static agent_t *
s_agent (s_fixture_t *fixture, size_t i, unsigned int *seed)
{
    Qanat__Resources resources = QANAT__RESOURCES__INIT;
    resources.cpus = 1 + (uint32_t) (rand_r (seed) % 8);
    resources.memory_mb = 1024 * (1 + (uint64_t) (rand_r (seed) % 8));
    resources.gpus = (uint32_t) (rand_r (seed) % 4);
    return test_fleet_agent (fixture, i, &resources, resources.cpus + 2);
}

static run_t *
s_random_run (s_fixture_t *fixture, uint64_t id, unsigned int *seed)
{
    char *yaml = strdup ("name: random\ntasks:\n");
    for (int t = 0; t < S_TASKS; t++) {
        int on = rand_r (seed) % 3;
        char *line = zsys_sprintf ("%s  t%d:\n    run: \"true\"\n%s    resources: {cpus: %u, "
                                   "memory: %uM, gpus: %u}\n", yaml, t,
                                   on == 0? "": on == 1? "    on: {zone: a}\n": "    on: {zone: b}\n",
                                   (unsigned) (rand_r (seed) % 4),
                                   (unsigned) (512 * (rand_r (seed) % 6)),
                                   (unsigned) (rand_r (seed) % 5 == 0? rand_r (seed) % 3: 0));
        free (yaml);
        yaml = line;
    }
    run_t *run = test_engine_add_run (&fixture->t, id, yaml);
    free (yaml);
    return run;
}

//  Every property: counts exact, nothing over committed or outside its
//  selector, and, after a dispatch pass (dispatched), no queued task left
//  that fits on an agent with free credit.
static void
s_check (s_fixture_t *fixture, run_t **runs, size_t run_count, bool dispatched)
{
    qn_res_t used [S_AGENTS];
    memset (used, 0, sizeof used);
    for (size_t r = 0; r < run_count; r++)
        for (size_t t = 0; t < runs [r]->info->n_tasks; t++) {
            Qanat__TaskInfo *task = qn_run_task (runs [r], t);
            const qn_task_t *spec = qn_workflow_task (runs [r]->wf, t);
            if (task->status == QANAT__TASK_STATUS__TASK_RUNNING) {
                Qanat__AttemptInfo *attempt = qn_run_current_attempt (task);
                size_t a = (size_t) atoi (attempt->agent + strlen ("agent-"));
                assert_true (qn_fleet_matches (fixture->agents [a], spec));
                used [a].cpus += spec->cpus;
                used [a].memory_mb += spec->memory_mb;
                used [a].gpus += spec->gpus;
            }
        }
    for (size_t a = 0; a < S_AGENTS; a++) {
        agent_t *agent = fixture->agents [a];
        //  Canceled attempts it has not reported ended yet count too
        for (qn_res_t *held = (qn_res_t *) zhashx_first (agent->held); held;
             held = (qn_res_t *) zhashx_next (agent->held)) {
            used [a].cpus += held->cpus;
            used [a].memory_mb += held->memory_mb;
            used [a].gpus += held->gpus;
        }
        assert_int_equal (agent->place.used.cpus, used [a].cpus);
        assert_int_equal (agent->place.used.memory_mb, used [a].memory_mb);
        assert_int_equal (agent->place.used.gpus, used [a].gpus);
        assert_true (used [a].cpus <= agent->place.total.cpus);
        assert_true (used [a].memory_mb <= agent->place.total.memory_mb);
        assert_true (used [a].gpus <= agent->place.total.gpus);
        assert_int_equal (agent->info->used->gpus, used [a].gpus);  //  what `qanat agents` shows
    }
    for (size_t r = 0; dispatched && r < run_count; r++)
        for (size_t t = 0; t < runs [r]->info->n_tasks; t++) {
            if (qn_run_task (runs [r], t)->status != QANAT__TASK_STATUS__TASK_QUEUED)
                continue;
            const qn_task_t *spec = qn_workflow_task (runs [r]->wf, t);
            qn_res_t need = { spec->cpus, spec->memory_mb, spec->gpus };
            for (size_t a = 0; a < S_AGENTS; a++) {
                agent_t *agent = fixture->agents [a];
                assert_false (agent->info->credit > 0 && qn_fleet_matches (agent, spec)
                              && qn_placement_fits (&agent->place, &need));
            }
        }
}

static void
test_gpu_label (void **state)
{
    (void) state;
    const char *cases [][2] = {
        { "NVIDIA A100-SXM4-80GB", "a100" }, { "NVIDIA H100 80GB HBM3", "h100" },
        { "NVIDIA GeForce RTX 4090", "rtx-4090" }, { "Tesla V100-SXM2-16GB", "v100" },
        { "NVIDIA RTX A6000", "rtx-a6000" }, { "Tesla T4", "t4" }, { "NVIDIA L4", "l4" },
        { "  ", "" }, { "NVIDIA", "" }, { "Weird/Name 7", "weird_name-7" }
    };
    char text [64];
    for (size_t i = 0; i < sizeof cases / sizeof cases [0]; i++)
        assert_string_equal (qn_fleet_gpu_label (cases [i][0], text, sizeof text), cases [i][1]);
    char small [4];
    assert_string_equal (qn_fleet_gpu_label ("NVIDIA A100-SXM4-80GB", small, sizeof small), "a10");
}

//  What Register says: the gpu label added unless the agent has one, and
//  resources counted only on an agent whose default backend is local
static void
test_register_resources (void **state)
{
    s_fixture_t *fixture = (s_fixture_t *) *state;
    unsigned int seed = 1;
    agent_t *agent = s_agent (fixture, 0, &seed);
    Qanat__Resources resources = QANAT__RESOURCES__INIT;
    resources.cpus = 8;
    resources.gpus = 1;
    Qanat__Gpu gpu = QANAT__GPU__INIT;
    gpu.name = "NVIDIA A100-SXM4-80GB";
    Qanat__Gpu *gpus [] = { &gpu };
    Qanat__Register reg = QANAT__REGISTER__INIT;
    reg.resources = &resources;
    reg.gpus = gpus;
    reg.n_gpus = 1;
    qn_fleet_set_resources (agent, &reg);
    assert_true (agent->place.tracked);
    assert_int_equal (agent->info->total->gpus, 1);
    assert_string_equal (agent->info->labels [agent->info->n_labels - 1]->key, "gpu");
    assert_string_equal (agent->info->labels [agent->info->n_labels - 1]->value, "a100");
    //  Registering again with a gpu label of its own: that one stays alone
    size_t labels = agent->info->n_labels;
    qn_fleet_set_resources (agent, &reg);
    assert_int_equal (agent->info->n_labels, labels);
    //  A default backend in front of a cluster: slots only
    free (agent->info->backends [0]);
    agent->info->backends [0] = strdup ("slurm");
    qn_fleet_set_resources (agent, &reg);
    assert_false (agent->place.tracked);
    assert_null (agent->info->total);
    qn_res_t need = { 64, 0, 8 };
    assert_true (qn_placement_fits (&agent->place, &need));
}

static void
test_dispatch_randomized (void **state)
{
    s_fixture_t *fixture = (s_fixture_t *) *state;
    qn_coordinator_t *engine = fixture->t.engine;
    unsigned int seed = 7;
    for (size_t i = 0; i < S_AGENTS; i++)
        s_agent (fixture, i, &seed);
    run_t *runs [3];
    for (uint64_t r = 0; r < 3; r++) {
        runs [r] = s_random_run (fixture, 100 + r, &seed);
        assert_non_null (runs [r]);
        qn_run_advance (engine, runs [r]);
    }
    for (int round = 0; round < 40; round++) {
        qn_dispatch (engine);
        s_check (fixture, runs, 3, true);
        //  Canceled attempts killed earlier end there now (their Finished
        //  comes); some running ones are canceled, and half of those end
        //  at once; the agent pays each slot back as it ends
        for (size_t r = 0; r < 3; r++)
            for (size_t t = 0; t < runs [r]->info->n_tasks; t++) {
                Qanat__TaskInfo *task = qn_run_task (runs [r], t);
                Qanat__AttemptInfo *attempt = qn_run_current_attempt (task);
                agent_t *agent = attempt? (agent_t *) zhashx_lookup (engine->agents, attempt->agent)
                                        : NULL;
                if (agent && task->status == QANAT__TASK_STATUS__TASK_CANCELED
                &&  rand_r (&seed) % 2 == 0) {
                    size_t before = zhashx_size (agent->held);
                    qn_fleet_release (agent, runs [r]->id, (uint32_t) t, attempt->attempt);
                    if (zhashx_size (agent->held) < before)
                        qn_fleet_set_credit (engine, agent, agent->info->credit + 1);
                }
                if (task->status != QANAT__TASK_STATUS__TASK_RUNNING || rand_r (&seed) % 3)
                    continue;
                qn_run_cancel_task (engine, runs [r], t, "done in the test");
            }
        s_check (fixture, runs, 3, false);
    }
    //  The outbox holds the assignments that would have left
    assert_true (zlistx_size (engine->outbox) > 0);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_fit_take_give),
        cmocka_unit_test (test_words),
        cmocka_unit_test (test_pack_and_spread),
        cmocka_unit_test (test_choose_randomized),
        cmocka_unit_test (test_heap_follows_choose),
        cmocka_unit_test (test_gpu_label),
        cmocka_unit_test_setup_teardown (test_register_resources, s_setup, test_fleet_teardown),
        cmocka_unit_test_setup_teardown (test_dispatch_randomized, s_setup, test_fleet_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
