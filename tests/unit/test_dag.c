/*  test_dag - the task graph state machine: promotion, skipping of
    dependents, and the run status derived from the tasks.

    Every graph is parsed from a small YAML text with qn_workflow_parse, as
    the coordinator builds it, so these tests also pin the contract between
    the parser's resolved need indexes and the DAG.
*/
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qn_dag.h"

#define PENDING    QANAT__TASK_STATUS__TASK_PENDING
#define QUEUED     QANAT__TASK_STATUS__TASK_QUEUED
#define RUNNING    QANAT__TASK_STATUS__TASK_RUNNING
#define SUCCEEDED  QANAT__TASK_STATUS__TASK_SUCCEEDED
#define FAILED     QANAT__TASK_STATUS__TASK_FAILED
#define SKIPPED    QANAT__TASK_STATUS__TASK_SKIPPED
#define CANCELED   QANAT__TASK_STATUS__TASK_CANCELED

#define RUN_QUEUED     QANAT__RUN_STATUS__RUN_QUEUED
#define RUN_RUNNING    QANAT__RUN_STATUS__RUN_RUNNING
#define RUN_SUCCEEDED  QANAT__RUN_STATUS__RUN_SUCCEEDED
#define RUN_WARNINGS   QANAT__RUN_STATUS__RUN_SUCCEEDED_WITH_WARNINGS
#define RUN_FAILED     QANAT__RUN_STATUS__RUN_FAILED
#define RUN_CANCELED   QANAT__RUN_STATUS__RUN_CANCELED

//  A parsed workflow and its graph; the workflow must outlive the graph.
typedef struct {
    qn_workflow_t *wf;
    qn_dag_t *dag;
    size_t *buffer;             //  room for qn_dag_size indexes
} graph_t;

static void
s_graph_open (graph_t *graph, const char *yaml)
{
    char *error = NULL;
    graph->wf = qn_workflow_parse ("test.yaml", yaml, strlen (yaml), &error);
    if (!graph->wf)
        fail_msg ("workflow did not parse: %s", error? error: "(no message)");
    assert_null (error);
    graph->dag = qn_dag_new (graph->wf);
    assert_non_null (graph->dag);
    assert_int_equal (qn_dag_size (graph->dag), qn_workflow_task_count (graph->wf));
    size_t size = qn_dag_size (graph->dag);
    graph->buffer = (size_t *) calloc (size? size: 1, sizeof (size_t));
    assert_non_null (graph->buffer);
    for (size_t i = 0; i < size; i++)
        assert_int_equal (qn_dag_status (graph->dag, i), PENDING);
}

static void
s_graph_close (graph_t *graph)
{
    qn_dag_destroy (&graph->dag);
    assert_null (graph->dag);
    qn_dag_destroy (&graph->dag);       //  idempotent
    qn_workflow_destroy (&graph->wf);
    free (graph->buffer);
    graph->buffer = NULL;
}

static size_t
s_index (graph_t *graph, const char *name)
{
    int index = qn_workflow_task_index (graph->wf, name);
    if (index < 0)
        fail_msg ("no task '%s'", name);
    return (size_t) index;
}

static Qanat__TaskStatus
s_status (graph_t *graph, const char *name)
{
    return qn_dag_status (graph->dag, s_index (graph, name));
}

static void
s_set (graph_t *graph, const char *name, Qanat__TaskStatus status)
{
    qn_dag_set_status (graph->dag, s_index (graph, name), status);
    assert_int_equal (s_status (graph, name), status);
}

//  Checks that the count indexes in got are exactly the tasks named in
//  the space-separated list expected, in any order, each once.
static void
s_assert_set (graph_t *graph, const size_t *got, size_t count, const char *expected)
{
    char *copy = strdup (expected);
    size_t want_count = 0;
    size_t size = qn_dag_size (graph->dag);
    bool *want = (bool *) calloc (size? size: 1, sizeof (bool));
    bool *seen = (bool *) calloc (size? size: 1, sizeof (bool));
    for (char *name = strtok (copy, " "); name; name = strtok (NULL, " ")) {
        size_t index = s_index (graph, name);
        assert_false (want [index]);
        want [index] = true;
        want_count++;
    }
    for (size_t i = 0; i < count; i++) {
        if (got [i] >= size)
            fail_msg ("index %zu out of range", got [i]);
        if (!want [got [i]])
            fail_msg ("unexpected task '%s' (expected: %s)",
                      qn_workflow_task (graph->wf, got [i])->name, expected);
        if (seen [got [i]])
            fail_msg ("task '%s' reported twice", qn_workflow_task (graph->wf, got [i])->name);
        seen [got [i]] = true;
    }
    if (count != want_count)
        fail_msg ("got %zu tasks, expected %zu (%s)", count, want_count, expected);
    free (want);
    free (seen);
    free (copy);
}

