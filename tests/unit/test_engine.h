/*  test_engine - a real coordinator engine for the unit tests of its
    parts: insecure, on loopback, in a data directory of its own that
    stopping removes.  Its sockets are bound but the tests never use them.
*/
#ifndef TEST_ENGINE_H_INCLUDED
#define TEST_ENGINE_H_INCLUDED

#include <ftw.h>
#include <stdio.h>
#include <unistd.h>
#include "qn_coordinator.h"
#include "qn_run.h"
#include "qn_fleet.h"

typedef struct {
    char dir [64];
    qn_coordinator_t *engine;
} test_engine_t;

static inline int
s_test_engine_unlink (const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void) sb; (void) flag; (void) ftw;
    return remove (path);
}

//  0, or -1 when the engine cannot start (said on stderr).
static inline int
test_engine_start (test_engine_t *self, const char *name)
{
    snprintf (self->dir, sizeof self->dir, "/tmp/qanat-%s-XXXXXX", name);
    if (!mkdtemp (self->dir))
        return -1;
    zsys_set_logstream (NULL);
    qn_coordinator_config_t config = {
        .data_dir = self->dir,
        .client_endpoint = "tcp://127.0.0.1:*",
        .agent_endpoint = "tcp://127.0.0.1:*",
        .durable = false,
        .insecure = true,
        .s3_delete_after_s = -1
    };
    char *error = NULL;
    self->engine = qn_coordinator_new (&config, &error);
    if (!self->engine) {
        fprintf (stderr, "cannot start the coordinator: %s\n", error? error: "?");
        free (error);
        return -1;
    }
    return 0;
}

static inline void
test_engine_stop (test_engine_t *self)
{
    qn_coordinator_destroy (&self->engine);
    nftw (self->dir, s_test_engine_unlink, 16, FTW_DEPTH | FTW_PHYS);
}

//  A new run id of yaml in the engine's runs table, not advanced; NULL
//  (said on stderr) when the workflow does not parse.
static inline run_t *
test_engine_add_run (test_engine_t *self, uint64_t id, const char *yaml)
{
    char *error = NULL;
    qn_workflow_t *wf = qn_workflow_parse ("test.yaml", yaml, strlen (yaml), &error);
    if (!wf) {
        fprintf (stderr, "workflow did not parse: %s\n", error? error: "?");
        free (error);
        return NULL;
    }
    run_t *run = qn_run_new (self->engine, id, wf, 1, "test.yaml", NULL, 0);
    if (run) {
        char key [QN_RUN_KEY_SIZE];
        zhashx_insert (self->engine->runs, qn_run_key (id, key), run);
    }
    return run;
}

//  A cmocka teardown for a fixture (malloc'd) whose first member is its
//  test_engine_t.
static inline int
test_engine_teardown (void **state)
{
    test_engine_t *self = (test_engine_t *) *state;
    test_engine_stop (self);
    free (self);
    return 0;
}

//  ---------------------------------------------------------------------
//  An engine with simulated agents, for the tests of dispatch

#define TEST_FLEET_MAX  8

typedef struct {
    test_engine_t t;                    //  first: test_engine_teardown frees the fixture
    zframe_t *routes [TEST_FLEET_MAX];
    agent_t *agents [TEST_FLEET_MAX];
} test_fleet_t;

//  For a cmocka setup: *state is the new fleet.  0 or -1.
static inline int
test_fleet_start (void **state, const char *name)
{
    test_fleet_t *fleet = (test_fleet_t *) calloc (1, sizeof (test_fleet_t));
    if (!fleet || test_engine_start (&fleet->t, name) != 0) {
        free (fleet);
        return -1;
    }
    *state = fleet;
    return 0;
}

static inline int
test_fleet_teardown (void **state)
{
    test_fleet_t *fleet = (test_fleet_t *) *state;
    for (size_t i = 0; i < TEST_FLEET_MAX; i++)
        zframe_destroy (&fleet->routes [i]);
    return test_engine_teardown (state);
}

//  Connects agent-I with label zone=a (odd I) or b, the local backend,
//  what resources say it has (as its Register would) and credit slots
static inline agent_t *
test_fleet_agent (test_fleet_t *fleet, size_t i, Qanat__Resources *resources, uint32_t credit)
{
    char name [32];
    snprintf (name, sizeof name, "agent-%zu", i);
    fleet->routes [i] = zframe_new (name, strlen (name));
    agent_t *agent = qn_fleet_connect (fleet->t.engine, name, fleet->routes [i]);
    agent->info->connected = true;
    agent->info->suspect_after_ms = 3600000;
    agent->info->lost_after_ms = 3600000;
    qn_engine_append ((void ***) &agent->info->labels, &agent->info->n_labels,
                      qn_engine_label_new ("zone", i % 2? "a": "b"));
    qn_engine_append ((void ***) &agent->info->backends, &agent->info->n_backends,
                      strdup ("local"));
    Qanat__Register reg = QANAT__REGISTER__INIT;
    reg.resources = resources;
    qn_fleet_set_resources (agent, &reg);
    agent->info->capacity = credit;
    qn_fleet_set_credit (fleet->t.engine, agent, credit);
    qn_fleet_update_state (agent, zclock_mono ());
    fleet->agents [i] = agent;
    return agent;
}

#endif