//  Promotes and checks exactly the named tasks became queued.
static void
s_promote_expect (graph_t *graph, const char *expected)
{
    size_t count = qn_dag_promote (graph->dag, graph->buffer);
    s_assert_set (graph, graph->buffer, count, expected);
    for (size_t i = 0; i < count; i++)
        assert_int_equal (qn_dag_status (graph->dag, graph->buffer [i]), QUEUED);
}

static void
s_skip_expect (graph_t *graph, const char *failed, const char *expected)
{
    size_t count = qn_dag_skip_dependents (graph->dag, s_index (graph, failed), graph->buffer);
    s_assert_set (graph, graph->buffer, count, expected);
    for (size_t i = 0; i < count; i++)
        assert_int_equal (qn_dag_status (graph->dag, graph->buffer [i]), SKIPPED);
}

static Qanat__RunStatus
s_run_status (graph_t *graph)
{
    return qn_dag_run_status (graph->dag, false, false);
}

static const char *s_diamond =
    "name: diamond\n"
    "tasks:\n"
    "  a: {run: \"true\"}\n"
    "  b: {run: \"true\", needs: [a]}\n"
    "  c: {run: \"true\", needs: [a]}\n"
    "  d: {run: \"true\", needs: [b, c]}\n";

//  ---------------------------------------------------------------------

static void
test_diamond_success (void **state)
{
    (void) state;
    graph_t graph;
    s_graph_open (&graph, s_diamond);
    assert_int_equal (qn_dag_size (graph.dag), 4);
    assert_false (qn_dag_finished (graph.dag));
    assert_int_equal (s_run_status (&graph), RUN_QUEUED);

    s_promote_expect (&graph, "a");
    assert_int_equal (s_status (&graph, "b"), PENDING);
    assert_int_equal (s_status (&graph, "c"), PENDING);
    assert_int_equal (s_status (&graph, "d"), PENDING);
    //  Queued is not started: the run is still queued
    assert_int_equal (s_run_status (&graph), RUN_QUEUED);
    s_promote_expect (&graph, "");          //  a is no longer pending

    s_set (&graph, "a", RUNNING);
    assert_int_equal (s_run_status (&graph), RUN_RUNNING);
    s_promote_expect (&graph, "");
    s_set (&graph, "a", SUCCEEDED);
    assert_int_equal (s_run_status (&graph), RUN_RUNNING);
    s_promote_expect (&graph, "b c");
    s_promote_expect (&graph, "");
    assert_int_equal (s_status (&graph, "d"), PENDING);

    s_set (&graph, "b", RUNNING);
    s_set (&graph, "b", SUCCEEDED);
    //  d needs c too
    s_promote_expect (&graph, "");
    assert_int_equal (s_status (&graph, "d"), PENDING);
    s_set (&graph, "c", RUNNING);
    s_promote_expect (&graph, "");
    s_set (&graph, "c", SUCCEEDED);
    s_promote_expect (&graph, "d");
    assert_false (qn_dag_finished (graph.dag));
    assert_int_equal (s_run_status (&graph), RUN_RUNNING);

    s_set (&graph, "d", RUNNING);
    assert_false (qn_dag_finished (graph.dag));
    s_set (&graph, "d", SUCCEEDED);
    assert_true (qn_dag_finished (graph.dag));
    assert_int_equal (s_run_status (&graph), RUN_SUCCEEDED);
    assert_int_equal (qn_dag_run_status (graph.dag, false, true), RUN_WARNINGS);
    assert_int_equal (qn_dag_run_status (graph.dag, true, false), RUN_CANCELED);
    assert_int_equal (qn_dag_run_status (graph.dag, true, true), RUN_CANCELED);
    s_promote_expect (&graph, "");
    s_graph_close (&graph);
}

//  b fails: d is skipped, c still runs to the end, and the run fails.
static void
test_diamond_failure (void **state)
{
    (void) state;
    graph_t graph;
    s_graph_open (&graph, s_diamond);
    s_promote_expect (&graph, "a");
    s_set (&graph, "a", SUCCEEDED);
    s_promote_expect (&graph, "b c");
    s_set (&graph, "b", RUNNING);
    s_set (&graph, "b", FAILED);
    s_skip_expect (&graph, "b", "d");
    assert_int_equal (s_status (&graph, "c"), QUEUED);
    assert_int_equal (s_status (&graph, "a"), SUCCEEDED);
    assert_int_equal (s_status (&graph, "b"), FAILED);
    //  A skipped task is never promoted, even once its other need succeeds
    s_promote_expect (&graph, "");
    assert_false (qn_dag_finished (graph.dag));
    assert_int_equal (s_run_status (&graph), RUN_RUNNING);

    s_set (&graph, "c", RUNNING);
    s_set (&graph, "c", SUCCEEDED);
    s_promote_expect (&graph, "");
    assert_int_equal (s_status (&graph, "d"), SKIPPED);
    assert_true (qn_dag_finished (graph.dag));
    assert_int_equal (s_run_status (&graph), RUN_FAILED);
    //  Warnings do not rescue a failed run; a cancel overrides
    assert_int_equal (qn_dag_run_status (graph.dag, false, true), RUN_FAILED);
    assert_int_equal (qn_dag_run_status (graph.dag, true, false), RUN_CANCELED);
    s_graph_close (&graph);
}

//  The root of the diamond fails: everything downstream is skipped, d
//  only once although two paths lead to it.
static void
test_diamond_root_failure (void **state)
{
    (void) state;
    graph_t graph;
    s_graph_open (&graph, s_diamond);
    s_promote_expect (&graph, "a");
    s_set (&graph, "a", FAILED);
    s_skip_expect (&graph, "a", "b c d");
    assert_true (qn_dag_finished (graph.dag));
    assert_int_equal (s_run_status (&graph), RUN_FAILED);
    //  Nothing left to skip the second time
    s_skip_expect (&graph, "a", "");
    s_graph_close (&graph);
}

//  Skipping is transitive, and stops at tasks that do not depend on the
//  failure.
static void
test_transitive_skip (void **state)
{
    (void) state;
    graph_t graph;
    s_graph_open (&graph,
        "name: deep\n"
        "tasks:\n"
        "  a: {run: \"true\"}\n"
        "  b: {run: \"true\", needs: [a]}\n"
        "  c: {run: \"true\", needs: [a]}\n"
        "  d: {run: \"true\", needs: [b, c]}\n"
        "  e: {run: \"true\", needs: [d]}\n"
        "  f: {run: \"true\", needs: [e, c]}\n"
        "  g: {run: \"true\", needs: [c]}\n"
        "  x: {run: \"true\"}\n"
        "  y: {run: \"true\", needs: [x]}\n");
    s_promote_expect (&graph, "a x");
    s_set (&graph, "a", SUCCEEDED);
    s_set (&graph, "x", RUNNING);
    s_promote_expect (&graph, "b c");
    s_set (&graph, "b", FAILED);
    s_skip_expect (&graph, "b", "d e f");
    assert_int_equal (s_status (&graph, "c"), QUEUED);
    assert_int_equal (s_status (&graph, "g"), PENDING);
    assert_int_equal (s_status (&graph, "x"), RUNNING);
    assert_int_equal (s_status (&graph, "y"), PENDING);

    s_set (&graph, "c", SUCCEEDED);
    s_promote_expect (&graph, "g");
    s_set (&graph, "x", SUCCEEDED);
    s_promote_expect (&graph, "y");
    s_set (&graph, "g", SUCCEEDED);
    assert_int_equal (s_run_status (&graph), RUN_RUNNING);
    s_set (&graph, "y", SUCCEEDED);
    assert_true (qn_dag_finished (graph.dag));
    assert_int_equal (s_run_status (&graph), RUN_FAILED);
    s_graph_close (&graph);
}

//  Only pending and queued dependents are skipped; a dependent that
//  already ended (a retry of its dependency failing later, say) keeps its
//  status, and what lies behind it is not reached through it.
static void
test_skip_leaves_finished_tasks (void **state)
{
    (void) state;
    graph_t graph;
    s_graph_open (&graph,
        "name: partial\n"
        "tasks:\n"
        "  a: {run: \"true\"}\n"
        "  b: {run: \"true\", needs: [a]}\n"
        "  c: {run: \"true\", needs: [b]}\n"
        "  d: {run: \"true\", needs: [a]}\n");
    s_set (&graph, "b", SUCCEEDED);
    s_set (&graph, "d", QUEUED);
    s_set (&graph, "a", FAILED);
    s_skip_expect (&graph, "a", "d");
    assert_int_equal (s_status (&graph, "b"), SUCCEEDED);
    assert_int_equal (s_status (&graph, "c"), PENDING);
    s_graph_close (&graph);
}

//  A canceled task skips its dependents just as a failed one does.
static void
test_cancel_skips (void **state)
{
    (void) state;
    graph_t graph;
    s_graph_open (&graph, s_diamond);
    s_promote_expect (&graph, "a");
    s_set (&graph, "a", SUCCEEDED);
    s_promote_expect (&graph, "b c");
    s_set (&graph, "b", RUNNING);
    s_set (&graph, "c", RUNNING);
    s_set (&graph, "b", CANCELED);
    s_skip_expect (&graph, "b", "d");
    s_set (&graph, "c", CANCELED);
    assert_true (qn_dag_finished (graph.dag));
    assert_int_equal (qn_dag_run_status (graph.dag, true, false), RUN_CANCELED);
    //  Tasks canceled one by one (`qanat cancel RUN TASK`) read as a
    //  canceled run too, unless something failed
    assert_int_equal (qn_dag_run_status (graph.dag, false, false), RUN_CANCELED);
    s_set (&graph, "c", FAILED);
    assert_int_equal (qn_dag_run_status (graph.dag, false, false), RUN_FAILED);
    s_graph_close (&graph);
}

static void
test_chain (void **state)
{
    (void) state;
    graph_t graph;
    s_graph_open (&graph,
        "name: chain\n"
        "tasks:\n"
        "  one: {run: \"true\"}\n"
        "  two: {run: \"true\", needs: one}\n"
        "  three: {run: \"true\", needs: [two]}\n"
        "  four: {run: \"true\", needs: [three]}\n"
        "  five: {run: \"true\", needs: [four]}\n");
    const char *order [] = { "one", "two", "three", "four", "five" };
    for (size_t i = 0; i < 5; i++) {
        s_promote_expect (&graph, order [i]);
        s_promote_expect (&graph, "");
        for (size_t j = i + 1; j < 5; j++)
            assert_int_equal (s_status (&graph, order [j]), PENDING);
        assert_int_equal (s_run_status (&graph), i == 0? RUN_QUEUED: RUN_RUNNING);
        s_set (&graph, order [i], RUNNING);
        assert_false (qn_dag_finished (graph.dag));
        s_set (&graph, order [i], SUCCEEDED);
    }
    assert_true (qn_dag_finished (graph.dag));
    assert_int_equal (s_run_status (&graph), RUN_SUCCEEDED);
    s_graph_close (&graph);
}

//  Tasks listed before the tasks they need: promotion follows the needs,
//  not the file order.
static void
test_reverse_file_order (void **state)
{
    (void) state;
    graph_t graph;
    s_graph_open (&graph,
        "name: reversed\n"
        "tasks:\n"
        "  last: {run: \"true\", needs: [middle]}\n"
        "  middle: {run: \"true\", needs: [first]}\n"
        "  first: {run: \"true\"}\n");
    assert_int_equal (s_index (&graph, "last"), 0);
    s_promote_expect (&graph, "first");
    s_set (&graph, "first", SUCCEEDED);
    s_promote_expect (&graph, "middle");
    s_set (&graph, "middle", SUCCEEDED);
    s_promote_expect (&graph, "last");
    s_set (&graph, "middle", FAILED);         //  as after a failed retry
    s_skip_expect (&graph, "middle", "last");
    s_graph_close (&graph);

    //  Skipping, too, follows the needs against the file order
    s_graph_open (&graph,
        "name: reversed-chain\n"
        "tasks:\n"
        "  z: {run: \"true\", needs: [y]}\n"
        "  y: {run: \"true\", needs: [x]}\n"
        "  x: {run: \"true\", needs: [w]}\n"
        "  w: {run: \"true\"}\n"
        "  v: {run: \"true\", needs: [z]}\n");
    s_promote_expect (&graph, "w");
    s_set (&graph, "w", FAILED);
    s_skip_expect (&graph, "w", "x y z v");
    s_graph_close (&graph);
}

static void
test_independent_roots (void **state)
{
    (void) state;
    graph_t graph;
    s_graph_open (&graph,
        "name: roots\n"
        "tasks:\n"
        "  r1: {run: \"true\"}\n"
        "  r2: {run: \"true\"}\n"
        "  join: {run: \"true\", needs: [r1, r3]}\n"
        "  r3: {run: \"true\"}\n");
    s_promote_expect (&graph, "r1 r2 r3");
    s_set (&graph, "r2", FAILED);
    s_skip_expect (&graph, "r2", "");           //  nothing needs r2
    s_set (&graph, "r1", SUCCEEDED);
    s_promote_expect (&graph, "");
    assert_int_equal (s_run_status (&graph), RUN_RUNNING);
    s_set (&graph, "r3", SUCCEEDED);
    s_promote_expect (&graph, "join");
    s_set (&graph, "join", SUCCEEDED);
    assert_true (qn_dag_finished (graph.dag));
    //  r2 failed: the run failed although everything else succeeded
    assert_int_equal (s_run_status (&graph), RUN_FAILED);
    s_graph_close (&graph);
}

//  Every status the run can be derived to, one task state at a time.
static void
test_run_status (void **state)
{
    (void) state;
    graph_t graph;
    s_graph_open (&graph,
        "name: pair\n"
        "tasks:\n"
        "  p: {run: \"true\"}\n"
        "  q: {run: \"true\"}\n");
    struct {
        Qanat__TaskStatus p, q;
        bool canceled, warnings;
        Qanat__RunStatus expected;
    } cases [] = {
        { PENDING,   PENDING,   false, false, RUN_QUEUED },
        { QUEUED,    PENDING,   false, false, RUN_QUEUED },
        { QUEUED,    QUEUED,    false, true,  RUN_QUEUED },
        { QUEUED,    QUEUED,    true,  false, RUN_QUEUED },
        { RUNNING,   QUEUED,    false, false, RUN_RUNNING },
        { SUCCEEDED, PENDING,   false, false, RUN_RUNNING },
        { FAILED,    QUEUED,    false, false, RUN_RUNNING },
        { SKIPPED,   PENDING,   false, false, RUN_RUNNING },
        { CANCELED,  RUNNING,   true,  false, RUN_RUNNING },
        { SUCCEEDED, SUCCEEDED, false, false, RUN_SUCCEEDED },
        { SUCCEEDED, SUCCEEDED, false, true,  RUN_WARNINGS },
        { SUCCEEDED, FAILED,    false, false, RUN_FAILED },
        { FAILED,    FAILED,    false, true,  RUN_FAILED },
        { SUCCEEDED, SKIPPED,   false, false, RUN_FAILED },
        { SKIPPED,   SKIPPED,   false, false, RUN_FAILED },
        { SUCCEEDED, CANCELED,  false, false, RUN_CANCELED },
        { FAILED,    CANCELED,  false, false, RUN_FAILED },
        { CANCELED,  SKIPPED,   false, false, RUN_CANCELED },
        { CANCELED,  SKIPPED,   true,  false, RUN_CANCELED },
        { SUCCEEDED, SUCCEEDED, true,  true,  RUN_CANCELED },
        { FAILED,    SKIPPED,   true,  false, RUN_CANCELED },
    };
    for (size_t i = 0; i < sizeof (cases) / sizeof (cases [0]); i++) {
        s_set (&graph, "p", cases [i].p);
        s_set (&graph, "q", cases [i].q);
        Qanat__RunStatus status = qn_dag_run_status (graph.dag, cases [i].canceled,
                                                     cases [i].warnings);
        if (status != cases [i].expected)
            fail_msg ("case %zu: run status %d, expected %d", i, status, cases [i].expected);
        bool finished = cases [i].expected != RUN_QUEUED && cases [i].expected != RUN_RUNNING;
        if (qn_dag_finished (graph.dag) != finished)
            fail_msg ("case %zu: finished is %d", i, !finished);
    }
    s_graph_close (&graph);
}

//  Builds a workflow text: a root, width children that each need it,
//  width independent tasks, and a sink that needs every child.
static char *
s_fan_yaml (size_t width)
{
    size_t size = 256 + width * 120;
    char *text = (char *) malloc (size);
    assert_non_null (text);
    size_t used = (size_t) snprintf (text, size, "name: fan\ntasks:\n  root: {run: \"true\"}\n");
    for (size_t i = 0; i < width; i++)
        used += (size_t) snprintf (text + used, size - used,
                                   "  child%zu: {run: \"true\", needs: [root]}\n"
                                   "  solo%zu: {run: \"true\"}\n", i, i);
    used += (size_t) snprintf (text + used, size - used, "  sink:\n    run: \"true\"\n    needs: [");
    for (size_t i = 0; i < width; i++)
        used += (size_t) snprintf (text + used, size - used, "%schild%zu", i? ", ": "", i);
    used += (size_t) snprintf (text + used, size - used, "]\n");
    assert_true (used < size);
    return text;
}

static void
test_big_fan_out (void **state)
{
    (void) state;
    const size_t width = 1000;
    char *yaml = s_fan_yaml (width);
    graph_t graph;
    s_graph_open (&graph, yaml);
    free (yaml);
    size_t size = qn_dag_size (graph.dag);
    assert_int_equal (size, 2 * width + 2);
    size_t root = s_index (&graph, "root");
    size_t sink = s_index (&graph, "sink");

    //  The root and every solo task at once, no child, no sink
    size_t count = qn_dag_promote (graph.dag, graph.buffer);
    assert_int_equal (count, width + 1);
    bool *seen = (bool *) calloc (size, sizeof (bool));
    for (size_t i = 0; i < count; i++) {
        const char *name = qn_workflow_task (graph.wf, graph.buffer [i])->name;
        assert_true (graph.buffer [i] == root || strncmp (name, "solo", 4) == 0);
        assert_false (seen [graph.buffer [i]]);
        seen [graph.buffer [i]] = true;
    }
    free (seen);
    assert_int_equal (qn_dag_promote (graph.dag, graph.buffer), 0);

    //  Then every child at once
    qn_dag_set_status (graph.dag, root, SUCCEEDED);
    count = qn_dag_promote (graph.dag, graph.buffer);
    assert_int_equal (count, width);
    for (size_t i = 0; i < count; i++)
        assert_int_equal (strncmp (qn_workflow_task (graph.wf, graph.buffer [i])->name,
                                   "child", 5), 0);
    //  The sink only after the very last child
    for (size_t i = 0; i < width; i++) {
        char name [32];
        snprintf (name, sizeof name, "child%zu", i);
        s_set (&graph, name, SUCCEEDED);
        count = qn_dag_promote (graph.dag, graph.buffer);
        if (i + 1 < width)
            assert_int_equal (count, 0);
        else {
            assert_int_equal (count, 1);
            assert_int_equal (graph.buffer [0], sink);
        }
    }
    s_graph_close (&graph);
}

//  The root of the fan fails: every child and the sink are skipped in
//  one call; the independent tasks are untouched.
static void
test_big_fan_skip (void **state)
{
    (void) state;
    const size_t width = 1000;
    char *yaml = s_fan_yaml (width);
    graph_t graph;
    s_graph_open (&graph, yaml);
    free (yaml);
    size_t root = s_index (&graph, "root");
    assert_int_equal (qn_dag_promote (graph.dag, graph.buffer), width + 1);
    qn_dag_set_status (graph.dag, root, FAILED);
    size_t count = qn_dag_skip_dependents (graph.dag, root, graph.buffer);
    assert_int_equal (count, width + 1);
    for (size_t i = 0; i < qn_dag_size (graph.dag); i++) {
        const char *name = qn_workflow_task (graph.wf, i)->name;
        Qanat__TaskStatus status = qn_dag_status (graph.dag, i);
        if (i == root)
            assert_int_equal (status, FAILED);
        else
        if (strncmp (name, "solo", 4) == 0)
            assert_int_equal (status, QUEUED);
        else
            assert_int_equal (status, SKIPPED);
    }
    s_graph_close (&graph);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_diamond_success),
        cmocka_unit_test (test_diamond_failure),
        cmocka_unit_test (test_diamond_root_failure),
        cmocka_unit_test (test_transitive_skip),
        cmocka_unit_test (test_skip_leaves_finished_tasks),
        cmocka_unit_test (test_cancel_skips),
        cmocka_unit_test (test_chain),
        cmocka_unit_test (test_reverse_file_order),
        cmocka_unit_test (test_independent_roots),
        cmocka_unit_test (test_run_status),
        cmocka_unit_test (test_big_fan_out),
        cmocka_unit_test (test_big_fan_skip),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
